//! Sequence-number loss tracking, with wrap, late arrivals and restarts.
//!
//! What a sequence number counts differs by protocol; the caller says how
//! far one unit moves it (`advance`):
//!
//! | stream | numbers count | advance per unit |
//! |---|---|---|
//! | NetFlow v5 (per engine type/id) | flows | the header's `count` |
//! | NetFlow v9 (per source id) | export datagrams | 1 |
//! | IPFIX (per observation domain) | data records before this message | the message's data records |
//! | sFlow datagrams (per agent, sub-agent) | datagrams | 1 |
//! | sFlow samples (per agent, sub-agent, source id) | samples | 1 |
//!
//! All arithmetic wraps modulo 2^32, so `0xffff_ffff` then `0` is in order.
//! A forward jump up to `max_gap` is loss; a unit that fills part of the
//! last gap (within `window` back) is late (reordered), and the caller takes
//! its loss back; a repeat of the last unit is a duplicate; any other jump
//! (far forward, or back) is a restart of the exporter, not 4 billion lost.
//! No allocation, no panic.

/// Identifies one sequence stream within an exporter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct StreamKey {
    pub kind: StreamKind,
    /// v9 source id, IPFIX observation domain, sFlow sub-agent id, v5
    /// engine type << 8 | engine id.
    pub domain: u32,
    /// sFlow data source id (type << 24 | index); 0 otherwise.
    pub source: u32,
    /// sFlow agent address (IPv4 in the first 4 bytes); zero otherwise.
    pub agent: [u8; 16],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum StreamKind {
    V5,
    V9,
    Ipfix,
    SflowDatagrams,
    SflowFlowSamples,
    SflowCounterSamples,
    SflowDrops,
}

impl StreamKey {
    pub(super) fn simple(kind: StreamKind, domain: u32) -> StreamKey {
        StreamKey {
            kind,
            domain,
            source: 0,
            agent: [0; 16],
        }
    }
}

/// What one sequence number meant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqEvent {
    /// The stream's first number.
    First,
    /// Exactly the expected number.
    InOrder,
    /// This many units are missing before this one.
    Lost(u32),
    /// Arrived after later units; it carried this many (take them back
    /// from the loss counted earlier).
    Late(u32),
    /// The last unit again (ignored).
    Duplicate,
    /// A jump too big for loss, or back outside the last gap: the
    /// exporter restarted.
    Restart,
}

/// The expected next number of one stream, and the last gap seen (so a
/// late unit is told from a restart).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeqTracker {
    next: u32,
    started: bool,
    hole_start: u32,
    hole_len: u32,
    /// The number last fed (for the IPFIX convention check).
    last_seq: u32,
    /// The exporter numbers IPFIX messages by records *including* the
    /// message's own (softflowd does), not before it (RFC 7011).
    inclusive: bool,
}

impl SeqTracker {
    /// Feeds `seq`, the number of a unit that moves the sequence by
    /// `advance`.
    pub fn observe(&mut self, seq: u32, advance: u32, max_gap: u32, window: u32) -> SeqEvent {
        let after = seq.wrapping_add(advance);
        if !self.started {
            self.started = true;
            self.next = after;
            self.hole_len = 0;
            return SeqEvent::First;
        }
        let ahead = seq.wrapping_sub(self.next);
        if ahead == 0 {
            self.next = after;
            return SeqEvent::InOrder;
        }
        if ahead <= max_gap {
            self.hole_start = self.next;
            self.hole_len = ahead;
            self.next = after;
            return SeqEvent::Lost(ahead);
        }
        let behind = self.next.wrapping_sub(seq);
        if behind <= window {
            if after == self.next && advance > 0 {
                return SeqEvent::Duplicate;
            }
            // Late only if it fills (part of) the last gap.
            let offset = seq.wrapping_sub(self.hole_start);
            if offset < self.hole_len && advance <= self.hole_len - offset {
                if offset == 0 {
                    self.hole_start = self.hole_start.wrapping_add(advance);
                    self.hole_len -= advance;
                } else if offset + advance == self.hole_len {
                    self.hole_len -= advance;
                }
                return SeqEvent::Late(advance);
            }
        }
        self.next = after;
        self.hole_len = 0;
        SeqEvent::Restart
    }

    /// IPFIX: `seq` counts data records before this message (RFC 7011),
    /// and the message holds `records`. Some exporters (softflowd 1.1)
    /// count the message's own records too; when a message's number is
    /// exactly the previous number plus its own records (and not what the
    /// RFC predicts) the stream switches to that convention for good.
    pub fn observe_records(
        &mut self,
        seq: u32,
        records: u32,
        max_gap: u32,
        window: u32,
    ) -> SeqEvent {
        if self.started
            && !self.inclusive
            && records > 0
            && seq != self.next
            && seq.wrapping_sub(records) == self.last_seq
        {
            self.inclusive = true;
            self.next = self.last_seq;
        }
        let s = if self.inclusive {
            seq.wrapping_sub(records)
        } else {
            seq
        };
        let ev = self.observe(s, records, max_gap, window);
        self.last_seq = seq;
        ev
    }

    /// True once the stream was found to number records inclusively.
    pub fn inclusive(&self) -> bool {
        self.inclusive
    }

    /// For a running total (sFlow `drops`): how much it grew since the last
    /// value (0 on the first value and when it went down: a reset).
    pub fn counter_delta(&mut self, value: u32) -> u32 {
        let prev = self.next;
        let first = !self.started;
        self.started = true;
        self.next = value;
        if first || value < prev {
            0
        } else {
            value - prev
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GAP: u32 = 1 << 20;
    const WIN: u32 = 1 << 10;

    #[test]
    fn in_order_loss_and_wrap() {
        let mut t = SeqTracker::default();
        assert_eq!(t.observe(0xffff_fffe, 1, GAP, WIN), SeqEvent::First);
        assert_eq!(t.observe(0xffff_ffff, 1, GAP, WIN), SeqEvent::InOrder);
        // Wrap: 0xffff_ffff + 1 = 0 is in order, not 4 billion lost.
        assert_eq!(t.observe(0, 1, GAP, WIN), SeqEvent::InOrder);
        assert_eq!(t.observe(4, 1, GAP, WIN), SeqEvent::Lost(3));
        assert_eq!(t.observe(5, 1, GAP, WIN), SeqEvent::InOrder);
    }

    #[test]
    fn loss_across_the_wrap() {
        let mut t = SeqTracker::default();
        t.observe(0xffff_fff0, 10, GAP, WIN); // next = 0xffff_fffa
        assert_eq!(t.observe(2, 10, GAP, WIN), SeqEvent::Lost(8));
        assert_eq!(t.observe(12, 5, GAP, WIN), SeqEvent::InOrder);
    }

    #[test]
    fn late_unit_is_given_back() {
        let mut t = SeqTracker::default();
        t.observe(10, 1, GAP, WIN);
        assert_eq!(t.observe(12, 1, GAP, WIN), SeqEvent::Lost(1));
        assert_eq!(t.observe(11, 1, GAP, WIN), SeqEvent::Late(1));
        // The expected number did not move back.
        assert_eq!(t.observe(13, 1, GAP, WIN), SeqEvent::InOrder);
        // Records: a late message of 30 records.
        let mut t = SeqTracker::default();
        t.observe(1000, 30, GAP, WIN);
        assert_eq!(t.observe(1060, 30, GAP, WIN), SeqEvent::Lost(30));
        assert_eq!(t.observe(1030, 30, GAP, WIN), SeqEvent::Late(30));
    }

    #[test]
    fn big_jumps_are_restarts_not_loss() {
        let mut t = SeqTracker::default();
        t.observe(5_000_000, 1, GAP, WIN);
        // Exporter rebooted: back to 0.
        assert_eq!(t.observe(0, 1, GAP, WIN), SeqEvent::Restart);
        assert_eq!(t.observe(1, 1, GAP, WIN), SeqEvent::InOrder);
        // Far forward too.
        // Expected 2: 2 + GAP + 1 is one past the largest loss.
        assert_eq!(t.observe(2 + GAP + 1, 1, GAP, WIN), SeqEvent::Restart);
        // Exactly max_gap forward is still loss.
        let next = 2 + GAP + 2;
        assert_eq!(t.observe(next + GAP, 1, GAP, WIN), SeqEvent::Lost(GAP));
        // Back, but not into the last gap: restart (exporter rebooted
        // early in its sequence), and a repeat of the last unit.
        let mut t = SeqTracker::default();
        t.observe(0, 2, GAP, WIN);
        t.observe(2, 2, GAP, WIN);
        assert_eq!(t.observe(2, 2, GAP, WIN), SeqEvent::Duplicate);
        assert_eq!(t.observe(10, 2, GAP, WIN), SeqEvent::Lost(6));
        assert_eq!(t.observe(6, 2, GAP, WIN), SeqEvent::Late(2));
        assert_eq!(t.observe(0, 2, GAP, WIN), SeqEvent::Restart);
        assert_eq!(t.observe(2, 2, GAP, WIN), SeqEvent::InOrder);
        // Back by more than the window: restart.
        let mut t = SeqTracker::default();
        t.observe(100_000, 1, GAP, WIN);
        assert_eq!(t.observe(100_000 - WIN - 5, 1, GAP, WIN), SeqEvent::Restart);
    }

    #[test]
    fn ipfix_either_numbering_convention() {
        // RFC 7011: records before the message.
        let mut t = SeqTracker::default();
        assert_eq!(t.observe_records(0, 17, GAP, WIN), SeqEvent::First);
        assert_eq!(t.observe_records(17, 23, GAP, WIN), SeqEvent::InOrder);
        assert_eq!(t.observe_records(45, 5, GAP, WIN), SeqEvent::Lost(5));
        assert!(!t.inclusive());
        // softflowd: records including the message's own.
        let mut t = SeqTracker::default();
        assert_eq!(t.observe_records(17, 17, GAP, WIN), SeqEvent::First);
        assert_eq!(t.observe_records(40, 23, GAP, WIN), SeqEvent::InOrder);
        assert!(t.inclusive());
        assert_eq!(t.observe_records(64, 24, GAP, WIN), SeqEvent::InOrder);
        assert_eq!(t.observe_records(80, 6, GAP, WIN), SeqEvent::Lost(10));
        assert_eq!(t.observe_records(86, 6, GAP, WIN), SeqEvent::InOrder);
    }

    #[test]
    fn counter_delta_ignores_resets() {
        let mut t = SeqTracker::default();
        assert_eq!(t.counter_delta(100), 0);
        assert_eq!(t.counter_delta(130), 30);
        assert_eq!(t.counter_delta(130), 0);
        assert_eq!(t.counter_delta(5), 0);
        assert_eq!(t.counter_delta(7), 2);
    }
}

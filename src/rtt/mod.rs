//! Passive TCP round-trip times from the handshakes seen on the tap (the
//! method of pping / ePPing), split into the leg between the tap and each
//! host of the connection.
//!
//! For a handshake SYN (t1), SYN/ACK (t2), ACK (t3) as captured:
//! - t2 − t1 is the leg tap ↔ the host that answered the SYN (the server),
//! - t3 − t2 is the leg tap ↔ the host that sent it (the client),
//! - their sum is what tshark calls `tcp.analysis.initial_rtt`.
//!
//! A leg is `internal` when its host is local (`accounting.local_networks`),
//! else `external`. Handshakes with a retransmitted SYN or SYN/ACK are
//! ambiguous (Karn) and only counted.
//!
//! - [`table`]: the pending handshakes, shared by every worker (so the
//!   three frames may arrive on any queues and interfaces, in any order
//!   but SYN before ACK).
//! - [`Probe`]: a worker's hook, called once per frame; frames other than
//!   SYN, SYN/ACK and ACKs that pass the table's filter return after a flag
//!   test (and, for ACKs, one load).
//! - [`RttShard`]: one worker's histograms and outcome counters, summed
//!   at scrape by [`metrics::RttCollector`].
//!
//! Allocates only when a handshake completes for a range or AS not seen
//! before (a map entry); never panics on input; no unsafe.

pub mod metrics;
pub mod table;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::shard::{Counter, Tables};
use crate::wire::tcp::flags::{ACK, FIN, RST, SYN};
use crate::wire::{ip_proto, FrameFacts, L3Addrs};
use table::{Event, HandshakeTable, Outcome};

/// Upper bounds of the RTT histograms' buckets, nanoseconds (100 µs .. 4 s).
pub const BUCKETS_NS: [u64; 15] = [
    100_000,
    200_000,
    500_000,
    1_000_000,
    2_000_000,
    5_000_000,
    10_000_000,
    20_000_000,
    50_000_000,
    100_000_000,
    200_000_000,
    500_000_000,
    1_000_000_000,
    2_000_000_000,
    4_000_000_000,
];

/// One RTT histogram: per-bucket (not cumulative) counts, the last for
/// +Inf, and the sum in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hist {
    pub buckets: [u64; BUCKETS_NS.len() + 1],
    pub sum_ns: u64,
}

impl Hist {
    pub fn add(&mut self, ns: u64) {
        let i = BUCKETS_NS.partition_point(|&b| b < ns);
        self.buckets[i] += 1;
        self.sum_ns += ns;
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// `self` less an earlier copy of itself.
    pub fn minus(&self, o: &Hist) -> Hist {
        let mut h = *self;
        for (a, b) in h.buckets.iter_mut().zip(o.buckets) {
            *a = a.saturating_sub(b);
        }
        h.sum_ns = h.sum_ns.saturating_sub(o.sum_ns);
        h
    }

    pub fn merge(&mut self, o: &Hist) {
        for (a, b) in self.buckets.iter_mut().zip(o.buckets) {
            *a += b;
        }
        self.sum_ns += o.sum_ns;
    }
}

/// `leg` label values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leg {
    /// Tap ↔ a local host.
    Internal = 0,
    /// Tap ↔ a remote host.
    External = 1,
}

impl Leg {
    pub const ALL: [Leg; 2] = [Leg::Internal, Leg::External];
    pub const fn as_str(self) -> &'static str {
        match self {
            Leg::Internal => "internal",
            Leg::External => "external",
        }
    }
}

/// How handshakes ended, the `outcome` label of `xdpacct_tcp_handshakes_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeOutcome {
    Measured = 0,
    Ambiguous = 1,
    /// Completed with frame times out of order (t2 < t1 or t3 < t2: two
    /// interfaces' clocks disagree); not measured.
    OutOfOrder = 2,
    /// Refused for want of room in the table.
    Overflowed = 3,
}

impl HandshakeOutcome {
    pub const ALL: [HandshakeOutcome; 4] = [
        HandshakeOutcome::Measured,
        HandshakeOutcome::Ambiguous,
        HandshakeOutcome::OutOfOrder,
        HandshakeOutcome::Overflowed,
    ];
    pub const fn as_str(self) -> &'static str {
        match self {
            HandshakeOutcome::Measured => "measured",
            HandshakeOutcome::Ambiguous => "ambiguous",
            HandshakeOutcome::OutOfOrder => "out_of_order",
            HandshakeOutcome::Overflowed => "overflowed",
        }
    }
}

/// A range's label pairs (every range label name, "" where it has none).
pub type RangeKey = Arc<[(String, String)]>;

/// Histograms of one worker, written by it when a handshake completes and
/// read at scrape. The maps are behind one mutex that only the scrape
/// contends (briefly); the outcome counters are single-writer atomics.
#[derive(Default)]
pub struct RttShard {
    pub outcomes: [Counter; 4],
    pub hists: Mutex<Hists>,
}

/// A worker's RTT histograms.
#[derive(Default)]
pub struct Hists {
    /// Per range: its labels and the internal and external leg. Keyed by
    /// the address of the labels (the value keeps them alive, so the
    /// address is not reused); a reload's new table generation makes new
    /// entries, which the scrape merges by label values.
    pub ranges: HashMap<usize, (RangeKey, [Hist; 2]), IdHash>,
    /// External leg per peer AS (`None`: no AS for the address).
    pub ases: HashMap<Option<u32>, Hist, IdHash>,
}

/// A multiplicative hasher for the integer keys above (SipHash is many
/// times slower and needs no DoS resistance here: keys are addresses and
/// AS numbers).
#[derive(Default)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u32(&mut self, x: u32) {
        self.write_u64(u64::from(x));
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn write_usize(&mut self, x: usize) {
        self.write_u64(x as u64);
    }
    fn write_isize(&mut self, x: isize) {
        self.write_u64(x as u64);
    }
}

pub type IdHash = std::hash::BuildHasherDefault<IdHasher>;

/// Most distinct ASes one shard keeps a histogram for; the rest go to `None`.
const MAX_AS_HISTS: usize = 1 << 17;

/// A worker's hook. See the module docs.
pub struct Probe {
    /// The table's filter, checked by every TCP ACK.
    filter: table::FilterBits,
    table: Arc<HandshakeTable>,
    shard: Arc<RttShard>,
    /// Latest frame time seen (ns), the sweep's clock.
    now: u64,
    batches: u32,
    /// Where this worker's sweep of the table is.
    sweep_cursor: usize,
    /// Range labels of the tables generation they were built for.
    keys: Option<(Arc<Tables>, Vec<RangeKey>)>,
}

impl Probe {
    pub fn new(table: Arc<HandshakeTable>, shard: Arc<RttShard>) -> Self {
        // Workers start their sweeps at different places.
        let sweep_cursor = Arc::as_ptr(&shard) as usize >> 6;
        Probe {
            filter: table.filter_bits(),
            table,
            shard,
            now: 0,
            batches: 0,
            sweep_cursor,
            keys: None,
        }
    }

    /// Called once per frame with its capture time (0 when the backend has
    /// none: the worker's clock is read then, for handshake frames only).
    #[inline(always)]
    pub fn observe(&mut self, f: &FrameFacts, timestamp_ns: u64, tables: &Arc<Tables>) {
        // `tcp_flags` is 0 unless a TCP header was read (the parser resets
        // the facts for each frame), so it alone tells TCP frames apart.
        let fl = f.tcp_flags & (SYN | ACK | RST | FIN);
        // Pure ACKs (most TCP frames) first: a multiply, a shift and a
        // load. Then one test for SYN and SYN/ACK together.
        let handshake = if fl == ACK {
            self.filter.may_pend(f.tcp_seq.wrapping_sub(1))
        } else {
            fl & !ACK == SYN
        };
        if handshake {
            self.handshake_frame(f, timestamp_ns, tables);
        }
    }

    /// Called after each batch: sweeps a bucket of the table now and then.
    #[inline]
    pub fn end_batch(&mut self) {
        self.batches = self.batches.wrapping_add(1);
        if self.batches % 4 == 0 && self.now != 0 {
            self.table.sweep(self.now, &mut self.sweep_cursor, 1);
        }
    }

    /// Out of line and cold: the per-frame path above stays a few
    /// instructions in the worker's loop.
    #[cold]
    #[inline(never)]
    fn handshake_frame(&mut self, f: &FrameFacts, timestamp_ns: u64, tables: &Arc<Tables>) {
        if !f.has_l4 || f.protocol != ip_proto::TCP {
            return;
        }
        let (src, dst): (&[u8], &[u8]) = match &f.addrs {
            L3Addrs::V4 { src, dst } => (src, dst),
            L3Addrs::V6 { src, dst } => (src, dst),
            L3Addrs::None => return,
        };
        let t = if timestamp_ns != 0 {
            timestamp_ns
        } else {
            wall_clock_ns()
        };
        self.now = self.now.max(t);
        let syn = f.tcp_flags & SYN != 0;
        let ack = f.tcp_flags & ACK != 0;
        let (client, server, cport, sport, cisn, ev) = match (syn, ack) {
            (true, false) => (src, dst, f.src_port, f.dst_port, f.tcp_seq, Event::Syn),
            (true, true) => (
                dst,
                src,
                f.dst_port,
                f.src_port,
                f.tcp_ack.wrapping_sub(1),
                Event::SynAck {
                    server_isn: f.tcp_seq,
                },
            ),
            (false, _) => (
                src,
                dst,
                f.src_port,
                f.dst_port,
                f.tcp_seq.wrapping_sub(1),
                Event::Ack {
                    server_isn: f.tcp_ack.wrapping_sub(1),
                },
            ),
        };
        let key = table::key(client, server, cport, sport, cisn);
        match self.table.event(key, cisn, ev, t) {
            Outcome::Pending | Outcome::Ignored => {}
            Outcome::Overflow => self.shard.outcomes[HandshakeOutcome::Overflowed as usize].add(1),
            Outcome::Ambiguous => self.shard.outcomes[HandshakeOutcome::Ambiguous as usize].add(1),
            Outcome::Complete { syn, synack, ack } => {
                if synack < syn || ack < synack {
                    self.shard.outcomes[HandshakeOutcome::OutOfOrder as usize].add(1);
                } else {
                    self.shard.outcomes[HandshakeOutcome::Measured as usize].add(1);
                    self.record(client, server, synack - syn, ack - synack, tables);
                }
            }
        }
    }

    /// Files a measured handshake: per range of each local host in one,
    /// and per peer AS for the external leg.
    fn record(
        &mut self,
        client: &[u8],
        server: &[u8],
        server_leg: u64,
        client_leg: u64,
        tables: &Arc<Tables>,
    ) {
        let c = Host::of(client);
        let s = Host::of(server);
        let (c_local, s_local) = (c.is_local(tables), s.is_local(tables));
        // (range, own leg, other leg when the other host is remote)
        let mut by_range: [Option<(usize, u64, Option<u64>)>; 2] = [None, None];
        for (slot, (host, local, own, other, other_local)) in by_range.iter_mut().zip([
            (c, c_local, client_leg, server_leg, s_local),
            (s, s_local, server_leg, client_leg, c_local),
        ]) {
            if local {
                *slot = host
                    .range(tables)
                    .map(|r| (r, own, (!other_local).then_some(other)));
            }
        }
        let mut by_as = None;
        if c_local != s_local {
            let (remote, leg) = if c_local {
                (s, server_leg)
            } else {
                (c, client_leg)
            };
            if let Some(peers) = tables.peers.as_ref().filter(|p| p.as_table.is_some()) {
                let asn = match remote {
                    Host::V4(a) => peers.asn4(a),
                    Host::V6(a) => peers.asn6(a),
                };
                by_as = Some((asn, leg));
            }
        }
        if by_range.iter().all(Option::is_none) && by_as.is_none() {
            return;
        }
        self.refresh_keys(tables);
        let Some((_, keys)) = &self.keys else { return };
        let mut h = self.shard.hists.lock().unwrap_or_else(|p| p.into_inner());
        for (range, own, other) in by_range.into_iter().flatten() {
            let Some(key) = keys.get(range) else { continue };
            let at = Arc::as_ptr(key) as *const u8 as usize;
            let (_, legs) = h
                .ranges
                .entry(at)
                .or_insert_with(|| (key.clone(), Default::default()));
            legs[Leg::Internal as usize].add(own);
            if let Some(other) = other {
                legs[Leg::External as usize].add(other);
            }
        }
        if let Some((asn, leg)) = by_as {
            let asn = if h.ases.len() >= MAX_AS_HISTS && !h.ases.contains_key(&asn) {
                None
            } else {
                asn
            };
            h.ases.entry(asn).or_default().add(leg);
        }
    }

    /// The range labels of `tables`' generation (built once per generation).
    fn refresh_keys(&mut self, tables: &Arc<Tables>) {
        if matches!(&self.keys, Some((t, _)) if Arc::ptr_eq(t, tables)) {
            return;
        }
        let keys = tables
            .ranges
            .iter()
            .map(|r| {
                tables
                    .range_labels(r)
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<Vec<_>>()
                    .into()
            })
            .collect();
        self.keys = Some((tables.clone(), keys));
    }
}

/// An address of a handshake, as the tables look it up.
#[derive(Clone, Copy)]
enum Host {
    V4(u32),
    V6(u128),
}

impl Host {
    fn of(b: &[u8]) -> Host {
        match b.len() {
            4 => Host::V4(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
            _ => {
                let mut a = [0u8; 16];
                a.copy_from_slice(&b[..16]);
                Host::V6(u128::from_be_bytes(a))
            }
        }
    }

    fn is_local(self, t: &Tables) -> bool {
        match self {
            Host::V4(a) => t.is_local4(a),
            Host::V6(a) => t.is_local6(a),
        }
    }

    /// Index of the configured range holding the host.
    fn range(self, t: &Tables) -> Option<usize> {
        let slot = match self {
            Host::V4(a) => t.host4(a),
            Host::V6(a) => t.host6(a),
        }?;
        let i = t.ranges.partition_point(|r| r.base as usize <= slot);
        i.checked_sub(1)
    }
}

/// The worker's clock, for backends without frame times (AF_XDP).
fn wall_clock_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_take_their_upper_bound() {
        let mut h = Hist::default();
        for ns in [1, 100_000, 100_001, 4_000_000_000, 4_000_000_001] {
            h.add(ns);
        }
        assert_eq!(h.buckets[0], 2);
        assert_eq!(h.buckets[1], 1);
        assert_eq!(h.buckets[BUCKETS_NS.len() - 1], 1);
        assert_eq!(h.buckets[BUCKETS_NS.len()], 1);
        assert_eq!(h.count(), 5);
    }
}

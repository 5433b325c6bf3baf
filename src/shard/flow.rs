//! Interface counters of a flow-fed shard: one entry per (exporter address,
//! ifIndex), each with its `interface` label (`<exporter name>:<ifname or
//! ifIndex>`) and packets and bytes by direction and protocol slot.
//!
//! A captured frame's interface is its shard's; a flow record's is the
//! router's interface it names (input for `in`, output for `out`), so a
//! collector shard keeps this table, which the scrape renders into the same
//! `xdpacct_interface_*` and `xdpacct_protocol_*` families.
//!
//! Fixed capacity, open addressing, written by the shard's worker alone.
//! Allocates only for a new entry's label (at most `capacity` of them);
//! entries beyond the capacity are counted in one `other` entry. No unsafe.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::OnceLock;

use super::counter::{ByDirection, Count, PacketsBytes};
use super::PROTO_SLOTS;

/// Packets and bytes by direction, then protocol slot.
pub type ProtoCounters = ByDirection<[PacketsBytes; PROTO_SLOTS]>;

/// The `interface` label of the entry that takes what does not fit.
pub const OVERFLOW_LABEL: &str = "other";

#[derive(Debug)]
struct Key {
    exporter: u128,
    ifindex: u32,
    label: Box<str>,
}

/// Per (exporter, ifIndex) counters.
#[derive(Debug)]
pub struct FlowInterfaces {
    keys: Box<[OnceLock<Key>]>,
    counts: Box<[ProtoCounters]>,
    overflow: ProtoCounters,
    used: AtomicU32,
    capacity: usize,
}

impl FlowInterfaces {
    /// Room for `capacity` interfaces (the table has twice as many slots).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let slots = (capacity * 2).next_power_of_two();
        FlowInterfaces {
            keys: (0..slots).map(|_| OnceLock::new()).collect(),
            counts: (0..slots).map(|_| Default::default()).collect(),
            overflow: Default::default(),
            used: AtomicU32::new(0),
            capacity,
        }
    }

    #[inline]
    fn home(&self, exporter: u128, ifindex: u32) -> usize {
        let h = (exporter as u64) ^ ((exporter >> 64) as u64) ^ (u64::from(ifindex) << 17);
        (h.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize & (self.keys.len() - 1)
    }

    /// The counters of (`exporter`, `ifindex`); `label` names a new entry.
    #[inline]
    pub fn entry(
        &self,
        exporter: u128,
        ifindex: u32,
        label: impl FnOnce() -> String,
    ) -> &ProtoCounters {
        let mask = self.keys.len() - 1;
        let mut i = self.home(exporter, ifindex);
        loop {
            match self.keys[i].get() {
                Some(k) if k.exporter == exporter && k.ifindex == ifindex => {
                    return &self.counts[i];
                }
                Some(_) => i = (i + 1) & mask,
                None => {
                    let used = self.used.load(Relaxed);
                    if used as usize >= self.capacity {
                        return &self.overflow;
                    }
                    self.used.store(used + 1, Relaxed);
                    // Counters are zero until the key is published; a
                    // scraper that sees the key (OnceLock: acquire) reads
                    // zero-or-newer counts.
                    let _ = self.keys[i].set(Key {
                        exporter,
                        ifindex,
                        label: label().into_boxed_str(),
                    });
                    return &self.counts[i];
                }
            }
        }
    }

    /// (label, counts by direction and protocol slot) of every entry, then
    /// `other` when something overflowed.
    pub fn for_each(&self, mut f: impl FnMut(&str, ByDirection<[Count; PROTO_SLOTS]>)) {
        let read = |c: &ProtoCounters| c.map(|p| std::array::from_fn(|i| p[i].get()));
        for (k, c) in self.keys.iter().zip(self.counts.iter()) {
            if let Some(k) = k.get() {
                f(&k.label, read(c));
            }
        }
        let o = read(&self.overflow);
        if o.iter().any(|(_, p)| p.iter().any(|c| c.packets > 0)) {
            f(OVERFLOW_LABEL, o);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::Direction;

    #[test]
    fn entries_are_kept_apart_and_overflow_is_counted() {
        let t = FlowInterfaces::new(2);
        t.entry(1, 7, || "a:7".into())[Direction::In][0].add_n(3, 300);
        t.entry(1, 8, || "a:8".into())[Direction::Out][1].add_n(1, 10);
        t.entry(1, 7, || unreachable!("known"))[Direction::In][0].add_n(1, 100);
        t.entry(2, 7, || "b:7".into())[Direction::In][0].add_n(5, 5);
        let mut seen = Vec::new();
        t.for_each(|l, c| seen.push((l.to_string(), c[Direction::In][0], c[Direction::Out][1])));
        seen.sort_by(|a, b| a.0.cmp(&b.0));
        let c = |packets, bytes| Count { packets, bytes };
        assert_eq!(
            seen,
            [
                ("a:7".into(), c(4, 400), c(0, 0)),
                ("a:8".into(), c(0, 0), c(1, 10)),
                ("other".into(), c(5, 5), c(0, 0)),
            ]
        );
    }
}

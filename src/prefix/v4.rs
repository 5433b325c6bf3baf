//! IPv4 longest-prefix match, DIR-24-8.
//!
//! `tbl24` has one `u32` per /24 (2^24 entries, 64 MiB). An entry is either a
//! value slot (the value + 1, 0 meaning no route; see `SlotValues`) or, with
//! [`CHUNK`] set, the number of a 256-entry chunk in `tbl8` that resolves the
//! last octet for the prefixes longer than /24 inside that /24.
//!
//! A lookup is one read of `tbl24` and sometimes one of `tbl8` (values of
//! 2^30 - 1 and up: one more, of the small `values` table); it never
//! allocates and never panics. Building
//! allocates and paints the ranges of all prefixes, shortest first.

use super::{mask32, slot_value, PrefixError, SlotValues, MAX_PREFIXES};
use crate::memory::OutOfMemory;

/// Flag bit of a `tbl24` entry pointing at a `tbl8` chunk.
const CHUNK: u32 = 1 << 31;
const TBL24_LEN: usize = 1 << 24;

/// Collects IPv4 prefixes; [`Lpm4Builder::build`] turns them into an [`Lpm4`].
#[derive(Clone, Debug, Default)]
pub struct Lpm4Builder {
    /// (prefix with host bits cleared, length, value) in insertion order.
    entries: Vec<(u32, u8, u32)>,
}

impl Lpm4Builder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(n: usize) -> Self {
        Self {
            entries: Vec::with_capacity(n),
        }
    }

    /// Adds `prefix/len -> value`. Host bits beyond `len` are ignored
    /// (cleared). Inserting the same prefix again replaces its value when
    /// built (the last insertion wins); order otherwise does not matter.
    pub fn insert(&mut self, prefix: u32, len: u8, value: u32) -> Result<(), PrefixError> {
        if len > 32 {
            return Err(PrefixError::BadLength { len, max: 32 });
        }
        if self.entries.len() >= MAX_PREFIXES {
            return Err(PrefixError::TooMany { max: MAX_PREFIXES });
        }
        crate::memory::try_grow(&mut self.entries, 1)?;
        self.entries.push((prefix & mask32(len), len, value));
        Ok(())
    }

    /// Number of insertions so far (duplicates included).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Builds the lookup table. Takes well under a second for a full
    /// Internet table in release builds; allocates 64 MiB plus 1 KiB per /24
    /// holding a longer prefix.
    pub fn build(self) -> Lpm4 {
        self.try_build()
            .unwrap_or_else(|e| panic!("building an IPv4 table: {e}"))
    }

    /// [`build`](Self::build), or an error when the table does not fit in
    /// memory (every big allocation is fallible).
    pub fn try_build(self) -> Result<Lpm4, OutOfMemory> {
        let mut entries = self.entries;
        // The stable sort's buffer (half the entries) must fit too.
        crate::memory::headroom(std::mem::size_of_val(&entries[..]) / 2 + 1)?;
        // Shortest first so longer prefixes paint over the ones covering them;
        // the sort is stable, so for a repeated prefix the last insertion is
        // painted last and wins.
        entries.sort_by_key(|&(_, len, _)| len);

        let mut values = SlotValues::default();
        // Zero-filled (0 is "no route"), on huge pages: a lookup is one
        // random read in 64 MiB, which on 4 KiB pages also misses the TLB.
        let mut tbl24: Box<[u32; TBL24_LEN]> = crate::memory::try_filled(TBL24_LEN, 0u32)?
            .try_into()
            .unwrap_or_else(|_| unreachable!("vec has TBL24_LEN entries"));
        let mut tbl8: Vec<u32> = Vec::new();

        for &(prefix, len, value) in &entries {
            // The value itself (+ 1) or an index behind INDIRECT: below CHUNK.
            let slot = values.slot(value)?;
            if len <= 24 {
                let start = (prefix >> 8) as usize;
                let count = 1usize << (24 - len);
                tbl24[start..start + count].fill(slot);
            } else {
                let i24 = (prefix >> 8) as usize;
                let e = tbl24[i24];
                let chunk = if e & CHUNK != 0 {
                    (e & !CHUNK) as usize
                } else {
                    let c = tbl8.len() >> 8;
                    crate::memory::try_grow(&mut tbl8, 256)?;
                    tbl8.resize(tbl8.len() + 256, e);
                    tbl24[i24] = CHUNK | c as u32;
                    c
                };
                let start = (chunk << 8) | (prefix & 0xff) as usize;
                let count = 1usize << (32 - len);
                tbl8[start..start + count].fill(slot);
            }
        }
        // Count distinct prefixes (duplicates were painted over).
        entries.sort_unstable_by_key(|&(p, l, _)| (l, p));
        entries.dedup_by_key(|&mut (p, l, _)| (l, p));
        let distinct = entries.len();
        tbl8.shrink_to_fit();
        Ok(Lpm4 {
            tbl24,
            tbl8,
            values: values.finish(),
            prefixes: distinct,
        })
    }
}

/// A built IPv4 table: read-only, `Send + Sync`, lookups without allocation.
#[derive(Clone)]
pub struct Lpm4 {
    tbl24: Box<[u32; TBL24_LEN]>,
    tbl8: Vec<u32>,
    /// Values too large to store in an entry (see `SlotValues`).
    values: Vec<u32>,
    prefixes: usize,
}

impl Lpm4 {
    /// The value of the longest prefix containing `addr` (host byte order,
    /// `u32::from(Ipv4Addr)` / `u32::from_be_bytes`), or `None`.
    /// Fetches the first-level entry of `addr` into the cache ahead of a
    /// [`lookup`](Self::lookup).
    #[inline]
    pub fn prefetch(&self, addr: u32) {
        crate::memory::prefetch(&self.tbl24[(addr >> 8) as usize]);
    }

    #[inline]
    pub fn lookup(&self, addr: u32) -> Option<u32> {
        // (addr >> 8) < 2^24: no bounds check on the fixed-size array.
        let mut e = self.tbl24[(addr >> 8) as usize];
        if e & CHUNK != 0 {
            let i = (((e & !CHUNK) as usize) << 8) | (addr & 0xff) as usize;
            // In range by construction; `get` keeps lookup panic-free.
            e = self.tbl8.get(i).copied().unwrap_or(0);
        }
        slot_value(e, &self.values)
    }

    /// Looks up `addrs[i]` into `out[i]` for every `i` below the shorter
    /// length (the same as calling [`Self::lookup`] in a loop, which already
    /// overlaps the one or two reads of independent lookups). No allocation.
    pub fn lookup_batch(&self, addrs: &[u32], out: &mut [Option<u32>]) {
        for (a, o) in addrs.iter().zip(out.iter_mut()) {
            *o = self.lookup(*a);
        }
    }

    /// Number of distinct prefixes in the table.
    pub fn len(&self) -> usize {
        self.prefixes
    }

    pub fn is_empty(&self) -> bool {
        self.prefixes == 0
    }

    /// Number of 256-entry second-level chunks (one per /24 that holds a
    /// prefix longer than /24).
    pub fn chunks(&self) -> usize {
        self.tbl8.len() >> 8
    }

    /// Heap bytes held by the table (the 64 MiB first level counted whole,
    /// although pages never written may not be resident).
    pub fn memory_bytes(&self) -> usize {
        TBL24_LEN * 4 + self.tbl8.capacity() * 4 + self.values.capacity() * 4
    }
}

impl std::fmt::Debug for Lpm4 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lpm4")
            .field("prefixes", &self.prefixes)
            .field("chunks", &self.chunks())
            .field("values", &self.values.len())
            .field("memory_bytes", &self.memory_bytes())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prefix::synth::{self, Naive4, SplitMix64};
    use std::net::Ipv4Addr;

    fn ip(s: &str) -> u32 {
        u32::from(s.parse::<Ipv4Addr>().unwrap())
    }

    fn table(routes: &[(&str, u8, u32)]) -> Lpm4 {
        let mut b = Lpm4Builder::new();
        for &(p, l, v) in routes {
            b.insert(ip(p), l, v).unwrap();
        }
        b.build()
    }

    #[test]
    fn empty_table_has_no_routes() {
        let t = Lpm4Builder::new().build();
        assert_eq!(t.lookup(0), None);
        assert_eq!(t.lookup(u32::MAX), None);
        assert!(t.is_empty());
    }

    #[test]
    fn longest_prefix_wins() {
        let t = table(&[
            ("10.0.0.0", 8, 1),
            ("10.1.0.0", 16, 2),
            ("10.1.2.0", 24, 3),
            ("10.1.2.128", 25, 4),
            ("10.1.2.130", 32, 5),
            ("0.0.0.0", 0, 9),
        ]);
        assert_eq!(t.lookup(ip("10.200.0.1")), Some(1));
        assert_eq!(t.lookup(ip("10.1.3.1")), Some(2));
        assert_eq!(t.lookup(ip("10.1.2.1")), Some(3));
        assert_eq!(t.lookup(ip("10.1.2.127")), Some(3));
        assert_eq!(t.lookup(ip("10.1.2.128")), Some(4));
        assert_eq!(t.lookup(ip("10.1.2.129")), Some(4));
        assert_eq!(t.lookup(ip("10.1.2.130")), Some(5));
        assert_eq!(t.lookup(ip("10.1.2.131")), Some(4));
        assert_eq!(t.lookup(ip("10.1.2.255")), Some(4));
        assert_eq!(t.lookup(ip("11.0.0.0")), Some(9));
        assert_eq!(t.lookup(ip("255.255.255.255")), Some(9));
        assert_eq!(t.len(), 6);
        assert_eq!(t.chunks(), 1);
    }

    #[test]
    fn insert_order_does_not_matter() {
        let routes = [
            ("10.1.2.130", 32, 5),
            ("10.1.2.128", 25, 4),
            ("10.1.0.0", 16, 2),
            ("10.0.0.0", 8, 1),
        ];
        let mut rev = routes;
        rev.reverse();
        let (a, b) = (table(&routes), table(&rev));
        for addr in [
            ip("10.1.2.130"),
            ip("10.1.2.129"),
            ip("10.1.2.1"),
            ip("10.1.9.1"),
            ip("10.9.9.9"),
            0,
        ] {
            assert_eq!(a.lookup(addr), b.lookup(addr));
        }
    }

    #[test]
    fn same_prefix_twice_last_wins() {
        let t = table(&[
            ("10.0.0.0", 8, 1),
            ("10.1.2.3", 32, 7),
            ("10.0.0.0", 8, 2),
            ("10.1.2.3", 32, 8),
        ]);
        assert_eq!(t.lookup(ip("10.0.0.1")), Some(2));
        assert_eq!(t.lookup(ip("10.1.2.3")), Some(8));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn host_bits_are_ignored_and_bad_length_refused() {
        let mut b = Lpm4Builder::new();
        b.insert(ip("10.1.2.3"), 8, 1).unwrap();
        assert_eq!(
            b.insert(0, 33, 1),
            Err(PrefixError::BadLength { len: 33, max: 32 })
        );
        let t = b.build();
        assert_eq!(t.lookup(ip("10.0.0.0")), Some(1));
    }

    #[test]
    fn full_u32_values_are_kept() {
        // Values use all 32 bits (4-byte private ASNs): they never collide with the chunk flag.
        let t = table(&[
            ("1.0.0.0", 24, u32::MAX),
            ("1.0.0.0", 25, 0),
            ("2.0.0.0", 8, 1 << 31),
            // Around the largest value stored in the entry itself.
            ("3.0.0.0", 8, (1 << 30) - 2),
            ("3.1.0.0", 16, (1 << 30) - 1),
            ("3.1.2.0", 24, 1 << 30),
            ("3.1.2.128", 25, (1 << 30) + 1),
        ]);
        assert_eq!(t.lookup(ip("1.0.0.200")), Some(u32::MAX));
        assert_eq!(t.lookup(ip("1.0.0.1")), Some(0));
        assert_eq!(t.lookup(ip("2.3.4.5")), Some(1 << 31));
        assert_eq!(t.lookup(ip("3.0.0.1")), Some((1 << 30) - 2));
        assert_eq!(t.lookup(ip("3.1.0.1")), Some((1 << 30) - 1));
        assert_eq!(t.lookup(ip("3.1.2.1")), Some(1 << 30));
        assert_eq!(t.lookup(ip("3.1.2.129")), Some((1 << 30) + 1));
        assert_eq!(t.lookup(ip("4.0.0.0")), None);
    }

    #[test]
    fn agrees_with_reference_on_random_tables() {
        let mut rng = SplitMix64::new(4);
        for round in 0..4 {
            let mut b = Lpm4Builder::new();
            let mut naive = Naive4::default();
            // Small address space so prefixes nest and collide a lot.
            for _ in 0..3000 {
                // Short prefixes paint millions of entries (slow in debug
                // builds): keep a few.
                let len = if rng.below(500) == 0 {
                    rng.below(8)
                } else {
                    8 + rng.below(25)
                } as u8;
                let p = 0x0a00_0000 | (rng.next_u32() & 0xffff);
                let v = rng.below(50) as u32;
                b.insert(p, len, v).unwrap();
                naive.insert(p, len, v);
            }
            let t = b.build();
            for _ in 0..100_000 {
                let a = if rng.below(10) == 0 {
                    rng.next_u32()
                } else {
                    0x0a00_0000 | (rng.next_u32() & 0xffff)
                };
                assert_eq!(
                    t.lookup(a),
                    naive.lookup(a),
                    "round {round} addr {}",
                    Ipv4Addr::from(a)
                );
            }
            let mut addrs = Vec::new();
            for (p, l, _) in naive.prefixes() {
                for a in synth::edges4(p, l) {
                    assert_eq!(
                        t.lookup(a),
                        naive.lookup(a),
                        "round {round} addr {}",
                        Ipv4Addr::from(a)
                    );
                    addrs.push(a);
                }
            }
            let mut out = vec![Some(0xa5a5_a5a5); addrs.len() + 1];
            t.lookup_batch(&addrs, &mut out);
            for (a, o) in addrs.iter().zip(&out) {
                assert_eq!(*o, t.lookup(*a));
            }
            assert_eq!(out[addrs.len()], Some(0xa5a5_a5a5), "wrote past the batch");
        }
    }
}

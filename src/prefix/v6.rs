//! IPv6 longest-prefix match: a poptrie-style compressed multibit trie
//! (Asai & Ohara, SIGCOMM 2015).
//!
//! The top [`ROOT_BITS`] bits index `root` directly (1 Mi entries, 4 MiB).
//! A root entry is a value slot (the value + 1, 0 meaning no route; see
//! `SlotValues`) or, with
//! [`NODE`] set, the index of a [`Node`]. Below the root every node consumes
//! 6 bits: bit `v` of `vector` says slot `v` continues in a child node (the
//! children of a node are contiguous from `base1`, child number = number of
//! set bits of `vector` up to `v`, minus one); otherwise the slot is a leaf,
//! and runs of equal leaves are stored once from `base0`, `leafvec` marking
//! where a run starts. Nodes are 24 bytes; a /48 takes at most 5 node reads.
//!
//! `lookup` never allocates and never panics. Building allocates: first a
//! sort of all prefixes, then the nodes, recursively (depth at most 18).

use super::{mask128, slot_value, PrefixError, SlotValues, MAX_PREFIXES};
use crate::memory::OutOfMemory;

/// Bits resolved by the direct-indexed first level. `128 - ROOT_BITS` must
/// be a multiple of [`STRIDE`] so that the last level ends at bit 128.
const ROOT_BITS: u32 = 20;
const STRIDE: u32 = 6;
const ROOT_LEN: usize = 1 << ROOT_BITS;
const _: () = assert!((128 - ROOT_BITS) % STRIDE == 0);
/// Lookups walked together by [`Lpm6::lookup_batch`].
pub const BATCH_LANES: usize = 32;
/// Flag bit of a root entry pointing at a node.
const NODE: u32 = 1 << 31;

#[derive(Clone, Copy, Debug, Default)]
struct Node {
    /// Bit v set: slot v descends into a child node.
    vector: u64,
    /// Bit v set: a new leaf run starts at slot v.
    leafvec: u64,
    /// Index in `leaves` of this node's first leaf.
    base0: u32,
    /// Index in `nodes` of this node's first child.
    base1: u32,
}

/// Collects IPv6 prefixes; [`Lpm6Builder::build`] turns them into an [`Lpm6`].
#[derive(Clone, Debug, Default)]
pub struct Lpm6Builder {
    /// (prefix with host bits cleared, length, value) in insertion order.
    entries: Vec<(u128, u8, u32)>,
}

impl Lpm6Builder {
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
    pub fn insert(&mut self, prefix: u128, len: u8, value: u32) -> Result<(), PrefixError> {
        if len > 128 {
            return Err(PrefixError::BadLength { len, max: 128 });
        }
        if self.entries.len() >= MAX_PREFIXES {
            return Err(PrefixError::TooMany { max: MAX_PREFIXES });
        }
        crate::memory::try_grow(&mut self.entries, 1)?;
        self.entries.push((prefix & mask128(len), len, value));
        Ok(())
    }

    /// Number of insertions so far (duplicates included).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Builds the lookup table.
    pub fn build(self) -> Lpm6 {
        self.try_build()
            .unwrap_or_else(|e| panic!("building an IPv6 table: {e}"))
    }

    /// [`build`](Self::build), or an error when the table does not fit in
    /// memory (every big allocation is fallible).
    pub fn try_build(self) -> Result<Lpm6, OutOfMemory> {
        let mut values = SlotValues::default();
        // Entries become (prefix, len, slot): the value + 1, or an index
        // behind INDIRECT (below NODE either way).
        let mut entries = self.entries;
        // The stable sort's buffer (half the entries) must fit too.
        crate::memory::headroom(std::mem::size_of_val(&entries[..]) / 2 + 1)?;
        for e in entries.iter_mut() {
            e.2 = values.slot(e.2)?;
        }
        // Address order, shorter first on ties: a prefix comes before every
        // prefix it contains, so painting in this order lets longer prefixes
        // overwrite shorter ones. Stable, so duplicates keep insertion order;
        // the last one's value is kept.
        entries.sort_by_key(|&(p, l, _)| (p, l));
        entries.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0 && later.1 == earlier.1;
            if same {
                earlier.2 = later.2;
            }
            same
        });

        let mut b = Build {
            root: crate::memory::try_filled(ROOT_LEN, 0u32)?
                .try_into()
                .unwrap_or_else(|_| unreachable!("vec has ROOT_LEN entries")),
            nodes: Vec::new(),
            leaves: Vec::new(),
        };
        let root_shift = 128 - ROOT_BITS;
        let mut i = 0;
        while i < entries.len() {
            let (p, l, slot) = entries[i];
            if l <= ROOT_BITS as u8 {
                let start = (p >> root_shift) as usize;
                let count = 1usize << (ROOT_BITS - u32::from(l));
                b.root[start..start + count].fill(slot);
                i += 1;
            } else {
                // All longer prefixes under this root slot are contiguous.
                let r = (p >> root_shift) as usize;
                let mut j = i + 1;
                while j < entries.len() && (entries[j].0 >> root_shift) as usize == r {
                    j += 1;
                }
                let default = b.root[r];
                let idx = b.nodes.len();
                crate::memory::try_grow(&mut b.nodes, 1)?;
                b.nodes.push(Node::default());
                b.fill(idx, &entries[i..j], ROOT_BITS, default)?;
                b.root[r] = NODE | idx as u32;
                i = j;
            }
        }
        // Lookups walk the nodes at random: keep them on huge pages.
        Ok(Lpm6 {
            root: b.root,
            nodes: crate::memory::try_copied(&b.nodes)?,
            leaves: crate::memory::try_copied(&b.leaves)?,
            values: values.finish(),
            prefixes: entries.len(),
        })
    }
}

struct Build {
    root: Box<[u32; ROOT_LEN]>,
    nodes: Vec<Node>,
    leaves: Vec<u32>,
}

impl Build {
    /// Fills node `idx` covering the addresses whose top `base` bits are
    /// those of every entry in `group`. `group` is sorted by (prefix, len),
    /// every entry is longer than `base`, and `default` is the slot of the
    /// longest shorter prefix covering the node.
    fn fill(
        &mut self,
        idx: usize,
        group: &[(u128, u8, u32)],
        base: u32,
        default: u32,
    ) -> Result<(), OutOfMemory> {
        let shift = 128 - base - STRIDE;
        let end = (base + STRIDE) as u8;
        let chunk = |p: u128| ((p >> shift) & 63) as usize;

        let mut slots = [default; 64];
        // (slot, range in group) of each child, in slot order.
        let mut children: [(u8, u32, u32); 64] = [(0, 0, 0); 64];
        let mut n_children = 0;
        let mut vector = 0u64;
        let mut i = 0;
        while i < group.len() {
            let (p, l, slot) = group[i];
            let c = chunk(p);
            if l <= end {
                // Ends in this node: paint its slots (sorted order paints
                // containing prefixes first).
                let count = 1usize << (end - l);
                slots[c..c + count].fill(slot);
                i += 1;
            } else {
                let mut j = i + 1;
                while j < group.len() && chunk(group[j].0) == c {
                    j += 1;
                }
                children[n_children] = (c as u8, i as u32, j as u32);
                n_children += 1;
                vector |= 1 << c;
                i = j;
            }
        }

        let base0 = self.leaves.len();
        let mut leafvec = 0u64;
        let mut prev: Option<u32> = None;
        for (v, &s) in slots.iter().enumerate() {
            if vector & (1 << v) == 0 && prev != Some(s) {
                leafvec |= 1 << v;
                crate::memory::try_grow(&mut self.leaves, 1)?;
                self.leaves.push(s);
                prev = Some(s);
            }
        }
        let base1 = self.nodes.len();
        crate::memory::try_grow(&mut self.nodes, n_children)?;
        self.nodes.resize(base1 + n_children, Node::default());
        self.nodes[idx] = Node {
            vector,
            leafvec,
            base0: base0 as u32,
            base1: base1 as u32,
        };
        for (k, &(c, from, to)) in children[..n_children].iter().enumerate() {
            // A child's group: drop the entries that end in this node (they
            // sort first within the slot and were painted above).
            let sub = &group[from as usize..to as usize];
            let first_long = sub.iter().position(|e| e.1 > end).unwrap_or(sub.len());
            self.fill(
                base1 + k,
                &sub[first_long..],
                base + STRIDE,
                slots[c as usize],
            )?;
        }
        Ok(())
    }
}

/// A built IPv6 table: read-only, `Send + Sync`, lookups without allocation.
#[derive(Clone)]
pub struct Lpm6 {
    root: Box<[u32; ROOT_LEN]>,
    nodes: Vec<Node>,
    leaves: Vec<u32>,
    /// Values too large to store in an entry (see `SlotValues`).
    values: Vec<u32>,
    prefixes: usize,
}

impl Lpm6 {
    /// Fetches the root entry of `addr` into the cache ahead of a
    /// [`lookup`](Self::lookup) (deeper levels depend on it).
    #[inline]
    pub fn prefetch(&self, addr: u128) {
        crate::memory::prefetch(&self.root[(addr >> (128 - ROOT_BITS)) as usize]);
    }

    /// The value of the longest prefix containing `addr` (host byte order,
    /// `u128::from(Ipv6Addr)` / `u128::from_be_bytes`), or `None`.
    #[inline]
    pub fn lookup(&self, addr: u128) -> Option<u32> {
        // addr >> 108 < 2^20: no bounds check on the fixed-size array.
        let mut e = self.root[(addr >> (128 - ROOT_BITS)) as usize];
        if e & NODE != 0 {
            let mut idx = (e & !NODE) as usize;
            let mut shift = 128 - ROOT_BITS - STRIDE;
            loop {
                let node = self.nodes.get(idx)?;
                let v = (addr.wrapping_shr(shift) & 63) as u32;
                let bit = 1u64 << v;
                let upto = bit | (bit - 1);
                if node.vector & bit != 0 {
                    // At least one bit set in vector & upto: no underflow.
                    idx = (node.base1 as usize + (node.vector & upto).count_ones() as usize)
                        .wrapping_sub(1);
                    // Nodes at the last level have no children, so shift
                    // never goes below 0 on a well-built table; wrapping keeps
                    // lookup panic-free regardless.
                    shift = shift.wrapping_sub(STRIDE);
                } else {
                    let i = (node.base0 as usize + (node.leafvec & upto).count_ones() as usize)
                        .wrapping_sub(1);
                    e = self.leaves.get(i).copied().unwrap_or(0);
                    break;
                }
            }
        }
        slot_value(e, &self.values)
    }

    /// Looks up `addrs[i]` into `out[i]` for every `i` below the shorter
    /// length; same answers as [`Self::lookup`], several times the
    /// throughput on a table bigger than the caches. Lookups run in groups
    /// of [`BATCH_LANES`] that walk the trie in lockstep, so their cache
    /// misses overlap instead of following one another (a lone lookup's
    /// next read depends on the last one). No allocation.
    pub fn lookup_batch(&self, addrs: &[u128], out: &mut [Option<u32>]) {
        let n = addrs.len().min(out.len());
        let (addrs, out) = (&addrs[..n], &mut out[..n]);
        let mut a = addrs.chunks_exact(BATCH_LANES);
        let mut o = out.chunks_exact_mut(BATCH_LANES);
        for (a, o) in (&mut a).zip(&mut o) {
            self.lookup_lanes(a, o);
        }
        // A short tail (or a whole batch shorter than the lanes: a worker's
        // batch of mixed traffic has a few dozen IPv6 frames) also walks
        // in lockstep, with fewer lanes.
        let (a, o) = (a.remainder(), o.into_remainder());
        match a.len() {
            0 => {}
            1 => o[0] = self.lookup(a[0]),
            _ => self.lookup_lanes(a, o),
        }
    }

    #[inline]
    fn lookup_lanes(&self, addrs: &[u128], out: &mut [Option<u32>]) {
        let mut e = [0u32; BATCH_LANES];
        let mut idx = [0usize; BATCH_LANES];
        let mut shift = [0u32; BATCH_LANES];
        // Bit l: lane l is inside the trie / has a leaf to read.
        let mut walking = 0u32;
        let mut leaf = 0u32;
        // Lanes past `addrs.len()` stay idle (not walking, no leaf).
        for l in 0..addrs.len().min(BATCH_LANES) {
            let a = addrs[l];
            e[l] = self.root[(a >> (128 - ROOT_BITS)) as usize];
            if e[l] & NODE != 0 {
                idx[l] = (e[l] & !NODE) as usize;
                shift[l] = 128 - ROOT_BITS - STRIDE;
                walking |= 1 << l;
            }
        }
        let mut nodes = [Node::default(); BATCH_LANES];
        while walking != 0 {
            // All reads of this level first (independent, so they overlap) ...
            for l in 0..BATCH_LANES {
                if walking & (1 << l) != 0 {
                    nodes[l] = self.nodes.get(idx[l]).copied().unwrap_or_default();
                }
            }
            // ... then one step down for each lane.
            for l in 0..BATCH_LANES {
                if walking & (1 << l) == 0 {
                    continue;
                }
                let node = &nodes[l];
                let a = addrs.get(l).copied().unwrap_or(0);
                let v = (a.wrapping_shr(shift[l]) & 63) as u32;
                let bit = 1u64 << v;
                let upto = bit | (bit - 1);
                if node.vector & bit != 0 {
                    idx[l] = (node.base1 as usize + (node.vector & upto).count_ones() as usize)
                        .wrapping_sub(1);
                    shift[l] = shift[l].wrapping_sub(STRIDE);
                } else {
                    idx[l] = (node.base0 as usize + (node.leafvec & upto).count_ones() as usize)
                        .wrapping_sub(1);
                    walking &= !(1 << l);
                    leaf |= 1 << l;
                }
            }
        }
        for l in 0..BATCH_LANES {
            if leaf & (1 << l) != 0 {
                e[l] = self.leaves.get(idx[l]).copied().unwrap_or(0);
            }
        }
        for (l, o) in out.iter_mut().enumerate().take(BATCH_LANES) {
            *o = slot_value(e[l], &self.values);
        }
    }

    /// Number of distinct prefixes in the table.
    pub fn len(&self) -> usize {
        self.prefixes
    }

    pub fn is_empty(&self) -> bool {
        self.prefixes == 0
    }

    /// Number of trie nodes below the root.
    pub fn nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Heap bytes held by the table.
    pub fn memory_bytes(&self) -> usize {
        ROOT_LEN * 4
            + self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.leaves.capacity() * 4
            + self.values.capacity() * 4
    }
}

impl std::fmt::Debug for Lpm6 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lpm6")
            .field("prefixes", &self.prefixes)
            .field("nodes", &self.nodes.len())
            .field("leaves", &self.leaves.len())
            .field("values", &self.values.len())
            .field("memory_bytes", &self.memory_bytes())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prefix::synth::{self, Naive6, SplitMix64};
    use std::net::Ipv6Addr;

    fn ip(s: &str) -> u128 {
        u128::from(s.parse::<Ipv6Addr>().unwrap())
    }

    fn table(routes: &[(&str, u8, u32)]) -> Lpm6 {
        let mut b = Lpm6Builder::new();
        for &(p, l, v) in routes {
            b.insert(ip(p), l, v).unwrap();
        }
        b.build()
    }

    #[test]
    fn empty_table_has_no_routes() {
        let t = Lpm6Builder::new().build();
        assert_eq!(t.lookup(0), None);
        assert_eq!(t.lookup(u128::MAX), None);
        assert!(t.is_empty());
    }

    #[test]
    fn longest_prefix_wins() {
        let t = table(&[
            ("2001:db8::", 32, 1),
            ("2001:db8:1::", 48, 2),
            ("2001:db8:1:2::", 64, 3),
            ("2001:db8:1:2::8", 125, 4),
            ("2001:db8:1:2::9", 128, 5),
            ("2000::", 3, 6),
            ("::", 0, 9),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 128, 10),
        ]);
        assert_eq!(t.lookup(ip("2001:db8:ffff::1")), Some(1));
        assert_eq!(t.lookup(ip("2001:db8:1:ffff::1")), Some(2));
        assert_eq!(t.lookup(ip("2001:db8:1:2::1")), Some(3));
        assert_eq!(t.lookup(ip("2001:db8:1:2::7")), Some(3));
        assert_eq!(t.lookup(ip("2001:db8:1:2::8")), Some(4));
        assert_eq!(t.lookup(ip("2001:db8:1:2::9")), Some(5));
        assert_eq!(t.lookup(ip("2001:db8:1:2::a")), Some(4));
        assert_eq!(t.lookup(ip("2001:db8:1:2::f")), Some(4));
        assert_eq!(t.lookup(ip("2001:db8:1:2::10")), Some(3));
        assert_eq!(t.lookup(ip("3fff::1")), Some(6));
        assert_eq!(t.lookup(ip("4000::1")), Some(9));
        assert_eq!(t.lookup(ip("::1")), Some(9));
        assert_eq!(t.lookup(u128::MAX), Some(10));
        assert_eq!(t.lookup(u128::MAX - 1), Some(9));
        assert_eq!(t.len(), 8);
    }

    #[test]
    fn same_prefix_twice_last_wins() {
        let t = table(&[
            ("2001:db8::", 32, 1),
            ("2001:db8::1", 128, 7),
            ("2001:db8::", 32, 2),
            ("2001:db8::1", 128, 8),
        ]);
        assert_eq!(t.lookup(ip("2001:db8::2")), Some(2));
        assert_eq!(t.lookup(ip("2001:db8::1")), Some(8));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn full_u32_values_are_kept() {
        // Stored in the entry up to 2^30 - 2, behind an index above.
        let t = table(&[
            ("2001:db8::", 32, u32::MAX),
            ("2001:db8::", 48, (1 << 30) - 2),
            ("2001:db8:0:1::", 64, (1 << 30) - 1),
            ("2001:db8:0:1::1", 128, 1 << 31),
            ("fe80::", 10, (1 << 30) - 1),
        ]);
        assert_eq!(t.lookup(ip("2001:db8:1::1")), Some(u32::MAX));
        assert_eq!(t.lookup(ip("2001:db8::1")), Some((1 << 30) - 2));
        assert_eq!(t.lookup(ip("2001:db8:0:1::2")), Some((1 << 30) - 1));
        assert_eq!(t.lookup(ip("2001:db8:0:1::1")), Some(1 << 31));
        assert_eq!(t.lookup(ip("fe80::1")), Some((1 << 30) - 1));
        assert_eq!(t.lookup(ip("2001:db9::")), None);
    }

    #[test]
    fn prefixes_around_2000_3_agree_with_reference() {
        // Prefixes around 2000::/3 (where a wider first level would start):
        // covering it (/0../2), inside it, next to it, ending on or next
        // to a level boundary, and host routes.
        let mut rng = SplitMix64::new(9);
        let mut b = Lpm6Builder::new();
        let mut naive = Naive6::default();
        let edges = [0u128, 1 << 125, (2 << 125) - 1, 2 << 125, u128::MAX];
        for k in 0..4000u32 {
            let base = edges[rng.below(edges.len() as u64) as usize];
            let r = rng.next_u128() >> rng.below(128);
            let a = if rng.below(2) == 0 {
                base.wrapping_add(r)
            } else {
                base.wrapping_sub(r)
            };
            let len = match rng.below(4) {
                0 => rng.below(4) as u8,
                1 => [17, 18, 19, 23, 24, 25, 30, 48][rng.below(8) as usize],
                2 => 120 + rng.below(9) as u8,
                _ => rng.below(129) as u8,
            };
            b.insert(a, len, k).unwrap();
            naive.insert(a, len, k);
        }
        let t = b.build();
        for (p, l, _) in naive.prefixes() {
            for a in synth::edges6(p, l) {
                assert_eq!(t.lookup(a), naive.lookup(a), "addr {}", Ipv6Addr::from(a));
                let mut out = [None; 3];
                t.lookup_batch(&[a, a ^ 1, !a], &mut out);
                assert_eq!(out, [t.lookup(a), t.lookup(a ^ 1), t.lookup(!a)]);
            }
        }
    }

    #[test]
    fn host_bits_are_ignored_and_bad_length_refused() {
        let mut b = Lpm6Builder::new();
        b.insert(ip("2001:db8::1"), 32, 1).unwrap();
        assert_eq!(
            b.insert(0, 129, 1),
            Err(PrefixError::BadLength { len: 129, max: 128 })
        );
        assert_eq!(b.build().lookup(ip("2001:db8::")), Some(1));
    }

    #[test]
    fn agrees_with_reference_on_random_tables() {
        let mut rng = SplitMix64::new(6);
        for round in 0..4 {
            let mut b = Lpm6Builder::new();
            let mut naive = Naive6::default();
            let top = ip("2001:db8::");
            // Prefixes share their top 32 bits (and sometimes more) so they
            // nest deeply; lengths over the whole 0..=128 range.
            for _ in 0..3000 {
                let len = rng.below(129) as u8;
                let r = rng.next_u128();
                let p = match rng.below(3) {
                    0 => top | (r >> 32),
                    1 => top | (r >> 96),
                    _ => top | (r >> 120),
                };
                let v = rng.below(50) as u32;
                b.insert(p, len, v).unwrap();
                naive.insert(p, len, v);
            }
            let t = b.build();
            for _ in 0..50_000 {
                let r = rng.next_u128();
                let a = match rng.below(4) {
                    0 => r,
                    1 => top | (r >> 32),
                    2 => top | (r >> 96),
                    _ => top | (r >> 120),
                };
                assert_eq!(
                    t.lookup(a),
                    naive.lookup(a),
                    "round {round} addr {}",
                    Ipv6Addr::from(a)
                );
            }
            let mut addrs = Vec::new();
            for (p, l, _) in naive.prefixes() {
                for a in synth::edges6(p, l) {
                    assert_eq!(
                        t.lookup(a),
                        naive.lookup(a),
                        "round {round} addr {}",
                        Ipv6Addr::from(a)
                    );
                    addrs.push(a);
                }
            }
            // Batches of every length around the lane count agree with single lookups.
            let mut out = vec![Some(0xa5a5_a5a5); addrs.len()];
            t.lookup_batch(&addrs, &mut out);
            for (a, o) in addrs.iter().zip(&out) {
                assert_eq!(*o, t.lookup(*a), "batch addr {}", Ipv6Addr::from(*a));
            }
            for n in 0..=2 * BATCH_LANES + 1 {
                let mut out = vec![Some(0xa5a5_a5a5); n + 1];
                t.lookup_batch(&addrs[..n], &mut out);
                for (a, o) in addrs[..n].iter().zip(&out) {
                    assert_eq!(*o, t.lookup(*a));
                }
                assert_eq!(out[n], Some(0xa5a5_a5a5), "wrote past the batch");
            }
        }
    }
}

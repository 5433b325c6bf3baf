//! Property tests of the longest-prefix tables against a naive longest
//! prefix match written here (a linear scan, the last insertion of a
//! prefix winning): random tables whose prefixes nest (they share a few
//! random bases), looked up one at a time and in batches, at random
//! addresses and at every prefix's edges.

use proptest::prelude::*;
use xdpacct::prefix::{Lpm4Builder, Lpm6Builder};

fn mask6(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - len as u32)
    }
}

fn mask4(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len as u32)
    }
}

/// The value of the longest prefix of `table` holding `a` (last one wins).
fn naive6(table: &[(u128, u8, u32)], a: u128) -> Option<u32> {
    let mut best: Option<(u8, u32)> = None;
    for &(p, l, v) in table {
        if a & mask6(l) == p & mask6(l) && best.map_or(true, |(bl, _)| l >= bl) {
            best = Some((l, v));
        }
    }
    best.map(|b| b.1)
}

fn naive4(table: &[(u32, u8, u32)], a: u32) -> Option<u32> {
    let mut best: Option<(u8, u32)> = None;
    for &(p, l, v) in table {
        if a & mask4(l) == p & mask4(l) && best.map_or(true, |(bl, _)| l >= bl) {
            best = Some((l, v));
        }
    }
    best.map(|b| b.1)
}

/// A prefix near one of `bases`: the base with some low bits replaced, so
/// that prefixes nest and share trie paths.
fn v6_entry() -> impl Strategy<Value = (usize, u128, u8, u32)> {
    (
        0usize..4,
        any::<u128>(),
        prop_oneof![
            // The lengths of the DFZ and the strides' edges, and anything.
            Just(48u8),
            Just(32u8),
            Just(44u8),
            Just(40u8),
            Just(36u8),
            Just(29u8),
            0u8..=128,
        ],
        0u32..40,
    )
}

fn edges6(p: u128, l: u8) -> [u128; 5] {
    let last = p | !mask6(l);
    [
        p,
        last,
        p.wrapping_sub(1),
        last.wrapping_add(1),
        p | (!mask6(l) >> 1),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn lpm6_agrees_with_a_naive_scan(
        bases in proptest::collection::vec(any::<u128>(), 4),
        spread in proptest::collection::vec(8u32..120, 4),
        entries in proptest::collection::vec(v6_entry(), 0..200),
        probes in proptest::collection::vec((0usize..4, any::<u128>()), 0..200),
    ) {
        // Base b keeps its top (128 - spread[b]) bits; the rest is random.
        let near = |b: usize, r: u128| {
            let keep = mask6(128 - spread[b] as u8);
            (bases[b] & keep) | (r & !keep)
        };
        let table: Vec<(u128, u8, u32)> = entries
            .iter()
            .map(|&(b, r, l, v)| (near(b, r) & mask6(l), l, v))
            .collect();
        let mut builder = Lpm6Builder::new();
        for &(p, l, v) in &table {
            builder.insert(p, l, v).unwrap();
        }
        let t = builder.build();
        let mut addrs: Vec<u128> = probes.iter().map(|&(b, r)| near(b, r)).collect();
        addrs.extend(probes.iter().map(|&(_, r)| r));
        for &(p, l, _) in &table {
            addrs.extend(edges6(p, l));
        }
        for &a in &addrs {
            prop_assert_eq!(t.lookup(a), naive6(&table, a), "addr {:#x}", a);
        }
        let mut out = vec![Some(u32::MAX); addrs.len()];
        t.lookup_batch(&addrs, &mut out);
        for (&a, &o) in addrs.iter().zip(&out) {
            prop_assert_eq!(o, naive6(&table, a), "batch addr {:#x}", a);
        }
    }
}

proptest! {
    // Each IPv4 table is 64 MiB (DIR-24-8): fewer cases.
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn lpm4_agrees_with_a_naive_scan(
        base in any::<u32>(),
        entries in proptest::collection::vec((any::<u32>(), 0u8..=32, 0u32..40, any::<bool>()), 0..200),
        probes in proptest::collection::vec(any::<u32>(), 0..200),
    ) {
        let table: Vec<(u32, u8, u32)> = entries
            .iter()
            .map(|&(r, l, v, near)| {
                let a = if near { (base & 0xffff_0000) | (r & 0xffff) } else { r };
                (a & mask4(l), l, v)
            })
            .collect();
        let mut builder = Lpm4Builder::new();
        for &(p, l, v) in &table {
            builder.insert(p, l, v).unwrap();
        }
        let t = builder.build();
        let mut addrs = probes.clone();
        addrs.extend(probes.iter().map(|&r| (base & 0xffff_0000) | (r & 0xffff)));
        for &(p, l, _) in &table {
            let last = p | !mask4(l);
            addrs.extend([p, last, p.wrapping_sub(1), last.wrapping_add(1)]);
        }
        for &a in &addrs {
            prop_assert_eq!(t.lookup(a), naive4(&table, a), "addr {:#x}", a);
        }
    }
}

//! Bounded cardinality: the busiest keys get their own series, the rest are
//! summed into one `other` series, and every series stays monotonic.
//!
//! A key that gets a series keeps it until restart. Its count at promotion
//! (its baseline) stays in `other`, so `other` never goes down; at the first
//! scrape nothing has been shown yet and baselines are zero.

use std::collections::HashMap;
use std::hash::Hash;

use crate::shard::{Count, InOut};

/// Per key: packets and bytes, in and out.
pub type Counts = InOut<Count>;

#[derive(Debug, Default)]
pub struct Fold<K> {
    chosen: HashMap<K, Counts>,
    scraped: bool,
}

/// One scrape's view: the shown series, `other`, and how many keys were folded.
#[derive(Debug)]
pub struct Folded<K> {
    pub shown: Vec<(K, Counts)>,
    pub other: Counts,
    pub folded: usize,
}

impl<K: Copy + Eq + Hash + Ord> Fold<K> {
    /// True when `k` has its own series (it keeps it until restart).
    pub fn is_chosen(&self, k: &K) -> bool {
        self.chosen.contains_key(k)
    }

    pub fn apply(&mut self, totals: &HashMap<K, Counts>, max: usize) -> Folded<K> {
        if self.chosen.len() < max {
            let mut candidates: Vec<(&K, &Counts)> = totals
                .iter()
                .filter(|(k, _)| !self.chosen.contains_key(*k))
                .collect();
            // Busiest first (bytes both ways), ties by key for a stable choice.
            candidates.sort_by(|a, b| {
                (b.1.total().bytes)
                    .cmp(&a.1.total().bytes)
                    .then(a.0.cmp(b.0))
            });
            for (k, v) in candidates.into_iter().take(max - self.chosen.len()) {
                self.chosen
                    .insert(*k, if self.scraped { *v } else { Counts::default() });
            }
        }
        self.scraped = true;
        let mut out = Folded {
            shown: Vec::new(),
            other: Counts::default(),
            folded: 0,
        };
        for (k, v) in totals {
            match self.chosen.get(k) {
                Some(base) => out.shown.push((*k, v.saturating_sub(base))),
                None => {
                    out.other += v;
                    out.folded += 1;
                }
            }
        }
        for base in self.chosen.values() {
            out.other += base;
        }
        out.shown.sort_by_key(|(k, _)| *k);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::Direction::In;

    /// One inbound frame of `bytes` bytes.
    fn inbound(bytes: u64) -> Counts {
        let mut c = Counts::default();
        c[In] = Count { packets: 1, bytes };
        c
    }

    fn totals(v: &[(u32, u64)]) -> HashMap<u32, Counts> {
        v.iter().map(|&(k, b)| (k, inbound(b))).collect()
    }

    fn sum(f: &Folded<u32>) -> u64 {
        f.shown.iter().map(|(_, c)| c[In].bytes).sum::<u64>() + f.other[In].bytes
    }

    #[test]
    fn busiest_keep_series_rest_fold_into_other() {
        let mut fold = Fold::default();
        let f = fold.apply(&totals(&[(1, 10), (2, 30), (3, 20), (4, 5)]), 2);
        assert_eq!(f.shown.iter().map(|s| s.0).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(f.other[In].bytes, 15);
        assert_eq!(f.folded, 2);
        assert_eq!(sum(&f), 65);
    }

    #[test]
    fn promotion_later_keeps_other_monotonic_and_sum_exact() {
        let mut fold = Fold::default();
        let f1 = fold.apply(&totals(&[(1, 100)]), 2);
        assert_eq!(f1.shown, vec![(1, inbound(100))]);
        // Key 2 appears after the first scrape: promoted with its baseline.
        let f2 = fold.apply(&totals(&[(1, 100), (2, 50)]), 2);
        assert_eq!(f2.other[In].bytes, 50, "the baseline stays in other");
        let f3 = fold.apply(&totals(&[(1, 100), (2, 80), (3, 7)]), 2);
        assert_eq!(f3.shown.iter().find(|s| s.0 == 2).unwrap().1[In].bytes, 30);
        assert!(
            f3.other[In].bytes >= f2.other[In].bytes,
            "other never decreases"
        );
        assert_eq!(sum(&f3), 187);
        assert_eq!(f3.shown.len(), 2, "never more than max series");
    }
}

//! Bounded cardinality: the busiest keys get their own series, the rest are
//! summed into one `other` series, and every series stays monotonic.
//!
//! A key that gets a series keeps it until restart. Its count at promotion
//! (its baseline) stays in `other`, so `other` never goes down; at the first
//! scrape nothing has been shown yet and baselines are zero.

use std::collections::HashMap;
use std::hash::Hash;

/// Per key: [in packets, in bytes, out packets, out bytes].
pub type Counts = [u64; 4];

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
    pub fn apply(&mut self, totals: &HashMap<K, Counts>, max: usize) -> Folded<K> {
        if self.chosen.len() < max {
            let mut candidates: Vec<(&K, &Counts)> = totals
                .iter()
                .filter(|(k, _)| !self.chosen.contains_key(*k))
                .collect();
            // Busiest first (bytes both ways), ties by key for a stable choice.
            candidates.sort_by(|a, b| (b.1[1] + b.1[3]).cmp(&(a.1[1] + a.1[3])).then(a.0.cmp(b.0)));
            for (k, v) in candidates.into_iter().take(max - self.chosen.len()) {
                self.chosen
                    .insert(*k, if self.scraped { *v } else { [0; 4] });
            }
        }
        self.scraped = true;
        let mut out = Folded {
            shown: Vec::new(),
            other: [0; 4],
            folded: 0,
        };
        for (k, v) in totals {
            match self.chosen.get(k) {
                Some(base) => out.shown.push((*k, sub(v, base))),
                None => {
                    add(&mut out.other, v);
                    out.folded += 1;
                }
            }
        }
        for base in self.chosen.values() {
            add(&mut out.other, base);
        }
        out.shown.sort_by_key(|(k, _)| *k);
        out
    }
}

fn add(a: &mut Counts, b: &Counts) {
    for i in 0..4 {
        a[i] += b[i];
    }
}

fn sub(a: &Counts, b: &Counts) -> Counts {
    std::array::from_fn(|i| a[i].saturating_sub(b[i]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(v: &[(u32, u64)]) -> HashMap<u32, Counts> {
        v.iter().map(|&(k, b)| (k, [1, b, 0, 0])).collect()
    }

    fn sum(f: &Folded<u32>) -> u64 {
        f.shown.iter().map(|(_, c)| c[1]).sum::<u64>() + f.other[1]
    }

    #[test]
    fn busiest_keep_series_rest_fold_into_other() {
        let mut fold = Fold::default();
        let f = fold.apply(&totals(&[(1, 10), (2, 30), (3, 20), (4, 5)]), 2);
        assert_eq!(f.shown.iter().map(|s| s.0).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(f.other[1], 15);
        assert_eq!(f.folded, 2);
        assert_eq!(sum(&f), 65);
    }

    #[test]
    fn promotion_later_keeps_other_monotonic_and_sum_exact() {
        let mut fold = Fold::default();
        let f1 = fold.apply(&totals(&[(1, 100)]), 2);
        assert_eq!(f1.shown, vec![(1, [1, 100, 0, 0])]);
        // Key 2 appears after the first scrape: promoted with its baseline.
        let f2 = fold.apply(&totals(&[(1, 100), (2, 50)]), 2);
        assert_eq!(f2.other[1], 50, "the baseline stays in other");
        let f3 = fold.apply(&totals(&[(1, 100), (2, 80), (3, 7)]), 2);
        assert_eq!(f3.shown.iter().find(|s| s.0 == 2).unwrap().1[1], 30);
        assert!(f3.other[1] >= f2.other[1], "other never decreases");
        assert_eq!(sum(&f3), 187);
        assert_eq!(f3.shown.len(), 2, "never more than max series");
    }
}

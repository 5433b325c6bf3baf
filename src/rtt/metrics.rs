//! The RTT families as a `prometheus` [`Collector`]: the workers' histograms
//! summed at scrape, the AS histogram folded like the `xdpacct_as_*`
//! series, the outcome counters and the pending gauge. Allocates per
//! scrape; never blocks a worker for longer than a map merge.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Bucket, Histogram, LabelPair, Metric, MetricFamily};

use super::table::HandshakeTable;
use super::{HandshakeOutcome, Hist, Leg, RangeKey, RttShard, BUCKETS_NS};
use crate::metrics::catalogue::{self as cat, counter, gauge, label, Family};
use crate::metrics::EngineCollector;

const FAMILIES: [&Family; 4] = [
    &cat::TCP_HANDSHAKE_RTT,
    &cat::AS_TCP_RTT,
    &cat::TCP_HANDSHAKES,
    &cat::TCP_HANDSHAKES_PENDING,
];

/// Register after the engine's collector (it decides which ASes have
/// their own series).
pub struct RttCollector {
    shards: Vec<Arc<RttShard>>,
    table: Arc<HandshakeTable>,
    engine: Arc<EngineCollector>,
    /// Per AS with its own series: its histogram when it got the series
    /// (kept in `other`, so that `other` never goes down); and whether a
    /// scrape happened (at the first one baselines are zero).
    promoted: Mutex<(bool, HashMap<u32, Hist>)>,
    descs: Vec<Desc>,
}

impl RttCollector {
    pub fn new(
        shards: Vec<Arc<RttShard>>,
        table: Arc<HandshakeTable>,
        engine: Arc<EngineCollector>,
    ) -> Self {
        RttCollector {
            shards,
            table,
            engine,
            promoted: Mutex::default(),
            descs: FAMILIES.iter().map(|f| f.desc()).collect(),
        }
    }
}

/// A histogram sample in seconds.
pub fn seconds_histogram(labels: Vec<LabelPair>, h: &Hist) -> Metric {
    let mut cumulative = 0;
    let mut buckets = Vec::with_capacity(BUCKETS_NS.len());
    for (ub, n) in BUCKETS_NS.iter().zip(h.buckets) {
        cumulative += n;
        let mut b = Bucket::default();
        b.set_upper_bound(*ub as f64 / 1e9);
        b.set_cumulative_count(cumulative);
        buckets.push(b);
    }
    let mut p = Histogram::default();
    p.set_bucket(buckets);
    p.set_sample_count(h.count());
    p.set_sample_sum(h.sum_ns as f64 / 1e9);
    let mut m = Metric::from_label(labels);
    m.set_histogram(p);
    m
}

impl Collector for RttCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut ranges: BTreeMap<RangeKey, [Hist; 2]> = BTreeMap::new();
        let mut ases: HashMap<Option<u32>, Hist> = HashMap::new();
        let mut outcomes = [0u64; 4];
        for s in &self.shards {
            for (i, c) in s.outcomes.iter().enumerate() {
                outcomes[i] += c.get();
            }
            let h = s.hists.lock().unwrap_or_else(|p| p.into_inner());
            for (k, legs) in h.ranges.values() {
                let e = ranges.entry(k.clone()).or_default();
                e[0].merge(&legs[0]);
                e[1].merge(&legs[1]);
            }
            for (k, hist) in h.ases.iter() {
                ases.entry(*k).or_default().merge(hist);
            }
        }

        let mut by_range = Vec::new();
        for (k, legs) in &ranges {
            for leg in Leg::ALL {
                let h = &legs[leg as usize];
                if h.count() == 0 {
                    continue;
                }
                let mut labels = vec![label("leg", leg.as_str())];
                labels.extend(k.iter().map(|(n, v)| label(n, v.as_str())));
                by_range.push(seconds_histogram(labels, h));
            }
        }

        let mut known: Vec<u32> = ases.keys().flatten().copied().collect();
        known.sort_unstable();
        let shown = self.engine.as_shown(&known);
        let tables = self
            .engine
            .shards()
            .first()
            .map(|s| s.hosts().tables.clone());
        let name = |asn: u32| -> String {
            tables
                .as_ref()
                .and_then(|t| t.peers.as_ref())
                .map_or_else(String::new, |p| p.as_name(asn).to_string())
        };
        let mut other = ases.get(&None).copied().unwrap_or_default();
        let mut by_as = Vec::new();
        let mut promoted = self.promoted.lock().unwrap_or_else(|p| p.into_inner());
        let (scraped, baselines) = &mut *promoted;
        for (asn, show) in known.iter().zip(shown) {
            let h = &ases[&Some(*asn)];
            if show {
                let base = *baselines.entry(*asn).or_insert_with(|| {
                    if *scraped {
                        *h
                    } else {
                        Hist::default()
                    }
                });
                other.merge(&base);
                by_as.push(seconds_histogram(
                    vec![
                        label("peer_as", asn.to_string()),
                        label("peer_as_name", name(*asn)),
                    ],
                    &h.minus(&base),
                ));
            } else {
                other.merge(h);
            }
        }
        *scraped = true;
        drop(promoted);
        if other.count() > 0 {
            by_as.push(seconds_histogram(
                vec![label("peer_as", "other"), label("peer_as_name", "")],
                &other,
            ));
        }

        let mut outcome = Vec::new();
        for o in HandshakeOutcome::ALL {
            outcome.push(counter(
                vec![label("outcome", o.as_str())],
                outcomes[o as usize],
            ));
        }
        outcome.push(counter(
            vec![label("outcome", "timed_out")],
            self.table.stats.timed_out.load(Relaxed),
        ));

        vec![
            cat::TCP_HANDSHAKE_RTT.family(by_range),
            cat::AS_TCP_RTT.family(by_as),
            cat::TCP_HANDSHAKES.family(outcome),
            cat::TCP_HANDSHAKES_PENDING.family(vec![gauge(vec![], self.table.pending() as f64)]),
        ]
    }
}

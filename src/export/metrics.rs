//! Export counters as a `prometheus` [`Collector`], read at scrape from the
//! shards' [`FlowStats`] and the exporter's [`ExporterStats`] (relaxed
//! loads; never blocks a writer). The families, and where each is counted,
//! are declared in [`crate::metrics::catalogue`] (`FLOW_*`). Allocates the
//! metric families per scrape.

use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;

use super::{ExporterStats, FlowStats};
use crate::metrics::catalogue::{self as cat, counter, gauge, label, Family};

/// Collector over the flow-export counters. Register it once with the
/// registry the scrape handler renders.
pub struct FlowMetrics {
    shards: Vec<(String, Arc<FlowStats>)>,
    exporter: Arc<ExporterStats>,
    descs: Vec<Desc>,
}

/// The families, in the order `collect` renders them.
const FAMILIES: [&Family; 7] = [
    &cat::FLOW_RECORDS_EXPORTED,
    &cat::FLOW_PACKETS_SENT,
    &cat::FLOW_RECORDS_DROPPED,
    &cat::FLOW_CACHE_FLOWS,
    &cat::FLOW_RECORDS_EXPIRED,
    &cat::FLOW_SEND_ERRORS,
    &cat::FLOW_TEMPLATE_PACKETS,
];

impl FlowMetrics {
    /// `shards`: (value of the `shard` label, that shard's stats).
    pub fn new(shards: Vec<(String, Arc<FlowStats>)>, exporter: Arc<ExporterStats>) -> Self {
        FlowMetrics {
            shards,
            exporter,
            descs: FAMILIES.iter().map(|f| f.desc()).collect(),
        }
    }
}

impl Collector for FlowMetrics {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let e = &self.exporter;
        let sum = |f: fn(&FlowStats) -> u64| self.shards.iter().map(|(_, s)| f(s)).sum::<u64>();
        let reason = |r: &str| vec![label("reason", r)];
        let single = |v: u64| vec![counter(vec![], v)];
        vec![
            cat::FLOW_RECORDS_EXPORTED.family(single(e.records_exported.get())),
            cat::FLOW_PACKETS_SENT.family(single(e.packets_sent.get())),
            cat::FLOW_RECORDS_DROPPED.family(vec![
                counter(
                    reason("channel_full"),
                    sum(|s| s.records_dropped_channel_full.get()),
                ),
                counter(reason("send_error"), e.records_dropped_send_error.get()),
            ]),
            cat::FLOW_CACHE_FLOWS.family(
                self.shards
                    .iter()
                    .map(|(l, s)| gauge(vec![label("shard", l.as_str())], s.flows.get() as f64))
                    .collect(),
            ),
            cat::FLOW_RECORDS_EXPIRED.family(vec![
                counter(reason("idle"), sum(|s| s.expired_idle.get())),
                counter(reason("active"), sum(|s| s.expired_active.get())),
                counter(reason("tcp_end"), sum(|s| s.expired_tcp_end.get())),
                counter(reason("pressure"), sum(|s| s.evicted_pressure.get())),
                counter(reason("flush"), sum(|s| s.flushed.get())),
            ]),
            cat::FLOW_SEND_ERRORS.family(single(e.send_errors.get())),
            cat::FLOW_TEMPLATE_PACKETS.family(single(e.templates_sent.get())),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{Encoder, Registry, TextEncoder};

    #[test]
    fn renders_through_a_registry() {
        let (a, b) = (
            Arc::new(FlowStats::default()),
            Arc::new(FlowStats::default()),
        );
        b.flows.set(42);
        a.records_dropped_channel_full.add(3);
        b.records_dropped_channel_full.add(4);
        b.evicted_pressure.add(9);
        let shards = vec![("eth1/0".to_owned(), a), ("eth1/1".to_owned(), b)];
        let ex = Arc::new(ExporterStats::default());
        ex.records_exported.add(1000);
        ex.packets_sent.add(35);
        let reg = Registry::new();
        assert!(reg.register(Box::new(FlowMetrics::new(shards, ex))).is_ok());
        let mut out = Vec::new();
        assert!(TextEncoder::new().encode(&reg.gather(), &mut out).is_ok());
        let text = String::from_utf8(out).unwrap_or_default();
        for line in [
            "xdpacct_flow_records_exported_total 1000",
            "xdpacct_flow_packets_sent_total 35",
            "xdpacct_flow_records_dropped_total{reason=\"channel_full\"} 7",
            "xdpacct_flow_records_dropped_total{reason=\"send_error\"} 0",
            "xdpacct_flow_cache_flows{shard=\"eth1/0\"} 0",
            "xdpacct_flow_cache_flows{shard=\"eth1/1\"} 42",
            "xdpacct_flow_records_expired_total{reason=\"pressure\"} 9",
            "# TYPE xdpacct_flow_cache_flows gauge",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}

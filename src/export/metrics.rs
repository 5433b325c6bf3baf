//! Export counters as a `prometheus` [`Collector`], read at scrape from the
//! shards' [`FlowStats`] and the exporter's [`ExporterStats`] (relaxed
//! loads; never blocks a writer). Allocates the metric families per scrape.
//!
//! | metric | type | where counted |
//! |---|---|---|
//! | `xdpacct_flow_records_exported_total` | counter | exporter: records in packets a collector accepted |
//! | `xdpacct_flow_packets_sent_total` | counter | exporter: UDP packets sent, summed over collectors |
//! | `xdpacct_flow_records_dropped_total{reason="channel_full"}` | counter | `FlowSink`: exporter channel full |
//! | `xdpacct_flow_records_dropped_total{reason="send_error"}` | counter | exporter: no collector accepted the packet |
//! | `xdpacct_flow_cache_flows{shard}` | gauge | `FlowCache`: flows held, as of the last `expire` |
//! | `xdpacct_flow_records_expired_total{reason}` | counter | `FlowCache`: idle, active, tcp_end, pressure, flush |
//! | `xdpacct_flow_send_errors_total` | counter | exporter: failed sends, summed over collectors |
//! | `xdpacct_flow_template_packets_total` | counter | exporter: packets that carried the templates |

use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};

use super::{ExporterStats, FlowStats};

/// Collector over the flow-export counters. Register it once with the
/// registry the scrape handler renders.
pub struct FlowMetrics {
    shards: Vec<(String, Arc<FlowStats>)>,
    exporter: Arc<ExporterStats>,
    descs: Vec<Desc>,
}

const EXPORTED: &str = "xdpacct_flow_records_exported_total";
const PACKETS: &str = "xdpacct_flow_packets_sent_total";
const DROPPED: &str = "xdpacct_flow_records_dropped_total";
const FLOWS: &str = "xdpacct_flow_cache_flows";
const EXPIRED: &str = "xdpacct_flow_records_expired_total";
const SEND_ERRORS: &str = "xdpacct_flow_send_errors_total";
const TEMPLATES: &str = "xdpacct_flow_template_packets_total";

const HELP: [(&str, &str, &[&str]); 7] = [
    (
        EXPORTED,
        "Flow records in export packets that at least one collector accepted.",
        &[],
    ),
    (
        PACKETS,
        "Flow export packets sent, summed over collectors.",
        &[],
    ),
    (
        DROPPED,
        "Flow records lost before reaching any collector, by reason.",
        &["reason"],
    ),
    (FLOWS, "Flows held in the shard's flow cache.", &["shard"]),
    (
        EXPIRED,
        "Flow records leaving the flow caches, by reason.",
        &["reason"],
    ),
    (
        SEND_ERRORS,
        "Failed flow export sends, summed over collectors.",
        &[],
    ),
    (
        TEMPLATES,
        "Flow export packets that carried the templates.",
        &[],
    ),
];

impl FlowMetrics {
    /// `shards`: (value of the `shard` label, that shard's stats).
    pub fn new(shards: Vec<(String, Arc<FlowStats>)>, exporter: Arc<ExporterStats>) -> Self {
        let descs = HELP
            .iter()
            .filter_map(|(name, help, labels)| {
                Desc::new(
                    (*name).to_owned(),
                    (*help).to_owned(),
                    labels.iter().map(|l| (*l).to_owned()).collect(),
                    Default::default(),
                )
                .ok()
            })
            .collect();
        FlowMetrics {
            shards,
            exporter,
            descs,
        }
    }
}

fn family(name: &str, kind: MetricType, metrics: Vec<Metric>) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(name.to_owned());
    if let Some((_, help, _)) = HELP.iter().find(|h| h.0 == name) {
        f.set_help((*help).to_owned());
    }
    f.set_field_type(kind);
    f.set_metric(metrics);
    f
}

fn counter(labels: &[(&str, String)], v: u64) -> Metric {
    let mut c = Counter::default();
    c.set_value(v as f64);
    let mut m = Metric::default();
    m.set_label(label_pairs(labels));
    m.set_counter(c);
    m
}

fn gauge(labels: &[(&str, String)], v: u64) -> Metric {
    let mut g = Gauge::default();
    g.set_value(v as f64);
    let mut m = Metric::default();
    m.set_label(label_pairs(labels));
    m.set_gauge(g);
    m
}

fn label_pairs(labels: &[(&str, String)]) -> Vec<LabelPair> {
    labels
        .iter()
        .map(|(k, v)| {
            let mut p = LabelPair::default();
            p.set_name((*k).to_owned());
            p.set_value(v.clone());
            p
        })
        .collect()
}

impl Collector for FlowMetrics {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let e = &self.exporter;
        let sum = |f: fn(&FlowStats) -> u64| self.shards.iter().map(|(_, s)| f(s)).sum::<u64>();
        let reason = |r: &str| [("reason", r.to_owned())];
        vec![
            family(
                EXPORTED,
                MetricType::COUNTER,
                vec![counter(&[], e.records_exported.get())],
            ),
            family(
                PACKETS,
                MetricType::COUNTER,
                vec![counter(&[], e.packets_sent.get())],
            ),
            family(
                DROPPED,
                MetricType::COUNTER,
                vec![
                    counter(
                        &reason("channel_full"),
                        sum(|s| s.records_dropped_channel_full.get()),
                    ),
                    counter(&reason("send_error"), e.records_dropped_send_error.get()),
                ],
            ),
            family(
                FLOWS,
                MetricType::GAUGE,
                self.shards
                    .iter()
                    .map(|(l, s)| gauge(&[("shard", l.clone())], s.flows.get()))
                    .collect(),
            ),
            family(
                EXPIRED,
                MetricType::COUNTER,
                vec![
                    counter(&reason("idle"), sum(|s| s.expired_idle.get())),
                    counter(&reason("active"), sum(|s| s.expired_active.get())),
                    counter(&reason("tcp_end"), sum(|s| s.expired_tcp_end.get())),
                    counter(&reason("pressure"), sum(|s| s.evicted_pressure.get())),
                    counter(&reason("flush"), sum(|s| s.flushed.get())),
                ],
            ),
            family(
                SEND_ERRORS,
                MetricType::COUNTER,
                vec![counter(&[], e.send_errors.get())],
            ),
            family(
                TEMPLATES,
                MetricType::COUNTER,
                vec![counter(&[], e.templates_sent.get())],
            ),
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

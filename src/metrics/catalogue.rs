//! Every metric family of the `/metrics` page, declared once: name, help,
//! type and labels (node_exporter's `typedDesc`, vector's
//! `internal_events`). Every collector renders through these declarations
//! and the helpers below; nothing else spells a metric name.
//!
//! Where each family is counted is said on its declaration. The README's
//! metric table lists them all (a test checks that it names every family).
//!
//! Declarations are constants; building a family allocates (per scrape).
//! `int_counter_vec` / `int_gauge_vec` panic only for a declaration the
//! tests below reject.

use prometheus::core::Desc;
use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};
use prometheus::{IntCounterVec, IntGaugeVec, Opts};

use ConfigLabels::{Networks, Ranges};
use Kind::{Counter as C, Gauge as G, Histogram as H};

/// A family's Prometheus type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    /// As in `# TYPE` lines.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }

    fn proto(self) -> MetricType {
        match self {
            Kind::Counter => MetricType::COUNTER,
            Kind::Gauge => MetricType::GAUGE,
            Kind::Histogram => MetricType::HISTOGRAM,
        }
    }
}

/// Labels the configuration adds after a family's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigLabels {
    None,
    /// The union of `accounting.ranges[].labels` names, sorted.
    Ranges,
    /// The union of `accounting.networks[].labels` names, sorted.
    Networks,
}

/// One metric family: what the `# HELP` and `# TYPE` lines say and which
/// labels its samples carry, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    /// The family's own labels, in the order samples carry them (a
    /// histogram's `le` is not listed).
    pub labels: &'static [&'static str],
    /// Labels from the configuration that follow `labels`.
    pub config_labels: ConfigLabels,
}

impl Family {
    const fn new(
        name: &'static str,
        help: &'static str,
        kind: Kind,
        labels: &'static [&'static str],
    ) -> Family {
        Family {
            name,
            help,
            kind,
            labels,
            config_labels: ConfigLabels::None,
        }
    }

    const fn with_config_labels(mut self, c: ConfigLabels) -> Family {
        self.config_labels = c;
        self
    }

    /// The family with these samples.
    pub fn family(&self, metrics: Vec<Metric>) -> MetricFamily {
        let mut f = MetricFamily::default();
        f.set_name(self.name.to_owned());
        f.set_help(self.help.to_owned());
        f.set_field_type(self.kind.proto());
        f.set_metric(metrics);
        f
    }

    /// For `Collector::desc`.
    pub fn desc(&self) -> Desc {
        Desc::new(
            self.name.to_owned(),
            self.help.to_owned(),
            self.labels.iter().map(|l| (*l).to_owned()).collect(),
            Default::default(),
        )
        .expect("catalogue declarations are valid (tested)")
    }

    /// `# HELP` and `# TYPE` lines, for families written as text directly.
    pub fn write_header(&self, out: &mut Vec<u8>) {
        for part in [
            "# HELP ",
            self.name,
            " ",
            self.help,
            "\n# TYPE ",
            self.name,
            " ",
            self.kind.as_str(),
            "\n",
        ] {
            out.extend_from_slice(part.as_bytes());
        }
    }

    /// A `prometheus` counter vector for code that counts with it (the
    /// daemon's interface supervision).
    pub fn int_counter_vec(&self) -> IntCounterVec {
        assert_eq!(self.kind, Kind::Counter, "{} is not a counter", self.name);
        IntCounterVec::new(Opts::new(self.name, self.help), self.labels)
            .expect("catalogue declarations are valid (tested)")
    }

    /// A `prometheus` gauge vector, see [`int_counter_vec`](Self::int_counter_vec).
    pub fn int_gauge_vec(&self) -> IntGaugeVec {
        assert_eq!(self.kind, Kind::Gauge, "{} is not a gauge", self.name);
        IntGaugeVec::new(Opts::new(self.name, self.help), self.labels)
            .expect("catalogue declarations are valid (tested)")
    }
}

/// A label of a sample.
pub fn label(name: &str, value: impl Into<String>) -> LabelPair {
    let mut l = LabelPair::default();
    l.set_name(name.to_owned());
    l.set_value(value.into());
    l
}

/// A counter sample.
pub fn counter(labels: Vec<LabelPair>, v: u64) -> Metric {
    let mut c = Counter::default();
    c.set_value(v as f64);
    let mut m = Metric::from_label(labels);
    m.set_counter(c);
    m
}

/// A gauge sample.
pub fn gauge(labels: Vec<LabelPair>, v: f64) -> Metric {
    let mut g = Gauge::default();
    g.set_value(v);
    let mut m = Metric::from_label(labels);
    m.set_gauge(g);
    m
}

/// A histogram sample from per-bucket (not cumulative) counts: one per
/// upper bound in `bounds`, then one for +Inf.
pub fn histogram(labels: Vec<LabelPair>, bounds: &[u32], per_bucket: &[u64], sum: u64) -> Metric {
    debug_assert_eq!(per_bucket.len(), bounds.len() + 1);
    let mut cumulative = 0;
    let mut buckets = Vec::with_capacity(bounds.len());
    for (ub, n) in bounds.iter().zip(per_bucket) {
        cumulative += n;
        let mut b = Bucket::default();
        b.set_upper_bound(f64::from(*ub));
        b.set_cumulative_count(cumulative);
        buckets.push(b);
    }
    cumulative += per_bucket.get(bounds.len()).copied().unwrap_or(0);
    let mut h = Histogram::default();
    h.set_bucket(buckets);
    h.set_sample_count(cumulative);
    h.set_sample_sum(sum as f64);
    let mut m = Metric::from_label(labels);
    m.set_histogram(h);
    m
}

// Accounting, summed over the shards (`metrics/engine.rs`); counted per
// frame by the worker (`shard/worker.rs`).

pub const INTERFACE_PACKETS: Family = Family::new(
    "xdpacct_interface_packets_total",
    "Frames seen per interface and direction.",
    C,
    &["interface", "direction"],
);
pub const INTERFACE_BYTES: Family = Family::new(
    "xdpacct_interface_bytes_total",
    "Bytes seen per interface and direction, per accounting.bytes.",
    C,
    &["interface", "direction"],
);
/// Upper bounds: `shard::SIZE_BUCKETS`.
pub const PACKET_SIZE: Family = Family::new(
    "xdpacct_packet_size_bytes",
    "Frame sizes on the wire (layer 2, no FCS).",
    H,
    &["interface"],
);
/// A series appears with the protocol's first frame.
pub const PROTOCOL_PACKETS: Family = Family::new(
    "xdpacct_protocol_packets_total",
    "Frames per IP protocol (non_ip: no IP header).",
    C,
    &["interface", "direction", "protocol"],
);
pub const PROTOCOL_BYTES: Family = Family::new(
    "xdpacct_protocol_bytes_total",
    "Bytes per IP protocol, per accounting.bytes.",
    C,
    &["interface", "direction", "protocol"],
);
pub const PARSE_ERRORS: Family = Family::new(
    "xdpacct_parse_errors_total",
    "Frames whose headers could not be parsed fully, by reason (they are still counted).",
    C,
    &["reason"],
);
/// Frames a worker accounted, for `seen = accounted + dropped`.
pub const QUEUE_FRAMES_ACCOUNTED: Family = Family::new(
    "xdpacct_queue_frames_accounted_total",
    "Frames accounted by the worker of each queue.",
    C,
    &["interface", "queue"],
);
/// Written as text straight from the counters (`EngineCollector::write_hosts_text`).
pub const HOST_PACKETS: Family = Family::new(
    "xdpacct_host_packets_total",
    "Frames to (in) and from (out) each configured host.",
    C,
    &["ip", "direction"],
)
.with_config_labels(Ranges);
pub const HOST_BYTES: Family = Family::new(
    "xdpacct_host_bytes_total",
    "Bytes to (in) and from (out) each configured host, per accounting.bytes.",
    C,
    &["ip", "direction"],
)
.with_config_labels(Ranges);
/// Hosts summed per value tuple of the ranges' labels, at scrape
/// (`metrics/engine.rs`): what dashboards and rules use per customer.
pub const CUSTOMER_PACKETS: Family = Family::new(
    "xdpacct_customer_packets_total",
    "Frames to (in) and from (out) the hosts of each range label value set (e.g. customer).",
    C,
    &["direction"],
)
.with_config_labels(Ranges);
pub const CUSTOMER_BYTES: Family = Family::new(
    "xdpacct_customer_bytes_total",
    "Bytes to (in) and from (out) the hosts of each range label value set, per accounting.bytes.",
    C,
    &["direction"],
)
.with_config_labels(Ranges);
/// Hosts over `metrics.max_series`, summed into `ip="other"`.
pub const HOST_SERIES_FOLDED: Family = Family::new(
    "xdpacct_host_series_folded",
    "Hosts with traffic summed into ip=\"other\" because of metrics.max_series.",
    G,
    &[],
);
/// By the remote side's AS (`shard/peers.rs`); bounded by `fold.rs`.
pub const AS_PACKETS: Family = Family::new(
    "xdpacct_as_packets_total",
    "Frames per remote AS (other: folded ASes and frames without a remote AS).",
    C,
    &["peer_as", "peer_as_name", "direction"],
);
pub const AS_BYTES: Family = Family::new(
    "xdpacct_as_bytes_total",
    "Bytes per remote AS, per accounting.bytes.",
    C,
    &["peer_as", "peer_as_name", "direction"],
);
pub const AS_SERIES_FOLDED: Family = Family::new(
    "xdpacct_as_series_folded",
    "ASes with traffic summed into peer_as=\"other\" because of accounting.max_as_series.",
    G,
    &[],
);
pub const NETWORK_PACKETS: Family = Family::new(
    "xdpacct_network_packets_total",
    "Frames to and from each configured remote network.",
    C,
    &["network", "direction"],
)
.with_config_labels(Networks);
pub const NETWORK_BYTES: Family = Family::new(
    "xdpacct_network_bytes_total",
    "Bytes to and from each configured remote network, per accounting.bytes.",
    C,
    &["network", "direction"],
)
.with_config_labels(Networks);
pub const NETWORK_SERIES_FOLDED: Family = Family::new(
    "xdpacct_network_series_folded",
    "Networks with traffic summed into network=\"other\" because of accounting.max_network_series.",
    G,
    &[],
);

/// Constant 1 (`metrics/mod.rs`).
pub const BUILD_INFO: Family = Family::new(
    "xdpacct_build_info",
    "Version of the running xdpacct.",
    G,
    &["version"],
);

// Live capture queues, read from the kernel at scrape (`capture/stats.rs`).

/// AF_XDP: the XDP program's count; AF_PACKET: `tp_packets`.
pub const QUEUE_FRAMES_SEEN: Family = Family::new(
    "xdpacct_queue_frames_seen_total",
    "Frames the kernel saw for this capture queue, before any drop.",
    C,
    &["interface", "queue"],
);
/// AF_XDP only.
pub const QUEUE_BYTES_SEEN: Family = Family::new(
    "xdpacct_queue_bytes_seen_total",
    "Layer-2 bytes the XDP program saw for this capture queue.",
    C,
    &["interface", "queue"],
);
pub const QUEUE_FRAMES_RECEIVED: Family = Family::new(
    "xdpacct_queue_frames_received_total",
    "Frames a worker took off this capture queue.",
    C,
    &["interface", "queue"],
);
/// Reasons: `capture::stats::DropReason`.
pub const QUEUE_DROPPED: Family = Family::new(
    "xdpacct_queue_dropped_total",
    "Frames the kernel dropped before a worker saw them, by reason.",
    C,
    &["interface", "queue", "reason"],
);
/// AF_XDP only.
pub const QUEUE_INVALID_DESCS: Family = Family::new(
    "xdpacct_queue_invalid_descs_total",
    "Descriptors the kernel rejected on this AF_XDP socket.",
    C,
    &["interface", "queue"],
);

// Flow export (`export/metrics.rs`).

/// Exporter: records in packets a collector accepted.
pub const FLOW_RECORDS_EXPORTED: Family = Family::new(
    "xdpacct_flow_records_exported_total",
    "Flow records in export packets that at least one collector accepted.",
    C,
    &[],
);
/// Exporter: UDP packets sent, summed over collectors.
pub const FLOW_PACKETS_SENT: Family = Family::new(
    "xdpacct_flow_packets_sent_total",
    "Flow export packets sent, summed over collectors.",
    C,
    &[],
);
/// `channel_full` (`FlowSink`: exporter channel full), `send_error`
/// (exporter: no collector accepted the packet).
pub const FLOW_RECORDS_DROPPED: Family = Family::new(
    "xdpacct_flow_records_dropped_total",
    "Flow records lost before reaching any collector, by reason.",
    C,
    &["reason"],
);
/// `FlowCache`: flows held, as of the last `expire`.
pub const FLOW_CACHE_FLOWS: Family = Family::new(
    "xdpacct_flow_cache_flows",
    "Flows held in the shard's flow cache.",
    G,
    &["shard"],
);
/// `FlowCache`: idle, active, tcp_end, pressure, flush.
pub const FLOW_RECORDS_EXPIRED: Family = Family::new(
    "xdpacct_flow_records_expired_total",
    "Flow records leaving the flow caches, by reason.",
    C,
    &["reason"],
);
/// Exporter: failed sends, summed over collectors.
pub const FLOW_SEND_ERRORS: Family = Family::new(
    "xdpacct_flow_send_errors_total",
    "Failed flow export sends, summed over collectors.",
    C,
    &[],
);
/// Exporter: packets that carried the templates.
pub const FLOW_TEMPLATE_PACKETS: Family = Family::new(
    "xdpacct_flow_template_packets_total",
    "Flow export packets that carried the templates.",
    C,
    &[],
);

// Interface supervision (`daemon.rs`).

/// Seen by the daemon's interface watch.
pub const INTERFACE_DOWN: Family = Family::new(
    "xdpacct_interface_down_total",
    "Times a captured interface went down or disappeared.",
    C,
    &["interface"],
);
pub const CAPTURE_RESTARTS: Family = Family::new(
    "xdpacct_capture_restarts_total",
    "Times the capture of an interface was reopened after it was lost.",
    C,
    &["interface"],
);
pub const INTERFACE_UP: Family = Family::new(
    "xdpacct_interface_up",
    "1 while a captured interface is up and its capture attached, else 0.",
    G,
    &["interface"],
);

// TCP handshake round-trip times (`rtt/`): counted by the worker that sees
// a handshake's last frame, summed over the workers at scrape.

/// Legs of measured handshakes per configured range of the local host.
pub const TCP_HANDSHAKE_RTT: Family = Family::new(
    "xdpacct_tcp_handshake_rtt_seconds",
    "TCP handshake legs seen from the tap, per range of the local host: leg internal is tap to the local host, external tap to the remote one.",
    H,
    &["leg"],
)
.with_config_labels(Ranges);
/// The external leg per remote AS (ASes without their own AS series: other).
pub const AS_TCP_RTT: Family = Family::new(
    "xdpacct_as_tcp_rtt_seconds",
    "External leg (tap to the remote host) of TCP handshakes, per remote AS (other: ASes without their own xdpacct_as_* series and addresses without AS).",
    H,
    &["peer_as", "peer_as_name"],
);
/// Handshakes by how they ended.
pub const TCP_HANDSHAKES: Family = Family::new(
    "xdpacct_tcp_handshakes_total",
    "TCP handshakes by outcome: measured, ambiguous (SYN or SYN/ACK retransmitted), out_of_order (frame times disagree), overflowed (no room in the table), timed_out (not completed within tcp_rtt.timeout).",
    C,
    &["outcome"],
);
/// Scanned at scrape.
pub const TCP_HANDSHAKES_PENDING: Family = Family::new(
    "xdpacct_tcp_handshakes_pending",
    "TCP handshakes waiting for their SYN/ACK or ACK in the shared table.",
    G,
    &[],
);

// Flow input (`collector/input.rs`): each receiver thread publishes its
// collector's counters; the scrape sums them.

/// `Collector::datagram`: decoded datagrams by exporter and protocol.
pub const COLLECTOR_DATAGRAMS: Family = Family::new(
    "xdpacct_collector_datagrams_total",
    "Flow datagrams decoded, by exporter and protocol.",
    C,
    &["exporter", "protocol"],
);
/// `Collector::emit`: flow records (sFlow: flow samples) counted.
pub const COLLECTOR_RECORDS: Family = Family::new(
    "xdpacct_collector_records_total",
    "Flow records and sFlow flow samples counted, by exporter and protocol.",
    C,
    &["exporter", "protocol"],
);
/// `Collector::resolve_rate`: no rate known, `default_sampling_rate` used.
pub const COLLECTOR_RECORDS_DEFAULT_RATE: Family = Family::new(
    "xdpacct_collector_records_default_rate_total",
    "Flow records that carried no sampling rate and were scaled by collector.default_sampling_rate.",
    C,
    &["exporter"],
);
/// `Collector::emit`: the rate of the exporter's last record.
pub const COLLECTOR_SAMPLING_RATE: Family = Family::new(
    "xdpacct_collector_sampling_rate",
    "Sampling rate (1 in N) of the exporter's last record.",
    G,
    &["exporter"],
);
/// Sequence numbers (`collector/sequence.rs`): unit is datagrams (v9,
/// sFlow), records (v5, IPFIX), samples or counter_samples (sFlow).
pub const COLLECTOR_SEQUENCE_GAPS: Family = Family::new(
    "xdpacct_collector_sequence_gaps_total",
    "Units the exporter sent that never arrived, by sequence number.",
    C,
    &["exporter", "unit"],
);
/// `DropReason::is_malformed`.
pub const COLLECTOR_MALFORMED: Family = Family::new(
    "xdpacct_collector_malformed_total",
    "Flow datagrams, sets, templates, records or samples that could not be decoded, by reason.",
    C,
    &["reason"],
);
/// The other `DropReason`s: policy, caps, timeouts.
pub const COLLECTOR_DROPPED: Family = Family::new(
    "xdpacct_collector_dropped_total",
    "Flow datagrams, templates, sets or records refused by policy, a memory cap or a timeout, by reason.",
    C,
    &["reason"],
);
/// `socket::Receiver`: buffer_full (SO_RXQ_OVFL), truncated (longer than 9216 bytes).
pub const COLLECTOR_SOCKET_DROPS: Family = Family::new(
    "xdpacct_collector_socket_drops_total",
    "Flow datagrams the kernel dropped on a collector socket, or truncated, by reason.",
    C,
    &["listen", "reason"],
);
/// Gauges of the collectors' state.
pub const COLLECTOR_TEMPLATES: Family = Family::new(
    "xdpacct_collector_templates",
    "NetFlow v9 and IPFIX templates known now.",
    G,
    &[],
);
pub const COLLECTOR_EXPORTERS: Family = Family::new(
    "xdpacct_collector_exporters",
    "Exporters known now.",
    G,
    &[],
);
/// sFlow counter samples (generic interface counters, the latest value).
pub const COLLECTOR_SFLOW_IF_BYTES: Family = Family::new(
    "xdpacct_collector_sflow_interface_bytes_total",
    "Octets of a router interface, from its sFlow counter samples.",
    C,
    &["interface", "direction"],
);
pub const COLLECTOR_SFLOW_IF_PACKETS: Family = Family::new(
    "xdpacct_collector_sflow_interface_packets_total",
    "Unicast, multicast and broadcast packets of a router interface, from its sFlow counter samples.",
    C,
    &["interface", "direction"],
);
pub const COLLECTOR_SFLOW_IF_ERRORS: Family = Family::new(
    "xdpacct_collector_sflow_interface_errors_total",
    "Errors of a router interface, from its sFlow counter samples.",
    C,
    &["interface", "direction"],
);
pub const COLLECTOR_SFLOW_IF_DISCARDS: Family = Family::new(
    "xdpacct_collector_sflow_interface_discards_total",
    "Discards of a router interface, from its sFlow counter samples.",
    C,
    &["interface", "direction"],
);
pub const COLLECTOR_SFLOW_IF_UP: Family = Family::new(
    "xdpacct_collector_sflow_interface_up",
    "1 while a router interface is operationally up, from its sFlow counter samples.",
    G,
    &["interface"],
);

// The billing ledger (`billing/live.rs`).

/// The running billing period's 95th percentile (nearest rank) per
/// subject; the subject labels (`billing.subject_labels`, and `ip` with
/// `billing.hosts`) follow `direction`. Bits per second: the unit of
/// 95th-percentile contracts (the name for it).
pub const BILLING_P95: Family = Family::new(
    "xdpacct_billing_p95_bits",
    "95th percentile (nearest rank) of the running billing period's samples per subject in bits per second: in, out, or billable by billing.method; updated when an interval closes.",
    G,
    &["direction"],
);
/// Samples of the running period by state: expected, present, complete, missing.
pub const BILLING_SAMPLES: Family = Family::new(
    "xdpacct_billing_samples",
    "Intervals of the running billing period so far by state: expected (ended), present, complete, missing.",
    G,
    &["state"],
);
pub const BILLING_WRITE_FAILURES: Family = Family::new(
    "xdpacct_billing_write_failures_total",
    "Writes to the billing ledger that failed; their samples are kept in memory and retried.",
    C,
    &[],
);
pub const BILLING_WRITES: Family = Family::new(
    "xdpacct_billing_writes_total",
    "Transactions committed to the billing ledger.",
    C,
    &[],
);
pub const BILLING_INTERVALS_LOST: Family = Family::new(
    "xdpacct_billing_intervals_lost_total",
    "Intervals given up after the billing ledger could not be written for a day of intervals.",
    C,
    &[],
);
pub const BILLING_CLOCK_STEPS: Family = Family::new(
    "xdpacct_billing_clock_steps_total",
    "Wall-clock steps (over 1 s off the monotonic clock) seen by the billing ledger; the time in between is not counted as covered.",
    C,
    &[],
);
pub const BILLING_POSTGRES_WRITES: Family = Family::new(
    "xdpacct_billing_postgres_writes_total",
    "Transactions committed to the shared PostgreSQL (billing.postgres).",
    C,
    &[],
);
pub const BILLING_POSTGRES_WRITE_FAILURES: Family = Family::new(
    "xdpacct_billing_postgres_write_failures_total",
    "Pushes to the shared PostgreSQL (billing.postgres) that failed; the SQLite ledger is written regardless and the intervals are retried.",
    C,
    &[],
);
pub const BILLING_POSTGRES_QUEUED: Family = Family::new(
    "xdpacct_billing_postgres_queued_intervals",
    "Intervals written to the SQLite ledger and waiting to be pushed to the shared PostgreSQL (billing.postgres).",
    G,
    &[],
);

// Busiest connections (`export/connections.rs`): the top N of the flow
// caches, merged over the workers at scrape.

/// Totals of a connection (one direction of a flow) while it is shown.
pub const CONNECTION_BYTES: Family = Family::new(
    "xdpacct_connection_bytes_total",
    "Bytes of each of the connections.top busiest connections in the flow caches, since the connection entered this view.",
    C,
    &["src", "dst", "protocol", "src_port", "dst_port", "direction"],
);
pub const CONNECTION_PACKETS: Family = Family::new(
    "xdpacct_connection_packets_total",
    "Packets of each of the connections.top busiest connections in the flow caches, since the connection entered this view.",
    C,
    &["src", "dst", "protocol", "src_port", "dst_port", "direction"],
);

/// Every family, in page order: sorted by name, then the families written
/// as text after the others (customers, then hosts).
pub const ALL: [&Family; 64] = [
    &AS_BYTES,
    &AS_PACKETS,
    &AS_SERIES_FOLDED,
    &AS_TCP_RTT,
    &BILLING_CLOCK_STEPS,
    &BILLING_INTERVALS_LOST,
    &BILLING_P95,
    &BILLING_POSTGRES_QUEUED,
    &BILLING_POSTGRES_WRITE_FAILURES,
    &BILLING_POSTGRES_WRITES,
    &BILLING_SAMPLES,
    &BILLING_WRITE_FAILURES,
    &BILLING_WRITES,
    &BUILD_INFO,
    &CAPTURE_RESTARTS,
    &COLLECTOR_DATAGRAMS,
    &COLLECTOR_DROPPED,
    &COLLECTOR_EXPORTERS,
    &COLLECTOR_MALFORMED,
    &COLLECTOR_RECORDS_DEFAULT_RATE,
    &COLLECTOR_RECORDS,
    &COLLECTOR_SAMPLING_RATE,
    &COLLECTOR_SEQUENCE_GAPS,
    &COLLECTOR_SFLOW_IF_BYTES,
    &COLLECTOR_SFLOW_IF_DISCARDS,
    &COLLECTOR_SFLOW_IF_ERRORS,
    &COLLECTOR_SFLOW_IF_PACKETS,
    &COLLECTOR_SFLOW_IF_UP,
    &COLLECTOR_SOCKET_DROPS,
    &COLLECTOR_TEMPLATES,
    &CONNECTION_BYTES,
    &CONNECTION_PACKETS,
    &FLOW_CACHE_FLOWS,
    &FLOW_PACKETS_SENT,
    &FLOW_RECORDS_DROPPED,
    &FLOW_RECORDS_EXPIRED,
    &FLOW_RECORDS_EXPORTED,
    &FLOW_SEND_ERRORS,
    &FLOW_TEMPLATE_PACKETS,
    &INTERFACE_BYTES,
    &INTERFACE_DOWN,
    &INTERFACE_PACKETS,
    &INTERFACE_UP,
    &NETWORK_BYTES,
    &NETWORK_PACKETS,
    &NETWORK_SERIES_FOLDED,
    &PACKET_SIZE,
    &PARSE_ERRORS,
    &PROTOCOL_BYTES,
    &PROTOCOL_PACKETS,
    &QUEUE_BYTES_SEEN,
    &QUEUE_DROPPED,
    &QUEUE_FRAMES_ACCOUNTED,
    &QUEUE_FRAMES_RECEIVED,
    &QUEUE_FRAMES_SEEN,
    &QUEUE_INVALID_DESCS,
    &TCP_HANDSHAKE_RTT,
    &TCP_HANDSHAKES_PENDING,
    &TCP_HANDSHAKES,
    &CUSTOMER_PACKETS,
    &CUSTOMER_BYTES,
    &HOST_SERIES_FOLDED,
    &HOST_PACKETS,
    &HOST_BYTES,
];

/// The families written as text after the others, in page order
/// (`EngineCollector::write_hosts_text`).
pub const TEXT_FAMILIES: [&Family; 5] = [
    &CUSTOMER_PACKETS,
    &CUSTOMER_BYTES,
    &HOST_SERIES_FOLDED,
    &HOST_PACKETS,
    &HOST_BYTES,
];

/// The declaration of `name`.
pub fn by_name(name: &str) -> Option<&'static Family> {
    ALL.iter().copied().find(|f| f.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn valid_name(s: &str) -> bool {
        let mut c = s.chars();
        matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
            && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
    }

    /// Prometheus naming (https://prometheus.io/docs/practices/naming/):
    /// one prefix, `_total` on counters and only there, base units.
    #[test]
    fn every_family_follows_prometheus_naming() {
        const NOT_BASE_UNITS: [&str; 14] = [
            "bits",
            "kilobytes",
            "megabytes",
            "gigabytes",
            "kb",
            "mb",
            "ms",
            "milliseconds",
            "microseconds",
            "nanoseconds",
            "minutes",
            "hours",
            "percent",
            "celsius",
        ];
        for f in ALL {
            let n = f.name;
            assert!(valid_name(n) && n.starts_with("xdpacct_"), "{n}: name");
            assert_eq!(
                f.kind == Kind::Counter,
                n.ends_with("_total"),
                "{n}: `_total` on counters, and only on counters"
            );
            // The one exception, named by the billing contract (issue 15):
            // 95th-percentile contracts are in bits per second.
            let words = if n == BILLING_P95.name {
                "xdpacct_billing_p95"
            } else {
                n
            };
            for word in words.split('_') {
                assert!(
                    !NOT_BASE_UNITS.contains(&word),
                    "{n}: {word} is not a base unit"
                );
            }
            if f.kind == Kind::Histogram {
                assert!(
                    n.ends_with("_bytes") || n.ends_with("_seconds"),
                    "{n}: a histogram names its unit"
                );
                assert!(!f.labels.contains(&"le"), "{n}: le is the histogram's own");
            }
            for suffix in ["_bucket", "_sum", "_count", "_created"] {
                assert!(!n.ends_with(suffix), "{n}: {suffix} is reserved");
            }
            for l in f.labels {
                assert!(valid_name(l) && !l.starts_with("__"), "{n}: label {l}");
            }
            let distinct: HashSet<&&str> = f.labels.iter().collect();
            assert_eq!(distinct.len(), f.labels.len(), "{n}: a label twice");
            assert!(
                !f.help.is_empty() && !f.help.contains(['\\', '\n']),
                "{n}: help is one line without backslashes (written unescaped)"
            );
        }
    }

    #[test]
    fn no_two_declarations_share_a_name() {
        let mut names = HashSet::new();
        for f in ALL {
            assert!(names.insert(f.name), "{} is declared twice", f.name);
        }
        // Nor may a family's name be a histogram's series name.
        for f in ALL.iter().filter(|f| f.kind == Kind::Histogram) {
            for suffix in ["_bucket", "_sum", "_count"] {
                assert!(!names.contains(format!("{}{suffix}", f.name).as_str()));
            }
        }
        assert_eq!(by_name("xdpacct_interface_up"), Some(&INTERFACE_UP));
        assert_eq!(by_name("xdpacct_nothing"), None);
    }

    #[test]
    fn all_is_in_page_order() {
        let (protos, text) = ALL.split_at(ALL.len() - TEXT_FAMILIES.len());
        assert!(protos.windows(2).all(|w| w[0].name < w[1].name));
        assert_eq!(text, TEXT_FAMILIES);
        // Range-labelled families are written as text, except the RTT
        // histogram (one series per range and leg, not per host).
        assert!(protos
            .iter()
            .all(|f| f.config_labels != ConfigLabels::Ranges || *f == &TCP_HANDSHAKE_RTT));
    }

    #[test]
    fn every_declaration_builds() {
        for f in ALL {
            assert_eq!(f.desc().fq_name, f.name);
            match f.kind {
                Kind::Counter => {
                    let v = f.int_counter_vec();
                    let values = vec!["x"; f.labels.len()];
                    v.with_label_values(&values).inc();
                    let fam = prometheus::core::Collector::collect(&v);
                    assert_eq!(fam[0].name(), f.name);
                    assert_eq!(fam[0].help(), f.help);
                }
                Kind::Gauge => {
                    let values = vec!["x"; f.labels.len()];
                    f.int_gauge_vec().with_label_values(&values).set(1);
                }
                Kind::Histogram => {}
            }
        }
    }

    #[test]
    fn the_supervision_families_render_as_the_daemon_did() {
        let up = INTERFACE_UP.int_gauge_vec();
        up.with_label_values(&["eth1"]).set(1);
        let down = INTERFACE_DOWN.int_counter_vec();
        down.with_label_values(&["eth1"]).inc();
        let mut fams = prometheus::core::Collector::collect(&up);
        fams.extend(prometheus::core::Collector::collect(&down));
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&fams)
            .unwrap_or_default();
        assert_eq!(
            text,
            "# HELP xdpacct_interface_up 1 while a captured interface is up and its capture attached, else 0.\n\
             # TYPE xdpacct_interface_up gauge\n\
             xdpacct_interface_up{interface=\"eth1\"} 1\n\
             # HELP xdpacct_interface_down_total Times a captured interface went down or disappeared.\n\
             # TYPE xdpacct_interface_down_total counter\n\
             xdpacct_interface_down_total{interface=\"eth1\"} 1\n"
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = histogram(vec![label("interface", "x")], &[64, 128], &[2, 3, 4], 1000);
        let h = m.get_histogram();
        let cum: Vec<u64> = h
            .get_bucket()
            .iter()
            .map(|b| b.cumulative_count())
            .collect();
        assert_eq!(cum, [2, 5]);
        assert_eq!(h.get_sample_count(), 9);
        assert_eq!(h.get_sample_sum(), 1000.0);
    }

    #[test]
    fn header_lines() {
        let mut out = Vec::new();
        AS_SERIES_FOLDED.write_header(&mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "# HELP xdpacct_as_series_folded ASes with traffic summed into peer_as=\"other\" because of accounting.max_as_series.\n\
             # TYPE xdpacct_as_series_folded gauge\n"
        );
    }

    /// Families the README's metric table does not name yet. Each must
    /// really be missing, so the list shrinks when the README catches up.
    const NOT_IN_README: [&str; 0] = [];

    #[test]
    fn readme_names_every_family() {
        let readme = include_str!("../../README.md");
        for f in ALL {
            let quoted = format!("`{}`", f.name);
            let braced = format!("`{}{{", f.name);
            let named = readme.contains(&quoted) || readme.contains(&braced);
            if NOT_IN_README.contains(&f.name) {
                assert!(
                    !named,
                    "{} is in README.md now: drop it from NOT_IN_README",
                    f.name
                );
            } else {
                assert!(named, "README.md's metric table lacks `{}`", f.name);
            }
        }
    }
}

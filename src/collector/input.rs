//! Flow input at run time: a [`FlowInput`] is one collector (decoder state)
//! and the flow-fed shard it counts into, driven by one receiver thread
//! (`xdpacct run`) or by the replay of a capture holding exporter datagrams
//! (`xdpacct replay`). Every record goes through
//! [`crate::shard::worker::account_record`], the capture path's resolve and
//! count: hosts, customers, AS, networks, protocol, and the flow
//! interface `<exporter name>:<ifname or ifIndex>`. With `[netflow]` it
//! then goes into this input's own flow cache (`FlowCache::add_flow`, one
//! flow of the record's packets and bytes) and leaves through the same
//! sink and exporter thread as captured flows; the sink never blocks.
//!
//! The collector's own counters are published by the thread every 100 ms
//! (and when idle) into a [`Published`] snapshot that [`CollectorMetrics`]
//! renders as `xdpacct_collector_*`. Allocates per new exporter, template
//! and interface, and per publication (10 a second), never per record. No
//! unsafe.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus::core::{Collector as PromCollector, Desc};
use prometheus::proto::MetricFamily;

use super::socket::{Receiver, ReceiverStats};
use super::{
    ByteLayer, Collector, CollectorConfig, CollectorConfigError, CollectorLimits, CollectorStats,
    DropReason, ExporterConfig, ExporterStats, FlowProtocol, FlowRecord, InterfaceCounters,
    IpPrefix,
};
use crate::export::observer::flow_direction;
use crate::export::{FlowCounts, FlowKey, FlowObserver};
use crate::metrics::catalogue::{self as cat, counter, gauge, label, Family};
use crate::settings::collector::Collector as CollectorSettings;
use crate::settings::BytesMode;
use crate::shard::worker::{account_record, now_ms, FrameObserver, RecordCounts};
use crate::shard::{HostSlots, Shard};

/// How often a receiver thread publishes its collector's counters.
pub const PUBLISH_INTERVAL: Duration = Duration::from_millis(100);

impl CollectorConfig {
    /// The decoder's config from the checked `[collector]` settings.
    pub fn from_settings(s: &CollectorSettings) -> CollectorConfig {
        let d = CollectorLimits::default();
        CollectorConfig {
            listen: s.listen.clone(),
            allowed_exporters: s
                .allowed_exporters
                .iter()
                .map(|p| IpPrefix {
                    addr: p.addr,
                    len: p.len,
                })
                .collect(),
            exporters: s
                .exporters
                .iter()
                .map(|e| ExporterConfig {
                    address: e.address,
                    name: e.name.clone(),
                    sampling_rate: e.sampling_rate,
                    interfaces: e.interfaces.clone(),
                })
                .collect(),
            default_sampling_rate: s.default_sampling_rate,
            pending_hold: s.pending_hold,
            template_timeout: s.template_timeout,
            exporter_timeout: s.exporter_timeout,
            limits: CollectorLimits {
                max_exporters: s.max_exporters,
                max_templates: s.max_templates,
                max_templates_per_exporter: d.max_templates_per_exporter.min(s.max_templates),
                max_template_fields: s.max_template_fields,
                max_pending_bytes: s.max_pending_bytes,
                max_pending_bytes_per_exporter: d
                    .max_pending_bytes_per_exporter
                    .min(s.max_pending_bytes),
                max_interface_counters: s.max_interface_counters,
                ..d
            },
        }
    }
}

/// Exporter names and interface names, for the `interface` label of a
/// flow interface seen for the first time (the same rule as
/// [`Collector::interface_label`], keyed by address so that it holds
/// across receiver threads).
#[derive(Debug, Default)]
struct Names(HashMap<IpAddr, (String, BTreeMap<u32, String>)>);

impl Names {
    fn new(cfg: &CollectorConfig) -> Self {
        Names(
            cfg.exporters
                .iter()
                .map(|e| {
                    (
                        e.address.to_canonical(),
                        (e.name.clone(), e.interfaces.clone()),
                    )
                })
                .collect(),
        )
    }

    fn label(&self, ip: IpAddr, ifindex: u32) -> String {
        match self.0.get(&ip) {
            Some((name, ifs)) => match ifs.get(&ifindex) {
                Some(ifname) => format!("{name}:{ifname}"),
                None => format!("{name}:{ifindex}"),
            },
            None => format!("{ip}:{ifindex}"),
        }
    }
}

/// What a receiver thread last published.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// The listen address (the `listen` label), empty for replay.
    pub listen: String,
    pub stats: CollectorStats,
    /// (exporter name, its counters).
    pub exporters: Vec<(String, ExporterStats)>,
    /// (`interface` label, latest sFlow counters).
    pub counters: Vec<(String, InterfaceCounters)>,
    pub socket: ReceiverStats,
}

/// The snapshot a receiver thread shares with the scrape.
#[derive(Debug, Default)]
pub struct Published(Mutex<Snapshot>);

impl Published {
    pub fn get(&self) -> Snapshot {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// One collector and the flow-fed shard it counts into.
pub struct FlowInput {
    collector: Collector,
    shard: Arc<Shard>,
    names: Names,
    /// Flow export of the records (`[netflow]`), when configured.
    export: Option<FlowObserver>,
    published: Arc<Published>,
    listen: String,
    last_publish: Option<Instant>,
}

/// The exporter address as the flow-interface key.
#[inline]
fn ip_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)) | (0xffff << 32),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// Counts one record into the shard at `accounting.bytes`, and hands it
/// to flow export (`[netflow]`) at the same layer: one flow of the
/// record's packets and bytes, its times, the router's input ifIndex as
/// the ingress interface (0 above 65535: the export templates carry 16
/// bits of it) and the direction the counters gave it.
#[inline]
fn account(
    shard: &Shard,
    hosts: &HostSlots,
    names: &Names,
    export: Option<&mut FlowObserver>,
    from: IpAddr,
    rec: &FlowRecord,
) {
    let layer = match hosts.tables.bytes {
        BytesMode::L2 => ByteLayer::L2,
        BytesMode::L2Fcs => ByteLayer::L2Fcs,
        BytesMode::L3 => ByteLayer::L3,
    };
    let counts = RecordCounts {
        addrs: rec.addrs,
        protocol: rec.protocol,
        packets: rec.packets,
        bytes: rec.bytes(layer).0,
        input_if: rec.input_if,
        output_if: rec.output_if,
    };
    let dir = account_record(shard, hosts, &counts, ip_key(from), |ifindex| {
        names.label(from, ifindex)
    });
    if let Some(obs) = export {
        let key = FlowKey {
            iface: u16::try_from(rec.input_if).unwrap_or(0),
            vlan: rec.vlan,
            addrs: rec.addrs,
            protocol: rec.protocol,
            src_port: rec.src_port,
            dst_port: rec.dst_port,
            tos: rec.tos,
        };
        let flow = FlowCounts {
            packets: counts.packets,
            bytes: counts.bytes,
            tcp_flags: rec.tcp_flags,
            direction: flow_direction(dir),
        };
        let times = (rec.last_ms != 0).then_some((rec.first_ms, rec.last_ms));
        obs.observe_flow(&key, flow, times);
    }
}

impl FlowInput {
    /// A collector for `cfg` counting into `shard` (a
    /// [`Shard::new_flow`]); `listen` is the `listen` label of its socket
    /// counters.
    pub fn new(
        cfg: CollectorConfig,
        shard: Arc<Shard>,
        listen: String,
    ) -> Result<FlowInput, CollectorConfigError> {
        let names = Names::new(&cfg);
        Ok(FlowInput {
            collector: Collector::new(cfg)?,
            shard,
            names,
            export: None,
            published: Arc::default(),
            listen,
            last_publish: None,
        })
    }

    /// Re-exports every record through `[netflow]`: `export` is this
    /// input's flow cache and sink (`FlowExport::observer`).
    pub fn with_export(mut self, export: FlowObserver) -> Self {
        self.export = Some(export);
        self
    }

    /// Flow export's clock: expires the cache's idle flows and sends a
    /// late batch. Call before each batch of datagrams.
    pub fn tick(&mut self, now_ms: u64) {
        if let Some(obs) = self.export.as_mut() {
            obs.begin_batch(now_ms);
        }
    }

    /// Exports every cached flow and sends the last batch (end of input).
    pub fn finish(&mut self) {
        if let Some(obs) = self.export.as_mut() {
            obs.finish();
        }
    }

    pub fn shard(&self) -> &Arc<Shard> {
        &self.shard
    }

    pub fn collector(&self) -> &Collector {
        &self.collector
    }

    /// What the scrape reads.
    pub fn published(&self) -> Arc<Published> {
        self.published.clone()
    }

    /// Decodes one datagram from `from` and counts its records.
    pub fn datagram(&mut self, from: SocketAddr, now: Instant, data: &[u8]) {
        let hosts = self.shard.hosts.load();
        let FlowInput {
            collector,
            shard,
            names,
            export,
            ..
        } = self;
        let ip = from.ip().to_canonical();
        collector.datagram(from, now, data, &mut |rec| {
            account(shard, &hosts, names, export.as_mut(), ip, rec)
        });
    }

    /// Receives on `rx` until `stop` is set: recvmmsg batches, each
    /// datagram decoded and counted; the counters published every
    /// [`PUBLISH_INTERVAL`] and when idle.
    pub fn run(&mut self, rx: &mut Receiver, stop: &AtomicBool) {
        if let Err(e) = rx.set_timeout(Some(PUBLISH_INTERVAL)) {
            tracing::warn!(
                listen = self.listen.as_str(),
                "collector socket timeout: {e}"
            );
        }
        while !stop.load(Relaxed) {
            let now = Instant::now();
            self.tick(now_ms());
            // One table generation per batch; a reload swaps it between batches.
            let hosts = self.shard.hosts.load_full();
            let FlowInput {
                collector,
                shard,
                names,
                export,
                ..
            } = self;
            let got = rx.recv_batch(|from, data| {
                let ip = from.ip().to_canonical();
                collector.datagram(from, now, data, &mut |rec| {
                    account(shard, &hosts, names, export.as_mut(), ip, rec)
                });
            });
            let idle = match got {
                Ok(n) => n == 0,
                Err(e) => {
                    tracing::warn!(listen = self.listen.as_str(), "collector receive: {e}");
                    std::thread::sleep(PUBLISH_INTERVAL);
                    true
                }
            };
            if idle {
                self.collector.maintain(now, &mut |_| {});
            }
            if idle
                || self
                    .last_publish
                    .map_or(true, |t| now.duration_since(t) >= PUBLISH_INTERVAL)
            {
                self.publish(rx.stats());
                self.last_publish = Some(now);
            }
        }
        self.finish();
        self.publish(rx.stats());
    }

    /// Copies the collector's counters for the scrape.
    pub fn publish(&self, socket: ReceiverStats) {
        let c = &self.collector;
        let mut buf = String::new();
        let snap = Snapshot {
            listen: self.listen.clone(),
            stats: c.stats().clone(),
            exporters: c
                .exporters()
                .map(|(_, _, name, s)| (name.to_string(), s.clone()))
                .collect(),
            counters: c
                .interface_counters()
                .map(|(ex, ic)| {
                    c.interface_label(ex, ic.if_index, &mut buf);
                    (buf.clone(), *ic)
                })
                .collect(),
            socket,
        };
        *self.published.0.lock().unwrap_or_else(|p| p.into_inner()) = snap;
    }
}

/// The families [`CollectorMetrics`] renders.
const FAMILIES: [&Family; 15] = [
    &cat::COLLECTOR_DATAGRAMS,
    &cat::COLLECTOR_RECORDS,
    &cat::COLLECTOR_RECORDS_DEFAULT_RATE,
    &cat::COLLECTOR_SAMPLING_RATE,
    &cat::COLLECTOR_SEQUENCE_GAPS,
    &cat::COLLECTOR_MALFORMED,
    &cat::COLLECTOR_DROPPED,
    &cat::COLLECTOR_SOCKET_DROPS,
    &cat::COLLECTOR_TEMPLATES,
    &cat::COLLECTOR_EXPORTERS,
    &cat::COLLECTOR_SFLOW_IF_BYTES,
    &cat::COLLECTOR_SFLOW_IF_PACKETS,
    &cat::COLLECTOR_SFLOW_IF_ERRORS,
    &cat::COLLECTOR_SFLOW_IF_DISCARDS,
    &cat::COLLECTOR_SFLOW_IF_UP,
];

/// `xdpacct_collector_*`, summed over the receiver threads' snapshots
/// (an exporter seen by several threads is summed by name; its rate in
/// use is the highest).
pub struct CollectorMetrics {
    inputs: Vec<Arc<Published>>,
    descs: Vec<Desc>,
}

impl CollectorMetrics {
    pub fn new(inputs: Vec<Arc<Published>>) -> Self {
        CollectorMetrics {
            inputs,
            descs: FAMILIES.iter().map(|f| f.desc()).collect(),
        }
    }
}

impl PromCollector for CollectorMetrics {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let snaps: Vec<Snapshot> = self.inputs.iter().map(|p| p.get()).collect();
        let mut exporters: BTreeMap<&str, ExporterStats> = BTreeMap::new();
        for s in &snaps {
            for (name, e) in &s.exporters {
                let t = exporters.entry(name.as_str()).or_default();
                for p in 0..FlowProtocol::COUNT {
                    t.datagrams_by_protocol[p] += e.datagrams_by_protocol[p];
                    t.records_by_protocol[p] += e.records_by_protocol[p];
                }
                t.records_default_rate += e.records_default_rate;
                t.rate_in_use = t.rate_in_use.max(e.rate_in_use);
                t.lost_datagrams += e.lost_datagrams;
                t.lost_records += e.lost_records;
                t.lost_samples += e.lost_samples;
                t.lost_counter_samples += e.lost_counter_samples;
            }
        }
        let (mut dg, mut rec, mut def, mut rate, mut gaps) =
            (vec![], vec![], vec![], vec![], vec![]);
        for (name, e) in &exporters {
            for p in FlowProtocol::ALL {
                let (d, r) = (
                    e.datagrams_by_protocol[p as usize],
                    e.records_by_protocol[p as usize],
                );
                if d == 0 && r == 0 {
                    continue;
                }
                let l = vec![label("exporter", *name), label("protocol", p.as_str())];
                dg.push(counter(l.clone(), d));
                rec.push(counter(l, r));
            }
            def.push(counter(
                vec![label("exporter", *name)],
                e.records_default_rate,
            ));
            if e.rate_in_use > 0 {
                rate.push(gauge(
                    vec![label("exporter", *name)],
                    f64::from(e.rate_in_use),
                ));
            }
            for (unit, v) in [
                ("datagrams", e.lost_datagrams),
                ("records", e.lost_records),
                ("samples", e.lost_samples),
                ("counter_samples", e.lost_counter_samples),
            ] {
                gaps.push(counter(
                    vec![label("exporter", *name), label("unit", unit)],
                    v,
                ));
            }
        }
        let (mut malformed, mut dropped) = (vec![], vec![]);
        for r in DropReason::ALL {
            let v = snaps.iter().map(|s| s.stats.dropped(r)).sum();
            let m = counter(vec![label("reason", r.as_str())], v);
            if r.is_malformed() {
                malformed.push(m);
            } else {
                dropped.push(m);
            }
        }
        // Several receiver threads share a listen address: one series each.
        let mut by_listen: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for s in snaps.iter().filter(|s| !s.listen.is_empty()) {
            let e = by_listen.entry(s.listen.as_str()).or_default();
            e.0 += s.socket.kernel_drops;
            e.1 += s.socket.truncated;
        }
        let mut sock = vec![];
        for (listen, (full, truncated)) in by_listen {
            for (reason, v) in [("buffer_full", full), ("truncated", truncated)] {
                sock.push(counter(
                    vec![label("listen", listen), label("reason", reason)],
                    v,
                ));
            }
        }
        let templates = snaps.iter().map(|s| s.stats.templates_active).sum::<u64>();
        let known = snaps.iter().map(|s| s.stats.exporters_active).sum::<u64>();
        let (mut ib, mut ip, mut ie, mut idisc, mut iup) = (vec![], vec![], vec![], vec![], vec![]);
        // One entry per interface: the latest sample if two threads saw it.
        let mut counters: BTreeMap<&str, &InterfaceCounters> = BTreeMap::new();
        for s in &snaps {
            for (l, c) in &s.counters {
                let e = counters.entry(l.as_str()).or_insert(c);
                if c.samples > e.samples {
                    *e = c;
                }
            }
        }
        for (l, c) in counters {
            let with = |dir: &str| vec![label("interface", l), label("direction", dir)];
            ib.push(counter(with("in"), c.in_octets));
            ib.push(counter(with("out"), c.out_octets));
            let pin = u64::from(c.in_ucast_pkts)
                + u64::from(c.in_multicast_pkts)
                + u64::from(c.in_broadcast_pkts);
            let pout = u64::from(c.out_ucast_pkts)
                + u64::from(c.out_multicast_pkts)
                + u64::from(c.out_broadcast_pkts);
            ip.push(counter(with("in"), pin));
            ip.push(counter(with("out"), pout));
            ie.push(counter(with("in"), u64::from(c.in_errors)));
            ie.push(counter(with("out"), u64::from(c.out_errors)));
            idisc.push(counter(with("in"), u64::from(c.in_discards)));
            idisc.push(counter(with("out"), u64::from(c.out_discards)));
            iup.push(gauge(
                vec![label("interface", l)],
                f64::from(u8::from(c.if_status & 2 != 0)),
            ));
        }
        vec![
            cat::COLLECTOR_DATAGRAMS.family(dg),
            cat::COLLECTOR_RECORDS.family(rec),
            cat::COLLECTOR_RECORDS_DEFAULT_RATE.family(def),
            cat::COLLECTOR_SAMPLING_RATE.family(rate),
            cat::COLLECTOR_SEQUENCE_GAPS.family(gaps),
            cat::COLLECTOR_MALFORMED.family(malformed),
            cat::COLLECTOR_DROPPED.family(dropped),
            cat::COLLECTOR_SOCKET_DROPS.family(sock),
            cat::COLLECTOR_TEMPLATES.family(vec![gauge(vec![], templates as f64)]),
            cat::COLLECTOR_EXPORTERS.family(vec![gauge(vec![], known as f64)]),
            cat::COLLECTOR_SFLOW_IF_BYTES.family(ib),
            cat::COLLECTOR_SFLOW_IF_PACKETS.family(ip),
            cat::COLLECTOR_SFLOW_IF_ERRORS.family(ie),
            cat::COLLECTOR_SFLOW_IF_DISCARDS.family(idisc),
            cat::COLLECTOR_SFLOW_IF_UP.family(iup),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Accounting;
    use crate::shard::{ShardOrigin, Tables};

    fn input(cfg: CollectorConfig) -> FlowInput {
        let acct = Accounting::from_raw(&Default::default(), "test").unwrap();
        let tables = Arc::new(Tables::build(&acct, "test", None).unwrap());
        let shard = Arc::new(Shard::new_flow(
            ShardOrigin {
                interface: "collector:test".into(),
                queue: 0,
            },
            tables,
            16,
        ));
        FlowInput::new(cfg, shard, "127.0.0.1:6343".into()).unwrap()
    }

    /// sFlow v5 datagram with one counter sample: generic interface
    /// counters of ifIndex 4 (in 123456789 octets, out 777; oper up).
    fn counter_datagram() -> Vec<u8> {
        let mut g = Vec::new();
        for v in [4u32, 6] {
            g.extend_from_slice(&v.to_be_bytes());
        }
        g.extend_from_slice(&10_000_000_000u64.to_be_bytes());
        for v in [1u32, 3] {
            g.extend_from_slice(&v.to_be_bytes());
        }
        g.extend_from_slice(&123_456_789u64.to_be_bytes());
        for v in [1000u32, 20, 3, 4, 5, 6] {
            g.extend_from_slice(&v.to_be_bytes());
        }
        g.extend_from_slice(&777u64.to_be_bytes());
        for v in [2000u32, 30, 7, 8, 9, 0] {
            g.extend_from_slice(&v.to_be_bytes());
        }
        assert_eq!(g.len(), 88);
        let mut sample = Vec::new();
        for v in [5u32, 4, 1, 1, g.len() as u32] {
            sample.extend_from_slice(&v.to_be_bytes());
        }
        sample.extend_from_slice(&g);
        let mut d = Vec::new();
        for v in [5u32, 1, 0xc000_0201, 0, 1, 1000, 1, 2, sample.len() as u32] {
            d.extend_from_slice(&v.to_be_bytes());
        }
        d.extend_from_slice(&sample);
        d
    }

    #[test]
    fn sflow_counter_samples_become_interface_metrics() {
        let mut cfg = CollectorConfig::default();
        cfg.exporters.push(ExporterConfig {
            address: "192.0.2.1".parse().unwrap(),
            name: "edge1".into(),
            sampling_rate: None,
            interfaces: [(4, "xe-0/0/4".to_string())].into(),
        });
        let mut fi = input(cfg);
        fi.datagram(
            "192.0.2.1:6343".parse().unwrap(),
            Instant::now(),
            &counter_datagram(),
        );
        fi.publish(ReceiverStats::default());
        let m = CollectorMetrics::new(vec![fi.published()]);
        let fams = m.collect();
        let find = |name: &str| {
            fams.iter()
                .find(|f| f.name() == name)
                .unwrap_or_else(|| panic!("{name}"))
        };
        let bytes = find("xdpacct_collector_sflow_interface_bytes_total");
        let got: Vec<(String, String, f64)> = bytes
            .get_metric()
            .iter()
            .map(|m| {
                (
                    m.get_label()[0].value().to_string(),
                    m.get_label()[1].value().to_string(),
                    m.get_counter().get_value(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("edge1:xe-0/0/4".into(), "in".into(), 123_456_789.0),
                ("edge1:xe-0/0/4".into(), "out".into(), 777.0),
            ]
        );
        let up = find("xdpacct_collector_sflow_interface_up");
        assert_eq!(up.get_metric()[0].get_gauge().get_value(), 1.0);
        let packets = find("xdpacct_collector_sflow_interface_packets_total");
        assert_eq!(packets.get_metric()[0].get_counter().get_value(), 1023.0);
        let dg = find("xdpacct_collector_datagrams_total");
        assert_eq!(dg.get_metric()[0].get_counter().get_value(), 1.0);
        assert_eq!(dg.get_metric()[0].get_label()[1].value(), "sflow_v5");
    }
}

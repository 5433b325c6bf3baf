//! Glue between the engine and flow export: [`FlowExport`] builds the
//! exporter and per-shard caches from `[netflow]`, and [`FlowObserver`]
//! plugs one shard's cache into a worker as its `FrameObserver`.
//!
//! ```ignore
//! let mut export = FlowExport::start(&netflow)?; // settings.netflow, when Some
//! let worker = Worker::new(shard, batch);
//! let worker = worker.with_observer(Box::new(export.observer("eth1/0", if_index)));
//! // after the observers are made:
//! registry.register(Box::new(export.metrics()))?;
//! // shutdown: join the workers (their `finish` flushes), then
//! export.shutdown()?;
//! ```
//!
//! Allocates at set-up only (each cache's table); the observer does not
//! allocate per frame.

use std::sync::Arc;

use super::cache::{FlowCounts, FlowRef, SweepVisitor};
use super::connections::TopView;
use super::{
    EncoderConfig, ExportError, ExporterConfig, FlowCache, FlowCacheConfig, FlowExporter, FlowKey,
    FlowMetrics, FlowRecord, FlowSink, FlowStats, Version,
};
use crate::settings::Netflow;
use crate::shard::worker::FrameObserver;
use crate::shard::Direction;
use crate::wire::FrameFacts;

/// One shard's flow cache, fed by its worker, with its sink to the
/// exporter (`[netflow]`) and/or the busiest-connections view
/// (`[connections] top`).
pub struct FlowObserver {
    cache: FlowCache,
    sink: Option<FlowSink>,
    view: Option<TopView>,
    iface: u16,
    now_ms: u64,
}

/// Where the records leaving the cache go: the view's carry, the sink.
struct Out<'a> {
    sink: Option<&'a mut FlowSink>,
    view: Option<&'a mut TopView>,
}

impl SweepVisitor for Out<'_> {
    #[inline]
    fn export(&mut self, r: FlowRecord) {
        if let Some(v) = self.view.as_deref_mut() {
            v.exported(&r);
        }
        if let Some(s) = self.sink.as_deref_mut() {
            s.push(r);
        }
    }

    #[inline]
    fn flow(&mut self, f: FlowRef<'_>) {
        if let Some(v) = self.view.as_deref_mut() {
            v.flow(f);
        }
    }

    fn swept(&mut self) {
        if let Some(v) = self.view.as_deref_mut() {
            v.swept();
        }
    }
}

impl FlowObserver {
    /// `iface` is exported as INPUT_SNMP / ingressInterface.
    pub fn new(iface: u16, cache: FlowCache, sink: FlowSink) -> Self {
        FlowObserver {
            cache,
            sink: Some(sink),
            view: None,
            iface,
            now_ms: 0,
        }
    }

    /// A cache that only feeds the busiest-connections view (no `[netflow]`).
    pub fn view_only(iface: u16, cache: FlowCache, view: TopView) -> Self {
        FlowObserver {
            cache,
            sink: None,
            view: Some(view),
            iface,
            now_ms: 0,
        }
    }

    /// Adds the busiest-connections view of this cache.
    pub fn with_view(mut self, view: TopView) -> Self {
        self.view = Some(view);
        self
    }

    pub fn cache(&self) -> &FlowCache {
        &self.cache
    }

    fn out(&mut self) -> (&mut FlowCache, Out<'_>) {
        let out = Out {
            sink: self.sink.as_mut(),
            view: self.view.as_mut(),
        };
        (&mut self.cache, out)
    }
}

impl FlowObserver {
    /// Adds one flow record received from a router (flow input, see
    /// `collector::input`) to the cache at the clock of the last
    /// `begin_batch`: its own packets and bytes, and its times when given.
    #[inline]
    pub fn observe_flow(&mut self, key: &FlowKey, counts: FlowCounts, times: Option<(u64, u64)>) {
        let now_ms = self.now_ms;
        let (cache, mut out) = self.out();
        cache.add_flow(key, counts, times, now_ms, &mut |r| out.export(r));
    }
}

/// The exported direction: `Direction as u8` (in 0 = IPFIX "ingress",
/// out 1 = "egress"; internal 2 and external 3 are outside the IPFIX
/// registry's values and are exported as they are).
#[inline]
pub fn flow_direction(d: Direction) -> u8 {
    d as u8
}

impl FrameObserver for FlowObserver {
    fn begin_batch(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
        let (cache, mut out) = self.out();
        cache.expire_with(now_ms, &mut out);
        if let Some(sink) = self.sink.as_mut() {
            sink.tick(now_ms);
        }
    }

    #[inline]
    fn observe(&mut self, facts: &FrameFacts, bytes: u64, direction: Direction) {
        let (iface, now_ms) = (self.iface, self.now_ms);
        let (cache, mut out) = self.out();
        cache.enqueue(
            iface,
            facts,
            bytes,
            flow_direction(direction),
            now_ms,
            &mut |r| out.export(r),
        );
    }

    fn end_batch(&mut self) {
        let (cache, mut out) = self.out();
        cache.drain(&mut |r| out.export(r));
    }

    fn finish(&mut self) {
        let now_ms = self.now_ms;
        let (cache, mut out) = self.out();
        cache.drain(&mut |r| out.export(r));
        // The view's last list: every flow as it ends.
        if let Some(v) = out.view.as_deref_mut() {
            v.restart();
            cache.visit_all(now_ms, v);
        }
        cache.flush_all(&mut |r| out.export(r));
        if let Some(sink) = self.sink.as_mut() {
            sink.flush();
        }
    }
}

/// The exporter and the shards' flow statistics, built from `[netflow]`.
pub struct FlowExport {
    exporter: FlowExporter,
    cache: FlowCacheConfig,
    shards: Vec<(String, Arc<FlowStats>)>,
}

impl FlowExport {
    /// Starts the exporter thread for the collectors of `cfg`.
    pub fn start(cfg: &Netflow) -> Result<FlowExport, ExportError> {
        let (cache, exporter) = configs(cfg);
        FlowExport::with_config(cache, &exporter)
    }

    /// Starts the exporter from typed settings (e.g. `configs(..)` adjusted:
    /// pacing, channel size, `ExportClock::Records`).
    pub fn with_config(
        cache: FlowCacheConfig,
        exporter: &ExporterConfig,
    ) -> Result<FlowExport, ExportError> {
        Ok(FlowExport {
            exporter: FlowExporter::start(exporter)?,
            cache,
            shards: Vec::new(),
        })
    }

    /// A flow cache + sink for one more shard, labelled `shard` in metrics.
    pub fn observer(&mut self, shard: &str, iface: u16) -> FlowObserver {
        let stats = Arc::new(FlowStats::default());
        self.shards.push((shard.to_owned(), stats.clone()));
        let cache = FlowCache::new(&self.cache, stats.clone());
        FlowObserver::new(iface, cache, self.exporter.sink(stats))
    }

    /// A `prometheus` collector over the exporter and every shard made so far.
    pub fn metrics(&self) -> FlowMetrics {
        FlowMetrics::new(self.shards.clone(), self.exporter.stats().clone())
    }

    pub fn exporter(&self) -> &FlowExporter {
        &self.exporter
    }

    /// Sends what is queued and stops the exporter thread. Call after the
    /// workers have finished (their observers flush on `finish`).
    pub fn shutdown(self) -> Result<(), ExportError> {
        self.exporter.shutdown()
    }
}

/// The cache's and the exporter's parts of `[netflow]` (times in ms).
pub fn configs(cfg: &Netflow) -> (FlowCacheConfig, ExporterConfig) {
    let ms = |d: std::time::Duration| d.as_millis() as u64;
    let cache = FlowCacheConfig {
        max_flows: cfg.max_flows as usize,
        idle_timeout_ms: ms(cfg.idle_timeout),
        active_timeout_ms: ms(cfg.active_timeout),
    };
    let exporter = ExporterConfig {
        collectors: cfg.collectors.clone(),
        encoder: EncoderConfig {
            version: Version::from_number(cfg.version.into()).unwrap_or(Version::Ipfix),
            domain_id: cfg.observation_domain,
            mtu: cfg.mtu.into(),
            template_refresh_ms: ms(cfg.template_refresh),
            template_refresh_packets: cfg.template_refresh_packets,
            ..EncoderConfig::default()
        },
        ..ExporterConfig::default()
    };
    (cache, exporter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::decode::Decoder;
    use crate::wire::L3Addrs;
    use std::net::UdpSocket;
    use std::time::Duration;

    #[test]
    fn observer_exports_through_the_exporter() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        server.set_read_timeout(Some(Duration::from_secs(5))).ok();
        let port = server.local_addr().map(|a| a.port()).unwrap_or(0);
        let cfg = Netflow {
            collectors: vec![format!("127.0.0.1:{port}")],
            version: 9,
            ..Default::default()
        };
        let mut export = FlowExport::start(&cfg).unwrap_or_else(|e| panic!("{e}"));
        let mut obs = export.observer("lo/0", 1);
        let facts = FrameFacts {
            addrs: L3Addrs::V4 {
                src: [198, 51, 100, 1],
                dst: [203, 0, 113, 9],
            },
            protocol: 17,
            src_port: 5000,
            dst_port: 53,
            has_l4: true,
            ..FrameFacts::default()
        };
        obs.begin_batch(1_700_000_000_000);
        obs.observe(&facts, 100, Direction::Out);
        obs.observe(&facts, 200, Direction::Out);
        obs.begin_batch(1_700_000_000_010);
        assert_eq!(obs.cache().len(), 1);
        obs.finish();
        let metrics = export.metrics();
        assert!(export.shutdown().is_ok());
        let mut buf = [0xa5u8; 2048];
        let n = server
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("recv: {e}"));
        let d = Decoder::default().decode(&buf[..n]).unwrap_or_default();
        assert_eq!(d.records.len(), 1);
        let r = d.records[0];
        assert_eq!(
            (r.packets, r.bytes, r.direction, r.key.iface),
            (2, 300, 1, 1)
        );
        use prometheus::core::Collector;
        assert_eq!(metrics.collect().len(), 7);
    }

    #[test]
    fn seconds_become_milliseconds() {
        let (c, e) = configs(&Netflow::default());
        assert_eq!(
            (c.max_flows, c.idle_timeout_ms, c.active_timeout_ms),
            (65536, 15_000, 60_000)
        );
        assert_eq!(e.encoder.version, Version::Ipfix);
        assert_eq!(
            (e.encoder.mtu, e.encoder.template_refresh_ms),
            (1400, 20_000)
        );
    }
}

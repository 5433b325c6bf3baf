//! Scrape-time merge, exposition and the HTTP server.
//!
//! Nothing here runs on the workers' cores or touches the hot path: a scrape
//! reads the shards' atomics and renders text. Allocates per scrape.

pub mod catalogue;
pub mod engine;
pub mod fold;
pub mod server;
pub mod web_config;

use std::sync::{Arc, RwLock};

use prometheus::core::Collector;
use prometheus::proto::MetricFamily;
use prometheus::{Encoder, TextEncoder};

pub use engine::{EngineCollector, HostView};

/// Every source of metrics the scrape page shows.
#[derive(Clone, Default)]
pub struct Exposition {
    collectors: Arc<RwLock<Vec<Box<dyn Collector>>>>,
    engines: Arc<RwLock<Vec<Arc<EngineCollector>>>>,
}

impl Exposition {
    pub fn new() -> Self {
        let e = Exposition::default();
        e.register(Box::new(BuildInfo));
        e
    }

    pub fn register(&self, c: Box<dyn Collector>) {
        self.collectors.write().expect("collectors lock").push(c);
    }

    /// Registers the accounting counters (host series are written as text directly).
    pub fn register_engine(&self, engine: Arc<EngineCollector>) {
        self.engines
            .write()
            .expect("engines lock")
            .push(engine.clone());
        self.register(Box::new(EngineHandle(engine)));
    }

    /// All metric families, sorted by name. Unlike `Registry::gather` this
    /// does not sort the series of a family: they come in a stable order.
    pub fn gather(&self) -> Vec<MetricFamily> {
        let mut families: Vec<MetricFamily> = self
            .collectors
            .read()
            .expect("collectors lock")
            .iter()
            .flat_map(|c| c.collect())
            .collect();
        families.retain(|f| !f.get_metric().is_empty());
        families.sort_by(|a, b| a.name().cmp(b.name()));
        families
    }

    /// The text exposition format (version 0.0.4).
    pub fn render(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(1 << 16);
        TextEncoder::new()
            .encode(&self.gather(), &mut buf)
            .expect("text encoding to a Vec cannot fail");
        for engine in self.engines.read().expect("engines lock").iter() {
            engine.write_hosts_text(&mut buf);
        }
        buf
    }
}

/// `xdpacct_build_info{version} 1`.
struct BuildInfo;

impl Collector for BuildInfo {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        vec![]
    }
    fn collect(&self) -> Vec<MetricFamily> {
        use catalogue::{gauge, label, BUILD_INFO};
        vec![BUILD_INFO.family(vec![gauge(
            vec![label("version", env!("CARGO_PKG_VERSION"))],
            1.0,
        )])]
    }
}

/// Lets an `Arc<EngineCollector>` be registered as a boxed collector.
struct EngineHandle(Arc<EngineCollector>);

impl Collector for EngineHandle {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.0.desc()
    }
    fn collect(&self) -> Vec<MetricFamily> {
        self.0.collect()
    }
}

//! The accounting engine, assembled once for `run` and `replay` alike:
//! the tables of the current settings, one shard and worker per
//! (interface, queue) with the observers the settings ask for (flow
//! export), and the exposition that sums the shards at scrape.
//!
//! ```ignore
//! let mut engine = Engine::build(&settings)?;       // tables (AS files)
//! engine.start_export()?;                             // exporter thread, if configured
//! let worker = engine.add_queue("eth1", 0, ifindex)?; // shard + worker + observers
//! let page = engine.exposition();                     // after the last add_queue
//! engine.reload(&new_settings.accounting, origin)?;   // SIGHUP
//! engine.shutdown()?;                                 // after the workers finished
//! ```
//!
//! Start-up and reload only: allocates, may take seconds (a full AS table).

use std::sync::Arc;

use crate::collector::input::{CollectorMetrics, FlowInput, Published};
use crate::collector::CollectorConfig;
use crate::export::connections::{ConnectionsCollector, Published as TopList, TopView};
use crate::export::observer::{FlowExport, FlowObserver};
use crate::export::{FlowCache, FlowCacheConfig, FlowStats};
use crate::metrics::{EngineCollector, Exposition, HostView};
use crate::rtt::metrics::RttCollector;
use crate::rtt::table::HandshakeTable;
use crate::rtt::{Probe, RttShard};
use crate::settings::{Accounting, Netflow, Settings, SettingsError};
use crate::shard::worker::Worker;
use crate::shard::{Shard, ShardOrigin, Tables};

/// Tables, shards and observers of one running engine.
pub struct Engine {
    tables: Arc<Tables>,
    batch: usize,
    origin: String,
    view: HostView,
    netflow: Option<Netflow>,
    export: Option<FlowExport>,
    shards: Vec<Arc<Shard>>,
    collector: Option<Arc<EngineCollector>>,
    /// `[tcp_rtt]`: the shared handshake table and each worker's histograms.
    rtt: Option<(Arc<HandshakeTable>, Vec<Arc<RttShard>>)>,
    /// `[collector]`, and what each flow input publishes for the scrape.
    flow: Option<crate::settings::collector::Collector>,
    flow_published: Vec<Arc<Published>>,
    /// `[connections]`: (top, idle timeout in ms) and each worker's list.
    connections: Option<(usize, u64, Vec<TopList>)>,
}

/// Why the engine could not be built.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("{origin}: netflow: {source}")]
    Export {
        origin: String,
        #[source]
        source: crate::export::ExportError,
    },
    /// The host tables (of a start or a reload) do not fit in the memory
    /// the process may have.
    #[error("{origin}: the host tables do not fit: {source}")]
    Memory {
        origin: String,
        #[source]
        source: crate::memory::OutOfMemory,
    },
}

impl Engine {
    /// Builds the lookup tables (loading the AS files).
    pub fn build(settings: &Settings) -> Result<Engine, EngineError> {
        let tables = Tables::build(&settings.accounting, &settings.origin, None)?;
        Ok(Engine {
            tables: Arc::new(tables),
            batch: settings.capture.batch,
            origin: settings.origin.clone(),
            view: HostView {
                series: settings.accounting.host_series,
                idle_timeout: settings.accounting.host_idle_timeout,
                max_series: settings.metrics.max_series,
            },
            netflow: settings.netflow.clone(),
            export: None,
            shards: Vec::new(),
            collector: None,
            rtt: settings.tcp_rtt.enabled.then(|| {
                let t = &settings.tcp_rtt;
                let table = HandshakeTable::new(t.max_pending, t.timeout.as_nanos() as u64);
                (Arc::new(table), Vec::new())
            }),
            flow: settings.collector.clone(),
            flow_published: Vec::new(),
            connections: (settings.connections.top > 0).then(|| {
                let c = &settings.connections;
                (
                    c.top as usize,
                    c.idle_timeout.as_millis() as u64,
                    Vec::new(),
                )
            }),
        })
    }

    /// Starts the flow exporter's thread when `[netflow]` has collectors.
    /// Separate from `build` so that the daemon can drop its capabilities
    /// before any thread starts. Call before the first `add_queue`.
    pub fn start_export(&mut self) -> Result<(), EngineError> {
        if let (Some(n), None) = (&self.netflow, &self.export) {
            let export = FlowExport::start(n).map_err(|source| EngineError::Export {
                origin: self.origin.clone(),
                source,
            })?;
            self.export = Some(export);
        }
        Ok(())
    }

    /// A new shard for one (interface, queue) and the worker that fills it,
    /// with every observer the settings ask for. `ifindex` is what flow
    /// export names as the ingress interface. Fails when the shard's host
    /// slots, and room for the scrapes that read them, do not fit in memory.
    pub fn add_queue(
        &mut self,
        interface: &str,
        queue: u32,
        ifindex: u32,
    ) -> Result<Worker, EngineError> {
        debug_assert!(self.collector.is_none(), "add_queue after exposition");
        debug_assert!(
            self.netflow.is_none() || self.export.is_some(),
            "add_queue before start_export"
        );
        let memory = |source| EngineError::Memory {
            origin: self.origin.clone(),
            source,
        };
        let slots = self.tables.slots;
        crate::memory::headroom(slots.saturating_mul(
            std::mem::size_of::<crate::shard::HostCounters>()
                + crate::metrics::engine::SCRAPE_BYTES_PER_SLOT,
        ))
        .map_err(memory)?;
        let shard = Shard::try_new(
            ShardOrigin {
                interface: interface.into(),
                queue,
            },
            self.tables.clone(),
        )
        .map_err(memory)?;
        let shard = Arc::new(shard);
        self.shards.push(shard.clone());
        let mut worker = Worker::new(shard, self.batch);
        let view = self.connections.as_mut().map(|(top, idle_ms, lists)| {
            let view = TopView::new(*top, *idle_ms);
            lists.push(view.published());
            (view, *idle_ms)
        });
        match (self.export.as_mut(), view) {
            (Some(x), view) => {
                let name = format!("{interface}/{queue}");
                let mut obs = x.observer(&name, ifindex as u16);
                if let Some((view, _)) = view {
                    obs = obs.with_view(view);
                }
                worker = worker.with_observer(Box::new(obs));
            }
            (None, Some((view, idle_ms))) => {
                // A cache for the view alone: flows kept as long as the view
                // shows them, cut like flow export's (see the connections docs).
                let d = FlowCacheConfig::default();
                let cfg = FlowCacheConfig {
                    idle_timeout_ms: idle_ms,
                    ..d
                };
                let cache = FlowCache::new(&cfg, Arc::new(FlowStats::default()));
                worker = worker.with_observer(Box::new(FlowObserver::view_only(
                    ifindex as u16,
                    cache,
                    view,
                )));
            }
            (None, None) => {}
        }
        if let Some((table, shards)) = self.rtt.as_mut() {
            let shard = Arc::new(RttShard::default());
            shards.push(shard.clone());
            worker = worker.with_rtt(Probe::new(table.clone(), shard));
        }
        Ok(worker)
    }

    /// A flow-fed shard and the collector that fills it, for one receiver
    /// thread of `listen` (or a replay worker: `listen` empty). `None`
    /// without `[collector]`. With `[netflow]` (call `start_export`
    /// first) the records are also exported, through a flow cache of
    /// their own. Flow records count into the same tables as
    /// captured frames; the shard's interfaces are the exporters'
    /// (`<exporter>:<ifname or ifIndex>`).
    pub fn add_flow_input(&mut self, listen: &str, thread: u32) -> Option<FlowInput> {
        debug_assert!(self.collector.is_none(), "add_flow_input after exposition");
        let settings = self.flow.as_ref()?;
        let shard = Arc::new(Shard::new_flow(
            ShardOrigin {
                interface: format!("collector:{listen}").into(),
                queue: thread,
            },
            self.tables.clone(),
            settings.max_interfaces,
        ));
        self.shards.push(shard.clone());
        let cfg = CollectorConfig::from_settings(settings);
        // The settings checked everything `Collector::new` checks.
        let mut input = FlowInput::new(cfg, shard, listen.to_string())
            .unwrap_or_else(|e| panic!("[collector] settings passed validation: {e}"));
        // With [netflow], the records are exported like captured flows:
        // a flow cache and sink of their own (README "Flow input").
        if let Some(x) = self.export.as_mut() {
            input = input.with_export(x.observer(&format!("collector:{listen}/{thread}"), 0));
        }
        self.flow_published.push(input.published());
        Some(input)
    }

    /// `[collector]`, when configured.
    pub fn flow_settings(&self) -> Option<&crate::settings::collector::Collector> {
        self.flow.as_ref()
    }

    /// The page: build info, the shards' counters, flow export's own
    /// counters. Call after the last `add_queue`; the caller registers what
    /// else it has (capture and supervision counters).
    pub fn exposition(&mut self) -> Exposition {
        let collector = self.collector();
        let exposition = Exposition::new();
        exposition.register_engine(collector.clone());
        if let Some(x) = &self.export {
            exposition.register(Box::new(x.metrics()));
        }
        if let Some((top, _, lists)) = &self.connections {
            exposition.register(Box::new(ConnectionsCollector::new(lists.clone(), *top)));
        }
        if let Some((table, shards)) = &self.rtt {
            exposition.register(Box::new(RttCollector::new(
                shards.clone(),
                table.clone(),
                collector,
            )));
        }
        if self.flow.is_some() {
            exposition.register(Box::new(CollectorMetrics::new(self.flow_published.clone())));
        }
        exposition
    }

    /// The scrape-time sum of the shards (also what the billing ledger
    /// reads). Call after the last `add_queue`.
    pub fn collector(&mut self) -> Arc<EngineCollector> {
        self.collector
            .get_or_insert_with(|| {
                Arc::new(EngineCollector::with_view(self.shards.clone(), self.view))
            })
            .clone()
    }

    /// Builds the tables of new `[accounting]` settings and swaps them in
    /// on every shard without losing a count. On error (a bad setting, an
    /// AS file, tables that do not fit in memory) nothing changes.
    pub fn reload(&mut self, accounting: &Accounting, origin: &str) -> Result<(), EngineError> {
        let tables = Arc::new(Tables::build(accounting, origin, Some(&self.tables))?);
        if let Some(c) = &self.collector {
            c.reload(tables.clone())
                .map_err(|source| EngineError::Memory {
                    origin: origin.to_string(),
                    source,
                })?;
        }
        self.tables = tables;
        Ok(())
    }

    /// Sends what flow export has queued and stops its thread. Call after
    /// the workers have finished (their observers flush when they stop).
    pub fn shutdown(self) -> Result<(), crate::export::ExportError> {
        match self.export {
            Some(x) => x.shutdown(),
            None => Ok(()),
        }
    }
}

/// What `check-config` checks beyond the settings: the tables build (AS
/// files load) and the web config loads.
pub fn check(settings: &Settings) -> Result<(), String> {
    Tables::build(&settings.accounting, &settings.origin, None).map_err(|e| e.to_string())?;
    if let Some(path) = &settings.metrics.web_config {
        crate::metrics::web_config::WebConfig::load(path)
            .map_err(|e| format!("{}: {e}", settings.origin))?;
    }
    Ok(())
}

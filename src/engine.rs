//! The accounting engine, assembled once for `run` and `replay` alike:
//! the tables of the current settings, one shard and worker per
//! (interface, queue) with the observers the settings ask for (flow
//! export), and the exposition that sums the shards at scrape.
//!
//! ```ignore
//! let mut engine = Engine::build(&settings)?;       // tables (AS files)
//! engine.start_export()?;                             // exporter thread, if configured
//! let worker = engine.add_queue("eth1", 0, ifindex);  // shard + worker + observers
//! let page = engine.exposition();                     // after the last add_queue
//! engine.reload(&new_settings.accounting, origin)?;   // SIGHUP
//! engine.shutdown()?;                                 // after the workers finished
//! ```
//!
//! Start-up and reload only: allocates, may take seconds (a full AS table).

use std::sync::Arc;

use crate::export::observer::FlowExport;
use crate::metrics::{EngineCollector, Exposition, HostView};
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
    /// export names as the ingress interface.
    pub fn add_queue(&mut self, interface: &str, queue: u32, ifindex: u32) -> Worker {
        debug_assert!(self.collector.is_none(), "add_queue after exposition");
        debug_assert!(
            self.netflow.is_none() || self.export.is_some(),
            "add_queue before start_export"
        );
        let shard = Arc::new(Shard::new(
            ShardOrigin {
                interface: interface.into(),
                queue,
            },
            self.tables.clone(),
        ));
        self.shards.push(shard.clone());
        let mut worker = Worker::new(shard, self.batch);
        if let Some(x) = self.export.as_mut() {
            let name = format!("{interface}/{queue}");
            worker = worker.with_observer(Box::new(x.observer(&name, ifindex as u16)));
        }
        worker
    }

    /// The page: build info, the shards' counters, flow export's own
    /// counters. Call after the last `add_queue`; the caller registers what
    /// else it has (capture and supervision counters).
    pub fn exposition(&mut self) -> Exposition {
        let collector = self.collector();
        let exposition = Exposition::new();
        exposition.register_engine(collector);
        if let Some(x) = &self.export {
            exposition.register(Box::new(x.metrics()));
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
    /// on every shard without losing a count. On error nothing changes.
    pub fn reload(&mut self, accounting: &Accounting, origin: &str) -> Result<(), SettingsError> {
        let tables = Arc::new(Tables::build(accounting, origin, Some(&self.tables))?);
        if let Some(c) = &self.collector {
            c.reload(tables.clone());
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

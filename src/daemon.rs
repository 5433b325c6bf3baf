//! `xdpacct run`: live capture, the metrics server, signals.
//!
//! Opens the configured backend on every interface (AF_XDP: one socket per
//! rx queue; AF_PACKET: one fanout member per rx queue), gives each queue its
//! own shard and a worker thread pinned to a core, and serves /metrics until
//! SIGTERM or SIGINT. SIGHUP re-reads the configuration and swaps the host
//! tables without losing a count. Start-up only allocates; no unsafe.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;

use crate::capture::afpacket::{open_afpacket, AfpacketOptions};
use crate::capture::afxdp::{self, open_afxdp, AfxdpOptions};
use crate::capture::stats::{CaptureCollector, QueueStatsSource};
use crate::capture::{Capture, CaptureError};
use crate::config::{CaptureConfig, CaptureMode, CliOverrides, Config, Toggle, XdpMode};
use crate::export::observer::FlowExport;
use crate::metrics::server::{MetricsServer, ServerOptions};
use crate::metrics::web_config::WebConfig;
use crate::metrics::{EngineCollector, Exposition};
use crate::shard::hosts::Tables;
use crate::shard::worker::Worker;
use crate::shard::{Shard, ShardOrigin};
use crate::StartupError;

/// AF_XDP options from `[capture]`.
pub fn afxdp_options(c: &CaptureConfig) -> AfxdpOptions {
    AfxdpOptions {
        xdp_mode: match c.xdp_mode {
            XdpMode::Auto => afxdp::XdpMode::Auto,
            XdpMode::Native => afxdp::XdpMode::Native,
            XdpMode::Generic => afxdp::XdpMode::Generic,
        },
        zero_copy: match c.zero_copy {
            Toggle::Auto => afxdp::ZeroCopy::Auto,
            Toggle::On => afxdp::ZeroCopy::On,
            Toggle::Off => afxdp::ZeroCopy::Off,
        },
        frames_per_queue: c.frames_per_queue,
        rx_ring: Some(c.rx_ring),
        fill_ring: c.fill_ring,
        promiscuous: c.promiscuous,
        queues: None,
    }
}

/// Cores for the workers: `capture.cores`, else every core but the first
/// (left to the HTTP server and the kernel), else the only one.
fn worker_cores(c: &CaptureConfig) -> Vec<core_affinity::CoreId> {
    let all = core_affinity::get_core_ids().unwrap_or_default();
    if !c.cores.is_empty() {
        return all
            .into_iter()
            .filter(|id| c.cores.contains(&id.id))
            .collect();
    }
    if all.len() > 1 {
        all[1..].to_vec()
    } else {
        all
    }
}

struct Workers {
    handles: Vec<JoinHandle<Result<(), CaptureError>>>,
    shards: Vec<Arc<Shard>>,
    stats: Vec<Arc<dyn QueueStatsSource>>,
}

fn spawn<C: Capture + 'static>(
    w: &mut Workers,
    queues: Vec<(u32, C, Arc<dyn QueueStatsSource>)>,
    ifname: &str,
    tables: &Arc<Tables>,
    cores: &[core_affinity::CoreId],
    batch: usize,
    stop: &Arc<AtomicBool>,
    export: &mut Option<FlowExport>,
) -> anyhow::Result<()> {
    let interface: Arc<str> = ifname.into();
    // NetFlow's ingress interface: the kernel's ifindex.
    let snmp_index = crate::capture::netdev::ifindex(ifname).unwrap_or(0) as u16;
    for (queue, mut capture, stats) in queues {
        let shard = Arc::new(Shard::new(
            ShardOrigin {
                interface: interface.clone(),
                queue,
            },
            tables.clone(),
        ));
        let core = (!cores.is_empty()).then(|| cores[w.handles.len() % cores.len()]);
        let mut worker = Worker::new(shard.clone(), batch);
        if let Some(x) = export.as_mut() {
            worker = worker.with_observer(Box::new(
                x.observer(&format!("{ifname}/{queue}"), snmp_index),
            ));
        }
        let stop = stop.clone();
        let handle = std::thread::Builder::new()
            .name(format!("xdpacct-{ifname}-q{queue}"))
            .spawn(move || {
                if let Some(core) = core {
                    // A busy worker that is not pinned starves the softirq feeding it.
                    core_affinity::set_for_current(core);
                }
                let result = worker.run(&mut capture, &stop);
                if result.is_err() {
                    stop.store(true, Relaxed);
                }
                result
            })
            .context("spawning a worker thread")?;
        tracing::info!(
            interface = ifname,
            queue,
            core = core.map(|c| c.id),
            "worker started"
        );
        w.handles.push(handle);
        w.shards.push(shard);
        w.stats.push(stats);
    }
    Ok(())
}

/// Runs until SIGTERM/SIGINT.
pub fn run(config: Config, origin: String, cli: CliOverrides) -> anyhow::Result<()> {
    let c = &config.capture;
    if c.interfaces.is_empty() {
        return Err(StartupError(format!(
            "{origin}: capture.interfaces: no interface to capture on; set it or pass -i IFACE"
        ))
        .into());
    }
    let listen: SocketAddr = config
        .metrics
        .listen
        .parse()
        .map_err(|e| StartupError(format!("{origin}: metrics.listen: {e}")))?;
    let web_config = &config.metrics.web_config;
    let web = web_config.as_ref().map(WebConfig::load).transpose();
    let web = web.map_err(|e| StartupError(format!("{origin}: {e}")))?;
    let tables = Arc::new(Tables::build(&config.accounting, &origin)?);
    let stop = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())
        .context("installing signal handlers")?;

    let mut export = FlowExport::start(&config.netflow)
        .map_err(|e| StartupError(format!("{origin}: netflow: {e}")))?;
    let cores = worker_cores(c);
    let batch = c.batch as usize;
    let mut w = Workers {
        handles: Vec::new(),
        shards: Vec::new(),
        stats: Vec::new(),
    };
    let started = (|| -> anyhow::Result<()> {
        for ifname in &c.interfaces {
            match c.mode {
                CaptureMode::Afxdp => {
                    let queues = open_afxdp(&afxdp_options(c), ifname)
                        .map_err(|e| StartupError(e.to_string()))?;
                    let zc = queues.iter().all(|q| q.is_zero_copy());
                    tracing::info!(
                        interface = ifname.as_str(),
                        queues = queues.len(),
                        zero_copy = zc,
                        "AF_XDP capture attached"
                    );
                    let queues = queues
                        .into_iter()
                        .map(|q| (q.queue(), q.stats_source(), q))
                        .map(|(n, s, q)| (n, q, s))
                        .collect();
                    spawn(
                        &mut w,
                        queues,
                        ifname,
                        &tables,
                        &cores,
                        batch,
                        &stop,
                        &mut export,
                    )?;
                }
                CaptureMode::Afpacket => {
                    let opts = AfpacketOptions {
                        promiscuous: c.promiscuous,
                        ..AfpacketOptions::default()
                    };
                    let queues =
                        open_afpacket(&opts, ifname).map_err(|e| StartupError(e.to_string()))?;
                    tracing::info!(
                        interface = ifname.as_str(),
                        sockets = queues.len(),
                        "AF_PACKET capture started"
                    );
                    let queues = queues
                        .into_iter()
                        .map(|q| (q.queue(), q.stats_source(), q))
                        .map(|(n, s, q)| (n, q, s))
                        .collect();
                    spawn(
                        &mut w,
                        queues,
                        ifname,
                        &tables,
                        &cores,
                        batch,
                        &stop,
                        &mut export,
                    )?;
                }
            }
        }
        Ok(())
    })();
    if let Err(e) = started {
        stop.store(true, Relaxed);
        for h in w.handles {
            let _ = h.join();
        }
        return Err(e);
    }

    let engine = Arc::new(EngineCollector::new(w.shards.clone()));
    let exposition = Exposition::new();
    exposition.register_engine(engine.clone());
    if let Some(x) = &export {
        exposition.register(Box::new(x.metrics()));
    }
    exposition.register(Box::new(CaptureCollector::new(w.stats.clone())));
    let mut server = MetricsServer::start_with(listen, exposition, ServerOptions::with_web(web))
        .map_err(|e| StartupError(format!("{origin}: metrics.listen: {listen}: {e}")))?;
    tracing::info!(listen = %server.local_addr, "serving /metrics");

    while !stop.load(Relaxed) && !w.handles.iter().any(|h| h.is_finished()) {
        std::thread::sleep(Duration::from_millis(100));
        if hup.swap(false, Relaxed) {
            match Config::load(&cli).and_then(|(cfg, o)| Tables::build(&cfg.accounting, &o)) {
                Ok(t) => {
                    engine.reload(Arc::new(t));
                    tracing::info!("SIGHUP: host tables reloaded");
                }
                Err(e) => tracing::error!("SIGHUP: keeping the old configuration: {e}"),
            }
        }
    }
    stop.store(true, Relaxed);
    let mut failure = None;
    for h in w.handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failure = Some(anyhow::Error::from(e)),
            Err(_) => failure = Some(anyhow::anyhow!("a worker panicked")),
        }
    }
    server.stop();
    // The workers flushed their flow caches when they stopped; send the rest.
    if let Some(x) = export {
        if let Err(e) = x.shutdown() {
            tracing::warn!("flow export at shutdown: {e}");
        }
    }
    match failure {
        Some(e) => Err(e),
        None => {
            tracing::info!("stopped");
            Ok(())
        }
    }
}

//! `xdpacct run`: live capture, the metrics server, signals.
//!
//! Opens the configured backend on every interface (AF_XDP: one socket per
//! rx queue; AF_PACKET: one fanout member per rx queue), gives each queue its
//! own shard and a worker thread pinned to a core, and serves /metrics until
//! SIGTERM or SIGINT. SIGHUP re-reads the configuration and swaps the host
//! tables without losing a count; a config that does not load or validate
//! is logged and the old one kept. Start-up only allocates; no unsafe.
//!
//! Faults (tests/fault_live.rs): the main loop watches every interface
//! (every 100 ms). Down/up is logged and counted
//! (`xdpacct_interface_down_total`, `xdpacct_interface_up`); the sockets and
//! the XDP program survive it. If the interface disappears, is deleted and
//! created again (new ifindex), or a worker's capture fails, that
//! interface's workers are stopped and parked and the capture is reopened
//! with backoff (250 ms doubling to 5 s) on the same shards and per-queue
//! counters, so totals continue (`xdpacct_capture_restarts_total`). Only the
//! queues the interface had at start-up are reopened, and NetFlow keeps the
//! start-up ifindex as the ingress interface. A worker panic stops the
//! daemon (a bug, not a fault).
//!
//! Capabilities: the captures are opened before any thread starts, then
//! `privileges::drop_after_start` reduces the process to what re-attaching
//! needs (see src/privileges.rs).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;

use prometheus::{IntCounterVec, IntGaugeVec, Opts};

use crate::capture::afpacket::{open_afpacket, AfpacketOptions, AfpacketQueue};
use crate::capture::afxdp::{self, open_afxdp, AfxdpOptions, AfxdpQueue};
use crate::capture::stats::{CaptureCollector, QueueStats, QueueStatsSource};
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

/// Pins this thread, and so every thread it starts later (the exporter, the
/// HTTP server, the interface watch), to the first core no worker uses, so
/// they never take a worker's core. Workers pin themselves to their own.
/// Nothing to do when the workers have every core.
fn pin_housekeeping(worker_cores: &[core_affinity::CoreId]) {
    let all = core_affinity::get_core_ids().unwrap_or_default();
    if let Some(core) = all.into_iter().find(|c| !worker_cores.contains(c)) {
        if core_affinity::set_for_current(core) {
            tracing::debug!(core = core.id, "housekeeping threads on this core");
        }
    }
}

/// What a worker thread hands back when it ends: the worker itself (its
/// shard and flow cache, reused when the capture restarts) and why it ended.
type WorkerExit = (Worker, Result<(), CaptureError>);

/// One (interface, queue): its shard and counters outlive any one capture
/// socket, so totals continue across a capture restart.
struct QueueSlot {
    queue: u32,
    shard: Arc<Shard>,
    stats: Arc<ResumedStats>,
    core: Option<core_affinity::CoreId>,
    /// The running worker thread, or the worker parked while its interface
    /// is being reopened.
    handle: Option<JoinHandle<WorkerExit>>,
    parked: Option<Worker>,
}

/// Per-queue kernel counters summed over every capture socket the queue has
/// had, so `xdpacct_queue_*` stay monotonic when a capture restarts (a new
/// socket and a new XDP program start counting from zero).
struct ResumedStats {
    inner: Mutex<(Arc<dyn QueueStatsSource>, QueueStats)>,
}

impl ResumedStats {
    fn new(source: Arc<dyn QueueStatsSource>) -> Self {
        ResumedStats {
            inner: Mutex::new((source, QueueStats::default())),
        }
    }

    /// Banks the old source's final counts and reads `source` from now on.
    fn replace(&self, source: Arc<dyn QueueStatsSource>) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let last = g.0.stats();
        g.1 = add_stats(&g.1, &last);
        g.0 = source;
    }
}

fn add_stats(base: &QueueStats, now: &QueueStats) -> QueueStats {
    let mut out = now.clone();
    out.frames_seen += base.frames_seen;
    out.frames_received += base.frames_received;
    out.invalid_descs += base.invalid_descs;
    out.bytes_seen = match (base.bytes_seen, now.bytes_seen) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
    };
    for &(reason, n) in &base.dropped {
        match out.dropped.iter_mut().find(|(r, _)| *r == reason) {
            Some(slot) => slot.1 += n,
            None => out.dropped.push((reason, n)),
        }
    }
    out
}

impl QueueStatsSource for ResumedStats {
    fn stats(&self) -> QueueStats {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        add_stats(&g.1, &g.0.stats())
    }
}

/// Opened capture sockets of one interface, one per queue.
enum Opened {
    Afxdp(Vec<AfxdpQueue>),
    Afpacket(Vec<AfpacketQueue>),
}

impl Opened {
    fn len(&self) -> usize {
        match self {
            Opened::Afxdp(q) => q.len(),
            Opened::Afpacket(q) => q.len(),
        }
    }

    fn queue_ids(&self) -> Vec<u32> {
        match self {
            Opened::Afxdp(q) => q.iter().map(|q| q.queue()).collect(),
            Opened::Afpacket(q) => q.iter().map(|q| q.queue()).collect(),
        }
    }
}

/// Opens the configured backend on `ifname`; `queues` limits it to these
/// queues (a restart reopens the queues the interface had at start-up).
fn open_interface(
    c: &CaptureConfig,
    ifname: &str,
    queues: Option<&[u32]>,
) -> Result<Opened, CaptureError> {
    match c.mode {
        CaptureMode::Afxdp => {
            let mut opts = afxdp_options(c);
            if let Some(want) = queues {
                let count = crate::capture::netdev::rx_queue_count(ifname)?;
                let have: Vec<u32> = want.iter().copied().filter(|&q| q < count).collect();
                opts.queues = Some(if have.is_empty() { vec![0] } else { have });
            }
            let queues = open_afxdp(&opts, ifname)?;
            let zc = queues.iter().all(|q| q.is_zero_copy());
            tracing::info!(
                interface = ifname,
                queues = queues.len(),
                zero_copy = zc,
                "AF_XDP capture attached"
            );
            Ok(Opened::Afxdp(queues))
        }
        CaptureMode::Afpacket => {
            let opts = AfpacketOptions {
                promiscuous: c.promiscuous,
                workers: queues.map_or(0, |q| q.len() as u32),
                ..AfpacketOptions::default()
            };
            let queues = open_afpacket(&opts, ifname)?;
            tracing::info!(
                interface = ifname,
                sockets = queues.len(),
                "AF_PACKET capture started"
            );
            Ok(Opened::Afpacket(queues))
        }
    }
}

/// Starts the thread of one queue's worker on `capture`.
fn spawn_worker<C: Capture + 'static>(
    ifname: &str,
    slot: &QueueSlot,
    mut worker: Worker,
    mut capture: C,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<JoinHandle<WorkerExit>> {
    let stop = stop.clone();
    let core = slot.core;
    let handle = std::thread::Builder::new()
        .name(format!("xdpacct-{ifname}-q{}", slot.queue))
        .spawn(move || {
            if let Some(core) = core {
                // A busy worker that is not pinned starves the softirq feeding it.
                core_affinity::set_for_current(core);
            }
            let result = worker.run(&mut capture, &stop);
            // Close the socket before the worker is handed back, so a
            // restart can bind the queue again.
            drop(capture);
            (worker, result)
        })
        .context("spawning a worker thread")?;
    tracing::info!(
        interface = ifname,
        queue = slot.queue,
        core = core.map(|c| c.id),
        "worker started"
    );
    Ok(handle)
}

/// Gives each opened queue a worker: the slot's parked one, or a new worker
/// on a new shard at start-up. Queues without a slot (more queues than at
/// start-up) are closed; slots without a queue stay parked.
fn start_queues(
    iface: &mut Iface,
    opened: Opened,
    tables: &Arc<Tables>,
    cores: &[core_affinity::CoreId],
    batch: usize,
    export: &mut Option<FlowExport>,
    next_core: &mut usize,
) -> anyhow::Result<()> {
    #[allow(clippy::too_many_arguments)]
    fn place<C: Capture + 'static>(
        iface: &mut Iface,
        queue: u32,
        capture: C,
        stats: Arc<dyn QueueStatsSource>,
        tables: &Arc<Tables>,
        cores: &[core_affinity::CoreId],
        batch: usize,
        export: &mut Option<FlowExport>,
        next_core: &mut usize,
    ) -> anyhow::Result<()> {
        let idx = match iface.slots.iter().position(|s| s.queue == queue) {
            Some(i) => {
                iface.slots[i].stats.replace(stats);
                i
            }
            None if !iface.started => {
                let shard = Arc::new(Shard::new(
                    ShardOrigin {
                        interface: iface.name.as_str().into(),
                        queue,
                    },
                    tables.clone(),
                ));
                let mut worker = Worker::new(shard.clone(), batch);
                if let Some(x) = export.as_mut() {
                    // NetFlow's ingress interface: the kernel's ifindex at start-up.
                    worker = worker.with_observer(Box::new(
                        x.observer(&format!("{}/{queue}", iface.name), iface.ifindex as u16),
                    ));
                }
                let core = (!cores.is_empty()).then(|| cores[*next_core % cores.len()]);
                *next_core += 1;
                iface.slots.push(QueueSlot {
                    queue,
                    shard,
                    stats: Arc::new(ResumedStats::new(stats)),
                    core,
                    handle: None,
                    parked: Some(worker),
                });
                iface.slots.len() - 1
            }
            None => {
                tracing::warn!(
                    interface = iface.name.as_str(),
                    queue,
                    "queue did not exist at start-up; not captured until restart"
                );
                return Ok(());
            }
        };
        let Some(worker) = iface.slots[idx].parked.take() else {
            return Ok(());
        };
        let handle = spawn_worker(&iface.name, &iface.slots[idx], worker, capture, &iface.stop)?;
        iface.slots[idx].handle = Some(handle);
        Ok(())
    }
    match opened {
        Opened::Afxdp(queues) => {
            for q in queues {
                let (n, s) = (q.queue(), q.stats_source());
                place(iface, n, q, s, tables, cores, batch, export, next_core)?;
            }
        }
        Opened::Afpacket(queues) => {
            for q in queues {
                let (n, s) = (q.queue(), q.stats_source());
                place(iface, n, q, s, tables, cores, batch, export, next_core)?;
            }
        }
    }
    iface.started = true;
    Ok(())
}

/// First wait before reopening a lost interface; doubles up to the maximum.
const REOPEN_BACKOFF_MIN: Duration = Duration::from_millis(250);
const REOPEN_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// One captured interface, watched by the main loop: if it disappears (or is
/// deleted and created again under the same name) or a worker's capture
/// fails, its workers are stopped and parked and the capture is reopened
/// with backoff, keeping the shards, so counts continue. Down/up of a
/// surviving interface needs no restart (the sockets and the XDP program
/// survive it); the gap is logged and counted.
struct Iface {
    name: String,
    /// The ifindex the capture is attached to.
    ifindex: u32,
    /// Whether the capture is running (else it is waiting to be reopened).
    attached: bool,
    /// Whether the queue slots were created (first open done).
    started: bool,
    /// Stops this interface's workers (set for a restart or at shutdown).
    stop: Arc<AtomicBool>,
    slots: Vec<QueueSlot>,
    up: bool,
    down_since: Option<Instant>,
    retry_at: Instant,
    backoff: Duration,
    /// A worker panicked: a bug, not a capture fault; the daemon stops.
    panicked: bool,
    /// When the capture was last (re)opened.
    attached_at: Instant,
}

/// Whether `ifname` is administratively up (`IFF_UP`) with its link up
/// (operstate `up`, or `unknown` for drivers that do not report one), from
/// sysfs; `None` when the interface does not exist.
fn link_up(ifname: &str) -> Option<bool> {
    let flags = std::fs::read_to_string(format!("/sys/class/net/{ifname}/flags")).ok()?;
    let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).ok()?;
    let oper = std::fs::read_to_string(format!("/sys/class/net/{ifname}/operstate")).ok()?;
    Some(flags & 1 == 1 && matches!(oper.trim(), "up" | "unknown"))
}

/// Interface-level counters of the supervision loop.
struct LinkMetrics {
    down: IntCounterVec,
    restarts: IntCounterVec,
    up: IntGaugeVec,
}

impl LinkMetrics {
    fn new() -> anyhow::Result<Self> {
        Ok(LinkMetrics {
            down: IntCounterVec::new(
                Opts::new(
                    "xdpacct_interface_down_total",
                    "Times a captured interface went down or disappeared.",
                ),
                &["interface"],
            )?,
            restarts: IntCounterVec::new(
                Opts::new(
                    "xdpacct_capture_restarts_total",
                    "Times the capture of an interface was reopened after it was lost.",
                ),
                &["interface"],
            )?,
            up: IntGaugeVec::new(
                Opts::new(
                    "xdpacct_interface_up",
                    "1 while a captured interface is up and its capture attached, else 0.",
                ),
                &["interface"],
            )?,
        })
    }
}

impl Iface {
    /// Stops and joins this interface's workers, keeping them parked. Returns
    /// the errors they ended with.
    fn park(&mut self) -> Vec<String> {
        self.stop.store(true, Relaxed);
        let mut errors = Vec::new();
        for slot in &mut self.slots {
            if let Some(h) = slot.handle.take() {
                match h.join() {
                    Ok((worker, result)) => {
                        slot.parked = Some(worker);
                        if let Err(e) = result {
                            errors.push(e.to_string());
                        }
                    }
                    Err(_) => {
                        self.panicked = true;
                        errors.push(format!("queue {}: worker panicked", slot.queue));
                    }
                }
            }
        }
        self.stop = Arc::new(AtomicBool::new(false));
        self.attached = false;
        errors
    }

    /// One supervision step (every main-loop tick).
    #[allow(clippy::too_many_arguments)]
    fn supervise(
        &mut self,
        c: &CaptureConfig,
        tables: &Arc<Tables>,
        cores: &[core_affinity::CoreId],
        batch: usize,
        export: &mut Option<FlowExport>,
        next_core: &mut usize,
        m: &LinkMetrics,
    ) -> anyhow::Result<()> {
        let name = self.name.clone();
        let now = Instant::now();
        let index = crate::capture::netdev::ifindex(&name).ok();
        let up = link_up(&name).unwrap_or(false) && index.is_some();
        if self.up && !up {
            m.down.with_label_values(&[&name]).inc();
            self.down_since = Some(now);
            tracing::warn!(
                interface = name.as_str(),
                exists = index.is_some(),
                "interface went down; frames are not counted until it is back"
            );
        } else if !self.up && up {
            let gap = self.down_since.take().map(|t| now - t);
            tracing::info!(
                interface = name.as_str(),
                down_for_ms = gap.map(|d| d.as_millis() as u64),
                "interface is up again"
            );
        }
        self.up = up;
        let failed = self
            .slots
            .iter()
            .any(|s| s.handle.as_ref().is_some_and(|h| h.is_finished()));
        let replaced = index != Some(self.ifindex);
        if self.attached && (failed || replaced) {
            let errors = self.park();
            if self.panicked {
                anyhow::bail!("{name}: a worker panicked: {}", errors.join("; "));
            }
            tracing::warn!(
                interface = name.as_str(),
                gone = index.is_none(),
                recreated = index.is_some() && replaced,
                errors = errors.join("; "),
                "capture lost; reopening with backoff"
            );
            // A capture that keeps failing soon after each reopen backs off
            // further; one that ran a while starts again from the minimum.
            self.backoff = if now - self.attached_at < Duration::from_secs(10) {
                (self.backoff * 2).min(REOPEN_BACKOFF_MAX)
            } else {
                REOPEN_BACKOFF_MIN
            };
            self.retry_at = now
                + if failed && !replaced {
                    self.backoff
                } else {
                    Duration::ZERO
                };
        }
        if !self.attached && index.is_some() && now >= self.retry_at {
            let queues: Vec<u32> = self.slots.iter().map(|s| s.queue).collect();
            match open_interface(c, &name, Some(&queues)) {
                Ok(opened) => {
                    tracing::info!(
                        interface = name.as_str(),
                        queues = ?opened.queue_ids(),
                        "capture reopened; counting continues"
                    );
                    self.ifindex = index.unwrap_or(0);
                    self.attached_at = now;
                    self.attached = opened.len() > 0;
                    start_queues(self, opened, tables, cores, batch, export, next_core)?;
                    m.restarts.with_label_values(&[&name]).inc();
                }
                Err(e) => {
                    tracing::warn!(
                        interface = name.as_str(),
                        retry_in_ms = self.backoff.as_millis() as u64,
                        "reopening the capture failed: {e}"
                    );
                    self.retry_at = now + self.backoff;
                    self.backoff = (self.backoff * 2).min(REOPEN_BACKOFF_MAX);
                }
            }
        }
        m.up.with_label_values(&[&name])
            .set(i64::from(self.up && self.attached));
        Ok(())
    }
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

    let cores = worker_cores(c);
    pin_housekeeping(&cores);
    let batch = c.batch as usize;
    // Open every interface before any thread starts, so capabilities can be
    // dropped for the whole process at once (they are per thread).
    let mut ifaces = Vec::new();
    for ifname in &c.interfaces {
        let opened = open_interface(c, ifname, None).map_err(|e| StartupError(e.to_string()))?;
        ifaces.push((ifname.clone(), opened));
    }
    crate::privileges::drop_after_start(listen.port() < 1024)
        .map_err(|e| StartupError(format!("dropping capabilities: {e}")))?;

    let mut export = FlowExport::start(&config.netflow)
        .map_err(|e| StartupError(format!("{origin}: netflow: {e}")))?;
    let mut next_core = 0usize;
    let mut w: Vec<Iface> = Vec::new();
    let started = (|| -> anyhow::Result<()> {
        for (ifname, opened) in ifaces {
            let mut iface = Iface {
                ifindex: crate::capture::netdev::ifindex(&ifname).unwrap_or(0),
                name: ifname,
                attached: true,
                started: false,
                stop: Arc::new(AtomicBool::new(false)),
                slots: Vec::new(),
                up: true,
                down_since: None,
                retry_at: Instant::now(),
                backoff: REOPEN_BACKOFF_MIN,
                panicked: false,
                attached_at: Instant::now(),
            };
            iface.up = link_up(&iface.name).unwrap_or(false);
            let res = start_queues(
                &mut iface,
                opened,
                &tables,
                &cores,
                batch,
                &mut export,
                &mut next_core,
            );
            w.push(iface);
            res?;
        }
        Ok(())
    })();
    if let Err(e) = started {
        for iface in &mut w {
            iface.park();
        }
        return Err(e);
    }

    let shards: Vec<Arc<Shard>> = w
        .iter()
        .flat_map(|i| i.slots.iter().map(|s| s.shard.clone()))
        .collect();
    let stats: Vec<Arc<dyn QueueStatsSource>> = w
        .iter()
        .flat_map(|i| i.slots.iter())
        .map(|s| s.stats.clone() as Arc<dyn QueueStatsSource>)
        .collect();
    let engine = Arc::new(EngineCollector::new(shards));
    let exposition = Exposition::new();
    exposition.register_engine(engine.clone());
    if let Some(x) = &export {
        exposition.register(Box::new(x.metrics()));
    }
    exposition.register(Box::new(CaptureCollector::new(stats)));
    let links = LinkMetrics::new()?;
    for iface in &w {
        links.down.with_label_values(&[&iface.name]);
        links.restarts.with_label_values(&[&iface.name]);
    }
    exposition.register(Box::new(links.down.clone()));
    exposition.register(Box::new(links.restarts.clone()));
    exposition.register(Box::new(links.up.clone()));
    let mut server = MetricsServer::start_with(listen, exposition, ServerOptions::with_web(web))
        .map_err(|e| StartupError(format!("{origin}: metrics.listen: {listen}: {e}")))?;
    tracing::info!(listen = %server.local_addr, "serving /metrics");

    let mut failure = None;
    while !stop.load(Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        for iface in &mut w {
            if let Err(e) = iface.supervise(
                c,
                &tables,
                &cores,
                batch,
                &mut export,
                &mut next_core,
                &links,
            ) {
                failure = Some(e);
                stop.store(true, Relaxed);
            }
        }
        if hup.swap(false, Relaxed) {
            match Config::load(&cli).and_then(|(cfg, o)| Tables::build(&cfg.accounting, &o)) {
                Ok(t) => {
                    engine.reload(Arc::new(t));
                    tracing::info!(
                        "SIGHUP: host tables reloaded ([accounting] only; other sections take effect on restart)"
                    );
                }
                Err(e) => tracing::error!("SIGHUP: keeping the old configuration: {e}"),
            }
        }
    }
    for iface in &mut w {
        for e in iface.park() {
            tracing::warn!(interface = iface.name.as_str(), "at shutdown: {e}");
        }
        if iface.panicked && failure.is_none() {
            failure = Some(anyhow::anyhow!("{}: a worker panicked", iface.name));
        }
        // Parked workers flush their flow caches here (the thread ran `finish`).
        for slot in &mut iface.slots {
            slot.parked = None;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::stats::DropReason;

    struct Fixed(QueueStats);

    impl QueueStatsSource for Fixed {
        fn stats(&self) -> QueueStats {
            self.0.clone()
        }
    }

    fn stats(seen: u64, received: u64, drops: &[(DropReason, u64)]) -> QueueStats {
        QueueStats {
            interface: "eth0".into(),
            queue: 1,
            frames_seen: seen,
            bytes_seen: Some(seen * 100),
            frames_received: received,
            dropped: drops.to_vec(),
            invalid_descs: 0,
        }
    }

    /// Queue counters stay monotonic when a restart swaps the socket: the old
    /// socket's final counts are banked and the new one's added.
    #[test]
    fn resumed_stats_continue_across_a_restart() {
        let r = ResumedStats::new(Arc::new(Fixed(stats(10, 9, &[(DropReason::Other, 1)]))));
        assert_eq!(r.stats().frames_seen, 10);
        r.replace(Arc::new(Fixed(stats(
            5,
            5,
            &[(DropReason::Other, 2), (DropReason::NoSocket, 3)],
        ))));
        let s = r.stats();
        assert_eq!((s.frames_seen, s.frames_received), (15, 14));
        assert_eq!(s.bytes_seen, Some(1500));
        assert_eq!(s.dropped_total(), 6);
        assert!(s.dropped.contains(&(DropReason::Other, 3)));
        assert_eq!((s.interface.as_str(), s.queue), ("eth0", 1));
    }
}

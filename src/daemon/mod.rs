//! `xdpacct run`: live capture, the metrics server, signals.
//!
//! Opens the configured backend on every interface (`capture::live`: one
//! socket per rx queue), gives each queue its own shard and a worker thread
//! pinned to a core (`engine`), and serves /metrics until
//! SIGTERM or SIGINT. SIGHUP re-reads the configuration and swaps the host
//! tables without losing a count; a config that does not load or validate
//! is logged and the old one kept. Start-up only allocates; no unsafe.
//!
//! Faults (tests/fault_live.rs): the main loop watches every interface
//! (every 100 ms) through its [`supervisor::Supervisor`]. Down/up is logged
//! and counted
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

mod supervisor;

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use prometheus::{IntCounterVec, IntGaugeVec};

use crate::capture::live::{self, LiveQueue};
use crate::capture::stats::{CaptureCollector, QueueStats, QueueStatsSource};
use crate::capture::CaptureError;
use crate::collector::input::FlowInput;
use crate::collector::socket::Receiver;
use crate::engine::Engine;
use crate::metrics::catalogue;
use crate::metrics::server::{MetricsListener, ServerOptions};
use crate::metrics::web_config::WebConfig;
use crate::settings::{self, CliOverrides, Settings};
use crate::shard::worker::Worker;
use crate::StartupError;
use supervisor::{Lost, Seen, Supervisor};

/// Cores for the workers: `capture.cores`, else every core but the first
/// (left to the HTTP server and the kernel), else the only one.
fn worker_cores(c: &settings::Capture) -> Vec<core_affinity::CoreId> {
    if let Some(cores) = &c.cores {
        return cores.clone();
    }
    let all = core_affinity::get_core_ids().unwrap_or_default();
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

/// One (interface, queue): its worker (and so its shard) and counters
/// outlive any one capture socket, so totals continue across a restart.
struct QueueSlot {
    queue: u32,
    stats: Arc<ResumedStats>,
    core: Option<core_affinity::CoreId>,
    /// The running worker thread, or the worker parked while its interface
    /// is being reopened.
    handle: Option<JoinHandle<WorkerExit>>,
    parked: Option<Worker>,
}

impl QueueSlot {
    /// Starts the thread of this queue's worker on `capture`.
    fn spawn(
        &mut self,
        ifname: &str,
        capture: LiveQueue,
        stop: &Arc<AtomicBool>,
    ) -> anyhow::Result<()> {
        let Some(mut worker) = self.parked.take() else {
            return Ok(());
        };
        self.stats.replace(capture.stats_source());
        let stop = stop.clone();
        let core = self.core;
        let mut capture = capture;
        let handle = std::thread::Builder::new()
            .name(format!("xdpacct-{ifname}-q{}", self.queue))
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
            queue = self.queue,
            core = core.map(|c| c.id),
            "worker started"
        );
        self.handle = Some(handle);
        Ok(())
    }
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

    /// Banks the old source's final counts and reads `source` from now on
    /// (nothing to do when it is the source already read: a first start).
    fn replace(&self, source: Arc<dyn QueueStatsSource>) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if std::ptr::addr_eq(Arc::as_ptr(&g.0), Arc::as_ptr(&source)) {
            return;
        }
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

/// One captured interface: its queues and their workers, and its
/// supervision state.
struct Iface {
    name: String,
    /// Stops this interface's workers (set for a restart or at shutdown).
    stop: Arc<AtomicBool>,
    slots: Vec<QueueSlot>,
    supervisor: Supervisor,
    /// A worker panicked: a bug, not a capture fault; the daemon stops.
    panicked: bool,
}

impl Iface {
    /// Gives every queue of a first open its own shard and worker.
    fn new(
        name: &str,
        opened: &[LiveQueue],
        engine: &mut Engine,
        cores: &[core_affinity::CoreId],
        next_core: &mut usize,
    ) -> Result<Iface, crate::engine::EngineError> {
        let ifindex = live::ifindex(name).unwrap_or(0);
        let slots = opened
            .iter()
            .map(|q| {
                let core = (!cores.is_empty()).then(|| cores[*next_core % cores.len()]);
                *next_core += 1;
                Ok(QueueSlot {
                    queue: q.queue(),
                    stats: Arc::new(ResumedStats::new(q.stats_source())),
                    core,
                    handle: None,
                    // NetFlow's ingress interface: the kernel's ifindex at start-up.
                    parked: Some(engine.add_queue(name, q.queue(), ifindex)?),
                })
            })
            .collect::<Result<_, crate::engine::EngineError>>()?;
        Ok(Iface {
            name: name.to_string(),
            stop: Arc::new(AtomicBool::new(false)),
            slots,
            supervisor: Supervisor::attached(
                ifindex,
                live::link_up(name).unwrap_or(false),
                Instant::now(),
            ),
            panicked: false,
        })
    }

    /// Runs each opened queue's parked worker on it. Queues without a slot
    /// (more queues than at start-up) are closed; slots without a queue
    /// stay parked.
    fn start(&mut self, opened: Vec<LiveQueue>) -> anyhow::Result<()> {
        for q in opened {
            match self.slots.iter_mut().find(|s| s.queue == q.queue()) {
                Some(slot) => slot.spawn(&self.name, q, &self.stop)?,
                None => tracing::warn!(
                    interface = self.name.as_str(),
                    queue = q.queue(),
                    "queue did not exist at start-up; not captured until restart"
                ),
            }
        }
        Ok(())
    }

    /// Stops and joins this interface's workers, keeping them parked.
    /// Returns the errors they ended with.
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
        errors
    }

    /// One supervision tick: look at the interface, do what the
    /// supervisor asks.
    fn tick(&mut self, capture: &settings::Capture, m: &LinkMetrics) -> anyhow::Result<()> {
        let name = self.name.as_str();
        let now = Instant::now();
        let ifindex = live::ifindex(name);
        let seen = Seen {
            ifindex,
            link_up: live::link_up(name).unwrap_or(false),
            worker_ended: self
                .slots
                .iter()
                .any(|s| s.handle.as_ref().is_some_and(|h| h.is_finished())),
        };
        let step = self.supervisor.step(seen, now);
        if step.went_down {
            m.down.with_label_values(&[name]).inc();
            tracing::warn!(
                interface = name,
                exists = ifindex.is_some(),
                "interface went down; frames are not counted until it is back"
            );
        }
        if let Some(gap) = step.came_up_after {
            tracing::info!(
                interface = name,
                down_for_ms = gap.as_millis() as u64,
                "interface is up again"
            );
        }
        if let Some(lost) = step.park {
            let errors = self.park();
            if self.panicked {
                anyhow::bail!("{}: a worker panicked: {}", self.name, errors.join("; "));
            }
            tracing::warn!(
                interface = self.name.as_str(),
                gone = lost == Lost::Gone,
                recreated = lost == Lost::Recreated,
                errors = errors.join("; "),
                "capture lost; reopening with backoff"
            );
        }
        if step.open {
            let queues: Vec<u32> = self.slots.iter().map(|s| s.queue).collect();
            match live::open(capture, &self.name, Some(&queues)) {
                Ok(opened) if !opened.is_empty() => {
                    tracing::info!(
                        interface = self.name.as_str(),
                        queues = ?opened.iter().map(LiveQueue::queue).collect::<Vec<_>>(),
                        "capture reopened; counting continues"
                    );
                    self.supervisor.opened(ifindex.unwrap_or(0), now);
                    self.start(opened)?;
                    m.restarts.with_label_values(&[&self.name]).inc();
                }
                result => {
                    let why = result
                        .err()
                        .map_or("no queue".to_string(), |e| e.to_string());
                    tracing::warn!(
                        interface = self.name.as_str(),
                        retry_in_ms = self.supervisor.backoff().as_millis() as u64,
                        "reopening the capture failed: {why}"
                    );
                    self.supervisor.open_failed(now);
                }
            }
        }
        m.up.with_label_values(&[&self.name])
            .set(i64::from(self.supervisor.is_counting()));
        Ok(())
    }
}

/// Interface-level counters of the supervision loop.
struct LinkMetrics {
    down: IntCounterVec,
    restarts: IntCounterVec,
    up: IntGaugeVec,
}

impl LinkMetrics {
    fn new() -> Self {
        LinkMetrics {
            down: catalogue::INTERFACE_DOWN.int_counter_vec(),
            restarts: catalogue::CAPTURE_RESTARTS.int_counter_vec(),
            up: catalogue::INTERFACE_UP.int_gauge_vec(),
        }
    }
}

/// Binds every `collector.listen` address `collector.threads` times
/// (`SO_REUSEPORT` when more than one): (thread index, socket).
fn bind_collector(
    fc: &settings::collector::Collector,
) -> Result<Vec<(u32, Receiver)>, crate::collector::socket::SocketError> {
    let mut out = Vec::new();
    for &addr in &fc.listen {
        let reuse = fc.threads > 1;
        let first = Receiver::bind(addr, reuse)?;
        // Port 0: the others share the port the kernel chose.
        let bound = first.local_addr();
        out.push((0, first));
        for t in 1..fc.threads {
            out.push((t as u32, Receiver::bind(bound, true)?));
        }
        tracing::info!(listen = %bound, threads = fc.threads, "collector listening");
    }
    Ok(out)
}

/// Starts a receiver thread: recvmmsg batches into its collector and shard.
fn spawn_flow_input(
    mut input: FlowInput,
    mut rx: Receiver,
    core: Option<core_affinity::CoreId>,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<JoinHandle<()>> {
    let stop = stop.clone();
    let name = format!("xdpacct-flow-{}", input.shard().origin().queue);
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            if let Some(core) = core {
                core_affinity::set_for_current(core);
            }
            input.run(&mut rx, &stop);
        })
        .context("spawning a collector thread")
}

/// Runs until SIGTERM/SIGINT. `cli` is kept to re-read the settings on SIGHUP.
pub fn run(settings: Settings, cli: CliOverrides) -> anyhow::Result<()> {
    let origin = settings.origin.clone();
    let c = &settings.capture;
    if c.interfaces.is_empty() && settings.collector.is_none() {
        return Err(StartupError(format!(
            "{origin}: capture.interfaces: no interface to capture on; set it, pass -i IFACE, or configure [collector]"
        ))
        .into());
    }
    let listen = settings.metrics.listen;
    let web = settings
        .metrics
        .web_config
        .as_ref()
        .map(WebConfig::load)
        .transpose();
    let web = web.map_err(|e| StartupError(format!("{origin}: {e}")))?;
    // The ledger file is checked before anything starts (exit status 2).
    let billing_store = match &settings.billing {
        Some(b) => {
            Some(crate::billing::live::open_store(b).map_err(|e| StartupError(e.to_string()))?)
        }
        None => None,
    };
    let mut engine = Engine::build(&settings).map_err(|e| StartupError(e.to_string()))?;
    let stop = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())
        .context("installing signal handlers")?;

    let cores = worker_cores(c);
    pin_housekeeping(&cores);
    // Open every interface before any thread starts, so capabilities can be
    // dropped for the whole process at once (they are per thread).
    let mut opened = Vec::new();
    for ifname in &c.interfaces {
        let queues = live::open(c, ifname, None).map_err(|e| StartupError(e.to_string()))?;
        opened.push((ifname.clone(), queues));
    }
    // Flow input sockets, bound before the drop too (ports below 1024).
    let receivers = match &settings.collector {
        Some(fc) => bind_collector(fc).map_err(|e| StartupError(format!("{origin}: {e}")))?,
        None => Vec::new(),
    };
    // Bound before the drop (a port below 1024 needs CAP_NET_BIND_SERVICE
    // only for bind), served after it; binding starts no thread.
    let listener = MetricsListener::bind(listen)
        .map_err(|e| StartupError(format!("{origin}: metrics.listen: {listen}: {e}")))?;
    crate::privileges::drop_after_start(false)
        .map_err(|e| StartupError(format!("dropping capabilities: {e}")))?;
    engine
        .start_export()
        .map_err(|e| StartupError(e.to_string()))?;

    let mut next_core = 0usize;
    let mut ifaces: Vec<Iface> = Vec::new();
    let mut started = Ok(());
    for (ifname, queues) in opened {
        match Iface::new(&ifname, &queues, &mut engine, &cores, &mut next_core) {
            Ok(mut iface) => {
                if started.is_ok() {
                    started = iface.start(queues);
                }
                ifaces.push(iface);
            }
            Err(e) if started.is_ok() => started = Err(StartupError(e.to_string()).into()),
            Err(_) => {}
        }
    }
    let flow_stop = Arc::new(AtomicBool::new(false));
    let mut flow_threads = Vec::new();
    if let (Ok(()), Some(fc)) = (&started, &settings.collector) {
        let flow_cores = fc.cores.clone().unwrap_or_else(|| cores.clone());
        for (i, (thread, rx)) in receivers.into_iter().enumerate() {
            let listen = rx.local_addr().to_string();
            let Some(input) = engine.add_flow_input(&listen, thread) else {
                break;
            };
            let core = (!flow_cores.is_empty()).then(|| {
                if fc.cores.is_some() {
                    flow_cores[i % flow_cores.len()]
                } else {
                    flow_cores[(next_core + i) % flow_cores.len()]
                }
            });
            match spawn_flow_input(input, rx, core, &flow_stop) {
                Ok(h) => flow_threads.push(h),
                Err(e) => {
                    started = Err(e);
                    break;
                }
            }
        }
    }
    if let Err(e) = started {
        for iface in &mut ifaces {
            iface.park();
        }
        flow_stop.store(true, Relaxed);
        for h in flow_threads {
            let _ = h.join();
        }
        return Err(e);
    }

    let stats: Vec<Arc<dyn QueueStatsSource>> = ifaces
        .iter()
        .flat_map(|i| i.slots.iter())
        .map(|s| s.stats.clone() as Arc<dyn QueueStatsSource>)
        .collect();
    let exposition = engine.exposition();
    let down_ms = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let ledger = match (&settings.billing, billing_store) {
        (Some(b), Some(store)) => {
            let (sources, down) = (stats.clone(), down_ms.clone());
            let health: crate::billing::Health = Box::new(move || {
                let dropped = sources.iter().map(|s| s.stats().dropped_total()).sum();
                (dropped, down.load(Relaxed))
            });
            let l = crate::billing::live::LiveLedger::start(b, store, engine.collector(), health)
                .context("starting the billing ledger")?;
            exposition.register(Box::new(BillingMetrics(l.view())));
            Some(l)
        }
        _ => None,
    };
    exposition.register(Box::new(CaptureCollector::new(stats)));
    let links = LinkMetrics::new();
    for iface in &ifaces {
        links.down.with_label_values(&[&iface.name]);
        links.restarts.with_label_values(&[&iface.name]);
    }
    exposition.register(Box::new(links.down.clone()));
    exposition.register(Box::new(links.restarts.clone()));
    exposition.register(Box::new(links.up.clone()));
    let mut options = ServerOptions::with_web(web);
    if let Some(l) = &ledger {
        options.api = Some(Arc::new(BillingApi(l.view())));
    }
    let mut server = listener
        .serve(exposition, options)
        .map_err(|e| StartupError(format!("{origin}: metrics.listen: {listen}: {e}")))?;
    tracing::info!(listen = %server.local_addr, config = origin.as_str(), "serving /metrics");

    let mut failure = None;
    let mut last_tick = Instant::now();
    while !stop.load(Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        // Interface down time, for the billing samples' completeness.
        let dt = last_tick.elapsed().as_millis() as u64;
        last_tick = Instant::now();
        let down = ifaces.iter().filter(|i| i.supervisor.is_down()).count() as u64;
        down_ms.fetch_add(dt * down, Relaxed);
        for iface in &mut ifaces {
            if let Err(e) = iface.tick(c, &links) {
                failure = Some(e);
                stop.store(true, Relaxed);
            }
        }
        if hup.swap(false, Relaxed) {
            let reloaded = Settings::load(&cli)
                .map_err(crate::engine::EngineError::from)
                .and_then(|s| engine.reload(&s.accounting, &s.origin).map(|()| s.origin));
            match reloaded {
                Ok(from) => tracing::info!(
                    config = from.as_str(),
                    "SIGHUP: host tables reloaded ([accounting] only; other sections take effect on restart)"
                ),
                Err(e) => tracing::error!("SIGHUP: keeping the old configuration: {e}"),
            }
        }
    }
    for iface in &mut ifaces {
        for e in iface.park() {
            tracing::warn!(interface = iface.name.as_str(), "at shutdown: {e}");
        }
        if iface.panicked && failure.is_none() {
            failure = Some(anyhow::anyhow!("{}: a worker panicked", iface.name));
        }
        // The worker threads ran `finish` (flushing their flow caches) as
        // they stopped; drop the parked workers.
        for slot in &mut iface.slots {
            slot.parked = None;
        }
    }
    flow_stop.store(true, Relaxed);
    for h in flow_threads {
        if h.join().is_err() && failure.is_none() {
            failure = Some(anyhow::anyhow!("a collector thread panicked"));
        }
    }
    // The workers and collector threads have stopped: the ledger takes
    // their last counts.
    if let Some(l) = ledger {
        l.finish();
    }
    server.stop();
    // Send what the flushed caches queued.
    if let Err(e) = engine.shutdown() {
        tracing::warn!("flow export at shutdown: {e}");
    }
    match failure {
        Some(e) => Err(e),
        None => {
            tracing::info!("stopped");
            Ok(())
        }
    }
}

/// `GET /api/v1/billing/...`.
#[derive(Debug)]
struct BillingApi(Arc<crate::billing::live::BillingView>);

impl crate::metrics::server::ApiHandler for BillingApi {
    fn get(&self, path: &str, query: Option<&str>) -> (u16, &'static str, Vec<u8>) {
        crate::billing::live::api(&self.0, path, query)
    }
}

/// The ledger's families on the page.
struct BillingMetrics(Arc<crate::billing::live::BillingView>);

impl prometheus::core::Collector for BillingMetrics {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        prometheus::core::Collector::desc(&*self.0)
    }
    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        prometheus::core::Collector::collect(&*self.0)
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

    /// The first start hands the slot the source it was made with: it must
    /// not be banked and added again (that would count every frame twice).
    #[test]
    fn resumed_stats_first_start_is_not_counted_twice() {
        let source: Arc<dyn QueueStatsSource> = Arc::new(Fixed(stats(10, 9, &[])));
        let r = ResumedStats::new(source.clone());
        r.replace(source);
        assert_eq!(r.stats().frames_seen, 10);
    }
}

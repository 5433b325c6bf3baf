//! The billing ledger: exact per-interval samples per billing subject,
//! written to SQLite ([`store`]), and the 95th-percentile report from them
//! ([`report`], [`cli`]).
//!
//! A *subject* is a distinct tuple of the values of `billing.subject_labels`
//! over the configured host ranges (a range without one of the labels has
//! the empty value for it); with `billing.hosts` every host is a subject
//! too (its subject labels plus `ip`). A *sample* is, for one subject and
//! one interval `[start, start + interval)` of the Unix epoch grid, the
//! packets and bytes in and out (host point of view) summed over every
//! host of the subject on every interface and queue.
//!
//! The ledger reads the same per-host totals as the scrape
//! ([`EngineCollector::host_totals`]: all shards, plus the counts of table
//! generations retired by a reload), keeps the previous totals per host
//! and adds the difference to the running interval: the workers never
//! wait. `advance` is called with the clock (wall time for `run`, capture
//! time for `replay`) at every boundary and checkpoint; all frames counted
//! before the call belong to the interval that held the previous call's
//! time or to the one ending now. Not on the hot path; allocates freely.

pub mod cli;
pub mod live;
pub mod postgres;
pub mod report;
pub mod store;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::metrics::EngineCollector;
use crate::settings::billing::Billing;
use crate::shard::{Count, Direction, InOut, Tables};
pub use store::{IntervalWrite, Store, StoreError, Volume};

/// Intervals kept in memory while the ledger cannot be written (a day of
/// 5-minute intervals; older ones are dropped and counted).
pub const MAX_PENDING_INTERVALS: usize = 288;

/// Cumulative frames dropped on the appliance's queues and milliseconds
/// an interface was down, both monotonic. `run` reads the capture
/// counters and the supervisors; `replay` has neither.
pub type Health = Box<dyn FnMut() -> (u64, u64) + Send>;

/// Counters of the ledger itself (`xdpacct_billing_*`).
#[derive(Debug, Default)]
pub struct LedgerStats {
    /// Writes to the ledger that failed (kept in memory, retried).
    pub write_failures: AtomicU64,
    /// Transactions committed.
    pub writes: AtomicU64,
    /// Intervals given up after [`MAX_PENDING_INTERVALS`] failed to be written.
    pub intervals_lost: AtomicU64,
    /// Wall-clock steps seen (more than 1 s off the monotonic clock).
    pub clock_steps: AtomicU64,
    /// Transactions committed to PostgreSQL (`billing.postgres`).
    pub postgres_writes: AtomicU64,
    /// Pushes to PostgreSQL that failed (the intervals stay queued).
    pub postgres_write_failures: AtomicU64,
    /// Intervals waiting to be pushed to PostgreSQL.
    pub postgres_queued: AtomicU64,
}

/// Subject index of every slot of one table generation.
struct SubjectMap {
    tables: Arc<Tables>,
    /// By range: its subject.
    range_subject: Vec<usize>,
    /// By slot: the host's own subject (`billing.hosts`).
    host_subject: Vec<usize>,
}

/// The interval being filled: what this process has counted into it and
/// not yet written.
#[derive(Debug)]
struct Running {
    start: i64,
    /// By subject index.
    volumes: Vec<Volume>,
    covered_ms: u64,
    dropped: u64,
    down_ms: u64,
}

impl Running {
    fn new(start: i64) -> Self {
        Running {
            start,
            volumes: Vec::new(),
            covered_ms: 0,
            dropped: 0,
            down_ms: 0,
        }
    }
}

/// The ledger of one appliance.
pub struct Ledger {
    cfg: Billing,
    interval_ms: i64,
    store: Store,
    source: Arc<EngineCollector>,
    health: Option<Health>,
    last_health: (u64, u64),
    map: Option<SubjectMap>,
    /// Per-host totals of the last read, by slot of `map.tables`.
    prev: Vec<InOut<Count>>,
    /// Labels (JSON object text) by subject index, and the reverse.
    subjects: Vec<Arc<str>>,
    index: HashMap<Arc<str>, usize>,
    cur: Option<Running>,
    /// Coverage reached up to here (never goes back).
    last_ms: i64,
    /// The clock at the previous `advance`, for step detection.
    seen_ms: i64,
    /// Written when the store accepts them; merged by interval start.
    pending: Vec<IntervalWrite>,
    stats: Arc<LedgerStats>,
    /// The last wall time at which retention ran.
    retention_at: i64,
    /// The shared store, when `billing.postgres` is set.
    pg: Option<postgres::Pusher>,
}

/// Start of the interval holding `ms` (Unix milliseconds), in seconds.
pub fn interval_start(ms: i64, interval_ms: i64) -> i64 {
    ms.div_euclid(interval_ms) * interval_ms / 1000
}

impl Ledger {
    /// Opens the ledger file (`cfg.db`) for the shards behind `source`.
    pub fn open(cfg: &Billing, source: Arc<EngineCollector>) -> Result<Ledger, StoreError> {
        let store = Store::open(&cfg.db, cfg.interval_secs(), &cfg.appliance)?;
        Ok(Ledger::with_store(cfg, store, source))
    }

    /// A ledger on a store opened already (at start-up, before any thread).
    pub fn with_store(cfg: &Billing, store: Store, source: Arc<EngineCollector>) -> Ledger {
        Ledger {
            cfg: cfg.clone(),
            interval_ms: cfg.interval_secs() * 1000,
            store,
            source,
            health: None,
            last_health: (0, 0),
            map: None,
            prev: Vec::new(),
            subjects: Vec::new(),
            index: HashMap::new(),
            cur: None,
            last_ms: 0,
            seen_ms: 0,
            pending: Vec::new(),
            stats: Arc::default(),
            retention_at: i64::MIN,
            pg: None,
        }
        .with_postgres()
    }

    /// Starts the PostgreSQL writer when `billing.postgres` is set.
    fn with_postgres(mut self) -> Self {
        if let Some(url) = self.cfg.postgres.as_deref() {
            let sink = postgres::Sink::new(url, &self.cfg.appliance, self.cfg.interval_secs());
            self.pg = Some(postgres::Pusher::start(
                sink,
                self.store.path().to_path_buf(),
                self.stats.clone(),
            ));
        }
        self
    }

    /// Stops the PostgreSQL writer after a last attempt (replay's end; the
    /// daemon's ledger does it when dropped).
    pub fn finish_postgres(&mut self) {
        if let Some(mut pg) = self.pg.take() {
            pg.finish();
        }
    }

    /// Reads drops and down time from `health` from now on.
    pub fn with_health(mut self, mut health: Health) -> Self {
        self.last_health = health();
        self.health = Some(health);
        self
    }

    pub fn stats(&self) -> Arc<LedgerStats> {
        self.stats.clone()
    }

    pub fn settings(&self) -> &Billing {
        &self.cfg
    }

    fn subject(&mut self, labels: String) -> usize {
        if let Some(&i) = self.index.get(labels.as_str()) {
            return i;
        }
        let labels: Arc<str> = labels.into();
        self.subjects.push(labels.clone());
        self.index.insert(labels, self.subjects.len() - 1);
        self.subjects.len() - 1
    }

    /// The subject labels of a range as a JSON object (configured order).
    fn range_labels(
        &self,
        tables: &Tables,
        range: &crate::shard::hosts::HostRange,
    ) -> Vec<(String, String)> {
        let all: HashMap<&str, &str> = tables.range_labels(range).collect();
        self.cfg
            .subject_labels
            .iter()
            .map(|k| {
                (
                    k.clone(),
                    all.get(k.as_str()).copied().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    fn build_map(&mut self, tables: Arc<Tables>) -> SubjectMap {
        let mut range_subject = Vec::with_capacity(tables.ranges.len());
        let mut host_subject = Vec::new();
        if self.cfg.hosts {
            host_subject = vec![usize::MAX; tables.slots];
        }
        let mut ip = String::new();
        for range in &tables.ranges {
            let labels = self.range_labels(&tables, range);
            let s = self.subject(labels_json(&labels));
            range_subject.push(s);
            if self.cfg.hosts {
                for off in 0..range.count {
                    ip.clear();
                    tables.write_host_label(&mut ip, range, off);
                    let mut l = labels.clone();
                    l.push(("ip".into(), ip.clone()));
                    let h = self.subject(labels_json(&l));
                    host_subject[(range.base + off) as usize] = h;
                }
            }
        }
        SubjectMap {
            tables,
            range_subject,
            host_subject,
        }
    }

    /// Reads the per-host totals and adds what changed since the last read
    /// to the running interval. A reload is followed: hosts are matched by
    /// address, so a host that moves to another subject keeps its past.
    fn take_deltas(&mut self) {
        let Some((tables, totals)) = self.source.host_totals() else {
            return;
        };
        let same = self
            .map
            .as_ref()
            .is_some_and(|m| Arc::ptr_eq(&m.tables, &tables));
        if !same {
            // Carry the previous totals over by host identity.
            let mut carried = vec![InOut::<Count>::default(); tables.slots];
            if let Some(old) = self.map.take() {
                let by_key: HashMap<(bool, u128), InOut<Count>> = old
                    .tables
                    .slot_keys()
                    .into_iter()
                    .zip(self.prev.iter().copied())
                    .collect();
                for (slot, key) in tables.slot_keys().into_iter().enumerate() {
                    if let Some(p) = by_key.get(&key) {
                        carried[slot] = *p;
                    }
                }
            }
            self.prev = carried;
            self.map = Some(self.build_map(tables.clone()));
        }
        let map = self.map.as_ref().expect("map built above");
        let cur = self.cur.as_mut().expect("running interval");
        if cur.volumes.len() < self.subjects.len() {
            cur.volumes.resize(self.subjects.len(), Volume::default());
        }
        for (r, range) in tables.ranges.iter().enumerate() {
            let subject = map.range_subject[r];
            let first = range.base as usize;
            let last = first + range.count as usize;
            for (slot, &now) in totals.iter().enumerate().take(last).skip(first) {
                let before = self.prev[slot];
                if now == before {
                    continue;
                }
                let d_in = now[Direction::In].saturating_sub(before[Direction::In]);
                let d_out = now[Direction::Out].saturating_sub(before[Direction::Out]);
                self.prev[slot] = now;
                let v = Volume {
                    in_packets: d_in.packets,
                    in_bytes: d_in.bytes,
                    out_packets: d_out.packets,
                    out_bytes: d_out.bytes,
                };
                cur.volumes[subject] += v;
                if let Some(&h) = map.host_subject.get(slot) {
                    cur.volumes[h] += v;
                }
            }
        }
    }

    /// Brings the ledger to `now_ms` (Unix ms, wall or capture time);
    /// `elapsed_ms` is the monotonic time since the previous call (capture
    /// time again in replay). Counts read now go to the running interval;
    /// coverage is the wall time since the previous call, at most
    /// `elapsed_ms`, split over the intervals it spans; intervals that
    /// ended are closed and queued for writing. A wall-clock step (wall and
    /// monotonic time differ by more than 1 s) is logged; time the clock
    /// went back is not covered twice, time it jumped ahead is not covered.
    pub fn advance(&mut self, now_ms: i64, elapsed_ms: i64) {
        if self.cur.is_none() {
            self.cur = Some(Running::new(interval_start(now_ms, self.interval_ms)));
            self.last_ms = now_ms;
            self.seen_ms = now_ms;
        }
        self.take_deltas();
        if let Some(h) = self.health.as_mut() {
            let (d, m) = h();
            let cur = self.cur.as_mut().expect("running interval");
            cur.dropped += d.saturating_sub(self.last_health.0);
            cur.down_ms += m.saturating_sub(self.last_health.1);
            self.last_health = (d, m);
        }
        let wall = now_ms - self.seen_ms;
        self.seen_ms = now_ms;
        if (wall - elapsed_ms).abs() > 1000 {
            self.stats.clock_steps.fetch_add(1, Relaxed);
            tracing::warn!(
                wall_ms = wall,
                monotonic_ms = elapsed_ms,
                "billing: the wall clock stepped by {} ms; the time in between is not counted as covered",
                wall - elapsed_ms
            );
        }
        if now_ms < self.last_ms {
            // Back in time: stay in the running interval until the clock
            // passes where it was.
            return;
        }
        let mut budget = elapsed_ms.max(0);
        let mut t = self.last_ms;
        while t < now_ms {
            let start = interval_start(t, self.interval_ms);
            let end_ms = start * 1000 + self.interval_ms;
            let seg = now_ms.min(end_ms) - t;
            let c = seg.min(budget);
            budget -= c;
            let cur = self.cur.as_mut().expect("running interval");
            if start > cur.start {
                self.close_running(start);
            }
            let cur = self.cur.as_mut().expect("running interval");
            cur.covered_ms += c as u64;
            t = now_ms.min(end_ms);
        }
        let start = interval_start(now_ms, self.interval_ms);
        if start > self.cur.as_ref().expect("running interval").start {
            self.close_running(start);
        }
        self.last_ms = now_ms;
    }

    /// Queues the running interval as closed and starts the one at `start`.
    fn close_running(&mut self, start: i64) {
        let old = self.cur.replace(Running::new(start)).expect("running");
        self.queue(old, true);
    }

    fn queue(&mut self, r: Running, closed: bool) {
        if r.covered_ms == 0
            && r.dropped == 0
            && r.down_ms == 0
            && r.volumes.iter().all(Volume::is_zero)
        {
            // Capture did not run in it (a clock jump went over it): not
            // present, rather than an idle sample.
            return;
        }
        let mut samples = HashMap::new();
        for (i, v) in r.volumes.iter().enumerate() {
            if !v.is_zero() {
                samples.insert(self.subjects[i].clone(), *v);
            }
        }
        let w = IntervalWrite {
            start: r.start,
            covered_ms: r.covered_ms,
            dropped: r.dropped,
            down_ms: r.down_ms,
            closed,
            samples,
        };
        match self.pending.iter_mut().find(|p| p.start == w.start) {
            Some(p) => {
                p.covered_ms += w.covered_ms;
                p.dropped += w.dropped;
                p.down_ms += w.down_ms;
                p.closed |= w.closed;
                for (k, v) in w.samples {
                    *p.samples.entry(k).or_default() += v;
                }
            }
            None => self.pending.push(w),
        }
        if self.pending.len() > MAX_PENDING_INTERVALS {
            let lost = self.pending.remove(0);
            let n = self.stats.intervals_lost.fetch_add(1, Relaxed);
            if n.is_power_of_two() || n == 0 {
                tracing::error!(
                    db = %self.store.path().display(),
                    start = lost.start,
                    "billing: the ledger could not be written for {MAX_PENDING_INTERVALS} intervals; the oldest is given up ({} so far)", n + 1
                );
            }
        }
    }

    /// True when closed intervals wait to be written.
    pub fn has_closed(&self) -> bool {
        self.pending.iter().any(|p| p.closed)
    }

    /// Writes what is pending plus (with `partial`) what the running
    /// interval has so far, in one transaction. On failure everything stays
    /// pending (and is retried by the next call), the failure is counted.
    pub fn write(&mut self, partial: bool) -> Result<(), StoreError> {
        if partial {
            if let Some(cur) = self.cur.as_mut() {
                let fresh = Running {
                    volumes: vec![Volume::default(); cur.volumes.len()],
                    ..Running::new(cur.start)
                };
                let taken = std::mem::replace(cur, fresh);
                self.queue(taken, false);
            }
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        match self.store.write(&self.pending) {
            Ok(()) => {
                self.stats.writes.fetch_add(1, Relaxed);
                if let Some(pg) = &self.pg {
                    pg.send(self.pending.iter().map(|p| p.start).collect());
                }
                self.pending.clear();
                self.retention();
                Ok(())
            }
            Err(e) => {
                let n = self.stats.write_failures.fetch_add(1, Relaxed);
                if n == 0 || n.is_power_of_two() {
                    tracing::error!(
                        "billing: cannot write the ledger, keeping samples in memory: {e}"
                    );
                }
                Err(e)
            }
        }
    }

    /// Deletes samples older than `retention_months`, at most once an hour
    /// of ledger time.
    fn retention(&mut self) {
        if self.cfg.retention_months == 0 || self.last_ms < self.retention_at + 3_600_000 {
            return;
        }
        self.retention_at = self.last_ms;
        let Ok(now) = jiff::Timestamp::from_millisecond(self.last_ms) else {
            return;
        };
        let zoned = now.to_zoned(self.cfg.timezone.clone());
        let Ok(cut) = zoned.checked_sub(jiff::Span::new().months(self.cfg.retention_months as i64))
        else {
            return;
        };
        if let Err(e) = self.store.delete_before(cut.timestamp().as_second()) {
            tracing::warn!("billing: retention: {e}");
        }
    }

    /// Start of the running interval (Unix s), once `advance` ran.
    pub fn running_start(&self) -> Option<i64> {
        self.cur.as_ref().map(|c| c.start)
    }

    /// The wall (or capture) time of the last `advance`, Unix ms.
    pub fn clock_ms(&self) -> i64 {
        self.seen_ms
    }
}

/// `{"k":"v",...}` in the given order (JSON-escaped).
pub fn labels_json(labels: &[(String, String)]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = labels
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    serde_json::Value::Object(map).to_string()
}

/// A ledger shared with the replay reader's boundary hook, and the first
/// error the hook met.
pub type SharedLedger = Arc<std::sync::Mutex<(Ledger, Option<String>)>>;

/// Opens the ledger `db` for `xdpacct replay --billing-db` (the
/// `[billing]` settings or their defaults) and hooks it to the reader's
/// boundaries: samples at the capture's own timestamps. Call after the
/// last `add_queue`.
pub fn replay_ledger(
    engine: &mut crate::engine::Engine,
    settings: &crate::settings::Settings,
    db: std::path::PathBuf,
    reader: crate::capture::replay::ReplayReader,
) -> Result<(crate::capture::replay::ReplayReader, SharedLedger), StoreError> {
    let mut cfg = settings.billing.clone().unwrap_or_default();
    cfg.db = db;
    let interval_ns = cfg.interval.as_nanos() as u64;
    let ledger = Ledger::open(&cfg, engine.collector())?;
    let shared: SharedLedger = Arc::new(std::sync::Mutex::new((ledger, None)));
    let hook_ledger = shared.clone();
    let hook = Box::new(move |ts_ns: u64, end: bool| {
        let mut guard = hook_ledger.lock().unwrap_or_else(|p| p.into_inner());
        let (ledger, error) = &mut *guard;
        // Frames up to `ts_ns` are counted: at the end the last one's time
        // (rounded up to the millisecond) is covered.
        let now_ms = if end {
            ts_ns.div_ceil(1_000_000)
        } else {
            ts_ns / 1_000_000
        } as i64;
        let elapsed = if ledger.running_start().is_some() {
            now_ms - ledger.clock_ms()
        } else {
            0
        };
        ledger.advance(now_ms, elapsed);
        if end || ledger.has_closed() {
            if let Err(e) = ledger.write(end) {
                error.get_or_insert_with(|| e.to_string());
            }
        }
    });
    Ok((reader.with_boundaries(interval_ns, hook), shared))
}

/// After a replay: the ledger's first write error, if any (the last write
/// is retried once).
pub fn finish_replay(shared: &SharedLedger) -> Result<(), StoreError> {
    let mut guard = shared.lock().unwrap_or_else(|p| p.into_inner());
    let (ledger, error) = &mut *guard;
    let r = if error.is_some() {
        ledger.write(true)
    } else {
        Ok(())
    };
    ledger.finish_postgres();
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;
    use crate::shard::{Shard, ShardOrigin};

    const T0: i64 = 1_764_547_200_000; // 2025-12-01T00:00Z, on the grid

    fn settings(ranges: &str, db: &std::path::Path) -> Settings {
        Settings::from_toml_str(&format!(
            "[accounting]\n{ranges}\n[billing]\ninterval = 60\ndb = \"{}\"\n",
            db.display()
        ))
        .unwrap()
    }

    fn ranges(a: &[(&str, &str)]) -> String {
        a.iter()
            .map(|(p, c)| {
                format!(
                    "[[accounting.ranges]]\nprefix = \"{p}\"\nlabels = {{ customer = \"{c}\" }}\n"
                )
            })
            .collect()
    }

    struct Rig {
        _dir: tempfile::TempDir,
        db: std::path::PathBuf,
        shards: Vec<Arc<Shard>>,
        collector: Arc<EngineCollector>,
        ledger: Ledger,
    }

    fn rig(r: &[(&str, &str)]) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("l.db");
        let s = settings(&ranges(r), &db);
        let tables = Arc::new(Tables::build(&s.accounting, "t", None).unwrap());
        let shards: Vec<Arc<Shard>> = (0..2)
            .map(|q| {
                Arc::new(Shard::new(
                    ShardOrigin {
                        interface: "x".into(),
                        queue: q,
                    },
                    tables.clone(),
                ))
            })
            .collect();
        let collector = Arc::new(EngineCollector::new(shards.clone()));
        let ledger = Ledger::open(s.billing.as_ref().unwrap(), collector.clone()).unwrap();
        Rig {
            _dir: dir,
            db,
            shards,
            collector,
            ledger,
        }
    }

    /// Counts `bytes` in to the host of `slot` on shard `q`.
    fn count(r: &Rig, q: usize, slot: usize, bytes: u64) {
        r.shards[q].hosts().slots[slot].add(Direction::In, bytes);
    }

    fn extract(r: &Rig) -> store::Extract {
        store::Reader::open(&r.db)
            .unwrap()
            .extract(0, i64::MAX)
            .unwrap()
    }

    fn in_bytes(x: &store::Extract, customer: &str, start_ms: i64) -> u64 {
        x.samples
            .get(&labels_json(&[("customer".into(), customer.into())]))
            .into_iter()
            .flatten()
            .filter(|(s, _)| *s == start_ms / 1000)
            .map(|(_, v)| v.in_bytes)
            .sum()
    }

    #[test]
    fn deltas_per_interval_over_all_shards() {
        let mut r = rig(&[("10.0.0.0/31", "a"), ("10.0.1.0/32", "b")]);
        r.ledger.advance(T0, 0);
        count(&r, 0, 0, 100);
        count(&r, 1, 1, 50);
        count(&r, 1, 2, 7);
        r.ledger.advance(T0 + 60_000, 60_000); // closes the first minute
        count(&r, 0, 1, 1000);
        r.ledger.advance(T0 + 90_000, 30_000);
        r.ledger.write(true).unwrap();
        let x = extract(&r);
        assert_eq!(in_bytes(&x, "a", T0), 150);
        assert_eq!(in_bytes(&x, "b", T0), 7);
        assert_eq!(in_bytes(&x, "a", T0 + 60_000), 1000);
        let first = x.intervals[&(T0 / 1000)];
        assert!(first.closed && first.complete, "{first:?}");
        assert_eq!(first.covered_ms, 60_000);
        let running = x.intervals[&(T0 / 1000 + 60)];
        assert!(!running.closed && !running.complete);
        assert_eq!(running.covered_ms, 30_000);
    }

    #[test]
    fn a_reload_neither_loses_nor_doubles_and_follows_the_new_labels() {
        let mut r = rig(&[("10.0.0.0/30", "a")]);
        r.ledger.advance(T0, 0);
        count(&r, 0, 0, 100);
        count(&r, 1, 3, 10);
        r.ledger.advance(T0 + 10_000, 10_000);
        // 10.0.0.0/31 moves to b; 10.0.0.2/31 stays a; 10.0.0.8/32 is new.
        let s = settings(
            &ranges(&[
                ("10.0.0.0/31", "b"),
                ("10.0.0.2/31", "a"),
                ("10.0.0.8/32", "a"),
            ]),
            &r.db,
        );
        let old = r.shards[0].hosts().tables.clone();
        let t2 = Arc::new(Tables::build(&s.accounting, "t", Some(&old)).unwrap());
        r.collector.reload(t2).unwrap();
        count(&r, 0, 0, 1); // 10.0.0.0: b now
        count(&r, 1, 3, 20); // 10.0.0.3: a
        count(&r, 0, 4, 5); // 10.0.0.8: a
        r.ledger.advance(T0 + 20_000, 10_000);
        r.ledger.write(true).unwrap();
        let x = extract(&r);
        assert_eq!(in_bytes(&x, "a", T0), 100 + 10 + 20 + 5);
        assert_eq!(in_bytes(&x, "b", T0), 1);
    }

    #[test]
    fn capture_drops_and_down_time_mark_the_interval_incomplete() {
        let r = rig(&[("10.0.0.0/32", "a")]);
        let health = Arc::new(std::sync::Mutex::new((5u64, 0u64)));
        let h = health.clone();
        let Rig {
            _dir,
            db,
            shards,
            collector,
            ledger,
        } = r;
        let mut r = Rig {
            _dir,
            db,
            shards,
            collector,
            ledger: ledger.with_health(Box::new(move || *h.lock().unwrap())),
        };
        r.ledger.advance(T0, 0);
        r.ledger.advance(T0 + 60_000, 60_000); // a clean minute
        *health.lock().unwrap() = (8, 0); // 3 frames dropped
        r.ledger.advance(T0 + 120_000, 60_000);
        *health.lock().unwrap() = (8, 1_500); // 1.5 s down
        r.ledger.advance(T0 + 180_000, 60_000);
        r.ledger.write(false).unwrap();
        let x = extract(&r);
        let at = |k: i64| x.intervals[&(T0 / 1000 + 60 * k)];
        assert!(at(0).complete && at(0).dropped == 0, "{:?}", at(0));
        assert_eq!((at(1).dropped, at(1).complete), (3, false));
        assert_eq!((at(2).down_ms, at(2).complete), (1_500, false));
    }

    #[test]
    fn clock_steps_are_logged_not_covered_twice_or_skipped_as_covered() {
        let mut r = rig(&[("10.0.0.0/32", "a")]);
        r.ledger.advance(T0, 0);
        r.ledger.advance(T0 + 20_000, 20_000);
        // The clock goes back 15 s while 5 s pass.
        r.ledger.advance(T0 + 5_000 + 5_000, 5_000);
        assert_eq!(r.ledger.stats().clock_steps.load(Relaxed), 1);
        // It catches up: only time past T0 + 20 s is covered again.
        r.ledger.advance(T0 + 30_000, 20_000);
        // Then it jumps 2 minutes ahead in 1 s.
        count(&r, 0, 0, 9);
        r.ledger.advance(T0 + 150_000, 1_000);
        assert_eq!(r.ledger.stats().clock_steps.load(Relaxed), 2);
        r.ledger.write(true).unwrap();
        let x = extract(&r);
        let first = x.intervals[&(T0 / 1000)];
        // 20 s + 10 s, then 1 s of the jump: never more than real time.
        assert_eq!(first.covered_ms, 31_000);
        assert!(first.closed && !first.complete);
        // The counts up to the jump stay in the interval they were counted in.
        assert_eq!(in_bytes(&x, "a", T0), 9);
        // The minute jumped over is not in the ledger (missing, not idle).
        assert!(!x.intervals.contains_key(&(T0 / 1000 + 60)));
    }
}

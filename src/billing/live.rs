//! The ledger in `xdpacct run`: a thread that takes the boundary snapshot
//! (woken at each boundary of the wall-clock grid), checkpoints the running
//! interval every `billing.checkpoint`, writes the partial interval at
//! shutdown; the metric families of the ledger; the HTTP API's answers.
//!
//! The thread never touches the workers: it reads the shards' totals like
//! a scrape. Boundaries are taken within a few milliseconds after the
//! boundary (the frames counted in that gap go to the interval that just
//! ended). Not on the hot path; allocates freely.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;

use super::report::{self, Report};
use super::store::{Reader, StoreError};
use super::{Health, Ledger, LedgerStats, Store};
use crate::metrics::catalogue::{self as cat, counter, gauge, label};
use crate::metrics::EngineCollector;
use crate::settings::billing::Billing;

/// Unix milliseconds now.
pub fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// What the metrics and the HTTP API show: the running period's report,
/// refreshed when an interval closes, and the ledger's own counters.
pub struct BillingView {
    cfg: Billing,
    report: Mutex<Option<Report>>,
    stats: Arc<LedgerStats>,
    desc: Vec<Desc>,
}

impl std::fmt::Debug for BillingView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BillingView")
            .field("db", &self.cfg.db)
            .finish()
    }
}

impl BillingView {
    fn refresh(&self) {
        let now = jiff::Timestamp::now();
        let r = report::current_period(now, &self.cfg.timezone, self.cfg.period_start_day)
            .map_err(|e| e.to_string())
            .and_then(|period| {
                super::cli::report_from_dbs(
                    std::slice::from_ref(&self.cfg.db),
                    period,
                    self.cfg.method,
                    self.cfg.missing,
                    now.as_second(),
                    vec![],
                )
            });
        match r {
            Ok(r) => *self.report.lock().unwrap_or_else(|p| p.into_inner()) = Some(r),
            Err(e) => tracing::warn!("billing: the running period's report: {e}"),
        }
    }

    /// The ledger file.
    pub fn db(&self) -> &PathBuf {
        &self.cfg.db
    }

    pub fn settings(&self) -> &Billing {
        &self.cfg
    }
}

impl Collector for BillingView {
    fn desc(&self) -> Vec<&Desc> {
        self.desc.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut out = Vec::new();
        let s = &self.stats;
        for (f, v) in [
            (&cat::BILLING_CLOCK_STEPS, &s.clock_steps),
            (&cat::BILLING_INTERVALS_LOST, &s.intervals_lost),
            (&cat::BILLING_WRITE_FAILURES, &s.write_failures),
            (&cat::BILLING_WRITES, &s.writes),
        ] {
            out.push(f.family(vec![counter(vec![], v.load(Relaxed))]));
        }
        if self.cfg.postgres.is_some() {
            for (f, v) in [
                (
                    &cat::BILLING_POSTGRES_WRITE_FAILURES,
                    &s.postgres_write_failures,
                ),
                (&cat::BILLING_POSTGRES_WRITES, &s.postgres_writes),
            ] {
                out.push(f.family(vec![counter(vec![], v.load(Relaxed))]));
            }
            out.push(
                cat::BILLING_POSTGRES_QUEUED
                    .family(vec![gauge(vec![], s.postgres_queued.load(Relaxed) as f64)]),
            );
        }
        let guard = self.report.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = guard.as_ref() {
            let names: BTreeSet<&String> =
                r.subjects.iter().flat_map(|s| s.labels.keys()).collect();
            let mut p95 = Vec::new();
            for s in &r.subjects {
                for (dir, v) in [
                    ("in", s.in_.p95_bps),
                    ("out", s.out.p95_bps),
                    ("billable", s.billable_bps),
                ] {
                    let mut labels = vec![label("direction", dir)];
                    for n in &names {
                        labels.push(label(n, s.labels.get(*n).cloned().unwrap_or_default()));
                    }
                    p95.push(gauge(labels, v));
                }
            }
            out.push(cat::BILLING_P95.family(p95));
            let c = r.subjects.first().map(|s| s.samples).unwrap_or_default();
            let states = [
                ("expected", c.expected),
                ("present", c.present),
                ("complete", c.complete),
                ("missing", c.missing),
            ];
            out.push(
                cat::BILLING_SAMPLES.family(
                    states
                        .iter()
                        .map(|(st, v)| gauge(vec![label("state", *st)], *v as f64))
                        .collect(),
                ),
            );
        }
        out
    }
}

/// The running ledger thread.
pub struct LiveLedger {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    view: Arc<BillingView>,
}

/// Opens the ledger file at start-up (before any thread): a bad file is a
/// start-up error.
pub fn open_store(cfg: &Billing) -> Result<Store, StoreError> {
    Store::open(&cfg.db, cfg.interval_secs(), &cfg.appliance)
}

impl LiveLedger {
    /// Starts the ledger thread on the shards behind `source`.
    pub fn start(
        cfg: &Billing,
        store: Store,
        source: Arc<EngineCollector>,
        health: Health,
    ) -> std::io::Result<LiveLedger> {
        let ledger = Ledger::with_store(cfg, store, source).with_health(health);
        let view = Arc::new(BillingView {
            cfg: cfg.clone(),
            report: Mutex::new(None),
            stats: ledger.stats(),
            desc: [
                &cat::BILLING_CLOCK_STEPS,
                &cat::BILLING_INTERVALS_LOST,
                &cat::BILLING_P95,
                &cat::BILLING_POSTGRES_QUEUED,
                &cat::BILLING_POSTGRES_WRITE_FAILURES,
                &cat::BILLING_POSTGRES_WRITES,
                &cat::BILLING_SAMPLES,
                &cat::BILLING_WRITE_FAILURES,
                &cat::BILLING_WRITES,
            ]
            .iter()
            .map(|f| f.desc())
            .collect(),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let (stop, view) = (stop.clone(), view.clone());
            std::thread::Builder::new()
                .name("xdpacct-billing".into())
                .spawn(move || run(ledger, &stop, &view))?
        };
        Ok(LiveLedger {
            stop,
            handle: Some(handle),
            view,
        })
    }

    pub fn view(&self) -> Arc<BillingView> {
        self.view.clone()
    }

    /// Takes the last counts and writes the partial interval. Call after
    /// the workers stopped.
    pub fn finish(mut self) {
        self.stop.store(true, Relaxed);
        if let Some(h) = self.handle.take() {
            if h.join().is_err() {
                tracing::error!("billing: the ledger thread panicked");
            }
        }
    }
}

fn run(mut ledger: Ledger, stop: &AtomicBool, view: &BillingView) {
    let interval_ms = ledger.settings().interval_secs() * 1000;
    let checkpoint = ledger.settings().checkpoint;
    let mut mono = Instant::now();
    ledger.advance(wall_ms(), 0);
    view.refresh();
    let mut last_write = Instant::now();
    let mut tick = |ledger: &mut Ledger, last_write: &mut Instant, force: bool| {
        let now = Instant::now();
        let elapsed = now.duration_since(mono).as_millis() as i64;
        mono = now;
        ledger.advance(wall_ms(), elapsed);
        let closed = ledger.has_closed();
        if closed || force || last_write.elapsed() >= checkpoint {
            // Failures stay pending and are retried at the next tick.
            let ok = ledger.write(true).is_ok();
            *last_write = Instant::now();
            if closed && ok {
                view.refresh();
            }
            ok
        } else {
            true
        }
    };
    while !stop.load(Relaxed) {
        let now = wall_ms();
        let next_boundary = (now.div_euclid(interval_ms) + 1) * interval_ms;
        let to_boundary = Duration::from_millis((next_boundary - now).max(0) as u64);
        let to_checkpoint = checkpoint.saturating_sub(last_write.elapsed());
        let wait = to_boundary.min(to_checkpoint);
        if wait > Duration::from_millis(100) {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        std::thread::sleep(wait);
        tick(&mut ledger, &mut last_write, false);
    }
    // SIGTERM: the workers have stopped; write what they counted. A
    // failing write is retried a few times before giving up (logged).
    for attempt in 0..5 {
        if tick(&mut ledger, &mut last_write, true) {
            tracing::info!("billing: the running interval written at shutdown");
            return;
        }
        std::thread::sleep(Duration::from_millis(200 << attempt));
    }
    tracing::error!("billing: the running interval could not be written at shutdown");
}

/// The HTTP API: `GET /api/v1/billing/report` and `/api/v1/billing/samples`.
/// Returns (status, content type, body).
pub fn api(view: &BillingView, path: &str, query: Option<&str>) -> (u16, &'static str, Vec<u8>) {
    let params: HashMap<String, String> = query
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            Some((pct_decode(k)?, pct_decode(v)?))
        })
        .collect();
    let bad = |m: String| (400, "text/plain", (m + "\n").into_bytes());
    let csv = params.get("format").is_some_and(|f| f == "csv");
    match path {
        "/api/v1/billing/report" => {
            let args = super::cli::ReportArgs {
                period: params.get("period").cloned(),
                from: params.get("from").cloned(),
                to: params.get("to").cloned(),
                dbs: vec![view.cfg.db.clone()],
                subject: params.get("subject").cloned().into_iter().collect(),
                method: params.get("method").cloned(),
                missing: params.get("missing").cloned(),
                ..Default::default()
            };
            if args.period.is_some() && (args.from.is_some() || args.to.is_some())
                || args.from.is_some() != args.to.is_some()
            {
                return bad("give period=YYYY-MM, or from=T&to=T".into());
            }
            match super::cli::report_from_args(&view.cfg, &args) {
                Ok(r) if csv => (200, "text/csv; charset=utf-8", r.to_csv().into_bytes()),
                Ok(r) => (200, "application/json", r.to_json().into_bytes()),
                Err(e) => bad(e),
            }
        }
        "/api/v1/billing/samples" => match samples(view, &params, csv) {
            Ok(body) if csv => (200, "text/csv; charset=utf-8", body),
            Ok(body) => (200, "application/json", body),
            Err(e) => bad(e),
        },
        _ => (404, "text/plain", b"not found\n".to_vec()),
    }
}

/// Every sample of the subjects matching `subject=key=value` over
/// [from, to), with its interval's state; intervals without a row for the
/// subject but present in the ledger are 0 (listed).
fn samples(view: &BillingView, p: &HashMap<String, String>, csv: bool) -> Result<Vec<u8>, String> {
    let tz = &view.cfg.timezone;
    let (Some(from), Some(to)) = (p.get("from"), p.get("to")) else {
        return Err("samples need from=T&to=T".into());
    };
    let (from, to) = (
        report::parse_time(from, tz).map_err(|e| e.to_string())?,
        report::parse_time(to, tz).map_err(|e| e.to_string())?,
    );
    if to <= from || to - from > 400 * 86_400 {
        return Err("to must be after from, at most 400 days".into());
    }
    let want: Option<(String, String)> = match p.get("subject") {
        None => None,
        Some(s) => Some(
            s.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or("subject=key=value")?,
        ),
    };
    let r = Reader::open(&view.cfg.db).map_err(|e| e.to_string())?;
    let x = r.extract(from, to).map_err(|e| e.to_string())?;
    let mut starts: Vec<&i64> = x.intervals.keys().collect();
    starts.sort();
    let mut rows = Vec::new();
    let mut subjects: Vec<(&String, &Vec<(i64, super::Volume)>)> = x.samples.iter().collect();
    subjects.sort_by_key(|s| s.0);
    for (labels_text, list) in subjects {
        let labels: std::collections::BTreeMap<String, String> =
            serde_json::from_str(labels_text).unwrap_or_default();
        if let Some((k, v)) = &want {
            if labels.get(k) != Some(v) {
                continue;
            }
        }
        let by_start: HashMap<i64, super::Volume> = list.iter().copied().collect();
        for s in &starts {
            let st = x.intervals[s];
            let v = by_start.get(s).copied().unwrap_or_default();
            rows.push((labels.clone(), **s, v, st));
        }
    }
    let iv = r.interval_secs;
    if csv {
        let mut out = String::from("labels,start,in_packets,in_bytes,out_packets,out_bytes,covered_ms,dropped,down_ms,closed,complete\n");
        for (l, s, v, st) in rows {
            let l = serde_json::to_string(&l)
                .unwrap_or_default()
                .replace('"', "\"\"");
            out.push_str(&format!(
                "\"{l}\",{},{},{},{},{},{},{},{},{},{}\n",
                report::rfc3339(s),
                v.in_packets,
                v.in_bytes,
                v.out_packets,
                v.out_bytes,
                st.covered_ms,
                st.dropped,
                st.down_ms,
                st.closed,
                st.complete
            ));
        }
        return Ok(out.into_bytes());
    }
    let list: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|(l, s, v, st)| {
            serde_json::json!({
                "labels": l, "start": report::rfc3339(s), "start_unix": s,
                "in": {"packets": v.in_packets, "bytes": v.in_bytes},
                "out": {"packets": v.out_packets, "bytes": v.out_bytes},
                "covered_ms": st.covered_ms, "dropped": st.dropped, "down_ms": st.down_ms,
                "closed": st.closed, "complete": st.complete,
            })
        })
        .collect();
    let doc = serde_json::json!({"interval_seconds": iv, "samples": list});
    Ok((serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n").into_bytes())
}

/// Percent-decoding of a query component (`+` is a space).
fn pct_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

//! The shared store of several appliances: every sample also written to
//! PostgreSQL (`billing.postgres`), keyed by appliance name
//! (`billing.appliance`), and read back by `billing report --postgres`.
//!
//! Schema (created when missing; README "Billing" documents it):
//!
//! ```sql
//! xdpacct_billing_intervals(appliance TEXT, start BIGINT,  -- Unix s, on the grid
//!     interval_seconds INTEGER, covered_ms BIGINT, dropped BIGINT, down_ms BIGINT,
//!     closed BOOLEAN, complete BOOLEAN, updated_at TIMESTAMPTZ,
//!     PRIMARY KEY (appliance, start))
//! xdpacct_billing_samples(appliance TEXT, start BIGINT, labels TEXT,  -- a JSON object
//!     in_packets BIGINT, in_bytes BIGINT, out_packets BIGINT, out_bytes BIGINT,
//!     PRIMARY KEY (appliance, start, labels))
//! ```
//!
//! The SQLite ledger stays the system of record on the appliance: after
//! each successful SQLite write the touched intervals' *absolute* totals
//! are read back from it and upserted (`ON CONFLICT … DO UPDATE SET x =
//! excluded.x`), so a retried or repeated write never counts twice. The
//! push runs on its own thread ([`Pusher`]): the ledger thread never waits
//! for PostgreSQL. When PostgreSQL cannot be reached, the interval starts
//! stay queued (at most [`MAX_QUEUED`]; the oldest are dropped and logged)
//! and are retried every [`RETRY`]; the SQLite ledger is written
//! regardless. Plain TCP only (no TLS yet). Not on the hot path; allocates
//! freely.

use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use postgres::{Client, Config, NoTls};

use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use super::store::{Extract, IntervalState, IntervalTotals, Reader, Store, StoreError, Volume};
use super::LedgerStats;

/// Interval starts kept queued while PostgreSQL is unreachable: 31 days of
/// 5-minute intervals (8 bytes each; the samples themselves are in SQLite).
pub const MAX_QUEUED: usize = 31 * 288;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Data unacknowledged this long fails the connection (a silent peer).
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(15);
/// Time between attempts while PostgreSQL is unreachable.
const RETRY: Duration = Duration::from_secs(5);

/// Where the totals of an interval are read from (the SQLite ledger).
pub trait Totals {
    fn totals(&self, start: i64) -> Result<Option<IntervalTotals>, StoreError>;
}

impl Totals for Store {
    fn totals(&self, start: i64) -> Result<Option<IntervalTotals>, StoreError> {
        self.interval_totals(start)
    }
}

impl Totals for Reader {
    fn totals(&self, start: i64) -> Result<Option<IntervalTotals>, StoreError> {
        self.interval_totals(start)
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS xdpacct_billing_intervals (
    appliance TEXT NOT NULL,
    start BIGINT NOT NULL,
    interval_seconds INTEGER NOT NULL,
    covered_ms BIGINT NOT NULL,
    dropped BIGINT NOT NULL,
    down_ms BIGINT NOT NULL,
    closed BOOLEAN NOT NULL,
    complete BOOLEAN NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (appliance, start)
);
CREATE TABLE IF NOT EXISTS xdpacct_billing_samples (
    appliance TEXT NOT NULL,
    start BIGINT NOT NULL,
    labels TEXT NOT NULL,
    in_packets BIGINT NOT NULL,
    in_bytes BIGINT NOT NULL,
    out_packets BIGINT NOT NULL,
    out_bytes BIGINT NOT NULL,
    PRIMARY KEY (appliance, start, labels)
);
";

/// Why PostgreSQL cannot be used. The message names the server (without
/// the password).
#[derive(Debug, thiserror::Error)]
#[error("PostgreSQL {url}: {msg}")]
pub struct PgError {
    pub url: String,
    pub msg: String,
}

/// The URL without a password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(p), Some(at)) if at > p => {
            let cred = &url[p + 3..at];
            match cred.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..p + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

fn connect(url: &str) -> Result<Client, PgError> {
    let err = |msg: String| PgError {
        url: redact(url),
        msg,
    };
    let mut cfg = Config::from_str(url).map_err(|e| err(e.to_string()))?;
    cfg.connect_timeout(CONNECT_TIMEOUT);
    cfg.keepalives(true);
    cfg.keepalives_idle(Duration::from_secs(30));
    cfg.keepalives_interval(Duration::from_secs(5));
    cfg.keepalives_retries(3);
    cfg.tcp_user_timeout(TCP_USER_TIMEOUT);
    if cfg.get_application_name().is_none() {
        cfg.application_name("xdpacct");
    }
    let mut client = cfg.connect(NoTls).map_err(|e| err(e.to_string()))?;
    client
        .batch_execute("SET statement_timeout = 30000")
        .map_err(|e| err(e.to_string()))?;
    Ok(client)
}

/// The writer of one appliance: a lazy connection and the queue of
/// interval starts to push.
pub struct Sink {
    url: String,
    appliance: String,
    interval_secs: i64,
    client: Option<Client>,
    queued: BTreeSet<i64>,
    /// Since the first failure of the current outage.
    down: bool,
}

impl Sink {
    /// No connection is made here: an unreachable server at start-up is
    /// an outage like any other (the SQLite ledger runs on).
    pub fn new(url: &str, appliance: &str, interval_secs: i64) -> Sink {
        Sink {
            url: url.to_string(),
            appliance: appliance.to_string(),
            interval_secs,
            client: None,
            queued: BTreeSet::new(),
            down: false,
        }
    }

    /// Queues the interval at `start` to be pushed.
    pub fn mark(&mut self, start: i64) {
        self.queued.insert(start);
        while self.queued.len() > MAX_QUEUED {
            if let Some(old) = self.queued.pop_first() {
                tracing::error!(
                    appliance = %self.appliance,
                    start = old,
                    "billing: PostgreSQL unreachable for {MAX_QUEUED} intervals; the oldest is no longer queued for it (it stays in the SQLite ledger)"
                );
            }
        }
    }

    /// Intervals waiting to be pushed.
    pub fn queued(&self) -> usize {
        self.queued.len()
    }

    /// Pushes every queued interval's totals from `store`, in one
    /// transaction. On failure the queue stays, the connection is dropped
    /// (reconnected next time), the failure counted, and logged once per
    /// outage.
    pub fn push(&mut self, store: &impl Totals, stats: &LedgerStats) {
        if self.queued.is_empty() {
            return;
        }
        match self.try_push(store) {
            Ok(n) => {
                stats.postgres_writes.fetch_add(1, Relaxed);
                if self.down {
                    tracing::info!(
                        url = %redact(&self.url),
                        "billing: PostgreSQL reachable again; {n} queued intervals written"
                    );
                    self.down = false;
                }
                self.queued.clear();
            }
            Err(e) => {
                stats.postgres_write_failures.fetch_add(1, Relaxed);
                self.client = None;
                if !self.down {
                    tracing::error!(
                        "billing: cannot write to {e}; the SQLite ledger is written, the intervals are queued and retried"
                    );
                    self.down = true;
                }
            }
        }
    }

    fn try_push(&mut self, store: &impl Totals) -> Result<usize, PgError> {
        let err = |e: postgres::Error| PgError {
            url: redact(&self.url),
            msg: e.to_string(),
        };
        if self.client.is_none() {
            let mut c = connect(&self.url)?;
            c.batch_execute(SCHEMA).map_err(err)?;
            self.client = Some(c);
        }
        // Read from SQLite first: no SQLite work inside the PG transaction.
        let mut rows: Vec<(i64, IntervalTotals)> = Vec::new();
        for &start in &self.queued {
            match store.totals(start) {
                Ok(Some(t)) => rows.push((start, t)),
                Ok(None) => {}
                Err(e) => {
                    return Err(PgError {
                        url: redact(&self.url),
                        msg: format!("reading the SQLite ledger: {e}"),
                    })
                }
            }
        }
        let client = self.client.as_mut().expect("connected above");
        let mut tx = client.transaction().map_err(err)?;
        let ins_interval = tx
            .prepare(
                "INSERT INTO xdpacct_billing_intervals
                   (appliance, start, interval_seconds, covered_ms, dropped, down_ms, closed, complete)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (appliance, start) DO UPDATE SET interval_seconds = excluded.interval_seconds,
                   covered_ms = excluded.covered_ms, dropped = excluded.dropped, down_ms = excluded.down_ms,
                   closed = excluded.closed, complete = excluded.complete, updated_at = now()",
            )
            .map_err(err)?;
        let ins_sample = tx
            .prepare(
                "INSERT INTO xdpacct_billing_samples
                   (appliance, start, labels, in_packets, in_bytes, out_packets, out_bytes)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (appliance, start, labels) DO UPDATE SET in_packets = excluded.in_packets,
                   in_bytes = excluded.in_bytes, out_packets = excluded.out_packets,
                   out_bytes = excluded.out_bytes",
            )
            .map_err(err)?;
        let iv = self.interval_secs as i32;
        for (start, (st, samples)) in &rows {
            tx.execute(
                &ins_interval,
                &[
                    &self.appliance,
                    start,
                    &iv,
                    &(st.covered_ms as i64),
                    &(st.dropped as i64),
                    &(st.down_ms as i64),
                    &st.closed,
                    &st.complete,
                ],
            )
            .map_err(err)?;
            for (labels, v) in samples {
                tx.execute(
                    &ins_sample,
                    &[
                        &self.appliance,
                        start,
                        labels,
                        &(v.in_packets as i64),
                        &(v.in_bytes as i64),
                        &(v.out_packets as i64),
                        &(v.out_bytes as i64),
                    ],
                )
                .map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        Ok(rows.len())
    }
}

/// The writer's own thread: the ledger thread hands it the starts of the
/// intervals it wrote to SQLite and never waits for PostgreSQL. The thread
/// reads their totals back through its own read-only SQLite connection.
pub struct Pusher {
    tx: Option<mpsc::Sender<Vec<i64>>>,
    handle: Option<JoinHandle<()>>,
}

impl Pusher {
    /// Starts the thread for the ledger file `db` (which exists already).
    pub fn start(mut sink: Sink, db: PathBuf, stats: Arc<LedgerStats>) -> Pusher {
        let (tx, rx) = mpsc::channel::<Vec<i64>>();
        let handle = std::thread::Builder::new()
            .name("xdpacct-billing-pg".into())
            .spawn(move || pusher(&rx, &mut sink, &db, &stats));
        match handle {
            Ok(h) => Pusher {
                tx: Some(tx),
                handle: Some(h),
            },
            Err(e) => {
                tracing::error!("billing: cannot start the PostgreSQL writer thread: {e}");
                Pusher {
                    tx: None,
                    handle: None,
                }
            }
        }
    }

    /// Queues intervals (written to SQLite) to be pushed.
    pub fn send(&self, starts: Vec<i64>) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(starts);
        }
    }

    /// Makes a last attempt with what is queued and waits for the thread.
    pub fn finish(&mut self) {
        self.tx.take();
        if let Some(h) = self.handle.take() {
            if h.join().is_err() {
                tracing::error!("billing: the PostgreSQL writer thread panicked");
            }
        }
    }
}

impl Drop for Pusher {
    fn drop(&mut self) {
        self.finish();
    }
}

fn pusher(
    rx: &mpsc::Receiver<Vec<i64>>,
    sink: &mut Sink,
    db: &std::path::Path,
    stats: &LedgerStats,
) {
    let mut reader: Option<Reader> = None;
    let mut next_try = Instant::now();
    loop {
        let got = if sink.queued() == 0 {
            rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            rx.recv_timeout(next_try.saturating_duration_since(Instant::now()))
        };
        let closed = match got {
            Ok(starts) => {
                starts.into_iter().for_each(|s| sink.mark(s));
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        let mut closed = closed;
        loop {
            match rx.try_recv() {
                Ok(starts) => starts.into_iter().for_each(|s| sink.mark(s)),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        if closed || Instant::now() >= next_try {
            if reader.is_none() {
                match Reader::open(db) {
                    Ok(r) => reader = Some(r),
                    Err(e) => {
                        stats.postgres_write_failures.fetch_add(1, Relaxed);
                        tracing::error!(
                            "billing: the PostgreSQL writer cannot read the ledger: {e}"
                        );
                    }
                }
            }
            if let Some(r) = &reader {
                sink.push(r, stats);
            }
            if sink.queued() > 0 {
                next_try = Instant::now() + RETRY;
            }
            stats.postgres_queued.store(sink.queued() as u64, Relaxed);
        }
        if closed {
            if sink.queued() > 0 {
                tracing::error!(
                    "billing: {} intervals not written to PostgreSQL at exit (they are in the SQLite ledger)",
                    sink.queued()
                );
            }
            return;
        }
    }
}

/// What `billing report --postgres` reads over [from, to): one extract per
/// appliance (so that, as with several `--db`, an interval is present when
/// any appliance has it and complete when all have it complete), and the
/// interval length all of them share.
pub fn extracts(
    url: &str,
    appliance: Option<&str>,
    from: i64,
    to: i64,
) -> Result<(Option<i64>, Vec<Extract>), PgError> {
    let mut client = connect(url)?;
    let err = |e: postgres::Error| PgError {
        url: redact(url),
        msg: e.to_string(),
    };
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('xdpacct_billing_intervals') IS NOT NULL",
            &[],
        )
        .map_err(err)?
        .get(0);
    if !exists {
        return Err(PgError {
            url: redact(url),
            msg: "no table xdpacct_billing_intervals (no appliance wrote here yet)".into(),
        });
    }
    let mut by_app: std::collections::BTreeMap<String, Extract> = Default::default();
    let mut interval: Option<i64> = None;
    let rows = client
        .query(
            "SELECT appliance, start, interval_seconds, covered_ms, dropped, down_ms, closed, complete
             FROM xdpacct_billing_intervals
             WHERE start >= $1 AND start < $2 AND ($3::TEXT IS NULL OR appliance = $3)",
            &[&from, &to, &appliance],
        )
        .map_err(err)?;
    for r in rows {
        let app: String = r.get(0);
        let iv = i64::from(r.get::<_, i32>(2));
        match interval {
            None => interval = Some(iv),
            Some(i) if i != iv => {
                return Err(PgError {
                    url: redact(url),
                    msg: format!(
                        "appliance {app:?} wrote {iv} s intervals, others {i} s; report them apart (--appliance)"
                    ),
                })
            }
            _ => {}
        }
        by_app.entry(app).or_default().intervals.insert(
            r.get(1),
            IntervalState {
                covered_ms: r.get::<_, i64>(3) as u64,
                dropped: r.get::<_, i64>(4) as u64,
                down_ms: r.get::<_, i64>(5) as u64,
                closed: r.get(6),
                complete: r.get(7),
            },
        );
    }
    let rows = client
        .query(
            "SELECT appliance, start, labels, in_packets, in_bytes, out_packets, out_bytes
             FROM xdpacct_billing_samples
             WHERE start >= $1 AND start < $2 AND ($3::TEXT IS NULL OR appliance = $3)",
            &[&from, &to, &appliance],
        )
        .map_err(err)?;
    for r in rows {
        let v = Volume {
            in_packets: r.get::<_, i64>(3) as u64,
            in_bytes: r.get::<_, i64>(4) as u64,
            out_packets: r.get::<_, i64>(5) as u64,
            out_bytes: r.get::<_, i64>(6) as u64,
        };
        by_app
            .entry(r.get(0))
            .or_default()
            .samples
            .entry(r.get(2))
            .or_default()
            .push((r.get(1), v));
    }
    Ok((interval, by_app.into_values().collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redact("postgres://bill:secret@db:5432/x"),
            "postgres://bill:***@db:5432/x"
        );
        assert_eq!(redact("postgres://db/x"), "postgres://db/x");
        assert_eq!(redact("postgres://u@db/x"), "postgres://u@db/x");
    }
}

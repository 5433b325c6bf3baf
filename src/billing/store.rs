//! The ledger file: SQLite in WAL mode, readable with `sqlite3`.
//!
//! Schema (version 2; README "Billing" documents it for operators):
//!
//! ```sql
//! meta(key TEXT PRIMARY KEY, value TEXT)   -- schema_version, appliance, interval_seconds
//! subjects(id INTEGER PRIMARY KEY, labels TEXT UNIQUE)  -- a JSON object of label values
//! intervals(start INTEGER PRIMARY KEY,     -- Unix seconds, on the interval grid
//!           covered_ms, dropped, down_ms,  -- capture coverage and loss in it
//!           closed, complete, writes,
//!           packed)                        -- 1: `packed` holds its samples too
//! samples(start, subject, in_packets, in_bytes, out_packets, out_bytes,
//!         PRIMARY KEY (start, subject)) WITHOUT ROWID
//! packed(chunk, start, width, volumes, PRIMARY KEY (chunk, start))
//! sample_view                              -- samples joined with labels and state
//! ```
//!
//! A subject without a `samples` row in an interval that has an
//! `intervals` row counted nothing then (0 bytes, present). Every write
//! adds to what is there (`ON CONFLICT … DO UPDATE SET x = x + …`), so a
//! restart inside an interval adds to it and a retried write after a
//! failed one counts each delta once.
//!
//! `samples` is the record; `packed` is a dense copy for the report (a
//! month of 10,000 subjects is 86 M rows, too many to read one by one):
//! per closed interval and chunk of [`CHUNK`] subject ids, the four volumes
//! of subject `chunk·CHUNK + j` at byte `4·width·j` of `volumes`, each
//! `width` bytes little-endian (the least width holding the chunk's
//! largest value), zero for a subject without a sample. It is rebuilt
//! from `samples` in the same transaction as every write to a closed
//! interval, so the two never disagree (a rowid table, not WITHOUT
//! ROWID: rows are appended in interval order and stay dense on disk,
//! the primary key index finds a chunk's rows). An interval with `packed = 0`
//! (running, or written by schema version 1) is read from `samples`.
//! Version 1 files are migrated in place when opened for writing (two
//! cheap schema statements in one transaction); readers read both.
//!
//! An existing file is never overwritten: it must be an SQLite database
//! with this application id (or empty), with the same interval. The
//! writer holds an exclusive `flock` on the file, so two daemons cannot
//! write one ledger. Not on the hot path; allocates freely.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

/// `PRAGMA application_id` of a ledger: "xdpb".
pub const APPLICATION_ID: i32 = 0x7864_7062;
/// `PRAGMA user_version` of this schema.
pub const SCHEMA_VERSION: i32 = 2;
/// Subject ids per `packed` row: a report reads this many subjects at a
/// time (its memory: CHUNK × intervals × 16 bytes, 35 MB for a month).
pub const CHUNK: i64 = 256;

/// Why the ledger cannot be opened or written. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {msg}")]
    Open { path: String, msg: String },
    /// The SQLite error is in the message (not a `source`, so that the
    /// one-line message does not repeat it).
    #[error("{path}: {err}")]
    Sql { path: String, err: rusqlite::Error },
}

impl StoreError {
    fn open(path: &Path, msg: impl Into<String>) -> StoreError {
        StoreError::Open {
            path: path.display().to_string(),
            msg: msg.into(),
        }
    }
}

/// Sample values: packets and bytes, in and out (host point of view).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Volume {
    pub in_packets: u64,
    pub in_bytes: u64,
    pub out_packets: u64,
    pub out_bytes: u64,
}

impl Volume {
    pub fn is_zero(&self) -> bool {
        *self == Volume::default()
    }
}

impl std::ops::AddAssign for Volume {
    fn add_assign(&mut self, o: Volume) {
        self.in_packets += o.in_packets;
        self.in_bytes += o.in_bytes;
        self.out_packets += o.out_packets;
        self.out_bytes += o.out_bytes;
    }
}

/// What one write adds to one interval.
#[derive(Clone, Debug, Default)]
pub struct IntervalWrite {
    pub start: i64,
    pub covered_ms: u64,
    pub dropped: u64,
    pub down_ms: u64,
    /// The interval ended (no more writes expected).
    pub closed: bool,
    /// By subject labels (JSON object text).
    pub samples: HashMap<std::sync::Arc<str>, Volume>,
}

/// State of one interval as stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IntervalState {
    pub covered_ms: u64,
    pub dropped: u64,
    pub down_ms: u64,
    pub closed: bool,
    pub complete: bool,
}

/// One interval as stored: its state and its samples by subject labels.
pub type IntervalTotals = (IntervalState, Vec<(String, Volume)>);

/// Version 1 to 2: the `packed` copy (empty: version 1 intervals are read
/// from `samples`).
const MIGRATE_1_2: &str = "
BEGIN;
ALTER TABLE intervals ADD COLUMN packed INTEGER NOT NULL DEFAULT 0;
CREATE TABLE packed (
    chunk INTEGER NOT NULL,
    start INTEGER NOT NULL,
    width INTEGER NOT NULL,
    volumes BLOB NOT NULL,
    PRIMARY KEY (chunk, start)
);
UPDATE meta SET value = '2' WHERE key = 'schema_version';
PRAGMA user_version = 2;
COMMIT;
";

/// A ledger open for writing.
pub struct Store {
    path: PathBuf,
    conn: Connection,
    /// Held for the store's life: the exclusive flock.
    _lock: File,
    interval_ms: i64,
    subject_ids: HashMap<String, i64>,
}

/// Checks that an existing file is a ledger (or empty) before SQLite
/// touches it.
fn check_existing(path: &Path) -> Result<bool, StoreError> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(StoreError::open(path, e.to_string())),
    };
    let meta = f
        .metadata()
        .map_err(|e| StoreError::open(path, e.to_string()))?;
    if !meta.is_file() {
        return Err(StoreError::open(path, "not a regular file"));
    }
    if meta.len() == 0 {
        return Ok(false);
    }
    let mut head = [0u8; 100];
    let n = f.read(&mut head).unwrap_or(0);
    if n < 100 || &head[..16] != b"SQLite format 3\0" {
        return Err(StoreError::open(
            path,
            "not a billing ledger (not an SQLite database); refusing to touch it",
        ));
    }
    let mut app = i32::from_be_bytes([head[68], head[69], head[70], head[71]]);
    if app != APPLICATION_ID && head[18] == 2 {
        // WAL mode: page 1 may be newer in the WAL than in the file; ask
        // SQLite (read-only: nothing is written to a foreign file).
        app = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| c.query_row("PRAGMA application_id", [], |r| r.get(0)))
            .unwrap_or(app);
    }
    if app != APPLICATION_ID {
        return Err(StoreError::open(
            path,
            "an SQLite database but not a billing ledger (application id differs); refusing to touch it",
        ));
    }
    Ok(true)
}

fn sql(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |err| StoreError::Sql {
        path: path.display().to_string(),
        err,
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS subjects (id INTEGER PRIMARY KEY, labels TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS intervals (
    start INTEGER PRIMARY KEY,
    covered_ms INTEGER NOT NULL,
    dropped INTEGER NOT NULL,
    down_ms INTEGER NOT NULL,
    closed INTEGER NOT NULL,
    complete INTEGER NOT NULL,
    writes INTEGER NOT NULL,
    packed INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS samples (
    start INTEGER NOT NULL,
    subject INTEGER NOT NULL REFERENCES subjects(id),
    in_packets INTEGER NOT NULL,
    in_bytes INTEGER NOT NULL,
    out_packets INTEGER NOT NULL,
    out_bytes INTEGER NOT NULL,
    PRIMARY KEY (start, subject)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS packed (
    chunk INTEGER NOT NULL,
    start INTEGER NOT NULL,
    width INTEGER NOT NULL,
    volumes BLOB NOT NULL,
    PRIMARY KEY (chunk, start)
);
CREATE VIEW IF NOT EXISTS sample_view AS
    SELECT s.start, datetime(s.start, 'unixepoch') AS start_utc, j.labels,
           s.in_packets, s.in_bytes, s.out_packets, s.out_bytes,
           i.covered_ms, i.dropped, i.down_ms, i.closed, i.complete
    FROM samples s JOIN subjects j ON j.id = s.subject JOIN intervals i ON i.start = s.start;
";

impl Store {
    /// Opens (or creates) the ledger at `path` for writing. Refuses a file
    /// that is not a ledger, a ledger of another interval, one another
    /// process writes, and a directory it cannot write.
    pub fn open(path: &Path, interval_secs: i64, appliance: &str) -> Result<Store, StoreError> {
        let existed = check_existing(path)?;
        if !existed {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if !dir.is_dir() {
                return Err(StoreError::open(
                    path,
                    format!("directory {} does not exist", dir.display()),
                ));
            }
        }
        let lock = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| StoreError::open(path, format!("cannot open for writing: {e}")))?;
        // flock, not fcntl: SQLite's own fcntl locks are not disturbed.
        match rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                return Err(StoreError::open(
                    path,
                    "locked: another xdpacct writes this ledger",
                ))
            }
            Err(e) => {
                return Err(StoreError::open(
                    path,
                    format!("cannot lock: {}", std::io::Error::from(e)),
                ))
            }
        }
        let s = sql(path);
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(&s)?;
        conn.busy_timeout(std::time::Duration::from_secs(2))
            .map_err(&s)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| StoreError::open(path, format!("cannot use it: {e}")))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::open(
                path,
                format!("journal mode {mode}, not wal"),
            ));
        }
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
            .map_err(&s)?;
        if existed {
            let mut version: i32 = conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(&s)?;
            if version == 1 {
                conn.execute_batch(MIGRATE_1_2).map_err(|e| {
                    let _ = conn.execute_batch("ROLLBACK");
                    StoreError::open(
                        path,
                        format!("cannot migrate the ledger from schema version 1 to 2 (it is unchanged): {e}"),
                    )
                })?;
                version = SCHEMA_VERSION;
            }
            if version != SCHEMA_VERSION {
                return Err(StoreError::open(
                    path,
                    format!("ledger schema version {version}, this xdpacct reads versions 1 and {SCHEMA_VERSION}; use the xdpacct that wrote it, or a new file"),
                ));
            }
            let stored: Option<String> = conn
                .query_row(
                    "SELECT value FROM meta WHERE key = 'interval_seconds'",
                    [],
                    |r| r.get(0),
                )
                .optional()
                .map_err(&s)?;
            if stored.as_deref() != Some(&interval_secs.to_string()) {
                return Err(StoreError::open(
                    path,
                    format!(
                        "ledger interval is {} s, billing.interval is {interval_secs} s; use a new file",
                        stored.as_deref().unwrap_or("?")
                    ),
                ));
            }
        } else {
            conn.execute_batch(&format!(
                "BEGIN; PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION}; {SCHEMA}"
            ))
            .map_err(|e| StoreError::open(path, format!("cannot create the ledger: {e}")))?;
            conn.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?1), ('interval_seconds', ?2), ('appliance', ?3)",
                params![SCHEMA_VERSION.to_string(), interval_secs.to_string(), appliance],
            )
            .and_then(|_| conn.execute_batch("COMMIT; PRAGMA wal_checkpoint(TRUNCATE);"))
            .map_err(|e| StoreError::open(path, format!("cannot create the ledger: {e}")))?;
        }
        Ok(Store {
            path: path.to_path_buf(),
            conn,
            _lock: lock,
            interval_ms: interval_secs * 1000,
            subject_ids: HashMap::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds `writes` in one transaction; all or nothing.
    pub fn write(&mut self, writes: &[IntervalWrite]) -> Result<(), StoreError> {
        let path = self.path.clone();
        let s = sql(&path);
        let tx = self.conn.transaction().map_err(&s)?;
        let mut new_ids = Vec::new();
        {
            let mut ins_subject = tx
                .prepare_cached("INSERT INTO subjects(labels) VALUES (?1) ON CONFLICT(labels) DO UPDATE SET labels = labels RETURNING id")
                .map_err(&s)?;
            let mut ins_interval = tx
                .prepare_cached(
                    "INSERT INTO intervals(start, covered_ms, dropped, down_ms, closed, complete, writes)
                     VALUES (?1, ?2, ?3, ?4, ?5, 0, 1)
                     ON CONFLICT(start) DO UPDATE SET covered_ms = covered_ms + excluded.covered_ms,
                       dropped = dropped + excluded.dropped, down_ms = down_ms + excluded.down_ms,
                       closed = max(closed, excluded.closed), writes = writes + 1",
                )
                .map_err(&s)?;
            let mut set_complete = tx
                .prepare_cached(
                    "UPDATE intervals SET complete = (closed = 1 AND covered_ms >= ?2 AND dropped = 0 AND down_ms = 0) WHERE start = ?1",
                )
                .map_err(&s)?;
            let mut ins_sample = tx
                .prepare_cached(
                    "INSERT INTO samples(start, subject, in_packets, in_bytes, out_packets, out_bytes)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT(start, subject) DO UPDATE SET in_packets = in_packets + excluded.in_packets,
                       in_bytes = in_bytes + excluded.in_bytes, out_packets = out_packets + excluded.out_packets,
                       out_bytes = out_bytes + excluded.out_bytes",
                )
                .map_err(&s)?;
            for w in writes {
                ins_interval
                    .execute(params![
                        w.start,
                        w.covered_ms as i64,
                        w.dropped as i64,
                        w.down_ms as i64,
                        w.closed as i64
                    ])
                    .map_err(&s)?;
                set_complete
                    .execute(params![w.start, self.interval_ms])
                    .map_err(&s)?;
                for (labels, v) in &w.samples {
                    if v.is_zero() {
                        continue;
                    }
                    let id = match self.subject_ids.get(&**labels) {
                        Some(id) => *id,
                        None => {
                            let id: i64 = ins_subject
                                .query_row(params![&**labels], |r| r.get(0))
                                .map_err(&s)?;
                            new_ids.push((labels.to_string(), id));
                            id
                        }
                    };
                    ins_sample
                        .execute(params![
                            w.start,
                            id,
                            v.in_packets as i64,
                            v.in_bytes as i64,
                            v.out_packets as i64,
                            v.out_bytes as i64
                        ])
                        .map_err(&s)?;
                }
            }
            // The dense copy of every closed interval written to.
            let mut closed = tx
                .prepare_cached("SELECT closed FROM intervals WHERE start = ?1")
                .map_err(&s)?;
            let mut starts: Vec<i64> = writes.iter().map(|w| w.start).collect();
            starts.sort_unstable();
            starts.dedup();
            for start in starts {
                let c: i64 = closed.query_row([start], |r| r.get(0)).map_err(&s)?;
                if c != 0 {
                    pack(&tx, start).map_err(&s)?;
                }
            }
        }
        tx.commit().map_err(&s)?;
        // Only committed ids are cached (a rolled back insert has none).
        self.subject_ids.extend(new_ids);
        Ok(())
    }

    /// What the ledger holds for the interval at `start` (absolute totals,
    /// after every write so far). `None` when the interval has no row.
    pub fn interval_totals(&self, start: i64) -> Result<Option<IntervalTotals>, StoreError> {
        interval_totals(&self.conn, &self.path, start)
    }

    /// Deletes samples and intervals that started before `before` (Unix s).
    pub fn delete_before(&mut self, before: i64) -> Result<usize, StoreError> {
        let path = self.path.clone();
        let s = sql(&path);
        let tx = self.conn.transaction().map_err(&s)?;
        let n = tx
            .execute("DELETE FROM samples WHERE start < ?1", [before])
            .map_err(&s)?;
        tx.execute("DELETE FROM packed WHERE start < ?1", [before])
            .map_err(&s)?;
        tx.execute("DELETE FROM intervals WHERE start < ?1", [before])
            .map_err(&s)?;
        tx.commit().map_err(&s)?;
        Ok(n)
    }
}

/// Bytes per value in a `packed` row whose largest value is `max`.
fn width_for(max: u64) -> usize {
    (8 - max.leading_zeros() as usize / 8).max(1)
}

/// One `packed` row's `volumes`: `slots[j]` at byte `4·width·j`.
fn encode_chunk(slots: &[Volume], out: &mut Vec<u8>) -> usize {
    let used = slots
        .iter()
        .rposition(|v| !v.is_zero())
        .map_or(0, |j| j + 1);
    let max = slots[..used]
        .iter()
        .flat_map(|v| [v.in_packets, v.in_bytes, v.out_packets, v.out_bytes])
        .max()
        .unwrap_or(0);
    let width = width_for(max);
    out.clear();
    for v in &slots[..used] {
        for x in [v.in_packets, v.in_bytes, v.out_packets, v.out_bytes] {
            out.extend_from_slice(&x.to_le_bytes()[..width]);
        }
    }
    width
}

/// The volume of slot `j` of a `packed` row; zero past its end.
fn decode_slot(volumes: &[u8], width: usize, j: usize) -> Volume {
    let o = 4 * j * width;
    // Fast path: four unaligned 8-byte loads, masked to `width` bytes.
    if let Some(x) = volumes.get(o..o + 3 * width + 8) {
        let mask = u64::MAX >> (64 - 8 * width as u32);
        let at = |f: usize| -> u64 {
            let b: [u8; 8] = x[f * width..f * width + 8].try_into().unwrap_or([0; 8]);
            u64::from_le_bytes(b) & mask
        };
        return Volume {
            in_packets: at(0),
            in_bytes: at(1),
            out_packets: at(2),
            out_bytes: at(3),
        };
    }
    let at = |f: usize| -> u64 {
        let o = (4 * j + f) * width;
        let mut b = [0u8; 8];
        match volumes.get(o..o + width) {
            Some(x) => b[..width].copy_from_slice(x),
            None => return 0,
        }
        u64::from_le_bytes(b)
    };
    Volume {
        in_packets: at(0),
        in_bytes: at(1),
        out_packets: at(2),
        out_bytes: at(3),
    }
}

/// Rebuilds the `packed` rows of the interval at `start` from its
/// `samples` (inside the writer's transaction) and marks it packed.
fn pack(tx: &rusqlite::Transaction, start: i64) -> rusqlite::Result<()> {
    let mut rows = tx.prepare_cached(
        "SELECT subject, in_packets, in_bytes, out_packets, out_bytes FROM samples WHERE start = ?1 ORDER BY subject",
    )?;
    let mut put = tx.prepare_cached(
        "INSERT OR REPLACE INTO packed(chunk, start, width, volumes) VALUES (?1, ?2, ?3, ?4)",
    )?;
    let mut slots = vec![Volume::default(); CHUNK as usize];
    let mut blob = Vec::new();
    let mut chunk: Option<i64> = None;
    let mut flush = |chunk: i64, slots: &mut [Volume]| -> rusqlite::Result<()> {
        let width = encode_chunk(slots, &mut blob);
        put.execute(params![chunk, start, width as i64, &blob])?;
        slots.iter_mut().for_each(|v| *v = Volume::default());
        Ok(())
    };
    let mut q = rows.query([start])?;
    while let Some(r) = q.next()? {
        let id: i64 = r.get(0)?;
        let c = id.div_euclid(CHUNK);
        if chunk.is_some_and(|k| k != c) {
            flush(chunk.unwrap_or(0), &mut slots)?;
        }
        chunk = Some(c);
        slots[id.rem_euclid(CHUNK) as usize] = Volume {
            in_packets: r.get::<_, i64>(1)? as u64,
            in_bytes: r.get::<_, i64>(2)? as u64,
            out_packets: r.get::<_, i64>(3)? as u64,
            out_bytes: r.get::<_, i64>(4)? as u64,
        };
    }
    if let Some(c) = chunk {
        flush(c, &mut slots)?;
    }
    tx.prepare_cached("UPDATE intervals SET packed = 1 WHERE start = ?1")?
        .execute([start])?;
    Ok(())
}

/// What the ledger holds for the interval at `start` (absolute totals,
/// after every write so far): its state and the samples by subject
/// labels. `None` when the interval has no row.
fn interval_totals(
    conn: &Connection,
    path: &Path,
    start: i64,
) -> Result<Option<IntervalTotals>, StoreError> {
    let s = sql(path);
    let state = conn
        .prepare_cached(
            "SELECT covered_ms, dropped, down_ms, closed, complete FROM intervals WHERE start = ?1",
        )
        .map_err(&s)?
        .query_row([start], |r| {
            Ok(IntervalState {
                covered_ms: r.get::<_, i64>(0)? as u64,
                dropped: r.get::<_, i64>(1)? as u64,
                down_ms: r.get::<_, i64>(2)? as u64,
                closed: r.get::<_, i64>(3)? != 0,
                complete: r.get::<_, i64>(4)? != 0,
            })
        })
        .optional()
        .map_err(&s)?;
    let Some(state) = state else { return Ok(None) };
    let mut st = conn
        .prepare_cached(
            "SELECT j.labels, s.in_packets, s.in_bytes, s.out_packets, s.out_bytes
                 FROM samples s JOIN subjects j ON j.id = s.subject WHERE s.start = ?1",
        )
        .map_err(&s)?;
    let rows = st
        .query_map([start], |r| {
            Ok((
                r.get::<_, String>(0)?,
                Volume {
                    in_packets: r.get::<_, i64>(1)? as u64,
                    in_bytes: r.get::<_, i64>(2)? as u64,
                    out_packets: r.get::<_, i64>(3)? as u64,
                    out_bytes: r.get::<_, i64>(4)? as u64,
                },
            ))
        })
        .map_err(&s)?;
    let samples = rows.collect::<Result<Vec<_>, _>>().map_err(&s)?;
    Ok(Some((state, samples)))
}

/// A ledger open for reading (the report; several may be summed).
pub struct Reader {
    path: PathBuf,
    conn: Connection,
    pub interval_secs: i64,
    pub appliance: String,
    /// Schema version 1 has no `packed` copy.
    version: i32,
}

/// A read transaction of a [`Reader`], ended on drop.
pub struct Snapshot<'a>(&'a Connection);

impl Drop for Snapshot<'_> {
    fn drop(&mut self) {
        let _ = self.0.execute_batch("COMMIT");
    }
}

/// An interval as a report reads it: its state, and whether `packed` holds
/// its samples.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoredInterval {
    pub state: IntervalState,
    pub packed: bool,
}

/// What a report reads from one ledger over [from, to).
#[derive(Default, Debug)]
pub struct Extract {
    pub intervals: HashMap<i64, IntervalState>,
    /// By subject labels (JSON text), then interval start.
    pub samples: HashMap<String, Vec<(i64, Volume)>>,
}

impl Reader {
    /// Opens a ledger read-only; refuses what is not one.
    pub fn open(path: &Path) -> Result<Reader, StoreError> {
        if !check_existing(path)? {
            return Err(StoreError::open(path, "no such ledger"));
        }
        let s = sql(path);
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(&s)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(&s)?;
        let meta = |key: &str| -> Result<String, StoreError> {
            conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .map_err(|e| StoreError::open(path, format!("not a readable ledger: {e}")))
        };
        let interval_secs = meta("interval_seconds")?
            .parse()
            .map_err(|_| StoreError::open(path, "bad interval_seconds in meta"))?;
        let appliance = meta("appliance")?;
        let version: i32 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(&s)?;
        if !(1..=SCHEMA_VERSION).contains(&version) {
            return Err(StoreError::open(
                path,
                format!("ledger schema version {version}, this xdpacct reads versions 1 and {SCHEMA_VERSION}; use the xdpacct that wrote it"),
            ));
        }
        Ok(Reader {
            path: path.to_path_buf(),
            conn,
            interval_secs,
            appliance,
            version,
        })
    }

    /// Starts one read transaction: every query in it sees the ledger as
    /// of its first one, whatever the writer commits meanwhile.
    /// It ends when the returned guard is dropped.
    pub fn snapshot(&self) -> Result<Snapshot<'_>, StoreError> {
        self.conn.execute_batch("BEGIN").map_err(sql(&self.path))?;
        Ok(Snapshot(&self.conn))
    }

    /// Every subject: id and labels (JSON text).
    pub fn subjects(&self) -> Result<Vec<(i64, String)>, StoreError> {
        let s = sql(&self.path);
        let mut st = self
            .conn
            .prepare("SELECT id, labels FROM subjects")
            .map_err(&s)?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(&s)?;
        rows.collect::<Result<_, _>>().map_err(&s)
    }

    /// The intervals with start in [from, to).
    pub fn intervals(&self, from: i64, to: i64) -> Result<Vec<(i64, StoredInterval)>, StoreError> {
        let s = sql(&self.path);
        let packed = if self.version >= 2 { "packed" } else { "0" };
        let mut st = self
            .conn
            .prepare(&format!("SELECT start, covered_ms, dropped, down_ms, closed, complete, {packed} FROM intervals WHERE start >= ?1 AND start < ?2"))
            .map_err(&s)?;
        let rows = st
            .query_map([from, to], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    StoredInterval {
                        state: IntervalState {
                            covered_ms: r.get::<_, i64>(1)? as u64,
                            dropped: r.get::<_, i64>(2)? as u64,
                            down_ms: r.get::<_, i64>(3)? as u64,
                            closed: r.get::<_, i64>(4)? != 0,
                            complete: r.get::<_, i64>(5)? != 0,
                        },
                        packed: r.get::<_, i64>(6)? != 0,
                    },
                ))
            })
            .map_err(&s)?;
        rows.collect::<Result<_, _>>().map_err(&s)
    }

    /// The non-zero samples of the subjects `chunk·CHUNK + slots[i]` in
    /// the intervals with start in [from, to) that `index` maps to a k
    /// (it is called once per interval): `f(k, i, volume)`. Intervals in `unpacked` (sorted; those
    /// with `packed = 0`) are read from `samples`, the others from
    /// `packed`. Call inside [`Reader::snapshot`] so that every read sees
    /// the same writes.
    pub fn read_chunk(
        &self,
        chunk: i64,
        slots: &[usize],
        (from, to): (i64, i64),
        index: impl Fn(i64) -> Option<usize>,
        unpacked: &[i64],
        mut f: impl FnMut(usize, usize, Volume),
    ) -> Result<(), StoreError> {
        let s = sql(&self.path);
        if self.version >= 2 {
            let mut st = self
                .conn
                .prepare_cached("SELECT start, width, volumes FROM packed WHERE chunk = ?1 AND start >= ?2 AND start < ?3")
                .map_err(&s)?;
            let mut rows = st.query([chunk, from, to]).map_err(&s)?;
            while let Some(r) = rows.next().map_err(&s)? {
                let start: i64 = r.get(0).map_err(&s)?;
                let Some(k) = index(start) else { continue };
                if unpacked.binary_search(&start).is_ok() {
                    continue;
                }
                let width: i64 = r.get(1).map_err(&s)?;
                let blob = r.get_ref(2).and_then(|v| Ok(v.as_blob()?)).map_err(&s)?;
                if !(1..=8).contains(&width) {
                    return Err(StoreError::open(
                        &self.path,
                        format!("packed row of interval {start} has width {width}; the ledger is damaged"),
                    ));
                }
                for (i, j) in slots.iter().enumerate() {
                    let v = decode_slot(blob, width as usize, *j);
                    if !v.is_zero() {
                        f(k, i, v);
                    }
                }
            }
        }
        if unpacked.is_empty() {
            return Ok(());
        }
        let mut slot_of = vec![usize::MAX; CHUNK as usize];
        for (i, j) in slots.iter().enumerate() {
            slot_of[*j] = i;
        }
        let mut st = self
            .conn
            .prepare_cached("SELECT subject, in_packets, in_bytes, out_packets, out_bytes FROM samples WHERE start = ?1 AND subject >= ?2 AND subject < ?3")
            .map_err(&s)?;
        for start in unpacked {
            let Some(k) = index(*start) else { continue };
            let mut rows = st
                .query([*start, chunk * CHUNK, (chunk + 1) * CHUNK])
                .map_err(&s)?;
            while let Some(r) = rows.next().map_err(&s)? {
                let id: i64 = r.get(0).map_err(&s)?;
                let i = slot_of[(id - chunk * CHUNK) as usize];
                if i == usize::MAX {
                    continue;
                }
                let v = Volume {
                    in_packets: r.get::<_, i64>(1).map_err(&s)? as u64,
                    in_bytes: r.get::<_, i64>(2).map_err(&s)? as u64,
                    out_packets: r.get::<_, i64>(3).map_err(&s)? as u64,
                    out_bytes: r.get::<_, i64>(4).map_err(&s)? as u64,
                };
                f(k, i, v);
            }
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// As [`Store::interval_totals`], from a reader.
    pub fn interval_totals(&self, start: i64) -> Result<Option<IntervalTotals>, StoreError> {
        interval_totals(&self.conn, &self.path, start)
    }

    /// Intervals and samples with start in [from, to).
    pub fn extract(&self, from: i64, to: i64) -> Result<Extract, StoreError> {
        let s = sql(&self.path);
        let mut out = Extract::default();
        let mut st = self
            .conn
            .prepare("SELECT start, covered_ms, dropped, down_ms, closed, complete FROM intervals WHERE start >= ?1 AND start < ?2")
            .map_err(&s)?;
        let rows = st
            .query_map([from, to], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    IntervalState {
                        covered_ms: r.get::<_, i64>(1)? as u64,
                        dropped: r.get::<_, i64>(2)? as u64,
                        down_ms: r.get::<_, i64>(3)? as u64,
                        closed: r.get::<_, i64>(4)? != 0,
                        complete: r.get::<_, i64>(5)? != 0,
                    },
                ))
            })
            .map_err(&s)?;
        for r in rows {
            let (start, state) = r.map_err(&s)?;
            out.intervals.insert(start, state);
        }
        // Subject ids are small and dense: index by id, no hashing per row.
        let mut labels: Vec<Option<String>> = Vec::new();
        let mut st = self
            .conn
            .prepare("SELECT id, labels FROM subjects")
            .map_err(&s)?;
        for r in st
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
            .map_err(&s)?
        {
            let (id, l) = r.map_err(&s)?;
            let id = usize::try_from(id).unwrap_or(usize::MAX).min(1 << 26);
            if labels.len() <= id {
                labels.resize(id + 1, None);
            }
            labels[id] = Some(l);
        }
        let mut by_id: Vec<Vec<(i64, Volume)>> = vec![Vec::new(); labels.len()];
        let mut st = self
            .conn
            .prepare("SELECT start, subject, in_packets, in_bytes, out_packets, out_bytes FROM samples WHERE start >= ?1 AND start < ?2")
            .map_err(&s)?;
        let mut rows = st.query([from, to]).map_err(&s)?;
        while let Some(r) = rows.next().map_err(&s)? {
            let start: i64 = r.get(0).map_err(&s)?;
            let id = usize::try_from(r.get::<_, i64>(1).map_err(&s)?).unwrap_or(usize::MAX);
            let v = Volume {
                in_packets: r.get::<_, i64>(2).map_err(&s)? as u64,
                in_bytes: r.get::<_, i64>(3).map_err(&s)? as u64,
                out_packets: r.get::<_, i64>(4).map_err(&s)? as u64,
                out_bytes: r.get::<_, i64>(5).map_err(&s)? as u64,
            };
            match by_id.get_mut(id) {
                Some(list) => list.push((start, v)),
                None => {
                    return Err(StoreError::open(
                        &self.path,
                        format!("a sample names subject {id}, which the subjects table lacks"),
                    ))
                }
            }
        }
        for (id, v) in by_id.into_iter().enumerate() {
            if v.is_empty() {
                continue;
            }
            let l = labels[id].clone().unwrap_or_default();
            match out.samples.entry(l) {
                std::collections::hash_map::Entry::Occupied(mut e) => e.get_mut().extend(v),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(v);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::report::{self, Period, Query};
    use crate::settings::billing::{Method, Missing};
    use std::sync::Arc;

    /// Writes 4 intervals of `n` subjects (created in `order`), values of
    /// every byte width, some zero; intervals 0..3 closed (interval 1 in
    /// two writes), interval 3 still running.
    fn fill(path: &Path, n: usize, reverse: bool) {
        let mut st = Store::open(path, 300, "t").unwrap();
        let labels: Vec<Arc<str>> = (0..n)
            .map(|i| Arc::from(format!("{{\"customer\":\"c{i:03}\"}}")))
            .collect();
        let vol = |i: usize, k: i64| -> Volume {
            if (i + k as usize) % 7 == 0 {
                return Volume::default();
            }
            let big = 1u64 << ((i * 5 + k as usize) % 60);
            Volume {
                in_packets: i as u64 + 1,
                in_bytes: big + k as u64,
                out_packets: (i as u64) << 20,
                out_bytes: (big >> 3) + i as u64,
            }
        };
        for (k, closed) in [(0, true), (1, false), (1, true), (2, true), (3, false)] {
            let mut w = IntervalWrite {
                start: 1_800_000_000 + k * 300,
                covered_ms: 150_000,
                closed,
                ..Default::default()
            };
            let order: Vec<usize> = if reverse {
                (0..n).rev().collect()
            } else {
                (0..n).collect()
            };
            for i in order {
                w.samples.insert(labels[i].clone(), vol(i, k));
                // The first write of a subject is alone: ids follow `order`.
                if k == 0 {
                    st.write(&[IntervalWrite {
                        start: w.start,
                        samples: [(labels[i].clone(), vol(i, k))].into(),
                        ..Default::default()
                    }])
                    .unwrap();
                    w.samples.clear();
                }
            }
            st.write(&[w]).unwrap();
        }
    }

    fn query(missing: Missing, subject: Vec<(String, String)>) -> Query {
        Query {
            period: Period {
                start: 1_800_000_000,
                end: 1_800_000_000 + 6 * 300,
            },
            interval_secs: 300,
            method: Method::P95OfSum,
            missing,
            now: i64::MAX / 2,
            subject,
        }
    }

    fn same_reports(paths: &[&Path]) {
        let readers: Vec<Reader> = paths.iter().map(|p| Reader::open(p).unwrap()).collect();
        let extracts: Vec<Extract> = readers
            .iter()
            .map(|r| r.extract(0, i64::MAX).unwrap())
            .collect();
        for missing in [Missing::Zero, Missing::Skip] {
            for subject in [vec![], vec![("customer".into(), "c042".into())]] {
                let q = query(missing, subject);
                let want = report::build(&q, &extracts);
                assert!(!want.subjects.is_empty());
                for threads in [1, 2] {
                    assert_eq!(
                        report::build_from_ledgers(&q, &readers, threads).unwrap(),
                        want
                    );
                }
            }
        }
    }

    #[test]
    fn the_packed_copy_reports_as_the_rows_and_version_1_ledgers_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.db"), dir.path().join("b.db"));
        // 600 subjects: 3 chunks; b numbers them the other way round.
        fill(&a, 600, false);
        fill(&b, 600, true);
        let packed = |p: &Path| -> Vec<bool> {
            let r = Reader::open(p).unwrap();
            let mut v = r.intervals(0, i64::MAX).unwrap();
            v.sort_by_key(|x| x.0);
            v.iter().map(|x| x.1.packed).collect()
        };
        assert_eq!(packed(&a), [true, true, true, false]);
        same_reports(&[&a]);
        same_reports(&[&a, &b]);

        // A version 1 ledger (as written before the packed copy): read from
        // its rows, then migrated in place by a writer.
        Connection::open(&a)
            .unwrap()
            .execute_batch(
                "DROP TABLE packed; ALTER TABLE intervals DROP COLUMN packed;
                 UPDATE meta SET value = '1' WHERE key = 'schema_version'; PRAGMA user_version = 1;",
            )
            .unwrap();
        same_reports(&[&a, &b]);
        drop(Store::open(&a, 300, "t").unwrap());
        assert_eq!(packed(&a), [false; 4]);
        same_reports(&[&a, &b]);
        fill(&a, 600, false);
        assert_eq!(packed(&a), [true, true, true, false]);
        same_reports(&[&a, &b]);

        // A future version is refused, naming the file.
        Connection::open(&a)
            .unwrap()
            .execute_batch("PRAGMA user_version = 3;")
            .unwrap();
        let e = Reader::open(&a).err().unwrap().to_string();
        assert!(e.contains("a.db") && e.contains("schema version 3"), "{e}");
        let e = Store::open(&a, 300, "t").err().unwrap().to_string();
        assert!(e.contains("a.db") && e.contains("schema version 3"), "{e}");
    }

    #[test]
    fn widths_round_trip() {
        for max in [0u64, 1, 255, 256, 1 << 40, u64::MAX] {
            let slots = [
                Volume::default(),
                Volume {
                    in_packets: max,
                    in_bytes: max / 3,
                    out_packets: 1,
                    out_bytes: 0,
                },
            ];
            let mut blob = Vec::new();
            let w = encode_chunk(&slots, &mut blob);
            assert_eq!(w, width_for(max));
            for (j, v) in slots.iter().enumerate() {
                assert_eq!(decode_slot(&blob, w, j), *v);
            }
            assert_eq!(decode_slot(&blob, w, 9), Volume::default());
        }
    }
}

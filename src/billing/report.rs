//! The 95th-percentile report from one or more ledgers.
//!
//! Rules (README "Billing"): the period is `[start, end)` in the billing
//! time zone; an interval belongs to the period holding its start; only
//! intervals that ended (`start + interval <= now`) are expected, so an
//! unfinished period is reported up to now. A rate is `bytes · 8 /
//! interval` bits/s. The p95 of N rates is the value at 1-based rank
//! ⌈0.95·N⌉ of the rates sorted ascending (nearest rank, no
//! interpolation); N = 0 gives 0. Several ledgers: the samples of one
//! subject and interval are summed before ranking; an interval is present
//! when any ledger has it and complete when every ledger has it complete.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::Serialize;

use super::store::{Extract, Reader, StoreError, StoredInterval, CHUNK};
use crate::settings::billing::{Method, Missing};

/// `[start, end)` in Unix seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    pub start: i64,
    pub end: i64,
}

/// Why a period cannot be made.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PeriodError(pub String);

/// The billing period named `YYYY-MM`: from `start_day` of that month,
/// 00:00 in `tz`, to the same day of the next month.
pub fn month_period(name: &str, tz: &TimeZone, start_day: u8) -> Result<Period, PeriodError> {
    let bad = || PeriodError(format!("--period {name:?}: expected YYYY-MM"));
    let (y, m) = name.split_once('-').ok_or_else(bad)?;
    let (y, m): (i16, i8) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    let date = jiff::civil::Date::new(y, m, start_day as i8).map_err(|_| bad())?;
    period_from_date(date, tz)
}

fn period_from_date(date: jiff::civil::Date, tz: &TimeZone) -> Result<Period, PeriodError> {
    let err = |e: jiff::Error| PeriodError(format!("period: {e}"));
    let start = date.to_zoned(tz.clone()).map_err(err)?;
    let end = start
        .checked_add(jiff::Span::new().months(1))
        .map_err(err)?;
    Ok(Period {
        start: start.timestamp().as_second(),
        end: end.timestamp().as_second(),
    })
}

/// The period holding `now`.
pub fn current_period(now: Timestamp, tz: &TimeZone, start_day: u8) -> Result<Period, PeriodError> {
    let today = now.to_zoned(tz.clone()).date();
    let mut first = jiff::civil::Date::new(today.year(), today.month(), start_day as i8)
        .map_err(|e| PeriodError(e.to_string()))?;
    if today < first {
        first = first
            .checked_sub(jiff::Span::new().months(1))
            .map_err(|e| PeriodError(e.to_string()))?;
    }
    period_from_date(first, tz)
}

/// A time for `--from`/`--to`: RFC 3339 (`2026-11-01T00:00:00Z`), a civil
/// date-time or a date (`2026-11-01`, in `tz`), or Unix seconds.
pub fn parse_time(s: &str, tz: &TimeZone) -> Result<i64, PeriodError> {
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t.as_second());
    }
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    let civil = s
        .parse::<jiff::civil::DateTime>()
        .or_else(|_| s.parse::<jiff::civil::Date>().map(|d| d.at(0, 0, 0, 0)))
        .map_err(|_| {
            PeriodError(format!(
                "{s:?}: expected RFC 3339 (2026-11-01T00:00:00Z), a date (2026-11-01) or Unix seconds"
            ))
        })?;
    civil
        .to_zoned(tz.clone())
        .map(|z| z.timestamp().as_second())
        .map_err(|e| PeriodError(format!("{s:?}: {e}")))
}

/// What to report and how.
#[derive(Clone, Debug)]
pub struct Query {
    pub period: Period,
    pub interval_secs: i64,
    pub method: Method,
    pub missing: Missing,
    /// Unix seconds; intervals ending after it are not expected yet.
    pub now: i64,
    /// label = value pairs a subject must all have.
    pub subject: Vec<(String, String)>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Report {
    pub period: PeriodOut,
    pub interval_seconds: i64,
    pub method: &'static str,
    pub missing: &'static str,
    pub subjects: Vec<SubjectReport>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct PeriodOut {
    pub start: String,
    pub end: String,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct SubjectReport {
    pub labels: BTreeMap<String, String>,
    pub samples: Counts,
    #[serde(rename = "in")]
    pub in_: DirectionReport,
    pub out: DirectionReport,
    pub billable_bps: f64,
}

#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub expected: u64,
    pub present: u64,
    pub complete: u64,
    pub missing: u64,
}

#[derive(Serialize, Debug, Clone, Copy, PartialEq, Default)]
pub struct DirectionReport {
    pub bytes: u64,
    pub packets: u64,
    pub p95_bps: f64,
    pub max_bps: f64,
}

/// The value at 1-based rank ⌈0.95·N⌉ of `v` sorted ascending; 0 when empty.
pub fn p95_nearest_rank<T: Ord + Copy + Default>(v: &mut [T]) -> T {
    if v.is_empty() {
        return T::default();
    }
    let n = v.len();
    let rank = (95 * n).div_ceil(100);
    // The element that sorting would put there (linear time).
    *v.select_nth_unstable(rank.max(1) - 1).1
}

/// Seconds to RFC 3339 UTC.
pub fn rfc3339(secs: i64) -> String {
    Timestamp::from_second(secs).map_or_else(|_| secs.to_string(), |t| t.to_string())
}

/// The intervals a query expects (on the grid, in the period, ended by
/// `now`) and their state across ledgers.
struct Frame {
    first: i64,
    interval: i64,
    /// By expected interval: present in any ledger.
    present: Vec<bool>,
    counts: Counts,
}

impl Frame {
    /// The first expected start and how many there are.
    fn span(q: &Query) -> (i64, usize) {
        let i = q.interval_secs;
        let first = q.period.start.div_euclid(i) * i
            + if q.period.start.rem_euclid(i) == 0 {
                0
            } else {
                i
            };
        let n = (0..)
            .map(|k| first + k * i)
            .take_while(|s| *s < q.period.end && s + i <= q.now)
            .count();
        (first, n)
    }

    /// `state(start)`: (present in any ledger, complete in all).
    fn new(q: &Query, state: impl Fn(i64) -> (bool, bool)) -> Frame {
        let (first, n) = Frame::span(q);
        let mut counts = Counts {
            expected: n as u64,
            ..Default::default()
        };
        let present = (0..n as i64)
            .map(|k| {
                let (present, complete) = state(first + k * q.interval_secs);
                counts.present += present as u64;
                counts.complete += complete as u64;
                present
            })
            .collect();
        counts.missing = counts.expected - counts.present;
        Frame {
            first,
            interval: q.interval_secs,
            present,
            counts,
        }
    }

    fn len(&self) -> usize {
        self.present.len()
    }

    /// The expected interval starting at `s`, by index.
    fn index(&self, s: i64) -> Option<usize> {
        let d = s.checked_sub(self.first)?;
        let k = d.checked_div(self.interval)?;
        (d >= 0 && d % self.interval == 0 && (k as usize) < self.len()).then_some(k as usize)
    }
}

/// True when `labels` has every `--subject` pair.
fn wanted(q: &Query, labels: &BTreeMap<String, String>) -> bool {
    q.subject
        .iter()
        .all(|(k, v)| labels.get(k).is_some_and(|x| x == v))
}

/// Ranks subjects; keeps its buffers between them.
#[derive(Default)]
struct Ranker {
    ins: Vec<u64>,
    outs: Vec<u64>,
    maxes: Vec<u64>,
    sums: Vec<u64>,
}

impl Ranker {
    /// One subject's report from its bytes (in, out) per expected interval
    /// and its packets (in, out) over them.
    fn rank(
        &mut self,
        q: &Query,
        frame: &Frame,
        labels: BTreeMap<String, String>,
        bytes: &[[u64; 2]],
        packets: [u64; 2],
    ) -> SubjectReport {
        let Ranker {
            ins,
            outs,
            maxes,
            sums,
        } = self;
        ins.clear();
        outs.clear();
        maxes.clear();
        sums.clear();
        let (mut din, mut dout) = (DirectionReport::default(), DirectionReport::default());
        din.packets = packets[0];
        dout.packets = packets[1];
        for ([i, o], present) in bytes.iter().zip(&frame.present) {
            if !present && q.missing == Missing::Skip {
                continue;
            }
            din.bytes += i;
            dout.bytes += o;
            ins.push(*i);
            outs.push(*o);
            match q.method {
                Method::MaxOfP95 => {}
                Method::P95OfMax => maxes.push(*i.max(o)),
                Method::P95OfSum => sums.push(i.saturating_add(*o)),
            }
        }
        let rate = |bytes: u64| bytes as f64 * 8.0 / q.interval_secs as f64;
        din.max_bps = rate(ins.iter().copied().max().unwrap_or(0));
        dout.max_bps = rate(outs.iter().copied().max().unwrap_or(0));
        din.p95_bps = rate(p95_nearest_rank(ins));
        dout.p95_bps = rate(p95_nearest_rank(outs));
        let billable_bps = match q.method {
            Method::MaxOfP95 => din.p95_bps.max(dout.p95_bps),
            Method::P95OfMax => rate(p95_nearest_rank(maxes)),
            Method::P95OfSum => rate(p95_nearest_rank(sums)),
        };
        SubjectReport {
            labels,
            samples: frame.counts,
            in_: din,
            out: dout,
            billable_bps,
        }
    }
}

fn report(q: &Query, subjects: Vec<SubjectReport>) -> Report {
    Report {
        period: PeriodOut {
            start: rfc3339(q.period.start),
            end: rfc3339(q.period.end),
        },
        interval_seconds: q.interval_secs,
        method: q.method.as_str(),
        missing: q.missing.as_str(),
        subjects,
    }
}

/// Builds the report from the extracts of one or more ledgers (all in
/// memory: PostgreSQL's).
pub fn build(q: &Query, ledgers: &[Extract]) -> Report {
    let frame = Frame::new(q, |s| {
        let present = ledgers.iter().any(|l| l.intervals.contains_key(&s));
        let complete = ledgers
            .iter()
            .all(|l| l.intervals.get(&s).is_some_and(|st| st.complete));
        (present, complete)
    });
    // Subjects of every ledger, in label order; each ranked on its own.
    let mut names: Vec<&String> = ledgers.iter().flat_map(|l| l.samples.keys()).collect();
    names.sort();
    names.dedup();
    let mut subjects = Vec::new();
    let mut bytes = vec![[0u64; 2]; frame.len()];
    let mut ranker = Ranker::default();
    for labels_text in names {
        bytes.iter_mut().for_each(|v| *v = [0, 0]);
        let mut packets = [0u64; 2];
        let mut any = false;
        for l in ledgers {
            for (s, v) in l.samples.get(labels_text).into_iter().flatten() {
                if let Some(k) = frame.index(*s) {
                    bytes[k][0] += v.in_bytes;
                    bytes[k][1] += v.out_bytes;
                    packets[0] += v.in_packets;
                    packets[1] += v.out_packets;
                    any = true;
                }
            }
        }
        if !any {
            continue;
        }
        let labels: BTreeMap<String, String> =
            serde_json::from_str(labels_text).unwrap_or_default();
        if wanted(q, &labels) {
            subjects.push(ranker.rank(q, &frame, labels, &bytes, packets));
        }
    }
    report(q, subjects)
}

/// Builds the report from ledger files, [`CHUNK`] subjects at a time (so
/// memory stays at CHUNK × intervals × 16 bytes per thread whatever the
/// number of subjects), from their dense `packed` copy where they have one,
/// on `threads` threads (each opens the ledgers again). The subjects are
/// grouped by their chunk in the first ledger that has them; a group reads
/// the chunks that hold its subjects in every ledger (more than one when
/// the ledgers numbered the subjects differently).
pub fn build_from_ledgers(
    q: &Query,
    ledgers: &[Reader],
    threads: usize,
) -> Result<Report, StoreError> {
    let (first, n) = Frame::span(q);
    let range = (first, first + n as i64 * q.interval_secs);
    let _snapshots = ledgers
        .iter()
        .map(|l| l.snapshot())
        .collect::<Result<Vec<_>, _>>()?;
    let mut states: Vec<HashMap<i64, StoredInterval>> = Vec::new();
    let mut unpacked: Vec<Vec<i64>> = Vec::new();
    for l in ledgers {
        let iv = l.intervals(range.0, range.1)?;
        let mut u: Vec<i64> = iv
            .iter()
            .filter(|(_, s)| !s.packed)
            .map(|(s, _)| *s)
            .collect();
        u.sort_unstable();
        unpacked.push(u);
        states.push(iv.into_iter().collect());
    }
    let frame = Frame::new(q, |s| {
        let present = states.iter().any(|l| l.contains_key(&s));
        let complete = states
            .iter()
            .all(|l| l.get(&s).is_some_and(|st| st.state.complete));
        (present, complete)
    });
    drop(states);
    // Labels -> id in each ledger; only the subjects asked for.
    let mut ids: HashMap<String, Vec<Option<i64>>> = HashMap::new();
    for (j, l) in ledgers.iter().enumerate() {
        for (id, labels) in l.subjects()? {
            ids.entry(labels)
                .or_insert_with(|| vec![None; ledgers.len()])[j] = Some(id);
        }
    }
    let mut subjects: Vec<Subject> = ids
        .into_iter()
        .filter_map(|(text, ids)| {
            let labels: BTreeMap<String, String> = serde_json::from_str(&text).unwrap_or_default();
            wanted(q, &labels).then_some((text, labels, ids))
        })
        .collect();
    // Home: the first ledger having the subject, and its id there.
    let home = |ids: &[Option<i64>]| -> (usize, i64) {
        ids.iter()
            .enumerate()
            .find_map(|(j, id)| id.map(|id| (j, id)))
            .unwrap_or((usize::MAX, 0))
    };
    subjects.sort_unstable_by_key(|(_, _, ids)| home(ids));
    let mut groups: Vec<&mut [Subject]> = Vec::new();
    let mut rest = &mut subjects[..];
    while !rest.is_empty() {
        let key = |ids: &[Option<i64>]| {
            let (j, id) = home(ids);
            (j, id.div_euclid(CHUNK))
        };
        let k = key(&rest[0].2);
        let len = rest.iter().take_while(|s| key(&s.2) == k).count();
        let (group, tail) = std::mem::take(&mut rest).split_at_mut(len);
        rest = tail;
        groups.push(group);
    }
    let threads = threads.clamp(1, groups.len().max(1));
    let ctx = Groups {
        q,
        frame: &frame,
        unpacked: &unpacked,
        range,
    };
    let mut out = if threads == 1 {
        ctx.run(ledgers, groups.into_iter())?
    } else {
        // Group g goes to thread g % threads.
        let mut shares: Vec<Vec<&mut [Subject]>> = (0..threads).map(|_| Vec::new()).collect();
        for (g, group) in groups.into_iter().enumerate() {
            shares[g % threads].push(group);
        }
        let ctx = &ctx;
        let paths: Vec<&std::path::Path> = ledgers.iter().map(|l| l.path()).collect();
        let paths = &paths;
        let results = std::thread::scope(|scope| {
            let handles: Vec<_> = shares
                .into_iter()
                .map(|share| {
                    scope.spawn(
                        move || -> Result<Vec<(String, SubjectReport)>, StoreError> {
                            let own = paths
                                .iter()
                                .map(|p| Reader::open(p))
                                .collect::<Result<Vec<_>, _>>()?;
                            let _snapshots = own
                                .iter()
                                .map(|l| l.snapshot())
                                .collect::<Result<Vec<_>, _>>()?;
                            ctx.run(&own, share.into_iter())
                        },
                    )
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect::<Vec<_>>()
        });
        let mut all = Vec::new();
        for r in results {
            all.extend(r?);
        }
        all
    };
    out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(report(q, out.into_iter().map(|(_, r)| r).collect()))
}

/// A subject to report: labels (JSON text and parsed), id in each ledger.
type Subject = (String, BTreeMap<String, String>, Vec<Option<i64>>);

/// What every group of a report shares.
struct Groups<'a> {
    q: &'a Query,
    frame: &'a Frame,
    /// By ledger: the intervals read from `samples` (not packed).
    unpacked: &'a [Vec<i64>],
    range: (i64, i64),
}

impl Groups<'_> {
    /// Reads and ranks `groups` (each at most CHUNK subjects).
    fn run<'g>(
        &self,
        ledgers: &[Reader],
        groups: impl Iterator<Item = &'g mut [Subject]>,
    ) -> Result<Vec<(String, SubjectReport)>, StoreError> {
        let n = self.frame.len();
        let mut out = Vec::new();
        let mut ranker = Ranker::default();
        let mut bytes: Vec<[u64; 2]> = Vec::new();
        let mut columns: Vec<Vec<[u64; 2]>> = Vec::new();
        for group in groups {
            let len = group.len();
            bytes.clear();
            bytes.resize(len * n, [0, 0]);
            let mut packets = vec![[0u64; 2]; len];
            let mut any = vec![false; len];
            for (j, l) in ledgers.iter().enumerate() {
                // This ledger's chunks holding the group: slot and group index.
                let mut chunks: BTreeMap<i64, (Vec<usize>, Vec<usize>)> = BTreeMap::new();
                for (g, (_, _, ids)) in group.iter().enumerate() {
                    if let Some(id) = ids[j] {
                        let c = chunks.entry(id.div_euclid(CHUNK)).or_default();
                        c.0.push(id.rem_euclid(CHUNK) as usize);
                        c.1.push(g);
                    }
                }
                for (chunk, (slots, members)) in chunks {
                    let index = |s| self.frame.index(s);
                    l.read_chunk(
                        chunk,
                        &slots,
                        self.range,
                        index,
                        &self.unpacked[j],
                        |k, i, v| {
                            let g = members[i];
                            // Interval-major: one row's subjects are adjacent.
                            let cell = &mut bytes[k * len + g];
                            cell[0] += v.in_bytes;
                            cell[1] += v.out_bytes;
                            packets[g][0] += v.in_packets;
                            packets[g][1] += v.out_packets;
                            any[g] = true;
                        },
                    )?;
                }
            }
            // Columns of BATCH subjects at a time: a pass over the rows
            // touches few pages (one subject's column alone would touch n).
            const BATCH: usize = 16;
            for (b, batch) in group.chunks_mut(BATCH).enumerate() {
                let base = b * BATCH;
                let width = batch.len();
                columns.resize_with(width, Vec::new);
                columns.iter_mut().for_each(Vec::clear);
                for row in bytes.chunks_exact(len) {
                    for (c, cell) in columns.iter_mut().zip(&row[base..base + width]) {
                        c.push(*cell);
                    }
                }
                for (i, (text, labels, _)) in batch.iter_mut().enumerate() {
                    let g = base + i;
                    if any[g] {
                        let r = ranker.rank(
                            self.q,
                            self.frame,
                            std::mem::take(labels),
                            &columns[i],
                            packets[g],
                        );
                        out.push((std::mem::take(text), r));
                    }
                }
            }
        }
        Ok(out)
    }
}

impl Report {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    fn label_names(&self) -> Vec<String> {
        let names: BTreeSet<&String> = self.subjects.iter().flat_map(|s| s.labels.keys()).collect();
        names.into_iter().cloned().collect()
    }

    fn rows(&self) -> (Vec<String>, Vec<Vec<String>>) {
        let names = self.label_names();
        let mut header = names.clone();
        header.extend(
            [
                "expected",
                "present",
                "complete",
                "missing",
                "in_bytes",
                "in_packets",
                "in_p95_bps",
                "in_max_bps",
                "out_bytes",
                "out_packets",
                "out_p95_bps",
                "out_max_bps",
                "billable_bps",
            ]
            .map(String::from),
        );
        let rows = self
            .subjects
            .iter()
            .map(|s| {
                let mut r: Vec<String> = names
                    .iter()
                    .map(|n| s.labels.get(n).cloned().unwrap_or_default())
                    .collect();
                let c = s.samples;
                r.extend([c.expected, c.present, c.complete, c.missing].map(|v| v.to_string()));
                for d in [&s.in_, &s.out] {
                    r.push(d.bytes.to_string());
                    r.push(d.packets.to_string());
                    r.push(d.p95_bps.to_string());
                    r.push(d.max_bps.to_string());
                }
                r.push(s.billable_bps.to_string());
                r
            })
            .collect();
        (header, rows)
    }

    /// RFC 4180 CSV, a header line, one line per subject.
    pub fn to_csv(&self) -> String {
        let (header, rows) = self.rows();
        let mut out = String::new();
        for r in std::iter::once(&header).chain(rows.iter()) {
            let line: Vec<String> = r.iter().map(|f| csv_field(f)).collect();
            out.push_str(&line.join(","));
            out.push('\n');
        }
        out
    }

    /// Aligned columns for people; rates in Mbit/s.
    pub fn to_table(&self) -> String {
        let names = self.label_names();
        let mut header = names.clone();
        header.extend(
            [
                "samples",
                "in GB",
                "out GB",
                "in p95 Mb/s",
                "out p95 Mb/s",
                "billable Mb/s",
            ]
            .map(String::from),
        );
        let mut rows = vec![header];
        for s in &self.subjects {
            let mut r: Vec<String> = names
                .iter()
                .map(|n| s.labels.get(n).cloned().unwrap_or_default())
                .collect();
            let c = s.samples;
            r.push(format!("{}/{}/{}", c.complete, c.present, c.expected));
            r.push(format!("{:.3}", s.in_.bytes as f64 / 1e9));
            r.push(format!("{:.3}", s.out.bytes as f64 / 1e9));
            r.push(format!("{:.3}", s.in_.p95_bps / 1e6));
            r.push(format!("{:.3}", s.out.p95_bps / 1e6));
            r.push(format!("{:.3}", s.billable_bps / 1e6));
            rows.push(r);
        }
        let widths: Vec<usize> = (0..rows[0].len())
            .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
            .collect();
        let mut out = format!(
            "period {} .. {}, {} s samples, {}, missing = {} (samples: complete/present/expected)\n",
            self.period.start, self.period.end, self.interval_seconds, self.method, self.missing
        );
        for r in rows {
            let line: Vec<String> = r
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(c, (f, w))| {
                    if c < names.len() {
                        format!("{f:<w$}")
                    } else {
                        format!("{f:>w$}")
                    }
                })
                .collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
        }
        out
    }
}

fn csv_field(f: &str) -> String {
    if f.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", f.replace('"', "\"\""))
    } else {
        f.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        assert_eq!(p95_nearest_rank::<u64>(&mut []), 0);
        assert_eq!(p95_nearest_rank(&mut [7u64]), 7);
        // 20 values 1..=20: rank ceil(19.0) = 19.
        let mut v: Vec<u64> = (1..=20).rev().collect();
        assert_eq!(p95_nearest_rank(&mut v), 19);
        // 21 values: ceil(19.95) = 20.
        let mut v: Vec<u64> = (1..=21).collect();
        assert_eq!(p95_nearest_rank(&mut v), 20);
        // 8640 values: rank 8208.
        let mut v: Vec<u64> = (1..=8640).collect();
        assert_eq!(p95_nearest_rank(&mut v), 8208);
        // 100 values: rank 95 exactly.
        let mut v: Vec<u64> = (1..=100).collect();
        assert_eq!(p95_nearest_rank(&mut v), 95);
    }

    #[test]
    fn periods_in_a_zone() {
        let utc = TimeZone::UTC;
        let p = month_period("2026-11", &utc, 1).unwrap();
        assert_eq!(rfc3339(p.start), "2026-11-01T00:00:00Z");
        assert_eq!(rfc3339(p.end), "2026-12-01T00:00:00Z");
        let ams = TimeZone::get("Europe/Amsterdam").unwrap();
        let p = month_period("2026-10", &ams, 15).unwrap();
        assert_eq!(rfc3339(p.start), "2026-10-14T22:00:00Z");
        // DST ended on 25 October: the end is at +01:00.
        assert_eq!(rfc3339(p.end), "2026-11-14T23:00:00Z");
        let now: Timestamp = "2026-11-10T12:00:00Z".parse().unwrap();
        let p = current_period(now, &utc, 15).unwrap();
        assert_eq!(rfc3339(p.start), "2026-10-15T00:00:00Z");
        assert!(month_period("2026-13", &utc, 1).is_err());
        assert!(month_period("nov", &utc, 1).is_err());
        assert_eq!(
            parse_time("2026-11-01", &utc).unwrap(),
            p.start + 17 * 86400
        );
    }
}

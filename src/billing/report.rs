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

use std::collections::{BTreeMap, BTreeSet};

use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::Serialize;

use super::store::{Extract, Volume};
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

/// Builds the report from the extracts of one or more ledgers.
pub fn build(q: &Query, ledgers: &[Extract]) -> Report {
    let i = q.interval_secs;
    let first = q.period.start.div_euclid(i) * i
        + if q.period.start.rem_euclid(i) == 0 {
            0
        } else {
            i
        };
    let expected: Vec<i64> = (0..)
        .map(|k| first + k * i)
        .take_while(|s| *s < q.period.end && s + i <= q.now)
        .collect();
    // Interval state across ledgers, by index: (present in any, complete in all).
    let state: Vec<(bool, bool)> = expected
        .iter()
        .map(|s| {
            let present = ledgers.iter().any(|l| l.intervals.contains_key(s));
            let complete = ledgers
                .iter()
                .all(|l| l.intervals.get(s).is_some_and(|st| st.complete));
            (present, complete)
        })
        .collect();
    let mut counts = Counts {
        expected: expected.len() as u64,
        ..Default::default()
    };
    for (present, complete) in &state {
        counts.present += *present as u64;
        counts.complete += *complete as u64;
    }
    counts.missing = counts.expected - counts.present;
    let index = |s: i64| -> Option<usize> {
        let k = (s - first).checked_div(i)?;
        (s >= first && (s - first) % i == 0 && (k as usize) < expected.len()).then_some(k as usize)
    };

    // Subjects of every ledger, in label order; each ranked on its own.
    let mut names: Vec<&String> = ledgers.iter().flat_map(|l| l.samples.keys()).collect();
    names.sort();
    names.dedup();
    let mut subjects = Vec::new();
    let mut volumes = vec![Volume::default(); expected.len()];
    let (mut ins, mut outs, mut maxes, mut sums) = (vec![], vec![], vec![], vec![]);
    for labels_text in names {
        volumes.iter_mut().for_each(|v| *v = Volume::default());
        let mut any = false;
        for l in ledgers {
            for (s, v) in l.samples.get(labels_text).into_iter().flatten() {
                if let Some(k) = index(*s) {
                    volumes[k] += *v;
                    any = true;
                }
            }
        }
        if !any {
            continue;
        }
        let labels: BTreeMap<String, String> =
            serde_json::from_str(labels_text).unwrap_or_default();
        if !q
            .subject
            .iter()
            .all(|(k, v)| labels.get(k).is_some_and(|x| x == v))
        {
            continue;
        }
        ins.clear();
        outs.clear();
        maxes.clear();
        sums.clear();
        let (mut din, mut dout) = (DirectionReport::default(), DirectionReport::default());
        for (v, (present, _)) in volumes.iter().zip(&state) {
            if !present && q.missing == Missing::Skip {
                continue;
            }
            din.bytes += v.in_bytes;
            din.packets += v.in_packets;
            dout.bytes += v.out_bytes;
            dout.packets += v.out_packets;
            ins.push(v.in_bytes);
            outs.push(v.out_bytes);
            maxes.push(v.in_bytes.max(v.out_bytes));
            sums.push(v.in_bytes.saturating_add(v.out_bytes));
        }
        let rate = |bytes: u64| bytes as f64 * 8.0 / i as f64;
        din.max_bps = rate(ins.iter().copied().max().unwrap_or(0));
        dout.max_bps = rate(outs.iter().copied().max().unwrap_or(0));
        din.p95_bps = rate(p95_nearest_rank(&mut ins));
        dout.p95_bps = rate(p95_nearest_rank(&mut outs));
        let billable_bps = match q.method {
            Method::MaxOfP95 => din.p95_bps.max(dout.p95_bps),
            Method::P95OfMax => rate(p95_nearest_rank(&mut maxes)),
            Method::P95OfSum => rate(p95_nearest_rank(&mut sums)),
        };
        subjects.push(SubjectReport {
            labels,
            samples: counts,
            in_: din,
            out: dout,
            billable_bps,
        });
    }
    Report {
        period: PeriodOut {
            start: rfc3339(q.period.start),
            end: rfc3339(q.period.end),
        },
        interval_seconds: i,
        method: q.method.as_str(),
        missing: q.missing.as_str(),
        subjects,
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

//! `xdpacct billing report`: the report of one or more ledgers, as a
//! table, CSV or JSON (the JSON shape is a contract; README "Billing").

use std::path::PathBuf;

use super::report::{self, Period, Query, Report};
use super::store::Reader;
use crate::settings::billing::{Billing, Method, Missing};
use crate::settings::Settings;
use crate::StartupError;

#[derive(clap::Subcommand, Debug)]
pub enum BillingCommand {
    /// Per subject: the 95th percentiles of a billing period, from the
    /// ledger(s); several --db are summed per subject and interval first.
    Report(ReportArgs),
}

/// Output format of the report.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Table,
    Csv,
    Json,
}

#[derive(clap::Args, Debug, Default)]
pub struct ReportArgs {
    /// Billing period YYYY-MM (starting on billing.period_start_day in
    /// billing.timezone). Defaults to the period holding now.
    #[arg(long, value_name = "YYYY-MM", conflicts_with_all = ["from", "to"])]
    pub period: Option<String>,
    /// Start (RFC 3339, a date in billing.timezone, or Unix seconds).
    #[arg(long, requires = "to", value_name = "T")]
    pub from: Option<String>,
    /// End, exclusive.
    #[arg(long, requires = "from", value_name = "T")]
    pub to: Option<String>,
    /// Ledger file (repeatable). Defaults to billing.db.
    #[arg(long = "db", value_name = "PATH")]
    pub dbs: Vec<PathBuf>,
    /// Read the samples of every appliance from this shared PostgreSQL
    /// (`postgres://…`, what `billing.postgres` writes) instead of ledger
    /// files; summed per subject and interval across appliances.
    #[arg(long, value_name = "URL", conflicts_with = "dbs")]
    pub postgres: Option<String>,
    /// With --postgres: only this appliance's samples.
    #[arg(long, value_name = "NAME", requires = "postgres")]
    pub appliance: Option<String>,
    /// Only subjects with this label value (repeatable: all must hold).
    #[arg(long, value_name = "KEY=VALUE")]
    pub subject: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// max_of_p95, p95_of_max or p95_of_sum. Defaults to billing.method.
    #[arg(long, value_name = "METHOD")]
    pub method: Option<String>,
    /// zero or skip. Defaults to billing.missing.
    #[arg(long, value_name = "MODE")]
    pub missing: Option<String>,
}

/// Runs a `billing` command (`main`'s one arm).
pub fn run(settings: &Settings, cmd: BillingCommand) -> anyhow::Result<()> {
    match cmd {
        BillingCommand::Report(args) => {
            let billing = settings.billing.clone().unwrap_or_default();
            let r = report_from_args(&billing, &args).map_err(StartupError)?;
            let text = match args.format {
                Format::Table => r.to_table(),
                Format::Csv => r.to_csv(),
                Format::Json => r.to_json(),
            };
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
            Ok(())
        }
    }
}

/// The report the arguments ask for; errors are one line.
pub fn report_from_args(billing: &Billing, a: &ReportArgs) -> Result<Report, String> {
    let tz = &billing.timezone;
    let now = jiff::Timestamp::now();
    let period = match (&a.period, &a.from, &a.to) {
        (Some(p), _, _) => report::month_period(p, tz, billing.period_start_day),
        (None, Some(f), Some(t)) => report::parse_time(f, tz).and_then(|start| {
            let end = report::parse_time(t, tz)?;
            if end <= start {
                return Err(report::PeriodError("--to must be after --from".into()));
            }
            Ok(Period { start, end })
        }),
        _ => report::current_period(now, tz, billing.period_start_day),
    }
    .map_err(|e| e.to_string())?;
    let method = match &a.method {
        None => billing.method,
        Some(m) => Method::parse(m).ok_or_else(|| {
            format!("--method {m:?}: expected max_of_p95, p95_of_max or p95_of_sum")
        })?,
    };
    let missing = match &a.missing {
        None => billing.missing,
        Some(m) => {
            Missing::parse(m).ok_or_else(|| format!("--missing {m:?}: expected zero or skip"))?
        }
    };
    let subject = a
        .subject
        .iter()
        .map(|s| {
            s.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| format!("--subject {s:?}: expected key=value"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(url) = &a.postgres {
        let (interval, extracts) =
            super::postgres::extracts(url, a.appliance.as_deref(), period.start, period.end)
                .map_err(|e| e.to_string())?;
        let q = Query {
            period,
            interval_secs: interval.unwrap_or(billing.interval_secs()),
            method,
            missing,
            now: now.as_second(),
            subject,
        };
        return Ok(report::build(&q, &extracts));
    }
    let dbs = if a.dbs.is_empty() {
        vec![billing.db.clone()]
    } else {
        a.dbs.clone()
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    report_from_dbs_on(
        threads,
        &dbs,
        period,
        method,
        missing,
        now.as_second(),
        subject,
    )
}

/// Reads the ledgers over `period` and builds the report on one thread
/// (the daemon's refresh of the running period: it does not take the
/// workers' cores).
pub fn report_from_dbs(
    dbs: &[PathBuf],
    period: Period,
    method: Method,
    missing: Missing,
    now: i64,
    subject: Vec<(String, String)>,
) -> Result<Report, String> {
    report_from_dbs_on(1, dbs, period, method, missing, now, subject)
}

/// Reads the ledgers over `period` on `threads` threads and builds the
/// report.
pub fn report_from_dbs_on(
    threads: usize,
    dbs: &[PathBuf],
    period: Period,
    method: Method,
    missing: Missing,
    now: i64,
    subject: Vec<(String, String)>,
) -> Result<Report, String> {
    let mut interval = None;
    let mut readers = Vec::new();
    for db in dbs {
        let r = Reader::open(db).map_err(|e| e.to_string())?;
        match interval {
            None => interval = Some(r.interval_secs),
            Some(i) if i != r.interval_secs => {
                return Err(format!(
                    "{}: interval {} s differs from the other ledgers' {i} s",
                    db.display(),
                    r.interval_secs
                ))
            }
            _ => {}
        }
        readers.push(r);
    }
    let q = Query {
        period,
        interval_secs: interval.unwrap_or(300),
        method,
        missing,
        now,
        subject,
    };
    report::build_from_ledgers(&q, &readers, threads).map_err(|e| e.to_string())
}

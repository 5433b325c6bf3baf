//! `[billing]`: the 95th-percentile ledger (src/billing).
//!
//! Billing is on when the file has a `[billing]` section (an empty one
//! takes every default) and `enabled` is not false; a file without the
//! section has no ledger. The raw shape is here too, so that the section
//! lives in one file.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::SettingsError;

/// `[billing]` as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BillingConfig {
    pub enabled: Option<bool>,
    pub subject_labels: Option<Vec<String>>,
    pub hosts: Option<bool>,
    pub interval: Option<u32>,
    pub allow_short_interval: Option<bool>,
    pub timezone: Option<String>,
    pub period_start_day: Option<u8>,
    pub method: Option<Method>,
    pub missing: Option<Missing>,
    pub db: Option<String>,
    pub checkpoint: Option<u64>,
    pub retention_months: Option<u32>,
    pub appliance: Option<String>,
    pub postgres: Option<String>,
}

/// `billing.method`: how in and out make the billable rate.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// The p95 of in and the p95 of out, separately; bill the larger.
    #[default]
    MaxOfP95,
    /// Per sample the larger of in and out, then the p95 of those.
    P95OfMax,
    /// Per sample in + out, then the p95 of those.
    P95OfSum,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::MaxOfP95 => "max_of_p95",
            Method::P95OfMax => "p95_of_max",
            Method::P95OfSum => "p95_of_sum",
        }
    }
    pub fn parse(s: &str) -> Option<Method> {
        [Method::MaxOfP95, Method::P95OfMax, Method::P95OfSum]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// `billing.missing`: what an interval without a sample counts as.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Missing {
    /// 0 bits/s (it is ranked).
    #[default]
    Zero,
    /// Left out of the ranking.
    Skip,
}

impl Missing {
    pub fn as_str(self) -> &'static str {
        match self {
            Missing::Zero => "zero",
            Missing::Skip => "skip",
        }
    }
    pub fn parse(s: &str) -> Option<Missing> {
        [Missing::Zero, Missing::Skip]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// `[billing]`, typed and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Billing {
    /// Range label names whose value tuple is one billing subject; a host
    /// whose range lacks one of them has the empty value for it. Defaults
    /// to `["customer"]`.
    pub subject_labels: Vec<String>,
    /// Every host is a subject too (its subject labels plus `ip`).
    /// Defaults to false.
    pub hosts: bool,
    /// Sample length, aligned to the Unix epoch grid. 60..=3600 s dividing
    /// 86400, or from 1 s with `allow_short_interval` (tests and demos
    /// only). Defaults to 300 s.
    pub interval: Duration,
    /// IANA time zone of billing periods. Defaults to UTC.
    pub timezone: jiff::tz::TimeZone,
    /// Its name as written.
    pub timezone_name: String,
    /// Day of the month a billing period starts, 1..=28. Defaults to 1.
    pub period_start_day: u8,
    /// Defaults to `max_of_p95`.
    pub method: Method,
    /// Defaults to `zero`.
    pub missing: Missing,
    /// The SQLite ledger. Defaults to /var/lib/xdpacct/billing.db.
    pub db: PathBuf,
    /// How often the running interval is written (what SIGKILL or power
    /// loss can lose at most), 1..=interval s. Defaults to 10 s.
    pub checkpoint: Duration,
    /// Samples older than this many months are deleted; 0 keeps all.
    /// Defaults to 25.
    pub retention_months: u32,
    /// This appliance's name in a shared store. Defaults to the host name.
    pub appliance: String,
    /// `postgres://…`: a shared PostgreSQL that every sample is also
    /// written to, keyed by `appliance` (plain TCP; no TLS yet). Defaults
    /// to none (the SQLite ledger only).
    pub postgres: Option<String>,
}

/// The default ledger path (the unit's StateDirectory).
pub const DEFAULT_DB: &str = "/var/lib/xdpacct/billing.db";

impl Billing {
    /// `None` when there is no `[billing]` section or `enabled = false`.
    pub fn from_raw(
        raw: Option<&BillingConfig>,
        origin: &str,
    ) -> Result<Option<Billing>, SettingsError> {
        let Some(b) = raw else { return Ok(None) };
        if b.enabled == Some(false) {
            return Ok(None);
        }
        let err = |key: &str, msg: String| SettingsError::Invalid {
            origin: origin.to_string(),
            key: format!("billing.{key}"),
            msg,
        };
        let subject_labels = b
            .subject_labels
            .clone()
            .unwrap_or_else(|| vec!["customer".to_string()]);
        for l in &subject_labels {
            let ok = l
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok || l == "ip" || l.starts_with("__") {
                return Err(err(
                    "subject_labels",
                    format!("{l:?} is not a range label name"),
                ));
            }
        }
        let mut sorted = subject_labels.clone();
        sorted.sort();
        sorted.dedup();
        if sorted.len() != subject_labels.len() {
            return Err(err("subject_labels", "names a label twice".into()));
        }
        let interval = b.interval.unwrap_or(300);
        let short = b.allow_short_interval.unwrap_or(false);
        let min = if short { 1 } else { 60 };
        if !(min..=3600).contains(&interval) || 86_400 % interval != 0 {
            return Err(err(
                "interval",
                format!("must be between {min} and 3600 seconds and divide 86400"),
            ));
        }
        let timezone_name = b.timezone.clone().unwrap_or_else(|| "UTC".into());
        let timezone = jiff::tz::TimeZone::get(&timezone_name).map_err(|_| {
            err(
                "timezone",
                format!("{timezone_name:?} is not an IANA time zone"),
            )
        })?;
        let period_start_day = b.period_start_day.unwrap_or(1);
        if !(1..=28).contains(&period_start_day) {
            return Err(err("period_start_day", "must be between 1 and 28".into()));
        }
        let checkpoint = b.checkpoint.unwrap_or(10);
        if checkpoint == 0 || checkpoint > u64::from(interval) {
            return Err(err(
                "checkpoint",
                format!("must be between 1 and the interval ({interval}) seconds"),
            ));
        }
        let retention_months = b.retention_months.unwrap_or(25);
        if retention_months > 1200 {
            return Err(err("retention_months", "must be at most 1200".into()));
        }
        let db = PathBuf::from(b.db.as_deref().unwrap_or(DEFAULT_DB));
        if db.as_os_str().is_empty() {
            return Err(err("db", "must name a file".into()));
        }
        if let Some(p) = &b.postgres {
            if !(p.starts_with("postgres://") || p.starts_with("postgresql://")) {
                return Err(err("postgres", "must be a postgres:// URL".into()));
            }
            match <::postgres::Config as std::str::FromStr>::from_str(p) {
                Err(e) => return Err(err("postgres", format!("not a usable URL: {e}"))),
                Ok(c) if matches!(c.get_ssl_mode(), ::postgres::config::SslMode::Require) => {
                    return Err(err(
                        "postgres",
                        "sslmode=require: TLS to PostgreSQL is not supported yet".into(),
                    ))
                }
                Ok(_) => {}
            }
        }
        let appliance = match &b.appliance {
            Some(a) if a.is_empty() => return Err(err("appliance", "must not be empty".into())),
            Some(a) => a.clone(),
            None => host_name(),
        };
        Ok(Some(Billing {
            subject_labels,
            hosts: b.hosts.unwrap_or(false),
            interval: Duration::from_secs(interval.into()),
            timezone,
            timezone_name,
            period_start_day,
            method: b.method.unwrap_or_default(),
            missing: b.missing.unwrap_or_default(),
            db,
            checkpoint: Duration::from_secs(checkpoint),
            retention_months,
            appliance,
            postgres: b.postgres.clone(),
        }))
    }

    /// The interval in whole seconds.
    pub fn interval_secs(&self) -> i64 {
        self.interval.as_secs() as i64
    }
}

impl Default for Billing {
    /// Every default (as an empty `[billing]` section).
    fn default() -> Self {
        Billing::from_raw(Some(&BillingConfig::default()), "defaults")
            .ok()
            .flatten()
            .unwrap_or_else(|| unreachable!("the defaults are valid"))
    }
}

/// The kernel's host name, or "localhost".
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> Result<Option<Billing>, SettingsError> {
        crate::settings::Settings::from_toml_str(toml).map(|s| s.billing)
    }

    #[test]
    fn off_without_the_section_on_with_it() {
        assert!(parse("").unwrap().is_none());
        assert!(parse("[billing]\nenabled = false\n").unwrap().is_none());
        let b = parse("[billing]\n").unwrap().unwrap();
        assert_eq!(b.subject_labels, ["customer"]);
        assert_eq!(b.interval, Duration::from_secs(300));
        assert_eq!(b.checkpoint, Duration::from_secs(10));
        assert_eq!(b.method, Method::MaxOfP95);
        assert_eq!(b.missing, Missing::Zero);
        assert_eq!(b.db, PathBuf::from(DEFAULT_DB));
        assert_eq!(b.retention_months, 25);
        assert_eq!(b.period_start_day, 1);
        assert!(!b.hosts);
    }

    #[test]
    fn values_are_checked() {
        for bad in [
            "interval = 7",
            "interval = 7200",
            "interval = 70",
            "period_start_day = 29",
            "period_start_day = 0",
            "timezone = \"Mars/Olympus\"",
            "method = \"p99\"",
            "missing = \"maybe\"",
            "checkpoint = 0",
            "checkpoint = 301",
            "subject_labels = [\"ip\"]",
            "subject_labels = [\"a\", \"a\"]",
            "subject_labels = [\"1x\"]",
            "postgres = \"mysql://x\"",
            "postgres = \"postgres://u@h/db?sslmode=require\"",
            "postgres = \"postgres://u@h:notaport/db\"",
            "appliance = \"\"",
            "unknown = 1",
        ] {
            let e = parse(&format!("[billing]\n{bad}\n"));
            assert!(e.is_err(), "{bad} accepted");
            let msg = e.unwrap_err().to_string();
            assert!(msg.contains("billing"), "{bad}: {msg}");
        }
        let b = parse(
            "[billing]\ninterval = 60\ntimezone = \"Europe/Amsterdam\"\nmethod = \"p95_of_sum\"\nmissing = \"skip\"\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(b.method, Method::P95OfSum);
        assert_eq!(b.missing, Missing::Skip);
        assert_eq!(b.timezone_name, "Europe/Amsterdam");
        assert!(
            parse("[billing]\ninterval = 2\nallow_short_interval = true\ncheckpoint = 1\n").is_ok()
        );
        let b = parse("[billing]\nappliance = \"edge1\"\npostgres = \"postgres://x@db/bill\"\n")
            .unwrap()
            .unwrap();
        assert_eq!(b.appliance, "edge1");
        assert_eq!(b.postgres.as_deref(), Some("postgres://x@db/bill"));
    }
}

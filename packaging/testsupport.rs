//! Shared by tests/packaging.rs and tests/promql.rs (included with `#[path]`):
//! the metric contract, the rules file and dashboards as data, and a small
//! PromQL scanner that finds the metric names an expression selects.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Metric names the dashboards and rules may use: the published contract
/// (docs: packaging/README.md), histogram series included.
pub const CONTRACT: &[&str] = &[
    "xdpacct_interface_packets_total",
    "xdpacct_interface_bytes_total",
    "xdpacct_packet_size_bytes_bucket",
    "xdpacct_packet_size_bytes_sum",
    "xdpacct_packet_size_bytes_count",
    "xdpacct_protocol_packets_total",
    "xdpacct_protocol_bytes_total",
    "xdpacct_host_packets_total",
    "xdpacct_host_bytes_total",
    "xdpacct_customer_packets_total",
    "xdpacct_customer_bytes_total",
    "xdpacct_parse_errors_total",
    "xdpacct_queue_frames_accounted_total",
    "xdpacct_build_info",
    "xdpacct_queue_frames_seen_total",
    "xdpacct_queue_dropped_total",
    "xdpacct_as_packets_total",
    "xdpacct_as_bytes_total",
    "xdpacct_flow_records_exported_total",
    "xdpacct_flow_records_dropped_total",
    // Prometheus' own series for the scrape of the appliance.
    "up",
];

/// Flow input families the dashboards may use too (the overview's exporter
/// panels). Part of the contract, but on the page only with `[collector]`
/// and an exporter sending, so the live capture test does not look for them.
pub const CONTRACT_FLOW_INPUT: &[&str] = &[
    "xdpacct_collector_records_total",
    "xdpacct_collector_sampling_rate",
    "xdpacct_collector_records_default_rate_total",
    "xdpacct_collector_sequence_gaps_total",
    "xdpacct_collector_malformed_total",
    "xdpacct_collector_dropped_total",
    "xdpacct_collector_socket_drops_total",
];

/// Contract names that exist only when their feature is configured
/// (`[tcp_rtt]`, `[billing]`, `[connections] top`), so the live page of
/// tests/promql.rs (none of them on) need not show them.
pub const CONTRACT_WHEN_CONFIGURED: &[&str] = &[
    // Handshake RTT (README "Handshake RTT from the tap").
    "xdpacct_tcp_handshake_rtt_seconds_bucket",
    "xdpacct_tcp_handshake_rtt_seconds_sum",
    "xdpacct_tcp_handshake_rtt_seconds_count",
    "xdpacct_as_tcp_rtt_seconds_bucket",
    "xdpacct_as_tcp_rtt_seconds_sum",
    "xdpacct_as_tcp_rtt_seconds_count",
    "xdpacct_tcp_handshakes_total",
    // The billing ledger (README "Billing").
    "xdpacct_billing_p95_bits",
    "xdpacct_billing_samples",
    "xdpacct_billing_write_failures_total",
    // Busiest connections (README "Busiest connections").
    "xdpacct_connection_bytes_total",
    "xdpacct_connection_packets_total",
];

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn rules_path() -> PathBuf {
    root().join("packaging/prometheus/xdpacct.rules.yml")
}

pub fn dashboard_paths() -> Vec<PathBuf> {
    let dir = root().join("packaging/grafana");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    v.sort();
    v
}

/// One rule of the rules file: `record` or `alert` name and its expression.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub is_alert: bool,
    pub expr: String,
}

/// Reads the rules file without a YAML library: the file's own layout
/// (`- record:`/`- alert:` then `expr:` on one line or as a `|` block).
pub fn rules(path: &Path) -> Vec<Rule> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut current: Option<(String, bool)> = None;
    let mut i = 0;
    while i < lines.len() {
        let t = lines[i].trim_start();
        let indent = lines[i].len() - t.len();
        if let Some(n) = t.strip_prefix("- record:") {
            current = Some((n.trim().to_string(), false));
        } else if let Some(n) = t.strip_prefix("- alert:") {
            current = Some((n.trim().to_string(), true));
        } else if let Some(e) = t.strip_prefix("expr:") {
            let e = e.trim();
            let expr = if e == "|" || e == "|-" || e == ">" || e == ">-" {
                let mut block = Vec::new();
                while i + 1 < lines.len() {
                    let next = lines[i + 1];
                    let nt = next.trim_start();
                    if !nt.is_empty() && next.len() - nt.len() <= indent {
                        break;
                    }
                    block.push(nt);
                    i += 1;
                }
                block.join("\n")
            } else {
                e.to_string()
            };
            let (name, is_alert) = current
                .take()
                .expect("expr: without a record/alert before it");
            out.push(Rule {
                name,
                is_alert,
                expr,
            });
        }
        i += 1;
    }
    out
}

/// Recorded series names of the rules file.
pub fn recorded(path: &Path) -> BTreeSet<String> {
    rules(path)
        .into_iter()
        .filter(|r| !r.is_alert)
        .map(|r| r.name)
        .collect()
}

/// Every name the dashboards and rules may select.
pub fn allowed_names() -> BTreeSet<String> {
    let mut s: BTreeSet<String> = CONTRACT
        .iter()
        .chain(CONTRACT_FLOW_INPUT)
        .chain(CONTRACT_WHEN_CONFIGURED)
        .map(|s| s.to_string())
        .collect();
    s.extend(recorded(&rules_path()));
    s
}

const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
    "atan2",
    // aggregation operators (may be followed by `by (...)` before their `(`)
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "group",
    "limitk",
    "limit_ratio",
];
const GROUPING: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metric names a PromQL expression selects (bare names before `{`, `[`,
/// an operator or the end). Strings, label matchers, ranges, numbers and
/// durations, function names, grouping label lists and Grafana variables
/// (`$x`, `${x}`, `[[x]]`) are skipped. Also finds `{__name__="..."}`.
pub fn metric_names(expr: &str) -> Vec<String> {
    let b: Vec<char> = expr.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    let skip_ws = |mut j: usize| {
        while j < b.len() && b[j].is_whitespace() {
            j += 1;
        }
        j
    };
    while i < b.len() {
        let c = b[i];
        if c == '"' || c == '\'' || c == '`' {
            i += 1;
            while i < b.len() && b[i] != c {
                if b[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
        } else if c == '{' {
            let start = i;
            while i < b.len() && b[i] != '}' {
                if b[i] == '"' {
                    i += 1;
                    while i < b.len() && b[i] != '"' {
                        if b[i] == '\\' {
                            i += 1;
                        }
                        i += 1;
                    }
                }
                i += 1;
            }
            let inner: String = b[start..i.min(b.len())].iter().collect();
            if let Some(p) = inner.find("__name__") {
                let rest = &inner[p..];
                if let Some(q) = rest.find('"') {
                    let v: String = rest[q + 1..].chars().take_while(|&c| c != '"').collect();
                    names.push(v);
                }
            }
            i += 1;
        } else if c == '[' {
            while i < b.len() && b[i] != ']' {
                i += 1;
            }
            i += 1;
        } else if c == '$' {
            i += 1;
            if i < b.len() && b[i] == '{' {
                while i < b.len() && b[i] != '}' {
                    i += 1;
                }
                i += 1;
            } else {
                while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                    i += 1;
                }
            }
        } else if c.is_ascii_digit() || (c == '.' && i + 1 < b.len() && b[i + 1].is_ascii_digit()) {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == '_' || b[i] == ':') {
                i += 1;
            }
            let word: String = b[start..i].iter().collect();
            let j = skip_ws(i);
            let lower = word.to_ascii_lowercase();
            if GROUPING.contains(&lower.as_str()) {
                // skip the label list that follows
                if j < b.len() && b[j] == '(' {
                    i = j;
                    while i < b.len() && b[i] != ')' {
                        i += 1;
                    }
                    i += 1;
                }
            } else if j < b.len() && b[j] == '(' {
                // function or aggregation
            } else if KEYWORDS.contains(&lower.as_str()) {
            } else {
                names.push(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// A dashboard target's expression, as found in the JSON.
#[derive(Debug, Clone)]
pub struct PanelExpr {
    pub dashboard: String,
    pub panel: String,
    pub expr: String,
    pub instant: bool,
}

/// Every panel (rows' nested panels included) of a dashboard.
pub fn panels(dash: &serde_json::Value) -> Vec<&serde_json::Value> {
    fn walk<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a serde_json::Value>) {
        if let Some(ps) = v.get("panels").and_then(|p| p.as_array()) {
            for p in ps {
                out.push(p);
                walk(p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dash, &mut out);
    out
}

pub fn load_dashboard(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()))
}

pub fn panel_exprs(path: &Path) -> Vec<PanelExpr> {
    let dash = load_dashboard(path);
    let title = dash["title"].as_str().unwrap_or("?").to_string();
    let mut out = Vec::new();
    for p in panels(&dash) {
        for t in p
            .get("targets")
            .and_then(|t| t.as_array())
            .into_iter()
            .flatten()
        {
            out.push(PanelExpr {
                dashboard: title.clone(),
                panel: p["title"].as_str().unwrap_or("?").to_string(),
                expr: t["expr"].as_str().unwrap_or("").to_string(),
                instant: t["instant"].as_bool().unwrap_or(false),
            });
        }
    }
    out
}

/// Template variable queries (`label_values(...)`) of a dashboard.
pub fn variable_queries(dash: &serde_json::Value) -> Vec<(String, String)> {
    dash["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["type"] == "query")
        .map(|v| {
            let q = v["query"]["query"]
                .as_str()
                .or_else(|| v["query"].as_str())
                .or_else(|| v["definition"].as_str())
                .unwrap_or("")
                .to_string();
            (v["name"].as_str().unwrap_or("?").to_string(), q)
        })
        .collect()
}

/// Grafana variables substituted with values that match anything, for
/// checking or evaluating an expression outside Grafana.
pub fn substitute_grafana_vars(expr: &str) -> String {
    let mut e = expr.to_string();
    for (var, val) in [
        ("$__rate_interval", "5m"),
        ("${__rate_interval}", "5m"),
        ("$__interval", "1m"),
        ("${__interval}", "1m"),
        ("$__range", "1h"),
        ("${__range}", "1h"),
    ] {
        e = e.replace(var, val);
    }
    // Remaining $name / ${name} are label variables inside =~ matchers.
    let mut out = String::new();
    let b: Vec<char> = e.chars().collect();
    let mut i = 0;
    while i < b.len() {
        if b[i] == '$' {
            i += 1;
            if i < b.len() && b[i] == '{' {
                while i < b.len() && b[i] != '}' {
                    i += 1;
                }
                i += 1;
            } else {
                while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                    i += 1;
                }
            }
            out.push_str(".*");
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// True when `cmd` runs (`cmd --version` or `cmd --help` exits at all).
pub fn have(cmd: &str) -> bool {
    std::process::Command::new(cmd)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok()
}

/// Makes `cmd` available, installing Debian package `pkg` with apt-get when
/// missing and running as root. Returns whether it is available.
pub fn ensure_tool(cmd: &str, pkg: &str) -> bool {
    if have(cmd) {
        return true;
    }
    let root = unsafe_free_is_root();
    if root && have("apt-get") {
        eprintln!("{cmd} missing: apt-get install {pkg}");
        let _ = std::process::Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends", pkg])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status();
    }
    have(cmd)
}

fn unsafe_free_is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The metric names a Grafana variable query selects:
/// `label_values(metric{...}, label)` → metric; `label_values(label)` → none;
/// `query_result(expr)` → the expression's names.
pub fn variable_metric_names(q: &str) -> Vec<String> {
    let q = q.trim();
    if let Some(inner) = q
        .strip_prefix("label_values(")
        .and_then(|r| r.strip_suffix(')'))
    {
        let (mut depth, mut quoted, mut last_comma) = (0i32, false, None);
        for (i, c) in inner.char_indices() {
            match c {
                '"' => quoted = !quoted,
                '{' | '(' | '[' if !quoted => depth += 1,
                '}' | ')' | ']' if !quoted => depth -= 1,
                ',' if !quoted && depth == 0 => last_comma = Some(i),
                _ => {}
            }
        }
        return match last_comma {
            Some(i) => metric_names(&inner[..i]),
            None => Vec::new(),
        };
    }
    if let Some(inner) = q
        .strip_prefix("query_result(")
        .and_then(|r| r.strip_suffix(')'))
    {
        return metric_names(inner);
    }
    metric_names(q)
}

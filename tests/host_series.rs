//! Which hosts have series (`accounting.host_series`, `metrics.max_series`),
//! and the per-customer family, against counts the test makes itself.
//!
//! Regression: every address of every range had series from the start, so
//! the example config's page was 28.8 MB before any traffic.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use xdpacct::capture::Frame;
use xdpacct::metrics::{EngineCollector, Exposition, HostView};
use xdpacct::settings::HostSeries;
use xdpacct::shard::worker::account;
use xdpacct::shard::Shard;
use xdpacct::wire::FrameFacts;

#[path = "../bench/support.rs"]
mod support;

mod common;
use common::{parse_exposition, sum};

const HOSTS: u32 = 300;

/// The local host of a `support::frames64` frame and whether it is inbound.
fn local_of(f: &[u8; 64]) -> (String, &'static str) {
    let (src, dst) = (&f[26..30], &f[30..34]);
    let local = if src[0] == 100 { src } else { dst };
    let dir = if dst[0] == 100 { "in" } else { "out" };
    (
        std::net::Ipv4Addr::new(local[0], local[1], local[2], local[3]).to_string(),
        dir,
    )
}

fn count(shard: &Shard, frames: &[[u8; 64]]) -> HashMap<(String, &'static str), u64> {
    let hosts = shard.hosts.load_full();
    let mut facts = FrameFacts::default();
    let mut truth = HashMap::new();
    for f in frames {
        account(
            shard,
            &hosts,
            &mut facts,
            Frame {
                data: &f[..],
                wire_len: 64,
                timestamp_ns: 0,
            },
        );
        *truth.entry(local_of(f)).or_insert(0) += 1;
    }
    truth
}

fn page(engine: &Arc<EngineCollector>) -> String {
    let e = Exposition::new();
    e.register_engine(engine.clone());
    String::from_utf8(e.render()).unwrap()
}

/// Packets per (ip, direction) on the page.
fn hosts_on(text: &str) -> HashMap<(String, String), u64> {
    parse_exposition(text)
        .into_iter()
        .filter(|s| s.name == "xdpacct_host_packets_total")
        .map(|s| {
            (
                (s.labels["ip"].clone(), s.labels["direction"].clone()),
                s.value as u64,
            )
        })
        .collect()
}

#[test]
fn active_hosts_appear_with_traffic_leave_when_idle_and_continue() {
    let acct = support::accounting(HOSTS);
    let shard = support::shard(&acct);
    let view = HostView {
        series: HostSeries::Active,
        idle_timeout: Duration::from_millis(700),
        max_series: usize::MAX,
    };
    let engine = Arc::new(EngineCollector::with_view(vec![shard.clone()], view));
    // No traffic, no host series (the page stays small).
    assert!(hosts_on(&page(&engine)).is_empty());

    // A few hosts get traffic: exactly they appear, with their counts.
    let frames: Vec<[u8; 64]> = support::frames64(4000, HOSTS)
        .into_iter()
        .take(40)
        .collect();
    let truth = count(&shard, &frames);
    let text = page(&engine);
    let shown = hosts_on(&text);
    let active: std::collections::HashSet<&String> = truth.keys().map(|(ip, _)| ip).collect();
    assert_eq!(
        shown.len(),
        active.len() * 2,
        "both directions of each active host"
    );
    for ((ip, dir), n) in &shown {
        assert_eq!(
            *n,
            truth.get(&(ip.clone(), dir.as_str())).copied().unwrap_or(0),
            "{ip} {dir}"
        );
    }
    // The customer family sums them (one customer: every host is in c0, c1).
    let total: u64 = truth.values().sum();
    let samples = parse_exposition(&text);
    assert_eq!(
        sum(&samples, "xdpacct_customer_packets_total", &[]) as u64,
        total
    );
    assert_eq!(
        sum(
            &samples,
            "xdpacct_customer_bytes_total",
            &[("direction", "in")]
        ) as u64,
        64 * truth
            .iter()
            .filter(|((_, d), _)| *d == "in")
            .map(|(_, n)| n)
            .sum::<u64>()
    );

    // Idle past the timeout: the series leave the page, the counts stay.
    std::thread::sleep(Duration::from_millis(900));
    assert!(
        hosts_on(&page(&engine)).is_empty(),
        "idle hosts leave the page"
    );
    let samples = parse_exposition(&page(&engine));
    assert_eq!(
        sum(&samples, "xdpacct_customer_packets_total", &[]) as u64,
        total
    );

    // One host comes back: its series continue from where they were.
    let again: Vec<[u8; 64]> = frames.iter().take(1).copied().collect();
    let key = local_of(&again[0]);
    count(&shard, &again);
    let shown = hosts_on(&page(&engine));
    assert_eq!(shown.len(), 2, "{shown:?}");
    assert_eq!(shown[&(key.0.clone(), key.1.to_string())], truth[&key] + 1);
}

#[test]
fn max_series_folds_the_rest_into_other_and_counts_them() {
    let acct = support::accounting(HOSTS);
    let shard = support::shard(&acct);
    let view = HostView {
        series: HostSeries::Active,
        idle_timeout: Duration::from_secs(3600),
        max_series: 2 * 10,
    };
    let engine = Arc::new(EngineCollector::with_view(vec![shard.clone()], view));
    let frames = support::frames64(4000, HOSTS);
    let truth = count(&shard, &frames);
    let active: std::collections::HashSet<&String> = truth.keys().map(|(ip, _)| ip).collect();
    assert!(active.len() > 10);
    let text = page(&engine);
    let samples = parse_exposition(&text);
    let shown = hosts_on(&text);
    assert!(shown.contains_key(&("other".to_string(), "in".to_string())));
    assert_eq!(
        shown.len(),
        2 * 10 + 2,
        "10 hosts and other, both directions"
    );
    assert_eq!(
        sum(&samples, "xdpacct_host_series_folded", &[]) as usize,
        active.len() - 10
    );
    // Nothing is lost: shown + other = every frame.
    let total: u64 = truth.values().sum();
    assert_eq!(
        sum(&samples, "xdpacct_host_packets_total", &[]) as u64,
        total
    );
    // The shown hosts are the busiest, with exact counts.
    for ((ip, dir), n) in &shown {
        if ip != "other" {
            assert_eq!(
                *n,
                truth.get(&(ip.clone(), dir.as_str())).copied().unwrap_or(0)
            );
        }
    }
    // More traffic: every series, other included, only goes up.
    count(&shard, &frames);
    let after = hosts_on(&page(&engine));
    for (k, n) in &shown {
        assert!(after.get(k).copied().unwrap_or(0) >= *n, "{k:?} went down");
    }
}

#[test]
fn all_shows_every_host_from_the_start() {
    let acct = support::accounting(HOSTS);
    let shard = support::shard(&acct);
    let engine = Arc::new(EngineCollector::new(vec![shard]));
    assert_eq!(hosts_on(&page(&engine)).len(), HOSTS as usize * 2);
}

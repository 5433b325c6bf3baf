//! Reloading the tables while workers count loses no frame: counts of hosts
//! that still exist keep counting from where they were.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use xdpacct::capture::Frame;
use xdpacct::metrics::{EngineCollector, Exposition};
use xdpacct::settings::raw::{AccountingConfig, RangeConfig};
use xdpacct::settings::Accounting;
use xdpacct::shard::worker::account;
use xdpacct::shard::Tables;
use xdpacct::wire::FrameFacts;

mod common;
#[path = "../bench/support.rs"]
mod support;

fn tables(cfg: &AccountingConfig) -> Arc<Tables> {
    let acct = Accounting::from_raw(cfg, "reload").unwrap();
    Arc::new(Tables::build(&acct, "reload", None).unwrap())
}

fn host_totals(text: &str) -> (f64, usize) {
    let mut sum = 0.0;
    let mut series = 0;
    for line in text
        .lines()
        .filter(|l| l.starts_with("xdpacct_host_packets_total{"))
    {
        sum += line.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap();
        series += 1;
    }
    (sum, series)
}

#[test]
fn reload_while_counting_loses_no_frame() {
    const HOSTS: u32 = 512;
    const ROUNDS: usize = 200;
    let acct = support::accounting(HOSTS);
    let shards: Vec<_> = (0..2).map(|_| support::shard(&acct)).collect();
    let engine = Arc::new(EngineCollector::new(shards.clone()));
    let exposition = Exposition::new();
    exposition.register_engine(engine.clone());
    let frames = support::frames64(4096, HOSTS);
    let done = Arc::new(AtomicBool::new(false));

    let workers: Vec<_> = shards
        .iter()
        .map(|shard| {
            let shard = shard.clone();
            let frames = frames.clone();
            std::thread::spawn(move || {
                let mut facts = FrameFacts::default();
                for _ in 0..ROUNDS {
                    let hosts = shard.hosts.load_full();
                    for f in &frames {
                        account(
                            &shard,
                            &hosts,
                            &mut facts,
                            Frame {
                                data: &f[..],
                                wire_len: 64,
                                timestamp_ns: 0,
                            },
                        );
                    }
                }
            })
        })
        .collect();

    // Reload back and forth between two layouts with the same hosts but
    // other labels and range order, while the workers run.
    let mut alt = acct.clone();
    alt.ranges.reverse();
    for r in &mut alt.ranges {
        r.labels.insert("customer".into(), "renamed".into());
    }
    let mut reloads = 0;
    while workers.iter().any(|w| !w.is_finished()) && reloads < 50 {
        let cfg = if reloads % 2 == 0 { &alt } else { &acct };
        engine.reload(tables(cfg)).unwrap();
        reloads += 1;
        let (sum, _) = host_totals(&String::from_utf8(exposition.render()).unwrap());
        assert!(sum <= (frames.len() * ROUNDS * 2) as f64);
    }
    for w in workers {
        w.join().unwrap();
    }
    done.store(true, Relaxed);
    assert!(reloads > 1, "reloads happened during counting");
    let text = String::from_utf8(exposition.render()).unwrap();
    common::assert_promtool_ok(&text);
    let (sum, series) = host_totals(&text);
    // Every frame has exactly one configured host (the local side).
    assert_eq!(
        sum as usize,
        frames.len() * ROUNDS * 2,
        "after {reloads} reloads"
    );
    assert_eq!(series, HOSTS as usize * 2);

    // A reload that drops a range forgets its hosts, keeps the others.
    let mut fewer = acct.clone();
    let dropped: RangeConfig = fewer.ranges.pop().unwrap();
    engine.reload(tables(&fewer)).unwrap();
    let (_, series) = host_totals(&String::from_utf8(exposition.render()).unwrap());
    let dropped_hosts = {
        let f: std::net::Ipv4Addr = dropped.first.unwrap().parse().unwrap();
        let l: std::net::Ipv4Addr = dropped.last.unwrap().parse().unwrap();
        (u32::from(l) - u32::from(f) + 1) as usize
    };
    assert_eq!(series, (HOSTS as usize - dropped_hosts) * 2);
}

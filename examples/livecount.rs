//! Counts frames on a live interface with one of the live backends, one
//! thread per queue, and prints totals and kernel drop counters.
//!
//!   cargo run --example livecount -- IFNAME [afxdp|afpacket] [SECONDS]
//!
//! Prints "ready" once capturing. A manual check for the backends, and the
//! process the SIGKILL test kills.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use xdpacct::capture::afpacket::{open_afpacket, AfpacketOptions};
use xdpacct::capture::afxdp::{open_afxdp, AfxdpOptions};
use xdpacct::capture::stats::QueueStatsSource;
use xdpacct::capture::Capture;

fn run<C: Capture + 'static>(queues: Vec<C>, secs: u64, stats: Vec<Arc<dyn QueueStatsSource>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let frames = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let threads: Vec<_> = queues
        .into_iter()
        .enumerate()
        .map(|(i, mut q)| {
            let (stop, frames, bytes) = (stop.clone(), frames.clone(), bytes.clone());
            let core = cores.get(i % cores.len().max(1)).copied();
            std::thread::spawn(move || {
                if let Some(c) = core {
                    core_affinity::set_for_current(c);
                }
                let (mut n, mut b) = (0u64, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    match q.poll(256, |f| {
                        n += 1;
                        b += u64::from(f.wire_len);
                    }) {
                        Ok(_) => {}
                        Err(e) => {
                            eprintln!("poll: {e}");
                            break;
                        }
                    }
                }
                frames.fetch_add(n, Ordering::Relaxed);
                bytes.fetch_add(b, Ordering::Relaxed);
            })
        })
        .collect();
    println!("ready");
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    println!(
        "frames={} bytes={}",
        frames.load(Ordering::Relaxed),
        bytes.load(Ordering::Relaxed)
    );
    for s in stats {
        println!("{:?}", s.stats());
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(ifname) = args.get(1) else {
        eprintln!("usage: livecount IFNAME [afxdp|afpacket] [SECONDS]");
        std::process::exit(2);
    };
    let backend = args.get(2).map(String::as_str).unwrap_or("afxdp");
    let secs = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10);
    let result = match backend {
        "afxdp" => open_afxdp(&AfxdpOptions::default(), ifname).map(|qs| {
            let stats = qs.iter().map(|q| q.stats_source()).collect();
            run(qs, secs, stats)
        }),
        "afpacket" => open_afpacket(&AfpacketOptions::default(), ifname).map(|qs| {
            let stats = qs.iter().map(|q| q.stats_source()).collect();
            run(qs, secs, stats)
        }),
        other => {
            eprintln!("unknown backend {other}");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("livecount: {e}");
        std::process::exit(1);
    }
}

//! Every capture of tcpdump's regression suite (many built to crash parsers)
//! replays without a panic, a hang or a crash.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn every_tcpdump_capture_replays_cleanly() {
    let dir = tcpdump_dir();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/data/tcpdump exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    files.sort();
    assert!(
        files.len() > 100,
        "expected the tcpdump captures, found {}",
        files.len()
    );
    let (mut ok, mut refused) = (0, 0);
    let mut frames_total = 0u64;
    for file in &files {
        let mut child = xdpacct()
            .args(["replay", "--workers", "2", "--config"])
            .arg(empty_config())
            .arg(file)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{}: replay hung for 30 s", file.display());
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{}: {stderr}", file.display());
        match status.code() {
            Some(0) => {
                ok += 1;
                let samples = parse_exposition(&String::from_utf8(out.stdout).unwrap());
                let frames = sum(&samples, "xdpacct_interface_packets_total", &[]);
                // Every frame read is counted, whatever its headers hold.
                let summary = stderr
                    .lines()
                    .find(|l| l.starts_with("replayed "))
                    .expect("summary line");
                let read: f64 = summary.split_whitespace().nth(1).unwrap().parse().unwrap();
                assert_eq!(frames, read, "{}: frames read vs counted", file.display());
                frames_total += frames as u64;
            }
            Some(2) => {
                refused += 1;
                let lines: Vec<_> = stderr
                    .lines()
                    .filter(|l| l.starts_with("xdpacct: "))
                    .collect();
                assert_eq!(
                    lines.len(),
                    1,
                    "{}: one clear error line expected: {stderr}",
                    file.display()
                );
                assert!(
                    lines[0].contains(&*file.file_name().unwrap().to_string_lossy()),
                    "{}: error names the file: {stderr}",
                    file.display()
                );
            }
            other => panic!(
                "{}: exit {other:?} (signal or unexpected status): {stderr}",
                file.display()
            ),
        }
    }
    eprintln!("{ok} replayed ({frames_total} frames), {refused} refused with a message");
    assert!(ok > 150, "most Ethernet captures replay: only {ok}");
}

//! Flow export against real collectors: a synthetic 100k-frame capture
//! (tests/data/gen_traffic.py, generated into a temporary directory) is
//! replayed through `FlowCache` + `FlowExporter` to nfdump's `nfcapd` and
//! pmacct's `nfacctd` at once, in NetFlow v9 and in IPFIX, and both must
//! report exactly the ground truth (total packets and L2 bytes, per-host
//! in/out bytes). The same records are also encoded into a pcap that
//! `tshark` must dissect without malformed packets or expert errors.
//!
//! Needs nfdump, pmacct and tshark (Debian packages) and UDP on 127.0.0.1.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use xdpacct::export::{
    Encoder, EncoderConfig, ExportClock, ExporterConfig, FlowCache, FlowCacheConfig, FlowExporter,
    FlowRecord, FlowStats, Version,
};
use xdpacct::wire::{parse_frame, FrameFacts, L3Addrs};

mod common;
use common::free_udp_port;

/// A child process stopped with SIGTERM (and reaped) even if the test fails.
struct Daemon {
    name: &'static str,
    signal: &'static str,
    child: Option<Child>,
}

impl Daemon {
    /// Output goes to `log`.
    fn spawn(name: &'static str, signal: &'static str, log: &Path, cmd: &mut Command) -> Daemon {
        let out = std::fs::File::create(log).expect("create daemon log");
        let err = out.try_clone().expect("clone log handle");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Daemon {
            name,
            signal,
            child: Some(child),
        }
    }

    /// Sends the stop signal, then waits (nfcapd writes its file on the way out).
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .arg(self.signal)
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("{} did not stop on {}; killing it", self.name, self.signal);
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Waits until someone has bound 127.0.0.1:`port` (UDP).
fn wait_bound(port: u16, who: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if UdpSocket::bind(("127.0.0.1", port)).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{who} did not bind UDP port {port}");
}

fn is_local(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v4) => v4.octets()[..3] == [198, 51, 100],
        IpAddr::V6(v6) => v6.segments()[..3] == [0x2001, 0xdb8, 1],
    }
}

fn ips(addrs: L3Addrs) -> (IpAddr, IpAddr) {
    match addrs {
        L3Addrs::V4 { src, dst } => (Ipv4Addr::from(src).into(), Ipv4Addr::from(dst).into()),
        L3Addrs::V6 { src, dst } => (Ipv6Addr::from(src).into(), Ipv6Addr::from(dst).into()),
        L3Addrs::None => panic!("record without addresses"),
    }
}

/// Totals and per-host (in, out) L2 bytes.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    flows: u64,
    packets: u64,
    bytes: u64,
    hosts: HashMap<IpAddr, (u64, u64)>,
    /// Sums of first-seen and last-seen times (Unix ms), where known.
    first_ms: u128,
    last_ms: u128,
}

impl Tally {
    fn add(&mut self, src: IpAddr, dst: IpAddr, packets: u64, bytes: u64) {
        self.flows += 1;
        self.packets += packets;
        self.bytes += bytes;
        // Per-host: "in" when the host is the destination, "out" when source.
        if is_local(dst) {
            self.hosts.entry(dst).or_default().0 += bytes;
        }
        if is_local(src) {
            self.hosts.entry(src).or_default().1 += bytes;
        }
    }
}

fn truth(path: &Path) -> Tally {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("truth file")).expect("json");
    let mut t = Tally {
        packets: v["totals"]["packets"].as_u64().expect("packets"),
        bytes: v["totals"]["l2_bytes"].as_u64().expect("l2_bytes"),
        ..Tally::default()
    };
    for (host, h) in v["hosts"].as_object().expect("hosts") {
        let ip: IpAddr = host.parse().expect("host address");
        let n = |k: &str| h[k].as_u64().expect("count");
        t.hosts.insert(ip, (n("in_l2_bytes"), n("out_l2_bytes")));
    }
    t
}

/// `flows`: the number of flow records expected, when `who` keeps them apart.
fn assert_matches_truth(who: &str, got: &Tally, truth: &Tally, flows: Option<u64>) {
    if let Some(flows) = flows {
        assert_eq!(got.flows, flows, "{who}: flow count");
    }
    assert_eq!(got.packets, truth.packets, "{who}: total packets");
    assert_eq!(got.bytes, truth.bytes, "{who}: total bytes");
    assert_eq!(got.hosts.len(), truth.hosts.len(), "{who}: hosts");
    for (ip, want) in &truth.hosts {
        assert_eq!(
            got.hosts.get(ip),
            Some(want),
            "{who}: host {ip} (in, out) bytes"
        );
    }
}

struct Replay {
    records: Vec<FlowRecord>,
    exported: u64,
    dropped: u64,
    channel_full: u64,
    pressure: u64,
}

/// Replays the capture through one flow cache (one shard) into `exporter`.
/// Raw records: pcap_file's checked reader refuses an `orig_len` above the
/// header's snap length, which every long frame of a truncated capture has.
fn replay(capture: &Path, exporter: &FlowExporter) -> Replay {
    let file = std::fs::File::open(capture).expect("synthetic capture");
    let mut pcap = pcap_file::pcap::PcapReader::new(file).expect("pcap header");
    let stats = Arc::new(FlowStats::default());
    let mut cache = FlowCache::new(&FlowCacheConfig::default(), stats.clone());
    let mut sink = exporter.sink(stats.clone());
    let mut records = Vec::new();
    let mut facts = FrameFacts::default();
    let mut n = 0u64;
    let mut emit = |r: FlowRecord, sink: &mut xdpacct::export::FlowSink| {
        records.push(r);
        sink.push(r);
    };
    assert_eq!(
        pcap.header().ts_resolution,
        pcap_file::TsResolution::MicroSecond
    );
    while let Some(pkt) = pcap.next_raw_packet() {
        let pkt = pkt.expect("pcap record");
        let now_ms = u64::from(pkt.ts_sec) * 1000 + u64::from(pkt.ts_frac) / 1000;
        let _ = parse_frame(&pkt.data, &mut facts);
        assert!(
            !matches!(facts.addrs, L3Addrs::None),
            "frame {n} has no IP addresses"
        );
        let (_, dst) = ips(facts.addrs);
        let direction = u8::from(!is_local(dst)); // 0 = into the customer network
        cache.update(
            7,
            &facts,
            u64::from(pkt.orig_len),
            direction,
            now_ms,
            &mut |r| emit(r, &mut sink),
        );
        n += 1;
        if n % 64 == 0 {
            cache.expire(now_ms, &mut |r| emit(r, &mut sink));
            sink.tick(now_ms);
        }
    }
    cache.flush_all(&mut |r| emit(r, &mut sink));
    sink.flush();
    drop(sink);
    let es = exporter.stats();
    // Wait until the exporter has taken everything.
    let deadline = Instant::now() + Duration::from_secs(30);
    while es.records_received.get() < stats.records_queued.get() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    Replay {
        exported: es.records_exported.get(),
        dropped: es.records_dropped_send_error.get(),
        channel_full: stats.records_dropped_channel_full.get(),
        pressure: stats.evicted_pressure.get(),
        records,
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// nfdump's view of the files nfcapd wrote.
fn nfdump_tally(dir: &Path) -> Tally {
    let out = run(Command::new("nfdump").arg("-R").arg(dir).args([
        "-q",
        "-N",
        "-6",
        "-o",
        // Not %ter: nfdump 1.7.1 prints its milliseconds modulo 100
        // (1700000000.100 as 1700000000.000, while %te and %td are right).
        "fmt:%sa|%da|%pkt|%byt|%tsr|%td",
    ]));
    let mut t = Tally::default();
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('|').map(str::trim).collect();
        assert_eq!(f.len(), 6, "nfdump line {line:?}");
        let ip = |s: &str| s.parse::<IpAddr>().unwrap_or_else(|e| panic!("{s:?}: {e}"));
        let num = |s: &str| s.parse::<u64>().unwrap_or_else(|e| panic!("{s:?}: {e}"));
        t.add(ip(f[0]), ip(f[1]), num(f[2]), num(f[3]));
        t.first_ms += u128::from(secs_to_ms(f[4]));
        t.last_ms += u128::from(secs_to_ms(f[4]) + secs_to_ms(f[5]));
    }
    t
}

/// "1700000000.123" (nfdump's %tsr) to 1700000000123.
fn secs_to_ms(s: &str) -> u64 {
    let (secs, frac) = s.split_once('.').unwrap_or((s, "0"));
    let frac = format!("{frac:0<3}");
    let ms = secs
        .parse::<u64>()
        .and_then(|x| frac[..3].parse::<u64>().map(|f| x * 1000 + f));
    ms.unwrap_or_else(|e| panic!("nfdump time {s:?}: {e}"))
}

/// pmacct's print plugin output, aggregated by src_host, dst_host.
fn pmacct_tally(csv: &Path) -> Tally {
    let out = std::fs::read_to_string(csv).unwrap_or_else(|e| panic!("{}: {e}", csv.display()));
    let mut lines = out.lines();
    let header_line = lines.next().expect("pmacct csv header");
    let header: Vec<&str> = header_line.split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h.trim() == name)
            .unwrap_or_else(|| panic!("pmacct column {name} in {header:?}"))
    };
    let (sa, da, pk, by) = (col("SRC_IP"), col("DST_IP"), col("PACKETS"), col("BYTES"));
    let mut t = Tally::default();
    // Each purge appends a header and its rows.
    for line in lines.filter(|l| !l.trim().is_empty() && *l != header_line) {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap_or_else(|e| panic!("{s:?}: {e}"));
        let num = |s: &str| s.parse::<u64>().unwrap_or_else(|e| panic!("{s:?}: {e}"));
        t.add(ip(f[sa]), ip(f[da]), num(f[pk]), num(f[by]));
    }
    t
}

/// Encodes `records` as the exporter does and wraps each packet in
/// Ethernet/IPv4/UDP to `port`, for tshark.
fn write_export_pcap(path: &Path, version: Version, records: &[FlowRecord], port: u16) -> usize {
    let mut enc = Encoder::new(&EncoderConfig {
        version,
        ..EncoderConfig::default()
    });
    let mut packets: Vec<Vec<u8>> = Vec::new();
    let mut now = 0;
    for r in records {
        now = r.last_ms.max(now);
        enc.push(r, now, &mut |p, _| packets.push(p.to_vec()));
    }
    enc.flush(now, &mut |p, _| packets.push(p.to_vec()));
    let file = std::fs::File::create(path).expect("create pcap");
    let mut w = pcap_file::pcap::PcapWriter::new(file).expect("pcap writer");
    for (i, p) in packets.iter().enumerate() {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        let total = (20 + 8 + p.len()) as u16;
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1,
        ];
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip[4..6].copy_from_slice(&(i as u16).to_be_bytes());
        let mut sum: u32 = ip
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&40000u16.to_be_bytes());
        f.extend_from_slice(&port.to_be_bytes());
        f.extend_from_slice(&((8 + p.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]); // no UDP checksum (allowed over IPv4)
        f.extend_from_slice(p);
        let ts = Duration::from_millis(now) + Duration::from_micros(i as u64);
        w.write_packet(&pcap_file::pcap::PcapPacket::new(ts, f.len() as u32, &f))
            .expect("write");
    }
    packets.len()
}

/// tshark must dissect every export packet, with no malformed packet and
/// no expert error; the flows it sees must add up to the truth.
fn check_tshark(dir: &Path, version: Version, records: &[FlowRecord], truth: &Tally) {
    let pcap = dir.join(format!("export-v{}.pcap", version.number()));
    let n = write_export_pcap(&pcap, version, records, 2055);
    let decode_as = ["-d", "udp.port==2055,cflow"];
    let bad = run(Command::new("tshark")
        .arg("-r")
        .arg(&pcap)
        .args(decode_as)
        .args([
            "-Y",
            "_ws.malformed || _ws.expert.severity >= error || !cflow",
        ]));
    assert!(bad.trim().is_empty(), "tshark flags these packets:\n{bad}");
    // Expert info: no errors and no warnings (a short set is a "Malformed" warning).
    let expert = run(Command::new("tshark")
        .arg("-r")
        .arg(&pcap)
        .args(decode_as)
        .args(["-q", "-z", "expert"]));
    assert!(
        !expert.contains("Errors (") && !expert.contains("Warns ("),
        "tshark expert info:\n{expert}"
    );
    let fields = run(Command::new("tshark")
        .arg("-r")
        .arg(&pcap)
        .args(decode_as)
        .args([
            "-T",
            "fields",
            "-E",
            "aggregator=,",
            "-e",
            "cflow.packets",
            "-e",
            "cflow.octets",
        ]));
    let (mut lines, mut pkts, mut bytes) = (0, 0u64, 0u64);
    for line in fields.lines() {
        lines += 1;
        let cols: Vec<&str> = line.split('\t').collect();
        let sum = |s: &str| {
            s.split(',')
                .filter(|x| !x.is_empty())
                .map(|x| x.parse::<u64>().unwrap_or(0))
                .sum::<u64>()
        };
        pkts += sum(cols[0]);
        bytes += sum(cols.get(1).copied().unwrap_or(""));
    }
    assert_eq!(lines, n, "tshark packets");
    assert_eq!(
        (pkts, bytes),
        (truth.packets, truth.bytes),
        "tshark's sum of packets/octets"
    );
}

/// The collectors read UDP as fast as they can; on a loaded 2-core machine
/// two exports at once overflowed nfacctd's socket (99,553 of 100,000 seen).
/// Run one export at a time and let the kernel give the collectors the
/// receive buffers they ask for (`nfcapd -B`, `nfacctd_pipe_size`).
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    common::allow_receive_buffer(8_388_608);
    guard
}

fn collectors_agree_with_truth(version: Version) {
    let _serial = serial();
    for tool in ["nfcapd", "nfdump", "nfacctd", "pmacct", "tshark"] {
        assert!(
            have(tool),
            "{tool} is not installed (apt-get install nfdump pmacct tshark)"
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (capture, truth_path) = common::generate_sample(dir.path());
    let truth = truth(&truth_path);
    let nf_dir = dir.path().join("nfcapd");
    std::fs::create_dir(&nf_dir).expect("mkdir");

    // nfdump 1.7 takes -w <dir> (older releases used -l).
    let nf_port = free_udp_port();
    let mut nfcapd = Daemon::spawn(
        "nfcapd",
        "-TERM",
        &dir.path().join("nfcapd.log"),
        Command::new("nfcapd").arg("-w").arg(&nf_dir).args([
            "-p",
            &nf_port.to_string(),
            "-b",
            "127.0.0.1",
            "-t",
            "3600",
            "-B",
            "4000000",
        ]),
    );
    wait_bound(nf_port, "nfcapd");

    let pm_port = free_udp_port();
    let pm_csv = dir.path().join("pmacct.csv");
    let conf = dir.path().join("nfacctd.conf");
    // The print plugin writes its cache on SIGINT, and earlier (appending)
    // whenever its 16k-entry cache fills. (The memory plugin cannot hand
    // 100k rows to `pmacct -s`: "Failed during write: EAGAIN".)
    std::fs::write(
        &conf,
        format!(
            "daemonize: false\nnfacctd_ip: 127.0.0.1\nnfacctd_port: {pm_port}\n\
             nfacctd_pipe_size: 4000000\nplugins: print[p]\naggregate[p]: src_host, dst_host\n\
             plugin_pipe_size[p]: 67108864\nplugin_buffer_size[p]: 65536\n\
             print_output[p]: csv\nprint_output_file[p]: {}\nprint_refresh_time[p]: 3600\n\
             print_cache_entries[p]: 16411\nprint_output_file_append[p]: true\n",
            pm_csv.display()
        ),
    )
    .expect("write nfacctd.conf");
    let mut nfacctd = Daemon::spawn(
        "nfacctd",
        "-INT",
        &dir.path().join("nfacctd.log"),
        Command::new("nfacctd").arg("-f").arg(&conf),
    );
    wait_bound(pm_port, "nfacctd");

    // A third collector that is down: its sends fail (ECONNREFUSED), it is
    // retried, and the other two get everything.
    let dead_port = free_udp_port();
    let cfg = ExporterConfig {
        collectors: vec![
            format!("127.0.0.1:{nf_port}"),
            format!("127.0.0.1:{pm_port}"),
            format!("127.0.0.1:{dead_port}"),
        ],
        retry_ms: 100,
        encoder: EncoderConfig {
            version,
            domain_id: 42,
            ..EncoderConfig::default()
        },
        clock: ExportClock::Records,
        channel_batches: 4096,
        // A few thousand packets at once would overflow the collectors'
        // socket buffers: pace them.
        max_packets_per_sec: 10_000,
        ..ExporterConfig::default()
    };
    let exporter = FlowExporter::start(&cfg).expect("exporter starts");
    let r = replay(&capture, &exporter);
    let _ = r.exported;
    let es = exporter.stats().clone();
    exporter.shutdown().expect("exporter stops");
    let flows = r.records.len() as u64;
    eprintln!(
        "v{}: {flows} records ({} by cache pressure), {} packets sent, {} exported, {} dropped",
        version.number(),
        r.pressure,
        es.packets_sent.get(),
        es.records_exported.get(),
        r.dropped + r.channel_full
    );
    assert_eq!(r.channel_full, 0);
    assert_eq!(es.records_exported.get(), flows);
    assert_eq!(r.dropped, 0);
    assert!(
        es.send_errors.get() > 0,
        "the dead collector never failed a send"
    );

    // The records themselves add up to the truth.
    let mut own = Tally::default();
    for rec in &r.records {
        let (src, dst) = ips(rec.key.addrs);
        own.add(src, dst, rec.packets, rec.bytes);
        own.first_ms += u128::from(rec.first_ms);
        own.last_ms += u128::from(rec.last_ms);
    }
    assert_matches_truth("flow cache", &own, &truth, Some(flows));

    // Give the collectors a moment to take the last packets in.
    std::thread::sleep(Duration::from_millis(1500));
    nfacctd.stop();
    nfcapd.stop();
    if std::env::var_os("XDPACCT_TEST_LOGS").is_some() {
        for log in ["nfcapd.log", "nfacctd.log"] {
            let text = std::fs::read_to_string(dir.path().join(log)).unwrap_or_default();
            eprintln!("--- {log}\n{text}");
        }
    }
    let pm = pmacct_tally(&pm_csv);
    if std::env::var_os("XDPACCT_TEST_LOGS").is_some() {
        // Exporters and samplers as nfdump recorded them.
        for file in std::fs::read_dir(&nf_dir).into_iter().flatten().flatten() {
            let o = Command::new("nfdump").arg("-E").arg(file.path()).output();
            if let Ok(o) = o {
                eprintln!(
                    "--- nfdump -E {}\n{}",
                    file.path().display(),
                    String::from_utf8_lossy(&o.stdout)
                );
            }
        }
    }
    let nf = nfdump_tally(&nf_dir);
    assert_matches_truth("nfdump", &nf, &truth, Some(flows));
    // Flow start and end times survive to the ms (v9: via sysUptime).
    assert_eq!(
        (nf.first_ms, nf.last_ms),
        (own.first_ms, own.last_ms),
        "nfdump flow times"
    );
    // pmacct aggregates by (src_host, dst_host): no per-flow count to compare.
    assert_matches_truth("pmacct", &pm, &truth, None);
    check_tshark(dir.path(), version, &r.records, &truth);
}

#[test]
fn nfdump_and_pmacct_agree_with_truth_netflow_v9() {
    collectors_agree_with_truth(Version::V9);
}

#[test]
fn nfdump_and_pmacct_agree_with_truth_ipfix() {
    collectors_agree_with_truth(Version::Ipfix);
}

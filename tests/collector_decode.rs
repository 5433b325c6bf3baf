//! Flow input decoding (src/collector): hand-built NetFlow v5, v9, IPFIX
//! and sFlow v5 datagrams, checked field by field against the values the
//! fixture was built from. The fixtures were also written to a pcap and
//! dissected with `tshark -V -d udp.port==2055,cflow -d udp.port==6343,sflow`
//! (see `write_fixtures_pcap`, run with COLLECTOR_FIXTURES_PCAP=path), which
//! agreed on every field.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use xdpacct::collector::{
    ByteLayer, Collector, CollectorConfig, DropReason, ExporterConfig, FlowDirection, FlowProtocol,
    FlowRecord,
};
use xdpacct::wire::L3Addrs;

// ---------------------------------------------------------------- builder

/// Big-endian byte builder.
#[derive(Clone, Default)]
struct B(Vec<u8>);

impl B {
    fn new() -> B {
        B(Vec::new())
    }
    fn u8(mut self, v: u8) -> B {
        self.0.push(v);
        self
    }
    fn u16(mut self, v: u16) -> B {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u32(mut self, v: u32) -> B {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u64(mut self, v: u64) -> B {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn bytes(mut self, v: &[u8]) -> B {
        self.0.extend_from_slice(v);
        self
    }
    /// A v9 FlowSet / IPFIX set: id, length (header included), body.
    fn set(self, id: u16, body: B) -> B {
        self.u16(id).u16(body.0.len() as u16 + 4).bytes(&body.0)
    }
    /// An sFlow element: tag, length, body.
    fn tlv(self, tag: u32, body: B) -> B {
        self.u32(tag).u32(body.0.len() as u32).bytes(&body.0)
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

const R1: [u8; 4] = [192, 0, 2, 1];
const LOCAL: [u8; 4] = [198, 51, 100, 7];
const REMOTE: [u8; 4] = [203, 0, 113, 9];
const V6A: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
const V6B: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9,
];
const UNIX: u32 = 1_700_000_000;

fn from() -> SocketAddr {
    SocketAddr::from((R1, 40000))
}

fn collector() -> Collector {
    Collector::new(CollectorConfig::default()).unwrap()
}

/// Feeds datagrams at `now`, returning the records.
fn feed(c: &mut Collector, now: Instant, dgrams: &[&[u8]]) -> Vec<FlowRecord> {
    let mut v = Vec::new();
    for d in dgrams {
        c.datagram(from(), now, d, &mut |r: &FlowRecord| v.push(*r));
    }
    v
}

fn exporter_stats(c: &Collector) -> xdpacct::collector::ExporterStats {
    let id = c.exporter_id(R1.into()).expect("exporter known");
    c.exporters()
        .find(|e| e.0 == id)
        .map(|e| e.3.clone())
        .unwrap()
}

fn total_dropped(c: &Collector) -> u64 {
    c.stats().dropped.iter().sum()
}

// ---------------------------------------------------------------- NetFlow v5

fn v5_header(count: u16, seq: u32, sampling: u16) -> B {
    B::new()
        .u16(5)
        .u16(count)
        .u32(65_536) // sys_uptime ms
        .u32(UNIX)
        .u32(250_000_000) // unix_nsecs: 250 ms
        .u32(seq)
        .u8(1) // engine type
        .u8(2) // engine id
        .u16(sampling)
}

#[allow(clippy::too_many_arguments)]
fn v5_record(src: [u8; 4], dst: [u8; 4], pkts: u32, bytes: u32, sp: u16, dp: u16, proto: u8) -> B {
    B::new()
        .bytes(&src)
        .bytes(&dst)
        .u32(0) // next hop
        .u16(3) // input
        .u16(5) // output
        .u32(pkts)
        .u32(bytes)
        .u32(32_768) // first (uptime ms)
        .u32(49_152) // last
        .u16(sp)
        .u16(dp)
        .u8(0)
        .u8(0x1b) // tcp flags
        .u8(proto)
        .u8(0x28) // tos
        .u16(65000) // src as
        .u16(64512) // dst as
        .u8(24)
        .u8(24)
        .u16(0)
}

fn v5_datagram(seq: u32) -> B {
    v5_header(2, seq, 0x4000 | 100)
        .bytes(&v5_record(REMOTE, LOCAL, 10, 4000, 443, 50000, 6).0)
        .bytes(&v5_record(LOCAL, REMOTE, 1, 84, 0, 0x0301, 1).0)
}

#[test]
fn netflow_v5_records_scaled_by_the_header_rate() {
    let mut c = collector();
    let recs = feed(&mut c, Instant::now(), &[&v5_datagram(100).0]);
    assert_eq!(recs.len(), 2);
    let r = &recs[0];
    assert_eq!(r.protocol_source, Some(FlowProtocol::NetflowV5));
    assert_eq!(
        r.addrs,
        L3Addrs::V4 {
            src: REMOTE,
            dst: LOCAL
        }
    );
    assert_eq!((r.src_port, r.dst_port, r.protocol), (443, 50000, 6));
    assert_eq!((r.tcp_flags, r.tos), (0x1b, 0x28));
    assert_eq!((r.input_if, r.output_if), (3, 5));
    assert_eq!((r.src_as, r.dst_as), (65000, 64512));
    assert_eq!(r.sampling_rate, 100);
    assert!(!r.default_rate);
    assert_eq!(r.sampled_packets, 10);
    assert_eq!(r.packets, 1000);
    assert_eq!(r.bytes(ByteLayer::L3), (400_000, true));
    // L2 is an estimate: + 14 per packet; L2+FCS + 18.
    assert_eq!(r.bytes(ByteLayer::L2), (400_000 + 14 * 1000, false));
    assert_eq!(r.bytes(ByteLayer::L2Fcs), (400_000 + 18 * 1000, false));
    // Export time 1_700_000_000.250 s at uptime 65.536 s; first at 32.768 s.
    let export_ms = u64::from(UNIX) * 1000 + 250;
    assert_eq!(r.first_ms, export_ms - (65_536 - 32_768));
    assert_eq!(r.last_ms, export_ms - (65_536 - 49_152));
    // ICMP the Cisco way: dst port 0x0301 = type 3 code 1.
    let r = &recs[1];
    assert_eq!((r.protocol, r.src_port, r.dst_port), (1, 3, 1));
    assert_eq!(c.stats().datagrams(FlowProtocol::NetflowV5), 1);
    assert_eq!(c.stats().records(FlowProtocol::NetflowV5), 2);
    assert_eq!(total_dropped(&c), 0);
}

#[test]
fn netflow_v5_sequence_counts_flows() {
    let mut c = collector();
    let now = Instant::now();
    // 2 flows each: 100, 102 in order; 107 means 3 flows lost.
    feed(
        &mut c,
        now,
        &[
            &v5_datagram(100).0,
            &v5_datagram(102).0,
            &v5_datagram(107).0,
        ],
    );
    let s = exporter_stats(&c);
    assert_eq!(s.lost_records, 3);
    assert_eq!(s.restarts, 0);
}

// ---------------------------------------------------------------- NetFlow v9

fn v9_header(seq: u32, source_id: u32) -> B {
    B::new()
        .u16(9)
        .u16(0) // count (not relied upon)
        .u32(100_000) // sys_uptime
        .u32(UNIX)
        .u32(seq)
        .u32(source_id)
}

/// Template 256: IPv4 flow.
fn v9_template_v4() -> B {
    let fields: &[(u16, u16)] = &[
        (8, 4),  // IPV4_SRC_ADDR
        (12, 4), // IPV4_DST_ADDR
        (7, 2),  // L4_SRC_PORT
        (11, 2), // L4_DST_PORT
        (4, 1),  // PROTOCOL
        (5, 1),  // SRC_TOS
        (6, 1),  // TCP_FLAGS
        (10, 2), // INPUT_SNMP
        (14, 2), // OUTPUT_SNMP
        (2, 4),  // IN_PKTS
        (1, 8),  // IN_BYTES
        (22, 4), // FIRST_SWITCHED
        (21, 4), // LAST_SWITCHED
        (16, 4), // SRC_AS
        (17, 4), // DST_AS
        (61, 1), // DIRECTION
    ];
    let mut b = B::new().u16(256).u16(fields.len() as u16);
    for &(t, l) in fields {
        b = b.u16(t).u16(l);
    }
    b
}

fn v9_record_v4(src: [u8; 4], dst: [u8; 4], pkts: u32, bytes: u64, dir: u8) -> B {
    B::new()
        .bytes(&src)
        .bytes(&dst)
        .u16(51000)
        .u16(53)
        .u8(17)
        .u8(0)
        .u8(0)
        .u16(7)
        .u16(9)
        .u32(pkts)
        .u64(bytes)
        .u32(90_000)
        .u32(99_000)
        .u32(64500)
        .u32(13335)
        .u8(dir)
}

fn v9_data_v4() -> B {
    B::new()
        .bytes(&v9_record_v4(LOCAL, REMOTE, 3, 300, 1).0)
        .bytes(&v9_record_v4(REMOTE, LOCAL, 5, 1500, 0).0)
        .bytes(&[0, 0]) // padding to 4 bytes
}

/// Sets a v9 header's record count (templates + records), which tshark
/// checks.
fn with_count(mut b: B, n: u16) -> B {
    b.0[2..4].copy_from_slice(&n.to_be_bytes());
    b
}

fn v9_full(seq: u32) -> B {
    let b = v9_header(seq, 7)
        .set(0, v9_template_v4())
        .set(256, v9_data_v4());
    with_count(b, 3)
}

#[test]
fn netflow_v9_template_then_data() {
    let mut c = collector();
    let recs = feed(&mut c, Instant::now(), &[&v9_full(1).0]);
    assert_eq!(recs.len(), 2, "{:?}", c.stats());
    let r = &recs[0];
    assert_eq!(r.protocol_source, Some(FlowProtocol::NetflowV9));
    assert_eq!(
        r.addrs,
        L3Addrs::V4 {
            src: LOCAL,
            dst: REMOTE
        }
    );
    assert_eq!((r.src_port, r.dst_port, r.protocol), (51000, 53, 17));
    assert_eq!((r.input_if, r.output_if), (7, 9));
    assert_eq!((r.packets, r.l3_bytes), (3, 300));
    assert_eq!((r.src_as, r.dst_as), (64500, 13335));
    assert_eq!(r.direction, FlowDirection::Egress);
    assert_eq!(recs[1].direction, FlowDirection::Ingress);
    let export_ms = u64::from(UNIX) * 1000;
    assert_eq!(r.first_ms, export_ms - 10_000);
    assert_eq!(r.last_ms, export_ms - 1_000);
    // No rate anywhere: the default, counted.
    assert_eq!(r.sampling_rate, 1);
    assert!(r.default_rate);
    assert_eq!(c.stats().records_default_rate, 2);
    assert_eq!(c.stats().templates_learnt, 1);
    assert_eq!(c.stats().templates_active, 1);
    assert_eq!(total_dropped(&c), 0, "{:?}", c.stats());
}

#[test]
fn netflow_v9_template_refresh_is_not_a_change() {
    let mut c = collector();
    feed(&mut c, Instant::now(), &[&v9_full(1).0, &v9_full(2).0]);
    assert_eq!(c.stats().templates_learnt, 1);
    assert_eq!(c.stats().templates_refreshed, 1);
}

#[test]
fn netflow_v9_data_before_template_is_held_then_decoded() {
    let mut c = collector();
    let now = Instant::now();
    let data = v9_header(1, 7).set(256, v9_data_v4());
    assert!(feed(&mut c, now, &[&data.0]).is_empty());
    assert_eq!(c.stats().sets_held, 1);
    assert_eq!(c.stats().pending_sets, 1);
    let tmpl = v9_header(2, 7).set(0, v9_template_v4());
    let recs = feed(&mut c, now + Duration::from_millis(500), &[&tmpl.0]);
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[1].l3_bytes, 1500);
    assert_eq!(c.stats().sets_released, 1);
    assert_eq!(c.stats().pending_sets, 0);
    assert_eq!(c.stats().pending_bytes, 0);
    assert_eq!(total_dropped(&c), 0);
}

#[test]
fn netflow_v9_held_data_expires_counted_as_no_template() {
    let mut c = collector();
    let now = Instant::now();
    let data = v9_header(1, 7).set(256, v9_data_v4());
    feed(&mut c, now, &[&data.0]);
    // A template for another source id does not release it.
    let other = v9_header(1, 8).set(0, v9_template_v4());
    assert!(feed(&mut c, now, &[&other.0]).is_empty());
    c.maintain(now + Duration::from_secs(6), &mut |_| {});
    assert_eq!(c.stats().dropped(DropReason::NoTemplate), 1);
    assert_eq!(c.stats().pending_sets, 0);
    // The template now comes too late: nothing is decoded twice.
    let tmpl = v9_header(2, 7).set(0, v9_template_v4());
    assert!(feed(&mut c, now + Duration::from_secs(6), &[&tmpl.0]).is_empty());
}

#[test]
fn netflow_v9_template_id_reused_with_another_layout() {
    let mut c = collector();
    let now = Instant::now();
    feed(&mut c, now, &[&v9_full(1).0]);
    // Template 256 again, now IPv6 src/dst + IN_BYTES(4) + IN_PKTS(4).
    let t6 = B::new()
        .u16(256)
        .u16(4)
        .u16(27)
        .u16(16)
        .u16(28)
        .u16(16)
        .u16(1)
        .u16(4)
        .u16(2)
        .u16(4);
    let d6 = B::new().bytes(&V6A).bytes(&V6B).u32(9000).u32(6);
    let dg = v9_header(2, 7).set(0, t6).set(256, d6);
    let recs = feed(&mut c, now, &[&dg.0]);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].addrs, L3Addrs::V6 { src: V6A, dst: V6B });
    assert_eq!((recs[0].packets, recs[0].l3_bytes), (6, 9000));
    assert_eq!(c.stats().templates_learnt, 2);
    assert_eq!(c.stats().templates_active, 1);
}

/// v9 options template 257: scope System (4 bytes), SAMPLING_INTERVAL (34,
/// 4 bytes), SAMPLING_ALGORITHM (35, 1 byte); one options record.
fn v9_sampling_options(rate: u32) -> B {
    let tmpl = B::new()
        .u16(257)
        .u16(4) // scope length in bytes
        .u16(8) // option length in bytes
        .u16(1) // scope: System
        .u16(4)
        .u16(34)
        .u16(4)
        .u16(35)
        .u16(1)
        .u16(0); // padding
    let data = B::new().u32(0).u32(rate).u8(1).bytes(&[0, 0, 0]);
    with_count(v9_header(1, 7).set(1, tmpl).set(257, data), 2)
}

#[test]
fn netflow_v9_options_give_the_domain_rate() {
    let mut c = collector();
    let now = Instant::now();
    let recs = feed(&mut c, now, &[&v9_sampling_options(1000).0, &v9_full(2).0]);
    assert_eq!(recs.len(), 2);
    assert_eq!(c.stats().options_records, 1);
    assert_eq!(recs[0].sampling_rate, 1000);
    assert!(!recs[0].default_rate);
    assert_eq!((recs[0].packets, recs[0].l3_bytes), (3000, 300_000));
    assert_eq!(exporter_stats(&c).rate_in_use, 1000);
    assert_eq!(c.stats().records_default_rate, 0);
    assert_eq!(total_dropped(&c), 0, "{:?}", c.stats());
}

#[test]
fn netflow_v9_sampler_ids_and_rates_in_records() {
    let mut c = collector();
    let now = Instant::now();
    // Options: scope Interface(4), FLOW_SAMPLER_ID(48, 1 byte),
    // FLOW_SAMPLER_RANDOM_INTERVAL(50, 4 bytes): samplers 5 → 250, 6 → 4000.
    let tmpl = B::new()
        .u16(300)
        .u16(4)
        .u16(8)
        .u16(2)
        .u16(4)
        .u16(48)
        .u16(1)
        .u16(50)
        .u16(4)
        .u16(0);
    let odata = B::new()
        .u32(1)
        .u8(5)
        .u32(250)
        .u32(2)
        .u8(6)
        .u32(4000)
        .bytes(&[0, 0]);
    // Data template 301: src, dst, IN_PKTS, IN_BYTES(4), FLOW_SAMPLER_ID(1),
    // SAMPLING_INTERVAL(34, 4).
    let dt = B::new()
        .u16(301)
        .u16(6)
        .u16(8)
        .u16(4)
        .u16(12)
        .u16(4)
        .u16(2)
        .u16(4)
        .u16(1)
        .u16(4)
        .u16(48)
        .u16(1)
        .u16(34)
        .u16(4);
    let rec = |sampler: u8, interval: u32| {
        B::new()
            .bytes(&LOCAL)
            .bytes(&REMOTE)
            .u32(2)
            .u32(100)
            .u8(sampler)
            .u32(interval)
    };
    let data = B::new()
        .bytes(&rec(5, 0).0) // sampler 5: 250
        .bytes(&rec(6, 0).0) // sampler 6: 4000
        .bytes(&rec(6, 64).0) // its own interval wins: 64
        .bytes(&rec(9, 0).0) // unknown sampler, no domain rate: default
        .bytes(&[0, 0, 0]);
    let dg = v9_header(1, 7)
        .set(1, tmpl)
        .set(300, odata)
        .set(0, dt)
        .set(301, data);
    let recs = feed(&mut c, now, &[&dg.0]);
    let rates: Vec<_> = recs
        .iter()
        .map(|r| (r.sampling_rate, r.packets, r.l3_bytes))
        .collect();
    assert_eq!(
        rates,
        [
            (250, 500, 25_000),
            (4000, 8000, 400_000),
            (64, 128, 6400),
            (1, 2, 100)
        ]
    );
    assert!(recs[3].default_rate);
    assert_eq!(c.stats().options_records, 2);
}

#[test]
fn configured_rate_overrides_what_the_exporter_says() {
    let cfg = CollectorConfig {
        exporters: vec![ExporterConfig {
            address: R1.into(),
            name: "edge1".into(),
            sampling_rate: Some(2048),
            interfaces: BTreeMap::from([(7, "xe-0/0/7".to_string())]),
        }],
        ..Default::default()
    };
    let mut c = Collector::new(cfg).unwrap();
    let recs = feed(
        &mut c,
        Instant::now(),
        &[
            &v9_sampling_options(1000).0,
            &v9_full(2).0,
            &v5_datagram(1).0,
        ],
    );
    assert_eq!(recs.len(), 4);
    assert!(recs
        .iter()
        .all(|r| r.sampling_rate == 2048 && !r.default_rate));
    assert_eq!(recs[0].packets, 3 * 2048);
    let mut label = String::new();
    c.interface_label(recs[0].exporter, recs[0].input_if, &mut label);
    assert_eq!(label, "edge1:xe-0/0/7");
    c.interface_label(recs[0].exporter, recs[0].output_if, &mut label);
    assert_eq!(label, "edge1:9");
}

#[test]
fn netflow_v9_sequence_loss_wrap_and_restart() {
    let mut c = collector();
    let now = Instant::now();
    let seqs = [
        0xffff_fffe,
        0xffff_ffff,
        0,
        1,
        4,
        3,
        5,
        2_000_000_000,
        2_000_000_001,
    ];
    for s in seqs {
        feed(&mut c, now, &[&v9_full(s).0]);
    }
    let s = exporter_stats(&c);
    // 4 after 1: 2 lost (2, 3); then 3 arrives late: 1 lost in the end.
    assert_eq!(s.lost_datagrams, 1);
    assert_eq!(s.late, 1);
    // The jump to 2e9 is a restart, not 2 billion lost.
    assert_eq!(s.restarts, 1);
    assert_eq!(s.records, 2 * seqs.len() as u64);
}

#[test]
fn netflow_v9_reserved_and_bad_sets_are_counted() {
    let mut c = collector();
    let now = Instant::now();
    let dg = v9_header(1, 7).set(100, B::new().u32(0));
    feed(&mut c, now, &[&dg.0]);
    assert_eq!(c.stats().dropped(DropReason::ReservedSet), 1);
    // Set length pointing past the end.
    let mut dg = v9_full(2);
    let at = 20 + 2;
    dg.0[at..at + 2].copy_from_slice(&4000u16.to_be_bytes());
    feed(&mut c, now, &[&dg.0]);
    assert_eq!(c.stats().dropped(DropReason::BadLength), 1);
    // Zero set length.
    let dg = v9_header(3, 7).u16(0).u16(0).u32(0);
    feed(&mut c, now, &[&dg.0]);
    assert_eq!(c.stats().dropped(DropReason::BadLength), 2);
    // Zero-length field in a v9 template.
    let t = B::new().u16(260).u16(2).u16(8).u16(4).u16(12).u16(0);
    feed(&mut c, now, &[&v9_header(4, 7).set(0, t).0]);
    assert_eq!(c.stats().dropped(DropReason::BadTemplate), 1);
}

// ---------------------------------------------------------------- IPFIX

fn ipfix(seq: u32, domain: u32, sets: B) -> B {
    B::new()
        .u16(10)
        .u16(16 + sets.len() as u16)
        .u32(UNIX)
        .u32(seq)
        .u32(domain)
        .bytes(&sets.0)
}

/// Template 400: IPv6 src/dst, an enterprise field (PEN 2636, 4 bytes),
/// interfaceName (82, variable), octetDeltaCount(8), packetDeltaCount(8),
/// flowStartMilliseconds, flowEndMilliseconds, protocol, ports, vlanId.
fn ipfix_template6() -> B {
    B::new()
        .u16(400)
        .u16(11)
        .u16(27)
        .u16(16)
        .u16(28)
        .u16(16)
        .u16(0x8000 | 137)
        .u16(4)
        .u32(2636)
        .u16(82)
        .u16(0xffff)
        .u16(1)
        .u16(8)
        .u16(2)
        .u16(8)
        .u16(152)
        .u16(8)
        .u16(153)
        .u16(8)
        .u16(4)
        .u16(1)
        .u16(7)
        .u16(2)
        .u16(11)
        .u16(2)
}

fn ipfix_record6(name: &[u8], bytes: u64, pkts: u64) -> B {
    let mut b = B::new().bytes(&V6A).bytes(&V6B).u32(0xdead_beef);
    b = if name.len() < 255 {
        b.u8(name.len() as u8)
    } else {
        b.u8(255).u16(name.len() as u16)
    };
    b.bytes(name)
        .u64(bytes)
        .u64(pkts)
        .u64(1_700_000_000_123)
        .u64(1_700_000_001_456)
        .u8(58)
        .u16(0)
        .u16(0x8000) // ICMPv6 echo request the Cisco way: type 128 code 0
}

#[test]
fn ipfix_varlen_and_enterprise_fields() {
    let mut c = collector();
    let long = vec![b'x'; 300];
    let data = B::new()
        .bytes(&ipfix_record6(b"ge-0/0/0", 1234, 3).0)
        .bytes(&ipfix_record6(b"", 99, 1).0)
        .bytes(&ipfix_record6(&long, 5000, 4).0);
    let dg = ipfix(0, 1, B::new().set(2, ipfix_template6()).set(400, data));
    let recs = feed(&mut c, Instant::now(), &[&dg.0]);
    assert_eq!(recs.len(), 3, "{:?}", c.stats());
    let r = &recs[0];
    assert_eq!(r.protocol_source, Some(FlowProtocol::Ipfix));
    assert_eq!(r.addrs, L3Addrs::V6 { src: V6A, dst: V6B });
    assert_eq!((r.packets, r.l3_bytes), (3, 1234));
    assert_eq!((r.protocol, r.src_port, r.dst_port), (58, 128, 0));
    assert_eq!(
        (r.first_ms, r.last_ms),
        (1_700_000_000_123, 1_700_000_001_456)
    );
    assert_eq!((recs[1].packets, recs[1].l3_bytes), (1, 99));
    assert_eq!((recs[2].packets, recs[2].l3_bytes), (4, 5000));
    assert_eq!(total_dropped(&c), 0, "{:?}", c.stats());
    // A varlen length past the end of the set is a bad record.
    let mut bad = ipfix_record6(b"abc", 1, 1);
    bad.0[36] = 200;
    let dg = ipfix(3, 1, B::new().set(400, bad));
    assert!(feed(&mut c, Instant::now(), &[&dg.0]).is_empty());
    assert_eq!(c.stats().dropped(DropReason::BadRecord), 1);
}

fn ipfix_template4(id: u16) -> B {
    // src, dst, octetDeltaCount(4), packetDeltaCount(4), selectorId(302, 2)
    B::new()
        .u16(id)
        .u16(5)
        .u16(8)
        .u16(4)
        .u16(12)
        .u16(4)
        .u16(1)
        .u16(4)
        .u16(2)
        .u16(4)
        .u16(302)
        .u16(2)
}

fn ipfix_record4(bytes: u32, pkts: u32, selector: u16) -> B {
    B::new()
        .bytes(&REMOTE)
        .bytes(&LOCAL)
        .u32(bytes)
        .u32(pkts)
        .u16(selector)
}

#[test]
fn ipfix_options_give_rates_per_selector() {
    let mut c = collector();
    // Options template 500: scope selectorId (302, 2), then
    // samplingPacketInterval (305, 4) and samplingPacketSpace (306, 4).
    let ot = B::new()
        .u16(500)
        .u16(3)
        .u16(1)
        .u16(302)
        .u16(2)
        .u16(305)
        .u16(4)
        .u16(306)
        .u16(4);
    // Selector 1: 1 in 100 (interval 1, space 99); selector 2: 1 in 10.
    let od = B::new().u16(1).u32(1).u32(99).u16(2).u32(1).u32(9);
    let data = B::new()
        .bytes(&ipfix_record4(1000, 2, 1).0)
        .bytes(&ipfix_record4(500, 1, 2).0);
    let dg = ipfix(
        0,
        1,
        B::new()
            .set(3, ot)
            .set(500, od)
            .set(2, ipfix_template4(401))
            .set(401, data),
    );
    let recs = feed(&mut c, Instant::now(), &[&dg.0]);
    let got: Vec<_> = recs
        .iter()
        .map(|r| (r.sampling_rate, r.packets, r.l3_bytes))
        .collect();
    assert_eq!(got, [(100, 200, 100_000), (10, 10, 5000)]);
    assert_eq!(c.stats().options_records, 2);
}

#[test]
fn ipfix_sequence_counts_data_records() {
    let mut c = collector();
    let now = Instant::now();
    let two = || {
        B::new()
            .bytes(&ipfix_record4(10, 1, 0).0)
            .bytes(&ipfix_record4(10, 1, 0).0)
    };
    let first = ipfix(
        0xffff_fffe,
        1,
        B::new().set(2, ipfix_template4(401)).set(401, two()),
    );
    // 0xfffffffe + 2 wraps to 0: in order.
    let second = ipfix(0, 1, B::new().set(401, two()));
    // Expected 2; 10 means 8 records lost.
    let third = ipfix(10, 1, B::new().set(401, two()));
    feed(&mut c, now, &[&first.0, &second.0, &third.0]);
    let s = exporter_stats(&c);
    assert_eq!(s.lost_records, 8);
    assert_eq!(s.restarts, 0);
    // Exporter restart: back to 0 records.
    let again = ipfix(0, 1, B::new().set(2, ipfix_template4(401)).set(401, two()));
    feed(&mut c, now, &[&again.0]);
    let s = exporter_stats(&c);
    assert_eq!((s.lost_records, s.restarts), (8, 1));
}

#[test]
fn ipfix_template_withdrawal() {
    let mut c = collector();
    let now = Instant::now();
    let data = || B::new().bytes(&ipfix_record4(10, 1, 0).0);
    let t = ipfix(
        0,
        1,
        B::new()
            .set(2, ipfix_template4(401))
            .set(2, ipfix_template4(402)),
    );
    feed(&mut c, now, &[&t.0]);
    assert_eq!(c.stats().templates_active, 2);
    // Withdraw 401 (field count 0): its data is then held, 402 still works.
    let w = ipfix(0, 1, B::new().set(2, B::new().u16(401).u16(0)));
    let d = ipfix(0, 1, B::new().set(401, data()).set(402, data()));
    let recs = feed(&mut c, now, &[&w.0, &d.0]);
    assert_eq!(recs.len(), 1);
    assert_eq!(c.stats().templates_withdrawn, 1);
    assert_eq!(c.stats().sets_held, 1);
    // Withdraw all data templates of the domain (template id = set id 2).
    let all = ipfix(0, 1, B::new().set(2, B::new().u16(2).u16(0)));
    feed(&mut c, now, &[&all.0]);
    assert_eq!(c.stats().templates_withdrawn, 2);
    assert_eq!(c.stats().templates_active, 0);
}

#[test]
fn ipfix_header_length_must_match() {
    let mut c = collector();
    let mut dg = ipfix(0, 1, B::new().set(2, ipfix_template4(401)));
    dg.0.extend_from_slice(&[0; 4]);
    feed(&mut c, Instant::now(), &[&dg.0]);
    assert_eq!(c.stats().dropped(DropReason::BadLength), 1);
    assert_eq!(c.stats().templates_active, 0);
}

// ---------------------------------------------------------------- sFlow v5

/// Ethernet + 802.1Q (VLAN 42) + IPv4 (total length 1000) + TCP header.
fn eth_vlan_ipv4_tcp() -> Vec<u8> {
    let mut f = vec![
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb,
    ];
    f.extend_from_slice(&[0x81, 0x00, 0x00, 42, 0x08, 0x00]);
    f.extend_from_slice(&[0x45, 0x10, 0x03, 0xe8, 0, 1, 0x40, 0, 64, 6, 0, 0]);
    f.extend_from_slice(&REMOTE);
    f.extend_from_slice(&LOCAL);
    // TCP 443 -> 50000, flags ACK|PSH.
    f.extend_from_slice(&[
        0x01, 0xbb, 0xc3, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff,
    ]);
    f.extend_from_slice(&[0, 0, 0, 0]);
    f.extend_from_slice(&[0xa5; 32]); // payload bytes the agent copied
    f
}

/// Ethernet + QinQ (0x88a8 100, 0x8100 200) + IPv6 (payload 200) + UDP.
fn eth_qinq_ipv6_udp() -> Vec<u8> {
    let mut f = vec![
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb,
    ];
    f.extend_from_slice(&[0x88, 0xa8, 0x00, 100, 0x81, 0x00, 0x00, 200, 0x86, 0xdd]);
    f.extend_from_slice(&[0x60, 0, 0, 0, 0x00, 200, 17, 64]);
    f.extend_from_slice(&V6A);
    f.extend_from_slice(&V6B);
    f.extend_from_slice(&[0x13, 0x88, 0x00, 0x35, 0x00, 200, 0, 0]);
    f
}

fn raw_header(proto: u32, frame_len: u32, header: &[u8]) -> B {
    let mut b = B::new()
        .u32(proto)
        .u32(frame_len)
        .u32(4) // stripped: the FCS
        .u32(header.len() as u32)
        .bytes(header);
    while b.len() % 4 != 0 {
        b = b.u8(0);
    }
    b
}

fn sflow_datagram(seq: u32, samples: &[(u32, B)]) -> B {
    let mut b = B::new()
        .u32(5)
        .u32(1)
        .bytes(&R1)
        .u32(3) // sub-agent
        .u32(seq)
        .u32(123_456) // uptime
        .u32(samples.len() as u32);
    for (tag, s) in samples {
        b = b.tlv(*tag, s.clone());
    }
    b
}

fn flow_sample_compact(seq: u32, rate: u32, drops: u32, records: &[(u32, B)]) -> B {
    let mut b = B::new()
        .u32(seq)
        .u32(4) // source id: ifIndex 4
        .u32(rate)
        .u32(seq * rate) // sample pool
        .u32(drops)
        .u32(4) // input ifIndex
        .u32(0x3fff_ffff) // output unknown
        .u32(records.len() as u32);
    for (tag, r) in records {
        b = b.tlv(*tag, r.clone());
    }
    b
}

fn flow_sample_expanded(seq: u32, rate: u32, records: &[(u32, B)]) -> B {
    let mut b = B::new()
        .u32(seq)
        .u32(0) // source type ifIndex
        .u32(11) // source index
        .u32(rate)
        .u32(seq * rate)
        .u32(0)
        .u32(0)
        .u32(11) // input format 0, value 11
        .u32(0)
        .u32(12) // output 12
        .u32(records.len() as u32);
    for (tag, r) in records {
        b = b.tlv(*tag, r.clone());
    }
    b
}

fn generic_counters(if_index: u32, in_octets: u64, out_octets: u64) -> B {
    B::new()
        .u32(if_index)
        .u32(6) // ethernetCsmacd
        .u64(10_000_000_000)
        .u32(1) // full duplex
        .u32(3) // admin + oper up
        .u64(in_octets)
        .u32(1000)
        .u32(20)
        .u32(3)
        .u32(4)
        .u32(5)
        .u32(6)
        .u64(out_octets)
        .u32(2000)
        .u32(30)
        .u32(7)
        .u32(8)
        .u32(9)
        .u32(0)
}

fn counter_sample(seq: u32, if_index: u32, in_octets: u64) -> B {
    B::new()
        .u32(seq)
        .u32(if_index)
        .u32(2)
        .tlv(1, generic_counters(if_index, in_octets, 777))
        .tlv(2, B::new().bytes(&[0; 52])) // ethernet counters: not used
}

fn gateway_record() -> B {
    B::new()
        .u32(1)
        .bytes(&R1) // next hop
        .u32(64496) // router AS
        .u32(65010) // src AS
        .u32(65001) // src peer AS
        .u32(1) // one segment
        .u32(2) // AS_SEQUENCE
        .u32(3)
        .u32(65001)
        .u32(65002)
        .u32(65003)
        .u32(0) // communities
        .u32(100) // local pref
}

fn sflow_fixture(seq: u32) -> B {
    sflow_datagram(
        seq,
        &[
            (
                1,
                flow_sample_compact(
                    10,
                    512,
                    0,
                    &[
                        (1, raw_header(1, 1022, &eth_vlan_ipv4_tcp())),
                        (1001, B::new().u32(42).u32(0).u32(42).u32(0)),
                        (1003, gateway_record()),
                    ],
                ),
            ),
            (
                3,
                flow_sample_expanded(20, 1000, &[(1, raw_header(1, 266, &eth_qinq_ipv6_udp()))]),
            ),
            (2, counter_sample(5, 4, 123_456_789)),
        ],
    )
}

#[test]
fn sflow_raw_headers_go_through_parse_frame() {
    let mut c = collector();
    let recs = feed(&mut c, Instant::now(), &[&sflow_fixture(1).0]);
    assert_eq!(recs.len(), 2, "{:?}", c.stats());
    let r = &recs[0];
    assert_eq!(r.protocol_source, Some(FlowProtocol::SflowV5));
    assert_eq!(
        r.addrs,
        L3Addrs::V4 {
            src: REMOTE,
            dst: LOCAL
        }
    );
    assert_eq!((r.src_port, r.dst_port, r.protocol), (443, 50000, 6));
    assert_eq!((r.tcp_flags, r.tos, r.vlan), (0x18, 0x10, 42));
    assert_eq!((r.input_if, r.output_if), (4, 0));
    assert_eq!((r.src_as, r.dst_as), (65010, 65003));
    assert_eq!(r.sampling_rate, 512);
    assert_eq!((r.sampled_packets, r.packets), (1, 512));
    assert_eq!(r.reported_layer, ByteLayer::L2Fcs);
    // frame_length 1022 includes the FCS; the IP header says 1000.
    assert_eq!(r.bytes(ByteLayer::L2Fcs), (1022 * 512, true));
    assert_eq!(r.bytes(ByteLayer::L2), (1018 * 512, true));
    assert_eq!(r.bytes(ByteLayer::L3), (1000 * 512, true));
    let r = &recs[1];
    assert_eq!(r.addrs, L3Addrs::V6 { src: V6A, dst: V6B });
    assert_eq!(
        (r.src_port, r.dst_port, r.protocol, r.vlan),
        (5000, 53, 17, 100)
    );
    assert_eq!((r.input_if, r.output_if), (11, 12));
    assert_eq!(r.packets, 1000);
    assert_eq!(r.bytes(ByteLayer::L2), (262 * 1000, true));
    assert_eq!(r.bytes(ByteLayer::L3), (240 * 1000, true));
    // The counter sample.
    let ctrs: Vec<_> = c.interface_counters().collect();
    assert_eq!(ctrs.len(), 1);
    let (_, k) = ctrs[0];
    assert_eq!(
        (k.if_index, k.if_speed, k.if_status),
        (4, 10_000_000_000, 3)
    );
    assert_eq!((k.in_octets, k.out_octets), (123_456_789, 777));
    assert_eq!((k.in_ucast_pkts, k.in_errors, k.out_discards), (1000, 5, 8));
    assert_eq!(k.samples, 1);
    assert_eq!(c.stats().sflow_counter_records, 1);
    // Ethernet counters (0:2) are read past, not errors.
    assert_eq!(c.stats().sflow_records_skipped, 1);
    assert_eq!(total_dropped(&c), 0, "{:?}", c.stats());
    assert_eq!(c.stats().sflow_header_errors.iter().sum::<u64>(), 0);
}

#[test]
fn sflow_ipv4_header_protocol_and_sampled_ipv4() {
    let mut c = collector();
    let ip = &eth_vlan_ipv4_tcp()[18..];
    let sampled = B::new()
        .u32(1500)
        .u32(17)
        .bytes(&LOCAL)
        .bytes(&REMOTE)
        .u32(123)
        .u32(123)
        .u32(0)
        .u32(0xb8);
    let dg = sflow_datagram(
        1,
        &[
            (
                1,
                flow_sample_compact(1, 100, 0, &[(1, raw_header(11, 1000, ip))]),
            ),
            (1, flow_sample_compact(2, 100, 0, &[(3, sampled)])),
        ],
    );
    let recs = feed(&mut c, Instant::now(), &[&dg.0]);
    assert_eq!(recs.len(), 2);
    assert_eq!(
        recs[0].addrs,
        L3Addrs::V4 {
            src: REMOTE,
            dst: LOCAL
        }
    );
    assert_eq!(recs[0].bytes(ByteLayer::L3), (100_000, true));
    assert_eq!(recs[0].bytes(ByteLayer::L2), (100_000 + 1400, false));
    assert_eq!(
        recs[1].addrs,
        L3Addrs::V4 {
            src: LOCAL,
            dst: REMOTE
        }
    );
    assert_eq!(
        (recs[1].protocol, recs[1].src_port, recs[1].tos),
        (17, 123, 0xb8)
    );
    assert_eq!(recs[1].bytes(ByteLayer::L3), (150_000, true));
}

#[test]
fn sflow_sequences_and_drops() {
    let mut c = collector();
    let now = Instant::now();
    let one = |dseq: u32, sseq: u32, drops: u32| {
        sflow_datagram(
            dseq,
            &[(
                1,
                flow_sample_compact(
                    sseq,
                    10,
                    drops,
                    &[(1, raw_header(1, 100, &eth_vlan_ipv4_tcp()))],
                ),
            )],
        )
    };
    // Datagrams 1, 2, 5 (2 lost); samples 1, 2, 6 (3 lost); drops 0, 0, 7.
    feed(
        &mut c,
        now,
        &[&one(1, 1, 0).0, &one(2, 2, 0).0, &one(5, 6, 7).0],
    );
    let s = exporter_stats(&c);
    assert_eq!(s.lost_datagrams, 2);
    assert_eq!(s.lost_samples, 3 + 7);
    // Counter samples have their own sequence.
    let cs = |dseq, seq| sflow_datagram(dseq, &[(2, counter_sample(seq, 4, 1))]);
    feed(&mut c, now, &[&cs(6, 1).0, &cs(7, 2).0, &cs(8, 4).0]);
    let s = exporter_stats(&c);
    assert_eq!(s.lost_counter_samples, 1);
    assert_eq!(s.lost_datagrams, 2);
    let k: Vec<_> = c.interface_counters().map(|x| x.1.samples).collect();
    assert_eq!(k, [3]);
}

#[test]
fn sflow_unknown_samples_and_bad_lengths_are_counted() {
    let mut c = collector();
    let now = Instant::now();
    // Enterprise 4413 format 5: unknown.
    let dg = sflow_datagram(1, &[((4413 << 12) | 5, B::new().u32(0))]);
    feed(&mut c, now, &[&dg.0]);
    assert_eq!(c.stats().dropped(DropReason::UnsupportedSample), 1);
    // A flow record length past the sample's end.
    let mut s = flow_sample_compact(1, 10, 0, &[(1, raw_header(1, 100, &eth_vlan_ipv4_tcp()))]);
    let at = 32 + 4;
    s.0[at..at + 4].copy_from_slice(&10_000u32.to_be_bytes());
    feed(&mut c, now, &[&sflow_datagram(2, &[(1, s)]).0]);
    assert_eq!(c.stats().dropped(DropReason::BadSample), 1);
    // Header length past the record.
    let mut r = raw_header(1, 100, &eth_vlan_ipv4_tcp());
    r.0[12..16].copy_from_slice(&5000u32.to_be_bytes());
    let s = flow_sample_compact(2, 10, 0, &[(1, r)]);
    feed(&mut c, now, &[&sflow_datagram(3, &[(1, s)]).0]);
    assert_eq!(c.stats().dropped(DropReason::BadSample), 2);
    // Unknown agent address type.
    let mut dg = sflow_fixture(4);
    dg.0[4..8].copy_from_slice(&9u32.to_be_bytes());
    feed(&mut c, now, &[&dg.0]);
    assert_eq!(c.stats().dropped(DropReason::BadLength), 1);
}

// ---------------------------------------------------------------- admission

#[test]
fn datagrams_from_outside_the_allowed_list_are_dropped() {
    let cfg = CollectorConfig {
        allowed_exporters: vec!["10.0.0.0/8".parse().unwrap()],
        ..Default::default()
    };
    let mut c = Collector::new(cfg).unwrap();
    let recs = feed(
        &mut c,
        Instant::now(),
        &[&v5_datagram(1).0, &sflow_fixture(1).0],
    );
    assert!(recs.is_empty());
    assert_eq!(c.stats().dropped(DropReason::NotAllowed), 2);
    assert_eq!(c.stats().exporters_active, 0);
    let mut got = 0;
    c.datagram(
        SocketAddr::from(([10, 1, 2, 3], 9)),
        Instant::now(),
        &v5_datagram(1).0,
        &mut |_| got += 1,
    );
    assert_eq!(got, 2);
    // IPv4-mapped IPv6 sources (a dual-stack socket) are the IPv4 address.
    c.datagram(
        "[::ffff:10.1.2.3]:9".parse().unwrap(),
        Instant::now(),
        &v5_datagram(3).0,
        &mut |_| got += 1,
    );
    assert_eq!(got, 4);
    assert_eq!(c.stats().exporters_active, 1);
}

#[test]
fn unknown_versions_are_counted() {
    let mut c = collector();
    feed(
        &mut c,
        Instant::now(),
        &[&[0, 7, 1, 2], &[], &[0, 0, 0, 4, 0], b"GET / HTTP/1.1"],
    );
    assert_eq!(c.stats().dropped(DropReason::UnknownVersion), 4);
}

// ---------------------------------------------------------------- hostile

/// For every strict prefix of each fixture: no panic, never more records
/// than the whole datagram gives, and the cut is counted (for v9, unless
/// it falls between two sets, where nothing can tell).
#[test]
fn truncated_at_every_byte_is_counted_never_a_panic() {
    let v9 = v9_full(1);
    let v9_bounds = [20, 20 + 4 + v9_template_v4().len()];
    let fixtures: Vec<(&str, Vec<u8>, Vec<usize>)> = vec![
        ("v5", v5_datagram(1).0, vec![]),
        ("v9", v9.0.clone(), v9_bounds.to_vec()),
        (
            "ipfix",
            ipfix(
                0,
                1,
                B::new()
                    .set(2, ipfix_template6())
                    .set(400, ipfix_record6(b"eth0", 1, 1)),
            )
            .0,
            vec![],
        ),
        ("sflow", sflow_fixture(1).0, vec![]),
    ];
    for (name, full, bounds) in fixtures {
        let mut c = collector();
        let all = feed(&mut c, Instant::now(), &[&full]).len();
        for cut in 0..full.len() {
            let mut c = collector();
            let before = total_dropped(&c);
            let n = feed(&mut c, Instant::now(), &[&full[..cut]]).len();
            assert!(n <= all, "{name} cut at {cut}: {n} records");
            let counted = total_dropped(&c) > before;
            assert!(
                counted || bounds.contains(&cut),
                "{name} cut at {cut} was not counted: {:?}",
                c.stats()
            );
        }
    }
}

#[test]
fn template_with_65535_fields_is_refused() {
    let mut c = collector();
    let mut t = B::new().u16(256).u16(65535);
    for _ in 0..2000 {
        t = t.u16(1).u16(4);
    }
    let dg = ipfix(0, 1, B::new().set(2, t));
    feed(&mut c, Instant::now(), &[&dg.0]);
    assert_eq!(c.stats().dropped(DropReason::TemplateLimit), 1);
    assert_eq!(c.stats().templates_active, 0);
    // Claimed within the cap but the set ends first: truncated.
    let mut t = B::new().u16(257).u16(300);
    for _ in 0..10 {
        t = t.u16(1).u16(4);
    }
    feed(
        &mut c,
        Instant::now(),
        &[&ipfix(1, 1, B::new().set(2, t)).0],
    );
    assert_eq!(c.stats().dropped(DropReason::Truncated), 1);
}

#[test]
fn zero_length_fields() {
    let mut c = collector();
    // IPFIX: only zero-length fields would be records of length 0: refused.
    let t = B::new().u16(256).u16(2).u16(1).u16(0).u16(2).u16(0);
    feed(
        &mut c,
        Instant::now(),
        &[&ipfix(0, 1, B::new().set(2, t)).0],
    );
    assert_eq!(c.stats().dropped(DropReason::BadTemplate), 1);
    // A zero-length field among others decodes (it holds nothing).
    let t = B::new()
        .u16(257)
        .u16(3)
        .u16(5)
        .u16(0)
        .u16(2)
        .u16(4)
        .u16(1)
        .u16(4);
    let d = B::new().u32(7).u32(700);
    let recs = feed(
        &mut c,
        Instant::now(),
        &[&ipfix(0, 1, B::new().set(2, t).set(257, d)).0],
    );
    assert_eq!(recs.len(), 1);
    assert_eq!((recs[0].packets, recs[0].l3_bytes), (7, 700));
}

#[test]
fn template_flood_stays_under_the_caps() {
    let mut cfg = CollectorConfig::default();
    cfg.limits.max_templates_per_exporter = 100;
    cfg.limits.max_templates = 150;
    let mut c = Collector::new(cfg).unwrap();
    let now = Instant::now();
    // 5000 distinct template ids from one exporter.
    for chunk in 0..50u16 {
        let mut sets = B::new();
        for i in 0..100u16 {
            sets = sets.set(2, ipfix_template4(256 + chunk * 100 + i));
        }
        feed(&mut c, now, &[&ipfix(0, 1, sets).0]);
    }
    assert_eq!(c.stats().templates_active, 100);
    assert_eq!(c.stats().dropped(DropReason::TemplateLimit), 4900);
    assert_eq!(exporter_stats(&c).templates, 100);
    // A second exporter gets only what the total cap leaves.
    for i in 0..100u16 {
        let dg = ipfix(0, 1, B::new().set(2, ipfix_template4(256 + i)));
        c.datagram(
            SocketAddr::from(([192, 0, 2, 2], 1)),
            now,
            &dg.0,
            &mut |_| {},
        );
    }
    assert_eq!(c.stats().templates_active, 150);
    assert_eq!(c.stats().dropped(DropReason::TemplateLimit), 4950);
}

#[test]
fn exporter_flood_stays_under_the_cap() {
    let mut cfg = CollectorConfig::default();
    cfg.limits.max_exporters = 64;
    let mut c = Collector::new(cfg).unwrap();
    let now = Instant::now();
    let dg = v9_full(1);
    for i in 0..2000u32 {
        let ip = [10, (i >> 16) as u8, (i >> 8) as u8, i as u8];
        c.datagram(SocketAddr::from((ip, 2055)), now, &dg.0, &mut |_| {});
    }
    assert_eq!(c.stats().exporters_active, 64);
    assert_eq!(c.stats().dropped(DropReason::TooManyExporters), 2000 - 64);
    assert_eq!(c.stats().templates_active, 64);
    // Idle exporters are forgotten with their templates.
    c.maintain(now + Duration::from_secs(3601), &mut |_| {});
    assert_eq!(c.stats().exporters_active, 0);
    assert_eq!(c.stats().templates_active, 0);
    assert_eq!(c.stats().exporters_expired, 64);
}

#[test]
fn pending_flood_stays_under_the_cap() {
    let mut cfg = CollectorConfig::default();
    cfg.limits.max_pending_bytes_per_exporter = 10_000;
    cfg.limits.max_pending_bytes = 15_000;
    let mut c = Collector::new(cfg).unwrap();
    let now = Instant::now();
    let body = B::new().bytes(&[0xa5; 996]);
    for i in 0..100u16 {
        let dg = ipfix(0, 1, B::new().set(1000 + i, body.clone()));
        feed(&mut c, now, &[&dg.0]);
    }
    assert_eq!(c.stats().pending_bytes, 9960);
    assert_eq!(c.stats().sets_held, 10);
    assert_eq!(c.stats().dropped(DropReason::PendingLimit), 90);
    for i in 0..100u16 {
        let dg = ipfix(0, 1, B::new().set(1000 + i, body.clone()));
        c.datagram(
            SocketAddr::from(([192, 0, 2, 2], 1)),
            now,
            &dg.0,
            &mut |_| {},
        );
    }
    assert_eq!(c.stats().pending_bytes, 14_940);
    assert_eq!(c.stats().dropped(DropReason::PendingLimit), 90 + 95);
    c.maintain(now + Duration::from_secs(10), &mut |_| {});
    assert_eq!(c.stats().pending_bytes, 0);
    assert_eq!(c.stats().dropped(DropReason::NoTemplate), 15);
}

// ---------------------------------------------------------------- tshark

/// The fixtures, written into a pcap as UDP to port 2055 / 6343, dissect
/// in tshark without malformed packets or errors, with the values the
/// decoder tests expect. COLLECTOR_FIXTURES_PCAP=path keeps the pcap.
#[test]
fn fixtures_dissect_cleanly_in_tshark() {
    let tshark = std::process::Command::new("tshark")
        .arg("--version")
        .output();
    if tshark.is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "tshark not found: install the Debian package tshark"
        );
        eprintln!("SKIPPED fixtures_dissect_cleanly_in_tshark: tshark not found");
        return;
    }
    let dgrams: Vec<(u16, Vec<u8>)> = vec![
        (2055, v5_datagram(100).0),
        (2055, v9_full(1).0),
        (2055, v9_sampling_options(1000).0),
        (
            2055,
            ipfix(
                0,
                1,
                B::new()
                    .set(2, ipfix_template6())
                    .set(400, ipfix_record6(b"ge-0/0/0", 1234, 3)),
            )
            .0,
        ),
        (6343, sflow_fixture(1).0),
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = std::env::var("COLLECTOR_FIXTURES_PCAP")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| dir.path().join("fixtures.pcap"));
    let file = std::fs::File::create(&path).unwrap();
    let header = pcap_file::pcap::PcapHeader {
        datalink: pcap_file::DataLink::ETHERNET,
        ..Default::default()
    };
    let mut w = pcap_file::pcap::PcapWriter::with_header(file, header).unwrap();
    for (i, (port, d)) in dgrams.iter().enumerate() {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        let total = 20 + 8 + d.len();
        f.extend_from_slice(&[
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0,
            0,
            64,
            17,
            0,
            0,
        ]);
        f.extend_from_slice(&R1);
        f.extend_from_slice(&[127, 0, 0, 1]);
        let ul = 8 + d.len();
        f.extend_from_slice(&40000u16.to_be_bytes());
        f.extend_from_slice(&port.to_be_bytes());
        f.extend_from_slice(&(ul as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(d);
        let pkt =
            pcap_file::pcap::PcapPacket::new(Duration::from_secs(i as u64 + 1), f.len() as u32, &f);
        w.write_packet(&pkt).unwrap();
    }
    drop(w);
    let out = std::process::Command::new("tshark")
        .arg("-r")
        .arg(&path)
        .args([
            "-V",
            "-d",
            "udp.port==2055,cflow",
            "-d",
            "udp.port==6343,sflow",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for bad in ["Malformed", "Error/", "Warning/Protocol"] {
        assert!(!text.contains(bad), "tshark reports {bad}:\n{text}");
    }
    for want in [
        "SampleRate: 100",
        "Octets: 4000",
        "DstPort: 769",
        "Octets: 1500",
        "Direction: Egress (1)",
        "Sampling interval: 1000",
        "IfName: ge-0/0/0",
        "PEN: Juniper Networks, Inc. (2636)",
        "Frame Length: 1022",
        "ID: 42",
        "Total Length: 1000",
        "IEEE 802.1ad, ID: 100",
        "AS Destination: 65003",
        "Input interface value: 11",
    ] {
        assert!(text.contains(want), "tshark output lacks {want:?}");
    }
}

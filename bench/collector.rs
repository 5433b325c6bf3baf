//! Flow input benches: records (NetFlow v9, IPFIX) and samples (sFlow v5)
//! per second per core, on MTU-sized datagrams whose templates are already
//! known: `*_decoded` by `collector::Collector::datagram` alone,
//! `*_counted` decoded and counted through the shard path
//! (`collector::input::FlowInput::datagram`: resolve, hosts, customers,
//! protocol, the flow interface), as `xdpacct run` does.
//!
//! `cargo bench --profile ci --bench collector -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant;

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use xdpacct::collector::input::FlowInput;
use xdpacct::collector::{Collector, CollectorConfig, FlowRecord};
use xdpacct::settings::raw::{AccountingConfig, RangeConfig};
use xdpacct::settings::Accounting;
use xdpacct::shard::{Shard, ShardOrigin, Tables};

/// A flow-fed shard: the records' local side (198.51.100.0/24) is one
/// labelled range, the remote side (203.0.113.0/24) is not local.
fn flow_shard() -> Arc<Shard> {
    let acct = AccountingConfig {
        local_networks: vec!["198.51.100.0/24".into()],
        ranges: vec![RangeConfig {
            prefix: Some("198.51.100.0/24".into()),
            labels: [("customer".to_string(), "c1".to_string())].into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let acct = Accounting::from_raw(&acct, "bench").unwrap();
    let tables = Arc::new(Tables::build(&acct, "bench", None).unwrap());
    Arc::new(Shard::new_flow(
        ShardOrigin {
            interface: "collector:bench".into(),
            queue: 0,
        },
        tables,
        4096,
    ))
}

fn put16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_be_bytes());
}
fn put32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_be_bytes());
}

/// A typical router template: addresses, ports, protocol, ToS, flags,
/// interfaces, packets, bytes, times, ASes, next hop, masks (45 bytes).
const FIELDS: [(u16, u16); 17] = [
    (8, 4),
    (12, 4),
    (7, 2),
    (11, 2),
    (4, 1),
    (5, 1),
    (6, 1),
    (10, 4),
    (14, 4),
    (2, 4),
    (1, 4),
    (22, 4),
    (21, 4),
    (16, 2),
    (17, 2),
    (9, 1),
    (13, 1),
];
const RECORD_LEN: usize = 45;
/// Records per datagram: 30 * 45 bytes fits a 1500-byte MTU.
const RECORDS: usize = 30;

fn records(v: &mut Vec<u8>) {
    for i in 0..RECORDS as u32 {
        let start = v.len();
        put32(v, 0xc633_6400 | (i & 0xff));
        put32(v, 0xcb00_7100 | ((i * 7) & 0xff));
        put16(v, 443);
        put16(v, 40000 + i as u16);
        v.extend_from_slice(&[6, 0, 0x18]);
        put32(v, 3);
        put32(v, 5);
        put32(v, 10 + i);
        put32(v, 1500 * (10 + i));
        put32(v, 1000);
        put32(v, 2000);
        put16(v, 64500);
        put16(v, 13335);
        v.extend_from_slice(&[24, 24]);
        assert_eq!(v.len() - start, RECORD_LEN);
    }
}

fn template(v: &mut Vec<u8>) {
    put16(v, 256);
    put16(v, FIELDS.len() as u16);
    for (t, l) in FIELDS {
        put16(v, t);
        put16(v, l);
    }
}

fn v9(seq: u32, with_template: bool) -> Vec<u8> {
    let mut v = Vec::new();
    put16(&mut v, 9);
    put16(&mut v, RECORDS as u16);
    put32(&mut v, 100_000);
    put32(&mut v, 1_700_000_000);
    put32(&mut v, seq);
    put32(&mut v, 1);
    if with_template {
        let mut t = Vec::new();
        template(&mut t);
        put16(&mut v, 0);
        put16(&mut v, t.len() as u16 + 4);
        v.extend_from_slice(&t);
    }
    let mut d = Vec::new();
    records(&mut d);
    while d.len() % 4 != 0 {
        d.push(0);
    }
    put16(&mut v, 256);
    put16(&mut v, d.len() as u16 + 4);
    v.extend_from_slice(&d);
    v
}

fn ipfix(seq: u32, with_template: bool) -> Vec<u8> {
    let mut body = Vec::new();
    if with_template {
        let mut t = Vec::new();
        template(&mut t);
        put16(&mut body, 2);
        put16(&mut body, t.len() as u16 + 4);
        body.extend_from_slice(&t);
    }
    let mut d = Vec::new();
    records(&mut d);
    put16(&mut body, 256);
    put16(&mut body, d.len() as u16 + 4);
    body.extend_from_slice(&d);
    let mut v = Vec::new();
    put16(&mut v, 10);
    put16(&mut v, 16 + body.len() as u16);
    put32(&mut v, 1_700_000_000);
    put32(&mut v, seq);
    put32(&mut v, 1);
    v.extend_from_slice(&body);
    v
}

/// Samples per sFlow datagram: 8 flow samples with 128-byte headers
/// (Ethernet, 802.1Q, IPv4, TCP), about 1400 bytes.
const SAMPLES: usize = 8;

fn sflow(seq: u32) -> Vec<u8> {
    let mut v = Vec::new();
    put32(&mut v, 5);
    put32(&mut v, 1);
    put32(&mut v, 0xc000_0201);
    put32(&mut v, 0);
    put32(&mut v, seq);
    put32(&mut v, 1000);
    put32(&mut v, SAMPLES as u32);
    for i in 0..SAMPLES as u32 {
        let mut h = vec![
            0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x81, 0, 0, 42, 0x08, 0,
        ];
        h.extend_from_slice(&[0x45, 0, 0x05, 0xdc, 0, 0, 0x40, 0, 64, 6, 0, 0]);
        h.extend_from_slice(&[203, 0, 113, i as u8, 198, 51, 100, (i * 3) as u8]);
        h.extend_from_slice(&[
            1, 0xbb, 0x9c, 0x40, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0,
        ]);
        h.resize(128, 0xa5);
        let mut rec = Vec::new();
        put32(&mut rec, 1);
        put32(&mut rec, 1518);
        put32(&mut rec, 4);
        put32(&mut rec, h.len() as u32);
        rec.extend_from_slice(&h);
        let mut s = Vec::new();
        put32(&mut s, seq * SAMPLES as u32 + i);
        put32(&mut s, 3);
        put32(&mut s, 1000);
        put32(&mut s, 0);
        put32(&mut s, 0);
        put32(&mut s, 3);
        put32(&mut s, 5);
        put32(&mut s, 1);
        put32(&mut s, 1);
        put32(&mut s, rec.len() as u32);
        s.extend_from_slice(&rec);
        put32(&mut v, 1);
        put32(&mut v, s.len() as u32);
        v.extend_from_slice(&s);
    }
    v
}

fn bench(c: &mut Criterion) {
    let from = SocketAddr::from(([192, 0, 2, 1], 2055));
    let now = Instant::now();
    let mut g = c.benchmark_group("collector");
    let cases: [(&str, Vec<u8>, Vec<u8>, u64); 3] = [
        (
            "netflow_v9_records",
            v9(0, true),
            v9(1, false),
            RECORDS as u64,
        ),
        (
            "ipfix_records",
            ipfix(0, true),
            ipfix(0, false),
            RECORDS as u64,
        ),
        ("sflow_samples", sflow(0), sflow(1), SAMPLES as u64),
    ];
    for (name, first, steady, per) in cases {
        let mut col = Collector::new(CollectorConfig::default()).unwrap();
        let mut n = 0u64;
        col.datagram(from, now, &first, &mut |_: &FlowRecord| n += 1);
        col.datagram(from, now, &steady, &mut |_: &FlowRecord| n += 1);
        assert_eq!(n, 2 * per, "{name}: the bench datagrams decode");
        g.throughput(Throughput::Elements(per));
        g.bench_function(format!("{name}_decoded"), |b| {
            b.iter(|| {
                let mut bytes = 0u64;
                col.datagram(from, now, black_box(&steady), &mut |r: &FlowRecord| {
                    bytes += r.l3_bytes
                });
                black_box(bytes)
            })
        });

        let shard = flow_shard();
        let mut input =
            FlowInput::new(CollectorConfig::default(), shard.clone(), "bench".into()).unwrap();
        input.datagram(from, now, &first);
        input.datagram(from, now, &steady);
        let counted = shard.snapshot().traffic.total().packets;
        assert!(counted > 0, "{name}: the bench records are counted");
        assert!(
            shard.hosts().counts().any(|c| !c.is_zero()),
            "{name}: into host slots"
        );
        g.bench_function(format!("{name}_counted"), |b| {
            b.iter(|| input.datagram(from, now, black_box(&steady)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! The bodies of the fuzz targets (`fuzz/fuzz_targets/`), shared with the
//! property tests (`tests/proptest_wire.rs`) and the corpus replay
//! (`tests/fuzz_corpus.rs`) so that every path runs the same code. Each body
//! panics on a property violation and must not panic otherwise.
#![allow(dead_code)]

use std::io::Cursor;
use std::path::Path;

use xdpacct::export::decode::Decoder;
use xdpacct::export::{Encoder, EncoderConfig, FlowKey, FlowRecord, Version};
use xdpacct::prefix::{AsTableBuilder, NetworkTableBuilder};
use xdpacct::wire::{parse_frame, FrameFacts, L3Addrs};

/// Unix ms the encoder takes as v9 boot time; records start after it.
pub const BOOT_MS: u64 = 1_699_999_999_000;
/// Records end before `BOOT_MS + SPAN_MS`, the export time (a whole second,
/// since the v9 header carries seconds).
pub const SPAN_MS: u64 = 100_000_000;
pub const NOW_MS: u64 = BOOT_MS + SPAN_MS;

/// Frame parser: no panic on any bytes; a parsed frame is consistent.
pub fn parse_frame_body(data: &[u8]) {
    let mut facts = FrameFacts::default();
    if parse_frame(data, &mut facts).is_ok() && facts.protocol != 0 {
        // A transport protocol is only known once an IP header was read.
        assert!(
            !matches!(facts.addrs, L3Addrs::None),
            "protocol {} without addresses: {facts:?}",
            facts.protocol
        );
    }
}

/// A flow record as the flow cache makes one: for ICMP / ICMPv6 the
/// "ports" are type and code, one byte each.
#[allow(clippy::too_many_arguments)]
pub fn make_record(
    iface: u16,
    vlan: u16,
    v6: bool,
    a: &[u8; 32],
    protocol: u8,
    src_port: u16,
    dst_port: u16,
    tos: u8,
    packets: u64,
    bytes: u64,
    first_off: u64,
    last_off: u64,
    tcp_flags: u8,
    direction: u8,
) -> FlowRecord {
    let addrs = if v6 {
        let mut src = [0u8; 16];
        let mut dst = [0u8; 16];
        src.copy_from_slice(&a[..16]);
        dst.copy_from_slice(&a[16..]);
        L3Addrs::V6 { src, dst }
    } else {
        L3Addrs::V4 {
            src: [a[0], a[1], a[2], a[3]],
            dst: [a[4], a[5], a[6], a[7]],
        }
    };
    let icmp = protocol == 1 || protocol == 58;
    FlowRecord {
        key: FlowKey {
            iface,
            vlan: vlan & 0x0fff,
            addrs,
            protocol,
            src_port: if icmp { src_port & 0xff } else { src_port },
            dst_port: if icmp { dst_port & 0xff } else { dst_port },
            tos,
        },
        packets,
        bytes,
        first_ms: BOOT_MS + first_off % SPAN_MS,
        last_ms: BOOT_MS + last_off.max(first_off) % SPAN_MS,
        tcp_flags,
        direction,
    }
    .normalized()
}

trait Normalize {
    fn normalized(self) -> Self;
}

impl Normalize for FlowRecord {
    /// `last_ms >= first_ms` after the modulo above.
    fn normalized(mut self) -> Self {
        if self.last_ms < self.first_ms {
            std::mem::swap(&mut self.last_ms, &mut self.first_ms);
        }
        self
    }
}

/// Encodes `recs` (version 9 or 10, payload limit `mtu`), decodes every
/// packet and compares. `Err` describes the first difference.
pub fn round_trip(recs: &[FlowRecord], version: u16, mtu: usize) -> Result<(), String> {
    let version = Version::from_number(version).ok_or("bad version")?;
    let mut enc = Encoder::new(&EncoderConfig {
        version,
        domain_id: 0x0102_0304,
        mtu,
        boot_ms: Some(BOOT_MS),
        ..Default::default()
    });
    let mut pkts: Vec<(Vec<u8>, u32)> = Vec::new();
    let mut emit = |p: &[u8], n: u32| pkts.push((p.to_vec(), n));
    for r in recs {
        enc.push(r, NOW_MS, &mut emit);
    }
    enc.flush(NOW_MS, &mut emit);
    let limit = mtu.clamp(512, 65507);
    let mut dec = Decoder::default();
    let mut got = Vec::with_capacity(recs.len());
    for (i, (p, n)) in pkts.iter().enumerate() {
        if p.len() > limit {
            return Err(format!(
                "{version:?} packet {i}: {} bytes > mtu {limit}",
                p.len()
            ));
        }
        let d = dec
            .decode(p)
            .map_err(|e| format!("{version:?} packet {i}: {e:?}"))?;
        if d.records.len() as u32 != *n {
            return Err(format!(
                "{version:?} packet {i}: {} records decoded, {n} announced",
                d.records.len()
            ));
        }
        got.extend(d.records);
    }
    if got.len() != recs.len() {
        return Err(format!(
            "{version:?}: {} records in, {} out",
            recs.len(),
            got.len()
        ));
    }
    for (i, (a, b)) in recs.iter().zip(&got).enumerate() {
        if a != b {
            return Err(format!(
                "{version:?} record {i} differs:\n in {a:?}\nout {b:?}"
            ));
        }
    }
    Ok(())
}

/// Reads fixed-width fields from fuzz input; zeros once it runs out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = N.min(self.0.len());
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        out
    }
    fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.take())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }
}

/// Fuzz entry for the encoder: the first bytes choose version and MTU, the
/// rest are cut into records (73 bytes each, at most 64 records).
pub fn round_trip_bytes(data: &[u8]) -> Result<(), String> {
    let mut b = Bytes(data);
    let version = if b.u8() & 1 == 0 { 9 } else { 10 };
    // A multiple of 4: the encoder pads past any other (a known bug, see
    // tests/proptest_wire.rs).
    let mtu = 512 + 4 * usize::from(b.u16() % 375);
    let mut recs = Vec::new();
    while !b.0.is_empty() && recs.len() < 64 {
        let iface = b.u16();
        let vlan = b.u16();
        let v6 = b.u8() & 1 == 1;
        let a: [u8; 32] = b.take();
        let protocol = b.u8();
        let (sp, dp, tos) = (b.u16(), b.u16(), b.u8());
        let (packets, bytes) = (b.u64(), b.u64());
        let (t1, t2) = (b.u64() % SPAN_MS, b.u64() % SPAN_MS);
        let (fl, dir) = (b.u8(), b.u8());
        recs.push(make_record(
            iface,
            vlan,
            v6,
            &a,
            protocol,
            sp,
            dp,
            tos,
            packets,
            bytes,
            t1.min(t2),
            t1.max(t2),
            fl,
            dir,
        ));
    }
    if recs.is_empty() {
        return Ok(());
    }
    round_trip(&recs, version, mtu)
}

/// Fuzz entry for the encoder that panics on a failed round trip.
pub fn round_trip_body(data: &[u8]) {
    if let Err(e) = round_trip_bytes(data) {
        panic!("{e}");
    }
}

/// Config loader: any TOML text is parsed and checked without panicking;
/// an accepted config is accepted again (the checks are deterministic).
pub fn config_body(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if xdpacct::settings::Settings::from_toml_str(s).is_ok() {
        xdpacct::settings::Settings::from_toml_str(s)
            .expect("an accepted config is accepted twice");
    }
}

/// Prefix-table loaders: every reader of `AsTableBuilder` and the networks
/// file reader take any bytes without panicking. The first byte picks the
/// loader (low bits) and whether to build the table and look up in it (bit
/// 7; building paints a 64 MiB DIR-24-8 table, which would cut the fuzzer's
/// speed to ~100 runs/s if done every time).
pub fn prefix_body(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let build = which & 0x80 != 0;
    let which = which & 0x7f;
    let path = Path::new("fuzz-input");
    let probes = [
        "192.0.2.1",
        "0.0.0.0",
        "255.255.255.255",
        "2001:db8::1",
        "::",
    ];
    if which % 5 == 4 {
        let mut n = NetworkTableBuilder::new();
        let _ = n.read(Cursor::new(rest), path);
        if build {
            let t = n.build();
            for p in probes {
                let _ = t.lookup(p.parse().unwrap());
            }
        }
        return;
    }
    let mut b = AsTableBuilder::new();
    let _ = match which % 5 {
        0 => b.read_prefix_asn(Cursor::new(rest), path),
        1 => b.read_ip2asn(Cursor::new(rest), path),
        2 => b.read_names(Cursor::new(rest), path),
        _ => b.read_networks_file(Cursor::new(rest), path),
    };
    if build {
        let t = b.build();
        for p in probes {
            let _ = t.lookup(p.parse().unwrap());
        }
    }
}

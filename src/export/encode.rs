//! NetFlow v9 (RFC 3954) and IPFIX (RFC 7011) packet builder.
//!
//! One data template per address family and one options template that
//! announces the sampling interval:
//!
//! | field | v9 type (len) | IPFIX IE (len) |
//! |---|---|---|
//! | bytes | IN_BYTES 1 (8) | octetDeltaCount 1 (8) |
//! | packets | IN_PKTS 2 (8) | packetDeltaCount 2 (8) |
//! | protocol | PROTOCOL 4 (1) | protocolIdentifier 4 (1) |
//! | ToS | SRC_TOS 5 (1) | ipClassOfService 5 (1) |
//! | TCP flags | TCP_FLAGS 6 (1) | tcpControlBits 6 (1) |
//! | ports | L4_SRC_PORT 7, L4_DST_PORT 11 (2) | sourceTransportPort 7, destinationTransportPort 11 (2) |
//! | addresses | IPV4_SRC/DST_ADDR 8/12 (4), IPV6_SRC/DST_ADDR 27/28 (16) | same numbers |
//! | interface | INPUT_SNMP 10 (4) | ingressInterface 10 (4) |
//! | VLAN | SRC_VLAN 58 (2) | vlanId 58 (2) |
//! | times | FIRST_SWITCHED 22, LAST_SWITCHED 21 (4, ms of sysUptime) | flowStartMilliseconds 152, flowEndMilliseconds 153 (8, Unix ms) |
//! | direction | DIRECTION 61 (1) | flowDirection 61 (1) |
//!
//! ICMP type and code travel the Cisco way: source port 0, destination
//! port `type << 8 | code` (what nfdump, pmacct and Wireshark expect).
//!
//! Sampling: v9 options template (scope System = source id) with
//! SAMPLING_INTERVAL 34 and SAMPLING_ALGORITHM 35 (1, deterministic);
//! IPFIX options template (scope observationDomainId 149) with
//! samplingInterval 34, samplingAlgorithm 35, samplingPacketInterval 305
//! (1) and samplingPacketSpace 306 (interval - 1). 1 means unsampled.
//!
//! Templates and the sampling options go at the head of the first packet
//! and again every `template_refresh_ms` or `template_refresh_packets`
//! packets, whichever comes first. Sequence numbers: v9 counts export
//! packets, IPFIX counts data records (options data records included).
//! Sets are padded to 4 bytes with zeros.
//!
//! v9 times are relative to a "boot" instant: `boot_ms` if given, else 10
//! minutes before the first packet's time, so that replayed flows of any
//! date fit the 32-bit uptime. The header carries `unix_secs` and
//! `sysUptime = unix_secs * 1000 - boot`, so a collector's
//! `unix_secs * 1000 - sysUptime + FIRST_SWITCHED` is exact to the ms.
//!
//! After 2^31 ms (24.8 days) the boot instant moves forward the same way,
//! so the uptime never wraps.
//!
//! The packet buffer is allocated once (`mtu` bytes); encoding does not
//! allocate and does not panic.

use super::{is_icmp, FlowRecord};
use crate::wire::L3Addrs;

/// Export format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// NetFlow v9, RFC 3954.
    V9,
    /// IPFIX, RFC 7011 (version number 10).
    Ipfix,
}

impl Version {
    /// 9 or 10, as in the packet header and the `version` config key.
    pub fn from_number(n: u16) -> Option<Version> {
        match n {
            9 => Some(Version::V9),
            10 => Some(Version::Ipfix),
            _ => None,
        }
    }

    pub fn number(self) -> u16 {
        match self {
            Version::V9 => 9,
            Version::Ipfix => 10,
        }
    }
}

/// Encoder settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncoderConfig {
    pub version: Version,
    /// v9 source id / IPFIX observation domain id. Defaults to 0.
    pub domain_id: u32,
    /// Largest UDP payload, in bytes (clamped to 512..=65507). Defaults to 1400.
    pub mtu: usize,
    /// Re-send templates after this long, in ms. Defaults to 20000.
    pub template_refresh_ms: u64,
    /// Re-send templates after this many packets. Defaults to 4096.
    pub template_refresh_packets: u32,
    /// Announced sampling interval (1 = every packet). Defaults to 1.
    pub sampling_interval: u32,
    /// v9 only: Unix ms taken as the exporter's boot time. Defaults to
    /// 10 minutes before the first packet.
    pub boot_ms: Option<u64>,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        EncoderConfig {
            version: Version::Ipfix,
            domain_id: 0,
            mtu: 1400,
            template_refresh_ms: 20_000,
            template_refresh_packets: 4096,
            sampling_interval: 1,
            boot_ms: None,
        }
    }
}

/// Template ids.
pub const TEMPLATE_V4: u16 = 256;
pub const TEMPLATE_V6: u16 = 257;
pub const TEMPLATE_OPTIONS: u16 = 258;

/// Information element / v9 field type numbers used here.
pub mod ie {
    pub const BYTES: u16 = 1;
    pub const PACKETS: u16 = 2;
    pub const PROTOCOL: u16 = 4;
    pub const TOS: u16 = 5;
    pub const TCP_FLAGS: u16 = 6;
    pub const SRC_PORT: u16 = 7;
    pub const SRC_V4: u16 = 8;
    pub const INPUT_IF: u16 = 10;
    pub const DST_PORT: u16 = 11;
    pub const DST_V4: u16 = 12;
    pub const LAST_SWITCHED: u16 = 21;
    pub const FIRST_SWITCHED: u16 = 22;
    pub const SRC_V6: u16 = 27;
    pub const DST_V6: u16 = 28;
    pub const SAMPLING_INTERVAL: u16 = 34;
    pub const SAMPLING_ALGORITHM: u16 = 35;
    pub const VLAN: u16 = 58;
    pub const DIRECTION: u16 = 61;
    pub const OBSERVATION_DOMAIN_ID: u16 = 149;
    pub const FLOW_START_MS: u16 = 152;
    pub const FLOW_END_MS: u16 = 153;
    pub const SAMPLING_PACKET_INTERVAL: u16 = 305;
    pub const SAMPLING_PACKET_SPACE: u16 = 306;
    /// v9 options scope type "System".
    pub const V9_SCOPE_SYSTEM: u16 = 1;
}

type Fields = &'static [(u16, u16)];

const fn data_fields(v6: bool, ipfix: bool) -> Fields {
    use ie::*;
    match (v6, ipfix) {
        (false, false) => &[
            (BYTES, 8),
            (PACKETS, 8),
            (PROTOCOL, 1),
            (TOS, 1),
            (TCP_FLAGS, 1),
            (SRC_PORT, 2),
            (DST_PORT, 2),
            (SRC_V4, 4),
            (DST_V4, 4),
            (INPUT_IF, 4),
            (VLAN, 2),
            (FIRST_SWITCHED, 4),
            (LAST_SWITCHED, 4),
            (DIRECTION, 1),
        ],
        (true, false) => &[
            (BYTES, 8),
            (PACKETS, 8),
            (PROTOCOL, 1),
            (TOS, 1),
            (TCP_FLAGS, 1),
            (SRC_PORT, 2),
            (DST_PORT, 2),
            (SRC_V6, 16),
            (DST_V6, 16),
            (INPUT_IF, 4),
            (VLAN, 2),
            (FIRST_SWITCHED, 4),
            (LAST_SWITCHED, 4),
            (DIRECTION, 1),
        ],
        (false, true) => &[
            (BYTES, 8),
            (PACKETS, 8),
            (PROTOCOL, 1),
            (TOS, 1),
            (TCP_FLAGS, 1),
            (SRC_PORT, 2),
            (DST_PORT, 2),
            (SRC_V4, 4),
            (DST_V4, 4),
            (INPUT_IF, 4),
            (VLAN, 2),
            (FLOW_START_MS, 8),
            (FLOW_END_MS, 8),
            (DIRECTION, 1),
        ],
        (true, true) => &[
            (BYTES, 8),
            (PACKETS, 8),
            (PROTOCOL, 1),
            (TOS, 1),
            (TCP_FLAGS, 1),
            (SRC_PORT, 2),
            (DST_PORT, 2),
            (SRC_V6, 16),
            (DST_V6, 16),
            (INPUT_IF, 4),
            (VLAN, 2),
            (FLOW_START_MS, 8),
            (FLOW_END_MS, 8),
            (DIRECTION, 1),
        ],
    }
}

const V9_OPTION_SCOPE: Fields = &[(ie::V9_SCOPE_SYSTEM, 4)];
const V9_OPTION_FIELDS: Fields = &[(ie::SAMPLING_INTERVAL, 4), (ie::SAMPLING_ALGORITHM, 1)];
const IPFIX_OPTION_SCOPE: Fields = &[(ie::OBSERVATION_DOMAIN_ID, 4)];
const IPFIX_OPTION_FIELDS: Fields = &[
    (ie::SAMPLING_INTERVAL, 4),
    (ie::SAMPLING_ALGORITHM, 1),
    (ie::SAMPLING_PACKET_INTERVAL, 4),
    (ie::SAMPLING_PACKET_SPACE, 4),
];

const fn fields_len(f: Fields) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < f.len() {
        n += f[i].1 as usize;
        i += 1;
    }
    n
}

/// Bytes of one data record.
pub const fn record_len(version: Version, v6: bool) -> usize {
    fields_len(data_fields(v6, matches!(version, Version::Ipfix)))
}

/// Fill for bytes reserved now and written later, so a field we forget to
/// write shows up in tests.
const PLACEHOLDER: u8 = 0xa5;
/// How long before the first packet v9's "boot" is put, in ms.
const BOOT_MARGIN_MS: u64 = 600_000;
/// v9 uptime at which "boot" is moved forward (2^31 ms, about 24.8 days).
const REBOOT_AFTER_MS: u64 = 1 << 31;

/// Builds export packets from flow records. One per exporter.
pub struct Encoder {
    version: Version,
    domain_id: u32,
    mtu: usize,
    refresh_ms: u64,
    refresh_packets: u32,
    sampling: u32,
    boot_ms: Option<u64>,
    buf: Vec<u8>,
    /// Start offset and template id of the data set being written.
    open_set: Option<(usize, u16)>,
    /// Flow records in the packet being built.
    data_records: u32,
    /// All records (templates, options, data) in the packet: v9's count.
    all_records: u16,
    /// Data records in the packet including options data (IPFIX sequence).
    seq_records: u32,
    now_ms: u64,
    /// v9: packets sent; IPFIX: data records sent.
    sequence: u32,
    last_templates_ms: Option<u64>,
    packets_since_templates: u32,
    templates_sent: u64,
}

impl Encoder {
    pub fn new(cfg: &EncoderConfig) -> Self {
        // Sets are padded to 4 bytes: keep the budget a multiple of 4 so the
        // padding never takes a packet past the MTU.
        let mtu = cfg.mtu.clamp(512, 65507) & !3;
        Encoder {
            version: cfg.version,
            domain_id: cfg.domain_id,
            mtu,
            refresh_ms: cfg.template_refresh_ms,
            refresh_packets: cfg.template_refresh_packets.max(1),
            sampling: cfg.sampling_interval.max(1),
            boot_ms: cfg.boot_ms,
            buf: Vec::with_capacity(mtu),
            open_set: None,
            data_records: 0,
            all_records: 0,
            seq_records: 0,
            now_ms: 0,
            sequence: 0,
            last_templates_ms: None,
            packets_since_templates: 0,
            templates_sent: 0,
        }
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// Flow records waiting in the unfinished packet.
    pub fn pending_records(&self) -> u32 {
        self.data_records
    }

    /// How many times the templates were written.
    pub fn templates_sent(&self) -> u64 {
        self.templates_sent
    }

    /// Puts the templates in the next packet started (e.g. after a
    /// collector came back).
    pub fn force_templates(&mut self) {
        self.last_templates_ms = None;
    }

    /// Adds a record. `now_ms` (Unix ms) stamps the packet header. When the
    /// packet is full it is finished and passed to `emit` with the number
    /// of flow records in it.
    pub fn push(&mut self, r: &FlowRecord, now_ms: u64, emit: &mut impl FnMut(&[u8], u32)) {
        self.now_ms = now_ms;
        let v6 = r.key.is_v6();
        let tid = if v6 { TEMPLATE_V6 } else { TEMPLATE_V4 };
        let fields = data_fields(v6, self.version == Version::Ipfix);
        let rlen = fields_len(fields);
        if self.buf.is_empty() {
            self.start_packet(r.first_ms);
        }
        let set_hdr = if self.open_set.map(|s| s.1) == Some(tid) {
            0
        } else {
            4
        };
        if !self.fits_with(set_hdr, rlen) && self.data_records > 0 {
            self.finish(emit);
            self.start_packet(r.first_ms);
        }
        if self.open_set.map(|s| s.1) != Some(tid) {
            self.close_set();
            self.open_set = Some((self.buf.len(), tid));
            self.put16(tid);
            self.placeholder(2);
        }
        self.put_record(r, fields);
        self.data_records += 1;
        self.seq_records += 1;
        self.all_records = self.all_records.wrapping_add(1);
    }

    /// Whether `r` fits in the packet being built (false: `push` would
    /// finish it and start a new one).
    pub fn fits(&self, r: &FlowRecord) -> bool {
        let v6 = r.key.is_v6();
        let tid = if v6 { TEMPLATE_V6 } else { TEMPLATE_V4 };
        let set_hdr = if self.open_set.map(|s| s.1) == Some(tid) {
            0
        } else {
            4
        };
        self.fits_with(
            set_hdr,
            fields_len(data_fields(v6, self.version == Version::Ipfix)),
        )
    }

    /// Room for a record of `rlen` bytes (and a set header) plus the
    /// worst-case padding of the last set.
    fn fits_with(&self, set_hdr: usize, rlen: usize) -> bool {
        self.buf.len() + set_hdr + rlen + 3 <= self.mtu
    }

    /// Finishes and emits the packet being built, if it holds any record.
    pub fn flush(&mut self, now_ms: u64, emit: &mut impl FnMut(&[u8], u32)) {
        self.now_ms = now_ms;
        if self.data_records > 0 {
            self.finish(emit);
        }
    }

    fn templates_due(&self) -> bool {
        match self.last_templates_ms {
            None => true,
            Some(t) => {
                self.now_ms.saturating_sub(t) >= self.refresh_ms
                    || self.packets_since_templates >= self.refresh_packets
            }
        }
    }

    fn start_packet(&mut self, first_ms: u64) {
        let since_boot = self.boot_ms.map(|b| self.now_ms.saturating_sub(b));
        if since_boot.map_or(true, |up| up > REBOOT_AFTER_MS) {
            // First packet, or sysUptime would soon wrap (49.7 days): move
            // "boot" to shortly before this packet. Collectors compute the
            // boot time per packet, so nothing else changes for them.
            let t = self.now_ms.min(first_ms).saturating_sub(BOOT_MARGIN_MS);
            self.boot_ms = Some(t - t % 1000);
        }
        self.buf.clear();
        self.open_set = None;
        self.data_records = 0;
        self.all_records = 0;
        self.seq_records = 0;
        self.placeholder(match self.version {
            Version::V9 => 20,
            Version::Ipfix => 16,
        });
        if self.templates_due() {
            self.put_templates();
            self.last_templates_ms = Some(self.now_ms);
            self.packets_since_templates = 0;
            self.templates_sent += 1;
        }
    }

    fn put_templates(&mut self) {
        let ipfix = self.version == Version::Ipfix;
        // Data templates.
        let start = self.buf.len();
        self.put16(if ipfix { 2 } else { 0 });
        self.placeholder(2);
        for (tid, v6) in [(TEMPLATE_V4, false), (TEMPLATE_V6, true)] {
            let f = data_fields(v6, ipfix);
            self.put16(tid);
            self.put16(f.len() as u16);
            self.put_fields(f);
            self.all_records += 1;
        }
        self.end_set(start);
        // Options template.
        let (scope, opts) = if ipfix {
            (IPFIX_OPTION_SCOPE, IPFIX_OPTION_FIELDS)
        } else {
            (V9_OPTION_SCOPE, V9_OPTION_FIELDS)
        };
        let start = self.buf.len();
        self.put16(if ipfix { 3 } else { 1 });
        self.placeholder(2);
        self.put16(TEMPLATE_OPTIONS);
        if ipfix {
            self.put16((scope.len() + opts.len()) as u16);
            self.put16(scope.len() as u16);
        } else {
            self.put16((scope.len() * 4) as u16);
            self.put16((opts.len() * 4) as u16);
        }
        self.put_fields(scope);
        self.put_fields(opts);
        self.all_records += 1;
        self.end_set(start);
        // Options data: the sampling interval.
        let start = self.buf.len();
        self.put16(TEMPLATE_OPTIONS);
        self.placeholder(2);
        self.put32(self.domain_id);
        self.put32(self.sampling);
        self.buf.push(1); // deterministic (1-in-N)
        if ipfix {
            self.put32(1);
            self.put32(self.sampling - 1);
        }
        self.all_records += 1;
        self.seq_records += 1;
        self.end_set(start);
    }

    fn put_fields(&mut self, f: Fields) {
        for &(id, len) in f {
            self.put16(id);
            self.put16(len);
        }
    }

    fn put_record(&mut self, r: &FlowRecord, fields: Fields) {
        let k = &r.key;
        let (sport, dport) = if is_icmp(k.protocol) {
            (0, (k.src_port & 0xff) << 8 | (k.dst_port & 0xff))
        } else {
            (k.src_port, k.dst_port)
        };
        let boot = self.boot_ms.unwrap_or(0);
        for &(id, len) in fields {
            let v: u64 = match id {
                ie::BYTES => r.bytes,
                ie::PACKETS => r.packets,
                ie::PROTOCOL => k.protocol.into(),
                ie::TOS => k.tos.into(),
                ie::TCP_FLAGS => r.tcp_flags.into(),
                ie::SRC_PORT => sport.into(),
                ie::DST_PORT => dport.into(),
                ie::INPUT_IF => k.iface.into(),
                ie::VLAN => k.vlan.into(),
                ie::FIRST_SWITCHED => r.first_ms.saturating_sub(boot) & 0xffff_ffff,
                ie::LAST_SWITCHED => r.last_ms.saturating_sub(boot) & 0xffff_ffff,
                ie::FLOW_START_MS => r.first_ms,
                ie::FLOW_END_MS => r.last_ms,
                ie::DIRECTION => r.direction.into(),
                ie::SRC_V4 | ie::DST_V4 | ie::SRC_V6 | ie::DST_V6 => {
                    let src = matches!(id, ie::SRC_V4 | ie::SRC_V6);
                    match (k.addrs, src) {
                        (L3Addrs::V4 { src, .. }, true) => self.buf.extend_from_slice(&src),
                        (L3Addrs::V4 { dst, .. }, false) => self.buf.extend_from_slice(&dst),
                        (L3Addrs::V6 { src, .. }, true) => self.buf.extend_from_slice(&src),
                        (L3Addrs::V6 { dst, .. }, false) => self.buf.extend_from_slice(&dst),
                        (L3Addrs::None, _) => self.buf.resize(self.buf.len() + len as usize, 0),
                    }
                    continue;
                }
                _ => 0,
            };
            let be = v.to_be_bytes();
            self.buf.extend_from_slice(&be[8 - len as usize..]);
        }
    }

    fn close_set(&mut self) {
        if let Some((start, _)) = self.open_set.take() {
            self.end_set(start);
        }
    }

    /// Pads the set that starts at `start` to 4 bytes and writes its length.
    fn end_set(&mut self, start: usize) {
        while (self.buf.len() - start) % 4 != 0 {
            self.buf.push(0);
        }
        let len = (self.buf.len() - start) as u16;
        self.buf[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
    }

    fn finish(&mut self, emit: &mut impl FnMut(&[u8], u32)) {
        self.close_set();
        let secs = (self.now_ms / 1000) as u32;
        let mut h = [0u8; 20];
        match self.version {
            Version::V9 => {
                let uptime =
                    (u64::from(secs) * 1000).wrapping_sub(self.boot_ms.unwrap_or(0)) as u32;
                h[0..2].copy_from_slice(&9u16.to_be_bytes());
                h[2..4].copy_from_slice(&self.all_records.to_be_bytes());
                h[4..8].copy_from_slice(&uptime.to_be_bytes());
                h[8..12].copy_from_slice(&secs.to_be_bytes());
                h[12..16].copy_from_slice(&self.sequence.to_be_bytes());
                h[16..20].copy_from_slice(&self.domain_id.to_be_bytes());
                self.buf[..20].copy_from_slice(&h);
                self.sequence = self.sequence.wrapping_add(1);
            }
            Version::Ipfix => {
                h[0..2].copy_from_slice(&10u16.to_be_bytes());
                h[2..4].copy_from_slice(&(self.buf.len() as u16).to_be_bytes());
                h[4..8].copy_from_slice(&secs.to_be_bytes());
                h[8..12].copy_from_slice(&self.sequence.to_be_bytes());
                h[12..16].copy_from_slice(&self.domain_id.to_be_bytes());
                self.buf[..16].copy_from_slice(&h[..16]);
                self.sequence = self.sequence.wrapping_add(self.seq_records);
            }
        }
        emit(&self.buf, self.data_records);
        self.packets_since_templates = self.packets_since_templates.saturating_add(1);
        self.buf.clear();
        self.open_set = None;
        self.data_records = 0;
        self.all_records = 0;
        self.seq_records = 0;
    }

    fn placeholder(&mut self, n: usize) {
        self.buf.resize(self.buf.len() + n, PLACEHOLDER);
    }

    fn put16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    fn put32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::super::decode::Decoder;
    use super::super::FlowKey;
    use super::*;

    fn rec4() -> FlowRecord {
        FlowRecord {
            key: FlowKey {
                iface: 3,
                vlan: 100,
                addrs: L3Addrs::V4 {
                    src: [192, 0, 2, 1],
                    dst: [198, 51, 100, 7],
                },
                protocol: 6,
                src_port: 40000,
                dst_port: 443,
                tos: 0x28,
            },
            packets: 5,
            bytes: 0x1_0000_0002,
            first_ms: 1_700_000_000_123,
            last_ms: 1_700_000_001_456,
            tcp_flags: 0x1b,
            direction: 1,
        }
    }

    fn rec6() -> FlowRecord {
        let mut r = rec4();
        let mut src = [0u8; 16];
        src[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        src[15] = 1;
        let mut dst = src;
        dst[15] = 2;
        r.key.addrs = L3Addrs::V6 { src, dst };
        r.key.protocol = 58;
        r.key.src_port = 128; // echo request
        r.key.dst_port = 0;
        r.tcp_flags = 0;
        r
    }

    fn cfg(version: Version) -> EncoderConfig {
        EncoderConfig {
            version,
            domain_id: 0x0102_0304,
            boot_ms: Some(1_699_999_999_000),
            ..Default::default()
        }
    }

    fn encode_all(enc: &mut Encoder, recs: &[FlowRecord], now: u64) -> Vec<(Vec<u8>, u32)> {
        let mut out = Vec::new();
        let mut emit = |p: &[u8], n: u32| out.push((p.to_vec(), n));
        for r in recs {
            enc.push(r, now, &mut emit);
        }
        enc.flush(now, &mut emit);
        out
    }

    #[test]
    fn record_lengths() {
        assert_eq!(record_len(Version::V9, false), 46);
        assert_eq!(record_len(Version::V9, true), 70);
        assert_eq!(record_len(Version::Ipfix, false), 54);
        assert_eq!(record_len(Version::Ipfix, true), 78);
    }

    /// The v9 data set of one IPv4 record, byte for byte.
    #[test]
    fn v9_record_bytes() {
        let mut enc = Encoder::new(&cfg(Version::V9));
        let pkts = encode_all(&mut enc, &[rec4()], 1_700_000_002_999);
        assert_eq!(pkts.len(), 1);
        let p = &pkts[0].0;
        #[rustfmt::skip]
        let header: [u8; 20] = [
            0, 9, 0, 5, // version, count: 2 templates + options template + options data + 1 record
            0, 0, 0x0b, 0xb8, // sysUptime: 1_700_000_002_000 - boot = 3000
            0x65, 0x53, 0xf1, 0x02, // unix_secs 1_700_000_002
            0, 0, 0, 0, // sequence: first packet
            1, 2, 3, 4, // source id
        ];
        assert_eq!(p[..20], header);
        #[rustfmt::skip]
        let data: [u8; 52] = [
            1, 0, 0, 52, // set 256, length 4 + 46 + 2 padding
            0, 0, 0, 1, 0, 0, 0, 2, // IN_BYTES
            0, 0, 0, 0, 0, 0, 0, 5, // IN_PKTS
            6, 0x28, 0x1b, // PROTOCOL, SRC_TOS, TCP_FLAGS
            0x9c, 0x40, 0x01, 0xbb, // ports 40000, 443
            192, 0, 2, 1, 198, 51, 100, 7, // addresses
            0, 0, 0, 3, 0, 100, // INPUT_SNMP, SRC_VLAN
            0, 0, 0x04, 0x63, // FIRST_SWITCHED 1123
            0, 0, 0x09, 0x98, // LAST_SWITCHED 2456
            1, 0, 0, // DIRECTION, padding
        ];
        assert_eq!(p[p.len() - 52..], data);
    }

    /// IPFIX header and templates, byte for byte.
    #[test]
    fn ipfix_header_and_templates_bytes() {
        let mut enc = Encoder::new(&cfg(Version::Ipfix));
        let pkts = encode_all(&mut enc, &[rec4()], 1_700_000_002_999);
        let p = &pkts[0].0;
        // Header: version 10, length, export time, sequence 0, domain.
        assert_eq!(p[0..2], [0, 10]);
        assert_eq!(usize::from(u16::from_be_bytes([p[2], p[3]])), p.len());
        assert_eq!(p[4..16], [0x65, 0x53, 0xf1, 0x02, 0, 0, 0, 0, 1, 2, 3, 4]);
        #[rustfmt::skip]
        let v4_template: [u8; 64] = [
            0, 2, 0, 124, // template set, length 4 + 2 * 60
            1, 0, 0, 14, // template 256, 14 fields
            0, 1, 0, 8, 0, 2, 0, 8, 0, 4, 0, 1, 0, 5, 0, 1, 0, 6, 0, 1, 0, 7, 0, 2,
            0, 11, 0, 2, 0, 8, 0, 4, 0, 12, 0, 4, 0, 10, 0, 4, 0, 58, 0, 2,
            0, 152, 0, 8, 0, 153, 0, 8, 0, 61, 0, 1,
        ];
        assert_eq!(p[16..80], v4_template);
        #[rustfmt::skip]
        let options: [u8; 56] = [
            0, 3, 0, 32, // options template set
            1, 2, 0, 5, 0, 1, // template 258, 5 fields, 1 scope field
            0, 149, 0, 4, 0, 34, 0, 4, 0, 35, 0, 1, 1, 49, 0, 4, 1, 50, 0, 4,
            0, 0, // padding
            1, 2, 0, 24, // options data set 258
            1, 2, 3, 4, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0, // domain, interval 1, algorithm, 1, 0
            0, 0, 0, // padding
        ];
        assert_eq!(p[140..196], options);
        // Then the data set: 4 + 54 + 2 padding.
        assert_eq!(p[196..200], [1, 0, 0, 60]);
        assert_eq!(p.len(), 256);
    }

    #[test]
    fn round_trip_both_versions() {
        let mut recs = Vec::new();
        for i in 0..500u64 {
            let mut r = if i % 3 == 0 { rec6() } else { rec4() };
            r.packets = i + 1;
            r.bytes = (i + 1) * 0x0123_4567_89ab;
            r.first_ms += i * 7;
            r.last_ms += i * 11;
            if !is_icmp(r.key.protocol) {
                r.key.src_port = i as u16;
            }
            r.key.vlan = (i % 4095) as u16;
            recs.push(r);
        }
        for version in [Version::V9, Version::Ipfix] {
            let mut enc = Encoder::new(&cfg(version));
            let pkts = encode_all(&mut enc, &recs, 1_700_000_100_000);
            assert!(pkts.len() > 10);
            let mut dec = Decoder::default();
            let mut got = Vec::new();
            let mut expect_seq = 0u32;
            for (i, (p, n)) in pkts.iter().enumerate() {
                assert!(
                    p.len() <= 1400,
                    "{version:?} packet {i} is {} bytes",
                    p.len()
                );
                assert_eq!(p.len() % 4, 0);
                let d = match dec.decode(p) {
                    Ok(d) => d,
                    Err(e) => panic!("{version:?} packet {i}: {e:?}"),
                };
                assert_eq!(d.records.len() as u32, *n);
                assert_eq!(d.sequence, expect_seq, "{version:?} packet {i}");
                let data = d.records.len() as u32 + d.options_records;
                expect_seq += match version {
                    Version::V9 => 1,
                    Version::Ipfix => data,
                };
                assert_eq!(d.options_records, u32::from(i == 0));
                assert_eq!(d.template_records, 3 * u32::from(i == 0));
                if let Some(c) = d.count {
                    assert_eq!(u32::from(c), data + d.template_records);
                }
                got.extend(d.records);
            }
            assert_eq!(got, recs, "{version:?}");
            assert_eq!(dec.sampling_interval, Some(1));
        }
    }

    #[test]
    fn templates_refresh_by_packets_and_time() {
        let mut c = cfg(Version::Ipfix);
        c.template_refresh_packets = 3;
        let mut enc = Encoder::new(&c);
        let recs = vec![rec4(); 1000];
        let pkts = encode_all(&mut enc, &recs, 1_700_000_100_000);
        let with_templates: Vec<usize> = pkts
            .iter()
            .enumerate()
            .filter(|(_, (p, _))| p[16..18] == [0, 2])
            .map(|(i, _)| i)
            .collect();
        assert_eq!(with_templates[..4], [0, 3, 6, 9]);
        // By time: 20 s later the next packet carries them again.
        let mut enc = Encoder::new(&cfg(Version::V9));
        let mut first = Vec::new();
        enc.push(&rec4(), 1_700_000_100_000, &mut |_, _| {});
        enc.flush(1_700_000_100_000, &mut |_, _| {});
        enc.push(&rec4(), 1_700_000_110_000, &mut |_, _| {});
        enc.flush(1_700_000_110_000, &mut |p, _| first.push(p.to_vec()));
        enc.push(&rec4(), 1_700_000_120_000, &mut |_, _| {});
        enc.flush(1_700_000_120_000, &mut |p, _| first.push(p.to_vec()));
        assert_eq!(first[0][20..22], [1, 0], "no templates after 10 s");
        assert_eq!(first[1][20..22], [0, 0], "templates after 20 s");
        assert_eq!(enc.templates_sent(), 2);
    }

    #[test]
    fn packets_fill_up_to_the_mtu() {
        let mut enc = Encoder::new(&cfg(Version::V9));
        let pkts = encode_all(&mut enc, &vec![rec4(); 200], 1_700_000_100_000);
        // Second packet: header + set header + 29 records of 46 bytes + padding.
        assert_eq!(pkts[1].1, 29);
        assert_eq!(pkts[1].0.len(), 20 + 4 + 29 * 46 + 2);
        let total: u32 = pkts.iter().map(|p| p.1).sum();
        assert_eq!(total, 200);
    }

    /// Encode-then-decode is the identity for random records.
    #[test]
    fn round_trip_random_records() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let recs: Vec<FlowRecord> = (0..3000)
            .map(|_| {
                let (a, b, c) = (next(), next(), next());
                let protocol = [6, 17, 1, 58, 47, (a >> 40) as u8][(a % 6) as usize];
                let icmp = is_icmp(protocol);
                let mut src6 = [0u8; 16];
                src6[..8].copy_from_slice(&b.to_be_bytes());
                src6[8..].copy_from_slice(&c.to_be_bytes());
                let first_ms = 1_600_000_000_000 + (b % 1_000_000_000);
                FlowRecord {
                    key: FlowKey {
                        iface: a as u16,
                        vlan: (a >> 16) as u16 & 0xfff,
                        addrs: if c % 3 == 0 {
                            L3Addrs::V6 {
                                src: src6,
                                dst: [(c >> 8) as u8; 16],
                            }
                        } else {
                            L3Addrs::V4 {
                                src: (b as u32).to_be_bytes(),
                                dst: ((b >> 32) as u32).to_be_bytes(),
                            }
                        },
                        protocol,
                        src_port: if icmp {
                            (c >> 16) as u8 as u16
                        } else {
                            (c >> 16) as u16
                        },
                        dst_port: if icmp {
                            (c >> 24) as u8 as u16
                        } else {
                            (c >> 32) as u16
                        },
                        tos: (a >> 48) as u8,
                    },
                    packets: c >> (c % 64),
                    bytes: b >> (a % 64),
                    first_ms,
                    last_ms: first_ms + (c % 3_600_000),
                    tcp_flags: (b >> 56) as u8,
                    direction: (c >> 56) as u8 % 4,
                }
            })
            .collect();
        for version in [Version::V9, Version::Ipfix] {
            let mut c = cfg(version);
            // v9 cannot carry times before its boot instant: put it before all.
            c.boot_ms = Some(1_599_000_000_000);
            c.mtu = 1500;
            let mut enc = Encoder::new(&c);
            let mut dec = Decoder::default();
            let mut got = Vec::new();
            let now = recs.iter().map(|r| r.last_ms).max().unwrap_or(0);
            let mut emit = |p: &[u8], _: u32| match dec.decode(p) {
                Ok(d) => got.extend(d.records),
                Err(e) => panic!("{version:?}: {e:?}"),
            };
            for r in &recs {
                enc.push(r, now, &mut emit);
            }
            enc.flush(now, &mut emit);
            assert_eq!(got.len(), recs.len(), "{version:?}");
            if let Some(i) = (0..recs.len()).find(|&i| got[i] != recs[i]) {
                panic!(
                    "{version:?} record {i}: sent {:?}, got {:?}",
                    recs[i], got[i]
                );
            }
        }
    }

    /// Regression guard: a v9 uptime past 2^31 ms moves "boot" forward
    /// instead of wrapping the 32-bit FIRST/LAST_SWITCHED.
    #[test]
    fn v9_boot_moves_before_the_uptime_wraps() {
        let mut c = cfg(Version::V9);
        c.boot_ms = Some(1_600_000_000_000); // three years before the flows
        let mut enc = Encoder::new(&c);
        let pkts = encode_all(&mut enc, &[rec4()], 1_700_000_100_000);
        let d = Decoder::default().decode(&pkts[0].0).unwrap_or_default();
        assert_eq!(d.records, [rec4()]);
        assert!(d.sys_uptime_ms.unwrap_or(u32::MAX) < 1 << 31);
    }

    #[test]
    fn v9_boot_defaults_to_before_the_first_flow() {
        let mut c = cfg(Version::V9);
        c.boot_ms = None;
        let mut enc = Encoder::new(&c);
        let pkts = encode_all(&mut enc, &[rec4()], 1_700_000_100_000);
        let mut dec = Decoder::default();
        let d = dec.decode(&pkts[0].0).unwrap_or_default();
        assert_eq!(d.records, [rec4()]);
    }
}

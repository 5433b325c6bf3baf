//! Flow input: decodes NetFlow v5, NetFlow v9 (RFC 3954), IPFIX (RFC 7011)
//! and sFlow v5 datagrams from routers into [`FlowRecord`]s, so exported
//! flows can be counted into the same counters as captured frames.
//!
//! # API
//!
//! ```text
//! socket::Receiver ──(from, bytes)──► Collector::datagram(from, now, bytes, &mut |rec: &FlowRecord| ..)
//!   recvmmsg batches,                   protocol recognised per datagram,
//!   kernel drops (SO_RXQ_OVFL)          records scaled by their sampling rate
//! ```
//!
//! - [`Collector::new`] takes a validated [`CollectorConfig`]
//!   ([`CollectorConfig::from_settings`] maps the checked `[collector]`
//!   settings, `crate::settings::collector`, onto it).
//! - [`Collector::datagram`] decodes one UDP payload and hands every flow
//!   record to the closure; nothing is allocated per record. The protocol is
//!   recognised from the first bytes (v5: `00 05`, v9: `00 09`, IPFIX:
//!   `00 0a`, sFlow: `00 00 00 05`).
//! - [`Collector::maintain`] expires held records, templates and idle
//!   exporters; `datagram` calls it itself once a second, call it from a
//!   timer when no datagram arrives.
//! - [`Collector::stats`] ([`CollectorStats`]), [`Collector::exporters`]
//!   (per exporter: name, [`ExporterStats`] with sequence loss and the rate
//!   in use) and [`Collector::interface_counters`] (sFlow counter samples,
//!   the latest value per exporter and ifIndex) are what the metrics page
//!   renders as `xdpacct_collector_*`.
//! - [`Collector::interface_label`] writes the `interface` label of a
//!   flow-fed series: `<exporter name>:<ifname or ifIndex>`.
//! - [`input::FlowInput`] is what runs: a collector and the flow-fed shard
//!   it counts into through `shard::worker::account_record` (the capture
//!   path's resolve and count), driven by a receiver thread (`xdpacct
//!   run`) or by [`replay::Tap`] (`xdpacct replay`); [`input::CollectorMetrics`]
//!   renders `xdpacct_collector_*`.
//!
//! # Bytes: which layer is exact
//!
//! NetFlow/IPFIX count IP bytes (`IN_BYTES` / `octetDeltaCount` are the IP
//! total lengths, layer 3). sFlow reports the frame length, which per the
//! sFlow v5 spec (sampled_header `frame_length`) *includes* the 4-byte FCS;
//! the raw header's IP header gives the layer-3 length. So each record
//! carries both figures and says which is exact ([`FlowRecord::bytes`]):
//!
//! | source | `l3` | `l2` (no FCS) | `l2_fcs` |
//! |---|---|---|---|
//! | NetFlow v5/v9, IPFIX | exact (`octetDeltaCount`) | estimate: + 14 per packet (untagged Ethernet), exact if the record has `layer2OctetDeltaCount` (352) | `l2` + 4 per packet |
//! | sFlow, Ethernet header | exact (IP length in the sampled header) | exact: `frame_length` − 4 | exact: `frame_length` |
//! | sFlow, IPv4/IPv6 header | exact (`frame_length`) | estimate: + 14 per packet | `l2` + 4 per packet |
//! | sFlow sampled IPv4/IPv6 data (formats 3, 4) | exact (`length`) | estimate | estimate |
//!
//! "Exact" is about the layer only: a sampled record (rate > 1) is always an
//! estimate of the traffic, scaled by its rate.
//!
//! # Sampling
//!
//! Every record's packets and bytes are multiplied by its rate, found in
//! this order: the exporter's configured `sampling_rate`; a rate in the
//! record itself (v9 `SAMPLING_INTERVAL` 34, `FLOW_SAMPLER_RANDOM_INTERVAL`
//! 50, IPFIX `samplingPacketInterval`/`samplingPacketSpace` 305/306,
//! `samplingSize`/`samplingPopulation` 309/310, the sFlow sample's rate, the
//! NetFlow v5 header's `sampling_interval` low 14 bits); the rate an options
//! record gave for the record's sampler id (48 / 302); the rate an options
//! record without sampler id gave for the whole observation domain; else
//! `default_sampling_rate`, counted in `records_default_rate`.
//!
//! # Bounds
//!
//! Exporters, templates (per exporter and in total, fields per template),
//! held data sets (per exporter and in total, bytes and age), sampler ids,
//! sequence streams and interface counter entries all have caps
//! ([`CollectorLimits`]); what a cap refuses is counted in
//! [`CollectorStats::dropped`] by [`DropReason`].
//!
//! # Properties
//!
//! No unsafe code outside [`socket`]. No panic on any datagram. Allocation
//! happens per new exporter, template, sampler, held data set and counter
//! entry, never per record.

mod exporters;
pub mod input;
mod ipfix;
mod netflow5;
mod netflow9;
pub mod replay;
mod sequence;
mod sflow;
#[allow(unsafe_code)] // listed in lib.rs
pub mod socket;
mod template;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

pub use exporters::{CollectorConfigError, ExporterConfig, ExporterStats, IpPrefix};
pub use sequence::{SeqEvent, SeqTracker};
pub use sflow::InterfaceCounters;

use exporters::Exporters;
use sflow::CounterTable;
use template::{Pending, TemplateCache};

use crate::wire::{L3Addrs, WireError};

/// Flow protocols the collector recognises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FlowProtocol {
    NetflowV5 = 0,
    NetflowV9 = 1,
    Ipfix = 2,
    SflowV5 = 3,
}

impl FlowProtocol {
    pub const ALL: [FlowProtocol; 4] = [
        FlowProtocol::NetflowV5,
        FlowProtocol::NetflowV9,
        FlowProtocol::Ipfix,
        FlowProtocol::SflowV5,
    ];
    pub const COUNT: usize = Self::ALL.len();

    /// The `protocol` label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            FlowProtocol::NetflowV5 => "netflow_v5",
            FlowProtocol::NetflowV9 => "netflow_v9",
            FlowProtocol::Ipfix => "ipfix",
            FlowProtocol::SflowV5 => "sflow_v5",
        }
    }
}

/// The layer a byte count is at (the values of `accounting.bytes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ByteLayer {
    /// IP total length.
    #[default]
    L3,
    /// Ethernet frame without FCS (VLAN tags included).
    L2,
    /// Ethernet frame with its 4-byte FCS.
    L2Fcs,
}

/// Ethernet header bytes added to an IP length when only layer 3 is known
/// (untagged frame; a tagged one has 4 more per tag, unknown here).
pub const ETHERNET_OVERHEAD: u64 = 14;
/// FCS bytes per frame.
pub const FCS_LEN: u64 = 4;

/// Flow direction when the exporter says it (v9/IPFIX `flowDirection` 61).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum FlowDirection {
    #[default]
    Unknown,
    Ingress,
    Egress,
}

/// Index of an exporter in the collector's table (stable while the
/// exporter is known; an idle unconfigured exporter's slot is reused after
/// `exporter_timeout`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ExporterId(pub u32);

/// One decoded flow record (or sFlow flow sample), already scaled by its
/// sampling rate. Plain `Copy` data: the collector hands a reference to the
/// caller's closure and reuses it.
///
/// For ICMP / ICMPv6, `src_port` is the type and `dst_port` the code, as in
/// [`crate::wire::FrameFacts`] (from `icmpTypeCodeIPv4/IPv6`, or from a
/// destination port of `type << 8 | code` with source port 0, the Cisco
/// way).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FlowRecord {
    pub exporter: ExporterId,
    pub protocol_source: Option<FlowProtocol>,
    /// Addresses; `None` when the record had none (an sFlow sample of a
    /// non-IP frame, or a record without address fields).
    pub addrs: L3Addrs,
    pub src_port: u16,
    pub dst_port: u16,
    /// IP protocol number.
    pub protocol: u8,
    /// IPv4 ToS / IPv6 traffic class.
    pub tos: u8,
    /// TCP flags (OR of the flow's packets).
    pub tcp_flags: u8,
    /// VLAN id when known (sFlow raw header, v9/IPFIX `vlanId` 58), else 0.
    pub vlan: u16,
    /// Packets, scaled by `sampling_rate`.
    pub packets: u64,
    /// Layer-3 bytes (IP total lengths), scaled.
    pub l3_bytes: u64,
    /// Layer-2 bytes without FCS, scaled.
    pub l2_bytes: u64,
    /// `l3_bytes` is what the exporter reported, not derived.
    pub l3_exact: bool,
    /// `l2_bytes` is what the exporter reported, not derived.
    pub l2_exact: bool,
    /// The layer of the byte count the exporter reported.
    pub reported_layer: ByteLayer,
    /// Packets as reported, before scaling.
    pub sampled_packets: u64,
    pub direction: FlowDirection,
    /// Input ifIndex (0 when not given).
    pub input_if: u32,
    /// Output ifIndex (0 when not given).
    pub output_if: u32,
    /// Source / destination AS (0 when not given).
    pub src_as: u32,
    pub dst_as: u32,
    /// The rate `packets` and the byte counts were multiplied by.
    pub sampling_rate: u32,
    /// `sampling_rate` is `default_sampling_rate` (no rate was known).
    pub default_rate: bool,
    /// First and last packet, Unix milliseconds (0 when not given).
    pub first_ms: u64,
    pub last_ms: u64,
}

impl FlowRecord {
    /// The byte count at `layer` and whether it is exact at that layer
    /// (see the module docs' table).
    pub fn bytes(&self, layer: ByteLayer) -> (u64, bool) {
        match layer {
            ByteLayer::L3 => (self.l3_bytes, self.l3_exact),
            ByteLayer::L2 => (self.l2_bytes, self.l2_exact),
            ByteLayer::L2Fcs => (
                self.l2_bytes
                    .saturating_add(self.packets.saturating_mul(FCS_LEN)),
                self.l2_exact,
            ),
        }
    }
}

/// Why something was dropped or skipped. Each variant feeds
/// `xdpacct_collector_dropped_total{reason}`; the doc of each says what is
/// counted (datagrams, sets, templates, records, samples).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Datagrams from a source outside `allowed_exporters`.
    NotAllowed = 0,
    /// Datagrams from a new exporter while the exporter table is full.
    TooManyExporters,
    /// Datagrams of no known protocol or version.
    UnknownVersion,
    /// Datagrams (or the rest of one) ending inside a header, set or record.
    Truncated,
    /// Datagrams whose length fields are impossible (a set longer than the
    /// datagram, a zero set length, an IPFIX length not matching).
    BadLength,
    /// Templates that are malformed (no fields, record length 0, a
    /// zero-length field in v9, a scope length not a multiple of 4).
    BadTemplate,
    /// Templates refused because a cap was reached (templates per exporter,
    /// in total, or fields per template).
    TemplateLimit,
    /// Data sets whose template never came within `pending_hold`.
    NoTemplate,
    /// Data sets not held because the hold buffer was full.
    PendingLimit,
    /// Records whose variable-length field runs past the end of the set.
    BadRecord,
    /// sFlow samples of an unknown format (skipped), and flow samples
    /// without a packet description we decode (raw header of an unknown
    /// link layer, or none): those are still counted as one packet each,
    /// with the frame length as an estimate of the bytes or none.
    UnsupportedSample,
    /// sFlow samples whose length fields are impossible.
    BadSample,
    /// Sets with a reserved set id (v9 2..255, IPFIX 0, 1, 4..255), skipped.
    ReservedSet,
    /// Sampler ids not remembered because the sampler table was full.
    SamplerLimit,
    /// Sequence streams not tracked because the per-exporter cap was hit.
    StreamLimit,
    /// sFlow counter entries not kept because the table was full.
    CounterLimit,
}

impl DropReason {
    pub const ALL: [DropReason; 16] = [
        DropReason::NotAllowed,
        DropReason::TooManyExporters,
        DropReason::UnknownVersion,
        DropReason::Truncated,
        DropReason::BadLength,
        DropReason::BadTemplate,
        DropReason::TemplateLimit,
        DropReason::NoTemplate,
        DropReason::PendingLimit,
        DropReason::BadRecord,
        DropReason::UnsupportedSample,
        DropReason::BadSample,
        DropReason::ReservedSet,
        DropReason::SamplerLimit,
        DropReason::StreamLimit,
        DropReason::CounterLimit,
    ];
    pub const COUNT: usize = Self::ALL.len();

    /// A fault of the datagram itself (`xdpacct_collector_malformed_total`),
    /// not a policy, a cap or a timeout (`xdpacct_collector_dropped_total`).
    pub const fn is_malformed(self) -> bool {
        matches!(
            self,
            DropReason::UnknownVersion
                | DropReason::Truncated
                | DropReason::BadLength
                | DropReason::BadTemplate
                | DropReason::BadRecord
                | DropReason::UnsupportedSample
                | DropReason::BadSample
                | DropReason::ReservedSet
        )
    }

    /// The `reason` label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            DropReason::NotAllowed => "not_allowed",
            DropReason::TooManyExporters => "too_many_exporters",
            DropReason::UnknownVersion => "unknown_version",
            DropReason::Truncated => "truncated",
            DropReason::BadLength => "bad_length",
            DropReason::BadTemplate => "bad_template",
            DropReason::TemplateLimit => "template_limit",
            DropReason::NoTemplate => "no_template",
            DropReason::PendingLimit => "pending_limit",
            DropReason::BadRecord => "bad_record",
            DropReason::UnsupportedSample => "unsupported_sample",
            DropReason::BadSample => "bad_sample",
            DropReason::ReservedSet => "reserved_set",
            DropReason::SamplerLimit => "sampler_limit",
            DropReason::StreamLimit => "stream_limit",
            DropReason::CounterLimit => "counter_limit",
        }
    }
}

/// Collector-wide counters (monotonic unless said otherwise).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CollectorStats {
    /// Datagrams decoded, by [`FlowProtocol`] (indexed by `as u8`).
    pub datagrams: [u64; FlowProtocol::COUNT],
    /// Flow records / flow samples handed out, by protocol.
    pub records: [u64; FlowProtocol::COUNT],
    /// Options data records read (sampler options and others), v9 + IPFIX.
    pub options_records: u64,
    /// Records that used `default_sampling_rate` (no rate known).
    pub records_default_rate: u64,
    /// Dropped or skipped things by [`DropReason`] (indexed by `as u8`).
    pub dropped: [u64; DropReason::COUNT],
    /// sFlow raw headers that `parse_frame` could not parse fully, by
    /// [`WireError`] (the sample is still counted with what was learnt).
    pub sflow_header_errors: [u64; WireError::COUNT],
    /// Template records learnt (new or changed layout) / refreshed
    /// (same layout again) / withdrawn / expired.
    pub templates_learnt: u64,
    pub templates_refreshed: u64,
    pub templates_withdrawn: u64,
    pub templates_expired: u64,
    /// sFlow flow and counter records of formats not used (extended
    /// router, host counters, ...): read past, not errors.
    pub sflow_records_skipped: u64,
    /// sFlow generic interface counter records read.
    pub sflow_counter_records: u64,
    /// Data sets held for a template, and those later decoded.
    pub sets_held: u64,
    pub sets_released: u64,
    /// Gauges: templates known, data sets and bytes held now, exporters known.
    pub templates_active: u64,
    pub pending_sets: u64,
    pub pending_bytes: u64,
    pub exporters_active: u64,
    /// Exporters forgotten after `exporter_timeout` idle.
    pub exporters_expired: u64,
}

impl CollectorStats {
    #[inline]
    pub fn drop(&mut self, reason: DropReason, n: u64) {
        self.dropped[reason as usize] += n;
    }
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason as usize]
    }
    pub fn datagrams(&self, p: FlowProtocol) -> u64 {
        self.datagrams[p as usize]
    }
    pub fn records(&self, p: FlowProtocol) -> u64 {
        self.records[p as usize]
    }
}

/// Caps on the collector's memory. What they refuse is counted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectorLimits {
    /// Exporters (source addresses) tracked at once. Defaults to 1024.
    pub max_exporters: usize,
    /// Templates per exporter (all domains). Defaults to 1024.
    pub max_templates_per_exporter: usize,
    /// Templates in total. Defaults to 16384.
    pub max_templates: usize,
    /// Fields in one template. Defaults to 512.
    pub max_template_fields: usize,
    /// Bytes of data sets held for their template, per exporter. Defaults
    /// to 256 KiB.
    pub max_pending_bytes_per_exporter: usize,
    /// Bytes held in total. Defaults to 4 MiB.
    pub max_pending_bytes: usize,
    /// Sampler ids remembered per exporter. Defaults to 256.
    pub max_samplers_per_exporter: usize,
    /// Sequence streams per exporter (domains, sFlow agents and sources).
    /// Defaults to 1024.
    pub max_streams_per_exporter: usize,
    /// sFlow interface counter entries in total. Defaults to 65536.
    pub max_interface_counters: usize,
}

impl Default for CollectorLimits {
    fn default() -> Self {
        CollectorLimits {
            max_exporters: 1024,
            max_templates_per_exporter: 1024,
            max_templates: 16384,
            max_template_fields: 512,
            max_pending_bytes_per_exporter: 256 << 10,
            max_pending_bytes: 4 << 20,
            max_samplers_per_exporter: 256,
            max_streams_per_exporter: 1024,
            max_interface_counters: 65536,
        }
    }
}

/// `[collector]` settings, already typed ([`CollectorConfig::from_settings`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectorConfig {
    /// UDP addresses to listen on, e.g. `0.0.0.0:2055`, `[::]:6343`. The
    /// protocol is recognised per datagram, so any port takes any protocol.
    pub listen: Vec<SocketAddr>,
    /// Sources accepted; others are dropped and counted (`not_allowed`).
    /// Empty: every source is accepted. Configured exporters are always
    /// accepted.
    pub allowed_exporters: Vec<IpPrefix>,
    /// `[[collector.exporters]]`: names, rate overrides, interface names.
    pub exporters: Vec<ExporterConfig>,
    /// Rate for records with no known rate. Defaults to 1.
    pub default_sampling_rate: u32,
    /// How long a data set waits for its template. Defaults to 5 s.
    pub pending_hold: Duration,
    /// A template not refreshed for this long is forgotten. Defaults to
    /// 30 min (RFC 7011's suggested UDP template lifetime is 3x the
    /// exporter's refresh interval; 30 min covers every default we know).
    pub template_timeout: Duration,
    /// An unconfigured exporter silent for this long is forgotten (its
    /// templates too). Defaults to 1 h.
    pub exporter_timeout: Duration,
    pub limits: CollectorLimits,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            listen: Vec::new(),
            allowed_exporters: Vec::new(),
            exporters: Vec::new(),
            default_sampling_rate: 1,
            pending_hold: Duration::from_secs(5),
            template_timeout: Duration::from_secs(30 * 60),
            exporter_timeout: Duration::from_secs(3600),
            limits: CollectorLimits::default(),
        }
    }
}

/// The flow collector's decoding core: one per receive thread (it is not
/// shared; all state lives inside).
pub struct Collector {
    cfg: CollectorConfig,
    exporters: Exporters,
    templates: TemplateCache,
    pending: Pending,
    counters: CounterTable,
    stats: CollectorStats,
    next_maintenance: Option<Instant>,
}

/// How often `datagram` runs [`Collector::maintain`] by itself.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(1);

impl Collector {
    /// Checks `cfg` (exporter names and addresses, rates) and builds the
    /// collector. Errors name the exporter and the key to fix.
    pub fn new(cfg: CollectorConfig) -> Result<Collector, CollectorConfigError> {
        if cfg.default_sampling_rate == 0 {
            return Err(CollectorConfigError::ZeroDefaultRate);
        }
        let exporters = Exporters::new(&cfg)?;
        Ok(Collector {
            exporters,
            templates: TemplateCache::default(),
            pending: Pending::default(),
            counters: CounterTable::default(),
            stats: CollectorStats::default(),
            next_maintenance: None,
            cfg,
        })
    }

    pub fn config(&self) -> &CollectorConfig {
        &self.cfg
    }

    /// Decodes one UDP payload from `from` received at `now`, handing each
    /// flow record to `out`. Never panics; whatever cannot be decoded is
    /// counted in [`CollectorStats::dropped`].
    pub fn datagram(
        &mut self,
        from: SocketAddr,
        now: Instant,
        data: &[u8],
        out: &mut impl FnMut(&FlowRecord),
    ) {
        if self.next_maintenance.map_or(true, |t| now >= t) {
            self.maintain(now, out);
        }
        let proto = match data {
            [0, 5, ..] => FlowProtocol::NetflowV5,
            [0, 9, ..] => FlowProtocol::NetflowV9,
            [0, 10, ..] => FlowProtocol::Ipfix,
            [0, 0, 0, 5, ..] => FlowProtocol::SflowV5,
            _ => {
                // Count the datagram against the exporter only if it is
                // allowed; either way it is dropped.
                if self.admit(from.ip(), now).is_some() {
                    self.stats.drop(DropReason::UnknownVersion, 1);
                }
                return;
            }
        };
        let Some(ex) = self.admit(from.ip(), now) else {
            return;
        };
        self.stats.datagrams[proto as usize] += 1;
        let es = &mut self.exporters.get_mut(ex).stats;
        es.datagrams += 1;
        es.datagrams_by_protocol[proto as usize] += 1;
        match proto {
            FlowProtocol::NetflowV5 => self.netflow5(ex, data, out),
            FlowProtocol::NetflowV9 => self.netflow9(ex, now, data, out),
            FlowProtocol::Ipfix => self.ipfix(ex, now, data, out),
            FlowProtocol::SflowV5 => self.sflow(ex, data, out),
        }
        self.refresh_gauges();
    }

    /// Finds or creates the exporter for `ip`, or counts why not.
    fn admit(&mut self, ip: IpAddr, now: Instant) -> Option<ExporterId> {
        match self.exporters.admit(ip.to_canonical(), now, &self.cfg) {
            Ok(id) => Some(id),
            Err(reason) => {
                self.stats.drop(reason, 1);
                None
            }
        }
    }

    /// Expires held data sets (counted `no_template`), templates not
    /// refreshed within `template_timeout` and unconfigured exporters idle
    /// for `exporter_timeout`. Held sets whose template arrived were
    /// already decoded; `out` is here for symmetry and future use.
    pub fn maintain(&mut self, now: Instant, _out: &mut impl FnMut(&FlowRecord)) {
        self.next_maintenance = Some(now + MAINTENANCE_INTERVAL);
        let expired = self
            .pending
            .expire(now, self.cfg.pending_hold, &mut self.exporters);
        self.stats.drop(DropReason::NoTemplate, expired);
        let gone = self
            .templates
            .expire(now, self.cfg.template_timeout, &mut self.exporters);
        self.stats.templates_expired += gone;
        for id in self.exporters.expire(now, self.cfg.exporter_timeout) {
            self.templates.forget_exporter(id);
            self.pending.forget_exporter(id);
            self.counters.forget_exporter(id);
            self.stats.exporters_expired += 1;
        }
        self.refresh_gauges();
    }

    fn refresh_gauges(&mut self) {
        self.stats.templates_active = self.templates.len() as u64;
        self.stats.pending_sets = self.pending.len() as u64;
        self.stats.pending_bytes = self.pending.bytes() as u64;
        self.stats.exporters_active = self.exporters.len() as u64;
    }

    pub fn stats(&self) -> &CollectorStats {
        &self.stats
    }

    /// Every known exporter: id, address, name, counters.
    pub fn exporters(&self) -> impl Iterator<Item = (ExporterId, IpAddr, &str, &ExporterStats)> {
        self.exporters.iter()
    }

    /// The exporter an address maps to, if known.
    pub fn exporter_id(&self, ip: IpAddr) -> Option<ExporterId> {
        self.exporters.lookup(ip.to_canonical())
    }

    /// Latest sFlow generic interface counters per (exporter, ifIndex).
    pub fn interface_counters(&self) -> impl Iterator<Item = (ExporterId, &InterfaceCounters)> {
        self.counters.iter()
    }

    /// Writes the `interface` label for `ifindex` of `exporter` into `buf`
    /// (cleared first): `<exporter name>:<ifname>` when the exporter's
    /// `interfaces` map names it, else `<exporter name>:<ifIndex>`. Use the
    /// input interface for `in` traffic and the output one for `out`.
    pub fn interface_label(&self, exporter: ExporterId, ifindex: u32, buf: &mut String) {
        self.exporters.interface_label(exporter, ifindex, buf)
    }

    /// Sampling rate found for a record: override, the record's own, its
    /// sampler's, its domain's, else the default (counted).
    fn resolve_rate(&mut self, ex: ExporterId, domain: u32, hint: RateHint) -> (u32, bool) {
        let e = self.exporters.get_mut(ex);
        let found = e
            .sampling_override
            .or(hint.own.filter(|&r| r > 0))
            .or_else(|| hint.sampler.and_then(|s| e.sampler_rate(domain, Some(s))))
            .or_else(|| e.sampler_rate(domain, None));
        match found {
            Some(r) => (r, false),
            None => {
                self.stats.records_default_rate += 1;
                e.stats.records_default_rate += 1;
                (self.cfg.default_sampling_rate, true)
            }
        }
    }

    /// Scales `rec` by its rate, fills the derived byte layer, counts it
    /// and hands it out.
    fn emit(
        &mut self,
        proto: FlowProtocol,
        rate: (u32, bool),
        rec: &mut FlowRecord,
        out: &mut impl FnMut(&FlowRecord),
    ) {
        let (r, default) = rate;
        let k = u64::from(r.max(1));
        rec.sampling_rate = r.max(1);
        rec.default_rate = default;
        rec.protocol_source = Some(proto);
        rec.sampled_packets = rec.packets;
        rec.packets = rec.packets.saturating_mul(k);
        rec.l3_bytes = rec.l3_bytes.saturating_mul(k);
        rec.l2_bytes = rec.l2_bytes.saturating_mul(k);
        if !rec.l2_exact {
            rec.l2_bytes = rec
                .l3_bytes
                .saturating_add(rec.packets.saturating_mul(ETHERNET_OVERHEAD));
        }
        if !rec.l3_exact && rec.l2_exact {
            rec.l3_bytes = rec
                .l2_bytes
                .saturating_sub(rec.packets.saturating_mul(ETHERNET_OVERHEAD));
        }
        self.stats.records[proto as usize] += 1;
        let e = self.exporters.get_mut(rec.exporter);
        e.stats.records += 1;
        e.stats.records_by_protocol[proto as usize] += 1;
        e.stats.rate_in_use = rec.sampling_rate;
        out(rec);
    }
}

/// What a record says about its own sampling.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RateHint {
    /// A rate carried in the record (or the datagram / sample header).
    pub own: Option<u32>,
    /// The record's sampler / selector id.
    pub sampler: Option<u64>,
}

/// Big-endian unsigned integer of 1..=8 bytes (reduced-size encoding);
/// `None` for other lengths.
#[inline]
pub(crate) fn be_uint(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 8 {
        return None;
    }
    let mut v = 0u64;
    for &x in b {
        v = (v << 8) | u64::from(x);
    }
    Some(v)
}

#[inline]
pub(crate) fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

#[inline]
pub(crate) fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

#[inline]
pub(crate) fn be64(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_be_bytes(a))
}

/// ICMP "ports" the Cisco way (source 0, destination `type << 8 | code`)
/// turned into the `FrameFacts` convention (source = type, destination =
/// code).
#[inline]
pub(crate) fn fix_icmp_ports(rec: &mut FlowRecord) {
    if (rec.protocol == 1 || rec.protocol == 58) && rec.src_port == 0 {
        rec.src_port = rec.dst_port >> 8;
        rec.dst_port &= 0xff;
    }
}

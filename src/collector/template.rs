//! NetFlow v9 / IPFIX templates: parsing template records into a decode
//! plan, the bounded template cache keyed by (exporter, version,
//! domain/source id, template id), data sets held for a template that has
//! not arrived yet, and the record decoder both versions share.
//!
//! Allocates per template (its field list) and per held data set, never
//! per record. Every length is checked; no panic on any input. No unsafe.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::exporters::Exporters;
use super::{
    be16, be_uint, fix_icmp_ports, Collector, CollectorLimits, DropReason, ExporterId,
    FlowDirection, FlowProtocol, FlowRecord, RateHint,
};
use crate::wire::L3Addrs;

/// Field length meaning "variable" (IPFIX, RFC 7011 section 7).
pub(crate) const VARLEN: u16 = 0xffff;

/// What a field is decoded into. Anything else is skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FieldKind {
    Skip,
    InBytes,
    InPkts,
    OutBytes,
    OutPkts,
    TotalBytes,
    TotalPkts,
    L2Bytes,
    Protocol,
    Tos,
    TcpFlags,
    SrcPort,
    DstPort,
    SrcV4,
    DstV4,
    SrcV6,
    DstV6,
    InputIf,
    OutputIf,
    SrcAs,
    DstAs,
    FirstUptime,
    LastUptime,
    FirstSecs,
    LastSecs,
    FirstMs,
    LastMs,
    SamplingInterval,
    SamplerId,
    PacketInterval,
    PacketSpace,
    SelectorSize,
    SelectorPopulation,
    Direction,
    IcmpTypeCode,
    Vlan,
}

/// The decode plan for one field: IANA element `id` (0 for enterprise
/// fields and v9 scope fields) mapped to a kind, with its length.
fn field_kind(id: u16, len: u16) -> FieldKind {
    use FieldKind::*;
    let counter = (1..=8).contains(&len);
    let k = match id {
        1 => InBytes,
        2 => InPkts,
        23 => OutBytes,
        24 => OutPkts,
        85 => TotalBytes,
        86 => TotalPkts,
        352 => L2Bytes,
        4 => Protocol,
        5 => Tos,
        6 => TcpFlags,
        7 => SrcPort,
        11 => DstPort,
        8 if len == 4 => SrcV4,
        12 if len == 4 => DstV4,
        27 if len == 16 => SrcV6,
        28 if len == 16 => DstV6,
        10 => InputIf,
        14 => OutputIf,
        16 => SrcAs,
        17 => DstAs,
        22 => FirstUptime,
        21 => LastUptime,
        150 => FirstSecs,
        151 => LastSecs,
        152 => FirstMs,
        153 => LastMs,
        34 | 50 => SamplingInterval,
        48 | 302 => SamplerId,
        305 => PacketInterval,
        306 => PacketSpace,
        309 => SelectorSize,
        310 => SelectorPopulation,
        61 => Direction,
        32 | 139 => IcmpTypeCode,
        58 => Vlan,
        _ => Skip,
    };
    match k {
        SrcV4 | DstV4 | SrcV6 | DstV6 => k,
        _ if counter => k,
        _ => Skip,
    }
}

/// The sets (v9 FlowSets) of a v9 or IPFIX datagram after its header:
/// `(set id, body)`, or why the walk stopped (`truncated`: 1..3 bytes
/// left, padding or a cut header; `bad_length`: a set length below 4 or
/// past the end), after which it yields nothing.
pub(crate) struct Sets<'a> {
    data: &'a [u8],
    off: usize,
}

impl<'a> Sets<'a> {
    pub(crate) fn after(data: &'a [u8], header_len: usize) -> Self {
        Sets {
            data,
            off: header_len,
        }
    }
}

impl<'a> Iterator for Sets<'a> {
    type Item = Result<(u16, &'a [u8]), DropReason>;

    fn next(&mut self) -> Option<Self::Item> {
        let at = self.off;
        if at >= self.data.len() {
            return None;
        }
        self.off = usize::MAX;
        let (Some(id), Some(len)) = (be16(self.data, at), be16(self.data, at + 2)) else {
            return Some(Err(DropReason::Truncated));
        };
        let len = usize::from(len);
        if len < 4 {
            return Some(Err(DropReason::BadLength));
        }
        let Some(body) = self.data.get(at + 4..at + len) else {
            return Some(Err(DropReason::BadLength));
        };
        self.off = at + len;
        Some(Ok((id, body)))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Field {
    pub kind: FieldKind,
    /// Length in bytes, or [`VARLEN`].
    pub len: u16,
}

/// A parsed data or options template.
#[derive(Debug)]
pub(crate) struct Template {
    /// The wire layout (element id with enterprise bit, enterprise number,
    /// length), to tell a refresh from a changed layout.
    raw: Box<[(u16, u32, u16)]>,
    pub fields: Box<[Field]>,
    /// Smallest record: fixed lengths + 1 per variable-length field.
    pub min_len: usize,
    /// Options template (its records describe the exporter, e.g. sampling).
    pub options: bool,
    seen: Instant,
}

/// Why a template record was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TemplateError {
    /// The bytes end inside the record.
    Truncated,
    /// Malformed (counted `bad_template`).
    Bad,
    /// More fields than `max_template_fields` (counted `template_limit`).
    TooManyFields,
}

/// Parses the field list of one template record starting at `b[0]` (just
/// after the record's id and count header). `scope` leading fields are
/// scope fields (options templates). For v9 (`ipfix == false`) scope
/// fields are in a separate type space (System, Interface, ...) and are
/// skipped; there are no enterprise bits. Returns the template and the
/// bytes used.
pub(crate) fn parse_fields(
    b: &[u8],
    count: usize,
    scope: usize,
    options: bool,
    ipfix: bool,
    max_fields: usize,
    now: Instant,
) -> Result<(Template, usize), TemplateError> {
    if count == 0 || scope > count {
        return Err(TemplateError::Bad);
    }
    if count > max_fields {
        return Err(TemplateError::TooManyFields);
    }
    let mut raw = Vec::with_capacity(count);
    let mut fields = Vec::with_capacity(count);
    let mut off = 0usize;
    let mut min_len = 0usize;
    for i in 0..count {
        let (Some(id), Some(len)) = (super::be16(b, off), super::be16(b, off + 2)) else {
            return Err(TemplateError::Truncated);
        };
        off += 4;
        let mut pen = 0u32;
        if ipfix && id & 0x8000 != 0 {
            pen = super::be32(b, off).ok_or(TemplateError::Truncated)?;
            off += 4;
        }
        if len == 0 && !ipfix {
            return Err(TemplateError::Bad);
        }
        if len == VARLEN && !ipfix {
            // v9 has no variable-length fields: 65535 bytes would never fit.
            return Err(TemplateError::Bad);
        }
        let kind = if pen != 0 || (!ipfix && i < scope) || len == VARLEN {
            FieldKind::Skip
        } else {
            field_kind(id, len)
        };
        min_len += if len == VARLEN { 1 } else { usize::from(len) };
        raw.push((id, pen, len));
        fields.push(Field { kind, len });
    }
    if min_len == 0 {
        return Err(TemplateError::Bad);
    }
    Ok((
        Template {
            raw: raw.into_boxed_slice(),
            fields: fields.into_boxed_slice(),
            min_len,
            options,
            seen: now,
        },
        off,
    ))
}

/// Identifies a template: templates are per exporter, version and
/// observation domain (v9 source id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TemplateKey {
    pub exporter: ExporterId,
    pub ipfix: bool,
    pub domain: u32,
    pub id: u16,
}

/// What inserting a template did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Learnt {
    New,
    Refreshed,
    Changed,
}

/// Templates by key; the caps are checked on insert.
#[derive(Default)]
pub(crate) struct TemplateCache {
    map: HashMap<TemplateKey, Arc<Template>>,
}

impl TemplateCache {
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    pub(super) fn get(&self, key: &TemplateKey) -> Option<Arc<Template>> {
        self.map.get(key).cloned()
    }

    pub(super) fn insert(
        &mut self,
        key: TemplateKey,
        t: Template,
        limits: &CollectorLimits,
        exporters: &mut Exporters,
    ) -> Result<Learnt, DropReason> {
        if let Some(old) = self.map.get_mut(&key) {
            let same = old.raw == t.raw && old.options == t.options;
            *old = Arc::new(t);
            return Ok(if same {
                Learnt::Refreshed
            } else {
                Learnt::Changed
            });
        }
        let e = exporters.get_mut(key.exporter);
        if e.stats.templates as usize >= limits.max_templates_per_exporter
            || self.map.len() >= limits.max_templates
        {
            return Err(DropReason::TemplateLimit);
        }
        e.stats.templates += 1;
        self.map.insert(key, Arc::new(t));
        Ok(Learnt::New)
    }

    /// Withdraws one template; true if it existed.
    pub(super) fn withdraw(&mut self, key: &TemplateKey, exporters: &mut Exporters) -> bool {
        if self.map.remove(key).is_some() {
            let e = exporters.get_mut(key.exporter);
            e.stats.templates = e.stats.templates.saturating_sub(1);
            true
        } else {
            false
        }
    }

    /// Withdraws all data (or all options) templates of a domain (IPFIX
    /// withdrawal with the set id as template id). Returns how many.
    pub(super) fn withdraw_all(
        &mut self,
        exporter: ExporterId,
        domain: u32,
        options: bool,
        exporters: &mut Exporters,
    ) -> u64 {
        let before = self.map.len();
        self.map.retain(|k, t| {
            !(k.exporter == exporter && k.ipfix && k.domain == domain && t.options == options)
        });
        let n = (before - self.map.len()) as u64;
        let e = exporters.get_mut(exporter);
        e.stats.templates = e.stats.templates.saturating_sub(n as u32);
        n
    }

    /// Forgets templates not refreshed within `timeout`; returns how many.
    pub(super) fn expire(
        &mut self,
        now: Instant,
        timeout: Duration,
        exporters: &mut Exporters,
    ) -> u64 {
        let mut n = 0;
        self.map.retain(|k, t| {
            let keep = now.saturating_duration_since(t.seen) < timeout;
            if !keep {
                let e = exporters.get_mut(k.exporter);
                e.stats.templates = e.stats.templates.saturating_sub(1);
                n += 1;
            }
            keep
        });
        n
    }

    pub(super) fn forget_exporter(&mut self, id: ExporterId) {
        self.map.retain(|k, _| k.exporter != id);
    }
}

/// What decoding a data set needs besides its template.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SetContext {
    pub proto: FlowProtocol,
    /// Export time, Unix seconds.
    pub unix_secs: u32,
    /// v9 sysUpTime of the export (ms); None for IPFIX.
    pub sys_uptime: Option<u32>,
}

/// A data set waiting for its template.
struct Held {
    key: TemplateKey,
    since: Instant,
    ctx: SetContext,
    data: Box<[u8]>,
}

/// Data sets held for their template, oldest first, bounded in bytes per
/// exporter and in total.
#[derive(Default)]
pub(crate) struct Pending {
    q: VecDeque<Held>,
    bytes: usize,
}

impl Pending {
    pub(super) fn len(&self) -> usize {
        self.q.len()
    }
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(super) fn hold(
        &mut self,
        key: TemplateKey,
        now: Instant,
        ctx: SetContext,
        data: &[u8],
        limits: &CollectorLimits,
        exporters: &mut Exporters,
    ) -> Result<(), DropReason> {
        let e = exporters.get_mut(key.exporter);
        if e.stats.pending_bytes as usize + data.len() > limits.max_pending_bytes_per_exporter
            || self.bytes + data.len() > limits.max_pending_bytes
        {
            return Err(DropReason::PendingLimit);
        }
        e.stats.pending_bytes += data.len() as u32;
        self.bytes += data.len();
        self.q.push_back(Held {
            key,
            since: now,
            ctx,
            data: data.into(),
        });
        Ok(())
    }

    /// Takes the sets held for `key`, oldest first.
    fn take(&mut self, key: &TemplateKey, exporters: &mut Exporters) -> Vec<Held> {
        if !self.q.iter().any(|h| h.key == *key) {
            return Vec::new();
        }
        let mut taken = Vec::new();
        let mut rest = VecDeque::with_capacity(self.q.len());
        for h in self.q.drain(..) {
            if h.key == *key {
                taken.push(h);
            } else {
                rest.push_back(h);
            }
        }
        self.q = rest;
        for h in &taken {
            self.bytes -= h.data.len();
            let e = exporters.get_mut(h.key.exporter);
            e.stats.pending_bytes = e.stats.pending_bytes.saturating_sub(h.data.len() as u32);
        }
        taken
    }

    /// Drops sets held longer than `hold`; returns how many.
    pub(super) fn expire(
        &mut self,
        now: Instant,
        hold: Duration,
        exporters: &mut Exporters,
    ) -> u64 {
        let mut n = 0;
        while let Some(h) = self.q.front() {
            if now.saturating_duration_since(h.since) < hold {
                break;
            }
            if let Some(h) = self.q.pop_front() {
                self.bytes -= h.data.len();
                let e = exporters.get_mut(h.key.exporter);
                e.stats.pending_bytes = e.stats.pending_bytes.saturating_sub(h.data.len() as u32);
                n += 1;
            }
        }
        n
    }

    pub(super) fn forget_exporter(&mut self, id: ExporterId) {
        let mut freed = 0;
        self.q.retain(|h| {
            let keep = h.key.exporter != id;
            if !keep {
                freed += h.data.len();
            }
            keep
        });
        self.bytes -= freed;
    }
}

/// A record's fields before they become a [`FlowRecord`].
#[derive(Clone, Copy, Default)]
struct Raw {
    rec: FlowRecord,
    in_bytes: Option<u64>,
    in_pkts: Option<u64>,
    out_bytes: Option<u64>,
    out_pkts: Option<u64>,
    total_bytes: Option<u64>,
    total_pkts: Option<u64>,
    l2_bytes: Option<u64>,
    src4: Option<[u8; 4]>,
    dst4: Option<[u8; 4]>,
    src6: Option<[u8; 16]>,
    dst6: Option<[u8; 16]>,
    first_up: Option<u32>,
    last_up: Option<u32>,
    icmp: Option<u16>,
    interval: Option<u64>,
    sampler: Option<u64>,
    pkt_interval: Option<u64>,
    pkt_space: Option<u64>,
    sel_size: Option<u64>,
    sel_pop: Option<u64>,
}

/// Reads one record of `t` at the start of `b`; returns the bytes used, or
/// None when a variable-length field runs past the end.
fn read_record(t: &Template, b: &[u8], raw: &mut Raw) -> Option<usize> {
    use FieldKind::*;
    let mut off = 0usize;
    for f in t.fields.iter() {
        let len = if f.len == VARLEN {
            let l0 = *b.get(off)?;
            off += 1;
            if l0 < 255 {
                usize::from(l0)
            } else {
                let l = super::be16(b, off)?;
                off += 2;
                usize::from(l)
            }
        } else {
            usize::from(f.len)
        };
        let v = b.get(off..off.checked_add(len)?)?;
        off += len;
        if f.kind == Skip {
            continue;
        }
        let n = be_uint(v).unwrap_or(0);
        let r = &mut raw.rec;
        match f.kind {
            Skip => {}
            InBytes => raw.in_bytes = Some(n),
            InPkts => raw.in_pkts = Some(n),
            OutBytes => raw.out_bytes = Some(n),
            OutPkts => raw.out_pkts = Some(n),
            TotalBytes => raw.total_bytes = Some(n),
            TotalPkts => raw.total_pkts = Some(n),
            L2Bytes => raw.l2_bytes = Some(n),
            Protocol => r.protocol = n as u8,
            Tos => r.tos = n as u8,
            TcpFlags => r.tcp_flags = n as u8,
            SrcPort => r.src_port = n as u16,
            DstPort => r.dst_port = n as u16,
            SrcV4 => raw.src4 = v.try_into().ok(),
            DstV4 => raw.dst4 = v.try_into().ok(),
            SrcV6 => raw.src6 = v.try_into().ok(),
            DstV6 => raw.dst6 = v.try_into().ok(),
            InputIf => r.input_if = n as u32,
            OutputIf => r.output_if = n as u32,
            SrcAs => r.src_as = n as u32,
            DstAs => r.dst_as = n as u32,
            FirstUptime => raw.first_up = Some(n as u32),
            LastUptime => raw.last_up = Some(n as u32),
            FirstSecs => r.first_ms = n.saturating_mul(1000),
            LastSecs => r.last_ms = n.saturating_mul(1000),
            FirstMs => r.first_ms = n,
            LastMs => r.last_ms = n,
            SamplingInterval => raw.interval = Some(n),
            SamplerId => raw.sampler = Some(n),
            PacketInterval => raw.pkt_interval = Some(n),
            PacketSpace => raw.pkt_space = Some(n),
            SelectorSize => raw.sel_size = Some(n),
            SelectorPopulation => raw.sel_pop = Some(n),
            Direction => {
                r.direction = match n {
                    0 => FlowDirection::Ingress,
                    1 => FlowDirection::Egress,
                    _ => FlowDirection::Unknown,
                }
            }
            IcmpTypeCode => raw.icmp = Some(n as u16),
            Vlan => r.vlan = (n & 0x0fff) as u16,
        }
    }
    Some(off)
}

impl Raw {
    /// The sampling rate the record itself states, if any.
    fn own_rate(&self) -> Option<u32> {
        let clamp = |x: u64| u32::try_from(x).unwrap_or(u32::MAX);
        if let Some(i) = self.interval.filter(|&i| i > 0) {
            return Some(clamp(i));
        }
        if let (Some(i), Some(s)) = (self.pkt_interval, self.pkt_space) {
            if let Some(r) = i.saturating_add(s).checked_div(i) {
                return Some(clamp(r));
            }
        }
        if let (Some(s), Some(p)) = (self.sel_size, self.sel_pop) {
            if s > 0 && p >= s {
                return Some(clamp(p / s));
            }
        }
        None
    }

    /// Completes the record: addresses, counts at layer 3, times.
    fn finish(&mut self, ctx: &SetContext) {
        let r = &mut self.rec;
        r.addrs = match (self.src4, self.dst4, self.src6, self.dst6) {
            (Some(s), Some(d), _, _) => L3Addrs::V4 { src: s, dst: d },
            (_, _, Some(s), Some(d)) => L3Addrs::V6 { src: s, dst: d },
            (Some(s), None, _, _) => L3Addrs::V4 {
                src: s,
                dst: [0; 4],
            },
            (None, Some(d), _, _) => L3Addrs::V4 {
                src: [0; 4],
                dst: d,
            },
            (_, _, Some(s), None) => L3Addrs::V6 {
                src: s,
                dst: [0; 16],
            },
            (_, _, None, Some(d)) => L3Addrs::V6 {
                src: [0; 16],
                dst: d,
            },
            _ => L3Addrs::None,
        };
        r.packets = self
            .in_pkts
            .or(self.total_pkts)
            .or(self.out_pkts)
            .unwrap_or(0);
        r.l3_bytes = self
            .in_bytes
            .or(self.total_bytes)
            .or(self.out_bytes)
            .unwrap_or(0);
        r.l3_exact = true;
        r.reported_layer = super::ByteLayer::L3;
        if let Some(l2) = self.l2_bytes {
            r.l2_bytes = l2;
            r.l2_exact = true;
        }
        if let Some(tc) = self.icmp {
            if r.protocol == 1 || r.protocol == 58 {
                r.src_port = tc >> 8;
                r.dst_port = tc & 0xff;
            }
        } else {
            fix_icmp_ports(r);
        }
        if let Some(up) = ctx.sys_uptime {
            let base = u64::from(ctx.unix_secs) * 1000;
            let to_unix = |t: u32| base.saturating_sub(u64::from(up.wrapping_sub(t)));
            if let Some(t) = self.first_up {
                r.first_ms = to_unix(t);
            }
            if let Some(t) = self.last_up {
                r.last_ms = to_unix(t);
            }
        }
    }
}

impl Collector {
    /// Parses a template set body (after the set header) of v9 (`set_id`
    /// 0 data, 1 options) or IPFIX (2 data, 3 options), learning each
    /// template and decoding data sets held for it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn template_set(
        &mut self,
        ex: ExporterId,
        now: Instant,
        ipfix: bool,
        domain: u32,
        set_id: u16,
        body: &[u8],
        out: &mut impl FnMut(&FlowRecord),
    ) {
        let options = set_id == 1 || set_id == 3;
        let mut off = 0usize;
        // A template record header is at least 4 bytes; less is padding.
        while body.len().saturating_sub(off) >= 4 {
            let b = &body[off..];
            let (Some(id), Some(count)) = (super::be16(b, 0), super::be16(b, 2)) else {
                break;
            };
            let key = TemplateKey {
                exporter: ex,
                ipfix,
                domain,
                id,
            };
            // IPFIX withdrawal: field count 0.
            if ipfix && count == 0 {
                off += 4;
                if id == set_id {
                    let n = self
                        .templates
                        .withdraw_all(ex, domain, options, &mut self.exporters);
                    self.stats.templates_withdrawn += n;
                } else if self.templates.withdraw(&key, &mut self.exporters) {
                    self.stats.templates_withdrawn += 1;
                }
                continue;
            }
            if !ipfix && !options && count == 0 {
                // v9 padding after the last template (zero bytes).
                break;
            }
            // Header: v9 options: id, scope length (bytes), option length
            // (bytes); IPFIX options: id, field count, scope field count.
            let (hdr, total, scope) = if !options {
                (4usize, usize::from(count), 0usize)
            } else if ipfix {
                let Some(sc) = super::be16(b, 4) else {
                    self.stats.drop(super::DropReason::Truncated, 1);
                    return;
                };
                (6, usize::from(count), usize::from(sc))
            } else {
                let Some(opt_len) = super::be16(b, 4) else {
                    self.stats.drop(super::DropReason::Truncated, 1);
                    return;
                };
                let scope_len = usize::from(count);
                let opt_len = usize::from(opt_len);
                if scope_len % 4 != 0 || opt_len % 4 != 0 || scope_len == 0 {
                    self.stats.drop(super::DropReason::BadTemplate, 1);
                    return;
                }
                (6, (scope_len + opt_len) / 4, scope_len / 4)
            };
            if ipfix && options && (scope == 0 || scope > total) {
                self.stats.drop(super::DropReason::BadTemplate, 1);
                return;
            }
            if id < 256 {
                self.stats.drop(super::DropReason::BadTemplate, 1);
                return;
            }
            let parsed = parse_fields(
                &b[hdr.min(b.len())..],
                total,
                scope,
                options,
                ipfix,
                self.cfg.limits.max_template_fields,
                now,
            );
            let (t, used) = match parsed {
                Ok(x) => x,
                Err(TemplateError::Truncated) => {
                    self.stats.drop(super::DropReason::Truncated, 1);
                    return;
                }
                Err(TemplateError::Bad) => {
                    self.stats.drop(super::DropReason::BadTemplate, 1);
                    return;
                }
                Err(TemplateError::TooManyFields) => {
                    // The rest of the set cannot be parsed reliably
                    // without reading every field; stop here.
                    self.stats.drop(super::DropReason::TemplateLimit, 1);
                    return;
                }
            };
            // v9 pads the flowset (not each record) to 4 bytes: fewer than
            // 4 bytes left end the loop.
            off += hdr + used;
            match self
                .templates
                .insert(key, t, &self.cfg.limits, &mut self.exporters)
            {
                Ok(Learnt::Refreshed) => self.stats.templates_refreshed += 1,
                Ok(Learnt::New | Learnt::Changed) => {
                    self.stats.templates_learnt += 1;
                    self.release(key, out);
                }
                Err(r) => self.stats.drop(r, 1),
            }
        }
    }

    /// Decodes the data sets held for `key` now that its template is known.
    fn release(&mut self, key: TemplateKey, out: &mut impl FnMut(&FlowRecord)) {
        let held = self.pending.take(&key, &mut self.exporters);
        for h in held {
            self.stats.sets_released += 1;
            if let Some(t) = self.templates.get(&key) {
                self.data_set(key, &t, h.ctx, &h.data, out);
            }
        }
    }

    /// A data set body for `key`: decodes it, or holds it when the
    /// template is unknown. Returns the data records decoded, or None when
    /// the set was held or dropped (the count is then unknown).
    pub(super) fn data_or_hold(
        &mut self,
        key: TemplateKey,
        now: Instant,
        ctx: SetContext,
        body: &[u8],
        out: &mut impl FnMut(&FlowRecord),
    ) -> Option<u32> {
        match self.templates.get(&key) {
            Some(t) => Some(self.data_set(key, &t, ctx, body, out)),
            None => {
                match self
                    .pending
                    .hold(key, now, ctx, body, &self.cfg.limits, &mut self.exporters)
                {
                    Ok(()) => self.stats.sets_held += 1,
                    Err(r) => self.stats.drop(r, 1),
                }
                None
            }
        }
    }

    /// Decodes every record of a data set with a known template. Returns
    /// the records read (flow and options).
    fn data_set(
        &mut self,
        key: TemplateKey,
        t: &Template,
        ctx: SetContext,
        body: &[u8],
        out: &mut impl FnMut(&FlowRecord),
    ) -> u32 {
        let mut off = 0usize;
        let mut n = 0u32;
        while body.len() - off >= t.min_len {
            let mut raw = Raw::default();
            let Some(used) = read_record(t, &body[off..], &mut raw) else {
                self.stats.drop(DropReason::BadRecord, 1);
                break;
            };
            off += used;
            n += 1;
            if t.options {
                self.options_record(key, &raw);
                continue;
            }
            raw.finish(&ctx);
            raw.rec.exporter = key.exporter;
            let hint = RateHint {
                own: raw.own_rate(),
                sampler: raw.sampler,
            };
            let rate = self.resolve_rate(key.exporter, key.domain, hint);
            self.emit(ctx.proto, rate, &mut raw.rec, out);
        }
        n
    }

    /// An options data record: remembers a sampling rate it gives, for its
    /// sampler id or (without one) for the whole domain.
    fn options_record(&mut self, key: TemplateKey, raw: &Raw) {
        self.stats.options_records += 1;
        let Some(rate) = raw.own_rate() else {
            return;
        };
        let e = self.exporters.get_mut(key.exporter);
        if !e.set_sampler_rate(key.domain, raw.sampler, rate) {
            self.stats.drop(DropReason::SamplerLimit, 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(spec: &[(u16, u16)]) -> Vec<u8> {
        spec.iter()
            .flat_map(|&(id, len)| {
                let mut v = id.to_be_bytes().to_vec();
                v.extend_from_slice(&len.to_be_bytes());
                v
            })
            .collect()
    }

    #[test]
    fn plan_maps_known_fields_and_skips_others() {
        let b = fields(&[(8, 4), (12, 4), (1, 8), (2, 4), (7, 2), (999, 3), (27, 4)]);
        let (t, used) = parse_fields(&b, 7, 0, false, false, 512, Instant::now()).unwrap();
        assert_eq!(used, 28);
        let kinds: Vec<_> = t.fields.iter().map(|f| f.kind).collect();
        use FieldKind::*;
        // An IPv6 address field of length 4 is not an address: skipped.
        assert_eq!(kinds, [SrcV4, DstV4, InBytes, InPkts, SrcPort, Skip, Skip]);
        assert_eq!(t.min_len, 4 + 4 + 8 + 4 + 2 + 3 + 4);
    }

    #[test]
    fn enterprise_and_varlen_fields() {
        // IPFIX: enterprise field 0x8001 (PEN 9), varlen field, packets.
        let mut b = vec![0x80, 0x01, 0x00, 0x02, 0, 0, 0, 9];
        b.extend(fields(&[(82, VARLEN), (2, 4)]));
        let (t, used) = parse_fields(&b, 3, 0, false, true, 512, Instant::now()).unwrap();
        assert_eq!(used, 16);
        assert_eq!(t.min_len, 2 + 1 + 4);
        let mut raw = Raw::default();
        // Enterprise 2 bytes, varlen "eth0" (1-byte length), packets 7.
        let rec = [0xaa, 0xbb, 4, b'e', b't', b'h', b'0', 0, 0, 0, 7];
        assert_eq!(read_record(&t, &rec, &mut raw), Some(11));
        assert_eq!(raw.in_pkts, Some(7));
        // Three-byte varlen length form: 255, then 0x0003.
        let rec = [0xaa, 0xbb, 255, 0, 3, b'x', b'y', b'z', 0, 0, 0, 9];
        let mut raw = Raw::default();
        assert_eq!(read_record(&t, &rec, &mut raw), Some(12));
        assert_eq!(raw.in_pkts, Some(9));
        // Varlen length pointing past the end.
        let rec = [0xaa, 0xbb, 200, 1, 2, 3];
        assert_eq!(read_record(&t, &rec, &mut Raw::default()), None);
        let rec = [0xaa, 0xbb, 255, 0];
        assert_eq!(read_record(&t, &rec, &mut Raw::default()), None);
    }

    #[test]
    fn bad_templates() {
        let now = Instant::now();
        assert_eq!(
            parse_fields(&[], 0, 0, false, false, 512, now).err(),
            Some(TemplateError::Bad)
        );
        // v9 zero-length field.
        let b = fields(&[(1, 0)]);
        assert_eq!(
            parse_fields(&b, 1, 0, false, false, 512, now).err(),
            Some(TemplateError::Bad)
        );
        // IPFIX: only zero-length fields: records of length 0.
        let b = fields(&[(1, 0), (2, 0)]);
        assert_eq!(
            parse_fields(&b, 2, 0, false, true, 512, now).err(),
            Some(TemplateError::Bad)
        );
        // IPFIX: a zero-length field among others is fine.
        let b = fields(&[(1, 0), (2, 4)]);
        assert!(parse_fields(&b, 2, 0, false, true, 512, now).is_ok());
        // Field list cut short.
        let b = fields(&[(1, 4)]);
        assert_eq!(
            parse_fields(&b, 2, 0, false, false, 512, now).err(),
            Some(TemplateError::Truncated)
        );
        // 65,535 fields claimed.
        assert_eq!(
            parse_fields(&b, 65535, 0, false, true, 512, now).err(),
            Some(TemplateError::TooManyFields)
        );
    }

    #[test]
    fn v9_scope_fields_are_not_information_elements() {
        // v9 options: scope type 1 (System) length 4 must not be IN_BYTES.
        let b = fields(&[(1, 4), (34, 4)]);
        let (t, _) = parse_fields(&b, 2, 1, true, false, 512, Instant::now()).unwrap();
        assert_eq!(t.fields[0].kind, FieldKind::Skip);
        assert_eq!(t.fields[1].kind, FieldKind::SamplingInterval);
    }

    #[test]
    fn rates_from_record_fields() {
        let mut r = Raw {
            pkt_interval: Some(1),
            pkt_space: Some(99),
            ..Default::default()
        };
        assert_eq!(r.own_rate(), Some(100));
        r.interval = Some(512);
        assert_eq!(r.own_rate(), Some(512));
        let r = Raw {
            sel_size: Some(1),
            sel_pop: Some(1000),
            ..Default::default()
        };
        assert_eq!(r.own_rate(), Some(1000));
        assert_eq!(Raw::default().own_rate(), None);
        let r = Raw {
            pkt_interval: Some(0),
            pkt_space: Some(5),
            ..Default::default()
        };
        assert_eq!(r.own_rate(), None);
    }
}

//! Per-exporter state: the allowed list, configured names and rate
//! overrides, interface names, sampler rates learnt from options records,
//! sequence streams and counters.
//!
//! Allocates per exporter, sampler and stream (all capped), never per
//! record. No unsafe code, no panic on any input.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

use super::sequence::{SeqEvent, SeqTracker, StreamKey, StreamKind};
use super::{CollectorConfig, DropReason, ExporterId};

/// An IP prefix, `198.51.100.0/24` or `2001:db8::/32` (a bare address is a
/// host prefix).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpPrefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl IpPrefix {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr.to_canonical(), ip.to_canonical()) {
            (IpAddr::V4(p), IpAddr::V4(a)) => {
                let m = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                u32::from(p) & m == u32::from(a) & m
            }
            (IpAddr::V6(p), IpAddr::V6(a)) => {
                let m = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                u128::from(p) & m == u128::from(a) & m
            }
            _ => false,
        }
    }
}

impl FromStr for IpPrefix {
    type Err = CollectorConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || CollectorConfigError::BadPrefix(s.to_string());
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match l {
            Some(l) => l.trim().parse::<u8>().map_err(|_| bad())?,
            None => max,
        };
        if len > max {
            return Err(bad());
        }
        Ok(IpPrefix { addr, len })
    }
}

/// One `[[collector.exporters]]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExporterConfig {
    /// Source address of its datagrams.
    pub address: IpAddr,
    /// Used in the `interface` label (`<name>:<ifname>`) and the exporter
    /// metrics.
    pub name: String,
    /// Overrides every rate the exporter sends.
    pub sampling_rate: Option<u32>,
    /// ifIndex → interface name.
    pub interfaces: BTreeMap<u32, String>,
}

/// A `[collector]` setting that cannot be used; each names the key to fix.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CollectorConfigError {
    #[error("collector.allowed_exporters: {0:?} is not an IP prefix (e.g. 192.0.2.0/24 or 2001:db8::/32)")]
    BadPrefix(String),
    #[error("collector.default_sampling_rate must be at least 1")]
    ZeroDefaultRate,
    #[error("collector.exporters: {address} is listed twice")]
    DuplicateExporter { address: IpAddr },
    #[error("collector.exporters: the exporter at {address} needs a non-empty name without ':'")]
    BadName { address: IpAddr },
    #[error("collector.exporters: the name {name:?} is used twice")]
    DuplicateName { name: String },
    #[error("collector.exporters: {name}: sampling_rate must be at least 1")]
    ZeroRate { name: String },
    #[error("collector.exporters: {name}: interface {ifindex} has an empty name")]
    EmptyInterfaceName { name: String, ifindex: u32 },
}

/// Counters of one exporter (monotonic unless said otherwise).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExporterStats {
    pub datagrams: u64,
    /// Flow records / samples handed out.
    pub records: u64,
    /// Export datagrams missing by sequence number (v9, sFlow datagrams).
    pub lost_datagrams: u64,
    /// Records missing by sequence number (v5 flows, IPFIX data records).
    pub lost_records: u64,
    /// sFlow flow samples missing by sample sequence number, plus the
    /// agent's own `drops` counter increments.
    pub lost_samples: u64,
    /// sFlow counter samples missing by sequence number.
    pub lost_counter_samples: u64,
    /// Datagrams that arrived after a later one (the loss counted for them
    /// was taken back).
    pub late: u64,
    /// Units that repeated the previous sequence number (ignored for loss).
    pub duplicates: u64,
    /// Sequence restarts (a big jump: exporter rebooted).
    pub restarts: u64,
    /// IPFIX streams whose sequence could not be checked because some
    /// records waited for a template (tracking restarts next message).
    pub sequence_resyncs: u64,
    /// Records that used `default_sampling_rate`.
    pub records_default_rate: u64,
    /// Gauge: the sampling rate of the last record.
    pub rate_in_use: u32,
    /// `datagrams` and `records` by `FlowProtocol` (indexed by `as u8`).
    pub datagrams_by_protocol: [u64; super::FlowProtocol::COUNT],
    pub records_by_protocol: [u64; super::FlowProtocol::COUNT],
    /// Gauge: templates this exporter has now.
    pub templates: u32,
    /// Gauge: bytes held for templates now.
    pub pending_bytes: u32,
}

pub(crate) struct Exporter {
    pub addr: IpAddr,
    pub name: String,
    pub configured: bool,
    pub sampling_override: Option<u32>,
    interfaces: BTreeMap<u32, String>,
    pub stats: ExporterStats,
    pub last_seen: Instant,
    /// (domain, sampler id or None for the whole domain) → rate.
    samplers: Vec<(u32, Option<u64>, u32)>,
    streams: Vec<(StreamKey, SeqTracker)>,
    max_samplers: usize,
    max_streams: usize,
}

/// What a sequence observation did, for the caller's stats.
pub(crate) enum SeqUnit {
    Datagrams,
    Records,
    Samples,
    CounterSamples,
}

impl Exporter {
    fn new(
        addr: IpAddr,
        name: String,
        now: Instant,
        max_samplers: usize,
        max_streams: usize,
    ) -> Self {
        Exporter {
            addr,
            name,
            configured: false,
            sampling_override: None,
            interfaces: BTreeMap::new(),
            stats: ExporterStats::default(),
            last_seen: now,
            samplers: Vec::new(),
            streams: Vec::new(),
            max_samplers,
            max_streams,
        }
    }

    pub(super) fn sampler_rate(&self, domain: u32, sampler: Option<u64>) -> Option<u32> {
        self.samplers
            .iter()
            .find(|(d, s, _)| *d == domain && *s == sampler)
            .map(|x| x.2)
    }

    /// Remembers a rate; false when the table is full (caller counts it).
    pub(super) fn set_sampler_rate(
        &mut self,
        domain: u32,
        sampler: Option<u64>,
        rate: u32,
    ) -> bool {
        if let Some(x) = self
            .samplers
            .iter_mut()
            .find(|(d, s, _)| *d == domain && *s == sampler)
        {
            x.2 = rate;
            return true;
        }
        if self.samplers.len() >= self.max_samplers {
            return false;
        }
        self.samplers.push((domain, sampler, rate));
        true
    }

    /// Feeds a sequence number to its stream and counts loss in `unit`.
    /// `advance` is what this unit moves the sequence by (1 per datagram,
    /// the record count for v5 and IPFIX). `Err(StreamLimit)` when the
    /// stream is new and the cap is reached.
    pub(super) fn sequence(
        &mut self,
        key: StreamKey,
        seq: u32,
        advance: u32,
        unit: SeqUnit,
    ) -> Result<SeqEvent, DropReason> {
        let t = self.stream(key)?;
        let (max_gap, window) = match unit {
            SeqUnit::Records => (1 << 24, 1 << 14),
            _ => (1 << 20, 1 << 10),
        };
        let ev = match unit {
            SeqUnit::Records if key.kind == StreamKind::Ipfix => {
                t.observe_records(seq, advance, max_gap, window)
            }
            _ => t.observe(seq, advance, max_gap, window),
        };
        let lost = match unit {
            SeqUnit::Datagrams => &mut self.stats.lost_datagrams,
            SeqUnit::Records => &mut self.stats.lost_records,
            SeqUnit::Samples => &mut self.stats.lost_samples,
            SeqUnit::CounterSamples => &mut self.stats.lost_counter_samples,
        };
        match ev {
            SeqEvent::Lost(n) => *lost += u64::from(n),
            SeqEvent::Late(n) => {
                *lost = lost.saturating_sub(u64::from(n));
                self.stats.late += 1;
            }
            SeqEvent::Restart => self.stats.restarts += 1,
            SeqEvent::Duplicate => self.stats.duplicates += 1,
            SeqEvent::First | SeqEvent::InOrder => {}
        }
        Ok(ev)
    }

    /// Forgets a stream's position (the next number starts it afresh).
    pub(super) fn resync(&mut self, key: StreamKey) {
        if let Some(i) = self.streams.iter().position(|(k, _)| *k == key) {
            self.streams.swap_remove(i);
            self.stats.sequence_resyncs += 1;
        }
    }

    /// sFlow `drops` is a running total per data source: adds its
    /// increase to `lost_samples` (a decrease is a reset of the agent's
    /// counter, not loss).
    pub(super) fn sflow_drops(&mut self, key: StreamKey, drops: u32) -> Result<(), DropReason> {
        let t = self.stream(key)?;
        let d = t.counter_delta(drops);
        self.stats.lost_samples += u64::from(d);
        Ok(())
    }

    fn stream(&mut self, key: StreamKey) -> Result<&mut SeqTracker, DropReason> {
        match self.streams.iter().position(|(k, _)| *k == key) {
            Some(i) => Ok(&mut self.streams[i].1),
            None => {
                if self.streams.len() >= self.max_streams {
                    return Err(DropReason::StreamLimit);
                }
                self.streams.push((key, SeqTracker::default()));
                let last = self.streams.len() - 1;
                Ok(&mut self.streams[last].1)
            }
        }
    }
}

pub(crate) struct Exporters {
    slots: Vec<Option<Exporter>>,
    free: Vec<u32>,
    by_addr: HashMap<IpAddr, ExporterId>,
    allowed: Vec<super::IpPrefix>,
    max: usize,
    dummy: Exporter,
}

impl Exporters {
    pub(super) fn new(cfg: &CollectorConfig) -> Result<Exporters, CollectorConfigError> {
        let mut ex = Exporters {
            slots: Vec::new(),
            free: Vec::new(),
            by_addr: HashMap::new(),
            allowed: cfg.allowed_exporters.clone(),
            max: cfg.limits.max_exporters.max(cfg.exporters.len()),
            dummy: Exporter::new(
                IpAddr::from([0, 0, 0, 0]),
                String::new(),
                Instant::now(),
                0,
                0,
            ),
        };
        let now = Instant::now();
        let mut names = std::collections::HashSet::new();
        for c in &cfg.exporters {
            let addr = c.address.to_canonical();
            if c.name.is_empty() || c.name.contains(':') {
                return Err(CollectorConfigError::BadName { address: addr });
            }
            if !names.insert(c.name.clone()) {
                return Err(CollectorConfigError::DuplicateName {
                    name: c.name.clone(),
                });
            }
            if ex.by_addr.contains_key(&addr) {
                return Err(CollectorConfigError::DuplicateExporter { address: addr });
            }
            if c.sampling_rate == Some(0) {
                return Err(CollectorConfigError::ZeroRate {
                    name: c.name.clone(),
                });
            }
            if let Some((&ifindex, _)) = c.interfaces.iter().find(|(_, n)| n.is_empty()) {
                return Err(CollectorConfigError::EmptyInterfaceName {
                    name: c.name.clone(),
                    ifindex,
                });
            }
            let mut e = Exporter::new(
                addr,
                c.name.clone(),
                now,
                cfg.limits.max_samplers_per_exporter,
                cfg.limits.max_streams_per_exporter,
            );
            e.configured = true;
            e.sampling_override = c.sampling_rate;
            e.interfaces = c.interfaces.clone();
            let id = ex.insert(e);
            ex.by_addr.insert(addr, id);
        }
        Ok(ex)
    }

    fn insert(&mut self, e: Exporter) -> ExporterId {
        match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(e);
                ExporterId(i)
            }
            None => {
                self.slots.push(Some(e));
                ExporterId(self.slots.len() as u32 - 1)
            }
        }
    }

    /// The exporter for `ip` (canonical), created if allowed and room.
    pub(super) fn admit(
        &mut self,
        ip: IpAddr,
        now: Instant,
        cfg: &CollectorConfig,
    ) -> Result<ExporterId, DropReason> {
        if let Some(&id) = self.by_addr.get(&ip) {
            self.get_mut(id).last_seen = now;
            return Ok(id);
        }
        if !self.allowed.is_empty() && !self.allowed.iter().any(|p| p.contains(ip)) {
            return Err(DropReason::NotAllowed);
        }
        if self.by_addr.len() >= self.max {
            return Err(DropReason::TooManyExporters);
        }
        let id = self.insert(Exporter::new(
            ip,
            ip.to_string(),
            now,
            cfg.limits.max_samplers_per_exporter,
            cfg.limits.max_streams_per_exporter,
        ));
        self.by_addr.insert(ip, id);
        Ok(id)
    }

    /// Removes unconfigured exporters idle for `timeout`; returns their ids.
    pub(super) fn expire(&mut self, now: Instant, timeout: Duration) -> Vec<ExporterId> {
        let mut gone = Vec::new();
        for (i, s) in self.slots.iter_mut().enumerate() {
            let old = matches!(s, Some(e) if !e.configured
                && now.saturating_duration_since(e.last_seen) >= timeout);
            if old {
                if let Some(e) = s.take() {
                    self.by_addr.remove(&e.addr);
                }
                self.free.push(i as u32);
                gone.push(ExporterId(i as u32));
            }
        }
        gone
    }

    /// The exporter `id`. Ids come from `admit` within the same call (or
    /// held sets, forgotten with their exporter), so the slot is occupied;
    /// a stale id would get a detached dummy rather than a panic.
    pub(super) fn get_mut(&mut self, id: ExporterId) -> &mut Exporter {
        match self.slots.get_mut(id.0 as usize) {
            Some(Some(e)) => e,
            _ => &mut self.dummy,
        }
    }

    pub(super) fn lookup(&self, ip: IpAddr) -> Option<ExporterId> {
        self.by_addr.get(&ip).copied()
    }

    pub(super) fn len(&self) -> usize {
        self.by_addr.len()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (ExporterId, IpAddr, &str, &ExporterStats)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            s.as_ref()
                .filter(|e| !e.name.is_empty())
                .map(|e| (ExporterId(i as u32), e.addr, e.name.as_str(), &e.stats))
        })
    }

    pub(super) fn interface_label(&self, id: ExporterId, ifindex: u32, buf: &mut String) {
        buf.clear();
        let Some(Some(e)) = self.slots.get(id.0 as usize) else {
            let _ = write!(buf, "unknown:{ifindex}");
            return;
        };
        buf.push_str(&e.name);
        buf.push(':');
        match e.interfaces.get(&ifindex) {
            Some(n) => buf.push_str(n),
            None => {
                let _ = write!(buf, "{ifindex}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_parse_and_match() {
        let p: IpPrefix = "192.0.2.0/24".parse().unwrap();
        assert!(p.contains("192.0.2.77".parse().unwrap()));
        assert!(!p.contains("192.0.3.1".parse().unwrap()));
        assert!(p.contains("::ffff:192.0.2.1".parse().unwrap()));
        let p: IpPrefix = "2001:db8::/32".parse().unwrap();
        assert!(p.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!p.contains("2001:db9::1".parse().unwrap()));
        assert!(!p.contains("192.0.2.1".parse().unwrap()));
        let p: IpPrefix = "0.0.0.0/0".parse().unwrap();
        assert!(p.contains("203.0.113.9".parse().unwrap()));
        let p: IpPrefix = "203.0.113.9".parse().unwrap();
        assert_eq!(p.len, 32);
        for bad in ["10.0.0.0/33", "x/8", "2001:db8::/129", "10.0.0.0/-1", ""] {
            assert_eq!(
                bad.parse::<IpPrefix>(),
                Err(CollectorConfigError::BadPrefix(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn config_errors_name_the_exporter() {
        let ex = |a: &str, n: &str, r: Option<u32>| ExporterConfig {
            address: a.parse().unwrap(),
            name: n.into(),
            sampling_rate: r,
            interfaces: BTreeMap::new(),
        };
        let mk = |e: Vec<ExporterConfig>| {
            Exporters::new(&CollectorConfig {
                exporters: e,
                ..Default::default()
            })
            .err()
        };
        assert_eq!(
            mk(vec![ex("192.0.2.1", "a", None), ex("192.0.2.1", "b", None)]),
            Some(CollectorConfigError::DuplicateExporter {
                address: "192.0.2.1".parse().unwrap()
            })
        );
        assert_eq!(
            mk(vec![ex("192.0.2.1", "a", None), ex("192.0.2.2", "a", None)]),
            Some(CollectorConfigError::DuplicateName { name: "a".into() })
        );
        assert_eq!(
            mk(vec![ex("192.0.2.1", "a:b", None)]),
            Some(CollectorConfigError::BadName {
                address: "192.0.2.1".parse().unwrap()
            })
        );
        assert_eq!(
            mk(vec![ex("192.0.2.1", "r1", Some(0))]),
            Some(CollectorConfigError::ZeroRate { name: "r1".into() })
        );
        let msg = CollectorConfigError::ZeroRate { name: "r1".into() }.to_string();
        assert_eq!(
            msg,
            "collector.exporters: r1: sampling_rate must be at least 1"
        );
        assert_eq!(mk(vec![ex("192.0.2.1", "r1", Some(100))]), None);
    }

    #[test]
    fn interface_labels_use_names_then_indexes() {
        let mut ifs = BTreeMap::new();
        ifs.insert(7, "xe-0/0/1".to_string());
        let cfg = CollectorConfig {
            exporters: vec![ExporterConfig {
                address: "192.0.2.1".parse().unwrap(),
                name: "edge1".into(),
                sampling_rate: None,
                interfaces: ifs,
            }],
            ..Default::default()
        };
        let mut ex = Exporters::new(&cfg).unwrap();
        let id = ex.lookup("192.0.2.1".parse().unwrap()).unwrap();
        let mut s = String::from("junk");
        ex.interface_label(id, 7, &mut s);
        assert_eq!(s, "edge1:xe-0/0/1");
        ex.interface_label(id, 8, &mut s);
        assert_eq!(s, "edge1:8");
        let other = ex
            .admit("198.51.100.3".parse().unwrap(), Instant::now(), &cfg)
            .unwrap();
        ex.interface_label(other, 2, &mut s);
        assert_eq!(s, "198.51.100.3:2");
    }

    #[test]
    fn allowed_list_and_exporter_cap() {
        let mut cfg = CollectorConfig {
            allowed_exporters: vec!["10.0.0.0/8".parse().unwrap()],
            ..Default::default()
        };
        cfg.limits.max_exporters = 2;
        let mut ex = Exporters::new(&cfg).unwrap();
        let now = Instant::now();
        assert_eq!(
            ex.admit("192.0.2.1".parse().unwrap(), now, &cfg).err(),
            Some(DropReason::NotAllowed)
        );
        assert!(ex.admit("10.0.0.1".parse().unwrap(), now, &cfg).is_ok());
        assert!(ex.admit("10.0.0.2".parse().unwrap(), now, &cfg).is_ok());
        assert_eq!(
            ex.admit("10.0.0.3".parse().unwrap(), now, &cfg).err(),
            Some(DropReason::TooManyExporters)
        );
        // Known exporters are still admitted.
        assert!(ex.admit("10.0.0.1".parse().unwrap(), now, &cfg).is_ok());
        // Idle ones expire and make room.
        let later = now + Duration::from_secs(10);
        assert_eq!(ex.expire(later, Duration::from_secs(5)).len(), 2);
        assert!(ex.admit("10.0.0.3".parse().unwrap(), later, &cfg).is_ok());
        assert_eq!(ex.len(), 1);
    }
}

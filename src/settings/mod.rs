//! Settings: built-in defaults ← TOML file ← `XDPACCT_` environment ←
//! command-line flags, layered by figment ([`raw`], shape only) and turned
//! into one typed, validated [`Settings`] value here, in one place.
//!
//! Every bad value is one [`SettingsError`] naming the origin (file) and
//! the key. Nothing here touches the system beyond reading the config file
//! and the list of cores, and nothing here depends on the rest of the crate:
//! the accounting, capture and export code depend on the settings, never
//! the reverse. Not on the hot path; allocates freely.

pub mod billing;
pub mod collector;
pub mod connections;
mod net;
pub mod raw;
pub mod tcp_rtt;

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;

pub use net::{int_to_ip, IpPrefix};
pub use raw::{AsFileFormat, BytesMode, HostSeries, MplsPayload, XdpMode, ZeroCopy};

/// Where the packaged config lives; read when present and no `--config`
/// (or `XDPACCT_CONFIG`, the same flag) is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/xdpacct/xdpacct.toml";

/// Largest config file read (4,000 ranges with labels are ~300 KB).
pub const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// Memory parsing takes per byte of config at worst (a long array of
/// one-digit numbers; measured ~110), checked as headroom before parsing.
const PARSE_BYTES_PER_BYTE: usize = 128;

/// Host slots of all ranges together may not exceed this (32 bytes each per shard).
pub const MAX_HOST_SLOTS: u64 = 1 << 22;

/// Distinct label names over all ranges (and over all networks): every
/// series of the family carries each of them, so this bounds the page.
pub const MAX_LABEL_NAMES: usize = 32;

/// Longest label name or value, in bytes (a host range's labels are
/// repeated on every series of each of its hosts).
pub const MAX_LABEL_BYTES: usize = 256;

/// Label names Prometheus or its users give a meaning of their own.
const PROMETHEUS_LABELS: [&str; 4] = ["job", "instance", "le", "quantile"];

/// Labels the host families carry themselves.
pub const HOST_FAMILY_LABELS: [&str; 3] = ["ip", "direction", "interface"];

/// Labels the network families carry themselves.
pub const NETWORK_FAMILY_LABELS: [&str; 3] = ["network", "direction", "interface"];

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file or a variable does not have the expected shape.
    #[error("{origin}: {msg}")]
    Shape { origin: String, msg: String },
    #[error("{origin}: {key}: {msg}")]
    Invalid {
        origin: String,
        key: String,
        msg: String,
    },
}

/// Values given on the command line; they override everything else.
#[derive(Debug, Clone, Default)]
pub struct CliOverrides {
    pub config: Option<PathBuf>,
    pub interfaces: Vec<String>,
    pub port: Option<u16>,
    pub listen: Option<String>,
    /// promacct-style `FIRST-LAST[:key=value...]` ranges, added to the file's.
    pub ranges: Vec<String>,
}

/// Everything xdpacct was told, typed and checked.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the settings came from (a file name, or "built-in defaults"),
    /// for messages.
    pub origin: String,
    pub capture: Capture,
    pub accounting: Accounting,
    pub metrics: Metrics,
    /// `None` when no collector is configured (export off).
    pub netflow: Option<Netflow>,
    /// `[tcp_rtt]`: handshake round-trip times.
    pub tcp_rtt: tcp_rtt::TcpRtt,
    /// `[collector]` (flow input); `None` when the section is absent.
    pub collector: Option<collector::Collector>,
    /// `None` without a `[billing]` section (no ledger).
    pub billing: Option<billing::Billing>,
    /// `[connections]`: the busiest connections.
    pub connections: connections::Connections,
}

/// `[capture]`.
#[derive(Debug, Clone)]
pub struct Capture {
    /// Interfaces to watch (`-i`, repeatable). Defaults to none.
    pub interfaces: Vec<String>,
    /// The capture backend and its own settings. Defaults to AF_XDP.
    pub backend: Backend,
    /// Cores for the workers, one per queue in turn; `None`: every core but
    /// the first (left to the HTTP server and the kernel).
    pub cores: Option<Vec<core_affinity::CoreId>>,
    /// Put the interfaces in promiscuous mode while running (a SPAN port
    /// delivers other hosts' MACs). Defaults to true.
    pub promiscuous: bool,
    /// Frames taken from a ring in one batch, 1..=1024. Defaults to 64.
    pub batch: usize,
}

/// `capture.mode` with the keys only that backend understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Afxdp(Afxdp),
    Afpacket,
}

/// `capture.mode = "afxdp"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Afxdp {
    /// Defaults to auto.
    pub xdp_mode: XdpMode,
    /// Defaults to auto.
    pub zero_copy: ZeroCopy,
    /// UMEM frames per queue (2 KiB each). Defaults to 16384 (32 MiB).
    pub frames_per_queue: u32,
    /// RX ring slots (power of two). Defaults to 16384: 8 ms of 2 Mpps, so
    /// a worker descheduled for a moment loses nothing (bench/RESULTS.md).
    pub rx_ring: u32,
    /// Fill ring slots (power of two). Defaults to twice `frames_per_queue`.
    pub fill_ring: u32,
    /// The XDP program stamps TCP handshake frames with their time: on
    /// when `[tcp_rtt]` is (not a key of its own).
    pub handshake_times: bool,
}

impl Default for Afxdp {
    fn default() -> Self {
        Afxdp {
            xdp_mode: XdpMode::Auto,
            zero_copy: ZeroCopy::Auto,
            frames_per_queue: 16384,
            rx_ring: 16384,
            fill_ring: 2 * 16384,
            handshake_times: false,
        }
    }
}

/// Ring and UMEM sizes: powers of two in this range.
const RING_MIN: u32 = 64;
const RING_MAX: u32 = 1 << 18;

/// `[accounting]`.
#[derive(Debug, Clone)]
pub struct Accounting {
    /// Byte convention. Defaults to l2.
    pub bytes: BytesMode,
    /// What follows the bottom MPLS label (docs/ENCAPSULATIONS.md).
    /// Defaults to guess.
    pub mpls_payload: MplsPayload,
    /// Which hosts have series on the page. Defaults to active.
    pub host_series: HostSeries,
    /// With `host_series = "active"`, a host without traffic for this long
    /// leaves the page (60 s to 30 days). Defaults to 1 hour.
    pub host_idle_timeout: Duration,
    /// The operator's own prefixes; they decide a frame's direction. When
    /// the file gives none, the ranges' spans.
    pub local_networks: Vec<Span>,
    /// IPv6 hosts are counted per prefix of this length, 1..=128. Defaults to 64.
    pub ipv6_host_prefix: u8,
    /// Address ranges counted per host, with labels; disjoint.
    pub ranges: Vec<HostRange>,
    /// Host slots the ranges need together (at most [`MAX_HOST_SLOTS`]).
    pub host_slots: u32,
    /// Prefix-to-AS table for `xdpacct_as_*`. Defaults to none.
    pub as_table: Option<AsTableFiles>,
    /// Busiest ASes that get their own series. Defaults to 1000.
    pub max_as_series: usize,
    /// Remote networks counted by name.
    pub networks: Vec<Network>,
    /// Networks with their own series. Defaults to 1000.
    pub max_network_series: usize,
}

/// An inclusive span of addresses of one family (IPv4 in the low 32 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub v6: bool,
    pub first: u128,
    pub last: u128,
}

/// One `[[accounting.ranges]]` entry, checked.
#[derive(Debug, Clone)]
pub struct HostRange {
    pub span: Span,
    /// Hosts in the range: addresses (IPv4) or host prefixes (IPv6), at
    /// least 1 and at most [`MAX_HOST_SLOTS`].
    pub hosts: u32,
    /// Its labels, sorted by name, names checked.
    pub labels: Vec<(String, String)>,
}

impl HostRange {
    /// The first host key: the address, or for IPv6 the address shifted
    /// right to its host prefix.
    pub fn first_key(&self, ipv6_host_prefix: u8) -> u128 {
        if self.span.v6 {
            shift_right(self.span.first, 128 - u32::from(ipv6_host_prefix))
        } else {
            self.span.first
        }
    }
}

fn shift_right(v: u128, by: u32) -> u128 {
    v.checked_shr(by).unwrap_or(0)
}

/// `accounting.as_file` and friends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsTableFiles {
    pub path: PathBuf,
    pub format: AsFileFormat,
    /// `asn name` file for `peer_as_name`.
    pub names: Option<PathBuf>,
}

/// One `[[accounting.networks]]` entry, checked.
#[derive(Debug, Clone)]
pub struct Network {
    /// The `network` label value: not empty, not "other".
    pub name: String,
    /// At least one.
    pub prefixes: Vec<IpPrefix>,
    /// Extra labels on its series, names checked.
    pub labels: Vec<(String, String)>,
}

/// `[metrics]`.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Address and port of the HTTP server. Defaults to 0.0.0.0:9112.
    pub listen: SocketAddr,
    /// Most host series on one page (1,000 to 10,000,000); the rest are
    /// folded into `ip="other"` and counted. Defaults to 1,000,000.
    pub max_series: usize,
    /// Web config file (exporter-toolkit YAML) for HTTPS and basic auth.
    pub web_config: Option<PathBuf>,
}

/// `[netflow]`, when it has collectors.
#[derive(Debug, Clone)]
pub struct Netflow {
    /// "host:port", each resolving to at least one address.
    pub collectors: Vec<String>,
    /// 9 (NetFlow v9) or 10 (IPFIX). Defaults to 10.
    pub version: u8,
    /// Flow cache capacity per shard, 1..=[`MAX_FLOWS`]. Defaults to 65536.
    pub max_flows: u32,
    /// Without a packet this long a flow is exported, 1..=86400 s. Defaults to 15 s.
    pub idle_timeout: Duration,
    /// A long flow is exported after this long, 1..=86400 s. Defaults to 60 s.
    pub active_timeout: Duration,
    /// Templates are re-sent this often. Defaults to 20 s.
    pub template_refresh: Duration,
    /// …and after this many export packets. Defaults to 4096.
    pub template_refresh_packets: u32,
    /// Largest export datagram in bytes, at least 512. Defaults to 1400.
    pub mtu: u16,
    /// Source id (v9) / observation domain (IPFIX). Defaults to 0.
    pub observation_domain: u32,
}

/// Most flows one shard's cache may hold (64 bytes each: 256 MiB).
pub const MAX_FLOWS: u32 = 1 << 22;

impl Settings {
    /// Layers defaults ← file ← environment ← flags and checks the result.
    pub fn load(cli: &CliOverrides) -> Result<Settings, SettingsError> {
        let (origin, text) = match cli.config.clone() {
            Some(path) => {
                let origin = path.display().to_string();
                let text = read_config_file(&path).map_err(|msg| SettingsError::Shape {
                    origin: origin.clone(),
                    msg,
                })?;
                (origin, text)
            }
            None if Path::new(DEFAULT_CONFIG_PATH).exists() => {
                let text = read_config_file(Path::new(DEFAULT_CONFIG_PATH)).map_err(|msg| {
                    SettingsError::Shape {
                        origin: DEFAULT_CONFIG_PATH.into(),
                        msg,
                    }
                })?;
                (DEFAULT_CONFIG_PATH.to_string(), text)
            }
            None => ("built-in defaults".to_string(), String::new()),
        };
        let mut fig = Figment::from(Toml::string(&text));
        // Only the config sections: other XDPACCT_* variables (XDPACCT_CONFIG,
        // a test switch, a wrapper's setting) are not config keys.
        fig = fig.merge(Env::prefixed("XDPACCT_").split("__").filter(|k| {
            ["capture", "accounting", "metrics", "netflow", "collector"]
                .iter()
                .any(|s| k.as_str().to_ascii_lowercase().starts_with(s))
        }));
        if !cli.interfaces.is_empty() {
            fig = fig.merge(Serialized::default("capture.interfaces", &cli.interfaces));
        }
        if let Some(listen) = &cli.listen {
            fig = fig.merge(Serialized::default("metrics.listen", listen));
        }
        let mut raw: raw::Config = fig.extract().map_err(|e| SettingsError::Shape {
            origin: origin.clone(),
            msg: one_line(&e),
        })?;
        if let Some(port) = cli.port {
            let listen = raw.metrics.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
            let host = listen.rsplit_once(':').map_or("0.0.0.0", |(h, _)| h);
            raw.metrics.listen = Some(format!("{host}:{port}"));
        }
        for spec in &cli.ranges {
            let range = parse_range_flag(spec).map_err(|msg| SettingsError::Invalid {
                origin: "command line".into(),
                key: format!("-r {spec}"),
                msg,
            })?;
            raw.accounting.ranges.push(range);
        }
        Settings::from_raw(&raw, &origin)
    }

    /// Parses a TOML document (no file, no environment, no flags) and
    /// checks it, as `load` does for a file. Never panics on any input.
    pub fn from_toml_str(s: &str) -> Result<Settings, SettingsError> {
        let origin = "toml string";
        let raw: raw::Config =
            Figment::from(Toml::string(s))
                .extract()
                .map_err(|e| SettingsError::Shape {
                    origin: origin.into(),
                    msg: one_line(&e),
                })?;
        Settings::from_raw(&raw, origin)
    }

    /// Turns the raw values into typed ones: every default and every check
    /// is here.
    pub fn from_raw(raw: &raw::Config, origin: &str) -> Result<Settings, SettingsError> {
        let v = Validator { origin };
        let mut s = Settings {
            origin: origin.to_string(),
            capture: v.capture(&raw.capture)?,
            accounting: Accounting::from_raw(&raw.accounting, origin)?,
            metrics: v.metrics(&raw.metrics)?,
            netflow: v.netflow(&raw.netflow)?,
            tcp_rtt: tcp_rtt::TcpRtt::from_raw(&raw.tcp_rtt, origin)?,
            collector: collector::Collector::from_raw(raw.collector.as_ref(), origin)?,
            billing: billing::Billing::from_raw(raw.billing.as_ref(), origin)?,
            connections: connections::Connections::from_raw(&raw.connections, origin)?,
        };
        if let Backend::Afxdp(x) = &mut s.capture.backend {
            x.handshake_times = s.tcp_rtt.enabled;
        }
        Ok(s)
    }
}

const DEFAULT_LISTEN: &str = "0.0.0.0:9112";

/// Reads a config file: a regular file of at most [`MAX_CONFIG_BYTES`]
/// (not a FIFO, a device or `/dev/zero`).
fn read_config_file(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "file not found".to_string(),
        _ => e.to_string(),
    })?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(format!(
            "{} bytes; a config file may have at most {MAX_CONFIG_BYTES}",
            meta.len()
        ));
    }
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_CONFIG_BYTES + 1).read_to_string(&mut text))
        .map_err(|e| e.to_string())?;
    // Parsing takes up to ~110 times the file's size: a file that could not
    // be parsed in the memory left is refused here, not an abort later
    // (under an address-space limit the probe is exact).
    let need = text.len().saturating_mul(PARSE_BYTES_PER_BYTE);
    if Vec::<u8>::new().try_reserve_exact(need).is_err() {
        return Err(format!(
            "{} bytes need about {} MiB to parse, more than this process may have",
            text.len(),
            need >> 20
        ));
    }
    Ok(text)
}

/// Checks of the sections other than `[accounting]`, naming the origin.
struct Validator<'a> {
    origin: &'a str,
}

impl Validator<'_> {
    fn err(&self, key: impl Into<String>, msg: impl Into<String>) -> SettingsError {
        SettingsError::Invalid {
            origin: self.origin.to_string(),
            key: key.into(),
            msg: msg.into(),
        }
    }

    fn capture(&self, c: &raw::CaptureConfig) -> Result<Capture, SettingsError> {
        let mode = c.mode.unwrap_or_default();
        let backend = match mode {
            raw::CaptureMode::Afxdp => {
                let d = Afxdp::default();
                let frames = self.ring("capture.frames_per_queue", c.frames_per_queue)?;
                let frames = frames.unwrap_or(d.frames_per_queue);
                Backend::Afxdp(Afxdp {
                    xdp_mode: c.xdp_mode.unwrap_or(d.xdp_mode),
                    zero_copy: c.zero_copy.unwrap_or(d.zero_copy),
                    frames_per_queue: frames,
                    rx_ring: self
                        .ring("capture.rx_ring", c.rx_ring)?
                        .unwrap_or(d.rx_ring),
                    fill_ring: self
                        .ring("capture.fill_ring", c.fill_ring)?
                        .unwrap_or(2 * frames),
                    handshake_times: false,
                })
            }
            raw::CaptureMode::Afpacket => {
                let afxdp_keys = [
                    ("capture.xdp_mode", c.xdp_mode.is_some()),
                    ("capture.zero_copy", c.zero_copy.is_some()),
                    ("capture.frames_per_queue", c.frames_per_queue.is_some()),
                    ("capture.rx_ring", c.rx_ring.is_some()),
                    ("capture.fill_ring", c.fill_ring.is_some()),
                ];
                if let Some((key, _)) = afxdp_keys.iter().find(|(_, set)| *set) {
                    return Err(self.err(
                        *key,
                        "is an AF_XDP setting; remove it or set capture.mode = \"afxdp\"",
                    ));
                }
                Backend::Afpacket
            }
        };
        let batch = c.batch.unwrap_or(64);
        if !(1..=1024).contains(&batch) {
            return Err(self.err("capture.batch", "must be between 1 and 1024"));
        }
        Ok(Capture {
            interfaces: c.interfaces.clone(),
            backend,
            cores: self.cores(&c.cores)?,
            promiscuous: c.promiscuous.unwrap_or(true),
            batch: batch as usize,
        })
    }

    /// A ring or UMEM size: a power of two in `RING_MIN..=RING_MAX`.
    fn ring(&self, key: &str, v: Option<u32>) -> Result<Option<u32>, SettingsError> {
        match v {
            Some(v) if !v.is_power_of_two() || !(RING_MIN..=RING_MAX).contains(&v) => Err(self
                .err(
                    key,
                    format!("{v} must be a power of two from {RING_MIN} to {RING_MAX}"),
                )),
            v => Ok(v),
        }
    }

    /// `capture.cores`: each one a core this process may run on.
    fn cores(&self, want: &[usize]) -> Result<Option<Vec<core_affinity::CoreId>>, SettingsError> {
        if want.is_empty() {
            return Ok(None);
        }
        let have: Vec<usize> = core_affinity::get_core_ids()
            .unwrap_or_default()
            .iter()
            .map(|c| c.id)
            .collect();
        let mut out = Vec::new();
        for (i, &id) in want.iter().enumerate() {
            if !have.contains(&id) {
                return Err(self.err(
                    format!("capture.cores[{i}]"),
                    format!("core {id} does not exist or is not allowed here (cores: {have:?})"),
                ));
            }
            if out.iter().any(|c: &core_affinity::CoreId| c.id == id) {
                return Err(self.err(format!("capture.cores[{i}]"), format!("core {id} twice")));
            }
            out.push(core_affinity::CoreId { id });
        }
        Ok(Some(out))
    }

    fn metrics(&self, m: &raw::MetricsConfig) -> Result<Metrics, SettingsError> {
        let listen = m.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen = listen
            .parse::<SocketAddr>()
            .map_err(|e| self.err("metrics.listen", format!("{listen:?}: {e}")))?;
        let max_series = m.max_series.unwrap_or(1_000_000);
        if !(1_000..=10_000_000).contains(&max_series) {
            return Err(self.err("metrics.max_series", "must be between 1000 and 10000000"));
        }
        Ok(Metrics {
            listen,
            max_series,
            web_config: m.web_config.as_ref().map(PathBuf::from),
        })
    }

    fn netflow(&self, n: &raw::NetflowConfig) -> Result<Option<Netflow>, SettingsError> {
        let d = Netflow::default();
        let version = n.version.unwrap_or(d.version);
        if version != 9 && version != 10 {
            return Err(self.err("netflow.version", "must be 9 (NetFlow v9) or 10 (IPFIX)"));
        }
        for c in &n.collectors {
            if c.to_socket_addrs()
                .map(|mut a| a.next().is_none())
                .unwrap_or(true)
            {
                return Err(self.err("netflow.collectors", format!("{c:?} is not host:port")));
            }
        }
        let secs = |key: &str, v: Option<u64>, default: Duration| match v {
            None => Ok(default),
            Some(s) if (1..=86_400).contains(&s) => Ok(Duration::from_secs(s)),
            Some(_) => Err(self.err(key, "must be between 1 and 86400 seconds")),
        };
        let idle_timeout = secs("netflow.idle_timeout", n.idle_timeout, d.idle_timeout)?;
        let active_timeout = secs("netflow.active_timeout", n.active_timeout, d.active_timeout)?;
        let template_refresh = secs(
            "netflow.template_refresh",
            n.template_refresh,
            d.template_refresh,
        )?;
        let max_flows = n.max_flows.unwrap_or(d.max_flows);
        if !(1..=MAX_FLOWS).contains(&max_flows) {
            return Err(self.err(
                "netflow.max_flows",
                format!("must be between 1 and {MAX_FLOWS}"),
            ));
        }
        let mtu = n.mtu.unwrap_or(d.mtu);
        if mtu < 512 {
            return Err(self.err("netflow.mtu", "must be at least 512 bytes"));
        }
        let template_refresh_packets = n
            .template_refresh_packets
            .unwrap_or(d.template_refresh_packets);
        if template_refresh_packets == 0 {
            return Err(self.err("netflow.template_refresh_packets", "must be at least 1"));
        }
        if n.collectors.is_empty() {
            return Ok(None);
        }
        Ok(Some(Netflow {
            collectors: n.collectors.clone(),
            version,
            max_flows,
            idle_timeout,
            active_timeout,
            template_refresh,
            template_refresh_packets,
            mtu,
            observation_domain: n.observation_domain.unwrap_or(d.observation_domain),
        }))
    }
}

impl Default for Netflow {
    /// The defaults, with no collector (tests and benches add their own).
    fn default() -> Self {
        Netflow {
            collectors: Vec::new(),
            version: 10,
            max_flows: 65536,
            idle_timeout: Duration::from_secs(15),
            active_timeout: Duration::from_secs(60),
            template_refresh: Duration::from_secs(20),
            template_refresh_packets: 4096,
            mtu: 1400,
            observation_domain: 0,
        }
    }
}

impl Accounting {
    /// Checks `[accounting]` (`origin` names the file in errors).
    pub fn from_raw(
        cfg: &raw::AccountingConfig,
        origin: &str,
    ) -> Result<Accounting, SettingsError> {
        let err = |key: String, msg: String| SettingsError::Invalid {
            origin: origin.to_string(),
            key,
            msg,
        };
        let hp = cfg.ipv6_host_prefix.unwrap_or(64);
        if !(1..=128).contains(&hp) {
            return Err(err(
                "accounting.ipv6_host_prefix".into(),
                format!("{hp} must be 1..=128"),
            ));
        }
        let mut ranges = Vec::with_capacity(cfg.ranges.len());
        let mut slots: u64 = 0;
        for (i, r) in cfg.ranges.iter().enumerate() {
            let key = format!("accounting.ranges[{i}]");
            let span = match (&r.prefix, &r.first, &r.last) {
                (Some(p), None, None) => {
                    let p: IpPrefix = p.parse().map_err(|m| err(format!("{key}.prefix"), m))?;
                    if p.is_ipv6() && p.len > hp {
                        return Err(err(
                            format!("{key}.prefix"),
                            format!("{p} is longer than accounting.ipv6_host_prefix /{hp}"),
                        ));
                    }
                    let (first, last) = p.bounds();
                    Span {
                        v6: p.is_ipv6(),
                        first,
                        last,
                    }
                }
                (None, Some(f), Some(l)) => {
                    let f: IpPrefix = f.parse().map_err(|m| err(format!("{key}.first"), m))?;
                    let l: IpPrefix = l.parse().map_err(|m| err(format!("{key}.last"), m))?;
                    let full = if f.is_ipv6() { 128 } else { 32 };
                    if f.is_ipv6() != l.is_ipv6()
                        || f.len != full
                        || l.len != full
                        || f.bounds().0 > l.bounds().0
                    {
                        return Err(err(
                            key,
                            "first and last must be single addresses of one family, first <= last"
                                .into(),
                        ));
                    }
                    Span {
                        v6: f.is_ipv6(),
                        first: f.bounds().0,
                        last: l.bounds().0,
                    }
                }
                _ => {
                    return Err(err(
                        key,
                        "give either `prefix` or both `first` and `last`".into(),
                    ))
                }
            };
            // Hosts of the range, computed without overflow: a /64 counted
            // per /128 is 2^64 hosts, far past the limit, not 0 or 2^64 - 1.
            let shift = if span.v6 { 128 - u32::from(hp) } else { 0 };
            let hosts = (shift_right(span.last, shift) - shift_right(span.first, shift))
                .checked_add(1)
                .and_then(|n| u32::try_from(n).ok())
                .filter(|&n| u64::from(n) <= MAX_HOST_SLOTS);
            let hosts = match hosts.and_then(|n| Some((n, slots.checked_add(n.into())?))) {
                Some((hosts, total)) if total <= MAX_HOST_SLOTS => {
                    slots = total;
                    hosts
                }
                _ => {
                    return Err(err(
                        key,
                        format!(
                            "ranges hold more than {MAX_HOST_SLOTS} hosts; split per-host \
                             accounting into smaller ranges (or raise accounting.ipv6_host_prefix \
                             less far)"
                        ),
                    ))
                }
            };
            let mut labels = Vec::with_capacity(r.labels.len());
            for (name, value) in &r.labels {
                check_label(name, value, &HOST_FAMILY_LABELS)
                    .map_err(|m| err(format!("{key}.labels.{}", clip(name)), m))?;
                labels.push((name.clone(), value.clone()));
            }
            ranges.push(HostRange {
                span,
                hosts,
                labels,
            });
        }
        check_disjoint(&ranges, hp).map_err(|(a, b)| {
            err(
                "accounting.ranges".into(),
                format!(
                    "two ranges overlap (ranges[{a}] and ranges[{b}]); every host (an IPv6 \
                     host is a /{hp} prefix) may be in one range only"
                ),
            )
        })?;

        let mut local_networks = Vec::new();
        for (i, n) in cfg.local_networks.iter().enumerate() {
            let p: IpPrefix = n
                .parse()
                .map_err(|m| err(format!("accounting.local_networks[{i}]"), m))?;
            let (first, last) = p.bounds();
            local_networks.push(Span {
                v6: p.is_ipv6(),
                first,
                last,
            });
        }
        if cfg.local_networks.is_empty() {
            local_networks = ranges.iter().map(|r| r.span).collect();
        }

        let as_table = cfg.as_file.as_ref().map(|path| AsTableFiles {
            path: PathBuf::from(path),
            format: cfg.as_file_format.unwrap_or_default(),
            names: cfg.as_names_file.as_ref().map(PathBuf::from),
        });
        let mut networks = Vec::with_capacity(cfg.networks.len());
        for (i, n) in cfg.networks.iter().enumerate() {
            let key = format!("accounting.networks[{i}]");
            if n.name.is_empty() || n.name == "other" {
                return Err(err(
                    format!("{key}.name"),
                    "give each network a name other than \"other\"".into(),
                ));
            }
            if n.prefixes.is_empty() {
                return Err(err(
                    format!("{key}.prefixes"),
                    "list at least one prefix".into(),
                ));
            }
            let mut prefixes = Vec::with_capacity(n.prefixes.len());
            for p in &n.prefixes {
                prefixes.push(
                    p.parse::<IpPrefix>()
                        .map_err(|m| err(format!("{key}.prefixes"), m))?,
                );
            }
            let mut labels = Vec::with_capacity(n.labels.len());
            for (name, value) in &n.labels {
                check_label(name, value, &NETWORK_FAMILY_LABELS)
                    .map_err(|m| err(format!("{key}.labels.{}", clip(name)), m))?;
                labels.push((name.clone(), value.clone()));
            }
            networks.push(Network {
                name: n.name.clone(),
                prefixes,
                labels,
            });
        }
        for (key, names) in [
            (
                "accounting.ranges",
                distinct_names(ranges.iter().map(|r| &r.labels)),
            ),
            (
                "accounting.networks",
                distinct_names(networks.iter().map(|n| &n.labels)),
            ),
        ] {
            if names > MAX_LABEL_NAMES {
                return Err(err(
                    key.into(),
                    format!(
                        "{names} distinct label names; at most {MAX_LABEL_NAMES} (every series \
                         carries each of them)"
                    ),
                ));
            }
        }
        let idle = cfg.host_idle_timeout.unwrap_or(3600);
        if !(60..=30 * 86_400).contains(&idle) {
            return Err(err(
                "accounting.host_idle_timeout".into(),
                "must be between 60 and 2592000 seconds (30 days)".into(),
            ));
        }
        Ok(Accounting {
            bytes: cfg.bytes.unwrap_or_default(),
            mpls_payload: cfg.mpls_payload.unwrap_or_default(),
            host_series: cfg.host_series.unwrap_or_default(),
            host_idle_timeout: Duration::from_secs(idle),
            local_networks,
            ipv6_host_prefix: hp,
            ranges,
            // At most MAX_HOST_SLOTS (2^22), checked above.
            host_slots: u32::try_from(slots).unwrap_or(u32::MAX),
            as_table,
            max_as_series: cfg.max_as_series.unwrap_or(1000),
            networks,
            max_network_series: cfg.max_network_series.unwrap_or(1000),
        })
    }

    /// The union of the ranges' label names, sorted.
    pub fn range_label_names(&self) -> Vec<String> {
        let names: std::collections::BTreeSet<&String> = self
            .ranges
            .iter()
            .flat_map(|r| r.labels.iter().map(|(k, _)| k))
            .collect();
        names.into_iter().cloned().collect()
    }
}

impl Default for Accounting {
    fn default() -> Self {
        Accounting::from_raw(&raw::AccountingConfig::default(), "defaults")
            .unwrap_or_else(|_| unreachable!("the defaults are valid"))
    }
}

/// The index pair of two ranges that share a host, if any. Hosts, not
/// addresses: two IPv6 ranges with addresses of one host prefix (a /64)
/// would share its slot, and one would be billed the other's traffic.
fn check_disjoint(ranges: &[HostRange], ipv6_host_prefix: u8) -> Result<(), (usize, usize)> {
    let keys = |r: &HostRange| {
        let first = r.first_key(ipv6_host_prefix);
        (
            r.span.v6,
            first,
            first + u128::from(r.hosts.saturating_sub(1)),
        )
    };
    let mut order: Vec<(bool, u128, u128, usize)> = ranges
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let (v6, first, last) = keys(r);
            (v6, first, last, i)
        })
        .collect();
    order.sort_unstable();
    for w in order.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        if a.0 == b.0 && b.1 <= a.2 {
            return Err((a.3.min(b.3), a.3.max(b.3)));
        }
    }
    Ok(())
}

/// `s`, cut to 64 bytes (at a character boundary) with "…" when longer,
/// for messages.
fn clip(s: &str) -> String {
    if s.len() <= 64 {
        return s.to_string();
    }
    let mut cut = 64;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &s[..cut])
}

/// How many distinct names these label lists have.
fn distinct_names<'a>(lists: impl Iterator<Item = &'a Vec<(String, String)>>) -> usize {
    lists
        .flatten()
        .map(|(k, _)| k.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len()
}

/// A label of a range or network: its name ([`check_label_name`]), and
/// name and value at most [`MAX_LABEL_BYTES`] long.
fn check_label(name: &str, value: &str, family_labels: &[&str]) -> Result<(), String> {
    if name.len() > MAX_LABEL_BYTES || value.len() > MAX_LABEL_BYTES {
        return Err(format!(
            "label names and values are at most {MAX_LABEL_BYTES} bytes long"
        ));
    }
    check_label_name(name, family_labels)
}

/// A label name Prometheus accepts (`[a-zA-Z_][a-zA-Z0-9_]*`, no `__`
/// prefix), not one the family uses itself, and not one with a meaning of
/// its own in Prometheus (`job`, `instance`, `le`, `quantile`).
pub fn check_label_name(name: &str, family_labels: &[&str]) -> Result<(), String> {
    let mut c = name.chars();
    let grammar = matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
    if !grammar || name.starts_with("__") {
        return Err(
            "label names are [a-zA-Z_][a-zA-Z0-9_]* and do not start with __ (Prometheus)".into(),
        );
    }
    if family_labels.contains(&name) || PROMETHEUS_LABELS.contains(&name) {
        let mut taken: Vec<&str> = family_labels.to_vec();
        taken.extend(PROMETHEUS_LABELS);
        return Err(format!("{name} is taken (reserved: {})", taken.join(", ")));
    }
    Ok(())
}

fn one_line(e: &figment::Error) -> String {
    let mut msgs: Vec<String> = e.clone().into_iter().map(|e| e.to_string()).collect();
    msgs.dedup();
    msgs.join("; ")
        .replace('\n', " ")
        .replace("key \"default.", "key \"")
}

/// promacct's `-r FIRST-LAST[:key=value...]`, e.g.
/// `-r 198.51.100.1-198.51.100.254:customer=acme:site=ams`.
pub fn parse_range_flag(spec: &str) -> Result<raw::RangeConfig, String> {
    let mut parts = spec.split(':');
    // IPv6 addresses contain colons: accept `[first]-[last]` or a prefix form too.
    let (span, labels): (&str, Vec<&str>) = if spec.starts_with('[') {
        let end = spec.rfind(']').ok_or("unclosed '['")?;
        let span = &spec[..=end];
        let rest = spec[end + 1..].trim_start_matches(':');
        (
            span,
            if rest.is_empty() {
                vec![]
            } else {
                rest.split(':').collect()
            },
        )
    } else {
        let span = parts.next().unwrap_or_default();
        (span, parts.collect())
    };
    let span = span.replace(['[', ']'], "");
    let mut range = raw::RangeConfig::default();
    if let Some((first, last)) = span.split_once('-') {
        range.first = Some(first.trim().to_string());
        range.last = Some(last.trim().to_string());
    } else if span.contains('/') {
        range.prefix = Some(span.trim().to_string());
    } else {
        return Err("expected FIRST-LAST or PREFIX/LEN, then :key=value labels".into());
    }
    let mut labels_map = BTreeMap::new();
    for kv in labels {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("label {kv:?} is not key=value"))?;
        labels_map.insert(k.to_string(), v.to_string());
    }
    range.labels = labels_map;
    Ok(range)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounting(toml: &str) -> Result<Accounting, SettingsError> {
        Settings::from_toml_str(toml).map(|s| s.accounting)
    }

    #[test]
    fn example_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/xdpacct.toml");
        let s = Settings::load(&CliOverrides {
            config: Some(path),
            ..Default::default()
        })
        .unwrap();
        assert!(!s.accounting.ranges.is_empty());
        assert_eq!(s.capture.backend, Backend::Afxdp(Afxdp::default()));
    }

    #[test]
    fn defaults_are_one_set() {
        let s = Settings::from_toml_str("").unwrap();
        assert_eq!(s.metrics.listen, DEFAULT_LISTEN.parse().unwrap());
        assert_eq!(s.capture.batch, 64);
        assert!(s.netflow.is_none());
        let n = Netflow::default();
        assert_eq!((n.version, n.max_flows, n.mtu), (10, 65536, 1400));
        assert_eq!(n.idle_timeout, Duration::from_secs(15));
        assert_eq!(Accounting::default().ipv6_host_prefix, 64);
    }

    #[test]
    fn afxdp_keys_belong_to_afxdp() {
        let e = Settings::from_toml_str("[capture]\nmode = \"afpacket\"\nrx_ring = 1024\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("capture.rx_ring") && e.contains("AF_XDP"), "{e}");
        let s = Settings::from_toml_str("[capture]\nmode = \"afpacket\"\n").unwrap();
        assert_eq!(s.capture.backend, Backend::Afpacket);
    }

    #[test]
    fn rings_and_flows_are_bounded() {
        for bad in [
            "[capture]\nrx_ring = 2147483648\n",
            "[capture]\nfill_ring = 1000\n",
            "[netflow]\nmax_flows = 4294967295\n",
            "[netflow]\nmax_flows = 0\n",
        ] {
            assert!(Settings::from_toml_str(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_cores_are_refused() {
        let e = Settings::from_toml_str("[capture]\ncores = [99999]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("capture.cores[0]") && e.contains("99999"), "{e}");
    }

    /// Regression: `ipv6_host_prefix = 128` with a /64 range overflowed the
    /// host count (truncating cast) and billed another range's customer.
    #[test]
    fn host_counts_never_overflow() {
        for bad in [
            "[accounting]\nipv6_host_prefix = 128\n[[accounting.ranges]]\nprefix = \"2001:db8::/64\"\n",
            "[[accounting.ranges]]\nprefix = \"::/0\"\n",
            "[accounting]\nipv6_host_prefix = 128\n[[accounting.ranges]]\nfirst = \"2001:db8::\"\nlast = \"2001:db8::1:0:0:4\"\n",
            "[[accounting.ranges]]\nprefix = \"0.0.0.0/0\"\n",
        ] {
            let e = accounting(bad).unwrap_err().to_string();
            assert!(e.contains("more than"), "{bad}: {e}");
        }
        let a = accounting(
            "[accounting]\nipv6_host_prefix = 128\n[[accounting.ranges]]\nprefix = \"2001:db8::/112\"\n",
        )
        .unwrap();
        assert_eq!(a.ranges[0].hosts, 65536);
    }

    #[test]
    fn label_names_follow_prometheus() {
        for name in [
            "1abc", "a-b", "__name__", "ip", "job", "le", "quantile", "instance",
        ] {
            let toml = format!(
                "[[accounting.ranges]]\nprefix = \"10.0.0.0/24\"\nlabels = {{ \"{name}\" = \"x\" }}\n"
            );
            assert!(accounting(&toml).is_err(), "range label {name}");
        }
        for name in ["1abc", "a-b", "__name__", "network", "direction", "job"] {
            let toml = format!(
                "[[accounting.networks]]\nname = \"n\"\nprefixes = [\"192.0.2.0/24\"]\nlabels = {{ \"{name}\" = \"x\" }}\n"
            );
            let e = accounting(&toml).unwrap_err().to_string();
            assert!(
                e.contains("networks[0].labels"),
                "network label {name}: {e}"
            );
        }
        assert!(accounting(
            "[[accounting.networks]]\nname = \"n\"\nprefixes = [\"192.0.2.0/24\"]\nlabels = { peer_as_group = \"x\" }\n"
        )
        .is_ok());
    }

    /// Regression: 4,000 ranges with a label name each passed, and every
    /// series of the page carried all 4,000 names (a 559 MB page with no
    /// traffic); names and values had no length limit either.
    #[test]
    fn label_names_and_sizes_are_bounded() {
        let many = |n: usize, section: &str| {
            (0..n)
                .map(|i| match section {
                    "ranges" => format!(
                        "[[accounting.ranges]]\nprefix = \"10.0.{i}.0/24\"\nlabels = {{ l{i} = \"x\" }}\n"
                    ),
                    _ => format!(
                        "[[accounting.networks]]\nname = \"n{i}\"\nprefixes = [\"10.0.{i}.0/24\"]\nlabels = {{ l{i} = \"x\" }}\n"
                    ),
                })
                .collect::<String>()
        };
        for section in ["ranges", "networks"] {
            assert!(
                accounting(&many(MAX_LABEL_NAMES, section)).is_ok(),
                "{section}"
            );
            let e = accounting(&many(MAX_LABEL_NAMES + 1, section))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(&format!("accounting.{section}:")) && e.contains("distinct label names"),
                "{e}"
            );
        }
        let long = "v".repeat(MAX_LABEL_BYTES + 1);
        let e = accounting(&format!(
            "[[accounting.ranges]]\nprefix = \"10.0.0.0/24\"\nlabels = {{ customer = \"{long}\" }}\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("ranges[0].labels.customer") && e.contains("at most"),
            "{e}"
        );
        let e = accounting(&format!(
            "[[accounting.ranges]]\nprefix = \"10.0.0.0/24\"\nlabels = {{ {long} = \"x\" }}\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.len() < 400 && e.contains("…"), "the name is clipped: {e}");
    }

    #[test]
    fn overlap_names_both_ranges() {
        let e = accounting(
            "[[accounting.ranges]]\nprefix = \"10.0.0.0/24\"\n[[accounting.ranges]]\nprefix = \"192.0.2.0/24\"\n[[accounting.ranges]]\nfirst = \"10.0.0.5\"\nlast = \"10.0.1.5\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("ranges[0] and ranges[2]"), "{e}");
    }

    #[test]
    fn non_regular_and_huge_files_are_refused() {
        let e = read_config_file(Path::new("/dev/zero")).unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.toml");
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(MAX_CONFIG_BYTES + 1).unwrap();
        assert!(read_config_file(&big).unwrap_err().contains("at most"));
    }

    #[test]
    fn promacct_range_flag() {
        let r = parse_range_flag("10.0.0.1-10.0.0.9:customer=acme:site=ams").unwrap();
        assert_eq!(r.first.as_deref(), Some("10.0.0.1"));
        assert_eq!(r.last.as_deref(), Some("10.0.0.9"));
        assert_eq!(r.labels["customer"], "acme");
        assert_eq!(r.labels["site"], "ams");
        let r = parse_range_flag("[2001:db8::]-[2001:db8::ff]:c=x").unwrap();
        assert_eq!(r.first.as_deref(), Some("2001:db8::"));
        assert_eq!(r.labels["c"], "x");
        assert!(parse_range_flag("10.0.0.1").is_err());
        assert!(parse_range_flag("10.0.0.1-10.0.0.2:nolabel").is_err());
    }
}

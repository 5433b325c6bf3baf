//! Configuration: built-in defaults ← TOML file ← `XDPACCT_` environment ←
//! command-line flags, layered by figment and validated once at start-up.
//!
//! Nothing here is on the hot path; it allocates freely.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// Where the packaged config lives; read when present and no `--config` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/xdpacct/xdpacct.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Figment(String),
    #[error("{origin}: {key}: {msg}")]
    Invalid {
        origin: String,
        key: String,
        msg: String,
    },
}

impl ConfigError {
    fn invalid(origin: &str, key: impl Into<String>, msg: impl Into<String>) -> Self {
        ConfigError::Invalid {
            origin: origin.to_string(),
            key: key.into(),
            msg: msg.into(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub capture: CaptureConfig,
    pub accounting: AccountingConfig,
    pub metrics: MetricsConfig,
    pub netflow: NetflowConfig,
}

/// `[capture]`: where frames come from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureConfig {
    /// Interfaces to watch (`-i`, repeatable). Defaults to none.
    pub interfaces: Vec<String>,
    /// Capture backend: "afxdp" or "afpacket". Defaults to "afxdp".
    pub mode: CaptureMode,
    /// Cores for the workers, one per queue in turn. Defaults to every core
    /// but the first (left to the HTTP server and the kernel).
    pub cores: Vec<usize>,
    /// XDP attach mode: "auto" (native, else generic), "native", "generic".
    /// Defaults to "auto".
    pub xdp_mode: XdpMode,
    /// AF_XDP zero-copy: "auto" (when the driver offers it), "on", "off".
    /// Defaults to "auto".
    pub zero_copy: Toggle,
    /// Put the interfaces in promiscuous mode while running (a SPAN port
    /// delivers other hosts' MACs). Defaults to true.
    pub promiscuous: bool,
    /// UMEM frames per queue (2 KiB each: 32 MiB). Defaults to 16384.
    pub frames_per_queue: u32,
    /// RX ring size in descriptors (power of two). Defaults to 16384: 8 ms
    /// of 2 Mpps, so a worker descheduled for a moment loses nothing
    /// (measured: bench/RESULTS.md).
    pub rx_ring: u32,
    /// Fill ring size (power of two). Defaults to twice `frames_per_queue`.
    pub fill_ring: Option<u32>,
    /// Frames taken from a ring in one batch. Defaults to 64.
    pub batch: u32,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            interfaces: Vec::new(),
            mode: CaptureMode::Afxdp,
            cores: Vec::new(),
            xdp_mode: XdpMode::Auto,
            zero_copy: Toggle::Auto,
            promiscuous: true,
            frames_per_queue: 16384,
            rx_ring: 16384,
            fill_ring: None,
            batch: 64,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CaptureMode {
    Afxdp,
    Afpacket,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum XdpMode {
    Auto,
    Native,
    Generic,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Toggle {
    Auto,
    On,
    Off,
}

/// Which length of a frame is counted as its bytes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum BytesMode {
    /// Wire length at layer 2, VLAN tags included, no FCS (`ip -s link`).
    #[default]
    L2,
    /// IP total length (pmacct's convention); frames without IP count 0 bytes.
    L3,
    /// Layer 2 plus the 4-byte FCS (many routers' interface counters).
    L2Fcs,
}

/// `[accounting]`: what is counted and how.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AccountingConfig {
    /// Byte convention: "l2", "l3" or "l2_fcs". Defaults to "l2".
    pub bytes: BytesMode,
    /// The operator's own prefixes; they decide a frame's direction.
    /// Defaults to the prefixes of `ranges` when empty.
    pub local_networks: Vec<String>,
    /// IPv6 hosts are counted per prefix of this length. Defaults to 64.
    pub ipv6_host_prefix: u8,
    /// Address ranges counted per host, with labels.
    pub ranges: Vec<RangeConfig>,
    /// Prefix-to-AS file for `xdpacct_as_*` (remote side of each frame).
    /// Defaults to none (no AS metrics).
    pub as_file: Option<String>,
    /// Format of `as_file`: "ip2asn" (range_start range_end asn country name),
    /// "networks_file" (pmacct: `[asn,]prefix`), "prefix_asn" (`prefix asn`).
    /// Defaults to "ip2asn".
    pub as_file_format: AsFileFormat,
    /// Optional `asn name` file for `peer_as_name`. Defaults to none.
    pub as_names_file: Option<String>,
    /// Busiest ASes that get their own series; the rest are summed into
    /// `peer_as="other"`. Defaults to 1000.
    pub max_as_series: usize,
    /// Remote networks counted by name (`xdpacct_network_*`).
    pub networks: Vec<NetworkConfig>,
    /// Networks with their own series; the rest go to `network="other"`.
    /// Defaults to 1000.
    pub max_network_series: usize,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum AsFileFormat {
    #[default]
    Ip2asn,
    NetworksFile,
    PrefixAsn,
}

/// One `[[accounting.networks]]` entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// The `network` label value.
    pub name: String,
    /// Its prefixes, IPv4 and IPv6.
    pub prefixes: Vec<String>,
    /// Extra labels on its series.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl Default for AccountingConfig {
    fn default() -> Self {
        AccountingConfig {
            bytes: BytesMode::L2,
            local_networks: Vec::new(),
            ipv6_host_prefix: 64,
            ranges: Vec::new(),
            as_file: None,
            as_file_format: AsFileFormat::Ip2asn,
            as_names_file: None,
            max_as_series: 1000,
            networks: Vec::new(),
            max_network_series: 1000,
        }
    }
}

/// One `[[accounting.ranges]]` entry: `prefix`, or `first` and `last`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RangeConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<String>,
    /// Extra labels on every host series of this range.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `[metrics]`: the Prometheus endpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address and port of the HTTP server. Defaults to "0.0.0.0:9112".
    pub listen: String,
    /// Path of a web config file (Prometheus exporter-toolkit YAML:
    /// `tls_server_config`, `basic_auth_users`) turning on HTTPS and basic
    /// auth. Defaults to none (plain HTTP, no auth).
    pub web_config: Option<String>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: "0.0.0.0:9112".into(),
            web_config: None,
        }
    }
}

/// `[netflow]`: flow export. Disabled while `collectors` is empty.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NetflowConfig {
    /// Collectors as "host:port". Defaults to none (export off).
    pub collectors: Vec<String>,
    /// 9 (NetFlow v9) or 10 (IPFIX). Defaults to 10.
    pub version: u8,
    /// Flow cache capacity per shard. Defaults to 65536.
    pub max_flows: u32,
    /// Seconds without a packet before a flow is exported. Defaults to 15.
    pub idle_timeout: u64,
    /// Seconds after which a long flow is exported anyway. Defaults to 60.
    pub active_timeout: u64,
    /// Seconds between template re-sends. Defaults to 20.
    pub template_refresh: u64,
    /// Export packets between template re-sends. Defaults to 4096.
    pub template_refresh_packets: u32,
    /// Largest export datagram in bytes. Defaults to 1400.
    pub mtu: u16,
    /// Source id (v9) / observation domain (IPFIX). Defaults to 0.
    pub observation_domain: u32,
}

impl Default for NetflowConfig {
    fn default() -> Self {
        NetflowConfig {
            collectors: Vec::new(),
            version: 10,
            max_flows: 65536,
            idle_timeout: 15,
            active_timeout: 60,
            template_refresh: 20,
            template_refresh_packets: 4096,
            mtu: 1400,
            observation_domain: 0,
        }
    }
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

impl Config {
    /// Layers defaults ← file ← environment ← flags and validates the result.
    pub fn load(cli: &CliOverrides) -> Result<(Config, String), ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        let origin = match &cli.config {
            Some(path) => {
                if !path.exists() {
                    return Err(ConfigError::invalid(
                        &path.display().to_string(),
                        "--config",
                        "file not found",
                    ));
                }
                fig = fig.merge(Toml::file_exact(path));
                path.display().to_string()
            }
            None if Path::new(DEFAULT_CONFIG_PATH).exists() => {
                fig = fig.merge(Toml::file_exact(DEFAULT_CONFIG_PATH));
                DEFAULT_CONFIG_PATH.to_string()
            }
            None => "built-in defaults".to_string(),
        };
        // Only the config sections: other XDPACCT_* variables (a test switch,
        // a wrapper's setting) are not config keys and must not fail start-up.
        fig = fig.merge(Env::prefixed("XDPACCT_").split("__").filter(|k| {
            ["capture", "accounting", "metrics", "netflow"]
                .iter()
                .any(|s| k.as_str().to_ascii_lowercase().starts_with(s))
        }));
        if !cli.interfaces.is_empty() {
            fig = fig.merge(Serialized::default("capture.interfaces", &cli.interfaces));
        }
        if let Some(listen) = &cli.listen {
            fig = fig.merge(Serialized::default("metrics.listen", listen));
        }
        let mut config: Config = fig
            .extract()
            .map_err(|e| ConfigError::Figment(one_line(&e)))?;
        if let Some(port) = cli.port {
            let host = config
                .metrics
                .listen
                .rsplit_once(':')
                .map_or("0.0.0.0", |(h, _)| h);
            config.metrics.listen = format!("{host}:{port}");
        }
        for spec in &cli.ranges {
            let range = parse_range_flag(spec)
                .map_err(|msg| ConfigError::invalid("command line", format!("-r {spec}"), msg))?;
            config.accounting.ranges.push(range);
        }
        config.validate(&origin)?;
        Ok((config, origin))
    }

    /// Parses a TOML document over the built-in defaults (no file, no
    /// environment, no flags) and validates it, as `load` does for a file.
    /// For tests and fuzzing; never panics on any input.
    pub fn from_toml_str(s: &str) -> Result<Config, ConfigError> {
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(s))
            .extract()
            .map_err(|e| ConfigError::Figment(one_line(&e)))?;
        config.validate("toml string")?;
        Ok(config)
    }

    /// Checks everything that can be checked without touching the system.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        crate::shard::hosts::Tables::build(&self.accounting, origin)?;
        self.metrics.listen.parse::<SocketAddr>().map_err(|e| {
            ConfigError::invalid(
                origin,
                "metrics.listen",
                format!("{:?}: {e}", self.metrics.listen),
            )
        })?;
        let c = &self.capture;
        for (key, v) in [
            ("capture.rx_ring", c.rx_ring),
            ("capture.frames_per_queue", c.frames_per_queue),
        ]
        .into_iter()
        .chain(c.fill_ring.map(|f| ("capture.fill_ring", f)))
        {
            if !v.is_power_of_two() || v < 64 {
                return Err(ConfigError::invalid(
                    origin,
                    key,
                    format!("{v} must be a power of two, at least 64"),
                ));
            }
        }
        if c.batch == 0 || c.batch > 1024 {
            return Err(ConfigError::invalid(
                origin,
                "capture.batch",
                "must be between 1 and 1024",
            ));
        }
        let n = &self.netflow;
        if n.version != 9 && n.version != 10 {
            return Err(ConfigError::invalid(
                origin,
                "netflow.version",
                "must be 9 (NetFlow v9) or 10 (IPFIX)",
            ));
        }
        for c in &n.collectors {
            use std::net::ToSocketAddrs;
            if c.to_socket_addrs()
                .map(|mut a| a.next().is_none())
                .unwrap_or(true)
            {
                return Err(ConfigError::invalid(
                    origin,
                    "netflow.collectors",
                    format!("{c:?} is not host:port"),
                ));
            }
        }
        for (key, secs) in [
            ("netflow.idle_timeout", n.idle_timeout),
            ("netflow.active_timeout", n.active_timeout),
        ] {
            if !(1..=86_400).contains(&secs) {
                return Err(ConfigError::invalid(
                    origin,
                    key,
                    "must be between 1 and 86400 seconds",
                ));
            }
        }
        if n.max_flows == 0 {
            return Err(ConfigError::invalid(
                origin,
                "netflow.max_flows",
                "must be at least 1",
            ));
        }
        if n.mtu < 512 {
            return Err(ConfigError::invalid(
                origin,
                "netflow.mtu",
                "must be at least 512 bytes",
            ));
        }
        Ok(())
    }
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
pub fn parse_range_flag(spec: &str) -> Result<RangeConfig, String> {
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
    let mut range = RangeConfig::default();
    if let Some((first, last)) = span.split_once('-') {
        range.first = Some(first.trim().to_string());
        range.last = Some(last.trim().to_string());
    } else if span.contains('/') {
        range.prefix = Some(span.trim().to_string());
    } else {
        return Err("expected FIRST-LAST or PREFIX/LEN, then :key=value labels".into());
    }
    for kv in labels {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("label {kv:?} is not key=value"))?;
        range.labels.insert(k.to_string(), v.to_string());
    }
    Ok(range)
}

/// An IP prefix such as `198.51.100.0/24` or `2001:db8::/32`, host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpPrefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl IpPrefix {
    /// First and last address of the prefix as integers (IPv4 in the low 32 bits).
    pub fn bounds(&self) -> (u128, u128) {
        let (bits, value) = match self.addr {
            IpAddr::V4(a) => (32, u32::from(a) as u128),
            IpAddr::V6(a) => (128, u128::from(a)),
        };
        let host_bits = bits - self.len as u32;
        let span = if host_bits >= 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        };
        (value, value | span)
    }
}

impl FromStr for IpPrefix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an IP prefix"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            Some(l) => l
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|&l| l <= max)
                .ok_or_else(|| format!("{s:?}: prefix length must be 0..={max}"))?,
            None => max,
        };
        let p = IpPrefix { addr, len };
        let (first, _) = p.bounds();
        let value = match addr {
            IpAddr::V4(a) => u32::from(a) as u128,
            IpAddr::V6(a) => u128::from(a),
        };
        let masked = {
            let bits = max as u32;
            let host_bits = bits - len as u32;
            if host_bits >= 128 {
                0
            } else {
                value >> host_bits << host_bits
            }
        };
        if first != masked {
            return Err(format!(
                "{s:?} has host bits set (did you mean {}/{len}?)",
                int_to_ip(masked, addr.is_ipv6())
            ));
        }
        Ok(p)
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Turns an integer back into an address (IPv4 from the low 32 bits).
pub fn int_to_ip(v: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(v.into())
    } else {
        IpAddr::V4((v as u32).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_validates() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/xdpacct.toml");
        let cli = CliOverrides {
            config: Some(path),
            ..Default::default()
        };
        let (config, _) = Config::load(&cli).unwrap();
        assert!(!config.accounting.ranges.is_empty());
    }

    #[test]
    fn prefix_rejects_host_bits_and_bad_lengths() {
        assert!("198.51.100.0/24".parse::<IpPrefix>().is_ok());
        assert!("198.51.100.1/24"
            .parse::<IpPrefix>()
            .unwrap_err()
            .contains("host bits"));
        assert!("198.51.100.0/33".parse::<IpPrefix>().is_err());
        assert!("2001:db8::/129".parse::<IpPrefix>().is_err());
        assert_eq!(
            "0.0.0.0/0".parse::<IpPrefix>().unwrap().bounds(),
            (0, u32::MAX as u128)
        );
        assert_eq!("::/0".parse::<IpPrefix>().unwrap().bounds(), (0, u128::MAX));
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

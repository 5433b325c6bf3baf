//! The file's shape: what TOML, `XDPACCT_` variables and flags may say.
//!
//! Only shape is checked here (types, unknown keys); every value is
//! `Option` or empty so that defaults live in one place, the typed
//! settings (`super`). Nothing downstream reads these structs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The whole file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub capture: CaptureConfig,
    pub accounting: AccountingConfig,
    pub metrics: MetricsConfig,
    pub netflow: NetflowConfig,
    pub tcp_rtt: super::tcp_rtt::TcpRttConfig,
    pub collector: Option<super::collector::CollectorConfig>,
    pub billing: Option<super::billing::BillingConfig>,
    pub connections: super::connections::ConnectionsConfig,
}

/// `[capture]`. The backend's own keys (`xdp_mode` … `fill_ring` for
/// AF_XDP) are refused under the other backend.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureConfig {
    pub interfaces: Vec<String>,
    pub mode: Option<CaptureMode>,
    pub cores: Vec<usize>,
    pub promiscuous: Option<bool>,
    pub batch: Option<u32>,
    pub xdp_mode: Option<XdpMode>,
    pub zero_copy: Option<ZeroCopy>,
    pub frames_per_queue: Option<u32>,
    pub rx_ring: Option<u32>,
    pub fill_ring: Option<u32>,
}

/// `capture.mode`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum CaptureMode {
    #[default]
    Afxdp,
    Afpacket,
}

/// `capture.xdp_mode`: how the XDP program is attached.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum XdpMode {
    /// Native if the driver supports it, else generic (the kernel's choice).
    #[default]
    Auto,
    /// Driver (native) mode only; fails if the driver has no XDP support.
    Native,
    /// Generic (skb) mode: works everywhere, slower.
    Generic,
}

/// `capture.zero_copy`: AF_XDP zero-copy.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ZeroCopy {
    /// Zero-copy if the driver supports it, else copy mode (veth: copy).
    #[default]
    Auto,
    /// Zero-copy only; fails on drivers without it.
    On,
    /// Copy mode.
    Off,
}

/// `accounting.bytes`: which length of a frame is counted as its bytes.
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

/// `accounting.as_file_format`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum AsFileFormat {
    /// `range_start range_end asn country name` (iptoasn.com).
    #[default]
    Ip2asn,
    /// pmacct's networks file: `[asn,]prefix`.
    NetworksFile,
    /// `prefix asn`.
    PrefixAsn,
}

/// `accounting.host_series`: which hosts have series on the page.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum HostSeries {
    /// A host's series appear with its first frame and leave the page after
    /// `host_idle_timeout` without traffic; its counts are kept, so a host
    /// that comes back continues where it was.
    #[default]
    Active,
    /// Every address of every range, from the start (zeros included).
    All,
}

/// `accounting.mpls_payload`: what follows the bottom MPLS label.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum MplsPayload {
    /// From the first nibble: 4 IPv4, 6 IPv6, 0 a pseudowire control word
    /// and a customer Ethernet frame, 1 an associated channel.
    #[default]
    Guess,
    /// Every payload is a customer Ethernet frame without control word
    /// (links that carry only such pseudowires).
    EthernetNoControlWord,
    /// IPv4/IPv6 (and associated channels) only; pseudowires are not entered.
    IpOnly,
}

/// `[accounting]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AccountingConfig {
    pub bytes: Option<BytesMode>,
    pub mpls_payload: Option<MplsPayload>,
    pub host_series: Option<HostSeries>,
    pub host_idle_timeout: Option<u64>,
    pub local_networks: Vec<String>,
    pub ipv6_host_prefix: Option<u8>,
    pub ranges: Vec<RangeConfig>,
    pub as_file: Option<String>,
    pub as_file_format: Option<AsFileFormat>,
    pub as_names_file: Option<String>,
    pub max_as_series: Option<usize>,
    pub networks: Vec<NetworkConfig>,
    pub max_network_series: Option<usize>,
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
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// One `[[accounting.networks]]` entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    pub name: String,
    pub prefixes: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `[metrics]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    pub listen: Option<String>,
    pub max_series: Option<usize>,
    pub web_config: Option<String>,
}

/// `[netflow]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NetflowConfig {
    pub collectors: Vec<String>,
    pub version: Option<u8>,
    pub max_flows: Option<u32>,
    pub idle_timeout: Option<u64>,
    pub active_timeout: Option<u64>,
    pub template_refresh: Option<u64>,
    pub template_refresh_packets: Option<u32>,
    pub mtu: Option<u16>,
    pub observation_domain: Option<u32>,
}

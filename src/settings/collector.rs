//! `[collector]`: flow input (NetFlow v5/v9, IPFIX, sFlow v5 from routers).
//!
//! The raw shape ([`CollectorConfig`], every value optional) and the typed,
//! checked [`Collector`] the engine maps onto the decoder's own config
//! (`crate::collector::CollectorConfig`). Every bad value is one
//! [`SettingsError`] naming the key. Not on the hot path; allocates freely.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{IpPrefix, SettingsError};

/// `[collector]` as the file gives it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CollectorConfig {
    pub listen: Vec<String>,
    pub allowed_exporters: Vec<String>,
    pub default_sampling_rate: Option<u32>,
    pub threads: Option<u32>,
    pub cores: Vec<usize>,
    pub max_interfaces: Option<u32>,
    pub pending_hold: Option<u64>,
    pub template_timeout: Option<u64>,
    pub exporter_timeout: Option<u64>,
    pub max_exporters: Option<u32>,
    pub max_templates: Option<u32>,
    pub max_template_fields: Option<u32>,
    pub max_pending_bytes: Option<u32>,
    pub max_interface_counters: Option<u32>,
    pub exporters: Vec<ExporterConfig>,
}

/// One `[[collector.exporters]]` entry as the file gives it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExporterConfig {
    pub address: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampling_rate: Option<u32>,
    /// ifIndex (as a TOML key, a string) → interface name.
    #[serde(default)]
    pub interfaces: BTreeMap<String, String>,
}

/// `[collector]`, typed and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Collector {
    /// UDP addresses to listen on; the protocol is recognised per datagram,
    /// so any port takes any protocol. At least one.
    pub listen: Vec<SocketAddr>,
    /// Exporters accepted besides the configured ones; datagrams from
    /// others are dropped and counted. Defaults to empty: every source.
    pub allowed_exporters: Vec<IpPrefix>,
    /// Rate for records with no known sampling rate. Defaults to 1.
    pub default_sampling_rate: u32,
    /// Receiver threads (and sockets, with `SO_REUSEPORT`) per listen
    /// address, each with its own shard. 1..=64. Defaults to 1.
    pub threads: usize,
    /// Cores for the receiver threads, in turn; `None`: the capture
    /// workers' cores (every core but the first), in turn.
    pub cores: Option<Vec<core_affinity::CoreId>>,
    /// Distinct (exporter, ifIndex) interface series per receiver thread;
    /// more are counted under `interface="other"`. Defaults to 4096.
    pub max_interfaces: usize,
    /// How long a data set waits for its template. Defaults to 5 s.
    pub pending_hold: Duration,
    /// A template not refreshed for this long is forgotten. Defaults to 30 min.
    pub template_timeout: Duration,
    /// An unconfigured exporter silent this long is forgotten. Defaults to 1 h.
    pub exporter_timeout: Duration,
    /// Exporters tracked at once (per receiver thread). Defaults to 1024.
    pub max_exporters: usize,
    /// Templates in total (per receiver thread). Defaults to 16384.
    pub max_templates: usize,
    /// Fields in one template. Defaults to 512.
    pub max_template_fields: usize,
    /// Bytes of data sets held for their template, in total. Defaults to 4 MiB.
    pub max_pending_bytes: usize,
    /// sFlow interface counter entries. Defaults to 65536.
    pub max_interface_counters: usize,
    pub exporters: Vec<Exporter>,
}

/// One `[[collector.exporters]]` entry, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exporter {
    /// Source address of its datagrams.
    pub address: IpAddr,
    /// Used in the `interface` label (`<name>:<ifname>`) and the
    /// `exporter` label of the collector metrics.
    pub name: String,
    /// Overrides every rate the exporter sends. Defaults to none.
    pub sampling_rate: Option<u32>,
    /// ifIndex → interface name.
    pub interfaces: BTreeMap<u32, String>,
}

impl Collector {
    /// Checks `[collector]`; `None` when the section is absent.
    pub fn from_raw(
        raw: Option<&CollectorConfig>,
        origin: &str,
    ) -> Result<Option<Collector>, SettingsError> {
        let Some(c) = raw else { return Ok(None) };
        let err = |key: String, msg: String| SettingsError::Invalid {
            origin: origin.to_string(),
            key,
            msg,
        };
        if c.listen.is_empty() {
            return Err(err(
                "collector.listen".into(),
                "needs at least one UDP address, e.g. [\"0.0.0.0:2055\"]".into(),
            ));
        }
        let mut listen = Vec::new();
        for (i, l) in c.listen.iter().enumerate() {
            let a: SocketAddr = l.parse().map_err(|_| {
                err(
                    format!("collector.listen[{i}]"),
                    format!("{l:?} is not address:port (e.g. 0.0.0.0:2055 or [::]:6343)"),
                )
            })?;
            if listen.contains(&a) {
                return Err(err(
                    format!("collector.listen[{i}]"),
                    format!("{a} is listed twice"),
                ));
            }
            listen.push(a);
        }
        let mut allowed = Vec::new();
        for (i, p) in c.allowed_exporters.iter().enumerate() {
            allowed.push(
                p.parse::<IpPrefix>()
                    .map_err(|m| err(format!("collector.allowed_exporters[{i}]"), m))?,
            );
        }
        let rate = c.default_sampling_rate.unwrap_or(1);
        if rate == 0 {
            return Err(err(
                "collector.default_sampling_rate".into(),
                "must be at least 1".into(),
            ));
        }
        let threads = c.threads.unwrap_or(1);
        if !(1..=64).contains(&threads) {
            return Err(err(
                "collector.threads".into(),
                "must be between 1 and 64".into(),
            ));
        }
        let cores = if c.cores.is_empty() {
            None
        } else {
            let have: Vec<usize> = core_affinity::get_core_ids()
                .unwrap_or_default()
                .iter()
                .map(|c| c.id)
                .collect();
            let mut out: Vec<core_affinity::CoreId> = Vec::new();
            for (i, &id) in c.cores.iter().enumerate() {
                if !have.contains(&id) || out.iter().any(|c| c.id == id) {
                    return Err(err(
                        format!("collector.cores[{i}]"),
                        format!("core {id} does not exist, is not allowed here or is listed twice (cores: {have:?})"),
                    ));
                }
                out.push(core_affinity::CoreId { id });
            }
            Some(out)
        };
        let secs = |key: &str, v: Option<u64>, default: u64| match v {
            None => Ok(Duration::from_secs(default)),
            Some(s) if (1..=86_400).contains(&s) => Ok(Duration::from_secs(s)),
            Some(_) => Err(err(
                key.into(),
                "must be between 1 and 86400 seconds".into(),
            )),
        };
        let count = |key: &str, v: Option<u32>, default: usize, max: usize| match v {
            None => Ok(default),
            Some(n) if (1..=max).contains(&(n as usize)) => Ok(n as usize),
            Some(_) => Err(err(key.into(), format!("must be between 1 and {max}"))),
        };
        let mut exporters: Vec<Exporter> = Vec::new();
        for (i, e) in c.exporters.iter().enumerate() {
            let key = format!("collector.exporters[{i}]");
            let address: IpAddr = e.address.trim().parse().map_err(|_| {
                err(
                    format!("{key}.address"),
                    format!("{:?} is not an IP address", e.address),
                )
            })?;
            let address = address.to_canonical();
            if exporters.iter().any(|x| x.address == address) {
                return Err(err(
                    format!("{key}.address"),
                    format!("{address} is listed twice"),
                ));
            }
            let name = e.name.trim();
            if name.is_empty() || name.contains([':', '"', '\\', '\n']) {
                return Err(err(
                    format!("{key}.name"),
                    "needs a non-empty name without ':', quotes or backslashes".into(),
                ));
            }
            if exporters.iter().any(|x| x.name == name) {
                return Err(err(
                    format!("{key}.name"),
                    format!("{name:?} is used twice"),
                ));
            }
            if e.sampling_rate == Some(0) {
                return Err(err(
                    format!("{key}.sampling_rate"),
                    "must be at least 1".into(),
                ));
            }
            let mut interfaces = BTreeMap::new();
            for (k, v) in &e.interfaces {
                let ifindex: u32 = k.trim().parse().map_err(|_| {
                    err(
                        format!("{key}.interfaces"),
                        format!("{k:?} is not an ifIndex (a number)"),
                    )
                })?;
                if v.trim().is_empty() || v.contains(['"', '\\', '\n']) {
                    return Err(err(
                        format!("{key}.interfaces.{k}"),
                        "needs a non-empty name without quotes or backslashes".into(),
                    ));
                }
                interfaces.insert(ifindex, v.trim().to_string());
            }
            exporters.push(Exporter {
                address,
                name: name.to_string(),
                sampling_rate: e.sampling_rate,
                interfaces,
            });
        }
        Ok(Some(Collector {
            listen,
            allowed_exporters: allowed,
            default_sampling_rate: rate,
            threads: threads as usize,
            cores,
            max_interfaces: count("collector.max_interfaces", c.max_interfaces, 4096, 1 << 20)?,
            pending_hold: secs("collector.pending_hold", c.pending_hold, 5)?,
            template_timeout: secs("collector.template_timeout", c.template_timeout, 1800)?,
            exporter_timeout: secs("collector.exporter_timeout", c.exporter_timeout, 3600)?,
            max_exporters: count("collector.max_exporters", c.max_exporters, 1024, 1 << 20)?,
            max_templates: count("collector.max_templates", c.max_templates, 16384, 1 << 20)?,
            max_template_fields: count(
                "collector.max_template_fields",
                c.max_template_fields,
                512,
                65_535,
            )?,
            max_pending_bytes: count(
                "collector.max_pending_bytes",
                c.max_pending_bytes,
                4 << 20,
                1 << 30,
            )?,
            max_interface_counters: count(
                "collector.max_interface_counters",
                c.max_interface_counters,
                65536,
                1 << 22,
            )?,
            exporters,
        }))
    }
}

#[cfg(test)]
mod tests {
    use crate::settings::Settings;

    fn load(body: &str) -> Result<Settings, String> {
        Settings::from_toml_str(body).map_err(|e| e.to_string())
    }

    #[test]
    fn absent_section_means_no_collector() {
        assert!(load("").unwrap().collector.is_none());
    }

    #[test]
    fn keys_are_typed_with_defaults() {
        let s = load(
            r#"
[collector]
listen = ["127.0.0.1:2055", "[::1]:6343"]
allowed_exporters = ["192.0.2.0/24", "2001:db8::1"]
[[collector.exporters]]
address = "192.0.2.1"
name = "edge1"
sampling_rate = 100
interfaces = { 7 = "xe-0/0/1" }
"#,
        )
        .unwrap();
        let c = s.collector.unwrap();
        assert_eq!(c.listen.len(), 2);
        assert_eq!(c.allowed_exporters.len(), 2);
        assert_eq!(c.default_sampling_rate, 1);
        assert_eq!(c.threads, 1);
        assert_eq!(c.max_interfaces, 4096);
        assert_eq!(c.exporters[0].name, "edge1");
        assert_eq!(c.exporters[0].sampling_rate, Some(100));
        assert_eq!(c.exporters[0].interfaces[&7], "xe-0/0/1");
    }

    #[test]
    fn bad_values_name_their_key() {
        for (body, key) in [
            ("[collector]\n", "collector.listen"),
            ("[collector]\nlisten = [\"x\"]\n", "collector.listen[0]"),
            (
                "[collector]\nlisten = [\"127.0.0.1:1\"]\nallowed_exporters = [\"10.0.0.1/8\"]\n",
                "collector.allowed_exporters[0]",
            ),
            (
                "[collector]\nlisten = [\"127.0.0.1:1\"]\ndefault_sampling_rate = 0\n",
                "collector.default_sampling_rate",
            ),
            (
                "[collector]\nlisten = [\"127.0.0.1:1\"]\nthreads = 0\n",
                "collector.threads",
            ),
            (
                "[collector]\nlisten = [\"127.0.0.1:1\"]\n[[collector.exporters]]\naddress = \"1.2.3.4\"\nname = \"a:b\"\n",
                "collector.exporters[0].name",
            ),
            (
                "[collector]\nlisten = [\"127.0.0.1:1\"]\n[[collector.exporters]]\naddress = \"1.2.3.4\"\nname = \"a\"\n[[collector.exporters]]\naddress = \"1.2.3.4\"\nname = \"b\"\n",
                "collector.exporters[1].address",
            ),
            (
                "[collector]\nlisten = [\"127.0.0.1:1\"]\n[[collector.exporters]]\naddress = \"1.2.3.4\"\nname = \"a\"\nsampling_rate = 0\n",
                "collector.exporters[0].sampling_rate",
            ),
            (
                "[collector]\nlisten = [\"127.0.0.1:1\"]\n[[collector.exporters]]\naddress = \"1.2.3.4\"\nname = \"a\"\ninterfaces = { x = \"e\" }\n",
                "collector.exporters[0].interfaces",
            ),
        ] {
            let e = load(body).unwrap_err();
            assert!(e.contains(&format!(": {key}: ")), "{key}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
        let e = load("[collector]\nlisten = [\"127.0.0.1:1\"]\nbogus = 1\n").unwrap_err();
        assert!(e.contains("bogus"), "{e}");
    }
}

//! `[connections]`: the busiest connections as bounded metric series
//! (src/export/connections.rs).
//!
//! The raw shape (every key optional, unknown keys refused) and the typed
//! value with its defaults. Start-up only; allocates nothing per frame.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::SettingsError;

/// `[connections]` as written in the file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionsConfig {
    pub top: Option<u32>,
    pub idle_timeout: Option<u64>,
}

/// Most connections `top` may ask for.
pub const MAX_TOP: u32 = 1000;

/// `[connections]`, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connections {
    /// Connections with their own `xdpacct_connection_*` series, 0..=1000;
    /// 0 turns the view off. Defaults to 0.
    pub top: u32,
    /// A connection with no frame for this long leaves the page. Seconds,
    /// 1..=3600. Defaults to 60 s.
    pub idle_timeout: Duration,
}

impl Default for Connections {
    fn default() -> Self {
        Connections {
            top: 0,
            idle_timeout: Duration::from_secs(60),
        }
    }
}

impl Connections {
    pub fn from_raw(raw: &ConnectionsConfig, origin: &str) -> Result<Connections, SettingsError> {
        let err = |key: &str, msg: String| SettingsError::Invalid {
            origin: origin.to_string(),
            key: key.to_string(),
            msg,
        };
        let d = Connections::default();
        let top = raw.top.unwrap_or(d.top);
        if top > MAX_TOP {
            return Err(err(
                "connections.top",
                format!("{top} must be 0..={MAX_TOP}"),
            ));
        }
        let idle_timeout = match raw.idle_timeout {
            None => d.idle_timeout,
            Some(s) if (1..=3600).contains(&s) => Duration::from_secs(s),
            Some(s) => {
                return Err(err(
                    "connections.idle_timeout",
                    format!("{s} must be 1..=3600 seconds"),
                ))
            }
        };
        Ok(Connections { top, idle_timeout })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_checks() {
        let c = Connections::from_raw(&ConnectionsConfig::default(), "t")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c, Connections::default());
        let raw = ConnectionsConfig {
            top: Some(20),
            idle_timeout: Some(300),
        };
        let c = Connections::from_raw(&raw, "t").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((c.top, c.idle_timeout), (20, Duration::from_secs(300)));
        for (top, idle, key) in [
            (Some(MAX_TOP + 1), None, "connections.top"),
            (None, Some(0), "connections.idle_timeout"),
            (None, Some(3601), "connections.idle_timeout"),
        ] {
            let raw = ConnectionsConfig {
                top,
                idle_timeout: idle,
            };
            let e = Connections::from_raw(&raw, "f.toml")
                .map(|_| ())
                .unwrap_err()
                .to_string();
            assert!(e.contains(key) && e.contains("f.toml"), "{e}");
        }
    }
}

//! `[tcp_rtt]`: passive TCP handshake round-trip times (src/rtt).
//!
//! The raw shape (every key optional, unknown keys refused) and the typed
//! value with its defaults. Start-up only; allocates nothing per frame.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::SettingsError;

/// `[tcp_rtt]` as written in the file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TcpRttConfig {
    pub enabled: Option<bool>,
    pub max_pending: Option<u32>,
    pub timeout: Option<u64>,
}

/// Most pending handshakes the table may be sized for.
pub const MAX_PENDING_LIMIT: u32 = 1 << 22;

/// `[tcp_rtt]`, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpRtt {
    /// Measure handshake RTTs. Defaults to false.
    pub enabled: bool,
    /// Handshakes waiting for their SYN/ACK or ACK, across all workers
    /// (rounded up to a power of two, at least 1024). A handshake whose
    /// table bucket is full is counted as overflowed. Defaults to 65536.
    pub max_pending: u32,
    /// A handshake not completed within this long (frame time) is counted
    /// as timed out and forgotten. Seconds, 1..=300. Defaults to 10 s.
    pub timeout: Duration,
}

impl Default for TcpRtt {
    fn default() -> Self {
        TcpRtt {
            enabled: false,
            max_pending: 65536,
            timeout: Duration::from_secs(10),
        }
    }
}

impl TcpRtt {
    pub fn from_raw(raw: &TcpRttConfig, origin: &str) -> Result<TcpRtt, SettingsError> {
        let err = |key: &str, msg: String| SettingsError::Invalid {
            origin: origin.to_string(),
            key: key.to_string(),
            msg,
        };
        let d = TcpRtt::default();
        let max_pending = raw.max_pending.unwrap_or(d.max_pending);
        if !(1..=MAX_PENDING_LIMIT).contains(&max_pending) {
            return Err(err(
                "tcp_rtt.max_pending",
                format!("{max_pending} must be 1..={MAX_PENDING_LIMIT}"),
            ));
        }
        let timeout = match raw.timeout {
            None => d.timeout,
            Some(s) if (1..=300).contains(&s) => Duration::from_secs(s),
            Some(s) => {
                return Err(err(
                    "tcp_rtt.timeout",
                    format!("{s} must be 1..=300 seconds"),
                ))
            }
        };
        Ok(TcpRtt {
            enabled: raw.enabled.unwrap_or(d.enabled),
            max_pending: max_pending.next_power_of_two().max(1024),
            timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_checks() {
        let t = TcpRtt::from_raw(&TcpRttConfig::default(), "t").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t, TcpRtt::default());
        let raw = TcpRttConfig {
            enabled: Some(true),
            max_pending: Some(3000),
            timeout: Some(5),
        };
        let t = TcpRtt::from_raw(&raw, "t").unwrap_or_else(|e| panic!("{e}"));
        assert!(t.enabled);
        assert_eq!(t.max_pending, 4096);
        assert_eq!(t.timeout, Duration::from_secs(5));
        for (mp, to, key) in [
            (Some(0), None, "tcp_rtt.max_pending"),
            (Some(MAX_PENDING_LIMIT + 1), None, "tcp_rtt.max_pending"),
            (None, Some(0), "tcp_rtt.timeout"),
            (None, Some(301), "tcp_rtt.timeout"),
        ] {
            let raw = TcpRttConfig {
                enabled: Some(true),
                max_pending: mp,
                timeout: to,
            };
            let e = TcpRtt::from_raw(&raw, "f.toml")
                .map(|_| ())
                .unwrap_err()
                .to_string();
            assert!(e.contains(key) && e.contains("f.toml"), "{e}");
        }
    }
}

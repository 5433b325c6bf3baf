//! `xdpacct run`: live capture, the metrics server, signals.

use crate::config::{CliOverrides, Config};
use crate::StartupError;

/// Runs until SIGTERM/SIGINT.
pub fn run(config: Config, origin: String, _cli: CliOverrides) -> anyhow::Result<()> {
    let _ = (config, origin);
    Err(StartupError("live capture is not built yet; use `xdpacct replay FILE`".into()).into())
}

//! xdpacct: exact traffic accounting for ISP links.
//!
//! Data path: a capture backend (`capture`) lends frames to a worker, which
//! parses them in place (`wire`) and accounts them into its own shard
//! (`shard`); the scraper (`metrics`) sums all shards when Prometheus asks.
#![deny(unsafe_code)]

pub mod capture;
pub mod collector;
pub mod config;
pub mod daemon;
pub mod export;
pub mod memory;
pub mod metrics;
pub mod prefix;
pub mod privileges;
pub mod shard;
pub mod wire;

/// An error found at start-up: the process exits with status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartupError(pub String);

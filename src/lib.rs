//! xdpacct: exact traffic accounting for ISP links.
//!
//! Data path: a capture backend (`capture`) lends frames to a worker, which
//! parses them in place (`wire`) and accounts them into its own shard
//! (`shard`); the scraper (`metrics`) sums all shards when Prometheus asks.
//!
//! # Unsafe code
//!
//! Denied crate-wide. The exceptions, and the only ones (the test at the
//! bottom of this file fails on any other `allow(unsafe_code)`):
//!
//! - `capture::afxdp`: the UMEM and rings shared with the kernel, and the
//!   bpf_link attach;
//! - `capture::afpacket`: the TPACKET_V3 ring mapped from the kernel;
//! - `capture::netdev`: the syscalls both use (socket options, `mmap`,
//!   `poll`) and the sealed `Pod` bound on what `getsockopt` may write into;
//! - `capture::replay::map`: the one `mmap` of a capture file (assumed not
//!   modified while it is replayed);
//! - `collector::socket`: `recvmmsg` and the `SO_RXQ_OVFL` control message
//!   of the flow collector's UDP sockets;
//! - `memory`: huge-page advice and prefetch.
//!
//! A module's lint level sits on its declaration, so the three capture
//! modules get their `allow` in `capture/mod.rs` (each marked "listed in
//! lib.rs"). Every unsafe block says why it is sound
//! (`clippy::undocumented_unsafe_blocks` is denied).
#![deny(unsafe_code)]
#![warn(unreachable_pub)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod billing;
pub mod capture;
pub mod collector;
pub mod daemon;
pub mod engine;
pub mod export;
#[allow(unsafe_code)] // see "Unsafe code" above
pub mod memory;
pub mod metrics;
pub mod prefix;
pub mod privileges;
pub mod rtt;
pub mod settings;
pub mod shard;
pub mod wire;

/// An error found at start-up: the process exits with status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartupError(pub String);

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    /// The files allowed to say `allow(unsafe_code)` (see "Unsafe code"
    /// above), and how many times each.
    const UNSAFE_ALLOWED: &[(&str, usize)] = &[
        ("lib.rs", 1),
        ("capture/mod.rs", 3),
        ("capture/replay/mod.rs", 1),
        ("collector/mod.rs", 1),
    ];

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// The unsafe boundary stays where the crate docs say: a new
    /// `allow(unsafe_code)` anywhere else must be added to the list above
    /// (and to the docs), on purpose.
    #[test]
    fn unsafe_code_is_allowed_only_where_listed() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let mut found: Vec<(String, usize)> = files
            .iter()
            .filter_map(|f| {
                let text = std::fs::read_to_string(f).unwrap();
                let n = text
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("//"))
                    .filter(|l| l.contains(concat!("allow(", "unsafe_code")))
                    .count();
                let name = f.strip_prefix(&src).unwrap().to_string_lossy();
                (n > 0).then(|| (name.replace('\\', "/"), n))
            })
            .collect();
        found.sort();
        let mut want: Vec<(String, usize)> = UNSAFE_ALLOWED
            .iter()
            .map(|&(f, n)| (f.to_owned(), n))
            .collect();
        want.sort();
        assert_eq!(found, want);
    }
}

//! Frames and configs shared by the benches and the allocation test.
#![allow(dead_code)]

use std::sync::Arc;

use xdpacct::settings::raw::{AccountingConfig, RangeConfig};
use xdpacct::settings::Accounting;
use xdpacct::shard::{Shard, ShardOrigin, Tables};

/// `hosts` IPv4 hosts in /24 ranges from 100.64.0.0, each range labelled.
pub fn accounting(hosts: u32) -> AccountingConfig {
    let ranges = (0..hosts.div_ceil(256))
        .map(|i| {
            let base = u32::from_be_bytes([100, 64, 0, 0]) + i * 256;
            let last = base + (hosts - i * 256).min(256) - 1;
            RangeConfig {
                first: Some(std::net::Ipv4Addr::from(base).to_string()),
                last: Some(std::net::Ipv4Addr::from(last).to_string()),
                labels: [("customer".to_string(), format!("c{i}"))].into(),
                ..Default::default()
            }
        })
        .collect();
    AccountingConfig {
        ranges,
        local_networks: vec!["100.64.0.0/10".into()],
        ..Default::default()
    }
}

pub fn shard(acct: &AccountingConfig) -> Arc<Shard> {
    let acct = Accounting::from_raw(acct, "bench").unwrap();
    let tables = Arc::new(Tables::build(&acct, "bench", None).unwrap());
    Arc::new(Shard::new(
        ShardOrigin {
            interface: "bench0".into(),
            queue: 0,
        },
        tables,
    ))
}

/// `n` 64-byte Ethernet/IPv4/TCP frames between local hosts and remote
/// addresses, half in each direction.
pub fn frames64(n: usize, hosts: u32) -> Vec<[u8; 64]> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let local = u32::from_be_bytes([100, 64, 0, 0]) + (x as u32 % hosts);
            let remote = u32::from_be_bytes([203, 0, 0, 0]) | ((x >> 32) as u32 & 0xffff);
            let (src, dst) = if i % 2 == 0 {
                (remote, local)
            } else {
                (local, remote)
            };
            let mut f = [0u8; 64];
            f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
            f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
            f[12..14].copy_from_slice(&[0x08, 0x00]);
            let ip = &mut f[14..34];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&46u16.to_be_bytes());
            ip[8] = 64;
            ip[9] = 6;
            ip[12..16].copy_from_slice(&src.to_be_bytes());
            ip[16..20].copy_from_slice(&dst.to_be_bytes());
            let tcp = &mut f[34..54];
            tcp[0..2].copy_from_slice(&((x >> 16) as u16 | 1024).to_be_bytes());
            tcp[2..4].copy_from_slice(&443u16.to_be_bytes());
            tcp[12] = 5 << 4;
            tcp[13] = 0x10;
            f
        })
        .collect()
}

/// A 78-byte Ethernet/IPv6/TCP frame between a local host in 2001:db8::/32
/// and `remote`; even `i` inbound (remote is the source), odd outbound.
pub fn frame_v6(i: usize, remote: u128) -> Vec<u8> {
    let local = 0x2001_0db8_u128 << 96 | (i as u128 % 10_000) << 64 | 1;
    let (src, dst) = if i % 2 == 0 {
        (remote, local)
    } else {
        (local, remote)
    };
    let mut f = vec![0u8; 78];
    f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    let ip = &mut f[14..54];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&20u16.to_be_bytes());
    ip[6] = 6;
    ip[7] = 64;
    ip[8..24].copy_from_slice(&src.to_be_bytes());
    ip[24..40].copy_from_slice(&dst.to_be_bytes());
    let tcp = &mut f[54..74];
    tcp[0..2].copy_from_slice(&(1024 + i as u16 % 50_000).to_be_bytes());
    tcp[2..4].copy_from_slice(&443u16.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x10;
    f
}

/// `n` indexes below `flows`, Zipf-distributed with s = 1 (index 0 the
/// heaviest), by inverse CDF over precomputed cumulative weights.
pub fn zipf_indexes(flows: usize, n: usize) -> Vec<usize> {
    let mut cdf: Vec<f64> = (1..=flows).map(|k| 1.0 / k as f64).collect();
    for i in 1..flows {
        cdf[i] += cdf[i - 1];
    }
    let total = cdf[flows - 1];
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let u = (x >> 11) as f64 / (1u64 << 53) as f64 * total;
            cdf.partition_point(|&c| c < u).min(flows - 1)
        })
        .collect()
}

/// Frames from memory as a capture source: hands out `max` per poll, then
/// reports the end.
pub struct MemCapture<'a> {
    frames: &'a [Vec<u8>],
    next: usize,
}

impl<'a> MemCapture<'a> {
    pub fn new(frames: &'a [Vec<u8>]) -> Self {
        MemCapture { frames, next: 0 }
    }
}

impl xdpacct::capture::Capture for MemCapture<'_> {
    fn poll<F: FnMut(xdpacct::capture::Frame<'_>)>(
        &mut self,
        max: usize,
        mut f: F,
    ) -> Result<usize, xdpacct::capture::CaptureError> {
        if self.next >= self.frames.len() {
            return Err(xdpacct::capture::CaptureError::Closed);
        }
        let end = (self.next + max).min(self.frames.len());
        for fr in &self.frames[self.next..end] {
            f(xdpacct::capture::Frame {
                data: fr,
                wire_len: fr.len() as u32,
                timestamp_ns: 0,
            });
        }
        let n = end - self.next;
        self.next = end;
        Ok(n)
    }
}

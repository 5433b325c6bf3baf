//! The worker loop: take a batch from a capture backend, parse each frame in
//! place, account it into this worker's shard. Never allocates per frame.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use super::{Direction, HostSlots, Shard, PROTO_NON_IP, PROTO_SLOT, SIZE_BUCKETS};
use crate::capture::{Capture, CaptureError, Frame};
use crate::config::BytesMode;
use crate::wire::{parse_frame, FrameFacts, L3Addrs};

/// Per-frame hook for features that see every parsed frame (the flow cache).
pub trait FrameObserver: Send {
    /// Called once per batch before its frames, with the batch's clock.
    fn begin_batch(&mut self, _now_ms: u64) {}
    fn observe(&mut self, facts: &FrameFacts, bytes: u64, direction: Direction);
    /// Called after the batch's last frame.
    fn end_batch(&mut self) {}
    /// Called at the end of input or on shutdown.
    fn finish(&mut self) {}
}

pub struct Worker {
    shard: Arc<Shard>,
    facts: FrameFacts,
    batch: usize,
    observer: Option<Box<dyn FrameObserver>>,
}

impl Worker {
    pub fn new(shard: Arc<Shard>, batch: usize) -> Self {
        Worker {
            shard,
            facts: FrameFacts::default(),
            batch,
            observer: None,
        }
    }

    pub fn with_observer(mut self, observer: Box<dyn FrameObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    pub fn shard(&self) -> &Arc<Shard> {
        &self.shard
    }

    /// Runs until `stop` is set or the source is finished.
    pub fn run<C: Capture>(
        &mut self,
        capture: &mut C,
        stop: &AtomicBool,
    ) -> Result<(), CaptureError> {
        let result = loop {
            if stop.load(Relaxed) {
                break Ok(());
            }
            // One table generation per batch; a reload swaps it between batches.
            let hosts = self.shard.hosts.load_full();
            let Worker {
                shard,
                facts,
                observer,
                batch,
                ..
            } = self;
            if let Some(obs) = observer.as_deref_mut() {
                obs.begin_batch(now_ms());
            }
            let polled = capture.poll(*batch, |frame| {
                let (bytes, dir) = account(shard, &hosts, facts, frame);
                if let Some(obs) = observer.as_deref_mut() {
                    obs.observe(facts, bytes, dir);
                }
            });
            if let Some(obs) = observer.as_deref_mut() {
                obs.end_batch();
            }
            match polled {
                Ok(_) => {}
                Err(CaptureError::Closed) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        if let Some(obs) = self.observer.as_deref_mut() {
            obs.finish();
        }
        result
    }
}

/// Milliseconds since the Unix epoch (read once per batch).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Accounts one frame into `shard`; returns the bytes counted and the direction.
#[inline]
pub fn account(
    shard: &Shard,
    hosts: &HostSlots,
    facts: &mut FrameFacts,
    frame: Frame<'_>,
) -> (u64, Direction) {
    if let Err(e) = parse_frame(frame.data, facts) {
        shard.parse_errors[e as usize].add(1);
    }
    let tables = &*hosts.tables;
    let bytes = match tables.bytes {
        BytesMode::L2 => frame.wire_len as u64,
        BytesMode::L2Fcs => frame.wire_len as u64 + 4,
        BytesMode::L3 => facts.ip_len as u64,
    };

    let (direction, src_slot, dst_slot) = match facts.addrs {
        L3Addrs::V4 { src, dst } => {
            let (s, d) = (u32::from_be_bytes(src), u32::from_be_bytes(dst));
            let dir = Direction::from_locality(tables.is_local4(s), tables.is_local4(d));
            if let Some(peers) = &tables.peers {
                let remote = if dir == Direction::In { s } else { d };
                let known = matches!(dir, Direction::In | Direction::Out);
                let asn = if known { peers.asn4(remote) } else { None };
                let net = if known { peers.network4(remote) } else { None };
                account_peer(shard, dir, bytes, asn, net);
            }
            (dir, tables.host4(s), tables.host4(d))
        }
        L3Addrs::V6 { src, dst } => {
            let (s, d) = (u128::from_be_bytes(src), u128::from_be_bytes(dst));
            let dir = Direction::from_locality(tables.is_local6(s), tables.is_local6(d));
            if let Some(peers) = &tables.peers {
                let remote = if dir == Direction::In { s } else { d };
                let known = matches!(dir, Direction::In | Direction::Out);
                let asn = if known { peers.asn6(remote) } else { None };
                let net = if known { peers.network6(remote) } else { None };
                account_peer(shard, dir, bytes, asn, net);
            }
            (dir, tables.host6(s), tables.host6(d))
        }
        L3Addrs::None => {
            if tables.peers.is_some() {
                account_peer(shard, Direction::External, bytes, None, None);
            }
            (Direction::External, None, None)
        }
    };

    shard.traffic[direction as usize].add(bytes);
    let proto = if matches!(facts.addrs, L3Addrs::None) {
        PROTO_NON_IP
    } else {
        PROTO_SLOT[facts.protocol as usize] as usize
    };
    shard.protocols[direction as usize][proto].add(bytes);

    let size = frame.wire_len;
    let bucket = SIZE_BUCKETS
        .iter()
        .position(|&b| size <= b)
        .unwrap_or(SIZE_BUCKETS.len());
    shard.sizes[bucket].add(1);
    shard.size_sum.add(size as u64);

    // Per host, from the host's own point of view.
    if let Some(slot) = dst_slot {
        hosts.slots[slot].inbound.add(bytes);
    }
    if let Some(slot) = src_slot {
        hosts.slots[slot].outbound.add(bytes);
    }
    (bytes, direction)
}

/// AS and network counters for the remote side of a frame.
#[inline]
fn account_peer(
    shard: &Shard,
    dir: Direction,
    bytes: u64,
    asn: Option<u32>,
    network: Option<usize>,
) {
    match asn {
        Some(asn) => shard.peer_as.add(asn, dir as usize, bytes),
        None => shard.as_unattributed[dir as usize].add(bytes),
    }
    if let Some(id) = network {
        shard.networks[id][dir as usize].add(bytes);
    }
}

//! The worker loop: take a batch from a capture backend, parse each frame in
//! place, account it into this worker's shard. Never allocates per frame.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use super::{Direction, HostSlots, Shard, Tables, PROTO_NON_IP, PROTO_SLOT, SIZE_BUCKETS};
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
    /// The frames of the batch being taken, parsed (capacity `batch`).
    staged: Vec<Staged>,
    observer: Option<Box<dyn FrameObserver>>,
}

/// A frame parsed out of the ring, waiting for its tables.
#[derive(Clone, Copy)]
struct Staged {
    facts: FrameFacts,
    wire_len: u32,
    resolved: Resolved,
}

impl Worker {
    pub fn new(shard: Arc<Shard>, batch: usize) -> Self {
        let batch = batch.max(1);
        Worker {
            shard,
            facts: FrameFacts::default(),
            batch,
            staged: Vec::with_capacity(batch),
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
    ///
    /// With AS or network tables, a batch goes through three passes, so
    /// that the table reads of one frame overlap those of the others instead
    /// of waiting one miss at a time: parse every frame (prefetching its AS
    /// table entries), resolve each against the tables (prefetching its AS
    /// and host counters), then count. Without them, each frame is counted
    /// as it is parsed.
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
            let tables = &*hosts.tables;
            let Worker {
                shard,
                facts,
                staged,
                observer,
                batch,
            } = self;
            if let Some(obs) = observer.as_deref_mut() {
                obs.begin_batch(now_ms());
            }
            staged.clear();
            // Staging pays off only for the AS/network lookups (measured:
            // 3x with a full table; without one it costs ~20 ns a frame).
            let stage = tables.peers.is_some();
            let polled = capture.poll(*batch, |frame| {
                if !stage || staged.len() == staged.capacity() {
                    // No tables to wait for (or more frames than asked for):
                    // count it at once.
                    let (bytes, dir) = account(shard, &hosts, facts, frame);
                    if let Some(obs) = observer.as_deref_mut() {
                        obs.observe(facts, bytes, dir);
                    }
                    return;
                }
                let mut facts = FrameFacts::default();
                if let Err(e) = parse_frame(frame.data, &mut facts) {
                    shard.parse_errors[e as usize].add(1);
                }
                if let Some(peers) = &tables.peers {
                    peers.prefetch(&facts.addrs);
                }
                staged.push(Staged {
                    facts,
                    wire_len: frame.wire_len,
                    resolved: Resolved::default(),
                });
            });
            for st in staged.iter_mut() {
                st.resolved = resolve(tables, &st.facts.addrs);
                if let Some((Some(asn), _)) = st.resolved.peer {
                    shard.peer_as.prefetch(asn);
                }
                for slot in [st.resolved.src_slot, st.resolved.dst_slot]
                    .into_iter()
                    .flatten()
                {
                    if let Some(c) = hosts.slots.get(slot) {
                        crate::memory::prefetch(c);
                    }
                }
            }
            for st in staged.iter() {
                let (bytes, dir) = count(shard, &hosts, &st.facts, st.wire_len, &st.resolved);
                if let Some(obs) = observer.as_deref_mut() {
                    obs.observe(&st.facts, bytes, dir);
                }
            }
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
    let resolved = resolve(&hosts.tables, &facts.addrs);
    count(shard, hosts, facts, frame.wire_len, &resolved)
}

/// What a frame's addresses resolve to in the tables.
#[derive(Clone, Copy)]
pub struct Resolved {
    direction: Direction,
    /// Remote AS and network; None without AS/network tables.
    peer: Option<(Option<u32>, Option<usize>)>,
    src_slot: Option<usize>,
    dst_slot: Option<usize>,
}

impl Default for Resolved {
    fn default() -> Self {
        Resolved {
            direction: Direction::External,
            peer: None,
            src_slot: None,
            dst_slot: None,
        }
    }
}

/// Direction, remote AS and network (the source side of inbound frames,
/// the destination of outbound ones), and host slots of both addresses.
#[inline]
pub fn resolve(tables: &Tables, addrs: &L3Addrs) -> Resolved {
    match *addrs {
        L3Addrs::V4 { src, dst } => {
            let (s, d) = (u32::from_be_bytes(src), u32::from_be_bytes(dst));
            let dir = Direction::from_locality(tables.is_local4(s), tables.is_local4(d));
            let peer = tables.peers.as_ref().map(|peers| {
                let remote = if dir == Direction::In { s } else { d };
                match dir {
                    Direction::In | Direction::Out => (peers.asn4(remote), peers.network4(remote)),
                    _ => (None, None),
                }
            });
            Resolved {
                direction: dir,
                peer,
                src_slot: tables.host4(s),
                dst_slot: tables.host4(d),
            }
        }
        L3Addrs::V6 { src, dst } => {
            let (s, d) = (u128::from_be_bytes(src), u128::from_be_bytes(dst));
            let dir = Direction::from_locality(tables.is_local6(s), tables.is_local6(d));
            let peer = tables.peers.as_ref().map(|peers| {
                let remote = if dir == Direction::In { s } else { d };
                match dir {
                    Direction::In | Direction::Out => (peers.asn6(remote), peers.network6(remote)),
                    _ => (None, None),
                }
            });
            Resolved {
                direction: dir,
                peer,
                src_slot: tables.host6(s),
                dst_slot: tables.host6(d),
            }
        }
        L3Addrs::None => Resolved {
            peer: tables.peers.as_ref().map(|_| (None, None)),
            ..Resolved::default()
        },
    }
}

/// Adds a parsed, resolved frame to the shard's counters.
#[inline]
fn count(
    shard: &Shard,
    hosts: &HostSlots,
    facts: &FrameFacts,
    wire_len: u32,
    r: &Resolved,
) -> (u64, Direction) {
    let bytes = match hosts.tables.bytes {
        BytesMode::L2 => wire_len as u64,
        BytesMode::L2Fcs => wire_len as u64 + 4,
        BytesMode::L3 => facts.ip_len as u64,
    };
    let direction = r.direction;
    if let Some((asn, net)) = r.peer {
        account_peer(shard, direction, bytes, asn, net);
    }

    shard.traffic[direction as usize].add(bytes);
    let proto = if matches!(facts.addrs, L3Addrs::None) {
        PROTO_NON_IP
    } else {
        PROTO_SLOT[facts.protocol as usize] as usize
    };
    shard.protocols[direction as usize][proto].add(bytes);

    let bucket = SIZE_BUCKETS
        .iter()
        .position(|&b| wire_len <= b)
        .unwrap_or(SIZE_BUCKETS.len());
    shard.sizes[bucket].add(1);
    shard.size_sum.add(wire_len as u64);

    // Per host, from the host's own point of view.
    if let Some(c) = r.dst_slot.and_then(|slot| hosts.slots.get(slot)) {
        c.inbound.add(bytes);
    }
    if let Some(c) = r.src_slot.and_then(|slot| hosts.slots.get(slot)) {
        c.outbound.add(bytes);
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

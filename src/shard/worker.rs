//! The worker loop: take a batch from a capture backend, parse each frame in
//! place, account it into this worker's shard. Never allocates per frame.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use super::{Direction, HostSlots, Shard, Tables, PROTO_NON_IP, PROTO_SLOT, SIZE_BUCKETS};
use crate::capture::{Capture, CaptureError, Frame};
use crate::settings::BytesMode;
use crate::wire::{parse_frame, parse_frame_with, FrameFacts, L3Addrs, MplsPayload};

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
    /// The batch's IPv6 remote addresses, where they are in `staged`, and
    /// their ASes, looked up together (capacity `batch`).
    remote6: Vec<u128>,
    remote6_at: Vec<usize>,
    remote6_asn: Vec<Option<u32>>,
    observer: Option<Box<dyn FrameObserver>>,
    /// Handshake RTT (`[tcp_rtt]`), called for every frame.
    rtt: Option<crate::rtt::Probe>,
}

/// A frame parsed out of the ring, waiting for its tables.
#[derive(Clone, Copy)]
struct Staged {
    facts: FrameFacts,
    wire_len: u32,
    timestamp_ns: u64,
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
            remote6: Vec::with_capacity(batch),
            remote6_at: Vec::with_capacity(batch),
            remote6_asn: Vec::with_capacity(batch),
            observer: None,
            rtt: None,
        }
    }

    pub fn with_rtt(mut self, probe: crate::rtt::Probe) -> Self {
        self.rtt = Some(probe);
        self
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
                remote6,
                remote6_at,
                remote6_asn,
                observer,
                batch,
                rtt,
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
                    if let Some(p) = rtt.as_mut() {
                        p.observe(facts, frame.timestamp_ns, &hosts.tables);
                    }
                    return;
                }
                let mut facts = FrameFacts::default();
                if let Err(e) = parse(tables, frame.data, &mut facts) {
                    shard.parse_errors[e as usize].add(1);
                }
                if let Some(peers) = &tables.peers {
                    peers.prefetch(&facts.addrs);
                }
                staged.push(Staged {
                    facts,
                    wire_len: frame.wire_len,
                    timestamp_ns: frame.timestamp_ns,
                    resolved: Resolved::default(),
                });
            });
            // IPv6 trie walks are chains of dependent misses: walk the
            // batch's tries in lockstep (`Lpm6::lookup_batch`).
            remote6.clear();
            remote6_at.clear();
            for (k, st) in staged.iter().enumerate() {
                if let Some(remote) = remote_v6(tables, &st.facts.addrs) {
                    remote6.push(remote);
                    remote6_at.push(k);
                }
            }
            remote6_asn.clear();
            remote6_asn.resize(remote6.len(), None);
            if let Some(peers) = &tables.peers {
                peers.asn6_batch(remote6, remote6_asn);
            }
            let mut next6 = remote6_at.iter().zip(remote6_asn.iter()).peekable();
            for (k, st) in staged.iter_mut().enumerate() {
                let known = next6.next_if(|(&at, _)| at == k).map(|(_, &asn)| asn);
                st.resolved = resolve_with(tables, &st.facts.addrs, known);
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
                if let Some(p) = rtt.as_mut() {
                    p.observe(&st.facts, st.timestamp_ns, &hosts.tables);
                }
            }
            if let Some(obs) = observer.as_deref_mut() {
                obs.end_batch();
            }
            if let Some(p) = rtt.as_mut() {
                p.end_batch();
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
/// Parses with the tables' options; the default ones are constants inside
/// `parse_frame` (one predictable branch per frame).
#[inline(always)]
fn parse(
    tables: &Tables,
    data: &[u8],
    facts: &mut FrameFacts,
) -> Result<(), crate::wire::WireError> {
    if tables.wire.mpls_payload == MplsPayload::Guess {
        parse_frame(data, facts)
    } else {
        parse_frame_with(data, facts, &tables.wire)
    }
}

#[inline]
pub fn account(
    shard: &Shard,
    hosts: &HostSlots,
    facts: &mut FrameFacts,
    frame: Frame<'_>,
) -> (u64, Direction) {
    if let Err(e) = parse(&hosts.tables, frame.data, facts) {
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
    resolve_with(tables, addrs, None)
}

/// The remote address of an inbound or outbound IPv6 frame, when there are
/// AS tables to look it up in.
#[inline]
fn remote_v6(tables: &Tables, addrs: &L3Addrs) -> Option<u128> {
    let L3Addrs::V6 { src, dst } = *addrs else {
        return None;
    };
    tables.peers.as_ref()?.as_table.as_ref()?;
    let (s, d) = (u128::from_be_bytes(src), u128::from_be_bytes(dst));
    match Direction::from_locality(tables.is_local6(s), tables.is_local6(d)) {
        Direction::In => Some(s),
        Direction::Out => Some(d),
        _ => None,
    }
}

/// [`resolve`], with the IPv6 remote AS already looked up (`known`).
#[inline]
fn resolve_with(tables: &Tables, addrs: &L3Addrs, known: Option<Option<u32>>) -> Resolved {
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
                    Direction::In | Direction::Out => (
                        known.unwrap_or_else(|| peers.asn6(remote)),
                        peers.network6(remote),
                    ),
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
    count_traffic(
        shard,
        hosts,
        r,
        proto_slot(&facts.addrs, facts.protocol),
        1,
        bytes,
    );

    let bucket = SIZE_BUCKETS
        .iter()
        .position(|&b| wire_len <= b)
        .unwrap_or(SIZE_BUCKETS.len());
    shard.sizes[bucket].add(1);
    shard.size_sum.add(wire_len as u64);
    (bytes, direction)
}

/// The protocol slot of a frame or record.
#[inline(always)]
fn proto_slot(addrs: &L3Addrs, protocol: u8) -> usize {
    if matches!(addrs, L3Addrs::None) {
        PROTO_NON_IP
    } else {
        PROTO_SLOT[protocol as usize] as usize
    }
}

/// What a frame and a flow record both count: AS and network of the
/// remote side, direction, protocol, and the hosts of both ends.
#[inline(always)]
fn count_traffic(
    shard: &Shard,
    hosts: &HostSlots,
    r: &Resolved,
    proto: usize,
    packets: u64,
    bytes: u64,
) {
    let direction = r.direction;
    if let Some((asn, net)) = r.peer {
        account_peer(shard, direction, packets, bytes, asn, net);
    }
    shard.traffic.add_n(direction, packets, bytes);
    shard.protocols[direction][proto].add_n(packets, bytes);
    // Per host, from the host's own point of view.
    if let Some(c) = r.dst_slot.and_then(|slot| hosts.slots.get(slot)) {
        c.add_n(Direction::In, packets, bytes);
    }
    if let Some(c) = r.src_slot.and_then(|slot| hosts.slots.get(slot)) {
        c.add_n(Direction::Out, packets, bytes);
    }
}

/// A flow record as the shard counts it: what `crate::collector` decoded,
/// already scaled by its sampling rate, with the bytes at
/// `accounting.bytes` (see the table in `crate::collector`).
#[derive(Clone, Copy, Debug, Default)]
pub struct RecordCounts {
    pub addrs: L3Addrs,
    /// IP protocol number.
    pub protocol: u8,
    pub packets: u64,
    pub bytes: u64,
    /// Input and output ifIndex (0 when not given).
    pub input_if: u32,
    pub output_if: u32,
}

/// Accounts one flow record into a flow-fed shard ([`Shard::new_flow`])
/// through the same resolve and count as a captured frame: hosts,
/// customers, AS, networks, direction, protocol. The interface is the
/// record's input interface for `in` (and internal and external) traffic,
/// its output interface for `out`, under the `exporter` address; `label`
/// names an interface seen for the first time. Returns the direction. No
/// allocation but a new interface's label.
#[inline]
pub fn account_record(
    shard: &Shard,
    hosts: &HostSlots,
    rec: &RecordCounts,
    exporter: u128,
    label: impl FnOnce(u32) -> String,
) -> Direction {
    let r = resolve(&hosts.tables, &rec.addrs);
    let proto = proto_slot(&rec.addrs, rec.protocol);
    count_traffic(shard, hosts, &r, proto, rec.packets, rec.bytes);
    if let Some(flow) = shard.flow_interfaces() {
        let ifindex = if r.direction == Direction::Out {
            rec.output_if
        } else {
            rec.input_if
        };
        flow.entry(exporter, ifindex, || label(ifindex))[r.direction][proto]
            .add_n(rec.packets, rec.bytes);
    }
    r.direction
}

/// AS and network counters for the remote side of a frame.
#[inline]
fn account_peer(
    shard: &Shard,
    dir: Direction,
    packets: u64,
    bytes: u64,
    asn: Option<u32>,
    network: Option<usize>,
) {
    match asn {
        Some(asn) => shard.peer_as.add_n(asn, dir, packets, bytes),
        None => shard.as_unattributed.add_n(dir, packets, bytes),
    }
    if let Some(id) = network {
        shard.networks[id].add_n(dir, packets, bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::raw::{AccountingConfig, NetworkConfig, RangeConfig};
    use crate::settings::{Accounting, AsFileFormat};
    use crate::shard::ShardOrigin;

    /// Frames from memory, `max` per poll.
    struct Frames<'a>(&'a [Vec<u8>], usize);
    impl Capture for Frames<'_> {
        fn poll<F: FnMut(Frame<'_>)>(
            &mut self,
            max: usize,
            mut f: F,
        ) -> Result<usize, CaptureError> {
            if self.1 >= self.0.len() {
                return Err(CaptureError::Closed);
            }
            let end = (self.1 + max).min(self.0.len());
            for fr in &self.0[self.1..end] {
                f(Frame {
                    data: fr,
                    wire_len: fr.len() as u32 + 4,
                    timestamp_ns: 0,
                });
            }
            let n = end - self.1;
            self.1 = end;
            Ok(n)
        }
    }

    fn ip_frame(src: std::net::IpAddr, dst: std::net::IpAddr, pad: usize) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        match (src, dst) {
            (std::net::IpAddr::V4(s), std::net::IpAddr::V4(d)) => {
                f.extend_from_slice(&[
                    0x08,
                    0x00,
                    0x45,
                    0,
                    0,
                    20 + pad as u8,
                    0,
                    0,
                    0,
                    0,
                    64,
                    17,
                    0,
                    0,
                ]);
                f.extend_from_slice(&s.octets());
                f.extend_from_slice(&d.octets());
            }
            (std::net::IpAddr::V6(s), std::net::IpAddr::V6(d)) => {
                f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, pad as u8, 59, 64]);
                f.extend_from_slice(&s.octets());
                f.extend_from_slice(&d.octets());
            }
            _ => unreachable!("same family"),
        }
        f.resize(f.len() + pad, 0);
        f
    }

    /// Every counter the staged worker feeds, as plain values.
    #[derive(Debug, PartialEq)]
    struct All {
        main: crate::shard::ShardSnapshot,
        unattributed: crate::shard::ByDirection<crate::shard::Count>,
        overflow: crate::shard::InOut<crate::shard::Count>,
        networks: Vec<(usize, crate::shard::InOut<crate::shard::Count>)>,
        ases: std::collections::BTreeMap<u32, crate::shard::InOut<crate::shard::Count>>,
        hosts: Vec<crate::shard::InOut<crate::shard::Count>>,
    }

    fn snapshot(shard: &Shard) -> All {
        let mut ases = std::collections::BTreeMap::new();
        shard.for_each_as(|asn, c| {
            ases.insert(asn, c);
        });
        All {
            main: shard.snapshot(),
            unattributed: shard.as_unattributed.load(),
            overflow: shard.peer_as.overflow(),
            networks: shard.networks().collect(),
            ases,
            hosts: shard.hosts().counts().collect(),
        }
    }

    /// The staged batch path (prefetch, lockstep IPv6 walks) counts exactly
    /// what the one-frame-at-a-time path counts, AS by AS and host by host.
    #[test]
    fn staged_batches_count_like_single_frames() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let routes = dir.path().join("routes.txt");
        std::fs::write(
            &routes,
            "0.0.0.0/1 100\n64.0.0.0/2 101\n64.1.0.0/16 102\n64.1.2.128/25 103\n\
             2000::/3 200\n2a00::/12 201\n2a00:1::/32 202\n2a00:1:2:3::/64 203\n2a00:1:2:3:4::/80 204\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let acct = AccountingConfig {
            local_networks: vec!["10.0.0.0/8".into(), "2001:db8::/32".into()],
            ranges: vec![
                RangeConfig {
                    prefix: Some("10.0.0.0/24".into()),
                    ..Default::default()
                },
                RangeConfig {
                    prefix: Some("2001:db8::/56".into()),
                    ..Default::default()
                },
            ],
            as_file: Some(routes.display().to_string()),
            as_file_format: Some(AsFileFormat::PrefixAsn),
            networks: vec![NetworkConfig {
                name: "n1".into(),
                prefixes: vec!["64.1.0.0/16".into(), "2a00:1::/32".into()],
                ..Default::default()
            }],
            ..Default::default()
        };
        let acct = Accounting::from_raw(&acct, "test").unwrap_or_else(|e| panic!("{e}"));
        let tables = Arc::new(Tables::build(&acct, "test", None).unwrap_or_else(|e| panic!("{e}")));
        let origin = || ShardOrigin {
            interface: "t".into(),
            queue: 0,
        };
        // Remote addresses in, between and outside the prefixes; local
        // hosts inside and outside the ranges; both directions, internal,
        // external, and garbage.
        let mut x = 0x1234_5678_9abc_def0u64;
        let mut rnd = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut frames = Vec::new();
        for i in 0..5_000 {
            let r = rnd();
            let (local, remote): (std::net::IpAddr, std::net::IpAddr) = if r % 2 == 0 {
                let remote = match r % 5 {
                    0 => [64, 1, 2, (r >> 8) as u8],
                    1 => [64, 1, (r >> 8) as u8, (r >> 16) as u8],
                    2 => [(r >> 8) as u8, (r >> 16) as u8, 0, 1],
                    _ => [10, 0, 1, (r >> 8) as u8],
                };
                let local = [10, 0, (r >> 24) as u8 % 2, (r >> 32) as u8];
                (local.into(), remote.into())
            } else {
                let mut remote = [0u8; 16];
                remote.copy_from_slice(&[(r >> 8).to_be_bytes(), r.to_be_bytes()].concat());
                match r % 7 {
                    0 => remote[..10].copy_from_slice(&[0x2a, 0, 0, 1, 0, 2, 0, 3, 0, 4]),
                    1 => remote[..8].copy_from_slice(&[0x2a, 0, 0, 1, 0, 2, 0, 3]),
                    2 => remote[..4].copy_from_slice(&[0x2a, 0, 0, 1]),
                    3 => remote[..2].copy_from_slice(&[0x2a, 0x0f]),
                    4 => remote[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]),
                    _ => {}
                }
                let mut local = [0u8; 16];
                local[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
                local[7] = (r >> 40) as u8 % 2;
                local[15] = (r >> 48) as u8;
                (local.into(), remote.into())
            };
            let (s, d) = if i % 3 == 0 {
                (local, remote)
            } else {
                (remote, local)
            };
            let mut f = ip_frame(s, d, (r >> 56) as usize % 40);
            if i % 97 == 0 {
                f.truncate(20);
            }
            frames.push(f);
        }
        for batch in [1, 7, 64, 256] {
            let staged = Arc::new(Shard::new(origin(), tables.clone()));
            let mut w = Worker::new(staged.clone(), batch);
            let stop = AtomicBool::new(false);
            assert!(w.run(&mut Frames(&frames, 0), &stop).is_ok());
            let single = Shard::new(origin(), tables.clone());
            let hosts = single.hosts.load_full();
            let mut facts = FrameFacts::default();
            for f in &frames {
                let frame = Frame {
                    data: f,
                    wire_len: f.len() as u32 + 4,
                    timestamp_ns: 0,
                };
                account(&single, &hosts, &mut facts, frame);
            }
            let (a, b) = (snapshot(&staged), snapshot(&single));
            assert_eq!(a, b, "batch {batch}");
            assert_eq!(staged.snapshot().traffic.total().packets, 5_000);
        }
    }
}

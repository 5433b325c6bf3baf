//! The per-shard flow cache.
//!
//! Open addressing with linear probing and backward-shift deletion (no
//! tombstones) over two arrays allocated once at construction: a `u32` tag
//! per slot (0 = empty, else the top bit set plus 31 bits of the hash; 1 MiB
//! per 256 Ki slots, so it stays in L2) and the flow itself, packed into one
//! 64-byte cache line (see [`Slot`]). The table has at least twice as many
//! slots as `max_flows`, so probe sequences stay short even when full.
//!
//! The worker feeds frames through [`FlowCache::enqueue`]: it hashes the key
//! and prefetches the key's tag and slot, and applies the update
//! [`LOOKAHEAD`] frames later (or at [`FlowCache::drain`], end of batch).
//! A random slot of a table this size is a main-memory miss (~150 ns here);
//! the parse and account of the frames in between hide it.
//!
//! Nothing here allocates after [`FlowCache::new`] and nothing panics.
//! The cache is owned by one worker (`&mut self`); its counters are
//! published to a shared [`FlowStats`] once per [`FlowCache::expire`] call.
//!
//! Expiry:
//! - idle: no frame for `idle_timeout_ms`;
//! - active: the flow is older than `active_timeout_ms` (also checked on
//!   update, so a busy flow is cut on time even between sweeps);
//! - TCP FIN or RST: exported by the `update` that saw the flag;
//! - pressure: inserting into a full cache evicts the least recently seen
//!   of a few neighbouring flows.
//!
//! `expire` scans a slice of the table proportional to the time elapsed
//! since its last call, so the whole table is swept once per `sweep_ms`
//! (at most the idle timeout, 1 s by default) however often it is called.

use std::hash::BuildHasher;
use std::sync::Arc;

use super::{FlowKey, FlowRecord, TCP_FIN, TCP_RST};
use crate::memory::prefetch;
use crate::wire::{FrameFacts, L3Addrs};

/// Flow cache settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowCacheConfig {
    /// Flows held at most per shard. Defaults to 65536.
    pub max_flows: usize,
    /// A flow with no frame for this long is exported, in ms. Defaults to 15000.
    pub idle_timeout_ms: u64,
    /// A flow older than this is exported and restarted, in ms. Defaults to 60000.
    pub active_timeout_ms: u64,
}

impl Default for FlowCacheConfig {
    fn default() -> Self {
        FlowCacheConfig {
            max_flows: 65536,
            idle_timeout_ms: 15_000,
            active_timeout_ms: 60_000,
        }
    }
}

/// What a flow record adds to its flow ([`FlowCache::add_flow`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowCounts {
    pub packets: u64,
    pub bytes: u64,
    /// OR of the TCP flags of the record's packets.
    pub tcp_flags: u8,
    /// Exported as DIRECTION / flowDirection (see [`FlowRecord`]).
    pub direction: u8,
}

/// The single-writer counter of the shards (one counter type crate-wide).
pub use crate::shard::Counter;

/// Counters of one shard's flow cache and flow sink, written by the worker
/// that owns them, read at scrape.
#[derive(Debug, Default)]
pub struct FlowStats {
    /// Flows in the cache now (gauge), as of the last `expire` call.
    pub flows: Counter,
    /// Flows created.
    pub created: Counter,
    /// Records exported because the flow was idle.
    pub expired_idle: Counter,
    /// Records exported because the flow reached the active timeout.
    pub expired_active: Counter,
    /// Records exported because of TCP FIN or RST.
    pub expired_tcp_end: Counter,
    /// Records exported early because the cache was full.
    pub evicted_pressure: Counter,
    /// Records exported by `flush_all`.
    pub flushed: Counter,
    /// Records handed to the exporter channel (by `FlowSink`).
    pub records_queued: Counter,
    /// Records dropped because the exporter channel was full (by `FlowSink`).
    pub records_dropped_channel_full: Counter,
}

#[derive(Clone, Copy, Default)]
struct Tally {
    created: u64,
    idle: u64,
    active: u64,
    tcp_end: u64,
    pressure: u64,
    flushed: u64,
}

const TAG_USED: u32 = 0x8000_0000;
/// How many occupied slots a pressure eviction compares.
const EVICT_SAMPLE: usize = 8;
/// How many slots a pressure eviction looks at, at most.
const EVICT_SCAN: usize = 64;

/// Frames between a key's prefetch and its update: about one memory
/// latency of per-frame work (measured: `cargo bench --bench flow`).
pub const LOOKAHEAD: usize = 16;

/// One flow in one cache line, so that an update touches a single line of
/// the table. Times are ms since the cache's `epoch_ms` (rebased long before
/// they could overflow); a flow whose packet count would wrap is exported
/// and restarted, like an active timeout.
#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
struct Slot {
    /// IPv4: source in bytes 0..4, destination in 4..8, the rest zero.
    addrs: [u8; 32],
    src_port: u16,
    dst_port: u16,
    vlan: u16,
    iface: u16,
    protocol: u8,
    tos: u8,
    tcp_flags: u8,
    /// The direction, with [`SLOT_V6`] set for IPv6 addresses.
    dir_v6: u8,
    packets: u32,
    bytes: u64,
    first: u32,
    last: u32,
}

const SLOT_V6: u8 = 0x80;
const _: () = assert!(std::mem::size_of::<Slot>() == 64);

impl Slot {
    /// A one-frame flow (times set by the caller), or None without IP
    /// addresses.
    #[inline]
    fn first_frame(iface: u16, facts: &FrameFacts, direction: u8, bytes: u64) -> Option<Slot> {
        let mut addrs = [0u8; 32];
        let v6 = match facts.addrs {
            L3Addrs::V4 { src, dst } => {
                addrs[..4].copy_from_slice(&src);
                addrs[4..8].copy_from_slice(&dst);
                0
            }
            L3Addrs::V6 { src, dst } => {
                addrs[..16].copy_from_slice(&src);
                addrs[16..].copy_from_slice(&dst);
                SLOT_V6
            }
            L3Addrs::None => return None,
        };
        Some(Slot {
            addrs,
            src_port: facts.src_port,
            dst_port: facts.dst_port,
            vlan: facts.vlan,
            iface,
            protocol: facts.protocol,
            tos: facts.tos,
            tcp_flags: facts.tcp_flags,
            dir_v6: direction & !SLOT_V6 | v6,
            packets: 1,
            bytes,
            first: 0,
            last: 0,
        })
    }

    /// Ports, VLAN and interface as one word.
    #[inline]
    fn ports_vlan_iface(&self) -> u64 {
        u64::from(self.src_port)
            | u64::from(self.dst_port) << 16
            | u64::from(self.vlan) << 32
            | u64::from(self.iface) << 48
    }

    /// The `i`-th 8 bytes of the addresses.
    #[inline]
    fn addr_word(&self, i: usize) -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&self.addrs[i * 8..i * 8 + 8]);
        u64::from_ne_bytes(w)
    }

    /// Hash of the flow key (what [`same_flow`](Self::same_flow) compares).
    #[inline]
    fn hash(&self, seed: u64) -> u64 {
        let v6 = self.dir_v6 & SLOT_V6;
        let rest = u64::from(self.protocol) | u64::from(self.tos) << 8 | u64::from(v6) << 16;
        let mut h = fold_mul(seed ^ self.ports_vlan_iface(), K0 ^ rest);
        h = fold_mul(h ^ self.addr_word(0), K1);
        if v6 != 0 {
            h = fold_mul(h ^ self.addr_word(1), K1 ^ self.addr_word(2));
            h = fold_mul(h ^ self.addr_word(3), K0);
        }
        fold_mul(h, K0)
    }

    /// Same flow key (direction, counters and times aside).
    #[inline]
    fn same_flow(&self, o: &Slot) -> bool {
        self.addrs == o.addrs
            && self.ports_vlan_iface() == o.ports_vlan_iface()
            && self.protocol == o.protocol
            && self.tos == o.tos
            && (self.dir_v6 ^ o.dir_v6) & SLOT_V6 == 0
    }

    fn record(&self, epoch_ms: u64) -> FlowRecord {
        let a = &self.addrs;
        let addrs = if self.dir_v6 & SLOT_V6 != 0 {
            L3Addrs::V6 {
                src: a[..16].try_into().unwrap_or_default(),
                dst: a[16..].try_into().unwrap_or_default(),
            }
        } else {
            L3Addrs::V4 {
                src: a[..4].try_into().unwrap_or_default(),
                dst: a[4..8].try_into().unwrap_or_default(),
            }
        };
        FlowRecord {
            key: FlowKey {
                iface: self.iface,
                vlan: self.vlan,
                addrs,
                protocol: self.protocol,
                src_port: self.src_port,
                dst_port: self.dst_port,
                tos: self.tos,
            },
            packets: u64::from(self.packets),
            bytes: self.bytes,
            first_ms: epoch_ms + u64::from(self.first),
            last_ms: epoch_ms + u64::from(self.last),
            tcp_flags: self.tcp_flags,
            direction: self.dir_v6 & !SLOT_V6,
        }
    }
}

/// A flow the expiry sweep passed over and kept, as seen by a
/// [`SweepVisitor`] (a view of the slot, no copy until `record`).
pub struct FlowRef<'a> {
    slot: &'a Slot,
    epoch_ms: u64,
    now: u32,
}

impl FlowRef<'_> {
    /// Bytes of the flow since it entered the cache (or its last cut).
    #[inline]
    pub fn bytes(&self) -> u64 {
        self.slot.bytes
    }

    /// ms since the flow's last frame.
    #[inline]
    pub fn idle_ms(&self) -> u64 {
        u64::from(self.now.saturating_sub(self.slot.last))
    }

    /// The flow as a record (its key, counters and times).
    pub fn record(&self) -> FlowRecord {
        self.slot.record(self.epoch_ms)
    }
}

/// Takes the records an expiry sweep exports, sees the flows it keeps,
/// and the end of each full sweep of the table (the busiest-connections
/// view, `super::connections`).
pub trait SweepVisitor {
    /// A record leaving the cache (what `expire`'s sink gets).
    fn export(&mut self, r: FlowRecord);
    /// A flow the sweep keeps.
    fn flow(&mut self, _f: FlowRef<'_>) {}
    /// The sweep passed the end of the table: every flow was offered once
    /// (or, if backward-shift deletion moved it, twice or not at all).
    fn swept(&mut self) {}
}

/// A sink and nothing else: [`FlowCache::expire`].
struct Exports<F>(F);

impl<F: FnMut(FlowRecord)> SweepVisitor for Exports<F> {
    #[inline]
    fn export(&mut self, r: FlowRecord) {
        (self.0)(r)
    }
}

/// Slot times are rebased when they pass this many ms (24.9 days) ...
const REBASE_AT: u64 = 1 << 31;
/// ... to this many ms after the new epoch (12.4 days): every live flow is
/// younger than that (timeouts are at most [`MAX_TIMEOUT_MS`]), so its
/// times stay exact.
const REBASE_TO: u64 = 1 << 30;
/// Longest idle or active timeout, in ms (one day).
pub const MAX_TIMEOUT_MS: u64 = 86_400_000;
/// How far a flow record's times may be ahead of the receive clock (a
/// router's clock drift, and a batch clock read before its datagrams).
pub const ROUTER_CLOCK_AHEAD_MS: u64 = 60_000;

/// One shard's flow cache. See the module docs.
pub struct FlowCache {
    /// Frames waiting for their update (their slots prefetched), as
    /// one-frame flows with the slot time set, and their tags:
    /// `pending[head..head + queued]` (mod LOOKAHEAD).
    pending: [Slot; LOOKAHEAD],
    pending_tags: [u32; LOOKAHEAD],
    head: usize,
    queued: usize,
    tags: Box<[u32]>,
    slots: Box<[Slot]>,
    /// Slot times count ms from here.
    epoch_ms: u64,
    mask: usize,
    len: usize,
    max_flows: usize,
    idle_ms: u64,
    active_ms: u64,
    sweep_ms: u64,
    seed: u64,
    cursor: usize,
    evict_cursor: usize,
    last_expire_ms: Option<u64>,
    scan_credit: u128,
    tally: Tally,
    stats: Arc<FlowStats>,
}

#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let r = (a as u128).wrapping_mul(b as u128);
    (r as u64) ^ ((r >> 64) as u64)
}

const K0: u64 = 0x243f_6a88_85a3_08d3;
const K1: u64 = 0x1319_8a2e_0370_7344;

impl FlowCache {
    /// Allocates the whole table (68 bytes per slot, two slots per flow).
    pub fn new(cfg: &FlowCacheConfig, stats: Arc<FlowStats>) -> Self {
        let max_flows = cfg.max_flows.clamp(1, 1 << 29);
        let cap = (max_flows * 2).next_power_of_two().max(16);
        let seed =
            std::collections::hash_map::RandomState::new().hash_one(0x7864_7061_6363_7400u64);
        let idle_ms = cfg.idle_timeout_ms.clamp(1, MAX_TIMEOUT_MS);
        let active_ms = cfg.active_timeout_ms.clamp(1, MAX_TIMEOUT_MS);
        FlowCache {
            pending: [Slot::default(); LOOKAHEAD],
            pending_tags: [0; LOOKAHEAD],
            head: 0,
            queued: 0,
            tags: crate::memory::filled(cap, 0u32),
            slots: crate::memory::filled(cap, Slot::default()),
            epoch_ms: 0,
            mask: cap - 1,
            len: 0,
            max_flows,
            idle_ms,
            active_ms,
            sweep_ms: idle_ms.min(active_ms).min(1000),
            seed,
            cursor: 0,
            evict_cursor: 0,
            last_expire_ms: None,
            scan_credit: 0,
            tally: Tally::default(),
            stats,
        }
    }

    /// Flows in the cache.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Slots in the table (a power of two, at least `2 * max_flows`).
    pub fn capacity(&self) -> usize {
        self.mask + 1
    }

    pub fn stats(&self) -> &Arc<FlowStats> {
        &self.stats
    }

    /// Accounts one frame now. Frames without IP addresses are skipped
    /// (returns false). May export records through `sink`: the flow itself on
    /// TCP FIN/RST or when it reached the active timeout, or another flow
    /// evicted because the cache is full. `now_ms` is Unix time in ms, read
    /// once per batch. Applies queued frames first, keeping frame order.
    #[inline]
    pub fn update(
        &mut self,
        iface: u16,
        facts: &FrameFacts,
        bytes: u64,
        direction: u8,
        now_ms: u64,
        sink: &mut impl FnMut(FlowRecord),
    ) -> bool {
        self.drain(sink);
        match self.one_frame(iface, facts, bytes, direction, now_ms) {
            Some((slot, tag)) => {
                self.apply(&slot, tag, sink);
                true
            }
            None => false,
        }
    }

    /// Like [`update`](Self::update), but the update happens [`LOOKAHEAD`]
    /// frames later, while the key's slot is fetched from memory. Call
    /// [`drain`](Self::drain) at the end of each batch.
    #[inline]
    pub fn enqueue(
        &mut self,
        iface: u16,
        facts: &FrameFacts,
        bytes: u64,
        direction: u8,
        now_ms: u64,
        sink: &mut impl FnMut(FlowRecord),
    ) -> bool {
        let Some((slot, tag)) = self.one_frame(iface, facts, bytes, direction, now_ms) else {
            return false;
        };
        let home = tag as usize & self.mask;
        prefetch(&self.tags[home]);
        prefetch(&self.slots[home]);
        if self.queued == LOOKAHEAD {
            self.apply_oldest(sink);
        }
        let at = (self.head + self.queued) % LOOKAHEAD;
        self.pending[at] = slot;
        self.pending_tags[at] = tag;
        self.queued += 1;
        true
    }

    #[inline]
    fn apply_oldest(&mut self, sink: &mut impl FnMut(FlowRecord)) {
        let (slot, tag) = (self.pending[self.head], self.pending_tags[self.head]);
        self.head = (self.head + 1) % LOOKAHEAD;
        self.queued -= 1;
        self.apply(&slot, tag, sink);
    }

    /// Applies every queued frame.
    #[inline]
    pub fn drain(&mut self, sink: &mut impl FnMut(FlowRecord)) {
        while self.queued > 0 {
            self.apply_oldest(sink);
        }
    }

    /// The frame as a one-frame flow stamped with its slot time, and its tag.
    #[inline]
    fn one_frame(
        &mut self,
        iface: u16,
        facts: &FrameFacts,
        bytes: u64,
        direction: u8,
        now_ms: u64,
    ) -> Option<(Slot, u32)> {
        let mut slot = Slot::first_frame(iface, facts, direction, bytes)?;
        let now = self.slot_time(now_ms);
        (slot.first, slot.last) = (now, now);
        Some((slot, (slot.hash(self.seed) as u32) | TAG_USED))
    }

    /// `now_ms` as a slot time, rebasing the table first if it is too far
    /// from the epoch (the first call, then every few weeks).
    #[inline]
    fn slot_time(&mut self, now_ms: u64) -> u32 {
        let t = now_ms.saturating_sub(self.epoch_ms);
        if t >= REBASE_AT {
            self.rebase(now_ms.saturating_sub(REBASE_TO));
            return now_ms.saturating_sub(self.epoch_ms) as u32;
        }
        t as u32
    }

    #[cold]
    fn rebase(&mut self, epoch_ms: u64) {
        let shift = epoch_ms.saturating_sub(self.epoch_ms);
        let shift = u32::try_from(shift).unwrap_or(u32::MAX);
        let in_table = self.tags.iter().zip(self.slots.iter_mut());
        let in_table = in_table.filter(|(tag, _)| **tag != 0).map(|(_, s)| s);
        for s in in_table {
            s.first = s.first.saturating_sub(shift);
            s.last = s.last.saturating_sub(shift);
        }
        for k in 0..self.queued {
            let s = &mut self.pending[(self.head + k) % LOOKAHEAD];
            s.first = s.first.saturating_sub(shift);
            s.last = s.last.saturating_sub(shift);
        }
        self.epoch_ms = epoch_ms;
    }

    #[inline]
    fn apply(&mut self, frame: &Slot, tag: u32, sink: &mut impl FnMut(FlowRecord)) {
        let mut i = tag as usize & self.mask;
        loop {
            let t = self.tags[i];
            if t == 0 {
                break;
            }
            if t == tag && self.slots[i].same_flow(frame) {
                self.hit(i, frame, sink);
                return;
            }
            i = (i + 1) & self.mask;
        }
        if self.len >= self.max_flows {
            self.evict_one(sink);
            // The eviction may have shifted entries: find the free slot again.
            i = tag as usize & self.mask;
            while self.tags[i] != 0 {
                i = (i + 1) & self.mask;
            }
        }
        self.tags[i] = tag;
        self.slots[i] = *frame;
        self.len += 1;
        self.tally.created += 1;
        if frame.tcp_flags & (TCP_FIN | TCP_RST) != 0 {
            self.tally.tcp_end += 1;
            sink(self.slots[i].record(self.epoch_ms));
            self.remove_at(i);
        }
    }

    #[inline]
    fn hit(&mut self, i: usize, frame: &Slot, sink: &mut impl FnMut(FlowRecord)) {
        let now = frame.last;
        let rec = &mut self.slots[i];
        if u64::from(now.saturating_sub(rec.first)) >= self.active_ms || rec.packets == u32::MAX {
            self.tally.active += 1;
            sink(rec.record(self.epoch_ms));
            rec.packets = 0;
            rec.bytes = 0;
            rec.tcp_flags = 0;
            rec.first = now;
        }
        rec.packets += 1;
        rec.bytes += frame.bytes;
        rec.tcp_flags |= frame.tcp_flags;
        rec.last = rec.last.max(now);
        if frame.tcp_flags & (TCP_FIN | TCP_RST) != 0 {
            self.tally.tcp_end += 1;
            sink(rec.record(self.epoch_ms));
            self.remove_at(i);
        }
    }

    /// Accounts one flow record received from a router (flow input): its
    /// own packets and bytes, its first/last times when it gives them
    /// (`times`, Unix ms) or else `now_ms`, the receive time. Router times
    /// more than [`MAX_TIMEOUT_MS`] old or [`ROUTER_CLOCK_AHEAD_MS`] ahead
    /// are replaced by the receive time (a reversed start by the end), so
    /// the slot clock stays representable.
    /// Merges with a cached flow of the same key like frames do (cut on
    /// the active timeout or before the packet count wraps, exported at
    /// once on TCP FIN/RST); a record of more than `u32::MAX` packets goes
    /// straight to `sink`. Returns false without IP addresses. Queued
    /// frames are applied first.
    pub fn add_flow(
        &mut self,
        key: &FlowKey,
        counts: FlowCounts,
        times: Option<(u64, u64)>,
        now_ms: u64,
        sink: &mut impl FnMut(FlowRecord),
    ) -> bool {
        if key.addrs == L3Addrs::None {
            return false;
        }
        self.drain(sink);
        let sane = |t: u64| {
            t > 0
                && t <= now_ms.saturating_add(ROUTER_CLOCK_AHEAD_MS)
                && now_ms.saturating_sub(t) <= MAX_TIMEOUT_MS
        };
        let (first_ms, last_ms) = match times {
            Some((f, l)) if sane(f) && sane(l) && f <= l => (f, l),
            Some((_, l)) if sane(l) => (l, l),
            _ => (now_ms, now_ms),
        };
        let Ok(packets) = u32::try_from(counts.packets) else {
            self.tally.created += 1;
            self.tally.flushed += 1;
            sink(FlowRecord {
                key: *key,
                packets: counts.packets,
                bytes: counts.bytes,
                first_ms,
                last_ms,
                tcp_flags: counts.tcp_flags,
                direction: counts.direction,
            });
            return true;
        };
        let facts = FrameFacts {
            vlan: key.vlan,
            addrs: key.addrs,
            protocol: key.protocol,
            tos: key.tos,
            src_port: key.src_port,
            dst_port: key.dst_port,
            tcp_flags: counts.tcp_flags,
            ..FrameFacts::default()
        };
        let Some(mut flow) = Slot::first_frame(key.iface, &facts, counts.direction, counts.bytes)
        else {
            return false;
        };
        flow.packets = packets;
        // The later time first: a rebase it causes moves the earlier one too.
        flow.last = self.slot_time(last_ms);
        flow.first = self.slot_time(first_ms);
        let tag = (flow.hash(self.seed) as u32) | TAG_USED;
        self.merge_flow(&flow, tag, sink);
        true
    }

    /// [`apply`](Self::apply) for a flow of many packets (`add_flow`).
    fn merge_flow(&mut self, flow: &Slot, tag: u32, sink: &mut impl FnMut(FlowRecord)) {
        let mut i = tag as usize & self.mask;
        while self.tags[i] != 0 {
            if self.tags[i] == tag && self.slots[i].same_flow(flow) {
                let rec = &mut self.slots[i];
                let too_old = u64::from(flow.last.saturating_sub(rec.first)) >= self.active_ms;
                if too_old || rec.packets.checked_add(flow.packets).is_none() {
                    self.tally.active += 1;
                    sink(rec.record(self.epoch_ms));
                    (rec.packets, rec.bytes, rec.tcp_flags) = (0, 0, 0);
                    (rec.first, rec.last) = (flow.first, flow.last);
                }
                rec.packets += flow.packets;
                rec.bytes = rec.bytes.saturating_add(flow.bytes);
                rec.tcp_flags |= flow.tcp_flags;
                rec.first = rec.first.min(flow.first);
                rec.last = rec.last.max(flow.last);
                if flow.tcp_flags & (TCP_FIN | TCP_RST) != 0 {
                    self.tally.tcp_end += 1;
                    sink(rec.record(self.epoch_ms));
                    self.remove_at(i);
                }
                return;
            }
            i = (i + 1) & self.mask;
        }
        // A new flow: the frame path's insert (eviction, FIN/RST) as is.
        self.apply(flow, tag, sink);
    }

    /// Removes slot `i`, shifting later members of its probe run back.
    fn remove_at(&mut self, mut i: usize) {
        let mask = self.mask;
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let t = self.tags[j];
            if t == 0 {
                break;
            }
            let home = t as usize & mask;
            // The entry at j may fill the hole at i if its home is not in (i, j].
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(i) & mask) {
                self.tags[i] = t;
                self.slots[i] = self.slots[j];
                i = j;
            }
        }
        self.tags[i] = 0;
        self.len -= 1;
    }

    /// Exports and removes the least recently seen of a few flows after a
    /// rotating cursor.
    fn evict_one(&mut self, sink: &mut impl FnMut(FlowRecord)) {
        let mut best: Option<usize> = None;
        let mut seen = 0;
        let mut i = self.evict_cursor;
        for _ in 0..EVICT_SCAN.min(self.capacity()) {
            if self.tags[i] != 0 {
                if best.map_or(true, |b| self.slots[i].last < self.slots[b].last) {
                    best = Some(i);
                }
                seen += 1;
                if seen == EVICT_SAMPLE {
                    break;
                }
            }
            i = (i + 1) & self.mask;
        }
        self.evict_cursor = (i + 1) & self.mask;
        let victim = match best {
            Some(b) => b,
            None => {
                // No flow near the cursor (only possible with a tiny
                // max_flows): take the first one anywhere.
                match self.tags.iter().position(|&t| t != 0) {
                    Some(b) => b,
                    None => return,
                }
            }
        };
        self.tally.pressure += 1;
        sink(self.slots[victim].record(self.epoch_ms));
        self.remove_at(victim);
    }

    /// Exports idle and over-age flows. Call once per batch with the batch
    /// clock; scans `capacity * elapsed / sweep_ms` slots (the whole table
    /// once per sweep period) and publishes the counters to [`FlowStats`].
    pub fn expire(&mut self, now_ms: u64, sink: &mut impl FnMut(FlowRecord)) {
        self.expire_with(now_ms, &mut Exports(sink));
    }

    /// [`expire`](Self::expire) exporting to `visitor`, showing it every
    /// flow it keeps and telling it when the sweep wraps around the table.
    pub fn expire_with(&mut self, now_ms: u64, visitor: &mut impl SweepVisitor) {
        self.drain(&mut |r| visitor.export(r));
        let cap = self.capacity();
        let elapsed = match self.last_expire_ms {
            Some(last) => now_ms.saturating_sub(last),
            None => 0,
        };
        if self.last_expire_ms.map_or(true, |last| now_ms > last) {
            self.last_expire_ms = Some(now_ms);
        }
        self.scan_credit += u128::from(elapsed) * cap as u128;
        let sweep = u128::from(self.sweep_ms);
        let mut n = (self.scan_credit / sweep).min(cap as u128) as usize;
        if n == cap {
            self.scan_credit = 0;
        } else {
            self.scan_credit -= n as u128 * sweep;
        }
        let now = self.slot_time(now_ms);
        let mut i = self.cursor;
        while n > 0 {
            if self.tags[i] != 0 {
                let rec = &self.slots[i];
                let idle = u64::from(now.saturating_sub(rec.last)) >= self.idle_ms;
                let active = u64::from(now.saturating_sub(rec.first)) >= self.active_ms;
                if idle || active {
                    if idle {
                        self.tally.idle += 1;
                    } else {
                        self.tally.active += 1;
                    }
                    visitor.export(rec.record(self.epoch_ms));
                    // A later entry may have moved into slot i: look again.
                    self.remove_at(i);
                    continue;
                }
                visitor.flow(FlowRef {
                    slot: rec,
                    epoch_ms: self.epoch_ms,
                    now,
                });
            }
            i = (i + 1) & self.mask;
            if i == 0 {
                visitor.swept();
            }
            n -= 1;
        }
        self.cursor = i;
        self.publish();
    }

    /// Shows every flow in the cache to `visitor`, then ends the sweep
    /// (before `flush_all` at shutdown or the end of a replay).
    pub fn visit_all(&mut self, now_ms: u64, visitor: &mut impl SweepVisitor) {
        let now = self.slot_time(now_ms);
        for i in 0..self.capacity() {
            if self.tags[i] != 0 {
                visitor.flow(FlowRef {
                    slot: &self.slots[i],
                    epoch_ms: self.epoch_ms,
                    now,
                });
            }
        }
        visitor.swept();
    }

    /// Exports every flow and empties the cache (shutdown, end of replay).
    pub fn flush_all(&mut self, sink: &mut impl FnMut(FlowRecord)) {
        self.drain(sink);
        for i in 0..self.capacity() {
            if self.tags[i] != 0 {
                self.tags[i] = 0;
                self.tally.flushed += 1;
                sink(self.slots[i].record(self.epoch_ms));
            }
        }
        self.len = 0;
        self.publish();
    }

    /// Copies the counters into the shared [`FlowStats`].
    pub fn publish(&self) {
        let s = &self.stats;
        s.flows.set(self.len as u64);
        s.created.set(self.tally.created);
        s.expired_idle.set(self.tally.idle);
        s.expired_active.set(self.tally.active);
        s.expired_tcp_end.set(self.tally.tcp_end);
        s.evicted_pressure.set(self.tally.pressure);
        s.flushed.set(self.tally.flushed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(src: u8, sport: u16, flags: u8) -> FrameFacts {
        FrameFacts {
            vlan: 7,
            addrs: L3Addrs::V4 {
                src: [10, 0, 0, src],
                dst: [192, 0, 2, 1],
            },
            ip_len: 100,
            protocol: 6,
            tos: 0,
            src_port: sport,
            dst_port: 443,
            tcp_flags: flags,
            tcp_seq: 0,
            tcp_ack: 0,
            later_fragment: false,
            has_l4: true,
        }
    }

    fn cache(max: usize) -> FlowCache {
        let cfg = FlowCacheConfig {
            max_flows: max,
            idle_timeout_ms: 15_000,
            active_timeout_ms: 60_000,
        };
        FlowCache::new(&cfg, Arc::new(FlowStats::default()))
    }

    /// Every key still in the table is reachable from its home slot.
    fn check_invariants(c: &FlowCache) {
        let mut n = 0;
        for i in 0..c.capacity() {
            let t = c.tags[i];
            if t == 0 {
                continue;
            }
            n += 1;
            let mut j = t as usize & c.mask;
            while j != i {
                assert_ne!(c.tags[j], 0, "hole between home and slot {i}");
                j = (j + 1) & c.mask;
            }
        }
        assert_eq!(n, c.len);
    }

    #[test]
    fn aggregates_one_flow() {
        let mut c = cache(16);
        let mut out = Vec::new();
        let f = facts(1, 1000, 0x02);
        assert!(c.update(3, &f, 100, 0, 1_000, &mut |r| out.push(r)));
        assert!(c.update(3, &facts(1, 1000, 0x10), 50, 1, 1_500, &mut |r| out.push(r)));
        assert!(out.is_empty());
        assert_eq!(c.len(), 1);
        c.flush_all(&mut |r| out.push(r));
        assert_eq!(out.len(), 1);
        let r = out[0];
        assert_eq!(
            (
                r.packets,
                r.bytes,
                r.first_ms,
                r.last_ms,
                r.tcp_flags,
                r.direction
            ),
            (2, 150, 1_000, 1_500, 0x12, 0)
        );
        assert_eq!(r.key, FlowKey::from_facts(3, &f));
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn skips_frames_without_addresses() {
        let mut c = cache(16);
        let f = FrameFacts::default();
        assert!(!c.update(0, &f, 60, 0, 1, &mut |_| panic!("no export")));
        assert!(c.is_empty());
    }

    #[test]
    fn tcp_fin_and_rst_export_at_once() {
        let mut c = cache(16);
        let mut out = Vec::new();
        c.update(0, &facts(1, 1, 0x10), 60, 0, 10, &mut |r| out.push(r));
        c.update(0, &facts(1, 1, 0x11), 60, 0, 20, &mut |r| out.push(r));
        c.update(0, &facts(2, 1, 0x04), 60, 0, 30, &mut |r| out.push(r));
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].packets, out[0].tcp_flags), (2, 0x11));
        assert_eq!((out[1].packets, out[1].tcp_flags), (1, 0x04));
        assert!(c.is_empty());
        assert_eq!(c.tally.tcp_end, 2);
    }

    #[test]
    fn idle_and_active_timeouts() {
        let mut c = cache(1024);
        let mut out = Vec::new();
        c.expire(0, &mut |r| out.push(r));
        c.update(0, &facts(1, 1, 0), 100, 0, 0, &mut |r| out.push(r));
        c.update(0, &facts(2, 1, 0), 100, 0, 0, &mut |r| out.push(r));
        // Flow 2 keeps sending every 10 s; flow 1 goes idle.
        for t in (10_000..=70_000).step_by(10_000) {
            c.update(0, &facts(2, 1, 0), 100, 0, t, &mut |r| out.push(r));
            c.expire(t, &mut |r| out.push(r));
        }
        // Flow 1 idle (exported at the first sweep after 15 s), flow 2 cut
        // once at 60 s by its own update.
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0].key.addrs, facts(1, 1, 0).addrs);
        assert_eq!(out[0].packets, 1);
        assert_eq!(out[1].key.addrs, facts(2, 1, 0).addrs);
        assert_eq!(
            (out[1].packets, out[1].first_ms, out[1].last_ms),
            (6, 0, 50_000)
        );
        assert_eq!((c.tally.idle, c.tally.active), (1, 1));
        c.flush_all(&mut |r| out.push(r));
        assert_eq!(
            (out[2].packets, out[2].first_ms, out[2].last_ms),
            (2, 60_000, 70_000)
        );
    }

    #[test]
    fn expire_scans_in_proportion_to_time() {
        let mut c = cache(1024); // 2048 slots, sweep 1 s
        let mut out = Vec::new();
        for s in 0..200u16 {
            c.update(0, &facts(1, s, 0), 1, 0, 0, &mut |r| out.push(r));
        }
        c.expire(20_000, &mut |r| out.push(r));
        // First call only sets the clock.
        assert!(out.is_empty());
        c.expire(20_250, &mut |r| out.push(r));
        let quarter = out.len();
        assert!(quarter > 0 && quarter < 200, "{quarter}");
        c.expire(21_250, &mut |r| out.push(r));
        assert_eq!(out.len(), 200);
        check_invariants(&c);
        assert_eq!(c.stats.flows.get(), 0);
        assert_eq!(c.stats.expired_idle.get(), 200);
    }

    #[test]
    fn pressure_evicts_and_counts() {
        let mut c = cache(100);
        let mut out = Vec::new();
        for s in 0..1000u16 {
            c.update(
                0,
                &facts((s % 7) as u8, s, 0),
                1,
                0,
                u64::from(s),
                &mut |r| out.push(r),
            );
            assert!(c.len() <= 100);
        }
        check_invariants(&c);
        assert_eq!(out.len(), 900);
        assert_eq!(c.tally.pressure, 900);
        // The victims are old: a flow just inserted is never the one evicted.
        let newest = out.iter().map(|r| r.last_ms).max().unwrap_or(0);
        assert!(newest < 999);
        c.flush_all(&mut |r| out.push(r));
        assert_eq!(out.iter().map(|r| r.packets).sum::<u64>(), 1000);
    }

    #[test]
    fn removal_keeps_probe_runs_reachable() {
        // Many inserts and deletions through FIN in a small table.
        let mut c = cache(64);
        let mut exported = 0u64;
        let mut x = 12345u32;
        for n in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let flags = if x % 5 == 0 { TCP_FIN } else { 0 };
            c.update(
                0,
                &facts((x % 3) as u8, (x >> 8) as u16 % 200, flags),
                1,
                0,
                n,
                &mut |r| exported += r.packets,
            );
            if n % 1000 == 0 {
                check_invariants(&c);
            }
        }
        check_invariants(&c);
        c.flush_all(&mut |r| exported += r.packets);
        assert_eq!(exported, 20_000);
    }

    #[test]
    fn times_stay_exact_across_epoch_rebases() {
        let mut c = cache(16);
        let mut out = Vec::new();
        let t0 = 1_700_000_000_123u64;
        // The first frame sets the epoch; 12.4 days later slot times pass
        // 2^31 ms and the table is rebased under a flow that spans it.
        c.update(0, &facts(1, 1, 0), 10, 0, t0, &mut |r| out.push(r));
        c.expire(t0, &mut |r| out.push(r));
        let t = t0 + (1 << 30) - 500;
        c.update(0, &facts(2, 1, 0), 10, 0, t, &mut |r| out.push(r));
        let epoch = c.epoch_ms;
        c.update(0, &facts(2, 1, 0), 10, 0, t + 1_000, &mut |r| out.push(r));
        assert!(c.epoch_ms > epoch, "rebased");
        c.flush_all(&mut |r| out.push(r));
        let flow2: Vec<_> = out
            .iter()
            .filter(|r| r.key.addrs == facts(2, 1, 0).addrs)
            .map(|r| (r.first_ms, r.last_ms, r.packets))
            .collect();
        assert_eq!(flow2, [(t, t + 1_000, 2)]);
    }

    #[test]
    fn packet_count_is_cut_before_it_wraps() {
        let mut c = cache(16);
        let mut out = Vec::new();
        c.update(0, &facts(1, 1, 0), 10, 0, 5, &mut |r| out.push(r));
        let i = (0..c.capacity()).find(|&i| c.tags[i] != 0).unwrap_or(0);
        c.slots[i].packets = u32::MAX;
        c.update(0, &facts(1, 1, 0), 10, 0, 6, &mut |r| out.push(r));
        c.flush_all(&mut |r| out.push(r));
        let packets: Vec<u64> = out.iter().map(|r| r.packets).collect();
        assert_eq!(packets, [u64::from(u32::MAX), 1]);
        assert_eq!(c.tally.active, 1);
    }

    #[test]
    fn enqueued_frames_count_like_immediate_ones() {
        // No pressure here: eviction victims depend on the table's seed.
        let mut now = cache(1024);
        let mut later = cache(1024);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for n in 0..5_000u64 {
            let flags = if n % 13 == 0 { TCP_FIN } else { 0 };
            let f = facts((n % 5) as u8, (n % 97) as u16, flags);
            now.update(0, &f, n, 1, n / 64, &mut |r| a.push(r));
            later.enqueue(0, &f, n, 1, n / 64, &mut |r| b.push(r));
            if n % 64 == 63 {
                later.drain(&mut |r| b.push(r));
            }
        }
        now.flush_all(&mut |r| a.push(r));
        later.flush_all(&mut |r| b.push(r));
        let key = |r: &FlowRecord| format!("{r:?}");
        a.sort_by_key(key);
        b.sort_by_key(key);
        assert_eq!(a, b);
        assert_eq!(a.iter().map(|r| r.packets).sum::<u64>(), 5_000);
    }

    #[test]
    fn v6_and_v4_keys_differ() {
        let mut c = cache(16);
        let mut f6 = facts(1, 1, 0);
        f6.addrs = L3Addrs::V6 {
            src: [1; 16],
            dst: [2; 16],
        };
        c.update(0, &facts(1, 1, 0), 1, 0, 0, &mut |_| {});
        c.update(0, &f6, 1, 0, 0, &mut |_| {});
        c.update(1, &f6, 1, 0, 0, &mut |_| {});
        assert_eq!(c.len(), 3);
        // The same 8 address bytes as IPv4 and as IPv6 are two flows.
        let mut a = facts(1, 1, 0);
        a.addrs = L3Addrs::V4 {
            src: [10, 0, 0, 1],
            dst: [192, 0, 2, 1],
        };
        let mut b = a;
        b.addrs = L3Addrs::V6 {
            src: [10, 0, 0, 1, 192, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0],
            dst: [0; 16],
        };
        let mut out = Vec::new();
        c.flush_all(&mut |_| {});
        c.update(0, &a, 1, 0, 0, &mut |r| out.push(r));
        c.update(0, &b, 1, 0, 0, &mut |r| out.push(r));
        c.flush_all(&mut |r| out.push(r));
        let mut keys: Vec<_> = out.iter().map(|r| r.key.addrs).collect();
        keys.sort_by_key(|k| matches!(k, L3Addrs::V6 { .. }));
        assert_eq!(keys, [a.addrs, b.addrs]);
    }
    /// Flow records (flow input): their own packets, bytes and times; a
    /// merge keeps the earliest start and latest end; router times out of
    /// range become the receive time; a record too big for a slot goes
    /// straight out; nothing is lost.
    #[test]
    fn flow_records_add_their_packets_bytes_and_times() {
        let mut c = cache(16);
        let mut out = Vec::new();
        let now = 1_700_000_100_000;
        let key = FlowKey::from_facts(7, &facts(1, 1000, 0));
        let counts = |packets, bytes, tcp_flags| FlowCounts {
            packets,
            bytes,
            tcp_flags,
            direction: 1,
        };
        let t = |a: u64, b: u64| Some((now - a, now - b));
        assert!(c.add_flow(
            &key,
            counts(10, 5000, 0x02),
            t(9_000, 5_000),
            now,
            &mut |r| out.push(r)
        ));
        assert!(c.add_flow(
            &key,
            counts(3, 300, 0x10),
            t(12_000, 8_000),
            now,
            &mut |r| out.push(r)
        ));
        assert!(out.is_empty());
        assert_eq!(c.len(), 1);
        c.flush_all(&mut |r| out.push(r));
        let r = out.pop().unwrap();
        assert_eq!(
            (r.packets, r.bytes, r.tcp_flags, r.direction, r.key),
            (13, 5300, 0x12, 1, key)
        );
        assert_eq!((r.first_ms, r.last_ms), (now - 12_000, now - 5_000));
        // No times, a time 2 days old, reversed times: the receive time.
        for times in [None, Some((1, 1)), t(1000, 2000)] {
            c.add_flow(&key, counts(1, 40, 0), times, now, &mut |r| out.push(r));
            c.flush_all(&mut |r| out.push(r));
            let r = out.pop().unwrap();
            let want = if times == t(1000, 2000) {
                now - 2000
            } else {
                now
            };
            assert_eq!((r.first_ms, r.last_ms), (want, want), "{times:?}");
        }
        // More packets than a slot holds: exported as it is, at once.
        let huge = u64::from(u32::MAX) + 5;
        c.add_flow(&key, counts(huge, huge * 40, 0), None, now, &mut |r| {
            out.push(r)
        });
        assert_eq!((out.len(), out[0].packets), (1, huge));
        // Two records whose sum would wrap the count: cut, none lost.
        out.clear();
        c.add_flow(
            &key,
            counts(u64::from(u32::MAX) - 1, 1, 0),
            None,
            now,
            &mut |r| out.push(r),
        );
        c.add_flow(&key, counts(7, 1, 0), None, now, &mut |r| out.push(r));
        c.flush_all(&mut |r| out.push(r));
        assert_eq!(
            out.iter().map(|r| r.packets).sum::<u64>(),
            u64::from(u32::MAX) + 6
        );
        // FIN: out at once; no addresses: refused.
        out.clear();
        c.add_flow(&key, counts(2, 80, 0x11), None, now, &mut |r| out.push(r));
        assert_eq!((out.len(), c.len()), (1, 0));
        let none = FlowKey::default();
        assert!(
            !c.add_flow(&none, counts(1, 1, 0), None, now, &mut |_| panic!(
                "no export"
            ))
        );
        check_invariants(&c);
    }

    /// A full cache evicts for a flow record as for a frame.
    #[test]
    fn flow_records_respect_max_flows() {
        let mut c = cache(4);
        let mut out = Vec::new();
        let mut packets = 0;
        for i in 0..40u8 {
            let key = FlowKey::from_facts(1, &facts(i, 1, 0));
            let n = u64::from(i) + 1;
            packets += n;
            c.add_flow(
                &key,
                FlowCounts {
                    packets: n,
                    bytes: n,
                    ..FlowCounts::default()
                },
                None,
                5,
                &mut |r| out.push(r),
            );
            assert!(c.len() <= 4);
        }
        c.flush_all(&mut |r| out.push(r));
        assert_eq!(out.iter().map(|r| r.packets).sum::<u64>(), packets);
        check_invariants(&c);
    }
}

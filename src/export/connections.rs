//! The busiest connections (`[connections] top = N`): a bounded view of
//! the flow caches, built on each worker during the cache's expiry sweep
//! and merged at scrape.
//!
//! ```text
//! worker q: FlowCache::expire_with ── every kept flow ──► TopView (min-heap of N)
//!           sweep wraps (once per second) ──► publish: try_lock, swap Vec ──┐
//! scrape:   ConnectionsCollector: lock each worker's list, sum by labels,  ◄┘
//!           keep the N largest, never lower a shown counter
//! ```
//!
//! - Ranking: the bytes the cache holds for the flow, i.e. since it
//!   entered the cache or its last active-timeout cut (60 s by default):
//!   the bytes of the last minute at most. Just after a cut a busy
//!   connection ranks by its new piece only.
//! - Values: the connection's totals since it entered the view: the cut
//!   pieces exported while it was shown ("carry") plus what the cache
//!   holds now. A connection that leaves the view and comes back starts
//!   again (a counter reset to Prometheus).
//! - A connection leaves the page when it has been idle for
//!   `connections.idle_timeout`, or leaves the flow cache (TCP FIN/RST,
//!   cache pressure, `netflow.idle_timeout` when flow export shares it).
//!
//! The per-frame path is the flow cache's and nothing more; the view costs
//! a comparison per flow swept (a copy and the heap only for flows that
//! enter the top N so far), and per sweep a sort, the carry map and a
//! publish of at most N connections. Allocates only at
//! construction; the worker never waits for a scrape (`try_lock`; a
//! publish that finds the scrape holding the list is skipped).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;

use super::cache::{FlowRef, SweepVisitor};
use super::{FlowKey, FlowRecord};
use crate::metrics::catalogue::{self as cat, counter, label};
use crate::shard::Direction;
use crate::wire::L3Addrs;

/// Most connections `[connections] top` may ask for.
pub const MAX_TOP: usize = 1000;

/// One connection of a worker's published top list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Conn {
    pub key: FlowKey,
    /// `Direction as u8` of the flow's first frame.
    pub direction: u8,
    /// Totals since the connection entered the view.
    pub bytes: u64,
    pub packets: u64,
    /// What it is ranked by (see the module docs).
    pub rank: u64,
}

/// A worker's last published top list, read at scrape.
pub type Published = Arc<Mutex<Vec<Conn>>>;

/// Pieces of a shown connection that the cache exported (active timeout).
#[derive(Clone, Copy, Default)]
struct Carry {
    bytes: u64,
    packets: u64,
}

/// One worker's top-N candidates of the sweep under way and the carry of
/// the connections it shows. See the module docs.
pub struct TopView {
    top: usize,
    idle_ms: u64,
    heap: BinaryHeap<Reverse<(u64, usize)>>,
    store: Vec<Conn>,
    carry: HashMap<FlowKey, Carry>,
    next: HashMap<FlowKey, Carry>,
    out: Vec<Conn>,
    shared: Published,
}

impl TopView {
    /// A view of `top` (1..=[`MAX_TOP`]) connections; allocates all it needs.
    pub fn new(top: usize, idle_ms: u64) -> TopView {
        let top = top.clamp(1, MAX_TOP);
        TopView {
            top,
            idle_ms,
            heap: BinaryHeap::with_capacity(top),
            store: Vec::with_capacity(top),
            carry: HashMap::with_capacity(top),
            next: HashMap::with_capacity(top),
            out: Vec::with_capacity(top),
            shared: Arc::new(Mutex::new(Vec::with_capacity(top))),
        }
    }

    /// The list the scrape reads.
    pub fn published(&self) -> Published {
        self.shared.clone()
    }

    /// A record the cache exported: keeps the count of a shown connection.
    #[inline]
    pub fn exported(&mut self, r: &FlowRecord) {
        if self.carry.is_empty() {
            return;
        }
        if let Some(c) = self.carry.get_mut(&r.key) {
            c.bytes += r.bytes;
            c.packets += r.packets;
        }
    }

    /// Forgets the candidates of the sweep under way (before `visit_all`).
    pub fn restart(&mut self) {
        self.heap.clear();
        self.store.clear();
    }

    fn min_rank(&self) -> Option<u64> {
        (self.heap.len() == self.top).then(|| self.heap.peek().map_or(0, |r| r.0 .0))
    }
}

impl SweepVisitor for TopView {
    fn export(&mut self, r: FlowRecord) {
        self.exported(&r);
    }

    #[inline]
    fn flow(&mut self, f: FlowRef<'_>) {
        if f.idle_ms() >= self.idle_ms {
            return;
        }
        let min = self.min_rank();
        if min.is_some_and(|m| f.bytes() <= m) {
            return;
        }
        let r = f.record();
        let conn = Conn {
            key: r.key,
            direction: r.direction,
            bytes: r.bytes,
            packets: r.packets,
            rank: r.bytes,
        };
        match min {
            None => {
                self.heap.push(Reverse((conn.rank, self.store.len())));
                self.store.push(conn);
            }
            Some(m) if conn.rank > m => {
                if let Some(Reverse((_, at))) = self.heap.pop() {
                    self.store[at] = conn;
                    self.heap.push(Reverse((conn.rank, at)));
                }
            }
            Some(_) => {}
        }
    }

    fn swept(&mut self) {
        // The next carry: the shown connections, once each (a flow moved by
        // a deletion may have been offered twice: keep the larger).
        self.next.clear();
        self.out.clear();
        self.store.sort_unstable_by_key(|c| Reverse(c.rank));
        for c in &self.store {
            if self.next.contains_key(&c.key) {
                continue;
            }
            let carry = self.carry.get(&c.key).copied().unwrap_or_default();
            self.next.insert(c.key, carry);
            self.out.push(Conn {
                bytes: c.bytes + carry.bytes,
                packets: c.packets + carry.packets,
                ..*c
            });
        }
        std::mem::swap(&mut self.carry, &mut self.next);
        if let Ok(mut list) = self.shared.try_lock() {
            std::mem::swap(&mut *list, &mut self.out);
        }
        self.restart();
    }
}

/// The labels of a connection's series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Labels {
    addrs: L3Addrs,
    protocol: u8,
    src_port: u16,
    dst_port: u16,
    direction: u8,
}

/// `xdpacct_connection_*` families: the workers' lists merged.
pub struct ConnectionsCollector {
    workers: Vec<Published>,
    top: usize,
    /// The values shown at the last scrape, so that a shown counter never
    /// goes down (a connection split over two workers' lists may appear in
    /// one list only for a moment).
    shown: Mutex<HashMap<Labels, (u64, u64)>>,
    descs: Vec<Desc>,
}

impl ConnectionsCollector {
    pub fn new(workers: Vec<Published>, top: usize) -> Self {
        ConnectionsCollector {
            workers,
            top,
            shown: Mutex::default(),
            descs: vec![cat::CONNECTION_BYTES.desc(), cat::CONNECTION_PACKETS.desc()],
        }
    }

    /// The connections of the page, largest rank first: (labels, bytes, packets).
    fn merged(&self) -> Vec<(Labels, u64, u64)> {
        let mut sum: HashMap<Labels, (u64, u64, u64)> = HashMap::new();
        for w in &self.workers {
            let list = w.lock().unwrap_or_else(|p| p.into_inner());
            for c in list.iter() {
                let k = Labels {
                    addrs: c.key.addrs,
                    protocol: c.key.protocol,
                    src_port: c.key.src_port,
                    dst_port: c.key.dst_port,
                    direction: c.direction,
                };
                let e = sum.entry(k).or_default();
                e.0 += c.rank;
                e.1 += c.bytes;
                e.2 += c.packets;
            }
        }
        let mut all: Vec<_> = sum.into_iter().collect();
        all.sort_unstable_by_key(|(_, (rank, bytes, _))| Reverse((*rank, *bytes)));
        all.truncate(self.top);
        let mut shown = self.shown.lock().unwrap_or_else(|p| p.into_inner());
        let mut page = Vec::with_capacity(all.len());
        let mut now = HashMap::with_capacity(all.len());
        for (k, (_, bytes, packets)) in all {
            let (b0, p0) = shown.get(&k).copied().unwrap_or_default();
            let v = (bytes.max(b0), packets.max(p0));
            now.insert(k, v);
            page.push((k, v.0, v.1));
        }
        *shown = now;
        page
    }
}

fn ip(a: L3Addrs) -> (String, String) {
    match a {
        L3Addrs::V4 { src, dst } => (IpAddr::from(src).to_string(), IpAddr::from(dst).to_string()),
        L3Addrs::V6 { src, dst } => (IpAddr::from(src).to_string(), IpAddr::from(dst).to_string()),
        L3Addrs::None => (String::new(), String::new()),
    }
}

fn protocol(p: u8) -> String {
    crate::shard::PROTOCOLS
        .iter()
        .find(|(n, _)| *n == p)
        .map_or_else(|| p.to_string(), |(_, name)| (*name).to_string())
}

fn direction(d: u8) -> &'static str {
    Direction::ALL
        .iter()
        .find(|x| **x as u8 == d)
        .map_or("unknown", |x| x.as_str())
}

impl Collector for ConnectionsCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut bytes = Vec::new();
        let mut packets = Vec::new();
        for (k, b, p) in self.merged() {
            let (src, dst) = ip(k.addrs);
            let labels = vec![
                label("src", src),
                label("dst", dst),
                label("protocol", protocol(k.protocol)),
                label("src_port", k.src_port.to_string()),
                label("dst_port", k.dst_port.to_string()),
                label("direction", direction(k.direction)),
            ];
            bytes.push(counter(labels.clone(), b));
            packets.push(counter(labels, p));
        }
        vec![
            cat::CONNECTION_BYTES.family(bytes),
            cat::CONNECTION_PACKETS.family(packets),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::{FlowCache, FlowCacheConfig, FlowStats};
    use crate::wire::FrameFacts;

    fn facts(host: u8, sport: u16) -> FrameFacts {
        FrameFacts {
            addrs: L3Addrs::V4 {
                src: [10, 0, 0, host],
                dst: [192, 0, 2, 1],
            },
            protocol: 17,
            src_port: sport,
            dst_port: 53,
            has_l4: true,
            ..FrameFacts::default()
        }
    }

    fn cache(idle_ms: u64, active_ms: u64) -> FlowCache {
        let cfg = FlowCacheConfig {
            max_flows: 1024,
            idle_timeout_ms: idle_ms,
            active_timeout_ms: active_ms,
        };
        FlowCache::new(&cfg, Arc::new(FlowStats::default()))
    }

    fn page(c: &ConnectionsCollector) -> Vec<(u16, u64, u64)> {
        let mut v: Vec<_> = c
            .merged()
            .into_iter()
            .map(|(k, b, p)| (k.src_port, b, p))
            .collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn shows_the_n_biggest_with_their_totals() {
        let mut c = cache(600_000, 600_000);
        let mut v = TopView::new(3, 60_000);
        let col = ConnectionsCollector::new(vec![v.published()], 3);
        // Connection s sends s frames of 100 bytes.
        for s in 1..=10u16 {
            for _ in 0..s {
                c.update(0, &facts(1, s), 100, 1, 1_000, &mut |_| {});
            }
        }
        c.visit_all(1_000, &mut v);
        assert_eq!(
            page(&col),
            [(8, 800, 8), (9, 900, 9), (10, 1000, 10)],
            "the three biggest"
        );
    }

    #[test]
    fn the_expiry_sweep_publishes_and_idle_connections_leave() {
        // Fake clock: the cache keeps flows for 600 s, the view 30 s.
        let mut c = cache(600_000, 600_000);
        let mut v = TopView::new(2, 30_000);
        let col = ConnectionsCollector::new(vec![v.published()], 2);
        let mut t = 1_000_000u64;
        c.expire_with(t, &mut v);
        for s in 1..=3u16 {
            c.update(0, &facts(1, s), 1000 * u64::from(s), 1, t, &mut |_| {});
        }
        // One second later the sweep has covered the whole table.
        t += 1_000;
        c.expire_with(t, &mut v);
        assert_eq!(page(&col), [(2, 2000, 1), (3, 3000, 1)]);
        // Flow 1 keeps sending, 2 and 3 go quiet: after 30 s they leave.
        for _ in 0..40 {
            t += 1_000;
            c.update(0, &facts(1, 1), 10, 1, t, &mut |_| {});
            c.expire_with(t, &mut v);
        }
        assert_eq!(page(&col), [(1, 1400, 41)]);
        assert_eq!(c.len(), 3, "still in the cache");
    }

    #[test]
    fn counters_survive_active_timeout_cuts() {
        // Active timeout 5 s: the cache cuts the flow, the view carries it.
        let mut c = cache(600_000, 5_000);
        let mut v = TopView::new(1, 60_000);
        let col = ConnectionsCollector::new(vec![v.published()], 1);
        let mut t = 0u64;
        c.expire_with(t, &mut v);
        let mut last = 0;
        for n in 1..=30u64 {
            t += 1_000;
            c.update(0, &facts(1, 7), 100, 0, t, &mut |r| v.exported(&r));
            c.expire_with(t, &mut v);
            let p = page(&col);
            assert_eq!(p.len(), 1);
            assert!(p[0].1 >= last, "never goes down");
            last = p[0].1;
            // Everything up to the frame before the sweep (shown since n=1).
            assert_eq!(p[0].1, n * 100, "at {n}");
        }
    }

    #[test]
    fn workers_lists_are_summed_and_bounded() {
        let a = TopView::new(2, 1);
        let b = TopView::new(2, 1);
        let conn = |sport: u16, bytes: u64| Conn {
            key: FlowKey {
                addrs: facts(1, sport).addrs,
                protocol: 17,
                src_port: sport,
                dst_port: 53,
                ..FlowKey::default()
            },
            direction: 1,
            bytes,
            packets: 1,
            rank: bytes,
        };
        *a.published().lock().unwrap() = vec![conn(1, 100), conn(2, 50)];
        *b.published().lock().unwrap() = vec![conn(1, 10), conn(3, 70)];
        let col = ConnectionsCollector::new(vec![a.published(), b.published()], 2);
        assert_eq!(page(&col), [(1, 110, 2), (3, 70, 1)]);
        // Worker b's part of connection 1 is gone for a moment: not lower.
        *b.published().lock().unwrap() = vec![conn(3, 80)];
        assert_eq!(page(&col), [(1, 110, 2), (3, 80, 1)]);
        let fams = col.collect();
        assert_eq!(fams.len(), 2);
        assert!(fams.iter().all(|f| f.get_metric().len() == 2));
    }
}

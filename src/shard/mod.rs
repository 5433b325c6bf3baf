//! Shards: one per worker, holding every counter that worker writes.
//!
//! A shard's counters are written by its worker alone (relaxed load + store)
//! and read by the scraper without locks, through the snapshot methods of
//! [`Shard`] (plain values; the fields are private to this module tree); the
//! scraper sums all shards at scrape time. Shards are preallocated;
//! accounting a frame never allocates. No unsafe.

pub mod counter;
pub mod flow;
pub mod hosts;
pub mod peers;
pub mod worker;

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::wire::WireError;
pub use counter::{ByDirection, Count, Counter, InOut, PacketsBytes};
pub use hosts::{Direction, Tables};

/// Upper bounds of `xdpacct_packet_size_bytes` (wire length); +Inf follows.
pub const SIZE_BUCKETS: [u32; 8] = [64, 128, 256, 512, 1024, 1518, 2048, 9216];

/// Protocols with their own `protocol` label value; the rest are `other`.
pub const PROTOCOLS: [(u8, &str); 16] = [
    (1, "icmp"),
    (2, "igmp"),
    (4, "ipip"),
    (6, "tcp"),
    (17, "udp"),
    (41, "ipv6"),
    (47, "gre"),
    (50, "esp"),
    (51, "ah"),
    (58, "icmpv6"),
    (89, "ospf"),
    (103, "pim"),
    (112, "vrrp"),
    (115, "l2tp"),
    (132, "sctp"),
    (136, "udplite"),
];
pub const PROTO_OTHER: usize = PROTOCOLS.len();
pub const PROTO_NON_IP: usize = PROTOCOLS.len() + 1;
pub const PROTO_SLOTS: usize = PROTOCOLS.len() + 2;

/// `protocol` label of a protocol slot.
pub fn protocol_name(slot: usize) -> &'static str {
    match slot {
        PROTO_OTHER => "other",
        PROTO_NON_IP => "non_ip",
        i => PROTOCOLS[i].1,
    }
}

/// IP protocol number → protocol slot, a 256-byte table built at compile time.
pub static PROTO_SLOT: [u8; 256] = {
    let mut t = [PROTO_OTHER as u8; 256];
    let mut i = 0;
    while i < PROTOCOLS.len() {
        t[PROTOCOLS[i].0 as usize] = i as u8;
        i += 1;
    }
    t
};

/// Per-host counters, from the host's point of view: `In` is traffic to the
/// host, `Out` traffic from it.
pub type HostCounters = InOut<PacketsBytes>;

/// The tables of one configuration generation and this shard's host slots
/// laid out for them. Swapped whole on reload.
#[derive(Debug)]
pub struct HostSlots {
    pub tables: Arc<Tables>,
    pub slots: Box<[HostCounters]>,
}

impl HostSlots {
    /// Zeroed slots for `tables`. Aborts when out of memory; see
    /// [`try_new`](Self::try_new).
    pub fn new(tables: Arc<Tables>) -> Self {
        let slots = crate::memory::filled_with(tables.slots, HostCounters::default);
        HostSlots { tables, slots }
    }

    /// Zeroed slots for `tables`, or an error when they do not fit in memory.
    pub fn try_new(tables: Arc<Tables>) -> Result<Self, crate::memory::OutOfMemory> {
        let slots = crate::memory::try_filled_with(tables.slots, HostCounters::default)?;
        Ok(HostSlots { tables, slots })
    }

    /// Every slot's counts, in slot order.
    pub fn counts(&self) -> impl ExactSizeIterator<Item = InOut<Count>> + '_ {
        self.slots.iter().map(|h| h.load())
    }
}

/// Where a shard's frames come from: one (interface, queue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardOrigin {
    pub interface: Arc<str>,
    pub queue: u32,
}

/// All counters of one worker. Written by the worker (`worker.rs`), read
/// by the scrape through [`snapshot`](Self::snapshot) and the per-area
/// methods below.
#[derive(Debug)]
pub struct Shard {
    origin: ShardOrigin,
    traffic: ByDirection<PacketsBytes>,
    /// Per `SIZE_BUCKETS` bucket (not cumulative) then +Inf; and the sum of sizes.
    sizes: [Counter; SIZE_BUCKETS.len() + 1],
    size_sum: Counter,
    /// By direction, then protocol slot.
    protocols: ByDirection<[PacketsBytes; PROTO_SLOTS]>,
    /// By `WireError` variant.
    parse_errors: [Counter; WireError::COUNT],
    /// The host slots of the current table generation. The worker loads it
    /// once per batch; a reload swaps it ([`swap_hosts`](Self::swap_hosts)).
    /// Public for the benches and tests that call `worker::account`
    /// directly; prefer [`hosts`](Self::hosts).
    pub hosts: ArcSwap<HostSlots>,
    /// By the remote side's AS number.
    peer_as: peers::AsCounters,
    /// Frames with no remote AS (no IP, internal or external, or an address
    /// outside the table), by direction.
    as_unattributed: ByDirection<PacketsBytes>,
    /// By stable network id.
    networks: Box<[InOut<PacketsBytes>]>,
    /// A flow-fed shard's interface counters (per exporter and ifIndex);
    /// `None` for a capture shard, whose interface is its origin's.
    flow: Option<flow::FlowInterfaces>,
}

/// The counters of a shard that every scrape shows, as plain values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardSnapshot {
    pub traffic: ByDirection<Count>,
    /// By direction, then protocol slot.
    pub protocols: ByDirection<[Count; PROTO_SLOTS]>,
    /// Frames per `SIZE_BUCKETS` bucket (not cumulative), then +Inf.
    pub sizes: [u64; SIZE_BUCKETS.len() + 1],
    /// Sum of the frames' wire lengths.
    pub size_sum: u64,
    /// By `WireError` variant.
    pub parse_errors: [u64; WireError::COUNT],
}

impl std::ops::AddAssign<&ShardSnapshot> for ShardSnapshot {
    /// Sums two shards (of one interface, for example).
    fn add_assign(&mut self, o: &ShardSnapshot) {
        self.traffic += &o.traffic;
        for (d, p) in o.protocols.iter() {
            for (a, b) in self.protocols[d].iter_mut().zip(p) {
                *a += *b;
            }
        }
        for (a, b) in self.sizes.iter_mut().zip(&o.sizes) {
            *a += b;
        }
        self.size_sum += o.size_sum;
        for (a, b) in self.parse_errors.iter_mut().zip(&o.parse_errors) {
            *a += b;
        }
    }
}

impl Shard {
    /// A shard with zeroed counters. Aborts when out of memory; see
    /// [`try_new`](Self::try_new).
    pub fn new(origin: ShardOrigin, tables: Arc<Tables>) -> Self {
        Shard::with_hosts(origin, HostSlots::new(tables))
    }

    /// A shard with zeroed counters, or an error when its host slots do not
    /// fit in memory.
    pub fn try_new(
        origin: ShardOrigin,
        tables: Arc<Tables>,
    ) -> Result<Self, crate::memory::OutOfMemory> {
        Ok(Shard::with_hosts(origin, HostSlots::try_new(tables)?))
    }

    fn with_hosts(origin: ShardOrigin, hosts: HostSlots) -> Self {
        Shard {
            origin,
            traffic: Default::default(),
            sizes: Default::default(),
            size_sum: Counter::default(),
            protocols: Default::default(),
            parse_errors: Default::default(),
            hosts: ArcSwap::from_pointee(hosts),
            peer_as: Default::default(),
            as_unattributed: Default::default(),
            networks: (0..peers::MAX_NETWORKS)
                .map(|_| Default::default())
                .collect(),
            flow: None,
        }
    }

    /// A shard fed by flow records (the collector): its interface counters
    /// are per (exporter, ifIndex), up to `max_interfaces` of them.
    pub fn new_flow(origin: ShardOrigin, tables: Arc<Tables>, max_interfaces: usize) -> Self {
        Shard {
            flow: Some(flow::FlowInterfaces::new(max_interfaces)),
            ..Shard::new(origin, tables)
        }
    }

    /// The interface counters of a flow-fed shard.
    pub fn flow_interfaces(&self) -> Option<&flow::FlowInterfaces> {
        self.flow.as_ref()
    }

    /// Where this shard's frames come from.
    pub fn origin(&self) -> &ShardOrigin {
        &self.origin
    }

    /// Traffic, protocols, sizes and parse errors, read now.
    pub fn snapshot(&self) -> ShardSnapshot {
        ShardSnapshot {
            traffic: self.traffic.load(),
            protocols: self.protocols.map(|p| std::array::from_fn(|i| p[i].get())),
            sizes: std::array::from_fn(|i| self.sizes[i].get()),
            size_sum: self.size_sum.get(),
            parse_errors: std::array::from_fn(|i| self.parse_errors[i].get()),
        }
    }

    /// The current host table generation and its slots.
    pub fn hosts(&self) -> Arc<HostSlots> {
        self.hosts.load_full()
    }

    /// Puts in a new host table generation; returns the old one (the worker
    /// may still hold it for the rest of its batch).
    pub fn swap_hosts(&self, new: Arc<HostSlots>) -> Arc<HostSlots> {
        self.hosts.swap(new)
    }

    /// (AS number, counts) of every AS this shard has seen, in table order.
    pub fn for_each_as(&self, f: impl FnMut(u32, InOut<Count>)) {
        self.peer_as.for_each(f)
    }

    /// Frames with no AS series of their own, by direction: no remote AS,
    /// and (in and out) ASes that did not fit the shard's AS table.
    pub fn as_unattributed(&self) -> ByDirection<Count> {
        let mut u = self.as_unattributed.load();
        for (d, o) in self.peer_as.overflow().iter() {
            u[d] += *o;
        }
        u
    }

    /// (stable network id, counts) of every network with traffic.
    pub fn networks(&self) -> impl Iterator<Item = (usize, InOut<Count>)> + '_ {
        self.networks
            .iter()
            .enumerate()
            .map(|(id, n)| (id, n.load()))
            .filter(|(_, c)| !c.is_zero())
    }
}

//! Shards: one per worker, holding every counter that worker writes.
//!
//! A shard's counters are written by its worker alone (relaxed load + store)
//! and read by the scraper without locks; the scraper sums all shards at
//! scrape time. Shards are preallocated; accounting a frame never allocates.

pub mod counter;
pub mod hosts;
pub mod worker;

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::wire::WireError;
pub use counter::{Counter, PacketsBytes};
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

/// Per-host counters, from the host's point of view.
#[derive(Debug, Default)]
pub struct HostCounters {
    pub inbound: PacketsBytes,
    pub outbound: PacketsBytes,
}

/// The tables of one configuration generation and this shard's host slots
/// laid out for them. Swapped whole on reload.
#[derive(Debug)]
pub struct HostSlots {
    pub tables: Arc<Tables>,
    pub slots: Box<[HostCounters]>,
}

impl HostSlots {
    pub fn new(tables: Arc<Tables>) -> Self {
        let slots = (0..tables.slots).map(|_| HostCounters::default()).collect();
        HostSlots { tables, slots }
    }
}

/// Where a shard's frames come from: one (interface, queue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardOrigin {
    pub interface: Arc<str>,
    pub queue: u32,
}

/// All counters of one worker.
#[derive(Debug)]
pub struct Shard {
    pub origin: ShardOrigin,
    /// By direction.
    pub traffic: [PacketsBytes; 4],
    /// Per `SIZE_BUCKETS` bucket (not cumulative) then +Inf; and the sum of sizes.
    pub sizes: [Counter; SIZE_BUCKETS.len() + 1],
    pub size_sum: Counter,
    /// By direction, then protocol slot.
    pub protocols: [[PacketsBytes; PROTO_SLOTS]; 4],
    /// By `WireError` variant.
    pub parse_errors: [Counter; WireError::COUNT],
    pub hosts: ArcSwap<HostSlots>,
}

impl Shard {
    pub fn new(origin: ShardOrigin, tables: Arc<Tables>) -> Self {
        Shard {
            origin,
            traffic: Default::default(),
            sizes: Default::default(),
            size_sum: Counter::default(),
            protocols: Default::default(),
            parse_errors: Default::default(),
            hosts: ArcSwap::from_pointee(HostSlots::new(tables)),
        }
    }
}

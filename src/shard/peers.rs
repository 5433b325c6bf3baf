//! Who the traffic is with: the remote side's autonomous system (from a
//! prefix table) and the configured remote networks.
//!
//! Tables are built off the hot path (allocates; a full Internet table takes
//! a few seconds). Per frame: one longest-prefix lookup per table and one
//! probe of the shard's fixed-capacity AS counter table; nothing allocates.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use super::counter::{Count, InOut, PacketsBytes};
use super::Direction;
use crate::prefix::{AsTable, AsTableBuilder, NetworkTable, NetworkTableBuilder, Prefix};
use crate::settings::{Accounting, AsFileFormat, SettingsError};
use crate::wire::L3Addrs;

/// Distinct ASes a shard can count; more fold into "other" (and are counted).
/// About 80,000 ASes are routed today.
pub const AS_SLOTS: usize = 1 << 17;
/// Distinct network names over the process lifetime (reloads included).
pub const MAX_NETWORKS: usize = 1024;

/// The AS and network tables of one configuration generation.
#[derive(Debug)]
pub struct PeerTables {
    pub as_table: Option<AsTable>,
    networks: Option<NetworkTable>,
    /// Dense network index of this build -> stable id.
    network_ids: Vec<u16>,
    /// Labels per stable id that this build knows: (id, labels).
    pub network_labels: Vec<(usize, Vec<(String, String)>)>,
    /// Name of every stable id given out since start-up (by this build or
    /// the generations before it): ids never change, so counters survive
    /// reloads.
    network_names: Vec<String>,
    pub network_label_names: Vec<String>,
    pub max_as_series: usize,
    pub max_network_series: usize,
}

impl PeerTables {
    /// Builds the tables of `cfg`; `known_networks` are the names (by
    /// stable id) of the generation it replaces.
    pub fn build(
        cfg: &Accounting,
        origin: &str,
        known_networks: &[String],
    ) -> Result<Option<PeerTables>, SettingsError> {
        let err = |key: &str, msg: String| SettingsError::Invalid {
            origin: origin.to_string(),
            key: key.to_string(),
            msg,
        };
        if cfg.as_table.is_none() && cfg.networks.is_empty() {
            return Ok(None);
        }
        let as_table = match &cfg.as_table {
            None => None,
            Some(files) => {
                let mut b = AsTableBuilder::new();
                let loaded = match files.format {
                    AsFileFormat::Ip2asn => b.load_ip2asn(&files.path),
                    AsFileFormat::NetworksFile => b.load_networks_file(&files.path),
                    AsFileFormat::PrefixAsn => b.load_prefix_asn(&files.path),
                };
                loaded.map_err(|e| err("accounting.as_file", e.to_string()))?;
                if let Some(names) = &files.names {
                    b.load_names(names)
                        .map_err(|e| err("accounting.as_names_file", e.to_string()))?;
                }
                Some(
                    b.try_build()
                        .map_err(|e| err("accounting.as_file", e.to_string()))?,
                )
            }
        };

        let mut network_ids = Vec::new();
        let mut network_labels = Vec::new();
        let mut network_names = known_networks.to_vec();
        let mut label_names = BTreeSet::new();
        let networks = if cfg.networks.is_empty() {
            None
        } else {
            let mut b = NetworkTableBuilder::new();
            for (i, n) in cfg.networks.iter().enumerate() {
                let key = format!("accounting.networks[{i}]");
                for p in &n.prefixes {
                    let prefix = Prefix::new(p.addr, p.len)
                        .map_err(|e| err(&format!("{key}.prefixes"), format!("{p}: {e}")))?;
                    let dense = b
                        .add(&n.name, prefix)
                        .map_err(|e| err(&format!("{key}.prefixes"), e.to_string()))?
                        as usize;
                    if dense == network_ids.len() {
                        let id = match network_names.iter().position(|r| *r == n.name) {
                            Some(id) => id,
                            None if network_names.len() < MAX_NETWORKS => {
                                network_names.push(n.name.clone());
                                network_names.len() - 1
                            }
                            None => {
                                return Err(err(&key, format!("more than {MAX_NETWORKS} network names since start-up; restart to reset")))
                            }
                        };
                        network_ids.push(id as u16);
                        network_labels.push((id, n.labels.clone()));
                    }
                }
                for (k, _) in &n.labels {
                    label_names.insert(k.clone());
                }
            }
            Some(
                b.try_build()
                    .map_err(|e| err("accounting.networks", e.to_string()))?,
            )
        };
        Ok(Some(PeerTables {
            as_table,
            networks,
            network_ids,
            network_labels,
            network_names,
            network_label_names: label_names.into_iter().collect(),
            max_as_series: cfg.max_as_series,
            max_network_series: cfg.max_network_series,
        }))
    }

    /// Names of the stable network ids, by id.
    pub fn network_names(&self) -> &[String] {
        &self.network_names
    }

    /// Name of a stable network id.
    pub fn network_name(&self, id: usize) -> Option<&str> {
        self.network_names.get(id).map(String::as_str)
    }

    #[inline]
    pub fn asn4(&self, a: u32) -> Option<u32> {
        self.as_table.as_ref()?.lookup_v4(a)
    }
    #[inline]
    pub fn asn6(&self, a: u128) -> Option<u32> {
        self.as_table.as_ref()?.lookup_v6(a)
    }
    /// [`asn6`](Self::asn6) of every address, in one lockstep walk.
    pub fn asn6_batch(&self, addrs: &[u128], out: &mut [Option<u32>]) {
        match self.as_table.as_ref() {
            Some(t) => t.v6.lookup_batch(addrs, out),
            None => out.fill(None),
        }
    }

    /// Starts fetching the AS and network table entries of a remote IPv4
    /// address.
    #[inline]
    pub fn prefetch4(&self, a: u32) {
        if let Some(t) = self.as_table.as_ref() {
            t.prefetch_v4(a);
        }
        if let Some(n) = self.networks.as_ref() {
            n.prefetch_v4(a);
        }
    }

    /// As [`prefetch4`](Self::prefetch4) for IPv6.
    #[inline]
    pub fn prefetch6(&self, a: u128) {
        if let Some(t) = self.as_table.as_ref() {
            t.prefetch_v6(a);
        }
        if let Some(n) = self.networks.as_ref() {
            n.prefetch_v6(a);
        }
    }

    /// Starts fetching the AS and network table entries of both addresses
    /// (a frame's remote side is one of them).
    #[inline]
    pub fn prefetch(&self, addrs: &L3Addrs) {
        match *addrs {
            L3Addrs::V4 { src, dst } => {
                let (s, d) = (u32::from_be_bytes(src), u32::from_be_bytes(dst));
                if let Some(t) = self.as_table.as_ref() {
                    t.prefetch_v4(s);
                    t.prefetch_v4(d);
                }
                if let Some(n) = self.networks.as_ref() {
                    n.prefetch_v4(s);
                    n.prefetch_v4(d);
                }
            }
            L3Addrs::V6 { src, dst } => {
                let (s, d) = (u128::from_be_bytes(src), u128::from_be_bytes(dst));
                if let Some(t) = self.as_table.as_ref() {
                    t.prefetch_v6(s);
                    t.prefetch_v6(d);
                }
                if let Some(n) = self.networks.as_ref() {
                    n.prefetch_v6(s);
                    n.prefetch_v6(d);
                }
            }
            L3Addrs::None => {}
        }
    }
    #[inline]
    pub fn network4(&self, a: u32) -> Option<usize> {
        let dense = self.networks.as_ref()?.lookup_v4(a)?;
        self.network_ids.get(dense as usize).map(|&id| id as usize)
    }
    #[inline]
    pub fn network6(&self, a: u128) -> Option<usize> {
        let dense = self.networks.as_ref()?.lookup_v6(a)?;
        self.network_ids.get(dense as usize).map(|&id| id as usize)
    }
    pub fn as_name(&self, asn: u32) -> &str {
        self.as_table
            .as_ref()
            .and_then(|t| t.name(asn))
            .unwrap_or("")
    }
}

/// Counters by AS number in a fixed open-addressing table, written by the
/// shard's worker alone. Keys are AS numbers + 1 (0 = free), so counts
/// survive a reload of the prefix table.
#[derive(Debug)]
pub struct AsCounters {
    /// Key and counters of a slot share one cache line: one miss per frame.
    slots: Box<[AsSlot]>,
    /// Frames whose AS did not fit (the table is kept at most 3/4 full).
    overflow: InOut<PacketsBytes>,
    used: AtomicU32,
}

/// One AS: its key (AS number + 1, 0 = free) and its in and out counters,
/// by the frame's direction.
#[derive(Debug, Default)]
#[repr(align(64))]
struct AsSlot {
    key: AtomicU32,
    counts: InOut<PacketsBytes>,
}

impl Default for AsCounters {
    fn default() -> Self {
        AsCounters {
            // Read at random once per frame: on huge pages (fewer TLB misses).
            slots: crate::memory::filled_with(AS_SLOTS, AsSlot::default),
            overflow: Default::default(),
            used: AtomicU32::new(0),
        }
    }
}

impl AsCounters {
    /// The slot where the search for `asn` starts.
    #[inline]
    fn home(asn: u32) -> usize {
        (asn.wrapping_add(1).wrapping_mul(0x9e37_79b1) >> 15) as usize & (AS_SLOTS - 1)
    }

    /// Starts fetching `asn`'s key and counters ahead of an [`add`](Self::add).
    #[inline]
    pub fn prefetch(&self, asn: u32) {
        let i = Self::home(asn);
        crate::memory::prefetch(&self.slots[i]);
    }

    /// Counts a frame for `asn` in direction `dir` (in or out).
    #[inline]
    pub fn add(&self, asn: u32, dir: Direction, bytes: u64) {
        self.add_n(asn, dir, 1, bytes)
    }

    /// Counts `packets` packets of `bytes` bytes in all (a flow record).
    #[inline(always)]
    pub fn add_n(&self, asn: u32, dir: Direction, packets: u64, bytes: u64) {
        let key = asn.wrapping_add(1);
        let mask = AS_SLOTS - 1;
        let mut i = Self::home(asn);
        loop {
            let slot = &self.slots[i];
            let k = slot.key.load(Relaxed);
            if k == key {
                slot.counts.add_n(dir, packets, bytes);
                return;
            }
            if k == 0 {
                let used = self.used.load(Relaxed);
                if used as usize >= AS_SLOTS / 4 * 3 || key == 0 {
                    self.overflow.add_n(dir, packets, bytes);
                    return;
                }
                // Counters first, then the key (Release): a scraper that
                // sees the key (Acquire) sees zeroed-or-newer counters.
                slot.counts.add_n(dir, packets, bytes);
                self.used.store(used + 1, Relaxed);
                slot.key.store(key, std::sync::atomic::Ordering::Release);
                return;
            }
            i = (i + 1) & mask;
        }
    }

    /// (asn, counts) of every AS seen.
    pub fn for_each(&self, mut f: impl FnMut(u32, InOut<Count>)) {
        for slot in self.slots.iter() {
            let key = slot.key.load(std::sync::atomic::Ordering::Acquire);
            if key != 0 {
                f(key - 1, slot.counts.load());
            }
        }
    }

    /// Frames whose AS did not fit the table.
    pub fn overflow(&self) -> InOut<Count> {
        self.overflow.load()
    }
}

//! The accounting counters as Prometheus metric families, summed over all
//! shards at scrape time. Also the reload of host tables without losing counts.
//!
//! Reads the shards only through their snapshot methods; every family is a
//! declaration of [`catalogue`](super::catalogue). Allocates per scrape.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;

use super::catalogue::{self as cat, counter, gauge, histogram, label, Family};
use super::fold::{Counts, Fold};
use crate::memory::{self, OutOfMemory};
use crate::settings::HostSeries;
use crate::shard::{
    protocol_name, ByDirection, Count, Direction, HostSlots, InOut, Shard, ShardSnapshot, Tables,
    PROTO_SLOTS, SIZE_BUCKETS,
};
use crate::wire::WireError;

/// Host identity across reloads: (IPv6?, key).
type HostKey = (bool, u128);

/// The families [`EngineCollector::collect`] builds (the host families are
/// written as text by [`EngineCollector::write_hosts_text`]).
const FAMILIES: [&Family; 13] = [
    &cat::INTERFACE_PACKETS,
    &cat::INTERFACE_BYTES,
    &cat::PACKET_SIZE,
    &cat::PROTOCOL_PACKETS,
    &cat::PROTOCOL_BYTES,
    &cat::PARSE_ERRORS,
    &cat::AS_PACKETS,
    &cat::AS_BYTES,
    &cat::AS_SERIES_FOLDED,
    &cat::NETWORK_PACKETS,
    &cat::NETWORK_BYTES,
    &cat::NETWORK_SERIES_FOLDED,
    &cat::QUEUE_FRAMES_ACCOUNTED,
];

/// Which host series a page shows: `accounting.host_series`,
/// `accounting.host_idle_timeout` and `metrics.max_series`.
#[derive(Clone, Copy, Debug)]
pub struct HostView {
    pub series: HostSeries,
    pub idle_timeout: Duration,
    /// Most host series per family (host × direction); the rest are
    /// folded into `ip="other"`.
    pub max_series: usize,
}

impl Default for HostView {
    /// Every host, no cap (tests and benches that count every series).
    fn default() -> Self {
        HostView {
            series: HostSeries::All,
            idle_timeout: Duration::MAX,
            max_series: usize::MAX,
        }
    }
}

/// Scrape-time state of the host view: when each host's counts last
/// changed, and the fold once there are more hosts than the cap.
#[derive(Default)]
struct HostViewState {
    /// Packets (both ways) at the last change, and when it changed.
    last_change: HashMap<HostKey, (u64, Instant)>,
    fold: Option<Fold<HostKey>>,
}

/// Sums the shards into metric families.
pub struct EngineCollector {
    shards: RwLock<Vec<Arc<Shard>>>,
    view: HostView,
    view_state: Mutex<HostViewState>,
    /// Host counts of table generations that were replaced, by host, so that
    /// a reload loses nothing.
    retired: Mutex<HashMap<HostKey, InOut<Count>>>,
    as_fold: Mutex<Fold<u32>>,
    network_fold: Mutex<Fold<usize>>,
    desc: Vec<Desc>,
}

impl EngineCollector {
    /// Every host shown (`HostView::default`).
    pub fn new(shards: Vec<Arc<Shard>>) -> Self {
        EngineCollector::with_view(shards, HostView::default())
    }

    pub fn with_view(shards: Vec<Arc<Shard>>, view: HostView) -> Self {
        EngineCollector {
            shards: RwLock::new(shards),
            view,
            view_state: Mutex::default(),
            retired: Mutex::new(HashMap::new()),
            as_fold: Default::default(),
            network_fold: Default::default(),
            desc: FAMILIES.iter().map(|f| f.desc()).collect(),
        }
    }

    /// For each of `asns`: does it have its own `xdpacct_as_*` series (as
    /// of this collector's last scrape)?
    pub fn as_shown(&self, asns: &[u32]) -> Vec<bool> {
        let fold = self.as_fold.lock().expect("as fold");
        asns.iter().map(|a| fold.is_chosen(a)).collect()
    }

    pub fn shards(&self) -> Vec<Arc<Shard>> {
        self.shards.read().expect("shards lock").clone()
    }

    /// Swaps in new tables on every shard without losing a count: waits for
    /// each worker to finish its batch on the old slots, then keeps their
    /// totals per host for the hosts that still exist.
    ///
    /// Everything the reload allocates (the new slots of every shard, both
    /// generations' slot keys, the set of kept hosts, room for the retired
    /// counts) is had before any shard changes, after a check that it fits
    /// with room left for the scrapes that follow. When it does not, the
    /// error says so and the shards keep the old tables.
    pub fn reload(&self, tables: Arc<Tables>) -> Result<(), OutOfMemory> {
        let mut retired = self.retired.lock().expect("retired lock");
        let shards = self.shards();
        let old_tables = shards.first().map(|s| s.hosts().tables.clone());
        let old_slots = old_tables.as_ref().map_or(0, |t| t.slots);
        memory::headroom(reload_bytes(tables.slots, old_slots, shards.len()))?;
        let mut fresh = memory::try_with_capacity(shards.len())?;
        for _ in &shards {
            fresh.push(Arc::new(HostSlots::try_new(tables.clone())?));
        }
        let mut keep: HashSet<HostKey> = HashSet::new();
        keep.try_reserve(tables.slots)
            .map_err(|_| OutOfMemory::hash_table::<HostKey>(tables.slots))?;
        keep.extend(tables.try_slot_keys()?);
        let old_keys = match &old_tables {
            Some(t) => t.try_slot_keys()?,
            None => Vec::new(),
        };
        retired
            .try_reserve(old_slots)
            .map_err(|_| OutOfMemory::hash_table::<(HostKey, InOut<Count>)>(old_slots))?;

        // Nothing big is allocated from here on.
        let olds: Vec<Arc<HostSlots>> = shards
            .iter()
            .zip(fresh)
            .map(|(shard, new)| shard.swap_hosts(new))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(5);
        for mut old in olds {
            // The worker holds its own clone for one batch at most.
            let slots = loop {
                match Arc::try_unwrap(old) {
                    Ok(slots) => break slots,
                    Err(still) if Instant::now() < deadline => {
                        old = still;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(still) => {
                        tracing::warn!("a worker kept the old host table for 5 s; its last batch may be counted late");
                        old = still;
                        break HostSlots {
                            tables: old.tables.clone(),
                            slots: Box::new([]),
                        };
                    }
                }
            };
            let same = old_tables
                .as_ref()
                .is_some_and(|t| Arc::ptr_eq(t, &slots.tables));
            // Every shard had the same generation (reloads swap all of them
            // under the `retired` lock); the fallback is never taken.
            let other_keys;
            let keys = if same {
                &old_keys
            } else {
                other_keys = slots.tables.slot_keys();
                &other_keys
            };
            for (key, c) in keys.iter().zip(slots.counts()) {
                if !c.is_zero() {
                    *retired.entry(*key).or_default() += c;
                }
            }
        }
        retired.retain(|k, _| keep.contains(k));
        let mut view = self.view_state.lock().expect("host view lock");
        view.last_change.retain(|k, _| keep.contains(k));
        Ok(())
    }

    /// Per-host totals over all shards plus retired generations, in slot order.
    pub fn host_totals(&self) -> Option<(Arc<Tables>, Vec<InOut<Count>>)> {
        let retired = self.retired.lock().expect("retired lock");
        let gens: Vec<Arc<HostSlots>> = self.shards().iter().map(|s| s.hosts()).collect();
        let tables = gens.first()?.tables.clone();
        let mut totals = vec![InOut::<Count>::default(); tables.slots];
        // Reloads swap every shard under the `retired` lock, so all
        // generations here are the same.
        for g in gens.iter().filter(|g| Arc::ptr_eq(&g.tables, &tables)) {
            for (t, c) in totals.iter_mut().zip(g.counts()) {
                *t += c;
            }
        }
        if !retired.is_empty() {
            for range in &tables.ranges {
                for off in 0..range.count {
                    if let Some(r) = retired.get(&(range.v6, range.first + off as u128)) {
                        totals[(range.base + off) as usize] += r;
                    }
                }
            }
        }
        Some((tables, totals))
    }

    /// Writes the customer families, `xdpacct_host_series_folded` and the
    /// host families in the text format straight from the counters: with
    /// 100,000 hosts this is several times faster than building metric
    /// protos first. Which hosts have series follows the `HostView`.
    pub fn write_hosts_text(&self, out: &mut Vec<u8>) {
        let Some((tables, totals)) = self.host_totals() else {
            return;
        };
        let mut num = itoa::Buffer::new();
        let range_labels: Vec<String> = tables
            .ranges
            .iter()
            .map(|range| {
                let mut extra = String::new();
                for (name, value) in tables.range_labels(range) {
                    extra.push_str(&format!(",{name}=\"{}\"", escape_label(value)));
                }
                extra
            })
            .collect();

        // Per customer: every host of the ranges with the same label values.
        let mut customers: Vec<(&str, InOut<Count>)> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (range, extra) in tables.ranges.iter().zip(&range_labels) {
            let i = *index.entry(extra.as_str()).or_insert_with(|| {
                customers.push((extra.as_str(), InOut::default()));
                customers.len() - 1
            });
            let first = range.base as usize;
            for t in &totals[first..first + range.count as usize] {
                customers[i].1 += *t;
            }
        }
        type Value = fn(&Count) -> u64;
        let values: [Value; 2] = [|c| c.packets, |c| c.bytes];
        for (family, value) in [&cat::CUSTOMER_PACKETS, &cat::CUSTOMER_BYTES]
            .into_iter()
            .zip(values)
        {
            family.write_header(out);
            for (extra, t) in &customers {
                for (dir, c) in t.iter() {
                    let labels = format!("direction=\"{}\"{extra}", dir.as_str());
                    write_sample(out, family.name, &labels, num.format(value(c)));
                }
            }
        }

        let (shown, other) = self.host_view(&tables, &totals);
        cat::HOST_SERIES_FOLDED.write_header(out);
        let folded = other.as_ref().map_or(0, |(n, _)| *n);
        write_sample(out, cat::HOST_SERIES_FOLDED.name, "", num.format(folded));
        for (family, value) in [&cat::HOST_PACKETS, &cat::HOST_BYTES]
            .into_iter()
            .zip(values)
        {
            family.write_header(out);
            let mut ip = String::new();
            for (r, range) in tables.ranges.iter().enumerate() {
                for off in 0..range.count {
                    let slot = (range.base + off) as usize;
                    let Some(t) = shown.get(slot).copied().flatten() else {
                        continue;
                    };
                    ip.clear();
                    tables.write_host_label(&mut ip, range, off);
                    for (dir, c) in t.iter() {
                        out.extend_from_slice(family.name.as_bytes());
                        out.extend_from_slice(b"{ip=\"");
                        out.extend_from_slice(ip.as_bytes());
                        out.extend_from_slice(b"\",direction=\"");
                        out.extend_from_slice(dir.as_str().as_bytes());
                        out.push(b'"');
                        out.extend_from_slice(range_labels[r].as_bytes());
                        out.extend_from_slice(b"} ");
                        out.extend_from_slice(num.format(value(c)).as_bytes());
                        out.push(b'\n');
                    }
                }
            }
            if let Some((_, t)) = &other {
                let blank: String = tables
                    .label_names
                    .iter()
                    .map(|n| format!(",{n}=\"\""))
                    .collect();
                for (dir, c) in t.iter() {
                    let labels = format!("ip=\"other\",direction=\"{}\"{blank}", dir.as_str());
                    write_sample(out, family.name, &labels, num.format(value(c)));
                }
            }
        }
    }

    /// Which hosts get series this scrape (by slot: the value to show, or
    /// `None`), and, once more hosts have traffic than `max_series / 2`,
    /// the folded count and total of the rest (`ip="other"`). Every shown
    /// series and `other` only go up.
    fn host_view(
        &self,
        tables: &Tables,
        totals: &[InOut<Count>],
    ) -> (Vec<Option<InOut<Count>>>, Option<FoldedHosts>) {
        let now = Instant::now();
        let mut state = self.view_state.lock().expect("host view lock");
        let keys = tables.slot_keys();
        let mut shown: Vec<Option<InOut<Count>>> = vec![None; totals.len()];
        for (slot, t) in totals.iter().enumerate() {
            let packets = t.total().packets;
            shown[slot] = match self.view.series {
                HostSeries::All => Some(*t),
                HostSeries::Active if packets == 0 => None,
                HostSeries::Active => {
                    let seen = state
                        .last_change
                        .entry(keys[slot])
                        .or_insert((packets, now));
                    if seen.0 != packets {
                        *seen = (packets, now);
                    }
                    (now.duration_since(seen.1) < self.view.idle_timeout).then_some(*t)
                }
            };
        }
        let max_hosts = self.view.max_series / 2;
        let counted = shown.iter().filter(|s| s.is_some()).count();
        if counted <= max_hosts && state.fold.is_none() {
            return (shown, None);
        }
        // Over the cap (once, then for good, so `other` stays monotonic):
        // the busiest hosts keep their series, every other host with
        // traffic, idle or not, is summed into `other`.
        let candidates: HashMap<HostKey, InOut<Count>> = totals
            .iter()
            .enumerate()
            .filter(|(_, t)| !t.total().is_zero())
            .map(|(slot, t)| (keys[slot], *t))
            .collect();
        let folded = state
            .fold
            .get_or_insert_with(Fold::default)
            .apply(&candidates, max_hosts);
        let chosen: HashMap<HostKey, InOut<Count>> = folded.shown.into_iter().collect();
        for (slot, s) in shown.iter_mut().enumerate() {
            if s.is_some() {
                *s = chosen.get(&keys[slot]).copied();
            }
        }
        (shown, Some((folded.folded, folded.other)))
    }
}

/// Bytes a scrape needs per host slot of the current tables: totals, slot
/// keys, which series to show, the fold's candidates, and text for the
/// hosts with series (a rough bound, for the headroom a reload checks).
pub(crate) const SCRAPE_BYTES_PER_SLOT: usize = 256;

/// What a reload from `old_slots` to `new_slots` host slots on `shards`
/// shards needs: the new slots, both generations' keys, the kept-host set,
/// the retired counts, and what the scrapes after it need.
fn reload_bytes(new_slots: usize, old_slots: usize, shards: usize) -> usize {
    use std::mem::size_of;
    let per_new = size_of::<crate::shard::HostCounters>().saturating_mul(shards)
        + size_of::<HostKey>() // new slot keys
        + 2 * size_of::<HostKey>() // the kept-host set (load factor, rounding)
        + SCRAPE_BYTES_PER_SLOT;
    let per_old = size_of::<HostKey>() + 2 * size_of::<(HostKey, InOut<Count>)>();
    new_slots
        .saturating_mul(per_new)
        .saturating_add(old_slots.saturating_mul(per_old))
        .saturating_add(16 << 20)
}

/// Hosts folded into `ip="other"`: how many, and their sum.
type FoldedHosts = (usize, InOut<Count>);

/// One sample line of the text format.
fn write_sample(out: &mut Vec<u8>, name: &str, labels: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    if !labels.is_empty() {
        out.push(b'{');
        out.extend_from_slice(labels.as_bytes());
        out.push(b'}');
    }
    out.push(b' ');
    out.extend_from_slice(value.as_bytes());
    out.push(b'\n');
}

impl EngineCollector {
    /// `xdpacct_as_*` and `xdpacct_network_*`, with bounded cardinality.
    fn collect_peers(&self, shards: &[Arc<Shard>], out: &mut Vec<MetricFamily>) {
        let Some(tables) = shards.first().map(|s| s.hosts().tables.clone()) else {
            return;
        };
        let Some(peers) = &tables.peers else { return };

        let mut as_totals: HashMap<u32, Counts> = HashMap::new();
        let mut unattributed = ByDirection::<Count>::default();
        for s in shards {
            s.for_each_as(|asn, c| *as_totals.entry(asn).or_default() += c);
            unattributed += s.as_unattributed();
        }
        if peers.as_table.is_some() {
            let f = self
                .as_fold
                .lock()
                .expect("as fold")
                .apply(&as_totals, peers.max_as_series);
            let (mut pk, mut by) = (Vec::new(), Vec::new());
            let mut push = |asn: &str, name: &str, dir: Direction, c: Count| {
                let labels = vec![
                    label("peer_as", asn),
                    label("peer_as_name", name),
                    label("direction", dir.as_str()),
                ];
                pk.push(counter(labels.clone(), c.packets));
                by.push(counter(labels, c.bytes));
            };
            for (asn, c) in &f.shown {
                for (d, v) in c.iter() {
                    push(&asn.to_string(), peers.as_name(*asn), d, *v);
                }
            }
            for (d, u) in unattributed.iter() {
                let mut v = *u;
                if let Some(folded) = f.other.get(d) {
                    v += *folded;
                }
                push("other", "", d, v);
            }
            out.push(cat::AS_PACKETS.family(pk));
            out.push(cat::AS_BYTES.family(by));
            out.push(cat::AS_SERIES_FOLDED.family(vec![gauge(vec![], f.folded as f64)]));
        }

        if !peers.network_labels.is_empty() {
            let mut net_totals: HashMap<usize, Counts> = HashMap::new();
            for s in shards {
                for (id, c) in s.networks() {
                    *net_totals.entry(id).or_default() += c;
                }
            }
            let f = self
                .network_fold
                .lock()
                .expect("network fold")
                .apply(&net_totals, peers.max_network_series);
            let (mut pk, mut by) = (Vec::new(), Vec::new());
            let names = &peers.network_label_names;
            let mut push = |net: &str, extra: &[(String, String)], dir: Direction, c: Count| {
                let mut labels = vec![label("network", net), label("direction", dir.as_str())];
                for n in names {
                    let v = extra
                        .iter()
                        .find(|(k, _)| k == n)
                        .map_or("", |(_, v)| v.as_str());
                    labels.push(label(n, v));
                }
                pk.push(counter(labels.clone(), c.packets));
                by.push(counter(labels, c.bytes));
            };
            for (id, c) in &f.shown {
                let name = peers.network_name(*id).unwrap_or_default();
                let extra = peers
                    .network_labels
                    .iter()
                    .find(|(i, _)| i == id)
                    .map_or(&[][..], |(_, l)| &l[..]);
                for (d, v) in c.iter() {
                    push(name, extra, d, *v);
                }
            }
            if f.folded > 0 || !f.other.is_zero() {
                for (d, v) in f.other.iter() {
                    push("other", &[], d, *v);
                }
            }
            out.push(cat::NETWORK_PACKETS.family(pk));
            out.push(cat::NETWORK_BYTES.family(by));
            out.push(cat::NETWORK_SERIES_FOLDED.family(vec![gauge(vec![], f.folded as f64)]));
        }
    }
}

/// Escapes a label value for the text format.
fn escape_label(v: &str) -> std::borrow::Cow<'_, str> {
    if v.contains(['\\', '"', '\n']) {
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
            .into()
    } else {
        v.into()
    }
}

/// Indexes of the shards of each interface, in first-seen order.
fn by_interface(shards: &[Arc<Shard>]) -> Vec<(Arc<str>, Vec<usize>)> {
    let mut out: Vec<(Arc<str>, Vec<usize>)> = Vec::new();
    // A flow-fed shard's interfaces are its flow table's entries.
    for (i, s) in shards
        .iter()
        .enumerate()
        .filter(|(_, s)| s.flow_interfaces().is_none())
    {
        let iface = &s.origin().interface;
        match out.iter_mut().find(|(n, _)| n == iface) {
            Some((_, v)) => v.push(i),
            None => out.push((iface.clone(), vec![i])),
        }
    }
    out
}

impl Collector for EngineCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.desc.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let shards = self.shards();
        // One read of each shard, so the families of a scrape agree.
        let snaps: Vec<ShardSnapshot> = shards.iter().map(|s| s.snapshot()).collect();
        let mut out = Vec::new();

        let (mut pk, mut by, mut hist, mut ppk, mut pby) = (vec![], vec![], vec![], vec![], vec![]);
        for (iface, group) in by_interface(&shards) {
            let mut sum = ShardSnapshot::default();
            for &i in &group {
                sum += &snaps[i];
            }
            for (d, t) in sum.traffic.iter() {
                let labels = vec![label("interface", &*iface), label("direction", d.as_str())];
                pk.push(counter(labels.clone(), t.packets));
                by.push(counter(labels, t.bytes));
                for (p, c) in sum.protocols[d].iter().enumerate() {
                    if c.packets == 0 {
                        continue; // a series appears with the protocol's first frame
                    }
                    let labels = vec![
                        label("interface", &*iface),
                        label("direction", d.as_str()),
                        label("protocol", protocol_name(p)),
                    ];
                    ppk.push(counter(labels.clone(), c.packets));
                    pby.push(counter(labels, c.bytes));
                }
            }
            hist.push(histogram(
                vec![label("interface", &*iface)],
                &SIZE_BUCKETS,
                &sum.sizes,
                sum.size_sum,
            ));
        }
        // Flow-fed shards: one interface per (exporter, ifIndex) label,
        // summed over the receiver threads; no size histogram (a flow
        // record gives no frame sizes).
        let mut flow: Vec<(String, ByDirection<[Count; PROTO_SLOTS]>)> = Vec::new();
        let mut at: HashMap<String, usize> = HashMap::new();
        for s in &shards {
            if let Some(f) = s.flow_interfaces() {
                f.for_each(|l, c| {
                    let i = *at.entry(l.to_string()).or_insert_with(|| {
                        flow.push((l.to_string(), Default::default()));
                        flow.len() - 1
                    });
                    for (d, p) in c.iter() {
                        for (a, b) in flow[i].1[d].iter_mut().zip(p) {
                            *a += *b;
                        }
                    }
                });
            }
        }
        for (iface, c) in &flow {
            for (d, p) in c.iter() {
                let mut t = Count::default();
                for (slot, v) in p.iter().enumerate() {
                    t += *v;
                    if v.packets == 0 {
                        continue;
                    }
                    let labels = vec![
                        label("interface", iface.as_str()),
                        label("direction", d.as_str()),
                        label("protocol", protocol_name(slot)),
                    ];
                    ppk.push(counter(labels.clone(), v.packets));
                    pby.push(counter(labels, v.bytes));
                }
                let labels = vec![
                    label("interface", iface.as_str()),
                    label("direction", d.as_str()),
                ];
                pk.push(counter(labels.clone(), t.packets));
                by.push(counter(labels, t.bytes));
            }
        }
        out.push(cat::INTERFACE_PACKETS.family(pk));
        out.push(cat::INTERFACE_BYTES.family(by));
        out.push(cat::PACKET_SIZE.family(hist));
        out.push(cat::PROTOCOL_PACKETS.family(ppk));
        out.push(cat::PROTOCOL_BYTES.family(pby));

        let errors = WireError::ALL
            .iter()
            .map(|e| {
                counter(
                    vec![label("reason", e.as_str())],
                    snaps.iter().map(|s| s.parse_errors[*e as usize]).sum(),
                )
            })
            .collect();
        out.push(cat::PARSE_ERRORS.family(errors));

        self.collect_peers(&shards, &mut out);

        let accounted = shards
            .iter()
            .zip(&snaps)
            .filter(|(s, _)| s.flow_interfaces().is_none())
            .map(|(s, snap)| {
                let labels = vec![
                    label("interface", &*s.origin().interface),
                    label("queue", s.origin().queue.to_string()),
                ];
                counter(labels, snap.traffic.total().packets)
            })
            .collect();
        out.push(cat::QUEUE_FRAMES_ACCOUNTED.family(accounted));

        out
    }
}

//! Lookup tables built from the config: local networks (for direction) and
//! the per-host slot layout of the configured ranges.
//!
//! Built once at start-up or reload (allocates); lookups on the hot path are
//! binary searches over a few sorted spans and never allocate.

use super::peers::PeerTables;
use crate::settings::{self, Accounting, BytesMode, SettingsError};
use crate::wire::{MplsPayload, WireOptions};

/// A sorted set of disjoint integer spans with an attached base value.
#[derive(Debug, Clone, Default)]
struct Spans<K> {
    firsts: Vec<K>,
    lasts: Vec<K>,
    bases: Vec<u32>,
}

impl<K: Copy + Ord + Into<u128>> Spans<K> {
    /// Index of the span holding `key`.
    #[inline]
    fn find(&self, key: K) -> Option<usize> {
        let i = self.firsts.partition_point(|&f| f <= key);
        if i > 0 && key <= self.lasts[i - 1] {
            Some(i - 1)
        } else {
            None
        }
    }

    fn from_sorted(mut v: Vec<(K, K, u32)>, merge: bool) -> Self {
        v.sort_by_key(|s| s.0);
        let mut out: Spans<K> = Spans {
            firsts: vec![],
            lasts: vec![],
            bases: vec![],
        };
        for (f, l, b) in v {
            if merge {
                if let Some(last) = out.lasts.last_mut() {
                    if f.into() <= (*last).into().saturating_add(1) {
                        *last = (*last).max(l);
                        continue;
                    }
                }
            }
            out.firsts.push(f);
            out.lasts.push(l);
            out.bases.push(b);
        }
        out
    }
}

/// One configured range, as needed to name its host series at scrape.
#[derive(Debug, Clone)]
pub struct HostRange {
    pub v6: bool,
    /// First host key: an IPv4 address, or an IPv6 address shifted right to
    /// its host prefix.
    pub first: u128,
    pub count: u32,
    /// First slot of the range.
    pub base: u32,
    /// Its own labels as (index into `Tables::label_names`, value), sorted:
    /// sparse, so thousands of ranges with distinct label names stay small.
    labels: Vec<(u32, String)>,
}

/// Everything the hot path looks up, built from `[accounting]`.
#[derive(Debug)]
pub struct Tables {
    pub bytes: BytesMode,
    /// How the parser reads what it cannot tell apart (`accounting.mpls_payload`).
    pub wire: WireOptions,
    pub ipv6_host_prefix: u8,
    local4: Spans<u32>,
    local6: Spans<u128>,
    hosts4: Spans<u32>,
    hosts6: Spans<u128>,
    pub ranges: Vec<HostRange>,
    /// Union of the ranges' label names, sorted.
    pub label_names: Vec<String>,
    pub slots: usize,
    /// AS and network tables, when configured.
    pub peers: Option<PeerTables>,
}

/// A frame's direction, from `accounting.local_networks`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Direction {
    In = 0,
    Out = 1,
    Internal = 2,
    External = 3,
}

impl Direction {
    pub const ALL: [Direction; 4] = [
        Direction::In,
        Direction::Out,
        Direction::Internal,
        Direction::External,
    ];
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
            Direction::Internal => "internal",
            Direction::External => "external",
        }
    }
    #[inline]
    pub fn from_locality(src_local: bool, dst_local: bool) -> Direction {
        match (src_local, dst_local) {
            (false, true) => Direction::In,
            (true, false) => Direction::Out,
            (true, true) => Direction::Internal,
            (false, false) => Direction::External,
        }
    }
}

impl Tables {
    /// Lays out the host slots and builds the lookup tables of one
    /// configuration generation (loading the AS files: seconds for a full
    /// table). `previous` is the generation it replaces, whose network ids
    /// it keeps. No side effects: a failed build changes nothing.
    pub fn build(
        cfg: &Accounting,
        origin: &str,
        previous: Option<&Tables>,
    ) -> Result<Tables, SettingsError> {
        let hp = cfg.ipv6_host_prefix;
        let label_names = cfg.range_label_names();
        let mut ranges = Vec::with_capacity(cfg.ranges.len());
        let (mut spans4, mut spans6) = (Vec::new(), Vec::new());
        let mut base: u32 = 0;
        for r in &cfg.ranges {
            // Counts were checked against MAX_HOST_SLOTS by the settings.
            let (first, count) = (r.first_key(hp), r.hosts);
            let last = first + u128::from(count - 1);
            if r.span.v6 {
                spans6.push((first, last, base));
            } else {
                spans4.push((first as u32, last as u32, base));
            }
            let labels = r
                .labels
                .iter()
                .filter_map(|(k, v)| {
                    let i = label_names.binary_search(k).ok()?;
                    Some((i as u32, v.clone()))
                })
                .collect();
            ranges.push(HostRange {
                v6: r.span.v6,
                first,
                count,
                base,
                labels,
            });
            base += count;
        }
        let (mut l4, mut l6) = (Vec::new(), Vec::new());
        for s in &cfg.local_networks {
            if s.v6 {
                l6.push((s.first, s.last, 0));
            } else {
                l4.push((s.first as u32, s.last as u32, 0));
            }
        }
        let previous_networks = previous
            .and_then(|t| t.peers.as_ref())
            .map_or(&[][..], |p| p.network_names());
        Ok(Tables {
            bytes: cfg.bytes,
            wire: WireOptions {
                mpls_payload: match cfg.mpls_payload {
                    settings::MplsPayload::Guess => MplsPayload::Guess,
                    settings::MplsPayload::EthernetNoControlWord => {
                        MplsPayload::EthernetNoControlWord
                    }
                    settings::MplsPayload::IpOnly => MplsPayload::IpOnly,
                },
            },
            ipv6_host_prefix: hp,
            local4: Spans::from_sorted(l4, true),
            local6: Spans::from_sorted(l6, true),
            hosts4: Spans::from_sorted(spans4, false),
            hosts6: Spans::from_sorted(spans6, false),
            ranges,
            label_names,
            slots: base as usize,
            peers: PeerTables::build(cfg, origin, previous_networks)?,
        })
    }

    #[inline]
    pub fn is_local4(&self, a: u32) -> bool {
        self.local4.find(a).is_some()
    }
    #[inline]
    pub fn is_local6(&self, a: u128) -> bool {
        self.local6.find(a).is_some()
    }
    #[inline]
    pub fn host4(&self, a: u32) -> Option<usize> {
        self.hosts4
            .find(a)
            .map(|i| (self.hosts4.bases[i] + (a - self.hosts4.firsts[i])) as usize)
    }
    #[inline]
    pub fn host6(&self, a: u128) -> Option<usize> {
        let k = a >> (128 - self.ipv6_host_prefix as u32);
        self.hosts6
            .find(k)
            .map(|i| self.hosts6.bases[i] as usize + (k - self.hosts6.firsts[i]) as usize)
    }

    /// Every name of `label_names` with `range`'s value for it ("" where
    /// the range has none), in order.
    pub fn range_labels<'a>(
        &'a self,
        range: &'a HostRange,
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let mut own = range.labels.iter().peekable();
        self.label_names.iter().enumerate().map(move |(i, name)| {
            let value = match own.peek() {
                Some((j, v)) if *j as usize == i => {
                    own.next();
                    v.as_str()
                }
                _ => "",
            };
            (name.as_str(), value)
        })
    }

    /// The `ip` label of a host: the address, or for IPv6 its host prefix.
    pub fn host_label(&self, range: &HostRange, offset: u32) -> String {
        let mut s = String::new();
        self.write_host_label(&mut s, range, offset);
        s
    }

    /// Appends the `ip` label of a host to `out` (no allocation once `out` has room).
    pub fn write_host_label(&self, out: &mut String, range: &HostRange, offset: u32) {
        use std::fmt::Write;
        let k = range.first + offset as u128;
        let _ = if range.v6 {
            let shift = 128 - self.ipv6_host_prefix as u32;
            let addr = std::net::Ipv6Addr::from(if shift >= 128 { 0 } else { k << shift });
            if self.ipv6_host_prefix == 128 {
                write!(out, "{addr}")
            } else {
                write!(out, "{addr}/{}", self.ipv6_host_prefix)
            }
        } else {
            write!(out, "{}", std::net::Ipv4Addr::from(k as u32))
        };
    }

    /// Identity of a host slot that survives a reload: family and key.
    pub fn slot_keys(&self) -> Vec<(bool, u128)> {
        self.try_slot_keys()
            .unwrap_or_else(|e| panic!("host slot keys: {e}"))
    }

    /// [`slot_keys`](Self::slot_keys), or an error when they do not fit in
    /// memory.
    pub fn try_slot_keys(&self) -> Result<Vec<(bool, u128)>, crate::memory::OutOfMemory> {
        let mut keys = crate::memory::try_with_capacity(self.slots)?;
        keys.resize(self.slots, (false, 0));
        for r in &self.ranges {
            for o in 0..r.count {
                keys[(r.base + o) as usize] = (r.v6, r.first + u128::from(o));
            }
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::raw::{AccountingConfig, RangeConfig};

    fn range(prefix: &str, labels: &[(&str, &str)]) -> RangeConfig {
        RangeConfig {
            prefix: Some(prefix.into()),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    fn tables(ranges: Vec<RangeConfig>, local: &[&str]) -> Result<Tables, SettingsError> {
        let cfg = AccountingConfig {
            ranges,
            local_networks: local.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        Tables::build(&Accounting::from_raw(&cfg, "test.toml")?, "test.toml", None)
    }

    #[test]
    fn slots_and_lookups() {
        let t = tables(
            vec![
                range("198.51.100.0/30", &[("customer", "a")]),
                range("2001:db8:1::/62", &[("site", "x")]),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(t.slots, 4 + 4);
        assert_eq!(t.label_names, ["customer", "site"]);
        let labels: Vec<_> = t.range_labels(&t.ranges[1]).collect();
        assert_eq!(labels, [("customer", ""), ("site", "x")]);
        assert_eq!(t.host4(u32::from_be_bytes([198, 51, 100, 2])), Some(2));
        assert_eq!(t.host4(u32::from_be_bytes([198, 51, 100, 4])), None);
        let a: u128 = "2001:db8:1:3::99"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .into();
        assert_eq!(t.host6(a), Some(4 + 3));
        assert_eq!(t.host_label(&t.ranges[1], 3), "2001:db8:1:3::/64");
        assert_eq!(t.host_label(&t.ranges[0], 1), "198.51.100.1");
        // Local networks default to the ranges.
        assert!(t.is_local4(u32::from_be_bytes([198, 51, 100, 3])));
        assert!(!t.is_local4(u32::from_be_bytes([198, 51, 100, 4])));
    }

    #[test]
    fn mpls_payload_setting_reaches_the_parser_options() {
        let t = Tables::build(
            &crate::settings::Settings::from_toml_str(
                "[accounting]\nmpls_payload = \"ethernet_no_control_word\"\n",
            )
            .unwrap()
            .accounting,
            "test.toml",
            None,
        )
        .unwrap();
        assert_eq!(t.wire.mpls_payload, MplsPayload::EthernetNoControlWord);
        assert!(crate::settings::Settings::from_toml_str(
            "[accounting]\nmpls_payload = \"ethernet\"\n"
        )
        .is_err());
    }

    #[test]
    fn overlapping_ranges_are_refused() {
        let e = tables(
            vec![range("10.0.0.0/24", &[]), range("10.0.0.128/25", &[])],
            &[],
        )
        .unwrap_err();
        assert!(e.to_string().contains("overlap"), "{e}");
    }

    #[test]
    fn bad_label_names_are_refused() {
        assert!(tables(vec![range("10.0.0.0/24", &[("ip", "x")])], &[]).is_err());
        assert!(tables(vec![range("10.0.0.0/24", &[("1x", "x")])], &[]).is_err());
    }

    #[test]
    fn too_many_hosts_is_refused() {
        let e = tables(vec![range("10.0.0.0/8", &[])], &[]).unwrap_err();
        assert!(e.to_string().contains("more than"), "{e}");
    }

    /// Regression: two IPv6 ranges with addresses of one /64 passed as
    /// disjoint, and the second one's traffic was counted on the first's
    /// series (both had `ip="2001:db8::/64"`).
    #[test]
    fn ipv6_ranges_sharing_a_host_prefix_are_refused() {
        let span = |f: &str, l: &str| RangeConfig {
            first: Some(f.into()),
            last: Some(l.into()),
            ..Default::default()
        };
        let e = tables(
            vec![
                span("2001:db8::5", "2001:db8::6"),
                span("2001:db8::7", "2001:db8::8"),
            ],
            &[],
        )
        .unwrap_err();
        assert!(e.to_string().contains("overlap"), "{e}");
        assert!(tables(
            vec![
                span("2001:db8::5", "2001:db8::6"),
                span("2001:db8:0:1::7", "2001:db8:0:1::8"),
            ],
            &[],
        )
        .is_ok());
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        /// A range near a few bases, so that ranges often touch or overlap.
        fn any_range() -> impl Strategy<Value = (bool, u128, u128)> {
            (any::<bool>(), 0u128..4, 0u128..300, 0u128..300).prop_map(|(v6, base, a, len)| {
                if v6 {
                    // Addresses spread over a few /64s and /60s.
                    let first = (0x2001_0db8_u128 << 96) + (base << 64) + (a << 58);
                    (true, first, first + (len << 56) + a)
                } else {
                    let first = (10u128 << 24) + (base << 10) + a;
                    (false, first, first + len)
                }
            })
        }

        fn ip(v6: bool, a: u128) -> String {
            crate::settings::int_to_ip(a, v6).to_string()
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
            /// No two addresses of different ranges ever share a slot: every
            /// address of a range the settings accept resolves to a slot of
            /// that range, whatever the ranges and the IPv6 host prefix.
            #[test]
            fn addresses_of_different_ranges_never_share_a_slot(
                ranges in proptest::collection::vec(any_range(), 1..6),
                hp in prop_oneof![Just(64u8), Just(60), Just(56), Just(128), 1u8..=128],
                probes in proptest::collection::vec(0u128..1 << 64, 8),
            ) {
                let cfg = AccountingConfig {
                    ipv6_host_prefix: Some(hp),
                    ranges: ranges
                        .iter()
                        .map(|&(v6, f, l)| RangeConfig {
                            first: Some(ip(v6, f)),
                            last: Some(ip(v6, l)),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                };
                let Ok(acct) = Accounting::from_raw(&cfg, "prop") else {
                    return Ok(()); // refused (overlap, too many hosts): fine
                };
                let t = Tables::build(&acct, "prop", None).unwrap();
                for (i, &(v6, first, last)) in ranges.iter().enumerate() {
                    let own = &t.ranges[i];
                    let span = last - first;
                    for a in probes.iter().map(|p| first + p % (span + 1)).chain([first, last]) {
                        let slot = if v6 { t.host6(a) } else { t.host4(a as u32) };
                        let slot = slot.expect("an address of a range has a slot") as u32;
                        prop_assert!(
                            (own.base..own.base + own.count).contains(&slot),
                            "{} of range {i} in slot {slot}, outside its slots {}..+{}",
                            ip(v6, a), own.base, own.count
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn direction_from_local_networks() {
        let t = tables(vec![], &["10.0.0.0/8", "11.0.0.0/8", "2001:db8::/32"]).unwrap();
        assert!(t.is_local4(u32::from_be_bytes([11, 255, 255, 255])));
        assert!(!t.is_local4(u32::from_be_bytes([12, 0, 0, 0])));
        assert!(t.is_local6(
            "2001:db8:ffff::1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .into()
        ));
        assert_eq!(Direction::from_locality(false, true), Direction::In);
        assert_eq!(Direction::from_locality(true, false), Direction::Out);
        assert_eq!(Direction::from_locality(true, true), Direction::Internal);
        assert_eq!(Direction::from_locality(false, false), Direction::External);
    }
}

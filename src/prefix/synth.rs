//! Synthetic routing tables for tests and benchmarks: a full-size Internet
//! table with a realistic spread of prefix lengths, generated from a seed
//! (no data files, no `rand` dependency). Allocates; not for the data path.

use std::io::{self, Write};
use std::net::{Ipv4Addr, Ipv6Addr};

use super::{mask128, mask32};

/// SplitMix64: small, fast, good enough to spread addresses.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    #[inline]
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    #[inline]
    pub fn next_u128(&mut self) -> u128 {
        ((self.next_u64() as u128) << 64) | self.next_u64() as u128
    }

    /// Uniform-ish in `0..n` (`n > 0`).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

/// Full-table sizes: about today's default-free zone.
pub const FULL_V4: usize = 1_000_000;
pub const FULL_V6: usize = 250_000;

fn asn(rng: &mut SplitMix64) -> u32 {
    // ~75k origin ASNs, a few of them 4-byte private ones above 2^31.
    if rng.below(100) == 0 {
        4_200_000_000 + rng.below(1000) as u32
    } else {
        1 + rng.below(75_000) as u32 * 5
    }
}

/// IPv4 prefix-length shares of today's default-free zone, in per mille,
/// rounded from the prefix-length histograms of the public BGP table
/// reports (Geoff Huston's bgp.potaroo.net AS131072 / AS6447 reports and
/// the CIDR report, 2024: ~1.0 M prefixes, ~60 % /24, then /22, /23, /21,
/// /20, ...). Lengths /25-/32 are filtered on the DFZ; 0.5 % keeps the
/// DIR-24-8 second level exercised.
pub const V4_LENGTHS: &[(u8, u8, u32)] = &[
    // (shortest, longest, per mille; spread evenly over the lengths)
    (24, 24, 595),
    (23, 23, 100),
    (22, 22, 130),
    (21, 21, 50),
    (20, 20, 45),
    (19, 19, 30),
    (18, 18, 15),
    (17, 17, 10),
    (16, 16, 15),
    (8, 15, 5),
    (25, 32, 5),
];

/// IPv6 prefix-length shares (per mille), rounded from the same reports
/// (2024: ~220 k prefixes, average length ~42.9, /48 about half, then /32,
/// /44, /40, /29, /36, /46-/47; almost nothing past /48). 0.5 % longer
/// than /48 keeps deep trie paths in the tests.
pub const V6_LENGTHS: &[(u8, u8, u32)] = &[
    (48, 48, 495),
    (32, 32, 140),
    (44, 44, 70),
    (40, 40, 60),
    (29, 29, 40),
    (36, 36, 30),
    (46, 47, 40),
    (33, 47, 90),
    (19, 31, 30),
    (49, 64, 5),
];

/// The RIR blocks that hold almost all routed IPv6 space: (block /12 or
/// /16, its length, per mille of the prefixes placed fresh in it).
const V6_BLOCKS: &[(u128, u8, u64)] = &[
    (0x2a00 << 112, 12, 400), // RIPE NCC
    (0x2600 << 112, 12, 250), // ARIN
    (0x2400 << 112, 12, 200), // APNIC
    (0x2800 << 112, 12, 100), // LACNIC
    (0x2c00 << 112, 12, 20),  // AFRINIC
    (0x2001 << 112, 16, 30),  // early allocations, all RIRs
];

/// Share (per mille) of IPv6 prefixes longer than /32 that are
/// more-specifics of another prefix in the table (the reports: ~57 % of
/// the FIB).
const V6_MORE_SPECIFIC: u64 = 570;

fn length(rng: &mut SplitMix64, table: &[(u8, u8, u32)]) -> u8 {
    let total: u32 = table.iter().map(|t| t.2).sum();
    let mut r = rng.below(total as u64) as u32;
    for &(lo, hi, w) in table {
        if r < w {
            return lo + rng.below((hi - lo + 1) as u64) as u8;
        }
        r -= w;
    }
    table[0].0
}

/// `n` random IPv4 prefixes `(prefix, len, asn)` with the lengths of
/// [`V4_LENGTHS`], uniformly spread over the address space.
pub fn v4_prefixes(n: usize, seed: u64) -> Vec<(u32, u8, u32)> {
    let mut rng = SplitMix64::new(seed);
    (0..n)
        .map(|_| {
            let len = length(&mut rng, V4_LENGTHS);
            (rng.next_u32() & mask32(len), len, asn(&mut rng))
        })
        .collect()
}

/// `n` random IPv6 prefixes `(prefix, len, asn)` with the lengths of
/// [`V6_LENGTHS`], clustered as the real table is: a prefix is either a
/// more-specific of an earlier prefix up to /40 (57 % of those longer than
/// /32) or placed at random inside one of the RIR blocks (2a00::/12,
/// 2600::/12, 2400::/12, 2800::/12, 2c00::/12, 2001::/16), all in 2000::/3.
pub fn v6_prefixes(n: usize, seed: u64) -> Vec<(u128, u8, u32)> {
    let mut rng = SplitMix64::new(seed);
    // Earlier prefixes that more-specifics may fall in.
    let mut parents: Vec<(u128, u8)> = Vec::new();
    let block_total: u64 = V6_BLOCKS.iter().map(|b| b.2).sum();
    (0..n)
        .map(|_| {
            let len = length(&mut rng, V6_LENGTHS);
            let r = rng.next_u128();
            let a = if len > 32 && !parents.is_empty() && rng.below(1000) < V6_MORE_SPECIFIC {
                let (p, l) = parents[rng.below(parents.len() as u64) as usize];
                if l < len {
                    p | (r & !mask128(l))
                } else {
                    p
                }
            } else {
                let mut pick = rng.below(block_total);
                let mut block = V6_BLOCKS[0];
                for &b in V6_BLOCKS {
                    if pick < b.2 {
                        block = b;
                        break;
                    }
                    pick -= b.2;
                }
                if len > block.1 {
                    block.0 | (r & !mask128(block.1))
                } else {
                    (r >> 3) | (1u128 << 125)
                }
            };
            let p = a & mask128(len);
            if len <= 40 {
                parents.push((p, len));
            }
            (p, len, asn(&mut rng))
        })
        .collect()
}

/// Random addresses: 1 in 4 uniformly random, the rest inside a random
/// prefix of `v4` (so lookups hit routes, as real traffic does).
pub fn v4_addrs(v4: &[(u32, u8, u32)], n: usize, seed: u64) -> Vec<u32> {
    let mut rng = SplitMix64::new(seed);
    (0..n)
        .map(|_| {
            let x = rng.next_u32();
            if v4.is_empty() || rng.below(4) == 0 {
                x
            } else {
                let (p, l, _) = v4[rng.below(v4.len() as u64) as usize];
                p | (x & !mask32(l))
            }
        })
        .collect()
}

/// As [`v4_addrs`] for IPv6; the random quarter is drawn from 2000::/3.
pub fn v6_addrs(v6: &[(u128, u8, u32)], n: usize, seed: u64) -> Vec<u128> {
    let mut rng = SplitMix64::new(seed);
    (0..n)
        .map(|_| {
            let x = rng.next_u128();
            if v6.is_empty() || rng.below(4) == 0 {
                (x >> 3) | (1u128 << 125)
            } else {
                let (p, l, _) = v6[rng.below(v6.len() as u64) as usize];
                p | (x & !mask128(l))
            }
        })
        .collect()
}

/// Addresses at and around the edges of `prefix/len`: first, last, and
/// their neighbours outside the prefix.
pub fn edges4(prefix: u32, len: u8) -> [u32; 5] {
    let last = prefix | !mask32(len);
    [
        prefix,
        last,
        prefix.wrapping_sub(1),
        last.wrapping_add(1),
        prefix | (!mask32(len) >> 1),
    ]
}

/// As [`edges4`] for IPv6.
pub fn edges6(prefix: u128, len: u8) -> [u128; 5] {
    let last = prefix | !mask128(len);
    [
        prefix,
        last,
        prefix.wrapping_sub(1),
        last.wrapping_add(1),
        prefix | (!mask128(len) >> 1),
    ]
}

/// Writes a `prefix asn` list (the plain loader's format), IPv4 then IPv6.
pub fn write_prefix_asn<W: Write>(
    mut w: W,
    v4: &[(u32, u8, u32)],
    v6: &[(u128, u8, u32)],
) -> io::Result<()> {
    writeln!(
        w,
        "# synthetic full table: {} IPv4, {} IPv6 prefixes",
        v4.len(),
        v6.len()
    )?;
    for &(p, l, a) in v4 {
        writeln!(w, "{}/{} {}", Ipv4Addr::from(p), l, a)?;
    }
    for &(p, l, a) in v6 {
        writeln!(w, "{}/{}\t{}", Ipv6Addr::from(p), l, a)?;
    }
    w.flush()
}

/// Reference LPM for tests: one hash map per prefix length, probed from
/// the longest length that can match down to /0. To stay quick in debug
/// builds it first narrows that longest length with "cut" sets: the /c
/// blocks holding any prefix longer than /c (if `addr`'s /c block holds
/// none, no prefix longer than /c can match). Last insertion wins.
#[cfg(test)]
pub(crate) struct Naive<K> {
    bits: u8,
    by_len: Vec<std::collections::HashMap<K, u32, FastHash>>,
    /// Prefix lengths present, longest first.
    lens: Vec<u8>,
    /// (c, /c blocks holding a prefix longer than c), largest c first.
    cuts: Vec<(u8, std::collections::HashSet<K, FastHash>)>,
}

#[cfg(test)]
pub(crate) type Naive4 = Naive<u32>;
#[cfg(test)]
pub(crate) type Naive6 = Naive<u128>;

#[cfg(test)]
pub(crate) trait Key: Copy + Eq + std::hash::Hash {
    const BITS: u8;
    fn mask(self, len: u8) -> Self;
}

#[cfg(test)]
impl Key for u32 {
    const BITS: u8 = 32;
    fn mask(self, len: u8) -> Self {
        self & mask32(len)
    }
}

#[cfg(test)]
impl Key for u128 {
    const BITS: u8 = 128;
    fn mask(self, len: u8) -> Self {
        self & mask128(len)
    }
}

#[cfg(test)]
impl<K: Key> Default for Naive<K> {
    fn default() -> Self {
        let cuts: &[u8] = if K::BITS == 32 {
            &[24, 16]
        } else {
            &[64, 48, 32]
        };
        Self {
            bits: K::BITS,
            by_len: (0..=K::BITS).map(|_| Default::default()).collect(),
            lens: Vec::new(),
            cuts: cuts.iter().map(|&c| (c, Default::default())).collect(),
        }
    }
}

#[cfg(test)]
impl<K: Key> Naive<K> {
    pub(crate) fn insert(&mut self, p: K, len: u8, v: u32) {
        self.by_len[len as usize].insert(p.mask(len), v);
        for (c, set) in &mut self.cuts {
            if len > *c {
                set.insert(p.mask(*c));
            }
        }
        if !self.lens.contains(&len) {
            self.lens.push(len);
            self.lens.sort_unstable_by(|a, b| b.cmp(a));
        }
    }

    pub(crate) fn lookup(&self, a: K) -> Option<u32> {
        let mut max = self.bits;
        for (c, set) in &self.cuts {
            if set.contains(&a.mask(*c)) {
                break;
            }
            max = *c;
        }
        self.lens
            .iter()
            .filter(|&&l| l <= max)
            .find_map(|&l| self.by_len[l as usize].get(&a.mask(l)).copied())
    }

    pub(crate) fn prefixes(&self) -> Vec<(K, u8, u32)> {
        let mut out = Vec::new();
        for (l, m) in self.by_len.iter().enumerate() {
            out.extend(m.iter().map(|(&p, &v)| (p, l as u8, v)));
        }
        out
    }
}

/// A cheap multiplicative hasher, so the reference stays quick in debug builds.
#[cfg(test)]
#[derive(Clone, Copy, Default)]
pub(crate) struct FastHash;

#[cfg(test)]
impl std::hash::BuildHasher for FastHash {
    type Hasher = FastHasher;
    fn build_hasher(&self) -> FastHasher {
        FastHasher(0)
    }
}

#[cfg(test)]
pub(crate) struct FastHasher(u64);

#[cfg(test)]
impl std::hash::Hasher for FastHasher {
    fn finish(&self) -> u64 {
        // Keys are masked prefixes (low bits zero): fold the well-mixed high
        // half of the product into the low bits the table indexes by.
        self.0 ^ (self.0 >> 32)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(n as u64);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn write_u128(&mut self, n: u128) {
        self.write_u64(n as u64);
        self.write_u64((n >> 64) as u64);
    }
}

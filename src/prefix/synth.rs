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

/// `n` random IPv4 prefixes `(prefix, len, asn)`: 56 % /24, 43 % /16-/23,
/// 0.2 % /8-/15, 0.5 % /25-/32 (to exercise the second level).
pub fn v4_prefixes(n: usize, seed: u64) -> Vec<(u32, u8, u32)> {
    let mut rng = SplitMix64::new(seed);
    (0..n)
        .map(|_| {
            let r = rng.below(1000);
            let len = match r {
                0..=559 => 24,
                560..=992 => 16 + rng.below(8) as u8,
                993..=994 => 8 + rng.below(8) as u8,
                _ => 25 + rng.below(8) as u8,
            };
            (rng.next_u32() & mask32(len), len, asn(&mut rng))
        })
        .collect()
}

/// `n` random IPv6 prefixes `(prefix, len, asn)` inside 2000::/3: 48 % /48,
/// 38 % /32-/47, 10.5 % /19-/31, 3 % /49-/64, 0.5 % /65-/128 (the DFZ has
/// almost nothing past /48; the tail keeps deep paths in the tests).
pub fn v6_prefixes(n: usize, seed: u64) -> Vec<(u128, u8, u32)> {
    let mut rng = SplitMix64::new(seed);
    (0..n)
        .map(|_| {
            let r = rng.below(1000);
            let len = match r {
                0..=479 => 48,
                480..=859 => 32 + rng.below(16) as u8,
                860..=964 => 19 + rng.below(13) as u8,
                965..=994 => 49 + rng.below(16) as u8,
                _ => 65 + rng.below(64) as u8,
            };
            let a = (rng.next_u128() >> 3) | (1u128 << 125);
            (a & mask128(len), len, asn(&mut rng))
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

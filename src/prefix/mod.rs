//! Longest-prefix match over IPv4 and IPv6 routing tables, and loaders for
//! the files that feed them (AS tables, named networks).
//!
//! - [`Lpm4`]: DIR-24-8 (a 16M-entry first level indexed by the top 24 bits,
//!   256-entry second-level chunks for prefixes longer than /24). One or two
//!   memory reads per lookup.
//! - [`Lpm6`]: a poptrie-style compressed multibit trie: a 20-bit direct
//!   first level, then 6-bit strides whose 64-way nodes are two bitmaps and
//!   two base offsets (children and run-length-compressed leaves are found by
//!   popcount). A /48 is resolved in at most five node reads.
//!
//! Both tables map a prefix to a `u32` payload (an ASN, a network index, an
//! index into a caller's `Vec`), stored in the table's entries themselves
//! (values from 2^30 - 1 up, such as 4-byte private ASNs, behind one more
//! read: see [`SlotValues`]). Tables are built once by a builder
//! (`Lpm4Builder`, `Lpm6Builder`), then read-only: `Send + Sync`, shared by
//! workers through `Arc` / `arc-swap`, rebuilt off the hot path on reload.
//!
//! Insert order does not matter: the longest matching prefix wins. The same
//! prefix inserted twice keeps the value inserted last.
//!
//! Allocation and panics: building allocates (and takes up to a few seconds
//! for a full Internet table); `lookup` never allocates and never panics.
//! No unsafe code.

mod load;
#[cfg(any(test, feature = "testkit"))]
pub mod synth;
mod v4;
mod v6;

pub use load::{AsTable, AsTableBuilder, LineError, LoadError, NetworkTable, NetworkTableBuilder};
pub use v4::{Lpm4, Lpm4Builder};
pub use v6::{Lpm6, Lpm6Builder, BATCH_LANES};

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Why a prefix was refused by a builder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    /// The prefix length is longer than the address (33+ for IPv4, 129+ for IPv6).
    #[error("prefix length /{len} is longer than {max} bits")]
    BadLength { len: u8, max: u8 },
    /// More prefixes than a table can index (2^31 - 2).
    #[error("too many prefixes (at most {max})")]
    TooMany { max: usize },
    /// The table does not fit in the memory the process may have.
    #[error(transparent)]
    OutOfMemory(#[from] crate::memory::OutOfMemory),
}

/// Largest number of prefix insertions one builder accepts. Value ids and
/// chunk pointers share a `u32` with a flag bit, hence the limit.
pub const MAX_PREFIXES: usize = (1 << 31) - 2;

/// Flag of a table entry holding an index into the side table of large
/// values instead of the value itself.
pub(crate) const INDIRECT: u32 = 1 << 30;

/// How the tables store a value in an entry (a `u32` whose top bit the
/// tables keep for their own pointers): a value below `INDIRECT - 1` as
/// itself + 1 (0 = no route), so the lookup's last table read yields the
/// value; a larger one as `INDIRECT | index` into `big`, one more read.
#[derive(Default)]
pub(crate) struct SlotValues {
    big: Vec<u32>,
    ids: HashMap<u32, u32>,
}

impl SlotValues {
    /// The entry that stores `value`.
    pub(crate) fn slot(&mut self, value: u32) -> Result<u32, crate::memory::OutOfMemory> {
        if value < INDIRECT - 1 {
            return Ok(value + 1);
        }
        if let Some(&id) = self.ids.get(&value) {
            return Ok(INDIRECT | id);
        }
        // Each index must fit below the flag bits (2^30 distinct large values
        // would take tens of GiB of insertions first).
        let too_big = crate::memory::OutOfMemory {
            bytes: self.big.len().saturating_mul(16),
        };
        if self.big.len() >= INDIRECT as usize - 1 {
            return Err(too_big);
        }
        self.ids.try_reserve(1).map_err(|_| too_big)?;
        crate::memory::try_grow(&mut self.big, 1)?;
        self.big.push(value);
        let id = (self.big.len() - 1) as u32;
        self.ids.insert(value, id);
        Ok(INDIRECT | id)
    }

    /// The side table of large values, for the built table.
    pub(crate) fn finish(mut self) -> Vec<u32> {
        self.big.shrink_to_fit();
        self.big
    }
}

/// The value an entry stores (see [`SlotValues`]), or `None` for 0.
#[inline(always)]
pub(crate) fn slot_value(e: u32, big: &[u32]) -> Option<u32> {
    if e & INDIRECT == 0 {
        e.checked_sub(1)
    } else {
        big.get((e & !INDIRECT) as usize).copied()
    }
}

/// An IPv4 or IPv6 prefix with its host bits cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Prefix {
    V4 { addr: u32, len: u8 },
    V6 { addr: u128, len: u8 },
}

impl Prefix {
    /// Builds a prefix, checking the length and that no host bit is set.
    pub fn new(addr: IpAddr, len: u8) -> Result<Self, LineError> {
        match addr {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                if len > 32 {
                    return Err(LineError::BadLength {
                        len: u32::from(len),
                        max: 32,
                    });
                }
                if a & !mask32(len) != 0 {
                    return Err(LineError::HostBits);
                }
                Ok(Prefix::V4 { addr: a, len })
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                if len > 128 {
                    return Err(LineError::BadLength {
                        len: u32::from(len),
                        max: 128,
                    });
                }
                if a & !mask128(len) != 0 {
                    return Err(LineError::HostBits);
                }
                Ok(Prefix::V6 { addr: a, len })
            }
        }
    }

    /// The prefix length in bits.
    pub fn prefix_len(&self) -> u8 {
        match *self {
            Prefix::V4 { len, .. } | Prefix::V6 { len, .. } => len,
        }
    }

    /// True for the default route (`0.0.0.0/0`, `::/0`), which matches everything.
    pub fn is_default(&self) -> bool {
        self.prefix_len() == 0
    }

    pub fn is_v4(&self) -> bool {
        matches!(self, Prefix::V4 { .. })
    }
}

impl FromStr for Prefix {
    type Err = LineError;

    /// Parses `addr/len` or a bare address (a host route). Host bits must be
    /// clear: `10.1.2.3/8` is refused rather than guessed at.
    fn from_str(s: &str) -> Result<Self, LineError> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| LineError::BadAddress(a.to_owned()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match l {
            None => max,
            Some(l) => {
                let n: u32 = l.parse().map_err(|_| LineError::BadAddress(s.to_owned()))?;
                if n > u32::from(max) {
                    return Err(LineError::BadLength { len: n, max });
                }
                n as u8
            }
        };
        Prefix::new(addr, len)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Prefix::V4 { addr, len } => write!(f, "{}/{}", Ipv4Addr::from(addr), len),
            Prefix::V6 { addr, len } => write!(f, "{}/{}", Ipv6Addr::from(addr), len),
        }
    }
}

/// Network mask of `len` leading ones (`len` 0..=32).
#[inline]
pub(crate) const fn mask32(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len as u32)
    }
}

/// Network mask of `len` leading ones (`len` 0..=128).
#[inline]
pub(crate) const fn mask128(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - len as u32)
    }
}

/// The minimal list of prefixes exactly covering the inclusive range
/// `start..=end` of `bits`-bit addresses (32 or 128), in address order.
/// Returns nothing when `start > end`.
pub fn range_to_prefixes(start: u128, end: u128, bits: u8) -> Vec<(u128, u8)> {
    let mut out = Vec::new();
    if start > end {
        return out;
    }
    let mut cur = start;
    loop {
        // Largest block aligned at `cur`: as many trailing zero bits as cur has
        // (all of them for cur == 0), then shrink until it ends at or before `end`.
        let mut size_bits = if cur == 0 {
            u32::from(bits)
        } else {
            cur.trailing_zeros().min(u32::from(bits))
        };
        loop {
            // Last address of the block, computed without overflow for a
            // 128-bit block.
            let last = if size_bits == 128 {
                u128::MAX
            } else {
                cur + ((1u128 << size_bits) - 1)
            };
            if last <= end {
                out.push((cur, bits - size_bits as u8));
                if last == end {
                    return out;
                }
                cur = last + 1;
                break;
            }
            size_bits -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_parse() {
        assert_eq!(
            "10.0.0.0/8".parse::<Prefix>().unwrap(),
            Prefix::V4 {
                addr: 0x0a00_0000,
                len: 8
            }
        );
        assert_eq!(
            "10.1.2.3".parse::<Prefix>().unwrap(),
            Prefix::V4 {
                addr: 0x0a01_0203,
                len: 32
            }
        );
        assert_eq!(
            "0.0.0.0/0".parse::<Prefix>().unwrap(),
            Prefix::V4 { addr: 0, len: 0 }
        );
        assert_eq!(
            "2001:db8::/32".parse::<Prefix>().unwrap(),
            Prefix::V6 {
                addr: 0x2001_0db8 << 96,
                len: 32
            }
        );
        assert_eq!(
            "::/0".parse::<Prefix>().unwrap(),
            Prefix::V6 { addr: 0, len: 0 }
        );
        assert_eq!("10.1.2.3/8".parse::<Prefix>(), Err(LineError::HostBits));
        assert_eq!(
            "10.0.0.0/33".parse::<Prefix>(),
            Err(LineError::BadLength { len: 33, max: 32 })
        );
        assert_eq!(
            "2001:db8::/129".parse::<Prefix>(),
            Err(LineError::BadLength { len: 129, max: 128 })
        );
        assert!(matches!(
            "10.0.0/8".parse::<Prefix>(),
            Err(LineError::BadAddress(_))
        ));
        assert!(matches!(
            "10.0.0.0/x".parse::<Prefix>(),
            Err(LineError::BadAddress(_))
        ));
        assert!(matches!(
            "10.0.0.0/".parse::<Prefix>(),
            Err(LineError::BadAddress(_))
        ));
        assert_eq!(
            "2001:db8::/32".parse::<Prefix>().unwrap().to_string(),
            "2001:db8::/32"
        );
    }

    #[test]
    fn masks() {
        assert_eq!(mask32(0), 0);
        assert_eq!(mask32(1), 0x8000_0000);
        assert_eq!(mask32(24), 0xffff_ff00);
        assert_eq!(mask32(32), u32::MAX);
        assert_eq!(mask128(0), 0);
        assert_eq!(mask128(128), u128::MAX);
        assert_eq!(mask128(64), (u64::MAX as u128) << 64);
    }

    fn v4r(a: &str, b: &str) -> Vec<String> {
        let a = u32::from(a.parse::<Ipv4Addr>().unwrap()) as u128;
        let b = u32::from(b.parse::<Ipv4Addr>().unwrap()) as u128;
        range_to_prefixes(a, b, 32)
            .into_iter()
            .map(|(p, l)| {
                Prefix::V4 {
                    addr: p as u32,
                    len: l,
                }
                .to_string()
            })
            .collect()
    }

    #[test]
    fn ranges_to_prefixes() {
        assert_eq!(v4r("1.0.0.0", "1.0.0.255"), ["1.0.0.0/24"]);
        assert_eq!(v4r("1.0.0.1", "1.0.0.1"), ["1.0.0.1/32"]);
        assert_eq!(
            v4r("1.0.0.1", "1.0.0.6"),
            ["1.0.0.1/32", "1.0.0.2/31", "1.0.0.4/31", "1.0.0.6/32"]
        );
        assert_eq!(v4r("1.0.0.0", "1.0.3.255"), ["1.0.0.0/22"]);
        assert_eq!(v4r("1.0.4.0", "1.0.7.255"), ["1.0.4.0/22"]);
        assert_eq!(
            v4r("1.0.1.0", "1.0.4.255"),
            ["1.0.1.0/24", "1.0.2.0/23", "1.0.4.0/24"]
        );
        assert_eq!(v4r("0.0.0.0", "255.255.255.255"), ["0.0.0.0/0"]);
        assert_eq!(
            v4r("255.255.255.255", "255.255.255.255"),
            ["255.255.255.255/32"]
        );
        assert_eq!(v4r("128.0.0.0", "255.255.255.255"), ["128.0.0.0/1"]);
        assert!(v4r("1.0.0.2", "1.0.0.1").is_empty());
        assert_eq!(range_to_prefixes(0, u128::MAX, 128), [(0, 0)]);
        assert_eq!(range_to_prefixes(1, u128::MAX, 128).len(), 128);
        assert_eq!(
            range_to_prefixes(u128::MAX, u128::MAX, 128),
            [(u128::MAX, 128)]
        );
        // Exhaustive cover check on small ranges: union is exact, blocks aligned.
        let mut rng = synth::SplitMix64::new(7);
        for _ in 0..2000 {
            let a = rng.next_u32() as u128;
            let span_bits = rng.below(20) + 1;
            let b = (a + rng.below(1 << span_bits) as u128).min(u32::MAX as u128);
            let ps = range_to_prefixes(a, b, 32);
            let mut next = a;
            for &(p, l) in &ps {
                assert_eq!(p, next);
                let size = 1u128 << (32 - l);
                assert_eq!(p % size, 0, "unaligned block");
                next = p + size;
            }
            assert_eq!(next, b + 1);
            // minimal: no two neighbours could merge into one aligned block
            for w in ps.windows(2) {
                let (p0, l0) = w[0];
                let (_, l1) = w[1];
                let merged = l0 == l1 && l0 > 0 && p0 % (1u128 << (33 - l0)) == 0;
                assert!(!merged, "{ps:?} not minimal");
            }
        }
    }
}

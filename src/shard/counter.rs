//! The counters every shard and the flow cache write, and the plain values
//! a scrape reads out of them.
//!
//! [`Counter`] is the one counter type: single writer, relaxed atomics.
//! [`PacketsBytes`] pairs two of them; [`Count`] is its plain value.
//! [`ByDirection`] holds one value per [`Direction`] (all four, or in and out
//! only as [`InOut`]) and is indexed by it, so no code does index arithmetic
//! on directions. No allocation, no unsafe; indexing an [`InOut`] with
//! `Internal` or `External` panics (a bug: such frames have no remote side
//! and no host point of view).

use std::ops::{AddAssign, Index, IndexMut};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::hosts::Direction;

/// A counter written by one thread (its shard's worker, or the exporter
/// thread) and read by any.
///
/// Single writer: a relaxed load + store, no locked read-modify-write.
/// A reader may lag one batch behind, never sees a torn value.
#[derive(Debug, Default)]
#[repr(transparent)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline(always)]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    /// Sets the value (for gauges such as a cache's size); same single writer.
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Relaxed);
    }

    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// Packets and bytes, the pair nearly every metric has.
#[derive(Debug, Default)]
pub struct PacketsBytes {
    packets: Counter,
    bytes: Counter,
}

impl PacketsBytes {
    /// Counts one frame of `bytes` bytes.
    #[inline(always)]
    pub fn add(&self, bytes: u64) {
        self.packets.add(1);
        self.bytes.add(bytes);
    }

    /// Counts `packets` packets of `bytes` bytes in all (a flow record).
    #[inline(always)]
    pub fn add_n(&self, packets: u64, bytes: u64) {
        self.packets.add(packets);
        self.bytes.add(bytes);
    }

    /// The current values.
    #[inline]
    pub fn get(&self) -> Count {
        Count {
            packets: self.packets.get(),
            bytes: self.bytes.get(),
        }
    }
}

/// Packets and bytes as plain numbers: a [`PacketsBytes`] read at scrape,
/// or a sum of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Count {
    pub packets: u64,
    pub bytes: u64,
}

impl Count {
    pub fn is_zero(&self) -> bool {
        *self == Count::default()
    }

    /// `self - other`, each field at least 0.
    pub fn saturating_sub(self, other: Count) -> Count {
        Count {
            packets: self.packets.saturating_sub(other.packets),
            bytes: self.bytes.saturating_sub(other.bytes),
        }
    }
}

impl AddAssign for Count {
    fn add_assign(&mut self, o: Count) {
        self.packets += o.packets;
        self.bytes += o.bytes;
    }
}

/// One `T` per direction, indexed by [`Direction`]: all four directions
/// (`N` = 4, the default), or in and out only ([`InOut`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByDirection<T, const N: usize = 4>([T; N]);

/// In and out only: the remote side of a frame (AS, network) or a host's
/// own point of view.
pub type InOut<T> = ByDirection<T, 2>;

impl<T: Default, const N: usize> Default for ByDirection<T, N> {
    fn default() -> Self {
        ByDirection(std::array::from_fn(|_| T::default()))
    }
}

impl<T, const N: usize> Index<Direction> for ByDirection<T, N> {
    type Output = T;
    #[inline(always)]
    fn index(&self, d: Direction) -> &T {
        &self.0[d as usize]
    }
}

impl<T, const N: usize> IndexMut<Direction> for ByDirection<T, N> {
    #[inline(always)]
    fn index_mut(&mut self, d: Direction) -> &mut T {
        &mut self.0[d as usize]
    }
}

impl<T, const N: usize> ByDirection<T, N> {
    /// The directions this value holds, in `Direction` order.
    pub const DIRECTIONS: [Direction; N] = {
        assert!(N <= 4, "there are four directions");
        let mut d = [Direction::In; N];
        let mut i = 0;
        while i < N {
            d[i] = Direction::ALL[i];
            i += 1;
        }
        d
    };

    /// The value of `d`, `None` for a direction this value does not hold.
    #[inline]
    pub fn get(&self, d: Direction) -> Option<&T> {
        self.0.get(d as usize)
    }

    /// (direction, value) in `Direction` order.
    pub fn iter(&self) -> impl Iterator<Item = (Direction, &T)> {
        Self::DIRECTIONS.into_iter().zip(self.0.iter())
    }

    /// A value per direction made from each of these.
    pub fn map<U>(&self, mut f: impl FnMut(&T) -> U) -> ByDirection<U, N> {
        ByDirection(std::array::from_fn(|i| f(&self.0[i])))
    }
}

impl<const N: usize> ByDirection<PacketsBytes, N> {
    /// Counts one frame of `bytes` bytes in direction `d`.
    #[inline(always)]
    pub fn add(&self, d: Direction, bytes: u64) {
        self[d].add(bytes);
    }

    /// Counts `packets` packets of `bytes` bytes in all in direction `d`.
    #[inline(always)]
    pub fn add_n(&self, d: Direction, packets: u64, bytes: u64) {
        self[d].add_n(packets, bytes);
    }

    /// The current values.
    pub fn load(&self) -> ByDirection<Count, N> {
        self.map(PacketsBytes::get)
    }
}

impl<const N: usize> ByDirection<Count, N> {
    /// Sum over the directions.
    pub fn total(&self) -> Count {
        let mut t = Count::default();
        for c in &self.0 {
            t += *c;
        }
        t
    }

    pub fn is_zero(&self) -> bool {
        self.0.iter().all(Count::is_zero)
    }

    /// `self - other` per direction and field, each at least 0.
    pub fn saturating_sub(&self, other: &Self) -> Self {
        ByDirection(std::array::from_fn(|i| {
            self.0[i].saturating_sub(other.0[i])
        }))
    }
}

impl<const N: usize> AddAssign<&ByDirection<Count, N>> for ByDirection<Count, N> {
    fn add_assign(&mut self, o: &ByDirection<Count, N>) {
        for (a, b) in self.0.iter_mut().zip(&o.0) {
            *a += *b;
        }
    }
}

impl<const N: usize> AddAssign for ByDirection<Count, N> {
    fn add_assign(&mut self, o: ByDirection<Count, N>) {
        *self += &o;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexed_by_direction_not_by_position() {
        let c: ByDirection<PacketsBytes> = Default::default();
        c.add(Direction::In, 100);
        c.add(Direction::External, 7);
        c.add(Direction::External, 8);
        let v = c.load();
        assert_eq!(
            v[Direction::In],
            Count {
                packets: 1,
                bytes: 100
            }
        );
        assert!(v[Direction::Out].is_zero() && v[Direction::Internal].is_zero());
        assert_eq!(
            v[Direction::External],
            Count {
                packets: 2,
                bytes: 15
            }
        );
        assert_eq!(
            v.total(),
            Count {
                packets: 3,
                bytes: 115
            }
        );
        let dirs: Vec<Direction> = v.iter().map(|(d, _)| d).collect();
        assert_eq!(dirs, Direction::ALL);
    }

    #[test]
    fn in_out_holds_two_directions() {
        let c: InOut<PacketsBytes> = Default::default();
        c.add(Direction::Out, 60);
        let v = c.load();
        assert_eq!(InOut::<Count>::DIRECTIONS, [Direction::In, Direction::Out]);
        assert_eq!(v.get(Direction::Out).map(|c| c.bytes), Some(60));
        assert_eq!(v.get(Direction::Internal), None);
        assert_eq!(v.get(Direction::External), None);
    }

    #[test]
    #[should_panic]
    fn in_out_has_no_internal() {
        let c: InOut<PacketsBytes> = Default::default();
        c.add(Direction::Internal, 1);
    }

    #[test]
    fn sums_and_differences() {
        let mut a: InOut<Count> = Default::default();
        a[Direction::In] = Count {
            packets: 5,
            bytes: 500,
        };
        let mut b = a;
        b[Direction::Out].bytes = 3;
        a += &b;
        assert_eq!(
            a[Direction::In],
            Count {
                packets: 10,
                bytes: 1000
            }
        );
        assert_eq!(a[Direction::Out].bytes, 3);
        let d = b.saturating_sub(&a);
        assert!(d.is_zero(), "never below zero: {d:?}");
        assert_eq!(a.saturating_sub(&b)[Direction::In].bytes, 500);
    }

    #[test]
    fn counter_set_and_add() {
        let c = Counter::default();
        c.add(u64::MAX);
        c.add(2);
        assert_eq!(c.get(), 1, "wraps like the kernel's counters");
        c.set(42);
        assert_eq!(c.get(), 42);
    }
}

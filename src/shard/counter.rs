use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A counter written by one thread (its shard's worker) and read by any.
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

    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// Packets and bytes, the pair nearly every metric has.
#[derive(Debug, Default)]
pub struct PacketsBytes {
    pub packets: Counter,
    pub bytes: Counter,
}

impl PacketsBytes {
    #[inline(always)]
    pub fn add(&self, bytes: u64) {
        self.packets.add(1);
        self.bytes.add(bytes);
    }
}

//! The table of pending handshakes, shared by every worker.
//!
//! The two directions of a connection may be captured on different rx
//! queues and different interfaces (an optical tap gives one fibre per
//! direction; RSS is rarely symmetric), so the SYN, the SYN/ACK and the ACK
//! of one handshake may reach three workers in any order. They meet here.
//!
//! A handshake is keyed by a 64-bit hash of its client→server 4-tuple and
//! the client's ISN, which every one of the three frames gives: the SYN's
//! sequence number, the SYN/ACK's acknowledgment number minus one, the
//! ACK's sequence number minus one (no data in the SYN; a TCP Fast Open
//! handshake whose SYN carries data times out instead of being measured).
//!
//! Layout: a fixed array of buckets of [`WAYS`] entries, each bucket a few
//! cache lines with its own lock word. A bucket is locked (one CAS, held
//! for a few dozen instructions) only by a frame of a handshake that hashes
//! to it: SYN, SYN/ACK, or an ACK that passed the filter. Nothing else on
//! the hot path touches the table. The entries are atomics (relaxed inside
//! the lock, which gives the ordering), so there is no unsafe code.
//!
//! Pure ACKs are by far the most common TCP frames; only the one that
//! completes a handshake matters. A counting filter of [`FILTER_SLOTS`]
//! bytes (indexed by the client ISN, which is the ACK's sequence number
//! minus one), mirrored as one bit per slot, says "no pending handshake can
//! have this ISN" with one load from a 4 KiB bit array; only the rest probe
//! the table. Its size is fixed, whatever the table's, so that the check
//! is a multiply, a shift and a load, with no bound to load or test.
//!
//! Allocates once (at start-up); never panics; no unsafe.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering::*};
use std::sync::Arc;

/// Entries per bucket.
pub const WAYS: usize = 7;

/// `info` bits of an entry.
const SEEN_SYN: u64 = 1 << 32;
const SEEN_SYNACK: u64 = 1 << 33;
const SEEN_ACK: u64 = 1 << 34;
const AMBIGUOUS: u64 = 1 << 35;
/// The low 32 bits hold the server ISN (from the SYN/ACK, or from an ACK
/// seen before it).
const ISN_MASK: u64 = 0xffff_ffff;

/// One cache line per entry.
#[repr(align(64))]
#[derive(Default)]
struct Entry {
    /// Frame time of the first frame that created the entry (for expiry).
    born: AtomicU64,
    t_syn: AtomicU64,
    t_synack: AtomicU64,
    t_ack: AtomicU64,
    info: AtomicU64,
    /// The client ISN (to clear the filter when the entry is freed).
    client_isn: AtomicU32,
}

/// The lock and the keys in the first cache line, so that taking the
/// lock and finding an entry touch one line, and the entry one more.
#[repr(C, align(64))]
#[derive(Default)]
struct Bucket {
    lock: AtomicU32,
    /// 0: free.
    keys: [AtomicU64; WAYS],
    entries: [Entry; WAYS],
}

const _: () = assert!(std::mem::size_of::<Bucket>() == 64 * (WAYS + 1));

impl Bucket {
    fn find(&self, key: u64) -> Option<usize> {
        self.keys.iter().position(|k| k.load(Relaxed) == key)
    }
}

/// log2 of the filter's slots.
const FILTER_LOG2: u32 = 15;
/// Slots of the ACK filter: twice the buckets of the default table (more
/// would not fit in L1 next to the worker's counters; a table much fuller
/// than 32,768 handshakes sets most bits whatever the size, and its ACKs
/// then probe the table).
pub const FILTER_SLOTS: usize = 1 << FILTER_LOG2;

/// The filter's bits (a fixed size: the index needs no bound check).
type Bits = [AtomicU64; FILTER_SLOTS / 64];

/// A handle on the table's filter bits (see [`HandshakeTable::filter_bits`]).
#[derive(Clone)]
pub struct FilterBits {
    bits: Arc<Bits>,
}

impl FilterBits {
    /// False when no pending handshake has this client ISN.
    #[inline(always)]
    pub fn may_pend(&self, client_isn: u32) -> bool {
        let i = filter_slot(client_isn);
        self.bits[i / 64].load(Relaxed) & (1 << (i % 64)) != 0
    }
}

/// The filter slot of a client ISN (Fibonacci hashing: the top bits of a
/// 32-bit multiply, so ISNs that differ only in their low or high bits
/// still spread).
#[inline(always)]
fn filter_slot(client_isn: u32) -> usize {
    (client_isn.wrapping_mul(0x9e37_79b1) >> (32 - FILTER_LOG2)) as usize
}

/// Which frame of a handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// SYN without ACK.
    Syn,
    /// SYN/ACK; `server_isn` is its sequence number.
    SynAck { server_isn: u32 },
    /// The client's first ACK; `server_isn` is its acknowledgment number
    /// minus one.
    Ack { server_isn: u32 },
}

/// What an event did to its handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Recorded; the handshake is still waiting for a frame.
    Pending,
    /// The third frame: frame times of the SYN, SYN/ACK and ACK
    /// (nanoseconds, the capture's clock).
    Complete { syn: u64, synack: u64, ack: u64 },
    /// Completed, but the SYN or the SYN/ACK was sent more than once
    /// (Karn: which copy was answered is unknown).
    Ambiguous,
    /// No room in the handshake's bucket: not measured.
    Overflow,
    /// Nothing to do (an ACK of no pending handshake, a duplicate ACK).
    Ignored,
}

/// Counts the table keeps for the scrape: handshakes forgotten unfinished.
#[derive(Default)]
pub struct TableStats {
    pub timed_out: AtomicU64,
}

/// The shared table. See the module docs.
pub struct HandshakeTable {
    buckets: Box<[Bucket]>,
    /// Per filter slot: how many pending handshakes have a client ISN of
    /// that slot (saturating at 255, then never decremented).
    filter: Box<[AtomicU8]>,
    /// One bit per filter slot: its count is not 0. What the hot path reads
    /// (4 KiB: stays in L1).
    bits: Arc<Bits>,
    /// Buckets − 1.
    mask: usize,
    timeout_ns: u64,
    pub stats: TableStats,
}

/// 64-bit mix (splitmix64's finaliser).
#[inline(always)]
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The key of a handshake: its client and server (address, port) and the
/// client ISN. Never 0.
pub fn key(client: &[u8], server: &[u8], cport: u16, sport: u16, client_isn: u32) -> u64 {
    let mut h = 0x9e37_79b9_7f4a_7c15u64 ^ (u64::from(cport) << 16 | u64::from(sport));
    if let (Ok(c), Ok(s)) = (<[u8; 4]>::try_from(client), <[u8; 4]>::try_from(server)) {
        // IPv4: both addresses in one word.
        h = mix(h ^ (u64::from(u32::from_le_bytes(c)) << 32 | u64::from(u32::from_le_bytes(s))));
    } else {
        for chunk in client.chunks(8).chain(server.chunks(8)) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            h = mix(h ^ u64::from_le_bytes(b));
        }
    }
    h = mix(h ^ u64::from(client_isn) ^ (u64::from(client.len() as u8) << 40));
    h | 1
}

impl HandshakeTable {
    /// A table for `max_pending` handshakes: `max_pending` rounded up to a
    /// power of two (at least 1024), divided by 4, buckets of [`WAYS`]
    /// entries: 1.75 entries per handshake, so that a bucket rarely fills
    /// before the table holds `max_pending` (512 bytes per bucket: 8 MiB
    /// for the default 65536).
    pub fn new(max_pending: u32, timeout_ns: u64) -> Self {
        let buckets = (max_pending as usize).next_power_of_two().max(1024) / 4;
        HandshakeTable {
            buckets: (0..buckets).map(|_| Bucket::default()).collect(),
            filter: (0..FILTER_SLOTS).map(|_| AtomicU8::new(0)).collect(),
            bits: Arc::new(std::array::from_fn(|_| AtomicU64::new(0))),
            mask: buckets - 1,
            timeout_ns,
            stats: TableStats::default(),
        }
    }

    /// Handshakes the table can hold.
    pub fn capacity(&self) -> usize {
        self.buckets.len() * WAYS
    }

    /// The bucket of a key (its low bit is always set: skip it).
    #[inline(always)]
    fn bucket_of(&self, key: u64) -> usize {
        (key >> 1) as usize & self.mask
    }

    /// False when no pending handshake has this client ISN.
    #[inline(always)]
    pub fn may_pend(&self, client_isn: u32) -> bool {
        self.filter_bits().may_pend(client_isn)
    }

    /// The filter's bits, for a worker to keep at hand (the hot-path check
    /// of an ACK is then one load, not a chain of three).
    pub fn filter_bits(&self) -> FilterBits {
        FilterBits {
            bits: self.bits.clone(),
        }
    }

    fn filter_add(&self, client_isn: u32) {
        let i = filter_slot(client_isn);
        let was = self.filter[i].fetch_update(SeqCst, SeqCst, |v| v.checked_add(1));
        if was == Ok(0) {
            self.bits[i / 64].fetch_or(1 << (i % 64), SeqCst);
        }
    }

    fn filter_remove(&self, client_isn: u32) {
        let i = filter_slot(client_isn);
        // A saturated counter (255) stays so: it only costs probes.
        let was = self.filter[i].fetch_update(SeqCst, SeqCst, |v| {
            (v != u8::MAX).then(|| v.saturating_sub(1))
        });
        if was == Ok(1) {
            self.bits[i / 64].fetch_and(!(1 << (i % 64)), SeqCst);
            // Another worker may have counted one in between and set the
            // bit before this cleared it: set it again.
            if self.filter[i].load(SeqCst) != 0 {
                self.bits[i / 64].fetch_or(1 << (i % 64), SeqCst);
            }
        }
    }

    fn lock(&self, b: &Bucket) {
        let mut spins = 0u32;
        while b
            .lock
            .compare_exchange_weak(0, 1, Acquire, Relaxed)
            .is_err()
        {
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                // The holder may have been preempted (more workers than cores).
                std::thread::yield_now();
            }
        }
    }

    fn unlock(&self, b: &Bucket) {
        b.lock.store(0, Release);
    }

    fn expired(&self, e: &Entry, now: u64) -> bool {
        now.saturating_sub(e.born.load(Relaxed)) > self.timeout_ns
    }

    /// Frees entry `i` of `b` (inside the bucket's lock).
    fn free(&self, b: &Bucket, i: usize) {
        b.keys[i].store(0, Relaxed);
        self.filter_remove(b.entries[i].client_isn.load(Relaxed));
    }

    /// Applies one handshake frame at time `t` (ns) to the handshake
    /// `key` with client ISN `client_isn`.
    pub fn event(&self, key: u64, client_isn: u32, ev: Event, t: u64) -> Outcome {
        let b = &self.buckets[self.bucket_of(key)];
        self.lock(b);
        let out = self.event_locked(b, key, client_isn, ev, t);
        self.unlock(b);
        out
    }

    fn event_locked(&self, b: &Bucket, key: u64, client_isn: u32, ev: Event, t: u64) -> Outcome {
        let i = match b.find(key) {
            Some(i) => i,
            None => {
                if matches!(ev, Event::Ack { .. }) {
                    // An ACK never starts a handshake: it follows its SYN
                    // on the same fibre and queue, so the entry would be here.
                    return Outcome::Ignored;
                }
                let i = match b.find(0) {
                    Some(i) => i,
                    None => match (0..WAYS).find(|&i| self.expired(&b.entries[i], t)) {
                        Some(i) => {
                            self.stats.timed_out.fetch_add(1, Relaxed);
                            self.free(b, i);
                            i
                        }
                        None => return Outcome::Overflow,
                    },
                };
                let e = &b.entries[i];
                b.keys[i].store(key, Relaxed);
                e.born.store(t, Relaxed);
                e.info.store(0, Relaxed);
                e.client_isn.store(client_isn, Relaxed);
                self.filter_add(client_isn);
                i
            }
        };
        let e = &b.entries[i];
        let mut flags = e.info.load(Relaxed);
        match ev {
            Event::Syn => {
                if flags & SEEN_SYN != 0 {
                    flags |= AMBIGUOUS;
                } else {
                    flags |= SEEN_SYN;
                    e.t_syn.store(t, Relaxed);
                }
            }
            Event::SynAck { server_isn } => {
                if flags & SEEN_SYNACK != 0 {
                    flags |= AMBIGUOUS;
                } else {
                    if flags & SEEN_ACK != 0 && flags & ISN_MASK != u64::from(server_isn) {
                        // The ACK seen first answered another SYN/ACK.
                        flags |= AMBIGUOUS;
                    }
                    flags = (flags & !ISN_MASK) | SEEN_SYNACK | u64::from(server_isn);
                    e.t_synack.store(t, Relaxed);
                }
            }
            Event::Ack { server_isn } => {
                if flags & SEEN_ACK != 0 {
                    return Outcome::Ignored;
                }
                if flags & SEEN_SYNACK != 0 && flags & ISN_MASK != u64::from(server_isn) {
                    // Acknowledges something other than the SYN/ACK.
                    return Outcome::Ignored;
                }
                if flags & SEEN_SYNACK == 0 {
                    flags = (flags & !ISN_MASK) | u64::from(server_isn);
                }
                flags |= SEEN_ACK;
                e.t_ack.store(t, Relaxed);
            }
        }
        if flags & (SEEN_SYN | SEEN_SYNACK | SEEN_ACK) == SEEN_SYN | SEEN_SYNACK | SEEN_ACK {
            let out = if flags & AMBIGUOUS != 0 {
                Outcome::Ambiguous
            } else {
                Outcome::Complete {
                    syn: e.t_syn.load(Relaxed),
                    synack: e.t_synack.load(Relaxed),
                    ack: e.t_ack.load(Relaxed),
                }
            };
            self.free(b, i);
            return out;
        }
        e.info.store(flags, Relaxed);
        Outcome::Pending
    }

    /// Forgets the expired handshakes of the `buckets` buckets from
    /// `*cursor` on (counted as timed out), and moves the cursor. Each
    /// worker calls it every few batches with its own cursor and its latest
    /// frame time, so the whole table is swept continuously.
    pub fn sweep(&self, now: u64, cursor: &mut usize, buckets: usize) {
        for _ in 0..buckets {
            *cursor = cursor.wrapping_add(1);
            let b = &self.buckets[*cursor & self.mask];
            let stale = |i: usize| b.keys[i].load(Relaxed) != 0 && self.expired(&b.entries[i], now);
            if !(0..WAYS).any(stale) {
                continue;
            }
            self.lock(b);
            for i in 0..WAYS {
                if stale(i) {
                    self.stats.timed_out.fetch_add(1, Relaxed);
                    self.free(b, i);
                }
            }
            self.unlock(b);
        }
    }

    /// Handshakes pending now (a scan: for the scrape and tests).
    pub fn pending(&self) -> usize {
        self.buckets
            .iter()
            .flat_map(|b| b.keys.iter())
            .filter(|k| k.load(Relaxed) != 0)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn k(isn: u32) -> u64 {
        key(&[10, 0, 0, 1], &[192, 0, 2, 1], 40000, 443, isn)
    }

    #[test]
    fn in_order_and_every_other_order_completes() {
        let orders: [[usize; 3]; 4] = [[0, 1, 2], [1, 0, 2], [0, 2, 1], [1, 2, 0]];
        for (n, order) in orders.iter().enumerate() {
            let t = HandshakeTable::new(1024, 10_000 * MS);
            let isn = 1000 + n as u32;
            let evs = [
                (Event::Syn, MS),
                (Event::SynAck { server_isn: 77 }, 3 * MS),
                (Event::Ack { server_isn: 77 }, 10 * MS),
            ];
            let mut last = Outcome::Ignored;
            for &i in order {
                if matches!(evs[i].0, Event::Ack { .. }) {
                    assert!(t.may_pend(isn));
                }
                last = t.event(k(isn), isn, evs[i].0, evs[i].1);
            }
            assert_eq!(
                last,
                Outcome::Complete {
                    syn: MS,
                    synack: 3 * MS,
                    ack: 10 * MS
                },
                "{order:?}"
            );
            assert_eq!(t.pending(), 0);
            assert!(!t.may_pend(isn));
        }
    }

    #[test]
    fn an_ack_before_its_syn_is_ignored() {
        let t = HandshakeTable::new(1024, 10_000 * MS);
        assert_eq!(
            t.event(k(5), 5, Event::Ack { server_isn: 1 }, 0),
            Outcome::Ignored
        );
        assert_eq!(t.pending(), 0);
    }

    #[test]
    fn retransmitted_syn_or_synack_is_ambiguous() {
        for retx in [Event::Syn, Event::SynAck { server_isn: 9 }] {
            let t = HandshakeTable::new(1024, 10_000 * MS);
            assert_eq!(t.event(k(1), 1, Event::Syn, 0), Outcome::Pending);
            assert_eq!(
                t.event(k(1), 1, Event::SynAck { server_isn: 9 }, MS),
                Outcome::Pending
            );
            assert_eq!(t.event(k(1), 1, retx, 2 * MS), Outcome::Pending);
            assert_eq!(
                t.event(k(1), 1, Event::Ack { server_isn: 9 }, 3 * MS),
                Outcome::Ambiguous
            );
            assert_eq!(t.pending(), 0);
        }
    }

    #[test]
    fn an_ack_of_another_isn_does_not_complete() {
        let t = HandshakeTable::new(1024, 10_000 * MS);
        t.event(k(1), 1, Event::Syn, 0);
        t.event(k(1), 1, Event::SynAck { server_isn: 9 }, MS);
        assert_eq!(
            t.event(k(1), 1, Event::Ack { server_isn: 10 }, 2 * MS),
            Outcome::Ignored
        );
        assert_eq!(t.pending(), 1);
    }

    #[test]
    fn full_buckets_overflow_and_old_entries_time_out() {
        let t = HandshakeTable::new(1024, 100 * MS);
        // Fill one bucket: keys that land in bucket 0.
        let mut same = (0u32..).filter(|&i| t.bucket_of(k(i)) == 0);
        let isns: Vec<u32> = same.by_ref().take(WAYS + 1).collect();
        for &i in &isns[..WAYS] {
            assert_eq!(t.event(k(i), i, Event::Syn, 0), Outcome::Pending);
        }
        assert_eq!(
            t.event(k(isns[WAYS]), isns[WAYS], Event::Syn, MS),
            Outcome::Overflow
        );
        // Later than the timeout, the new one takes an expired entry's place.
        assert_eq!(
            t.event(k(isns[WAYS]), isns[WAYS], Event::Syn, 200 * MS),
            Outcome::Pending
        );
        assert_eq!(t.stats.timed_out.load(Relaxed), 1);
        // The sweep forgets the rest.
        t.sweep(1_000 * MS, &mut 0, t.buckets.len());
        assert_eq!(t.stats.timed_out.load(Relaxed), WAYS as u64 + 1);
        assert_eq!(t.pending(), 0);
        assert!(isns.iter().all(|&i| !t.may_pend(i)));
    }

    #[test]
    fn workers_racing_on_one_table_complete_every_handshake() {
        let t = std::sync::Arc::new(HandshakeTable::new(1 << 16, u64::MAX / 4));
        let n = 10_000u32;
        // Thread A: SYN then ACK of each handshake; thread B: the SYN/ACKs.
        let a = {
            let t = t.clone();
            std::thread::spawn(move || {
                let mut done = 0;
                for i in 0..n {
                    if matches!(t.event(k(i), i, Event::Syn, 1), Outcome::Complete { .. }) {
                        done += 1;
                    }
                    if matches!(
                        t.event(
                            k(i),
                            i,
                            Event::Ack {
                                server_isn: i ^ 0x5555
                            },
                            3
                        ),
                        Outcome::Complete { .. }
                    ) {
                        done += 1;
                    }
                }
                done
            })
        };
        let b = {
            let t = t.clone();
            std::thread::spawn(move || {
                let mut done = 0;
                for i in 0..n {
                    if matches!(
                        t.event(
                            k(i),
                            i,
                            Event::SynAck {
                                server_isn: i ^ 0x5555
                            },
                            2
                        ),
                        Outcome::Complete { .. }
                    ) {
                        done += 1;
                    }
                }
                done
            })
        };
        let done = a.join().unwrap_or(0) + b.join().unwrap_or(0);
        // Whatever the interleaving, each handshake completes once.
        assert_eq!(done, n);
        assert_eq!(t.pending(), 0);
    }
}

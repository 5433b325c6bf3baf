//! Accounting a frame never allocates: a counting global allocator proves it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use xdpacct::capture::Frame;
use xdpacct::shard::worker::account;
use xdpacct::wire::FrameFacts;

#[path = "../bench/support.rs"]
mod support;

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn parse_and_account_allocate_nothing_per_frame() {
    let acct = support::accounting(10_000);
    let shard = support::shard(&acct);
    let mut frames: Vec<Vec<u8>> = support::frames64(4096, 10_000)
        .iter()
        .map(|f| f.to_vec())
        .collect();
    // Also truncated and garbage frames: the error paths must not allocate either.
    frames.push(frames[0][..20].to_vec());
    frames.push(vec![0xff; 60]);
    let hosts = shard.hosts.load_full();
    let mut facts = FrameFacts::default();
    let before = ALLOCS.load(Relaxed);
    for _ in 0..10 {
        for f in &frames {
            account(
                &shard,
                &hosts,
                &mut facts,
                Frame {
                    data: f,
                    wire_len: f.len() as u32,
                    timestamp_ns: 0,
                },
            );
        }
    }
    let after = ALLOCS.load(Relaxed);
    assert_eq!(
        after - before,
        0,
        "allocations while accounting {} frames",
        frames.len() * 10
    );
    // And the frames were counted.
    let counted: u64 = shard.snapshot().traffic.total().packets;
    assert_eq!(counted, frames.len() as u64 * 10);
}

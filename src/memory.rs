//! Big lookup tables: on transparent huge pages, and prefetched ahead of use.
//!
//! The flow cache and the LPM tables are tens of megabytes read at random
//! offsets, one access per frame. On 4 KiB pages nearly every access also
//! misses the TLB; asking for 2 MiB pages (`MADV_HUGEPAGE`, honoured when
//! `/sys/kernel/mm/transparent_hugepage/enabled` is `madvise` or `always`)
//! before the memory is first touched removes most of those walks. Where
//! the kernel says no, the table simply stays on small pages.
//!
//! Holds unsafe code (`madvise`, the prefetch intrinsic), allowed in
//! `lib.rs`; allocates only what the caller asks for.

/// A boxed slice of `n` copies of `value`, its memory advised for huge pages
/// before it is filled.
pub fn filled<T: Clone>(n: usize, value: T) -> Box<[T]> {
    let mut v: Vec<T> = Vec::with_capacity(n);
    advise_huge(v.as_mut_ptr().cast(), n * std::mem::size_of::<T>());
    v.resize(n, value);
    v.into_boxed_slice()
}

/// A boxed slice of `n` values made by `make` (for types that are not
/// `Clone`, such as atomics), its memory advised for huge pages first.
pub fn filled_with<T>(n: usize, make: impl FnMut() -> T) -> Box<[T]> {
    let mut v: Vec<T> = Vec::with_capacity(n);
    advise_huge(v.as_mut_ptr().cast(), n * std::mem::size_of::<T>());
    v.extend(std::iter::repeat_with(make).take(n));
    v.into_boxed_slice()
}

/// A copy of `items` in memory advised for huge pages (for tables built
/// in a growing `Vec`, copied once when complete).
pub fn copied<T: Clone>(items: &[T]) -> Vec<T> {
    let mut v: Vec<T> = Vec::with_capacity(items.len());
    advise_huge(v.as_mut_ptr().cast(), std::mem::size_of_val(items));
    v.extend_from_slice(items);
    v
}

/// Advises the 2 MiB-aligned part of `[ptr, ptr + len)` for huge pages.
fn advise_huge(ptr: *mut u8, len: usize) {
    const HUGE: usize = 2 << 20;
    let start = (ptr as usize).next_multiple_of(HUGE);
    let end = (ptr as usize + len) & !(HUGE - 1);
    if end > start {
        // SAFETY: the range lies inside an allocation we own and have not
        // handed out; madvise only changes how it is backed, never its
        // contents. A failure (no THP) is harmless and ignored.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

/// Asks for the cache line holding `p` ahead of its use; a hint, never faults.
#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    // `_mm_prefetch` is a safe function from Rust 1.87; `unsafe` is kept
    // for the minimum supported Rust (1.80).
    #[cfg(target_arch = "x86_64")]
    #[allow(unused_unsafe)]
    // SAFETY: prefetch is a hint that never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

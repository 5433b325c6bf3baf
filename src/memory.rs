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
//! `lib.rs`; allocates only what the caller asks for, fallibly through the
//! `try_` functions.

/// Memory the process could not have: an address-space limit
/// (`RLIMIT_AS`), a memory limit or the machine's memory. Tables built on
/// reload take their big allocations through the `try_` functions here, so
/// a reload that does not fit fails with this error and the old tables stay
/// (Rust aborts the process on any other failed allocation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("out of memory: {} MiB more could not be allocated", bytes.div_ceil(1 << 20))]
pub struct OutOfMemory {
    /// The size asked for, in bytes.
    pub bytes: usize,
}

impl OutOfMemory {
    fn of<T>(n: usize) -> OutOfMemory {
        OutOfMemory {
            bytes: n.saturating_mul(std::mem::size_of::<T>()),
        }
    }

    /// The error of a hash table of `n` entries of `T` that could not grow.
    pub fn hash_table<T>(n: usize) -> OutOfMemory {
        OutOfMemory {
            bytes: n.saturating_mul(std::mem::size_of::<T>() + 1),
        }
    }
}

/// A boxed slice of `n` copies of `value`, its memory advised for huge pages
/// before it is filled. Aborts when out of memory; see [`try_filled`].
pub fn filled<T: Clone>(n: usize, value: T) -> Box<[T]> {
    let mut v: Vec<T> = Vec::with_capacity(n);
    advise_huge(v.as_mut_ptr().cast(), n * std::mem::size_of::<T>());
    v.resize(n, value);
    v.into_boxed_slice()
}

/// [`filled`], or an error when the memory cannot be had.
pub fn try_filled<T: Clone>(n: usize, value: T) -> Result<Box<[T]>, OutOfMemory> {
    let mut v: Vec<T> = try_with_capacity(n)?;
    advise_huge(v.as_mut_ptr().cast(), n * std::mem::size_of::<T>());
    v.resize(n, value);
    Ok(v.into_boxed_slice())
}

/// A boxed slice of `n` values made by `f`, or an error when the memory
/// cannot be had.
pub fn try_filled_with<T>(n: usize, f: impl FnMut() -> T) -> Result<Box<[T]>, OutOfMemory> {
    let mut v: Vec<T> = try_with_capacity(n)?;
    v.resize_with(n, f);
    Ok(v.into_boxed_slice())
}

/// An empty `Vec` with room for exactly `n` items, or an error when the
/// memory cannot be had.
pub fn try_with_capacity<T>(n: usize) -> Result<Vec<T>, OutOfMemory> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| OutOfMemory::of::<T>(n))?;
    Ok(v)
}

/// Room for `additional` more items in `v` (amortised growth), or an error.
#[inline]
pub fn try_grow<T>(v: &mut Vec<T>, additional: usize) -> Result<(), OutOfMemory> {
    v.try_reserve(additional)
        .map_err(|_| OutOfMemory::of::<T>(v.len().saturating_add(additional)))
}

/// Checks that `bytes` more could be allocated now: reserves them and gives
/// them back untouched (a probe, so a build that would not fit fails before
/// it starts). Exact under an address-space limit (`RLIMIT_AS`); under a
/// cgroup limit with overcommit it only catches what the kernel refuses.
pub fn headroom(bytes: usize) -> Result<(), OutOfMemory> {
    try_with_capacity::<u8>(bytes).map(drop)
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

/// [`copied`], or an error when the memory cannot be had.
pub fn try_copied<T: Clone>(items: &[T]) -> Result<Vec<T>, OutOfMemory> {
    let mut v: Vec<T> = try_with_capacity(items.len())?;
    advise_huge(v.as_mut_ptr().cast(), std::mem::size_of_val(items));
    v.extend_from_slice(items);
    Ok(v)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impossible_sizes_are_errors_not_aborts() {
        let e = try_filled(usize::MAX / 4, 0u64).unwrap_err();
        assert!(e.to_string().starts_with("out of memory"), "{e}");
        assert!(headroom(usize::MAX / 2).is_err());
        assert!(try_with_capacity::<u128>(usize::MAX / 8).is_err());
        let mut v = vec![1u8];
        assert!(try_grow(&mut v, usize::MAX - 8).is_err());
        assert_eq!(&*try_filled(3, 7u8).unwrap(), &[7, 7, 7]);
        assert_eq!(try_copied(&[1, 2]).unwrap(), [1, 2]);
        assert!(headroom(1 << 20).is_ok());
    }
}

//! Network-interface look-ups shared by the live backends: index, rx queue
//! count, a promiscuous-mode guard, and errno-to-`CaptureError` mapping.
//!
//! Holds unsafe code (plain syscalls). Allocates only at start-up; never panics.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::CaptureError;

/// The interface index of `ifname`, or a `NoSuchInterface` error.
pub(crate) fn ifindex(ifname: &str) -> Result<u32, CaptureError> {
    let name = CString::new(ifname).map_err(|_| CaptureError::NoSuchInterface {
        ifname: ifname.to_owned(),
    })?;
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call;
    // if_nametoindex only reads it.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(CaptureError::NoSuchInterface {
            ifname: ifname.to_owned(),
        });
    }
    Ok(index)
}

/// Number of rx queues the interface has (`/sys/class/net/IF/queues/rx-*`,
/// which is `real_num_rx_queues`, the range AF_XDP binds accept).
pub(crate) fn rx_queue_count(ifname: &str) -> Result<u32, CaptureError> {
    let dir = format!("/sys/class/net/{ifname}/queues");
    let entries = std::fs::read_dir(&dir).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => CaptureError::NoSuchInterface {
            ifname: ifname.to_owned(),
        },
        _ => CaptureError::Interface {
            ifname: ifname.to_owned(),
            msg: format!("reading {dir}: {e}"),
        },
    })?;
    let count = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
        .count();
    Ok(u32::try_from(count).unwrap_or(u32::MAX).max(1))
}

/// Maps an OS error met while `what` to the clearest `CaptureError`.
pub(crate) fn os_error(
    ifname: &str,
    queue: Option<u32>,
    what: &'static str,
    err: io::Error,
) -> CaptureError {
    match err.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => CaptureError::PermissionDenied {
            ifname: ifname.to_owned(),
            what,
            source: err,
        },
        Some(libc::ENODEV) | Some(libc::ENXIO) => CaptureError::NoSuchInterface {
            ifname: ifname.to_owned(),
        },
        _ => match queue {
            Some(queue) => CaptureError::Queue {
                ifname: ifname.to_owned(),
                queue,
                what,
                source: err,
            },
            None => CaptureError::Interface {
                ifname: ifname.to_owned(),
                msg: format!("{what}: {err}"),
            },
        },
    }
}

/// `setsockopt` with a plain-old-data value. The kernel only reads it, so
/// any `Copy` value is sound to pass; what an option does with a pointer
/// inside it (`SO_ATTACH_FILTER`) is checked by the kernel (`EFAULT`).
pub(crate) fn setsockopt<T: Copy>(
    fd: &OwnedFd,
    level: i32,
    name: i32,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `value` points to a live, initialised `T` of exactly the
    // length passed; the kernel copies it and keeps no pointer.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

pub(crate) mod sealed {
    /// Keeps [`Pod`](super::Pod) implemented here and nowhere else.
    pub(crate) trait Sealed {}
}

/// Plain old data the kernel may write into: a `#[repr(C)]` kernel struct
/// of integers, for which every byte pattern is a valid value (no
/// references, enums or `bool`s). Sealed, unsafe to implement, and
/// implemented only for the structs the backends read with `getsockopt`,
/// so no caller can hand the kernel a `T` it must not overwrite.
///
/// # Safety
///
/// An implementor must be valid for every bit pattern of its size.
pub(crate) unsafe trait Pod: Copy + sealed::Sealed {
    /// The all-zero value (valid by the trait's contract).
    fn zeroed() -> Self {
        // SAFETY: `Self: Pod`, so the all-zero pattern is a valid value.
        unsafe { std::mem::zeroed() }
    }
}

macro_rules! pod {
    ($($t:ty),* $(,)?) => {$(
        impl sealed::Sealed for $t {}
        // SAFETY: a `#[repr(C)]` struct of `u32`/`u64` fields only (see
        // libc's definition), so every bit pattern is valid.
        unsafe impl Pod for $t {}
    )*};
}

pod!(
    // XDP_STATISTICS (AF_XDP queue drop counters).
    libc::xdp_statistics,
    // PACKET_STATISTICS with TPACKET_V3 (AF_PACKET drop counters).
    libc::tpacket_stats_v3,
);

/// `getsockopt` into a plain-old-data value; returns the length written
/// (older kernels may write a shorter, older version of the struct: the
/// rest keeps what `value` held).
pub(crate) fn getsockopt<T: Pod>(
    fd: i32,
    level: i32,
    name: i32,
    value: &mut T,
) -> io::Result<usize> {
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `value` is a live, writable `T` and `len` says its size, so the
    // kernel writes at most that many bytes into it, and `T: Pod` makes any
    // bytes it writes a valid `T`.
    let rc = unsafe { libc::getsockopt(fd, level, name, (value as *mut T).cast(), &mut len) };
    if rc == 0 {
        Ok(len as usize)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A new socket, close-on-exec, owned.
pub(crate) fn socket(domain: i32, ty: i32, protocol: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, protocol) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2), is open and owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Keeps an interface in promiscuous mode while alive.
///
/// Uses a packet-socket membership (`PACKET_MR_PROMISC`) rather than the
/// interface flag: the kernel counts memberships and drops this one when the
/// socket closes, so the previous state comes back even after SIGKILL and
/// several holders do not undo each other.
pub(crate) struct Promiscuous {
    _fd: OwnedFd,
}

impl Promiscuous {
    pub(crate) fn enable(ifname: &str, ifindex: u32) -> Result<Self, CaptureError> {
        // Protocol 0: the socket receives no frames; it only holds the membership.
        let fd = socket(libc::AF_PACKET, libc::SOCK_RAW, 0).map_err(|e| {
            os_error(
                ifname,
                None,
                "opening a packet socket for promiscuous mode",
                e,
            )
        })?;
        let mreq = libc::packet_mreq {
            mr_ifindex: ifindex as i32,
            mr_type: libc::PACKET_MR_PROMISC as u16,
            mr_alen: 0,
            mr_address: [0; 8],
        };
        setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mreq)
            .map_err(|e| os_error(ifname, None, "enabling promiscuous mode", e))?;
        Ok(Promiscuous { _fd: fd })
    }
}

/// `poll(2)` one descriptor for input, up to `timeout_ms`. Returns whether it
/// is readable; EINTR counts as not readable.
pub(crate) fn wait_readable(fd: i32, timeout_ms: i32) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is a live pollfd and the count is 1.
    let rc = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    if rc < 0 {
        let err = io::Error::last_os_error();
        return if err.kind() == io::ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(err)
        };
    }
    Ok(rc > 0 && pfd.revents & libc::POLLIN != 0)
}

/// An anonymous, page-aligned, private memory mapping, unmapped on drop.
pub(crate) struct Mmap {
    pub(crate) ptr: std::ptr::NonNull<u8>,
    pub(crate) len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; moving the owner
// between threads moves nothing the kernel ties to a thread.
unsafe impl Send for Mmap {}

impl Mmap {
    /// Maps `len` bytes of `fd` (or anonymous memory when `fd` is None), shared
    /// for a ring, populated up front so the first burst does not fault.
    pub(crate) fn new(len: usize, fd: Option<i32>) -> io::Result<Self> {
        let (flags, fd) = match fd {
            Some(fd) => (libc::MAP_SHARED | libc::MAP_POPULATE, fd),
            None => (
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
            ),
        };
        // SAFETY: a fresh mapping at an address the kernel picks; no existing
        // memory is affected. The result is checked against MAP_FAILED.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = std::ptr::NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
        Ok(Mmap { ptr, len })
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe exactly the mapping made in `new`, and
        // every borrower of it (rings, lent frames) is dropped before its owner.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `Pod` structs have the sizes of linux/if_xdp.h and
    /// linux/if_packet.h, so `getsockopt` passes the kernel's length.
    #[test]
    fn pod_structs_have_the_kernel_sizes() {
        assert_eq!(std::mem::size_of::<libc::xdp_statistics>(), 6 * 8);
        assert_eq!(std::mem::size_of::<libc::tpacket_stats_v3>(), 3 * 4);
        let st = <libc::xdp_statistics as Pod>::zeroed();
        assert_eq!((st.rx_dropped, st.tx_ring_empty_descs), (0, 0));
    }

    #[test]
    fn getsockopt_on_a_closed_descriptor_is_an_error() {
        let mut st = <libc::tpacket_stats_v3 as Pod>::zeroed();
        let err = getsockopt(-1, libc::SOL_PACKET, libc::PACKET_STATISTICS, &mut st).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF));
    }
}

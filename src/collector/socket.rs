//! The collector's UDP receiver: one socket per `listen` address (several
//! per address with `SO_REUSEPORT`, one per receive thread), datagrams read
//! in batches with `recvmmsg(2)`, kernel drops read from `SO_RXQ_OVFL`.
//!
//! ```no_run
//! # use std::time::{Duration, Instant};
//! # use xdpacct::collector::{socket::Receiver, Collector, CollectorConfig};
//! let mut rx = Receiver::bind("127.0.0.1:2055".parse().unwrap(), true).unwrap();
//! let mut c = Collector::new(CollectorConfig::default()).unwrap();
//! rx.set_timeout(Some(Duration::from_millis(200))).unwrap();
//! loop {
//!     let now = Instant::now();
//!     rx.recv_batch(|from, data| c.datagram(from, now, data, &mut |rec| { /* count */ }))
//!         .unwrap();
//! #   break;
//! }
//! ```
//!
//! Unsafe code: the libc calls (`socket`, `setsockopt`, `bind`,
//! `recvmmsg`) and reading the kernel-filled `sockaddr` and control
//! messages; each block says why it is sound. Allocates the batch buffers
//! once at bind time, nothing per datagram.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd};
use std::time::Duration;

/// Datagrams read per `recvmmsg` call.
pub const BATCH: usize = 32;
/// Largest datagram kept whole (jumbo frames); longer ones are counted in
/// [`ReceiverStats::truncated`] and handed on cut (the decoder then counts
/// them `truncated` or `bad_length`).
pub const MAX_DATAGRAM: usize = 9216;
/// Receive buffer asked for (the kernel caps it at `net.core.rmem_max`).
pub const RCVBUF: i32 = 8 << 20;

/// What the receiver saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    pub datagrams: u64,
    pub bytes: u64,
    /// Datagrams longer than [`MAX_DATAGRAM`].
    pub truncated: u64,
    /// Datagrams the kernel dropped because the socket buffer was full
    /// (`SO_RXQ_OVFL`; known once a datagram after the drop arrives).
    pub kernel_drops: u64,
}

/// Why a listen address could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("collector.listen: cannot bind UDP {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
}

/// One bound UDP socket and its batch buffers.
pub struct Receiver {
    sock: UdpSocket,
    local: SocketAddr,
    bufs: Box<[[u8; MAX_DATAGRAM]]>,
    stats: ReceiverStats,
    last_ovfl: Option<u32>,
}

/// Room for one control message holding a u32 (SO_RXQ_OVFL), aligned.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct Cmsg([u8; 64]);

fn setsockopt_int(fd: i32, level: i32, name: i32, v: i32) -> io::Result<()> {
    // SAFETY: `v` lives across the call and its exact size is passed; the
    // kernel only reads it. A bad fd or option gives an error, not UB.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&v as *const i32).cast(),
            size_of::<i32>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl Receiver {
    /// Binds `addr`. `reuse_port` sets `SO_REUSEPORT` so several receivers
    /// (threads) share the address. IPv6 sockets are IPv6-only, so
    /// `0.0.0.0:P` and `[::]:P` can both be listed.
    pub fn bind(addr: SocketAddr, reuse_port: bool) -> Result<Receiver, SocketError> {
        let err = |source| SocketError::Bind { addr, source };
        let family = if addr.is_ipv4() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        };
        // SAFETY: plain syscall with constant arguments; the result is
        // checked before use.
        let fd = unsafe { libc::socket(family, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(err(io::Error::last_os_error()));
        }
        // SAFETY: `fd` is a fresh socket we own; UdpSocket closes it on drop
        // (also on every error path below).
        let sock = unsafe { UdpSocket::from_raw_fd(fd) };
        if reuse_port {
            setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1).map_err(err)?;
        }
        if family == libc::AF_INET6 {
            setsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1).map_err(err)?;
        }
        setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RXQ_OVFL, 1).map_err(err)?;
        // Best effort: SO_RCVBUFFORCE passes net.core.rmem_max (it needs
        // CAP_NET_ADMIN, which the daemon has while it binds); else
        // SO_RCVBUF, capped by rmem_max. A smaller buffer still works.
        if setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, RCVBUF).is_err() {
            let _ = setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, RCVBUF);
        }
        let r = match addr {
            SocketAddr::V4(a) => {
                // SAFETY: sockaddr_in is plain data; zeroed is a valid value.
                let mut sa: libc::sockaddr_in = unsafe { zeroed() };
                sa.sin_family = libc::AF_INET as libc::sa_family_t;
                sa.sin_port = a.port().to_be();
                sa.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
                // SAFETY: `sa` is a valid sockaddr_in and its size is passed.
                unsafe {
                    libc::bind(
                        fd,
                        (&sa as *const libc::sockaddr_in).cast(),
                        size_of::<libc::sockaddr_in>() as libc::socklen_t,
                    )
                }
            }
            SocketAddr::V6(a) => {
                // SAFETY: sockaddr_in6 is plain data; zeroed is a valid value.
                let mut sa: libc::sockaddr_in6 = unsafe { zeroed() };
                sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sa.sin6_port = a.port().to_be();
                sa.sin6_addr.s6_addr = a.ip().octets();
                sa.sin6_scope_id = a.scope_id();
                // SAFETY: `sa` is a valid sockaddr_in6 and its size is passed.
                unsafe {
                    libc::bind(
                        fd,
                        (&sa as *const libc::sockaddr_in6).cast(),
                        size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                    )
                }
            }
        };
        if r != 0 {
            return Err(err(io::Error::last_os_error()));
        }
        let local = sock.local_addr().map_err(err)?;
        Ok(Receiver {
            sock,
            local,
            bufs: vec![[0u8; MAX_DATAGRAM]; BATCH].into_boxed_slice(),
            stats: ReceiverStats::default(),
            last_ovfl: None,
        })
    }

    /// The bound address (with the port the kernel chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// How long [`Receiver::recv_batch`] waits for a first datagram
    /// (`None`: forever).
    pub fn set_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.sock.set_read_timeout(t)
    }

    pub fn stats(&self) -> ReceiverStats {
        self.stats
    }

    /// Waits for at least one datagram (up to the timeout), then hands
    /// every datagram already queued, up to [`BATCH`], to `f` with its
    /// source. Returns how many; 0 on timeout.
    pub fn recv_batch(&mut self, mut f: impl FnMut(SocketAddr, &[u8])) -> io::Result<usize> {
        // SAFETY: these are plain C structs for which all-zero is valid.
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        // SAFETY: as above (pointers null and lengths 0 until set below).
        let mut iovs: [libc::iovec; BATCH] = unsafe { zeroed() };
        // SAFETY: as above: all-zero is a valid (AF_UNSPEC) sockaddr_storage.
        let mut names: [libc::sockaddr_storage; BATCH] = unsafe { zeroed() };
        let mut cmsgs = [Cmsg([0; 64]); BATCH];
        for i in 0..BATCH {
            iovs[i].iov_base = self.bufs[i].as_mut_ptr().cast();
            iovs[i].iov_len = MAX_DATAGRAM;
            let h = &mut hdrs[i].msg_hdr;
            h.msg_name = (&mut names[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = cmsgs[i].0.as_mut_ptr().cast();
            h.msg_controllen = 64;
        }
        // SAFETY: every header points at buffers that live until the call
        // returns (locals and `self.bufs`, not moved meanwhile) with their
        // true lengths; the kernel writes at most that much into each.
        let n = unsafe {
            libc::recvmmsg(
                self.sock.as_raw_fd(),
                hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock
                | io::ErrorKind::TimedOut
                | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        let n = n as usize;
        for i in 0..n {
            let h = &hdrs[i].msg_hdr;
            if let Some(ovfl) = rxq_ovfl(h) {
                // Running total per socket (u32, wraps).
                let prev = self.last_ovfl.unwrap_or(0);
                self.stats.kernel_drops += u64::from(ovfl.wrapping_sub(prev));
                self.last_ovfl = Some(ovfl);
            }
            if h.msg_flags & libc::MSG_TRUNC != 0 {
                self.stats.truncated += 1;
            }
            let len = (hdrs[i].msg_len as usize).min(MAX_DATAGRAM);
            self.stats.datagrams += 1;
            self.stats.bytes += len as u64;
            let Some(from) = sockaddr(&names[i]) else {
                continue;
            };
            f(from, &self.bufs[i][..len]);
        }
        Ok(n)
    }
}

/// The SO_RXQ_OVFL value in a received message's control data, if any.
fn rxq_ovfl(h: &libc::msghdr) -> Option<u32> {
    // SAFETY: `h` was filled by recvmmsg: msg_control points at our buffer
    // and msg_controllen is what the kernel wrote; the CMSG_* macros walk
    // within it and CMSG_DATA of a SO_RXQ_OVFL message holds a u32 (read
    // unaligned to be safe).
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SO_RXQ_OVFL {
                return Some(libc::CMSG_DATA(c).cast::<u32>().read_unaligned());
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    None
}

/// A kernel-filled sockaddr_storage as a SocketAddr.
fn sockaddr(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(s.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in;
            // sockaddr_storage is large and aligned enough for it.
            let a = unsafe { *(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(a.sin_addr.s_addr.to_ne_bytes()),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe { *(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_datagrams_with_their_source() {
        let mut rx = Receiver::bind("127.0.0.1:0".parse().unwrap(), false).unwrap();
        rx.set_timeout(Some(Duration::from_secs(2))).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..5u8 {
            tx.send_to(&[i; 10], rx.local_addr()).unwrap();
        }
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while got.len() < 5 && std::time::Instant::now() < deadline {
            rx.recv_batch(|from, d| got.push((from, d.to_vec())))
                .unwrap();
        }
        assert_eq!(got.len(), 5);
        for (i, (from, d)) in got.iter().enumerate() {
            assert_eq!(*from, tx.local_addr().unwrap());
            assert_eq!(d, &vec![i as u8; 10]);
        }
        assert_eq!(rx.stats().datagrams, 5);
        assert_eq!(rx.stats().bytes, 50);
        assert_eq!(rx.stats().kernel_drops, 0);
    }

    #[test]
    fn kernel_drops_are_counted_when_the_buffer_overflows() {
        let mut rx = Receiver::bind("127.0.0.1:0".parse().unwrap(), false).unwrap();
        // Smallest receive buffer, then more datagrams than fit.
        setsockopt_int(rx.sock.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, 1).unwrap();
        rx.set_timeout(Some(Duration::from_millis(200))).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sent = 2000u64;
        for _ in 0..sent {
            tx.send_to(&[0u8; 1000], rx.local_addr()).unwrap();
        }
        // One more after the drops, so a message carries the new total.
        let mut got = 0u64;
        loop {
            let n = rx.recv_batch(|_, _| got += 1).unwrap();
            if n == 0 {
                break;
            }
        }
        tx.send_to(&[1u8; 10], rx.local_addr()).unwrap();
        while rx.recv_batch(|_, _| got += 1).unwrap() > 0 {}
        let s = rx.stats();
        assert!(got < sent, "the tiny buffer should have overflowed");
        // Every datagram sent is either received or counted as dropped.
        assert_eq!(got + s.kernel_drops, sent + 1, "{s:?}");
    }

    #[test]
    fn ipv6_and_ipv4_share_a_port() {
        let v4 = Receiver::bind("127.0.0.1:0".parse().unwrap(), false).unwrap();
        let port = v4.local_addr().port();
        // IPV6_V6ONLY: [::1] binds beside 127.0.0.1 on the same port.
        let v6 = Receiver::bind(format!("[::1]:{port}").parse().unwrap(), false);
        let mut v6 = match v6 {
            Ok(r) => r,
            // Only a box without IPv6 may refuse.
            Err(e) => {
                assert!(!std::path::Path::new("/proc/sys/net/ipv6").exists(), "{e}");
                return;
            }
        };
        v6.set_timeout(Some(Duration::from_secs(2))).unwrap();
        let tx = UdpSocket::bind("[::1]:0").unwrap();
        tx.send_to(b"v6", v6.local_addr()).unwrap();
        let mut got = Vec::new();
        v6.recv_batch(|from, d| got.push((from, d.to_vec())))
            .unwrap();
        assert_eq!(got, [(tx.local_addr().unwrap(), b"v6".to_vec())]);
    }

    #[test]
    fn bind_error_names_the_address() {
        let a = Receiver::bind("127.0.0.1:0".parse().unwrap(), false).unwrap();
        let e = Receiver::bind(a.local_addr(), false)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.starts_with(&format!(
                "collector.listen: cannot bind UDP {}",
                a.local_addr()
            )),
            "{e}"
        );
    }
}

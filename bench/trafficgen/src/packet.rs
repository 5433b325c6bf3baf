//! The AF_PACKET backend of `send`: for kernels that refuse BPF_PROG_RUN
//! with live frames (EPERM on 6.18.44-fc-v1300 for any program, interface
//! and action, as root in the initial namespaces; see ../../RESULTS.md).
//!
//! Each sender thread, pinned to its core, owns a raw AF_PACKET socket with
//! PACKET_QDISC_BYPASS and hands the kernel up to `--batch` frames per
//! sendmmsg(2). The frames are built in user space the way
//! `trafficgen_tx` builds them in bpf/trafficgen.bpf.c: the same address
//! rewrite from a per-thread sequence, the same IMIX 7:4:1 pattern, IPv4
//! header checksum fixed per frame, UDP checksum 0. Pacing is the same
//! deadline clock with the same catch-up allowance, kept per thread; the
//! thread sleeps between sends (at least 50 µs), so frames leave in small
//! bursts of what fell due meanwhile.
//!
//! The socket picks the transmit queue from the sending CPU (packet_pick_tx_queue
//! records `cpu % tx queues`), and veth delivers queue i to the peer's rx
//! queue i, so a thread on core 0 feeds queue 0 as the live-frame sender did.
//! A frame the veth cannot take right now (peer ring full, queue stopped)
//! fails its sendmsg with ENOBUFS and is offered again: what a thread reports
//! as sent is what the kernel accepted. Frames the veth accepted and then
//! dropped show in its `tx_dropped`, which `send` resends as before.
#![deny(clippy::undocumented_unsafe_blocks)]

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// Largest frame a slot holds (IMIX large, or a pcap template up to this).
const SLOT: usize = 2048;
/// Longest template frame the AF_PACKET backend takes.
pub const MAX_FRAME: usize = SLOT;
/// Shortest sleep while paced (ns): frames due meanwhile leave in one sendmmsg.
const PACE_NAP: u64 = 50_000;
const IMIX_SMALL: usize = 60;
const IMIX_MEDIUM: usize = 590;
const IMIX_LARGE: usize = 1514;

/// How frames are built: the user-space twin of `struct gen_config`.
#[derive(Clone)]
pub struct Shape {
    /// Templates, used round robin per frame.
    pub templates: Vec<Vec<u8>>,
    /// Low bits of the IPv4 source / destination rewritten per frame (host order).
    pub src_mask: u32,
    pub dst_mask: u32,
    pub imix: bool,
}

/// What one sender thread did.
#[derive(Clone, Copy, Default)]
pub struct Sent {
    pub frames: u64,
    pub bytes: u64,
    /// sendmmsg calls that the veth refused at once (ENOBUFS), retried.
    pub busy: u64,
}

/// A raw AF_PACKET socket bound to one interface, bypassing the qdisc.
pub struct PacketSocket {
    fd: OwnedFd,
}

impl PacketSocket {
    pub fn open(ifindex: u32) -> io::Result<Self> {
        // Protocol 0: the socket receives nothing; the kernel takes the
        // frame's protocol from its Ethernet header.
        // SAFETY: plain syscall with constant arguments.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a non-negative return is a new socket fd that we alone own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let one: libc::c_int = 1;
        // SAFETY: the option value is a live c_int of the size given.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_QDISC_BYPASS,
                (&one as *const libc::c_int).cast(),
                mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: `sll` is a live sockaddr_ll of the length given.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { fd })
    }
}

/// One thread's frame slots and the sendmmsg vectors pointing into them.
struct Batch {
    buf: Vec<u8>,
    lens: Vec<usize>,
    iov: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
}

impl Batch {
    fn new(n: usize, shape: &Shape) -> Self {
        let mut buf = vec![0u8; n * SLOT];
        // One template: every slot holds it once and only headers change.
        if shape.templates.len() == 1 {
            let t = &shape.templates[0];
            for s in buf.chunks_mut(SLOT) {
                s[..t.len()].copy_from_slice(t);
            }
        }
        Self {
            buf,
            lens: vec![0; n],
            iov: Vec::with_capacity(n),
            msgs: Vec::with_capacity(n),
        }
    }
}

/// Writes frame number `seq` of this thread into `slot`; returns its length.
fn build(slot: &mut [u8], seq: u64, salt: u32, shape: &Shape) -> usize {
    let t = &shape.templates[(seq % shape.templates.len() as u64) as usize];
    if shape.templates.len() > 1 {
        slot[..t.len()].copy_from_slice(t);
    }
    let len = if shape.imix {
        match seq % 12 {
            0..=6 => IMIX_SMALL,
            7..=10 => IMIX_MEDIUM,
            _ => IMIX_LARGE,
        }
    } else {
        t.len()
    };
    let f = &mut slot[..len];
    if f.len() < 34 || f[12..14] != [0x08, 0x00] || f[14] != 0x45 {
        return len;
    }
    // Same spread as trafficgen_tx: low bits from the sequence, the thread mixed in.
    let v = (seq as u32)
        .wrapping_mul(2_654_435_761)
        .wrapping_add(salt.wrapping_mul(40_503));
    let vs = v.rotate_left(16);
    let rewrite = |b: &mut [u8], value: u32, mask: u32| {
        let a = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        b.copy_from_slice(&((a & !mask) | (value & mask)).to_be_bytes());
    };
    rewrite(&mut f[26..30], vs, shape.src_mask);
    rewrite(&mut f[30..34], v, shape.dst_mask);
    let l3 = (len - 14) as u16;
    if shape.imix {
        f[16..18].copy_from_slice(&l3.to_be_bytes());
    }
    if f[23] == 17 && f.len() >= 42 {
        if shape.imix {
            f[38..40].copy_from_slice(&(l3 - 20).to_be_bytes());
        }
        f[40..42].copy_from_slice(&[0, 0]);
    }
    f[24..26].copy_from_slice(&[0, 0]);
    let mut sum: u32 = f[14..34]
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    f[24..26].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    len
}

/// Sends `count` frames through `sock`, starting at sequence number `seq0`,
/// `ns_per_frame` apart (0: as fast as the kernel takes them). Gives up at
/// `deadline`. `salt` tells the threads' address patterns apart.
#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
pub fn send(
    sock: &PacketSocket,
    shape: &Shape,
    count: u64,
    seq0: u64,
    salt: u32,
    batch: usize,
    ns_per_frame: u64,
    catchup: Duration,
    deadline: Instant,
) -> io::Result<Sent> {
    let batch = batch.clamp(1, 1024);
    let mut b = Batch::new(batch, shape);
    let mut sent = Sent::default();
    let mut seq = seq0;
    let start = Instant::now();
    // Pacing: `next` is when the next frame is due, in ns since `start`.
    let mut next: u64 = 0;
    let catchup_ns = catchup.as_nanos() as u64;
    let pace = std::num::NonZeroU64::new(ns_per_frame);
    if pace.is_some() {
        // Wake-ups within a microsecond of the deadline (default slack: 50 µs).
        // SAFETY: prctl with integer arguments only affects this thread.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1_000 as libc::c_ulong) };
    }
    while sent.frames < count {
        let mut n = (count - sent.frames).min(batch as u64) as usize;
        if let Some(step) = pace {
            let now = start.elapsed().as_nanos() as u64;
            if now < next {
                // Sleep rather than spin, at least PACE_NAP: on a busy machine a
                // spinning sender uses up its share and is then preempted for
                // milliseconds; a sleeper is woken on time and sends what is due.
                std::thread::sleep(Duration::from_nanos((next - now).max(PACE_NAP)));
                continue;
            }
            next = next.max(now.saturating_sub(catchup_ns));
            let due = (now - next) / step + 1;
            n = n.min(due as usize);
            next += n as u64 * step.get();
        }
        if Instant::now() > deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("timed out with {} frames left", count - sent.frames),
            ));
        }
        for i in 0..n {
            let slot = &mut b.buf[i * SLOT..(i + 1) * SLOT];
            b.lens[i] = build(slot, seq + i as u64, salt, shape);
        }
        // Offer the n frames until the kernel took all of them.
        let mut done = 0;
        while done < n {
            b.iov.clear();
            b.msgs.clear();
            for i in done..n {
                b.iov.push(libc::iovec {
                    iov_base: b.buf[i * SLOT..].as_mut_ptr().cast(),
                    iov_len: b.lens[i],
                });
            }
            for iov in b.iov.iter_mut() {
                // SAFETY: msghdr/mmsghdr are plain old data; all-zero is valid.
                let mut m: libc::mmsghdr = unsafe { mem::zeroed() };
                m.msg_hdr.msg_iov = iov;
                m.msg_hdr.msg_iovlen = 1;
                b.msgs.push(m);
            }
            // SAFETY: `msgs` holds n - done headers, each pointing at one live
            // iovec in `iov`, each at a live slot of `buf`; the kernel reads
            // them during the call only.
            let rc = unsafe {
                libc::sendmmsg(
                    sock.fd.as_raw_fd(),
                    b.msgs.as_mut_ptr(),
                    b.msgs.len() as libc::c_uint,
                    0,
                )
            };
            if rc > 0 {
                let k = rc as usize;
                sent.bytes += b.lens[done..done + k]
                    .iter()
                    .map(|&l| l as u64)
                    .sum::<u64>();
                done += k;
                continue;
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::ENOBUFS) | Some(libc::EAGAIN) | Some(libc::EINTR) => {
                    sent.busy += 1;
                    if Instant::now() > deadline {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "timed out waiting for the interface to take frames",
                        ));
                    }
                    std::thread::yield_now();
                }
                _ => return Err(e),
            }
        }
        sent.frames += n as u64;
        seq += n as u64;
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> Vec<u8> {
        crate::synthetic_frame(60)
    }

    fn checksum_ok(f: &[u8]) -> bool {
        let mut sum: u32 = f[14..34]
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum();
        sum = (sum & 0xffff) + (sum >> 16);
        sum = (sum & 0xffff) + (sum >> 16);
        sum == 0xffff
    }

    #[test]
    fn imix_pattern_lengths_and_checksums() {
        let shape = Shape {
            templates: vec![crate::synthetic_frame(1514)],
            src_mask: 0xff,
            dst_mask: 0xff,
            imix: true,
        };
        let mut slot = vec![0u8; SLOT];
        slot[..1514].copy_from_slice(&shape.templates[0]);
        let mut lens = Vec::new();
        for seq in 0..12 {
            let len = build(&mut slot, seq, 0, &shape);
            let f = &slot[..len];
            assert!(checksum_ok(f));
            assert_eq!(usize::from(u16::from_be_bytes([f[16], f[17]])), len - 14);
            assert_eq!(usize::from(u16::from_be_bytes([f[38], f[39]])), len - 34);
            lens.push(len);
        }
        assert_eq!(lens.iter().filter(|&&l| l == 60).count(), 7);
        assert_eq!(lens.iter().filter(|&&l| l == 590).count(), 4);
        assert_eq!(lens.iter().filter(|&&l| l == 1514).count(), 1);
    }

    #[test]
    fn rewrites_only_the_masked_bits() {
        let shape = Shape {
            templates: vec![frame()],
            src_mask: 0xff,
            dst_mask: 0xf,
            imix: false,
        };
        let mut slot = vec![0u8; SLOT];
        slot[..60].copy_from_slice(&shape.templates[0]);
        let mut dsts = std::collections::HashSet::new();
        for seq in 0..1000 {
            assert_eq!(build(&mut slot, seq, 1, &shape), 60);
            assert_eq!(slot[26..29], [10, 1, 0]);
            assert_eq!(slot[30..33], [10, 2, 0]);
            assert!(slot[33] < 16);
            assert!(checksum_ok(&slot[..60]));
            dsts.insert(slot[33]);
        }
        assert_eq!(dsts.len(), 16);
    }
}

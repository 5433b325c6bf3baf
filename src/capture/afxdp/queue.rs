//! One AF_XDP socket on one (interface, rx queue), with its own UMEM.
//!
//! Frames are lent to the worker straight out of the UMEM (no copy in user
//! space) and the slots go back on the fill ring after the batch. The
//! `recycle` vector is allocated once; `poll` does not allocate.

use std::io;
use std::num::NonZeroU32;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use xdpilone::{DeviceQueue, IfInfo, RingRx, Socket, SocketConfig, Umem, UmemConfig, User};

use super::program::{ProgramMaps, XdpProgram};
use super::{AfxdpOptions, ZeroCopy};
use crate::capture::netdev::{self, Mmap, Pod};
use crate::capture::stats::{DropReason, QueueStats, QueueStatsSource};
use crate::capture::{Capture, CaptureError, Frame};

/// Size of one UMEM frame. Holds a 1518-byte frame after the kernel's
/// 256-byte XDP headroom; larger (jumbo) frames are dropped and counted as
/// `other` (rx_dropped).
pub const FRAME_SIZE: u32 = 2048;
/// How long `poll` sleeps when the ring is empty.
const IDLE_WAIT_MS: i32 = 100;
/// Completion ring: unused (receive only) but required by bind.
const COMPLETION_SIZE: u32 = 64;

/// The part of a queue the metrics thread reads.
struct Shared {
    ifname: String,
    queue: u32,
    /// The socket's fd while the queue is open. The queue's `Drop` takes the
    /// write lock before the socket closes, so a reader holding the read lock
    /// never uses a closed (or reused) descriptor. Workers never touch it.
    sock: RwLock<Option<i32>>,
    maps: Arc<ProgramMaps>,
    /// Frames handed to the worker. Single writer (the worker): relaxed load + store.
    received: AtomicU64,
    /// Frames dropped because a descriptor lay outside the UMEM
    /// (`invalid_desc`). Single writer (the worker): relaxed load + store.
    invalid: AtomicU64,
    /// Last values read, kept after the queue closes.
    last: Mutex<QueueStats>,
}

impl QueueStatsSource for Shared {
    fn stats(&self) -> QueueStats {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        last.interface.clone_from(&self.ifname);
        last.queue = self.queue;
        last.frames_received = self.received.load(Relaxed);
        match self.maps.counters(self.queue) {
            Ok(c) => {
                last.frames_seen = c.frames;
                last.bytes_seen = Some(c.bytes);
                set_reason(&mut last.dropped, DropReason::NoSocket, c.redirect_failed);
            }
            Err(_) => {
                last.bytes_seen.get_or_insert(0);
            }
        }
        let sock = self.sock.read().unwrap_or_else(|p| p.into_inner());
        // Linux 5.9+ layout; an older kernel writes only the first three
        // fields and the rest stay zero.
        let mut st = <libc::xdp_statistics as Pod>::zeroed();
        if let Some(fd) = *sock {
            if netdev::getsockopt(fd, libc::SOL_XDP, libc::XDP_STATISTICS, &mut st).is_ok() {
                set_reason(
                    &mut last.dropped,
                    DropReason::FillRingEmpty,
                    st.rx_fill_ring_empty_descs,
                );
                set_reason(&mut last.dropped, DropReason::RxRingFull, st.rx_ring_full);
                // In copy mode an empty fill ring counts in both rx_dropped and
                // rx_fill_ring_empty_descs; keep the rest of rx_dropped apart.
                set_reason(
                    &mut last.dropped,
                    DropReason::Other,
                    st.rx_dropped.saturating_sub(st.rx_fill_ring_empty_descs),
                );
                last.invalid_descs = st.rx_invalid_descs;
            }
        }
        set_reason(
            &mut last.dropped,
            DropReason::InvalidDesc,
            self.invalid.load(Relaxed),
        );
        last.clone()
    }
}

fn set_reason(dropped: &mut Vec<(DropReason, u64)>, reason: DropReason, n: u64) {
    match dropped.iter_mut().find(|(r, _)| *r == reason) {
        Some(slot) => slot.1 = n,
        None => dropped.push((reason, n)),
    }
}

/// `Umem` keeps a raw pointer to the area, which makes it `!Send`.
struct SendUmem(#[allow(dead_code)] Umem);
// SAFETY: the pointer inside `Umem` refers to the `Mmap` owned by the same
// `AfxdpQueue` and moved with it; `Umem` has no thread-affine state, and the
// queue is used by one thread at a time (`&mut self` in `poll`).
unsafe impl Send for SendUmem {}

/// An AF_XDP socket bound to one rx queue; implements [`Capture`].
pub struct AfxdpQueue {
    // Field order is drop order: the rings and socket go before the UMEM
    // registration, and all of them before the memory they point into.
    rx: RingRx,
    fill: DeviceQueue,
    _user: User,
    _umem: SendUmem,
    area: Mmap,
    /// UMEM chunk addresses owned by user space, waiting for the fill ring.
    recycle: Vec<u64>,
    fd: i32,
    zero_copy: bool,
    multi_buffer: bool,
    /// Joins multi-buffer fragments and checks every descriptor against
    /// the UMEM before any of its bytes are read.
    assembler: Assembler,
    shared: Arc<Shared>,
    /// Keeps the program attached while any queue of the interface is open.
    program: Arc<XdpProgram>,
}

struct Rings {
    umem: Umem,
    fill: DeviceQueue,
    user: User,
    rx: RingRx,
}

fn errno(e: xdpilone::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.get_raw().abs())
}

/// Ring sizes of one socket (powers of two).
#[derive(Clone, Copy)]
struct RingSizes {
    fill: u32,
    rx: u32,
}

fn open_rings(
    area: &Mmap,
    ifindex: u32,
    queue: u32,
    sizes: RingSizes,
    bind_flags: u16,
) -> Result<Rings, (&'static str, io::Error)> {
    let config = UmemConfig {
        fill_size: sizes.fill,
        complete_size: COMPLETION_SIZE,
        frame_size: FRAME_SIZE,
        headroom: 0,
        flags: 0,
    };
    let region = NonNull::slice_from_raw_parts(area.ptr, area.len);
    // SAFETY: `region` is a page-aligned anonymous mapping of exactly
    // `frames_per_queue * FRAME_SIZE` bytes, owned by the `AfxdpQueue` that also owns
    // the returned `Umem` and drops it first (field order).
    let umem =
        unsafe { Umem::new(config, region) }.map_err(|e| ("registering the UMEM", errno(e)))?;
    let mut info = IfInfo::invalid();
    info.from_ifindex(ifindex)
        .map_err(|e| ("looking up the interface", errno(e)))?;
    info.set_queue(queue);
    let sock =
        Socket::with_shared(&info, &umem).map_err(|e| ("creating the AF_XDP socket", errno(e)))?;
    let fill = umem
        .fq_cq(&sock)
        .map_err(|e| ("creating the fill ring", errno(e)))?;
    let cfg = SocketConfig {
        rx_size: NonZeroU32::new(sizes.rx),
        tx_size: None,
        bind_flags,
    };
    let user = umem
        .rx_tx(&sock, &cfg)
        .map_err(|e| ("creating the rx ring", errno(e)))?;
    let rx = user
        .map_rx()
        .map_err(|e| ("mapping the rx ring", errno(e)))?;
    umem.bind(&user)
        .map_err(|e| ("binding the AF_XDP socket", errno(e)))?;
    Ok(Rings {
        umem,
        fill,
        user,
        rx,
    })
}

/// Tries the socket variants `zero_copy` allows, best first: zero-copy before
/// copy, multi-buffer before single-buffer. Returns the rings and whether
/// they are zero-copy and multi-buffer. A busy queue fails at once.
fn open_socket(
    zero_copy: ZeroCopy,
    open: impl Fn(u16) -> Result<Rings, (&'static str, io::Error)>,
) -> Result<(Rings, bool, bool), (&'static str, io::Error)> {
    let modes: &[(u16, bool)] = match zero_copy {
        ZeroCopy::On => &[(SocketConfig::XDP_BIND_ZEROCOPY, true)],
        ZeroCopy::Off => &[(SocketConfig::XDP_BIND_COPY, false)],
        ZeroCopy::Auto => &[
            (SocketConfig::XDP_BIND_ZEROCOPY, true),
            (SocketConfig::XDP_BIND_COPY, false),
        ],
    };
    let mut last = None;
    for &(mode, zc) in modes {
        for sg in [true, false] {
            // `XDP_USE_SG`: frames larger than a UMEM frame arrive as several
            // descriptors (Linux 6.6+), each but the last with
            // `XDP_PKT_CONTD`, instead of being dropped.
            let flags = mode | if sg { libc::XDP_USE_SG } else { 0 };
            match open(flags) {
                Ok(rings) => return Ok((rings, zc, sg)),
                Err((what, e)) if e.raw_os_error() == Some(libc::EBUSY) => return Err((what, e)),
                Err(err) => last = Some(err),
            }
        }
    }
    Err(last.unwrap_or((
        "binding the AF_XDP socket",
        io::Error::from_raw_os_error(libc::EINVAL),
    )))
}

/// How long a bind waits for a queue that is still bound. The kernel frees a
/// dead process's AF_XDP sockets (and the XSKMAP holding them) in deferred
/// work, a few milliseconds after the process is gone; a restart right after
/// a crash must not fail on that.
const BUSY_WAIT: Duration = Duration::from_secs(2);

fn open_rings_retrying(
    area: &Mmap,
    ifindex: u32,
    queue: u32,
    sizes: RingSizes,
    flags: u16,
) -> Result<Rings, (&'static str, io::Error)> {
    let deadline = Instant::now() + BUSY_WAIT;
    loop {
        match open_rings(area, ifindex, queue, sizes, flags) {
            Err((_, e)) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

impl AfxdpQueue {
    /// Opens and binds the socket for `queue` and registers it with `program`.
    pub(super) fn open(
        program: &Arc<XdpProgram>,
        queue: u32,
        opts: &AfxdpOptions,
    ) -> Result<Self, CaptureError> {
        let ifname = program.ifname();
        let frames = opts.frames_per_queue.clamp(64, 1 << 16).next_power_of_two();
        let qerr = |what: &'static str, e: io::Error| match e.raw_os_error() {
            Some(libc::EBUSY) => CaptureError::QueueBusy {
                ifname: ifname.to_owned(),
                queue,
            },
            _ => netdev::os_error(ifname, Some(queue), what, e),
        };
        let area = Mmap::new(frames as usize * FRAME_SIZE as usize, None)
            .map_err(|e| qerr("allocating the UMEM", e))?;
        let wake = SocketConfig::XDP_BIND_NEED_WAKEUP;
        let ifindex = program.ifindex();
        let ring = |n: Option<u32>, default: u32| {
            n.unwrap_or(default).clamp(64, 1 << 20).next_power_of_two()
        };
        let sizes = RingSizes {
            fill: ring(opts.fill_ring, frames * 2),
            rx: ring(opts.rx_ring, frames),
        };
        let open = |flags: u16| open_rings_retrying(&area, ifindex, queue, sizes, wake | flags);
        let (rings, zero_copy, multi_buffer) = open_socket(opts.zero_copy, open)
            .map_err(|(what, e)| match (e.raw_os_error(), opts.zero_copy) {
                (Some(libc::EOPNOTSUPP), ZeroCopy::On) => CaptureError::Interface {
                    ifname: ifname.to_owned(),
                    msg: "the driver cannot do AF_XDP zero-copy; set capture.zero_copy to \"auto\" or \"off\"".into(),
                },
                _ => qerr(what, e),
            })?;
        let fd = rings.user.as_raw_fd();
        let shared = Arc::new(Shared {
            ifname: ifname.to_owned(),
            queue,
            sock: RwLock::new(Some(fd)),
            maps: Arc::clone(program.maps()),
            received: AtomicU64::new(0),
            invalid: AtomicU64::new(0),
            last: Mutex::new(QueueStats::default()),
        });
        let area_len = area.len as u64;
        let mut q = AfxdpQueue {
            rx: rings.rx,
            fill: rings.fill,
            _user: rings.user,
            _umem: SendUmem(rings.umem),
            area,
            recycle: (0..frames as u64).map(|i| i * FRAME_SIZE as u64).collect(),
            fd,
            zero_copy,
            multi_buffer,
            assembler: Assembler::new(area_len),
            shared,
            program: Arc::clone(program),
        };
        // With a fill ring smaller than the UMEM the rest waits in `recycle`.
        q.refill();
        program.maps().register(queue, fd)?;
        Ok(q)
    }

    /// The rx queue this socket is bound to.
    pub fn queue(&self) -> u32 {
        self.shared.queue
    }

    /// The interface name.
    pub fn ifname(&self) -> &str {
        &self.shared.ifname
    }

    /// Whether the socket runs in zero-copy mode (else copy mode).
    pub fn is_zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// A handle the metrics thread can read `QueueStats` from.
    pub fn stats_source(&self) -> Arc<dyn QueueStatsSource> {
        self.shared.clone()
    }

    /// A fresh snapshot of this queue's counters.
    pub fn stats(&self) -> QueueStats {
        self.shared.stats()
    }

    /// Puts every recycled chunk back on the fill ring. xdpilone re-reads the
    /// kernel's consumer index only when its cached view shows no room, so a
    /// single call may place fewer than fit: loop until all are placed or the
    /// ring is really full.
    fn refill(&mut self) {
        while !self.recycle.is_empty() {
            let mut w = self.fill.fill(self.recycle.len() as u32);
            let k = (w.capacity() as usize).min(self.recycle.len());
            if k == 0 {
                break;
            }
            let start = self.recycle.len() - k;
            let placed = w.insert(self.recycle[start..].iter().copied()) as usize;
            w.commit();
            self.recycle.truncate(self.recycle.len() - placed);
            if placed == 0 {
                break;
            }
        }
        if self.fill.needs_wakeup() {
            self.fill.wake();
        }
    }

    /// Whether frames larger than a UMEM frame arrive in fragments (else
    /// the kernel drops them, counted as `other`).
    pub fn is_multi_buffer(&self) -> bool {
        self.multi_buffer
    }

    /// Takes up to `max` frames off the rx ring, lends each to `f`, then
    /// returns their chunks to the fill ring. A multi-buffer frame is lent
    /// as its first fragment (which holds the headers) with `wire_len` the
    /// sum of all fragments. A frame with a descriptor outside the UMEM is
    /// not read: it counts as dropped (`invalid_desc`), never as received.
    fn receive<F: FnMut(Frame<'_>)>(&mut self, max: usize, f: &mut F) -> usize {
        let base = self.area.ptr.as_ptr();
        // The program's stamps are CLOCK_MONOTONIC; the other backends (and
        // the worker's own clock) give wall-clock times: convert, with one
        // offset per call.
        let stamps = self
            .program
            .stamps()
            .map(|magic| (magic, monotonic_to_wall_ns()));
        let mut frames = 0usize;
        let mut invalid = 0u64;
        let mut descs = 0usize;
        // Like the fill ring, the rx ring may hand out fewer than are ready.
        while frames < max {
            let mut r = self
                .rx
                .receive((max - frames).min(u32::MAX as usize) as u32);
            if r.capacity() == 0 {
                break;
            }
            while let Some(desc) = r.read() {
                descs += 1;
                let more = desc.options & libc::XDP_PKT_CONTD != 0;
                match self
                    .assembler
                    .push(desc.addr, desc.len, more, &mut self.recycle)
                {
                    Step::More => {}
                    Step::Invalid => invalid += 1,
                    Step::Frame { addr, len, total } => {
                        frames += 1;
                        // SAFETY: the kernel produced this descriptor on the
                        // rx ring (read after an Acquire of the producer
                        // index, pairing with the kernel's release), so the
                        // chunk is fully written and belongs to user space
                        // until it goes back on the fill ring (`refill`,
                        // after this loop and so after `f` returns);
                        // `Assembler::push` checked that `addr..addr+len`
                        // lies inside one chunk of the UMEM mapping, which
                        // outlives this call.
                        let data = unsafe {
                            std::slice::from_raw_parts(base.add(addr as usize), len as usize)
                        };
                        // AF_XDP descriptors carry no time stamp; the XDP
                        // program may have put one in front of the frame.
                        let (data, total, timestamp_ns) = match stamps {
                            Some((magic, to_wall)) => take_stamp(data, total, magic, to_wall),
                            None => (data, total, 0),
                        };
                        f(Frame {
                            data,
                            wire_len: total,
                            timestamp_ns,
                        });
                    }
                }
            }
            r.release();
        }
        if frames > 0 {
            let received = &self.shared.received;
            received.store(received.load(Relaxed) + frames as u64, Relaxed);
        }
        if invalid > 0 {
            let dropped = &self.shared.invalid;
            dropped.store(dropped.load(Relaxed) + invalid, Relaxed);
        }
        if descs > 0 {
            self.refill();
        }
        frames
    }
}

/// Where an rx descriptor's bytes lie in a UMEM of aligned `FRAME_SIZE`
/// chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DescPlace {
    /// `addr..addr + len` lies inside the chunk at this offset: readable.
    Inside(u64),
    /// The chunk at this offset is in the UMEM but the bytes run past its
    /// end: not readable, yet the chunk is ours to put back on the fill ring.
    Overrun(u64),
    /// The address is outside the UMEM: nothing to read or give back.
    Outside,
}

/// Checks a descriptor against a UMEM of `area_len` bytes. Pure, so the
/// check the `unsafe` read relies on is unit-tested without a socket.
fn desc_place(addr: u64, len: u32, area_len: u64) -> DescPlace {
    let size = u64::from(FRAME_SIZE);
    let chunk = addr & !(size - 1);
    let chunk_end = match chunk.checked_add(size) {
        Some(end) if end <= area_len => end,
        _ => return DescPlace::Outside,
    };
    match addr.checked_add(u64::from(len)) {
        Some(end) if end <= chunk_end => DescPlace::Inside(chunk),
        _ => DescPlace::Overrun(chunk),
    }
}

/// What one rx descriptor completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// A fragment of a multi-buffer frame; more follow.
    More,
    /// A whole frame to lend: its first fragment (`addr`, `len`, checked to
    /// lie in one UMEM chunk) and the length of all fragments.
    Frame { addr: u64, len: u32, total: u32 },
    /// A whole frame with a descriptor outside the UMEM: dropped unread.
    Invalid,
}

/// The first fragment of a multi-buffer frame whose last fragment has not
/// been read yet.
#[derive(Clone, Copy, Debug)]
struct Partial {
    addr: u64,
    len: u32,
    /// Length of the fragments so far.
    total: u32,
    /// Every fragment so far lay inside the UMEM.
    valid: bool,
}

/// Turns rx descriptors into frames: joins multi-buffer fragments, checks
/// each descriptor with [`desc_place`] and hands every chunk of ours to
/// `recycle`. Bookkeeping only (no memory is read), so every path is
/// unit-tested; each descriptor without `XDP_PKT_CONTD` ends exactly one
/// frame, either `Frame` or `Invalid`.
#[derive(Debug)]
struct Assembler {
    area_len: u64,
    partial: Option<Partial>,
}

impl Assembler {
    fn new(area_len: u64) -> Self {
        Assembler {
            area_len,
            partial: None,
        }
    }

    /// Takes one descriptor (`more`: `XDP_PKT_CONTD` is set). The chunks it
    /// names go to `recycle`, to be put back on the fill ring after the
    /// batch: the caller must be done with a lent frame's bytes by then.
    fn push(&mut self, addr: u64, len: u32, more: bool, recycle: &mut Vec<u64>) -> Step {
        let valid = match desc_place(addr, len, self.area_len) {
            DescPlace::Inside(chunk) => {
                recycle.push(chunk);
                true
            }
            DescPlace::Overrun(chunk) => {
                recycle.push(chunk);
                false
            }
            DescPlace::Outside => false,
        };
        let frame = match self.partial.take() {
            None => Partial {
                addr,
                len,
                total: len,
                valid,
            },
            Some(p) => Partial {
                total: p.total.saturating_add(len),
                valid: p.valid && valid,
                ..p
            },
        };
        if more {
            self.partial = Some(frame);
            Step::More
        } else if frame.valid {
            Step::Frame {
                addr: frame.addr,
                len: frame.len,
                total: frame.total,
            }
        } else {
            Step::Invalid
        }
    }
}

impl Capture for AfxdpQueue {
    fn poll<F: FnMut(Frame<'_>)>(&mut self, max: usize, mut f: F) -> Result<usize, CaptureError> {
        if !self.recycle.is_empty() {
            self.refill();
        }
        let n = self.receive(max, &mut f);
        if n > 0 {
            return Ok(n);
        }
        // Idle: sleep in poll(2); with need_wakeup this also kicks the driver.
        match netdev::wait_readable(self.fd, IDLE_WAIT_MS) {
            Ok(true) => Ok(self.receive(max, &mut f)),
            Ok(false) => Ok(0),
            Err(e) => Err(CaptureError::Queue {
                ifname: self.shared.ifname.clone(),
                queue: self.shared.queue,
                what: "waiting for frames",
                source: e,
            }),
        }
    }
}

impl Drop for AfxdpQueue {
    fn drop(&mut self) {
        // Stop redirecting before the socket goes away; later frames on this
        // queue count as `no_socket`.
        self.program.maps().unregister(self.shared.queue);
        // Keep the final counts, then make sure no reader uses the fd again.
        let _ = self.shared.stats();
        *self.shared.sock.write().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// Bytes of `struct frame_stamp` (bpf/xdpacct.h): magic, CLOCK_MONOTONIC ns.
const STAMP_LEN: usize = 16;

/// A frame without the XDP program's stamp in front of it, its length
/// without it, and its time (the stamp's, moved to the wall clock by
/// `to_wall` ns; 0 when the frame has no stamp).
fn take_stamp(data: &[u8], total: u32, magic: u64, to_wall: i64) -> (&[u8], u32, u64) {
    match data.split_first_chunk::<STAMP_LEN>() {
        Some((stamp, frame)) if stamp[..8] == magic.to_ne_bytes() => {
            let mut ns = [0u8; 8];
            ns.copy_from_slice(&stamp[8..]);
            let t = u64::from_ne_bytes(ns).wrapping_add_signed(to_wall);
            (frame, total.saturating_sub(STAMP_LEN as u32), t)
        }
        _ => (data, total, 0),
    }
}

/// Wall clock minus CLOCK_MONOTONIC, ns.
fn monotonic_to_wall_ns() -> i64 {
    let now = |clock| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec into `ts`, which lives
        // for the call.
        unsafe { libc::clock_gettime(clock, &mut ts) };
        ts.tv_sec * 1_000_000_000 + ts.tv_nsec
    };
    let mono = now(libc::CLOCK_MONOTONIC);
    now(libc::CLOCK_REALTIME) - mono
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_is_taken_only_with_its_magic() {
        let magic = 0x0123_4567_89ab_cdefu64;
        let mut framed = magic.to_ne_bytes().to_vec();
        framed.extend_from_slice(&1_000u64.to_ne_bytes());
        framed.extend_from_slice(&[0xaa; 60]);
        let (data, total, t) = take_stamp(&framed, 76, magic, 5);
        assert_eq!((data.len(), total, t), (60, 60, 1_005));
        // Another magic, or a frame too short for a stamp: untouched.
        assert_eq!(take_stamp(&framed, 76, magic ^ 1, 5).2, 0);
        assert_eq!(
            take_stamp(&framed[..10], 10, magic, 5),
            (&framed[..10], 10, 0)
        );
    }

    const F: u64 = FRAME_SIZE as u64;
    /// A UMEM of four chunks.
    const AREA: u64 = 4 * F;
    /// `XDP_PACKET_HEADROOM`: where the kernel puts a frame in its chunk.
    const HEAD: u64 = 256;

    #[test]
    fn desc_place_checks_chunk_and_umem_bounds() {
        use DescPlace::*;
        let room = (F - HEAD) as u32;
        let cases: &[(u64, u32, DescPlace)] = &[
            (HEAD, 60, Inside(0)),
            (HEAD, 0, Inside(0)),
            (0, F as u32, Inside(0)),
            (F + HEAD, room, Inside(F)),
            (3 * F + HEAD, room, Inside(3 * F)),
            (F + HEAD, room + 1, Overrun(F)),
            (3 * F + HEAD, room + 1, Overrun(3 * F)),
            (0, u32::MAX, Overrun(0)),
            (AREA, 0, Outside),
            (AREA + HEAD, 60, Outside),
            (u64::MAX - 10, 60, Outside),
            (u64::MAX, 0, Outside),
        ];
        for &(addr, len, want) in cases {
            assert_eq!(desc_place(addr, len, AREA), want, "addr {addr} len {len}");
        }
    }

    /// Regression: a descriptor that failed the bounds check was counted as
    /// received but neither lent to the worker nor counted as dropped.
    #[test]
    fn out_of_umem_desc_is_dropped_not_received() {
        let mut a = Assembler::new(AREA);
        let mut recycle = Vec::new();
        assert_eq!(a.push(AREA + HEAD, 60, false, &mut recycle), Step::Invalid);
        assert!(recycle.is_empty(), "a chunk outside the UMEM is not ours");
        // A descriptor running past its chunk: dropped, its chunk given back.
        assert_eq!(
            a.push(2 * F + HEAD, F as u32, false, &mut recycle),
            Step::Invalid
        );
        assert_eq!(recycle, [2 * F]);
    }

    /// Every frame the kernel hands over is either lent (accounted) or
    /// dropped as `invalid_desc`, on every path, and every chunk of ours
    /// goes back to the fill ring exactly once.
    #[test]
    fn every_frame_is_lent_or_dropped() {
        // (addr, len, XDP_PKT_CONTD): 7 frames, the truth written out below.
        let descs: &[(u64, u32, bool)] = &[
            (HEAD, 60, false),           // 1: lent
            (AREA + HEAD, 60, false),    // 2: outside the UMEM
            (F + HEAD, 1792, true),      // 3: three fragments, lent
            (2 * F + HEAD, 1792, true),  //
            (3 * F + HEAD, 100, false),  //
            (HEAD, 1792, true),          // 4: middle fragment outside
            (AREA * 2, 1792, true),      //
            (F + HEAD, 10, false),       //
            (2 * F + HEAD, 1792, true),  // 5: last fragment overruns
            (3 * F + HEAD, 1793, false), //
            (F + 2000, 60, false),       // 6: overruns its chunk
            (3 * F, F as u32, false),    // 7: a whole chunk, lent
        ];
        let mut a = Assembler::new(AREA);
        let mut recycle = Vec::new();
        let steps: Vec<Step> = descs
            .iter()
            .map(|&(addr, len, more)| a.push(addr, len, more, &mut recycle))
            .collect();
        let frames: Vec<Step> = steps.into_iter().filter(|s| *s != Step::More).collect();
        assert_eq!(
            frames,
            [
                Step::Frame {
                    addr: HEAD,
                    len: 60,
                    total: 60
                },
                Step::Invalid,
                Step::Frame {
                    addr: F + HEAD,
                    len: 1792,
                    total: 1792 + 1792 + 100
                },
                Step::Invalid,
                Step::Invalid,
                Step::Invalid,
                Step::Frame {
                    addr: 3 * F,
                    len: F as u32,
                    total: F as u32
                },
            ]
        );
        let seen = descs.iter().filter(|d| !d.2).count();
        let lent = frames
            .iter()
            .filter(|s| matches!(s, Step::Frame { .. }))
            .count();
        let dropped = frames.iter().filter(|s| **s == Step::Invalid).count();
        assert_eq!((seen, lent, dropped), (7, 3, 4));
        // Every descriptor inside the UMEM gives its chunk back; the two
        // outside it do not.
        assert_eq!(recycle, [0, F, 2 * F, 3 * F, 0, F, 2 * F, 3 * F, F, 3 * F]);
        assert!(a.partial.is_none(), "no frame left half-assembled");
    }

    #[test]
    fn fragments_carry_over_between_batches() {
        let mut a = Assembler::new(AREA);
        let mut recycle = Vec::new();
        assert_eq!(a.push(HEAD, 1792, true, &mut recycle), Step::More);
        // The next batch continues the same frame.
        assert_eq!(
            a.push(F + HEAD, 8, false, &mut recycle),
            Step::Frame {
                addr: HEAD,
                len: 1792,
                total: 1800
            }
        );
        assert_eq!(recycle, [0, F]);
    }
}

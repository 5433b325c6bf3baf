//! AF_PACKET capture: TPACKET_V3 rx rings joined in a PACKET_FANOUT hash
//! group, one socket per worker. The fallback for NICs or kernels without
//! XDP.
//!
//! Holds unsafe code (a ring mapped from the kernel, socket options); every
//! block says why it is sound. Allocates at start-up only, except that a
//! VLAN-tagged frame is copied once into a per-queue scratch buffer to put
//! back the tag the kernel moved out of the frame.

use std::io;
use std::mem::{offset_of, size_of};
use std::ops::Range;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

// Layouts from linux/if_packet.h, as libc defines them.
use libc::{tpacket3_hdr, tpacket_block_desc, tpacket_hdr_v1, tpacket_stats_v3};

use super::netdev::{self, Mmap, Pod, Promiscuous};
use super::stats::{DropReason, QueueStats, QueueStatsSource};
use super::{Capture, CaptureError, Frame};

const IDLE_WAIT_MS: i32 = 100;
/// Where `hdr.bh1` and its fields lie inside a block (`tpacket_block_desc`).
const BLOCK_HDR: usize = offset_of!(tpacket_block_desc, hdr);
const BLOCK_STATUS: usize = BLOCK_HDR + offset_of!(tpacket_hdr_v1, block_status);
const BLOCK_NUM_PKTS: usize = BLOCK_HDR + offset_of!(tpacket_hdr_v1, num_pkts);
const BLOCK_FIRST_PKT: usize = BLOCK_HDR + offset_of!(tpacket_hdr_v1, offset_to_first_pkt);
/// A frame's `tpacket3_hdr`; its bytes start `tp_mac` after the header's start.
const TPACKET3_HDR_LEN: usize = size_of::<tpacket3_hdr>();

/// Options for [`open_afpacket`].
#[derive(Clone, Debug)]
pub struct AfpacketOptions {
    /// Sockets (workers) in the fanout group; 0 means one per rx queue of
    /// the interface. Defaults to 0.
    pub workers: u32,
    /// Fanout group id (unique per network namespace). Defaults to `None`:
    /// derived from the process id.
    pub fanout_group: Option<u16>,
    /// Ring block size in bytes, a power of two of at least a page.
    /// Defaults to 1 MiB.
    pub block_size: u32,
    /// Blocks per ring. Defaults to 16 (16 MiB per worker).
    pub block_count: u32,
    /// A block that is not full is handed over after this many
    /// milliseconds, so idle polls return. Defaults to 20.
    pub retire_ms: u32,
    /// Put the interface in promiscuous mode while capturing. Defaults to true.
    pub promiscuous: bool,
}

impl Default for AfpacketOptions {
    fn default() -> Self {
        AfpacketOptions {
            workers: 0,
            fanout_group: None,
            block_size: 1 << 20,
            block_count: 16,
            retire_ms: 20,
            promiscuous: true,
        }
    }
}

struct Shared {
    ifname: String,
    queue: u32,
    /// The socket's fd while the queue is open. The queue's `Drop` takes the
    /// write lock before the socket closes, so a reader holding the read lock
    /// never uses a closed (or reused) descriptor. Workers never touch it.
    sock: RwLock<Option<i32>>,
    /// Frames handed to the worker. Single writer: relaxed load + store.
    received: AtomicU64,
    /// Frames not read because their header pointed outside the block
    /// (`invalid_desc`). Single writer: relaxed load + store.
    invalid: AtomicU64,
    /// PACKET_STATISTICS resets on every read: running totals (packets, drops).
    totals: Mutex<(u64, u64)>,
}

impl QueueStatsSource for Shared {
    fn stats(&self) -> QueueStats {
        let mut totals = self.totals.lock().unwrap_or_else(|p| p.into_inner());
        let sock = self.sock.read().unwrap_or_else(|p| p.into_inner());
        let mut st = tpacket_stats_v3::zeroed();
        if sock.is_some_and(|fd| {
            netdev::getsockopt(fd, libc::SOL_PACKET, libc::PACKET_STATISTICS, &mut st).is_ok()
        }) {
            // The kernel reports tp_packets including tp_drops.
            totals.0 += u64::from(st.tp_packets);
            totals.1 += u64::from(st.tp_drops);
        }
        QueueStats {
            interface: self.ifname.clone(),
            queue: self.queue,
            frames_seen: totals.0,
            bytes_seen: None,
            frames_received: self.received.load(Ordering::Relaxed),
            dropped: vec![
                (DropReason::RingFull, totals.1),
                (
                    DropReason::InvalidDesc,
                    self.invalid.load(Ordering::Relaxed),
                ),
            ],
            invalid_descs: 0,
        }
    }
}

/// One TPACKET_V3 socket in the fanout group; implements [`Capture`].
pub struct AfpacketQueue {
    // Drop order: the mapping before the socket.
    ring: Mmap,
    fd: OwnedFd,
    block_size: usize,
    block_count: usize,
    block: usize,
    /// Inside the current block: (frames left, offset of the next frame).
    cursor: Option<(u32, usize)>,
    scratch: Vec<u8>,
    shared: Arc<Shared>,
    _promiscuous: Option<Arc<Promiscuous>>,
}

/// Opens `workers` TPACKET_V3 sockets on `ifname` in one fanout hash group.
pub fn open_afpacket(
    opts: &AfpacketOptions,
    ifname: &str,
) -> Result<Vec<AfpacketQueue>, CaptureError> {
    let ifindex = netdev::ifindex(ifname)?;
    let workers = match opts.workers {
        0 => netdev::rx_queue_count(ifname)?,
        n => n,
    };
    let page = 4096u32;
    if !opts.block_size.is_power_of_two() || opts.block_size < page || opts.block_count == 0 {
        return Err(CaptureError::Interface {
            ifname: ifname.to_owned(),
            msg: format!(
                "AF_PACKET block size {} must be a power of two of at least {page}",
                opts.block_size
            ),
        });
    }
    // SAFETY: getpid has no preconditions.
    let group = opts
        .fanout_group
        .unwrap_or_else(|| (unsafe { libc::getpid() } as u32 & 0xffff) as u16);
    let promiscuous = if opts.promiscuous {
        Some(Arc::new(Promiscuous::enable(ifname, ifindex)?))
    } else {
        None
    };
    let mut queues = Vec::with_capacity(workers as usize);
    for queue in 0..workers {
        queues.push(AfpacketQueue::open(
            ifname,
            ifindex,
            queue,
            group,
            opts,
            promiscuous.clone(),
        )?);
    }
    // Every socket dropped all frames while the group was forming (otherwise
    // the first socket would see everyone's share twice); open the gates.
    for q in &queues {
        netdev::setsockopt(&q.fd, libc::SOL_SOCKET, libc::SO_DETACH_FILTER, &0i32).map_err(
            |e| {
                netdev::os_error(
                    ifname,
                    Some(q.shared.queue),
                    "removing the start-up filter",
                    e,
                )
            },
        )?;
    }
    Ok(queues)
}

impl AfpacketQueue {
    fn open(
        ifname: &str,
        ifindex: u32,
        queue: u32,
        group: u16,
        opts: &AfpacketOptions,
        promiscuous: Option<Arc<Promiscuous>>,
    ) -> Result<Self, CaptureError> {
        let qerr =
            |what: &'static str, e: io::Error| netdev::os_error(ifname, Some(queue), what, e);
        // Protocol 0: receive nothing until bound to the interface below.
        let fd = netdev::socket(libc::AF_PACKET, libc::SOCK_RAW, 0)
            .map_err(|e| qerr("opening a packet socket", e))?;
        // Drop everything until the whole fanout group has joined.
        let drop_all = [libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: 0,
        }];
        let prog = libc::sock_fprog {
            len: 1,
            filter: drop_all.as_ptr() as *mut _,
        };
        netdev::setsockopt(&fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)
            .map_err(|e| qerr("attaching the start-up filter", e))?;
        let version = libc::tpacket_versions::TPACKET_V3 as libc::c_int;
        netdev::setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_VERSION, &version)
            .map_err(|e| qerr("selecting TPACKET_V3", e))?;
        // Count what arrives on the link, not what this host sends.
        netdev::setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &1i32)
            .map_err(|e| qerr("setting PACKET_IGNORE_OUTGOING", e))?;
        let frame_size = 2048u32;
        let req = libc::tpacket_req3 {
            tp_block_size: opts.block_size,
            tp_block_nr: opts.block_count,
            tp_frame_size: frame_size,
            tp_frame_nr: opts.block_size / frame_size * opts.block_count,
            tp_retire_blk_tov: opts.retire_ms.max(1),
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        netdev::setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_RX_RING, &req)
            .map_err(|e| qerr("creating the TPACKET_V3 ring", e))?;
        let len = opts.block_size as usize * opts.block_count as usize;
        let ring = Mmap::new(len, Some(fd.as_raw_fd())).map_err(|e| qerr("mapping the ring", e))?;
        let addr = libc::sockaddr_ll {
            sll_family: libc::AF_PACKET as u16,
            sll_protocol: (libc::ETH_P_ALL as u16).to_be(),
            sll_ifindex: ifindex as i32,
            sll_hatype: 0,
            sll_pkttype: 0,
            sll_halen: 0,
            sll_addr: [0; 8],
        };
        // SAFETY: `addr` is a valid sockaddr_ll and the length passed is its size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(qerr(
                "binding the packet socket",
                io::Error::last_os_error(),
            ));
        }
        let fanout = u32::from(group) | (libc::PACKET_FANOUT_HASH << 16);
        netdev::setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_FANOUT, &fanout).map_err(|e| match e.raw_os_error() {
            Some(libc::EINVAL) | Some(libc::EALREADY) => CaptureError::Interface {
                ifname: ifname.to_owned(),
                msg: format!("fanout group {group} is taken by another process; set a different capture fanout group"),
            },
            _ => qerr("joining the fanout group", e),
        })?;
        // Reading the statistics resets them: start from zero.
        let mut discard = tpacket_stats_v3::zeroed();
        let _ = netdev::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            &mut discard,
        );
        let shared = Arc::new(Shared {
            ifname: ifname.to_owned(),
            queue,
            sock: RwLock::new(Some(fd.as_raw_fd())),
            received: AtomicU64::new(0),
            invalid: AtomicU64::new(0),
            totals: Mutex::new((0, 0)),
        });
        Ok(AfpacketQueue {
            ring,
            fd,
            block_size: opts.block_size as usize,
            block_count: opts.block_count as usize,
            block: 0,
            cursor: None,
            scratch: vec![0; 1 << 16],
            shared,
            _promiscuous: promiscuous,
        })
    }

    /// Fanout member index.
    pub fn queue(&self) -> u32 {
        self.shared.queue
    }

    /// A handle the metrics thread can read `QueueStats` from.
    pub fn stats_source(&self) -> Arc<dyn QueueStatsSource> {
        self.shared.clone()
    }

    /// A fresh snapshot of this socket's counters.
    pub fn stats(&self) -> QueueStats {
        self.shared.stats()
    }

    fn block_ptr(&self) -> *mut u8 {
        // SAFETY: `block < block_count`, so the offset stays inside the mapping.
        unsafe { self.ring.ptr.as_ptr().add(self.block * self.block_size) }
    }

    fn status(&self) -> &AtomicU32 {
        // SAFETY: `block_status` is a 4-byte-aligned u32 inside the current
        // block's header, in memory mapped for the life of `self`; the kernel
        // writes it with a release store (smp_wmb before flushing the status),
        // so an Acquire load here orders our reads of the block after it.
        unsafe { &*self.block_ptr().add(BLOCK_STATUS).cast::<AtomicU32>() }
    }

    fn read_u32(&self, off: usize) -> u32 {
        debug_assert!(off + 4 <= self.block_size);
        // SAFETY: `off + 4 <= block_size` (checked by callers), inside the
        // current block, which user space owns while its status is USER.
        unsafe { self.block_ptr().add(off).cast::<u32>().read_unaligned() }
    }

    /// The frame header at `off` in the current block.
    fn frame_header(&self, off: usize) -> tpacket3_hdr {
        debug_assert!(off + TPACKET3_HDR_LEN <= self.block_size);
        // SAFETY: `off + size_of::<tpacket3_hdr>() <= block_size` (checked by
        // the caller), inside the current block, which user space owns while
        // its status is USER; the header is plain integers, valid for any
        // bytes, and read unaligned.
        unsafe {
            self.block_ptr()
                .add(off)
                .cast::<tpacket3_hdr>()
                .read_unaligned()
        }
    }

    /// Lends up to `max` frames to `f`; returns how many. A frame whose
    /// header points outside its block is not read: it counts as dropped
    /// (`invalid_desc`), never as received, so that `tp_packets` = received
    /// + dropped holds.
    fn receive<F: FnMut(Frame<'_>)>(&mut self, max: usize, f: &mut F) -> usize {
        // Frames taken off the ring (lent or invalid), and those lent.
        let mut n = 0;
        let mut lent = 0;
        let mut invalid = 0u64;
        while n < max {
            if self.status().load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
                break;
            }
            let (mut left, mut off) = match self.cursor {
                Some(c) => c,
                None => (
                    self.read_u32(BLOCK_NUM_PKTS),
                    self.read_u32(BLOCK_FIRST_PKT) as usize,
                ),
            };
            while left > 0 && n < max {
                if off + TPACKET3_HDR_LEN > self.block_size {
                    // Corrupt block: skip the rest, counted as invalid.
                    invalid += u64::from(left);
                    left = 0;
                    break;
                }
                let hdr = self.frame_header(off);
                let status = hdr.tp_status;
                let tci = hdr.hv1.tp_vlan_tci as u16;
                let tpid = if status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                    hdr.hv1.tp_vlan_tpid
                } else {
                    0x8100
                };
                let wire = hdr.tp_len;
                // The kernel's receive time stamp of the frame.
                let timestamp_ns = u64::from(hdr.tp_sec) * 1_000_000_000 + u64::from(hdr.tp_nsec);
                n += 1;
                left -= 1;
                let Some(range) = frame_range(off, &hdr, self.block_size) else {
                    invalid += 1;
                    off += hdr.tp_next_offset as usize;
                    continue;
                };
                off += hdr.tp_next_offset as usize;
                lent += 1;
                // SAFETY: `frame_range` checked that the range lies in the
                // current block, which the kernel handed to user space
                // (status USER, read with Acquire) and will not touch until
                // we set it back to KERNEL below, after `f` has returned.
                let data = unsafe {
                    std::slice::from_raw_parts(self.block_ptr().add(range.start), range.len())
                };
                if status & libc::TP_STATUS_VLAN_VALID != 0
                    && data.len() >= 12
                    && data.len() + 4 <= self.scratch.len()
                {
                    // The kernel moved the outer 802.1Q tag out of the
                    // frame; put it back so the frame is as on the wire.
                    let s = &mut self.scratch;
                    s[..12].copy_from_slice(&data[..12]);
                    s[12..14].copy_from_slice(&tpid.to_be_bytes());
                    s[14..16].copy_from_slice(&tci.to_be_bytes());
                    s[16..data.len() + 4].copy_from_slice(&data[12..]);
                    f(Frame {
                        data: &s[..data.len() + 4],
                        wire_len: wire + 4,
                        timestamp_ns,
                    });
                } else {
                    f(Frame {
                        data,
                        wire_len: wire,
                        timestamp_ns,
                    });
                }
            }
            if left == 0 {
                self.cursor = None;
                // Hand the block back; Release orders our reads before it.
                self.status()
                    .store(libc::TP_STATUS_KERNEL, Ordering::Release);
                self.block = (self.block + 1) % self.block_count;
            } else {
                self.cursor = Some((left, off));
            }
        }
        if lent > 0 {
            let r = &self.shared.received;
            r.store(r.load(Ordering::Relaxed) + lent as u64, Ordering::Relaxed);
        }
        if invalid > 0 {
            let r = &self.shared.invalid;
            r.store(r.load(Ordering::Relaxed) + invalid, Ordering::Relaxed);
        }
        lent
    }
}

/// The bytes of the frame whose header `hdr` lies at `off` in a block of
/// `block_size` bytes, or `None` when they do not lie inside the block.
/// Pure, so the check the `unsafe` read relies on is unit-tested.
fn frame_range(off: usize, hdr: &tpacket3_hdr, block_size: usize) -> Option<Range<usize>> {
    let start = off.checked_add(usize::from(hdr.tp_mac))?;
    let end = start.checked_add(hdr.tp_snaplen as usize)?;
    (end <= block_size).then_some(start..end)
}

impl Capture for AfpacketQueue {
    fn poll<F: FnMut(Frame<'_>)>(&mut self, max: usize, mut f: F) -> Result<usize, CaptureError> {
        let n = self.receive(max, &mut f);
        if n > 0 {
            return Ok(n);
        }
        match netdev::wait_readable(self.fd.as_raw_fd(), IDLE_WAIT_MS) {
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

impl Drop for AfpacketQueue {
    fn drop(&mut self) {
        // Keep the final counts, then make sure no reader uses the fd again.
        let _ = self.shared.stats();
        *self.shared.sock.write().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The offsets the ring walk uses, against linux/if_packet.h.
    #[test]
    fn tpacket_v3_layout_matches_the_kernel_header() {
        assert_eq!((BLOCK_STATUS, BLOCK_NUM_PKTS, BLOCK_FIRST_PKT), (8, 12, 16));
        assert_eq!(TPACKET3_HDR_LEN, 48);
        assert_eq!(offset_of!(tpacket3_hdr, tp_mac), 24);
        assert_eq!(offset_of!(tpacket3_hdr, hv1), 28);
    }

    fn hdr(mac: u16, snaplen: u32) -> tpacket3_hdr {
        let mut h = zero_hdr();
        h.tp_mac = mac;
        h.tp_snaplen = snaplen;
        h
    }

    fn zero_hdr() -> tpacket3_hdr {
        tpacket3_hdr {
            tp_next_offset: 0,
            tp_sec: 0,
            tp_nsec: 0,
            tp_snaplen: 0,
            tp_len: 0,
            tp_status: 0,
            tp_mac: 0,
            tp_net: 0,
            hv1: libc::tpacket_hdr_variant1 {
                tp_rxhash: 0,
                tp_vlan_tci: 0,
                tp_vlan_tpid: 0,
                tp_padding: 0,
            },
            tp_padding: [0; 8],
        }
    }

    #[test]
    fn frame_range_stays_inside_the_block() {
        let block = 4096;
        let cases: &[(usize, u16, u32, Option<Range<usize>>)] = &[
            (48, 66, 60, Some(114..174)),
            (48, 66, 4096 - 114, Some(114..4096)),
            (48, 66, 4096 - 113, None),
            (4000, 66, 60, None),
            (48, 66, u32::MAX, None),
            (usize::MAX - 10, 66, 0, None),
        ];
        for (off, mac, snaplen, want) in cases {
            assert_eq!(
                frame_range(*off, &hdr(*mac, *snaplen), block),
                *want,
                "off {off} mac {mac} snaplen {snaplen}"
            );
        }
    }
}

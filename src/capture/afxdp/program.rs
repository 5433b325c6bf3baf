//! The XDP program of `bpf/xdpacct.bpf.c`: load, XSKMAP registration,
//! per-queue counters, attach through a bpf_link.
//!
//! The link is a file descriptor: when the last holder drops it, or the
//! process dies (even by SIGKILL), the kernel detaches the program, so a
//! crashed xdpacct never blocks the next start.

use std::io;
use std::mem::{offset_of, MaybeUninit};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, OnceLock};

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, MapHandle};

use super::skel::types::queue_counters;
use super::skel::XdpacctSkelBuilder;
use super::XdpMode;
use crate::capture::netdev::{self, Promiscuous};
use crate::capture::CaptureError;

/// Slots in the XSKMAP and counter map (`XDPACCT_MAX_QUEUES` in bpf/xdpacct.h).
/// A hand copy: a `#define` does not reach the object's BTF, so the skeleton
/// has no constant for it.
pub const MAX_QUEUES: u32 = 256;

/// The BPF program's counters for one rx queue, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgramCounters {
    /// Frames the program saw.
    pub frames: u64,
    /// Their bytes (all fragments).
    pub bytes: u64,
    /// Frames with no socket registered for their queue, passed to the stack.
    pub redirect_failed: u64,
}

/// A loaded (and, after `attach`, attached) XDP program on one interface.
/// Dropping the last handle detaches it and leaves promiscuous mode.
pub struct XdpProgram {
    ifindex: u32,
    prog: OwnedFd,
    maps: Arc<ProgramMaps>,
    link: OnceLock<OwnedFd>,
    _promiscuous: Option<Promiscuous>,
    /// The magic of the stamps the program puts in front of TCP handshake
    /// frames (`struct frame_stamp`), when it does.
    stamps: Option<u64>,
}

/// The program's maps. The metrics side keeps these (not the program) so
/// that stats handles never keep the program attached.
pub struct ProgramMaps {
    ifname: String,
    xsks: MapHandle,
    counters: MapHandle,
}

/// Routes libbpf's messages to `tracing` instead of raw stderr.
fn route_libbpf_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    fn log(level: libbpf_rs::PrintLevel, msg: String) {
        let msg = msg.trim_end();
        match level {
            libbpf_rs::PrintLevel::Warn => tracing::warn!(target: "libbpf", "{msg}"),
            libbpf_rs::PrintLevel::Info => tracing::info!(target: "libbpf", "{msg}"),
            libbpf_rs::PrintLevel::Debug => tracing::debug!(target: "libbpf", "{msg}"),
        }
    }
    ONCE.call_once(|| {
        libbpf_rs::set_print(Some((libbpf_rs::PrintLevel::Info, log)));
    });
}

fn bpf_error(ifname: &str, what: &'static str, e: libbpf_rs::Error) -> CaptureError {
    let err = match e.kind() {
        libbpf_rs::ErrorKind::PermissionDenied => io::Error::from_raw_os_error(libc::EPERM),
        _ => io::Error::other(format!("{e:#}")),
    };
    netdev::os_error(ifname, None, what, err)
}

/// A stamp magic no frame can be made to start with: random, never 0.
fn random_magic() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState's keys come from the OS's random source.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id().into());
    h.finish() | 1
}

impl XdpProgram {
    /// Loads the program and its maps into the kernel (not attached yet).
    /// With `stamps`, it writes the time of each TCP handshake frame in
    /// front of it (see [`XdpProgram::stamps`]).
    pub fn load(ifname: &str, promiscuous: bool, stamps: bool) -> Result<Self, CaptureError> {
        let ifindex = netdev::ifindex(ifname)?;
        route_libbpf_logs();
        let mut object = MaybeUninit::uninit();
        let mut open = XdpacctSkelBuilder::default()
            .open(&mut object)
            .map_err(|e| bpf_error(ifname, "opening the XDP program", e))?;
        let stamps = stamps.then(random_magic);
        if let Some(rodata) = open.maps.rodata_data.as_deref_mut() {
            rodata.stamp_magic = stamps.unwrap_or(0);
        }
        let skel = open
            .load()
            .map_err(|e| bpf_error(ifname, "loading the XDP program", e))?;
        let xsks = MapHandle::try_from(&skel.maps.xsks)
            .map_err(|e| bpf_error(ifname, "opening the XSKMAP", e))?;
        let counters = MapHandle::try_from(&skel.maps.counters)
            .map_err(|e| bpf_error(ifname, "opening the counter map", e))?;
        let prog = skel
            .progs
            .xdpacct_rx
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| netdev::os_error(ifname, None, "duplicating the program fd", e))?;
        // The skeleton (and its object) is dropped here; the kernel objects
        // live on through the descriptors kept above.
        drop(skel);
        let _promiscuous = if promiscuous {
            Some(Promiscuous::enable(ifname, ifindex)?)
        } else {
            None
        };
        Ok(XdpProgram {
            ifindex,
            prog,
            maps: Arc::new(ProgramMaps {
                ifname: ifname.to_owned(),
                xsks,
                counters,
            }),
            link: OnceLock::new(),
            _promiscuous,
            stamps,
        })
    }

    /// The magic that starts a `struct frame_stamp` (16 bytes: magic,
    /// CLOCK_MONOTONIC ns) in front of a TCP handshake frame; `None` when
    /// the program puts none.
    pub fn stamps(&self) -> Option<u64> {
        self.stamps
    }

    /// Attaches the program to the interface through a bpf_link.
    pub fn attach(&self, mode: XdpMode) -> Result<(), CaptureError> {
        if self.link.get().is_some() {
            return Ok(());
        }
        let flags = match mode {
            XdpMode::Auto => 0,
            XdpMode::Native => libbpf_sys::XDP_FLAGS_DRV_MODE,
            XdpMode::Generic => libbpf_sys::XDP_FLAGS_SKB_MODE,
        };
        let opts = libbpf_sys::bpf_link_create_opts {
            sz: std::mem::size_of::<libbpf_sys::bpf_link_create_opts>() as _,
            flags,
            ..Default::default()
        };
        // SAFETY: `prog` is a live BPF program fd, `opts` is a fully
        // initialised options struct whose `sz` is its own size; libbpf reads
        // it during the call only.
        let fd = unsafe {
            libbpf_sys::bpf_link_create(
                self.prog.as_raw_fd(),
                self.ifindex as i32,
                libbpf_sys::BPF_XDP,
                &opts,
            )
        };
        if fd < 0 {
            let err = io::Error::from_raw_os_error(-fd);
            return Err(match -fd {
                libc::EBUSY | libc::EEXIST => CaptureError::XdpBusy { ifname: self.maps.ifname.clone(), source: err },
                libc::EOPNOTSUPP if mode == XdpMode::Native => CaptureError::Interface {
                    ifname: self.maps.ifname.clone(),
                    msg: "the driver has no native XDP support; set capture.xdp_mode to \"generic\" or \"auto\"".into(),
                },
                _ => netdev::os_error(&self.maps.ifname, None, "attaching the XDP program", err),
            });
        }
        // SAFETY: a non-negative return is a new link fd that we alone own.
        let _ = self.link.set(unsafe { OwnedFd::from_raw_fd(fd) });
        Ok(())
    }

    /// Interface name.
    pub fn ifname(&self) -> &str {
        &self.maps.ifname
    }

    /// Interface index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The program's maps, for stats readers.
    pub fn maps(&self) -> &Arc<ProgramMaps> {
        &self.maps
    }
}

impl ProgramMaps {
    /// Points rx queue `queue` at the AF_XDP socket `fd`.
    pub fn register(&self, queue: u32, fd: i32) -> Result<(), CaptureError> {
        self.xsks
            .update(
                &queue.to_ne_bytes(),
                &(fd as u32).to_ne_bytes(),
                MapFlags::ANY,
            )
            .map_err(|e| CaptureError::Queue {
                ifname: self.ifname.clone(),
                queue,
                what: "registering the socket in the XSKMAP",
                source: io::Error::other(format!("{e:#}")),
            })
    }

    /// Removes queue `queue`'s socket; its frames then pass to the stack and
    /// count as `no_socket` drops.
    pub fn unregister(&self, queue: u32) {
        let _ = self.xsks.delete(&queue.to_ne_bytes());
    }

    /// The program's counters for `queue`, summed over CPUs.
    pub fn counters(&self, queue: u32) -> io::Result<ProgramCounters> {
        let slot = queue.min(MAX_QUEUES - 1);
        let per_cpu = self
            .counters
            .lookup_percpu(&slot.to_ne_bytes(), MapFlags::ANY)
            .map_err(|e| io::Error::other(format!("{e:#}")))?
            .unwrap_or_default();
        let mut sum = ProgramCounters::default();
        for value in per_cpu {
            // Field offsets of `struct queue_counters` (bpf/xdpacct.h) as
            // the skeleton generates it from the object's BTF.
            let field = |off: usize| {
                value
                    .get(off..off + 8)
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_ne_bytes)
                    .unwrap_or(0)
            };
            sum.frames += field(offset_of!(queue_counters, frames));
            sum.bytes += field(offset_of!(queue_counters, bytes));
            sum.redirect_failed += field(offset_of!(queue_counters, redirect_failed));
        }
        Ok(sum)
    }
}

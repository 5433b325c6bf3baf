//! xdpacct-trafficgen: an exact-count traffic generator for the benches.
//!
//! `send` has two backends (`--backend`). `xdp-live` transmits frames with
//! BPF_PROG_RUN and BPF_F_TEST_XDP_LIVE_FRAMES: the kernel runs
//! `trafficgen_tx` (bench/trafficgen/bpf/trafficgen.bpf.c) once per frame and
//! its XDP_TX turns into a redirect to the interface in ctx_in
//! `ingress_ifindex`. The program varies the IPv4 addresses per frame (and
//! the size, in IMIX mode). `afpacket` (src/packet.rs) builds the same frames
//! in user space and sends them with sendmmsg on an AF_PACKET socket that
//! bypasses the qdisc, for kernels that refuse live frames; `auto` (the
//! default) probes live frames once and falls back to it. Either way
//! `--count N` is split over `--threads`, each pinned to its core, and
//! `--pps` paces each thread against a deadline clock.
//!
//! Exactness: on veth, frames the peer's ring cannot take are dropped by the
//! kernel and show in the sender's `tx_dropped`; frames the peer processed
//! show in the sender's `tx_packets`/`tx_bytes`. `send` waits for these
//! counters to settle, resends the dropped number (unless `--no-resend`),
//! and reports delivered == count or fails.
//!
//! `pass` attaches a pass-through XDP program in native mode through a
//! bpf_link (the kernel removes it when this process dies) and holds it, so
//! veth live frames reach receivers that read from the stack (AF_PACKET).
//!
//! Holds unsafe code (raw BPF and socket syscalls); allocates only at the
//! start of a send round.
#![deny(clippy::undocumented_unsafe_blocks)]

use std::fs;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::MapCore;

#[allow(
    clippy::all,
    clippy::undocumented_unsafe_blocks,
    missing_docs,
    unused_qualifications,
    non_camel_case_types,
    dead_code
)]
mod skel {
    include!(concat!(env!("OUT_DIR"), "/trafficgen.skel.rs"));
}
use skel::TrafficgenSkelBuilder;

mod packet;

#[derive(Parser)]
#[command(
    name = "xdpacct-trafficgen",
    about = "Exact-count traffic generator: XDP live frames or AF_PACKET (bench only)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Send exactly --count frames out of --iface.
    Send(SendArgs),
    /// Hold a native-mode XDP_PASS program on --iface until killed or --seconds pass.
    Pass {
        #[arg(short, long)]
        iface: String,
        /// Detach after this many seconds. Defaults to 3600.
        #[arg(long, default_value_t = 3600)]
        seconds: u64,
        /// Attach XDP_DROP instead: frames still count as received on the
        /// veth (rx_packets); measures the generator without a receiver.
        #[arg(long)]
        drop: bool,
    },
}

#[derive(clap::Args)]
struct SendArgs {
    /// Interface the frames leave through (the sending veth end).
    #[arg(short, long)]
    iface: String,
    /// Exact number of frames to deliver.
    #[arg(short, long)]
    count: u64,
    /// Total rate limit in frames per second (0: as fast as possible).
    #[arg(long, default_value_t = 0)]
    pps: u64,
    /// Sending threads, pinned to cores 0, 1, ...
    #[arg(short, long, default_value_t = 1)]
    threads: usize,
    /// Frame length without FCS for the synthetic UDP frame (60 = 64 on the wire with FCS).
    #[arg(long, default_value_t = 60)]
    size: usize,
    /// IMIX 7:4:1 of 60/590/1514-byte frames (64/594/1518 with FCS), resized per frame.
    #[arg(long, conflicts_with = "pcap")]
    imix: bool,
    /// Use the first frame(s) of this pcap as templates instead of a synthetic frame.
    #[arg(long)]
    pcap: Option<PathBuf>,
    /// How many leading frames of --pcap to use (round robin per batch).
    #[arg(long, default_value_t = 1)]
    pcap_frames: usize,
    /// Rewrite this many low bits of the IPv4 source (0..=16).
    #[arg(long, default_value_t = 8)]
    src_bits: u32,
    /// Rewrite this many low bits of the IPv4 destination (0..=16).
    #[arg(long, default_value_t = 8)]
    dst_bits: u32,
    /// Cores the sender threads run on (thread i on cores[i % len]). Defaults to 0, 1, ...
    #[arg(long, value_delimiter = ',')]
    cores: Vec<usize>,
    /// Kernel batch size for live frames, frames per sendmmsg for afpacket (1..=256).
    #[arg(long, default_value_t = 256)]
    batch: u32,
    /// Runs per BPF_PROG_RUN call (0: automatic). Each call costs ~20 ms of set-up here.
    #[arg(long, default_value_t = 0)]
    chunk: u64,
    /// Paced: how many milliseconds behind schedule a sender may burst to catch
    /// up after it was preempted (a busy machine preempts for milliseconds).
    #[arg(long, default_value_t = 20)]
    catchup_ms: u64,
    /// Do not resend frames the kernel dropped at transmit.
    #[arg(long)]
    no_resend: bool,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// How frames are sent: BPF_PROG_RUN live frames, AF_PACKET sendmmsg
    /// with the qdisc bypassed, or auto (live frames if the kernel allows them).
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    backend: Backend,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Backend {
    Auto,
    XdpLive,
    Afpacket,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::XdpLive => "xdp-live",
            Backend::Afpacket => "afpacket",
        }
    }
}

// Layouts shared with bpf/trafficgen.bpf.c, as the skeleton generates them
// from the object's BTF (never hand copies).
/// The kernel's `struct xdp_md`, passed as ctx_in.
type XdpMd = skel::types::xdp_md;
/// `struct gen_config`: the generator's settings (map `gen_cfg`).
type GenConfig = skel::types::gen_config;
/// Per-CPU `struct gen_stats` (map `gen_stats`), read and written raw.
type GenStats = skel::types::gen_stats;

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Send(a) => send(a),
        Cmd::Pass {
            iface,
            seconds,
            drop,
        } => pass(&iface, seconds, drop),
    }
}

fn ifindex(name: &str) -> Result<u32> {
    let c = std::ffi::CString::new(name).context("interface name")?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        bail!(
            "no interface '{name}' in this network namespace: {}",
            io::Error::last_os_error()
        );
    }
    Ok(idx)
}

fn load() -> Result<skel::TrafficgenSkel<'static>> {
    // The open object must outlive the skeleton; a bench tool loads once, so
    // it simply lives as long as the process.
    let obj: &'static mut MaybeUninit<libbpf_rs::OpenObject> =
        Box::leak(Box::new(MaybeUninit::uninit()));
    let open = TrafficgenSkelBuilder::default()
        .open(obj)
        .context("opening bpf/trafficgen.bpf.c")?;
    open.load().context("loading the trafficgen BPF object")
}

fn pass(iface: &str, seconds: u64, drop: bool) -> Result<()> {
    let idx = ifindex(iface)?;
    let skel = load()?;
    let prog = if drop {
        skel.progs.xdp_drop.as_fd()
    } else {
        skel.progs.xdp_pass.as_fd()
    };
    let what = if drop { "XDP_DROP" } else { "XDP_PASS" };
    let opts = libbpf_sys::bpf_link_create_opts {
        sz: std::mem::size_of::<libbpf_sys::bpf_link_create_opts>() as _,
        flags: libbpf_sys::XDP_FLAGS_DRV_MODE,
        ..Default::default()
    };
    // SAFETY: a live program fd and a fully initialised opts struct read during the call only.
    let fd = unsafe {
        libbpf_sys::bpf_link_create(prog.as_raw_fd(), idx as i32, libbpf_sys::BPF_XDP, &opts)
    };
    if fd < 0 {
        bail!(
            "attaching {what} to {iface} in native mode: {}",
            io::Error::from_raw_os_error(-fd)
        );
    }
    // SAFETY: a non-negative return is a new link fd that we alone own.
    let _link = unsafe { OwnedFd::from_raw_fd(fd) };
    eprintln!(
        "trafficgen: {what} attached to {iface} (native, bpf_link); holding for up to {seconds} s"
    );
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [libc::SIGTERM, libc::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    let end = Instant::now() + Duration::from_secs(seconds);
    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
        thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

pub(crate) fn synthetic_frame(size: usize) -> Vec<u8> {
    let size = size.max(42);
    let mut f = vec![0u8; size];
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let l3 = (size - 14) as u16;
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&l3.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[10, 1, 0, 0]);
    ip[16..20].copy_from_slice(&[10, 2, 0, 0]);
    let udp = &mut f[34..42];
    udp[0..2].copy_from_slice(&40000u16.to_be_bytes());
    udp[2..4].copy_from_slice(&9u16.to_be_bytes());
    udp[4..6].copy_from_slice(&(l3 - 20).to_be_bytes());
    // The BPF program fixes the IPv4 checksum on every run; UDP checksum 0.
    f
}

fn pcap_frames(path: &PathBuf, n: usize) -> Result<Vec<Vec<u8>>> {
    let file = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut r = pcap_file::pcap::PcapReader::new(file)
        .with_context(|| format!("{} is not a pcap file", path.display()))?;
    let mut out = Vec::new();
    while out.len() < n.max(1) {
        match r.next_packet() {
            Some(p) => out.push(
                p.with_context(|| format!("reading {}", path.display()))?
                    .data
                    .into_owned(),
            ),
            None => break,
        }
    }
    if out.is_empty() {
        bail!("{} holds no frames", path.display());
    }
    Ok(out)
}

fn mask(bits: u32) -> u32 {
    let bits = bits.min(16);
    // Network byte order mask of the low `bits` bits.
    (((1u64 << bits) - 1) as u32).to_be()
}

#[derive(Clone, Copy, Default)]
struct DevStats {
    tx_packets: u64,
    tx_bytes: u64,
    tx_dropped: u64,
}

fn dev_stats(iface: &str) -> Result<DevStats> {
    let read = |f: &str| -> Result<u64> {
        let p = format!("/sys/class/net/{iface}/statistics/{f}");
        Ok(fs::read_to_string(&p)
            .with_context(|| format!("reading {p}"))?
            .trim()
            .parse()?)
    };
    Ok(DevStats {
        tx_packets: read("tx_packets")?,
        tx_bytes: read("tx_bytes")?,
        tx_dropped: read("tx_dropped")?,
    })
}

/// One BPF_PROG_RUN call: `repeat` live frames of `frame`.
fn run_batch(prog: RawFd, frame: &[u8], ctx: &XdpMd, repeat: u32, batch: u32) -> io::Result<()> {
    // The kernel wants data_end == the frame length and data == data_meta == 0.
    let ctx = XdpMd {
        data_end: frame.len() as u32,
        ..*ctx
    };
    let mut opts = libbpf_sys::bpf_test_run_opts {
        sz: std::mem::size_of::<libbpf_sys::bpf_test_run_opts>() as _,
        data_in: frame.as_ptr().cast(),
        data_size_in: frame.len() as u32,
        ctx_in: (&ctx as *const XdpMd).cast(),
        ctx_size_in: std::mem::size_of::<XdpMd>() as u32,
        repeat: repeat as i32,
        flags: libbpf_sys::BPF_F_TEST_XDP_LIVE_FRAMES,
        batch_size: batch,
        ..Default::default()
    };
    // SAFETY: `prog` is a live program fd; data_in and ctx_in point at live
    // buffers of the sizes given, read by the kernel during the call only.
    let rc = unsafe { libbpf_sys::bpf_prog_test_run_opts(prog, &mut opts) };
    if rc < 0 {
        return Err(io::Error::from_raw_os_error(-rc));
    }
    Ok(())
}

struct StatsMap {
    fd: RawFd,
    ncpus: usize,
}

impl StatsMap {
    fn read(&self) -> io::Result<Vec<GenStats>> {
        let mut v = vec![GenStats::default(); self.ncpus];
        let key = 0u32;
        // SAFETY: a per-CPU array lookup writes one 40-byte (8-aligned) value
        // per possible CPU; `v` holds exactly `ncpus` of them.
        let rc = unsafe {
            libbpf_sys::bpf_map_lookup_elem(
                self.fd,
                (&key as *const u32).cast(),
                v.as_mut_ptr().cast(),
            )
        };
        if rc < 0 {
            return Err(io::Error::from_raw_os_error(-rc));
        }
        Ok(v)
    }

    fn write(&self, v: &[GenStats]) -> io::Result<()> {
        assert_eq!(v.len(), self.ncpus);
        let key = 0u32;
        // SAFETY: as in `read`, the kernel reads `ncpus` values from `v`.
        let rc = unsafe {
            libbpf_sys::bpf_map_update_elem(
                self.fd,
                (&key as *const u32).cast(),
                v.as_ptr().cast(),
                0,
            )
        };
        if rc < 0 {
            return Err(io::Error::from_raw_os_error(-rc));
        }
        Ok(())
    }
}

/// Sends `counts[i]` frames from core `cores[i % len]`: the program's per-CPU
/// quota is set first, then each thread repeats BPF_PROG_RUN until its CPU's
/// quota is used up. Returns the wall time of the slowest thread.
#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
fn send_round(
    prog: RawFd,
    stats: &Arc<StatsMap>,
    frames: &Arc<Vec<Vec<u8>>>,
    ctx: XdpMd,
    counts: &[u64],
    paced: bool,
    a: &SendArgs,
    cores: &[usize],
) -> Result<Duration> {
    let mut st = stats.read().context("reading gen_stats")?;
    let mut thread_cpu = Vec::new();
    for (i, &n) in counts.iter().enumerate() {
        let cpu = cores[i % cores.len()];
        if cpu >= st.len() {
            bail!("core {cpu} does not exist");
        }
        st[cpu].quota += n;
        st[cpu].next_ns = 0;
        thread_cpu.push(cpu);
    }
    stats.write(&st).context("writing gen_stats quotas")?;
    let start = Instant::now();
    let deadline = start + Duration::from_secs(a.timeout);
    let mut handles = Vec::new();
    for (i, &n) in counts.iter().enumerate() {
        if n == 0 {
            continue;
        }
        let frames = Arc::clone(frames);
        let stats = Arc::clone(stats);
        let cpu = thread_cpu[i];
        let batch = a.batch;
        let chunk = a.chunk;
        handles.push(thread::spawn(move || -> io::Result<()> {
            if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
                return Err(io::Error::other(format!(
                    "cannot pin a sender thread to core {cpu}"
                )));
            }
            let mut k = 0usize;
            loop {
                let left = stats.read()?[cpu].quota;
                if left == 0 {
                    return Ok(());
                }
                if Instant::now() > deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("timed out with {left} frames left on core {cpu}"),
                    ));
                }
                // Unpaced, each run sends (the program drops runs past the
                // quota). Paced, most runs are idle drops: give the call room.
                let repeat = if chunk > 0 {
                    chunk
                } else if paced {
                    left.saturating_mul(256).clamp(1 << 16, 1 << 23)
                } else {
                    left.min(1 << 24)
                };
                let frame = &frames[k % frames.len()];
                k += 1;
                run_batch(
                    prog,
                    frame,
                    &ctx,
                    repeat.min(u32::MAX as u64 / 2) as u32,
                    batch,
                )?;
            }
        }));
    }
    for h in handles {
        h.join()
            .map_err(|_| anyhow::anyhow!("a sender thread panicked"))?
            .context("BPF_PROG_RUN (live frames)")?;
    }
    Ok(start.elapsed())
}

/// Sends `counts[i]` frames from core `cores[i % len]` through AF_PACKET
/// sockets, frame numbers from `seq0` on. Returns the wall time of the
/// slowest thread and what the kernel took.
fn send_round_packet(
    ifindex: u32,
    shape: &Arc<packet::Shape>,
    counts: &[u64],
    seq0: u64,
    a: &SendArgs,
    cores: &[usize],
) -> Result<(Duration, packet::Sent)> {
    let ns_per_frame = if a.pps > 0 {
        (1e9 * a.threads.max(1) as f64 / a.pps as f64).max(1.0) as u64
    } else {
        0
    };
    let start = Instant::now();
    let deadline = start + Duration::from_secs(a.timeout);
    let catchup = Duration::from_millis(a.catchup_ms);
    let mut handles = Vec::new();
    let mut offset = seq0;
    for (i, &n) in counts.iter().enumerate() {
        let first = offset;
        offset += n;
        if n == 0 {
            continue;
        }
        let cpu = cores[i % cores.len()];
        let shape = Arc::clone(shape);
        let batch = a.batch as usize;
        handles.push(thread::spawn(move || -> io::Result<packet::Sent> {
            if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
                return Err(io::Error::other(format!(
                    "cannot pin a sender thread to core {cpu}"
                )));
            }
            let sock = packet::PacketSocket::open(ifindex)?;
            packet::send(
                &sock,
                &shape,
                n,
                first,
                i as u32,
                batch,
                ns_per_frame,
                catchup,
                deadline,
            )
        }));
    }
    let mut total = packet::Sent::default();
    for h in handles {
        let s = h
            .join()
            .map_err(|_| anyhow::anyhow!("a sender thread panicked"))?
            .context("AF_PACKET sendmmsg")?;
        total.frames += s.frames;
        total.bytes += s.bytes;
        total.busy += s.busy;
    }
    Ok((start.elapsed(), total))
}

fn split(n: u64, t: usize) -> Vec<u64> {
    let t = t.max(1) as u64;
    (0..t).map(|i| n / t + u64::from(i < n % t)).collect()
}

/// Waits until the peer has accounted for `expect` frames (processed + dropped), up to 3 s.
fn settle(iface: &str, base: DevStats, expect: u64) -> Result<DevStats> {
    let end = Instant::now() + Duration::from_secs(3);
    let mut last = dev_stats(iface)?;
    loop {
        let done = (last.tx_packets - base.tx_packets) + (last.tx_dropped - base.tx_dropped);
        if done >= expect || Instant::now() > end {
            return Ok(last);
        }
        thread::sleep(Duration::from_millis(10));
        last = dev_stats(iface)?;
    }
}

/// The live-frame backend, loaded and configured.
struct Live {
    /// Keeps the program and maps loaded.
    _skel: skel::TrafficgenSkel<'static>,
    prog_fd: RawFd,
    stats: Arc<StatsMap>,
    ctx: XdpMd,
    frames: Arc<Vec<Vec<u8>>>,
}

/// The backend `send` uses: live frames, or AF_PACKET with its frame shape.
enum Sender {
    Live(Box<Live>),
    Packet(Arc<packet::Shape>),
}

fn live_setup(a: &SendArgs, idx: u32, frames: &[Vec<u8>]) -> Result<Live> {
    let skel = load()?;
    let per_thread_pps = a.pps as f64 / a.threads.max(1) as f64;
    let ns_per_frame = if a.pps > 0 {
        (1e9 / per_thread_pps).max(1.0) as u64
    } else {
        0
    };
    let cfg = GenConfig {
        src_mask: mask(a.src_bits),
        dst_mask: mask(a.dst_bits),
        imix: u32::from(a.imix),
        rewrite: 1,
        ns_per_frame,
        catchup_ns: a.catchup_ms * 1_000_000,
    };
    // SAFETY: GenConfig is the skeleton's repr(C) struct of integers with no
    // padding (4 x u32 then 2 x u64); viewing it as bytes is sound.
    let cfg_bytes = unsafe {
        std::slice::from_raw_parts(
            (&cfg as *const GenConfig).cast::<u8>(),
            std::mem::size_of::<GenConfig>(),
        )
    };
    skel.maps
        .gen_cfg
        .update(&0u32.to_ne_bytes(), cfg_bytes, libbpf_rs::MapFlags::ANY)
        .context("writing gen_cfg")?;
    let prog_fd = skel.progs.trafficgen_tx.as_fd().as_raw_fd();
    let stats = Arc::new(StatsMap {
        fd: skel.maps.gen_stats.as_fd().as_raw_fd(),
        ncpus: libbpf_rs::num_possible_cpus().context("counting possible CPUs")?,
    });
    let ctx = XdpMd {
        ingress_ifindex: idx,
        rx_queue_index: 0,
        ..Default::default()
    };
    Ok(Live {
        _skel: skel,
        prog_fd,
        stats,
        ctx,
        frames: Arc::new(frames.to_vec()),
    })
}

/// Whether the kernel runs live frames: one run with no quota set, which
/// the program drops (nothing leaves).
fn live_allowed(live: &Live, batch: u32) -> Result<bool> {
    match run_batch(live.prog_fd, &live.frames[0], &live.ctx, 1, batch) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => Ok(false),
        Err(e) => Err(e).context("probing BPF_PROG_RUN with live frames"),
    }
}

fn send(a: SendArgs) -> Result<()> {
    if a.count == 0 {
        bail!("--count must be at least 1");
    }
    if !(1..=256).contains(&a.batch) {
        bail!("--batch must be 1..=256");
    }
    let idx = ifindex(&a.iface)?;
    let frames: Vec<Vec<u8>> = match &a.pcap {
        Some(p) => pcap_frames(p, a.pcap_frames)?,
        None if a.imix => vec![synthetic_frame(1514)],
        None => vec![synthetic_frame(a.size)],
    };
    if let Some(f) = frames.iter().find(|f| f.len() > packet::MAX_FRAME) {
        bail!(
            "a template frame has {} bytes; at most {} are supported",
            f.len(),
            packet::MAX_FRAME
        );
    }
    let shape = || {
        let low = |bits: u32| ((1u64 << bits.min(16)) - 1) as u32;
        Sender::Packet(Arc::new(packet::Shape {
            templates: frames.clone(),
            src_mask: low(a.src_bits),
            dst_mask: low(a.dst_bits),
            imix: a.imix,
        }))
    };
    let sender = match a.backend {
        Backend::Afpacket => shape(),
        Backend::XdpLive => Sender::Live(Box::new(live_setup(&a, idx, &frames)?)),
        Backend::Auto => {
            let live = live_setup(&a, idx, &frames)?;
            if live_allowed(&live, a.batch)? {
                Sender::Live(Box::new(live))
            } else {
                eprintln!("trafficgen: the kernel refuses BPF_PROG_RUN live frames (EPERM): sending with AF_PACKET");
                shape()
            }
        }
    };
    let backend = match sender {
        Sender::Live(_) => Backend::XdpLive,
        Sender::Packet(_) => Backend::Afpacket,
    };
    let ncpus = libbpf_rs::num_possible_cpus().context("counting possible CPUs")?;
    let threads = a.threads.max(1);
    let cores: Vec<usize> = if a.cores.is_empty() {
        (0..threads).map(|i| i % ncpus.max(1)).collect()
    } else {
        a.cores.clone()
    };
    if let Some(c) = cores.iter().find(|&&c| c >= ncpus) {
        bail!("core {c} does not exist");
    }
    let paced = a.pps > 0;
    // What the kernel took from the AF_PACKET senders over all rounds.
    let mut taken = packet::Sent::default();
    let mut round = |counts: &[u64], seq0: u64| -> Result<Duration> {
        match &sender {
            Sender::Live(l) => send_round(
                l.prog_fd, &l.stats, &l.frames, l.ctx, counts, paced, &a, &cores,
            ),
            Sender::Packet(shape) => {
                let (t, s) = send_round_packet(idx, shape, counts, seq0, &a, &cores)?;
                taken.frames += s.frames;
                taken.bytes += s.bytes;
                taken.busy += s.busy;
                Ok(t)
            }
        }
    };

    let base = dev_stats(&a.iface)?;
    let first = round(&split(a.count, threads), 0)?;
    // Sending time of all rounds (settle waits excluded): the rate reported
    // is delivered frames over this, not attempts over the first round.
    let mut elapsed = first;
    let mut attempted = a.count;
    let mut now = settle(&a.iface, base, attempted)?;
    let mut rounds = 0;
    while !a.no_resend && rounds < 50 {
        let delivered = now.tx_packets - base.tx_packets;
        if delivered >= a.count {
            break;
        }
        let dropped = now.tx_dropped - base.tx_dropped;
        let missing = a.count - delivered;
        if dropped == 0 && delivered + dropped < attempted {
            break; // frames vanished without a counter: nothing safe to resend.
        }
        // Resend only what the kernel says it dropped and has not been made up for.
        let owed = missing.min(attempted - delivered);
        if owed == 0 {
            break;
        }
        rounds += 1;
        // Resend from every sender core in the same shares, so the frames
        // land on the same veth rx queues as the first round's.
        elapsed += round(&split(owed, threads), attempted)?;
        attempted += owed;
        now = settle(&a.iface, base, attempted)?;
    }
    let delivered = now.tx_packets - base.tx_packets;
    let dropped = now.tx_dropped - base.tx_dropped;
    let bytes = now.tx_bytes - base.tx_bytes;
    let mpps = delivered as f64 / elapsed.as_secs_f64() / 1e6;
    let first_mpps = a.count as f64 / first.as_secs_f64() / 1e6;
    let exact = delivered == a.count;
    // Sender-side totals: live frames, what the program handed to XDP_TX
    // (all CPUs) and its idle runs; AF_PACKET, what the kernel took.
    let (mut prog_frames, mut prog_bytes, mut idle) = (0u64, 0u64, 0u64);
    match &sender {
        Sender::Live(l) => {
            for v in l.stats.read().context("reading gen_stats")? {
                prog_frames += v.frames;
                prog_bytes += v.bytes;
                idle += v.idle;
            }
        }
        Sender::Packet(_) => {
            prog_frames = taken.frames;
            prog_bytes = taken.bytes;
        }
    }
    if a.json {
        println!(
            "{{\"backend\":\"{}\",\"count\":{},\"attempted\":{},\"delivered\":{},\"xmit_dropped\":{},\"resend_rounds\":{},\"delivered_bytes\":{},\"prog_frames\":{},\"prog_bytes\":{},\"idle_runs\":{},\"busy_retries\":{},\"elapsed_s\":{:.6},\"mpps\":{:.4},\"first_round_s\":{:.6},\"first_round_mpps\":{:.4},\"threads\":{},\"pps_target\":{},\"exact\":{}}}",
            backend.name(), a.count, attempted, delivered, dropped, rounds, bytes, prog_frames, prog_bytes, idle, taken.busy, elapsed.as_secs_f64(), mpps, first.as_secs_f64(), first_mpps, threads, a.pps, exact
        );
    } else {
        println!(
            "sent {} frames with {} ({} attempted, {} dropped at xmit and resent in {} rounds) in {:.3} s of sending = {:.3} Mpps delivered with {} thread(s); peer processed {} frames / {} bytes: {}",
            a.count, backend.name(), attempted, dropped, rounds, elapsed.as_secs_f64(), mpps, threads, delivered, bytes,
            if exact { "exact" } else { "NOT exact" }
        );
    }
    drop(sender);
    if !exact {
        let hint = match backend {
            Backend::XdpLive => {
                " (does the receiving end have a native XDP program? see `trafficgen pass`)"
            }
            _ => "",
        };
        bail!("{delivered} of {} frames reached the peer{hint}", a.count);
    }
    Ok(())
}

//! pcap / pcapng replay, read in place from a memory-mapped file.
//!
//! One reader thread walks each file's records (`pcap`, `pcapng`) and hands
//! the workers batches of (offset, captured length, wire length, timestamp)
//! into the file's shared mapping; a worker lends each frame's bytes straight
//! from the mapping to its callback. With several workers, frames are spread
//! by a symmetric flow hash (like RSS); with one, nothing is hashed.
//!
//! Several files are either read one after the other (one interface), or
//! merged (`replay_merged`: one interface per file, each with its own
//! workers): the reader walks all files at once and always hands out the
//! earliest next frame, so the input is in timestamp order across the files
//! and a billing boundary is passed by every file at the same point. One
//! compare per file per frame.
//!
//! A file is read to its end or to its first damaged record or block; the
//! stats then keep the file, the offset, the reason and the bytes left
//! unread, and the next file (or the other merged files) is read.
//! Truncated captures (a snap length) are not damaged: each frame counts
//! its original length.
//!
//! Allocates at start (a fixed pool of batch buffers per worker), per file
//! (the mapping's `Arc`, the damage entry) and per pcapng interface; never
//! per frame or per batch. Never panics on any bytes. Unsafe: only `map`
//! (the one `mmap` call, with its assumption that capture files are not
//! modified while they are replayed).

#[allow(unsafe_code)] // listed in lib.rs
mod map;
pub mod pcap;
pub mod pcapng;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use memmap2::Mmap;

use super::{Capture, CaptureError, Frame};
use crate::wire::{parse_frame, FrameFacts, L3Addrs};
use pcap::{PcapHeaderError, PcapWalker};
use pcapng::{PcapNgHeaderError, PcapNgWalker};

/// Frames per batch handed to a worker.
const BATCH_FRAMES: usize = 1024;
/// Batches in flight per worker.
const BATCHES_PER_WORKER: usize = 8;
/// Bytes of the mapping made resident at a time, ahead of the walk.
const POPULATE_CHUNK: usize = 4 << 20;
/// The largest captured length a record may have (Wireshark's limit too);
/// a record claiming more is damage, not a frame.
pub const MAX_CAPLEN: u32 = 256 * 1024;

/// One packet record found by a walker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    /// Offset of the captured bytes in the file.
    pub offset: usize,
    /// Captured bytes (inside the file, at most `MAX_CAPLEN`).
    pub caplen: u32,
    /// Length on the wire, as the record says.
    pub orig_len: u32,
    /// Nanoseconds since the Unix epoch (0 when the record has no time).
    pub timestamp_ns: u64,
}

impl Record {
    /// The length counted: the original length, or the captured length of
    /// a record that (wrongly) says less.
    #[inline]
    pub fn wire_len(&self) -> u32 {
        self.orig_len.max(self.caplen)
    }
}

/// What a walker found next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Frame(Record),
    /// A packet of a non-Ethernet (or undeclared) pcapng interface.
    Skipped,
    /// The file ends cleanly here.
    End,
    /// Reading stops: the record or block at `offset` is damaged.
    Damaged {
        offset: u64,
        reason: DamageReason,
    },
}

/// Why a record or block cannot be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DamageReason {
    #[error("record header cut short: {left} bytes left")]
    RecordHeaderCut { left: u32 },
    #[error("record of {caplen} captured bytes cut short: {left} bytes left")]
    RecordDataCut { caplen: u32, left: u32 },
    #[error("record claims {caplen} captured bytes, more than the limit of 262144")]
    CaplenTooLarge { caplen: u32 },
    #[error("block header cut short: {left} bytes left")]
    BlockHeaderCut { left: u32 },
    #[error("block length {len} is below 12 or not a multiple of 4")]
    BlockLength { len: u32 },
    #[error("block of {len} bytes cut short: {left} bytes left")]
    BlockPastEnd { len: u32, left: u32 },
    #[error("block length {len} differs from its trailing copy {trailer}")]
    TrailerMismatch { len: u32, trailer: u32 },
    #[error("section header with an unknown byte-order magic")]
    ByteOrderMagic,
    #[error("block of type {kind:#x} and {len} bytes too short for its fields")]
    BlockTooShort { kind: u32, len: u32 },
    #[error("packet of {caplen} captured bytes in a block with room for {room}")]
    PacketPastBlock { caplen: u32, room: u32 },
}

/// Why a file cannot be replayed at all (nothing of it is read).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("not a pcap or pcapng file (shorter than 4 bytes)")]
    Short,
    #[error(transparent)]
    Pcap(#[from] PcapHeaderError),
    #[error(transparent)]
    PcapNg(#[from] PcapNgHeaderError),
    #[error(
        "link type {} is not Ethernet; only Ethernet captures can be replayed",
        link_name(*.0)
    )]
    NotEthernet(u32),
}

fn link_name(link: u32) -> String {
    match pcap_file::DataLink::from(link & 0xffff) {
        pcap_file::DataLink::Unknown(_) => format!("{link:#x}"),
        name => format!("{link:#x} ({name:?})"),
    }
}

/// Ethernet, also when the upper bits of the link type announce an FCS.
fn is_ethernet(link: u32) -> bool {
    link & 0xffff == 1
}

/// A walker over either format.
#[derive(Clone, Debug)]
pub enum Walker<'a> {
    Pcap(PcapWalker<'a>),
    PcapNg(PcapNgWalker<'a>),
}

impl<'a> Walker<'a> {
    /// Opens a whole capture file's bytes: pcap (Ethernet only) or pcapng.
    pub fn new(data: &'a [u8]) -> Result<Self, OpenError> {
        if data.len() < 4 {
            return Err(OpenError::Short);
        }
        if pcapng::is_pcapng(data) {
            return Ok(Walker::PcapNg(PcapNgWalker::new(data)?));
        }
        let w = PcapWalker::new(data)?;
        if !is_ethernet(w.linktype) {
            return Err(OpenError::NotEthernet(w.linktype));
        }
        Ok(Walker::Pcap(w))
    }

    /// The next packet, the end, or the damage point. After `End` or
    /// `Damaged` it keeps returning the same.
    #[inline]
    pub fn next_step(&mut self) -> Step {
        match self {
            Walker::Pcap(w) => w.next_step(),
            Walker::PcapNg(w) => w.next_step(),
        }
    }
}

/// The walkers' common step, so the reader's loop is compiled per format.
trait Records {
    fn step(&mut self) -> Step;
}

impl Records for PcapWalker<'_> {
    #[inline]
    fn step(&mut self) -> Step {
        self.next_step()
    }
}

impl Records for PcapNgWalker<'_> {
    #[inline]
    fn step(&mut self) -> Step {
        self.next_step()
    }
}

/// One frame of a batch: where it is in the mapping.
#[derive(Clone, Copy, Debug)]
struct Slot {
    offset: usize,
    caplen: u32,
    wire_len: u32,
    timestamp_ns: u64,
}

/// Frames of one batch, all in one file's mapping.
struct Batch {
    map: Option<Arc<Mmap>>,
    slots: Vec<Slot>,
    /// An empty batch sent through a worker's queue to learn that it has
    /// counted everything sent before (see [`ReplayReader::with_boundaries`]).
    marker: bool,
}

impl Batch {
    fn new() -> Self {
        Batch {
            map: None,
            slots: Vec::with_capacity(BATCH_FRAMES),
            marker: false,
        }
    }
    fn clear(&mut self) {
        self.map = None;
        self.slots.clear();
    }
}

/// The worker end: receives full batches, returns empty ones.
pub struct ReplayQueue {
    full: Receiver<Batch>,
    empty: Sender<Batch>,
    current: Option<(Batch, usize)>,
}

impl Capture for ReplayQueue {
    fn poll<F: FnMut(Frame<'_>)>(&mut self, max: usize, mut f: F) -> Result<usize, CaptureError> {
        if self.current.is_none() {
            match self.full.recv_timeout(Duration::from_millis(100)) {
                Ok(b) => self.current = Some((b, 0)),
                Err(RecvTimeoutError::Timeout) => return Ok(0),
                Err(RecvTimeoutError::Disconnected) => return Err(CaptureError::Closed),
            }
        }
        let Some((batch, pos)) = self.current.as_mut() else {
            return Ok(0);
        };
        let data: &[u8] = batch.map.as_deref().map_or(&[], |m| &m[..]);
        let end = (*pos + max).min(batch.slots.len());
        for s in &batch.slots[*pos..end] {
            // The reader took every slot from a walk of this mapping: always
            // inside it.
            let bytes = data
                .get(s.offset..s.offset + s.caplen as usize)
                .unwrap_or_default();
            f(Frame {
                data: bytes,
                wire_len: s.wire_len,
                timestamp_ns: s.timestamp_ns,
            });
        }
        let n = end - *pos;
        *pos = end;
        if *pos == batch.slots.len() {
            let (mut b, _) = self.current.take().expect("current batch present");
            b.clear();
            // The reader may be gone at end of input; the buffer is then just dropped.
            let _ = self.empty.send(b);
        }
        Ok(n)
    }
}

/// A file that could not be read to its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    pub path: PathBuf,
    /// Where the damaged record or block starts.
    pub offset: u64,
    pub reason: DamageReason,
    /// Bytes from `offset` to the end of the file, not read.
    pub unread: u64,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: damaged at byte {} ({}): {} bytes not read",
            self.path.display(),
            self.offset,
            self.reason,
            self.unread
        )
    }
}

/// Totals of a finished replay, for the summary line.
#[derive(Debug, Default, Clone)]
pub struct ReplayStats {
    pub frames: u64,
    pub bytes: u64,
    /// Frames skipped because their link type is not Ethernet.
    pub skipped: u64,
    /// Bytes of all files left unread after damage.
    pub unread_bytes: u64,
    /// Files that could not be read to their end, in order.
    pub damaged: Vec<Damage>,
}

/// What the reader walks.
enum Inputs {
    /// Files read in order, frames spread over all workers.
    InOrder(Vec<PathBuf>),
    /// Files merged by timestamp; file `i` feeds workers
    /// `i * workers .. (i + 1) * workers`.
    Merged { files: Vec<PathBuf>, workers: usize },
}

/// The reader end: owns the files and the per-worker channels.
pub struct ReplayReader {
    inputs: Inputs,
    to_workers: Vec<(Sender<Batch>, Receiver<Batch>)>,
    /// The batch being filled for each worker.
    pending: Vec<Option<Batch>>,
    /// Empty batches back from each worker, used before its channel's.
    spare: Vec<Vec<Batch>>,
    boundary: Option<Boundary>,
}

/// Called by the reader at the capture's interval boundaries with the time
/// (Unix ns) of the first frame at or past the boundary, once every frame
/// before it has been counted by the workers and none after it; and at the
/// end of input (`true`) with the last frame's time, once all are counted.
pub type BoundaryHook = Box<dyn FnMut(u64, bool) + Send>;

struct Boundary {
    interval_ns: u64,
    /// The next boundary; 0 before the first frame (which calls the hook).
    next_ns: u64,
    last_ns: u64,
    hook: BoundaryHook,
}

/// Creates the reader and one `ReplayQueue` per worker.
pub fn replay(files: Vec<PathBuf>, workers: usize) -> (ReplayReader, Vec<ReplayQueue>) {
    let mut to_workers = Vec::new();
    let mut queues = Vec::new();
    for _ in 0..workers.max(1) {
        let (full_tx, full_rx) = bounded(BATCHES_PER_WORKER);
        let (empty_tx, empty_rx) = bounded(BATCHES_PER_WORKER);
        for _ in 0..BATCHES_PER_WORKER {
            empty_tx.send(Batch::new()).expect("channel has room");
        }
        to_workers.push((full_tx, empty_rx));
        queues.push(ReplayQueue {
            full: full_rx,
            empty: empty_tx,
            current: None,
        });
    }
    let pending = (0..to_workers.len()).map(|_| None).collect();
    let spare = (0..to_workers.len())
        .map(|_| Vec::with_capacity(BATCHES_PER_WORKER))
        .collect();
    (
        ReplayReader {
            inputs: Inputs::InOrder(files),
            to_workers,
            pending,
            spare,
            boundary: None,
        },
        queues,
    )
}

/// Creates one reader over `files`, each replayed as its own interface
/// with `workers` queues (returned grouped by file, in order): the files
/// are walked together and frames handed out in timestamp order across
/// them (see the module comment).
pub fn replay_merged(files: Vec<PathBuf>, workers: usize) -> (ReplayReader, Vec<Vec<ReplayQueue>>) {
    let workers = workers.max(1);
    let (mut reader, queues) = replay(Vec::new(), files.len().max(1) * workers);
    let mut queues = queues.into_iter();
    let groups = (0..files.len())
        .map(|_| queues.by_ref().take(workers).collect())
        .collect();
    reader.inputs = Inputs::Merged { files, workers };
    (reader, groups)
}

/// Symmetric hash of a frame's addresses, so both directions of a flow land
/// on the same worker (as RSS with a symmetric key does).
fn flow_hash(data: &[u8], facts: &mut FrameFacts) -> u64 {
    let _ = parse_frame(data, facts);
    let (a, b) = match facts.addrs {
        L3Addrs::V4 { src, dst } => (
            u32::from_be_bytes(src) as u64,
            u32::from_be_bytes(dst) as u64,
        ),
        L3Addrs::V6 { src, dst } => (
            fold(u128::from_be_bytes(src)),
            fold(u128::from_be_bytes(dst)),
        ),
        L3Addrs::None => return 0,
    };
    let ports = (facts.src_port as u64) ^ (facts.dst_port as u64);
    let mut h = (a ^ b).wrapping_add(a.wrapping_mul(b) | 1) ^ (ports << 17) ^ facts.protocol as u64;
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

fn fold(v: u128) -> u64 {
    (v as u64) ^ ((v >> 64) as u64)
}

impl ReplayReader {
    /// Calls `hook` at every boundary of the `interval_ns` grid of the
    /// capture's timestamps (and at its first frame and its end) with the
    /// workers' counts exact up to that point: the reader stops, sends each
    /// worker a marker behind its frames and waits for the markers to come
    /// back (the workers count a batch before they take the next one).
    /// Costs a compare per frame and a round trip per boundary.
    pub fn with_boundaries(mut self, interval_ns: u64, hook: BoundaryHook) -> Self {
        self.boundary = Some(Boundary {
            interval_ns: interval_ns.max(1),
            next_ns: 0,
            last_ns: 0,
            hook,
        });
        self
    }

    /// Sends the pending batches, then a marker to each worker, and waits
    /// until every marker is back: all frames sent so far are counted.
    fn barrier(&mut self, path: &Path) -> Result<(), CaptureError> {
        self.flush(path)?;
        for (w, (full, empty)) in self.to_workers.iter().enumerate() {
            let mut m = match self.spare[w].pop() {
                Some(b) => b,
                None => empty.recv().map_err(|_| closed(path))?,
            };
            m.marker = true;
            full.send(m).map_err(|_| closed(path))?;
        }
        for (w, (_, empty)) in self.to_workers.iter().enumerate() {
            loop {
                // Channel send/recv pair as release/acquire: the worker's
                // counter stores before it returned the marker are visible.
                let mut b = empty.recv().map_err(|_| closed(path))?;
                let was_marker = std::mem::replace(&mut b.marker, false);
                self.spare[w].push(b);
                if was_marker {
                    break;
                }
            }
        }
        Ok(())
    }

    /// A frame at `ts` reached the next boundary: barrier, hook.
    #[cold]
    fn cross(&mut self, ts: u64, path: &Path) -> Result<(), CaptureError> {
        self.barrier(path)?;
        if let Some(b) = self.boundary.as_mut() {
            (b.hook)(ts, false);
            b.next_ns = (ts / b.interval_ns + 1).saturating_mul(b.interval_ns);
        }
        Ok(())
    }

    /// Sends every worker's pending batch.
    fn flush(&mut self, path: &Path) -> Result<(), CaptureError> {
        for (w, b) in self.pending.iter_mut().enumerate() {
            if let Some(b) = b.take() {
                self.to_workers[w].0.send(b).map_err(|_| closed(path))?;
            }
        }
        Ok(())
    }

    /// Reads every file (in order, or merged) and hands its frames to the
    /// workers; closes the queues at the end. `stop` ends it early. A file
    /// that cannot be opened or is not a capture is an error (merged: before
    /// any frame is sent); damage inside a file is not (it is in the stats,
    /// and the other files are read).
    pub fn run(mut self, stop: &AtomicBool) -> Result<ReplayStats, CaptureError> {
        let mut stats = ReplayStats::default();
        let mut facts = FrameFacts::default();
        match std::mem::replace(&mut self.inputs, Inputs::InOrder(Vec::new())) {
            Inputs::InOrder(files) => {
                for path in &files {
                    if stop.load(Relaxed) {
                        break;
                    }
                    let map = Arc::new(map::map_file(path)?);
                    let skipped = stats.skipped;
                    let walker = Walker::new(&map).map_err(|e| file_err(path, e))?;
                    let all = 0..self.to_workers.len();
                    let damage = match walker {
                        Walker::Pcap(w) => {
                            self.feed(w, path, &map, all, stop, &mut stats, &mut facts)?
                        }
                        Walker::PcapNg(w) => {
                            self.feed(w, path, &map, all, stop, &mut stats, &mut facts)?
                        }
                    };
                    // A batch holds frames of one mapping: send what is pending.
                    self.flush(path)?;
                    file_ended(path, &map, damage, stats.skipped - skipped, &mut stats);
                }
            }
            Inputs::Merged { files, workers } => {
                self.merge(&files, workers, stop, &mut stats, &mut facts)?;
                self.flush(Path::new("end of input"))?;
            }
        }
        if self.boundary.as_ref().is_some_and(|b| b.next_ns > 0) {
            self.barrier(Path::new("end of input"))?;
            if let Some(b) = self.boundary.as_mut() {
                (b.hook)(b.last_ns, true);
            }
        }
        Ok(stats)
    }

    /// Walks `files` together, always handing out the earliest next frame
    /// (ties: the first file's) to its file's workers.
    fn merge(
        &mut self,
        files: &[PathBuf],
        workers: usize,
        stop: &AtomicBool,
        stats: &mut ReplayStats,
        facts: &mut FrameFacts,
    ) -> Result<(), CaptureError> {
        let mut maps = Vec::with_capacity(files.len());
        for path in files {
            maps.push(Arc::new(map::map_file(path)?));
        }
        let mut walkers = Vec::with_capacity(files.len());
        for (path, map) in files.iter().zip(&maps) {
            walkers.push(Walker::new(map).map_err(|e| file_err(path, e))?);
        }
        let mut skipped = vec![0u64; files.len()];
        let mut populated = vec![0usize; files.len()];
        let mut heads: Vec<Option<Record>> = Vec::with_capacity(files.len());
        for i in 0..files.len() {
            let head = next_frame(&mut walkers[i], &mut skipped[i]);
            heads.push(head_or_end(head, &files[i], &maps[i], skipped[i], stats));
        }
        while !stop.load(Relaxed) {
            let mut pick: Option<(usize, u64)> = None;
            for (i, h) in heads.iter().enumerate() {
                match (h, pick) {
                    (Some(r), Some((_, t))) if r.timestamp_ns >= t => {}
                    (Some(r), _) => pick = Some((i, r.timestamp_ns)),
                    (None, _) => {}
                }
            }
            let Some((i, _)) = pick else {
                break;
            };
            let r = heads[i].take().expect("picked a head");
            let queues = i * workers..(i + 1) * workers;
            self.dispatch(
                r,
                &files[i],
                &maps[i],
                &mut populated[i],
                queues,
                stats,
                facts,
            )?;
            let head = next_frame(&mut walkers[i], &mut skipped[i]);
            heads[i] = head_or_end(head, &files[i], &maps[i], skipped[i], stats);
        }
        stats.skipped += skipped.iter().sum::<u64>();
        Ok(())
    }

    /// Hands the frames of one walk to the workers `queues`; returns the
    /// damage point.
    #[allow(clippy::too_many_arguments)]
    fn feed<R: Records>(
        &mut self,
        mut walker: R,
        path: &Path,
        map: &Arc<Mmap>,
        queues: std::ops::Range<usize>,
        stop: &AtomicBool,
        stats: &mut ReplayStats,
        facts: &mut FrameFacts,
    ) -> Result<Option<(u64, DamageReason)>, CaptureError> {
        // Page-table entries are filled a chunk ahead in one call, cheaper
        // than a page fault every few pages.
        let mut populated = 0usize;
        loop {
            if stop.load(Relaxed) {
                return Ok(None);
            }
            let r = match walker.step() {
                Step::Frame(r) => r,
                Step::Skipped => {
                    stats.skipped += 1;
                    continue;
                }
                Step::End => return Ok(None),
                Step::Damaged { offset, reason } => return Ok(Some((offset, reason))),
            };
            self.dispatch(r, path, map, &mut populated, queues.clone(), stats, facts)?;
        }
    }

    /// Hands one frame of `map` to one of the workers `queues` (by flow
    /// hash), after the boundary it may pass.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn dispatch(
        &mut self,
        r: Record,
        path: &Path,
        map: &Arc<Mmap>,
        populated: &mut usize,
        queues: std::ops::Range<usize>,
        stats: &mut ReplayStats,
        facts: &mut FrameFacts,
    ) -> Result<(), CaptureError> {
        if let Some(b) = self.boundary.as_mut() {
            b.last_ns = r.timestamp_ns;
            if r.timestamp_ns >= b.next_ns {
                self.cross(r.timestamp_ns, path)?;
            }
        }
        if r.offset >= *populated {
            map::populate(map, r.offset, POPULATE_CHUNK);
            *populated = r.offset + POPULATE_CHUNK;
        }
        let n = queues.len();
        let w = queues.start
            + if n == 1 {
                0
            } else {
                let bytes = map
                    .get(r.offset..r.offset + r.caplen as usize)
                    .unwrap_or_default();
                (flow_hash(bytes, facts) % n as u64) as usize
            };
        let (full, empty) = &self.to_workers[w];
        let batch = match &mut self.pending[w] {
            Some(b) => b,
            slot => {
                let mut b = match self.spare[w].pop() {
                    Some(b) => b,
                    None => empty.recv().map_err(|_| closed(path))?,
                };
                b.map = Some(map.clone());
                slot.insert(b)
            }
        };
        let wire_len = r.wire_len();
        batch.slots.push(Slot {
            offset: r.offset,
            caplen: r.caplen,
            wire_len,
            timestamp_ns: r.timestamp_ns,
        });
        stats.frames += 1;
        stats.bytes += wire_len as u64;
        if batch.slots.len() == BATCH_FRAMES {
            let b = self.pending[w].take().expect("batch present");
            full.send(b).map_err(|_| closed(path))?;
        }
        Ok(())
    }
}

/// The walker's next frame (counting skipped packets), or its end: `Err`
/// with the damage point, if any.
fn next_frame(
    walker: &mut Walker<'_>,
    skipped: &mut u64,
) -> Result<Record, Option<(u64, DamageReason)>> {
    loop {
        match walker.next_step() {
            Step::Frame(r) => return Ok(r),
            Step::Skipped => *skipped += 1,
            Step::End => return Err(None),
            Step::Damaged { offset, reason } => return Err(Some((offset, reason))),
        }
    }
}

/// A merged file's next frame, or `None` after noting its end.
fn head_or_end(
    next: Result<Record, Option<(u64, DamageReason)>>,
    path: &Path,
    map: &Mmap,
    skipped: u64,
    stats: &mut ReplayStats,
) -> Option<Record> {
    match next {
        Ok(r) => Some(r),
        Err(damage) => {
            file_ended(path, map, damage, skipped, stats);
            None
        }
    }
}

/// Notes a file's end in the stats and the log: its damage, its skipped frames.
fn file_ended(
    path: &Path,
    map: &Mmap,
    damage: Option<(u64, DamageReason)>,
    skipped: u64,
    stats: &mut ReplayStats,
) {
    if let Some((offset, reason)) = damage {
        let unread = (map.len() as u64).saturating_sub(offset);
        tracing::warn!(file = %path.display(), offset, unread, "stopped reading at a damaged record: {reason}");
        stats.unread_bytes += unread;
        stats.damaged.push(Damage {
            path: path.to_path_buf(),
            offset,
            reason,
            unread,
        });
    }
    if skipped > 0 {
        tracing::warn!(file = %path.display(), skipped, "skipped frames of non-Ethernet interfaces");
    }
}

fn closed(path: &Path) -> CaptureError {
    CaptureError::File {
        path: path.display().to_string(),
        msg: "workers stopped before the end of the file".into(),
    }
}

fn file_err(path: &Path, msg: impl std::fmt::Display) -> CaptureError {
    CaptureError::File {
        path: path.display().to_string(),
        msg: msg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame of `len` bytes whose bytes say which frame it is.
    fn frame(tag: u8, len: usize) -> Vec<u8> {
        (0..len).map(|i| tag ^ (i as u8)).collect()
    }

    fn put32(out: &mut Vec<u8>, big: bool, v: u32) {
        out.extend_from_slice(&if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        });
    }

    fn put16(out: &mut Vec<u8>, big: bool, v: u16) {
        out.extend_from_slice(&if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        });
    }

    /// A pcap record: (seconds, fraction, original length, captured bytes).
    type PcapRec<'a> = (u32, u32, u32, &'a [u8]);

    fn pcap(big: bool, magic: u32, snaplen: u32, link: u32, recs: &[PcapRec<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        put32(&mut out, big, magic);
        put16(&mut out, big, 2);
        put16(&mut out, big, 4);
        out.extend_from_slice(&[0; 8]);
        put32(&mut out, big, snaplen);
        put32(&mut out, big, link);
        for &(s, frac, orig, data) in recs {
            for v in [s, frac, data.len() as u32, orig] {
                put32(&mut out, big, v);
            }
            if magic == 0xa1b2_cd34 {
                // ifindex, protocol, pkt_type, pad
                out.extend_from_slice(&[0xa5; 8]);
            }
            out.extend_from_slice(data);
        }
        out
    }

    fn block(big: bool, kind: u32, body: &[u8]) -> Vec<u8> {
        let mut padded = body.to_vec();
        padded.resize(body.len().div_ceil(4) * 4, 0);
        let len = 12 + padded.len() as u32;
        let mut out = Vec::new();
        put32(&mut out, big, kind);
        put32(&mut out, big, len);
        out.extend_from_slice(&padded);
        put32(&mut out, big, len);
        out
    }

    fn shb(big: bool) -> Vec<u8> {
        let mut b = Vec::new();
        put32(&mut b, big, 0x1a2b_3c4d);
        put16(&mut b, big, 1);
        put16(&mut b, big, 0);
        b.extend_from_slice(&[0xff; 8]);
        block(big, 0x0a0d_0d0a, &b)
    }

    /// An IDB; `tsresol` and `tsoffset` as options when given.
    fn idb(
        big: bool,
        link: u16,
        snaplen: u32,
        tsresol: Option<u8>,
        tsoffset: Option<i64>,
    ) -> Vec<u8> {
        let mut b = Vec::new();
        put16(&mut b, big, link);
        put16(&mut b, big, 0);
        put32(&mut b, big, snaplen);
        // An option this reader does not use comes first (if_name, 5 bytes).
        put16(&mut b, big, 2);
        put16(&mut b, big, 5);
        b.extend_from_slice(b"eth0\0\0\0\0");
        if let Some(r) = tsresol {
            put16(&mut b, big, 9);
            put16(&mut b, big, 1);
            b.extend_from_slice(&[r, 0, 0, 0]);
        }
        if let Some(o) = tsoffset {
            put16(&mut b, big, 14);
            put16(&mut b, big, 8);
            b.extend_from_slice(&if big {
                o.to_be_bytes()
            } else {
                o.to_le_bytes()
            });
        }
        put16(&mut b, big, 0);
        put16(&mut b, big, 0);
        block(big, 1, &b)
    }

    fn epb(big: bool, iface: u32, ts: u64, orig: u32, data: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        for v in [iface, (ts >> 32) as u32, ts as u32, data.len() as u32, orig] {
            put32(&mut b, big, v);
        }
        b.extend_from_slice(data);
        block(big, 6, &b)
    }

    fn obsolete_pb(big: bool, iface: u16, ts: u64, orig: u32, data: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        put16(&mut b, big, iface);
        put16(&mut b, big, 0);
        for v in [(ts >> 32) as u32, ts as u32, data.len() as u32, orig] {
            put32(&mut b, big, v);
        }
        b.extend_from_slice(data);
        block(big, 2, &b)
    }

    fn spb(big: bool, orig: u32, data: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        put32(&mut b, big, orig);
        b.extend_from_slice(data);
        block(big, 3, &b)
    }

    /// Walks to the end or the damage point: (frames, skipped, last step).
    fn walk(data: &[u8]) -> (Vec<Record>, u32, Step) {
        let mut w = Walker::new(data).expect("opens");
        let (mut frames, mut skipped) = (Vec::new(), 0);
        loop {
            match w.next_step() {
                Step::Frame(r) => frames.push(r),
                Step::Skipped => skipped += 1,
                last => {
                    // And it stays there.
                    assert_eq!(w.next_step(), last);
                    return (frames, skipped, last);
                }
            }
        }
    }

    fn bytes_of<'a>(data: &'a [u8], r: &Record) -> &'a [u8] {
        &data[r.offset..r.offset + r.caplen as usize]
    }

    #[test]
    fn pcap_reads_both_byte_orders_and_both_time_units() {
        let (a, b) = (frame(1, 60), frame(2, 1514));
        for big in [false, true] {
            for (magic, ns) in [(0xa1b2_c3d4u32, 1_000u64), (0xa1b2_3c4d, 1)] {
                let file = pcap(
                    big,
                    magic,
                    65535,
                    1,
                    &[(10, 7, 60, &a), (11, 999, 1514, &b)],
                );
                let (frames, skipped, last) = walk(&file);
                assert_eq!((skipped, last), (0, Step::End));
                assert_eq!(frames.len(), 2);
                assert_eq!(bytes_of(&file, &frames[0]), &a[..]);
                assert_eq!(bytes_of(&file, &frames[1]), &b[..]);
                assert_eq!(frames[0].timestamp_ns, 10_000_000_000 + 7 * ns);
                assert_eq!(frames[1].timestamp_ns, 11_000_000_000 + 999 * ns);
                assert_eq!((frames[1].orig_len, frames[1].wire_len()), (1514, 1514));
            }
        }
    }

    /// Regression: records whose original length exceeds the snap length
    /// (every record of `tcpdump -s 96`) stopped the reader at the first one,
    /// and records captured beyond the snap length were refused too.
    #[test]
    fn pcap_records_beyond_the_snap_length_are_read_as_they_say() {
        let (a, b, c) = (frame(1, 96), frame(2, 40), frame(3, 200));
        let file = pcap(
            false,
            0xa1b2_c3d4,
            96,
            1,
            &[(1, 0, 1514, &a), (2, 0, 40, &b), (3, 0, 900, &c)],
        );
        let (frames, _, last) = walk(&file);
        assert_eq!(last, Step::End);
        let got: Vec<_> = frames.iter().map(|r| (r.caplen, r.wire_len())).collect();
        assert_eq!(got, [(96, 1514), (40, 40), (200, 900)]);
        assert_eq!(bytes_of(&file, &frames[2]), &c[..]);
    }

    #[test]
    fn pcap_original_length_below_the_captured_counts_the_captured() {
        let a = frame(1, 80);
        let file = pcap(false, 0xa1b2_c3d4, 65535, 1, &[(1, 0, 60, &a)]);
        let (frames, _, _) = walk(&file);
        assert_eq!((frames[0].orig_len, frames[0].wire_len()), (60, 80));
    }

    #[test]
    fn pcap_modified_magic_has_24_byte_record_headers() {
        let (a, b) = (frame(1, 64), frame(2, 70));
        for big in [false, true] {
            let file = pcap(
                big,
                0xa1b2_cd34,
                65535,
                1,
                &[(5, 1, 64, &a), (6, 2, 70, &b)],
            );
            let (frames, _, last) = walk(&file);
            assert_eq!(last, Step::End);
            assert_eq!(bytes_of(&file, &frames[0]), &a[..]);
            assert_eq!(bytes_of(&file, &frames[1]), &b[..]);
            assert_eq!(frames[1].timestamp_ns, 6_000_002_000);
        }
    }

    #[test]
    fn pcap_link_type_must_be_ethernet_fcs_bits_allowed() {
        let a = frame(1, 64);
        // F bit and an FCS length of 2 x 16 bits: Ethernet with FCS.
        let file = pcap(false, 0xa1b2_c3d4, 65535, 0x5000_0001, &[(1, 0, 64, &a)]);
        assert_eq!(walk(&file).0.len(), 1);
        let sll = pcap(false, 0xa1b2_c3d4, 65535, 113, &[(1, 0, 64, &a)]);
        let e = Walker::new(&sll).unwrap_err();
        assert_eq!(e, OpenError::NotEthernet(113));
        assert_eq!(
            e.to_string(),
            "link type 0x71 (LINUX_SLL) is not Ethernet; only Ethernet captures can be replayed"
        );
    }

    #[test]
    fn files_that_are_not_captures_are_refused() {
        assert_eq!(Walker::new(b"abc").unwrap_err(), OpenError::Short);
        assert_eq!(
            Walker::new(b"GIF89a........................").unwrap_err(),
            OpenError::Pcap(PcapHeaderError::Magic)
        );
        let file = pcap(false, 0xa1b2_c3d4, 65535, 1, &[]);
        assert_eq!(
            Walker::new(&file[..10]).unwrap_err(),
            OpenError::Pcap(PcapHeaderError::Short(10))
        );
        // Header only: no frames, not damaged.
        assert_eq!(walk(&file), (vec![], 0, Step::End));
        let ng = shb(false);
        assert_eq!(
            Walker::new(&ng[..20]).unwrap_err(),
            OpenError::PcapNg(PcapNgHeaderError::Section(DamageReason::BlockPastEnd {
                len: 28,
                left: 20
            }))
        );
    }

    #[test]
    fn pcap_damage_points() {
        let (a, b) = (frame(1, 60), frame(2, 100));
        let file = pcap(
            false,
            0xa1b2_c3d4,
            65535,
            1,
            &[(1, 0, 60, &a), (2, 0, 100, &b)],
        );
        let second = 24 + 16 + 60;
        // Cut inside the second record's header.
        let (frames, _, last) = walk(&file[..second + 10]);
        assert_eq!(frames.len(), 1);
        assert_eq!(
            last,
            Step::Damaged {
                offset: second as u64,
                reason: DamageReason::RecordHeaderCut { left: 10 }
            }
        );
        // Cut inside the second record's data.
        let (frames, _, last) = walk(&file[..second + 16 + 99]);
        assert_eq!(frames.len(), 1);
        assert_eq!(
            last,
            Step::Damaged {
                offset: second as u64,
                reason: DamageReason::RecordDataCut {
                    caplen: 100,
                    left: 99
                }
            }
        );
        // A garbage captured length.
        let mut bad = file.clone();
        bad[second + 8..second + 12].copy_from_slice(&(MAX_CAPLEN + 1).to_le_bytes());
        assert_eq!(
            walk(&bad).2,
            Step::Damaged {
                offset: second as u64,
                reason: DamageReason::CaplenTooLarge {
                    caplen: MAX_CAPLEN + 1
                }
            }
        );
    }

    #[test]
    fn pcapng_sections_in_both_byte_orders_with_their_own_interfaces() {
        let (a, b, c, d) = (frame(1, 60), frame(2, 61), frame(3, 62), frame(4, 63));
        let mut file = shb(false);
        file.extend(idb(false, 1, 0, None, None)); // µs
        file.extend(idb(false, 1, 0, Some(9), Some(-10))); // ns, 10 s earlier
        file.extend(epb(false, 0, 1_500_000, 60, &a));
        file.extend(epb(false, 1, 20_000_000_005, 1514, &b));
        // A block this reader does not know (custom block), skipped.
        file.extend(block(false, 0x0000_0bad, &[0xa5; 10]));
        file.extend(shb(true));
        // Interface 0 of the new section: 2^-10 s.
        file.extend(idb(true, 1, 0, Some(0x80 | 10), None));
        file.extend(epb(true, 0, 3 * 1024, 62, &c));
        file.extend(obsolete_pb(true, 0, 1024, 63, &d));
        let (frames, skipped, last) = walk(&file);
        assert_eq!((skipped, last), (0, Step::End));
        let got: Vec<_> = frames
            .iter()
            .map(|r| (bytes_of(&file, r).to_vec(), r.wire_len(), r.timestamp_ns))
            .collect();
        assert_eq!(
            got,
            [
                (a, 60, 1_500_000_000),
                (b, 1514, 10_000_000_005),
                (c, 62, 3_000_000_000),
                (d, 63, 1_000_000_000)
            ]
        );
        let Walker::PcapNg(mut w) = Walker::new(&file).unwrap() else {
            panic!("pcapng")
        };
        while let Step::Frame(_) = w.next_step() {}
        assert_eq!(w.sections, 2);
    }

    #[test]
    fn pcapng_simple_packets_take_the_snap_length_and_the_block_room() {
        let a = frame(1, 100);
        for (snaplen, orig, caplen) in [
            (64u32, 1514u32, 64u32),
            (0, 1514, 100),
            (0, 90, 90),
            (200, 150, 100),
        ] {
            let mut file = shb(false);
            file.extend(idb(false, 1, snaplen, None, None));
            file.extend(spb(false, orig, &a));
            let (frames, _, last) = walk(&file);
            assert_eq!(last, Step::End);
            assert_eq!(
                (
                    frames[0].caplen,
                    frames[0].wire_len(),
                    frames[0].timestamp_ns
                ),
                (caplen, orig.max(caplen), 0),
                "snaplen {snaplen} orig {orig}"
            );
            assert_eq!(bytes_of(&file, &frames[0]), &a[..caplen as usize]);
        }
    }

    #[test]
    fn pcapng_packets_of_other_link_types_are_skipped() {
        let a = frame(1, 60);
        let mut file = shb(false);
        file.extend(idb(false, 113, 0, None, None));
        file.extend(idb(false, 1, 0, None, None));
        file.extend(epb(false, 0, 1, 60, &a));
        file.extend(epb(false, 1, 2, 60, &a));
        // No interface 7 declared.
        file.extend(epb(false, 7, 3, 60, &a));
        // SPBs belong to interface 0 (not Ethernet here).
        file.extend(spb(false, 60, &a));
        let (frames, skipped, last) = walk(&file);
        assert_eq!((frames.len(), skipped, last), (1, 3, Step::End));
        assert_eq!(frames[0].timestamp_ns, 2_000);
    }

    #[test]
    fn pcapng_damage_points() {
        let a = frame(1, 60);
        let mut head = shb(false);
        head.extend(idb(false, 1, 0, None, None));
        let good = epb(false, 0, 1, 60, &a);
        let at = (head.len() + good.len()) as u64;
        let with = |tail: &[u8]| {
            let mut f = head.clone();
            f.extend(&good);
            f.extend(tail);
            f
        };
        let damaged = |file: &[u8]| {
            let (frames, _, last) = walk(file);
            assert_eq!(frames.len(), 1, "the frame before the damage is read");
            match last {
                Step::Damaged { offset, reason } => {
                    assert_eq!(offset, at);
                    reason
                }
                other => panic!("not damaged: {other:?}"),
            }
        };
        let next = epb(false, 0, 2, 60, &a);
        // Cut mid-block.
        assert_eq!(
            damaged(&with(&next[..50])),
            DamageReason::BlockPastEnd { len: 92, left: 50 }
        );
        // Cut in the block header.
        assert_eq!(
            damaged(&with(&next[..8])),
            DamageReason::BlockHeaderCut { left: 8 }
        );
        // A garbage block length.
        let mut bad = next.clone();
        bad[4..8].copy_from_slice(&93u32.to_le_bytes());
        assert_eq!(damaged(&with(&bad)), DamageReason::BlockLength { len: 93 });
        bad[4..8].copy_from_slice(&8u32.to_le_bytes());
        assert_eq!(damaged(&with(&bad)), DamageReason::BlockLength { len: 8 });
        // A trailing length that differs.
        let mut bad = next.clone();
        let n = bad.len();
        bad[n - 4..].copy_from_slice(&88u32.to_le_bytes());
        assert_eq!(
            damaged(&with(&bad)),
            DamageReason::TrailerMismatch {
                len: 92,
                trailer: 88
            }
        );
        // A captured length past the block.
        let mut bad = next.clone();
        bad[20..24].copy_from_slice(&61u32.to_le_bytes());
        assert_eq!(
            damaged(&with(&bad)),
            DamageReason::PacketPastBlock {
                caplen: 61,
                room: 60
            }
        );
        // An EPB too short for its fields.
        assert_eq!(
            damaged(&with(&block(false, 6, &[0; 8]))),
            DamageReason::BlockTooShort { kind: 6, len: 20 }
        );
        // A section header with a wrong byte-order magic.
        let mut bad = shb(false);
        bad[8] ^= 0xff;
        assert_eq!(damaged(&with(&bad)), DamageReason::ByteOrderMagic);
    }

    #[test]
    fn walkers_never_panic_or_loop_on_mutated_files() {
        let frames: Vec<_> = (0..20).map(|i| frame(i, 40 + i as usize * 7)).collect();
        let recs: Vec<PcapRec<'_>> = frames
            .iter()
            .map(|f| (1, 2, f.len() as u32 + 3, &f[..]))
            .collect();
        let pcap_file = pcap(false, 0xa1b2_c3d4, 96, 1, &recs);
        let mut ng = shb(true);
        ng.extend(idb(true, 1, 64, Some(9), None));
        for f in &frames {
            ng.extend(epb(true, 0, 5, f.len() as u32, f));
            ng.extend(spb(true, f.len() as u32, f));
        }
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for base in [&pcap_file, &ng] {
            for _ in 0..2_000 {
                let mut f = base.clone();
                for _ in 0..4 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let at = (x >> 8) as usize % f.len();
                    f[at] = (x >> 40) as u8;
                }
                let cut = (x >> 20) as usize % (f.len() + 1);
                let f = &f[..cut.max(f.len() * 3 / 4)];
                let Ok(mut w) = Walker::new(f) else { continue };
                let mut steps = 0;
                loop {
                    match w.next_step() {
                        Step::Frame(r) => {
                            assert!(r.offset + r.caplen as usize <= f.len());
                        }
                        Step::Skipped => {}
                        Step::End | Step::Damaged { .. } => break,
                    }
                    steps += 1;
                    assert!(steps <= f.len() / 12, "more steps than blocks could fit");
                }
            }
        }
    }

    /// One worker's frames: (bytes, wire length, timestamp).
    type Got = Vec<(Vec<u8>, u32, u64)>;

    /// Runs the reader over `files` with `workers` workers; returns the stats
    /// and each worker's frames.
    fn run(files: Vec<PathBuf>, workers: usize) -> (Result<ReplayStats, CaptureError>, Vec<Got>) {
        let (reader, queues) = replay(files, workers);
        let handles: Vec<_> = queues
            .into_iter()
            .map(|mut q| {
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    loop {
                        match q.poll(64, |f| {
                            got.push((f.data.to_vec(), f.wire_len, f.timestamp_ns))
                        }) {
                            Ok(_) => {}
                            Err(CaptureError::Closed) => return got,
                            Err(e) => panic!("{e}"),
                        }
                    }
                })
            })
            .collect();
        let stats = reader.run(&AtomicBool::new(false));
        (
            stats,
            handles.into_iter().map(|h| h.join().unwrap()).collect(),
        )
    }

    /// An Ethernet/IPv4/UDP frame between two addresses.
    fn udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, len: usize) -> Vec<u8> {
        let mut f = vec![0xa5; len];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[16..18].copy_from_slice(&((len - 14) as u16).to_be_bytes());
        f[23] = 17;
        f[26..30].copy_from_slice(&src);
        f[30..34].copy_from_slice(&dst);
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        f
    }

    #[test]
    fn reader_hands_every_frame_in_place_and_goes_on_after_a_damaged_file() {
        let dir = tempfile::tempdir().unwrap();
        let frames: Vec<Vec<u8>> = (0..3000u32)
            .map(|i| {
                udp(
                    [10, 0, 0, (i % 7) as u8],
                    [192, 0, 2, (i % 5) as u8],
                    1000 + (i % 3) as u16,
                    53,
                    60 + (i % 50) as usize,
                )
            })
            .collect();
        let recs: Vec<PcapRec<'_>> = frames
            .iter()
            .enumerate()
            .map(|(i, f)| (i as u32, 0, f.len() as u32 + 100, &f[..]))
            .collect();
        let whole = pcap(false, 0xa1b2_c3d4, 65535, 1, &recs);
        let first = dir.path().join("first.pcap");
        let cut = dir.path().join("cut.pcap");
        let last = dir.path().join("last.pcap");
        std::fs::write(&first, &whole).unwrap();
        // The cut file: 1000 whole records, then 30 bytes of the next.
        let end_1000 = 24 + recs[..1000].iter().map(|r| 16 + r.3.len()).sum::<usize>();
        std::fs::write(&cut, &whole[..end_1000 + 30]).unwrap();
        std::fs::write(&last, &whole).unwrap();
        let files = vec![first, cut.clone(), last];
        let want: Vec<(Vec<u8>, u32, u64)> = [&recs[..], &recs[..1000], &recs[..]]
            .concat()
            .iter()
            .map(|r| (r.3.to_vec(), r.2, r.0 as u64 * 1_000_000_000))
            .collect();

        let (stats, got) = run(files.clone(), 1);
        let stats = stats.unwrap();
        assert_eq!(got[0], want, "one worker: every frame, in order");
        assert_eq!(stats.frames, 7000);
        assert_eq!(stats.bytes, want.iter().map(|w| w.1 as u64).sum::<u64>());
        assert_eq!(stats.unread_bytes, 30);
        assert_eq!(
            stats.damaged,
            [Damage {
                path: cut.clone(),
                offset: end_1000 as u64,
                // 16 header bytes and 14 of the 60 data bytes are there.
                reason: DamageReason::RecordDataCut {
                    caplen: 60,
                    left: 14
                },
                unread: 30
            }]
        );
        assert_eq!(
            stats.damaged[0].to_string(),
            format!("{}: damaged at byte {end_1000} (record of 60 captured bytes cut short: 14 bytes left): 30 bytes not read", cut.display())
        );

        // Three workers: the same frames, each flow (both directions) on one worker.
        let (stats, got) = run(files, 3);
        assert_eq!(stats.unwrap().frames, 7000);
        let mut all: Vec<_> = got.concat();
        let mut sorted_want = want.clone();
        all.sort();
        sorted_want.sort();
        assert_eq!(all, sorted_want);
        for (w, frames) in got.iter().enumerate() {
            assert!(!frames.is_empty(), "worker {w} got frames");
            let mut facts = FrameFacts::default();
            for (data, _, _) in frames {
                assert_eq!(flow_hash(data, &mut facts) % 3, w as u64);
            }
        }
    }

    #[test]
    fn reader_refuses_a_pipe_and_a_non_capture_with_the_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let st = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo runs");
        assert!(st.success());
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "hello, this is not a capture").unwrap();
        for (path, msg) in [
            (&fifo, "not a regular file (a pipe, socket or device)"),
            (&text, "not a pcap or pcapng file (unknown magic number)"),
        ] {
            let e = run(vec![path.clone()], 1).0.unwrap_err().to_string();
            assert!(e.starts_with(&format!("{}: {msg}", path.display())), "{e}");
        }
    }

    #[test]
    fn merged_files_pass_every_boundary_together_and_a_damaged_one_ends_alone() {
        use std::sync::Mutex;
        let dir = tempfile::tempdir().unwrap();
        // File i's frames come from 10.0.0.i; microsecond timestamps that
        // interleave, tie, and sit exactly on the 10 s boundaries.
        let a_ts: Vec<u64> = (0..200).map(|i| i * 500_000).collect();
        let mut b_ts: Vec<u64> = (0..140).map(|i| 100_000 + i * 700_000).collect();
        b_ts.extend([10_000_000, 20_000_000, 20_000_000]);
        b_ts.sort();
        let write = |name: &str, tag: u8, ts: &[u64]| {
            let frames: Vec<Vec<u8>> = (0..ts.len())
                .map(|i| {
                    udp(
                        [10, 0, 0, tag],
                        [192, 0, 2, i as u8],
                        1000 + i as u16,
                        53,
                        80,
                    )
                })
                .collect();
            let recs: Vec<PcapRec<'_>> = ts
                .iter()
                .zip(&frames)
                .map(|(t, f)| ((t / 1_000_000) as u32, (t % 1_000_000) as u32, 80, &f[..]))
                .collect();
            let path = dir.path().join(name);
            std::fs::write(&path, pcap(false, 0xa1b2_c3d4, 65535, 1, &recs)).unwrap();
            path
        };
        let (a, b) = (write("a.pcap", 1, &a_ts), write("b.pcap", 2, &b_ts));
        // b cut in its last record: all but its last frame are read.
        let cut = std::fs::read(&b).unwrap();
        std::fs::write(&b, &cut[..cut.len() - 20]).unwrap();
        let b_read = &b_ts[..b_ts.len() - 1];
        // Every frame read, from both files.
        let read: Vec<u64> = a_ts.iter().chain(b_read).copied().collect();
        let total = read.len();

        let (reader, groups) = replay_merged(vec![a.clone(), b.clone()], 2);
        assert_eq!(groups.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2]);
        // (file tag, timestamp in µs) of every frame counted, by any worker.
        let counted = Arc::new(Mutex::new(Vec::<(u8, u64)>::new()));
        let calls = Arc::new(Mutex::new(Vec::<(u64, bool, usize)>::new()));
        let (c, k) = (counted.clone(), calls.clone());
        let reader = reader.with_boundaries(
            10_000_000_000,
            Box::new(move |ts, end| {
                let c = c.lock().unwrap();
                // Every frame before the crossing frame is counted, none after.
                let before = read.iter().filter(|&&t| t * 1000 < ts).count();
                let want = if end { total } else { before };
                assert_eq!(c.len(), want, "at {ts} (end {end})");
                assert!(end || c.iter().all(|&(_, t)| t * 1000 < ts));
                k.lock().unwrap().push((ts, end, c.len()));
            }),
        );
        let mut handles = Vec::new();
        for (g, group) in groups.into_iter().enumerate() {
            for mut q in group {
                let counted = counted.clone();
                handles.push(std::thread::spawn(move || loop {
                    match q.poll(64, |f| {
                        // Each file's frames go to its own workers only.
                        assert_eq!(f.data[29], g as u8 + 1);
                        counted
                            .lock()
                            .unwrap()
                            .push((f.data[29], f.timestamp_ns / 1000));
                    }) {
                        Ok(_) => {}
                        Err(CaptureError::Closed) => return,
                        Err(e) => panic!("{e}"),
                    }
                }));
            }
        }
        let stats = reader.run(&AtomicBool::new(false)).unwrap();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(stats.frames as usize, total);
        assert_eq!(stats.damaged.len(), 1);
        assert_eq!(stats.damaged[0].path, b);
        // The first frame, each 10 s boundary up to 90 s, and the end (a's
        // last frame, 99.5 s).
        let calls = calls.lock().unwrap();
        let starts: Vec<u64> = calls.iter().map(|c| c.0 / 1_000_000_000).collect();
        assert_eq!(starts, [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 99]);
        assert!(calls.last().unwrap().1);
    }
}

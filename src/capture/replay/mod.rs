//! pcap / pcapng replay: one reader thread spreads frames over the workers
//! by a symmetric flow hash (like RSS), in recycled batch buffers.
//!
//! Allocates only at start (a fixed pool of batch buffers per worker).

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::DataLink;

use super::{Capture, CaptureError, Frame};
use crate::wire::{parse_frame, FrameFacts, L3Addrs};

/// Frames per batch handed to a worker.
const BATCH_FRAMES: usize = 256;
/// Batches in flight per worker.
const BATCHES_PER_WORKER: usize = 8;

/// Frames of one batch, packed into one buffer.
#[derive(Default)]
pub struct Batch {
    data: Vec<u8>,
    /// (start, end, wire_len) into `data`.
    frames: Vec<(u32, u32, u32)>,
}

impl Batch {
    fn push(&mut self, data: &[u8], wire_len: u32) {
        let start = self.data.len() as u32;
        self.data.extend_from_slice(data);
        self.frames.push((start, self.data.len() as u32, wire_len));
    }
    fn clear(&mut self) {
        self.data.clear();
        self.frames.clear();
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
        let end = (*pos + max).min(batch.frames.len());
        for &(s, e, wire_len) in &batch.frames[*pos..end] {
            f(Frame {
                data: &batch.data[s as usize..e as usize],
                wire_len,
            });
        }
        let n = end - *pos;
        *pos = end;
        if *pos == batch.frames.len() {
            let (mut b, _) = self.current.take().expect("current batch present");
            b.clear();
            // The reader may be gone at end of input; the buffer is then just dropped.
            let _ = self.empty.send(b);
        }
        Ok(n)
    }
}

/// Totals of a finished replay, for the summary line.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReplayStats {
    pub frames: u64,
    pub bytes: u64,
    /// Frames skipped because the file's link type is not Ethernet.
    pub skipped: u64,
}

/// The reader end: owns the files and the per-worker channels.
pub struct ReplayReader {
    files: Vec<PathBuf>,
    to_workers: Vec<(Sender<Batch>, Receiver<Batch>)>,
}

/// Creates the reader and one `ReplayQueue` per worker.
pub fn replay(files: Vec<PathBuf>, workers: usize) -> (ReplayReader, Vec<ReplayQueue>) {
    let mut to_workers = Vec::new();
    let mut queues = Vec::new();
    for _ in 0..workers.max(1) {
        let (full_tx, full_rx) = bounded(BATCHES_PER_WORKER);
        let (empty_tx, empty_rx) = bounded(BATCHES_PER_WORKER);
        for _ in 0..BATCHES_PER_WORKER {
            empty_tx.send(Batch::default()).expect("channel has room");
        }
        to_workers.push((full_tx, empty_rx));
        queues.push(ReplayQueue {
            full: full_rx,
            empty: empty_tx,
            current: None,
        });
    }
    (ReplayReader { files, to_workers }, queues)
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
    /// Reads every file in order and hands its frames to the workers; closes
    /// the queues at the end. `stop` ends it early.
    pub fn run(mut self, stop: &AtomicBool) -> Result<ReplayStats, CaptureError> {
        let mut stats = ReplayStats::default();
        let n = self.to_workers.len();
        let mut pending: Vec<Option<Batch>> = (0..n).map(|_| None).collect();
        let mut facts = FrameFacts::default();
        let files = std::mem::take(&mut self.files);
        for path in &files {
            let mut send =
                |data: &[u8], wire_len: u32, stats: &mut ReplayStats| -> Result<(), CaptureError> {
                    let w = if n == 1 {
                        0
                    } else {
                        (flow_hash(data, &mut facts) % n as u64) as usize
                    };
                    let (full, empty) = &self.to_workers[w];
                    let batch = match &mut pending[w] {
                        Some(b) => b,
                        slot => slot.insert(empty.recv().map_err(|_| closed(path))?),
                    };
                    batch.push(data, wire_len.max(data.len() as u32));
                    stats.frames += 1;
                    stats.bytes += wire_len.max(data.len() as u32) as u64;
                    if batch.frames.len() == BATCH_FRAMES {
                        full.send(pending[w].take().expect("batch present"))
                            .map_err(|_| closed(path))?;
                    }
                    Ok(())
                };
            read_file(path, stop, &mut stats, &mut send)?;
        }
        for (w, b) in pending.into_iter().enumerate() {
            if let Some(b) = b {
                let _ = self.to_workers[w].0.send(b);
            }
        }
        Ok(stats)
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

/// Takes one frame (data, wire length) from a file being read.
type SendFrame<'a> = dyn FnMut(&[u8], u32, &mut ReplayStats) -> Result<(), CaptureError> + 'a;

/// Reads one pcap or pcapng file, calling `send` for each Ethernet frame.
fn read_file(
    path: &Path,
    stop: &AtomicBool,
    stats: &mut ReplayStats,
    send: &mut SendFrame<'_>,
) -> Result<(), CaptureError> {
    let mut magic = [0u8; 4];
    {
        use std::io::Read;
        let mut f = File::open(path).map_err(|e| file_err(path, e))?;
        f.read_exact(&mut magic)
            .map_err(|_| file_err(path, "not a pcap or pcapng file (shorter than 4 bytes)"))?;
    }
    let file = BufReader::with_capacity(1 << 20, File::open(path).map_err(|e| file_err(path, e))?);
    if magic == [0x0a, 0x0d, 0x0d, 0x0a] {
        let mut r = PcapNgReader::new(file)
            .map_err(|e| file_err(path, format!("bad pcapng header: {e}")))?;
        let mut links: Vec<DataLink> = Vec::new();
        while let Some(block) = r.next_block() {
            if stop.load(Relaxed) {
                break;
            }
            let block = match block {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(file = %path.display(), "stopped reading at a damaged block: {e}");
                    break;
                }
            };
            let (iface, data, wire_len) = match &block {
                Block::EnhancedPacket(p) => (p.interface_id as usize, &p.data[..], p.original_len),
                Block::SimplePacket(p) => (0, &p.data[..], p.original_len),
                Block::InterfaceDescription(i) => {
                    links.push(i.linktype);
                    continue;
                }
                _ => continue,
            };
            if !links.get(iface).is_some_and(|l| is_ethernet(*l)) {
                stats.skipped += 1;
                continue;
            }
            send(data, wire_len, stats)?;
        }
    } else {
        let mut r = PcapReader::new(file)
            .map_err(|e| file_err(path, format!("not a pcap or pcapng file: {e}")))?;
        let link = r.header().datalink;
        if !is_ethernet(link) {
            return Err(file_err(
                path,
                format!(
                    "link type {link:?} is not Ethernet; only Ethernet captures can be replayed"
                ),
            ));
        }
        while let Some(pkt) = r.next_packet() {
            if stop.load(Relaxed) {
                break;
            }
            match pkt {
                Ok(p) => send(&p.data, p.orig_len, stats)?,
                Err(e) => {
                    tracing::warn!(file = %path.display(), "stopped reading at a damaged record: {e}");
                    break;
                }
            }
        }
    }
    if stats.skipped > 0 {
        tracing::warn!(file = %path.display(), skipped = stats.skipped, "skipped frames of non-Ethernet interfaces");
    }
    Ok(())
}

/// Ethernet, also when the upper bits of the link type announce an FCS.
fn is_ethernet(link: DataLink) -> bool {
    u32::from(link) & 0xffff == 1
}

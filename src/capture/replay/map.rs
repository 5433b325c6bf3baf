//! Maps a capture file into memory, read-only: the one unsafe call of the
//! replay reader (`memmap2::Mmap::map`). Allocates nothing but the mapping;
//! never panics.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use memmap2::{Advice, Mmap};

use super::file_err;
use crate::capture::CaptureError;

/// Maps `path` for reading in place. Refuses, with one line naming the file,
/// what is not a regular file: a pipe, FIFO, socket or device (`/dev/stdin`)
/// cannot be mapped, and replay does not fall back to reading it.
pub(super) fn map_file(path: &Path) -> Result<Mmap, CaptureError> {
    // Non-blocking, so that opening a FIFO does not wait for a writer (no
    // effect on a regular file).
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| file_err(path, e))?;
    let meta = file.metadata().map_err(|e| file_err(path, e))?;
    if !meta.is_file() {
        return Err(file_err(
            path,
            "not a regular file (a pipe, socket or device); replay reads capture files \
             in place: save the capture to a file first",
        ));
    }
    // SAFETY: the mapping is private to this process and read-only, and it
    // outlives every slice taken from it (the reader and the batches hold it
    // in an `Arc`). memmap2 documents it as undefined behaviour when the file
    // is modified while mapped; this rests on the assumption that capture
    // files are not modified while they are replayed. What breaking it costs:
    // a file rewritten in place shows other bytes than the ones the walker
    // checked (the walker and the workers bound every slice by the mapping's
    // length, so only the counts would be wrong), and a file truncated under
    // us kills the process with SIGBUS on the first page past its new end.
    let map = unsafe { Mmap::map(&file) }.map_err(|e| file_err(path, e))?;
    // Read-ahead hint; a refusal only costs speed.
    let _ = map.advise(Advice::Sequential);
    Ok(map)
}

/// Fills the page tables of `len` bytes from `offset` (reading them from
/// the file if they are not cached). A refusal (kernels before 5.14) only
/// costs speed: the pages then fault in as they are read.
pub(super) fn populate(map: &Mmap, offset: usize, len: usize) {
    let len = len.min(map.len().saturating_sub(offset));
    if len > 0 {
        let _ = map.advise_range(Advice::PopulateRead, offset, len);
    }
}

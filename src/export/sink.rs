//! The worker's end of the export channel.
//!
//! Records are gathered into batches (`Vec<FlowRecord>`, 256 by default)
//! and handed to the exporter thread with `try_send`: a full channel drops
//! the batch and counts its records, so a slow collector never stalls a
//! worker. The exporter hands emptied batches back on a second channel, so
//! in steady state nothing is allocated; a fresh `Vec` is allocated only
//! when none has come back yet. Never panics.

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::{FlowRecord, FlowStats};

/// Batches flow records for the exporter thread. One per shard, owned by
/// its worker; made by [`super::FlowExporter::sink`].
pub struct FlowSink {
    tx: Sender<Vec<FlowRecord>>,
    spare: Receiver<Vec<FlowRecord>>,
    batch: Vec<FlowRecord>,
    batch_size: usize,
    max_delay_ms: u64,
    /// Clock of the first record in `batch` (as last given to `tick`).
    batch_started_ms: Option<u64>,
    last_tick_ms: u64,
    stats: Arc<FlowStats>,
}

impl FlowSink {
    pub(crate) fn new(
        tx: Sender<Vec<FlowRecord>>,
        spare: Receiver<Vec<FlowRecord>>,
        batch_size: usize,
        max_delay_ms: u64,
        stats: Arc<FlowStats>,
    ) -> Self {
        let batch_size = batch_size.max(1);
        FlowSink {
            tx,
            spare,
            batch: Vec::with_capacity(batch_size),
            batch_size,
            max_delay_ms,
            batch_started_ms: None,
            last_tick_ms: 0,
            stats,
        }
    }

    /// Adds one record; sends the batch when it is full.
    #[inline]
    pub fn push(&mut self, r: FlowRecord) {
        if self.batch.is_empty() {
            self.batch_started_ms = Some(self.last_tick_ms);
        }
        self.batch.push(r);
        if self.batch.len() >= self.batch_size {
            self.send();
        }
    }

    /// Call once per worker batch, after `FlowCache::expire`: sends a
    /// partial batch once it is older than the batch delay (1 s by default),
    /// so records of a quiet shard still leave on time.
    #[inline]
    pub fn tick(&mut self, now_ms: u64) {
        self.last_tick_ms = now_ms;
        if let Some(started) = self.batch_started_ms {
            if now_ms.saturating_sub(started) >= self.max_delay_ms {
                self.send();
            }
        }
    }

    /// Sends whatever is batched now (shutdown, end of replay).
    pub fn flush(&mut self) {
        if !self.batch.is_empty() {
            self.send();
        }
    }

    /// Records waiting in the current batch.
    pub fn pending(&self) -> usize {
        self.batch.len()
    }

    pub fn stats(&self) -> &Arc<FlowStats> {
        &self.stats
    }

    fn send(&mut self) {
        self.batch_started_ms = None;
        let n = self.batch.len() as u64;
        if n == 0 {
            return;
        }
        // Send first, then find the next buffer: a batch the full channel
        // hands back is reused as it is, so an exporter that falls behind
        // costs dropped records, never an allocation per batch.
        let full = std::mem::take(&mut self.batch);
        match self.tx.try_send(full) {
            Ok(()) => {
                self.stats.records_queued.add(n);
                self.batch = match self.spare.try_recv() {
                    Ok(mut v) => {
                        v.clear();
                        v
                    }
                    // At most one per batch in flight (the channels are
                    // bounded): the exporter hands every buffer back.
                    Err(_) => Vec::with_capacity(self.batch_size),
                };
            }
            Err(TrySendError::Full(mut back)) | Err(TrySendError::Disconnected(mut back)) => {
                self.stats.records_dropped_channel_full.add(n);
                back.clear();
                self.batch = back;
            }
        }
    }
}

impl Drop for FlowSink {
    /// A sink dropped with records in it sends them (best effort).
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::bounded;

    fn rec(n: u64) -> FlowRecord {
        FlowRecord {
            packets: n,
            ..FlowRecord::default()
        }
    }

    #[test]
    fn batches_and_drops_when_full() {
        let (tx, rx) = bounded(2);
        let (_spare_tx, spare_rx) = bounded(2);
        let stats = Arc::new(FlowStats::default());
        let mut s = FlowSink::new(tx, spare_rx, 3, 1000, stats.clone());
        for i in 0..10 {
            s.push(rec(i));
        }
        // Batches [0,1,2] and [3,4,5] are queued, [6,7,8] dropped, 9 pending.
        assert_eq!(rx.len(), 2);
        assert_eq!(stats.records_queued.get(), 6);
        assert_eq!(stats.records_dropped_channel_full.get(), 3);
        assert_eq!(s.pending(), 1);
        let b: Vec<u64> = rx
            .recv()
            .unwrap_or_default()
            .iter()
            .map(|r| r.packets)
            .collect();
        assert_eq!(b, [0, 1, 2]);
        s.flush();
        assert_eq!(stats.records_queued.get(), 7);
    }

    #[test]
    fn tick_sends_old_partial_batches() {
        let (tx, rx) = bounded(4);
        let (_spare_tx, spare_rx) = bounded(2);
        let mut s = FlowSink::new(tx, spare_rx, 256, 1000, Arc::new(FlowStats::default()));
        s.tick(5_000);
        s.push(rec(1));
        s.tick(5_500);
        assert!(rx.is_empty());
        s.tick(6_000);
        assert_eq!(rx.len(), 1);
        s.tick(9_000);
        assert_eq!(rx.len(), 1);
    }

    #[test]
    fn reuses_returned_batches() {
        let (tx, rx) = bounded(4);
        let (spare_tx, spare_rx) = bounded(2);
        let mut s = FlowSink::new(tx, spare_rx, 2, 1000, Arc::new(FlowStats::default()));
        s.push(rec(1));
        s.push(rec(2));
        let v = rx.recv().unwrap_or_default();
        let ptr = v.as_ptr();
        assert!(spare_tx.try_send(v).is_ok());
        s.push(rec(3));
        s.push(rec(4)); // sends the current batch, takes the returned one
        s.push(rec(5));
        s.push(rec(6));
        let _first = rx.recv();
        let second = rx.recv().unwrap_or_default();
        assert_eq!(second.as_ptr(), ptr);
    }
}

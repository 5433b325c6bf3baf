//! The exporter thread: receives record batches from the shards' sinks,
//! encodes them (NetFlow v9 or IPFIX) and sends each packet to every
//! collector over its own connected UDP socket.
//!
//! A collector that fails a send (typically ECONNREFUSED, reported by the
//! kernel on the send after an ICMP port unreachable) is skipped for
//! `retry_ms` and then tried again from the next packet on, which carries
//! the templates (a restarted collector knows none). Packets no collector accepted count as
//! `records_dropped{reason="send_error"}`. Nothing here ever blocks a
//! worker: the workers' side is [`FlowSink`] with `try_send`.
//!
//! Shutdown ([`FlowExporter::shutdown`], or drop) drains the channel,
//! sends the last partial packet and joins the thread.
//!
//! Allocates at start-up only (sockets, encoder buffer); record batches are
//! handed back to the sinks for reuse. No unsafe code.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};

use super::cache::Counter;
use super::{Encoder, EncoderConfig, FlowRecord, FlowSink, FlowStats};

/// Where the exporter takes "now" from for packet headers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExportClock {
    /// The system clock (live capture). Default.
    #[default]
    Wall,
    /// The largest `last_ms` of the records seen so far (pcap replay, where
    /// flow times are the capture's, not today's).
    Records,
}

/// Exporter settings.
#[derive(Clone, Debug)]
pub struct ExporterConfig {
    /// Collectors as "host:port"; every packet goes to each of them.
    pub collectors: Vec<String>,
    /// Format, domain id, MTU, template refresh, sampling.
    pub encoder: EncoderConfig,
    /// Batches the channel holds before sinks start dropping. Defaults to 1024.
    pub channel_batches: usize,
    /// Records per batch sent by a sink. Defaults to 256.
    pub batch_size: usize,
    /// A sink sends a partial batch after this long, in ms. Defaults to 1000.
    pub batch_delay_ms: u64,
    /// A collector whose send failed is tried again after this long, in ms.
    /// Defaults to 5000.
    pub retry_ms: u64,
    pub clock: ExportClock,
    /// Packets per second at most, 0 = unlimited. Defaults to 0. (A burst
    /// of thousands of packets can overflow a collector's socket buffer.)
    pub max_packets_per_sec: u32,
}

impl Default for ExporterConfig {
    fn default() -> Self {
        ExporterConfig {
            collectors: Vec::new(),
            encoder: EncoderConfig::default(),
            channel_batches: 1024,
            batch_size: 256,
            batch_delay_ms: 1000,
            retry_ms: 5000,
            clock: ExportClock::Wall,
            max_packets_per_sec: 0,
        }
    }
}

/// Counters written by the exporter thread, read at scrape.
#[derive(Debug, Default)]
pub struct ExporterStats {
    /// Flow records received from the shards.
    pub records_received: Counter,
    /// Flow records in packets at least one collector accepted.
    pub records_exported: Counter,
    /// Flow records in packets no collector accepted.
    pub records_dropped_send_error: Counter,
    /// Packets handed to the kernel, summed over collectors.
    pub packets_sent: Counter,
    /// Failed sends, summed over collectors.
    pub send_errors: Counter,
    /// Packets that carried the templates.
    pub templates_sent: Counter,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("export collector {collector:?}: cannot resolve it (expected host:port)")]
    Resolve {
        collector: String,
        #[source]
        source: io::Error,
    },
    #[error("export collector {collector:?}: cannot open a UDP socket to it")]
    Socket {
        collector: String,
        #[source]
        source: io::Error,
    },
    #[error("export: no collectors configured")]
    NoCollectors,
    #[error("export: cannot start the exporter thread")]
    Spawn(#[source] io::Error),
    #[error("export: the exporter thread panicked")]
    Panicked,
}

struct Collector {
    name: String,
    sock: UdpSocket,
    down_until: Option<Instant>,
}

impl Collector {
    fn open(name: &str) -> Result<Collector, ExportError> {
        let addr: SocketAddr = name
            .to_socket_addrs()
            .map_err(|source| ExportError::Resolve {
                collector: name.to_owned(),
                source,
            })?
            .next()
            .ok_or_else(|| ExportError::Resolve {
                collector: name.to_owned(),
                source: io::Error::new(io::ErrorKind::NotFound, "no address"),
            })?;
        let local: SocketAddr = if addr.is_ipv4() {
            ([0u8; 4], 0).into()
        } else {
            ([0u16; 8], 0).into()
        };
        let sock = UdpSocket::bind(local)
            .and_then(|s| s.connect(addr).map(|()| s))
            .map_err(|source| ExportError::Socket {
                collector: name.to_owned(),
                source,
            })?;
        Ok(Collector {
            name: name.to_owned(),
            sock,
            down_until: None,
        })
    }
}

/// Record batches made ready for each sink when it is made (16 KiB each
/// at the default batch size).
pub const SPARE_BATCHES_PER_SINK: usize = 8;

/// The running exporter. Make sinks for the workers with [`Self::sink`].
pub struct FlowExporter {
    tx: Sender<Vec<FlowRecord>>,
    spare_tx: Sender<Vec<FlowRecord>>,
    spare_rx: Receiver<Vec<FlowRecord>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    stats: Arc<ExporterStats>,
    batch_size: usize,
    batch_delay_ms: u64,
}

impl FlowExporter {
    /// Resolves the collectors, opens their sockets and starts the thread.
    pub fn start(cfg: &ExporterConfig) -> Result<FlowExporter, ExportError> {
        if cfg.collectors.is_empty() {
            return Err(ExportError::NoCollectors);
        }
        let collectors = cfg
            .collectors
            .iter()
            .map(|c| Collector::open(c))
            .collect::<Result<Vec<_>, _>>()?;
        let (tx, rx) = bounded(cfg.channel_batches.max(1));
        let (spare_tx, spare_rx) = bounded(cfg.channel_batches.max(1));
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(ExporterStats::default());
        let mut worker = ExportThread {
            rx,
            spare_tx: spare_tx.clone(),
            stop: stop.clone(),
            stats: stats.clone(),
            encoder: Encoder::new(&cfg.encoder),
            collectors,
            retry: Duration::from_millis(cfg.retry_ms),
            clock: cfg.clock,
            now_ms: 0,
            pacer: Pacer::new(cfg.max_packets_per_sec),
        };
        let thread = std::thread::Builder::new()
            .name("xdpacct-export".into())
            .spawn(move || worker.run())
            .map_err(ExportError::Spawn)?;
        Ok(FlowExporter {
            tx,
            spare_tx,
            spare_rx,
            stop,
            thread: Some(thread),
            stats,
            batch_size: cfg.batch_size,
            batch_delay_ms: cfg.batch_delay_ms,
        })
    }

    /// A sink for one shard; `stats` is the shard's (shared with its `FlowCache`).
    /// Allocates [`SPARE_BATCHES_PER_SINK`] record batches up front, so that
    /// a worker allocates none in steady state.
    pub fn sink(&self, stats: Arc<FlowStats>) -> FlowSink {
        for _ in 0..SPARE_BATCHES_PER_SINK {
            // A full spare channel already holds enough.
            let _ = self.spare_tx.try_send(Vec::with_capacity(self.batch_size));
        }
        FlowSink::new(
            self.tx.clone(),
            self.spare_rx.clone(),
            self.batch_size,
            self.batch_delay_ms,
            stats,
        )
    }

    pub fn stats(&self) -> &Arc<ExporterStats> {
        &self.stats
    }

    /// Drains the channel, sends everything and stops the thread. Flush the
    /// caches and sinks first (`FlowCache::flush_all`, `FlowSink::flush`).
    pub fn shutdown(mut self) -> Result<(), ExportError> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Result<(), ExportError> {
        self.stop.store(true, Ordering::Release);
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| ExportError::Panicked),
            None => Ok(()),
        }
    }
}

impl Drop for FlowExporter {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}

/// Spaces packets out to at most `pps` per second (bursts of up to 1 ms).
struct Pacer {
    pps: u32,
    start: Option<Instant>,
    sent: u64,
}

impl Pacer {
    fn new(pps: u32) -> Self {
        Pacer {
            pps,
            start: None,
            sent: 0,
        }
    }

    fn wait(&mut self) {
        if self.pps == 0 {
            return;
        }
        let now = Instant::now();
        let start = *self.start.get_or_insert(now);
        let due = start + Duration::from_secs_f64(self.sent as f64 / f64::from(self.pps));
        if due > now + Duration::from_millis(1) {
            std::thread::sleep(due - now);
        } else if now > due + Duration::from_millis(100) {
            // Idle for a while: do not save up a burst.
            self.start = Some(now);
            self.sent = 0;
        }
        self.sent += 1;
    }
}

struct ExportThread {
    rx: Receiver<Vec<FlowRecord>>,
    spare_tx: Sender<Vec<FlowRecord>>,
    stop: Arc<AtomicBool>,
    stats: Arc<ExporterStats>,
    encoder: Encoder,
    collectors: Vec<Collector>,
    retry: Duration,
    clock: ExportClock,
    now_ms: u64,
    pacer: Pacer,
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl ExportThread {
    fn run(&mut self) {
        loop {
            match self.rx.recv_timeout(Duration::from_millis(100)) {
                Ok(batch) => {
                    self.handle(batch);
                    while let Ok(batch) = self.rx.try_recv() {
                        self.handle(batch);
                    }
                    // The channel is empty: do not hold back a partial packet.
                    self.flush();
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if self.stop.load(Ordering::Acquire) && self.rx.is_empty() {
                break;
            }
        }
        while let Ok(batch) = self.rx.try_recv() {
            self.handle(batch);
        }
        self.flush();
    }

    fn handle(&mut self, batch: Vec<FlowRecord>) {
        self.stats.records_received.add(batch.len() as u64);
        if self.clock == ExportClock::Wall {
            self.now_ms = wall_ms();
        }
        for r in &batch {
            if self.clock == ExportClock::Records {
                self.now_ms = self.now_ms.max(r.last_ms);
            }
            // Finish a full packet here rather than inside `push`, so that a
            // collector whose pause is over is resumed between packets and
            // its first packet starts with the templates.
            if self.encoder.pending_records() > 0 && !self.encoder.fits(r) {
                self.flush_packet();
            }
            if self.encoder.pending_records() == 0 && resume_collectors(&mut self.collectors) {
                self.encoder.force_templates();
            }
            let (collectors, stats, pacer, retry) = (
                &mut self.collectors,
                &self.stats,
                &mut self.pacer,
                self.retry,
            );
            self.encoder.push(r, self.now_ms, &mut |p, n| {
                send_all(collectors, stats, pacer, retry, p, n);
            });
        }
        let _ = self.spare_tx.try_send(batch);
    }

    fn flush(&mut self) {
        if self.clock == ExportClock::Wall {
            self.now_ms = wall_ms();
        }
        self.flush_packet();
        self.stats.templates_sent.set(self.encoder.templates_sent());
    }

    /// Sends the packet being built, if it holds any record.
    fn flush_packet(&mut self) {
        let (collectors, stats, pacer, retry) = (
            &mut self.collectors,
            &self.stats,
            &mut self.pacer,
            self.retry,
        );
        self.encoder.flush(self.now_ms, &mut |p, n| {
            send_all(collectors, stats, pacer, retry, p, n);
        });
    }
}

/// Ends the pause of every collector whose `retry_ms` is over. Called only
/// before a packet is started; returns true when one was resumed (that
/// packet must then carry the templates).
fn resume_collectors(collectors: &mut [Collector]) -> bool {
    if collectors.iter().all(|c| c.down_until.is_none()) {
        return false;
    }
    let now = Instant::now();
    let mut resumed = false;
    for c in collectors.iter_mut() {
        if c.down_until.is_some_and(|until| now >= until) {
            c.down_until = None;
            resumed = true;
            tracing::info!(collector = %c.name, "flow export: trying this collector again");
        }
    }
    resumed
}

/// Sends one packet to every collector that is not paused after an error.
fn send_all(
    collectors: &mut [Collector],
    stats: &ExporterStats,
    pacer: &mut Pacer,
    retry: Duration,
    pkt: &[u8],
    records: u32,
) {
    pacer.wait();
    let now = Instant::now();
    let mut delivered = false;
    for c in collectors.iter_mut().filter(|c| c.down_until.is_none()) {
        match c.sock.send(pkt) {
            Ok(_) => {
                delivered = true;
                stats.packets_sent.add(1);
            }
            Err(e) => {
                stats.send_errors.add(1);
                tracing::warn!(collector = %c.name, error = %e, retry_ms = retry.as_millis() as u64,
                    "flow export: send failed, pausing this collector");
                c.down_until = Some(now + retry);
            }
        }
    }
    if delivered {
        stats.records_exported.add(u64::from(records));
    } else {
        stats.records_dropped_send_error.add(u64::from(records));
    }
}

#[cfg(test)]
mod tests {
    use super::super::decode::Decoder;
    use super::super::{FlowKey, Version};
    use super::*;
    use crate::wire::L3Addrs;

    fn rec(i: u32) -> FlowRecord {
        FlowRecord {
            key: FlowKey {
                addrs: L3Addrs::V4 {
                    src: i.to_be_bytes(),
                    dst: [192, 0, 2, 1],
                },
                protocol: 17,
                src_port: 53,
                dst_port: 5353,
                ..FlowKey::default()
            },
            packets: 1,
            bytes: 100,
            first_ms: 1_700_000_000_000,
            last_ms: 1_700_000_000_500,
            ..FlowRecord::default()
        }
    }

    #[test]
    fn exports_to_a_udp_collector_and_flushes_on_shutdown() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        server.set_read_timeout(Some(Duration::from_secs(5))).ok();
        let port = server.local_addr().map(|a| a.port()).unwrap_or(0);
        let cfg = ExporterConfig {
            collectors: vec![format!("127.0.0.1:{port}")],
            encoder: EncoderConfig {
                version: Version::V9,
                ..EncoderConfig::default()
            },
            clock: ExportClock::Records,
            ..ExporterConfig::default()
        };
        let exp = FlowExporter::start(&cfg).unwrap_or_else(|e| panic!("{e}"));
        let stats = Arc::new(FlowStats::default());
        let mut sink = exp.sink(stats.clone());
        for i in 0..1000 {
            sink.push(rec(i));
        }
        sink.flush();
        drop(sink);
        let es = exp.stats().clone();
        assert!(exp.shutdown().is_ok());
        assert_eq!(stats.records_queued.get(), 1000);
        assert_eq!(es.records_exported.get(), 1000);
        let mut dec = Decoder::default();
        let mut got = 0;
        let mut buf = vec![0xa5u8; 65536];
        while got < 1000 {
            let n = server
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("recv after {got}: {e}"));
            let d = dec.decode(&buf[..n]).unwrap_or_else(|e| panic!("{e:?}"));
            got += d.records.len();
        }
        assert_eq!(got, 1000);
        assert!(es.packets_sent.get() >= 35);
    }

    #[test]
    fn a_refusing_collector_is_counted_and_retried() {
        // A port nobody listens on: the first send succeeds, the kernel then
        // reports ECONNREFUSED on a later one.
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        let port = probe.local_addr().map(|a| a.port()).unwrap_or(0);
        drop(probe);
        let cfg = ExporterConfig {
            collectors: vec![format!("127.0.0.1:{port}")],
            clock: ExportClock::Records,
            retry_ms: 60_000,
            batch_size: 1,
            ..ExporterConfig::default()
        };
        let exp = FlowExporter::start(&cfg).unwrap_or_else(|e| panic!("{e}"));
        let mut sink = exp.sink(Arc::new(FlowStats::default()));
        for i in 0..5 {
            sink.push(rec(i));
            std::thread::sleep(Duration::from_millis(30));
        }
        drop(sink);
        let es = exp.stats().clone();
        assert!(exp.shutdown().is_ok());
        assert_eq!(es.records_received.get(), 5);
        assert_eq!(es.send_errors.get(), 1);
        assert_eq!(
            es.records_exported.get() + es.records_dropped_send_error.get(),
            5
        );
        assert!(es.records_dropped_send_error.get() >= 3, "{es:?}");
    }

    #[test]
    fn a_resumed_collector_gets_the_templates_first() {
        let gone = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = gone.local_addr().unwrap_or_else(|e| panic!("{e}"));
        drop(gone);
        let cfg = ExporterConfig {
            collectors: vec![addr.to_string()],
            clock: ExportClock::Records,
            retry_ms: 300,
            batch_size: 1,
            ..ExporterConfig::default()
        };
        let exp = FlowExporter::start(&cfg).unwrap_or_else(|e| panic!("{e}"));
        let mut sink = exp.sink(Arc::new(FlowStats::default()));
        // While nobody listens: a send fails and the collector is paused.
        for i in 0..40 {
            sink.push(rec(i));
            sink.flush();
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(50));
        assert!(exp.stats().send_errors.get() >= 1);
        // A new collector on the same port, after the pause: its first
        // datagram must decode on its own (templates included).
        let back = UdpSocket::bind(addr).unwrap_or_else(|e| panic!("rebind: {e}"));
        back.set_read_timeout(Some(Duration::from_secs(5))).ok();
        std::thread::sleep(Duration::from_millis(400));
        for i in 100..200 {
            sink.push(rec(i));
        }
        sink.flush();
        drop(sink);
        assert!(exp.shutdown().is_ok());
        let mut buf = vec![0u8; 65536];
        let n = back.recv(&mut buf).unwrap_or_else(|e| panic!("recv: {e}"));
        let d = Decoder::default()
            .decode(&buf[..n])
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert!(
            !d.records.is_empty(),
            "first packet after the return had no usable records"
        );
        let from_second_batch = (100..200).any(|i| d.records[0].key.addrs == rec(i).key.addrs);
        assert!(from_second_batch, "{:?}", d.records[0]);
    }
}

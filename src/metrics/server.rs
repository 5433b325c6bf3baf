//! GET /metrics (gzip on request), / and /healthz, served by hyper on a
//! small tokio runtime of its own thread; HTTPS and basic auth when a
//! [`WebConfig`] is given.
//!
//! Hardened against slow and flooding clients, so that a scrape still gets
//! through: request headers are capped ([`Limits::max_header_bytes`]); a
//! connection that has no request in progress is closed after
//! [`Limits::idle_timeout`] (this covers the TLS handshake and the first
//! request header); a request must be answered within
//! [`Limits::request_timeout`]; and at [`Limits::max_connections`] each new
//! connection closes an older one: first the oldest that never sent a
//! request, then the oldest waiting for a password check, then the oldest
//! idle keep-alive one, then the one whose answer has waited longest (at
//! least a second) for the client to read. A connection whose request is
//! being answered and read is never closed for a newcomer; when every one
//! is, the newcomer is closed. Malformed requests get hyper's 400/414/431;
//! an HTTP/1.1 request without exactly one `Host` gets 400.
//!
//! Memory does not grow with clients. Concurrent scrapes share one render
//! ([`Pages`]: single flight): a scrape arriving while a page is rendered
//! waits for it (one arriving within [`PAGE_REUSE`] after it, zero, would
//! get the same page), and every answer is sent from the page's shared buffer (plain and
//! gzip), [`BODY_CHUNK`] bytes at a time, by reference, never copied. A
//! client that takes nothing for [`Limits::send_stall_timeout`] is closed,
//! and so is one still reading [`Limits::request_timeout`] after its
//! request. At most two pages exist at once: while an older page is still
//! being sent to someone, a scrape is answered with the newest page even
//! past [`PAGE_REUSE`] (so under a flood of non-reading clients a page can
//! be up to the request timeout old) rather than rendering a third. So the
//! memory is two pages and their gzip, plus per connection hyper's
//! [`Limits::max_header_bytes`] buffers and one chunk reference, plus in
//! the kernel a send buffer capped by [`SEND_BUFFER`].
//!
//! Allocates per connection and per render (not per scrape); no unsafe;
//! does not panic on client input.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::header::{
    HeaderValue, ACCEPT_ENCODING, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HOST, RETRY_AFTER,
    VARY, WWW_AUTHENTICATE,
};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, Version};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{watch, Notify};

use super::web_config::{BasicAuth, Verdict, WebConfig};
use super::Exposition;

const INDEX: &str = "<!doctype html><html><head><title>xdpacct</title></head><body>\
<h1>xdpacct</h1><p>Exact traffic accounting.</p><p><a href=\"/metrics\">Metrics</a></p></body></html>\n";

/// Pending connections the kernel queues before `accept` (capped by
/// net.core.somaxconn). Large, so a burst of connections cannot push the
/// scraper's SYN out of the queue (a dropped SYN costs it a 1 s retry).
const LISTEN_BACKLOG: u32 = 4096;

/// Largest piece of a body handed to hyper at once. hyper buffers one piece
/// (its write buffer is capped by [`Limits::max_header_bytes`]) and asks
/// for the next only once the socket took it, so a client that does not
/// read holds at most one piece, by reference.
pub const BODY_CHUNK: usize = 64 * 1024;

/// How long after a render finished its page still answers new scrapes.
/// Zero: a scrape never gets counts from before it arrived, except while
/// it shares a render already running (scrapers arriving together, an HA
/// pair or a flood, still share one render) or while two pages are alive
/// (below). A positive reuse made a scrape right after an event (a counter
/// the test or operator just changed) show the state of up to a second ago.
pub const PAGE_REUSE: Duration = Duration::ZERO;

/// Kernel send buffer of each connection, in bytes asked (Linux doubles
/// it), inherited from the listening socket. Without a cap the kernel grows
/// it to megabytes: 300 clients that do not read held 2.7 MB each (800 MB
/// of kernel memory). 256 connections now hold at most 64 MB; a scraper
/// 50 ms away still reads 5 MB/s.
pub const SEND_BUFFER: u32 = 128 * 1024;

/// An answer whose client has taken nothing for this long may be closed
/// for a newcomer when the connections are at their cap.
const STALLED_MS: u64 = 1000;

/// Bounds that keep slow or flooding clients from starving the scraper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Connections held open at once; at the cap a new connection closes an
    /// older one that is not being answered. Defaults to 256.
    pub max_connections: usize,
    /// Time a connection may spend without a request in progress: TLS
    /// handshake plus first request header, or idle keep-alive between
    /// requests. Defaults to 5 s.
    pub idle_timeout: Duration,
    /// Time from a complete request header to the last byte of the answer
    /// taken by the socket, password check and render included. Defaults to
    /// 30 s.
    pub request_timeout: Duration,
    /// Time an answer may wait for the client to take (read) more of it;
    /// then the connection is closed. Defaults to 10 s.
    pub send_stall_timeout: Duration,
    /// Largest request head in bytes (hyper's read buffer; at least 8192).
    /// Bigger heads get 431. Defaults to 16384.
    pub max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 256,
            idle_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            send_stall_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
        }
    }
}

/// What [`MetricsServer::start_with`] serves beyond the defaults.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// HTTPS and basic auth (`metrics.web_config`). Defaults to none: plain HTTP, no auth.
    pub web: Option<WebConfig>,
    /// Connection and request bounds. Defaults to [`Limits::default`].
    pub limits: Limits,
    /// Answers `GET /api/...` (the billing API), behind the same web
    /// config as /metrics. Defaults to none (404).
    pub api: Option<Arc<dyn ApiHandler>>,
}

/// A handler of `GET /api/...` requests, run on a blocking thread.
pub trait ApiHandler: Send + Sync + std::fmt::Debug {
    /// (status, content type, body) for a path and its query string.
    fn get(&self, path: &str, query: Option<&str>) -> (u16, &'static str, Vec<u8>);
}

impl ServerOptions {
    /// The default limits with this web config.
    pub fn with_web(web: Option<WebConfig>) -> Self {
        ServerOptions {
            web,
            ..ServerOptions::default()
        }
    }
}

/// A running HTTP server; stops when dropped or `stop` is set.
pub struct MetricsServer {
    pub local_addr: SocketAddr,
    thread: Option<std::thread::JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    wake: Arc<Notify>,
}

/// The metrics socket, bound and listening but not served yet; starts no
/// thread. Bind it before dropping privileges (a port below 1024 needs
/// `CAP_NET_BIND_SERVICE` for the bind only) and serve it after, so the
/// capability need not be kept (see `crate::privileges`).
pub struct MetricsListener {
    rt: tokio::runtime::Runtime,
    listener: tokio::net::TcpListener,
    local_addr: SocketAddr,
}

impl MetricsListener {
    /// Binds now, so a busy port or a missing capability is a start-up error.
    pub fn bind(listen: SocketAddr) -> std::io::Result<MetricsListener> {
        // A current-thread runtime starts no thread until it serves.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .max_blocking_threads(4)
            .build()?;
        let listener = {
            let _enter = rt.enter();
            let socket = if listen.is_ipv4() {
                tokio::net::TcpSocket::new_v4()?
            } else {
                tokio::net::TcpSocket::new_v6()?
            };
            socket.set_reuseaddr(true)?;
            socket.set_send_buffer_size(SEND_BUFFER)?;
            socket.bind(listen)?;
            socket.listen(LISTEN_BACKLOG)?
        };
        let local_addr = listener.local_addr()?;
        Ok(MetricsListener {
            rt,
            listener,
            local_addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves on a thread of its own: HTTPS only when `options.web` has
    /// TLS, basic auth when it has users.
    pub fn serve(
        self,
        exposition: Exposition,
        options: ServerOptions,
    ) -> std::io::Result<MetricsServer> {
        let MetricsListener {
            rt,
            listener,
            local_addr,
        } = self;
        let stop = Arc::new(AtomicBool::new(false));
        let wake = Arc::new(Notify::new());
        let shared = Arc::new(Shared::new(exposition, options));
        let (stop2, wake2) = (stop.clone(), wake.clone());
        let thread = std::thread::Builder::new()
            .name("xdpacct-http".into())
            .spawn(move || rt.block_on(accept_loop(listener, shared, stop2, wake2)))?;
        Ok(MetricsServer {
            local_addr,
            thread: Some(thread),
            stop,
            wake,
        })
    }
}

impl MetricsServer {
    /// Binds now (so a busy port is a start-up error) and serves plain HTTP
    /// on a thread, with the default limits.
    pub fn start(listen: SocketAddr, exposition: Exposition) -> std::io::Result<MetricsServer> {
        Self::start_with(listen, exposition, ServerOptions::default())
    }

    /// [`MetricsListener::bind`] then [`MetricsListener::serve`].
    pub fn start_with(
        listen: SocketAddr,
        exposition: Exposition,
        options: ServerOptions,
    ) -> std::io::Result<MetricsServer> {
        MetricsListener::bind(listen)?.serve(exposition, options)
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Relaxed);
        self.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Everything the connection tasks share.
struct Shared {
    exposition: Exposition,
    pages: Pages,
    tls: Option<tokio_rustls::TlsAcceptor>,
    auth: Option<Arc<BasicAuth>>,
    limits: Limits,
    api: Option<Arc<dyn ApiHandler>>,
    epoch: Instant,
    /// Open connections by id; ids grow, so the first is the oldest.
    conns: Mutex<BTreeMap<u64, Arc<Conn>>>,
}

impl Shared {
    fn new(exposition: Exposition, options: ServerOptions) -> Shared {
        let mut limits = options.limits;
        limits.max_connections = limits.max_connections.max(1);
        limits.max_header_bytes = limits.max_header_bytes.max(8192);
        Shared {
            exposition,
            pages: Pages::new(),
            tls: options
                .web
                .as_ref()
                .and_then(|w| w.tls())
                .map(tokio_rustls::TlsAcceptor::from),
            auth: options.web.as_ref().and_then(|w| w.auth()),
            limits,
            api: options.api,
            epoch: Instant::now(),
            conns: Mutex::new(BTreeMap::new()),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn conns(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Closes one connection to make room, by the policy in the module doc.
    /// False when every connection is answering a request that is read.
    fn evict_one(&self) -> bool {
        self.evict_one_at(self.now_ms())
    }

    fn evict_one_at(&self, now_ms: u64) -> bool {
        let mut conns = self.conns();
        let mut victim = [Phase::New, Phase::Auth, Phase::Idle]
            .iter()
            .find_map(|&phase| {
                conns
                    .iter()
                    .find(|(_, c)| c.phase() == phase)
                    .map(|(&id, _)| id)
            });
        if victim.is_none() {
            // The answer whose client has read nothing for longest.
            victim = conns
                .iter()
                .filter(|(_, c)| c.phase() == Phase::Send)
                .map(|(&id, c)| (c.since_ms.load(Relaxed), id))
                .filter(|&(since, _)| now_ms.saturating_sub(since) >= STALLED_MS)
                .min()
                .map(|(_, id)| id);
        }
        match victim.and_then(|id| conns.remove(&id)) {
            Some(c) => {
                c.kill.notify_one();
                true
            }
            None => false,
        }
    }
}

/// One rendered page, plain and gzip, in buffers shared by every answer.
struct Page {
    text: Bytes,
    gzip: Bytes,
    /// Dies when the last reference to either buffer goes, wherever it is
    /// (a response, hyper's write buffer).
    alive: Weak<()>,
    finished: Instant,
}

/// Owns a page buffer for [`Bytes::from_owner`], with the page's token.
struct PageBuf {
    bytes: Vec<u8>,
    _alive: Arc<()>,
}

impl AsRef<[u8]> for PageBuf {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

/// Renders the page and its gzip; None when rendering panicked.
fn render_page(exposition: &Exposition) -> Option<Page> {
    let text =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| exposition.render())).ok()?;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(text.len() / 8),
        flate2::Compression::fast(),
    );
    enc.write_all(&text).ok()?;
    let gzip = enc.finish().ok()?;
    let alive = Arc::new(());
    Some(Page {
        alive: Arc::downgrade(&alive),
        text: Bytes::from_owner(PageBuf {
            bytes: text,
            _alive: alive.clone(),
        }),
        gzip: Bytes::from_owner(PageBuf {
            bytes: gzip,
            _alive: alive,
        }),
        finished: Instant::now(),
    })
}

/// Single flight for the scrape page: at most one render runs, concurrent
/// scrapes share its page, and at most two pages exist (module doc).
struct Pages {
    state: Mutex<PagesState>,
    /// Bumped when a render ends; scrapes waiting for it watch this.
    done: watch::Sender<u64>,
}

#[derive(Default)]
struct PagesState {
    latest: Option<Arc<Page>>,
    /// When the last render failed (answered 500 for [`PAGE_REUSE`]).
    failed_at: Option<Instant>,
    rendering: bool,
    /// Earlier pages that some answer may still be sending.
    superseded: Vec<Weak<()>>,
}

/// What a scrape does next, decided under the lock.
enum Next {
    Ready(Arc<Page>),
    Failed,
    /// A render is running: wait for it.
    Wait,
    /// This scrape starts the render (and then waits for it).
    Render,
}

impl Pages {
    fn new() -> Pages {
        Pages {
            state: Mutex::default(),
            done: watch::channel(0).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PagesState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What a scrape that arrived at `arrived` does at `now`: take a page
    /// whose render ended after it arrived (it waited for that render) or
    /// within [`PAGE_REUSE`], answer 500 if that render failed, wait for the
    /// render running, or render.
    fn next(&self, arrived: Instant, now: Instant) -> Next {
        let mut st = self.lock();
        st.superseded.retain(|w| w.strong_count() > 0);
        let fresh = |t: Instant| t >= arrived || now.saturating_duration_since(t) < PAGE_REUSE;
        let finished = st.latest.as_ref().map(|p| p.finished);
        match (finished, st.failed_at) {
            (_, Some(f)) if fresh(f) && finished.map_or(true, |p| f > p) => return Next::Failed,
            (Some(p), _) if fresh(p) => {
                return Next::Ready(st.latest.clone().expect("latest present"))
            }
            _ => {}
        }
        if st.rendering {
            return Next::Wait;
        }
        if let (Some(p), false) = (&st.latest, st.superseded.is_empty()) {
            // An older page is still being sent: a new render would make a
            // third. The newest page it is.
            return Next::Ready(p.clone());
        }
        st.rendering = true;
        Next::Render
    }

    /// Publishes the end of the render started by [`Next::Render`].
    fn finish(&self, page: Option<Page>, now: Instant) {
        let mut st = self.lock();
        st.rendering = false;
        let old = match page {
            Some(p) => {
                st.failed_at = None;
                st.latest.replace(Arc::new(p))
            }
            None => {
                st.failed_at = Some(now);
                None
            }
        };
        if let Some(old) = &old {
            st.superseded.push(old.alive.clone());
        }
        drop(st);
        drop(old);
        self.done.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// Buffers of pages alive now (tests).
    #[cfg(test)]
    fn live(&self) -> usize {
        let st = self.lock();
        st.superseded
            .iter()
            .filter(|w| w.strong_count() > 0)
            .count()
            + st.latest
                .as_ref()
                .map_or(0, |p| p.alive.strong_count().min(1))
    }
}

/// The page for a scrape: the fresh one, the one being rendered, or a new
/// render. None when the render failed.
async fn page(shared: &Arc<Shared>) -> Option<Arc<Page>> {
    let arrived = Instant::now();
    let mut done = shared.pages.done.subscribe();
    loop {
        match shared.pages.next(arrived, Instant::now()) {
            Next::Ready(p) => return Some(p),
            Next::Failed => return None,
            Next::Wait => {}
            Next::Render => {
                // Off the reactor (it walks every shard), and detached: a
                // scrape that goes away does not cancel the render others
                // wait for.
                let s = shared.clone();
                tokio::task::spawn_blocking(move || {
                    let page = render_page(&s.exposition);
                    s.pages.finish(page, Instant::now());
                });
            }
        }
        // Marked seen at subscribe, so a render that ended in between wakes us.
        done.changed().await.ok()?;
    }
}

/// Where a connection stands, for timeouts and eviction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Phase {
    /// Accepted; no complete request header yet (TLS handshake included).
    New = 0,
    /// A request is being answered (render included).
    Busy = 1,
    /// A request is waiting for the bcrypt permit or check.
    Auth = 2,
    /// Keep-alive between requests (at least one answered).
    Idle = 3,
    /// The answer's body is being taken by the socket; `since_ms` is when
    /// the last piece was taken.
    Send = 4,
}

struct Conn {
    phase: AtomicU8,
    /// Milliseconds since `Shared::epoch` when `phase` was entered (for
    /// `Send`: when the client last made room for a piece).
    since_ms: AtomicU64,
    /// Milliseconds since `Shared::epoch` when the current request's head
    /// was complete.
    request_ms: AtomicU64,
    kill: Notify,
}

impl Conn {
    fn new(now_ms: u64) -> Conn {
        Conn {
            phase: AtomicU8::new(Phase::New as u8),
            since_ms: AtomicU64::new(now_ms),
            request_ms: AtomicU64::new(now_ms),
            kill: Notify::new(),
        }
    }

    fn phase(&self) -> Phase {
        match self.phase.load(Relaxed) {
            0 => Phase::New,
            1 => Phase::Busy,
            2 => Phase::Auth,
            3 => Phase::Idle,
            _ => Phase::Send,
        }
    }

    fn enter(&self, phase: Phase, now_ms: u64) {
        self.since_ms.store(now_ms, Relaxed);
        self.phase.store(phase as u8, Relaxed);
    }

    /// A request head is complete: the request timeout starts.
    fn begin_request(&self, now_ms: u64) {
        self.request_ms.store(now_ms, Relaxed);
        self.enter(Phase::Busy, now_ms);
    }

    /// When the current phase runs out, in ms since the epoch.
    fn deadline_ms(&self, limits: &Limits) -> u64 {
        let ms = |d: Duration| d.as_millis() as u64;
        let since = self.since_ms.load(Relaxed);
        let request_end = self
            .request_ms
            .load(Relaxed)
            .saturating_add(ms(limits.request_timeout));
        match self.phase() {
            Phase::New | Phase::Idle => since.saturating_add(ms(limits.idle_timeout)),
            Phase::Busy | Phase::Auth => request_end,
            Phase::Send => since
                .saturating_add(ms(limits.send_stall_timeout))
                .min(request_end),
        }
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    wake: Arc<Notify>,
) {
    let mut next_id = 0u64;
    while !stop.load(Relaxed) {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = wake.notified() => continue,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of file descriptors (or similar): make room, back off.
                tracing::warn!("metrics accept: {e}");
                shared.evict_one();
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        if shared.conns().len() >= shared.limits.max_connections && !shared.evict_one() {
            drop(stream); // Every connection is being answered: no room.
            continue;
        }
        let _ = stream.set_nodelay(true);
        next_id += 1;
        let conn = Arc::new(Conn::new(shared.now_ms()));
        shared.conns().insert(next_id, conn.clone());
        tokio::spawn(serve_connection(stream, shared.clone(), next_id, conn));
        // Let every ready connection run before the next accept: a new
        // connection whose request is already in its socket buffer becomes
        // Busy (not evictable) at its first poll, before a flood of later
        // connections can make it the oldest.
        tokio::task::yield_now().await;
    }
}

/// Serves one connection until it ends, times out or is evicted.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    shared: Arc<Shared>,
    id: u64,
    conn: Arc<Conn>,
) {
    let work = {
        let (shared, conn) = (shared.clone(), conn.clone());
        async move {
            match shared.tls.clone() {
                Some(acceptor) => {
                    if let Ok(tls) = acceptor.accept(stream).await {
                        serve_http(tls, shared, conn).await;
                    }
                }
                None => serve_http(stream, shared, conn).await,
            }
        }
    };
    tokio::pin!(work);
    loop {
        let deadline = shared.epoch + Duration::from_millis(conn.deadline_ms(&shared.limits));
        tokio::select! {
            _ = &mut work => break,
            _ = conn.kill.notified() => break,
            _ = tokio::time::sleep_until(deadline.into()) => {
                // The phase may have moved on since the deadline was taken.
                if shared.now_ms() >= conn.deadline_ms(&shared.limits) {
                    break;
                }
            }
        }
    }
    // Dropping `work` closes the socket.
    shared.conns().remove(&id);
}

async fn serve_http<S>(io: S, shared: Arc<Shared>, conn: Arc<Conn>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = {
        let shared = shared.clone();
        service_fn(move |req| handle(req, shared.clone(), conn.clone()))
    };
    let _ = http1::Builder::new()
        .max_buf_size(shared.limits.max_header_bytes)
        .header_read_timeout(shared.limits.idle_timeout)
        .timer(hyper_util::rt::TokioTimer::new())
        .serve_connection(TokioIo::new(io), svc)
        .await;
}

/// A response body handed to hyper [`BODY_CHUNK`] bytes at a time, each a
/// reference into the shared buffer. Each piece taken marks progress (the
/// stall timeout restarts); once hyper has the last piece the connection
/// is idle, so the request timeout covers the whole answer.
struct TrackedBody {
    rest: Bytes,
    busy: BusyGuard,
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.rest.is_empty() {
            return Poll::Ready(None);
        }
        let n = self.rest.len().min(BODY_CHUNK);
        let piece = self.rest.split_to(n);
        let now = self.busy.shared.now_ms();
        self.busy.conn.enter(Phase::Send, now);
        Poll::Ready(Some(Ok(Frame::data(piece))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.rest.len() as u64)
    }
}

/// Puts its connection in `Busy` while alive, `Idle` when dropped.
struct BusyGuard {
    shared: Arc<Shared>,
    conn: Arc<Conn>,
}

impl BusyGuard {
    fn new(shared: Arc<Shared>, conn: Arc<Conn>) -> Self {
        conn.begin_request(shared.now_ms());
        BusyGuard { shared, conn }
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.conn.enter(Phase::Idle, self.shared.now_ms());
    }
}

async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    conn: Arc<Conn>,
) -> Result<Response<TrackedBody>, Infallible> {
    let busy = BusyGuard::new(shared.clone(), conn.clone());
    let response = route(req, &shared, &conn).await;
    Ok(response.map(|rest| TrackedBody { rest, busy }))
}

fn reply(status: StatusCode, ctype: &'static str, body: impl Into<Bytes>) -> Response<Bytes> {
    let mut r = Response::new(body.into());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

/// Content coding of a `/metrics` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coding {
    Gzip,
    Identity,
}

/// Picks the coding from the `Accept-Encoding` field lines (RFC 9110
/// §12.5.3), None when neither gzip nor identity is acceptable (answered
/// 406). No field: identity (any coding would be allowed, but plain text
/// is what a client that says nothing can read). `gzip`/`x-gzip` and `*`
/// give gzip its weight; identity is acceptable unless `identity;q=0`, or
/// `*;q=0` without an `identity` entry, says otherwise. gzip wins ties.
/// An entry with a malformed weight is ignored.
fn choose_coding<'a>(fields: impl Iterator<Item = &'a HeaderValue>) -> Option<Coding> {
    let (mut gzip, mut identity, mut star) = (None, None, None);
    for field in fields {
        let Ok(field) = field.to_str() else { continue };
        for entry in field.split(',') {
            let mut parts = entry.split(';');
            let coding = parts.next().unwrap_or("").trim();
            if coding.is_empty() {
                continue;
            }
            let mut q = Some(1000u16);
            for param in parts {
                let Some((k, v)) = param.split_once('=') else {
                    continue;
                };
                if k.trim().eq_ignore_ascii_case("q") {
                    q = qvalue(v.trim());
                }
            }
            let Some(q) = q else { continue };
            let slot =
                if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                    &mut gzip
                } else if coding.eq_ignore_ascii_case("identity") {
                    &mut identity
                } else if coding == "*" {
                    &mut star
                } else {
                    continue;
                };
            *slot = Some(slot.map_or(q, |old: u16| old.max(q)));
        }
    }
    let gzip = gzip.or(star).unwrap_or(0);
    let identity = identity.or(star).unwrap_or(1000);
    if gzip > 0 && gzip >= identity {
        Some(Coding::Gzip)
    } else if identity > 0 {
        Some(Coding::Identity)
    } else {
        None
    }
}

/// An RFC 9110 qvalue (`0`, `0.5`, `1.000`) in thousandths; None if malformed.
fn qvalue(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_value = frac.bytes().enumerate().fold(0u16, |acc, (i, b)| {
        acc + u16::from(b - b'0') * [100, 10, 1][i]
    });
    match int {
        "0" => Some(frac_value),
        "1" if frac_value == 0 => Some(1000),
        _ => None,
    }
}

async fn route(req: Request<Incoming>, shared: &Arc<Shared>, conn: &Conn) -> Response<Bytes> {
    // RFC 9112 §3.2: exactly one Host in HTTP/1.1, never more than one.
    let hosts = req.headers().get_all(HOST).iter().count();
    if hosts > 1 || (hosts == 0 && req.version() >= Version::HTTP_11) {
        return reply(
            StatusCode::BAD_REQUEST,
            "text/plain",
            &b"an HTTP/1.1 request needs exactly one Host header\n"[..],
        );
    }
    // /healthz stays open for load balancers: it tells nothing but "ok".
    if let (Some(auth), false) = (&shared.auth, req.uri().path() == "/healthz") {
        conn.enter(Phase::Auth, shared.now_ms());
        let verdict = auth
            .check(req.headers().get(AUTHORIZATION).map(|v| v.as_bytes()))
            .await;
        conn.enter(Phase::Busy, shared.now_ms());
        match verdict {
            Verdict::Allowed => {}
            Verdict::Denied => {
                let mut r = reply(
                    StatusCode::UNAUTHORIZED,
                    "text/plain",
                    &b"unauthorized\n"[..],
                );
                r.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"xdpacct\", charset=\"UTF-8\""),
                );
                return r;
            }
            Verdict::Busy => {
                let mut r = reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    &b"too many password checks; retry\n"[..],
                );
                r.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("1"));
                return r;
            }
        }
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            &b"only GET\n"[..],
        );
    }
    match req.uri().path() {
        "/metrics" => {
            let coding = choose_coding(req.headers().get_all(ACCEPT_ENCODING).iter());
            let mut r = match coding {
                None => reply(
                    StatusCode::NOT_ACCEPTABLE,
                    "text/plain",
                    &b"the page is served as gzip or identity; Accept-Encoding refuses both\n"[..],
                ),
                Some(coding) => match page(shared).await {
                    None => reply(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "text/plain",
                        &b"rendering the metrics failed; see the log\n"[..],
                    ),
                    Some(page) => {
                        let body = match coding {
                            Coding::Gzip => page.gzip.clone(),
                            Coding::Identity => page.text.clone(),
                        };
                        let mut r = reply(
                            StatusCode::OK,
                            "text/plain; version=0.0.4; charset=utf-8",
                            body,
                        );
                        if coding == Coding::Gzip {
                            r.headers_mut()
                                .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                        }
                        r
                    }
                },
            };
            // The answer depends on Accept-Encoding: caches must key on it.
            r.headers_mut()
                .insert(VARY, HeaderValue::from_static("Accept-Encoding"));
            r
        }
        "/" => reply(StatusCode::OK, "text/html; charset=utf-8", INDEX.as_bytes()),
        "/healthz" => reply(StatusCode::OK, "text/plain", &b"ok\n"[..]),
        p if p.starts_with("/api/") && shared.api.is_some() => {
            let api = shared.api.clone().expect("checked above");
            let (path, query) = (p.to_string(), req.uri().query().map(str::to_string));
            match tokio::task::spawn_blocking(move || api.get(&path, query.as_deref())).await {
                Ok((status, ctype, body)) => reply(
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    ctype,
                    body,
                ),
                Err(_) => reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    &b"the API handler failed; see the log\n"[..],
                ),
            }
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            &b"not found; try /metrics\n"[..],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Connections in `phases` (ids from 1), each entered at `since[i]` ms.
    fn shared_with(phases: &[Phase], since: &[u64]) -> Shared {
        let shared = Shared::new(Exposition::new(), ServerOptions::default());
        for (i, &phase) in phases.iter().enumerate() {
            let conn = Conn::new(0);
            conn.enter(phase, since.get(i).copied().unwrap_or(0));
            shared.conns().insert(i as u64 + 1, Arc::new(conn));
        }
        shared
    }

    /// The ids evicted at `now_ms`, in order, and those left.
    fn evictions(shared: &Shared, now_ms: u64) -> (Vec<u64>, Vec<u64>) {
        let all: Vec<u64> = shared.conns().keys().copied().collect();
        let mut order = Vec::new();
        while shared.evict_one_at(now_ms) {
            let left: Vec<u64> = shared.conns().keys().copied().collect();
            let gone: Vec<u64> = all
                .iter()
                .copied()
                .filter(|id| !left.contains(id) && !order.contains(id))
                .collect();
            assert_eq!(gone.len(), 1, "one connection per eviction");
            order.extend(gone);
        }
        (order, shared.conns().keys().copied().collect())
    }

    #[test]
    fn eviction_takes_never_served_then_auth_then_idle_never_busy() {
        use Phase::*;
        let shared = shared_with(&[Idle, Busy, New, Auth, New, Idle], &[]);
        assert_eq!(evictions(&shared, 0), (vec![3, 5, 4, 1, 6], vec![2]));
    }

    /// Regression: 300 clients that sent GET /metrics and never read held
    /// every slot as "being answered", so the scraper was turned away.
    #[test]
    fn eviction_takes_stalled_senders_longest_stalled_first_never_reading_ones() {
        use Phase::*;
        // At 10 s: 2 took a piece at 5 s, 3 at 9.5 s (reading), 4 at 2 s.
        let shared = shared_with(&[Busy, Send, Send, Send], &[0, 5000, 9500, 2000]);
        assert_eq!(evictions(&shared, 10_000), (vec![4, 2], vec![1, 3]));
        // Idle first, even if a sender is stalled.
        let shared = shared_with(&[Send, Idle], &[0, 9000]);
        assert_eq!(evictions(&shared, 10_000), (vec![2, 1], vec![]));
    }

    #[test]
    fn deadline_follows_the_phase() {
        let limits = Limits::default();
        let conn = Conn::new(1000);
        assert_eq!(conn.deadline_ms(&limits), 1000 + 5000);
        conn.begin_request(2000);
        assert_eq!(conn.deadline_ms(&limits), 2000 + 30_000);
        // The password check counts toward the request.
        conn.enter(Phase::Auth, 2500);
        assert_eq!(conn.deadline_ms(&limits), 2000 + 30_000);
        // Sending: 10 s without progress, and never past the request's end.
        conn.enter(Phase::Send, 3000);
        assert_eq!(conn.deadline_ms(&limits), 3000 + 10_000);
        conn.enter(Phase::Send, 25_000);
        assert_eq!(conn.deadline_ms(&limits), 2000 + 30_000);
        conn.enter(Phase::Idle, 26_000);
        assert_eq!(conn.deadline_ms(&limits), 26_000 + 5000);
    }

    #[test]
    fn qvalues_parse_per_rfc_9110() {
        for (v, want) in [
            ("1", Some(1000)),
            ("1.", Some(1000)),
            ("1.000", Some(1000)),
            ("0", Some(0)),
            ("0.0", Some(0)),
            ("0.5", Some(500)),
            ("0.05", Some(50)),
            ("0.001", Some(1)),
            ("1.001", None),
            ("0.0001", None),
            ("2", None),
            ("-1", None),
            ("0.a", None),
            ("", None),
            (".5", None),
        ] {
            assert_eq!(qvalue(v), want, "{v:?}");
        }
    }

    /// Regression: `Accept-Encoding: gzip;q=0` still got gzip.
    #[test]
    fn coding_honours_q_values() {
        use Coding::*;
        let cases: &[(&[&str], Option<Coding>)] = &[
            (&[], Some(Identity)),
            (&[""], Some(Identity)),
            (&["gzip"], Some(Gzip)),
            (&["GZip"], Some(Gzip)),
            (&["x-gzip"], Some(Gzip)),
            (&["gzip, deflate, br"], Some(Gzip)),
            (&["deflate, br"], Some(Identity)),
            (&["gzip;q=0"], Some(Identity)),
            (&["gzip; q=0.000"], Some(Identity)),
            (&["gzip;q=0.5, identity;q=1"], Some(Identity)),
            (&["gzip;q=1, identity;q=0.5"], Some(Gzip)),
            (&["gzip;q=0.5"], Some(Identity)),
            (&["identity;q=0"], None),
            (&["gzip;q=0, identity;q=0"], None),
            (&["*;q=0"], None),
            (&["*;q=0, gzip"], Some(Gzip)),
            (&["*;q=0, identity"], Some(Identity)),
            (&["*"], Some(Gzip)),
            (&["gzip;q=0, *"], Some(Identity)),
            (&["identity;q=0, *"], Some(Gzip)),
            (&["gzip;q=bogus"], Some(Identity)),
            (&["gzip;q=0", "gzip"], Some(Gzip)),
            (&["identity;q=0", "gzip"], Some(Gzip)),
        ];
        for (fields, want) in cases {
            let values: Vec<HeaderValue> = fields
                .iter()
                .map(|f| HeaderValue::from_str(f).unwrap())
                .collect();
            assert_eq!(choose_coding(values.iter()), *want, "{fields:?}");
        }
    }

    #[test]
    fn body_goes_in_chunks_by_reference() {
        let shared = Arc::new(shared_with(&[], &[]));
        let conn = Arc::new(Conn::new(0));
        let page: Bytes = (0..(2 * BODY_CHUNK + 7)).map(|i| i as u8).collect();
        let mut body = TrackedBody {
            rest: page.clone(),
            busy: BusyGuard::new(shared.clone(), conn.clone()),
        };
        assert_eq!(body.size_hint().exact(), Some(page.len() as u64));
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut got = Vec::new();
        while let Poll::Ready(Some(Ok(frame))) = Pin::new(&mut body).poll_frame(&mut cx) {
            let data = frame.into_data().unwrap();
            // A slice of the page's own buffer, not a copy.
            let offset = data.as_ptr() as usize - page.as_ptr() as usize;
            assert_eq!(offset, got.iter().map(|d: &Bytes| d.len()).sum::<usize>());
            assert_eq!(conn.phase(), Phase::Send);
            got.push(data);
        }
        let sizes: Vec<usize> = got.iter().map(|d| d.len()).collect();
        assert_eq!(sizes, [BODY_CHUNK, BODY_CHUNK, 7]);
        assert!(body.is_end_stream());
        drop(body);
        assert_eq!(conn.phase(), Phase::Idle);
    }

    fn page_at(finished: Instant) -> (Page, Arc<()>) {
        let alive = Arc::new(());
        let page = Page {
            text: Bytes::from_owner(PageBuf {
                bytes: b"a 1\n".to_vec(),
                _alive: alive.clone(),
            }),
            gzip: Bytes::new(),
            alive: Arc::downgrade(&alive),
            finished,
        };
        (page, alive)
    }

    /// Regression: every scrape rendered its own page (28.8 MB each), so
    /// 300 non-reading clients took the daemon from 26 MB to 3.36 GB.
    #[test]
    fn scrapes_share_one_render_and_at_most_two_pages_live() {
        let pages = Pages::new();
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // `next(arrived, now)`; a scrape that does not wait has both equal.
        let now = |ms: u64| pages.next(at(ms), at(ms));
        assert!(matches!(now(0), Next::Render));
        // Everyone arriving during the render waits for it...
        assert!(matches!(now(10), Next::Wait));
        assert!(matches!(now(20), Next::Wait));
        let (p1, token1) = page_at(at(100));
        drop(token1);
        pages.finish(Some(p1), at(100));
        // ...and gets its page, no render of its own.
        let Next::Ready(a) = pages.next(at(10), at(100)) else {
            panic!()
        };
        let Next::Ready(b) = pages.next(at(20), at(101)) else {
            panic!()
        };
        assert!(Arc::ptr_eq(&a, &b));
        // A client keeps page 1's buffer (it does not read).
        let held1 = a.text.clone();
        drop((a, b));
        // A scrape arriving after it gets a new render (no counts older
        // than the request); page 1 stays alive meanwhile.
        assert!(matches!(now(200), Next::Render));
        let (p2, token2) = page_at(at(300));
        drop(token2);
        pages.finish(Some(p2), at(300));
        assert_eq!(pages.live(), 2);
        // Page 1 is still held: the newest page rather than a third.
        let Next::Ready(c) = now(2500) else { panic!() };
        assert_eq!(c.finished, at(300));
        drop(c);
        // Page 1 let go: rendering resumes.
        drop(held1);
        assert_eq!(pages.live(), 1);
        assert!(matches!(now(2600), Next::Render));
        assert!(matches!(now(2610), Next::Wait));
        // A failed render answers 500 to those who waited for it, and the
        // next scrape renders again.
        pages.finish(None, at(2650));
        assert!(matches!(pages.next(at(2610), at(2650)), Next::Failed));
        assert!(matches!(now(2700), Next::Render));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn concurrent_scrapes_wait_for_the_one_render() {
        let shared = Arc::new(shared_with(&[], &[]));
        let scrapes: Vec<_> = (0..20)
            .map(|_| {
                let s = shared.clone();
                tokio::spawn(async move { page(&s).await })
            })
            .collect();
        let mut got = Vec::new();
        for s in scrapes {
            got.push(s.await.unwrap().unwrap());
        }
        assert!(got.iter().all(|p| Arc::ptr_eq(p, &got[0])));
        assert!(String::from_utf8_lossy(&got[0].text).contains("xdpacct_build_info"));
        let mut plain = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(&got[0].gzip[..]),
            &mut plain,
        )
        .unwrap();
        assert_eq!(plain, got[0].text);
    }
}

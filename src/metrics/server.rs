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
//! idle keep-alive one. A connection whose request is being answered is
//! never closed for a newcomer; when every one is busy the newcomer is
//! closed. Malformed requests get hyper's 400/414/431.
//!
//! Allocates per connection and per scrape; no unsafe; does not panic on
//! client input.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::header::{
    ACCEPT_ENCODING, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE,
};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;

use super::web_config::{BasicAuth, Verdict, WebConfig};
use super::Exposition;

const INDEX: &str = "<!doctype html><html><head><title>xdpacct</title></head><body>\
<h1>xdpacct</h1><p>Exact traffic accounting.</p><p><a href=\"/metrics\">Metrics</a></p></body></html>\n";

/// Pending connections the kernel queues before `accept` (capped by
/// net.core.somaxconn). Large, so a burst of connections cannot push the
/// scraper's SYN out of the queue (a dropped SYN costs it a 1 s retry).
const LISTEN_BACKLOG: u32 = 4096;

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
    /// Time from a complete request header to the response handed to the
    /// socket, password check included. Defaults to 30 s.
    pub request_timeout: Duration,
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

impl MetricsServer {
    /// Binds now (so a busy port is a start-up error) and serves plain HTTP
    /// on a thread, with the default limits.
    pub fn start(listen: SocketAddr, exposition: Exposition) -> std::io::Result<MetricsServer> {
        Self::start_with(listen, exposition, ServerOptions::default())
    }

    /// Binds now (so a busy port is a start-up error) and serves on a
    /// thread: HTTPS only when `options.web` has TLS, basic auth when it has
    /// users.
    pub fn start_with(
        listen: SocketAddr,
        exposition: Exposition,
        options: ServerOptions,
    ) -> std::io::Result<MetricsServer> {
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
            socket.bind(listen)?;
            socket.listen(LISTEN_BACKLOG)?
        };
        let local_addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let wake = Arc::new(Notify::new());
        let mut limits = options.limits;
        limits.max_connections = limits.max_connections.max(1);
        limits.max_header_bytes = limits.max_header_bytes.max(8192);
        let shared = Arc::new(Shared {
            exposition,
            tls: options
                .web
                .as_ref()
                .and_then(|w| w.tls())
                .map(tokio_rustls::TlsAcceptor::from),
            auth: options.web.as_ref().and_then(|w| w.auth()),
            limits,
            epoch: Instant::now(),
            conns: Mutex::new(BTreeMap::new()),
        });
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
    tls: Option<tokio_rustls::TlsAcceptor>,
    auth: Option<Arc<BasicAuth>>,
    limits: Limits,
    epoch: Instant,
    /// Open connections by id; ids grow, so the first is the oldest.
    conns: Mutex<BTreeMap<u64, Arc<Conn>>>,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn conns(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Closes one connection to make room, by the policy in the module doc.
    /// False when every connection is answering a request.
    fn evict_one(&self) -> bool {
        let mut conns = self.conns();
        for phase in [Phase::New, Phase::Auth, Phase::Idle] {
            let victim = conns
                .iter()
                .find(|(_, c)| c.phase() == phase)
                .map(|(&id, _)| id);
            if let Some(id) = victim {
                if let Some(c) = conns.remove(&id) {
                    c.kill.notify_one();
                }
                return true;
            }
        }
        false
    }
}

/// Where a connection stands, for timeouts and eviction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Phase {
    /// Accepted; no complete request header yet (TLS handshake included).
    New = 0,
    /// A request is being answered.
    Busy = 1,
    /// A request is waiting for the bcrypt permit or check.
    Auth = 2,
    /// Keep-alive between requests (at least one answered).
    Idle = 3,
}

struct Conn {
    phase: AtomicU8,
    /// Milliseconds since `Shared::epoch` when `phase` was entered.
    since_ms: AtomicU64,
    kill: Notify,
}

impl Conn {
    fn phase(&self) -> Phase {
        match self.phase.load(Relaxed) {
            0 => Phase::New,
            1 => Phase::Busy,
            2 => Phase::Auth,
            _ => Phase::Idle,
        }
    }

    fn enter(&self, phase: Phase, now_ms: u64) {
        self.since_ms.store(now_ms, Relaxed);
        self.phase.store(phase as u8, Relaxed);
    }

    /// When the current phase runs out, in ms since the epoch.
    fn deadline_ms(&self, limits: &Limits) -> u64 {
        let limit = match self.phase() {
            Phase::New | Phase::Idle => limits.idle_timeout,
            Phase::Busy | Phase::Auth => limits.request_timeout,
        };
        self.since_ms
            .load(Relaxed)
            .saturating_add(limit.as_millis() as u64)
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
        let conn = Arc::new(Conn {
            phase: AtomicU8::new(Phase::New as u8),
            since_ms: AtomicU64::new(shared.now_ms()),
            kill: Notify::new(),
        });
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

/// A response body that marks its connection idle once hyper has taken it,
/// so the request timeout covers the whole answer.
struct TrackedBody {
    inner: Full<Bytes>,
    _busy: BusyGuard,
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Puts its connection in `Busy` while alive, `Idle` when dropped.
struct BusyGuard {
    shared: Arc<Shared>,
    conn: Arc<Conn>,
}

impl BusyGuard {
    fn new(shared: Arc<Shared>, conn: Arc<Conn>) -> Self {
        conn.enter(Phase::Busy, shared.now_ms());
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
    Ok(response.map(|inner| TrackedBody { inner, _busy: busy }))
}

fn reply(status: StatusCode, ctype: &'static str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, hyper::header::HeaderValue::from_static(ctype));
    r
}

async fn route(req: Request<Incoming>, shared: &Shared, conn: &Conn) -> Response<Full<Bytes>> {
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
                    b"unauthorized\n".to_vec(),
                );
                r.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    hyper::header::HeaderValue::from_static(
                        "Basic realm=\"xdpacct\", charset=\"UTF-8\"",
                    ),
                );
                return r;
            }
            Verdict::Busy => {
                let mut r = reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    b"too many password checks; retry\n".to_vec(),
                );
                r.headers_mut()
                    .insert(RETRY_AFTER, hyper::header::HeaderValue::from_static("1"));
                return r;
            }
        }
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            b"only GET\n".to_vec(),
        );
    }
    match req.uri().path() {
        "/metrics" => {
            let gzip = req
                .headers()
                .get(ACCEPT_ENCODING)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
            let exposition = shared.exposition.clone();
            // Rendering walks every shard: keep it off the async reactor.
            let body = tokio::task::spawn_blocking(move || {
                let text = exposition.render();
                if gzip {
                    let mut enc =
                        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                    enc.write_all(&text)
                        .and_then(|_| enc.finish())
                        .unwrap_or_default()
                } else {
                    text
                }
            })
            .await
            .unwrap_or_default();
            let mut r = reply(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                body,
            );
            if gzip {
                r.headers_mut().insert(
                    CONTENT_ENCODING,
                    hyper::header::HeaderValue::from_static("gzip"),
                );
            }
            r
        }
        "/" => reply(
            StatusCode::OK,
            "text/html; charset=utf-8",
            INDEX.as_bytes().to_vec(),
        ),
        "/healthz" => reply(StatusCode::OK, "text/plain", b"ok\n".to_vec()),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            b"not found; try /metrics\n".to_vec(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared_with(phases: &[Phase]) -> Shared {
        let shared = Shared {
            exposition: Exposition::new(),
            tls: None,
            auth: None,
            limits: Limits::default(),
            epoch: Instant::now(),
            conns: Mutex::new(BTreeMap::new()),
        };
        for (i, &phase) in phases.iter().enumerate() {
            let conn = Conn {
                phase: AtomicU8::new(phase as u8),
                since_ms: AtomicU64::new(0),
                kill: Notify::new(),
            };
            shared.conns().insert(i as u64 + 1, Arc::new(conn));
        }
        shared
    }

    #[test]
    fn eviction_takes_never_served_then_auth_then_idle_never_busy() {
        use Phase::*;
        let shared = shared_with(&[Idle, Busy, New, Auth, New, Idle]);
        let mut order = Vec::new();
        while shared.evict_one() {
            let left: Vec<u64> = shared.conns().keys().copied().collect();
            order.push(
                (1..=6)
                    .find(|id| !left.contains(id) && !order.contains(id))
                    .unwrap(),
            );
        }
        assert_eq!(order, [3, 5, 4, 1, 6]);
        assert_eq!(shared.conns().keys().copied().collect::<Vec<_>>(), [2]);
    }

    #[test]
    fn deadline_follows_the_phase() {
        let limits = Limits::default();
        let conn = Conn {
            phase: AtomicU8::new(Phase::New as u8),
            since_ms: AtomicU64::new(1000),
            kill: Notify::new(),
        };
        assert_eq!(conn.deadline_ms(&limits), 1000 + 5000);
        conn.enter(Phase::Busy, 2000);
        assert_eq!(conn.deadline_ms(&limits), 2000 + 30_000);
        conn.enter(Phase::Idle, 3000);
        assert_eq!(conn.deadline_ms(&limits), 3000 + 5000);
    }
}

//! GET /metrics (gzip on request), / and /healthz, served by hyper on a
//! small tokio runtime of its own thread.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use super::Exposition;

const INDEX: &str = "<!doctype html><html><head><title>xdpacct</title></head><body>\
<h1>xdpacct</h1><p>Exact traffic accounting.</p><p><a href=\"/metrics\">Metrics</a></p></body></html>\n";

/// A running HTTP server; stops when dropped or `stop` is set.
pub struct MetricsServer {
    pub local_addr: SocketAddr,
    thread: Option<std::thread::JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl MetricsServer {
    /// Binds now (so a busy port is a start-up error) and serves on a thread.
    pub fn start(listen: SocketAddr, exposition: Exposition) -> std::io::Result<MetricsServer> {
        let std_listener = std::net::TcpListener::bind(listen)?;
        std_listener.set_nonblocking(true)?;
        let local_addr = std_listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("xdpacct-http".into())
            .spawn(move || {
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(std_listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!("metrics listener: {e}");
                            return;
                        }
                    };
                    let exposition = Arc::new(exposition);
                    while !stop2.load(Relaxed) {
                        let accepted =
                            tokio::time::timeout(Duration::from_millis(200), listener.accept())
                                .await;
                        let Ok(accepted) = accepted else { continue };
                        let (stream, _) = match accepted {
                            Ok(s) => s,
                            Err(e) => {
                                tracing::warn!("metrics accept: {e}");
                                tokio::time::sleep(Duration::from_millis(50)).await;
                                continue;
                            }
                        };
                        let exposition = exposition.clone();
                        tokio::spawn(async move {
                            let svc = service_fn(move |req| handle(req, exposition.clone()));
                            let conn = http1::Builder::new()
                                .max_buf_size(16 * 1024)
                                .header_read_timeout(Duration::from_secs(10))
                                .timer(hyper_util::rt::TokioTimer::new())
                                .serve_connection(TokioIo::new(stream), svc);
                            let _ = tokio::time::timeout(Duration::from_secs(60), conn).await;
                        });
                    }
                });
            })?;
        Ok(MetricsServer {
            local_addr,
            thread: Some(thread),
            stop,
        })
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Relaxed);
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

async fn handle(
    req: Request<Incoming>,
    exposition: Arc<Exposition>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |status: StatusCode, ctype: &str, body: Vec<u8>| {
        Response::builder()
            .status(status)
            .header(CONTENT_TYPE, ctype)
            .body(Full::new(Bytes::from(body)))
            .expect("static response parts are valid")
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Ok(reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            b"only GET\n".to_vec(),
        ));
    }
    Ok(match req.uri().path() {
        "/metrics" => {
            let gzip = req
                .headers()
                .get(ACCEPT_ENCODING)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
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
                r.headers_mut()
                    .insert(CONTENT_ENCODING, "gzip".parse().expect("valid header"));
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
    })
}

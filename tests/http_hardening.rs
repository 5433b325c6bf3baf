//! The metrics server under hostile clients, and `metrics.web_config`
//! (HTTPS, basic auth). Servers run in-process on 127.0.0.1:0; every load
//! here is bounded in count and time and goes to loopback only.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use xdpacct::metrics::server::{Limits, MetricsListener, MetricsServer, ServerOptions};
use xdpacct::metrics::web_config::WebConfig;
use xdpacct::metrics::Exposition;

/// The two flood tests take turns: each alone shows the latency it checks,
/// not the other's load on a 2-core machine.
static FLOOD: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The flood holds ~1,300 descriptors (clients and server in one process):
/// lift the soft limit to the hard one, in case it is the common 1,024.
fn raise_fd_limit() {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed,
    // which lives on this stack frame for the whole call.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn start(options: ServerOptions) -> MetricsServer {
    MetricsServer::start_with(localhost(), Exposition::new(), options).unwrap()
}

/// Sends `request` (errors ignored: the server may close early) and reads
/// until EOF, error or `timeout`.
fn exchange(addr: SocketAddr, request: &[u8], timeout: Duration) -> Vec<u8> {
    let mut s = TcpStream::connect_timeout(&addr, timeout).unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    s.set_write_timeout(Some(timeout)).unwrap();
    let _ = s.write_all(request);
    read_all(&mut s)
}

fn read_all(r: &mut impl Read) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// The status code of an HTTP/1.1 response, None when there is none.
fn status(response: &[u8]) -> Option<u16> {
    let line = response.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    parts.next()?.parse().ok()
}

fn header<'a>(response: &'a [u8], name: &str) -> Option<&'a str> {
    // The head only: a gzip body is not UTF-8.
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(response.len());
    let head = std::str::from_utf8(&response[..end]).ok()?;
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn scrape(addr: SocketAddr) -> Vec<u8> {
    exchange(
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
}

#[test]
fn scrape_completes_within_1s_under_1000_slow_connections() {
    let _turn = FLOOD.lock().unwrap_or_else(|e| e.into_inner());
    raise_fd_limit();
    let server = start(ServerOptions::default());
    let addr = server.local_addr;

    // 1,000 slowloris clients: half send a partial header, half nothing.
    let open = move |i: usize| -> Option<TcpStream> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        if i % 2 == 0 {
            let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n");
        }
        Some(s)
    };
    let mut slow: Vec<TcpStream> = (0..1000).filter_map(open).collect();
    assert!(slow.len() > 900, "only {} flood connections", slow.len());

    // Keep them alive: dribble a header line into each every 100 ms, and
    // reopen those the server closed (bounded: 3 s, 2,000 reconnects).
    let stop = Arc::new(AtomicBool::new(false));
    let flood = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let until = Instant::now() + Duration::from_secs(3);
            let mut reopened = 0;
            while !stop.load(Relaxed) && Instant::now() < until {
                for (i, s) in slow.iter_mut().enumerate() {
                    if s.write_all(b"X-Slow: 1\r\n").is_err() && reopened < 2000 {
                        reopened += 1;
                        if let Some(new) = open(i) {
                            *s = new;
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            reopened
        })
    };

    let mut worst = Duration::ZERO;
    for _ in 0..6 {
        let t = Instant::now();
        let r = scrape(addr);
        let took = t.elapsed();
        assert_eq!(status(&r), Some(200), "{}", String::from_utf8_lossy(&r));
        assert!(String::from_utf8_lossy(&r).contains("xdpacct_build_info"));
        // The requirement is 1 s; a loopback scrape of an empty page takes
        // milliseconds, so this has ample slack on a loaded machine.
        assert!(took < Duration::from_secs(1), "scrape took {took:?}");
        worst = worst.max(took);
        std::thread::sleep(Duration::from_millis(300));
    }
    stop.store(true, Relaxed);
    let reopened = flood.join().unwrap();
    eprintln!("worst scrape {worst:?} under flood; {reopened} flood connections reopened");
}

#[test]
fn at_the_connection_cap_the_oldest_idle_connection_is_closed() {
    let server = start(ServerOptions {
        limits: Limits {
            max_connections: 8,
            ..Limits::default()
        },
        ..ServerOptions::default()
    });
    let addr = server.local_addr;
    let mut conns = Vec::new();
    for _ in 0..20 {
        conns.push(TcpStream::connect(addr).unwrap());
        // Accepted in this order.
        std::thread::sleep(Duration::from_millis(20));
    }
    // The 12 oldest must see EOF (wait long: the machine may be loaded);
    // the 8 newest must stay open.
    let closed: Vec<bool> = conns
        .iter_mut()
        .enumerate()
        .map(|(i, s)| {
            let wait = if i < 12 { 10_000 } else { 300 };
            s.set_read_timeout(Some(Duration::from_millis(wait)))
                .unwrap();
            let mut b = [0u8; 1];
            match s.read(&mut b) {
                Ok(0) => true,
                Err(e) if e.kind() == ErrorKind::ConnectionReset => true,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
                other => panic!("unexpected {other:?}"),
            }
        })
        .collect();
    assert!(closed[..12].iter().all(|&c| c), "{closed:?}");
    assert!(closed[12..].iter().all(|&c| !c), "{closed:?}");
    // The newest ones are served.
    let s = &mut conns[19];
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(status(&read_all(s)), Some(200));
}

#[test]
fn idle_connection_is_closed_after_idle_timeout() {
    let server = start(ServerOptions {
        limits: Limits {
            idle_timeout: Duration::from_millis(300),
            ..Limits::default()
        },
        ..ServerOptions::default()
    });
    let mut s = TcpStream::connect(server.local_addr).unwrap();
    let _ = s.write_all(b"GET /metrics HTTP/1.1\r\n");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let t = Instant::now();
    let r = read_all(&mut s);
    assert!(status(&r).is_none_or(|c| (400..500).contains(&c)));
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

#[test]
fn malformed_requests_get_4xx_or_a_closed_connection() {
    let server = start(ServerOptions::default());
    let addr = server.local_addr;
    let huge_header = {
        let mut r = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
        r.extend(std::iter::repeat_n(b'a', 100_000));
        r.extend_from_slice(b"\r\n\r\n");
        r
    };
    let absurd_uri = {
        let mut r = b"GET /".to_vec();
        r.extend(std::iter::repeat_n(b'a', 70_000));
        r.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\n\r\n");
        r
    };
    let many_headers = {
        let mut r = b"GET /metrics HTTP/1.1\r\nHost: x\r\n".to_vec();
        for i in 0..500 {
            r.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        r.extend_from_slice(b"\r\n");
        r
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"\x16\x03\x01\x00\xa5\x00\xffgarbage\r\n\r\n".to_vec()),
        ("nul bytes", vec![0u8; 4096]),
        ("huge header", huge_header),
        ("absurd uri", absurd_uri),
        ("many headers", many_headers),
        ("bad method", b"FOO /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec()),
        ("post", b"POST /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc".to_vec()),
        ("invalid method token", b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("spaces in uri", b"GET /a b c HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("header without colon", b"GET / HTTP/1.1\r\nHost x\r\n\r\n".to_vec()),
        ("negative length", b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".to_vec()),
        ("two lengths", b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n".to_vec()),
        ("obsolete line folding", b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n".to_vec()),
        ("unknown path", b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec()),
    ];
    for (name, request) in &cases {
        let t = Instant::now();
        let r = exchange(addr, request, Duration::from_secs(10));
        let code = status(&r);
        eprintln!("{name}: {code:?} in {:?}", t.elapsed());
        assert!(
            code.is_none_or(|c| (400..500).contains(&c)),
            "{name}: got {code:?}: {}",
            String::from_utf8_lossy(&r[..r.len().min(200)])
        );
    }
    assert_eq!(status(&scrape(addr)), Some(200), "still serving");
}

/// A self-signed certificate for "localhost", its key, and a web config
/// with one user "prom" whose password is "secret" (bcrypt cost 4: fast tests).
fn write_web_config(dir: &Path) -> (std::path::PathBuf, Vec<u8>) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.join("cert.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), ck.key_pair.serialize_pem()).unwrap();
    let hash = bcrypt::hash("secret", 4).unwrap();
    let path = dir.join("web.yml");
    std::fs::write(
        &path,
        format!(
            "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n\
             basic_auth_users:\n  prom: '{hash}'\n"
        ),
    )
    .unwrap();
    (path, ck.cert.der().to_vec())
}

fn https(addr: SocketAddr, ca_der: &[u8], request: &str) -> Vec<u8> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(ca_der.to_vec()))
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    tls.write_all(request.as_bytes()).unwrap();
    read_all(&mut tls)
}

fn basic(user_pass: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(user_pass)
}

#[test]
fn web_config_serves_https_only_with_basic_auth() {
    let dir = tempfile::tempdir().unwrap();
    let (path, ca) = write_web_config(dir.path());
    let web = WebConfig::load(&path).unwrap();
    assert!(web.tls_enabled() && web.auth_enabled());
    let server = start(ServerOptions {
        web: Some(web),
        ..ServerOptions::default()
    });
    let addr = server.local_addr;

    // 300 clients that connect and never start the TLS handshake: beyond
    // the cap, the oldest are closed and the scraper still gets through.
    let silent: Vec<TcpStream> = (0..300)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    assert_eq!(silent.len(), 300);

    // Plain HTTP to the TLS port gets no HTTP answer.
    let r = scrape(addr);
    assert_eq!(status(&r), None, "{}", String::from_utf8_lossy(&r));

    let get = |path: &str, auth: Option<&str>| {
        let auth = auth
            .map(|a| format!("Authorization: Basic {}\r\n", basic(a)))
            .unwrap_or_default();
        https(
            addr,
            &ca,
            &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n"),
        )
    };
    let r = get("/metrics", None);
    assert_eq!(status(&r), Some(401), "{}", String::from_utf8_lossy(&r));
    assert!(header(&r, "www-authenticate").is_some_and(|v| v.starts_with("Basic")));
    assert_eq!(status(&get("/metrics", Some("prom:wrong"))), Some(401));
    assert_eq!(status(&get("/metrics", Some("eve:secret"))), Some(401));
    assert_eq!(status(&get("/", Some("prom"))), Some(401));
    let r = get("/metrics", Some("prom:secret"));
    assert_eq!(status(&r), Some(200), "{}", String::from_utf8_lossy(&r));
    assert!(String::from_utf8_lossy(&r).contains("xdpacct_build_info"));
    // Cached now; still right.
    assert_eq!(status(&get("/metrics", Some("prom:secret"))), Some(200));
    assert_eq!(status(&get("/metrics", Some("prom:secreT"))), Some(401));
    // Health checks need no password.
    assert_eq!(status(&get("/healthz", None)), Some(200));
    drop(silent);
}

#[test]
fn bad_password_flood_does_not_block_a_cached_scraper() {
    let _turn = FLOOD.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("secret", 8).unwrap();
    let path = dir.path().join("web.yml");
    std::fs::write(&path, format!("basic_auth_users:\n  prom: '{hash}'\n")).unwrap();
    let server = start(ServerOptions {
        web: Some(WebConfig::load(&path).unwrap()),
        ..ServerOptions::default()
    });
    let addr = server.local_addr;
    let req = |pass: &str| {
        format!(
            "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {}\r\nConnection: close\r\n\r\n",
            basic(&format!("prom:{pass}"))
        )
    };
    assert_eq!(
        status(&exchange(
            addr,
            req("secret").as_bytes(),
            Duration::from_secs(10)
        )),
        Some(200)
    );

    // 64 clients with wrong passwords, 2 s at most.
    let stop = Arc::new(AtomicBool::new(false));
    let flood: Vec<_> = (0..64)
        .map(|i| {
            let stop = stop.clone();
            let bad = req(&format!("wrong{i}"));
            std::thread::spawn(move || {
                let until = Instant::now() + Duration::from_secs(2);
                while !stop.load(Relaxed) && Instant::now() < until {
                    exchange(addr, bad.as_bytes(), Duration::from_secs(3));
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..3 {
        let t = Instant::now();
        let r = exchange(addr, req("secret").as_bytes(), Duration::from_secs(5));
        assert_eq!(status(&r), Some(200));
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Relaxed);
    for f in flood {
        f.join().unwrap();
    }
}

#[test]
fn bad_web_config_file_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.yml");
    std::fs::write(
        &path,
        "tls_server_config:\n  cert_file: missing.pem\n  key_file: missing.key\n",
    )
    .unwrap();
    let e = WebConfig::load(&path).unwrap_err().to_string();
    assert!(e.contains(&path.display().to_string()), "{e}");
    assert!(e.contains("tls_server_config.cert_file"), "{e}");
    assert!(e.contains("missing.pem"), "{e}");
}

/// `xdpacct run` stops with status 2 and a one-line message naming the web
/// config file and key, before it touches any interface.
#[test]
fn run_exits_2_on_a_bad_web_config() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(&web, "basic_auth_users:\n  prom: not-a-hash\n").unwrap();
    let config = dir.path().join("xdpacct.toml");
    std::fs::write(
        &config,
        format!(
            "[metrics]\nlisten = \"127.0.0.1:0\"\nweb_config = \"{}\"\n",
            web.display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xdpacct"))
        .args(["run", "-i", "xdpacct-none0", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&web.display().to_string()), "{stderr}");
    assert!(stderr.contains("basic_auth_users.prom"), "{stderr}");
}

/// The body of a response read to EOF (after the blank line).
fn body(response: &[u8]) -> &[u8] {
    let at = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    &response[at + 4..]
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .expect("a gzip body");
    out
}

fn get_with(addr: SocketAddr, head: &str) -> Vec<u8> {
    exchange(addr, head.as_bytes(), Duration::from_secs(10))
}

/// Regression: `Accept-Encoding: gzip;q=0` still got gzip, and /metrics
/// had no `Vary: Accept-Encoding`.
#[test]
fn metrics_honours_accept_encoding_q_values_and_varies_on_it() {
    let server = start(ServerOptions::default());
    let addr = server.local_addr;
    let get = |accept: &str| {
        get_with(
            addr,
            &format!("GET /metrics HTTP/1.1\r\nHost: x\r\n{accept}Connection: close\r\n\r\n"),
        )
    };
    for accept in [
        "",
        "Accept-Encoding: gzip;q=0\r\n",
        "Accept-Encoding: gzip;q=0.5, identity\r\n",
        "Accept-Encoding: br\r\n",
    ] {
        let r = get(accept);
        assert_eq!(status(&r), Some(200), "{accept:?}");
        assert_eq!(header(&r, "content-encoding"), None, "{accept:?}");
        assert_eq!(header(&r, "vary"), Some("Accept-Encoding"), "{accept:?}");
        assert!(
            String::from_utf8_lossy(body(&r)).starts_with("# HELP xdpacct_build_info"),
            "{accept:?}"
        );
    }
    for accept in [
        "gzip",
        "gzip, deflate",
        "x-gzip",
        "*",
        "identity;q=0, gzip;q=0.1",
    ] {
        let r = get(&format!("Accept-Encoding: {accept}\r\n"));
        assert_eq!(status(&r), Some(200), "{accept:?}");
        assert_eq!(header(&r, "content-encoding"), Some("gzip"), "{accept:?}");
        assert_eq!(header(&r, "vary"), Some("Accept-Encoding"), "{accept:?}");
        let plain = gunzip(body(&r));
        assert!(
            String::from_utf8_lossy(&plain).starts_with("# HELP xdpacct_build_info"),
            "{accept:?}"
        );
        common::assert_promtool_ok(&String::from_utf8_lossy(&plain));
    }
    // Neither coding acceptable: 406 (RFC 9110 §12.5.3), still varying.
    for accept in ["identity;q=0", "*;q=0", "gzip;q=0, identity;q=0"] {
        let r = get(&format!("Accept-Encoding: {accept}\r\n"));
        assert_eq!(status(&r), Some(406), "{accept:?}");
        assert_eq!(header(&r, "vary"), Some("Accept-Encoding"), "{accept:?}");
    }
}

/// Regression: an HTTP/1.1 request without `Host` got 200 (RFC 9112 §3.2
/// says 400, also for two `Host` lines).
#[test]
fn http11_request_without_exactly_one_host_gets_400() {
    let server = start(ServerOptions::default());
    let addr = server.local_addr;
    for (name, head, want) in [
        (
            "no host",
            "GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n",
            400,
        ),
        (
            "no host, healthz",
            "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n",
            400,
        ),
        (
            "two hosts",
            "GET /metrics HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
            400,
        ),
        (
            "two hosts, 1.0",
            "GET /metrics HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
            400,
        ),
        ("1.0 needs none", "GET /metrics HTTP/1.0\r\n\r\n", 200),
        (
            "one host",
            "GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            200,
        ),
        (
            "empty host",
            "GET /healthz HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n",
            200,
        ),
    ] {
        let r = get_with(addr, head);
        assert_eq!(
            status(&r),
            Some(want),
            "{name}: {}",
            String::from_utf8_lossy(&r)
        );
    }
}

/// Series on the big test page: about 29 MB of text, the size of the
/// example config's page (a /48 of IPv6 /64 hosts).
const BIG_SERIES: u64 = 360_000;

/// `xdpacct_test_big{host,customer,site} i` for i in 0..BIG_SERIES.
struct BigPage;

impl prometheus::core::Collector for BigPage {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        vec![]
    }
    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        use prometheus::proto::{Gauge, LabelPair, Metric, MetricFamily, MetricType};
        let label = |name: &str, value: String| {
            let mut l = LabelPair::default();
            l.set_name(name.to_string());
            l.set_value(value);
            l
        };
        let metrics = (0..BIG_SERIES)
            .map(|i| {
                let mut g = Gauge::default();
                g.set_value(i as f64);
                let mut m = Metric::from_label(vec![
                    label("customer", "example-hosting".into()),
                    label(
                        "host",
                        format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255),
                    ),
                    label("site", "ams1".into()),
                ]);
                m.set_gauge(g);
                m
            })
            .collect();
        let mut f = MetricFamily::default();
        f.set_name("xdpacct_test_big".into());
        f.set_help("Test page.".into());
        f.set_field_type(MetricType::GAUGE);
        f.set_metric(metrics);
        vec![f]
    }
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kb * 1024
}

/// A Prometheus-like scrape (gzip) of the big page, checked against the
/// page's construction: every series once, values 0..BIG_SERIES.
fn scrape_big_page(addr: SocketAddr) -> Result<(), String> {
    let r = exchange(
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
        Duration::from_secs(10),
    );
    if status(&r) != Some(200) {
        return Err(format!("status {:?}: {} bytes", status(&r), r.len()));
    }
    let gz = body(&r);
    let length: usize = header(&r, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if length != gz.len() {
        return Err(format!("content-length {length}, got {} bytes", gz.len()));
    }
    // Line by line: the test's own memory stays small next to the server's.
    let mut lines = std::io::BufReader::new(flate2::read::GzDecoder::new(gz));
    let (mut n, mut sum) = (0u64, 0u64);
    let mut line = Vec::new();
    loop {
        line.clear();
        match std::io::BufRead::read_until(&mut lines, b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => return Err(format!("gzip body: {e}")),
        }
        if let Some(rest) = line.strip_prefix(b"xdpacct_test_big{") {
            let value = rest.trim_ascii_end().rsplit(|&b| b == b' ').next().unwrap();
            n += 1;
            sum += std::str::from_utf8(value).unwrap().parse::<u64>().unwrap();
        }
    }
    let want = (BIG_SERIES, BIG_SERIES * (BIG_SERIES - 1) / 2);
    if (n, sum) != want {
        return Err(format!("series/sum {:?}, want {want:?}", (n, sum)));
    }
    Ok(())
}

/// A client with a 4 KiB receive buffer that sends GET /metrics (plain
/// text: the biggest answer) and never reads.
fn non_reading_client(rt: &tokio::runtime::Runtime, addr: SocketAddr) -> Option<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4().ok()?;
    socket.set_recv_buffer_size(4096).ok()?;
    let stream = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(2), socket.connect(addr)).await
    });
    let mut s = stream.ok()?.ok()?.into_std().ok()?;
    s.set_nonblocking(false).ok()?;
    let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    Some(s)
}

/// Regression: 300 connections that each sent GET /metrics with a 4 KB
/// receive buffer and never read took the daemon from 26 MB to 3.36 GB
/// (a 28.8 MB page rendered per request and held for seconds), and an
/// honest scraper got nothing for about 20 s.
#[test]
fn non_reading_clients_neither_grow_memory_nor_starve_the_scraper() {
    let _turn = FLOOD.lock().unwrap_or_else(|e| e.into_inner());
    raise_fd_limit();
    let exposition = Exposition::new();
    exposition.register(Box::new(BigPage));
    let server =
        MetricsServer::start_with(localhost(), exposition, ServerOptions::default()).unwrap();
    let addr = server.local_addr;
    // One scrape first: the page's size, and memory that one page takes.
    scrape_big_page(addr).unwrap();
    let plain = exchange(
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(10),
    );
    let page_len = body(&plain).len();
    assert!(page_len > 25_000_000, "page of {page_len} bytes");
    drop(plain);
    std::thread::sleep(Duration::from_millis(200));
    let before = rss_bytes();

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            // Bounded: 60 s at most.
            let until = Instant::now() + Duration::from_secs(60);
            while !stop.load(Relaxed) && Instant::now() < until {
                peak = peak.max(rss_bytes());
                std::thread::sleep(Duration::from_millis(10));
            }
            peak
        })
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let flood_start = Instant::now();
    let hostile: Vec<TcpStream> = (0..300)
        .filter_map(|_| non_reading_client(&rt, addr))
        .collect();
    assert_eq!(hostile.len(), 300);
    // Let the flood's answers start and stall (1 s makes a stalled sender
    // evictable; the page takes a moment to render).
    std::thread::sleep(Duration::from_secs(3));

    // Honest scrapes, 1.5 s apart (each past the page reuse time).
    let mut took = Vec::new();
    for i in 0..3 {
        let t = Instant::now();
        if let Err(e) = scrape_big_page(addr) {
            panic!("honest scrape {i} during the flood: {e}");
        }
        took.push(t.elapsed());
        std::thread::sleep(Duration::from_millis(1500));
    }
    stop.store(true, Relaxed);
    let peak = sampler.join().unwrap();
    let growth = peak.saturating_sub(before);
    eprintln!(
        "page {page_len} bytes; RSS {} MB before, peak {} MB during 300 non-reading clients \
         (+{} MB); honest scrapes took {took:?}",
        before >> 20,
        peak >> 20,
        growth >> 20
    );
    // Memory is not speed: a bound is a fair test. Two pages and their
    // gzip are ~70 MB; one page per client would be 8.6 GB.
    assert!(growth < 200 << 20, "RSS grew by {} MB", growth >> 20);

    // The flood is closed once it has read nothing for the stall timeout
    // (10 s), and at the latest the request timeout (30 s) after its
    // request (the kernel may still take a few bytes now and then): reading
    // now drains what the kernel buffered, then ends.
    let limits = Limits::default();
    assert!(limits.send_stall_timeout < limits.request_timeout);
    std::thread::sleep(
        (flood_start + limits.request_timeout + Duration::from_secs(2))
            .saturating_duration_since(Instant::now()),
    );
    let mut closed = 0;
    let mut drained = 0usize;
    for (i, mut s) in hostile.into_iter().enumerate() {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 65536];
        loop {
            match s.read(&mut buf) {
                Ok(0) => {
                    closed += 1;
                    break;
                }
                Ok(n) => drained += n,
                Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                    closed += 1;
                    break;
                }
                Err(e) => panic!("flood connection {i} still open: {e}"),
            }
        }
    }
    eprintln!("{closed} of 300 flood connections closed; {drained} bytes were buffered for them");
    assert_eq!(closed, 300);
    // Kernel buffers hold little per client (the send buffer is capped at
    // 256 KiB; uncapped it grew to 2.7 MB each, 800 MB for the flood).
    assert!(drained < 300 << 20, "{drained} bytes");
}

/// Regression: a bcrypt cost of 20 or 31 hung start-up without a word (a
/// dummy hash at the highest cost was computed at load).
#[test]
fn bcrypt_cost_above_the_maximum_exits_2_naming_file_and_user() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    let tail = "9lCPP5VsdKsJfbZ68FdsweQ74paTq8LCBl/N34xjsS1dS/6U/pYxO";
    let config = dir.path().join("xdpacct.toml");
    std::fs::write(
        &config,
        format!(
            "[metrics]\nlisten = \"127.0.0.1:0\"\nweb_config = \"{}\"\n",
            web.display()
        ),
    )
    .unwrap();
    for (cost, args) in [
        (31, &["check-config", "--config"][..]),
        (20, &["check-config", "--config"][..]),
        (20, &["run", "-i", "xdpacct-none0", "--config"][..]),
    ] {
        std::fs::write(
            &web,
            format!("basic_auth_users:\n  alice: '$2b$10${tail}'\n  bob: '$2b${cost}${tail}'\n"),
        )
        .unwrap();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_xdpacct"))
            .args(args)
            .arg(&config)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Bounded: a hang (the defect) fails here instead of blocking.
        let until = Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > until {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{args:?} with cost {cost} still running after 20 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} {cost}: {stderr}");
        let line = stderr.lines().last().unwrap_or("");
        assert!(line.contains(&web.display().to_string()), "{stderr}");
        assert!(
            line.contains(&format!(
                "basic_auth_users.bob: bcrypt cost {cost} is above the maximum 14"
            )),
            "{stderr}"
        );
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| xdpacct::privileges::effective_uid(&s))
        == Some(0)
}

/// Regression: a listen port below 1024 kept CAP_NET_BIND_SERVICE for the
/// life of the process, because the server bound after the drop. Bound
/// first, it serves with the capability gone (capabilities are per thread:
/// the drop and the server run on a thread of this test).
#[test]
fn low_port_bound_before_the_drop_serves_without_cap_net_bind_service() {
    use caps::{CapSet, Capability};
    if !is_root() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but this test needs root (binding a port below 1024, dropping capabilities)"
        );
        eprintln!("skipping: needs root");
        return;
    }
    std::thread::spawn(|| {
        let listener = (900..1000)
            .find_map(|port| MetricsListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).ok())
            .expect("a free port in 900..1000");
        let addr = listener.local_addr();
        assert!(addr.port() < 1024);
        let kept = xdpacct::privileges::drop_after_start(false).unwrap();
        assert!(!kept.contains(&Capability::CAP_NET_BIND_SERVICE));
        for set in [CapSet::Effective, CapSet::Permitted, CapSet::Bounding] {
            let now = caps::read(None, set).unwrap();
            assert!(
                !now.contains(&Capability::CAP_NET_BIND_SERVICE),
                "{set:?}: {now:?}"
            );
        }
        // Really gone: another low port cannot be bound now.
        let again = (900..1000)
            .filter(|&p| p != addr.port())
            .map(|port| std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))))
            .find(|r| !matches!(r, Err(e) if e.kind() == ErrorKind::AddrInUse))
            .expect("a free low port to try");
        assert_eq!(again.unwrap_err().kind(), ErrorKind::PermissionDenied);
        // The server thread starts from this thread, without the capability.
        let server = listener
            .serve(Exposition::new(), ServerOptions::default())
            .unwrap();
        let r = scrape(server.local_addr);
        assert_eq!(status(&r), Some(200), "{}", String::from_utf8_lossy(&r));
        assert!(String::from_utf8_lossy(&r).contains("xdpacct_build_info"));
    })
    .join()
    .unwrap();
}

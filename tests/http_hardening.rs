//! The metrics server under hostile clients, and `metrics.web_config`
//! (HTTPS, basic auth). Servers run in-process on 127.0.0.1:0; every load
//! here is bounded in count and time and goes to loopback only.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use xdpacct::metrics::server::{Limits, MetricsServer, ServerOptions};
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
    let text = std::str::from_utf8(response).ok()?;
    let head = text.split("\r\n\r\n").next()?;
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

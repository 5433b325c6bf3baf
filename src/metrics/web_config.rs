//! `metrics.web_config`: HTTPS and basic auth for the metrics server, read
//! from a YAML file in the format of Prometheus's exporter-toolkit
//! (`tls_server_config`, `basic_auth_users`).
//!
//! The file is read and checked once, at start-up, into a [`WebConfig`]:
//! a bad file, key, certificate or hash is an error naming the file and the
//! key. Allocates; no unsafe; does not panic on user input.
//!
//! Password checks use bcrypt, which is slow on purpose. So that a flood of
//! bad passwords cannot starve the scraper, checks run on the blocking pool
//! behind a semaphore of one permit, a request waits for that permit at most
//! [`AUTH_WAIT`], and credentials that passed are remembered (compared in
//! constant time) until they go unused for [`AUTH_CACHE_TTL`]: every hit
//! renews them, so a scraper that keeps sending the same password costs one
//! bcrypt check after start-up and never queues behind wrong passwords.
//!
//! Costs above [`MAX_BCRYPT_COST`] are refused at load (one check at cost 20
//! takes over a minute). An unknown user is checked against a dummy hash
//! whose cost is that of a configured user picked by a keyed hash of the
//! name, so an unknown name takes as long as some real user's check and the
//! same name always takes the same time (see [`BasicAuth::hash_for`]).

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use subtle::ConstantTimeEq;

/// Longest wait for the bcrypt permit before answering 503.
pub const AUTH_WAIT: Duration = Duration::from_secs(5);
/// How long credentials that passed bcrypt stay accepted without a new check
/// after their last use (sliding: every hit renews it). Longer than any usual
/// scrape interval (up to 5 min), so a scraper is checked once, not once a
/// minute behind a flood of wrong passwords.
pub const AUTH_CACHE_TTL: Duration = Duration::from_secs(300);
/// Highest bcrypt cost accepted in `basic_auth_users`. One check at cost 14
/// takes about 1.1 s on a 2-core 2020s x86 server (cost 10: 65 ms, 13: 0.5 s,
/// 15: 2.3 s; each step doubles). Above 14 a single check nears
/// [`AUTH_WAIT`], so two scrapers arriving together would get 503, and a
/// wrong-password flood would hold the one permit for seconds per request.
pub const MAX_BCRYPT_COST: u32 = 14;
/// Lowest cost bcrypt defines.
const MIN_BCRYPT_COST: u32 = 4;
/// Credentials remembered at once (distinct user:password pairs).
const AUTH_CACHE_ENTRIES: usize = 16;

/// The file as written. Only the keys supported here; any other key (for
/// example `client_ca_file`) is an error rather than silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename = "web config")]
struct RawWebConfig {
    #[serde(default)]
    tls_server_config: Option<RawTlsConfig>,
    #[serde(default)]
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "tls_server_config")]
struct RawTlsConfig {
    #[serde(default)]
    cert_file: Option<String>,
    #[serde(default)]
    key_file: Option<String>,
}

/// A web config file that failed to load. Every message names the file and,
/// where there is one, the key.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    #[error("metrics.web_config: {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("metrics.web_config: {}: {source}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("metrics.web_config: {}: {key}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
    #[error("metrics.web_config: {}: {key}: {}: {message}", path.display(), file.display())]
    File {
        path: PathBuf,
        key: &'static str,
        file: PathBuf,
        message: String,
    },
}

/// A checked web config: the TLS server settings and the users, ready to serve.
#[derive(Clone)]
pub struct WebConfig {
    path: PathBuf,
    tls: Option<Arc<rustls::ServerConfig>>,
    auth: Option<Arc<BasicAuth>>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("path", &self.path)
            .field("tls", &self.tls.is_some())
            .field(
                "basic_auth_users",
                &self.auth.as_ref().map(|a| a.users.len()),
            )
            .finish()
    }
}

impl WebConfig {
    /// Reads and checks the file: YAML keys, certificate chain and key
    /// (paths relative to the file's directory), bcrypt hashes.
    pub fn load(path: impl AsRef<Path>) -> Result<WebConfig, WebConfigError> {
        let path = path.as_ref().to_path_buf();
        let text = std::fs::read_to_string(&path).map_err(|source| WebConfigError::Read {
            path: path.clone(),
            source,
        })?;
        // An empty file (or only comments) means: plain HTTP, no auth.
        let raw: RawWebConfig = serde_yaml::from_str::<Option<RawWebConfig>>(&text)
            .map_err(|source| WebConfigError::Parse {
                path: path.clone(),
                source,
            })?
            .unwrap_or_default();
        let tls = match raw.tls_server_config {
            Some(t) => Some(Arc::new(tls_config(&path, t)?)),
            None => None,
        };
        let auth = match raw.basic_auth_users {
            Some(users) if !users.is_empty() => Some(Arc::new(BasicAuth::new(&path, users)?)),
            _ => None,
        };
        Ok(WebConfig { path, tls, auth })
    }

    /// The file this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when the server speaks HTTPS only.
    pub fn tls_enabled(&self) -> bool {
        self.tls.is_some()
    }

    /// True when requests need basic-auth credentials.
    pub fn auth_enabled(&self) -> bool {
        self.auth.is_some()
    }

    pub(crate) fn tls(&self) -> Option<Arc<rustls::ServerConfig>> {
        self.tls.clone()
    }

    pub(crate) fn auth(&self) -> Option<Arc<BasicAuth>> {
        self.auth.clone()
    }
}

fn tls_config(path: &Path, raw: RawTlsConfig) -> Result<rustls::ServerConfig, WebConfigError> {
    let invalid = |key: &str, message: &str| WebConfigError::Invalid {
        path: path.to_path_buf(),
        key: key.to_string(),
        message: message.to_string(),
    };
    let cert_file = raw
        .cert_file
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid("tls_server_config.cert_file", "missing"))?;
    let key_file = raw
        .key_file
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid("tls_server_config.key_file", "missing"))?;
    // Like exporter-toolkit: relative paths are relative to the web config file.
    let dir = path.parent().unwrap_or(Path::new(""));
    let cert_path = dir.join(cert_file);
    let key_path = dir.join(key_file);
    let file_err = |key: &'static str, file: &Path, message: String| WebConfigError::File {
        path: path.to_path_buf(),
        key,
        file: file.to_path_buf(),
        message,
    };
    let cert_key = "tls_server_config.cert_file";
    let key_key = "tls_server_config.key_file";
    let pem_err = |e: rustls::pki_types::pem::Error| match e {
        rustls::pki_types::pem::Error::Io(e) => e.to_string(),
        other => format!("not valid PEM: {other}"),
    };

    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|e| file_err(cert_key, &cert_path, pem_err(e)))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(cert_key, &cert_path, pem_err(e)))?;
    if certs.is_empty() {
        return Err(file_err(
            cert_key,
            &cert_path,
            "no CERTIFICATE block found".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| {
        let message = match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "no PRIVATE KEY block found (PKCS#8, PKCS#1 or SEC1)".to_string()
            }
            other => pem_err(other),
        };
        file_err(key_key, &key_path, message)
    })?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("tls_server_config", &e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            file_err(
                key_key,
                &key_path,
                format!(
                    "does not fit the certificate in {}: {e}",
                    cert_path.display()
                ),
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// What a request's credentials earned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Allowed,
    /// Missing, malformed or wrong credentials: 401.
    Denied,
    /// The bcrypt permit did not come free within [`AUTH_WAIT`]: 503.
    Busy,
}

/// `basic_auth_users`: user name to bcrypt hash, with a cache of credentials
/// that passed.
pub(crate) struct BasicAuth {
    users: BTreeMap<String, String>,
    /// The configured costs, one per user in name order: an unknown name is
    /// checked at one of them (see [`BasicAuth::hash_for`]).
    costs: Vec<u32>,
    /// A hash no password matches, per configured cost.
    dummies: BTreeMap<u32, String>,
    /// Secret that picks the cost for an unknown name: derived from the
    /// configured hashes, whose random salts a client never sees.
    pick_key: u64,
    /// Decoded `user:password` bytes that passed, and until when they count.
    cache: Mutex<Vec<(Vec<u8>, Instant)>>,
    /// Idle time after which a cached entry needs a new bcrypt check.
    ttl: Duration,
    permits: Arc<tokio::sync::Semaphore>,
}

/// Checks one `basic_auth_users` entry; returns its bcrypt cost.
fn check_hash(path: &Path, user: &str, hash: &str) -> Result<u32, WebConfigError> {
    let invalid = |message: String| WebConfigError::Invalid {
        path: path.to_path_buf(),
        key: format!("basic_auth_users.{user}"),
        message,
    };
    if user.is_empty() || user.contains(':') {
        return Err(invalid(
            "a user name must be non-empty and without ':'".into(),
        ));
    }
    let remedy = format!("make one with `htpasswd -nBC 10 {user}`");
    let parts: bcrypt::HashParts = hash
        .parse()
        .map_err(|e| invalid(format!("not a bcrypt hash ({e}); {remedy}")))?;
    let cost = parts.get_cost();
    if cost > MAX_BCRYPT_COST {
        // 65 ms at cost 10, doubling with each step.
        let secs = 0.065 * f64::powi(2.0, cost as i32 - 10);
        let took = match secs {
            s if s >= 7200.0 => format!("{:.0} hours", s / 3600.0),
            s if s >= 120.0 => format!("{:.0} minutes", s / 60.0),
            s => format!("{s:.0} s"),
        };
        return Err(invalid(format!(
            "bcrypt cost {cost} is above the maximum {MAX_BCRYPT_COST} \
             (one check would take about {took}); {remedy}"
        )));
    }
    if cost < MIN_BCRYPT_COST {
        return Err(invalid(format!(
            "bcrypt cost {cost} is below the minimum {MIN_BCRYPT_COST}; {remedy}"
        )));
    }
    // The parse checks only the shape: a salt or digest that is not bcrypt's
    // base64 would fail every check (and fast, unlike a wrong password).
    let tail = hash.split('$').filter(|s| !s.is_empty()).nth(2);
    let decodes = |part: Option<&str>, len: usize| {
        part.and_then(|p| bcrypt::BASE_64.decode(p).ok())
            .is_some_and(|b| b.len() == len)
    };
    let salt_ok = decodes(tail.and_then(|t| t.get(..22)), 16);
    let digest_ok = decodes(tail.and_then(|t| t.get(22..)), 23);
    if !(salt_ok && digest_ok) {
        return Err(invalid(format!(
            "not a bcrypt hash (salt or digest is not bcrypt base64); {remedy}"
        )));
    }
    Ok(cost)
}

/// A well-formed hash at `cost` that no password matches (its digest is not
/// one bcrypt produced): checking it costs what a real check at `cost` costs.
fn dummy_hash(cost: u32) -> String {
    format!(
        "$2b${cost:02}${}{}",
        bcrypt::BASE_64.encode([0xa5u8; 16]),
        bcrypt::BASE_64.encode([0x5au8; 23])
    )
}

impl BasicAuth {
    fn new(path: &Path, users: BTreeMap<String, String>) -> Result<BasicAuth, WebConfigError> {
        let mut costs = Vec::with_capacity(users.len());
        let mut key = std::collections::hash_map::DefaultHasher::new();
        for (user, hash) in &users {
            costs.push(check_hash(path, user, hash)?);
            hash.hash(&mut key);
        }
        // No bcrypt runs here: start-up costs nothing whatever the costs.
        let dummies = costs.iter().map(|&c| (c, dummy_hash(c))).collect();
        Ok(BasicAuth {
            users,
            costs,
            dummies,
            pick_key: key.finish(),
            cache: Mutex::new(Vec::new()),
            ttl: AUTH_CACHE_TTL,
            permits: Arc::new(tokio::sync::Semaphore::new(1)),
        })
    }

    /// The hash to check a password against, and whether the user exists.
    ///
    /// What a client can time is the check for the name it sends. A known
    /// name costs its own hash's cost; an unknown name costs the cost of the
    /// configured user picked by a keyed hash of the name. So over names an
    /// unknown one costs what the configured users cost (in the same
    /// proportions), one name always costs the same (repeating it reveals
    /// nothing), and the key comes from the configured salts, so a client
    /// cannot tell which cost a name will get. With one cost for all users
    /// (the usual case) every name costs exactly that.
    pub(crate) fn hash_for(&self, user: &[u8]) -> (&str, bool) {
        if let Some(h) = std::str::from_utf8(user)
            .ok()
            .and_then(|u| self.users.get(u))
        {
            return (h, true);
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.pick_key.hash(&mut h);
        user.hash(&mut h);
        let cost = self.costs[(h.finish() % self.costs.len() as u64) as usize];
        (&self.dummies[&cost], false)
    }

    /// Checks an `Authorization` header value. Runs bcrypt on the blocking
    /// pool unless the credentials are in the cache.
    pub(crate) async fn check(&self, authorization: Option<&[u8]>) -> Verdict {
        let Some(credentials) = authorization.and_then(decode_basic) else {
            return Verdict::Denied;
        };
        if self.cached(&credentials) {
            return Verdict::Allowed;
        }
        let Some(colon) = credentials.iter().position(|&b| b == b':') else {
            return Verdict::Denied;
        };
        let (user, password) = (&credentials[..colon], &credentials[colon + 1..]);
        let (hash, known) = self.hash_for(user);
        let hash = hash.to_string();
        let permit = self.permits.clone().acquire_owned();
        let Ok(Ok(permit)) = tokio::time::timeout(AUTH_WAIT, permit).await else {
            return Verdict::Busy;
        };
        let password = password.to_vec();
        // The permit goes with the check: if this request is dropped (its
        // connection closed), the check still holds it until it finishes,
        // so checks never pile up in the blocking pool.
        let ok = tokio::task::spawn_blocking(move || {
            let ok = bcrypt::verify(password, &hash);
            drop(permit);
            ok
        })
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(false);
        if ok && known {
            self.remember(credentials);
            Verdict::Allowed
        } else {
            Verdict::Denied
        }
    }

    fn cached(&self, credentials: &[u8]) -> bool {
        self.cached_at(credentials, Instant::now())
    }

    /// Constant-time comparison against every live entry (no early exit);
    /// a hit renews its entry for another [`AUTH_CACHE_TTL`].
    fn cached_at(&self, credentials: &[u8], now: Instant) -> bool {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let mut hit = subtle::Choice::from(0);
        for (c, until) in cache.iter_mut() {
            let this =
                c.as_slice().ct_eq(credentials) & subtle::Choice::from(u8::from(*until > now));
            if bool::from(this) {
                *until = now + self.ttl;
            }
            hit |= this;
        }
        hit.into()
    }

    fn remember(&self, credentials: Vec<u8>) {
        self.remember_at(credentials, Instant::now())
    }

    fn remember_at(&self, credentials: Vec<u8>, now: Instant) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.retain(|(c, until)| *until > now && *c != credentials);
        if cache.len() >= AUTH_CACHE_ENTRIES {
            // Drop the entry closest to expiry.
            if let Some(i) = (0..cache.len()).min_by_key(|&i| cache[i].1) {
                cache.swap_remove(i);
            }
        }
        cache.push((credentials, now + self.ttl));
    }
}

/// `Basic <base64(user:password)>` to the decoded bytes; None when malformed.
fn decode_basic(value: &[u8]) -> Option<Vec<u8>> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn error_of(text: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "web.yml", text);
        let e = WebConfig::load(&p).unwrap_err().to_string();
        assert!(e.contains(&p.display().to_string()), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
        e
    }

    #[test]
    fn empty_file_means_no_tls_no_auth() {
        let dir = tempfile::tempdir().unwrap();
        for text in ["", "# nothing\n", "{}\n"] {
            let w = WebConfig::load(write(dir.path(), "web.yml", text)).unwrap();
            assert!(!w.tls_enabled() && !w.auth_enabled());
        }
    }

    #[test]
    fn missing_file_names_the_file() {
        let e = WebConfig::load("/nonexistent/web.yml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/web.yml"), "{e}");
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let e =
            error_of("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: c\n");
        assert!(e.contains("client_ca_file"), "{e}");
        let e = error_of("basic_auth_user:\n  a: b\n");
        assert!(e.contains("basic_auth_user"), "{e}");
    }

    #[test]
    fn bad_hash_names_the_user() {
        let e = error_of("basic_auth_users:\n  alice: plaintext\n");
        assert!(e.contains("basic_auth_users.alice"), "{e}");
    }

    /// A hash of the right shape at `cost` (no bcrypt work to make it).
    fn hash_at(cost: u32) -> String {
        format!(
            "$2y${cost:02}${}{}",
            bcrypt::BASE_64.encode([7u8; 16]),
            bcrypt::BASE_64.encode([9u8; 23])
        )
    }

    /// Regression: cost 20 or 31 hung start-up (a dummy hash at the highest
    /// cost was computed at load) instead of being refused.
    #[test]
    fn bcrypt_cost_above_the_maximum_is_refused_naming_the_user() {
        for cost in [15, 20, 31] {
            let e = error_of(&format!(
                "basic_auth_users:\n  alice: '{}'\n  bob: '{}'\n",
                hash_at(10),
                hash_at(cost)
            ));
            assert!(e.contains("basic_auth_users.bob:"), "{e}");
            assert!(
                e.contains(&format!("bcrypt cost {cost} is above the maximum 14")),
                "{e}"
            );
            assert!(e.contains("htpasswd -nBC 10 bob"), "{e}");
        }
        let e = error_of(&format!("basic_auth_users:\n  a: '{}'\n", hash_at(3)));
        assert!(e.contains("bcrypt cost 3 is below the minimum 4"), "{e}");
        // The maximum itself loads (and computes nothing at load).
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "web.yml",
            &format!("basic_auth_users:\n  a: '{}'\n", hash_at(14)),
        );
        assert!(WebConfig::load(&p).unwrap().auth_enabled());
    }

    #[test]
    fn hash_with_a_salt_that_is_not_bcrypt_base64_is_refused() {
        // Right length and prefix, so bcrypt's parser takes it; every check
        // against it would fail at once.
        let bad = format!("$2b$10${}", "!".repeat(53));
        assert!(bad.parse::<bcrypt::HashParts>().is_ok());
        let e = error_of(&format!("basic_auth_users:\n  carol: '{bad}'\n"));
        assert!(
            e.contains("basic_auth_users.carol: not a bcrypt hash"),
            "{e}"
        );
        let trailing = format!("{}$", hash_at(10));
        let e = error_of(&format!("basic_auth_users:\n  dave: '{trailing}é'\n"));
        assert!(e.contains("basic_auth_users.dave"), "{e}");
    }

    /// Regression: an unknown user was checked at the highest configured
    /// cost (alice at 10, bob at 13: a wrong password for alice took 70 ms,
    /// an unknown user 560 ms), which told a client the name was unknown.
    #[test]
    fn unknown_user_is_checked_at_a_configured_users_cost() {
        let users = BTreeMap::from([
            ("alice".to_string(), hash_at(4)),
            ("bob".to_string(), hash_at(6)),
        ]);
        let auth = BasicAuth::new(Path::new("web.yml"), users).unwrap();
        let cost_of = |h: &str| h.parse::<bcrypt::HashParts>().unwrap().get_cost();
        assert_eq!(auth.hash_for(b"alice"), (hash_at(4).as_str(), true));
        assert_eq!(auth.hash_for(b"bob"), (hash_at(6).as_str(), true));
        let mut seen = BTreeMap::new();
        for i in 0..200 {
            let name = format!("user{i}");
            let (h, known) = auth.hash_for(name.as_bytes());
            assert!(!known);
            // The same name always costs the same.
            assert_eq!(auth.hash_for(name.as_bytes()).0, h);
            *seen.entry(cost_of(h)).or_insert(0) += 1;
            // A check against the dummy is a full bcrypt run that fails,
            // not an error (which would return at once).
            if i < 2 {
                assert_eq!(bcrypt::verify(name, h).ok(), Some(false));
            }
        }
        assert_eq!(seen.keys().copied().collect::<Vec<_>>(), [4, 6], "{seen:?}");
        // Keyed hash over 200 names: each cost gets a fair share.
        assert!(seen.values().all(|&n| n > 50), "{seen:?}");
        assert!(!auth.hash_for(&[0xff, 0xfe]).1);

        let one = BasicAuth::new(
            Path::new("web.yml"),
            BTreeMap::from([("alice".to_string(), hash_at(11))]),
        )
        .unwrap();
        for name in ["bob", "root", "prometheus", ""] {
            assert_eq!(cost_of(one.hash_for(name.as_bytes()).0), 11);
        }
    }

    /// Regression: a cache hit did not renew the entry, so every 60 s the
    /// scraper needed a new bcrypt check and queued behind a wrong-password
    /// flood (503, then a timeout).
    #[test]
    fn cache_hit_renews_the_entry_so_a_busy_scraper_is_not_rechecked() {
        let users = BTreeMap::from([("prom".to_string(), hash_at(4))]);
        let auth = BasicAuth::new(Path::new("web.yml"), users).unwrap();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        auth.remember_at(b"prom:secret".to_vec(), t0);
        // Used every 200 s, well past one TTL (300 s) in total.
        for s in [200, 400, 600, 800, 1000] {
            assert!(auth.cached_at(b"prom:secret", at(s)), "at {s} s");
            assert!(!auth.cached_at(b"prom:other", at(s)));
        }
        // Unused for longer than the TTL: gone.
        assert!(!auth.cached_at(b"prom:secret", at(1000 + 301)));
    }

    #[test]
    fn missing_cert_names_key_and_file() {
        let e = error_of("tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n");
        assert!(e.contains("tls_server_config.cert_file"), "{e}");
        assert!(e.contains("nope.crt"), "{e}");
        let e = error_of("tls_server_config:\n  cert_file: x.crt\n");
        assert!(e.contains("tls_server_config.key_file: missing"), "{e}");
    }

    #[test]
    fn garbage_pem_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "c.pem", "not a certificate\n");
        write(dir.path(), "k.pem", "not a key\n");
        let p = write(
            dir.path(),
            "web.yml",
            "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n",
        );
        let e = WebConfig::load(&p).unwrap_err().to_string();
        assert!(e.contains("cert_file") && e.contains("c.pem"), "{e}");
    }

    #[test]
    fn documented_example_parses() {
        let doc = include_str!("WEB_CONFIG.md");
        let start = doc.find("# /etc/xdpacct/web.yml").unwrap();
        let yaml = &doc[start..start + doc[start..].find("```").unwrap()];
        let raw: RawWebConfig = serde_yaml::from_str(yaml).unwrap();
        let tls = raw.tls_server_config.unwrap();
        assert_eq!(tls.cert_file.as_deref(), Some("xdpacct.crt"));
        assert_eq!(tls.key_file.as_deref(), Some("xdpacct.key"));
        let users = raw.basic_auth_users.unwrap();
        let parts: bcrypt::HashParts = users["prometheus"].parse().unwrap();
        assert_eq!(parts.get_cost(), 10);
    }

    #[test]
    fn decode_basic_accepts_only_basic() {
        assert_eq!(decode_basic(b"Basic YTpi").as_deref(), Some(&b"a:b"[..]));
        assert_eq!(decode_basic(b"basic  YTpi ").as_deref(), Some(&b"a:b"[..]));
        assert_eq!(decode_basic(b"Bearer YTpi"), None);
        assert_eq!(decode_basic(b"Basic !!!"), None);
        assert_eq!(decode_basic(b"Basic"), None);
        assert_eq!(decode_basic(&[0xff, 0xfe]), None);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn check_allows_right_password_only_and_caches_it() {
        let hash = bcrypt::hash("secret", 4).unwrap();
        let users = BTreeMap::from([("prom".to_string(), hash)]);
        let auth = BasicAuth::new(Path::new("web.yml"), users).unwrap();
        let b64 = |s: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(s)
            )
        };
        assert_eq!(auth.check(None).await, Verdict::Denied);
        assert_eq!(
            auth.check(Some(b64("prom:wrong").as_bytes())).await,
            Verdict::Denied
        );
        assert_eq!(
            auth.check(Some(b64("eve:secret").as_bytes())).await,
            Verdict::Denied
        );
        assert_eq!(
            auth.check(Some(b64("prom").as_bytes())).await,
            Verdict::Denied
        );
        assert!(!auth.cached(b"prom:secret"));
        assert_eq!(
            auth.check(Some(b64("prom:secret").as_bytes())).await,
            Verdict::Allowed
        );
        assert!(auth.cached(b"prom:secret"));
        assert!(!auth.cached(b"prom:secreT"));
    }
}

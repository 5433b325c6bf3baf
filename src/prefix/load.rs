//! Loaders for prefix files, and the tables they fill.
//!
//! - [`AsTable`]: address -> origin AS number (and AS names), from pmacct's
//!   `networks_file`, a plain `prefix asn` list, or the ip2asn TSV.
//! - [`NetworkTable`]: address -> index of a named network (the operator's
//!   customers, sites, ...), from `name prefix...` lines or the API.
//!
//! Files are read line by line into one reused buffer; a file whose name
//! ends in `.gz` is gunzipped on the fly. Any bad line stops the load with a
//! [`LoadError::Line`] naming the file and the 1-based line number. Loading
//! allocates; lookups on the built tables do not.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::{range_to_prefixes, Lpm4, Lpm4Builder, Lpm6, Lpm6Builder, Prefix, PrefixError};

/// A prefix file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Not a regular file (a FIFO would hang the load, a device never end).
    #[error("{}: not a regular file", path.display())]
    NotRegular { path: PathBuf },
    /// More than [`MAX_FILE_BYTES`] (after decompression).
    #[error("{}: larger than {} MiB (after decompression); is it the right file?", path.display(), MAX_FILE_BYTES >> 20)]
    TooLarge { path: PathBuf },
    /// One line is malformed; nothing from the file should be used.
    #[error("{}:{line}: {reason}: `{text}`", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        text: String,
        reason: LineError,
    },
}

/// What is wrong with one line of a prefix file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("`{0}` is not an IP address or prefix")]
    BadAddress(String),
    #[error("prefix length /{len} is longer than {max} bits")]
    BadLength { len: u32, max: u8 },
    #[error("host bits are set beyond the prefix length")]
    HostBits,
    #[error("`{0}` is not an AS number")]
    BadAsn(String),
    #[error("expected {expected}, found {found} field(s)")]
    Fields {
        expected: &'static str,
        found: usize,
    },
    #[error("range start is after range end")]
    BadRange,
    #[error("range mixes IPv4 and IPv6 addresses")]
    MixedRange,
    #[error("line is not UTF-8")]
    NotUtf8,
    #[error("line is longer than {MAX_LINE} bytes")]
    TooLong,
    #[error(transparent)]
    Table(#[from] PrefixError),
}

/// Lines longer than this are cut in error messages.
const MAX_TEXT: usize = 120;
/// Longest line read: far more than any real prefix file has, and a bound on
/// the memory a file without newlines can take.
pub(super) const MAX_LINE: usize = 4096;
/// Most bytes read from one file (after decompression): a full ip2asn table
/// is about 30 MB, so a bigger file is a mistake or an attack (a gzip bomb).
pub(super) const MAX_FILE_BYTES: u64 = 1 << 30;

fn open(path: &Path) -> Result<Box<dyn BufRead>, LoadError> {
    let io = |source| LoadError::Io {
        path: path.to_owned(),
        source,
    };
    if !std::fs::metadata(path).map_err(io)?.is_file() {
        return Err(LoadError::NotRegular {
            path: path.to_owned(),
        });
    }
    let file = File::open(path).map_err(io)?;
    if path.extension().is_some_and(|e| e == "gz") {
        Ok(Box::new(BufReader::with_capacity(
            1 << 16,
            flate2::read::MultiGzDecoder::new(file),
        )))
    } else {
        Ok(Box::new(BufReader::with_capacity(1 << 16, file)))
    }
}

/// Calls `f` on every line of `reader` (without its line ending; other
/// whitespace is the parser's business) that is
/// not blank and, after leading whitespace, does not start with one of
/// `comments`. `path` only names the source in errors.
fn for_each_line<R: BufRead>(
    mut reader: R,
    path: &Path,
    comments: &[char],
    mut f: impl FnMut(&str) -> Result<(), LineError>,
) -> Result<(), LoadError> {
    let mut buf = Vec::with_capacity(256);
    let mut line = 0usize;
    let mut total: u64 = 0;
    loop {
        buf.clear();
        // At most one byte past the limit is read, so memory stays bounded.
        let n = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|source| LoadError::Io {
                path: path.to_owned(),
                source,
            })?;
        if n == 0 {
            return Ok(());
        }
        line += 1;
        total += n as u64;
        if total > MAX_FILE_BYTES {
            return Err(LoadError::TooLarge {
                path: path.to_owned(),
            });
        }
        let fail = |reason: LineError, text: &str| {
            // Control characters (NUL bytes of a bad file) escaped, so the
            // message stays one printable line.
            let mut text: String = text
                .trim_end()
                .chars()
                .flat_map(|c| {
                    let escape = c.is_control() && c != '\t';
                    either_escaped(c, escape)
                })
                .collect();
            if text.len() > MAX_TEXT {
                let mut cut = MAX_TEXT;
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                text.truncate(cut);
                text.push('…');
            }
            LoadError::Line {
                path: path.to_owned(),
                line,
                text,
                reason,
            }
        };
        if buf.len() > MAX_LINE {
            return Err(fail(
                LineError::TooLong,
                &String::from_utf8_lossy(&buf[..MAX_TEXT]),
            ));
        }
        let Ok(text) = std::str::from_utf8(&buf) else {
            return Err(fail(LineError::NotUtf8, &String::from_utf8_lossy(&buf)));
        };
        let t = text.trim_start();
        if t.trim_end().is_empty() || t.starts_with(comments) {
            continue;
        }
        // Only the line ending is cut: in a TSV a trailing tab is a field.
        f(text.trim_end_matches(['\n', '\r'])).map_err(|reason| fail(reason, text))?;
    }
}

/// `c`, or its `\u{..}` escape when `escape`.
fn either_escaped(c: char, escape: bool) -> impl Iterator<Item = char> {
    let mut e = c.escape_default();
    let mut plain = Some(c);
    std::iter::from_fn(move || if escape { e.next() } else { plain.take() })
}

/// Parses an AS number: `65000`, `AS65000` or `as65000`, 32 bits.
fn parse_asn(s: &str) -> Result<u32, LineError> {
    let digits = s
        .strip_prefix("AS")
        .or_else(|| s.strip_prefix("as"))
        .unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(LineError::BadAsn(s.to_owned()));
    }
    digits.parse().map_err(|_| LineError::BadAsn(s.to_owned()))
}

fn insert(
    v4: &mut Lpm4Builder,
    v6: &mut Lpm6Builder,
    prefix: Prefix,
    value: u32,
) -> Result<(), PrefixError> {
    match prefix {
        Prefix::V4 { addr, len } => v4.insert(addr, len, value),
        Prefix::V6 { addr, len } => v6.insert(addr, len, value),
    }
}

/// Collects prefix -> AS number mappings and AS names from any mix of
/// sources; [`AsTableBuilder::build`] makes the [`AsTable`]. Across all
/// sources, the same prefix loaded twice keeps the value loaded last.
#[derive(Debug, Default)]
pub struct AsTableBuilder {
    v4: Lpm4Builder,
    v6: Lpm6Builder,
    names: HashMap<u32, String>,
}

impl AsTableBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, prefix: Prefix, asn: u32) -> Result<(), PrefixError> {
        insert(&mut self.v4, &mut self.v6, prefix, asn)
    }

    /// Sets the name of `asn`, replacing any earlier one.
    pub fn set_name(&mut self, asn: u32, name: impl Into<String>) {
        self.names.insert(asn, name.into());
    }

    /// Loads pmacct's `networks_file`: one `[<next hop>,][<asn>,]<prefix>`
    /// per line (`65000,192.0.2.0/24`, `198.51.100.0/24`); lines starting
    /// with `!` are comments. A prefix without an AS number maps to AS 0.
    /// Returns the number of prefixes read.
    pub fn load_networks_file(&mut self, path: impl AsRef<Path>) -> Result<usize, LoadError> {
        let path = path.as_ref();
        self.read_networks_file(open(path)?, path)
    }

    /// As [`Self::load_networks_file`], from any reader; `path` names it in errors.
    pub fn read_networks_file<R: BufRead>(
        &mut self,
        reader: R,
        path: &Path,
    ) -> Result<usize, LoadError> {
        let mut n = 0;
        for_each_line(reader, path, &['!'], |t| {
            let fields: Vec<&str> = t.trim().split(',').map(str::trim).collect();
            let (asn, prefix) = match fields[..] {
                [p] => (0, p),
                [a, p] => (parse_asn(a)?, p),
                [nh, a, p] => {
                    nh.parse::<IpAddr>()
                        .map_err(|_| LineError::BadAddress(nh.to_owned()))?;
                    (parse_asn(a)?, p)
                }
                _ => {
                    return Err(LineError::Fields {
                        expected: "1 to 3 comma-separated",
                        found: fields.len(),
                    })
                }
            };
            self.insert(prefix.parse()?, asn)?;
            n += 1;
            Ok(())
        })?;
        Ok(n)
    }

    /// Loads a plain list: `<prefix> <asn>` per line, separated by spaces or
    /// tabs (`192.0.2.0/24 64496`, `2001:db8::/32 AS64496`); `#` starts a
    /// comment, anywhere on a line. Returns the number of prefixes read.
    pub fn load_prefix_asn(&mut self, path: impl AsRef<Path>) -> Result<usize, LoadError> {
        let path = path.as_ref();
        self.read_prefix_asn(open(path)?, path)
    }

    /// As [`Self::load_prefix_asn`], from any reader; `path` names it in errors.
    pub fn read_prefix_asn<R: BufRead>(
        &mut self,
        reader: R,
        path: &Path,
    ) -> Result<usize, LoadError> {
        let mut n = 0;
        for_each_line(reader, path, &['#'], |t| {
            let t = t.split_once('#').map_or(t, |(a, _)| a);
            let mut it = t.split_whitespace();
            let (Some(p), Some(a), None) = (it.next(), it.next(), it.next()) else {
                return Err(LineError::Fields {
                    expected: "2 (prefix, asn)",
                    found: t.split_whitespace().count(),
                });
            };
            self.insert(p.parse()?, parse_asn(a)?)?;
            n += 1;
            Ok(())
        })?;
        Ok(n)
    }

    /// Loads the ip2asn TSV (`ip2asn-v4.tsv`, `-v6`, `-combined`, gzipped
    /// or not): `range_start \t range_end \t asn \t country \t name`. Each
    /// range becomes the fewest prefixes covering it exactly; ranges of AS 0
    /// ("Not routed") are skipped. Names are taken too (a later `set_name`
    /// or names file overrides them). Returns the number of ranges kept.
    pub fn load_ip2asn(&mut self, path: impl AsRef<Path>) -> Result<usize, LoadError> {
        let path = path.as_ref();
        self.read_ip2asn(open(path)?, path)
    }

    /// As [`Self::load_ip2asn`], from any reader; `path` names it in errors.
    pub fn read_ip2asn<R: BufRead>(&mut self, reader: R, path: &Path) -> Result<usize, LoadError> {
        let mut n = 0;
        for_each_line(reader, path, &['#'], |t| {
            let fields: Vec<&str> = t.split('\t').collect();
            let [start, end, asn, _country, name] = fields[..] else {
                return Err(LineError::Fields {
                    expected: "5 tab-separated",
                    found: fields.len(),
                });
            };
            let ip = |s: &str| {
                s.trim()
                    .parse::<IpAddr>()
                    .map_err(|_| LineError::BadAddress(s.to_owned()))
            };
            let (start, end, asn) = (ip(start)?, ip(end)?, parse_asn(asn.trim())?);
            let (s, e, bits) = match (start, end) {
                (IpAddr::V4(s), IpAddr::V4(e)) => (u32::from(s) as u128, u32::from(e) as u128, 32),
                (IpAddr::V6(s), IpAddr::V6(e)) => (u128::from(s), u128::from(e), 128),
                _ => return Err(LineError::MixedRange),
            };
            if s > e {
                return Err(LineError::BadRange);
            }
            if asn == 0 {
                return Ok(());
            }
            for (p, len) in range_to_prefixes(s, e, bits) {
                if bits == 32 {
                    self.v4.insert(p as u32, len, asn)?;
                } else {
                    self.v6.insert(p, len, asn)?;
                }
            }
            let name = name.trim();
            if !name.is_empty() && !self.names.contains_key(&asn) {
                self.names.insert(asn, name.to_owned());
            }
            n += 1;
            Ok(())
        })?;
        Ok(n)
    }

    /// Loads AS names: `<asn> <name...>` per line (`64496 EXAMPLE-NET, ZZ`),
    /// the name being the rest of the line; `#` at the start of a line is a
    /// comment. Later names replace earlier ones. Returns the number read.
    pub fn load_names(&mut self, path: impl AsRef<Path>) -> Result<usize, LoadError> {
        let path = path.as_ref();
        self.read_names(open(path)?, path)
    }

    /// As [`Self::load_names`], from any reader; `path` names it in errors.
    pub fn read_names<R: BufRead>(&mut self, reader: R, path: &Path) -> Result<usize, LoadError> {
        let mut n = 0;
        for_each_line(reader, path, &['#'], |t| {
            let t = t.trim();
            let Some((a, name)) = t.split_once(char::is_whitespace) else {
                return Err(LineError::Fields {
                    expected: "2 (asn, name)",
                    found: 1,
                });
            };
            let asn = parse_asn(a)?;
            self.names.try_reserve(1).map_err(|_| {
                PrefixError::OutOfMemory(crate::memory::OutOfMemory {
                    bytes: self.names.len().saturating_mul(32),
                })
            })?;
            self.names.insert(asn, name.trim().to_owned());
            n += 1;
            Ok(())
        })?;
        Ok(n)
    }

    pub fn build(self) -> AsTable {
        self.try_build()
            .unwrap_or_else(|e| panic!("building an AS table: {e}"))
    }

    /// [`build`](Self::build), or an error when the tables do not fit in
    /// memory.
    pub fn try_build(self) -> Result<AsTable, crate::memory::OutOfMemory> {
        let mut names = self.names;
        names.shrink_to_fit();
        Ok(AsTable {
            v4: self.v4.try_build()?,
            v6: self.v6.try_build()?,
            names,
        })
    }
}

/// Address -> origin AS number. Read-only, `Send + Sync`; share it with
/// `Arc` (or `arc-swap` to reload).
#[derive(Clone, Debug)]
pub struct AsTable {
    pub v4: Lpm4,
    pub v6: Lpm6,
    pub names: HashMap<u32, String>,
}

impl AsTable {
    /// The AS of the longest prefix containing `addr`. IPv4-mapped IPv6
    /// addresses are looked up as IPv6 (as they appear on the wire).
    #[inline]
    pub fn lookup(&self, addr: IpAddr) -> Option<u32> {
        match addr {
            IpAddr::V4(a) => self.v4.lookup(u32::from(a)),
            IpAddr::V6(a) => self.v6.lookup(u128::from(a)),
        }
    }

    #[inline]
    pub fn lookup_v4(&self, addr: u32) -> Option<u32> {
        self.v4.lookup(addr)
    }

    #[inline]
    pub fn lookup_v6(&self, addr: u128) -> Option<u32> {
        self.v6.lookup(addr)
    }

    /// Starts fetching what [`lookup_v4`](Self::lookup_v4) will read first.
    #[inline]
    pub fn prefetch_v4(&self, addr: u32) {
        self.v4.prefetch(addr);
    }

    /// Starts fetching what [`lookup_v6`](Self::lookup_v6) will read first.
    #[inline]
    pub fn prefetch_v6(&self, addr: u128) {
        self.v6.prefetch(addr);
    }

    pub fn name(&self, asn: u32) -> Option<&str> {
        self.names.get(&asn).map(String::as_str)
    }

    /// Heap bytes of both tries (names not counted).
    pub fn memory_bytes(&self) -> usize {
        self.v4.memory_bytes() + self.v6.memory_bytes()
    }
}

/// Collects named networks, each a list of prefixes; the network index is
/// the order in which names first appear (0, 1, ...). Where networks
/// overlap, the longest prefix decides; the same prefix under two names
/// belongs to the name given last.
#[derive(Debug, Default)]
pub struct NetworkTableBuilder {
    /// IPv4 prefixes as the top 32 bits of an IPv6-sized key ([`v4_key`]).
    v4: Lpm6Builder,
    v6: Lpm6Builder,
    names: Vec<String>,
    index: HashMap<String, u32>,
}

impl NetworkTableBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `prefix` to network `name` (creating it); returns its index.
    pub fn add(&mut self, name: &str, prefix: Prefix) -> Result<u32, PrefixError> {
        let idx = match self.index.get(name) {
            Some(&i) => i,
            None => {
                let i = self.names.len() as u32;
                self.names.push(name.to_owned());
                self.index.insert(name.to_owned(), i);
                i
            }
        };
        match prefix {
            Prefix::V4 { addr, len } => self.v4.insert(v4_key(addr), len, idx)?,
            Prefix::V6 { addr, len } => self.v6.insert(addr, len, idx)?,
        }
        Ok(idx)
    }

    /// Loads `<name> <prefix> [<prefix>...]` lines (whitespace-separated,
    /// `#` starts a comment anywhere on a line). A name may appear on
    /// several lines. Returns the number of prefixes read.
    pub fn load(&mut self, path: impl AsRef<Path>) -> Result<usize, LoadError> {
        let path = path.as_ref();
        self.read(open(path)?, path)
    }

    /// As [`Self::load`], from any reader; `path` names it in errors.
    pub fn read<R: BufRead>(&mut self, reader: R, path: &Path) -> Result<usize, LoadError> {
        let mut n = 0;
        for_each_line(reader, path, &['#'], |t| {
            let t = t.split_once('#').map_or(t, |(a, _)| a);
            let mut it = t.split_whitespace();
            let name = it.next().unwrap_or_default();
            // Parse the whole line before adding anything, so a bad line
            // leaves no half-added network behind.
            let prefixes = it
                .map(str::parse::<Prefix>)
                .collect::<Result<Vec<_>, _>>()?;
            if prefixes.is_empty() {
                return Err(LineError::Fields {
                    expected: "a name and at least one prefix",
                    found: 1,
                });
            }
            for p in prefixes {
                self.add(name, p)?;
                n += 1;
            }
            Ok(())
        })?;
        Ok(n)
    }

    pub fn build(self) -> NetworkTable {
        self.try_build()
            .unwrap_or_else(|e| panic!("building a network table: {e}"))
    }

    /// [`build`](Self::build), or an error when the tables do not fit in
    /// memory.
    pub fn try_build(self) -> Result<NetworkTable, crate::memory::OutOfMemory> {
        Ok(NetworkTable {
            v4: self.v4.try_build()?,
            v6: self.v6.try_build()?,
            names: self.names,
        })
    }
}

/// An IPv4 address or prefix as the top 32 bits of a 128-bit trie key.
#[inline]
fn v4_key(addr: u32) -> u128 {
    (addr as u128) << 96
}

/// Address -> index of the named network holding it. Read-only, `Send + Sync`.
///
/// Both families live in the compressed trie ([`Lpm6`], IPv4 addresses as
/// the top bits of the key): a few thousand network prefixes then take a
/// few MiB that stay mostly in the caches, where a DIR-24-8 table would
/// take 64 MiB and a DRAM miss on every frame.
#[derive(Clone, Debug)]
pub struct NetworkTable {
    v4: Lpm6,
    v6: Lpm6,
    names: Vec<String>,
}

impl NetworkTable {
    #[inline]
    pub fn lookup(&self, addr: IpAddr) -> Option<u32> {
        match addr {
            IpAddr::V4(a) => self.lookup_v4(u32::from(a)),
            IpAddr::V6(a) => self.v6.lookup(u128::from(a)),
        }
    }

    #[inline]
    pub fn lookup_v4(&self, addr: u32) -> Option<u32> {
        self.v4.lookup(v4_key(addr))
    }

    #[inline]
    pub fn lookup_v6(&self, addr: u128) -> Option<u32> {
        self.v6.lookup(addr)
    }

    /// Starts fetching what [`lookup_v4`](Self::lookup_v4) will read first.
    #[inline]
    pub fn prefetch_v4(&self, addr: u32) {
        self.v4.prefetch(v4_key(addr));
    }

    /// Starts fetching what [`lookup_v6`](Self::lookup_v6) will read first.
    #[inline]
    pub fn prefetch_v6(&self, addr: u128) {
        self.v6.prefetch(addr);
    }

    /// Name of network `index`.
    pub fn name(&self, index: u32) -> Option<&str> {
        self.names.get(index as usize).map(String::as_str)
    }

    /// All network names, by index.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn memory_bytes(&self) -> usize {
        self.v4.memory_bytes() + self.v6.memory_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prefix::synth::{self, Naive4, Naive6};
    use std::io::Write;
    use std::sync::Arc;

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Asserts that `err` is a line error at `line` of `path`, and that the
    /// message names both.
    fn assert_line_error(err: LoadError, path: &Path, line: usize) -> LineError {
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("{}:{line}:", path.display())),
            "message `{msg}` lacks file:line"
        );
        match err {
            LoadError::Line {
                path: p,
                line: l,
                reason,
                ..
            } => {
                assert_eq!((p.as_path(), l), (path, line));
                reason
            }
            other => panic!("expected a line error, got {other:?}"),
        }
    }

    #[test]
    fn table_is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<AsTable>();
        check::<NetworkTable>();
        check::<Arc<Lpm4>>();
        check::<Arc<Lpm6>>();
    }

    #[test]
    fn networks_file_parses() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            &dir,
            "networks.lst",
            "! pmacct networks_file\n\
             !\n\
             \n\
             65000,192.0.2.0/24\n\
             198.51.100.0/24\n\
             \x20 65001 , 192.0.2.128/25 \n\
             10.0.0.1,4200000001,203.0.113.0/24\n\
             65002,2001:db8::/32\r\n",
        );
        let mut b = AsTableBuilder::new();
        assert_eq!(b.load_networks_file(&p).unwrap(), 5);
        let t = b.build();
        assert_eq!(t.lookup(ip("192.0.2.1")), Some(65000));
        assert_eq!(t.lookup(ip("192.0.2.200")), Some(65001));
        assert_eq!(t.lookup(ip("198.51.100.7")), Some(0));
        assert_eq!(t.lookup(ip("203.0.113.9")), Some(4_200_000_001));
        assert_eq!(t.lookup(ip("2001:db8:1::1")), Some(65002));
        assert_eq!(t.lookup(ip("8.8.8.8")), None);
        assert_eq!(t.lookup(ip("2001:db9::")), None);
    }

    #[test]
    fn networks_file_rejects_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        for (text, line, want) in [
            (
                "65000,192.0.2.0/24\n! ok\n65000,192.0.2.0/33\n",
                3,
                LineError::BadLength { len: 33, max: 32 },
            ),
            (
                "\n\nx65000,192.0.2.0/24\n",
                3,
                LineError::BadAsn("x65000".into()),
            ),
            ("192.0.2.1/24\n", 1, LineError::HostBits),
            (
                "1,2,3,192.0.2.0/24\n",
                1,
                LineError::Fields {
                    expected: "1 to 3 comma-separated",
                    found: 4,
                },
            ),
            ("nh,1,192.0.2.0/24\n", 1, LineError::BadAddress("nh".into())),
            (
                "65000,192.0.2/24\n",
                1,
                LineError::BadAddress("192.0.2".into()),
            ),
            (
                "99999999999,192.0.2.0/24\n",
                1,
                LineError::BadAsn("99999999999".into()),
            ),
        ] {
            let p = write(&dir, "bad.lst", text);
            let err = AsTableBuilder::new().load_networks_file(&p).unwrap_err();
            assert_eq!(assert_line_error(err, &p, line), want, "{text:?}");
        }
    }

    #[test]
    fn prefix_asn_list_parses_and_rejects() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            &dir,
            "routes.txt",
            "# prefix asn\n\
             192.0.2.0/24 64496\n\
             192.0.2.0/25\tAS64497   # trailing comment\n\
             2001:db8::/32  as64498\n\
             \n\
             0.0.0.0/0 1\n",
        );
        let mut b = AsTableBuilder::new();
        assert_eq!(b.load_prefix_asn(&p).unwrap(), 4);
        let t = b.build();
        assert_eq!(t.lookup(ip("192.0.2.200")), Some(64496));
        assert_eq!(t.lookup(ip("192.0.2.1")), Some(64497));
        assert_eq!(t.lookup(ip("2001:db8::1")), Some(64498));
        assert_eq!(t.lookup(ip("9.9.9.9")), Some(1));
        assert_eq!(t.lookup(ip("2001:db9::1")), None);

        for (text, line, want) in [
            (
                "192.0.2.0/24 1\n192.0.2.0/24\n",
                2,
                LineError::Fields {
                    expected: "2 (prefix, asn)",
                    found: 1,
                },
            ),
            (
                "192.0.2.0/24 1 2\n",
                1,
                LineError::Fields {
                    expected: "2 (prefix, asn)",
                    found: 3,
                },
            ),
            ("# c\n192.0.2.0/24 -1\n", 2, LineError::BadAsn("-1".into())),
            (
                "300.0.2.0/24 1\n",
                1,
                LineError::BadAddress("300.0.2.0".into()),
            ),
            (
                "2001:db8::/129 1\n",
                1,
                LineError::BadLength { len: 129, max: 128 },
            ),
            ("2001:db8::1/32 1\n", 1, LineError::HostBits),
        ] {
            let p = write(&dir, "bad.txt", text);
            let err = AsTableBuilder::new().load_prefix_asn(&p).unwrap_err();
            assert_eq!(assert_line_error(err, &p, line), want, "{text:?}");
        }
    }

    #[test]
    fn non_utf8_line_is_reported_with_its_number() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("latin1.txt");
        std::fs::write(&p, b"192.0.2.0/24 1\n# caf\xe9\n").unwrap();
        let err = AsTableBuilder::new().load_prefix_asn(&p).unwrap_err();
        assert_eq!(assert_line_error(err, &p, 2), LineError::NotUtf8);
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = AsTableBuilder::new()
            .load_prefix_asn("/nonexistent/routes.txt")
            .unwrap_err();
        assert!(matches!(err, LoadError::Io { .. }));
        assert!(err.to_string().contains("/nonexistent/routes.txt"), "{err}");
    }

    /// Regression: a file without newlines was read into one line of its
    /// whole size (2 GB took 4.2 GB of memory).
    #[test]
    fn a_line_without_end_is_refused_at_the_line_limit() {
        let reader = std::io::BufReader::new(std::io::repeat(b'1').take(1 << 26));
        let err = AsTableBuilder::new()
            .read_prefix_asn(reader, Path::new("endless.txt"))
            .unwrap_err();
        assert_eq!(
            assert_line_error(err, Path::new("endless.txt"), 1),
            LineError::TooLong
        );
    }

    /// Regression: a gzip of NUL bytes was inflated into memory.
    #[test]
    fn a_gzip_bomb_stops_at_the_line_limit() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bomb.txt.gz");
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&path).unwrap(),
            flate2::Compression::best(),
        );
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            gz.write_all(&zeros).unwrap();
        }
        gz.finish().unwrap();
        let err = AsTableBuilder::new().load_prefix_asn(&path).unwrap_err();
        assert!(
            matches!(
                err,
                LoadError::Line {
                    reason: LineError::TooLong,
                    ..
                }
            ),
            "{err}"
        );
    }

    /// Regression: a FIFO as AS file hung the load (and a reload) for ever.
    #[test]
    fn a_fifo_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(made.success());
        let err = AsTableBuilder::new().load_prefix_asn(&path).unwrap_err();
        assert!(matches!(err, LoadError::NotRegular { .. }), "{err}");
        assert!(AsTableBuilder::new().load_names("/dev/zero").is_err());
    }

    const IP2ASN: &str = "1.0.0.0\t1.0.0.255\t13335\tUS\tCLOUDFLARENET\n\
                          1.0.1.0\t1.0.3.255\t0\tNone\tNot routed\n\
                          1.0.4.0\t1.0.6.255\t38803\tAU\tGTELECOM Gtelecom Pty Ltd\n\
                          1.0.7.1\t1.0.7.6\t4200000000\tZZ\t\n\
                          2001:200::\t2001:200:ffff:ffff:ffff:ffff:ffff:ffff\t2500\tJP\tWIDE-BB WIDE Project\n\
                          2001:db8::1\t2001:db8::6\t64496\tZZ\tDOC\n";

    #[test]
    fn ip2asn_parses_ranges_into_prefixes() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, "ip2asn-combined.tsv", IP2ASN);
        let mut b = AsTableBuilder::new();
        assert_eq!(b.load_ip2asn(&p).unwrap(), 5);
        let t = b.build();
        assert_eq!(t.lookup(ip("1.0.0.0")), Some(13335));
        assert_eq!(t.lookup(ip("1.0.0.255")), Some(13335));
        assert_eq!(t.lookup(ip("1.0.1.0")), None, "AS 0 is not routed");
        assert_eq!(t.lookup(ip("1.0.3.255")), None);
        assert_eq!(t.lookup(ip("1.0.4.0")), Some(38803));
        assert_eq!(t.lookup(ip("1.0.6.255")), Some(38803));
        assert_eq!(t.lookup(ip("1.0.7.0")), None);
        for i in 1..=6 {
            assert_eq!(t.lookup(ip(&format!("1.0.7.{i}"))), Some(4_200_000_000));
        }
        assert_eq!(t.lookup(ip("1.0.7.7")), None);
        assert_eq!(t.lookup(ip("2001:200:1234::1")), Some(2500));
        assert_eq!(t.lookup(ip("2001:201::")), None);
        assert_eq!(t.lookup(ip("2001:db8::")), None);
        assert_eq!(t.lookup(ip("2001:db8::1")), Some(64496));
        assert_eq!(t.lookup(ip("2001:db8::6")), Some(64496));
        assert_eq!(t.lookup(ip("2001:db8::7")), None);
        // 1.0.4.0-1.0.6.255 is a /23 and a /24; 1.0.7.1-6 is /32 /31 /31 /32.
        assert_eq!(t.v4.len(), 1 + 2 + 4);
        assert_eq!(t.name(13335), Some("CLOUDFLARENET"));
        assert_eq!(t.name(38803), Some("GTELECOM Gtelecom Pty Ltd"));
        assert_eq!(t.name(2500), Some("WIDE-BB WIDE Project"));
        assert_eq!(t.name(4_200_000_000), None, "empty names are not kept");
        assert_eq!(t.name(0), None);
    }

    #[test]
    fn ip2asn_reads_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ip2asn-combined.tsv.gz");
        let mut gz =
            flate2::write::GzEncoder::new(File::create(&p).unwrap(), flate2::Compression::fast());
        gz.write_all(IP2ASN.as_bytes()).unwrap();
        gz.finish().unwrap();
        let mut b = AsTableBuilder::new();
        assert_eq!(b.load_ip2asn(&p).unwrap(), 5);
        assert_eq!(b.build().lookup(ip("1.0.0.9")), Some(13335));
    }

    #[test]
    fn ip2asn_rejects_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        for (text, line, want) in [
            (
                "1.0.0.0\t1.0.0.255\t13335\tUS\n",
                1,
                LineError::Fields {
                    expected: "5 tab-separated",
                    found: 4,
                },
            ),
            (
                "1.0.0.0 1.0.0.255 13335 US X\n",
                1,
                LineError::Fields {
                    expected: "5 tab-separated",
                    found: 1,
                },
            ),
            ("1.0.0.9\t1.0.0.0\t1\tUS\tX\n", 1, LineError::BadRange),
            ("1.0.0.0\t::1\t1\tUS\tX\n", 1, LineError::MixedRange),
            (
                "1.0.0.0\t1.0.0.1\t1\tUS\tX\n1.0.0.0\t1.0.0.x\t1\tUS\tX\n",
                2,
                LineError::BadAddress("1.0.0.x".into()),
            ),
            (
                "1.0.0.0\t1.0.0.1\tAS-SET\tUS\tX\n",
                1,
                LineError::BadAsn("AS-SET".into()),
            ),
        ] {
            let p = write(&dir, "bad.tsv", text);
            let err = AsTableBuilder::new().load_ip2asn(&p).unwrap_err();
            assert_eq!(assert_line_error(err, &p, line), want, "{text:?}");
        }
    }

    #[test]
    fn names_file_parses_and_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let tsv = write(&dir, "ip2asn.tsv", IP2ASN);
        let names = write(
            &dir,
            "asnames.txt",
            "# asn name\n13335 Cloudflare, Inc.\n64500\tEXAMPLE  NET\n",
        );
        let mut b = AsTableBuilder::new();
        b.load_ip2asn(&tsv).unwrap();
        assert_eq!(b.load_names(&names).unwrap(), 2);
        let t = b.build();
        assert_eq!(t.name(13335), Some("Cloudflare, Inc."));
        assert_eq!(t.name(64500), Some("EXAMPLE  NET"));
        assert_eq!(t.name(2500), Some("WIDE-BB WIDE Project"));

        for (text, line, want) in [
            (
                "1 A\n13335\n",
                2,
                LineError::Fields {
                    expected: "2 (asn, name)",
                    found: 1,
                },
            ),
            ("ASX name\n", 1, LineError::BadAsn("ASX".into())),
        ] {
            let p = write(&dir, "bad.txt", text);
            let err = AsTableBuilder::new().load_names(&p).unwrap_err();
            assert_eq!(assert_line_error(err, &p, line), want, "{text:?}");
        }
    }

    #[test]
    fn named_networks_load_and_look_up() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            &dir,
            "networks.txt",
            "# name prefix...\n\
             customer-a 192.0.2.0/24 2001:db8:a::/48\n\
             customer-b 192.0.2.128/25   # carved out of a's block\n\
             customer-a 198.51.100.0/24\n\
             backbone 0.0.0.0/0 ::/0\n",
        );
        let mut b = NetworkTableBuilder::new();
        assert_eq!(b.load(&p).unwrap(), 6);
        assert_eq!(b.add("lab", "203.0.113.0/24".parse().unwrap()).unwrap(), 3);
        let t = b.build();
        assert_eq!(t.names(), ["customer-a", "customer-b", "backbone", "lab"]);
        assert_eq!(t.lookup(ip("192.0.2.1")), Some(0));
        assert_eq!(t.lookup(ip("192.0.2.129")), Some(1));
        assert_eq!(t.lookup(ip("198.51.100.1")), Some(0));
        assert_eq!(t.lookup(ip("2001:db8:a::1")), Some(0));
        assert_eq!(t.lookup(ip("2001:db8:b::1")), Some(2));
        assert_eq!(t.lookup(ip("8.8.8.8")), Some(2));
        assert_eq!(t.lookup(ip("203.0.113.5")), Some(3));
        assert_eq!(t.name(1), Some("customer-b"));
        assert_eq!(t.name(9), None);

        for (text, line, want) in [
            (
                "a 192.0.2.0/24\nb\n",
                2,
                LineError::Fields {
                    expected: "a name and at least one prefix",
                    found: 1,
                },
            ),
            ("a 192.0.2.0/24 192.0.2.1/24\n", 1, LineError::HostBits),
            (
                "# x\n\na 192.0.2.0/24 bogus\n",
                3,
                LineError::BadAddress("bogus".into()),
            ),
        ] {
            let bad = write(&dir, "bad.txt", text);
            let err = NetworkTableBuilder::new().load(&bad).unwrap_err();
            assert_eq!(assert_line_error(err, &bad, line), want, "{text:?}");
        }
    }

    /// The full-size check: a generated 1,000,000 IPv4 + 250,000 IPv6 table,
    /// written to a file, loaded by the plain loader, then compared with the
    /// per-length hash reference on random addresses and prefix edges.
    #[test]
    fn full_table_from_generated_file_agrees_with_reference() {
        let v4 = synth::v4_prefixes(synth::FULL_V4, 1);
        let v6 = synth::v6_prefixes(synth::FULL_V6, 2);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("full-table.txt");
        synth::write_prefix_asn(io::BufWriter::new(File::create(&path).unwrap()), &v4, &v6)
            .unwrap();

        let mut b = AsTableBuilder::new();
        assert_eq!(b.load_prefix_asn(&path).unwrap(), v4.len() + v6.len());
        let t = b.build();

        let mut n4 = Naive4::default();
        for &(p, l, a) in &v4 {
            n4.insert(p, l, a);
        }
        let mut n6 = Naive6::default();
        for &(p, l, a) in &v6 {
            n6.insert(p, l, a);
        }
        assert_eq!(t.v4.len(), n4.prefixes().len());
        assert_eq!(t.v6.len(), n6.prefixes().len());
        let mem = t.memory_bytes();
        assert!(mem < 256 << 20, "full table takes {mem} bytes");

        let mut checked = 0usize;
        for a in synth::v4_addrs(&v4, 1_000_000, 3) {
            assert_eq!(
                t.lookup_v4(a),
                n4.lookup(a),
                "{}",
                std::net::Ipv4Addr::from(a)
            );
            checked += 1;
        }
        let addrs6 = synth::v6_addrs(&v6, 250_000, 4);
        let mut batch = vec![None; addrs6.len()];
        t.v6.lookup_batch(&addrs6, &mut batch);
        for (&a, &b) in addrs6.iter().zip(&batch) {
            let want = n6.lookup(a);
            assert_eq!(t.lookup_v6(a), want, "{}", std::net::Ipv6Addr::from(a));
            assert_eq!(b, want, "batch {}", std::net::Ipv6Addr::from(a));
            checked += 1;
        }
        // Edges of every 25th prefix: first, last, just outside, middle.
        for &(p, l, _) in v4.iter().step_by(25) {
            for a in synth::edges4(p, l) {
                assert_eq!(
                    t.lookup_v4(a),
                    n4.lookup(a),
                    "{}",
                    std::net::Ipv4Addr::from(a)
                );
                checked += 1;
            }
        }
        for &(p, l, _) in v6.iter().step_by(25) {
            for a in synth::edges6(p, l) {
                assert_eq!(
                    t.lookup_v6(a),
                    n6.lookup(a),
                    "{}",
                    std::net::Ipv6Addr::from(a)
                );
                checked += 1;
            }
        }
        assert!(checked > 1_250_000);
    }
}

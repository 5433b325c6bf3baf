//! Test-only: `parse_frame` against real captures and random input.
//!
//! - Every Ethernet frame of every classic pcap file in
//!   `tests/data/tcpdump` (vendored; read with a tiny record walker below;
//!   pcapng and other link types are skipped) must parse without panic.
//! - Hundreds of thousands of random byte slices, and mutations of the
//!   valid fixtures, must parse without panic and with consistent facts.

use super::parse::tests::{junk, valid_fixtures};
use super::{parse_frame, FrameFacts, L3Addrs, WireError};

/// Where the vendored tcpdump captures live, relative to the crate root.
const TCPDUMP_DIR: &str = "tests/data/tcpdump";
const LINKTYPE_ETHERNET: u32 = 1;

/// A classic pcap file split into records.
struct Pcap<'a> {
    linktype: u32,
    records: Vec<&'a [u8]>,
    /// The last record claimed more bytes than the file holds.
    cut_short: bool,
}

/// Walks a classic pcap file (either byte order, microsecond or nanosecond
/// magic). `None` when the file is not classic pcap (pcapng, modified pcap,
/// junk). Stops at the first record that runs past the end of the file.
fn pcap_records(data: &[u8]) -> Option<Pcap<'_>> {
    let magic = data.get(0..4)?;
    let le = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => return None,
    };
    let u32_at = |b: &[u8], at: usize| -> Option<u32> {
        let w: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        Some(if le {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        })
    };
    // The link-type word also carries FCS information in its top bits.
    let linktype = u32_at(data, 20)? & 0xffff;
    let mut records = Vec::new();
    let mut at = 24;
    let mut cut_short = false;
    while at < data.len() {
        let (Some(incl), Some(_orig)) = (u32_at(data, at + 8), u32_at(data, at + 12)) else {
            cut_short = true;
            break;
        };
        let start = at + 16;
        let Some(rec) = data.get(start..start + incl as usize) else {
            cut_short = true;
            break;
        };
        records.push(rec);
        at = start + incl as usize;
    }
    Some(Pcap {
        linktype,
        records,
        cut_short,
    })
}

/// Properties every parse result must have, whatever the input.
#[track_caller]
fn check_invariants(frame: &[u8], r: Result<(), WireError>, out: &FrameFacts) {
    let ctx = || format!("{r:?} {out:?} for {frame:02x?}");
    if frame.len() < 14 {
        assert_eq!(r, Err(WireError::Truncated), "{}", ctx());
        assert_eq!(*out, FrameFacts::default(), "{}", ctx());
    }
    if out.has_l4 {
        assert!(r.is_ok(), "{}", ctx());
        assert_ne!(out.addrs, L3Addrs::None, "{}", ctx());
        assert!(!out.later_fragment, "{}", ctx());
    } else {
        assert_eq!(
            (out.src_port, out.dst_port, out.tcp_flags),
            (0, 0, 0),
            "{}",
            ctx()
        );
    }
    if out.addrs == L3Addrs::None {
        let ip = (
            out.ip_len,
            out.protocol,
            out.tos,
            out.later_fragment,
            out.has_l4,
        );
        assert_eq!(ip, (0, 0, 0, false, false), "{}", ctx());
    }
    if out.tcp_flags != 0 {
        assert_eq!(out.protocol, 6, "{}", ctx());
    }
    if out.later_fragment {
        assert!(r.is_ok(), "{}", ctx());
    }
    assert!(out.vlan < 4096, "{}", ctx());
    // Nothing depends on what `out` held before.
    let mut again = FrameFacts::default();
    assert_eq!(parse_frame(frame, &mut again), r, "{}", ctx());
    assert_eq!(again, *out, "{}", ctx());
}

fn parse_checked(frame: &[u8]) -> Result<(), WireError> {
    let mut out = junk();
    let r = parse_frame(frame, &mut out);
    check_invariants(frame, r, &out);
    r
}

/// xorshift64* — deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

#[test]
fn pcap_walker_reads_both_byte_orders() {
    let frames: [&[u8]; 3] = [&[1, 2, 3], &[], &[9; 70]];
    for (le, magic) in [
        (true, 0xa1b2_c3d4u32),
        (false, 0xa1b2_c3d4),
        (true, 0xa1b2_3c4d),
        (false, 0xa1b2_3c4d),
    ] {
        let w = |x: u32| if le { x.to_le_bytes() } else { x.to_be_bytes() };
        let h = |x: u16| if le { x.to_le_bytes() } else { x.to_be_bytes() };
        let mut file = Vec::new();
        file.extend_from_slice(&w(magic));
        file.extend_from_slice(&h(2));
        file.extend_from_slice(&h(4));
        file.extend_from_slice(&[0; 8]);
        file.extend_from_slice(&w(65535));
        file.extend_from_slice(&w(1));
        for f in frames {
            file.extend_from_slice(
                &[w(1), w(2), w(f.len() as u32), w(f.len() as u32 + 10)].concat(),
            );
            file.extend_from_slice(f);
        }
        let p = pcap_records(&file).unwrap();
        assert_eq!(p.linktype, 1);
        assert_eq!(p.records, frames);
        assert!(!p.cut_short);
        // A record running past the end of the file stops the walk.
        let p = pcap_records(&file[..file.len() - 1]).unwrap();
        assert_eq!(p.records, &frames[..2]);
        assert!(p.cut_short);
    }
    assert!(
        pcap_records(&[0x0a, 0x0d, 0x0d, 0x0a, 0, 0, 0, 0]).is_none(),
        "pcapng"
    );
    assert!(pcap_records(&[0xd4, 0xc3]).is_none());
}

/// Every Ethernet frame in the vendored tcpdump captures parses without
/// panic. Prints a tally (see it with `--nocapture`).
#[test]
fn tcpdump_captures_never_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(TCPDUMP_DIR);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (the captures are vendored)", dir.display()));
    let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    let (mut files, mut skipped, mut frames, mut with_ip, mut with_l4) = (0, 0, 0u64, 0u64, 0u64);
    let mut errors = [0u64; WireError::COUNT];
    for path in &paths {
        let Ok(data) = std::fs::read(path) else {
            continue;
        };
        let Some(pcap) = pcap_records(&data) else {
            skipped += 1;
            continue;
        };
        if pcap.linktype != LINKTYPE_ETHERNET {
            skipped += 1;
            continue;
        }
        files += 1;
        for rec in pcap.records {
            let mut out = junk();
            let r = parse_frame(rec, &mut out);
            check_invariants(rec, r, &out);
            frames += 1;
            with_ip += u64::from(out.addrs != L3Addrs::None);
            with_l4 += u64::from(out.has_l4);
            if let Err(e) = r {
                errors[e as usize] += 1;
            }
        }
    }
    eprintln!(
        "{files} Ethernet pcap files ({skipped} others skipped): {frames} frames, {with_ip} with IP, \
         {with_l4} with L4, errors {:?}",
        WireError::ALL.iter().zip(errors).map(|(e, n)| (e.as_str(), n)).collect::<Vec<_>>()
    );
    // The walker really found frames, and the parser really read them.
    assert!(files > 0 && frames > 0 && with_ip > 0 && with_l4 > 0);
}

/// Random slices never panic; some start with a real Ethernet header and
/// an EtherType the parser follows, so the deeper layers get exercised.
#[test]
fn random_slices_never_panic() {
    const ETHERTYPES: [u16; 9] = [
        0x0800, 0x86dd, 0x8100, 0x88a8, 0x9100, 0x8847, 0x8848, 0x8864, 0x0806,
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut buf = [0u8; 200];
    let mut outcomes = [0u64; WireError::COUNT + 1];
    for i in 0..300_000 {
        let len = rng.below(buf.len() + 1);
        for b in &mut buf[..len] {
            *b = rng.byte();
        }
        if i % 2 == 1 && len >= 15 {
            let t = ETHERTYPES[rng.below(ETHERTYPES.len())].to_be_bytes();
            buf[12..14].copy_from_slice(&t);
            // Often a plausible IP version / IHL nibble pair next.
            if rng.below(2) == 0 {
                buf[14] = [0x45, 0x46, 0x4f, 0x60, 0x61][rng.below(5)];
            }
        }
        let r = parse_checked(&buf[..len]);
        outcomes[r.err().map_or(WireError::COUNT, |e| e as usize)] += 1;
    }
    // Every outcome is reached, or the generator is not reaching the parser.
    assert!(outcomes.iter().all(|&n| n > 0), "{outcomes:?}");
}

/// Mutations of the valid fixtures: byte changes, cuts, insertions and
/// deletions. Never a panic, always consistent facts.
#[test]
fn mutated_fixtures_never_panic() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let interesting = [
        0x00u8, 0x01, 0x05, 0x06, 0x11, 0x2c, 0x3a, 0x3c, 0x33, 0x40, 0x45, 0x60, 0x81, 0xff,
    ];
    for (name, frame) in valid_fixtures() {
        for _ in 0..20_000 {
            let mut f = frame.clone();
            for _ in 0..1 + rng.below(4) {
                if f.is_empty() {
                    break;
                }
                let at = rng.below(f.len());
                match rng.below(6) {
                    0 => f[at] = rng.byte(),
                    1 => f[at] ^= 1 << rng.below(8),
                    2 => f[at] = interesting[rng.below(interesting.len())],
                    3 => f.truncate(at),
                    4 => f.insert(at, rng.byte()),
                    _ => {
                        f.remove(at);
                    }
                }
            }
            let r = std::panic::catch_unwind(|| parse_checked(&f));
            assert!(r.is_ok(), "{name}: panicked on {f:02x?}");
        }
    }
}

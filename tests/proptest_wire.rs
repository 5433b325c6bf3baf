//! Property tests (issue 9): any bytes parse without panic, and NetFlow v9 /
//! IPFIX encode-then-decode of random flow records is the identity.
//!
//! The bodies live in `tests/common/fuzz_bodies.rs` and are shared with the
//! cargo-fuzz targets (`fuzz/`) and the corpus replay (`tests/fuzz_corpus.rs`).
//! Kept fast: 256 cases each (`PROPTEST_CASES` overrides, e.g. for long runs).

#[path = "common/fuzz_bodies.rs"]
mod fuzz_bodies;

use proptest::prelude::*;
use xdpacct::export::{FlowKey, FlowRecord};
use xdpacct::wire::{parse_frame_with, FrameFacts, L3Addrs, MplsPayload, WireOptions};

/// A random frame that often looks like Ethernet + IP, so the parser gets
/// past the first header: a real-looking prefix followed by noise.
fn frame() -> impl Strategy<Value = Vec<u8>> {
    // Including the encapsulations the parser enters (PBB, VN-Tag, E-Tag,
    // NSH, an 802.3 length for LLC/SNAP), so their views get random input.
    let ethertypes = prop::sample::select(vec![
        0x0800u16, 0x86dd, 0x8100, 0x88a8, 0x9100, 0x8847, 0x8848, 0x8864, 0x0806, 0x1234, 0x88e7,
        0x8926, 0x893f, 0x894f, 0x0030,
    ]);
    let protos = prop::sample::select(vec![6u8, 17, 1, 58, 132, 136, 0, 43, 44, 60, 51, 50, 4, 41]);
    (
        ethertypes,
        protos,
        any::<u8>(),
        prop::collection::vec(any::<u8>(), 0..200),
        any::<bool>(),
    )
        .prop_map(|(et, proto, ihl, tail, raw)| {
            if raw {
                return tail;
            }
            let mut f = vec![0xa5u8; 12];
            f.extend_from_slice(&et.to_be_bytes());
            match et {
                0x0800 => {
                    f.push(0x40 | (ihl & 0x0f));
                    f.extend_from_slice(&[0, 0, 60, 0, 0, 0, 0, 64, proto, 0, 0]);
                    f.extend_from_slice(&[10, 0, 0, 1, 198, 51, 100, 7]);
                }
                0x86dd => {
                    f.extend_from_slice(&[0x60, 0, 0, 0, 0, 40, proto, 64]);
                    f.extend_from_slice(&[0x20; 32]);
                }
                // LLC/SNAP with an EtherType, IP or not as the noise has it.
                0x0030 => f.extend_from_slice(&[0xaa, 0xaa, 0x03, 0, 0, 0]),
                _ => {}
            }
            f.extend_from_slice(&tail);
            f
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// `parse_frame` never panics, whatever the bytes.
    #[test]
    fn any_bytes_parse_without_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        fuzz_bodies::parse_frame_body(&bytes);
    }

    /// Same, with frames that get past Ethernet and IP more often.
    #[test]
    fn ip_looking_frames_parse_without_panic(f in frame()) {
        fuzz_bodies::parse_frame_body(&f);
    }

    /// Same under every MPLS payload setting (pseudowires without control
    /// word read the bytes after any label stack as Ethernet).
    #[test]
    fn every_mpls_setting_parses_without_panic(f in frame(), mode in 0usize..3) {
        let opts = WireOptions { mpls_payload: MplsPayload::ALL[mode] };
        let mut facts = FrameFacts::default();
        if parse_frame_with(&f, &mut facts, &opts).is_err() {
            prop_assert!(!facts.has_l4, "{facts:?}");
        }
    }

    /// Encode then decode is the identity, for v9 and IPFIX, any MTU.
    #[test]
    fn encode_decode_round_trip(
        recs in prop::collection::vec(flow_record(), 1..40),
        ipfix in any::<bool>(),
        mtu in 512usize..2000,
    ) {
        let version = if ipfix { 10 } else { 9 };
        if let Err(e) = fuzz_bodies::round_trip(&recs, version, mtu) {
            prop_assert!(false, "{e}");
        }
    }

    /// The byte-driven round trip the fuzz target uses never fails either.
    #[test]
    fn round_trip_from_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        if let Err(e) = fuzz_bodies::round_trip_bytes(&bytes) {
            prop_assert!(false, "{e}");
        }
    }
}

/// Records as the flow cache makes them: ICMP type and code fit a byte,
/// timestamps lie between the encoder's boot time and now, last >= first.
fn flow_record() -> impl Strategy<Value = FlowRecord> {
    (
        (any::<u16>(), 0u16..4096, any::<bool>(), any::<[u8; 32]>()),
        (
            prop::sample::select(vec![6u8, 17, 1, 58, 132, 47, 0, 255]),
            any::<u16>(),
            any::<u16>(),
            any::<u8>(),
        ),
        (any::<u64>(), any::<u64>()),
        (0u64..fuzz_bodies::SPAN_MS, 0u64..fuzz_bodies::SPAN_MS),
        (any::<u8>(), any::<u8>()),
    )
        .prop_map(
            |(
                (iface, vlan, v6, a),
                (protocol, sp, dp, tos),
                (packets, bytes),
                (t1, t2),
                (fl, dir),
            )| {
                fuzz_bodies::make_record(
                    iface,
                    vlan,
                    v6,
                    &a,
                    protocol,
                    sp,
                    dp,
                    tos,
                    packets,
                    bytes,
                    t1.min(t2),
                    t1.max(t2),
                    fl,
                    dir,
                )
            },
        )
}

#[test]
fn make_record_keeps_icmp_type_and_code_in_a_byte() {
    let r = fuzz_bodies::make_record(
        1, 0, false, &[1; 32], 1, 0x1234, 0x5678, 0, 1, 1, 0, 0, 0, 0,
    );
    assert_eq!((r.key.src_port, r.key.dst_port), (0x34, 0x78));
    let _ = FlowKey::default();
    assert!(matches!(r.key.addrs, L3Addrs::V4 { .. }));
}

/// Regression, found by `encode_decode_round_trip` (issue 9): with `mtu` not
/// a multiple of 4 the encoder padded the last set to `mtu + 1..=3` bytes.
#[test]
fn encoder_exceeds_an_mtu_that_is_not_a_multiple_of_4() {
    for n in 1..120u64 {
        let recs: Vec<FlowRecord> = (0..n)
            .map(|i| {
                fuzz_bodies::make_record(1, 0, i % 2 == 0, &[7; 32], 6, 1, 2, 0, i, i, 0, 0, 0, 0)
            })
            .collect();
        for mtu in [513, 514, 515, 1037, 1038, 1039] {
            for version in [9, 10] {
                fuzz_bodies::round_trip(&recs, version, mtu).unwrap();
            }
        }
    }
}

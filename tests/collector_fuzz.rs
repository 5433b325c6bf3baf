//! The `collector` fuzz target's body (also built into
//! fuzz/fuzz_targets/collector.rs), the replay of its committed corpus
//! (fuzz/corpus/collector/), and property tests: any bytes, alone or as a
//! sequence of datagrams, decode without panic and within the caps.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use xdpacct::collector::{ByteLayer, Collector, CollectorConfig};

/// Caps small enough that the fuzzer reaches them.
fn fuzz_config() -> CollectorConfig {
    let mut cfg = CollectorConfig::default();
    cfg.limits.max_exporters = 4;
    cfg.limits.max_templates_per_exporter = 8;
    cfg.limits.max_templates = 16;
    cfg.limits.max_template_fields = 64;
    cfg.limits.max_pending_bytes_per_exporter = 4096;
    cfg.limits.max_pending_bytes = 8192;
    cfg.limits.max_samplers_per_exporter = 4;
    cfg.limits.max_streams_per_exporter = 8;
    cfg.limits.max_interface_counters = 8;
    cfg
}

/// Input: one datagram, or `MULT` then datagrams as (u8 source, u16 length,
/// bytes), so templates, held data and several exporters interact.
/// Returns the records decoded.
pub fn collector_body(data: &[u8]) -> u64 {
    let cfg = fuzz_config();
    let limits = cfg.limits.clone();
    let mut c = Collector::new(cfg).expect("valid config");
    let now = Instant::now();
    let mut records = 0u64;
    let mut sink = |r: &xdpacct::collector::FlowRecord| {
        records += 1;
        let (l2, _) = r.bytes(ByteLayer::L2Fcs);
        assert!(l2 >= r.l2_bytes);
        assert!(r.sampling_rate >= 1);
    };
    if let Some(mut rest) = data.strip_prefix(b"MULT") {
        let mut t = now;
        while rest.len() >= 3 {
            let src = rest[0];
            let len = usize::from(u16::from_be_bytes([rest[1], rest[2]]));
            let end = (3 + len).min(rest.len());
            let from = SocketAddr::from(([192, 0, 2, src % 8], 2055));
            c.datagram(from, t, &rest[3..end], &mut sink);
            rest = &rest[end..];
            t += Duration::from_millis(700);
        }
    } else {
        c.datagram(
            SocketAddr::from(([192, 0, 2, 1], 2055)),
            now,
            data,
            &mut sink,
        );
    }
    let s = c.stats();
    assert!(s.templates_active as usize <= limits.max_templates);
    assert!(s.pending_bytes as usize <= limits.max_pending_bytes);
    assert!(s.exporters_active as usize <= limits.max_exporters);
    assert!(c.interface_counters().count() <= limits.max_interface_counters);
    let total: u64 = s.records.iter().sum();
    assert_eq!(total, records);
    c.maintain(now + Duration::from_secs(3600 * 2), &mut |_| {});
    assert_eq!(c.stats().pending_bytes, 0);
    assert_eq!(c.stats().exporters_active, 0);
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::Path;

    #[test]
    fn corpus_collector() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/collector");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        files.sort();
        assert!(files.len() >= 5, "corpus too small");
        let mut records = 0;
        for f in files {
            let data = std::fs::read(&f).unwrap();
            let r = std::panic::catch_unwind(|| collector_body(&data));
            assert!(r.is_ok(), "{}: fuzz body panicked", f.display());
            records += r.unwrap_or(0);
            // Every prefix too (truncation at every byte).
            for cut in 0..data.len() {
                let r = std::panic::catch_unwind(|| collector_body(&data[..cut]));
                assert!(r.is_ok(), "{} cut at {cut}: panicked", f.display());
            }
        }
        // Singles: v5 2, v9 2, options 0, IPFIX 1, sFlow 2; data before
        // template: 2 released (the other exporter's 2 stay held); options
        // then data: 2 + 1 + 2 + 2.
        assert_eq!(records, 16, "the seeds decode as built");
    }

    fn header() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(vec![0u8, 5]),
            Just(vec![0u8, 9]),
            Just(vec![0u8, 10]),
            Just(vec![0u8, 0, 0, 5, 0, 0, 0, 1]),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Random bytes never panic.
        #[test]
        fn any_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
            collector_body(&bytes);
        }

        /// Random bodies behind each protocol's version, so decoding
        /// goes past the first check.
        #[test]
        fn any_body_behind_a_version_never_panics(
            h in header(),
            bytes in prop::collection::vec(any::<u8>(), 0..600),
        ) {
            let mut d = h;
            d.extend_from_slice(&bytes);
            collector_body(&d);
        }

        /// Random datagram sequences from several sources.
        #[test]
        fn any_datagram_sequence_never_panics(
            parts in prop::collection::vec((any::<u8>(), header(), prop::collection::vec(any::<u8>(), 0..200)), 0..12),
        ) {
            let mut d = b"MULT".to_vec();
            for (src, h, body) in parts {
                let len = (h.len() + body.len()) as u16;
                d.push(src);
                d.extend_from_slice(&len.to_be_bytes());
                d.extend_from_slice(&h);
                d.extend_from_slice(&body);
            }
            collector_body(&d);
        }
    }
}

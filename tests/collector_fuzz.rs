//! The bodies of the collector fuzz targets (built into
//! fuzz/fuzz_targets/collector.rs and one target per decoder:
//! netflow_v5.rs, netflow_v9.rs, ipfix.rs, sflow_v5.rs), the replay of
//! their committed corpora (fuzz/corpus/<target>/, fuzz/regressions/<target>/),
//! and property tests: any bytes, alone or as a sequence of datagrams,
//! decode without panic and within the caps.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use xdpacct::collector::{ByteLayer, Collector, CollectorConfig, FlowProtocol};

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

/// The version bytes that send a datagram to `p`'s decoder.
fn version_of(p: FlowProtocol) -> &'static [u8] {
    match p {
        FlowProtocol::NetflowV5 => &[0, 5],
        FlowProtocol::NetflowV9 => &[0, 9],
        FlowProtocol::Ipfix => &[0, 10],
        FlowProtocol::SflowV5 => &[0, 0, 0, 5],
    }
}

/// Input: one datagram, or `MULT` then datagrams as (u8 source, u16 length,
/// bytes), so templates, held data and several exporters interact.
/// Returns the records decoded.
pub fn collector_body(data: &[u8]) -> u64 {
    decode_all(data, None)
}

/// One decoder's target: [`collector_body`] with every datagram's first
/// bytes set to `p`'s version, so that no input is spent on recognising the
/// protocol and the decoder keeps its state (templates, samplers, sequence
/// numbers, held sets) across the datagrams of one input. Also checks that
/// every record came from `p`'s decoder.
pub fn decoder_body(p: FlowProtocol, data: &[u8]) -> u64 {
    decode_all(data, Some(p))
}

fn decode_all(data: &[u8], only: Option<FlowProtocol>) -> u64 {
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
        if only.is_some() {
            assert_eq!(r.protocol_source, only);
        }
    };
    let mut buf = Vec::new();
    let mut one = |c: &mut Collector,
                   src: u8,
                   t: Instant,
                   d: &[u8],
                   sink: &mut dyn FnMut(&xdpacct::collector::FlowRecord)| {
        let from = SocketAddr::from(([192, 0, 2, src % 8], 2055));
        let d = match only {
            Some(p) => {
                let v = version_of(p);
                buf.clear();
                buf.extend_from_slice(v);
                buf.extend_from_slice(d.get(v.len()..).unwrap_or_default());
                &buf[..]
            }
            None => d,
        };
        c.datagram(from, t, d, &mut |r| sink(r));
    };
    if let Some(mut rest) = data.strip_prefix(b"MULT") {
        let mut t = now;
        while rest.len() >= 3 {
            let src = rest[0];
            let len = usize::from(u16::from_be_bytes([rest[1], rest[2]]));
            let end = (3 + len).min(rest.len());
            one(&mut c, src, t, &rest[3..end], &mut sink);
            rest = &rest[end..];
            t += Duration::from_millis(700);
        }
    } else {
        one(&mut c, 1, now, data, &mut sink);
    }
    let s = c.stats();
    assert!(s.templates_active as usize <= limits.max_templates);
    assert!(s.pending_bytes as usize <= limits.max_pending_bytes);
    assert!(s.exporters_active as usize <= limits.max_exporters);
    assert!(c.interface_counters().count() <= limits.max_interface_counters);
    let total: u64 = s.records.iter().sum();
    assert_eq!(total, records);
    if let Some(p) = only {
        assert_eq!(s.records(p), total);
    }
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

    /// Every committed input of `target` (corpus and regressions) through
    /// `body`, and, when `cuts`, every prefix of it (truncation at every
    /// byte). Returns the records decoded from the whole inputs.
    fn replay(
        target: &str,
        cuts: bool,
        body: impl Fn(&[u8]) -> u64 + std::panic::RefUnwindSafe,
    ) -> u64 {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        let mut files: Vec<_> = ["corpus", "regressions"]
            .iter()
            .filter_map(|kind| std::fs::read_dir(root.join(kind).join(target)).ok())
            .flatten()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        files.sort();
        assert!(files.len() >= 5, "{target}: corpus too small");
        let mut records = 0;
        for f in &files {
            let data = std::fs::read(f).unwrap();
            let r = std::panic::catch_unwind(|| body(&data));
            assert!(r.is_ok(), "{}: fuzz body panicked", f.display());
            records += r.unwrap_or(0);
            for cut in (0..data.len()).filter(|_| cuts) {
                let r = std::panic::catch_unwind(|| body(&data[..cut]));
                assert!(r.is_ok(), "{} cut at {cut}: panicked", f.display());
            }
        }
        eprintln!("{target}: {} inputs, {records} records", files.len());
        records
    }

    #[test]
    fn corpus_collector() {
        // Singles: v5 2, v9 2, options 0, IPFIX 1, sFlow 2; data before
        // template: 2 released (the other exporter's 2 stay held); options
        // then data: 2 + 1 + 2 + 2.
        let records = replay("collector", true, collector_body);
        assert_eq!(records, 16, "the seeds decode as built");
    }

    /// The per-decoder targets' corpora (fuzz/seed.py, grown by `cargo
    /// fuzz run` and minimised with `cargo fuzz cmin`) decode without a
    /// panic, and the seeds taken from real exporters decode to records.
    #[test]
    fn corpus_per_decoder() {
        for (target, p) in [
            ("netflow_v5", FlowProtocol::NetflowV5),
            ("netflow_v9", FlowProtocol::NetflowV9),
            ("ipfix", FlowProtocol::Ipfix),
            ("sflow_v5", FlowProtocol::SflowV5),
        ] {
            let records = replay(target, false, |d| decoder_body(p, d));
            assert!(records > 0, "{target}: no seed decodes to a record");
        }
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

//! Replays every committed fuzz input (`fuzz/corpus/<target>/*` and
//! `fuzz/regressions/<target>/*`) through the fuzz targets' bodies
//! (`tests/common/fuzz_bodies.rs`), so a crash found once stays fixed and
//! the corpus keeps running without nightly or cargo-fuzz.

#[path = "common/fuzz_bodies.rs"]
mod fuzz_bodies;

use std::path::Path;

fn replay(target: &str, body: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut n = 0;
    for kind in ["corpus", "regressions"] {
        let Ok(dir) = std::fs::read_dir(root.join(kind).join(target)) else {
            continue;
        };
        let mut files: Vec<_> = dir.filter_map(Result::ok).map(|e| e.path()).collect();
        files.sort();
        for f in files {
            let data = std::fs::read(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            let r = std::panic::catch_unwind(|| body(&data));
            assert!(r.is_ok(), "{}: fuzz body panicked", f.display());
            n += 1;
        }
    }
    assert!(n > 0, "no corpus for fuzz target {target}");
    eprintln!("{target}: {n} inputs");
}

#[test]
fn corpus_parse_frame() {
    replay("parse_frame", fuzz_bodies::parse_frame_body);
}

#[test]
fn corpus_config_toml() {
    replay("config_toml", fuzz_bodies::config_body);
}

#[test]
fn corpus_prefix_tables() {
    replay("prefix_tables", fuzz_bodies::prefix_body);
}

#[test]
fn corpus_flow_roundtrip() {
    replay("flow_roundtrip", fuzz_bodies::round_trip_body);
}

//! Builds the generator's BPF program (`bpf/trafficgen.bpf.c`) and its typed
//! skeleton (`$OUT_DIR/trafficgen.skel.rs`, included by `src/main.rs`).

use std::env;
use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

const SRC: &str = "bpf/trafficgen.bpf.c";

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    SkeletonBuilder::new()
        .source(SRC)
        .clang_args(["-I/usr/include/x86_64-linux-gnu", "-Wall"])
        .build_and_generate(out.join("trafficgen.skel.rs"))
        .unwrap_or_else(|e| panic!("building {SRC}: {e:#}"));
    println!("cargo:rerun-if-changed={SRC}");
}

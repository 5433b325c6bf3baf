//! Builds the XDP program in `bpf/` and generates its typed skeleton
//! (`$OUT_DIR/xdpacct.skel.rs`, included by `src/capture/afxdp/skel.rs`).

use std::env;
use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

const SRC: &str = "bpf/xdpacct.bpf.c";
const GEN_SRC: &str = "bpf/trafficgen.bpf.c";

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    SkeletonBuilder::new()
        .source(SRC)
        .clang_args(["-I/usr/include/x86_64-linux-gnu", "-Ibpf", "-Wall"])
        .build_and_generate(out.join("xdpacct.skel.rs"))
        .unwrap_or_else(|e| panic!("building {SRC}: {e:#}"));
    // Second object: the bench traffic generator (bench/trafficgen/), which
    // includes `$OUT_DIR/trafficgen.skel.rs`.
    SkeletonBuilder::new()
        .source(GEN_SRC)
        .clang_args(["-I/usr/include/x86_64-linux-gnu", "-Ibpf", "-Wall"])
        .build_and_generate(out.join("trafficgen.skel.rs"))
        .unwrap_or_else(|e| panic!("building {GEN_SRC}: {e:#}"));
    println!("cargo:rerun-if-changed={GEN_SRC}");
    println!("cargo:rerun-if-changed=bpf/xdpacct.bpf.c");
    println!("cargo:rerun-if-changed=bpf/xdpacct.h");
}

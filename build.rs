//! Builds the XDP program in `bpf/` and generates its typed skeleton
//! (`$OUT_DIR/xdpacct.skel.rs`, included by `src/capture/afxdp/skel.rs`).
//! The bench traffic generator has its own crate and build script
//! (bench/trafficgen/).

use std::env;
use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

const SRC: &str = "bpf/xdpacct.bpf.c";

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    SkeletonBuilder::new()
        .source(SRC)
        .clang_args(["-I/usr/include/x86_64-linux-gnu", "-Ibpf", "-Wall"])
        .build_and_generate(out.join("xdpacct.skel.rs"))
        .unwrap_or_else(|e| panic!("building {SRC}: {e:#}"));
    println!("cargo:rerun-if-changed={SRC}");
    println!("cargo:rerun-if-changed=bpf/xdpacct.h");
}

//! The skeleton libbpf-cargo generated from `bpf/xdpacct.bpf.c` (see build.rs).
#![allow(
    clippy::all,
    clippy::undocumented_unsafe_blocks,
    missing_docs,
    unused_qualifications,
    non_camel_case_types,
    dead_code,
    unreachable_pub
)]

include!(concat!(env!("OUT_DIR"), "/xdpacct.skel.rs"));

//! Fuzz target `ipfix`: one decoder, its state kept across the datagrams
//! of an input; see `decoder_body` in tests/collector_fuzz.rs.
#![no_main]

#[path = "../../tests/collector_fuzz.rs"]
mod collector_fuzz;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = collector_fuzz::decoder_body(xdpacct::collector::FlowProtocol::Ipfix, data);
});

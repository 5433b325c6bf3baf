//! Fuzz target `collector`: all four decoders, the protocol recognised per
//! datagram; see `collector_body` in tests/collector_fuzz.rs.
#![no_main]

#[path = "../../tests/collector_fuzz.rs"]
mod collector_fuzz;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = collector_fuzz::collector_body(data);
});

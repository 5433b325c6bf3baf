//! Fuzz target `prefix_tables`: see `prefix_body` in tests/common/fuzz_bodies.rs.
#![no_main]

#[path = "../../tests/common/fuzz_bodies.rs"]
mod fuzz_bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzz_bodies::prefix_body(data);
});

//! Fuzzes `ServerUrl::parse` for `socket=` values. The checks are in fuzz/checks.rs.

#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::server_url(data));

//! Fuzzes the configuration file parser and `Settings::apply`. The checks are in fuzz/checks.rs.

#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::config_text(data));

//! Fuzzes the module argument parser, `Settings::from_args`. The checks are in fuzz/checks.rs.

#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::settings_args(data));

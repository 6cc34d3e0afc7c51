//! Fuzzes the SOAP reply parsers (logon, logoff, getUser). The checks are in fuzz/checks.rs.

#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::soap_reply(data));

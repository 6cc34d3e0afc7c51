//! The checks that the fuzz targets run on each input. tests/fuzz_corpus.rs
//! runs the same checks on every corpus file in the normal test suite, so a
//! crash that fuzzing found stays fixed without cargo-fuzz.

#![allow(dead_code)] // each fuzz target uses one of the functions

use pam_mapi::options::{parse_config_text, Settings};
use pam_mapi::server::ServerUrl;
use pam_mapi::soap::{parse_get_user_response, parse_logoff_response, parse_logon_response};

/// Feeds a reply body to the three SOAP reply parsers. A reply may count as a
/// logon result only if it names `logonResponse` and carries an `er` element,
/// because the module turns `er` = 0 into PAM_SUCCESS.
pub fn soap_reply(body: &[u8]) {
    if let Ok(response) = parse_logon_response(body) {
        let text = std::str::from_utf8(body).expect("an accepted reply is UTF-8");
        assert!(text.contains("logonResponse"), "accepted a reply without logonResponse");
        assert!(text.contains("er>"), "accepted a reply without an er element: er={}", response.er);
    }
    let _ = parse_logoff_response(body);
    let _ = parse_get_user_response(body);
}

/// Feeds module arguments, one per line, to `Settings::from_args`. Accepted
/// settings must have a server and a connect timeout within the total timeout.
pub fn settings_args(data: &[u8]) {
    // libpam passes NUL-terminated strings and pam_mapi rejects non-UTF-8 ones
    // before parsing, so only UTF-8 without NUL reaches the parser.
    let Ok(text) = std::str::from_utf8(data) else { return };
    if text.contains('\0') {
        return;
    }
    let args: Vec<String> = text.split('\n').map(str::to_string).collect();
    if let Ok(settings) = Settings::from_args(&args) {
        assert!(!settings.servers.is_empty(), "accepted settings without a server");
        assert!(settings.connect_timeout <= settings.timeout, "connect_timeout exceeds timeout");
    }
}

/// Feeds text to the configuration file parser, then every key and value it
/// returns to `Settings::apply`, as `Settings::load` does.
pub fn config_text(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(entries) = parse_config_text(text, "fuzz.conf") else { return };
    let mut settings = Settings::default();
    for (key, value) in entries {
        let _ = settings.apply(&key, Some(&value), "fuzz.conf");
    }
}

/// Feeds text to `ServerUrl::parse`. An accepted URL must print as the text
/// given and parse again to the same value.
pub fn server_url(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(url) = ServerUrl::parse(text) else { return };
    assert_eq!(url.to_string(), text, "an accepted URL prints differently");
    assert_eq!(ServerUrl::parse(&url.to_string()), Ok(url.clone()), "an accepted URL does not parse again");
    let _ = (url.is_local(), url.is_tls());
}

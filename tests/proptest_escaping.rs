//! Property test: every user name and password that pam_mapi's input checks
//! accept reaches the Kopano stand-in byte for byte through the real libpam.
//! The generated text mixes XML markup (`& < > ' "`), tabs, spaces, non-ASCII
//! characters and the `{1}:`/`{2}:` prefixes that kopano-server would otherwise
//! decode as obfuscated passwords.

mod common;

use common::*;
use kopano_standin::{Config, Server};
use pam_mapi::input::{check_password, check_user};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError};

/// Characters that XML, the SOAP envelope or the Kopano obfuscation treat
/// specially, plus a few multi-byte ones.
const SPECIAL: &[char] = &[
    '&', '<', '>', '\'', '"', '\t', ' ', '{', '}', ':', ';', '=', '\\', '/', '%', '#', 'é', 'ß', 'Ω', '雪', '😀',
    '\u{a0}', '\u{2028}', '\u{fffd}', '\u{fdd0}', '\u{10ffff}',
];

fn text_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => proptest::sample::select(SPECIAL),
        4 => proptest::char::range('!', '~'),
        1 => any::<char>(),
    ]
}

/// Text with an optional obfuscation prefix, filtered by `accepted`.
fn text(max_chars: usize, accepted: fn(&str) -> bool) -> impl Strategy<Value = String> {
    let prefix = proptest::sample::select(&["", "", "{1}:", "{2}:"][..]);
    (prefix, proptest::collection::vec(text_char(), 1..max_chars))
        .prop_map(|(prefix, chars)| format!("{prefix}{}", chars.into_iter().collect::<String>()))
        .prop_filter("rejected by the module's input checks", move |text| accepted(text))
}

fn user_accepted(user: &str) -> bool {
    check_user(user.as_bytes()).is_ok()
}

fn password_accepted(password: &str) -> bool {
    check_password(password.as_bytes()).is_ok()
}

fn logon_round_trip(user: &str, password: &str) -> Result<(), TestCaseError> {
    let server = Server::start(Config::soap().user(user, password)).unwrap();
    let state = scratch_dir("proptest").join("state");
    let service = Service::simple(&format!("socket={} state_file={}", server.url(), state.display()));

    let code = authenticate(&service, user, password);
    let logons = server.logons();
    prop_assert_eq!(logons.len(), 1, "one logon request per authentication");
    prop_assert_eq!(&logons[0].username, user);
    prop_assert_eq!(&logons[0].password, &password.as_bytes().to_vec());
    prop_assert_eq!(name(code), name(PAM_SUCCESS));
    let _ = std::fs::remove_dir_all(state.parent().unwrap());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn accepted_input_reaches_server_unchanged(
        user in text(40, user_accepted),
        password in text(60, password_accepted),
    ) {
        logon_round_trip(&user, &password)?;
    }
}

#[test]
fn markup_and_prefix_samples_reach_server() {
    let samples = [
        ("alice", "{1}:a&b<c>d'e\"f"),
        ("{2}:bob", "{2}:\tp@ss word"),
        (" spaced user ", " leading and trailing "),
        ("ümlaut&<>", "雪 😀 \u{10ffff}"),
    ];
    for (user, password) in samples {
        logon_round_trip(user, password).unwrap_or_else(|e| panic!("user {user:?}: {e}"));
    }
}

//! Runs every file of the fuzz corpus (fuzz/corpus/TARGET) and of the saved
//! crashes (fuzz/regressions/TARGET, if any) through the checks of the fuzz
//! targets, so that the normal test suite covers them on stable Rust without
//! cargo-fuzz.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::Path;

/// Runs `check` on every file under fuzz/corpus/TARGET and fuzz/regressions/TARGET
/// and returns how many files it read.
fn replay(target: &str, check: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut count = 0;
    for kind in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(kind).join(target)) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "fuzz input {} fails its check", path.display());
            count += 1;
        }
    }
    count
}

#[test]
fn soap_reply_corpus_passes() {
    assert!(replay("soap_reply", checks::soap_reply) > 0, "fuzz/corpus/soap_reply is empty");
}

#[test]
fn settings_args_corpus_passes() {
    assert!(replay("settings_args", checks::settings_args) > 0, "fuzz/corpus/settings_args is empty");
}

#[test]
fn config_text_corpus_passes() {
    assert!(replay("config_text", checks::config_text) > 0, "fuzz/corpus/config_text is empty");
}

#[test]
fn server_url_corpus_passes() {
    assert!(replay("server_url", checks::server_url) > 0, "fuzz/corpus/server_url is empty");
}

//! The option list in the code, the README and the man pages must not drift.

use pam_mapi::options::OPTION_NAMES;

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn readme_settings_table_lists_every_option() {
    let readme = read("README.md");
    for name in OPTION_NAMES {
        let row = format!("| `{name}` |");
        assert!(readme.contains(&row), "README.md has no settings row for {name}");
    }
}

#[test]
fn man_page_lists_every_option() {
    let page = read("docs/pam_mapi.8");
    for name in OPTION_NAMES {
        let entry = page.lines().any(|l| l.starts_with(".It Cm ") && l.split_whitespace().nth(2) == Some(name));
        assert!(entry, "docs/pam_mapi.8 has no .It Cm entry for {name}");
    }
}

#[test]
fn config_man_page_lists_every_key() {
    let page = read("docs/pam_mapi.conf.5");
    for name in OPTION_NAMES.iter().filter(|n| **n != "config") {
        assert!(page.contains(name), "docs/pam_mapi.conf.5 does not mention {name}");
    }
}

#[test]
fn sample_config_mentions_every_key() {
    let sample = read("docs/pam_mapi.conf");
    for name in OPTION_NAMES.iter().filter(|n| **n != "config") {
        assert!(sample.contains(name), "docs/pam_mapi.conf does not mention {name}");
    }
}

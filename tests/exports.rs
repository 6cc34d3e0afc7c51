//! The built module exports only the `pam_sm_*` entry points, so that nothing
//! else in it can clash with symbols of the application that loads it.

mod common;

#[test]
fn module_exports_only_pam_sm_symbols() {
    let output = std::process::Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(common::module_path())
        .output()
        .expect("nm from binutils must be installed");
    assert!(output.status.success(), "nm failed: {}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    let symbols: Vec<&str> = text.lines().filter_map(|l| l.split_whitespace().nth(2)).collect();
    let mut expected = vec![
        "pam_sm_acct_mgmt",
        "pam_sm_authenticate",
        "pam_sm_chauthtok",
        "pam_sm_close_session",
        "pam_sm_open_session",
        "pam_sm_setcred",
    ];
    expected.sort();
    let mut found = symbols.clone();
    found.sort();
    assert_eq!(found, expected);
}

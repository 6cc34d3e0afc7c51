//! Throttling of repeated failed logons, through the real libpam against the
//! stand-in Kopano server: the stand-in's logon count shows whether an attempt
//! reached the server.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use kopano_standin::{Config, Fault, Server};

const PASSWORD: &str = "right-pw";

fn server() -> Server {
    Server::start(Config::soap().user("alice", PASSWORD)).unwrap()
}

/// Returns a throttle file path in a fresh scratch directory.
fn throttle_file() -> PathBuf {
    scratch_dir("throttle").join("throttle.state")
}

/// Writes a service with throttling after `failures` failed logons within `window` seconds.
fn service(server: &Server, file: &Path, failures: u32, window: u32) -> Service {
    Service::simple(&format!(
        "socket={} timeout=2 throttle_failures={failures} throttle_window={window} throttle_file={}",
        server.url(),
        file.display()
    ))
}

fn attempt(service: &Service, user: &str, password: &str, rhost: Option<&str>) -> i32 {
    run(service, Attempt { user, password: Some(password.as_bytes()), rhost, ..Default::default() }).auth
}

#[test]
fn throttled_attempt_sends_no_request() {
    let server = server();
    let file = throttle_file();
    let service = service(&server, &file, 3, 300);
    for _ in 0..3 {
        assert_eq!(name(attempt(&service, "alice", "wrong", Some("192.0.2.1"))), name(PAM_AUTH_ERR));
    }
    assert_eq!(server.logons().len(), 3);
    assert_eq!(name(attempt(&service, "alice", PASSWORD, Some("192.0.2.1"))), name(PAM_AUTH_ERR));
    assert_eq!(server.logons().len(), 3, "a throttled attempt reached the server");
}

#[test]
fn other_source_is_not_throttled() {
    let server = server();
    let file = throttle_file();
    let service = service(&server, &file, 2, 300);
    for _ in 0..2 {
        attempt(&service, "alice", "wrong", Some("192.0.2.1"));
    }
    assert_eq!(name(attempt(&service, "alice", PASSWORD, Some("198.51.100.2"))), name(PAM_SUCCESS));
}

#[test]
fn missing_rhost_throttles_per_user() {
    let server = server();
    let file = throttle_file();
    let service = service(&server, &file, 2, 300);
    for _ in 0..2 {
        attempt(&service, "alice", "wrong", None);
    }
    assert_eq!(name(attempt(&service, "alice", PASSWORD, None)), name(PAM_AUTH_ERR));
    assert_eq!(server.logons().len(), 2);
}

#[test]
fn user_name_case_shares_count() {
    let server = server();
    let file = throttle_file();
    let service = service(&server, &file, 2, 300);
    attempt(&service, "alice", "wrong", Some("192.0.2.1"));
    attempt(&service, "ALICE", "wrong", Some("192.0.2.1"));
    assert_eq!(name(attempt(&service, "Alice", PASSWORD, Some("192.0.2.1"))), name(PAM_AUTH_ERR));
}

#[test]
fn window_expires() {
    let server = server();
    let file = throttle_file();
    let service = service(&server, &file, 2, 1);
    for _ in 0..2 {
        attempt(&service, "alice", "wrong", Some("192.0.2.1"));
    }
    assert_eq!(name(attempt(&service, "alice", PASSWORD, Some("192.0.2.1"))), name(PAM_AUTH_ERR));
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(name(attempt(&service, "alice", PASSWORD, Some("192.0.2.1"))), name(PAM_SUCCESS));
}

#[test]
fn success_resets_count() {
    let server = server();
    let file = throttle_file();
    let service = service(&server, &file, 3, 300);
    for _ in 0..2 {
        attempt(&service, "alice", "wrong", Some("192.0.2.1"));
    }
    assert_eq!(attempt(&service, "alice", PASSWORD, Some("192.0.2.1")), PAM_SUCCESS);
    for _ in 0..2 {
        attempt(&service, "alice", "wrong", Some("192.0.2.1"));
    }
    assert_eq!(name(attempt(&service, "alice", PASSWORD, Some("192.0.2.1"))), name(PAM_SUCCESS));
}

#[test]
fn corrupt_file_is_ignored() {
    let server = server();
    let file = throttle_file();
    let damaged = format!("{}\n\0\u{fffd} garbage\nffffffffffffffff x y\n", pam_mapi::throttle::HEADER);
    std::fs::write(&file, damaged).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let service = service(&server, &file, 1, 300);
    assert_eq!(name(attempt(&service, "alice", PASSWORD, Some("192.0.2.1"))), name(PAM_SUCCESS));
    assert_eq!(name(attempt(&service, "alice", "wrong", Some("192.0.2.1"))), name(PAM_AUTH_ERR));
    assert_eq!(name(attempt(&service, "alice", PASSWORD, Some("192.0.2.1"))), name(PAM_AUTH_ERR), "not throttled after a corrupt file");
}

#[test]
fn file_of_other_program_is_kept() {
    let server = server();
    let file = throttle_file();
    std::fs::write(&file, "not a throttle file\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let service = service(&server, &file, 1, 300);
    for _ in 0..2 {
        assert_eq!(name(attempt(&service, "alice", "wrong", Some("192.0.2.1"))), name(PAM_AUTH_ERR));
    }
    assert_eq!(name(attempt(&service, "alice", PASSWORD, Some("192.0.2.1"))), name(PAM_SUCCESS));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a throttle file\n");
}

#[test]
fn foreign_file_is_ignored() {
    let server = server();
    let file = throttle_file();
    let service = service(&server, &file, 1, 300);
    attempt(&service, "alice", "wrong", Some("192.0.2.1"));
    std::os::unix::fs::chown(&file, Some(65534), None).unwrap();
    assert_eq!(name(attempt(&service, "alice", PASSWORD, Some("192.0.2.1"))), name(PAM_SUCCESS));
    assert_eq!(server.logons().len(), 2);
}

#[test]
fn wrong_password_still_fails_with_foreign_file() {
    let server = server();
    let file = throttle_file();
    std::fs::write(&file, b"").unwrap();
    std::os::unix::fs::chown(&file, Some(65534), None).unwrap();
    let service = service(&server, &file, 1, 300);
    assert_eq!(name(attempt(&service, "alice", "wrong", Some("192.0.2.1"))), name(PAM_AUTH_ERR));
}

#[test]
fn off_by_default() {
    let server = server();
    let service = Service::simple(&format!("socket={}", server.url()));
    for _ in 0..10 {
        attempt(&service, "alice", "wrong", Some("192.0.2.1"));
    }
    assert_eq!(name(attempt(&service, "alice", PASSWORD, Some("192.0.2.1"))), name(PAM_SUCCESS));
    assert_eq!(server.logons().len(), 11);
}

#[test]
fn throttle_file_holds_no_user_name() {
    let server = server();
    let file = throttle_file();
    let service = service(&server, &file, 3, 300);
    attempt(&service, "alice", "wrong", Some("192.0.2.1"));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains("alice"), "user name in clear: {text}");
}

#[test]
fn throttled_attempt_is_logged() {
    let server = Server::start(Config::soap().user("alice", PASSWORD)).unwrap();
    let file = throttle_file();
    let service = service(&server, &file, 1, 300);
    let rhost = unique("throttle-log");
    attempt(&service, "alice", "wrong", Some(&rhost));
    attempt(&service, "alice", PASSWORD, Some(&rhost));
    let started = log_lines_with(&rhost, 3).into_iter().filter(|l| l.contains("throttling after 1 failed logon:")).count();
    assert_eq!(started, 1, "no line when throttling starts");
    let throttled = log_lines_with(&rhost, 3).into_iter().filter(|l| l.contains("reason=\"throttled:")).count();
    assert_eq!(throttled, 1, "no line for the throttled attempt");
}

/// Runs `count` attempts for alice at the same time and returns their results.
fn concurrent(server: &Server, file: &Path, count: usize, password: &str) -> Vec<i32> {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(count));
    let handles: Vec<_> = (0..count)
        .map(|_| {
            let service = service(server, file, 3, 300);
            let barrier = barrier.clone();
            let password = password.to_string();
            std::thread::spawn(move || {
                barrier.wait();
                attempt(&service, "alice", &password, Some("192.0.2.1"))
            })
        })
        .collect();
    handles.into_iter().map(|handle| handle.join().unwrap()).collect()
}

#[test]
fn concurrent_right_passwords_all_succeed() {
    let server = server();
    server.set_fault(Fault::DelayMs(300));
    let file = throttle_file();
    for code in concurrent(&server, &file, 8, PASSWORD) {
        assert_eq!(name(code), name(PAM_SUCCESS));
    }
}

#[test]
fn concurrent_attempts_on_stalled_server_are_unavail() {
    let server = server();
    server.set_fault(Fault::Stall);
    let file = throttle_file();
    for code in concurrent(&server, &file, 6, "wrong") {
        assert_eq!(name(code), name(PAM_AUTHINFO_UNAVAIL));
    }
}

#[test]
fn unavailable_server_is_not_counted() {
    let server = server();
    let file = throttle_file();
    let service = service(&server, &file, 2, 300);
    server.set_fault(Fault::Status500);
    for _ in 0..3 {
        assert_eq!(name(attempt(&service, "alice", "wrong", Some("192.0.2.1"))), name(PAM_AUTHINFO_UNAVAIL));
    }
    server.set_fault(Fault::None);
    assert_eq!(name(attempt(&service, "alice", PASSWORD, Some("192.0.2.1"))), name(PAM_SUCCESS));
}

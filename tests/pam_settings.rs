//! Production settings through the real libpam: the configuration file, failover,
//! the total deadline, the state file of servers found down, the `service=`
//! feature gate and the user-name mappings.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use kopano_standin::{Config, Fault, Server, User};

const PASSWORD: &str = "Secr3t&<pass>";

fn server() -> Server {
    Server::start(Config::soap().user("alice", PASSWORD)).unwrap()
}

/// Returns a URL on a 127.0.0.1 port where nothing listens.
fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}/kopano")
}

/// Writes a root-owned configuration file with the given mode.
fn config_file(text: &str, mode: u32) -> PathBuf {
    let path = scratch_dir("conf").join("pam_mapi.conf");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

fn state_path() -> PathBuf {
    scratch_dir("state").join("servers.state")
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

#[test]
fn config_file_supplies_servers() {
    let server = server();
    let conf = config_file(&format!("# servers\nsocket = {} {}\ntimeout = 5\n", dead_url(), server.url()), 0o644);
    let service = Service::simple(&format!("config={}", conf.display()));
    assert_eq!(authenticate(&service, "alice", PASSWORD), PAM_SUCCESS);
}

#[test]
fn arguments_override_config_file() {
    let server = server();
    let conf = config_file(&format!("socket = {}\n", dead_url()), 0o644);
    let service = Service::simple(&format!("config={} socket={}", conf.display(), server.url()));
    assert_eq!(authenticate(&service, "alice", PASSWORD), PAM_SUCCESS);
}

#[test]
fn config_errors_are_service_err() {
    let server = server();
    let cases = [
        ("unknown key", config_file("sockett = http://127.0.0.1:1/\n", 0o644)),
        ("bad value", config_file("timeout = soon\n", 0o644)),
        ("bad url", config_file("socket = gopher://x/\n", 0o644)),
        ("group writable", config_file("debug = yes\n", 0o664)),
        ("world writable", config_file("debug = yes\n", 0o666)),
        ("section", config_file("[main]\ndebug = yes\n", 0o644)),
    ];
    for (label, conf) in &cases {
        let service = Service::simple(&format!("config={} socket={}", conf.display(), server.url()));
        assert_eq!(name(authenticate(&service, "alice", PASSWORD)), name(PAM_SERVICE_ERR), "{label}");
    }
    assert_eq!(server.logons().len(), 0, "no request may be sent with a broken configuration");
}

#[test]
fn config_not_owned_by_root_is_service_err() {
    let server = server();
    let conf = config_file("debug = yes\n", 0o644);
    std::os::unix::fs::chown(&conf, Some(65534), Some(65534)).unwrap();
    let service = Service::simple(&format!("config={} socket={}", conf.display(), server.url()));
    assert_eq!(authenticate(&service, "alice", PASSWORD), PAM_SERVICE_ERR);
}

#[test]
fn missing_named_config_is_service_err() {
    let server = server();
    let service = Service::simple(&format!("config=/nonexistent/pam_mapi.conf socket={}", server.url()));
    assert_eq!(authenticate(&service, "alice", PASSWORD), PAM_SERVICE_ERR);
}

#[test]
fn config_error_is_logged_with_file_and_key() {
    let conf = config_file("timeout = soon\n", 0o644);
    let service = Service::simple(&format!("config={}", conf.display()));
    assert_eq!(authenticate(&service, "alice", PASSWORD), PAM_SERVICE_ERR);
    let lines = log_lines_with(&conf.display().to_string(), 1);
    let line = lines.first().expect("a log line naming the file");
    assert!(line.contains("timeout"), "{line}");
}

#[test]
fn failover_past_dead_server() {
    let server = server();
    let service = Service::simple(&format!("socket={} socket={} state_file={}", dead_url(), server.url(), state_path().display()));
    assert_eq!(authenticate(&service, "alice", PASSWORD), PAM_SUCCESS);
}

#[test]
fn failover_past_stalled_server() {
    let stalled = server();
    stalled.set_fault(Fault::Stall);
    let good = server();
    let service = Service::simple(&format!(
        "socket={} socket={} timeout=2 state_file={}",
        stalled.url(),
        good.url(),
        state_path().display()
    ));
    let started = Instant::now();
    assert_eq!(authenticate(&service, "alice", PASSWORD), PAM_SUCCESS);
    assert!(started.elapsed() < Duration::from_millis(2200), "{:?}", started.elapsed());
}

#[test]
fn failover_past_http_500() {
    let broken = server();
    broken.set_fault(Fault::Status503Html);
    let good = server();
    let service = Service::simple(&format!("socket={} socket={} state_file={}", broken.url(), good.url(), state_path().display()));
    assert_eq!(authenticate(&service, "alice", PASSWORD), PAM_SUCCESS);
}

#[test]
fn no_failover_after_logon_failure() {
    let first = Server::start(Config::soap().user("alice", "other password")).unwrap();
    let second = server();
    let service = Service::simple(&format!("socket={} socket={} state_file={}", first.url(), second.url(), state_path().display()));
    assert_eq!(authenticate(&service, "alice", PASSWORD), PAM_AUTH_ERR);
    assert_eq!(second.logons().len(), 0);
}

#[test]
fn no_failover_after_client_rejection() {
    let rejecting = Canned::start(vec![soap_reply("<ns:logonResponse><er>2147483697</er></ns:logonResponse>")]);
    let second = server();
    let service = Service::simple(&format!("socket={} socket={} state_file={}", rejecting.url(), second.url(), state_path().display()));
    assert_eq!(authenticate(&service, "alice", PASSWORD), PAM_SERVICE_ERR);
    assert_eq!(second.logons().len(), 0);
}

#[test]
fn total_deadline_with_every_server_stalled() {
    let first = server();
    let second = server();
    first.set_fault(Fault::Stall);
    second.set_fault(Fault::Stall);
    let service = Service::simple(&format!(
        "socket={} socket={} timeout=1 state_file={}",
        first.url(),
        second.url(),
        state_path().display()
    ));
    let started = Instant::now();
    assert_eq!(authenticate(&service, "alice", PASSWORD), PAM_AUTHINFO_UNAVAIL);
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_millis(1300), "deadline overrun: {elapsed:?}");
    assert!(elapsed >= Duration::from_millis(900), "gave up early: {elapsed:?}");
}

#[test]
fn ignore_authinfo_unavail_returns_ignore() {
    // requisite stops the stack on failure but passes PAM_IGNORE on to the next line.
    let stack = |option: &str| {
        Service::new(&format!(
            "auth requisite {{module}} socket={} {option} state_file={}\nauth required pam_permit.so\n",
            dead_url(),
            state_path().display()
        ))
    };
    assert_eq!(name(authenticate(&stack("ignore_authinfo_unavail"), "alice", PASSWORD)), name(PAM_SUCCESS));
    assert_eq!(name(authenticate(&stack(""), "alice", PASSWORD)), name(PAM_AUTHINFO_UNAVAIL));
}

#[test]
fn ignore_authinfo_unavail_keeps_auth_err() {
    let server = server();
    let service = Service::simple(&format!("socket={} ignore_authinfo_unavail", server.url()));
    assert_eq!(authenticate(&service, "alice", "wrong"), PAM_AUTH_ERR);
}

#[test]
fn ipv6_literal_server() {
    let Ok(server) = Server::start(Config::soap().user("alice", PASSWORD).tcp(Some("[::1]:0".parse().unwrap()))) else {
        eprintln!("no IPv6 loopback on this machine; skipping");
        return;
    };
    let port = server.tcp_addr().unwrap().port();
    let service = Service::simple(&format!("socket=http://[::1]:{port}/kopano"));
    assert_eq!(authenticate(&service, "alice", PASSWORD), PAM_SUCCESS);
}

#[test]
fn state_file_moves_down_server_last() {
    let stalled = server();
    stalled.set_fault(Fault::Stall);
    let good = server();
    let state = state_path();
    std::fs::write(&state, format!("{}\n{} {}\n", pam_mapi::state::HEADER, now_secs() + 60, stalled.url())).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o600)).unwrap();
    let service = Service::simple(&format!("socket={} socket={} timeout=4 state_file={}", stalled.url(), good.url(), state.display()));
    let started = Instant::now();
    assert_eq!(authenticate(&service, "alice", PASSWORD), PAM_SUCCESS);
    assert!(started.elapsed() < Duration::from_millis(500), "the stalled server was tried first: {:?}", started.elapsed());
    assert_eq!(stalled.request_count("logon"), 0);
}

#[test]
fn state_file_is_written_for_dead_server() {
    let good = server();
    let dead = dead_url();
    let state = state_path();
    let service = Service::simple(&format!("socket={dead} socket={} state_file={}", good.url(), state.display()));
    assert_eq!(authenticate(&service, "alice", PASSWORD), PAM_SUCCESS);
    let text = std::fs::read_to_string(&state).unwrap();
    assert!(text.contains(&dead), "{text}");
    let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn stale_state_entry_is_ignored() {
    let stalled = server();
    stalled.set_fault(Fault::DelayMs(300));
    let good = server();
    let state = state_path();
    std::fs::write(&state, format!("{}\n{} {}\n", pam_mapi::state::HEADER, now_secs() - 5, stalled.url())).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o600)).unwrap();
    let service = Service::simple(&format!("socket={} socket={} state_file={}", stalled.url(), good.url(), state.display()));
    assert_eq!(authenticate(&service, "alice", PASSWORD), PAM_SUCCESS);
    assert_eq!(stalled.request_count("logon"), 1, "an expired mark must not reorder servers");
}

#[test]
fn corrupt_state_file_cannot_grant_access() {
    let server = server();
    let state = state_path();
    std::fs::write(&state, b"\x00\xff garbage\n999999999999 \n-1 x\n").unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o600)).unwrap();
    let service = Service::simple(&format!("socket={} state_file={}", server.url(), state.display()));
    assert_eq!(authenticate(&service, "alice", "wrong"), PAM_AUTH_ERR);
    assert_eq!(authenticate(&service, "alice", PASSWORD), PAM_SUCCESS);
}

#[test]
fn state_file_with_wrong_owner_is_ignored() {
    let stalled = server();
    stalled.set_fault(Fault::DelayMs(300));
    let good = server();
    let state = state_path();
    std::fs::write(&state, format!("{}\n{} {}\n", pam_mapi::state::HEADER, now_secs() + 60, stalled.url())).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(&state, Some(65534), Some(65534)).unwrap();
    let service = Service::simple(&format!("socket={} socket={} state_file={}", stalled.url(), good.url(), state.display()));
    assert_eq!(authenticate(&service, "alice", PASSWORD), PAM_SUCCESS);
    assert_eq!(stalled.request_count("logon"), 1, "a foreign state file must not reorder servers");
}

fn feature_server() -> Server {
    let mut bob = User::new("bob", "plain");
    bob.enabled_features = vec!["imap".into()];
    bob.disabled_features = vec!["mobile".into()];
    let mut config = Config::soap().user("alice", PASSWORD);
    config.users.push(bob);
    Server::start(config).unwrap()
}

#[test]
fn service_gate_denies_disabled_feature() {
    let server = feature_server();
    let service = Service::simple(&format!("socket={} service=imap", server.url()));
    assert_eq!(name(authenticate(&service, "alice", PASSWORD)), name(PAM_PERM_DENIED));
    assert_eq!(server.registered_sessions(), 0, "the session must be logged off");
}

#[test]
fn service_gate_allows_enabled_feature() {
    let server = feature_server();
    let service = Service::simple(&format!("socket={} service=IMAP", server.url()));
    assert_eq!(authenticate(&service, "bob", "plain"), PAM_SUCCESS);
    assert_eq!(server.registered_sessions(), 0, "the session must be logged off");
}

#[test]
fn service_gate_any_listed_feature_suffices() {
    let server = feature_server();
    let service = Service::simple(&format!("socket={} service=imap|mobile", server.url()));
    assert_eq!(authenticate(&service, "alice", PASSWORD), PAM_SUCCESS);
    assert_eq!(authenticate(&service, "bob", "plain"), PAM_SUCCESS);
}

#[test]
fn service_gate_wrong_password_is_auth_err() {
    let server = feature_server();
    let service = Service::simple(&format!("socket={} service=imap", server.url()));
    assert_eq!(authenticate(&service, "bob", "wrong"), PAM_AUTH_ERR);
}

#[test]
fn service_gate_logs_feature() {
    let user = unique("logcheck-feature");
    let server = Server::start(Config::soap().user(&user, PASSWORD)).unwrap();
    let service = Service::simple(&format!("socket={} service=pop3", server.url()));
    assert_eq!(authenticate(&service, &user, PASSWORD), PAM_PERM_DENIED);
    let lines = log_lines_with(&user, 1);
    let line = lines.first().expect("a permission denied line");
    assert!(line.contains("none of the features pop3"), "{line}");
}

#[test]
fn strip_realm_on_and_off() {
    let server = server();
    let plain = Service::simple(&format!("socket={}", server.url()));
    assert_eq!(authenticate(&plain, "alice@example.test", PASSWORD), PAM_AUTH_ERR);
    let stripping = Service::simple(&format!("socket={} strip_realm", server.url()));
    assert_eq!(authenticate(&stripping, "alice@example.test", PASSWORD), PAM_SUCCESS);
    assert_eq!(server.logons().last().unwrap().username, "alice");
}

#[test]
fn lowercase_maps_user_name() {
    let server = server();
    let service = Service::simple(&format!("socket={} lowercase", server.url()));
    assert_eq!(authenticate(&service, "ALICE", PASSWORD), PAM_SUCCESS);
    assert_eq!(server.logons()[0].username, "alice");
}

#[test]
fn account_phase_uses_pam_user_after_strip_realm() {
    let server = server();
    let service = Service::simple(&format!("socket={} strip_realm", server.url()));
    let run = run(&service, Attempt { user: "alice@example.test", password: Some(PASSWORD.as_bytes()), account: true, ..Default::default() });
    assert_eq!(run.auth, PAM_SUCCESS);
    assert_eq!(run.account, Some(PAM_SUCCESS));
}

#[test]
fn account_phase_accepts_socket_only_on_auth_line() {
    let server = Server::start(Config::mapihttp().user("alice@example.test", PASSWORD)).unwrap();
    let conf = config_file("protocol = mapihttp\n", 0o644);
    let service = Service::new(&format!(
        "auth required {{module}} config={conf} socket={url}\naccount required {{module}} config={conf}\n",
        conf = conf.display(),
        url = server.url()
    ));
    let run = run(&service, Attempt { user: "alice@example.test", password: Some(PASSWORD.as_bytes()), account: true, ..Default::default() });
    assert_eq!(name(run.auth), name(PAM_SUCCESS));
    assert_eq!(run.account.map(name), Some(name(PAM_SUCCESS)));
}

#[test]
fn duplicate_config_key_is_service_err() {
    let server = server();
    let conf = config_file(&format!("socket = {}\nsocket = {}\n", dead_url(), server.url()), 0o644);
    let service = Service::simple(&format!("config={}", conf.display()));
    assert_eq!(name(authenticate(&service, "alice", PASSWORD)), name(PAM_SERVICE_ERR));
}

#[test]
fn relative_state_file_is_service_err() {
    let server = server();
    let service = Service::simple(&format!("socket={} state_file=relative.state", server.url()));
    assert_eq!(name(authenticate(&service, "alice", PASSWORD)), name(PAM_SERVICE_ERR));
}

//! pam_mapi.so loaded by the real libpam, against the stand-in Kopano server:
//! the return-code table, input checks, stacking, the account phase, the
//! Unix-socket peer-uid bypass, deadlines and logging.

mod common;

use std::time::{Duration, Instant};

use common::*;
use kopano_standin::{Config, Fault, Server};

const ALICE_PASSWORD: &str = "Secr3t&<pass>";

fn server() -> Server {
    Server::start(Config::soap().user("alice", ALICE_PASSWORD).user("bob", "plain")).unwrap()
}

#[test]
fn right_password_is_success() {
    let server = server();
    let service = Service::simple(&format!("socket={}", server.url()));
    assert_eq!(name(authenticate(&service, "alice", ALICE_PASSWORD)), name(PAM_SUCCESS));
}

#[test]
fn wrong_password_is_auth_err() {
    let server = server();
    let service = Service::simple(&format!("socket={}", server.url()));
    assert_eq!(name(authenticate(&service, "alice", "wrong")), name(PAM_AUTH_ERR));
}

#[test]
fn unknown_user_is_auth_err() {
    let server = server();
    let service = Service::simple(&format!("socket={}", server.url()));
    assert_eq!(name(authenticate(&service, "nosuchuser", "whatever")), name(PAM_AUTH_ERR));
}

#[test]
fn user_name_case_is_left_to_server() {
    let server = server();
    let service = Service::simple(&format!("socket={}", server.url()));
    assert_eq!(authenticate(&service, "ALICE", ALICE_PASSWORD), PAM_SUCCESS);
    assert_eq!(server.logons()[0].username, "ALICE");
}

#[test]
fn logon_request_carries_flags_and_client_info() {
    let server = server();
    let service = Service::simple(&format!("socket={}", server.url()));
    let run = run(&service, Attempt { user: "bob", password: Some(b"plain"), rhost: Some("192.0.2.7"), ..Default::default() });
    assert_eq!(run.auth, PAM_SUCCESS);
    let logon = &server.logons()[0];
    assert_eq!(logon.flags, 0x3, "NO_UID_AUTH | NO_REGISTER_SESSION");
    assert_ne!(logon.capabilities & 0x200, 0, "UNICODE capability");
    assert_eq!(logon.client_app.as_deref(), Some("pam_mapi"));
    let misc = logon.client_app_misc.clone().unwrap_or_default();
    assert!(misc.contains("pam_mapi_test"), "service in szClientAppMisc: {misc}");
    assert!(misc.contains("192.0.2.7"), "rhost in szClientAppMisc: {misc}");
    assert!(!logon.client_cert_presented);
}

#[test]
fn no_session_is_left_registered() {
    let server = server();
    let service = Service::simple(&format!("socket={}", server.url()));
    for _ in 0..3 {
        assert_eq!(authenticate(&service, "alice", ALICE_PASSWORD), PAM_SUCCESS);
    }
    assert_eq!(server.registered_sessions(), 0);
}

#[test]
fn password_with_markup_and_non_ascii_reaches_server_unchanged() {
    let password = "a&b<c>d'e\"f ÄÖÜ ß Ω 雪 ";
    let server = Server::start(Config::soap().user("dora", password)).unwrap();
    let service = Service::simple(&format!("socket={}", server.url()));
    assert_eq!(authenticate(&service, "dora", password), PAM_SUCCESS);
    assert_eq!(server.logons()[0].password, password.as_bytes());
}

#[test]
fn password_with_obfuscation_prefix_is_checked_as_typed() {
    let server = Server::start(Config::soap().user("carol", "{1}:abc")).unwrap();
    let service = Service::simple(&format!("socket={}", server.url()));
    assert_eq!(authenticate(&service, "carol", "{1}:abc"), PAM_SUCCESS);
    assert_eq!(authenticate(&service, "carol", "{1}:abd"), PAM_AUTH_ERR);
    assert_eq!(server.logons()[0].password, b"{1}:abc");
}

#[test]
fn empty_password_is_rejected_without_request() {
    let server = server();
    let service = Service::simple(&format!("socket={}", server.url()));
    assert_eq!(authenticate(&service, "alice", ""), PAM_AUTH_ERR);
    assert_eq!(server.logons().len(), 0);
}

#[test]
fn control_character_password_is_rejected_without_request() {
    let server = server();
    let service = Service::simple(&format!("socket={}", server.url()));
    assert_eq!(authenticate(&service, "alice", "abc\u{1b}def"), PAM_AUTH_ERR);
    assert_eq!(server.logons().len(), 0);
}

#[test]
fn invalid_utf8_password_is_rejected_without_request() {
    let server = server();
    let service = Service::simple(&format!("socket={}", server.url()));
    let run = run(&service, Attempt { user: "alice", password: Some(b"\xff\xfe"), ..Default::default() });
    assert_eq!(run.auth, PAM_AUTH_ERR);
    assert_eq!(server.logons().len(), 0);
}

#[test]
fn control_character_user_is_rejected_without_request() {
    let server = server();
    let service = Service::simple(&format!("socket={}", server.url()));
    assert_eq!(authenticate(&service, "ali\u{7}ce", ALICE_PASSWORD), PAM_AUTH_ERR);
    assert_eq!(server.logons().len(), 0);
}

#[test]
fn overlong_password_is_rejected_without_request() {
    let server = server();
    let service = Service::simple(&format!("socket={}", server.url()));
    assert_eq!(authenticate(&service, "alice", &"x".repeat(1025)), PAM_AUTH_ERR);
    assert_eq!(server.logons().len(), 0);
}

#[test]
fn unix_socket_right_password_is_success() {
    let dir = scratch_dir("unix");
    let server = Server::start(Config::soap().user("alice", ALICE_PASSWORD).unix(dir.join("server.sock"))).unwrap();
    let service = Service::simple(&format!("socket={}", server.unix_url().unwrap()));
    assert_eq!(authenticate(&service, "alice", ALICE_PASSWORD), PAM_SUCCESS);
}

#[test]
fn unix_socket_as_root_wrong_password_is_auth_err() {
    // The stand-in, like kopano-server, logs root on over the Unix socket without
    // a password unless ulFlags has NO_UID_AUTH.
    assert_eq!(unsafe { libc::geteuid() }, 0, "this test must run as root");
    let dir = scratch_dir("unix");
    let server = Server::start(Config::soap().user("alice", ALICE_PASSWORD).unix(dir.join("server.sock"))).unwrap();
    let service = Service::simple(&format!("socket={}", server.unix_url().unwrap()));
    assert_eq!(name(authenticate(&service, "alice", "wrong")), name(PAM_AUTH_ERR));
    let logon = &server.logons()[0];
    assert!(!logon.peer_uid_bypass);
    assert_eq!(logon.peer_uid, Some(0));
}

#[test]
fn server_down_is_authinfo_unavail() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let service = Service::simple(&format!("socket=http://127.0.0.1:{port}/kopano"));
    let started = Instant::now();
    assert_eq!(name(authenticate(&service, "alice", ALICE_PASSWORD)), name(PAM_AUTHINFO_UNAVAIL));
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn missing_unix_socket_is_authinfo_unavail() {
    let service = Service::simple("socket=file:///nonexistent/pam_mapi/server.sock");
    assert_eq!(authenticate(&service, "alice", ALICE_PASSWORD), PAM_AUTHINFO_UNAVAIL);
}

#[test]
fn stalled_server_is_authinfo_unavail_within_deadline() {
    let server = server();
    server.set_fault(Fault::Stall);
    let service = Service::simple(&format!("socket={} timeout=1", server.url()));
    let started = Instant::now();
    assert_eq!(authenticate(&service, "alice", ALICE_PASSWORD), PAM_AUTHINFO_UNAVAIL);
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(900), "returned before the deadline: {elapsed:?}");
    assert!(elapsed < Duration::from_millis(1500), "deadline overrun: {elapsed:?}");
}

#[test]
fn trickling_server_is_authinfo_unavail_within_deadline() {
    let server = server();
    server.set_fault(Fault::Trickle);
    let service = Service::simple(&format!("socket={} timeout=1.5", server.url()));
    let started = Instant::now();
    assert_eq!(authenticate(&service, "alice", ALICE_PASSWORD), PAM_AUTHINFO_UNAVAIL);
    assert!(started.elapsed() < Duration::from_millis(2000), "deadline overrun: {:?}", started.elapsed());
}

#[test]
fn stalled_unix_socket_is_authinfo_unavail_within_deadline() {
    let dir = scratch_dir("unix");
    let server = Server::start(Config::soap().user("alice", ALICE_PASSWORD).unix(dir.join("server.sock"))).unwrap();
    server.set_fault(Fault::Stall);
    let service = Service::simple(&format!("socket={} timeout=1", server.unix_url().unwrap()));
    let started = Instant::now();
    assert_eq!(authenticate(&service, "alice", ALICE_PASSWORD), PAM_AUTHINFO_UNAVAIL);
    assert!(started.elapsed() < Duration::from_millis(1500), "deadline overrun: {:?}", started.elapsed());
}

#[test]
fn soap_fault_is_authinfo_unavail() {
    let server = server();
    server.set_fault(Fault::Status500);
    let service = Service::simple(&format!("socket={}", server.url()));
    assert_eq!(authenticate(&service, "alice", ALICE_PASSWORD), PAM_AUTHINFO_UNAVAIL);
}

#[test]
fn garbage_reply_is_authinfo_unavail() {
    let server = server();
    server.set_fault(Fault::Garbage);
    let service = Service::simple(&format!("socket={}", server.url()));
    assert_eq!(authenticate(&service, "alice", ALICE_PASSWORD), PAM_AUTHINFO_UNAVAIL);
}

#[test]
fn huge_reply_is_authinfo_unavail() {
    let server = server();
    server.set_fault(Fault::HugeBody(4));
    let service = Service::simple(&format!("socket={}", server.url()));
    assert_eq!(authenticate(&service, "alice", ALICE_PASSWORD), PAM_AUTHINFO_UNAVAIL);
}

#[test]
fn empty_reply_is_authinfo_unavail() {
    let server = server();
    server.set_fault(Fault::EmptyOk);
    let service = Service::simple(&format!("socket={}", server.url()));
    assert_eq!(authenticate(&service, "alice", ALICE_PASSWORD), PAM_AUTHINFO_UNAVAIL);
}

#[test]
fn redirect_is_never_followed() {
    let target = server();
    let redirecting = server();
    redirecting.set_fault(Fault::Redirect(307, target.url()));
    let service = Service::simple(&format!("socket={}", redirecting.url()));
    assert_eq!(authenticate(&service, "alice", ALICE_PASSWORD), PAM_AUTHINFO_UNAVAIL);
    assert_eq!(target.logons().len(), 0, "the redirect target was contacted");
}

#[test]
fn http_503_is_authinfo_unavail() {
    let canned = Canned::start(vec![
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/html\r\nContent-Length: 5\r\n\r\nbusy!".into(),
    ]);
    let service = Service::simple(&format!("socket={}", canned.url()));
    assert_eq!(authenticate(&service, "alice", ALICE_PASSWORD), PAM_AUTHINFO_UNAVAIL);
}

#[test]
fn success_without_er_is_authinfo_unavail() {
    let canned = Canned::start(vec![soap_reply("<ns:logonResponse><ulSessionId>5</ulSessionId></ns:logonResponse>")]);
    let service = Service::simple(&format!("socket={}", canned.url()));
    assert_eq!(authenticate(&service, "alice", ALICE_PASSWORD), PAM_AUTHINFO_UNAVAIL);
}

#[test]
fn two_er_elements_are_authinfo_unavail() {
    let canned = Canned::start(vec![soap_reply("<ns:logonResponse><er>0</er><er>0</er></ns:logonResponse>")]);
    let service = Service::simple(&format!("socket={}", canned.url()));
    assert_eq!(authenticate(&service, "alice", ALICE_PASSWORD), PAM_AUTHINFO_UNAVAIL);
}

#[test]
fn bad_charwidth_is_service_err() {
    let canned = Canned::start(vec![soap_reply("<ns:logonResponse><er>2147483697</er></ns:logonResponse>")]);
    let service = Service::simple(&format!("socket={}", canned.url()));
    assert_eq!(authenticate(&service, "alice", ALICE_PASSWORD), PAM_SERVICE_ERR);
}

#[test]
fn invalid_version_is_service_err() {
    let canned = Canned::start(vec![soap_reply("<ns:logonResponse><er>2147483681</er></ns:logonResponse>")]);
    let service = Service::simple(&format!("socket={}", canned.url()));
    assert_eq!(authenticate(&service, "alice", ALICE_PASSWORD), PAM_SERVICE_ERR);
}

#[test]
fn old_server_session_is_logged_off() {
    let canned = Canned::start(vec![
        soap_reply("<logonResponse><er>0</er><ulSessionId>424242</ulSessionId><lpszVersion>0,7,2,0,51000</lpszVersion></logonResponse>"),
        soap_reply("<logoffResponse><result>0</result></logoffResponse>"),
    ]);
    let service = Service::simple(&format!("socket={}", canned.url()));
    assert_eq!(authenticate(&service, "alice", ALICE_PASSWORD), PAM_SUCCESS);
    let requests = canned.requests.lock().unwrap();
    assert_eq!(requests.len(), 2);
    assert!(requests[1].contains("<ns:logoff><ulSessionId>424242</ulSessionId></ns:logoff>"), "{}", requests[1]);
}

#[test]
fn new_server_session_needs_no_logoff() {
    let canned = Canned::start(vec![soap_reply(
        "<ns:logonResponse><er>0</er><ulSessionId>424242</ulSessionId><lpszVersion>0,11,0,2</lpszVersion></ns:logonResponse>",
    )]);
    let service = Service::simple(&format!("socket={}", canned.url()));
    assert_eq!(authenticate(&service, "alice", ALICE_PASSWORD), PAM_SUCCESS);
    assert_eq!(canned.requests.lock().unwrap().len(), 1);
}

#[test]
fn unknown_argument_is_service_err() {
    let server = server();
    let option = unique("no_such_option");
    let service = Service::simple(&format!("socket={} {option}", server.url()));
    assert_eq!(authenticate(&service, "alice", ALICE_PASSWORD), PAM_SERVICE_ERR);
    assert_eq!(server.logons().len(), 0);
    let lines = log_lines_with(&option, 1);
    assert_eq!(lines.len(), 1, "the argument's text must be logged: {lines:?}");
}

#[test]
fn malformed_socket_is_service_err() {
    let service = Service::simple("socket=gopher://kopano/");
    assert_eq!(authenticate(&service, "alice", ALICE_PASSWORD), PAM_SERVICE_ERR);
}

#[test]
fn account_after_auth_is_success() {
    let server = server();
    let service = Service::simple(&format!("socket={}", server.url()));
    let run = run(&service, Attempt { user: "alice", password: Some(ALICE_PASSWORD.as_bytes()), account: true, ..Default::default() });
    assert_eq!(run.auth, PAM_SUCCESS);
    assert_eq!(run.account, Some(PAM_SUCCESS));
}

#[test]
fn account_without_auth_is_denied_by_lone_module() {
    let server = server();
    let service = Service::simple(&format!("socket={}", server.url()));
    let run = run(&service, Attempt { user: "alice", password: Some(b"wrong"), account: true, ..Default::default() });
    assert_eq!(run.auth, PAM_AUTH_ERR);
    // pam_mapi returns PAM_IGNORE; a stack of nothing but ignores fails.
    assert_ne!(run.account, Some(PAM_SUCCESS));
}

#[test]
fn first_stack_kopano_only() {
    let server = server();
    let service = Service::new(&format!(
        "auth required {{module}} try_first_pass socket={}\naccount required {{module}}\n",
        server.url()
    ));
    let good = run(&service, Attempt { user: "alice", password: Some(ALICE_PASSWORD.as_bytes()), account: true, ..Default::default() });
    assert_eq!((good.auth, good.account), (PAM_SUCCESS, Some(PAM_SUCCESS)));
    assert_eq!(good.password_prompts, 1);
    let bad = run(&service, Attempt { user: "alice", password: Some(b"nope"), ..Default::default() });
    assert_eq!(bad.auth, PAM_AUTH_ERR);
}

#[test]
fn second_stack_falls_through_to_pam_unix() {
    let server = server();
    let service = Service::new(&format!(
        "auth sufficient {{module}} try_first_pass quiet socket={}\n\
         auth required pam_unix.so try_first_pass nodelay\n\
         account sufficient {{module}}\n\
         account required pam_unix.so\n",
        server.url()
    ));
    let kopano_user = run(&service, Attempt { user: "alice", password: Some(ALICE_PASSWORD.as_bytes()), account: true, ..Default::default() });
    assert_eq!((kopano_user.auth, kopano_user.account), (PAM_SUCCESS, Some(PAM_SUCCESS)));
    assert_eq!(kopano_user.password_prompts, 1);
    let stranger = run(&service, Attempt { user: "nosuchuser", password: Some(b"whatever"), ..Default::default() });
    assert_ne!(stranger.auth, PAM_SUCCESS);
    assert_eq!(stranger.password_prompts, 1, "pam_unix must reuse the password pam_mapi read");
}

#[test]
fn try_first_pass_reuses_earlier_password() {
    let server = server();
    let service = Service::new(&format!(
        "auth optional pam_unix.so nodelay\nauth required {{module}} try_first_pass socket={}\n",
        server.url()
    ));
    let run = run(&service, Attempt { user: "alice", password: Some(ALICE_PASSWORD.as_bytes()), ..Default::default() });
    assert_eq!(run.auth, PAM_SUCCESS);
    assert_eq!(run.password_prompts, 1);
}

#[test]
fn use_first_pass_reuses_earlier_password() {
    let server = server();
    let service = Service::new(&format!(
        "auth optional pam_unix.so nodelay\nauth required {{module}} use_first_pass socket={}\n",
        server.url()
    ));
    let run = run(&service, Attempt { user: "alice", password: Some(ALICE_PASSWORD.as_bytes()), ..Default::default() });
    assert_eq!(run.auth, PAM_SUCCESS);
    assert_eq!(run.password_prompts, 1);
}

#[test]
fn use_first_pass_without_earlier_password_never_prompts() {
    let server = server();
    let service = Service::simple(&format!("use_first_pass socket={}", server.url()));
    let run = run(&service, Attempt { user: "alice", password: Some(ALICE_PASSWORD.as_bytes()), ..Default::default() });
    assert_ne!(run.auth, PAM_SUCCESS);
    assert_eq!(run.password_prompts, 0);
    assert_eq!(server.logons().len(), 0);
}

#[test]
fn debug_log_never_contains_password() {
    let user = unique("logcheck-debug");
    let password = "Zq9-unique-debug-password-&<>";
    let server = Server::start(Config::soap().user(&user, password)).unwrap();
    let service = Service::simple(&format!("socket={} debug", server.url()));
    assert_eq!(authenticate(&service, &user, password), PAM_SUCCESS);
    assert_eq!(authenticate(&service, &user, "Zq9-unique-wrong-password"), PAM_AUTH_ERR);
    let lines = log_lines_with(&user, 2);
    assert!(lines.len() >= 2, "expected debug and failure lines, got {lines:?}");
    for line in &lines {
        assert!(!line.contains("Zq9-unique"), "password in log: {line}");
    }
}

#[test]
fn failure_log_names_user_service_server_and_reason() {
    let server = server();
    let service = Service::simple(&format!("socket={}", server.url()));
    let user = unique("logcheck-failure");
    let run = run(&service, Attempt { user: &user, password: Some(b"nope"), rhost: Some("198.51.100.9"), ..Default::default() });
    assert_eq!(run.auth, PAM_AUTH_ERR);
    let lines = log_lines_with(&user, 1);
    let line = lines.first().expect("a failure line");
    assert!(line.contains("authentication failure"), "{line}");
    assert!(line.contains("pam_mapi_test"), "service: {line}");
    assert!(line.contains("198.51.100.9"), "rhost: {line}");
    assert!(line.contains(&server.url()), "server: {line}");
    assert!(line.contains("KCERR_LOGON_FAILED"), "reason: {line}");
}

#[test]
fn quiet_silences_logon_failures_only() {
    let server = server();
    let service = Service::simple(&format!("socket={} quiet", server.url()));
    let user = unique("logcheck-quiet");
    assert_eq!(authenticate(&service, &user, "nope"), PAM_AUTH_ERR);
    let down = Service::simple("socket=file:///nonexistent/pam_mapi.sock quiet");
    assert_eq!(authenticate(&down, &user, "nope"), PAM_AUTHINFO_UNAVAIL);
    let lines = log_lines_with(&user, 1);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("no server could answer"), "{}", lines[0]);
}

#[test]
fn parallel_threads_get_their_own_answers() {
    let server = server();
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let url = server.url();
            std::thread::spawn(move || {
                let service = Service::simple(&format!("socket={url}"));
                let (password, expected) = if i % 2 == 0 { (ALICE_PASSWORD, PAM_SUCCESS) } else { ("wrong", PAM_AUTH_ERR) };
                for _ in 0..5 {
                    assert_eq!(authenticate(&service, "alice", password), expected);
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
}

/// Binds a Unix socket that listens with a backlog of 0 and never accepts, and
/// fills its backlog with the returned clients, so that a further blocking
/// connect would hang.
fn full_backlog_socket(path: &std::path::Path) -> (std::os::unix::net::UnixListener, Vec<std::os::unix::net::UnixStream>) {
    use std::os::unix::io::FromRawFd;
    use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
    let listener = UnixListener::bind(path).unwrap();
    let fd = std::os::unix::io::AsRawFd::as_raw_fd(&listener);
    assert_eq!(unsafe { libc::listen(fd, 0) }, 0);
    let address = SocketAddr::from_pathname(path).unwrap();
    let mut clients = Vec::new();
    for _ in 0..64 {
        let raw = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0) };
        let client = unsafe { UnixStream::from_raw_fd(raw) };
        let mut sockaddr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        sockaddr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let bytes = std::os::unix::ffi::OsStrExt::as_bytes(address.as_pathname().unwrap().as_os_str());
        for (target, byte) in sockaddr.sun_path.iter_mut().zip(bytes) {
            *target = *byte as libc::c_char;
        }
        let length = (std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1) as libc::socklen_t;
        let rc = unsafe { libc::connect(raw, &sockaddr as *const _ as *const libc::sockaddr, length) };
        if rc != 0 {
            break;
        }
        clients.push(client);
    }
    (listener, clients)
}

#[test]
fn unix_socket_with_full_backlog_is_authinfo_unavail_within_deadline() {
    let dir = scratch_dir("backlog");
    let path = dir.join("server.sock");
    let (_listener, _clients) = full_backlog_socket(&path);
    let service = Service::simple(&format!("socket=file://{} timeout=1", path.display()));
    let started = Instant::now();
    assert_eq!(name(authenticate(&service, "alice", ALICE_PASSWORD)), name(PAM_AUTHINFO_UNAVAIL));
    assert!(started.elapsed() < Duration::from_millis(1500), "deadline overrun: {:?}", started.elapsed());
}

#[test]
fn old_zarafa_over_unix_socket_is_service_err() {
    // Zarafa before 7.1 ignores NO_UID_AUTH, so its er 0 over a Unix socket may be
    // the peer-uid bypass rather than a checked password.
    let dir = scratch_dir("old-zarafa");
    let path = dir.join("zarafa.sock");
    let requests = Canned::start_unix(
        &path,
        vec![soap_reply("<logonResponse><er>0</er><ulSessionId>77</ulSessionId><lpszVersion>0,7,0,28,27000</lpszVersion></logonResponse>")],
    );
    let service = Service::simple(&format!("socket=file://{}", path.display()));
    assert_eq!(name(authenticate(&service, "alice", "any password at all")), name(PAM_SERVICE_ERR));
    assert!(requests.lock().unwrap()[0].contains("<ulFlags>3</ulFlags>"));
}

#[test]
fn old_zarafa_over_tcp_is_trusted() {
    let canned = Canned::start(vec![
        soap_reply("<logonResponse><er>0</er><ulSessionId>77</ulSessionId><lpszVersion>0,7,0,28,27000</lpszVersion></logonResponse>"),
        soap_reply("<logoffResponse><result>0</result></logoffResponse>"),
    ]);
    let service = Service::simple(&format!("socket={}", canned.url()));
    assert_eq!(authenticate(&service, "alice", ALICE_PASSWORD), PAM_SUCCESS);
}

#[test]
fn without_try_first_pass_prompts_again_like_pam_unix() {
    let server = server();
    let service = Service::new(&format!(
        "auth optional pam_unix.so nodelay\nauth required {{module}} socket={}\n",
        server.url()
    ));
    let run = run(&service, Attempt { user: "alice", password: Some(ALICE_PASSWORD.as_bytes()), ..Default::default() });
    assert_eq!(run.auth, PAM_SUCCESS);
    assert_eq!(run.password_prompts, 2);
}

#[test]
fn server_text_quoting_password_is_redacted() {
    let password = "Echo\"Me\\9f2d <&>";
    let fault = format!(
        "<SOAP-ENV:Fault><faultcode>SOAP-ENV:Server</faultcode><faultstring>cannot parse szPassword {}</faultstring></SOAP-ENV:Fault>",
        password.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
    );
    let redirect = "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:9/?pw=Echo%22Me%5C9f2d%20%3C%26%3E\r\nContent-Length: 0\r\n\r\n";
    for (label, reply) in [("fault", soap_reply(&fault)), ("redirect", redirect.to_string())] {
        let user = unique(&format!("logcheck-echo-{label}"));
        let canned = Canned::start(vec![reply]);
        let service = Service::simple(&format!("socket={} debug", canned.url()));
        assert_eq!(name(authenticate(&service, &user, password)), name(PAM_AUTHINFO_UNAVAIL), "{label}");
        let lines = log_lines_with(&user, 2);
        assert!(!lines.is_empty(), "no log line for {user}");
        for line in &lines {
            assert!(!line.contains("9f2d"), "password in log: {line}");
        }
        assert!(lines.iter().any(|line| line.contains("not logged, because a reply")), "{label}: {lines:?}");
    }
}

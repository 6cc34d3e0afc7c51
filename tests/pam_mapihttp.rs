//! pam_mapi.so with protocol=mapihttp, loaded by the real libpam, against the
//! stand-in Gromox server: the PING request, the reply decision, local input
//! checks, plain-http refusal, deadlines, Gromox's failure delay and ban, and the
//! libpam-level checks that both protocols must pass alike.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use kopano_standin::{Config, Fault, Server, TEST_CA_PEM};

const ALICE: &str = "alice@example.test";
const ALICE_PASSWORD: &str = "Alice-Secret-1";
const CAROL: &str = "carol@example.test";
const CAROL_PASSWORD: &str = "Pässwörd-ü€";
const ERIN: &str = "erin@example.test";
const ERIN_PASSWORD: &str = "Er:in-Secret:5";

/// Failure delay for tests about something other than the delay itself.
const SHORT_DELAY: Duration = Duration::from_millis(20);

/// Returns a state file path of this test process, so that servers marked down by one run of
/// the suite do not reorder the servers of another.
fn state_file() -> PathBuf {
    std::env::temp_dir().join(format!("pam_mapi-mapihttp-state-{}", std::process::id())).join("servers.state")
}

fn gromox_config() -> Config {
    Config::mapihttp().user(ALICE, ALICE_PASSWORD).user(CAROL, CAROL_PASSWORD).user(ERIN, ERIN_PASSWORD)
}

fn gromox() -> Server {
    Server::start(gromox_config().failure_delay(SHORT_DELAY)).unwrap()
}

/// `auth` and `account` lines with protocol=mapihttp, `socket=url` and `extra`.
fn service(url: &str, extra: &str) -> Service {
    Service::simple(&format!("protocol=mapihttp socket={url} state_file={} {extra}", state_file().display()))
}

/// A loopback server that accepts one connection, reads one request head, sends
/// `reply` and returns the head.
fn capture_one(reply: &'static str) -> (String, std::thread::JoinHandle<String>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let mut writer = stream;
        writer.write_all(reply.as_bytes()).unwrap();
        head
    });
    (url, handle)
}

/// The reply Gromox 3.10 sends to a PING with right credentials and no session cookie.
const GROMOX_PING_REPLY: &str = "HTTP/1.1 200 OK\r\nCache-Control: private\r\nContent-Type: text/html\r\n\
    X-ResponseCode: 6\r\nContent-Length: 0\r\nX-ServerApplication: Exchange/15.00.0847.4040\r\nConnection: close\r\n\r\n";

/// Returns a user name that only this run of the suite logs, so that a log test never
/// reads the lines of an earlier run.
fn log_marker_user(label: &str) -> String {
    format!("logcheck-mapihttp-{label}-{}@example.test", std::process::id())
}

fn header_value<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn right_password_is_success() {
    let server = gromox();
    let service = service(&server.url(), "");
    assert_eq!(name(authenticate(&service, ALICE, ALICE_PASSWORD)), name(PAM_SUCCESS));
}

#[test]
fn right_password_sends_one_ping() {
    let server = gromox();
    let service = service(&server.url(), "");
    assert_eq!(authenticate(&service, ALICE, ALICE_PASSWORD), PAM_SUCCESS);
    assert_eq!(server.request_count("PING"), 1);
}

#[test]
fn wrong_password_is_auth_err_after_server_delay() {
    // The stand-in keeps Gromox's default failure delay of 1 s here.
    let server = Server::start(gromox_config()).unwrap();
    let service = service(&server.url(), "");
    let started = Instant::now();
    assert_eq!(name(authenticate(&service, ALICE, "wrong-password")), name(PAM_AUTH_ERR));
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(950), "returned before the server's 1 s delay: {elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "took too long: {elapsed:?}");
}

#[test]
fn unknown_user_is_auth_err() {
    let server = gromox();
    let service = service(&server.url(), "");
    assert_eq!(name(authenticate(&service, "nobody@example.test", ALICE_PASSWORD)), name(PAM_AUTH_ERR));
}

#[test]
fn user_name_case_is_left_to_server() {
    let server = gromox();
    let service = service(&server.url(), "");
    assert_eq!(authenticate(&service, "ALICE@EXAMPLE.TEST", ALICE_PASSWORD), PAM_SUCCESS);
    assert_eq!(server.logons()[0].username, "ALICE@EXAMPLE.TEST");
}

#[test]
fn empty_password_sends_no_request() {
    let server = gromox();
    let service = service(&server.url(), "");
    assert_eq!(authenticate(&service, ALICE, ""), PAM_AUTH_ERR);
    assert_eq!(server.request_count("PING"), 0);
}

#[test]
fn non_ascii_password_is_sent_as_utf8() {
    let server = gromox();
    let service = service(&server.url(), "");
    assert_eq!(name(authenticate(&service, CAROL, CAROL_PASSWORD)), name(PAM_SUCCESS));
    assert_eq!(server.logons()[0].password, CAROL_PASSWORD.as_bytes());
}

#[test]
fn colon_in_password_is_success() {
    let server = gromox();
    let service = service(&server.url(), "");
    assert_eq!(name(authenticate(&service, ERIN, ERIN_PASSWORD)), name(PAM_SUCCESS));
}

#[test]
fn colon_in_user_sends_no_request() {
    let server = gromox();
    let service = service(&server.url(), "");
    assert_eq!(name(authenticate(&service, "alice:x@example.test", ALICE_PASSWORD)), name(PAM_AUTH_ERR));
    assert_eq!(server.request_count("PING"), 0);
}

#[test]
fn password_of_127_bytes_is_sent() {
    let password = "p".repeat(127);
    let server = Server::start(Config::mapihttp().user(ALICE, &password)).unwrap();
    let service = service(&server.url(), "");
    assert_eq!(name(authenticate(&service, ALICE, &password)), name(PAM_SUCCESS));
}

#[test]
fn password_over_127_bytes_sends_no_request() {
    // Gromox would accept this password with any suffix after its first 127 bytes.
    let server = Server::start(Config::mapihttp().user(ALICE, &"p".repeat(127))).unwrap();
    let service = service(&server.url(), "");
    let longer = format!("{}-any-suffix", "p".repeat(127));
    assert_eq!(name(authenticate(&service, ALICE, &longer)), name(PAM_AUTH_ERR));
    assert_eq!(server.request_count("PING"), 0);
}

#[test]
fn password_over_127_bytes_is_logged() {
    let server = gromox();
    let service = service(&server.url(), "");
    let user = log_marker_user("long");
    assert_eq!(authenticate(&service, &user, &"q".repeat(140)), PAM_AUTH_ERR);
    let lines = log_lines_with(&user, 1);
    let line = lines.first().expect("a log line for the long password");
    assert!(line.contains("140 bytes"), "{line}");
}

#[test]
fn non_ascii_user_is_auth_err() {
    // Gromox 3.10 fails such a name with an SQL collation error and returns 401.
    let server = gromox();
    let service = service(&server.url(), "");
    assert_eq!(name(authenticate(&service, "älice@example.test", ALICE_PASSWORD)), name(PAM_AUTH_ERR));
}

#[test]
fn plain_http_to_ipv6_loopback_is_success() {
    let server = Server::start(gromox_config().tcp(Some("[::1]:0".parse().unwrap()))).unwrap();
    let port = server.tcp_addr().unwrap().port();
    let service = service(&format!("http://[::1]:{port}/"), "");
    assert_eq!(name(authenticate(&service, ALICE, ALICE_PASSWORD)), name(PAM_SUCCESS));
}

#[test]
fn default_domain_completes_bare_name() {
    let server = gromox();
    let service = service(&server.url(), "default_domain=example.test");
    assert_eq!(name(authenticate(&service, "alice", ALICE_PASSWORD)), name(PAM_SUCCESS));
    assert_eq!(server.logons()[0].username, ALICE);
}

#[test]
fn bare_name_without_default_domain_is_auth_err() {
    let server = gromox();
    let service = service(&server.url(), "");
    assert_eq!(authenticate(&service, "alice", ALICE_PASSWORD), PAM_AUTH_ERR);
}

#[test]
fn request_is_basic_authenticated_ping() {
    let (url, capture) = capture_one(GROMOX_PING_REPLY);
    let service = service(&url, "");
    assert_eq!(name(authenticate(&service, CAROL, CAROL_PASSWORD)), name(PAM_SUCCESS));
    let head = capture.join().unwrap();
    let expected_token = base64::engine::general_purpose::STANDARD.encode(format!("{CAROL}:{CAROL_PASSWORD}"));
    assert!(head.starts_with("POST /mapi/emsmdb/?MailboxId=carol@example.test HTTP/1.1\r\n"), "{head}");
    assert_eq!(header_value(&head, "Authorization"), Some(format!("Basic {expected_token}").as_str()));
    assert_eq!(header_value(&head, "X-RequestType"), Some("PING"));
    assert_eq!(header_value(&head, "Content-Type"), Some("application/mapi-http"));
    assert_eq!(header_value(&head, "Content-Length"), Some("0"));
    assert_eq!(header_value(&head, "Connection"), Some("close"));
    assert!(header_value(&head, "X-ClientApplication").is_some_and(|v| v.starts_with("pam_mapi/")), "{head}");
    assert!(header_value(&head, "X-RequestId").is_some_and(|v| v.starts_with('{') && v.contains("}:")), "{head}");
    assert!(header_value(&head, "X-ClientInfo").is_some_and(|v| v.starts_with('{') && v.ends_with("}:1")), "{head}");
}

#[test]
fn request_keeps_base_path_and_encodes_user() {
    let (url, capture) = capture_one(GROMOX_PING_REPLY);
    let service = service(&format!("{url}groupware"), "");
    assert_eq!(authenticate(&service, "a b&c@example.test", "pw"), PAM_SUCCESS);
    let head = capture.join().unwrap();
    assert!(head.starts_with("POST /groupware/mapi/emsmdb/?MailboxId=a%20b%26c@example.test HTTP/1.1\r\n"), "{head}");
}

#[test]
fn unix_socket_right_password_is_success() {
    let dir = scratch_dir("gromox-unix");
    let server = Server::start(gromox_config().tcp(None).unix(dir.join("http.sock"))).unwrap();
    let service = service(&server.unix_url().unwrap(), "");
    assert_eq!(name(authenticate(&service, ALICE, ALICE_PASSWORD)), name(PAM_SUCCESS));
}

#[test]
fn https_right_password_is_success() {
    let dir = scratch_dir("gromox-tls");
    let cafile = dir.join("ca.pem");
    std::fs::write(&cafile, TEST_CA_PEM).unwrap();
    let server = Server::start(gromox_config().tls_localhost()).unwrap();
    let port = server.tcp_addr().unwrap().port();
    let service = service(&format!("https://localhost:{port}/"), &format!("cafile={}", cafile.display()));
    assert_eq!(name(authenticate(&service, ALICE, ALICE_PASSWORD)), name(PAM_SUCCESS));
}

#[test]
fn https_wrong_password_is_auth_err() {
    let dir = scratch_dir("gromox-tls");
    let cafile = dir.join("ca.pem");
    std::fs::write(&cafile, TEST_CA_PEM).unwrap();
    let server = Server::start(gromox_config().tls_localhost().failure_delay(SHORT_DELAY)).unwrap();
    let port = server.tcp_addr().unwrap().port();
    let service = service(&format!("https://localhost:{port}/"), &format!("cafile={}", cafile.display()));
    assert_eq!(name(authenticate(&service, ALICE, "wrong")), name(PAM_AUTH_ERR));
}

#[test]
fn plain_http_to_remote_address_is_service_err() {
    // 192.0.2.1 (TEST-NET-1) is never contacted: the settings are rejected first.
    let service = service("http://192.0.2.1:47901/", "");
    let started = Instant::now();
    assert_eq!(name(authenticate(&service, ALICE, ALICE_PASSWORD)), name(PAM_SERVICE_ERR));
    assert!(started.elapsed() < Duration::from_millis(500), "took {:?}", started.elapsed());
}

#[test]
fn plain_http_refusal_is_logged_with_reason() {
    let service = service("http://192.0.2.1:47902/", "");
    assert_eq!(authenticate(&service, ALICE, ALICE_PASSWORD), PAM_SERVICE_ERR);
    let lines = log_lines_with("192.0.2.1:47902", 1);
    let line = lines.last().expect("a log line naming the refused URL");
    assert!(line.contains("invalid configuration"), "{line}");
    assert!(line.contains("unencrypted"), "{line}");
}

#[test]
fn missing_socket_is_service_err() {
    let service = Service::simple(&format!("protocol=mapihttp state_file={}", state_file().display()));
    assert_eq!(name(authenticate(&service, ALICE, ALICE_PASSWORD)), name(PAM_SERVICE_ERR));
}

#[test]
fn service_option_is_service_err() {
    let server = gromox();
    let service = service(&server.url(), "service=imap");
    assert_eq!(name(authenticate(&service, ALICE, ALICE_PASSWORD)), name(PAM_SERVICE_ERR));
    assert_eq!(server.request_count("PING"), 0);
}

#[test]
fn ok_without_mapi_headers_is_authinfo_unavail() {
    let canned = Canned::start(vec![
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 17\r\n\r\n<html>hello</html>".into(),
    ]);
    let service = service(&format!("http://{}/", canned.addr), "");
    assert_eq!(name(authenticate(&service, ALICE, ALICE_PASSWORD)), name(PAM_AUTHINFO_UNAVAIL));
}

#[test]
fn unexpected_response_code_is_authinfo_unavail() {
    let canned = Canned::start(vec!["HTTP/1.1 200 OK\r\nX-ResponseCode: 3\r\nContent-Length: 0\r\n\r\n".into()]);
    let service = service(&format!("http://{}/", canned.addr), "");
    assert_eq!(name(authenticate(&service, ALICE, ALICE_PASSWORD)), name(PAM_AUTHINFO_UNAVAIL));
}

#[test]
fn unauthorized_without_basic_is_service_err() {
    let canned = Canned::start(vec![
        "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Negotiate\r\nWWW-Authenticate: NTLM\r\nContent-Length: 0\r\n\r\n".into(),
    ]);
    let service = service(&format!("http://{}/", canned.addr), "");
    assert_eq!(name(authenticate(&service, ALICE, ALICE_PASSWORD)), name(PAM_SERVICE_ERR));
}

#[test]
fn redirect_is_never_followed() {
    let target = gromox();
    let redirecting = gromox();
    redirecting.set_fault(Fault::Redirect(302, target.url()));
    let service = service(&redirecting.url(), "");
    assert_eq!(name(authenticate(&service, ALICE, ALICE_PASSWORD)), name(PAM_AUTHINFO_UNAVAIL));
    assert_eq!(target.request_count("PING"), 0, "the redirect target was contacted");
}

#[test]
fn stalled_server_is_authinfo_unavail_within_deadline() {
    let server = gromox();
    server.set_fault(Fault::Stall);
    let service = service(&server.url(), "timeout=2");
    let started = Instant::now();
    assert_eq!(name(authenticate(&service, ALICE, ALICE_PASSWORD)), name(PAM_AUTHINFO_UNAVAIL));
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(1900), "returned before the deadline: {elapsed:?}");
    assert!(elapsed < Duration::from_millis(2500), "deadline overrun: {elapsed:?}");
}

#[test]
fn unauthorized_is_not_retried_on_next_server() {
    let first = gromox();
    let second = gromox();
    let service = service(&first.url(), &format!("socket={}", second.url()));
    assert_eq!(name(authenticate(&service, ALICE, "wrong")), name(PAM_AUTH_ERR));
    assert_eq!(first.request_count("PING"), 1);
    assert_eq!(second.request_count("PING"), 0);
}

#[test]
fn unavailable_server_falls_through_to_next() {
    let first = gromox();
    first.set_fault(Fault::Status503Html);
    let second = gromox();
    let service = service(&first.url(), &format!("socket={}", second.url()));
    assert_eq!(name(authenticate(&service, ALICE, ALICE_PASSWORD)), name(PAM_SUCCESS));
}

/// Sends `count` requests with a wrong password on one keep-alive connection, as
/// a client that reuses its connection does, and returns the status codes.
fn wrong_passwords_on_one_connection(server: &Server, user: &str, count: usize) -> Vec<u16> {
    let stream = TcpStream::connect(server.tcp_addr().unwrap()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:wrong"));
    let mut statuses = Vec::new();
    for _ in 0..count {
        write!(
            writer,
            "POST /mapi/emsmdb/?MailboxId={user} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic {token}\r\n\
             Content-Type: application/mapi-http\r\nX-RequestType: PING\r\nX-RequestId: {{1}}:1\r\nX-ClientInfo: {{2}}:1\r\n\
             Content-Length: 0\r\n\r\n"
        )
        .unwrap();
        let mut status_line = String::new();
        reader.read_line(&mut status_line).unwrap();
        statuses.push(status_line.split(' ').nth(1).unwrap_or("0").parse().unwrap_or(0));
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().unwrap();
            }
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).unwrap();
    }
    statuses
}

#[test]
fn ten_failures_on_one_connection_ban() {
    // The control for the next test: a client that keeps its connection gets the
    // user name banned, and then even the right password fails.
    let server = gromox();
    let statuses = wrong_passwords_on_one_connection(&server, ALICE, 10);
    assert_eq!(statuses, vec![401; 10]);
    let service = service(&server.url(), "");
    assert_eq!(name(authenticate(&service, ALICE, ALICE_PASSWORD)), name(PAM_AUTH_ERR));
}

#[test]
fn eleven_failures_through_module_cause_no_ban() {
    let server = gromox();
    let service = service(&server.url(), "");
    for attempt in 1..=11 {
        assert_eq!(name(authenticate(&service, ALICE, "wrong")), name(PAM_AUTH_ERR), "attempt {attempt}");
    }
    assert_eq!(name(authenticate(&service, ALICE, ALICE_PASSWORD)), name(PAM_SUCCESS));
}

#[test]
fn each_authentication_uses_a_new_connection() {
    let server = gromox();
    let service = service(&server.url(), "");
    for _ in 0..3 {
        assert_eq!(authenticate(&service, ALICE, "wrong"), PAM_AUTH_ERR);
    }
    let mut peers: Vec<_> = server.logons().iter().map(|logon| logon.peer_addr).collect();
    peers.dedup();
    assert_eq!(peers.len(), 3, "{peers:?}");
}

#[test]
fn debug_log_never_contains_password() {
    let user = &log_marker_user("debug");
    let password = "Zq9-unique-mapihttp-password-&<>";
    let server = Server::start(Config::mapihttp().user(user, password).failure_delay(SHORT_DELAY)).unwrap();
    let service = service(&server.url(), "debug");
    assert_eq!(authenticate(&service, user, password), PAM_SUCCESS);
    assert_eq!(authenticate(&service, user, "Zq9-unique-wrong-password"), PAM_AUTH_ERR);
    let lines = log_lines_with(user, 4);
    assert!(lines.len() >= 4, "expected request, reply and result lines, got {lines:?}");
    let right_token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    for line in &lines {
        assert!(!line.contains("Zq9-unique"), "password in log: {line}");
        assert!(!line.contains(&right_token), "Basic token in log: {line}");
    }
}

#[test]
fn failure_log_names_user_server_and_reason() {
    let server = gromox();
    let service = service(&server.url(), "");
    let user = &log_marker_user("failure");
    assert_eq!(authenticate(&service, user, "nope"), PAM_AUTH_ERR);
    let lines = log_lines_with(user, 1);
    let line = lines.first().expect("a failure line");
    assert!(line.contains("authentication failure"), "{line}");
    assert!(line.contains(&server.url()), "server: {line}");
    assert!(line.contains("HTTP 401"), "reason: {line}");
}

/// One protocol's stand-in, user and module arguments, for the checks that both
/// protocols must pass alike.
struct Protocol {
    name: &'static str,
    config: fn() -> Config,
    args: &'static str,
    user: &'static str,
    password: &'static str,
    non_ascii_user: &'static str,
}

const NON_ASCII_PASSWORD: &str = "Pässwörd-ü€ 雪";

fn soap_config() -> Config {
    Config::soap().user("alice", ALICE_PASSWORD).user("carol", NON_ASCII_PASSWORD).failure_delay(SHORT_DELAY)
}

fn mapihttp_config() -> Config {
    Config::mapihttp().user(ALICE, ALICE_PASSWORD).user(CAROL, NON_ASCII_PASSWORD).failure_delay(SHORT_DELAY)
}

const PROTOCOLS: [Protocol; 2] = [
    Protocol {
        name: "soap",
        config: soap_config,
        args: "protocol=soap",
        user: "alice",
        password: ALICE_PASSWORD,
        non_ascii_user: "carol",
    },
    Protocol {
        name: "mapihttp",
        config: mapihttp_config,
        args: "protocol=mapihttp",
        user: ALICE,
        password: ALICE_PASSWORD,
        non_ascii_user: CAROL,
    },
];

impl Protocol {
    fn args(&self, server: &Server, extra: &str) -> String {
        format!("{} socket={} state_file={} {extra}", self.args, server.url(), state_file().display())
    }

    fn service(&self, server: &Server, extra: &str) -> Service {
        Service::simple(&self.args(server, extra))
    }
}

/// One row of the shared table: who logs on, how the server misbehaves, and the
/// PAM code both protocols must return.
struct Case {
    name: &'static str,
    user: fn(&Protocol) -> &'static str,
    password: fn(&Protocol) -> String,
    fault: fn(&Server) -> Option<Fault>,
    expected: i32,
    /// Whether the server may receive a logon request at all.
    request_sent: bool,
}

fn no_fault(_: &Server) -> Option<Fault> {
    None
}

fn protocol_user(p: &Protocol) -> &'static str {
    p.user
}

fn protocol_password(p: &Protocol) -> String {
    p.password.to_string()
}

const CASES: &[Case] = &[
    Case { name: "right password", user: protocol_user, password: protocol_password, fault: no_fault, expected: PAM_SUCCESS, request_sent: true },
    Case { name: "wrong password", user: protocol_user, password: |_| "wrong".into(), fault: no_fault, expected: PAM_AUTH_ERR, request_sent: true },
    Case { name: "unknown user", user: |_| "nobody@example.test", password: protocol_password, fault: no_fault, expected: PAM_AUTH_ERR, request_sent: true },
    Case { name: "empty password", user: protocol_user, password: |_| String::new(), fault: no_fault, expected: PAM_AUTH_ERR, request_sent: false },
    Case { name: "control character in password", user: protocol_user, password: |_| "abc\u{1b}def".into(), fault: no_fault, expected: PAM_AUTH_ERR, request_sent: false },
    Case { name: "password over 1024 bytes", user: protocol_user, password: |_| "x".repeat(1025), fault: no_fault, expected: PAM_AUTH_ERR, request_sent: false },
    Case { name: "non-ASCII password", user: |p| p.non_ascii_user, password: |_| NON_ASCII_PASSWORD.into(), fault: no_fault, expected: PAM_SUCCESS, request_sent: true },
    Case { name: "connection refused", user: protocol_user, password: protocol_password, fault: |_| Some(Fault::Refuse), expected: PAM_AUTHINFO_UNAVAIL, request_sent: false },
    Case { name: "stalled server", user: protocol_user, password: protocol_password, fault: |_| Some(Fault::Stall), expected: PAM_AUTHINFO_UNAVAIL, request_sent: true },
    Case { name: "redirect", user: protocol_user, password: protocol_password, fault: |s| Some(Fault::Redirect(307, s.url())), expected: PAM_AUTHINFO_UNAVAIL, request_sent: true },
    Case { name: "HTTP 503", user: protocol_user, password: protocol_password, fault: |_| Some(Fault::Status503Html), expected: PAM_AUTHINFO_UNAVAIL, request_sent: true },
    Case { name: "body over 64 KiB", user: protocol_user, password: protocol_password, fault: |_| Some(Fault::HugeBody(1)), expected: PAM_AUTHINFO_UNAVAIL, request_sent: true },
    Case { name: "reset after request", user: protocol_user, password: protocol_password, fault: |_| Some(Fault::ResetAfterRequest), expected: PAM_AUTHINFO_UNAVAIL, request_sent: true },
    Case { name: "endless chunked body", user: protocol_user, password: protocol_password, fault: |_| Some(Fault::ChunkedEndless), expected: PAM_AUTHINFO_UNAVAIL, request_sent: true },
];

#[test]
fn both_protocols_return_the_same_codes() {
    for protocol in &PROTOCOLS {
        for case in CASES {
            let server = Server::start((protocol.config)()).unwrap();
            if let Some(fault) = (case.fault)(&server) {
                server.set_fault(fault);
            }
            let service = protocol.service(&server, "timeout=2");
            let password = (case.password)(protocol);
            let code = authenticate(&service, (case.user)(protocol), &password);
            assert_eq!(name(code), name(case.expected), "{} with {}", case.name, protocol.name);
            if !case.request_sent {
                assert_eq!(server.logons().len(), 0, "{} with {}: a request reached the server", case.name, protocol.name);
            }
        }
    }
}

#[test]
fn both_protocols_pass_account_after_auth() {
    for protocol in &PROTOCOLS {
        let server = Server::start((protocol.config)()).unwrap();
        let service = protocol.service(&server, "");
        let attempt = Attempt { user: protocol.user, password: Some(protocol.password.as_bytes()), account: true, ..Default::default() };
        let run = run(&service, attempt);
        assert_eq!(name(run.auth), name(PAM_SUCCESS), "{}", protocol.name);
        assert_eq!(run.account.map(name), Some(name(PAM_SUCCESS)), "{}", protocol.name);
    }
}

#[test]
fn both_protocols_ignore_account_without_auth() {
    for protocol in &PROTOCOLS {
        let server = Server::start((protocol.config)()).unwrap();
        let service = protocol.service(&server, "");
        let attempt = Attempt { user: protocol.user, password: Some(b"wrong"), account: true, ..Default::default() };
        let run = run(&service, attempt);
        assert_eq!(name(run.auth), name(PAM_AUTH_ERR), "{}", protocol.name);
        assert_ne!(run.account, Some(PAM_SUCCESS), "{}", protocol.name);
    }
}

#[test]
fn both_protocols_reuse_password_with_try_first_pass() {
    for protocol in &PROTOCOLS {
        let server = Server::start((protocol.config)()).unwrap();
        let lines = format!(
            "auth optional pam_unix.so nodelay\nauth required {{module}} try_first_pass {}\n",
            protocol.args(&server, "")
        );
        let service = Service::new(&lines);
        let run = run(&service, Attempt { user: protocol.user, password: Some(protocol.password.as_bytes()), ..Default::default() });
        assert_eq!(name(run.auth), name(PAM_SUCCESS), "{}", protocol.name);
        assert_eq!(run.password_prompts, 1, "{}", protocol.name);
    }
}

#[test]
fn both_protocols_fall_through_to_pam_unix() {
    for protocol in &PROTOCOLS {
        let server = Server::start((protocol.config)()).unwrap();
        let lines = format!(
            "auth sufficient {{module}} try_first_pass quiet {}\n\
             auth required pam_unix.so try_first_pass nodelay\n\
             account sufficient {{module}}\n\
             account required pam_unix.so\n",
            protocol.args(&server, "")
        );
        let service = Service::new(&lines);
        let member = run(&service, Attempt { user: protocol.user, password: Some(protocol.password.as_bytes()), account: true, ..Default::default() });
        assert_eq!((member.auth, member.account), (PAM_SUCCESS, Some(PAM_SUCCESS)), "{}", protocol.name);
        let stranger = run(&service, Attempt { user: "nosuchuser", password: Some(b"whatever"), ..Default::default() });
        assert_ne!(stranger.auth, PAM_SUCCESS, "{}", protocol.name);
        assert_eq!(stranger.password_prompts, 1, "{}: pam_unix must reuse the password pam_mapi read", protocol.name);
    }
}

#[test]
fn both_protocols_use_first_pass_never_prompts() {
    for protocol in &PROTOCOLS {
        let server = Server::start((protocol.config)()).unwrap();
        let service = protocol.service(&server, "use_first_pass");
        let run = run(&service, Attempt { user: protocol.user, password: Some(protocol.password.as_bytes()), ..Default::default() });
        assert_ne!(run.auth, PAM_SUCCESS, "{}", protocol.name);
        assert_eq!(run.password_prompts, 0, "{}", protocol.name);
        assert_eq!(server.logons().len(), 0, "{}", protocol.name);
    }
}

#[test]
fn both_protocols_ignore_passes_to_stack() {
    // PAM_IGNORE leaves the decision to the rest of the stack, here pam_permit.
    for protocol in &PROTOCOLS {
        let server = Server::start((protocol.config)()).unwrap();
        server.set_fault(Fault::Status503Html);
        let lines = format!(
            "auth required {{module}} ignore_authinfo_unavail {}\nauth required pam_permit.so\n",
            protocol.args(&server, "")
        );
        let service = Service::new(&lines);
        assert_eq!(name(authenticate(&service, protocol.user, protocol.password)), name(PAM_SUCCESS), "{}", protocol.name);
    }
}

#[test]
fn both_protocols_unavail_fails_stack() {
    for protocol in &PROTOCOLS {
        let server = Server::start((protocol.config)()).unwrap();
        server.set_fault(Fault::Status503Html);
        let lines = format!("auth required {{module}} {}\nauth required pam_permit.so\n", protocol.args(&server, ""));
        let service = Service::new(&lines);
        assert_eq!(
            name(authenticate(&service, protocol.user, protocol.password)),
            name(PAM_AUTHINFO_UNAVAIL),
            "{}",
            protocol.name
        );
    }
}

#[test]
fn timeout_below_failure_delay_is_service_err() {
    let server = gromox();
    let service = service(&server.url(), "timeout=1");
    assert_eq!(name(authenticate(&service, ALICE, "wrong")), name(PAM_SERVICE_ERR));
    assert_eq!(server.request_count("PING"), 0);
}

#[test]
fn response_code_quoting_password_is_redacted() {
    let user = log_marker_user("echo");
    let password = "Echo-Back-7c41";
    let reply = format!("HTTP/1.1 200 OK\r\nX-ResponseCode: {password}\r\nContent-Length: 0\r\n\r\n");
    let canned = Canned::start(vec![reply]);
    let service = service(&canned.url(), "debug");
    assert_eq!(name(authenticate(&service, &user, password)), name(PAM_AUTHINFO_UNAVAIL));
    let lines = log_lines_with(&user, 2);
    assert!(!lines.is_empty(), "no log line for {user}");
    for line in &lines {
        assert!(!line.contains("7c41"), "password in log: {line}");
    }
    assert!(lines.iter().any(|line| line.contains("invalid X-ResponseCode") && line.contains("not logged, because a reply")), "{lines:?}");
}

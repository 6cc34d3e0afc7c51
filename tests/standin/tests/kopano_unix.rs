//! Replays the kopano-server 11.0.2 Unix-socket captures: the peer-uid logon without a
//! password check (u01-u10), session binding to the client pid (l04-l07, x01, x02) and an
//! unprivileged client (n01, n02). Runs as root; other processes are this test binary
//! started again in helper mode.

mod common;

use std::io::Write;
use std::process::Command;

use common::*;
use kopano_standin::{Config, Server, Transport};

const ALICE_XML: &str = "Secr3t&amp;&lt;pass&gt;";
const LOGON_FAILED: u64 = 2147483657;
const END_OF_SESSION: u64 = 2147483664;
/// uid of `nobody` on Debian.
const NOBODY: u32 = 65534;

fn server(name: &str) -> Server {
    Server::start(
        Config::soap()
            .tcp(Some("127.0.0.1:0".parse().unwrap()))
            .unix(socket_path(name))
            .user("alice", "Secr3t&<pass>")
            .user("bob", "plain"),
    )
    .unwrap()
}

fn logon_unix(server: &Server, user: &str, password_xml: &str, flags: u32) -> Reply {
    post_unix(server.unix_path().unwrap(), &logon(user, password_xml, flags))
}

/// Sends `body` over the Unix socket from another process, optionally as `uid`, and
/// returns the response body.
fn post_from_child(server: &Server, body: &str, uid: Option<u32>) -> Reply {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", "child_helper", "--nocapture", "--test-threads=1"])
        .env("STANDIN_CHILD_SOCKET", server.unix_path().unwrap())
        .env("STANDIN_CHILD_BODY", body);
    if let Some(uid) = uid {
        std::os::unix::process::CommandExt::uid(&mut command, uid);
    }
    let output = command.output().expect("starting the helper process failed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let start = stdout.find("<<<BODY").expect("helper printed no response") + "<<<BODY".len();
    let end = stdout.find("BODY>>>").unwrap();
    Reply { status: 200, head: String::new(), headers: Vec::new(), body: stdout[start..end].as_bytes().to_vec() }
}

/// Helper mode: posts one request when started by `post_from_child`, else does nothing.
#[test]
fn child_helper() {
    let (Ok(socket), Ok(body)) = (std::env::var("STANDIN_CHILD_SOCKET"), std::env::var("STANDIN_CHILD_BODY")) else {
        return;
    };
    let reply = post_unix(std::path::Path::new(&socket), &body);
    let mut stdout = std::io::stdout();
    write!(stdout, "<<<BODY{}BODY>>>", reply.text()).unwrap();
    stdout.flush().unwrap();
}

macro_rules! require_root {
    () => {
        if !is_root() {
            eprintln!("skipped: the Unix-socket peer-uid tests need uid 0");
            return;
        }
    };
}

#[test]
fn u01_u02_root_logs_on_with_any_password() {
    require_root!();
    let server = server("u01");
    assert_eq!(logon_unix(&server, "alice", ALICE_XML, 0).er(), 0, "u01 correct password");
    assert_eq!(logon_unix(&server, "alice", "wrong-password", 0).er(), 0, "u02 wrong password");
    assert_eq!(logon_unix(&server, "alice", "", 0).er(), 0, "u06 empty password");
    assert_eq!(server.registered_sessions(), 3);
    let logons = server.logons();
    assert!(logons[1].peer_uid_bypass);
    assert_eq!(logons[1].transport, Transport::Unix);
    assert_eq!(logons[1].peer_uid, Some(0));
    assert_eq!(logons[1].peer_pid, Some(std::process::id() as i32));
}

#[test]
fn u03_unknown_user_fails() {
    require_root!();
    let server = server("u03");
    assert_eq!(logon_unix(&server, "nosuchuser", ALICE_XML, 0).er(), LOGON_FAILED);
}

#[test]
fn u04_u05_no_uid_auth_checks_password() {
    require_root!();
    let server = server("u04");
    assert_eq!(logon_unix(&server, "alice", "wrong-password", 1).er(), LOGON_FAILED, "u04 wrong password");
    assert_eq!(logon_unix(&server, "alice", ALICE_XML, 1).er(), 0, "u05 correct password");
    assert!(!server.logons()[1].peer_uid_bypass);
}

#[test]
fn u07_system_gets_session() {
    require_root!();
    let server = server("u07");
    assert_eq!(logon_unix(&server, "SYSTEM", "", 0).er(), 0);
}

#[test]
fn u08_path_is_ignored() {
    require_root!();
    let server = server("u08");
    let reply = exchange(&mut unix(server.unix_path().unwrap()), "/kopano", &logon("alice", "wrong-password", 0));
    assert_eq!(reply.er(), 0);
}

#[test]
fn u09_u10_missing_impersonate_user_checks_password() {
    require_root!();
    let server = server("u09");
    let path = server.unix_path().unwrap();
    assert_eq!(post_unix(path, &minimal_logon("alice", "wrong-password")).er(), LOGON_FAILED, "u09");
    assert_eq!(post_unix(path, &minimal_logon("alice", ALICE_XML)).er(), 0, "u10");
    assert!(!server.logons()[0].impersonate_user_present);
}

#[test]
fn unix_success_matches_capture_shape() {
    require_root!();
    let server = server("shape");
    let reply = logon_unix(&server, "alice", ALICE_XML, 1);
    assert_eq!(reply.head.lines().next(), Some("HTTP/1.1 200 OK"));
    assert_eq!(reply.header("Server"), Some("gSOAP/2.8"));
    assert_eq!(reply.header("Connection"), Some("keep-alive"));
    assert_eq!(reply.element("sServerGuid").as_deref(), Some("gXjCm157R4i7+Fe8sZdopw=="));
}

#[test]
fn bare_xml_gets_http_response() {
    require_root!();
    let server = server("bare");
    let mut stream = unix(server.unix_path().unwrap());
    stream.write_all(logon("alice", ALICE_XML, 1).as_bytes()).unwrap();
    let reply = read_reply(&mut stream).unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.er(), 0);
}

#[test]
fn l04_logoff_from_other_process_fails() {
    require_root!();
    let server = server("l04");
    let session = logon_unix(&server, "alice", ALICE_XML, 0).session_id();
    let reply = post_from_child(&server, &common::logoff(session), None);
    assert_eq!(reply.result(), END_OF_SESSION);
    assert_eq!(server.registered_sessions(), 1);
}

#[test]
fn l05_l07_logoff_across_transports_fails() {
    require_root!();
    let server = server("l05");
    let unix_session = logon_unix(&server, "alice", "wrong-password", 0).session_id();
    let tcp_session = post_tcp(server.tcp_addr().unwrap(), &logon("bob", "plain", 0)).session_id();
    let l05 = post_tcp(server.tcp_addr().unwrap(), &common::logoff(unix_session));
    assert_eq!(l05.result(), END_OF_SESSION, "l05 Unix session over TCP");
    let l07 = post_unix(server.unix_path().unwrap(), &common::logoff(tcp_session));
    assert_eq!(l07.result(), END_OF_SESSION, "l07 TCP session over Unix");
    let l08 = post_tcp(server.tcp_addr().unwrap(), &common::logoff(tcp_session));
    assert_eq!(l08.result(), 0, "l08 TCP session over TCP");
}

#[test]
fn x01_same_connection_logoff() {
    require_root!();
    let server = server("x01");
    let mut stream = unix(server.unix_path().unwrap());
    let session = exchange(&mut stream, "/", &logon("alice", "wrong-password", 0)).session_id();
    assert_eq!(exchange(&mut stream, "/", &common::logoff(session)).result(), 0);
    assert_eq!(exchange(&mut stream, "/", &common::logoff(session)).result(), END_OF_SESSION);
}

#[test]
fn x02_same_process_new_connection_logoff() {
    require_root!();
    let server = server("x02");
    let session = logon_unix(&server, "alice", ALICE_XML, 0).session_id();
    let path = server.unix_path().unwrap();
    assert_eq!(post_unix(path, &common::logoff(session)).result(), 0);
    assert_eq!(post_unix(path, &common::logoff(session)).result(), END_OF_SESSION);
}

#[test]
fn n01_n02_nobody_needs_password() {
    require_root!();
    let server = server("n01");
    let n01 = post_from_child(&server, &logon("alice", ALICE_XML, 0), Some(NOBODY));
    assert_eq!(n01.er(), 0, "n01 correct password");
    let n02 = post_from_child(&server, &logon("alice", "wrong-password", 0), Some(NOBODY));
    assert_eq!(n02.er(), LOGON_FAILED, "n02 wrong password");
    let logons = server.logons();
    assert_eq!(logons[1].peer_uid, Some(NOBODY));
    assert!(!logons[1].peer_uid_bypass);
}

#[test]
fn unix_url_and_socket_removed_on_drop() {
    let path = socket_path("drop");
    let server = Server::start(Config::soap().tcp(None).unix(&path)).unwrap();
    assert_eq!(server.unix_url(), Some(format!("file://{}", path.display())));
    assert!(path.exists());
    drop(server);
    assert!(!path.exists());
}

#[test]
fn missing_socket_directory_named_in_error() {
    let path = std::path::Path::new("/nonexistent-kopano-standin-dir/server.sock");
    let error = Server::start(Config::soap().tcp(None).unix(path)).err().unwrap();
    assert!(error.to_string().contains("/nonexistent-kopano-standin-dir/server.sock"), "{error}");
}

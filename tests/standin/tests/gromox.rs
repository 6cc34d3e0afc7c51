//! Replays the Gromox 3.10 MAPI over HTTP captures: Basic credentials on the PING check,
//! the identical 401 for every rejection, the failure delay, the 127-byte password limit
//! and the per-user ban after repeated failures on one connection.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use kopano_standin::{Config, Server};

const DELAY: Duration = Duration::from_millis(200);
const FRANK_PASSWORD: &str = concat!(
    "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz",
    "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyzXYZ"
);

fn config() -> Config {
    Config::mapihttp()
        .user("alice@example.test", "Alice-Secret-1")
        .user("bob@example.test", "Bob-Secret-2")
        .user("carol@example.test", "Pässwörd-ü€")
        .user("erin@example.test", "Er:in-Secret:5")
        .user("dave@example.test", "")
        .user("frank@example.test", &FRANK_PASSWORD[..127])
        .failure_delay(DELAY)
}

fn basic(credentials: &[u8]) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(credentials))
}

fn ping_request(authorization: Option<&str>, close: bool) -> Vec<u8> {
    let mut request = String::from("POST /mapi/emsmdb/?MailboxId=x@example.test HTTP/1.1\r\nHost: gromox.example.test\r\n");
    if let Some(authorization) = authorization {
        request.push_str(&format!("Authorization: {authorization}\r\n"));
    }
    request.push_str(
        "Content-Type: application/mapi-http\r\nX-RequestType: PING\r\n\
         X-RequestId: {11111111-2222-3333-4444-555555555555}:1\r\n\
         X-ClientInfo: {66666666-7777-8888-9999-000000000000}:1\r\nContent-Length: 0\r\n",
    );
    if close {
        request.push_str("Connection: close\r\n");
    }
    request.push_str("\r\n");
    request.into_bytes()
}

fn ping_on(stream: &mut TcpStream, authorization: Option<&str>) -> Reply {
    stream.write_all(&ping_request(authorization, false)).unwrap();
    read_reply(stream).unwrap()
}

/// Sends one PING with `Connection: close` and returns the reply and the elapsed time.
fn ping(server: &Server, authorization: Option<&str>) -> (Reply, Duration) {
    let mut stream = tcp(server.tcp_addr().unwrap());
    let start = Instant::now();
    stream.write_all(&ping_request(authorization, true)).unwrap();
    let reply = read_reply(&mut stream).unwrap();
    (reply, start.elapsed())
}

fn ping_as(server: &Server, user: &str, password: &str) -> (Reply, Duration) {
    ping(server, Some(&basic(format!("{user}:{password}").as_bytes())))
}

const UNAUTHORIZED_HEAD: &str = "HTTP/1.1 401 Unauthorized\r\nDate: DATE\r\nContent-Length: 14\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nWWW-Authenticate: Basic realm=\"msrpc realm\", charset=\"utf-8\"";

fn assert_unauthorized(reply: &Reply, case: &str) {
    let date = reply.header("Date").unwrap_or("");
    assert_eq!(reply.head.replace(date, "DATE"), UNAUTHORIZED_HEAD, "{case}");
    assert_eq!(reply.body, b"Unauthorized\r\n", "{case}");
}

#[test]
fn ping_right_password_gets_response_code_6() {
    let server = Server::start(config()).unwrap();
    let (reply, elapsed) = ping_as(&server, "alice@example.test", "Alice-Secret-1");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("X-ResponseCode"), Some("6"));
    assert_eq!(reply.header("Content-Type"), Some("text/html"));
    assert_eq!(reply.header("X-ServerApplication"), Some("Exchange/15.00.0847.4040"));
    assert!(reply.text().contains("<p>The request is missing a required cookie.</p>"));
    assert!(elapsed < DELAY, "success took {elapsed:?}");
    assert_eq!(server.request_count("PING"), 1);
}

#[test]
fn rejections_are_identical_and_delayed() {
    let server = Server::start(config()).unwrap();
    let cases: [(&str, &[u8]); 9] = [
        ("wrong password", b"alice@example.test:wrong-password"),
        ("unknown user", b"nobody@example.test:Alice-Secret-1"),
        ("empty password", b"alice@example.test:"),
        ("Latin-1 password", b"carol@example.test:P\xe4ssw\xf6rd-\xfc\x80"),
        ("local part only", b"alice:Alice-Secret-1"),
        ("non-ASCII user name", "älice@example.test:Alice-Secret-1".as_bytes()),
        ("empty stored password, empty password", b"dave@example.test:"),
        ("empty stored password, any password", b"dave@example.test:anything"),
        ("password cut at a colon", b"erin@example.test:Er"),
    ];
    for (case, credentials) in cases {
        let (reply, elapsed) = ping(&server, Some(&basic(credentials)));
        assert_unauthorized(&reply, case);
        assert!(elapsed >= DELAY, "{case}: answered after {elapsed:?}");
    }
}

#[test]
fn missing_or_malformed_credentials_rejected_at_once() {
    let server = Server::start(config()).unwrap();
    let cases = [
        ("no header", None),
        ("no colon", Some(basic(b"alice@example.test"))),
        ("not base64", Some("Basic !!!notbase64!!!".to_string())),
        ("Bearer", Some("Bearer abc.def.ghi".to_string())),
    ];
    for (case, authorization) in cases {
        let (reply, elapsed) = ping(&server, authorization.as_deref());
        assert_unauthorized(&reply, case);
        assert!(elapsed < DELAY, "{case}: answered after {elapsed:?}");
    }
    assert!(server.logons().is_empty());
}

#[test]
fn accepted_credentials() {
    let server = Server::start(config()).unwrap();
    let cases = [
        ("upper-case user name", "ALICE@EXAMPLE.TEST", "Alice-Secret-1"),
        ("UTF-8 password", "carol@example.test", "Pässwörd-ü€"),
        ("password with colons", "erin@example.test", "Er:in-Secret:5"),
        ("140-byte password, first 127 stored", "frank@example.test", FRANK_PASSWORD),
    ];
    for (case, user, password) in cases {
        assert_eq!(ping_as(&server, user, password).0.status, 200, "{case}");
    }
}

#[test]
fn password_compared_on_127_bytes() {
    let server = Server::start(config()).unwrap();
    let garbage = format!("{}GARBAGE", &FRANK_PASSWORD[..127]);
    assert_eq!(ping_as(&server, "frank@example.test", &garbage).0.status, 200);
    assert_eq!(ping_as(&server, "frank@example.test", &FRANK_PASSWORD[..126]).0.status, 401);
    assert_eq!(server.logons()[0].password.len(), 127);
}

#[test]
fn long_stored_password_never_matches() {
    let server = Server::start(Config::mapihttp().user("frank@example.test", FRANK_PASSWORD).failure_delay(DELAY)).unwrap();
    assert_eq!(ping_as(&server, "frank@example.test", FRANK_PASSWORD).0.status, 401);
}

#[test]
fn ban_after_failures_on_one_connection() {
    let server = Server::start(config().failure_delay(Duration::from_millis(10)).ban(3, Duration::from_millis(1500))).unwrap();
    let wrong = basic(b"bob@example.test:wrong");
    let right = basic(b"bob@example.test:Bob-Secret-2");
    let mut stream = tcp(server.tcp_addr().unwrap());
    for attempt in 1..=3 {
        let reply = ping_on(&mut stream, Some(&wrong));
        assert_eq!(reply.status, 401, "attempt {attempt}");
        assert_eq!(reply.header("Connection"), Some("keep-alive"));
        assert_eq!(reply.header("Keep-Alive"), Some("timeout=180"));
    }
    assert_eq!(ping_on(&mut stream, Some(&right)).status, 401, "right password, same connection");
    assert_eq!(ping_as(&server, "bob@example.test", "Bob-Secret-2").0.status, 401, "new connection");
    assert_eq!(ping_as(&server, "alice@example.test", "Alice-Secret-1").0.status, 200, "other user");
    std::thread::sleep(Duration::from_millis(1600));
    assert_eq!(ping_as(&server, "bob@example.test", "Bob-Secret-2").0.status, 200, "after the ban");
}

#[test]
fn failures_on_separate_connections_do_not_ban() {
    let server = Server::start(config().failure_delay(Duration::from_millis(10)).ban(3, Duration::from_secs(60))).unwrap();
    for _ in 0..4 {
        assert_eq!(ping_as(&server, "bob@example.test", "wrong").0.status, 401);
    }
    assert_eq!(ping_as(&server, "bob@example.test", "Bob-Secret-2").0.status, 200);
}

#[test]
fn gromox_defaults() {
    let config = Config::mapihttp();
    assert_eq!(config.failure_delay, Duration::from_secs(1));
    assert_eq!(config.ban_after, 10);
    assert_eq!(config.ban_duration, Duration::from_secs(60));
}

#[test]
fn routing_without_mailbox_id() {
    let server = Server::start(config()).unwrap();
    let request = |authorization: &str| {
        let mut stream = tcp(server.tcp_addr().unwrap());
        let text = format!("POST /mapi/emsmdb/ HTTP/1.1\r\nHost: x\r\n{authorization}Content-Length: 0\r\nConnection: close\r\n\r\n");
        stream.write_all(text.as_bytes()).unwrap();
        read_reply(&mut stream).unwrap().status
    };
    let right = format!("Authorization: {}\r\n", basic(b"alice@example.test:Alice-Secret-1"));
    let wrong = format!("Authorization: {}\r\n", basic(b"alice@example.test:wrong"));
    assert_eq!(request(&right), 404, "right password");
    assert_eq!(request(""), 404, "no credentials");
    assert_eq!(request(&wrong), 401, "wrong password");
}

#[test]
fn ews_get_gets_405_without_credentials() {
    let server = Server::start(config()).unwrap();
    let mut stream = tcp(server.tcp_addr().unwrap());
    stream.write_all(b"GET /EWS/Exchange.asmx HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").unwrap();
    let reply = read_reply(&mut stream).unwrap();
    assert_eq!(reply.status, 405);
    assert_eq!(reply.body, b"Method Not Allowed\r\n");
}

fn mapi_request(path: &str, request_type: Option<&str>, cookie: Option<&str>) -> Vec<u8> {
    let mut text = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Type: application/mapi-http\r\n\
         X-RequestId: {{1}}:1\r\nX-ClientInfo: {{2}}:1\r\nContent-Length: 0\r\n",
        basic(b"alice@example.test:Alice-Secret-1")
    );
    if let Some(request_type) = request_type {
        text.push_str(&format!("X-RequestType: {request_type}\r\n"));
    }
    if let Some(cookie) = cookie {
        text.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    text.push_str("\r\n");
    text.into_bytes()
}

const EMSMDB: &str = "/mapi/emsmdb/?MailboxId=alice@example.test";

#[test]
fn ping_with_session_cookie_succeeds() {
    let server = Server::start(config()).unwrap();
    let mut stream = tcp(server.tcp_addr().unwrap());
    stream.write_all(&mapi_request(EMSMDB, Some("Connect"), None)).unwrap();
    let connect = read_reply(&mut stream).unwrap();
    assert_eq!(server.registered_sessions(), 1);
    let sid = connect.header("Set-Cookie").unwrap().to_string();
    stream.write_all(&mapi_request(EMSMDB, Some("PING"), Some(&sid))).unwrap();
    let ping = read_reply(&mut stream).unwrap();
    assert_eq!(ping.header("X-ResponseCode"), Some("0"));
    assert_eq!(ping.header("Content-Type"), Some("application/mapi-http"));
    assert_eq!(ping.header("X-RequestType"), Some("PING"));
    assert!(ping.text().starts_with("PROCESSING\r\nDONE\r\n"));
}

#[test]
fn mapi_response_codes() {
    let server = Server::start(config()).unwrap();
    let cases = [
        ("no X-RequestType", None, None, "1"),
        ("unknown session cookie", Some("PING"), Some("sid=nosuchsession"), "2"),
        ("cookie without sid", Some("PING"), Some("other=1"), "2"),
        ("Execute without cookie", Some("Execute"), None, "6"),
    ];
    for (case, request_type, cookie, code) in cases {
        let mut stream = tcp(server.tcp_addr().unwrap());
        stream.write_all(&mapi_request(EMSMDB, request_type, cookie)).unwrap();
        assert_eq!(read_reply(&mut stream).unwrap().header("X-ResponseCode"), Some(code), "{case}");
    }
    assert_eq!(server.registered_sessions(), 0);
}

#[test]
fn get_on_mapi_path_is_404() {
    let server = Server::start(config()).unwrap();
    let mut stream = tcp(server.tcp_addr().unwrap());
    let request = format!("GET {EMSMDB} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nConnection: close\r\n\r\n", basic(b"alice@example.test:Alice-Secret-1"));
    stream.write_all(request.as_bytes()).unwrap();
    assert_eq!(read_reply(&mut stream).unwrap().status, 404);
}

#[test]
fn accepted_token_cached_on_connection() {
    let server = Server::start(config().failure_delay(Duration::from_millis(10)).ban(2, Duration::from_secs(60))).unwrap();
    let right = basic(b"bob@example.test:Bob-Secret-2");
    let mut cached = tcp(server.tcp_addr().unwrap());
    assert_eq!(ping_on(&mut cached, Some(&right)).status, 200);
    let mut failing = tcp(server.tcp_addr().unwrap());
    for _ in 0..2 {
        assert_eq!(ping_on(&mut failing, Some(&basic(b"bob@example.test:wrong"))).status, 401);
    }
    assert_eq!(ping_on(&mut failing, Some(&right)).status, 401, "banned on a new check");
    assert_eq!(ping_on(&mut cached, Some(&right)).status, 200, "cached result skips the ban");
}

#[test]
fn connect_creates_mapi_session_response() {
    let server = Server::start(config()).unwrap();
    let mut stream = tcp(server.tcp_addr().unwrap());
    let request = format!(
        "POST /mapi/emsmdb/?MailboxId=alice@example.test HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n\
         Content-Type: application/mapi-http\r\nX-RequestType: Connect\r\nX-RequestId: {{1}}:1\r\nX-ClientInfo: {{2}}:1\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n",
        basic(b"alice@example.test:Alice-Secret-1")
    );
    stream.write_all(request.as_bytes()).unwrap();
    let reply = read_reply(&mut stream).unwrap();
    assert_eq!(reply.header("X-ResponseCode"), Some("0"));
    assert!(reply.header("Set-Cookie").unwrap().starts_with("sid="));
    assert!(reply.text().starts_with("PROCESSING\r\nDONE\r\n"));
}

#[test]
fn missing_request_id_gets_code_3() {
    let server = Server::start(config()).unwrap();
    let mut stream = tcp(server.tcp_addr().unwrap());
    let request = format!(
        "POST /mapi/emsmdb/?MailboxId=alice@example.test HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n\
         X-RequestType: PING\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        basic(b"alice@example.test:Alice-Secret-1")
    );
    stream.write_all(request.as_bytes()).unwrap();
    assert_eq!(read_reply(&mut stream).unwrap().header("X-ResponseCode"), Some("3"));
}

#[test]
fn user_name_with_colon_never_logs_on() {
    let server = Server::start(Config::mapihttp().user("we:ird@example.test", "pw").failure_delay(DELAY)).unwrap();
    assert_eq!(ping_as(&server, "we:ird@example.test", "pw").0.status, 401);
    assert_eq!(server.logons()[0].username, "we");
}

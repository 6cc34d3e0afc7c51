//! Replays the kopano-server 11.0.2 TCP captures (logon, logoff, faults, getUser,
//! obfuscated passwords) against the stand-in and compares status, `er` and bytes.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::*;
use kopano_standin::{Config, Server, Transport};

const ALICE_XML: &str = "Secr3t&amp;&lt;pass&gt;";
const LOGON_FAILED: u64 = 2147483657;
const END_OF_SESSION: u64 = 2147483664;

const CAPTURED_HEAD_762: &str = "HTTP/1.1 200 OK\r\nServer: gSOAP/2.8\r\nX-Frame-Options: SAMEORIGIN\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: 762\r\nConnection: keep-alive";
const ENVELOPE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" xmlns:SOAP-ENC="http://schemas.xmlsoap.org/soap/encoding/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xop="http://www.w3.org/2004/08/xop/include" xmlns:xmlmime="http://www.w3.org/2004/11/xmlmime" xmlns:ns="urn:zarafa">"#;
const BODY_ENCODED: &str = r#"<SOAP-ENV:Body SOAP-ENV:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/">"#;

fn captured(content: &str) -> String {
    format!("{ENVELOPE}{BODY_ENCODED}{content}</SOAP-ENV:Body></SOAP-ENV:Envelope>\r\n")
}

fn captured_fault(string: &str) -> String {
    format!("{ENVELOPE}<SOAP-ENV:Body><SOAP-ENV:Fault><faultcode>SOAP-ENV:Client</faultcode><faultstring>{string}</faultstring></SOAP-ENV:Fault></SOAP-ENV:Body></SOAP-ENV:Envelope>\r\n")
}

const T01_CONTENT: &str = "<ns:logonResponse><er>0</er><ulSessionId>2335575244</ulSessionId><lpszVersion>0,11,0,2</lpszVersion><ulCapabilities>39592</ulCapabilities><sLicenseResponse></sLicenseResponse><sServerGuid>gXjCm157R4i7+Fe8sZdopw==</sServerGuid></ns:logonResponse>";
const FAILED_CONTENT: &str = "<ns:logonResponse><er>2147483657</er><ulSessionId>0</ulSessionId><lpszVersion>0,11,0,2</lpszVersion><ulCapabilities>39080</ulCapabilities><sLicenseResponse></sLicenseResponse><sServerGuid></sServerGuid></ns:logonResponse>";

fn server() -> Server {
    Server::start(
        Config::soap()
            .user("alice", "Secr3t&<pass>")
            .user("bob", "plain")
            .user("carol", "{1}:abc"),
    )
    .unwrap()
}

/// Replaces the random session id so a body can be compared with a capture.
fn with_session_id(body: &str, captured_id: u64) -> String {
    let start = body.find("<ulSessionId>").unwrap() + "<ulSessionId>".len();
    let end = body.find("</ulSessionId>").unwrap();
    format!("{}{captured_id}{}", &body[..start], &body[end..])
}

fn logon_tcp(server: &Server, user: &str, password_xml: &str, flags: u32) -> Reply {
    post_tcp(server.tcp_addr().unwrap(), &logon(user, password_xml, flags))
}

#[test]
fn t01_alice_correct_matches_capture() {
    let server = server();
    let reply = logon_tcp(&server, "alice", ALICE_XML, 0);
    let body = with_session_id(&reply.text(), 2335575244);
    assert_eq!(body, captured(T01_CONTENT));
    assert_eq!(
        reply.head.replace(&format!("Content-Length: {}", reply.body.len()), "Content-Length: 762"),
        CAPTURED_HEAD_762
    );
    assert_eq!(server.registered_sessions(), 1);
}

#[test]
fn t02_wrong_password_matches_capture() {
    let server = server();
    let reply = logon_tcp(&server, "alice", "wrong-password", 0);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), captured(FAILED_CONTENT));
    assert_eq!(reply.header("Content-Length"), Some("738"));
    assert_eq!(server.registered_sessions(), 0);
}

#[test]
fn t03_unknown_user_same_as_wrong_password() {
    let server = server();
    let reply = logon_tcp(&server, "nosuchuser", ALICE_XML, 0);
    assert_eq!(reply.text(), captured(FAILED_CONTENT));
}

#[test]
fn t04_to_t08_successful_logons() {
    let server = server();
    let addr = server.tcp_addr().unwrap();
    assert_eq!(logon_tcp(&server, "bob", "plain", 0).er(), 0, "t04 bob");
    for path in ["/kopano", "/zarafa", "/"] {
        let reply = exchange(&mut tcp(addr), path, &logon("alice", ALICE_XML, 0));
        assert_eq!(reply.er(), 0, "path {path}");
    }
    assert_eq!(logon_tcp(&server, "ALICE", ALICE_XML, 0).er(), 0, "t08 upper-case name");
}

#[test]
fn t07_t11_t12_failed_logons() {
    let server = server();
    assert_eq!(logon_tcp(&server, "alice", "", 0).er(), LOGON_FAILED, "t07 empty password");
    assert_eq!(logon_tcp(&server, "SYSTEM", "", 0).er(), LOGON_FAILED, "t11 SYSTEM over TCP");
    assert_eq!(logon_tcp(&server, "alice", "wrong-password", 1).er(), LOGON_FAILED, "t12 flags 1");
    assert_eq!(server.registered_sessions(), 0);
}

#[test]
fn t09_without_unicode_matches_capture() {
    let server = server();
    let body = logon_body("alice", ALICE_XML, 0, 0, "11,0,2,0");
    let reply = post_tcp(server.tcp_addr().unwrap(), &body);
    let expected = "<ns:logonResponse><er>2147483697</er><ulSessionId>0</ulSessionId><ulCapabilities>0</ulCapabilities><sLicenseResponse></sLicenseResponse><sServerGuid></sServerGuid></ns:logonResponse>";
    assert_eq!(reply.text(), captured(expected));
    assert_eq!(reply.header("Content-Length"), Some("699"));
}

#[test]
fn t10_version_5_matches_capture() {
    let server = server();
    let body = logon_body("alice", ALICE_XML, 512, 0, "5,0,0,0");
    let reply = post_tcp(server.tcp_addr().unwrap(), &body);
    assert_eq!(reply.text(), captured(&FAILED_CONTENT.replace("2147483657", "2147483681")));
    assert_eq!(reply.header("Content-Length"), Some("738"));
    assert_eq!(server.registered_sessions(), 1, "the rejected session stays registered");
}

#[test]
fn version_with_dots_is_accepted() {
    let server = server();
    let body = logon_body("alice", ALICE_XML, 512, 0, "11.0.2");
    assert_eq!(post_tcp(server.tcp_addr().unwrap(), &body).er(), 0);
}

#[test]
fn t13_large_session_id() {
    let server = server();
    let body = logon_body("bob", "plain", 528, 0, "11,0,2,0");
    let reply = post_tcp(server.tcp_addr().unwrap(), &body);
    assert_eq!(reply.er(), 0);
    assert_eq!(reply.element("ulCapabilities").as_deref(), Some("39592"));
    // A random 64-bit id is at most 2^32 with probability 2^-32.
    assert!(reply.session_id() > u64::from(u32::MAX));
    let l09 = post_tcp(server.tcp_addr().unwrap(), &common::logoff(reply.session_id()));
    assert_eq!(l09.result(), 0);
}

#[test]
fn small_session_id_without_large_capability() {
    let server = server();
    for _ in 0..5 {
        assert!(logon_tcp(&server, "bob", "plain", 0).session_id() <= u64::from(u32::MAX));
    }
}

#[test]
fn e01_minimal_envelope() {
    let server = server();
    let reply = post_tcp(server.tcp_addr().unwrap(), &minimal_logon("alice", ALICE_XML));
    assert_eq!(reply.er(), 0);
}

fn assert_fault_and_close(server: &Server, body: &str, faultstring: &str) {
    let mut stream = tcp(server.tcp_addr().unwrap());
    let reply = exchange(&mut stream, "/", body);
    assert_eq!(reply.status, 500);
    assert_eq!(reply.header("Connection"), Some("close"));
    assert_eq!(reply.text(), captured_fault(faultstring));
    assert_eq!(reply.header("Content-Length"), Some("622"));
    let mut rest = Vec::new();
    assert_eq!(stream.read_to_end(&mut rest).unwrap(), 0, "connection stays open after a fault");
}

#[test]
fn e02_wrong_namespace_faults() {
    let server = server();
    let body = minimal_logon("alice", ALICE_XML).replace("urn:zarafa", "urn:kopano");
    assert_fault_and_close(&server, &body, "Method 'ns:logon' not implemented: method name or namespace not recognized");
}

#[test]
fn e03_unknown_method_faults() {
    let server = server();
    let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ns="urn:zarafa"><SOAP-ENV:Body><ns:login><szUsername>alice</szUsername></ns:login></SOAP-ENV:Body></SOAP-ENV:Envelope>"#;
    assert_fault_and_close(&server, body, "Method 'ns:login' not implemented: method name or namespace not recognized");
}

#[test]
fn e04_truncated_xml_faults() {
    let server = server();
    let body = "<SOAP-ENV:Envelope xmlns:SOAP-ENV=\"http://schemas.xmlsoap.org/soap/envelope/\"><SOAP-ENV:Body><ns:logon>\n";
    assert_fault_and_close(&server, body, "Method 'ns:logon' not implemented: method name or namespace not recognized");
}

#[test]
fn empty_body_closes_connection() {
    let server = server();
    let mut stream = tcp(server.tcp_addr().unwrap());
    stream.write_all(&post_request("/", "")).unwrap();
    let mut rest = Vec::new();
    assert_eq!(stream.read_to_end(&mut rest).unwrap(), 0);
}

#[test]
fn body_ending_inside_logon_closes_connection() {
    let server = server();
    let body = logon("bob", "plain", 1);
    let cut = &body[..body.find("<ulFlags>").unwrap()];
    let mut stream = tcp(server.tcp_addr().unwrap());
    stream.write_all(&post_request("/", cut)).unwrap();
    let mut rest = Vec::new();
    assert_eq!(stream.read_to_end(&mut rest).unwrap(), 0);
    assert!(server.logons().is_empty());
}

#[test]
fn e05_get_gets_405() {
    let server = server();
    let mut stream = tcp(server.tcp_addr().unwrap());
    stream.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n").unwrap();
    let reply = read_reply(&mut stream).unwrap();
    assert_eq!(reply.status, 405);
    assert!(reply.head.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
    assert_eq!(reply.text(), captured_fault("HTTP GET method not implemented"));
    assert_eq!(reply.header("Content-Length"), Some("579"));
}

#[test]
fn l01_to_l03_logoff_rules() {
    let server = server();
    let addr = server.tcp_addr().unwrap();
    let session = logon_tcp(&server, "alice", ALICE_XML, 0).session_id();
    let l01 = post_tcp(addr, &common::logoff(session));
    assert_eq!(l01.result(), 0);
    assert_eq!(l01.header("Content-Length"), Some("574"));
    assert_eq!(post_tcp(addr, &common::logoff(session)).result(), END_OF_SESSION, "l02 again");
    let l03 = post_tcp(addr, &common::logoff(12345));
    assert_eq!(l03.result(), END_OF_SESSION);
    assert_eq!(l03.header("Content-Length"), Some("583"));
    assert_eq!(server.registered_sessions(), 0);
}

#[test]
fn keep_alive_serves_several_requests() {
    let server = server();
    let mut stream = tcp(server.tcp_addr().unwrap());
    let first = exchange(&mut stream, "/", &logon("alice", ALICE_XML, 1));
    let second = exchange(&mut stream, "/", &common::logoff(first.session_id()));
    assert_eq!(second.result(), 0);
    assert_eq!(server.request_count("logon"), 1);
    assert_eq!(server.request_count("logoff"), 1);
}

#[test]
fn idle_keep_alive_connection_closed() {
    let server = Server::start(Config::soap().user("bob", "plain").idle_timeout(Duration::from_millis(300))).unwrap();
    let mut stream = tcp(server.tcp_addr().unwrap());
    assert_eq!(exchange(&mut stream, "/", &logon("bob", "plain", 1)).er(), 0);
    let start = Instant::now();
    let mut rest = Vec::new();
    assert_eq!(stream.read_to_end(&mut rest).unwrap(), 0);
    assert!(start.elapsed() >= Duration::from_millis(250), "closed after {:?}", start.elapsed());
}

#[test]
fn get_user_feature_lists_match_capture() {
    let server = Server::start(
        Config::soap().user("alice", "Secr3t&<pass>").user_with_features("bob", "plain", &["imap"], &["mobile"]),
    )
    .unwrap();
    let addr = server.tcp_addr().unwrap();
    let cases = [
        ("alice", ALICE_XML, 3, "Alice Verify", "<item>mobile</item><item>outlook</item><item>webapp</item>", "<item>imap</item><item>pop3</item>"),
        ("bob", "plain", 4, "Bob Verify", "<item>imap</item><item>outlook</item><item>webapp</item>", "<item>mobile</item><item>pop3</item>"),
    ];
    for (user, password, id, full_name, enabled, disabled) in cases {
        let mut stream = tcp(addr);
        let session = exchange(&mut stream, "/", &logon(user, password, 1)).session_id();
        let reply = exchange(&mut stream, "/", &common::get_user(session));
        let text = reply.text();
        let user_id_start = text.find("<sUserId>").unwrap();
        let user_id_end = text.find("</sUserId>").unwrap();
        let without_entry_id = format!("{}{}", &text[..user_id_start], &text[user_id_end + "</sUserId>".len()..]);
        let expected = captured(&format!(
            "<ns:getUserResponse><lpsUser><ulUserId>{id}</ulUserId><lpszUsername>{user}</lpszUsername><lpszPassword/><lpszMailAddress>{user}@example.test</lpszMailAddress><lpszFullName>{full_name}</lpszFullName><lpszServername/><ulIsNonActive>0</ulIsNonActive><ulIsAdmin>0</ulIsAdmin><ulIsABHidden>0</ulIsABHidden><ulCapacity>0</ulCapacity><ulObjClass>65537</ulObjClass><lpsMVPropmap><item><ulPropId>1739788318</ulPropId><sValues SOAP-ENC:arrayType=\"xsd:string[3]\">{enabled}</sValues></item><item><ulPropId>1739853854</ulPropId><sValues SOAP-ENC:arrayType=\"xsd:string[2]\">{disabled}</sValues></item></lpsMVPropmap></lpsUser><er>0</er></ns:getUserResponse>"
        ));
        assert_eq!(without_entry_id, expected, "getUser for {user}");
        assert_eq!(exchange(&mut stream, "/", &common::logoff(session)).result(), 0);
    }
}

#[test]
fn get_user_unknown_session_fails() {
    let server = server();
    let reply = post_tcp(server.tcp_addr().unwrap(), &common::get_user(12345));
    assert_eq!(reply.er(), END_OF_SESSION);
}

#[test]
fn no_register_session_leaves_nothing() {
    let server = server();
    let reply = logon_tcp(&server, "bob", "plain", 3);
    assert_eq!(reply.er(), 0);
    assert_ne!(reply.session_id(), 0);
    assert_eq!(server.registered_sessions(), 0);
    let logoff = post_tcp(server.tcp_addr().unwrap(), &common::logoff(reply.session_id()));
    assert_eq!(logoff.result(), END_OF_SESSION);
}

#[test]
fn no_register_session_skips_version_check() {
    let server = server();
    let body = logon_body("bob", "plain", 512, 3, "5,0,0,0");
    assert_eq!(post_tcp(server.tcp_addr().unwrap(), &body).er(), 0);
}

#[test]
fn obfuscated_passwords_follow_capture() {
    let server = server();
    assert_eq!(logon_tcp(&server, "alice", "{2}:9sDG15bRg5nVxNbWmw==", 1).er(), 0, "alice {{2}}:");
    assert_eq!(logon_tcp(&server, "carol", "{1}:abc", 1).er(), LOGON_FAILED, "carol literal {{1}}:abc");
    assert_eq!(logon_tcp(&server, "carol", "{2}:3pTYn8THxg==", 1).er(), 0, "carol obfuscated");
}

#[test]
fn logon_record_holds_request_fields() {
    let server = server();
    logon_tcp(&server, "alice", "{2}:9sDG15bRg5nVxNbWmw==", 1);
    let logons = server.logons();
    assert_eq!(logons.len(), 1);
    let record = &logons[0];
    assert_eq!(record.username, "alice");
    assert_eq!(record.password, b"Secr3t&<pass>".to_vec());
    assert_eq!(record.flags, 1);
    assert_eq!(record.capabilities, 512);
    assert_eq!(record.version.as_deref(), Some("11,0,2,0"));
    assert_eq!(record.client_app.as_deref(), Some("pam-verify"));
    assert_eq!(record.client_app_version.as_deref(), Some("0.1"));
    assert_eq!(record.client_app_misc.as_deref(), Some("curl"));
    assert!(record.impersonate_user_present);
    assert_eq!(record.transport, Transport::Tcp);
    assert_eq!(record.peer_addr.map(|a| a.ip().to_string()).as_deref(), Some("127.0.0.1"));
    assert_eq!(record.er, 0);
}

#[test]
fn raw_ampersand_held_without_response() {
    let server = Server::start(Config::soap().user("alice", "x").malformed_hold(Duration::from_millis(300))).unwrap();
    let body = logon("alice", "Secr3t&<pass>", 1);
    let mut stream = tcp(server.tcp_addr().unwrap());
    let start = Instant::now();
    stream.write_all(&post_request("/", &body)).unwrap();
    let mut rest = Vec::new();
    assert_eq!(stream.read_to_end(&mut rest).unwrap(), 0);
    assert!(start.elapsed() >= Duration::from_millis(250), "closed after {:?}", start.elapsed());
    assert!(server.logons().is_empty());
}

#[test]
fn ipv6_loopback_listener() {
    let Ok(server) = Server::start(Config::soap().user("bob", "plain").tcp(Some("[::1]:0".parse().unwrap()))) else {
        eprintln!("skipped: ::1 is not available on this machine");
        return;
    };
    assert!(server.url().starts_with("http://[::1]:"));
    assert_eq!(logon_tcp(&server, "bob", "plain", 1).er(), 0);
}

#[test]
fn chunked_request_body_accepted() {
    let server = server();
    let body = logon("bob", "plain", 1);
    let (first, second) = body.split_at(100);
    let request = format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n\
         {:x}\r\n{first}\r\n{:x}\r\n{second}\r\n0\r\n\r\n",
        first.len(),
        second.len()
    );
    let mut stream = tcp(server.tcp_addr().unwrap());
    stream.write_all(request.as_bytes()).unwrap();
    assert_eq!(read_reply(&mut stream).unwrap().er(), 0);
}

#[test]
fn expect_continue_gets_100() {
    let server = server();
    let body = logon("bob", "plain", 1);
    let mut stream = tcp(server.tcp_addr().unwrap());
    let head = format!("POST / HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n", body.len());
    stream.write_all(head.as_bytes()).unwrap();
    let interim = read_reply_head_only(&mut stream);
    assert_eq!(interim, "HTTP/1.1 100 Continue");
    stream.write_all(body.as_bytes()).unwrap();
    assert_eq!(read_reply(&mut stream).unwrap().er(), 0);
}

/// Reads one status line and the empty line after it.
fn read_reply_head_only(stream: &mut std::net::TcpStream) -> String {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "connection closed");
        raw.push(byte[0]);
    }
    String::from_utf8_lossy(&raw).trim_end().to_string()
}

fn impersonating(user: &str, password_xml: &str, flags: u32, impersonated: &str) -> String {
    logon(user, password_xml, flags).replace(
        "<szImpersonateUser></szImpersonateUser>",
        &format!("<szImpersonateUser>{impersonated}</szImpersonateUser>"),
    )
}

#[test]
fn impersonation_without_rights_fails() {
    let server = server();
    let reply = post_tcp(server.tcp_addr().unwrap(), &impersonating("bob", "plain", 1, "alice"));
    assert_eq!(reply.er(), LOGON_FAILED);
}

#[test]
fn impersonation_unchecked_without_registration() {
    let server = server();
    let addr = server.tcp_addr().unwrap();
    assert_eq!(post_tcp(addr, &impersonating("bob", "plain", 3, "alice")).er(), 0, "existing user");
    assert_eq!(post_tcp(addr, &impersonating("bob", "plain", 3, "nosuchuser")).er(), LOGON_FAILED, "unknown user");
}

#[test]
fn enhanced_ics_switches_to_chunked() {
    let server = server();
    let mut stream = tcp(server.tcp_addr().unwrap());
    let logon = exchange(&mut stream, "/", &logon_body("bob", "plain", 512 | 0x100, 1, "11,0,2,0"));
    assert_eq!(logon.header("Transfer-Encoding"), Some("chunked"));
    assert_eq!(logon.header("Content-Length"), None);
    assert_eq!(logon.element("ulCapabilities").as_deref(), Some("39848"));
    let logoff = exchange(&mut stream, "/", &common::logoff(logon.session_id()));
    assert_eq!(logoff.header("Transfer-Encoding"), Some("chunked"));
    assert_eq!(logoff.result(), 0);
}

#[test]
fn enhanced_ics_failure_not_chunked() {
    let server = server();
    let reply = post_tcp(server.tcp_addr().unwrap(), &logon_body("bob", "wrong", 512 | 0x100, 1, "11,0,2,0"));
    assert_eq!(reply.header("Content-Length"), Some("738"));
}

//! One test per fault mode: each checks that the stand-in breaks the connection or the
//! response the way the mode's documentation describes.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use kopano_standin::{Config, Fault, Server};

fn server() -> Server {
    Server::start(Config::soap().user("bob", "plain")).unwrap()
}

fn send_logon(server: &Server) -> TcpStream {
    let mut stream = tcp(server.tcp_addr().unwrap());
    stream.write_all(&post_request("/", &logon("bob", "plain", 1))).unwrap();
    stream
}

fn logon_with(fault: Fault) -> Reply {
    let server = server();
    server.set_fault(fault);
    read_reply(&mut send_logon(&server)).expect("reading the response failed")
}

/// Reads until EOF or error and returns what arrived plus how the read ended.
fn read_all(stream: &mut TcpStream) -> (Vec<u8>, Option<ErrorKind>) {
    let mut bytes = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return (bytes, None),
            Ok(n) => bytes.extend_from_slice(&buffer[..n]),
            Err(error) => return (bytes, Some(error.kind())),
        }
    }
}

#[test]
fn none_serves_correctly() {
    assert_eq!(logon_with(Fault::None).er(), 0);
}

#[test]
fn refuse_closes_and_reopens_listeners() {
    let path = socket_path("refuse");
    let server = Server::start(Config::soap().user("bob", "plain").unix(&path)).unwrap();
    let addr = server.tcp_addr().unwrap();
    server.set_fault(Fault::Refuse);
    let tcp_error = TcpStream::connect(addr).unwrap_err();
    assert_eq!(tcp_error.kind(), ErrorKind::ConnectionRefused);
    let unix_error = std::os::unix::net::UnixStream::connect(&path).unwrap_err();
    assert_eq!(unix_error.kind(), ErrorKind::ConnectionRefused);
    server.set_fault(Fault::None);
    assert_eq!(post_tcp(addr, &logon("bob", "plain", 1)).er(), 0);
}

#[test]
fn stall_never_answers() {
    let server = server();
    server.set_fault(Fault::Stall);
    let mut stream = send_logon(&server);
    stream.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut byte = [0u8; 1];
    let error = stream.read(&mut byte).unwrap_err();
    assert!(matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut), "{error:?}");
}

#[test]
fn trickle_sends_one_byte_per_second() {
    let server = server();
    server.set_fault(Fault::Trickle);
    let mut stream = send_logon(&server);
    stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let start = Instant::now();
    let mut received = Vec::new();
    let mut buffer = [0u8; 64];
    while start.elapsed() < Duration::from_millis(1500) {
        if let Ok(n) = stream.read(&mut buffer) {
            received.extend_from_slice(&buffer[..n]);
        }
    }
    // One byte at once and one after a second; a slow machine may not see the second.
    assert!(received.starts_with(b"H"), "received {received:?}");
    assert!(received.len() <= 2, "received {received:?}");
}

#[test]
fn garbage_is_not_xml() {
    let reply = logon_with(Fault::Garbage);
    assert_eq!(reply.status, 200);
    assert!(!reply.body.starts_with(b"<?xml"));
    assert!(reply.element("er").is_none());
}

#[test]
fn huge_body_pads_response() {
    let reply = logon_with(Fault::HugeBody(2));
    assert_eq!(reply.status, 200);
    assert!(reply.body.len() > 2 << 20);
    assert_eq!(reply.er(), 0);
}

#[test]
fn redirect_sends_location() {
    let reply = logon_with(Fault::Redirect(307, "http://127.0.0.1:9/other".to_string()));
    assert_eq!(reply.status, 307);
    assert_eq!(reply.header("Location"), Some("http://127.0.0.1:9/other"));
}

#[test]
fn status500_sends_soap_fault() {
    let server = server();
    server.set_fault(Fault::Status500);
    let mut stream = send_logon(&server);
    let reply = read_reply(&mut stream).unwrap();
    assert_eq!(reply.status, 500);
    assert_eq!(reply.element("faultcode").as_deref(), Some("SOAP-ENV:Server"));
    assert_eq!(read_all(&mut stream), (Vec::new(), None));
}

#[test]
fn status503_sends_html() {
    let reply = logon_with(Fault::Status503Html);
    assert_eq!(reply.status, 503);
    assert!(reply.header("Content-Type").unwrap().starts_with("text/html"));
}

#[test]
fn empty_ok_has_no_body() {
    let reply = logon_with(Fault::EmptyOk);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("Content-Length"), Some("0"));
}

#[test]
fn truncated_body_shorter_than_length() {
    let server = server();
    server.set_fault(Fault::Truncated);
    let (bytes, _) = read_all(&mut send_logon(&server));
    let text = String::from_utf8_lossy(&bytes);
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let length: usize = head.lines().find_map(|l| l.strip_prefix("Content-Length: ")).unwrap().parse().unwrap();
    assert_eq!(body.len(), length / 2);
}

#[test]
fn reset_after_request_resets() {
    let server = server();
    server.set_fault(Fault::ResetAfterRequest);
    let (bytes, end) = read_all(&mut send_logon(&server));
    assert!(bytes.is_empty());
    assert_eq!(end, Some(ErrorKind::ConnectionReset));
}

#[test]
fn close_after_headers_sends_no_body() {
    let server = server();
    server.set_fault(Fault::CloseAfterHeaders);
    let (bytes, _) = read_all(&mut send_logon(&server));
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(text.ends_with("\r\n\r\n"));
}

#[test]
fn two_er_sends_success_first() {
    let server = server();
    server.set_fault(Fault::TwoEr);
    let mut stream = tcp(server.tcp_addr().unwrap());
    let reply = exchange(&mut stream, "/", &logon("bob", "wrong", 1));
    assert!(reply.text().contains("<er>0</er><er>2147483657</er>"));
}

#[test]
fn no_er_drops_element() {
    let reply = logon_with(Fault::NoEr);
    assert!(reply.element("er").is_none());
    assert!(reply.element("ulSessionId").is_some());
}

#[test]
fn er_in_wrong_element_nests_it() {
    let reply = logon_with(Fault::ErInWrongElement);
    assert!(reply.text().contains("<ns:logonResponse><lpsResult><er>0</er></lpsResult><ulSessionId>"));
}

#[test]
fn huge_number_overflows_u64() {
    let reply = logon_with(Fault::HugeNumber);
    assert_eq!(reply.element("er").as_deref(), Some("99999999999999999999"));
}

#[test]
fn doctype_declares_entity() {
    let reply = logon_with(Fault::Doctype);
    let text = reply.text();
    assert!(text.contains("<!DOCTYPE SOAP-ENV:Envelope [<!ENTITY er \"0\">]>"));
    assert!(text.contains("<er>&er;</er>"));
}

#[test]
fn chunked_endless_never_ends() {
    let server = server();
    server.set_fault(Fault::ChunkedEndless);
    let mut stream = send_logon(&server);
    stream.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let start = Instant::now();
    let mut received = Vec::new();
    let mut buffer = [0u8; 64 * 1024];
    while start.elapsed() < Duration::from_millis(300) {
        if let Ok(n) = stream.read(&mut buffer) {
            received.extend_from_slice(&buffer[..n]);
        }
    }
    let text = String::from_utf8_lossy(&received);
    assert!(text.contains("Transfer-Encoding: chunked\r\n"));
    assert!(received.len() > 64 * 1024, "received {} bytes", received.len());
    assert!(!text.contains("\r\n0\r\n\r\n"));
}

#[test]
fn gzip_body_decodes_to_response() {
    let reply = logon_with(Fault::GzipBody);
    assert_eq!(reply.header("Content-Encoding"), Some("gzip"));
    assert_eq!(&reply.body[..2], &[0x1F, 0x8B]);
    let mut gzip = std::process::Command::new("gzip")
        .arg("-dc")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("starting gzip failed");
    gzip.stdin.take().unwrap().write_all(&reply.body).unwrap();
    let output = gzip.wait_with_output().unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("<er>0</er>"));
}

#[test]
fn delay_ms_answers_late() {
    let server = server();
    server.set_fault(Fault::DelayMs(300));
    let start = Instant::now();
    let reply = read_reply(&mut send_logon(&server)).unwrap();
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert_eq!(reply.er(), 0);
}

#[test]
fn tls_handshake_stall_never_finishes() {
    let server = Server::start(Config::soap().user("bob", "plain").tls_localhost()).unwrap();
    server.set_fault(Fault::TlsHandshakeStall);
    let mut stream = tcp(server.tcp_addr().unwrap());
    // A TLS 1.2 ClientHello record header with a short body is enough to start.
    stream.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00]).unwrap();
    stream.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut byte = [0u8; 1];
    let error = stream.read(&mut byte).unwrap_err();
    assert!(matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut), "{error:?}");
}

#[test]
fn drop_ends_stalled_connections() {
    let server = server();
    server.set_fault(Fault::Stall);
    let mut stream = send_logon(&server);
    std::thread::sleep(Duration::from_millis(100));
    drop(server);
    let (bytes, _) = read_all(&mut stream);
    assert!(bytes.is_empty());
}

#[test]
fn stall_applies_to_unix_socket() {
    let path = socket_path("stall");
    let server = Server::start(Config::soap().tcp(None).user("bob", "plain").unix(&path)).unwrap();
    server.set_fault(Fault::Stall);
    let mut stream = unix(&path);
    stream.write_all(&post_request("/", &logon("bob", "plain", 1))).unwrap();
    stream.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut byte = [0u8; 1];
    let error = stream.read(&mut byte).unwrap_err();
    assert!(matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut), "{error:?}");
    assert_eq!(server.open_connections(), 1);
}

#[test]
fn faults_apply_in_gromox_mode() {
    let server = Server::start(Config::mapihttp().user("alice@example.test", "pw")).unwrap();
    server.set_fault(Fault::Status503Html);
    let mut stream = tcp(server.tcp_addr().unwrap());
    let request = "POST /mapi/emsmdb/?MailboxId=alice@example.test HTTP/1.1\r\nHost: x\r\n\
                   Authorization: Basic YWxpY2VAZXhhbXBsZS50ZXN0OnB3\r\nX-RequestType: PING\r\n\
                   X-RequestId: {1}:1\r\nX-ClientInfo: {2}:1\r\nContent-Length: 0\r\n\r\n";
    stream.write_all(request.as_bytes()).unwrap();
    assert_eq!(read_reply(&mut stream).unwrap().status, 503);
}

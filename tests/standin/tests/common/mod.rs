//! Raw-socket client for the stand-in's own tests: writes exact request bytes and reads
//! one HTTP response with Content-Length or chunked framing.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

/// Logon envelope in the layout curl sent for the kopano-server 11.0.2 captures.
/// `password_xml` must already be XML-escaped.
pub fn logon_body(username: &str, password_xml: &str, capabilities: u32, flags: u32, version: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" xmlns:SOAP-ENC="http://schemas.xmlsoap.org/soap/encoding/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:ns="urn:zarafa">
 <SOAP-ENV:Body SOAP-ENV:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/">
  <ns:logon>
   <szUsername>{username}</szUsername>
   <szPassword>{password_xml}</szPassword>
   <szImpersonateUser></szImpersonateUser>
   <szVersion>{version}</szVersion>
   <ulCapabilities>{capabilities}</ulCapabilities>
   <ulFlags>{flags}</ulFlags>
   <sLicenseReq></sLicenseReq>
   <ullSessionGroup>0</ullSessionGroup>
   <szClientApp>pam-verify</szClientApp>
   <szClientAppVersion>0.1</szClientAppVersion>
   <szClientAppMisc>curl</szClientAppMisc>
  </ns:logon>
 </SOAP-ENV:Body>
</SOAP-ENV:Envelope>
"#
    )
}

/// The usual logon: capabilities 512 (UNICODE), flags as given, version 11,0,2,0.
pub fn logon(username: &str, password_xml: &str, flags: u32) -> String {
    logon_body(username, password_xml, 512, flags, "11,0,2,0")
}

/// Minimal envelope with szUsername, szPassword and ulCapabilities only.
pub fn minimal_logon(username: &str, password_xml: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ns="urn:zarafa"><SOAP-ENV:Body><ns:logon><szUsername>{username}</szUsername><szPassword>{password_xml}</szPassword><ulCapabilities>512</ulCapabilities></ns:logon></SOAP-ENV:Body></SOAP-ENV:Envelope>"#
    )
}

pub fn logoff(session_id: u64) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" xmlns:SOAP-ENC="http://schemas.xmlsoap.org/soap/encoding/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:ns="urn:zarafa">
 <SOAP-ENV:Body SOAP-ENV:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/">
  <ns:logoff>
   <ulSessionId>{session_id}</ulSessionId>
  </ns:logoff>
 </SOAP-ENV:Body>
</SOAP-ENV:Envelope>
"#
    )
}

pub fn get_user(session_id: u64) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ns="urn:zarafa"><SOAP-ENV:Body><ns:getUser><ulSessionId>{session_id}</ulSessionId><ulUserId>0</ulUserId><sUserId></sUserId></ns:getUser></SOAP-ENV:Body></SOAP-ENV:Envelope>"#
    )
}

/// One HTTP response as read from the wire.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// Status line and headers, exactly as received, without the empty line.
    pub head: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Value of the first `<name>` element in the body.
    pub fn element(&self, name: &str) -> Option<String> {
        let text = self.text();
        let open = format!("<{name}>");
        let start = text.find(&open)? + open.len();
        let end = start + text[start..].find(&format!("</{name}>"))?;
        Some(text[start..end].to_string())
    }

    pub fn er(&self) -> u64 {
        self.element("er").expect("response has no <er>").parse().expect("<er> is not a number")
    }

    pub fn result(&self) -> u64 {
        self.element("result").expect("response has no <result>").parse().expect("<result> is not a number")
    }

    pub fn session_id(&self) -> u64 {
        self.element("ulSessionId").expect("response has no <ulSessionId>").parse().expect("invalid ulSessionId")
    }
}

/// Reads one response; the body is read by Content-Length, chunked framing, or to EOF.
pub fn read_reply(stream: &mut impl Read) -> std::io::Result<Reply> {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed in the head"));
        }
        raw.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&raw[..raw.len() - 4]).into_owned();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers: Vec<(String, String)> = head
        .lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let find = |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    let body = if let Some(length) = find("Content-Length") {
        let mut body = vec![0u8; length.parse().expect("invalid Content-Length")];
        stream.read_exact(&mut body)?;
        body
    } else if find("Transfer-Encoding").is_some_and(|v| v.contains("chunked")) {
        read_chunked(stream)?
    } else {
        let mut body = Vec::new();
        stream.read_to_end(&mut body)?;
        body
    };
    Ok(Reply { status, head, headers, body })
}

fn read_line(stream: &mut impl Read) -> std::io::Result<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed in a chunk"));
        }
        line.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&line).trim().to_string())
}

fn read_chunked(stream: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let size = usize::from_str_radix(&read_line(stream)?, 16).expect("invalid chunk size");
        if size == 0 {
            read_line(stream)?;
            return Ok(body);
        }
        let mut chunk = vec![0u8; size];
        stream.read_exact(&mut chunk)?;
        body.extend_from_slice(&chunk);
        read_line(stream)?;
    }
}

/// Builds a POST request as curl sent it to kopano-server.
pub fn post_request(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\
         Content-Type: text/xml; charset=utf-8\r\nSOAPAction: \"\"\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

pub fn tcp(addr: std::net::SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connecting to the stand-in failed");
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stream
}

pub fn unix(path: &std::path::Path) -> UnixStream {
    let stream = UnixStream::connect(path).expect("connecting to the stand-in socket failed");
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stream
}

/// Sends one POST and reads the response on an existing connection.
pub fn exchange(stream: &mut (impl Read + Write), path: &str, body: &str) -> Reply {
    stream.write_all(&post_request(path, body)).unwrap();
    read_reply(stream).expect("reading the response failed")
}

/// POSTs on a new TCP connection.
pub fn post_tcp(addr: std::net::SocketAddr, body: &str) -> Reply {
    exchange(&mut tcp(addr), "/", body)
}

/// POSTs on a new Unix-socket connection.
pub fn post_unix(path: &std::path::Path, body: &str) -> Reply {
    exchange(&mut unix(path), "/", body)
}

/// Returns a socket path in the temporary directory, unique per test process and name.
/// The server removes the socket when it is dropped, so nothing is left behind.
pub fn socket_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("kopano-standin-{}-{name}.sock", std::process::id()))
}

/// Returns whether this process runs as root (the Unix-socket bypass tests need uid 0).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

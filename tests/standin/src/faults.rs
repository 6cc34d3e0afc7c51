//! Fault modes: ways to break the transport or the response on purpose, switchable at
//! run time with `Server::set_fault`.
//!
//! A request that arrives in full is processed as usual: it is recorded and counted, and a
//! successful logon registers its session. The fault changes only the response.

use std::io::{self, Read, Write};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::http::{Connection, Response};
use crate::net::Stream;
use crate::Shared;

/// A fault mode. Each one applies to every request until it is switched again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Serve correctly.
    None,
    /// Close the listeners: new connections get ECONNREFUSED.
    Refuse,
    /// Read the request, never respond, keep the connection open.
    Stall,
    /// Send the correct response one byte per second.
    Trickle,
    /// HTTP 200, `text/xml`, with a body that is not XML.
    Garbage,
    /// HTTP 200 with the correct response padded with whitespace to this many MiB.
    HugeBody(usize),
    /// This redirect status (301, 302, 307, 308) with `Location` set to this URL.
    Redirect(u16, String),
    /// HTTP 500 with a SOAP Fault (`SOAP-ENV:Server`), then close.
    Status500,
    /// HTTP 503 with an HTML body, as a reverse proxy sends it.
    Status503Html,
    /// HTTP 200 with an empty body.
    EmptyOk,
    /// Content-Length of the full body, then half of the body, then close.
    Truncated,
    /// Read the request, then close with a TCP RST.
    ResetAfterRequest,
    /// Send the status line and headers, then close.
    CloseAfterHeaders,
    /// `er` (or `result`) twice: first 0, then the real value. SOAP bodies only, like the
    /// next four modes; other bodies go out unchanged.
    TwoEr,
    /// The response without its `er` (or `result`) element.
    NoEr,
    /// No `er` directly in the response element; `<er>0</er>` nested one level deeper.
    ErInWrongElement,
    /// `er` (or `result`) = 99999999999999999999, which overflows 64 bits.
    HugeNumber,
    /// A DOCTYPE that declares an entity `er` = "0", and `&er;` as the `er` value.
    Doctype,
    /// `Transfer-Encoding: chunked` with chunks of whitespace that never end.
    ChunkedEndless,
    /// The correct response gzip-compressed with `Content-Encoding: gzip`, unasked.
    GzipBody,
    /// Respond correctly after this many milliseconds.
    DelayMs(u64),
    /// On the TLS listener: accept TCP, never complete the handshake.
    TlsHandshakeStall,
}

impl FromStr for Fault {
    type Err = String;

    /// Parses `NAME` or `NAME:ARG`, with the name in any case and `-`/`_` ignored:
    /// `stall`, `huge-body:8`, `redirect:302:http://127.0.0.1:9/`, `delay-ms:1500`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (name, argument) = match text.split_once(':') {
            Some((name, argument)) => (name, Some(argument)),
            None => (text, None),
        };
        let key: String = name.chars().filter(|c| *c != '-' && *c != '_').collect::<String>().to_lowercase();
        let number = |what: &str| -> Result<u64, String> {
            argument
                .ok_or_else(|| format!("fault {name} needs {what}, e.g. {name}:10"))?
                .parse::<u64>()
                .map_err(|_| format!("invalid {what} in fault {text:?}: expected a whole number"))
        };
        Ok(match key.as_str() {
            "none" => Fault::None,
            "refuse" => Fault::Refuse,
            "stall" => Fault::Stall,
            "trickle" => Fault::Trickle,
            "garbage" => Fault::Garbage,
            "hugebody" => Fault::HugeBody(number("a size in MiB")? as usize),
            "redirect" => {
                let (status, location) = argument
                    .and_then(|a| a.split_once(':'))
                    .ok_or_else(|| format!("fault {name} needs STATUS:URL, e.g. redirect:302:http://127.0.0.1:8080/"))?;
                let status = status
                    .parse::<u16>()
                    .map_err(|_| format!("invalid redirect status {status:?}: expected 301, 302, 307 or 308"))?;
                Fault::Redirect(status, location.to_string())
            }
            "status500" => Fault::Status500,
            "status503html" => Fault::Status503Html,
            "emptyok" => Fault::EmptyOk,
            "truncated" => Fault::Truncated,
            "resetafterrequest" => Fault::ResetAfterRequest,
            "closeafterheaders" => Fault::CloseAfterHeaders,
            "twoer" => Fault::TwoEr,
            "noer" => Fault::NoEr,
            "erinwrongelement" => Fault::ErInWrongElement,
            "hugenumber" => Fault::HugeNumber,
            "doctype" => Fault::Doctype,
            "chunkedendless" => Fault::ChunkedEndless,
            "gzipbody" => Fault::GzipBody,
            "delayms" => Fault::DelayMs(number("a delay in milliseconds")?),
            "tlshandshakestall" => Fault::TlsHandshakeStall,
            _ => return Err(format!("unknown fault {name:?}; see the Fault enum for the names")),
        })
    }
}

/// Sends `response` as changed by `fault`. Returns false if the connection must close.
pub(crate) fn send(shared: &Arc<Shared>, connection: &mut Connection, mut response: Response, fault: &Fault) -> bool {
    let result = match fault {
        Fault::None | Fault::Refuse | Fault::TlsHandshakeStall => connection.write_all(&response.to_bytes()),
        Fault::Stall => {
            if let Some(stream) = connection.take_stream() {
                hold_until_closed(shared, stream);
            }
            return false;
        }
        Fault::Trickle => trickle(shared, connection, &response.to_bytes()),
        Fault::DelayMs(milliseconds) => {
            if !shared.sleep(Duration::from_millis(*milliseconds)) {
                return false;
            }
            connection.write_all(&response.to_bytes())
        }
        Fault::Garbage => {
            response.set_body(b"\x00\x01 this is {not} XML <<< \xff\xfe".to_vec());
            connection.write_all(&response.to_bytes())
        }
        Fault::HugeBody(mebibytes) => huge_body(shared, connection, &response, *mebibytes),
        Fault::Redirect(status, location) => {
            let redirect = simple_response(*status, "text/html", Vec::new(), &[("Location", location)]);
            connection.write_all(&redirect.to_bytes())
        }
        Fault::Status500 => {
            let body = crate::soap_xml::fault_envelope("SOAP-ENV:Server", "Internal server error");
            let mut fault_response = crate::soap::soap_response(500, body, true);
            fault_response.close = true;
            let _ = connection.write_all(&fault_response.to_bytes());
            return false;
        }
        Fault::Status503Html => {
            let body = b"<html><head><title>503 Service Unavailable</title></head><body>\
                <h1>Service Unavailable</h1><p>The server is temporarily unable to service your request.</p>\
                </body></html>\n"
                .to_vec();
            let unavailable = simple_response(503, "text/html; charset=iso-8859-1", body, &[]);
            let _ = connection.write_all(&unavailable.to_bytes());
            return false;
        }
        Fault::EmptyOk => {
            response.set_body(Vec::new());
            connection.write_all(&response.to_bytes())
        }
        Fault::Truncated => {
            let bytes = response.head_bytes();
            let half = &response.body[..response.body.len() / 2];
            let _ = connection.write_all(&[bytes.as_slice(), half].concat());
            return false;
        }
        Fault::ResetAfterRequest => {
            if let Some(stream) = connection.take_stream() {
                stream.reset();
            }
            return false;
        }
        Fault::CloseAfterHeaders => {
            let _ = connection.write_all(&response.head_bytes());
            return false;
        }
        Fault::TwoEr | Fault::NoEr | Fault::ErInWrongElement | Fault::HugeNumber | Fault::Doctype => {
            let body = String::from_utf8_lossy(&response.body).into_owned();
            response.set_body(rewrite_result(&body, fault).into_bytes());
            connection.write_all(&response.to_bytes())
        }
        Fault::ChunkedEndless => chunked_endless(shared, connection, response),
        Fault::GzipBody => {
            let compressed = gzip_stored(&response.body);
            response.set_header("Content-Encoding", "gzip".to_string());
            response.set_body(compressed);
            connection.write_all(&response.to_bytes())
        }
    };
    result.is_ok()
}

/// Builds a response with only Content-Type, Content-Length and `Connection: close` headers.
fn simple_response(status: u16, content_type: &str, body: Vec<u8>, extra: &[(&str, &str)]) -> Response {
    let mut headers: Vec<(String, String)> =
        extra.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect();
    headers.push(("Content-Type".to_string(), content_type.to_string()));
    headers.push(("Content-Length".to_string(), body.len().to_string()));
    headers.push(("Connection".to_string(), "close".to_string()));
    Response { status, reason: crate::http::reason_phrase(status), headers, body, close: true }
}

/// Keeps a connection open without responding until the peer closes it or the server
/// stops. Whatever the peer sends is read and dropped.
pub(crate) fn hold_until_closed(shared: &Arc<Shared>, mut stream: Stream) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let mut sink = [0u8; 4096];
    while !shared.stopped() {
        match stream.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => {}
            Err(error) if matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

fn trickle(shared: &Arc<Shared>, connection: &mut Connection, bytes: &[u8]) -> io::Result<()> {
    for byte in bytes {
        connection.write_all(std::slice::from_ref(byte))?;
        if !shared.sleep(Duration::from_secs(1)) {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "server stopped"));
        }
    }
    Ok(())
}

/// Sends the response with `mebibytes` MiB of spaces inserted after the Body start tag
/// (or appended, for a body that is not SOAP), streamed in pieces.
fn huge_body(shared: &Arc<Shared>, connection: &mut Connection, response: &Response, mebibytes: usize) -> io::Result<()> {
    let padding = mebibytes << 20;
    let body = &response.body;
    let split = find_subslice(body, b"<SOAP-ENV:Body")
        .and_then(|start| body[start..].iter().position(|&b| b == b'>').map(|end| start + end + 1))
        .unwrap_or(body.len());
    let mut head = Response {
        status: response.status,
        reason: response.reason,
        headers: response.headers.clone(),
        body: Vec::new(),
        close: response.close,
    };
    head.set_header("Content-Length", (body.len() + padding).to_string());
    let stream = connection.stream()?;
    stream.write_all(&head.head_bytes())?;
    stream.write_all(&body[..split])?;
    let piece = vec![b' '; 64 * 1024];
    let mut left = padding;
    while left > 0 {
        if shared.stopped() {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "server stopped"));
        }
        let n = left.min(piece.len());
        stream.write_all(&piece[..n])?;
        left -= n;
    }
    stream.write_all(&body[split..])?;
    stream.flush()
}

fn chunked_endless(shared: &Arc<Shared>, connection: &mut Connection, mut response: Response) -> io::Result<()> {
    response.remove_header("Content-Length");
    response.set_header("Transfer-Encoding", "chunked".to_string());
    let body = std::mem::take(&mut response.body);
    let prefix_end = find_subslice(&body, b"<SOAP-ENV:Body")
        .and_then(|start| body[start..].iter().position(|&b| b == b'>').map(|end| start + end + 1))
        .unwrap_or(0);
    let stream = connection.stream()?;
    stream.write_all(&response.head_bytes())?;
    if prefix_end > 0 {
        stream.write_all(format!("{:x}\r\n", prefix_end).as_bytes())?;
        stream.write_all(&body[..prefix_end])?;
        stream.write_all(b"\r\n")?;
    }
    let chunk = [b' '; 16 * 1024];
    loop {
        stream.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())?;
        stream.write_all(&chunk)?;
        stream.write_all(b"\r\n")?;
        stream.flush()?;
        if !shared.sleep(Duration::from_millis(10)) {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "server stopped"));
        }
    }
}

fn find_subslice(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

/// Applies the XML faults to the first `<er>` or `<result>` element of a SOAP body. A
/// body without one (MAPI over HTTP, faults) is returned unchanged.
fn rewrite_result(body: &str, fault: &Fault) -> String {
    let Some((tag, start, value_start, value_end, end)) = ["er", "result"].iter().find_map(|tag| {
        let open = format!("<{tag}>");
        let close = format!("</{tag}>");
        let start = body.find(&open)?;
        let value_start = start + open.len();
        let value_end = value_start + body[value_start..].find(&close)?;
        Some((*tag, start, value_start, value_end, value_end + close.len()))
    }) else {
        return body.to_string();
    };
    match fault {
        Fault::TwoEr => format!("{}<{tag}>0</{tag}>{}", &body[..start], &body[start..]),
        Fault::NoEr => format!("{}{}", &body[..start], &body[end..]),
        Fault::ErInWrongElement => {
            // Remove the real element and nest a success value in the first child of
            // the response element.
            let without = format!("{}{}", &body[..start], &body[end..]);
            match without[..start].rfind('>') {
                Some(response_start) => format!(
                    "{}<lpsResult><{tag}>0</{tag}></lpsResult>{}",
                    &without[..=response_start],
                    &without[response_start + 1..]
                ),
                None => without,
            }
        }
        Fault::HugeNumber => {
            format!("{}99999999999999999999{}", &body[..value_start], &body[value_end..])
        }
        Fault::Doctype => {
            let declaration_end = body.find("?>").map(|i| i + 2).unwrap_or(0);
            format!(
                "{}\n<!DOCTYPE SOAP-ENV:Envelope [<!ENTITY {tag} \"0\">]>{}&{tag};{}",
                &body[..declaration_end],
                &body[declaration_end..value_start],
                &body[value_end..]
            )
        }
        _ => body.to_string(),
    }
}

/// Wraps data in a gzip member with stored (uncompressed) deflate blocks; valid gzip that
/// any decoder reads, without a compression library.
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 0xFF];
    let mut blocks = data.chunks(0xFFFF).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xFF, 0xFF]);
    }
    while let Some(block) = blocks.next() {
        let last = u8::from(blocks.peek().is_none());
        let length = block.len() as u16;
        out.push(last);
        out.extend_from_slice(&length.to_le_bytes());
        out.extend_from_slice(&(!length).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = "<?xml version=\"1.0\"?>\n<E><B><ns:logonResponse><er>2147483657</er><ulSessionId>0</ulSessionId></ns:logonResponse></B></E>";

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn two_er_puts_success_first() {
        assert!(rewrite_result(BODY, &Fault::TwoEr).contains("<er>0</er><er>2147483657</er>"));
    }

    #[test]
    fn no_er_removes_element() {
        assert!(!rewrite_result(BODY, &Fault::NoEr).contains("<er>"));
    }

    #[test]
    fn er_in_wrong_element_nests_success() {
        let body = rewrite_result(BODY, &Fault::ErInWrongElement);
        assert!(body.contains("<ns:logonResponse><lpsResult><er>0</er></lpsResult><ulSessionId>"));
    }

    #[test]
    fn doctype_declares_entity() {
        let body = rewrite_result(BODY, &Fault::Doctype);
        assert!(body.contains("<!DOCTYPE SOAP-ENV:Envelope [<!ENTITY er \"0\">]>"));
        assert!(body.contains("<er>&er;</er>"));
    }

    #[test]
    fn fault_names_parse() {
        assert_eq!("huge-body:8".parse::<Fault>(), Ok(Fault::HugeBody(8)));
        assert_eq!("DelayMs:20".parse::<Fault>(), Ok(Fault::DelayMs(20)));
        assert_eq!(
            "redirect:307:http://127.0.0.1:1/x".parse::<Fault>(),
            Ok(Fault::Redirect(307, "http://127.0.0.1:1/x".to_string()))
        );
    }
}

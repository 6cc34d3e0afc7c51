//! Gromox mode: HTTP Basic authentication in front of MAPI over HTTP (EMSMDB, NSPI), EWS,
//! Autodiscover and RPC/HTTP, with Gromox 3.10's status codes, headers, failure delay and
//! per-user ban.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use base64::Engine as _;

use crate::http::{http_date, Connection, ReadOutcome, Request, Response};
use crate::net::Peer;
use crate::{faults, lock, LogonRecord, Shared};

/// Gromox copies the Basic password into `char password[128]`, so only the first 127
/// bytes are compared.
const MAX_PASSWORD_BYTES: usize = 127;
const SERVER_APPLICATION: &str = "Exchange/15.00.0847.4040";

/// MAPI over HTTP X-ResponseCode values as Gromox 3.10 sends them.
const RESPONSE_SUCCESS: u32 = 0;
const RESPONSE_MISSING_HEADER: u32 = 3;
const RESPONSE_INVALID_REQUEST_TYPE: u32 = 5;
const RESPONSE_MISSING_COOKIE: u32 = 6;

enum Credentials {
    Absent,
    /// Not Basic, not base64, or no colon: no login is attempted.
    Malformed,
    Basic { username: Vec<u8>, password: Vec<u8> },
}

fn parse_authorization(request: &Request) -> Credentials {
    let Some(value) = request.header("Authorization") else { return Credentials::Absent };
    let Some((scheme, token)) = value.trim().split_once(' ') else { return Credentials::Malformed };
    if !scheme.eq_ignore_ascii_case("Basic") {
        return Credentials::Malformed;
    }
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(token.trim()) else {
        return Credentials::Malformed;
    };
    // RFC 7617: the user name ends at the first colon; the password may contain colons.
    match decoded.iter().position(|&b| b == b':') {
        Some(colon) => Credentials::Basic {
            username: decoded[..colon].to_vec(),
            password: decoded[colon + 1..].to_vec(),
        },
        None => Credentials::Malformed,
    }
}

pub(crate) fn serve(shared: &Arc<Shared>, connection: &mut Connection, peer: &Peer) {
    // Gromox counts authentication failures per connection.
    let mut failures = 0u32;
    loop {
        let request = match connection.read_request(false, shared.config.max_request_bytes) {
            ReadOutcome::Request(request) => request,
            ReadOutcome::Closed => return,
            ReadOutcome::Invalid(reason) => {
                eprintln!("kopano-standin: closing connection from {}: {reason}", peer.source());
                return;
            }
        };
        let fault = shared.current_fault();
        let Some(response) = handle(shared, &request, peer, &mut failures) else { return };
        let keep_alive = !response.close;
        if !faults::send(shared, connection, response, &fault) || !keep_alive {
            return;
        }
    }
}

/// Builds the response to one request, or returns None if the server stopped during the failure delay.
fn handle(shared: &Shared, request: &Request, peer: &Peer, failures: &mut u32) -> Option<Response> {
    let close = request.wants_close();
    shared.count(request.header("X-RequestType").unwrap_or(&request.method));

    let authenticated = match parse_authorization(request) {
        Credentials::Absent | Credentials::Malformed => false,
        Credentials::Basic { username, password } => {
            // Wrong credentials are rejected before routing, so every path returns 401.
            if !check_credentials(shared, peer, &username, &password, failures)? {
                return Some(unauthorized(close));
            }
            true
        }
    };

    let path = request.target.to_ascii_lowercase();
    let method = request.method.to_ascii_uppercase();
    let response = if path.starts_with("/mapi/emsmdb/?mailboxid=") || path.starts_with("/mapi/nspi/?mailboxid=") {
        if !authenticated {
            unauthorized(close)
        } else if method != "POST" {
            plain_status(405, close)
        } else {
            mapi_response(request, path.starts_with("/mapi/nspi/"), close)
        }
    } else if path.starts_with("/ews/exchange.asmx") {
        if method == "GET" {
            plain_status(405, close)
        } else if !authenticated {
            unauthorized(close)
        } else {
            ews_response(request, close)
        }
    } else if path.starts_with("/autodiscover/autodiscover.json") {
        json_autodiscover(close)
    } else if path.starts_with("/autodiscover/autodiscover.xml") {
        if !authenticated {
            unauthorized(close)
        } else {
            xml_response(200, AUTODISCOVER_XML.to_string(), close)
        }
    } else if path.starts_with("/rpc/rpcproxy.dll") && (method == "RPC_IN_DATA" || method == "RPC_OUT_DATA") {
        if !authenticated {
            unauthorized(close)
        } else {
            rpc_echo(close)
        }
    } else {
        plain_status(404, close)
    };
    Some(response)
}

/// Checks Basic credentials the way Gromox 3.10 does and applies the failure delay and
/// the ban. Returns None if the server stopped while waiting.
fn check_credentials(shared: &Shared, peer: &Peer, username: &[u8], password: &[u8], failures: &mut u32) -> Option<bool> {
    let name = String::from_utf8_lossy(username).into_owned();
    let ban_key = name.to_lowercase();
    let sent_password = &password[..password.len().min(MAX_PASSWORD_BYTES)];
    let mut record = LogonRecord {
        username: name.clone(),
        password: sent_password.to_vec(),
        flags: 0,
        capabilities: 0,
        version: None,
        client_app: None,
        client_app_version: None,
        client_app_misc: None,
        impersonate_user_present: false,
        transport: peer.transport,
        peer_pid: peer.pid,
        peer_uid: peer.uid,
        peer_addr: peer.addr,
        client_cert_presented: peer.client_cert,
        er: 0,
        http_status: 401,
        peer_uid_bypass: false,
    };

    // A banned user gets 401 at once, even with the right password.
    let banned = {
        let mut bans = lock(&shared.bans);
        bans.retain(|_, until| *until > Instant::now());
        bans.contains_key(&ban_key)
    };
    if banned {
        lock(&shared.logons).push(record);
        return Some(false);
    }

    // User names are ASCII in Gromox's database; a non-ASCII name fails with an SQL error.
    let user = username
        .is_ascii()
        .then(|| shared.config.users.iter().find(|u| u.name.eq_ignore_ascii_case(&name)))
        .flatten();
    let rhost = peer.addr.map(|addr| addr.to_string()).unwrap_or_else(|| peer.source());
    let accepted = user.is_some_and(|user| {
        let stored = user.password.as_bytes();
        !stored.is_empty() && !sent_password.is_empty() && stored == sent_password
    });
    if accepted {
        record.http_status = 200;
        lock(&shared.logons).push(record);
        return Some(true);
    }

    let reason = match user {
        Some(_) => "Incorrect password".to_string(),
        None if !username.is_ascii() => "SQL query error".to_string(),
        None => format!("No such user \"{name}\""),
    };
    shared.log(format_args!("rhost={rhost} user={name} HTTP auth rejected: {reason}"));
    lock(&shared.logons).push(record);
    if !shared.sleep(shared.config.failure_delay) {
        return None;
    }
    *failures += 1;
    if *failures >= shared.config.ban_after {
        lock(&shared.bans).insert(ban_key, Instant::now() + shared.config.ban_duration);
    }
    Some(false)
}

fn connection_headers(headers: &mut Vec<(String, String)>, close: bool) {
    if close {
        headers.push(("Connection".to_string(), "close".to_string()));
    } else {
        headers.push(("Connection".to_string(), "keep-alive".to_string()));
        headers.push(("Keep-Alive".to_string(), "timeout=180".to_string()));
    }
}

/// Gromox's 401: identical for every kind of rejection.
fn unauthorized(close: bool) -> Response {
    let body = b"Unauthorized\r\n".to_vec();
    let mut headers = vec![
        ("Date".to_string(), http_date(SystemTime::now())),
        ("Content-Length".to_string(), body.len().to_string()),
        ("Content-Type".to_string(), "text/plain; charset=utf-8".to_string()),
    ];
    connection_headers(&mut headers, close);
    headers.push(("WWW-Authenticate".to_string(), "Basic realm=\"msrpc realm\", charset=\"utf-8\"".to_string()));
    Response { status: 401, reason: "Unauthorized", headers, body, close }
}

/// Builds a plain-text status page such as Gromox's 405 `Method Not Allowed`.
/// NOTE: the 404 layout was not captured; it copies the captured 405.
fn plain_status(status: u16, close: bool) -> Response {
    let reason = crate::http::reason_phrase(status);
    let body = format!("{reason}\r\n").into_bytes();
    let mut headers = vec![
        ("Date".to_string(), http_date(SystemTime::now())),
        ("Content-Length".to_string(), body.len().to_string()),
        ("Content-Type".to_string(), "text/plain; charset=utf-8".to_string()),
    ];
    connection_headers(&mut headers, close);
    Response { status, reason, headers, body, close }
}

fn xml_response(status: u16, body: String, close: bool) -> Response {
    let mut headers = vec![
        ("Content-Type".to_string(), "text/xml".to_string()),
        ("Content-Length".to_string(), body.len().to_string()),
    ];
    if close {
        headers.push(("Connection".to_string(), "close".to_string()));
    }
    Response { status, reason: crate::http::reason_phrase(status), headers, body: body.into_bytes(), close }
}

/// EMSMDB or NSPI request with valid credentials.
fn mapi_response(request: &Request, nspi: bool, close: bool) -> Response {
    let request_type = request.header("X-RequestType").unwrap_or("").to_string();
    let request_id = request.header("X-RequestId").unwrap_or("").to_string();
    let client_info = request.header("X-ClientInfo").unwrap_or("").to_string();
    let code = if request_type.is_empty() || request_id.is_empty() || client_info.is_empty() {
        RESPONSE_MISSING_HEADER
    } else if (!nspi && request_type.eq_ignore_ascii_case("Connect"))
        || (nspi && request_type.eq_ignore_ascii_case("Bind"))
    {
        RESPONSE_SUCCESS
    } else if KNOWN_REQUEST_TYPES.iter().any(|t| t.eq_ignore_ascii_case(&request_type)) {
        // TODO: requests that carry a session cookie from Connect or Bind are not
        // tracked; every request other than Connect and Bind counts as cookie-less.
        RESPONSE_MISSING_COOKIE
    } else {
        RESPONSE_INVALID_REQUEST_TYPE
    };
    let shown_type = if nspi && code == RESPONSE_SUCCESS { request_type.to_ascii_lowercase() } else { request_type };
    let date = http_date(SystemTime::now());
    let mut headers = vec![
        ("Cache-Control".to_string(), "private".to_string()),
        ("Content-Type".to_string(), "application/mapi-http".to_string()),
        ("X-RequestType".to_string(), shown_type),
        ("X-RequestId".to_string(), request_id),
        ("X-ClientInfo".to_string(), client_info),
        ("X-ResponseCode".to_string(), code.to_string()),
    ];
    if code != RESPONSE_SUCCESS {
        // NOTE: Gromox's headers for a non-zero X-ResponseCode were not captured byte for
        // byte; this keeps the captured Connect layout and sends an empty body.
        headers.push(("X-ServerApplication".to_string(), SERVER_APPLICATION.to_string()));
        headers.push(("Date".to_string(), date));
        headers.push(("Content-Length".to_string(), "0".to_string()));
        if close {
            headers.push(("Connection".to_string(), "close".to_string()));
        }
        return Response { status: 200, reason: "OK", headers, body: Vec::new(), close };
    }

    headers.push(("X-PendingPeriod".to_string(), "30000".to_string()));
    headers.push(("X-ExpirationInfo".to_string(), "900000".to_string()));
    headers.push(("X-ServerApplication".to_string(), SERVER_APPLICATION.to_string()));
    headers.push(("Date".to_string(), date.clone()));
    headers.push(("Set-Cookie".to_string(), format!("sid={}", random_token())));
    headers.push(("Transfer-Encoding".to_string(), "chunked".to_string()));
    headers.push(("Set-Cookie".to_string(), format!("sequence={}", random_guid())));
    let mut payload = format!("PROCESSING\r\nDONE\r\nX-ElapsedTime: 0\r\nX-StartTime: {date}\r\n\r\n").into_bytes();
    payload.extend_from_slice(&if nspi { bind_body() } else { connect_body() });
    let mut body = format!("{:x}\r\n", payload.len()).into_bytes();
    body.extend_from_slice(&payload);
    body.extend_from_slice(b"\r\n0\r\n\r\n");
    Response { status: 200, reason: "OK", headers, body, close }
}

const KNOWN_REQUEST_TYPES: [&str; 14] = [
    "PING", "Connect", "Execute", "Disconnect", "NotificationWait", "Bind", "Unbind", "CompareMIds",
    "DNToMId", "GetMatches", "GetPropList", "GetProps", "QueryRows", "ResolveNames",
];

/// EMSMDB Connect response: StatusCode, ErrorCode, MaxPolls, MaxRetry, RetryDelay,
/// DnPrefix (ASCII, NUL-terminated), DisplayName (UTF-16LE, NUL-terminated), AuxSize.
fn connect_body() -> Vec<u8> {
    let mut body = Vec::new();
    for value in [0u32, 0, 60_000, 6, 10_000] {
        body.extend_from_slice(&value.to_le_bytes());
    }
    body.push(0);
    for unit in "Stand-in User".encode_utf16().chain(std::iter::once(0)) {
        body.extend_from_slice(&unit.to_le_bytes());
    }
    body.extend_from_slice(&0u32.to_le_bytes());
    body
}

/// NSPI Bind response: StatusCode, ErrorCode, ServerGuid (16 bytes), AuxSize: 28 bytes.
fn bind_body() -> Vec<u8> {
    let mut body = vec![0u8; 8];
    body.extend_from_slice(&[0x5A; 16]);
    body.extend_from_slice(&0u32.to_le_bytes());
    body
}

fn random_token() -> String {
    let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut value = crate::soap::random_u64();
    let mut next = crate::soap::random_u64();
    (0..32)
        .map(|i| {
            if i == 12 {
                value = next;
                next = 0;
            }
            let c = alphabet[(value % 36) as usize] as char;
            value /= 36;
            c
        })
        .collect()
}

fn random_guid() -> String {
    let high = crate::soap::random_u64();
    let low = crate::soap::random_u64();
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xFFFF,
        high & 0xFFFF,
        low >> 48,
        low & 0xFFFF_FFFF_FFFF
    )
}

fn ews_response(request: &Request, close: bool) -> Response {
    if request.body.is_empty() {
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><SOAP:Envelope xmlns:SOAP=\"http://schemas.xmlsoap.org/soap/envelope/\"><SOAP:Body><SOAP:Fault><faultcode>SOAP:Client</faultcode><faultstring>Empty request</faultstring></SOAP:Fault></SOAP:Body></SOAP:Envelope>";
        return xml_response(500, body.to_string(), close);
    }
    xml_response(200, EWS_GETFOLDER_XML.to_string(), close)
}

fn json_autodiscover(close: bool) -> Response {
    let body = b"{\"Protocol\":\"Ews\",\"Url\":\"https://gromox.example.test/EWS/Exchange.asmx\"}".to_vec();
    let mut headers = vec![
        ("Content-Type".to_string(), "application/json".to_string()),
        ("Content-Length".to_string(), body.len().to_string()),
    ];
    if close {
        headers.push(("Connection".to_string(), "close".to_string()));
    }
    Response { status: 200, reason: "OK", headers, body, close }
}

/// MS-RPCH echo: `200 Success` with a 20-byte RTS PDU.
fn rpc_echo(close: bool) -> Response {
    let body = vec![0x05, 0x00, 0x14, 0x03, 0x10, 0, 0, 0, 0x14, 0, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0];
    let headers = vec![
        ("Connection".to_string(), if close { "close" } else { "Keep-Alive" }.to_string()),
        ("Keep-Alive".to_string(), "timeout=180".to_string()),
        ("Content-Length".to_string(), body.len().to_string()),
        ("Content-Type".to_string(), "application/rpc".to_string()),
    ];
    Response { status: 200, reason: "Success", headers, body, close }
}

const EWS_GETFOLDER_XML: &str = concat!(
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><SOAP:Envelope xmlns:SOAP=\"http://schemas.xmlsoap.org/soap/envelope/\" ",
    "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\">",
    "<SOAP:Header><t:ServerVersionInfo xmlns:t=\"http://schemas.microsoft.com/exchange/services/2006/types\" ",
    "MajorVersion=\"15\" MinorVersion=\"0\" MajorBuildNumber=\"847\" MinorBuildNumber=\"4040\" Version=\"V2017_07_11\"/>",
    "</SOAP:Header><SOAP:Body><m:GetFolderResponse xmlns:m=\"http://schemas.microsoft.com/exchange/services/2006/messages\" ",
    "xmlns:t=\"http://schemas.microsoft.com/exchange/services/2006/types\"><m:ResponseMessages>",
    "<m:GetFolderResponseMessage ResponseClass=\"Success\"><m:ResponseCode>NoError</m:ResponseCode>",
    "</m:GetFolderResponseMessage></m:ResponseMessages></m:GetFolderResponse></SOAP:Body></SOAP:Envelope>"
);

const AUTODISCOVER_XML: &str = concat!(
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006\">",
    "<Response xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a\">",
    "<User><DisplayName>Stand-in User</DisplayName></User><Account><AccountType>email</AccountType>",
    "<Action>settings</Action></Account></Response></Autodiscover>"
);

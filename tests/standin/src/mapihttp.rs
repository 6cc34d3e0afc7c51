//! Gromox mode: HTTP Basic authentication in front of MAPI over HTTP (EMSMDB, NSPI), EWS,
//! Autodiscover and RPC/HTTP, with Gromox 3.10's status codes, headers, failure delay and
//! per-user ban.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;

use crate::http::{http_date, Connection, ReadOutcome, Request, Response};
use crate::net::Peer;
use crate::{faults, lock, LogonRecord, Shared};

/// Gromox copies the Basic password into `char password[128]`, so only the first 127
/// bytes are compared.
const MAX_PASSWORD_BYTES: usize = 127;
const SERVER_APPLICATION: &str = "Exchange/15.00.0847.4040";

/// X-ResponseCode values of Gromox 3.10 (`resp_code` in exch/mh/mh_common.hpp). They
/// differ from the numbers in the MS-OXCMAPIHTTP specification.
#[derive(Clone, Copy)]
enum ResponseCode {
    InvalidVerb = 1,
    InvalidContextCookie = 2,
    MissingHeader = 3,
    NoPrivilege = 4,
    InvalidRequestBody = 5,
    MissingCookie = 6,
    InvalidRequestType = 8,
}

impl ResponseCode {
    fn text(self) -> &'static str {
        match self {
            ResponseCode::InvalidVerb => "The request has an invalid verb.",
            ResponseCode::InvalidContextCookie => "The request has an invalid session context cookie.",
            ResponseCode::MissingHeader => "The request has a missing required header.",
            ResponseCode::NoPrivilege => "The client has no privileges to the Session Context.",
            ResponseCode::InvalidRequestBody => "The request body is invalid.",
            ResponseCode::MissingCookie => "The request is missing a required cookie.",
            ResponseCode::InvalidRequestType => "Invalid request type for this endpoint.",
        }
    }
}

enum Credentials {
    Absent,
    /// Not Basic, not base64, or no colon: no login is attempted.
    Malformed,
    /// The decoded parts and the base64 token as sent.
    Basic { username: Vec<u8>, password: Vec<u8>, token: String },
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
            token: token.trim().to_string(),
        },
        None => Credentials::Malformed,
    }
}

/// Per-connection state that Gromox keeps in its HTTP context.
#[derive(Default)]
struct ConnectionState {
    /// Authentication failures on this connection (`auth_times`).
    failures: u32,
    /// The last Basic token that succeeded and when; Gromox reuses that result for the
    /// same token for one minute (`http_basic_auth_cred_caching`) without checking again.
    accepted_token: Option<(String, Instant)>,
}

/// How long Gromox 3.10 reuses a successful Basic authentication on one connection.
const CREDENTIAL_CACHE: Duration = Duration::from_secs(60);

pub(crate) fn serve(shared: &Arc<Shared>, connection: &mut Connection, peer: &Peer) {
    let mut state = ConnectionState::default();
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
        let Some(response) = handle(shared, &request, peer, &mut state) else { return };
        let keep_alive = !response.close;
        if !faults::send(shared, connection, response, &fault) || !keep_alive {
            return;
        }
    }
}

/// Builds the response to one request, or returns None if the server stopped during the
/// failure delay.
fn handle(shared: &Shared, request: &Request, peer: &Peer, state: &mut ConnectionState) -> Option<Response> {
    let close = request.wants_close();
    shared.count(request.header("X-RequestType").unwrap_or(&request.method));

    let user = match parse_authorization(request) {
        Credentials::Absent | Credentials::Malformed => None,
        Credentials::Basic { username, password, token } => {
            let cached = state
                .accepted_token
                .as_ref()
                .is_some_and(|(accepted, at)| *accepted == token && at.elapsed() < CREDENTIAL_CACHE);
            // Wrong credentials are rejected before routing, so every path returns 401.
            if !cached && !check_credentials(shared, peer, &username, &password, &mut state.failures)? {
                return Some(unauthorized(close));
            }
            if !cached {
                state.accepted_token = Some((token, Instant::now()));
            }
            Some(String::from_utf8_lossy(&username).into_owned())
        }
    };
    let authenticated = user.is_some();

    let path = request.target.to_ascii_lowercase();
    let method = request.method.to_ascii_uppercase();
    let mapi = path.starts_with("/mapi/emsmdb/?mailboxid=") || path.starts_with("/mapi/nspi/?mailboxid=");
    let response = if mapi && method == "POST" {
        match &user {
            None => unauthorized(close),
            Some(user) => mapi_response(shared, request, user, path.starts_with("/mapi/nspi/"), close),
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
        // Includes MAPI paths with another method: no Gromox module takes them.
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

/// Builds Gromox 3.10's response to an EMSMDB or NSPI request with valid credentials
/// (`MhEmsmdbPlugin::process`, `MhNspPlugin::process`): header checks, then the session
/// cookie, then the request type.
fn mapi_response(shared: &Shared, request: &Request, user: &str, nspi: bool, close: bool) -> Response {
    let request_type = request.header("X-RequestType").unwrap_or("");
    let request_id = request.header("X-RequestId").unwrap_or("");
    let client_info = request.header("X-ClientInfo").unwrap_or("");
    if request_type.is_empty() {
        return error_response(ResponseCode::InvalidVerb, close);
    }
    if request_id.is_empty() || client_info.is_empty() {
        return error_response(ResponseCode::MissingHeader, close);
    }
    let is = |name: &str| request_type.eq_ignore_ascii_case(name);
    let opening_type = if nspi { "Bind" } else { "Connect" };

    let session_id = match cookie(request, "sid") {
        None if request.header("Cookie").is_none() => {
            if !is(opening_type) {
                return error_response(ResponseCode::MissingCookie, close);
            }
            None
        }
        None => return error_response(ResponseCode::InvalidContextCookie, close),
        Some(sid) => match lock(&shared.mapi_sessions).get(&sid) {
            None => return error_response(ResponseCode::InvalidContextCookie, close),
            Some(owner) if !owner.eq_ignore_ascii_case(user) => {
                return error_response(ResponseCode::NoPrivilege, close)
            }
            Some(_) => Some(sid),
        },
    };

    let date = http_date(SystemTime::now());
    if is("PING") {
        let content = processing_text(&date);
        let mut headers = common_headers("PING", request_id, client_info, session_id.as_deref(), &date);
        headers.push(("Content-Length".to_string(), content.len().to_string()));
        return Response { status: 200, reason: "OK", headers, body: content.into_bytes(), close };
    }
    if !is(opening_type) {
        let known = if nspi { NSPI_REQUEST_TYPES.iter() } else { EMSMDB_REQUEST_TYPES.iter() }.any(|t| is(t));
        // TODO: Execute, Disconnect, NotificationWait and the NSPI calls other than Bind
        // are not implemented; a known type gets "invalid request body".
        let code = if known { ResponseCode::InvalidRequestBody } else { ResponseCode::InvalidRequestType };
        return error_response(code, close);
    }

    let session_id = session_id.unwrap_or_else(|| {
        let sid = random_token();
        lock(&shared.mapi_sessions).insert(sid.clone(), user.to_string());
        sid
    });
    // Gromox 3.10's NSPI Bind response names the request type in lower case.
    let shown_type = if nspi { "bind".to_string() } else { request_type.to_string() };
    let mut headers = common_headers(&shown_type, request_id, client_info, Some(&session_id), &date);
    headers.push(("Transfer-Encoding".to_string(), "chunked".to_string()));
    headers.push(("Set-Cookie".to_string(), format!("sequence={}", random_guid())));
    let text = processing_text(&date);
    let binary = if nspi { bind_body() } else { connect_body() };
    let mut body = format!("{:x}\r\n{text}\r\n{:x}\r\n", text.len(), binary.len()).into_bytes();
    body.extend_from_slice(&binary);
    body.extend_from_slice(b"\r\n0\r\n\r\n");
    Response { status: 200, reason: "OK", headers, body, close }
}

/// Builds the headers of every successful MAPI over HTTP response, in Gromox's order.
fn common_headers(
    request_type: &str,
    request_id: &str,
    client_info: &str,
    session_id: Option<&str>,
    date: &str,
) -> Vec<(String, String)> {
    let mut headers = vec![
        ("Cache-Control".to_string(), "private".to_string()),
        ("Content-Type".to_string(), "application/mapi-http".to_string()),
        ("X-RequestType".to_string(), request_type.to_string()),
        ("X-RequestId".to_string(), request_id.to_string()),
        ("X-ClientInfo".to_string(), client_info.to_string()),
        ("X-ResponseCode".to_string(), "0".to_string()),
        ("X-PendingPeriod".to_string(), "30000".to_string()),
        ("X-ExpirationInfo".to_string(), "900000".to_string()),
        ("X-ServerApplication".to_string(), SERVER_APPLICATION.to_string()),
        ("Date".to_string(), date.to_string()),
    ];
    if let Some(session_id) = session_id {
        headers.push(("Set-Cookie".to_string(), format!("sid={session_id}")));
    }
    headers
}

/// Builds the text part that precedes every MAPI over HTTP response body.
fn processing_text(date: &str) -> String {
    format!("PROCESSING\r\nDONE\r\nX-ElapsedTime: 0\r\nX-StartTime: {date}\r\n\r\n")
}

/// Value of one cookie in the request's Cookie header.
fn cookie(request: &Request, name: &str) -> Option<String> {
    request.header("Cookie")?.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then(|| value.to_string())
    })
}

/// Gromox's `error_responsecode`: HTTP 200 with a non-zero X-ResponseCode and an HTML body.
/// Gromox sends no Connection header here.
fn error_response(code: ResponseCode, close: bool) -> Response {
    let body = format!(
        "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\r\n<html><head>\r\n\
         <title>MAPI OVER HTTP ERROR</title>\r\n</head><body>\r\n\
         <h1>Diagnostic Information</h1>\r\n<p>{}</p>\r\n</body></html>\r\n",
        code.text()
    );
    let headers = vec![
        ("Cache-Control".to_string(), "private".to_string()),
        ("Content-Type".to_string(), "text/html".to_string()),
        ("X-ResponseCode".to_string(), (code as u32).to_string()),
        ("Content-Length".to_string(), body.len().to_string()),
        ("X-ServerApplication".to_string(), SERVER_APPLICATION.to_string()),
        ("Date".to_string(), http_date(SystemTime::now())),
    ];
    Response { status: 200, reason: "OK", headers, body: body.into_bytes(), close }
}

const EMSMDB_REQUEST_TYPES: [&str; 4] = ["Connect", "Disconnect", "Execute", "NotificationWait"];
const NSPI_REQUEST_TYPES: [&str; 15] = [
    "Bind", "Unbind", "CompareMIds", "DNToMId", "GetMatches", "GetPropList", "GetProps", "QueryRows",
    "QueryColumns", "ResolveNames", "ResortRestriction", "SeekEntries", "UpdateStat", "GetMailboxUrl",
    "GetAddressBookUrl",
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

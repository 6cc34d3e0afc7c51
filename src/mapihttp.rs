//! MAPI over HTTP (grommunio Gromox, Exchange Server 2013 and later): checks a
//! password with one HTTP Basic authenticated PING to the EMSMDB endpoint.
//!
//! The request, sent with an empty body on a connection of its own:
//!
//! ```text
//! POST <base path>mapi/emsmdb/?MailboxId=<user, percent-encoded>
//! Authorization: Basic base64(<user> ":" <password>, UTF-8)
//! Content-Type: application/mapi-http
//! X-RequestType: PING
//! X-RequestId: {<fresh GUID>}:<counter>
//! X-ClientInfo: {<fresh GUID>}:1
//! X-ClientApplication: pam_mapi/<version>
//! ```
//!
//! Gromox 3.10 checks the credentials before it routes the request and creates no
//! session for a PING. The reply decides:
//!
//! | reply | outcome |
//! |---|---|
//! | 200 with one `X-ResponseCode` of 0 or 6 | `Confirmed` |
//! | 200 without `X-ResponseCode`, or with another value | `Unavailable` |
//! | 401 offering Basic (or no challenge at all) | `LogonFailed` |
//! | 401 offering only other schemes (NTLM, Negotiate) | `ServiceError` |
//! | anything else, redirects included | `Unavailable` |
//!
//! Gromox 3.10 replies to a PING without a session cookie with
//! `X-ResponseCode: 6` (missing context cookie), and 0 is the protocol's success
//! code. A web server that returns 200 for any request sends no `X-ResponseCode`,
//! so it cannot confirm a password.
//!
//! Limits:
//! - HTTP Basic only. NTLM and Negotiate (Kerberos) are not implemented, and
//!   Exchange Online, which has no Basic authentication, is not supported.
//! - Basic credentials travel only over https, or over plain http to a loopback
//!   address or a Unix socket.
//! - A user name containing `:` cannot be carried, because RFC 7617 ends the user
//!   name at the first colon. It is rejected without a request.
//! - A password longer than 127 bytes is rejected without a request. Gromox 3.10
//!   copies the password into a 128-byte buffer and compares only its first 127
//!   bytes, so it would accept such a password with any suffix.
//! - Gromox 3.10 delays every rejection by 1 s (`auth_fail_delay`), so `timeout=`
//!   must stay above that. It bans a user name server-wide for one minute after 10
//!   failures on one connection (`http_auth_times`). This module sends one request
//!   per connection and never repeats it after a 401, on this server or the next,
//!   so its own failures never add up to a ban. A ban caused by another client
//!   still returns 401, which is reported as a failed logon.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use base64::Engine as _;
use zeroize::Zeroizing;

use crate::auth::LogLevel;
use crate::backend::{Credentials, Log};
use crate::code::Outcome;
use crate::redact;
use crate::options::Settings;
use crate::server::ServerUrl;
use crate::transport::{Client, Reply};

/// Maximum password length sent, in bytes, because Gromox 3.10 compares only this many.
pub const MAX_PASSWORD_BYTES: usize = 127;

/// The EMSMDB endpoint, relative to the base URL given by `socket=`. Gromox
/// requires the `?MailboxId=` query and returns 404 without it.
const EMSMDB_PATH: &str = "mapi/emsmdb/?MailboxId=";

/// `X-ResponseCode` values that show the server accepted the credentials.
// NOTE: only Gromox 3.10's reply was captured. Exchange's reply to a PING without
// a session cookie may carry another code, which fails closed as Unavailable
// and names the code in the log.
const ACCEPTED_RESPONSE_CODES: [u32; 2] = [RESPONSE_SUCCESS, RESPONSE_MISSING_COOKIE];
/// HTTP authentication schemes named in logs; other words of a challenge are
/// counted only (see [`crate::redact`]).
const AUTH_SCHEMES: &[&str] = &["Basic", "Bearer", "Digest", "Kerberos", "Negotiate", "NTLM"];
/// Products named in logs from `X-ServerApplication`.
const PRODUCTS: &[&str] = &["Exchange", "Gromox", "grommunio"];
const RESPONSE_SUCCESS: u32 = 0;
/// The code Gromox 3.10 sends for a PING that carries no session cookie.
const RESPONSE_MISSING_COOKIE: u32 = 6;

/// Numbers the requests of this process, for `X-RequestId`.
static REQUEST_COUNTER: AtomicU64 = AtomicU64::new(1);

/// The PING request for one user, ready to send.
pub struct PingRequest {
    /// Path and query, starting with `/`.
    pub target: String,
    /// The `Authorization` header value, which contains the password.
    pub authorization: Zeroizing<String>,
    /// Every other header.
    pub headers: Vec<(&'static str, String)>,
}

impl PingRequest {
    /// Returns the `X-RequestId` value, so that log lines can be matched to the server's log.
    pub fn request_id(&self) -> &str {
        self.headers.iter().find(|(name, _)| *name == "X-RequestId").map_or("", |(_, value)| value)
    }
}

/// Checks the credentials with one PING to `server`. `client` is a fresh client
/// for `server`; it is pointed at the EMSMDB endpoint here.
pub fn check(settings: &Settings, server: &ServerUrl, client: Client, creds: &Credentials, deadline: Instant, log: Log) -> Outcome {
    if !server.is_tls() && !server.is_local() {
        return Outcome::ServiceError(format!(
            "socket={server}: protocol=mapihttp sends the password in an HTTP Basic Authorization header, which plain http \
             carries unencrypted; use https://, or http:// only to a loopback address or a Unix socket"
        ));
    }
    if let Some(reason) = rejected_input(creds) {
        return Outcome::InputRejected(reason);
    }

    let request = ping_request(server, creds);
    let client = client.with_target(&request.target);
    if settings.debug {
        log(LogLevel::Debug, &format!("sending MAPI over HTTP PING to {server} with X-RequestId {}", request.request_id()));
    }
    // TODO: NTLM and Negotiate (Kerberos) are not implemented; Basic is the only
    // scheme sent, so a server that offers no Basic authentication cannot be used.
    let mut headers: Vec<(&str, &str)> = vec![("Authorization", request.authorization.as_str())];
    headers.extend(request.headers.iter().map(|(name, value)| (*name, value.as_str())));

    let reply = match client.post(&[], &headers, deadline) {
        Ok(reply) => reply,
        Err(e) if e.timed_out => {
            return Outcome::Unavailable(format!(
                "{}; Gromox delays every rejected password by 1 s (auth_fail_delay), so keep timeout= well above that",
                e.message
            ))
        }
        Err(e) => return Outcome::Unavailable(e.message),
    };
    drop(headers);
    drop(request);

    let outcome = decide_reply(&reply);
    if settings.debug {
        log(LogLevel::Debug, &format!("MAPI over HTTP reply from {server}: {}", describe_reply(&reply)));
    }
    outcome
}

/// Returns why the credentials cannot be sent with HTTP Basic authentication, or
/// `None` if they can. The reason never contains the password.
pub fn rejected_input(creds: &Credentials) -> Option<String> {
    if creds.user.contains(':') {
        return Some(
            "user name contains ':', which HTTP Basic authentication cannot carry because the user name ends at the first colon"
                .into(),
        );
    }
    if creds.password.len() > MAX_PASSWORD_BYTES {
        return Some(format!(
            "password is {} bytes long; protocol=mapihttp allows at most {MAX_PASSWORD_BYTES}, because Gromox compares only \
             the first {MAX_PASSWORD_BYTES} bytes and would accept any suffix",
            creds.password.len()
        ));
    }
    None
}

/// Builds the PING request for `creds` on `server`.
pub fn ping_request(server: &ServerUrl, creds: &Credentials) -> PingRequest {
    let target = format!("{}{EMSMDB_PATH}{}", base_path(server), percent_encode(creds.user));

    let mut pair = Zeroizing::new(String::with_capacity(creds.user.len() + 1 + creds.password.len()));
    pair.push_str(creds.user);
    pair.push(':');
    pair.push_str(creds.password);
    let mut authorization = Zeroizing::new(String::from("Basic "));
    base64::engine::general_purpose::STANDARD.encode_string(pair.as_bytes(), &mut authorization);

    let counter = REQUEST_COUNTER.fetch_add(1, Ordering::Relaxed);
    let headers = vec![
        ("Content-Type", "application/mapi-http".to_string()),
        ("X-RequestType", "PING".to_string()),
        ("X-RequestId", format!("{{{}}}:{counter}", random_guid())),
        ("X-ClientInfo", format!("{{{}}}:1", random_guid())),
        ("X-ClientApplication", format!("pam_mapi/{}", env!("CARGO_PKG_VERSION"))),
        // One request per connection: Gromox counts failures per connection.
        ("Connection", "close".to_string()),
    ];
    PingRequest { target, authorization, headers }
}

/// Returns the path of the base URL, ending in `/`: `/` for a Unix socket or a URL
/// without a path, `/prefix/` for `https://host/prefix`.
fn base_path(server: &ServerUrl) -> String {
    let ServerUrl::Http { url, .. } = server else {
        return "/".to_string();
    };
    let path = url.parse::<ureq::http::Uri>().map(|uri| uri.path().to_string()).unwrap_or_default();
    let mut path = if path.starts_with('/') { path } else { format!("/{path}") };
    if !path.ends_with('/') {
        path.push('/');
    }
    // A socket= that already names the endpoint is used as it is.
    for endpoint in ["/mapi/emsmdb/", "/mapi/"] {
        if path.to_ascii_lowercase().ends_with(endpoint) {
            path.truncate(path.len() - endpoint.len() + 1);
            break;
        }
    }
    path
}

/// Percent-encodes every byte except the RFC 3986 unreserved characters and `@`,
/// which a query may contain as it is.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'@') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Generates a random version-4 GUID in the registry format without braces. Request ids
/// need to be unique, not secret, so the standard library's randomly keyed
/// hasher is enough.
fn random_guid() -> String {
    let word = |salt: u64| {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(salt);
        hasher.write_u128(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
        hasher.finish()
    };
    let high = word(1);
    let low = word(2);
    let high = (high & !0xF000) | 0x4000;
    let low = (low & !(0xC000 << 48)) | (0x8000 << 48);
    format!(
        "{:08X}-{:04X}-{:04X}-{:04X}-{:012X}",
        high >> 32,
        (high >> 16) & 0xFFFF,
        high & 0xFFFF,
        low >> 48,
        low & 0xFFFF_FFFF_FFFF
    )
}

/// Turns the reply to a PING into an outcome. Fails closed: only a 200 that
/// carries exactly one accepted `X-ResponseCode` confirms the password.
pub fn decide_reply(reply: &Reply) -> Outcome {
    match reply.status {
        200 => decide_ok(reply),
        401 => decide_unauthorized(reply),
        301 | 302 | 303 | 307 | 308 => Outcome::Unavailable(format!(
            "HTTP {} redirect ({}); redirects are never followed, so set socket= to the URL the server redirects to",
            reply.status,
            redact::withheld("the Location header")
        )),
        404 => Outcome::Unavailable(
            "HTTP 404: no MAPI over HTTP endpoint at this URL; set socket= to the base URL of the grommunio or Exchange \
             server, such as https://mail.example.com/"
                .into(),
        ),
        status => Outcome::Unavailable(format!("HTTP {status}")),
    }
}

fn decide_ok(reply: &Reply) -> Outcome {
    let codes: Vec<&str> =
        reply.headers.iter().filter(|(name, _)| name.eq_ignore_ascii_case("x-responsecode")).map(|(_, v)| v.as_str()).collect();
    let value = match codes.as_slice() {
        [] => {
            return Outcome::Unavailable(
                "HTTP 200 without an X-ResponseCode header, so the URL is not a MAPI over HTTP endpoint; set socket= to the \
                 base URL of the grommunio or Exchange server, such as https://mail.example.com/"
                    .into(),
            )
        }
        [value] => value.trim(),
        _ => return Outcome::Unavailable(format!("HTTP 200 with {} X-ResponseCode headers, expected one", codes.len())),
    };
    let code = match value.parse::<u32>() {
        Ok(code) if value.bytes().all(|b| b.is_ascii_digit()) => code,
        _ => return Outcome::Unavailable(format!("HTTP 200 with an invalid X-ResponseCode ({})", redact::withheld("its value"))),
    };
    if ACCEPTED_RESPONSE_CODES.contains(&code) {
        Outcome::Confirmed
    } else {
        Outcome::Unavailable(format!(
            "HTTP 200 with X-ResponseCode {} to a PING, expected 0 or 6; the server may be too new or too old for \
             pam_mapi {}, please report it",
            redact::number(value, 3),
            env!("CARGO_PKG_VERSION")
        ))
    }
}

/// Decides a 401. It rejects the credentials, unless its challenges offer no
/// Basic authentication, in which case the server never checked the password.
fn decide_unauthorized(reply: &Reply) -> Outcome {
    let challenges: Vec<&str> = reply
        .headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("www-authenticate"))
        .map(|(_, value)| value.as_str())
        .collect();
    let offers_basic = challenges.iter().any(|challenge| {
        challenge.split(',').any(|part| part.trim_start().get(..5).is_some_and(|scheme| scheme.eq_ignore_ascii_case("basic")))
    });
    if challenges.is_empty() || offers_basic {
        return Outcome::LogonFailed(
            "server rejected the credentials with HTTP 401 (wrong password, unknown user, or a user name the server \
             blocks after repeated failures)"
                .into(),
        );
    }
    Outcome::ServiceError(format!(
        "server replied HTTP 401 but offers no Basic authentication (WWW-Authenticate: {}); pam_mapi supports only \
         Basic, so enable it for /mapi on the server",
        redact::known_words(&challenges.join(", "), AUTH_SCHEMES)
    ))
}

/// Status and MAPI over HTTP headers of a reply, for debug logs.
fn describe_reply(reply: &Reply) -> String {
    let mut text = format!("HTTP {}", reply.status);
    if let Some(value) = reply.header("X-ResponseCode") {
        text.push_str(&format!(", X-ResponseCode: {}", redact::number(value, 3)));
    }
    if let Some(value) = reply.header("X-ServerApplication") {
        let shown = match value.split_once('/') {
            Some((product, version)) if PRODUCTS.iter().any(|p| p.eq_ignore_ascii_case(product)) => {
                format!("{product}/{}", redact::version(version))
            }
            _ => redact::withheld("its value"),
        };
        text.push_str(&format!(", X-ServerApplication: {shown}"));
    }
    if let Some(value) = reply.header("WWW-Authenticate") {
        text.push_str(&format!(", WWW-Authenticate: {}", redact::known_words(value, AUTH_SCHEMES)));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds<'a>(user: &'a str, password: &'a str) -> Credentials<'a> {
        Credentials { user, password, service: "smtp", rhost: None }
    }

    fn server(url: &str) -> ServerUrl {
        ServerUrl::parse(url).unwrap()
    }

    fn header<'a>(request: &'a PingRequest, name: &str) -> Option<&'a str> {
        request.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    fn reply(status: u16, headers: &[(&str, &str)]) -> Reply {
        Reply {
            status,
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            body: Vec::new(),
        }
    }

    #[test]
    fn target_for_root_url() {
        let request = ping_request(&server("https://mail.example.test/"), &creds("alice@example.test", "pw"));
        assert_eq!(request.target, "/mapi/emsmdb/?MailboxId=alice@example.test");
    }

    #[test]
    fn target_for_url_without_path() {
        let request = ping_request(&server("https://mail.example.test:8443"), &creds("a@b", "pw"));
        assert_eq!(request.target, "/mapi/emsmdb/?MailboxId=a@b");
    }

    #[test]
    fn target_keeps_base_path_prefix() {
        let request = ping_request(&server("https://mail.example.test/groupware"), &creds("a@b", "pw"));
        assert_eq!(request.target, "/groupware/mapi/emsmdb/?MailboxId=a@b");
    }

    #[test]
    fn target_accepts_endpoint_url() {
        let request = ping_request(&server("https://mail.example.test/mapi/emsmdb/"), &creds("a@b", "pw"));
        assert_eq!(request.target, "/mapi/emsmdb/?MailboxId=a@b");
    }

    #[test]
    fn target_for_unix_socket() {
        let request = ping_request(&server("file:///run/gromox/http.sock"), &creds("a@b", "pw"));
        assert_eq!(request.target, "/mapi/emsmdb/?MailboxId=a@b");
    }

    #[test]
    fn target_percent_encodes_user() {
        let request = ping_request(&server("https://h/"), &creds("a b&c=d#ü@x", "pw"));
        assert_eq!(request.target, "/mapi/emsmdb/?MailboxId=a%20b%26c%3Dd%23%C3%BC@x");
    }

    #[test]
    fn authorization_is_basic_utf8() {
        let request = ping_request(&server("https://h/"), &creds("carol@example.test", "Pässwörd-ü€"));
        assert_eq!(request.authorization.as_str(), "Basic Y2Fyb2xAZXhhbXBsZS50ZXN0OlDDpHNzd8O2cmQtw7zigqw=");
    }

    #[test]
    fn headers_mark_a_ping() {
        let request = ping_request(&server("https://h/"), &creds("a@b", "pw"));
        assert_eq!(header(&request, "X-RequestType"), Some("PING"));
        assert_eq!(header(&request, "Content-Type"), Some("application/mapi-http"));
        assert_eq!(header(&request, "X-ClientApplication"), Some(concat!("pam_mapi/", env!("CARGO_PKG_VERSION"))));
        assert_eq!(header(&request, "Connection"), Some("close"));
    }

    #[test]
    fn request_id_is_guid_with_counter() {
        let request = ping_request(&server("https://h/"), &creds("a@b", "pw"));
        let id = request.request_id();
        let (guid, counter) = id.rsplit_once(':').unwrap();
        assert_eq!(guid.len(), 38, "{id}");
        assert!(guid.starts_with('{'), "{id}");
        assert!(guid.ends_with('}'), "{id}");
        assert!(counter.parse::<u64>().is_ok(), "{id}");
    }

    #[test]
    fn request_ids_differ() {
        let first = ping_request(&server("https://h/"), &creds("a@b", "pw"));
        let second = ping_request(&server("https://h/"), &creds("a@b", "pw"));
        assert_ne!(first.request_id(), second.request_id());
    }

    #[test]
    fn client_info_is_guid_with_counter() {
        let request = ping_request(&server("https://h/"), &creds("a@b", "pw"));
        let info = header(&request, "X-ClientInfo").unwrap();
        assert_eq!(info.len(), 40, "{info}");
        assert!(info.ends_with("}:1"), "{info}");
    }

    #[test]
    fn headers_never_contain_password() {
        let request = ping_request(&server("https://h/"), &creds("a@b", "Zq9-secret"));
        for (name, value) in &request.headers {
            assert!(!value.contains("Zq9-secret"), "{name}: {value}");
        }
    }

    #[test]
    fn colon_in_user_is_rejected() {
        assert!(rejected_input(&creds("al:ice@example.test", "pw")).is_some());
    }

    #[test]
    fn colon_in_password_is_allowed() {
        assert_eq!(rejected_input(&creds("erin@example.test", "Er:in-Secret:5")), None);
    }

    #[test]
    fn password_of_127_bytes_is_allowed() {
        assert_eq!(rejected_input(&creds("a@b", &"x".repeat(127))), None);
    }

    #[test]
    fn password_of_128_bytes_is_rejected() {
        assert!(rejected_input(&creds("a@b", &"x".repeat(128))).is_some());
    }

    #[test]
    fn long_password_reason_omits_password() {
        let password = format!("Zq9-{}", "y".repeat(200));
        let reason = rejected_input(&creds("a@b", &password)).unwrap();
        assert!(!reason.contains("Zq9-"), "{reason}");
    }

    #[test]
    fn gromox_ping_reply_is_confirmed() {
        assert_eq!(decide_reply(&reply(200, &[("X-ResponseCode", "6")])), Outcome::Confirmed);
    }

    #[test]
    fn response_code_zero_is_confirmed() {
        assert_eq!(decide_reply(&reply(200, &[("x-responsecode", " 0 ")])), Outcome::Confirmed);
    }

    #[test]
    fn ok_without_response_code_is_unavailable() {
        assert!(matches!(decide_reply(&reply(200, &[("Content-Type", "text/html")])), Outcome::Unavailable(_)));
    }

    #[test]
    fn other_response_code_is_unavailable() {
        assert!(matches!(decide_reply(&reply(200, &[("X-ResponseCode", "3")])), Outcome::Unavailable(_)));
    }

    #[test]
    fn malformed_response_code_is_unavailable() {
        for value in ["", "+6", "6x", "-0", "0x6", "99999999999"] {
            assert!(matches!(decide_reply(&reply(200, &[("X-ResponseCode", value)])), Outcome::Unavailable(_)), "{value:?}");
        }
    }

    #[test]
    fn two_response_codes_are_unavailable() {
        let twice = reply(200, &[("X-ResponseCode", "6"), ("X-ResponseCode", "6")]);
        assert!(matches!(decide_reply(&twice), Outcome::Unavailable(_)));
    }

    #[test]
    fn unauthorized_with_basic_is_logon_failed() {
        let gromox = reply(401, &[("WWW-Authenticate", "Basic realm=\"msrpc realm\", charset=\"utf-8\"")]);
        assert!(matches!(decide_reply(&gromox), Outcome::LogonFailed(_)));
    }

    #[test]
    fn unauthorized_with_basic_among_others_is_logon_failed() {
        let exchange = reply(401, &[("WWW-Authenticate", "Negotiate"), ("WWW-Authenticate", "NTLM, Basic realm=\"x\"")]);
        assert!(matches!(decide_reply(&exchange), Outcome::LogonFailed(_)));
    }

    #[test]
    fn unauthorized_without_challenge_is_logon_failed() {
        assert!(matches!(decide_reply(&reply(401, &[])), Outcome::LogonFailed(_)));
    }

    #[test]
    fn unauthorized_without_basic_is_service_error() {
        let negotiate_only = reply(401, &[("WWW-Authenticate", "Negotiate"), ("WWW-Authenticate", "NTLM")]);
        assert!(matches!(decide_reply(&negotiate_only), Outcome::ServiceError(_)));
    }

    #[test]
    fn redirect_is_unavailable() {
        for status in [301, 302, 303, 307, 308] {
            let redirect = reply(status, &[("Location", "https://elsewhere.example.test/")]);
            assert!(matches!(decide_reply(&redirect), Outcome::Unavailable(_)), "{status}");
        }
    }

    #[test]
    fn redirect_with_response_code_is_unavailable() {
        let redirect = reply(302, &[("Location", "https://x/"), ("X-ResponseCode", "0")]);
        assert!(matches!(decide_reply(&redirect), Outcome::Unavailable(_)));
    }

    #[test]
    fn server_errors_are_unavailable() {
        for status in [400, 403, 404, 500, 502, 503] {
            assert!(matches!(decide_reply(&reply(status, &[("X-ResponseCode", "0")])), Outcome::Unavailable(_)), "{status}");
        }
    }

    fn settings(args: &[&str]) -> Result<Settings, crate::options::SettingsError> {
        Settings::from_args(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn settings_reject_plain_http_to_remote_host() {
        assert!(settings(&["protocol=mapihttp", "socket=http://192.0.2.1/"]).is_err());
    }

    #[test]
    fn settings_reject_plain_http_among_others() {
        assert!(settings(&["protocol=mapihttp", "socket=https://mail.example.test/", "socket=http://mail.example.test/"]).is_err());
    }

    #[test]
    fn settings_accept_https_to_remote_host() {
        assert!(settings(&["protocol=mapihttp", "socket=https://mail.example.test/"]).is_ok());
    }

    #[test]
    fn settings_accept_plain_http_to_loopback() {
        for url in ["http://127.0.0.1:10080/", "http://[::1]:10080/", "http://localhost/"] {
            assert!(settings(&["protocol=mapihttp", &format!("socket={url}")]).is_ok(), "{url}");
        }
    }

    #[test]
    fn settings_accept_unix_socket() {
        assert!(settings(&["protocol=mapihttp", "socket=file:///run/gromox/http.sock"]).is_ok());
    }

    #[test]
    fn settings_require_socket() {
        assert!(settings(&["protocol=mapihttp"]).is_err());
    }

    #[test]
    fn settings_keep_plain_http_for_soap() {
        assert!(settings(&["protocol=soap", "socket=http://192.0.2.1:236/"]).is_ok());
    }

    #[test]
    fn plain_http_to_remote_host_is_service_error() {
        let settings = Settings::default();
        let remote = server("http://192.0.2.1/");
        let client = Client::new(&remote, &crate::transport::TlsSettings { cafile: None }, settings.connect_timeout).unwrap();
        let log = |_: LogLevel, _: &str| {};
        let outcome = check(&settings, &remote, client, &creds("a@b", "pw"), Instant::now(), &log);
        assert!(matches!(outcome, Outcome::ServiceError(_)), "{outcome:?}");
    }
}

//! The "server" step: a request that needs no account and shows which server
//! replies at the configured URL. It goes through the module's own HTTP client
//! (`pam_mapi::transport::Client`), so it also tests the module's TLS and
//! Unix-socket paths.

use std::io::Read;
use std::time::Instant;

use pam_mapi::backend::Credentials;
use pam_mapi::input::for_log;
use pam_mapi::mapihttp;
use pam_mapi::options::{Protocol, Settings};
use pam_mapi::server::ServerUrl;
use pam_mapi::soap::{self, LogonRequest, ReplyError};
use pam_mapi::transport::{Client, Reply, TlsSettings, TransportError};

use crate::report::{Exit, Report};

/// User name of the SOAP version probe. No account is expected to have it: it
/// contains a colon, which Unix user names and HTTP Basic user-ids cannot
/// contain, and U+FFFD, which marks text lost in a character set conversion.
/// It also names the tool in the server's audit log.
pub const PROBE_USER: &str = "pam_mapi-check:version-probe\u{fffd}";

/// Sends the protocol's probe to `server` and reports the reply.
pub fn check_answer(report: &mut Report, settings: &Settings, server: &ServerUrl, deadline: Instant) {
    match settings.protocol {
        Protocol::Soap => soap_version(report, settings, server, deadline),
        Protocol::MapiHttp => mapihttp_ping(report, settings, server, deadline),
    }
}

fn client(report: &mut Report, settings: &Settings, server: &ServerUrl, started: Instant) -> Option<Client> {
    let tls = TlsSettings { cafile: settings.cafile.clone() };
    match Client::new(server, &tls, settings.connect_timeout) {
        Ok(client) => Some(client),
        Err(message) => {
            report.fail(Exit::Configuration, "server", started, &message);
            None
        }
    }
}

/// Reports a request that got no reply; a TLS error counts as a TLS failure.
fn no_reply(report: &mut Report, started: Instant, error: &TransportError) {
    let exit = if error.message.starts_with("TLS error") { Exit::Tls } else { Exit::ServerAnswer };
    let hint = if error.timed_out { "; the server accepted the connection but did not reply within timeout=" } else { "" };
    report.fail(exit, "server", started, &format!("no reply: {}{hint}", error.message));
}

/// Describes a reply status other than 200 (or 401 for MAPI over HTTP).
fn status_problem(reply: &Reply) -> String {
    match reply.status {
        301 | 302 | 303 | 307 | 308 => format!(
            "HTTP {} redirect to {}; the module never follows redirects, so point socket= at the server itself",
            reply.status,
            for_log(reply.header("location").unwrap_or("(no Location header)"))
        ),
        status => format!("HTTP {status}"),
    }
}

/// Kopano/Zarafa: a logon that must fail, sent with NO_UID_AUTH and
/// NO_REGISTER_SESSION. kopano-server fills `lpszVersion` before it checks the
/// password, so even the reply to a failed logon carries it.
fn soap_version(report: &mut Report, settings: &Settings, server: &ServerUrl, deadline: Instant) {
    let started = Instant::now();
    let Some(client) = client(report, settings, server, started) else { return };
    let password = random_password();
    let request = soap::logon_request(&LogonRequest {
        user: PROBE_USER,
        password: &password,
        flags: soap::KOPANO_LOGON_NO_UID_AUTH | soap::KOPANO_LOGON_NO_REGISTER_SESSION,
        client_misc: "pam_mapi-check version probe",
    });
    let headers = [("Content-Type", "text/xml; charset=utf-8"), ("SOAPAction", "\"\"")];
    let reply = match client.post(&request, &headers, deadline) {
        Ok(reply) => reply,
        Err(e) => {
            no_reply(report, started, &e);
            return;
        }
    };
    let server_header = reply.header("server").map(|s| format!(", Server: {}", for_log(s))).unwrap_or_default();
    if reply.status != 200 {
        let fault = match soap::parse_logon_response(&reply.body) {
            Err(ReplyError::Fault(text)) => format!(", SOAP fault: {}", for_log(&text)),
            _ => String::new(),
        };
        let detail = format!("{}{fault}{server_header}; check that socket= points at kopano-server", status_problem(&reply));
        report.fail(Exit::ServerAnswer, "server", started, &detail);
        return;
    }
    let response = match soap::parse_logon_response(&reply.body) {
        Ok(response) => response,
        Err(e) => {
            // The probe carries a random password, so the fault text is shown in full.
            let problem = match &e {
                ReplyError::Fault(text) => format!("SOAP fault: {}", for_log(text)),
                other => other.to_string(),
            };
            report.fail(
                Exit::ServerAnswer,
                "server",
                started,
                &format!("HTTP 200{server_header} but no usable logonResponse: {problem}; check that socket= points at kopano-server"),
            );
            return;
        }
    };

    let er = format!("er 0x{:08X} ({})", response.er, soap::er_name(response.er));
    match response.er {
        0 => {
            report.fail(
                Exit::ServerAnswer,
                "server",
                started,
                &format!(
                    "HTTP 200{server_header}: the server accepted a logon for a user name that cannot exist with a random password, so it does not check passwords; do not use it with pam_mapi until this is explained"
                ),
            );
        }
        soap::KCERR_INVALID_VERSION | soap::KCERR_BAD_CHARWIDTH | soap::MAPI_E_BAD_CHARWIDTH => {
            report.fail(
                Exit::ServerAnswer,
                "server",
                started,
                &format!("HTTP 200{server_header}: the server rejects this client: {er}; the server may be too old or too new for pam_mapi"),
            );
        }
        _ => {
            report.pass("server", started, &format!("HTTP 200{server_header}, the probe logon failed as expected: {er}"));
        }
    }
    match response.server_version.as_deref() {
        Some(version) if !version.is_empty() => {
            report.detail(&format!("version: {} ({})", for_log(version), product(version)));
            if !soap::honours_no_register_session(Some(version)) {
                report.detail("this version ignores NO_REGISTER_SESSION, so the module logs off after each successful logon");
            }
        }
        _ => report.detail("version: not sent (Zarafa 7.x sends lpszVersion only after a successful logon)"),
    }
}

/// Names the product of an `lpszVersion` such as `0,11,0,2`.
fn product(version: &str) -> String {
    let numbers: Vec<&str> = version.split(',').skip(1).collect();
    let dotted = numbers.join(".");
    match numbers.first().and_then(|n| n.trim().parse::<u32>().ok()) {
        Some(major) if major >= 8 => format!("Kopano {dotted}"),
        Some(_) => format!("Zarafa {dotted}"),
        None => "unknown product".to_string(),
    }
}

/// MAPI over HTTP: the module's PING (same path and headers) without the
/// Authorization header. A server that checks passwords with HTTP Basic replies
/// 401 with a `WWW-Authenticate: Basic` challenge. The request carries no
/// credentials, so no password check can fail and add to Gromox's per-user ban.
fn mapihttp_ping(report: &mut Report, settings: &Settings, server: &ServerUrl, deadline: Instant) {
    let started = Instant::now();
    if !server.is_tls() && !server.is_local() {
        report.fail(
            Exit::Configuration,
            "server",
            started,
            "protocol=mapihttp sends the password in an HTTP Basic header, so the module refuses plain http to another machine; use https://",
        );
        return;
    }
    let domain = settings.default_domain.as_deref().unwrap_or("invalid");
    let mailbox = format!("pam_mapi-check@{domain}");
    let creds = Credentials { user: &mailbox, password: "", service: "pam_mapi-check", rhost: None };
    let request = mapihttp::ping_request(server, &creds);
    let Some(client) = client(report, settings, server, started) else { return };
    let client = client.with_target(&request.target);
    let headers: Vec<(&str, &str)> = request.headers.iter().map(|(name, value)| (*name, value.as_str())).collect();
    let reply = match client.post(b"", &headers, deadline) {
        Ok(reply) => reply,
        Err(e) => {
            no_reply(report, started, &e);
            return;
        }
    };

    let target = &request.target;
    let challenges: Vec<String> = reply
        .headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("www-authenticate"))
        .map(|(_, value)| value.trim().to_ascii_lowercase())
        .collect();
    let basic = challenges.iter().any(|c| c == "basic" || c.starts_with("basic "));
    match reply.status {
        401 if basic || challenges.is_empty() => {
            report.pass("server", started, &format!("HTTP 401 to a PING without credentials at {target}, as expected"))
        }
        401 => report.fail(
            Exit::ServerAnswer,
            "server",
            started,
            "HTTP 401 without a Basic challenge; pam_mapi logs on with HTTP Basic only, so enable Basic authentication for MAPI over HTTP",
        ),
        200 => report.fail(
            Exit::ServerAnswer,
            "server",
            started,
            &format!("HTTP 200 to a PING without credentials at {target}; this endpoint does not check passwords"),
        ),
        404 => report.fail(
            Exit::ServerAnswer,
            "server",
            started,
            &format!("HTTP 404 for {target}; point socket= at the server root, such as https://mail.example.com/"),
        ),
        _ => report.fail(Exit::ServerAnswer, "server", started, &status_problem(&reply)),
    }
    for (name, value) in &reply.headers {
        let lower = name.to_ascii_lowercase();
        if lower.starts_with("x-") || lower == "www-authenticate" || lower == "server" {
            let printable: String = value.chars().take(256).map(|c| if c.is_control() { '?' } else { c }).collect();
            report.detail(&format!("{name}: {printable}"));
        }
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    if let Ok(mut urandom) = std::fs::File::open("/dev/urandom") {
        if urandom.read_exact(&mut bytes).is_ok() {
            return bytes;
        }
    }
    // Fallback: the standard library's randomly seeded hasher.
    use std::hash::{BuildHasher, Hasher};
    for chunk in bytes.chunks_mut(8) {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
        let value = hasher.finish().to_ne_bytes();
        chunk.copy_from_slice(&value[..chunk.len()]);
    }
    bytes
}

/// Makes a password that no account has: 32 random hexadecimal digits.
fn random_password() -> String {
    random_bytes::<16>().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_of_kopano_version() {
        assert_eq!(product("0,11,0,2"), "Kopano 11.0.2");
    }

    #[test]
    fn product_of_zarafa_version() {
        assert_eq!(product("0,7,2,6,12345"), "Zarafa 7.2.6.12345");
    }

    #[test]
    fn random_password_is_hex() {
        let password = random_password();
        assert_eq!(password.len(), 32);
        assert!(password.chars().all(|c| c.is_ascii_hexdigit()));
    }
}

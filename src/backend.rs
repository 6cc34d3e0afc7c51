//! Asking the servers whether a password is right: one function per protocol,
//! and the loop that tries the configured servers in order within one deadline.

use std::time::Instant;

use crate::auth::LogLevel;
use crate::code::Outcome;
use crate::input::for_log;
use crate::options::{Protocol, Settings};
use crate::server::ServerUrl;
use crate::soap::{self, LogonRequest};
use crate::transport::{Client, Reply, TlsSettings};

/// The credentials and the context that goes into the server's logs.
pub struct Credentials<'a> {
    pub user: &'a str,
    pub password: &'a str,
    /// PAM service and remote host, for `szClientAppMisc`.
    pub service: &'a str,
    pub rhost: Option<&'a str>,
}

/// Logging callback: level and message.
pub type Log<'a> = &'a dyn Fn(LogLevel, &str);

/// Asks each server in turn until one gives an answer. The next server is tried
/// only when the current one gave none (connect, TLS, timeout, 5xx, unreadable
/// reply), never after a logon failure or a refusal of the client.
pub fn check(settings: &Settings, creds: &Credentials, deadline: Instant, log: Log) -> Outcome {
    let mut failures = Vec::new();
    for server in &settings.servers {
        if Instant::now() >= deadline {
            failures.push(format!("{server}: not tried, the total deadline of {:?} ran out", settings.timeout));
            continue;
        }
        let outcome = check_one(settings, server, creds, deadline, log);
        match outcome {
            Outcome::Unavailable(reason) => {
                if settings.debug {
                    log(LogLevel::Debug, &format!("server {server} gave no answer: {reason}"));
                }
                failures.push(format!("{server}: {reason}"));
            }
            answered => return answered,
        }
    }
    Outcome::Unavailable(failures.join("; "))
}

fn check_one(settings: &Settings, server: &ServerUrl, creds: &Credentials, deadline: Instant, log: Log) -> Outcome {
    let tls = TlsSettings { cafile: settings.cafile.clone() };
    let client = match Client::new(server, &tls, settings.connect_timeout) {
        Ok(client) => client,
        Err(message) => return Outcome::ServiceError(message),
    };
    match settings.protocol {
        Protocol::Soap => check_soap(settings, &client, creds, deadline, log),
        Protocol::MapiHttp => {
            // TODO: MAPI over HTTP (grommunio, Exchange) is not implemented yet.
            Outcome::ServiceError("protocol=mapihttp is not implemented in this version; use protocol=soap".into())
        }
    }
}

/// Text for `szClientAppMisc`: the PAM service and remote host, so that the
/// server's audit log says who asked.
fn client_misc(creds: &Credentials) -> String {
    let clean = |s: &str| s.chars().filter(|c| !c.is_control()).take(128).collect::<String>();
    match creds.rhost {
        Some(rhost) if !rhost.is_empty() => format!("service={} rhost={}", clean(creds.service), clean(rhost)),
        _ => format!("service={}", clean(creds.service)),
    }
}

const SOAP_HEADERS: &[(&str, &str)] = &[("Content-Type", "text/xml; charset=utf-8"), ("SOAPAction", "\"\"")];

/// Kopano/Zarafa: one `ns:logon` with NO_UID_AUTH and NO_REGISTER_SESSION, and a
/// logoff when the server is too old to honour NO_REGISTER_SESSION.
fn check_soap(settings: &Settings, client: &Client, creds: &Credentials, deadline: Instant, log: Log) -> Outcome {
    let misc = client_misc(creds);
    let request = soap::logon_request(&LogonRequest {
        user: creds.user,
        password: creds.password,
        flags: soap::KOPANO_LOGON_NO_UID_AUTH | soap::KOPANO_LOGON_NO_REGISTER_SESSION,
        client_misc: &misc,
    });
    let reply = match client.post(&request, SOAP_HEADERS, deadline) {
        Ok(reply) => reply,
        Err(e) => return Outcome::Unavailable(e.message),
    };
    drop(request);
    if let Some(problem) = http_problem(&reply) {
        return Outcome::Unavailable(problem);
    }
    let response = match soap::parse_logon_response(&reply.body) {
        Ok(response) => response,
        Err(e) => return Outcome::Unavailable(e.to_string()),
    };
    match response.er {
        0 => {
            if response.session_id != 0 && !soap::honours_no_register_session(response.server_version.as_deref()) {
                logoff(settings, client, response.session_id, deadline, log);
            }
            Outcome::Confirmed
        }
        soap::KCERR_INVALID_VERSION | soap::KCERR_BAD_CHARWIDTH | soap::MAPI_E_BAD_CHARWIDTH => {
            Outcome::ServiceError(format!(
                "server rejected this client: er 0x{:08X} ({}); the server may be too old or too new for pam_mapi {}, please report it",
                response.er,
                soap::er_name(response.er),
                env!("CARGO_PKG_VERSION")
            ))
        }
        er => Outcome::LogonFailed(format!("logon failed: er 0x{er:08X} ({})", soap::er_name(er))),
    }
}

/// Logs off a session that an old server registered despite NO_REGISTER_SESSION.
/// Done from this process and over this client, because kopano-server binds a
/// session to its source (the peer address, or the peer pid on a Unix socket).
/// Failures are logged and otherwise ignored: the password was already confirmed.
fn logoff(settings: &Settings, client: &Client, session_id: u64, deadline: Instant, log: Log) {
    let request = soap::logoff_request(session_id);
    let result = client.post(&request, SOAP_HEADERS, deadline);
    let outcome = match result {
        Ok(reply) if reply.status == 200 => match soap::parse_logoff_response(&reply.body) {
            Ok(0) => None,
            Ok(code) => Some(format!("result 0x{code:08X} ({})", soap::er_name(code))),
            Err(e) => Some(e.to_string()),
        },
        Ok(reply) => Some(format!("HTTP {}", reply.status)),
        Err(e) => Some(e.message),
    };
    match outcome {
        Some(problem) => log(LogLevel::Warning, &format!("logoff of session {session_id} failed: {problem}")),
        None if settings.debug => log(LogLevel::Debug, &format!("logged off session {session_id}")),
        None => {}
    }
}

/// Describes why a reply's HTTP status makes it unusable, or `None` for 200.
fn http_problem(reply: &Reply) -> Option<String> {
    match reply.status {
        200 => None,
        301 | 302 | 303 | 307 | 308 => Some(format!(
            "HTTP {} redirect to {} (redirects are never followed; fix socket= to point at the server itself)",
            reply.status,
            for_log(reply.header("location").unwrap_or("(no Location)"))
        )),
        status => {
            let fault = match soap::parse_logon_response(&reply.body) {
                Err(soap::ReplyError::Fault(text)) => format!(": SOAP fault: {}", for_log(&text)),
                _ => String::new(),
            };
            Some(format!("HTTP {status}{fault}"))
        }
    }
}

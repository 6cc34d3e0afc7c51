//! Asking the servers whether a password is right: one function per protocol,
//! and the loop that tries the configured servers in order within one deadline.

use std::time::Instant;

use crate::auth::LogLevel;
use crate::code::Outcome;
use crate::options::KNOWN_FEATURES;
use crate::redact;
use crate::options::{Protocol, Settings};
use crate::server::ServerUrl;
use crate::soap::{self, LogonRequest};
use crate::state::{self, DownList};
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

/// Asks each server in turn until one replies. The next server is tried only
/// when the current one sent no usable reply (connect, TLS, timeout, 5xx, unreadable
/// reply), never after a logon failure or a refusal of the client. Servers that
/// the state file marks down are tried last.
pub fn check(settings: &Settings, creds: &Credentials, deadline: Instant, log: Log) -> Outcome {
    let mut down = match DownList::read(&settings.state_file) {
        Ok(down) => down,
        Err(reason) => {
            log(LogLevel::Warning, &format!("{reason}; trying the servers in their configured order"));
            DownList::default()
        }
    };
    let mut changed = false;
    let mut failures = Vec::new();
    let mut answer = None;
    let ordered = state::order(&settings.servers, &down);
    for (index, server) in ordered.iter().enumerate() {
        let now = Instant::now();
        if now >= deadline {
            failures.push(format!("{server}: not tried, the total deadline of {:?} ran out", settings.timeout));
            continue;
        }
        // Each server gets an equal share of the time left, so that one that
        // accepts and then stalls cannot use up the time of those after it.
        let servers_left = (ordered.len() - index) as u32;
        let server_deadline = now + (deadline - now) / servers_left;
        let outcome = check_one(settings, server, creds, server_deadline, log);
        match outcome {
            Outcome::Unavailable(reason) => {
                if settings.debug {
                    log(LogLevel::Debug, &format!("server {server} gave no answer: {reason}"));
                }
                failures.push(format!("{server}: {reason}"));
                down.mark_down(server, settings.state_ttl);
                changed = true;
            }
            answered => {
                changed |= down.clear(server);
                answer = Some(answered);
                break;
            }
        }
    }
    if changed {
        if let Err(reason) = down.write(&settings.state_file) {
            log(LogLevel::Warning, &format!("{reason}; other workers will not know which servers were found down"));
        }
    }
    answer.unwrap_or_else(|| Outcome::Unavailable(failures.join("; ")))
}

fn check_one(settings: &Settings, server: &ServerUrl, creds: &Credentials, deadline: Instant, log: Log) -> Outcome {
    let tls = TlsSettings { cafile: settings.cafile.clone() };
    let client = match Client::new(server, &tls, settings.connect_timeout) {
        Ok(client) => client,
        Err(message) => return Outcome::ServiceError(message),
    };
    match settings.protocol {
        Protocol::Soap => check_soap(settings, server, &client, creds, deadline, log),
        Protocol::MapiHttp => crate::mapihttp::check(settings, server, client, creds, deadline, log),
    }
}

/// Builds `szClientAppMisc` from the PAM service and remote host, so that the
/// server's audit log names the caller.
fn client_misc(creds: &Credentials) -> String {
    let clean = |s: &str| s.chars().filter(|c| !c.is_control()).take(128).collect::<String>();
    match creds.rhost {
        Some(rhost) if !rhost.is_empty() => format!("service={} rhost={}", clean(creds.service), clean(rhost)),
        _ => format!("service={}", clean(creds.service)),
    }
}

const SOAP_HEADERS: &[(&str, &str)] = &[("Content-Type", "text/xml; charset=utf-8"), ("SOAPAction", "\"\"")];

/// Kopano/Zarafa: one `ns:logon` with NO_UID_AUTH and NO_REGISTER_SESSION, and a
/// logoff when the server is too old to honour NO_REGISTER_SESSION. With
/// `service=`, the logon registers a session, `getUser` reads the user's
/// features, and the session is always logged off.
fn check_soap(
    settings: &Settings,
    server: &ServerUrl,
    client: &Client,
    creds: &Credentials,
    deadline: Instant,
    log: Log,
) -> Outcome {
    let misc = client_misc(creds);
    let gate = !settings.service.is_empty();
    let mut flags = soap::KOPANO_LOGON_NO_UID_AUTH;
    if !gate {
        flags |= soap::KOPANO_LOGON_NO_REGISTER_SESSION;
    }
    let request = soap::logon_request(&LogonRequest { user: creds.user, password: creds.password, flags, client_misc: &misc });
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
    if response.er == 0 && matches!(server, ServerUrl::Unix { .. }) && !soap::honours_no_uid_auth(response.server_version.as_deref()) {
        // Zarafa before 7.1 ignores ulFlags, so over a Unix socket it logs root on
        // as any user without checking the password: its "yes" proves nothing.
        if response.session_id != 0 {
            logoff(settings, client, response.session_id, deadline, log);
        }
        return Outcome::ServiceError(format!(
            "server version {:?} cannot be asked over a Unix socket: servers older than Zarafa 7.1 ignore NO_UID_AUTH and accept any password from root there; use socket=http://... or https://... instead",
            response.server_version.as_deref().map(redact::version).unwrap_or_else(|| "(none)".into())
        ));
    }
    match response.er {
        0 if gate => {
            let outcome = check_features(settings, client, response.session_id, deadline);
            logoff(settings, client, response.session_id, deadline, log);
            outcome
        }
        0 => {
            if response.session_id != 0 && !soap::honours_no_register_session(response.server_version.as_deref()) {
                logoff(settings, client, response.session_id, deadline, log);
            }
            Outcome::Confirmed
        }
        soap::KCERR_INVALID_VERSION | soap::KCERR_BAD_CHARWIDTH | soap::MAPI_E_BAD_CHARWIDTH => {
            Outcome::ServiceError(format!(
                "server rejected this client: {}; the server may be too old or too new for pam_mapi {}, please report it",
                soap::er_text(response.er),
                env!("CARGO_PKG_VERSION")
            ))
        }
        er => Outcome::LogonFailed(format!("logon failed: {}", soap::er_text(er))),
    }
}

/// Reads the user's features on a registered session and allows the logon if at
/// least one `service=` feature is enabled. A feature in neither list counts as
/// enabled, as the Kopano gateways decide (they deny only a listed disabled one).
fn check_features(settings: &Settings, client: &Client, session_id: u64, deadline: Instant) -> Outcome {
    let wanted = settings.service.join("|");
    let request = soap::get_user_request(session_id);
    let reply = match client.post(&request, SOAP_HEADERS, deadline) {
        Ok(reply) => reply,
        Err(e) => return Outcome::Unavailable(format!("getUser for service={wanted}: {}", e.message)),
    };
    if let Some(problem) = http_problem(&reply) {
        return Outcome::Unavailable(format!("getUser for service={wanted}: {problem}"));
    }
    let features = match soap::parse_get_user_response(&reply.body) {
        Ok((0, features)) => features,
        Ok((er, _)) => {
            return Outcome::Unavailable(format!(
                "getUser for service={wanted} failed: {}",
                soap::er_text(er)
            ))
        }
        Err(e) => return Outcome::Unavailable(format!("getUser for service={wanted}: {e}")),
    };
    let enabled = |feature: &String| features.enabled.contains(feature) || !features.disabled.contains(feature);
    if settings.service.iter().any(enabled) {
        Outcome::Confirmed
    } else {
        Outcome::FeatureDenied(format!(
            "password is right, but none of the features {wanted} is enabled for the user (disabled: {})",
            redact::known_words(&features.disabled.join(" "), KNOWN_FEATURES)
        ))
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
            Ok(code) => Some(format!("result {}", soap::er_text(code))),
            Err(e) => Some(e.to_string()),
        },
        Ok(reply) => Some(format!("HTTP {}", reply.status)),
        Err(e) => Some(e.message),
    };
    match outcome {
        // The session id is not logged: any number in a reply could be a numeric
        // password quoted back.
        Some(problem) => log(LogLevel::Warning, &format!("logoff of the session failed: {problem}")),
        None if settings.debug => log(LogLevel::Debug, "logged off the session"),
        None => {}
    }
}

/// Describes why a reply's HTTP status makes it unusable, or `None` for 200.
fn http_problem(reply: &Reply) -> Option<String> {
    match reply.status {
        200 => None,
        301 | 302 | 303 | 307 | 308 => Some(format!(
            "HTTP {} redirect ({}); redirects are never followed, so fix socket= to point at the server itself",
            reply.status,
            redact::withheld("the Location header")
        )),
        status => {
            let fault = match soap::parse_logon_response(&reply.body) {
                Err(fault @ soap::ReplyError::Fault(_)) => format!(": {fault}"),
                _ => String::new(),
            };
            Some(format!("HTTP {status}{fault}"))
        }
    }
}

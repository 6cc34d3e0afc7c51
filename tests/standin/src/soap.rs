//! Kopano SOAP mode: `ns:logon`, `ns:logoff` and `ns:getUser` with kopano-server 11.0.2's
//! results, session table and Unix-socket peer-uid logon.

use std::collections::BTreeSet;
use std::sync::Arc;

use base64::Engine as _;

use crate::http::{Connection, ReadOutcome, Request, Response};
use crate::net::Peer;
use crate::soap_xml::{self, Call, ParseError};
use crate::{faults, lock, LogonRecord, Session, Shared, Transport, User};

/// KCERR_* values as kopano-server prints them in `er` and `result`.
pub(crate) const ER_SUCCESS: u32 = 0;
pub(crate) const KCERR_NOT_FOUND: u32 = 0x8000_0002;
pub(crate) const KCERR_LOGON_FAILED: u32 = 0x8000_0009;
pub(crate) const KCERR_END_OF_SESSION: u32 = 0x8000_0010;
pub(crate) const KCERR_INVALID_VERSION: u32 = 0x8000_0021;
pub(crate) const KCERR_BAD_CHARWIDTH: u32 = 0x8000_0031;

/// `ulFlags` bits of `ns:logon`.
pub(crate) const KOPANO_LOGON_NO_UID_AUTH: u32 = 0x1;
pub(crate) const KOPANO_LOGON_NO_REGISTER_SESSION: u32 = 0x2;

/// `ulCapabilities` bits.
const KOPANO_CAP_LARGE_SESSIONID: u32 = 0x0010;
const KOPANO_CAP_MULTI_SERVER: u32 = 0x0040;
const KOPANO_CAP_ENHANCED_ICS: u32 = 0x0100;
const KOPANO_CAP_UNICODE: u32 = 0x0200;
const KOPANO_CAP_MSGLOCK: u32 = 0x0400;
/// Capabilities kopano-server 11.0.2 always returns (CRYPT, LICENSE_SERVER,
/// LOADPROP_ENTRYID, EXPORT_PROPTAG, IMPERSONATION, GIFN32).
const SERVER_CAPABILITIES: u32 = 0x98A8;
/// Client capabilities that a successful logon echoes back. COMPRESSION (0x1) is never
/// granted, because kopano-server grants it only to peers that are not local.
const ECHOED_CAPABILITIES: u32 =
    KOPANO_CAP_UNICODE | KOPANO_CAP_MULTI_SERVER | KOPANO_CAP_MSGLOCK | KOPANO_CAP_ENHANCED_ICS;

const SERVER_VERSION: &str = "0,11,0,2";
const SERVER_GUID: &str = "gXjCm157R4i7+Fe8sZdopw==";

/// PR_EC_ENABLED_FEATURES_A and PR_EC_DISABLED_FEATURES_A.
const PR_EC_ENABLED_FEATURES_A: u32 = 0x67B3_101E;
const PR_EC_DISABLED_FEATURES_A: u32 = 0x67B4_101E;
/// Feature names defined in kopano-server 11 (`kopano_features[]`).
const KNOWN_FEATURES: [&str; 5] = ["imap", "pop3", "mobile", "outlook", "webapp"];

/// Kopano's built-in SYSTEM account: it exists, but no password logs it on.
const SYSTEM_USER: &str = "SYSTEM";
const SYSTEM_USER_ID: u32 = 2;

enum Outcome {
    Respond(Response),
    /// Close the connection at once without a response.
    Close,
    /// Hold the request and close the connection without a response.
    Hold,
}

pub(crate) fn serve(shared: &Arc<Shared>, connection: &mut Connection, peer: &Peer) {
    let allow_bare = peer.transport == Transport::Unix;
    loop {
        let request = match connection.read_request(allow_bare, shared.config.max_request_bytes) {
            ReadOutcome::Request(request) => request,
            ReadOutcome::Closed => return,
            ReadOutcome::Invalid(reason) => {
                eprintln!("kopano-standin: closing connection from {}: {reason}", peer.source());
                return;
            }
        };
        let fault = shared.current_fault();
        match handle(shared, &request, peer) {
            Outcome::Hold => {
                shared.sleep(shared.config.malformed_hold);
                return;
            }
            Outcome::Close => return,
            Outcome::Respond(response) => {
                let keep_alive = !response.close;
                if !faults::send(shared, connection, response, &fault) || !keep_alive {
                    return;
                }
            }
        }
    }
}

fn handle(shared: &Shared, request: &Request, peer: &Peer) -> Outcome {
    let close = request.wants_close();
    if !request.method.eq_ignore_ascii_case("POST") {
        shared.count(&request.method);
        let string = format!("HTTP {} method not implemented", request.method);
        let body = soap_xml::fault_envelope("SOAP-ENV:Client", &string);
        return Outcome::Respond(soap_response(405, body, true));
    }
    let call = match soap_xml::parse_call(&request.body) {
        Ok(call) => call,
        Err(ParseError::Hold) => {
            shared.count("malformed");
            return Outcome::Hold;
        }
        Err(ParseError::Close) => {
            shared.count("truncated");
            return Outcome::Close;
        }
        Err(ParseError::Fault { code, string }) => {
            shared.count("fault");
            return Outcome::Respond(soap_response(500, soap_xml::fault_envelope(code, &string), true));
        }
    };
    shared.count(&call.method);
    let result = match call.method.as_str() {
        "logon" => logon(shared, &call, peer),
        "logoff" => logoff(shared, &call, peer),
        _ => get_user(shared, &call, peer),
    };
    match result {
        // gSOAP downgrades chunked output to Content-Length for HTTP/1.0 peers.
        Ok((content, chunked)) if chunked && !request.http10 => {
            Outcome::Respond(chunked_soap_response(soap_xml::envelope(&content), close))
        }
        Ok((content, _)) => Outcome::Respond(soap_response(200, soap_xml::envelope(&content), close)),
        Err(ParseError::Fault { code, string }) => {
            Outcome::Respond(soap_response(500, soap_xml::fault_envelope(code, &string), true))
        }
        Err(ParseError::Hold) => Outcome::Hold,
        Err(ParseError::Close) => Outcome::Close,
    }
}

/// Builds a gSOAP response with kopano-server's headers in their order.
pub(crate) fn soap_response(status: u16, body: String, close: bool) -> Response {
    let connection = if close { "close" } else { "keep-alive" };
    Response {
        status,
        reason: crate::http::reason_phrase(status),
        headers: vec![
            ("Server".to_string(), "gSOAP/2.8".to_string()),
            ("X-Frame-Options".to_string(), "SAMEORIGIN".to_string()),
            ("Content-Type".to_string(), "text/xml; charset=utf-8".to_string()),
            ("Content-Length".to_string(), body.len().to_string()),
            ("Connection".to_string(), connection.to_string()),
        ],
        body: body.into_bytes(),
        close,
    }
}

/// Builds a 200 response with `Transfer-Encoding: chunked`, as kopano-server sends it on a
/// session with ENHANCED_ICS. The body is encoded as one chunk here.
/// NOTE: the XML fault modes rewrite the encoded body without fixing the chunk size.
fn chunked_soap_response(body: String, close: bool) -> Response {
    let mut response = soap_response(200, String::new(), close);
    response.remove_header("Content-Length");
    let connection = response.headers.pop();
    response.headers.push(("Transfer-Encoding".to_string(), "chunked".to_string()));
    response.headers.extend(connection);
    response.body = format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len()).into_bytes();
    response
}

/// Parses an unsigned number argument; absent means 0, as gSOAP leaves it.
fn number<T: std::str::FromStr + Default>(call: &Call, name: &str) -> Result<T, ParseError> {
    match call.text(name) {
        None => Ok(T::default()),
        Some(text) => text.trim().parse::<T>().map_err(|_| ParseError::Fault {
            code: "SOAP-ENV:Client",
            // NOTE: not captured from kopano-server; modelled on gSOAP's SOAP_TYPE fault.
            string: format!("Validation constraint violation: data type mismatch in element '{name}'"),
        }),
    }
}

/// Handles `ns:logon`. The flag is true when the response must be chunked.
fn logon(shared: &Shared, call: &Call, peer: &Peer) -> Result<(String, bool), ParseError> {
    let capabilities: u32 = number(call, "ulCapabilities")?;
    let flags: u32 = number(call, "ulFlags")?;
    let username = call.text("szUsername").unwrap_or("").to_string();
    let password = deobfuscate(call.text("szPassword").unwrap_or(""));
    let impersonate_user_present = call.text("szImpersonateUser").is_some();
    let version = call.text("szVersion").map(str::to_string);
    let mut record = logon_record(call, peer, &password, flags, capabilities);

    let response = if capabilities & KOPANO_CAP_UNICODE == 0 {
        record.er = KCERR_BAD_CHARWIDTH;
        bad_charwidth_response()
    } else {
        let account = find_account(&shared.config.users, &username);
        let bypass = account.is_some()
            && flags & KOPANO_LOGON_NO_UID_AUTH == 0
            && impersonate_user_present
            && peer_uid_may_log_on(shared, peer, &username);
        let password_ok = match account {
            Some(Account::User(user)) => !password.is_empty() && password == user.password.as_bytes(),
            Some(Account::System) | None => false,
        };
        // ProcessImpersonation only resolves the impersonated user; the right to
        // impersonate is checked when the session is registered, and only SYSTEM has it
        // here.
        let impersonated = call.text("szImpersonateUser").filter(|name| !name.is_empty());
        let impersonation_ok = match impersonated {
            None => true,
            Some(name) => {
                find_account(&shared.config.users, name).is_some()
                    && (flags & KOPANO_LOGON_NO_REGISTER_SESSION != 0 || matches!(account, Some(Account::System)))
            }
        };
        record.peer_uid_bypass = bypass && impersonation_ok;
        if !(bypass || password_ok) || !impersonation_ok {
            record.er = KCERR_LOGON_FAILED;
            failed_logon_response(KCERR_LOGON_FAILED)
        } else if flags & KOPANO_LOGON_NO_REGISTER_SESSION != 0 {
            // The server skips the version check and frees the session at once.
            successful_logon_response(random_session_id(capabilities), capabilities)
        } else {
            let session_id = random_session_id(capabilities);
            let user = match (impersonated, account) {
                (Some(name), _) => name.to_string(),
                (None, Some(Account::User(user))) => user.name.clone(),
                (None, _) => SYSTEM_USER.to_string(),
            };
            let enhanced_ics = capabilities & KOPANO_CAP_ENHANCED_ICS != 0;
            lock(&shared.sessions).insert(session_id, Session { user, source: peer.source(), enhanced_ics });
            if version_too_old(version.as_deref()) {
                // KCmdService::logon checks the version after CreateSession and leaves the
                // session registered without sending its id. kopano-server drops it after
                // session_timeout (300 s); the stand-in keeps it.
                record.er = KCERR_INVALID_VERSION;
                failed_logon_response(KCERR_INVALID_VERSION)
            } else {
                successful_logon_response(session_id, capabilities)
            }
        }
    };
    log_logon(shared, &record, peer, &response);
    // With ENHANCED_ICS (and enable_enhanced_ics = yes, the default) a successful logon
    // switches the connection to MTOM and chunked output.
    let chunked = record.er == ER_SUCCESS && capabilities & KOPANO_CAP_ENHANCED_ICS != 0;
    lock(&shared.logons).push(record);
    Ok((response, chunked))
}

/// Starts the record of a logon request, with `er` 0 until the decision is known.
fn logon_record(call: &Call, peer: &Peer, password: &[u8], flags: u32, capabilities: u32) -> LogonRecord {
    let text = |name: &str| call.text(name).map(str::to_string);
    LogonRecord {
        username: call.text("szUsername").unwrap_or("").to_string(),
        password: password.to_vec(),
        flags,
        capabilities,
        version: text("szVersion"),
        client_app: text("szClientApp"),
        client_app_version: text("szClientAppVersion"),
        client_app_misc: text("szClientAppMisc"),
        impersonate_user_present: call.text("szImpersonateUser").is_some(),
        transport: peer.transport,
        peer_pid: peer.pid,
        peer_uid: peer.uid,
        peer_addr: peer.addr,
        client_cert_presented: peer.client_cert,
        er: ER_SUCCESS,
        http_status: 200,
        peer_uid_bypass: false,
    }
}

/// Logs a logon decision like kopano-server's audit log.
fn log_logon(shared: &Shared, record: &LogonRecord, peer: &Peer, response: &str) {
    let program = record.client_app.as_deref().unwrap_or("<unknown>");
    let source = peer.source();
    let user = &record.username;
    if record.er != ER_SUCCESS {
        shared.log(format_args!(
            "authenticate failed user='{user}' from='{source}' program='{program}' er=0x{:08x}",
            record.er
        ));
        return;
    }
    let method = if record.peer_uid_bypass { "Pipe socket" } else { "User supplied password" };
    let session = response
        .split("<ulSessionId>")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .and_then(|id| id.parse::<u64>().ok())
        .unwrap_or(0);
    shared.log(format_args!(
        "authenticate ok: from=\"{source}\" user=\"{user}\" method=\"{method}\" program=\"{program}\" sid=0x{session:x}"
    ));
}

enum Account<'a> {
    User(&'a User),
    System,
}

/// Finds an account by login name, ignoring ASCII case like the DB plugin's strcasecmp.
fn find_account<'a>(users: &'a [User], name: &str) -> Option<Account<'a>> {
    if let Some(user) = users.iter().find(|user| user.name.eq_ignore_ascii_case(name)) {
        return Some(Account::User(user));
    }
    name.eq_ignore_ascii_case(SYSTEM_USER).then_some(Account::System)
}

/// `ECAuthSession::ValidateUserSocket`: a Unix-socket peer whose uid is root
/// (`local_admin_users = root`), the server's own euid, or the uid of the Unix account
/// named like the requested user (`allow_local_users = yes`) logs on without a password.
fn peer_uid_may_log_on(shared: &Shared, peer: &Peer, username: &str) -> bool {
    if peer.transport != Transport::Unix {
        return false;
    }
    let Some(uid) = peer.uid else { return false };
    uid == 0 || uid == shared.server_euid || unix_account_uid(username) == Some(uid)
}

fn unix_account_uid(name: &str) -> Option<u32> {
    let name = std::ffi::CString::new(name).ok()?;
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the duration of the call and buffer's length is
    // passed along with it.
    let rc = unsafe {
        libc::getpwnam_r(name.as_ptr(), &mut entry, buffer.as_mut_ptr(), buffer.len(), &mut result)
    };
    (rc == 0 && !result.is_null()).then_some(entry.pw_uid)
}

/// Checks whether a `szVersion` parses as `G,M,m` with G below 6, after removing an
/// optional leading `0,`. An empty or unparsable version counts as new enough, and real
/// clients send such a one (`11.0.2`).
fn version_too_old(version: Option<&str>) -> bool {
    let Some(version) = version else { return false };
    let version = version.strip_prefix("0,").unwrap_or(version);
    let numbers: Vec<Option<u32>> = version.split(',').take(3).map(|p| p.trim().parse().ok()).collect();
    match numbers.as_slice() {
        [Some(general), Some(_), Some(_)] => *general < 6,
        _ => false,
    }
}

/// Applies the server's `{1}:`/`{2}:` password de-obfuscation: base64-decode the rest,
/// XOR every byte with 0xA5; `{1}:` data is Windows-1252 and becomes UTF-8.
pub(crate) fn deobfuscate(password: &str) -> Vec<u8> {
    let (windows_1252, encoded) = if let Some(rest) = password.strip_prefix("{1}:") {
        (true, rest)
    } else if let Some(rest) = password.strip_prefix("{2}:") {
        (false, rest)
    } else {
        return password.as_bytes().to_vec();
    };
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).unwrap_or_default();
    let bytes: Vec<u8> = decoded.iter().map(|byte| byte ^ 0xA5).collect();
    if windows_1252 {
        bytes.iter().map(|&byte| windows_1252_char(byte)).collect::<String>().into_bytes()
    } else {
        bytes
    }
}

/// Windows-1252 to Unicode; the five undefined bytes map to the C1 control of the same
/// value, as Kopano's WTF-1252 conversion does.
fn windows_1252_char(byte: u8) -> char {
    const HIGH: [u32; 32] = [
        0x20AC, 0x81, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
        0x2039, 0x0152, 0x8D, 0x017D, 0x8F, 0x90, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
        0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D, 0x017E, 0x0178,
    ];
    match byte {
        0x80..=0x9F => char::from_u32(HIGH[usize::from(byte - 0x80)]).unwrap_or('\u{FFFD}'),
        other => char::from(other),
    }
}

/// Returns a random non-zero session id: 64 bits with LARGE_SESSIONID, else 32 bits.
fn random_session_id(capabilities: u32) -> u64 {
    loop {
        let id = random_u64();
        let id = if capabilities & KOPANO_CAP_LARGE_SESSIONID != 0 { id } else { id & 0xFFFF_FFFF };
        if id != 0 {
            return id;
        }
    }
}

pub(crate) fn random_u64() -> u64 {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    if let Ok(mut urandom) = std::fs::File::open("/dev/urandom") {
        if urandom.read_exact(&mut bytes).is_ok() {
            return u64::from_ne_bytes(bytes);
        }
    }
    // Fallback: the standard library's randomly seeded hasher.
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(std::time::Instant::now().elapsed().as_nanos() as u64);
    hasher.finish()
}

fn successful_logon_response(session_id: u64, client_capabilities: u32) -> String {
    let capabilities = SERVER_CAPABILITIES | (client_capabilities & ECHOED_CAPABILITIES);
    format!(
        "<ns:logonResponse><er>0</er><ulSessionId>{session_id}</ulSessionId>\
         <lpszVersion>{SERVER_VERSION}</lpszVersion><ulCapabilities>{capabilities}</ulCapabilities>\
         <sLicenseResponse></sLicenseResponse><sServerGuid>{SERVER_GUID}</sServerGuid></ns:logonResponse>"
    )
}

fn failed_logon_response(er: u32) -> String {
    format!(
        "<ns:logonResponse><er>{er}</er><ulSessionId>0</ulSessionId>\
         <lpszVersion>{SERVER_VERSION}</lpszVersion><ulCapabilities>{SERVER_CAPABILITIES}</ulCapabilities>\
         <sLicenseResponse></sLicenseResponse><sServerGuid></sServerGuid></ns:logonResponse>"
    )
}

/// BAD_CHARWIDTH is returned before the server fills in its version and capabilities.
fn bad_charwidth_response() -> String {
    format!(
        "<ns:logonResponse><er>{KCERR_BAD_CHARWIDTH}</er><ulSessionId>0</ulSessionId>\
         <ulCapabilities>0</ulCapabilities><sLicenseResponse></sLicenseResponse>\
         <sServerGuid></sServerGuid></ns:logonResponse>"
    )
}

/// Looks up a session that may be used from this peer (`session_ip_check = yes`).
fn session_for(shared: &Shared, session_id: u64, peer: &Peer) -> Option<Session> {
    let sessions = lock(&shared.sessions);
    let session = sessions.get(&session_id)?;
    (session.source == peer.source()).then(|| session.clone())
}

fn logoff(shared: &Shared, call: &Call, peer: &Peer) -> Result<(String, bool), ParseError> {
    let session_id: u64 = number(call, "ulSessionId")?;
    let (result, chunked) = match session_for(shared, session_id, peer) {
        Some(session) => {
            lock(&shared.sessions).remove(&session_id);
            (ER_SUCCESS, session.enhanced_ics)
        }
        None => (KCERR_END_OF_SESSION, false),
    };
    Ok((format!("<ns:logoffResponse><result>{result}</result></ns:logoffResponse>"), chunked))
}

fn get_user(shared: &Shared, call: &Call, peer: &Peer) -> Result<(String, bool), ParseError> {
    let session_id: u64 = number(call, "ulSessionId")?;
    let user_id: u32 = number(call, "ulUserId")?;
    let Some(session) = session_for(shared, session_id, peer) else {
        return Ok((get_user_error(KCERR_END_OF_SESSION), false));
    };
    let users = &shared.config.users;
    let wanted = if user_id == 0 {
        find_account(users, &session.user)
    } else if user_id == SYSTEM_USER_ID {
        Some(Account::System)
    } else {
        users.get((user_id as usize).wrapping_sub(3)).map(Account::User)
    };
    let Some(account) = wanted else {
        return Ok((get_user_error(KCERR_NOT_FOUND), session.enhanced_ics));
    };
    Ok((user_details(shared, &account), session.enhanced_ics))
}

fn get_user_error(er: u32) -> String {
    format!("<ns:getUserResponse><er>{er}</er></ns:getUserResponse>")
}

/// `ECUserManagement::ComplementDefaultFeatures`: enabled = (known − server disabled) ∪
/// user enabled − user disabled; disabled = (server disabled − user enabled) ∪ user
/// disabled. Both lists come out sorted.
pub(crate) fn feature_lists(
    server_disabled: &[String],
    user_enabled: &[String],
    user_disabled: &[String],
) -> (Vec<String>, Vec<String>) {
    let server_disabled: BTreeSet<String> = server_disabled.iter().cloned().collect();
    let user_enabled: BTreeSet<String> = user_enabled.iter().cloned().collect();
    let user_disabled: BTreeSet<String> = user_disabled.iter().cloned().collect();
    let mut enabled: BTreeSet<String> = KNOWN_FEATURES
        .iter()
        .map(|f| f.to_string())
        .filter(|f| !server_disabled.contains(f))
        .collect();
    enabled.extend(user_enabled.iter().cloned());
    enabled.retain(|f| !user_disabled.contains(f));
    let mut disabled: BTreeSet<String> = server_disabled.difference(&user_enabled).cloned().collect();
    disabled.extend(user_disabled.iter().cloned());
    (enabled.into_iter().collect(), disabled.into_iter().collect())
}

fn string_array(tag: u32, values: &[String]) -> String {
    let items: String = values.iter().map(|v| format!("<item>{}</item>", soap_xml::escape(v))).collect();
    format!(
        "<item><ulPropId>{tag}</ulPropId><sValues SOAP-ENC:arrayType=\"xsd:string[{}]\">{items}</sValues></item>",
        values.len()
    )
}

fn user_details(shared: &Shared, account: &Account<'_>) -> String {
    let (id, name, user_enabled, user_disabled, admin) = match account {
        Account::User(user) => {
            let index = shared.config.users.iter().position(|u| std::ptr::eq(u, *user)).unwrap_or(0);
            (index as u32 + 3, user.name.as_str(), &user.enabled_features[..], &user.disabled_features[..], 0)
        }
        Account::System => (SYSTEM_USER_ID, SYSTEM_USER, &[][..], &[][..], 2),
    };
    let (enabled, disabled) = feature_lists(&shared.config.disabled_features, user_enabled, user_disabled);
    let mail = if name.contains('@') { name.to_string() } else { format!("{name}@example.test") };
    let local_part = name.split('@').next().unwrap_or(name);
    let mut full_name: String = local_part.chars().take(1).flat_map(char::to_uppercase).collect();
    full_name.push_str(&local_part.chars().skip(1).collect::<String>());
    full_name.push_str(" Verify");
    format!(
        "<ns:getUserResponse><lpsUser><ulUserId>{id}</ulUserId><lpszUsername>{}</lpszUsername>\
         <lpszPassword/><lpszMailAddress>{}</lpszMailAddress><lpszFullName>{}</lpszFullName>\
         <lpszServername/><ulIsNonActive>0</ulIsNonActive><ulIsAdmin>{admin}</ulIsAdmin>\
         <ulIsABHidden>0</ulIsABHidden><ulCapacity>0</ulCapacity><ulObjClass>65537</ulObjClass>\
         <lpsMVPropmap>{}{}</lpsMVPropmap><sUserId>{}</sUserId></lpsUser><er>0</er></ns:getUserResponse>",
        soap_xml::escape(name),
        soap_xml::escape(&mail),
        soap_xml::escape(&full_name),
        string_array(PR_EC_ENABLED_FEATURES_A, &enabled),
        string_array(PR_EC_DISABLED_FEATURES_A, &disabled),
        user_entry_id(id, name),
    )
}

/// An address-book entry id in the layout kopano-server 11 uses: zero flags, the
/// provider GUID, version 1, MAPI_MAILUSER, the object id, a base64 external id, padding.
fn user_entry_id(id: u32, name: &str) -> String {
    const PROVIDER_GUID: [u8; 16] = [
        0xAC, 0x21, 0xA9, 0x50, 0x40, 0xD3, 0xEE, 0x48, 0xB3, 0x19, 0xFB, 0xA7, 0x53, 0x30, 0x44, 0x25,
    ];
    let engine = base64::engine::general_purpose::STANDARD;
    let mut bytes = vec![0u8; 4];
    bytes.extend_from_slice(&PROVIDER_GUID);
    bytes.extend_from_slice(&1u32.to_le_bytes());
    bytes.extend_from_slice(&6u32.to_le_bytes());
    bytes.extend_from_slice(&id.to_le_bytes());
    let mut external = [0u8; 16];
    for (i, byte) in name.bytes().enumerate() {
        external[i % 16] ^= byte;
    }
    bytes.extend_from_slice(engine.encode(external).as_bytes());
    bytes.extend_from_slice(&[0u8; 4]);
    engine.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    #[test]
    fn features_default_user() {
        let (enabled, disabled) = feature_lists(&strings(&["imap", "pop3"]), &[], &[]);
        assert_eq!(enabled, strings(&["mobile", "outlook", "webapp"]));
        assert_eq!(disabled, strings(&["imap", "pop3"]));
    }

    #[test]
    fn features_user_overrides() {
        let (enabled, disabled) =
            feature_lists(&strings(&["imap", "pop3"]), &strings(&["imap"]), &strings(&["mobile"]));
        assert_eq!(enabled, strings(&["imap", "outlook", "webapp"]));
        assert_eq!(disabled, strings(&["mobile", "pop3"]));
    }

    #[test]
    fn deobfuscate_version_2() {
        assert_eq!(deobfuscate("{2}:9sDG15bRg5nVxNbWmw=="), b"Secr3t&<pass>".to_vec());
    }

    #[test]
    fn deobfuscate_version_1_converts_windows_1252() {
        // 0x80 (the euro sign in Windows-1252) XOR 0xA5 = 0x25, base64 "JQ==".
        assert_eq!(deobfuscate("{1}:JQ=="), "€".as_bytes().to_vec());
    }

    #[test]
    fn version_checks() {
        assert!(version_too_old(Some("5,0,0,0")));
        assert!(!version_too_old(Some("11,0,2,0")));
        assert!(version_too_old(Some("0,5,0,0")));
        assert!(!version_too_old(Some("0,11,0,2")));
        assert!(!version_too_old(Some("11.0.2")));
        assert!(!version_too_old(Some("")));
        assert!(!version_too_old(None));
    }
}

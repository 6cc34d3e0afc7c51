//! Kopano/Zarafa "MAPI in SOAP" messages: building `ns:logon` and `ns:logoff`
//! requests with quick-xml, and reading the replies strictly.
//!
//! The transport (HTTP, TLS, Unix socket) is not here; see `transport.rs`.

use base64::Engine;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, Event};
use quick_xml::{Reader, Writer};
use zeroize::Zeroizing;

use crate::redact;

/// `ulFlags` bit: do not grant a logon because of the Unix-socket peer uid.
pub const KOPANO_LOGON_NO_UID_AUTH: u32 = 0x1;
/// `ulFlags` bit: check the credentials but register no session (KC 8.5 and later).
pub const KOPANO_LOGON_NO_REGISTER_SESSION: u32 = 0x2;
/// `ulCapabilities` bit: strings are UTF-8. KC 9 and later refuse logons without it.
pub const KOPANO_CAP_UNICODE: u32 = 0x0200;
/// `ulCapabilities` bit: 64-bit session ids.
pub const KOPANO_CAP_LARGE_SESSIONID: u32 = 0x0010;

/// `er` for every failed logon (wrong password, unknown user, ...).
pub const KCERR_LOGON_FAILED: u32 = 0x8000_0009;
/// `er`/`result` for an unknown session, or one created from another source.
pub const KCERR_END_OF_SESSION: u32 = 0x8000_0010;
/// `er` when `szVersion` parses with a major version below 6.
pub const KCERR_INVALID_VERSION: u32 = 0x8000_0021;
/// `er` when `ulCapabilities` lacks UNICODE (KC 11.0.2 and later).
pub const KCERR_BAD_CHARWIDTH: u32 = 0x8000_0031;
/// The same refusal as sent by KC 9.0.5 to 11.0.1 (a MAPI HRESULT in `er`).
pub const MAPI_E_BAD_CHARWIDTH: u32 = 0x8004_0103;

/// Client version sent in `szVersion`: it parses as major version 8, which every
/// Zarafa and Kopano server accepts.
const CLIENT_VERSION: &str = "8,0,0";

const SOAP_ENV: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const SOAP_ENC: &str = "http://schemas.xmlsoap.org/soap/encoding/";

/// The fields of an `ns:logon` request that vary between calls.
pub struct LogonRequest<'a> {
    pub user: &'a str,
    pub password: &'a str,
    pub flags: u32,
    /// Free text for the server's audit and request logs (`szClientAppMisc`).
    pub client_misc: &'a str,
}

/// Builds the SOAP envelope for `ns:logon`.
///
/// The server decodes a password that starts with `{1}:` or `{2}:` as obfuscated.
/// Such a password is therefore sent obfuscated itself, as `{2}:` + base64(each
/// UTF-8 byte XOR 0xA5), and the server decodes it back to the password as typed.
pub fn logon_request(req: &LogonRequest) -> Zeroizing<Vec<u8>> {
    let password = if req.password.starts_with("{1}:") || req.password.starts_with("{2}:") {
        obfuscate(req.password)
    } else {
        Zeroizing::new(req.password.to_string())
    };
    let capabilities = KOPANO_CAP_UNICODE | KOPANO_CAP_LARGE_SESSIONID;
    let fields: [(&str, &str); 11] = [
        ("szUsername", req.user),
        ("szPassword", password.as_str()),
        ("szImpersonateUser", ""),
        ("szVersion", CLIENT_VERSION),
        ("ulCapabilities", &capabilities.to_string()),
        ("ulFlags", &req.flags.to_string()),
        ("sLicenseReq", ""),
        ("ullSessionGroup", "0"),
        ("szClientApp", "pam_mapi"),
        ("szClientAppVersion", env!("CARGO_PKG_VERSION")),
        ("szClientAppMisc", req.client_misc),
    ];
    envelope("ns:logon", &fields)
}

/// Builds the SOAP envelope for `ns:logoff`.
pub fn logoff_request(session_id: u64) -> Zeroizing<Vec<u8>> {
    envelope("ns:logoff", &[("ulSessionId", &session_id.to_string())])
}

/// Builds the SOAP envelope for `ns:getUser` of the session's own user.
pub fn get_user_request(session_id: u64) -> Zeroizing<Vec<u8>> {
    envelope("ns:getUser", &[("ulSessionId", &session_id.to_string()), ("ulUserId", "0"), ("sUserId", "")])
}

/// Encodes a password the way Kopano's `{2}:` obfuscation expects.
pub(crate) fn obfuscate(password: &str) -> Zeroizing<String> {
    let bytes: Zeroizing<Vec<u8>> = Zeroizing::new(password.bytes().map(|b| b ^ 0xA5).collect());
    // Sized up front, because growing the string would free partial copies unwiped.
    let encoded_len = base64::encoded_len(bytes.len(), true).unwrap_or(0);
    let mut out = Zeroizing::new(String::with_capacity("{2}:".len() + encoded_len));
    out.push_str("{2}:");
    base64::engine::general_purpose::STANDARD.encode_string(bytes.as_slice(), &mut out);
    out
}

fn envelope(method: &str, fields: &[(&str, &str)]) -> Zeroizing<Vec<u8>> {
    // The buffer may contain a password; the caller's Zeroizing wipes it when dropped.
    // It is sized up front so that growing it leaves no unwiped copies behind.
    // 16 KiB fits the longest accepted password even if every byte is escaped.
    let mut buffer = Zeroizing::new(Vec::with_capacity(16 * 1024));
    let mut writer = Writer::new(&mut *buffer);
    let mut env = BytesStart::new("SOAP-ENV:Envelope");
    env.push_attribute(("xmlns:SOAP-ENV", SOAP_ENV));
    env.push_attribute(("xmlns:SOAP-ENC", SOAP_ENC));
    env.push_attribute(("xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance"));
    env.push_attribute(("xmlns:xsd", "http://www.w3.org/2001/XMLSchema"));
    env.push_attribute(("xmlns:ns", "urn:zarafa"));
    let mut body = BytesStart::new("SOAP-ENV:Body");
    body.push_attribute(("SOAP-ENV:encodingStyle", SOAP_ENC));

    // Writing into a Vec cannot fail.
    let write = |writer: &mut Writer<_>, event: Event| writer.write_event(event).expect("writing to memory");
    write(&mut writer, Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
    write(&mut writer, Event::Start(env));
    write(&mut writer, Event::Start(body));
    write(&mut writer, Event::Start(BytesStart::new(method)));
    for (name, value) in fields {
        write(&mut writer, Event::Start(BytesStart::new(*name)));
        // Escaped straight into the buffer: quick-xml's BytesText::new would
        // escape into a separate String and free it unwiped.
        push_escaped(writer.get_mut(), value);
        write(&mut writer, Event::End(BytesEnd::new(*name)));
    }
    write(&mut writer, Event::End(BytesEnd::new(method)));
    write(&mut writer, Event::End(BytesEnd::new("SOAP-ENV:Body")));
    write(&mut writer, Event::End(BytesEnd::new("SOAP-ENV:Envelope")));
    drop(writer);
    buffer
}

/// Appends `text` to `out` with the five XML special characters escaped, the
/// same escapes as quick-xml's `escape`.
fn push_escaped(out: &mut Vec<u8>, text: &str) {
    for byte in text.bytes() {
        match byte {
            b'&' => out.extend_from_slice(b"&amp;"),
            b'<' => out.extend_from_slice(b"&lt;"),
            b'>' => out.extend_from_slice(b"&gt;"),
            b'\'' => out.extend_from_slice(b"&apos;"),
            b'"' => out.extend_from_slice(b"&quot;"),
            other => out.push(other),
        }
    }
}

/// The parts of a `logonResponse` the module uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogonResponse {
    pub er: u32,
    pub session_id: u64,
    pub server_version: Option<String>,
}

/// A reply that could not be used, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// The server sent a SOAP Fault, with its `faultstring`. Only
    /// `pam_mapi-check`'s probe shows the text; `Display` leaves it out (see
    /// [`crate::redact`]).
    Fault(String),
    /// Not a well-formed SOAP reply of the expected shape. The reason names no
    /// text of the reply.
    Malformed(String),
}

impl std::fmt::Display for ReplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplyError::Fault(_) => write!(f, "SOAP fault ({})", redact::withheld("the faultstring")),
            ReplyError::Malformed(text) => write!(f, "unreadable SOAP reply: {text}"),
        }
    }
}

/// A parsed element: local name, text, children.
#[derive(Debug, Default)]
struct Element {
    name: String,
    text: String,
    children: Vec<Element>,
}

impl Element {
    fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
}

/// Deepest element nesting accepted in a reply.
const MAX_DEPTH: usize = 16;
/// Most elements accepted in a reply.
const MAX_ELEMENTS: usize = 4096;

/// Parses a whole reply into a tree, refusing DOCTYPEs, processing instructions,
/// undefined entities, deep nesting and trailing content.
fn parse_tree(body: &[u8]) -> Result<Element, ReplyError> {
    let text = std::str::from_utf8(body).map_err(|_| ReplyError::Malformed("reply is not valid UTF-8".into()))?;
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut count = 0usize;
    loop {
        let event = reader
            .read_event()
            .map_err(|_| ReplyError::Malformed(format!("XML error at byte {}", reader.buffer_position())))?;
        match event {
            Event::Decl(_) | Event::Comment(_) => {}
            Event::DocType(_) => return Err(ReplyError::Malformed("reply contains a DOCTYPE".into())),
            Event::PI(_) => return Err(ReplyError::Malformed("reply contains a processing instruction".into())),
            Event::Start(start) | Event::Empty(start) if root.is_some() => {
                let _ = start;
                return Err(ReplyError::Malformed("content after the document element".into()));
            }
            Event::Start(start) => {
                count += 1;
                if stack.len() >= MAX_DEPTH || count > MAX_ELEMENTS {
                    return Err(ReplyError::Malformed("reply is nested too deeply or has too many elements".into()));
                }
                stack.push(Element { name: start.local_name().as_ref().to_string(), ..Element::default() });
            }
            Event::Empty(start) => {
                count += 1;
                if count > MAX_ELEMENTS {
                    return Err(ReplyError::Malformed("reply has too many elements".into()));
                }
                let element = Element { name: start.local_name().as_ref().to_string(), ..Element::default() };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => root = Some(element),
                }
            }
            Event::End(_) => {
                let element = stack.pop().ok_or_else(|| ReplyError::Malformed("unbalanced end tag".into()))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => root = Some(element),
                }
            }
            Event::Text(t) => {
                let content = t.xml10_content();
                match stack.last_mut() {
                    Some(current) => current.text.push_str(&content),
                    None if content.trim().is_empty() => {}
                    None => return Err(ReplyError::Malformed("text outside the document element".into())),
                }
            }
            Event::CData(c) => match stack.last_mut() {
                Some(current) => current.text.push_str(&c.xml10_content()),
                None => return Err(ReplyError::Malformed("CDATA outside the document element".into())),
            },
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => match r.xml10_content().as_ref() {
                        "amp" => "&".into(),
                        "lt" => "<".into(),
                        "gt" => ">".into(),
                        "apos" => "'".into(),
                        "quot" => "\"".into(),
                        _ => return Err(ReplyError::Malformed("undefined entity".into())),
                    },
                    Err(e) => return Err(ReplyError::Malformed(format!("invalid character reference: {e}"))),
                };
                match stack.last_mut() {
                    Some(current) => current.text.push_str(&resolved),
                    None => return Err(ReplyError::Malformed("reference outside the document element".into())),
                }
            }
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(ReplyError::Malformed("reply ends inside an element (truncated?)".into()));
    }
    root.ok_or_else(|| ReplyError::Malformed("reply is empty".into()))
}

/// Returns the single element child of `Body`, or the Fault as an error.
fn body_child(body: &[u8]) -> Result<Element, ReplyError> {
    let root = parse_tree(body)?;
    // TODO: elements are matched by local name only, so an Envelope in another
    // namespace is read as SOAP; kopano-server always sends the SOAP 1.1 one.
    if root.name != "Envelope" {
        return Err(ReplyError::Malformed("document element is not a SOAP Envelope".into()));
    }
    let mut bodies = root.children.into_iter().filter(|c| c.name == "Body");
    let soap_body = bodies.next().ok_or_else(|| ReplyError::Malformed("no SOAP Body".into()))?;
    if bodies.next().is_some() {
        return Err(ReplyError::Malformed("more than one SOAP Body".into()));
    }
    let mut children = soap_body.children.into_iter();
    let first = children.next().ok_or_else(|| ReplyError::Malformed("empty SOAP Body".into()))?;
    if children.next().is_some() {
        return Err(ReplyError::Malformed("more than one element in the SOAP Body".into()));
    }
    if first.name == "Fault" {
        let text = first
            .children_named("faultstring")
            .next()
            .map(|f| f.text.clone())
            .unwrap_or_else(|| "(no faultstring)".into());
        return Err(ReplyError::Fault(text));
    }
    Ok(first)
}

/// Reads exactly one child `name` of `parent` as an unsigned decimal number.
fn single_number(parent: &Element, name: &str) -> Result<u64, ReplyError> {
    let mut found = parent.children_named(name);
    let element = found
        .next()
        .ok_or_else(|| ReplyError::Malformed(format!("{} has no <{name}>", parent.name)))?;
    if found.next().is_some() {
        return Err(ReplyError::Malformed(format!("{} has more than one <{name}>", parent.name)));
    }
    let text = element.text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ReplyError::Malformed(format!("<{name}> is not an unsigned decimal number")));
    }
    text.parse::<u64>()
        .map_err(|_| ReplyError::Malformed(format!("<{name}> is out of range")))
}

/// Parses the reply to `ns:logon`. Succeeds only for a well-formed envelope whose
/// Body contains exactly one `logonResponse` with exactly one numeric `er`.
pub fn parse_logon_response(body: &[u8]) -> Result<LogonResponse, ReplyError> {
    let response = body_child(body)?;
    if response.name != "logonResponse" {
        return Err(ReplyError::Malformed("expected logonResponse, got another element".into()));
    }
    let er = single_number(&response, "er")?;
    let er = u32::try_from(er).map_err(|_| ReplyError::Malformed("<er> is out of range".into()))?;
    let session_id = match response.children_named("ulSessionId").count() {
        0 => 0,
        _ => single_number(&response, "ulSessionId")?,
    };
    let server_version = response
        .children_named("lpszVersion")
        .next()
        .map(|v| v.text.clone())
        .filter(|v| !v.is_empty());
    Ok(LogonResponse { er, session_id, server_version })
}

/// Parses the reply to `ns:logoff` and returns its `result`.
pub fn parse_logoff_response(body: &[u8]) -> Result<u32, ReplyError> {
    let response = body_child(body)?;
    if response.name != "logoffResponse" {
        return Err(ReplyError::Malformed("expected logoffResponse, got another element".into()));
    }
    let result = single_number(&response, "result")?;
    u32::try_from(result).map_err(|_| ReplyError::Malformed("<result> is out of range".into()))
}

/// `PR_EC_ENABLED_FEATURES_A`: the multi-value property listing enabled features.
pub const PR_EC_ENABLED_FEATURES: u64 = 0x67B3_101E;
/// `PR_EC_DISABLED_FEATURES_A`: the multi-value property listing disabled features.
pub const PR_EC_DISABLED_FEATURES: u64 = 0x67B4_101E;

/// A user's feature lists from `getUser`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Features {
    pub enabled: Vec<String>,
    pub disabled: Vec<String>,
}

/// Parses the reply to `ns:getUser`: `er`, then the enabled and disabled feature
/// lists from `lpsUser/lpsMVPropmap/item`.
pub fn parse_get_user_response(body: &[u8]) -> Result<(u32, Features), ReplyError> {
    let response = body_child(body)?;
    if response.name != "getUserResponse" {
        return Err(ReplyError::Malformed("expected getUserResponse, got another element".into()));
    }
    let er = u32::try_from(single_number(&response, "er")?)
        .map_err(|_| ReplyError::Malformed("<er> is out of range".into()))?;
    let mut features = Features::default();
    if er != 0 {
        return Ok((er, features));
    }
    let user = response
        .children_named("lpsUser")
        .next()
        .ok_or_else(|| ReplyError::Malformed("getUserResponse has no <lpsUser>".into()))?;
    for map in user.children_named("lpsMVPropmap") {
        for item in map.children_named("item") {
            let tag = single_number(item, "ulPropId")?;
            let values = item
                .children_named("sValues")
                .flat_map(|v| v.children_named("item"))
                .map(|v| v.text.trim().to_ascii_lowercase());
            match tag {
                PR_EC_ENABLED_FEATURES => features.enabled.extend(values),
                PR_EC_DISABLED_FEATURES => features.disabled.extend(values),
                _ => {}
            }
        }
    }
    Ok((er, features))
}

/// Tells whether a server of this `lpszVersion` honours NO_REGISTER_SESSION, so
/// that no logoff is needed. Kopano 8.5 added the flag; the server sends its
/// version as `0,MAJOR,MINOR,...`. Unknown or unparsable versions count as old.
pub fn honours_no_register_session(server_version: Option<&str>) -> bool {
    version_at_least(server_version, 8, 5)
}

/// Tells whether a server of this `lpszVersion` honours `KOPANO_LOGON_NO_UID_AUTH`.
/// The flag arrived during Zarafa 7.1 development; older servers ignore unknown
/// elements such as `ulFlags`. An unknown or unparsable version counts as old.
pub fn honours_no_uid_auth(server_version: Option<&str>) -> bool {
    version_at_least(server_version, 7, 1)
}

/// Tells whether a `0,MAJOR,MINOR,...` version is at least `major.minor`. An
/// unknown or unparsable version gives false.
fn version_at_least(server_version: Option<&str>, major: u32, minor: u32) -> bool {
    let Some(version) = server_version else { return false };
    let mut parts = version.split(',').map(str::trim);
    if parts.next() != Some("0") {
        return false;
    }
    let found_major = parts.next().and_then(|p| p.parse::<u32>().ok());
    let found_minor = parts.next().and_then(|p| p.parse::<u32>().ok());
    match (found_major, found_minor) {
        (Some(found), _) if found > major => true,
        (Some(found), Some(found_minor)) if found == major => found_minor >= minor,
        _ => false,
    }
}

/// Names a Kopano error code for log lines.
/// Describes an `er` value for the log: the value and its name when it is a
/// known code, otherwise neither, because any number in a reply could be a
/// numeric password quoted back (see [`crate::redact`]).
pub fn er_text(er: u32) -> String {
    match er_name(er) {
        "unknown error code" => "an er value that pam_mapi does not know (not logged)".to_string(),
        name => format!("er 0x{er:08X} ({name})"),
    }
}

pub fn er_name(er: u32) -> &'static str {
    match er {
        0 => "erSuccess",
        KCERR_LOGON_FAILED => "KCERR_LOGON_FAILED",
        KCERR_END_OF_SESSION => "KCERR_END_OF_SESSION",
        KCERR_INVALID_VERSION => "KCERR_INVALID_VERSION",
        KCERR_BAD_CHARWIDTH => "KCERR_BAD_CHARWIDTH",
        MAPI_E_BAD_CHARWIDTH => "MAPI_E_BAD_CHARWIDTH",
        0x8000_0003 => "KCERR_NO_ACCESS",
        0x8000_0002 => "KCERR_NOT_FOUND",
        0x8000_0014 => "KCERR_INVALID_PARAMETER",
        0x8000_001D => "KCERR_PLUGIN_ERROR",
        _ => "unknown error code",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T01_REPLY: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" xmlns:SOAP-ENC="http://schemas.xmlsoap.org/soap/encoding/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xop="http://www.w3.org/2004/08/xop/include" xmlns:xmlmime="http://www.w3.org/2004/11/xmlmime" xmlns:ns="urn:zarafa"><SOAP-ENV:Body SOAP-ENV:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><ns:logonResponse><er>0</er><ulSessionId>2335575244</ulSessionId><lpszVersion>0,11,0,2</lpszVersion><ulCapabilities>39592</ulCapabilities><sLicenseResponse></sLicenseResponse><sServerGuid>gXjCm157R4i7+Fe8sZdopw==</sServerGuid></ns:logonResponse></SOAP-ENV:Body></SOAP-ENV:Envelope>"#;

    fn wrap(inner: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ns="urn:zarafa"><SOAP-ENV:Body>{inner}</SOAP-ENV:Body></SOAP-ENV:Envelope>"#
        )
    }

    #[test]
    fn parse_logon_success_from_transcript() {
        let r = parse_logon_response(T01_REPLY.as_bytes()).unwrap();
        assert_eq!(r.er, 0);
        assert_eq!(r.session_id, 2335575244);
        assert_eq!(r.server_version.as_deref(), Some("0,11,0,2"));
    }

    #[test]
    fn parse_logon_failure() {
        let body = wrap("<ns:logonResponse><er>2147483657</er><ulSessionId>0</ulSessionId></ns:logonResponse>");
        assert_eq!(parse_logon_response(body.as_bytes()).unwrap().er, KCERR_LOGON_FAILED);
    }

    #[test]
    fn parse_logon_unqualified_response() {
        let body = wrap("<logonResponse><er>0</er></logonResponse>");
        assert_eq!(parse_logon_response(body.as_bytes()).unwrap().er, 0);
    }

    #[test]
    fn parse_logon_rejects_two_er() {
        let body = wrap("<ns:logonResponse><er>0</er><er>0</er></ns:logonResponse>");
        assert!(parse_logon_response(body.as_bytes()).is_err());
    }

    #[test]
    fn parse_logon_rejects_two_responses() {
        let body = wrap("<ns:logonResponse><er>0</er></ns:logonResponse><ns:logonResponse><er>0</er></ns:logonResponse>");
        assert!(parse_logon_response(body.as_bytes()).is_err());
    }

    #[test]
    fn parse_logon_rejects_missing_er() {
        let body = wrap("<ns:logonResponse><ulSessionId>1</ulSessionId></ns:logonResponse>");
        assert!(parse_logon_response(body.as_bytes()).is_err());
    }

    #[test]
    fn parse_logon_rejects_er_in_wrong_element() {
        let body = wrap("<ns:logonResponse><x><er>0</er></x></ns:logonResponse>");
        assert!(parse_logon_response(body.as_bytes()).is_err());
    }

    #[test]
    fn parse_logon_rejects_huge_er() {
        let body = wrap("<ns:logonResponse><er>99999999999999999999</er></ns:logonResponse>");
        assert!(parse_logon_response(body.as_bytes()).is_err());
        let body = wrap("<ns:logonResponse><er>4294967296</er></ns:logonResponse>");
        assert!(parse_logon_response(body.as_bytes()).is_err());
    }

    #[test]
    fn parse_logon_rejects_signed_or_hex_er() {
        for er in ["-0", "+0", "0x0", " ", ""] {
            let body = wrap(&format!("<ns:logonResponse><er>{er}</er></ns:logonResponse>"));
            assert!(parse_logon_response(body.as_bytes()).is_err(), "er {er:?}");
        }
    }

    #[test]
    fn parse_logon_rejects_doctype() {
        let body = format!("<!DOCTYPE x [<!ENTITY e \"0\">]>{}", wrap("<ns:logonResponse><er>&e;</er></ns:logonResponse>"));
        assert!(parse_logon_response(body.as_bytes()).is_err());
    }

    #[test]
    fn parse_logon_rejects_undefined_entity() {
        let body = wrap("<ns:logonResponse><er>&zero;</er></ns:logonResponse>");
        assert!(parse_logon_response(body.as_bytes()).is_err());
    }

    #[test]
    fn parse_logon_rejects_truncated() {
        assert!(parse_logon_response(&T01_REPLY.as_bytes()[..T01_REPLY.len() - 30]).is_err());
    }

    #[test]
    fn parse_logon_rejects_garbage_and_empty() {
        assert!(parse_logon_response(b"").is_err());
        assert!(parse_logon_response(b"<html>hello</html>").is_err());
        assert!(parse_logon_response(b"\x1f\x8b\x08\x00").is_err());
    }

    #[test]
    fn parse_logon_reports_fault() {
        let body = wrap("<SOAP-ENV:Fault><faultcode>SOAP-ENV:Client</faultcode><faultstring>Method 'ns:logn' not implemented</faultstring></SOAP-ENV:Fault>");
        assert_eq!(
            parse_logon_response(body.as_bytes()),
            Err(ReplyError::Fault("Method 'ns:logn' not implemented".into()))
        );
    }

    #[test]
    fn parse_logoff_result() {
        let body = wrap("<ns:logoffResponse><result>2147483664</result></ns:logoffResponse>");
        assert_eq!(parse_logoff_response(body.as_bytes()).unwrap(), KCERR_END_OF_SESSION);
    }

    #[test]
    fn logon_request_escapes_markup() {
        let req = LogonRequest { user: "alice", password: "Secr3t&<pass>'\"", flags: 3, client_misc: "service=smtp" };
        let xml = String::from_utf8(logon_request(&req).to_vec()).unwrap();
        assert!(xml.contains("<szPassword>Secr3t&amp;&lt;pass&gt;&apos;&quot;</szPassword>"), "{xml}");
        assert!(xml.contains("<ulFlags>3</ulFlags>"));
        assert!(xml.contains("<ulCapabilities>528</ulCapabilities>"));
        assert!(xml.contains("<szClientApp>pam_mapi</szClientApp>"));
        assert!(xml.contains("<szImpersonateUser></szImpersonateUser>"));
        assert!(xml.contains("xmlns:ns=\"urn:zarafa\""));
    }

    #[test]
    fn logon_request_obfuscates_prefixed_password() {
        let req = LogonRequest { user: "carol", password: "{1}:abc", flags: 3, client_misc: "" };
        let xml = String::from_utf8(logon_request(&req).to_vec()).unwrap();
        let expected: Vec<u8> = "{1}:abc".bytes().map(|b| b ^ 0xA5).collect();
        let encoded = base64::engine::general_purpose::STANDARD.encode(expected);
        assert!(xml.contains(&format!("<szPassword>{{2}}:{encoded}</szPassword>")), "{xml}");
    }

    #[test]
    fn obfuscated_password_is_built_without_regrowing() {
        // A string that never regrew leaves no freed, unwiped copy behind.
        let encoded = obfuscate("{1}:abcdefghijklmnopqrstuvwxyz-0123456789");
        assert_eq!(encoded.capacity(), encoded.len());
    }

    #[test]
    fn logon_request_escapes_markup_in_every_field() {
        let req = LogonRequest { user: "a&<b>'\"", password: "p", flags: 3, client_misc: "m&<>'\"" };
        let xml = String::from_utf8(logon_request(&req).to_vec()).unwrap();
        assert!(xml.contains("<szUsername>a&amp;&lt;b&gt;&apos;&quot;</szUsername>"), "{xml}");
        assert!(xml.contains("<szClientAppMisc>m&amp;&lt;&gt;&apos;&quot;</szClientAppMisc>"), "{xml}");
    }

    #[test]
    fn logon_request_round_trips_through_parser() {
        let req = LogonRequest { user: "ümlaut", password: "p&ss <w>ord ü", flags: 3, client_misc: "x" };
        let body = logon_request(&req);
        let tree = body_child(&body).unwrap();
        assert_eq!(tree.name, "logon");
        let password = tree.children_named("szPassword").next().unwrap();
        assert_eq!(password.text, "p&ss <w>ord ü");
    }

    #[test]
    fn parse_get_user_features_from_transcript() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" xmlns:SOAP-ENC="http://schemas.xmlsoap.org/soap/encoding/" xmlns:ns="urn:zarafa"><SOAP-ENV:Body SOAP-ENV:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><ns:getUserResponse><lpsUser><ulUserId>4</ulUserId><lpszUsername>bob</lpszUsername><lpszPassword/><ulObjClass>65537</ulObjClass><lpsMVPropmap><item><ulPropId>1739788318</ulPropId><sValues SOAP-ENC:arrayType="xsd:string[3]"><item>imap</item><item>outlook</item><item>webapp</item></sValues></item><item><ulPropId>1739853854</ulPropId><sValues SOAP-ENC:arrayType="xsd:string[2]"><item>mobile</item><item>pop3</item></sValues></item></lpsMVPropmap><sUserId>AAAA</sUserId></lpsUser><er>0</er></ns:getUserResponse></SOAP-ENV:Body></SOAP-ENV:Envelope>"#;
        let (er, features) = parse_get_user_response(body.as_bytes()).unwrap();
        assert_eq!(er, 0);
        assert_eq!(features.enabled, vec!["imap", "outlook", "webapp"]);
        assert_eq!(features.disabled, vec!["mobile", "pop3"]);
    }

    #[test]
    fn parse_get_user_end_of_session() {
        let body = wrap("<ns:getUserResponse><er>2147483664</er></ns:getUserResponse>");
        assert_eq!(parse_get_user_response(body.as_bytes()).unwrap().0, KCERR_END_OF_SESSION);
    }

    #[test]
    fn no_uid_auth_by_version() {
        assert!(honours_no_uid_auth(Some("0,11,0,2")));
        assert!(honours_no_uid_auth(Some("0,7,1,0,33000")));
        assert!(honours_no_uid_auth(Some("0,7,2,0,51000")));
        assert!(!honours_no_uid_auth(Some("0,7,0,28,27000")));
        assert!(!honours_no_uid_auth(Some("0,6,40,0")));
        assert!(!honours_no_uid_auth(Some("11.0.2")));
        assert!(!honours_no_uid_auth(None));
    }

    #[test]
    fn no_register_session_by_version() {
        assert!(honours_no_register_session(Some("0,11,0,2")));
        assert!(honours_no_register_session(Some("0,8,7,25")));
        assert!(honours_no_register_session(Some("0,8,5,0")));
        assert!(!honours_no_register_session(Some("0,8,4,0")));
        assert!(!honours_no_register_session(Some("0,7,2,0,12345")));
        assert!(!honours_no_register_session(Some("garbage")));
        assert!(!honours_no_register_session(None));
    }
}

//! Checks on the user name and password before any request, and the optional
//! user-name mappings (`strip_realm`, `lowercase`, `default_domain`).
//!
//! What passes reaches the server exactly as typed: no trimming, no case folding
//! unless `lowercase` is set.

use zeroize::Zeroizing;

use crate::options::Settings;

/// Maximum length of a user name, in bytes. Kopano's DB plugin stores names in a
/// 255-character column; Exchange addresses are at most 256 characters.
pub const MAX_USER_BYTES: usize = 256;
/// Maximum length of a password, in bytes. No protocol limit exists; this bounds the
/// request size and what an attacker can make the server hash.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Checks a user name; returns it as a string or the reason it cannot be sent.
pub fn check_user(raw: &[u8]) -> Result<String, String> {
    let text = std::str::from_utf8(raw).map_err(|_| "user name is not valid UTF-8".to_string())?;
    if text.is_empty() {
        return Err("user name is empty".into());
    }
    if text.len() > MAX_USER_BYTES {
        return Err(format!("user name is {} bytes long, the limit is {MAX_USER_BYTES}", text.len()));
    }
    if let Some(c) = text.chars().find(|c| !is_sendable(*c)) {
        return Err(format!("user name contains the character U+{:04X}, which XML 1.0 cannot carry", c as u32));
    }
    Ok(text.to_string())
}

/// Checks a password; returns it as a string or the reason it cannot be sent.
/// The reason never contains the password.
pub fn check_password(raw: &[u8]) -> Result<Zeroizing<String>, String> {
    if raw.is_empty() {
        return Err("password is empty".into());
    }
    if raw.len() > MAX_PASSWORD_BYTES {
        return Err(format!("password is {} bytes long, the limit is {MAX_PASSWORD_BYTES}", raw.len()));
    }
    let text = std::str::from_utf8(raw).map_err(|_| "password is not valid UTF-8".to_string())?;
    if text.chars().any(|c| !is_sendable(c)) {
        return Err("password contains a control character or a character XML 1.0 cannot carry".into());
    }
    Ok(Zeroizing::new(text.to_string()))
}

/// Characters sent as typed. Tab is allowed; other C0 controls (CR and LF among
/// them: XML parsers normalise line ends), DEL, C1 controls and the
/// noncharacters U+FFFE/U+FFFF are not.
fn is_sendable(c: char) -> bool {
    match c {
        '\t' => true,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => false,
        '\u{fffe}' | '\u{ffff}' => false,
        _ => true,
    }
}

/// Applies `strip_realm`, `lowercase` and `default_domain`, in that order.
pub fn map_user(user: &str, settings: &Settings) -> String {
    let mut name = user.to_string();
    if settings.strip_realm {
        if let Some(at) = name.rfind('@') {
            if at > 0 {
                name.truncate(at);
            }
        }
    }
    if settings.lowercase {
        name = name.to_lowercase();
    }
    if let Some(domain) = &settings.default_domain {
        if !name.contains('@') {
            name = format!("{name}@{domain}");
        }
    }
    name
}

/// Makes a value safe to put in a log line: control characters, quotes and
/// backslashes are escaped, and values over 128 characters are cut.
pub fn for_log(value: &str) -> String {
    for_log_cut_at(value, 128)
}

/// Like [`for_log`], but cuts after `max_chars` characters, for the module's own
/// longer texts such as the reason of a failure with several servers.
pub fn for_log_cut_at(value: &str, max_chars: usize) -> String {
    let mut out = String::new();
    for (i, c) in value.chars().enumerate() {
        if i >= max_chars {
            out.push_str("...");
            break;
        }
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() || c == '\u{fffe}' || c == '\u{ffff}' => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(args: &[&str]) -> Settings {
        Settings::from_args(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn check_password_rejects_empty() {
        assert!(check_password(b"").is_err());
    }

    #[test]
    fn check_password_rejects_control_characters() {
        assert!(check_password(b"a\x01b").is_err());
        assert!(check_password(b"a\nb").is_err());
        assert!(check_password(b"a\rb").is_err());
        assert!(check_password("a\u{85}b".as_bytes()).is_err());
    }

    #[test]
    fn check_password_rejects_invalid_utf8() {
        assert!(check_password(b"\xff\xfe").is_err());
    }

    #[test]
    fn check_password_rejects_too_long() {
        assert!(check_password(&vec![b'a'; MAX_PASSWORD_BYTES + 1]).is_err());
        assert!(check_password(&vec![b'a'; MAX_PASSWORD_BYTES]).is_ok());
    }

    #[test]
    fn check_password_keeps_spaces_and_markup() {
        let p = check_password(" S&<>'\"ü\tx ".as_bytes()).unwrap();
        assert_eq!(p.as_str(), " S&<>'\"ü\tx ");
    }

    #[test]
    fn check_password_error_omits_password() {
        let err = check_password(b"hunter2\x01").unwrap_err();
        assert!(!err.contains("hunter2"));
    }

    #[test]
    fn check_user_rejects_control_and_empty() {
        assert!(check_user(b"").is_err());
        assert!(check_user(b"al\x00ice").is_err());
        assert!(check_user(b"\xc3").is_err());
        assert!(check_user(&vec![b'a'; MAX_USER_BYTES + 1]).is_err());
    }

    #[test]
    fn map_user_unchanged_by_default() {
        assert_eq!(map_user(" Alice@Example.COM ", &settings(&[])), " Alice@Example.COM ");
    }

    #[test]
    fn map_user_strip_realm() {
        assert_eq!(map_user("alice@example.com", &settings(&["strip_realm"])), "alice");
        assert_eq!(map_user("a@b@c", &settings(&["strip_realm"])), "a@b");
    }

    #[test]
    fn map_user_lowercase() {
        assert_eq!(map_user("ALICE", &settings(&["lowercase"])), "alice");
    }

    #[test]
    fn map_user_default_domain() {
        assert_eq!(map_user("alice", &settings(&["default_domain=example.com"])), "alice@example.com");
        assert_eq!(map_user("alice@other.test", &settings(&["default_domain=example.com"])), "alice@other.test");
    }

    #[test]
    fn for_log_escapes_controls() {
        assert_eq!(for_log("a\nb\"c"), "a\\u{a}b\\\"c");
    }
}

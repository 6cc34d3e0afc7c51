//! Redaction of the password from text that a server sent back.
//!
//! A server, or a proxy in front of it, may quote the request in its reply: in a
//! SOAP `faultstring`, a `Location` header or an `X-ResponseCode`. Such text goes
//! through [`server_text`] before it reaches a log line or `pam_mapi-check`'s
//! output. The password is looked for as sent, XML-escaped, percent-encoded and
//! in base64 (alone, and as the `user:password` of HTTP Basic), without regard to
//! ASCII case, and replaced by `[password]` before the text is escaped and cut.
//!
//! Only server text is redacted, never the module's own words: a password such as
//! `wrong` would otherwise show itself by the gaps it leaves in "wrong password".
//!
//! The forms are kept in a thread-local list for the duration of one
//! authentication ([`Scope`]), so that the parsers need no password argument.

use std::cell::RefCell;

use base64::Engine;
use zeroize::Zeroizing;

use crate::input::for_log;

/// Shortest password that is replaced inside a text. A shorter one matches
/// ordinary text too often, so server text containing it is withheld whole.
const MIN_REPLACED_BYTES: usize = 4;

/// Marker that replaces a password in server text.
const MARK: &str = "[password]";

/// Notice that replaces server text containing a password shorter than
/// `MIN_REPLACED_BYTES`.
const WITHHELD: &str = "(server text withheld because it contains the password)";

thread_local! {
    /// The forms of the password of the authentication running on this thread.
    static FORMS: RefCell<Vec<Zeroizing<String>>> = const { RefCell::new(Vec::new()) };
}

/// The time during which [`server_text`] hides one password on this thread.
/// Dropping it wipes the stored forms.
pub struct Scope {
    previous: Vec<Zeroizing<String>>,
}

impl Scope {
    /// Starts hiding `password`, and the Basic credentials of `user` with it.
    pub fn new(user: &str, password: &str) -> Scope {
        let forms = if password.is_empty() { Vec::new() } else { forms(user, password) };
        let previous = FORMS.with(|cell| std::mem::replace(&mut *cell.borrow_mut(), forms));
        Scope { previous }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let previous = std::mem::take(&mut self.previous);
        FORMS.with(|cell| *cell.borrow_mut() = previous);
    }
}

/// Returns the forms in which a server may echo the password.
fn forms(user: &str, password: &str) -> Vec<Zeroizing<String>> {
    let base64 = base64::engine::general_purpose::STANDARD;
    let basic = Zeroizing::new(format!("{user}:{password}"));
    let mut list = vec![
        Zeroizing::new(password.to_string()),
        Zeroizing::new(xml_escaped(password)),
        Zeroizing::new(percent_encoded(password)),
        Zeroizing::new(base64.encode(password)),
        Zeroizing::new(base64.encode(basic.as_bytes())),
    ];
    // Longest first, so that a form inside another (base64 of the password within
    // that of user:password) does not leave part of the longer one behind.
    list.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.as_str().cmp(b.as_str())));
    list.dedup_by(|a, b| a.as_str() == b.as_str());
    list
}

fn xml_escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes every byte outside RFC 3986's unreserved set.
fn percent_encoded(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Prepares text that a server sent for a log line: the password of the running
/// authentication is replaced (see the module documentation), then the text is
/// escaped and cut by [`for_log`].
pub fn server_text(raw: &str) -> String {
    for_log(&redacted(raw))
}

/// Returns `raw` with every form of the running authentication's password
/// replaced by `[password]`, or withheld whole for a short password.
pub fn redacted(raw: &str) -> String {
    FORMS.with(|cell| {
        let forms = cell.borrow();
        let mut text = raw.to_string();
        for form in forms.iter() {
            if !contains_ignoring_case(&text, form) {
                continue;
            }
            if form.len() < MIN_REPLACED_BYTES {
                return WITHHELD.to_string();
            }
            text = replace_ignoring_case(&text, form);
        }
        text
    })
}

fn contains_ignoring_case(text: &str, needle: &str) -> bool {
    text.to_ascii_lowercase().contains(&needle.to_ascii_lowercase())
}

/// Replaces each ASCII-case-insensitive match of `needle` by `MARK`. ASCII lower
/// casing keeps every byte offset, so the matches found in the lower-cased copy
/// mark the same bytes in `text`, always on character boundaries.
fn replace_ignoring_case(text: &str, needle: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let needle = needle.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (start, _) in lower.match_indices(&needle) {
        out.push_str(&text[last..start]);
        out.push_str(MARK);
        last = start + needle.len();
    }
    out.push_str(&text[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_a_scope_text_is_only_escaped() {
        assert_eq!(server_text("fault \"Secret-1\""), "fault \\\"Secret-1\\\"");
    }

    #[test]
    fn plain_password_is_replaced() {
        let _scope = Scope::new("alice", "Secret-1");
        assert_eq!(server_text("bad <szPassword>Secret-1</szPassword>"), "bad <szPassword>[password]</szPassword>");
    }

    #[test]
    fn password_with_quotes_is_replaced_before_escaping() {
        let _scope = Scope::new("alice", "Pa\"ss\\word9");
        assert_eq!(server_text("x Pa\"ss\\word9 y"), "x [password] y");
    }

    #[test]
    fn encoded_forms_are_replaced() {
        let _scope = Scope::new("alice", "S&cret <1>");
        let cases = [
            "S&amp;cret &lt;1&gt;",
            "S%26cret%20%3C1%3E",
            "s%26cret%20%3c1%3e",
            "UyZjcmV0IDwxPg==",
            "YWxpY2U6UyZjcmV0IDwxPg==",
            "S&CRET <1>",
        ];
        for case in cases {
            assert_eq!(redacted(&format!("echo {case} end")), "echo [password] end", "{case}");
        }
    }

    #[test]
    fn short_password_withholds_text() {
        let _scope = Scope::new("alice", "ab");
        assert_eq!(redacted("fault: abc"), WITHHELD);
        assert_eq!(redacted("fault: xyz"), "fault: xyz");
    }

    #[test]
    fn cut_happens_after_redaction() {
        let password = "Secr3t-Password";
        let _scope = Scope::new("alice", password);
        let text = format!("{}{password}", "A".repeat(120));
        let shown = server_text(&text);
        assert!(!shown.contains("Secr"), "{shown}");
    }

    #[test]
    fn scope_end_forgets_password() {
        {
            let _scope = Scope::new("alice", "Secret-1");
        }
        assert_eq!(redacted("Secret-1"), "Secret-1");
    }

    #[test]
    fn non_ascii_text_keeps_boundaries() {
        let _scope = Scope::new("alice", "PÄSS-wört");
        assert_eq!(redacted("ä PÄSS-wört ß"), "ä [password] ß");
    }
}

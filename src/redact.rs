//! Keeping the password out of text that a server sent back.
//!
//! A server, or a proxy in front of it, may quote the request in its reply: in a
//! SOAP `faultstring`, a `Location` header, an `X-ResponseCode`, a version string
//! or a feature name. Such text goes through [`server_text`] before it reaches a
//! log line or `pam_mapi-check`'s output. When the text may contain the password,
//! the whole text is withheld. Replacing only the match would show the password
//! by the gap it leaves in words the server wrote itself.
//!
//! The text is searched as sent, percent-decoded, with HTML character references
//! decoded, and with each base64 or base64url token decoded, without regard to
//! case. A match is any run of `WINDOW_CHARS` consecutive characters of the
//! password, so a partial or shortened echo counts too. The form that the SOAP
//! request carries for a `{1}:` or `{2}:` password is searched as well.
//!
//! The search terms live in a thread-local list for the duration of one
//! authentication ([`Scope`]), so that the parsers need no password argument.

use std::cell::RefCell;

use base64::Engine;
use zeroize::Zeroizing;

use crate::input::for_log;

/// Length of the password runs searched for. A password shorter than this is
/// searched for whole.
const WINDOW_CHARS: usize = 6;

/// Shortest token that is tried as base64.
const MIN_BASE64_CHARS: usize = 8;

/// Notice that replaces server text that may contain the password.
const WITHHELD: &str = "(server text withheld because it may contain the password)";

/// Search terms of the authentication running on this thread.
#[derive(Default)]
struct Terms {
    /// Lower-cased runs of the password, matched in every decoded form of the text.
    runs: Vec<Zeroizing<String>>,
    /// Encoded forms of the whole password, matched in the text as sent.
    exact: Vec<Zeroizing<String>>,
}

thread_local! {
    static TERMS: RefCell<Terms> = RefCell::new(Terms::default());
}

/// The time during which [`server_text`] looks for one password on this thread.
/// Dropping it wipes the stored terms.
pub struct Scope {
    previous: Terms,
}

impl Scope {
    /// Starts looking for `password`, and for the Basic credentials of `user`.
    pub fn new(user: &str, password: &str) -> Scope {
        let terms = if password.is_empty() { Terms::default() } else { terms(user, password) };
        let previous = TERMS.with(|cell| std::mem::replace(&mut *cell.borrow_mut(), terms));
        Scope { previous }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let previous = std::mem::take(&mut self.previous);
        TERMS.with(|cell| *cell.borrow_mut() = previous);
    }
}

fn terms(user: &str, password: &str) -> Terms {
    let lower: Vec<char> = password.to_lowercase().chars().collect();
    let width = WINDOW_CHARS.min(lower.len());
    let mut runs: Vec<Zeroizing<String>> = lower.windows(width).map(|run| Zeroizing::new(run.iter().collect())).collect();
    runs.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    runs.dedup_by(|a, b| a.as_str() == b.as_str());

    let base64 = base64::engine::general_purpose::STANDARD;
    let basic = Zeroizing::new(format!("{user}:{password}"));
    let mut exact = vec![Zeroizing::new(base64.encode(basic.as_bytes()))];
    if password.starts_with("{1}:") || password.starts_with("{2}:") {
        exact.push(crate::soap::obfuscate(password));
    }
    Terms { runs, exact }
}

/// Prepares text that a server sent for a log line: withheld when it may contain
/// the password of the running authentication, then escaped and cut by
/// [`for_log`].
pub fn server_text(raw: &str) -> String {
    for_log(&redacted(raw))
}

/// Returns `raw`, or a notice in its place when it may contain the password of
/// the running authentication (see the module documentation).
pub fn redacted(raw: &str) -> String {
    let found = TERMS.with(|cell| {
        let terms = cell.borrow();
        if terms.runs.is_empty() {
            return false;
        }
        if terms.exact.iter().any(|form| raw.contains(form.as_str())) {
            return true;
        }
        decoded_forms(raw).iter().any(|form| {
            let lower = Zeroizing::new(form.to_lowercase());
            terms.runs.iter().any(|run| lower.contains(run.as_str()))
        })
    });
    if found {
        WITHHELD.to_string()
    } else {
        raw.to_string()
    }
}

/// Returns the text as sent and in each decoded form a server may have used to
/// echo the request.
fn decoded_forms(raw: &str) -> Vec<Zeroizing<String>> {
    let mut forms = vec![Zeroizing::new(raw.to_string()), percent_decoded(raw), references_decoded(raw)];
    let engines = [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::STANDARD_NO_PAD,
        base64::engine::general_purpose::URL_SAFE,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    let is_base64 = |c: char| c.is_ascii_alphanumeric() || "+/=-_".contains(c);
    for token in raw.split(|c: char| !is_base64(c)).filter(|token| token.len() >= MIN_BASE64_CHARS) {
        for engine in &engines {
            if let Ok(bytes) = engine.decode(token) {
                forms.push(Zeroizing::new(String::from_utf8_lossy(&bytes).into_owned()));
            }
        }
    }
    forms
}

/// Decodes `%XX` sequences, and `+` as a space as in form data.
fn percent_decoded(raw: &str) -> Zeroizing<String> {
    let bytes = raw.as_bytes();
    let mut out = Zeroizing::new(Vec::with_capacity(bytes.len()));
    let mut index = 0;
    while index < bytes.len() {
        let hex = bytes.get(index + 1..index + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[index], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                index += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                index += 1;
            }
            (byte, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    Zeroizing::new(String::from_utf8_lossy(&out).into_owned())
}

/// Decodes the XML and HTML character references `&#NN;`, `&#xHH;`, `&amp;`,
/// `&lt;`, `&gt;`, `&quot;` and `&apos;`.
fn references_decoded(raw: &str) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(raw.len()));
    let mut rest = raw;
    while let Some(start) = rest.find('&') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let decoded = after.find(';').filter(|end| *end <= 10).and_then(|end| {
            let name = &after[..end];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => {
                    let number = name.strip_prefix('#')?;
                    let code = match number.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                        None => number.parse().ok()?,
                    };
                    char::from_u32(code)
                }
            };
            c.map(|c| (c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &after[end + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
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
    fn unrelated_text_is_kept() {
        let _scope = Scope::new("alice", "Secret-1");
        assert_eq!(redacted("Method 'ns:logn' not implemented"), "Method 'ns:logn' not implemented");
    }

    #[test]
    fn echoed_forms_are_withheld() {
        let _scope = Scope::new("alice", "S&cret <1>/x y");
        let cases = [
            "S&cret <1>/x y",
            "S&amp;cret &lt;1&gt;/x y",
            "S&#x26;cret &#60;1&#62;/x y",
            "S%26cret%20%3C1%3E%2Fx%20y",
            "s%26cret+%3c1%3e/x+y",
            "UyZjcmV0IDwxPi94IHk=",
            "UyZjcmV0IDwxPi94IHk",
            "YWxpY2U6UyZjcmV0IDwxPi94IHk=",
            "S&CRET <1>/X Y",
            "S&cret <1",
        ];
        for case in cases {
            assert_eq!(redacted(&format!("echo {case} end")), WITHHELD, "{case}");
        }
    }

    #[test]
    fn non_ascii_case_is_folded() {
        let _scope = Scope::new("alice", "pässwört-9");
        assert_eq!(redacted("got PÄSSWÖRT-9"), WITHHELD);
    }

    #[test]
    fn obfuscated_request_form_is_withheld() {
        let password = "{1}:AuthLogA1";
        let _scope = Scope::new("alice", password);
        let sent = crate::soap::obfuscate(password);
        assert_eq!(redacted(&format!("cannot parse {}", sent.as_str())), WITHHELD);
    }

    #[test]
    fn server_words_equal_to_password_are_withheld() {
        let _scope = Scope::new("alice", "request");
        assert_eq!(redacted("bad request: request"), WITHHELD);
        assert_eq!(redacted("bad reply"), "bad reply");
    }

    #[test]
    fn short_password_is_searched_whole() {
        let _scope = Scope::new("alice", "ab");
        assert_eq!(redacted("fault: xAbx"), WITHHELD);
        assert_eq!(redacted("fault: xyz"), "fault: xyz");
    }

    #[test]
    fn scope_end_forgets_password() {
        {
            let _scope = Scope::new("alice", "Secret-1");
        }
        assert_eq!(redacted("Secret-1"), "Secret-1");
    }

    #[test]
    fn malformed_encodings_are_kept() {
        let _scope = Scope::new("alice", "Secret-1");
        assert_eq!(redacted("100% &#xZZ; &bogus %G1 ++"), "100% &#xZZ; &bogus %G1 ++");
    }
}

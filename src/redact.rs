//! Logging rules for text that a server sent in reply to a request that carried
//! the password.
//!
//! Such a reply may quote the request, in any encoding: in a SOAP `faultstring`,
//! a `Location` header, an `X-ResponseCode`, a version string or a feature name.
//! No search can recognise every encoding, so the module logs no free text from
//! these replies. It logs numbers, names from a fixed list, and version strings
//! made only of digits and dots. Anything else is replaced by a notice. `pam_mapi-check` shows the full text of the server's reply to its own
//! probe, which carries a random password.

/// Names the notice gives for where to see withheld text.
const SEE: &str = "pam_mapi-check shows the server's reply to a probe";

/// Returns a notice in place of the free text of `field` in a reply. It takes no
/// text, so none can reach the log, and gives no length, because a reply that
/// only quotes the request would show the length of the password.
pub fn withheld(field: &str) -> String {
    format!("{field} not logged, because a reply to a logon may quote the password; {SEE}")
}

/// Returns a version string if it has the shape of one: two to six groups of at
/// most five digits, separated by dots or commas (Kopano's `0,11,0,2`, Exchange's
/// `15.02.1118.007`). Anything else is replaced by a notice, because a bare
/// number could be a numeric password quoted back.
pub fn version(raw: &str) -> String {
    let groups: Vec<&str> = raw.split(['.', ',']).collect();
    let shaped = (2..=6).contains(&groups.len())
        && groups.iter().all(|g| !g.is_empty() && g.len() <= 5 && g.bytes().all(|b| b.is_ascii_digit()));
    if shaped {
        raw.to_string()
    } else {
        withheld("a version string")
    }
}

/// Returns a number from a reply if it has at most `max_digits` digits, or a
/// notice. Protocol codes are short; a long number could be a numeric password.
pub fn number(raw: &str, max_digits: usize) -> String {
    let raw = raw.trim();
    if !raw.is_empty() && raw.len() <= max_digits && raw.bytes().all(|b| b.is_ascii_digit()) {
        raw.to_string()
    } else {
        withheld("a value")
    }
}

/// Returns the words of `raw` (split at commas and white space) that appear in
/// `vocabulary`, compared without ASCII case, and counts the others.
pub fn known_words(raw: &str, vocabulary: &[&str]) -> String {
    let mut known = Vec::new();
    let mut others = 0;
    for word in raw.split([',', ' ', '\t']).filter(|w| !w.is_empty()) {
        match vocabulary.iter().find(|v| v.eq_ignore_ascii_case(word)) {
            Some(name) => known.push(*name),
            None => others += 1,
        }
    }
    let mut text = known.join(" ");
    if others > 0 {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(&format!("and {others} other word{} not logged", if others == 1 { "" } else { "s" }));
    }
    if text.is_empty() {
        text.push_str("(none)");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn withheld_gives_no_text_and_no_length() {
        let notice = withheld("the Location header");
        assert!(notice.starts_with("the Location header not logged"), "{notice}");
        assert!(!notice.contains("U2Vj"), "{notice}");
        assert!(!notice.contains("33"), "{notice}");
    }

    #[test]
    fn version_allows_digits_dots_and_commas() {
        assert_eq!(version("0,11,0,2"), "0,11,0,2");
        assert_eq!(version("15.02.1118.007"), "15.02.1118.007");
        assert_eq!(version("8.7.80"), "8.7.80");
        assert!(version("Secret-12").contains("not logged"));
        assert!(version("20261205").contains("not logged"));
        assert!(version("1.2.3.4.5.6.7").contains("not logged"));
        assert!(version("").contains("not logged"));
    }

    #[test]
    fn number_limits_digits() {
        assert_eq!(number(" 6 ", 3), "6");
        assert!(number("123456", 3).contains("not logged"));
        assert!(number("1a", 3).contains("not logged"));
    }

    #[test]
    fn known_words_drop_the_rest() {
        assert_eq!(known_words("Negotiate, NTLM", &["Basic", "Negotiate", "NTLM"]), "Negotiate NTLM");
        assert_eq!(known_words("negotiate secret", &["Negotiate"]), "Negotiate and 1 other word not logged");
        assert_eq!(known_words("", &["Negotiate"]), "(none)");
    }
}

//! Text from the network, made safe to print on a terminal.
//!
//! Anyone who can send mail chooses a message's From and Subject, and Google's error texts
//! and account names come over the network too. Printed raw, an ESC or CSI sequence can
//! recolour or rewrite the screen, an OSC sequence can set the window title, write to the
//! clipboard or show a fake link, BEL rings, and a bidirectional override reorders what
//! follows it. Each such character is shown as its escape (`\u{1b}`, `\n`) instead.

use std::borrow::Cow;

/// Whether a terminal could take `c` for something other than text: the C0 and C1 controls,
/// DEL, and the Unicode bidirectional formatting characters.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every unsafe character replaced by its Rust escape; borrowed when all is safe.
pub fn safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_unsafe(c) {
            out.extend(c.escape_debug());
            // `escape_debug` leaves the bidirectional characters as they are.
            if !c.is_control() && out.ends_with(c) {
                out.pop();
                out.extend(c.escape_unicode());
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// JSON text with every unsafe character inside its strings written as a `\uXXXX` escape.
/// JSON's structure is ASCII, so only string contents change, and only in spelling: a
/// parser reads exactly the same values. (serde_json escapes C0 controls itself, but not
/// DEL, C1 controls or bidirectional overrides.)
pub fn json_safe(json: &str) -> Cow<'_, str> {
    if !json.chars().any(is_unsafe) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 8);
    for c in json.chars() {
        if is_unsafe(c) && c != '\n' {
            // Every unsafe character is in the Basic Multilingual Plane: one \u escape.
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_are_shown_not_obeyed() {
        let subject = "Hi\u{1b}[2J\u{1b}]0;pwned\u{7}\u{9b}31m\u{202e}txt.exe\r\nnext";
        let shown = safe(subject);
        assert!(!shown.chars().any(is_unsafe), "{shown:?}");
        assert_eq!(
            shown,
            "Hi\\u{1b}[2J\\u{1b}]0;pwned\\u{7}\\u{9b}31m\\u{202e}txt.exe\\r\\nnext"
        );
        assert!(matches!(
            safe("Ann <ann@example.org> é 日本"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn json_keeps_every_value_exactly() {
        let value =
            serde_json::json!({"subject": "a\u{1b}]8;;x\u{7}\u{9b}\u{7f}\u{2066}b", "n": 1});
        let pretty = serde_json::to_string_pretty(&value).unwrap();
        let shown = json_safe(&pretty);
        assert!(!shown.chars().any(|c| is_unsafe(c) && c != '\n'), "{shown}");
        let again: serde_json::Value = serde_json::from_str(&shown).unwrap();
        assert_eq!(again, value);
    }
}

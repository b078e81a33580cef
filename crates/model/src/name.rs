//! Display names as the relay registers them: one key per name, so that names that look
//! alike to people get the same key and only one user can hold it.
//!
//! The key is built in the spirit of Unicode TS #39 (security mechanisms):
//!
//! 1. compatibility forms folded (NFKC: full-width `Ａｎａ` is `Ana`), control characters
//!    dropped;
//! 2. case folded (`ANA` is `ana`, final `ς` is `σ`);
//! 3. the confusable skeleton (TS #39 `skeleton`: Cyrillic `а` is Latin `a`, `1` is `l`,
//!    default-ignorable characters such as the zero-width joiner vanish), lowercased again;
//! 4. runs of spaces made one, and spaces and punctuation at either end set aside (`ana.`
//!    and `@ana` are `ana`).
//!
//! [`name_key`] is for a name being registered: it also refuses invisible and control
//! characters and names over [`limits::NAME`]. [`lookup_key`] is for a name being looked
//! up: it is lenient, so a look-alike finds the user who holds the real name.

use unicode_normalization::UnicodeNormalization;
use unicode_security::skeleton;

use crate::limits;

/// Why a display name cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Nothing but spaces, punctuation or invisible characters.
    #[error(
        "the name '{name}' has no letters or digits once spaces and punctuation are set aside: pick a name with letters or digits"
    )]
    Empty {
        /// The name, as given.
        name: String,
    },
    /// Longer than [`limits::NAME`].
    #[error("the name is {chars} characters long; the limit is {max}: pick a shorter name")]
    TooLong {
        /// Its length in characters.
        chars: usize,
        /// The limit.
        max: usize,
    },
    /// An invisible, formatting or control character.
    #[error(
        "the name contains the invisible or control character U+{code:04X}: remove it and pick a name of visible characters"
    )]
    Invisible {
        /// The character's code point.
        code: u32,
    },
}

/// The key under which `name` is registered, or why it cannot be.
pub fn name_key(name: &str) -> Result<String, NameError> {
    let chars = name.trim().chars().count();
    let max = limits::NAME.1;
    if chars > max {
        return Err(NameError::TooLong { chars, max });
    }
    if let Some(c) = name.chars().find(|c| is_invisible(*c)) {
        return Err(NameError::Invisible { code: u32::from(c) });
    }
    lookup_key(name).ok_or_else(|| NameError::Empty {
        name: name.to_owned(),
    })
}

/// The key to look `query` up by: that of the name it looks like (invisible characters
/// are ignored, not refused). `None` when nothing is left, or when the query is far longer
/// than any registrable name.
pub fn lookup_key(query: &str) -> Option<String> {
    // Invisible characters do not count; anything much longer than a name cannot match.
    if query.len() > limits::NAME.1 * 16 {
        return None;
    }
    let folded: String = query
        .nfkc()
        .filter(|c| !c.is_control())
        .flat_map(char::to_lowercase)
        .map(|c| if c == 'ς' { 'σ' } else { c })
        .collect();
    // Punctuation is set aside before the skeleton too, which maps some of it (`。`) to
    // letter-like marks.
    let folded = folded.trim_matches(|c: char| c.is_whitespace() || is_punctuation(c));
    let skeleton: String = skeleton(folded)
        .flat_map(char::to_lowercase)
        .nfc()
        .collect();
    let mut key = String::with_capacity(skeleton.len());
    for word in skeleton.split_whitespace() {
        if !key.is_empty() {
            key.push(' ');
        }
        key.push_str(word);
    }
    let key = key.trim_matches(|c: char| c.is_whitespace() || is_punctuation(c));
    (!key.is_empty()).then(|| key.to_owned())
}

/// Characters people cannot see or that steer how text shows: controls, formatting
/// characters and the default-ignorable ones (zero-width joiners, bidi overrides,
/// variation selectors), which the skeleton removes.
fn is_invisible(c: char) -> bool {
    if c.is_control() {
        return true;
    }
    // Formatting characters (General_Category Cf) that are not default-ignorable.
    if matches!(c, '\u{600}'..='\u{605}' | '\u{6DD}' | '\u{70F}' | '\u{8E2}' | '\u{110BD}' | '\u{110CD}' | '\u{FFF9}'..='\u{FFFB}')
    {
        return true;
    }
    // Spaces are visible enough (runs are folded); everything else the skeleton drops is
    // default-ignorable.
    !c.is_whitespace() && skeleton(c.encode_utf8(&mut [0; 4])).next().is_none()
}

/// Punctuation that may lead or trail a name without making it another name.
fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(
            c,
            '¡' | '¿' | '«' | '»' | '·' | '‐'..='‧' | '‹' | '›' | '。' | '、' | '・' | '〜'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> String {
        name_key(name).unwrap()
    }

    #[test]
    fn look_alikes_share_the_key_of_the_name() {
        let ana = key("ana");
        for alike in [
            "Ana",
            "ANA",
            "  ana  ",
            "ana.",
            "@ana",
            "...ana!",
            "\u{430}na",       // Cyrillic а
            "\u{430}n\u{430}", // two of them
            "Ａｎａ",          // full-width
            "ana\u{3002}",     // ideographic full stop
        ] {
            assert_eq!(key(alike), ana, "{alike:?}");
        }
        assert_eq!(lookup_key("an\u{200D}a").as_deref(), Some(ana.as_str()));
        assert_eq!(lookup_key("\u{FEFF}@ana").as_deref(), Some(ana.as_str()));
    }

    #[test]
    fn different_names_keep_different_keys() {
        assert_ne!(key("ana"), key("anna"));
        assert_ne!(key("ana b"), key("anab"));
        assert_eq!(key("ana  b"), key("ana b"));
        assert_ne!(key("ben"), key("ana"));
        assert_eq!(key("Ana María"), key("ana maría"));
        assert_ne!(key("Ana María"), key("Ana Maria!x"));
    }

    #[test]
    fn confusable_letters_and_digits_collide() {
        assert_eq!(key("paypal"), key("pаypаl"));
        assert_eq!(key("bill"), key("bi11"));
        assert_eq!(key("ΟΔΟΣ"), key("οδος"));
        assert_eq!(key("οδος"), key("οδοσ"));
    }

    #[test]
    fn invisible_and_control_characters_are_refused() {
        for (name, code) in [
            ("an\u{200D}a", 0x200D),
            ("ana\u{200B}", 0x200B),
            ("\u{202E}ana", 0x202E),
            ("an\u{0007}a", 0x7),
            ("ana\u{FE0F}", 0xFE0F),
            ("ana\u{0600}", 0x600),
        ] {
            assert_eq!(
                name_key(name),
                Err(NameError::Invisible { code }),
                "{name:?}"
            );
        }
    }

    #[test]
    fn empty_and_too_long_names_are_refused() {
        assert!(matches!(name_key("  ...  "), Err(NameError::Empty { .. })));
        assert!(matches!(name_key(""), Err(NameError::Empty { .. })));
        let long = "a".repeat(100_000);
        assert_eq!(
            name_key(&long),
            Err(NameError::TooLong {
                chars: 100_000,
                max: limits::NAME.1
            })
        );
        assert_eq!(lookup_key(&long), None);
        assert!(name_key(&"a".repeat(limits::NAME.1)).is_ok());
        let message = name_key(&long).unwrap_err().to_string();
        assert!(message.contains("100000") && message.contains("pick a shorter name"));
    }

    #[test]
    fn the_key_is_stable() {
        for name in ["Ana", "Ｂｅｎ", "zoë", "Ἀθηνᾶ", "名前", "rn m", "ß"] {
            let k = key(name);
            assert_eq!(key(&k), k, "{name:?}");
        }
    }
}

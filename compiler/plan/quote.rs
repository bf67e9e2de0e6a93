//! Quoting and escaping for each output's syntax: compose literals and
//! interpolations, env file values, comments and firewall reasons, sh words.

/// A literal string for compose.yaml: compose interpolates `$` everywhere,
/// `$$` is a literal `$`.
pub fn compose_literal(s: &str) -> String {
    s.replace('$', "$$")
}

/// A compose interpolation that fails the deploy when the variable is unset.
pub(super) fn required_var(var: &str) -> String {
    format!("${{{var}:?{var} must be set}}")
}

/// Whether a value can be written in a compose env file: dify-cfg writes
/// single-quoted values, which compose reads literally (no `$` expansion, no
/// escapes) up to the next `'` that is not after a backslash.
pub fn dotenv_representable(value: &str) -> bool {
    !value.contains('\'') && !value.ends_with('\\') && !value.chars().any(char::is_control)
}

/// Text for a comment or firewall reason: only characters that need no
/// quoting anywhere (validated names, CIDRs, ports pass unchanged).
pub fn reason_text(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " ./:,_-[]()".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A string as one POSIX sh word that the shell takes literally: in single
/// quotes, with each `'` written `'\''` (close, escaped quote, reopen).
/// Inside single quotes no character is special, so any string can be
/// quoted so, except one with a NUL byte, which no shell word can hold.
pub fn sh_quote(s: &str) -> Option<String> {
    if s.contains('\0') {
        return None;
    }
    Some(format!("'{}'", s.replace('\'', r"'\''")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_keep_only_plain_characters() {
        assert_eq!(reason_text("ssh from 10.0.0.0/28"), "ssh from 10.0.0.0/28");
        assert_eq!(reason_text("a\"b\nc"), "a_b_c");
    }

    #[test]
    fn dotenv_values_that_cannot_be_literal_are_refused() {
        assert!(dotenv_representable("http://x/e/{hook_id}"));
        assert!(dotenv_representable("${NOT_EXPANDED}"));
        assert!(!dotenv_representable("it's"));
        assert!(!dotenv_representable("a\nb"));
        assert!(!dotenv_representable("ends\\"));
    }

    #[test]
    fn sh_quote_writes_one_literal_word() {
        assert_eq!(sh_quote("").as_deref(), Some("''"));
        assert_eq!(
            sh_quote("sites/clinic-01").as_deref(),
            Some("'sites/clinic-01'")
        );
        assert_eq!(sh_quote("it's").as_deref(), Some(r"'it'\''s'"));
        assert_eq!(sh_quote("''").as_deref(), Some(r"''\'''\'''"));
        assert_eq!(sh_quote("a\0b"), None);
    }

    /// The quoted word, read back by a real shell, is the string again:
    /// nothing in it is expanded, run or split.
    #[test]
    fn sh_quote_round_trips_through_sh() {
        let hostile = [
            "",
            "plain",
            "it's",
            "'",
            "'\\''",
            "$(touch /tmp/dify-cfg-pwned)",
            "`id`",
            "${HOME}$HOME",
            "a b\tc\nd",
            "*?[a]~",
            "\\",
            "\"",
            "; rm -rf / #",
            "-n",
            "ünïcödé \u{2028}",
        ];
        for s in hostile {
            let word = sh_quote(s).unwrap();
            let out = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(format!("printf '%s' {word}"))
                .output()
                .expect("run /bin/sh");
            assert!(out.status.success(), "{s:?}");
            assert_eq!(
                String::from_utf8(out.stdout).unwrap(),
                s,
                "{s:?} via {word}"
            );
        }
    }
}

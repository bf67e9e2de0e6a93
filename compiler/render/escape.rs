//! Escaping: the formatter that prints every `{{ }}` of a YAML template as
//! JSON (with what YAML reads as a line break escaped too) and of a shell
//! script as one single-quoted word, the JSON-for-YAML scalars the YAML
//! writer shares, and the `quote`, `comment` and `dotenv` filters.

use std::fmt::Write as _;

use minijinja::value::Value as MjValue;
use minijinja::{AutoEscape, Error, ErrorKind, Output, State};
use serde_json::Value;

use crate::plan;

/// The auto-escape mode of shell scripts.
pub(super) const SH_ESCAPE: &str = "sh";

/// The formatter: in YAML templates, every value is printed as JSON with
/// YAML's extra line breaks and non-printables escaped; in shell scripts,
/// as a single-quoted word; elsewhere minijinja's default applies.
pub(super) fn format_value(out: &mut Output, state: &State, value: &MjValue) -> Result<(), Error> {
    if state.auto_escape() == AutoEscape::Custom(SH_ESCAPE) && !value.is_safe() {
        return out.write_str(&sh_word(value)?).map_err(Error::from);
    }
    if state.auto_escape() != AutoEscape::Json || value.is_safe() {
        return minijinja::escape_formatter(out, state, value);
    }
    if value.is_undefined() {
        return Err(Error::new(
            ErrorKind::UndefinedError,
            "an undefined value cannot be printed",
        ));
    }
    let json = serde_json::to_value(value)
        .map_err(|e| Error::new(ErrorKind::BadSerialization, e.to_string()))?;
    out.write_str(&json_inline(&json)).map_err(Error::from)
}

/// A string or number as a single-quoted sh word. Anything else (a list, a
/// map, none, undefined) is an error: a template must say how to print it.
fn sh_word(value: &MjValue) -> Result<String, Error> {
    let text = match value.kind() {
        minijinja::value::ValueKind::String => value.as_str().unwrap_or_default().to_string(),
        minijinja::value::ValueKind::Number | minijinja::value::ValueKind::Bool => {
            value.to_string()
        }
        kind => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("a {kind} cannot be printed as a shell word"),
            ));
        }
    };
    plan::sh_quote(&text).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidOperation,
            "a value with a NUL byte cannot be a shell word",
        )
    })
}

/// JSON on one line, spaced for reading (`["a", "b"]`, `{"k": 1}`), with
/// every string escaped for YAML.
pub fn json_inline(value: &Value) -> String {
    match value {
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(json_inline).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(map) => {
            let entries: Vec<String> = sorted(map)
                .into_iter()
                .map(|(k, v)| format!("{}: {}", json_string(k), json_inline(v)))
                .collect();
            format!("{{{}}}", entries.join(", "))
        }
        other => scalar(other),
    }
}

/// Whether YAML (1.1 or 1.2) accepts a character as printable, and does
/// not read it as a line break.
fn yaml_plain_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\x20'..='\x7e' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
        && !matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}')
}

/// Escape, inside JSON text, every character YAML would not take as is.
/// Such characters only occur inside JSON strings (the JSON syntax is
/// ASCII), where `\uXXXX` means the same character to both JSON and YAML.
pub fn yaml_safe(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if yaml_plain_char(c) {
            out.push(c);
        } else {
            let mut buf = [0u16; 2];
            for unit in c.encode_utf16(&mut buf) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        }
    }
    out
}

/// A string as a JSON (and so YAML) double-quoted scalar.
pub fn json_string(s: &str) -> String {
    yaml_safe(&serde_json::to_string(s).expect("a string serializes"))
}

/// `{{ x|quote }}`: a JSON string, for Dockerfile labels and the like.
pub(super) fn quote(value: String) -> MjValue {
    MjValue::from_safe_string(json_string(&value))
}

/// `{{ x|comment }}`: text for a one-line comment; line breaks and control
/// characters become spaces.
pub(super) fn comment(value: MjValue) -> MjValue {
    let text = value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_string);
    let clean: String = text
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
                ' '
            } else {
                c
            }
        })
        .collect();
    MjValue::from_safe_string(clean)
}

/// `{{ x|dotenv }}`: a value single-quoted for a compose env file (read
/// literally: no `$` expansion, no escapes). The planner keeps values that
/// cannot be written this way out of env files.
pub(super) fn dotenv(value: String) -> Result<MjValue, Error> {
    if !plan::dotenv_representable(&value) {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "a value with a quote, a control character or a trailing backslash cannot be written in an env file",
        ));
    }
    Ok(MjValue::from_safe_string(format!("'{value}'")))
}

/// A mapping's entries by key, whatever order serde_json keeps.
pub(super) fn sorted(map: &serde_json::Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}

pub(super) fn scalar(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => json_string(s),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

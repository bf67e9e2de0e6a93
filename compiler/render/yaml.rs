//! The hand-written block YAML writer behind the `toyaml` filter: every
//! mapping and sequence in block style, every string scalar and every key
//! that is not a plain identifier as a JSON string.

use minijinja::value::Value as MjValue;
use minijinja::{Error, ErrorKind};
use serde_json::Value;

use super::escape::{json_string, scalar, sorted};

/// `{{ x|toyaml }}`: a value as block-style YAML, every scalar escaped.
pub(super) fn toyaml(value: MjValue) -> Result<MjValue, Error> {
    let json = serde_json::to_value(&value)
        .map_err(|e| Error::new(ErrorKind::BadSerialization, e.to_string()))?;
    Ok(MjValue::from_safe_string(to_yaml(&json)))
}

/// Block-style YAML for a JSON value: mappings and sequences in block
/// style, keys bare when they are plain identifiers, every other key and
/// every string scalar as a JSON string. Ends without a newline.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(m) if !m.is_empty() => write_map(&mut out, m, 0, false),
        Value::Array(a) if !a.is_empty() => write_seq(&mut out, a, 0),
        other => out.push_str(&scalar(other)),
    }
    out.trim_end_matches('\n').to_string()
}

fn indent(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// Write a mapping at `level` spaces; when `inline`, its first key follows
/// a `- ` already written.
fn write_map(out: &mut String, map: &serde_json::Map<String, Value>, level: usize, inline: bool) {
    for (i, (k, v)) in sorted(map).into_iter().enumerate() {
        if !(inline && i == 0) {
            indent(out, level);
        }
        out.push_str(&key(k));
        out.push(':');
        write_child(out, v, level + 2, false);
    }
}

fn write_seq(out: &mut String, items: &[Value], level: usize) {
    for item in items {
        indent(out, level);
        out.push('-');
        write_child(out, item, level + 2, true);
    }
}

/// The value after `key:` or `-`: a nested block at `level`, or a scalar on
/// the same line. A mapping inside a sequence starts on the dash's line.
fn write_child(out: &mut String, v: &Value, level: usize, after_dash: bool) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push(if after_dash { ' ' } else { '\n' });
            write_map(out, m, level, after_dash);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            write_seq(out, a, level);
        }
        other => {
            out.push(' ');
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

/// A mapping key: bare when it is a plain identifier no YAML version reads
/// as anything but a string, else a JSON string.
fn key(k: &str) -> String {
    const SPECIAL: &[&str] = &["y", "n", "yes", "no", "on", "off", "true", "false", "null"];
    let plain = k
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !SPECIAL.contains(&k.to_ascii_lowercase().as_str());
    if plain { k.to_string() } else { json_string(k) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toyaml_round_trips_through_a_yaml_parser() {
        let value = serde_json::json!({
            "a": {"b": [1, "two", {"c": null, "d": [true]}], "e": {}},
            "on": "yes",
            "weird key": "v\u{2028}w",
            "list": [[1, 2], []],
        });
        let text = to_yaml(&value);
        let back: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(back, value, "{text}");
    }
}

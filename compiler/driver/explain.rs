//! `dify-cfg explain`: the effective configuration of a site, each value
//! with the file and line that set it, or `(default)` for the values the
//! compiler filled in.

use serde::Serialize;
use toml::Spanned;
use toml::de::DeValue;

use crate::base::source::{Location, SourceMap};
use crate::input::parse::Table;
use crate::input::resolve::ResolvedSite;
use crate::validate::ValidSite;

/// One effective value.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub key: String,
    /// The value in TOML notation.
    pub value: String,
    /// Where it was set; `None` for a default.
    pub location: Option<Location>,
}

/// All effective values of a site, sorted by key; those under `filter` only
/// when one is given (`services.api` selects `services.api.*`).
pub fn entries(
    rs: &ResolvedSite<'_>,
    valid: Option<&ValidSite>,
    sources: &SourceMap,
    filter: Option<&str>,
) -> Vec<Entry> {
    let mut out = Vec::new();
    walk(rs.table.get_ref(), "", sources, &mut out);
    if let Some(v) = valid {
        for default in &v.defaults {
            let (key, value) = &**default;
            if !out.iter().any(|e| e.key == *key) {
                out.push(Entry {
                    key: key.clone(),
                    value: value.clone(),
                    location: None,
                });
            }
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    if let Some(f) = filter {
        out.retain(|e| {
            e.key == f || e.key.starts_with(&format!("{f}.")) || e.key.starts_with(&format!("{f}["))
        });
    }
    out
}

fn walk(table: &Table<'_>, prefix: &str, sources: &SourceMap, out: &mut Vec<Entry>) {
    for (k, v) in table.iter() {
        let key = if prefix.is_empty() {
            k.get_ref().to_string()
        } else {
            format!("{prefix}.{}", k.get_ref())
        };
        match v.get_ref() {
            DeValue::Table(t) if !is_inline_leaf(&key) => walk(t, &key, sources, out),
            DeValue::Array(a)
                if a.iter().all(|i| matches!(i.get_ref(), DeValue::Table(_))) && !a.is_empty() =>
            {
                for (i, item) in a.iter().enumerate() {
                    if let DeValue::Table(t) = item.get_ref() {
                        walk(t, &format!("{key}[{i}]"), sources, out);
                    }
                }
            }
            _ => out.push(Entry {
                key,
                value: render(v),
                location: Some(sources.location(&v.span())),
            }),
        }
    }
}

/// Secret references are shown whole: `{ env = "NAME" }`.
fn is_inline_leaf(key: &str) -> bool {
    key.starts_with("secrets.")
}

fn render(v: &Spanned<DeValue<'_>>) -> String {
    match v.get_ref() {
        DeValue::String(s) => toml_string(s),
        DeValue::Integer(i) => i.to_string(),
        DeValue::Float(f) => f.to_string(),
        DeValue::Boolean(b) => b.to_string(),
        DeValue::Datetime(d) => d.to_string(),
        DeValue::Array(a) => format!("[{}]", a.iter().map(render).collect::<Vec<_>>().join(", ")),
        DeValue::Table(t) => format!(
            "{{ {} }}",
            t.iter()
                .map(|(k, v)| format!("{} = {}", k.get_ref(), render(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Text form: aligned `key = value  # path:line:col`.
pub fn to_text(site: &str, chain: &[String], entries: &[Entry]) -> String {
    let mut out = format!("# site `{site}`: profile chain {}\n", chain.join(" -> "));
    let width = entries
        .iter()
        .map(|e| e.key.len() + e.value.len() + 3)
        .max()
        .unwrap_or(0)
        .min(72);
    for e in entries {
        let line = format!("{} = {}", e.key, e.value);
        let at = e
            .location
            .as_ref()
            .map_or_else(|| "(default)".to_string(), ToString::to_string);
        out.push_str(&format!("{line:<width$}  # {at}\n"));
    }
    out
}

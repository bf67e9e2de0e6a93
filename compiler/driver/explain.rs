//! `dify-cfg explain`: the effective configuration of a site, each value
//! with the file and line that set it, or `(default)` for the values the
//! compiler filled in.

use serde::Serialize;
use toml::Spanned;
use toml::de::DeValue;

use crate::base::source::{Location, SourceMap};
use crate::dify::memory;
use crate::input::parse::Table;
use crate::input::resolve::ResolvedSite;
use crate::model::{ServiceKind, Site};
use crate::validate::ValidSite;

/// One effective value.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub key: String,
    /// The value in TOML notation (the text report's).
    #[serde(skip)]
    pub value: String,
    /// The value as JSON (the JSON report's `value`): strings, numbers,
    /// booleans, arrays and tables as themselves; a date-time, a float
    /// JSON cannot hold (`nan`, `inf`) or an integer beyond 64 bits as its
    /// TOML text.
    #[serde(rename = "value")]
    pub json: serde_json::Value,
    /// Where it was set; `None` for a default.
    pub location: Option<Location>,
    /// What the compiler holds the value to, where that is worth saying
    /// (a memory limit's measured floor).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
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
                    json: text_json(value),
                    location: None,
                    note: None,
                });
            }
        }
        for e in &mut out {
            e.note = floor_note(&e.key, &v.site);
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
                json: to_json(v.get_ref()),
                location: Some(sources.location(&v.span())),
                note: None,
            }),
        }
    }
}

/// The measured floor of a memory limit (`services.<kind>.memory`) of a
/// service Dify's measurements cover, for the site's release and workers.
fn floor_note(key: &str, site: &Site) -> Option<String> {
    let kind = key
        .strip_prefix("services.")?
        .strip_suffix(".memory")
        .and_then(ServiceKind::from_key)?;
    let service = site.services.get(&kind)?;
    let release = &site.dify_version;
    let Some(m) = memory::measurement(release) else {
        return memory::is_measured_kind(kind)
            .then(|| format!("no measured floor: Dify {release} was not measured"));
    };
    let floor = m.floor(kind)?;
    let workers = service.workers.unwrap_or(1);
    let headroom = site.headroom_percent();
    let with = match floor.per_extra_worker(workers) {
        Some(per) => format!(
            " with {workers} workers ({}MiB + {per}MiB a worker beyond the first)",
            floor.base
        ),
        None => String::new(),
    };
    Some(format!(
        "floor {}{with}, measured on Dify {release} ({}, its `{}` peak); {} with the {headroom}% headroom",
        floor.with_workers(workers).human(),
        m.measured,
        floor.source_peak(),
        floor.with_headroom(workers, headroom).human()
    ))
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

/// A TOML value as JSON (see [`Entry::json`]).
fn to_json(v: &DeValue<'_>) -> serde_json::Value {
    use serde_json::Value;
    match v {
        DeValue::String(s) => Value::String(s.to_string()),
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
            .map(Value::from)
            .or_else(|_| u64::from_str_radix(i.as_str(), i.radix()).map(Value::from))
            .unwrap_or_else(|_| Value::String(i.to_string())),
        DeValue::Float(f) => f
            .as_str()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| Value::String(f.to_string()), Value::Number),
        DeValue::Boolean(b) => Value::Bool(*b),
        DeValue::Datetime(d) => Value::String(d.to_string()),
        DeValue::Array(a) => Value::Array(a.iter().map(|i| to_json(i.get_ref())).collect()),
        DeValue::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.get_ref().to_string(), to_json(v.get_ref())))
                .collect(),
        ),
    }
}

/// A default's TOML text as JSON; text that does not read as a TOML
/// value stays a string.
fn text_json(text: &str) -> serde_json::Value {
    DeValue::parse(text).map_or_else(
        |_| serde_json::Value::String(text.to_string()),
        |v| to_json(v.get_ref()),
    )
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
        let mut at = e
            .location
            .as_ref()
            .map_or_else(|| "(default)".to_string(), ToString::to_string);
        if let Some(note) = &e.note {
            at.push_str("; ");
            at.push_str(note);
        }
        out.push_str(&format!("{line:<width$}  # {at}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::fixtures;

    #[test]
    fn values_are_typed_in_json() {
        let json = |toml: &str| {
            let v = DeValue::parse(toml).unwrap();
            serde_json::to_string(&to_json(v.get_ref())).unwrap()
        };
        assert_eq!(
            json(r#"["10.0.0.0/24", "10.9.0.0/24"]"#),
            r#"["10.0.0.0/24","10.9.0.0/24"]"#
        );
        assert_eq!(json("3"), "3");
        assert_eq!(json("0x10"), "16");
        assert_eq!(json("-7"), "-7");
        assert_eq!(json("18446744073709551615"), "18446744073709551615");
        assert_eq!(json("1.5"), "1.5");
        assert_eq!(json("nan"), r#""nan""#);
        assert_eq!(json("true"), "true");
        assert_eq!(json("\"640MiB\""), r#""640MiB""#);
        assert_eq!(json("1979-05-27T07:32:00Z"), r#""1979-05-27T07:32:00Z""#);
        assert_eq!(
            json(r#"{ env = "DB_PASSWORD" }"#),
            r#"{"env":"DB_PASSWORD"}"#
        );
        assert_eq!(json("[[1, 2], []]"), "[[1,2],[]]");
        // Defaults are recorded as TOML text.
        assert_eq!(text_json("\"5min\""), serde_json::json!("5min"));
        assert_eq!(text_json("[\"/v1\"]"), serde_json::json!(["/v1"]));
        assert_eq!(text_json("0.5"), serde_json::json!(0.5));
        assert_eq!(text_json("not toml"), serde_json::json!("not toml"));
    }

    #[test]
    fn memory_limits_show_their_measured_floor() {
        let mut site = fixtures::edge();
        let note = |site: &Site, key: &str| floor_note(key, site);
        // The numbers are the data's (they change when measured again).
        let m = crate::dify::memory::measurement("1.16.0").unwrap();
        let api = m.floor(ServiceKind::Api).unwrap();
        let beat = m.floor(ServiceKind::WorkerBeat).unwrap();
        assert_eq!(
            note(&site, "services.api.memory").unwrap(),
            format!(
                "floor {}, measured on Dify 1.16.0 ({}, its `{}` peak); {} with the 10% headroom",
                api.with_workers(1).human(),
                m.measured,
                api.source_peak(),
                api.with_headroom(1, 10).human()
            )
        );
        assert!(
            note(&site, "services.worker-beat.memory")
                .unwrap()
                .contains(&beat.with_workers(1).human())
        );
        // Not a measured service, not a memory limit, not a service.
        assert_eq!(note(&site, "services.web.memory"), None);
        assert_eq!(note(&site, "services.api.cpus"), None);
        assert_eq!(note(&site, "services.apii.memory"), None);
        let mut services = (*site.services).clone();
        services.get_mut(&ServiceKind::Api).unwrap().workers = Some(2);
        site.services = services.into();
        let two = note(&site, "services.api.memory").unwrap();
        assert!(
            two.starts_with(&format!(
                "floor {} with 2 workers ({} + ",
                api.with_workers(2).human(),
                api.with_workers(1).human()
            )) && two.ends_with(&format!(
                "; {} with the 10% headroom",
                api.with_headroom(2, 10).human()
            )),
            "{two}"
        );
        site.dify_version = "1.15.0".into();
        assert_eq!(
            note(&site, "services.api.memory").unwrap(),
            "no measured floor: Dify 1.15.0 was not measured"
        );
        assert_eq!(note(&site, "services.web.memory"), None);
    }
}

//! Stage 2: TOML text to a spanned tree ([`Table`]) and a typed [`Layer`].
//!
//! Spans are moved into the global offset space of the [`SourceMap`] right
//! after parsing, so that trees merged from several files still say which
//! file each value came from.
//!
//! The typed layer is read with serde (`deny_unknown_fields` everywhere).
//! serde stops at the first mistake, so this stage removes the offending
//! entry from the tree, records a diagnostic and reads the layer again until
//! it reads cleanly: every unknown key and wrong type of a file is reported
//! in one run, and the rest of the file goes on to the later stages (which
//! know what was removed, so that a removed value is not also "missing").

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue};

use crate::base::codes::Code;
use crate::base::diagnostic::{Diagnostic, Diagnostics, did_you_mean};
use crate::base::source::{FileId, SourceMap, Span};
use crate::input::layer::Layer;

pub type Table<'a> = DeTable<'a>;
pub type Node<'a> = Spanned<DeValue<'a>>;

/// One input file, parsed and type-checked.
#[derive(Debug, Clone)]
pub struct ParsedFile<'a> {
    pub id: FileId,
    /// The spanned tree, global offsets, without the entries removed for a
    /// mistake.
    pub table: Spanned<Table<'a>>,
    pub layer: Layer,
    /// The dotted paths of the entries removed for a mistake (each
    /// reported); empty when the file has none.
    pub removed: Vec<String>,
}

/// Parse and type-check one profile or site file. `None` (with
/// diagnostics) when its TOML does not parse, or its mistakes cannot be
/// told apart; a file with mistakes in some entries is read without them
/// ([`ParsedFile::removed`]).
pub fn parse_file<'a>(
    sources: &'a SourceMap,
    id: FileId,
    diags: &mut Diagnostics,
) -> Option<ParsedFile<'a>> {
    let mut table = parse_table(sources, id, diags)?;
    crate::input::literals::refuse_credentials(&table, diags);
    let dated = datetimes(table.get_mut(), diags);
    let read = read_layer::<Layer>(table, dated, diags);
    Some(ParsedFile {
        id,
        layer: read.value?,
        table: read.table,
        removed: read.removed,
    })
}

/// TOML syntax only: the spanned tree in global offsets.
pub fn parse_table<'a>(
    sources: &'a SourceMap,
    id: FileId,
    diags: &mut Diagnostics,
) -> Option<Spanned<Table<'a>>> {
    let file = sources.file(id);
    let (table, errors) = DeTable::parse_recoverable(&file.text);
    if !errors.is_empty() {
        for e in errors {
            let local = e.span().unwrap_or(0..0);
            let span = file.base + local.start..file.base + local.end;
            let message = e.message().trim().to_string();
            diags.push(
                Diagnostic::error(
                    Code::TomlSyntax,
                    format!("invalid TOML: {}", first_line(&message)),
                )
                .at(span)
                .help(syntax_help(&message)),
            );
        }
        return None;
    }
    Some(shift_table_spanned(table, file.base))
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

fn syntax_help(message: &str) -> String {
    if message.contains("duplicate key") {
        "each key may be set once per table; remove one of them".into()
    } else if message.contains("string") {
        "strings are written in double quotes, e.g. memory = \"512MiB\"".into()
    } else {
        "see https://toml.io for the syntax".into()
    }
}

fn shift(span: Span, base: usize) -> Span {
    span.start + base..span.end + base
}

fn shift_table_spanned(table: Spanned<Table<'_>>, base: usize) -> Spanned<Table<'_>> {
    let span = table.span();
    Spanned::new(shift(span, base), shift_table(table.into_inner(), base))
}

fn shift_table(table: Table<'_>, base: usize) -> Table<'_> {
    let mut out = Table::new();
    for (k, v) in table {
        let ks = k.span();
        out.insert(
            Spanned::new(shift(ks, base), k.into_inner()),
            shift_node(v, base),
        );
    }
    out
}

fn shift_node(node: Node<'_>, base: usize) -> Node<'_> {
    let span = node.span();
    let value = match node.into_inner() {
        DeValue::Table(t) => DeValue::Table(shift_table(t, base)),
        DeValue::Array(a) => {
            let mut out = DeArray::new();
            for item in a.iter() {
                out.push(shift_node(item.clone(), base));
            }
            DeValue::Array(out)
        }
        other => other,
    };
    Spanned::new(shift(span, base), value)
}

/// The most mistakes [`read_layer`] reports for one tree. Each one costs a
/// new pass over the whole tree, so an input made of thousands of mistakes
/// would otherwise take time quadratic in its size.
pub const MAX_ERRORS_PER_FILE: usize = 100;

/// What [`read_layer`] read.
#[derive(Debug)]
pub struct Read<'a, T> {
    /// The typed value, read from the tree without the entries that had
    /// mistakes; `None` when a mistake could not be located or there were
    /// more than [`MAX_ERRORS_PER_FILE`].
    pub value: Option<T>,
    /// The tree without those entries.
    pub table: Spanned<Table<'a>>,
    /// Their dotted paths.
    pub removed: Vec<String>,
}

/// Deserialize `T` from a spanned tree, collecting every mistake (up to
/// [`MAX_ERRORS_PER_FILE`], counting the entries already `removed` from
/// it): each mistaken entry is reported and removed, and the rest is read
/// again.
pub fn read_layer<'a, T: for<'de> Deserialize<'de>>(
    table: Spanned<Table<'a>>,
    mut removed: Vec<String>,
    diags: &mut Diagnostics,
) -> Read<'a, T> {
    let mut work = table;
    // Each round removes one entry, so the loop ends; the bound is a guard.
    while removed.len() < MAX_ERRORS_PER_FILE {
        let de = toml::de::Deserializer::from(work.clone());
        let e = match T::deserialize(de) {
            Ok(value) => {
                return Read {
                    value: Some(value),
                    table: work,
                    removed,
                };
            }
            Err(e) => e,
        };
        let span = e.span();
        let path = span.as_ref().and_then(|s| remove_at(work.get_mut(), s));
        let mut d = describe(e.message(), span.clone(), path.as_deref());
        if removed.len() + 1 == MAX_ERRORS_PER_FILE {
            d = d.note(format!(
                "this is mistake {MAX_ERRORS_PER_FILE} in this file; dify-cfg stops reading it here, fix these and run it again"
            ));
        }
        diags.push(d);
        let Some(path) = path else { break };
        removed.push(path);
    }
    Read {
        value: None,
        table: work,
        removed,
    }
}

/// Remove every date-time of a file's `table`, each with a `wrong-type`
/// error, and say where they were: no setting takes one. serde sees a
/// date-time as a table and would call it one. Once per file: the trees
/// merged from files have none left.
fn datetimes(table: &mut Table<'_>, diags: &mut Diagnostics) -> Vec<String> {
    if table.values().any(|v| has_datetime(v.get_ref())) {
        datetimes_at(table, &mut Vec::new(), diags)
    } else {
        Vec::new()
    }
}

/// [`datetimes`] of `table`, at `path`.
fn datetimes_at(
    table: &mut Table<'_>,
    path: &mut Vec<String>,
    diags: &mut Diagnostics,
) -> Vec<String> {
    let mut removed = Vec::new();
    let keys: Vec<String> = table.keys().map(|k| k.get_ref().to_string()).collect();
    for key in keys {
        let Some(node) = table.get_mut(key.as_str()) else {
            continue;
        };
        path.push(key.clone());
        let found = match node.get_mut() {
            DeValue::Datetime(_) => Some(("is a date-time", "a TOML date-time")),
            DeValue::Table(t) => {
                removed.extend(datetimes_at(t, path, diags));
                None
            }
            DeValue::Array(a) if a.iter().any(|v| has_datetime(v.get_ref())) => {
                Some(("holds a date-time", "an array with a TOML date-time"))
            }
            _ => None,
        };
        if let Some((what, label)) = found {
            let dotted = path.join(".");
            diags.push(
                Diagnostic::error(
                    Code::WrongType,
                    format!("`{dotted}` {what}, which no setting takes"),
                )
                .at(node.span())
                .label(label)
                .help("write text in double quotes, e.g. `\"2026-05-27\"`"),
            );
            removed.push(dotted);
            table.remove(key.as_str());
        }
        path.pop();
    }
    removed
}

fn has_datetime(v: &DeValue<'_>) -> bool {
    match v {
        DeValue::Datetime(_) => true,
        DeValue::Array(a) => a.iter().any(|i| has_datetime(i.get_ref())),
        DeValue::Table(t) => t.values().any(|i| has_datetime(i.get_ref())),
        _ => false,
    }
}

/// Turn a serde error into a diagnostic with a stable code.
fn describe(message: &str, span: Option<Span>, path: Option<&str>) -> Diagnostic {
    let ticks = backticked(message);
    let place = path.map(|p| format!(" at `{p}`")).unwrap_or_default();
    let d = if message.starts_with("unknown field") {
        let key = ticks.first().cloned().unwrap_or_default();
        let expected: Vec<&str> = ticks.iter().skip(1).map(String::as_str).collect();
        let parent = path.and_then(|p| p.rsplit_once('.').map(|(a, _)| a.to_string()));
        let what = match &parent {
            Some(p) => format!("unknown key `{key}` in `[{p}]`"),
            None => format!("unknown key `{key}`"),
        };
        let d = Diagnostic::error(Code::UnknownKey, what).label("unknown key");
        match did_you_mean(&key, expected.iter().copied()) {
            Some(s) => d.help(format!("did you mean `{s}`?")),
            None if expected.is_empty() => d.help("this table takes no keys"),
            None => d.help(format!("expected one of: {}", expected.join(", "))),
        }
    } else if message.starts_with("unknown variant") {
        let value = ticks.first().cloned().unwrap_or_default();
        let expected: Vec<&str> = ticks.iter().skip(1).map(String::as_str).collect();
        let d = Diagnostic::error(
            Code::InvalidValue,
            format!("`{value}` is not a valid value{place}"),
        )
        .label("not allowed here");
        match did_you_mean(&value, expected.iter().copied()) {
            Some(s) => d.help(format!("did you mean `{s}`?")),
            None => d.help(format!("expected one of: {}", expected.join(", "))),
        }
    } else if too_large(message) {
        Diagnostic::error(Code::OutOfRange, format!("the number is too large{place}"))
            .label("does not fit in 64 bits")
            .help("no setting takes a number this large; check the value")
    } else if message.starts_with("invalid type") {
        let (found, expected) = message
            .trim_start_matches("invalid type: ")
            .split_once(", expected ")
            .unwrap_or((message, "another type"));
        Diagnostic::error(
            Code::WrongType,
            format!(
                "expected {}{place}, found {}",
                plain(expected),
                plain(found)
            ),
        )
        .label(format!("expected {}", plain(expected)))
        .help(type_help(expected))
    } else if message.contains("did not match any variant of untagged enum") {
        let what = if message.contains("SecretValue") {
            "a secret must be a reference such as { env = \"NAME\" }"
        } else if message.contains("EnvValue") {
            "an `[env]` value must be a string, a number or a boolean"
        } else {
            "expected a number"
        };
        Diagnostic::error(Code::WrongType, format!("wrong type{place}"))
            .label(what)
            .help(what)
    } else {
        Diagnostic::error(
            Code::InvalidValue,
            format!("{}{place}", first_line(message)),
        )
        .label("invalid")
    };
    d.at_opt(span)
}

/// Whether serde's `message` is about an integer beyond 64 bits: one
/// beyond `u64` (`as i128`), or one beyond `i64` offered where an `i64`
/// (or a number that must fit one) was expected.
fn too_large(message: &str) -> bool {
    if message.starts_with("invalid type: integer") && message.contains(" as i128") {
        return true;
    }
    message
        .strip_prefix("invalid value: integer `")
        .and_then(|rest| rest.split_once('`'))
        .and_then(|(n, _)| n.parse::<i128>().ok())
        .is_some_and(|n| i64::try_from(n).is_err())
}

/// serde's words for types, in TOML's words.
fn plain(s: &str) -> String {
    let s = s.replace("struct ", "");
    match s.as_str() {
        "i64" | "u64" | "i32" | "u32" | "u16" | "u8" => "an integer".to_string(),
        "f64" | "f32" => "a number".to_string(),
        "sequence" | "a sequence" => "an array".to_string(),
        "map" | "a map" => "a table".to_string(),
        "a boolean" | "bool" => "a boolean (`true` or `false`)".to_string(),
        _ => s
            .replace("a sequence", "an array")
            .replace("a map", "a table"),
    }
}

fn type_help(expected: &str) -> String {
    if expected.contains("string") {
        "write the value in double quotes".into()
    } else if expected.contains("bool") {
        "write `true` or `false`".into()
    } else if expected.contains("i64") || expected.contains("integer") {
        "write a whole number without quotes".into()
    } else if expected.contains("sequence") {
        "write an array, e.g. [\"a\", \"b\"]".into()
    } else {
        format!("expected {}", plain(expected))
    }
}

fn backticked(s: &str) -> Vec<String> {
    s.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// Remove the deepest entry whose key or value span holds `span`; returns
/// its dotted path. Tables written with a `[header]` do not span their
/// body, so the whole tree is searched rather than only enclosing spans.
pub fn remove_at(table: &mut Table<'_>, span: &Span) -> Option<String> {
    let path = find_path(table, span)?;
    remove_path(table, &path);
    Some(path.join("."))
}

/// Dotted path segments (keys, or array indices) of the deepest entry
/// whose key or value span holds `span`.
fn find_path(table: &Table<'_>, span: &Span) -> Option<Vec<String>> {
    let mut best: Option<Vec<String>> = None;
    for (k, v) in table.iter() {
        let here = vec![k.get_ref().to_string()];
        if contains(&k.span(), span) {
            return Some(here);
        }
        if let Some(mut deeper) = find_in_node(v.get_ref(), span) {
            let mut p = here.clone();
            p.append(&mut deeper);
            if best.as_ref().is_none_or(|b| b.len() < p.len()) {
                best = Some(p);
            }
        } else if contains(&v.span(), span) && best.is_none() {
            best = Some(here);
        }
    }
    best
}

fn find_in_node(node: &DeValue<'_>, span: &Span) -> Option<Vec<String>> {
    match node {
        DeValue::Table(t) => find_path(t, span),
        DeValue::Array(a) => a.iter().enumerate().find_map(|(i, v)| {
            if let Some(mut deeper) = find_in_node(v.get_ref(), span) {
                let mut p = vec![i.to_string()];
                p.append(&mut deeper);
                Some(p)
            } else if contains(&v.span(), span) {
                Some(vec![i.to_string()])
            } else {
                None
            }
        }),
        _ => None,
    }
}

fn remove_path(table: &mut Table<'_>, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        table.remove(first.as_str());
    } else if let Some(node) = table.get_mut(first.as_str()) {
        remove_in_node(node.get_mut(), rest);
    }
}

fn remove_in_node(node: &mut DeValue<'_>, path: &[String]) {
    match node {
        DeValue::Table(t) => remove_path(t, path),
        DeValue::Array(a) => {
            let Some((first, rest)) = path.split_first() else {
                return;
            };
            let Ok(idx) = first.parse::<usize>() else {
                return;
            };
            if rest.is_empty() {
                let mut out = DeArray::new();
                for (i, item) in a.iter().enumerate() {
                    if i != idx {
                        out.push(item.clone());
                    }
                }
                *a = out;
            } else if let Some(item) = a.as_mut().get_mut(idx) {
                remove_in_node(item.get_mut(), rest);
            }
        }
        _ => {}
    }
}

fn contains(outer: &Span, inner: &Span) -> bool {
    outer.start <= inner.start
        && inner.end <= outer.end
        && !(outer.start == outer.end && inner.start != outer.start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::source::FileKind;

    fn run(text: &str) -> (SourceMap, Diagnostics, Option<Layer>) {
        let mut map = SourceMap::new();
        map.add("pad.toml".into(), FileKind::Profile, "x = 1\n".into());
        let id = map.add("profiles/p.toml".into(), FileKind::Profile, text.into());
        let mut diags = Diagnostics::new();
        let layer = parse_file(&map, id, &mut diags).map(|p| p.layer);
        (map, diags, layer)
    }

    #[test]
    fn every_unknown_key_is_reported_with_location() {
        let (map, diags, parsed) =
            run("[device]\nmemroy = \"4GiB\"\ncpus = 2\nrezerve = \"20%\"\n[servics.api]\n");
        // The rest of the file is read.
        let device = parsed.and_then(|l| l.device).expect("the rest is read");
        assert!(device.cpus.is_some());
        let found: Vec<_> = diags
            .iter()
            .map(|d| {
                (
                    d.code,
                    map.location(d.span.as_ref().unwrap()).to_string(),
                    d.help.clone(),
                )
            })
            .collect();
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found.contains(&(
            Code::UnknownKey,
            "profiles/p.toml:2:1".into(),
            Some("did you mean `memory`?".into())
        )));
        assert!(found.contains(&(
            Code::UnknownKey,
            "profiles/p.toml:4:1".into(),
            Some("did you mean `reserve`?".into())
        )));
        assert!(found.contains(&(
            Code::UnknownKey,
            "profiles/p.toml:5:2".into(),
            Some("did you mean `services`?".into())
        )));
    }

    #[test]
    fn wrong_types_and_values_are_located() {
        let (map, diags, _) = run(
            "target = \"composee\"\n[device]\ncpus = \"two\"\n[services.api]\nreplicas = true\n",
        );
        let found: Vec<_> = diags
            .iter()
            .map(|d| (d.code, map.location(d.span.as_ref().unwrap()).to_string()))
            .collect();
        assert!(
            found.contains(&(Code::InvalidValue, "profiles/p.toml:1:10".into())),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|(c, l)| *c == Code::WrongType && l == "profiles/p.toml:3:8"),
            "{found:?}"
        );
        assert!(
            found.contains(&(Code::WrongType, "profiles/p.toml:5:12".into())),
            "{found:?}"
        );
        let d = diags.iter().find(|d| d.code == Code::InvalidValue).unwrap();
        assert_eq!(d.help.as_deref(), Some("did you mean `compose`?"));
    }

    #[test]
    fn a_file_of_mistakes_stops_at_the_cap() {
        let text: String = (0..20_000).map(|i| format!("k{i} = 1\n")).collect();
        let (_, diags, parsed) = run(&text);
        assert!(parsed.is_none());
        assert_eq!(diags.error_count(), MAX_ERRORS_PER_FILE);
        assert!(
            diags
                .iter()
                .any(|d| d.notes.iter().any(|n| n.contains("stops reading"))),
            "{diags:?}"
        );
    }

    #[test]
    fn syntax_errors_are_located() {
        let (map, diags, parsed) = run("[device]\nmemory = 4GiB\n");
        assert!(parsed.is_none());
        let d = diags.iter().next().unwrap();
        assert_eq!(d.code, Code::TomlSyntax);
        assert_eq!(map.location(d.span.as_ref().unwrap()).line, 2);
    }

    #[test]
    fn clean_file_reads_with_global_spans() {
        let (map, diags, parsed) = run("description = \"x\"\n[device]\nmemory = \"4GiB\"\n");
        assert!(diags.is_empty(), "{diags:?}");
        let layer = parsed.unwrap();
        let mem = layer.device.unwrap().memory.unwrap();
        assert_eq!(mem.get_ref(), "4GiB");
        assert_eq!(
            map.location(&mem.span()).to_string(),
            "profiles/p.toml:3:10"
        );
    }
}

//! The schema against the parser: every table the schema describes takes
//! exactly the keys the parser takes there, and a file with every key of
//! the schema, each with a value of the schema's type, reads cleanly. A
//! key added to the parser and not to the schema (or a schema type that
//! says other than the parser) fails here.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::schema;
use crate::input::layer::Layer;

/// A key no table has.
const PROBE: &str = "zzzq-not-a-key";

/// Follow a `$ref` into the schema's definitions.
fn resolve<'s>(root: &'s Value, node: &'s Value) -> &'s Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.trim_start_matches("#/definitions/");
            let def = &root["definitions"][name];
            assert!(!def.is_null(), "dangling $ref {r}");
            resolve(root, def)
        }
        None => match node.get("allOf").and_then(Value::as_array) {
            // A `$ref` with a description beside it (draft 7 ignores
            // siblings of `$ref`, so schemars wraps it).
            Some(all) if all.len() == 1 => resolve(root, &all[0]),
            _ => node,
        },
    }
}

/// One step from a table to what is inside it.
#[derive(Debug, Clone)]
enum Step {
    Key(String),
    /// An element of an array of tables.
    Item,
    /// An entry of a free-keyed table (`[env]`, `[secrets]`, `[labels]`).
    Entry,
}

/// Every table the schema describes (with its keys), by its steps from
/// the file's top level.
fn tables(root: &Value) -> Vec<(Vec<Step>, BTreeSet<String>)> {
    let mut out = Vec::new();
    walk(root, root, &mut Vec::new(), &mut out);
    out
}

fn walk(
    root: &Value,
    node: &Value,
    path: &mut Vec<Step>,
    out: &mut Vec<(Vec<Step>, BTreeSet<String>)>,
) {
    let node = resolve(root, node);
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        assert_eq!(
            node.get("additionalProperties"),
            Some(&Value::Bool(false)),
            "the table at {path:?} must deny unknown keys, as the parser does"
        );
        out.push((path.clone(), props.keys().cloned().collect()));
        for (key, sub) in props {
            path.push(Step::Key(key.clone()));
            walk(root, sub, path, out);
            path.pop();
        }
    } else if let Some(items) = node.get("items") {
        path.push(Step::Item);
        walk(root, items, path, out);
        path.pop();
    } else if let Some(values) = node.get("additionalProperties").filter(|v| v.is_object()) {
        path.push(Step::Entry);
        walk(root, values, path, out);
        path.pop();
    }
}

/// A document holding `leaf` at `path`.
fn nest(path: &[Step], leaf: Value) -> Value {
    match path.split_first() {
        None => leaf,
        Some((Step::Key(k), rest)) => json!({ k.as_str(): nest(rest, leaf) }),
        Some((Step::Item, rest)) => json!([nest(rest, leaf)]),
        Some((Step::Entry, rest)) => json!({ "SOME_NAME": nest(rest, leaf) }),
    }
}

/// Read a document as a profile or site file would be read.
fn read(doc: &Value) -> Result<Layer, String> {
    let value = toml::Value::try_from(doc).map_err(|e| e.to_string())?;
    let text = toml::to_string(&value).map_err(|e| e.to_string())?;
    toml::from_str::<Layer>(&text).map_err(|e| format!("{}\n{text}", e.message()))
}

/// The keys the parser takes in the table at `path`, as its refusal of an
/// unknown key lists them.
fn parser_keys(path: &[Step]) -> BTreeSet<String> {
    let doc = nest(path, json!({ PROBE: 1 }));
    let message = match read(&doc) {
        Ok(_) => panic!("the parser took `{PROBE}` at {path:?}"),
        Err(m) => m,
    };
    let first = message.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("unknown field `{PROBE}`")),
        "at {path:?}: {message}"
    );
    first
        .split('`')
        .skip(1)
        .step_by(2)
        .skip(1)
        .map(str::to_string)
        .collect()
}

#[test]
fn every_table_takes_the_keys_the_parser_takes() {
    let root = schema();
    let tables = tables(&root);
    // The top level, the services, the database, network, TLS, egress,
    // secret references ...: every table of the language.
    assert!(tables.len() >= 20, "{} tables", tables.len());
    for (path, keys) in &tables {
        assert_eq!(
            &parser_keys(path),
            keys,
            "the schema's keys at {path:?} differ from the parser's"
        );
    }
}

/// A value of the schema's type at `node`: every key of every table, the
/// first of an enumeration.
fn sample(root: &Value, node: &Value) -> Value {
    let node = resolve(root, node);
    if let Some(first) = node.get("enum").and_then(|e| e.get(0)) {
        return first.clone();
    }
    if let Some(value) = node.get("const") {
        return value.clone();
    }
    if let Some(first) = node.get("oneOf").and_then(|e| e.get(0)) {
        return sample(root, first);
    }
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        let table: Map<String, Value> = props
            .iter()
            .map(|(k, v)| (k.clone(), sample(root, v)))
            .collect();
        return Value::Object(table);
    }
    if let Some(items) = node.get("items") {
        return json!([sample(root, items)]);
    }
    if let Some(values) = node.get("additionalProperties").filter(|v| v.is_object()) {
        return json!({ "SOME_NAME": sample(root, values) });
    }
    let first_type = match node.get("type") {
        Some(Value::Array(types)) => types.first().and_then(Value::as_str),
        Some(t) => t.as_str(),
        None => None,
    };
    match first_type {
        Some("string") => json!("x"),
        Some("integer") => json!(1),
        Some("number") => json!(1.5),
        Some("boolean") => json!(true),
        other => panic!("no sample for a schema of type {other:?}: {node}"),
    }
}

#[test]
fn a_file_with_every_key_of_the_schema_reads() {
    let root = schema();
    let doc = sample(&root, &root);
    if let Err(e) = read(&doc) {
        panic!("the parser refuses what the schema allows: {e}");
    }
}

#[test]
fn a_literal_secret_and_an_unknown_key_are_outside_the_schema() {
    let root = schema();
    let secrets = resolve(&root, &root["properties"]["secrets"]);
    let entry = resolve(&root, &secrets["additionalProperties"]);
    assert_eq!(entry["type"], "object", "{entry}");
    assert_eq!(root["additionalProperties"], false);
    assert!(root["properties"]["device"].is_object());
}

#[test]
fn the_text_is_stable_json_without_null() {
    let text = super::schema_text();
    assert!(text.ends_with("}\n"));
    assert_eq!(text, super::schema_text());
    assert!(!text.contains("\"null\""), "TOML has no null:\n{text}");
    assert!(text.contains("http://json-schema.org/draft-07/schema#"));
}

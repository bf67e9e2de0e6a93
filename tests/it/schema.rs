//! The editor schema: the committed copy is what `dify-cfg schema` prints;
//! the example fleet's `.taplo.toml` is the one `init` writes; and taplo,
//! the TOML language server's own checker, reading that configuration,
//! accepts the example fleet, a new fleet and the corpus's valid base, and
//! refuses every unknown-key case of the corpus at the key the compiler
//! names. (That the schema's keys are the parser's is
//! `compiler/input/schema/tests.rs`.)

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

use crate::support::{available, dify_cfg, on_path, output_text, repo};

/// The committed schema.
const SCHEMA: &str = "schema/dify-cfg.schema.json";

#[test]
fn the_committed_schema_is_what_dify_cfg_schema_prints() {
    let o = dify_cfg(&["schema"], Path::new("/"));
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let printed = String::from_utf8(o.stdout).unwrap();
    let committed = fs::read_to_string(repo().join(SCHEMA)).unwrap_or_default();
    assert!(
        printed == committed,
        "{SCHEMA} is stale: the input language changed; regenerate it with\n  cargo run -- schema > {SCHEMA}\nand commit it with the change"
    );
    // For machines: the same schema under `schema`.
    let o = dify_cfg(&["--format", "json", "schema"], Path::new("/"));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(report["schema"], schema);
}

#[test]
fn the_example_fleet_is_hooked_up_as_init_hooks_up_a_new_one() {
    let root = fs::read(repo().join(".taplo.toml")).unwrap();
    let scaffold = fs::read(repo().join("scaffold/.taplo.toml")).unwrap();
    assert_eq!(
        root, scaffold,
        ".taplo.toml differs from scaffold/.taplo.toml"
    );
    let text = String::from_utf8(root).unwrap();
    assert!(text.contains(&format!("path = \"{SCHEMA}\"")), "{text}");
}

/// taplo, from `$DIFY_CFG_TOOLS` (where `.ci/run` installs it) or the
/// `PATH`.
fn taplo() -> Option<PathBuf> {
    let tools = std::env::var_os("DIFY_CFG_TOOLS")
        .map_or_else(|| PathBuf::from("/opt/dify-cfg-tools"), PathBuf::from);
    let installed = tools.join("node_modules/.bin/taplo");
    let found = if installed.is_file() {
        Some(installed)
    } else if on_path("taplo") {
        Some(PathBuf::from("taplo"))
    } else {
        None
    };
    available(
        "taplo",
        found.is_some(),
        "install it with `npm install --prefix \"$DIFY_CFG_TOOLS\" @taplo/cli` (see .ci/run)",
    )
    .then(|| found.unwrap())
}

/// `taplo check` of `files` (relative to `dir`, which holds the
/// `.taplo.toml` it reads): whether it passed, and what it said.
fn taplo_check(taplo: &Path, dir: &Path, files: &[String]) -> (bool, String) {
    assert!(!files.is_empty(), "nothing to check in {}", dir.display());
    let o = Command::new(taplo)
        .arg("check")
        .args(files)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run taplo");
    (o.status.success(), output_text(&o))
}

/// The `.toml` files of `dir/sub`, as `sub/<name>`.
fn tomls(dir: &Path, sub: &str) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(dir.join(sub))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .map(|n| format!("{sub}/{n}"))
        .collect();
    out.sort();
    out
}

/// A new fleet made by `init` in a temporary folder.
fn new_fleet() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let o = dify_cfg(&["init"], tmp.path());
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    tmp
}

#[test]
fn taplo_accepts_the_example_fleet_a_new_one_and_the_corpus_base() {
    let Some(taplo) = taplo() else { return };
    let mut files = tomls(repo(), "profiles");
    files.extend(tomls(repo(), "sites"));
    let (ok, said) = taplo_check(&taplo, repo(), &files);
    assert!(ok, "taplo refuses the example fleet:\n{said}");

    let fleet = new_fleet();
    let dir = fleet.path();
    for sub in ["profiles", "sites"] {
        let base = repo().join("tests/bad/_base").join(sub);
        fs::create_dir_all(dir.join(sub).join("base")).unwrap();
        for f in tomls(&base, ".") {
            fs::copy(base.join(&f), dir.join(sub).join("base").join(&f)).unwrap();
        }
    }
    let mut files = tomls(dir, "profiles");
    files.extend(tomls(dir, "sites"));
    files.extend(tomls(dir, "profiles/base"));
    files.extend(tomls(dir, "sites/base"));
    let (ok, said) = taplo_check(&taplo, dir, &files);
    // (That the schema is in force in such a fleet, the unknown-key cases
    // show, checked in one.)
    assert!(ok, "taplo refuses a new fleet or the corpus base:\n{said}");
}

#[derive(Deserialize)]
struct Case {
    expect: Vec<Expect>,
}

#[derive(Deserialize)]
struct Expect {
    code: String,
    at: Option<String>,
}

/// The key that starts at `line:col` (1-based) of `text`.
fn key_at(text: &str, line: usize, col: usize) -> String {
    let text = text.trim_start_matches('\u{feff}');
    let l = text.lines().nth(line - 1).unwrap_or_default();
    l.chars()
        .skip(col - 1)
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

/// taplo's errors: each message with the places it names.
fn taplo_errors(said: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut message = String::new();
    for line in said.lines() {
        if let Some(m) = line.strip_prefix("error: ") {
            message = m.to_string();
        } else if let Some((_, at)) = line.split_once("┌─ ") {
            out.push((message.clone(), at.trim().to_string()));
        }
    }
    out
}

#[test]
fn taplo_refuses_every_unknown_key_case_at_its_key() {
    let Some(taplo) = taplo() else { return };
    let fleet = new_fleet();
    let dir = fleet.path();
    let cases = repo().join("tests/bad/unknown-key");
    let mut files = Vec::new();
    // (file as given to taplo, line, column, key)
    let mut expected = Vec::new();
    for case in fs::read_dir(&cases).unwrap().flatten() {
        let name = case.file_name().to_string_lossy().into_owned();
        let spec: Case =
            toml::from_str(&fs::read_to_string(case.path().join("case.toml")).unwrap()).unwrap();
        for e in spec.expect.iter().filter(|e| e.code == "unknown-key") {
            let at = e.at.as_deref().unwrap();
            let mut parts = at.rsplitn(3, ':');
            let col: usize = parts.next().unwrap().parse().unwrap();
            let line: usize = parts.next().unwrap().parse().unwrap();
            let rel = parts.next().unwrap();
            let (sub, file) = rel.split_once('/').unwrap();
            let text = fs::read_to_string(case.path().join(rel)).unwrap();
            let to = format!("{sub}/{name}/{file}");
            fs::create_dir_all(dir.join(sub).join(&name)).unwrap();
            if text.starts_with('\u{feff}') {
                // taplo reads no byte order mark (dify-cfg does): the file
                // as it is fails, and without the mark it fails at its key.
                fs::write(dir.join(&to), &text).unwrap();
                let (ok, said) = taplo_check(&taplo, dir, std::slice::from_ref(&to));
                assert!(!ok, "taplo accepts {to}:\n{said}");
                let to = format!("{sub}/{name}/without-mark-{file}");
                fs::write(dir.join(&to), text.trim_start_matches('\u{feff}')).unwrap();
                expected.push((to.clone(), line, col, key_at(&text, line, col)));
                files.push(to);
            } else {
                fs::write(dir.join(&to), &text).unwrap();
                expected.push((to.clone(), line, col, key_at(&text, line, col)));
                files.push(to);
            }
        }
    }
    files.sort();
    files.dedup();
    assert!(expected.len() >= 15, "{expected:?}");
    let (ok, said) = taplo_check(&taplo, dir, &files);
    assert!(!ok, "taplo accepts the unknown-key cases:\n{said}");
    let errors = taplo_errors(&said);
    for (file, line, col, key) in &expected {
        assert!(!key.is_empty(), "no key at {file}:{line}:{col}");
        let place = format!("/{file}:{line}:{col}");
        // "('memroy' was unexpected)", "('memroy', 'rezerve' were unexpected)"
        let named = format!("'{key}'");
        assert!(
            errors.iter().any(|(m, at)| at.ends_with(&place)
                && m.starts_with("Additional properties are not allowed")
                && m.contains(&named)),
            "taplo does not refuse `{key}` at {file}:{line}:{col}:\n{said}"
        );
    }
}

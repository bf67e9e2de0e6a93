//! The shape of `compiler/`: the folders are the pipeline's stages, and
//! dependencies point one way, down [`LAYERS`]; no file module uses another
//! that (through any chain) uses it back (read from the `crate::` paths of
//! the source, leaving out test code, which may use anything); no file is
//! over [`MAX_FILE_LINES`] lines, no function over [`MAX_FN_LINES`].

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// The top-level modules, lowest first: each may use only those before it.
const LAYERS: &[&str] = &[
    "base", "input", "model", "dify", "validate", "plan", "render", "verify", "emit", "git",
    "driver", "gitops", "cli",
];

/// The most lines a source file of `compiler/` may have.
const MAX_FILE_LINES: usize = 800;
/// The most lines a function may have, from `fn` to its closing brace.
const MAX_FN_LINES: usize = 150;

/// Every file module of `compiler/` (`plan::compose::services`, ...) with
/// its source, test files (`tests.rs`, `fixtures.rs`) left out.
fn modules() -> BTreeMap<String, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("compiler");
    let mut out = BTreeMap::new();
    for entry in walkdir::WalkDir::new(&src).sort_by_file_name() {
        let entry = entry.unwrap();
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let rel = path.strip_prefix(&src).unwrap().with_extension("");
        let mut parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if parts.last().is_some_and(|p| p == "mod") {
            parts.pop();
        }
        let last = parts.last().map(String::as_str);
        if matches!(last, Some("lib" | "main" | "tests" | "fixtures")) {
            continue;
        }
        let text = fs::read_to_string(path).unwrap();
        out.insert(parts.join("::"), without_tests(&text));
    }
    out
}

/// `text` without `#[cfg(test)]` items and without comment lines.
fn without_tests(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let item = &rest[at..];
        let brace = item.find('{');
        let semi = item.find(';');
        let end = match (brace, semi) {
            (Some(b), Some(s)) if s < b => s + 1,
            (None, Some(s)) => s + 1,
            (Some(b), _) => {
                let mut depth = 0usize;
                let mut end = item.len();
                for (i, c) in item[b..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = b + i + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                end
            }
            (None, None) => item.len(),
        };
        rest = &item[end..];
    }
    out.push_str(rest);
    out.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths a source names after `crate::`, with `use crate::a::{b, c}`
/// groups spread out (`a::b`, `a::c`). A `use crate::{a::b, c}` is not
/// read, so [`every_folder_is_a_layer_and_uses_only_those_below`] refuses it.
fn crate_paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (at, _) in text.match_indices("crate::") {
        let rest = &text[at + "crate::".len()..];
        let path: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let path = path.trim_end_matches(':').to_string();
        let after = &rest[path.len()..];
        if let Some(group) = after.strip_prefix("::{")
            && let Some(close) = group.find('}')
        {
            for item in group[..close].split(',') {
                let item = item.trim().split([' ', '{']).next().unwrap_or("");
                if !item.is_empty() {
                    out.push(format!("{path}::{}", item.trim_end_matches(':')));
                }
            }
        }
        out.push(path);
    }
    out
}

/// The module a path names: its longest prefix that is a module.
fn module_of<'m>(path: &str, modules: &'m BTreeMap<String, String>) -> Option<&'m str> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("::"))
        .find_map(|p| modules.get_key_value(&p).map(|(k, _)| k.as_str()))
}

/// Which file modules each file module uses (its own ancestors left out:
/// a file may use what its folder's `mod.rs` declares).
fn edges(modules: &BTreeMap<String, String>) -> BTreeMap<&str, BTreeSet<&str>> {
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (name, text) in modules {
        let used = edges.entry(name.as_str()).or_default();
        for path in crate_paths(text) {
            if let Some(target) = module_of(&path, modules)
                && target != name
                && !name.starts_with(&format!("{target}::"))
            {
                used.insert(target);
            }
        }
    }
    edges
}

fn top(module: &str) -> &str {
    module.split("::").next().unwrap()
}

#[test]
fn every_folder_is_a_layer_and_uses_only_those_below() {
    let modules = modules();
    assert!(
        modules.len() > 40 && modules.contains_key("plan::compose"),
        "could not read compiler/: {:?}",
        modules.keys().collect::<Vec<_>>()
    );
    let mut problems = Vec::new();
    for (m, text) in &modules {
        if text.contains("crate::{") {
            problems.push(format!(
                "`{m}`: write `use crate::a::{{b, c}}`, one `use` per module, not `use crate::{{...}}`"
            ));
        }
    }
    for m in modules.keys() {
        if !LAYERS.contains(&top(m)) {
            problems.push(format!("`{m}` is in no layer: add its folder to LAYERS"));
        }
    }
    let rank = |m: &str| LAYERS.iter().position(|l| *l == top(m));
    for (from, used) in edges(&modules) {
        for to in used {
            if let (Some(a), Some(b)) = (rank(from), rank(to))
                && b > a
            {
                problems.push(format!(
                    "`{from}` uses `{to}`, a layer above it ({} < {})",
                    top(from),
                    top(to)
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn no_circle_between_files() {
    let modules = modules();
    let edges = edges(&modules);
    // Tarjan's strongly connected components; a component of more than one
    // module is a circle.
    struct Walk<'a> {
        edges: &'a BTreeMap<&'a str, BTreeSet<&'a str>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        circles: Vec<Vec<&'a str>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, v: &'a str) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            self.on_stack.insert(v);
            for &w in self.edges.get(v).into_iter().flatten() {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(lw);
                } else if self.on_stack.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort_unstable();
                    self.circles.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        edges: &edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        circles: Vec::new(),
    };
    for m in modules.keys() {
        if !walk.index.contains_key(m.as_str()) {
            walk.visit(m);
        }
    }
    assert!(
        walk.circles.is_empty(),
        "modules that use each other: {:?}",
        walk.circles
    );
}

#[test]
fn the_checks_see_a_planted_circle_and_an_upward_use() {
    let mut modules = BTreeMap::new();
    modules.insert(
        "plan".to_string(),
        "use crate::render::Renderer;".to_string(),
    );
    modules.insert(
        "render".to_string(),
        "use crate::plan::{self, X};\nfn f() { crate::base::g() }\n// crate::cli\n".to_string(),
    );
    modules.insert("base".to_string(), String::new());
    let edges = edges(&modules);
    assert_eq!(edges["plan"], BTreeSet::from(["render"]));
    assert_eq!(edges["render"], BTreeSet::from(["base", "plan"]));
    let text = "fn a() { crate::cli::run() }\n#[cfg(test)]\nmod tests { use crate::cli; }\n";
    assert_eq!(crate_paths(&without_tests(text)), ["cli::run"]);
}

/// Each function of `text` (a rustfmt-formatted source) that runs over
/// `max` lines: its name and length. A function ends at the first line that
/// is its own indentation followed by `}`.
fn long_functions(text: &str, max: usize) -> Vec<(String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let body = line.trim_start();
        let indent = &line[..line.len() - body.len()];
        let mut words = body.split_whitespace().peekable();
        while words
            .peek()
            .is_some_and(|w| w.starts_with("pub") || matches!(*w, "const" | "async" | "unsafe"))
        {
            words.next();
        }
        if words.next() != Some("fn") {
            continue;
        }
        let name: String = words
            .next()
            .unwrap_or("")
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        // The signature ends at the first line ending in `{` (a body) or
        // in `;` or `}` (a declaration, or a body on one line).
        let Some(open) = lines[i..].iter().position(|l| l.ends_with(['{', ';', '}'])) else {
            continue;
        };
        if !lines[i + open].ends_with('{') {
            continue;
        }
        let close = format!("{indent}}}");
        if let Some(end) = lines[i + 1..].iter().position(|l| *l == close) {
            let len = end + 2;
            if len > max {
                out.push((name, len));
            }
        }
    }
    out
}

#[test]
fn no_file_over_800_lines_and_no_function_over_150() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("compiler");
    let mut problems = Vec::new();
    let mut files = 0;
    for entry in walkdir::WalkDir::new(&src).sort_by_file_name() {
        let entry = entry.unwrap();
        if entry.path().extension().is_none_or(|e| e != "rs") {
            continue;
        }
        files += 1;
        let rel = entry
            .path()
            .strip_prefix(&src)
            .unwrap()
            .display()
            .to_string();
        let text = fs::read_to_string(entry.path()).unwrap();
        let n = text.lines().count();
        if n > MAX_FILE_LINES {
            problems.push(format!("compiler/{rel} has {n} lines: split it by concept"));
        }
        for (name, len) in long_functions(&text, MAX_FN_LINES) {
            problems.push(format!("compiler/{rel}: `{name}` has {len} lines"));
        }
    }
    assert!(files > 40, "read only {files} files under compiler/");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_length_check_sees_a_long_function() {
    let mut text = String::from("impl X {\n    pub(crate) fn long(&self) {\n");
    text.push_str(&"        step();\n".repeat(150));
    text.push_str("    }\n    fn short() {}\n    fn declared(\n        a: u8,\n    );\n}\n");
    text.push_str("fn two() {\n    a();\n}\n");
    assert_eq!(long_functions(&text, 150), [("long".to_string(), 152)]);
    assert!(long_functions(&text, 152).is_empty());
}

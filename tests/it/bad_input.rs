//! The bad-input corpus under `tests/bad/`.
//!
//! `tests/bad/_base/` is a small valid fleet: profiles `base` <- `mid` <- `top`
//! (a three-level `extends` chain) and sites `a` (profile `top`) and `b`
//! (profile `base`). Every other directory is named after a diagnostic code
//! and holds cases, `tests/bad/<code>/<case>/`: the files the case adds to or
//! replaces in `_base` (a relative path tree) and `case.toml`:
//!
//! ```toml
//! # what the case is about, one line
//! expect = [{ code = "unknown-key", at = "profiles/mid.toml:4:1", help = "did you mean `memory`?" }]
//! command = "check"                  # optional, default "build"
//! delete = ["sites/b.toml"]          # optional: base files or directories to remove
//! generate = [{ path = "sites/huge.toml", kind = "large" }]  # optional
//! extra-ok = true                    # optional: allow errors beyond `expect`
//! warning = true                     # optional: the expected diagnostics are warnings
//! ```
//!
//! Each expectation names an error's `code` and its exact `at`
//! (`path:line:col`, or no `at` for an error without a location); `help`
//! (optional) must equal the diagnostic's help, and every string in `notes`
//! (optional) must occur in its notes. Generated inputs are not committed:
//! `large` (10 MiB of TOML comment lines), `non-utf8` (a 0xff byte in line 2,
//! column 23), `non-utf8-name` (a valid site file whose name has a 0xff
//! byte after the path's stem: `sites/c.toml` makes `sites/c\xff.toml`),
//! `symlink-outside` (a link to a file outside the root) and
//! `symlink-dangling` (a link to nothing).
//!
//! For every case the harness copies `_base` into a temp dir, builds it once
//! (exit 0) and snapshots `out/`, makes it a git repository and commits the
//! site branches (`dify-cfg commit`), applies the case, runs the command with
//! `--format json` and then with text output, then `commit --allow-dirty`
//! (which compiles the changed working tree), and checks: exit code 2, every
//! expected error at its place (and no other error), no panic, and `out/`
//! and every branch exactly as they were. A `warning` case instead checks
//! that `check` and `build` succeed and report exactly its warnings, and no
//! error. The whole text of each case's messages is an insta snapshot
//! besides ([`messages`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use crate::support;

mod messages;

const BIN: &str = env!("CARGO_BIN_EXE_dify-cfg");
/// The corpus must hold at least this many cases.
const MIN_CASES: usize = 40;
/// A single run of the binary taking longer than this is a failure.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

fn bad_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad")
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct CaseSpec {
    expect: Vec<Expect>,
    #[serde(default)]
    command: Option<String>,
    #[serde(default)]
    delete: Vec<String>,
    #[serde(default)]
    generate: Vec<Generate>,
    #[serde(default)]
    extra_ok: bool,
    #[serde(default)]
    warning: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    code: String,
    /// `path:line:col`; absent for an error without a location.
    at: Option<String>,
    help: Option<String>,
    #[serde(default)]
    notes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Generate {
    path: String,
    kind: GenKind,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum GenKind {
    Large,
    NonUtf8,
    NonUtf8Name,
    SymlinkOutside,
    SymlinkDangling,
}

struct Case {
    /// `<code>/<case>`.
    name: String,
    group: String,
    dir: PathBuf,
    spec: CaseSpec,
}

/// Every case of the corpus, sorted by name. Panics on a malformed corpus.
fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for group in sorted_dir(&bad_dir()) {
        let group_name = file_name(&group);
        if group_name == "_base" || !group.is_dir() {
            continue;
        }
        for dir in sorted_dir(&group) {
            assert!(dir.is_dir(), "{} is not a case directory", dir.display());
            let name = format!("{group_name}/{}", file_name(&dir));
            let text = fs::read_to_string(dir.join("case.toml"))
                .unwrap_or_else(|e| panic!("{name}/case.toml: {e}"));
            let spec: CaseSpec =
                toml::from_str(&text).unwrap_or_else(|e| panic!("{name}/case.toml: {e}"));
            assert!(!spec.expect.is_empty(), "{name}: `expect` is empty");
            out.push(Case {
                name,
                group: group_name.clone(),
                dir,
                spec,
            });
        }
    }
    out
}

fn sorted_dir(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// Copy a directory tree (files and directories only).
fn copy_tree(from: &Path, to: &Path, skip_top: &[&str]) {
    fs::create_dir_all(to).unwrap();
    for entry in walkdir::WalkDir::new(from).min_depth(1).sort_by_file_name() {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(from).unwrap();
        if rel.components().count() == 1 && skip_top.iter().any(|s| rel == Path::new(s)) {
            continue;
        }
        let dest = to.join(rel);
        if entry.file_type().is_dir() {
            fs::create_dir_all(&dest).unwrap();
        } else {
            fs::create_dir_all(dest.parent().unwrap()).unwrap();
            fs::copy(entry.path(), &dest)
                .unwrap_or_else(|e| panic!("copy {}: {e}", entry.path().display()));
        }
    }
}

/// Every entry under `dir`: files with their bytes, directories and links.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    if !dir.exists() {
        return out;
    }
    for entry in walkdir::WalkDir::new(dir).min_depth(1).sort_by_file_name() {
        let entry = entry.unwrap();
        let rel = entry
            .path()
            .strip_prefix(dir)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let ft = entry.file_type();
        let value = if ft.is_dir() {
            b"<dir>".to_vec()
        } else if ft.is_symlink() {
            format!(
                "<link to {}>",
                fs::read_link(entry.path()).unwrap().display()
            )
            .into_bytes()
        } else {
            fs::read(entry.path()).unwrap()
        };
        out.insert(rel, value);
    }
    out
}

fn generate(root: &Path, outside: &Path, g: &Generate) {
    let path = root.join(&g.path);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    match g.kind {
        GenKind::Large => {
            let line =
                "# padding: a valid-looking TOML comment line, repeated to make the file 10 MiB\n";
            let mut text = String::with_capacity(10 << 20);
            while text.len() < 10 << 20 {
                text.push_str(line);
            }
            fs::write(&path, text).unwrap();
        }
        GenKind::NonUtf8 => {
            // Line 2: `description = "Zürich ` is 22 characters (23 bytes),
            // then 0xff: the invalid byte is at 2:23.
            fs::write(
                &path,
                b"profile = \"base\"\ndescription = \"Z\xc3\xbcrich \xff\"\n",
            )
            .unwrap();
        }
        GenKind::NonUtf8Name => fs::write(non_utf8_name(&path), NON_UTF8_NAMED_SITE).unwrap(),
        GenKind::SymlinkOutside => {
            let target = outside.join(file_name(&path));
            fs::write(
                &target,
                "# a file outside the config root\ndescription = \"outside\"\n",
            )
            .unwrap();
            std::os::unix::fs::symlink(&target, &path).unwrap();
        }
        GenKind::SymlinkDangling => {
            std::os::unix::fs::symlink(root.join("no-such-file.toml"), &path).unwrap();
        }
    }
}

/// A valid site, for a file whose name is not UTF-8.
const NON_UTF8_NAMED_SITE: &str = "profile = \"base\"\ndescription = \"Site C\"\n\n[network]\nhostname = \"c.example.org\"\nlan = \"10.30.3.0/24\"\naddress = \"10.30.3.10\"\n";

/// `path` with a 0xff byte after its stem (`sites/c.toml`: `sites/c\xff.toml`).
fn non_utf8_name(path: &Path) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let mut name = path.file_stem().unwrap().as_bytes().to_vec();
    name.push(0xff);
    if let Some(ext) = path.extension() {
        name.push(b'.');
        name.extend_from_slice(ext.as_bytes());
    }
    path.with_file_name(std::ffi::OsStr::from_bytes(&name))
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Run the binary with its output in files (no pipe can fill up), with a deadline.
fn run(args: &[&str], scratch: &Path, tag: &str) -> Run {
    run_in(Path::new("."), args, scratch, tag)
}

/// [`run`] in the working directory `cwd`.
fn run_in(cwd: &Path, args: &[&str], scratch: &Path, tag: &str) -> Run {
    let out_path = scratch.join(format!("{tag}.stdout"));
    let err_path = scratch.join(format!("{tag}.stderr"));
    let mut child = Command::new(BIN)
        .current_dir(cwd)
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("cannot start dify-cfg");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if start.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    Run {
        code: status.and_then(|s| s.code()),
        stdout: String::from_utf8_lossy(&fs::read(&out_path).unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&fs::read(&err_path).unwrap()).into_owned(),
    }
}

/// A diagnostic as the JSON report gives it.
#[derive(Debug)]
struct Diag {
    severity: String,
    code: String,
    at: Option<String>,
    help: Option<String>,
    notes: Vec<String>,
}

impl std::fmt::Display for Diag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}[{}] at {}",
            self.severity,
            self.code,
            self.at.as_deref().unwrap_or("(no location)")
        )?;
        if let Some(h) = &self.help {
            write!(f, " help: {h}")?;
        }
        Ok(())
    }
}

/// The diagnostics of every JSON document on stdout, and how many documents
/// there were.
fn parse_diagnostics(stdout: &str) -> Result<(Vec<Diag>, usize), String> {
    let mut out = Vec::new();
    let mut docs = 0;
    for doc in serde_json::Deserializer::from_str(stdout).into_iter::<Value>() {
        let doc = doc.map_err(|e| format!("stdout is not JSON ({e}): {stdout}"))?;
        docs += 1;
        let Some(items) = doc.get("diagnostics") else {
            continue;
        };
        let items = items.as_array().ok_or("`diagnostics` is not an array")?;
        for d in items {
            let s = |k: &str| d.get(k).and_then(Value::as_str).map(str::to_string);
            let at = match d.get("location") {
                None => return Err(format!("diagnostic without a `location` field: {d}")),
                Some(Value::Null) => None,
                Some(l) => Some(format!(
                    "{}:{}:{}",
                    l["path"].as_str().ok_or("location without path")?,
                    l["line"].as_u64().ok_or("location without line")?,
                    l["column"].as_u64().ok_or("location without column")?
                )),
            };
            out.push(Diag {
                severity: s("severity").ok_or("diagnostic without severity")?,
                code: s("code").ok_or("diagnostic without code")?,
                at,
                help: s("help"),
                notes: d
                    .get("notes")
                    .and_then(Value::as_array)
                    .map(|n| {
                        n.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            });
        }
    }
    if docs == 0 {
        return Err("stdout holds no JSON document".into());
    }
    Ok((out, docs))
}

fn check_no_panic(run: &Run, what: &str, failures: &mut Vec<String>) {
    if run.stderr.contains("panicked") || run.stdout.contains("panicked") {
        failures.push(format!("{what}: dify-cfg panicked:\n{}", run.stderr));
    }
}

/// Where a case runs: a temp dir holding `root` (a copy of `_base`),
/// `outside` (for what a case puts outside the root) and `scratch` (the
/// output of its runs).
struct CaseDirs {
    tmp: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
    scratch: PathBuf,
}

impl CaseDirs {
    fn new() -> CaseDirs {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        let scratch = tmp.path().join("scratch");
        fs::create_dir_all(&outside).unwrap();
        fs::create_dir_all(&scratch).unwrap();
        copy_tree(&bad_dir().join("_base"), &root, &[]);
        CaseDirs {
            tmp,
            root,
            outside,
            scratch,
        }
    }
}

/// Apply `case` to the fleet in `root` (its files, deletions and generated
/// inputs, with `outside` for what lies outside the root); returns the
/// command the case runs.
fn apply_case<'a>(case: &'a Case, root: &Path, outside: &Path) -> &'a str {
    copy_tree(&case.dir, root, &["case.toml"]);
    for d in &case.spec.delete {
        let p = root.join(d);
        let r = if p.is_dir() {
            fs::remove_dir_all(&p)
        } else {
            fs::remove_file(&p)
        };
        r.unwrap_or_else(|e| panic!("{}: cannot delete {d}: {e}", case.name));
    }
    for g in &case.spec.generate {
        generate(root, outside, g);
    }
    let command = case.spec.command.as_deref().unwrap_or("build");
    assert!(
        matches!(command, "build" | "check"),
        "{}: unknown command `{command}`",
        case.name
    );
    command
}

/// Run one case; returns its failures (empty when it passes).
fn run_case(case: &Case) -> Vec<String> {
    let mut failures = Vec::new();
    let dirs = CaseDirs::new();
    let (root, outside, scratch) = (&dirs.root, &dirs.outside, &dirs.scratch);
    let root_arg = root.to_str().unwrap();

    // The pristine base builds, and its out/ is the reference.
    let base = run(&["--root", root_arg, "build"], scratch, "base");
    if base.code != Some(0) {
        return vec![format!(
            "the pristine _base did not build (exit {:?}):\n{}{}",
            base.code, base.stdout, base.stderr
        )];
    }
    let out_dir = root.join("out");
    let before = snapshot(&out_dir);
    if before.is_empty() {
        return vec!["the pristine build wrote nothing under out/".into()];
    }

    // The site branches of the pristine base.
    support::init_repo(root, "base");
    let committed = run(&["--root", root_arg, "commit"], scratch, "commit-base");
    if committed.code != Some(0) {
        return vec![format!(
            "the pristine _base did not commit (exit {:?}):\n{}{}",
            committed.code, committed.stdout, committed.stderr
        )];
    }
    let branches = || support::git(root, &["for-each-ref", "--format=%(refname) %(objectname)"]);
    let branches_before = branches();

    // Apply the case.
    let command = apply_case(case, root, outside);

    // JSON report.
    let json = run(
        &["--root", root_arg, "--format", "json", command],
        scratch,
        "json",
    );
    check_no_panic(&json, "--format json", &mut failures);
    if json.code != Some(2) {
        failures.push(format!("--format json: exit {:?}, expected 2", json.code));
    }
    match parse_diagnostics(&json.stdout) {
        Err(e) => failures.push(format!("--format json: {e}")),
        Ok((diags, docs)) => {
            if docs != 1 {
                failures.push(format!(
                    "--format json: stdout holds {docs} JSON documents, expected one"
                ));
            }
            check_expectations(case, &diags, &mut failures);
        }
    }

    // Text report.
    let text = run(&["--root", root_arg, command], scratch, "text");
    check_no_panic(&text, "text", &mut failures);
    if text.code != Some(2) {
        failures.push(format!("text: exit {:?}, expected 2", text.code));
    }
    let first = &case.spec.expect[0];
    let header = format!("error[{}]", first.code);
    if !text.stderr.contains(&header) {
        failures.push(format!("text: stderr lacks `{header}`:\n{}", text.stderr));
    }
    if let Some(at) = &first.at {
        let arrow = format!(" --> {at}");
        if !text.stderr.lines().any(|l| {
            l.contains(&arrow) && l[l.find(&arrow).unwrap() + arrow.len()..].trim().is_empty()
        }) {
            failures.push(format!("text: stderr lacks `{arrow}`:\n{}", text.stderr));
        }
    }

    // `commit` refuses the same inputs and moves no branch.
    let commit = run(
        &["--root", root_arg, "commit", "--allow-dirty"],
        scratch,
        "commit",
    );
    check_no_panic(&commit, "commit", &mut failures);
    if commit.code != Some(2) {
        failures.push(format!(
            "commit --allow-dirty: exit {:?}, expected 2:\n{}",
            commit.code, commit.stderr
        ));
    }
    if branches() != branches_before {
        failures.push(format!(
            "branches changed:\n{}\nwere:\n{branches_before}",
            branches()
        ));
    }

    // Nothing was written.
    let after = snapshot(&out_dir);
    if after != before {
        let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
        let changed: Vec<&str> = keys
            .into_iter()
            .filter(|k| before.get(*k) != after.get(*k))
            .map(|k| k.as_str())
            .collect();
        failures.push(format!("out/ changed: {}", changed.join(", ")));
    }
    failures
}

fn check_expectations(case: &Case, diags: &[Diag], failures: &mut Vec<String>) {
    let errors: Vec<&Diag> = diags.iter().filter(|d| d.severity == "error").collect();
    let list = || {
        diags
            .iter()
            .map(|d| format!("\n      {d}"))
            .collect::<String>()
    };
    for e in &case.spec.expect {
        let here: Vec<&&Diag> = errors
            .iter()
            .filter(|d| d.code == e.code && d.at == e.at)
            .collect();
        let want = format!(
            "error[{}] at {}",
            e.code,
            e.at.as_deref().unwrap_or("(no location)")
        );
        if here.is_empty() {
            failures.push(format!("missing {want}; got:{}", list()));
            continue;
        }
        if let Some(help) = &e.help
            && !here
                .iter()
                .any(|d| d.help.as_deref() == Some(help.as_str()))
        {
            let got: Vec<_> = here
                .iter()
                .map(|d| d.help.as_deref().unwrap_or("(none)"))
                .collect();
            failures.push(format!(
                "{want}: help should be `{help}`, is `{}`",
                got.join("` / `")
            ));
        }
        for note in &e.notes {
            if !here
                .iter()
                .any(|d| d.notes.iter().any(|n| n.contains(note.as_str())))
            {
                let got: Vec<_> = here
                    .iter()
                    .flat_map(|d| d.notes.iter().map(String::as_str))
                    .collect();
                failures.push(format!(
                    "{want}: notes lack `{note}`; notes:\n{}",
                    got.join("\n")
                ));
            }
        }
    }
    // Every error is expected, as often as it occurs (a diagnostic repeated
    // once per site of a shared profile is a failure too).
    let mut wanted: BTreeMap<(&str, Option<&str>), usize> = BTreeMap::new();
    for e in &case.spec.expect {
        *wanted
            .entry((e.code.as_str(), e.at.as_deref()))
            .or_default() += 1;
    }
    let mut seen: BTreeMap<(&str, Option<&str>), usize> = BTreeMap::new();
    for d in &errors {
        let n = seen.entry((d.code.as_str(), d.at.as_deref())).or_default();
        *n += 1;
        let allowed = wanted
            .get(&(d.code.as_str(), d.at.as_deref()))
            .copied()
            .unwrap_or(0);
        if case.spec.extra_ok {
            continue;
        }
        if allowed == 0 {
            failures.push(format!("unexpected {d}"));
        } else if *n == allowed + 1 {
            let total = errors
                .iter()
                .filter(|x| x.code == d.code && x.at == d.at)
                .count();
            failures.push(format!("{d} reported {total} times, expected {allowed}"));
        }
    }
    for ((code, at), n) in &wanted {
        let got = seen.get(&(*code, *at)).copied().unwrap_or(0);
        if got > 0 && got < *n {
            let at = at.unwrap_or("(no location)");
            failures.push(format!(
                "error[{code}] at {at} reported {got} times, expected {n}"
            ));
        }
    }
}

/// `f` of every case, in the order of `cases`, on a few worker threads.
fn for_cases<T: Send>(cases: &[Case], f: impl Fn(&Case) -> T + Sync) -> Vec<T> {
    let done: Mutex<Vec<Option<T>>> = Mutex::new((0..cases.len()).map(|_| None).collect());
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 8);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(case) = cases.get(i) else { break };
                    let result = f(case);
                    done.lock().unwrap()[i] = Some(result);
                }
            });
        }
    });
    done.into_inner()
        .unwrap()
        .into_iter()
        .map(|r| r.expect("every case ran"))
        .collect()
}

#[test]
fn every_bad_input_is_rejected_at_its_place() {
    let cases = cases();
    let results = for_cases(&cases, |case| {
        if case.spec.warning {
            run_warning_case(case)
        } else {
            run_case(case)
        }
    });
    let failures: Vec<(&String, Vec<String>)> = cases
        .iter()
        .map(|c| &c.name)
        .zip(results)
        .filter(|(_, f)| !f.is_empty())
        .collect();
    if !failures.is_empty() {
        let mut report = format!(
            "{} of {} bad-input cases failed:\n",
            failures.len(),
            cases.len()
        );
        for (name, f) in &failures {
            report.push_str(&format!("\n--- {name}\n"));
            for line in f {
                report.push_str(&format!("  - {line}\n"));
            }
        }
        panic!("{report}");
    }
}

/// Registered codes that no config root can produce, so that no corpus case
/// can show them, each with the unit test that does.
const NOT_FROM_INPUTS: &[(&str, &str)] = &[
    (
        "release-downgrade",
        "needs a site branch whose tip records a newer release than the inputs; \
         tests/it/rollout_release.rs: a_downgrade_is_refused_unless_the_profile_allows_it",
    ),
    (
        "template-missing",
        "the built-in templates fill in every template a root lacks; \
         render/tests.rs: a_template_set_without_an_output_kind_is_refused",
    ),
    (
        "unsafe-value",
        "render's second check of values printed raw, which validate refuses first; \
         render/tests.rs: values_printed_raw_are_checked_again",
    ),
];

/// Every code of the compiler's registry.
fn compiler_codes() -> BTreeSet<String> {
    dify_cfg::Code::ALL
        .iter()
        .map(|c| c.as_str().to_string())
        .collect()
}

#[test]
fn corpus_is_large_and_grouped_by_real_codes() {
    let cases = cases();
    assert!(
        cases.len() >= MIN_CASES,
        "only {} bad-input cases; at least {MIN_CASES} wanted",
        cases.len()
    );
    let codes = compiler_codes();
    let mut problems = Vec::new();
    let mut groups: BTreeMap<&str, usize> = BTreeMap::new();
    for case in &cases {
        *groups.entry(case.group.as_str()).or_default() += 1;
        for e in &case.spec.expect {
            if !codes.contains(&e.code) {
                problems.push(format!(
                    "{}: `{}` is not a code the compiler emits",
                    case.name, e.code
                ));
            }
            if let Some(at) = &e.at {
                let parts: Vec<&str> = at.rsplitn(3, ':').collect();
                let ok = parts.len() == 3
                    && parts[0].parse::<usize>().is_ok_and(|c| c >= 1)
                    && parts[1].parse::<usize>().is_ok_and(|l| l >= 1)
                    && !parts[2].starts_with('/')
                    && !parts[2].contains('\\');
                if !ok {
                    problems.push(format!(
                        "{}: `{at}` is not a relative `path:line:col`",
                        case.name
                    ));
                }
            }
        }
        if !case.spec.expect.iter().any(|e| e.code == case.group) {
            problems.push(format!(
                "{}: no expectation has the code `{}` its directory is named after",
                case.name, case.group
            ));
        }
    }
    for entry in sorted_dir(&bad_dir()) {
        let name = file_name(&entry);
        if name == "_base" {
            continue;
        }
        if !entry.is_dir() {
            problems.push(format!("tests/bad/{name} is not a directory"));
        } else if !codes.contains(&name) {
            problems.push(format!(
                "tests/bad/{name}/ is not named after a diagnostic code"
            ));
        } else if !groups.contains_key(name.as_str()) {
            problems.push(format!("tests/bad/{name}/ holds no case"));
        }
    }
    let exempt: BTreeSet<&str> = NOT_FROM_INPUTS.iter().map(|(c, _)| *c).collect();
    for code in &codes {
        match (groups.contains_key(code.as_str()), exempt.contains(code.as_str())) {
            (false, false) => problems.push(format!(
                "`{code}` has no case: add tests/bad/{code}/<case>/ (see ARCHITECTURE.md, adding a diagnostic)"
            )),
            (true, true) => problems.push(format!(
                "`{code}` has cases: take it out of NOT_FROM_INPUTS (which says: {})",
                NOT_FROM_INPUTS.iter().find(|(c, _)| c == code).map_or("", |(_, why)| why)
            )),
            _ => {}
        }
    }
    for code in &exempt {
        if !codes.contains(*code) {
            problems.push(format!(
                "NOT_FROM_INPUTS names `{code}`, which is not a code"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A `warning` case: `check` and `build` succeed and report the case's
/// warnings at their places, and no error; `build` writes the sites.
fn run_warning_case(case: &Case) -> Vec<String> {
    let mut failures = Vec::new();
    let dirs = CaseDirs::new();
    let (root, outside, scratch) = (&dirs.root, &dirs.outside, &dirs.scratch);
    apply_case(case, root, outside);
    let root_arg = root.to_str().unwrap();
    for command in ["check", "build"] {
        let json = run(
            &["--root", root_arg, "--format", "json", command],
            scratch,
            "json",
        );
        check_no_panic(&json, command, &mut failures);
        if json.code != Some(0) {
            failures.push(format!(
                "{command} --format json: exit {:?}, 0 expected:\n{}{}",
                json.code, json.stdout, json.stderr
            ));
            continue;
        }
        // (`build` prints the diagnostics and then its report as a second
        // document; only the diagnostics are checked here.)
        let diags = match parse_diagnostics(&json.stdout) {
            Ok((d, _)) => d,
            Err(e) => {
                failures.push(format!("{command}: {e}"));
                continue;
            }
        };
        let found: Vec<String> = diags.iter().map(ToString::to_string).collect();
        if !diags.iter().all(|d| d.severity == "warning") {
            failures.push(format!("{command}: only warnings expected: {found:?}"));
        }
        for e in &case.spec.expect {
            if !diags.iter().any(|d| d.code == e.code && d.at == e.at) {
                failures.push(format!(
                    "{command}: expected warning[{}] at {:?}, got {found:?}",
                    e.code, e.at
                ));
            }
        }
    }
    if !root.join("out/a/manifest.json").is_file() {
        failures.push("build wrote no out/a/manifest.json".into());
    }
    let text = run(&["--root", root_arg, "build"], scratch, "text");
    if text.code != Some(0) || text.stderr.contains("error[") {
        failures.push(format!("build: exit {:?}:\n{}", text.code, text.stderr));
    }
    for e in &case.spec.expect {
        let place = e.at.as_deref().map(|at| format!(" --> {at}"));
        if !text.stderr.contains(&format!("warning[{}]", e.code))
            || place.is_some_and(|p| !text.stderr.contains(&p))
        {
            failures.push(format!(
                "build: no warning[{}] at {:?} in:\n{}",
                e.code, e.at, text.stderr
            ));
        }
    }
    failures
}

/// A file name that is not UTF-8 gets the same diagnostic when the inputs
/// come from the working tree (`check`) and from a commit (`commit`, which
/// compiles HEAD), where it was once skipped without a word.
#[test]
fn a_non_utf8_file_name_is_said_from_a_commit_as_from_the_work_tree() {
    let dirs = CaseDirs::new();
    let (root, scratch) = (&dirs.root, &dirs.scratch);
    fs::write(
        non_utf8_name(&root.join("sites/c.toml")),
        NON_UTF8_NAMED_SITE,
    )
    .unwrap();
    support::init_repo(root, "a site file whose name is not UTF-8");
    let root_arg = root.to_str().unwrap();
    let mut said = Vec::new();
    for (tag, command) in [("check", "check"), ("commit", "commit")] {
        let run = run(
            &["--root", root_arg, "--format", "json", command],
            scratch,
            tag,
        );
        assert_eq!(run.code, Some(2), "{command}: {}{}", run.stdout, run.stderr);
        let (diags, _) = parse_diagnostics(&run.stdout).unwrap();
        let found: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
        said.push(found);
    }
    assert_eq!(
        said[0],
        [
            "error[encoding] at sites/c\u{FFFD}.toml:1:1 help: rename it with a UTF-8 name: dify-cfg knows profiles, sites and templates by their file names"
        ],
        "check"
    );
    assert_eq!(said[1], said[0], "commit says what check says");
}

//! Shared helpers of the integration tests.

use std::path::{Path, PathBuf};

/// The repository root (the example fleet).
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Dify's reference files (`../shared/reference` beside the checkout, or
/// `DIFY_CFG_REFERENCE`). `None`, with the reason printed, where they are
/// absent; a panic instead when `DIFY_CFG_REQUIRE_REFERENCE=1` (CI).
pub fn reference() -> Option<PathBuf> {
    let dir = std::env::var_os("DIFY_CFG_REFERENCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/reference"));
    if dir.join("dify-1.16.0").is_dir() {
        return Some(dir);
    }
    let required = std::env::var("DIFY_CFG_REQUIRE_REFERENCE").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "reference files not found at {} (DIFY_CFG_REQUIRE_REFERENCE=1)",
        dir.display()
    );
    skip(&format!(
        "Dify reference files not found at {}",
        dir.display()
    ));
    None
}

/// The commit id in a reference `SOURCE` line ("... tag 1.16.0, commit <id>").
pub fn source_commit(source: &str) -> Option<&str> {
    source.split("commit ").nth(1).map(str::trim)
}

/// Copy the example fleet (profiles/, sites/, templates/) into `dst`.
pub fn copy_fleet(dst: &Path) {
    for dir in ["profiles", "sites", "templates"] {
        let src = repo().join(dir);
        for e in walkdir::WalkDir::new(&src).into_iter().flatten() {
            let rel = e.path().strip_prefix(&src).unwrap();
            let to = dst.join(dir).join(rel);
            if e.file_type().is_dir() {
                std::fs::create_dir_all(&to).unwrap();
            } else {
                std::fs::copy(e.path(), &to).unwrap();
            }
        }
    }
}

/// Every file under `dir`: relative path to bytes.
pub fn snapshot(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    if !dir.exists() {
        return out;
    }
    for e in walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .flatten()
    {
        if e.file_type().is_file() {
            let rel = e
                .path()
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            out.insert(rel, std::fs::read(e.path()).unwrap());
        }
    }
    out
}

/// Every file under `dir` with its bytes, and every directory (as `/`),
/// so that an emptied or added folder shows.
pub fn all_entries(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = snapshot(dir);
    for e in walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .flatten()
    {
        if e.file_type().is_dir() {
            let rel = e.path().strip_prefix(dir).unwrap().to_string_lossy();
            out.insert(format!("{rel}/"), Vec::new());
        }
    }
    out
}

/// The built binary, to run in `cwd` with colours off.
pub fn bin(cwd: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_dify-cfg"));
    c.current_dir(cwd).env("NO_COLOR", "1");
    c
}

/// `o` after checking that it succeeded; a failure of `what` panics with
/// the exit code, stdout and stderr.
pub fn assert_ok(o: std::process::Output, what: &str) -> std::process::Output {
    assert!(
        o.status.success(),
        "{what} exited {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Run the built binary.
pub fn dify_cfg(args: &[&str], cwd: &Path) -> std::process::Output {
    bin(cwd).args(args).output().expect("run dify-cfg")
}

/// The example fleet's profiles and sites (not its templates: the built-in
/// ones are the same files), by relative path.
pub fn fleet_files() -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    for dir in ["profiles", "sites"] {
        for e in std::fs::read_dir(repo().join(dir)).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".toml") {
                out.insert(format!("{dir}/{name}"), std::fs::read(e.path()).unwrap());
            }
        }
    }
    out
}

/// An error diagnostic as a test sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub code: String,
    /// `path:line:col`, when the diagnostic has a place.
    pub at: Option<String>,
    pub message: String,
    pub help: Option<String>,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "error[{}] at {}: {}",
            self.code,
            self.at.as_deref().unwrap_or("(no location)"),
            self.message
        )
    }
}

/// What compiling a config root gave: every site's tree plus `_images`
/// (as `build` writes them), or the errors of the stage that stopped it.
#[derive(Debug)]
pub enum Compiled {
    Built(Vec<dify_cfg::SiteTree>),
    /// `check` fails: errors of load, parse, resolve or validate.
    Invalid(Vec<Finding>),
    /// `check` passes but rendering fails (the cross-check, or a template).
    RenderFailed(Vec<Finding>),
}

fn findings(
    diags: &dify_cfg::Diagnostics,
    sources: &dify_cfg::internals::SourceMap,
) -> Vec<Finding> {
    diags
        .iter()
        .filter(|d| d.is_error())
        .map(|d| Finding {
            code: d.code.to_string(),
            at: d.span.as_ref().map(|s| sources.location(s).to_string()),
            message: d.message.clone(),
            help: d.help.clone(),
        })
        .collect()
}

/// Load, analyze and render loaded inputs, as `check` then `build` do.
pub fn compile_inputs(
    inputs: &dify_cfg::internals::Inputs,
    diags: dify_cfg::Diagnostics,
) -> Compiled {
    let analysis = dify_cfg::internals::analyze(inputs, diags);
    if analysis.diagnostics.has_errors() {
        return Compiled::Invalid(findings(&analysis.diagnostics, &inputs.sources));
    }
    let chosen: Vec<&dify_cfg::internals::ValidSite> = analysis.sites.iter().collect();
    match dify_cfg::render_all(inputs, &chosen) {
        Ok(mut trees) => {
            let pairs: Vec<_> = chosen.iter().map(|v| &v.site).zip(trees.iter()).collect();
            let images =
                dify_cfg::internals::bake::tree(&dify_cfg::internals::bake::images(&pairs));
            trees.push(images);
            Compiled::Built(trees)
        }
        Err(d) => Compiled::RenderFailed(findings(&d, &inputs.sources)),
    }
}

/// Compile an in-memory config root.
pub fn compile_mem(files: &std::collections::BTreeMap<String, Vec<u8>>) -> Compiled {
    let src = dify_cfg::internals::MemTree {
        files: files.clone(),
    };
    let mut diags = dify_cfg::Diagnostics::new();
    let inputs = dify_cfg::internals::load_from(&src, &mut diags);
    compile_inputs(&inputs, diags)
}

/// Compile a config root on disk.
pub fn compile_dir(root: &Path) -> Compiled {
    let (inputs, diags) = dify_cfg::internals::read_inputs(root);
    compile_inputs(&inputs, diags)
}

/// Whether an environment the test needs is there. When it is not, the
/// reason is printed and the test skips, unless `DIFY_CFG_REQUIRE_TOOLS=1`
/// (CI), where it fails.
pub fn available(what: &str, ok: bool, why: &str) -> bool {
    if !ok {
        let required = std::env::var("DIFY_CFG_REQUIRE_TOOLS").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "{what} is not available (DIFY_CFG_REQUIRE_TOOLS=1): {why}"
        );
        skip(&format!("{what} is not available here: {why}"));
    }
    ok
}

/// Skip the rest of the running test (or one of its checks): said at once
/// as `SKIPPED: <test>: <reason>` on stderr, which libtest does not
/// capture, and listed again when the test binary exits
/// (`tests/it/skips.rs`). Every skip goes through here.
pub fn skip(reason: &str) {
    let thread = std::thread::current();
    // libtest runs each test on a thread named after it.
    crate::skips::record(thread.name().unwrap_or("(a test)"), reason);
}

/// Run git in `dir` with a fixed identity and clock and no user config.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = git_output(dir, args);
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Run git in `dir` as [`git`] does, returning its output whatever the exit.
pub fn git_output(dir: &Path, args: &[&str]) -> std::process::Output {
    git_command(dir, "git")
        .args(args)
        .output()
        .expect("git runs (install git)")
}

/// `program` (git, or a shell that runs it) in `dir` with [`git`]'s fixed
/// identity and clock and no user config.
pub fn git_command(dir: &Path, program: &str) -> std::process::Command {
    let mut c = std::process::Command::new(program);
    c.current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Ana Operator")
        .env("GIT_AUTHOR_EMAIL", "ana@clinics.example.org")
        .env("GIT_AUTHOR_DATE", "2026-11-02T09:00:00+01:00")
        .env("GIT_COMMITTER_NAME", "Ana Operator")
        .env("GIT_COMMITTER_EMAIL", "ana@clinics.example.org")
        .env("GIT_COMMITTER_DATE", "2026-11-02T09:00:00+01:00");
    c
}

/// A clinic site file like the example fleet's, numbered `n` (1..=250):
/// LAN `10.20.n.0/24`, address `.10`, in wave 3.
pub fn clinic_site(n: usize, extra: &str) -> String {
    format!(
        "profile = \"multi-branch\"\ndescription = \"Branch clinic {n}\"\n\n[network]\nhostname = \"clinic-{n:03}.clinics.example.org\"\nlan = \"10.20.{n}.0/24\"\naddress = \"10.20.{n}.10\"\n\n[labels]\nclinic = \"{n:03}\"\n{extra}"
    )
}

/// Add the generated clinics `numbers` ([`clinic_site`]) to the fleet in
/// `root`.
pub fn add_clinics(root: &Path, numbers: impl IntoIterator<Item = usize>) {
    for n in numbers {
        std::fs::write(
            root.join(format!("sites/clinic-{n:03}.toml")),
            clinic_site(n, ""),
        )
        .unwrap();
    }
}

/// Set the description of profile `multi-branch`: it reaches every
/// clinic's compose file, and every manifest records the profile's hash,
/// so each text renders every clinic differently.
pub fn set_clinic_description(root: &Path, text: &str) {
    let path = root.join("profiles/multi-branch.toml");
    let old = std::fs::read_to_string(&path).unwrap();
    let line = old
        .lines()
        .find(|l| l.starts_with("description = "))
        .unwrap()
        .to_string();
    std::fs::write(
        &path,
        old.replacen(&line, &format!("description = \"{text}\""), 1),
    )
    .unwrap();
}

/// Generated clinics added beside the example fleet's eleven sites
/// (numbered from 11), in `root`.
pub fn make_fleet(root: &Path, extra: usize) {
    copy_fleet(root);
    add_clinics(root, 11..11 + extra);
}

/// Switch the inputs between two states (0 and 1) that render every clinic
/// differently.
pub fn set_state(root: &Path, state: usize) {
    set_clinic_description(root, &format!("Branch clinic, input state {state}"));
}

/// Make `root` a git repository that ignores `out/`, with everything in it
/// committed on `main` as `message`.
pub fn init_repo(root: &Path, message: &str) {
    std::fs::write(root.join(".gitignore"), "out/\n").unwrap();
    git(root, &["init", "-q", "-b", "main"]);
    git(root, &["add", "-A"]);
    git(root, &["commit", "-q", "-m", message]);
}

/// A git repository at `root` holding the fleet of [`make_fleet`] in input
/// state 0, one commit on `main`. Fixed identity and clock: two such
/// repositories have the same commit ids.
pub fn fleet_repo_at(root: &Path, extra: usize) -> PathBuf {
    std::fs::create_dir_all(root).unwrap();
    make_fleet(root, extra);
    set_state(root, 0);
    init_repo(root, "The clinic fleet");
    root.to_path_buf()
}

/// Every file of a site tree: relative path to bytes.
pub type Tree = std::collections::BTreeMap<String, Vec<u8>>;

/// The site trees of an out directory (its visible entries) and, sorted,
/// the hidden entries beside them.
pub fn out_state(out: &Path) -> (std::collections::BTreeMap<String, Tree>, Vec<String>) {
    let mut sites = std::collections::BTreeMap::new();
    let mut hidden = Vec::new();
    for e in std::fs::read_dir(out).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            hidden.push(name);
        } else {
            sites.insert(name, snapshot(&e.path()));
        }
    }
    hidden.sort();
    (sites, hidden)
}

/// Every ref under `prefix` (e.g. `refs/heads/`) by its short name
/// (`sites/clinic-01`), and where it points.
pub fn refs(root: &Path, prefix: &str) -> std::collections::BTreeMap<String, String> {
    git(
        root,
        &[
            "for-each-ref",
            "--format=%(refname:short) %(objectname)",
            prefix,
        ],
    )
    .lines()
    .filter_map(|l| l.split_once(' '))
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect()
}

/// Every `sites/*` branch (`sites/clinic-01`) and its tip.
pub fn site_branches(root: &Path) -> std::collections::BTreeMap<String, String> {
    refs(root, "refs/heads/sites/")
}

/// Held by the tests that time themselves against the machine (the kill
/// tests calibrate their delays on a build's duration) and by the box
/// rehearsal, whose image builds and container starts would skew those
/// timings: they never run at the same time.
pub fn timing_sensitive() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The example fleet (every site and the image plan) built once by the
/// binary into a temporary directory, for the tests that read its files.
pub fn example_out() -> &'static Path {
    static OUT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    OUT.get_or_init(|| {
        let out = tempfile::tempdir().unwrap().keep().join("out");
        let o = dify_cfg(&["build", "--out", out.to_str().unwrap()], repo());
        assert_ok(o, "build the example fleet");
        out
    })
}

/// A command's output and error output, for failure messages.
pub fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Whether `tool` is a command here.
pub fn on_path(tool: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

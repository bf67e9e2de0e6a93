//! Visible skips. A check that needs a real tool or file this machine lacks
//! (nginx, squid, docker, `../shared/reference`, ...) skips through
//! [`crate::support::skip`], which says so at once on the process's stderr
//! (`SKIPPED: <test>: <reason>`) and records it here. When the test binary
//! exits, after libtest's `test result:` line, the run's skips are listed
//! together on stderr, and written to `target/tmp/test-skips.txt` (one
//! `<test>: <reason>` a line, empty when nothing skipped), so that `cargo
//! test` as the README runs it ends its integration tests with them.
//!
//! libtest captures only what `print!` and `eprint!` write inside a test,
//! and has no hook at the end of a run: the line is written to the stderr
//! handle itself, which it does not capture, and the summary is an
//! `atexit` handler, registered before `main` (from `.init_array`), which
//! runs whether the run passed (`main` returns) or failed (libtest calls
//! `process::exit`).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

/// One skipped check: the test, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Skip {
    pub test: String,
    pub reason: String,
}

/// This run's skips, in the order they happened.
static SKIPS: Mutex<Vec<Skip>> = Mutex::new(Vec::new());

/// Say a skip now, on stderr past libtest's capture, and keep it for the
/// summary.
pub fn record(test: &str, reason: &str) {
    let line = format!("SKIPPED: {test}: {reason}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
    SKIPS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Skip {
            test: test.to_string(),
            reason: reason.to_string(),
        });
}

/// Each skip once, sorted by test.
fn distinct(skips: &[Skip]) -> BTreeSet<&Skip> {
    skips.iter().collect()
}

/// The summary the run ends with; `None` when nothing skipped.
pub fn summary(skips: &[Skip]) -> Option<String> {
    let skips = distinct(skips);
    if skips.is_empty() {
        return None;
    }
    let n = skips.len();
    let mut text = format!(
        "\nSKIPPED {n} check{} in this run: what {} needs is missing here (.ci/run installs it; DIFY_CFG_REQUIRE_TOOLS=1 and DIFY_CFG_REQUIRE_REFERENCE=1 make a missing tool or reference fail instead):\n",
        if n == 1 { "" } else { "s" },
        if n == 1 { "it" } else { "each" },
    );
    for s in skips {
        text.push_str(&format!("  SKIPPED: {}: {}\n", s.test, s.reason));
    }
    Some(text)
}

/// The skips file's text: one `<test>: <reason>` a line.
pub fn file_text(skips: &[Skip]) -> String {
    distinct(skips)
        .into_iter()
        .map(|s| format!("{}: {}\n", s.test, s.reason))
        .collect()
}

/// Where the run's skips are written: `target/tmp/test-skips.txt`, or
/// `DIFY_CFG_SKIPS_FILE` (the test of this module runs the binary again).
fn skips_file() -> PathBuf {
    std::env::var_os("DIFY_CFG_SKIPS_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("test-skips.txt"))
}

/// At the process's exit: the file, and the summary. Nothing here may
/// unwind across the C caller.
extern "C" fn at_exit() {
    let skips = SKIPS.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let _ = std::fs::write(skips_file(), file_text(&skips));
    if let Some(text) = summary(&skips) {
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}

unsafe extern "C" {
    fn atexit(callback: extern "C" fn()) -> std::ffi::c_int;
}

extern "C" fn register() {
    // SAFETY: atexit takes any `extern "C" fn()`; `at_exit` neither
    // unwinds nor needs anything that exit tears down before it.
    unsafe {
        atexit(at_exit);
    }
}

/// Run `register` before `main`, as a C constructor.
#[used]
#[unsafe(link_section = ".init_array")]
static REGISTER: extern "C" fn() = register;

/// A test that skips only when `DIFY_CFG_SKIP_PROBE` gives it a reason:
/// what [`a_skip_is_said_at_once_and_summed_up_at_the_end`] runs.
#[test]
fn skip_probe() {
    if let Ok(reason) = std::env::var("DIFY_CFG_SKIP_PROBE") {
        crate::support::skip(&reason);
        crate::support::skip(&reason);
    }
}

/// This test binary, run again on [`skip_probe`] alone, as `cargo test`
/// runs it (output captured, stderr joined to stdout as on a terminal).
fn run_probe(reason: Option<&str>, file: &std::path::Path) -> String {
    let exe = std::env::current_exe().unwrap();
    let mut c = std::process::Command::new("sh");
    c.args([
        "-c",
        "exec \"$0\" skips::skip_probe --exact --test-threads=1 2>&1",
    ])
    .arg(exe)
    .env("DIFY_CFG_SKIPS_FILE", file)
    .env_remove("DIFY_CFG_SKIP_PROBE");
    if let Some(r) = reason {
        c.env("DIFY_CFG_SKIP_PROBE", r);
    }
    let o = c.output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{text}");
    text
}

#[test]
fn a_skip_is_said_at_once_and_summed_up_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("skips.txt");
    let out = run_probe(Some("`probe-tool` is not available here: a test"), &file);
    let line = "SKIPPED: skips::skip_probe: `probe-tool` is not available here: a test";
    // Said when it happened, although libtest captured the test's output.
    let said = out
        .find(&format!("{line}\n"))
        .unwrap_or_else(|| panic!("{out}"));
    let result = out.find("test result: ok. 1 passed").expect(&out);
    let summary = out.find("SKIPPED 1 check in this run").expect(&out);
    assert!(said < result && result < summary, "{out}");
    // Once in the summary, however often the test said it.
    assert_eq!(out[summary..].matches(line).count(), 1, "{out}");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "skips::skip_probe: `probe-tool` is not available here: a test\n"
    );
    // A run without skips says nothing of them, and empties the file.
    let out = run_probe(None, &file);
    assert!(!out.contains("SKIPPED"), "{out}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "");
}

#[test]
fn the_summary_lists_each_skip_once_by_test() {
    let skip = |test: &str, reason: &str| Skip {
        test: test.into(),
        reason: reason.into(),
    };
    assert_eq!(summary(&[]), None);
    assert_eq!(file_text(&[]), "");
    let skips = [
        skip(
            "tools::nginx",
            "`nginx` is not available here: not installed",
        ),
        skip("reference::env", "Dify reference files not found at x"),
        skip(
            "tools::nginx",
            "`nginx` is not available here: not installed",
        ),
    ];
    let text = summary(&skips).unwrap();
    assert!(
        text.starts_with("\nSKIPPED 2 checks in this run: "),
        "{text}"
    );
    assert!(
        text.ends_with(
            "  SKIPPED: reference::env: Dify reference files not found at x\n  SKIPPED: tools::nginx: `nginx` is not available here: not installed\n"
        ),
        "{text}"
    );
    assert_eq!(
        file_text(&skips),
        "reference::env: Dify reference files not found at x\ntools::nginx: `nginx` is not available here: not installed\n"
    );
}

//! What an operator sees around the compiler: the progress bar of a long
//! run (on a real terminal, `script`'s pseudo-terminal, and never in a
//! pipe), `--quiet`, and `check`'s headroom per site.

use std::path::Path;
use std::process::Command;

use crate::support::{self, assert_ok, dify_cfg, fleet_repo_at, output_text};

const BIN: &str = env!("CARGO_BIN_EXE_dify-cfg");

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Run the binary with `args` in `root` on a terminal: `script`'s
/// pseudo-terminal, which both stdout and stderr write to.
fn on_terminal(root: &Path, args: &[&str]) -> (Option<i32>, String) {
    let mut line = format!("'{BIN}'");
    for a in args {
        line.push_str(&format!(" '{a}'"));
    }
    let o = Command::new("script")
        .args(["-qefc", &line, "/dev/null"])
        .current_dir(root)
        .env("TERM", "xterm")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (o.status.code(), stdout(&o))
}

#[test]
fn a_long_run_shows_a_progress_bar_on_a_terminal_and_never_in_a_pipe() {
    let works = Command::new("script")
        .args(["-qefc", "true", "/dev/null"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !support::available("`script` (util-linux)", works, "not installed") {
        return;
    }
    // 21 sites: one more than a bar needs.
    let tmp = tempfile::tempdir().unwrap();
    let root = fleet_repo_at(&tmp.path().join("fleet"), 10);
    let bar = |what: &str| format!("{what} [");
    let (code, screen) = on_terminal(&root, &["build"]);
    assert_eq!(code, Some(0), "{screen}");
    assert!(
        screen.contains(&bar("build")) && screen.contains("/21 sites"),
        "{screen}"
    );
    // The summary says how long it took, on a terminal only.
    let summary = screen
        .lines()
        .find(|l| l.contains("built 21 sites"))
        .unwrap_or_else(|| panic!("{screen}"));
    assert!(
        summary.contains(") in ") && summary.trim_end().ends_with('s'),
        "{summary}"
    );
    for args in [&["commit"][..], &["diff"], &["audit"]] {
        let (code, screen) = on_terminal(&root, args);
        assert_eq!(code, Some(0), "{args:?}: {screen}");
        assert!(screen.contains(&bar(args[0])), "{args:?}: {screen}");
    }
    // --quiet: no bar, no line per site.
    let (code, screen) = on_terminal(&root, &["--quiet", "build", "--full"]);
    assert_eq!(code, Some(0), "{screen}");
    assert!(
        !screen.contains(&bar("build")) && !screen.contains("clinic-01"),
        "{screen}"
    );
    assert!(screen.contains("built 21 sites"), "{screen}");
    // In a pipe: neither the bar nor the time.
    let o = assert_ok(dify_cfg(&["build", "--full"], &root), "build");
    let err = stderr(&o);
    assert!(
        !err.contains(&bar("build")) && !err.contains("sites,"),
        "{err}"
    );
    assert!(
        err.starts_with("built 21 sites") && err.ends_with(" changed)\n"),
        "{err}"
    );
}

#[test]
fn quiet_keeps_the_summary_and_what_needs_attention() {
    let tmp = tempfile::tempdir().unwrap();
    let root = fleet_repo_at(&tmp.path().join("fleet"), 0);
    let run = |args: &[&str]| assert_ok(dify_cfg(args, &root), &args.join(" "));
    // check: the summary alone.
    let o = run(&["check", "-q"]);
    assert_eq!(stdout(&o), "ok: 3 profiles and 11 sites are valid\n");
    // build and commit: no line per site, the summary on stderr.
    let summary_only = |args: &[&str], summary: &str| {
        let o = run(args);
        assert_eq!(stdout(&o), "", "{args:?}");
        assert!(stderr(&o).starts_with(summary), "{args:?}: {}", stderr(&o));
    };
    summary_only(
        &["build", "--quiet"],
        "built 11 sites and their image plan into ",
    );
    let o = run(&["build", "--check", "--quiet"]);
    assert_eq!(output_text(&o), "");
    summary_only(&["commit", "--quiet"], "updated 11 of 11 site branches");
    // diff and audit: what differs or fails only.
    assert_eq!(stdout(&run(&["diff", "--quiet"])), "");
    assert_eq!(stdout(&run(&["diff"])).lines().count(), 11);
    assert_eq!(stdout(&run(&["audit", "--quiet"])), "");
    support::set_clinic_description(&root, "Branch clinic, edited");
    let o = run(&["diff", "--quiet", "--stat"]);
    let text = stdout(&o);
    let differing: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" differ from "))
        .map(|l| l.split(':').next().unwrap())
        .collect();
    assert_eq!(differing.len(), 10, "{text}");
    assert!(!text.contains("hq: up to date"), "{text}");
    // JSON is whole, quiet or not.
    let json =
        |args: &[&str]| -> serde_json::Value { serde_json::from_slice(&run(args).stdout).unwrap() };
    assert_eq!(
        json(&["--format", "json", "diff", "--quiet"]),
        json(&["--format", "json", "diff"])
    );
}

/// The text is the trycmd case `check-headroom.toml`; the JSON report's
/// numbers are the budgets' (README: the edge box's 3280 of 3481 MiB; the
/// pools of api 15, worker 15, beat 2 and plugin daemon 10 connections of
/// `max-connections` 60 less a tenth).
#[test]
fn check_reports_every_sites_headroom_in_json() {
    let o = assert_ok(
        dify_cfg(&["--format", "json", "check"], support::repo()),
        "check",
    );
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let first = &report["headroom"][0];
    assert_eq!(first["site"], "clinic-01");
    assert_eq!(first["memory"]["used-bytes"], 3280u64 << 20);
    assert_eq!(first["memory"]["budget-bytes"], 3481u64 << 20);
    assert_eq!(first["memory"]["headroom-bytes"], 201u64 << 20);
    assert_eq!(first["connections"]["used"], 42);
    assert_eq!(first["connections"]["available"], 54);
    assert_eq!(first["connections"]["max-connections"], 60);
    let hq = &report["headroom"][10];
    assert_eq!(hq["site"], "hq");
    assert_eq!(hq["memory"], serde_json::Value::Null);
}

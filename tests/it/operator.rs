//! What an operator sees around the compiler: the shell completions (the
//! bash script sourced in bash and asked to complete), the manual pages
//! (read by groff and man), the progress bar of a long run (on a real
//! terminal, `script`'s pseudo-terminal, and never in a pipe), `--quiet`,
//! and `check`'s headroom per site.

use std::fs;
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

/// What bash's completion of `words` (the last one being completed)
/// offers, with the script `dify-cfg completions bash` prints sourced.
fn complete(script: &Path, words: &[&str]) -> Vec<String> {
    let cword = words.len() - 1;
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    // `complete -p` names the function the script registered; it is
    // called as bash calls it: command, word, previous word.
    let program = format!(
        "source '{}' || exit 9\n\
         f=$(complete -p dify-cfg | sed -n 's/.*-F \\([^ ]*\\) .*/\\1/p')\n\
         [ -n \"$f\" ] || exit 8\n\
         COMP_WORDS=({})\nCOMP_CWORD={cword}\nCOMP_LINE=\"${{COMP_WORDS[*]}}\"\nCOMP_POINT=${{#COMP_LINE}}\n\
         \"$f\" dify-cfg \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        script.display(),
        quoted.join(" ")
    );
    let o = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &program])
        .output()
        .unwrap();
    assert!(o.status.success(), "bash: {}", output_text(&o));
    let mut offered: Vec<String> = stdout(&o)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    offered.sort();
    offered
}

#[test]
fn the_bash_completion_is_valid_bash_and_completes_commands_and_options() {
    if !support::available("`bash`", support::on_path("bash"), "not installed") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let o = assert_ok(
        dify_cfg(&["completions", "bash"], dir.path()),
        "completions",
    );
    let script = dir.path().join("dify-cfg.bash");
    fs::write(&script, &o.stdout).unwrap();
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(syntax.status.success(), "bash -n: {}", output_text(&syntax));
    assert_eq!(complete(&script, &["dify-cfg", "bu"]), ["build"]);
    assert_eq!(
        complete(&script, &["dify-cfg", "c"]),
        ["check", "commit", "completions"]
    );
    // A command's own options (these need the script's case arms to match
    // the state its loop computes).
    assert_eq!(
        complete(&script, &["dify-cfg", "build", "--pro"]),
        ["--profile"]
    );
    assert_eq!(
        complete(&script, &["dify-cfg", "explain", "--si"]),
        ["--site"]
    );
    assert_eq!(
        complete(&script, &["dify-cfg", "diff", "--exit"]),
        ["--exit-code"]
    );
    assert_eq!(
        complete(&script, &["dify-cfg", "completions", ""])
            .into_iter()
            .filter(|w| !w.starts_with('-'))
            .collect::<Vec<_>>(),
        ["bash", "elvish", "fish", "powershell", "zsh"]
    );
    assert_eq!(
        complete(&script, &["dify-cfg", "--format", ""]),
        ["json", "text"]
    );
}

/// groff's warnings about a page (none is the pass), and man's rendering
/// of it for a terminal 80 columns wide.
fn read_page(page: &Path) -> String {
    let groff = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(page)
        .output()
        .unwrap();
    assert!(
        groff.status.success() && groff.stderr.is_empty(),
        "groff on {}: {}",
        page.display(),
        output_text(&groff)
    );
    let man = Command::new("man")
        .arg("-l")
        .arg(page)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80")
        .env("MAN_KEEP_FORMATTING", "")
        .output()
        .unwrap();
    assert!(
        man.status.success(),
        "man -l {}: {}",
        page.display(),
        output_text(&man)
    );
    stdout(&man)
}

#[test]
fn the_manual_pages_read_in_groff_and_man_and_replace_only_their_own() {
    let tools = support::on_path("groff") && support::on_path("man");
    if !support::available(
        "`groff` and `man`",
        tools,
        "not installed (.ci/run installs groff-base and man-db)",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let o = assert_ok(dify_cfg(&["man"], dir.path()), "man");
    let main = dir.path().join("dify-cfg.1");
    fs::write(&main, &o.stdout).unwrap();
    let text = read_page(&main);
    for needed in [
        "SYNOPSIS",
        "dify-cfg-build(1)",
        "EXIT STATUS",
        "NO_COLOR",
        "--quiet",
    ] {
        assert!(text.contains(needed), "no {needed} in:\n{text}");
    }
    // A page per command, each readable.
    let pages = dir.path().join("man1");
    let o = assert_ok(
        dify_cfg(&["man", "--out", pages.to_str().unwrap()], dir.path()),
        "man --out",
    );
    let mut names: Vec<String> = fs::read_dir(&pages)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "dify-cfg-audit.1",
            "dify-cfg-build.1",
            "dify-cfg-check.1",
            "dify-cfg-commit.1",
            "dify-cfg-completions.1",
            "dify-cfg-diff.1",
            "dify-cfg-explain.1",
            "dify-cfg-init.1",
            "dify-cfg-man.1",
            "dify-cfg-report.1",
            "dify-cfg-schema.1",
            "dify-cfg.1",
        ]
    );
    assert_eq!(
        stdout(&o).lines().count(),
        names.len(),
        "{}",
        output_text(&o)
    );
    assert_eq!(
        fs::read(pages.join("dify-cfg.1")).unwrap(),
        fs::read(&main).unwrap()
    );
    let build = read_page(&pages.join("dify-cfg-build.1"));
    assert!(
        build.contains("--profile") && build.contains("--full"),
        "{build}"
    );
    // Written again: its own pages are replaced.
    let o = dify_cfg(
        &["--quiet", "man", "--out", pages.to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    assert_eq!(stdout(&o), "");
    assert!(
        stderr(&o).starts_with(&format!("wrote {} manual pages into ", names.len())),
        "{}",
        stderr(&o)
    );
    // A file of that name that is someone else's stops it, before any page
    // is written.
    fs::write(pages.join("dify-cfg-diff.1"), "my notes\n").unwrap();
    fs::remove_file(pages.join("dify-cfg-audit.1")).unwrap();
    let o = dify_cfg(&["man", "--out", pages.to_str().unwrap()], dir.path());
    assert_eq!(o.status.code(), Some(2), "{}", output_text(&o));
    assert!(
        stderr(&o).contains("dify-cfg-diff.1: it is in the way and is not a page dify-cfg wrote"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        fs::read_to_string(pages.join("dify-cfg-diff.1")).unwrap(),
        "my notes\n"
    );
    assert!(!pages.join("dify-cfg-audit.1").exists());
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

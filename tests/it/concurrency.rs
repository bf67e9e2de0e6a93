//! Two `build`s, or two `commit`s, at once on the same root: the second
//! waits or fails with a clear message, and nothing interleaves. Many
//! rounds, so that the processes overlap at different moments.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::support::{
    assert_ok, bin, fleet_repo_at, git, git_output, make_fleet, out_state, set_state, site_branches,
};

const ROUNDS: usize = 20;
const EXTRA_SITES: usize = 10;

fn command(root: &Path, args: &[&str]) -> Command {
    let mut c = bin(root);
    c.arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Start two runs at once and wait for both.
fn race(root: &Path, args: &[&str]) -> [Output; 2] {
    let a = command(root, args).spawn().unwrap();
    let b = command(root, args).spawn().unwrap();
    [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()]
}

fn ok(root: &Path, args: &[&str]) {
    assert_ok(
        command(root, args).output().unwrap(),
        &format!("dify-cfg {args:?}"),
    );
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n{}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn two_builds_at_once_do_not_interleave() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("fleet");
    make_fleet(&root, EXTRA_SITES);
    let mut refs = Vec::new();
    for state in 0..2 {
        set_state(&root, state);
        let out = tmp.path().join(format!("ref-{state}"));
        ok(&root, &["build", "--out", out.to_str().unwrap()]);
        refs.push(out_state(&out).0);
    }
    let out = root.join("out");
    let (mut refused, mut both) = (0, 0);
    for round in 0..ROUNDS {
        let state = round % 2;
        set_state(&root, state);
        // `--full` on some rounds: every site is rendered and compared.
        let args: &[&str] = if round % 4 == 3 {
            &["build", "--full"]
        } else {
            &["build"]
        };
        let runs = race(&root, args);
        let mut succeeded = 0;
        for r in &runs {
            let t = text(r);
            assert!(!t.contains("panicked"), "round {round}: {t}");
            match r.status.code() {
                Some(0) => succeeded += 1,
                Some(2) => {
                    assert!(
                        t.contains("another dify-cfg is writing to"),
                        "round {round}: the second build failed without saying why:\n{t}"
                    );
                    refused += 1;
                }
                _ => panic!("round {round}: {t}"),
            }
        }
        assert!(succeeded >= 1, "round {round}: neither build succeeded");
        both += usize::from(succeeded == 2);
        let (now, hidden) = out_state(&out);
        assert!(
            now == refs[state],
            "round {round}: the out directory is not a clean build of the inputs"
        );
        let strays: Vec<&String> = hidden.iter().filter(|n| n.contains("dify-cfg-")).collect();
        assert!(strays.is_empty(), "round {round}: left behind {strays:?}");
    }
    eprintln!("{ROUNDS} rounds: {refused} builds refused as busy, {both} rounds where both ran");
}

/// A git repository holding the fleet at `dir`, one commit on `main`.
fn fleet_repo(dir: &Path) -> PathBuf {
    fleet_repo_at(dir, 0)
}

#[test]
fn two_commits_at_once_do_not_interleave() {
    let tmp = tempfile::tempdir().unwrap();
    // The repository the commits race in, and a twin that gets the same
    // source commits (same ids: fixed identity and clock) and one commit
    // run each round: the reference for the branches.
    let root = fleet_repo(&tmp.path().join("raced"));
    let twin = fleet_repo(&tmp.path().join("twin"));
    assert_eq!(
        git(&root, &["rev-parse", "HEAD"]),
        git(&twin, &["rev-parse", "HEAD"])
    );
    let (mut refused, mut both) = (0, 0);
    let mut messages = std::collections::BTreeSet::new();
    for round in 0..ROUNDS {
        if round > 0 {
            let state = round % 2;
            for dir in [&root, &twin] {
                set_state(dir, state);
                git(dir, &["commit", "-q", "-am", &format!("round {round}")]);
            }
        }
        ok(&twin, &["commit"]);
        let runs = race(&root, &["commit"]);
        let mut succeeded = 0;
        for r in &runs {
            let t = text(r);
            assert!(!t.contains("panicked"), "round {round}: {t}");
            match r.status.code() {
                Some(0) => succeeded += 1,
                Some(2) => {
                    assert!(
                        t.contains("moved while dify-cfg was working")
                            || t.contains("is locked")
                            || t.contains("another dify-cfg"),
                        "round {round}: the second commit failed without saying why:\n{t}"
                    );
                    let err = String::from_utf8_lossy(&r.stderr);
                    let first = err.lines().next().unwrap_or_default();
                    // The message without the commit ids.
                    messages.insert(first.split(" (").next().unwrap_or_default().to_string());
                    refused += 1;
                }
                _ => panic!("round {round}: {t}"),
            }
        }
        assert!(succeeded >= 1, "round {round}: neither commit succeeded");
        both += usize::from(succeeded == 2);
        assert_eq!(
            site_branches(&root),
            site_branches(&twin),
            "round {round}: the branches are not what one commit makes"
        );
    }
    let fsck = git_output(&root, &["fsck", "--no-dangling", "--no-progress"]);
    assert!(
        fsck.status.success() && fsck.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&fsck.stderr)
    );
    // A further commit has nothing to do.
    let before = site_branches(&root);
    ok(&root, &["commit"]);
    assert_eq!(site_branches(&root), before);
    eprintln!(
        "{ROUNDS} rounds: {refused} commits refused ({messages:?}), {both} rounds where both succeeded"
    );
}

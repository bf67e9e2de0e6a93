//! Rollout semantics of `commit` against real git repositories: a later
//! wave's pull requests wait until the earlier waves' rollout branches are
//! merged (`--ignore-waves` overrides); branches of removed sites are
//! noticed and, with `--retire`, archived as tags and deleted; a branch
//! dify-cfg did not make is skipped while the other sites are committed.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::{assert_ok, dify_cfg, fleet_repo_at, git, git_output, refs, set_state};

/// A config repository of the example fleet, every site committed on its
/// branch, then every clinic's inputs changed and committed on `main`.
pub(crate) fn changed_fleet(tmp: &Path) -> PathBuf {
    let root = fleet_repo_at(&tmp.join("fleet"), 0);
    ok(&root, &["commit"]);
    set_state(&root, 1);
    git(&root, &["commit", "-q", "-am", "clinics: input state 1"]);
    root
}

pub(crate) fn run(root: &Path, args: &[&str]) -> Output {
    dify_cfg(args, root)
}

pub(crate) fn ok(root: &Path, args: &[&str]) -> String {
    let out = assert_ok(run(root, args), &format!("dify-cfg {args:?}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub(crate) fn json(out: &Output) -> serde_json::Value {
    let s = text(&out.stdout);
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// Every branch and tag, and where it points.
pub(crate) fn all_refs(root: &Path) -> BTreeMap<String, String> {
    let mut all = refs(root, "refs/heads/");
    all.extend(refs(root, "refs/tags/"));
    all
}

/// Merge `rollout/<site>` into `sites/<site>` as a forge does: with a
/// merge commit, or squashed into one commit of its own.
pub(crate) fn merge(root: &Path, site: &str, squash: bool) {
    let wt = root.parent().unwrap().join(format!("merge-{site}"));
    let wt_arg = wt.to_str().unwrap();
    let (base, head) = (format!("sites/{site}"), format!("rollout/{site}"));
    git(root, &["worktree", "add", "-q", wt_arg, &base]);
    if squash {
        git(&wt, &["merge", "-q", "--squash", &head]);
        git(
            &wt,
            &["commit", "-q", "-m", &format!("{site}: rollout (#12)")],
        );
    } else {
        let message = format!("Merge pull request #11 from {head}");
        git(&wt, &["merge", "-q", "--no-ff", "-m", &message, &head]);
    }
    git(root, &["worktree", "remove", "--force", wt_arg]);
}

#[test]
fn a_later_wave_waits_until_the_earlier_waves_rollouts_are_merged() {
    let tmp = tempfile::tempdir().unwrap();
    let root = changed_fleet(tmp.path());
    ok(&root, &["commit", "--pr", "--wave", "1"]);
    assert!(all_refs(&root).contains_key("rollout/clinic-01"));

    // The canary is not merged: wave 2 is refused before anything moves.
    let before = all_refs(&root);
    let out = run(&root, &["commit", "--pr", "--wave", "2"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let tip = &before["rollout/clinic-01"][..12];
    for needle in [
        "error: wave 2 waits for wave 1",
        &format!("rollout/clinic-01 (wave 1): ends in {tip}, not merged into `sites/clinic-01`"),
        "held back: clinic-02 (wave 2), clinic-03 (wave 2), clinic-04 (wave 2)",
        "no branch moved",
        "--ignore-waves",
    ] {
        assert!(err.contains(needle), "no `{needle}` in:\n{err}");
    }
    assert_eq!(all_refs(&root), before, "a refused --pr moved a ref");
    assert!(!root.join("out/_rollout/clinic-02.md").exists());
    // The same in JSON, for the rollout workflow; and in a dry run.
    let out = run(
        &root,
        &["commit", "--pr", "--wave", "2", "--format", "json"],
    );
    assert_eq!(out.status.code(), Some(2));
    let report = json(&out);
    let waiting = &report["waiting"];
    assert_eq!(
        waiting["open"][0]["branch"], "rollout/clinic-01",
        "{report}"
    );
    assert_eq!(waiting["open"][0]["base"], "sites/clinic-01", "{report}");
    assert_eq!(
        waiting["open"][0]["tip"],
        before["rollout/clinic-01"].as_str()
    );
    let held: Vec<&str> = waiting["held"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["site"].as_str().unwrap())
        .collect();
    assert_eq!(held, ["clinic-02", "clinic-03", "clinic-04"]);
    assert!(report["error"].as_str().unwrap().contains("--ignore-waves"));
    let dry = run(&root, &["commit", "--pr", "--wave", "2", "--dry-run"]);
    assert_eq!(dry.status.code(), Some(2), "{}", text(&dry.stderr));
    assert_eq!(all_refs(&root), before);

    // Merged with a merge commit: wave 2 is proposed.
    merge(&root, "clinic-01", false);
    ok(&root, &["commit", "--pr", "--wave", "2"]);
    for site in ["clinic-02", "clinic-03", "clinic-04"] {
        assert!(
            root.join(format!("out/_rollout/{site}.md")).exists(),
            "{site}"
        );
    }
    // Wave 3 waits for wave 2's three; squash-merged, they let it go.
    let out = run(&root, &["commit", "--pr", "--wave", "3"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    for site in ["clinic-02", "clinic-03", "clinic-04"] {
        assert!(err.contains(&format!("rollout/{site} (wave 2)")), "{err}");
    }
    for site in ["clinic-02", "clinic-03", "clinic-04"] {
        merge(&root, site, true);
    }
    let out = ok(&root, &["commit", "--pr", "--wave", "3"]);
    assert!(out.contains("rollout/clinic-10: "), "{out}");
}

#[test]
fn one_command_proposes_one_wave_unless_told_to_ignore_waves() {
    let tmp = tempfile::tempdir().unwrap();
    let root = changed_fleet(tmp.path());
    // Every wave at once would open the canary's pull request and the
    // others' together: refused, with the command that proposes wave 1.
    let before = all_refs(&root);
    let out = run(&root, &["commit", "--pr"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("wave 2, 3 waits for wave 1"), "{err}");
    assert!(
        err.contains("rollout/clinic-01 (wave 1): this command would propose it"),
        "{err}"
    );
    assert!(err.contains("`dify-cfg commit --pr --wave 1`"), "{err}");
    assert_eq!(all_refs(&root), before);

    // --ignore-waves proposes regardless; it does not also mean --force.
    ok(&root, &["commit", "--pr", "--ignore-waves"]);
    let rollouts = refs(&root, "refs/heads/rollout/");
    assert_eq!(rollouts.len(), 10, "{rollouts:?}");
    set_state(&root, 2);
    git(&root, &["commit", "-q", "-am", "clinics: input state 2"]);
    ok(&root, &["commit", "--pr", "--wave", "1"]);
    let out = run(&root, &["commit", "--pr", "--wave", "3", "--force"]);
    assert_eq!(out.status.code(), Some(2), "--force lifted the wave check");
    ok(&root, &["commit", "--pr", "--wave", "3", "--ignore-waves"]);
    assert_ne!(
        refs(&root, "refs/heads/rollout/")["rollout/clinic-10"],
        rollouts["rollout/clinic-10"]
    );
}

#[test]
fn a_removed_sites_branch_is_offered_then_retired_as_a_tag_never_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let root = fleet_repo_at(&tmp.path().join("fleet"), 0);
    ok(&root, &["commit"]);
    let tip = refs(&root, "refs/heads/sites/")["sites/clinic-10"].clone();
    // A branch under the prefix that dify-cfg did not make.
    git(&root, &["branch", "sites/old-lab", "main"]);
    fs::remove_file(root.join("sites/clinic-10.toml")).unwrap();
    git(&root, &["commit", "-q", "-am", "clinic-10 closes"]);
    let removal = git(&root, &["rev-parse", "HEAD"]);
    fs::write(root.join("NOTES.md"), "clinic-10 moved to clinic-04.\n").unwrap();
    git(&root, &["add", "NOTES.md"]);
    git(&root, &["commit", "-q", "-m", "notes"]);

    // Plain commit: the branch is named with the command that retires it.
    let before = all_refs(&root);
    let out = ok(&root, &["commit"]);
    assert!(
        out.contains(&format!(
            "sites/clinic-10: site `clinic-10` is no longer in the sources (tip {})",
            &tip[..12]
        )),
        "{out}"
    );
    assert!(out.contains("`dify-cfg commit --retire`"), "{out}");
    assert!(out.contains("sites/old-lab: site `old-lab` is no longer in the sources, and dify-cfg did not make its tip"), "{out}");
    assert_eq!(all_refs(&root), before);
    let report = json(&run(&root, &["commit", "--format", "json"]));
    assert_eq!(
        report["removed"][0]["branch"], "sites/clinic-10",
        "{report}"
    );
    assert_eq!(report["removed"][0]["managed"], true, "{report}");
    assert_eq!(report["removed"][0]["retired-as"], serde_json::Value::Null);
    assert_eq!(report["removed"][1]["branch"], "sites/old-lab", "{report}");

    // `retired/sites/clinic-10` already names another commit: kept as it is.
    git(&root, &["tag", "retired/sites/clinic-10", "main"]);
    let main = git(&root, &["rev-parse", "main"]);
    let out = ok(&root, &["commit", "--retire"]);
    assert!(
        out.contains("sites/clinic-10: retired: tag `retired/sites/clinic-10-2` keeps"),
        "{out}"
    );
    let after = all_refs(&root);
    assert!(!after.contains_key("sites/clinic-10"), "{after:?}");
    assert_eq!(
        after["retired/sites/clinic-10"], main,
        "a tag was overwritten"
    );
    assert_eq!(after["sites/old-lab"], before["sites/old-lab"]);
    let tag = "retired/sites/clinic-10-2";
    assert_eq!(git(&root, &["cat-file", "-t", tag]), "tag");
    assert_eq!(
        git(&root, &["rev-parse", &format!("{tag}^{{commit}}")]),
        tip
    );
    let message = git(&root, &["tag", "-l", "--format=%(contents)", tag]);
    for needle in [
        "Branch: sites/clinic-10",
        &format!("Tip: {tip}"),
        &format!("Source-Commit: {removal}"),
        "Compiler: dify-cfg ",
    ] {
        assert!(message.contains(needle), "no `{needle}` in:\n{message}");
    }
    // Signed as the removing commit was: the same facts, the same tag.
    assert_eq!(
        git(
            &root,
            &["tag", "-l", "--format=%(taggername) %(taggerdate:raw)", tag]
        ),
        git(
            &root,
            &["log", "-1", "--format=%cn %cd", "--date=raw", &removal]
        )
    );
    assert!(
        git_output(&root, &["fsck", "--no-dangling"])
            .status
            .success()
    );

    // Again: nothing left to retire, nothing moves.
    let out = ok(&root, &["commit", "--retire"]);
    assert!(!out.contains("clinic-10"), "{out}");
    assert_eq!(all_refs(&root), after);
}

#[test]
fn a_hand_made_tip_is_skipped_while_the_others_are_committed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = changed_fleet(tmp.path());
    // Someone commits on clinic-09's branch by hand.
    let wt = tmp.path().join("hand");
    let wt_arg = wt.to_str().unwrap();
    git(&root, &["worktree", "add", "-q", wt_arg, "sites/clinic-09"]);
    fs::write(wt.join("HOTFIX"), "opened by hand\n").unwrap();
    git(&wt, &["add", "HOTFIX"]);
    git(&wt, &["commit", "-q", "-m", "hotfix on the box"]);
    git(&root, &["worktree", "remove", "--force", wt_arg]);
    let before = refs(&root, "refs/heads/sites/");

    let out = run(&root, &["commit", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let report = json(&out);
    let skipped = report["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{report}");
    assert_eq!(skipped[0]["site"], "clinic-09");
    assert_eq!(skipped[0]["branch"], "sites/clinic-09");
    assert_eq!(skipped[0]["tip"], before["sites/clinic-09"].as_str());
    let reason = skipped[0]["reason"].as_str().unwrap();
    assert!(reason.contains("\"hotfix on the box\"") && reason.contains("--force"));
    let after = refs(&root, "refs/heads/sites/");
    for (branch, old) in &before {
        match branch.as_str() {
            "sites/clinic-09" => assert_eq!(&after[branch], old, "the hand-made tip moved"),
            "sites/hq" => assert_eq!(&after[branch], old, "hq's inputs did not change"),
            _ => assert_ne!(&after[branch], old, "{branch} was not committed"),
        }
    }

    // The text report names the skipped site; --force commits on top.
    let out = run(&root, &["commit"]);
    assert_eq!(out.status.code(), Some(1));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        stdout.contains("sites/clinic-09: skipped: ends in ") && stdout.contains("--force"),
        "{stdout}"
    );
    assert!(stderr.contains("updated 0 of 11 site branches"), "{stderr}");
    assert!(stderr.contains("1 skipped"), "{stderr}");
    ok(&root, &["commit", "--force", "--site", "clinic-09"]);
    let hand = &before["sites/clinic-09"];
    assert_eq!(&git(&root, &["rev-parse", "sites/clinic-09^"]), hand);
    ok(&root, &["commit"]);
}

//! Releases through the rollout, against real git repositories: an
//! upgrade of the edge boxes' Dify goes canary first; a downgrade is
//! refused (nothing moves) unless the profile allows it; a later wave also
//! waits until the boxes of the earlier waves that report back have
//! applied their merged site branches (`refs/dify-cfg/applied/<branch>`).

use std::fs;
use std::path::Path;

use crate::rollout::{all_refs, changed_fleet, json, merge, ok, run, text};
use crate::support::{fleet_repo_at, git, refs};

const APPLIED: &str = "refs/dify-cfg/applied/sites/clinic-01";

/// Set the edge boxes' Dify release (`profiles/edge-4gb.toml`), and add
/// `extra` under its `[dify]`, and commit that on `main`.
fn set_release(root: &Path, version: &str, extra: &str) {
    let path = root.join("profiles/edge-4gb.toml");
    let old = fs::read_to_string(&path).unwrap();
    let start = old.find("[dify]\nversion = \"").unwrap();
    let end = start + old[start..].find("\n\n").unwrap();
    let new = format!("[dify]\nversion = \"{version}\"\n{extra}");
    fs::write(
        &path,
        format!("{}{}{}", &old[..start], new.trim_end(), &old[end..]),
    )
    .unwrap();
    git(
        root,
        &[
            "commit",
            "-q",
            "-am",
            &format!("edge boxes: Dify {version}"),
        ],
    );
}

/// A key of the manifest on a branch's tip.
fn manifest_key(root: &Path, branch: &str, key: &str) -> serde_json::Value {
    let manifest = git(root, &["show", &format!("{branch}:manifest.json")]);
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    manifest[key].clone()
}

/// Branches, tags and the applied refs, and where they point.
fn every_ref(root: &Path) -> std::collections::BTreeMap<String, String> {
    let mut all = all_refs(root);
    all.extend(refs(root, "refs/dify-cfg/"));
    all
}

#[test]
fn a_downgrade_is_refused_unless_the_profile_allows_it() {
    let tmp = tempfile::tempdir().unwrap();
    let root = fleet_repo_at(&tmp.path().join("fleet"), 0);
    // The edge boxes as they were before the fleet moved to 1.16.1.
    set_release(&root, "1.16.0", "");
    ok(&root, &["commit"]);
    // The upgrade goes through.
    set_release(&root, "1.16.1", "");
    ok(&root, &["commit"]);
    assert_eq!(
        manifest_key(&root, "sites/clinic-07", "dify-version"),
        "1.16.1"
    );

    // Back to 1.16.0: every clinic is refused, nothing moves; hq (on its
    // own profile, unchanged) is not named.
    set_release(&root, "1.16.0", "");
    let before = every_ref(&root);
    for (args, clinics) in [
        (&["commit"][..], 10),
        (&["commit", "--force"], 10),
        (&["commit", "--dry-run"], 10),
        (&["commit", "--pr", "--wave", "1"], 1),
    ] {
        let out = run(&root, args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(every_ref(&root), before, "{args:?} moved a ref");
        for n in 1..=clinics {
            let needle = format!(
                "error[release-downgrade]: site `clinic-{n:02}` would go from Dify 1.16.1 back to Dify 1.16.0"
            );
            assert!(err.contains(&needle), "{args:?}: no `{needle}` in:\n{err}");
        }
        assert!(!err.contains("site `hq`"), "{err}");
    }
    assert!(!root.join("out/_rollout").exists());
    let out = run(&root, &["commit", "--site", "clinic-01"]);
    insta::assert_snapshot!("release_downgrade", text(&out.stderr));
    let report = json(&run(
        &root,
        &["commit", "--format", "json", "--site", "clinic-01"],
    ));
    let d = &report["diagnostics"][0];
    assert_eq!(d["code"], "release-downgrade", "{report}");
    assert_eq!(d["location"]["path"], "profiles/edge-4gb.toml", "{report}");
    assert_eq!(d["location"]["line"], 20, "{report}");

    // `diff` shows the change, and warns that `commit` refuses it.
    let out = run(&root, &["diff", "--site", "clinic-01"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        text(&out.stdout).contains("+  \"dify-version\": \"1.16.0\""),
        "{}",
        text(&out.stdout)
    );
    for needle in [
        "warning[release-downgrade]: site `clinic-01` would go from Dify 1.16.1 back to Dify 1.16.0",
        " --> profiles/edge-4gb.toml:20:11",
        "`dify-cfg commit` refuses this site (exit 2) until then",
    ] {
        assert!(err.contains(needle), "no `{needle}` in:\n{err}");
    }
    let report = json(&run(
        &root,
        &["diff", "--site", "clinic-01", "--format", "json"],
    ));
    assert_eq!(report["diagnostics"][0]["severity"], "warning", "{report}");
    assert_eq!(report["sites"][0]["differs"], true, "{report}");

    // Allowed on purpose: committed, and the manifest says so.
    set_release(&root, "1.16.0", "allow-downgrade = true\n");
    let explained = ok(&root, &["explain", "--site", "clinic-01", "dify"]);
    assert!(
        explained
            .lines()
            .any(|l| l.starts_with("dify.allow-downgrade = true ")
                && l.ends_with("# profiles/edge-4gb.toml:21:19")),
        "{explained}"
    );
    let out = run(&root, &["diff", "--site", "clinic-01"]);
    assert!(
        !text(&out.stderr).contains("release-downgrade"),
        "{}",
        text(&out.stderr)
    );
    ok(&root, &["commit"]);
    let after = refs(&root, "refs/heads/sites/");
    assert_ne!(after["sites/clinic-01"], before["sites/clinic-01"]);
    assert_eq!(after["sites/hq"], before["sites/hq"]);
    assert_eq!(
        manifest_key(&root, "sites/clinic-01", "dify-version"),
        "1.16.0"
    );
    assert_eq!(
        manifest_key(&root, "sites/clinic-01", "allow-downgrade"),
        true
    );
    assert_eq!(
        manifest_key(&root, "sites/hq", "allow-downgrade"),
        serde_json::Value::Null
    );
    // The exception goes, and the branch stays where it is.
    set_release(&root, "1.16.0", "");
    ok(&root, &["commit"]);
    assert_eq!(
        manifest_key(&root, "sites/clinic-01", "allow-downgrade"),
        serde_json::Value::Null
    );
}

#[test]
fn an_upgrade_goes_to_the_canary_first_and_the_rest_wait_for_its_merge() {
    let tmp = tempfile::tempdir().unwrap();
    let root = fleet_repo_at(&tmp.path().join("fleet"), 0);
    set_release(&root, "1.16.0", "");
    ok(&root, &["commit"]);
    set_release(&root, "1.16.1", "");

    // All waves at once: refused, with the command for the canary.
    let before = every_ref(&root);
    let out = run(&root, &["commit", "--pr"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("`dify-cfg commit --pr --wave 1`"), "{err}");
    assert_eq!(every_ref(&root), before);

    let out = ok(&root, &["commit", "--pr", "--wave", "1"]);
    assert!(out.contains("rollout/clinic-01: "), "{out}");
    assert!(out.contains("rollout/hq: unchanged"), "{out}");
    assert_eq!(
        manifest_key(&root, "rollout/clinic-01", "dify-version"),
        "1.16.1"
    );
    assert_eq!(
        manifest_key(&root, "sites/clinic-01", "dify-version"),
        "1.16.0"
    );
    let body = fs::read_to_string(root.join("out/_rollout/clinic-01.md")).unwrap();
    assert!(body.contains("1.16.1"), "{body}");

    // Wave 2 waits for the canary's merge, then goes.
    let out = run(&root, &["commit", "--pr", "--wave", "2"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("rollout/clinic-01 (wave 1): ends in "),
        "{err}"
    );
    assert!(
        err.contains("held back: clinic-02 (wave 2), clinic-03 (wave 2), clinic-04 (wave 2)"),
        "{err}"
    );
    assert!(!all_refs(&root).contains_key("rollout/clinic-02"));
    merge(&root, "clinic-01", false);
    ok(&root, &["commit", "--pr", "--wave", "2"]);
    for site in ["clinic-02", "clinic-03", "clinic-04"] {
        let rollout = format!("rollout/{site}");
        assert_eq!(
            manifest_key(&root, &rollout, "dify-version"),
            "1.16.1",
            "{site}"
        );
    }
    // Wave 3 waits for wave 2.
    let out = run(&root, &["commit", "--pr", "--wave", "3"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn a_later_wave_waits_until_the_earlier_waves_boxes_applied_what_was_merged() {
    let tmp = tempfile::tempdir().unwrap();
    let root = changed_fleet(tmp.path());
    // The canary's box reports back: it runs the site branch as it is.
    let running = refs(&root, "refs/heads/sites/")["sites/clinic-01"].clone();
    git(&root, &["update-ref", APPLIED, &running]);
    ok(&root, &["commit", "--pr", "--wave", "1"]);
    merge(&root, "clinic-01", false);
    let merged = refs(&root, "refs/heads/sites/")["sites/clinic-01"].clone();

    // Merged, not yet applied: wave 2 is held, nothing moves.
    let before = every_ref(&root);
    let out = run(&root, &["commit", "--pr", "--wave", "2"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for needle in [
        "error: wave 2 waits for wave 1: these rollout branches are not merged into their site branches, or not yet applied by their sites' boxes:",
        &format!(
            "rollout/clinic-01 (wave 1): merged into `sites/clinic-01` (at {}), not yet applied: the box reports {} in `{APPLIED}`",
            &merged[..12],
            &running[..12]
        ),
        "held back: clinic-02 (wave 2), clinic-03 (wave 2), clinic-04 (wave 2)",
        "wait until each box has applied its site branch",
        "no branch moved",
    ] {
        assert!(err.contains(needle), "no `{needle}` in:\n{err}");
    }
    assert_eq!(every_ref(&root), before);
    let out = run(
        &root,
        &["commit", "--pr", "--wave", "2", "--format", "json"],
    );
    assert_eq!(out.status.code(), Some(2));
    let report = json(&out);
    let open = &report["waiting"]["open"][0];
    assert_eq!(open["site"], "clinic-01", "{report}");
    assert_eq!(open["unapplied"]["ref"], APPLIED, "{report}");
    assert_eq!(open["unapplied"]["applied"], running.as_str(), "{report}");
    assert_eq!(open["unapplied"]["site-tip"], merged.as_str(), "{report}");
    // `--ignore-waves` still proposes regardless.
    let dry = run(
        &root,
        &[
            "commit",
            "--pr",
            "--wave",
            "2",
            "--ignore-waves",
            "--dry-run",
        ],
    );
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry.stderr));

    // The box applied the merged commit: wave 2 is proposed.
    git(&root, &["update-ref", APPLIED, &merged]);
    ok(&root, &["commit", "--pr", "--wave", "2"]);

    // Wave 2's boxes: clinic-02 reports the rollout commit it was
    // squash-merged from (the same tree: applied), clinic-03 an older
    // commit (held), clinic-04 does not report back (merged is enough).
    for site in ["clinic-02", "clinic-03", "clinic-04"] {
        merge(&root, site, true);
    }
    let rollout_02 = refs(&root, "refs/heads/rollout/")["rollout/clinic-02"].clone();
    git(
        &root,
        &[
            "update-ref",
            "refs/dify-cfg/applied/sites/clinic-02",
            &rollout_02,
        ],
    );
    let old_03 = git(&root, &["rev-parse", "sites/clinic-03^"]);
    git(
        &root,
        &[
            "update-ref",
            "refs/dify-cfg/applied/sites/clinic-03",
            &old_03,
        ],
    );
    let out = run(&root, &["commit", "--pr", "--wave", "3"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("rollout/clinic-03 (wave 2): merged into `sites/clinic-03`"),
        "{err}"
    );
    assert!(!err.contains("clinic-02 (wave 2)"), "{err}");
    assert!(!err.contains("clinic-04 (wave 2)"), "{err}");
    // A box that ran ahead (a descendant of the tip) has applied it too.
    let wt = tmp.path().join("ahead");
    let wt_arg = wt.to_str().unwrap();
    git(
        &root,
        &[
            "worktree",
            "add",
            "-q",
            "--detach",
            wt_arg,
            "sites/clinic-03",
        ],
    );
    git(
        &wt,
        &[
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "a later commit the box fetched",
        ],
    );
    let ahead = git(&wt, &["rev-parse", "HEAD"]);
    git(&root, &["worktree", "remove", "--force", wt_arg]);
    git(
        &root,
        &[
            "update-ref",
            "refs/dify-cfg/applied/sites/clinic-03",
            &ahead,
        ],
    );
    let out = ok(&root, &["commit", "--pr", "--wave", "3"]);
    assert!(out.contains("rollout/clinic-10: "), "{out}");
}

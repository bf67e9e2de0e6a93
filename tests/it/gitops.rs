//! `commit`, `diff` and `audit` against real git repositories in temp dirs.
//! The tests drive git with its command line (the product itself uses
//! git2 and never runs git).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{
    self, assert_ok, copy_fleet, dify_cfg, git, git_output, init_repo, site_branches, snapshot,
};

const CLINICS: usize = 10;

/// A config repository holding the example fleet, one commit on `main`.
fn fleet_repo() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("fleet");
    fs::create_dir_all(&root).unwrap();
    copy_fleet(&root);
    fs::write(root.join("README.md"), "The clinic fleet.\n").unwrap();
    init_repo(&root, "The clinic fleet");
    (tmp, root)
}

fn run(root: &Path, args: &[&str]) -> Output {
    dify_cfg(args, root)
}

fn ok(root: &Path, args: &[&str]) -> String {
    let out = assert_ok(run(root, args), &format!("dify-cfg {args:?}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every branch and where it points.
fn branches(root: &Path) -> BTreeMap<String, String> {
    support::refs(root, "refs/heads/")
}

/// HEAD, the index, and every file of the working tree except `.git/`
/// internals other than those two.
fn user_state(root: &Path) -> (String, Vec<u8>, BTreeMap<String, Vec<u8>>) {
    let head = fs::read_to_string(root.join(".git/HEAD")).unwrap();
    let index = fs::read(root.join(".git/index")).unwrap();
    let mut work = snapshot(root);
    work.retain(|p, _| !p.starts_with(".git/"));
    (head, index, work)
}

fn edit(root: &Path, rel: &str, from: &str, to: &str) {
    let path = root.join(rel);
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{rel} has no `{from}`");
    fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

#[test]
fn commit_creates_a_branch_per_site_and_is_idempotent_and_reproducible() {
    let (_tmp, root) = fleet_repo();
    let before = user_state(&root);
    let main_before = git(&root, &["rev-parse", "main"]);

    ok(&root, &["commit"]);
    let first = site_branches(&root);
    let mut expected: Vec<String> = (1..=CLINICS)
        .map(|n| format!("sites/clinic-{n:02}"))
        .collect();
    expected.push("sites/hq".into());
    assert_eq!(first.keys().cloned().collect::<Vec<_>>(), expected);

    // The user's HEAD, index and working tree are untouched, main too.
    assert_eq!(
        user_state(&root),
        before,
        "commit touched HEAD, the index or the working tree"
    );
    assert_eq!(git(&root, &["rev-parse", "main"]), main_before);
    assert_eq!(git(&root, &["status", "--porcelain"]), "");

    // Each commit holds exactly the rendered tree, author from the source.
    let built = tempfile::tempdir().unwrap();
    ok(
        &root,
        &[
            "build",
            "--site",
            "clinic-01",
            "--out",
            built.path().to_str().unwrap(),
        ],
    );
    let files = git(&root, &["ls-tree", "-r", "--name-only", "sites/clinic-01"]);
    let on_disk: Vec<String> = snapshot(&built.path().join("clinic-01"))
        .into_keys()
        .collect();
    assert_eq!(
        files.lines().map(str::to_string).collect::<Vec<_>>(),
        on_disk
    );
    for path in &on_disk {
        let blob = git_output(&root, &["show", &format!("sites/clinic-01:{path}")]).stdout;
        assert_eq!(
            blob,
            fs::read(built.path().join("clinic-01").join(path)).unwrap(),
            "{path}"
        );
    }
    let message = git(&root, &["log", "-1", "--format=%B", "sites/clinic-01"]);
    assert!(message.starts_with("clinic-01: first render"), "{message}");
    for trailer in [
        "Source-Commit: ",
        "Input-Digest: ",
        "Output-Digest: ",
        "Compiler: dify-cfg ",
    ] {
        assert!(message.contains(trailer), "no {trailer} in:\n{message}");
    }
    assert!(
        message.contains(&format!("Source-Commit: {main_before}")),
        "{message}"
    );
    assert_eq!(
        git(
            &root,
            &[
                "log",
                "-1",
                "--format=%an <%ae> %ad",
                "--date=raw",
                "sites/clinic-01"
            ]
        ),
        git(
            &root,
            &["log", "-1", "--format=%an <%ae> %ad", "--date=raw", "main"]
        ),
    );

    // A second run commits nothing and the ids stay.
    let again = ok(&root, &["commit"]);
    assert!(again.lines().all(|l| l.ends_with(": unchanged")), "{again}");
    assert_eq!(site_branches(&root), first);

    // Re-running from scratch on the same source gives the same commit ids.
    for b in first.keys() {
        git(&root, &["branch", "-q", "-D", b]);
    }
    ok(&root, &["commit"]);
    assert_eq!(
        site_branches(&root),
        first,
        "commit ids are not reproducible"
    );
}

#[test]
fn editing_one_site_moves_only_its_branch_and_dirty_trees_are_refused() {
    let (_tmp, root) = fleet_repo();
    ok(&root, &["commit"]);
    let before = site_branches(&root);

    edit(&root, "sites/clinic-05.toml", "10.20.5.10", "10.20.5.11");
    let refused = run(&root, &["commit"]);
    assert_eq!(refused.status.code(), Some(2));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("sites/clinic-05.toml") && err.contains("--allow-dirty"),
        "{err}"
    );
    assert_eq!(
        site_branches(&root),
        before,
        "a refused commit wrote a branch"
    );

    // `diff` sees the change in the working tree.
    let diff = run(&root, &["diff", "--stat", "--exit-code"]);
    assert_eq!(diff.status.code(), Some(1));
    let stat = String::from_utf8_lossy(&diff.stdout);
    assert!(stat.contains("clinic-05: 3 files differ"), "{stat}");
    assert!(stat.contains("clinic-04: up to date"), "{stat}");

    git(&root, &["commit", "-q", "-am", "clinic-05: new address"]);
    ok(&root, &["commit"]);
    let after = site_branches(&root);
    for (b, id) in &after {
        if b == "sites/clinic-05" {
            assert_ne!(id, &before[b]);
            assert_eq!(
                git(&root, &["rev-parse", &format!("{b}^")]),
                before[b],
                "the new commit's parent is the old tip"
            );
        } else {
            assert_eq!(id, &before[b], "{b} moved");
        }
    }
    let diff = run(&root, &["diff", "--exit-code"]);
    assert_eq!(
        diff.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&diff.stdout)
    );

    // A prefix the boxes do not pull from is refused.
    let out = run(&root, &["commit", "--branch-prefix", "prod/"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("gitops.branch-prefix"));
    assert!(!branches(&root).keys().any(|b| b.starts_with("prod/")));

    // --allow-dirty commits the working tree and says so.
    edit(&root, "sites/clinic-06.toml", "10.20.6.10", "10.20.6.11");
    ok(&root, &["commit", "--site", "clinic-06", "--allow-dirty"]);
    let message = git(&root, &["log", "-1", "--format=%B", "sites/clinic-06"]);
    assert!(message.contains("Source-Dirty: true"), "{message}");
}

#[test]
fn a_branch_moved_meanwhile_fails_cleanly_and_writes_nothing() {
    use dify_cfg::Compiled;
    use dify_cfg::{CommitPlan, prepare, publish};
    use dify_cfg::{GitError, Repo};

    let (_tmp, root) = fleet_repo();
    ok(&root, &["commit"]);
    edit(&root, "profiles/multi-branch.toml", "wave = 3", "wave = 4");
    git(&root, &["commit", "-q", "-am", "clinics: wave 4"]);

    let repo = Repo::discover(&root).unwrap();
    let head = repo.head().unwrap();
    let compiled = Compiled::at_commit(&repo, head).unwrap();
    assert!(!compiled.diagnostics.has_errors());
    let chosen: Vec<_> = compiled.sites.iter().collect();
    let trees = dify_cfg::render_all(&compiled.inputs, &chosen).unwrap();
    let pairs: Vec<_> = chosen.iter().copied().zip(trees).collect();
    let prepared = prepare(&repo, head, &pairs, &CommitPlan::default()).unwrap();
    assert!(prepared.updates.len() >= 5, "{:?}", prepared.updates);

    // Someone moves one of the branches between the read and the write.
    let before = branches(&root);
    git(&root, &["branch", "-q", "-f", "sites/clinic-09", "main"]);
    let moved = branches(&root);
    match publish(&repo, &prepared) {
        Err(GitError::Moved { branch, .. }) => assert_eq!(branch, "sites/clinic-09"),
        other => panic!("expected a Moved error, got {other:?}"),
    }
    assert_eq!(branches(&root), moved, "a failed publish wrote a branch");
    assert_ne!(moved, before);

    // The command line says so too: the foreign tip is skipped (a dry
    // run: the other sites would be committed).
    let out = run(&root, &["commit", "--dry-run"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stdout);
    assert!(
        err.contains("sites/clinic-09: skipped") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(branches(&root), moved);

    // A ref locked by another git process: refused, nothing written.
    git(
        &root,
        &[
            "branch",
            "-q",
            "-f",
            "sites/clinic-09",
            &before["sites/clinic-09"],
        ],
    );
    let lock = root.join(".git/refs/heads/sites/clinic-01.lock");
    fs::write(&lock, "").unwrap();
    let locked = publish(&repo, &prepared);
    assert!(matches!(locked, Err(GitError::Locked { .. })), "{locked:?}");
    assert_eq!(branches(&root), before);
    fs::remove_file(&lock).unwrap();
    publish(&repo, &prepared).unwrap();
    assert_ne!(branches(&root), before);
}

#[test]
fn audit_reports_reproducible_drift_stale_and_unmanaged() {
    let (_tmp, root) = fleet_repo();
    ok(&root, &["commit"]);

    // A fresh clone, with the site branches fetched: all reproducible.
    let clone_dir = tempfile::tempdir().unwrap();
    let clone = clone_dir.path().join("clone");
    git(
        clone_dir.path(),
        &["clone", "-q", root.to_str().unwrap(), "clone"],
    );
    git(
        &clone,
        &[
            "fetch",
            "-q",
            "origin",
            "refs/heads/sites/*:refs/heads/sites/*",
        ],
    );
    let out = ok(&clone, &["audit", "--format", "json"]);
    let report = json(&out);
    let verdicts: Vec<&str> = report["branches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["verdict"].as_str().unwrap())
        .collect();
    assert_eq!(verdicts, vec!["reproducible"; CLINICS + 1], "{out}");
    assert_eq!(report["ok"], true);

    // One byte edited on a branch, committed with the same trailers.
    git(
        &root,
        &["worktree", "add", "-q", "../wt", "sites/clinic-02"],
    );
    let wt = root.parent().unwrap().join("wt");
    edit(
        &wt,
        "compose.yaml",
        "restart: unless-stopped",
        "restart: unless-stoppeD",
    );
    let message = git(&wt, &["log", "-1", "--format=%B"]);
    git(
        &wt,
        &[
            "commit",
            "-q",
            "-am",
            &message.replacen("clinic-02:", "clinic-02: hotfix,", 1),
        ],
    );
    git(&root, &["worktree", "remove", "--force", "../wt"]);
    let out = run(&root, &["audit", "--site", "clinic-02"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("clinic-02  drift"), "{text}");
    assert!(
        text.contains("edited on the branch: compose.yaml"),
        "{text}"
    );

    // A source change: the branches it touches are stale.
    edit(&root, "sites/clinic-07.toml", "10.20.7.10", "10.20.7.11");
    git(&root, &["commit", "-q", "-am", "clinic-07: new address"]);
    let out = run(&root, &["audit", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let report = json(&String::from_utf8_lossy(&out.stdout));
    let by_site: BTreeMap<String, serde_json::Value> = report["branches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["site"].as_str().unwrap().to_string(), b.clone()))
        .collect();
    assert_eq!(by_site["clinic-07"]["verdict"], "stale");
    assert!(
        by_site["clinic-07"]["stale"]
            .as_array()
            .unwrap()
            .contains(&"compose.yaml".into())
    );
    assert_eq!(by_site["clinic-02"]["verdict"], "drift");
    assert_eq!(by_site["clinic-01"]["verdict"], "reproducible");
    // The audit read the inputs from git, not from the working tree: an
    // uncommitted edit changes nothing.
    edit(&root, "sites/clinic-01.toml", "10.20.1.10", "10.20.1.99");
    let again = json(&String::from_utf8_lossy(
        &run(&root, &["audit", "--format", "json", "--site", "clinic-01"]).stdout,
    ));
    assert_eq!(again["branches"][0]["verdict"], "reproducible");
    // Auditing an older revision: clinic-07 was what that revision rendered.
    let old = json(&String::from_utf8_lossy(
        &run(
            &root,
            &[
                "audit",
                "--format",
                "json",
                "--site",
                "clinic-07",
                "--rev",
                "HEAD~1",
            ],
        )
        .stdout,
    ));
    assert_eq!(old["branches"][0]["verdict"], "reproducible");

    // A branch whose tip dify-cfg did not make.
    git(&root, &["branch", "-q", "-f", "sites/clinic-08", "main"]);
    let out = run(&root, &["audit", "--site", "clinic-08"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("clinic-08  unmanaged"), "{text}");
}

#[test]
fn rollout_pull_requests_name_a_newly_opened_port() {
    let (_tmp, root) = fleet_repo();
    ok(&root, &["commit", "--wave", "1", "--profile", "edge"]);
    assert_eq!(
        site_branches(&root).keys().cloned().collect::<Vec<_>>(),
        vec!["sites/clinic-01"],
        "wave 1 of the edge boxes is the canary only"
    );
    let waves = run(&root, &["commit", "--wave", "9"]);
    assert_eq!(waves.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&waves.stderr).contains("the fleet's waves are 1, 2, 3"));

    // Head office opens the console to a second admin network.
    edit(
        &root,
        "sites/clinic-01.toml",
        "[network]\n",
        "[network]\nadmin = [\"10.0.0.0/24\", \"10.9.0.0/24\"]\n",
    );
    git(
        &root,
        &["commit", "-q", "-am", "clinic-01: second admin network"],
    );
    let base_before = site_branches(&root);
    let out = ok(
        &root,
        &["commit", "--pr", "--site", "clinic-01", "--format", "json"],
    );
    let report = json(&out);
    let site = &report["sites"][0];
    assert_eq!(site["branch"], "rollout/clinic-01");
    assert_eq!(site["base"], "sites/clinic-01");
    assert_eq!(site["pr-body-file"], "_rollout/clinic-01.md");
    assert_eq!(
        site_branches(&root),
        base_before,
        "--pr moved the site branch"
    );
    assert_eq!(
        git(&root, &["rev-parse", "rollout/clinic-01^"]),
        base_before["sites/clinic-01"],
        "the rollout commit sits on the site branch"
    );

    let body = fs::read_to_string(root.join("out/_rollout/clinic-01.md")).unwrap();
    let title = fs::read_to_string(root.join("out/_rollout/clinic-01.title")).unwrap();
    assert!(title.starts_with("clinic-01: open "), "{title}");
    assert!(body.starts_with(&format!("# {}", title.trim())), "{body}");
    assert!(
        body.contains("- **port opened**: `tcp/80 to 10.20.1.10 from 10.9.0.0/24 (IPv4)`"),
        "{body}"
    );
    for needle in [
        "## Risk flags",
        "## Files",
        "`firewall/rules.v4`",
        "Source-Commit",
        "Output-Digest",
        "dify-cfg audit --site clinic-01 --branch-prefix rollout/",
    ] {
        assert!(body.contains(needle), "no {needle} in:\n{body}");
    }
    // The rollout branch reproduces; running again proposes nothing new.
    ok(&root, &["audit", "--branch-prefix", "rollout/"]);
    let rollout = git(&root, &["rev-parse", "rollout/clinic-01"]);
    ok(&root, &["commit", "--pr", "--site", "clinic-01"]);
    assert_eq!(git(&root, &["rev-parse", "rollout/clinic-01"]), rollout);

    // A site without a branch gets an empty one, and its first render as a PR.
    ok(
        &root,
        &["commit", "--pr", "--ignore-waves", "--site", "clinic-02"],
    );
    assert_eq!(
        git(&root, &["ls-tree", "sites/clinic-02"]),
        "",
        "the site branch starts empty"
    );
    let body = fs::read_to_string(root.join("out/_rollout/clinic-02.md")).unwrap();
    assert!(body.starts_with("# clinic-02: first render"), "{body}");

    // Dry runs write nothing.
    edit(&root, "sites/clinic-03.toml", "10.20.3.10", "10.20.3.11");
    git(&root, &["commit", "-q", "-am", "clinic-03: new address"]);
    let all = branches(&root);
    let dry = ok(&root, &["commit", "--dry-run", "--site", "clinic-03"]);
    assert!(
        dry.contains("would commit: clinic-03: first render"),
        "{dry}"
    );
    assert_eq!(branches(&root), all);
}

#[test]
fn links_in_a_commit_are_followed_inside_the_root_only() {
    let (_tmp, root) = fleet_repo();
    // A profile that is a link to another, inside the root: fine.
    std::os::unix::fs::symlink("edge-4gb.toml", root.join("profiles/edge-alias.toml")).unwrap();
    git(&root, &["add", "-A"]);
    git(&root, &["commit", "-q", "-m", "an alias profile"]);
    ok(&root, &["commit"]);
    ok(&root, &["audit"]);

    // A link leading out of the root is refused when read from the commit,
    // exactly as when read from disk.
    let outside = root.parent().unwrap().join("outside.toml");
    fs::write(&outside, "profile = \"multi-branch\"\n").unwrap();
    std::os::unix::fs::symlink("../../outside.toml", root.join("sites/clinic-99.toml")).unwrap();
    git(&root, &["add", "-A"]);
    git(&root, &["commit", "-q", "-m", "a link out"]);
    let before = branches(&root);
    let out = run(&root, &["commit", "--format", "json"]);
    assert_eq!(out.status.code(), Some(2));
    let report = json(&String::from_utf8_lossy(&out.stdout));
    let d = &report["diagnostics"][0];
    assert_eq!(d["code"], "outside-root", "{report}");
    assert_eq!(d["location"]["path"], "sites/clinic-99.toml", "{report}");
    assert_eq!(branches(&root), before);
}

#[test]
fn a_pull_request_merged_with_a_merge_commit_stays_managed() {
    let (_tmp, root) = fleet_repo();
    ok(&root, &["commit", "--site", "clinic-01"]);
    edit(&root, "sites/clinic-01.toml", "10.20.1.10", "10.20.1.11");
    git(&root, &["commit", "-q", "-am", "clinic-01: new address"]);
    ok(&root, &["commit", "--pr", "--site", "clinic-01"]);
    // The forge merges rollout/clinic-01 into sites/clinic-01 with a merge commit.
    git(
        &root,
        &["worktree", "add", "-q", "../wt", "sites/clinic-01"],
    );
    let wt = root.parent().unwrap().join("wt");
    git(
        &wt,
        &[
            "merge",
            "-q",
            "--no-ff",
            "-m",
            "Merge pull request #7 from rollout/clinic-01",
            "rollout/clinic-01",
        ],
    );
    git(&root, &["worktree", "remove", "--force", "../wt"]);
    let out = ok(&root, &["audit", "--site", "clinic-01"]);
    assert!(out.contains("clinic-01  reproducible"), "{out}");
    assert!(out.contains("note: merge "), "{out}");
    // And the next commit goes on top of the merge without --force.
    edit(&root, "sites/clinic-01.toml", "10.20.1.11", "10.20.1.12");
    git(
        &root,
        &["commit", "-q", "-am", "clinic-01: another address"],
    );
    let merge = git(&root, &["rev-parse", "sites/clinic-01"]);
    ok(&root, &["commit", "--site", "clinic-01"]);
    assert_eq!(git(&root, &["rev-parse", "sites/clinic-01^"]), merge);
}

#[test]
fn a_fleet_commit_holds_no_file_per_branch_and_equals_a_serial_commit() {
    use dify_cfg::Compiled;
    use dify_cfg::Repo;
    use dify_cfg::{CommitPlan, prepare, publish};

    // 150 sites more than the example's: more branches than the descriptors
    // the command may open. A move that kept each ref's lock file open until
    // the end (as libgit2's transactions do) fails here with EMFILE.
    let (_tmp, root) = fleet_repo();
    support::add_clinics(&root, 20..170);
    git(&root, &["add", "-A"]);
    git(&root, &["commit", "-q", "-m", "150 more clinics"]);
    let serial_dir = tempfile::tempdir().unwrap();
    let serial = serial_dir.path().join("serial");
    git(
        serial_dir.path(),
        &["clone", "-q", root.to_str().unwrap(), "serial"],
    );

    let out = Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 64 && exec \"$0\" commit")
        .arg(env!("CARGO_BIN_EXE_dify-cfg"))
        .current_dir(&root)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "commit under `ulimit -n 64` failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parallel = site_branches(&root);
    assert!(parallel.len() >= 160, "{} branches", parallel.len());
    // Each move is in the branch's reflog, as git would log it.
    let reflog = git(
        &root,
        &["reflog", "show", "--format=%gs", "sites/clinic-100"],
    );
    assert_eq!(reflog.trim(), "dify-cfg commit");
    assert!(!root.join(".git/refs/heads/sites/clinic-100.lock").exists());

    // The same commit made one site at a time, through the library, gives
    // the same commit ids: rendering and writing in parallel changes no byte.
    let repo = Repo::discover(&serial).unwrap();
    let head = repo.head().unwrap();
    let compiled = Compiled::at_commit(&repo, head).unwrap();
    let chosen: Vec<_> = compiled.sites.iter().collect();
    let mut pairs = Vec::new();
    for v in &chosen {
        let trees = dify_cfg::render_all(&compiled.inputs, &[*v]).unwrap();
        pairs.extend(trees.into_iter().map(|t| (*v, t)));
    }
    let prepared = prepare(&repo, head, &pairs, &CommitPlan::default()).unwrap();
    publish(&repo, &prepared).unwrap();
    assert_eq!(site_branches(&serial), parallel);
}

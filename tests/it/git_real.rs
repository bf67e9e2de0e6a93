//! `commit`, `diff` and `audit` on git repositories as people have them:
//! linked worktrees, packed refs, shared repositories, live git processes
//! beside a killed dify-cfg, CRLF checkouts, SHA-256 and reftable
//! repositories, an empty email. Each test drives real git.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::support::{
    self, assert_ok, available, dify_cfg, fleet_repo_at, git, git_command, git_output, make_fleet,
    output_text, set_state, site_branches,
};

const BIN: &str = env!("CARGO_BIN_EXE_dify-cfg");

fn ok(root: &Path, args: &[&str]) -> String {
    let out = assert_ok(dify_cfg(args, root), &format!("dify-cfg {args:?}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A run that must fail with exit 2; its output.
fn fails(root: &Path, args: &[&str]) -> String {
    let out = dify_cfg(args, root);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "dify-cfg {args:?}: {text}");
    assert!(!text.contains("panicked"), "{text}");
    text
}

/// Every branch and where it points.
fn branches(root: &Path) -> BTreeMap<String, String> {
    support::refs(root, "refs/heads/")
}

fn fsck_clean(root: &Path) {
    let fsck = git_output(root, &["fsck", "--no-dangling", "--no-progress"]);
    assert!(
        fsck.status.success() && fsck.stdout.is_empty() && fsck.stderr.is_empty(),
        "git fsck: {}",
        output_text(&fsck)
    );
}

/// The example fleet's site branches, by their short names.
fn fleet_branch_count() -> usize {
    support::fleet_files()
        .keys()
        .filter(|p| p.starts_with("sites/"))
        .count()
}

#[test]
fn commit_in_a_linked_worktree_moves_the_branches_git_sees() {
    let tmp = tempfile::tempdir().unwrap();
    let root = fleet_repo_at(&tmp.path().join("main"), 0);
    let linked = tmp.path().join("linked");
    git(
        &root,
        &[
            "worktree",
            "add",
            "-q",
            linked.to_str().unwrap(),
            "-b",
            "other",
        ],
    );
    ok(&linked, &["commit"]);

    // The branches are the repository's, seen from both worktrees.
    let tips = site_branches(&root);
    assert_eq!(tips.len(), fleet_branch_count(), "{tips:?}");
    assert_eq!(site_branches(&linked), tips);
    // Nothing went into the worktree's own git directory.
    let private = root.join(".git/worktrees/linked");
    for stray in ["refs/heads/sites", "logs/refs/heads/sites", "dify-cfg.lock"] {
        assert!(!private.join(stray).exists(), "{stray} in {private:?}");
    }
    assert!(!git(&root, &["reflog", "show", "sites/clinic-01"]).is_empty());
    // `gc` keeps the commits: they are reachable from real branches.
    git(&root, &["gc", "-q", "--prune=now"]);
    fsck_clean(&root);
    assert_eq!(site_branches(&root), tips);
    // The main worktree's commands know them as dify-cfg's.
    ok(&root, &["audit"]);
    assert!(ok(&root, &["commit"]).contains("unchanged"));
}

#[test]
fn a_packed_branch_in_the_way_of_a_site_branch_stops_the_move() {
    // A branch below a site branch's name, and one above it; packed (as
    // after `git gc` or in a fresh clone), with and without a reflog.
    for (other, reflog) in [
        ("sites/clinic-01/old", true),
        ("sites/clinic-01/old", false),
        ("sites", false),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let root = fleet_repo_at(&tmp.path().join("repo"), 0);
        let log = format!("core.logAllRefUpdates={reflog}");
        git(&root, &["-c", &log, "branch", other]);
        git(&root, &["pack-refs", "--all"]);
        assert!(!root.join(".git/refs/heads").join(other).exists());
        let before = branches(&root);

        let text = fails(&root, &["commit"]);
        assert!(
            text.contains("cannot create branch `sites/clinic-01`")
                && text.contains(&format!("branch `{other}` exists")),
            "{other}: {text}"
        );
        assert_eq!(branches(&root), before, "{other}: a branch moved");
        assert!(!root.join(".git/refs/heads/sites/clinic-01").is_file());
        fsck_clean(&root);
    }
}

/// Run `program args` in `dir` under umask 022 (git's fixed identity).
fn under_umask(dir: &Path, program: &str, args: &[&str]) -> Output {
    let mut c = git_command(dir, "sh");
    c.args(["-c", "umask 022 && exec \"$0\" \"$@\"", program])
        .args(args);
    let out = c.output().unwrap();
    assert_ok(out, &format!("{program} {args:?}"))
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// The mode git gives a new folder of loose objects, and a loose object.
fn git_object_modes(root: &Path) -> (u32, u32) {
    let objects = root.join(".git/objects");
    for n in 0.. {
        let text = format!("probe {n}\n");
        let mut hash = git_command(root, "git");
        hash.args(["hash-object", "--stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut child = hash.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let id = String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap();
        let id = id.trim();
        if objects.join(&id[..2]).exists() {
            continue;
        }
        let file = root.join("probe.txt");
        fs::write(&file, &text).unwrap();
        under_umask(root, "git", &["hash-object", "-w", "probe.txt"]);
        fs::remove_file(&file).unwrap();
        return (
            mode(&objects.join(&id[..2])),
            mode(&objects.join(&id[..2]).join(&id[2..])),
        );
    }
    unreachable!()
}

#[test]
fn a_shared_repository_gets_the_modes_git_gives_its_files() {
    for shared in ["group", "all", "0640", "umask"] {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("repo");
        fs::create_dir_all(&root).unwrap();
        make_fleet(&root, 0);
        set_state(&root, 0);
        fs::write(root.join(".gitignore"), "out/\n").unwrap();
        let init = format!("--shared={shared}");
        under_umask(&root, "git", &["init", "-q", "-b", "main", &init]);
        under_umask(&root, "git", &["add", "-A"]);
        under_umask(&root, "git", &["commit", "-q", "-m", "The clinic fleet"]);
        let objects_before: Vec<_> = fs::read_dir(root.join(".git/objects"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        under_umask(&root, BIN, &["commit"]);
        // What git makes for a branch `probe/x`, under the same umask.
        under_umask(&root, "git", &["branch", "probe/x"]);
        let git_dir = root.join(".git");
        let pairs = [
            ("refs/heads/sites", "refs/heads/probe"),
            ("refs/heads/sites/clinic-01", "refs/heads/probe/x"),
            ("logs/refs/heads/sites", "logs/refs/heads/probe"),
            ("logs/refs/heads/sites/clinic-01", "logs/refs/heads/probe/x"),
            ("dify-cfg.lock", "refs/heads/probe/x"),
        ];
        for (ours, gits) in pairs {
            assert_eq!(
                format!("{:o}", mode(&git_dir.join(ours))),
                format!("{:o}", mode(&git_dir.join(gits))),
                "core.sharedRepository={shared}: {ours} against git's {gits}"
            );
        }
        let (dir_mode, object_mode) = git_object_modes(&root);
        let commit = git(&root, &["rev-parse", "sites/clinic-01"]);
        let object = git_dir
            .join("objects")
            .join(&commit[..2])
            .join(&commit[2..]);
        assert_eq!(
            format!("{:o}", mode(&object)),
            format!("{object_mode:o}"),
            "core.sharedRepository={shared}: a commit object"
        );
        for e in fs::read_dir(git_dir.join("objects")).unwrap() {
            let e = e.unwrap();
            let name = e.file_name();
            if name.len() == 2 && !objects_before.contains(&name) {
                assert_eq!(
                    format!("{:o}", mode(&e.path())),
                    format!("{dir_mode:o}"),
                    "core.sharedRepository={shared}: objects/{}",
                    name.to_string_lossy()
                );
            }
        }
    }
}

/// Write the journal a dify-cfg killed in the middle of a branch move
/// leaves (its writer: a process that has exited) in `git_dir`, naming
/// `locks` (full ref names and the lock files it created for them).
pub fn killed_move_journal(git_dir: &Path, refs: &[&str], locks: &[(&str, &Path)]) {
    let child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    let _ = { child }.wait();
    let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let mut text = format!("dify-cfg branch move 2\nwriter {pid} 1 {}\n", boot.trim());
    for name in refs {
        text.push_str(&format!("ref {name}\n"));
    }
    for (name, lock) in locks {
        let meta = fs::metadata(lock).unwrap();
        let content = fs::read_to_string(lock).unwrap();
        text.push_str(&format!(
            "lock {} {} {} {name}\n",
            meta.dev(),
            meta.ino(),
            content.trim_end()
        ));
    }
    fs::write(git_dir.join("dify-cfg-moving"), text).unwrap();
}

/// `git update-ref --stdin` holding the lock of `refname` (a transaction
/// prepared, not committed), until [`GitHolder::commit`].
struct GitHolder {
    child: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
}

impl GitHolder {
    fn lock(root: &Path, refname: &str, to: &str) -> GitHolder {
        let mut c = git_command(root, "git");
        c.args(["update-ref", "--stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let mut holder = GitHolder { child, out };
        holder.say(&format!("start\nupdate {refname} {to}\nprepare\n"));
        assert_eq!(holder.hear(), "start: ok");
        assert_eq!(holder.hear(), "prepare: ok");
        holder
    }

    fn say(&mut self, text: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    fn hear(&mut self) -> String {
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        line.trim_end().to_string()
    }

    /// Finish git's update: it succeeds only if its lock is still its own.
    fn commit(mut self) {
        self.say("commit\n");
        assert_eq!(self.hear(), "commit: ok");
        drop(self.child.stdin.take());
        assert!(self.child.wait().unwrap().success());
    }
}

/// A fleet repository under `tmp` whose site branches were committed, and
/// whose inputs changed since, in a commit on `main`.
fn committed_then_changed(tmp: &Path) -> std::path::PathBuf {
    let root = fleet_repo_at(&tmp.join("repo"), 0);
    ok(&root, &["commit"]);
    set_state(&root, 1);
    git(&root, &["commit", "-q", "-am", "state 1"]);
    root
}

#[test]
fn only_the_locks_a_dead_dify_cfg_made_are_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = committed_then_changed(tmp.path());
    let git_dir = root.join(".git");
    let name = "refs/heads/sites/clinic-01";
    let lock = git_dir.join(format!("{name}.lock"));
    let tip = git(&root, &["rev-parse", "sites/clinic-01"]);

    // A live git holds the branch's lock; the journal of a killed dify-cfg
    // names the branch: as an earlier version wrote it (names only), and
    // as this one does, but with a lock of its own that is gone.
    let holder = GitHolder::lock(&root, name, &tip);
    let before = branches(&root);
    let other = tmp.path().join("another-lock");
    fs::write(&other, format!("{tip}\n")).unwrap();
    for journal in ["old", "new"] {
        match journal {
            "old" => fs::write(git_dir.join("dify-cfg-moving"), format!("{name}\n")).unwrap(),
            _ => killed_move_journal(&git_dir, &[name], &[(name, &other)]),
        }
        let text = fails(&root, &["commit"]);
        assert!(
            text.contains(&lock.display().to_string()),
            "{journal}: {text}"
        );
        assert!(lock.exists(), "{journal}: git's lock was removed");
        assert_eq!(branches(&root), before, "{journal}: a branch moved");
    }
    holder.commit();

    // The lock (and reflog lock) a dead dify-cfg did create: removed, and
    // the commit goes through.
    fs::write(&lock, format!("{tip}\n")).unwrap();
    let log_lock = git_dir.join(format!("logs/{name}.lock"));
    fs::write(&log_lock, "").unwrap();
    killed_move_journal(&git_dir, &[name], &[(name, &lock)]);
    ok(&root, &["commit"]);
    assert!(!lock.exists() && !log_lock.exists());
    assert!(!git_dir.join("dify-cfg-moving").exists());
    assert_ne!(site_branches(&root)["sites/clinic-01"], tip);
    fsck_clean(&root);
}

/// `commit --pr` of every site, its files written into `out`.
fn propose_into(out: &Path) -> [&str; 5] {
    let out = out.to_str().unwrap();
    ["commit", "--pr", "--ignore-waves", "--out", out]
}

#[test]
fn a_pull_request_whose_files_cannot_be_written_moves_no_branch() {
    let tmp = tempfile::tempdir().unwrap();
    let root = committed_then_changed(tmp.path());
    let before = branches(&root);

    // The out directory cannot be made: nothing moves.
    let blocker = tmp.path().join("a-file");
    fs::write(&blocker, "").unwrap();
    let text = fails(&root, &propose_into(&blocker.join("out")));
    assert!(text.contains("a-file"), "{text}");
    assert_eq!(
        branches(&root),
        before,
        "branches moved, and no report said so"
    );

    // Where it can: every proposed site has its branch and its files, and
    // files already there stay.
    let out = tmp.path().join("out");
    fs::create_dir_all(out.join("_rollout")).unwrap();
    fs::write(out.join("_rollout/earlier.md"), "kept\n").unwrap();
    let report = ok(&root, &propose_into(&out));
    let rollouts = support::refs(&root, "refs/heads/rollout/");
    assert!(!rollouts.is_empty(), "{report}");
    for branch in rollouts.keys() {
        let site = branch.trim_start_matches("rollout/");
        assert!(out.join(format!("_rollout/{site}.md")).is_file(), "{site}");
        assert!(
            out.join(format!("_rollout/{site}.title")).is_file(),
            "{site}"
        );
    }
    assert_eq!(
        fs::read_to_string(out.join("_rollout/earlier.md")).unwrap(),
        "kept\n"
    );
}

#[test]
fn a_commit_from_uncommitted_inputs_is_redone_from_the_clean_source() {
    let tmp = tempfile::tempdir().unwrap();
    let root = fleet_repo_at(&tmp.path().join("repo"), 0);
    ok(&root, &["commit"]);
    set_state(&root, 1);
    ok(&root, &["commit", "--allow-dirty"]);
    let dirty = git(&root, &["log", "-1", "--format=%B", "sites/clinic-01"]);
    assert!(dirty.contains("Source-Dirty: true"), "{dirty}");

    // The same edits, committed: the branches are recommitted from the
    // commit that now holds them, and audit finds them reproducible.
    git(&root, &["commit", "-q", "-am", "state 1"]);
    let head = git(&root, &["rev-parse", "HEAD"]);
    let report = ok(&root, &["commit"]);
    assert!(
        report.contains("recommit from clean source commit"),
        "{report}"
    );
    let message = git(&root, &["log", "-1", "--format=%B", "sites/clinic-01"]);
    assert!(!message.contains("Source-Dirty"), "{message}");
    assert!(
        message.contains(&format!("Source-Commit: {head}")),
        "{message}"
    );
    ok(&root, &["audit"]);
    // Once.
    let tips = site_branches(&root);
    ok(&root, &["commit"]);
    assert_eq!(site_branches(&root), tips);
}

/// Every file of `branch`'s tree, by path.
fn branch_files(root: &Path, branch: &str) -> BTreeMap<String, Vec<u8>> {
    git(root, &["ls-tree", "-r", "--name-only", branch])
        .lines()
        .map(|p| {
            let blob = git_output(root, &["show", &format!("{branch}:{p}")]).stdout;
            (p.to_string(), blob)
        })
        .collect()
}

#[test]
fn a_crlf_checkout_compiles_as_its_commit_does() {
    let tmp = tempfile::tempdir().unwrap();
    let root = fleet_repo_at(&tmp.path().join("repo"), 0);
    git(&root, &["config", "core.autocrlf", "true"]);
    fs::remove_dir_all(root.join("profiles")).unwrap();
    fs::remove_dir_all(root.join("sites")).unwrap();
    git(&root, &["checkout", "--", "profiles", "sites"]);
    let site = fs::read_to_string(root.join("sites/clinic-01.toml")).unwrap();
    assert!(site.contains("\r\n"), "git checked out LF: {site:?}");
    assert_eq!(git(&root, &["status", "--porcelain"]), "");

    ok(&root, &["commit"]);
    let diff = dify_cfg(&["diff", "--exit-code"], &root);
    assert_eq!(diff.status.code(), Some(0), "{}", output_text(&diff));
    let out = tmp.path().join("out");
    ok(&root, &["build", "--out", out.to_str().unwrap()]);
    assert_eq!(
        support::snapshot(&out.join("clinic-01")),
        branch_files(&root, "sites/clinic-01")
    );

    // A mistake in a CRLF file is reported at its line and column.
    let bad = site.replace("[network]", "memroy = 1\r\n[network]");
    fs::write(root.join("sites/clinic-01.toml"), &bad).unwrap();
    let line = bad.lines().position(|l| l.starts_with("memroy")).unwrap() + 1;
    let text = fails(&root, &["check"]);
    assert!(
        text.contains(&format!("sites/clinic-01.toml:{line}:1")),
        "{text}"
    );
}

#[test]
fn sha256_and_reftable_repositories_are_refused_saying_what_to_do() {
    for (format, says, fix) in [
        ("--object-format=sha256", "SHA-256", "--object-format=sha1"),
        ("--ref-format=reftable", "reftable", "--ref-format=files"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("repo");
        fs::create_dir_all(&root).unwrap();
        let probe = git_output(tmp.path(), &["init", "-q", format, "probe"]);
        if !available(
            &format!("git init {format}"),
            probe.status.success(),
            &output_text(&probe),
        ) {
            continue;
        }
        make_fleet(&root, 0);
        git(&root, &["init", "-q", "-b", "main", format]);
        git(&root, &["add", "-A"]);
        git(&root, &["commit", "-q", "-m", "The clinic fleet"]);
        for cmd in [&["commit"][..], &["diff"], &["audit"]] {
            let text = fails(&root, cmd);
            assert!(
                text.contains(says)
                    && text.contains(fix)
                    && !text.contains("not inside a git repository"),
                "{format} {cmd:?}: {text}"
            );
        }
    }
}

#[test]
fn a_source_commit_with_an_empty_email_is_signed_as_git_signs_it() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    fs::create_dir_all(&root).unwrap();
    make_fleet(&root, 0);
    git(&root, &["init", "-q", "-b", "main"]);
    git(&root, &["add", "-A"]);
    let mut c = git_command(&root, "git");
    c.args(["commit", "-q", "-m", "The clinic fleet"])
        .env("GIT_AUTHOR_EMAIL", "")
        .env("GIT_COMMITTER_EMAIL", "");
    assert_ok(c.output().unwrap(), "git commit with an empty email");
    let source = git(&root, &["cat-file", "-p", "HEAD"]);
    assert!(source.contains("author Ana Operator <> "), "{source}");

    ok(&root, &["commit"]);
    let made = git(&root, &["cat-file", "-p", "sites/clinic-01"]);
    assert!(
        made.contains("\nauthor Ana Operator <> ") && made.contains("\ncommitter Ana Operator <> "),
        "{made}"
    );
    fsck_clean(&root);
    ok(&root, &["audit"]);
}

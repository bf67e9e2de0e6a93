//! Killing `dify-cfg build` and `dify-cfg commit` never leaves a
//! half-written result. The kills are deterministic: the binary's crash
//! hook (`DIFY_CFG_CRASH_AT=<point>:<nth>`, `compiler/base/crash.rs`) makes
//! it SIGKILL itself at a named point, and every point where what is on
//! disk changes is killed at, at its first, middle and last pass:
//!
//! - after each killed build, every `out/<site>/` is exactly the old or the
//!   new complete tree, and exactly the trees the point says (none before
//!   the swaps, the first n after the nth swap); the next build leaves the
//!   new trees and no temporary entries;
//! - after each killed commit, every `sites/*` branch points at a valid
//!   commit, its old tip or the commit a complete run makes (exactly n
//!   moved after the nth ref rename), `git fsck` finds nothing wrong, and
//!   the next `commit` succeeds.
//!
//! The earlier method, SIGKILLs from outside at delays spread over a
//! measured build, is kept as two soak tests (`#[ignore]`; run them with
//! `cargo test --test it crash::soak -- --ignored`).

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{
    Tree, assert_ok, bin, clinic_site, fleet_repo_at, git, git_output, make_fleet, out_state,
    set_state, site_branches,
};

/// Generated clinics beside the example fleet's eleven sites, so that a
/// build writes enough trees to be killed in the middle of.
const EXTRA_SITES: usize = 10;
const BUILD_KILLS: usize = 60;
const COMMIT_KILLS: usize = 24;

/// `dify-cfg --root <root> <args>`, run in `root`.
fn command(root: &Path, args: &[&str]) -> Command {
    let mut c = bin(root);
    c.arg("--root").arg(root).args(args);
    c
}

/// [`command`] with no input and its output dropped.
fn quiet(root: &Path, args: &[&str]) -> Command {
    let mut c = command(root, args);
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

fn spawn(root: &Path, args: &[&str]) -> std::process::Child {
    quiet(root, args).spawn().expect("run dify-cfg")
}

fn run_ok(root: &Path, args: &[&str]) -> Duration {
    let start = Instant::now();
    let o = command(root, args).output().expect("run dify-cfg");
    assert_ok(o, &format!("dify-cfg {args:?}"));
    start.elapsed()
}

/// The out trees a complete build gives in input states 0 and 1 (`set`
/// puts `root` in a state), each built into `work/ref-<state>`.
fn reference_trees(root: &Path, work: &Path, set: fn(&Path, usize)) -> Vec<BTreeMap<String, Tree>> {
    (0..2)
        .map(|state| {
            set(root, state);
            let out = work.join(format!("ref-{state}"));
            run_ok(root, &["build", "--out", out.to_str().unwrap()]);
            out_state(&out).0
        })
        .collect()
}

/// Start `args`, wait `delay`, SIGKILL it (if still running), reap it.
/// Whether it was still running when killed.
fn kill_after(root: &Path, args: &[&str], delay: Duration) -> bool {
    let mut child = spawn(root, args);
    std::thread::sleep(delay);
    let running = child.try_wait().unwrap().is_none();
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    running
}

/// Delays from 0 to 1.3 times `duration`, spread evenly with a little
/// deterministic jitter, in a shuffled order.
fn delays(n: usize, duration: Duration) -> Vec<Duration> {
    let span = duration.mul_f64(1.3);
    let mut out: Vec<Duration> = (0..n)
        .map(|i| {
            let jitter = ((i * 7919) % 13) as f64 / 13.0 / n as f64;
            span.mul_f64(i as f64 / n as f64 + jitter)
        })
        .collect();
    // A fixed shuffle, so that the inputs alternate independently of delay.
    let mut state = 0x9e37_79b9_u64;
    for i in (1..n).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.swap(i, (state as usize) % (i + 1));
    }
    out
}

fn strays(hidden: &[String]) -> Vec<&String> {
    hidden
        .iter()
        .filter(|n| n.contains(".dify-cfg-tmp-") || n.contains(".dify-cfg-old-"))
        .collect()
}

#[test]
#[ignore = "soak: SIGKILLs at timed delays; crash::a_build_killed_at_each_point is the deterministic test"]
fn soak_a_killed_build_leaves_each_site_old_or_new() {
    let _quiet = crate::support::timing_sensitive();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("fleet");
    make_fleet(&root, EXTRA_SITES);

    // Reference trees of both input states.
    let refs = reference_trees(&root, tmp.path(), set_state);
    let clinics_differ = refs[0]
        .iter()
        .filter(|(site, tree)| refs[1].get(*site) != Some(*tree))
        .count();
    assert!(
        clinics_differ >= 10 + EXTRA_SITES,
        "the two states should differ for every clinic, differ for {clinics_differ}"
    );
    let sites: Vec<String> = refs[0].keys().cloned().collect();

    // Two out directories: one on the temp dir's file system (where the
    // first fsync of a build may take most of its time) and one on a tmpfs
    // when there is one (no fsync cost: kills spread over the writes).
    let shm = tempfile::tempdir_in("/dev/shm").ok();
    let mut outs = vec![tmp.path().join("out")];
    if let Some(d) = &shm {
        outs.push(d.path().join("out"));
    }
    // Rounds of kills. Each measures how long a build that rewrites every
    // clinic takes in each out directory (the median of three), then kills
    // builds at delays spread over 1.3 times that, the out directories
    // interleaved, each seeing the two states alternate. When the machine's
    // load changes between the measurement and the kills, a round's kills
    // can miss the builds: another round measures again (three at most).
    let (mut mid_build, mut partial, mut left_temp) = (0, 0, 0);
    let (mut i, mut typical) = (0, Vec::new());
    for _round in 0..3 {
        typical.clear();
        let mut schedule = Vec::new();
        for (j, out) in outs.iter().enumerate() {
            let out_arg = out.to_str().unwrap();
            let mut times: Vec<Duration> = [0, 1, 0]
                .into_iter()
                .map(|state| {
                    set_state(&root, state);
                    run_ok(&root, &["build", "--out", out_arg])
                })
                .collect();
            times.sort();
            typical.push(times[1]);
            for (k, d) in delays(BUILD_KILLS / outs.len(), times[1])
                .into_iter()
                .enumerate()
            {
                schedule.push((k, j, d));
            }
        }
        schedule.sort();
        for (k, j, delay) in schedule {
            i += 1;
            let state = 1 - k % 2;
            set_state(&root, state);
            let out = &outs[j];
            let out_arg = out.to_str().unwrap();
            let before = out_state(out).0;
            if kill_after(&root, &["build", "--out", out_arg], delay) {
                mid_build += 1;
            }
            let (now, hidden) = out_state(out);
            let at = format!("kill {i} ({}) after {delay:?}", out.display());
            assert_eq!(
                now.keys().collect::<Vec<_>>(),
                sites.iter().collect::<Vec<_>>(),
                "{at}: a site directory is missing or extra"
            );
            for (site, tree) in &now {
                if tree != &refs[state][site] && tree != &refs[1 - state][site] {
                    let files: Vec<&String> = tree.keys().collect();
                    panic!("{at}: {site} is neither the old nor the new tree; it holds {files:?}");
                }
            }
            // Sites the build had to write, and those it wrote before the kill.
            let to_write: Vec<&String> = sites
                .iter()
                .filter(|s| before[*s] != refs[state][*s])
                .collect();
            let written = to_write
                .iter()
                .filter(|s| now[**s] == refs[state][**s])
                .count();
            if written > 0 && written < to_write.len() {
                partial += 1;
            }
            if !strays(&hidden).is_empty() {
                left_temp += 1;
            }
            // Now and then, and at the end: a complete build cleans up.
            if k % 10 == 9 || k + 1 == BUILD_KILLS / outs.len() {
                run_ok(&root, &["build", "--out", out_arg]);
                let (now, hidden) = out_state(out);
                assert!(
                    strays(&hidden).is_empty(),
                    "after a complete build: {hidden:?}"
                );
                assert_eq!(now, refs[state], "a complete build left other trees");
            }
        }
        if mid_build >= BUILD_KILLS / 3 {
            break;
        }
    }
    eprintln!(
        "{i} kills within 1.3 × {typical:?} (per out directory, last round): {mid_build} during the build, {partial} after writing some sites but not all, {left_temp} with a temporary tree left"
    );
    // The kills did land inside builds, and some while trees were written.
    assert!(
        mid_build >= BUILD_KILLS / 3,
        "only {mid_build} of {i} kills hit a running build"
    );
    assert!(
        partial + left_temp >= 3,
        "only {} kills landed while trees were written",
        partial + left_temp
    );
}

/// The site branches after a killed commit, checked: the same branches as
/// `before`, each at a commit, and `git fsck` finds nothing wrong.
fn valid_branches(
    root: &Path,
    before: &BTreeMap<String, String>,
    at: &str,
) -> BTreeMap<String, String> {
    let after_kill = site_branches(root);
    assert_eq!(
        after_kill.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "{at}: branches appeared or vanished"
    );
    for (branch, tip) in &after_kill {
        let o = git_output(root, &["cat-file", "-e", &format!("{tip}^{{commit}}")]);
        assert!(
            o.status.success(),
            "{at}: {branch} points at {tip}, which is not a commit"
        );
    }
    let fsck = git_output(root, &["fsck", "--no-dangling", "--no-progress"]);
    assert!(
        fsck.status.success() && fsck.stdout.is_empty(),
        "{at}: git fsck: {}{}",
        String::from_utf8_lossy(&fsck.stdout),
        String::from_utf8_lossy(&fsck.stderr)
    );
    after_kill
}

/// A git repository holding the fleet, one commit on `main`.
fn fleet_repo(tmp: &Path) -> PathBuf {
    fleet_repo_at(&tmp.join("repo"), EXTRA_SITES)
}

#[test]
#[ignore = "soak: SIGKILLs at timed delays; crash::a_commit_killed_at_each_point is the deterministic test"]
fn soak_a_killed_commit_leaves_each_branch_at_a_valid_commit() {
    let _quiet = crate::support::timing_sensitive();
    let tmp = tempfile::tempdir().unwrap();
    let root = fleet_repo(tmp.path());
    run_ok(&root, &["commit"]);
    // How long a commit that moves every clinic's branch takes (the median
    // of three).
    let mut state = 0;
    let mut times: Vec<Duration> = (0..3)
        .map(|_| {
            state = 1 - state;
            set_state(&root, state);
            git(&root, &["commit", "-q", "-am", &format!("state {state}")]);
            run_ok(&root, &["commit"])
        })
        .collect();
    times.sort();
    let typical = times[1];

    let (mut moved_by_killed, mut interrupted, mut split) = (0, 0, 0);
    for (i, delay) in delays(COMMIT_KILLS, typical).into_iter().enumerate() {
        state = 1 - state;
        set_state(&root, state);
        git(
            &root,
            &["commit", "-q", "-am", &format!("state {state}, round {i}")],
        );
        let before = site_branches(&root);
        if kill_after(&root, &["commit"], delay) {
            interrupted += 1;
        }
        let after_kill = valid_branches(&root, &before, &format!("kill {i} after {delay:?}"));
        // The next commit succeeds; every branch is then at the commit a
        // complete run makes, and the killed run had left each branch at
        // its old tip or at exactly that commit.
        run_ok(&root, &["commit"]);
        let after = site_branches(&root);
        let mut moved = 0;
        for (branch, tip) in &after_kill {
            let (old, new) = (&before[branch], &after[branch]);
            assert!(
                tip == old || tip == new,
                "kill {i} after {delay:?}: {branch} is at {tip}, neither the old tip {old} nor the new {new}"
            );
            if branch != "sites/hq" {
                assert_ne!(old, new, "{branch} did not move for the new state");
                if git(&root, &["rev-parse", &format!("{new}^")]) != *old {
                    panic!("{branch}: the new commit is not on top of the old tip");
                }
            }
            moved += usize::from(tip != old);
        }
        // The branches move together (a kill in the middle of writing the
        // refs may leave some moved and some not; each is valid).
        if moved != 0 && moved != after_kill.len() - 1 {
            split += 1;
        }
        moved_by_killed += usize::from(moved > 0);
    }
    eprintln!(
        "{COMMIT_KILLS} kills within 1.3 × {typical:?}: {interrupted} during the commit, {moved_by_killed} after it had moved branches, {split} while it moved them"
    );
    assert!(
        interrupted >= COMMIT_KILLS / 3,
        "only {interrupted} kills hit a running commit"
    );
    assert!(
        moved_by_killed < COMMIT_KILLS,
        "no kill stopped a commit before it moved the branches"
    );
}

#[test]
fn the_ref_locks_of_a_killed_commit_are_cleared_and_foreign_ones_respected() {
    let tmp = tempfile::tempdir().unwrap();
    let root = fleet_repo(tmp.path());
    run_ok(&root, &["commit"]);
    let git_dir = root.join(".git");
    let lock = git_dir.join("refs/heads/sites/clinic-01.lock");

    // A lock file with no dify-cfg journal: another git process may be
    // writing the branch. The commit refuses and says what to do.
    set_state(&root, 1);
    git(&root, &["commit", "-q", "-am", "state 1"]);
    fs::write(&lock, "0000000000000000000000000000000000000000\n").unwrap();
    let before = site_branches(&root);
    let o = command(&root, &["commit"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("sites/clinic-01.lock"), "{err}");
    assert_eq!(
        site_branches(&root),
        before,
        "a refused commit moved branches"
    );

    // The same lock, created by a killed dify-cfg (which held the move
    // lock until it died) as its journal records, and the lock of the
    // branch's reflog it was writing: stale, cleared, the commit succeeds.
    let (one, two) = ("refs/heads/sites/clinic-01", "refs/heads/sites/clinic-02");
    crate::git_real::killed_move_journal(&git_dir, &[one, two], &[(one, &lock)]);
    let log_lock = git_dir.join("logs/refs/heads/sites/clinic-01.lock");
    fs::write(&log_lock, "").unwrap();
    run_ok(&root, &["commit"]);
    assert!(!lock.exists());
    assert!(!log_lock.exists());
    assert!(!git_dir.join("dify-cfg-moving").exists());
    let after = site_branches(&root);
    assert_ne!(after["sites/clinic-01"], before["sites/clinic-01"]);
}

/// Run `dify-cfg <args>` with the crash hook armed at the `nth` pass of
/// `point`; whether the hook killed it (SIGKILL).
fn killed_at(root: &Path, args: &[&str], point: &str, nth: usize) -> bool {
    let status = quiet(root, args)
        .env("DIFY_CFG_CRASH_AT", format!("{point}:{nth}"))
        .status()
        .expect("run dify-cfg");
    status.signal() == Some(9)
}

/// The first, middle and last of `count` passes.
fn nths(count: usize) -> Vec<usize> {
    let mut n = vec![1, count.div_ceil(2), count];
    n.retain(|&n| n >= 1 && count >= 1);
    n.dedup();
    n
}

/// The kill tests' input states: `set_state`'s (every clinic renders
/// differently), and in state 1 the last generated clinic is gone (its
/// tree is removed) and the first runs another release (the image plan
/// changes).
fn set_kill_state(root: &Path, state: usize) {
    set_state(root, state);
    let last = 10 + EXTRA_SITES;
    let gone = root.join(format!("sites/clinic-{last:03}.toml"));
    let other = root.join("sites/clinic-011.toml");
    if state == 0 {
        fs::write(&gone, clinic_site(last, "")).unwrap();
        fs::write(&other, clinic_site(11, "")).unwrap();
    } else {
        fs::remove_file(&gone).unwrap();
        let release = "\n[dify]\nversion = \"1.16.1\"\n";
        fs::write(&other, clinic_site(11, release)).unwrap();
    }
}

/// How often a build from the out directory `from` to `to` passes each
/// build crash point: the trees that differ are staged (each file) and
/// swapped in, the old ones removed; trees of sites gone are retired.
fn build_passes(
    from: &BTreeMap<String, Tree>,
    to: &BTreeMap<String, Tree>,
) -> Vec<(&'static str, usize)> {
    let changed: Vec<&String> = to
        .iter()
        .filter(|(name, tree)| from.get(*name) != Some(*tree))
        .map(|(name, _)| name)
        .collect();
    let files = changed.iter().map(|name| to[*name].len()).sum();
    let replaced = changed
        .iter()
        .filter(|name| from.contains_key(**name))
        .count();
    let retired = from.keys().filter(|name| !to.contains_key(*name)).count();
    vec![
        ("out-locked", 1),
        ("out-file", files),
        ("out-staged", changed.len()),
        ("out-synced", 1),
        ("out-swapped", changed.len()),
        ("out-retired", retired),
        ("out-removed", replaced + retired),
    ]
}

/// After a kill at the `nth` pass of `point`: how many of the trees to
/// change are new, and how many of the retired ones are gone.
fn expected_after(point: &str, nth: usize, changed: usize, retired: usize) -> (usize, usize) {
    match point {
        "out-swapped" => (nth, 0),
        "out-retired" => (changed, nth),
        "out-removed" => (changed, retired),
        _ => (0, 0),
    }
}

#[test]
fn a_build_killed_at_each_point_leaves_each_site_old_or_new() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("fleet");
    make_fleet(&root, EXTRA_SITES);
    let refs = reference_trees(&root, tmp.path(), set_kill_state);
    let out = tmp.path().join("out");
    let out_arg = out.to_str().unwrap();
    let mut state = 0;
    set_kill_state(&root, state);
    run_ok(&root, &["build", "--out", out_arg]);
    let (mut kills, mut mixed) = (0, 0);
    // Each point in both directions: 0 to 1 (a site retired, the image
    // plan changed) and back. Each case starts from the complete tree of
    // `state` and builds the other state.
    let mut queues: Vec<VecDeque<(&str, usize)>> = (0..2)
        .map(|from| {
            build_passes(&refs[from], &refs[1 - from])
                .into_iter()
                .flat_map(|(point, count)| nths(count).into_iter().map(move |n| (point, n)))
                .collect()
        })
        .collect();
    while queues.iter().any(|q| !q.is_empty()) {
        let (from, to) = (state, 1 - state);
        set_kill_state(&root, to);
        state = to;
        let Some((point, nth)) = queues[from].pop_front() else {
            run_ok(&root, &["build", "--out", out_arg]);
            continue;
        };
        let at = format!("{point}:{nth} ({from} to {to})");
        assert!(
            killed_at(&root, &["build", "--out", out_arg], point, nth),
            "{at}: the build was not killed there"
        );
        kills += 1;
        let (now, _) = out_state(&out);
        let (old, new) = (&refs[from], &refs[to]);
        for (site, tree) in &now {
            assert!(
                old.get(site) == Some(tree) || new.get(site) == Some(tree),
                "{at}: {site} is neither the old nor the new tree"
            );
        }
        let changed: Vec<&String> = new
            .keys()
            .filter(|n| old.get(*n) != Some(&new[*n]))
            .collect();
        let retired: Vec<&String> = old.keys().filter(|n| !new.contains_key(*n)).collect();
        let now_new = changed
            .iter()
            .filter(|n| now.get(**n) == Some(&new[**n]))
            .count();
        let gone = retired.iter().filter(|n| !now.contains_key(**n)).count();
        assert_eq!(
            (now_new, gone),
            expected_after(point, nth, changed.len(), retired.len()),
            "{at}: (new trees, retired trees gone)"
        );
        for site in old.keys().filter(|n| new.contains_key(*n)) {
            assert!(now.contains_key(site), "{at}: {site} is missing");
        }
        mixed += usize::from(now_new > 0 && now_new < changed.len());
        // The next build completes the job and leaves nothing behind.
        run_ok(&root, &["build", "--out", out_arg]);
        let (now, hidden) = out_state(&out);
        assert_eq!(&now, new, "{at}: the next build did not give the new trees");
        assert!(
            strays(&hidden).is_empty() && hidden.iter().all(|h| h == ".dify-cfg.lock"),
            "{at}: the next build left {hidden:?}"
        );
    }
    eprintln!(
        "{kills} builds killed at their crash points, {mixed} with some sites swapped and some not"
    );
    assert!(mixed >= 2, "no kill landed between two swaps");
}

/// Switch the repository's inputs to the other state and commit them on
/// `main`; the new state.
fn flip(root: &Path, state: usize, what: &str) -> usize {
    let state = 1 - state;
    set_state(root, state);
    git(
        root,
        &["commit", "-q", "-am", &format!("state {state}, {what}")],
    );
    state
}

#[test]
fn a_commit_killed_at_each_point_leaves_each_branch_at_a_valid_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let root = fleet_repo(tmp.path());
    run_ok(&root, &["commit"]);
    // How many branches a commit of the other state moves.
    let before = site_branches(&root);
    let mut state = flip(&root, 0, "calibration");
    run_ok(&root, &["commit"]);
    let after = site_branches(&root);
    let moves = before.iter().filter(|(b, tip)| after[*b] != **tip).count();
    assert!(moves >= 10 + EXTRA_SITES, "only {moves} branches moved");
    let cases: Vec<(&str, usize)> = [
        ("refs-objects", 1),
        ("refs-locked", 1),
        ("refs-journal", 1),
        ("refs-ref-locked", moves),
        ("refs-reflog", moves),
        ("refs-moved", moves),
        ("refs-done", 1),
    ]
    .into_iter()
    .flat_map(|(point, count)| nths(count).into_iter().map(move |n| (point, n)))
    .collect();
    let (mut kills, mut split) = (0, 0);
    for (point, nth) in cases {
        kills += 1;
        state = flip(&root, state, &format!("{point}:{nth}"));
        let at = format!("{point}:{nth}");
        let before = site_branches(&root);
        assert!(
            killed_at(&root, &["commit"], point, nth),
            "{at}: the commit was not killed there"
        );
        let after_kill = valid_branches(&root, &before, &at);
        let moved = before
            .iter()
            .filter(|(b, tip)| after_kill[*b] != **tip)
            .count();
        let expected = match point {
            "refs-moved" => nth,
            "refs-done" => moves,
            _ => 0,
        };
        assert_eq!(moved, expected, "{at}: branches moved by the killed commit");
        split += usize::from(moved > 0 && moved < moves);
        // The next commit succeeds; each branch the killed one moved is at
        // exactly the commit a complete run makes, on top of its old tip.
        run_ok(&root, &["commit"]);
        let after = site_branches(&root);
        for (branch, tip) in &after_kill {
            let (old, new) = (&before[branch], &after[branch]);
            assert!(
                tip == old || tip == new,
                "{at}: {branch} is at {tip}, neither the old tip {old} nor the new {new}"
            );
            if old != new {
                assert_eq!(
                    &git(&root, &["rev-parse", &format!("{new}^")]),
                    old,
                    "{at}: {branch}"
                );
            }
        }
        assert_eq!(
            before.iter().filter(|(b, tip)| after[*b] != **tip).count(),
            moves,
            "{at}: the next commit did not move every branch"
        );
    }
    eprintln!(
        "{kills} commits killed at their crash points, {split} with some branches moved and some not"
    );
    assert!(split >= 1, "no kill landed between two ref renames");
}

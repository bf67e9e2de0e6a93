//! The out directory holds only what dify-cfg wrote, and a build replaces
//! nothing else: an out directory in or around the inputs is refused; a
//! file or folder of the user's named like a site stops the build before
//! anything moves; a swap that fails half-way puts back what it swapped;
//! the trees of sites no longer in the sources are removed (and only
//! those); the image plan covers the whole fleet whatever was selected.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{
    Tree, all_entries, available, bin, copy_fleet, on_path, out_state, output_text,
    set_clinic_description, snapshot,
};

fn fleet() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    copy_fleet(tmp.path());
    tmp
}

/// `dify-cfg --root <root> <args>`, run in `root`.
fn run(root: &Path, args: &[&str]) -> Output {
    bin(root)
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("run dify-cfg")
}

fn ok(root: &Path, args: &[&str]) -> Output {
    let o = run(root, args);
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", output_text(&o));
    o
}

/// A build that must be refused (or fail) and change nothing: exit 2, a
/// message that says each of `says`, `root/out` as it was and no stray
/// entry in it.
fn refused(root: &Path, says: &[&str]) {
    let out = root.join("out");
    let before = all_entries(&out);
    let o = run(root, &["build"]);
    let text = output_text(&o);
    assert_eq!(o.status.code(), Some(2), "{text}");
    for s in says {
        assert!(text.contains(s), "no `{s}` in: {text}");
    }
    assert_eq!(all_entries(&out), before, "the build changed out/");
    assert_eq!(strays(&out), Vec::<String>::new());
}

/// The out directory's hidden entries but its lock file.
fn strays(out: &Path) -> Vec<String> {
    let (_, hidden) = out_state(out);
    hidden
        .into_iter()
        .filter(|n| n != ".dify-cfg.lock")
        .collect()
}

#[test]
fn an_out_directory_in_or_around_the_inputs_is_refused() {
    let tmp = fleet();
    let root = tmp.path();
    // A profile folder named like a site.
    fs::create_dir_all(root.join("profiles/clinic-02")).unwrap();
    fs::write(
        root.join("profiles/clinic-02/regional.toml"),
        "extends = \"edge-4gb\"\ndescription = \"Regional clinics\"\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(root.join("sites"), root.join("sites-link")).unwrap();
    let inputs = all_entries(root);
    for out in [
        "profiles",
        "sites",
        "templates",
        "sites-link/new",
        "profiles/clinic-02",
    ] {
        let o = run(root, &["build", "--out", out]);
        let text = output_text(&o);
        assert_eq!(o.status.code(), Some(2), "--out {out}: {text}");
        assert!(
            text.contains("overlaps the input directory"),
            "--out {out}: {text}"
        );
        assert!(!text.contains("panicked"), "{text}");
        assert_eq!(all_entries(root), inputs, "--out {out} changed the inputs");
    }
    // The default out directory is fine, and the profile is still there.
    ok(root, &["build"]);
    assert!(root.join("profiles/clinic-02/regional.toml").is_file());
}

/// A built fleet in `root/out`, then every clinic's inputs changed, so
/// that the next build would swap every clinic.
fn built_then_changed(root: &Path) -> Tree {
    ok(root, &["build"]);
    let before = all_entries(&root.join("out"));
    set_clinic_description(root, "Branch clinic, changed");
    before
}

#[test]
fn a_file_of_the_users_named_like_a_site_stops_the_build_before_anything_moves() {
    let tmp = fleet();
    let root = tmp.path();
    let out = root.join("out");
    built_then_changed(root);
    fs::remove_dir_all(out.join("clinic-05")).unwrap();
    fs::write(out.join("clinic-05"), "my notes\n").unwrap();
    // Twice: a refused build leaves nothing that makes the next one fail
    // otherwise.
    for _ in 0..2 {
        refused(root, &["clinic-05", "is a file", "Nothing was changed"]);
    }
    // Moved away, the build goes through.
    fs::rename(out.join("clinic-05"), root.join("notes")).unwrap();
    ok(root, &["build"]);
    assert_eq!(fs::read(root.join("notes")).unwrap(), b"my notes\n");
}

#[test]
fn a_folder_of_the_users_named_like_a_site_is_never_replaced() {
    let tmp = fleet();
    let root = tmp.path();
    let out = root.join("out");
    built_then_changed(root);
    // A folder without a manifest, and a dify-cfg tree with a file added.
    fs::remove_dir_all(out.join("clinic-05")).unwrap();
    fs::create_dir_all(out.join("clinic-05")).unwrap();
    fs::write(out.join("clinic-05/notes.txt"), "mine\n").unwrap();
    fs::write(out.join("clinic-07/notes.txt"), "mine too\n").unwrap();
    refused(root, &["clinic-05", "has no manifest.json"]);
    fs::remove_dir_all(out.join("clinic-05")).unwrap();
    refused(
        root,
        &["clinic-07", "`notes.txt`, which dify-cfg did not write"],
    );
    assert!(out.join("clinic-07/notes.txt").is_file());
}

/// Undoes a `chattr +i` or a mount when dropped.
struct Undo(Vec<&'static str>, PathBuf);

impl Drop for Undo {
    fn drop(&mut self) {
        let _ = Command::new(self.0[0])
            .args(&self.0[1..])
            .arg(&self.1)
            .status();
    }
}

/// Whether `cmd path` succeeds (it needs root, and a file system that
/// supports it).
fn try_cmd(cmd: &[&str], path: &Path) -> bool {
    Command::new(cmd[0])
        .args(&cmd[1..])
        .arg(path)
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn a_swap_that_fails_half_way_puts_back_what_it_swapped() {
    let tmp = fleet();
    let root = tmp.path();
    let out = root.join("out");
    let before = built_then_changed(root);
    // clinic-05's directory cannot be renamed (immutable): the build swaps
    // clinic-01 to clinic-04 in, then fails on it.
    let site = out.join("clinic-05");
    if !available(
        "chattr +i",
        on_path("chattr") && try_cmd(&["chattr", "+i"], &site),
        "this test needs root and a file system with the immutable flag",
    ) {
        return;
    }
    let undo = Undo(vec!["chattr", "-i"], site.clone());
    refused(root, &["clinic-05", "were put back"]);
    assert_eq!(all_entries(&out), before);
    drop(undo);
    ok(root, &["build"]);
    assert_ne!(all_entries(&out), before);
    assert_eq!(strays(&out), Vec::<String>::new());
}

#[test]
fn a_mount_point_named_like_a_site_stops_the_build_before_anything_moves() {
    let tmp = fleet();
    let root = tmp.path();
    let out = root.join("out");
    built_then_changed(root);
    // A file system mounted on clinic-05, holding a copy of its tree.
    let site = out.join("clinic-05");
    let copy = all_entries(&site);
    let mounted = on_path("mount") && try_cmd(&["mount", "-t", "tmpfs", "tmpfs"], &site);
    if !available(
        "mount -t tmpfs",
        mounted,
        "this test needs root to mount a tmpfs",
    ) {
        return;
    }
    let _undo = Undo(vec!["umount"], site.clone());
    for (rel, bytes) in &copy {
        let path = site.join(rel);
        if rel.ends_with('/') {
            fs::create_dir_all(&path).unwrap();
        } else {
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, bytes).unwrap();
        }
    }
    refused(root, &["clinic-05", "is a mount point"]);
}

#[test]
fn the_trees_of_sites_no_longer_in_the_sources_are_removed_and_nothing_else() {
    let tmp = fleet();
    let root = tmp.path();
    let out = root.join("out");
    ok(root, &["build"]);
    fs::remove_file(root.join("sites/clinic-10.toml")).unwrap();
    // Not dify-cfg's: a folder of the user's, and a tree whose manifest
    // names another site.
    fs::create_dir_all(out.join("clinic-77")).unwrap();
    fs::write(out.join("clinic-77/notes.txt"), "mine\n").unwrap();
    copy_tree(&out.join("clinic-09"), &out.join("clinic-99"));
    let o = run(root, &["build", "--check"]);
    let text = output_text(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(text.contains("extra: clinic-10/"), "{text}");
    assert!(
        !text.contains("clinic-77") && !text.contains("clinic-99"),
        "{text}"
    );
    // A partial build removes it too: the out directory mirrors the fleet.
    let o = ok(root, &["build", "--site", "hq"]);
    assert!(
        output_text(&o).contains("clinic-10: removed"),
        "{}",
        output_text(&o)
    );
    assert!(!out.join("clinic-10").exists());
    assert!(out.join("clinic-77/notes.txt").is_file());
    assert!(out.join("clinic-99/manifest.json").is_file());
    assert_eq!(strays(&out), Vec::<String>::new());
    fs::remove_dir_all(out.join("clinic-77")).unwrap();
    fs::remove_dir_all(out.join("clinic-99")).unwrap();
    ok(root, &["build", "--check"]);
}

fn copy_tree(from: &Path, to: &Path) {
    for (rel, bytes) in snapshot(from) {
        let path = to.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }
}

#[test]
fn a_partial_build_plans_the_images_of_the_whole_fleet() {
    let tmp = fleet();
    let root = tmp.path();
    let full = tmp.path().join("full");
    ok(root, &["build", "--out", full.to_str().unwrap()]);
    let images = |out: &Path| snapshot(&out.join("_images"));
    for selection in [
        &["--site", "hq"][..],
        &["--profile", "edge"],
        &["--site", "clinic-03"],
    ] {
        let out = tmp.path().join(format!("partial-{}", selection[1]));
        let out_arg = out.to_str().unwrap();
        let mut args = vec!["build", "--out", out_arg];
        args.extend_from_slice(selection);
        ok(root, &args);
        assert_eq!(
            images(&out),
            images(&full),
            "{selection:?}: the image plan differs from a full build's"
        );
        let mut check = args.clone();
        check.push("--check");
        ok(root, &check);
    }
    // On top of a full build, a partial one leaves the plan as it is.
    let o = ok(
        root,
        &["build", "--out", full.to_str().unwrap(), "--site", "hq"],
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("_images: unchanged"),
        "{}",
        output_text(&o)
    );
}

//! What a build may touch. The out directory must be neither inside the
//! inputs nor hold them ([`check_placement`]); in it, a build replaces or
//! removes only what dify-cfg wrote ([`classify`]): a site tree (a
//! directory whose `manifest.json` is dify-cfg's, for that site, holding
//! only the files the manifest lists) or the image plan (`_images`: only
//! the files its bake file names). Anything else is the user's, and a build
//! that would have to replace it is refused before anything moves.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use super::ROLLOUT_DIR;
use super::bake::IMAGES_DIR;
use super::manifest::{claimed, plain_relative};
use super::{EmitError, io};
use crate::input::load::{INPUT_DIRS, relative};

/// What is at `out/<name>`.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    Absent,
    /// A tree dify-cfg wrote: a build may replace or remove it. The files
    /// it holds, by relative path.
    Ours(Vec<String>),
    /// Anything else, and why it is not dify-cfg's.
    Theirs(String),
}

/// `path` made absolute with every symbolic link resolved, also where its
/// last components do not exist yet (those are taken as written, `..`
/// lexically).
fn resolved(path: &Path) -> std::io::Result<PathBuf> {
    let absolute = std::path::absolute(path)?;
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        match existing.canonicalize() {
            Ok(mut canon) => {
                for c in rest.iter().rev() {
                    match c {
                        Component::ParentDir => {
                            canon.pop();
                        }
                        Component::Normal(n) => canon.push(n),
                        _ => {}
                    }
                }
                return Ok(canon);
            }
            Err(e) => match (existing.parent(), existing.components().next_back()) {
                (Some(parent), Some(last)) => {
                    rest.push(last);
                    existing = parent;
                }
                _ => return Err(e),
            },
        }
    }
}

/// Refuse an out directory that holds the config root or one of its input
/// directories, or lies inside one of them: a build there would replace
/// inputs, or write trees the next load reads as inputs. Checked on the
/// paths with every link resolved, before the out directory is created.
pub fn check_placement(out: &Path, root: &Path) -> Result<(), EmitError> {
    let canon_out = resolved(out).map_err(io(out))?;
    let canon_root = root.canonicalize().map_err(io(root))?;
    if canon_root.starts_with(&canon_out) {
        return Err(EmitError::OutContainsRoot {
            out: out.to_path_buf(),
            root: root.to_path_buf(),
        });
    }
    for dir in INPUT_DIRS {
        // Also where the directory does not exist (yet): a build into
        // `templates/` would make the next load read trees as templates.
        let inputs = resolved(&root.join(dir)).map_err(io(root))?;
        if canon_out.starts_with(&inputs) || inputs.starts_with(&canon_out) {
            return Err(EmitError::OutOverlapsInputs {
                out: out.to_path_buf(),
                inputs: root.join(dir),
            });
        }
    }
    Ok(())
}

/// What is at `path`, the entry `name` of an out directory on device
/// `out_dev`. Ours only if it is a directory on the out directory's own
/// file system (no mount point anywhere in it) that holds nothing but
/// regular files and directories, each file one its listing names; then
/// with those files, so that a build compares the tree without walking it
/// again.
pub fn classify(path: &Path, name: &str, out_dev: u64) -> Found {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Found::Absent,
        Err(e) => return Found::Theirs(format!("cannot be read ({e})")),
    };
    let file_type = meta.file_type();
    if file_type.is_symlink() {
        return Found::Theirs("is a symbolic link".into());
    }
    if !file_type.is_dir() {
        return Found::Theirs("is a file, not a tree dify-cfg wrote".into());
    }
    if meta.dev() != out_dev {
        return Found::Theirs("is a mount point".into());
    }
    let listed = match listing(path, name) {
        Ok(l) => l,
        Err(why) => return Found::Theirs(why),
    };
    let mut files = Vec::new();
    for e in walkdir::WalkDir::new(path).min_depth(1).sort_by_file_name() {
        let e = match e {
            Ok(e) => e,
            Err(e) => return Found::Theirs(format!("cannot be read ({e})")),
        };
        let rel = relative(path, e.path());
        match e.metadata() {
            Ok(m) if m.dev() != out_dev => {
                return Found::Theirs(format!("holds `{rel}`, a mount point"));
            }
            Ok(_) => {}
            Err(e) => return Found::Theirs(format!("cannot be read ({e})")),
        }
        let t = e.file_type();
        if t.is_file() && !listed.contains(&rel) {
            return Found::Theirs(format!("holds `{rel}`, which dify-cfg did not write"));
        }
        if !t.is_file() && !t.is_dir() {
            return Found::Theirs(format!("holds `{rel}`, which is not a regular file"));
        }
        if t.is_file() {
            files.push(rel);
        }
    }
    Found::Ours(files)
}

/// The files dify-cfg wrote in the tree `name`, as its manifest (or, for
/// the image plan, its bake file) lists them; why it is not dify-cfg's
/// tree otherwise.
fn listing(dir: &Path, name: &str) -> Result<BTreeSet<String>, String> {
    if name == IMAGES_DIR {
        return bake_listing(dir);
    }
    if name == ROLLOUT_DIR {
        return rollout_listing(dir);
    }
    let (site, listed) = claimed(dir)?;
    if site != name {
        return Err(format!(
            "holds the manifest of site `{}`",
            site.escape_debug()
        ));
    }
    Ok(listed)
}

/// `_rollout`: pull-request titles and bodies, each a plain file at the
/// top; `commit --pr` carries every one of them into the new tree, so a
/// folder, a link or a hidden file there is someone else's.
fn rollout_listing(dir: &Path) -> Result<BTreeSet<String>, String> {
    let mut listed = BTreeSet::new();
    for e in fs::read_dir(dir).map_err(|e| format!("cannot be read ({e})"))? {
        let e = e.map_err(|e| format!("cannot be read ({e})"))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') && e.file_type().is_ok_and(|t| t.is_file()) {
            listed.insert(name);
        }
    }
    Ok(listed)
}

/// `_images`: `docker-bake.json` (with dify-cfg's `DIFY_CFG_IMAGES`
/// variable) and each of its targets' Dockerfile and ignore file.
fn bake_listing(dir: &Path) -> Result<BTreeSet<String>, String> {
    let not_ours = || "has no docker-bake.json dify-cfg wrote".to_string();
    let path = dir.join("docker-bake.json");
    if !fs::symlink_metadata(&path).is_ok_and(|m| m.is_file() && m.len() <= 1 << 24) {
        return Err(not_ours());
    }
    let bake: serde_json::Value = fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(not_ours)?;
    let targets = bake["target"].as_object().ok_or_else(not_ours)?;
    if bake["variable"]["DIFY_CFG_IMAGES"].is_null() {
        return Err(not_ours());
    }
    let mut listed = BTreeSet::from(["docker-bake.json".to_string()]);
    for target in targets
        .keys()
        .filter(|t| plain_relative(t) && !t.contains('/'))
    {
        listed.insert(format!("{target}.Dockerfile"));
        listed.insert(format!("{target}.Dockerfile.dockerignore"));
    }
    Ok(listed)
}

/// The trees in `out` that dify-cfg wrote for sites `is_site` does not
/// know: what a build removes, and `build --check` reports. Hidden
/// entries and those starting with `_` (the image plan, the rollout
/// files) are never sites.
pub fn retired(out: &Path, is_site: impl Fn(&str) -> bool) -> Vec<String> {
    let Ok(meta) = fs::metadata(out) else {
        return Vec::new();
    };
    let Ok(entries) = fs::read_dir(out) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| !n.starts_with(['.', '_']) && !is_site(n))
        .filter(|n| matches!(classify(&out.join(n), n, meta.dev()), Found::Ours(_)))
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(p: &Path) -> u64 {
        fs::metadata(p).unwrap().dev()
    }

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn manifest(site: &str, outputs: &[&str]) -> String {
        let outputs: Vec<_> = outputs
            .iter()
            .map(|p| serde_json::json!({ "path": p, "sha256": "0".repeat(64) }))
            .collect();
        serde_json::json!({
            "compiler": { "name": "dify-cfg", "version": "0" },
            "site": site,
            "input-digest": "x",
            "outputs": outputs,
        })
        .to_string()
    }

    #[test]
    fn only_trees_with_our_manifest_and_listed_files_are_ours() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path();
        let d = dev(out);
        assert_eq!(classify(&out.join("s1"), "s1", d), Found::Absent);
        write(
            &out.join("s1/manifest.json"),
            &manifest("s1", &["a", "d/b"]),
        );
        write(&out.join("s1/a"), "");
        write(&out.join("s1/d/b"), "");
        assert_eq!(
            classify(&out.join("s1"), "s1", d),
            Found::Ours(vec!["a".into(), "d/b".into(), "manifest.json".into()])
        );
        assert_eq!(
            classify(&out.join("s1"), "s2", d),
            Found::Theirs("holds the manifest of site `s1`".into())
        );
        write(&out.join("s1/notes.txt"), "mine");
        assert_eq!(
            classify(&out.join("s1"), "s1", d),
            Found::Theirs("holds `notes.txt`, which dify-cfg did not write".into())
        );
        write(&out.join("f"), "a file");
        assert!(matches!(classify(&out.join("f"), "f", d), Found::Theirs(_)));
        fs::create_dir_all(out.join("empty")).unwrap();
        assert_eq!(
            classify(&out.join("empty"), "empty", d),
            Found::Theirs("has no manifest.json".into())
        );
        std::os::unix::fs::symlink(out.join("s1"), out.join("link")).unwrap();
        assert_eq!(
            classify(&out.join("link"), "link", d),
            Found::Theirs("is a symbolic link".into())
        );
        // A manifest of dify-cfg's with wrong entries is still dify-cfg's
        // (the site is built again); one that does not say so is not.
        write(
            &out.join("s4/manifest.json"),
            &manifest("s4", &["/etc/passwd", "../x"]),
        );
        assert_eq!(
            classify(&out.join("s4"), "s4", d),
            Found::Ours(vec!["manifest.json".into()])
        );
        for bad in [
            r#"{"compiler":{"name":"dify-cfg"},"site":"s3","outputs":"a"}"#,
            r#"{"compiler":{"name":"other"},"site":"s3","input-digest":"x","outputs":[]}"#,
            r#"{"site":"s3","outputs":[]}"#,
            "{",
        ] {
            write(&out.join("s3/manifest.json"), bad);
            assert_eq!(
                classify(&out.join("s3"), "s3", d),
                Found::Theirs("has a manifest.json dify-cfg did not write".into()),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_image_plan_is_ours_by_its_bake_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(IMAGES_DIR);
        let d = dev(tmp.path());
        write(
            &dir.join("docker-bake.json"),
            r#"{"variable":{"DIFY_CFG_IMAGES":{}},"target":{"api-1":{}}}"#,
        );
        write(&dir.join("api-1.Dockerfile"), "FROM x\n");
        assert_eq!(
            classify(&dir, IMAGES_DIR, d),
            Found::Ours(vec!["api-1.Dockerfile".into(), "docker-bake.json".into()])
        );
        write(&dir.join("other.Dockerfile"), "FROM y\n");
        assert!(matches!(classify(&dir, IMAGES_DIR, d), Found::Theirs(_)));
    }

    #[test]
    fn retired_trees_are_ours_and_named_like_sites() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path();
        write(&out.join("old/manifest.json"), &manifest("old", &[]));
        write(&out.join("kept/manifest.json"), &manifest("kept", &[]));
        write(&out.join("_rollout/x.md"), "");
        write(&out.join("mine/notes.txt"), "");
        write(&out.join("_x/manifest.json"), &manifest("_x", &[]));
        assert_eq!(retired(out, |n| n == "kept"), vec!["old"]);
        assert!(retired(&out.join("absent"), |_| false).is_empty());
    }

    #[test]
    fn placement_is_checked_on_resolved_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("cfg");
        fs::create_dir_all(root.join("profiles/p")).unwrap();
        fs::create_dir_all(root.join("sites")).unwrap();
        std::os::unix::fs::symlink(root.join("profiles"), tmp.path().join("link")).unwrap();
        for bad in [
            root.join("profiles"),
            root.join("profiles/p/new/deeper"),
            root.join("sites/../profiles/x"),
            tmp.path().join("link/x"),
        ] {
            assert!(
                matches!(
                    check_placement(&bad, &root),
                    Err(EmitError::OutOverlapsInputs { .. })
                ),
                "{}",
                bad.display()
            );
            assert!(!root.join("profiles/p/new").exists());
        }
        assert!(matches!(
            check_placement(tmp.path(), &root),
            Err(EmitError::OutContainsRoot { .. })
        ));
        assert!(matches!(
            check_placement(&root.join("templates"), &root),
            Err(EmitError::OutOverlapsInputs { .. })
        ));
        assert!(check_placement(&root.join("out"), &root).is_ok());
        assert!(check_placement(&tmp.path().join("elsewhere/out"), &root).is_ok());
    }
}

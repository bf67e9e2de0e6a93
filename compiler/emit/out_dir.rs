//! The out directory: [`OutDir`] locks it, stages each site's tree in a
//! temporary sibling, makes it durable and swaps it in with one
//! `renameat2(RENAME_EXCHANGE)`; [`differences`] compares a tree with what
//! is on disk (`build --check`).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{EmitError, SiteTree};

const TMP_MARK: &str = ".dify-cfg-tmp-";
const OLD_MARK: &str = ".dify-cfg-old-";
const LOCK_FILE: &str = ".dify-cfg.lock";

/// `dir/.<name><mark><pid>`: where this process stages (`TMP_MARK`) or
/// sets aside (`OLD_MARK`) `name`; `OutDir::open` recognizes both.
fn marked(dir: &Path, name: &str, mark: &str) -> PathBuf {
    dir.join(format!(".{name}{mark}{}", std::process::id()))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> EmitError + '_ {
    move |source| EmitError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Files that differ between `dir` and `tree`: changed, missing or extra.
pub fn differences(dir: &Path, tree: &SiteTree) -> Vec<String> {
    let mut diffs = Vec::new();
    let existing = read_tree(dir);
    for (path, bytes) in &tree.files {
        match existing.get(path) {
            Some(old) if old == bytes => {}
            Some(_) => diffs.push(format!("changed: {}/{path}", tree.name)),
            None => diffs.push(format!("missing: {}/{path}", tree.name)),
        }
    }
    for path in existing.keys() {
        if !tree.files.contains_key(path) {
            diffs.push(format!("extra: {}/{path}", tree.name));
        }
    }
    diffs
}

/// Every regular file under `dir`, by relative path.
fn read_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .flatten()
    {
        if e.file_type().is_file()
            && let (Ok(rel), Ok(bytes)) = (e.path().strip_prefix(dir), fs::read(e.path()))
        {
            let rel = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            out.insert(rel, bytes);
        }
    }
    out
}

/// Holds the out directory's lock for the duration of a build.
pub struct OutDir {
    pub path: PathBuf,
    _lock: fs::File,
}

impl OutDir {
    /// Create (if needed) and lock the out directory; clear what an
    /// interrupted earlier run left behind.
    pub fn open(path: &Path, root: &Path) -> Result<OutDir, EmitError> {
        fs::create_dir_all(path).map_err(io(path))?;
        let canon_out = path.canonicalize().map_err(io(path))?;
        let canon_root = root.canonicalize().map_err(io(root))?;
        if canon_root.starts_with(&canon_out) {
            return Err(EmitError::OutContainsRoot {
                out: path.to_path_buf(),
                root: root.to_path_buf(),
            });
        }
        let lock_path = path.join(LOCK_FILE);
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive)
            .map_err(|_| EmitError::Busy(path.to_path_buf()))?;
        for e in fs::read_dir(path).map_err(io(path))?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some((site, _)) = name.strip_prefix('.').and_then(|n| n.split_once(OLD_MARK)) {
                // A two-rename swap was interrupted between its renames:
                // the site directory is gone and this is its old tree.
                let dest = path.join(site);
                if !dest.exists() {
                    fs::rename(e.path(), &dest).map_err(io(&dest))?;
                    continue;
                }
            }
            if name.contains(TMP_MARK) || name.contains(OLD_MARK) {
                fs::remove_dir_all(e.path()).map_err(io(&e.path()))?;
            }
        }
        Ok(OutDir {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    /// Write a site's tree beside its directory, not yet visible: `None`
    /// when the existing tree is already identical. A build stages every
    /// site, then swaps them in ([`OutDir::swap`]) only once all rendered.
    pub fn stage(&self, tree: &SiteTree) -> Result<Option<Staged>, EmitError> {
        let dest = self.path.join(&tree.name);
        if dest.is_dir() && differences(&dest, tree).is_empty() {
            return Ok(None);
        }
        let tmp = marked(&self.path, &tree.name, TMP_MARK);
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
        }
        let staged = Staged {
            name: tree.name.clone(),
            tmp,
        };
        if let Err(e) = write_files(&staged.tmp, tree) {
            self.discard(staged);
            return Err(e);
        }
        Ok(Some(staged))
    }

    /// Make every staged file durable: one `syncfs` of the out directory's
    /// file system instead of an fsync per file.
    pub fn sync(&self) -> Result<(), EmitError> {
        let dir = fs::File::open(&self.path).map_err(io(&self.path))?;
        rustix::fs::syncfs(&dir).map_err(|e| EmitError::Io {
            path: self.path.clone(),
            source: e.into(),
        })
    }

    /// Swap a staged tree in: the site directory is the old complete tree
    /// until this one `renameat2(RENAME_EXCHANGE)`, the new one after.
    pub fn swap(&self, staged: Staged) -> Result<(), EmitError> {
        let dest = self.path.join(&staged.name);
        let tmp = &staged.tmp;
        if dest.exists() {
            let exchanged = rustix::fs::renameat_with(
                rustix::fs::CWD,
                tmp,
                rustix::fs::CWD,
                &dest,
                rustix::fs::RenameFlags::EXCHANGE,
            );
            match exchanged {
                Ok(()) => {
                    // `tmp` now holds the old tree.
                    fs::remove_dir_all(tmp).map_err(io(tmp))?;
                }
                Err(_) => {
                    // File systems without RENAME_EXCHANGE: two renames; a
                    // crash between them leaves the old tree in `OLD_MARK`,
                    // which the next run puts back (see `open`).
                    let old = marked(&self.path, &staged.name, OLD_MARK);
                    fs::rename(&dest, &old).map_err(io(&dest))?;
                    fs::rename(tmp, &dest).map_err(io(&dest))?;
                    fs::remove_dir_all(&old).map_err(io(&old))?;
                }
            }
        } else {
            fs::rename(tmp, &dest).map_err(io(&dest))?;
        }
        sync_dir(&self.path)
    }

    /// Remove a staged tree that will not be swapped in.
    pub fn discard(&self, staged: Staged) {
        let _ = fs::remove_dir_all(&staged.tmp);
    }
}

/// A site tree written beside its directory, waiting to be swapped in.
#[derive(Debug)]
pub struct Staged {
    name: String,
    tmp: PathBuf,
}

fn write_files(dir: &Path, tree: &SiteTree) -> Result<(), EmitError> {
    fs::create_dir_all(dir).map_err(io(dir))?;
    for (rel, bytes) in &tree.files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let mut f = fs::File::create(&path).map_err(io(&path))?;
        f.write_all(bytes).map_err(io(&path))?;
    }
    Ok(())
}

fn sync_dir(path: &Path) -> Result<(), EmitError> {
    fs::File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    impl OutDir {
        /// One site through stage, sync and swap, as a build does it;
        /// false when the existing tree was already identical.
        fn write_site(&self, tree: &SiteTree) -> Result<bool, EmitError> {
            match self.stage(tree)? {
                None => Ok(false),
                Some(staged) => {
                    self.sync()?;
                    self.swap(staged)?;
                    Ok(true)
                }
            }
        }
    }

    fn tree(name: &str, files: &[(&str, &str)]) -> SiteTree {
        SiteTree {
            name: name.into(),
            files: files
                .iter()
                .map(|(p, b)| (p.to_string(), b.as_bytes().to_vec()))
                .collect(),
            ..SiteTree::default()
        }
    }

    #[test]
    fn writes_swaps_and_detects_differences() {
        let root = tempfile::tempdir().unwrap();
        let out_path = root.path().join("out");
        let cfg = root.path().join("cfg");
        fs::create_dir_all(&cfg).unwrap();
        let out = OutDir::open(&out_path, &cfg).unwrap();
        let a = tree("s1", &[("a.txt", "one\n"), ("d/b.txt", "two\n")]);
        assert!(out.write_site(&a).unwrap());
        assert!(
            !out.write_site(&a).unwrap(),
            "identical tree is not rewritten"
        );
        assert!(differences(&out_path.join("s1"), &a).is_empty());
        let b = tree("s1", &[("a.txt", "one!\n")]);
        assert_eq!(
            differences(&out_path.join("s1"), &b),
            vec!["changed: s1/a.txt", "extra: s1/d/b.txt"]
        );
        assert!(out.write_site(&b).unwrap());
        assert!(differences(&out_path.join("s1"), &b).is_empty());
        let leftovers: Vec<_> = fs::read_dir(&out_path)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            leftovers
                .iter()
                .filter(|n| n.contains("dify-cfg-tmp") || n.contains("dify-cfg-old"))
                .count(),
            0,
            "{leftovers:?}"
        );
    }

    #[test]
    fn second_writer_is_refused_and_out_may_not_hold_the_root() {
        let root = tempfile::tempdir().unwrap();
        let out_path = root.path().join("out");
        let cfg = root.path().join("cfg");
        fs::create_dir_all(&cfg).unwrap();
        let first = OutDir::open(&out_path, &cfg).unwrap();
        assert!(matches!(
            OutDir::open(&out_path, &cfg),
            Err(EmitError::Busy(_))
        ));
        drop(first);
        assert!(OutDir::open(&out_path, &cfg).is_ok());
        assert!(matches!(
            OutDir::open(root.path(), &cfg),
            Err(EmitError::OutContainsRoot { .. })
        ));
    }
}

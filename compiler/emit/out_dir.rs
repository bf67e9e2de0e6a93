//! The out directory: [`OutDir`] locks it, stages each site's tree in a
//! temporary sibling, makes it durable and swaps it in with one
//! `renameat2(RENAME_EXCHANGE)`, all or none; [`differences`] compares a
//! tree with what is on disk (`build --check`).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::guard::{Found, check_placement, classify, retired};
use super::manifest::plain_relative;
use super::{EmitError, SiteTree, io};
use crate::base::crash;
use crate::input::load::relative;

const TMP_MARK: &str = ".dify-cfg-tmp-";
const OLD_MARK: &str = ".dify-cfg-old-";
/// A retired site's tree, set aside until the build is done.
const GONE_MARK: &str = ".dify-cfg-gone-";
const LOCK_FILE: &str = ".dify-cfg.lock";

/// `dir/.<name><mark><pid>`: where this process stages (`TMP_MARK`) or
/// sets aside (`OLD_MARK`, `GONE_MARK`) `name`; `OutDir::open` recognizes
/// them.
fn marked(dir: &Path, name: &str, mark: &str) -> PathBuf {
    dir.join(format!(".{name}{mark}{}", std::process::id()))
}

/// Files that differ between `dir` and `tree`: changed, missing or extra.
pub fn differences(dir: &Path, tree: &SiteTree) -> Vec<String> {
    let held = walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| (e.path().to_path_buf(), relative(dir, e.path())));
    differences_in(held, tree)
}

/// [`differences`], given the regular files of the tree on disk: each
/// one's path, and its path relative to the tree.
fn differences_in(
    held: impl IntoIterator<Item = (PathBuf, String)>,
    tree: &SiteTree,
) -> Vec<String> {
    let existing: BTreeMap<String, Vec<u8>> = held
        .into_iter()
        .filter_map(|(path, rel)| Some((rel, fs::read(path).ok()?)))
        .collect();
    let mut diffs = Vec::new();
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

/// Holds the out directory's lock for the duration of a build.
pub struct OutDir {
    pub path: PathBuf,
    /// The out directory's device: a tree on another is a mount point.
    dev: u64,
    _lock: fs::File,
}

impl OutDir {
    /// Create (if needed) and lock the out directory; clear what an
    /// interrupted earlier run left behind. Refused, before anything is
    /// created, where it would hold or lie inside the inputs.
    pub fn open(path: &Path, root: &Path) -> Result<OutDir, EmitError> {
        check_placement(path, root)?;
        fs::create_dir_all(path).map_err(io(path))?;
        let dev = fs::metadata(path).map_err(io(path))?.dev();
        let lock_path = path.join(LOCK_FILE);
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive)
            .map_err(|_| EmitError::Busy(path.to_path_buf()))?;
        clear_leftovers(path)?;
        crash::point(crash::OUT_LOCKED);
        Ok(OutDir {
            path: path.to_path_buf(),
            dev,
            _lock: lock,
        })
    }

    /// Write a site's tree beside its directory, not yet visible: `None`
    /// when the existing tree is already identical. A build stages every
    /// site, then swaps them in ([`OutDir::install`]) only once all
    /// rendered. What the tree would replace must be a tree dify-cfg wrote.
    pub fn stage(&self, tree: &SiteTree) -> Result<Option<Staged>, EmitError> {
        let dest = self.path.join(&tree.name);
        match classify(&dest, &tree.name, self.dev) {
            Found::Absent => {}
            Found::Ours(held) => {
                let held = held.into_iter().map(|rel| (dest.join(&rel), rel));
                if differences_in(held, tree).is_empty() {
                    return Ok(None);
                }
            }
            Found::Theirs(why) => return Err(EmitError::NotOurs { path: dest, why }),
        }
        let tmp = marked(&self.path, &tree.name, TMP_MARK);
        if fs::symlink_metadata(&tmp).is_ok() {
            remove_any(&tmp).map_err(|source| EmitError::Remove {
                path: tmp.clone(),
                what: "a staging directory",
                source,
            })?;
        }
        let staged = Staged {
            name: tree.name.clone(),
            tmp,
        };
        if let Err(e) = write_files(&staged.tmp, tree) {
            self.discard(staged);
            return Err(e);
        }
        crash::point(crash::OUT_STAGED);
        Ok(Some(staged))
    }

    /// Make every staged file durable: one `syncfs` of the out directory's
    /// file system instead of an fsync per file.
    pub fn sync(&self) -> Result<(), EmitError> {
        let dir = fs::File::open(&self.path).map_err(io(&self.path))?;
        rustix::fs::syncfs(&dir).map_err(|e| EmitError::Io {
            path: self.path.clone(),
            source: e.into(),
        })?;
        crash::point(crash::OUT_SYNCED);
        Ok(())
    }

    /// The trees of sites `is_site` does not know that dify-cfg wrote here:
    /// what [`OutDir::install`] removes.
    pub fn retired(&self, is_site: impl Fn(&str) -> bool) -> Vec<String> {
        retired(&self.path, is_site)
    }

    /// Swap every staged tree in, each with one `renameat2(RENAME_EXCHANGE)`
    /// (a site directory is the old complete tree until then, the new one
    /// after), and set the `retired` trees aside; then remove the old
    /// trees. If a move fails, the moves already made are undone, in
    /// reverse, so that a failed build changes nothing.
    pub fn install(&self, staged: Vec<Staged>, retired: &[String]) -> Result<(), EmitError> {
        let mut done: Vec<Move> = Vec::new();
        let mut failed = None;
        let mut pending = staged.into_iter();
        for s in pending.by_ref() {
            match self.swap(&s) {
                Ok(m) => done.push(m),
                Err(e) => {
                    failed = Some(e);
                    self.discard(s);
                    break;
                }
            }
            crash::point(crash::OUT_SWAPPED);
        }
        for name in retired.iter().take_while(|_| failed.is_none()) {
            let dest = self.path.join(name);
            let gone = marked(&self.path, name, GONE_MARK);
            if let Err(e) = fs::rename(&dest, &gone) {
                failed = Some((dest, e));
                break;
            }
            done.push(Move::Retired { dest, gone });
            crash::point(crash::OUT_RETIRED);
        }
        if failed.is_none()
            && let Err(e) = sync_dir(&self.path)
        {
            failed = Some((self.path.clone(), e));
        }
        if let Some((path, source)) = failed {
            for s in pending {
                self.discard(s);
            }
            return Err(self.roll_back(done, path, source));
        }
        // Done: each site is its new tree. What was set aside goes.
        for m in &done {
            if let Some(old) = m.set_aside() {
                remove_any(old).map_err(|source| EmitError::Remove {
                    path: old.to_path_buf(),
                    what: "an old tree the build replaced; the new trees are in place",
                    source,
                })?;
                crash::point(crash::OUT_REMOVED);
            }
        }
        sync_dir(&self.path).map_err(io(&self.path))
    }

    /// Undo `done`, last first, after the move of `path` failed.
    fn roll_back(&self, done: Vec<Move>, path: PathBuf, source: std::io::Error) -> EmitError {
        let mut undo_failed = None;
        for m in done.iter().rev() {
            if let Err(e) = m.undo() {
                undo_failed.get_or_insert(e);
            }
        }
        let _ = sync_dir(&self.path);
        match undo_failed {
            None => EmitError::Install { path, source },
            Some((undo_path, undo)) => EmitError::RollBack {
                path,
                source,
                undo_path,
                undo,
            },
        }
    }

    /// Swap one staged tree in.
    fn swap(&self, staged: &Staged) -> Result<Move, (PathBuf, std::io::Error)> {
        let dest = self.path.join(&staged.name);
        let tmp = staged.tmp.clone();
        if fs::symlink_metadata(&dest).is_err() {
            return match fs::rename(&tmp, &dest) {
                Ok(()) => Ok(Move::Created { tmp, dest }),
                Err(e) => Err((dest, e)),
            };
        }
        match exchange(&tmp, &dest) {
            Ok(()) => Ok(Move::Exchanged { tmp, dest }),
            Err(e) if e.raw_os_error() != Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                Err((dest, e))
            }
            Err(_) => {
                // File systems without RENAME_EXCHANGE: two renames; a
                // crash between them leaves the old tree in `OLD_MARK`,
                // which the next run puts back (see `clear_leftovers`).
                let old = marked(&self.path, &staged.name, OLD_MARK);
                fs::rename(&dest, &old).map_err(|e| (dest.clone(), e))?;
                if let Err(e) = fs::rename(&tmp, &dest) {
                    let _ = fs::rename(&old, &dest);
                    return Err((dest, e));
                }
                Ok(Move::Renamed { tmp, dest, old })
            }
        }
    }

    /// Remove a staged tree that will not be swapped in.
    pub fn discard(&self, staged: Staged) {
        let _ = remove_any(&staged.tmp);
    }
}

/// Remove what an interrupted earlier run left: staged trees, old trees
/// (the one a two-rename swap had set aside goes back where its site's
/// directory is missing), retired trees.
fn clear_leftovers(path: &Path) -> Result<(), EmitError> {
    for e in fs::read_dir(path).map_err(io(path))?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some((site, _)) = name.strip_prefix('.').and_then(|n| n.split_once(OLD_MARK)) {
            let dest = path.join(site);
            if fs::symlink_metadata(&dest).is_err() {
                fs::rename(e.path(), &dest).map_err(io(&dest))?;
                continue;
            }
        }
        if [TMP_MARK, OLD_MARK, GONE_MARK]
            .iter()
            .any(|m| name.contains(m))
        {
            remove_any(&e.path()).map_err(|source| EmitError::Remove {
                path: e.path(),
                what: "left by an interrupted build",
                source,
            })?;
        }
    }
    Ok(())
}

/// One move of a build, and how to undo it.
enum Move {
    /// `tmp` renamed to `dest`, where nothing was.
    Created { tmp: PathBuf, dest: PathBuf },
    /// `tmp` and `dest` exchanged: `tmp` holds the old tree.
    Exchanged { tmp: PathBuf, dest: PathBuf },
    /// `dest` renamed to `old`, then `tmp` to `dest`.
    Renamed {
        tmp: PathBuf,
        dest: PathBuf,
        old: PathBuf,
    },
    /// A retired tree renamed from `dest` to `gone`.
    Retired { dest: PathBuf, gone: PathBuf },
}

impl Move {
    /// What to remove once every move is made.
    fn set_aside(&self) -> Option<&Path> {
        match self {
            Move::Created { .. } => None,
            Move::Exchanged { tmp, .. } => Some(tmp),
            Move::Renamed { old, .. } => Some(old),
            Move::Retired { gone, .. } => Some(gone),
        }
    }

    /// Put things back as they were before this move; the new tree, if
    /// any, is removed.
    fn undo(&self) -> Result<(), (PathBuf, std::io::Error)> {
        let at = |p: &Path| {
            let p = p.to_path_buf();
            move |e| (p, e)
        };
        match self {
            Move::Created { tmp, dest } => fs::rename(dest, tmp).map_err(at(dest))?,
            Move::Exchanged { tmp, dest } => exchange(tmp, dest).map_err(at(dest))?,
            Move::Renamed { tmp, dest, old } => {
                fs::rename(dest, tmp).map_err(at(dest))?;
                fs::rename(old, dest).map_err(at(dest))?;
            }
            Move::Retired { dest, gone } => return fs::rename(gone, dest).map_err(at(dest)),
        }
        match self {
            Move::Created { tmp, .. } | Move::Exchanged { tmp, .. } | Move::Renamed { tmp, .. } => {
                let _ = remove_any(tmp);
            }
            Move::Retired { .. } => {}
        }
        Ok(())
    }
}

/// `renameat2(a, b, RENAME_EXCHANGE)`.
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    rustix::fs::renameat_with(
        rustix::fs::CWD,
        a,
        rustix::fs::CWD,
        b,
        rustix::fs::RenameFlags::EXCHANGE,
    )
    .map_err(std::io::Error::from)
}

/// Remove a directory tree, or a file.
fn remove_any(path: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
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
        if !plain_relative(rel) {
            return Err(EmitError::Io {
                path,
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "not a plain relative path",
                ),
            });
        }
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let mut f = fs::File::create(&path).map_err(io(&path))?;
        f.write_all(bytes).map_err(io(&path))?;
        crash::point(crash::OUT_FILE);
    }
    Ok(())
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    fs::File::open(path).and_then(|d| d.sync_all())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::source::sha256_hex;

    impl OutDir {
        /// One site through stage, sync and install, as a build does it;
        /// false when the existing tree was already identical.
        fn write_site(&self, tree: &SiteTree) -> Result<bool, EmitError> {
            match self.stage(tree)? {
                None => Ok(false),
                Some(staged) => {
                    self.sync()?;
                    self.install(vec![staged], &[])?;
                    Ok(true)
                }
            }
        }
    }

    /// A site tree with a manifest listing its files.
    fn tree(name: &str, files: &[(&str, &str)]) -> SiteTree {
        let mut files: BTreeMap<String, Vec<u8>> = files
            .iter()
            .map(|(p, b)| (p.to_string(), b.as_bytes().to_vec()))
            .collect();
        let outputs: Vec<_> = files
            .iter()
            .map(|(p, b)| serde_json::json!({ "path": p, "sha256": sha256_hex(b) }))
            .collect();
        let manifest = serde_json::json!({
            "compiler": { "name": "dify-cfg", "version": "0" },
            "site": name,
            "input-digest": "x",
            "outputs": outputs,
        });
        files.insert("manifest.json".into(), manifest.to_string().into_bytes());
        SiteTree {
            name: name.into(),
            files,
            ..SiteTree::default()
        }
    }

    /// The entries of `dir`, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let entries = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name());
        let names: std::collections::BTreeSet<_> = entries.collect();
        names
            .iter()
            .map(|n| n.to_string_lossy().into_owned())
            .collect()
    }

    fn open(tmp: &tempfile::TempDir) -> (OutDir, PathBuf) {
        let out_path = tmp.path().join("out");
        let cfg = tmp.path().join("cfg");
        fs::create_dir_all(&cfg).unwrap();
        (OutDir::open(&out_path, &cfg).unwrap(), out_path)
    }

    #[test]
    fn a_failed_swap_puts_back_the_swapped_trees() {
        let tmp = tempfile::tempdir().unwrap();
        let (out, out_path) = open(&tmp);
        let old: Vec<SiteTree> = ["s1", "s2", "s3"]
            .map(|n| tree(n, &[("a", "old\n")]))
            .into();
        for t in &old {
            out.write_site(t).unwrap();
        }
        out.write_site(&tree("gone", &[])).unwrap();
        let new: Vec<SiteTree> = ["s0", "s1", "s2", "s3"]
            .map(|n| tree(n, &[("a", "new\n")]))
            .into();
        let staged: Vec<Staged> = new.iter().map(|t| out.stage(t).unwrap().unwrap()).collect();
        // s2's staging directory vanishes: its swap fails after s0 (new)
        // and s1 (replaced) were swapped in.
        fs::remove_dir_all(&staged[2].tmp).unwrap();
        let e = out.install(staged, &["gone".to_string()]).unwrap_err();
        assert!(matches!(e, EmitError::Install { .. }), "{e}");
        assert_eq!(
            names(&out_path),
            [".dify-cfg.lock", "gone", "s1", "s2", "s3"]
        );
        for t in &old {
            assert!(differences(&out_path.join(&t.name), t).is_empty());
        }
    }

    #[test]
    fn retired_trees_go_and_leftovers_are_cleared_or_restored() {
        let tmp = tempfile::tempdir().unwrap();
        let (out, out_path) = open(&tmp);
        let s1 = tree("s1", &[("a", "1\n")]);
        out.write_site(&s1).unwrap();
        out.write_site(&tree("s2", &[])).unwrap();
        assert_eq!(out.retired(|n| n == "s1"), ["s2"]);
        out.install(Vec::new(), &["s2".to_string()]).unwrap();
        assert_eq!(names(&out_path), [".dify-cfg.lock", "s1"]);
        drop(out);
        // A killed run's leftovers: a staged tree, a retired one, and the
        // old tree of a two-rename swap whose site directory is missing.
        fs::create_dir_all(out_path.join(".s1.dify-cfg-tmp-1/x")).unwrap();
        fs::write(out_path.join(".s3.dify-cfg-gone-1"), "").unwrap();
        fs::rename(out_path.join("s1"), out_path.join(".s1.dify-cfg-old-1")).unwrap();
        let (_out, _) = open(&tmp);
        assert_eq!(names(&out_path), [".dify-cfg.lock", "s1"]);
        assert!(differences(&out_path.join("s1"), &s1).is_empty());
    }

    #[test]
    fn only_trees_dify_cfg_wrote_are_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let (out, out_path) = open(&tmp);
        fs::write(out_path.join("s1"), "notes\n").unwrap();
        let e = out.stage(&tree("s1", &[("a", "1\n")])).unwrap_err();
        assert!(matches!(e, EmitError::NotOurs { .. }), "{e}");
        assert_eq!(fs::read(out_path.join("s1")).unwrap(), b"notes\n");
        assert_eq!(names(&out_path), [".dify-cfg.lock", "s1"]);
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
            vec![
                "changed: s1/a.txt",
                "changed: s1/manifest.json",
                "extra: s1/d/b.txt"
            ]
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

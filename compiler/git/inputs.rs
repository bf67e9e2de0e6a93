//! The config root's inputs in git: those of the working tree that differ
//! from HEAD, and [`CommitTree`], the inputs as a commit has them (links
//! followed only while they stay inside the root), which `audit` and
//! `commit` load as an [`InputSource`].

use std::collections::{BTreeMap, BTreeSet};

use git2::{ObjectType, Oid, TreeWalkMode, TreeWalkResult};

use super::{GitError, Repo, ctx, short};
use crate::input::load::{
    INPUT_DIRS, InputSource, MAX_INPUT_BYTES, ReadError, files_under, is_skipped_name,
};

const LINK_MODE: u32 = 0o120_000;
/// How many links in a row `CommitTree` follows.
const MAX_LINK_HOPS: usize = 8;

impl Repo {
    /// Input files of the working tree that differ from HEAD (modified,
    /// added, deleted or untracked; ignored files are not inputs a clone
    /// would have either, but they are reported too, since a build reads
    /// them).
    pub fn dirty_inputs(&self) -> Result<Vec<String>, GitError> {
        let mut opts = git2::StatusOptions::new();
        opts.include_untracked(true)
            .recurse_untracked_dirs(true)
            .include_ignored(true)
            .recurse_ignored_dirs(true)
            .disable_pathspec_match(false);
        for dir in INPUT_DIRS {
            opts.pathspec(format!("{}{dir}/", self.prefix));
        }
        let statuses = ctx(self.repo.statuses(Some(&mut opts)), || {
            "cannot read the status of the working tree".into()
        })?;
        let mut out: Vec<String> = statuses
            .iter()
            .filter(|s| s.status() != git2::Status::CURRENT)
            // A name that is not UTF-8 is listed too (with U+FFFD).
            .map(|s| String::from_utf8_lossy(s.path_bytes()).into_owned())
            .filter(|p| {
                let name = p.rsplit('/').next().unwrap_or(p);
                !is_skipped_name(name)
            })
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// The config root as it is in `commit`, as an input source.
    pub fn inputs_at(&self, commit: Oid) -> Result<CommitTree, GitError> {
        let c = ctx(self.repo.find_commit(commit), || {
            format!("cannot read commit {commit}")
        })?;
        let tree = ctx(c.tree(), || format!("cannot read the tree of {commit}"))?;
        let odb = ctx(self.repo.odb(), || "cannot open the object database".into())?;
        // Every blob and link of the commit, by path from the repository's
        // top: links may point anywhere inside the root.
        let mut entries: BTreeMap<String, (Oid, u32)> = BTreeMap::new();
        let mut dirs: BTreeSet<String> = BTreeSet::new();
        // Names that are not UTF-8 (with U+FFFD), not entered: the loader
        // says so for each, as it does for the working tree.
        let mut not_utf8: BTreeSet<String> = BTreeSet::new();
        ctx(
            tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
                let path = format!("{dir}{}", String::from_utf8_lossy(entry.name_bytes()));
                if entry.name().is_err() {
                    not_utf8.insert(path);
                    return TreeWalkResult::Skip;
                }
                match entry.kind() {
                    Some(ObjectType::Blob) => {
                        entries.insert(path, (entry.id(), entry.filemode() as u32));
                    }
                    Some(ObjectType::Tree) => {
                        dirs.insert(path);
                    }
                    _ => {}
                }
                TreeWalkResult::Ok
            }),
            || format!("cannot walk the tree of {commit}"),
        )?;
        let read_blob = |oid: Oid| -> Result<Vec<u8>, ReadError> {
            let (size, _) = odb
                .read_header(oid)
                .map_err(|e| ReadError::Other(e.message().to_string()))?;
            if size as u64 > MAX_INPUT_BYTES {
                return Err(ReadError::TooLarge(size as u64));
            }
            odb.read(oid)
                .map(|o| o.data().to_vec())
                .map_err(|e| ReadError::Other(e.message().to_string()))
        };
        // A path's name in the root, when it is under an input directory.
        let input = |path: &str| -> Option<String> {
            let rel = path.strip_prefix(&self.prefix)?;
            INPUT_DIRS
                .iter()
                .any(|d| rel.starts_with(&format!("{d}/")))
                .then(|| rel.to_string())
        };
        let mut files = BTreeMap::new();
        for (path, (oid, mode)) in &entries {
            let Some(rel) = input(path) else {
                continue;
            };
            let content = if *mode == LINK_MODE {
                follow_link(path, *oid, &self.prefix, &entries, &dirs, &read_blob)
            } else {
                read_blob(*oid)
            };
            files.insert(rel, content);
        }
        for rel in not_utf8.iter().filter_map(|p| input(p)) {
            files.insert(rel, Err(ReadError::NameNotUtf8));
        }
        let dirs = dirs
            .iter()
            .filter_map(|d| d.strip_prefix(&self.prefix))
            .filter(|d| !d.is_empty())
            .map(str::to_string)
            .collect();
        Ok(CommitTree {
            commit,
            files,
            dirs,
        })
    }
}

/// Follow a link stored in a commit (its blob holds the target path), as
/// the working-tree loader follows links on disk: only while it stays
/// inside the config root.
fn follow_link(
    path: &str,
    oid: Oid,
    prefix: &str,
    entries: &BTreeMap<String, (Oid, u32)>,
    dirs: &BTreeSet<String>,
    read_blob: &dyn Fn(Oid) -> Result<Vec<u8>, ReadError>,
) -> Result<Vec<u8>, ReadError> {
    let (mut path, mut oid) = (path.to_string(), oid);
    for _ in 0..MAX_LINK_HOPS {
        let target = String::from_utf8(read_blob(oid)?)
            .map_err(|_| ReadError::Other("the link's target is not UTF-8".into()))?;
        if target.starts_with('/') {
            return Err(ReadError::OutsideRoot);
        }
        let mut parts: Vec<&str> = path.split('/').collect();
        parts.pop();
        for comp in target.split('/') {
            match comp {
                "" | "." => {}
                ".." => {
                    if parts.pop().is_none() {
                        return Err(ReadError::OutsideRoot);
                    }
                }
                c => parts.push(c),
            }
        }
        let resolved = parts.join("/");
        if !resolved.starts_with(prefix) {
            return Err(ReadError::OutsideRoot);
        }
        match entries.get(&resolved) {
            Some((next, mode)) if *mode == LINK_MODE => (path, oid) = (resolved, *next),
            Some((next, _)) => return read_blob(*next),
            None if dirs.contains(&resolved) => return Err(ReadError::NotAFile),
            None => {
                return Err(ReadError::Other(format!(
                    "the link leads to `{target}`, which does not exist"
                )));
            }
        }
    }
    Err(ReadError::Other("too many links in a row".into()))
}

/// The config root as a commit has it: what `audit` recompiles.
pub struct CommitTree {
    pub commit: Oid,
    files: BTreeMap<String, Result<Vec<u8>, ReadError>>,
    dirs: BTreeSet<String>,
}

impl InputSource for CommitTree {
    fn describe(&self) -> String {
        format!("commit {}", short(self.commit))
    }

    fn has_dir(&self, dir: &str) -> bool {
        self.dirs.contains(dir)
    }

    fn files(&self, dir: &str) -> Result<Vec<String>, String> {
        Ok(files_under(self.files.keys(), dir))
    }

    fn read(&self, rel: &str) -> Result<Vec<u8>, ReadError> {
        self.files
            .get(rel)
            .cloned()
            .unwrap_or_else(|| Err(ReadError::Other("no such file in the commit".into())))
    }
}

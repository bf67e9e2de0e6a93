//! Site trees as git objects: writing files as blobs and trees, and reading
//! a tree's files (or only their blob ids) back.

use std::collections::BTreeMap;

use git2::{ObjectType, Oid, TreeWalkMode, TreeWalkResult};

use super::read::{DIR_MODE, SITE_FILE_MODE};
use super::shared::Shared;
use super::{GitError, Repo, ctx};

/// The id `bytes` have as a git blob (nothing is written).
pub fn blob_id(bytes: &[u8]) -> Oid {
    Oid::hash_object(ObjectType::Blob, bytes).unwrap_or(Oid::ZERO_SHA1)
}

impl Repo {
    /// Every file of a tree, by path (links as their target text).
    pub fn tree_files(&self, tree: Oid) -> Result<BTreeMap<String, Vec<u8>>, GitError> {
        let mut out = BTreeMap::new();
        for (path, id) in self.tree_blob_ids(tree)? {
            let blob = ctx(self.repo.find_blob(id), || format!("cannot read `{path}`"))?;
            out.insert(path, blob.content().to_vec());
        }
        Ok(out)
    }

    /// The blob id of every file of a tree, by path, without reading blobs.
    pub fn tree_blob_ids(&self, tree: Oid) -> Result<BTreeMap<String, Oid>, GitError> {
        let t = ctx(self.repo.find_tree(tree), || {
            format!("cannot read tree {tree}")
        })?;
        let mut out = BTreeMap::new();
        ctx(
            t.walk(TreeWalkMode::PreOrder, |dir, entry| {
                if entry.kind() == Some(ObjectType::Blob) {
                    out.insert(
                        format!("{dir}{}", entry.name().unwrap_or_default()),
                        entry.id(),
                    );
                }
                TreeWalkResult::Ok
            }),
            || format!("cannot walk tree {tree}"),
        )?;
        Ok(out)
    }

    /// Write `files` as blobs and trees; returns the root tree.
    pub fn write_tree(&self, files: &BTreeMap<String, Vec<u8>>) -> Result<Oid, GitError> {
        #[derive(Default)]
        struct Dir<'a> {
            files: BTreeMap<&'a str, &'a [u8]>,
            dirs: BTreeMap<&'a str, Dir<'a>>,
        }
        fn write(repo: &Repo, dir: &Dir<'_>) -> Result<Oid, git2::Error> {
            let mut builder = repo.repo.treebuilder(None)?;
            for (name, bytes) in &dir.files {
                let blob = repo.repo.blob(bytes)?;
                repo.share_object(blob);
                builder.insert(name, blob, SITE_FILE_MODE as i32)?;
            }
            for (name, sub) in &dir.dirs {
                builder.insert(name, write(repo, sub)?, DIR_MODE as i32)?;
            }
            let tree = builder.write()?;
            repo.share_object(tree);
            Ok(tree)
        }
        let mut top = Dir::default();
        for (path, bytes) in files {
            let mut parts: Vec<&str> = path.split('/').collect();
            let name = parts.pop().unwrap_or_default();
            let mut dir = &mut top;
            for p in parts {
                dir = dir.dirs.entry(p).or_default();
            }
            dir.files.insert(name, bytes);
        }
        ctx(write(self, &top), || "cannot write the site tree".into())
    }
}

impl Repo {
    /// Give a loose object this process wrote, and its folder, the modes
    /// git gives them in a shared repository (libgit2 leaves them to the
    /// umask). An object that was there already, or is packed, is left.
    pub(super) fn share_object(&self, id: Oid) {
        if self.shared == Shared::Umask {
            return;
        }
        let hex = id.to_string();
        let dir = self.repo.commondir().join("objects").join(&hex[..2]);
        let fanout = u8::from_str_radix(&hex[..2], 16).unwrap_or_default();
        // Once per folder and handle (once it exists and is set).
        if !self.shared_fanouts.borrow().contains(&fanout) && self.shared.adjust(&dir).is_ok() {
            self.shared_fanouts.borrow_mut().insert(fanout);
        }
        self.shared.adjust_if_ours(&dir.join(&hex[2..]));
    }
}

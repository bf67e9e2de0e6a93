//! Reads for `audit`, which proves a branch's tree entry by entry: every
//! entry of a tree with its mode (files, links, submodules and
//! directories, not only blobs), and what kind of object an id names.

use std::collections::BTreeMap;

use git2::{ObjectType, Oid, TreeWalkMode, TreeWalkResult};

use super::{GitError, Repo, ctx};

/// The mode of a directory entry.
pub const DIR_MODE: i32 = 0o040_000;
/// The mode `write_tree` gives every file of a site tree.
pub const SITE_FILE_MODE: i32 = 0o100_644;

/// One entry of a tree: its mode, and its object (`None` for a directory,
/// whose contents are entries of their own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub mode: i32,
    pub id: Option<Oid>,
}

/// Every entry of a tree, by path (a directory's with a trailing `/`).
pub type Entries = BTreeMap<String, Entry>;

/// What an object id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Commit,
    Tree,
    Blob,
    Tag,
}

impl ObjectKind {
    /// `a commit`, `an annotated tag`, ...
    pub fn described(self) -> &'static str {
        match self {
            ObjectKind::Commit => "a commit",
            ObjectKind::Tree => "a tree",
            ObjectKind::Blob => "a blob",
            ObjectKind::Tag => "an annotated tag",
        }
    }
}

impl Repo {
    /// Every entry of a tree, recursively, with its mode: what a checkout
    /// of it would hold (a submodule as its gitlink, not descended into).
    pub fn tree_entries(&self, tree: Oid) -> Result<Entries, GitError> {
        let t = ctx(self.repo.find_tree(tree), || {
            format!("cannot read tree {tree}")
        })?;
        let mut out = Entries::new();
        ctx(
            t.walk(TreeWalkMode::PreOrder, |dir, entry| {
                let name = String::from_utf8_lossy(entry.name_bytes());
                let mode = entry.filemode_raw();
                if entry.kind() == Some(ObjectType::Tree) {
                    out.insert(format!("{dir}{name}/"), Entry { mode, id: None });
                } else {
                    out.insert(
                        format!("{dir}{name}"),
                        Entry {
                            mode,
                            id: Some(entry.id()),
                        },
                    );
                }
                TreeWalkResult::Ok
            }),
            || format!("cannot walk tree {tree}"),
        )?;
        Ok(out)
    }

    /// The kind of object `id` names; `None` when this repository does
    /// not have it.
    pub fn object_kind(&self, id: Oid) -> Result<Option<ObjectKind>, GitError> {
        let odb = ctx(self.repo.odb(), || "cannot open the object database".into())?;
        if !odb.exists(id) {
            return Ok(None);
        }
        let (_, kind) = ctx(odb.read_header(id), || format!("cannot read object {id}"))?;
        Ok(match kind {
            ObjectType::Commit => Some(ObjectKind::Commit),
            ObjectType::Tree => Some(ObjectKind::Tree),
            ObjectType::Blob => Some(ObjectKind::Blob),
            ObjectType::Tag => Some(ObjectKind::Tag),
            _ => None,
        })
    }
}

/// The entries of the tree dify-cfg writes for `files` (path to blob id):
/// each file with [`SITE_FILE_MODE`], and the directories that hold them.
pub fn site_entries<'a>(files: impl IntoIterator<Item = (&'a String, &'a Oid)>) -> Entries {
    let mut out = Entries::new();
    for (path, id) in files {
        for (slash, _) in path.match_indices('/') {
            out.insert(
                path[..=slash].to_string(),
                Entry {
                    mode: DIR_MODE,
                    id: None,
                },
            );
        }
        out.insert(
            path.clone(),
            Entry {
                mode: SITE_FILE_MODE,
                id: Some(*id),
            },
        );
    }
    out
}

//! The git stage, and the only module that touches git (through git2). It
//! reads inputs from commits, writes site trees and commits as objects,
//! and moves site branches with a compare-and-swap. It never checks out,
//! never writes the index or the working tree, and never fetches or pushes.

mod commits;
mod history;
mod inputs;
pub mod read;
mod refs;
mod shared;
mod stale;
mod tags;
mod trees;

use std::path::{Path, PathBuf};

use git2::{ErrorCode, Oid, Repository};

pub use commits::{CommitInfo, Identity};
pub use refs::RefUpdate;
pub use tags::Archive;
pub use trees::blob_id;

use shared::Shared;

/// Operational failures of the git stage (not user mistakes in the inputs).
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("`{root}` is not inside a git repository: {source}")]
    NotARepository { root: PathBuf, source: git2::Error },
    #[error("the git repository at `{0}` has no working tree; run dify-cfg in a clone")]
    Bare(PathBuf),
    #[error("the config repository has no commits yet; commit the profiles and sites first")]
    NoCommits,
    #[error("{what}: {source}")]
    Git { what: String, source: git2::Error },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error(
        "branch `{branch}` moved while dify-cfg was working (expected {expected}, found {found}); nothing was written, run the command again"
    )]
    Moved {
        branch: String,
        expected: String,
        found: String,
    },
    #[error(
        "branch `{branch}` is locked: `{}` exists, so another git process is writing it, or one was killed while it did; nothing was written. Try again when it is done; if no git process is running, remove that file",
        lock.display()
    )]
    Locked { branch: String, lock: PathBuf },
    #[error(
        "the git repository `{}` uses {what}, which dify-cfg cannot work with: it reads and writes git through libgit2, which supports only SHA-1 object names and refs stored as files. {fix}",
        git_dir.display()
    )]
    Unsupported {
        git_dir: PathBuf,
        what: &'static str,
        fix: &'static str,
    },
    #[error(
        "core.sharedRepository = `{value}` in the git repository `{}`: {why}, so git refuses this repository too. Set it to umask, group, all or an octal mode such as 0660 (`git config core.sharedRepository group`)",
        git_dir.display()
    )]
    SharedRepository {
        git_dir: PathBuf,
        value: String,
        why: String,
    },
    #[error(
        "cannot create branch `{branch}`: branch `{other}` exists, and git cannot hold a branch beside another whose name continues it; nothing was written. Rename or delete `{other}` (`git branch -m`), or choose another branch prefix"
    )]
    NameConflict { branch: String, other: String },
    #[error(
        "a dify-cfg (pid {pid}) is still moving branches in this repository, as `{}` says, yet does not hold the move lock; nothing was written. Let it finish, then run the command again",
        journal.display()
    )]
    MoveRunning { pid: u32, journal: PathBuf },
    #[error(
        "the {who} of source commit {commit} has an empty name, and git makes no commit with an empty name; set `user.name` and commit the inputs again (`git commit --amend --reset-author`)"
    )]
    EmptyName { who: &'static str, commit: String },
}

/// Attach what was being done to a git2 error.
fn ctx<T>(r: Result<T, git2::Error>, what: impl FnOnce() -> String) -> Result<T, GitError> {
    r.map_err(|source| GitError::Git {
        what: what(),
        source,
    })
}

/// Attach what was being done to an I/O error of the git directory.
fn io_ctx(what: String) -> impl FnOnce(std::io::Error) -> GitError {
    move |source| GitError::Io { what, source }
}

/// The short form of a commit id, for messages.
pub fn short(oid: Oid) -> String {
    oid.to_string()[..12].to_string()
}

/// Opens another [`Repo`] handle on a repository ([`Repo::opener`]).
#[derive(Debug, Clone)]
pub struct RepoOpener {
    git_dir: PathBuf,
    prefix: String,
    shared: Shared,
}

impl RepoOpener {
    pub fn open(&self) -> Result<Repo, GitError> {
        let repo = ctx(Repository::open(&self.git_dir), || {
            format!("cannot open `{}`", self.git_dir.display())
        })?;
        Ok(Repo {
            repo,
            prefix: self.prefix.clone(),
            shared: self.shared,
            shared_fanouts: Default::default(),
        })
    }
}

/// The config repository, opened once per command (and once more per
/// worker thread that writes objects).
pub struct Repo {
    repo: Repository,
    /// The config root's path inside the repository: `""` or `dir/`.
    prefix: String,
    /// The modes of what dify-cfg creates in the repository.
    shared: Shared,
    /// The object folders (`objects/xx`) already given their shared mode.
    shared_fanouts: std::cell::RefCell<std::collections::BTreeSet<u8>>,
}

impl Repo {
    /// Open the repository that holds `root`.
    pub fn discover(root: &Path) -> Result<Repo, GitError> {
        // dify-cfg reads each object about once: libgit2's object cache
        // (256 MB by default) would only grow with the fleet.
        git2::opts::enable_caching(false);
        // A tree is only ever written from the blobs (and trees) this
        // process has just written: libgit2 need not read each entry back
        // to check that it exists.
        git2::opts::strict_object_creation(false);
        let repo = match Repository::discover(root) {
            Ok(repo) => repo,
            Err(source) => {
                let none = std::iter::empty::<&std::ffi::OsStr>();
                if let Ok(git_dir) = Repository::discover_path(root, none) {
                    unsupported_format(&git_dir)?;
                }
                return Err(GitError::NotARepository {
                    root: root.to_path_buf(),
                    source,
                });
            }
        };
        let Some(workdir) = repo.workdir() else {
            return Err(GitError::Bare(repo.path().to_path_buf()));
        };
        let shared = shared_setting(&repo)?;
        let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
        let (root_c, work_c) = (canon(root), canon(workdir));
        let prefix = root_c
            .strip_prefix(&work_c)
            .map(|rel| {
                rel.components()
                    .map(|c| format!("{}/", c.as_os_str().to_string_lossy()))
                    .collect::<String>()
            })
            .unwrap_or_default();
        Ok(Repo {
            repo,
            prefix,
            shared,
            shared_fanouts: Default::default(),
        })
    }

    /// What opens more handles on this repository, from any thread (a
    /// handle is not shared between threads; the repository is).
    pub fn opener(&self) -> RepoOpener {
        RepoOpener {
            git_dir: self.repo.path().to_path_buf(),
            prefix: self.prefix.clone(),
            shared: self.shared,
        }
    }

    /// The commit `rev` names (`HEAD`, a branch, an id, ...).
    pub fn resolve(&self, rev: &str) -> Result<Oid, GitError> {
        let obj = ctx(self.repo.revparse_single(rev), || {
            format!("cannot resolve `{rev}`")
        })?;
        let commit = ctx(obj.peel_to_commit(), || format!("`{rev}` is not a commit"))?;
        Ok(commit.id())
    }

    /// The commit HEAD points at.
    pub fn head(&self) -> Result<Oid, GitError> {
        match self.repo.head() {
            Ok(r) => ctx(r.peel_to_commit(), || "cannot read HEAD".into()).map(|c| c.id()),
            Err(e) if matches!(e.code(), ErrorCode::UnbornBranch | ErrorCode::NotFound) => {
                Err(GitError::NoCommits)
            }
            Err(source) => Err(GitError::Git {
                what: "cannot read HEAD".into(),
                source,
            }),
        }
    }
}

/// Why libgit2 cannot open the repository at `git_dir`, when its format is
/// one it does not support: SHA-256 object names or reftable refs (read
/// from the repository's own config, and a linked worktree's common one).
fn unsupported_format(git_dir: &Path) -> Result<(), GitError> {
    let mut configs = vec![git_dir.join("config")];
    if let Ok(common) = std::fs::read_to_string(git_dir.join("commondir")) {
        configs.push(git_dir.join(common.trim_end()).join("config"));
    }
    for path in configs {
        let Ok(config) = git2::Config::open(&path) else {
            continue;
        };
        let value = |key: &str| config.get_string(key).map(|v| v.to_ascii_lowercase());
        if value("extensions.objectformat").is_ok_and(|v| v != "sha1") {
            return Err(GitError::Unsupported {
                git_dir: git_dir.to_path_buf(),
                what: "SHA-256 object names (extensions.objectFormat)",
                fix: "Keep the config repository in SHA-1, git's default object format: a repository cannot change its object format in place, so create one with `git init --object-format=sha1` and commit the files into it.",
            });
        }
        if value("extensions.refstorage").is_ok_and(|v| v != "files") {
            return Err(GitError::Unsupported {
                git_dir: git_dir.to_path_buf(),
                what: "the reftable ref storage (extensions.refStorage)",
                fix: "Store its refs as files again: `git refs migrate --ref-format=files` (git 2.48 or later; 2.46 and 2.47 refuse a repository with reflogs), or clone it with `git clone --ref-format=files`.",
            });
        }
    }
    Ok(())
}

/// `core.sharedRepository`, as git reads it.
fn shared_setting(repo: &Repository) -> Result<Shared, GitError> {
    let config = ctx(repo.config(), || {
        "cannot read the repository's config".into()
    })?;
    let (value, has_value) = match config.get_entry("core.sharedRepository") {
        Ok(entry) => (
            String::from_utf8_lossy(entry.value_bytes()).into_owned(),
            entry.has_value(),
        ),
        Err(_) => return Ok(Shared::Umask),
    };
    Shared::parse(has_value.then_some(value.as_str())).map_err(|why| GitError::SharedRepository {
        git_dir: repo.commondir().to_path_buf(),
        value,
        why,
    })
}

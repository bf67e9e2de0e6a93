//! The git stage, and the only module that touches git (through git2). It
//! reads inputs from commits, writes site trees and commits as objects,
//! and moves site branches with a compare-and-swap. It never checks out,
//! never writes the index or the working tree, and never fetches or pushes.

mod commits;
mod history;
mod inputs;
pub mod read;
mod refs;
mod tags;
mod trees;

use std::path::{Path, PathBuf};

use git2::{ErrorCode, Oid, Repository};

pub use commits::{CommitInfo, Identity};
pub use refs::RefUpdate;
pub use tags::Archive;
pub use trees::blob_id;

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
}

impl RepoOpener {
    pub fn open(&self) -> Result<Repo, GitError> {
        let repo = ctx(Repository::open(&self.git_dir), || {
            format!("cannot open `{}`", self.git_dir.display())
        })?;
        Ok(Repo {
            repo,
            prefix: self.prefix.clone(),
        })
    }
}

/// The config repository, opened once per command (and once more per
/// worker thread that writes objects).
pub struct Repo {
    repo: Repository,
    /// The config root's path inside the repository: `""` or `dir/`.
    prefix: String,
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
        let repo = Repository::discover(root).map_err(|source| GitError::NotARepository {
            root: root.to_path_buf(),
            source,
        })?;
        let Some(workdir) = repo.workdir() else {
            return Err(GitError::Bare(repo.path().to_path_buf()));
        };
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
        Ok(Repo { repo, prefix })
    }

    /// What opens more handles on this repository, from any thread (a
    /// handle is not shared between threads; the repository is).
    pub fn opener(&self) -> RepoOpener {
        RepoOpener {
            git_dir: self.repo.path().to_path_buf(),
            prefix: self.prefix.clone(),
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

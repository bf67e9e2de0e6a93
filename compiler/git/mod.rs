//! The git stage, and the only module that touches git (through git2). It
//! reads inputs from commits, writes site trees and commits as objects,
//! and moves site branches with a compare-and-swap. It never checks out,
//! never writes the index or the working tree, and never fetches or pushes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use git2::{ErrorCode, ObjectType, Oid, Repository, Signature, TreeWalkMode, TreeWalkResult};

use crate::input::load::{InputSource, MAX_INPUT_BYTES, ReadError, files_under, is_skipped_name};

/// The input directories of a config root: a change under them changes
/// what the compiler reads.
pub const INPUT_DIRS: [&str; 3] = ["profiles", "sites", "templates"];

/// A regular file in a tree dify-cfg writes.
const FILE_MODE: i32 = 0o100_644;
const LINK_MODE: u32 = 0o120_000;
/// How many links in a row `CommitTree` follows.
const MAX_LINK_HOPS: usize = 8;
/// In the git directory: held (flock) while dify-cfg moves branches.
const MOVE_LOCK: &str = "dify-cfg.lock";
/// In the git directory: the refs a branch move is locking, while it runs.
const MOVE_JOURNAL: &str = "dify-cfg-moving";

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

/// The id `bytes` have as a git blob (nothing is written).
pub fn blob_id(bytes: &[u8]) -> Oid {
    Oid::hash_object(ObjectType::Blob, bytes).unwrap_or(Oid::ZERO_SHA1)
}

/// The short form of a commit id, for messages.
pub fn short(oid: Oid) -> String {
    oid.to_string()[..12].to_string()
}

/// A commit as dify-cfg reads it.
#[derive(Debug, Clone)]
pub struct CommitInfo {
    pub id: Oid,
    pub tree: Oid,
    pub parents: Vec<Oid>,
    pub message: String,
    /// The message's trailers (`Key: value` lines of its last paragraph).
    pub trailers: Vec<(String, String)>,
}

impl CommitInfo {
    pub fn trailer(&self, key: &str) -> Option<&str> {
        self.trailers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// The subject line.
    pub fn subject(&self) -> &str {
        self.message.lines().next().unwrap_or_default()
    }
}

/// One compare-and-swap update of a branch: from `old` (None: the branch
/// must not exist) to `new`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefUpdate {
    pub branch: String,
    pub old: Option<Oid>,
    pub new: Oid,
}

/// Who made a source commit, and when: what dify-cfg's commits carry.
/// Plain data (a git2 signature is bound to its thread), so that every
/// worker writing commits can hold one.
#[derive(Debug, Clone)]
pub struct Identity {
    author: Person,
    committer: Person,
}

#[derive(Debug, Clone)]
struct Person {
    name: String,
    email: String,
    when: git2::Time,
}

impl Person {
    /// Names and addresses that are not UTF-8 (git's default encoding)
    /// are read lossily.
    fn of(sig: &Signature<'_>) -> Person {
        Person {
            name: String::from_utf8_lossy(sig.name_bytes()).into_owned(),
            email: String::from_utf8_lossy(sig.email_bytes()).into_owned(),
            when: sig.when(),
        }
    }

    fn signature(&self) -> Result<Signature<'static>, git2::Error> {
        Signature::new(&self.name, &self.email, &self.when)
    }
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
            .filter_map(|s| s.path().ok().map(str::to_string))
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
        ctx(
            tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
                let path = format!("{dir}{}", entry.name().unwrap_or_default());
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
        let mut files = BTreeMap::new();
        for (path, (oid, mode)) in &entries {
            let Some(rel) = path.strip_prefix(&self.prefix) else {
                continue;
            };
            if !INPUT_DIRS.iter().any(|d| rel.starts_with(&format!("{d}/"))) {
                continue;
            }
            let content = if *mode == LINK_MODE {
                follow_link(path, *oid, &self.prefix, &entries, &dirs, &read_blob)
            } else {
                read_blob(*oid)
            };
            files.insert(rel.to_string(), content);
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

    /// The commit a branch points at, if the branch exists.
    pub fn tip(&self, branch: &str) -> Result<Option<Oid>, GitError> {
        match self.repo.find_reference(&format!("refs/heads/{branch}")) {
            Ok(r) => Ok(r.target()),
            Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
            Err(source) => Err(GitError::Git {
                what: format!("cannot read branch `{branch}`"),
                source,
            }),
        }
    }

    /// Branches whose names start with `prefix`, as (rest of the name, tip),
    /// sorted. Nested names (`prefix/a/b`) are not site branches.
    pub fn branches(&self, prefix: &str) -> Result<Vec<(String, Oid)>, GitError> {
        let full = format!("refs/heads/{prefix}");
        let refs = ctx(self.repo.references(), || "cannot list branches".into())?;
        let mut out = Vec::new();
        for r in refs {
            let r = ctx(r, || "cannot list branches".into())?;
            if let (Ok(name), Some(target)) = (r.name(), r.target())
                && let Some(rest) = name.strip_prefix(&full)
                && !rest.is_empty()
                && !rest.contains('/')
            {
                out.push((rest.to_string(), target));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Read a commit's message, trailers, tree and parents.
    pub fn commit_info(&self, id: Oid) -> Result<CommitInfo, GitError> {
        let c = ctx(self.repo.find_commit(id), || {
            format!("cannot read commit {id}")
        })?;
        let message = String::from_utf8_lossy(c.message_bytes()).into_owned();
        let trailers = git2::message_trailers_strs(&message)
            .map(|t| {
                t.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
            .unwrap_or_default();
        Ok(CommitInfo {
            id,
            tree: c.tree_id(),
            parents: c.parent_ids().collect(),
            message,
            trailers,
        })
    }

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
        fn write(repo: &Repository, dir: &Dir<'_>) -> Result<Oid, git2::Error> {
            let mut builder = repo.treebuilder(None)?;
            for (name, bytes) in &dir.files {
                builder.insert(name, repo.blob(bytes)?, FILE_MODE)?;
            }
            for (name, sub) in &dir.dirs {
                builder.insert(name, write(repo, sub)?, 0o040_000)?;
            }
            builder.write()
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
        ctx(write(&self.repo, &top), || {
            "cannot write the site tree".into()
        })
    }

    /// The author and committer of a commit, to sign the commits made
    /// from it.
    pub fn identity(&self, commit: Oid) -> Result<Identity, GitError> {
        let c = ctx(self.repo.find_commit(commit), || {
            format!("cannot read commit {commit}")
        })?;
        Ok(Identity {
            author: Person::of(&c.author()),
            committer: Person::of(&c.committer()),
        })
    }

    /// Write a commit object (no branch moves). Author and committer,
    /// names and times, are the source commit's (`identity`), so the same
    /// source gives the same commit id on any machine.
    pub fn write_commit(
        &self,
        tree: Oid,
        parent: Option<Oid>,
        identity: &Identity,
        message: &str,
    ) -> Result<Oid, GitError> {
        let tree = ctx(self.repo.find_tree(tree), || {
            format!("cannot read tree {tree}")
        })?;
        let parent = match parent {
            Some(p) => Some(ctx(self.repo.find_commit(p), || {
                format!("cannot read commit {p}")
            })?),
            None => None,
        };
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        let (author, committer) = ctx(
            identity
                .author
                .signature()
                .and_then(|a| Ok((a, identity.committer.signature()?))),
            || "cannot sign the commit".into(),
        )?;
        ctx(
            self.repo
                .commit(None, &author, &committer, message, &tree, &parents),
            || "cannot write the commit".into(),
        )
    }

    /// Serialize dify-cfg's branch moves in this repository (an exclusive
    /// `flock` on `.git/dify-cfg.lock`, waited for: a move takes
    /// milliseconds) and clear what a killed earlier move left: its journal
    /// names the refs it was locking, and the `.lock` files of those refs
    /// and of their reflogs are stale, since their writer died (it held the
    /// flock until then).
    /// Without this, one SIGKILL at the wrong moment would make every
    /// later `commit` fail until someone removed the lock files by hand.
    fn lock_moves(&self) -> Result<(std::fs::File, PathBuf), GitError> {
        let dir = self.repo.path();
        let lock_path = dir.join(MOVE_LOCK);
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_ctx(format!("cannot open `{}`", lock_path.display())))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| io_ctx(format!("cannot lock `{}`", lock_path.display()))(e.into()))?;
        let journal = dir.join(MOVE_JOURNAL);
        match std::fs::read_to_string(&journal) {
            Ok(text) => {
                for name in text.lines() {
                    if !(name.starts_with("refs/heads/") && git2::Reference::is_valid_name(name)) {
                        continue;
                    }
                    // The ref's lock, and its reflog's: the dead writer held
                    // the ref's lock, so nobody else was writing its log.
                    for stale in [
                        dir.join(format!("{name}.lock")),
                        dir.join(format!("logs/{name}.lock")),
                    ] {
                        match std::fs::remove_file(&stale) {
                            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                                return Err(io_ctx(format!(
                                    "cannot remove the stale lock `{}`",
                                    stale.display()
                                ))(e));
                            }
                            _ => {}
                        }
                    }
                }
                std::fs::remove_file(&journal)
                    .map_err(io_ctx(format!("cannot remove `{}`", journal.display())))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_ctx(format!("cannot read `{}`", journal.display()))(e)),
        }
        Ok((lock, journal))
    }

    /// Move every branch of `updates` at once, each only if it still points
    /// where it did when the command read it. All refs are locked first; if
    /// one moved or is locked, none is written. (A kill in the middle of
    /// writing them can leave some moved and some not, each at a valid
    /// commit; the next move clears the kill's lock files.)
    pub fn update_branches(&self, updates: &[RefUpdate], reason: &str) -> Result<(), GitError> {
        if updates.is_empty() {
            return Ok(());
        }
        let (_lock, journal) = self.lock_moves()?;
        let names: String = updates
            .iter()
            .map(|u| format!("refs/heads/{}\n", u.branch))
            .collect();
        std::fs::write(&journal, names)
            .map_err(io_ctx(format!("cannot write `{}`", journal.display())))?;
        // The ref locks are all gone when this returns (renamed into place
        // or removed); then the journal goes, whatever the outcome.
        let moved = self.move_locked(updates, reason);
        let removed = std::fs::remove_file(&journal);
        moved?;
        removed.map_err(io_ctx(format!("cannot remove `{}`", journal.display())))
    }

    /// Lock, check and move the branches, as git's own ref files backend
    /// does: each ref's lock file `<ref>.lock` is created exclusively and
    /// holds the new id; once every ref is locked and still points where it
    /// did, the reflogs are written and each lock file is renamed over its
    /// ref. A lock file is closed as soon as it is written. (libgit2's ref
    /// transactions keep every locked ref's file open, with a write buffer,
    /// until the end: a move of 10,000 site branches would need 10,000
    /// descriptors, ten times the usual `ulimit -n`, and 100 MB.)
    fn move_locked(&self, updates: &[RefUpdate], reason: &str) -> Result<(), GitError> {
        let sig = self
            .repo
            .signature()
            .or_else(|_| Signature::now("dify-cfg", "dify-cfg@localhost"));
        let sig = ctx(sig, || "cannot make a reflog signature".into())?;
        let git_dir = self.repo.path();
        let mut locks = RefLocks::default();
        for u in updates {
            let name = format!("refs/heads/{}", u.branch);
            let lock = git_dir.join(format!("{name}.lock"));
            if let Some(dir) = lock.parent() {
                std::fs::create_dir_all(dir).map_err(io_ctx(format!(
                    "cannot lock branch `{}`: cannot create `{}`",
                    u.branch,
                    dir.display()
                )))?;
            }
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&lock);
            let mut file = match file {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return Err(GitError::Locked {
                        branch: u.branch.clone(),
                        lock,
                    });
                }
                Err(e) => {
                    return Err(io_ctx(format!("cannot lock branch `{}`", u.branch))(e));
                }
            };
            locks.held.push(lock.clone());
            std::io::Write::write_all(&mut file, format!("{}\n", u.new).as_bytes())
                .map_err(io_ctx(format!("cannot write `{}`", lock.display())))?;
        }
        // Locked: nobody else can move them now. Check nobody did since
        // they were read, and that each can become a file.
        for u in updates {
            let now = self.tip(&u.branch)?;
            if now != u.old {
                let show = |o: Option<Oid>| o.map_or("no branch".to_string(), short);
                return Err(GitError::Moved {
                    branch: u.branch.clone(),
                    expected: show(u.old),
                    found: show(now),
                });
            }
            let path = git_dir.join(format!("refs/heads/{}", u.branch));
            // An empty directory left by deleted branches below this name
            // goes; one that still holds branches stops the move.
            if path.is_dir() && std::fs::remove_dir(&path).is_err() {
                return Err(GitError::Io {
                    what: format!(
                        "cannot create branch `{}`: branches named `{}/...` exist",
                        u.branch, u.branch
                    ),
                    source: std::io::Error::from(std::io::ErrorKind::IsADirectory),
                });
            }
        }
        let log_all = self.logs_all_branch_moves();
        for u in updates {
            let name = format!("refs/heads/{}", u.branch);
            let logged = log_all || self.repo.reference_has_log(&name).unwrap_or(false);
            if logged {
                ctx(
                    self.repo.reference_ensure_log(&name).and_then(|()| {
                        let mut log = self.repo.reflog(&name)?;
                        log.append(u.new, &sig, Some(reason))?;
                        log.write()
                    }),
                    || format!("cannot write the reflog of branch `{}`", u.branch),
                )?;
            }
        }
        let held = std::mem::take(&mut locks.held);
        for (i, (u, lock)) in updates.iter().zip(&held).enumerate() {
            let path = git_dir.join(format!("refs/heads/{}", u.branch));
            if let Err(e) = std::fs::rename(lock, &path) {
                // Those not moved yet are unlocked again.
                locks.held = held[i..].to_vec();
                return Err(io_ctx(format!("cannot update branch `{}`", u.branch))(e));
            }
        }
        Ok(())
    }

    /// Whether branch moves go in the reflog: `core.logAllRefUpdates`,
    /// on unless set false (a repository with a working tree).
    fn logs_all_branch_moves(&self) -> bool {
        let value = self
            .repo
            .config()
            .and_then(|c| c.get_string("core.logAllRefUpdates"));
        match value {
            Ok(v) => !matches!(
                v.to_ascii_lowercase().as_str(),
                "false" | "no" | "off" | "0" | ""
            ),
            Err(_) => true,
        }
    }
}

/// The ref lock files a branch move created; those it did not rename into
/// place are removed when it ends, whatever the outcome.
#[derive(Default)]
struct RefLocks {
    held: Vec<PathBuf>,
}

impl Drop for RefLocks {
    fn drop(&mut self) {
        for lock in &self.held {
            let _ = std::fs::remove_file(lock);
        }
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

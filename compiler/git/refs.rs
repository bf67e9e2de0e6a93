//! Site branches: reading their tips, and moving many at once with git's
//! lock-file protocol (a lock file per ref, checked, then renamed over it),
//! serialized by a flock and a journal that lets the next move clear the
//! locks a killed one left.

use std::path::PathBuf;

use git2::{ErrorCode, Oid, Signature};

use super::{GitError, Repo, ctx, io_ctx, short};

/// In the git directory: held (flock) while dify-cfg moves branches.
const MOVE_LOCK: &str = "dify-cfg.lock";
/// In the git directory: the refs a branch move is locking, while it runs.
const MOVE_JOURNAL: &str = "dify-cfg-moving";

/// One compare-and-swap update of a branch: from `old` (None: the branch
/// must not exist) to `new`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefUpdate {
    pub branch: String,
    pub old: Option<Oid>,
    pub new: Oid,
}

impl Repo {
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
        crate::base::crash::point(crate::base::crash::REFS_OBJECTS);
        let (_lock, journal) = self.lock_moves()?;
        crate::base::crash::point(crate::base::crash::REFS_LOCKED);
        let names: String = updates
            .iter()
            .map(|u| format!("refs/heads/{}\n", u.branch))
            .collect();
        std::fs::write(&journal, names)
            .map_err(io_ctx(format!("cannot write `{}`", journal.display())))?;
        crate::base::crash::point(crate::base::crash::REFS_JOURNAL);
        // The ref locks are all gone when this returns (renamed into place
        // or removed); then the journal goes, whatever the outcome.
        let moved = self.move_locked(updates, reason);
        let removed = std::fs::remove_file(&journal);
        crate::base::crash::point(crate::base::crash::REFS_DONE);
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
            crate::base::crash::point(crate::base::crash::REFS_REF_LOCKED);
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
                crate::base::crash::point(crate::base::crash::REFS_REFLOG);
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
            crate::base::crash::point(crate::base::crash::REFS_MOVED);
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

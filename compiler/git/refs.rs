//! Site branches: reading their tips, and moving many at once with git's
//! lock-file protocol (a lock file per ref, checked, then renamed over it),
//! serialized by a flock and a journal that lets the next move clear the
//! locks a killed one left ([`super::stale`]). Branches, their locks and
//! reflogs live in the repository's common directory, which every linked
//! worktree shares.

use std::collections::BTreeSet;
use std::path::PathBuf;

use git2::{ErrorCode, Oid, Signature};

use super::stale::{Journal, lock_path, recover};
use super::{GitError, Repo, ctx, io_ctx, short};

/// In the common git directory: held (flock) while dify-cfg moves branches.
const MOVE_LOCK: &str = "dify-cfg.lock";
/// In the common git directory: what a branch move is locking, while it
/// runs.
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

    /// The commit a ref that is not a branch points at (peeled), if the
    /// ref exists: e.g. `refs/dify-cfg/applied/sites/clinic-01`, which a
    /// site's pull agent pushes.
    pub fn ref_commit(&self, name: &str) -> Result<Option<Oid>, GitError> {
        match self.repo.find_reference(name) {
            Ok(r) => ctx(r.peel_to_commit(), || {
                format!("`{name}` does not point at a commit")
            })
            .map(|c| Some(c.id())),
            Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
            Err(source) => Err(GitError::Git {
                what: format!("cannot read `{name}`"),
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
    /// `flock` on `dify-cfg.lock` in the common git directory, waited for:
    /// a move takes milliseconds) and clear what a killed earlier move
    /// left: the locks its journal proves it created ([`recover`]).
    /// Without this, one SIGKILL at the wrong moment would make every
    /// later `commit` fail until someone removed the lock files by hand.
    fn lock_moves(&self) -> Result<(std::fs::File, PathBuf), GitError> {
        let dir = self.repo.commondir();
        let lock_path = dir.join(MOVE_LOCK);
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_ctx(format!("cannot open `{}`", lock_path.display())))?;
        self.shared
            .adjust(&lock_path)
            .map_err(io_ctx(format!("cannot open `{}`", lock_path.display())))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| io_ctx(format!("cannot lock `{}`", lock_path.display()))(e.into()))?;
        let journal = dir.join(MOVE_JOURNAL);
        match std::fs::read_to_string(&journal) {
            Ok(text) => recover(dir, &journal, &text)?,
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
        let names: Vec<String> = updates
            .iter()
            .map(|u| format!("refs/heads/{}", u.branch))
            .collect();
        let mut journal = Journal::begin(&journal, self.shared, &names)?;
        // The ref locks are all gone when this returns (renamed into place
        // or removed); then the journal goes, whatever the outcome.
        crate::base::crash::point(crate::base::crash::REFS_JOURNAL);
        let moved = self.move_locked(updates, reason, &mut journal);
        let removed = journal.end();
        crate::base::crash::point(crate::base::crash::REFS_DONE);
        moved?;
        removed
    }

    /// Lock, check and move the branches, as git's own ref files backend
    /// does: each ref's lock file `<ref>.lock` is created exclusively and
    /// holds the new id; once every ref is locked and still points where it
    /// did, the reflogs are written and each lock file is renamed over its
    /// ref. A lock file is closed as soon as it is written. (libgit2's ref
    /// transactions keep every locked ref's file open, with a write buffer,
    /// until the end: a move of 10,000 site branches would need 10,000
    /// descriptors, ten times the usual `ulimit -n`, and 100 MB.)
    fn move_locked(
        &self,
        updates: &[RefUpdate],
        reason: &str,
        journal: &mut Journal,
    ) -> Result<(), GitError> {
        let sig = self
            .repo
            .signature()
            .or_else(|_| Signature::now("dify-cfg", "dify-cfg@localhost"));
        let sig = ctx(sig, || "cannot make a reflog signature".into())?;
        let git_dir = self.repo.commondir();
        let mut locks = RefLocks::default();
        for u in updates {
            let name = format!("refs/heads/{}", u.branch);
            let lock = lock_path(git_dir, &name);
            if let Some(dir) = lock.parent() {
                self.shared
                    .create_dir_all(git_dir, dir)
                    .map_err(io_ctx(format!(
                        "cannot lock branch `{}`: cannot create `{}`",
                        u.branch,
                        dir.display()
                    )))?;
            }
            let content = format!("{}\n", u.new);
            if !journal.create_lock(git_dir, &name, &content)? {
                return Err(GitError::Locked {
                    branch: u.branch.clone(),
                    lock,
                });
            }
            locks.held.push(lock);
            crate::base::crash::point(crate::base::crash::REFS_REF_LOCKED);
        }
        // Locked: nobody else can move them now. Check nobody did since
        // they were read, and that no branch is in another's way.
        self.check_names(updates)?;
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
            // goes; one that still holds something stops the move.
            if path.is_dir() && std::fs::remove_dir(&path).is_err() {
                return Err(GitError::Io {
                    what: format!(
                        "cannot create branch `{}`: `{}` is a folder that still holds files (no branches: locks of branches below it?)",
                        u.branch,
                        path.display()
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
                self.share_reflog(&name);
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

    /// Refuse a move that would put a branch beside another whose name
    /// continues it (`sites/a` and `sites/a/old`, either way round): git
    /// keeps a branch as a path, so it cannot hold both. Every ref name is
    /// read through libgit2, packed (after `git gc`, in a fresh clone) and
    /// loose alike, and the move's own branches count too.
    fn check_names(&self, updates: &[RefUpdate]) -> Result<(), GitError> {
        let mut names: BTreeSet<String> = updates
            .iter()
            .map(|u| format!("refs/heads/{}", u.branch))
            .collect();
        let mut refs = ctx(self.repo.references(), || "cannot list the refs".into())?;
        names.extend(refs.names().filter_map(Result::ok).map(str::to_string));
        let conflict = |branch: &str, other: &str| GitError::NameConflict {
            branch: branch.to_string(),
            other: other.trim_start_matches("refs/heads/").to_string(),
        };
        for u in updates {
            let full = format!("refs/heads/{}", u.branch);
            let below = format!("{full}/");
            if let Some(other) = names.range(below.clone()..).next()
                && other.starts_with(&below)
            {
                return Err(conflict(&u.branch, other));
            }
            let mut above = full.as_str();
            while let Some(i) = above.rfind('/') {
                above = &above[..i];
                if above.len() <= "refs/heads".len() {
                    break;
                }
                if names.contains(above) {
                    return Err(conflict(&u.branch, above));
                }
            }
        }
        Ok(())
    }

    /// Give the reflog of `name` and its folders git's shared modes.
    fn share_reflog(&self, name: &str) {
        let mut at = self.repo.commondir().join("logs");
        for part in name.split('/') {
            at.push(part);
            self.shared.adjust_if_ours(&at);
        }
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

//! Archiving branches: each as an annotated tag that keeps its tip, then
//! the branch deleted, compare-and-swap. A tag is never overwritten.

use git2::{ErrorCode, Oid};

use super::{GitError, Repo, ctx, short};

/// A branch to archive: the tag `tag` (or `tag-2`, `tag-3`, ... when that
/// name holds another commit) on `tip`, with `message`, signed by the
/// committer of `signer` (a source commit: the same facts give the same
/// tag object on any machine); then the branch goes, if it still ends in
/// `tip`.
#[derive(Debug, Clone)]
pub struct Archive {
    pub branch: String,
    pub tip: Oid,
    pub tag: String,
    pub message: String,
    pub signer: Oid,
}

impl Repo {
    /// Archive `archives` and delete their branches: every branch is
    /// locked (git's `<ref>.lock`) and checked first; if one moved or is
    /// locked, nothing is written. Returns each archive's tag name. A tag
    /// that already keeps the tip (an earlier run killed before the branch
    /// went) is used again.
    pub fn archive_branches(&self, archives: &[Archive]) -> Result<Vec<String>, GitError> {
        if archives.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = ctx(self.repo.transaction(), || {
            "cannot start a ref transaction".into()
        })?;
        for a in archives {
            let name = format!("refs/heads/{}", a.branch);
            if let Err(e) = tx.lock_ref(&name) {
                let lock = self.repo.path().join(format!("{name}.lock"));
                return Err(match e.code() {
                    ErrorCode::Locked => GitError::Locked {
                        branch: a.branch.clone(),
                        lock,
                    },
                    _ => GitError::Git {
                        what: format!("cannot lock branch `{}`", a.branch),
                        source: e,
                    },
                });
            }
        }
        for a in archives {
            let now = self.tip(&a.branch)?;
            if now != Some(a.tip) {
                return Err(GitError::Moved {
                    branch: a.branch.clone(),
                    expected: short(a.tip),
                    found: now.map_or("no branch".to_string(), short),
                });
            }
        }
        let mut tags = Vec::new();
        for a in archives {
            tags.push(self.archive_tag(a)?);
            ctx(tx.remove(&format!("refs/heads/{}", a.branch)), || {
                format!("cannot delete branch `{}`", a.branch)
            })?;
        }
        ctx(tx.commit(), || "cannot delete the archived branches".into())?;
        Ok(tags)
    }

    /// The tag that keeps `a.tip`: the first of `a.tag`, `a.tag-2`, ...
    /// that is free (created now) or already names that commit.
    fn archive_tag(&self, a: &Archive) -> Result<String, GitError> {
        for n in 1..=u32::MAX {
            let name = match n {
                1 => a.tag.clone(),
                n => format!("{}-{n}", a.tag),
            };
            match self.repo.find_reference(&format!("refs/tags/{name}")) {
                Ok(r) => {
                    if r.peel_to_commit().is_ok_and(|c| c.id() == a.tip) {
                        return Ok(name);
                    }
                }
                Err(e) if e.code() == ErrorCode::NotFound => {
                    let target = ctx(self.repo.find_object(a.tip, None), || {
                        format!("cannot read commit {}", a.tip)
                    })?;
                    let signer = ctx(self.repo.find_commit(a.signer), || {
                        format!("cannot read commit {}", a.signer)
                    })?;
                    let tagger = signer.committer().to_owned();
                    ctx(
                        self.repo.tag(&name, &target, &tagger, &a.message, false),
                        || format!("cannot create tag `{name}`"),
                    )?;
                    return Ok(name);
                }
                Err(source) => {
                    return Err(GitError::Git {
                        what: format!("cannot read tag `{name}`"),
                        source,
                    });
                }
            }
        }
        Err(GitError::Git {
            what: format!("cannot archive branch `{}`", a.branch),
            source: git2::Error::from_str("every tag name is taken"),
        })
    }
}

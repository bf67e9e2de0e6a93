//! Site branches and the commits dify-cfg makes on them: the `Compiler`
//! trailer that marks them, the dify-cfg commit a branch tip stands for,
//! the trailers that vouch for a tip's tree (its own, a merged commit's,
//! or those in a squash merge's message), and the branch a site's tree
//! lives on.

use git2::Oid;

use crate::emit::{COMPILER_NAME, COMPILER_VERSION};
use crate::git::{CommitInfo, GitError, Repo};
use crate::validate::ValidSite;

pub use crate::emit::ROLLOUT_DIR;

/// The trailer every dify-cfg commit carries: `Compiler: dify-cfg <version>`.
pub const COMPILER_TRAILER: &str = "Compiler";
/// The trailer naming the commit whose inputs a tree was compiled from.
pub const SOURCE_TRAILER: &str = "Source-Commit";
/// The trailer `Source-Dirty: true` of what was compiled from uncommitted
/// inputs (`commit --allow-dirty`).
pub const DIRTY_TRAILER: &str = "Source-Dirty";

pub fn compiler_id() -> String {
    format!("{COMPILER_NAME} {COMPILER_VERSION}")
}

/// Whether a commit was made by dify-cfg (any version).
pub fn made_by_dify_cfg(info: &CommitInfo) -> bool {
    info.trailer(COMPILER_TRAILER).is_some_and(is_dify_cfg)
}

/// The dify-cfg commit a branch tip stands for: the tip itself, or, when a
/// pull request was merged with a merge commit, the merged dify-cfg commit
/// whose tree the merge kept. `None`: someone else made the tip (a squash
/// merge too: only `audit`, which recompiles, takes trailers from a body).
pub fn managed_commit(repo: &Repo, tip: Oid) -> Result<(CommitInfo, Option<CommitInfo>), GitError> {
    let info = repo.commit_info(tip)?;
    let managed = record_of(repo, &info)?
        .filter(|r| r.how != Vouched::Squash)
        .map(|r| r.commit);
    Ok((info, managed))
}

/// How far `audit` looks down a branch's first parents for the last
/// dify-cfg commit under commits made by hand.
const MAX_HAND_COMMITS: usize = 1000;

/// The trailers that vouch for a branch tip's tree: which source it was
/// compiled from, by which compiler. `audit` proves them by recompiling.
#[derive(Debug, Clone)]
pub struct Record {
    /// The commit whose message carries them, with them as its trailers
    /// (a squash merge's are those of its body).
    pub commit: CommitInfo,
    pub how: Vouched,
}

/// Where a tip's trailers come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vouched {
    /// The tip is a dify-cfg commit.
    Tip,
    /// The tip is a merge commit whose tree is that of the dify-cfg
    /// commit it merged ([`Record::commit`]).
    Merge,
    /// The tip's message carries dify-cfg's trailers in its body, as a
    /// squash merge of a rollout pull request does (the forge's title
    /// first, a co-author trailer after them).
    Squash,
}

fn is_dify_cfg(compiler: &str) -> bool {
    compiler.split(' ').next() == Some(COMPILER_NAME)
}

/// The `Key: value` lines of the last paragraph of `message` that names
/// dify-cfg as its `Compiler` (a squash merge's message holds the
/// squashed commits' messages, each with its trailers).
fn body_trailers(message: &str) -> Option<Vec<(String, String)>> {
    let mut paragraphs: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for line in message.lines() {
        let line = line.trim();
        if line.is_empty() {
            paragraphs.push(Vec::new());
        } else if let Some((k, v)) = line.split_once(": ")
            && !k.is_empty()
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && let Some(last) = paragraphs.last_mut()
        {
            last.push((k.to_string(), v.trim().to_string()));
        }
    }
    paragraphs.into_iter().rev().find(|p| {
        p.iter()
            .any(|(k, v)| k.eq_ignore_ascii_case(COMPILER_TRAILER) && is_dify_cfg(v))
    })
}

/// What vouches for a commit's tree: its own dify-cfg trailers (in the
/// trailer block, or in the body of a squash merge), or a merged dify-cfg
/// commit with the same tree. `None`: nothing does (made by hand).
pub fn record_of(repo: &Repo, info: &CommitInfo) -> Result<Option<Record>, GitError> {
    if made_by_dify_cfg(info) {
        return Ok(Some(Record {
            commit: info.clone(),
            how: Vouched::Tip,
        }));
    }
    for p in info.parents.iter().skip(1) {
        let merged = repo.commit_info(*p)?;
        if made_by_dify_cfg(&merged) && merged.tree == info.tree {
            return Ok(Some(Record {
                commit: merged,
                how: Vouched::Merge,
            }));
        }
    }
    Ok(body_trailers(&info.message).map(|trailers| Record {
        commit: CommitInfo {
            trailers,
            ..info.clone()
        },
        how: Vouched::Squash,
    }))
}

/// The record of the nearest commit below `info` on its first-parent
/// line that has one: what a branch was before commits made by hand.
pub fn last_record(repo: &Repo, info: &CommitInfo) -> Result<Option<Record>, GitError> {
    let mut next = info.parents.first().copied();
    for _ in 0..MAX_HAND_COMMITS {
        let Some(id) = next else {
            return Ok(None);
        };
        let commit = repo.commit_info(id)?;
        if let Some(record) = record_of(repo, &commit)? {
            return Ok(Some(record));
        }
        next = commit.parents.first().copied();
    }
    Ok(None)
}

/// The branch a site's reviewed tree lives on.
pub fn site_branch(prefix: Option<&str>, v: &ValidSite) -> String {
    format!(
        "{}{}",
        prefix.unwrap_or(&v.site.gitops.branch_prefix),
        v.site.name
    )
}

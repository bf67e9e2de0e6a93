//! Site branches and the commits dify-cfg makes on them: the `Compiler`
//! trailer that marks them, the dify-cfg commit a branch tip stands for,
//! and the branch a site's tree lives on.

use git2::Oid;

use crate::emit::{COMPILER_NAME, COMPILER_VERSION};
use crate::git::{CommitInfo, GitError, Repo};
use crate::validate::ValidSite;

/// Where rollout pull-request bodies go, under the out directory.
pub const ROLLOUT_DIR: &str = "_rollout";

/// The trailer every dify-cfg commit carries: `Compiler: dify-cfg <version>`.
pub const COMPILER_TRAILER: &str = "Compiler";

pub fn compiler_id() -> String {
    format!("{COMPILER_NAME} {COMPILER_VERSION}")
}

/// Whether a commit was made by dify-cfg (any version).
pub fn made_by_dify_cfg(info: &CommitInfo) -> bool {
    info.trailer(COMPILER_TRAILER)
        .is_some_and(|v| v.split(' ').next() == Some(COMPILER_NAME))
}

/// The dify-cfg commit a branch tip stands for: the tip itself, or, when a
/// pull request was merged with a merge commit, the merged dify-cfg commit
/// whose tree the merge kept. `None`: someone else made the tip.
pub fn managed_commit(repo: &Repo, tip: Oid) -> Result<(CommitInfo, Option<CommitInfo>), GitError> {
    let info = repo.commit_info(tip)?;
    if made_by_dify_cfg(&info) {
        return Ok((info.clone(), Some(info)));
    }
    for p in info.parents.iter().skip(1) {
        let merged = repo.commit_info(*p)?;
        if made_by_dify_cfg(&merged) && merged.tree == info.tree {
            return Ok((info, Some(merged)));
        }
    }
    Ok((info, None))
}

/// The branch a site's reviewed tree lives on.
pub fn site_branch(prefix: Option<&str>, v: &ValidSite) -> String {
    format!(
        "{}{}",
        prefix.unwrap_or(&v.site.gitops.branch_prefix),
        v.site.name
    )
}

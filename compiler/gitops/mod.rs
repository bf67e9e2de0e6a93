//! The GitOps stage: site trees onto site branches. [`commit`] writes each
//! site's tree as a commit on `sites/<site>` (or on a rollout branch with a
//! pull-request body, [`message`]); [`diff`] compares a fresh render with
//! each site branch; [`audit`] recompiles each branch's source commit from
//! git objects and compares; [`changes`] says what changed between two
//! trees of a site, for people. Git access goes through [`crate::git`];
//! rendering through [`crate::driver`].

pub mod audit;
pub mod branch;
pub mod changes;
pub mod commit;
pub mod diff;
pub mod downgrade;
pub mod message;
pub mod retire;
pub mod rollout;

pub use audit::{AuditEntry, Verdict, audit_branches};
pub use commit::{CommitPlan, Committer, Prepared, commit_sites, prepare, publish, rollout_tree};
pub use diff::{SiteDiff, diff_sites};
pub use retire::{Removed, removed_branches, retire};
pub use rollout::{WaveHold, wave_hold};

use crate::base::diagnostic::Diagnostics;
use crate::emit::EmitError;
use crate::git::GitError;

/// Why a GitOps operation did not go through (the command exits 2).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Emit(#[from] EmitError),
    /// Sites failed to render: their diagnostics.
    #[error("rendering failed with {} errors", .0.error_count())]
    Render(Diagnostics),
    /// Sites whose branches may not be written, each with the reason.
    #[error("{}", .0.join("\n"))]
    Refused(Vec<String>),
    /// Input files differ from HEAD and dirty commits were not allowed.
    #[error(
        "the config repository has uncommitted input files:\n{}\ncommit them first (an audit needs the source commit), or pass --allow-dirty",
        dirty_list(.0)
    )]
    Dirty(Vec<String>),
    /// A worker thread could not open its own repository handle (the
    /// error stays with the worker, which may be asked again: its text).
    #[error("{0}")]
    Worker(String),
    #[error("`{0}` is not a valid branch name")]
    InvalidBranch(String),
}

/// The first ten dirty paths, indented, and how many more there are.
fn dirty_list(dirty: &[String]) -> String {
    let mut list: Vec<String> = dirty.iter().take(10).map(|p| format!("  {p}")).collect();
    if dirty.len() > 10 {
        list.push(format!("  ... and {} more", dirty.len() - 10));
    }
    list.join("\n")
}

//! `diff`: each selected site rendered afresh and compared with the tip of
//! its site branch, on the worker that rendered it (with that worker's
//! repository handle), so that a fleet's trees are never held at once.

use git2::Oid;

use crate::driver::{Compiled, for_each_worked};
use crate::emit::SiteTree;
use crate::git::{GitError, Repo};
use crate::gitops::Error;
use crate::gitops::branch::site_branch;
use crate::gitops::changes::{Files, Summary, summarize_tree};
use crate::validate::ValidSite;

/// One site's fresh tree against its branch.
pub struct SiteDiff<'a> {
    pub site: &'a ValidSite,
    pub branch: String,
    /// The branch's tip; `None` when there is no branch yet.
    pub tip: Option<Oid>,
    /// The files at the tip.
    pub old: Files,
    /// The fresh render.
    pub tree: SiteTree,
    pub summary: Summary,
}

impl SiteDiff<'_> {
    pub fn differs(&self) -> bool {
        !self.summary.is_empty()
    }
}

/// Compare each of the `chosen` sites with its branch `<prefix><site>`
/// (`prefix`: each site's `gitops.branch-prefix` when `None`); `show`
/// turns each comparison into what the caller keeps (on the worker, so in
/// parallel), and the results come back in site order with whether the
/// site differs.
pub fn diff_sites<T: Send>(
    repo: &Repo,
    compiled: &Compiled,
    chosen: &[&ValidSite],
    prefix: Option<&str>,
    show: impl Fn(&SiteDiff<'_>) -> T + Sync,
) -> Result<Vec<(bool, T)>, Error> {
    let mut shown = Vec::with_capacity(chosen.len());
    let opener = repo.opener();
    let handed = for_each_worked(
        &compiled.inputs,
        chosen,
        || opener.open(),
        |worker, v, tree| {
            let repo = worker.as_ref().map_err(|e| Error::Worker(e.to_string()))?;
            let branch = site_branch(prefix, v);
            let tip = repo.tip(&branch)?;
            let old = tip_files(repo, tip)?;
            let summary = summarize_tree(&old, &tree, &v.site);
            let diff = SiteDiff {
                site: v,
                branch,
                tip,
                old,
                tree,
                summary,
            };
            Ok((diff.differs(), show(&diff)))
        },
        |_, one| {
            shown.push(one);
            Ok::<(), Error>(())
        },
    );
    if handed.diagnostics.has_errors() {
        return Err(Error::Render(handed.diagnostics));
    }
    if let Some(e) = handed.failed {
        return Err(e);
    }
    Ok(shown)
}

/// The files at a branch tip (none without a tip).
fn tip_files(repo: &Repo, tip: Option<Oid>) -> Result<Files, GitError> {
    match tip {
        Some(t) => {
            let info = repo.commit_info(t)?;
            repo.tree_files(info.tree)
        }
        None => Ok(Files::new()),
    }
}

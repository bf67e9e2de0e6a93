//! Branches of removed sites. Every `commit` lists the branches under the
//! fleet's site-branch prefixes whose site is no longer in the sources;
//! `commit --retire` archives each one dify-cfg made as an annotated tag
//! `retired/<branch>` (`-2`, `-3`, ... when that name keeps another
//! commit; a tag is never overwritten) and deletes the branch,
//! compare-and-swap. A branch whose tip someone else made is left alone.

use std::collections::BTreeSet;

use git2::Oid;
use serde::Serialize;

use crate::git::{Archive, Repo};
use crate::gitops::Error;
use crate::gitops::branch::managed_commit;
use crate::gitops::message::retire_message;
use crate::validate::ValidSite;

/// Where retired branches are kept: the tag `retired/<branch>`.
pub const RETIRED_PREFIX: &str = "retired/";

/// A branch whose site is no longer in the sources.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Removed {
    pub site: String,
    pub branch: String,
    pub tip: String,
    #[serde(skip)]
    pub tip_id: Oid,
    /// dify-cfg made its tip (only such a branch is retired).
    pub managed: bool,
    /// The tag that keeps its tip, once retired.
    pub retired_as: Option<String>,
}

/// The branches `<prefix><name>` whose site `<name>` is not in `fleet`
/// (every site of the sources), under `branch_prefix` or else under each
/// prefix the fleet's sites use.
pub fn removed_branches(
    repo: &Repo,
    fleet: &[ValidSite],
    branch_prefix: Option<&str>,
) -> Result<Vec<Removed>, Error> {
    let prefixes: BTreeSet<&str> = match branch_prefix {
        Some(p) => BTreeSet::from([p]),
        None => fleet
            .iter()
            .map(|v| v.site.gitops.branch_prefix.as_str())
            .collect(),
    };
    let names: BTreeSet<&str> = fleet.iter().map(|v| v.site.name.as_str()).collect();
    let mut removed = Vec::new();
    for prefix in prefixes {
        for (site, tip) in repo.branches(prefix)? {
            if names.contains(site.as_str()) {
                continue;
            }
            let (_, managed) = managed_commit(repo, tip)?;
            removed.push(Removed {
                branch: format!("{prefix}{site}"),
                site,
                tip: tip.to_string(),
                tip_id: tip,
                managed: managed.is_some(),
                retired_as: None,
            });
        }
    }
    Ok(removed)
}

/// Archive and delete the branches of `removed` that dify-cfg made, all
/// or none; each gets its tag in `retired_as`. `head` is the source
/// commit; `dirty`: the sources are the working tree's.
pub fn retire(repo: &Repo, removed: &mut [Removed], head: Oid, dirty: bool) -> Result<(), Error> {
    let names: BTreeSet<String> = removed
        .iter()
        .filter(|r| r.managed)
        .map(|r| r.site.clone())
        .collect();
    let removals = repo.removals(head, &names)?;
    let archives: Vec<Archive> = removed
        .iter()
        .filter(|r| r.managed)
        .map(|r| {
            // The commit that deleted the site's file; else the sources
            // the site was found missing in.
            let (source, dirty) = match removals.get(&r.site) {
                Some(c) => (*c, false),
                None => (head, dirty),
            };
            Archive {
                branch: r.branch.clone(),
                tip: r.tip_id,
                tag: format!("{RETIRED_PREFIX}{}", r.branch),
                message: retire_message(&r.site, &r.branch, r.tip_id, source, dirty),
                signer: source,
            }
        })
        .collect();
    let tags = repo.archive_branches(&archives)?;
    for (r, tag) in removed.iter_mut().filter(|r| r.managed).zip(tags) {
        r.retired_as = Some(tag);
    }
    Ok(())
}

//! Rollout waves: `commit --pr` proposes a site of wave N only when every
//! site of an earlier wave has its rollout merged and, where its box
//! reports back, applied, and none is proposed by the same command.
//! Merged: the rollout tip is in the site branch's history (fast-forward,
//! merge commit), or the site branch's tip has the rollout tip's tree
//! (squash, rebase). Applied: a box whose pull agent reports back pushes
//! the commit it confirmed to `refs/dify-cfg/applied/<site branch>`; where
//! that ref exists, it must be the site branch's tip, a descendant of it,
//! or a commit with its tree. Where it does not, merged is enough (the box
//! does not report back). `--ignore-waves` skips the check.

use std::collections::BTreeMap;

use git2::Oid;
use serde::Serialize;

use crate::git::Repo;
use crate::gitops::Error;
use crate::gitops::branch::site_branch;
use crate::gitops::commit::{CommitPlan, Prepared};
use crate::validate::ValidSite;

/// A rollout branch of an earlier wave that is not merged yet.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct OpenRollout {
    pub site: String,
    pub wave: u32,
    /// `rollout/<site>`.
    pub branch: String,
    /// The site branch it is not merged into.
    pub base: String,
    /// The rollout branch's tip now (none: it does not exist yet).
    pub tip: Option<String>,
    /// This very command would open or move it.
    pub proposed: bool,
    /// Merged, but the site's box reports that it runs another commit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unapplied: Option<Unapplied>,
}

/// Where a site's pull agent pushes the commit it applied and confirmed,
/// followed by the site branch's name.
pub const APPLIED_PREFIX: &str = "refs/dify-cfg/applied/";

/// A merged rollout the site's box has not applied yet.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Unapplied {
    /// `refs/dify-cfg/applied/<site branch>`.
    #[serde(rename = "ref")]
    pub applied_ref: String,
    /// The commit the box reports it applied.
    pub applied: String,
    /// The site branch's tip, which it has not.
    pub site_tip: String,
}

/// A site whose proposal waits for an earlier wave.
#[derive(Debug, Clone, Serialize)]
pub struct HeldSite {
    pub site: String,
    pub wave: u32,
}

/// Why `commit --pr` moves no branch: sites of a later wave would be
/// proposed while rollouts of an earlier wave are open.
#[derive(Debug, Clone, Serialize)]
pub struct WaveHold {
    /// The sites that would have been proposed, held back.
    pub held: Vec<HeldSite>,
    /// The earlier waves' rollouts they wait for.
    pub open: Vec<OpenRollout>,
}

/// Whether `commit --pr` may go ahead: `None`, or the sites it would
/// propose too early and the open rollouts they wait for. `fleet` is every
/// site of the sources (not only the selected ones).
pub fn wave_hold(
    repo: &Repo,
    fleet: &[ValidSite],
    prepared: &Prepared,
    plan: &CommitPlan<'_>,
) -> Result<Option<WaveHold>, Error> {
    let Some(prefix) = plan.rollout_prefix else {
        return Ok(None);
    };
    let proposed: BTreeMap<&str, u32> = prepared
        .sites
        .iter()
        .filter(|s| s.changed())
        .map(|s| (s.site.as_str(), s.wave))
        .collect();
    let Some(&latest) = proposed.values().max() else {
        return Ok(None);
    };
    let mut open = Vec::new();
    for v in fleet.iter().filter(|v| v.site.wave < latest) {
        let name = v.site.name.as_str();
        let branch = format!("{prefix}{name}");
        let base = site_branch(plan.branch_prefix, v);
        let tip = repo.tip(&branch)?;
        let proposing = proposed.contains_key(name);
        let mut unapplied_by_box = None;
        if !proposing && tip.map_or(Ok(true), |t| merged(repo, t, &base))? {
            unapplied_by_box = unapplied(repo, &base)?;
            if unapplied_by_box.is_none() {
                continue;
            }
        }
        open.push(OpenRollout {
            unapplied: unapplied_by_box,
            site: name.to_string(),
            wave: v.site.wave,
            branch,
            base,
            tip: tip.map(|t| t.to_string()),
            proposed: proposing,
        });
    }
    let held: Vec<HeldSite> = proposed
        .iter()
        .filter(|(_, w)| open.iter().any(|o| o.wave < **w))
        .map(|(s, w)| HeldSite {
            site: s.to_string(),
            wave: *w,
        })
        .collect();
    if held.is_empty() {
        return Ok(None);
    }
    open.sort_by(|a, b| (a.wave, &a.site).cmp(&(b.wave, &b.site)));
    Ok(Some(WaveHold { held, open }))
}

/// Whether the rollout tip `tip` is merged into the site branch `base`.
fn merged(repo: &Repo, tip: Oid, base: &str) -> Result<bool, Error> {
    let Some(base_tip) = repo.tip(base)? else {
        return Ok(false);
    };
    if repo.is_ancestor(tip, base_tip)? {
        return Ok(true);
    }
    Ok(repo.commit_info(base_tip)?.tree == repo.commit_info(tip)?.tree)
}

/// Whether the box of the site branch `base` reports that it runs
/// something else than the branch's tip: `None` when it does not report
/// back (no `refs/dify-cfg/applied/<base>`) or runs the tip, a descendant
/// of it, or a commit with the tip's tree.
fn unapplied(repo: &Repo, base: &str) -> Result<Option<Unapplied>, Error> {
    let applied_ref = format!("{APPLIED_PREFIX}{base}");
    let (Some(applied), Some(site_tip)) = (repo.ref_commit(&applied_ref)?, repo.tip(base)?) else {
        return Ok(None);
    };
    if applied == site_tip
        || repo.is_ancestor(site_tip, applied)?
        || repo.commit_info(applied)?.tree == repo.commit_info(site_tip)?.tree
    {
        return Ok(None);
    }
    Ok(Some(Unapplied {
        applied_ref,
        applied: applied.to_string(),
        site_tip: site_tip.to_string(),
    }))
}

/// At most ten items, then how many more there are.
fn first_ten(items: impl ExactSizeIterator<Item = String>) -> Vec<String> {
    let n = items.len();
    let mut out: Vec<String> = items.take(10).collect();
    if n > 10 {
        out.push(format!("... and {} more", n - 10));
    }
    out
}

impl std::fmt::Display for WaveHold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let waves = |w: &mut dyn Iterator<Item = u32>| {
            let set: std::collections::BTreeSet<u32> = w.collect();
            set.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let unapplied = self.open.iter().any(|o| o.unapplied.is_some());
        writeln!(
            f,
            "wave {} waits for wave {}: these rollout branches are not merged into their site branches{}:",
            waves(&mut self.held.iter().map(|h| h.wave)),
            waves(&mut self.open.iter().map(|o| o.wave)),
            if unapplied {
                ", or not yet applied by their sites' boxes"
            } else {
                ""
            },
        )?;
        let short = |t: &str| t.get(..12).unwrap_or(t).to_string();
        let open = self.open.iter().map(|o| {
            let state = match (&o.tip, o.proposed, &o.unapplied) {
                (_, false, Some(u)) => format!(
                    "merged into `{}` (at {}), not yet applied: the box reports {} in `{}`",
                    o.base,
                    short(&u.site_tip),
                    short(&u.applied),
                    u.applied_ref
                ),
                (_, true, _) => "this command would propose it".to_string(),
                (Some(t), false, None) => {
                    format!("ends in {}, not merged into `{}`", short(t), o.base)
                }
                (None, false, None) => format!("not merged into `{}`", o.base),
            };
            format!("  {} (wave {}): {state}", o.branch, o.wave)
        });
        for line in first_ten(open) {
            writeln!(f, "{line}")?;
        }
        let held = self
            .held
            .iter()
            .map(|h| format!("{} (wave {})", h.site, h.wave));
        writeln!(f, "held back: {}", first_ten(held).join(", "))?;
        let first = self
            .open
            .iter()
            .filter(|o| o.proposed)
            .map(|o| o.wave)
            .min();
        let next = match first {
            Some(w) => format!(
                "propose one wave at a time (`dify-cfg commit --pr --wave {w}`), merge its pull requests, then the next wave"
            ),
            None if unapplied => "merge those pull requests first (for one closed unmerged, delete its rollout branch) and wait until each box has applied its site branch (its pull agent pushes what it applied to `refs/dify-cfg/applied/<site branch>`; fetch those refs), then run this again".to_string(),
            None => "merge those pull requests first (for one closed unmerged, delete its rollout branch), then run this again".to_string(),
        };
        write!(
            f,
            "no branch moved; {next}; `--ignore-waves` proposes regardless"
        )
    }
}

//! Rollout waves: `commit --pr` proposes a site of wave N only when no
//! site of an earlier wave has a rollout branch that is not merged into
//! its site branch, and none is proposed by the same command. Merged: the
//! rollout tip is in the site branch's history (fast-forward, merge
//! commit), or the site branch's tip has the rollout tip's tree (squash,
//! rebase). `--ignore-waves` skips the check.

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
        if !proposing && tip.map_or(Ok(true), |t| merged(repo, t, &base))? {
            continue;
        }
        open.push(OpenRollout {
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
        writeln!(
            f,
            "wave {} waits for wave {}: these rollout branches are not merged into their site branches:",
            waves(&mut self.held.iter().map(|h| h.wave)),
            waves(&mut self.open.iter().map(|o| o.wave)),
        )?;
        let open = self.open.iter().map(|o| {
            let state = match (&o.tip, o.proposed) {
                (_, true) => "this command would propose it".to_string(),
                (Some(t), false) => format!(
                    "ends in {}, not merged into `{}`",
                    t.get(..12).unwrap_or(t),
                    o.base
                ),
                (None, false) => format!("not merged into `{}`", o.base),
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
            None => "merge those pull requests first (for one closed unmerged, delete its rollout branch), then run this again".to_string(),
        };
        write!(
            f,
            "no branch moved; {next}; `--ignore-waves` proposes regardless"
        )
    }
}

//! `dify-cfg report`: one static HTML page of the fleet for the people who
//! approve and audit it (the page itself is `report_page.rs`). Every number
//! on it comes from the functions the compiler decides by: the budgets from
//! `validate::headroom` (what `check` shows), who can reach what from the
//! planned firewall rules and nginx locations (what the box runs), and in
//! a git repository the pending rollout and audit verdict from the code
//! `diff` and `audit` run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::cli::exit::Failure;
use crate::cli::output::{Output, Report, Text};
use crate::cli::report_page::{Exposure, Reach, Rollout, SiteFacts, page, write_page};
use crate::driver::Compiled;
use crate::git::Repo;
use crate::gitops::{audit_branches, diff_sites};
use crate::model::{ServiceKind, Site, Target};
use crate::plan::{CHAIN_DOCKER, CHAIN_INPUT, Family, firewall, nginx};
use crate::validate::{ValidSite, headroom};

/// Where the page goes: a file (default `out/report.html` under the root)
/// or, with `-`, stdout.
pub struct ReportOptions {
    pub out: Option<PathBuf>,
}

/// What `report` did.
pub struct ReportDone {
    /// Where the page was written; `None`: it is `html`, for stdout.
    pub written: Option<PathBuf>,
    pub html: String,
    pub sites: usize,
    pub waves: usize,
}

pub fn run(root: &Path, opts: &ReportOptions, out: &Output) -> Result<ReportDone, Failure> {
    let compiled = Compiled::read(root);
    out.diagnostics(&compiled.diagnostics, &compiled.inputs);
    if compiled.diagnostics.has_errors() {
        return Err(Failure::Diagnosed);
    }
    let mut rollouts = rollouts(root, &compiled, out)?;
    let facts: Vec<SiteFacts> = compiled
        .sites
        .iter()
        .map(|s| {
            let mut facts = site_facts(&s.site);
            facts.rollout = rollouts.remove(&s.site.name);
            facts
        })
        .collect();
    let html = page(&facts);
    let waves = facts.iter().map(|f| f.wave).collect::<BTreeSet<_>>().len();
    let written = match opts.out.as_deref() {
        Some(p) if p == Path::new("-") => None,
        Some(p) => Some(p.to_path_buf()),
        None => Some(root.join("out").join("report.html")),
    };
    if let Some(path) = &written {
        write_page(path, &html)?;
    }
    Ok(ReportDone {
        written,
        html,
        sites: facts.len(),
        waves,
    })
}

/// The facts of a validated site.
pub fn site_facts(site: &Site) -> SiteFacts {
    SiteFacts {
        name: site.name.clone(),
        description: site.description.clone(),
        wave: site.wave,
        target: match site.target {
            Target::Compose => "compose",
            Target::Helm => "helm",
        },
        dify: site.dify_version.clone(),
        profiles: site.profile_chain.to_vec(),
        memory: site
            .services
            .values()
            .map(|s| {
                let bytes = s.memory.0.saturating_mul(u64::from(s.replicas));
                (s.kind.key(), s.replicas, bytes)
            })
            .collect(),
        room: headroom(site),
        exposure: (site.target == Target::Compose).then(|| exposure(site)),
        rollout: None,
    }
}

/// When the root is in a git repository: each site's pending rollout (what
/// `diff` says against its site branch: files and risk flags) and its
/// branch's audit verdict against the sources at `HEAD` (what `audit`
/// says). Outside a repository, none.
fn rollouts(
    root: &Path,
    compiled: &Compiled,
    out: &Output,
) -> Result<BTreeMap<String, Rollout>, Failure> {
    let Ok(repo) = Repo::discover(root) else {
        return Ok(BTreeMap::new());
    };
    let chosen: Vec<&ValidSite> = compiled.sites.iter().collect();
    let shown = diff_sites(&repo, compiled, &chosen, None, |d| Rollout {
        branch: d.branch.clone(),
        exists: d.tip.is_some(),
        files: d.summary.files.len(),
        risks: d.summary.risks.iter().map(ToString::to_string).collect(),
        verdict: None,
        notes: Vec::new(),
    })
    .map_err(|e| out.gitops_failure(e, &compiled.inputs))?;
    let mut by_site: BTreeMap<String, Rollout> = chosen
        .iter()
        .zip(shown)
        .map(|(v, (_, r))| (v.site.name.clone(), r))
        .collect();
    let mut by_prefix: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for v in &chosen {
        by_prefix
            .entry(&v.site.gitops.branch_prefix)
            .or_default()
            .push(v.site.name.clone());
    }
    for (prefix, sites) in by_prefix {
        match audit_branches(
            &repo,
            prefix,
            &sites,
            "HEAD",
            &crate::driver::progress::Silent,
        ) {
            Ok(audit) => {
                for e in audit.entries {
                    if let Some(r) = by_site.get_mut(&e.site) {
                        r.verdict = Some(e.verdict.as_str());
                        r.notes = e.notes;
                    }
                }
            }
            Err(e) => {
                for site in &sites {
                    if let Some(r) = by_site.get_mut(site) {
                        r.notes = vec![format!("the audit could not run: {e}")];
                    }
                }
            }
        }
    }
    Ok(by_site)
}

/// Who reaches what, read off the firewall rules (both families) and the
/// nginx locations the plan gives the site.
fn exposure(site: &Site) -> Exposure {
    let mut ports: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut closed = true;
    for family in [Family::V4, Family::V6] {
        let rules = firewall(site, family).rules;
        for chain in [CHAIN_INPUT, CHAIN_DOCKER] {
            let last = rules.iter().rfind(|r| r.chain == chain);
            closed &= last.is_some_and(|r| r.target == "DROP" && r.source.is_none());
        }
        for r in rules.iter().filter(|r| r.target != "DROP") {
            let Some(src) = &r.source else { continue };
            let comment = r.comment.strip_prefix("dify-cfg: ").unwrap_or(&r.comment);
            let what = comment
                .strip_suffix(&format!(" from {src}"))
                .unwrap_or(comment);
            let line = match (r.protocol, r.dport.or(r.ctorigdstport)) {
                (Some(proto), Some(port)) => format!("{proto} {port}: {what}"),
                _ => what.to_string(),
            };
            ports.entry(src.clone()).or_default().push(line);
        }
    }
    let mut routes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if site.services.contains_key(&ServiceKind::Nginx) {
        for loc in nginx(site).locations {
            let path = match loc.modifier {
                "" => loc.path.clone(),
                m => format!("{m} {}", loc.path),
            };
            for net in loc.allow {
                routes.entry(net).or_default().push(path.clone());
            }
        }
    }
    let net = &site.network;
    let roles_of = |n: &str| {
        let mut roles = Vec::new();
        if net.lan.is_some_and(|l| l.to_string() == n)
            || net.lan6.is_some_and(|l| l.to_string() == n)
        {
            roles.push("site LAN");
        }
        if net.admin.iter().any(|a| a.to_string() == n) {
            roles.push("admin network");
        }
        if net.ssh_from.iter().any(|a| a.to_string() == n) {
            roles.push("ssh-from");
        }
        roles
    };
    let networks: BTreeSet<&String> = ports.keys().chain(routes.keys()).collect();
    let mut rows: Vec<Reach> = networks
        .into_iter()
        .map(|n| Reach {
            network: n.clone(),
            roles: roles_of(n),
            ports: dedup(ports.get(n)),
            routes: dedup(routes.get(n)),
        })
        .collect();
    let rank = |r: &Reach| match r.roles.first() {
        Some(&"site LAN") => 0,
        Some(&"admin network") => 1,
        Some(_) => 2,
        None => 3,
    };
    rows.sort_by(|a, b| (rank(a), &a.network).cmp(&(rank(b), &b.network)));
    Exposure { rows, closed }
}

/// The entries in their first order, each once.
fn dedup(list: Option<&Vec<String>>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    list.into_iter()
        .flatten()
        .filter(|s| seen.insert(s.as_str()))
        .cloned()
        .collect()
}

impl Report for ReportDone {
    fn text(&self) -> Text {
        let stdout = match &self.written {
            None => self.html.clone(),
            Some(p) => format!(
                "wrote {}: {} sites in {} waves\n",
                p.display(),
                self.sites,
                self.waves
            ),
        };
        Text {
            stdout,
            stderr: String::new(),
        }
    }

    fn json(&self) -> serde_json::Value {
        match &self.written {
            Some(p) => serde_json::json!({
                "written": p.display().to_string(),
                "sites": self.sites,
                "waves": self.waves,
            }),
            None => serde_json::json!({
                "html": self.html,
                "sites": self.sites,
                "waves": self.waves,
            }),
        }
    }
}

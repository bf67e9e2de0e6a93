//! `audit`: each site branch against a recompile of the source commit it
//! names (drift: files edited on the branch) and against what the sources at
//! the audited revision render (stale). Sources are compiled from git
//! objects, once per distinct commit; only blob ids are compared.

use std::collections::{BTreeMap, HashMap};

use git2::Oid;
use serde::Serialize;

use crate::driver::{Compiled, render_chunks_with};
use crate::emit::SiteTree;
use crate::git::{Repo, blob_id, short};
use crate::gitops::Error;
use crate::gitops::branch::{COMPILER_TRAILER, compiler_id, managed_commit};
use crate::gitops::changes::differing_keys;
use crate::validate::ValidSite;

/// An audit verdict for one site branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The branch is exactly what its source commit compiles to, and what
    /// the sources at the audited revision compile to.
    Reproducible,
    /// The branch differs from what its source commit compiles to: files
    /// were edited on the branch (or the source cannot be compiled).
    Drift,
    /// The branch reproduces its source, but the sources at the audited
    /// revision would render something else.
    Stale,
    /// The branch's tip was not made by dify-cfg.
    Unmanaged,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Reproducible => "reproducible",
            Verdict::Drift => "drift",
            Verdict::Stale => "stale",
            Verdict::Unmanaged => "unmanaged",
        }
    }
}

/// The audit of one branch.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct AuditEntry {
    pub site: String,
    pub branch: String,
    pub tip: String,
    pub verdict: Verdict,
    pub source_commit: Option<String>,
    pub compiler: Option<String>,
    /// Files whose bytes differ from a recompile of the source commit.
    pub drifted: Vec<String>,
    /// Files the sources at the audited revision would change.
    pub stale: Vec<String>,
    pub notes: Vec<String>,
}

/// Audit every branch `<prefix><site>` (or the named sites') against the
/// sources at `rev`. Sources are compiled once per distinct commit.
pub fn audit_branches(
    repo: &Repo,
    prefix: &str,
    sites: &[String],
    rev: &str,
) -> Result<Vec<AuditEntry>, Error> {
    let rev_id = repo.resolve(rev)?;
    let mut branches = repo.branches(prefix)?;
    if !sites.is_empty() {
        for s in sites {
            if !branches.iter().any(|(name, _)| name == s) {
                return Err(Error::NoBranch {
                    prefix: prefix.to_string(),
                    site: s.clone(),
                });
            }
        }
        branches.retain(|(name, _)| sites.contains(name));
    }
    // Read every tip, then group the work by source commit.
    let mut entries = Vec::new();
    // Per entry: the branch's files, and its source commit if it is here.
    let mut tips: Vec<(BlobIds, Option<Oid>)> = Vec::new();
    let mut by_source: BTreeMap<Oid, Vec<String>> = BTreeMap::new();
    for (site, tip) in &branches {
        let (tip_info, managed) = managed_commit(repo, *tip)?;
        let info = managed.as_ref().unwrap_or(&tip_info);
        let files = repo.tree_blob_ids(info.tree)?;
        let mut source = None;
        let mut e = AuditEntry {
            site: site.clone(),
            branch: format!("{prefix}{site}"),
            tip: tip.to_string(),
            verdict: Verdict::Reproducible,
            source_commit: info.trailer("Source-Commit").map(str::to_string),
            compiler: info.trailer(COMPILER_TRAILER).map(str::to_string),
            drifted: Vec::new(),
            stale: Vec::new(),
            notes: Vec::new(),
        };
        if managed.is_none() {
            e.verdict = Verdict::Unmanaged;
            e.notes.push(format!(
                "tip \"{}\" has no `Compiler: dify-cfg` trailer",
                tip_info.subject()
            ));
        } else if let Some(src) = &e.source_commit {
            // Most branches share a source commit: one found already is
            // not resolved again.
            match Oid::from_str(src)
                .ok()
                .filter(|o| by_source.contains_key(o) || repo.resolve(&o.to_string()).is_ok())
            {
                Some(o) => {
                    by_source.entry(o).or_default().push(site.clone());
                    source = Some(o);
                }
                None => e.notes.push(format!(
                    "source commit {src} is not in this repository (fetch it?)"
                )),
            }
        }
        if tip_info.id != info.id {
            e.notes.push(format!(
                "merge {} of dify-cfg commit {}",
                short(tip_info.id),
                short(info.id)
            ));
        }
        entries.push(e);
        tips.push((files, source));
    }
    by_source.entry(rev_id).or_default();
    let audited: Vec<&str> = entries
        .iter()
        .filter(|e| e.verdict != Verdict::Unmanaged)
        .map(|e| e.site.as_str())
        .collect();
    let mut renders: HashMap<Oid, BTreeMap<String, Result<BlobIds, String>>> = HashMap::new();
    for (commit, names) in &by_source {
        let compiled = Compiled::at_commit(repo, *commit)?;
        let mut wanted: Vec<&str> = names.iter().map(String::as_str).collect();
        if *commit == rev_id {
            wanted.extend(audited.iter().copied());
            wanted.sort_unstable();
            wanted.dedup();
        }
        renders.insert(*commit, render_ids(&compiled, &wanted));
    }
    let current = &renders[&rev_id];
    let ours = compiler_id();
    for (e, (files, source)) in entries.iter_mut().zip(&tips) {
        if e.verdict == Verdict::Unmanaged {
            continue;
        }
        if e.compiler.as_deref() != Some(ours.as_str()) {
            e.notes.push(format!(
                "made by {}, this is {ours}: differences may come from the compiler",
                e.compiler.as_deref().unwrap_or("?")
            ));
        }
        // Drift: the branch against a recompile of its own source.
        let source = source.and_then(|o| renders.get(&o));
        match (e.source_commit.is_some(), source) {
            (false, _) => e
                .notes
                .push("no Source-Commit trailer (an empty start of a site branch)".into()),
            (true, None) => e.verdict = Verdict::Drift,
            (true, Some(r)) => match r.get(&e.site) {
                Some(Ok(expected)) => {
                    e.drifted = differing(expected, files);
                    if !e.drifted.is_empty() {
                        e.verdict = Verdict::Drift;
                    }
                }
                Some(Err(why)) => {
                    e.verdict = Verdict::Drift;
                    e.notes
                        .push(format!("cannot recompile the source commit: {why}"));
                }
                None => e.verdict = Verdict::Drift,
            },
        }
        // Stale: the branch against what the audited revision renders.
        match current.get(&e.site) {
            Some(Ok(now)) => e.stale = differing(files, now),
            Some(Err(why)) => e.notes.push(format!("at {rev}: {why}")),
            None => {}
        }
        if e.verdict == Verdict::Reproducible && (!e.stale.is_empty() || e.source_commit.is_none())
        {
            e.verdict = Verdict::Stale;
        }
    }
    Ok(entries)
}

/// Render the named sites; each gets the git blob id of each of its
/// files (the trees themselves are dropped as they come), or the reason
/// it has none.
fn render_ids(compiled: &Compiled, names: &[&str]) -> BTreeMap<String, Result<BlobIds, String>> {
    let mut out = BTreeMap::new();
    let mut chosen = Vec::new();
    let by_name: HashMap<&str, &ValidSite> = compiled
        .sites
        .iter()
        .map(|v| (v.site.name.as_str(), v))
        .collect();
    for name in names {
        match by_name.get(name).copied() {
            Some(v) => chosen.push(v),
            None => {
                let why = if compiled.diagnostics.has_errors() {
                    format!(
                        "the sources have errors ({} diagnostics), site `{name}` does not compile",
                        compiled.diagnostics.error_count()
                    )
                } else {
                    format!("the sources have no site `{name}`")
                };
                out.insert((*name).to_string(), Err(why));
            }
        }
    }
    // Each worker hashes the trees it rendered; only the ids are kept.
    let ids_of = |_: &mut (), _: &ValidSite, tree: SiteTree| -> BlobIds {
        tree.files
            .iter()
            .map(|(p, b)| (p.clone(), blob_id(b)))
            .collect()
    };
    let rendered = render_chunks_with(
        &compiled.inputs,
        &chosen,
        || (),
        ids_of,
        |v, r| {
            let ids = r.map_err(|d| format!("rendering fails ({} diagnostics)", d.error_count()));
            out.insert(v.site.name.clone(), ids);
            true
        },
    );
    if rendered.is_err() {
        for v in chosen {
            out.insert(
                v.site.name.clone(),
                Err("the templates do not compile".into()),
            );
        }
    }
    out
}

/// A tree's files as git blob ids, by path.
pub type BlobIds = BTreeMap<String, Oid>;

/// Paths whose blob differs between two trees (or that only one has).
fn differing(a: &BlobIds, b: &BlobIds) -> Vec<String> {
    differing_keys(a, b).cloned().collect()
}

//! `audit`: each site branch proven, or not, against a recompile. A
//! branch passes only when its tip tree, entry by entry (bytes, modes, and
//! nothing more), is what dify-cfg compiles from the source its trailers
//! record, and what the sources at the audited revision compile to. Every
//! other branch gets a failing verdict that says why; a branch that cannot
//! be read or traced is one entry of the report, never its end. Sources
//! are compiled from git objects, once per distinct commit; only blob ids
//! are compared.

mod judge;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use git2::Oid;
use serde::Serialize;

use crate::driver::{Compiled, Progress, render_chunks_with};
use crate::emit::SiteTree;
use crate::git::{Repo, blob_id};
use crate::gitops::Error;
use crate::validate::ValidSite;

use judge::{Branch, Sources, read_branch};

/// An audit verdict for one site branch. Only `reproducible` passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The branch is exactly what its source commit compiles to, and what
    /// the sources at the audited revision compile to.
    Reproducible,
    /// The branch's tree is not what its source compiles to: files edited,
    /// added or removed on the branch, a mode changed, a submodule or a
    /// link added (named), or commits made by hand on top.
    Drift,
    /// The branch reproduces its source, but the sources at the audited
    /// revision would render something else.
    Stale,
    /// The branch's tip was not made by dify-cfg, and nothing below it
    /// says what its tree should be, or the tip changes nothing.
    Unmanaged,
    /// The branch's site is not in the sources at the audited revision.
    Orphan,
    /// The sources at the audited revision have the site; it has no branch.
    Missing,
    /// The branch's tip or trailers cannot be read or traced to a source
    /// that compiles (the note says which).
    Unverifiable,
    /// The sources at the audited revision do not compile: whether the
    /// branch is current cannot be told.
    Unknown,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Reproducible => "reproducible",
            Verdict::Drift => "drift",
            Verdict::Stale => "stale",
            Verdict::Unmanaged => "unmanaged",
            Verdict::Orphan => "orphan",
            Verdict::Missing => "missing",
            Verdict::Unverifiable => "unverifiable",
            Verdict::Unknown => "unknown",
        }
    }

    pub fn passes(self) -> bool {
        self == Verdict::Reproducible
    }
}

/// The audit of one branch.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct AuditEntry {
    pub site: String,
    pub branch: String,
    /// The branch's tip; `None` for a missing branch.
    pub tip: Option<String>,
    pub verdict: Verdict,
    pub source_commit: Option<String>,
    pub compiler: Option<String>,
    /// Entries that differ from a recompile of the source commit.
    pub drifted: Vec<String>,
    /// Files the sources at the audited revision would change.
    pub stale: Vec<String>,
    /// Why the verdict is what it is, and what else was seen.
    pub notes: Vec<String>,
}

impl AuditEntry {
    fn new(site: &str, branch: String, tip: Option<Oid>) -> AuditEntry {
        AuditEntry {
            site: site.to_string(),
            branch,
            tip: tip.map(|t| t.to_string()),
            verdict: Verdict::Reproducible,
            source_commit: None,
            compiler: None,
            drifted: Vec::new(),
            stale: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// A failing verdict, unless one was given already (the first
    /// failure found is the verdict; later ones are notes).
    fn fail(&mut self, verdict: Verdict, note: String) {
        if self.verdict.passes() {
            self.verdict = verdict;
        }
        self.notes.push(note);
    }
}

/// The report: every branch's entry (and every missing one), in site
/// order, and the sources at the audited revision, whose diagnostics say
/// why entries are `unknown`.
pub struct Audit {
    pub entries: Vec<AuditEntry>,
    pub current: Compiled,
}

/// Audit every branch `<prefix><site>` (or the named sites') against the
/// sources at `rev`. Sources are compiled once per distinct commit.
pub fn audit_branches(
    repo: &Repo,
    prefix: &str,
    sites: &[String],
    rev: &str,
    progress: &dyn Progress,
) -> Result<Audit, Error> {
    let rev_id = repo.resolve(rev)?;
    let current = Compiled::at_commit(repo, rev_id)?;
    let mut branches = repo.branches(prefix)?;
    if !sites.is_empty() {
        branches.retain(|(name, _)| sites.contains(name));
    }
    let mut sources = Sources::new();
    let mut work: Vec<Branch> = branches
        .iter()
        .map(|(site, tip)| read_branch(repo, &mut sources, prefix, site, *tip))
        .collect();
    // Group the sites by the commit they are compiled from; the audited
    // revision renders every branch's site (when it compiles).
    let mut by_source: BTreeMap<Oid, BTreeSet<&str>> = BTreeMap::new();
    for b in &work {
        if let Some(o) = b.source() {
            by_source.entry(o).or_default().insert(&b.entry.site);
        }
    }
    let fine = !current.diagnostics.has_errors();
    let at_rev = by_source.entry(rev_id).or_default();
    if fine {
        at_rev.extend(
            work.iter()
                .filter(|b| b.tree.is_some())
                .map(|b| b.entry.site.as_str()),
        );
    }
    let mut renders: HashMap<Oid, Renders> = HashMap::new();
    progress.more(by_source.values().map(BTreeSet::len).sum());
    for (commit, names) in &by_source {
        let names: Vec<&str> = names.iter().copied().collect();
        let rendered = if *commit == rev_id {
            render_ids(&current, &names, progress)
        } else {
            match Compiled::at_commit(repo, *commit) {
                Ok(compiled) => render_ids(&compiled, &names, progress),
                Err(e) => {
                    progress.done(names.len());
                    names
                        .iter()
                        .map(|n| {
                            (
                                n.to_string(),
                                Err(format!("its inputs cannot be read: {e}")),
                            )
                        })
                        .collect()
                }
            }
        };
        renders.insert(*commit, rendered);
    }
    let now = Current {
        rev,
        errors: current.diagnostics.error_count(),
        sites: current.sites.iter().map(|v| v.site.name.as_str()).collect(),
        renders: &renders[&rev_id],
    };
    for b in &mut work {
        b.judge_source(&renders);
        b.judge_current(&now);
    }
    let mut entries: Vec<AuditEntry> = work.into_iter().map(|b| b.entry).collect();
    entries.extend(missing(&entries, &current, &now, prefix, sites));
    entries.sort_by(|a, b| a.site.cmp(&b.site));
    Ok(Audit { entries, current })
}

/// The sources at the audited revision, as the verdicts read them.
struct Current<'a> {
    rev: &'a str,
    /// How many errors they have (then nothing is judged against them).
    errors: usize,
    /// Their sites.
    sites: HashSet<&'a str>,
    /// The renders of the audited branches' sites.
    renders: &'a Renders,
}

/// The entries of sites without a branch: the sites of the sources at
/// `rev` whose branches live under `prefix` (or, with `--site`, the named
/// ones), when those sources compile; a named site always.
fn missing(
    entries: &[AuditEntry],
    current: &Compiled,
    now: &Current<'_>,
    prefix: &str,
    named: &[String],
) -> Vec<AuditEntry> {
    let have: BTreeSet<&str> = entries.iter().map(|e| e.site.as_str()).collect();
    let (rev, fine) = (now.rev, now.errors == 0);
    let mut wanted: BTreeSet<&str> = named.iter().map(String::as_str).collect();
    if named.is_empty() && fine {
        wanted.extend(
            current
                .sites
                .iter()
                .filter(|v| v.site.gitops.branch_prefix == prefix)
                .map(|v| v.site.name.as_str()),
        );
    }
    wanted
        .into_iter()
        .filter(|s| !have.contains(s))
        .map(|site| {
            let branch = format!("{prefix}{site}");
            let mut e = AuditEntry::new(site, branch.clone(), None);
            let why = if now.sites.contains(site) {
                format!(
                    "the sources at {rev} have site `{site}` but there is no branch `{branch}`: `dify-cfg commit --site {site}` makes it"
                )
            } else if fine {
                format!("there is no branch `{branch}`, and the sources at {rev} have no site `{site}`")
            } else {
                format!("there is no branch `{branch}`")
            };
            e.fail(Verdict::Missing, why);
            e
        })
        .collect()
}

/// Each site's rendered files as blob ids, or why it has none.
type Renders = BTreeMap<String, Result<BlobIds, String>>;

/// Render the named sites; each gets the git blob id of each of its
/// files (the trees themselves are dropped as they come), or the reason
/// it has none.
fn render_ids(compiled: &Compiled, names: &[&str], progress: &dyn Progress) -> Renders {
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
                progress.done(1);
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
            progress.done(1);
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

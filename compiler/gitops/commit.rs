//! `commit`: each selected site's tree as a commit on its site branch (or
//! on a rollout branch on top of it, with a pull-request body). Objects are
//! written on the worker that rendered the site ([`Committer::site`]); the
//! outcomes are collected in site order ([`Preparer`]); the branches move
//! together, all or none ([`publish`]).

use std::collections::BTreeMap;

use git2::Oid;
use serde::Serialize;

use crate::base::diagnostic::{Diagnostic, Diagnostics};
use crate::driver::{Compiled, Progress, for_each_worked, input_digest};
use crate::emit::{EmitError, OutDir, SiteTree};
use crate::git::{GitError, Identity, RefUpdate, Repo, short};
use crate::gitops::Error;
use crate::gitops::branch::{DIRTY_TRAILER, ROLLOUT_DIR, managed_commit, site_branch};
use crate::gitops::changes::{Files, Summary, summarize_tree};
use crate::gitops::downgrade::downgrade;
use crate::gitops::message::{Proposal, commit_message, pr_body, start_message};
use crate::validate::ValidSite;

/// What `commit` does for one site.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct SiteCommit {
    pub site: String,
    pub wave: u32,
    /// The branch written: `sites/<site>`, or `rollout/<site>` with `--pr`.
    pub branch: String,
    /// With `--pr`: the site branch the pull request goes into.
    pub base: Option<String>,
    #[serde(skip)]
    pub old_tip: Option<Oid>,
    /// The new commit, when there is one.
    #[serde(serialize_with = "ser_oid")]
    pub commit: Option<Oid>,
    /// The commit's subject, and the pull request's title with `--pr`.
    pub subject: String,
    /// How many files change; kept when the summary's details are not.
    #[serde(skip)]
    pub files_changed: usize,
    /// What changes (empty when the report does not show it: see
    /// [`Preparer::new`]).
    #[serde(flatten)]
    pub summary: Summary,
    /// With `--pr`: the pull request's markdown body.
    #[serde(skip)]
    pub pr_body: Option<String>,
    /// `--pr`: the path of the body file, relative to the out directory.
    pub pr_body_file: Option<String>,
    /// The files are those of the tip, which was committed from inputs
    /// that were not committed (`Source-Dirty`): the new commit records
    /// the clean source commit they are now in.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub recommit: bool,
}

impl SiteCommit {
    /// A site's entry, before any commit is written for it.
    fn new(
        v: &ValidSite,
        branch: String,
        base: Option<String>,
        old_tip: Option<Oid>,
        subject: String,
        summary: Summary,
    ) -> SiteCommit {
        SiteCommit {
            site: v.site.name.clone(),
            wave: v.site.wave,
            branch,
            base,
            old_tip,
            commit: None,
            subject,
            files_changed: summary.files.len(),
            summary,
            pr_body: None,
            pr_body_file: None,
            recommit: false,
        }
    }

    /// Whether the branch moves (or, in a dry run, would move).
    pub fn changed(&self) -> bool {
        (self.files_changed > 0 || self.recommit)
            && (self.commit.is_none() || self.commit != self.old_tip)
    }
}

fn ser_oid<S: serde::Serializer>(o: &Option<Oid>, s: S) -> Result<S::Ok, S::Error> {
    match o {
        Some(o) => s.serialize_str(&o.to_string()),
        None => s.serialize_none(),
    }
}

/// A site `commit` left alone (without `--force`): its branch ends in a
/// commit dify-cfg did not make. The other sites are committed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Skipped {
    pub site: String,
    pub branch: String,
    /// The branch's tip, which dify-cfg did not make.
    pub tip: String,
    pub reason: String,
}

/// Everything `commit` will write: the objects are already in the
/// repository (harmless until a branch points at them); the branch
/// updates are applied by [`publish`], all or none.
#[derive(Default)]
pub struct Prepared {
    pub sites: Vec<SiteCommit>,
    pub updates: Vec<RefUpdate>,
    /// Sites not committed, each with the reason (in site order).
    pub skipped: Vec<Skipped>,
}

/// How to commit.
#[derive(Debug, Clone, Default)]
pub struct CommitPlan<'a> {
    /// Overrides each site's `gitops.branch-prefix`.
    pub branch_prefix: Option<&'a str>,
    /// `Some(prefix)`: commit to `<prefix><site>` on top of the site branch.
    pub rollout_prefix: Option<&'a str>,
    /// Write to branches whose tips dify-cfg did not make.
    pub force: bool,
    /// Write no objects (changes are found by comparing the files).
    pub dry_run: bool,
    /// The source commit was dirty: say so in a trailer.
    pub dirty: bool,
}

/// Work out each site's commit and write its objects (not with `dry_run`).
pub fn prepare(
    repo: &Repo,
    source: Oid,
    sites: &[(&ValidSite, SiteTree)],
    plan: &CommitPlan<'_>,
) -> Result<Prepared, Error> {
    let committer = Committer { source, plan };
    let identity = repo.identity(source)?;
    let mut p = Preparer::new(true);
    for (v, tree) in sites {
        p.record(committer.site(repo, &identity, v, tree)?);
    }
    p.finish()
}

/// What one site's commit comes to.
pub enum Outcome {
    /// The site's commit (or that it has none), and the branch moves it
    /// needs.
    Site {
        entry: Box<SiteCommit>,
        updates: Vec<RefUpdate>,
    },
    /// Refused without `--force`: why.
    Refused(String),
    /// Left alone without `--force`; the other sites go on.
    Skipped(Skipped),
    /// Refused for a mistake of the site's inputs (a downgrade): nothing
    /// moves.
    Diagnosed(Diagnostic),
}

/// The per-site work of `commit`: read the branch, write the site's
/// objects, summarize the change. It holds no repository handle (a handle
/// is not shared between threads), so each worker passes its own, opened
/// with [`crate::git::RepoOpener::open`].
pub struct Committer<'a> {
    pub source: Oid,
    pub plan: &'a CommitPlan<'a>,
}

impl Committer<'_> {
    /// The branch a site's commit goes to, and with `--pr` the site branch
    /// the pull request goes into.
    fn branches(&self, v: &ValidSite) -> (String, Option<String>) {
        let site_branch = site_branch(self.plan.branch_prefix, v);
        match self.plan.rollout_prefix {
            Some(p) => (format!("{p}{}", v.site.name), Some(site_branch)),
            None => (site_branch, None),
        }
    }

    /// The commit of one site (its objects written unless a dry run);
    /// `identity` is the source commit's ([`Repo::identity`]).
    pub fn site(
        &self,
        repo: &Repo,
        identity: &Identity,
        v: &ValidSite,
        tree: &SiteTree,
    ) -> Result<Outcome, Error> {
        let (plan, source) = (self.plan, self.source);
        if let Some(p) = plan.branch_prefix
            && p != v.site.gitops.branch_prefix
            && !plan.force
        {
            return Ok(Outcome::Refused(format!(
                "site `{}` pulls `{}{}` (its gitops.branch-prefix), not `{p}{}`: the site would never see this commit; change gitops.branch-prefix, or pass --force",
                v.site.name, v.site.gitops.branch_prefix, v.site.name, v.site.name
            )));
        }
        let (branch, base) = self.branches(v);
        for b in std::iter::once(&branch).chain(base.iter()) {
            if !git2::Reference::is_valid_name(&format!("refs/heads/{b}")) {
                return Err(Error::InvalidBranch(b.clone()));
            }
        }
        let old_tip = repo.tip(&branch)?;
        // The tip's commit, when it is read anyway (to check who made it).
        let mut tip_info = None;
        if let Some(tip) = old_tip
            && !plan.force
        {
            let (info, managed) = managed_commit(repo, tip)?;
            if managed.is_none() {
                return Ok(Outcome::Skipped(Skipped {
                    site: v.site.name.clone(),
                    reason: format!(
                        "ends in {} (\"{}\"), which dify-cfg did not make; pass --force to commit on top of it",
                        short(tip),
                        info.subject()
                    ),
                    branch,
                    tip: tip.to_string(),
                }));
            }
            tip_info = Some(info);
        }
        let mut updates = Vec::new();
        // The commit's parent, and the tip whose tree the new one is
        // compared with (the site branch's, also with `--pr`).
        let (parent, compared) = match &base {
            None => (old_tip, old_tip),
            Some(base_branch) => {
                let base_tip = repo.tip(base_branch)?;
                let parent = match base_tip {
                    Some(t) => Some(t),
                    // A dry run writes no commit, so it needs no parent.
                    None if plan.dry_run => None,
                    // A new site: its branch starts empty so that the first
                    // render, too, arrives as a pull request.
                    None => {
                        let start = start_branch(repo, identity, v)?;
                        updates.push(RefUpdate {
                            branch: base_branch.clone(),
                            old: None,
                            new: start,
                        });
                        Some(start)
                    }
                };
                (parent, base_tip)
            }
        };
        // Unchanged when the tree ids agree: no blob is read then.
        let tree_id = match plan.dry_run {
            true => None,
            false => Some(repo.write_tree(&tree.files)?),
        };
        let compared_tree = match (compared, &tip_info) {
            (Some(t), Some(info)) if info.id == t => Some(info.tree),
            (Some(t), _) => Some(repo.commit_info(t)?.tree),
            (None, _) => None,
        };
        let (summary, first) = if tree_id.is_some() && tree_id == compared_tree {
            (Summary::default(), false)
        } else {
            let old = match compared_tree {
                Some(t) => repo.tree_files(t)?,
                None => Files::new(),
            };
            if let Some(refused) = downgrade(v, &old, base.as_ref().unwrap_or(&branch)) {
                return Ok(Outcome::Diagnosed(refused));
            }
            (summarize_tree(&old, tree, &v.site), old.is_empty())
        };
        // The same files as a tip committed from uncommitted inputs are
        // committed again from this clean source: `audit` compiles a
        // tip's Source-Commit, which lacks what the working tree had.
        let recommit = summary.is_empty() && !plan.dirty && dirty_tip(repo, compared)?;
        let subject = match recommit {
            true => format!(
                "{}: recommit from clean source commit {}",
                v.site.name,
                short(source)
            ),
            false => format!("{}: {}", v.site.name, summary.headline(first)),
        };
        let mut entry = SiteCommit::new(v, branch.clone(), base.clone(), old_tip, subject, summary);
        entry.recommit = recommit;
        if entry.summary.is_empty() && !recommit {
            // Nothing to commit; a rollout branch that still proposes an
            // older tree is left for its pull request to be closed.
            return Ok(Outcome::Site {
                entry: Box::new(entry),
                updates,
            });
        }
        let digests = (tree.input_digest.clone(), tree.output_digest.clone());
        if let Some(base) = &base {
            let proposal = Proposal {
                subject: &entry.subject,
                branch: &entry.branch,
                base,
                summary: &entry.summary,
            };
            entry.pr_body = Some(pr_body(v, &proposal, source, &digests));
            entry.pr_body_file = Some(format!("{ROLLOUT_DIR}/{}.md", v.site.name));
        }
        if let Some(tree_id) = tree_id {
            let message =
                commit_message(&entry.subject, &entry.summary, source, &digests, plan.dirty);
            let id = repo.write_commit(tree_id, parent, identity, &message)?;
            entry.commit = Some(id);
            if old_tip != Some(id) {
                updates.push(RefUpdate {
                    branch,
                    old: old_tip,
                    new: id,
                });
            }
        }
        Ok(Outcome::Site {
            entry: Box::new(entry),
            updates,
        })
    }

    /// Whether a site's branch already holds what its inputs render to:
    /// the tip it is compared with (the site branch's) was made by
    /// dify-cfg from inputs with the same `Input-Digest` (which covers
    /// the compiler version). Such a site needs no rendering; it is
    /// recorded as unchanged. `audit` is what checks a branch's bytes.
    pub fn up_to_date(
        &self,
        repo: &Repo,
        v: &ValidSite,
        input_digest: &str,
    ) -> Result<Option<Outcome>, Error> {
        let plan = self.plan;
        if plan.force
            || plan
                .branch_prefix
                .is_some_and(|p| p != v.site.gitops.branch_prefix)
        {
            return Ok(None);
        }
        let (branch, base) = self.branches(v);
        let site_branch = base.as_ref().unwrap_or(&branch);
        let Some(tip) = repo.tip(site_branch)? else {
            return Ok(None);
        };
        let (_, Some(managed)) = managed_commit(repo, tip)? else {
            return Ok(None);
        };
        // A tip committed from uncommitted inputs never stands for a
        // source commit's inputs, whatever its digest.
        if managed.trailer("Input-Digest") != Some(input_digest)
            || managed.trailer(DIRTY_TRAILER).is_some()
        {
            return Ok(None);
        }
        // Without `--pr` the branch written is the site branch just read.
        let old_tip = match base {
            Some(_) => repo.tip(&branch)?,
            None => Some(tip),
        };
        let subject = format!("{}: unchanged", v.site.name);
        let entry = SiteCommit::new(v, branch, base, old_tip, subject, Summary::default());
        Ok(Some(Outcome::Site {
            entry: Box::new(entry),
            updates: Vec::new(),
        }))
    }
}

/// Whether `tip` stands for a dify-cfg commit compiled from uncommitted
/// inputs.
fn dirty_tip(repo: &Repo, tip: Option<Oid>) -> Result<bool, Error> {
    let Some(tip) = tip else {
        return Ok(false);
    };
    let (_, managed) = managed_commit(repo, tip)?;
    Ok(managed.is_some_and(|m| m.trailer(DIRTY_TRAILER).is_some()))
}

/// An empty first commit for a new site branch (with `--pr`).
fn start_branch(repo: &Repo, identity: &Identity, v: &ValidSite) -> Result<Oid, Error> {
    let tree = repo.write_tree(&BTreeMap::new())?;
    Ok(repo.write_commit(tree, None, identity, &start_message(v))?)
}

/// The sites' outcomes, collected one at a time in any order, so a fleet's
/// trees need not be held at once.
pub struct Preparer {
    out: Prepared,
    refused: Vec<String>,
    diagnosed: Diagnostics,
    details: bool,
}

impl Preparer {
    /// `details`: keep each site's summary (files and risks) for the
    /// report; without, only the number of changed files is kept (at
    /// 10,000 first renders the risk lists alone are some 50 MB).
    pub fn new(details: bool) -> Preparer {
        Preparer {
            out: Prepared::default(),
            refused: Vec::new(),
            diagnosed: Diagnostics::new(),
            details,
        }
    }

    pub fn record(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Site { mut entry, updates } => {
                if self.details {
                    entry.summary.shrink_to_fit();
                } else {
                    entry.summary = Summary::default();
                }
                self.out.sites.push(*entry);
                self.out.updates.extend(updates);
            }
            Outcome::Refused(why) => self.refused.push(why),
            Outcome::Skipped(skipped) => self.out.skipped.push(skipped),
            Outcome::Diagnosed(d) => self.diagnosed.push(d),
        }
    }

    /// Everything prepared, in site order, or every refusal.
    pub fn finish(mut self) -> Result<Prepared, Error> {
        if self.refused.is_empty() && !self.diagnosed.is_empty() {
            return Err(Error::Render(self.diagnosed.sorted()));
        }
        if self.refused.is_empty() {
            self.out.sites.sort_by(|a, b| a.site.cmp(&b.site));
            self.out.skipped.sort_by(|a, b| a.site.cmp(&b.site));
            Ok(self.out)
        } else {
            Err(Error::Refused(self.refused))
        }
    }
}

/// Move the branches: all of them, or (if one moved meanwhile) none.
pub fn publish(repo: &Repo, prepared: &Prepared) -> Result<(), GitError> {
    repo.update_branches(&prepared.updates, "dify-cfg commit")
}

/// Commit the `chosen` sites of `compiled` (compiled from `plan`'s source
/// commit): sites whose branch records these very inputs are not rendered
/// again; the others are rendered chunk by chunk, each worker writing the
/// git objects of the trees it rendered, with its own repository handle.
/// The branches are not moved yet: see [`publish`]. `details`: keep each
/// site's files and risks for the report.
pub fn commit_sites(
    repo: &Repo,
    compiled: &Compiled,
    chosen: &[&ValidSite],
    committer: &Committer<'_>,
    details: bool,
    progress: &dyn Progress,
) -> Result<Prepared, Error> {
    let mut preparer = Preparer::new(details);
    let mut todo = Vec::new();
    progress.more(chosen.len());
    for v in chosen {
        let digest = input_digest(&compiled.inputs, v);
        match committer.up_to_date(repo, v, &digest)? {
            Some(unchanged) => {
                preparer.record(unchanged);
                progress.done(1);
            }
            None => todo.push(*v),
        }
    }
    let opener = repo.opener();
    let identity = repo.identity(committer.source)?;
    let handed = for_each_worked(
        &compiled.inputs,
        &todo,
        || opener.open(),
        |worker, v, tree| match worker {
            Ok(repo) => committer.site(repo, &identity, v, &tree),
            Err(e) => Err(Error::Worker(e.to_string())),
        },
        |_, outcome| {
            preparer.record(outcome);
            progress.done(1);
            Ok(())
        },
    );
    if handed.diagnostics.has_errors() {
        return Err(Error::Render(handed.diagnostics));
    }
    if let Some(e) = handed.failed {
        return Err(e);
    }
    preparer.finish()
}

/// The out directory's `_rollout/` with the pull-request files of
/// `prepared` in: `<site>.md` (title line, then body) and `<site>.title`
/// for each site with a pull request, beside the files already there.
/// `commit --pr` stages it before any branch moves and swaps it in after
/// (`OutDir::stage`, `OutDir::swap`), so that a failure to write it moves
/// nothing. `None`: no pull request.
pub fn rollout_tree(dir: &OutDir, prepared: &Prepared) -> Result<Option<SiteTree>, Error> {
    let mut files = BTreeMap::new();
    for s in &prepared.sites {
        if let (Some(body), Some(body_file)) = (&s.pr_body, &s.pr_body_file) {
            let body_file = body_file.trim_start_matches(&format!("{ROLLOUT_DIR}/"));
            files.insert(body_file.to_string(), body.as_bytes().to_vec());
            files.insert(
                format!("{}.title", s.site),
                format!("{}\n", s.subject).into_bytes(),
            );
        }
    }
    if files.is_empty() {
        return Ok(None);
    }
    let existing = dir.path.join(ROLLOUT_DIR);
    let unreadable = |e: std::io::Error| EmitError::Io {
        path: existing.clone(),
        source: e,
    };
    match std::fs::read_dir(&existing) {
        Ok(entries) => {
            for e in entries {
                let e = e.map_err(unreadable)?;
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') || !e.file_type().map_err(unreadable)?.is_file() {
                    continue;
                }
                if let std::collections::btree_map::Entry::Vacant(v) = files.entry(name) {
                    v.insert(std::fs::read(e.path()).map_err(unreadable)?);
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(unreadable(e).into()),
    }
    Ok(Some(SiteTree {
        name: ROLLOUT_DIR.to_string(),
        files,
        compose: None,
        input_digest: String::new(),
        output_digest: String::new(),
    }))
}

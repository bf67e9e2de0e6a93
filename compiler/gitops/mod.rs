//! The GitOps commands: `commit` (site trees onto site branches, or onto
//! rollout branches with a pull-request body), `diff` (a fresh render
//! against each site branch) and `audit` (recompile each branch's source
//! commit from git objects and compare). Git access goes through
//! [`crate::git`]; rendering through [`crate::cli::build`].

pub mod changes;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

use git2::Oid;
use serde::Serialize;
use serde_json::json;

use crate::base::diagnostic::Diagnostics;
use crate::cli::{AuditArgs, CommitArgs, DiffArgs, Format, Output};
use crate::driver::Compiled;
use crate::emit::{COMPILER_NAME, COMPILER_VERSION, OutDir, SiteTree};
use crate::git::{CommitInfo, GitError, Identity, RefUpdate, Repo, blob_id, short};
use crate::gitops::changes::{ChangeKind, Files, Summary, differing_keys, summarize_tree};
use crate::input::load::load_from;
use crate::validate::ValidSite;

/// Where rollout pull-request bodies go, under the out directory.
pub const ROLLOUT_DIR: &str = "_rollout";

/// The trailer every dify-cfg commit carries: `Compiler: dify-cfg <version>`.
const COMPILER_TRAILER: &str = "Compiler";

fn compiler_id() -> String {
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

/// A failure of a GitOps command: already explained, exit 2.
#[derive(Debug)]
pub struct Failed(pub String);

impl From<GitError> for Failed {
    fn from(e: GitError) -> Self {
        Failed(e.to_string())
    }
}

impl Compiled {
    /// The inputs of a commit, from git objects.
    pub fn at_commit(repo: &Repo, commit: Oid) -> Result<Compiled, GitError> {
        let tree = repo.inputs_at(commit)?;
        let mut diags = Diagnostics::new();
        let inputs = load_from(&tree, &mut diags);
        Ok(Compiled::from_inputs(inputs, diags))
    }

    /// Render the named sites; each gets the git blob id of each of its
    /// files (the trees themselves are dropped as they come), or the reason
    /// it has none.
    pub fn render_ids(&self, names: &[&str]) -> BTreeMap<String, Result<BlobIds, String>> {
        let mut out = BTreeMap::new();
        let mut chosen = Vec::new();
        let by_name: HashMap<&str, &ValidSite> = self
            .sites
            .iter()
            .map(|v| (v.site.name.as_str(), v))
            .collect();
        for name in names {
            match by_name.get(name).copied() {
                Some(v) => chosen.push(v),
                None => {
                    let why = if self.diagnostics.has_errors() {
                        format!(
                            "the sources have errors ({} diagnostics), site `{name}` does not compile",
                            self.diagnostics.error_count()
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
        let rendered = crate::cli::build::render_chunks_with(
            &self.inputs,
            &chosen,
            || (),
            ids_of,
            |v, r| {
                let ids =
                    r.map_err(|d| format!("rendering fails ({} diagnostics)", d.error_count()));
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
}

/// A tree's files as git blob ids, by path.
pub type BlobIds = BTreeMap<String, Oid>;

/// Paths whose blob differs between two trees (or that only one has).
fn differing(a: &BlobIds, b: &BlobIds) -> Vec<String> {
    differing_keys(a, b).cloned().collect()
}

// ---------------------------------------------------------------------------
// commit

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
        }
    }

    /// Whether the branch moves (or, in a dry run, would move).
    pub fn changed(&self) -> bool {
        self.files_changed > 0 && (self.commit.is_none() || self.commit != self.old_tip)
    }
}

fn ser_oid<S: serde::Serializer>(o: &Option<Oid>, s: S) -> Result<S::Ok, S::Error> {
    match o {
        Some(o) => s.serialize_str(&o.to_string()),
        None => s.serialize_none(),
    }
}

/// Everything `commit` will write: the objects are already in the
/// repository (harmless until a branch points at them); the branch
/// updates are applied by [`publish`], all or none.
#[derive(Default)]
pub struct Prepared {
    pub sites: Vec<SiteCommit>,
    pub updates: Vec<RefUpdate>,
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
) -> Result<Prepared, Failed> {
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
    ) -> Result<Outcome, Failed> {
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
                return Err(Failed(format!("`{b}` is not a valid branch name")));
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
                return Ok(Outcome::Refused(format!(
                    "branch `{branch}` ends in {} (\"{}\"), which dify-cfg did not make; pass --force to commit on top of it",
                    short(tip),
                    info.subject()
                )));
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
            (summarize_tree(&old, tree), old.is_empty())
        };
        let subject = format!("{}: {}", v.site.name, summary.headline(first));
        let mut entry = SiteCommit::new(v, branch.clone(), base.clone(), old_tip, subject, summary);
        if entry.summary.is_empty() {
            // Nothing to commit; a rollout branch that still proposes an
            // older tree is left for its pull request to be closed.
            return Ok(Outcome::Site {
                entry: Box::new(entry),
                updates,
            });
        }
        let digests = (tree.input_digest.clone(), tree.output_digest.clone());
        if base.is_some() {
            entry.pr_body = Some(pr_body(v, &entry, source, &digests));
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
    ) -> Result<Option<Outcome>, Failed> {
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
        if managed.trailer("Input-Digest") != Some(input_digest) {
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

/// An empty first commit for a new site branch (with `--pr`).
fn start_branch(repo: &Repo, identity: &Identity, v: &ValidSite) -> Result<Oid, Failed> {
    let tree = repo.write_tree(&BTreeMap::new())?;
    let message = format!(
        "{}: start the site branch\n\nAn empty tree: the site's first render arrives as a pull request\ninto this branch.\n\n{COMPILER_TRAILER}: {}\n",
        v.site.name,
        compiler_id()
    );
    Ok(repo.write_commit(tree, None, identity, &message)?)
}

/// The sites' outcomes, collected one at a time in any order, so a fleet's
/// trees need not be held at once.
pub struct Preparer {
    out: Prepared,
    refused: Vec<String>,
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
        }
    }

    /// Everything prepared, in site order, or every refusal.
    pub fn finish(mut self) -> Result<Prepared, Failed> {
        if self.refused.is_empty() {
            self.out.sites.sort_by(|a, b| a.site.cmp(&b.site));
            Ok(self.out)
        } else {
            Err(Failed(self.refused.join("\n")))
        }
    }
}

/// Move the branches: all of them, or (if one moved meanwhile) none.
pub fn publish(repo: &Repo, prepared: &Prepared) -> Result<(), GitError> {
    repo.update_branches(&prepared.updates, "dify-cfg commit")
}

fn tip_files(repo: &Repo, tip: Option<Oid>) -> Result<Files, GitError> {
    match tip {
        Some(t) => {
            let info = repo.commit_info(t)?;
            repo.tree_files(info.tree)
        }
        None => Ok(Files::new()),
    }
}

fn commit_message(
    subject: &str,
    summary: &Summary,
    source: Oid,
    (input, output): &(String, String),
    dirty: bool,
) -> String {
    let mut m = format!("{subject}\n\nChanged files:\n");
    for line in summary.file_lines() {
        m.push_str(&format!("  {line}\n"));
    }
    m.push_str("\nRisk flags:");
    if summary.risks.is_empty() {
        m.push_str(" none (no ports, images, memory limits or firewall rules change)\n");
    } else {
        m.push('\n');
        for r in &summary.risks {
            m.push_str(&format!("  - {r}\n"));
        }
    }
    m.push_str(&format!(
        "\nSource-Commit: {source}\nInput-Digest: {input}\nOutput-Digest: {output}\n{COMPILER_TRAILER}: {}\n",
        compiler_id()
    ));
    if dirty {
        m.push_str("Source-Dirty: true\n");
    }
    m
}

/// Markdown that cannot be mistaken for markup: code spans can hold
/// anything but backticks and line breaks.
fn md_code(s: &str) -> String {
    format!("`{}`", s.replace(['`', '\n', '\r'], " "))
}

fn md_text(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\`*_[]<>|".contains(c) {
            out.push('\\');
        }
        if c == '\n' || c == '\r' {
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out
}

fn pr_body(
    v: &ValidSite,
    entry: &SiteCommit,
    source: Oid,
    (input, output): &(String, String),
) -> String {
    let base = entry.base.as_deref().unwrap_or_default();
    let mut b = format!("# {}\n\n", md_text(&entry.subject));
    b.push_str(&format!(
        "Rollout of site {} (wave {}, profiles {}, Dify {}), compiled by {} from source commit {}.\n\
         Merging this pull request into {} is the approval: the site applies that branch and nothing else.\n\n",
        md_code(&v.site.name),
        v.site.wave,
        md_code(&v.site.profile_chain.join(" <- ")),
        md_code(&v.site.dify_version),
        compiler_id(),
        md_code(&source.to_string()),
        md_code(base),
    ));
    b.push_str("## Risk flags\n\n");
    if entry.summary.risks.is_empty() {
        b.push_str("None: no port, image, memory limit or firewall rule changes.\n\n");
    } else {
        for r in &entry.summary.risks {
            b.push_str(&format!("- **{}**: {}\n", r.label(), md_code(&r.detail())));
        }
        b.push('\n');
    }
    b.push_str(
        "## Files\n\n| File | Change | Lines added | Lines removed |\n|---|---|---:|---:|\n",
    );
    for f in &entry.summary.files {
        b.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            md_code(&f.path),
            f.kind.word(),
            f.lines_added,
            f.lines_removed
        ));
    }
    b.push_str(&format!(
        "\n## Audit\n\n| Trailer | Value |\n|---|---|\n| Source-Commit | {} |\n| Input-Digest | {} |\n| Output-Digest | {} |\n| Compiler | {} |\n\n\
         Check that this branch is exactly what the sources produce:\n\n\
         ```sh\ndify-cfg audit --site {} --branch-prefix {}\n```\n",
        md_code(&source.to_string()),
        md_code(input),
        md_code(output),
        md_code(&compiler_id()),
        v.site.name,
        entry.branch.trim_end_matches(&v.site.name),
    ));
    b
}

/// A GitOps command's exit code: its own, or 2 once its failure is said.
fn exit_code(out: &Output, result: Result<i32, Failed>) -> i32 {
    result.unwrap_or_else(|Failed(msg)| {
        out.error(&msg);
        2
    })
}

pub fn commit(root: &Path, args: &CommitArgs, out: &Output) -> i32 {
    exit_code(out, commit_inner(root, args, out))
}

fn commit_inner(root: &Path, args: &CommitArgs, out: &Output) -> Result<i32, Failed> {
    let repo = Repo::discover(root)?;
    let head = repo.head()?;
    let dirty = repo.dirty_inputs()?;
    if !dirty.is_empty() && !args.allow_dirty {
        let mut list: Vec<String> = dirty.iter().take(10).map(|p| format!("  {p}")).collect();
        if dirty.len() > 10 {
            list.push(format!("  ... and {} more", dirty.len() - 10));
        }
        return Err(Failed(format!(
            "the config repository has uncommitted input files:\n{}\ncommit them first (an audit needs the source commit), or pass --allow-dirty",
            list.join("\n")
        )));
    }
    // Clean: compile exactly what HEAD holds, as `audit` will. Dirty and
    // allowed: what the working tree holds.
    let compiled = if dirty.is_empty() {
        Compiled::at_commit(&repo, head)?
    } else {
        Compiled::read(root)
    };
    let Some(chosen) = out.chosen(&compiled, &args.selection) else {
        return Ok(2);
    };
    let plan = CommitPlan {
        branch_prefix: args.branch_prefix.as_deref(),
        rollout_prefix: args.pr.then_some(args.rollout_prefix.as_str()),
        force: args.force,
        dry_run: args.dry_run,
        dirty: !dirty.is_empty(),
    };
    let committer = Committer {
        source: head,
        plan: &plan,
    };
    // The text report of a real commit shows subjects only.
    let mut preparer = Preparer::new(args.dry_run || out.format == Format::Json);
    // Sites whose branch records these very inputs are not rendered again.
    let mut todo = Vec::new();
    for v in &chosen {
        let digest = crate::cli::build::input_digest(&compiled.inputs, v);
        match committer.up_to_date(&repo, v, &digest)? {
            Some(unchanged) => preparer.record(unchanged),
            None => todo.push(*v),
        }
    }
    // Render chunk by chunk; each worker writes the git objects of the
    // trees it rendered, with its own repository handle, and drops them.
    let opener = repo.opener();
    let identity = repo.identity(head)?;
    let handed = crate::cli::build::for_each_worked(
        &compiled.inputs,
        &todo,
        || opener.open(),
        |worker, v, tree| match worker {
            Ok(repo) => committer.site(repo, &identity, v, &tree),
            Err(e) => Err(Failed(e.to_string())),
        },
        |_, outcome| {
            preparer.record(outcome);
            Ok(())
        },
    );
    if handed.diagnostics.has_errors() {
        out.diagnostics(&handed.diagnostics, &compiled.inputs);
        return Ok(2);
    }
    if let Some(e) = handed.failed {
        return Err(e);
    }
    let prepared = preparer.finish()?;
    if !args.dry_run {
        publish(&repo, &prepared)?;
        if args.pr {
            write_pr_files(root, args, &prepared)?;
        }
    }
    report_commits(&prepared, head, args, out);
    Ok(0)
}

/// `out/_rollout/<site>.md` (title line, then body) and `<site>.title`.
fn write_pr_files(root: &Path, args: &CommitArgs, prepared: &Prepared) -> Result<(), Failed> {
    let out_dir = args.out.clone().unwrap_or_else(|| root.join("out"));
    let dir = OutDir::open(&out_dir, root).map_err(|e| Failed(e.to_string()))?;
    for s in &prepared.sites {
        if let (Some(body), Some(body_file)) = (&s.pr_body, &s.pr_body_file) {
            dir.write_file(body_file, body.as_bytes())
                .and_then(|_| {
                    dir.write_file(
                        &format!("{ROLLOUT_DIR}/{}.title", s.site),
                        format!("{}\n", s.subject).as_bytes(),
                    )
                })
                .map_err(|e| Failed(e.to_string()))?;
        }
    }
    Ok(())
}

fn report_commits(prepared: &Prepared, head: Oid, args: &CommitArgs, out: &Output) {
    match out.format {
        Format::Text => {
            for s in &prepared.sites {
                let what = if s.files_changed == 0 {
                    "unchanged".to_string()
                } else if args.dry_run {
                    format!("would commit: {}", s.subject)
                } else if s.changed() {
                    let id = s.commit.map(short).unwrap_or_default();
                    format!("{id} {}", s.subject)
                } else {
                    "unchanged (already proposed)".to_string()
                };
                println!("{}: {what}", s.branch);
                if args.dry_run && s.files_changed > 0 {
                    for line in s.summary.file_lines() {
                        println!("    {line}");
                    }
                    for r in &s.summary.risks {
                        println!("    ! {r}");
                    }
                }
            }
            let changed = prepared.sites.iter().filter(|s| s.changed()).count();
            eprintln!(
                "{} {changed} of {} site branch{} from source commit {}",
                if args.dry_run {
                    "would update"
                } else {
                    "updated"
                },
                prepared.sites.len(),
                if prepared.sites.len() == 1 { "" } else { "es" },
                short(head)
            );
        }
        Format::Json => out.json(&json!({
            "source-commit": head.to_string(),
            "dry-run": args.dry_run,
            "sites": prepared.sites,
        })),
    }
}

// ---------------------------------------------------------------------------
// diff

pub fn diff(root: &Path, args: &DiffArgs, out: &Output) -> i32 {
    exit_code(out, diff_inner(root, args, out))
}

fn diff_inner(root: &Path, args: &DiffArgs, out: &Output) -> Result<i32, Failed> {
    let repo = Repo::discover(root)?;
    let compiled = Compiled::read(root);
    let Some(chosen) = out.chosen(&compiled, &args.selection) else {
        return Ok(2);
    };
    let (color, format) = (out.color_stdout(), out.format);
    let mut text = String::new();
    let mut report = Vec::new();
    let mut differs = false;
    // Site by site, each on the worker that rendered it (with its own
    // repository handle): the fresh tree is compared, said and dropped.
    enum Shown {
        Text(String),
        Json(serde_json::Value),
    }
    let opener = repo.opener();
    let handed = crate::cli::build::for_each_worked(
        &compiled.inputs,
        &chosen,
        || opener.open(),
        |worker, v, tree| {
            let repo = worker.as_ref().map_err(|e| Failed(e.to_string()))?;
            let branch = site_branch(args.branch_prefix.as_deref(), v);
            let tip = repo.tip(&branch)?;
            let old = tip_files(repo, tip)?;
            let summary = summarize_tree(&old, &tree);
            let shown = match format {
                Format::Text => {
                    let mut t = String::new();
                    site_diff_text(
                        &mut t, v, &branch, tip, &old, &tree, &summary, args.stat, color,
                    );
                    Shown::Text(t)
                }
                Format::Json => Shown::Json(json!({
                    "site": v.site.name,
                    "branch": branch,
                    "tip": tip.map(|t| t.to_string()),
                    "differs": !summary.is_empty(),
                    "files": summary.files,
                    "risks": summary.risks,
                })),
            };
            Ok((!summary.is_empty(), shown))
        },
        |_, (site_differs, shown)| {
            differs |= site_differs;
            match shown {
                Shown::Text(t) => text.push_str(&t),
                Shown::Json(j) => report.push(j),
            }
            Ok::<(), Failed>(())
        },
    );
    if handed.diagnostics.has_errors() {
        out.diagnostics(&handed.diagnostics, &compiled.inputs);
        return Ok(2);
    }
    if let Some(e) = handed.failed {
        return Err(e);
    }
    match out.format {
        Format::Text => {
            let _ = std::io::stdout().write_all(text.as_bytes());
        }
        Format::Json => out.json(&json!({ "sites": report, "differs": differs })),
    }
    Ok(if args.exit_code && differs { 1 } else { 0 })
}

struct Paint(bool);

impl Paint {
    fn wrap(&self, code: &str, s: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn site_diff_text(
    text: &mut String,
    v: &ValidSite,
    branch: &str,
    tip: Option<Oid>,
    old: &Files,
    tree: &SiteTree,
    summary: &Summary,
    stat: bool,
    color: bool,
) {
    let paint = Paint(color);
    let name = &v.site.name;
    let against = tip.map_or_else(
        || format!("{branch} (no branch yet)"),
        |t| format!("{branch} @ {}", short(t)),
    );
    if summary.is_empty() {
        text.push_str(&format!("{name}: up to date with {against}\n"));
        return;
    }
    text.push_str(&paint.wrap(
        "1",
        &format!(
            "{name}: {} file{} differ from {against}\n",
            summary.files.len(),
            if summary.files.len() == 1 { "" } else { "s" }
        ),
    ));
    for r in &summary.risks {
        text.push_str(&format!("  {} {r}\n", paint.wrap("33", "!")));
    }
    if stat {
        let width = summary
            .files
            .iter()
            .map(|f| f.path.len())
            .max()
            .unwrap_or(0);
        for f in &summary.files {
            text.push_str(&format!(
                "  {:width$} | {:>5} {}{}\n",
                f.path,
                f.lines_added + f.lines_removed,
                paint.wrap("32", &"+".repeat(f.lines_added.min(40))),
                paint.wrap("31", &"-".repeat(f.lines_removed.min(40))),
            ));
        }
        return;
    }
    for f in &summary.files {
        let a = old
            .get(&f.path)
            .map(|b| String::from_utf8_lossy(b))
            .unwrap_or_default();
        let b = tree
            .files
            .get(&f.path)
            .map(|b| String::from_utf8_lossy(b))
            .unwrap_or_default();
        let from = if f.kind == ChangeKind::Added {
            "/dev/null".to_string()
        } else {
            format!("a/{name}/{}", f.path)
        };
        let to = if f.kind == ChangeKind::Removed {
            "/dev/null".to_string()
        } else {
            format!("b/{name}/{}", f.path)
        };
        let diff = similar::TextDiff::from_lines(a.as_ref(), b.as_ref());
        let unified = diff
            .unified_diff()
            .context_radius(3)
            .header(&from, &to)
            .to_string();
        for line in unified.lines() {
            let painted = if line.starts_with("+++") || line.starts_with("---") {
                paint.wrap("1", line)
            } else if line.starts_with('+') {
                paint.wrap("32", line)
            } else if line.starts_with('-') {
                paint.wrap("31", line)
            } else if line.starts_with("@@") {
                paint.wrap("36", line)
            } else {
                line.to_string()
            };
            text.push_str(&painted);
            text.push('\n');
        }
    }
}

// ---------------------------------------------------------------------------
// audit

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
) -> Result<Vec<AuditEntry>, Failed> {
    let rev_id = repo.resolve(rev)?;
    let mut branches = repo.branches(prefix)?;
    if !sites.is_empty() {
        for s in sites {
            if !branches.iter().any(|(name, _)| name == s) {
                return Err(Failed(format!("there is no branch `{prefix}{s}`")));
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
        renders.insert(*commit, compiled.render_ids(&wanted));
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

pub fn audit(root: &Path, args: &AuditArgs, out: &Output) -> i32 {
    exit_code(out, audit_inner(root, args, out))
}

fn audit_inner(root: &Path, args: &AuditArgs, out: &Output) -> Result<i32, Failed> {
    let repo = Repo::discover(root)?;
    let entries = audit_branches(&repo, &args.branch_prefix, &args.sites, &args.rev)?;
    let failed = entries
        .iter()
        .any(|e| matches!(e.verdict, Verdict::Drift | Verdict::Stale));
    match out.format {
        Format::Text => {
            if entries.is_empty() {
                println!("no branches `{}*` to audit", args.branch_prefix);
            }
            let width = entries.iter().map(|e| e.site.len()).max().unwrap_or(0);
            for e in &entries {
                let mut line = format!(
                    "{:width$}  {:12}  {} @ {}",
                    e.site,
                    e.verdict.as_str(),
                    e.branch,
                    &e.tip[..12]
                );
                if let Some(src) = &e.source_commit {
                    line.push_str(&format!(" (source {})", &src[..src.len().min(12)]));
                }
                println!("{line}");
                if !e.drifted.is_empty() {
                    println!(
                        "{:width$}  edited on the branch: {}",
                        "",
                        e.drifted.join(", ")
                    );
                }
                if !e.stale.is_empty() && e.verdict != Verdict::Drift {
                    println!(
                        "{:width$}  {} would change: {}",
                        "",
                        args.rev,
                        e.stale.join(", ")
                    );
                }
                for n in &e.notes {
                    println!("{:width$}  note: {n}", "");
                }
            }
        }
        Format::Json => out.json(&json!({
            "rev": args.rev,
            "branches": entries,
            "ok": !failed,
        })),
    }
    Ok(i32::from(failed))
}

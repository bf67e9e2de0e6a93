//! `dify-cfg commit`: each selected site's tree onto its site branch (or a
//! rollout branch with `--pr`), from the source commit HEAD (or the working
//! tree with `--allow-dirty`).

use std::path::{Path, PathBuf};

use git2::Oid;

use crate::cli::args::Format;
use crate::cli::exit::Failure;
use crate::cli::output::{Output, Report, Text};
use crate::driver::{Compiled, Selection};
use crate::emit::OutDir;
use crate::git::{Repo, short};
use crate::gitops::{self, CommitPlan, Committer, Prepared, commit_sites, publish, write_pr_files};

/// How to commit.
pub struct CommitOptions {
    pub selection: Selection,
    /// Overrides each site's `gitops.branch-prefix`.
    pub branch_prefix: Option<String>,
    /// `Some(prefix)`: commit to rollout branches `<prefix><site>` and write
    /// pull-request bodies.
    pub rollout_prefix: Option<String>,
    pub dry_run: bool,
    pub force: bool,
    pub allow_dirty: bool,
    /// Where `--pr` writes `_rollout/`; default `out/` under the root.
    pub out: Option<PathBuf>,
}

pub struct CommitReport {
    pub head: Oid,
    pub dry_run: bool,
    pub prepared: Prepared,
}

pub fn run(root: &Path, opts: &CommitOptions, out: &Output) -> Result<CommitReport, Failure> {
    let repo = Repo::discover(root)?;
    let head = repo.head()?;
    let dirty = repo.dirty_inputs()?;
    if !dirty.is_empty() && !opts.allow_dirty {
        return Err(gitops::Error::Dirty(dirty).into());
    }
    // Clean: compile exactly what HEAD holds, as `audit` will. Dirty and
    // allowed: what the working tree holds.
    let compiled = if dirty.is_empty() {
        Compiled::at_commit(&repo, head)?
    } else {
        Compiled::read(root)
    };
    let chosen = out.chosen(&compiled, &opts.selection)?;
    let plan = CommitPlan {
        branch_prefix: opts.branch_prefix.as_deref(),
        rollout_prefix: opts.rollout_prefix.as_deref(),
        force: opts.force,
        dry_run: opts.dry_run,
        dirty: !dirty.is_empty(),
    };
    let committer = Committer {
        source: head,
        plan: &plan,
    };
    // The text report of a real commit shows subjects only.
    let details = opts.dry_run || out.format == Format::Json;
    let prepared = commit_sites(&repo, &compiled, &chosen, &committer, details)
        .map_err(|e| out.gitops_failure(e, &compiled.inputs))?;
    if !opts.dry_run {
        publish(&repo, &prepared)?;
        if opts.rollout_prefix.is_some() {
            let out_dir = opts.out.clone().unwrap_or_else(|| root.join("out"));
            let dir = OutDir::open(&out_dir, root)?;
            write_pr_files(&dir, &prepared)?;
        }
    }
    Ok(CommitReport {
        head,
        dry_run: opts.dry_run,
        prepared,
    })
}

impl Report for CommitReport {
    fn text(&self) -> Text {
        let mut text = Text::default();
        let sites = &self.prepared.sites;
        for s in sites {
            let what = if s.files_changed == 0 {
                "unchanged".to_string()
            } else if self.dry_run {
                format!("would commit: {}", s.subject)
            } else if s.changed() {
                let id = s.commit.map(short).unwrap_or_default();
                format!("{id} {}", s.subject)
            } else {
                "unchanged (already proposed)".to_string()
            };
            text.stdout.push_str(&format!("{}: {what}\n", s.branch));
            if self.dry_run && s.files_changed > 0 {
                for line in s.summary.file_lines() {
                    text.stdout.push_str(&format!("    {line}\n"));
                }
                for r in &s.summary.risks {
                    text.stdout.push_str(&format!("    ! {r}\n"));
                }
            }
        }
        let changed = sites.iter().filter(|s| s.changed()).count();
        text.stderr = format!(
            "{} {changed} of {} site branch{} from source commit {}\n",
            if self.dry_run {
                "would update"
            } else {
                "updated"
            },
            sites.len(),
            if sites.len() == 1 { "" } else { "es" },
            short(self.head)
        );
        text
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "source-commit": self.head.to_string(),
            "dry-run": self.dry_run,
            "sites": self.prepared.sites,
        })
    }
}

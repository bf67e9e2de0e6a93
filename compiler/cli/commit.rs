//! `dify-cfg commit`: each selected site's tree onto its site branch (or a
//! rollout branch with `--pr`), from the source commit HEAD (or the working
//! tree with `--allow-dirty`).

use std::path::{Path, PathBuf};

use git2::Oid;

use crate::cli::args::Format;
use crate::cli::exit::{ExitCode, Failure};
use crate::cli::output::{Output, Report, Text};
use crate::driver::{Compiled, Selection};
use crate::emit::OutDir;
use crate::git::{Repo, short};
use crate::gitops::{self, CommitPlan, Committer, Prepared, commit_sites, publish, rollout_tree};

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
    /// The branches moved, but the pull-request files could not be put in
    /// place: why (the command reports what it did, and exits 2).
    pub unwritten: Option<String>,
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
    let mut unwritten = None;
    if !opts.dry_run {
        // The pull-request files are written (not yet visible) before any
        // branch moves, and swapped in after: a failure to write them
        // moves nothing, a failed move shows none.
        let mut rollout = None;
        if opts.rollout_prefix.is_some() {
            let out_dir = opts.out.clone().unwrap_or_else(|| root.join("out"));
            let dir = OutDir::open(&out_dir, root)?;
            let staged = match rollout_tree(&dir, &prepared)? {
                Some(tree) => dir.stage(&tree)?,
                None => None,
            };
            rollout = staged.map(|staged| (dir, staged));
        }
        if let Err(e) = publish(&repo, &prepared) {
            if let Some((dir, staged)) = rollout {
                dir.discard(staged);
            }
            return Err(e.into());
        }
        if let Some((dir, staged)) = rollout
            && let Err(e) = dir.sync().and_then(|()| dir.swap(staged))
        {
            unwritten = Some(e.to_string());
        }
    }
    Ok(CommitReport {
        head,
        dry_run: opts.dry_run,
        prepared,
        unwritten,
    })
}

impl Report for CommitReport {
    fn text(&self) -> Text {
        let mut text = Text::default();
        let sites = &self.prepared.sites;
        for s in sites {
            let what = if s.files_changed == 0 && !s.recommit {
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
        if let Some(e) = &self.unwritten {
            text.stderr.push_str(&unwritten_message(e));
        }
        text
    }

    fn json(&self) -> serde_json::Value {
        let mut report = serde_json::json!({
            "source-commit": self.head.to_string(),
            "dry-run": self.dry_run,
            "sites": self.prepared.sites,
        });
        if let (Some(e), Some(obj)) = (&self.unwritten, report.as_object_mut()) {
            obj.insert("error".into(), unwritten_message(e).trim_end().into());
        }
        report
    }

    fn exit_code(&self) -> ExitCode {
        match self.unwritten {
            Some(_) => ExitCode::Invalid,
            None => ExitCode::Success,
        }
    }
}

/// The branches moved but `_rollout/` could not be swapped in.
fn unwritten_message(e: &str) -> String {
    format!(
        "error: the branches above moved, but the pull-request files were not put in `_rollout/`: {e}; run the same command again to write them\n"
    )
}

//! `dify-cfg commit`: each selected site's tree onto its site branch (or a
//! rollout branch with `--pr`), from the source commit HEAD (or the working
//! tree with `--allow-dirty`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use git2::Oid;

use crate::cli::args::Format;
use crate::cli::exit::{ExitCode, Failure};
use crate::cli::output::{Output, Report, Text, took};
use crate::driver::{Compiled, Selection};
use crate::emit::OutDir;
use crate::git::{Repo, short};
use crate::gitops::retire::RETIRED_PREFIX;
use crate::gitops::{
    self, CommitPlan, Committer, Prepared, Removed, WaveHold, commit_sites, publish,
    removed_branches, retire, rollout_tree, wave_hold,
};

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
    /// With `--pr`: propose whatever earlier waves' rollouts are open.
    pub ignore_waves: bool,
    /// Archive and delete the branches of removed sites.
    pub retire: bool,
    pub allow_dirty: bool,
    /// Where `--pr` writes `_rollout/`; default `out/` under the root.
    pub out: Option<PathBuf>,
}

pub struct CommitReport {
    pub head: Oid,
    pub dry_run: bool,
    pub prepared: Prepared,
    /// `--pr` refused: the earlier waves' rollouts a later wave waits for
    /// (no branch moved).
    pub hold: Option<WaveHold>,
    /// Branches of sites no longer in the sources (retired with `--retire`).
    pub removed: Vec<Removed>,
    pub retire: bool,
    /// The branches moved, but the pull-request files could not be put in
    /// place: why (the command reports what it did, and exits 2).
    pub unwritten: Option<String>,
    /// How long it took, said on a terminal only.
    pub elapsed: Option<Duration>,
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
    let bar = out.progress("commit");
    let prepared = commit_sites(&repo, &compiled, &chosen, &committer, details, &*bar)
        .map_err(|e| out.gitops_failure(e, &compiled.inputs))?;
    let mut report = CommitReport {
        head,
        dry_run: opts.dry_run,
        prepared: Prepared::default(),
        hold: None,
        removed: Vec::new(),
        retire: opts.retire,
        unwritten: None,
        elapsed: out.elapsed(false),
    };
    if !opts.ignore_waves {
        report.hold = wave_hold(&repo, &compiled.sites, &prepared, &plan)?;
        if report.hold.is_some() {
            return Ok(report);
        }
    }
    report.removed = removed_branches(&repo, &compiled.sites, opts.branch_prefix.as_deref())?;
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
        // Retiring first: if it fails, no site branch has moved; if the
        // moves fail after it, the retired tips are kept in their tags.
        let retired = if opts.retire {
            retire(&repo, &mut report.removed, head, plan.dirty)
        } else {
            Ok(())
        };
        if let Err(e) =
            retired.and_then(|()| publish(&repo, &prepared).map_err(gitops::Error::from))
        {
            if let Some((dir, staged)) = rollout {
                dir.discard(staged);
            }
            return Err(e.into());
        }
        if let Some((dir, staged)) = rollout
            && let Err(e) = dir.sync().and_then(|()| dir.install(vec![staged], &[]))
        {
            report.unwritten = Some(e.to_string());
        }
    }
    report.prepared = prepared;
    Ok(report)
}

impl CommitReport {
    /// The report for people; `quiet`: the sites skipped, the branches of
    /// removed sites, and the summary.
    fn text_with(&self, quiet: bool) -> Text {
        let mut text = Text::default();
        if let Some(hold) = &self.hold {
            text.stderr = format!("error: {hold}\n");
            return text;
        }
        let sites = &self.prepared.sites;
        for s in sites.iter().filter(|_| !quiet) {
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
        let skipped = &self.prepared.skipped;
        for s in skipped {
            text.stdout
                .push_str(&format!("{}: skipped: {}\n", s.branch, s.reason));
        }
        text.stdout
            .push_str(&removed_lines(&self.removed, self.dry_run, self.retire));
        let changed = sites.iter().filter(|s| s.changed()).count();
        let total = sites.len() + skipped.len();
        text.stderr = format!(
            "{} {changed} of {total} site branch{} from source commit {}{}{}\n",
            if self.dry_run {
                "would update"
            } else {
                "updated"
            },
            if total == 1 { "" } else { "es" },
            short(self.head),
            match skipped.len() {
                0 => String::new(),
                n => format!("; {n} skipped (see above)"),
            },
            took(self.elapsed)
        );
        if let Some(e) = &self.unwritten {
            text.stderr.push_str(&unwritten_message(e));
        }
        text
    }
}

impl Report for CommitReport {
    fn text(&self) -> Text {
        self.text_with(false)
    }

    fn quiet_text(&self) -> Text {
        self.text_with(true)
    }

    fn json(&self) -> serde_json::Value {
        let mut json = serde_json::json!({
            "source-commit": self.head.to_string(),
            "dry-run": self.dry_run,
            "sites": self.prepared.sites,
            "skipped": self.prepared.skipped,
            "removed": self.removed,
        });
        if let (Some(hold), Some(obj)) = (&self.hold, json.as_object_mut()) {
            obj.insert("error".into(), hold.to_string().into());
            obj.insert("waiting".into(), serde_json::json!(hold));
        }
        if let (Some(e), Some(obj)) = (&self.unwritten, json.as_object_mut()) {
            obj.insert("error".into(), unwritten_message(e).trim_end().into());
        }
        json
    }

    fn exit_code(&self) -> ExitCode {
        if self.hold.is_some() || self.unwritten.is_some() {
            ExitCode::Invalid
        } else if !self.prepared.skipped.is_empty() {
            ExitCode::Differs
        } else {
            ExitCode::Success
        }
    }
}

/// What the report says about branches of removed sites: each retired
/// branch with its tag, or each such branch with the command that retires
/// it.
fn removed_lines(removed: &[Removed], dry_run: bool, retiring: bool) -> String {
    let mut out = String::new();
    let mut offer = false;
    for r in removed {
        let tip = short(r.tip_id);
        let what = match (&r.retired_as, r.managed) {
            (Some(tag), _) => format!("retired: tag `{tag}` keeps {tip}; the branch is deleted"),
            (None, false) => format!(
                "site `{}` is no longer in the sources, and dify-cfg did not make its tip {tip}: left alone",
                r.site
            ),
            (None, true) if dry_run && retiring => format!(
                "site `{}` is no longer in the sources (tip {tip}): would be retired",
                r.site
            ),
            (None, true) => {
                offer = !retiring;
                format!("site `{}` is no longer in the sources (tip {tip})", r.site)
            }
        };
        out.push_str(&format!("{}: {what}\n", r.branch));
    }
    if offer {
        out.push_str(&format!(
            "`dify-cfg commit --retire` archives each branch of a removed site as the tag `{RETIRED_PREFIX}<branch>` and deletes the branch\n"
        ));
    }
    out
}

/// The branches moved but `_rollout/` could not be swapped in.
fn unwritten_message(e: &str) -> String {
    format!(
        "error: the branches above moved, but the pull-request files were not put in `_rollout/`: {e}; run the same command again to write them\n"
    )
}

//! `dify-cfg diff`: how a fresh render of each selected site differs from
//! its site branch, as unified diffs (coloured on a terminal) or a summary
//! per file (`--stat`).

use std::path::Path;

use serde_json::json;

use crate::base::diagnostic::{Diagnostic, Diagnostics, Severity};
use crate::cli::args::Format;
use crate::cli::exit::{ExitCode, Failure};
use crate::cli::output::{Output, Paint, Report, Text};
use crate::driver::{Compiled, Progress, Selection};
use crate::git::{Repo, short};
use crate::gitops::changes::ChangeKind;
use crate::gitops::downgrade::downgrade;
use crate::gitops::{SiteDiff, diff_sites};

/// What to compare.
pub struct DiffOptions {
    pub selection: Selection,
    /// Site branches are `<prefix><site>`; default: each site's own prefix.
    pub branch_prefix: Option<String>,
    /// A summary per file instead of the full diff.
    pub stat: bool,
    /// Exit 1 when any site differs.
    pub exit_code: bool,
}

/// One site's comparison, as the report shows it (made on the worker that
/// rendered the site, so the trees need not be kept).
enum Shown {
    /// The text, and whether the site differs (`--quiet` shows only those).
    Text(String, bool),
    Json(serde_json::Value),
}

pub struct DiffReport {
    sites: Vec<Shown>,
    differs: bool,
    exit_code: bool,
}

pub fn run(root: &Path, opts: &DiffOptions, out: &Output) -> Result<DiffReport, Failure> {
    let repo = Repo::discover(root)?;
    let compiled = Compiled::read(root);
    let chosen = out.chosen(&compiled, &opts.selection)?;
    let (color, format) = (out.color_stdout(), out.format);
    let bar = out.progress("diff");
    bar.more(chosen.len());
    let show = |d: &SiteDiff<'_>| {
        bar.done(1);
        let shown = match format {
            Format::Text => Shown::Text(site_diff_text(d, opts.stat, color), d.differs()),
            Format::Json => Shown::Json(json!({
                "site": d.site.site.name,
                "branch": d.branch,
                "tip": d.tip.map(|t| t.to_string()),
                "differs": d.differs(),
                "files": d.summary.files,
                "risks": d.summary.risks,
                "upgrade": d.summary.upgrade,
            })),
        };
        (shown, downgrade_warning(d))
    };
    let shown = diff_sites(
        &repo,
        &compiled,
        &chosen,
        opts.branch_prefix.as_deref(),
        show,
    )
    .map_err(|e| out.gitops_failure(e, &compiled.inputs))?;
    let mut warnings = Diagnostics::new();
    for w in shown.iter().filter_map(|(_, (_, w))| w.clone()) {
        warnings.push(w);
    }
    out.diagnostics(&warnings, &compiled.inputs);
    Ok(DiffReport {
        differs: shown.iter().any(|(d, _)| *d),
        sites: shown.into_iter().map(|(_, (s, _))| s).collect(),
        exit_code: opts.exit_code,
    })
}

/// A downgrade `commit` would refuse (`release-downgrade`), said as a
/// warning beside the diff that shows it.
fn downgrade_warning(d: &SiteDiff<'_>) -> Option<Diagnostic> {
    let mut w = downgrade(d.site, &d.old, &d.branch)?;
    w.severity = Severity::Warning;
    w.notes
        .push("`dify-cfg commit` refuses this site (exit 2) until then".into());
    Some(w)
}

impl DiffReport {
    /// The report for people; `quiet`: the sites that differ only.
    fn text_with(&self, quiet: bool) -> Text {
        let mut text = Text::default();
        for s in &self.sites {
            if let Shown::Text(t, differs) = s
                && (*differs || !quiet)
            {
                text.stdout.push_str(t);
            }
        }
        text
    }
}

impl Report for DiffReport {
    fn text(&self) -> Text {
        self.text_with(false)
    }

    fn quiet_text(&self) -> Text {
        self.text_with(true)
    }

    fn json(&self) -> serde_json::Value {
        let sites: Vec<&serde_json::Value> = self
            .sites
            .iter()
            .filter_map(|s| match s {
                Shown::Json(j) => Some(j),
                Shown::Text(..) => None,
            })
            .collect();
        json!({ "sites": sites, "differs": self.differs })
    }

    fn exit_code(&self) -> ExitCode {
        if self.exit_code && self.differs {
            ExitCode::Differs
        } else {
            ExitCode::Success
        }
    }
}

/// A site's comparison for people: a headline, the risk flags, then a
/// unified diff per file (or a `--stat` line per file).
fn site_diff_text(d: &SiteDiff<'_>, stat: bool, color: bool) -> String {
    let mut text = String::new();
    let paint = Paint(color);
    let (name, summary) = (&d.site.site.name, &d.summary);
    let branch = &d.branch;
    let against = d.tip.map_or_else(
        || format!("{branch} (no branch yet)"),
        |t| format!("{branch} @ {}", short(t)),
    );
    if summary.is_empty() {
        text.push_str(&format!("{name}: up to date with {against}\n"));
        return text;
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
    if let Some(u) = &summary.upgrade {
        text.push_str(&paint.wrap("1", &format!("  Upgrade: {}\n", u.title())));
        for (depth, line) in u.lines() {
            text.push_str(&format!("{:width$}{line}\n", "", width = 4 + 2 * depth));
        }
    }
    if stat {
        stat_lines(&mut text, d, &paint);
    } else {
        unified(&mut text, d, &paint);
    }
    text
}

fn stat_lines(text: &mut String, d: &SiteDiff<'_>, paint: &Paint) {
    let files = &d.summary.files;
    let width = files.iter().map(|f| f.path.len()).max().unwrap_or(0);
    for f in files {
        text.push_str(&format!(
            "  {:width$} | {:>5} {}{}\n",
            f.path,
            f.lines_added + f.lines_removed,
            paint.wrap("32", &"+".repeat(f.lines_added.min(40))),
            paint.wrap("31", &"-".repeat(f.lines_removed.min(40))),
        ));
    }
}

fn unified(text: &mut String, d: &SiteDiff<'_>, paint: &Paint) {
    let name = &d.site.site.name;
    for f in &d.summary.files {
        let a = d
            .old
            .get(&f.path)
            .map(|b| String::from_utf8_lossy(b))
            .unwrap_or_default();
        let b = d
            .tree
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

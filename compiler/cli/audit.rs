//! `dify-cfg audit`: each site branch against a recompile of its source
//! commit and against the sources at a revision; exit 1 unless every
//! branch is `reproducible`.

use std::path::Path;

use crate::cli::exit::{ExitCode, Failure};
use crate::cli::output::{Output, Report, Text};
use crate::git::Repo;
use crate::gitops::{AuditEntry, Verdict, audit_branches};

/// What to audit.
pub struct AuditOptions {
    /// Only these sites' branches.
    pub sites: Vec<String>,
    /// Judge staleness against the sources at this revision.
    pub rev: String,
    /// The branches `<prefix><site>`.
    pub branch_prefix: String,
}

pub struct AuditReport {
    pub rev: String,
    pub branch_prefix: String,
    pub entries: Vec<AuditEntry>,
}

impl AuditReport {
    fn failing(&self) -> impl Iterator<Item = &AuditEntry> {
        self.entries.iter().filter(|e| !e.verdict.passes())
    }

    fn failed(&self) -> bool {
        self.failing().next().is_some()
    }
}

/// Audit; the errors of the sources at the revision, which make entries
/// `unknown`, are printed with the report.
pub fn run(root: &Path, opts: &AuditOptions, out: &Output) -> Result<AuditReport, Failure> {
    let repo = Repo::discover(root)?;
    let bar = out.progress("audit");
    let audit = audit_branches(&repo, &opts.branch_prefix, &opts.sites, &opts.rev, &*bar)?;
    if audit.current.diagnostics.has_errors() {
        out.diagnostics(&audit.current.diagnostics, &audit.current.inputs);
    }
    Ok(AuditReport {
        rev: opts.rev.clone(),
        branch_prefix: opts.branch_prefix.clone(),
        entries: audit.entries,
    })
}

/// At most `n` characters of `s` (a trailer may hold anything).
fn prefix(s: &str, n: usize) -> String {
    s.chars()
        .take(n)
        .collect::<String>()
        .escape_debug()
        .to_string()
}

impl AuditReport {
    /// The report for people; `quiet`: the branches that fail only.
    fn text_with(&self, quiet: bool) -> Text {
        let mut out = String::new();
        let mut line = |s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        if self.entries.is_empty() {
            line(format!("no branches `{}*` to audit", self.branch_prefix));
        }
        let width = self.entries.iter().map(|e| e.site.len()).max().unwrap_or(0);
        for e in self
            .entries
            .iter()
            .filter(|e| !quiet || !e.verdict.passes())
        {
            let mut head = format!("{:width$}  {:12}  {}", e.site, e.verdict.as_str(), e.branch);
            match &e.tip {
                Some(tip) => head.push_str(&format!(" @ {}", prefix(tip, 12))),
                None => head.push_str(" (no branch)"),
            }
            if let Some(src) = &e.source_commit {
                head.push_str(&format!(" (source {})", prefix(src, 12)));
            }
            line(head);
            if !e.drifted.is_empty() {
                line(format!(
                    "{:width$}  edited on the branch: {}",
                    "",
                    e.drifted.join(", ")
                ));
            }
            if !e.stale.is_empty() && e.verdict != Verdict::Drift {
                line(format!(
                    "{:width$}  {} would change: {}",
                    "",
                    self.rev,
                    e.stale.join(", ")
                ));
            }
            for n in &e.notes {
                line(format!("{:width$}  note: {n}", ""));
            }
        }
        let failing: Vec<String> = self
            .failing()
            .map(|e| format!("{} {}", e.site, e.verdict.as_str()))
            .collect();
        if !failing.is_empty() {
            line(format!(
                "{} of {} sites fail the audit: {}",
                failing.len(),
                self.entries.len(),
                failing.join(", ")
            ));
        }
        Text {
            stdout: out,
            stderr: String::new(),
        }
    }
}

impl Report for AuditReport {
    fn text(&self) -> Text {
        self.text_with(false)
    }

    fn quiet_text(&self) -> Text {
        self.text_with(true)
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "rev": self.rev,
            "branches": self.entries,
            "ok": !self.failed(),
        })
    }

    fn exit_code(&self) -> ExitCode {
        if self.failed() {
            ExitCode::Differs
        } else {
            ExitCode::Success
        }
    }
}

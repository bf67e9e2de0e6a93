//! `dify-cfg explain`: a site's effective configuration, each value with the
//! file:line that set it. The values are shown even when the fleet has
//! errors (they are what one needs to find the mistake); the exit code still
//! says so.

use std::path::Path;

use crate::base::diagnostic::did_you_mean;
use crate::cli::exit::{ExitCode, Failure};
use crate::cli::output::{Output, Report, Text};
use crate::driver::explain::{Entry, entries, to_text};
use crate::driver::{analyze, read_inputs};

/// What to explain.
pub struct ExplainOptions {
    pub site: String,
    /// Only this key and what is under it.
    pub key: Option<String>,
}

pub struct ExplainReport {
    pub site: String,
    pub chain: Vec<String>,
    pub entries: Vec<Entry>,
    /// The fleet has errors (exit 2 after the report).
    pub has_errors: bool,
}

pub fn run(root: &Path, opts: &ExplainOptions, out: &Output) -> Result<ExplainReport, Failure> {
    let (inputs, diags) = read_inputs(root);
    let analysis = analyze(&inputs, diags);
    let Some(rs) = analysis.resolved.iter().find(|r| r.name == opts.site) else {
        out.diagnostics(&analysis.diagnostics, &inputs);
        let names = analysis.resolved.iter().map(|r| r.name.as_str());
        let hint = did_you_mean(&opts.site, names)
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        return Err(Failure::NoSite {
            site: opts.site.clone(),
            hint,
        });
    };
    let valid = analysis.sites.iter().find(|s| s.site.name == opts.site);
    let entries = entries(rs, valid, &inputs.sources, opts.key.as_deref());
    if let Some(key) = &opts.key
        && entries.is_empty()
    {
        return Err(Failure::NoKey {
            site: opts.site.clone(),
            key: key.clone(),
        });
    }
    out.diagnostics(&analysis.diagnostics, &inputs);
    Ok(ExplainReport {
        site: rs.name.clone(),
        chain: rs.chain.clone(),
        entries,
        has_errors: analysis.diagnostics.has_errors(),
    })
}

impl Report for ExplainReport {
    fn text(&self) -> Text {
        Text {
            stdout: to_text(&self.site, &self.chain, &self.entries),
            stderr: String::new(),
        }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "site": self.site,
            "profile-chain": self.chain,
            "entries": self.entries,
        })
    }

    fn exit_code(&self) -> ExitCode {
        if self.has_errors {
            ExitCode::Invalid
        } else {
            ExitCode::Success
        }
    }
}

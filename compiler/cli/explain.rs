//! `dify-cfg explain`: a site's effective configuration, each value with the
//! file:line that set it. The values are shown even when the fleet has
//! errors (they are what one needs to find the mistake); the exit code still
//! says so.

use std::collections::BTreeSet;
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
        let all = crate::driver::explain::entries(rs, valid, &inputs.sources, None);
        let known = key_paths(&all);
        let hint = did_you_mean(key, known.iter().map(String::as_str))
            .map(|k| format!(" (did you mean `{k}`?)"))
            .unwrap_or_default();
        return Err(Failure::NoKey {
            site: opts.site.clone(),
            key: key.clone(),
            hint,
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

/// Every key `explain` could be asked for: each entry's, and each table
/// above it (`services.api`, `network.egress[0]`).
fn key_paths(entries: &[Entry]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for e in entries {
        for (i, c) in e.key.char_indices() {
            if c == '.' || c == '[' {
                out.insert(e.key[..i].to_string());
            }
        }
        out.insert(e.key.clone());
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelt_key_is_matched_against_every_key_and_table() {
        let entry = |key: &str| Entry {
            key: key.into(),
            value: "1".into(),
            json: 1.into(),
            location: None,
            note: None,
        };
        let entries = [
            entry("services.api.memory"),
            entry("services.api.memory-request"),
            entry("network.egress[0].cidr"),
        ];
        let known = key_paths(&entries);
        let names: Vec<&str> = known.iter().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "network",
                "network.egress",
                "network.egress[0]",
                "network.egress[0].cidr",
                "services",
                "services.api",
                "services.api.memory",
                "services.api.memory-request",
            ]
        );
        let suggest = |k: &str| did_you_mean(k, known.iter().map(String::as_str));
        assert_eq!(suggest("services.api.memroy"), Some("services.api.memory"));
        assert_eq!(suggest("services.apii"), Some("services.api"));
        assert_eq!(suggest("zzz"), None);
    }
}

//! The front half of a compilation, shared by every command: load, parse,
//! resolve and validate the whole fleet, and select sites by profile or name.

pub mod explain;

use std::path::Path;

use crate::base::diagnostic::{Diagnostic, Diagnostics, did_you_mean};
use crate::cli::Selection;
use crate::input::load::{Inputs, load};
use crate::input::resolve::{ResolvedSite, resolve, resolve_each};
use crate::validate::{Sharing, ValidSite, validate_fleet, validate_site};

/// The fleet after validation. `sites` holds the sites that passed; when
/// `diagnostics` has errors the caller must not emit anything.
pub struct Analysis<'a> {
    pub resolved: Vec<ResolvedSite<'a>>,
    pub sites: Vec<ValidSite>,
    pub diagnostics: Diagnostics,
}

/// Read the inputs under `root`.
pub fn read_inputs(root: &Path) -> (Inputs, Diagnostics) {
    let mut diags = Diagnostics::new();
    let inputs = load(root, &mut diags);
    (inputs, diags)
}

/// Parse, resolve and validate every site of the fleet. The sites hold what
/// they have alike once ([`Sharing`]).
pub fn analyze(inputs: &Inputs, mut diagnostics: Diagnostics) -> Analysis<'_> {
    let fleet = resolve(inputs, &mut diagnostics);
    let mut sites = Vec::with_capacity(fleet.sites.len());
    let mut sharing = Sharing::default();
    for rs in &fleet.sites {
        if let Some(mut v) = validate_site(rs, &inputs.sources, &mut diagnostics) {
            sharing.share(&mut v);
            sites.push(v);
        }
    }
    finish(inputs, fleet.sites, sites, diagnostics)
}

/// The fleet-wide checks, then the analysis.
fn finish<'a>(
    inputs: &'a Inputs,
    resolved: Vec<ResolvedSite<'a>>,
    sites: Vec<ValidSite>,
    mut diagnostics: Diagnostics,
) -> Analysis<'a> {
    validate_fleet(&sites, &inputs.sources, &mut diagnostics);
    if inputs.sites.is_empty() && !diagnostics.has_errors() {
        diagnostics.push(
            Diagnostic::error("no-sites", "there are no sites to build")
                .help("add a file per site under `sites/`, e.g. `sites/clinic-01.toml` with `profile = \"edge-4gb\"`"),
        );
    }
    Analysis {
        resolved,
        sites,
        diagnostics: diagnostics.sorted(),
    }
}

/// [`analyze`] without keeping the merged trees: each site is validated as
/// soon as it is resolved and its tree dropped, so memory grows with the
/// typed sites only. `resolved` is empty; `explain` uses [`analyze`].
pub fn analyze_lean(inputs: &Inputs, mut diagnostics: Diagnostics) -> Analysis<'_> {
    let mut sites = Vec::with_capacity(inputs.sites.len());
    let mut sharing = Sharing::default();
    resolve_each(inputs, &mut diagnostics, |rs, diags| {
        if let Some(mut v) = validate_site(&rs, &inputs.sources, diags) {
            sharing.share(&mut v);
            sites.push(v);
        }
    });
    finish(inputs, Vec::new(), sites, diagnostics)
}

/// The fleet compiled from one source (the working tree or a commit): the
/// inputs and the sites that validated. What every command but `explain`
/// starts from.
pub struct Compiled {
    pub inputs: Inputs,
    pub sites: Vec<ValidSite>,
    pub diagnostics: Diagnostics,
}

impl Compiled {
    /// The inputs under `root` on disk.
    pub fn read(root: &Path) -> Compiled {
        let (inputs, diags) = read_inputs(root);
        Compiled::from_inputs(inputs, diags)
    }

    pub fn from_inputs(inputs: Inputs, diags: Diagnostics) -> Compiled {
        let (sites, diagnostics) = {
            let a = analyze_lean(&inputs, diags);
            (a.sites, a.diagnostics)
        };
        Compiled {
            inputs,
            sites,
            diagnostics,
        }
    }

    /// The sites a command line selects.
    pub fn select(&self, selection: &Selection) -> Result<Vec<&ValidSite>, SelectionError> {
        let profiles: Vec<&str> = self.inputs.profiles.keys().map(String::as_str).collect();
        select(
            &self.sites,
            selection.profile.as_deref(),
            &selection.sites,
            selection.wave,
            &profiles,
        )
    }
}

/// A mistake in the command line's selection (exit 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectionError(pub String);

impl std::fmt::Display for SelectionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Resolve `--profile P`: a profile name, or a prefix of exactly one.
pub fn resolve_profile<'n>(
    wanted: &str,
    names: impl IntoIterator<Item = &'n str>,
) -> Result<String, SelectionError> {
    let names: Vec<&str> = names.into_iter().collect();
    if names.contains(&wanted) {
        return Ok(wanted.to_string());
    }
    let matches: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| n.starts_with(wanted))
        .collect();
    match matches.as_slice() {
        [one] => Ok((*one).to_string()),
        [] => {
            let hint = did_you_mean(wanted, names.iter().copied())
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            Err(SelectionError(format!(
                "no profile matches `{wanted}`{hint}; profiles: {}",
                names.join(", ")
            )))
        }
        many => Err(SelectionError(format!(
            "`{wanted}` is ambiguous: it matches {}",
            many.join(", ")
        ))),
    }
}

/// Select the sites to build: those whose chain includes the profile (when
/// given), whose names were asked for (when given) and in the rollout wave
/// (when given).
pub fn select<'v>(
    sites: &'v [ValidSite],
    profile: Option<&str>,
    names: &[String],
    wave: Option<u32>,
    all_profiles: &[&str],
) -> Result<Vec<&'v ValidSite>, SelectionError> {
    let profile = match profile {
        Some(p) => Some(resolve_profile(p, all_profiles.iter().copied())?),
        None => None,
    };
    for n in names {
        if !sites.iter().any(|s| &s.site.name == n) {
            let hint = did_you_mean(n, sites.iter().map(|s| s.site.name.as_str()))
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            return Err(SelectionError(format!("no site named `{n}`{hint}")));
        }
    }
    let chosen: Vec<&ValidSite> = sites
        .iter()
        .filter(|s| {
            profile
                .as_ref()
                .is_none_or(|p| s.site.profile_chain.contains(p))
        })
        .filter(|s| names.is_empty() || names.contains(&s.site.name))
        .filter(|s| wave.is_none_or(|w| s.site.wave == w))
        .collect();
    if chosen.is_empty() {
        if let Some(w) = wave {
            let waves: std::collections::BTreeSet<u32> =
                sites.iter().map(|s| s.site.wave).collect();
            return Err(SelectionError(format!(
                "no selected site is in wave {w}; the fleet's waves are {}",
                waves
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        return Err(SelectionError(match profile {
            Some(p) => format!(
                "no site uses profile `{p}`{}",
                if names.is_empty() {
                    ""
                } else {
                    " among the sites named"
                }
            ),
            None => "no site matches the selection".to_string(),
        }));
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_prefixes() {
        let names = ["cloud", "edge-4gb", "edge-8gb", "multi-branch"];
        assert_eq!(resolve_profile("edge-4gb", names), Ok("edge-4gb".into()));
        assert_eq!(resolve_profile("multi", names), Ok("multi-branch".into()));
        let amb = resolve_profile("edge", names).unwrap_err().0;
        assert!(
            amb.contains("edge-4gb") && amb.contains("edge-8gb"),
            "{amb}"
        );
        let none = resolve_profile("clod", names).unwrap_err().0;
        assert!(none.contains("did you mean `cloud`"), "{none}");
        assert_eq!(
            resolve_profile("edge", ["edge-4gb", "cloud"]),
            Ok("edge-4gb".into())
        );
    }
}

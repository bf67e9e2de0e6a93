//! Site selection: `--profile` (a name or a unique prefix), `--site` and
//! `--wave`, with "did you mean" for names that match nothing.

use crate::base::diagnostic::did_you_mean;
use crate::driver::analyze::Compiled;
use crate::validate::ValidSite;

/// Which sites a command works on: all, or those the options name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Only the sites whose profile chain includes this profile (a name or a unique prefix).
    pub profile: Option<String>,
    /// Only these sites.
    pub sites: Vec<String>,
    /// Only the sites of this rollout wave (1 is the canary).
    pub wave: Option<u32>,
}

impl Compiled {
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

impl std::error::Error for SelectionError {}

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

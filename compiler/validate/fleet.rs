//! Fleet-wide rules, checked across the valid sites: overlapping LANs.

use super::ValidSite;
use crate::base::codes::Code;
use crate::base::diagnostic::{Diagnostic, Diagnostics};
use crate::base::source::SourceMap;

/// Overlapping LANs between sites: two boxes would fight over addresses
/// and the admin network could not route to both.
pub fn validate_fleet(sites: &[ValidSite], sources: &SourceMap, diags: &mut Diagnostics) {
    for (i, a) in sites.iter().enumerate() {
        for b in &sites[..i] {
            if let (Some(la), Some(lb)) = (a.site.network.lan, b.site.network.lan)
                && (la.contains(&lb.network()) || lb.contains(&la.network()))
            {
                let other = b
                    .lan_span
                    .as_ref()
                    .map(|s| sources.location(s).to_string())
                    .unwrap_or_else(|| b.site.file.clone());
                diags.push(
                    Diagnostic::error(
                        Code::OverlappingLan,
                        format!(
                            "the LAN of `{}` ({la}) overlaps the LAN of `{}` ({lb})",
                            a.site.name, b.site.name
                        ),
                    )
                    .at_opt(a.lan_span.clone())
                    .note(format!("`{}` sets its LAN at {other}", b.site.name))
                    .help("give every site its own LAN, e.g. 10.20.N.0/24 for clinic N"),
                );
            }
        }
    }
}

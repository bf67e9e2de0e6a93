//! Fleet-wide rules, checked across the valid sites: overlapping LANs,
//! host names two sites share.

use std::collections::BTreeMap;

use super::ValidSite;
use crate::base::codes::Code;
use crate::base::diagnostic::{Diagnostic, Diagnostics};
use crate::base::source::{SourceMap, Span};

/// The fleet-wide rules.
pub fn validate_fleet(sites: &[ValidSite], sources: &SourceMap, diags: &mut Diagnostics) {
    overlapping_lans(sites, sources, diags);
    shared_hostnames(sites, sources, diags);
}

/// Where `site` set a value (`span`), or its file when a default did.
fn place(span: Option<&Span>, site: &ValidSite, sources: &SourceMap) -> String {
    span.map(|s| sources.location(s).to_string())
        .unwrap_or_else(|| site.site.file.clone())
}

/// The error of a rule two sites break together, at `span` in the later
/// site, with `notes` saying where each sets the value.
fn clash(
    code: Code,
    message: String,
    span: Option<Span>,
    notes: &[String],
    help: &str,
) -> Diagnostic {
    notes
        .iter()
        .fold(Diagnostic::error(code, message).at_opt(span), |d, n| {
            d.note(n.clone())
        })
        .help(help)
}

/// Overlapping LANs between sites: two boxes would fight over addresses
/// and the admin network could not route to both.
fn overlapping_lans(sites: &[ValidSite], sources: &SourceMap, diags: &mut Diagnostics) {
    for (i, a) in sites.iter().enumerate() {
        for b in &sites[..i] {
            if let (Some(la), Some(lb)) = (a.site.network.lan, b.site.network.lan)
                && (la.contains(&lb.network()) || lb.contains(&la.network()))
            {
                let other = place(b.lan_span.as_ref(), b, sources);
                diags.push(clash(
                    Code::OverlappingLan,
                    format!(
                        "the LAN of `{}` ({la}) overlaps the LAN of `{}` ({lb})",
                        a.site.name, b.site.name
                    ),
                    a.lan_span.clone(),
                    &[format!("`{}` sets its LAN at {other}", b.site.name)],
                    "give every site its own LAN, e.g. 10.20.N.0/24 for clinic N",
                ));
            }
        }
    }
}

/// Two sites with one host name: nginx's `server_name`, the certificate
/// and every URL Dify hands out would name both boxes. Each later site
/// is reported at its host name, naming the first site that has it.
fn shared_hostnames(sites: &[ValidSite], sources: &SourceMap, diags: &mut Diagnostics) {
    let mut first: BTreeMap<&str, &ValidSite> = BTreeMap::new();
    for site in sites {
        let name = site.site.network.hostname.as_str();
        if name.is_empty() {
            continue;
        }
        let Some(other) = first.get(name).copied() else {
            first.insert(name, site);
            continue;
        };
        let here = place(site.hostname_span.as_ref(), site, sources);
        let there = place(other.hostname_span.as_ref(), other, sources);
        let help = if here == there {
            "both sites take it from the same file: set `network.hostname` in each site's own file"
        } else {
            "give every site its own `network.hostname`"
        };
        let notes = [
            format!("`{}` sets it at {here}", site.site.name),
            format!("`{}` sets it at {there}", other.site.name),
        ];
        diags.push(
            clash(
                Code::DuplicateHostname,
                format!(
                    "`{}` and `{}` have the same host name `{name}`",
                    other.site.name, site.site.name
                ),
                site.hostname_span.clone(),
                &notes,
                help,
            )
            .label("nginx's `server_name` and Dify's URLs would name both sites"),
        );
    }
}

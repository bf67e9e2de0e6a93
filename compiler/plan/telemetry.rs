//! Dify's community telemetry (from 1.16.1 on by default): whether a site
//! sends it, and why. A compose box's egress is its allow-list, so where
//! no `[[network.egress]]` rule reaches an endpoint dify-cfg turns it off
//! (`DISABLE_TELEMETRY=true`); where one may, Dify's default stands. The
//! site's `[env]` wins over both.

use std::net::IpAddr;

use serde::Serialize;

use crate::dify::release::{TELEMETRY_ENDPOINTS, sends_telemetry};
use crate::model::{Egress, Site, Target};
use crate::validate::holds_internet;

/// A site's telemetry, as its settings leave it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Telemetry {
    /// Whether the api sends it.
    pub on: bool,
    /// Whether dify-cfg writes `DISABLE_TELEMETRY=true` for it.
    pub disabled_by_dify_cfg: bool,
    /// Why, for people.
    pub why: String,
}

/// The site's telemetry; `None` when its release sends none.
pub fn telemetry(site: &Site) -> Option<Telemetry> {
    if !sends_telemetry(&site.dify_version) {
        return None;
    }
    let reachable = reaching_rules(site);
    let disabled_by_dify_cfg = site.target == Target::Compose && reachable.is_empty();
    let set = |name: &str| site.env.get(name).map(|v| truthy(v));
    let (on, why) = match (set("DISABLE_TELEMETRY"), set("DO_NOT_TRACK")) {
        (Some(true), _) | (_, Some(true)) => (
            false,
            "the site's `[env]` turns it off (`DISABLE_TELEMETRY` or `DO_NOT_TRACK`)".to_string(),
        ),
        (Some(false), _) => (
            true,
            "the site's `[env]` sets `DISABLE_TELEMETRY` to false".to_string(),
        ),
        _ if site.target == Target::Helm => (
            true,
            "Dify's default: a helm site's egress is the cluster's, which dify-cfg does not know; `[env] DISABLE_TELEMETRY = \"true\"` turns it off".to_string(),
        ),
        _ if disabled_by_dify_cfg => (
            false,
            format!(
                "dify-cfg sets `DISABLE_TELEMETRY=true`: the site's egress ({}) reaches none of {}",
                egress_list(&site.network.egress),
                endpoints(site)
                    .iter()
                    .map(|e| e.text.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        _ => (
            true,
            format!(
                "Dify's default: {} may reach it; `[env] DISABLE_TELEMETRY = \"true\"` turns it off",
                reachable.join("; ")
            ),
        ),
    };
    Some(Telemetry {
        on,
        disabled_by_dify_cfg,
        why,
    })
}

fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "true" | "1" | "yes" | "on"
    )
}

fn egress_list(egress: &[Egress]) -> String {
    if egress.is_empty() {
        return "none".to_string();
    }
    egress
        .iter()
        .map(|e| format!("`{}` {}", e.name, e.cidr))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where a site's telemetry would go: host, port, and the URL's
/// `host:port` for people.
struct Endpoint {
    host: String,
    port: u16,
    text: String,
}

/// The endpoints the site's api would send to: its `[env]`'s, else the
/// release's defaults.
fn endpoints(site: &Site) -> Vec<Endpoint> {
    TELEMETRY_ENDPOINTS
        .iter()
        .filter_map(|(name, default)| {
            let url = site.env.get(*name).map_or(*default, String::as_str);
            endpoint(url)
        })
        .collect()
}

fn endpoint(url: &str) -> Option<Endpoint> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    let default_port = if scheme.eq_ignore_ascii_case("http") {
        80
    } else {
        443
    };
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']')?;
            (host, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default_port,
    };
    (!host.is_empty()).then(|| Endpoint {
        host: host.to_ascii_lowercase(),
        port,
        text: format!("{host}:{port}"),
    })
}

/// The egress rules that may reach an endpoint, described: an address in
/// the rule's network, or (for a name, whose addresses dify-cfg cannot
/// know) a rule to internet addresses, on the endpoint's port.
fn reaching_rules(site: &Site) -> Vec<String> {
    let mut out = Vec::new();
    for ep in endpoints(site) {
        for e in site.network.egress.iter() {
            let reaches = e.ports.contains(&ep.port)
                && match ep.host.parse::<IpAddr>() {
                    Ok(ip) => e.cidr.contains(&ip),
                    Err(_) => holds_internet(&e.cidr),
                };
            if reaches {
                out.push(format!(
                    "egress rule `{}` ({}) to {}",
                    e.name, e.cidr, ep.text
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::fixtures::{cloud, edge};

    fn rule(name: &str, cidr: &str, ports: &[u16]) -> Egress {
        Egress {
            name: name.into(),
            cidr: cidr.parse().unwrap(),
            ports: ports.to_vec(),
        }
    }

    fn on_1_16_1(mut site: Site, egress: Vec<Egress>) -> Site {
        site.dify_version = "1.16.1".into();
        *site.network.egress = egress;
        site
    }

    #[test]
    fn off_where_the_egress_reaches_no_endpoint() {
        assert_eq!(telemetry(&edge()), None, "1.16.0 sends none");
        let t = telemetry(&on_1_16_1(
            edge(),
            vec![rule("llm", "10.0.0.40/32", &[443])],
        ))
        .unwrap();
        assert!(!t.on && t.disabled_by_dify_cfg, "{t:?}");
        assert!(t.why.contains("`llm` 10.0.0.40/32") && t.why.contains("otel.dify.ai:443"));
        let none = telemetry(&on_1_16_1(edge(), vec![])).unwrap();
        assert!(none.why.contains("egress (none)"), "{}", none.why);
        // An internet rule on another port does not reach it either.
        let http = telemetry(&on_1_16_1(edge(), vec![rule("web", "0.0.0.0/0", &[80])]));
        assert!(http.unwrap().disabled_by_dify_cfg);
    }

    #[test]
    fn on_where_a_rule_may_reach_it_or_the_site_says_so() {
        let t = telemetry(&on_1_16_1(
            edge(),
            vec![rule("internet", "0.0.0.0/0", &[443])],
        ))
        .unwrap();
        assert!(t.on && !t.disabled_by_dify_cfg, "{t:?}");
        assert!(t.why.contains("`internet` (0.0.0.0/0) to otel.dify.ai:443"));
        // An endpoint of the site's own, inside its egress.
        let mut site = on_1_16_1(edge(), vec![rule("llm", "10.0.0.40/32", &[443])]);
        site.env.insert(
            "TELEMETRY_ENDPOINT".into(),
            "https://10.0.0.40/v1/events".into(),
        );
        assert!(telemetry(&site).unwrap().on);
        site.env.insert("DO_NOT_TRACK".into(), "true".into());
        let t = telemetry(&site).unwrap();
        assert!(!t.on && !t.disabled_by_dify_cfg && t.why.contains("`[env]`"));
        let mut helm = cloud();
        helm.dify_version = "1.16.1".into();
        let t = telemetry(&helm).unwrap();
        assert!(t.on && !t.disabled_by_dify_cfg && t.why.contains("helm"));
    }

    #[test]
    fn endpoints_are_read_as_urls() {
        let e = endpoint("https://user@[2001:db8::1]:8443/x").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("2001:db8::1", 8443));
        let e = endpoint("http://Collector.example/v1").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("collector.example", 80));
        assert!(endpoint("no scheme").is_none());
        assert!(endpoint("https://:443/").is_none());
    }
}

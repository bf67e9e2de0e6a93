//! nginx/default.conf: the routes nginx serves and to whom.

use std::collections::BTreeSet;

use serde::Serialize;

use super::common::{KeyValue, SiteInfo, has, http_url, kv, site_info};
use crate::dify;
use crate::model::{ServiceKind, Site};

/// The largest request body the site's front proxy passes on (Dify's own
/// compose nginx: `NGINX_CLIENT_MAX_BODY_SIZE`, 100M); a helm site's
/// ingress and the chart's nginx take the same.
pub const CLIENT_MAX_BODY_SIZE: &str = "100m";

/// Docker's embedded DNS server, which resolves compose service names.
pub const DOCKER_DNS: &str = "127.0.0.11";

#[derive(Debug, Clone, Serialize)]
pub struct NginxContext {
    pub site: SiteInfo,
    pub listen: u16,
    pub server_name: String,
    pub resolver: &'static str,
    /// nginx variables holding upstream URLs, resolved per request.
    pub upstreams: Vec<KeyValue>,
    pub locations: Vec<NginxLocation>,
    pub websocket: bool,
    pub client_max_body_size: &'static str,
    /// Path of the loopback-only health location of the default server.
    pub health_path: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct NginxLocation {
    /// `=` for an exact match, empty for a prefix.
    pub modifier: &'static str,
    pub path: String,
    /// nginx variable of the upstream, without `$`.
    pub upstream: &'static str,
    /// `lan` (the site LAN and the admin networks) or `admin`.
    pub audience: &'static str,
    pub allow: Vec<String>,
    pub websocket: bool,
    pub why: String,
}

fn upstream_var(kind: ServiceKind) -> &'static str {
    match kind {
        ServiceKind::Api => "dify_api",
        ServiceKind::Web => "dify_web",
        ServiceKind::PluginDaemon => "dify_plugin_daemon",
        ServiceKind::ApiWebsocket => "dify_api_websocket",
        _ => "dify_api",
    }
}

fn upstream_port(kind: ServiceKind) -> u16 {
    match kind {
        ServiceKind::Web => dify::WEB_PORT,
        ServiceKind::PluginDaemon => dify::PLUGIN_DAEMON_PORT,
        _ => dify::API_PORT,
    }
}

/// The networks a LAN route is open to: the site LAN(s) and the admin
/// networks; an admin route only to the admin networks.
fn audience(site: &Site, public: bool) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if public {
        out.extend(site.network.lan.map(|n| n.to_string()));
        out.extend(site.network.lan6.map(|n| n.to_string()));
    }
    out.extend(site.network.admin.iter().map(|n| n.to_string()));
    let mut seen = BTreeSet::new();
    out.retain(|n| seen.insert(n.clone()));
    out
}

pub(super) fn nginx(site: &Site) -> NginxContext {
    let public: BTreeSet<&str> = site
        .network
        .public_routes
        .iter()
        .map(String::as_str)
        .collect();
    let mut locations = Vec::new();
    let mut used = BTreeSet::new();
    let mut location =
        |modifier: &'static str, path: &str, kind: ServiceKind, public: bool, why: String| {
            used.insert(kind);
            NginxLocation {
                modifier,
                path: path.to_string(),
                upstream: upstream_var(kind),
                audience: if public { "lan" } else { "admin" },
                allow: audience(site, public),
                websocket: kind == ServiceKind::ApiWebsocket,
                why,
            }
        };
    if has(site, ServiceKind::Api) {
        locations.push(location(
            "=",
            "/health",
            ServiceKind::Api,
            true,
            "api health".into(),
        ));
    }
    for (prefix, why) in dify::ROUTES {
        let Some(kind) = dify::route_service(prefix) else {
            continue;
        };
        if !has(site, kind) {
            continue;
        }
        locations.push(location(
            "",
            prefix,
            kind,
            public.contains(prefix),
            (*why).to_string(),
        ));
    }
    // A public route narrower than Dify's prefixes (e.g. only
    // `/v1/completion-messages`) gets its own location, served by the
    // service of the longest Dify prefix it falls under.
    for route in &site.network.public_routes {
        if dify::ROUTES.iter().any(|(p, _)| p == route) {
            continue;
        }
        let owner = dify::ROUTES
            .iter()
            .filter(|(p, _)| {
                route.starts_with(p) || (p.ends_with('/') && route == p.trim_end_matches('/'))
            })
            .max_by_key(|(p, _)| p.len());
        if let Some((prefix, _)) = owner
            && let Some(kind) = dify::route_service(prefix)
            && has(site, kind)
        {
            locations.push(location(
                "",
                route,
                kind,
                true,
                format!("part of {prefix} opened to the LAN"),
            ));
        }
    }
    locations.sort_by(|a, b| a.path.cmp(&b.path).then(a.modifier.cmp(b.modifier)));
    let upstreams = used
        .iter()
        .map(|&k| {
            kv(
                upstream_var(k),
                http_url(k.compose_name(), upstream_port(k)),
            )
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    NginxContext {
        site: site_info(site),
        listen: site.network.http_port,
        server_name: site.network.hostname.clone(),
        resolver: DOCKER_DNS,
        upstreams,
        websocket: locations.iter().any(|l| l.websocket),
        locations,
        client_max_body_size: CLIENT_MAX_BODY_SIZE,
        health_path: "/nginx-health",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::fixtures::edge;

    #[test]
    fn public_routes_open_to_the_lan_the_rest_to_admins() {
        let n = nginx(&edge());
        let v1 = n.locations.iter().find(|l| l.path == "/v1").unwrap();
        assert_eq!(v1.allow, ["10.20.1.0/24", "10.0.0.0/24"]);
        let console = n
            .locations
            .iter()
            .find(|l| l.path == "/console/api")
            .unwrap();
        assert_eq!(console.allow, ["10.0.0.0/24"]);
        assert!(
            !n.locations.iter().any(|l| l.path == "/socket.io/"),
            "no websocket without api_websocket"
        );
        let health = n.locations.iter().find(|l| l.path == "/health").unwrap();
        assert_eq!(health.modifier, "=");
        assert_eq!(health.audience, "lan");

        let mut site = edge();
        site.network.public_routes = vec!["/v1/completion-messages".into()].into();
        let n = nginx(&site);
        let narrow = n
            .locations
            .iter()
            .find(|l| l.path == "/v1/completion-messages")
            .unwrap();
        assert_eq!(narrow.upstream, "dify_api");
        assert_eq!(narrow.audience, "lan");
        let v1 = n.locations.iter().find(|l| l.path == "/v1").unwrap();
        assert_eq!(v1.audience, "admin");
    }
}

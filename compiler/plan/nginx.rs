//! nginx/default.conf: the routes nginx serves and to whom, on which
//! ports, and with TLS how.

use std::collections::BTreeSet;

use serde::Serialize;

use super::common::{KeyValue, SiteInfo, base_url, has, http_url, kv, site_info};
use crate::dify;
use crate::model::{PlainHttp, ServiceKind, Site};

/// The largest request body the site's front proxy passes on (Dify's own
/// compose nginx: `NGINX_CLIENT_MAX_BODY_SIZE`, 100M); a helm site's
/// ingress and the chart's nginx take the same.
pub const CLIENT_MAX_BODY_SIZE: &str = "100m";

/// Docker's embedded DNS server, which resolves compose service names.
pub const DOCKER_DNS: &str = "127.0.0.11";

/// TLS as nginx serves it: TLS 1.2 and 1.3 only, forward-secret AEAD
/// ciphers for 1.2 (1.3's suites are all of that kind), no session tickets
/// (their keys would outlive the sessions), a small shared session cache.
pub const TLS_PROTOCOLS: &str = "TLSv1.2 TLSv1.3";
pub const TLS_CIPHERS: &str = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
/// About 4,000 sessions: a clinic's browsers, in 1 MiB of the 48 MiB box
/// share nginx has.
pub const TLS_SESSION_CACHE: &str = "shared:dify_tls:1m";
pub const TLS_SESSION_TIMEOUT: &str = "1d";
/// HSTS where plain http is not served: a year, this host only (other
/// hosts of the clinic's domain may still need plain http).
pub const HSTS: &str = "max-age=31536000";

#[derive(Debug, Clone, Serialize)]
pub struct NginxContext {
    pub site: SiteInfo,
    /// The plain http port (`network.http-port`).
    pub listen: u16,
    /// TLS settings, when nginx terminates TLS.
    pub tls: Option<NginxTls>,
    /// The servers answering any other host name (and nginx's own health
    /// check), one per listening port.
    pub catch_all: Vec<CatchAll>,
    /// The servers of the site's host name, one per listening port.
    pub servers: Vec<NginxServer>,
    /// Networks that may use plain http where only the LAN may.
    pub plain_http_from: Vec<String>,
    /// Where plain http is redirected to: the site's https URL.
    pub https_url: String,
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
pub struct NginxTls {
    pub port: u16,
    /// Paths inside the container, where compose mounts the box's files.
    pub certificate: &'static str,
    pub key: &'static str,
    pub protocols: &'static str,
    pub ciphers: &'static str,
    pub session_cache: &'static str,
    pub session_timeout: &'static str,
    /// HTTP/2 as `http2 on;` (nginx 1.25.1 and later), else as a parameter
    /// of `listen`.
    pub http2_directive: bool,
}

/// A `default_server`: no answer (444), and the health location on the
/// plain port.
#[derive(Debug, Clone, Serialize)]
pub struct CatchAll {
    /// `PORT` or `127.0.0.1:PORT`.
    pub listen: String,
    /// On the container's loopback only (plain http refused).
    pub loopback: bool,
    pub tls: bool,
    pub health: bool,
}

/// A server of the site's host name.
#[derive(Debug, Clone, Serialize)]
pub struct NginxServer {
    pub listen: String,
    pub tls: bool,
    /// The `Strict-Transport-Security` value, where it is sent.
    pub hsts: Option<&'static str>,
    /// `""` (serve the routes), `always` (redirect every request to
    /// https) or `unless-lan` (serve the LAN, redirect everyone else).
    pub redirect: &'static str,
    /// What the server is for (a comment; empty on a site without TLS).
    pub why: &'static str,
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

pub(crate) fn nginx(site: &Site) -> NginxContext {
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
    let (catch_all, servers) = servers(site);
    NginxContext {
        site: site_info(site),
        listen: site.network.http_port,
        tls: site.network.tls.as_ref().map(|t| NginxTls {
            port: t.port,
            certificate: dify::tls::NGINX_CERTIFICATE_PATH,
            key: dify::tls::NGINX_KEY_PATH,
            protocols: TLS_PROTOCOLS,
            ciphers: TLS_CIPHERS,
            session_cache: TLS_SESSION_CACHE,
            session_timeout: TLS_SESSION_TIMEOUT,
            http2_directive: site
                .services
                .get(&ServiceKind::Nginx)
                .is_none_or(|s| dify::tls::nginx_reads_http2_directive(&s.image.tag)),
        }),
        catch_all,
        servers,
        plain_http_from: match &site.network.tls {
            Some(t) if t.http == PlainHttp::AllowLan => (site.network.lan.map(|n| n.to_string()))
                .into_iter()
                .chain(site.network.lan6.map(|n| n.to_string()))
                .collect(),
            _ => Vec::new(),
        },
        https_url: base_url(site),
        server_name: site.network.hostname.clone(),
        resolver: DOCKER_DNS,
        upstreams,
        websocket: locations.iter().any(|l| l.websocket),
        locations,
        client_max_body_size: CLIENT_MAX_BODY_SIZE,
        health_path: "/nginx-health",
    }
}

/// The listening servers: without TLS, plain http as before; with it, an
/// https server, and plain http as `[network.tls] http` says.
fn servers(site: &Site) -> (Vec<CatchAll>, Vec<NginxServer>) {
    let http = site.network.http_port;
    let plain = |redirect, why| NginxServer {
        listen: http.to_string(),
        tls: false,
        hsts: None,
        redirect,
        why,
    };
    let Some(tls) = &site.network.tls else {
        let catch_all = vec![CatchAll {
            listen: http.to_string(),
            loopback: false,
            tls: false,
            health: true,
        }];
        return (catch_all, vec![plain("", "")]);
    };
    let published = tls.http.published();
    let mut catch_all = vec![CatchAll {
        // Refused: the health check alone, on the container's loopback.
        listen: if published {
            http.to_string()
        } else {
            format!("127.0.0.1:{http}")
        },
        loopback: !published,
        tls: false,
        health: true,
    }];
    catch_all.push(CatchAll {
        listen: tls.port.to_string(),
        loopback: false,
        tls: true,
        health: false,
    });
    let mut servers = vec![NginxServer {
        listen: tls.port.to_string(),
        tls: true,
        hsts: tls.http.strict().then_some(HSTS),
        redirect: "",
        why: "The site on https.",
    }];
    match tls.http {
        PlainHttp::Refuse => {}
        PlainHttp::Redirect => servers.push(plain(
            "always",
            "Plain http: a redirect to https, nothing else.",
        )),
        PlainHttp::AllowLan => servers.push(plain(
            "unless-lan",
            "Plain http: the site LAN is served; anyone else is redirected to https.",
        )),
        PlainHttp::Allow => servers.push(plain("", "Plain http: served as on https.")),
    }
    (catch_all, servers)
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

    #[test]
    fn tls_serves_https_and_plain_http_as_the_site_says() {
        use crate::plan::fixtures::edge_tls;
        let listen = |n: &NginxContext| -> Vec<(String, bool, &str, Option<&str>)> {
            n.servers
                .iter()
                .map(|s| (s.listen.clone(), s.tls, s.redirect, s.hsts))
                .collect()
        };
        let own = |l: &str, tls, r, h| (l.to_string(), tls, r, h);
        let catch_all = |n: &NginxContext| -> Vec<(String, bool, bool)> {
            n.catch_all
                .iter()
                .map(|c| (c.listen.clone(), c.tls, c.health))
                .collect()
        };

        // Without TLS: plain http as before.
        let n = nginx(&edge());
        assert!(n.tls.is_none());
        assert_eq!(listen(&n), [own("80", false, "", None)]);
        assert_eq!(catch_all(&n), [("80".to_string(), false, true)]);

        // Refused: https only; the health check on loopback alone.
        let n = nginx(&edge_tls(PlainHttp::Refuse));
        assert_eq!(listen(&n), [own("443", true, "", Some(HSTS))]);
        assert_eq!(
            catch_all(&n),
            [
                ("127.0.0.1:80".to_string(), false, true),
                ("443".to_string(), true, false)
            ]
        );
        let tls = n.tls.as_ref().unwrap();
        assert_eq!(tls.certificate, dify::tls::NGINX_CERTIFICATE_PATH);
        assert_eq!(tls.protocols, "TLSv1.2 TLSv1.3");
        assert!(tls.http2_directive, "nginx 1.27 reads `http2 on;`");
        assert_eq!(n.https_url, "https://clinic-01.clinics.example.org");

        // Redirected: every plain request goes to https; HSTS.
        let n = nginx(&edge_tls(PlainHttp::Redirect));
        assert_eq!(
            listen(&n),
            [
                own("443", true, "", Some(HSTS)),
                own("80", false, "always", None)
            ]
        );
        assert!(n.plain_http_from.is_empty());

        // The LAN may use plain http, everyone else is redirected; no HSTS.
        let mut site = edge_tls(PlainHttp::AllowLan);
        site.network.lan6 = Some("fd00:20:1::/64".parse().unwrap());
        let n = nginx(&site);
        assert_eq!(
            listen(&n),
            [
                own("443", true, "", None),
                own("80", false, "unless-lan", None)
            ]
        );
        assert_eq!(n.plain_http_from, ["10.20.1.0/24", "fd00:20:1::/64"]);

        // Allowed: both serve the routes.
        let n = nginx(&edge_tls(PlainHttp::Allow));
        assert_eq!(
            listen(&n),
            [own("443", true, "", None), own("80", false, "", None)]
        );

        // Another https port shows in the redirect target; an older nginx
        // gets HTTP/2 as a `listen` parameter.
        let mut site = edge_tls(PlainHttp::Redirect);
        site.network.tls.as_mut().unwrap().port = 8443;
        site.services
            .get_mut(&ServiceKind::Nginx)
            .unwrap()
            .image
            .tag = "1.22.1-bookworm".into();
        let n = nginx(&site);
        assert_eq!(n.https_url, "https://clinic-01.clinics.example.org:8443");
        assert_eq!(n.servers[0].listen, "8443");
        assert!(!n.tls.unwrap().http2_directive);
    }
}

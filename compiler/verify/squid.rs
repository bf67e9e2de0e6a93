//! The cross-check of the SSRF proxy: `ssrf_proxy/squid.conf` read back
//! the way squid reads it, against `compose.yaml`, `dify.env` and the
//! firewall. Squid must listen on the port every proxy URL names; the
//! proxy must share a network with every service that uses it; compose
//! must mount the file where the image reads it; and every destination
//! squid lets through must be one the firewall lets the proxy's traffic
//! reach, so that the proxy never looks more open than the box is (or the
//! firewall quietly more open than the proxy). Templates can be
//! overridden, so this runs on the output.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;

use super::crosscheck::{compose_service, file_text};
use crate::base::codes::Code;
use crate::base::diagnostic::{Diagnostic, Diagnostics};
use crate::base::source::Span;
use crate::dify::ssrf_proxy::SQUID_CONFIG_PATH;
use crate::model::{ServiceKind, Site};
use crate::plan::{DOTENV_FILE, RULES_V4_FILE, RULES_V6_FILE, SQUID_FILE, TEMPLATE_SQUID};

/// Variables whose value is a proxy URL.
const PROXY_VARS: &[&str] = &[
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
    "SSRF_PROXY_HTTP_URL",
    "SSRF_PROXY_HTTPS_URL",
    "SSRF_PROXY_ALL_URL",
];

/// What squid's config says, as far as the cross-check needs it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SquidConfig {
    /// Ports of the `http_port` lines.
    pub listens: BTreeSet<u16>,
    /// Each `http_access` line: allow or deny, and its ACL names (a `!`
    /// kept on the name).
    pub access: Vec<(bool, Vec<String>)>,
    /// `dst` ACLs: name to networks.
    pub dst: BTreeMap<String, Vec<IpNet>>,
    /// `port` ACLs: name to ports (ranges expanded only as bounds).
    pub ports: BTreeMap<String, Vec<(u16, u16)>>,
}

/// Read a squid config: `http_port`, `acl ... dst`, `acl ... port` and
/// `http_access` lines (comments and other directives are skipped).
pub fn read_squid(text: &str) -> Result<SquidConfig, String> {
    let mut c = SquidConfig::default();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default();
        let words: Vec<&str> = line.split_whitespace().collect();
        let bad = |what: &str| format!("line {}: {what}: `{}`", n + 1, line.trim());
        match words.as_slice() {
            ["http_port", addr, ..] => {
                let port = addr.rsplit(':').next().unwrap_or(addr);
                c.listens
                    .insert(port.parse().map_err(|_| bad("an http_port squid reads"))?);
            }
            ["acl", name, "dst", rest @ ..] => {
                let nets = c.dst.entry(name.to_string()).or_default();
                for w in rest.iter().filter(|w| !w.starts_with('-')) {
                    nets.push(parse_net(w).ok_or_else(|| bad("a dst network"))?);
                }
            }
            ["acl", name, "port", rest @ ..] => {
                let ports = c.ports.entry(name.to_string()).or_default();
                for w in rest {
                    let (lo, hi) = w.split_once('-').unwrap_or((w, w));
                    match (lo.parse(), hi.parse()) {
                        (Ok(lo), Ok(hi)) => ports.push((lo, hi)),
                        _ => return Err(bad("a port ACL")),
                    }
                }
            }
            ["http_access", verdict, acls @ ..] => {
                let allow = match *verdict {
                    "allow" => true,
                    "deny" => false,
                    _ => return Err(bad("an http_access verdict")),
                };
                c.access
                    .push((allow, acls.iter().map(|a| a.to_string()).collect()));
            }
            _ => {}
        }
    }
    Ok(c)
}

fn parse_net(w: &str) -> Option<IpNet> {
    w.parse::<IpNet>()
        .ok()
        .or_else(|| w.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

/// What a proxy may reach: `(network, lowest port, highest port)`.
pub type Reach = (IpNet, u16, u16);

impl SquidConfig {
    /// What each `allow` line lets through, or why it cannot be told: an
    /// allow without a `dst` ACL reaches every address, one without a
    /// `port` ACL every port the earlier `deny !ports` lines leave.
    pub fn allowed(&self) -> Result<Vec<Reach>, String> {
        let mut out = Vec::new();
        let mut port_limit: Option<Vec<(u16, u16)>> = None;
        for (allow, acls) in &self.access {
            if !allow {
                // `deny !name` (alone) limits every later rule to `name`'s ports.
                if let [only] = acls.as_slice()
                    && let Some(name) = only.strip_prefix('!')
                    && let Some(p) = self.ports.get(name)
                {
                    port_limit = Some(p.clone());
                }
                continue;
            }
            let positive: Vec<&str> = acls
                .iter()
                .filter(|a| !a.starts_with('!'))
                .map(String::as_str)
                .collect();
            let nets: Vec<IpNet> = positive
                .iter()
                .filter_map(|a| self.dst.get(*a))
                .flatten()
                .copied()
                .collect();
            if nets.is_empty() {
                return Err(format!(
                    "`http_access allow {}` names no destination network: it lets requests reach any address",
                    acls.join(" ")
                ));
            }
            let ports: Vec<(u16, u16)> = match positive.iter().find_map(|a| self.ports.get(*a)) {
                Some(p) => p.clone(),
                None => port_limit.clone().ok_or_else(|| {
                    format!(
                        "`http_access allow {}` names no port: it lets requests reach any port",
                        acls.join(" ")
                    )
                })?,
            };
            for net in nets {
                for &(lo, hi) in &ports {
                    out.push((net, lo, hi));
                }
            }
        }
        Ok(out)
    }

    /// Whether the last `http_access` line refuses everything.
    pub fn ends_with_deny_all(&self) -> bool {
        self.access
            .last()
            .is_some_and(|(allow, acls)| !allow && acls == &["all"])
    }
}

/// The firewall's openings for traffic the site's containers start on
/// `bridge`: `-i bridge -d NET -p tcp --dport PORT` rules that return or
/// accept.
pub fn firewall_egress(rules: &str, bridge: &str) -> Vec<(IpNet, u16)> {
    let mut out = Vec::new();
    for line in rules.lines().filter(|l| l.starts_with("-A ")) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let after = |flag: &str| super::crosscheck::rule_option(&words, flag);
        if !matches!(after("-j"), Some("ACCEPT" | "RETURN")) || after("-i") != Some(bridge) {
            continue;
        }
        if let (Some(net), Some(port)) = (
            after("-d").and_then(parse_net),
            after("--dport").and_then(|p| p.parse().ok()),
        ) {
            out.push((net, port));
        }
    }
    out
}

/// A proxy URL's host and port (`http://host:port`).
fn proxy_target(url: &str) -> Option<(String, u16)> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next()?;
    let authority = authority.rsplit('@').next()?;
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host.to_string(), port.parse().ok()?)),
        None => Some((authority.to_string(), 80)),
    }
}

/// `KEY=value` lines of an env file, quotes removed.
fn env_file_values(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_string(),
                v.trim().trim_matches(['\'', '"']).to_string(),
            )
        })
        .collect()
}

fn strings(v: Option<&serde_yaml_ng::Value>) -> Vec<String> {
    match v {
        Some(serde_yaml_ng::Value::Sequence(s)) => s
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        Some(serde_yaml_ng::Value::Mapping(m)) => m
            .keys()
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// A service's environment (mapping or `KEY=value` list).
fn environment(svc: &serde_yaml_ng::Value) -> BTreeMap<String, String> {
    match svc.get("environment") {
        Some(serde_yaml_ng::Value::Mapping(m)) => m
            .iter()
            .filter_map(|(k, v)| {
                let v = v
                    .as_str()
                    .map(str::to_string)
                    .or_else(|| v.as_u64().map(|n| n.to_string()))?;
                Some((k.as_str()?.to_string(), v))
            })
            .collect(),
        Some(serde_yaml_ng::Value::Sequence(s)) => s
            .iter()
            .filter_map(|x| x.as_str()?.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// Check the SSRF proxy of one rendered compose site. `template` gives the
/// span to point at for an output.
pub fn check_site(
    site: &Site,
    files: &BTreeMap<String, Vec<u8>>,
    compose: &Result<serde_yaml_ng::Value, String>,
    template: impl Fn(&str) -> Option<Span>,
) -> Diagnostics {
    let mut diags = Diagnostics::new();
    let proxy = ServiceKind::SsrfProxy.compose_name();
    let Some((doc, svc)) = compose_service(site, compose, ServiceKind::SsrfProxy) else {
        return diags;
    };
    let mut fail = |msg: String, tpl: &str, help: &str| {
        diags.push(
            Diagnostic::error(Code::ProxyMismatch, format!("site `{}`: {msg}", site.name))
                .at_opt(template(tpl))
                .help(help.to_string()),
        );
    };
    let text = |p: &str| file_text(files, p);
    let conf = match text(SQUID_FILE).map(|t| read_squid(&t)) {
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            fail(
                format!("{SQUID_FILE} cannot be read back: {e}"),
                TEMPLATE_SQUID,
                "the squid template must produce a config squid reads",
            );
            return diags;
        }
        None => {
            fail(
                format!("compose runs `{proxy}` but the site has no {SQUID_FILE}"),
                "compose.yaml",
                "the proxy filters nothing without its config: render it, or drop the service",
            );
            return diags;
        }
    };
    let mount = format!("./{SQUID_FILE}:{SQUID_CONFIG_PATH}:ro");
    if !strings(svc.get("volumes")).contains(&mount) {
        fail(
            format!(
                "`{proxy}` does not mount {SQUID_FILE} read-only at {SQUID_CONFIG_PATH}, where the image reads its config"
            ),
            "compose.yaml",
            &format!("mount it as `{mount}`"),
        );
    }
    let proxy_networks = strings(svc.get("networks"));
    let dotenv = env_file_values(&text(DOTENV_FILE).unwrap_or_default());
    check_users(doc, &conf, &proxy_networks, &dotenv, &mut fail);
    if !conf.ends_with_deny_all() {
        fail(
            format!(
                "{SQUID_FILE} does not end by refusing everything else (`http_access deny all`)"
            ),
            TEMPLATE_SQUID,
            "squid's default for a request no line matches is the opposite of the last line: end with `http_access deny all`",
        );
    }
    let allowed = match conf.allowed() {
        Ok(a) => a,
        Err(e) => {
            fail(
                format!("{SQUID_FILE}: {e}"),
                TEMPLATE_SQUID,
                "every allow line must name egress networks and ports the firewall opens",
            );
            return diags;
        }
    };
    let rules: Vec<String> = [RULES_V4_FILE, RULES_V6_FILE]
        .iter()
        .map(|f| text(f).unwrap_or_default())
        .collect();
    check_reach(doc, &proxy_networks, &rules, allowed, &mut fail);
    diags
}

/// Every service that names the proxy in a proxy URL (its environment, or
/// dify.env when it reads that file) names squid's port and shares a
/// network with the proxy.
fn check_users(
    doc: &serde_yaml_ng::Value,
    conf: &SquidConfig,
    proxy_networks: &[String],
    dotenv: &BTreeMap<String, String>,
    fail: &mut impl FnMut(String, &str, &str),
) {
    let proxy = ServiceKind::SsrfProxy.compose_name();
    let services = doc.get("services").and_then(|s| s.as_mapping());
    for (name, s) in services.into_iter().flatten() {
        let name = name.as_str().unwrap_or_default();
        let mut env = BTreeMap::new();
        if strings(s.get("env_file")).iter().any(|f| f == DOTENV_FILE) {
            env.extend(dotenv.clone());
        }
        env.extend(environment(s));
        let mut uses = false;
        for var in PROXY_VARS {
            let Some((host, port)) = env.get(*var).and_then(|u| proxy_target(u)) else {
                continue;
            };
            if host != proxy {
                continue;
            }
            uses = true;
            if !conf.listens.contains(&port) {
                fail(
                    format!(
                        "`{name}` sends requests to {proxy}:{port} ({var}), where squid does not listen (it listens on {:?})",
                        conf.listens
                    ),
                    TEMPLATE_SQUID,
                    "squid's `http_port` must be the port the proxy URLs name",
                );
            }
        }
        let networks = strings(s.get("networks"));
        let networks = if networks.is_empty() {
            vec!["default".to_string()]
        } else {
            networks
        };
        if uses && name != proxy && !networks.iter().any(|n| proxy_networks.contains(n)) {
            fail(
                format!("`{name}` uses the SSRF proxy but shares no network with `{proxy}`"),
                "compose.yaml",
                "put the proxy on the networks of the services that use it",
            );
        }
    }
}

/// Every destination squid lets through is opened by the firewall to the
/// traffic the proxy starts on its outbound bridges.
fn check_reach(
    doc: &serde_yaml_ng::Value,
    proxy_networks: &[String],
    rules: &[String],
    allowed: Vec<Reach>,
    fail: &mut impl FnMut(String, &str, &str),
) {
    let mut openings = Vec::new();
    for bridge in outbound_bridges(doc, proxy_networks) {
        for r in rules {
            openings.extend(firewall_egress(r, &bridge));
        }
    }
    for (net, lo, hi) in allowed {
        let closed = (lo..=hi).find(|p| !openings.iter().any(|(n, q)| q == p && n.contains(&net)));
        if let Some(port) = closed {
            fail(
                format!(
                    "squid lets requests reach {net} port {port}, which the firewall does not open to the proxy's traffic"
                ),
                TEMPLATE_SQUID,
                "the proxy may allow only what an egress rule (`[[network.egress]]`) opens in the firewall",
            );
        }
    }
}

/// The bridges the proxy's traffic leaves by: those of its networks that
/// are not internal (named by `com.docker.network.bridge.name`).
fn outbound_bridges(doc: &serde_yaml_ng::Value, proxy_networks: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for n in proxy_networks {
        let Some(net) = doc.get("networks").and_then(|x| x.get(n.as_str())) else {
            continue;
        };
        if net.get("internal").and_then(|i| i.as_bool()) == Some(true) {
            continue;
        }
        if let Some(b) = net
            .get("driver_opts")
            .and_then(|o| o.get("com.docker.network.bridge.name"))
            .and_then(|b| b.as_str())
        {
            out.push(b.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests;

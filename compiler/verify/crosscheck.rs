//! The cross-check of a compose site's rendered files, read back the way the
//! tools read them: the host ports compose publishes, the openings the
//! firewall makes for published ports, and the ports nginx listens on must
//! agree. A published port with no opening is unreachable (or, with a
//! hand-edited firewall, unfiltered); an opening with no listener is a hole
//! waiting for a service. Templates can be overridden per config root, so
//! this runs on the output, not on the plan.

use std::collections::{BTreeMap, BTreeSet};

use crate::base::codes::Code;
use crate::base::diagnostic::{Diagnostic, Diagnostics};
use crate::base::source::Span;
use crate::model::{ServiceKind, Site, Target};
use crate::plan::{COMPOSE_FILE, NGINX_FILE, RULES_V4_FILE, RULES_V6_FILE};

/// A host port compose publishes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Published {
    pub service: String,
    pub host_ip: Option<String>,
    pub host_port: u16,
    pub container_port: u16,
}

/// A site's `compose.yaml` read back as YAML (absent: empty).
pub fn read_compose(files: &BTreeMap<String, Vec<u8>>) -> Result<serde_yaml_ng::Value, String> {
    let text = files
        .get(COMPOSE_FILE)
        .map(|b| String::from_utf8_lossy(b))
        .unwrap_or_default();
    serde_yaml_ng::from_str(&text).map_err(|e| e.to_string())
}

/// Published ports of a parsed compose file.
pub fn published_ports_of(doc: &serde_yaml_ng::Value) -> Result<Vec<Published>, String> {
    let mut out = Vec::new();
    let Some(services) = doc.get("services").and_then(|s| s.as_mapping()) else {
        return Ok(out);
    };
    for (name, svc) in services {
        let service = name.as_str().unwrap_or_default().to_string();
        for p in svc
            .get("ports")
            .and_then(|p| p.as_sequence())
            .into_iter()
            .flatten()
        {
            let parsed = match p {
                serde_yaml_ng::Value::String(s) => parse_short(s),
                serde_yaml_ng::Value::Number(n) => n
                    .as_u64()
                    .and_then(|n| u16::try_from(n).ok())
                    .map(|n| (None, n, n)),
                serde_yaml_ng::Value::Mapping(m) => {
                    let num = |k: &str| {
                        m.get(k)
                            .and_then(|v| {
                                v.as_u64()
                                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                            })
                            .and_then(|n| u16::try_from(n).ok())
                    };
                    let target = num("target");
                    let published = num("published").or(target);
                    let ip = m
                        .get("host_ip")
                        .and_then(|v| v.as_str())
                        .map(str::to_string);
                    target.zip(published).map(|(t, p)| (ip, p, t))
                }
                _ => None,
            };
            let (host_ip, host_port, container_port) = parsed.ok_or_else(|| {
                format!("service `{service}` has a port entry dify-cfg cannot read: {p:?}")
            })?;
            out.push(Published {
                service: service.clone(),
                host_ip,
                host_port,
                container_port,
            });
        }
    }
    out.sort();
    Ok(out)
}

/// `IP:HOST:CONTAINER`, `HOST:CONTAINER` or `PORT`, with an optional `/tcp`.
fn parse_short(s: &str) -> Option<(Option<String>, u16, u16)> {
    let s = s.split('/').next()?;
    let parts: Vec<&str> = s.rsplitn(3, ':').collect();
    match parts.as_slice() {
        [c] => c.parse().ok().map(|c| (None, c, c)),
        [c, h] => Some((None, h.parse().ok()?, c.parse().ok()?)),
        [c, h, ip] => Some((
            Some(ip.trim_matches(['[', ']']).to_string()),
            h.parse().ok()?,
            c.parse().ok()?,
        )),
        _ => None,
    }
}

/// An opening the firewall makes: for a published port (matched by the
/// original destination after Docker's DNAT) or for a host service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Opening {
    Published { address: Option<String>, port: u16 },
    Host { port: u16 },
}

/// The word after `flag` in an iptables rule's words (`-j ACCEPT`,
/// `--dport 80`).
pub(super) fn rule_option<'a>(words: &[&'a str], flag: &str) -> Option<&'a str> {
    words
        .iter()
        .position(|w| *w == flag)
        .and_then(|i| words.get(i + 1))
        .copied()
}

/// Openings of an iptables-restore file: `--ctorigdstport` rules that
/// accept or return, and `--dport` rules of the host's input chain.
pub fn firewall_openings(rules: &str) -> BTreeSet<Opening> {
    let mut out = BTreeSet::new();
    for line in rules
        .lines()
        .filter(|l| l.starts_with("-A ") || l.starts_with("-I "))
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        let after = |flag: &str| rule_option(&words, flag);
        let verdict = after("-j").unwrap_or_default();
        if !matches!(verdict, "ACCEPT" | "RETURN") {
            continue;
        }
        if let Some(port) = after("--ctorigdstport").and_then(|p| p.parse().ok()) {
            out.insert(Opening::Published {
                address: after("--ctorigdst").map(|a| a.split('/').next().unwrap_or(a).to_string()),
                port,
            });
        } else if words.get(1).is_some_and(|c| c.contains("INPUT"))
            && let Some(port) = after("--dport").and_then(|p| p.parse().ok())
        {
            out.insert(Opening::Host { port });
        }
    }
    out
}

/// Ports of nginx's `listen` directives, but those on the container's
/// loopback (`127.0.0.1:80`), which nothing published reaches.
pub fn nginx_listens(conf: &str) -> BTreeSet<u16> {
    conf.lines()
        .map(str::trim)
        .filter_map(|l| l.strip_prefix("listen "))
        .filter_map(|rest| {
            let addr = rest.split([' ', ';']).next()?;
            if addr.starts_with("127.") {
                return None;
            }
            addr.rsplit(':').next()?.parse().ok()
        })
        .collect()
}

/// A rendered file as text (empty when the site has no such file).
pub(super) fn file_text(files: &BTreeMap<String, Vec<u8>>, path: &str) -> Option<String> {
    files
        .get(path)
        .map(|b| String::from_utf8_lossy(b).into_owned())
}

/// A compose site's `compose.yaml` as read back and its service `kind`,
/// for the checks of one service's files; `None` for a helm site, a site
/// without the service, or an unreadable `compose.yaml` (which
/// [`check_site`] reports).
pub(super) fn compose_service<'a>(
    site: &Site,
    compose: &'a Result<serde_yaml_ng::Value, String>,
    kind: ServiceKind,
) -> Option<(&'a serde_yaml_ng::Value, &'a serde_yaml_ng::Value)> {
    if site.target != Target::Compose {
        return None;
    }
    let doc = compose.as_ref().ok()?;
    Some((doc, doc.get("services")?.get(kind.compose_name())?))
}

/// Check one rendered compose site, whose `compose.yaml` reads back as
/// `compose` ([`read_compose`]). `template` gives the span to point at for
/// an output (the template that produced it).
pub fn check_site(
    site: &Site,
    files: &BTreeMap<String, Vec<u8>>,
    compose: &Result<serde_yaml_ng::Value, String>,
    template: impl Fn(&str) -> Option<Span>,
) -> Diagnostics {
    let mut diags = Diagnostics::new();
    if site.target != Target::Compose {
        return diags;
    }
    let text = |p: &str| file_text(files, p).unwrap_or_default();
    let place =
        |d: Diagnostic, tpl: &str, help: &str| d.at_opt(template(tpl)).help(help.to_string());
    let mismatch = |msg: String, tpl: &str, help: &str| {
        place(
            Diagnostic::error(Code::PortMismatch, format!("site `{}`: {msg}", site.name)),
            tpl,
            help,
        )
    };
    let published = match compose
        .as_ref()
        .map_err(Clone::clone)
        .and_then(published_ports_of)
    {
        Ok(p) => p,
        Err(e) => {
            diags.push(mismatch(
                format!("compose.yaml cannot be read back: {e}"),
                "compose.yaml",
                "the compose template must produce valid YAML",
            ));
            return diags;
        }
    };
    let mut openings = firewall_openings(&text(RULES_V4_FILE));
    openings.extend(firewall_openings(&text(RULES_V6_FILE)));
    let listens = nginx_listens(&text(NGINX_FILE));

    for p in &published {
        let may_publish = p.service == ServiceKind::Nginx.compose_name()
            || (p.service == ServiceKind::PluginDaemon.compose_name()
                && site.features.plugin_debugging);
        if !may_publish {
            diags.push(mismatch(
                format!(
                    "compose publishes port {} of `{}`; only nginx publishes ports",
                    p.host_port, p.service
                ),
                "compose.yaml",
                "route the service through nginx instead of publishing it",
            ));
        }
        let bound = p
            .host_ip
            .as_deref()
            .filter(|ip| !ip.is_empty() && *ip != "0.0.0.0" && *ip != "::");
        if bound.is_none()
            || site
                .network
                .address
                .is_some_and(|a| bound != Some(a.to_string().as_str()))
        {
            diags.push(mismatch(
                format!(
                    "compose publishes port {} of `{}` on {}, not on the box's LAN address",
                    p.host_port,
                    p.service,
                    p.host_ip.as_deref().unwrap_or("every address")
                ),
                "compose.yaml",
                "publish ports as `ADDRESS:PORT:PORT` with the site's `network.address`",
            ));
        }
        let opened = openings.iter().any(|o| matches!(o, Opening::Published { address, port } if *port == p.host_port && (address.is_none() || address.as_deref() == bound)));
        if !opened {
            diags.push(mismatch(format!("compose publishes port {} of `{}` but the firewall opens no path to it", p.host_port, p.service),
                "rules.v4",
                "a listener with no opening: open it in the firewall template, or stop publishing it",
            ));
        }
        if p.service == ServiceKind::Nginx.compose_name() && !listens.contains(&p.container_port) {
            diags.push(mismatch(
                format!(
                    "compose forwards port {} to nginx's port {}, where nginx does not listen",
                    p.host_port, p.container_port
                ),
                "nginx.conf",
                "publish the port nginx listens on (`network.http-port`)",
            ));
        }
    }
    for o in &openings {
        match o {
            Opening::Published { port, .. } => {
                if !published.iter().any(|p| p.host_port == *port) {
                    diags.push(mismatch(
                        format!(
                            "the firewall opens port {port} but compose publishes nothing there"
                        ),
                        "rules.v4",
                        "an opening with no listener: remove it from the firewall template",
                    ));
                }
            }
            Opening::Host { port } => {
                if *port != site.network.ssh_port {
                    diags.push(mismatch(
                        format!(
                            "the firewall opens host port {port}, which is not SSH ({})",
                            site.network.ssh_port
                        ),
                        "rules.v4",
                        "the box itself serves only SSH; everything else goes through nginx",
                    ));
                }
            }
        }
    }
    if !openings.contains(&Opening::Host {
        port: site.network.ssh_port,
    }) {
        diags.push(place(
            Diagnostic::error(
                Code::SshLockout,
                format!(
                    "site `{}`: the firewall does not open SSH (port {}) to the admin networks",
                    site.name, site.network.ssh_port
                ),
            ),
            "rules.v4",
            "the administrators would be locked out; keep the SSH rule in the firewall template",
        ));
    }
    diags
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(site: &Site, files: &BTreeMap<String, Vec<u8>>) -> Diagnostics {
        check_site(site, files, &read_compose(files), |_| None)
    }

    fn files(compose_port: &str, opening_port: u16, listen: u16) -> BTreeMap<String, Vec<u8>> {
        let mut f = BTreeMap::new();
        f.insert(
            "compose.yaml".to_string(),
            format!("services:\n  nginx:\n    ports:\n      - \"{compose_port}\"\n").into_bytes(),
        );
        f.insert(
            "firewall/rules.v4".to_string(),
            format!(
                "*filter\n-A DIFY-INPUT -s 10.0.0.0/28 -p tcp --dport 22 -j ACCEPT\n-A DIFY-DOCKER -p tcp -m conntrack --ctorigdst 10.20.1.10 --ctorigdstport {opening_port} -j RETURN\nCOMMIT\n"
            )
            .into_bytes(),
        );
        f.insert(
            "nginx/default.conf".to_string(),
            format!("server {{\n    listen {listen};\n}}\n").into_bytes(),
        );
        f
    }

    fn codes(d: &Diagnostics) -> Vec<String> {
        d.iter()
            .map(|d| format!("{}: {}", d.code, d.message))
            .collect()
    }

    #[test]
    fn agreeing_outputs_pass() {
        let mut site = crate::plan::fixtures::edge();
        site.network.address = Some("10.20.1.10".parse().unwrap());
        site.network.ssh_port = 22;
        let d = check(&site, &files("10.20.1.10:80:80", 80, 80));
        assert!(d.is_empty(), "{:?}", codes(&d));
    }

    #[test]
    fn a_listener_without_an_opening_and_an_opening_without_a_listener_fail() {
        let mut site = crate::plan::fixtures::edge();
        site.network.address = Some("10.20.1.10".parse().unwrap());
        site.network.ssh_port = 22;
        let d = check(&site, &files("10.20.1.10:80:80", 8080, 80));
        let c = codes(&d);
        assert!(
            c.iter()
                .any(|m| m.contains("publishes port 80 of `nginx` but the firewall opens no path")),
            "{c:?}"
        );
        assert!(
            c.iter()
                .any(|m| m.contains("opens port 8080 but compose publishes nothing")),
            "{c:?}"
        );
        // Published on every address, and to a port nginx does not listen on.
        let d = check(&site, &files("80:8000", 80, 80));
        let c = codes(&d);
        assert!(c.iter().any(|m| m.contains("on every address")), "{c:?}");
        assert!(
            c.iter()
                .any(|m| m.contains("nginx's port 8000, where nginx does not listen")),
            "{c:?}"
        );
        // SSH closed: the administrators would be locked out.
        let mut f = files("10.20.1.10:80:80", 80, 80);
        f.insert("firewall/rules.v4".into(), b"*filter\n-A DIFY-DOCKER -p tcp --ctorigdst 10.20.1.10 --ctorigdstport 80 -j RETURN\nCOMMIT\n".to_vec());
        let d = check(&site, &f);
        assert!(
            d.iter().any(|d| d.code == Code::SshLockout),
            "{:?}",
            codes(&d)
        );
    }

    #[test]
    fn reads_compose_ports_in_every_syntax() {
        let compose = "services:\n  nginx:\n    ports:\n      - \"10.0.0.1:80:80\"\n      - \"8080:80/tcp\"\n      - 443\n      - target: 5003\n        published: \"5003\"\n        host_ip: 10.0.0.1\n  api: {}\n";
        let p = published_ports_of(&serde_yaml_ng::from_str(compose).unwrap()).unwrap();
        let got: Vec<_> = p
            .iter()
            .map(|p| (p.host_ip.clone(), p.host_port, p.container_port))
            .collect();
        assert_eq!(
            got,
            vec![
                (None, 443, 443),
                (None, 8080, 80),
                (Some("10.0.0.1".into()), 80, 80),
                (Some("10.0.0.1".into()), 5003, 5003),
            ]
        );
    }

    #[test]
    fn reads_firewall_openings_and_nginx_listens() {
        let rules = "*filter\n-A DIFY-INPUT -s 10.0.0.0/28 -p tcp --dport 22 -j ACCEPT\n-A DIFY-DOCKER -o br -p tcp -m conntrack --ctstate NEW --ctorigdst 10.20.1.10 --ctorigdstport 80 -j RETURN\n-A DIFY-DOCKER -i br -d 10.0.0.40/32 -p tcp --dport 443 -j RETURN\n-A DIFY-DOCKER -p tcp --ctorigdstport 9 -j DROP\nCOMMIT\n";
        let o = firewall_openings(rules);
        assert_eq!(
            o.into_iter().collect::<Vec<_>>(),
            vec![
                Opening::Published {
                    address: Some("10.20.1.10".into()),
                    port: 80
                },
                Opening::Host { port: 22 }
            ]
        );
        assert_eq!(
            nginx_listens(
                "server {\n    listen 80 default_server;\n    listen [::]:8080;\n    listen 443 ssl;\n    listen 127.0.0.1:81;\n}\n"
            ),
            BTreeSet::from([80, 443, 8080])
        );
    }
}

//! firewall/rules.v4 and rules.v6: the iptables rules of a compose box.

use std::collections::BTreeSet;

use ipnet::IpNet;
use serde::Serialize;

use super::common::{SiteInfo, has, site_info};
use super::compose::BRIDGE_DEFAULT;
use super::quote::reason_text;
use crate::dify;
use crate::model::{ServiceKind, Site, is_v4};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

#[derive(Debug, Clone, Serialize)]
pub struct FirewallContext {
    pub site: SiteInfo,
    /// `ipv4` or `ipv6`.
    pub family: &'static str,
    /// The command that loads the file.
    pub restore: &'static str,
    /// Chains this file declares (and so creates or flushes).
    pub chains: Vec<&'static str>,
    /// Chains this file empties before adding its rules.
    pub flush: Vec<&'static str>,
    pub rules: Vec<Rule>,
}

/// One iptables rule; the template prints the options in a fixed order.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Rule {
    pub chain: &'static str,
    pub in_iface: Option<&'static str>,
    pub out_iface: Option<&'static str>,
    pub source: Option<String>,
    pub destination: Option<String>,
    /// `tcp`, `udp`, `icmp` or `ipv6-icmp`.
    pub protocol: Option<&'static str>,
    pub dport: Option<u16>,
    pub sport: Option<u16>,
    pub icmp_type: Option<&'static str>,
    /// Require a hop limit of 255 (IPv6 neighbour discovery).
    pub hop_limit_255: bool,
    pub ctstate: Option<&'static str>,
    pub ctorigdst: Option<String>,
    pub ctorigdstport: Option<u16>,
    pub comment: String,
    pub target: &'static str,
}

pub const CHAIN_INPUT: &str = "DIFY-INPUT";
pub const CHAIN_DOCKER: &str = "DIFY-DOCKER";
/// The chains a rules file declares (creating or flushing them).
pub const FIREWALL_DECLARED: [&str; 3] = [CHAIN_INPUT, CHAIN_DOCKER, "DOCKER-USER"];
/// The chains a rules file empties before adding its rules: the ones it
/// owns. The pull agent saves and restores exactly these.
pub const FIREWALL_FLUSHED: [&str; 4] = ["INPUT", CHAIN_INPUT, CHAIN_DOCKER, "DOCKER-USER"];

fn rule(chain: &'static str, target: &'static str, comment: impl AsRef<str>) -> Rule {
    Rule {
        chain,
        target,
        comment: format!("dify-cfg: {}", reason_text(comment.as_ref())),
        ..Rule::default()
    }
}

fn in_family(net: &IpNet, family: Family) -> bool {
    matches!(
        (net, family),
        (IpNet::V4(_), Family::V4) | (IpNet::V6(_), Family::V6)
    )
}

/// One rules file of the box: rules.v4 or rules.v6.
pub(crate) fn firewall(site: &Site, family: Family) -> FirewallContext {
    let v4 = family == Family::V4;
    let mut rules = Vec::new();
    hooks(&mut rules);
    input_chain(site, family, &mut rules);
    docker_chain(site, family, &mut rules);

    FirewallContext {
        site: site_info(site),
        family: if v4 { "ipv4" } else { "ipv6" },
        restore: if v4 {
            "iptables-restore --noflush"
        } else {
            "ip6tables-restore --noflush"
        },
        chains: FIREWALL_DECLARED.to_vec(),
        flush: FIREWALL_FLUSHED.to_vec(),
        rules,
    }
}

/// The hooks: INPUT and DOCKER-USER are owned by this file (see the header
/// of the template for why).
fn hooks(rules: &mut Vec<Rule>) {
    rules.push(rule("INPUT", CHAIN_INPUT, "every packet to the box"));
    for (inside, outside) in [(true, false), (false, true)] {
        let mut r = rule(
            "DOCKER-USER",
            CHAIN_DOCKER,
            if inside {
                "traffic from the site containers"
            } else {
                "traffic to the site containers"
            },
        );
        if inside {
            r.in_iface = Some(BRIDGE_DEFAULT);
        }
        if outside {
            r.out_iface = Some(BRIDGE_DEFAULT);
        }
        rules.push(r);
    }
    rules.push(rule(
        "DOCKER-USER",
        "RETURN",
        "other containers: Docker rules decide",
    ));
}

/// DIFY-INPUT: the box itself.
fn input_chain(site: &Site, family: Family, rules: &mut Vec<Rule>) {
    let net = &site.network;
    let v4 = family == Family::V4;
    let mut r = rule(CHAIN_INPUT, "ACCEPT", "replies and related traffic");
    r.ctstate = Some("RELATED,ESTABLISHED");
    rules.push(r);
    let mut r = rule(CHAIN_INPUT, "ACCEPT", "loopback");
    r.in_iface = Some("lo");
    rules.push(r);
    let mut r = rule(CHAIN_INPUT, "DROP", "invalid packets");
    r.ctstate = Some("INVALID");
    rules.push(r);
    if !v4 {
        icmpv6(rules);
    }
    let mut pingers: Vec<IpNet> = Vec::new();
    if v4 {
        pingers.extend(net.lan.map(IpNet::V4));
    } else {
        pingers.extend(net.lan6.map(IpNet::V6));
    }
    pingers.extend(net.admin.iter().copied().filter(|n| in_family(n, family)));
    pingers.dedup();
    for src in &pingers {
        let mut r = rule(CHAIN_INPUT, "ACCEPT", format!("ping from {src}"));
        r.source = Some(src.to_string());
        r.protocol = Some(if v4 { "icmp" } else { "ipv6-icmp" });
        r.icmp_type = Some("echo-request");
        rules.push(r);
    }
    for src in net.ssh_from.iter().filter(|n| in_family(n, family)) {
        let mut r = rule(CHAIN_INPUT, "ACCEPT", format!("ssh from {src}"));
        r.source = Some(src.to_string());
        r.protocol = Some("tcp");
        r.dport = Some(net.ssh_port);
        r.ctstate = Some("NEW");
        rules.push(r);
    }
    rules.push(rule(CHAIN_INPUT, "DROP", "everything else to the box"));
}

/// The ICMPv6 a box must accept: errors, and neighbour discovery from the
/// link only.
fn icmpv6(rules: &mut Vec<Rule>) {
    for t in [
        "destination-unreachable",
        "packet-too-big",
        "time-exceeded",
        "parameter-problem",
    ] {
        let mut r = rule(CHAIN_INPUT, "ACCEPT", format!("icmpv6 {t}"));
        r.protocol = Some("ipv6-icmp");
        r.icmp_type = Some(t);
        rules.push(r);
    }
    for t in [
        "router-solicitation",
        "router-advertisement",
        "neighbour-solicitation",
        "neighbour-advertisement",
    ] {
        let mut r = rule(
            CHAIN_INPUT,
            "ACCEPT",
            format!("icmpv6 {t} (neighbour discovery, on-link only)"),
        );
        r.protocol = Some("ipv6-icmp");
        r.icmp_type = Some(t);
        r.hop_limit_255 = true;
        rules.push(r);
    }
}

/// DIFY-DOCKER: the site's containers (they have IPv4 only; the IPv6 chain
/// keeps the same shape so that nothing is open by accident).
fn docker_chain(site: &Site, family: Family, rules: &mut Vec<Rule>) {
    let mut r = rule(CHAIN_DOCKER, "RETURN", "replies and related traffic");
    r.ctstate = Some("RELATED,ESTABLISHED");
    rules.push(r);
    let mut r = rule(CHAIN_DOCKER, "DROP", "invalid packets");
    r.ctstate = Some("INVALID");
    rules.push(r);
    let mut r = rule(CHAIN_DOCKER, "RETURN", "between the site containers");
    r.in_iface = Some(BRIDGE_DEFAULT);
    r.out_iface = Some(BRIDGE_DEFAULT);
    rules.push(r);
    if family == Family::V4 {
        published_ports(site, rules);
        for proto in ["udp", "tcp"] {
            let mut r = rule(
                CHAIN_DOCKER,
                "RETURN",
                format!("dns lookups from the containers ({proto})"),
            );
            r.in_iface = Some(BRIDGE_DEFAULT);
            r.protocol = Some(proto);
            r.dport = Some(53);
            rules.push(r);
        }
    }
    for e in site
        .network
        .egress
        .iter()
        .filter(|e| in_family(&e.cidr, family))
    {
        for &port in &e.ports {
            let mut r = rule(
                CHAIN_DOCKER,
                "RETURN",
                format!("egress {} to {}:{port}", e.name, e.cidr),
            );
            r.in_iface = Some(BRIDGE_DEFAULT);
            r.destination = Some(e.cidr.to_string());
            r.protocol = Some("tcp");
            r.dport = Some(port);
            rules.push(r);
        }
    }
    rules.push(rule(
        CHAIN_DOCKER,
        "DROP",
        "everything else to or from the site containers",
    ));
}

/// Published ports, matched after Docker's DNAT by the original
/// destination: nginx to the LAN and admins (https when TLS is on, plain
/// http unless TLS refuses it), plugin debugging to admins only.
fn published_ports(site: &Site, rules: &mut Vec<Rule>) {
    let net = &site.network;
    let mut openings: Vec<(u16, &str, Vec<IpNet>)> = Vec::new();
    let mut http_from: Vec<IpNet> = net.lan.map(IpNet::V4).into_iter().collect();
    http_from.extend(net.admin.iter().copied().filter(is_v4));
    if has(site, ServiceKind::Nginx) {
        if let Some(tls) = &net.tls {
            openings.push((tls.port, "https to nginx", http_from.clone()));
        }
        if net.tls.as_ref().is_none_or(|t| t.http.published()) {
            openings.push((net.http_port, "http to nginx", http_from));
        }
    }
    if site.features.plugin_debugging && has(site, ServiceKind::PluginDaemon) {
        let admins = net.admin.iter().copied().filter(is_v4).collect();
        openings.push((dify::PLUGIN_DEBUGGING_PORT, "plugin debugging", admins));
    }
    for (port, what, sources) in openings {
        let mut seen = BTreeSet::new();
        for src in sources.into_iter().filter(|s| seen.insert(*s)) {
            let mut r = rule(CHAIN_DOCKER, "RETURN", format!("{what} from {src}"));
            r.out_iface = Some(BRIDGE_DEFAULT);
            r.source = Some(src.to_string());
            r.protocol = Some("tcp");
            r.ctstate = Some("NEW");
            r.ctorigdst = net.address.map(|a| a.to_string());
            r.ctorigdstport = Some(port);
            rules.push(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::fixtures::edge;

    #[test]
    fn firewall_opens_exactly_what_compose_publishes() {
        let site = edge();
        let fw = firewall(&site, Family::V4);
        let http: Vec<_> = fw
            .rules
            .iter()
            .filter(|r| r.ctorigdstport == Some(80))
            .collect();
        let sources: Vec<_> = http.iter().map(|r| r.source.clone().unwrap()).collect();
        assert_eq!(sources, ["10.20.1.0/24", "10.0.0.0/24"]);
        assert!(
            http.iter()
                .all(|r| r.ctorigdst.as_deref() == Some("10.20.1.10"))
        );
        assert!(
            !fw.rules
                .iter()
                .any(|r| r.ctorigdstport == Some(dify::PLUGIN_DEBUGGING_PORT))
        );
        let ssh: Vec<_> = fw.rules.iter().filter(|r| r.dport == Some(22)).collect();
        assert_eq!(ssh.len(), 1);
        assert_eq!(ssh[0].source.as_deref(), Some("10.0.0.0/28"));
        let egress: Vec<_> = fw
            .rules
            .iter()
            .filter(|r| r.destination.is_some())
            .collect();
        assert_eq!(egress.len(), 1);
        assert_eq!(egress[0].dport, Some(443));
        assert_eq!(fw.rules.last().unwrap().target, "DROP");
        // Every chain of ours ends with a drop.
        for chain in [CHAIN_INPUT, CHAIN_DOCKER] {
            let last = fw.rules.iter().rev().find(|r| r.chain == chain).unwrap();
            assert_eq!(last.target, "DROP", "{chain}");
        }

        let v6 = firewall(&site, Family::V6);
        assert!(
            v6.rules.iter().all(|r| r.source.is_none()),
            "no v6 networks: no v6 sources"
        );
        assert!(
            v6.rules
                .iter()
                .any(|r| r.icmp_type == Some("neighbour-solicitation"))
        );
    }

    #[test]
    fn tls_opens_https_and_plain_http_as_the_site_says() {
        use crate::model::PlainHttp;
        use crate::plan::fixtures::edge_tls;
        let opened = |site: &Site, port: u16| -> Vec<String> {
            firewall(site, Family::V4)
                .rules
                .iter()
                .filter(|r| r.ctorigdstport == Some(port))
                .map(|r| r.source.clone().unwrap())
                .collect()
        };
        let everyone = ["10.20.1.0/24", "10.0.0.0/24"];
        for mode in [PlainHttp::Redirect, PlainHttp::AllowLan, PlainHttp::Allow] {
            let site = edge_tls(mode);
            assert_eq!(opened(&site, 443), everyone, "{mode:?}");
            assert_eq!(opened(&site, 80), everyone, "{mode:?}");
        }
        let site = edge_tls(PlainHttp::Refuse);
        assert_eq!(opened(&site, 443), everyone);
        assert!(opened(&site, 80).is_empty(), "plain http refused: closed");
        // Without TLS nothing is opened on 443.
        assert!(opened(&edge(), 443).is_empty());
        // No nginx, nothing to open.
        let mut site = edge_tls(PlainHttp::Allow);
        site.services.remove(&ServiceKind::Nginx);
        assert!(opened(&site, 443).is_empty() && opened(&site, 80).is_empty());
    }
}

//! ssrf_proxy/squid.conf: the squid configuration of the SSRF proxy, the
//! one way out for the sandbox's code and for Dify's HTTP-request nodes.
//!
//! What it lets through is decided here, in an order squid applies top to
//! bottom (first match wins):
//! 1. only ports 80 and 443, and CONNECT only to 443;
//! 2. never: the site's services by name, loopback, link-local (cloud
//!    metadata), unspecified, multicast and reserved addresses, their IPv6
//!    forms (IPv4-compatible, NAT64; squid matches an IPv4-mapped address
//!    as the IPv4 address it maps), the box's own address and the clinic
//!    LAN, whatever an egress rule says;
//! 3. the site's egress rules, each to its network on the ports it names
//!    that the proxy serves;
//! 4. private networks (RFC 1918, CGNAT, unique local IPv6, the admin
//!    networks), said explicitly so that refusals read as such;
//! 5. everything else: refused.
//!
//! An egress rule comes before the private networks because it names one
//! destination on purpose (the example fleet's LLM gateway is in the head
//! office's admin network); the firewall already lets the site's
//! containers reach it, so the proxy opens nothing the firewall does not.
//! Nothing is cached: responses may hold patient data.

use ipnet::IpNet;
use serde::Serialize;

use super::common::{SiteInfo, site_info};
use crate::dify;
use crate::model::{ServiceKind, Site};

/// The ports the proxy forwards to: plain HTTP and TLS.
const PROXY_PORTS: [u16; 2] = [80, 443];
/// The one port CONNECT may open a tunnel to.
const TLS_PORT: u16 = 443;

#[derive(Debug, Clone, Serialize)]
pub struct SquidContext {
    pub site: SiteInfo,
    /// The port squid listens on (the one the proxy URLs name).
    pub listen_port: u16,
    /// Where squid logs requests and itself (files the image follows onto
    /// the container's output).
    pub access_log: &'static str,
    pub cache_log: &'static str,
    /// How far squid may buffer a request body the server reads slower
    /// than the client sends it, in MB.
    pub request_buffer_mb: u64,
    pub ports: Vec<u16>,
    pub tls_port: u16,
    /// Compose service names, refused as destinations.
    pub services: Vec<&'static str>,
    /// Refused before any egress rule.
    pub never: Vec<Destination>,
    pub egress: Vec<Allow>,
    /// Refused after the egress rules.
    pub private: Vec<Destination>,
    /// Decisions a reviewer should see (egress rules the proxy does not
    /// serve, and why).
    pub notes: Vec<String>,
}

/// A network and why it is on its list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Destination {
    pub cidr: String,
    pub why: String,
}

/// One egress rule as the proxy serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Allow {
    /// The squid ACL names of this rule: `egress_<n>` and
    /// `egress_<n>_ports`.
    pub acl: String,
    pub name: String,
    pub cidr: String,
    /// The rule's ports that the proxy serves.
    pub ports: Vec<u16>,
}

fn dest(cidr: impl ToString, why: impl Into<String>) -> Destination {
    Destination {
        cidr: cidr.to_string(),
        why: why.into(),
    }
}

/// Networks no request through the proxy may reach, whatever the egress
/// rules say. IPv4-mapped IPv6 (`::ffff:0:0/96`) is not listed: squid
/// holds every IPv4 address in that form, so the IPv4 entries match a
/// mapped destination, and the entry itself would match every IPv4
/// address (squid then drops the smaller entries it contains).
const NEVER: &[(&str, &str)] = &[
    ("0.0.0.0/8", "unspecified (\"this\" network)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (cloud metadata)"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved and broadcast"),
    (
        "::/96",
        "IPv6 unspecified (::), loopback (::1) and IPv4-compatible",
    ),
    ("64:ff9b::/96", "NAT64 (IPv4 addresses in IPv6)"),
    ("fe80::/10", "IPv6 link-local"),
    ("ff00::/8", "IPv6 multicast"),
];

/// Private networks, refused unless an egress rule names them.
const PRIVATE: &[(&str, &str)] = &[
    ("10.0.0.0/8", "RFC 1918 private"),
    ("172.16.0.0/12", "RFC 1918 private (Docker's networks)"),
    ("192.168.0.0/16", "RFC 1918 private"),
    ("100.64.0.0/10", "RFC 6598 carrier-grade NAT"),
    ("fc00::/7", "IPv6 unique local"),
];

/// The squid configuration of a compose site that runs `ssrf_proxy`.
pub(super) fn squid(site: &Site) -> SquidContext {
    let net = &site.network;
    let fixed = |list: &[(&str, &'static str)]| -> Vec<(IpNet, &'static str)> {
        list.iter()
            .filter_map(|(c, w)| c.parse().ok().map(|n| (n, *w)))
            .collect()
    };
    let own: Vec<(IpNet, &str)> = own_networks(site);
    let mut never = fixed(NEVER);
    never.extend(own.iter().copied());
    let mut private = fixed(PRIVATE);
    private.extend(net.admin.iter().map(|n| (*n, "admin network")));

    let mut egress = Vec::new();
    let mut notes = Vec::new();
    for e in net.egress.iter() {
        let ports: Vec<u16> = e
            .ports
            .iter()
            .copied()
            .filter(|p| PROXY_PORTS.contains(p))
            .collect();
        if ports.is_empty() {
            notes.push(format!(
                "egress {} ({}): none of its ports is 80 or 443, so the proxy does not serve it",
                e.name, e.cidr
            ));
            continue;
        }
        if let Some((_, why)) = own.iter().find(|(n, _)| overlaps(n, &e.cidr)) {
            notes.push(format!(
                "egress {} ({}) overlaps the {why}, which the proxy never reaches",
                e.name, e.cidr
            ));
        }
        egress.push(Allow {
            acl: format!("egress_{}", egress.len() + 1),
            name: e.name.clone(),
            cidr: e.cidr.to_string(),
            ports,
        });
    }

    SquidContext {
        site: site_info(site),
        listen_port: dify::SSRF_PROXY_PORT,
        access_log: dify::ssrf_proxy::SQUID_ACCESS_LOG,
        cache_log: dify::ssrf_proxy::SQUID_CACHE_LOG,
        request_buffer_mb: request_buffer_mb(site),
        ports: PROXY_PORTS.to_vec(),
        tls_port: TLS_PORT,
        services: site.services.keys().map(|k| k.compose_name()).collect(),
        never: uncovered(never),
        egress,
        private: uncovered(private),
        notes,
    }
}

/// A quarter of the proxy's memory limit, at most 100 MB: uploads through
/// the proxy (HTTP-request nodes sending files) need more than squid's
/// default 512 KB, and the buffer must not grow past the container's limit.
fn request_buffer_mb(site: &Site) -> u64 {
    let limit = site
        .services
        .get(&ServiceKind::SsrfProxy)
        .map_or(0, |s| s.memory.0);
    (limit / crate::base::units::MIB / 4).clamp(1, 100)
}

/// The site's own networks: the box's address and the clinic LAN (IPv4
/// and IPv6).
fn own_networks(site: &Site) -> Vec<(IpNet, &'static str)> {
    let net = &site.network;
    let mut own = Vec::new();
    if let Some(a) = net.address {
        own.push((IpNet::from(std::net::IpAddr::V4(a)), "box's own address"));
    }
    if let Some(lan) = net.lan {
        own.push((IpNet::V4(lan), "site LAN"));
    }
    if let Some(lan6) = net.lan6 {
        own.push((IpNet::V6(lan6), "site IPv6 LAN"));
    }
    own
}

/// A list's entries without those another entry contains (squid warns
/// about them and keeps only one of the two), in their order.
fn uncovered(list: Vec<(IpNet, &'static str)>) -> Vec<Destination> {
    list.iter()
        .enumerate()
        .filter(|(i, (n, _))| {
            !list
                .iter()
                .enumerate()
                .any(|(j, (m, _))| j != *i && m.contains(n) && (m != n || j < *i))
        })
        .map(|(_, (n, why))| dest(n, *why))
        .collect()
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Whether the site has an SSRF proxy to configure.
pub(super) fn has_proxy(site: &Site) -> bool {
    site.services.contains_key(&ServiceKind::SsrfProxy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Egress;
    use crate::plan::fixtures::edge;

    #[test]
    fn the_proxy_refuses_its_own_networks_and_serves_the_egress_rules() {
        let site = edge();
        let c = squid(&site);
        assert_eq!(c.listen_port, 3128);
        // The edge box gives the proxy 96 MiB.
        assert_eq!(c.request_buffer_mb, 24);
        let never: Vec<&str> = c.never.iter().map(|d| d.cidr.as_str()).collect();
        for cidr in [
            "127.0.0.0/8",
            "169.254.0.0/16",
            "0.0.0.0/8",
            "::/96",
            "fe80::/10",
            "10.20.1.0/24",
        ] {
            assert!(never.contains(&cidr), "{cidr} in {never:?}");
        }
        // The box's address is in the LAN; the admin network in 10/8: squid
        // wants no entry inside another of the same list.
        assert!(!never.contains(&"10.20.1.10/32"), "{never:?}");
        assert!(!never.contains(&"::ffff:0:0/96"), "{never:?}");
        let private: Vec<&str> = c.private.iter().map(|d| d.cidr.as_str()).collect();
        for cidr in [
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "100.64.0.0/10",
            "fc00::/7",
        ] {
            assert!(private.contains(&cidr), "{cidr} in {private:?}");
        }
        assert!(!private.contains(&"10.0.0.0/24"), "{private:?}");
        assert_eq!(
            c.egress,
            [Allow {
                acl: "egress_1".into(),
                name: "llm-gateway".into(),
                cidr: "10.0.0.40/32".into(),
                ports: vec![443],
            }]
        );
        assert!(c.services.contains(&"db_postgres") && c.services.contains(&"api"));
        assert!(c.notes.is_empty(), "{:?}", c.notes);
    }

    #[test]
    fn egress_rules_the_proxy_cannot_serve_are_noted() {
        let mut site = edge();
        site.network.egress = vec![
            Egress {
                name: "smtp".into(),
                cidr: "203.0.113.5/32".parse().unwrap(),
                ports: vec![25, 587],
            },
            Egress {
                name: "printer".into(),
                cidr: "10.20.1.50/32".parse().unwrap(),
                ports: vec![80, 631],
            },
        ]
        .into();
        let c = squid(&site);
        assert_eq!(c.egress.len(), 1);
        assert_eq!(c.egress[0].ports, [80]);
        assert_eq!(c.notes.len(), 2, "{:?}", c.notes);
        assert!(c.notes[0].contains("smtp") && c.notes[0].contains("does not serve"));
        assert!(c.notes[1].contains("printer") && c.notes[1].contains("site LAN"));
    }
}

//! `[network]`: LAN, address, admin and SSH networks (and the lock-out
//! rule), ports, host name, public routes and egress rules; `[network.tls]`
//! is `tls.rs`.

use std::net::Ipv4Addr;
use std::str::FromStr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use toml::Spanned;

use super::context::Cx;
use crate::base::codes::Code;
use crate::base::diagnostic::{Diagnostic, did_you_mean};
use crate::base::names::is_hostname;
use crate::base::names::is_valid_name;
use crate::base::source::Span;
use crate::dify;
use crate::input::layer::{EgressLayer, Layer, NetworkLayer, Target};
use crate::model::*;

/// `[network]`. A compose site must have a LAN and an address on it; its
/// network is `None` without them.
pub(super) fn network(
    cx: &mut Cx<'_>,
    layer: &Layer,
    target: Target,
    site: &str,
) -> Option<Network> {
    let nl = layer.network.clone().unwrap_or_default();
    let compose = target == Target::Compose;
    let lan = lan(cx, &nl, compose);
    let lan6 = lan6(cx, &nl);
    let address = address(cx, &nl, lan, compose);
    let (admin, ssh_from) = admin_and_ssh(cx, &nl, compose);
    let ssh_port = cx.port(&nl.ssh_port, "network.ssh-port", 22);
    let http_port = cx.port(&nl.http_port, "network.http-port", 80);
    let hostname = hostname(cx, &nl, address, site);
    let public_routes = public_routes(cx, &nl);
    let tls = super::tls::tls(cx, &nl, target, http_port, ssh_port);
    let egress = match &nl.egress {
        Some(rules) => rules
            .get_ref()
            .iter()
            .enumerate()
            .filter_map(|(i, item)| egress_rule(cx, i, item))
            .collect(),
        None => Vec::new(),
    };
    if compose && (lan.is_none() || address.is_none()) {
        return None;
    }
    Some(Network {
        hostname,
        lan,
        address,
        lan6,
        admin: admin.into(),
        ssh_from: ssh_from.into(),
        ssh_port,
        http_port,
        public_routes: public_routes.into(),
        egress: egress.into(),
        tls,
    })
}

/// `network.lan`: the IPv4 LAN, required on compose sites.
fn lan(cx: &mut Cx<'_>, nl: &NetworkLayer, compose: bool) -> Option<Ipv4Net> {
    match &nl.lan {
        Some(l) => match cx.cidr(l, "network.lan") {
            Some(IpNet::V4(n)) => Some(n),
            Some(IpNet::V6(_)) => {
                cx.err(
                    Diagnostic::error(
                        Code::InvalidCidr,
                        "`network.lan` is the IPv4 LAN; put an IPv6 LAN in `network.lan6`",
                    )
                    .at(l.span())
                    .help("move this network to `lan6`"),
                );
                None
            }
            None => None,
        },
        None if compose => {
            cx.missing(
                "network.lan",
                "set the site's LAN, e.g. `lan = \"10.20.1.0/24\"`",
            );
            None
        }
        None => None,
    }
}

/// `network.lan6`: the IPv6 LAN, if any.
fn lan6(cx: &mut Cx<'_>, nl: &NetworkLayer) -> Option<Ipv6Net> {
    match &nl.lan6 {
        Some(l) => match cx.cidr(l, "network.lan6") {
            Some(IpNet::V6(n)) => Some(n),
            Some(IpNet::V4(_)) => {
                cx.err(
                    Diagnostic::error(Code::InvalidCidr, "`network.lan6` takes an IPv6 network")
                        .at(l.span())
                        .help("put the IPv4 LAN in `network.lan`"),
                );
                None
            }
            None => None,
        },
        None => None,
    }
}

/// `network.address`: the box's host address in the LAN, required on
/// compose sites.
fn address(
    cx: &mut Cx<'_>,
    nl: &NetworkLayer,
    lan: Option<Ipv4Net>,
    compose: bool,
) -> Option<Ipv4Addr> {
    match &nl.address {
        Some(a) => match Ipv4Addr::from_str(a.get_ref()) {
            Ok(addr) => {
                if let Some(lan) = lan
                    && (!lan.contains(&addr) || addr == lan.network() || addr == lan.broadcast())
                {
                    cx.err(
                        Diagnostic::error(
                            Code::AddressOutsideLan,
                            format!("`{addr}` is not a host address in the site's LAN {lan}"),
                        )
                        .at(a.span())
                        .help(format!(
                            "choose a host address inside {lan}, e.g. `{}`",
                            lan.hosts().nth(9).unwrap_or(lan.network())
                        )),
                    );
                }
                Some(addr)
            }
            Err(_) => {
                cx.err(
                    Diagnostic::error(
                        Code::InvalidAddress,
                        format!("`{}` is not an IPv4 address", a.get_ref()),
                    )
                    .at(a.span())
                    .help("write the box's LAN address, e.g. `10.20.1.10`"),
                );
                None
            }
        },
        None if compose => {
            cx.missing("network.address", "set the box's address on the LAN, e.g. `address = \"10.20.1.10\"`: nginx publishes only there");
            None
        }
        None => None,
    }
}

/// `network.admin` (required on compose sites) and `network.ssh-from`
/// (the admin networks by default), and the lock-out rule between them.
fn admin_and_ssh(cx: &mut Cx<'_>, nl: &NetworkLayer, compose: bool) -> (Vec<IpNet>, Vec<IpNet>) {
    let errors_before_networks = cx.diags.error_count();
    let admin = cx.cidrs(&nl.admin, "network.admin").unwrap_or_default();
    if compose && admin.is_empty() && nl.admin.is_none() {
        cx.missing(
            "network.admin",
            "name the networks that administer the site, e.g. `admin = [\"10.0.0.0/24\"]`",
        );
    }
    let ssh_from = match cx.cidrs(&nl.ssh_from, "network.ssh-from") {
        Some(s) => s,
        None => {
            cx.default(
                "network.ssh-from",
                admin.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            );
            admin.clone()
        }
    };
    // Lock-out: the admin network must be able to reach SSH. Judged only
    // when every network parsed: a dropped entry would fake a lock-out.
    let networks_ok = cx.diags.error_count() == errors_before_networks;
    if compose
        && networks_ok
        && !admin.is_empty()
        && !ssh_from
            .iter()
            .any(|s| admin.iter().any(|a| a.contains(s) || s.contains(a)))
    {
        let span = nl
            .ssh_from
            .as_ref()
            .map(|s| s.span())
            .or(nl.admin.as_ref().map(|a| a.span()));
        cx.err(
            Diagnostic::error(Code::SshLockout, "no admin network may reach SSH on the box")
                .at_opt(span)
                .label("`ssh-from` shares no address with `admin`")
                .help("include an admin network (or part of one) in `network.ssh-from`, or the firewall would lock the administrators out"),
        );
    }
    (admin, ssh_from)
}

/// `network.hostname`: a DNS name; the box's address by default, else
/// `<site>.local`.
fn hostname(cx: &mut Cx<'_>, nl: &NetworkLayer, address: Option<Ipv4Addr>, site: &str) -> String {
    match &nl.hostname {
        Some(h) if is_hostname(h.get_ref()) => h.get_ref().clone(),
        Some(h) => {
            cx.err(
                Diagnostic::error(
                    Code::InvalidName,
                    format!("`{}` is not a host name", h.get_ref()),
                )
                .at(h.span())
                .help("write a lower-case DNS name such as `clinic-01.example.org`"),
            );
            String::new()
        }
        None => match address {
            Some(a) => cx.default("network.hostname", a.to_string()),
            None => cx.default("network.hostname", format!("{site}.local")),
        },
    }
}

/// `network.public-routes`: route prefixes Dify serves; `/v1` by default.
fn public_routes(cx: &mut Cx<'_>, nl: &NetworkLayer) -> Vec<String> {
    let mut public_routes = Vec::new();
    if let Some(routes) = &nl.public_routes {
        let known: Vec<&str> = dify::ROUTES.iter().map(|(r, _)| *r).collect();
        for r in routes.get_ref() {
            if known.contains(&r.get_ref().as_str()) {
                public_routes.push(r.get_ref().clone());
            } else {
                let d = Diagnostic::error(
                    Code::UnknownRoute,
                    format!("`{}` is not a route prefix Dify serves", r.get_ref()),
                )
                .at(r.span());
                cx.err(match did_you_mean(r.get_ref(), known.iter().copied()) {
                    Some(s) => d.help(format!("did you mean `{s}`?")),
                    None => d.help(format!("route prefixes: {}", known.join(", "))),
                });
            }
        }
    } else {
        cx.default("network.public-routes", vec!["/v1".to_string()]);
        public_routes.push("/v1".to_string());
    }
    public_routes.sort();
    public_routes.dedup();
    public_routes
}

/// `network.egress[i]`: a named rule with a network and ports, when all
/// three are valid.
fn egress_rule(cx: &mut Cx<'_>, i: usize, item: &Spanned<EgressLayer>) -> Option<Egress> {
    let e = item.get_ref();
    let at = item.span();
    let key = format!("network.egress[{i}]");
    let name = match &e.name {
        Some(n) if is_valid_name(n.get_ref()) => Some(n.get_ref().clone()),
        Some(n) => {
            cx.err(
                Diagnostic::error(
                    Code::InvalidName,
                    format!("`{}` is not a valid rule name", n.get_ref()),
                )
                .at(n.span())
                .help("use lower-case letters, digits and dashes, e.g. `llm-gateway`"),
            );
            None
        }
        None => {
            cx.err_missing(
                &format!("{key}.name"),
                Diagnostic::error(Code::MissingKey, format!("`{key}` has no `name`"))
                    .at(at.clone())
                    .help("name each egress rule, e.g. `name = \"llm-gateway\"`"),
            );
            None
        }
    };
    let cidr = match &e.cidr {
        Some(c) => cx.cidr(c, &format!("{key}.cidr")),
        None => {
            cx.err_missing(
                &format!("{key}.cidr"),
                Diagnostic::error(Code::MissingKey, format!("`{key}` has no `cidr`"))
                    .at(at.clone())
                    .help("give the network of the endpoint, e.g. `cidr = \"10.0.0.40/32\"`"),
            );
            None
        }
    };
    let ports = egress_ports(cx, e, &key, at);
    match (name, cidr, ports.is_empty()) {
        (Some(name), Some(cidr), false) => Some(Egress { name, cidr, ports }),
        _ => None,
    }
}

/// `network.egress[i].ports`: a non-empty list of ports, sorted, without
/// duplicates (invalid ones left out).
fn egress_ports(cx: &mut Cx<'_>, e: &EgressLayer, key: &str, at: Span) -> Vec<u16> {
    let mut ports = Vec::new();
    match &e.ports {
        Some(p) if !p.get_ref().is_empty() => {
            for port in p.get_ref() {
                let port = cx.port(&Some(port.clone()), &format!("{key}.ports"), 0);
                if port > 0 {
                    ports.push(port);
                }
            }
        }
        Some(p) => cx.err(
            Diagnostic::error(Code::MissingKey, format!("`{key}.ports` is empty"))
                .at(p.span())
                .help("list the ports, e.g. `ports = [443]`"),
        ),
        None => cx.err_missing(
            &format!("{key}.ports"),
            Diagnostic::error(Code::MissingKey, format!("`{key}` has no `ports`"))
                .at(at)
                .help("list the ports, e.g. `ports = [443]`"),
        ),
    }
    ports.sort();
    ports.dedup();
    ports
}

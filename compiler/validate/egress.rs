//! Settings that need egress the site does not allow: a compose box's
//! firewall lets its containers reach only `[[network.egress]]`, so a
//! feature that calls the internet needs a rule that reaches it.

use ipnet::IpNet;

use super::context::Cx;
use crate::base::codes::Code;
use crate::base::diagnostic::Diagnostic;
use crate::input::layer::{Layer, Target};
use crate::model::{Egress, Features, Network};

/// Address ranges that are not the internet: private, shared, loopback,
/// link-local, documentation, benchmarking, multicast and reserved.
const NOT_INTERNET: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/3",
    "::1/128",
    "2001:db8::/32",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
];

/// The marketplace is served over HTTPS.
const HTTPS: u16 = 443;

/// Whether the rule lets HTTPS reach some internet address.
fn reaches_internet(e: &Egress) -> bool {
    e.ports.contains(&HTTPS) && holds_internet(&e.cidr)
}

/// Whether a network holds some internet address.
pub(crate) fn holds_internet(cidr: &IpNet) -> bool {
    !NOT_INTERNET
        .iter()
        .filter_map(|r| r.parse::<IpNet>().ok())
        .any(|r| r.contains(cidr))
}

/// A warning when the marketplace is on but the box's egress reaches no
/// internet address (compose only: a helm site's egress is the cluster's).
pub(super) fn needed_egress(
    cx: &mut Cx<'_>,
    layer: &Layer,
    target: Target,
    features: &Features,
    network: Option<&Network>,
) {
    let Some(network) = network else { return };
    if target != Target::Compose
        || !features.marketplace
        || network.egress.iter().any(reaches_internet)
    {
        return;
    }
    let at = layer
        .features
        .as_ref()
        .and_then(|f| f.marketplace.as_ref())
        .map(|m| m.span())
        .unwrap_or_else(|| cx.anchor.clone());
    cx.err(
        Diagnostic::warning(
            Code::MissingEgress,
            "the plugin marketplace is on, but the site's egress reaches no internet address",
        )
        .at(at)
        .label("the box's firewall lets containers reach `[[network.egress]]` only")
        .help("turn it off (`marketplace = false` in `[features]`), or allow marketplace.dify.ai (its addresses, port 443) in `[[network.egress]]`"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(cidr: &str, ports: &[u16]) -> Egress {
        Egress {
            name: "r".into(),
            cidr: cidr.parse().unwrap(),
            ports: ports.to_vec(),
        }
    }

    #[test]
    fn only_public_https_reaches_the_internet() {
        assert!(reaches_internet(&rule("0.0.0.0/0", &[443])));
        assert!(reaches_internet(&rule("104.18.0.0/16", &[80, 443])));
        assert!(reaches_internet(&rule("2606:4700::/32", &[443])));
        assert!(!reaches_internet(&rule("104.18.0.0/16", &[80])));
        assert!(!reaches_internet(&rule("10.0.0.40/32", &[443])));
        assert!(!reaches_internet(&rule("192.168.1.0/24", &[443])));
        assert!(!reaches_internet(&rule("fd00::/8", &[443])));
    }
}

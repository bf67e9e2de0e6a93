//! The proxy cross-check over the edge fixture rendered with the built-in
//! templates, then with one planted mismatch at a time.

use super::*;
use crate::plan::fixtures::edge;
use crate::render::render_builtin as rendered;
use crate::verify::planted;

fn check(site: &Site, files: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    let compose = crate::verify::crosscheck::read_compose(files);
    check_site(site, files, &compose, |_| None)
        .iter()
        .map(|d| {
            assert_eq!(d.code, Code::ProxyMismatch);
            d.message.clone()
        })
        .collect()
}

#[test]
fn the_rendered_fixture_agrees() {
    let site = edge();
    let files = rendered(&site);
    assert!(files.contains_key(SQUID_FILE));
    assert_eq!(check(&site, &files), Vec::<String>::new());
    let conf = read_squid(&String::from_utf8_lossy(&files[SQUID_FILE])).unwrap();
    assert_eq!(conf.listens, BTreeSet::from([3128]));
    assert_eq!(
        conf.allowed().unwrap(),
        [("10.0.0.40/32".parse().unwrap(), 443, 443)]
    );
    assert!(conf.ends_with_deny_all());
}

#[test]
fn squid_on_another_port_than_the_proxy_urls_fails() {
    let site = edge();
    let files = planted(
        &rendered(&site),
        SQUID_FILE,
        "http_port 3128",
        "http_port 3129",
    );
    let m = check(&site, &files);
    assert!(
        m.iter()
            .any(|m| m.contains("`sandbox` sends requests to ssrf_proxy:3128 (HTTP_PROXY)")),
        "{m:?}"
    );
    assert!(
        m.iter()
            .any(|m| m.contains("`api` sends requests to ssrf_proxy:3128 (SSRF_PROXY_HTTP_URL)")),
        "{m:?}"
    );
}

#[test]
fn a_user_of_the_proxy_off_its_networks_fails() {
    let site = edge();
    let files = planted(
        &rendered(&site),
        "compose.yaml",
        "squid.conf:ro\"\n    networks:\n      - \"default\"\n      - \"ssrf_proxy_network\"\n",
        "squid.conf:ro\"\n    networks:\n      - \"default\"\n",
    );
    let m = check(&site, &files);
    assert_eq!(
        m,
        ["site `clinic-01`: `sandbox` uses the SSRF proxy but shares no network with `ssrf_proxy`"]
    );
}

#[test]
fn an_allowed_destination_the_firewall_does_not_open_fails() {
    let site = edge();
    let files = rendered(&site);
    // squid lets a second network through.
    let wider = planted(
        &files,
        SQUID_FILE,
        "acl egress_1 dst 10.0.0.40/32",
        "acl egress_1 dst 10.0.0.40/32 203.0.113.0/24",
    );
    let m = check(&site, &wider);
    assert_eq!(
        m,
        [
            "site `clinic-01`: squid lets requests reach 203.0.113.0/24 port 443, which the firewall does not open to the proxy's traffic"
        ]
    );
    // The firewall's egress rule goes, squid's stays.
    let closed = planted(
        &files,
        RULES_V4_FILE,
        "-d 10.0.0.40/32 -p tcp --dport 443",
        "-d 10.0.0.40/32 -p tcp --dport 8443",
    );
    let m = check(&site, &closed);
    assert_eq!(m.len(), 1, "{m:?}");
    assert!(m[0].contains("10.0.0.40/32 port 443"), "{m:?}");
    // An allow without a destination reaches everything.
    let open = planted(
        &files,
        SQUID_FILE,
        "http_access deny all",
        "http_access allow all",
    );
    let m = check(&site, &open);
    assert!(
        m.iter().any(|m| m.contains("does not end by refusing")),
        "{m:?}"
    );
    assert!(
        m.iter().any(|m| m.contains("names no destination network")),
        "{m:?}"
    );
}

#[test]
fn a_missing_or_unmounted_config_fails() {
    let site = edge();
    let files = rendered(&site);
    let unmounted = planted(
        &files,
        "compose.yaml",
        "./ssrf_proxy/squid.conf:/etc/squid/squid.conf:ro",
        "./ssrf_proxy/squid.conf:/etc/squid/other.conf:ro",
    );
    let m = check(&site, &unmounted);
    assert_eq!(m.len(), 1, "{m:?}");
    assert!(m[0].contains("does not mount"), "{m:?}");
    let mut missing = files.clone();
    missing.remove(SQUID_FILE);
    let m = check(&site, &missing);
    assert!(m[0].contains("has no ssrf_proxy/squid.conf"), "{m:?}");
}

#[test]
fn reads_port_ranges_and_port_limits() {
    let conf = read_squid(
        "http_port 0.0.0.0:3128\nacl p port 80 8000-8002\nacl d dst 198.51.100.0/24 2001:db8::1\nhttp_access deny !p\nhttp_access allow d\nhttp_access deny all\n",
    )
    .unwrap();
    assert_eq!(conf.listens, BTreeSet::from([3128]));
    let a = conf.allowed().unwrap();
    assert_eq!(a.len(), 4);
    assert!(a.contains(&("2001:db8::1/128".parse().unwrap(), 8000, 8002)));
    assert!(read_squid("http_port x\n").is_err());
    assert!(read_squid("acl d dst 10.0.0.0/33\n").is_err());
}

//! Who can reach what, read back from the rendered files the way the
//! tools read them: the firewall's accepting rules, nginx's routes (each location's `allow` and `deny`
//! rules, or the server's, in order; no rule lets everyone in), its `geo`
//! maps, the Helm ingress's hosts and paths, and what the SSRF proxy lets
//! through (squid's `http_access` lines with their ACLs). The risk flags
//! compare these between two trees.

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml_ng::Value;

use crate::verify::squid::read_squid;

/// One route reachable from one source: `(on, from, path)`, e.g.
/// `("clinic-01.clinics.example.org:80", "10.20.1.0/24", "/v1")`.
pub type Route = (String, String, String);

/// A piece of an nginx config: a directive with its words, and the
/// block it opens, if any.
#[derive(Debug, Default)]
struct Node {
    words: Vec<String>,
    block: Option<Vec<Node>>,
}

impl Node {
    fn name(&self) -> &str {
        self.words.first().map_or("", String::as_str)
    }

    fn args(&self) -> &[String] {
        self.words.get(1..).unwrap_or_default()
    }

    fn children(&self) -> &[Node] {
        self.block.as_deref().unwrap_or_default()
    }
}

/// Split an nginx config into words and the separators `{`, `}`, `;`
/// (comments dropped, a quoted string one word).
fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = text.chars();
    let flush = |cur: &mut String, out: &mut Vec<String>| {
        if !cur.is_empty() {
            out.push(std::mem::take(cur));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '#' => {
                flush(&mut cur, &mut out);
                for n in chars.by_ref() {
                    if n == '\n' {
                        break;
                    }
                }
            }
            '"' | '\'' => {
                for n in chars.by_ref() {
                    if n == c {
                        break;
                    }
                    cur.push(n);
                }
            }
            '{' | '}' | ';' => {
                flush(&mut cur, &mut out);
                out.push(c.to_string());
            }
            c if c.is_whitespace() => flush(&mut cur, &mut out),
            c => cur.push(c),
        }
    }
    flush(&mut cur, &mut out);
    out
}

/// The nodes of a token stream, up to its closing `}` (or its end).
fn nodes(tokens: &mut std::vec::IntoIter<String>) -> Vec<Node> {
    let mut out = Vec::new();
    let mut words = Vec::new();
    while let Some(t) = tokens.next() {
        match t.as_str() {
            ";" => out.push(Node {
                words: std::mem::take(&mut words),
                block: None,
            }),
            "{" => out.push(Node {
                words: std::mem::take(&mut words),
                block: Some(nodes(tokens)),
            }),
            "}" => break,
            _ => words.push(t),
        }
    }
    out
}

fn parse(text: &str) -> Vec<Node> {
    nodes(&mut tokens(text).into_iter())
}

/// What the routes of nginx's `geo` maps are `on`.
pub const GEO: &str = "nginx's geo map";

/// The routes of an nginx config, and its `geo` entries as routes of
/// their own (`on` the variable they set).
pub fn nginx_routes(text: &str) -> BTreeSet<Route> {
    let mut out = BTreeSet::new();
    walk(&parse(text), &[], &mut out);
    out
}

/// Servers and `geo` maps at any depth (`http { ... }` or a conf.d file),
/// with the access rules of the levels around them.
fn walk(nodes: &[Node], outer: &[&Node], out: &mut BTreeSet<Route>) {
    let rules = access_rules(nodes, outer);
    for n in nodes {
        match n.name() {
            "server" => server(n, &rules, out),
            "geo" => geo(n, out),
            "http" => walk(n.children(), &rules, out),
            _ => {}
        }
    }
}

/// The `allow` and `deny` directives of a level, or, when it has none,
/// those it inherits.
fn access_rules<'a>(nodes: &'a [Node], outer: &[&'a Node]) -> Vec<&'a Node> {
    let own: Vec<&Node> = nodes
        .iter()
        .filter(|n| matches!(n.name(), "allow" | "deny") && n.block.is_none())
        .collect();
    if own.is_empty() { outer.to_vec() } else { own }
}

/// Who the rules let in, each source once: every `allow` before the first
/// `deny all` or `allow all` (with the `deny`s before it), and `anywhere`
/// when no rule ends the list (nginx lets in what no rule matched).
fn sources(rules: &[&Node]) -> Vec<String> {
    let mut out = Vec::new();
    let mut denied: Vec<String> = Vec::new();
    let except = |denied: &[String]| {
        if denied.is_empty() {
            String::new()
        } else {
            format!(" except {}", denied.join(", "))
        }
    };
    for r in rules {
        let what = r.args().join(" ");
        match (r.name(), what.as_str()) {
            ("deny", "all") => return out,
            ("allow", "all") => {
                out.push(format!("anywhere{}", except(&denied)));
                return out;
            }
            ("allow", _) => out.push(format!("{what}{}", except(&denied))),
            _ => denied.push(what),
        }
    }
    out.push(format!("anywhere{}", except(&denied)));
    out
}

/// A server's name and ports, with what gates it: `name:port` (ports as
/// each `listen` names them, `ssl` kept).
fn server_label(server: &Node) -> String {
    let names: Vec<&str> = server
        .children()
        .iter()
        .filter(|n| n.name() == "server_name")
        .flat_map(|n| n.args().iter().map(String::as_str))
        .collect();
    let mut ports: BTreeSet<String> = BTreeSet::new();
    for l in server.children().iter().filter(|n| n.name() == "listen") {
        let addr = l.args().first().map_or("", String::as_str);
        let port = addr.rsplit(':').next().unwrap_or(addr);
        let ssl = l.args().iter().any(|a| a == "ssl");
        ports.insert(if ssl {
            format!("{port} (ssl)")
        } else {
            port.to_string()
        });
    }
    let mut label = format!(
        "{}:{}",
        names.join(" "),
        ports.into_iter().collect::<Vec<_>>().join(",")
    );
    // A condition that turns requests away before any location: the
    // server serves only where it does not hold.
    for n in server.children().iter().filter(|n| n.name() == "if") {
        if n.children().iter().any(|c| c.name() == "return") {
            label.push_str(&format!(" unless {}", n.args().join(" ")));
        }
    }
    label
}

fn server(server: &Node, outer: &[&Node], out: &mut BTreeSet<Route>) {
    let body = server.children();
    // A server that answers every request itself reaches nothing.
    if body.iter().any(|n| n.name() == "return") {
        return;
    }
    let on = server_label(server);
    let rules = access_rules(body, outer);
    locations(body, &rules, &on, out);
}

fn locations(body: &[Node], rules: &[&Node], on: &str, out: &mut BTreeSet<Route>) {
    for loc in body.iter().filter(|n| n.name() == "location") {
        let inner = loc.children();
        let rules = access_rules(inner, rules);
        locations(inner, &rules, on, out);
        // A location that answers by itself (`return`) reaches nothing.
        if inner.iter().any(|n| n.name() == "return") {
            continue;
        }
        let path = loc.args().join(" ");
        for from in sources(&rules) {
            out.insert((on.to_string(), from, path.clone()));
        }
    }
}

/// `geo $var { default 0; 10.20.1.0/24 1; }`: which sources get which
/// value, as routes `on` the variable.
fn geo(node: &Node, out: &mut BTreeSet<Route>) {
    let var = node.args().join(" ");
    for entry in node.children() {
        if let [from, value] = entry.words.as_slice() {
            out.insert((GEO.to_string(), from.clone(), format!("{var} = {value}")));
        }
    }
}

/// The routes a Helm site's ingress serves: each host and path, from the
/// sources its allow-list annotation names, or from anywhere.
pub fn ingress_routes(values: &Value) -> BTreeSet<Route> {
    let mut out = BTreeSet::new();
    let Some(ingress) = values.get("ingress") else {
        return out;
    };
    if ingress.get("enabled").and_then(Value::as_bool) != Some(true) {
        return out;
    }
    let class = ingress
        .get("className")
        .and_then(Value::as_str)
        .unwrap_or("default");
    let allowed: Vec<String> = ingress
        .get("annotations")
        .and_then(Value::as_mapping)
        .into_iter()
        .flatten()
        .filter(|(k, _)| {
            k.as_str().is_some_and(|k| {
                k.ends_with("/whitelist-source-range") || k.ends_with("/allowlist-source-range")
            })
        })
        .filter_map(|(_, v)| v.as_str())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let froms = if allowed.is_empty() {
        vec!["anywhere".to_string()]
    } else {
        allowed
    };
    // The items of a list under `key`, none where there is no list.
    let items = |v: &'_ Value, key: &str| -> Vec<Value> {
        v.get(key)
            .and_then(Value::as_sequence)
            .cloned()
            .unwrap_or_default()
    };
    for host in items(ingress, "hosts") {
        let name = host.get("host").and_then(Value::as_str).unwrap_or("*");
        let on = format!("{name} (ingress {class})");
        for p in items(&host, "paths") {
            let path = p.get("path").and_then(Value::as_str).unwrap_or("/");
            for from in &froms {
                out.insert((on.clone(), from.clone(), path.to_string()));
            }
        }
    }
    out
}

/// What the SSRF proxy lets through (`tcp/<ports> via the SSRF proxy to
/// <network>`, for each `allow` line), and its access rules in order: each
/// `http_access` line with its ACLs' values written out.
pub fn proxy_access(text: &str) -> (BTreeSet<String>, Vec<String>) {
    let mut reach = BTreeSet::new();
    let Ok(conf) = read_squid(text) else {
        return (reach, Vec::new());
    };
    // Every ACL's values as the config gives them, of any kind.
    let mut acls: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for line in text.lines() {
        let words: Vec<&str> = line
            .split('#')
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        if let ["acl", name, kind, values @ ..] = words.as_slice() {
            let entry = acls.entry(name).or_default();
            if entry.is_empty() {
                entry.push(kind);
            }
            entry.extend(values.iter().filter(|v| !v.starts_with('-')));
        }
    }
    let rules = conf
        .access
        .iter()
        .map(|(allow, names)| {
            let shown: Vec<String> = names
                .iter()
                .map(|a| {
                    let (not, name) = a.strip_prefix('!').map_or(("", a.as_str()), |n| ("!", n));
                    match acls.get(name) {
                        Some(v) => format!("{not}{name}({})", v.join(" ")),
                        None => a.clone(),
                    }
                })
                .collect();
            let verdict = if *allow { "allow" } else { "deny" };
            format!("http_access {verdict} {}", shown.join(" "))
        })
        .collect();
    match conf.allowed() {
        Ok(allowed) => {
            for (net, lo, hi) in allowed {
                let ports = if lo == hi {
                    lo.to_string()
                } else {
                    format!("{lo}-{hi}")
                };
                reach.insert(format!("tcp/{ports} via the SSRF proxy to {net}"));
            }
        }
        Err(why) => {
            reach.insert(format!("via the SSRF proxy: {why}"));
        }
    }
    (reach, rules)
}

/// Split an iptables-restore rule into words, a quoted string being one.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut any) = (false, false);
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            '\\' if quoted => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            c if c.is_whitespace() && !quoted => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Describe what a rule lets through, if it lets anything through: its
/// protocol and port (or ICMP type, or `any`), where to and from where,
/// the interface of a host rule, and a connection state other than NEW.
pub fn opening(line: &str) -> Option<String> {
    let w = words(line);
    let after = |flag: &str| {
        w.iter()
            .position(|x| x == flag)
            .and_then(|i| w.get(i + 1))
            .map(String::as_str)
    };
    if !matches!(after("-j"), Some("ACCEPT" | "RETURN")) {
        return None;
    }
    let chain = w.get(1).map(String::as_str).unwrap_or_default();
    let proto = after("-p").unwrap_or("any");
    let from = after("-s").unwrap_or("anywhere");
    let mut what = if let Some(port) = after("--ctorigdstport") {
        let to = after("--ctorigdst").unwrap_or("the box");
        format!("{proto}/{port} to {to} from {from}")
    } else {
        let port = after("--dport")
            .or_else(|| after("--icmp-type"))
            .or_else(|| after("--icmpv6-type"))
            .unwrap_or("any");
        if chain.contains("INPUT") {
            let on = after("-i").map(|i| format!(" on {i}")).unwrap_or_default();
            format!("{proto}/{port} to the host from {from}{on}")
        } else if let (Some(_), None) = (after("-i"), after("-o")) {
            let to = after("-d").unwrap_or("anywhere");
            format!("{proto}/{port} out to {to}")
        } else {
            let to = after("-d").unwrap_or("containers");
            let between = match (after("-i"), after("-o")) {
                (Some(i), Some(o)) => format!(" ({i} to {o})"),
                _ => String::new(),
            };
            format!("{proto}/{port} to {to} from {from}{between}")
        }
    };
    if let Some(state) = after("--ctstate")
        && state != "NEW"
    {
        what.push_str(&format!(" ({state})"));
    }
    Some(what)
}

/// Whether an opening names a port (`tcp/80 ...`), not an ICMP type or
/// every port.
pub fn names_a_port(what: &str) -> bool {
    what.split_once('/')
        .is_some_and(|(_, rest)| rest.starts_with(|c: char| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{RULES, files};
    use super::super::{Risk, summarize};
    use super::*;

    fn route(on: &str, from: &str, path: &str) -> Route {
        (on.to_string(), from.to_string(), path.to_string())
    }

    #[test]
    fn nginx_routes_follow_nginx_access_rules() {
        let conf = r#"
# a comment { with braces; }
geo $plain { default 0; 10.20.1.0/24 1; }
server {
    listen 80 default_server;
    server_name _;
    return 444;
}
server {
    listen 443 ssl;
    listen [::]:443 ssl;
    server_name site.example.org;
    if ($plain = 0) { return 301 https://x$request_uri; }
    allow 10.0.0.0/24;
    deny all;
    location / { proxy_pass $web; }
    location = /health { allow 10.20.1.0/24; allow 10.0.0.0/24; deny all; proxy_pass $api; }
    location /open { allow all; proxy_pass $api; }
    location /leaky { deny 10.0.0.5; allow 10.0.0.0/24; proxy_pass $api; }
    location /gone { return 404; }
    location "/quoted path" { deny all; }
}
"#;
        let on = "site.example.org:443 (ssl) unless ($plain = 0)";
        let want: BTreeSet<Route> = [
            route(GEO, "default", "$plain = 0"),
            route(GEO, "10.20.1.0/24", "$plain = 1"),
            route(on, "10.0.0.0/24", "/"),
            route(on, "10.20.1.0/24", "= /health"),
            route(on, "10.0.0.0/24", "= /health"),
            route(on, "anywhere", "/open"),
            route(on, "10.0.0.0/24 except 10.0.0.5", "/leaky"),
            route(on, "anywhere except 10.0.0.5", "/leaky"),
        ]
        .into_iter()
        .collect();
        assert_eq!(nginx_routes(conf), want);
        // No rule anywhere: every route is open to everyone.
        let open = "server { listen 80; server_name a; location /v1 { proxy_pass $api; } }";
        assert_eq!(
            nginx_routes(open),
            [route("a:80", "anywhere", "/v1")].into_iter().collect()
        );
    }

    #[test]
    fn ingress_routes_are_hosts_and_paths_from_their_allow_list() {
        let values: Value = serde_yaml_ng::from_str(
            "ingress:\n  enabled: true\n  className: nginx\n  annotations:\n    nginx.ingress.kubernetes.io/whitelist-source-range: \"10.0.0.0/24, 10.9.0.0/24\"\n  hosts:\n    - host: a.example.org\n      paths:\n        - path: /\n",
        )
        .unwrap();
        let on = "a.example.org (ingress nginx)";
        assert_eq!(
            ingress_routes(&values),
            [route(on, "10.0.0.0/24", "/"), route(on, "10.9.0.0/24", "/")]
                .into_iter()
                .collect()
        );
        let off: Value = serde_yaml_ng::from_str("ingress:\n  enabled: false\n").unwrap();
        assert!(ingress_routes(&off).is_empty());
    }

    #[test]
    fn the_proxy_reach_and_rules_are_read_with_their_acls() {
        let conf = "http_port 3128\nacl ports port 80 443\nacl lan dst 10.20.1.0/24\nacl egress_1 dst 10.0.0.40/32\nacl egress_1_ports port 443\nhttp_access deny !ports\nhttp_access deny lan\nhttp_access allow egress_1 egress_1_ports\nhttp_access deny all\n";
        let (reach, rules) = proxy_access(conf);
        assert_eq!(
            reach.into_iter().collect::<Vec<_>>(),
            ["tcp/443 via the SSRF proxy to 10.0.0.40/32"]
        );
        assert_eq!(
            rules,
            [
                "http_access deny !ports(port 80 443)",
                "http_access deny lan(dst 10.20.1.0/24)",
                "http_access allow egress_1(dst 10.0.0.40/32) egress_1_ports(port 443)",
                "http_access deny all",
            ]
        );
    }

    #[test]
    fn accepting_rules_without_a_port_are_openings_too() {
        assert_eq!(
            opening("-A DIFY-INPUT -s 10.0.0.0/24 -p icmp --icmp-type echo-request -j ACCEPT"),
            Some("icmp/echo-request to the host from 10.0.0.0/24".into())
        );
        assert_eq!(
            opening("-A DIFY-INPUT -s 10.9.0.0/24 -j ACCEPT"),
            Some("any/any to the host from 10.9.0.0/24".into())
        );
        assert_eq!(
            opening("-A DIFY-INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
            Some("any/any to the host from anywhere (RELATED,ESTABLISHED)".into())
        );
        assert_eq!(
            opening("-A DIFY-DOCKER -i dify-br0 -o dify-br0 -j RETURN"),
            Some("any/any to containers from anywhere (dify-br0 to dify-br0)".into())
        );
        assert!(names_a_port("tcp/22 to the host from anywhere"));
        assert!(!names_a_port("icmp/echo-request to the host from anywhere"));
    }

    #[test]
    fn a_rule_added_twice_or_moved_is_a_change() {
        let twice = RULES.replace(
            "-A DIFY-INPUT -j DROP",
            "-A DIFY-INPUT -s 10.0.0.0/28 -p tcp --dport 22 -m comment --comment \"ssh -j x\" -j ACCEPT\n-A DIFY-INPUT -j DROP",
        );
        let s = summarize(
            &files(&[("firewall/rules.v4", RULES)]),
            &files(&[("firewall/rules.v4", &twice)]),
        );
        assert_eq!(
            s.risks,
            vec![Risk::FirewallChanged {
                file: "firewall/rules.v4".into(),
                rules_added: 1,
                rules_removed: 0
            }]
        );
        let moved = "*filter\n-A DIFY-INPUT -j DROP\n-A DIFY-INPUT -s 10.0.0.0/28 -p tcp --dport 22 -m comment --comment \"ssh -j x\" -j ACCEPT\nCOMMIT\n";
        let s = summarize(
            &files(&[("firewall/rules.v4", RULES)]),
            &files(&[("firewall/rules.v4", moved)]),
        );
        assert!(
            matches!(s.risks.as_slice(), [Risk::FirewallChanged { .. }]),
            "{:?}",
            s.risks
        );
    }

    #[test]
    fn routes_opened_to_a_source_are_flagged_and_named_in_the_subject() {
        let conf = |v1: &str| {
            format!(
                "server {{ listen 80; server_name a; location /console/api {{ {v1} allow 10.0.0.0/24; deny all; }} }}"
            )
        };
        let old = files(&[("nginx/default.conf", &conf(""))]);
        let new = files(&[("nginx/default.conf", &conf("allow 10.20.1.0/24;"))]);
        let s = summarize(&old, &new);
        assert_eq!(
            s.risks,
            vec![Risk::RouteOpened {
                on: "a:80".into(),
                from: "10.20.1.0/24".into(),
                paths: vec!["/console/api".into()]
            }]
        );
        assert_eq!(
            s.risks[0].to_string(),
            "route opened: /console/api on a:80 from 10.20.1.0/24"
        );
        assert_eq!(s.headline(false), "open /console/api to 10.20.1.0/24");
        assert_eq!(
            summarize(&new, &old).headline(false),
            "close routes to 1 source"
        );
    }
}

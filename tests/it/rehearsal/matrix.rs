//! The probe matrix of a running site: which probes to make, what the
//! site's settings say each should find, and the findings.

use std::collections::BTreeMap;
use std::path::Path;

use ipnet::IpNet;

use super::netns::{Engine, Host, LAN6_BOX, LAN6_CLIENT, OUTSIDE_BOX, container_ip};
use super::probes::{self, Row, Via, contains, route_owner};

/// What the site's settings say about its box, read from the compiled site
/// (the settings, not the generated files: the files are what is tested).
#[derive(Debug, Clone)]
pub struct Expect {
    pub site: String,
    /// The site's Dify release.
    pub release: String,
    pub hostname: String,
    pub address: String,
    pub lan: Vec<IpNet>,
    pub lan4: ipnet::Ipv4Net,
    pub lan6: bool,
    pub admin: Vec<IpNet>,
    pub ssh_from: Vec<IpNet>,
    pub ssh_port: u16,
    pub http_port: u16,
    pub public_routes: Vec<String>,
    pub egress: Vec<(IpNet, Vec<u16>)>,
    /// `[network.tls]`: the https port and what plain http does
    /// ("refuse", "redirect", "allow-lan", "allow").
    pub tls: Option<(u16, String)>,
    /// Memory limit per compose service, bytes.
    pub memory: BTreeMap<String, u64>,
}

impl Expect {
    pub fn load(root: &Path, site: &str) -> Expect {
        use dify_cfg::internals::{analyze, read_inputs};
        let (inputs, diags) = read_inputs(root);
        let analysis = analyze(&inputs, diags);
        let v = analysis
            .sites
            .iter()
            .find(|s| s.site.name == site)
            .unwrap_or_else(|| panic!("no site {site}"));
        let s = &v.site;
        let n = &s.network;
        Expect {
            site: site.to_string(),
            release: s.dify_version.to_string(),
            hostname: n.hostname.clone(),
            address: n
                .address
                .expect("a compose site has an address")
                .to_string(),
            lan: n.lan.iter().map(|l| IpNet::V4(*l)).collect(),
            lan4: n.lan.expect("a compose site has a LAN"),
            lan6: n.lan6.is_some(),
            admin: n.admin.to_vec(),
            ssh_from: n.ssh_from.to_vec(),
            ssh_port: n.ssh_port,
            http_port: n.http_port,
            public_routes: n.public_routes.to_vec(),
            egress: n.egress.iter().map(|e| (e.cidr, e.ports.clone())).collect(),
            tls: n.tls.as_ref().map(|t| {
                let mode = match format!("{:?}", t.http).as_str() {
                    "Refuse" => "refuse",
                    "Redirect" => "redirect",
                    "AllowLan" => "allow-lan",
                    _ => "allow",
                };
                (t.port, mode.to_string())
            }),
            memory: s
                .services
                .iter()
                .map(|(k, svc)| (k.compose_name().to_string(), svc.memory.0))
                .collect(),
        }
    }

    fn allowed_http(&self, host: Host) -> bool {
        contains(&self.lan, host.addr()) || contains(&self.admin, host.addr())
    }

    /// What plain http gives `host` on a route it may use: served, a
    /// redirect to https, or nothing (not published).
    fn plain_http(&self, host: Host) -> &'static str {
        match self.tls.as_ref().map(|(_, m)| m.as_str()) {
            None | Some("allow") => "served",
            Some("allow-lan") if contains(&self.lan, host.addr()) => "served",
            Some("refuse") => "refused",
            _ => "redirected",
        }
    }

    /// How a client reaches the site's routes at `target`: https where the
    /// site has TLS.
    pub fn via(&self, target: &str, ca: &Path) -> Via {
        match &self.tls {
            Some((port, _)) => Via::https(target, *port, &self.hostname, ca),
            None => Via::http(target, self.http_port, &self.hostname),
        }
    }

    fn egress_allows(&self, addr: &str, port: u16) -> bool {
        self.egress
            .iter()
            .any(|(net, ports)| contains(std::slice::from_ref(net), addr) && ports.contains(&port))
    }
}

fn row(from: &str, probe: String, expected: &str, observed: String) -> Row {
    Row {
        from: from.to_string(),
        probe,
        expected: expected.to_string(),
        observed,
    }
}

/// The ports of the box and of every service inside it.
const SERVICE_PORTS: &[(&str, u16)] = &[
    ("api", 5001),
    ("web", 3000),
    ("plugin_daemon", 5002),
    ("sandbox", 8194),
    ("ssrf_proxy", 3128),
    ("db_postgres", 5432),
    ("redis", 6379),
    ("nginx", 80),
];

/// TCP from every host to the box's ports and to every container's own
/// address (the hosts have a route to the containers' networks through
/// the box: only the firewall stands in the way).
pub fn tcp_rows(x: &Expect, engine: &Engine, project: &str) -> Vec<Row> {
    let mut jobs: Vec<(Host, String, u16, &'static str)> = Vec::new();
    let hosts = [Host::Lan, Host::Admin, Host::Admin2, Host::Outside];
    let tls_port = x.tls.as_ref().map(|(p, _)| *p);
    let mut box_ports: Vec<u16> = vec![x.ssh_port, x.http_port, 443];
    box_ports.extend(tls_port);
    box_ports.extend(SERVICE_PORTS.iter().map(|(_, p)| *p));
    box_ports.sort_unstable();
    box_ports.dedup();
    for host in hosts {
        let target = if host == Host::Outside {
            OUTSIDE_BOX
        } else {
            x.address.as_str()
        };
        for &port in &box_ports {
            let expected = if port == x.ssh_port {
                if contains(&x.ssh_from, host.addr()) {
                    "open"
                } else {
                    "dropped"
                }
            } else if port == x.http_port && x.allowed_http(host) {
                if x.plain_http(host) == "refused" {
                    "dropped"
                } else {
                    "open"
                }
            } else if Some(port) == tls_port && x.allowed_http(host) {
                "open"
            } else {
                "dropped"
            };
            jobs.push((host, target.to_string(), port, expected));
        }
    }
    // The outside host also tries the LAN address through the box.
    jobs.push((Host::Outside, x.address.clone(), x.http_port, "dropped"));
    // A service the site runs without an address is a failed row, not a
    // probe left out.
    let mut missing = Vec::new();
    for (service, port) in SERVICE_PORTS {
        if !x.memory.contains_key(*service) {
            continue;
        }
        match container_ip(engine, &format!("{project}-{service}-1")) {
            Some(ip) => {
                for host in [Host::Lan, Host::Admin, Host::Outside] {
                    jobs.push((host, format!("{service} {ip}"), *port, "dropped"));
                }
            }
            None => missing.push(row(
                &format!("container {service}"),
                format!("tcp {service}:{port}"),
                "dropped",
                "no container address".into(),
            )),
        }
    }
    if x.lan6 {
        for port in [x.ssh_port, x.http_port, 443] {
            jobs.push((Host::Lan, LAN6_BOX.to_string(), port, "dropped"));
        }
    }
    let mut rows = parallel(jobs, |(host, target, port, expected)| {
        let label = if host == Host::Lan && target == LAN6_BOX {
            format!("LAN {LAN6_CLIENT}")
        } else {
            host.label()
        };
        // A container's target is "service address".
        let addr = target.rsplit(' ').next().unwrap();
        row(
            &label,
            format!("tcp {target}:{port}"),
            expected,
            probes::tcp(host, addr, port),
        )
    });
    rows.extend(missing);
    rows
}

/// Ping from every host: the site admits it from its LAN and the admin
/// networks (and from its IPv6 LAN).
fn ping_rows(x: &Expect) -> Vec<Row> {
    let mut jobs = Vec::new();
    for host in [Host::Lan, Host::Admin, Host::Admin2, Host::Outside] {
        let target = if host == Host::Outside {
            OUTSIDE_BOX
        } else {
            x.address.as_str()
        };
        let expected = if x.allowed_http(host) {
            "answered"
        } else {
            "no answer"
        };
        jobs.push((host, target.to_string(), expected));
    }
    if x.lan6 {
        jobs.push((Host::Lan, LAN6_BOX.to_string(), "answered"));
    }
    parallel(jobs, |(host, target, expected)| {
        let out = super::netns::in_host(host, &["ping", "-c", "1", "-W", "2", &target]);
        let observed = if out.status.success() {
            "answered"
        } else {
            "no answer"
        };
        let from = if target == LAN6_BOX {
            format!("LAN {LAN6_CLIENT}")
        } else {
            host.label()
        };
        row(
            &from,
            format!("ping {target}"),
            expected,
            observed.to_string(),
        )
    })
}

/// What a probe of a route prefix finds when nginx lets it through: the
/// stand-ins answer every path; Dify's api answers its /health, and a path
/// it does not serve with Flask's not-found page.
fn answer(prefix: &str) -> String {
    match route_owner(prefix) {
        "api" if prefix == "/health" => "200 api".into(),
        "api" => "404 api".into(),
        owner => format!("200 {owner}"),
    }
}

/// Every route prefix through nginx, from every host (over https where
/// the site has TLS), and plain http where the site has TLS.
fn http_rows(x: &Expect, ca: &Path) -> Vec<Row> {
    let mut jobs = Vec::new();
    let prefixes = [
        "/v1",
        "/console/api",
        "/api",
        "/files",
        "/mcp",
        "/triggers",
        "/openapi",
        "/e/",
        "/explore",
        "/",
        "/health",
    ];
    let path_of = |prefix: &str| match prefix {
        "/" | "/health" => prefix.to_string(),
        p if p.ends_with('/') => format!("{p}rehearsal-probe"),
        p => format!("{p}/rehearsal-probe"),
    };
    for host in [Host::Lan, Host::Admin, Host::Outside] {
        let target = if host == Host::Outside {
            OUTSIDE_BOX
        } else {
            x.address.as_str()
        };
        let via = x.via(target, ca);
        for prefix in prefixes {
            let public = prefix == "/health" || x.public_routes.iter().any(|r| r == prefix);
            let allowed =
                contains(&x.admin, host.addr()) || (public && contains(&x.lan, host.addr()));
            let expected = if host == Host::Outside {
                "dropped".to_string()
            } else if allowed {
                answer(prefix)
            } else {
                "403".to_string()
            };
            jobs.push((host, via.clone(), path_of(prefix), expected));
        }
        if x.tls.is_some() && host != Host::Outside {
            // Plain http beside https.
            let plain = Via::http(target, x.http_port, &x.hostname);
            let expected = match x.plain_http(host) {
                "served" if x.allowed_http(host) => answer("/v1"),
                "refused" => "dropped".to_string(),
                _ => "301".to_string(),
            };
            jobs.push((host, plain, path_of("/v1"), expected));
        }
    }
    let mut rows = parallel(jobs, |(host, via, path, expected)| {
        let shown = format!("{}{path}", via.base);
        row(
            &host.label(),
            format!("GET {}", shown.split_once("//").unwrap().1),
            &expected,
            probes::http(host, &via, &path, &[]),
        )
    });
    // A name the site does not serve: nginx closes the connection.
    if x.plain_http(Host::Admin) != "refused" {
        let via = Via::http(&x.address, x.http_port, &x.address);
        rows.push(row(
            &Host::Admin.label(),
            format!("GET /v1 with Host: {}", x.address),
            "closed without answer",
            probes::http(Host::Admin, &via, "/v1/rehearsal-probe", &[]),
        ));
    }
    if x.tls.is_some() {
        // Old protocols are refused.
        let via = x.via(&x.address, ca);
        rows.push(row(
            &Host::Admin.label(),
            "https with TLS 1.1 at most".into(),
            "TLS handshake refused",
            probes::http(
                Host::Admin,
                &via,
                "/v1/rehearsal-probe",
                &["--tlsv1", "--tls-max", "1.1"],
            ),
        ));
    }
    rows
}

/// Egress from inside the containers, and the sandbox's way out through
/// the SSRF proxy.
fn egress_rows(x: &Expect, engine: &Engine, project: &str, ca: &Path) -> Vec<Row> {
    let llm = Host::Llm.addr();
    let targets: [(&str, u16); 4] = [
        (llm, 443),
        (Host::Outside.addr(), 80),
        (Host::Admin.addr(), x.ssh_port),
        (Host::Lan.addr(), 80),
    ];
    let mut jobs = Vec::new();
    for service in ["api", "worker", "plugin_daemon", "ssrf_proxy", "nginx"] {
        for (addr, port) in targets {
            let expected = if x.egress_allows(addr, port) {
                "open"
            } else {
                "dropped"
            };
            jobs.push((service, addr.to_string(), port, expected));
        }
    }
    let sandbox = x.memory.contains_key("sandbox");
    // The sandbox is only on the internal network: nothing leaves it but
    // through the proxy.
    if sandbox {
        jobs.push(("sandbox", llm.to_string(), 443, "dropped"));
    }
    let mut rows = parallel(jobs, |(service, addr, port, expected)| {
        let container = format!("{project}-{service}-1");
        let observed = probes::tcp_from_container(engine, &container, &addr, port);
        row(
            &format!("container {service}"),
            format!("tcp {addr}:{port}"),
            expected,
            observed,
        )
    });
    if !sandbox {
        return rows;
    }
    let sandbox = format!("{project}-sandbox-1");
    engine.docker_ok(&[
        "cp",
        ca.to_str().unwrap(),
        &format!("{sandbox}:/tmp/rehearsal-ca.crt"),
    ]);
    for (url, expected) in [
        (
            format!("https://{llm}/v1/chat/completions"),
            "200 llm".to_string(),
        ),
        (format!("http://{}/", Host::Admin.addr()), "403".into()),
        (format!("http://{}/", Host::Outside.addr()), "403".into()),
        ("http://api:5001/health".to_string(), "403".into()),
        (
            "http://169.254.169.254/latest/meta-data/".to_string(),
            "403".into(),
        ),
    ] {
        // The proxy the sandbox's environment names (curl reads only the
        // lower-case http_proxy for http:// URLs, so it is given outright).
        let fetch = format!(
            "curl -s -m 10 --proxy \"$HTTP_PROXY\" --cacert /tmp/rehearsal-ca.crt -o - -w '\\n%{{http_code}}' '{url}'"
        );
        let out = engine.docker(&["exec", &sandbox, "sh", "-c", &fetch]);
        let observed =
            probes::curl_outcome(out.status.code(), &String::from_utf8_lossy(&out.stdout));
        rows.push(row(
            "container sandbox",
            format!("{url} through ssrf_proxy"),
            &expected,
            observed,
        ));
    }
    rows
}

/// The matrix of a running site. `key` is the API key of the smoke
/// workload's app (the upload needs one).
pub fn run(
    x: &Expect,
    engine: &Engine,
    project: &str,
    ca: &Path,
    upload: &Path,
    key: &str,
) -> Vec<Row> {
    let mut rows = tcp_rows(x, engine, project);
    rows.extend(ping_rows(x));
    rows.extend(http_rows(x, ca));
    rows.extend(egress_rows(x, engine, project, ca));
    let public_v1 = x.public_routes.iter().any(|r| r == "/v1");
    let client = if public_v1 { Host::Lan } else { Host::Admin };
    let via = x.via(&x.address, ca);
    let size = std::fs::metadata(upload).unwrap().len();
    rows.push(row(
        &client.label(),
        format!("POST /v1/files/upload, {} MiB", size >> 20),
        &format!("201 api, {size} bytes stored"),
        probes::upload(client, &via, upload, key),
    ));
    rows
}

/// Run `f` over `jobs` on threads (each probe is a process that may wait
/// for a timeout), keeping the order.
fn parallel<J: Send, F: Fn(J) -> Row + Sync>(jobs: Vec<J>, f: F) -> Vec<Row> {
    std::thread::scope(|s| {
        let handles: Vec<_> = jobs.into_iter().map(|j| s.spawn(|| f(j))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

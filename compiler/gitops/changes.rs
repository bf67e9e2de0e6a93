//! What changed between two renders of a site, said for a reviewer: the
//! files with their line counts, and the risk flags (ports opened or
//! closed, routes opened or closed to a source, what the SSRF proxy lets
//! through, images changed, memory limits changed, firewall and proxy
//! rules changed). Read from the rendered files, the way the tools read
//! them, so an old tree from a branch needs no model of its own.

mod exposure;
mod upgrade;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;
use serde_yaml_ng::Value;

use crate::emit::SiteTree;
use crate::model::Site;
use crate::plan::{HELM_VALUES_FILE, NGINX_FILE, RULES_V4_FILE, RULES_V6_FILE, SQUID_FILE};
use exposure::{Route, names_a_port, opening};
pub use upgrade::{ImageChange, Upgrade, recorded_release};

/// A site's files: relative path to bytes.
pub type Files = BTreeMap<String, Vec<u8>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    Added,
    Removed,
    Modified,
}

impl ChangeKind {
    /// `added`, `removed` or `modified`.
    pub fn word(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Removed => "removed",
            ChangeKind::Modified => "modified",
        }
    }

    fn letter(self) -> char {
        match self {
            ChangeKind::Added => 'A',
            ChangeKind::Removed => 'D',
            ChangeKind::Modified => 'M',
        }
    }
}

/// One changed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct FileChange {
    pub path: String,
    pub kind: ChangeKind,
    pub lines_added: usize,
    pub lines_removed: usize,
}

/// A change a reviewer must not miss.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Risk {
    PortOpened {
        what: String,
    },
    PortClosed {
        what: String,
    },
    ImageChanged {
        service: String,
        from: String,
        to: String,
    },
    MemoryLimitChanged {
        service: String,
        from: String,
        to: String,
    },
    FirewallChanged {
        file: String,
        rules_added: usize,
        rules_removed: usize,
    },
    /// Routes `on` a server (`host:port`) newly reachable `from` a source.
    RouteOpened {
        on: String,
        from: String,
        paths: Vec<String>,
    },
    RouteClosed {
        on: String,
        from: String,
        paths: Vec<String>,
    },
    /// A destination the SSRF proxy newly lets through.
    ProxyOpened {
        what: String,
    },
    ProxyClosed {
        what: String,
    },
    ProxyChanged {
        file: String,
        rules_added: usize,
        rules_removed: usize,
    },
    /// The site's Dify release changes across database migrations.
    DatabaseMigrations {
        from: String,
        to: String,
        what: String,
    },
}

impl Risk {
    /// What kind of risk, e.g. `port opened`.
    pub fn label(&self) -> &'static str {
        match self {
            Risk::PortOpened { .. } => "port opened",
            Risk::PortClosed { .. } => "port closed",
            Risk::ImageChanged { .. } => "image changed",
            Risk::MemoryLimitChanged { .. } => "memory limit changed",
            Risk::FirewallChanged { .. } => "firewall rules changed",
            Risk::RouteOpened { .. } => "route opened",
            Risk::RouteClosed { .. } => "route closed",
            Risk::ProxyOpened { .. } => "proxy egress opened",
            Risk::ProxyClosed { .. } => "proxy egress closed",
            Risk::ProxyChanged { .. } => "proxy rules changed",
            Risk::DatabaseMigrations { .. } => "database migrations",
        }
    }

    /// The specifics, e.g. `tcp/80 to 10.20.1.10 from 10.20.1.0/24 (IPv4)`.
    pub fn detail(&self) -> String {
        match self {
            Risk::PortOpened { what }
            | Risk::PortClosed { what }
            | Risk::ProxyOpened { what }
            | Risk::ProxyClosed { what }
            | Risk::DatabaseMigrations { what, .. } => what.clone(),
            Risk::RouteOpened { on, from, paths } | Risk::RouteClosed { on, from, paths } => {
                format!("{} on {on} from {from}", paths.join(", "))
            }
            Risk::ImageChanged { service, from, to }
            | Risk::MemoryLimitChanged { service, from, to } => {
                format!("{service}: {from} -> {to}")
            }
            Risk::FirewallChanged {
                file,
                rules_added,
                rules_removed,
            }
            | Risk::ProxyChanged {
                file,
                rules_added,
                rules_removed,
            } => format!("{file} (+{rules_added} -{rules_removed} rules)"),
        }
    }
}

impl fmt::Display for Risk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.label(), self.detail())
    }
}

/// Everything that changed between two trees of one site.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub files: Vec<FileChange>,
    pub risks: Vec<Risk>,
    /// When the site's Dify release changes: what comes with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<Box<Upgrade>>,
}

impl Summary {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Drop spare capacity: `commit` keeps a summary per site until it
    /// reports.
    pub fn shrink_to_fit(&mut self) {
        self.files.shrink_to_fit();
        self.risks.shrink_to_fit();
    }

    /// A commit subject's text after `<site>: `, at most about 60
    /// characters: the risks first, then the files.
    pub fn headline(&self, first: bool) -> String {
        if first {
            return format!(
                "first render ({} file{})",
                self.files.len(),
                plural(self.files.len())
            );
        }
        let mut parts: Vec<String> = Vec::new();
        if let Some(u) = &self.upgrade {
            parts.push(format!("{} Dify to {}", u.direction.word(), u.to));
        }
        let opened: Vec<&str> = self
            .risks
            .iter()
            .filter_map(|r| match r {
                // Ping is in the risk list; the subject names ports.
                Risk::PortOpened { what } if names_a_port(what) => Some(what.as_str()),
                _ => None,
            })
            .collect();
        let closed = self
            .risks
            .iter()
            .filter(|r| matches!(r, Risk::PortClosed { .. }))
            .count();
        match opened.as_slice() {
            [] => {}
            [one] => {
                // The whole opening when it fits, else its protocol/port.
                let what = one.trim_end_matches(" (IPv4)").trim_end_matches(" (IPv6)");
                let what = if what.len() <= 48 {
                    what
                } else {
                    one.split(' ').next().unwrap_or(one)
                };
                parts.push(format!("open {what}"));
            }
            many => parts.push(format!("open {} ports", many.len())),
        }
        if closed > 0 {
            parts.push(format!("close {closed} port{}", plural(closed)));
        }
        self.route_headline(&mut parts);
        let names = |pick: fn(&Risk) -> Option<&str>| -> Vec<&str> {
            let set: BTreeSet<&str> = self.risks.iter().filter_map(pick).collect();
            set.into_iter().collect()
        };
        let images = names(|r| match r {
            Risk::ImageChanged { service, .. } => Some(service.as_str()),
            _ => None,
        });
        if !images.is_empty() {
            parts.push(format!(
                "new {} image{}",
                list_short(&images),
                plural(images.len())
            ));
        }
        let limits = names(|r| match r {
            Risk::MemoryLimitChanged { service, .. } => Some(service.as_str()),
            _ => None,
        });
        if !limits.is_empty() {
            parts.push(format!(
                "{} memory limit{}",
                list_short(&limits),
                plural(limits.len())
            ));
        }
        if parts.is_empty() {
            if self
                .risks
                .iter()
                .any(|r| matches!(r, Risk::FirewallChanged { .. }))
            {
                parts.push("change firewall rules".into());
            }
            if self
                .risks
                .iter()
                .any(|r| matches!(r, Risk::ProxyChanged { .. }))
            {
                parts.push("change proxy rules".into());
            }
            let paths: Vec<&str> = self.files.iter().map(|f| f.path.as_str()).collect();
            parts.push(format!("update {}", list_short(&paths)));
        }
        let mut out = String::new();
        for p in parts {
            if !out.is_empty() && out.len() + p.len() + 2 > 60 {
                out.push_str(", ...");
                break;
            }
            if !out.is_empty() {
                out.push_str(", ");
            }
            out.push_str(&p);
        }
        out
    }

    /// The routes opened to new sources: `open /console/api to
    /// 10.20.1.0/24`, `open 11 routes to 10.9.0.0/24`, `open routes to 2
    /// sources`; and how many closed.
    fn route_headline(&self, parts: &mut Vec<String>) {
        let mut opened: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        let mut closed: BTreeSet<&str> = BTreeSet::new();
        for r in &self.risks {
            match r {
                Risk::RouteOpened { on, from, paths } if on != exposure::GEO => {
                    opened
                        .entry(from)
                        .or_default()
                        .extend(paths.iter().map(String::as_str));
                }
                Risk::RouteClosed { on, from, .. } if on != exposure::GEO => {
                    closed.insert(from);
                }
                _ => {}
            }
        }
        match opened.iter().collect::<Vec<_>>().as_slice() {
            [] => {}
            [(from, paths)] => match paths.iter().collect::<Vec<_>>().as_slice() {
                [one] => parts.push(format!("open {one} to {from}")),
                many => parts.push(format!("open {} routes to {from}", many.len())),
            },
            many => parts.push(format!("open routes to {} sources", many.len())),
        }
        if !closed.is_empty() {
            let n = closed.len();
            parts.push(format!("close routes to {n} source{}", plural(n)));
        }
    }

    /// `M compose.yaml (+3 -1)` lines.
    pub fn file_lines(&self) -> Vec<String> {
        self.files
            .iter()
            .map(|f| {
                format!(
                    "{} {} (+{} -{})",
                    f.kind.letter(),
                    f.path,
                    f.lines_added,
                    f.lines_removed
                )
            })
            .collect()
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `a`, `a and b`, `a, b and 2 more`.
fn list_short(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [a] => (*a).to_string(),
        [a, b] => format!("{a} and {b}"),
        [a, b, rest @ ..] => format!("{a}, {b} and {} more", rest.len()),
    }
}

/// Compare two trees of one site.
#[cfg(test)]
fn summarize(old: &Files, new: &Files) -> Summary {
    summary_of(old, new, None, None)
}

/// What changed from an old tree's files to a tree just rendered (whose
/// `compose.yaml` is read back already) for `site`.
pub fn summarize_tree(old: &Files, new: &SiteTree, site: &Site) -> Summary {
    summary_of(old, &new.files, new.compose.as_ref(), Some(site))
}

fn summary_of(
    old: &Files,
    new: &Files,
    new_compose: Option<&Value>,
    site: Option<&Site>,
) -> Summary {
    let mut risks = risks(&facts(old, None), &facts(new, new_compose));
    let images = risks
        .iter()
        .filter_map(|r| match r {
            Risk::ImageChanged { service, from, to } => Some(ImageChange {
                service: service.clone(),
                from: from.clone(),
                to: to.clone(),
            }),
            _ => None,
        })
        .collect();
    let upgrade = upgrade::upgrade(old, new, new_compose, images, site);
    if let Some(u) = &upgrade
        && let Some(what) = u.migration_risk()
    {
        risks.push(Risk::DatabaseMigrations {
            from: u.from.clone(),
            to: u.to.clone(),
            what,
        });
    }
    Summary {
        files: file_changes(old, new),
        risks,
        upgrade,
    }
}

/// The keys whose values differ between two maps (or that only one has),
/// in order.
pub fn differing_keys<'m, K: Ord, V: PartialEq>(
    a: &'m BTreeMap<K, V>,
    b: &'m BTreeMap<K, V>,
) -> impl Iterator<Item = &'m K> {
    let keys: BTreeSet<&K> = a.keys().chain(b.keys()).collect();
    keys.into_iter().filter(move |k| a.get(*k) != b.get(*k))
}

/// Changed files, in path order, with line counts.
fn file_changes(old: &Files, new: &Files) -> Vec<FileChange> {
    let mut out = Vec::new();
    for path in differing_keys(old, new) {
        let (a, b) = (old.get(path), new.get(path));
        let kind = match (a, b) {
            (None, _) => ChangeKind::Added,
            (_, None) => ChangeKind::Removed,
            _ => ChangeKind::Modified,
        };
        let a = a.map(|b| String::from_utf8_lossy(b)).unwrap_or_default();
        let b = b.map(|b| String::from_utf8_lossy(b)).unwrap_or_default();
        let (lines_added, lines_removed) = line_counts(&a, &b);
        out.push(FileChange {
            path: path.clone(),
            kind,
            lines_added,
            lines_removed,
        });
    }
    out
}

/// Lines added and removed from `a` to `b`.
fn line_counts(a: &str, b: &str) -> (usize, usize) {
    let diff = similar::TextDiff::from_lines(a, b);
    let (mut added, mut removed) = (0, 0);
    for change in diff.iter_all_changes() {
        match change.tag() {
            similar::ChangeTag::Insert => added += 1,
            similar::ChangeTag::Delete => removed += 1,
            similar::ChangeTag::Equal => {}
        }
    }
    (added, removed)
}

/// What the risk flags compare, read from one tree.
#[derive(Debug, Default, PartialEq, Eq)]
struct Facts {
    /// Openings: firewall accepts and compose publications, described.
    openings: BTreeSet<String>,
    /// Service (or Helm component) to image.
    images: BTreeMap<String, String>,
    /// Service (or Helm component) to memory limit.
    limits: BTreeMap<String, String>,
    /// Firewall file to its rules (`-A` and `-I` lines), in order: the
    /// first match wins, and a rule twice is two rules.
    rules: BTreeMap<String, Vec<String>>,
    /// Routes reachable from a source: nginx's and the Helm ingress's.
    routes: BTreeSet<Route>,
    /// Destinations the SSRF proxy lets through.
    proxy: BTreeSet<String>,
    /// The SSRF proxy's access rules, in order.
    proxy_rules: Option<Vec<String>>,
}

fn risks(old: &Facts, new: &Facts) -> Vec<Risk> {
    let mut out = Vec::new();
    for what in new.openings.difference(&old.openings) {
        out.push(Risk::PortOpened { what: what.clone() });
    }
    for what in old.openings.difference(&new.openings) {
        out.push(Risk::PortClosed { what: what.clone() });
    }
    // A service that appears or goes shows as `(none)` on one side.
    let none = || "(none)".to_string();
    let changed = |a: &BTreeMap<String, String>, b: &BTreeMap<String, String>| {
        differing_keys(a, b)
            .map(|k| {
                (
                    k.clone(),
                    a.get(k).cloned().unwrap_or_else(none),
                    b.get(k).cloned().unwrap_or_else(none),
                )
            })
            .collect::<Vec<_>>()
    };
    for (service, from, to) in changed(&old.images, &new.images) {
        out.push(Risk::ImageChanged { service, from, to });
    }
    for (service, from, to) in changed(&old.limits, &new.limits) {
        out.push(Risk::MemoryLimitChanged { service, from, to });
    }
    let files: BTreeSet<&String> = old.rules.keys().chain(new.rules.keys()).collect();
    let empty = Vec::new();
    for file in files {
        let (a, b) = (
            old.rules.get(file).unwrap_or(&empty),
            new.rules.get(file).unwrap_or(&empty),
        );
        if a != b {
            let (rules_added, rules_removed) = rule_counts(a, b);
            out.push(Risk::FirewallChanged {
                file: file.clone(),
                rules_added,
                rules_removed,
            });
        }
    }
    if old.proxy_rules != new.proxy_rules {
        let (a, b) = (
            old.proxy_rules.as_ref().unwrap_or(&empty),
            new.proxy_rules.as_ref().unwrap_or(&empty),
        );
        let (rules_added, rules_removed) = rule_counts(a, b);
        out.push(Risk::ProxyChanged {
            file: SQUID_FILE.to_string(),
            rules_added,
            rules_removed,
        });
    }
    for what in new.proxy.difference(&old.proxy) {
        out.push(Risk::ProxyOpened { what: what.clone() });
    }
    for what in old.proxy.difference(&new.proxy) {
        out.push(Risk::ProxyClosed { what: what.clone() });
    }
    let grouped = |a: &BTreeSet<Route>, b: &BTreeSet<Route>| {
        let mut by: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for (on, from, path) in a.difference(b) {
            by.entry((on.clone(), from.clone()))
                .or_default()
                .push(path.clone());
        }
        by
    };
    for ((on, from), paths) in grouped(&new.routes, &old.routes) {
        out.push(Risk::RouteOpened { on, from, paths });
    }
    for ((on, from), paths) in grouped(&old.routes, &new.routes) {
        out.push(Risk::RouteClosed { on, from, paths });
    }
    out.sort();
    out
}

/// Rules added and removed from `a` to `b`, in order.
fn rule_counts(a: &[String], b: &[String]) -> (usize, usize) {
    line_counts(&lines_of(a), &lines_of(b))
}

fn lines_of(rules: &[String]) -> String {
    rules.iter().map(|r| format!("{r}\n")).collect()
}

/// The facts of a tree; `compose` is its `compose.yaml` read back, if that
/// is done already.
fn facts(files: &Files, compose: Option<&Value>) -> Facts {
    let mut f = Facts::default();
    let text = |p: &str| {
        files
            .get(p)
            .map(|b| String::from_utf8_lossy(b).into_owned())
    };
    match compose {
        Some(doc) => compose_facts(doc, &mut f),
        None => {
            if let Ok(doc) = crate::verify::crosscheck::read_compose(files) {
                compose_facts(&doc, &mut f);
            }
        }
    }
    if let Some(values) = text(HELM_VALUES_FILE)
        && let Ok(doc) = serde_yaml_ng::from_str::<Value>(&values)
    {
        helm_facts(&doc, &mut Vec::new(), &mut f);
        f.routes.extend(exposure::ingress_routes(&doc));
    }
    if let Some(conf) = text(NGINX_FILE) {
        f.routes.extend(exposure::nginx_routes(&conf));
    }
    if let Some(conf) = text(SQUID_FILE) {
        let (reach, rules) = exposure::proxy_access(&conf);
        f.proxy = reach;
        f.proxy_rules = Some(rules);
    }
    for (file, family) in [(RULES_V4_FILE, "IPv4"), (RULES_V6_FILE, "IPv6")] {
        if let Some(rules) = text(file) {
            let lines: Vec<String> = rules
                .lines()
                .filter(|l| l.starts_with("-A ") || l.starts_with("-I "))
                .map(str::to_string)
                .collect();
            for line in &lines {
                if let Some(o) = opening(line) {
                    f.openings.insert(format!("{o} ({family})"));
                }
            }
            f.rules.insert(file.to_string(), lines);
        }
    }
    f
}

fn compose_facts(doc: &Value, f: &mut Facts) {
    let Some(services) = doc.get("services").and_then(Value::as_mapping) else {
        return;
    };
    for (name, svc) in services {
        let name = name.as_str().unwrap_or_default().to_string();
        if let Some(image) = svc.get("image").and_then(Value::as_str) {
            f.images.insert(name.clone(), image.to_string());
        }
        let limit = svc.get("mem_limit").and_then(scalar).or_else(|| {
            svc.get("deploy")
                .and_then(|d| d.get("resources"))
                .and_then(|r| r.get("limits"))
                .and_then(|l| l.get("memory"))
                .and_then(scalar)
        });
        if let Some(limit) = limit {
            f.limits.insert(name.clone(), limit);
        }
    }
    if let Ok(published) = crate::verify::crosscheck::published_ports_of(doc) {
        for p in published {
            f.openings.insert(format!(
                "tcp/{} published on {} to {}:{}",
                p.host_port,
                p.host_ip.as_deref().unwrap_or("every address"),
                p.service,
                p.container_port
            ));
        }
    }
}

/// Images are `{repository, tag}` mappings; limits sit at
/// `<component>.resources.limits.memory`.
fn helm_facts(v: &Value, path: &mut Vec<String>, f: &mut Facts) {
    let Some(map) = v.as_mapping() else {
        return;
    };
    if let (Some(repo), Some(tag)) = (
        map.get("repository").and_then(Value::as_str),
        map.get("tag").and_then(scalar),
    ) {
        f.images.insert(path.join("."), format!("{repo}:{tag}"));
    }
    if path.len() >= 2
        && path[path.len() - 2..] == ["resources".to_string(), "limits".to_string()]
        && let Some(mem) = map.get("memory").and_then(scalar)
    {
        f.limits.insert(path[..path.len() - 2].join("."), mem);
    }
    for (k, child) in map {
        if let Some(k) = k.as_str() {
            path.push(k.to_string());
            helm_facts(child, path, f);
            path.pop();
        }
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn files(entries: &[(&str, &str)]) -> Files {
        entries
            .iter()
            .map(|(p, t)| (p.to_string(), t.as_bytes().to_vec()))
            .collect()
    }

    pub(super) const RULES: &str = "*filter\n-A DIFY-INPUT -s 10.0.0.0/28 -p tcp --dport 22 -m comment --comment \"ssh -j x\" -j ACCEPT\n-A DIFY-INPUT -j DROP\nCOMMIT\n";

    #[test]
    fn opened_and_closed_ports_are_flagged() {
        let old = files(&[("firewall/rules.v4", RULES)]);
        let new_rules = RULES.replace(
            "-A DIFY-INPUT -j DROP",
            "-A DIFY-INPUT -s 10.20.1.0/24 -p tcp --dport 8443 -j ACCEPT\n-A DIFY-INPUT -j DROP",
        );
        let new = files(&[("firewall/rules.v4", &new_rules)]);
        let s = summarize(&old, &new);
        assert_eq!(
            s.risks,
            vec![
                Risk::PortOpened {
                    what: "tcp/8443 to the host from 10.20.1.0/24 (IPv4)".into()
                },
                Risk::FirewallChanged {
                    file: "firewall/rules.v4".into(),
                    rules_added: 1,
                    rules_removed: 0
                },
            ]
        );
        assert_eq!(
            s.headline(false),
            "open tcp/8443 to the host from 10.20.1.0/24"
        );
        let back = summarize(&new, &old);
        assert!(back.risks.contains(&Risk::PortClosed {
            what: "tcp/8443 to the host from 10.20.1.0/24 (IPv4)".into()
        }));
        assert_eq!(back.headline(false), "close 1 port");
        assert_eq!(s.file_lines(), vec!["M firewall/rules.v4 (+1 -0)"]);
    }

    #[test]
    fn images_and_limits_of_compose_and_helm() {
        let compose = |img: &str, mem: &str| {
            format!(
                "services:\n  api:\n    image: \"{img}\"\n    mem_limit: \"{mem}\"\n    ports:\n      - \"10.0.0.1:80:80\"\n"
            )
        };
        let old = files(&[("compose.yaml", &compose("dify-api:1", "512m"))]);
        let new = files(&[("compose.yaml", &compose("dify-api:2", "768m"))]);
        let s = summarize(&old, &new);
        assert!(s.risks.contains(&Risk::ImageChanged {
            service: "api".into(),
            from: "dify-api:1".into(),
            to: "dify-api:2".into()
        }));
        assert!(s.risks.contains(&Risk::MemoryLimitChanged {
            service: "api".into(),
            from: "512m".into(),
            to: "768m".into()
        }));
        assert_eq!(s.headline(false), "new api image, api memory limit");
        let values = |tag: &str, mem: &str| {
            format!(
                "image:\n  api:\n    repository: r/api\n    tag: \"{tag}\"\nworker:\n  resources:\n    limits:\n      memory: {mem}\n"
            )
        };
        let old = files(&[("helm/values.yaml", &values("1", "1Gi"))]);
        let new = files(&[("helm/values.yaml", &values("2", "2Gi"))]);
        let s = summarize(&old, &new);
        assert_eq!(
            s.risks,
            vec![
                Risk::ImageChanged {
                    service: "image.api".into(),
                    from: "r/api:1".into(),
                    to: "r/api:2".into()
                },
                Risk::MemoryLimitChanged {
                    service: "worker".into(),
                    from: "1Gi".into(),
                    to: "2Gi".into()
                },
            ]
        );
    }

    #[test]
    fn unchanged_trees_have_no_changes_and_quotes_do_not_confuse_rules() {
        let a = files(&[("firewall/rules.v4", RULES), ("x", "1\n")]);
        assert!(summarize(&a, &a).is_empty());
        assert_eq!(
            opening("-A DIFY-INPUT -p tcp --dport 22 -m comment --comment \"a -j DROP\" -j ACCEPT"),
            Some("tcp/22 to the host from anywhere".into())
        );
        assert_eq!(opening("-A DIFY-INPUT -p tcp --dport 22 -j DROP"), None);
        let first = summarize(&Files::new(), &a);
        assert_eq!(first.headline(true), "first render (2 files)");
        assert_eq!(first.files[1].kind, ChangeKind::Added);
    }
}

//! What changed between two renders of a site, said for a reviewer: the
//! files with their line counts, and the risk flags (ports opened or
//! closed, images changed, memory limits changed, firewall rules changed).
//! Read from the rendered files, the way the tools read them, so an old
//! tree from a branch needs no model of its own.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;
use serde_yaml_ng::Value;

use crate::emit::SiteTree;
use crate::plan::{HELM_VALUES_FILE, RULES_V4_FILE, RULES_V6_FILE};

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
        }
    }

    /// The specifics, e.g. `tcp/80 to 10.20.1.10 from 10.20.1.0/24 (IPv4)`.
    pub fn detail(&self) -> String {
        match self {
            Risk::PortOpened { what } | Risk::PortClosed { what } => what.clone(),
            Risk::ImageChanged { service, from, to }
            | Risk::MemoryLimitChanged { service, from, to } => {
                format!("{service}: {from} -> {to}")
            }
            Risk::FirewallChanged {
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
        let opened: Vec<&str> = self
            .risks
            .iter()
            .filter_map(|r| match r {
                Risk::PortOpened { what } => Some(what.as_str()),
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
    summary_of(old, new, None)
}

/// What changed from an old tree's files to a tree just rendered (whose
/// `compose.yaml` is read back already).
pub fn summarize_tree(old: &Files, new: &SiteTree) -> Summary {
    summary_of(old, &new.files, new.compose.as_ref())
}

fn summary_of(old: &Files, new: &Files, new_compose: Option<&Value>) -> Summary {
    Summary {
        files: file_changes(old, new),
        risks: risks(&facts(old, None), &facts(new, new_compose)),
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
    /// Firewall file to its rules (`-A` lines).
    rules: BTreeMap<String, BTreeSet<String>>,
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
    let empty = BTreeSet::new();
    for file in files {
        let (a, b) = (
            old.rules.get(file).unwrap_or(&empty),
            new.rules.get(file).unwrap_or(&empty),
        );
        if a != b {
            out.push(Risk::FirewallChanged {
                file: file.clone(),
                rules_added: b.difference(a).count(),
                rules_removed: a.difference(b).count(),
            });
        }
    }
    out.sort();
    out
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
    }
    for (file, family) in [(RULES_V4_FILE, "IPv4"), (RULES_V6_FILE, "IPv6")] {
        if let Some(rules) = text(file) {
            let lines: BTreeSet<String> = rules
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

/// Describe the port a rule lets through, if it lets one through.
fn opening(line: &str) -> Option<String> {
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
    if let Some(port) = after("--ctorigdstport") {
        let to = after("--ctorigdst").unwrap_or("the box");
        return Some(format!("{proto}/{port} to {to} from {from}"));
    }
    let port = after("--dport")?;
    if chain.contains("INPUT") {
        Some(format!("{proto}/{port} to the host from {from}"))
    } else if w.iter().any(|x| x == "-i") && !w.iter().any(|x| x == "-o") {
        let to = after("-d").unwrap_or("anywhere");
        Some(format!("{proto}/{port} out to {to}"))
    } else {
        Some(format!(
            "{proto}/{port} to {} from {from}",
            after("-d").unwrap_or("containers")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(entries: &[(&str, &str)]) -> Files {
        entries
            .iter()
            .map(|(p, t)| (p.to_string(), t.as_bytes().to_vec()))
            .collect()
    }

    const RULES: &str = "*filter\n-A DIFY-INPUT -s 10.0.0.0/28 -p tcp --dport 22 -m comment --comment \"ssh -j x\" -j ACCEPT\n-A DIFY-INPUT -j DROP\nCOMMIT\n";

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

//! The Upgrade section of a site's change: when the Dify release of the
//! site's tree changes, what the release facts (`dify::release`) and the
//! two rendered trees say changes with it. The old release is read from
//! the old tree's `manifest.json`, as everything else of an old tree is,
//! so a tree from a branch needs no model of its own.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_yaml_ng::Value;

use super::Files;
use crate::dify::release::{Direction, Rename, release_change};
use crate::model::Site;
use crate::plan::{DOTENV_FILE, HELM_VALUES_FILE, Telemetry, telemetry};

/// Everything a release change brings to one site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Upgrade {
    pub from: String,
    pub to: String,
    pub direction: Direction,
    /// Releases (of the two) dify-cfg carries no facts about.
    pub unknown: Vec<String>,
    /// Each service whose image changes, with the old and new reference.
    pub images: Vec<ImageChange>,
    /// Services of this site's rendered trees that appear or go.
    pub services_added: Vec<String>,
    pub services_removed: Vec<String>,
    /// Services Dify's own compose file adds or drops between the releases.
    pub release_services: Vec<ReleaseService>,
    /// Setting names the new release reads and the old did not, the other
    /// way round, and renamed.
    pub settings_added: Vec<String>,
    pub settings_removed: Vec<String>,
    pub settings_renamed: Vec<Rename>,
    /// The settings this site's files set whose value changes.
    pub site_settings: Vec<SiteSetting>,
    /// Database migrations the new release runs (an upgrade), or those
    /// of the old release the new one lacks (a downgrade).
    pub migrations: Vec<String>,
    /// The new release's community telemetry, when it sends any.
    pub telemetry: Option<Telemetry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageChange {
    pub service: String,
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ReleaseService {
    pub name: String,
    /// `true`: the new release adds it; `false`: it drops it.
    pub added: bool,
    /// Whether this site's new tree runs it.
    pub runs_here: bool,
    /// What the release facts say about it, when they say something.
    pub note: Option<String>,
}

/// One setting of the site's files whose value changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct SiteSetting {
    pub name: String,
    /// Where it is written: `dify.env`, `compose.yaml: web`, ...
    pub places: Vec<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// Who set the new value (none for a setting that goes).
    pub origin: Option<Origin>,
    /// Whether the new release is the first of the two to read the name.
    pub new_in_release: bool,
}

/// Who set a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// `[env]` of the site's file or a profile of its chain.
    Env,
    /// `[secrets]`: a reference, never the value.
    Secrets,
    /// dify-cfg, from the site's typed keys or its defaults.
    DifyCfg,
}

impl Origin {
    pub fn text(self) -> &'static str {
        match self {
            Origin::Env => "the site's [env], in its file or profile chain",
            Origin::Secrets => "the site's [secrets], a reference",
            Origin::DifyCfg => "dify-cfg default",
        }
    }
}

/// The Dify release a site tree's `manifest.json` records (`dify-version`).
pub fn recorded_release(files: &Files) -> Option<String> {
    let manifest: serde_json::Value = serde_json::from_slice(files.get("manifest.json")?).ok()?;
    Some(manifest.get("dify-version")?.as_str()?.to_string())
}

/// The Upgrade section, when the two trees' releases differ (both known
/// from their manifests). `images`: the image changes found already;
/// `new_compose`: the new tree's compose file, when read back already.
pub(super) fn upgrade(
    old: &Files,
    new: &Files,
    new_compose: Option<&Value>,
    images: Vec<ImageChange>,
    site: Option<&Site>,
) -> Option<Box<Upgrade>> {
    let (from, to) = (recorded_release(old)?, recorded_release(new)?);
    if from == to {
        return None;
    }
    let facts = release_change(&from, &to);
    let old_doc = compose_of(old);
    let new_doc = match new_compose {
        Some(doc) => Some(doc.clone()),
        None => compose_of(new),
    };
    let (old_services, new_services) = (
        services(old, old_doc.as_ref()),
        services(new, new_doc.as_ref()),
    );
    let release_services = facts
        .services_added
        .iter()
        .map(|n| (n, true))
        .chain(facts.services_removed.iter().map(|n| (n, false)))
        .map(|(name, added)| ReleaseService {
            name: name.clone(),
            added,
            runs_here: new_services.contains(name),
            note: service_note(name, added),
        })
        .collect();
    let site_settings = site_settings(
        &settings(old, old_doc.as_ref()),
        &settings(new, new_doc.as_ref()),
        &facts.settings_added,
        site,
    );
    let migrations = match facts.direction {
        Direction::Upgrade => facts.migrations_added,
        Direction::Downgrade => facts.migrations_removed,
    };
    Some(Box::new(Upgrade {
        services_added: new_services.difference(&old_services).cloned().collect(),
        services_removed: old_services.difference(&new_services).cloned().collect(),
        from,
        to,
        direction: facts.direction,
        unknown: facts.unknown,
        images,
        release_services,
        settings_added: facts.settings_added,
        settings_removed: facts.settings_removed,
        settings_renamed: facts.settings_renamed,
        site_settings,
        migrations,
        telemetry: site.and_then(telemetry),
    }))
}

/// What dify-cfg knows of a service Dify's compose file adds or drops.
fn service_note(name: &str, added: bool) -> Option<String> {
    (name == "agent_ssrf_proxy" && added).then(|| {
        "a second SSRF proxy for the agent's local sandbox; dify-cfg does not generate it yet, so a compose site of this release that enables agent-backend or local-sandbox is refused (agent-ssrf-proxy)".to_string()
    })
}

fn compose_of(files: &Files) -> Option<Value> {
    crate::verify::crosscheck::read_compose(files).ok()
}

/// The services a tree runs: compose services, or the Helm chart's
/// enabled components.
fn services(files: &Files, compose: Option<&Value>) -> BTreeSet<String> {
    let keys = |v: &Value, enabled_only: bool| -> BTreeSet<String> {
        v.as_mapping()
            .into_iter()
            .flatten()
            .filter(|(_, c)| {
                !enabled_only || c.get("enabled").and_then(Value::as_bool) == Some(true)
            })
            .filter_map(|(k, _)| k.as_str().map(str::to_string))
            .collect()
    };
    let mut out = compose
        .and_then(|d| d.get("services"))
        .map(|s| keys(s, false))
        .unwrap_or_default();
    if let Some(values) = helm_values(files) {
        out.extend(keys(&values, true));
    }
    out
}

fn helm_values(files: &Files) -> Option<Value> {
    serde_yaml_ng::from_slice(files.get(HELM_VALUES_FILE)?).ok()
}

/// Setting name to place to value, from `dify.env`, each compose
/// service's `environment`, each Helm component's `extraEnv`.
type Settings = BTreeMap<String, BTreeMap<String, String>>;

fn settings(files: &Files, compose: Option<&Value>) -> Settings {
    let mut out = Settings::new();
    let mut put = |name: &str, place: String, value: String| {
        out.entry(name.to_string())
            .or_default()
            .insert(place, value);
    };
    if let Some(text) = files.get(DOTENV_FILE) {
        for line in String::from_utf8_lossy(text).lines() {
            if let Some((k, v)) = line.split_once('=')
                && !k.starts_with('#')
            {
                let v = v
                    .strip_prefix('\'')
                    .and_then(|s| s.strip_suffix('\''))
                    .unwrap_or(v);
                put(k.trim(), DOTENV_FILE.to_string(), v.to_string());
            }
        }
    }
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    let services = compose
        .and_then(|d| d.get("services"))
        .and_then(Value::as_mapping);
    for (svc, body) in services.into_iter().flatten() {
        let env = body.get("environment").and_then(Value::as_mapping);
        for (k, v) in env.into_iter().flatten() {
            if let (Some(k), Some(v)) = (k.as_str(), scalar(v)) {
                put(
                    k,
                    format!("compose.yaml: {}", svc.as_str().unwrap_or_default()),
                    v,
                );
            }
        }
    }
    let values = helm_values(files);
    let components = values.as_ref().and_then(Value::as_mapping);
    for (component, body) in components.into_iter().flatten() {
        let env = body.get("extraEnv").and_then(Value::as_sequence);
        for e in env.into_iter().flatten() {
            let Some(name) = e.get("name").and_then(Value::as_str) else {
                continue;
            };
            let value = match e.get("value").and_then(scalar) {
                Some(v) => v,
                None => "(from a secret)".to_string(),
            };
            let place = format!(
                "{HELM_VALUES_FILE}: {}",
                component.as_str().unwrap_or_default()
            );
            put(name, place, value);
        }
    }
    out
}

/// The settings whose value changes, each with every place it changes in
/// alike, in name order.
fn site_settings(
    old: &Settings,
    new: &Settings,
    added_by_release: &[String],
    site: Option<&Site>,
) -> Vec<SiteSetting> {
    let empty = BTreeMap::new();
    let names: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    let mut out = Vec::new();
    for name in names {
        let (a, b) = (
            old.get(name).unwrap_or(&empty),
            new.get(name).unwrap_or(&empty),
        );
        let mut by: BTreeMap<(Option<&String>, Option<&String>), Vec<String>> = BTreeMap::new();
        for place in super::differing_keys(a, b) {
            by.entry((a.get(place), b.get(place)))
                .or_default()
                .push(place.clone());
        }
        for ((from, to), places) in by {
            let origin = to.and(site).map(|s| match () {
                _ if s.env.contains_key(name) => Origin::Env,
                _ if s.secrets.contains_key(name) => Origin::Secrets,
                _ => Origin::DifyCfg,
            });
            out.push(SiteSetting {
                name: name.clone(),
                places,
                from: from.cloned(),
                to: to.cloned(),
                origin,
                new_in_release: added_by_release.contains(name),
            });
        }
    }
    out
}

impl Upgrade {
    /// The risk flag's detail: how many migrations, and that they cannot
    /// be undone without a backup.
    pub fn migration_risk(&self) -> Option<String> {
        let n = self.migrations.len();
        let what = match self.direction {
            Direction::Upgrade => format!("{n} database migration{}", super::plural(n)),
            Direction::Downgrade => format!(
                "{n} database migration{} of Dify {} that {} lacks",
                super::plural(n),
                self.from,
                self.to
            ),
        };
        match (n, self.unknown.is_empty()) {
            (0, true) => None,
            (_, true) => Some(format!(
                "{what}; not reversible without a backup (Dify {} -> {})",
                self.from, self.to
            )),
            (_, false) => Some(format!(
                "database migrations unknown (no facts about Dify {}); not reversible without a backup (Dify {} -> {})",
                self.unknown.join(", "),
                self.from,
                self.to
            )),
        }
    }

    /// `Dify 1.16.0 -> 1.16.1 (upgrade)`.
    pub fn title(&self) -> String {
        format!(
            "Dify {} -> {} ({})",
            self.from,
            self.to,
            self.direction.word()
        )
    }

    /// The section for people, as `(depth, text)` lines: the commit
    /// message and `diff` indent them, the pull request makes a list.
    pub fn lines(&self) -> Vec<(usize, String)> {
        let mut l: Vec<(usize, String)> = Vec::new();
        if !self.unknown.is_empty() {
            l.push((
                0,
                format!(
                    "release facts: none for Dify {}: the lists below leave it out",
                    self.unknown.join(", ")
                ),
            ));
        }
        l.push((
            0,
            format!("images changed: {}", count_or_none(self.images.len())),
        ));
        for i in &self.images {
            l.push((1, format!("{}: {} -> {}", i.service, i.from, i.to)));
        }
        l.push((
            0,
            format!(
                "services of this site: {}",
                added_removed(&self.services_added, &self.services_removed)
            ),
        ));
        let added = self.release_services.iter().filter(|s| s.added).count();
        l.push((
            0,
            format!(
                "services of Dify's compose file: {}",
                match (added, self.release_services.len() - added) {
                    (0, 0) => "none added or removed".to_string(),
                    (a, r) => format!("{a} added, {r} removed"),
                }
            ),
        ));
        for s in &self.release_services {
            let mut t = format!(
                "{} {} ({} here)",
                s.name,
                if s.added { "added" } else { "removed" },
                if s.runs_here { "runs" } else { "not run" },
            );
            if let Some(n) = &s.note {
                t.push_str(&format!(": {n}"));
            }
            l.push((1, t));
        }
        l.push((
            0,
            format!(
                "settings Dify {} reads: {} added, {} removed, {} renamed",
                self.to,
                self.settings_added.len(),
                self.settings_removed.len(),
                self.settings_renamed.len()
            ),
        ));
        for (what, names) in [
            ("added", &self.settings_added),
            ("removed", &self.settings_removed),
        ] {
            if !names.is_empty() {
                l.push((1, format!("{what}: {}", names.join(", "))));
            }
        }
        for r in &self.settings_renamed {
            l.push((1, format!("renamed: {} -> {}", r.from, r.to)));
        }
        l.push((
            0,
            format!(
                "settings this site sets that change: {}",
                count_or_none(self.site_settings.len())
            ),
        ));
        for s in &self.site_settings {
            l.push((1, s.line()));
        }
        let n = self.migrations.len();
        let migrations = match (self.direction, n, self.unknown.is_empty()) {
            (_, _, false) => "unknown, not reversible without a backup".to_string(),
            (_, 0, true) => "none".to_string(),
            (Direction::Upgrade, n, true) => {
                format!("{n} to run, not reversible without a backup")
            }
            (Direction::Downgrade, n, true) => format!(
                "{n} of Dify {} that {} lacks stay in the database, not reversible without a backup",
                self.from, self.to
            ),
        };
        l.push((0, format!("database migrations: {migrations}")));
        for m in &self.migrations {
            l.push((1, m.clone()));
        }
        if let Some(t) = &self.telemetry {
            l.push((
                0,
                format!("telemetry: {}; {}", if t.on { "on" } else { "off" }, t.why),
            ));
        }
        l
    }
}

impl SiteSetting {
    /// `+ NAME = 'v' (dify.env; dify-cfg default)`, `- NAME (was 'v')`,
    /// `~ NAME: 'a' -> 'b' (...)`.
    pub fn line(&self) -> String {
        let q = |v: &str| format!("'{v}'");
        let mut t = match (&self.from, &self.to) {
            (None, Some(to)) => format!("+ {} = {}", self.name, q(to)),
            (Some(from), None) => format!("- {} (was {})", self.name, q(from)),
            (Some(from), Some(to)) => format!("~ {}: {} -> {}", self.name, q(from), q(to)),
            (None, None) => format!("  {}", self.name),
        };
        // `compose.yaml: api, worker` for `compose.yaml: api` and
        // `compose.yaml: worker`.
        let mut files: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for p in &self.places {
            let (file, part) = p.split_once(": ").unwrap_or((p, ""));
            files
                .entry(file)
                .or_default()
                .extend((!part.is_empty()).then_some(part));
        }
        let places: Vec<String> = files
            .iter()
            .map(|(f, parts)| match parts.as_slice() {
                [] => f.to_string(),
                parts => format!("{f}: {}", parts.join(", ")),
            })
            .collect();
        let mut about = vec![places.join(" + ")];
        if let Some(o) = self.origin {
            about.push(o.text().to_string());
        }
        if self.new_in_release {
            about.push("new in this release".to_string());
        }
        t.push_str(&format!(" ({})", about.join("; ")));
        t
    }
}

fn count_or_none(n: usize) -> String {
    match n {
        0 => "none".to_string(),
        n => n.to_string(),
    }
}

fn added_removed(added: &[String], removed: &[String]) -> String {
    match (added, removed) {
        ([], []) => "none added or removed".to_string(),
        _ => {
            let list = |v: &[String]| match v {
                [] => "none".to_string(),
                v => v.join(", "),
            };
            format!("added {}; removed {}", list(added), list(removed))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(release: &str, env: &str, compose: &str) -> Files {
        let mut f = Files::new();
        f.insert(
            "manifest.json".into(),
            format!(
                "{{\n  \"site\": \"x\",\n  \"dify-version\": \"{release}\",\n  \"wave\": 1\n}}\n"
            )
            .into_bytes(),
        );
        f.insert(DOTENV_FILE.into(), env.as_bytes().to_vec());
        f.insert("compose.yaml".into(), compose.as_bytes().to_vec());
        f
    }

    const OLD_COMPOSE: &str = "services:\n  api:\n    image: \"a:1\"\n    environment:\n      \"MODE\": \"api\"\n  web:\n    image: \"w:1\"\n";
    const NEW_COMPOSE: &str = "services:\n  api:\n    image: \"a:2\"\n    environment:\n      \"MODE\": \"api\"\n      \"AGENT_BACKEND_API_TOKEN\": \"${T:?T must be set}\"\n  web:\n    image: \"w:1\"\n    environment:\n      \"CONSOLE_WEB_URL\": \"http://x\"\n";

    #[test]
    fn the_same_release_has_no_section() {
        let a = tree("1.16.0", "A='1'\n", OLD_COMPOSE);
        assert_eq!(recorded_release(&a).as_deref(), Some("1.16.0"));
        assert!(upgrade(&a, &a, None, Vec::new(), None).is_none());
        assert!(upgrade(&Files::new(), &a, None, Vec::new(), None).is_none());
    }

    #[test]
    fn an_upgrade_says_what_changes() {
        let old = tree("1.16.0", "# x\nLOG_LEVEL='INFO'\nGONE='1'\n", OLD_COMPOSE);
        let new = tree(
            "1.16.1",
            "LOG_LEVEL='DEBUG'\nDISABLE_TELEMETRY='true'\n",
            NEW_COMPOSE,
        );
        let u = upgrade(&old, &new, None, Vec::new(), None).unwrap();
        assert_eq!(u.direction, Direction::Upgrade);
        assert_eq!(u.migrations.len(), 4);
        assert_eq!(u.release_services[0].name, "agent_ssrf_proxy");
        assert!(!u.release_services[0].runs_here);
        let names: Vec<&str> = u.site_settings.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "AGENT_BACKEND_API_TOKEN",
                "CONSOLE_WEB_URL",
                "DISABLE_TELEMETRY",
                "GONE",
                "LOG_LEVEL"
            ]
        );
        let token = &u.site_settings[0];
        assert!(token.new_in_release && token.places == ["compose.yaml: api"]);
        assert_eq!(
            u.site_settings[4].line(),
            "~ LOG_LEVEL: 'INFO' -> 'DEBUG' (dify.env)"
        );
        assert_eq!(u.site_settings[3].line(), "- GONE (was '1') (dify.env)");
        assert_eq!(
            u.migration_risk().unwrap(),
            "4 database migrations; not reversible without a backup (Dify 1.16.0 -> 1.16.1)"
        );
        let back = upgrade(&new, &old, None, Vec::new(), None).unwrap();
        assert_eq!(back.direction, Direction::Downgrade);
        assert_eq!(back.title(), "Dify 1.16.1 -> 1.16.0 (downgrade)");
        assert!(
            back.migration_risk()
                .unwrap()
                .starts_with("4 database migrations of Dify 1.16.1 that 1.16.0 lacks")
        );
        assert_eq!(back.release_services[0].note, None);
    }

    #[test]
    fn an_unknown_release_is_said_and_still_flagged() {
        let old = tree("1.15.0", "", OLD_COMPOSE);
        let new = tree("1.16.1", "", NEW_COMPOSE);
        let u = upgrade(&old, &new, None, Vec::new(), None).unwrap();
        assert_eq!(u.unknown, ["1.15.0"]);
        assert!(
            u.migration_risk()
                .unwrap()
                .starts_with("database migrations unknown")
        );
        assert!(u.lines()[0].1.contains("none for Dify 1.15.0"));
    }
}

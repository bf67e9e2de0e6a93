//! What changes between two Dify releases, as data: the services Dify's
//! own compose file defines (`compose-services/<release>.txt`), the
//! database migrations each release carries (`migrations/<release>.txt`),
//! the settings it reads (`env-names/<release>.txt`, in `mod.rs`) and the
//! settings renamed between two releases (`renames.txt`); plus where the
//! community telemetry of a release goes by default. Names only:
//! `tests/it/reference.rs` holds every list to the release's own files.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::sync::OnceLock;

use serde::Serialize;

use super::compat::release_order;
use super::{SUPPORTED_RELEASES, parse_names, release_env_names};

/// The files under `api/migrations/versions/` of each release's tree.
const MIGRATIONS: &[(&str, &str)] = &[
    ("1.16.0", include_str!("migrations/1.16.0.txt")),
    ("1.16.1", include_str!("migrations/1.16.1.txt")),
];

/// The services of each release's `docker/docker-compose.yaml`.
const COMPOSE_SERVICES: &[(&str, &str)] = &[
    ("1.16.0", include_str!("compose-services/1.16.0.txt")),
    ("1.16.1", include_str!("compose-services/1.16.1.txt")),
];

/// `<from> <to> <old name> <new name>` lines (see the file's header).
const RENAMES: &str = include_str!("renames.txt");

/// Where a release's api sends community telemetry unless told not to
/// (`TELEMETRY_ENDPOINT` and `TELEMETRY_FALLBACK_ENDPOINT`'s defaults in
/// its settings classes), for the releases that send it at all (those
/// that read `DISABLE_TELEMETRY`).
pub const TELEMETRY_ENDPOINTS: &[(&str, &str)] = &[
    ("TELEMETRY_ENDPOINT", "https://otel.dify.ai/v1/events"),
    (
        "TELEMETRY_FALLBACK_ENDPOINT",
        "https://otel.dify.cn/v1/events",
    ),
];

/// Whether the release's api sends community telemetry unless told not to.
/// (Its settings read the opt-out, `DISABLE_TELEMETRY`.)
pub fn sends_telemetry(release: &str) -> bool {
    release_env_names(release).contains("DISABLE_TELEMETRY")
}

type Lists = Vec<(&'static str, BTreeSet<&'static str>)>;

fn find(lists: &'static Lists, release: &str) -> Option<&'static BTreeSet<&'static str>> {
    lists.iter().find(|(r, _)| *r == release).map(|(_, l)| l)
}

fn parse_all(table: &[(&'static str, &'static str)]) -> Lists {
    table.iter().map(|(r, t)| (*r, parse_names(t))).collect()
}

/// The migration files of `release`; `None` for a release dify-cfg
/// carries no facts about.
pub fn migrations(release: &str) -> Option<&'static BTreeSet<&'static str>> {
    static ALL: OnceLock<Lists> = OnceLock::new();
    find(ALL.get_or_init(|| parse_all(MIGRATIONS)), release)
}

/// The services of `release`'s own compose file; `None` for a release
/// dify-cfg carries no facts about.
pub fn compose_services(release: &str) -> Option<&'static BTreeSet<&'static str>> {
    static ALL: OnceLock<Lists> = OnceLock::new();
    find(ALL.get_or_init(|| parse_all(COMPOSE_SERVICES)), release)
}

/// A setting read under a new name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Rename {
    pub from: String,
    pub to: String,
}

/// Every line of `renames.txt`: from release, to release, old, new.
fn rename_table() -> Vec<[&'static str; 4]> {
    parse_names(RENAMES)
        .into_iter()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            <[&str; 4]>::try_from(w).ok()
        })
        .collect()
}

/// The settings renamed going from `from` to `to` (either way round: a
/// downgrade reads the old names again).
pub fn renames(from: &str, to: &str) -> Vec<Rename> {
    let mut out: Vec<Rename> = rename_table()
        .into_iter()
        .filter_map(|[a, b, old, new]| match (a, b) {
            _ if a == from && b == to => Some((old, new)),
            _ if a == to && b == from => Some((new, old)),
            _ => None,
        })
        .map(|(f, t)| Rename {
            from: f.to_string(),
            to: t.to_string(),
        })
        .collect();
    out.sort();
    out
}

/// Which way a site's release moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    Upgrade,
    Downgrade,
}

impl Direction {
    pub fn word(self) -> &'static str {
        match self {
            Direction::Upgrade => "upgrade",
            Direction::Downgrade => "downgrade",
        }
    }
}

/// What the release facts say changes from one release to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ReleaseChange {
    pub from: String,
    pub to: String,
    pub direction: Direction,
    /// Releases (of the two) dify-cfg carries no facts about: what they
    /// change is not known, and the lists below leave them out.
    pub unknown: Vec<String>,
    /// Services Dify's own compose file adds and drops.
    pub services_added: Vec<String>,
    pub services_removed: Vec<String>,
    /// Setting names `to` reads and `from` did not, and the other way.
    pub settings_added: Vec<String>,
    pub settings_removed: Vec<String>,
    pub settings_renamed: Vec<Rename>,
    /// Migration files `to` has and `from` lacks (what an upgrade runs),
    /// and those `from` has and `to` lacks (what a downgrade leaves in
    /// the database).
    pub migrations_added: Vec<String>,
    pub migrations_removed: Vec<String>,
}

fn added_removed(
    a: Option<&BTreeSet<&str>>,
    b: Option<&BTreeSet<&str>>,
) -> (Vec<String>, Vec<String>) {
    match (a, b) {
        (Some(a), Some(b)) => (
            b.difference(a).map(|s| s.to_string()).collect(),
            a.difference(b).map(|s| s.to_string()).collect(),
        ),
        _ => (Vec::new(), Vec::new()),
    }
}

/// What changes from release `from` to release `to` (which differ).
pub fn release_change(from: &str, to: &str) -> ReleaseChange {
    let known = |r: &str| SUPPORTED_RELEASES.contains(&r);
    let unknown = [from, to]
        .into_iter()
        .filter(|r| !known(r))
        .map(str::to_string)
        .collect();
    let env = |r: &str| known(r).then(|| release_env_names(r));
    let settings_renamed = renames(from, to);
    let (mut settings_added, mut settings_removed) = added_removed(env(from), env(to));
    settings_added.retain(|n| !settings_renamed.iter().any(|r| &r.to == n));
    settings_removed.retain(|n| !settings_renamed.iter().any(|r| &r.from == n));
    let (services_added, services_removed) =
        added_removed(compose_services(from), compose_services(to));
    let (migrations_added, migrations_removed) = added_removed(migrations(from), migrations(to));
    ReleaseChange {
        from: from.to_string(),
        to: to.to_string(),
        direction: match release_order(to, from) {
            Ordering::Less => Direction::Downgrade,
            _ => Direction::Upgrade,
        },
        unknown,
        services_added,
        services_removed,
        settings_added,
        settings_removed,
        settings_renamed,
        migrations_added,
        migrations_removed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_release_has_its_facts() {
        for r in SUPPORTED_RELEASES {
            assert!(migrations(r).is_some_and(|m| m.len() > 100), "{r}");
            assert!(
                compose_services(r).is_some_and(|s| s.contains("api")),
                "{r}"
            );
        }
        assert_eq!(MIGRATIONS.len(), SUPPORTED_RELEASES.len());
        assert_eq!(COMPOSE_SERVICES.len(), SUPPORTED_RELEASES.len());
        assert!(migrations("1.15.0").is_none());
    }

    #[test]
    fn from_1_16_0_to_1_16_1() {
        let c = release_change("1.16.0", "1.16.1");
        assert_eq!(c.direction, Direction::Upgrade);
        assert_eq!(c.services_added, vec!["agent_ssrf_proxy"]);
        assert!(c.services_removed.is_empty());
        assert_eq!(c.migrations_added.len(), 4);
        assert!(c.migrations_removed.is_empty());
        assert!(
            c.settings_added
                .contains(&"KNOWLEDGE_FS_ENABLED".to_string())
        );
        assert!(c.settings_removed.contains(&"IS_EMAIL_SETUP".to_string()));
        assert!(c.settings_renamed.is_empty() && c.unknown.is_empty());
        let back = release_change("1.16.1", "1.16.0");
        assert_eq!(back.direction, Direction::Downgrade);
        assert_eq!(back.services_removed, c.services_added);
        assert_eq!(back.migrations_removed, c.migrations_added);
        let unknown = release_change("1.15.2", "1.16.1");
        assert_eq!(unknown.unknown, vec!["1.15.2"]);
        assert!(unknown.migrations_added.is_empty() && unknown.settings_added.is_empty());
    }

    #[test]
    fn renames_apply_both_ways() {
        assert!(renames("1.16.0", "1.16.1").is_empty());
        for [from, to, old, new] in rename_table() {
            assert!(SUPPORTED_RELEASES.contains(&from) && SUPPORTED_RELEASES.contains(&to));
            assert!(release_env_names(from).contains(old), "{old}");
            assert!(release_env_names(to).contains(new), "{new}");
        }
    }

    #[test]
    fn telemetry_follows_the_opt_out_setting() {
        assert!(!sends_telemetry("1.16.0"));
        assert!(sends_telemetry("1.16.1"));
        for (name, _) in TELEMETRY_ENDPOINTS {
            assert!(release_env_names("1.16.1").contains(name), "{name}");
        }
    }
}

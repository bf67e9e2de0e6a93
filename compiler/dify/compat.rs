//! The compatibility lock: which plugin daemon, sandbox, agent backend and
//! local sandbox each release runs with (`compat.toml`, from each release's
//! own compose file). The first combination of a release gives its default
//! images; a site's pins must make one of its combinations (validated in
//! `validate/compat.rs`).
//!
//! The file is compiled in and read on first use. A file that does not read
//! is a bug of the compiler (a unit test reads it); at run time it counts
//! as a lock without entries, never as a panic.

use std::sync::OnceLock;

use serde::Deserialize;

use crate::base::names::is_image_tag;

const LOCK: &str = include_str!("compat.toml");

/// The locked images: the key under `[images]` and the repository Dify
/// publishes it from.
pub const COMPONENTS: &[(&str, &str)] = &[
    ("plugin-daemon", "langgenius/dify-plugin-daemon"),
    ("sandbox", "langgenius/dify-sandbox"),
    ("agent-backend", "langgenius/dify-agent-backend"),
    ("local-sandbox", "langgenius/dify-agent-local-sandbox"),
];

/// One supported combination of a release.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Combination {
    pub version: String,
    pub plugin_daemon: String,
    pub sandbox: String,
    pub agent_backend: String,
    pub local_sandbox: String,
}

impl Combination {
    /// The tag of a component, by its key in [`COMPONENTS`].
    pub fn tag(&self, component: &str) -> Option<&str> {
        Some(match component {
            "plugin-daemon" => &self.plugin_daemon,
            "sandbox" => &self.sandbox,
            "agent-backend" => &self.agent_backend,
            "local-sandbox" => &self.local_sandbox,
            _ => return None,
        })
    }

    /// `plugin-daemon 0.6.3-local, sandbox 0.2.15, ...`.
    pub fn describe(&self) -> String {
        (COMPONENTS.iter())
            .map(|(key, _)| format!("{key} {}", self.tag(key).unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LockFile {
    release: Vec<Combination>,
}

/// Read the lock and check it: every tag an image tag, never `latest`.
pub fn parse(text: &str) -> Result<Vec<Combination>, String> {
    let file: LockFile = toml::from_str(text).map_err(|e| format!("compat.toml: {e}"))?;
    for c in &file.release {
        for (key, _) in COMPONENTS {
            let tag = c.tag(key).unwrap_or_default();
            if !is_image_tag(tag) || tag == "latest" {
                return Err(format!(
                    "compat.toml: Dify {}: `{key}` {tag:?} is not a pinned tag",
                    c.version
                ));
            }
        }
    }
    Ok(file.release)
}

fn lock() -> &'static [Combination] {
    static LOCKED: OnceLock<Vec<Combination>> = OnceLock::new();
    LOCKED.get_or_init(|| parse(LOCK).unwrap_or_default())
}

/// The combinations `release` runs with, its default first (none for a
/// release the lock does not know).
pub fn combinations(release: &str) -> Vec<&'static Combination> {
    lock().iter().filter(|c| c.version == release).collect()
}

/// The tag of `component` in `release`'s default combination.
pub fn default_tag(release: &str, component: &str) -> String {
    (combinations(release).first())
        .and_then(|c| c.tag(component))
        .unwrap_or_default()
        .to_string()
}

/// The repository Dify publishes `component` from.
pub fn repository(component: &str) -> &'static str {
    (COMPONENTS.iter())
        .find(|(key, _)| *key == component)
        .map(|(_, repository)| *repository)
        .unwrap_or_default()
}

/// The order of two release numbers, component by component, each
/// compared as a number (`1.16.10` after `1.16.9`), then by what follows
/// its digits (`1.17.0-rc1` before `1.17.0-rc2`; a plain `1.17.0` after
/// both); a missing component counts as 0.
pub fn release_order(a: &str, b: &str) -> std::cmp::Ordering {
    fn key(part: &str) -> (u128, bool, &str) {
        let digits = part.len() - part.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let (number, rest) = part.split_at(digits);
        // More digits than fit: as large as it gets.
        let n = number
            .parse::<u128>()
            .unwrap_or(if digits > 0 { u128::MAX } else { 0 });
        (n, rest.is_empty(), rest)
    }
    let (mut a, mut b) = (a.split('.'), b.split('.'));
    loop {
        match (a.next(), b.next()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (x, y) => {
                let order = key(x.unwrap_or("0")).cmp(&key(y.unwrap_or("0")));
                if order.is_ne() {
                    return order;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dify::SUPPORTED_RELEASES;

    #[test]
    fn every_supported_release_is_locked() {
        let all = parse(LOCK).unwrap();
        for release in SUPPORTED_RELEASES {
            assert!(!combinations(release).is_empty(), "{release}");
        }
        for c in &all {
            assert!(SUPPORTED_RELEASES.contains(&c.version.as_str()), "{c:?}");
        }
        assert_eq!(default_tag("1.16.0", "plugin-daemon"), "0.6.3-local");
        assert_eq!(default_tag("1.16.1", "agent-backend"), "1.16.1");
        assert_eq!(default_tag("0.1.0", "sandbox"), "");
        assert_eq!(
            combinations("1.16.0")[0].describe(),
            "plugin-daemon 0.6.3-local, sandbox 0.2.15, agent-backend 1.16.0, local-sandbox 1.16.0"
        );
    }

    #[test]
    fn a_broken_lock_is_refused() {
        let entry = "[[release]]\nversion = \"9.9.9\"\nplugin-daemon = \"latest\"\nsandbox = \"1\"\nagent-backend = \"1\"\nlocal-sandbox = \"1\"\n";
        assert!(
            parse(entry)
                .unwrap_err()
                .contains("`plugin-daemon` \"latest\"")
        );
        assert!(parse("[[release]]\nversion = \"9.9.9\"\n").is_err());
        assert!(parse(&entry.replace("latest", "0.1\nextra = 1")).is_err());
    }

    #[test]
    fn releases_are_ordered_by_number() {
        use std::cmp::Ordering::*;
        for (a, b, order) in [
            ("1.16.1", "1.16.0", Greater),
            ("1.16.10", "1.16.9", Greater),
            ("1.16.0", "1.16.0", Equal),
            ("1.16", "1.16.0", Equal),
            ("2.0.0", "1.99.99", Greater),
            ("1.9.0", "1.10.0", Less),
            ("1.17.0-rc1", "1.17.0", Less),
            ("1.17.0-rc1", "1.17.0-rc2", Less),
            ("1.17.0-rc1", "1.16.9", Greater),
            (
                "99999999999999999999999999999999999999999.0",
                "1.0",
                Greater,
            ),
        ] {
            assert_eq!(release_order(a, b), order, "{a} vs {b}");
            assert_eq!(release_order(b, a), order.reverse(), "{b} vs {a}");
        }
    }
}

//! The memory floors of Dify's own processes, per release, as measured
//! (`memory/<release>.toml`): what the api, the Celery worker and beat
//! need at least, and how the api grows with its gunicorn workers. A
//! release without a file has not been measured and has no floors.
//!
//! The files are compiled in and read on first use. A file that does not
//! read is a bug of the compiler (a unit test reads every one); at run time
//! it counts as not measured, never as a panic.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::base::units::{Bytes, MIB};
use crate::model::ServiceKind;

/// The measurement files, by the release each is named after.
const FILES: &[(&str, &str)] = &[
    ("1.16.0", include_str!("memory/1.16.0.toml")),
    ("1.16.1", include_str!("memory/1.16.1.toml")),
];

/// One release's measurement.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Measurement {
    pub release: String,
    /// The commit of the release's tag the processes ran from.
    pub source_commit: String,
    /// When (ISO date).
    pub measured: String,
    /// How, in one line.
    pub method: String,
    /// By service key (`api`, `worker`, `worker-beat`).
    pub services: BTreeMap<String, Floor>,
}

/// What one service's container needs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Floor {
    /// MiB, with one worker: the largest of `peaks`.
    pub base: u64,
    /// MiB each worker beyond the first adds (a process per worker).
    #[serde(default)]
    pub per_worker: Option<u64>,
    /// Peak RSS as measured, MiB, by what the process was doing.
    pub peaks: BTreeMap<String, u64>,
}

impl Floor {
    /// What the container needs with `workers` workers (at least one).
    pub fn with_workers(&self, workers: u32) -> Bytes {
        let more = u64::from(workers.max(1) - 1);
        Bytes((self.base + self.per_worker.unwrap_or(0) * more) * MIB)
    }

    /// MiB each worker beyond the first adds, where `workers` has more than
    /// one and each is a process of its own.
    pub fn per_extra_worker(&self, workers: u32) -> Option<u64> {
        self.per_worker.filter(|_| workers > 1)
    }

    /// [`Floor::with_workers`] and `headroom_percent` more, rounded up to
    /// whole MiB: the smallest limit with that headroom.
    pub fn with_headroom(&self, workers: u32, headroom_percent: u8) -> Bytes {
        let scaled =
            u128::from(self.with_workers(workers).0) * (100 + u128::from(headroom_percent));
        let mib = u128::from(MIB);
        Bytes((scaled.div_ceil(mib * 100) * mib) as u64)
    }

    /// Whether `limit` keeps `headroom_percent` above the floor for
    /// `workers` (exactly, before rounding).
    pub fn keeps_headroom(&self, limit: Bytes, workers: u32, headroom_percent: u8) -> bool {
        u128::from(limit.0) * 100
            >= u128::from(self.with_workers(workers).0) * (100 + u128::from(headroom_percent))
    }

    /// The peak `base` comes from: its name (the first, by name, of the
    /// largest).
    pub fn source_peak(&self) -> &str {
        self.peaks
            .iter()
            .filter(|(_, mib)| **mib == self.base)
            .map(|(name, _)| name.as_str())
            .next()
            .unwrap_or("")
    }
}

impl Measurement {
    /// The floor of `kind`, when it was measured.
    pub fn floor(&self, kind: ServiceKind) -> Option<&Floor> {
        self.services.get(kind.key())
    }
}

/// Read one file, named after `release`, and check it: its `release` is
/// the file's, the commit is 40 hex digits, every service is one dify-cfg
/// knows, and each `base` is the largest of its peaks.
pub fn parse(release: &str, text: &str) -> Result<Measurement, String> {
    let m: Measurement = toml::from_str(text).map_err(|e| format!("memory/{release}.toml: {e}"))?;
    let bad = |why: String| Err(format!("memory/{release}.toml: {why}"));
    if m.release != release {
        return bad(format!("`release` is {:?}", m.release));
    }
    if m.source_commit.len() != 40 || !m.source_commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        return bad(format!(
            "`source-commit` {:?} is not a commit id",
            m.source_commit
        ));
    }
    for (key, floor) in &m.services {
        if ServiceKind::from_key(key).is_none() {
            return bad(format!("`services.{key}` is not a service"));
        }
        let largest = floor.peaks.values().copied().max();
        if largest != Some(floor.base) {
            return bad(format!(
                "`services.{key}.base` ({}) is not the largest of its peaks ({largest:?})",
                floor.base
            ));
        }
    }
    Ok(m)
}

/// The measurement of `release`; `None` where it was not measured.
pub fn measurement(release: &str) -> Option<&'static Measurement> {
    static ALL: OnceLock<Vec<Measurement>> = OnceLock::new();
    ALL.get_or_init(|| {
        FILES
            .iter()
            .filter_map(|(release, text)| parse(release, text).ok())
            .collect()
    })
    .iter()
    .find(|m| m.release == release)
}

/// Whether any release's measurement covers `kind` (for saying that a
/// release without one was not measured).
pub fn is_measured_kind(kind: ServiceKind) -> bool {
    FILES
        .iter()
        .filter_map(|(release, _)| measurement(release))
        .any(|m| m.floor(kind).is_some())
}

/// The measurement files' texts by release (for the tests that hold them
/// to the reference).
pub fn files() -> &'static [(&'static str, &'static str)] {
    FILES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_reads_and_names_a_supported_release() {
        for (release, text) in FILES {
            let m = parse(release, text).unwrap();
            assert!(
                super::super::SUPPORTED_RELEASES.contains(release),
                "{release}"
            );
            assert_eq!(measurement(release), Some(&m));
            assert!(!m.method.is_empty() && !m.measured.is_empty());
        }
    }

    /// A measurement with fixed numbers, for the arithmetic (the data file
    /// changes whenever the processes are measured again).
    const FIXTURE: &str = r#"
release = "1.16.0"
source-commit = "5c6372d2f76d240265b92fd27c16bc772ffcb107"
measured = "2026-12-01"
method = "a fixture"

[services.api]
base = 498
per-worker = 452

[services.api.peaks]
start = 498
migrations = 447

[services.worker]
base = 475

[services.worker.peaks]
start = 460
after-one-task = 475

[services.worker-beat]
base = 447

[services.worker-beat.peaks]
start = 447
"#;

    #[test]
    fn the_measured_floors_of_each_release() {
        // The data: every service dify-cfg measures, each base its largest
        // peak (parse refuses anything else), for every supported release.
        for release in crate::dify::SUPPORTED_RELEASES {
            let data = measurement(release).unwrap();
            for kind in [
                ServiceKind::Api,
                ServiceKind::Worker,
                ServiceKind::WorkerBeat,
            ] {
                assert!(data.floor(kind).is_some(), "{release} {kind:?}");
            }
            assert!(data.floor(ServiceKind::Web).is_none());
        }
        assert!(measurement("0.0.0").is_none());
        // The arithmetic, on fixed numbers.
        let m = parse("1.16.0", FIXTURE).unwrap();
        let api = m.floor(ServiceKind::Api).unwrap();
        assert_eq!(api.with_workers(1), Bytes::mib(498));
        assert_eq!(api.with_workers(2), Bytes::mib(950));
        assert_eq!(api.with_workers(4), Bytes::mib(498 + 3 * 452));
        assert_eq!(api.source_peak(), "start");
        // More Celery workers are greenlets of one process: no more memory.
        let worker = m.floor(ServiceKind::Worker).unwrap();
        assert_eq!(worker.with_workers(1), Bytes::mib(475));
        assert_eq!(worker.with_workers(8), Bytes::mib(475));
        assert_eq!(worker.source_peak(), "after-one-task");
        let beat = m.floor(ServiceKind::WorkerBeat).unwrap();
        assert_eq!(beat.with_workers(1), Bytes::mib(447));
        // With the headroom, rounded up to whole MiB: 447 * 1.1 = 491.7.
        assert_eq!(beat.with_headroom(1, 10), Bytes::mib(492));
        assert!(beat.keeps_headroom(Bytes::mib(492), 1, 10));
        assert!(!beat.keeps_headroom(Bytes::mib(491), 1, 10));
        assert_eq!(beat.with_headroom(1, 0), Bytes::mib(447));
        assert!(beat.keeps_headroom(Bytes::mib(447), 1, 0));
        // 498 * 1.1 = 547.8; 1402 * 1.1 = 1542.2.
        assert_eq!(api.with_headroom(1, 10), Bytes::mib(548));
        assert_eq!(api.with_headroom(3, 10), Bytes::mib(1543));
        // Zero workers cannot be set, but count as one.
        assert_eq!(api.with_workers(0), Bytes::mib(498));
    }

    #[test]
    fn a_broken_file_is_refused_not_a_panic() {
        let good = FIXTURE;
        assert!(parse("1.16.0", good).is_ok());
        assert!(parse("1.16.0", FILES[0].1).is_ok());
        // Named after another release.
        assert!(parse("1.16.1", good).unwrap_err().contains("`release`"));
        // A base that is not the largest peak.
        let low = good.replace("base = 447", "base = 400");
        assert!(parse("1.16.0", &low).unwrap_err().contains("largest"));
        // A service dify-cfg does not know, a short commit, bad TOML.
        let unknown = good.replace("[services.worker-beat]", "[services.beat]");
        assert!(parse("1.16.0", &unknown).is_err());
        let short = good.replace("5c6372d2f76d240265b92fd27c16bc772ffcb107", "5c6372d2");
        assert!(parse("1.16.0", &short).unwrap_err().contains("commit"));
        assert!(parse("1.16.0", "release = ").is_err());
        assert!(parse("1.16.0", &good.replace("base = 498", "bse = 498")).is_err());
    }
}

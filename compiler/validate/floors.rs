//! The measured memory floors: a service of Dify's own (api, worker, beat)
//! whose memory limit is below what the site's release was measured to
//! need would be killed for memory as it starts (`memory-floor`); one
//! within `device.headroom` above it has no room for work (`memory-headroom`,
//! a warning). Releases that were not measured are not checked.

use std::collections::BTreeMap;

use super::context::Cx;
use super::services::MemorySpans;
use crate::base::codes::Code;
use crate::base::diagnostic::Diagnostic;
use crate::base::units::Bytes;
use crate::dify::memory::{Floor, Measurement, measurement};
use crate::model::*;

/// Every running service with a measured floor against its limit.
pub(super) fn floors(
    cx: &mut Cx<'_>,
    release: &str,
    services: &BTreeMap<ServiceKind, Service>,
    spans: &MemorySpans,
    headroom_percent: u8,
) {
    let Some(m) = measurement(release) else {
        return;
    };
    for s in services.values() {
        let Some(floor) = m.floor(s.kind) else {
            continue;
        };
        let workers = s.workers.unwrap_or(1);
        let need = floor.with_workers(workers);
        let with_headroom = floor.with_headroom(workers, headroom_percent);
        let span = spans.get(&s.kind).cloned().flatten();
        let key = format!("services.{}.memory", s.kind.key());
        let what = measured_what(m, s.kind, floor, workers);
        if s.memory < need {
            cx.err(
                Diagnostic::error(
                    Code::MemoryFloor,
                    format!(
                        "`{key}` ({}) is below the {} {what}",
                        s.memory.human(),
                        need.human()
                    ),
                )
                .at_opt(span)
                .label("below the measured floor: the container would run out of memory")
                .note(how_measured(m, floor, workers))
                .help(format!(
                    "raise it to at least {}, or {} to keep the {headroom_percent}% headroom (`device.headroom`)",
                    need.human(),
                    with_headroom.human()
                )),
            );
        } else if !floor.keeps_headroom(s.memory, workers, headroom_percent) {
            cx.err(
                Diagnostic::warning(
                    Code::MemoryHeadroom,
                    format!(
                        "`{key}` ({}) is less than {headroom_percent}% above the {} {what}",
                        s.memory.human(),
                        need.human()
                    ),
                )
                .at_opt(span)
                .label(format!(
                    "{} above the measured floor",
                    Bytes(s.memory.0 - need.0).human_approx()
                ))
                .note(how_measured(m, floor, workers))
                .help(format!(
                    "raise it to at least {}, or lower `device.headroom`",
                    with_headroom.human()
                )),
            );
        }
    }
}

/// "worker-beat was measured to need on Dify 1.16.0 (with 2 workers)".
fn measured_what(m: &Measurement, kind: ServiceKind, floor: &Floor, workers: u32) -> String {
    let with = match floor.per_extra_worker(workers) {
        Some(_) => format!(" with {workers} workers"),
        None => String::new(),
    };
    format!(
        "{} was measured to need on Dify {}{with}",
        kind.key(),
        m.release
    )
}

/// Which measurement the floor comes from, and how it was taken.
fn how_measured(m: &Measurement, floor: &Floor, workers: u32) -> String {
    let peak = floor.source_peak();
    let mut out = format!(
        "measured floor on Dify {} (commit {}, {}): {}MiB, its `{peak}` peak",
        m.release,
        &m.source_commit[..m.source_commit.len().min(12)],
        m.measured,
        floor.base
    );
    if let Some(per) = floor.per_extra_worker(workers) {
        out.push_str(&format!(
            ", plus {per}MiB for each worker beyond the first ({} more)",
            workers - 1
        ));
    }
    let peaks: Vec<String> = floor
        .peaks
        .iter()
        .map(|(name, mib)| format!("{name} {mib}MiB"))
        .collect();
    out.push_str(&format!("\npeaks: {}", peaks.join(", ")));
    out.push_str(&format!("\nmethod: {}", m.method));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::diagnostic::{Diagnostics, Severity};
    use crate::input::layer::Target;
    use crate::plan::fixtures;

    /// The codes, severities and services `floors` reports for the
    /// fixture's services as `change` leaves them.
    fn findings(
        release: &str,
        headroom: u8,
        change: impl FnOnce(&mut BTreeMap<ServiceKind, Service>),
    ) -> Vec<(Code, Severity, String)> {
        let mut services = (*fixtures::edge().services).clone();
        change(&mut services);
        let spans: MemorySpans = services.keys().map(|k| (*k, None)).collect();
        let mut diags = Diagnostics::new();
        let mut cx = Cx {
            diags: &mut diags,
            defaults: Vec::new(),
            anchor: 0..0,
            target: Target::Compose,
            removed: Vec::new(),
            refused_secrets: Vec::new(),
        };
        floors(&mut cx, release, &services, &spans, headroom);
        diags
            .iter()
            .map(|d| {
                let service = d.message.split('.').nth(1).unwrap_or("").to_string();
                (d.code, d.severity, service)
            })
            .collect()
    }

    fn set(services: &mut BTreeMap<ServiceKind, Service>, kind: ServiceKind, mib: u64) {
        services.get_mut(&kind).unwrap().memory = Bytes::mib(mib);
    }

    /// A service's floor with one worker, and with `headroom` percent above
    /// it, in MiB, from the data (which changes when measured again).
    fn floor_mib(kind: ServiceKind, headroom: u8) -> u64 {
        let f = measurement("1.16.0").and_then(|m| m.floor(kind)).unwrap();
        f.with_headroom(1, headroom).0 >> 20
    }

    #[test]
    fn limits_below_the_floor_are_errors_and_close_above_it_warnings() {
        use ServiceKind::{Api, Worker, WorkerBeat};
        // The edge profile's old beat (128 MiB) is refused; an api at its
        // floor is within the headroom; a worker at floor + headroom fits.
        let got = findings("1.16.0", 10, |s| {
            set(s, Api, floor_mib(Api, 0));
            set(s, Worker, floor_mib(Worker, 10));
            set(s, WorkerBeat, 128);
        });
        assert_eq!(
            got,
            [
                (Code::MemoryHeadroom, Severity::Warning, "api".into()),
                (Code::MemoryFloor, Severity::Error, "worker-beat".into()),
            ]
        );
        // At the floor with the headroom, nothing; one MiB under, a warning.
        let fits = |s: &mut BTreeMap<ServiceKind, Service>| {
            for k in [Api, Worker, WorkerBeat] {
                set(s, k, floor_mib(k, 10));
            }
        };
        assert!(findings("1.16.0", 10, fits).is_empty());
        let got = findings("1.16.0", 10, |s| {
            fits(s);
            set(s, WorkerBeat, floor_mib(WorkerBeat, 10) - 1);
        });
        assert_eq!(
            got,
            [(
                Code::MemoryHeadroom,
                Severity::Warning,
                "worker-beat".into()
            )]
        );
        // Without headroom the floor itself passes; one MiB under fails.
        let got = findings("1.16.0", 0, |s| {
            set(s, Api, floor_mib(Api, 0));
            set(s, Worker, floor_mib(Worker, 0) - 1);
            set(s, WorkerBeat, floor_mib(WorkerBeat, 0));
        });
        assert_eq!(got, [(Code::MemoryFloor, Severity::Error, "worker".into())]);
    }

    #[test]
    fn every_gunicorn_worker_counts_and_an_unmeasured_release_is_not_checked() {
        // Two gunicorn workers need the floor plus one worker process: just
        // above that is within the headroom, just below is below the floor.
        let floor = api();
        let two_floor = floor.with_workers(2).0 >> 20;
        let two_fits = floor.with_headroom(2, 10).0 >> 20;
        assert!(two_floor > floor_mib(ServiceKind::Api, 0) + 400);
        let two = |mib| {
            move |s: &mut BTreeMap<ServiceKind, Service>| {
                set(s, ServiceKind::Api, mib);
                s.get_mut(&ServiceKind::Api).unwrap().workers = Some(2);
            }
        };
        let api = |got: Vec<(Code, Severity, String)>| {
            got.into_iter()
                .find(|(_, _, s)| s == "api")
                .map(|(c, _, _)| c)
        };
        assert_eq!(
            api(findings("1.16.0", 10, two(two_floor + 1))),
            Some(Code::MemoryHeadroom)
        );
        assert_eq!(
            api(findings("1.16.0", 10, two(two_floor - 1))),
            Some(Code::MemoryFloor)
        );
        assert_eq!(api(findings("1.16.0", 10, two(two_fits))), None);
        // More Celery workers are greenlets: the worker's floor stays.
        let got = findings("1.16.0", 10, |s| {
            set(s, ServiceKind::Worker, floor_mib(ServiceKind::Worker, 10));
            s.get_mut(&ServiceKind::Worker).unwrap().workers = Some(8);
        });
        assert!(!got.iter().any(|(_, _, s)| s == "worker"), "{got:?}");
        // A release that was not measured has no floors, whatever the limits.
        assert!(findings("1.15.0", 10, |s| set(s, ServiceKind::WorkerBeat, 128)).is_empty());
        // 1.16.1 was: the old 128 MiB beat is below its floor too.
        let beat: Vec<_> = findings("1.16.1", 10, |s| set(s, ServiceKind::WorkerBeat, 128))
            .into_iter()
            .filter(|(_, _, s)| s == "worker-beat")
            .collect();
        assert_eq!(
            beat,
            [(Code::MemoryFloor, Severity::Error, "worker-beat".into())]
        );
    }

    fn api() -> &'static Floor {
        measurement("1.16.0")
            .and_then(|m| m.floor(ServiceKind::Api))
            .unwrap()
    }

    #[test]
    fn the_note_names_the_measurement() {
        let m = measurement("1.16.0").unwrap();
        let note = how_measured(m, api(), 2);
        let expected = format!(
            "Dify 1.16.0 (commit 5c6372d2f76d, {}): {}, its `start` peak, plus ",
            m.measured,
            api().with_workers(1).human()
        );
        assert!(note.contains(&expected), "{note}");
        assert!(
            note.contains("for each worker beyond the first (1 more)"),
            "{note}"
        );
        assert!(note.contains("migrations "), "{note}");
        assert!(note.contains("VmHWM"), "{note}");
        assert_eq!(
            measured_what(m, ServiceKind::Api, api(), 2),
            "api was measured to need on Dify 1.16.0 with 2 workers"
        );
    }
}

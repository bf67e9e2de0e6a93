//! The memory of Dify's own processes, measured while the site starts,
//! migrates its database and serves the smoke workload: the peak resident
//! set (VmHWM) of every process in every container of the box, sampled
//! from /proc every 100 ms, and each container's own peak as its memory
//! cgroup reports it. The measured floors the compiler carries
//! (compiler/dify/memory/<release>.toml) are checked against them.
//!
//! What this cannot see: a process that lives less than one sampling
//! interval, and growth in the last interval before a process exits (VmHWM
//! is read while the process lives). The cgroup's peak also counts the page
//! cache the container's reads charge to it, so it is an upper bound.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use std::path::Path;

use dify_cfg::internals::ServiceKind;
use dify_cfg::internals::dify_facts::memory;

use super::matrix::Expect;
use super::netns::Engine;

const CGROUPS: &str = "/sys/fs/cgroup/memory/docker";
const MIB: u64 = 1024 * 1024;

/// One process as last seen: its command line, its parent and the largest
/// VmHWM read.
#[derive(Debug, Clone)]
pub struct Proc {
    pub cmd: String,
    pub ppid: u32,
    pub hwm: u64,
}

/// Peaks by (container id, pid, command line): an `exec` keeps the pid and
/// changes the program, which is a new process here.
pub type Peaks = BTreeMap<(String, u32, String), Proc>;

pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Peaks>>,
}

fn status_field(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn sample(peaks: &mut Peaks) {
    let Ok(dirs) = std::fs::read_dir(CGROUPS) else {
        return;
    };
    for dir in dirs.flatten() {
        let id = dir.file_name().to_string_lossy().into_owned();
        let Ok(procs) = std::fs::read_to_string(dir.path().join("cgroup.procs")) else {
            continue;
        };
        for pid in procs.lines().filter_map(|p| p.parse::<u32>().ok()) {
            let (Ok(status), Ok(cmdline)) = (
                std::fs::read_to_string(format!("/proc/{pid}/status")),
                std::fs::read(format!("/proc/{pid}/cmdline")),
            ) else {
                continue;
            };
            let Some(hwm) = status_field(&status, "VmHWM:") else {
                continue;
            };
            let cmd = String::from_utf8_lossy(&cmdline)
                .split('\0')
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            let ppid = status_field(&status, "PPid:").unwrap_or(0) as u32;
            let p =
                peaks
                    .entry((id.clone(), pid, cmd.clone()))
                    .or_insert(Proc { cmd, ppid, hwm: 0 });
            p.hwm = p.hwm.max(hwm * 1024);
        }
    }
}

impl Sampler {
    pub fn start() -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peaks = Peaks::new();
            while !flag.load(Ordering::Relaxed) {
                sample(&mut peaks);
                std::thread::sleep(Duration::from_millis(100));
            }
            sample(&mut peaks);
            peaks
        });
        Sampler {
            stop,
            thread: Some(thread),
        }
    }

    pub fn finish(mut self) -> Peaks {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What was measured for one service of the site.
#[derive(Debug, Default, Clone)]
pub struct Measured {
    /// Peak RSS per role of process ("gunicorn master", "gunicorn worker",
    /// "flask upgrade-db", "celery worker", "celery beat", or the program).
    pub processes: BTreeMap<String, u64>,
    /// The container's memory cgroup peak (max_usage_in_bytes), bytes.
    pub cgroup_peak: Option<u64>,
}

impl Measured {
    pub fn get(&self, role: &str) -> u64 {
        self.processes.get(role).copied().unwrap_or(0)
    }

    /// The container's floor as the compiler's facts define it: every
    /// process that runs at once (for the api, gunicorn's master and one
    /// worker), or the migration when it needed more.
    pub fn floor(&self) -> u64 {
        let serving = self.get("gunicorn master") + self.get("gunicorn worker");
        let running = serving
            .max(self.get("celery worker"))
            .max(self.get("celery beat"));
        running.max(self.get("flask upgrade-db"))
    }
}

fn role(cmd: &str, parent_is_gunicorn: bool) -> String {
    if cmd.contains("gunicorn") {
        return if parent_is_gunicorn {
            "gunicorn worker".into()
        } else {
            "gunicorn master".into()
        };
    }
    if cmd.contains("flask upgrade-db") {
        return "flask upgrade-db".into();
    }
    if cmd.contains("celery") && cmd.contains(" worker") {
        return "celery worker".into();
    }
    if cmd.contains("celery") && cmd.contains(" beat") {
        return "celery beat".into();
    }
    cmd.split_whitespace()
        .next()
        .and_then(|p| p.rsplit('/').next())
        .unwrap_or("?")
        .to_string()
}

/// The peaks by compose service, for the containers of `project` that
/// still exist (a container replaced since is not the site's any more).
pub fn by_service(engine: &Engine, project: &str, peaks: &Peaks) -> BTreeMap<String, Measured> {
    let listed = engine.docker_ok(&[
        "ps",
        "-a",
        "--no-trunc",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
        "--format",
        "{{.ID}} {{.Label \"com.docker.compose.service\"}}",
    ]);
    let mut out = BTreeMap::new();
    for line in listed.lines() {
        let Some((id, service)) = line.split_once(' ') else {
            continue;
        };
        let mut m = Measured {
            cgroup_peak: std::fs::read_to_string(format!(
                "{CGROUPS}/{id}/memory.max_usage_in_bytes"
            ))
            .ok()
            .and_then(|s| s.trim().parse().ok()),
            ..Measured::default()
        };
        let mine: Vec<(&(String, u32, String), &Proc)> =
            peaks.iter().filter(|((c, _, _), _)| c == id).collect();
        for ((_, _, _), p) in &mine {
            let parent_is_gunicorn = mine
                .iter()
                .any(|((_, pid, cmd), _)| *pid == p.ppid && cmd.contains("gunicorn"));
            let r = role(&p.cmd, parent_is_gunicorn);
            let e = m.processes.entry(r).or_insert(0);
            *e = (*e).max(p.hwm);
        }
        out.insert(service.to_string(), m);
    }
    out
}

pub fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / MIB as f64)
}

/// The measurement as a report section.
pub fn report(release: &str, measured: &BTreeMap<String, Measured>) -> String {
    let mut s = format!(
        "# Memory of Dify {release}'s processes on the box\n\n\
         Peak RSS (VmHWM, sampled every 100 ms) of every process, and each container's memory cgroup peak (page cache included), from the first start through migrations and the smoke workload.\n\n\
         | service | process | peak RSS |\n|---|---|---|\n"
    );
    for (service, m) in measured {
        for (role, bytes) in &m.processes {
            s.push_str(&format!("| {service} | {role} | {} |\n", mib(*bytes)));
        }
        if let Some(peak) = m.cgroup_peak {
            s.push_str(&format!("| {service} | (cgroup peak) | {} |\n", mib(peak)));
        }
    }
    s
}

/// The services whose floors the compiler carries.
const MEASURED: [ServiceKind; 3] = [
    ServiceKind::Api,
    ServiceKind::Worker,
    ServiceKind::WorkerBeat,
];

/// The peaks the facts name, from what was measured: the api's serving
/// processes at once and its migrations; the worker and beat.
fn peaks_of(kind: ServiceKind, m: &Measured) -> Vec<(&'static str, u64)> {
    match kind {
        ServiceKind::Api => vec![
            ("start", m.get("gunicorn master") + m.get("gunicorn worker")),
            ("migrations", m.get("flask upgrade-db")),
        ],
        ServiceKind::Worker => vec![("workload", m.get("celery worker"))],
        _ => vec![("start", m.get("celery beat"))],
    }
}

/// The measurement in the form of compiler/dify/memory/<release>.toml, so
/// that refreshing the facts is a copy (the api's per-worker term is its
/// gunicorn worker).
fn facts_file(x: &Expect, commit: &str, measured: &BTreeMap<String, Measured>) -> String {
    let today = crate::support::output_text(
        &std::process::Command::new("date")
            .args(["-u", "+%F"])
            .output()
            .unwrap(),
    );
    let mut s = format!(
        "release = \"{}\"\nsource-commit = \"{commit}\"\nmeasured = \"{}\"\n\
         method = \"the box rehearsal: Dify's source at the tag with its locked dependencies on Python 3.12 in the site's containers, {}'s generated files, through migrations and the smoke workload; peak RSS of every process from /proc/<pid>/status (VmHWM), sampled every 100 ms\"\n",
        x.release,
        today.trim(),
        x.site
    );
    for kind in MEASURED {
        let Some(m) = measured.get(kind.compose_name()) else {
            continue;
        };
        let key = kind.key();
        s.push_str(&format!("\n[services.{key}]\nbase = {}\n", m.floor() / MIB));
        if kind == ServiceKind::Api {
            s.push_str(&format!(
                "per-worker = {}\n",
                m.get("gunicorn worker") / MIB
            ));
        }
        s.push_str(&format!("\n[services.{key}.peaks]\n"));
        for (name, bytes) in peaks_of(kind, m) {
            s.push_str(&format!("{name} = {}\n", bytes / MIB));
        }
    }
    s
}

/// Keep the measurement (report and data), and hold it against what the
/// compiler carries for the release: each measured floor within 10% of the
/// facts' (the facts were measured on this release's source, and are not
/// stale), and each container's limit above it.
pub fn check(x: &Expect, measured: &BTreeMap<String, Measured>, reference: &Path) {
    let text = report(&x.release, measured);
    let path = super::keep_report(&format!("memory-{}", x.release), &text);
    eprintln!(
        "{text}\nrehearsal: memory report kept in {}",
        path.display()
    );
    for (service, roles) in [
        (
            "api",
            &["gunicorn master", "gunicorn worker", "flask upgrade-db"][..],
        ),
        ("worker", &["celery worker"][..]),
        ("worker_beat", &["celery beat"][..]),
    ] {
        let m = measured
            .get(service)
            .unwrap_or_else(|| panic!("no container of service {service} was measured"));
        for role in roles {
            assert!(
                m.processes.get(*role).is_some_and(|b| *b > 0),
                "{service}: no {role} process was seen: {:?}",
                m.processes
            );
        }
    }
    let source = std::fs::read_to_string(reference.join(format!("dify/{}/SOURCE", x.release)))
        .unwrap_or_default();
    let commit = crate::support::source_commit(&source).unwrap_or("unknown");
    let data = facts_file(x, commit, measured);
    let kept = super::keep_file(&format!("memory-{}.toml", x.release), &data);
    eprintln!("rehearsal: measured floors kept in {}", kept.display());
    let facts = format!("compiler/dify/memory/{}.toml", x.release);
    let m = memory::measurement(&x.release)
        .unwrap_or_else(|| panic!("{facts} is missing: copy it from {}", kept.display()));
    assert_eq!(
        m.source_commit, commit,
        "{facts} was not measured on the source the rehearsal ran"
    );
    for kind in MEASURED {
        let key = kind.key();
        let floor = measured[kind.compose_name()].floor() / MIB;
        let recorded = m
            .floor(kind)
            .unwrap_or_else(|| panic!("{facts}: no {key}"))
            .base;
        assert!(
            floor * 10 <= recorded * 11 && recorded * 10 <= floor * 11,
            "{key}: measured floor {floor} MiB, {facts} says {recorded} MiB: measure again and update it from {}",
            kept.display()
        );
        let limit = x.memory[kind.compose_name()] / MIB;
        assert!(
            limit > floor,
            "{key}: limit {limit} MiB below the measured {floor} MiB"
        );
    }
}

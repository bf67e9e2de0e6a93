//! The pull agent of a compose box, run for real: clinic-01's rendered
//! `deploy/apply.sh` under `/bin/sh`, reading its `deploy/agent.conf`,
//! against a git repository whose branch `sites/clinic-01` holds the
//! rendered tree, with stub `docker`, `iptables`, `iptables-save`,
//! `iptables-restore`, `ip6tables-save` and `ip6tables-restore` first on
//! PATH. The stubs log every call (and the rules files they are given) and
//! succeed, fail or hang when a test says so; the firewall and docker of
//! the machine are never touched. The boot unit's mode, Docker's firewall
//! backend and agent.conf are in `apply/`.
//!
//! Needs `git`, `flock`, `tar`, `awk` and GNU coreutils, which `.ci/run`
//! installs; where one is missing the tests say so and skip (and fail when
//! DIFY_CFG_REQUIRE_TOOLS=1).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{self, git, output_text as text};

mod backup;
mod boot;
mod conf;
mod docker;
mod postgres;

/// The stub of every tool: logs `name args (secrets=present|absent)`, then
/// the rules file a restore loads (indented); fails when the call contains
/// `$STUB_FAIL` or `$STUB_FAIL_TOO`, sleeps `$STUB_SLEEP` seconds first when it contains
/// `$STUB_SLOW`. The save commands print a small filter and nat table.
/// `docker info` prints `$STUB_BACKEND` (default: Docker's iptables
/// backend) or fails with `$STUB_INFO_ERROR`; `iptables -S FORWARD` prints
/// Docker's jumps, without the one to DOCKER-USER when `$STUB_NO_JUMP` is
/// set. In the db container, the database list is `$STUB_DATABASES`
/// (default dify, dify_plugin, postgres), a dump is `dump of <database>`;
/// a storage archive is `archive of <path>`; what a restore is given on
/// its standard input is logged under it as `    stdin: <line>`.
const STUB: &str = r#"#!/bin/sh
name=${0##*/}
call="$name $*"
secrets=absent
if [ -n "${DIFY_DB_PASSWORD:-}" ]; then secrets=present; fi
printf '%s (secrets=%s)\n' "$call" "$secrets" >>"$STUB_LOG"
case $name in
*-restore)
    for last in "$@"; do :; done
    if [ -f "$last" ]; then
        sed 's/^/    /' "$last" >>"$STUB_LOG"
    fi
    ;;
docker)
    for last in "$@"; do :; done
    case $call in
    *" exec -T "*"SELECT datname"*) printf '%s\n' ${STUB_DATABASES-dify dify_plugin postgres} ;;
    *" exec -T "*"pg_dumpall --globals-only"*) printf '%s\n' '-- the roles, as the stub dumps them' ;;
    *" exec -T "*"pg_dump --format=custom"*) printf 'dump of %s\n' "$last" ;;
    *" --entrypoint tar "*)
        prev=''
        for arg in "$@"; do
            if [ "$prev" = -C ]; then printf 'archive of %s\n' "$arg"; fi
            prev=$arg
        done
        ;;
    *" exec -T "*"pg_restore"* | *" --entrypoint sh "*) sed 's/^/    stdin: /' >>"$STUB_LOG" ;;
    esac
    ;;
*-save)
    printf '%s\n' '# saved by the stub' '*filter' ':INPUT ACCEPT [0:0]' ':DOCKER-USER - [0:0]' \
        '-A INPUT -s 192.0.2.1/32 -p tcp -m tcp --dport 22 -j ACCEPT' '-A DOCKER-USER -j RETURN' \
        '-A FORWARD -j DOCKER-USER' 'COMMIT' '*nat' '-A PREROUTING -j DOCKER' 'COMMIT'
    ;;
esac
case $call in
"docker info "*)
    if [ -n "${STUB_INFO_ERROR:-}" ]; then
        printf '%s\n' "$STUB_INFO_ERROR" >&2
        exit 1
    fi
    backend=${STUB_BACKEND:-}
    if [ -z "$backend" ]; then
        backend='{"Driver":"iptables","Info":[["ReloadedAt","2025-01-01T00:00:00Z"]]}'
    fi
    printf '%s\n' "$backend"
    ;;
"iptables -S FORWARD")
    printf '%s\n' '-P FORWARD DROP'
    if [ -z "${STUB_NO_JUMP:-}" ]; then
        printf '%s\n' '-A FORWARD -j DOCKER-USER'
    fi
    printf '%s\n' '-A FORWARD -j DOCKER-FORWARD'
    ;;
esac
if [ -n "${STUB_SLOW:-}" ]; then
    case $call in *"$STUB_SLOW"*) sleep "$STUB_SLEEP" ;; esac
fi
if [ -n "${STUB_FAIL:-}" ]; then
    case $call in *"$STUB_FAIL"*) echo "stub: $name fails as told" >&2; exit 1 ;; esac
fi
if [ -n "${STUB_FAIL_TOO:-}" ]; then
    case $call in *"$STUB_FAIL_TOO"*) echo "stub: $name fails as told" >&2; exit 1 ;; esac
fi
exit 0
"#;

const STUBBED: [&str; 6] = [
    "docker",
    "iptables",
    "iptables-save",
    "iptables-restore",
    "ip6tables-save",
    "ip6tables-restore",
];

const SITE: &str = "clinic-01";
const BRANCH: &str = "sites/clinic-01";

/// Whether the tools apply.sh needs beyond the stubs are here.
fn have_tools() -> bool {
    let missing: Vec<&str> = ["git", "flock", "tar", "awk", "sha256sum", "comm", "cmp"]
        .into_iter()
        .filter(|t| !support::on_path(t))
        .collect();
    support::available(
        "the tools apply.sh needs",
        missing.is_empty(),
        &format!("{missing:?} not installed (.ci/run installs them)"),
    )
}

/// clinic-01 as the built binary renders it in the example fleet.
fn rendered() -> PathBuf {
    support::example_out().join(SITE)
}

/// One test's world: the repository, the state directory, the stubs, and
/// the installed agent.conf (a copy of clinic-01's).
struct World {
    _dir: tempfile::TempDir,
    repo: PathBuf,
    state: PathBuf,
    stubs: PathBuf,
    log: PathBuf,
    secrets: PathBuf,
    conf: PathBuf,
}

impl World {
    /// A repository whose site branch holds clinic-01's rendered tree.
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        let state = dir.path().join("state");
        let stubs = dir.path().join("stubs");
        fs::create_dir_all(&repo).unwrap();
        fs::create_dir_all(&stubs).unwrap();
        let stub = stubs.join("stub");
        fs::write(&stub, STUB).unwrap();
        for name in STUBBED {
            std::os::unix::fs::symlink("stub", stubs.join(name)).unwrap();
        }
        fs::set_permissions(&stub, fs::Permissions::from_mode(0o755)).unwrap();
        git(
            &repo,
            &["init", "-q", &format!("--initial-branch={BRANCH}")],
        );
        for (rel, bytes) in support::snapshot(&rendered()) {
            let path = repo.join(&rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, bytes).unwrap();
        }
        let secrets = dir.path().join("secrets.env");
        fs::write(&secrets, "export DIFY_DB_PASSWORD='not-a-real-secret'\n").unwrap();
        let conf = dir.path().join("agent.conf");
        fs::copy(rendered().join("deploy/agent.conf"), &conf).unwrap();
        let world = World {
            conf,
            log: dir.path().join("calls.log"),
            _dir: dir,
            repo,
            state,
            stubs,
            secrets,
        };
        world.commit("the rendered tree of clinic-01");
        world
    }

    /// Commit everything in the repository; the new commit's id.
    fn commit(&self, message: &str) -> String {
        git(&self.repo, &["add", "-A"]);
        git(
            &self.repo,
            &["commit", "-q", "--allow-empty", "-m", message],
        );
        self.head()
    }

    fn head(&self) -> String {
        git(&self.repo, &["rev-parse", "HEAD"])
    }

    /// Run apply.sh with the confirmation window `timeout` and extra
    /// environment; the log of stub calls is reset first.
    fn apply(&self, timeout: u32, env: &[(&str, &str)]) -> (Output, String) {
        let timeout = timeout.to_string();
        let mut all = vec![("DIFY_CFG_CONFIRM_TIMEOUT", timeout.as_str())];
        all.extend_from_slice(env);
        self.run(&[], &all)
    }

    /// Run apply.sh with arguments and extra environment, as the units do
    /// (the window is agent.conf's unless set); the log of stub calls is
    /// reset first.
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> (Output, String) {
        let _ = fs::remove_file(&self.log);
        let path = format!(
            "{}:{}",
            self.stubs.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = Command::new("/bin/sh");
        cmd.arg(rendered().join("deploy/apply.sh"))
            .args(args)
            .env("PATH", path)
            .env("STUB_LOG", &self.log)
            .env("DIFY_CFG_AGENT_CONF", &self.conf)
            .env("DIFY_CFG_STATE_DIR", &self.state)
            .env("DIFY_CFG_REPOSITORY", &self.repo)
            .env("DIFY_CFG_SECRETS_ENV", &self.secrets)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1");
        for var in [
            "DIFY_DB_PASSWORD",
            "DIFY_CFG_CONFIRM_TIMEOUT",
            "STUB_FAIL",
            "STUB_SLOW",
            "STUB_BACKEND",
            "STUB_INFO_ERROR",
            "STUB_NO_JUMP",
            "STUB_DATABASES",
            "STUB_FAIL_TOO",
        ] {
            cmd.env_remove(var);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run apply.sh");
        assert_eq!(
            leftovers(&self.log),
            Vec::<String>::new(),
            "processes of the run are still alive"
        );
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        (out, log)
    }

    /// The commit whose rules the boot unit loads.
    fn saved_commit(&self) -> Option<String> {
        fs::read_to_string(self.state.join("firewall/commit"))
            .ok()
            .map(|s| s.trim().to_string())
    }

    fn applied(&self) -> Option<String> {
        fs::read_to_string(self.state.join("applied"))
            .ok()
            .map(|s| s.trim().to_string())
    }

    fn release(&self, commit: &str) -> PathBuf {
        self.state.join("releases").join(commit)
    }
}

/// Processes still running with this run's environment (the watchdog, a
/// stub): none may outlive apply.sh.
fn leftovers(marker: &Path) -> Vec<String> {
    let needle = format!("STUB_LOG={}", marker.display());
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(environ) = fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ
            .split(|b| *b == 0)
            .any(|var| var == needle.as_bytes())
        {
            let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
            out.push(format!(
                "{name}: {}",
                String::from_utf8_lossy(&cmdline).replace('\0', " ")
            ));
        }
    }
    out
}

/// The calls of a log (without the rules files printed under them).
fn calls(log: &str) -> Vec<&str> {
    log.lines().filter(|l| !l.starts_with(' ')).collect()
}

/// The rules file a call loaded, as the stub printed it.
fn loaded<'a>(log: &'a str, call_prefix: &str) -> Vec<&'a str> {
    let mut lines = log.lines().skip_while(|l| !l.starts_with(call_prefix));
    assert!(lines.next().is_some(), "no call `{call_prefix}` in:\n{log}");
    lines
        .take_while(|l| l.starts_with("    "))
        .map(|l| &l[4..])
        .collect()
}

#[test]
fn a_good_tree_is_applied_in_order_and_a_second_run_is_a_no_op() {
    if !have_tools() {
        return;
    }
    let w = World::new();
    let commit = w.head();
    let (out, log) = w.apply(30, &[]);
    assert!(out.status.success(), "{}\n{log}", text(&out));
    let release = w.release(&commit);
    let r = release.display();
    let compose = format!("docker compose --project-directory {r} -f {r}/compose.yaml");
    let expected = [
        "docker info --format {{json .FirewallBackend}} (secrets=absent)".to_string(),
        "iptables -S FORWARD (secrets=absent)".to_string(),
        format!("iptables-restore --noflush --test {r}/firewall/rules.v4 (secrets=absent)"),
        format!("ip6tables-restore --noflush --test {r}/firewall/rules.v6 (secrets=absent)"),
        format!("{compose} config --quiet (secrets=present)"),
        format!("{compose} pull --quiet --policy missing (secrets=present)"),
        "iptables-save -t filter (secrets=absent)".to_string(),
        "ip6tables-save -t filter (secrets=absent)".to_string(),
        format!("iptables-restore --noflush {r}/firewall/rules.v4 (secrets=absent)"),
        format!("ip6tables-restore --noflush {r}/firewall/rules.v6 (secrets=absent)"),
        format!("{compose} up -d --remove-orphans --wait --wait-timeout 30 (secrets=present)"),
    ];
    assert_eq!(calls(&log), expected, "\n{log}");
    // The rules loaded are the site's, byte for byte.
    let rules = fs::read_to_string(rendered().join("firewall/rules.v4")).unwrap();
    assert_eq!(
        loaded(
            &log,
            &format!("iptables-restore --noflush {r}/firewall/rules.v4")
        ),
        rules.lines().collect::<Vec<_>>()
    );
    assert_eq!(w.applied().as_deref(), Some(commit.as_str()));
    assert_eq!(
        fs::read_link(w.state.join("current")).unwrap(),
        Path::new("releases").join(&commit)
    );
    // The release is the tree of the commit (plus the saved rules).
    let mut tree = support::snapshot(&release);
    tree.retain(|k, _| !k.starts_with(".apply/"));
    assert_eq!(tree, support::snapshot(&rendered()));
    assert!(!w.state.join("failed").exists());

    // Its rules are saved for the boot unit.
    assert_eq!(w.saved_commit().as_deref(), Some(commit.as_str()));

    // A second run changes nothing but loads the applied firewall again.
    let (out, log) = w.apply(30, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("up to date"), "{}", text(&out));
    assert_reasserted(&w, &log, &commit);
    assert!(
        text(&out).contains(&format!(
            "loaded the firewall of the applied release {commit} again"
        )),
        "{}",
        text(&out)
    );
    assert_eq!(w.applied().as_deref(), Some(commit.as_str()));
}

/// The calls of a run that only loaded the saved firewall of `commit`
/// again: the two restores, of the applied release's rules byte for byte.
fn assert_reasserted(w: &World, log: &str, commit: &str) {
    let saved = w.state.join("firewall");
    let (v4, v6) = (saved.join("rules.v4"), saved.join("rules.v6"));
    assert_eq!(
        calls(log),
        [
            format!(
                "iptables-restore --noflush {} (secrets=absent)",
                v4.display()
            ),
            format!(
                "ip6tables-restore --noflush {} (secrets=absent)",
                v6.display()
            ),
        ],
        "\n{log}"
    );
    for (file, call) in [("rules.v4", "iptables"), ("rules.v6", "ip6tables")] {
        let rules = fs::read_to_string(rendered().join("firewall").join(file)).unwrap();
        let path = saved.join(file);
        assert_eq!(
            loaded(log, &format!("{call}-restore --noflush {}", path.display())),
            rules.lines().collect::<Vec<_>>()
        );
    }
    assert_eq!(w.saved_commit().as_deref(), Some(commit));
}

/// A refused tree: non-zero, the reason named, neither the firewall nor
/// docker called, `applied` unchanged, the release removed, and the same
/// commit not tried again.
fn assert_refused(w: &World, before: &str, bad: &str, out: &Output, log: &str, names: &str) {
    assert!(!out.status.success(), "{}", text(out));
    let said = text(out);
    assert!(said.contains(names), "the message names {names}:\n{said}");
    assert_eq!(log, "", "nothing may be called for a refused tree");
    assert_eq!(w.applied().as_deref(), Some(before));
    assert!(!w.release(bad).exists(), "the refused release is removed");
    assert!(w.release(before).is_dir(), "the running release stays");
    // Not tried again; the applied release's firewall is loaded again.
    let (out, log) = w.apply(30, &[]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("failed to apply before"),
        "{}",
        text(&out)
    );
    assert_reasserted(w, &log, before);
}

#[test]
fn a_tampered_file_is_refused_before_anything_changes() {
    if !have_tools() {
        return;
    }
    let w = World::new();
    let good = w.head();
    assert!(w.apply(30, &[]).0.status.success());
    // One byte of compose.yaml changed, manifest.json left as it was.
    let path = w.repo.join("compose.yaml");
    let mut bytes = fs::read(&path).unwrap();
    let at = bytes.iter().position(|b| *b == b'1').unwrap();
    bytes[at] = b'2';
    fs::write(&path, bytes).unwrap();
    let bad = w.commit("edit compose.yaml by hand");
    let (out, log) = w.apply(30, &[]);
    assert_refused(&w, &good, &bad, &out, &log, "compose.yaml: FAILED");
}

#[test]
fn an_unlisted_file_is_refused_before_anything_changes() {
    if !have_tools() {
        return;
    }
    let w = World::new();
    let good = w.head();
    assert!(w.apply(30, &[]).0.status.success());
    fs::write(w.repo.join("nginx/extra.conf"), "server { listen 8080; }\n").unwrap();
    let bad = w.commit("add a file the compiler did not write");
    let (out, log) = w.apply(30, &[]);
    assert_refused(&w, &good, &bad, &out, &log, "extra: nginx/extra.conf");
}

#[test]
fn a_missing_file_and_a_link_are_refused() {
    if !have_tools() {
        return;
    }
    let w = World::new();
    let good = w.head();
    assert!(w.apply(30, &[]).0.status.success());
    fs::remove_file(w.repo.join("dify.env")).unwrap();
    let bad = w.commit("drop a listed file");
    let (out, log) = w.apply(30, &[]);
    assert_refused(&w, &good, &bad, &out, &log, "missing: dify.env");

    git(&w.repo, &["checkout", "-q", &good, "--", "dify.env"]);
    std::os::unix::fs::symlink("/etc/passwd", w.repo.join("passwd")).unwrap();
    let bad = w.commit("add a link");
    let (out, log) = w.apply(30, &[]);
    assert_refused(&w, &good, &bad, &out, &log, "not a regular file: passwd");
}

#[test]
fn a_failing_compose_up_restores_the_saved_rules_and_the_previous_release() {
    if !have_tools() {
        return;
    }
    let w = World::new();
    let good = w.head();
    assert!(w.apply(30, &[]).0.status.success());
    let next = w.commit("the same tree again: a new release");
    let fail = format!("releases/{next}/compose.yaml up");
    let (out, log) = w.apply(30, &[("STUB_FAIL", &fail)]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("did not get every service healthy"),
        "{}",
        text(&out)
    );
    let release = w.release(&next);
    let apply = release.join(".apply");
    let prev = w.release(&good);
    let calls = calls(&log);
    let pos = |prefix: &str| {
        calls
            .iter()
            .position(|c| c.starts_with(prefix))
            .unwrap_or_else(|| panic!("no call `{prefix}` in:\n{log}"))
    };
    let load = pos(&format!(
        "iptables-restore --noflush {}/firewall/rules.v4",
        release.display()
    ));
    let up = pos(&format!(
        "docker compose --project-directory {} -f {}/compose.yaml up",
        release.display(),
        release.display()
    ));
    let restore = pos(&format!(
        "iptables-restore --noflush {}/rollback.v4",
        apply.display()
    ));
    let restore6 = pos(&format!(
        "ip6tables-restore --noflush {}/rollback.v6",
        apply.display()
    ));
    let back = pos(&format!(
        "docker compose --project-directory {} -f {}/compose.yaml up -d --remove-orphans --wait",
        prev.display(),
        prev.display()
    ));
    assert!(
        load < up && up < restore && restore < restore6 && restore6 < back,
        "{log}"
    );
    // What was restored: the saved rules of the chains the rules files own,
    // nothing of Docker's chains or the nat table.
    let rollback = loaded(
        &log,
        &format!("iptables-restore --noflush {}/rollback.v4", apply.display()),
    );
    assert_eq!(
        rollback,
        [
            "*filter",
            ":DIFY-INPUT - [0:0]",
            ":DIFY-DOCKER - [0:0]",
            ":DOCKER-USER - [0:0]",
            "-F INPUT",
            "-F DIFY-INPUT",
            "-F DIFY-DOCKER",
            "-F DOCKER-USER",
            "-A INPUT -s 192.0.2.1/32 -p tcp -m tcp --dport 22 -j ACCEPT",
            "-A DOCKER-USER -j RETURN",
            "COMMIT",
        ]
    );
    assert_eq!(w.applied().as_deref(), Some(good.as_str()));
    assert_eq!(
        fs::read_to_string(w.state.join("failed")).unwrap().trim(),
        next
    );
    assert!(!release.exists(), "the failed release is removed");
    assert_eq!(
        fs::read_link(w.state.join("current")).unwrap(),
        Path::new("releases").join(&good)
    );
    // The boot unit still loads the rules of the release that runs.
    assert_eq!(w.saved_commit().as_deref(), Some(good.as_str()));
}

#[test]
fn the_watchdog_rolls_back_when_no_confirmation_comes_in_time() {
    if !have_tools() {
        return;
    }
    let w = World::new();
    let commit = w.head();
    // compose up hangs longer than the window: the watchdog restores the
    // saved chains by itself, and the run then rolls back.
    let (out, log) = w.apply(1, &[("STUB_SLOW", " up -d "), ("STUB_SLEEP", "3")]);
    assert!(!out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("no confirmation within 1s"), "{said}");
    assert!(said.contains("watchdog restored the firewall"), "{said}");
    let restores = calls(&log)
        .iter()
        .filter(|c| c.contains("/.apply/rollback.v4"))
        .count();
    assert!(restores >= 1, "{log}");
    assert_eq!(w.applied(), None);
    assert_eq!(w.saved_commit(), None, "nothing saved for the boot unit");
    assert_eq!(
        fs::read_to_string(w.state.join("failed")).unwrap().trim(),
        commit
    );
}

#[test]
fn a_held_lock_makes_the_run_wait_for_the_next_turn() {
    if !have_tools() {
        return;
    }
    let w = World::new();
    fs::create_dir_all(&w.state).unwrap();
    let lock = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(w.state.join("lock"))
        .unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
    let (out, log) = w.apply(30, &[]);
    assert_eq!(out.status.code(), Some(75), "{}", text(&out));
    assert!(text(&out).contains("another run holds"), "{}", text(&out));
    assert_eq!(log, "");
    drop(lock);
    // A lock file left behind by a dead holder blocks nothing.
    let (out, _) = w.apply(30, &[]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_manifest_naming_a_path_outside_the_tree_is_refused() {
    if !have_tools() {
        return;
    }
    let w = World::new();
    let good = w.head();
    assert!(w.apply(30, &[]).0.status.success());
    let path = w.repo.join("manifest.json");
    let text = fs::read_to_string(&path).unwrap();
    let sum = "0".repeat(64);
    let entry = format!(
        "  \"outputs\": [\n    {{\n      \"path\": \"../../etc/passwd\",\n      \"sha256\": \"{sum}\"\n    }},\n"
    );
    fs::write(&path, text.replacen("  \"outputs\": [\n", &entry, 1)).unwrap();
    let bad = w.commit("a manifest that names a file outside the tree");
    let (out, log) = w.apply(30, &[]);
    assert_refused(
        &w,
        &good,
        &bad,
        &out,
        &log,
        "not in the form dify-cfg writes",
    );
}

#[test]
fn bad_environment_overrides_are_refused_before_anything_runs() {
    if !have_tools() {
        return;
    }
    let w = World::new();
    for (var, value, says) in [
        ("DIFY_CFG_CONFIRM_TIMEOUT", "2m", "whole number of seconds"),
        ("DIFY_CFG_CONFIRM_TIMEOUT", "0", "whole number of seconds"),
        ("DIFY_CFG_STATE_DIR", "relative/state", "absolute path"),
        (
            "DIFY_CFG_REPOSITORY",
            "--upload-pack=touch x",
            "not a repository URL",
        ),
    ] {
        let (out, log) = w.apply(30, &[(var, value)]);
        assert_eq!(out.status.code(), Some(1), "{var}={value}: {}", text(&out));
        assert!(text(&out).contains(says), "{var}={value}: {}", text(&out));
        assert_eq!(log, "");
        assert!(!w.state.join("repo.git").exists());
    }
}

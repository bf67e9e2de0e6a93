//! The clinic box rehearsal: a generated site brought up by its own pull
//! agent on a real Docker engine, behind its real firewall, and probed from
//! the networks around it.
//!
//! The box is a network namespace with Debian's dockerd in it (its own data
//! root, exec root and socket; the machine's own Docker and firewall are
//! never touched). The site's images are made here from a Debian root file
//! system (see `images`): nginx, squid, PostgreSQL with pgvector and Redis
//! are the real programs, and so are Dify's api, worker and beat (the
//! release's source with its locked dependencies); the web, sandbox and
//! plugin daemon are stand-ins, and the report lists every difference. A
//! smoke workload (console setup, an app, its API key, a completion, a
//! document indexed into pgvector) goes through nginx from the LAN and the
//! admin network while `memory` measures every process. The site's tree is
//! committed with `dify-cfg commit`, pushed to a bare repository, and
//! applied by `deploy/apply.sh` installed as the README says, with the
//! operator's secrets file.
//!
//! With DIFY_CFG_REHEARSAL_FROM=previous the site starts on the release
//! before the fleet's and is upgraded to the fleet's by the agent (see
//! `upgrade`): first an upgrade that fails, rolled back with the backup
//! restored (every table of Dify's database equal to before), then the
//! upgrade that works, the workload's data served again by the new
//! release. Without it (as in CI, whose 30 minutes the drill does not fit
//! yet) the site runs the fleet's release, and a release that fails to
//! start is rolled back instead.
//!
//! Needs root, dockerd, mmdebstrap, iproute2, iptables, curl, openssl,
//! make, patch, uv, pyenv's Python 3.12, PostgreSQL 15's server headers,
//! and Dify's and pgvector's source in the reference files; skips with a
//! printed reason when one is missing (and fails then under
//! DIFY_CFG_REQUIRE_TOOLS=1, as in CI).
//!
//! By hand, for one site with its report kept:
//!   tests/rehearsal/run.sh clinic-01
//! (DIFY_CFG_REHEARSAL_SITE and DIFY_CFG_REHEARSAL_REPORT, see there).

mod images;
mod matrix;
mod memory;
mod netns;
mod probes;
mod services;
mod stages;
mod upgrade;
mod workload;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crate::support::{self, output_text as text};
use matrix::Expect;
use netns::{Engine, Host, in_box_command, must};
use probes::Row;

/// The rehearsal's working folder, its engine and its hosts; everything
/// goes when it is dropped (also when the test fails).
struct Rehearsal {
    work: PathBuf,
    engine: Engine,
    config: PathBuf,
    remote: PathBuf,
    /// The box's own file system, where the agent is installed as the
    /// README says (`/opt/dify-cfg/apply.sh` is `root/opt/dify-cfg/apply.sh`).
    root: PathBuf,
    hosts: Vec<Child>,
    /// Dify's and pgvector's source (the reference files).
    reference: PathBuf,
    /// The release the site starts on and the fleet's, which it is
    /// upgraded to.
    from: String,
    to: String,
    /// The site's api.Dockerfile on the fleet's release (its image's
    /// settings), from a build before the site was held back.
    to_dockerfile: String,
}

impl Drop for Rehearsal {
    fn drop(&mut self) {
        for h in &mut self.hosts {
            let _ = h.kill();
            let _ = h.wait();
        }
        if std::env::var_os("DIFY_CFG_REHEARSAL_KEEP").is_none() {
            netns::cleanup();
        } else {
            eprintln!("rehearsal: kept the box (tests/rehearsal/cleanup.sh removes it)");
        }
    }
}

/// Everything the rehearsal needs, or the reason it cannot run here.
fn prerequisites() -> Option<PathBuf> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n");
    if !support::available(
        "the box rehearsal",
        root,
        "it needs root (network namespaces, dockerd)",
    ) {
        return None;
    }
    for t in [
        "dockerd",
        "docker",
        "mmdebstrap",
        "ip",
        "nsenter",
        "iptables-restore",
        "curl",
        "openssl",
        "ping",
        "make",
        "git",
        "flock",
        "timeout",
        "bash",
        "uv",
        "patch",
    ] {
        if !support::available(
            "the box rehearsal",
            support::on_path(t),
            &format!("{t} is not installed"),
        ) {
            return None;
        }
    }
    let compose = Command::new("docker")
        .args(["compose", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !support::available(
        "the box rehearsal",
        compose,
        "the docker compose plugin is not installed",
    ) {
        return None;
    }
    let python = images::python312().is_some();
    if !support::available(
        "the box rehearsal",
        python,
        "Python 3.12 is not among pyenv's versions (or set DIFY_CFG_PYTHON312)",
    ) {
        return None;
    }
    let headers = Path::new("/usr/lib/postgresql/15/bin/pg_config").exists();
    if !support::available(
        "the box rehearsal",
        headers,
        "postgresql-server-dev-15 is not installed",
    ) {
        return None;
    }
    support::reference()
}

/// A certificate authority of the rehearsal's own, and certificates from
/// it: the LLM endpoint's (for its address) and the site's (for its name).
fn make_ca(dir: &Path) {
    let p = |f: &str| dir.join(f).to_str().unwrap().to_string();
    must(&[
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=dify-cfg rehearsal CA",
        "-keyout",
        &p("ca.key"),
        "-out",
        &p("ca.crt"),
    ]);
    issue(dir, "llm", "IP:10.0.0.40");
}

/// `name.crt` and `name.key` in `dir`, signed by the rehearsal's CA.
fn issue(dir: &Path, name: &str, san: &str) {
    let p = |f: &str| dir.join(f).to_str().unwrap().to_string();
    let (key, csr, ext, crt) = (
        p(&format!("{name}.key")),
        p(&format!("{name}.csr")),
        p(&format!("{name}.ext")),
        p(&format!("{name}.crt")),
    );
    must(&[
        "openssl",
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        &format!("/CN={name}"),
        "-keyout",
        &key,
        "-out",
        &csr,
    ]);
    std::fs::write(&ext, format!("subjectAltName={san}\n")).unwrap();
    must(&[
        "openssl",
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &p("ca.crt"),
        "-CAkey",
        &p("ca.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &ext,
        "-out",
        &crt,
    ]);
}

/// Secrets as an operator keeps them: `export NAME='value'` lines in a
/// root-only file, random values, never in the repository.
fn write_secrets(path: &Path, compose: &Path) {
    let text = std::fs::read_to_string(compose).unwrap();
    let mut names: Vec<&str> = text
        .match_indices("${")
        .filter_map(|(i, _)| text[i + 2..].split([':', '}']).next())
        .collect();
    names.sort_unstable();
    names.dedup();
    let mut file = String::new();
    for name in names {
        let value = must(&["openssl", "rand", "-hex", "24"]);
        file.push_str(&format!("export {name}='{}'\n", value.trim()));
    }
    std::fs::write(path, file).unwrap();
    must(&["chmod", "600", path.to_str().unwrap()]);
}

/// A process in a host's namespace, running until the rehearsal ends.
fn start_host(host: Option<Host>, args: &[&str]) -> Child {
    let mut c = match host {
        Some(h) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", h.ns()]);
            c.arg(args[0]);
            c
        }
        None => in_box_command(args[0]),
    };
    c.args(&args[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start a rehearsal host")
}

impl Rehearsal {
    fn new(reference: &Path, site: &str) -> Rehearsal {
        netns::cleanup();
        let work = tempfile::Builder::new()
            .prefix("dify-cfg-rehearsal.")
            .tempdir_in("/var/tmp")
            .unwrap()
            .keep();
        let config = work.join("config");
        std::fs::create_dir_all(&config).unwrap();
        support::copy_fleet(&config);
        let (from, to, to_dockerfile) = upgrade::hold_back(&config, &work, site);
        support::init_repo(&config, "The clinic fleet");
        let x = Expect::load(&config, site);
        assert_eq!(
            x.release, from,
            "the site starts on the release before the fleet's"
        );
        netns::set_lan(x.lan4, x.address.parse().unwrap());
        let mut engine = Engine::new(&work);
        netns::topology();
        engine.start();
        make_ca(&work);
        images::build(&engine, &images::pgvector(reference), &work.join("ca.crt"));
        let standin = support::repo().join("tests/rehearsal/images/standin.py");
        let standin = standin.to_str().unwrap();
        let (crt, key) = (work.join("llm.crt"), work.join("llm.key"));
        let hosts = vec![
            start_host(
                Some(Host::Llm),
                &[
                    "python3",
                    standin,
                    "llm",
                    "443",
                    crt.to_str().unwrap(),
                    key.to_str().unwrap(),
                ],
            ),
            start_host(Some(Host::Outside), &["python3", standin, "outside", "80"]),
            start_host(None, &["python3", standin, "sshd", "22"]),
        ];
        let remote = work.join("fleet.git");
        let r = Rehearsal {
            root: work.join("root"),
            work,
            engine,
            config,
            remote,
            hosts,
            reference: reference.to_path_buf(),
            from,
            to,
            to_dockerfile,
        };
        r.commit(site);
        // The api image takes its settings from the site's own Dockerfile.
        let dockerfile = r.site_file(site, "docker/api.Dockerfile");
        images::build_api(
            &r.engine,
            reference,
            &x.release,
            &std::fs::read_to_string(dockerfile).unwrap(),
        );
        must(&[
            "git",
            "clone",
            "-q",
            "--bare",
            r.config.to_str().unwrap(),
            r.remote.to_str().unwrap(),
        ]);
        r
    }

    /// `dify-cfg commit` of the site's branch.
    fn commit(&self, site: &str) {
        support::assert_ok(
            support::dify_cfg(&["commit", "--site", site], &self.config),
            "dify-cfg commit",
        );
    }

    /// Push the config repository's branches to the bare remote.
    fn push(&self) {
        support::git(
            &self.config,
            &[
                "push",
                "-q",
                "--force",
                self.remote.to_str().unwrap(),
                "refs/heads/*:refs/heads/*",
            ],
        );
    }

    /// Install the pull agent as the README says, once per box: the site
    /// branch cloned and checked against its manifest, the agent, its
    /// settings and units installed, the operator's secrets file.
    fn install_agent(&self, site: &str) {
        let checkout = self.work.join("site-checkout");
        must(&[
            "git",
            "clone",
            "--quiet",
            "--single-branch",
            "--branch",
            &format!("sites/{site}"),
            self.remote.to_str().unwrap(),
            checkout.to_str().unwrap(),
        ]);
        let verified = Command::new("sh")
            .args(["deploy/apply.sh", "--verify", "."])
            .current_dir(&checkout)
            .output()
            .unwrap();
        assert!(
            verified.status.success(),
            "apply.sh --verify: {}",
            text(&verified)
        );
        let at = |p: &str| self.root.join(p.trim_start_matches('/'));
        for (from, to, mode) in [
            ("deploy/apply.sh", "/opt/dify-cfg/apply.sh", "0755"),
            ("deploy/agent.conf", "/etc/dify-cfg/agent.conf", "0644"),
            (
                "deploy/dify-cfg-pull.service",
                "/etc/systemd/system/dify-cfg-pull.service",
                "0644",
            ),
            (
                "deploy/dify-cfg-pull.timer",
                "/etc/systemd/system/dify-cfg-pull.timer",
                "0644",
            ),
            (
                "deploy/dify-cfg-firewall.service",
                "/etc/systemd/system/dify-cfg-firewall.service",
                "0644",
            ),
        ] {
            must(&[
                "install",
                "-D",
                "-m",
                mode,
                checkout.join(from).to_str().unwrap(),
                at(to).to_str().unwrap(),
            ]);
        }
        write_secrets(
            &at("/etc/dify-cfg/secrets.env"),
            &checkout.join("compose.yaml"),
        );
    }

    /// A file of the site's branch, exported to the working folder.
    fn site_file(&self, site: &str, path: &str) -> PathBuf {
        let text = support::git(&self.config, &["show", &format!("sites/{site}:{path}")]);
        let to = self.work.join("tree").join(site).join(path);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(&to, text).unwrap();
        to
    }

    /// What an installed unit runs: its `ExecStart=` with its
    /// `Environment=`, the box's paths under the rehearsal's root; on the
    /// box's engine, fetching from the rehearsal's remote.
    fn unit(&self, name: &str) -> Command {
        let unit =
            std::fs::read_to_string(self.root.join("etc/systemd/system").join(name)).unwrap();
        let at = |w: &str| match w.strip_prefix('/') {
            Some(rest) if w != "/bin/sh" => self.root.join(rest).display().to_string(),
            _ => w.to_string(),
        };
        let exec = unit
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .unwrap_or_else(|| panic!("{name} has no ExecStart="));
        let words: Vec<String> = exec.split_whitespace().map(at).collect();
        let mut c = in_box_command(&words[0]);
        c.args(&words[1..]);
        for (k, v) in unit
            .lines()
            .filter_map(|l| l.strip_prefix("Environment="))
            .filter_map(|e| e.split_once('='))
        {
            c.env(k, at(v));
        }
        c.env("DOCKER_HOST", self.engine.host())
            .env("DIFY_CFG_REPOSITORY", &self.remote)
            .stdin(Stdio::null());
        c
    }

    /// One run of the installed agent on the box. Every service of a new
    /// release must be healthy within six minutes: Dify's api runs
    /// `flask upgrade-db` and boots gunicorn within its CPU limit, which
    /// takes minutes when the machine is busy (a healthy release ends the
    /// wait at once).
    fn apply(&self) -> Output {
        self.apply_within(360)
    }

    /// One run, with `seconds` for every service to become healthy.
    fn apply_within(&self, seconds: u32) -> Output {
        self.unit("dify-cfg-pull.service")
            .env("DIFY_CFG_CONFIRM_TIMEOUT", seconds.to_string())
            .output()
            .expect("cannot run the pull agent")
    }

    fn apply_ok(&self, what: &str) -> String {
        self.apply_within_ok(360, what)
    }

    /// A run that must succeed; the first start of Dify's api runs every
    /// migration first, which takes minutes on a busy machine.
    fn apply_within_ok(&self, seconds: u32, what: &str) -> String {
        let out = self.apply_within(seconds);
        let said = text(&out);
        assert!(out.status.success(), "{what}: apply.sh failed:\n{said}");
        said
    }

    /// Change the site file, commit the inputs, compile the site branch and
    /// push it: a reviewed change landing on the branch.
    fn change_site(&self, site: &str, what: &str, edit: impl FnOnce(&str) -> String) {
        let path = self.config.join(format!("sites/{site}.toml"));
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, edit(&text)).unwrap();
        support::git(&self.config, &["commit", "-q", "-a", "-m", what]);
        self.commit(site);
        self.push();
    }

    /// The chains dify-cfg owns on the box, as the kernel holds them (rules,
    /// no counters). Docker's own chains name container addresses, which
    /// change whenever a container is recreated; they are Docker's.
    fn firewall(&self) -> String {
        let mut s = String::new();
        for tool in ["iptables", "ip6tables"] {
            let out = netns::in_box(&[tool, "-S"]);
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let chain = line.split_whitespace().nth(1).unwrap_or("");
                // Docker appends a bare RETURN to DOCKER-USER when it starts
                // after the rules were loaded (at boot); it is Docker's.
                let dockers = line == "-A DOCKER-USER -j RETURN";
                if !dockers
                    && (chain == "INPUT" || chain == "DOCKER-USER" || chain.starts_with("DIFY-"))
                {
                    s.push_str(&format!("{tool} {line}\n"));
                }
            }
        }
        s
    }

    /// The running containers: name, image and memory limit, sorted.
    fn containers(&self) -> String {
        let ids = self.engine.docker_ok(&["ps", "--quiet"]);
        let mut args = vec![
            "inspect",
            "--format",
            "{{.Name}} {{.Config.Image}} {{.HostConfig.Memory}} {{.State.Status}}",
        ];
        args.extend(ids.split_whitespace());
        let mut lines: Vec<String> = self
            .engine
            .docker_ok(&args)
            .lines()
            .map(str::to_string)
            .collect();
        lines.sort();
        lines.join("\n")
    }

    /// Wait until every container of the site runs, healthy where it has a
    /// health check (after the engine restarted them).
    fn wait_healthy(&self, site: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(480);
        loop {
            let ids = self.engine.docker_ok(&[
                "ps",
                "-a",
                "--quiet",
                "--filter",
                &format!("label=dify-cfg.site={site}"),
            ]);
            let mut args = vec![
                "inspect",
                "--format",
                "{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}healthy{{end}}",
            ];
            args.extend(ids.split_whitespace());
            let states = self.engine.docker_ok(&args);
            if !ids.trim().is_empty() && states.lines().all(|l| l.ends_with(" running healthy")) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "not every container came back:\n{states}"
            );
            std::thread::sleep(std::time::Duration::from_secs(2));
        }
    }

    /// Wait (at most five minutes) until a service's container has logged
    /// `needle`.
    fn wait_logged(&self, site: &str, service: &str, needle: &str) {
        let container = format!("{site}-{service}-1");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
        loop {
            let logged = self.engine.logs(&container);
            if logged.contains(needle) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{container} did not log {needle:?}:\n{logged}"
            );
            std::thread::sleep(std::time::Duration::from_secs(2));
        }
    }

    /// The whole matrix of the running site.
    fn matrix(&self, x: &Expect, compose: &Path) -> Vec<Row> {
        // Within Dify's default upload limit (15 MB), above nginx's
        // default request body (1 MiB): the site's nginx must raise it.
        let upload = self.work.join("upload.txt");
        if !upload.exists() {
            std::fs::write(&upload, "rehearsal\n".repeat(1024 * 1024)).unwrap();
        }
        let key = workload::app_key(&self.work);
        let mut rows = matrix::run(
            x,
            &self.engine,
            &x.site,
            &self.work.join("ca.crt"),
            &upload,
            &key,
        );
        rows.extend(services::rows(
            x,
            &self.engine,
            &x.site,
            compose,
            &services::migrations_head(&self.reference, &x.release),
        ));
        rows
    }
}

/// The matrix as a table, with what the rehearsal is not.
fn report(title: &str, rows: &[Row]) -> String {
    let mut s = format!("# Box rehearsal: {title}\n\n");
    s.push_str("| from | probe | expected | observed | |\n|---|---|---|---|---|\n");
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            r.from,
            r.probe.replace('|', "\\|"),
            r.expected,
            r.observed.replace('|', "\\|"),
            if r.ok() { "ok" } else { "FAILED" }
        ));
    }
    let failed = rows.iter().filter(|r| !r.ok()).count();
    s.push_str(&format!(
        "\n{} probes, {failed} failed.\n\nWhat this box is not:\n",
        rows.len()
    ));
    for d in images::DIFFERENCES {
        s.push_str(&format!("- {d}\n"));
    }
    s
}

fn keep_report(name: &str, text: &str) -> PathBuf {
    keep_file(&format!("{name}.md"), text)
}

/// A file of the rehearsal's kept with its reports.
fn keep_file(file: &str, text: &str) -> PathBuf {
    let dir = std::env::var_os("DIFY_CFG_REHEARSAL_REPORT")
        .map(PathBuf::from)
        .unwrap_or_else(|| support::repo().join("target/rehearsal"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(file);
    std::fs::write(&path, text).unwrap();
    path
}

/// When the rehearsal started, for the stage times it prints.
static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

fn stage(what: &str) {
    let t = STARTED.get_or_init(std::time::Instant::now).elapsed();
    eprintln!("rehearsal: {:>4}s {what}", t.as_secs());
}

fn check(name: &str, rows: &[Row]) {
    stage(&format!("matrix {name}: {} probes", rows.len()));
    let text = report(name, rows);
    let path = keep_report(name, &text);
    eprintln!("{text}\nrehearsal: report kept in {}", path.display());
    let failed: Vec<&Row> = rows.iter().filter(|r| !r.ok()).collect();
    assert!(
        failed.is_empty(),
        "{} probes failed:\n{failed:#?}",
        failed.len()
    );
}

#[test]
fn box_rehearsal() {
    let Some(reference) = prerequisites() else {
        return;
    };
    let site = std::env::var("DIFY_CFG_REHEARSAL_SITE").unwrap_or_else(|_| "clinic-01".into());
    let _quiet = support::timing_sensitive();
    stage("start");
    let mut r = Rehearsal::new(&reference, &site);
    stage("box, engine and images ready");
    r.install_agent(&site);
    let compose = r.site_file(&site, "compose.yaml");
    images::tag_for(&r.engine, &compose, &r.from);

    // The first apply (Dify's migrations run in the api), the smoke
    // workload, and the site as the README promises it; every process's
    // memory measured throughout.
    let sampler = memory::Sampler::start();
    let first = r.apply_within_ok(480, "first apply");
    stage("first apply");
    assert!(first.contains("applied"), "{first}");
    // The fleet's release's api image (when the site started on another),
    // made while the site is probed.
    let to_image = (r.from != r.to)
        .then(|| images::build_api_in_background(&r.engine, &r.reference, &r.to, &r.to_dockerfile));
    let x = Expect::load(&r.config, &site);
    let smoke = workload::run(&x, &r.work);
    stage("smoke workload");
    // Beat has no health check: its peak counts once it has started.
    r.wait_logged(&site, "worker_beat", "beat: Starting...");
    let peaks = sampler.finish();
    memory::check(
        &x,
        &memory::by_service(&r.engine, &site, &peaks),
        &reference,
    );
    check(&format!("{site}-workload"), &smoke);
    check(&site, &r.matrix(&x, &compose));
    stages::a_hole_is_seen(&r, &x);
    let again = r.apply_ok("second apply");
    assert!(again.contains("up to date"), "{again}");

    stages::tampered_tree_is_refused(&r, &site);
    stage("tampered tree refused");

    // Held back: the upgrade to the fleet's release, one that fails, rolled
    // back with its backup restored; then the one that works, in the same
    // branch move as an IPv6 LAN and TLS at nginx. On the fleet's release:
    // a release that fails is rolled back, then the same move.
    if let Some(Err(e)) = to_image.map(std::thread::JoinHandle::join) {
        std::panic::resume_unwind(e);
    }
    if r.from == r.to {
        stages::failing_release_rolls_back(&r, &site);
        stage("failing release rolled back");
    } else {
        upgrade::failing_upgrade_is_restored(&r, &site);
        stage("failing upgrade rolled back, backup restored");
    }
    let tls = r.work.join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    std::fs::copy(r.work.join("ca.crt"), tls.join("ca.crt")).unwrap();
    std::fs::copy(r.work.join("ca.key"), tls.join("ca.key")).unwrap();
    let hostname = Expect::load(&r.config, &site).hostname;
    issue(&tls, &site, &format!("DNS:{hostname}"));
    must(&[
        "chmod",
        "600",
        tls.join(format!("{site}.key")).to_str().unwrap(),
    ]);
    let (crt, key) = (
        tls.join(format!("{site}.crt")),
        tls.join(format!("{site}.key")),
    );
    let kept = upgrade::upgrade(&r, &site, |t| {
        let t = t.replacen(
            "[network]\n",
            &format!("[network]\nlan6 = \"{}\"\n", netns::LAN6_NET),
            1,
        );
        format!(
            "{t}\n[network.tls]\ncertificate = \"{}\"\nkey = \"{}\"\n",
            crt.display(),
            key.display()
        )
    });
    stage("upgraded");
    check(&format!("{site}-upgraded"), &kept);
    // What runs now: the release a reboot brings back.
    let running = Expect::load(&r.config, &site);
    assert_eq!(running.release, r.to);
    let compose = r.work.join("running-compose.yaml");
    std::fs::copy(r.site_file(&site, "compose.yaml"), &compose).unwrap();
    check(&format!("{site}-tls"), &r.matrix(&running, &compose));

    stages::reboot(&mut r, &site, &running, &compose);
    stage("reboot");
}

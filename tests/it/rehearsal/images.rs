//! The box's images, made here: Debian root file systems (mmdebstrap from
//! Debian's packages, built once and cached), imported into the box's
//! engine, and one image per service on top of it (the Dockerfiles in
//! tests/rehearsal/images/), tagged with the exact references the
//! generated compose file names. Dify's api, worker and beat are Dify's
//! own: the release's source with its locked dependencies
//! (tests/rehearsal/dify-api.sh). No registry is involved.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::netns::{Engine, must};
use crate::build_rehearsal::model::Instr;

/// The root file systems, by Debian release (what each holds, and why, is
/// in tests/rehearsal/rootfs.sh, which builds them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    Bookworm,
    Trixie,
}

impl Suite {
    fn name(self) -> &'static str {
        match self {
            Suite::Bookworm => "bookworm",
            Suite::Trixie => "trixie",
        }
    }
}

pub const PGVECTOR: &str = "0.8.0";
const PG_CONFIG: &str = "/usr/lib/postgresql/15/bin/pg_config";

/// The images made from a folder of tests/rehearsal/images/, with the root
/// file system each is built on (dify-api has a context of its own).
const ROLES: &[(&str, Suite)] = &[
    ("postgres", Suite::Bookworm),
    ("redis", Suite::Bookworm),
    ("nginx", Suite::Trixie),
    ("squid", Suite::Trixie),
    ("dify-web", Suite::Bookworm),
    ("dify-sandbox", Suite::Bookworm),
    ("dify-plugin-daemon", Suite::Bookworm),
];

/// Which rehearsal image serves each service of a compose file.
pub fn role(service: &str) -> Option<&'static str> {
    Some(match service {
        "api" | "worker" | "worker_beat" => "dify-api",
        "web" => "dify-web",
        "sandbox" => "dify-sandbox",
        "plugin_daemon" => "dify-plugin-daemon",
        "db_postgres" => "postgres",
        "redis" => "redis",
        "ssrf_proxy" => "squid",
        "nginx" => "nginx",
        _ => return None,
    })
}

/// What each rehearsal image is not, against the image it stands for.
pub const DIFFERENCES: &[&str] = &[
    "api, worker, worker_beat: Dify's own code (the release's api source, its locked dependencies installed by uv, Dify's entrypoint.sh) laid out and set up as the site's generated api.Dockerfile does, but not built by it: on Debian bookworm with the machine's Python 3.12.1 (pyenv's build) for python:3.12-slim-bookworm; flask-restx is PyPI's 1.3.2 for the git fork the lock names (it cannot be fetched here), with Dify's libs/flask_restx_compat.py patched to skip the swagger hook 1.3.2 lacks (tests/rehearsal/flask-restx-1.3.2.patch); no NLTK data or tiktoken encoding (the Dockerfile downloads them at build time from hosts this machine cannot reach)",
    "web, sandbox, plugin daemon: stand-ins (tests/rehearsal/images/standin.py), not Dify's programs (the web needs Node 22 and pnpm, the sandbox and the daemon are Go programs): same ports, health endpoints, users and volumes; the daemon stand-in speaks the part of the daemon's protocol the api uses for an OpenAI-compatible model provider, the others answer every route with their own name",
    "db_postgres: Debian's PostgreSQL 15 with pgvector 0.8.0 built from source, for pgvector/pgvector:0.8.0-pg16 (PostgreSQL 16); the entrypoint honours PGDATA, POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB; postgres runs as Debian's postgres user, not uid 999",
    "redis: Debian's Redis 7.0 for redis:6-alpine; /data owned by the redis user, command-line configuration only, as the compose file gives it",
    "nginx: Debian trixie's nginx 1.26 for nginx:1.27-alpine, with the image's main configuration (conf.d/*.conf, workers as user nginx, logs to the container's output); the nginx user has a system uid, not 101",
    "ssrf_proxy: Debian trixie's squid 6.13 for ubuntu/squid 6.6, configuration at /etc/squid/squid.conf, run in the foreground",
];

pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("DIFY_CFG_REHEARSAL_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache"));
    base.join("dify-cfg/rehearsal")
}

/// A root file system as a tar file (built by tests/rehearsal/rootfs.sh
/// when the cache does not have it), and its image name in the engine.
pub fn rootfs(suite: Suite) -> (PathBuf, String) {
    let script = crate::support::repo().join("tests/rehearsal/rootfs.sh");
    let out = must(&["sh", script.to_str().unwrap(), suite.name()]);
    let tar = PathBuf::from(out.trim());
    let stem = tar.file_stem().unwrap().to_str().unwrap();
    let key = stem.rsplit('-').next().unwrap();
    let image = format!("dify-cfg-rehearsal/{}:{key}", suite.name());
    (tar, image)
}

/// pgvector built from its source against the machine's PostgreSQL 15
/// (the same Debian release as the root file system), installed into a
/// staging folder that the postgres image copies.
pub fn pgvector(reference: &Path) -> PathBuf {
    let stage = cache_dir().join(format!("pgvector-{PGVECTOR}-pg15"));
    if stage.join("usr/lib/postgresql/15/lib/vector.so").exists() {
        return stage;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    must(&[
        "cp",
        "-r",
        reference
            .join(format!("pgvector/{PGVECTOR}/source"))
            .to_str()
            .unwrap(),
        src.to_str().unwrap(),
    ]);
    let pg = format!("PG_CONFIG={PG_CONFIG}");
    // OPTFLAGS empty: no -march=native, the image may run elsewhere.
    must(&["make", "-s", "-C", src.to_str().unwrap(), &pg, "OPTFLAGS="]);
    let partial = cache_dir().join(format!("pgvector-{PGVECTOR}-pg15.partial"));
    let _ = std::fs::remove_dir_all(&partial);
    let dest = format!("DESTDIR={}", partial.display());
    must(&[
        "make",
        "-s",
        "-C",
        src.to_str().unwrap(),
        &pg,
        &dest,
        "install",
    ]);
    let _ = std::fs::remove_dir_all(&stage);
    std::fs::rename(&partial, &stage).unwrap();
    stage
}

/// The image references of a compose file, by service.
pub fn compose_images(compose: &Path) -> BTreeMap<String, String> {
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(compose).unwrap()).unwrap();
    doc["services"]
        .as_mapping()
        .expect("compose.yaml has services")
        .iter()
        .map(|(name, svc)| {
            (
                name.as_str().unwrap().to_string(),
                svc["image"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Import the root file systems and build every image of
/// tests/rehearsal/images/ (once per engine: the data root lives as long as
/// the rehearsal). `ca` is the rehearsal's CA, which the plugin daemon's
/// stand-in trusts.
pub fn build(engine: &Engine, pgvector: &Path, ca: &Path) {
    let mut bases = Vec::new();
    for suite in [Suite::Bookworm, Suite::Trixie] {
        let (tar, base) = rootfs(suite);
        if !engine.docker(&["image", "inspect", &base]).status.success() {
            engine.docker_ok(&["import", tar.to_str().unwrap(), &base]);
        }
        bases.push((suite, base));
    }
    let sources = crate::support::repo().join("tests/rehearsal/images");
    let contexts = engine.work.join("contexts");
    for &(role, suite) in ROLES {
        let base = &bases.iter().find(|(s, _)| *s == suite).unwrap().1;
        let ctx = contexts.join(role);
        std::fs::create_dir_all(&ctx).unwrap();
        must(&[
            "cp",
            "-a",
            &format!("{}/.", sources.join(role).display()),
            ctx.to_str().unwrap(),
        ]);
        if role.starts_with("dify-") {
            // The stand-ins' one program.
            std::fs::copy(sources.join("standin.py"), ctx.join("standin.py")).unwrap();
        }
        if role == "dify-plugin-daemon" {
            // The daemon reaches the LLM endpoint, whose certificate is from
            // the rehearsal's CA: trusted as an operator would add theirs.
            std::fs::copy(ca, ctx.join("rehearsal-ca.crt")).unwrap();
        }
        if role == "postgres" {
            must(&[
                "cp",
                "-a",
                &format!("{}/.", pgvector.display()),
                ctx.join("pgvector").to_str().unwrap(),
            ]);
        }
        engine.docker_ok(&[
            "build",
            "--quiet",
            "--build-arg",
            &format!("BASE={base}"),
            "--tag",
            &format!("dify-cfg-rehearsal/{role}:latest"),
            ctx.to_str().unwrap(),
        ]);
    }
}

/// The prefix of the machine's Python 3.12, which dify-api.sh puts into the
/// api image: DIFY_CFG_PYTHON312, or pyenv's 3.12.1.
pub fn python312() -> Option<PathBuf> {
    let prefix = match std::env::var_os("DIFY_CFG_PYTHON312") {
        Some(p) => PathBuf::from(p),
        None => {
            let out = std::process::Command::new("pyenv")
                .arg("root")
                .output()
                .ok()?;
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("versions/3.12.1")
        }
    };
    prefix.join("bin/python3.12").exists().then_some(prefix)
}

/// The settings of the api image as the site's generated api.Dockerfile
/// gives them (ENV, WORKDIR, USER, EXPOSE, ENTRYPOINT and LABEL of its
/// `base` and `production` stages), for `docker import --change`; with the
/// PATH of the Python base image first, which the Dockerfile's PATH extends.
/// The file system dify-api.sh lays out must be where these point: the
/// app folder and the entrypoint are checked.
pub fn api_settings(dockerfile: &str) -> Vec<String> {
    const KEPT: [&str; 6] = ["ENV", "WORKDIR", "USER", "EXPOSE", "ENTRYPOINT", "LABEL"];
    let instructions = crate::build_rehearsal::model::instructions(dockerfile);
    let in_image = |i: &&Instr| i.stage == "base" || i.stage == "production";
    let mut settings =
        vec!["ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string()];
    settings.extend(
        instructions
            .iter()
            .filter(in_image)
            .filter(|i| KEPT.contains(&i.keyword.as_str()))
            .map(|i| format!("{} {}", i.keyword, i.args)),
    );
    let entrypoint = instructions.iter().any(|i| {
        i.stage == "production" && i.keyword == "COPY" && i.args.ends_with(" /entrypoint.sh")
    });
    assert!(
        entrypoint && settings.iter().any(|s| s == "WORKDIR /app/api"),
        "the rehearsal lays out /app/api and /entrypoint.sh; the generated api.Dockerfile says otherwise:\n{settings:#?}"
    );
    settings
}

/// Dify's own api image (api, worker and beat, by MODE) for `release`: its
/// file system is made once and cached by tests/rehearsal/dify-api.sh (the
/// bookworm root file system, the machine's Python 3.12, the release's
/// source and its locked dependencies), imported with the settings of the
/// site's generated api.Dockerfile as `dify-cfg-rehearsal/dify-api:<release>`.
pub fn build_api(engine: &Engine, reference: &Path, release: &str, dockerfile: &str) {
    let args = api_import(reference, release, dockerfile);
    engine.docker_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
}

/// [`build_api`] on a thread of its own (the import writes 3 GB, while the
/// site runs on the engine); join it before the image is needed.
pub fn build_api_in_background(
    engine: &Engine,
    reference: &Path,
    release: &str,
    dockerfile: &str,
) -> std::thread::JoinHandle<()> {
    let mut docker = engine.command();
    let (reference, release, dockerfile) = (
        reference.to_path_buf(),
        release.to_string(),
        dockerfile.to_string(),
    );
    std::thread::spawn(move || {
        let args = api_import(&reference, &release, &dockerfile);
        let out = docker
            .args(&args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("cannot run docker");
        assert!(
            out.status.success(),
            "docker {} failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    })
}

/// The `docker import` of the api image of `release` (its file system
/// made or found in the cache first).
fn api_import(reference: &Path, release: &str, dockerfile: &str) -> Vec<String> {
    let (rootfs, _) = rootfs(Suite::Bookworm);
    let script = crate::support::repo().join("tests/rehearsal/dify-api.sh");
    let python = python312().expect("checked by the prerequisites");
    let out = std::process::Command::new("sh")
        .arg(&script)
        .args([
            release,
            reference.to_str().unwrap(),
            rootfs.to_str().unwrap(),
        ])
        .env("DIFY_CFG_PYTHON312", &python)
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "tests/rehearsal/dify-api.sh failed");
    let tar = String::from_utf8(out.stdout).unwrap();
    let mut args = vec!["import".to_string()];
    for change in api_settings(dockerfile) {
        args.extend(["--change".to_string(), change]);
    }
    args.extend([
        tar.trim().to_string(),
        format!("dify-cfg-rehearsal/dify-api:{release}"),
    ]);
    args
}

/// Tag the rehearsal's images with the references a compose file of Dify
/// `release` names. A service the rehearsal has no image for fails the
/// rehearsal: it says so rather than run the site without it.
pub fn tag_for(engine: &Engine, compose: &Path, release: &str) {
    for (service, image) in compose_images(compose) {
        let role = role(&service).unwrap_or_else(|| {
            panic!("the rehearsal has no image for service {service} ({image})")
        });
        // Dify's own image is the release's; the stand-ins serve every one.
        let tag = if role == "dify-api" {
            release
        } else {
            "latest"
        };
        engine.docker_ok(&["tag", &format!("dify-cfg-rehearsal/{role}:{tag}"), &image]);
    }
}

/// The api image's settings are read from the generated Dockerfile (runs
/// without root: the rehearsal itself may be skipped here).
#[test]
fn api_image_settings_come_from_the_generated_dockerfile() {
    let dockerfile = crate::support::example_out().join("clinic-01/docker/api.Dockerfile");
    let settings = api_settings(&std::fs::read_to_string(dockerfile).unwrap());
    for wanted in [
        "WORKDIR /app/api",
        "USER 1001:1001",
        "EXPOSE 5001",
        "ENTRYPOINT [\"/bin/bash\", \"/entrypoint.sh\"]",
    ] {
        assert!(
            settings.iter().any(|s| s == wanted),
            "{wanted}: {settings:#?}"
        );
    }
    // Both stages' environments, the base image's PATH first.
    assert!(settings[0].starts_with("ENV PATH=/usr/local/sbin"));
    assert!(settings.iter().any(|s| s.contains("LC_ALL=C.UTF-8")));
    assert!(
        settings
            .iter()
            .any(|s| s.contains("VIRTUAL_ENV=/app/api/.venv")
                && s.contains("PATH=/app/api/.venv/bin:$PATH"))
    );
    // The packages stage's settings are not the image's.
    assert!(!settings.iter().any(|s| s.contains("UV_LINK_MODE")));
}

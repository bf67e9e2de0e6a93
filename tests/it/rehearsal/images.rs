//! The box's images, made here: Debian root file systems (mmdebstrap from
//! Debian's packages, built once and cached), imported into the box's
//! engine, and one small image per service on top of it (the Dockerfiles in
//! tests/rehearsal/images/), tagged with the exact references the
//! generated compose file names. No registry is involved.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::netns::{Engine, must};

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

/// The stand-in images, with the root file system each is built on.
const ROLES: &[(&str, Suite)] = &[
    ("postgres", Suite::Bookworm),
    ("redis", Suite::Bookworm),
    ("nginx", Suite::Trixie),
    ("squid", Suite::Trixie),
    ("dify-api", Suite::Bookworm),
    ("dify-web", Suite::Bookworm),
    ("dify-sandbox", Suite::Bookworm),
    ("dify-plugin-daemon", Suite::Bookworm),
];

/// Which stand-in image serves each service of a compose file.
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

/// What each stand-in is not, against the image it stands for.
pub const DIFFERENCES: &[&str] = &[
    "dify-api, worker, beat, web, sandbox, plugin daemon: stand-ins (tests/rehearsal/images/standin.py), not Dify's programs: same ports, health endpoints, users and volumes; they make the connections the real services make at start and answer every route with their own name",
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

/// Import the root file systems and build every stand-in image (once per
/// engine: the data root lives as long as the rehearsal).
pub fn build(engine: &Engine, pgvector: &Path) {
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
            std::fs::copy(sources.join("standin.py"), ctx.join("standin.py")).unwrap();
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

/// Tag the stand-ins with the references a compose file names. A service
/// the rehearsal has no stand-in for fails the rehearsal: it says so
/// rather than run the site without it.
pub fn tag_for(engine: &Engine, compose: &Path) {
    for (service, image) in compose_images(compose) {
        let role = role(&service).unwrap_or_else(|| {
            panic!("the rehearsal has no stand-in for service {service} ({image})")
        });
        engine.docker_ok(&["tag", &format!("dify-cfg-rehearsal/{role}:latest"), &image]);
    }
}

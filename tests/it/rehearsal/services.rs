//! What the running services run with: each container's memory limit as
//! Docker and the kernel enforce it, PostgreSQL's settings and pgvector,
//! Redis's memory policy and password, Dify's migrations and its Celery
//! worker and beat, and the connections the stand-ins made at start with
//! the generated environment.

use std::path::Path;

use super::matrix::Expect;
use super::netns::Engine;
use super::probes::Row;

fn row(from: &str, probe: String, expected: String, observed: String) -> Row {
    Row {
        from: from.to_string(),
        probe,
        expected,
        observed,
    }
}

fn compose_command(doc: &serde_yaml_ng::Value, service: &str) -> Vec<String> {
    doc["services"][service]["command"]
        .as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The memory limit of a container as the kernel holds it (cgroup v1 or
/// v2, Docker's cgroupfs driver).
fn cgroup_limit(id: &str) -> String {
    for path in [
        format!("/sys/fs/cgroup/memory/docker/{id}/memory.limit_in_bytes"),
        format!("/sys/fs/cgroup/docker/{id}/memory.max"),
    ] {
        if let Ok(s) = std::fs::read_to_string(&path) {
            return s.trim().to_string();
        }
    }
    "not found".into()
}

fn memory_rows(x: &Expect, engine: &Engine, project: &str) -> Vec<Row> {
    x.memory
        .iter()
        .map(|(service, bytes)| {
            let container = format!("{project}-{service}-1");
            let out = engine.docker_ok(&[
                "inspect",
                "--format",
                "{{.Id}} {{.HostConfig.Memory}}",
                &container,
            ]);
            let (id, docker) = out.trim().split_once(' ').unwrap_or(("", "?"));
            row(
                &format!("container {service}"),
                "memory limit (docker, kernel cgroup)".into(),
                format!("{bytes}, {bytes}"),
                format!("{docker}, {}", cgroup_limit(id)),
            )
        })
        .collect()
}

fn psql(engine: &Engine, project: &str, db: &str, sql: &str) -> String {
    psql_at(&engine.host(), project, db, sql).unwrap_or_else(|e| format!("error: {e}"))
}

/// psql as the superuser in the PostgreSQL container of `project` on the
/// engine at `host` (a thread of its own can call it): the output, or what
/// psql said when it failed.
pub(super) fn psql_at(host: &str, project: &str, db: &str, sql: &str) -> Result<String, String> {
    let out = super::netns::in_box_command("docker")
        .env("DOCKER_HOST", host)
        .args(["exec", &format!("{project}-db_postgres-1")])
        .args(["psql", "-U", "postgres", "-d", db, "-v", "ON_ERROR_STOP=1"])
        .args(["-Atc", sql])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("cannot run docker");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// The migrations a database is at.
pub(super) const ALEMBIC_VERSION: &str = "SELECT string_agg(version_num, ',') FROM alembic_version";

/// The head of a release's migrations: the one revision no other revision
/// names as its parent (api/migrations/versions in the release's source).
pub(super) fn migrations_head(reference: &Path, release: &str) -> String {
    let dir = reference.join(format!("dify/{release}/source/api/migrations/versions"));
    let quoted = |line: &str| -> Vec<String> {
        line.split(['\'', '"'])
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    };
    let (mut revisions, mut parents) = (Vec::new(), std::collections::BTreeSet::new());
    for entry in std::fs::read_dir(&dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
        for line in text.lines() {
            if line.starts_with("revision =") {
                revisions.extend(quoted(line));
            } else if line.starts_with("down_revision =") {
                parents.extend(quoted(line));
            }
        }
    }
    let heads: Vec<String> = revisions
        .into_iter()
        .filter(|r| !parents.contains(r))
        .collect();
    assert_eq!(heads.len(), 1, "{}: heads {heads:?}", dir.display());
    heads[0].clone()
}

fn postgres_rows(
    engine: &Engine,
    project: &str,
    compose: &serde_yaml_ng::Value,
    release: &str,
    migrations_head: &str,
) -> Vec<Row> {
    let mut rows = Vec::new();
    let command = compose_command(compose, "db_postgres");
    for pair in command.windows(2).filter(|w| w[0] == "-c") {
        let (key, value) = pair[1].split_once('=').unwrap();
        rows.push(row(
            "container db_postgres",
            format!("SHOW {key}"),
            value.to_string(),
            psql(engine, project, "dify", &format!("SHOW {key}")),
        ));
    }
    rows.push(row(
        "container db_postgres",
        "SHOW server_encoding".into(),
        "UTF8".into(),
        psql(engine, project, "dify", "SHOW server_encoding"),
    ));
    rows.push(row(
        "container db_postgres",
        "pgvector extension (created by Dify's PGVector with PGVECTOR_*)".into(),
        super::images::PGVECTOR.into(),
        psql(
            engine,
            project,
            "dify",
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'",
        ),
    ));
    rows.push(row(
        "container db_postgres",
        format!("alembic_version after the api's migrations (Dify {release})"),
        migrations_head.to_string(),
        psql(engine, project, "dify", ALEMBIC_VERSION),
    ));
    rows.push(row(
        "container db_postgres",
        "rows written at start by the plugin daemon (its own database)".into(),
        "plugin_daemon".into(),
        psql(
            engine,
            project,
            "dify_plugin",
            "SELECT string_agg(DISTINCT service, ',') FROM rehearsal_starts",
        ),
    ));
    rows
}

fn redis_bytes(value: &str) -> String {
    let v = value.to_ascii_lowercase();
    let (n, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len()));
    let n: u64 = n.parse().unwrap();
    let factor = match unit {
        "" | "b" => 1,
        "kb" => 1024,
        "mb" => 1024 * 1024,
        "gb" => 1024 * 1024 * 1024,
        other => panic!("unit {other}"),
    };
    (n * factor).to_string()
}

fn redis_rows(engine: &Engine, project: &str, compose: &serde_yaml_ng::Value) -> Vec<Row> {
    let container = format!("{project}-redis-1");
    let command = compose_command(compose, "redis");
    let arg = |name: &str| {
        command
            .windows(2)
            .find(|w| w[0] == name)
            .map(|w| w[1].clone())
            .unwrap_or_default()
    };
    let config = |key: &str| {
        let out = engine.docker(&["exec", &container, "redis-cli", "config", "get", key]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines().nth(1).unwrap_or("").to_string()
    };
    let unauthenticated = engine.docker(&[
        "exec",
        "-e",
        "REDISCLI_AUTH=",
        &container,
        "redis-cli",
        "ping",
    ]);
    let answer = String::from_utf8_lossy(&unauthenticated.stdout)
        .trim()
        .to_string();
    vec![
        row(
            "container redis",
            "CONFIG GET maxmemory".into(),
            redis_bytes(&arg("--maxmemory")),
            config("maxmemory"),
        ),
        row(
            "container redis",
            "CONFIG GET maxmemory-policy".into(),
            arg("--maxmemory-policy"),
            config("maxmemory-policy"),
        ),
        row(
            "container redis",
            "PING without the password".into(),
            "refused (NOAUTH)".into(),
            if answer.starts_with("NOAUTH") {
                "refused (NOAUTH)".into()
            } else {
                format!("answered {answer}")
            },
        ),
    ]
}

/// Dify's Celery: the worker consuming the queues Dify's entrypoint names,
/// beat scheduling (their own log lines).
fn celery_rows(engine: &Engine, project: &str) -> Vec<Row> {
    let logs: std::collections::BTreeMap<&str, String> = ["worker", "worker_beat"]
        .into_iter()
        .map(|s| (s, engine.logs(&format!("{project}-{s}-1"))))
        .collect();
    [
        (
            "worker",
            "Celery worker connected to the broker (CELERY_BROKER_URL)",
            "Connected to redis://",
        ),
        ("worker", "Celery worker ready", "ready."),
        ("worker_beat", "Celery beat started", "beat: Starting..."),
    ]
    .into_iter()
    .map(|(service, what, needle)| {
        let said = if logs[service].contains(needle) {
            "logged"
        } else {
            "did not log"
        };
        row(
            &format!("container {service}"),
            what.into(),
            format!("logged {needle:?}"),
            format!("{said} {needle:?}"),
        )
    })
    .collect()
}

pub fn rows(
    x: &Expect,
    engine: &Engine,
    project: &str,
    compose: &Path,
    migrations_head: &str,
) -> Vec<Row> {
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(compose).unwrap()).unwrap();
    let mut rows = memory_rows(x, engine, project);
    rows.extend(postgres_rows(
        engine,
        project,
        &doc,
        &x.release,
        migrations_head,
    ));
    rows.extend(celery_rows(engine, project));
    rows.extend(redis_rows(engine, project, &doc));
    rows
}

//! The backup and restore commands of apply.sh against a real PostgreSQL:
//! a throwaway cluster in a temporary directory (`initdb`, `pg_ctl`, run as
//! an unprivileged user: the test's own, or `nobody` when the test runs as
//! root), with a `docker` stub that runs what apply.sh sends into the db
//! container (`compose exec -T db_postgres sh -c ...`) here, against that
//! cluster, and what it runs with `compose run --entrypoint` here, with the
//! containers' `/app/` under a directory of the test. An upgrade whose
//! `compose up` changes the data (a stand-in for its migrations) and then
//! fails is rolled back: every table's row count and checksum, and every
//! storage file, are as before it.
//!
//! Needs PostgreSQL's server programs (`/usr/lib/postgresql/<n>/bin`:
//! Debian's `postgresql-15`, which `.ci/run` installs); skips and says so
//! without them.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{World, have_tools, text};
use crate::support;

/// `docker` for this test (see the module's doc). `$MIGRATE_ON` names the
/// `compose up` that runs `$MIGRATION` in database dify, changes the
/// storage, and fails.
const DOCKER: &str = r#"#!/bin/sh
printf '%s\n' "docker $*" >>"$STUB_LOG"
if [ "$1" = info ]; then
    printf '%s\n' '{"Driver":"iptables","Info":[]}'
    exit 0
fi
call="$*"
# compose --project-directory DIR -f FILE VERB ...
shift 5
verb=$1
shift
export PGHOST="$PG_SOCKET" PATH="$PG_BIN:$PATH" POSTGRES_USER=postgres
case $verb in
exec)
    # -T SERVICE COMMAND...
    shift 2
    exec "$@"
    ;;
run)
    # --rm --no-deps -T --entrypoint ENTRYPOINT SERVICE ARGS...
    entrypoint=$5
    shift 6
    n=$#
    for arg in "$@"; do
        case $arg in /app/*) arg=$FAKE_ROOT$arg ;; esac
        set -- "$@" "$arg"
    done
    shift "$n"
    exec "$entrypoint" "$@"
    ;;
up)
    case $call in
    *"$MIGRATE_ON"*)
        psql --no-psqlrc --quiet --set=ON_ERROR_STOP=1 --username=postgres --dbname=dify --command="$MIGRATION" >&2 || exit 2
        psql --no-psqlrc --quiet --set=ON_ERROR_STOP=1 --username=postgres --dbname=dify_plugin --command='DROP TABLE plugins' >&2 || exit 2
        printf 'written by the upgrade\n' >"$FAKE_ROOT/app/api/storage/upload_files/a.txt"
        printf 'new\n' >"$FAKE_ROOT/app/api/storage/upload_files/new.txt"
        rm -rf "$FAKE_ROOT/app/storage/cwd"
        echo "the upgrade's api never gets healthy" >&2
        exit 1
        ;;
    esac
    ;;
esac
exit 0
"#;

/// What the upgrade's stand-in migrations do to database dify.
const MIGRATION: &str = "ALTER TABLE apps ADD COLUMN migrated integer; \
    UPDATE apps SET name = name || ' (migrated)'; DELETE FROM apps WHERE id % 3 = 0; \
    CREATE TABLE alembic_new (x integer); DROP VIEW app_names";

/// The server programs of the newest PostgreSQL here.
fn server_bin() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            let all = [
                "initdb",
                "pg_ctl",
                "postgres",
                "psql",
                "pg_dump",
                "pg_dumpall",
                "pg_restore",
                "dropdb",
            ]
            .iter()
            .all(|p| bin.join(p).is_file());
            all.then_some((version, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, bin)| bin)
}

/// A throwaway cluster, stopped when dropped.
struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    socket: PathBuf,
    /// `setpriv` arguments that run a server program as an unprivileged
    /// user when the test is root; empty otherwise.
    drop_root: Vec<String>,
}

impl Cluster {
    fn start(dir: &Path, bin: PathBuf) -> Cluster {
        let root = rustix::process::geteuid().is_root();
        let data = dir.join("pgdata");
        let socket = dir.join("pgsocket");
        fs::create_dir_all(&socket).unwrap();
        let drop_root: Vec<String> = if root {
            // nobody: the server refuses to run as root.
            for d in [dir, socket.as_path()] {
                std::os::unix::fs::chown(d, Some(65534), Some(65534)).unwrap();
            }
            fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
            [
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--",
            ]
            .map(String::from)
            .to_vec()
        } else {
            Vec::new()
        };
        let cluster = Cluster {
            bin,
            data,
            socket,
            drop_root,
        };
        cluster.server(&[
            "initdb",
            "--pgdata",
            cluster.data.to_str().unwrap(),
            "--username=postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        let options = format!(
            "-k {} -c listen_addresses= -c fsync=off",
            cluster.socket.display()
        );
        cluster.server(&[
            "pg_ctl",
            "--pgdata",
            cluster.data.to_str().unwrap(),
            "--log",
            dir.join("server.log").to_str().unwrap(),
            "--options",
            &options,
            "--wait",
            "start",
        ]);
        cluster
    }

    /// A server program, to run as the unprivileged user.
    fn as_user(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        match self.drop_root.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(&program);
                c
            }
            None => Command::new(&program),
        }
    }

    /// A server program, run as the unprivileged user; it must succeed.
    fn server(&self, args: &[&str]) {
        let out = self.as_user(args[0]).args(&args[1..]).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out));
    }

    /// One psql command in `db`; its unaligned output.
    fn sql(&self, db: &str, command: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["--no-psqlrc", "--tuples-only", "--no-align", "--quiet"])
            .args([
                "--set=ON_ERROR_STOP=1",
                "--username=postgres",
                "--dbname",
                db,
            ])
            .arg("--host")
            .arg(&self.socket)
            .args(["--command", command])
            .output()
            .unwrap();
        assert!(out.status.success(), "{command}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Every table and view of both databases with its row count and a
    /// checksum of its rows in key order.
    fn state(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for db in ["dify", "dify_plugin"] {
            let tables = self.sql(
                db,
                "SELECT string_agg(table_name, ' ' ORDER BY table_name) FROM information_schema.tables WHERE table_schema = 'public'",
            );
            out.insert(format!("{db} tables"), tables.clone());
            for table in tables.split_whitespace() {
                let sum = self.sql(
                    db,
                    &format!(
                        "SELECT count(*) || ' ' || md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t"
                    ),
                );
                out.insert(format!("{db}.{table}"), sum);
            }
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .as_user("pg_ctl")
            .arg("--pgdata")
            .arg(&self.data)
            .args(["--mode=immediate", "--wait", "stop"])
            .output();
    }
}

#[test]
fn a_failed_upgrade_is_rolled_back_to_the_dumped_databases_and_storage() {
    if !have_tools() {
        return;
    }
    let bin = server_bin();
    if !support::available(
        "PostgreSQL's server programs",
        bin.is_some(),
        "no /usr/lib/postgresql/<n>/bin with initdb, pg_ctl, pg_dump and pg_restore (.ci/run installs postgresql-15)",
    ) {
        return;
    }
    let w = World::before_upgrade();
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), bin.unwrap());
    let docker = w.stubs.join("docker");
    fs::remove_file(&docker).unwrap();
    fs::write(&docker, DOCKER).unwrap();
    fs::set_permissions(&docker, fs::Permissions::from_mode(0o755)).unwrap();

    // The site's data: two databases, a table with a sequence, a view, and
    // files on both storage volumes.
    cluster.sql("postgres", "CREATE DATABASE dify");
    cluster.sql("postgres", "CREATE DATABASE dify_plugin");
    cluster.sql(
        "dify",
        "CREATE TABLE apps (id serial PRIMARY KEY, name text NOT NULL, payload bytea); \
         INSERT INTO apps (name, payload) SELECT 'app ' || i, sha256(i::text::bytea) FROM generate_series(1, 500) i; \
         CREATE VIEW app_names AS SELECT name FROM apps",
    );
    cluster.sql(
        "dify_plugin",
        "CREATE TABLE plugins (id text PRIMARY KEY, manifest jsonb); \
         INSERT INTO plugins VALUES ('langgenius/openai', '{\"version\": \"0.2.1\"}')",
    );
    let fake_root = dir.path().join("containers");
    let files = [
        ("app/api/storage/upload_files/a.txt", "an upload\n"),
        (
            "app/api/storage/privkeys/tenant/private.pem",
            "not a real key\n",
        ),
        (
            "app/storage/cwd/langgenius/openai/main.py",
            "print('plugin')\n",
        ),
    ];
    for (path, content) in files {
        let path = fake_root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }
    let socket = cluster.socket.to_str().unwrap().to_string();
    let pg_bin = cluster.bin.to_str().unwrap().to_string();
    let root = fake_root.to_str().unwrap().to_string();
    let env = |migrate_on: &str| {
        vec![
            ("PG_SOCKET", socket.clone()),
            ("PG_BIN", pg_bin.clone()),
            ("FAKE_ROOT", root.clone()),
            ("MIGRATE_ON", migrate_on.to_string()),
            ("MIGRATION", MIGRATION.to_string()),
        ]
    };
    let run = |args: &[&str], migrate_on: &str| {
        let env = env(migrate_on);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut all = vec![("DIFY_CFG_CONFIRM_TIMEOUT", "30")];
        all.extend(env);
        w.run(args, &all)
    };

    let (out, _) = run(&[], "nothing");
    assert!(out.status.success(), "{}", text(&out));
    let before = cluster.state();
    let storage = support::snapshot(&fake_root);
    assert_eq!(before["dify.apps"].split(' ').next(), Some("500"));

    let upgrade = w.commit_release("1.16.1");
    let (out, log) = run(
        &[],
        &format!("releases/{upgrade}/compose.yaml up -d --remove"),
    );
    assert_eq!(out.status.code(), Some(1), "{}\n{log}", text(&out));
    let said = text(&out);
    assert!(said.contains("restored the backup"), "{said}\n{log}");
    let backup = w.backups().pop().unwrap();
    // pg_dump's custom format, one file per database.
    for db in ["dify", "dify_plugin", "postgres"] {
        let dump = fs::read(backup.join(format!("db-{db}.dump"))).unwrap();
        assert!(dump.starts_with(b"PGDMP"), "db-{db}.dump");
    }
    let after = cluster.state();
    assert_eq!(after, before, "the databases after the rollback");
    assert_eq!(
        support::snapshot(&fake_root),
        storage,
        "the storage after the rollback"
    );
    assert!(after["dify tables"].contains("app_names"));
    assert!(!after["dify tables"].contains("alembic_new"));

    // An operator's restore of the same backup changes nothing more.
    cluster.sql(
        "dify",
        "INSERT INTO apps (name) VALUES ('written after the rollback')",
    );
    let (out, log) = run(&["--restore", backup.to_str().unwrap()], "nothing");
    assert!(out.status.success(), "{}\n{log}", text(&out));
    assert_eq!(cluster.state(), before);
    assert_eq!(support::snapshot(&fake_root), storage);
}

//! The upgrade drill. The site starts held back on the release before the
//! fleet's (a `[dify] version` in its site file) and gets the smoke
//! workload's data through Dify's api. Then its pull agent applies two
//! upgrades to the fleet's release:
//!
//! - one that fails: the new release's migrations run (seen in
//!   `alembic_version` while the agent waits), then its api never becomes
//!   healthy (gunicorn is given a worker class that does not exist, a
//!   mistake the compiler does not catch). The agent rolls back and
//!   restores the backup it took: every table of Dify's database (its row
//!   count and a checksum of its rows), the api's storage, the firewall and
//!   the containers are as they were before;
//! - the one that works, in the same branch move as an IPv6 LAN and TLS at
//!   nginx: a new backup, the migrations, every service healthy, and the
//!   workload's app, file, document and hit test served by the new release.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::matrix::Expect;
use super::netns::Engine;
use super::probes::Row;
use super::{Rehearsal, images, services, workload};
use crate::support;
use crate::support::output_text as text;

/// The seconds the failing upgrade is given to become healthy: enough for
/// the new release's api to start and run its migrations (which the drill
/// must see) on a busy machine; it never becomes healthy.
const FAILING_WINDOW: u32 = 240;

/// The mistake that makes the failing upgrade fail after its migrations.
const FAILING_ENV: &str = "[env]\nSERVER_WORKER_CLASS = \"gevent.nonexistent\"\n\n";

/// A table the rehearsal itself writes at every start of a service (the
/// plugin daemon's stand-in records its starts), left out of the
/// comparison: the restore starts the services again.
const WRITTEN_AT_START: &[&str] = &["public.rehearsal_starts"];

/// The line that holds the site back.
fn held(from: &str) -> String {
    format!("[dify]\nversion = \"{from}\"\n\n")
}

/// The releases the site moves between: it starts on
/// DIFY_CFG_REHEARSAL_FROM (`previous`: the release before the fleet's)
/// and is upgraded to the fleet's; unset, it starts on the fleet's and
/// nothing is upgraded. Held back, the site file gets a `[dify] version`,
/// and the site's api.Dockerfile on the fleet's release (the settings of
/// that release's image) comes with the two.
pub fn hold_back(config: &Path, work: &Path, site: &str) -> (String, String, String) {
    use dify_cfg::internals::SUPPORTED_RELEASES;
    use dify_cfg::internals::dify_facts::compat::release_order;
    let to = Expect::load(config, site).release;
    let from = match std::env::var("DIFY_CFG_REHEARSAL_FROM").as_deref() {
        Ok("previous") => {
            let mut older: Vec<&str> = SUPPORTED_RELEASES
                .iter()
                .copied()
                .filter(|r| release_order(r, &to).is_lt())
                .collect();
            older.sort_by(|a, b| release_order(a, b));
            older
                .last()
                .unwrap_or_else(|| panic!("no release before the fleet's ({to}) to upgrade from"))
                .to_string()
        }
        Ok(release) if !release.is_empty() => release.to_string(),
        _ => to.clone(),
    };
    if from == to {
        return (from, to, String::new());
    }
    let out = work.join("fleet-release");
    support::assert_ok(
        support::dify_cfg(
            &["build", "--site", site, "--out", out.to_str().unwrap()],
            config,
        ),
        "dify-cfg build",
    );
    let dockerfile = std::fs::read_to_string(out.join(site).join("docker/api.Dockerfile")).unwrap();
    std::fs::remove_dir_all(&out).unwrap();
    let path = config.join(format!("sites/{site}.toml"));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\n[network]\n") && !text.contains("[dify]"));
    std::fs::write(
        &path,
        text.replacen("\n[network]\n", &format!("\n{}[network]\n", held(&from)), 1),
    )
    .unwrap();
    (from, to, dockerfile)
}

/// The upgrade that fails, rolled back with its backup restored.
pub fn failing_upgrade_is_restored(r: &Rehearsal, site: &str) {
    let (from_head, to_head) = (
        services::migrations_head(&r.reference, &r.from),
        services::migrations_head(&r.reference, &r.to),
    );
    assert_eq!(alembic(&r.engine, site), from_head);
    let before = (r.firewall(), r.containers());
    let (tables_before, files_before) = (tables(&r.engine, site), storage(&r.engine, site));
    let what = format!(
        "Dify {}, with a gunicorn worker class that does not exist",
        r.to
    );
    r.change_site(site, &what, |t| {
        let t = t.replacen(&held(&r.from), "", 1);
        t.replacen("\n[network]\n", &format!("\n{FAILING_ENV}[network]\n"), 1)
    });
    images::tag_for(&r.engine, &r.site_file(site, "compose.yaml"), &r.to);
    let watch = Watch::start(&r.engine, site);
    let out = r.apply_within(FAILING_WINDOW);
    let seen = watch.stop();
    let said = text(&out);
    assert!(
        !out.status.success(),
        "an upgrade whose api never became healthy was kept:\n{said}"
    );
    for step in [
        "backed up to",
        "rolling back",
        "restore: database dify dropped and recreated",
        "restored the backup",
    ] {
        assert!(
            said.contains(step),
            "the agent did not log {step:?}:\n{said}"
        );
    }
    assert!(
        seen.contains_key(&to_head),
        "Dify {}'s migrations did not run before the upgrade failed (alembic_version went through {seen:?}): the restore was not put to the test\n{said}",
        r.to
    );
    assert_eq!(
        alembic(&r.engine, site),
        from_head,
        "the database is not back at Dify {}'s migrations",
        r.from
    );
    let tables_after = tables(&r.engine, site);
    let differ: Vec<String> = tables_before
        .keys()
        .chain(tables_after.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|t| tables_before.get(*t) != tables_after.get(*t))
        .map(|t| {
            format!(
                "{t}: before {:?}, after {:?}",
                tables_before.get(t),
                tables_after.get(t)
            )
        })
        .collect();
    assert!(
        differ.is_empty(),
        "the restore did not bring every table back:\n{}\n{said}",
        differ.join("\n")
    );
    assert_eq!(
        files_before,
        storage(&r.engine, site),
        "the api's storage is not as before"
    );
    assert_eq!(
        before,
        (r.firewall(), r.containers()),
        "the rollback left the box changed:\n{said}"
    );
    eprintln!(
        "rehearsal: {} tables equal after the restore; alembic_version went through {seen:?} (first seen, seconds into the apply)",
        tables_after.len()
    );
}

/// The upgrade that works (or, on the fleet's release, the move alone), with
/// `also` changed in the same commit: a new backup, the new release's
/// migrations, and the workload's data read back through it (the rows of
/// the report).
pub fn upgrade(r: &Rehearsal, site: &str, also: impl FnOnce(&str) -> String) -> Vec<Row> {
    let what = if r.from == r.to {
        "An IPv6 LAN and TLS at nginx".to_string()
    } else {
        format!("Dify {}, an IPv6 LAN and TLS at nginx", r.to)
    };
    r.change_site(site, &what, |t| {
        also(
            &t.replacen(FAILING_ENV, "", 1)
                .replacen(super::stages::FAILING_RELEASE_ENV, "", 1)
                .replacen(&held(&r.from), "", 1),
        )
    });
    images::tag_for(&r.engine, &r.site_file(site, "compose.yaml"), &r.to);
    let said = r.apply_ok(&what);
    let backup = if r.from == r.to {
        "same release, no backup"
    } else {
        "backed up to"
    };
    assert!(said.contains("applied") && said.contains(backup), "{said}");
    assert_eq!(
        alembic(&r.engine, site),
        services::migrations_head(&r.reference, &r.to)
    );
    workload::kept(&Expect::load(&r.config, site), &r.work)
}

/// psql in the site's PostgreSQL container, as its superuser.
fn psql(engine: &Engine, site: &str, db: &str, sql: &str) -> Result<String, String> {
    services::psql_at(&engine.host(), site, db, sql)
}

fn alembic(engine: &Engine, site: &str) -> String {
    psql(engine, site, "dify", services::ALEMBIC_VERSION)
        .unwrap_or_else(|e| panic!("alembic_version: {e}"))
}

/// Every table of every database on the site's PostgreSQL (Dify's and the
/// plugin daemon's): `database.schema.table` to its row count and the md5
/// of its rows as text, in order.
fn tables(engine: &Engine, site: &str) -> BTreeMap<String, String> {
    let dbs = psql(
        engine,
        site,
        "postgres",
        "SELECT datname FROM pg_database WHERE NOT datistemplate AND datname <> 'postgres' ORDER BY 1",
    )
    .unwrap_or_else(|e| panic!("the databases: {e}"));
    let sql = "SELECT format('%s.%s %s %s', n.nspname, c.relname, \
                 (xpath('/row/n/text()', x))[1], (xpath('/row/s/text()', x))[1]) \
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, \
               LATERAL query_to_xml(format('SELECT count(*) AS n, \
                 md5(coalesce(string_agg(t::text, chr(10) ORDER BY t::text), '''')) AS s \
                 FROM %I.%I t', n.nspname, c.relname), false, true, '') AS x \
               WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
               ORDER BY 1";
    let mut all = BTreeMap::new();
    for db in dbs.lines() {
        let rows = psql(engine, site, db, sql).unwrap_or_else(|e| panic!("{db}: {e}"));
        for line in rows.lines() {
            let (table, sums) = line.split_once(' ').unwrap();
            if !WRITTEN_AT_START.contains(&table) {
                all.insert(format!("{db}.{table}"), sums.to_string());
            }
        }
    }
    assert!(
        all.contains_key("dify.public.apps"),
        "no table apps in Dify's database: {:?}",
        all.keys().collect::<Vec<_>>()
    );
    all
}

/// The api's storage: every file with its sha256.
fn storage(engine: &Engine, site: &str) -> String {
    engine.docker_ok(&[
        "exec",
        &format!("{site}-api-1"),
        "sh",
        "-c",
        "cd /app/api/storage && find . -type f | LC_ALL=C sort | xargs -r sha256sum",
    ])
}

/// The values `alembic_version` goes through while an apply runs, with
/// the second each was first seen (read every second; errors, while the
/// database restarts, are skipped).
struct Watch {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<BTreeMap<String, u64>>,
}

impl Watch {
    fn start(engine: &Engine, site: &str) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, host, site) = (stop.clone(), engine.host(), site.to_string());
        let thread = std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let mut seen = BTreeMap::new();
            while !flag.load(Ordering::Relaxed) {
                if let Ok(v) = services::psql_at(&host, &site, "dify", services::ALEMBIC_VERSION) {
                    seen.entry(v).or_insert(started.elapsed().as_secs());
                }
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
            seen
        });
        Watch { stop, thread }
    }

    fn stop(self) -> BTreeMap<String, u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the watch of alembic_version")
    }
}

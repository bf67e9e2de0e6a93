//! Upgrades: the backup the agent takes before it applies a tree of another
//! Dify release, its restore when that tree fails its confirmation, the
//! operator's `--restore`, and the report of the applied commit. With the
//! stubs of `apply.rs`; a tree of another release is the same tree with
//! its manifest's "dify-version" changed (manifest.json lists no sum of
//! itself). `postgres.rs` runs the same commands against a real PostgreSQL.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use sha2::{Digest, Sha256};

use super::{World, calls, have_tools, text};
use crate::support::git;

/// The release the site runs before the upgrade (the example fleet runs
/// the one after it, `TO`).
pub(super) const FROM: &str = "1.16.0";
const TO: &str = "1.16.1";
const APPLIED_REF: &str = "refs/dify-cfg/applied/sites/clinic-01";
/// How each PostgreSQL command in the db container starts: the container's
/// own user and password, by name.
const PG_ENV: &str = "PGUSER=${POSTGRES_USER:-postgres} PGPASSWORD=${POSTGRES_PASSWORD-} && export PGUSER PGPASSWORD &&";

impl World {
    /// [`World::new`] with clinic-01's tree as a tree of Dify [`FROM`].
    pub(super) fn before_upgrade() -> World {
        let w = World::new();
        w.commit_release(FROM);
        w
    }

    /// Commit the tree as a tree of Dify `release`.
    pub(super) fn commit_release(&self, release: &str) -> String {
        let path = self.repo.join("manifest.json");
        let manifest = fs::read_to_string(&path).unwrap();
        let line = manifest
            .lines()
            .find(|l| l.starts_with("  \"dify-version\": "))
            .expect("manifest.json names the release")
            .to_string();
        let new = format!("  \"dify-version\": \"{release}\",");
        fs::write(&path, manifest.replacen(&line, &new, 1)).unwrap();
        self.commit(&format!("the tree as Dify {release}"))
    }

    /// The backups on the box, oldest first.
    pub(super) fn backups(&self) -> Vec<PathBuf> {
        let Ok(entries) = fs::read_dir(self.state.join("backups")) else {
            return Vec::new();
        };
        let mut all: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
        all.sort();
        all
    }

    /// Set `KEY=value` in the installed agent.conf.
    pub(super) fn set_conf(&self, key: &str, value: &str) {
        let conf = fs::read_to_string(&self.conf).unwrap();
        let old = conf
            .lines()
            .find(|l| l.starts_with(&format!("{key}=")))
            .unwrap()
            .to_string();
        fs::write(&self.conf, conf.replace(&old, &format!("{key}={value}"))).unwrap();
    }

    /// `docker compose` on a release of the box, as the log shows it.
    fn compose(&self, commit: &str) -> String {
        let r = self.release(commit);
        let r = r.display();
        format!("docker compose --project-directory {r} -f {r}/compose.yaml")
    }
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// The calls of a run from the first that starts with `from` to the
/// first that starts with `to`, both excluded.
fn between<'a>(log: &'a str, from: &str, to: &str) -> Vec<&'a str> {
    let all = calls(log);
    let start = all.iter().position(|c| c.starts_with(from)).unwrap();
    let end = all.iter().position(|c| c.starts_with(to)).unwrap();
    all[start + 1..end].to_vec()
}

/// The backup calls of an upgrade from the release `old`: the databases
/// listed, the roles and each database dumped, each storage archived,
/// all in the db container or the services of the running release.
fn assert_backup_calls(w: &World, log: &str, old: &str) {
    let o = w.compose(old);
    let got = between(log, "docker compose --project-directory", "iptables-save");
    // The first call in the window is the pull of the new release.
    assert!(got[0].contains(" pull --quiet "), "{log}");
    let pg = PG_ENV;
    let expected = vec![
        format!(
            "{o} exec -T db_postgres sh -c {pg} exec psql --dbname=template1 --no-psqlrc --tuples-only --no-align --set=ON_ERROR_STOP=1 --command='SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1' (secrets=present)"
        ),
        format!(
            "{o} exec -T db_postgres sh -c {pg} exec pg_dumpall --globals-only --database=template1 (secrets=present)"
        ),
        format!(
            "{o} exec -T db_postgres sh -c {pg} exec pg_dump --format=custom --dbname=\"$1\" sh dify (secrets=present)"
        ),
        format!(
            "{o} exec -T db_postgres sh -c {pg} exec pg_dump --format=custom --dbname=\"$1\" sh dify_plugin (secrets=present)"
        ),
        format!(
            "{o} exec -T db_postgres sh -c {pg} exec pg_dump --format=custom --dbname=\"$1\" sh postgres (secrets=present)"
        ),
        format!(
            "{o} run --rm --no-deps -T --entrypoint tar api -C /app/api/storage -cf - . (secrets=present)"
        ),
        format!(
            "{o} run --rm --no-deps -T --entrypoint tar plugin_daemon -C /app/storage -cf - . (secrets=present)"
        ),
    ];
    assert_eq!(got[1..], expected, "\n{log}");
}

#[test]
fn a_release_change_takes_a_backup_first_and_keeps_the_last_few() {
    if !have_tools() {
        return;
    }
    let w = World::before_upgrade();
    let first = w.head();
    let (out, _) = w.apply(30, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("no release runs here yet: no backup"));
    assert!(w.backups().is_empty());

    let upgrade = w.commit_release(TO);
    let (out, log) = w.apply(30, &[]);
    assert!(out.status.success(), "{}\n{log}", text(&out));
    assert_backup_calls(&w, &log, &first);
    let backups = w.backups();
    assert_eq!(backups.len(), 1, "{backups:?}");
    let backup = &backups[0];
    let said = text(&out);
    assert!(
        said.contains(&format!("backed up to {}", backup.display())),
        "{said}"
    );
    // <UTC time>-<from>-to-<to>, root only.
    let name = backup.file_name().unwrap().to_str().unwrap();
    let (time, releases) = name.split_at(26);
    assert_eq!(releases, format!("-{FROM}-to-{TO}"), "{name}");
    assert!(
        time.len() == 26
            && time[..8].bytes().all(|b| b.is_ascii_digit())
            && &time[8..9] == "T"
            && time.ends_with('Z'),
        "{name}"
    );
    assert_eq!(mode(&w.state.join("backups")), 0o700);
    assert_eq!(mode(backup), 0o700);
    let mut files: Vec<String> = fs::read_dir(backup)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "databases",
            "db-dify.dump",
            "db-dify_plugin.dump",
            "db-postgres.dump",
            "globals.sql",
            "manifest",
            "storage-api.tar",
            "storage-plugin_daemon.tar",
        ]
    );
    for file in &files {
        let path = backup.join(file);
        assert_eq!(mode(&path), 0o600, "{file}");
        let bytes = fs::read(&path).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains("not-a-real-secret"),
            "{file} holds the secret"
        );
    }
    let read = |f: &str| fs::read_to_string(backup.join(f)).unwrap();
    assert_eq!(read("databases"), "dify\ndify_plugin\npostgres\n");
    assert_eq!(read("db-dify_plugin.dump"), "dump of dify_plugin\n");
    assert_eq!(read("storage-api.tar"), "archive of /app/api/storage\n");
    // The manifest: the releases, the commits, each file's sum and size.
    let manifest = read("manifest");
    for line in [
        "site clinic-01".to_string(),
        format!("from {FROM}"),
        format!("to {TO}"),
        format!("from-commit {first}"),
        format!("to-commit {upgrade}"),
        "db db_postgres".to_string(),
        "storage api:/app/api/storage,plugin_daemon:/app/storage".to_string(),
    ] {
        assert!(manifest.lines().any(|l| l == line), "{line}:\n{manifest}");
    }
    let listed: Vec<&str> = manifest
        .lines()
        .filter(|l| l.starts_with("file "))
        .collect();
    assert_eq!(listed.len(), files.len() - 1, "{manifest}");
    for file in files.iter().filter(|f| *f != "manifest") {
        let bytes = fs::read(backup.join(file)).unwrap();
        let sum: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let line = format!("file {sum} {} {file}", bytes.len());
        assert!(listed.contains(&line.as_str()), "{line}:\n{manifest}");
    }
    assert!(!log.contains("not-a-real-secret"), "{log}");
    assert!(!w.state.join("upgrading").exists());
    // Nothing is reported without REPORT=yes.
    let refs = git(&w.repo, &["for-each-ref", "refs/dify-cfg/"]);
    assert_eq!(refs, "");

    // The same release again: no backup, no call into the containers.
    w.commit("the same release, another commit");
    let (out, log) = w.apply(30, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("same release, no backup (Dify {TO})")),
        "{}",
        text(&out)
    );
    assert!(
        !log.contains(" exec -T ") && !log.contains(" run --rm "),
        "{log}"
    );
    assert_eq!(w.backups().len(), 1);

    // Down and up again: KEEP_BACKUPS=2 keeps the two most recent.
    w.set_conf("KEEP_BACKUPS", "2");
    let mut commits = Vec::new();
    for release in [FROM, TO, FROM] {
        commits.push(w.commit_release(release));
        let (out, _) = w.apply(30, &[]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let kept = w.backups();
    assert_eq!(kept.len(), 2, "{kept:?}");
    let to_commit = |b: &PathBuf| {
        let m = fs::read_to_string(b.join("manifest")).unwrap();
        m.lines()
            .find_map(|l| l.strip_prefix("to-commit "))
            .unwrap()
            .to_string()
    };
    assert_eq!(to_commit(&kept[0]), commits[1]);
    assert_eq!(to_commit(&kept[1]), commits[2]);
    assert!(kept[1].ends_with(format!(
        "{}-{TO}-to-{FROM}",
        kept[1].file_name().unwrap().to_str().unwrap().split_at(26).0
    )));
}

/// A site whose database is external: only the storage is archived, and
/// the run says whose job the database is.
#[test]
fn an_external_database_is_not_dumped_and_the_run_says_so() {
    if !have_tools() {
        return;
    }
    let w = World::before_upgrade();
    w.set_conf("BACKUP_DB", "none");
    w.set_conf("BACKUP_STORAGE", "api:/app/api/storage");
    assert!(w.apply(30, &[]).0.status.success());
    w.commit_release(TO);
    let (out, log) = w.apply(30, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("the site's database is not on this box (BACKUP_DB=none)"),
        "{}",
        text(&out)
    );
    assert!(!log.contains(" exec -T "), "{log}");
    let backup = w.backups().pop().unwrap();
    let mut files: Vec<String> = fs::read_dir(&backup)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files, ["manifest", "storage-api.tar"]);
}

#[test]
fn a_failed_backup_changes_nothing_and_the_next_run_tries_again() {
    if !have_tools() {
        return;
    }
    let w = World::before_upgrade();
    let first = w.head();
    assert!(w.apply(30, &[]).0.status.success());
    let upgrade = w.commit_release(TO);
    for (env, says) in [
        (
            (
                "STUB_FAIL",
                "pg_dump --format=custom --dbname=\"$1\" sh dify_plugin",
            ),
            "pg_dump of database dify_plugin failed",
        ),
        (
            ("STUB_FAIL", "--entrypoint tar plugin_daemon"),
            "cannot archive /app/storage of the plugin_daemon service",
        ),
        (
            ("STUB_FAIL", "SELECT datname"),
            "cannot list the databases of the db_postgres service",
        ),
        (
            ("STUB_DATABASES", "dify x;y"),
            "one whose name is not plain",
        ),
    ] {
        let (out, log) = w.apply(30, &[env]);
        assert_eq!(out.status.code(), Some(1), "{env:?}: {}", text(&out));
        let said = text(&out);
        assert!(said.contains(says), "{env:?}: {said}");
        assert!(
            said.contains("the backup before the upgrade failed")
                && said.contains("nothing was changed, the next run tries again"),
            "{said}"
        );
        // Neither the firewall nor the containers were touched.
        let changed: Vec<&str> = calls(&log)
            .into_iter()
            .filter(|c| {
                c.starts_with("iptables-save")
                    || (c.contains("-restore --noflush") && !c.contains("--test"))
                    || c.contains(" up ")
                    || c.contains(" stop")
            })
            .collect();
        assert_eq!(changed, Vec::<&str>::new(), "{env:?}\n{log}");
        assert_eq!(w.applied().as_deref(), Some(first.as_str()));
        assert!(!w.state.join("failed").exists(), "not the commit's fault");
        assert!(!w.release(&upgrade).exists());
        assert_eq!(
            w.backups(),
            Vec::<PathBuf>::new(),
            "{env:?}: no partial backup"
        );
        assert!(!w.state.join("upgrading").exists());
    }
    let (out, _) = w.apply(30, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(w.applied().as_deref(), Some(upgrade.as_str()));
    assert_eq!(w.backups().len(), 1);
}

/// The restore's calls, from the stop of the release `stop` to the start
/// of the release `tree` (each waiting `wait` seconds at most), with what
/// each restore was given.
fn restore_calls(w: &World, stop: &str, tree: &str, wait: u32) -> Vec<String> {
    let (s, t) = (w.compose(stop), w.compose(tree));
    let pg = PG_ENV;
    let restore = format!(
        "{pg} dropdb --maintenance-db=template1 --force --if-exists \"$1\" && exec pg_restore --create --exit-on-error --dbname=template1"
    );
    let storage = "cd \"$1\" && find . -mindepth 1 -delete && exec tar -xf -";
    let mut out = vec![
        format!("{s} stop (secrets=present)"),
        format!("{t} up -d --no-deps --wait --wait-timeout {wait} db_postgres (secrets=present)"),
    ];
    for db in ["dify", "dify_plugin", "postgres"] {
        out.push(format!(
            "{t} exec -T db_postgres sh -c {restore} sh {db} (secrets=present)"
        ));
        out.push(format!("    stdin: dump of {db}"));
    }
    for (service, path) in [
        ("api", "/app/api/storage"),
        ("plugin_daemon", "/app/storage"),
    ] {
        out.push(format!(
            "{t} run --rm --no-deps -T --entrypoint sh {service} -c {storage} sh {path} (secrets=present)"
        ));
        out.push(format!("    stdin: archive of {path}"));
    }
    out.push(format!(
        "{t} up -d --remove-orphans --wait --wait-timeout {wait} (secrets=present)"
    ));
    out
}

/// The log from its first line starting with `from` to its end, calls and
/// the stdin lines under them (not the rules files).
fn tail_from(log: &str, from: &str) -> Vec<String> {
    log.lines()
        .skip_while(|l| !l.starts_with(from))
        .filter(|l| !l.starts_with(' ') || l.starts_with("    stdin: "))
        .map(str::to_string)
        .collect()
}

/// The example tree applied, then a tree of Dify `TO` whose `compose up`
/// fails: the two commits and the failing run's output and log.
fn a_failed_upgrade(w: &World) -> (String, String, Output, String) {
    let first = w.head();
    assert!(w.apply(30, &[]).0.status.success());
    let upgrade = w.commit_release(TO);
    let fail = format!("releases/{upgrade}/compose.yaml up");
    let (out, log) = w.apply(30, &[("STUB_FAIL", &fail)]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    (first, upgrade, out, log)
}

#[test]
fn a_failed_upgrade_restores_its_backup_before_the_old_release_starts() {
    if !have_tools() {
        return;
    }
    let w = World::before_upgrade();
    let (first, upgrade, out, log) = a_failed_upgrade(&w);
    let backup = w.backups().pop().expect("a backup was taken");
    let said = text(&out);
    assert!(
        said.contains(&format!(
            "restored the backup {} taken before this upgrade; {first} runs again",
            backup.display()
        )),
        "{said}"
    );
    // The firewall first, then the restore, the old release last.
    let apply = w.release(&upgrade).join(".apply");
    let firewall = calls(&log)
        .iter()
        .position(|c| {
            c.starts_with(&format!(
                "ip6tables-restore --noflush {}/rollback.v6",
                apply.display()
            ))
        })
        .expect("the firewall was rolled back");
    let stop = calls(&log)
        .iter()
        .position(|c| c.ends_with(" stop (secrets=present)"))
        .expect("the services were stopped");
    assert!(firewall < stop, "{log}");
    assert_eq!(
        tail_from(&log, &format!("{} stop", w.compose(&upgrade))),
        restore_calls(&w, &upgrade, &first, 30),
        "\n{log}"
    );
    assert_eq!(w.applied().as_deref(), Some(first.as_str()));
    assert_eq!(
        fs::read_to_string(w.state.join("failed")).unwrap().trim(),
        upgrade
    );
    assert!(!w.state.join("upgrading").exists());
    assert!(backup.is_dir(), "the backup is kept");

    // A restore that fails: the old release is not started on data the
    // upgrade may have changed, the way to finish is said, and the next
    // upgrade from the same release uses the same backup.
    let again = w.commit_release(TO);
    let fail = format!("releases/{again}/compose.yaml up");
    let (out, log) = w.apply(30, &[("STUB_FAIL", &fail), ("STUB_FAIL_TOO", "pg_restore")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let backup = w.backups().pop().unwrap();
    let said = text(&out);
    assert!(said.contains("restoring database dify from"), "{said}");
    assert!(
        said.contains(&format!("--restore {}", backup.display())),
        "{said}"
    );
    let old_up = format!("{} up -d --remove-orphans", w.compose(&first));
    assert!(!log.contains(&old_up), "{log}");
    assert!(w.state.join("upgrading").exists());
    let fixed = w.commit("a fix of the upgrade");
    let (out, log) = w.apply(30, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "the upgrade from {first} before did not finish: using its backup {}",
            backup.display()
        )),
        "{}",
        text(&out)
    );
    assert!(!log.contains("pg_dump"), "{log}");
    assert_eq!(w.backups().last(), Some(&backup));
    assert_eq!(w.applied().as_deref(), Some(fixed.as_str()));
    assert!(!w.state.join("upgrading").exists());
}

#[test]
fn restore_puts_a_backup_back_into_the_running_release_of_its_release_only() {
    if !have_tools() {
        return;
    }
    let w = World::before_upgrade();
    let (first, ..) = a_failed_upgrade(&w);
    let backup = w.backups().pop().unwrap();
    let dir = backup.to_str().unwrap();

    // Of the release that runs: restored into it.
    let (out, log) = w.run(&["--restore", dir], &[]);
    assert!(out.status.success(), "{}\n{log}", text(&out));
    assert_eq!(
        tail_from(&log, ""),
        restore_calls(&w, &first, &first, 120),
        "\n{log}"
    );
    assert!(
        text(&out).contains(&format!("restored {dir} into {first}")),
        "{}",
        text(&out)
    );

    // Another release runs: refused, nothing called, unless --force.
    let other = w.commit_release("1.16.2");
    assert!(w.apply(30, &[]).0.status.success());
    let (out, log) = w.run(&["--restore", dir], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "was taken of Dify {FROM}, but {other} runs Dify 1.16.2"
        )),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("or add --force"), "{}", text(&out));
    assert_eq!(log, "");
    let (out, log) = w.run(&["--restore", dir, "--force"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(tail_from(&log, ""), restore_calls(&w, &other, &other, 120));

    // A backup whose file changed is refused before anything is called.
    fs::write(backup.join("db-dify.dump"), "not the dump\n").unwrap();
    let (out, log) = w.run(&["--restore", dir, "--force"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("db-dify.dump: FAILED"),
        "{}",
        text(&out)
    );
    assert_eq!(log, "");
    // Usage.
    let (out, _) = w.run(&["--restore"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("--restore DIR [--force]"),
        "{}",
        text(&out)
    );
}

#[test]
fn report_pushes_the_applied_commit_after_the_confirmation_and_a_failed_push_only_warns() {
    if !have_tools() {
        return;
    }
    let w = World::new();
    w.set_conf("REPORT", "yes");
    let first = w.head();
    let (out, _) = w.apply(30, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("reported {first} as applied: {APPLIED_REF}")),
        "{}",
        text(&out)
    );
    let reported = || git(&w.repo, &["rev-parse", "--verify", "--quiet", APPLIED_REF]);
    assert_eq!(reported(), first);

    // A release that fails its confirmation is not reported.
    let failing = w.commit("a release that fails");
    let fail = format!("releases/{failing}/compose.yaml up");
    assert_eq!(
        w.apply(30, &[("STUB_FAIL", &fail)]).0.status.code(),
        Some(1)
    );
    assert_eq!(reported(), first);

    // The repository refuses the push: applied all the same, a warning.
    let hook = w.repo.join(".git/hooks/pre-receive");
    fs::write(&hook, "#!/bin/sh\necho 'refused by the test' >&2\nexit 1\n").unwrap();
    fs::set_permissions(&hook, fs::Permissions::from_mode(0o755)).unwrap();
    let next = w.commit("a release applied while the push fails");
    let (out, _) = w.apply(30, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(w.applied().as_deref(), Some(next.as_str()));
    assert!(
        text(&out).contains(&format!("warning: cannot push {APPLIED_REF}")),
        "{}",
        text(&out)
    );
    assert_eq!(reported(), first);

    // The next run, up to date, reports it; the one after has nothing to do.
    fs::remove_file(&hook).unwrap();
    let (out, _) = w.apply(30, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("up to date"), "{}", text(&out));
    assert_eq!(reported(), next);
    let (out, _) = w.apply(30, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("reported"), "{}", text(&out));
}

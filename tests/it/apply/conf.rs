//! One pull agent for the fleet: apply.sh and the services are the same
//! bytes at every site, and the site's values are data in agent.conf,
//! which the agent reads strictly (never as shell): a missing, malformed
//! or foreign agent.conf ends the run before anything is fetched or
//! changed. `--verify DIR` checks a checkout before the agent is installed
//! from it.

use std::collections::BTreeMap;
use std::fs;

use super::{BRANCH, World, have_tools, rendered, text};
use crate::support::{self, git};

/// The distinct contents of `deploy/<file>` across the fleet's sites.
fn distinct(file: &str) -> BTreeMap<Vec<u8>, Vec<String>> {
    let mut seen: BTreeMap<Vec<u8>, Vec<String>> = BTreeMap::new();
    for entry in fs::read_dir(support::example_out()).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path().join("deploy").join(file);
        if name.starts_with('_') || !path.exists() {
            continue;
        }
        seen.entry(fs::read(&path).unwrap()).or_default().push(name);
    }
    seen
}

#[test]
fn every_site_of_the_fleet_has_the_same_agent_and_its_own_agent_conf() {
    for file in [
        "apply.sh",
        "dify-cfg-pull.service",
        "dify-cfg-firewall.service",
        "dify-cfg-pull.timer",
    ] {
        let d = distinct(file);
        let sites: usize = d.values().map(Vec::len).sum();
        assert_eq!(sites, 10, "{file}: the ten clinics");
        assert_eq!(d.len(), 1, "{file} differs between sites: {:?}", d.values());
    }
    // The same comparison sees what does differ: one agent.conf per site,
    // naming it.
    let confs = distinct("agent.conf");
    assert_eq!(confs.len(), 10, "{:?}", confs.values());
    for (bytes, sites) in &confs {
        let text = String::from_utf8_lossy(bytes);
        assert!(
            text.lines().any(|l| l == format!("SITE={}", sites[0])),
            "{text}"
        );
    }
}

#[test]
fn a_missing_or_malformed_agent_conf_ends_the_run_before_it_starts() {
    if !have_tools() {
        return;
    }
    let w = World::new();
    let good = fs::read_to_string(&w.conf).unwrap();
    let marker = w.state.with_file_name("sourced");
    let line = |key: &str| {
        good.lines()
            .find(|l| l.starts_with(&format!("{key}=")))
            .unwrap()
            .to_string()
    };
    let at = |key: &str| {
        1 + good
            .lines()
            .position(|l| l.starts_with(&format!("{key}=")))
            .unwrap()
    };
    let (site, branch, repository, timeout) = (
        at("SITE"),
        at("BRANCH"),
        at("REPOSITORY"),
        at("CONFIRM_TIMEOUT"),
    );
    let appended = good.lines().count() + 1;
    let without = |key: &str| good.replace(&format!("{}\n", line(key)), "");
    // (agent.conf, what the message says, the line it names)
    let cases: Vec<(String, &str, Option<usize>)> = vec![
        (
            good.replace("SITE=clinic-01", "SITE = clinic-01"),
            "'SITE ' is not a key",
            Some(site),
        ),
        (
            good.replace("SITE=clinic-01", "export SITE=clinic-01"),
            "is not a KEY=value line",
            Some(site),
        ),
        (
            good.replace(
                &line("REPOSITORY"),
                &format!("REPOSITORY=$(touch {})", marker.display()),
            ),
            "is not a repository URL",
            Some(repository),
        ),
        (
            format!("{good}BRANCH=sites/clinic-01\n"),
            "BRANCH is set twice",
            Some(appended),
        ),
        (
            format!("{good}PATH=/tmp\n"),
            "unknown key 'PATH'",
            Some(appended),
        ),
        (
            without("CONFIRM_TIMEOUT"),
            "CONFIRM_TIMEOUT is not set",
            None,
        ),
        (
            good.replace(&line("CONFIRM_TIMEOUT"), "CONFIRM_TIMEOUT=2m"),
            "is not a whole number of seconds",
            Some(timeout),
        ),
        (
            good.replace("SITE=clinic-01", "SITE=clinic-01\r"),
            "is not a site name",
            Some(site),
        ),
        (
            good.replace("BRANCH=sites/clinic-01", "BRANCH=sites/../clinic-01"),
            "is not a site branch name",
            Some(branch),
        ),
        (
            good.replace(&line("KEEP_BACKUPS"), "KEEP_BACKUPS=0"),
            "KEEP_BACKUPS '0' is not a whole number from 1 to 30",
            Some(at("KEEP_BACKUPS")),
        ),
        (
            good.replace(&line("KEEP_BACKUPS"), "KEEP_BACKUPS=31"),
            "KEEP_BACKUPS '31' is not a whole number from 1 to 30",
            Some(at("KEEP_BACKUPS")),
        ),
        (
            good.replace(&line("BACKUP_DB"), "BACKUP_DB=db;rm"),
            "BACKUP_DB 'db;rm' is not a compose service name",
            Some(at("BACKUP_DB")),
        ),
        (
            good.replace(&line("BACKUP_STORAGE"), "BACKUP_STORAGE=api:/app/../etc"),
            "BACKUP_STORAGE 'api:/app/../etc' is not a list of service:/path",
            Some(at("BACKUP_STORAGE")),
        ),
        (
            good.replace(&line("BACKUP_STORAGE"), "BACKUP_STORAGE=api:relative"),
            "is not a list of service:/path",
            Some(at("BACKUP_STORAGE")),
        ),
        (
            good.replace(&line("REPORT"), "REPORT=true"),
            "REPORT 'true' is neither yes nor no",
            Some(at("REPORT")),
        ),
        (without("REPORT"), "REPORT is not set", None),
        (without("BACKUP_STORAGE"), "BACKUP_STORAGE is not set", None),
    ];
    for (conf, says, line) in cases {
        fs::write(&w.conf, &conf).unwrap();
        let (out, log) = w.apply(30, &[]);
        assert_eq!(out.status.code(), Some(1), "{says}: {}", text(&out));
        let said = text(&out);
        assert!(said.contains(says), "{says}:\n{said}");
        // Located, with what to do.
        let place = match line {
            Some(n) => format!("{}:{n}: ", w.conf.display()),
            None => format!("{}: ", w.conf.display()),
        };
        assert!(said.contains(&place), "{says}: not at {place}:\n{said}");
        assert!(said.contains("install the deploy/agent.conf"), "{said}");
        assert_eq!(log, "", "{says}: nothing may run");
        assert!(!w.state.exists(), "{says}: no state is made");
    }
    assert!(!marker.exists(), "agent.conf was run as shell");
    // Comments are free; the run says that the installed file is not the
    // release's.
    fs::write(&w.conf, format!("{good}# installed by hand\n")).unwrap();
    let (out, _) = w.apply(30, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let note = format!(
        "note: deploy/agent.conf of this release differs from {}",
        w.conf.display()
    );
    assert!(text(&out).contains(&note), "{}", text(&out));
    let _ = fs::remove_dir_all(&w.state);

    fs::remove_file(&w.conf).unwrap();
    let (out, log) = w.apply(30, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("there is no"), "{}", text(&out));
    assert_eq!(log, "");
}

#[test]
fn an_agent_conf_of_another_site_is_refused() {
    if !have_tools() {
        return;
    }
    let w = World::new();
    let good = fs::read_to_string(&w.conf).unwrap();
    // A site and a branch that do not go together.
    fs::write(&w.conf, good.replace("SITE=clinic-01", "SITE=clinic-02")).unwrap();
    let (out, log) = w.apply(30, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("is not the branch of site clinic-02"),
        "{}",
        text(&out)
    );
    assert_eq!(log, "");

    // Another site's agent.conf on a box that runs clinic-01.
    fs::write(&w.conf, &good).unwrap();
    let applied = w.head();
    assert!(w.apply(30, &[]).0.status.success());
    let other = good.replace("clinic-01", "clinic-02");
    fs::write(&w.conf, &other).unwrap();
    let (out, log) = w.apply(30, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("this box runs site clinic-01"),
        "{}",
        text(&out)
    );
    assert_eq!(log, "");
    assert_eq!(w.applied().as_deref(), Some(applied.as_str()));

    // On a fresh box, a branch of that name holding clinic-01's tree: the
    // manifest names another site.
    let fresh = World::new();
    fs::write(&fresh.conf, &other).unwrap();
    git(&fresh.repo, &["branch", "sites/clinic-02", BRANCH]);
    let (out, log) = fresh.apply(30, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("not the manifest of site clinic-02"),
        "{}",
        text(&out)
    );
    assert_eq!(log, "");
    assert_eq!(fresh.applied(), None);
}

#[test]
fn verify_checks_a_checkout_before_the_agent_is_installed_from_it() {
    if !have_tools() {
        return;
    }
    let w = World::new();
    // A checkout of the branch, as the README's install steps make one.
    let checkout = w.state.with_file_name("checkout");
    git(
        w.repo.parent().unwrap(),
        &[
            "clone",
            "-q",
            "--branch",
            BRANCH,
            w.repo.to_str().unwrap(),
            checkout.to_str().unwrap(),
        ],
    );
    let (out, log) = w.run(&["--verify", checkout.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("is the tree of site clinic-01"),
        "{}",
        text(&out)
    );
    assert_eq!(log, "");
    assert!(!w.state.exists(), "--verify changes nothing");
    // One byte changed, or a file more: refused, naming it.
    let nginx = checkout.join("nginx/default.conf");
    let mut bytes = fs::read(&nginx).unwrap();
    bytes.push(b'\n');
    fs::write(&nginx, bytes).unwrap();
    fs::write(checkout.join("extra.conf"), "x\n").unwrap();
    let (out, _) = w.run(&["--verify", checkout.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("extra: extra.conf"), "{said}");
    assert!(said.contains("do not install from it"), "{said}");
    // The rendered tree itself verifies.
    let (out, _) = w.run(&["--verify", rendered().to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", text(&out));
    // Only the known modes.
    let (out, _) = w.run(&["--install"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("usage:"), "{}", text(&out));
}

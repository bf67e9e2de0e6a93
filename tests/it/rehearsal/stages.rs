//! The rehearsal's stages after the first apply: the matrix seeing a hole,
//! a hand edit refused, a failing release rolled back, a reboot (the
//! upgrades are in `upgrade`).

use super::matrix::{self, Expect};
use super::netns;
use super::{Rehearsal, check};
use crate::support;
use crate::support::output_text as text;
use std::path::Path;

/// A hand edit on the site branch (a commit dify-cfg did not make, whose
/// tree no longer matches its manifest) is refused, and nothing changes.
pub fn tampered_tree_is_refused(r: &Rehearsal, site: &str) {
    let branch = format!("sites/{site}");
    let tip = support::git(&r.config, &["rev-parse", &branch]);
    let wt = r.work.join("hand-edit");
    support::git(
        &r.config,
        &["worktree", "add", "-q", wt.to_str().unwrap(), &branch],
    );
    let conf = wt.join("nginx/default.conf");
    let edited = std::fs::read_to_string(&conf)
        .unwrap()
        .replace("deny all;", "allow all;");
    std::fs::write(&conf, edited).unwrap();
    support::git(
        &wt,
        &["commit", "-q", "-a", "-m", "Open the console to everyone"],
    );
    support::git(
        &r.config,
        &["worktree", "remove", "--force", wt.to_str().unwrap()],
    );
    r.push();
    let before = (r.firewall(), r.containers());
    let out = r.apply();
    let said = text(&out);
    assert!(
        !out.status.success(),
        "a tampered tree was applied:\n{said}"
    );
    assert!(
        said.contains("nginx/default.conf") && said.contains("does not match its manifest.json"),
        "{said}"
    );
    assert_eq!(
        before,
        (r.firewall(), r.containers()),
        "a refused tree changed the box"
    );
    // Back to what dify-cfg committed.
    support::git(
        &r.config,
        &["update-ref", &format!("refs/heads/{branch}"), tip.trim()],
    );
    r.push();
}

/// The mistake that makes a release fail: a log level Python's logging
/// does not know.
pub const FAILING_RELEASE_ENV: &str = "[env]\nLOG_LEVEL = \"CHATTY\"\n\n";

/// A release whose services do not become healthy (Dify's api cannot start
/// with a log level Python's logging does not know, a mistake the compiler
/// does not catch) is rolled back: the firewall chains and the containers
/// are those of the release before. The branch stays at the failed commit
/// (the reboot below finds it so).
pub fn failing_release_rolls_back(r: &Rehearsal, site: &str) {
    let before = (r.firewall(), r.containers());
    r.change_site(site, "A log level Dify cannot start with", |t| {
        t.replacen(
            "\n[network]\n",
            &format!("\n{FAILING_RELEASE_ENV}[network]\n"),
            1,
        )
    });
    let out = r.apply_within(60);
    let said = text(&out);
    assert!(
        !out.status.success(),
        "an unhealthy release was kept:\n{said}"
    );
    assert!(said.contains("rolling back"), "{said}");
    assert_eq!(
        before,
        (r.firewall(), r.containers()),
        "the rollback left the box changed:\n{said}"
    );
}

/// A reboot: the engine stops with its containers and the kernel forgets
/// the firewall. At boot the firewall unit loads the rules last applied
/// before Docker starts, the containers come back by their restart policy,
/// and the matrix holds again.
pub fn reboot(r: &mut Rehearsal, site: &str, running: &Expect, compose: &Path) {
    let applied = r.firewall();
    r.engine.stop();
    for tool in ["iptables", "ip6tables"] {
        for table in ["filter", "nat"] {
            must_in_box(&[tool, "-t", table, "-F"]);
            must_in_box(&[tool, "-t", table, "-X"]);
        }
        must_in_box(&[tool, "-P", "FORWARD", "ACCEPT"]);
    }
    assert!(
        !r.firewall().contains("DIFY-"),
        "the firewall survived the power cut"
    );
    let out = r.unit("dify-cfg-firewall.service").output().unwrap();
    assert!(
        out.status.success(),
        "the boot unit failed:\n{}",
        text(&out)
    );
    assert_eq!(
        r.firewall(),
        applied,
        "the boot unit did not load the rules last applied"
    );
    r.engine.start();
    r.wait_healthy(site);
    check(&format!("{site}-after-reboot"), &r.matrix(running, compose));
    // Nothing new on the branch: the agent changes nothing but loads the
    // rules of the applied release once more (here after someone emptied
    // INPUT by hand).
    let before = r.firewall();
    must_in_box(&["iptables", "-F", "INPUT"]);
    let again = r.apply();
    let said = text(&again);
    assert!(
        again.status.success()
            && said.contains("up to date")
            && said.contains("loaded the firewall of the applied release"),
        "{said}"
    );
    assert_eq!(r.firewall(), before, "{said}");
}

fn must_in_box(args: &[&str]) {
    let out = netns::in_box(args);
    assert!(out.status.success(), "{}: {}", args.join(" "), text(&out));
}

/// The matrix sees what it must: with a hole punched in the box's firewall
/// (everything to the box accepted), the probes that expect a drop fail:
/// ssh answers the admin host outside `ssh-from`, and closed ports answer
/// with a reset instead of silence.
pub fn a_hole_is_seen(r: &Rehearsal, x: &Expect) {
    must_in_box(&["iptables", "-I", "DIFY-INPUT", "1", "-j", "ACCEPT"]);
    let rows = matrix::tcp_rows(x, &r.engine, &x.site);
    must_in_box(&["iptables", "-D", "DIFY-INPUT", "1"]);
    let failed: Vec<_> = rows.iter().filter(|row| !row.ok()).collect();
    let ssh = format!(":{}", x.ssh_port);
    assert!(
        failed
            .iter()
            .any(|row| row.probe.ends_with(&ssh) && row.observed == "open"),
        "a hole in the firewall went unseen:\n{failed:#?}"
    );
    assert!(
        failed.iter().any(|row| row.observed == "refused"),
        "closed ports behind a hole were not seen answering:\n{failed:#?}"
    );
}

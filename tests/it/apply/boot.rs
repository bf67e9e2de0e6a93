//! The firewall after a reboot: the boot unit's mode (`--load-firewall`,
//! run as the generated unit's ExecStart says) loads the rules saved when a
//! release was last confirmed, not those of a newer release; and a run of
//! the timer loads the applied firewall again, even where nothing was
//! saved yet or the fetch fails.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use super::{World, assert_reasserted, calls, have_tools, loaded, rendered, text};

/// The boot unit's command line and environment, read from the generated
/// unit: (arguments after the script, `NAME=value` settings).
fn boot_unit() -> (Vec<String>, Vec<(String, String)>) {
    let unit = fs::read_to_string(rendered().join("deploy/dify-cfg-firewall.service")).unwrap();
    let exec: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("ExecStart="))
        .collect();
    assert_eq!(exec.len(), 1, "one ExecStart:\n{unit}");
    let words: Vec<String> = exec[0].split(' ').map(str::to_string).collect();
    assert_eq!(words[..2], ["/bin/sh", "/opt/dify-cfg/apply.sh"], "{unit}");
    let env = unit
        .lines()
        .filter_map(|l| l.strip_prefix("Environment="))
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    (words[2..].to_vec(), env)
}

/// Run the script as the boot unit does; the state directory is the
/// test's, in place of the unit's.
fn boot(w: &World, extra: &[(&str, &str)]) -> (std::process::Output, String) {
    let (args, env) = boot_unit();
    assert_eq!(args, ["--load-firewall"]);
    assert!(
        env.iter()
            .any(|(k, v)| k == "DIFY_CFG_STATE_DIR" && v == "/var/lib/dify-cfg"),
        "{env:?}"
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    w.run(&args, extra)
}

/// A commit whose rules.v4 differs from the applied one (a comment line
/// more), with manifest.json updated to match.
fn commit_other_rules(w: &World) -> String {
    let path = w.repo.join("firewall/rules.v4");
    let old = fs::read(&path).unwrap();
    let mut new = old.clone();
    new.extend_from_slice(b"# a later release\n");
    fs::write(&path, &new).unwrap();
    let sum = |bytes: &[u8]| {
        let tmp = tempfile::NamedTempFile::new().unwrap();
        fs::write(tmp.path(), bytes).unwrap();
        let o = Command::new("sha256sum").arg(tmp.path()).output().unwrap();
        String::from_utf8(o.stdout).unwrap()[..64].to_string()
    };
    let manifest = w.repo.join("manifest.json");
    let text = fs::read_to_string(&manifest).unwrap();
    assert_eq!(text.matches(&sum(&old)).count(), 1);
    fs::write(&manifest, text.replace(&sum(&old), &sum(&new))).unwrap();
    w.commit("a release with other rules")
}

#[test]
fn the_boot_unit_loads_the_rules_applied_last_not_the_newest() {
    if !have_tools() {
        return;
    }
    let w = World::new();
    // Nothing was ever applied: nothing to load, and that is no failure.
    let (out, log) = boot(&w, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("nothing to load"), "{}", text(&out));
    assert_eq!(log, "");
    assert!(!w.state.exists(), "the boot unit creates no state");

    let good = w.head();
    assert!(w.apply(30, &[]).0.status.success());
    // Saved for root only.
    let saves = w.state.join("firewall.d");
    let mode = |p: &std::path::Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&saves), 0o700);
    for file in ["rules.v4", "rules.v6", "commit"] {
        assert_eq!(mode(&saves.join(&good).join(file)), 0o600, "{file}");
    }
    assert_eq!(
        fs::read_link(w.state.join("firewall")).unwrap(),
        std::path::Path::new("firewall.d").join(&good)
    );

    // A newer release with other rules fails to come up: rolled back.
    let next = commit_other_rules(&w);
    let fail = format!("releases/{next}/compose.yaml up");
    let (out, _) = w.apply(30, &[("STUB_FAIL", &fail)]);
    assert!(!out.status.success(), "{}", text(&out));

    // At boot: the rules of the release that was confirmed, byte for byte.
    let (out, log) = boot(&w, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains(&format!("loaded the firewall of {good}")),
        "{said}"
    );
    let saved = w.state.join("firewall");
    assert_eq!(
        calls(&log),
        [
            format!(
                "iptables-restore --noflush {}/rules.v4 (secrets=absent)",
                saved.display()
            ),
            format!(
                "ip6tables-restore --noflush {}/rules.v6 (secrets=absent)",
                saved.display()
            ),
        ]
    );
    let rules = fs::read_to_string(rendered().join("firewall/rules.v4")).unwrap();
    let got = loaded(
        &log,
        &format!("iptables-restore --noflush {}/rules.v4", saved.display()),
    );
    assert_eq!(got, rules.lines().collect::<Vec<_>>());
    assert!(!got.contains(&"# a later release"));

    // A restore that fails fails the unit.
    let (out, _) = boot(&w, &[("STUB_FAIL", "ip6tables-restore")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("failed"), "{}", text(&out));
}

#[test]
fn a_timer_run_loads_the_applied_firewall_again_even_if_nothing_was_saved() {
    if !have_tools() {
        return;
    }
    let w = World::new();
    let commit = w.head();
    assert!(w.apply(30, &[]).0.status.success());
    // The state of an agent that saved nothing for the boot unit: the next
    // run saves the applied release's rules and loads them.
    fs::remove_file(w.state.join("firewall")).unwrap();
    fs::remove_dir_all(w.state.join("firewall.d")).unwrap();
    let (out, log) = w.apply(30, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("up to date"), "{}", text(&out));
    assert_reasserted(&w, &log, &commit);

    // The repository cannot be reached (a box rebooted without network):
    // the run fails, but puts the applied firewall back first.
    let missing = w.state.join("no-such-repository");
    let (out, log) = w.apply(30, &[("DIFY_CFG_REPOSITORY", missing.to_str().unwrap())]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("cannot fetch"), "{}", text(&out));
    assert_reasserted(&w, &log, &commit);

    // A failing restore fails the up-to-date run.
    let (out, _) = w.apply(30, &[("STUB_FAIL", "iptables-restore")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("again failed"), "{}", text(&out));
}

//! `audit` passes only what it proves: a branch whose tip tree (bytes,
//! modes, and nothing more) is what dify-cfg compiles from the source its
//! trailers record, and what the sources at the audited revision compile
//! to. Every other branch gets a failing verdict of its own, and one odd
//! branch never stops the report. Also the risk flags of `diff` for every
//! change of who can reach what. Real git repositories in temp dirs,
//! driven with git's command line.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::{copy_fleet, dify_cfg, git, init_repo, output_text};

/// A config repository holding the example fleet, one commit on `main`,
/// with every site's branch committed.
fn committed_fleet() -> (tempfile::TempDir, PathBuf) {
    fleet_committed(&["commit"])
}

/// A config repository holding the example fleet, one commit on `main`,
/// then `commit_args` run (a `dify-cfg commit`).
fn fleet_committed(commit_args: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("fleet");
    fs::create_dir_all(&root).unwrap();
    copy_fleet(&root);
    init_repo(&root, "The clinic fleet");
    let out = dify_cfg(commit_args, &root);
    assert!(out.status.success(), "{}", output_text(&out));
    (tmp, root)
}

fn edit(root: &Path, rel: &str, from: &str, to: &str) {
    let path = root.join(rel);
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{rel} has no `{from}`");
    fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

/// `audit` with `args` as JSON: the exit code, the report, each branch's
/// entry by site.
struct Audit {
    code: Option<i32>,
    report: serde_json::Value,
    by_site: BTreeMap<String, serde_json::Value>,
    text: String,
}

fn audit(root: &Path, args: &[&str]) -> Audit {
    let mut all = vec!["audit", "--format", "json"];
    all.extend_from_slice(args);
    let out = dify_cfg(&all, root);
    let text = output_text(&out);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("audit printed no JSON report ({e}):\n{text}"));
    let by_site = report["branches"]
        .as_array()
        .unwrap_or_else(|| panic!("no branches in:\n{text}"))
        .iter()
        .map(|b| (b["site"].as_str().unwrap().to_string(), b.clone()))
        .collect();
    Audit {
        code: out.status.code(),
        report,
        by_site,
        text,
    }
}

/// `audit` as text.
fn audit_text(root: &Path, args: &[&str]) -> Output {
    let mut all = vec!["audit"];
    all.extend_from_slice(args);
    dify_cfg(&all, root)
}

impl Audit {
    fn verdict(&self, site: &str) -> &str {
        self.by_site[site]["verdict"]
            .as_str()
            .unwrap_or_else(|| panic!("no verdict for {site}:\n{}", self.text))
    }

    fn strings(&self, site: &str, key: &str) -> Vec<String> {
        self.by_site[site][key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    }

    /// The audit failed (exit 1, `"ok": false`), and only `bad` failed:
    /// every other branch reproduces.
    fn fails_only(&self, bad: &[(&str, &str)]) {
        assert_eq!(self.code, Some(1), "{}", self.text);
        assert_eq!(self.report["ok"], false, "{}", self.text);
        for (site, entry) in &self.by_site {
            let want = bad
                .iter()
                .find(|(s, _)| s == site)
                .map_or("reproducible", |(_, v)| *v);
            assert_eq!(entry["verdict"], want, "{site}:\n{}", self.text);
        }
    }
}

/// Put a commit of `tree` with `message` on top of `branch` (parent: its
/// tip) and move the branch there, as a push would.
fn commit_on(root: &Path, branch: &str, tree: &str, message: &str) -> String {
    let tip = git(root, &["rev-parse", branch]);
    let id = git(root, &["commit-tree", tree, "-p", &tip, "-m", message]);
    git(root, &["update-ref", &format!("refs/heads/{branch}"), &id]);
    id
}

/// Put on top of `branch` a commit of its tip's tree with the top-level
/// entries rewritten by `change` (the `git ls-tree` lines, written with
/// `git mktree`), and the tip's message (its trailers kept).
fn rewrite_tip(root: &Path, branch: &str, change: impl FnOnce(&mut Vec<String>)) {
    let mut lines: Vec<String> = git(root, &["ls-tree", branch])
        .lines()
        .map(str::to_string)
        .collect();
    change(&mut lines);
    let mut input = lines.join("\n");
    input.push('\n');
    let out = std::process::Command::new("git")
        .args(["mktree"])
        .current_dir(root)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(input.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success());
    let tree = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let message = message_of(root, branch);
    commit_on(root, branch, &tree, &message);
}

/// A [`rewrite_tip`] change: the regular file `file` gets `mode`.
fn set_mode<'a>(file: &'a str, mode: &'a str) -> impl FnOnce(&mut Vec<String>) + 'a {
    move |lines| {
        for l in lines.iter_mut() {
            if l.ends_with(&format!("\t{file}")) {
                *l = l.replacen("100644", mode, 1);
            }
        }
    }
}

fn message_of(root: &Path, rev: &str) -> String {
    git(root, &["log", "-1", "--format=%B", rev])
}

/// Edit one file of a site branch in a worktree and commit it with
/// `message`.
fn hand_edit(root: &Path, branch: &str, message: &str) {
    git(root, &["worktree", "add", "-q", "../wt", branch]);
    let wt = root.parent().unwrap().join("wt");
    edit(
        &wt,
        "compose.yaml",
        "restart: unless-stopped",
        "restart: always",
    );
    git(&wt, &["commit", "-q", "-am", message]);
    git(root, &["worktree", "remove", "--force", "../wt"]);
}

#[test]
fn a_hand_commit_on_top_of_a_site_branch_is_drift_naming_its_files() {
    let (_tmp, root) = committed_fleet();
    hand_edit(&root, "sites/clinic-02", "restart always");
    let a = audit(&root, &[]);
    a.fails_only(&[("clinic-02", "drift")]);
    assert_eq!(a.strings("clinic-02", "drifted"), ["compose.yaml"]);
    // The text names the files and says why.
    let text = output_text(&audit_text(&root, &["--site", "clinic-02"]));
    assert!(text.contains("clinic-02  drift"), "{text}");
    assert!(text.contains("compose.yaml"), "{text}");
    assert!(text.contains("not made by dify-cfg"), "{text}");

    // A hand commit that changes nothing is still not dify-cfg's: unmanaged.
    let tree = git(&root, &["rev-parse", "sites/clinic-03^{tree}"]);
    commit_on(&root, "sites/clinic-03", &tree, "touch");
    let a = audit(&root, &[]);
    a.fails_only(&[("clinic-02", "drift"), ("clinic-03", "unmanaged")]);
}

/// GitHub's default merge of a one-commit pull request: a squash commit
/// on the old site tip, its message the pull request's title and the
/// commit's message, with a co-author trailer after it.
fn squash_merge(root: &Path, site: &str, edit_too: bool) {
    let rollout = format!("rollout/{site}");
    let base = format!("sites/{site}");
    git(root, &["worktree", "add", "-q", "../wt", &base]);
    let wt = root.parent().unwrap().join("wt");
    git(&wt, &["merge", "-q", "--squash", &rollout]);
    if edit_too {
        edit(
            &wt,
            "compose.yaml",
            "restart: unless-stopped",
            "restart: always",
        );
        git(&wt, &["add", "-A"]);
    }
    let rolled = message_of(root, &rollout);
    let (subject, body) = rolled.split_once('\n').unwrap();
    let message = format!(
        "{subject} (#7)\n\n* {subject}\n{body}\n\nCo-authored-by: Rui Reviewer <rui@clinics.example.org>\n"
    );
    git(&wt, &["commit", "-q", "-m", &message]);
    git(root, &["worktree", "remove", "--force", "../wt"]);
}

#[test]
fn a_squash_merged_rollout_passes_and_a_squash_with_a_hand_edit_is_drift() {
    let (_tmp, root) = committed_fleet();
    edit(&root, "sites/clinic-01.toml", "10.20.1.10", "10.20.1.11");
    edit(&root, "sites/clinic-02.toml", "10.20.2.10", "10.20.2.11");
    git(
        &root,
        &["commit", "-q", "-am", "clinics 1 and 2: new addresses"],
    );
    let out = dify_cfg(
        &[
            "commit",
            "--pr",
            "--ignore-waves",
            "--site",
            "clinic-01",
            "--site",
            "clinic-02",
        ],
        &root,
    );
    assert!(out.status.success(), "{}", output_text(&out));
    squash_merge(&root, "clinic-01", false);
    squash_merge(&root, "clinic-02", true);
    let a = audit(&root, &[]);
    a.fails_only(&[("clinic-02", "drift")]);
    assert_eq!(a.strings("clinic-02", "drifted"), ["compose.yaml"]);
    assert!(
        a.strings("clinic-01", "notes")
            .iter()
            .any(|n| n.contains("squash")),
        "{}",
        a.text
    );
}

#[test]
fn a_changed_mode_or_a_submodule_entry_is_drift() {
    let (_tmp, root) = committed_fleet();
    // compose.yaml made executable, the message (and trailers) kept.
    rewrite_tip(&root, "sites/clinic-04", set_mode("compose.yaml", "100755"));
    // A submodule (a gitlink entry) added beside the files.
    let main = git(&root, &["rev-parse", "main"]);
    rewrite_tip(&root, "sites/clinic-05", |lines| {
        lines.push(format!("160000 commit {main}\tvendor"));
        lines.sort_by(|a, b| a.split('\t').nth(1).cmp(&b.split('\t').nth(1)));
    });
    // A link where a file was, with the file's bytes as its target.
    rewrite_tip(&root, "sites/clinic-06", set_mode("dify.env", "120000"));

    let a = audit(&root, &[]);
    a.fails_only(&[
        ("clinic-04", "drift"),
        ("clinic-05", "drift"),
        ("clinic-06", "drift"),
    ]);
    assert_eq!(a.strings("clinic-04", "drifted"), ["compose.yaml"]);
    assert_eq!(a.strings("clinic-05", "drifted"), ["vendor"]);
    assert_eq!(a.strings("clinic-06", "drifted"), ["dify.env"]);
    let notes = a.strings("clinic-04", "notes").join("\n");
    assert!(notes.contains("100755"), "{notes}");
    let notes = a.strings("clinic-05", "notes").join("\n");
    assert!(notes.contains("submodule"), "{notes}");
}

#[test]
fn a_branch_whose_site_was_removed_is_an_orphan() {
    let (_tmp, root) = committed_fleet();
    git(&root, &["rm", "-q", "sites/clinic-10.toml"]);
    git(&root, &["commit", "-q", "-m", "clinic-10 closed"]);
    let a = audit(&root, &[]);
    a.fails_only(&[("clinic-10", "orphan")]);
    let notes = a.strings("clinic-10", "notes").join("\n");
    assert!(notes.contains("retired/sites/clinic-10"), "{notes}");
}

#[test]
fn a_site_without_its_branch_is_missing() {
    let (_tmp, root) = committed_fleet();
    git(&root, &["branch", "-q", "-D", "sites/clinic-09"]);
    let a = audit(&root, &[]);
    a.fails_only(&[("clinic-09", "missing")]);
    assert_eq!(a.by_site["clinic-09"]["tip"], serde_json::Value::Null);
    // Asked for by name: the same verdict, not an error.
    let a = audit(&root, &["--site", "clinic-09"]);
    a.fails_only(&[("clinic-09", "missing")]);
    assert_eq!(a.by_site.len(), 1);
    // Rollout branches are not expected for every site.
    let out = audit_text(&root, &["--branch-prefix", "rollout/"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
}

#[test]
fn when_the_audited_sources_do_not_compile_no_branch_passes() {
    let (_tmp, root) = committed_fleet();
    edit(&root, "profiles/edge-4gb.toml", "[device]", "[device");
    git(&root, &["commit", "-q", "-am", "a broken profile"]);
    let out = audit_text(&root, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("profiles/edge-4gb.toml"), "{err}");
    let a = audit(&root, &[]);
    assert_eq!(a.code, Some(1), "{}", a.text);
    assert_eq!(a.by_site.len(), 11, "{}", a.text);
    for site in a.by_site.keys() {
        assert_eq!(a.verdict(site), "unknown", "{}", a.text);
    }
    assert!(
        a.report["diagnostics"]
            .as_array()
            .is_some_and(|d| !d.is_empty()),
        "{}",
        a.text
    );
    // The revision before the break still audits clean.
    let a = audit(&root, &["--rev", "HEAD~1"]);
    assert_eq!(a.code, Some(0), "{}", a.text);
}

#[test]
fn odd_trailers_and_tips_are_verdicts_of_their_branch_never_an_abort() {
    let (_tmp, root) = committed_fleet();
    let replace_source = |branch: &str, source: &str| {
        let message = message_of(&root, branch);
        let line = message
            .lines()
            .find(|l| l.starts_with("Source-Commit: "))
            .unwrap()
            .to_string();
        let tree = git(&root, &["rev-parse", &format!("{branch}^{{tree}}")]);
        let message = message.replacen(&line, &format!("Source-Commit: {source}"), 1);
        commit_on(&root, branch, &tree, &message);
    };
    // Not ASCII, cut mid-character by a 12-byte prefix.
    replace_source("sites/clinic-01", "aéééééééééééééé");
    // An annotated tag of the source commit, not the commit.
    git(&root, &["tag", "-a", "-m", "release", "v1", "main"]);
    let tag = git(&root, &["rev-parse", "v1"]);
    replace_source("sites/clinic-02", &tag);
    // A tree, an abbreviated id, and a commit this repository lacks.
    let tree = git(&root, &["rev-parse", "main^{tree}"]);
    replace_source("sites/clinic-03", &tree);
    let main = git(&root, &["rev-parse", "main"]);
    replace_source("sites/clinic-04", &main[..12]);
    replace_source("sites/clinic-05", &"5".repeat(40));
    // A branch pointing at a blob, not a commit (git's own commands
    // refuse to write that, a ref file does not).
    let blob = git(&root, &["rev-parse", "main:sites/clinic-06.toml"]);
    fs::write(
        root.join(".git/refs/heads/sites/clinic-06"),
        format!("{blob}\n"),
    )
    .unwrap();

    let bad = [
        ("clinic-01", "unverifiable"),
        ("clinic-02", "unverifiable"),
        ("clinic-03", "unverifiable"),
        ("clinic-04", "unverifiable"),
        ("clinic-05", "unverifiable"),
        ("clinic-06", "unverifiable"),
    ];
    let a = audit(&root, &[]);
    a.fails_only(&bad);
    let notes = a.strings("clinic-02", "notes").join("\n");
    assert!(notes.contains("tag"), "{notes}");
    let out = audit_text(&root, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("clinic-01  unverifiable"), "{text}");
    assert!(
        text.contains("\nhq "),
        "one odd branch hid the others:\n{text}"
    );
}

// Risk flags for every change of who can reach what (`diff`, and the
// commit messages and pull-request bodies, which share the summary).

/// The example fleet with clinic-01's branch committed, `change` made to
/// the sources; the risk flags `diff` reports for clinic-01, as text.
fn flags_after(change: impl FnOnce(&Path)) -> Vec<String> {
    let (_tmp, root) = fleet_committed(&["commit", "--site", "clinic-01"]);
    change(&root);
    let out = dify_cfg(
        &[
            "diff",
            "--site",
            "clinic-01",
            "--format",
            "json",
            "--exit-code",
        ],
        &root,
    );
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    report["sites"][0]["risks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let rest: Vec<String> = r
                .as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| *k != "kind")
                .map(|(k, v)| format!("{k}={}", v.to_string().trim_matches('"')))
                .collect();
            format!("{} {}", r["kind"].as_str().unwrap(), rest.join(" "))
        })
        .collect()
}

fn has(flags: &[String], needles: &[&str]) -> bool {
    flags.iter().any(|f| needles.iter().all(|n| f.contains(n)))
}

#[test]
fn opening_the_console_to_the_lan_is_flagged() {
    let flags = flags_after(|root| {
        edit(
            root,
            "profiles/edge-4gb.toml",
            "public-routes = [\"/v1\"]",
            "public-routes = [\"/v1\", \"/console/api\"]",
        );
    });
    assert!(
        has(
            &flags,
            &[
                "route-opened",
                "/console/api",
                "from=10.20.1.0/24",
                "clinic-01.clinics.example.org:80"
            ]
        ),
        "{flags:#?}"
    );
}

#[test]
fn a_wider_admin_network_is_flagged_even_where_the_firewall_stays_open() {
    // The LAN made an admin network: port 80 is open to it already, so
    // only nginx's routes change (and a second, identical ping rule).
    let flags = flags_after(|root| {
        edit(
            root,
            "profiles/multi-branch.toml",
            "admin = [\"10.0.0.0/24\"]",
            "admin = [\"10.0.0.0/24\", \"10.20.1.0/24\"]",
        );
    });
    assert!(
        has(
            &flags,
            &["route-opened", "/console/api", "from=10.20.1.0/24"]
        ),
        "{flags:#?}"
    );
    assert!(
        has(&flags, &["firewall-changed", "rules_added=1"]),
        "{flags:#?}"
    );
    // A new admin network: its routes, its port and its ping.
    let flags = flags_after(|root| {
        edit(
            root,
            "profiles/multi-branch.toml",
            "admin = [\"10.0.0.0/24\"]",
            "admin = [\"10.0.0.0/24\", \"10.9.0.0/24\"]",
        );
    });
    for needles in [
        &["route-opened", "/console/api", "from=10.9.0.0/24"][..],
        &["port-opened", "tcp/80 to 10.20.1.10 from 10.9.0.0/24"],
        &[
            "port-opened",
            "icmp/echo-request to the host from 10.9.0.0/24",
        ],
    ] {
        assert!(has(&flags, needles), "{needles:?} in {flags:#?}");
    }
}

#[test]
fn a_wider_ssh_source_is_flagged() {
    let flags = flags_after(|root| {
        edit(
            root,
            "profiles/multi-branch.toml",
            "ssh-from = [\"10.0.0.0/28\"]",
            "ssh-from = [\"10.0.0.0/24\"]",
        );
    });
    assert!(
        has(
            &flags,
            &["port-opened", "tcp/22 to the host from 10.0.0.0/24"]
        ),
        "{flags:#?}"
    );
    assert!(
        has(
            &flags,
            &["port-closed", "tcp/22 to the host from 10.0.0.0/28"]
        ),
        "{flags:#?}"
    );
}

#[test]
fn a_wider_egress_list_is_flagged_at_the_firewall_and_the_proxy() {
    let flags = flags_after(|root| {
        edit(
            root,
            "profiles/multi-branch.toml",
            "cidr = \"10.0.0.40/32\"\nports = [443]",
            "cidr = \"10.0.0.40/32\"\nports = [443, 80]",
        );
    });
    for needles in [
        &["port-opened", "tcp/80 out to 10.0.0.40/32"][..],
        &["proxy-opened", "tcp/80 via the SSRF proxy to 10.0.0.40/32"],
        &["proxy-changed", "ssrf_proxy/squid.conf"],
    ] {
        assert!(has(&flags, needles), "{needles:?} in {flags:#?}");
    }
}

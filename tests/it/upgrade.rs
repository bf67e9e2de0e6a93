//! A Dify release change as a reviewed diff: the example fleet committed
//! on its site branches as it was on 1.16.0, then the clinics' profile
//! moved to 1.16.1, as the fleet was. `diff` (text and JSON), the commit message and the pull
//! request `commit --pr` writes carry an Upgrade section computed from the
//! release facts and the two trees; a site whose release does not change
//! has none.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use crate::support::{self, assert_ok, dify_cfg, fleet_repo_at, git};

/// The migration files a release carries (`compiler/dify/migrations/`).
fn migrations(release: &str) -> BTreeSet<String> {
    let path = support::repo().join(format!("compiler/dify/migrations/{release}.txt"));
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

fn ok(root: &Path, args: &[&str]) -> String {
    let out = assert_ok(dify_cfg(args, root), &format!("dify-cfg {args:?}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn append(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    let old = fs::read_to_string(&path).unwrap();
    fs::write(&path, format!("{old}{text}")).unwrap();
}

fn edit(root: &Path, rel: &str, from: &str, to: &str) {
    let path = root.join(rel);
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{rel} has no `{from}`");
    fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

/// The example fleet as it was before its move to 1.16.1 (its edge and
/// cloud profiles on 1.16.0) on its site branches, then on `main`: the
/// edge profile, which the clinics extend, on Dify 1.16.1 with a setting
/// only 1.16.1 reads, clinic-01 with a 1.16.1 secret, clinic-02 with
/// egress to internet addresses, and the head office (still on 1.16.0)
/// with a new description.
fn upgraded_fleet(tmp: &Path) -> PathBuf {
    let root = fleet_repo_at(&tmp.join("fleet"), 0);
    for profile in ["profiles/edge-4gb.toml", "profiles/cloud.toml"] {
        edit(
            &root,
            profile,
            "version = \"1.16.1\"",
            "version = \"1.16.0\"",
        );
    }
    git(&root, &["commit", "-q", "-am", "the fleet on Dify 1.16.0"]);
    ok(&root, &["commit"]);
    edit(
        &root,
        "profiles/edge-4gb.toml",
        "version = \"1.16.0\"",
        "version = \"1.16.1\"",
    );
    append(
        &root,
        "profiles/multi-branch.toml",
        "\n[env]\nKNOWLEDGE_FS_TIMEOUT_SECONDS = 30\n",
    );
    append(
        &root,
        "sites/clinic-01.toml",
        "\n[secrets]\nAGENT_BACKEND_API_TOKEN = { env = \"DIFY_AGENT_BACKEND_TOKEN\" }\n",
    );
    append(
        &root,
        "sites/clinic-02.toml",
        "\n[[network.egress]]\nname = \"cloud\"\ncidr = \"104.16.0.0/13\"\nports = [443]\n",
    );
    edit(
        &root,
        "profiles/cloud.toml",
        "description = \"Dify on Kubernetes",
        "description = \"Head office: Dify on Kubernetes",
    );
    git(&root, &["commit", "-q", "-am", "clinics: Dify 1.16.1"]);
    root
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn diff_shows_the_upgrade_of_each_site_whose_release_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = upgraded_fleet(tmp.path());
    let (old, new) = (migrations("1.16.0"), migrations("1.16.1"));
    let added: Vec<&String> = new.difference(&old).collect();
    assert!(!added.is_empty(), "1.16.1 adds migrations");

    let text = ok(&root, &["diff", "--site", "clinic-01", "--stat"]);
    for want in [
        "Upgrade: Dify 1.16.0 -> 1.16.1 (upgrade)".to_string(),
        "agent_ssrf_proxy added (not run here)".to_string(),
        format!("database migrations: {} to run, not reversible without a backup", added.len()),
        format!(
            "! database migrations: {} database migrations; not reversible without a backup (Dify 1.16.0 -> 1.16.1)",
            added.len()
        ),
        "+ KNOWLEDGE_FS_TIMEOUT_SECONDS = '30' (dify.env; the site's [env], in its file or profile chain; new in this release)".to_string(),
        "+ AGENT_BACKEND_API_TOKEN = '${DIFY_AGENT_BACKEND_TOKEN:?DIFY_AGENT_BACKEND_TOKEN must be set}' (compose.yaml: api, worker, worker_beat; the site's [secrets], a reference; new in this release)".to_string(),
        "+ DISABLE_TELEMETRY = 'true' (dify.env; dify-cfg default; new in this release)".to_string(),
        "api: registry.clinics.example.org/dify/dify-api:1.16.0-".to_string(),
        "telemetry: off; dify-cfg sets `DISABLE_TELEMETRY=true`: the site's egress (`llm-gateway` 10.0.0.40/32) reaches none of otel.dify.ai:443, otel.dify.cn:443".to_string(),
    ] {
        assert!(text.contains(&want), "no `{want}` in:\n{text}");
    }
    for m in &added {
        assert!(text.contains(m.as_str()), "migration {m} not named");
    }

    let report = json(&ok(
        &root,
        &[
            "diff",
            "--format",
            "json",
            "--site",
            "clinic-01",
            "--site",
            "clinic-02",
            "--site",
            "hq",
        ],
    ));
    let sites = report["sites"].as_array().unwrap();
    let site = |name: &str| sites.iter().find(|s| s["site"] == name).unwrap();
    let u = &site("clinic-01")["upgrade"];
    assert_eq!(u["from"], "1.16.0");
    assert_eq!(u["to"], "1.16.1");
    assert_eq!(u["direction"], "upgrade");
    assert_eq!(u["migrations"].as_array().unwrap().len(), added.len());
    assert_eq!(u["release-services"][0]["name"], "agent_ssrf_proxy");
    assert_eq!(u["release-services"][0]["added"], true);
    assert_eq!(u["release-services"][0]["runs-here"], false);
    assert!(
        u["settings-added"]
            .as_array()
            .unwrap()
            .contains(&"KNOWLEDGE_FS_ENABLED".into())
    );
    assert_eq!(u["settings-renamed"], serde_json::json!([]));
    let setting = |u: &serde_json::Value, name: &str| {
        u["site-settings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not in {u}"))
    };
    let fs_timeout = setting(u, "KNOWLEDGE_FS_TIMEOUT_SECONDS");
    assert_eq!(fs_timeout["to"], "30");
    assert_eq!(fs_timeout["origin"], "env");
    assert_eq!(fs_timeout["new-in-release"], true);
    assert_eq!(setting(u, "AGENT_BACKEND_API_TOKEN")["origin"], "secrets");
    assert_eq!(setting(u, "DISABLE_TELEMETRY")["origin"], "dify-cfg");
    assert_eq!(u["telemetry"]["on"], false);
    assert_eq!(u["telemetry"]["disabled-by-dify-cfg"], true);
    let images: Vec<&str> = u["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["service"].as_str().unwrap())
        .collect();
    assert_eq!(images, ["api", "web", "worker", "worker_beat"]);
    let risk = site("clinic-01")["risks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "database-migrations")
        .cloned()
        .expect("a migrations risk flag");
    assert_eq!(risk["from"], "1.16.0");

    // Egress that may reach the telemetry endpoint: Dify's default stands,
    // and dify.env does not turn it off.
    let u2 = &site("clinic-02")["upgrade"];
    assert_eq!(u2["telemetry"]["on"], true);
    assert!(
        u2["telemetry"]["why"]
            .as_str()
            .unwrap()
            .contains("egress rule `cloud` (104.16.0.0/13) to otel.dify.ai:443"),
        "{u2}"
    );
    assert!(
        u2["site-settings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["name"] != "DISABLE_TELEMETRY")
    );

    // The head office changes, but not its release.
    let hq = site("hq");
    assert_eq!(hq["differs"], true);
    assert!(hq["upgrade"].is_null(), "{hq}");
    assert!(
        hq["risks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["kind"] != "database-migrations")
    );
    let hq_text = ok(&root, &["diff", "--site", "hq"]);
    assert!(!hq_text.contains("Upgrade"), "{hq_text}");
}

#[test]
fn the_pull_request_and_commit_of_an_upgrade_carry_its_section() {
    let tmp = tempfile::tempdir().unwrap();
    let root = upgraded_fleet(tmp.path());
    let report = json(&ok(
        &root,
        &["commit", "--pr", "--wave", "1", "--format", "json"],
    ));
    let body = fs::read_to_string(root.join("out/_rollout/clinic-01.md")).unwrap();
    let title = fs::read_to_string(root.join("out/_rollout/clinic-01.title")).unwrap();
    assert!(
        title.starts_with("clinic-01: upgrade Dify to 1.16.1"),
        "{title}"
    );
    assert!(
        body.contains("## Upgrade: Dify 1.16.0 -\\> 1.16.1 (upgrade)"),
        "{body}"
    );
    assert!(body.contains("- **database migrations**: `"), "{body}");
    // The commit on the rollout branch says the same.
    let message = git(&root, &["log", "-1", "--format=%B", "rollout/clinic-01"]);
    assert!(
        message.contains("Upgrade: Dify 1.16.0 -> 1.16.1 (upgrade)"),
        "{message}"
    );
    assert!(
        message.contains("    agent_ssrf_proxy added (not run here)"),
        "{message}"
    );
    assert!(message.contains("  - database migrations: "), "{message}");
    let entries = report["sites"].as_array().unwrap();
    let clinic = entries.iter().find(|s| s["site"] == "clinic-01").unwrap();
    assert_eq!(clinic["upgrade"]["to"], "1.16.1");
    // The head office's pull request has no Upgrade section.
    let hq = fs::read_to_string(root.join("out/_rollout/hq.md")).unwrap();
    assert!(!hq.contains("Upgrade"), "{hq}");
    let hq_entry = entries.iter().find(|s| s["site"] == "hq").unwrap();
    assert!(hq_entry.get("upgrade").is_none(), "{hq_entry}");

    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.bind(|| insta::assert_snapshot!("upgrade__clinic-01__pr", redact_ids(&body)));
}

/// The body with commit ids and digests (runs of 40 or more hex digits,
/// which any change of the fleet's inputs changes) as `<id>`.
fn redact_ids(text: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    for c in text.chars().chain(std::iter::once('\n')) {
        if c.is_ascii_hexdigit() {
            run.push(c);
            continue;
        }
        if run.len() >= 40 {
            out.push_str("<id>");
        } else {
            out.push_str(&run);
        }
        run.clear();
        out.push(c);
    }
    out.pop();
    out
}

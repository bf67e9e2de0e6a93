//! Every generated file of the example fleet is accepted by the real tool
//! that consumes it: hadolint, docker compose, nginx, iptables-restore and
//! ip6tables-restore (legacy and nft backends), check-jsonschema against the
//! dify-helm chart's schema.
//!
//! `.ci/run` installs the tools and sets DIFY_CFG_REQUIRE_TOOLS=1, so a
//! missing tool fails there; elsewhere the check skips with a printed reason.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The example fleet, built once into a temporary directory.
fn built() -> &'static Path {
    static OUT: OnceLock<PathBuf> = OnceLock::new();
    OUT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let out = dir.join("out");
        let o = support::dify_cfg(&["build", "--out", out.to_str().unwrap()], support::repo());
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        out
    })
}

fn sites() -> Vec<(String, PathBuf)> {
    let mut v: Vec<_> = std::fs::read_dir(built())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_type().unwrap().is_dir() && !e.file_name().to_string_lossy().starts_with('.')
        })
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    v.sort();
    assert_eq!(v.len(), 11);
    v
}

/// Whether `tool` can run; panics in CI when it cannot.
fn have(tool: &str, probe: &[&str]) -> bool {
    let ok = Command::new(tool)
        .args(probe)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        let required = std::env::var("DIFY_CFG_REQUIRE_TOOLS").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "`{tool}` is not installed (DIFY_CFG_REQUIRE_TOOLS=1); .ci/run installs it"
        );
        eprintln!("skipped: `{tool}` is not installed here");
    }
    ok
}

fn run(cmd: &mut Command) -> (bool, String) {
    let o = cmd.output().expect("run tool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}

#[test]
fn hadolint_accepts_every_dockerfile() {
    if !have("hadolint", &["--version"]) {
        return;
    }
    for (site, dir) in sites() {
        for f in ["docker/api.Dockerfile", "docker/web.Dockerfile"] {
            let (ok, text) = run(Command::new("hadolint").arg("--no-color").arg(dir.join(f)));
            assert!(
                ok && text.trim().is_empty(),
                "hadolint on {site}/{f}:\n{text}"
            );
        }
    }
}

#[test]
fn docker_compose_accepts_every_compose_file() {
    if !have("docker-compose", &["version"]) {
        return;
    }
    for (site, dir) in sites() {
        let file = dir.join("compose.yaml");
        if !file.exists() {
            continue;
        }
        // Secrets are `${VAR:?...}` references: compose refuses the file
        // until the deploying host provides them, so give placeholders.
        let text = std::fs::read_to_string(&file).unwrap();
        let mut cmd = Command::new("docker-compose");
        cmd.current_dir(&dir)
            .args(["-f", "compose.yaml", "config", "--quiet"]);
        for var in required_vars(&text) {
            cmd.env(var, "placeholder");
        }
        let (ok, out) = run(&mut cmd);
        assert!(ok, "docker compose config on {site}:\n{out}");
        // And without them, compose refuses to start: nothing silently empty.
        let (ok, _) = run(Command::new("docker-compose")
            .current_dir(&dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .args(["-f", "compose.yaml", "config", "--quiet"]));
        assert!(!ok, "{site}: compose accepted the file without its secrets");
    }
}

/// Variable names of `${NAME:?...}` references.
fn required_vars(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .split("${")
        .skip(1)
        .filter_map(|s| s.split_once(":?").map(|(n, _)| n.to_string()))
        .filter(|n| n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .collect();
    out.sort();
    out.dedup();
    out
}

#[test]
fn nginx_accepts_every_site_config() {
    if !have("nginx", &["-v"]) {
        return;
    }
    for (site, dir) in sites() {
        let conf = dir.join("nginx/default.conf");
        if !conf.exists() {
            continue;
        }
        let prefix = tempfile::tempdir().unwrap();
        let main = prefix.path().join("nginx.conf");
        std::fs::create_dir_all(prefix.path().join("logs")).unwrap();
        std::fs::write(
            &main,
            format!(
                "pid {p}/nginx.pid;\nerror_log {p}/logs/error.log;\nevents {{}}\nhttp {{\n  access_log off;\n  include {c};\n}}\n",
                p = prefix.path().display(),
                c = conf.display()
            ),
        )
        .unwrap();
        let (ok, text) = run(Command::new("nginx")
            .arg("-t")
            .arg("-q")
            .arg("-p")
            .arg(prefix.path())
            .arg("-c")
            .arg(&main));
        assert!(ok, "nginx -t on {site}:\n{text}");
    }
}

#[test]
fn iptables_restore_accepts_every_rule_file_with_both_backends() {
    if !have("unshare", &["-rn", "true"])
        || !have("iptables-legacy-restore", &["--version"])
        || !have("iptables-nft-restore", &["--version"])
    {
        return;
    }
    let lock = tempfile::tempdir().unwrap();
    for (site, dir) in sites() {
        for (file, tools) in [
            (
                "firewall/rules.v4",
                ["iptables-legacy-restore", "iptables-nft-restore"],
            ),
            (
                "firewall/rules.v6",
                ["ip6tables-legacy-restore", "ip6tables-nft-restore"],
            ),
        ] {
            let path = dir.join(file);
            if !path.exists() {
                continue;
            }
            for tool in tools {
                // A fresh network namespace: the host's rules are never touched.
                let (ok, text) = run(Command::new("unshare")
                    .args(["-rn", tool, "--noflush", "--test"])
                    .arg(&path)
                    .env("XTABLES_LOCKFILE", lock.path().join("xtables.lock")));
                assert!(ok, "{tool} --test on {site}/{file}:\n{text}");
            }
        }
    }
}

#[test]
fn helm_values_validate_against_the_chart_schema() {
    let Some(reference) = support::reference() else {
        return;
    };
    if !have("check-jsonschema", &["--version"]) {
        return;
    }
    let schema = reference.join("dify-helm-0.38.0-rc2/values.schema.json");
    let mut seen = 0;
    for (site, dir) in sites() {
        let values = dir.join("helm/values.yaml");
        if !values.exists() {
            continue;
        }
        seen += 1;
        let (ok, text) = run(Command::new("check-jsonschema")
            .arg("--schemafile")
            .arg(&schema)
            .arg(&values));
        assert!(ok, "check-jsonschema on {site}:\n{text}");
    }
    assert_eq!(seen, 1, "hq is the one helm site");
}

#[test]
fn helm_values_use_only_key_paths_the_chart_has() {
    let Some(reference) = support::reference() else {
        return;
    };
    let chart: serde_json::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(reference.join("dify-helm-0.38.0-rc2/values.yaml")).unwrap(),
    )
    .unwrap();
    let ours: serde_json::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(built().join("hq/helm/values.yaml")).unwrap(),
    )
    .unwrap();
    let unknown = dify_cfg::plan::unknown_key_paths(&ours, &chart);
    assert!(
        unknown.is_empty(),
        "key paths the chart does not have: {unknown:?}"
    );
    assert!(dify_cfg::plan::key_paths(&ours).len() > 50);
    // The check itself catches a typo the chart's schema would let through.
    let mut typo = ours.clone();
    typo["api"]["replicaz"] = serde_json::json!(2);
    assert_eq!(
        dify_cfg::plan::unknown_key_paths(&typo, &chart),
        vec!["api.replicaz".to_string()]
    );
}

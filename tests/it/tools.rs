//! Every generated file of the example fleet is accepted by the real tool
//! that consumes it (and clinic-01 with TLS on, `tls.rs`, by nginx and
//! docker compose): hadolint, docker compose, nginx, iptables-restore and
//! ip6tables-restore (legacy and nft backends), check-jsonschema against the
//! dify-helm chart's schema, shellcheck for the pull agent, and
//! `systemd-analyze verify` for its units.
//!
//! `.ci/run` installs the tools and sets DIFY_CFG_REQUIRE_TOOLS=1, so a
//! missing tool fails there; elsewhere the check skips with a printed reason.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::build_rehearsal::model::{Instr, instructions};
use crate::support;

fn sites() -> Vec<(String, PathBuf)> {
    let mut v: Vec<_> = std::fs::read_dir(support::example_out())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_type().unwrap().is_dir()
                && !e.file_name().to_string_lossy().starts_with(['.', '_'])
        })
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    v.sort();
    assert_eq!(v.len(), 11);
    v
}

/// The sites with a pull agent (`deploy/`): the ten clinics. Every other
/// site is the helm one.
fn pull_agents() -> Vec<(String, PathBuf)> {
    let mut agents = Vec::new();
    for (site, dir) in sites() {
        if dir.join("deploy").is_dir() {
            agents.push((site, dir));
        } else {
            assert!(
                dir.join("helm/values.yaml").exists(),
                "{site}: a compose site without deploy/"
            );
        }
    }
    assert_eq!(agents.len(), 10, "the ten clinics have a pull agent");
    agents
}

/// Whether `tool` can run; panics in CI when it cannot.
fn have(tool: &str, probe: &[&str]) -> bool {
    let ok = Command::new(tool)
        .args(probe)
        .output()
        .is_ok_and(|o| o.status.success());
    support::available(
        &format!("`{tool}`"),
        ok,
        "not installed (.ci/run installs it)",
    )
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

/// `nginx -t` of the main configuration `main`, with `prefix` as nginx's.
fn nginx_t(prefix: &Path, main: &Path) -> (bool, String) {
    run(Command::new("nginx")
        .args(["-t", "-q", "-p"])
        .arg(prefix)
        .arg("-c")
        .arg(main))
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
        let main = crate::tls::main_conf(prefix.path(), &conf, false);
        let (ok, text) = nginx_t(prefix.path(), &main);
        assert!(ok, "nginx -t on {site}:\n{text}");
    }
}

/// clinic-01 with TLS on (`tests/it/tls.rs`), in every plain-http mode:
/// nginx -t with a throwaway self-signed certificate and key in place of
/// the box's. Rendered for the nginx under test (its version as the
/// nginx image's tag, which decides how HTTP/2 is switched on), and for
/// the pinned nginx image too when the nginx under test reads its config.
#[test]
fn nginx_accepts_the_tls_site_configs() {
    let Some(version) = crate::tls::local_nginx() else {
        return;
    };
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = crate::tls::self_signed(certs.path());
    let local = crate::tls::nginx_image(&version);
    let reads_http2_on = {
        let v: Vec<u32> = version.split('.').filter_map(|p| p.parse().ok()).collect();
        v >= vec![1, 25, 1]
    };
    if !reads_http2_on {
        eprintln!(
            "note: nginx {version} predates `http2 on;` (1.25.1): the pinned nginx image's TLS config is checked by the unit tests only"
        );
    }
    for http in crate::tls::MODES {
        let mut variants = vec![crate::tls::tls_clinic(http, &local)];
        if reads_http2_on {
            variants.push(crate::tls::tls_clinic(http, ""));
        }
        for files in variants {
            let prefix = tempfile::tempdir().unwrap();
            let site = prefix.path().join("default.conf");
            let conf = String::from_utf8(files["nginx/default.conf"].clone()).unwrap();
            std::fs::write(&site, crate::tls::runnable(&conf, &cert, &key, false)).unwrap();
            let main = crate::tls::main_conf(prefix.path(), &site, false);
            let (ok, text) = nginx_t(prefix.path(), &main);
            assert!(ok, "nginx -t on clinic-01 with TLS ({http:?}):\n{text}");
        }
    }
}

#[test]
fn docker_compose_accepts_the_tls_site() {
    if !have("docker-compose", &["version"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let files = crate::tls::tls_clinic(None, "");
    for (path, bytes) in &files {
        let to = dir.path().join(path);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(to, bytes).unwrap();
    }
    let text = String::from_utf8(files["compose.yaml"].clone()).unwrap();
    let mut cmd = Command::new("docker-compose");
    cmd.current_dir(dir.path())
        .args(["-f", "compose.yaml", "config", "--format", "json"]);
    for var in required_vars(&text) {
        cmd.env(var, "placeholder");
    }
    let (ok, out) = run(&mut cmd);
    assert!(ok, "docker compose config on clinic-01 with TLS:\n{out}");
    // Compose reads the box's files as read-only binds it will not create.
    let doc: serde_json::Value = serde_json::from_str(&out[out.find('{').unwrap()..]).unwrap();
    let volumes = doc["services"]["nginx"]["volumes"].as_array().unwrap();
    let key = volumes
        .iter()
        .find(|v| v["target"] == "/etc/nginx/tls/site.key")
        .expect("the key is mounted");
    assert_eq!(key["source"], "/etc/dify-cfg/tls/clinic-01.key");
    assert_eq!(key["read_only"], true);
    assert_eq!(key["bind"]["create_host_path"], false, "{key}");
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
        &std::fs::read_to_string(support::example_out().join("hq/helm/values.yaml")).unwrap(),
    )
    .unwrap();
    let unknown = dify_cfg::internals::unknown_key_paths(&ours, &chart);
    assert!(
        unknown.is_empty(),
        "key paths the chart does not have: {unknown:?}"
    );
    assert!(dify_cfg::internals::key_paths(&ours).len() > 50);
    // The check itself catches a typo the chart's schema would let through.
    let mut typo = ours.clone();
    typo["api"]["replicaz"] = serde_json::json!(2);
    assert_eq!(
        dify_cfg::internals::unknown_key_paths(&typo, &chart),
        vec!["api.replicaz".to_string()]
    );
}

/// Every image a compose file or Helm values names is built by a target of
/// the bake file, or is an upstream image pinned by a tag other than `latest`.
#[test]
fn every_image_is_baked_or_pinned_upstream() {
    let bake: serde_json::Value = serde_json::from_slice(
        &std::fs::read(support::example_out().join("_images/docker-bake.json")).unwrap(),
    )
    .unwrap();
    let baked: std::collections::BTreeSet<String> = bake["target"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|t| {
            t["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(
        baked.len(),
        2,
        "the example fleet shares one api and one web image: {baked:?}"
    );
    let registry = "registry.clinics.example.org/dify/";
    let mut named = Vec::new();
    for (site, dir) in sites() {
        if let Ok(text) = std::fs::read_to_string(dir.join("compose.yaml")) {
            let doc: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
            for (svc, def) in doc["services"].as_object().unwrap() {
                named.push((
                    format!("{site}/{svc}"),
                    def["image"].as_str().unwrap().to_string(),
                ));
            }
        }
        if let Ok(text) = std::fs::read_to_string(dir.join("helm/values.yaml")) {
            let doc: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
            for (component, image) in doc["image"].as_object().unwrap() {
                let reference = format!(
                    "{}:{}",
                    image["repository"].as_str().unwrap(),
                    image["tag"].as_str().unwrap()
                );
                named.push((format!("{site}/helm {component}"), reference));
            }
        }
    }
    assert!(named.len() > 90, "{}", named.len());
    for (who, reference) in named {
        if reference.starts_with(registry) {
            assert!(
                baked.contains(&reference),
                "{who} runs {reference}, which no bake target builds"
            );
        } else {
            let (repo, tag) = reference.rsplit_once(':').unwrap_or((&reference, ""));
            assert!(
                !repo.is_empty() && !tag.is_empty() && tag != "latest",
                "{who} runs an unpinned image {reference}"
            );
        }
    }
}

/// The stages a stage builds on (`FROM <stage>`), itself included.
fn ancestry(instrs: &[Instr], stage: &str) -> Vec<String> {
    let mut chain = vec![stage.to_string()];
    let mut cur = stage.to_string();
    while let Some(from) = instrs
        .iter()
        .find(|i| i.stage == cur && i.keyword == "FROM")
    {
        let parent = from.args.split_whitespace().next().unwrap().to_string();
        if !instrs.iter().any(|i| i.stage == parent) {
            break;
        }
        chain.push(parent.clone());
        cur = parent;
    }
    chain
}

/// Files copied from the build context before the dependency install, in
/// its stage and the stages under it: only manifests and lock files (by file
/// name) may be there, so that editing any source file leaves the
/// dependency layer cached; the source (`source`, a directory of the
/// context) is copied after it.
fn layer_problems(
    dockerfile: &str,
    install: &str,
    manifests: &[&str],
    source: &str,
) -> Vec<String> {
    let instrs = instructions(dockerfile);
    let Some(at) = instrs
        .iter()
        .position(|i| i.keyword == "RUN" && i.args.contains(install))
    else {
        return vec![format!("no dependency install `{install}`")];
    };
    let chain = ancestry(&instrs, &instrs[at].stage);
    let mut problems = Vec::new();
    for ins in &instrs[..at] {
        if !chain.contains(&ins.stage)
            || !matches!(ins.keyword.as_str(), "COPY" | "ADD")
            || ins.args.contains("--from=")
        {
            continue;
        }
        let words: Vec<&str> = ins
            .args
            .split_whitespace()
            .filter(|w| !w.starts_with("--"))
            .collect();
        for src in &words[..words.len().saturating_sub(1)] {
            let name = src.rsplit('/').next().unwrap_or(src);
            if !manifests.contains(&name) {
                problems.push(format!(
                    "`{} {}` copies `{src}` before `{install}`",
                    ins.keyword, ins.args
                ));
            }
        }
    }
    let source_copied_later = instrs[at..].iter().any(|i| {
        i.keyword == "COPY"
            && !i.args.contains("--from=")
            && i.args.split_whitespace().any(|w| w == source)
    });
    if !source_copied_later {
        problems.push(format!(
            "the source `{source}` is not copied after the dependency install"
        ));
    }
    problems
}

const UV_MANIFESTS: &[&str] = &["pyproject.toml", "uv.lock"];
const PNPM_MANIFESTS: &[&str] = &["package.json", "pnpm-lock.yaml", "pnpm-workspace.yaml"];

#[test]
fn dependency_layers_survive_source_edits() {
    for (site, dir) in sites() {
        let api = std::fs::read_to_string(dir.join("docker/api.Dockerfile")).unwrap();
        let p = layer_problems(&api, "uv sync", UV_MANIFESTS, "api");
        assert!(p.is_empty(), "{site} api: {p:?}");
        let web = std::fs::read_to_string(dir.join("docker/web.Dockerfile")).unwrap();
        let p = layer_problems(&web, "pnpm install", PNPM_MANIFESTS, ".");
        assert!(p.is_empty(), "{site} web: {p:?}");
    }
    // The check itself: a Dockerfile that copies the source first fails it,
    // and so does one that copies a member's source before the install.
    let bad = "FROM python:3.12-slim AS base\nWORKDIR /app\nCOPY api api\nFROM base AS deps\nCOPY api/pyproject.toml api/uv.lock ./\nRUN uv sync --frozen\nCOPY api api\n";
    assert_eq!(
        layer_problems(bad, "uv sync", UV_MANIFESTS, "api"),
        vec!["`COPY api api` copies `api` before `uv sync`"]
    );
    let bad = "FROM node:22 AS deps\nCOPY package.json pnpm-lock.yaml ./\nCOPY packages /app/packages\nRUN pnpm install\nCOPY . .\n";
    assert_eq!(
        layer_problems(bad, "pnpm install", PNPM_MANIFESTS, "."),
        vec!["`COPY packages /app/packages` copies `packages` before `pnpm install`"]
    );
}

/// Every compose site's pull agent passes shellcheck as a POSIX sh script,
/// with every optional check of the default set and no check disabled.
#[test]
fn shellcheck_accepts_every_pull_agent() {
    if !have("shellcheck", &["--version"]) {
        return;
    }
    for (site, dir) in pull_agents() {
        let script = dir.join("deploy/apply.sh");
        assert!(script.exists(), "{site}: deploy/ without apply.sh");
        let text = std::fs::read_to_string(&script).unwrap();
        assert!(text.starts_with("#!/bin/sh\n"), "{site}: not a sh script");
        assert!(
            !text.contains("shellcheck disable"),
            "{site}: apply.sh disables a shellcheck check"
        );
        let (ok, out) = run(Command::new("shellcheck")
            .args(["--shell=sh", "--severity=style", "--norc"])
            .arg(&script));
        assert!(ok && out.trim().is_empty(), "shellcheck on {site}:\n{out}");
    }
    // The check itself: a script with an unquoted expansion fails it.
    let bad = tempfile::tempdir().unwrap();
    let path = bad.path().join("bad.sh");
    std::fs::write(&path, "#!/bin/sh\nrm -rf $1/x\n").unwrap();
    let (ok, _) = run(Command::new("shellcheck").arg("--norc").arg(&path));
    assert!(!ok, "shellcheck accepted an unquoted expansion");
}

/// `systemd-analyze verify` accepts the pull agent's units (the pull
/// service and timer, the boot unit that loads the firewall) and prints
/// nothing (it only warns, exit 0, about unknown keys and bad values).
#[test]
fn systemd_accepts_the_pull_agent_units() {
    if !have("systemd-analyze", &["--version"]) {
        return;
    }
    let verify = |dir: &Path| {
        run(Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(dir.join("dify-cfg-pull.service"))
            .arg(dir.join("dify-cfg-pull.timer"))
            .arg(dir.join("dify-cfg-firewall.service"))
            .env("SYSTEMD_LOG_COLOR", "0"))
    };
    for (site, dir) in pull_agents() {
        let (ok, out) = verify(&dir.join("deploy"));
        assert!(
            ok && out.trim().is_empty(),
            "systemd-analyze on {site}:\n{out}"
        );
    }
    // The check itself: an unknown key is reported.
    let bad = tempfile::tempdir().unwrap();
    let clinic = support::example_out().join("clinic-01/deploy");
    for unit in [
        "dify-cfg-pull.service",
        "dify-cfg-pull.timer",
        "dify-cfg-firewall.service",
    ] {
        let text = std::fs::read_to_string(clinic.join(unit)).unwrap();
        std::fs::write(
            bad.path().join(unit),
            text.replace("OnBootSec=", "OnBootSecs=")
                .replace("RemainAfterExit=", "RemainAfterExits="),
        )
        .unwrap();
    }
    let (_, out) = verify(bad.path());
    assert!(out.contains("OnBootSecs"), "{out}");
    assert!(out.contains("RemainAfterExits"), "{out}");
}

/// The Argo CD application of the helm site, read as YAML: the chart at
/// the pinned version with the values file from the site branch.
#[test]
fn argocd_application_points_at_the_chart_and_the_site_branch() {
    let mut seen = 0;
    for (site, dir) in sites() {
        let path = dir.join("argocd/application.yaml");
        if !path.exists() {
            continue;
        }
        seen += 1;
        let app: serde_json::Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(app["apiVersion"], "argoproj.io/v1alpha1");
        assert_eq!(app["kind"], "Application");
        assert_eq!(app["metadata"]["name"], format!("dify-{site}"));
        assert_eq!(app["metadata"]["namespace"], "argocd");
        let spec = &app["spec"];
        assert_eq!(spec["project"], "default");
        let sources = spec["sources"].as_array().unwrap();
        assert_eq!(sources.len(), 2, "{site}");
        let chart = &sources[0];
        assert_eq!(
            chart["repoURL"],
            "https://borispolonsky.github.io/dify-helm"
        );
        assert_eq!(chart["chart"], "dify");
        assert_eq!(
            chart["targetRevision"],
            dify_cfg::internals::HELM_CHART_VERSION
        );
        assert_eq!(
            chart["helm"]["valueFiles"],
            serde_json::json!(["$values/helm/values.yaml"])
        );
        assert!(
            dir.join("helm/values.yaml").exists(),
            "{site}: the value file is in the tree"
        );
        let values = &sources[1];
        assert_eq!(
            values["repoURL"],
            "https://git.clinics.example.org/platform/dify-fleet.git"
        );
        assert_eq!(values["targetRevision"], format!("sites/{site}"));
        assert_eq!(values["ref"], "values");
        assert_eq!(
            spec["destination"],
            serde_json::json!({"server": "https://kubernetes.default.svc", "namespace": "dify"})
        );
        assert!(spec["syncPolicy"].get("automated").is_none(), "{site}");
        // hq autoscales: the HPA's replicas are ignored and left alone.
        assert_eq!(
            spec["syncPolicy"]["syncOptions"],
            serde_json::json!(["CreateNamespace=true", "RespectIgnoreDifferences=true"])
        );
    }
    assert_eq!(seen, 1, "hq is the one helm site");
}

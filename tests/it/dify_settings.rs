//! Every compose service's environment against Dify's own code, for every
//! site of the example fleet and a 1.16.1 variant of clinic-01:
//! - the api, worker and beat environments (dify.env, then the service's
//!   `environment:`, as compose assembles them), and hq's Helm `extraEnv`,
//!   load into `configs.DifyConfig` of the site's release with no
//!   validation error, and every name set is read by DifyConfig or by the
//!   api's own scripts (`service_env::API_READ_ELSEWHERE`);
//! - the web's entrypoint, run with the web's environment, exports values
//!   the web's `env.ts` accepts (URLs absolute, flags and numbers valid);
//! - every name upstream's compose gives a service is set, or left out on
//!   purpose (`service_env::LEFT_OUT`, each with its reason).
//!
//! They need `../shared/reference`, and the DifyConfig test a Python venv
//! with Dify's pinned pydantic-settings (`DIFY_CFG_DIFY_PYTHON`, made by
//! .ci/run); elsewhere they skip with a printed reason.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use dify_cfg::internals::service_env;
use serde_yaml_ng::Value;

use crate::support;

type Env = BTreeMap<String, String>;

/// A rendered site: its name, its Dify release and its files.
struct Rendered {
    name: String,
    release: String,
    files: BTreeMap<String, Vec<u8>>,
}

impl Rendered {
    fn text(&self, path: &str) -> Option<String> {
        self.files
            .get(path)
            .map(|b| String::from_utf8(b.clone()).expect("outputs are UTF-8"))
    }

    fn compose(&self) -> Option<Value> {
        self.text("compose.yaml")
            .map(|t| serde_yaml_ng::from_str(&t).expect("compose.yaml is YAML"))
    }
}

fn rendered(root: &Path) -> Vec<Rendered> {
    let trees = match support::compile_dir(root) {
        support::Compiled::Built(trees) => trees,
        other => panic!("the fleet does not build: {other:?}"),
    };
    trees
        .into_iter()
        .filter_map(|t| {
            let manifest: serde_json::Value =
                serde_json::from_slice(t.files.get("manifest.json")?).unwrap();
            Some(Rendered {
                name: t.name,
                release: manifest["dify-version"].as_str().unwrap().to_string(),
                files: t.files,
            })
        })
        .collect()
}

/// The example fleet, and clinic-01 on Dify 1.16.1 and with code execution
/// (the sandbox, which the edge profile leaves out) on each release.
fn sites() -> Vec<Rendered> {
    let mut out = rendered(support::repo());
    let sandbox = "\n[features]\ncode-execution = true\n\n[services.sandbox]\nmemory = \"192MiB\"\n\n[secrets]\nCODE_EXECUTION_API_KEY = { env = \"DIFY_SANDBOX_API_KEY\" }\n";
    for (name, release, more) in [
        ("clinic-01 (1.16.1)", "1.16.1", ""),
        ("clinic-01 (sandbox)", "1.16.0", sandbox),
        ("clinic-01 (1.16.1, sandbox)", "1.16.1", sandbox),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        support::copy_fleet(tmp.path());
        let file = tmp.path().join("sites/clinic-01.toml");
        let mut text = std::fs::read_to_string(&file).unwrap();
        text.push_str(&format!("\n[dify]\nversion = \"{release}\"\n{more}"));
        std::fs::write(&file, text).unwrap();
        let variant = rendered(tmp.path())
            .into_iter()
            .find(|r| r.name == "clinic-01")
            .unwrap();
        assert_eq!(variant.release, release);
        assert_eq!(
            variant.compose().unwrap()["services"]["sandbox"].is_mapping(),
            !more.is_empty(),
            "{name}"
        );
        out.push(Rendered {
            name: name.into(),
            ..variant
        });
    }
    out
}

/// The source tree of a Dify release in the reference files.
fn dify_source(reference: &Path, release: &str) -> PathBuf {
    reference.join("dify").join(release).join("source")
}

/// An env file as compose reads dify-cfg's: `NAME='literal'` or
/// `NAME=value`, comments and blank lines skipped.
fn dotenv(text: &str) -> Env {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("NAME=value");
            let v = v
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or(v);
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// A compose value after interpolation: `$$` is `$`, and a required
/// variable (`${NAME:?...}`, how secrets are referenced) takes a test value.
fn interpolate(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(r) = rest.strip_prefix("$$") {
            out.push('$');
            rest = r;
        } else if rest.starts_with("${") {
            let end = rest.find('}').expect("closed interpolation");
            let name = rest[2..end].split(':').next().unwrap();
            out.push_str(&format!("test-{}", name.to_lowercase()));
            rest = &rest[end + 1..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    out
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        other => panic!("not a scalar: {other:?}"),
    }
}

/// A compose service's environment as the container gets it: its env
/// files in order, then `environment:` (with secrets' test values), then
/// its secret files (which the start wrapper exports).
fn service_env_of(site: &Rendered, compose: &Value, service: &str) -> Option<Env> {
    let svc = compose["services"].get(service)?;
    let mut env = Env::new();
    if let Some(files) = svc.get("env_file").and_then(Value::as_sequence) {
        for f in files {
            let path = scalar(f);
            let text = site.text(path.trim_start_matches("./")).expect("env file");
            env.extend(dotenv(&text));
        }
    }
    if let Some(m) = svc.get("environment").and_then(Value::as_mapping) {
        for (k, v) in m {
            env.insert(scalar(k), interpolate(&scalar(v)));
        }
    }
    if let Some(secrets) = svc.get("secrets").and_then(Value::as_sequence) {
        for s in secrets {
            let target = scalar(&s["target"]);
            env.entry(target.clone())
                .or_insert_with(|| format!("test-{}", target.to_lowercase()));
        }
    }
    Some(env)
}

// ---------------------------------------------------------------------------
// (a) Dify's own settings classes.

/// Reads a batch of environments with `configs.DifyConfig` and prints, per
/// case, the validation errors and the names no field of DifyConfig reads.
const DIFY_CONFIG_CHECK: &str = r#"
import json, os, sys
api, cases_file = sys.argv[1], sys.argv[2]
sys.path.insert(0, api)
os.environ.clear()
from pydantic import ValidationError
import configs
cls = type(configs.dify_config)

def aliases(a):
    if a is None:
        return []
    if isinstance(a, str):
        return [a]
    if hasattr(a, "choices"):
        return [n for c in a.choices for n in aliases(c)]
    if hasattr(a, "path"):
        return [str(a.path[0])]
    return []

read = set()
for name, f in cls.model_fields.items():
    read.add(name.upper())
    for a in aliases(f.alias) + aliases(f.validation_alias):
        read.add(a.upper())

from importlib.metadata import version
out = {"fields": len(cls.model_fields), "cases": {},
       "versions": {p: version(p) for p in ("pydantic", "pydantic-core", "pydantic-settings")}}
for case in json.load(open(cases_file)):
    os.environ.clear()
    os.environ.update(case["env"])
    errors = []
    try:
        cls()
    except ValidationError as e:
        errors = ["%s: %s (given %r)" % (".".join(map(str, x["loc"])), x["msg"], x.get("input")) for x in e.errors()]
    unread = sorted(n for n in case["env"] if n.upper() not in read)
    out["cases"][case["id"]] = {"errors": errors, "unread": unread}
print(json.dumps(out))
"#;

/// The python of the venv with Dify's pinned settings libraries:
/// `DIFY_CFG_DIFY_PYTHON`, or where .ci/run makes it.
fn dify_python() -> Option<PathBuf> {
    let python = std::env::var_os("DIFY_CFG_DIFY_PYTHON")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cache/dify-cfg/dify-config-venv/bin/python"))
        })?;
    let ok = Command::new(&python)
        .args(["-c", "import pydantic_settings"])
        .output()
        .is_ok_and(|o| o.status.success());
    support::available(
        "Dify's settings venv",
        ok,
        "set DIFY_CFG_DIFY_PYTHON to the python of a venv holding Dify's pinned pydantic-settings (.ci/run makes one)",
    )
    .then_some(python)
}

#[derive(Debug, Default)]
struct Verdict {
    errors: Vec<String>,
    unread: Vec<String>,
}

/// Load each environment into the release's DifyConfig.
fn dify_config(python: &Path, source: &Path, cases: &[(String, Env)]) -> BTreeMap<String, Verdict> {
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("check.py");
    std::fs::write(&script, DIFY_CONFIG_CHECK).unwrap();
    let input = tmp.path().join("cases.json");
    let json: Vec<_> = cases
        .iter()
        .map(|(id, env)| serde_json::json!({"id": id, "env": env}))
        .collect();
    std::fs::write(&input, serde_json::to_vec(&json).unwrap()).unwrap();
    // -B: no bytecode written into the reference tree; -I: nothing from
    // this process's environment or the user's site packages.
    let out = Command::new(python)
        .args(["-B", "-I"])
        .arg(&script)
        .arg(source.join("api"))
        .arg(&input)
        .current_dir(tmp.path())
        .env_clear()
        .output()
        .expect("cannot run python");
    assert!(
        out.status.success(),
        "DifyConfig check failed to run:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["fields"].as_u64().unwrap() > 500,
        "DifyConfig has too few fields"
    );
    // The venv holds what the release's uv.lock pins.
    let lock = std::fs::read_to_string(source.join("api/uv.lock")).unwrap();
    for (package, installed) in v["versions"].as_object().unwrap() {
        let pinned = locked_version(&lock, package);
        assert_eq!(
            installed.as_str(),
            pinned.as_deref(),
            "{package}: the venv has {installed}, uv.lock pins {pinned:?}"
        );
    }
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    v["cases"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(id, c)| {
            (
                id.clone(),
                Verdict {
                    errors: strings(&c["errors"]),
                    unread: strings(&c["unread"]),
                },
            )
        })
        .collect()
}

/// The version uv.lock pins for a package.
fn locked_version(lock: &str, package: &str) -> Option<String> {
    let at = lock.find(&format!("[[package]]\nname = \"{package}\"\n"))?;
    let line = lock[at..].lines().nth(2)?;
    line.strip_prefix("version = \"")?
        .strip_suffix('"')
        .map(str::to_string)
}

/// The api/worker/beat environments of every compose site, and the api,
/// worker and beat `extraEnv` of every helm site, by release.
fn api_cases(sites: &[Rendered]) -> BTreeMap<String, Vec<(String, Env)>> {
    let mut by_release: BTreeMap<String, Vec<(String, Env)>> = BTreeMap::new();
    for site in sites {
        let cases = by_release.entry(site.release.clone()).or_default();
        if let Some(compose) = site.compose() {
            for service in ["api", "worker", "worker_beat"] {
                if let Some(env) = service_env_of(site, &compose, service) {
                    cases.push((format!("{} {service}", site.name), env));
                }
            }
        }
        if let Some(values) = site.text("helm/values.yaml") {
            let values: Value = serde_yaml_ng::from_str(&values).unwrap();
            for component in ["api", "worker", "beat"] {
                let Some(list) = values[component]["extraEnv"].as_sequence() else {
                    continue;
                };
                let env = list
                    .iter()
                    .filter(|e| e.get("value").is_some())
                    .map(|e| (scalar(&e["name"]), scalar(&e["value"])))
                    .collect();
                cases.push((format!("{} helm {component}", site.name), env));
            }
        }
    }
    by_release
}

/// What is wrong with a verdict: validation errors, and names nothing
/// reads.
fn problems(id: &str, v: &Verdict) -> Vec<String> {
    let elsewhere: BTreeSet<&str> = service_env::API_READ_ELSEWHERE
        .iter()
        .map(|(n, _, _)| *n)
        .collect();
    let mut out: Vec<String> = v.errors.iter().map(|e| format!("{id}: {e}")).collect();
    for name in &v.unread {
        if !elsewhere.contains(name.as_str()) {
            out.push(format!("{id}: sets {name}, which DifyConfig does not read"));
        }
    }
    out
}

#[test]
fn api_environments_load_into_dify_config() {
    let Some(reference) = support::reference() else {
        return;
    };
    let Some(python) = dify_python() else {
        return;
    };
    let sites = sites();
    let mut failures = Vec::new();
    for (release, mut cases) in api_cases(&sites) {
        let source = dify_source(&reference, &release);
        // Names read outside DifyConfig are read where the list says.
        for (name, file, text) in service_env::API_READ_ELSEWHERE {
            let body = std::fs::read_to_string(source.join("api").join(file)).unwrap_or_default();
            if !body.contains(text) {
                failures.push(format!("{release}: api/{file} does not read {name}"));
            }
        }
        // Planted mistakes the check must catch.
        let (_, base) = cases
            .iter()
            .find(|(id, _)| id.ends_with(" api") && !id.contains("helm"))
            .cloned()
            .expect("a compose api");
        let mut bad_port = base.clone();
        bad_port.insert("DB_PORT".into(), "abc".into());
        let mut unread = base;
        unread.insert("DIFY_CFG_NOT_A_SETTING".into(), "1".into());
        cases.push(("planted DB_PORT".into(), bad_port));
        cases.push(("planted unread".into(), unread));

        let verdicts = dify_config(&python, &source, &cases);
        let planted_port = &verdicts["planted DB_PORT"];
        assert!(
            planted_port.errors.iter().any(|e| e.contains("DB_PORT")),
            "{release}: DB_PORT='abc' passed DifyConfig: {planted_port:?}"
        );
        let planted_unread = problems("planted", &verdicts["planted unread"]);
        assert!(
            planted_unread
                .iter()
                .any(|p| p.contains("DIFY_CFG_NOT_A_SETTING")),
            "{release}: an unread name was not reported: {planted_unread:?}"
        );
        for (id, v) in &verdicts {
            if !id.starts_with("planted") {
                failures.extend(problems(&format!("{release} {id}"), v));
            }
        }
        eprintln!("{release}: {} environments checked", cases.len() - 2);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------
// (b) The web's entrypoint and env.ts.

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Url,
    Flag,
    Count,
    OneOf(Vec<String>),
    Other,
}

/// The `NEXT_PUBLIC_*` names env.ts declares in its client schema, and what
/// each must be when given (env.ts treats an empty value as unset).
fn env_ts_schema(text: &str) -> BTreeMap<String, Kind> {
    let start = text
        .find("const clientSchema = {")
        .expect("env.ts's client schema");
    let end = start + text[start..].find("satisfies ClientSchema").unwrap();
    let mut decls: Vec<(String, String)> = Vec::new();
    for line in text[start..end].lines() {
        let t = line.trim();
        if let Some((name, rest)) = t.split_once(':')
            && name.starts_with("NEXT_PUBLIC_")
            && name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        {
            decls.push((name.to_string(), rest.to_string()));
        } else if let Some((_, expr)) = decls.last_mut()
            && !t.starts_with("/*")
            && !t.starts_with('*')
            && !t.starts_with("//")
        {
            expr.push_str(t);
        }
    }
    decls
        .into_iter()
        .map(|(name, expr)| {
            let expr = expr.trim().to_string();
            let kind = if expr.contains(".url()") {
                Kind::Url
            } else if expr.starts_with("coercedBoolean") {
                Kind::Flag
            } else if expr.starts_with("coercedNumber") {
                Kind::Count
            } else if let Some(list) = expr
                .strip_prefix("z.enum([")
                .and_then(|r| r.split_once("])"))
            {
                Kind::OneOf(
                    list.0
                        .split(',')
                        .map(|s| s.trim().trim_matches('\'').to_string())
                        .filter(|s| !s.is_empty())
                        .collect(),
                )
            } else {
                Kind::Other
            };
            (name, kind)
        })
        .collect()
}

fn is_absolute_url(v: &str) -> bool {
    match v.split_once("://") {
        Some((scheme, rest)) => {
            !scheme.is_empty()
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
                && !rest.split('/').next().unwrap_or("").is_empty()
        }
        None => false,
    }
}

/// Run the release's web entrypoint with `env`, with its `exec node ...`
/// replaced by printing the environment it built.
fn web_entrypoint(source: &Path, env: &Env) -> Env {
    let script = std::fs::read_to_string(source.join("web/docker/entrypoint.sh")).unwrap();
    let patched: String = script
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("exec node") {
                "  exec env".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        patched.contains("exec env"),
        "the entrypoint no longer runs node"
    );
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("entrypoint.sh");
    std::fs::write(&file, patched).unwrap();
    let out = Command::new("/bin/sh")
        .arg(&file)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .envs(env)
        .output()
        .expect("cannot run /bin/sh");
    assert!(
        out.status.success(),
        "the web entrypoint failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// What env.ts would refuse in the exported environment.
fn refused(schema: &BTreeMap<String, Kind>, exported: &Env) -> Vec<String> {
    let mut out = Vec::new();
    for (name, kind) in schema {
        let Some(v) = exported.get(name).filter(|v| !v.is_empty()) else {
            continue;
        };
        let ok = match kind {
            Kind::Url => is_absolute_url(v),
            Kind::Flag => ["true", "false", "0", "1"].contains(&v.as_str()),
            Kind::Count => v.parse::<u64>().is_ok_and(|n| n > 0),
            Kind::OneOf(list) => list.contains(v),
            Kind::Other => true,
        };
        if !ok {
            out.push(format!("{name}={v:?} is not {kind:?}"));
        }
    }
    out
}

#[test]
fn web_entrypoint_exports_what_env_ts_accepts() {
    let Some(reference) = support::reference() else {
        return;
    };
    if !support::available("/bin/sh", Path::new("/bin/sh").exists(), "no POSIX shell") {
        return;
    }
    let mut failures = Vec::new();
    let mut checked = 0;
    for site in sites() {
        let Some(compose) = site.compose() else {
            continue;
        };
        let source = dify_source(&reference, &site.release);
        let env_ts = std::fs::read_to_string(source.join("web/env.ts")).unwrap();
        let schema = env_ts_schema(&env_ts);
        let urls: Vec<_> = schema.iter().filter(|(_, k)| **k == Kind::Url).collect();
        assert!(
            urls.iter()
                .any(|(n, _)| *n == "NEXT_PUBLIC_MARKETPLACE_API_PREFIX"),
            "env.ts's URL names not found: {urls:?}"
        );
        let env = service_env_of(&site, &compose, "web").expect("a web service");
        let exported = web_entrypoint(&source, &env);
        for p in refused(&schema, &exported) {
            failures.push(format!("{}: {p}", site.name));
        }
        checked += 1;

        // Planted: without the marketplace URL the prefix is `/api/v1`.
        let mut planted = env.clone();
        planted.remove("MARKETPLACE_API_URL");
        let bad = refused(&schema, &web_entrypoint(&source, &planted));
        assert!(
            bad.iter()
                .any(|p| p.starts_with("NEXT_PUBLIC_MARKETPLACE_API_PREFIX=")),
            "{}: a web without MARKETPLACE_API_URL passed: {bad:?}",
            site.name
        );
    }
    assert!(checked > 0, "no compose site");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------
// (c) Every name upstream gives a service.

/// Names upstream's compose gives `service` that `env` lacks and that no
/// entry of `service_env::LEFT_OUT` explains.
fn unexplained(release: &str, service: &str, env: &Env) -> Vec<String> {
    service_env::upstream_names(release, service)
        .into_iter()
        .filter(|n| !env.contains_key(*n) && service_env::left_out(service, n).is_none())
        .map(str::to_string)
        .collect()
}

#[test]
fn every_upstream_name_is_set_or_left_out_for_a_reason() {
    let mut failures = Vec::new();
    for site in sites() {
        let Some(compose) = site.compose() else {
            continue;
        };
        for service in service_env::CHECKED_SERVICES {
            let Some(env) = service_env_of(&site, &compose, service) else {
                continue;
            };
            for name in unexplained(&site.release, service, &env) {
                failures.push(format!(
                    "{} {service}: upstream sets {name}; set it, or add it to service_env::LEFT_OUT with the reason",
                    site.name
                ));
            }
            // Planted: a web without SERVER_CONSOLE_API_URL is caught.
            if *service == "web" {
                let mut planted = env.clone();
                planted.remove("SERVER_CONSOLE_API_URL");
                assert_eq!(
                    unexplained(&site.release, service, &planted),
                    ["SERVER_CONSOLE_API_URL"],
                    "{}: a missing upstream name went unnoticed",
                    site.name
                );
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Dify's entrypoint upgrades the database first where MIGRATION_ENABLED
/// is true: in the api only, never in the worker or beat (each would hold
/// its own few hundred MiB while it runs).
#[test]
fn migrations_run_in_the_api_alone() {
    for site in sites() {
        let Some(compose) = site.compose() else {
            continue;
        };
        for service in ["api", "worker", "worker_beat", "api_websocket"] {
            let Some(env) = service_env_of(&site, &compose, service) else {
                continue;
            };
            let migrates = env.get("MIGRATION_ENABLED").map(String::as_str) == Some("true");
            assert_eq!(
                migrates,
                service == "api",
                "{} {service}: MIGRATION_ENABLED={:?}",
                site.name,
                env.get("MIGRATION_ENABLED")
            );
        }
    }
}

/// Names the sandbox's process reads outside its own config.go.
const SANDBOX_READ_ELSEWHERE: &[(&str, &str)] =
    &[("GIN_MODE", "the gin web framework it serves with")];

/// The names a Go config file reads from the environment: `envconfig`
/// tags (the plugin daemon) and quoted upper-case names (the sandbox's
/// `os.Getenv` calls).
fn go_config_names(text: &str) -> BTreeSet<String> {
    text.split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            !s.is_empty()
                && s.starts_with(|c: char| c.is_ascii_uppercase())
                && s.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        })
        .map(str::to_string)
        .collect()
}

/// The names in `env` that `read` lacks and nothing else reads.
fn unread_by(service: &str, read: &BTreeSet<String>, env: &Env) -> Vec<String> {
    env.keys()
        .filter(|name| {
            let elsewhere =
                service == "sandbox" && SANDBOX_READ_ELSEWHERE.iter().any(|(n, _)| n == name);
            !read.contains(*name) && !elsewhere
        })
        .cloned()
        .collect()
}

/// Every name the plugin daemon and the sandbox are given is one their
/// own configuration reads (at the image version the site runs).
#[test]
fn daemon_and_sandbox_read_every_name_they_are_given() {
    let Some(reference) = support::reference() else {
        return;
    };
    let mut failures = Vec::new();
    for site in sites() {
        let Some(compose) = site.compose() else {
            continue;
        };
        for (service, dir, config) in [
            (
                "plugin_daemon",
                "dify-plugin-daemon",
                "internal/types/app/config.go",
            ),
            ("sandbox", "dify-sandbox", "internal/static/config.go"),
        ] {
            let Some(env) = service_env_of(&site, &compose, service) else {
                continue;
            };
            let image = scalar(&compose["services"][service]["image"]);
            let tag = image.rsplit_once(':').unwrap().1;
            let version = tag.split('-').next().unwrap();
            let path = reference
                .join(dir)
                .join(version)
                .join("source")
                .join(config);
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|_| panic!("{} is missing", path.display()));
            let read = go_config_names(&text);
            for name in unread_by(service, &read, &env) {
                failures.push(format!(
                    "{} {service}: sets {name}, which {dir} {version} does not read",
                    site.name
                ));
            }
            // Planted: a name neither reads is caught.
            let mut planted = env.clone();
            planted.insert("DIFY_CFG_NOT_A_SETTING".into(), "1".into());
            assert_eq!(
                unread_by(service, &read, &planted),
                ["DIFY_CFG_NOT_A_SETTING"],
                "{} {service}: an unread name went unnoticed",
                site.name
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The per-release lists in compiler/dify/service-env/ are what upstream's
/// compose sets.
#[test]
fn service_env_lists_match_upstream_compose() {
    let Some(reference) = support::reference() else {
        return;
    };
    let mut failures = Vec::new();
    for release in ["1.16.0", "1.16.1"] {
        let path = dify_source(&reference, release).join("docker/docker-compose.yaml");
        let compose: Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        for service in service_env::upstream_services(release) {
            let env = &compose["services"][service]["environment"];
            let upstream: BTreeSet<String> = match env {
                Value::Mapping(m) => m.keys().map(scalar).collect(),
                Value::Sequence(s) => s
                    .iter()
                    .map(|e| scalar(e).split('=').next().unwrap().to_string())
                    .collect(),
                _ => BTreeSet::new(),
            };
            let carried: BTreeSet<String> = service_env::upstream_names(release, service)
                .into_iter()
                .map(str::to_string)
                .collect();
            if upstream != carried {
                failures.push(format!(
                    "{release} {service}: upstream only {:?}, carried only {:?}",
                    upstream.difference(&carried).collect::<Vec<_>>(),
                    carried.difference(&upstream).collect::<Vec<_>>()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn compose_values_interpolate_as_compose_does() {
    assert_eq!(
        interpolate("redis://:${DIFY_REDIS_PASSWORD:?x must be set}@redis:6379/1"),
        "redis://:test-dify_redis_password@redis:6379/1"
    );
    assert_eq!(interpolate("a$$b"), "a$b");
    assert!(is_absolute_url("https://marketplace.dify.ai/api/v1"));
    assert!(!is_absolute_url("/api/v1"));
    assert!(!is_absolute_url("https:///x"));
}

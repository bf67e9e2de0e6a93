//! No secret value reaches an output. The binary runs with secret-looking
//! values in its environment (every variable the fleet's `[secrets]`
//! reference, every Dify secret setting's own name, and a few common ones)
//! and with `file` secrets whose files hold known values; then no file it
//! writes (`out/` trees, `_images`, `_rollout`), nothing it prints, and no
//! git object of the repository contains any of those values.
//!
//! Literal secrets in the input are refused: see the `literal-secret` cases
//! of the bad-input corpus (tests/bad/literal-secret/), and the check below
//! that every way of writing one is refused.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::path::Path;
use std::process::Output;

use crate::support::{
    self, Compiled, assert_ok, bin, clinic_site, compile_mem, copy_fleet, fleet_files, git_output,
    init_repo,
};

/// 20 random hex digits.
fn random() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    let a = h.finish();
    h.write_u64(a);
    format!("{a:016x}{:04x}", h.finish() & 0xffff)
}

/// Every `env = "NAME"` of a `[secrets]` table in the TOML files under `dir`.
fn referenced_env_names(dir: &Path) -> BTreeSet<String> {
    fn walk(v: &toml::Value, in_secrets: bool, out: &mut BTreeSet<String>) {
        if let toml::Value::Table(t) = v {
            for (k, v) in t {
                if in_secrets
                    && k == "env"
                    && let toml::Value::String(s) = v
                {
                    out.insert(s.clone());
                }
                walk(v, in_secrets || k == "secrets", out);
            }
        }
    }
    let mut out = BTreeSet::new();
    for e in walkdir::WalkDir::new(dir).into_iter().flatten() {
        if e.path().extension().is_some_and(|x| x == "toml") {
            let v: toml::Value = toml::from_str(&fs::read_to_string(e.path()).unwrap()).unwrap();
            walk(&v, false, &mut out);
        }
    }
    out
}

/// `file` secrets a compose site may use (not those the plugin daemon or
/// the sandbox read: they take them from their environment only).
const FILE_SECRETS: &[&str] = &["SECRET_KEY", "SMTP_PASSWORD", "TENCENT_COS_SECRET_ID"];

#[test]
fn no_secret_value_reaches_any_output() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("fleet");
    copy_fleet(&root);

    // A clinic whose secrets are files with known contents.
    let secret_dir = tmp.path().join("run-secrets");
    fs::create_dir_all(&secret_dir).unwrap();
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    // A canary: a value that is not secret and must be found, so that the
    // search below is known to look where the outputs are.
    let canary = format!("canary-{}", random());
    let mut refs = format!("canary = \"{canary}\"\n\n[secrets]\n");
    for name in FILE_SECRETS {
        let value = format!("file-secret-{}", random());
        let path = secret_dir.join(name.to_ascii_lowercase());
        fs::write(&path, format!("{value}\n")).unwrap();
        refs.push_str(&format!("{name} = {{ file = \"{}\" }}\n", path.display()));
        values.insert(format!("file {}", path.display()), value);
    }
    refs.push_str("AZURE_BLOB_ACCOUNT_KEY = { env = \"DIFY_AZURE_BLOB_ACCOUNT_KEY\" }\n");
    fs::write(root.join("sites/clinic-077.toml"), clinic_site(77, &refs)).unwrap();
    init_repo(&root, "The clinic fleet");

    // The environment: every referenced variable, every Dify secret
    // setting by its own name, and some common ones.
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    let names = referenced_env_names(&root)
        .into_iter()
        .chain(
            dify_cfg::internals::env_names()
                .iter()
                .filter(|n| dify_cfg::internals::is_secret_name(n))
                .map(|n| n.to_string()),
        )
        .chain(
            [
                "AWS_SECRET_ACCESS_KEY",
                "GITHUB_TOKEN",
                "GIT_PASSWORD",
                "REGISTRY_PASSWORD",
                "DOCKER_AUTH_CONFIG",
            ]
            .map(String::from),
        );
    for name in names {
        let value = format!("hunter2-{}", random());
        values.insert(format!("env {name}"), value.clone());
        env.insert(name, value);
    }
    assert!(
        env.contains_key("DIFY_DB_PASSWORD") && env.contains_key("DIFY_SECRET_KEY"),
        "the fleet's references were not found: {:?}",
        env.keys().collect::<Vec<_>>()
    );
    let operator_env = tmp.path().join("operator.env");
    let op_value = format!("operator-{}", random());
    fs::write(
        &operator_env,
        format!("export DIFY_DB_PASSWORD={op_value}\n"),
    )
    .unwrap();
    values.insert("DIFY_CFG_SECRETS_ENV file".into(), op_value);
    env.insert(
        "DIFY_CFG_SECRETS_ENV".into(),
        operator_env.display().to_string(),
    );

    let run = |args: &[&str]| -> Output {
        let o = bin(&root)
            .arg("--root")
            .arg(&root)
            .args(args)
            .envs(&env)
            .output()
            .unwrap();
        assert_ok(o, &format!("dify-cfg {args:?}"))
    };
    let other_out = tmp.path().join("other-out");
    let mut printed = Vec::new();
    for args in [
        &["check"][..],
        &["--format", "json", "check"],
        &["build"],
        &["build", "--out", other_out.to_str().unwrap()],
        &["explain", "--site", "clinic-077"],
        &["explain", "--site", "hq"],
        &["commit", "--pr", "--ignore-waves"],
        &["commit"],
        &["diff"],
        &["audit"],
        &["--format", "json", "audit"],
    ] {
        let o = run(args);
        printed.push((format!("{args:?} stdout"), o.stdout));
        printed.push((format!("{args:?} stderr"), o.stderr));
    }

    // Everything written and printed, and every git object.
    let mut haystack: Vec<(String, Vec<u8>)> = printed;
    for dir in [root.join("out"), other_out.clone()] {
        for (p, b) in support::snapshot(&dir) {
            haystack.push((format!("{}/{p}", dir.display()), b));
        }
    }
    let objects = git_output(&root, &["cat-file", "--batch-all-objects", "--batch"]);
    assert!(objects.status.success());
    haystack.push(("git objects".into(), objects.stdout));

    // The places secrets would be are there, as references.
    let all_files: BTreeSet<&String> = haystack.iter().map(|(p, _)| p).collect();
    for needed in ["out/_rollout/clinic-077.md", "out/_images/docker-bake.json"] {
        assert!(
            all_files.iter().any(|p| p.ends_with(needed)),
            "{needed} was not written"
        );
    }
    let compose =
        String::from_utf8(fs::read(root.join("out/clinic-077/compose.yaml")).unwrap()).unwrap();
    assert!(compose.contains("${DIFY_DB_PASSWORD"), "{compose}");
    assert!(
        compose.contains("${DIFY_AZURE_BLOB_ACCOUNT_KEY"),
        "{compose}"
    );
    assert!(compose.contains(&secret_dir.join("secret_key").display().to_string()));

    let contains =
        |bytes: &[u8], value: &str| bytes.windows(value.len()).any(|w| w == value.as_bytes());
    for place in [
        "git objects",
        "out/clinic-077/compose.yaml",
        "other-out/clinic-077/compose.yaml",
    ] {
        assert!(
            haystack
                .iter()
                .any(|(p, b)| p.ends_with(place) && contains(b, &canary)),
            "the canary label is not in {place}"
        );
    }
    let mut leaks = Vec::new();
    for (what, value) in &values {
        for (place, bytes) in &haystack {
            if bytes.windows(value.len()).any(|w| w == value.as_bytes()) {
                leaks.push(format!("the value of {what} is in {place}"));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "secret values leaked:\n{}",
        leaks.join("\n")
    );
    eprintln!(
        "{} secret values, {} outputs and all git objects: no leak",
        values.len(),
        haystack.len()
    );
}

/// Every place a secret could be written literally is refused with
/// `literal-secret`, located at the value.
#[test]
fn every_literal_secret_is_refused() {
    let cases: &[(&str, &str)] = &[
        // [secrets] takes references only.
        (
            "[secrets]\nDB_PASSWORD = \"hunter2\"\n",
            "string in [secrets]",
        ),
        ("[secrets]\nDB_PASSWORD = 12345\n", "number in [secrets]"),
        ("[secrets]\nDB_PASSWORD = 1.5\n", "float in [secrets]"),
        ("[secrets]\nDB_PASSWORD = true\n", "boolean in [secrets]"),
        (
            "[secrets]\nDB_PASSWORD = [\"hunter2\"]\n",
            "array in [secrets]",
        ),
        // Secret settings under [env], by every kind of secret name.
        ("[env]\nDB_PASSWORD = \"hunter2\"\n", "password under [env]"),
        (
            "[env]\nSECRET_KEY = \"hunter2\"\n",
            "SECRET_KEY under [env]",
        ),
        (
            "[env]\nCELERY_BROKER_URL = \"redis://:hunter2@redis:6379/1\"\n",
            "broker URL under [env]",
        ),
        (
            "[env]\nARCHIVE_STORAGE_ACCESS_KEY = \"hunter2\"\n",
            "access key under [env]",
        ),
        (
            "[env]\nAZURE_BLOB_ACCOUNT_KEY = \"aHVudGVyMg==\"\n",
            "account key under [env]",
        ),
        (
            "[env]\nPLUGIN_AZURE_BLOB_STORAGE_CONNECTION_STRING = \"AccountKey=hunter2\"\n",
            "connection string under [env]",
        ),
        (
            "[env]\nCHROMA_AUTH_CREDENTIALS = \"admin:hunter2\"\n",
            "credentials under [env]",
        ),
        (
            "[env]\nSENTRY_DSN = \"https://key@sentry.example.org/1\"\n",
            "DSN under [env]",
        ),
        (
            "[env]\nSMTP_PASSWORD = 12345\n",
            "number for a password under [env]",
        ),
        // A password inside a URL under a plain setting.
        (
            "[env]\nMILVUS_URI = \"http://root:hunter2@milvus:19530\"\n",
            "URL with a password under [env]",
        ),
        (
            "[env]\nQDRANT_URL = \"https://u:hunter2@qdrant.example.org\"\n",
            "URL with a password under [env]",
        ),
    ];
    let mut failures = Vec::new();
    for (extra, what) in cases {
        let mut files = fleet_files();
        files.retain(|p, _| !p.starts_with("sites/") || p == "sites/clinic-01.toml");
        let site = format!(
            "{}\n{extra}",
            String::from_utf8(files["sites/clinic-01.toml"].clone()).unwrap()
        );
        let line = site.lines().count();
        files.insert("sites/clinic-01.toml".into(), site.into_bytes());
        match compile_mem(&files) {
            Compiled::Invalid(found) => {
                let want = format!("sites/clinic-01.toml:{line}:");
                if !found.iter().any(|f| {
                    f.code == "literal-secret"
                        && f.at.as_deref().is_some_and(|a| a.starts_with(&want))
                }) {
                    failures.push(format!("{what}: {found:?}"));
                }
            }
            other => failures.push(format!("{what}: accepted ({other:?})")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

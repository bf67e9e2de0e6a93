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
        // Secret settings whose names no `_PASSWORD`/`_KEY` rule caught.
        (
            "[env]\nORACLE_PWD = \"hunter2\"\n",
            "ORACLE_PWD under [env]",
        ),
        (
            "[env]\nGOOGLE_STORAGE_SERVICE_ACCOUNT_JSON_BASE64 = \"eyJ0eXBlIjoic2VydmljZV9hY2NvdW50In0=\"\n",
            "a service account's key file under [env]",
        ),
        (
            "[env]\nPUBSUB_REDIS_URL = \"redis://redis:6379/3\"\n",
            "the event bus's Redis URL under [env]",
        ),
        (
            "[env]\nENTERPRISE_OTLP_HEADERS = \"authorization=hunter2\"\n",
            "OTLP headers under [env]",
        ),
        (
            "[env]\nIRIS_CONNECTION_URL = \"iris://_SYSTEM@iris:1972/USER\"\n",
            "IRIS's connection URL under [env]",
        ),
        // Values that look like credentials, whatever the setting or key.
        (
            "[env]\nLOG_LEVEL = \"-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBg\\n-----END PRIVATE KEY-----\"\n",
            "a PEM private key under a plain setting",
        ),
        (
            "[env]\nLOG_LEVEL = \"AKIAIOSFODNN7EXAMPLE\"\n",
            "an AWS access key id under a plain setting",
        ),
        (
            "[env]\nAPP_WEB_URL = \"https://x.example.org/?t=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjbGluaWMifQ.c2ln\"\n",
            "a JSON Web Token inside a URL",
        ),
        (
            "[env]\nHOSTED_OPENAI_API_BASE = \"sk-proj-4f9A1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvWx\"\n",
            "an sk- API key under a plain setting",
        ),
        (
            "[env]\nAPOLLO_CONFIG_URL = \"https://admin:hunter2@apollo.example.org\"\n",
            "a URL with a password under a plain setting",
        ),
        (
            // Still in the site's `[labels]`.
            "note = \"AKIAIOSFODNN7EXAMPLE\"\n",
            "an AWS access key id in a label",
        ),
        (
            "[gitops]\nrepository = \"https://ci:ghp_0123456789abcdefghijABCDEFGHIJ012345@git.example.org/fleet.git\"\n",
            "a token in the repository URL",
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
            Compiled::Built(_) => failures.push(format!("{what}: accepted")),
            Compiled::RenderFailed(found) => {
                failures.push(format!("{what}: accepted, then: {found:?}"))
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Words of a setting's name that say it holds a secret.
const SECRET_NAME_WORDS: &[&str] = &[
    "PASSWORD",
    "PWD",
    "SECRET",
    "TOKEN",
    "CREDENTIAL",
    "PRIVATE",
    "DSN",
    "APIKEY",
    "HEADERS",
    "CONNECTION_URL",
    "CONNECTION_STRING",
    "SERVICE_ACCOUNT",
];

/// Words of a setting's description that say it holds a secret.
const SECRET_TEXT_WORDS: &[&str] = &[
    "password",
    "secret",
    "credential",
    "private key",
    "api key",
    "access key",
    "token",
    "connection url",
    "connection string",
    "service account",
    "auth header",
];

/// Settings that look like secrets by the words above but are not, by
/// the end of their name, with why.
const NOT_SECRET_ENDINGS: &[(&str, &str)] = &[
    ("_USER", "a user name: who logs in, not the secret"),
    ("_USERNAME", "a user name: who logs in, not the secret"),
    ("_ACCOUNT", "an account name: who logs in, not the secret"),
    (
        "_CLIENT_ID",
        "an OAuth client id: public, sent to every browser",
    ),
    ("_ENABLED", "a switch"),
    ("_ENABLE", "a switch"),
    ("_MINUTES", "a duration"),
    ("_DAYS", "a duration"),
    ("_SECONDS", "a duration"),
    ("_INTERVAL", "a duration"),
    ("_PATH", "a path on the box, where a secret may be mounted"),
    ("_FILE", "a path on the box, where a secret may be mounted"),
    ("_FILENAME", "a file name, where a secret may be mounted"),
    (
        "_KEYFILE",
        "a path on the box, where a secret may be mounted",
    ),
    ("_CERTFILE", "a path on the box"),
];

/// Settings that look like secrets by the words above but are not, by
/// name, with why.
const NOT_SECRETS: &[(&str, &str)] = &[
    (
        "ORACLE_DSN",
        "`host:port/service_name`, or a service name of the wallet: no password (a URL with one is refused by its value)",
    ),
    (
        "CHROMA_AUTH_PROVIDER",
        "the name of Chroma's auth provider class",
    ),
    ("WEAVIATE_TOKENIZATION", "a text tokenizer"),
    ("HOLOGRES_TOKENIZER", "a text tokenizer"),
    ("OCEANBASE_FULLTEXT_PARSER", "a text tokenizer"),
    ("CLICKZETTA_ANALYZER_MODE", "a text tokenizer"),
    ("INDEXING_MAX_SEGMENTATION_TOKENS_LENGTH", "a length"),
    (
        "WEAVIATE_AUTHENTICATION_APIKEY_USERS",
        "user names the API keys map to",
    ),
    (
        "COOKIEYES_SITE_KEY",
        "the CookieYes site key: public, in every page",
    ),
    ("REDIS_KEY_PREFIX", "a prefix of Redis's keys"),
    (
        "SSRF_PROXY_ALLOW_PRIVATE_DOMAINS",
        "host names the SSRF proxy lets through",
    ),
    (
        "SSRF_PROXY_ALLOW_PRIVATE_IPS",
        "addresses the SSRF proxy lets through",
    ),
];

/// Whether a field of `ty` can hold text (a secret is text).
fn holds_text(ty: &str) -> bool {
    ["str", "SecretStr", "Any", "dict", "HttpUrl"]
        .iter()
        .any(|t| ty.contains(t))
}

/// Why `name` is not a secret, when it is named or shaped so above (a
/// name with `ENABLE_` in it is a switch).
fn not_secret(name: &str) -> Option<&'static str> {
    NOT_SECRETS
        .iter()
        .find(|(n, _)| *n == name)
        .or_else(|| NOT_SECRET_ENDINGS.iter().find(|(e, _)| name.ends_with(e)))
        .map(|(_, why)| *why)
        .or_else(|| name.contains("ENABLE_").then_some("a switch"))
}

#[test]
fn every_secret_setting_of_dify_is_a_secret_here() {
    let Some(reference) = support::reference() else {
        return;
    };
    let mut missed = BTreeMap::new();
    let mut exempt_used = BTreeSet::new();
    for release in dify_cfg::internals::SUPPORTED_RELEASES {
        let tree = reference.join("dify").join(release).join("source");
        // The settings classes: by type, name or description.
        let mut secretish: BTreeMap<String, String> = BTreeMap::new();
        for f in crate::reference::settings_fields(&tree.join("api/configs")) {
            let text = f.text.to_lowercase();
            let why = if f.ty.contains("SecretStr") {
                Some("its type is `SecretStr`".to_string())
            } else if !holds_text(&f.ty) {
                None
            } else if let Some(w) = SECRET_NAME_WORDS.iter().find(|w| f.name.contains(*w)) {
                Some(format!("its name says `{w}`"))
            } else if f.name.ends_with("_KEY") || f.name.contains("_KEY_") {
                Some("its name says `KEY`".to_string())
            } else {
                SECRET_TEXT_WORDS
                    .iter()
                    .find(|w| text.contains(*w))
                    .map(|w| format!("its declaration says `{w}`"))
            };
            if let Some(why) = why {
                secretish.entry(f.name).or_insert(why);
            }
        }
        // The env examples: by name.
        let mut examples = BTreeSet::new();
        crate::reference::env_example_names(&tree.join("docker"), &mut examples);
        for name in examples {
            if let Some(w) = SECRET_NAME_WORDS.iter().find(|w| name.contains(*w)) {
                secretish
                    .entry(name)
                    .or_insert(format!("its name says `{w}` (env example)"));
            } else if name.ends_with("_KEY") || name.contains("_KEY_") {
                secretish
                    .entry(name)
                    .or_insert("its name says `KEY` (env example)".into());
            }
        }
        assert!(
            secretish.contains_key("DB_PASSWORD") && secretish.len() > 100,
            "{release}: the settings were not read: {secretish:?}"
        );
        for (name, why) in secretish {
            if dify_cfg::internals::is_secret_name(&name) {
                continue;
            }
            match not_secret(&name) {
                Some(_) => {
                    exempt_used.insert(name);
                }
                None => {
                    missed.insert(name, format!("{release}: {why}"));
                }
            }
        }
    }
    assert!(
        missed.is_empty(),
        "settings that hold a secret by their type, name or description, but dify-cfg would \
         write them literally (add them to compiler/dify/secret-names.txt, or to NOT_SECRETS \
         with why):\n{}",
        missed
            .iter()
            .map(|(n, why)| format!("  {n}: {why}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let stale: Vec<&str> = NOT_SECRETS
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| !exempt_used.contains(*n))
        .collect();
    assert!(
        stale.is_empty(),
        "NOT_SECRETS names settings no release flags: {stale:?}"
    );
}

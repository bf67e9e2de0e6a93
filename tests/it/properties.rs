//! Property tests (proptest) of the front half and the renderer:
//!
//! - arbitrary TOML trees in the input language (known and unknown keys,
//!   wrong types, random and control-character strings, numbers at their
//!   bounds, nested tables and arrays), written as a site or a profile of a
//!   small fleet, never make `check` or `build` panic, through the library
//!   and (for a sample) the binary, whose exit code is 0 or 2;
//! - resolving and validating the same inputs twice gives the same merged
//!   trees, sites and diagnostics;
//! - a fleet whose site files were created in another order (so that the
//!   file system lists them differently), under another root path, builds
//!   to the same bytes for every site.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::support::{self, Compiled, clinic_site, compile_dir, repo};
use proptest::prelude::*;
use proptest::test_runner::Config;
use toml::{Table, Value};

// ---------------------------------------------------------------------------
// Generators

/// Keys of the input language at every level, and a few near misses.
const KEYS: &[&str] = &[
    "description",
    "extends",
    "profile",
    "target",
    "dify",
    "images",
    "build",
    "device",
    "services",
    "database",
    "redis",
    "vector-store",
    "network",
    "login",
    "features",
    "helm",
    "env",
    "secrets",
    "rollout",
    "labels",
    "gitops",
    "version",
    "sandbox",
    "plugin-daemon",
    "agent-backend",
    "local-sandbox",
    "postgres",
    "nginx",
    "ssrf-proxy",
    "repository",
    "tag",
    "digest",
    "registry",
    "api-base",
    "web-base",
    "platforms",
    "memory",
    "cpus",
    "reserve",
    "headroom",
    "api",
    "worker",
    "worker-beat",
    "web",
    "db",
    "api-websocket",
    "enabled",
    "memory-request",
    "cpus-request",
    "replicas",
    "workers",
    "worker-connections",
    "autoscaling",
    "min-replicas",
    "max-replicas",
    "target-cpu",
    "engine",
    "external",
    "max-connections",
    "shared-buffers",
    "work-mem",
    "maintenance-work-mem",
    "effective-cache-size",
    "pool-size",
    "max-overflow",
    "vector-connections",
    "plugin-connections",
    "host",
    "port",
    "maxmemory",
    "policy",
    "hostname",
    "lan",
    "address",
    "lan6",
    "admin",
    "ssh-from",
    "ssh-port",
    "public-routes",
    "egress",
    "http-port",
    "name",
    "cidr",
    "ports",
    "allow-register",
    "allow-create-workspace",
    "email-password",
    "email-code",
    "social-oauth",
    "collaboration",
    "code-execution",
    "marketplace",
    "plugin-debugging",
    "namespace",
    "secret-store",
    "secret-store-kind",
    "ingress-class",
    "wave",
    "branch-prefix",
    "pull-interval",
    "confirm-timeout",
    "keep-backups",
    "report-applied",
    "argocd-namespace",
    "argocd-project",
    "cluster",
    "file",
    "remote",
    "property",
    "LOG_LEVEL",
    "DB_PASSWORD",
    "REDIS_PASSWORD",
    "SECRET_KEY",
    "CELERY_BROKER_URL",
    "MODE",
    "MAIL_DEFAULT_SEND_FROM",
    "GUNICORN_TIMEOUT",
    "memroy",
    "servics",
    "Memory",
    "",
];

/// The type a path of the language takes.
#[derive(Debug, Clone, Copy)]
enum Ty {
    Str,
    Int,
    Num,
    Bool,
    Strs,
    Egress,
    Secret,
}

/// Paths into the language where a value means something, with its type.
const PATHS: &[(&str, Ty)] = &[
    ("description", Ty::Str),
    ("extends", Ty::Str),
    ("profile", Ty::Str),
    ("target", Ty::Str),
    ("vector-store", Ty::Str),
    ("dify.version", Ty::Str),
    ("images.sandbox.tag", Ty::Str),
    ("images.nginx.repository", Ty::Str),
    ("images.redis.digest", Ty::Str),
    ("build.registry", Ty::Str),
    ("build.api-base.tag", Ty::Str),
    ("build.web-base.repository", Ty::Str),
    ("build.platforms", Ty::Strs),
    ("device.memory", Ty::Str),
    ("device.cpus", Ty::Num),
    ("device.reserve", Ty::Str),
    ("device.headroom", Ty::Str),
    ("services.api.memory", Ty::Str),
    ("services.api.cpus", Ty::Num),
    ("services.api.replicas", Ty::Int),
    ("services.api.workers", Ty::Int),
    ("services.api.worker-connections", Ty::Int),
    ("services.worker.memory", Ty::Str),
    ("services.redis.memory", Ty::Str),
    ("services.db.memory", Ty::Str),
    ("services.nginx.cpus", Ty::Num),
    ("services.sandbox.enabled", Ty::Bool),
    ("services.api-websocket.enabled", Ty::Bool),
    ("services.web.memory-request", Ty::Str),
    ("services.api.autoscaling.max-replicas", Ty::Int),
    ("services.api.autoscaling.min-replicas", Ty::Int),
    ("services.api.autoscaling.target-cpu", Ty::Str),
    ("database.engine", Ty::Str),
    ("database.external.host", Ty::Str),
    ("database.external.port", Ty::Int),
    ("database.shared-buffers", Ty::Str),
    ("database.max-connections", Ty::Int),
    ("database.pool-size", Ty::Int),
    ("database.max-overflow", Ty::Int),
    ("database.vector-connections", Ty::Int),
    ("database.plugin-connections", Ty::Int),
    ("redis.maxmemory", Ty::Str),
    ("redis.policy", Ty::Str),
    ("redis.external.host", Ty::Str),
    ("network.hostname", Ty::Str),
    ("network.lan", Ty::Str),
    ("network.address", Ty::Str),
    ("network.lan6", Ty::Str),
    ("network.admin", Ty::Strs),
    ("network.ssh-from", Ty::Strs),
    ("network.ssh-port", Ty::Int),
    ("network.http-port", Ty::Int),
    ("network.public-routes", Ty::Strs),
    ("network.egress", Ty::Egress),
    ("network.tls.certificate", Ty::Str),
    ("network.tls.key", Ty::Str),
    ("network.tls.port", Ty::Int),
    ("network.tls.http", Ty::Str),
    ("network.tls.enabled", Ty::Bool),
    ("login.allow-register", Ty::Bool),
    ("features.collaboration", Ty::Bool),
    ("features.code-execution", Ty::Bool),
    ("features.plugin-debugging", Ty::Bool),
    ("helm.namespace", Ty::Str),
    ("helm.ingress-class", Ty::Str),
    ("helm.secret-store-kind", Ty::Str),
    ("env.LOG_LEVEL", Ty::Str),
    ("env.MAIL_DEFAULT_SEND_FROM", Ty::Str),
    ("env.GUNICORN_TIMEOUT", Ty::Int),
    ("env.DB_PASSWORD", Ty::Str),
    ("env.NOT_A_DIFY_SETTING", Ty::Str),
    ("secrets.DB_PASSWORD", Ty::Secret),
    ("secrets.SECRET_KEY", Ty::Secret),
    ("secrets.REDIS_PASSWORD", Ty::Secret),
    ("rollout.wave", Ty::Int),
    ("labels.clinic", Ty::Str),
    ("labels.extra-label", Ty::Str),
    ("gitops.repository", Ty::Str),
    ("gitops.branch-prefix", Ty::Str),
    ("gitops.pull-interval", Ty::Str),
    ("gitops.confirm-timeout", Ty::Str),
    ("gitops.keep-backups", Ty::Int),
    ("gitops.report-applied", Ty::Bool),
    ("gitops.cluster", Ty::Str),
    ("gitops.argocd-project", Ty::Str),
];

/// Strings of the kinds the language takes, near misses, and garbage.
fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "512MiB", "4GiB", "0MiB", "512MB", "4gb", "-1GiB", "99999999999TiB", "20%", "101%",
            "-5%", "NaN%", "10.20.1.0/24", "10.20.1.10", "10.20.1.1/24", "300.1.1.1/8",
            "fd00::/64", "::/0", "0.0.0.0/0", "/v1", "/console/api", "v1", "/../etc",
            "compose", "helm", "Compose", "edge-4gb", "multi-branch", "cloud", "nope", "1.16.0",
            "1.15.0", "latest", "sha256:0000", "postgresql", "mysql", "allkeys-lru",
            "volatile-lru", "pgvector", "https://git.example.org/x.git", "ssh://git@h/x.git",
            "git@h:x.git", "http://h/x.git", "5min", "0s", "99999999d", "sites/", "/abs/",
            "clinic-01", "..", "a/b", "ÄÖÜ", "", " ", "x".repeat(300).leak(),
            "/etc/dify-cfg/tls/a.crt", "/etc/tls/../a.key", "redirect", "refuse", "allow-lan",
        ])
        .prop_map(str::to_string),
        2 => any::<String>(),
        1 => "[\\PC]{0,40}",
        1 => "[\\x00-\\x1f\\x7f\u{2028}\u{202e}\u{200f}'\"\\\\$#{}%]{0,12}",
    ]
}

fn integer() -> impl Strategy<Value = i64> {
    prop_oneof![
        prop::sample::select(vec![
            i64::MIN,
            i64::MIN + 1,
            -1,
            0,
            1,
            2,
            22,
            80,
            100,
            101,
            443,
            65_535,
            65_536,
            i64::from(u16::MAX) + 1,
            i64::from(u32::MAX),
            i64::from(u32::MAX) + 1,
            i64::MAX,
        ]),
        any::<i64>(),
    ]
}

fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        prop::sample::select(vec![
            0.0,
            -0.0,
            0.5,
            1e-300,
            1e300,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MAX,
            f64::MIN_POSITIVE,
            0.1,
            2.5,
            64.0,
            -1.5,
        ]),
        any::<f64>(),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(KEYS).prop_map(str::to_string),
        1 => "[a-z][a-z0-9-]{0,10}",
        1 => any::<String>(),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => string().prop_map(Value::String),
        2 => integer().prop_map(Value::Integer),
        1 => float().prop_map(Value::Float),
        1 => any::<bool>().prop_map(Value::Boolean),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..6)
                .prop_map(|m| Value::Table(m.into_iter().collect())),
        ]
    })
}

/// Set `path` in `t`, replacing whatever is in the way.
fn set(t: &mut Table, path: &[&str], v: Value) {
    let (last, parents) = path.split_last().unwrap();
    let mut cur = t;
    for p in parents {
        let slot = cur
            .entry(p.to_string())
            .or_insert_with(|| Value::Table(Table::new()));
        if !slot.is_table() {
            *slot = Value::Table(Table::new());
        }
        cur = slot.as_table_mut().unwrap();
    }
    cur.insert(last.to_string(), v);
}

/// A value of a type, its contents random.
fn typed(ty: Ty) -> BoxedStrategy<Value> {
    match ty {
        Ty::Str => string().prop_map(Value::String).boxed(),
        Ty::Int => integer().prop_map(Value::Integer).boxed(),
        Ty::Num => prop_oneof![
            float().prop_map(Value::Float),
            integer().prop_map(Value::Integer)
        ]
        .boxed(),
        Ty::Bool => any::<bool>().prop_map(Value::Boolean).boxed(),
        Ty::Strs => prop::collection::vec(string().prop_map(Value::String), 0..4)
            .prop_map(Value::Array)
            .boxed(),
        Ty::Egress => prop::collection::vec(
            (
                string(),
                string(),
                prop::collection::vec(integer().prop_map(Value::Integer), 0..3),
            )
                .prop_map(|(name, cidr, ports)| {
                    let mut t = Table::new();
                    t.insert("name".into(), Value::String(name));
                    t.insert("cidr".into(), Value::String(cidr));
                    t.insert("ports".into(), Value::Array(ports));
                    Value::Table(t)
                }),
            0..3,
        )
        .prop_map(Value::Array)
        .boxed(),
        Ty::Secret => prop::collection::btree_map(
            prop::sample::select(vec!["env", "file", "remote", "property"]),
            string(),
            0..3,
        )
        .prop_map(|m| {
            Value::Table(
                m.into_iter()
                    .map(|(k, v)| (k.to_string(), Value::String(v)))
                    .collect(),
            )
        })
        .boxed(),
    }
}

/// Every value the example fleet sets, by dotted path: valid values, to be
/// moved between files and sites (a clinic gets the cloud's settings).
fn fleet_values() -> Vec<(String, Value)> {
    fn walk(prefix: &str, t: &Table, out: &mut Vec<(String, Value)>) {
        for (k, v) in t {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                Value::Table(inner) => walk(&path, inner, out),
                other => out.push((path, other.clone())),
            }
        }
    }
    let mut out = Vec::new();
    for dir in ["profiles", "sites"] {
        for e in fs::read_dir(repo().join(dir)).unwrap().flatten() {
            let t: Table = toml::from_str(&fs::read_to_string(e.path()).unwrap()).unwrap();
            walk("", &t, &mut out);
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// One change to a file.
fn edit() -> impl Strategy<Value = (Vec<String>, Value)> {
    let split = |p: &str| p.split('.').map(str::to_string).collect::<Vec<_>>();
    prop_oneof![
        // A valid value of the fleet, at its own path.
        3 => prop::sample::select(fleet_values()).prop_map(move |(p, v)| (split(&p), v)),
        // The right type, random contents.
        3 => prop::sample::select(PATHS)
            .prop_flat_map(move |(p, ty)| (Just(split(p)), typed(ty))),
        // Any value at a known path.
        1 => (prop::sample::select(PATHS).prop_map(move |(p, _)| split(p)), value()),
        // Any value anywhere.
        1 => (prop::collection::vec(key(), 1..4), value()),
    ]
}

/// Which file a generated document becomes.
#[derive(Debug, Clone, Copy)]
enum Slot {
    /// A new site `sites/fuzz.toml`.
    NewSite,
    /// Replaces `sites/clinic-01.toml`.
    Clinic,
    /// Replaces `sites/hq.toml` (helm).
    Hq,
    /// Replaces `profiles/multi-branch.toml` (the clinics' profile).
    Profile,
    /// Replaces `profiles/edge-4gb.toml` (the root of the clinics' chain).
    RootProfile,
}

impl Slot {
    fn path(self) -> &'static str {
        match self {
            Slot::NewSite => "sites/fuzz.toml",
            Slot::Clinic => "sites/clinic-01.toml",
            Slot::Hq => "sites/hq.toml",
            Slot::Profile => "profiles/multi-branch.toml",
            Slot::RootProfile => "profiles/edge-4gb.toml",
        }
    }
}

/// A generated input file.
#[derive(Debug, Clone)]
enum Doc {
    /// A valid file of the fleet with edits applied (deep and typed).
    Edited(Slot, Vec<(Vec<String>, Value)>),
    /// A tree of random keys and values.
    Random(Slot, BTreeMap<String, Value>),
    /// Text of the first kind, cut or spliced with random text (syntax).
    Mangled(Slot, Vec<(Vec<String>, Value)>, usize, String),
}

fn slot() -> impl Strategy<Value = Slot> {
    prop_oneof![
        Just(Slot::NewSite),
        Just(Slot::Clinic),
        Just(Slot::Hq),
        Just(Slot::Profile),
        Just(Slot::RootProfile),
    ]
}

fn doc() -> impl Strategy<Value = Doc> {
    prop_oneof![
        5 => (slot(), prop::collection::vec(edit(), 1..4)).prop_map(|(s, e)| Doc::Edited(s, e)),
        2 => (slot(), prop::collection::btree_map(key(), value(), 0..8))
            .prop_map(|(s, m)| Doc::Random(s, m)),
        1 => (slot(), prop::collection::vec(edit(), 0..3), any::<usize>(), any::<String>())
            .prop_map(|(s, e, at, junk)| Doc::Mangled(s, e, at, junk)),
    ]
}

// ---------------------------------------------------------------------------
// A small fleet on disk

/// The fleet the documents go into: the example profiles, clinic-01,
/// clinic-02 and hq.
fn small_fleet() -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    for rel in [
        "profiles/cloud.toml",
        "profiles/edge-4gb.toml",
        "profiles/multi-branch.toml",
        "sites/clinic-01.toml",
        "sites/clinic-02.toml",
        "sites/hq.toml",
    ] {
        files.insert(
            rel.to_string(),
            fs::read_to_string(repo().join(rel)).unwrap(),
        );
    }
    files
}

fn edited(base: &str, edits: &[(Vec<String>, Value)]) -> Option<String> {
    let mut t: Table = toml::from_str(base).unwrap();
    for (path, v) in edits {
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        set(&mut t, &path, v.clone());
    }
    toml::to_string(&t).ok()
}

/// The fleet with the document in its slot; `None` when the generated
/// tree has no TOML form (the serializer refuses it).
fn fleet_with(doc: &Doc) -> Option<BTreeMap<String, Vec<u8>>> {
    let files = small_fleet();
    let base_for = |slot: Slot, files: &BTreeMap<String, String>| match slot {
        Slot::NewSite => clinic_site(200, ""),
        s => files[s.path()].clone(),
    };
    let (slot, bytes) = match doc {
        Doc::Edited(slot, edits) => (*slot, edited(&base_for(*slot, &files), edits)?.into_bytes()),
        Doc::Random(slot, map) => {
            let t: Table = map.clone().into_iter().collect();
            (*slot, toml::to_string(&t).ok()?.into_bytes())
        }
        Doc::Mangled(slot, edits, at, junk) => {
            let mut text = edited(&base_for(*slot, &files), edits)?.into_bytes();
            let at = at % (text.len() + 1);
            text.truncate(at);
            text.extend_from_slice(junk.as_bytes());
            if at % 3 == 0 {
                // Not UTF-8 either.
                text.push(0xff);
            }
            (*slot, text)
        }
    };
    let mut out: BTreeMap<String, Vec<u8>> = files
        .into_iter()
        .map(|(p, t)| (p, t.into_bytes()))
        .collect();
    out.insert(slot.path().to_string(), bytes);
    Some(out)
}

fn write_root(root: &Path, files: &BTreeMap<String, Vec<u8>>, order: &[usize]) {
    let entries: Vec<(&String, &Vec<u8>)> = files.iter().collect();
    for &i in order {
        let (rel, bytes) = entries[i];
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }
}

/// Exit code and stderr of the binary.
fn run_bin(args: &[&str]) -> (Option<i32>, String) {
    let o = support::bin(Path::new("."))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run dify-cfg: {e}"));
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

static SAMPLED: AtomicUsize = AtomicUsize::new(0);

/// A temporary directory on another file system than the default one when
/// there is one (`/dev/shm`, a tmpfs, lists files newest first; ext4 lists
/// them in hash order), so that two roots list their sites differently.
fn other_tempdir() -> tempfile::TempDir {
    tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| tempfile::tempdir().unwrap())
}

proptest! {
    #![proptest_config(Config { cases: 96, failure_persistence: None, ..Config::default() })]

    /// check and build never panic, whatever the file says.
    #[test]
    fn arbitrary_inputs_never_panic(doc in doc()) {
        let Some(files) = fleet_with(&doc) else { return Ok(()) };
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let order: Vec<usize> = (0..files.len()).collect();
        write_root(&root, &files, &order);
        // The library: load, analyze, render (a panic fails the case).
        let compiled = compile_dir(&root);
        // A sample through the binary: exit 0 or 2, never a panic.
        if SAMPLED.fetch_add(1, Ordering::SeqCst).is_multiple_of(12) {
            let r = root.to_str().unwrap();
            let out = tmp.path().join("out");
            for args in [
                vec!["--root", r, "check"],
                vec!["--root", r, "build", "--out", out.to_str().unwrap()],
                vec!["--root", r, "--format", "json", "check"],
            ] {
                let (code, err) = run_bin(&args);
                prop_assert!(!err.contains("panicked"), "{args:?}: {err}");
                let want = if matches!(compiled, Compiled::Built(_)) { 0 } else { 2 };
                prop_assert_eq!(code, Some(want), "{:?}: {}", args, err);
            }
        }
    }
}

proptest! {
    #![proptest_config(Config { cases: 48, failure_persistence: None, ..Config::default() })]

    /// The same chain, resolved and validated twice (from two loads), gives
    /// the same merged trees, sites and diagnostics.
    #[test]
    fn merging_is_deterministic(
        profile in prop::collection::vec(edit(), 0..4),
        root_profile in prop::collection::vec(edit(), 0..4),
        site in prop::collection::vec(edit(), 0..4),
    ) {
        let base = small_fleet();
        let mut files: BTreeMap<String, Vec<u8>> =
            base.iter().map(|(p, t)| (p.clone(), t.clone().into_bytes())).collect();
        for (rel, edits) in [
            ("profiles/multi-branch.toml", &profile),
            ("profiles/edge-4gb.toml", &root_profile),
            ("sites/clinic-01.toml", &site),
        ] {
            let Some(text) = edited(&base[rel], edits) else { return Ok(()) };
            files.insert(rel.to_string(), text.into_bytes());
        }
        let tmp = tempfile::tempdir().unwrap();
        write_root(tmp.path(), &files, &(0..files.len()).collect::<Vec<_>>());
        let once = || {
            let (inputs, diags) = dify_cfg::internals::read_inputs(tmp.path());
            let mut d = diags.clone();
            let fleet = dify_cfg::internals::resolve(&inputs, &mut d);
            let merged: Vec<String> = fleet
                .sites
                .iter()
                .map(|s| format!("{} {:?} {:?} {:?}", s.name, s.chain, s.table, s.layer))
                .collect();
            let analysis = dify_cfg::internals::analyze(&inputs, diags);
            let sites: Vec<String> = analysis.sites.iter().map(|v| format!("{v:?}")).collect();
            let diagnostics = format!("{:?}", analysis.diagnostics);
            (merged, format!("{d:?}"), sites, diagnostics)
        };
        let (a, b) = (once(), once());
        prop_assert_eq!(&a.0, &b.0, "merged trees differ");
        prop_assert_eq!(&a.1, &b.1, "resolve diagnostics differ");
        prop_assert_eq!(&a.2, &b.2, "validated sites differ");
        prop_assert_eq!(&a.3, &b.3, "diagnostics differ");
    }
}

/// Valid variations of a clinic: labels, description, env values, an egress
/// rule; numbered so that LANs and names are distinct.
fn clinic_variant() -> impl Strategy<Value = String> {
    (
        "[a-z0-9 ]{0,20}",
        prop::collection::btree_map("[a-z][a-z0-9-]{0,8}".prop_filter("taken", |k| k != "clinic"), "[\\PC&&[^\u{200E}\u{200F}\u{202A}-\u{202E}\u{2066}-\u{2069}]]{0,16}", 0..4),
        any::<bool>(),
        prop::option::of("[a-zA-Z0-9@._ -]{0,30}"),
    )
        .prop_map(|(desc, labels, egress, mail)| {
            let mut extra = String::new();
            for (k, v) in labels {
                extra.push_str(&format!("{k} = {}\n", Value::String(v)));
            }
            if let Some(m) = mail {
                extra.push_str(&format!("\n[env]\nMAIL_DEFAULT_SEND_FROM = {}\n", Value::String(m)));
            }
            if egress {
                extra.push_str(
                    "\n[[network.egress]]\nname = \"llm-gateway\"\ncidr = \"10.0.0.40/32\"\nports = [443]\n\n[[network.egress]]\nname = \"backup\"\ncidr = \"10.0.0.50/32\"\nports = [22, 873]\n",
                );
            }
            format!("# {desc}\n{extra}")
        })
}

proptest! {
    #![proptest_config(Config { cases: 16, failure_persistence: None, ..Config::default() })]

    /// Site files created in two different orders (so the file system lists
    /// them differently) under two different roots build to the same bytes.
    #[test]
    fn build_order_does_not_change_a_byte(
        variants in prop::collection::vec(clinic_variant(), 2..10),
        shuffle in any::<prop::sample::Index>(),
        seed in any::<u64>(),
    ) {
        let mut files: BTreeMap<String, Vec<u8>> = small_fleet()
            .into_iter()
            .map(|(p, t)| (p, t.into_bytes()))
            .collect();
        for (i, v) in variants.iter().enumerate() {
            let n = 100 + i;
            // The variant's labels go at the end, into `[labels]`.
            files.insert(format!("sites/clinic-{n:03}.toml"), clinic_site(n, v).into_bytes());
        }
        // Two orders: sorted, and a permutation from the seed.
        let n = files.len();
        let first: Vec<usize> = (0..n).collect();
        let mut second: Vec<usize> = (0..n).rev().collect();
        let mut state = seed | 1;
        for i in (1..n).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            second.swap(i, (state as usize) % (i + 1));
        }
        second.rotate_left(shuffle.index(n));
        let tmp = tempfile::tempdir().unwrap();
        let other = other_tempdir();
        let (a, b) = (tmp.path().join("a"), other.path().join("somewhere/else/b"));
        write_root(&a, &files, &first);
        // Leave holes in the second root's directories, so that even a file
        // system that lists in creation order lists differently.
        fs::create_dir_all(b.join("sites")).unwrap();
        for i in 0..5 {
            fs::write(b.join(format!("sites/zz-gone-{i}.toml")), "x").unwrap();
        }
        write_root(&b, &files, &second);
        for i in 0..5 {
            fs::remove_file(b.join(format!("sites/zz-gone-{i}.toml"))).unwrap();
        }
        let listed = |root: &Path| -> Vec<String> {
            fs::read_dir(root.join("sites")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
        };
        let (la, lb) = (listed(&a), listed(&b));
        let (Compiled::Built(ta), Compiled::Built(tb)) = (compile_dir(&a), compile_dir(&b)) else {
            panic!("the fleet does not build: {:?}", compile_dir(&a));
        };
        prop_assert_eq!(ta.len(), tb.len());
        for (x, y) in ta.iter().zip(&tb) {
            prop_assert_eq!(&x.name, &y.name);
            prop_assert!(x.files == y.files, "site {} differs (listing {:?} vs {:?})", x.name, la, lb);
        }
        // The binary agrees, file for file, including `_images`.
        if seed.is_multiple_of(4) {
            let (oa, ob) = (tmp.path().join("out-a"), tmp.path().join("out-b"));
            for (root, out) in [(&a, &oa), (&b, &ob)] {
                let (code, err) = run_bin(&["--root", root.to_str().unwrap(), "build", "--out", out.to_str().unwrap()]);
                prop_assert_eq!(code, Some(0), "{}", err);
            }
            let (sa, sb) = (support::snapshot(&oa), support::snapshot(&ob));
            prop_assert!(sa == sb, "the binary's builds differ");
        }
    }
}

/// Inputs made of thousands of mistakes are refused (exit 2 with text and
/// JSON output), neither accepted nor crashed. No time is asserted, but the
/// sizes make a report slower than in proportion to the input show as a
/// test that takes minutes: a quadratic diagnostic list, a re-parse per
/// mistake, a whole-file excerpt per diagnostic and fuzzy matching of huge
/// names each did.
#[test]
fn inputs_made_of_mistakes_are_refused_not_accepted_or_crashed() {
    let head = "profile = \"multi-branch\"\n[network]\nlan = \"10.20.99.0/24\"\naddress = \"10.20.99.10\"\n";
    let cases: Vec<(&str, String)> = vec![
        (
            "20000 unknown keys",
            (0..20_000).map(|i| format!("k{i} = 1\n")).collect(),
        ),
        (
            "10000 unknown settings",
            format!(
                "{head}[env]\n{}",
                (0..10_000)
                    .map(|i| format!("ZZZ_{i} = 1\n"))
                    .collect::<String>()
            ),
        ),
        (
            "20000 bad labels",
            format!(
                "{head}[labels]\n{}",
                (0..20_000)
                    .map(|i| format!("k{i} = \"\\u202e\"\n"))
                    .collect::<String>()
            ),
        ),
        (
            "5000 bad networks on one line",
            format!("{head}admin = [{}]\n", vec!["\"x\""; 5_000].join(",")),
        ),
        (
            "a 500 KB key",
            format!("{head}[env]\n{} = 1\n", "A".repeat(500_000)),
        ),
    ];
    for (what, text) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let mut files = small_fleet();
        files.insert("sites/zz-mistakes.toml".into(), text);
        for (rel, t) in &files {
            let p = tmp.path().join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, t).unwrap();
        }
        for format in ["text", "json"] {
            let (code, err) = run_bin(&[
                "--root",
                tmp.path().to_str().unwrap(),
                "--format",
                format,
                "check",
            ]);
            assert_eq!(code, Some(2), "{what}: {}", &err[..err.len().min(2000)]);
        }
    }
}

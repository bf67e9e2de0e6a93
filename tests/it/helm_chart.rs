//! The Helm site's values against the dify-helm chart's templates, read as
//! text (no helm binary): every component the values enable gets each
//! setting and secret key that its program requires (the plugin daemon's
//! config struct, Dify's pgvector store, the Secret keys the chart's own
//! ExternalSecrets write), from the chart's ConfigMap, a remote reference
//! that is not null, or an `extraEnv` entry; nothing the values set is
//! ignored by the templates; the ingress and the chart's nginx take the
//! site's request body size; MIGRATION_ENABLED reaches the api alone; and
//! the Argo CD application leaves the replicas an HPA scales to the HPA.
//! Every check has planted values it must catch.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{Value, json};

use crate::support::{self, Compiled};

/// The chart as its templates and defaults say.
struct Chart {
    defaults: Value,
    /// File name to text: every template, `_helpers.tpl`, `config.tpl`
    /// and `Chart.yaml`.
    files: BTreeMap<String, String>,
}

fn chart(reference: &Path) -> Chart {
    let dir = reference.join(format!(
        "dify-helm-{}/chart/charts/dify",
        dify_cfg::internals::HELM_CHART_VERSION
    ));
    let defaults =
        serde_yaml_ng::from_str(&std::fs::read_to_string(dir.join("values.yaml")).unwrap())
            .unwrap();
    let mut files = BTreeMap::new();
    files.insert(
        "Chart.yaml".to_string(),
        std::fs::read_to_string(dir.join("Chart.yaml")).unwrap(),
    );
    for e in std::fs::read_dir(dir.join("templates")).unwrap().flatten() {
        if e.file_type().unwrap().is_file() {
            let name = e.file_name().to_string_lossy().into_owned();
            files.insert(name, std::fs::read_to_string(e.path()).unwrap());
        }
    }
    Chart { defaults, files }
}

/// The values the templates see: ours over the chart's defaults, maps
/// merged, a null removing the default (as Helm coalesces them).
fn merged(defaults: &Value, ours: &Value) -> Value {
    match (defaults, ours) {
        (Value::Object(d), Value::Object(o)) => {
            let mut out = d.clone();
            for (k, v) in o {
                if v.is_null() {
                    out.remove(k);
                } else {
                    let merged = out.get(k).map_or(v.clone(), |d| merged(d, v));
                    out.insert(k.clone(), merged);
                }
            }
            Value::Object(out)
        }
        _ => ours.clone(),
    }
}

/// A `.Values.a.b` path of the merged values.
fn lookup<'v>(values: &'v Value, path: &str) -> Option<&'v Value> {
    let path = path.trim_start_matches('$').strip_prefix(".Values.")?;
    path.split('.')
        .try_fold(values, |v, k| v.as_object()?.get(k))
}

/// Go template truth.
fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(m)) => !m.is_empty(),
    }
}

/// The condition of an `{{- if ... }}`: `.Values.x`, `not .Values.x`, or
/// `and` of those. Anything else is a template this test does not know.
fn condition(values: &Value, cond: &str) -> bool {
    let words: Vec<&str> = cond.split_whitespace().collect();
    match words.as_slice() {
        ["and", terms @ ..] => terms.iter().all(|t| truthy(lookup(values, t))),
        ["not", term] => !truthy(lookup(values, term)),
        [term] => truthy(lookup(values, term)),
        _ => panic!("a condition this test cannot read: {cond}"),
    }
}

/// The inside of a `{{ ... }}` action, without trim markers.
fn action(line: &str) -> Option<&str> {
    let t = line.trim();
    let t = t.strip_prefix("{{")?.strip_suffix("}}")?;
    Some(t.trim_start_matches('-').trim_end_matches('-').trim())
}

/// `NAME:` at the start of a (trimmed) line: a setting or Secret key.
fn key_of(line: &str) -> Option<&str> {
    let t = line.trim_start();
    let (name, _) = t.split_once(':')?;
    (!name.is_empty()
        && name.starts_with(|c: char| c.is_ascii_uppercase())
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
    .then_some(name)
}

/// `X` of the first `{{ template "dify.X.fullname" . }}` after `after`.
fn fullname_component(text: &str, after: &str) -> Option<String> {
    let rest = &text[text.find(after)? + after.len()..];
    let rest = &rest[rest.find("template \"dify.")? + "template \"dify.".len()..];
    Some(rest[..rest.find(".fullname")?].to_string())
}

/// The names a `define` renders, with the defines it includes (every
/// branch: a superset, whatever the conditions).
fn define_names(chart: &Chart, define: &str, out: &mut BTreeSet<String>) {
    let text = &chart.files["config.tpl"];
    let start = format!("define \"{define}\"");
    let Some(at) = text.find(&start) else {
        panic!("config.tpl has no define {define}")
    };
    for line in text[at..].lines().skip(1) {
        if action(line).is_some_and(|a| a.starts_with("define ")) {
            break;
        }
        let include = line
            .split("include \"")
            .nth(1)
            .map(|inc| &inc[..inc.find('"').unwrap()])
            .filter(|name| name.ends_with(".config"));
        if let Some(name) = include {
            define_names(chart, name, out);
        } else if let Some(k) = key_of(line)
            && !line.trim_start().starts_with('#')
        {
            out.insert(k.to_string());
        }
    }
}

/// The names the ConfigMap named for `component` holds.
fn configmap_names(chart: &Chart, component: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for text in chart.files.values() {
        if text.contains("kind: ConfigMap")
            && fullname_component(text, "metadata:").as_deref() == Some(component)
        {
            for inc in text.split("include \"").skip(1) {
                let name = &inc[..inc.find('"').unwrap()];
                if name.ends_with(".config") {
                    define_names(chart, name, &mut out);
                }
            }
        }
    }
    out
}

/// The chart's components whose ExternalSecret carries Dify's secrets.
const EXTERNAL_SECRET_COMPONENTS: &[&str] = &[
    "api",
    "worker",
    "pluginDaemon",
    "sandbox",
    "agentBackend",
    "localSandbox",
];

/// The keys the Secret that the ExternalSecret of `component` writes
/// holds, for these values: its `target.template.data`, each line under
/// the conditions around it. `None` when no ExternalSecret renders.
fn secret_keys(chart: &Chart, values: &Value, component: &str) -> Option<BTreeSet<String>> {
    let text = chart.files.values().find(|t| {
        t.contains("kind: ExternalSecret")
            && fullname_component(t, "metadata:").as_deref() == Some(component)
    })?;
    let first = action(text.lines().next()?)?;
    if !condition(values, first.strip_prefix("if ")?) {
        return None;
    }
    let body = &text[text.find("template:")?..];
    let body = &body[body.find("data:")? + 5..body.find("\n  data:")?];
    let mut stack: Vec<bool> = Vec::new();
    let mut keys = BTreeSet::new();
    for line in body.lines() {
        match action(line) {
            Some(a) if a.starts_with("if ") => stack.push(condition(values, &a[3..])),
            Some("else") => {
                let top = stack.pop().unwrap();
                stack.push(!top);
            }
            Some("end") => {
                stack.pop();
            }
            Some(a) => panic!("an action this test cannot read: {a}"),
            None => {
                if let Some(k) = key_of(line)
                    && stack.iter().all(|b| *b)
                {
                    keys.insert(k.to_string());
                }
            }
        }
    }
    Some(keys)
}

/// The names the main container of a component's Deployment sets in its
/// own `env:`, and the components whose ConfigMap and Secret it reads.
struct Deployment {
    fixed: BTreeSet<String>,
    reads_extra_env: bool,
    config_from: Option<String>,
    secret_from: Option<String>,
}

fn deployment(chart: &Chart, component: &str) -> Option<Deployment> {
    let text = chart.files.values().find(|t| {
        t.contains("kind: Deployment")
            && fullname_component(t, "metadata:").is_some()
            && t.contains(&format!(".Values.{component}.resources"))
    })?;
    let containers = &text[text.find("      containers:")?..];
    let mut fixed = BTreeSet::new();
    if let Some(env) = containers.find("          env:") {
        let env = &containers[env..containers
            .find("          envFrom:")
            .unwrap_or(containers.len())];
        for line in env.lines() {
            if let Some(name) = line.trim().strip_prefix("- name: ") {
                fixed.insert(name.to_string());
            }
        }
    }
    Some(Deployment {
        fixed,
        reads_extra_env: containers.contains(&format!(".Values.{component}.extraEnv")),
        config_from: fullname_component(containers, "configMapRef:"),
        secret_from: fullname_component(containers, "secretRef:"),
    })
}

/// The chart's name for a component's objects, for a release (the
/// `dify.fullname` rule of `_helpers.tpl`: the release name alone when it
/// contains the chart's name).
fn object_name(chart: &Chart, release: &str, component: &str) -> String {
    let helpers = &chart.files["_helpers.tpl"];
    let define = format!("define \"dify.{component}.fullname\"");
    let at = helpers.find(&define).expect("a fullname define");
    let line = helpers[at..].lines().nth(1).unwrap();
    let suffix = line.rsplit("}}").next().unwrap();
    let full = if release.contains("dify") {
        release.to_string()
    } else {
        format!("{release}-dify")
    };
    format!("{full}{suffix}")
}

/// What a component's container gets, by name: where each value comes
/// from, for the merged values.
fn provided(
    chart: &Chart,
    values: &Value,
    release: &str,
    component: &str,
    problems: &mut Vec<String>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(d) = deployment(chart, component) else {
        problems.push(format!("{component}: no Deployment in the chart"));
        return out;
    };
    for name in &d.fixed {
        out.insert(name.clone(), "its Deployment".to_string());
    }
    if let Some(c) = &d.config_from {
        for name in configmap_names(chart, c) {
            out.insert(name, format!("ConfigMap {c}"));
        }
    }
    let mut secrets: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for c in EXTERNAL_SECRET_COMPONENTS {
        if let Some(keys) = secret_keys(chart, values, c) {
            secrets.insert(object_name(chart, release, c), keys);
        }
    }
    if let Some(c) = &d.secret_from {
        for key in secrets
            .get(&object_name(chart, release, c))
            .into_iter()
            .flatten()
        {
            out.insert(key.clone(), format!("Secret of {c}"));
        }
    }
    let extra = lookup(values, &format!(".Values.{component}.extraEnv"));
    for entry in extra.and_then(Value::as_array).into_iter().flatten() {
        let name = entry["name"].as_str().unwrap_or_default().to_string();
        if !d.reads_extra_env {
            problems.push(format!(
                "{component}: extraEnv {name} is ignored by the chart"
            ));
        }
        if d.fixed.contains(&name) {
            problems.push(format!(
                "{component}: extraEnv {name} duplicates what its Deployment sets"
            ));
        }
        if entry.get("value").is_some() {
            out.insert(name, "extraEnv".to_string());
        } else if let Some(r) = entry.pointer("/valueFrom/secretKeyRef") {
            let (secret, key) = (r["name"].as_str(), r["key"].as_str());
            match (secret, key) {
                (Some(s), Some(k)) if secrets.get(s).is_some_and(|keys| keys.contains(k)) => {
                    out.insert(name, format!("Secret {s} key {k}"));
                }
                _ => problems.push(format!(
                    "{component}: extraEnv {name} refers to {r}, which no ExternalSecret writes"
                )),
            }
        } else {
            problems.push(format!("{component}: extraEnv {name} has no value"));
        }
    }
    out
}

/// Names the plugin daemon refuses to start without: `validate:"required"`
/// fields of its config struct that neither a `default:` tag nor
/// `SetDefault` fill.
fn plugin_daemon_required(reference: &Path) -> BTreeSet<String> {
    let dir = reference.join("dify-plugin-daemon/0.6.3/source/internal/types/app");
    let config = std::fs::read_to_string(dir.join("config.go")).unwrap();
    let defaults = std::fs::read_to_string(dir.join("default.go")).unwrap();
    let mut out = BTreeSet::new();
    for line in config.lines() {
        let t = line.trim();
        let Some(field) = t.split_whitespace().next() else {
            continue;
        };
        let Some(name) = t
            .split("envconfig:\"")
            .nth(1)
            .map(|s| &s[..s.find('"').unwrap()])
        else {
            continue;
        };
        if t.contains("validate:\"required")
            && !t.contains("default:\"")
            && !defaults.contains(&format!("&config.{field},"))
        {
            out.insert(name.to_string());
        }
    }
    out
}

/// pgvector settings Dify's store refuses to run without and that have no
/// default in its settings class.
fn pgvector_required(reference: &Path) -> BTreeSet<String> {
    let api = reference.join("dify/1.16.0/source/api");
    let store = std::fs::read_to_string(
        api.join("providers/vdb/vdb-pgvector/src/dify_vdb_pgvector/pgvector.py"),
    )
    .unwrap();
    let settings =
        std::fs::read_to_string(api.join("configs/middleware/vdb/pgvector_config.py")).unwrap();
    let mut out = BTreeSet::new();
    for part in store.split("raise ValueError(\"config ").skip(1) {
        let name = &part[..part.find(' ').unwrap()];
        let field = settings.split(&format!("{name}:")).nth(1).unwrap_or("");
        let field = &field[..field.find("\n\n").unwrap_or(field.len())];
        if field.contains("default=None") || !field.contains("default=") {
            out.insert(name.to_string());
        }
    }
    out
}

/// What each enabled component must get.
fn required(reference: &Path, values: &Value) -> BTreeMap<&'static str, BTreeSet<String>> {
    let on = |c: &str| truthy(lookup(values, &format!(".Values.{c}.enabled")));
    let set = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    let dify = set(&[
        "SECRET_KEY",
        "DB_USERNAME",
        "DB_PASSWORD",
        "DB_HOST",
        "DB_DATABASE",
        "REDIS_PASSWORD",
        "CELERY_BROKER_URL",
    ]);
    let mut api = dify.clone();
    if on("pluginDaemon") {
        api.extend(set(&["PLUGIN_DAEMON_KEY", "INNER_API_KEY_FOR_PLUGIN"]));
    }
    if on("sandbox") {
        api.insert("CODE_EXECUTION_API_KEY".into());
    }
    if on("externalPgvector") {
        api.extend(pgvector_required(reference));
    }
    let mut out = BTreeMap::new();
    out.insert("api", api.clone());
    out.insert("worker", api);
    out.insert("beat", dify);
    let mut daemon = plugin_daemon_required(reference);
    // PLATFORM: the daemon's image sets it (Dify's own compose file does
    // not set it either).
    daemon.remove("PLATFORM");
    daemon.insert("REDIS_PASSWORD".into());
    out.insert("pluginDaemon", daemon);
    out.insert("sandbox", set(&["API_KEY"]));
    out.insert(
        "agentBackend",
        set(&[
            "REDIS_PASSWORD",
            "DIFY_AGENT_API_TOKEN",
            "DIFY_AGENT_SERVER_SECRET_KEY",
            "DIFY_AGENT_REDIS_URL",
        ]),
    );
    out.insert("localSandbox", set(&["SHELLCTL_AUTH_TOKEN"]));
    out.retain(|c, _| on(c));
    out
}

/// Every required name of every enabled component has a source.
fn credential_problems(
    reference: &Path,
    chart: &Chart,
    ours: &Value,
    release: &str,
) -> Vec<String> {
    let values = merged(&chart.defaults, ours);
    let mut problems = Vec::new();
    for (component, names) in required(reference, &values) {
        let got = provided(chart, &values, release, component, &mut problems);
        for name in names {
            if !got.contains_key(&name) {
                problems.push(format!("{component} gets no {name}"));
            }
        }
    }
    // A remote reference set but not rendered is ignored.
    for c in EXTERNAL_SECRET_COMPONENTS {
        let refs = ours.pointer(&format!("/externalSecret/{c}/remoteRefs"));
        let keys = secret_keys(chart, &values, c).unwrap_or_default();
        for (key, r) in refs.and_then(Value::as_object).into_iter().flatten() {
            if !r.is_null() && !keys.contains(key) {
                problems.push(format!("externalSecret.{c}.remoteRefs.{key} is ignored"));
            }
        }
    }
    problems
}

/// Leaves of our values that no template reads: a leaf is read when the
/// templates name it or a map above it whole (`.Values.a.b` followed by
/// anything but a further key).
fn ignored_paths(chart: &Chart, ours: &Value) -> Vec<String> {
    fn leaves(v: &Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        match v.as_object() {
            Some(m) if !m.is_empty() => {
                for (k, child) in m {
                    path.push(k.clone());
                    leaves(child, path, out);
                    path.pop();
                }
            }
            _ => out.push(path.clone()),
        }
    }
    let read = |path: &str| {
        let token = format!(".Values.{path}");
        let conditions = format!("condition: {path}\n");
        chart.files.values().any(|text| {
            text.contains(&conditions)
                || text.match_indices(&token).any(|(at, _)| {
                    let next = text[at + token.len()..].chars().next();
                    !next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
                })
        })
    };
    let mut all = Vec::new();
    leaves(ours, &mut Vec::new(), &mut all);
    all.into_iter()
        .filter(|segments| !(1..=segments.len()).any(|n| read(&segments[..n].join("."))))
        .map(|segments| segments.join("."))
        .collect()
}

/// The ingress and the chart's nginx take `limit`.
fn body_size_problems(chart: &Chart, ours: &Value, limit: &str) -> Vec<String> {
    let values = merged(&chart.defaults, ours);
    let mut problems = Vec::new();
    assert!(chart.files["ingress.yaml"].contains("with .Values.ingress.annotations"));
    if truthy(lookup(&values, ".Values.ingress.enabled")) {
        let annotation =
            values["ingress"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
                .as_str();
        if annotation != Some(limit) {
            problems.push(format!("ingress body size {annotation:?}, not {limit}"));
        }
    }
    assert!(
        chart.files["config.tpl"]
            .contains("client_max_body_size {{ .Values.proxy.clientMaxBodySize")
    );
    if truthy(lookup(&values, ".Values.proxy.enabled")) {
        let proxy = values["proxy"]["clientMaxBodySize"].as_str();
        if proxy != Some(limit) {
            problems.push(format!("the chart's nginx takes {proxy:?}, not {limit}"));
        }
    }
    problems
}

/// MIGRATION_ENABLED is "true" for the api and for nothing else.
fn migration_problems(chart: &Chart, ours: &Value) -> Vec<String> {
    let values = merged(&chart.defaults, ours);
    let mut problems = Vec::new();
    // The chart writes it into the api's ConfigMap only, from api.migration.
    let config = &chart.files["config.tpl"];
    let holders: Vec<&str> = config
        .split("define \"")
        .skip(1)
        .filter(|d| d.contains("\nMIGRATION_ENABLED: {{ .Values.api.migration"))
        .map(|d| &d[..d.find('"').unwrap()])
        .collect();
    assert_eq!(
        holders,
        ["dify.api.config"],
        "where the chart sets MIGRATION_ENABLED"
    );
    for component in ["api", "worker", "beat", "apiWebsocket"] {
        if !truthy(lookup(&values, &format!(".Values.{component}.enabled"))) {
            continue;
        }
        let extra = values[component]["extraEnv"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let from_extra = extra
            .iter()
            .find(|e| e["name"] == "MIGRATION_ENABLED")
            .map(|e| e["value"].as_str() == Some("true"));
        let d = deployment(chart, component).unwrap();
        let from_config = d.config_from.as_deref() == Some("api")
            && truthy(lookup(&values, ".Values.api.migration"))
            && !d.fixed.contains("MIGRATION_ENABLED");
        let migrates = from_extra.unwrap_or(from_config);
        if migrates != (component == "api") {
            problems.push(format!("{component}: migrates = {migrates}"));
        }
    }
    problems
}

/// Every Deployment an HPA scales has its replicas left to the HPA.
fn hpa_problems(chart: &Chart, ours: &Value, app: &Value, release: &str) -> Vec<String> {
    let values = merged(&chart.defaults, ours);
    let mut problems = Vec::new();
    let hpa = &chart.files["hpa.yaml"];
    let spec = &app["spec"];
    let respects = spec["syncPolicy"]["syncOptions"]
        .as_array()
        .is_some_and(|o| o.iter().any(|o| o == "RespectIgnoreDifferences=true"));
    for block in hpa.split("{{- if .Values.").skip(1) {
        let cond = &block[..block.find(" }}").unwrap()];
        let Some(component) = cond.strip_suffix(".autoscaling.enabled") else {
            continue;
        };
        if !truthy(lookup(
            &values,
            &format!(".Values.{component}.autoscaling.enabled"),
        )) {
            continue;
        }
        let target = fullname_component(block, "scaleTargetRef:").unwrap();
        let name = object_name(chart, release, &target);
        // The chart renders replicas whatever the HPA: the fight is real.
        let deployment = chart
            .files
            .values()
            .find(|t| t.contains(&format!("replicas: {{{{ .Values.{component}.replicas }}}}")));
        assert!(
            deployment.is_some(),
            "{component}'s Deployment renders replicas"
        );
        let ignored = spec["ignoreDifferences"].as_array().is_some_and(|all| {
            all.iter().any(|d| {
                d["kind"] == "Deployment"
                    && d["group"] == "apps"
                    && d["name"] == name.as_str()
                    && d["jsonPointers"]
                        .as_array()
                        .is_some_and(|p| p.iter().any(|p| p == "/spec/replicas"))
            })
        });
        if !ignored || !respects {
            problems.push(format!("Argo CD fights the HPA over {name}'s replicas"));
        }
        let (min, max) = (
            values[component]["autoscaling"]["minReplicas"].as_u64(),
            values[component]["autoscaling"]["maxReplicas"].as_u64(),
        );
        let replicas = values[component]["replicas"].as_u64();
        if !(min <= replicas && replicas <= max) {
            problems.push(format!(
                "{component}: replicas {replicas:?} outside {min:?}..{max:?}"
            ));
        }
    }
    problems
}

/// A built site's file as YAML.
fn yaml(trees: &[dify_cfg::SiteTree], site: &str, file: &str) -> Value {
    let tree = trees.iter().find(|t| t.name == site).unwrap();
    serde_yaml_ng::from_slice(&tree.files[file]).unwrap()
}

/// The site's request body limit: what its compose siblings' nginx takes
/// (one constant for the fleet).
fn body_limit(trees: &[dify_cfg::SiteTree]) -> String {
    let conf = trees
        .iter()
        .find_map(|t| t.files.get("nginx/default.conf"))
        .expect("a compose site");
    let conf = String::from_utf8_lossy(conf);
    let line = conf
        .lines()
        .find_map(|l| l.trim().strip_prefix("client_max_body_size "))
        .expect("client_max_body_size");
    line.trim_end_matches(';').to_string()
}

fn fleet(version: Option<&str>) -> Vec<dify_cfg::SiteTree> {
    let mut files = support::fleet_files();
    if let Some(v) = version {
        let hq = files.get_mut("sites/hq.toml").unwrap();
        hq.extend_from_slice(format!("\n[dify]\nversion = \"{v}\"\n").as_bytes());
    }
    match support::compile_mem(&files) {
        Compiled::Built(trees) => trees,
        other => panic!("the fleet does not build: {other:?}"),
    }
}

#[test]
fn the_hq_values_give_every_component_what_the_chart_needs() {
    let Some(reference) = support::reference() else {
        return;
    };
    let chart = chart(&reference);
    // The programs' own lists, read from their sources, hold what they must.
    let daemon = plugin_daemon_required(&reference);
    for name in [
        "DB_USERNAME",
        "DB_PASSWORD",
        "SERVER_KEY",
        "DIFY_INNER_API_KEY",
        "DB_HOST",
    ] {
        assert!(daemon.contains(name), "{name} in {daemon:?}");
    }
    assert!(!daemon.contains("SERVER_PORT"), "defaulted in SetDefault");
    let pgvector = pgvector_required(&reference);
    assert!(pgvector.contains("PGVECTOR_USER") && pgvector.contains("PGVECTOR_PASSWORD"));
    assert!(!pgvector.contains("PGVECTOR_PORT"), "has a default");
    let limit = body_limit(&fleet(None));
    assert!(
        std::fs::read_to_string(reference.join("dify/1.16.0/source/docker/.env.example"))
            .unwrap()
            .lines()
            .any(|l| l.eq_ignore_ascii_case(&format!("NGINX_CLIENT_MAX_BODY_SIZE={limit}"))),
        "the fleet's body limit is Dify's compose default"
    );
    let mut seen = Vec::new();
    for version in [None, Some("1.16.1")] {
        let trees = fleet(version);
        let values = yaml(&trees, "hq", "helm/values.yaml");
        let app = yaml(&trees, "hq", "argocd/application.yaml");
        let release = app["spec"]["sources"][0]["helm"]["releaseName"]
            .as_str()
            .unwrap();
        let mut problems = credential_problems(&reference, &chart, &values, release);
        problems.extend(
            ignored_paths(&chart, &values)
                .into_iter()
                .map(|p| format!("{p} is ignored")),
        );
        problems.extend(body_size_problems(&chart, &values, &limit));
        problems.extend(migration_problems(&chart, &values));
        problems.extend(hpa_problems(&chart, &values, &app, release));
        assert!(problems.is_empty(), "hq ({version:?}): {problems:#?}");
        seen.push(values);
    }
    // What 1.16.1 changes in the values: the images of its release only.
    let mut differ = Vec::new();
    for path in dify_cfg::internals::key_paths(&seen[0]) {
        let pointer = format!("/{}", path.replace('.', "/"));
        let (a, b) = (seen[0].pointer(&pointer), seen[1].pointer(&pointer));
        if a != b && a.is_some_and(|v| !v.is_object()) {
            differ.push(path);
        }
    }
    assert!(
        differ.iter().all(|p| p.starts_with("image.")),
        "1.16.1 changes {differ:?}"
    );
}

#[test]
fn the_chart_checks_catch_planted_values() {
    let Some(reference) = support::reference() else {
        return;
    };
    let chart = chart(&reference);
    let trees = fleet(None);
    let good = yaml(&trees, "hq", "helm/values.yaml");
    let app = yaml(&trees, "hq", "argocd/application.yaml");
    let credentials = |v: &Value| credential_problems(&reference, &chart, v, "dify");
    let has = |problems: Vec<String>, want: &str| {
        assert!(
            problems.iter().any(|p| p.contains(want)),
            "expected a problem with {want:?}, got {problems:#?}"
        );
    };
    assert!(credentials(&good).is_empty());

    // The plugin daemon without a user: no value, and a null ref.
    let mut v = good.clone();
    v["pluginDaemon"]
        .as_object_mut()
        .unwrap()
        .remove("extraEnv");
    has(credentials(&v), "pluginDaemon gets no DB_USERNAME");
    // A required ref set to null.
    let mut v = good.clone();
    v["externalSecret"]["pluginDaemon"]["remoteRefs"]["SERVER_KEY"] = Value::Null;
    has(credentials(&v), "pluginDaemon gets no SERVER_KEY");
    // A required ref missing (the chart's default would ask the store for
    // a key it does not have, but the check reads the site's values).
    let mut v = good.clone();
    v["externalSecret"]["api"]["remoteRefs"]
        .as_object_mut()
        .unwrap()
        .insert("SECRET_KEY".into(), Value::Null);
    has(credentials(&v), "api gets no SECRET_KEY");
    // pgvector's password gone, or read from a key no ExternalSecret writes.
    let mut v = good.clone();
    let strip = |v: &mut Value, name: &str| {
        v["api"]["extraEnv"]
            .as_array_mut()
            .unwrap()
            .retain(|e| e["name"] != name);
    };
    strip(&mut v, "PGVECTOR_PASSWORD");
    has(credentials(&v), "api gets no PGVECTOR_PASSWORD");
    let mut v = good.clone();
    for e in v["worker"]["extraEnv"].as_array_mut().unwrap() {
        if e["name"] == "PGVECTOR_PASSWORD" {
            e["valueFrom"]["secretKeyRef"]["key"] = json!("PGVECTOR_PASSWORD");
        }
    }
    has(
        credentials(&v),
        "worker: extraEnv PGVECTOR_PASSWORD refers to",
    );
    // A ref the chart does not render (weaviate is off).
    let mut v = good.clone();
    v["externalSecret"]["api"]["remoteRefs"]["WEAVIATE_API_KEY"] = json!({"key": "k"});
    has(credentials(&v), "remoteRefs.WEAVIATE_API_KEY is ignored");
    // An extraEnv entry the Deployment already sets.
    let mut v = good.clone();
    v["worker"]["extraEnv"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "MODE", "value": "api"}));
    has(credentials(&v), "worker: extraEnv MODE duplicates");

    // A value no template reads.
    let mut v = good.clone();
    v["api"]["migrationEnabled"] = json!(true);
    v["externalSecret"]["api"]["data"]["PGVECTOR_PASSWORD"] = json!("x");
    assert_eq!(
        ignored_paths(&chart, &v),
        [
            "api.migrationEnabled",
            "externalSecret.api.data.PGVECTOR_PASSWORD"
        ]
    );

    // The ingress without the annotation, the chart's nginx at its 15m.
    let limit = body_limit(&trees);
    assert!(body_size_problems(&chart, &good, &limit).is_empty());
    let mut v = good.clone();
    v["ingress"].as_object_mut().unwrap().remove("annotations");
    has(
        body_size_problems(&chart, &v, &limit),
        "ingress body size None",
    );
    let mut v = good.clone();
    v["proxy"]
        .as_object_mut()
        .unwrap()
        .remove("clientMaxBodySize");
    has(
        body_size_problems(&chart, &v, &limit),
        "the chart's nginx takes",
    );

    // Migrations from the worker, or none from the api.
    assert!(migration_problems(&chart, &good).is_empty());
    let mut v = good.clone();
    v["worker"]["extraEnv"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "MIGRATION_ENABLED", "value": "true"}));
    has(migration_problems(&chart, &v), "worker: migrates = true");
    let mut v = good.clone();
    v["api"]["migration"] = json!(false);
    has(migration_problems(&chart, &v), "api: migrates = false");

    // Argo CD without ignoreDifferences, or ignoring another Deployment.
    assert!(hpa_problems(&chart, &good, &app, "dify").is_empty());
    let mut a = app.clone();
    a["spec"]
        .as_object_mut()
        .unwrap()
        .remove("ignoreDifferences");
    has(
        hpa_problems(&chart, &good, &a, "dify"),
        "over dify-api's replicas",
    );
    let mut a = app.clone();
    a["spec"]["ignoreDifferences"][0]["name"] = json!("dify-apx");
    has(
        hpa_problems(&chart, &good, &a, "dify"),
        "over dify-api's replicas",
    );
    let mut v = good.clone();
    v["api"]["replicas"] = json!(1);
    has(
        hpa_problems(&chart, &v, &app, "dify"),
        "api: replicas Some(1) outside",
    );
}

//! helm/values.yaml: the values of the dify-helm chart for a helm site,
//! and the key-path checks against the chart's own values.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::argocd::HELM_RELEASE_NAME;
use super::common::{SiteInfo, base_url, db_name, has, site_info, websocket_url};
use super::nginx::CLIENT_MAX_BODY_SIZE;
use super::settings::{pool_settings, shared_settings};
use crate::dify;
use crate::dify::helm::{HelmChart, chart_for};
use crate::model::{ImageRef, SecretRef, Service, ServiceKind, Site, VectorStore};

/// `tag[@digest]`: the chart writes `repository:tag`, so a digest rides on
/// the tag.
pub(super) fn helm_tag(image: &ImageRef) -> String {
    match &image.digest {
        Some(d) => format!("{}@{}", image.tag, d),
        None => image.tag.clone(),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct HelmContext {
    pub site: SiteInfo,
    pub namespace: String,
    pub chart_version: &'static str,
    /// The values tree; the template prints it with `toyaml`.
    pub values: Value,
    pub notes: Vec<String>,
}

fn resources(svc: &Service) -> Value {
    json!({
        "requests": {"cpu": svc.cpus_request.kubernetes(), "memory": svc.memory_request.kubernetes()},
        "limits": {"cpu": svc.cpus.kubernetes(), "memory": svc.memory.kubernetes()},
    })
}

/// An `extraEnv` list, sorted by name, from (name, entry) pairs whose entry
/// holds `value` or `valueFrom`.
fn extra_env(entries: BTreeMap<String, Value>) -> Value {
    Value::Array(
        entries
            .into_iter()
            .map(|(name, mut entry)| {
                entry["name"] = Value::String(name);
                entry
            })
            .collect(),
    )
}

fn plain(value: impl Into<String>) -> Value {
    json!({"value": value.into()})
}

/// A key of the Secret the chart's ExternalSecret writes for `component`.
fn from_secret(chart: &HelmChart, component: &str, key: &str) -> Value {
    let name = chart
        .object_name(HELM_RELEASE_NAME, component)
        .unwrap_or_default();
    json!({"valueFrom": {"secretKeyRef": {"name": name, "key": key}}})
}

/// The ingress-nginx annotation for the largest request body (its default
/// is 1 MiB).
pub const INGRESS_BODY_SIZE_ANNOTATION: &str = "nginx.ingress.kubernetes.io/proxy-body-size";

/// Whether the site's store holds the database user (`[secrets]
/// DB_USERNAME`); otherwise it is a plain value, as on compose sites.
fn db_user_remote(site: &Site) -> bool {
    matches!(
        site.secrets.get("DB_USERNAME"),
        Some(SecretRef::Remote { .. })
    )
}

/// The database user as a plain value: the site's `[env]`, else the user
/// the postgres images create.
fn db_user(site: &Site) -> String {
    site.env
        .get("DB_USERNAME")
        .cloned()
        .unwrap_or_else(|| dify::POSTGRES_USER.to_string())
}

/// Components the chart runs with a service dify-cfg knows.
fn helm_component_service(component: &str) -> Option<ServiceKind> {
    ServiceKind::ALL
        .into_iter()
        .find(|k| k.helm_key() == Some(component))
}

/// The values file of a helm site.
pub(super) fn helm(site: &Site) -> HelmContext {
    let chart = chart_for(&site.dify_version);
    let mut notes = Vec::new();
    let mut values = Map::new();
    values.insert(
        "global".into(),
        json!({"marketplace": {"enabled": site.features.marketplace}}),
    );
    values.insert("image".into(), image_values(site));
    component_values(site, chart, &mut values);
    data_store_values(site, &mut values);
    vector_store_values(site, &mut values, &mut notes);
    ingress_values(site, &mut values);
    notes.push("route restrictions (public routes for the LAN, the rest for admins) are not enforced by the chart; enforce them at the ingress".into());

    values.insert(
        "externalSecret".into(),
        helm_external_secret(site, chart, &mut notes),
    );

    HelmContext {
        site: site_info(site),
        namespace: site.helm.namespace.clone(),
        chart_version: chart.version,
        values: Value::Object(values),
        notes,
    }
}

/// Images: the built api/web (filled by deploy_artifacts) and pinned
/// upstream images for the rest.
fn image_values(site: &Site) -> Value {
    let mut images = Map::new();
    for kind in ServiceKind::ALL {
        let Some(key) = kind.helm_key() else { continue };
        if kind.uses_api_image() && kind != ServiceKind::Api {
            continue; // worker, beat, websocket run image.api
        }
        let Some(svc) = site.services.get(&kind) else {
            continue;
        };
        images.insert(
            key.into(),
            json!({"repository": svc.image.repository, "tag": helm_tag(&svc.image)}),
        );
    }
    Value::Object(images)
}

/// One entry per component of the chart: whether it runs, its replicas,
/// resources and autoscaling, and the environment of the Dify components.
fn component_values(site: &Site, chart: &HelmChart, values: &mut Map<String, Value>) {
    let shared = api_image_env(site);
    let mut web_env: BTreeMap<String, Value> = [
        ("CONSOLE_API_URL".to_string(), base_url(site)),
        ("APP_API_URL".to_string(), base_url(site)),
    ]
    .into_iter()
    .chain(
        site.env
            .iter()
            .filter(|(k, _)| dify::WEB_ENV_NAMES.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone())),
    )
    .map(|(k, v)| (k, plain(v)))
    .collect();
    if !site.features.marketplace {
        // With the marketplace off the chart sets no MARKETPLACE_API_URL;
        // the web's entrypoint would then export `/api/v1`, which the web
        // refuses as a URL. Its own default keeps it starting.
        web_env
            .entry("MARKETPLACE_API_URL".to_string())
            .or_insert_with(|| plain(dify::service_env::MARKETPLACE_URL.to_string()));
    }

    for kind in ServiceKind::ALL {
        let Some(key) = kind.helm_key() else { continue };
        let mut component = Map::new();
        let svc = site.services.get(&kind);
        component.insert("enabled".into(), Value::Bool(svc.is_some()));
        if let Some(svc) = svc {
            scaling_values(svc, key, chart, &mut component);
            component.insert("resources".into(), resources(svc));
            let env = if kind.uses_api_image() {
                let mut env = shared.clone();
                env.retain(|name, _| !chart.fixed_env(key).contains(&name.as_str()));
                if matches!(kind, ServiceKind::Api | ServiceKind::Worker) {
                    env.extend(pgvector_env(site, chart, key));
                }
                env.extend(pool_env(site, kind));
                if let Some(level) = site.env.get("LOG_LEVEL") {
                    component.insert("logLevel".into(), Value::String(level.clone()));
                }
                env
            } else if kind == ServiceKind::Web {
                web_env.clone()
            } else if kind == ServiceKind::PluginDaemon {
                let mut env = pool_env(site, kind);
                if !db_user_remote(site) {
                    // The daemon refuses to start without DB_USERNAME.
                    env.insert("DB_USERNAME".to_string(), plain(db_user(site)));
                }
                env
            } else {
                BTreeMap::new()
            };
            if !env.is_empty() {
                component.insert("extraEnv".into(), extra_env(env));
            }
            if kind == ServiceKind::ApiWebsocket {
                component.insert("socketUrl".into(), Value::String(websocket_url(site)));
            }
            if kind == ServiceKind::Api {
                // The chart writes MIGRATION_ENABLED into the api's
                // ConfigMap from this, and only there.
                let migrate = site
                    .env
                    .get("MIGRATION_ENABLED")
                    .is_none_or(|v| v == "true");
                component.insert("migration".into(), Value::Bool(migrate));
            }
            if kind == ServiceKind::Nginx {
                component.insert(
                    "clientMaxBodySize".into(),
                    Value::String(CLIENT_MAX_BODY_SIZE.into()),
                );
            }
        }
        values.insert(key.into(), Value::Object(component));
    }
}

/// `replicas` and `autoscaling`. Where an HPA scales the Deployment, the
/// chart still renders `replicas` (its default, 1, when unset), so it is the
/// HPA's minimum: the first sync starts what the HPA would keep, and the
/// Argo CD application ignores the field from then on.
fn scaling_values(svc: &Service, key: &str, chart: &HelmChart, component: &mut Map<String, Value>) {
    let autoscaling = svc.autoscaling.filter(|_| chart.has_autoscaling(key));
    if chart.has_replicas(key) {
        let replicas = autoscaling.map_or(svc.replicas, |a| a.min_replicas);
        component.insert("replicas".into(), json!(replicas));
    }
    if chart.has_autoscaling(key) {
        let values = match autoscaling {
            Some(a) => json!({
                "enabled": true,
                "minReplicas": a.min_replicas,
                "maxReplicas": a.max_replicas,
                "targetCPUUtilizationPercentage": a.target_cpu_percent,
            }),
            None => json!({"enabled": false}),
        };
        component.insert("autoscaling".into(), values);
    }
}

/// The environment of the components that run the api image: the shared
/// settings and the site's `[env]`, without MIGRATION_ENABLED (the chart
/// sets it on the api alone, see `api.migration`), and with the database
/// user when the store does not hold it.
fn api_image_env(site: &Site) -> BTreeMap<String, Value> {
    let mut env: BTreeMap<String, Value> = shared_settings(site)
        .into_iter()
        .flat_map(|(_, entries)| entries)
        .map(|e| (e.key, e.value))
        .chain(site.env.iter().map(|(k, v)| (k.clone(), v.clone())))
        .filter(|(k, _)| k != "MIGRATION_ENABLED")
        .map(|(k, v)| (k, plain(v)))
        .collect();
    if !db_user_remote(site) {
        env.entry("DB_USERNAME".into())
            .or_insert_with(|| plain(db_user(site)));
    }
    env
}

/// The pool settings of a component (see `settings::pool_settings`).
fn pool_env(site: &Site, kind: ServiceKind) -> BTreeMap<String, Value> {
    pool_settings(site, kind)
        .into_iter()
        .map(|e| (e.key, plain(e.value)))
        .collect()
}

/// pgvector's credentials for the api and the worker: the chart's
/// ExternalSecret has no place for them, so they come from the keys it
/// does write (the vector store is the site's own PostgreSQL database).
fn pgvector_env(site: &Site, chart: &HelmChart, component: &str) -> BTreeMap<String, Value> {
    let mut env = BTreeMap::new();
    if site.vector_store != VectorStore::Pgvector {
        return env;
    }
    // The pool the connection budget counts (the chart leaves Dify's 5).
    env.insert(
        "PGVECTOR_MAX_CONNECTION".to_string(),
        plain(site.database.vector_connections.to_string()),
    );
    if !site.env.contains_key("PGVECTOR_USER") {
        let user = if db_user_remote(site) {
            from_secret(chart, component, "DB_USERNAME")
        } else {
            plain(db_user(site))
        };
        env.insert("PGVECTOR_USER".to_string(), user);
    }
    if matches!(
        site.secrets.get("DB_PASSWORD"),
        Some(SecretRef::Remote { .. })
    ) {
        env.insert(
            "PGVECTOR_PASSWORD".to_string(),
            from_secret(chart, component, "DB_PASSWORD"),
        );
    }
    env
}

/// Data stores: external PostgreSQL and Redis, or the chart's own.
fn data_store_values(site: &Site, values: &mut Map<String, Value>) {
    match &site.database.external {
        Some(e) => {
            values.insert("postgresql".into(), json!({"enabled": false}));
            values.insert(
                "externalPostgres".into(),
                json!({
                    "enabled": true,
                    "address": e.host,
                    "port": e.port,
                    "database": {"api": db_name(site), "pluginDaemon": site.database.plugin_name},
                }),
            );
        }
        None => {
            values.insert("postgresql".into(), json!({"enabled": true}));
            values.insert("externalPostgres".into(), json!({"enabled": false}));
        }
    }
    match &site.redis.external {
        Some(e) => {
            values.insert("redis".into(), json!({"enabled": false}));
            values.insert(
                "externalRedis".into(),
                json!({"enabled": true, "host": e.host, "port": e.port}),
            );
        }
        None => {
            values.insert("redis".into(), json!({"enabled": true}));
            values.insert("externalRedis".into(), json!({"enabled": false}));
        }
    }
}

/// The vector store: the chart's weaviate, or an external pgvector or
/// qdrant.
fn vector_store_values(site: &Site, values: &mut Map<String, Value>, notes: &mut Vec<String>) {
    match site.vector_store {
        VectorStore::Pgvector => {
            values.insert("weaviate".into(), json!({"enabled": false}));
            let (host, port) = match &site.database.external {
                Some(e) => (e.host.clone(), e.port),
                None => {
                    notes.push("pgvector without an external PostgreSQL: the chart's PostgreSQL has no pgvector; set database.external".into());
                    ("postgresql".to_string(), dify::POSTGRES_PORT)
                }
            };
            values.insert(
                "externalPgvector".into(),
                json!({"enabled": true, "address": host, "port": port, "dbName": db_name(site)}),
            );
        }
        VectorStore::Weaviate => {
            values.insert("weaviate".into(), json!({"enabled": true}));
        }
        VectorStore::Qdrant => {
            values.insert("weaviate".into(), json!({"enabled": false}));
            let mut q = json!({"enabled": true});
            if let Some(url) = site.env.get("QDRANT_URL") {
                q["endpoint"] = Value::String(url.clone());
            } else {
                notes.push(
                    "qdrant: set QDRANT_URL in [env] for the chart's externalQdrant.endpoint"
                        .into(),
                );
            }
            values.insert("externalQdrant".into(), q);
        }
    }
}

/// Ingress: the chart's nginx (`proxy`) behind the cluster's ingress.
fn ingress_values(site: &Site, values: &mut Map<String, Value>) {
    match &site.helm.ingress_class {
        Some(class) => {
            values.insert(
                "ingress".into(),
                json!({
                    "enabled": true,
                    "className": class,
                    "annotations": {INGRESS_BODY_SIZE_ANNOTATION: CLIENT_MAX_BODY_SIZE},
                    "hosts": [{"host": site.network.hostname, "paths": [{"path": "/", "pathType": "Prefix"}]}],
                }),
            );
        }
        None => {
            values.insert("ingress".into(), json!({"enabled": false}));
        }
    }
}

fn helm_external_secret(site: &Site, chart: &HelmChart, notes: &mut Vec<String>) -> Value {
    let mut refs: BTreeMap<&str, BTreeMap<&str, Value>> = BTreeMap::new();
    for (name, r) in &site.secrets {
        let SecretRef::Remote { key, property } = r else {
            continue;
        };
        let targets = chart.secret_refs(name);
        if targets.is_empty() {
            notes.push(format!(
                "secret {name} has no place in the chart's externalSecret and is not wired"
            ));
        }
        for (component, chart_key) in targets {
            refs.entry(component)
                .or_default()
                .insert(chart_key, json!({"key": key, "property": property}));
        }
    }
    let mut es = Map::new();
    es.insert("enabled".into(), Value::Bool(true));
    es.insert(
        "secretStore".into(),
        json!({"name": site.helm.secret_store, "kind": site.helm.secret_store_kind}),
    );
    let redis_password = refs
        .get("api")
        .is_some_and(|r| r.contains_key("REDIS_PASSWORD"));
    for (component, defaults) in chart.remote_ref_defaults {
        let runs = match *component {
            "postgresql" => site.database.external.is_none(),
            "redis" => site.redis.external.is_none(),
            c => helm_component_service(c).is_some_and(|k| has(site, k)),
        };
        let mut c = Map::new();
        c.insert("enabled".into(), Value::Bool(runs));
        if runs {
            let mine = refs.remove(component).unwrap_or_default();
            let mut remote = Map::new();
            // Defaults the site does not fill are removed (null), so the
            // store is never asked for keys it does not hold.
            for key in defaults.iter() {
                remote.insert(
                    (*key).to_string(),
                    mine.get(key).cloned().unwrap_or(Value::Null),
                );
            }
            c.insert("remoteRefs".into(), Value::Object(remote));
            if let Some(e) = &site.redis.external {
                let password = if redis_password {
                    ":{{ .REDIS_PASSWORD }}@"
                } else {
                    ""
                };
                let url = |db: u8| format!("redis://{password}{}:{}/{db}", e.host, e.port);
                match *component {
                    "api" | "worker" => {
                        c.insert(
                            "data".into(),
                            json!({"CELERY_BROKER_URL": url(dify::REDIS_DB_CELERY)}),
                        );
                    }
                    "agentBackend" => {
                        c.insert(
                            "data".into(),
                            json!({"DIFY_AGENT_REDIS_URL": url(dify::REDIS_DB_AGENT)}),
                        );
                    }
                    _ => {}
                }
            }
        }
        es.insert((*component).to_string(), Value::Object(c));
    }
    Value::Object(es)
}

/// Every key path of a values tree: `a`, `a.b`, `a.b.c`. Arrays end a path
/// (their items are not walked).
pub fn key_paths(value: &Value) -> Vec<String> {
    fn walk(value: &Value, prefix: &str, out: &mut Vec<String>) {
        if let Value::Object(map) = value {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.push(path.clone());
                walk(v, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(value, "", &mut out);
    out
}

/// Key paths of `values` that the chart's `reference` values do not have.
/// A path under a key whose reference value is an empty mapping (`{}`, as
/// `resources` or `nodeSelector`) is free-form and accepted.
pub fn unknown_key_paths(values: &Value, reference: &Value) -> Vec<String> {
    fn lookup<'v>(root: &'v Value, path: &str) -> Option<&'v Value> {
        path.split('.').try_fold(root, |v, k| v.as_object()?.get(k))
    }
    key_paths(values)
        .into_iter()
        .filter(|path| {
            if lookup(reference, path).is_some() {
                return false;
            }
            let parts: Vec<&str> = path.split('.').collect();
            !(1..parts.len()).any(|n| {
                lookup(reference, &parts[..n].join("."))
                    .is_some_and(|v| v.as_object().is_some_and(|m| m.is_empty()))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;

//! The Dify settings the dify-api services share (compose: dify.env and
//! compose.yaml; helm: extraEnv), computed from the site, and the site's
//! `[env]`, split by where each value can be written.

use std::collections::BTreeMap;

use serde::Serialize;

use super::common::{
    KeyValue, base_url, db_host_port, db_name, has, http_url, kv, redis_host_port,
};
use super::quote::dotenv_representable;
use crate::dify;
use crate::dify::service_env;
use crate::model::{ServiceKind, Site, Target, VectorStore};

/// The computed, non-secret Dify settings of a site, in sections, and the
/// site's `[env]` entries, split by where they can be written.
#[derive(Debug, Clone)]
pub(super) struct EnvPlan {
    pub(super) sections: Vec<EnvSection>,
    /// `[env]` entries compose can read from the env file.
    pub(super) site_dotenv: BTreeMap<String, String>,
    /// Settings (from `[env]` or computed) that cannot be written in an env
    /// file (a quote, a control character); compose.yaml carries them.
    pub(super) inline: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EnvSection {
    pub title: &'static str,
    pub entries: Vec<KeyValue>,
}

impl EnvPlan {
    pub(super) fn new(site: &Site) -> Self {
        let mut inline = BTreeMap::new();
        let mut sections = Vec::new();
        for (title, entries) in shared_settings(site) {
            let mut kept = Vec::new();
            for e in entries {
                if site.env.contains_key(&e.key) {
                    continue;
                }
                if dotenv_representable(&e.value) {
                    kept.push(e);
                } else {
                    inline.insert(e.key, e.value);
                }
            }
            if !kept.is_empty() {
                sections.push(EnvSection {
                    title,
                    entries: kept,
                });
            }
        }
        let mut site_dotenv = BTreeMap::new();
        for (k, v) in &site.env {
            if dotenv_representable(v) {
                site_dotenv.insert(k.clone(), v.clone());
            } else {
                inline.insert(k.clone(), v.clone());
            }
        }
        EnvPlan {
            sections,
            site_dotenv,
            inline,
        }
    }
}

fn flag(b: bool) -> String {
    b.to_string()
}

/// The settings dify-api, its worker and beat share, computed from the
/// site. The site's `[env]` wins over every one of them.
pub(super) fn shared_settings(site: &Site) -> Vec<(&'static str, Vec<KeyValue>)> {
    let compose = site.target == Target::Compose;
    let base = base_url(site);
    let mut out = Vec::new();

    out.push((
        "Public URLs",
        vec![
            kv("CONSOLE_API_URL", &base),
            kv("CONSOLE_WEB_URL", &base),
            kv("SERVICE_API_URL", &base),
            // (APP_API_URL is the web's: the api reads no such setting.)
            kv("APP_WEB_URL", &base),
            kv("FILES_URL", &base),
            kv("TRIGGER_URL", &base),
            kv("ENDPOINT_URL_TEMPLATE", format!("{base}/e/{{hook_id}}")),
        ],
    ));

    if compose {
        out.extend(data_store_sections(site));
    }

    let api = site.services.get(&ServiceKind::Api);
    let worker = site.services.get(&ServiceKind::Worker);
    out.push((
        "Processes",
        vec![
            kv(
                "SERVER_WORKER_AMOUNT",
                api.and_then(|s| s.workers).unwrap_or(1).to_string(),
            ),
            kv("SERVER_WORKER_CLASS", "gevent"),
            kv(
                "SERVER_WORKER_CONNECTIONS",
                api.and_then(|s| s.worker_connections)
                    .unwrap_or(10)
                    .to_string(),
            ),
            kv(
                "CELERY_WORKER_AMOUNT",
                worker.and_then(|s| s.workers).unwrap_or(1).to_string(),
            ),
            kv("CELERY_AUTO_SCALE", "false"),
            kv("SQLALCHEMY_POOL_SIZE", site.database.pool_size.to_string()),
            kv(
                "SQLALCHEMY_MAX_OVERFLOW",
                site.database.max_overflow.to_string(),
            ),
        ],
    ));

    out.push((
        "Sign-in",
        vec![
            kv("ALLOW_REGISTER", flag(site.login.allow_register)),
            kv(
                "ALLOW_CREATE_WORKSPACE",
                flag(site.login.allow_create_workspace),
            ),
            kv(
                "ENABLE_EMAIL_PASSWORD_LOGIN",
                flag(site.login.email_password),
            ),
            kv("ENABLE_EMAIL_CODE_LOGIN", flag(site.login.email_code)),
            kv("ENABLE_SOCIAL_OAUTH_LOGIN", flag(site.login.social_oauth)),
        ],
    ));

    let mut features = vec![
        kv(
            "ENABLE_COLLABORATION_MODE",
            flag(site.features.collaboration && has(site, ServiceKind::ApiWebsocket)),
        ),
        kv("MARKETPLACE_ENABLED", flag(site.features.marketplace)),
        // No calls home for update checks.
        kv("CHECK_UPDATE_URL", ""),
    ];
    // A compose box's egress is its allow-list: no community telemetry
    // where the release would send it and no egress rule reaches it.
    if super::telemetry(site).is_some_and(|t| t.disabled_by_dify_cfg) {
        features.push(kv("DISABLE_TELEMETRY", "true"));
    }
    if compose && site.features.plugin_debugging && has(site, ServiceKind::PluginDaemon) {
        features.push(kv("PLUGIN_REMOTE_INSTALL_HOST", &site.network.hostname));
        features.push(kv(
            "PLUGIN_REMOTE_INSTALL_PORT",
            dify::PLUGIN_DEBUGGING_PORT.to_string(),
        ));
    }
    out.push(("Features", features));

    if compose {
        out.push(("Other services of the site", service_wiring(site)));
    }
    out
}

/// Compose only: where the site's own data stores are, and the file
/// storage.
fn data_store_sections(site: &Site) -> Vec<(&'static str, Vec<KeyValue>)> {
    let mut out = Vec::new();
    let (db_host, db_port) = db_host_port(site);
    out.push((
        "Database (PostgreSQL)",
        vec![
            kv("DB_TYPE", "postgresql"),
            kv("DB_HOST", &db_host),
            kv("DB_PORT", db_port.to_string()),
            kv("DB_USERNAME", dify::POSTGRES_USER),
            kv("DB_DATABASE", db_name(site)),
        ],
    ));
    let (redis_host, redis_port) = redis_host_port(site);
    out.push((
        "Redis (db 0: cache; db 1: the Celery broker, whose URL is in compose.yaml)",
        vec![
            kv("REDIS_HOST", redis_host),
            kv("REDIS_PORT", redis_port.to_string()),
            kv("REDIS_DB", dify::REDIS_DB_CACHE.to_string()),
        ],
    ));
    let mut vector = vec![kv("VECTOR_STORE", site.vector_store.as_str())];
    if site.vector_store == VectorStore::Pgvector {
        vector.extend([
            kv("PGVECTOR_HOST", &db_host),
            kv("PGVECTOR_PORT", db_port.to_string()),
            kv("PGVECTOR_USER", dify::POSTGRES_USER),
            kv("PGVECTOR_DATABASE", db_name(site)),
            kv(
                "PGVECTOR_MAX_CONNECTION",
                site.database.vector_connections.to_string(),
            ),
        ]);
    }
    out.push(("Vector store", vector));
    out.push((
        "File storage: the api_storage volume",
        vec![
            kv("STORAGE_TYPE", "opendal"),
            kv("OPENDAL_SCHEME", "fs"),
            kv("OPENDAL_FS_ROOT", "storage"),
        ],
    ));
    out
}

/// Compose only: the URLs of the site's other services.
fn service_wiring(site: &Site) -> Vec<KeyValue> {
    let mut wiring = vec![kv("INTERNAL_FILES_URL", http_url("api", dify::API_PORT))];
    if has(site, ServiceKind::Sandbox) {
        wiring.push(kv(
            "CODE_EXECUTION_ENDPOINT",
            http_url("sandbox", dify::SANDBOX_PORT),
        ));
    }
    if has(site, ServiceKind::PluginDaemon) {
        wiring.push(kv(
            "PLUGIN_DAEMON_URL",
            http_url("plugin_daemon", dify::PLUGIN_DAEMON_PORT),
        ));
        // The api's own limit is smaller than the daemon's.
        wiring.push(kv(
            "PLUGIN_MAX_PACKAGE_SIZE",
            service_env::PLUGIN_MAX_PACKAGE_SIZE.to_string(),
        ));
    }
    if has(site, ServiceKind::SsrfProxy) {
        let proxy = http_url("ssrf_proxy", dify::SSRF_PROXY_PORT);
        wiring.push(kv("SSRF_PROXY_HTTP_URL", &proxy));
        wiring.push(kv("SSRF_PROXY_HTTPS_URL", &proxy));
    }
    if has(site, ServiceKind::AgentBackend) {
        wiring.push(kv(
            "AGENT_BACKEND_BASE_URL",
            http_url("agent_backend", dify::AGENT_BACKEND_PORT),
        ));
    }
    wiring
}

/// Settings a service gets beyond the shared ones so that its database
/// pool is what the connection budget (validate/connections.rs) counts:
/// Celery beat's small pool, the plugin daemon's ceiling.
pub(super) fn pool_settings(site: &Site, kind: ServiceKind) -> Vec<KeyValue> {
    match kind {
        ServiceKind::WorkerBeat => vec![
            kv("SQLALCHEMY_POOL_SIZE", dify::BEAT_POOL_SIZE.to_string()),
            kv(
                "SQLALCHEMY_MAX_OVERFLOW",
                dify::BEAT_MAX_OVERFLOW.to_string(),
            ),
        ],
        ServiceKind::PluginDaemon => {
            let open = site.database.plugin_connections;
            vec![
                kv("DB_MAX_OPEN_CONNS", open.to_string()),
                // The daemon keeps 10 idle by default; never more than open.
                kv("DB_MAX_IDLE_CONNS", open.min(10).to_string()),
            ]
        }
        _ => vec![],
    }
}

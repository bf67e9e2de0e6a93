//! Facts about Dify that the compiler carries as data: the releases it
//! knows, their default images, the names of Dify's settings, and which of
//! those settings hold secrets. Names are facts and are kept as plain lists;
//! `tests/reference.rs` checks them against Dify's own files where those
//! are present.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use crate::model::ImageRef;

/// Dify releases this compiler knows how to build and run.
pub const SUPPORTED_RELEASES: &[&str] = &["1.16.0", "1.16.1"];

/// The upstream source the api and web images are built from.
pub const SOURCE_REPOSITORY: &str = "https://github.com/langgenius/dify";

/// Default images of a release. Tags are pinned; `latest` never appears.
pub struct ReleaseImages {
    pub sandbox: ImageRef,
    pub plugin_daemon: ImageRef,
    pub agent_backend: ImageRef,
    pub local_sandbox: ImageRef,
    /// PostgreSQL with the pgvector extension (used when the vector store is
    /// pgvector, so that one database serves both).
    pub postgres_pgvector: ImageRef,
    pub postgres: ImageRef,
    pub redis: ImageRef,
    pub nginx: ImageRef,
    pub ssrf_proxy: ImageRef,
    /// Base images of the api and web builds.
    pub api_base: ImageRef,
    pub web_base: ImageRef,
}

fn image(repository: &str, tag: &str) -> ImageRef {
    ImageRef {
        repository: repository.to_string(),
        tag: tag.to_string(),
        digest: None,
    }
}

/// The default images for a supported release.
pub fn release_images(version: &str) -> ReleaseImages {
    ReleaseImages {
        sandbox: image("langgenius/dify-sandbox", "0.2.15"),
        plugin_daemon: image("langgenius/dify-plugin-daemon", "0.6.3-local"),
        agent_backend: image("langgenius/dify-agent-backend", version),
        local_sandbox: image("langgenius/dify-agent-local-sandbox", version),
        postgres_pgvector: image("pgvector/pgvector", "0.8.0-pg16"),
        postgres: image("postgres", "15-alpine"),
        redis: image("redis", "6-alpine"),
        nginx: image("nginx", "1.27-alpine"),
        ssrf_proxy: image("ubuntu/squid", "6.6-24.04_beta"),
        api_base: image("python", "3.12-slim-bookworm"),
        web_base: image("node", "22-alpine"),
    }
}

/// The dify-helm chart version whose values dify-cfg writes.
pub const HELM_CHART_VERSION: &str = "0.38.0-rc2";

const ENV_NAMES_TEXT: &str = include_str!("dify/env-names.txt");

/// Every setting name Dify's docker deployment knows.
pub fn env_names() -> &'static BTreeSet<&'static str> {
    static NAMES: OnceLock<BTreeSet<&'static str>> = OnceLock::new();
    NAMES.get_or_init(|| {
        ENV_NAMES_TEXT
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    })
}

pub fn is_env_name(name: &str) -> bool {
    env_names().contains(name)
}

/// Whether a Dify setting holds a secret and may only be given by reference.
pub fn is_secret_name(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "SECRET_KEY",
        "INIT_PASSWORD",
        "CELERY_BROKER_URL",
        "PLUGIN_DAEMON_KEY",
        "PLUGIN_DIFY_INNER_API_KEY",
        "INNER_API_KEY_FOR_PLUGIN",
        "DIFY_AGENT_API_TOKEN",
        "DIFY_AGENT_SERVER_SECRET_KEY",
        "DIFY_AGENT_SHELLCTL_AUTH_TOKEN",
        "KNOWLEDGE_FS_JWT_SECRET",
        "EVENT_BUS_REDIS_URL",
        "DIFY_AGENT_REDIS_URL",
        "WEAVIATE_AUTHENTICATION_APIKEY_ALLOWED_KEYS",
        "API_SENTRY_DSN",
        "WEB_SENTRY_DSN",
        "SENTRY_DSN",
        "PLUGIN_SENTRY_DSN",
    ];
    const SUFFIXES: &[&str] = &[
        "_API_KEY",
        "_PASSWORD",
        "_SECRET",
        "_SECRET_KEY",
        "_TOKEN",
        "_ACCESS_KEY",
        "_ACCESS_KEY_ID",
        "_ACCESS_KEY_SECRET",
        "_PRIVATE_KEY",
        "_KEY_SECRET",
        "_CLIENT_SECRET",
        "_AUTH_TOKEN",
    ];
    EXACT.contains(&name) || SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// Every route prefix Dify serves, and who it is for.
pub const ROUTES: &[(&str, &str)] = &[
    ("/v1", "service API (chat, completion, files)"),
    ("/console/api", "console API"),
    ("/api", "web app API"),
    ("/files", "file previews and downloads"),
    ("/mcp", "MCP server"),
    ("/triggers", "trigger webhooks"),
    ("/openapi", "OpenAPI endpoints"),
    ("/e/", "plugin endpoints (plugin daemon)"),
    ("/socket.io/", "collaboration websocket"),
    ("/explore", "web app explorer"),
    ("/", "web console and apps"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_list_is_loaded() {
        assert!(is_env_name("DB_PASSWORD"));
        assert!(is_env_name("SERVER_WORKER_AMOUNT"));
        assert!(!is_env_name("DATABASE_URL"));
        assert!(env_names().len() > 500);
    }

    #[test]
    fn secret_names() {
        for s in ["DB_PASSWORD", "SECRET_KEY", "REDIS_PASSWORD", "CODE_EXECUTION_API_KEY", "PLUGIN_DAEMON_KEY", "CELERY_BROKER_URL"] {
            assert!(is_secret_name(s), "{s}");
        }
        for s in ["DB_HOST", "LOG_LEVEL", "SERVER_WORKER_AMOUNT"] {
            assert!(!is_secret_name(s), "{s}");
        }
    }
}

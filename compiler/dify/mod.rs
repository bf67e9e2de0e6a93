//! Facts about Dify that the compiler carries as data: the releases it
//! knows, their default images, the names of Dify's settings, and which of
//! those settings hold secrets. Names are facts and are kept as plain lists;
//! `tests/it/reference.rs` checks them against Dify's own files where those
//! are present.

pub mod build;
pub mod compat;
pub mod helm;
pub mod memory;
pub mod release;
pub mod secret_files;
pub mod service_env;
pub mod ssrf_proxy;
pub mod tls;

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

/// The default images for a supported release: its plugin daemon,
/// sandbox, agent backend and local sandbox from the compatibility lock
/// (`compat.toml`), the rest pinned here.
pub fn release_images(version: &str) -> ReleaseImages {
    let locked = |key: &str| image(compat::repository(key), &compat::default_tag(version, key));
    ReleaseImages {
        sandbox: locked("sandbox"),
        plugin_daemon: locked("plugin-daemon"),
        agent_backend: locked("agent-backend"),
        local_sandbox: locked("local-sandbox"),
        postgres_pgvector: image("pgvector/pgvector", "0.8.0-pg16"),
        postgres: image("postgres", "15-alpine"),
        redis: image("redis", "6-alpine"),
        nginx: image("nginx", "1.27-alpine"),
        ssrf_proxy: image("ubuntu/squid", "6.6-24.04_beta"),
        api_base: image("python", "3.12-slim-bookworm"),
        web_base: image("node", "22-alpine"),
    }
}

pub use helm::{HELM_CHART_VERSION, helm_secret_refs};

/// The setting names each supported release reads, one list per release
/// (see the files' headers for where the names come from).
const ENV_NAMES: &[(&str, &str)] = &[
    ("1.16.0", include_str!("env-names/1.16.0.txt")),
    ("1.16.1", include_str!("env-names/1.16.1.txt")),
];

fn parse_names(text: &'static str) -> BTreeSet<&'static str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// The setting names `release` reads; empty for a release dify-cfg does
/// not support (validation has refused it already).
pub fn release_env_names(release: &str) -> &'static BTreeSet<&'static str> {
    static NAMES: OnceLock<Vec<(&'static str, BTreeSet<&'static str>)>> = OnceLock::new();
    static NONE: BTreeSet<&'static str> = BTreeSet::new();
    let all = NAMES.get_or_init(|| {
        ENV_NAMES
            .iter()
            .map(|(release, text)| (*release, parse_names(text)))
            .collect()
    });
    all.iter()
        .find(|(r, _)| *r == release)
        .map(|(_, names)| names)
        .unwrap_or(&NONE)
}

/// Every setting name any supported release reads.
pub fn env_names() -> &'static BTreeSet<&'static str> {
    static NAMES: OnceLock<BTreeSet<&'static str>> = OnceLock::new();
    NAMES.get_or_init(|| {
        SUPPORTED_RELEASES
            .iter()
            .flat_map(|r| release_env_names(r).iter().copied())
            .collect()
    })
}

#[cfg(test)]
pub fn is_env_name(name: &str) -> bool {
    env_names().contains(name)
}

/// The first supported release that reads `name`, for telling a site on
/// an older release where a setting comes from.
pub fn first_release_reading(name: &str) -> Option<&'static str> {
    SUPPORTED_RELEASES
        .iter()
        .copied()
        .find(|r| release_env_names(r).contains(name))
}

/// Which settings hold a secret: names, and name endings written `*_END`
/// (see the file's header).
const SECRET_NAMES: &str = include_str!("secret-names.txt");

/// Whether a Dify setting holds a secret and may only be given by
/// reference: its name, or its name's ending, is in `secret-names.txt`.
pub fn is_secret_name(name: &str) -> bool {
    static RULES: OnceLock<(BTreeSet<&'static str>, Vec<&'static str>)> = OnceLock::new();
    let (exact, endings) = RULES.get_or_init(|| {
        let lines = parse_names(SECRET_NAMES);
        let endings = lines.iter().filter_map(|l| l.strip_prefix('*')).collect();
        let exact = lines.into_iter().filter(|l| !l.starts_with('*')).collect();
        (exact, endings)
    });
    exact.contains(name) || endings.iter().any(|e| name.ends_with(e))
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

// ---------------------------------------------------------------------------
// Facts the planner and renderer use (ports, paths, per-image settings, the
// dify-helm chart's secret wiring). Names and numbers only.

/// Ports the services listen on inside their containers.
pub const API_PORT: u16 = 5001;
pub const WEB_PORT: u16 = 3000;
pub const SANDBOX_PORT: u16 = 8194;
pub const PLUGIN_DAEMON_PORT: u16 = 5002;
/// The plugin daemon's remote-debugging port (published only on request).
pub const PLUGIN_DEBUGGING_PORT: u16 = 5003;
pub const AGENT_BACKEND_PORT: u16 = 5050;
pub const LOCAL_SANDBOX_PORT: u16 = 5004;
pub const SSRF_PROXY_PORT: u16 = 3128;
pub const POSTGRES_PORT: u16 = 5432;
pub const REDIS_PORT: u16 = 6379;

/// Where dify-api keeps uploaded files (OpenDAL `fs` root, relative to
/// `/app/api`), and the plugin daemon its plugins.
pub const API_STORAGE_PATH: &str = "/app/api/storage";
pub const PLUGIN_DAEMON_STORAGE_PATH: &str = "/app/storage";
/// The unprivileged user of the api and web images.
pub const DIFY_UID: u32 = 1001;
/// The superuser the postgres images create, which Dify connects as.
pub const POSTGRES_USER: &str = "postgres";
/// Redis databases: 0 is Dify's cache, 1 Celery's broker, 2 the agent
/// backend's.
pub const REDIS_DB_CACHE: u8 = 0;
pub const REDIS_DB_CELERY: u8 = 1;
pub const REDIS_DB_AGENT: u8 = 2;

/// The SQLAlchemy pool dify-cfg gives Celery beat: one thread that only
/// schedules tasks, so two connections at most (Dify's default pool, 30
/// plus 10 overflow, would count 40 against `max_connections`).
pub const BEAT_POOL_SIZE: u32 = 1;
pub const BEAT_MAX_OVERFLOW: u32 = 1;

/// Which service serves each route of [`ROUTES`].
pub fn route_service(prefix: &str) -> Option<crate::model::ServiceKind> {
    use crate::model::ServiceKind as K;
    match prefix {
        "/v1" | "/console/api" | "/api" | "/files" | "/mcp" | "/triggers" | "/openapi" => {
            Some(K::Api)
        }
        "/e/" => Some(K::PluginDaemon),
        "/socket.io/" => Some(K::ApiWebsocket),
        "/explore" | "/" => Some(K::Web),
        _ => None,
    }
}

/// Settings an image reads under its own name, not a Dify setting name.
/// Dify's compose file maps Dify's settings onto these (e.g. the sandbox
/// reads `API_KEY`, which Dify calls `CODE_EXECUTION_API_KEY`/
/// `SANDBOX_API_KEY`); every other key dify-cfg writes into a container's
/// environment must be in [`env_names`]. (The render tests hold every
/// rendered environment to this list and [`env_names`].)
#[cfg(test)]
pub fn image_env_names(kind: crate::model::ServiceKind) -> Vec<&'static str> {
    use crate::model::ServiceKind as K;
    // What upstream's compose gives the service itself (e.g. the sandbox's
    // and plugin daemon's own names, the web's SERVER_CONSOLE_API_URL).
    let mut names: Vec<&'static str> = service_env::container_names(kind.compose_name())
        .into_iter()
        .collect();
    names.extend_from_slice(match kind {
        // The postgres image's entrypoint.
        K::Db => &[
            "POSTGRES_USER",
            "POSTGRES_PASSWORD",
            "POSTGRES_PASSWORD_FILE",
            "POSTGRES_DB",
        ],
        // redis-cli reads the password for the healthcheck from here.
        K::Redis => &["REDISCLI_AUTH"],
        // The Go plugin daemon's own configuration names.
        K::PluginDaemon => &[
            "SERVER_PORT",
            "SERVER_KEY",
            "DIFY_INNER_API_URL",
            "DIFY_INNER_API_KEY",
            "MAX_PLUGIN_PACKAGE_SIZE",
            "PPROF_ENABLED",
            "PYTHON_ENV_INIT_TIMEOUT",
            "PLUGIN_REMOTE_INSTALLING_ENABLED",
            "PLUGIN_REMOTE_INSTALLING_HOST",
            "PLUGIN_REMOTE_INSTALLING_PORT",
            "DB_MAX_OPEN_CONNS",
            "DB_MAX_IDLE_CONNS",
        ],
        // dify-sandbox's own configuration names.
        K::Sandbox => &[
            "API_KEY",
            "GIN_MODE",
            "WORKER_TIMEOUT",
            "ENABLE_NETWORK",
            "HTTP_PROXY",
            "HTTPS_PROXY",
        ],
        // The agent's shell controller reads its token under this name.
        K::LocalSandbox => &["SHELLCTL_AUTH_TOKEN"],
        _ => &[],
    });
    names
}

/// Settings dify-web reads (docker/envs/core-services/web.env.example); a
/// site's `[env]` entry with one of these names reaches the web container.
pub const WEB_ENV_NAMES: &[&str] = &[
    "ALLOW_EMBED",
    "ALLOW_INLINE_STYLES",
    "ALLOW_UNSAFE_DATA_SCHEME",
    "AMPLITUDE_API_KEY",
    "APP_API_URL",
    "CONSOLE_API_URL",
    "COOKIEYES_SITE_KEY",
    "CSP_WHITELIST",
    "ENABLE_WEBSITE_FIRECRAWL",
    "ENABLE_WEBSITE_JINAREADER",
    "ENABLE_WEBSITE_WATERCRAWL",
    "EXPERIMENTAL_ENABLE_VINEXT",
    "INDEXING_MAX_SEGMENTATION_TOKENS_LENGTH",
    "LOOP_NODE_MAX_COUNT",
    "MARKETPLACE_API_URL",
    "MAX_ITERATIONS_NUM",
    "MAX_PARALLEL_LIMIT",
    "MAX_TOOLS_NUM",
    "MAX_TREE_DEPTH",
    "NEXT_PUBLIC_BATCH_CONCURRENCY",
    "NEXT_PUBLIC_COOKIE_DOMAIN",
    "NEXT_PUBLIC_ENABLE_AGENT_V2",
    "NEXT_PUBLIC_ENABLE_FEATURE_PREVIEW",
    "NEXT_PUBLIC_ENABLE_SINGLE_DOLLAR_LATEX",
    "NEXT_PUBLIC_SOCKET_URL",
    "TEXT_GENERATION_TIMEOUT_MS",
    "TOP_K_MAX_VALUE",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_list_is_loaded() {
        for release in SUPPORTED_RELEASES {
            let names = release_env_names(release);
            assert!(
                names.contains("DB_PASSWORD") && names.len() > 900,
                "{release}"
            );
        }
        assert!(release_env_names("0.1.0").is_empty());
        // 1.16.1 added the knowledge file system.
        assert!(!release_env_names("1.16.0").contains("KNOWLEDGE_FS_ENABLED"));
        assert_eq!(
            first_release_reading("KNOWLEDGE_FS_ENABLED"),
            Some("1.16.1")
        );
        assert!(is_env_name("DB_PASSWORD"));
        assert!(is_env_name("SERVER_WORKER_AMOUNT"));
        assert!(!is_env_name("DATABASE_URL"));
        assert!(env_names().len() > 500);
    }

    #[test]
    fn secret_names() {
        for s in [
            "DB_PASSWORD",
            "SECRET_KEY",
            "REDIS_PASSWORD",
            "CODE_EXECUTION_API_KEY",
            "PLUGIN_DAEMON_KEY",
            "CELERY_BROKER_URL",
        ] {
            assert!(is_secret_name(s), "{s}");
        }
        // Settings holding keys or credentials under other names.
        for s in [
            "AZURE_BLOB_ACCOUNT_KEY",
            "PLUGIN_AZURE_BLOB_STORAGE_CONNECTION_STRING",
            "CHROMA_AUTH_CREDENTIALS",
            "CHROMA_SERVER_AUTHN_CREDENTIALS",
            "TENCENT_COS_SECRET_ID",
            "ANALYTICDB_KEY_ID",
            // Names the suffixes once missed.
            "ORACLE_PWD",
            "GOOGLE_STORAGE_SERVICE_ACCOUNT_JSON_BASE64",
            "PUBSUB_REDIS_URL",
            "IRIS_CONNECTION_URL",
            "ENTERPRISE_OTLP_HEADERS",
            "TIDB_PUBLIC_KEY",
            "EVENT_BUS_REDIS_URL",
            "API_SENTRY_DSN",
        ] {
            assert!(is_env_name(s), "{s} is not a Dify setting");
            assert!(is_secret_name(s), "{s}");
        }
        for s in [
            "DB_HOST",
            "LOG_LEVEL",
            "SERVER_WORKER_AMOUNT",
            "ORACLE_DSN",
            "ACCESS_TOKEN_EXPIRE_MINUTES",
            "REDIS_SSL_KEYFILE",
        ] {
            assert!(!is_secret_name(s), "{s}");
        }
    }
}

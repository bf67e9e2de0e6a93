//! The environment of each compose service, per release: the names Dify's
//! own compose file gives each service (`service-env/<release>.txt`), the
//! settings a release reads that its env examples do not list, and the
//! upstream names dify-cfg's sites deliberately leave out, each with its
//! reason. `tests/it/dify_settings.rs` holds the lists to Dify's own files
//! and the rendered sites to the lists.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

/// Per release: compose service name → the names upstream's compose sets
/// in that service's `environment:`.
type ServiceNames = BTreeMap<&'static str, BTreeSet<&'static str>>;

const RELEASE_FILES: &[(&str, &str)] = &[
    ("1.16.0", include_str!("service-env/1.16.0.txt")),
    ("1.16.1", include_str!("service-env/1.16.1.txt")),
];

fn parse(text: &'static str) -> ServiceNames {
    let mut out = ServiceNames::new();
    let mut current: Option<&'static str> = None;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(name);
            out.entry(name).or_default();
        } else if let Some(service) = current {
            out.entry(service).or_default().insert(line);
        }
    }
    out
}

fn releases() -> &'static BTreeMap<&'static str, ServiceNames> {
    static PARSED: OnceLock<BTreeMap<&'static str, ServiceNames>> = OnceLock::new();
    PARSED.get_or_init(|| {
        RELEASE_FILES
            .iter()
            .map(|(release, text)| (*release, parse(text)))
            .collect()
    })
}

/// The names upstream's compose of `release` sets in the environment of
/// the compose service `service` (empty for an unknown release or
/// service).
pub fn upstream_names(release: &str, service: &str) -> BTreeSet<&'static str> {
    releases()
        .get(release)
        .and_then(|r| r.get(service))
        .cloned()
        .unwrap_or_default()
}

/// The compose services the release files describe.
pub fn upstream_services(release: &str) -> Vec<&'static str> {
    releases()
        .get(release)
        .map(|r| r.keys().copied().collect())
        .unwrap_or_default()
}

/// Settings the dify-api image reads outside `configs.DifyConfig`: (name,
/// the file of the api's tree that reads it, the text in that file by which
/// it does). Every other name a site gives the api, worker or beat is read
/// by DifyConfig (`tests/it/dify_settings.rs` proves both).
pub const API_READ_ELSEWHERE: &[(&str, &str, &str)] = &[
    ("MODE", "docker/entrypoint.sh", "${MODE}"),
    (
        "MIGRATION_ENABLED",
        "docker/entrypoint.sh",
        "${MIGRATION_ENABLED}",
    ),
    (
        "CELERY_AUTO_SCALE",
        "docker/entrypoint.sh",
        "${CELERY_AUTO_SCALE",
    ),
    (
        "CELERY_WORKER_AMOUNT",
        "docker/entrypoint.sh",
        "${CELERY_WORKER_AMOUNT",
    ),
    (
        "SERVER_WORKER_AMOUNT",
        "docker/entrypoint.sh",
        "${SERVER_WORKER_AMOUNT",
    ),
    (
        "SERVER_WORKER_CLASS",
        "docker/entrypoint.sh",
        "${SERVER_WORKER_CLASS",
    ),
    (
        "SERVER_WORKER_CONNECTIONS",
        "docker/entrypoint.sh",
        "${SERVER_WORKER_CONNECTIONS",
    ),
    (
        "GUNICORN_TIMEOUT",
        "docker/entrypoint.sh",
        "${GUNICORN_TIMEOUT",
    ),
    // OpenDAL's options, read from the environment by scheme prefix.
    (
        "OPENDAL_FS_ROOT",
        "extensions/storage/opendal_storage.py",
        "prefix: str = \"OPENDAL_\"",
    ),
];

/// Whether the release's web entrypoint derives `NEXT_PUBLIC_WEB_PREFIX`
/// (which the web validates as a URL) from `CONSOLE_WEB_URL`.
pub fn web_reads_console_web_url(release: &str) -> bool {
    release != "1.16.0"
}

/// Where the web finds the plugin marketplace (Dify's own default). The
/// web's entrypoint appends `/api/v1` to it and the web validates the
/// result as a URL, so it is set whether the marketplace is on or not.
pub const MARKETPLACE_URL: &str = "https://marketplace.dify.ai";

/// The largest plugin package the plugin daemon accepts by default; the
/// api's own default is smaller, so the api is told the daemon's.
pub const PLUGIN_MAX_PACKAGE_SIZE: u64 = 52_428_800;

const SAME_DEFAULT: &str = "the image's own default is the value upstream's compose sets";
const NO_SENTRY: &str = "no error reporting to Sentry: patient data leaves no box (a site may set it in [env] or [secrets])";
const AGENT: &str = "set only when the site runs the agent backend";
const DEBUGGING: &str = "set only when the site turns plugin debugging on";
const LOCAL_PLUGINS: &str =
    "plugins are kept on the plugin_daemon_storage volume (PLUGIN_STORAGE_TYPE=local)";
const WEB_DEFAULT: &str = "the web's entrypoint and env.ts default to upstream's compose value; a site may set it in [env]";

/// Names upstream's compose gives a service that dify-cfg's compose sites
/// deliberately leave out: (compose service, name, reason).
pub const LEFT_OUT: &[(&str, &str, &str)] = &[
    ("api", "AGENT_BACKEND_API_TOKEN", AGENT),
    ("api", "AGENT_BACKEND_BASE_URL", AGENT),
    ("api", "AGENT_BACKEND_RUN_TIMEOUT_SECONDS", SAME_DEFAULT),
    ("api", "AGENT_BACKEND_STREAM_MAX_RECONNECTS", SAME_DEFAULT),
    (
        "api",
        "AGENT_BACKEND_STREAM_READ_TIMEOUT_SECONDS",
        SAME_DEFAULT,
    ),
    ("api", "PLUGIN_DAEMON_TIMEOUT", SAME_DEFAULT),
    ("api", "PLUGIN_REMOTE_INSTALL_HOST", DEBUGGING),
    ("api", "PLUGIN_REMOTE_INSTALL_PORT", DEBUGGING),
    ("api", "SENTRY_DSN", NO_SENTRY),
    ("api", "SENTRY_PROFILES_SAMPLE_RATE", NO_SENTRY),
    ("api", "SENTRY_TRACES_SAMPLE_RATE", NO_SENTRY),
    ("worker", "AGENT_BACKEND_API_TOKEN", AGENT),
    ("worker", "AGENT_BACKEND_BASE_URL", AGENT),
    ("worker", "AGENT_BACKEND_RUN_TIMEOUT_SECONDS", SAME_DEFAULT),
    (
        "worker",
        "AGENT_BACKEND_STREAM_MAX_RECONNECTS",
        SAME_DEFAULT,
    ),
    (
        "worker",
        "AGENT_BACKEND_STREAM_READ_TIMEOUT_SECONDS",
        SAME_DEFAULT,
    ),
    ("worker", "SENTRY_DSN", NO_SENTRY),
    ("worker", "SENTRY_PROFILES_SAMPLE_RATE", NO_SENTRY),
    ("worker", "SENTRY_TRACES_SAMPLE_RATE", NO_SENTRY),
    ("web", "ALLOW_EMBED", WEB_DEFAULT),
    ("web", "ALLOW_UNSAFE_DATA_SCHEME", WEB_DEFAULT),
    (
        "web",
        "AMPLITUDE_API_KEY",
        "no product analytics from a clinic box (a site may set it in [env])",
    ),
    (
        "web",
        "COOKIEYES_SITE_KEY",
        "the consent banner of Dify's own cloud; a site may set it in [env]",
    ),
    ("web", "CSP_WHITELIST", WEB_DEFAULT),
    ("web", "ENABLE_WEBSITE_FIRECRAWL", WEB_DEFAULT),
    ("web", "ENABLE_WEBSITE_JINAREADER", WEB_DEFAULT),
    ("web", "ENABLE_WEBSITE_WATERCRAWL", WEB_DEFAULT),
    ("web", "EXPERIMENTAL_ENABLE_VINEXT", WEB_DEFAULT),
    (
        "web",
        "INDEXING_MAX_SEGMENTATION_TOKENS_LENGTH",
        WEB_DEFAULT,
    ),
    ("web", "LOOP_NODE_MAX_COUNT", WEB_DEFAULT),
    ("web", "MAX_ITERATIONS_NUM", WEB_DEFAULT),
    ("web", "MAX_PARALLEL_LIMIT", WEB_DEFAULT),
    ("web", "MAX_TOOLS_NUM", WEB_DEFAULT),
    ("web", "MAX_TREE_DEPTH", WEB_DEFAULT),
    (
        "web",
        "NEXT_PUBLIC_COOKIE_DOMAIN",
        "console and api share one host name: no cross-domain cookie",
    ),
    (
        "web",
        "NEXT_PUBLIC_SOCKET_URL",
        "set only when the site runs the collaboration websocket",
    ),
    ("web", "SENTRY_DSN", NO_SENTRY),
    ("web", "TEXT_GENERATION_TIMEOUT_MS", WEB_DEFAULT),
    ("web", "TOP_K_MAX_VALUE", WEB_DEFAULT),
    ("web", "WORKFLOW_GENERATION_TIMEOUT_MS", WEB_DEFAULT),
    (
        "sandbox",
        "HTTPS_PROXY",
        "set only when the site runs ssrf_proxy (the sandbox has no other way out)",
    ),
    (
        "sandbox",
        "HTTP_PROXY",
        "set only when the site runs ssrf_proxy (the sandbox has no other way out)",
    ),
    (
        "sandbox",
        "PIP_MIRROR_URL",
        "no package mirror: the sandbox installs no packages at run time",
    ),
    ("plugin_daemon", "ALIYUN_OSS_ACCESS_KEY_ID", LOCAL_PLUGINS),
    (
        "plugin_daemon",
        "ALIYUN_OSS_ACCESS_KEY_SECRET",
        LOCAL_PLUGINS,
    ),
    ("plugin_daemon", "ALIYUN_OSS_AUTH_VERSION", LOCAL_PLUGINS),
    ("plugin_daemon", "ALIYUN_OSS_ENDPOINT", LOCAL_PLUGINS),
    ("plugin_daemon", "ALIYUN_OSS_PATH", LOCAL_PLUGINS),
    ("plugin_daemon", "ALIYUN_OSS_REGION", LOCAL_PLUGINS),
    ("plugin_daemon", "AWS_ACCESS_KEY", LOCAL_PLUGINS),
    ("plugin_daemon", "AWS_REGION", LOCAL_PLUGINS),
    ("plugin_daemon", "AWS_SECRET_KEY", LOCAL_PLUGINS),
    (
        "plugin_daemon",
        "AZURE_BLOB_STORAGE_CONNECTION_STRING",
        LOCAL_PLUGINS,
    ),
    (
        "plugin_daemon",
        "AZURE_BLOB_STORAGE_CONTAINER_NAME",
        LOCAL_PLUGINS,
    ),
    (
        "plugin_daemon",
        "DB_SSL_MODE",
        "the daemon's default (disable) is upstream's: the database is the site's own, on its network",
    ),
    ("plugin_daemon", "MAX_PLUGIN_PACKAGE_SIZE", SAME_DEFAULT),
    (
        "plugin_daemon",
        "PIP_MIRROR_URL",
        "no package mirror: plugins install from the index the daemon defaults to",
    ),
    ("plugin_daemon", "PLUGIN_INSTALLED_PATH", SAME_DEFAULT),
    ("plugin_daemon", "PLUGIN_MEDIA_CACHE_PATH", SAME_DEFAULT),
    ("plugin_daemon", "PLUGIN_PACKAGE_CACHE_PATH", SAME_DEFAULT),
    ("plugin_daemon", "PLUGIN_REMOTE_INSTALLING_HOST", DEBUGGING),
    ("plugin_daemon", "PLUGIN_REMOTE_INSTALLING_PORT", DEBUGGING),
    ("plugin_daemon", "PLUGIN_STDIO_BUFFER_SIZE", SAME_DEFAULT),
    (
        "plugin_daemon",
        "PLUGIN_STDIO_MAX_BUFFER_SIZE",
        SAME_DEFAULT,
    ),
    ("plugin_daemon", "PLUGIN_STORAGE_OSS_BUCKET", LOCAL_PLUGINS),
    (
        "plugin_daemon",
        "PPROF_ENABLED",
        "the daemon's default (off) is upstream's: no profiling endpoint",
    ),
    ("plugin_daemon", "S3_ENDPOINT", LOCAL_PLUGINS),
    ("plugin_daemon", "S3_USE_AWS", LOCAL_PLUGINS),
    ("plugin_daemon", "S3_USE_AWS_MANAGED_IAM", LOCAL_PLUGINS),
    ("plugin_daemon", "S3_USE_PATH_STYLE", LOCAL_PLUGINS),
    ("plugin_daemon", "SENTRY_DSN", NO_SENTRY),
    ("plugin_daemon", "SENTRY_ENABLED", NO_SENTRY),
    ("plugin_daemon", "TENCENT_COS_REGION", LOCAL_PLUGINS),
    ("plugin_daemon", "TENCENT_COS_SECRET_ID", LOCAL_PLUGINS),
    ("plugin_daemon", "TENCENT_COS_SECRET_KEY", LOCAL_PLUGINS),
    ("plugin_daemon", "VOLCENGINE_TOS_ACCESS_KEY", LOCAL_PLUGINS),
    ("plugin_daemon", "VOLCENGINE_TOS_ENDPOINT", LOCAL_PLUGINS),
    ("plugin_daemon", "VOLCENGINE_TOS_REGION", LOCAL_PLUGINS),
    ("plugin_daemon", "VOLCENGINE_TOS_SECRET_KEY", LOCAL_PLUGINS),
];

/// Why sites leave `name` out of `service`, when they do.
pub fn left_out(service: &str, name: &str) -> Option<&'static str> {
    LEFT_OUT
        .iter()
        .find(|(s, n, _)| *s == service && *n == name)
        .map(|(_, _, why)| *why)
}

/// The compose services whose environment dify-cfg holds to upstream's.
pub const CHECKED_SERVICES: &[&str] = &[
    "api",
    "worker",
    "worker_beat",
    "web",
    "sandbox",
    "plugin_daemon",
];

/// Container-level names a compose service may carry besides Dify's
/// settings: what upstream's compose gives that service in any supported
/// release.
pub fn container_names(service: &str) -> BTreeSet<&'static str> {
    releases()
        .values()
        .filter_map(|r| r.get(service))
        .flat_map(|names| names.iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_release_has_its_services() {
        for release in super::super::SUPPORTED_RELEASES {
            let services = upstream_services(release);
            for s in CHECKED_SERVICES {
                assert!(services.contains(s), "{release}: no [{s}]");
            }
            assert!(upstream_names(release, "web").contains("SERVER_CONSOLE_API_URL"));
        }
        assert!(upstream_names("1.16.1", "web").contains("COOKIEYES_SITE_KEY"));
        assert!(!upstream_names("1.16.0", "web").contains("COOKIEYES_SITE_KEY"));
    }

    #[test]
    fn every_left_out_name_is_upstream() {
        for (service, name, why) in LEFT_OUT {
            assert!(
                container_names(service).contains(name),
                "{service}: {name} is left out, but no release's compose sets it"
            );
            assert!(!why.is_empty());
        }
    }
}

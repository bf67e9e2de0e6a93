//! The services of compose.yaml one by one: each service's image, command,
//! environment, secrets, volumes, published ports, networks and health
//! check.

use std::collections::BTreeMap;

use super::{BoxFile, ComposeService, Healthcheck, SECRETS_DIR, SSRF_NETWORK, SecretMount, Volume};
use crate::dify;
use crate::dify::secret_files::{reads_secret_files, secret_vars};
use crate::dify::service_env;
use crate::model::{Service, ServiceKind, Site};
use crate::plan::common::{
    KeyValue, base_url, db_host_port, db_name, has, http_url, kv, redis_host_port, websocket_url,
};
use crate::plan::quote::{compose_literal, required_var};
use crate::plan::secrets::{SecretPlan, SecretSource};
use crate::plan::settings::{EnvPlan, pool_settings};
use crate::plan::{BuiltKind, DOTENV_FILE};

/// A service's environment while it is decided: sorted by name, values
/// ready for compose.
type Environment = BTreeMap<String, String>;

/// What the services of a site are decided from.
#[derive(Clone, Copy)]
pub(super) struct ServiceCx<'a> {
    pub(super) site: &'a Site,
    pub(super) env: &'a EnvPlan,
    pub(super) secrets: &'a SecretPlan,
    /// Whether the site has the internal network of the sandbox and its
    /// proxy.
    pub(super) uses_ssrf_network: bool,
}

impl ServiceCx<'_> {
    /// A published port: on the box's address, or on every address when
    /// the site names none.
    fn publish(&self, port: u16) -> String {
        match self.site.network.address {
            Some(ip) => format!("{ip}:{port}:{port}"),
            None => format!("{port}:{port}"),
        }
    }
}

/// One service of the site with every setting decided but its
/// dependencies, which wait until every service is known.
pub(super) fn service(cx: &ServiceCx, kind: ServiceKind, svc: &Service) -> ComposeService {
    let site = cx.site;
    let mut s = ComposeService {
        name: kind.compose_name(),
        key: kind.key(),
        image: svc.image.reference(),
        built: None,
        notes: Vec::new(),
        entrypoint: None,
        command: None,
        env_file: None,
        environment: Vec::new(),
        mem_limit: svc.memory.compose(),
        cpus: svc.cpus.cores(),
        replicas: (svc.replicas != 1).then_some(svc.replicas),
        ports: Vec::new(),
        volumes: Vec::new(),
        secrets: Vec::new(),
        healthcheck: None,
        healthcheck_disabled: false,
        depends_on: Vec::new(),
        networks: vec!["default"],
        labels: service_labels(site, kind),
    };
    let mut environment = Environment::new();
    let file_secrets = mount_secrets(cx, kind, &mut s, &mut environment);
    match kind {
        k if k.uses_api_image() => api_image(cx, k, svc, file_secrets, &mut s, &mut environment),
        ServiceKind::Web => web(site, &mut s, &mut environment),
        ServiceKind::Db => db(cx, &mut s, &mut environment),
        ServiceKind::Redis => redis(cx, &mut s),
        ServiceKind::Sandbox => sandbox(site, &mut s, &mut environment),
        ServiceKind::SsrfProxy => {
            s.networks = vec!["default", SSRF_NETWORK];
            s.volumes.push(
                format!(
                    "./{}:{}:ro",
                    crate::plan::SQUID_FILE,
                    dify::ssrf_proxy::SQUID_CONFIG_PATH
                )
                .into(),
            );
            s.notes.push(format!(
                "squid with the site's own configuration ({}): only the egress rules, on ports 80 and 443; never private, loopback or link-local addresses",
                crate::plan::SQUID_FILE
            ));
        }
        ServiceKind::PluginDaemon => plugin_daemon(cx, &mut s, &mut environment),
        ServiceKind::AgentBackend => agent_backend(cx, &mut environment),
        ServiceKind::LocalSandbox => {
            environment.insert("SHELLCTL_ENABLE_PATH_ISOLATION".into(), "true".into());
        }
        ServiceKind::Nginx => nginx(cx, &mut s),
        _ => {}
    }
    s.environment = environment.into_iter().map(|(k, v)| kv(k, v)).collect();
    s
}

/// The service's secrets: a reference in the environment, or a mounted
/// file (with a note when the image cannot read it). Whether any is a file.
fn mount_secrets(
    cx: &ServiceCx,
    kind: ServiceKind,
    s: &mut ComposeService,
    environment: &mut Environment,
) -> bool {
    let ServiceCx { site, secrets, .. } = *cx;
    let mut file_secrets = false;
    let mut gaps = Vec::new();
    for name in site.secrets.keys() {
        let vars = secret_vars(site, kind, name);
        if vars.is_empty() {
            continue;
        }
        match secrets.get(name) {
            Some(SecretSource::Env(var)) => {
                for v in vars {
                    environment.insert(v.to_string(), required_var(var));
                }
            }
            Some(SecretSource::File { id }) => {
                file_secrets = true;
                for v in vars {
                    s.secrets.push(SecretMount {
                        source: id.clone(),
                        target: v.to_string(),
                    });
                }
                if !reads_secret_files(kind) {
                    gaps.push(name.clone());
                }
            }
            None => {}
        }
    }
    s.secrets.sort();
    s.secrets.dedup();
    for name in gaps {
        s.notes.push(format!(
            "{name} is a secret file, but this image reads its settings only from the environment: set it as an env secret"
        ));
    }
    file_secrets
}

/// dify-api and the services that run its image: the worker, beat and the
/// collaboration websocket.
fn api_image(
    cx: &ServiceCx,
    kind: ServiceKind,
    svc: &Service,
    file_secrets: bool,
    s: &mut ComposeService,
    environment: &mut Environment,
) {
    let ServiceCx {
        site,
        env,
        secrets,
        uses_ssrf_network,
    } = *cx;
    s.built = Some(BuiltKind::Api);
    s.image = String::new();
    s.env_file = Some(DOTENV_FILE);
    let mode = match kind {
        ServiceKind::Worker => "worker",
        ServiceKind::WorkerBeat => "beat",
        _ => "api",
    };
    environment.insert("MODE".into(), mode.into());
    if kind == ServiceKind::Api {
        // Dify's entrypoint upgrades the database first when this is true:
        // the api alone does it (the worker and beat leave it unset: off).
        environment.insert("MIGRATION_ENABLED".into(), "true".into());
    }
    for e in pool_settings(site, kind) {
        environment.insert(e.key, e.value);
    }
    if let Some(url) = redis_url(site, secrets, dify::REDIS_DB_CELERY) {
        environment.insert("CELERY_BROKER_URL".into(), url);
    }
    for (k, v) in &env.inline {
        environment.insert(k.clone(), compose_literal(v));
    }
    if kind == ServiceKind::ApiWebsocket {
        s.notes
            .push("the collaboration websocket: dify-api with gunicorn's websocket worker".into());
        environment.insert(
            "SERVER_WORKER_CLASS".into(),
            "geventwebsocket.gunicorn.workers.GeventWebSocketWorker".into(),
        );
        environment.insert(
            "SERVER_WORKER_AMOUNT".into(),
            svc.workers.unwrap_or(1).to_string(),
        );
        environment.insert(
            "SERVER_WORKER_CONNECTIONS".into(),
            svc.worker_connections.unwrap_or(1000).to_string(),
        );
    }
    if file_secrets {
        let redis_file = matches!(
            secrets.get("REDIS_PASSWORD"),
            Some(SecretSource::File { .. })
        );
        s.entrypoint = Some(secret_file_wrapper(site, redis_file));
        s.notes.push(
            "started through a wrapper that exports the secret files under /run/secrets".into(),
        );
    }
    if matches!(
        kind,
        ServiceKind::Api | ServiceKind::Worker | ServiceKind::ApiWebsocket
    ) {
        s.volumes
            .push(format!("api_storage:{}", dify::API_STORAGE_PATH).into());
    }
    if uses_ssrf_network && matches!(kind, ServiceKind::Api | ServiceKind::Worker) {
        s.networks.push(SSRF_NETWORK);
    }
    if matches!(kind, ServiceKind::Worker | ServiceKind::WorkerBeat) {
        // Not Dify's `celery inspect ping` either: a Python process per
        // probe would spend the worker's memory headroom (Dify's compose
        // leaves it off too).
        s.healthcheck_disabled = true;
        s.notes
            .push("the image's HTTP health check is the api's: off here".into());
    }
    if kind == ServiceKind::Api {
        let url = format!("http://127.0.0.1:{}/health", dify::API_PORT);
        // The first start runs every migration before gunicorn listens
        // (200 revisions in 1.16.0): 20 s on an idle 2-core machine, over
        // two minutes on a busy one (the box rehearsal measures it). A
        // start period counts no failure yet ends at the first success, so
        // a long one costs a healthy api nothing. Checked every 10 s, not
        // Docker's 30 s: a release is confirmed (and a dead api seen) that
        // much sooner, for a curl of a few milliseconds.
        s.healthcheck = Some(healthcheck(
            &["CMD", "curl", "-fsS", "-o", "/dev/null", &url],
            "10s",
            "5s",
            3,
            "300s",
        ));
    }
}

/// dify-web: the built web image, told the public URLs.
fn web(site: &Site, s: &mut ComposeService, environment: &mut Environment) {
    s.built = Some(BuiltKind::Web);
    s.image = String::new();
    let base = base_url(site);
    let release = site.dify_version.as_str();
    environment.insert("CONSOLE_API_URL".into(), compose_literal(&base));
    environment.insert("APP_API_URL".into(), compose_literal(&base));
    if service_env::web_reads_console_web_url(release) {
        environment.insert("CONSOLE_WEB_URL".into(), compose_literal(&base));
    }
    // The web's own server-side calls stay inside the site (the public
    // console routes admit the admin networks only).
    environment.insert(
        "SERVER_CONSOLE_API_URL".into(),
        http_url("api", dify::API_PORT),
    );
    // The entrypoint turns these into URLs the web validates, so they are
    // set whether the marketplace is on or not (whether the console offers
    // it is MARKETPLACE_ENABLED, which the web learns from the api).
    environment.insert(
        "MARKETPLACE_API_URL".into(),
        service_env::MARKETPLACE_URL.into(),
    );
    environment.insert(
        "MARKETPLACE_URL".into(),
        service_env::MARKETPLACE_URL.into(),
    );
    environment.insert("DEPLOY_ENV".into(), "PRODUCTION".into());
    // No Next.js telemetry from a box whose egress is an allow-list.
    environment.insert("NEXT_TELEMETRY_DISABLED".into(), "1".into());
    if site.features.collaboration && has(site, ServiceKind::ApiWebsocket) {
        environment.insert(
            "NEXT_PUBLIC_SOCKET_URL".into(),
            compose_literal(&websocket_url(site)),
        );
    }
    for (k, v) in &site.env {
        if dify::WEB_ENV_NAMES.contains(&k.as_str()) {
            environment.insert(k.clone(), compose_literal(v));
        }
    }
    let url = format!("http://127.0.0.1:{}/", dify::WEB_PORT);
    s.healthcheck = Some(healthcheck(
        &["CMD", "wget", "-q", "--spider", &url],
        "30s",
        "5s",
        3,
        "30s",
    ));
}

/// PostgreSQL, tuned by the site's `[database]`.
fn db(cx: &ServiceCx, s: &mut ComposeService, environment: &mut Environment) {
    let ServiceCx { site, secrets, .. } = *cx;
    let db = db_name(site);
    environment.insert("POSTGRES_USER".into(), dify::POSTGRES_USER.into());
    environment.insert("POSTGRES_DB".into(), compose_literal(&db));
    environment.insert("PGDATA".into(), "/var/lib/postgresql/data/pgdata".into());
    if let Some(SecretSource::File { .. }) = secrets.get("DB_PASSWORD") {
        environment.insert(
            "POSTGRES_PASSWORD_FILE".into(),
            format!("{SECRETS_DIR}/POSTGRES_PASSWORD"),
        );
    }
    let d = &site.database;
    let mut command = vec!["postgres".to_string()];
    for setting in [
        format!("max_connections={}", d.max_connections),
        format!("shared_buffers={}", d.shared_buffers.server()),
        format!("work_mem={}", d.work_mem.server()),
        format!("maintenance_work_mem={}", d.maintenance_work_mem.server()),
        format!("effective_cache_size={}", d.effective_cache_size.server()),
    ] {
        command.push("-c".into());
        command.push(setting);
    }
    s.command = Some(command);
    s.volumes.push("db_data:/var/lib/postgresql/data".into());
    s.healthcheck = Some(healthcheck(
        &[
            "CMD",
            "pg_isready",
            "-h",
            "127.0.0.1",
            "-U",
            dify::POSTGRES_USER,
            "-d",
            &compose_literal(&db),
        ],
        "5s",
        "3s",
        30,
        "10s",
    ));
}

/// Redis, with its memory limit and its password (a reference or a file).
fn redis(cx: &ServiceCx, s: &mut ComposeService) {
    let ServiceCx { site, secrets, .. } = *cx;
    let r = &site.redis;
    let limits = format!(
        "--maxmemory {} --maxmemory-policy {}",
        r.maxmemory.redis(),
        r.policy.as_str()
    );
    let ping = "redis-cli ping | grep -q PONG";
    match secrets.get("REDIS_PASSWORD") {
        Some(SecretSource::Env(var)) => {
            let mut command = vec![
                "redis-server".to_string(),
                "--requirepass".into(),
                required_var(var),
            ];
            command.extend(limits.split(' ').map(str::to_string));
            s.command = Some(command);
            s.healthcheck = Some(healthcheck(&["CMD-SHELL", ping], "5s", "3s", 30, "5s"));
        }
        Some(SecretSource::File { .. }) => {
            let file = format!("{SECRETS_DIR}/REDISCLI_AUTH");
            s.command = Some(vec![
                "sh".into(),
                "-c".into(),
                format!("exec redis-server --requirepass \"$$(cat {file})\" {limits}"),
            ]);
            let test = format!("REDISCLI_AUTH=\"$$(cat {file})\" {ping}");
            s.healthcheck = Some(healthcheck(&["CMD-SHELL", &test], "5s", "3s", 30, "5s"));
        }
        None => {
            let mut command = vec!["redis-server".to_string()];
            command.extend(limits.split(' ').map(str::to_string));
            s.command = Some(command);
            s.healthcheck = Some(healthcheck(&["CMD-SHELL", ping], "5s", "3s", 30, "5s"));
        }
    }
    s.volumes.push("redis_data:/data".into());
}

/// The code sandbox: on the internal network only.
fn sandbox(site: &Site, s: &mut ComposeService, environment: &mut Environment) {
    environment.insert("GIN_MODE".into(), "release".into());
    environment.insert("WORKER_TIMEOUT".into(), "15".into());
    environment.insert("ENABLE_NETWORK".into(), "true".into());
    environment.insert("SANDBOX_PORT".into(), dify::SANDBOX_PORT.to_string());
    if has(site, ServiceKind::SsrfProxy) {
        let proxy = http_url("ssrf_proxy", dify::SSRF_PROXY_PORT);
        environment.insert("HTTP_PROXY".into(), proxy.clone());
        environment.insert("HTTPS_PROXY".into(), proxy);
    }
    s.networks = vec![SSRF_NETWORK];
    s.notes
        .push("only on the internal network: its traffic leaves through ssrf_proxy".into());
    let url = format!("http://127.0.0.1:{}/health", dify::SANDBOX_PORT);
    s.healthcheck = Some(healthcheck(
        &["CMD", "curl", "-f", &url],
        "30s",
        "5s",
        3,
        "10s",
    ));
}

/// The plugin daemon, with its own database and, when plugin debugging is
/// on, its published debugging port.
fn plugin_daemon(cx: &ServiceCx, s: &mut ComposeService, environment: &mut Environment) {
    let site = cx.site;
    let (db_host, db_port) = db_host_port(site);
    let (redis_host, redis_port) = redis_host_port(site);
    environment.insert("DB_TYPE".into(), "postgresql".into());
    environment.insert("DB_HOST".into(), compose_literal(&db_host));
    environment.insert("DB_PORT".into(), db_port.to_string());
    environment.insert("DB_USERNAME".into(), dify::POSTGRES_USER.into());
    environment.insert(
        "DB_DATABASE".into(),
        compose_literal(&site.database.plugin_name),
    );
    environment.insert("REDIS_HOST".into(), compose_literal(&redis_host));
    environment.insert("REDIS_PORT".into(), redis_port.to_string());
    environment.insert("SERVER_PORT".into(), dify::PLUGIN_DAEMON_PORT.to_string());
    environment.insert("DIFY_INNER_API_URL".into(), http_url("api", dify::API_PORT));
    environment.insert(
        "PLUGIN_WORKING_PATH".into(),
        format!("{}/cwd", dify::PLUGIN_DAEMON_STORAGE_PATH),
    );
    environment.insert("PLUGIN_STORAGE_TYPE".into(), "local".into());
    environment.insert(
        "PLUGIN_STORAGE_LOCAL_ROOT".into(),
        dify::PLUGIN_DAEMON_STORAGE_PATH.into(),
    );
    environment.insert("FORCE_VERIFYING_SIGNATURE".into(), "true".into());
    environment.insert("PYTHON_ENV_INIT_TIMEOUT".into(), "120".into());
    environment.insert("PLUGIN_MAX_EXECUTION_TIMEOUT".into(), "600".into());
    for e in pool_settings(site, ServiceKind::PluginDaemon) {
        environment.insert(e.key, e.value);
    }
    if site.features.plugin_debugging {
        environment.insert("PLUGIN_REMOTE_INSTALLING_ENABLED".into(), "true".into());
        environment.insert("PLUGIN_REMOTE_INSTALLING_HOST".into(), "0.0.0.0".into());
        environment.insert(
            "PLUGIN_REMOTE_INSTALLING_PORT".into(),
            dify::PLUGIN_DEBUGGING_PORT.to_string(),
        );
        s.ports.push(cx.publish(dify::PLUGIN_DEBUGGING_PORT));
        s.notes
            .push("plugin debugging is on: its port is published on the box's address".into());
    } else {
        environment.insert("PLUGIN_REMOTE_INSTALLING_ENABLED".into(), "false".into());
        s.notes
            .push("plugin debugging is off: its port is neither served nor published".into());
    }
    s.volumes
        .push(format!("plugin_daemon_storage:{}", dify::PLUGIN_DAEMON_STORAGE_PATH).into());
}

/// The agent backend: its Redis, the plugin daemon, dify-api and the local
/// sandbox.
fn agent_backend(cx: &ServiceCx, environment: &mut Environment) {
    let ServiceCx { site, secrets, .. } = *cx;
    if let Some(url) = redis_url(site, secrets, dify::REDIS_DB_AGENT) {
        environment.insert("DIFY_AGENT_REDIS_URL".into(), url);
    }
    environment.insert(
        "DIFY_AGENT_PLUGIN_DAEMON_URL".into(),
        http_url("plugin_daemon", dify::PLUGIN_DAEMON_PORT),
    );
    environment.insert(
        "DIFY_AGENT_INNER_API_URL".into(),
        http_url("api", dify::API_PORT),
    );
    if has(site, ServiceKind::LocalSandbox) {
        environment.insert(
            "DIFY_AGENT_SHELLCTL_ENTRYPOINT".into(),
            http_url("local_sandbox", dify::LOCAL_SANDBOX_PORT),
        );
    }
}

/// nginx: the one service that publishes a port (plain http, and https
/// with the box's certificate and key when TLS is on).
fn nginx(cx: &ServiceCx, s: &mut ComposeService) {
    let site = cx.site;
    let tls = site.network.tls.as_ref();
    if tls.is_none_or(|t| t.http.published()) {
        s.ports.push(cx.publish(site.network.http_port));
    }
    s.volumes.push(
        format!(
            "./{}:{}:ro",
            crate::plan::NGINX_FILE,
            dify::tls::NGINX_CONF_PATH
        )
        .into(),
    );
    if let Some(tls) = tls {
        s.ports.push(cx.publish(tls.port));
        for (file, target) in [
            (&tls.certificate, dify::tls::NGINX_CERTIFICATE_PATH),
            (&tls.key, dify::tls::NGINX_KEY_PATH),
        ] {
            s.volumes
                .push(Volume::BoxFile(BoxFile::read_only(file, target)));
        }
        s.notes.push(format!(
            "https on port {}, with the box's certificate and key mounted read-only (nginx's master process reads them as root); plain http: {}",
            tls.port,
            tls.http.as_str()
        ));
    }
    s.notes
        .push("the only service that publishes a port, on the box's LAN address".into());
    let url = format!("http://127.0.0.1:{}/nginx-health", site.network.http_port);
    s.healthcheck = Some(healthcheck(
        &["CMD", "wget", "-q", "-O", "/dev/null", &url],
        "30s",
        "5s",
        3,
        "5s",
    ));
}

/// `redis://[:password@]host:port/db`, with the password a compose
/// reference.
fn redis_url(site: &Site, secrets: &SecretPlan, db: u8) -> Option<String> {
    let (host, port) = redis_host_port(site);
    match secrets.get("REDIS_PASSWORD") {
        None => Some(format!("redis://{host}:{port}/{db}")),
        Some(SecretSource::Env(var)) => {
            Some(format!("redis://:{}@{host}:{port}/{db}", required_var(var)))
        }
        Some(SecretSource::File { .. }) => None,
    }
}

/// The start wrapper of the dify-api services when they read secret files:
/// export each file under /run/secrets as the variable it is named after,
/// build the broker URL from a file-backed Redis password, then run Dify's
/// entrypoint. Written for compose (`$$`).
fn secret_file_wrapper(site: &Site, redis_password_file: bool) -> Vec<String> {
    let mut script = String::from(
        "set -eu; for f in /run/secrets/*; do [ -f \"$$f\" ] || continue; export \"$${f##*/}=$$(cat \"$$f\")\"; done; ",
    );
    if redis_password_file {
        let (host, port) = redis_host_port(site);
        script.push_str(&format!(
            "export CELERY_BROKER_URL=\"redis://:$${{REDIS_PASSWORD}}@{host}:{port}/{}\"; ",
            dify::REDIS_DB_CELERY
        ));
    }
    script.push_str("exec /bin/bash /entrypoint.sh");
    vec!["/bin/sh".into(), "-c".into(), script]
}

fn healthcheck(
    test: &[&str],
    interval: &'static str,
    timeout: &'static str,
    retries: u32,
    start_period: &'static str,
) -> Healthcheck {
    Healthcheck {
        test: test.iter().map(|s| s.to_string()).collect(),
        interval,
        timeout,
        retries,
        start_period,
    }
}

/// A service's labels: the site's, then dify-cfg's own (which win).
fn service_labels(site: &Site, kind: ServiceKind) -> Vec<KeyValue> {
    let mut labels: BTreeMap<String, String> = site
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), compose_literal(v)))
        .collect();
    labels.insert("dify-cfg.site".into(), compose_literal(&site.name));
    labels.insert("dify-cfg.service".into(), kind.key().into());
    labels.into_iter().map(|(k, v)| kv(k, v)).collect()
}

//! Stage 5: plan. For one validated [`Site`], decide every output file and
//! everything in it: which services run with which limits, health checks,
//! dependencies, networks and volumes; every environment variable; which
//! routes nginx opens to whom; every firewall rule; the Helm values tree.
//!
//! Templates only format what is decided here. The one thing a plan cannot
//! know is the tag of the images dify-cfg builds, because that tag ends with
//! the hash of the *rendered* Dockerfile (a config root may override the
//! template). So a [`SitePlan`] has two parts: the build files, rendered
//! first, and the deploy files, produced by [`SitePlan::deploy_artifacts`]
//! once the built images are known.
//!
//! Strings that end up in compose.yaml go through [`compose_literal`]:
//! compose interpolates `$` in every value, so a literal `$` is written `$$`.
//! Values that come from the site's `[env]` are literal; references to
//! secrets are interpolations (`${NAME:?NAME must be set}`) built only from
//! validated variable names.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::base::units::{TimeSpan, TimeUnit};
use crate::dify;
use crate::model::{ImageRef, SecretRef, Service, ServiceKind, Site, Target, VectorStore, is_v4};

/// Template names, one per output kind.
pub const TEMPLATE_COMPOSE: &str = "compose.yaml";
pub const TEMPLATE_DOTENV: &str = "dify.env";
pub const TEMPLATE_API_DOCKERFILE: &str = "api.Dockerfile";
pub const TEMPLATE_API_DOCKERIGNORE: &str = "api.Dockerfile.dockerignore";
pub const TEMPLATE_WEB_DOCKERFILE: &str = "web.Dockerfile";
pub const TEMPLATE_WEB_DOCKERIGNORE: &str = "web.Dockerfile.dockerignore";
pub const TEMPLATE_NGINX: &str = "nginx.conf";
pub const TEMPLATE_RULES_V4: &str = "rules.v4";
pub const TEMPLATE_RULES_V6: &str = "rules.v6";
pub const TEMPLATE_HELM_VALUES: &str = "values.yaml";
pub const TEMPLATE_APPLY: &str = "apply.sh";
pub const TEMPLATE_PULL_SERVICE: &str = "dify-cfg-pull.service";
pub const TEMPLATE_PULL_TIMER: &str = "dify-cfg-pull.timer";
pub const TEMPLATE_ARGOCD_APPLICATION: &str = "application.yaml";

/// Every template the planner uses.
pub const TEMPLATE_NAMES: &[&str] = &[
    TEMPLATE_COMPOSE,
    TEMPLATE_DOTENV,
    TEMPLATE_API_DOCKERFILE,
    TEMPLATE_API_DOCKERIGNORE,
    TEMPLATE_WEB_DOCKERFILE,
    TEMPLATE_WEB_DOCKERIGNORE,
    TEMPLATE_NGINX,
    TEMPLATE_RULES_V4,
    TEMPLATE_RULES_V6,
    TEMPLATE_HELM_VALUES,
    TEMPLATE_APPLY,
    TEMPLATE_PULL_SERVICE,
    TEMPLATE_PULL_TIMER,
    TEMPLATE_ARGOCD_APPLICATION,
];

/// Linux bridge names of the compose networks. Fixed names let the firewall
/// match the site's containers by interface; one Dify runs per box.
pub const BRIDGE_DEFAULT: &str = "dify-br0";
pub const BRIDGE_SSRF: &str = "dify-br1";
/// Dify's name for the internal network of the sandbox and its proxy.
pub const SSRF_NETWORK: &str = "ssrf_proxy_network";
/// The compose env file shared by the dify-api services.
pub const DOTENV_FILE: &str = "dify.env";
/// Outputs that other stages read back (the cross-check, the change
/// summaries, the pull agent's list of required files), by their path in
/// the site's tree.
pub const COMPOSE_FILE: &str = "compose.yaml";
pub const NGINX_FILE: &str = "nginx/default.conf";
pub const RULES_V4_FILE: &str = "firewall/rules.v4";
pub const RULES_V6_FILE: &str = "firewall/rules.v6";
pub const HELM_VALUES_FILE: &str = "helm/values.yaml";
/// Where compose mounts a secret file inside a container.
pub const SECRETS_DIR: &str = "/run/secrets";
/// Docker's embedded DNS server, which resolves compose service names.
pub const DOCKER_DNS: &str = "127.0.0.11";

// ---------------------------------------------------------------------------
// The plan

/// The image dify-cfg builds from Dify's source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BuiltKind {
    Api,
    Web,
}

impl BuiltKind {
    /// Repository name under the site's registry.
    pub fn repository_name(self) -> &'static str {
        match self {
            BuiltKind::Api => "dify-api",
            BuiltKind::Web => "dify-web",
        }
    }
}

/// The references of the two built images, known once their Dockerfiles
/// are rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImages {
    pub api: ImageRef,
    pub web: ImageRef,
}

impl BuiltImages {
    pub fn get(&self, kind: BuiltKind) -> &ImageRef {
        match kind {
            BuiltKind::Api => &self.api,
            BuiltKind::Web => &self.web,
        }
    }
}

/// The reference of a built image: `{registry}/dify-api:{version}-{hash}`,
/// where hash is the first 12 hex digits of the sha256 of the rendered
/// Dockerfile. The same Dockerfile always names the same image, so sites
/// with the same release and base share it.
pub fn built_image(site: &Site, kind: BuiltKind, dockerfile: &[u8]) -> ImageRef {
    built_image_of_hash(site, kind, &crate::base::source::sha256_hex(dockerfile))
}

/// [`built_image`] from the Dockerfile's sha256 (hex), e.g. as a manifest
/// records it.
pub fn built_image_of_hash(site: &Site, kind: BuiltKind, hash: &str) -> ImageRef {
    ImageRef {
        repository: format!(
            "{}/{}",
            site.build.registry.trim_end_matches('/'),
            kind.repository_name()
        ),
        tag: format!("{}-{}", site.dify_version, &hash[..12]),
        digest: None,
    }
}

/// One file to render.
#[derive(Debug, Clone, Serialize)]
pub struct Artifact {
    /// Path under the site's output directory, with `/`.
    pub path: String,
    /// Template name.
    pub template: &'static str,
    /// The image this file defines (Dockerfiles only).
    pub defines: Option<BuiltKind>,
    pub context: Context,
}

/// The typed context of each kind of output.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Context {
    Compose(Box<ComposeContext>),
    DotEnv(DotEnvContext),
    ApiDockerfile(ApiDockerfileContext),
    WebDockerfile(WebDockerfileContext),
    DockerIgnore(DockerIgnoreContext),
    Nginx(NginxContext),
    Firewall(FirewallContext),
    Helm(HelmContext),
    Pull(Box<PullContext>),
    ArgoCd(ArgoCdContext),
}

/// Everything to render for one site.
#[derive(Debug, Clone)]
pub struct SitePlan {
    pub site: String,
    /// Dockerfiles and their ignore files: rendered first.
    pub builds: Vec<Artifact>,
    /// The rest, with the built images still unresolved.
    deploy: Vec<Artifact>,
}

impl SitePlan {
    /// Every output path, sorted.
    pub fn paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = self
            .builds
            .iter()
            .chain(&self.deploy)
            .map(|a| a.path.clone())
            .collect();
        paths.sort();
        paths
    }

    /// The deploy files, naming the built images.
    pub fn deploy_artifacts(&self, built: &BuiltImages) -> Vec<Artifact> {
        let mut out = self.deploy.clone();
        for artifact in &mut out {
            match &mut artifact.context {
                Context::Compose(c) => {
                    for svc in &mut c.services {
                        if let Some(kind) = svc.built {
                            svc.image = built.get(kind).reference();
                        }
                    }
                }
                Context::Helm(h) => {
                    for (key, kind) in [("api", BuiltKind::Api), ("web", BuiltKind::Web)] {
                        let image = built.get(kind);
                        h.values["image"][key] = json!({
                            "repository": image.repository,
                            "tag": helm_tag(image),
                        });
                    }
                }
                _ => {}
            }
        }
        out
    }
}

/// What every template may print about the site.
#[derive(Debug, Clone, Serialize)]
pub struct SiteInfo {
    pub name: String,
    pub description: String,
    pub profile_chain: Vec<String>,
    pub dify_version: String,
    pub wave: u32,
    pub labels: Vec<KeyValue>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

fn kv(key: impl Into<String>, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: value.into(),
    }
}

fn site_info(site: &Site) -> SiteInfo {
    SiteInfo {
        name: site.name.clone(),
        description: site.description.clone(),
        profile_chain: site.profile_chain.to_vec(),
        dify_version: site.dify_version.clone(),
        wave: site.wave,
        labels: site.labels.iter().map(|(k, v)| kv(k, v)).collect(),
    }
}

/// Decide every artifact of a site.
pub fn plan(site: &Site) -> SitePlan {
    let builds = vec![
        Artifact {
            path: "docker/api.Dockerfile".into(),
            template: TEMPLATE_API_DOCKERFILE,
            defines: Some(BuiltKind::Api),
            context: Context::ApiDockerfile(api_dockerfile(site)),
        },
        Artifact {
            path: "docker/api.Dockerfile.dockerignore".into(),
            template: TEMPLATE_API_DOCKERIGNORE,
            defines: None,
            context: Context::DockerIgnore(api_dockerignore()),
        },
        Artifact {
            path: "docker/web.Dockerfile".into(),
            template: TEMPLATE_WEB_DOCKERFILE,
            defines: Some(BuiltKind::Web),
            context: Context::WebDockerfile(web_dockerfile(site)),
        },
        Artifact {
            path: "docker/web.Dockerfile.dockerignore".into(),
            template: TEMPLATE_WEB_DOCKERIGNORE,
            defines: None,
            context: Context::DockerIgnore(web_dockerignore()),
        },
    ];
    let deploy = match site.target {
        Target::Compose => {
            let env = EnvPlan::new(site);
            let mut deploy = vec![
                Artifact {
                    path: COMPOSE_FILE.into(),
                    template: TEMPLATE_COMPOSE,
                    defines: None,
                    context: Context::Compose(Box::new(compose(site, &env))),
                },
                Artifact {
                    path: DOTENV_FILE.into(),
                    template: TEMPLATE_DOTENV,
                    defines: None,
                    context: Context::DotEnv(dotenv(site, &env)),
                },
                Artifact {
                    path: NGINX_FILE.into(),
                    template: TEMPLATE_NGINX,
                    defines: None,
                    context: Context::Nginx(nginx(site)),
                },
                Artifact {
                    path: RULES_V4_FILE.into(),
                    template: TEMPLATE_RULES_V4,
                    defines: None,
                    context: Context::Firewall(firewall(site, Family::V4)),
                },
                Artifact {
                    path: RULES_V6_FILE.into(),
                    template: TEMPLATE_RULES_V6,
                    defines: None,
                    context: Context::Firewall(firewall(site, Family::V6)),
                },
            ];
            if let Some(pull) = pull_agent(site) {
                let contexts = [
                    Box::new(pull.clone()),
                    Box::new(pull.clone()),
                    Box::new(pull),
                ];
                for ((path, template), context) in [
                    (PULL_SCRIPT, TEMPLATE_APPLY),
                    (PULL_SERVICE, TEMPLATE_PULL_SERVICE),
                    (PULL_TIMER, TEMPLATE_PULL_TIMER),
                ]
                .into_iter()
                .zip(contexts)
                {
                    deploy.push(Artifact {
                        path: path.into(),
                        template,
                        defines: None,
                        context: Context::Pull(context),
                    });
                }
            }
            deploy
        }
        Target::Helm => {
            let mut deploy = vec![Artifact {
                path: HELM_VALUES_FILE.into(),
                template: TEMPLATE_HELM_VALUES,
                defines: None,
                context: Context::Helm(helm(site)),
            }];
            if let Some(app) = argocd_application(site) {
                deploy.push(Artifact {
                    path: ARGOCD_APPLICATION.into(),
                    template: TEMPLATE_ARGOCD_APPLICATION,
                    defines: None,
                    context: Context::ArgoCd(app),
                });
            }
            deploy
        }
    };
    SitePlan {
        site: site.name.clone(),
        builds,
        deploy,
    }
}

// ---------------------------------------------------------------------------
// Helpers shared by the outputs

/// A literal string for compose.yaml: compose interpolates `$` everywhere,
/// `$$` is a literal `$`.
pub fn compose_literal(s: &str) -> String {
    s.replace('$', "$$")
}

/// A compose interpolation that fails the deploy when the variable is unset.
fn required_var(var: &str) -> String {
    format!("${{{var}:?{var} must be set}}")
}

/// Whether a value can be written in a compose env file: dify-cfg writes
/// single-quoted values, which compose reads literally (no `$` expansion, no
/// escapes) up to the next `'` that is not after a backslash.
pub fn dotenv_representable(value: &str) -> bool {
    !value.contains('\'') && !value.ends_with('\\') && !value.chars().any(char::is_control)
}

fn has(site: &Site, kind: ServiceKind) -> bool {
    site.services.contains_key(&kind)
}

fn http_url(host: &str, port: u16) -> String {
    format!("http://{host}:{port}")
}

/// The site's public base URL, e.g. `http://clinic-01.example.org`.
fn base_url(site: &Site) -> String {
    let host = &site.network.hostname;
    let host = match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => format!("[{host}]"),
        _ => host.clone(),
    };
    match (site.target, site.network.http_port) {
        (Target::Compose, p) if p != 80 => format!("http://{host}:{p}"),
        _ => format!("http://{host}"),
    }
}

fn websocket_url(site: &Site) -> String {
    base_url(site).replacen("http://", "ws://", 1)
}

fn db_host_port(site: &Site) -> (String, u16) {
    match &site.database.external {
        Some(e) => (e.host.clone(), e.port),
        None => (
            ServiceKind::Db.compose_name().to_string(),
            dify::POSTGRES_PORT,
        ),
    }
}

fn db_name(site: &Site) -> String {
    site.database
        .external
        .as_ref()
        .and_then(|e| e.database.clone())
        .unwrap_or_else(|| site.database.name.clone())
}

fn redis_host_port(site: &Site) -> (String, u16) {
    match &site.redis.external {
        Some(e) => (e.host.clone(), e.port),
        None => (
            ServiceKind::Redis.compose_name().to_string(),
            dify::REDIS_PORT,
        ),
    }
}

/// `tag[@digest]`: the chart writes `repository:tag`, so a digest rides on
/// the tag.
fn helm_tag(image: &ImageRef) -> String {
    match &image.digest {
        Some(d) => format!("{}@{}", image.tag, d),
        None => image.tag.clone(),
    }
}

/// Text for a comment or firewall reason: only characters that need no
/// quoting anywhere (validated names, CIDRs, ports pass unchanged).
pub fn reason_text(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " ./:,_-[]()".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Dify settings shared by the dify-api services (compose: dify.env; helm:
// extraEnv)

/// Where a Dify setting's value lives when it is not a literal.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SecretSource {
    /// A variable of the deploying host's environment.
    Env(String),
    /// A file on the deploying host, mounted as compose secret `id`.
    File { id: String },
}

/// The secret side of a compose site: which secrets exist, where they live.
#[derive(Debug, Clone, Default)]
struct SecretPlan {
    sources: BTreeMap<String, SecretSource>,
    /// Compose top-level secrets: id to host path.
    files: BTreeMap<String, String>,
}

impl SecretPlan {
    fn new(site: &Site) -> Self {
        let mut plan = SecretPlan::default();
        for (name, r) in &site.secrets {
            match r {
                SecretRef::Env { name: var } => {
                    plan.sources
                        .insert(name.clone(), SecretSource::Env(var.clone()));
                }
                SecretRef::File { path } => {
                    let id = name.to_ascii_lowercase();
                    plan.files.insert(id.clone(), path.clone());
                    plan.sources.insert(name.clone(), SecretSource::File { id });
                }
                // Compose sites never hold remote references (validated).
                SecretRef::Remote { .. } => {}
            }
        }
        plan
    }

    fn get(&self, name: &str) -> Option<&SecretSource> {
        self.sources.get(name)
    }
}

/// The computed, non-secret Dify settings of a site, in sections, and the
/// site's `[env]` entries, split by where they can be written.
#[derive(Debug, Clone)]
struct EnvPlan {
    sections: Vec<EnvSection>,
    /// `[env]` entries compose can read from the env file.
    site_dotenv: BTreeMap<String, String>,
    /// Settings (from `[env]` or computed) that cannot be written in an env
    /// file (a quote, a control character); compose.yaml carries them.
    inline: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EnvSection {
    pub title: &'static str,
    pub entries: Vec<KeyValue>,
}

impl EnvPlan {
    fn new(site: &Site) -> Self {
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
fn shared_settings(site: &Site) -> Vec<(&'static str, Vec<KeyValue>)> {
    let compose = site.target == Target::Compose;
    let base = base_url(site);
    let mut out = Vec::new();

    out.push((
        "Public URLs",
        vec![
            kv("CONSOLE_API_URL", &base),
            kv("CONSOLE_WEB_URL", &base),
            kv("SERVICE_API_URL", &base),
            kv("APP_API_URL", &base),
            kv("APP_WEB_URL", &base),
            kv("FILES_URL", &base),
            kv("TRIGGER_URL", &base),
            kv("ENDPOINT_URL_TEMPLATE", format!("{base}/e/{{hook_id}}")),
        ],
    ));

    if compose {
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
            kv("MIGRATION_ENABLED", "true"),
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
    if compose && site.features.plugin_debugging && has(site, ServiceKind::PluginDaemon) {
        features.push(kv("PLUGIN_REMOTE_INSTALL_HOST", &site.network.hostname));
        features.push(kv(
            "PLUGIN_REMOTE_INSTALL_PORT",
            dify::PLUGIN_DEBUGGING_PORT.to_string(),
        ));
    }
    out.push(("Features", features));

    if compose {
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
        out.push(("Other services of the site", wiring));
    }
    out
}

// ---------------------------------------------------------------------------
// dify.env

#[derive(Debug, Clone, Serialize)]
pub struct DotEnvContext {
    pub site: SiteInfo,
    pub sections: Vec<EnvSection>,
    /// The site's `[env]`, which wins over the computed settings.
    pub site_env: Vec<KeyValue>,
    /// `[env]` names whose values cannot be written in an env file; they are
    /// set in compose.yaml instead.
    pub moved: Vec<String>,
    /// Names of secrets, set in compose.yaml by reference.
    pub secrets: Vec<String>,
}

fn dotenv(site: &Site, env: &EnvPlan) -> DotEnvContext {
    DotEnvContext {
        site: site_info(site),
        sections: env.sections.clone(),
        site_env: env.site_dotenv.iter().map(|(k, v)| kv(k, v)).collect(),
        moved: env.inline.keys().cloned().collect(),
        secrets: site.secrets.keys().cloned().collect(),
    }
}

// ---------------------------------------------------------------------------
// compose.yaml

#[derive(Debug, Clone, Serialize)]
pub struct ComposeContext {
    pub site: SiteInfo,
    /// Compose project name.
    pub project: String,
    pub services: Vec<ComposeService>,
    pub networks: Vec<ComposeNetwork>,
    pub volumes: Vec<String>,
    /// Compose top-level secrets (file-backed).
    pub secrets: Vec<ComposeSecret>,
    /// Log rotation applied to every service.
    pub logging: Logging,
    /// Header notes (gaps, decisions worth a reviewer's eye).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Logging {
    pub driver: &'static str,
    pub max_size: &'static str,
    pub max_file: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct ComposeService {
    /// Compose service name.
    pub name: &'static str,
    /// `[services.*]` key.
    pub key: &'static str,
    pub image: String,
    /// The built image this service runs; filled in by
    /// [`SitePlan::deploy_artifacts`].
    #[serde(skip)]
    pub built: Option<BuiltKind>,
    pub notes: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    pub command: Option<Vec<String>>,
    pub env_file: Option<&'static str>,
    /// Sorted by name; values ready for compose (literals `$`-escaped).
    pub environment: Vec<KeyValue>,
    pub mem_limit: String,
    pub cpus: String,
    pub replicas: Option<u32>,
    pub ports: Vec<String>,
    pub volumes: Vec<String>,
    pub secrets: Vec<SecretMount>,
    pub healthcheck: Option<Healthcheck>,
    pub depends_on: Vec<Dependency>,
    pub networks: Vec<&'static str>,
    pub labels: Vec<KeyValue>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct SecretMount {
    pub source: String,
    pub target: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Healthcheck {
    pub test: Vec<String>,
    pub interval: &'static str,
    pub timeout: &'static str,
    pub retries: u32,
    pub start_period: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct Dependency {
    pub service: &'static str,
    pub condition: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct ComposeNetwork {
    pub name: &'static str,
    pub internal: bool,
    pub bridge: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct ComposeSecret {
    pub name: String,
    pub file: String,
}

/// The variables a service reads a Dify secret under (`None`: the service
/// does not need it). dify-api services read Dify's own names.
fn secret_vars(site: &Site, kind: ServiceKind, name: &str) -> Vec<&'static str> {
    let pgvector = site.vector_store == VectorStore::Pgvector;
    match kind {
        k if k.uses_api_image() => match name {
            "PLUGIN_DIFY_INNER_API_KEY" | "INNER_API_KEY_FOR_PLUGIN" => {
                vec!["INNER_API_KEY_FOR_PLUGIN"]
            }
            "DB_PASSWORD" if pgvector => vec!["DB_PASSWORD", "PGVECTOR_PASSWORD"],
            // Checked names: the &'static copy comes from the known list.
            other => dify::env_names()
                .get(other)
                .map(|n| vec![*n])
                .unwrap_or_default(),
        },
        ServiceKind::Db => match name {
            "DB_PASSWORD" => vec!["POSTGRES_PASSWORD"],
            _ => vec![],
        },
        ServiceKind::Redis => match name {
            "REDIS_PASSWORD" => vec!["REDISCLI_AUTH"],
            _ => vec![],
        },
        ServiceKind::PluginDaemon => match name {
            "DB_PASSWORD" => vec!["DB_PASSWORD"],
            "REDIS_PASSWORD" => vec!["REDIS_PASSWORD"],
            "PLUGIN_DAEMON_KEY" => vec!["SERVER_KEY"],
            "PLUGIN_DIFY_INNER_API_KEY" | "INNER_API_KEY_FOR_PLUGIN" => vec!["DIFY_INNER_API_KEY"],
            _ => vec![],
        },
        ServiceKind::Sandbox => match name {
            "CODE_EXECUTION_API_KEY" | "SANDBOX_API_KEY" => vec!["API_KEY"],
            _ => vec![],
        },
        ServiceKind::AgentBackend => match name {
            "PLUGIN_DAEMON_KEY" => vec!["DIFY_AGENT_PLUGIN_DAEMON_API_KEY"],
            "PLUGIN_DIFY_INNER_API_KEY" | "INNER_API_KEY_FOR_PLUGIN" => {
                vec!["DIFY_AGENT_INNER_API_KEY"]
            }
            "DIFY_AGENT_API_TOKEN" => vec!["DIFY_AGENT_API_TOKEN"],
            "DIFY_AGENT_SERVER_SECRET_KEY" => vec!["DIFY_AGENT_SERVER_SECRET_KEY"],
            "DIFY_AGENT_SHELLCTL_AUTH_TOKEN" => vec!["DIFY_AGENT_SHELLCTL_AUTH_TOKEN"],
            _ => vec![],
        },
        ServiceKind::LocalSandbox => match name {
            "DIFY_AGENT_SHELLCTL_AUTH_TOKEN" => vec!["SHELLCTL_AUTH_TOKEN"],
            _ => vec![],
        },
        _ => vec![],
    }
}

/// Services that can read a file-backed secret: postgres natively
/// (`*_FILE`), redis through its start command, the dify-api services
/// through dify-cfg's start wrapper. The other upstream images read only
/// their environment.
fn reads_secret_files(kind: ServiceKind) -> bool {
    kind.uses_api_image() || matches!(kind, ServiceKind::Db | ServiceKind::Redis)
}

/// File-backed secrets that a service needs but can only read from its
/// environment: (secret, service). Validation should refuse these; the
/// compose file mounts them anyway and says so in a comment.
pub fn unsupported_file_secrets(site: &Site) -> Vec<(String, ServiceKind)> {
    let mut out = Vec::new();
    if site.target != Target::Compose {
        return out;
    }
    for (name, r) in &site.secrets {
        if !matches!(r, SecretRef::File { .. }) {
            continue;
        }
        for &kind in site.services.keys() {
            let composite = name == "REDIS_PASSWORD" && kind == ServiceKind::AgentBackend;
            if !reads_secret_files(kind) && (composite || !secret_vars(site, kind, name).is_empty())
            {
                out.push((name.clone(), kind));
            }
        }
    }
    out
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

fn compose(site: &Site, env: &EnvPlan) -> ComposeContext {
    let secrets = SecretPlan::new(site);
    let mut notes = Vec::new();
    let uses_ssrf_network = has(site, ServiceKind::Sandbox) || has(site, ServiceKind::SsrfProxy);
    let (db_host, db_port) = db_host_port(site);
    let (redis_host, redis_port) = redis_host_port(site);
    let publish_ip = site.network.address.map(|a| a.to_string());
    let publish = |port: u16| match &publish_ip {
        Some(ip) => format!("{ip}:{port}:{port}"),
        None => format!("{port}:{port}"),
    };

    let mut services = Vec::new();
    for (&kind, svc) in &site.services {
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
            depends_on: Vec::new(),
            networks: vec!["default"],
            labels: service_labels(site, kind),
        };
        let mut environment: BTreeMap<String, String> = BTreeMap::new();

        // Secrets: a reference in the environment, or a mounted file.
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

        match kind {
            k if k.uses_api_image() => {
                s.built = Some(BuiltKind::Api);
                s.image = String::new();
                s.env_file = Some(DOTENV_FILE);
                let mode = match k {
                    ServiceKind::Worker => "worker",
                    ServiceKind::WorkerBeat => "beat",
                    _ => "api",
                };
                environment.insert("MODE".into(), mode.into());
                if let Some(url) = redis_url(site, &secrets, dify::REDIS_DB_CELERY) {
                    environment.insert("CELERY_BROKER_URL".into(), url);
                }
                for (k, v) in &env.inline {
                    environment.insert(k.clone(), compose_literal(v));
                }
                if k == ServiceKind::ApiWebsocket {
                    s.notes.push(
                        "the collaboration websocket: dify-api with gunicorn's websocket worker"
                            .into(),
                    );
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
                    s.notes.push("started through a wrapper that exports the secret files under /run/secrets".into());
                }
                if matches!(
                    k,
                    ServiceKind::Api | ServiceKind::Worker | ServiceKind::ApiWebsocket
                ) {
                    s.volumes
                        .push(format!("api_storage:{}", dify::API_STORAGE_PATH));
                }
                if uses_ssrf_network && matches!(k, ServiceKind::Api | ServiceKind::Worker) {
                    s.networks.push(SSRF_NETWORK);
                }
                if k == ServiceKind::Api {
                    let url = format!("http://127.0.0.1:{}/health", dify::API_PORT);
                    s.healthcheck = Some(healthcheck(
                        &["CMD", "curl", "-fsS", "-o", "/dev/null", &url],
                        "30s",
                        "5s",
                        3,
                        "120s",
                    ));
                }
            }
            ServiceKind::Web => {
                s.built = Some(BuiltKind::Web);
                s.image = String::new();
                let base = base_url(site);
                environment.insert("CONSOLE_API_URL".into(), compose_literal(&base));
                environment.insert("APP_API_URL".into(), compose_literal(&base));
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
            ServiceKind::Db => {
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
            ServiceKind::Redis => {
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
                        s.healthcheck =
                            Some(healthcheck(&["CMD-SHELL", ping], "5s", "3s", 30, "5s"));
                    }
                    Some(SecretSource::File { .. }) => {
                        let file = format!("{SECRETS_DIR}/REDISCLI_AUTH");
                        s.command = Some(vec![
                            "sh".into(),
                            "-c".into(),
                            format!("exec redis-server --requirepass \"$$(cat {file})\" {limits}"),
                        ]);
                        let test = format!("REDISCLI_AUTH=\"$$(cat {file})\" {ping}");
                        s.healthcheck =
                            Some(healthcheck(&["CMD-SHELL", &test], "5s", "3s", 30, "5s"));
                    }
                    None => {
                        let mut command = vec!["redis-server".to_string()];
                        command.extend(limits.split(' ').map(str::to_string));
                        s.command = Some(command);
                        s.healthcheck =
                            Some(healthcheck(&["CMD-SHELL", ping], "5s", "3s", 30, "5s"));
                    }
                }
                s.volumes.push("redis_data:/data".into());
            }
            ServiceKind::Sandbox => {
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
                s.notes.push(
                    "only on the internal network: its traffic leaves through ssrf_proxy".into(),
                );
                let url = format!("http://127.0.0.1:{}/health", dify::SANDBOX_PORT);
                s.healthcheck = Some(healthcheck(
                    &["CMD", "curl", "-f", &url],
                    "30s",
                    "5s",
                    3,
                    "10s",
                ));
            }
            ServiceKind::SsrfProxy => {
                s.networks = vec!["default", SSRF_NETWORK];
                s.notes.push("squid with the image's own configuration (Docker networks count as its localnet)".into());
            }
            ServiceKind::PluginDaemon => {
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
                if site.features.plugin_debugging {
                    environment.insert("PLUGIN_REMOTE_INSTALLING_ENABLED".into(), "true".into());
                    environment.insert("PLUGIN_REMOTE_INSTALLING_HOST".into(), "0.0.0.0".into());
                    environment.insert(
                        "PLUGIN_REMOTE_INSTALLING_PORT".into(),
                        dify::PLUGIN_DEBUGGING_PORT.to_string(),
                    );
                    s.ports.push(publish(dify::PLUGIN_DEBUGGING_PORT));
                    s.notes.push(
                        "plugin debugging is on: its port is published on the box's address".into(),
                    );
                } else {
                    environment.insert("PLUGIN_REMOTE_INSTALLING_ENABLED".into(), "false".into());
                    s.notes.push(
                        "plugin debugging is off: its port is neither served nor published".into(),
                    );
                }
                s.volumes.push(format!(
                    "plugin_daemon_storage:{}",
                    dify::PLUGIN_DAEMON_STORAGE_PATH
                ));
            }
            ServiceKind::AgentBackend => {
                if let Some(url) = redis_url(site, &secrets, dify::REDIS_DB_AGENT) {
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
            ServiceKind::LocalSandbox => {
                environment.insert("SHELLCTL_ENABLE_PATH_ISOLATION".into(), "true".into());
            }
            ServiceKind::Nginx => {
                s.ports.push(publish(site.network.http_port));
                s.volumes
                    .push("./nginx/default.conf:/etc/nginx/conf.d/default.conf:ro".into());
                s.notes.push(
                    "the only service that publishes a port, on the box's LAN address".into(),
                );
                let url = format!("http://127.0.0.1:{}/nginx-health", site.network.http_port);
                s.healthcheck = Some(healthcheck(
                    &["CMD", "wget", "-q", "-O", "/dev/null", &url],
                    "30s",
                    "5s",
                    3,
                    "5s",
                ));
            }
            _ => {}
        }
        s.environment = environment.into_iter().map(|(k, v)| kv(k, v)).collect();
        services.push(s);
    }

    // Dependencies: wait for health where the dependency has a check.
    let healthy: BTreeSet<&'static str> = services
        .iter()
        .filter(|s| s.healthcheck.is_some())
        .map(|s| s.name)
        .collect();
    let present: BTreeSet<&'static str> = services.iter().map(|s| s.name).collect();
    for s in &mut services {
        let kind = ServiceKind::from_key(s.key).expect("a known service");
        let mut wants: Vec<ServiceKind> = Vec::new();
        if kind.uses_api_image() || kind == ServiceKind::PluginDaemon {
            wants.extend([ServiceKind::Db, ServiceKind::Redis]);
        }
        match kind {
            ServiceKind::Api => wants.push(ServiceKind::AgentBackend),
            ServiceKind::Sandbox => wants.push(ServiceKind::SsrfProxy),
            ServiceKind::AgentBackend => {
                wants.extend([ServiceKind::Redis, ServiceKind::LocalSandbox])
            }
            _ => {}
        }
        for want in wants {
            let name = want.compose_name();
            if present.contains(name) && !s.depends_on.iter().any(|d| d.service == name) {
                s.depends_on.push(Dependency {
                    service: name,
                    condition: if healthy.contains(name) {
                        "service_healthy"
                    } else {
                        "service_started"
                    },
                });
            }
        }
    }

    let mut networks = vec![ComposeNetwork {
        name: "default",
        internal: false,
        bridge: BRIDGE_DEFAULT,
    }];
    if uses_ssrf_network {
        networks.push(ComposeNetwork {
            name: SSRF_NETWORK,
            internal: true,
            bridge: BRIDGE_SSRF,
        });
    }
    let mut volumes: Vec<String> = services
        .iter()
        .flat_map(|s| s.volumes.iter())
        .filter(|v| !v.starts_with("./"))
        .filter_map(|v| v.split(':').next())
        .map(str::to_string)
        .collect();
    volumes.sort();
    volumes.dedup();

    let unsupported = unsupported_file_secrets(site);
    for (name, kind) in &unsupported {
        notes.push(format!(
            "{name}: {} cannot read secret files; see the service's note",
            kind.compose_name()
        ));
    }
    notes.push(format!(
        "compose networks use fixed bridge names ({BRIDGE_DEFAULT}, {BRIDGE_SSRF}) that firewall/rules.v4 matches"
    ));

    ComposeContext {
        site: site_info_compose(site),
        project: site.name.clone(),
        services,
        networks,
        volumes,
        secrets: secrets
            .files
            .iter()
            .map(|(name, file)| ComposeSecret {
                name: name.clone(),
                file: compose_literal(file),
            })
            .collect(),
        logging: Logging {
            driver: "json-file",
            max_size: "10m",
            max_file: 3,
        },
        notes,
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

/// Site information for compose.yaml: literal strings `$`-escaped.
fn site_info_compose(site: &Site) -> SiteInfo {
    let mut info = site_info(site);
    info.description = compose_literal(&info.description);
    for l in &mut info.labels {
        l.value = compose_literal(&l.value);
    }
    info
}

// ---------------------------------------------------------------------------
// Dockerfiles

#[derive(Debug, Clone, Serialize)]
pub struct ApiDockerfileContext {
    /// Base image reference (tag, and digest when pinned).
    pub base: String,
    pub dify_version: String,
    pub source: &'static str,
    pub uv_version: &'static str,
    pub uid: u32,
    pub port: u16,
    pub storage_path: &'static str,
    /// Packages the packages stage compiles with.
    pub build_packages: Vec<&'static str>,
    /// Libraries and tools the production stage needs at run time.
    pub runtime_packages: Vec<&'static str>,
    /// NLTK data fetched at build time (edge boxes may not reach the
    /// internet at run time).
    pub nltk_packages: Vec<&'static str>,
    pub labels: Vec<KeyValue>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WebDockerfileContext {
    pub base: String,
    pub dify_version: String,
    pub source: &'static str,
    pub pm2_version: &'static str,
    pub uid: u32,
    pub port: u16,
    pub labels: Vec<KeyValue>,
}

fn oci_labels(site: &Site, title: &str, base: &ImageRef) -> Vec<KeyValue> {
    vec![
        kv("org.opencontainers.image.title", title),
        kv("org.opencontainers.image.source", dify::SOURCE_REPOSITORY),
        kv("org.opencontainers.image.version", &site.dify_version),
        kv("org.opencontainers.image.revision", &site.dify_version),
        kv("org.opencontainers.image.base.name", base.reference()),
    ]
}

fn api_dockerfile(site: &Site) -> ApiDockerfileContext {
    ApiDockerfileContext {
        base: site.build.api_base.reference(),
        dify_version: site.dify_version.clone(),
        source: dify::SOURCE_REPOSITORY,
        uv_version: dify::UV_VERSION,
        uid: dify::DIFY_UID,
        port: dify::API_PORT,
        storage_path: dify::API_STORAGE_PATH,
        build_packages: vec![
            "gcc",
            "g++",
            "libc-dev",
            "libffi-dev",
            "libgmp-dev",
            "libmpfr-dev",
            "libmpc-dev",
        ],
        runtime_packages: vec![
            "curl",
            "nodejs",
            "libgmp10",
            "libmpfr6",
            "libmpc3",
            "libmagic1",
            "media-types",
        ],
        nltk_packages: vec![
            "punkt",
            "punkt_tab",
            "averaged_perceptron_tagger",
            "averaged_perceptron_tagger_eng",
            "stopwords",
        ],
        labels: oci_labels(site, "dify-api", &site.build.api_base),
    }
}

fn web_dockerfile(site: &Site) -> WebDockerfileContext {
    WebDockerfileContext {
        base: site.build.web_base.reference(),
        dify_version: site.dify_version.clone(),
        source: dify::SOURCE_REPOSITORY,
        pm2_version: dify::PM2_VERSION,
        uid: dify::DIFY_UID,
        port: dify::WEB_PORT,
        labels: oci_labels(site, "dify-web", &site.build.web_base),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DockerIgnoreContext {
    pub image: &'static str,
    pub groups: Vec<IgnoreGroup>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IgnoreGroup {
    pub why: &'static str,
    pub patterns: Vec<&'static str>,
}

fn ignore(why: &'static str, patterns: &[&'static str]) -> IgnoreGroup {
    IgnoreGroup {
        why,
        patterns: patterns.to_vec(),
    }
}

fn api_dockerignore() -> DockerIgnoreContext {
    DockerIgnoreContext {
        image: "dify-api",
        groups: vec![
            ignore("version control", &[".git", ".gitignore"]),
            ignore(
                "local environments and secrets",
                &[".env", ".env.*", ".venv", "venv"],
            ),
            ignore(
                "caches and build output",
                &[
                    "**/__pycache__",
                    "**/*.py[cod]",
                    ".pytest_cache",
                    ".mypy_cache",
                    ".ruff_cache",
                    ".coverage",
                    "htmlcov",
                    "node_modules",
                ],
            ),
            ignore("tests", &["tests"]),
            ignore("run-time data", &["storage", "logs", "*.log"]),
            ignore("editors", &[".idea", ".vscode"]),
        ],
    }
}

fn web_dockerignore() -> DockerIgnoreContext {
    DockerIgnoreContext {
        image: "dify-web",
        groups: vec![
            ignore("version control", &[".git", ".gitignore"]),
            ignore("local environments and secrets", &[".env", ".env.*"]),
            ignore(
                "dependencies and build output, rebuilt in the image",
                &[
                    "node_modules",
                    ".next",
                    "out",
                    "coverage",
                    ".eslintcache",
                    "*.tsbuildinfo",
                ],
            ),
            ignore(
                "tests",
                &[
                    "**/__tests__",
                    "**/*.test.ts",
                    "**/*.test.tsx",
                    "**/*.spec.ts",
                    "**/*.spec.tsx",
                ],
            ),
            ignore("logs and editors", &["*.log", ".idea", ".vscode"]),
        ],
    }
}

// ---------------------------------------------------------------------------
// nginx

#[derive(Debug, Clone, Serialize)]
pub struct NginxContext {
    pub site: SiteInfo,
    pub listen: u16,
    pub server_name: String,
    pub resolver: &'static str,
    /// nginx variables holding upstream URLs, resolved per request.
    pub upstreams: Vec<KeyValue>,
    pub locations: Vec<NginxLocation>,
    pub websocket: bool,
    pub client_max_body_size: &'static str,
    /// Path of the loopback-only health location of the default server.
    pub health_path: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct NginxLocation {
    /// `=` for an exact match, empty for a prefix.
    pub modifier: &'static str,
    pub path: String,
    /// nginx variable of the upstream, without `$`.
    pub upstream: &'static str,
    /// `lan` (the site LAN and the admin networks) or `admin`.
    pub audience: &'static str,
    pub allow: Vec<String>,
    pub websocket: bool,
    pub why: String,
}

fn upstream_var(kind: ServiceKind) -> &'static str {
    match kind {
        ServiceKind::Api => "dify_api",
        ServiceKind::Web => "dify_web",
        ServiceKind::PluginDaemon => "dify_plugin_daemon",
        ServiceKind::ApiWebsocket => "dify_api_websocket",
        _ => "dify_api",
    }
}

fn upstream_port(kind: ServiceKind) -> u16 {
    match kind {
        ServiceKind::Web => dify::WEB_PORT,
        ServiceKind::PluginDaemon => dify::PLUGIN_DAEMON_PORT,
        _ => dify::API_PORT,
    }
}

/// The networks a LAN route is open to: the site LAN(s) and the admin
/// networks; an admin route only to the admin networks.
fn audience(site: &Site, public: bool) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if public {
        out.extend(site.network.lan.map(|n| n.to_string()));
        out.extend(site.network.lan6.map(|n| n.to_string()));
    }
    out.extend(site.network.admin.iter().map(|n| n.to_string()));
    let mut seen = BTreeSet::new();
    out.retain(|n| seen.insert(n.clone()));
    out
}

fn nginx(site: &Site) -> NginxContext {
    let public: BTreeSet<&str> = site
        .network
        .public_routes
        .iter()
        .map(String::as_str)
        .collect();
    let mut locations = Vec::new();
    let mut used = BTreeSet::new();
    let mut location =
        |modifier: &'static str, path: &str, kind: ServiceKind, public: bool, why: String| {
            used.insert(kind);
            NginxLocation {
                modifier,
                path: path.to_string(),
                upstream: upstream_var(kind),
                audience: if public { "lan" } else { "admin" },
                allow: audience(site, public),
                websocket: kind == ServiceKind::ApiWebsocket,
                why,
            }
        };
    if has(site, ServiceKind::Api) {
        locations.push(location(
            "=",
            "/health",
            ServiceKind::Api,
            true,
            "api health".into(),
        ));
    }
    for (prefix, why) in dify::ROUTES {
        let Some(kind) = dify::route_service(prefix) else {
            continue;
        };
        if !has(site, kind) {
            continue;
        }
        locations.push(location(
            "",
            prefix,
            kind,
            public.contains(prefix),
            (*why).to_string(),
        ));
    }
    // A public route narrower than Dify's prefixes (e.g. only
    // `/v1/completion-messages`) gets its own location, served by the
    // service of the longest Dify prefix it falls under.
    for route in &site.network.public_routes {
        if dify::ROUTES.iter().any(|(p, _)| p == route) {
            continue;
        }
        let owner = dify::ROUTES
            .iter()
            .filter(|(p, _)| {
                route.starts_with(p) || (p.ends_with('/') && route == p.trim_end_matches('/'))
            })
            .max_by_key(|(p, _)| p.len());
        if let Some((prefix, _)) = owner
            && let Some(kind) = dify::route_service(prefix)
            && has(site, kind)
        {
            locations.push(location(
                "",
                route,
                kind,
                true,
                format!("part of {prefix} opened to the LAN"),
            ));
        }
    }
    locations.sort_by(|a, b| a.path.cmp(&b.path).then(a.modifier.cmp(b.modifier)));
    let upstreams = used
        .iter()
        .map(|&k| {
            kv(
                upstream_var(k),
                http_url(k.compose_name(), upstream_port(k)),
            )
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    NginxContext {
        site: site_info(site),
        listen: site.network.http_port,
        server_name: site.network.hostname.clone(),
        resolver: DOCKER_DNS,
        upstreams,
        websocket: locations.iter().any(|l| l.websocket),
        locations,
        client_max_body_size: "100m",
        health_path: "/nginx-health",
    }
}

// ---------------------------------------------------------------------------
// Firewall

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

#[derive(Debug, Clone, Serialize)]
pub struct FirewallContext {
    pub site: SiteInfo,
    /// `ipv4` or `ipv6`.
    pub family: &'static str,
    /// The command that loads the file.
    pub restore: &'static str,
    /// Chains this file declares (and so creates or flushes).
    pub chains: Vec<&'static str>,
    /// Chains this file empties before adding its rules.
    pub flush: Vec<&'static str>,
    pub rules: Vec<Rule>,
}

/// One iptables rule; the template prints the options in a fixed order.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Rule {
    pub chain: &'static str,
    pub in_iface: Option<&'static str>,
    pub out_iface: Option<&'static str>,
    pub source: Option<String>,
    pub destination: Option<String>,
    /// `tcp`, `udp`, `icmp` or `ipv6-icmp`.
    pub protocol: Option<&'static str>,
    pub dport: Option<u16>,
    pub sport: Option<u16>,
    pub icmp_type: Option<&'static str>,
    /// Require a hop limit of 255 (IPv6 neighbour discovery).
    pub hop_limit_255: bool,
    pub ctstate: Option<&'static str>,
    pub ctorigdst: Option<String>,
    pub ctorigdstport: Option<u16>,
    pub comment: String,
    pub target: &'static str,
}

pub const CHAIN_INPUT: &str = "DIFY-INPUT";
pub const CHAIN_DOCKER: &str = "DIFY-DOCKER";
/// The chains a rules file declares (creating or flushing them).
pub const FIREWALL_DECLARED: [&str; 3] = [CHAIN_INPUT, CHAIN_DOCKER, "DOCKER-USER"];
/// The chains a rules file empties before adding its rules: the ones it
/// owns. The pull agent saves and restores exactly these.
pub const FIREWALL_FLUSHED: [&str; 4] = ["INPUT", CHAIN_INPUT, CHAIN_DOCKER, "DOCKER-USER"];

fn rule(chain: &'static str, target: &'static str, comment: impl AsRef<str>) -> Rule {
    Rule {
        chain,
        target,
        comment: format!("dify-cfg: {}", reason_text(comment.as_ref())),
        ..Rule::default()
    }
}

fn in_family(net: &IpNet, family: Family) -> bool {
    matches!(
        (net, family),
        (IpNet::V4(_), Family::V4) | (IpNet::V6(_), Family::V6)
    )
}

fn firewall(site: &Site, family: Family) -> FirewallContext {
    let net = &site.network;
    let v4 = family == Family::V4;
    let mut rules = Vec::new();

    // The hooks: INPUT and DOCKER-USER are owned by this file (see the
    // header of the template for why).
    rules.push(rule("INPUT", CHAIN_INPUT, "every packet to the box"));
    for (inside, outside) in [(true, false), (false, true)] {
        let mut r = rule(
            "DOCKER-USER",
            CHAIN_DOCKER,
            if inside {
                "traffic from the site containers"
            } else {
                "traffic to the site containers"
            },
        );
        if inside {
            r.in_iface = Some(BRIDGE_DEFAULT);
        }
        if outside {
            r.out_iface = Some(BRIDGE_DEFAULT);
        }
        rules.push(r);
    }
    rules.push(rule(
        "DOCKER-USER",
        "RETURN",
        "other containers: Docker rules decide",
    ));

    // DIFY-INPUT: the box itself.
    let mut r = rule(CHAIN_INPUT, "ACCEPT", "replies and related traffic");
    r.ctstate = Some("RELATED,ESTABLISHED");
    rules.push(r);
    let mut r = rule(CHAIN_INPUT, "ACCEPT", "loopback");
    r.in_iface = Some("lo");
    rules.push(r);
    let mut r = rule(CHAIN_INPUT, "DROP", "invalid packets");
    r.ctstate = Some("INVALID");
    rules.push(r);
    if !v4 {
        for t in [
            "destination-unreachable",
            "packet-too-big",
            "time-exceeded",
            "parameter-problem",
        ] {
            let mut r = rule(CHAIN_INPUT, "ACCEPT", format!("icmpv6 {t}"));
            r.protocol = Some("ipv6-icmp");
            r.icmp_type = Some(t);
            rules.push(r);
        }
        for t in [
            "router-solicitation",
            "router-advertisement",
            "neighbour-solicitation",
            "neighbour-advertisement",
        ] {
            let mut r = rule(
                CHAIN_INPUT,
                "ACCEPT",
                format!("icmpv6 {t} (neighbour discovery, on-link only)"),
            );
            r.protocol = Some("ipv6-icmp");
            r.icmp_type = Some(t);
            r.hop_limit_255 = true;
            rules.push(r);
        }
    }
    let mut pingers: Vec<IpNet> = Vec::new();
    if v4 {
        pingers.extend(net.lan.map(IpNet::V4));
    } else {
        pingers.extend(net.lan6.map(IpNet::V6));
    }
    pingers.extend(net.admin.iter().copied().filter(|n| in_family(n, family)));
    pingers.dedup();
    for src in &pingers {
        let mut r = rule(CHAIN_INPUT, "ACCEPT", format!("ping from {src}"));
        r.source = Some(src.to_string());
        r.protocol = Some(if v4 { "icmp" } else { "ipv6-icmp" });
        r.icmp_type = Some("echo-request");
        rules.push(r);
    }
    for src in net.ssh_from.iter().filter(|n| in_family(n, family)) {
        let mut r = rule(CHAIN_INPUT, "ACCEPT", format!("ssh from {src}"));
        r.source = Some(src.to_string());
        r.protocol = Some("tcp");
        r.dport = Some(net.ssh_port);
        r.ctstate = Some("NEW");
        rules.push(r);
    }
    rules.push(rule(CHAIN_INPUT, "DROP", "everything else to the box"));

    // DIFY-DOCKER: the site's containers (they have IPv4 only; the IPv6
    // chain keeps the same shape so that nothing is open by accident).
    let mut r = rule(CHAIN_DOCKER, "RETURN", "replies and related traffic");
    r.ctstate = Some("RELATED,ESTABLISHED");
    rules.push(r);
    let mut r = rule(CHAIN_DOCKER, "DROP", "invalid packets");
    r.ctstate = Some("INVALID");
    rules.push(r);
    let mut r = rule(CHAIN_DOCKER, "RETURN", "between the site containers");
    r.in_iface = Some(BRIDGE_DEFAULT);
    r.out_iface = Some(BRIDGE_DEFAULT);
    rules.push(r);
    if v4 {
        // Published ports, matched after Docker's DNAT by the original
        // destination: nginx to the LAN and admins, plugin debugging to
        // admins only.
        let mut openings: Vec<(u16, &str, Vec<IpNet>)> = Vec::new();
        let mut http_from: Vec<IpNet> = net.lan.map(IpNet::V4).into_iter().collect();
        http_from.extend(net.admin.iter().copied().filter(is_v4));
        if has(site, ServiceKind::Nginx) {
            openings.push((net.http_port, "http to nginx", http_from));
        }
        if site.features.plugin_debugging && has(site, ServiceKind::PluginDaemon) {
            let admins = net.admin.iter().copied().filter(is_v4).collect();
            openings.push((dify::PLUGIN_DEBUGGING_PORT, "plugin debugging", admins));
        }
        for (port, what, sources) in openings {
            let mut seen = BTreeSet::new();
            for src in sources.into_iter().filter(|s| seen.insert(*s)) {
                let mut r = rule(CHAIN_DOCKER, "RETURN", format!("{what} from {src}"));
                r.out_iface = Some(BRIDGE_DEFAULT);
                r.source = Some(src.to_string());
                r.protocol = Some("tcp");
                r.ctstate = Some("NEW");
                r.ctorigdst = net.address.map(|a| a.to_string());
                r.ctorigdstport = Some(port);
                rules.push(r);
            }
        }
        for proto in ["udp", "tcp"] {
            let mut r = rule(
                CHAIN_DOCKER,
                "RETURN",
                format!("dns lookups from the containers ({proto})"),
            );
            r.in_iface = Some(BRIDGE_DEFAULT);
            r.protocol = Some(proto);
            r.dport = Some(53);
            rules.push(r);
        }
    }
    for e in site
        .network
        .egress
        .iter()
        .filter(|e| in_family(&e.cidr, family))
    {
        for &port in &e.ports {
            let mut r = rule(
                CHAIN_DOCKER,
                "RETURN",
                format!("egress {} to {}:{port}", e.name, e.cidr),
            );
            r.in_iface = Some(BRIDGE_DEFAULT);
            r.destination = Some(e.cidr.to_string());
            r.protocol = Some("tcp");
            r.dport = Some(port);
            rules.push(r);
        }
    }
    rules.push(rule(
        CHAIN_DOCKER,
        "DROP",
        "everything else to or from the site containers",
    ));

    FirewallContext {
        site: site_info(site),
        family: if v4 { "ipv4" } else { "ipv6" },
        restore: if v4 {
            "iptables-restore --noflush"
        } else {
            "ip6tables-restore --noflush"
        },
        chains: FIREWALL_DECLARED.to_vec(),
        flush: FIREWALL_FLUSHED.to_vec(),
        rules,
    }
}

// ---------------------------------------------------------------------------
// Helm values

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

fn extra_env(entries: impl IntoIterator<Item = (String, String)>) -> Value {
    let map: BTreeMap<String, String> = entries.into_iter().collect();
    Value::Array(
        map.into_iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect(),
    )
}

/// Chart components with their own `replicas`.
fn helm_has_replicas(key: &str) -> bool {
    !matches!(key, "beat" | "localSandbox")
}

/// Chart components with `autoscaling`.
fn helm_has_autoscaling(key: &str) -> bool {
    matches!(key, "api" | "worker" | "web" | "sandbox")
}

/// Components the chart runs with a service dify-cfg knows.
fn helm_component_service(component: &str) -> Option<ServiceKind> {
    ServiceKind::ALL
        .into_iter()
        .find(|k| k.helm_key() == Some(component))
}

fn helm(site: &Site) -> HelmContext {
    let mut notes = Vec::new();
    let mut values = Map::new();
    values.insert(
        "global".into(),
        json!({"marketplace": {"enabled": site.features.marketplace}}),
    );

    // Images: the built api/web (filled by deploy_artifacts) and pinned
    // upstream images for the rest.
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
    values.insert("image".into(), Value::Object(images));

    // Shared settings for the dify-api components, plus the site's [env].
    let shared: Vec<(String, String)> = shared_settings(site)
        .into_iter()
        .flat_map(|(_, entries)| entries)
        .map(|e| (e.key, e.value))
        .chain(site.env.iter().map(|(k, v)| (k.clone(), v.clone())))
        .collect();
    let web_env: Vec<(String, String)> = [
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
    .collect();

    for kind in ServiceKind::ALL {
        let Some(key) = kind.helm_key() else { continue };
        let mut component = Map::new();
        let svc = site.services.get(&kind);
        component.insert("enabled".into(), Value::Bool(svc.is_some()));
        if let Some(svc) = svc {
            if helm_has_replicas(key) {
                component.insert("replicas".into(), json!(svc.replicas));
            }
            component.insert("resources".into(), resources(svc));
            if helm_has_autoscaling(key) {
                let autoscaling = match svc.autoscaling {
                    Some(a) => json!({
                        "enabled": true,
                        "minReplicas": a.min_replicas,
                        "maxReplicas": a.max_replicas,
                        "targetCPUUtilizationPercentage": a.target_cpu_percent,
                    }),
                    None => json!({"enabled": false}),
                };
                component.insert("autoscaling".into(), autoscaling);
            }
            if kind.uses_api_image() {
                component.insert("extraEnv".into(), extra_env(shared.clone()));
            } else if kind == ServiceKind::Web {
                component.insert("extraEnv".into(), extra_env(web_env.clone()));
            }
            if kind == ServiceKind::ApiWebsocket {
                component.insert("socketUrl".into(), Value::String(websocket_url(site)));
            }
        }
        values.insert(key.into(), Value::Object(component));
    }

    // Data stores: external PostgreSQL and Redis, or the chart's own.
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
            notes.push("externalPgvector connects with the chart's default user; its password is not wired through externalSecret by the chart".into());
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

    // Ingress: the chart's nginx (`proxy`) behind the cluster's ingress.
    match &site.helm.ingress_class {
        Some(class) => {
            values.insert(
                "ingress".into(),
                json!({
                    "enabled": true,
                    "className": class,
                    "hosts": [{"host": site.network.hostname, "paths": [{"path": "/", "pathType": "Prefix"}]}],
                }),
            );
        }
        None => {
            values.insert("ingress".into(), json!({"enabled": false}));
        }
    }
    notes.push("route restrictions (public routes for the LAN, the rest for admins) are not enforced by the chart; enforce them at the ingress".into());

    values.insert(
        "externalSecret".into(),
        helm_external_secret(site, &mut notes),
    );

    HelmContext {
        site: site_info(site),
        namespace: site.helm.namespace.clone(),
        chart_version: dify::HELM_CHART_VERSION,
        values: Value::Object(values),
        notes,
    }
}

// ---------------------------------------------------------------------------
// GitOps: the pull agent of a compose box, the Argo CD application of a
// helm site

/// Where the pull agent's files go in the site tree.
pub const PULL_SCRIPT: &str = "deploy/apply.sh";
pub const PULL_SERVICE: &str = "deploy/dify-cfg-pull.service";
pub const PULL_TIMER: &str = "deploy/dify-cfg-pull.timer";
pub const ARGOCD_APPLICATION: &str = "argocd/application.yaml";

/// Where the operator installs the pull agent on a box: the script (copied
/// from a verified tree) and the two units.
pub const PULL_INSTALL_SCRIPT: &str = "/opt/dify-cfg/apply.sh";
pub const PULL_UNIT_DIR: &str = "/etc/systemd/system";
/// The agent's state: the mirror, releases, the applied commit.
pub const PULL_STATE_DIR: &str = "/var/lib/dify-cfg";
/// The operator's file of `export NAME=...` lines for the secret
/// references of compose.yaml. Never in the repository.
pub const PULL_SECRETS_ENV: &str = "/etc/dify-cfg/secrets.env";
/// Releases kept on the box: the running one and two before it.
pub const PULL_KEEP_RELEASES: u32 = 3;
/// Exit status of apply.sh when another run (or a pending rollback) holds
/// the lock: EX_TEMPFAIL, not a failure of the unit.
pub const PULL_BUSY_EXIT: u8 = 75;
/// How long after boot the first pull runs: docker and the network are up.
pub const PULL_BOOT_DELAY: TimeSpan = TimeSpan::new(2, TimeUnit::Minutes);
/// The longest one run may take (a hung fetch or pull ends there, and the
/// run's interrupt handler rolls the firewall back).
pub const PULL_RUN_LIMIT: TimeSpan = TimeSpan::new(1, TimeUnit::Hours);

/// The dify-helm chart's Helm repository and chart name.
pub const HELM_CHART_REPOSITORY: &str = "https://borispolonsky.github.io/dify-helm";
pub const HELM_CHART_NAME: &str = "dify";
/// The Helm release name the values file's header documents.
pub const HELM_RELEASE_NAME: &str = "dify";

/// A string as one POSIX sh word that the shell takes literally: in single
/// quotes, with each `'` written `'\''` (close, escaped quote, reopen).
/// Inside single quotes no character is special, so any string can be
/// quoted so, except one with a NUL byte, which no shell word can hold.
pub fn sh_quote(s: &str) -> Option<String> {
    if s.contains('\0') {
        return None;
    }
    Some(format!("'{}'", s.replace('\'', r"'\''")))
}

/// A deploy file of the tree and where the operator installs it.
#[derive(Debug, Clone, Serialize)]
pub struct Installed {
    pub release: &'static str,
    pub installed: String,
}

/// What the pull agent's three files (apply.sh and its systemd service and
/// timer) say.
#[derive(Debug, Clone, Serialize)]
pub struct PullContext {
    pub site: SiteInfo,
    pub repository: String,
    /// The site branch, `{prefix}{site}`.
    pub branch: String,
    pub state_dir: &'static str,
    pub secrets_env: &'static str,
    pub install_script: &'static str,
    pub unit_dir: &'static str,
    pub service_unit: &'static str,
    pub timer_unit: &'static str,
    /// The deploy files and where they are installed, so that apply.sh can
    /// say when a release changes them.
    pub installed: Vec<Installed>,
    /// The confirmation window, in seconds (apply.sh) and as written.
    pub confirm_timeout_seconds: u64,
    pub confirm_timeout: String,
    /// systemd time spans of the timer and the service.
    pub pull_interval: String,
    pub boot_delay: String,
    pub randomized_delay: String,
    pub run_limit: String,
    pub keep_releases: u32,
    pub busy_exit: u8,
    /// Files a release must have besides those its manifest lists.
    pub required: Vec<&'static str>,
    pub rules_v4: &'static str,
    pub rules_v6: &'static str,
    /// The chains the rules files declare and flush: what a rollback puts
    /// back from the saved rules.
    pub firewall_declared: String,
    pub firewall_flushed: String,
}

/// The timer's random delay: a tenth of the interval, between 1s and 60s, so
/// that a fleet does not fetch all at once and a short interval stays short.
pub fn randomized_delay(interval: TimeSpan) -> TimeSpan {
    let tenth = (interval.seconds() / 10).clamp(1, 60);
    TimeSpan::new(tenth as u32, TimeUnit::Seconds)
}

fn pull_agent(site: &Site) -> Option<PullContext> {
    let pull = site.gitops.pull?;
    let installed = [
        (PULL_SCRIPT, PULL_INSTALL_SCRIPT.to_string()),
        (
            PULL_SERVICE,
            format!("{PULL_UNIT_DIR}/{TEMPLATE_PULL_SERVICE}"),
        ),
        (PULL_TIMER, format!("{PULL_UNIT_DIR}/{TEMPLATE_PULL_TIMER}")),
    ]
    .into_iter()
    .map(|(release, installed)| Installed { release, installed })
    .collect();
    Some(PullContext {
        site: site_info(site),
        repository: site.gitops.repository.clone(),
        branch: site.gitops.branch(&site.name),
        state_dir: PULL_STATE_DIR,
        secrets_env: PULL_SECRETS_ENV,
        install_script: PULL_INSTALL_SCRIPT,
        unit_dir: PULL_UNIT_DIR,
        service_unit: TEMPLATE_PULL_SERVICE,
        timer_unit: TEMPLATE_PULL_TIMER,
        installed,
        confirm_timeout_seconds: pull.confirm_timeout.seconds(),
        confirm_timeout: pull.confirm_timeout.systemd(),
        pull_interval: pull.interval.systemd(),
        boot_delay: PULL_BOOT_DELAY.systemd(),
        randomized_delay: randomized_delay(pull.interval).systemd(),
        run_limit: PULL_RUN_LIMIT.systemd(),
        keep_releases: PULL_KEEP_RELEASES,
        busy_exit: PULL_BUSY_EXIT,
        required: vec![COMPOSE_FILE, RULES_V4_FILE, RULES_V6_FILE],
        rules_v4: RULES_V4_FILE,
        rules_v6: RULES_V6_FILE,
        firewall_declared: FIREWALL_DECLARED.join(" "),
        firewall_flushed: FIREWALL_FLUSHED.join(" "),
    })
}

/// The Argo CD `Application` of a helm site.
#[derive(Debug, Clone, Serialize)]
pub struct ArgoCdContext {
    pub site: SiteInfo,
    pub branch: String,
    /// The manifest; the template prints it with `toyaml`.
    pub application: Value,
}

/// The application: the dify-helm chart at the pinned version, with the
/// values file from the site branch (a second source, referenced as
/// `$values`), into the site's namespace. No automated sync: merging the
/// site's pull request is the approval, a person syncs.
fn argocd_application(site: &Site) -> Option<ArgoCdContext> {
    let argo = site.gitops.argocd.as_ref()?;
    let branch = site.gitops.branch(&site.name);
    let application = json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {
            "name": format!("dify-{}", site.name),
            "namespace": argo.namespace,
            "labels": {
                "app.kubernetes.io/managed-by": "dify-cfg",
                "app.kubernetes.io/part-of": "dify",
                "dify-cfg/site": site.name,
                "dify-cfg/wave": site.wave.to_string(),
            },
        },
        "spec": {
            "project": argo.project,
            "sources": [
                {
                    "repoURL": HELM_CHART_REPOSITORY,
                    "chart": HELM_CHART_NAME,
                    "targetRevision": dify::HELM_CHART_VERSION,
                    "helm": {
                        "releaseName": HELM_RELEASE_NAME,
                        "valueFiles": ["$values/helm/values.yaml"],
                    },
                },
                {
                    "repoURL": site.gitops.repository,
                    "targetRevision": branch,
                    "ref": "values",
                },
            ],
            "destination": {
                "server": argo.cluster,
                "namespace": site.helm.namespace,
            },
            "syncPolicy": {
                "syncOptions": ["CreateNamespace=true"],
            },
        },
    });
    Some(ArgoCdContext {
        site: site_info(site),
        branch,
        application,
    })
}

fn helm_external_secret(site: &Site, notes: &mut Vec<String>) -> Value {
    let mut refs: BTreeMap<&str, BTreeMap<&str, Value>> = BTreeMap::new();
    for (name, r) in &site.secrets {
        let SecretRef::Remote { key, property } = r else {
            continue;
        };
        let targets = dify::helm_secret_refs(name);
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
    for (component, defaults) in dify::HELM_REMOTE_REF_DEFAULTS {
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

// ---------------------------------------------------------------------------
// Test fixtures: hand-built sites (shared with render's tests).

#[cfg(test)]
pub(crate) mod fixtures {
    use std::collections::BTreeMap;

    use crate::base::units::{Bytes, Millicores, TimeSpan, TimeUnit};
    use crate::dify::release_images;
    use crate::input::layer::{DbEngine, EvictionPolicy};
    use crate::model::*;

    fn service(kind: ServiceKind, mib: u64, millicores: u32, image: &ImageRef) -> Service {
        Service {
            kind,
            memory: Bytes::mib(mib),
            cpus: Millicores(millicores),
            memory_request: Bytes::mib(mib),
            cpus_request: Millicores(millicores),
            replicas: 1,
            workers: None,
            worker_connections: None,
            autoscaling: None,
            image: image.clone(),
        }
    }

    fn images() -> Images {
        let r = release_images("1.16.0");
        Images {
            sandbox: r.sandbox,
            plugin_daemon: r.plugin_daemon,
            agent_backend: r.agent_backend,
            local_sandbox: r.local_sandbox,
            postgres: r.postgres_pgvector,
            redis: r.redis,
            nginx: r.nginx,
            ssrf_proxy: r.ssrf_proxy,
        }
    }

    fn build() -> Build {
        let r = release_images("1.16.0");
        Build {
            registry: "registry.clinics.example.org/dify".into(),
            api_base: r.api_base,
            web_base: r.web_base,
            platforms: vec!["linux/amd64".into(), "linux/arm64".into()],
        }
    }

    fn built_placeholder() -> ImageRef {
        ImageRef {
            repository: "built".into(),
            tag: "by-dify-cfg".into(),
            digest: None,
        }
    }

    /// clinic-01: a 4 GiB compose edge box (profiles/edge-4gb + multi-branch).
    pub fn edge() -> Site {
        let img = images();
        let built = built_placeholder();
        let mut services = BTreeMap::new();
        let mut add = |s: Service| {
            services.insert(s.kind, s);
        };
        let mut api = service(ServiceKind::Api, 512, 1000, &built);
        api.workers = Some(1);
        api.worker_connections = Some(10);
        add(api);
        let mut worker = service(ServiceKind::Worker, 512, 500, &built);
        worker.workers = Some(1);
        add(worker);
        add(service(ServiceKind::WorkerBeat, 128, 100, &built));
        add(service(ServiceKind::Web, 192, 250, &built));
        add(service(ServiceKind::Db, 448, 500, &img.postgres));
        add(service(ServiceKind::Redis, 320, 250, &img.redis));
        add(service(ServiceKind::Sandbox, 192, 250, &img.sandbox));
        add(service(ServiceKind::SsrfProxy, 96, 100, &img.ssrf_proxy));
        add(service(
            ServiceKind::PluginDaemon,
            512,
            500,
            &img.plugin_daemon,
        ));
        add(service(ServiceKind::Nginx, 48, 100, &img.nginx));
        let secrets = [
            ("DB_PASSWORD", "DIFY_DB_PASSWORD"),
            ("REDIS_PASSWORD", "DIFY_REDIS_PASSWORD"),
            ("SECRET_KEY", "DIFY_SECRET_KEY"),
            ("PLUGIN_DAEMON_KEY", "DIFY_PLUGIN_DAEMON_KEY"),
            ("PLUGIN_DIFY_INNER_API_KEY", "DIFY_PLUGIN_INNER_API_KEY"),
            ("CODE_EXECUTION_API_KEY", "DIFY_SANDBOX_API_KEY"),
        ]
        .into_iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                SecretRef::Env {
                    name: v.to_string(),
                },
            )
        })
        .collect();
        Site {
            name: "clinic-01".into(),
            file: "sites/clinic-01.toml".into(),
            profile_chain: vec!["multi-branch".into(), "edge-4gb".into()].into(),
            description: "Branch clinic 01".into(),
            target: Target::Compose,
            dify_version: "1.16.0".into(),
            images: img.into(),
            build: build().into(),
            device: Some(Device {
                memory: Bytes::mib(4096),
                cpus: Millicores(2000),
                reserve_percent: 20,
            }),
            services: services.into(),
            database: Database {
                engine: DbEngine::Postgresql,
                external: None,
                max_connections: 60,
                shared_buffers: Bytes::mib(128),
                work_mem: Bytes::mib(4),
                maintenance_work_mem: Bytes::mib(32),
                effective_cache_size: Bytes::mib(384),
                pool_size: 10,
                name: "dify".into(),
                plugin_name: "dify_plugin".into(),
            }
            .into(),
            redis: Redis {
                maxmemory: Bytes::mib(256),
                policy: EvictionPolicy::VolatileLru,
                external: None,
            }
            .into(),
            vector_store: VectorStore::Pgvector,
            network: Network {
                hostname: "clinic-01.clinics.example.org".into(),
                lan: Some("10.20.1.0/24".parse().unwrap()),
                address: Some("10.20.1.10".parse().unwrap()),
                lan6: None,
                admin: vec!["10.0.0.0/24".parse().unwrap()].into(),
                ssh_from: vec!["10.0.0.0/28".parse().unwrap()].into(),
                ssh_port: 22,
                http_port: 80,
                public_routes: vec!["/v1".into()].into(),
                egress: vec![Egress {
                    name: "llm-gateway".into(),
                    cidr: "10.0.0.40/32".parse().unwrap(),
                    ports: vec![443],
                }]
                .into(),
            },
            login: Login {
                allow_register: false,
                allow_create_workspace: false,
                email_password: true,
                email_code: false,
                social_oauth: false,
            },
            features: Features {
                collaboration: false,
                code_execution: true,
                marketplace: true,
                plugin_debugging: false,
            },
            helm: Helm {
                namespace: "dify".into(),
                secret_store: "none".into(),
                secret_store_kind: "SecretStore".into(),
                ingress_class: None,
            }
            .into(),
            env: [("LOG_LEVEL", "INFO"), ("GUNICORN_TIMEOUT", "360")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            secrets,
            wave: 1,
            labels: [("fleet", "clinics"), ("clinic", "01")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            gitops: Gitops {
                repository: "https://git.clinics.example.org/platform/dify-fleet.git".into(),
                branch_prefix: "sites/".into(),
                pull: Some(Pull {
                    interval: TimeSpan::new(5, TimeUnit::Minutes),
                    confirm_timeout: TimeSpan::new(120, TimeUnit::Seconds),
                }),
                argocd: None,
            }
            .into(),
        }
    }

    /// hq: the helm cloud site (profiles/cloud + sites/hq).
    pub fn cloud() -> Site {
        let img = images();
        let built = built_placeholder();
        let mut site = edge();
        site.name = "hq".into();
        site.file = "sites/hq.toml".into();
        site.profile_chain = vec!["cloud".into()].into();
        site.description = "Head office cluster".into();
        site.target = Target::Helm;
        site.device = None;
        let autoscale = |min, max| Autoscaling {
            min_replicas: min,
            max_replicas: max,
            target_cpu_percent: 70,
        };
        let mut services = BTreeMap::new();
        let mut add = |kind,
                       limit_mib,
                       request_mib,
                       cpus,
                       cpus_req,
                       image: &ImageRef,
                       scaling: Option<Autoscaling>| {
            let mut s = service(kind, limit_mib, cpus, image);
            s.memory_request = Bytes::mib(request_mib);
            s.cpus_request = Millicores(cpus_req);
            s.autoscaling = scaling;
            if let Some(a) = scaling {
                s.replicas = a.min_replicas;
            }
            services.insert(kind, s);
        };
        add(
            ServiceKind::Api,
            2048,
            1024,
            2000,
            500,
            &built,
            Some(autoscale(2, 6)),
        );
        add(
            ServiceKind::Worker,
            2048,
            1024,
            2000,
            500,
            &built,
            Some(autoscale(1, 4)),
        );
        add(ServiceKind::WorkerBeat, 256, 256, 250, 250, &built, None);
        add(
            ServiceKind::Web,
            512,
            256,
            1000,
            250,
            &built,
            Some(autoscale(2, 4)),
        );
        add(ServiceKind::Sandbox, 512, 512, 500, 500, &img.sandbox, None);
        add(
            ServiceKind::SsrfProxy,
            256,
            256,
            250,
            250,
            &img.ssrf_proxy,
            None,
        );
        add(
            ServiceKind::PluginDaemon,
            2048,
            1024,
            1000,
            500,
            &img.plugin_daemon,
            None,
        );
        add(ServiceKind::Nginx, 128, 128, 250, 250, &img.nginx, None);
        if let Some(api) = services.get_mut(&ServiceKind::Api) {
            api.workers = Some(2);
            api.worker_connections = Some(10);
        }
        if let Some(w) = services.get_mut(&ServiceKind::Worker) {
            w.workers = Some(4);
        }
        site.services = services.into();
        site.database.external = Some(External {
            host: "postgres.hq.clinics.example.org".into(),
            port: 5432,
            database: Some("dify".into()),
        });
        site.database.pool_size = 30;
        site.redis.external = Some(External {
            host: "redis.hq.clinics.example.org".into(),
            port: 6379,
            database: None,
        });
        site.network = Network {
            hostname: "dify.clinics.example.org".into(),
            lan: None,
            address: None,
            lan6: None,
            admin: vec!["10.0.0.0/24".parse().unwrap()].into(),
            ssh_from: Shared::default(),
            ssh_port: 22,
            http_port: 80,
            public_routes: vec!["/v1".into()].into(),
            egress: Shared::default(),
        };
        site.helm = Helm {
            namespace: "dify".into(),
            secret_store: "clinic-vault".into(),
            secret_store_kind: "ClusterSecretStore".into(),
            ingress_class: Some("nginx".into()),
        }
        .into();
        site.env = Shared::default();
        site.secrets = [
            ("DB_PASSWORD", "dify/database", "password"),
            ("REDIS_PASSWORD", "dify/redis", "password"),
            ("SECRET_KEY", "dify/api", "secret_key"),
            ("PLUGIN_DAEMON_KEY", "dify/plugin-daemon", "server_key"),
            (
                "PLUGIN_DIFY_INNER_API_KEY",
                "dify/plugin-daemon",
                "dify_api_key",
            ),
            ("CODE_EXECUTION_API_KEY", "dify/sandbox", "api_key"),
        ]
        .into_iter()
        .map(|(n, k, p)| {
            (
                n.to_string(),
                SecretRef::Remote {
                    key: k.into(),
                    property: p.into(),
                },
            )
        })
        .collect();
        site.labels = [("site".to_string(), "hq".to_string())]
            .into_iter()
            .collect();
        site.gitops.pull = None;
        site.gitops.argocd = Some(ArgoCd {
            namespace: "argocd".into(),
            project: "default".into(),
            cluster: "https://kubernetes.default.svc".into(),
        });
        site
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{cloud, edge};
    use super::*;

    fn compose_of(site: &Site) -> ComposeContext {
        let plan = plan(site);
        let built = BuiltImages {
            api: built_image(site, BuiltKind::Api, b"api"),
            web: built_image(site, BuiltKind::Web, b"web"),
        };
        plan.deploy_artifacts(&built)
            .into_iter()
            .find_map(|a| match a.context {
                Context::Compose(c) => Some(*c),
                _ => None,
            })
            .expect("a compose context")
    }

    #[test]
    fn edge_site_has_the_compose_outputs() {
        let paths = plan(&edge()).paths();
        assert_eq!(
            paths,
            [
                "compose.yaml",
                "deploy/apply.sh",
                "deploy/dify-cfg-pull.service",
                "deploy/dify-cfg-pull.timer",
                "dify.env",
                "docker/api.Dockerfile",
                "docker/api.Dockerfile.dockerignore",
                "docker/web.Dockerfile",
                "docker/web.Dockerfile.dockerignore",
                "firewall/rules.v4",
                "firewall/rules.v6",
                "nginx/default.conf",
            ]
        );
        let paths = plan(&cloud()).paths();
        assert_eq!(
            paths,
            [
                "argocd/application.yaml",
                "docker/api.Dockerfile",
                "docker/api.Dockerfile.dockerignore",
                "docker/web.Dockerfile",
                "docker/web.Dockerfile.dockerignore",
                "helm/values.yaml",
            ]
        );
    }

    #[test]
    fn built_images_replace_the_placeholders() {
        let c = compose_of(&edge());
        let api = c.services.iter().find(|s| s.name == "api").unwrap();
        assert!(
            api.image
                .starts_with("registry.clinics.example.org/dify/dify-api:1.16.0-"),
            "{}",
            api.image
        );
        let web = c.services.iter().find(|s| s.name == "web").unwrap();
        assert!(
            web.image
                .starts_with("registry.clinics.example.org/dify/dify-web:1.16.0-")
        );
        assert!(c.services.iter().all(|s| !s.image.is_empty()));
    }

    #[test]
    fn only_nginx_publishes_and_only_on_the_address() {
        let c = compose_of(&edge());
        for s in &c.services {
            if s.name == "nginx" {
                assert_eq!(s.ports, ["10.20.1.10:80:80"]);
            } else {
                assert!(s.ports.is_empty(), "{} publishes {:?}", s.name, s.ports);
            }
        }
        let mut site = edge();
        site.features.plugin_debugging = true;
        let c = compose_of(&site);
        let pd = c
            .services
            .iter()
            .find(|s| s.name == "plugin_daemon")
            .unwrap();
        assert_eq!(pd.ports, ["10.20.1.10:5003:5003"]);
    }

    #[test]
    fn sandbox_lives_on_the_internal_network_only() {
        let c = compose_of(&edge());
        let sandbox = c.services.iter().find(|s| s.name == "sandbox").unwrap();
        assert_eq!(sandbox.networks, [SSRF_NETWORK]);
        let proxy = c.services.iter().find(|s| s.name == "ssrf_proxy").unwrap();
        assert_eq!(proxy.networks, ["default", SSRF_NETWORK]);
        assert!(
            c.networks
                .iter()
                .any(|n| n.name == SSRF_NETWORK && n.internal)
        );
    }

    #[test]
    fn limits_and_dependencies_follow_the_profile() {
        let c = compose_of(&edge());
        let db = c.services.iter().find(|s| s.name == "db_postgres").unwrap();
        assert_eq!(db.mem_limit, "448m");
        assert_eq!(db.cpus, "0.5");
        let cmd = db.command.as_ref().unwrap().join(" ");
        assert!(
            cmd.contains("max_connections=60") && cmd.contains("shared_buffers=128MB"),
            "{cmd}"
        );
        let redis = c.services.iter().find(|s| s.name == "redis").unwrap();
        let cmd = redis.command.as_ref().unwrap().join(" ");
        assert!(
            cmd.contains("--maxmemory 256mb --maxmemory-policy volatile-lru"),
            "{cmd}"
        );
        assert!(
            cmd.contains("--requirepass ${DIFY_REDIS_PASSWORD:?DIFY_REDIS_PASSWORD must be set}"),
            "{cmd}"
        );
        let api = c.services.iter().find(|s| s.name == "api").unwrap();
        let deps: Vec<_> = api
            .depends_on
            .iter()
            .map(|d| (d.service, d.condition))
            .collect();
        assert_eq!(
            deps,
            [
                ("db_postgres", "service_healthy"),
                ("redis", "service_healthy")
            ]
        );
        let broker = api
            .environment
            .iter()
            .find(|e| e.key == "CELERY_BROKER_URL")
            .unwrap();
        assert_eq!(
            broker.value,
            "redis://:${DIFY_REDIS_PASSWORD:?DIFY_REDIS_PASSWORD must be set}@redis:6379/1"
        );
    }

    #[test]
    fn dollar_signs_in_literals_are_escaped_for_compose() {
        let mut site = edge();
        site.env
            .insert("MAIL_DEFAULT_SEND_FROM".into(), "it's ${HOME}".into());
        let c = compose_of(&site);
        let api = c.services.iter().find(|s| s.name == "api").unwrap();
        let v = api
            .environment
            .iter()
            .find(|e| e.key == "MAIL_DEFAULT_SEND_FROM")
            .unwrap();
        assert_eq!(v.value, "it's $${HOME}");
    }

    #[test]
    fn file_secrets_are_mounted_and_read() {
        let mut site = edge();
        site.secrets.insert(
            "DB_PASSWORD".into(),
            SecretRef::File {
                path: "/etc/dify/db".into(),
            },
        );
        site.secrets.insert(
            "CODE_EXECUTION_API_KEY".into(),
            SecretRef::File {
                path: "/etc/dify/sandbox".into(),
            },
        );
        let c = compose_of(&site);
        assert!(
            c.secrets
                .iter()
                .any(|s| s.name == "db_password" && s.file == "/etc/dify/db")
        );
        let db = c.services.iter().find(|s| s.name == "db_postgres").unwrap();
        assert!(
            db.environment
                .iter()
                .any(|e| e.key == "POSTGRES_PASSWORD_FILE")
        );
        assert!(!db.environment.iter().any(|e| e.key == "POSTGRES_PASSWORD"));
        let api = c.services.iter().find(|s| s.name == "api").unwrap();
        assert!(api.entrypoint.is_some());
        assert!(api.secrets.iter().any(|m| m.target == "PGVECTOR_PASSWORD"));
        let gaps = unsupported_file_secrets(&site);
        assert!(
            gaps.contains(&("CODE_EXECUTION_API_KEY".to_string(), ServiceKind::Sandbox)),
            "{gaps:?}"
        );
        assert!(
            gaps.contains(&("DB_PASSWORD".to_string(), ServiceKind::PluginDaemon)),
            "{gaps:?}"
        );
    }

    #[test]
    fn public_routes_open_to_the_lan_the_rest_to_admins() {
        let n = nginx(&edge());
        let v1 = n.locations.iter().find(|l| l.path == "/v1").unwrap();
        assert_eq!(v1.allow, ["10.20.1.0/24", "10.0.0.0/24"]);
        let console = n
            .locations
            .iter()
            .find(|l| l.path == "/console/api")
            .unwrap();
        assert_eq!(console.allow, ["10.0.0.0/24"]);
        assert!(
            !n.locations.iter().any(|l| l.path == "/socket.io/"),
            "no websocket without api_websocket"
        );
        let health = n.locations.iter().find(|l| l.path == "/health").unwrap();
        assert_eq!(health.modifier, "=");
        assert_eq!(health.audience, "lan");

        let mut site = edge();
        site.network.public_routes = vec!["/v1/completion-messages".into()].into();
        let n = nginx(&site);
        let narrow = n
            .locations
            .iter()
            .find(|l| l.path == "/v1/completion-messages")
            .unwrap();
        assert_eq!(narrow.upstream, "dify_api");
        assert_eq!(narrow.audience, "lan");
        let v1 = n.locations.iter().find(|l| l.path == "/v1").unwrap();
        assert_eq!(v1.audience, "admin");
    }

    #[test]
    fn firewall_opens_exactly_what_compose_publishes() {
        let site = edge();
        let fw = firewall(&site, Family::V4);
        let http: Vec<_> = fw
            .rules
            .iter()
            .filter(|r| r.ctorigdstport == Some(80))
            .collect();
        let sources: Vec<_> = http.iter().map(|r| r.source.clone().unwrap()).collect();
        assert_eq!(sources, ["10.20.1.0/24", "10.0.0.0/24"]);
        assert!(
            http.iter()
                .all(|r| r.ctorigdst.as_deref() == Some("10.20.1.10"))
        );
        assert!(
            !fw.rules
                .iter()
                .any(|r| r.ctorigdstport == Some(dify::PLUGIN_DEBUGGING_PORT))
        );
        let ssh: Vec<_> = fw.rules.iter().filter(|r| r.dport == Some(22)).collect();
        assert_eq!(ssh.len(), 1);
        assert_eq!(ssh[0].source.as_deref(), Some("10.0.0.0/28"));
        let egress: Vec<_> = fw
            .rules
            .iter()
            .filter(|r| r.destination.is_some())
            .collect();
        assert_eq!(egress.len(), 1);
        assert_eq!(egress[0].dport, Some(443));
        assert_eq!(fw.rules.last().unwrap().target, "DROP");
        // Every chain of ours ends with a drop.
        for chain in [CHAIN_INPUT, CHAIN_DOCKER] {
            let last = fw.rules.iter().rev().find(|r| r.chain == chain).unwrap();
            assert_eq!(last.target, "DROP", "{chain}");
        }

        let v6 = firewall(&site, Family::V6);
        assert!(
            v6.rules.iter().all(|r| r.source.is_none()),
            "no v6 networks: no v6 sources"
        );
        assert!(
            v6.rules
                .iter()
                .any(|r| r.icmp_type == Some("neighbour-solicitation"))
        );
    }

    #[test]
    fn helm_values_wire_images_resources_and_secrets() {
        let site = cloud();
        let plan = plan(&site);
        let built = BuiltImages {
            api: built_image(&site, BuiltKind::Api, b"api"),
            web: built_image(&site, BuiltKind::Web, b"web"),
        };
        let values = plan
            .deploy_artifacts(&built)
            .into_iter()
            .find_map(|a| match a.context {
                Context::Helm(h) => Some(h.values),
                _ => None,
            })
            .unwrap();
        assert_eq!(
            values["image"]["api"]["repository"],
            "registry.clinics.example.org/dify/dify-api"
        );
        assert_eq!(values["api"]["resources"]["limits"]["memory"], "2Gi");
        assert_eq!(values["api"]["resources"]["requests"]["cpu"], "500m");
        assert_eq!(
            values["api"]["autoscaling"]["targetCPUUtilizationPercentage"],
            70
        );
        assert_eq!(values["postgresql"]["enabled"], false);
        assert_eq!(
            values["externalPostgres"]["address"],
            "postgres.hq.clinics.example.org"
        );
        assert!(values["externalPostgres"].get("password").is_none());
        assert_eq!(
            values["externalRedis"]["host"],
            "redis.hq.clinics.example.org"
        );
        let api_refs = &values["externalSecret"]["api"]["remoteRefs"];
        assert_eq!(api_refs["DB_PASSWORD"]["key"], "dify/database");
        assert_eq!(
            api_refs["INNER_API_KEY_FOR_PLUGIN"]["property"],
            "dify_api_key"
        );
        assert!(
            api_refs["WEAVIATE_API_KEY"].is_null(),
            "chart defaults the site does not fill are removed"
        );
        assert_eq!(
            values["externalSecret"]["sandbox"]["remoteRefs"]["API_KEY"]["key"],
            "dify/sandbox"
        );
        assert_eq!(
            values["externalSecret"]["pluginDaemon"]["remoteRefs"]["SERVER_KEY"]["property"],
            "server_key"
        );
        assert_eq!(
            values["beat"].get("replicas"),
            None,
            "the chart's beat has no replicas"
        );
        let paths = key_paths(&values);
        assert!(paths.contains(&"externalSecret.secretStore.kind".to_string()));
    }

    /// The chart's values.yaml, when the reference data is present
    /// (`../shared/reference` beside the checkout, or DIFY_CFG_REFERENCE).
    /// Absent, the test skips with a printed reason, except in CI
    /// (DIFY_CFG_REQUIRE_REFERENCE=1), where it fails, as tests/support does.
    fn chart_values() -> Option<Value> {
        let dir = std::env::var("DIFY_CFG_REFERENCE")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/reference").into());
        let path = format!("{dir}/dify-helm-{}/values.yaml", dify::HELM_CHART_VERSION);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                Some(serde_yaml_ng::from_str(&text).expect("the chart's values.yaml parses"))
            }
            Err(e) => {
                let required = std::env::var("DIFY_CFG_REQUIRE_REFERENCE").is_ok_and(|v| v == "1");
                assert!(
                    !required,
                    "cannot read {path}: {e} (DIFY_CFG_REQUIRE_REFERENCE=1)"
                );
                println!("skipped: cannot read {path}: {e}");
                None
            }
        }
    }

    fn helm_values_of(site: &Site) -> Value {
        let built = BuiltImages {
            api: built_image(site, BuiltKind::Api, b"api"),
            web: built_image(site, BuiltKind::Web, b"web"),
        };
        plan(site)
            .deploy_artifacts(&built)
            .into_iter()
            .find_map(|a| match a.context {
                Context::Helm(h) => Some(h.values),
                _ => None,
            })
            .expect("helm values")
    }

    #[test]
    fn helm_key_paths_exist_in_the_chart() {
        let Some(reference) = chart_values() else {
            return;
        };
        let mut variants = vec![cloud()];
        let mut everything = cloud();
        let pd = everything.services[&ServiceKind::PluginDaemon].clone();
        for kind in [
            ServiceKind::ApiWebsocket,
            ServiceKind::AgentBackend,
            ServiceKind::LocalSandbox,
        ] {
            let mut s = pd.clone();
            s.kind = kind;
            everything.services.insert(kind, s);
        }
        everything.features.collaboration = true;
        everything.secrets.insert(
            "DIFY_AGENT_SHELLCTL_AUTH_TOKEN".into(),
            SecretRef::Remote {
                key: "dify/agent".into(),
                property: "shellctl".into(),
            },
        );
        everything
            .services
            .get_mut(&ServiceKind::Sandbox)
            .unwrap()
            .autoscaling = Some(crate::model::Autoscaling {
            min_replicas: 1,
            max_replicas: 2,
            target_cpu_percent: 80,
        });
        variants.push(everything);
        let mut bundled = cloud();
        bundled.database.external = None;
        bundled.redis.external = None;
        bundled.vector_store = VectorStore::Qdrant;
        bundled
            .env
            .insert("QDRANT_URL".into(), "http://qdrant:6333".into());
        bundled.helm.ingress_class = None;
        variants.push(bundled);
        let mut weaviate = cloud();
        weaviate.vector_store = VectorStore::Weaviate;
        variants.push(weaviate);
        for site in &variants {
            let values = helm_values_of(site);
            let unknown = unknown_key_paths(&values, &reference);
            assert!(
                unknown.is_empty(),
                "key paths the chart does not have: {unknown:?}"
            );
        }
        // Every secret mapping lands on a remoteRefs key of the chart.
        for (component, keys) in dify::HELM_REMOTE_REF_DEFAULTS {
            for key in keys.iter() {
                let path = format!("/externalSecret/{component}/remoteRefs/{key}");
                assert!(reference.pointer(&path).is_some(), "{path}");
            }
        }
        // And the check catches a typo.
        let mut values = helm_values_of(&cloud());
        values["api"]["replica"] = json!(2);
        values["externalSecret"]["api"]["remoteRefs"]["PLUGIN_DIFY_INNER_API_KEY"] =
            json!({"key": "k"});
        assert_eq!(
            unknown_key_paths(&values, &reference),
            [
                "api.replica",
                "externalSecret.api.remoteRefs.PLUGIN_DIFY_INNER_API_KEY",
                "externalSecret.api.remoteRefs.PLUGIN_DIFY_INNER_API_KEY.key"
            ]
        );
    }

    #[test]
    fn unknown_key_paths_accept_free_form_maps() {
        let reference = json!({"api": {"resources": {}, "replicas": 1, "auth": {"key": "x"}}});
        let values = json!({"api": {"resources": {"limits": {"cpu": "1"}}, "replicas": 2, "auth": {"other": 1}}});
        assert_eq!(unknown_key_paths(&values, &reference), ["api.auth.other"]);
    }

    #[test]
    fn reasons_keep_only_plain_characters() {
        assert_eq!(reason_text("ssh from 10.0.0.0/28"), "ssh from 10.0.0.0/28");
        assert_eq!(reason_text("a\"b\nc"), "a_b_c");
    }

    #[test]
    fn dotenv_values_that_cannot_be_literal_are_refused() {
        assert!(dotenv_representable("http://x/e/{hook_id}"));
        assert!(dotenv_representable("${NOT_EXPANDED}"));
        assert!(!dotenv_representable("it's"));
        assert!(!dotenv_representable("a\nb"));
        assert!(!dotenv_representable("ends\\"));
    }

    #[test]
    fn sh_quote_writes_one_literal_word() {
        assert_eq!(sh_quote("").as_deref(), Some("''"));
        assert_eq!(
            sh_quote("sites/clinic-01").as_deref(),
            Some("'sites/clinic-01'")
        );
        assert_eq!(sh_quote("it's").as_deref(), Some(r"'it'\''s'"));
        assert_eq!(sh_quote("''").as_deref(), Some(r"''\'''\'''"));
        assert_eq!(sh_quote("a\0b"), None);
    }

    /// The quoted word, read back by a real shell, is the string again:
    /// nothing in it is expanded, run or split.
    #[test]
    fn sh_quote_round_trips_through_sh() {
        let hostile = [
            "",
            "plain",
            "it's",
            "'",
            "'\\''",
            "$(touch /tmp/dify-cfg-pwned)",
            "`id`",
            "${HOME}$HOME",
            "a b\tc\nd",
            "*?[a]~",
            "\\",
            "\"",
            "; rm -rf / #",
            "-n",
            "ünïcödé \u{2028}",
        ];
        for s in hostile {
            let word = sh_quote(s).unwrap();
            let out = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(format!("printf '%s' {word}"))
                .output()
                .expect("run /bin/sh");
            assert!(out.status.success(), "{s:?}");
            assert_eq!(
                String::from_utf8(out.stdout).unwrap(),
                s,
                "{s:?} via {word}"
            );
        }
    }

    #[test]
    fn timer_delay_is_a_tenth_of_the_interval_within_bounds() {
        let d = |amount, unit| randomized_delay(TimeSpan::new(amount, unit)).systemd();
        assert_eq!(d(5, TimeUnit::Minutes), "30s");
        assert_eq!(d(30, TimeUnit::Seconds), "3s");
        assert_eq!(d(24, TimeUnit::Hours), "60s");
        assert_eq!(d(5, TimeUnit::Seconds), "1s");
    }

    #[test]
    fn a_compose_site_gets_the_pull_agent_and_no_argocd() {
        let site = edge();
        let pull = pull_agent(&site).expect("a pull agent");
        assert_eq!(pull.branch, "sites/clinic-01");
        assert_eq!(
            pull.repository,
            "https://git.clinics.example.org/platform/dify-fleet.git"
        );
        assert_eq!(pull.confirm_timeout_seconds, 120);
        assert_eq!(pull.pull_interval, "5min");
        assert_eq!(pull.randomized_delay, "30s");
        // The rollback restores exactly what the rules files own.
        let fw = firewall(&site, Family::V4);
        assert_eq!(pull.firewall_declared, fw.chains.join(" "));
        assert_eq!(pull.firewall_flushed, fw.flush.join(" "));
        let paths = plan(&site).paths();
        for (release, _) in pull.installed.iter().map(|i| (i.release, &i.installed)) {
            assert!(paths.contains(&release.to_string()), "{release}");
        }
        for required in &pull.required {
            assert!(paths.contains(&required.to_string()), "{required}");
        }
        assert!(argocd_application(&site).is_none());
        let mut other = site.clone();
        other.gitops.branch_prefix = "fleet/clinics/".into();
        assert_eq!(
            pull_agent(&other).unwrap().branch,
            "fleet/clinics/clinic-01"
        );
    }

    #[test]
    fn a_helm_site_gets_the_argocd_application_and_no_pull_agent() {
        let site = cloud();
        assert!(pull_agent(&site).is_none());
        let app = argocd_application(&site)
            .expect("an application")
            .application;
        assert_eq!(app["apiVersion"], "argoproj.io/v1alpha1");
        assert_eq!(app["kind"], "Application");
        assert_eq!(app["metadata"]["namespace"], "argocd");
        let spec = &app["spec"];
        assert_eq!(spec["project"], "default");
        let chart = &spec["sources"][0];
        assert_eq!(chart["repoURL"], HELM_CHART_REPOSITORY);
        assert_eq!(chart["chart"], "dify");
        assert_eq!(chart["targetRevision"], dify::HELM_CHART_VERSION);
        assert_eq!(
            chart["helm"]["valueFiles"],
            json!(["$values/helm/values.yaml"])
        );
        let values = &spec["sources"][1];
        assert_eq!(values["repoURL"], site.gitops.repository);
        assert_eq!(values["targetRevision"], "sites/hq");
        assert_eq!(values["ref"], "values");
        assert_eq!(spec["sources"].as_array().unwrap().len(), 2);
        assert_eq!(
            spec["destination"],
            json!({"server": "https://kubernetes.default.svc", "namespace": "dify"})
        );
        // Merging the pull request is the approval: no automated sync.
        assert!(spec["syncPolicy"]["automated"].is_null());
        assert_eq!(
            spec["syncPolicy"]["syncOptions"],
            json!(["CreateNamespace=true"])
        );
    }
}

//! The input language: one [`Layer`] is what a single profile or site file
//! says. Every field is optional here; `resolve` merges the layers of an
//! `extends` chain and `validate` turns the merged layer into a typed
//! [`crate::model::Site`], where required values, units, CIDRs and budgets
//! are checked.
//!
//! Values keep their spans (`toml::Spanned`) in the global offset space of
//! the [`crate::base::source::SourceMap`], so every diagnostic and every line of
//! `explain` can name the file and line that set a value.
//!
//! Every struct denies unknown fields. `parse` collects all of a file's
//! mistakes anyway, by removing each offending entry and deserializing again,
//! so a file with three typos gets three diagnostics.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use toml::Spanned;

pub type S<T> = Spanned<T>;

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Layer {
    /// Free text shown in `explain` and manifests.
    #[schemars(with = "Option<String>")]
    pub description: Option<S<String>>,
    /// Profiles only: the profile this one builds on.
    #[schemars(with = "Option<String>")]
    pub extends: Option<S<String>>,
    /// Sites only: the profile the site uses.
    #[schemars(with = "Option<String>")]
    pub profile: Option<S<String>>,
    /// `compose` or `helm`.
    #[schemars(with = "Option<Target>")]
    pub target: Option<S<Target>>,
    pub dify: Option<DifyLayer>,
    pub images: Option<ImagesLayer>,
    pub build: Option<BuildLayer>,
    pub device: Option<DeviceLayer>,
    pub services: Option<ServicesLayer>,
    pub database: Option<DatabaseLayer>,
    pub redis: Option<RedisLayer>,
    /// `pgvector` (in the site's own PostgreSQL), `weaviate` or `qdrant`.
    #[schemars(with = "Option<VectorStore>")]
    pub vector_store: Option<S<VectorStore>>,
    pub network: Option<NetworkLayer>,
    pub login: Option<LoginLayer>,
    pub features: Option<FeaturesLayer>,
    pub helm: Option<HelmLayer>,
    /// Plain settings for Dify, by their Dify names.
    #[schemars(with = "Option<BTreeMap<String, EnvValue>>")]
    pub env: Option<BTreeMap<S<String>, S<EnvValue>>>,
    /// Secret settings for Dify, by reference only.
    #[schemars(with = "Option<BTreeMap<String, SecretValue>>")]
    pub secrets: Option<BTreeMap<S<String>, S<SecretValue>>>,
    pub rollout: Option<RolloutLayer>,
    /// Free labels, recorded in outputs.
    #[schemars(with = "Option<BTreeMap<String, String>>")]
    pub labels: Option<BTreeMap<S<String>, S<String>>>,
    pub gitops: Option<GitopsLayer>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    Compose,
    Helm,
}

/// `[dify]`: the Dify release a site runs.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DifyLayer {
    /// The Dify release, e.g. `1.16.0`.
    #[schemars(with = "Option<String>")]
    pub version: Option<S<String>>,
    /// `commit` may put an older release on the site branch than its tip
    /// records.
    #[schemars(with = "Option<bool>")]
    pub allow_downgrade: Option<S<bool>>,
    /// Pinned plugin daemon, sandbox or agent images outside the release's
    /// compatibility lock are a warning, not an error.
    #[schemars(with = "Option<bool>")]
    pub allow_untested_images: Option<S<bool>>,
}

/// Where an image comes from. Unset parts default to Dify's own choice for
/// the release.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ImageLayer {
    /// e.g. `langgenius/dify-sandbox`, or a mirror's.
    #[schemars(with = "Option<String>")]
    pub repository: Option<S<String>>,
    /// The tag, never `latest`.
    #[schemars(with = "Option<String>")]
    pub tag: Option<S<String>>,
    /// `sha256:<64 hex>`; pins the image by content as well as by tag.
    #[schemars(with = "Option<String>")]
    pub digest: Option<S<String>>,
}

/// `[images.<name>]`: where the images Dify runs beside its own come from; unset, the release's own pins.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ImagesLayer {
    pub sandbox: Option<ImageLayer>,
    pub plugin_daemon: Option<ImageLayer>,
    pub agent_backend: Option<ImageLayer>,
    pub local_sandbox: Option<ImageLayer>,
    pub postgres: Option<ImageLayer>,
    pub redis: Option<ImageLayer>,
    pub nginx: Option<ImageLayer>,
    pub ssrf_proxy: Option<ImageLayer>,
}

/// The images dify-cfg builds itself from the Dify source (api and web).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct BuildLayer {
    /// Registry and path prefix the built images are pushed to,
    /// e.g. `registry.example.org/dify`.
    #[schemars(with = "Option<String>")]
    pub registry: Option<S<String>>,
    /// Base image of the api's stages (a slim Debian Python by default).
    pub api_base: Option<ImageLayer>,
    /// Base image of the web's stages (node on Alpine by default).
    pub web_base: Option<ImageLayer>,
    /// Platforms to build for, e.g. `["linux/amd64", "linux/arm64"]`.
    #[schemars(with = "Option<Vec<String>>")]
    pub platforms: Option<S<Vec<S<String>>>>,
}

/// `[device]`: the box a compose site runs on.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DeviceLayer {
    /// Physical memory of the box, e.g. `4GiB`.
    #[schemars(with = "Option<String>")]
    pub memory: Option<S<String>>,
    /// CPU cores of the box.
    #[schemars(with = "Option<f64>")]
    pub cpus: Option<S<Number>>,
    /// Headroom kept free for the OS and Docker, e.g. `20%`.
    #[schemars(with = "Option<String>")]
    pub reserve: Option<S<String>>,
    /// How far above its measured memory floor each limit must be, e.g.
    /// `10%` (below: a `memory-headroom` warning).
    #[schemars(with = "Option<String>")]
    pub headroom: Option<S<String>>,
}

/// A number written as an integer or a float.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    pub fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        }
    }
}

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{Error, Unexpected};
        let expected = "a number";
        match d.deserialize_any(ScalarVisitor(expected))? {
            EnvValue::Int(i) => Ok(Number::Int(i)),
            EnvValue::Float(f) => Ok(Number::Float(f)),
            EnvValue::Bool(b) => Err(D::Error::invalid_type(Unexpected::Bool(b), &expected)),
            EnvValue::String(s) => Err(D::Error::invalid_type(Unexpected::Str(&s), &expected)),
        }
    }
}

/// `[services.<name>]`: one service's limits and processes.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ServiceLayer {
    /// `false` switches a service off in this profile or site.
    #[schemars(with = "Option<bool>")]
    pub enabled: Option<S<bool>>,
    /// Memory limit, e.g. `512MiB`.
    #[schemars(with = "Option<String>")]
    pub memory: Option<S<String>>,
    /// CPU limit in cores, e.g. `0.5`.
    #[schemars(with = "Option<f64>")]
    pub cpus: Option<S<Number>>,
    /// Memory request (helm only; defaults to the limit).
    #[schemars(with = "Option<String>")]
    pub memory_request: Option<S<String>>,
    /// CPU request in cores (helm only; defaults to the limit).
    #[schemars(with = "Option<f64>")]
    pub cpus_request: Option<S<Number>>,
    /// Replicas (helm; with `autoscaling`, its `min-replicas` instead).
    #[schemars(with = "Option<i64>")]
    pub replicas: Option<S<i64>>,
    /// gunicorn workers (api) or Celery worker processes (worker).
    #[schemars(with = "Option<i64>")]
    pub workers: Option<S<i64>>,
    /// gevent connections per gunicorn worker (api).
    #[schemars(with = "Option<i64>")]
    pub worker_connections: Option<S<i64>>,
    /// Horizontal autoscaling (helm only; api, worker, web, sandbox).
    #[schemars(with = "Option<AutoscalingLayer>")]
    pub autoscaling: Option<S<AutoscalingLayer>>,
}

/// Horizontal autoscaling of a helm service on CPU.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct AutoscalingLayer {
    #[schemars(with = "Option<bool>")]
    pub enabled: Option<S<bool>>,
    /// The fewest replicas (instead of `replicas`).
    #[schemars(with = "Option<i64>")]
    pub min_replicas: Option<S<i64>>,
    /// The most replicas; the connection budget counts these.
    #[schemars(with = "Option<i64>")]
    pub max_replicas: Option<S<i64>>,
    /// Target CPU utilisation, e.g. `70%`.
    #[schemars(with = "Option<String>")]
    pub target_cpu: Option<S<String>>,
}

/// `[services.<name>]`: the services of the site; a running one needs a `memory` limit.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ServicesLayer {
    pub api: Option<ServiceLayer>,
    pub worker: Option<ServiceLayer>,
    pub worker_beat: Option<ServiceLayer>,
    pub web: Option<ServiceLayer>,
    pub db: Option<ServiceLayer>,
    pub redis: Option<ServiceLayer>,
    pub sandbox: Option<ServiceLayer>,
    pub ssrf_proxy: Option<ServiceLayer>,
    pub plugin_daemon: Option<ServiceLayer>,
    pub nginx: Option<ServiceLayer>,
    pub api_websocket: Option<ServiceLayer>,
    pub agent_backend: Option<ServiceLayer>,
    pub local_sandbox: Option<ServiceLayer>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DbEngine {
    Postgresql,
}

/// `[database]`: PostgreSQL, its tuning and the pools' connection budget.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DatabaseLayer {
    /// `postgresql`.
    #[schemars(with = "Option<DbEngine>")]
    pub engine: Option<S<DbEngine>>,
    /// Use a database outside the site instead of the bundled container.
    pub external: Option<ExternalLayer>,
    /// PostgreSQL's `max_connections` (100); every pool at its largest must fit it less a reserve.
    #[schemars(with = "Option<i64>")]
    pub max_connections: Option<S<i64>>,
    /// e.g. `128MiB`.
    #[schemars(with = "Option<String>")]
    pub shared_buffers: Option<S<String>>,
    /// e.g. `4MiB`.
    #[schemars(with = "Option<String>")]
    pub work_mem: Option<S<String>>,
    /// e.g. `64MiB`.
    #[schemars(with = "Option<String>")]
    pub maintenance_work_mem: Option<S<String>>,
    /// e.g. `4GiB`.
    #[schemars(with = "Option<String>")]
    pub effective_cache_size: Option<S<String>>,
    /// SQLAlchemy pool size of each api/worker process.
    #[schemars(with = "Option<i64>")]
    pub pool_size: Option<S<i64>>,
    /// Connections each of those pools may open beyond `pool-size`.
    #[schemars(with = "Option<i64>")]
    pub max_overflow: Option<S<i64>>,
    /// The pgvector store's connection pool ceiling, per api/worker process.
    #[schemars(with = "Option<i64>")]
    pub vector_connections: Option<S<i64>>,
    /// The plugin daemon's open-connection ceiling.
    #[schemars(with = "Option<i64>")]
    pub plugin_connections: Option<S<i64>>,
}

/// A server outside the site (required for helm sites).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ExternalLayer {
    /// The server's host name or address.
    #[schemars(with = "Option<String>")]
    pub host: Option<S<String>>,
    #[schemars(with = "Option<i64>")]
    pub port: Option<S<i64>>,
    /// The database name (PostgreSQL).
    #[schemars(with = "Option<String>")]
    pub database: Option<S<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum EvictionPolicy {
    Noeviction,
    VolatileLru,
    VolatileLfu,
    VolatileTtl,
    VolatileRandom,
    AllkeysLru,
    AllkeysLfu,
    AllkeysRandom,
}

impl EvictionPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            EvictionPolicy::Noeviction => "noeviction",
            EvictionPolicy::VolatileLru => "volatile-lru",
            EvictionPolicy::VolatileLfu => "volatile-lfu",
            EvictionPolicy::VolatileTtl => "volatile-ttl",
            EvictionPolicy::VolatileRandom => "volatile-random",
            EvictionPolicy::AllkeysLru => "allkeys-lru",
            EvictionPolicy::AllkeysLfu => "allkeys-lfu",
            EvictionPolicy::AllkeysRandom => "allkeys-random",
        }
    }

    pub fn evicts_any_key(self) -> bool {
        matches!(
            self,
            EvictionPolicy::AllkeysLru | EvictionPolicy::AllkeysLfu | EvictionPolicy::AllkeysRandom
        )
    }
}

/// `[redis]`: Redis, the cache and Celery's broker.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RedisLayer {
    /// Redis's `maxmemory`, e.g. `256MiB`; the redis limit must hold it and a quarter more.
    #[schemars(with = "Option<String>")]
    pub maxmemory: Option<S<String>>,
    /// Eviction policy (`volatile-lru`); `allkeys-*` would evict Celery's queues.
    #[schemars(with = "Option<EvictionPolicy>")]
    pub policy: Option<S<EvictionPolicy>>,
    pub external: Option<ExternalLayer>,
}

/// Vector stores dify-cfg can run or point at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum VectorStore {
    /// pgvector in the site's own PostgreSQL: no extra service.
    Pgvector,
    Weaviate,
    Qdrant,
}

impl VectorStore {
    pub fn as_str(self) -> &'static str {
        match self {
            VectorStore::Pgvector => "pgvector",
            VectorStore::Weaviate => "weaviate",
            VectorStore::Qdrant => "qdrant",
        }
    }
}

/// `[network]`: addresses, who may reach what, and where the containers may connect.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct NetworkLayer {
    /// Host name users reach the site by (nginx `server_name`, Dify URLs).
    #[schemars(with = "Option<String>")]
    pub hostname: Option<S<String>>,
    /// The site's LAN, e.g. `10.20.1.0/24`.
    #[schemars(with = "Option<String>")]
    pub lan: Option<S<String>>,
    /// The box's own address on the LAN; nginx publishes only there.
    #[schemars(with = "Option<String>")]
    pub address: Option<S<String>>,
    /// The site's IPv6 LAN, when it has one.
    #[schemars(with = "Option<String>")]
    pub lan6: Option<S<String>>,
    /// Networks that may reach the admin routes (console, web app).
    #[schemars(with = "Option<Vec<String>>")]
    pub admin: Option<S<Vec<S<String>>>>,
    /// Networks that may reach SSH on the box.
    #[schemars(with = "Option<Vec<String>>")]
    pub ssh_from: Option<S<Vec<S<String>>>>,
    /// The box's SSH port (22), opened to `ssh-from`.
    #[schemars(with = "Option<i64>")]
    pub ssh_port: Option<S<i64>>,
    /// Route prefixes open to the site LAN (e.g. `["/v1"]`).
    #[schemars(with = "Option<Vec<String>>")]
    pub public_routes: Option<S<Vec<S<String>>>>,
    /// Where the containers may open connections to (LLM endpoints).
    #[schemars(with = "Option<Vec<EgressLayer>>")]
    pub egress: Option<S<Vec<S<EgressLayer>>>>,
    /// The port nginx serves plain http on (80).
    #[schemars(with = "Option<i64>")]
    pub http_port: Option<S<i64>>,
    /// TLS at nginx (compose sites): the certificate and key on the box,
    /// by path, and what plain http does.
    #[schemars(with = "Option<TlsLayer>")]
    pub tls: Option<S<TlsLayer>>,
}

/// `[network.tls]`: nginx terminates TLS with a certificate and key that
/// stay on the box. Only their paths are written here; the compiler never
/// reads them.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TlsLayer {
    /// `false` turns TLS off in a site whose profile turns it on.
    #[schemars(with = "Option<bool>")]
    pub enabled: Option<S<bool>>,
    /// The certificate chain (PEM) on the box, an absolute path.
    #[schemars(with = "Option<String>")]
    pub certificate: Option<S<String>>,
    /// The private key (PEM) on the box, an absolute path.
    #[schemars(with = "Option<String>")]
    pub key: Option<S<String>>,
    /// The port nginx serves https on (443).
    #[schemars(with = "Option<i64>")]
    pub port: Option<S<i64>>,
    /// What plain http on `http-port` does: `refuse`, `redirect`,
    /// `allow-lan` or `allow`.
    #[schemars(with = "Option<PlainHttp>")]
    pub http: Option<S<PlainHttp>>,
}

/// What a TLS site does with plain http.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PlainHttp {
    /// Not published, closed in the firewall (nginx answers its own health
    /// check on loopback only).
    Refuse,
    /// Answered with a redirect to https only.
    Redirect,
    /// Served to the site LAN; everyone else is redirected.
    AllowLan,
    /// Served to everyone nginx serves.
    Allow,
}

impl PlainHttp {
    pub fn as_str(self) -> &'static str {
        match self {
            PlainHttp::Refuse => "refuse",
            PlainHttp::Redirect => "redirect",
            PlainHttp::AllowLan => "allow-lan",
            PlainHttp::Allow => "allow",
        }
    }

    /// Whether port `http-port` is published and opened at all.
    pub fn published(self) -> bool {
        self != PlainHttp::Refuse
    }

    /// Whether browsers are told to use https only (HSTS): where no one
    /// may use plain http.
    pub fn strict(self) -> bool {
        matches!(self, PlainHttp::Refuse | PlainHttp::Redirect)
    }
}

/// One place the containers may connect to (`[[network.egress]]`).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct EgressLayer {
    /// A short name for the rule (`[a-z0-9-]`), used in rule comments.
    #[schemars(with = "Option<String>")]
    pub name: Option<S<String>>,
    /// The destination network, e.g. `10.0.0.40/32`.
    #[schemars(with = "Option<String>")]
    pub cidr: Option<S<String>>,
    /// The destination TCP ports, e.g. `[443]`.
    #[schemars(with = "Option<Vec<i64>>")]
    pub ports: Option<S<Vec<S<i64>>>>,
}

/// `[login]`: how people sign in to the console.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct LoginLayer {
    /// Anyone may create an account (false).
    #[schemars(with = "Option<bool>")]
    pub allow_register: Option<S<bool>>,
    /// Users may create workspaces (false).
    #[schemars(with = "Option<bool>")]
    pub allow_create_workspace: Option<S<bool>>,
    /// Sign-in with email and password (true).
    #[schemars(with = "Option<bool>")]
    pub email_password: Option<S<bool>>,
    /// Sign-in with a code sent by email (false).
    #[schemars(with = "Option<bool>")]
    pub email_code: Option<S<bool>>,
    /// Sign-in with GitHub or Google (false).
    #[schemars(with = "Option<bool>")]
    pub social_oauth: Option<S<bool>>,
}

/// `[features]`: Dify features that decide services and settings.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FeaturesLayer {
    /// Real-time collaboration (the api_websocket service).
    #[schemars(with = "Option<bool>")]
    pub collaboration: Option<S<bool>>,
    /// Dify's code-execution sandbox.
    #[schemars(with = "Option<bool>")]
    pub code_execution: Option<S<bool>>,
    /// Plugin marketplace access.
    #[schemars(with = "Option<bool>")]
    pub marketplace: Option<S<bool>>,
    /// The plugin-debugging port; an edge box should keep it closed.
    #[schemars(with = "Option<bool>")]
    pub plugin_debugging: Option<S<bool>>,
}

/// `[helm]`: helm sites only.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct HelmLayer {
    /// The Kubernetes namespace (`dify`).
    #[schemars(with = "Option<String>")]
    pub namespace: Option<S<String>>,
    /// Name of the External Secrets Operator store holding the secrets.
    #[schemars(with = "Option<String>")]
    pub secret_store: Option<S<String>>,
    /// `SecretStore` or `ClusterSecretStore`.
    #[schemars(with = "Option<String>")]
    pub secret_store_kind: Option<S<String>>,
    /// The ingress class of the site's ingress.
    #[schemars(with = "Option<String>")]
    pub ingress_class: Option<S<String>>,
}

/// A value for `[env]`: Dify reads strings, but numbers and booleans are
/// accepted and written the way Dify expects them.
#[derive(Debug, Clone, PartialEq)]
pub enum EnvValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
}

impl<'de> Deserialize<'de> for EnvValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor("a string, a number or a boolean"))
    }
}

/// Reads a TOML scalar, saying it expected `.0` of anything else. An
/// integer beyond `i64` (TOML's integers are 64-bit signed) is refused,
/// not rounded to a float.
struct ScalarVisitor(&'static str);

impl serde::de::Visitor<'_> for ScalarVisitor {
    type Value = EnvValue;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
    fn visit_bool<E>(self, v: bool) -> Result<EnvValue, E> {
        Ok(EnvValue::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<EnvValue, E> {
        Ok(EnvValue::Int(v))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<EnvValue, E> {
        i64::try_from(v)
            .map(EnvValue::Int)
            .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
    }
    fn visit_f64<E>(self, v: f64) -> Result<EnvValue, E> {
        Ok(EnvValue::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<EnvValue, E> {
        Ok(EnvValue::String(v.to_string()))
    }
}

impl EnvValue {
    pub fn render(&self) -> String {
        match self {
            EnvValue::Bool(b) => b.to_string(),
            EnvValue::Int(i) => i.to_string(),
            EnvValue::Float(f) => f.to_string(),
            EnvValue::String(s) => s.clone(),
        }
    }
}

/// What a `[secrets]` entry says: a reference, or (a mistake) a literal.
/// Not `#[serde(untagged)]`: a table must read as a [`SecretRef`] with its
/// own errors (an unknown key in it is an unknown key, not a literal).
#[derive(Debug, Clone, PartialEq)]
pub enum SecretValue {
    Ref(SecretRef),
    Literal,
}

impl<'de> Deserialize<'de> for SecretValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = SecretValue;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a secret reference such as { env = \"NAME\" }")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<SecretValue, A::Error> {
                SecretRef::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(SecretValue::Ref)
            }
            fn visit_str<E>(self, _: &str) -> Result<SecretValue, E> {
                Ok(SecretValue::Literal)
            }
            fn visit_i64<E>(self, _: i64) -> Result<SecretValue, E> {
                Ok(SecretValue::Literal)
            }
            fn visit_u64<E>(self, _: u64) -> Result<SecretValue, E> {
                Ok(SecretValue::Literal)
            }
            fn visit_f64<E>(self, _: f64) -> Result<SecretValue, E> {
                Ok(SecretValue::Literal)
            }
            fn visit_bool<E>(self, _: bool) -> Result<SecretValue, E> {
                Ok(SecretValue::Literal)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<SecretValue, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(SecretValue::Literal)
            }
        }
        d.deserialize_any(V)
    }
}

/// Where a secret's value lives. The compiler writes only the reference.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SecretRef {
    /// An environment variable of the deploying host (compose).
    pub env: Option<String>,
    /// A file on the deploying host, mounted as a compose secret.
    pub file: Option<String>,
    /// A key in the external secret store (helm, External Secrets Operator).
    pub remote: Option<String>,
    /// The property within `remote`.
    pub property: Option<String>,
}

/// `[rollout]`: when a site gets a change.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RolloutLayer {
    /// Rollout wave: 1 is the canary.
    #[schemars(with = "Option<i64>")]
    pub wave: Option<S<i64>>,
}

/// Where the site's rendered tree is published and how the site picks it up:
/// compose boxes pull their branch with `deploy/apply.sh` on a systemd
/// timer, helm sites are synced by Argo CD from `argocd/application.yaml`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct GitopsLayer {
    /// URL of the config repository holding the site branches
    /// (`https://`, `ssh://` or `user@host:path`).
    #[schemars(with = "Option<String>")]
    pub repository: Option<S<String>>,
    /// Prefix of the site branches, ending in `/` (`sites/`).
    #[schemars(with = "Option<String>")]
    pub branch_prefix: Option<S<String>>,
    /// Compose only: how often the box polls its branch (`5min`).
    #[schemars(with = "Option<String>")]
    pub pull_interval: Option<S<String>>,
    /// Compose only: how long a new release has to prove healthy before the
    /// firewall and compose are rolled back (`120s`).
    #[schemars(with = "Option<String>")]
    pub confirm_timeout: Option<S<String>>,
    /// Compose only: how many backups (database dumps and storage archives
    /// taken before a tree of another Dify release is applied) the box
    /// keeps (`3`).
    #[schemars(with = "Option<i64>")]
    pub keep_backups: Option<S<i64>>,
    /// Compose only: after a confirmed apply, push the applied commit to
    /// `refs/dify-cfg/applied/<branch>` of the repository (`false`).
    #[schemars(with = "Option<bool>")]
    pub report_applied: Option<S<bool>>,
    /// Helm only: the namespace Argo CD runs in (`argocd`).
    #[schemars(with = "Option<String>")]
    pub argocd_namespace: Option<S<String>>,
    /// Helm only: the Argo CD project of the site's application (`default`).
    #[schemars(with = "Option<String>")]
    pub argocd_project: Option<S<String>>,
    /// Helm only: the API server URL of the destination cluster.
    #[schemars(with = "Option<String>")]
    pub cluster: Option<S<String>>,
}

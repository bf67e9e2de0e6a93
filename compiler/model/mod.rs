//! The validated, typed model of one site: what `validate` produces and
//! `plan`/`render` consume. Nothing here is optional in the way the input
//! is: defaults are applied, units parsed, names checked.

use std::collections::{BTreeMap, HashSet};
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Serialize, Serializer};

use crate::base::units::{Bytes, Millicores, TimeSpan};
pub use crate::input::layer::{DbEngine, EvictionPolicy, PlainHttp, Target, VectorStore};

/// Everything the renderers need about one site. The parts a site usually
/// has in common with the other sites of its profiles are [`Shared`].
#[derive(Debug, Clone, Serialize)]
pub struct Site {
    /// `[a-z0-9-]+`, the site file's stem.
    pub name: String,
    /// Site-relative path of the site file, e.g. `sites/clinic-01.toml`.
    pub file: String,
    /// Profiles from the site's own up to the root, e.g.
    /// `["multi-branch", "edge-4gb"]`.
    pub profile_chain: Shared<Vec<String>>,
    pub description: String,
    pub target: Target,
    pub dify_version: String,
    /// What `[dify]` lets through that the release's lock would refuse.
    pub waivers: ReleaseWaivers,
    pub images: Shared<Images>,
    pub build: Shared<Build>,
    /// The box; `None` for helm sites, which run on a cluster.
    pub device: Option<Device>,
    /// The services that run, in a fixed order (see [`ServiceKind`]).
    pub services: Shared<BTreeMap<ServiceKind, Service>>,
    pub database: Shared<Database>,
    pub redis: Shared<Redis>,
    pub vector_store: VectorStore,
    pub network: Network,
    pub login: Login,
    pub features: Features,
    pub helm: Shared<Helm>,
    /// `[env]`: Dify setting name to value, names checked against Dify.
    pub env: Shared<BTreeMap<String, String>>,
    /// Secret Dify setting name to where its value lives.
    pub secrets: Shared<BTreeMap<String, SecretRef>>,
    pub wave: u32,
    pub labels: BTreeMap<String, String>,
    pub gitops: Shared<Gitops>,
}

/// The site's explicit exceptions to its release's rules (`[dify]`), each
/// recorded in the manifest when taken.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ReleaseWaivers {
    /// `allow-downgrade`: `commit` may put an older release on the site
    /// branch than its tip records.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub allow_downgrade: bool,
    /// `allow-untested-images`: each pinned image outside the release's
    /// compatibility lock, as `<key> <repository>:<tag>` (a warning).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub untested_images: Vec<String>,
}

/// A part of a [`Site`] that the sites of a profile usually have alike:
/// images, services, secrets, ... A [`Pool`] gives every site with an equal
/// value the same allocation, so a fleet holds each distinct value once
/// instead of once per site. Reads go through `Deref`; a write (`DerefMut`)
/// copies the value first unless this site is its only holder, so changing
/// one site never changes another.
#[derive(Default, PartialEq, Eq, Hash)]
pub struct Shared<T>(Arc<T>);

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Shared<T> {
        Shared(Arc::clone(&self.0))
    }
}

impl<T> Shared<T> {
    pub fn new(value: T) -> Shared<T> {
        Shared(Arc::new(value))
    }
}

impl<T> From<T> for Shared<T> {
    fn from(value: T) -> Shared<T> {
        Shared::new(value)
    }
}

impl<T: FromIterator<A>, A> FromIterator<A> for Shared<T> {
    fn from_iter<I: IntoIterator<Item = A>>(iter: I) -> Shared<T> {
        Shared::new(iter.into_iter().collect())
    }
}

impl<'a, T> IntoIterator for &'a Shared<T>
where
    &'a T: IntoIterator,
{
    type Item = <&'a T as IntoIterator>::Item;
    type IntoIter = <&'a T as IntoIterator>::IntoIter;

    fn into_iter(self) -> Self::IntoIter {
        (&**self).into_iter()
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Clone> DerefMut for Shared<T> {
    fn deref_mut(&mut self) -> &mut T {
        Arc::make_mut(&mut self.0)
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<T: Serialize> Serialize for Shared<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// The distinct values of one kind of [`Shared`] part met so far.
pub struct Pool<T>(HashSet<Shared<T>>);

impl<T> Default for Pool<T> {
    fn default() -> Pool<T> {
        Pool(HashSet::new())
    }
}

impl<T: Eq + Hash> Pool<T> {
    /// Point `value` at the pool's equal value, or keep it as the value
    /// later equal ones will point at.
    pub fn share(&mut self, value: &mut Shared<T>) {
        match self.0.get(value) {
            Some(held) => *value = held.clone(),
            None => {
                self.0.insert(value.clone());
            }
        }
    }
}

/// Every service dify-cfg knows, in the order outputs list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceKind {
    Api,
    Worker,
    WorkerBeat,
    ApiWebsocket,
    Web,
    Db,
    Redis,
    Sandbox,
    SsrfProxy,
    PluginDaemon,
    AgentBackend,
    LocalSandbox,
    Nginx,
}

impl ServiceKind {
    pub const ALL: [ServiceKind; 13] = [
        ServiceKind::Api,
        ServiceKind::Worker,
        ServiceKind::WorkerBeat,
        ServiceKind::ApiWebsocket,
        ServiceKind::Web,
        ServiceKind::Db,
        ServiceKind::Redis,
        ServiceKind::Sandbox,
        ServiceKind::SsrfProxy,
        ServiceKind::PluginDaemon,
        ServiceKind::AgentBackend,
        ServiceKind::LocalSandbox,
        ServiceKind::Nginx,
    ];

    /// The key in `[services.*]`.
    pub fn key(self) -> &'static str {
        match self {
            ServiceKind::Api => "api",
            ServiceKind::Worker => "worker",
            ServiceKind::WorkerBeat => "worker-beat",
            ServiceKind::ApiWebsocket => "api-websocket",
            ServiceKind::Web => "web",
            ServiceKind::Db => "db",
            ServiceKind::Redis => "redis",
            ServiceKind::Sandbox => "sandbox",
            ServiceKind::SsrfProxy => "ssrf-proxy",
            ServiceKind::PluginDaemon => "plugin-daemon",
            ServiceKind::AgentBackend => "agent-backend",
            ServiceKind::LocalSandbox => "local-sandbox",
            ServiceKind::Nginx => "nginx",
        }
    }

    /// The service name in Dify's docker compose file.
    pub fn compose_name(self) -> &'static str {
        match self {
            ServiceKind::Api => "api",
            ServiceKind::Worker => "worker",
            ServiceKind::WorkerBeat => "worker_beat",
            ServiceKind::ApiWebsocket => "api_websocket",
            ServiceKind::Web => "web",
            ServiceKind::Db => "db_postgres",
            ServiceKind::Redis => "redis",
            ServiceKind::Sandbox => "sandbox",
            ServiceKind::SsrfProxy => "ssrf_proxy",
            ServiceKind::PluginDaemon => "plugin_daemon",
            ServiceKind::AgentBackend => "agent_backend",
            ServiceKind::LocalSandbox => "local_sandbox",
            ServiceKind::Nginx => "nginx",
        }
    }

    /// The component key in the dify-helm chart's values, when the chart
    /// runs this service itself.
    pub fn helm_key(self) -> Option<&'static str> {
        match self {
            ServiceKind::Api => Some("api"),
            ServiceKind::Worker => Some("worker"),
            ServiceKind::WorkerBeat => Some("beat"),
            ServiceKind::ApiWebsocket => Some("apiWebsocket"),
            ServiceKind::Web => Some("web"),
            ServiceKind::Sandbox => Some("sandbox"),
            ServiceKind::SsrfProxy => Some("ssrfProxy"),
            ServiceKind::PluginDaemon => Some("pluginDaemon"),
            ServiceKind::AgentBackend => Some("agentBackend"),
            ServiceKind::LocalSandbox => Some("localSandbox"),
            ServiceKind::Nginx => Some("proxy"),
            ServiceKind::Db | ServiceKind::Redis => None,
        }
    }

    pub fn from_key(key: &str) -> Option<ServiceKind> {
        ServiceKind::ALL.into_iter().find(|k| k.key() == key)
    }

    /// Runs the dify-api image (api, worker, beat, websocket).
    pub fn uses_api_image(self) -> bool {
        matches!(
            self,
            ServiceKind::Api
                | ServiceKind::Worker
                | ServiceKind::WorkerBeat
                | ServiceKind::ApiWebsocket
        )
    }
}

impl std::fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.key())
    }
}

/// One running service and its checked resources.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Service {
    pub kind: ServiceKind,
    /// Memory limit per replica.
    pub memory: Bytes,
    /// CPU limit per replica.
    pub cpus: Millicores,
    pub memory_request: Bytes,
    pub cpus_request: Millicores,
    pub replicas: u32,
    /// gunicorn workers (api) or Celery processes (worker).
    pub workers: Option<u32>,
    pub worker_connections: Option<u32>,
    pub autoscaling: Option<Autoscaling>,
    /// The image the service runs.
    pub image: ImageRef,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Autoscaling {
    pub min_replicas: u32,
    pub max_replicas: u32,
    pub target_cpu_percent: u8,
}

/// A pinned image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ImageRef {
    pub repository: String,
    pub tag: String,
    /// `sha256:...` when the profile pins one.
    pub digest: Option<String>,
}

impl ImageRef {
    /// `repository:tag[@digest]`, the form docker and compose accept.
    pub fn reference(&self) -> String {
        match &self.digest {
            Some(d) => format!("{}:{}@{}", self.repository, self.tag, d),
            None => format!("{}:{}", self.repository, self.tag),
        }
    }
}

/// Upstream images the site runs as they are.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Images {
    pub sandbox: ImageRef,
    pub plugin_daemon: ImageRef,
    pub agent_backend: ImageRef,
    pub local_sandbox: ImageRef,
    pub postgres: ImageRef,
    pub redis: ImageRef,
    pub nginx: ImageRef,
    pub ssrf_proxy: ImageRef,
}

/// How dify-cfg builds the api and web images.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Build {
    /// Where built images are pushed, e.g. `registry.example.org/dify`.
    pub registry: String,
    pub api_base: ImageRef,
    pub web_base: ImageRef,
    pub platforms: Vec<String>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Device {
    pub memory: Bytes,
    pub cpus: Millicores,
    pub reserve_percent: u8,
    /// How far above its measured floor each memory limit should be.
    pub headroom_percent: u8,
}

/// The headroom above the measured memory floors where `device.headroom`
/// is not set, and on sites without a device (helm).
pub const DEFAULT_HEADROOM_PERCENT: u8 = 10;

/// The headroom above the measured memory floors a site on `device` keeps.
pub fn headroom_percent(device: Option<&Device>) -> u8 {
    device.map_or(DEFAULT_HEADROOM_PERCENT, |d| d.headroom_percent)
}

impl Site {
    /// The headroom above the measured memory floors this site keeps.
    pub fn headroom_percent(&self) -> u8 {
        headroom_percent(self.device.as_ref())
    }
}

impl Device {
    /// Memory the services may use: the device less its reserve, rounded
    /// down to whole MiB.
    pub fn budget(&self) -> Bytes {
        let exact = u128::from(self.memory.0) * u128::from(100 - self.reserve_percent) / 100;
        let mib = u128::from(crate::base::units::MIB);
        Bytes((exact / mib * mib) as u64)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Database {
    pub engine: DbEngine,
    /// `None`: the bundled `db_postgres` container.
    pub external: Option<External>,
    pub max_connections: u32,
    pub shared_buffers: Bytes,
    pub work_mem: Bytes,
    pub maintenance_work_mem: Bytes,
    pub effective_cache_size: Bytes,
    /// SQLAlchemy's pool of each api, worker and websocket process:
    /// `pool_size` kept open, up to `max_overflow` more under load.
    pub pool_size: u32,
    pub max_overflow: u32,
    /// The pgvector store's pool ceiling per api/worker process.
    pub vector_connections: u32,
    /// The plugin daemon's open-connection ceiling.
    pub plugin_connections: u32,
    /// Database names: Dify's and the plugin daemon's.
    pub name: String,
    pub plugin_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct External {
    pub host: String,
    pub port: u16,
    pub database: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Redis {
    pub maxmemory: Bytes,
    pub policy: EvictionPolicy,
    pub external: Option<External>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Network {
    pub hostname: String,
    pub lan: Option<Ipv4Net>,
    pub address: Option<Ipv4Addr>,
    pub lan6: Option<Ipv6Net>,
    pub admin: Shared<Vec<IpNet>>,
    pub ssh_from: Shared<Vec<IpNet>>,
    pub ssh_port: u16,
    pub http_port: u16,
    /// Route prefixes open to the site LAN, sorted.
    pub public_routes: Shared<Vec<String>>,
    pub egress: Shared<Vec<Egress>>,
    /// TLS at nginx (compose sites), when on.
    pub tls: Option<Tls>,
}

/// TLS at nginx: the certificate and key stay on the box (these are their
/// paths there, mounted read-only into nginx), https on `port`, and what
/// plain http on `http_port` does.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Tls {
    pub certificate: String,
    pub key: String,
    pub port: u16,
    pub http: PlainHttp,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Egress {
    pub name: String,
    pub cidr: IpNet,
    pub ports: Vec<u16>,
}

impl Egress {
    pub fn is_v4(&self) -> bool {
        matches!(self.cidr, IpNet::V4(_))
    }
}

pub fn is_v4(net: &IpNet) -> bool {
    matches!(net.addr(), IpAddr::V4(_))
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Login {
    pub allow_register: bool,
    pub allow_create_workspace: bool,
    pub email_password: bool,
    pub email_code: bool,
    pub social_oauth: bool,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Features {
    pub collaboration: bool,
    pub code_execution: bool,
    pub marketplace: bool,
    pub plugin_debugging: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Helm {
    pub namespace: String,
    pub secret_store: String,
    pub secret_store_kind: String,
    pub ingress_class: Option<String>,
}

/// Where a secret's value lives; only this reference is ever written.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum SecretRef {
    /// An environment variable of the deploying host.
    Env { name: String },
    /// A file on the deploying host (a compose secret).
    File { path: String },
    /// A key and property in the External Secrets store.
    Remote { key: String, property: String },
}

/// Where the site's rendered tree is published and how the site applies it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Gitops {
    /// The config repository: `https://host/path`, `ssh://[user@]host/path`
    /// or `user@host:path`, validated to be inert in a shell word and a YAML
    /// scalar.
    pub repository: String,
    /// Prefix of the site branches, ending in `/`: the branch of site S is
    /// `{branch_prefix}{S}` (see [`Gitops::branch`]).
    pub branch_prefix: String,
    /// Compose sites: the pull agent's schedule and confirmation window.
    pub pull: Option<Pull>,
    /// Helm sites: where the Argo CD application goes.
    pub argocd: Option<ArgoCd>,
}

impl Gitops {
    /// The branch holding the rendered tree of site `site`.
    pub fn branch(&self, site: &str) -> String {
        format!("{}{site}", self.branch_prefix)
    }
}

/// The pull agent of a compose box (`deploy/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Pull {
    /// How often the box polls its branch.
    pub interval: TimeSpan,
    /// How long a new release has to prove healthy after the firewall
    /// changed, before everything is rolled back.
    pub confirm_timeout: TimeSpan,
    /// How many pre-upgrade backups the box keeps.
    pub keep_backups: u32,
    /// Whether the agent pushes the applied commit back to the repository.
    pub report_applied: bool,
}

/// The Argo CD application of a helm site (`argocd/application.yaml`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ArgoCd {
    /// The namespace Argo CD watches for applications.
    pub namespace: String,
    pub project: String,
    /// The API server URL of the destination cluster.
    pub cluster: String,
}

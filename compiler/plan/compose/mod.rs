//! compose.yaml: the services of a compose site with their images,
//! limits, environment, secrets, health checks, dependencies, networks
//! and volumes.

use std::collections::BTreeSet;

use serde::Serialize;

use super::BuiltKind;
use super::common::{KeyValue, SiteInfo, has, site_info};
use super::quote::compose_literal;
use super::secrets::SecretPlan;
use super::settings::EnvPlan;
use crate::dify::secret_files::unsupported_file_secrets;
use crate::model::{ServiceKind, Site};
use services::ServiceCx;

mod services;

/// Linux bridge names of the compose networks. Fixed names let the firewall
/// match the site's containers by interface; one Dify runs per box.
pub const BRIDGE_DEFAULT: &str = "dify-br0";
pub const BRIDGE_SSRF: &str = "dify-br1";
/// Dify's name for the internal network of the sandbox and its proxy.
pub const SSRF_NETWORK: &str = "ssrf_proxy_network";
/// Where compose mounts a secret file inside a container.
pub const SECRETS_DIR: &str = "/run/secrets";

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
    /// [`SitePlan::deploy_artifacts`](super::SitePlan::deploy_artifacts).
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
    pub volumes: Vec<Volume>,
    pub secrets: Vec<SecretMount>,
    pub healthcheck: Option<Healthcheck>,
    /// Turns off the image's own HEALTHCHECK (the api image's HTTP check
    /// means nothing in the worker and beat, which serve no HTTP).
    pub healthcheck_disabled: bool,
    pub depends_on: Vec<Dependency>,
    pub networks: Vec<&'static str>,
    pub labels: Vec<KeyValue>,
}

/// A service's volume: compose's short syntax (`SOURCE:TARGET[:ro]`), or a
/// bind mount of a file on the box in the long syntax, which refuses to
/// start the service when the file is missing (the short syntax would
/// create an empty directory in its place).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Volume {
    Short(String),
    BoxFile(BoxFile),
}

impl From<String> for Volume {
    fn from(s: String) -> Self {
        Volume::Short(s)
    }
}

impl From<&str> for Volume {
    fn from(s: &str) -> Self {
        Volume::Short(s.to_string())
    }
}

/// A file of the box mounted read-only (printed as a flow mapping).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BoxFile {
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The path on the box, `$`-escaped for compose.
    pub source: String,
    pub target: &'static str,
    pub read_only: bool,
    pub bind: BindOptions,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BindOptions {
    pub create_host_path: bool,
}

impl BoxFile {
    pub fn read_only(source: &str, target: &'static str) -> Self {
        BoxFile {
            kind: "bind",
            source: compose_literal(source),
            target,
            read_only: true,
            bind: BindOptions {
                create_host_path: false,
            },
        }
    }
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

/// compose.yaml of a compose site.
pub(super) fn compose(site: &Site, env: &EnvPlan) -> ComposeContext {
    let secrets = SecretPlan::new(site);
    let uses_ssrf_network = has(site, ServiceKind::Sandbox) || has(site, ServiceKind::SsrfProxy);
    let cx = ServiceCx {
        site,
        env,
        secrets: &secrets,
        uses_ssrf_network,
    };
    let mut services: Vec<ComposeService> = site
        .services
        .iter()
        .map(|(&kind, svc)| services::service(&cx, kind, svc))
        .collect();
    add_dependencies(&mut services);
    let volumes = named_volumes(&services);

    ComposeContext {
        site: site_info_compose(site),
        project: site.name.clone(),
        services,
        networks: networks(uses_ssrf_network),
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
        notes: header_notes(site),
    }
}

/// Dependencies: wait for health where the dependency has a check.
fn add_dependencies(services: &mut [ComposeService]) {
    let healthy: BTreeSet<&'static str> = services
        .iter()
        .filter(|s| s.healthcheck.is_some())
        .map(|s| s.name)
        .collect();
    let present: BTreeSet<&'static str> = services.iter().map(|s| s.name).collect();
    for s in services.iter_mut() {
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
}

/// The default network, and the internal one of the sandbox and its proxy.
fn networks(uses_ssrf_network: bool) -> Vec<ComposeNetwork> {
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
    networks
}

/// The named volumes the services mount (bind mounts start with `./`, or
/// are box files).
fn named_volumes(services: &[ComposeService]) -> Vec<String> {
    let mut volumes: Vec<String> = services
        .iter()
        .flat_map(|s| s.volumes.iter())
        .filter_map(|v| match v {
            Volume::Short(v) => Some(v),
            Volume::BoxFile(_) => None,
        })
        .filter(|v| !v.starts_with("./") && !v.starts_with('/'))
        .filter_map(|v| v.split(':').next())
        .map(str::to_string)
        .collect();
    volumes.sort();
    volumes.dedup();
    volumes
}

/// The file's header notes: secret files a service cannot read, the fixed
/// bridge names.
fn header_notes(site: &Site) -> Vec<String> {
    let mut notes = Vec::new();
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
    notes
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

#[cfg(test)]
mod tests;

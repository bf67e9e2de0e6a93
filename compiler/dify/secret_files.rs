//! The secret-file policy of compose sites: under which variables each
//! service reads a Dify secret, which services can read a secret from a
//! file, and so which file-backed secrets a site's services cannot read.
//! Validation refuses those; planning mounts and wires the rest.

use crate::dify;
use crate::model::{SecretRef, ServiceKind, Site, Target, VectorStore};

/// The variables a service reads a Dify secret under (`None`: the service
/// does not need it). dify-api services read Dify's own names.
pub fn secret_vars(site: &Site, kind: ServiceKind, name: &str) -> Vec<&'static str> {
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
pub fn reads_secret_files(kind: ServiceKind) -> bool {
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

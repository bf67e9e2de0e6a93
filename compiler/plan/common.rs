//! What several outputs share: the site header every template prints,
//! key-value pairs, and the site's URLs and data-store addresses.

use std::net::IpAddr;

use serde::Serialize;

use crate::dify;
use crate::model::{ServiceKind, Site, Target};

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

pub(super) fn kv(key: impl Into<String>, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: value.into(),
    }
}

pub(super) fn site_info(site: &Site) -> SiteInfo {
    SiteInfo {
        name: site.name.clone(),
        description: site.description.clone(),
        profile_chain: site.profile_chain.to_vec(),
        dify_version: site.dify_version.clone(),
        wave: site.wave,
        labels: site.labels.iter().map(|(k, v)| kv(k, v)).collect(),
    }
}

pub(super) fn has(site: &Site, kind: ServiceKind) -> bool {
    site.services.contains_key(&kind)
}

pub(super) fn http_url(host: &str, port: u16) -> String {
    format!("http://{host}:{port}")
}

/// The site's public base URL, e.g. `http://clinic-01.example.org`, or
/// `https://...` when nginx terminates TLS (a port only where it is not
/// the scheme's own).
pub(super) fn base_url(site: &Site) -> String {
    let host = &site.network.hostname;
    let host = match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => format!("[{host}]"),
        _ => host.clone(),
    };
    let (scheme, port, usual) = match (&site.network.tls, site.target) {
        (Some(tls), Target::Compose) => ("https", tls.port, 443),
        (None, Target::Compose) => ("http", site.network.http_port, 80),
        (_, Target::Helm) => ("http", 80, 80),
    };
    if port == usual {
        format!("{scheme}://{host}")
    } else {
        format!("{scheme}://{host}:{port}")
    }
}

/// The public URL of the real-time collaboration socket: `ws://` or, on a
/// TLS site, `wss://`.
pub(super) fn websocket_url(site: &Site) -> String {
    let base = base_url(site);
    match base.strip_prefix("https://") {
        Some(rest) => format!("wss://{rest}"),
        None => base.replacen("http://", "ws://", 1),
    }
}

pub(super) fn db_host_port(site: &Site) -> (String, u16) {
    match &site.database.external {
        Some(e) => (e.host.clone(), e.port),
        None => (
            ServiceKind::Db.compose_name().to_string(),
            dify::POSTGRES_PORT,
        ),
    }
}

pub(super) fn db_name(site: &Site) -> String {
    site.database
        .external
        .as_ref()
        .and_then(|e| e.database.clone())
        .unwrap_or_else(|| site.database.name.clone())
}

pub(super) fn redis_host_port(site: &Site) -> (String, u16) {
    match &site.redis.external {
        Some(e) => (e.host.clone(), e.port),
        None => (
            ServiceKind::Redis.compose_name().to_string(),
            dify::REDIS_PORT,
        ),
    }
}

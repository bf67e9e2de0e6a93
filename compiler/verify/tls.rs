//! The TLS cross-check of a compose site's rendered files, read back the
//! way nginx and compose read them: every certificate and key nginx's
//! config names is mounted read-only into the nginx service (from the
//! site's `[network.tls]` files, for the paths dify-cfg mounts them at);
//! the https port compose publishes reaches a listener with `ssl`; and
//! plain http is published only where the site allows it. A config that
//! fails here would fail on the box: nginx would not start, or would serve
//! https's port in plain text, or plain http the site refuses.
//! (That published ports, firewall openings and listeners agree at all is
//! `crosscheck.rs`.)

use std::collections::BTreeMap;

use serde_yaml_ng::Value;

use super::crosscheck::{compose_service, file_text, published_ports_of};
use crate::base::codes::Code;
use crate::base::diagnostic::{Diagnostic, Diagnostics};
use crate::base::source::Span;
use crate::dify::tls::{NGINX_CERTIFICATE_PATH, NGINX_KEY_PATH};
use crate::model::{ServiceKind, Site};
use crate::plan::NGINX_FILE;

/// A `listen` directive of nginx's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    /// The address part, when it names one (`127.0.0.1` in
    /// `127.0.0.1:80`).
    pub address: Option<String>,
    pub port: u16,
    pub ssl: bool,
}

/// The `listen` directives of an nginx config.
pub fn nginx_listen_directives(conf: &str) -> Vec<Listen> {
    directives(conf, "listen")
        .into_iter()
        .filter_map(|words| {
            let first = words.first()?;
            let (address, port) = match first.rsplit_once(':') {
                Some((a, p)) => (Some(a.trim_matches(['[', ']']).to_string()), p),
                None => (None, first.as_str()),
            };
            Some(Listen {
                address,
                port: port.parse().ok()?,
                ssl: words.iter().skip(1).any(|w| w == "ssl"),
            })
        })
        .collect()
}

/// The paths of an nginx config's `ssl_certificate` and
/// `ssl_certificate_key` directives.
pub fn nginx_tls_files(conf: &str) -> Vec<String> {
    let mut out = Vec::new();
    for name in ["ssl_certificate", "ssl_certificate_key"] {
        for words in directives(conf, name) {
            out.extend(words.first().cloned());
        }
    }
    out
}

/// The arguments of every `name` directive (comments dropped; one
/// directive per line, as dify-cfg writes them).
fn directives(conf: &str, name: &str) -> Vec<Vec<String>> {
    conf.lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix([' ', '\t']))
        .map(|rest| {
            rest.trim_end_matches(';')
                .split_whitespace()
                .map(str::to_string)
                .collect()
        })
        .collect()
}

/// A bind mount of a compose service, in either syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub source: String,
    pub target: String,
    pub read_only: bool,
}

/// The mounts of a compose service: `SOURCE:TARGET[:ro]` strings and
/// `{type, source, target, read_only}` mappings.
pub fn mounts_of(svc: &Value) -> Vec<Mount> {
    let mut out = Vec::new();
    for v in svc
        .get("volumes")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
    {
        match v {
            Value::String(s) => {
                let parts: Vec<&str> = s.split(':').collect();
                if let [source, target, rest @ ..] = parts.as_slice() {
                    out.push(Mount {
                        source: source.to_string(),
                        target: target.to_string(),
                        read_only: rest.iter().any(|o| o.split(',').any(|o| o == "ro")),
                    });
                }
            }
            Value::Mapping(m) => {
                let text = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
                if let (Some(source), Some(target)) = (text("source"), text("target")) {
                    out.push(Mount {
                        source,
                        target,
                        read_only: m.get("read_only").and_then(Value::as_bool) == Some(true),
                    });
                }
            }
            _ => {}
        }
    }
    out
}

/// Check one rendered compose site's TLS, whose `compose.yaml` reads back
/// as `compose`. `template` gives the span to point at for an output.
pub fn check_site(
    site: &Site,
    files: &BTreeMap<String, Vec<u8>>,
    compose: &Result<Value, String>,
    template: impl Fn(&str) -> Option<Span>,
) -> Diagnostics {
    let mut diags = Diagnostics::new();
    let nginx = ServiceKind::Nginx.compose_name();
    let Some((doc, svc)) = compose_service(site, compose, ServiceKind::Nginx) else {
        return diags;
    };
    let mut fail = |msg: String, tpl: &str, help: &str| {
        diags.push(
            Diagnostic::error(Code::TlsMismatch, format!("site `{}`: {msg}", site.name))
                .at_opt(template(tpl))
                .help(help.to_string()),
        );
    };
    let conf = file_text(files, NGINX_FILE).unwrap_or_default();
    let mounts = mounts_of(svc);
    for path in nginx_tls_files(&conf) {
        match mounts.iter().find(|m| m.target == path) {
            None => fail(
                format!("nginx reads `{path}`, but compose mounts nothing there"),
                "nginx.conf",
                "nginx would not start: read the certificate and key where compose mounts them",
            ),
            Some(m) if !m.read_only => fail(
                format!("compose mounts `{path}` into nginx writable"),
                "compose.yaml",
                "mount the certificate and key read-only",
            ),
            Some(_) => {}
        }
    }
    let listens = nginx_listen_directives(&conf);
    let published: Vec<_> = published_ports_of(doc)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.service == nginx)
        .collect();
    // A listener on the container's loopback is not what compose forwards to.
    let served = |port: u16, ssl: bool| {
        listens.iter().any(|l| {
            l.port == port
                && l.ssl == ssl
                && !l.address.as_deref().is_some_and(|a| a.starts_with("127."))
        })
    };
    let Some(tls) = &site.network.tls else {
        return diags;
    };
    for (file, path, key) in [
        (&tls.certificate, NGINX_CERTIFICATE_PATH, "certificate"),
        (&tls.key, NGINX_KEY_PATH, "key"),
    ] {
        if !mounts.iter().any(|m| m.target == path && &m.source == file) {
            fail(
                format!("compose does not mount the site's {key} `{file}` at `{path}`"),
                "compose.yaml",
                &format!("mount `network.tls.{key}` read-only at `{path}`, where nginx reads it"),
            );
        }
    }
    match published.iter().find(|p| p.host_port == tls.port) {
        Some(p) if !served(p.container_port, true) => fail(
            format!(
                "compose publishes https's port {} to nginx's port {}, where nginx has no `ssl` listener",
                p.host_port, p.container_port
            ),
            "nginx.conf",
            "listen with `ssl` on the https port, or clients would talk TLS to plain http",
        ),
        Some(_) => {}
        None => fail(
            format!("compose does not publish https's port {}", tls.port),
            "compose.yaml",
            "publish `network.tls.port` on the box's address",
        ),
    }
    for p in &published {
        let plain = served(p.container_port, false);
        if plain && !tls.http.published() {
            fail(
                format!(
                    "the site refuses plain http, but compose publishes port {} to a plain listener of nginx",
                    p.host_port
                ),
                "compose.yaml",
                "publish only the https port (`http = \"refuse\"` in `[network.tls]`)",
            );
        }
    }
    diags
}

#[cfg(test)]
mod tests;

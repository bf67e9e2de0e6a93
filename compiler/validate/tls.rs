//! `[network.tls]`: TLS at a compose site's nginx. The certificate and key
//! are paths on the box (checked to be plain absolute file paths, never
//! read); the https port must not collide with the plain http or SSH port;
//! plain http is redirected unless the site says otherwise. A helm site
//! terminates TLS at its ingress and is told so.

use std::collections::BTreeMap;

use toml::Spanned;

use super::context::Cx;
use crate::base::codes::Code;
use crate::base::diagnostic::Diagnostic;
use crate::base::names::box_path_problem;
use crate::input::layer::{Layer, NetworkLayer, PlainHttp, Target, TlsLayer};
use crate::model::{Network, Service, ServiceKind, Tls};

/// The https port when the site names none.
pub(super) const DEFAULT_TLS_PORT: u16 = 443;

/// `network.tls`, when the site turns TLS on and every part is valid.
pub(super) fn tls(
    cx: &mut Cx<'_>,
    nl: &NetworkLayer,
    target: Target,
    http_port: u16,
    ssh_port: u16,
) -> Option<Tls> {
    let spanned = nl.tls.as_ref()?;
    let t = spanned.get_ref();
    if t.enabled.as_ref().is_some_and(|e| !*e.get_ref()) {
        return None;
    }
    if target == Target::Helm {
        cx.err(
            Diagnostic::error(
                Code::NotApplicable,
                "`[network.tls]` applies to compose sites only",
            )
            .at(spanned.span())
            .label("nginx's TLS on a compose box")
            .help("remove it: a helm site terminates TLS at its ingress, with a certificate the cluster holds (a Kubernetes TLS secret), never a file on a box"),
        );
        return None;
    }
    let certificate = path(cx, spanned, &t.certificate, "certificate", "crt");
    let key = path(cx, spanned, &t.key, "key", "key");
    let port = cx.port(&t.port, "network.tls.port", DEFAULT_TLS_PORT);
    let http = match &t.http {
        Some(h) => *h.get_ref(),
        None => {
            cx.default("network.tls.http", PlainHttp::Redirect.as_str());
            PlainHttp::Redirect
        }
    };
    let port_ok = ports_apart(cx, spanned, t, port, http_port, ssh_port);
    match (certificate, key, port_ok) {
        (Some(certificate), Some(key), true) => Some(Tls {
            certificate,
            key,
            port,
            http,
        }),
        _ => None,
    }
}

/// `network.tls.<name>`: required, a plain absolute file path.
fn path(
    cx: &mut Cx<'_>,
    table: &Spanned<TlsLayer>,
    v: &Option<Spanned<String>>,
    name: &str,
    ext: &str,
) -> Option<String> {
    let example = format!("/etc/dify-cfg/tls/<site>.{ext}");
    let Some(v) = v else {
        cx.err_missing(
            &format!("network.tls.{name}"),
            Diagnostic::error(
                Code::MissingKey,
                format!("`[network.tls]` has no `{name}`"),
            )
            .at(table.span())
            .label("TLS is on here")
            .help(format!(
                "give the path of the {} on the box, e.g. `{name} = \"{example}\"` (or `enabled = false`)",
                if name == "key" { "private key" } else { "certificate chain" }
            )),
        );
        return None;
    };
    cx.checked(v, box_path_problem, "a file path on the box", |d| {
        d.label(format!("`network.tls.{name}` is mounted into nginx from this path"))
            .help(format!(
                "write an absolute path of plain names, e.g. `{example}`: compose mounts it, and a space, quote, `$` or `:` would change what it reads"
            ))
    })
}

/// The https port must differ from the plain http port and from SSH.
fn ports_apart(
    cx: &mut Cx<'_>,
    table: &Spanned<TlsLayer>,
    t: &TlsLayer,
    port: u16,
    http_port: u16,
    ssh_port: u16,
) -> bool {
    let clash = if port == http_port {
        "`network.http-port`"
    } else if port == ssh_port {
        "`network.ssh-port`"
    } else {
        return true;
    };
    let at = t.port.as_ref().map_or(table.span(), |p| p.span());
    cx.err(
        Diagnostic::error(
            Code::Inconsistent,
            format!("https and {clash} are both port {port}"),
        )
        .at(at)
        .label("`network.tls.port`")
        .help(format!(
            "give https a port of its own (`port = {DEFAULT_TLS_PORT}` in `[network.tls]` is the usual one)"
        )),
    );
    false
}

/// TLS is nginx's: a compose site that turns nginx off cannot have it.
pub(super) fn served_by_nginx(
    cx: &mut Cx<'_>,
    layer: &Layer,
    network: Option<&Network>,
    services: &BTreeMap<ServiceKind, Service>,
) {
    if network.is_none_or(|n| n.tls.is_none()) || services.contains_key(&ServiceKind::Nginx) {
        return;
    }
    let at = layer
        .network
        .as_ref()
        .and_then(|n| n.tls.as_ref())
        .map_or(cx.anchor.clone(), |t| t.span());
    cx.err(
        Diagnostic::error(
            Code::Inconsistent,
            "`[network.tls]` is served by nginx, but the site runs no nginx",
        )
        .at(at)
        .label("TLS is on here")
        .help("turn nginx back on (`[services.nginx]`), or TLS off (`enabled = false` in `[network.tls]`)"),
    );
}

//! The agent's sandbox behind its own SSRF proxy: releases that run
//! `agent_ssrf_proxy` (a second squid between the agent's local sandbox and
//! everything else) cannot run the agent services on a compose site until
//! dify-cfg generates that proxy, its config and its network. Refused
//! rather than run with the sandbox unfiltered.

use std::collections::BTreeMap;

use super::context::Cx;
use crate::base::codes::Code;
use crate::base::diagnostic::Diagnostic;
use crate::dify::ssrf_proxy::has_agent_ssrf_proxy;
use crate::input::layer::{Layer, Target};
use crate::model::{Service, ServiceKind};

/// Refuse the agent services of a compose site whose release puts them
/// behind `agent_ssrf_proxy`.
pub(super) fn agent_proxy(
    cx: &mut Cx<'_>,
    layer: &Layer,
    target: Target,
    dify_version: &str,
    services: &BTreeMap<ServiceKind, Service>,
) {
    if target != Target::Compose || !has_agent_ssrf_proxy(dify_version) {
        return;
    }
    let layers = layer.services.as_ref();
    for kind in [ServiceKind::AgentBackend, ServiceKind::LocalSandbox] {
        if !services.contains_key(&kind) {
            continue;
        }
        let sl = layers.and_then(|s| match kind {
            ServiceKind::AgentBackend => s.agent_backend.as_ref(),
            _ => s.local_sandbox.as_ref(),
        });
        let span = sl
            .and_then(|s| s.enabled.as_ref().map(|e| e.span()))
            .or_else(|| {
                layer
                    .dify
                    .as_ref()
                    .and_then(|d| d.version.as_ref())
                    .map(|v| v.span())
            });
        let d = Diagnostic::error(
            Code::AgentSsrfProxy,
            format!(
                "on compose, Dify {dify_version} puts the agent's sandbox behind a second SSRF proxy (agent_ssrf_proxy), which dify-cfg does not generate yet: `{}` cannot run here",
                kind.key()
            ),
        )
        .label("the agent's sandbox would run without the proxy this release puts in front of it")
        .help(format!(
            "set `[services.{}] enabled = false` on compose sites of Dify {dify_version}, or run the agent on Dify 1.16.0 or on a helm site",
            kind.key()
        ));
        cx.err(match span {
            Some(s) => d.at(s),
            None => d,
        });
    }
}

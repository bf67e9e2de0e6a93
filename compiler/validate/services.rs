//! `[services.*]`: which services run and what they may use.

use crate::input::layer::{Layer, ServiceLayer};
use crate::model::*;

/// Which services run unless a profile says otherwise.
pub(super) fn enabled_by_default(kind: ServiceKind) -> bool {
    !matches!(
        kind,
        ServiceKind::ApiWebsocket | ServiceKind::AgentBackend | ServiceKind::LocalSandbox
    )
}

pub(super) fn service_layer(layer: &Layer, kind: ServiceKind) -> Option<&ServiceLayer> {
    let s = layer.services.as_ref()?;
    match kind {
        ServiceKind::Api => s.api.as_ref(),
        ServiceKind::Worker => s.worker.as_ref(),
        ServiceKind::WorkerBeat => s.worker_beat.as_ref(),
        ServiceKind::ApiWebsocket => s.api_websocket.as_ref(),
        ServiceKind::Web => s.web.as_ref(),
        ServiceKind::Db => s.db.as_ref(),
        ServiceKind::Redis => s.redis.as_ref(),
        ServiceKind::Sandbox => s.sandbox.as_ref(),
        ServiceKind::SsrfProxy => s.ssrf_proxy.as_ref(),
        ServiceKind::PluginDaemon => s.plugin_daemon.as_ref(),
        ServiceKind::AgentBackend => s.agent_backend.as_ref(),
        ServiceKind::LocalSandbox => s.local_sandbox.as_ref(),
        ServiceKind::Nginx => s.nginx.as_ref(),
    }
}

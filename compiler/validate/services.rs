//! `[services.*]`: which services run and what they may use (memory and CPU
//! limits and requests, replicas, workers, autoscaling), and the image each
//! one runs.

use std::collections::BTreeMap;

use super::autoscaling::autoscaling;
use super::context::Cx;
use crate::base::codes::Code;
use crate::base::diagnostic::Diagnostic;
use crate::base::source::Span;
use crate::base::units::{Bytes, Millicores};
use crate::input::layer::{Layer, ServiceLayer, Target};
use crate::model::*;

/// Where each running service's memory limit was set (for the memory
/// budget and Redis headroom diagnostics).
pub(super) type MemorySpans = BTreeMap<ServiceKind, Option<Span>>;

/// What other settings decide for the services: which of them run, and
/// the images they run.
pub(super) struct Decided<'a> {
    pub(super) features: &'a Features,
    /// Whether PostgreSQL is external (then `db` does not run).
    pub(super) db_external: bool,
    /// Whether Redis is external (then `redis` does not run).
    pub(super) redis_external: bool,
    pub(super) images: &'a Images,
    /// Where the api and web images dify-cfg builds are pushed.
    pub(super) registry: &'a str,
    pub(super) dify_version: &'a str,
}

/// Which services run unless a profile says otherwise.
fn enabled_by_default(kind: ServiceKind) -> bool {
    !matches!(
        kind,
        ServiceKind::ApiWebsocket | ServiceKind::AgentBackend | ServiceKind::LocalSandbox
    )
}

/// The `[services.<kind>]` table of the layer, if any.
fn service_layer(layer: &Layer, kind: ServiceKind) -> Option<&ServiceLayer> {
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

/// The running services, each with valid settings, and where their memory
/// limits were set; then the services Dify cannot run without.
pub(super) fn services(
    cx: &mut Cx<'_>,
    layer: &Layer,
    target: Target,
    decided: &Decided<'_>,
) -> (BTreeMap<ServiceKind, Service>, MemorySpans) {
    let mut services = BTreeMap::new();
    let mut memory_spans: MemorySpans = BTreeMap::new();
    for kind in ServiceKind::ALL {
        let sl = service_layer(layer, kind);
        let key = format!("services.{}", kind.key());
        if !enabled(cx, kind, sl, &key, decided) {
            continue;
        }
        if target == Target::Helm && matches!(kind, ServiceKind::Db | ServiceKind::Redis) {
            // The chart's bundled databases are not managed by dify-cfg.
            cx.missing(
                if kind == ServiceKind::Db { "database.external" } else { "redis.external" },
                "a helm site uses an external PostgreSQL and Redis: set `[database.external]` and `[redis.external]` with `host` and `port`",
            );
            continue;
        }
        let empty = ServiceLayer::default();
        let sl = sl.unwrap_or(&empty);
        memory_spans.insert(kind, sl.memory.as_ref().map(|m| m.span()));
        if let Some(service) = service(cx, kind, sl, &key, target, image(kind, decided)) {
            services.insert(kind, service);
        }
    }
    for needed in [ServiceKind::Api, ServiceKind::Worker, ServiceKind::Web] {
        if let Some(e) = service_layer(layer, needed).and_then(|s| s.enabled.as_ref())
            && !*e.get_ref()
        {
            cx.err(Diagnostic::error(Code::RequiredService, format!("Dify cannot run without `{}`", needed.key())).at(e.span()).help("only optional services (sandbox, plugin-daemon, agent-backend, ...) can be switched off"));
        }
    }
    (services, memory_spans)
}

/// Whether `kind` runs: as `enabled` says, as the setting that decides it
/// says (enabling what that setting turns off is an error), else by
/// default (recorded).
fn enabled(
    cx: &mut Cx<'_>,
    kind: ServiceKind,
    sl: Option<&ServiceLayer>,
    key: &str,
    decided: &Decided<'_>,
) -> bool {
    let decided_by: Option<(bool, &str)> = match kind {
        ServiceKind::ApiWebsocket => {
            Some((decided.features.collaboration, "features.collaboration"))
        }
        ServiceKind::Sandbox => Some((decided.features.code_execution, "features.code-execution")),
        ServiceKind::Db => Some((!decided.db_external, "database.external")),
        ServiceKind::Redis => Some((!decided.redis_external, "redis.external")),
        _ => None,
    };
    let explicit = sl.and_then(|s| s.enabled.as_ref());
    match (explicit, decided_by) {
        (Some(e), Some((implied, by))) if *e.get_ref() && !implied => {
            cx.err(
                Diagnostic::error(
                    Code::Inconsistent,
                    format!("`{key}` is enabled but `{by}` turns it off"),
                )
                .at(e.span())
                .help(format!(
                    "change `{by}` instead of enabling the service directly"
                )),
            );
            false
        }
        (Some(e), Some((implied, _))) => *e.get_ref() && implied,
        (Some(e), None) => *e.get_ref(),
        (None, Some((implied, _))) => implied,
        (None, None) => cx.default(&format!("{key}.enabled"), enabled_by_default(kind)),
    }
}

/// One running service, when its settings are valid.
fn service(
    cx: &mut Cx<'_>,
    kind: ServiceKind,
    sl: &ServiceLayer,
    key: &str,
    target: Target,
    image: ImageRef,
) -> Option<Service> {
    let memory = match &sl.memory {
        Some(_) => cx.bytes(&sl.memory, &format!("{key}.memory"), None),
        None => {
            cx.missing(&format!("{key}.memory"), &format!("every running service needs a memory limit: set `[{key}] memory = \"256MiB\"`, or `enabled = false`"));
            None
        }
    };
    let cpus = cx.cores(&sl.cpus, &format!("{key}.cpus"), Some(Millicores(1000)));
    let (memory_request, cpus_request) = requests(cx, sl, key, target, memory, cpus);
    let replicas = cx.int(&sl.replicas, &format!("{key}.replicas"), 1..=100, 1);
    let (workers, worker_connections) = workers(cx, kind, sl, key);
    let autoscaling = match &sl.autoscaling {
        None => None,
        // Point at `enabled = true` when it is there, else the table.
        Some(a) => {
            let at = a.get_ref().enabled.as_ref().map_or(a.span(), |e| e.span());
            autoscaling(cx, a.get_ref(), at, key, kind, target)
        }
    };
    let (Some(memory), Some(cpus), Some(memory_request), Some(cpus_request), Some(replicas)) =
        (memory, cpus, memory_request, cpus_request, replicas)
    else {
        return None;
    };
    Some(Service {
        kind,
        memory,
        cpus,
        memory_request,
        cpus_request,
        replicas,
        workers,
        worker_connections,
        autoscaling,
        image,
    })
}

/// Memory and CPU requests: on helm sites, each defaults to its limit and
/// may not exceed it; compose sites do not list them, and setting one is
/// an error.
fn requests(
    cx: &mut Cx<'_>,
    sl: &ServiceLayer,
    key: &str,
    target: Target,
    memory: Option<Bytes>,
    cpus: Option<Millicores>,
) -> (Option<Bytes>, Option<Millicores>) {
    // Requests matter to helm sites only; compose sites do not list them.
    let (memory_request, cpus_request) = if target == Target::Helm {
        (
            cx.bytes(&sl.memory_request, &format!("{key}.memory-request"), memory),
            cx.cores(&sl.cpus_request, &format!("{key}.cpus-request"), cpus),
        )
    } else {
        (memory, cpus)
    };
    if target == Target::Compose {
        for (v, what) in [
            (
                sl.memory_request.as_ref().map(|s| s.span()),
                "memory-request",
            ),
            (sl.cpus_request.as_ref().map(|s| s.span()), "cpus-request"),
        ] {
            if let Some(span) = v {
                cx.err(
                    Diagnostic::error(
                        Code::HelmOnly,
                        format!("`{key}.{what}` applies to helm sites only"),
                    )
                    .at(span)
                    .help("docker compose enforces limits only; remove it"),
                );
            }
        }
    }
    if let (Some(req), Some(lim), Some(s)) = (memory_request, memory, &sl.memory_request)
        && req > lim
    {
        cx.err(
            Diagnostic::error(
                Code::RequestAboveLimit,
                format!("`{key}.memory-request` ({req}) is above its limit ({lim})"),
            )
            .at(s.span())
            .help("a request may not exceed the limit"),
        );
    }
    (memory_request, cpus_request)
}

/// `workers` (api, api-websocket, worker) and `worker-connections` (api,
/// api-websocket); set on another service, each is an error.
fn workers(
    cx: &mut Cx<'_>,
    kind: ServiceKind,
    sl: &ServiceLayer,
    key: &str,
) -> (Option<u32>, Option<u32>) {
    let takes_workers = matches!(
        kind,
        ServiceKind::Api | ServiceKind::Worker | ServiceKind::ApiWebsocket
    );
    let workers = if takes_workers {
        cx.int(&sl.workers, &format!("{key}.workers"), 1..=64, 1)
    } else {
        if let Some(w) = &sl.workers {
            cx.err(Diagnostic::error(Code::NotApplicable, format!("`{key}.workers` does not apply to {}", kind.key())).at(w.span()).help("`workers` sets gunicorn workers (api, api-websocket) or Celery processes (worker)"));
        }
        None
    };
    let worker_connections = if matches!(kind, ServiceKind::Api | ServiceKind::ApiWebsocket) {
        cx.int(
            &sl.worker_connections,
            &format!("{key}.worker-connections"),
            1..=10_000,
            if kind == ServiceKind::Api { 10 } else { 1000 },
        )
    } else {
        if let Some(w) = &sl.worker_connections {
            cx.err(
                Diagnostic::error(
                    Code::NotApplicable,
                    format!("`{key}.worker-connections` applies to api and api-websocket only"),
                )
                .at(w.span())
                .help("remove it"),
            );
        }
        None
    };
    (workers, worker_connections)
}

/// The image `kind` runs: one of `[images]`, or the api or web image
/// dify-cfg builds for the release.
fn image(kind: ServiceKind, decided: &Decided<'_>) -> ImageRef {
    let images = decided.images;
    let registry = decided.registry;
    match kind {
        ServiceKind::Sandbox => images.sandbox.clone(),
        ServiceKind::PluginDaemon => images.plugin_daemon.clone(),
        ServiceKind::AgentBackend => images.agent_backend.clone(),
        ServiceKind::LocalSandbox => images.local_sandbox.clone(),
        ServiceKind::Db => images.postgres.clone(),
        ServiceKind::Redis => images.redis.clone(),
        ServiceKind::Nginx => images.nginx.clone(),
        ServiceKind::SsrfProxy => images.ssrf_proxy.clone(),
        ServiceKind::Web => ImageRef {
            repository: format!("{registry}/dify-web"),
            tag: decided.dify_version.to_string(),
            digest: None,
        },
        _ => ImageRef {
            repository: format!("{registry}/dify-api"),
            tag: decided.dify_version.to_string(),
            digest: None,
        },
    }
}

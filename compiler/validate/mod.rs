//! Stage 4: the merged layer of each site becomes a typed [`Site`], or
//! diagnostics. Defaults are applied here (and recorded, for `explain`),
//! units, names, CIDRs and ports are checked, and so are the rules that
//! keep a box alive: the memory budget, Redis headroom, secrets by
//! reference only. Fleet-wide rules (overlapping LANs) come last.

mod autoscaling;
mod budget;
mod context;
mod env;
mod external;
mod fleet;
mod gitops;
mod helm;
mod network;
mod redis;
mod secrets;
mod services;
mod sharing;

use std::collections::BTreeMap;

use crate::base::diagnostic::{Diagnostic, Diagnostics};
use crate::base::names::{is_image_repository, is_label_key};
use crate::base::source::{SourceMap, Span};
use crate::base::units::{Bytes, MIB, Millicores, parse_percent};
use crate::dify;
use crate::input::layer::{self, EvictionPolicy, ServiceLayer, Target, VectorStore};
use crate::input::resolve::ResolvedSite;
use crate::model::*;

pub use crate::base::names::{branch_prefix_problem, cluster_problem, repository_problem};
pub use env::MANAGED_ENV;
pub use fleet::validate_fleet;
pub use gitops::{DEFAULT_BRANCH_PREFIX, DEFAULT_CONFIRM_TIMEOUT, DEFAULT_PULL_INTERVAL};
pub use redis::redis_overhead;
pub use sharing::Sharing;

use autoscaling::autoscaling;
use budget::budget;
use context::Cx;
use env::env;
use external::external;
use gitops::gitops;
use helm::helm_name;
use network::network;
use secrets::{required_secrets, secrets};
use services::{enabled_by_default, service_layer};

/// A site that passed validation, with what `explain` needs to know about
/// the values nobody set.
#[derive(Debug, Clone)]
pub struct ValidSite {
    pub site: Site,
    /// Dotted key and value (in TOML notation) of each default the compiler
    /// filled in. Each pair is [`Shared`]: most sites of a fleet get the
    /// same defaults, and a pair is held once for all of them.
    pub defaults: Vec<Shared<(String, String)>>,
    /// Where the site's LAN was set, for fleet checks.
    pub lan_span: Option<Span>,
    /// The files the site was compiled from: its profiles, root first, then
    /// the site file (the manifest's inputs, with the templates).
    pub chain_files: Vec<crate::base::source::FileId>,
}

/// Validate one resolved site.
pub fn validate_site(
    rs: &ResolvedSite<'_>,
    sources: &SourceMap,
    diags: &mut Diagnostics,
) -> Option<ValidSite> {
    let before = diags.error_count();
    let layer = &rs.layer;
    let anchor = rs
        .profile_span
        .clone()
        .unwrap_or_else(|| sources.file(rs.file).whole());
    let target = layer.target.as_ref().map(|t| *t.get_ref());
    let mut cx = Cx {
        diags,
        defaults: Vec::new(),
        anchor,
        target: target.unwrap_or(Target::Compose),
    };
    if target.is_none() {
        cx.missing(
            "target",
            "set `target = \"compose\"` or `target = \"helm\"` in the site's profile",
        );
    }
    let target = cx.target;

    let description = layer
        .description
        .as_ref()
        .and_then(|d| cx.text(d, "description", 1024))
        .unwrap_or_default();

    // Release and images.
    let dify_version = match layer.dify.as_ref().and_then(|d| d.version.as_ref()) {
        Some(v) if dify::SUPPORTED_RELEASES.contains(&v.get_ref().as_str()) => v.get_ref().clone(),
        Some(v) => {
            cx.err(
                Diagnostic::error(
                    "unsupported-release",
                    format!("Dify `{}` is not a release dify-cfg knows", v.get_ref()),
                )
                .at(v.span())
                .help(format!(
                    "supported releases: {}",
                    dify::SUPPORTED_RELEASES.join(", ")
                )),
            );
            dify::SUPPORTED_RELEASES[0].to_string()
        }
        None => cx.default("dify.version", dify::SUPPORTED_RELEASES[0].to_string()),
    };
    let vector_store = match &layer.vector_store {
        Some(v) => *v.get_ref(),
        None => {
            cx.default("vector-store", "pgvector");
            VectorStore::Pgvector
        }
    };
    let defaults = dify::release_images(&dify_version);
    let il = layer.images.clone().unwrap_or_default();
    let postgres_default = if vector_store == VectorStore::Pgvector {
        &defaults.postgres_pgvector
    } else {
        &defaults.postgres
    };
    let images = Images {
        sandbox: cx.image(&il.sandbox, "images.sandbox", &defaults.sandbox),
        plugin_daemon: cx.image(
            &il.plugin_daemon,
            "images.plugin-daemon",
            &defaults.plugin_daemon,
        ),
        agent_backend: cx.image(
            &il.agent_backend,
            "images.agent-backend",
            &defaults.agent_backend,
        ),
        local_sandbox: cx.image(
            &il.local_sandbox,
            "images.local-sandbox",
            &defaults.local_sandbox,
        ),
        postgres: cx.image(&il.postgres, "images.postgres", postgres_default),
        redis: cx.image(&il.redis, "images.redis", &defaults.redis),
        nginx: cx.image(&il.nginx, "images.nginx", &defaults.nginx),
        ssrf_proxy: cx.image(&il.ssrf_proxy, "images.ssrf-proxy", &defaults.ssrf_proxy),
    };
    let bl = layer.build.clone().unwrap_or_default();
    let registry = match &bl.registry {
        Some(r) if is_image_repository(r.get_ref()) => r.get_ref().clone(),
        Some(r) => {
            cx.err(
                Diagnostic::error(
                    "invalid-image",
                    format!("`{}` is not a registry path", r.get_ref()),
                )
                .at(r.span())
                .help("write a registry and path such as `registry.example.org/dify`"),
            );
            String::new()
        }
        None => {
            cx.missing("build.registry", "set `[build] registry = \"registry.example.org/dify\"`: the api and web images dify-cfg builds are pushed there");
            String::new()
        }
    };
    let api_base = cx.image(&bl.api_base, "build.api-base", &defaults.api_base);
    if let Some(l) = &bl.api_base {
        let alpine = api_base.repository.contains("alpine") || api_base.tag.contains("alpine");
        if alpine {
            let span = l.tag.as_ref().or(l.repository.as_ref()).map(|s| s.span());
            cx.err(
                Diagnostic::warning("alpine-python", "the api's base image is Alpine (musl)")
                    .at_opt(span)
                    .help("dify-api's compiled Python wheels are built for glibc; use a slim Debian base such as `python:3.12-slim-bookworm`"),
            );
        }
    }
    let web_base = cx.image(&bl.web_base, "build.web-base", &defaults.web_base);
    let platforms = match &bl.platforms {
        Some(p) => {
            let mut out = Vec::new();
            for item in p.get_ref() {
                if ["linux/amd64", "linux/arm64"].contains(&item.get_ref().as_str()) {
                    out.push(item.get_ref().clone());
                } else {
                    cx.err(
                        Diagnostic::error(
                            "invalid-value",
                            format!("`{}` is not a platform Dify publishes", item.get_ref()),
                        )
                        .at(item.span())
                        .help("Dify builds for `linux/amd64` and `linux/arm64`"),
                    );
                }
            }
            out.sort();
            out.dedup();
            out
        }
        None => {
            let p = if target == Target::Compose {
                vec!["linux/amd64".to_string(), "linux/arm64".to_string()]
            } else {
                vec!["linux/amd64".to_string()]
            };
            cx.default("build.platforms", p)
        }
    };

    // The box.
    let device = match (&layer.device, target) {
        (None, Target::Helm) => None,
        (None, Target::Compose) => {
            cx.missing("device", "a compose site runs on one box: set `[device] memory = \"4GiB\"`, `cpus = 2`, `reserve = \"20%\"`");
            None
        }
        (Some(d), _) => {
            let memory = match &d.memory {
                Some(_) => cx.bytes(&d.memory, "device.memory", None),
                None => {
                    cx.missing(
                        "device.memory",
                        "set the box's memory, e.g. `memory = \"4GiB\"`",
                    );
                    None
                }
            };
            let cpus = match &d.cpus {
                Some(_) => cx.cores(&d.cpus, "device.cpus", None),
                None => {
                    cx.missing("device.cpus", "set the box's CPU cores, e.g. `cpus = 2`");
                    None
                }
            };
            let reserve = match &d.reserve {
                Some(r) => match parse_percent(r.get_ref()) {
                    Ok(p) if p < 100 => Some(p),
                    Ok(_) => {
                        cx.err(
                            Diagnostic::error(
                                "out-of-range",
                                "a reserve of 100% leaves nothing for the services",
                            )
                            .at(r.span())
                            .help("keep 10% to 30% for the OS and Docker, e.g. `20%`"),
                        );
                        None
                    }
                    Err(e) => {
                        cx.err(
                            Diagnostic::error("invalid-unit", e.message)
                                .at(r.span())
                                .label("`device.reserve` takes a percentage")
                                .help(e.help),
                        );
                        None
                    }
                },
                None => {
                    cx.default("device.reserve", "20%");
                    Some(20)
                }
            };
            match (memory, cpus, reserve) {
                (Some(memory), Some(cpus), Some(reserve_percent)) => Some(Device {
                    memory,
                    cpus,
                    reserve_percent,
                }),
                _ => None,
            }
        }
    };

    // Features decide some services.
    let fl = layer.features.clone().unwrap_or_default();
    let features = Features {
        collaboration: cx.flag(&fl.collaboration, "features.collaboration", false),
        code_execution: cx.flag(&fl.code_execution, "features.code-execution", true),
        marketplace: cx.flag(&fl.marketplace, "features.marketplace", true),
        plugin_debugging: cx.flag(&fl.plugin_debugging, "features.plugin-debugging", false),
    };

    // Database and Redis, external or bundled.
    let dl = layer.database.clone().unwrap_or_default();
    let rl = layer.redis.clone().unwrap_or_default();
    let db_external = dl
        .external
        .as_ref()
        .and_then(|e| external(&mut cx, e, "database.external", 5432));
    let redis_external = rl
        .external
        .as_ref()
        .and_then(|e| external(&mut cx, e, "redis.external", 6379));

    // Services.
    let mut services = BTreeMap::new();
    let mut memory_spans: BTreeMap<ServiceKind, Option<Span>> = BTreeMap::new();
    for kind in ServiceKind::ALL {
        let sl = service_layer(layer, kind);
        let key = format!("services.{}", kind.key());
        let decided_by: Option<(bool, &str)> = match kind {
            ServiceKind::ApiWebsocket => Some((features.collaboration, "features.collaboration")),
            ServiceKind::Sandbox => Some((features.code_execution, "features.code-execution")),
            ServiceKind::Db => Some((db_external.is_none(), "database.external")),
            ServiceKind::Redis => Some((redis_external.is_none(), "redis.external")),
            _ => None,
        };
        let explicit = sl.and_then(|s| s.enabled.as_ref());
        let enabled = match (explicit, decided_by) {
            (Some(e), Some((implied, by))) if *e.get_ref() && !implied => {
                cx.err(
                    Diagnostic::error(
                        "inconsistent",
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
        };
        if !enabled {
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
        let memory = match &sl.memory {
            Some(_) => cx.bytes(&sl.memory, &format!("{key}.memory"), None),
            None => {
                cx.missing(&format!("{key}.memory"), &format!("every running service needs a memory limit: set `[{key}] memory = \"256MiB\"`, or `enabled = false`"));
                None
            }
        };
        memory_spans.insert(kind, sl.memory.as_ref().map(|m| m.span()));
        let cpus = cx.cores(&sl.cpus, &format!("{key}.cpus"), Some(Millicores(1000)));
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
                            "helm-only",
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
                    "request-above-limit",
                    format!("`{key}.memory-request` ({req}) is above its limit ({lim})"),
                )
                .at(s.span())
                .help("a request may not exceed the limit"),
            );
        }
        let replicas = cx.int(&sl.replicas, &format!("{key}.replicas"), 1..=100, 1);
        let takes_workers = matches!(
            kind,
            ServiceKind::Api | ServiceKind::Worker | ServiceKind::ApiWebsocket
        );
        let workers = if takes_workers {
            cx.int(&sl.workers, &format!("{key}.workers"), 1..=64, 1)
        } else {
            if let Some(w) = &sl.workers {
                cx.err(Diagnostic::error("not-applicable", format!("`{key}.workers` does not apply to {}", kind.key())).at(w.span()).help("`workers` sets gunicorn workers (api, api-websocket) or Celery processes (worker)"));
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
                        "not-applicable",
                        format!("`{key}.worker-connections` applies to api and api-websocket only"),
                    )
                    .at(w.span())
                    .help("remove it"),
                );
            }
            None
        };
        let autoscaling = match &sl.autoscaling {
            None => None,
            // Point at `enabled = true` when it is there, else the table.
            Some(a) => {
                let at = a.get_ref().enabled.as_ref().map_or(a.span(), |e| e.span());
                autoscaling(&mut cx, a.get_ref(), at, &key, kind, target)
            }
        };
        let image = match kind {
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
                tag: dify_version.clone(),
                digest: None,
            },
            _ => ImageRef {
                repository: format!("{registry}/dify-api"),
                tag: dify_version.clone(),
                digest: None,
            },
        };
        if let (
            Some(memory),
            Some(cpus),
            Some(memory_request),
            Some(cpus_request),
            Some(replicas),
        ) = (memory, cpus, memory_request, cpus_request, replicas)
        {
            services.insert(
                kind,
                Service {
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
                },
            );
        }
    }
    for needed in [ServiceKind::Api, ServiceKind::Worker, ServiceKind::Web] {
        if let Some(e) = service_layer(layer, needed).and_then(|s| s.enabled.as_ref())
            && !*e.get_ref()
        {
            cx.err(Diagnostic::error("required-service", format!("Dify cannot run without `{}`", needed.key())).at(e.span()).help("only optional services (sandbox, plugin-daemon, agent-backend, ...) can be switched off"));
        }
    }

    // Database tuning.
    let engine = dl
        .engine
        .as_ref()
        .map(|e| *e.get_ref())
        .unwrap_or(layer::DbEngine::Postgresql);
    let database = Database {
        engine,
        external: db_external,
        max_connections: cx
            .int(
                &dl.max_connections,
                "database.max-connections",
                10..=10_000,
                100,
            )
            .unwrap_or(100),
        shared_buffers: cx
            .bytes(
                &dl.shared_buffers,
                "database.shared-buffers",
                Some(Bytes::mib(128)),
            )
            .unwrap_or_default(),
        work_mem: cx
            .bytes(&dl.work_mem, "database.work-mem", Some(Bytes::mib(4)))
            .unwrap_or_default(),
        maintenance_work_mem: cx
            .bytes(
                &dl.maintenance_work_mem,
                "database.maintenance-work-mem",
                Some(Bytes::mib(64)),
            )
            .unwrap_or_default(),
        effective_cache_size: cx
            .bytes(
                &dl.effective_cache_size,
                "database.effective-cache-size",
                Some(Bytes::mib(4096)),
            )
            .unwrap_or_default(),
        pool_size: cx
            .int(&dl.pool_size, "database.pool-size", 1..=1000, 30)
            .unwrap_or(30),
        name: "dify".to_string(),
        plugin_name: "dify_plugin".to_string(),
    };
    if let (Some(db), Some(sb)) = (services.get(&ServiceKind::Db), &dl.shared_buffers) {
        let need = Bytes(database.shared_buffers.0 + database.maintenance_work_mem.0 + 64 * MIB);
        if need > db.memory {
            cx.err(
                Diagnostic::error("db-tuning", format!("PostgreSQL's shared buffers and maintenance memory need about {need}, above the db limit of {}", db.memory))
                    .at(sb.span())
                    .help("lower `shared-buffers` (a quarter of the db limit is usual) or raise `services.db.memory`"),
            );
        }
    }

    // Redis.
    let maxmemory = cx
        .bytes(&rl.maxmemory, "redis.maxmemory", Some(Bytes::mib(256)))
        .unwrap_or_default();
    let policy = match &rl.policy {
        Some(p) => *p.get_ref(),
        None => {
            cx.default("redis.policy", "volatile-lru");
            EvictionPolicy::VolatileLru
        }
    };
    if let Some(p) = &rl.policy
        && p.get_ref().evicts_any_key()
    {
        cx.err(
                Diagnostic::warning("redis-eviction", format!("`{}` may evict Celery's queued tasks", p.get_ref().as_str()))
                    .at(p.span())
                    .label("Redis is also the Celery broker")
                    .help("use `volatile-lru`: it evicts only keys with a TTL (the cache) and leaves the task queues alone"),
            );
    }
    if let Some(redis) = services.get(&ServiceKind::Redis) {
        let need = Bytes(maxmemory.0 + redis_overhead(maxmemory).0);
        if redis.memory < need {
            let span = memory_spans.get(&ServiceKind::Redis).cloned().flatten();
            cx.err(
                Diagnostic::error(
                    "redis-overhead",
                    format!(
                        "the redis limit ({}) leaves no room above `maxmemory` ({maxmemory})",
                        redis.memory
                    ),
                )
                .at_opt(span)
                .label(format!("needs at least {need}"))
                .note(format!(
                    "Redis needs maxmemory plus {} for buffers and persistence",
                    redis_overhead(maxmemory)
                ))
                .help(format!(
                    "raise `services.redis.memory` to {need} or lower `redis.maxmemory`"
                )),
            );
        }
    }

    if target == Target::Compose && vector_store != VectorStore::Pgvector {
        let span = layer.vector_store.as_ref().map(|v| v.span());
        cx.err(
            Diagnostic::error("unsupported", format!("compose sites run the vector store in their PostgreSQL; `{}` is not available there", vector_store.as_str()))
                .at_opt(span)
                .help("use `vector-store = \"pgvector\"`"),
        );
    }

    let network = network(&mut cx, layer, target, &rs.name);
    let lan_span = layer
        .network
        .as_ref()
        .and_then(|n| n.lan.as_ref())
        .map(|l| l.span());

    let ll = layer.login.clone().unwrap_or_default();
    let login = Login {
        allow_register: cx.flag(&ll.allow_register, "login.allow-register", false),
        allow_create_workspace: cx.flag(
            &ll.allow_create_workspace,
            "login.allow-create-workspace",
            false,
        ),
        email_password: cx.flag(&ll.email_password, "login.email-password", true),
        email_code: cx.flag(&ll.email_code, "login.email-code", false),
        social_oauth: cx.flag(&ll.social_oauth, "login.social-oauth", false),
    };

    let hl = layer.helm.clone().unwrap_or_default();
    // Compose sites do not use these; do not list their defaults in `explain`.
    let mut helm_defaults = Vec::new();
    if target == Target::Compose {
        std::mem::swap(&mut helm_defaults, &mut cx.defaults);
    }
    let helm = Helm {
        namespace: helm_name(&mut cx, &hl.namespace, "helm.namespace", "dify"),
        secret_store: helm_name(
            &mut cx,
            &hl.secret_store,
            "helm.secret-store",
            "dify-secrets",
        ),
        secret_store_kind: match &hl.secret_store_kind {
            Some(k) if ["SecretStore", "ClusterSecretStore"].contains(&k.get_ref().as_str()) => {
                k.get_ref().clone()
            }
            Some(k) => {
                cx.err(
                    Diagnostic::error(
                        "invalid-value",
                        format!("`{}` is not a secret store kind", k.get_ref()),
                    )
                    .at(k.span())
                    .help("use `SecretStore` or `ClusterSecretStore`"),
                );
                String::new()
            }
            None => cx.default("helm.secret-store-kind", "ClusterSecretStore".to_string()),
        },
        ingress_class: hl
            .ingress_class
            .as_ref()
            .map(|c| helm_name(&mut cx, &Some(c.clone()), "helm.ingress-class", "")),
    };
    if target == Target::Compose {
        std::mem::swap(&mut helm_defaults, &mut cx.defaults);
    }
    if target == Target::Compose && layer.helm.is_some() {
        // Harmless, but probably a profile meant for the other target.
        cx.err(
            Diagnostic::warning("helm-only", "`[helm]` has no effect on a compose site")
                .at(cx.anchor.clone())
                .help("remove `[helm]` from the chain of this site"),
        );
    }

    let env = env(&mut cx, layer);
    let secrets = secrets(&mut cx, layer, target);

    let wave = match layer.rollout.as_ref().and_then(|r| r.wave.as_ref()) {
        Some(w) if (1..=100).contains(w.get_ref()) => *w.get_ref() as u32,
        Some(w) => {
            cx.err(
                Diagnostic::error(
                    "out-of-range",
                    format!("wave {} is outside 1..=100", w.get_ref()),
                )
                .at(w.span())
                .help("wave 1 is the canary; later waves follow"),
            );
            1
        }
        None => cx.default("rollout.wave", 1u32),
    };

    let mut labels = BTreeMap::new();
    for (k, v) in layer.labels.iter().flatten() {
        if !is_label_key(k.get_ref()) {
            cx.err(
                Diagnostic::error(
                    "invalid-name",
                    format!("`{}` is not a valid label name", k.get_ref()),
                )
                .at(k.span())
                .help("label names are lower-case letters, digits, `-`, `.` and `_`, at most 63"),
            );
            continue;
        }
        if let Some(text) = cx.text(v, &format!("labels.{}", k.get_ref()), 256) {
            labels.insert(k.get_ref().clone(), text);
        }
    }

    let gitops = gitops(&mut cx, layer, target);

    // The memory budget of the box.
    if let Some(device) = &device {
        budget(
            &mut cx,
            device,
            &services,
            &memory_spans,
            sources,
            &rs.chain_files,
        );
    }

    let (Some(network), Some(gitops), true) = (network, gitops, cx.diags.error_count() == before)
    else {
        return None;
    };
    let site = Site {
        name: rs.name.clone(),
        file: sources.file(rs.file).path.clone(),
        profile_chain: rs.chain.clone().into(),
        description,
        target,
        dify_version,
        images: images.into(),
        build: Build {
            registry,
            api_base,
            web_base,
            platforms,
        }
        .into(),
        device,
        services: services.into(),
        database: database.into(),
        redis: Redis {
            maxmemory,
            policy,
            external: redis_external,
        }
        .into(),
        vector_store,
        network,
        login,
        features,
        helm: helm.into(),
        env: env.into(),
        secrets: secrets.into(),
        wave,
        labels,
        gitops: gitops.into(),
    };
    for (name, why) in required_secrets(&site) {
        let needs_db = name != "DB_PASSWORD"
            || site.database.external.is_some()
            || site.services.contains_key(&ServiceKind::Db);
        if needs_db && !site.secrets.contains_key(name) {
            cx.err(
                Diagnostic::error("missing-secret", format!("secret `{name}` is not given: {why}"))
                    .at(cx.anchor.clone())
                    .help(match target {
                        Target::Compose => format!("add `{name} = {{ env = \"{name}\" }}` under `[secrets]`"),
                        Target::Helm => format!("add `{name} = {{ remote = \"dify/...\", property = \"...\" }}` under `[secrets]`"),
                    }),
            );
        }
    }
    // A secret file reaches only the services that can read one.
    for (name, kind) in crate::plan::unsupported_file_secrets(&site) {
        let span = layer
            .secrets
            .iter()
            .flatten()
            .find(|(k, _)| k.get_ref() == &name)
            .map(|(_, v)| v.span());
        cx.err(
            Diagnostic::error("secret-ref", format!("`{name}` is read from a file, but the {} service reads it only from its environment", kind.key()))
                .at_opt(span)
                .help(format!("give `{name}` as `{{ env = \"VAR\" }}`: the {} image has no way to read a secret file", kind.key())),
        );
    }
    if cx.diags.error_count() != before {
        return None;
    }
    let mut defaults = cx.defaults;
    defaults.shrink_to_fit();
    Some(ValidSite {
        site,
        defaults,
        lan_span,
        chain_files: rs.chain_files.clone(),
    })
}

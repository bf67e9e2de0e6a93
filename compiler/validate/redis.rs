//! `[redis]`: `maxmemory` and the eviction policy (one that may evict
//! Celery's queued tasks is warned about), and the headroom the redis
//! service needs above `maxmemory`.

use std::collections::BTreeMap;

use super::context::Cx;
use super::services::MemorySpans;
use crate::base::codes::Code;
use crate::base::diagnostic::Diagnostic;
use crate::base::units::{Bytes, MIB};
use crate::input::layer::{EvictionPolicy, Layer};
use crate::model::*;

/// Redis needs room beyond `maxmemory` for buffers, fragmentation and
/// copy-on-write while persisting: a quarter of `maxmemory`, at least 32 MiB.
pub fn redis_overhead(maxmemory: Bytes) -> Bytes {
    Bytes((maxmemory.0 / 4).max(32 * MIB))
}

/// `[redis]`, with the external server (already read); the bundled redis
/// service's limit must leave room above `maxmemory`.
pub(super) fn redis(
    cx: &mut Cx<'_>,
    layer: &Layer,
    external: Option<External>,
    services: &BTreeMap<ServiceKind, Service>,
    memory_spans: &MemorySpans,
) -> Redis {
    let rl = layer.redis.clone().unwrap_or_default();
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
                Diagnostic::warning(Code::RedisEviction, format!("`{}` may evict Celery's queued tasks", p.get_ref().as_str()))
                    .at(p.span())
                    .label("Redis is also the Celery broker")
                    .help("use `volatile-lru`: it evicts only keys with a TTL (the cache) and leaves the task queues alone"),
            );
    }
    headroom(cx, maxmemory, services, memory_spans);
    Redis {
        maxmemory,
        policy,
        external,
    }
}

/// The redis service's memory limit must hold `maxmemory` and
/// [`redis_overhead`].
fn headroom(
    cx: &mut Cx<'_>,
    maxmemory: Bytes,
    services: &BTreeMap<ServiceKind, Service>,
    memory_spans: &MemorySpans,
) {
    if let Some(redis) = services.get(&ServiceKind::Redis) {
        let need = Bytes(maxmemory.0 + redis_overhead(maxmemory).0);
        if redis.memory < need {
            let span = memory_spans.get(&ServiceKind::Redis).cloned().flatten();
            cx.err(
                Diagnostic::error(
                    Code::RedisOverhead,
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
}

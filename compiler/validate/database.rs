//! PostgreSQL: the vector store (compose sites keep it in their
//! PostgreSQL), `[database]` tuning and whether the tuning fits the db
//! service's memory limit.

use std::collections::BTreeMap;

use super::context::Cx;
use crate::base::codes::Code;
use crate::base::diagnostic::Diagnostic;
use crate::base::units::{Bytes, MIB};
use crate::input::layer::{self, Layer, Target, VectorStore};
use crate::model::*;

/// `vector-store`: pgvector by default.
pub(super) fn vector_store(cx: &mut Cx<'_>, layer: &Layer) -> VectorStore {
    match &layer.vector_store {
        Some(v) => *v.get_ref(),
        None => {
            cx.default("vector-store", "pgvector");
            VectorStore::Pgvector
        }
    }
}

/// A compose site runs its vector store in its own PostgreSQL: pgvector.
pub(super) fn vector_store_fits(
    cx: &mut Cx<'_>,
    layer: &Layer,
    target: Target,
    vector_store: VectorStore,
) {
    if target == Target::Compose && vector_store != VectorStore::Pgvector {
        let span = layer.vector_store.as_ref().map(|v| v.span());
        cx.err(
            Diagnostic::error(Code::Unsupported, format!("compose sites run the vector store in their PostgreSQL; `{}` is not available there", vector_store.as_str()))
                .at_opt(span)
                .help("use `vector-store = \"pgvector\"`"),
        );
    }
}

/// `[database]`: the engine, the external server (already read) and the
/// tuning, each setting defaulted; the bundled db must have room for its
/// shared buffers and maintenance memory.
pub(super) fn database(
    cx: &mut Cx<'_>,
    layer: &Layer,
    external: Option<External>,
    services: &BTreeMap<ServiceKind, Service>,
) -> Database {
    let dl = layer.database.clone().unwrap_or_default();
    let engine = dl
        .engine
        .as_ref()
        .map(|e| *e.get_ref())
        .unwrap_or(layer::DbEngine::Postgresql);
    let database = Database {
        engine,
        external,
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
        max_overflow: cx
            .int(&dl.max_overflow, "database.max-overflow", 0..=1000, 10)
            .unwrap_or(10),
        vector_connections: cx
            .int(
                &dl.vector_connections,
                "database.vector-connections",
                1..=1000,
                5,
            )
            .unwrap_or(5),
        plugin_connections: cx
            .int(
                &dl.plugin_connections,
                "database.plugin-connections",
                1..=1000,
                30,
            )
            .unwrap_or(30),
        name: "dify".to_string(),
        plugin_name: "dify_plugin".to_string(),
    };
    if let (Some(db), Some(sb)) = (services.get(&ServiceKind::Db), &dl.shared_buffers) {
        let need = Bytes(database.shared_buffers.0 + database.maintenance_work_mem.0 + 64 * MIB);
        if need > db.memory {
            cx.err(
                Diagnostic::error(Code::DbTuning, format!("PostgreSQL's shared buffers and maintenance memory need about {need}, above the db limit of {}", db.memory))
                    .at(sb.span())
                    .help("lower `shared-buffers` (a quarter of the db limit is usual) or raise `services.db.memory`"),
            );
        }
    }
    database
}

//! The connection budget of a site's PostgreSQL: the pools its services may
//! open, at their largest (every replica the autoscaler may add, every
//! worker process, each pool full and overflowing), must fit
//! `max-connections` less a reserve. Checked like the memory budget; a
//! database that runs out of connections fails requests at random under
//! load, long after the change that caused it was merged.

use std::collections::BTreeMap;

use super::context::Cx;
use crate::base::codes::Code;
use crate::base::diagnostic::Diagnostic;
use crate::base::source::{SourceMap, Span};
use crate::dify;
use crate::input::layer::{DatabaseLayer, Layer};
use crate::model::*;

/// Connections kept free for what is not a service's pool: operators'
/// `psql` sessions, backups, health checks and `flask upgrade-db`, which
/// opens its own. A tenth of `max-connections`, and never fewer than this.
pub(super) const MIN_RESERVE: u32 = 5;

/// The connections left to the services' pools.
pub(super) fn available(max_connections: u32) -> (u32, u32) {
    let reserve = max_connections.div_ceil(10).max(MIN_RESERVE);
    (reserve, max_connections.saturating_sub(reserve))
}

/// One service's share: `processes` each opening up to `per_process`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Share {
    pub(super) service: ServiceKind,
    pub(super) processes: u32,
    pub(super) per_process: u32,
    /// How `per_process` is made up, e.g. "pool 10 + overflow 2 + pgvector 3".
    pub(super) makeup: String,
    /// Why `processes` is what it is, e.g. "2 workers x 6 replicas (autoscaling max)".
    pub(super) why: String,
}

impl Share {
    pub(super) fn total(&self) -> u32 {
        self.processes.saturating_mul(self.per_process)
    }
}

/// Replicas at their most: the autoscaler's maximum where it runs.
fn replicas(s: &Service) -> (u32, String) {
    match s.autoscaling {
        Some(a) => (
            a.max_replicas,
            format!("{} replicas (autoscaling max)", a.max_replicas),
        ),
        None if s.replicas == 1 => (1, "1 replica".into()),
        None => (s.replicas, format!("{} replicas", s.replicas)),
    }
}

/// Every service's share of the database's connections.
pub(super) fn shares(
    services: &BTreeMap<ServiceKind, Service>,
    db: &Database,
    vector_store: VectorStore,
) -> Vec<Share> {
    let pgvector = vector_store == VectorStore::Pgvector;
    let pool = db.pool_size.saturating_add(db.max_overflow);
    let sqlalchemy = format!("pool {} + overflow {}", db.pool_size, db.max_overflow);
    let with_vector = |base: u32, text: &str| {
        if pgvector {
            (
                base.saturating_add(db.vector_connections),
                format!("{text} + pgvector {}", db.vector_connections),
            )
        } else {
            (base, text.to_string())
        }
    };
    let mut out = Vec::new();
    for s in services.values() {
        let (replicas, replicas_why) = replicas(s);
        let (processes, why, (per_process, makeup)) = match s.kind {
            ServiceKind::Api => {
                let workers = s.workers.unwrap_or(1);
                (
                    workers.saturating_mul(replicas),
                    format!(
                        "{workers} gunicorn worker{} x {replicas_why}",
                        if workers == 1 { "" } else { "s" }
                    ),
                    with_vector(pool, &sqlalchemy),
                )
            }
            // A gevent pool: one process whatever its concurrency.
            ServiceKind::Worker => (
                replicas,
                format!("1 gevent process x {replicas_why}"),
                with_vector(pool, &sqlalchemy),
            ),
            ServiceKind::ApiWebsocket => (
                replicas,
                format!("1 process x {replicas_why}"),
                (pool, sqlalchemy.clone()),
            ),
            ServiceKind::WorkerBeat => (
                replicas,
                format!("1 process x {replicas_why}"),
                (
                    dify::BEAT_POOL_SIZE + dify::BEAT_MAX_OVERFLOW,
                    format!(
                        "pool {} + overflow {} (beat only schedules)",
                        dify::BEAT_POOL_SIZE,
                        dify::BEAT_MAX_OVERFLOW
                    ),
                ),
            ),
            ServiceKind::PluginDaemon => (
                replicas,
                format!("1 process x {replicas_why}"),
                (
                    db.plugin_connections,
                    format!("at most {} open", db.plugin_connections),
                ),
            ),
            _ => continue,
        };
        out.push(Share {
            service: s.kind,
            processes,
            per_process,
            makeup,
            why,
        });
    }
    out
}

/// The connections every pool may open together.
pub(super) fn sum(shares: &[Share]) -> u32 {
    shares.iter().map(Share::total).fold(0, u32::saturating_add)
}

/// The pools must fit `max-connections` less the reserve.
pub(super) fn budget(
    cx: &mut Cx<'_>,
    layer: &Layer,
    services: &BTreeMap<ServiceKind, Service>,
    db: &Database,
    vector_store: VectorStore,
    sources: &SourceMap,
) {
    let shares = shares(services, db, vector_store);
    let total = sum(&shares);
    let (reserve, available) = available(db.max_connections);
    if total <= available {
        return;
    }
    let dl = layer.database.clone().unwrap_or_default();
    let at = |span: Option<Span>| {
        span.map(|sp| sources.location(&sp).to_string())
            .unwrap_or_else(|| "default".into())
    };
    let mut table = String::from("connection budget of this site's PostgreSQL:\n");
    table.push_str(&format!(
        "  {:<15} {:>9} {:>11} {:>6}  {}\n",
        "service", "processes", "per process", "total", "made of"
    ));
    for s in &shares {
        table.push_str(&format!(
            "  {:<15} {:>9} {:>11} {:>6}  {}; {}\n",
            s.service.key(),
            s.processes,
            s.per_process,
            s.total(),
            s.makeup,
            s.why
        ));
    }
    table.push_str(&format!("  {:<15} {:>28}\n", "sum", total));
    table.push_str(&format!(
        "  {:<15} {:>28}  (max-connections {} less a reserve of {})\n",
        "budget", available, db.max_connections, reserve
    ));
    table.push_str(&format!("  {:<15} {:>28}\n", "over by", total - available));
    table.push_str(&settings_at(&dl, &at));
    let mut d = Diagnostic::error(
            Code::ConnectionBudget,
            format!(
                "the services' database pools may open {total} connections but PostgreSQL allows them {available}"
            ),
        )
        .note(table.trim_end().to_string())
        .help("raise `database.max-connections` (each connection costs PostgreSQL memory), or lower `database.pool-size`, `max-overflow`, `vector-connections` or `plugin-connections`, or the api's workers and replicas");
    // Point at the limit, else at the pool: the likeliest edits.
    if let Some(m) = &dl.max_connections {
        d = d.at(m.span()).label("the database's connection limit");
    } else if let Some(p) = &dl.pool_size {
        d = d.at(p.span()).label("each process's pool");
    } else {
        d = d
            .at(cx.anchor.clone())
            .label("this site's services, at their defaults");
    }
    cx.err(d);
}

/// Where each pool setting was made, for the table's last lines.
fn settings_at(dl: &DatabaseLayer, at: &dyn Fn(Option<Span>) -> String) -> String {
    let rows = [
        (
            "max-connections",
            dl.max_connections.as_ref().map(|v| v.span()),
        ),
        ("pool-size", dl.pool_size.as_ref().map(|v| v.span())),
        ("max-overflow", dl.max_overflow.as_ref().map(|v| v.span())),
        (
            "vector-connections",
            dl.vector_connections.as_ref().map(|v| v.span()),
        ),
        (
            "plugin-connections",
            dl.plugin_connections.as_ref().map(|v| v.span()),
        ),
    ];
    let mut out = String::from("  set at:");
    for (key, span) in rows {
        out.push_str(&format!("\n    database.{key}: {}", at(span)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::fixtures;

    #[test]
    fn the_reserve_is_a_tenth_and_at_least_five() {
        assert_eq!(available(60), (6, 54));
        assert_eq!(available(30), (5, 25));
        assert_eq!(available(500), (50, 450));
        assert_eq!(available(3), (5, 0));
    }

    #[test]
    fn an_edge_site_counts_every_pool_once_per_process() {
        let site = fixtures::edge();
        let shares = shares(&site.services, &site.database, site.vector_store);
        let by = |k| shares.iter().find(|s| s.service == k).unwrap().clone();
        // pool 10 + overflow 2 + pgvector 3, one gunicorn worker.
        assert_eq!(by(ServiceKind::Api).total(), 15);
        assert_eq!(by(ServiceKind::Worker).total(), 15);
        assert_eq!(by(ServiceKind::WorkerBeat).total(), 2);
        assert_eq!(by(ServiceKind::PluginDaemon).total(), 10);
        assert!(!shares.iter().any(|s| s.service == ServiceKind::Redis));
    }

    #[test]
    fn autoscaling_counts_its_maximum_and_workers_multiply() {
        let mut site = fixtures::edge();
        let mut services = (*site.services).clone();
        let api = services.get_mut(&ServiceKind::Api).unwrap();
        api.workers = Some(2);
        api.autoscaling = Some(Autoscaling {
            min_replicas: 2,
            max_replicas: 6,
            target_cpu_percent: 70,
        });
        site.services = services.into();
        let shares = shares(&site.services, &site.database, VectorStore::Weaviate);
        let api = shares
            .iter()
            .find(|s| s.service == ServiceKind::Api)
            .unwrap();
        assert_eq!((api.processes, api.per_process), (12, 12));
        assert_eq!(api.why, "2 gunicorn workers x 6 replicas (autoscaling max)");
    }
}

//! The memory budget of a compose box: the services' limits must fit the
//! device less its reserve.

use std::collections::BTreeMap;

use super::context::Cx;
use crate::base::codes::Code;
use crate::base::diagnostic::Diagnostic;
use crate::base::source::{SourceMap, Span};
use crate::base::units::Bytes;
use crate::model::*;

/// What the services on the box may use: every limit times its replicas.
pub(super) fn memory_used(services: &BTreeMap<ServiceKind, Service>) -> Bytes {
    Bytes(
        services
            .values()
            .map(|s| s.memory.0.saturating_mul(u64::from(s.replicas)))
            .fold(0, u64::saturating_add),
    )
}

/// The sum of the memory limits of everything on the box must fit the
/// device less its reserve.
pub(super) fn budget(
    cx: &mut Cx<'_>,
    device: &Device,
    services: &BTreeMap<ServiceKind, Service>,
    spans: &BTreeMap<ServiceKind, Option<Span>>,
    sources: &SourceMap,
    chain_files: &[crate::base::source::FileId],
) {
    let total = memory_used(services).0;
    let budget = device.budget();
    if total <= budget.0 {
        return;
    }
    // Point at the memory setting made in the most specific file (the site,
    // then its profile, ...), the largest there: the likeliest edit.
    let rank = |span: &Span| {
        let id = sources.lookup(span.start);
        chain_files.iter().position(|f| *f == id).unwrap_or(0)
    };
    let culprit = services
        .values()
        .filter_map(|s| {
            spans
                .get(&s.kind)
                .cloned()
                .flatten()
                .map(|sp| (rank(&sp), s.memory, sp))
        })
        .max_by_key(|(r, m, _)| (*r, *m))
        .map(|(_, _, sp)| sp);
    let mut table = String::from("memory budget of this box:\n");
    table.push_str(&format!(
        "  {:<15} {:>10} {:>9}  {}\n",
        "service", "limit", "replicas", "set at"
    ));
    for s in services.values() {
        let at = spans
            .get(&s.kind)
            .cloned()
            .flatten()
            .map(|sp| sources.location(&sp).to_string())
            .unwrap_or_else(|| "-".into());
        table.push_str(&format!(
            "  {:<15} {:>10} {:>9}  {}\n",
            s.kind.key(),
            s.memory.human(),
            s.replicas,
            at
        ));
    }
    table.push_str(&format!("  {:<15} {:>10}\n", "sum", Bytes(total).human()));
    table.push_str(&format!(
        "  {:<15} {:>10}  ({} less {}% reserve)\n",
        "budget",
        budget.human(),
        device.memory.human(),
        device.reserve_percent
    ));
    table.push_str(&format!(
        "  {:<15} {:>10}",
        "over by",
        Bytes(total - budget.0).human_approx()
    ));
    cx.err(
        Diagnostic::error(Code::MemoryBudget, format!("the services need {} but the box has {} for them", Bytes(total).human_approx(), budget.human_approx()))
            .at_opt(culprit)
            .label("the most specific memory setting of this site")
            .note(table)
            .help("lower service limits, switch optional services off (`enabled = false`), or reduce `device.reserve`"),
    );
}

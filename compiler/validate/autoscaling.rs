//! `[services.*.autoscaling]`: the chart's horizontal autoscaler, on helm
//! sites and the services the chart autoscales.

use super::context::Cx;
use crate::base::codes::Code;
use crate::base::diagnostic::Diagnostic;
use crate::base::source::Span;
use crate::base::units::parse_percent;
use crate::input::layer::{self, Target};
use crate::model::*;

/// A service's autoscaling, when it applies, is not switched off and its
/// settings are valid; `anchor` is where to point at the table.
pub(super) fn autoscaling(
    cx: &mut Cx<'_>,
    a: &layer::AutoscalingLayer,
    anchor: Span,
    key: &str,
    kind: ServiceKind,
    target: Target,
) -> Option<Autoscaling> {
    if target == Target::Compose {
        cx.err(
            Diagnostic::error(
                Code::HelmOnly,
                format!("`{key}.autoscaling` applies to helm sites only"),
            )
            .at(anchor)
            .help("a compose site runs a fixed number of replicas; set `replicas`"),
        );
        return None;
    }
    if !matches!(
        kind,
        ServiceKind::Api | ServiceKind::Worker | ServiceKind::Web | ServiceKind::Sandbox
    ) {
        cx.err(
            Diagnostic::error(
                Code::NotApplicable,
                format!(
                    "the chart autoscales api, worker, web and sandbox, not {}",
                    kind.key()
                ),
            )
            .at(anchor)
            .help("remove `autoscaling` here"),
        );
        return None;
    }
    if a.enabled.as_ref().is_some_and(|e| !*e.get_ref()) {
        return None;
    }
    let min = cx.int(
        &a.min_replicas,
        &format!("{key}.autoscaling.min-replicas"),
        1..=1000,
        1,
    )?;
    let max = cx.int(
        &a.max_replicas,
        &format!("{key}.autoscaling.max-replicas"),
        1..=1000,
        3,
    )?;
    let target_cpu = match &a.target_cpu {
        Some(t) => match parse_percent(t.get_ref()) {
            Ok(p) if p > 0 => p,
            Ok(_) | Err(_) => {
                cx.err(
                    Diagnostic::error(
                        Code::InvalidUnit,
                        format!("`{}` is not a CPU target", t.get_ref()),
                    )
                    .at(t.span())
                    .help("write a percentage from 1% to 100%, e.g. `70%`"),
                );
                return None;
            }
        },
        None => {
            cx.default(&format!("{key}.autoscaling.target-cpu"), "70%");
            70
        }
    };
    if min > max {
        let span = a.min_replicas.as_ref().map(|m| m.span()).unwrap_or(anchor);
        cx.err(
            Diagnostic::error(
                Code::OutOfRange,
                format!("min-replicas ({min}) is above max-replicas ({max})"),
            )
            .at(span)
            .help("min-replicas must not exceed max-replicas"),
        );
        return None;
    }
    Some(Autoscaling {
        min_replicas: min,
        max_replicas: max,
        target_cpu_percent: target_cpu,
    })
}

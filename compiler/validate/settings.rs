//! The small settings of a site that are read as they are: `description`,
//! `[features]`, `[login]`, the rollout wave and `labels`.

use std::collections::BTreeMap;

use super::context::Cx;
use crate::base::codes::Code;
use crate::base::diagnostic::Diagnostic;
use crate::base::names::is_label_key;
use crate::input::layer::Layer;
use crate::model::*;

/// `description`: one line of text, empty when unset.
pub(super) fn description(cx: &mut Cx<'_>, layer: &Layer) -> String {
    layer
        .description
        .as_ref()
        .and_then(|d| cx.text(d, "description", 1024))
        .unwrap_or_default()
}

/// `[features]`: they decide some services.
pub(super) fn features(cx: &mut Cx<'_>, layer: &Layer) -> Features {
    let fl = layer.features.clone().unwrap_or_default();
    Features {
        collaboration: cx.flag(&fl.collaboration, "features.collaboration", false),
        code_execution: cx.flag(&fl.code_execution, "features.code-execution", true),
        marketplace: cx.flag(&fl.marketplace, "features.marketplace", true),
        plugin_debugging: cx.flag(&fl.plugin_debugging, "features.plugin-debugging", false),
    }
}

/// `[login]`: how users may sign in and sign up.
pub(super) fn login(cx: &mut Cx<'_>, layer: &Layer) -> Login {
    let ll = layer.login.clone().unwrap_or_default();
    Login {
        allow_register: cx.flag(&ll.allow_register, "login.allow-register", false),
        allow_create_workspace: cx.flag(
            &ll.allow_create_workspace,
            "login.allow-create-workspace",
            false,
        ),
        email_password: cx.flag(&ll.email_password, "login.email-password", true),
        email_code: cx.flag(&ll.email_code, "login.email-code", false),
        social_oauth: cx.flag(&ll.social_oauth, "login.social-oauth", false),
    }
}

/// `rollout.wave`: 1 (the canary) to 100; 1 by default.
pub(super) fn wave(cx: &mut Cx<'_>, layer: &Layer) -> u32 {
    match layer.rollout.as_ref().and_then(|r| r.wave.as_ref()) {
        Some(w) if (1..=100).contains(w.get_ref()) => *w.get_ref() as u32,
        Some(w) => {
            cx.err(
                Diagnostic::error(
                    Code::OutOfRange,
                    format!("wave {} is outside 1..=100", w.get_ref()),
                )
                .at(w.span())
                .help("wave 1 is the canary; later waves follow"),
            );
            1
        }
        None => cx.default("rollout.wave", 1u32),
    }
}

/// `labels`: label names and one-line values.
pub(super) fn labels(cx: &mut Cx<'_>, layer: &Layer) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    for (k, v) in layer.labels.iter().flatten() {
        if !is_label_key(k.get_ref()) {
            cx.err(
                Diagnostic::error(
                    Code::InvalidName,
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
    labels
}

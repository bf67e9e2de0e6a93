//! `[env]`: Dify's plain settings, by name; no secrets (by name here; by
//! value, such as URLs with a password, in `input::literals`), nothing dify-cfg derives from typed keys ([`MANAGED_ENV`]) or
//! fixes ([`FIXED_ENV`]).

use std::collections::BTreeMap;

use super::context::Cx;
use crate::base::codes::Code;
use crate::base::credentials::credential_in;
use crate::base::diagnostic::{Diagnostic, did_you_mean};
use crate::base::names::is_bidi_control;
use crate::base::source::Span;
use crate::dify;
use crate::input::layer::Layer;

/// Settings the compiler derives from typed keys; `[env]` may not set them.
pub const MANAGED_ENV: &[(&str, &str)] = &[
    ("MODE", "the service (set per service)"),
    ("DB_TYPE", "database.engine"),
    ("DB_HOST", "database.external.host"),
    ("DB_PORT", "database.external.port"),
    ("DB_DATABASE", "database.external.database"),
    ("VECTOR_STORE", "vector-store"),
    ("SERVER_WORKER_AMOUNT", "services.api.workers"),
    (
        "SERVER_WORKER_CONNECTIONS",
        "services.api.worker-connections",
    ),
    ("CELERY_WORKER_AMOUNT", "services.worker.workers"),
    ("ALLOW_REGISTER", "login.allow-register"),
    ("ALLOW_CREATE_WORKSPACE", "login.allow-create-workspace"),
    ("ENABLE_EMAIL_PASSWORD_LOGIN", "login.email-password"),
    ("ENABLE_EMAIL_CODE_LOGIN", "login.email-code"),
    ("ENABLE_SOCIAL_OAUTH_LOGIN", "login.social-oauth"),
    ("ENABLE_COLLABORATION_MODE", "features.collaboration"),
    ("MARKETPLACE_ENABLED", "features.marketplace"),
    ("POSTGRES_MAX_CONNECTIONS", "database.max-connections"),
    ("POSTGRES_SHARED_BUFFERS", "database.shared-buffers"),
    ("POSTGRES_WORK_MEM", "database.work-mem"),
    (
        "POSTGRES_MAINTENANCE_WORK_MEM",
        "database.maintenance-work-mem",
    ),
    (
        "POSTGRES_EFFECTIVE_CACHE_SIZE",
        "database.effective-cache-size",
    ),
    ("SQLALCHEMY_POOL_SIZE", "database.pool-size"),
    ("SQLALCHEMY_MAX_OVERFLOW", "database.max-overflow"),
    ("PGVECTOR_MAX_CONNECTION", "database.vector-connections"),
    ("NGINX_PORT", "network.http-port"),
    ("NGINX_SERVER_NAME", "network.hostname"),
];

/// Settings dify-cfg fixes, with why: the rest of the site depends on them
/// (a site that moved the api to another port would pass every parser and
/// never become healthy).
const FIXED_ENV: &[(&str, &str)] = &[
    (
        "DIFY_PORT",
        "the api listens on 5001: nginx, the health check and the plugin daemon reach it there",
    ),
    (
        "DIFY_BIND_ADDRESS",
        "the api listens on every address of its container, where nginx and the health check reach it",
    ),
];

/// Why `[env]` may not set `name`, and what to do instead: dify-cfg
/// derives it from a typed key ([`MANAGED_ENV`]) or fixes it
/// ([`FIXED_ENV`]).
fn set_by_dify_cfg(name: &str) -> Option<(String, String)> {
    if let Some((_, key)) = MANAGED_ENV.iter().find(|(n, _)| *n == name) {
        return Some((
            format!("`{name}` is set by dify-cfg from `{key}`"),
            format!("set `{key}` instead"),
        ));
    }
    FIXED_ENV.iter().find(|(n, _)| *n == name).map(|(_, why)| {
        (
            format!("`{name}` is fixed by dify-cfg: {why}"),
            format!("remove `{name}` from `[env]`"),
        )
    })
}

/// Whether the site's release reads the setting `name` (a key of `[env]`
/// or `[secrets]`, at `span`); an `unknown-env` error when it does not,
/// saying which release does when another one reads it. `example` ends
/// the help when no name is close.
pub(super) fn known_name(
    cx: &mut Cx<'_>,
    release: &str,
    name: &str,
    span: Span,
    example: &str,
) -> bool {
    let names = dify::release_env_names(release);
    if names.contains(name) {
        return true;
    }
    let d = match dify::first_release_reading(name) {
        Some(first) => Diagnostic::error(
            Code::UnknownEnv,
            format!("`{name}` is not a setting Dify {release} reads"),
        )
        .at(span)
        .label(format!("read from Dify {first} on"))
        .help(format!(
            "remove it, or move the site to Dify {first} (`[dify] version`)"
        )),
        None => {
            let d = Diagnostic::error(
                Code::UnknownEnv,
                format!("`{name}` is not a setting Dify knows"),
            )
            .at(span)
            .label("not in Dify's settings");
            match did_you_mean(name, names.iter().copied()) {
                Some(s) => d.help(format!("did you mean `{s}`?")),
                None => d.help(example.to_string()),
            }
        }
    };
    cx.err(d);
    false
}

/// `[env]`: the settings that may be written in a file, by name.
pub(super) fn env(cx: &mut Cx<'_>, layer: &Layer, release: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in layer.env.iter().flatten() {
        let name = k.get_ref();
        let example = "`[env]` takes the names of Dify's settings, e.g. `LOG_LEVEL`";
        if !known_name(cx, release, name, k.span(), example) {
            continue;
        }
        let value = v.get_ref().render();
        // A value that looks like a credential was refused where it is
        // written (`input::literals`).
        if credential_in(&value).is_some() {
            continue;
        }
        if dify::is_secret_name(name) {
            cx.err(
                Diagnostic::error(
                    Code::LiteralSecret,
                    format!("`{name}` is a secret and may not be written in a file"),
                )
                .at(v.span())
                .label("a literal secret")
                .help(format!(
                    "move it to `[secrets]` as a reference: `{name} = {{ env = \"{name}\" }}`"
                )),
            );
            continue;
        }
        if let Some((message, help)) = set_by_dify_cfg(name) {
            cx.err(
                Diagnostic::error(Code::EnvConflict, message)
                    .at(k.span())
                    .help(help),
            );
            continue;
        }
        if let Some(c) = value
            .chars()
            .find(|c| (c.is_control() && *c != '\t') || is_bidi_control(*c))
        {
            cx.err(
                Diagnostic::error(
                    Code::InvalidText,
                    format!(
                        "the value of `{name}` contains the control character U+{:04X}",
                        c as u32
                    ),
                )
                .at(v.span())
                .help("environment values are written on one line"),
            );
            continue;
        }
        if let Some(d) = unbuilt_target(name, &value, v.span()) {
            cx.err(d);
            continue;
        }
        out.insert(name.clone(), value);
    }
    out
}

/// The web image dify-cfg builds holds the Next.js server only: the
/// setting that makes Dify's entrypoint start the vinext target instead
/// would start a server that is not there.
fn unbuilt_target(name: &str, value: &str, span: std::ops::Range<usize>) -> Option<Diagnostic> {
    let on = |w: &dify::build::WebLayout| w.vinext_switch == name && w.vinext_on == value.trim();
    dify::build::LAYOUTS.iter().any(|l| on(&l.web)).then(|| {
        Diagnostic::error(
            Code::Unsupported,
            format!("`{name} = {value}` starts the vinext server, which the web image dify-cfg builds does not hold"),
        )
        .at(span)
        .label("the image holds the Next.js server only")
        .help(format!("remove `{name}` (the image sets it to `false`)"))
    })
}

//! `[secrets]`: every secret by reference (environment, file or remote
//! store), of a kind the site's target can read; the secrets each site must
//! give.

use std::collections::BTreeMap;

use toml::Spanned;

use super::context::Cx;
use crate::base::codes::Code;
use crate::base::diagnostic::Diagnostic;
use crate::base::names::is_env_var_name;
use crate::dify;
use crate::input::layer::{self, Layer, SecretValue, Target};
use crate::model::*;

/// Secrets a site must provide, by the services that need them.
fn required_secrets(site: &Site) -> Vec<(&'static str, &'static str)> {
    let runs = |k| site.services.contains_key(&k);
    let mut out = vec![("DB_PASSWORD", "the api connects to PostgreSQL with it")];
    out.push(("REDIS_PASSWORD", "Redis requires a password"));
    if runs(ServiceKind::Api) {
        out.push((
            "SECRET_KEY",
            "the api, the worker and beat sign sessions, login tokens and file URLs with it (unset, each container makes a key of its own, and what one signs another refuses)",
        ));
    }
    if runs(ServiceKind::PluginDaemon) {
        out.push((
            "PLUGIN_DAEMON_KEY",
            "the api authenticates to the plugin daemon with it",
        ));
        out.push((
            "PLUGIN_DIFY_INNER_API_KEY",
            "the plugin daemon authenticates to the api with it",
        ));
    }
    if runs(ServiceKind::Sandbox) {
        out.push((
            "CODE_EXECUTION_API_KEY",
            "the api authenticates to the sandbox with it",
        ));
    }
    out
}

/// `[secrets]`: Dify's settings given by reference, never as literals.
pub(super) fn secrets(
    cx: &mut Cx<'_>,
    layer: &Layer,
    target: Target,
    release: &str,
) -> BTreeMap<String, SecretRef> {
    let mut out = BTreeMap::new();
    for (k, v) in layer.secrets.iter().flatten() {
        let name = k.get_ref();
        let example = "`[secrets]` takes the names of Dify's settings, e.g. `DB_PASSWORD`";
        if !super::env::known_name(cx, release, name, k.span(), example) {
            continue;
        }
        let r = match v.get_ref() {
            SecretValue::Literal => {
                cx.err(
                    Diagnostic::error(Code::LiteralSecret, format!("`{name}` is given as a literal value"))
                        .at(v.span())
                        .label("a secret written in the file")
                        .help(match target {
                            Target::Compose => format!("give a reference instead: `{name} = {{ env = \"{name}\" }}` (read from the deploying host's environment)"),
                            Target::Helm => format!("give a reference instead: `{name} = {{ remote = \"dify/...\", property = \"...\" }}`"),
                        }),
                );
                cx.refused_secrets.push(name.clone());
                continue;
            }
            SecretValue::Ref(r) => r,
        };
        let Some(secret) = reference(cx, name, v, r, target) else {
            // Reported: not also missing.
            cx.refused_secrets.push(name.clone());
            continue;
        };
        out.insert(name.clone(), secret);
    }
    out
}

/// One reference: exactly one of `env`, `file` or `remote` (with its
/// `property`), well-formed, of a kind the site's target reads, and (on
/// helm) a secret the chart has a place for.
fn reference(
    cx: &mut Cx<'_>,
    name: &str,
    v: &Spanned<SecretValue>,
    r: &layer::SecretRef,
    target: Target,
) -> Option<SecretRef> {
    let kinds = [r.env.is_some(), r.file.is_some(), r.remote.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    let bad = |cx: &mut Cx<'_>, msg: String, help: &str| {
        cx.err(
            Diagnostic::error(Code::SecretRef, msg)
                .at(v.span())
                .help(help.to_string()),
        );
    };
    if kinds != 1 {
        bad(
            cx,
            format!("`{name}` must name exactly one of `env`, `file` or `remote`"),
            "write `{ env = \"NAME\" }`, `{ file = \"/path\" }` or `{ remote = \"key\", property = \"prop\" }`",
        );
        return None;
    }
    if r.property.is_some() && r.remote.is_none() {
        bad(
            cx,
            format!("`{name}`: `property` goes with `remote`"),
            "remove `property`, or use `remote`",
        );
        return None;
    }
    let secret = if let Some(env) = &r.env {
        if !is_env_var_name(env) {
            bad(
                cx,
                format!("`{env}` is not an environment variable name"),
                "use upper-case letters, digits and `_`, e.g. `CLINIC_DB_PASSWORD`",
            );
            return None;
        }
        SecretRef::Env { name: env.clone() }
    } else if let Some(path) = &r.file {
        if !path.starts_with('/')
            || path.contains("..")
            || path.chars().any(|c| {
                c.is_control() || c == '"' || c == '\'' || c == '$' || c == '\\' || c == ' '
            })
        {
            bad(
                cx,
                format!("`{path}` is not a usable secret file path"),
                "write an absolute path without spaces, quotes, `$` or `..`, e.g. `/etc/dify/secrets/db_password`",
            );
            return None;
        }
        SecretRef::File { path: path.clone() }
    } else {
        let key = r.remote.clone().unwrap_or_default();
        let Some(property) = r.property.clone() else {
            bad(
                cx,
                format!("`{name}`: `remote` needs a `property`"),
                "add `property = \"password\"` (the field within the remote secret)",
            );
            return None;
        };
        let ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 253
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
        };
        if !ok(&key) || !ok(&property) {
            bad(
                cx,
                format!(
                    "`{name}`: the remote key or property has characters a secret store does not take"
                ),
                "use letters, digits, `-`, `_`, `.` and `/`",
            );
            return None;
        }
        SecretRef::Remote { key, property }
    };
    let fits = match (&secret, target) {
        (SecretRef::Remote { .. }, Target::Compose) => {
            Some("a compose site reads secrets from `env` or `file`")
        }
        (SecretRef::Env { .. } | SecretRef::File { .. }, Target::Helm) => Some(
            "a helm site reads secrets from the external secret store: `{ remote = ..., property = ... }`",
        ),
        _ => None,
    };
    if let Some(why) = fits {
        bad(
            cx,
            format!("`{name}` uses a kind of reference this site's target cannot read"),
            why,
        );
        return None;
    }
    if target == Target::Helm && dify::helm_secret_refs(name).is_empty() {
        bad(
            cx,
            format!("the dify-helm chart's external secrets have no place for `{name}`"),
            "give helm sites only the secrets the chart reads from its secret store (SECRET_KEY, DB_PASSWORD, REDIS_PASSWORD, PLUGIN_DAEMON_KEY, ...)",
        );
        return None;
    }
    Some(secret)
}

/// What the assembled site needs of its secrets: every secret its
/// services need is given, and a secret read from a file reaches only
/// services that can read one.
pub(super) fn site_secrets(cx: &mut Cx<'_>, site: &Site, layer: &Layer, target: Target) {
    for (name, why) in required_secrets(site) {
        let needs_db = name != "DB_PASSWORD"
            || site.database.external.is_some()
            || site.services.contains_key(&ServiceKind::Db);
        let refused = cx.refused_secrets.iter().any(|r| r == name)
            || cx.was_removed(&format!("secrets.{name}"));
        if needs_db && !refused && !site.secrets.contains_key(name) {
            cx.err(
                Diagnostic::error(Code::MissingSecret, format!("secret `{name}` is not given: {why}"))
                    .at(cx.anchor.clone())
                    .help(match target {
                        Target::Compose => format!("add `{name} = {{ env = \"{name}\" }}` under `[secrets]`"),
                        Target::Helm => format!("add `{name} = {{ remote = \"dify/...\", property = \"...\" }}` under `[secrets]`"),
                    }),
            );
        }
    }
    // A secret file reaches only the services that can read one.
    for (name, kind) in crate::dify::secret_files::unsupported_file_secrets(site) {
        let span = layer
            .secrets
            .iter()
            .flatten()
            .find(|(k, _)| k.get_ref() == &name)
            .map(|(_, v)| v.span());
        cx.err(
            Diagnostic::error(Code::SecretRef, format!("`{name}` is read from a file, but the {} service reads it only from its environment", kind.key()))
                .at_opt(span)
                .help(format!("give `{name}` as `{{ env = \"VAR\" }}`: the {} image has no way to read a secret file", kind.key())),
        );
    }
}

//! `[helm]`: the Kubernetes names of a helm site (namespace, secret store
//! and its kind, ingress class). Compose sites ignore it, and `explain`
//! does not list its defaults for them.

use toml::Spanned;

use super::context::{Cx, NameRule, name_value};
use crate::base::codes::Code;
use crate::base::diagnostic::Diagnostic;
use crate::base::names::is_hostname;
use crate::input::layer::{Layer, Target};
use crate::model::*;

/// `[helm]`, every name defaulted. On a compose site the defaults are not
/// recorded, and a `[helm]` table is warned about.
pub(super) fn helm(cx: &mut Cx<'_>, layer: &Layer, target: Target) -> Helm {
    let hl = layer.helm.clone().unwrap_or_default();
    // Compose sites do not use these; do not list their defaults in `explain`.
    let mut helm_defaults = Vec::new();
    if target == Target::Compose {
        std::mem::swap(&mut helm_defaults, &mut cx.defaults);
    }
    let helm = Helm {
        namespace: helm_name(cx, &hl.namespace, "helm.namespace", "dify"),
        secret_store: helm_name(cx, &hl.secret_store, "helm.secret-store", "dify-secrets"),
        secret_store_kind: secret_store_kind(cx, &hl.secret_store_kind),
        ingress_class: hl
            .ingress_class
            .as_ref()
            .map(|c| helm_name(cx, &Some(c.clone()), "helm.ingress-class", "")),
    };
    if target == Target::Compose {
        std::mem::swap(&mut helm_defaults, &mut cx.defaults);
    }
    if target == Target::Compose && layer.helm.is_some() {
        // Harmless, but probably a profile meant for the other target.
        cx.err(
            Diagnostic::warning(Code::HelmOnly, "`[helm]` has no effect on a compose site")
                .at(cx.anchor.clone())
                .help("remove `[helm]` from the chain of this site"),
        );
    }
    helm
}

/// `helm.secret-store-kind`: `SecretStore` or `ClusterSecretStore` (the
/// default).
fn secret_store_kind(cx: &mut Cx<'_>, v: &Option<Spanned<String>>) -> String {
    match v {
        Some(k) if ["SecretStore", "ClusterSecretStore"].contains(&k.get_ref().as_str()) => {
            k.get_ref().clone()
        }
        Some(k) => {
            cx.err(
                Diagnostic::error(
                    Code::InvalidValue,
                    format!("`{}` is not a secret store kind", k.get_ref()),
                )
                .at(k.span())
                .help("use `SecretStore` or `ClusterSecretStore`"),
            );
            String::new()
        }
        None => cx.default("helm.secret-store-kind", "ClusterSecretStore".to_string()),
    }
}

/// A Kubernetes name of the site (a DNS name).
fn helm_name(cx: &mut Cx<'_>, v: &Option<Spanned<String>>, key: &str, default: &str) -> String {
    name_value(
        cx,
        v,
        key,
        default,
        NameRule {
            valid: is_hostname,
            what: "a valid Kubernetes name",
            takes: "lower-case letters, digits and dashes",
        },
    )
}

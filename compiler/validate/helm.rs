//! `[helm]`: the Kubernetes names of a helm site.

use toml::Spanned;

use super::context::{Cx, NameRule, name_value};
use crate::base::names::is_hostname;

pub(super) fn helm_name(
    cx: &mut Cx<'_>,
    v: &Option<Spanned<String>>,
    key: &str,
    default: &str,
) -> String {
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

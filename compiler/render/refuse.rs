//! The second pass over the values that non-YAML outputs print without
//! escaping: validation admits only safe ones, and render checks them again
//! before it writes anything.

use crate::model::Site;

/// Values that non-YAML outputs (nginx, iptables, Dockerfiles, the env
/// file's keys, compose's `${...}` references) print without escaping. They
/// are validated names; this checks it again, so that a gap in validation
/// cannot turn into an injected directive.
pub(super) fn unsafe_values(site: &Site) -> Vec<(&'static str, String)> {
    fn only(value: &str, allowed: impl Fn(char) -> bool) -> bool {
        !value.is_empty() && value.chars().all(allowed)
    }
    let name_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let image_char = |c: char| c.is_ascii_alphanumeric() || "._-/:@".contains(c);
    let mut bad = Vec::new();
    let mut check = |what: &'static str, value: &str, ok: bool| {
        if !ok {
            bad.push((what, value.to_string()));
        }
    };
    check(
        "host name",
        &site.network.hostname,
        only(&site.network.hostname, |c| {
            c.is_ascii_alphanumeric() || ".-:".contains(c)
        }),
    );
    check(
        "Dify version",
        &site.dify_version,
        only(&site.dify_version, |c| {
            c.is_ascii_alphanumeric() || "._-".contains(c)
        }),
    );
    for image in [&site.build.api_base, &site.build.web_base] {
        let r = image.reference();
        check("base image", &r, only(&r, image_char));
    }
    for route in &site.network.public_routes {
        check(
            "route",
            route,
            route.starts_with('/')
                && !route.contains("..")
                && only(route, |c| c.is_ascii_alphanumeric() || "/_-.".contains(c)),
        );
    }
    for key in site.env.keys() {
        check("setting name", key, only(key, name_char));
    }
    for r in site.secrets.values() {
        if let crate::model::SecretRef::Env { name } = r {
            check("environment variable", name, only(name, name_char));
        }
    }
    // The systemd units print these unquoted (a `%` would be a specifier).
    let gitops = &site.gitops;
    check(
        "repository",
        &gitops.repository,
        crate::base::names::repository_problem(&gitops.repository).is_none(),
    );
    check(
        "branch prefix",
        &gitops.branch_prefix,
        crate::base::names::branch_prefix_problem(&gitops.branch_prefix).is_none(),
    );
    check(
        "site name",
        &site.name,
        crate::base::names::is_valid_name(&site.name),
    );
    bad
}

//! `[gitops]`: the repository and branch of a site, and how it applies
//! them: the pull agent's interval and confirmation window on compose,
//! Argo CD's namespace, project and cluster on helm.

use std::ops::Range;

use toml::Spanned;

use super::context::{Cx, NameRule, name_value};
use crate::base::codes::Code;
use crate::base::diagnostic::Diagnostic;
use crate::base::names::{
    branch_prefix_problem, cluster_problem, is_dns_label, is_hostname, repository_problem,
};
use crate::base::units::{TimeSpan, TimeUnit, parse_time_span};
use crate::input::layer::{GitopsLayer, Layer, Target};
use crate::model::*;

/// Default prefix of the site branches.
pub const DEFAULT_BRANCH_PREFIX: &str = "sites/";
/// Default poll interval of a compose box.
pub const DEFAULT_PULL_INTERVAL: TimeSpan = TimeSpan::new(5, TimeUnit::Minutes);
/// Default confirmation window of an apply.
pub const DEFAULT_CONFIRM_TIMEOUT: TimeSpan = TimeSpan::new(120, TimeUnit::Seconds);
/// Default number of pre-upgrade backups a compose box keeps.
pub const DEFAULT_KEEP_BACKUPS: i64 = 3;
/// Accepted numbers of kept backups: at least the one of the last upgrade,
/// and not so many that a box's disk fills with dumps.
const KEEP_BACKUPS_RANGE: std::ops::RangeInclusive<i64> = 1..=30;
/// Accepted poll intervals: often enough to matter, not a busy loop.
const PULL_INTERVAL_RANGE: (TimeSpan, TimeSpan) = (
    TimeSpan::new(30, TimeUnit::Seconds),
    TimeSpan::new(24, TimeUnit::Hours),
);
/// Accepted confirmation windows: long enough for compose to recreate the
/// containers and see them healthy, short enough that a lock-out ends soon.
const CONFIRM_TIMEOUT_RANGE: (TimeSpan, TimeSpan) = (
    TimeSpan::new(10, TimeUnit::Seconds),
    TimeSpan::new(30, TimeUnit::Minutes),
);
const DEFAULT_ARGOCD_NAMESPACE: &str = "argocd";
const DEFAULT_ARGOCD_PROJECT: &str = "default";
const DEFAULT_CLUSTER: &str = "https://kubernetes.default.svc";

const REPOSITORY_HELP: &str = "write `https://host/path`, `ssh://[user@]host[:port]/path` or `user@host:path`, with letters, digits and `. _ ~ / + -` in the path; keep credentials out of the URL (a deploy key or a credential helper on the box)";

/// A span of time within `(min, max)`; `default` (recorded) when unset.
fn time_span(
    cx: &mut Cx<'_>,
    v: &Option<Spanned<String>>,
    key: &str,
    default: TimeSpan,
    (min, max): (TimeSpan, TimeSpan),
) -> Option<TimeSpan> {
    let Some(v) = v else {
        return Some(cx.default(key, default));
    };
    match parse_time_span(v.get_ref()) {
        Ok(span) if span.seconds() < min.seconds() || span.seconds() > max.seconds() => {
            cx.err(
                Diagnostic::error(
                    Code::OutOfRange,
                    format!("`{key}` is {span}, outside {min}..={max}"),
                )
                .at(v.span())
                .help(format!("choose a span from {min} to {max}")),
            );
            None
        }
        Ok(span) => Some(span),
        Err(e) => {
            cx.err(
                Diagnostic::error(Code::InvalidUnit, e.message)
                    .at(v.span())
                    .label(format!("`{key}` takes a span of time"))
                    .help(e.help),
            );
            None
        }
    }
}

/// `[gitops]`: the repository and branch of the site, and how the site
/// applies it (the pull agent on compose, Argo CD on helm). Keys of the
/// other target are errors, and their defaults are not recorded.
pub(super) fn gitops(cx: &mut Cx<'_>, layer: &Layer, target: Target) -> Option<Gitops> {
    let unset = GitopsLayer::default();
    let gl = layer.gitops.as_ref().unwrap_or(&unset);
    let before = cx.diags.error_count();
    let repository = match &gl.repository {
        Some(r) => cx.checked(
            r,
            repository_problem,
            "a repository URL dify-cfg accepts",
            |d| {
                d.label("`gitops.repository` takes a git URL")
                    .help(REPOSITORY_HELP)
            },
        ),
        None => {
            cx.missing(
                "gitops.repository",
                "set `[gitops] repository = \"https://git.example.org/platform/dify-fleet.git\"` in the root profile: the sites fetch their branches from there",
            );
            None
        }
    };
    let branch_prefix = match &gl.branch_prefix {
        Some(p) => cx.checked(p, branch_prefix_problem, "a branch prefix", |d| {
            d.help("write a prefix such as `sites/` or `fleet/clinics/`: letters, digits, `-`, `_`, `.` and `/`, ending in `/`, without `..`, `//`, a leading `/`, `.` or `-`, or a component ending in `.lock`")
        }),
        None => Some(cx.default("gitops.branch-prefix", DEFAULT_BRANCH_PREFIX.to_string())),
    };
    let not_applicable = |cx: &mut Cx<'_>, v: Option<Range<usize>>, key: &str, help: &str| {
        if let Some(span) = v {
            cx.err(
                Diagnostic::error(
                    Code::NotApplicable,
                    format!(
                        "`gitops.{key}` applies to {} sites only",
                        match target {
                            Target::Compose => "helm",
                            Target::Helm => "compose",
                        }
                    ),
                )
                .at(span)
                .help(help.to_string()),
            );
        }
    };
    let (pull, argocd) = match target {
        Target::Compose => {
            for (v, key) in [
                (&gl.argocd_namespace, "argocd-namespace"),
                (&gl.argocd_project, "argocd-project"),
                (&gl.cluster, "cluster"),
            ] {
                not_applicable(
                    cx,
                    span_of(v),
                    key,
                    "remove it: a compose box applies its branch itself with deploy/apply.sh; Argo CD syncs helm sites",
                );
            }
            (pull(cx, gl), None)
        }
        Target::Helm => {
            for (v, key) in [
                (span_of(&gl.pull_interval), "pull-interval"),
                (span_of(&gl.confirm_timeout), "confirm-timeout"),
                (span_of(&gl.keep_backups), "keep-backups"),
                (span_of(&gl.report_applied), "report-applied"),
            ] {
                not_applicable(
                    cx,
                    v,
                    key,
                    "remove it: Argo CD syncs a helm site; the pull agent runs on compose boxes only",
                );
            }
            (None, Some(argocd(cx, gl)))
        }
    };
    if cx.diags.error_count() != before {
        return None;
    }
    Some(Gitops {
        repository: repository?,
        branch_prefix: branch_prefix?,
        pull,
        argocd,
    })
}

/// How a compose box pulls its branch: the poll interval and the
/// confirmation window of an apply, each within its range.
fn pull(cx: &mut Cx<'_>, gl: &GitopsLayer) -> Option<Pull> {
    let interval = time_span(
        cx,
        &gl.pull_interval,
        "gitops.pull-interval",
        DEFAULT_PULL_INTERVAL,
        PULL_INTERVAL_RANGE,
    );
    let confirm_timeout = time_span(
        cx,
        &gl.confirm_timeout,
        "gitops.confirm-timeout",
        DEFAULT_CONFIRM_TIMEOUT,
        CONFIRM_TIMEOUT_RANGE,
    );
    let keep_backups = cx.int(
        &gl.keep_backups,
        "gitops.keep-backups",
        KEEP_BACKUPS_RANGE,
        DEFAULT_KEEP_BACKUPS,
    );
    let report_applied = cx.flag(&gl.report_applied, "gitops.report-applied", false);
    match (interval, confirm_timeout, keep_backups) {
        (Some(interval), Some(confirm_timeout), Some(keep_backups)) => Some(Pull {
            interval,
            confirm_timeout,
            keep_backups,
            report_applied,
        }),
        _ => None,
    }
}

/// Where a key was set, if it was.
fn span_of<T>(v: &Option<Spanned<T>>) -> Option<Range<usize>> {
    v.as_ref().map(Spanned::span)
}

/// Where Argo CD runs the Application of a helm site: its namespace,
/// project and the cluster's API server.
fn argocd(cx: &mut Cx<'_>, gl: &GitopsLayer) -> ArgoCd {
    let namespace = name_value(
        cx,
        &gl.argocd_namespace,
        "gitops.argocd-namespace",
        DEFAULT_ARGOCD_NAMESPACE,
        NameRule {
            valid: is_dns_label,
            what: "a Kubernetes namespace name",
            takes: "lower-case letters, digits and dashes, at most 63",
        },
    );
    let project = name_value(
        cx,
        &gl.argocd_project,
        "gitops.argocd-project",
        DEFAULT_ARGOCD_PROJECT,
        NameRule {
            valid: is_hostname,
            what: "an Argo CD project name",
            takes: "lower-case letters, digits, dashes and dots",
        },
    );
    let cluster = match &gl.cluster {
        Some(c) => cx
            .checked(c, cluster_problem, "a cluster API server URL", |d| {
                d.help("write the API server's https URL as Argo CD knows it, e.g. `https://kubernetes.default.svc`")
            })
            .unwrap_or_default(),
        None => cx.default("gitops.cluster", DEFAULT_CLUSTER.to_string()),
    };
    ArgoCd {
        namespace,
        project,
        cluster,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_fleet_gets_its_gitops_defaults() {
        let (inputs, diags) =
            crate::driver::read_inputs(std::path::Path::new(env!("CARGO_MANIFEST_DIR")));
        let analysis = crate::driver::analyze(&inputs, diags);
        assert!(!analysis.diagnostics.has_errors());
        let site = |name: &str| analysis.sites.iter().find(|s| s.site.name == name).unwrap();
        let clinic = site("clinic-01");
        let g = &clinic.site.gitops;
        assert_eq!(
            g.repository,
            "https://git.clinics.example.org/platform/dify-fleet.git"
        );
        assert_eq!(g.branch_prefix, "sites/");
        assert_eq!(g.branch("clinic-01"), "sites/clinic-01");
        assert_eq!(
            g.pull,
            Some(Pull {
                interval: TimeSpan::new(5, TimeUnit::Minutes),
                confirm_timeout: TimeSpan::new(120, TimeUnit::Seconds),
                keep_backups: 3,
                report_applied: false,
            })
        );
        assert_eq!(g.argocd, None);
        let defaults: Vec<(&str, &str)> = clinic
            .defaults
            .iter()
            .map(|d| &**d)
            .filter(|(k, _)| k.starts_with("gitops."))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            defaults,
            [
                ("gitops.branch-prefix", "\"sites/\""),
                ("gitops.pull-interval", "\"5min\""),
                ("gitops.confirm-timeout", "\"120s\""),
                ("gitops.keep-backups", "3"),
                ("gitops.report-applied", "false"),
            ]
        );
        let hq = site("hq");
        assert_eq!(hq.site.gitops.pull, None);
        assert_eq!(
            hq.site.gitops.argocd,
            Some(ArgoCd {
                namespace: "argocd".into(),
                project: "default".into(),
                cluster: "https://kubernetes.default.svc".into(),
            })
        );
        let defaults: Vec<&str> = hq
            .defaults
            .iter()
            .map(|d| &**d)
            .filter(|(k, _)| k.starts_with("gitops."))
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(
            defaults,
            [
                "gitops.branch-prefix",
                "gitops.argocd-namespace",
                "gitops.argocd-project",
                "gitops.cluster",
            ]
        );
    }
}

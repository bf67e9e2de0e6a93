//! Facts about the dify-helm chart, per chart version, as data: which
//! chart version each Dify release is deployed with, the `externalSecret`
//! components and the `remoteRefs` keys each declares, where each Dify
//! secret goes, the names the chart gives its objects, the environment its
//! Deployments set themselves, and which Deployments an HPA scales.
//! `tests/it/helm_chart.rs` reads the chart's templates and holds these
//! lists to them.

/// One version of the dify-helm chart.
pub struct HelmChart {
    pub version: &'static str,
    /// The chart's name; a release whose name does not contain it names its
    /// objects `<release>-<chart>` (`dify.fullname` in `_helpers.tpl`).
    pub name: &'static str,
    /// The `externalSecret` components dify-cfg writes, and the
    /// `remoteRefs` keys each declares by default.
    pub remote_ref_defaults: &'static [(&'static str, &'static [&'static str])],
    /// A Dify secret's places in the chart: (`externalSecret` component,
    /// `remoteRefs` key) pairs.
    pub secret_refs: &'static [(&'static str, &'static [(&'static str, &'static str)])],
    /// Components and the suffix of their objects' names (Deployment,
    /// ConfigMap, the Secret an ExternalSecret writes): `<fullname>-<suffix>`.
    pub object_suffixes: &'static [(&'static str, &'static str)],
    /// Components with an HPA (`hpa.yaml`, when `<component>.autoscaling.enabled`).
    pub autoscaled: &'static [&'static str],
    /// Components with a `replicas` value (the others run one pod).
    pub with_replicas: &'static [&'static str],
    /// Environment names a component's Deployment sets in its own `env:`,
    /// before `extraEnv` (an `extraEnv` entry of the same name would be a
    /// duplicate).
    pub fixed_env: &'static [(&'static str, &'static [&'static str])],
}

/// The remote references the chart's api and worker secrets both carry.
const API_REMOTE_REFS: &[&str] = &[
    "SECRET_KEY",
    "CODE_EXECUTION_API_KEY",
    "DB_USERNAME",
    "DB_PASSWORD",
    "REDIS_PASSWORD",
    "WEAVIATE_API_KEY",
    "RESEND_API_KEY",
    "PLUGIN_DAEMON_KEY",
    "INNER_API_KEY_FOR_PLUGIN",
    "S3_ACCESS_KEY",
    "S3_SECRET_KEY",
    "OTLP_API_KEY",
    "AGENT_BACKEND_API_TOKEN",
];

/// dify-helm 0.38.0-rc2 (appVersion 1.16.1).
const CHART_0_38_0_RC2: HelmChart = HelmChart {
    version: "0.38.0-rc2",
    name: "dify",
    remote_ref_defaults: &[
        ("api", API_REMOTE_REFS),
        ("worker", API_REMOTE_REFS),
        ("sandbox", &["API_KEY"]),
        (
            "agentBackend",
            &[
                "REDIS_PASSWORD",
                "DIFY_AGENT_API_TOKEN",
                "DIFY_AGENT_SERVER_SECRET_KEY",
                "DIFY_AGENT_SHELLCTL_AUTH_TOKEN",
                "DIFY_AGENT_PLUGIN_DAEMON_API_KEY",
                "DIFY_AGENT_INNER_API_KEY",
            ],
        ),
        ("localSandbox", &["SHELLCTL_AUTH_TOKEN"]),
        (
            "pluginDaemon",
            &[
                "DB_USERNAME",
                "DB_PASSWORD",
                "REDIS_PASSWORD",
                "SERVER_KEY",
                "DIFY_INNER_API_KEY",
            ],
        ),
        ("postgresql", &["postgres-password", "replication-password"]),
        ("redis", &["redis-password"]),
    ],
    secret_refs: &[
        (
            "SECRET_KEY",
            &[("api", "SECRET_KEY"), ("worker", "SECRET_KEY")],
        ),
        (
            "DB_USERNAME",
            &[
                ("api", "DB_USERNAME"),
                ("worker", "DB_USERNAME"),
                ("pluginDaemon", "DB_USERNAME"),
            ],
        ),
        (
            "DB_PASSWORD",
            &[
                ("api", "DB_PASSWORD"),
                ("worker", "DB_PASSWORD"),
                ("pluginDaemon", "DB_PASSWORD"),
            ],
        ),
        (
            "REDIS_PASSWORD",
            &[
                ("api", "REDIS_PASSWORD"),
                ("worker", "REDIS_PASSWORD"),
                ("pluginDaemon", "REDIS_PASSWORD"),
                ("agentBackend", "REDIS_PASSWORD"),
            ],
        ),
        (
            "CODE_EXECUTION_API_KEY",
            &[
                ("api", "CODE_EXECUTION_API_KEY"),
                ("worker", "CODE_EXECUTION_API_KEY"),
                ("sandbox", "API_KEY"),
            ],
        ),
        (
            "PLUGIN_DAEMON_KEY",
            &[
                ("api", "PLUGIN_DAEMON_KEY"),
                ("worker", "PLUGIN_DAEMON_KEY"),
                ("pluginDaemon", "SERVER_KEY"),
                ("agentBackend", "DIFY_AGENT_PLUGIN_DAEMON_API_KEY"),
            ],
        ),
        ("PLUGIN_DIFY_INNER_API_KEY", INNER_API_KEY_REFS),
        ("INNER_API_KEY_FOR_PLUGIN", INNER_API_KEY_REFS),
        (
            "WEAVIATE_API_KEY",
            &[("api", "WEAVIATE_API_KEY"), ("worker", "WEAVIATE_API_KEY")],
        ),
        (
            "RESEND_API_KEY",
            &[("api", "RESEND_API_KEY"), ("worker", "RESEND_API_KEY")],
        ),
        (
            "S3_ACCESS_KEY",
            &[("api", "S3_ACCESS_KEY"), ("worker", "S3_ACCESS_KEY")],
        ),
        (
            "S3_SECRET_KEY",
            &[("api", "S3_SECRET_KEY"), ("worker", "S3_SECRET_KEY")],
        ),
        (
            "OTLP_API_KEY",
            &[("api", "OTLP_API_KEY"), ("worker", "OTLP_API_KEY")],
        ),
        (
            "DIFY_AGENT_API_TOKEN",
            &[
                ("api", "AGENT_BACKEND_API_TOKEN"),
                ("worker", "AGENT_BACKEND_API_TOKEN"),
                ("agentBackend", "DIFY_AGENT_API_TOKEN"),
            ],
        ),
        (
            "DIFY_AGENT_SERVER_SECRET_KEY",
            &[("agentBackend", "DIFY_AGENT_SERVER_SECRET_KEY")],
        ),
        (
            "DIFY_AGENT_SHELLCTL_AUTH_TOKEN",
            &[
                ("agentBackend", "DIFY_AGENT_SHELLCTL_AUTH_TOKEN"),
                ("localSandbox", "SHELLCTL_AUTH_TOKEN"),
            ],
        ),
    ],
    object_suffixes: &[
        ("api", "api"),
        ("worker", "worker"),
        ("beat", "beat"),
        ("apiWebsocket", "api-websocket"),
        ("web", "web"),
        ("sandbox", "sandbox"),
        ("ssrfProxy", "ssrf-proxy"),
        ("proxy", "proxy"),
        ("pluginDaemon", "plugin-daemon"),
        ("agentBackend", "agent-backend"),
        ("localSandbox", "local-sandbox"),
    ],
    autoscaled: &["api", "worker", "web", "sandbox"],
    with_replicas: &[
        "api",
        "worker",
        "apiWebsocket",
        "web",
        "sandbox",
        "ssrfProxy",
        "proxy",
        "pluginDaemon",
        "agentBackend",
    ],
    fixed_env: &[
        ("api", &["LOG_LEVEL"]),
        ("worker", &["MODE", "LOG_LEVEL"]),
        ("beat", &["MODE", "LOG_LEVEL"]),
        (
            "apiWebsocket",
            &[
                "MIGRATION_ENABLED",
                "SERVER_WORKER_AMOUNT",
                "SERVER_WORKER_CLASS",
                "LOG_LEVEL",
            ],
        ),
    ],
};

const INNER_API_KEY_REFS: &[(&str, &str)] = &[
    ("api", "INNER_API_KEY_FOR_PLUGIN"),
    ("worker", "INNER_API_KEY_FOR_PLUGIN"),
    ("pluginDaemon", "DIFY_INNER_API_KEY"),
    ("agentBackend", "DIFY_AGENT_INNER_API_KEY"),
];

/// Every chart version dify-cfg writes values for.
pub const CHARTS: &[HelmChart] = &[CHART_0_38_0_RC2];

/// The chart each supported Dify release is deployed with.
pub const RELEASE_CHARTS: &[(&str, &str)] = &[("1.16.0", "0.38.0-rc2"), ("1.16.1", "0.38.0-rc2")];

/// The chart version of the newest release (what the example fleet and the
/// tools tests read).
pub const HELM_CHART_VERSION: &str = CHART_0_38_0_RC2.version;

/// The chart a Dify release is deployed with (the newest chart for a
/// release the table does not list; validation admits only supported
/// releases).
pub fn chart_for(release: &str) -> &'static HelmChart {
    let version = RELEASE_CHARTS
        .iter()
        .find(|(r, _)| *r == release)
        .map_or(HELM_CHART_VERSION, |(_, v)| *v);
    CHARTS
        .iter()
        .find(|c| c.version == version)
        .unwrap_or(&CHARTS[0])
}

impl HelmChart {
    /// Where this chart takes a Dify secret from. Empty when the chart has
    /// no place for it.
    pub fn secret_refs(&self, name: &str) -> &'static [(&'static str, &'static str)] {
        self.secret_refs
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(&[], |(_, refs)| refs)
    }

    /// The chart's full name for a release (`dify.fullname`).
    pub fn fullname(&self, release: &str) -> String {
        if release.contains(self.name) {
            release.to_string()
        } else {
            format!("{release}-{}", self.name)
        }
    }

    /// The name of a component's Deployment, ConfigMap and Secret.
    pub fn object_name(&self, release: &str, component: &str) -> Option<String> {
        let (_, suffix) = self.object_suffixes.iter().find(|(c, _)| *c == component)?;
        Some(format!("{}-{suffix}", self.fullname(release)))
    }

    pub fn has_autoscaling(&self, component: &str) -> bool {
        self.autoscaled.contains(&component)
    }

    pub fn has_replicas(&self, component: &str) -> bool {
        self.with_replicas.contains(&component)
    }

    /// Names a component's Deployment sets itself.
    pub fn fixed_env(&self, component: &str) -> &'static [&'static str] {
        self.fixed_env
            .iter()
            .find(|(c, _)| *c == component)
            .map_or(&[], |(_, names)| names)
    }
}

/// Where the dify-helm chart of the newest release takes a Dify secret
/// from: (`externalSecret` component, `remoteRefs` key) pairs. Empty when
/// the chart has no place for the secret; validation refuses such a secret
/// on a helm site.
pub fn helm_secret_refs(name: &str) -> &'static [(&'static str, &'static str)] {
    chart_for(crate::dify::SUPPORTED_RELEASES[crate::dify::SUPPORTED_RELEASES.len() - 1])
        .secret_refs(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_release_has_a_chart_and_names_follow_the_chart() {
        for release in crate::dify::SUPPORTED_RELEASES {
            let chart = chart_for(release);
            assert!(
                RELEASE_CHARTS.iter().any(|(r, _)| r == release),
                "{release}"
            );
            assert_eq!(chart.fullname("dify"), "dify");
            assert_eq!(chart.fullname("hq"), "hq-dify");
            assert_eq!(
                chart.object_name("dify", "pluginDaemon").as_deref(),
                Some("dify-plugin-daemon")
            );
            for c in chart.autoscaled {
                assert!(chart.has_replicas(c), "{c}");
            }
        }
        assert_eq!(
            helm_secret_refs("INNER_API_KEY_FOR_PLUGIN"),
            helm_secret_refs("PLUGIN_DIFY_INNER_API_KEY")
        );
        assert!(helm_secret_refs("LOG_LEVEL").is_empty());
        // Every secret lands on a key its component declares.
        for (_, refs) in CHART_0_38_0_RC2.secret_refs {
            for (component, key) in refs.iter() {
                let declared = CHART_0_38_0_RC2
                    .remote_ref_defaults
                    .iter()
                    .find(|(c, _)| c == component)
                    .is_some_and(|(_, keys)| keys.contains(key));
                assert!(declared, "{component}.{key}");
            }
        }
    }
}

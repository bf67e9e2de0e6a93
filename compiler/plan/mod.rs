//! Stage 5: plan. For one validated [`Site`], decide every output file and
//! everything in it: which services run with which limits, health checks,
//! dependencies, networks and volumes; every environment variable; which
//! routes nginx opens to whom; every firewall rule; the Helm values tree.
//!
//! Templates only format what is decided here. The one thing a plan cannot
//! know is the tag of the images dify-cfg builds, because that tag ends with
//! the hash of the *rendered* Dockerfile (a config root may override the
//! template). So a [`SitePlan`] has two parts: the build files, rendered
//! first, and the deploy files, produced by [`SitePlan::deploy_artifacts`]
//! once the built images are known.
//!
//! Strings that end up in compose.yaml go through [`compose_literal`]:
//! compose interpolates `$` in every value, so a literal `$` is written `$$`.
//! Values that come from the site's `[env]` are literal; references to
//! secrets are interpolations (`${NAME:?NAME must be set}`) built only from
//! validated variable names.

use serde::Serialize;
use serde_json::json;

use crate::model::{ImageRef, Site, Target};

mod argocd;
mod common;
mod compose;
mod dockerfile;
mod dotenv;
mod firewall;
#[cfg(test)]
pub(crate) mod fixtures;
mod helm;
mod nginx;
mod pull_agent;
mod quote;
mod secrets;
mod settings;
mod squid;
mod telemetry;

pub use argocd::{ARGOCD_APPLICATION, ArgoCdContext};
pub use compose::ComposeContext;
pub use dockerfile::{ApiDockerfileContext, DockerIgnoreContext, WebDockerfileContext};
pub use dotenv::DotEnvContext;
pub(crate) use firewall::{CHAIN_DOCKER, CHAIN_INPUT};
pub use firewall::{Family, FirewallContext};
pub use helm::{HelmContext, key_paths, unknown_key_paths};
pub use nginx::NginxContext;
pub use pull_agent::PullContext;
pub use quote::{dotenv_representable, sh_quote};
pub use squid::SquidContext;
pub use telemetry::{Telemetry, telemetry};

use argocd::argocd_application;
use compose::compose;
use dockerfile::{api_dockerfile, api_dockerignore, web_dockerfile, web_dockerignore};
use dotenv::dotenv;
pub(crate) use firewall::firewall;
use helm::{helm, helm_tag};
pub(crate) use nginx::nginx;
use pull_agent::pull_agent_artifacts;
use settings::EnvPlan;
use squid::{has_proxy, squid};

/// Template names, one per output kind.
pub const TEMPLATE_COMPOSE: &str = "compose.yaml";
pub const TEMPLATE_DOTENV: &str = "dify.env";
pub const TEMPLATE_API_DOCKERFILE: &str = "api.Dockerfile";
pub const TEMPLATE_API_DOCKERIGNORE: &str = "api.Dockerfile.dockerignore";
pub const TEMPLATE_WEB_DOCKERFILE: &str = "web.Dockerfile";
pub const TEMPLATE_WEB_DOCKERIGNORE: &str = "web.Dockerfile.dockerignore";
pub const TEMPLATE_NGINX: &str = "nginx.conf";
pub const TEMPLATE_RULES_V4: &str = "rules.v4";
pub const TEMPLATE_RULES_V6: &str = "rules.v6";
pub const TEMPLATE_HELM_VALUES: &str = "values.yaml";
pub const TEMPLATE_APPLY: &str = "apply.sh";
pub const TEMPLATE_PULL_SERVICE: &str = "dify-cfg-pull.service";
pub const TEMPLATE_PULL_TIMER: &str = "dify-cfg-pull.timer";
pub const TEMPLATE_AGENT_CONF: &str = "agent.conf";
pub const TEMPLATE_FIREWALL_SERVICE: &str = "dify-cfg-firewall.service";
pub const TEMPLATE_ARGOCD_APPLICATION: &str = "application.yaml";
pub const TEMPLATE_SQUID: &str = "squid.conf";

/// Every template the planner uses.
pub const TEMPLATE_NAMES: &[&str] = &[
    TEMPLATE_COMPOSE,
    TEMPLATE_DOTENV,
    TEMPLATE_API_DOCKERFILE,
    TEMPLATE_API_DOCKERIGNORE,
    TEMPLATE_WEB_DOCKERFILE,
    TEMPLATE_WEB_DOCKERIGNORE,
    TEMPLATE_NGINX,
    TEMPLATE_RULES_V4,
    TEMPLATE_RULES_V6,
    TEMPLATE_HELM_VALUES,
    TEMPLATE_APPLY,
    TEMPLATE_PULL_SERVICE,
    TEMPLATE_PULL_TIMER,
    TEMPLATE_AGENT_CONF,
    TEMPLATE_FIREWALL_SERVICE,
    TEMPLATE_ARGOCD_APPLICATION,
    TEMPLATE_SQUID,
];

/// The compose env file shared by the dify-api services.
pub const DOTENV_FILE: &str = "dify.env";
/// Outputs that other stages read back (the cross-check, the change
/// summaries, the pull agent's list of required files), by their path in
/// the site's tree.
pub const COMPOSE_FILE: &str = "compose.yaml";
pub const NGINX_FILE: &str = "nginx/default.conf";
pub const RULES_V4_FILE: &str = "firewall/rules.v4";
pub const RULES_V6_FILE: &str = "firewall/rules.v6";
pub const HELM_VALUES_FILE: &str = "helm/values.yaml";
pub const SQUID_FILE: &str = "ssrf_proxy/squid.conf";

/// The image dify-cfg builds from Dify's source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BuiltKind {
    Api,
    Web,
}

impl BuiltKind {
    /// Repository name under the site's registry.
    pub fn repository_name(self) -> &'static str {
        match self {
            BuiltKind::Api => "dify-api",
            BuiltKind::Web => "dify-web",
        }
    }
}

/// The references of the two built images, known once their Dockerfiles
/// are rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImages {
    pub api: ImageRef,
    pub web: ImageRef,
}

impl BuiltImages {
    pub fn get(&self, kind: BuiltKind) -> &ImageRef {
        match kind {
            BuiltKind::Api => &self.api,
            BuiltKind::Web => &self.web,
        }
    }
}

/// The reference of a built image: `{registry}/dify-api:{version}-{hash}`,
/// where hash is the first 12 hex digits of the sha256 of the rendered
/// Dockerfile. The same Dockerfile always names the same image, so sites
/// with the same release and base share it.
pub fn built_image(site: &Site, kind: BuiltKind, dockerfile: &[u8]) -> ImageRef {
    built_image_of_hash(site, kind, &crate::base::source::sha256_hex(dockerfile))
}

/// [`built_image`] from the Dockerfile's sha256 (hex), e.g. as a manifest
/// records it.
pub fn built_image_of_hash(site: &Site, kind: BuiltKind, hash: &str) -> ImageRef {
    ImageRef {
        repository: format!(
            "{}/{}",
            site.build.registry.trim_end_matches('/'),
            kind.repository_name()
        ),
        tag: format!("{}-{}", site.dify_version, &hash[..12]),
        digest: None,
    }
}

/// One file to render.
#[derive(Debug, Clone, Serialize)]
pub struct Artifact {
    /// Path under the site's output directory, with `/`.
    pub path: String,
    /// Template name.
    pub template: &'static str,
    /// The image this file defines (Dockerfiles only).
    pub defines: Option<BuiltKind>,
    pub context: Context,
}

/// The typed context of each kind of output.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Context {
    Compose(Box<ComposeContext>),
    DotEnv(DotEnvContext),
    ApiDockerfile(ApiDockerfileContext),
    WebDockerfile(WebDockerfileContext),
    DockerIgnore(DockerIgnoreContext),
    Nginx(NginxContext),
    Firewall(FirewallContext),
    Helm(HelmContext),
    Pull(Box<PullContext>),
    ArgoCd(ArgoCdContext),
    Squid(SquidContext),
}

/// Everything to render for one site.
#[derive(Debug, Clone)]
pub struct SitePlan {
    pub site: String,
    /// Dockerfiles and their ignore files: rendered first.
    pub builds: Vec<Artifact>,
    /// The rest, with the built images still unresolved.
    deploy: Vec<Artifact>,
}

impl SitePlan {
    /// Every output path, sorted.
    pub fn paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = self
            .builds
            .iter()
            .chain(&self.deploy)
            .map(|a| a.path.clone())
            .collect();
        paths.sort();
        paths
    }

    /// The deploy files, naming the built images.
    pub fn deploy_artifacts(&self, built: &BuiltImages) -> Vec<Artifact> {
        let mut out = self.deploy.clone();
        for artifact in &mut out {
            match &mut artifact.context {
                Context::Compose(c) => {
                    for svc in &mut c.services {
                        if let Some(kind) = svc.built {
                            svc.image = built.get(kind).reference();
                        }
                    }
                }
                Context::Helm(h) => {
                    for (key, kind) in [("api", BuiltKind::Api), ("web", BuiltKind::Web)] {
                        let image = built.get(kind);
                        h.values["image"][key] = json!({
                            "repository": image.repository,
                            "tag": helm_tag(image),
                        });
                    }
                }
                _ => {}
            }
        }
        out
    }
}

/// The build files of a site: its Dockerfiles and their ignore files.
pub fn builds(site: &Site) -> Vec<Artifact> {
    vec![
        Artifact {
            path: "docker/api.Dockerfile".into(),
            template: TEMPLATE_API_DOCKERFILE,
            defines: Some(BuiltKind::Api),
            context: Context::ApiDockerfile(api_dockerfile(site)),
        },
        Artifact {
            path: "docker/api.Dockerfile.dockerignore".into(),
            template: TEMPLATE_API_DOCKERIGNORE,
            defines: None,
            context: Context::DockerIgnore(api_dockerignore(site)),
        },
        Artifact {
            path: "docker/web.Dockerfile".into(),
            template: TEMPLATE_WEB_DOCKERFILE,
            defines: Some(BuiltKind::Web),
            context: Context::WebDockerfile(web_dockerfile(site)),
        },
        Artifact {
            path: "docker/web.Dockerfile.dockerignore".into(),
            template: TEMPLATE_WEB_DOCKERIGNORE,
            defines: None,
            context: Context::DockerIgnore(web_dockerignore(site)),
        },
    ]
}

/// Decide every artifact of a site.
pub fn plan(site: &Site) -> SitePlan {
    let builds = builds(site);
    let deploy = match site.target {
        Target::Compose => {
            let env = EnvPlan::new(site);
            let mut deploy = vec![
                Artifact {
                    path: COMPOSE_FILE.into(),
                    template: TEMPLATE_COMPOSE,
                    defines: None,
                    context: Context::Compose(Box::new(compose(site, &env))),
                },
                Artifact {
                    path: DOTENV_FILE.into(),
                    template: TEMPLATE_DOTENV,
                    defines: None,
                    context: Context::DotEnv(dotenv(site, &env)),
                },
                Artifact {
                    path: NGINX_FILE.into(),
                    template: TEMPLATE_NGINX,
                    defines: None,
                    context: Context::Nginx(nginx(site)),
                },
                Artifact {
                    path: RULES_V4_FILE.into(),
                    template: TEMPLATE_RULES_V4,
                    defines: None,
                    context: Context::Firewall(firewall(site, Family::V4)),
                },
                Artifact {
                    path: RULES_V6_FILE.into(),
                    template: TEMPLATE_RULES_V6,
                    defines: None,
                    context: Context::Firewall(firewall(site, Family::V6)),
                },
            ];
            if has_proxy(site) {
                deploy.push(Artifact {
                    path: SQUID_FILE.into(),
                    template: TEMPLATE_SQUID,
                    defines: None,
                    context: Context::Squid(squid(site)),
                });
            }
            deploy.extend(pull_agent_artifacts(site));
            deploy
        }
        Target::Helm => {
            let mut deploy = vec![Artifact {
                path: HELM_VALUES_FILE.into(),
                template: TEMPLATE_HELM_VALUES,
                defines: None,
                context: Context::Helm(helm(site)),
            }];
            if let Some(app) = argocd_application(site) {
                deploy.push(Artifact {
                    path: ARGOCD_APPLICATION.into(),
                    template: TEMPLATE_ARGOCD_APPLICATION,
                    defines: None,
                    context: Context::ArgoCd(app),
                });
            }
            deploy
        }
    };
    SitePlan {
        site: site.name.clone(),
        builds,
        deploy,
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{cloud, edge};
    use super::*;

    #[test]
    fn edge_site_has_the_compose_outputs() {
        let paths = plan(&edge()).paths();
        assert_eq!(
            paths,
            [
                "compose.yaml",
                "deploy/agent.conf",
                "deploy/apply.sh",
                "deploy/dify-cfg-firewall.service",
                "deploy/dify-cfg-pull.service",
                "deploy/dify-cfg-pull.timer",
                "dify.env",
                "docker/api.Dockerfile",
                "docker/api.Dockerfile.dockerignore",
                "docker/web.Dockerfile",
                "docker/web.Dockerfile.dockerignore",
                "firewall/rules.v4",
                "firewall/rules.v6",
                "nginx/default.conf",
                "ssrf_proxy/squid.conf",
            ]
        );
        let paths = plan(&cloud()).paths();
        assert_eq!(
            paths,
            [
                "argocd/application.yaml",
                "docker/api.Dockerfile",
                "docker/api.Dockerfile.dockerignore",
                "docker/web.Dockerfile",
                "docker/web.Dockerfile.dockerignore",
                "helm/values.yaml",
            ]
        );
    }
}

//! argocd/application.yaml: the Argo CD application of a helm site.

use serde::Serialize;
use serde_json::{Value, json};

use super::common::{SiteInfo, site_info};
use crate::dify::helm::chart_for;
use crate::model::{ServiceKind, Site};

/// Where the Argo CD application goes in the site tree.
pub const ARGOCD_APPLICATION: &str = "argocd/application.yaml";

/// The dify-helm chart's Helm repository and chart name.
pub const HELM_CHART_REPOSITORY: &str = "https://borispolonsky.github.io/dify-helm";
pub const HELM_CHART_NAME: &str = "dify";
/// The Helm release name the values file's header documents.
pub const HELM_RELEASE_NAME: &str = "dify";

/// The Argo CD `Application` of a helm site.
#[derive(Debug, Clone, Serialize)]
pub struct ArgoCdContext {
    pub site: SiteInfo,
    pub branch: String,
    /// The manifest; the template prints it with `toyaml`.
    pub application: Value,
}

/// The Deployments an HPA scales: the chart renders their `replicas` all
/// the same (`replicas: {{ .Values.<component>.replicas }}`, unconditional),
/// so Argo CD must leave that field to the HPA, or every sync would reset
/// the replicas the HPA chose and the application would never be in sync.
fn hpa_deployments(site: &Site) -> Vec<String> {
    let chart = chart_for(&site.dify_version);
    let mut names: Vec<String> = ServiceKind::ALL
        .into_iter()
        .filter(|k| {
            site.services
                .get(k)
                .is_some_and(|s| s.autoscaling.is_some())
        })
        .filter_map(|k| k.helm_key())
        .filter(|key| chart.has_autoscaling(key))
        .filter_map(|key| chart.object_name(HELM_RELEASE_NAME, key))
        .collect();
    names.sort();
    names
}

/// The application: the dify-helm chart at the pinned version, with the
/// values file from the site branch (a second source, referenced as
/// `$values`), into the site's namespace. No automated sync: merging the
/// site's pull request is the approval, a person syncs. The replicas of
/// the Deployments an HPA scales are the HPA's: ignored in the diff and
/// left alone by a sync (`RespectIgnoreDifferences`).
pub(super) fn argocd_application(site: &Site) -> Option<ArgoCdContext> {
    let argo = site.gitops.argocd.as_ref()?;
    let branch = site.gitops.branch(&site.name);
    let scaled = hpa_deployments(site);
    let mut sync_options = vec!["CreateNamespace=true"];
    if !scaled.is_empty() {
        sync_options.push("RespectIgnoreDifferences=true");
    }
    let ignore: Vec<Value> = scaled
        .iter()
        .map(|name| {
            json!({
                "group": "apps",
                "kind": "Deployment",
                "name": name,
                "jsonPointers": ["/spec/replicas"],
            })
        })
        .collect();
    let mut application = json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {
            "name": format!("dify-{}", site.name),
            "namespace": argo.namespace,
            "labels": {
                "app.kubernetes.io/managed-by": "dify-cfg",
                "app.kubernetes.io/part-of": "dify",
                "dify-cfg/site": site.name,
                "dify-cfg/wave": site.wave.to_string(),
            },
        },
        "spec": {
            "project": argo.project,
            "sources": [
                {
                    "repoURL": HELM_CHART_REPOSITORY,
                    "chart": HELM_CHART_NAME,
                    "targetRevision": chart_for(&site.dify_version).version,
                    "helm": {
                        "releaseName": HELM_RELEASE_NAME,
                        "valueFiles": ["$values/helm/values.yaml"],
                    },
                },
                {
                    "repoURL": site.gitops.repository,
                    "targetRevision": branch,
                    "ref": "values",
                },
            ],
            "destination": {
                "server": argo.cluster,
                "namespace": site.helm.namespace,
            },
            "syncPolicy": {
                "syncOptions": sync_options,
            },
        },
    });
    if !ignore.is_empty() {
        application["spec"]["ignoreDifferences"] = Value::Array(ignore);
    }
    Some(ArgoCdContext {
        site: site_info(site),
        branch,
        application,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::fixtures::cloud;
    use crate::plan::pull_agent::pull_agent;

    #[test]
    fn a_helm_site_gets_the_argocd_application_and_no_pull_agent() {
        let site = cloud();
        assert!(pull_agent(&site).is_none());
        let app = argocd_application(&site)
            .expect("an application")
            .application;
        assert_eq!(app["apiVersion"], "argoproj.io/v1alpha1");
        assert_eq!(app["kind"], "Application");
        assert_eq!(app["metadata"]["namespace"], "argocd");
        let spec = &app["spec"];
        assert_eq!(spec["project"], "default");
        let chart = &spec["sources"][0];
        assert_eq!(chart["repoURL"], HELM_CHART_REPOSITORY);
        assert_eq!(chart["chart"], "dify");
        assert_eq!(chart["targetRevision"], crate::dify::HELM_CHART_VERSION);
        assert_eq!(
            chart["helm"]["valueFiles"],
            json!(["$values/helm/values.yaml"])
        );
        let values = &spec["sources"][1];
        assert_eq!(values["repoURL"], site.gitops.repository);
        assert_eq!(values["targetRevision"], "sites/hq");
        assert_eq!(values["ref"], "values");
        assert_eq!(spec["sources"].as_array().unwrap().len(), 2);
        assert_eq!(
            spec["destination"],
            json!({"server": "https://kubernetes.default.svc", "namespace": "dify"})
        );
        // Merging the pull request is the approval: no automated sync.
        assert!(spec["syncPolicy"]["automated"].is_null());
        assert_eq!(
            spec["syncPolicy"]["syncOptions"],
            json!(["CreateNamespace=true", "RespectIgnoreDifferences=true"])
        );
        // The fixture autoscales api, worker and web: their replicas are
        // the HPA's.
        let ignored: Vec<&str> = spec["ignoreDifferences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                assert_eq!(d["jsonPointers"], json!(["/spec/replicas"]));
                d["name"].as_str().unwrap()
            })
            .collect();
        assert_eq!(ignored, ["dify-api", "dify-web", "dify-worker"]);
    }

    #[test]
    fn without_autoscaling_nothing_is_ignored() {
        let mut site = cloud();
        for svc in site.services.values_mut() {
            svc.autoscaling = None;
        }
        let app = argocd_application(&site).unwrap().application;
        assert!(app["spec"].get("ignoreDifferences").is_none());
        assert_eq!(
            app["spec"]["syncPolicy"]["syncOptions"],
            json!(["CreateNamespace=true"])
        );
    }
}

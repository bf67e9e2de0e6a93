//! The Helm values planner's unit tests.
use super::*;
use crate::model::SecretRef;
use crate::plan::fixtures::cloud;
use crate::plan::{BuiltImages, BuiltKind, Context, built_image, plan};

#[test]
fn helm_values_wire_images_resources_and_secrets() {
    let site = cloud();
    let plan = plan(&site);
    let built = BuiltImages {
        api: built_image(&site, BuiltKind::Api, b"api"),
        web: built_image(&site, BuiltKind::Web, b"web"),
    };
    let values = plan
        .deploy_artifacts(&built)
        .into_iter()
        .find_map(|a| match a.context {
            Context::Helm(h) => Some(h.values),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        values["image"]["api"]["repository"],
        "registry.clinics.example.org/dify/dify-api"
    );
    assert_eq!(values["api"]["resources"]["limits"]["memory"], "2Gi");
    assert_eq!(values["api"]["resources"]["requests"]["cpu"], "500m");
    assert_eq!(
        values["api"]["autoscaling"]["targetCPUUtilizationPercentage"],
        70
    );
    assert_eq!(values["postgresql"]["enabled"], false);
    assert_eq!(
        values["externalPostgres"]["address"],
        "postgres.hq.clinics.example.org"
    );
    assert!(values["externalPostgres"].get("password").is_none());
    assert_eq!(
        values["externalRedis"]["host"],
        "redis.hq.clinics.example.org"
    );
    let api_refs = &values["externalSecret"]["api"]["remoteRefs"];
    assert_eq!(api_refs["DB_PASSWORD"]["key"], "dify/database");
    assert_eq!(
        api_refs["INNER_API_KEY_FOR_PLUGIN"]["property"],
        "dify_api_key"
    );
    assert!(
        api_refs["WEAVIATE_API_KEY"].is_null(),
        "chart defaults the site does not fill are removed"
    );
    assert_eq!(
        values["externalSecret"]["sandbox"]["remoteRefs"]["API_KEY"]["key"],
        "dify/sandbox"
    );
    assert_eq!(
        values["externalSecret"]["pluginDaemon"]["remoteRefs"]["SERVER_KEY"]["property"],
        "server_key"
    );
    assert_eq!(
        values["beat"].get("replicas"),
        None,
        "the chart's beat has no replicas"
    );
    let paths = key_paths(&values);
    assert!(paths.contains(&"externalSecret.secretStore.kind".to_string()));
}

#[test]
fn credentials_migration_and_body_size_follow_the_chart() {
    let site = cloud();
    let values = helm_values_of(&site);
    let env = |component: &str| -> BTreeMap<String, Value> {
        values[component]["extraEnv"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| (e["name"].as_str().unwrap().to_string(), e.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    // The store holds no user: a plain value, as on compose sites.
    assert_eq!(env("pluginDaemon")["DB_USERNAME"]["value"], "postgres");
    for c in ["api", "worker", "beat"] {
        assert_eq!(env(c)["DB_USERNAME"]["value"], "postgres", "{c}");
        assert!(!env(c).contains_key("MIGRATION_ENABLED"), "{c}");
    }
    assert_eq!(values["api"]["migration"], true);
    for c in ["api", "worker"] {
        let secret = format!("dify-{c}");
        assert_eq!(
            env(c)["PGVECTOR_PASSWORD"]["valueFrom"]["secretKeyRef"],
            json!({"name": secret, "key": "DB_PASSWORD"})
        );
        assert_eq!(env(c)["PGVECTOR_USER"]["value"], "postgres");
    }
    assert!(!env("beat").contains_key("PGVECTOR_PASSWORD"));
    assert_eq!(
        values["ingress"]["annotations"][INGRESS_BODY_SIZE_ANNOTATION],
        CLIENT_MAX_BODY_SIZE
    );
    assert_eq!(values["proxy"]["clientMaxBodySize"], CLIENT_MAX_BODY_SIZE);
    // Autoscaled Deployments start at the HPA's minimum.
    assert_eq!(values["api"]["replicas"], 2);

    // A user in the store: every component reads it from its Secret.
    let mut remote = cloud();
    remote.secrets.insert(
        "DB_USERNAME".into(),
        SecretRef::Remote {
            key: "dify/database".into(),
            property: "username".into(),
        },
    );
    let values = helm_values_of(&remote);
    assert_eq!(
        values["externalSecret"]["pluginDaemon"]["remoteRefs"]["DB_USERNAME"]["property"],
        "username"
    );
    let daemon = values["pluginDaemon"]["extraEnv"].as_array().unwrap();
    assert!(!daemon.iter().any(|e| e["name"] == "DB_USERNAME"));
    let api_env = values["api"]["extraEnv"].as_array().unwrap();
    assert!(!api_env.iter().any(|e| e["name"] == "DB_USERNAME"));
    let user = api_env
        .iter()
        .find(|e| e["name"] == "PGVECTOR_USER")
        .unwrap();
    assert_eq!(
        user["valueFrom"]["secretKeyRef"],
        json!({"name": "dify-api", "key": "DB_USERNAME"})
    );
}

#[test]
fn the_websocket_keeps_the_settings_its_deployment_fixes() {
    let mut site = cloud();
    let mut ws = site.services[&ServiceKind::Api].clone();
    ws.kind = ServiceKind::ApiWebsocket;
    ws.autoscaling = None;
    site.services.insert(ServiceKind::ApiWebsocket, ws);
    site.env.insert("LOG_LEVEL".into(), "DEBUG".into());
    let values = helm_values_of(&site);
    let names: Vec<&str> = values["apiWebsocket"]["extraEnv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    for fixed in [
        "MIGRATION_ENABLED",
        "SERVER_WORKER_CLASS",
        "SERVER_WORKER_AMOUNT",
        "LOG_LEVEL",
    ] {
        assert!(!names.contains(&fixed), "{fixed}");
    }
    assert_eq!(values["apiWebsocket"]["logLevel"], "DEBUG");
}

/// The chart's values.yaml, when the reference data is present
/// (`../shared/reference` beside the checkout, or DIFY_CFG_REFERENCE).
/// Absent, the test skips with a printed reason, except in CI
/// (DIFY_CFG_REQUIRE_REFERENCE=1), where it fails, as tests/support does.
fn chart_values() -> Option<Value> {
    let dir = std::env::var("DIFY_CFG_REFERENCE")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/reference").into());
    let path = format!("{dir}/dify-helm-{}/values.yaml", dify::HELM_CHART_VERSION);
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(serde_yaml_ng::from_str(&text).expect("the chart's values.yaml parses")),
        Err(e) => {
            let required = std::env::var("DIFY_CFG_REQUIRE_REFERENCE").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "cannot read {path}: {e} (DIFY_CFG_REQUIRE_REFERENCE=1)"
            );
            println!("skipped: cannot read {path}: {e}");
            None
        }
    }
}

fn helm_values_of(site: &Site) -> Value {
    let built = BuiltImages {
        api: built_image(site, BuiltKind::Api, b"api"),
        web: built_image(site, BuiltKind::Web, b"web"),
    };
    plan(site)
        .deploy_artifacts(&built)
        .into_iter()
        .find_map(|a| match a.context {
            Context::Helm(h) => Some(h.values),
            _ => None,
        })
        .expect("helm values")
}

#[test]
fn helm_key_paths_exist_in_the_chart() {
    let Some(reference) = chart_values() else {
        return;
    };
    let mut variants = vec![cloud()];
    let mut everything = cloud();
    let pd = everything.services[&ServiceKind::PluginDaemon].clone();
    for kind in [
        ServiceKind::ApiWebsocket,
        ServiceKind::AgentBackend,
        ServiceKind::LocalSandbox,
    ] {
        let mut s = pd.clone();
        s.kind = kind;
        everything.services.insert(kind, s);
    }
    everything.features.collaboration = true;
    everything.env.insert("LOG_LEVEL".into(), "DEBUG".into());
    everything.secrets.insert(
        "DIFY_AGENT_SHELLCTL_AUTH_TOKEN".into(),
        SecretRef::Remote {
            key: "dify/agent".into(),
            property: "shellctl".into(),
        },
    );
    everything
        .services
        .get_mut(&ServiceKind::Sandbox)
        .unwrap()
        .autoscaling = Some(crate::model::Autoscaling {
        min_replicas: 1,
        max_replicas: 2,
        target_cpu_percent: 80,
    });
    variants.push(everything);
    let mut bundled = cloud();
    bundled.database.external = None;
    bundled.redis.external = None;
    bundled.vector_store = VectorStore::Qdrant;
    bundled
        .env
        .insert("QDRANT_URL".into(), "http://qdrant:6333".into());
    bundled.helm.ingress_class = None;
    variants.push(bundled);
    let mut weaviate = cloud();
    weaviate.vector_store = VectorStore::Weaviate;
    variants.push(weaviate);
    for site in &variants {
        let values = helm_values_of(site);
        let unknown = unknown_key_paths(&values, &reference);
        assert!(
            unknown.is_empty(),
            "key paths the chart does not have: {unknown:?}"
        );
    }
    // Every secret mapping lands on a remoteRefs key of the chart.
    for (component, keys) in chart_for("1.16.0").remote_ref_defaults {
        for key in keys.iter() {
            let path = format!("/externalSecret/{component}/remoteRefs/{key}");
            assert!(reference.pointer(&path).is_some(), "{path}");
        }
    }
    // And the check catches a typo.
    let mut values = helm_values_of(&cloud());
    values["api"]["replica"] = json!(2);
    values["externalSecret"]["api"]["remoteRefs"]["PLUGIN_DIFY_INNER_API_KEY"] =
        json!({"key": "k"});
    assert_eq!(
        unknown_key_paths(&values, &reference),
        [
            "api.replica",
            "externalSecret.api.remoteRefs.PLUGIN_DIFY_INNER_API_KEY",
            "externalSecret.api.remoteRefs.PLUGIN_DIFY_INNER_API_KEY.key"
        ]
    );
}

#[test]
fn unknown_key_paths_accept_free_form_maps() {
    let reference = json!({"api": {"resources": {}, "replicas": 1, "auth": {"key": "x"}}});
    let values = json!({"api": {"resources": {"limits": {"cpu": "1"}}, "replicas": 2, "auth": {"other": 1}}});
    assert_eq!(unknown_key_paths(&values, &reference), ["api.auth.other"]);
}

/// With the marketplace off the chart gives the web no marketplace URL and
/// the web's entrypoint would export a relative one the web refuses: the
/// values give it Dify's default. With it on, the chart's own is used.
#[test]
fn the_web_keeps_an_absolute_marketplace_url() {
    let web_url = |site: &Site| {
        let values = helm_values_of(site);
        values["web"]["extraEnv"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "MARKETPLACE_API_URL")
            .map(|e| e["value"].as_str().unwrap().to_string())
    };
    let mut site = cloud();
    site.features.marketplace = true;
    assert_eq!(web_url(&site), None);
    site.features.marketplace = false;
    assert_eq!(
        web_url(&site).as_deref(),
        Some("https://marketplace.dify.ai")
    );
    assert_eq!(
        helm_values_of(&site)["global"]["marketplace"]["enabled"],
        false
    );
}

use super::*;
use crate::model::SecretRef;
use crate::plan::fixtures::edge;
use crate::plan::{BuiltImages, Context, built_image, plan};

fn compose_of(site: &Site) -> ComposeContext {
    let plan = plan(site);
    let built = BuiltImages {
        api: built_image(site, BuiltKind::Api, b"api"),
        web: built_image(site, BuiltKind::Web, b"web"),
    };
    plan.deploy_artifacts(&built)
        .into_iter()
        .find_map(|a| match a.context {
            Context::Compose(c) => Some(*c),
            _ => None,
        })
        .expect("a compose context")
}

#[test]
fn built_images_replace_the_placeholders() {
    let c = compose_of(&edge());
    let api = c.services.iter().find(|s| s.name == "api").unwrap();
    assert!(
        api.image
            .starts_with("registry.clinics.example.org/dify/dify-api:1.16.0-"),
        "{}",
        api.image
    );
    let web = c.services.iter().find(|s| s.name == "web").unwrap();
    assert!(
        web.image
            .starts_with("registry.clinics.example.org/dify/dify-web:1.16.0-")
    );
    assert!(c.services.iter().all(|s| !s.image.is_empty()));
}

#[test]
fn only_nginx_publishes_and_only_on_the_address() {
    let c = compose_of(&edge());
    for s in &c.services {
        if s.name == "nginx" {
            assert_eq!(s.ports, ["10.20.1.10:80:80"]);
        } else {
            assert!(s.ports.is_empty(), "{} publishes {:?}", s.name, s.ports);
        }
    }
    let mut site = edge();
    site.features.plugin_debugging = true;
    let c = compose_of(&site);
    let pd = c
        .services
        .iter()
        .find(|s| s.name == "plugin_daemon")
        .unwrap();
    assert_eq!(pd.ports, ["10.20.1.10:5003:5003"]);
}

#[test]
fn sandbox_lives_on_the_internal_network_only() {
    let c = compose_of(&edge());
    let sandbox = c.services.iter().find(|s| s.name == "sandbox").unwrap();
    assert_eq!(sandbox.networks, [SSRF_NETWORK]);
    let proxy = c.services.iter().find(|s| s.name == "ssrf_proxy").unwrap();
    assert_eq!(proxy.networks, ["default", SSRF_NETWORK]);
    assert!(
        c.networks
            .iter()
            .any(|n| n.name == SSRF_NETWORK && n.internal)
    );
}

#[test]
fn limits_and_dependencies_follow_the_profile() {
    let c = compose_of(&edge());
    let db = c.services.iter().find(|s| s.name == "db_postgres").unwrap();
    assert_eq!(db.mem_limit, "448m");
    assert_eq!(db.cpus, "0.5");
    let cmd = db.command.as_ref().unwrap().join(" ");
    assert!(
        cmd.contains("max_connections=60") && cmd.contains("shared_buffers=128MB"),
        "{cmd}"
    );
    let redis = c.services.iter().find(|s| s.name == "redis").unwrap();
    let cmd = redis.command.as_ref().unwrap().join(" ");
    assert!(
        cmd.contains("--maxmemory 256mb --maxmemory-policy volatile-lru"),
        "{cmd}"
    );
    assert!(
        cmd.contains("--requirepass ${DIFY_REDIS_PASSWORD:?DIFY_REDIS_PASSWORD must be set}"),
        "{cmd}"
    );
    let api = c.services.iter().find(|s| s.name == "api").unwrap();
    let deps: Vec<_> = api
        .depends_on
        .iter()
        .map(|d| (d.service, d.condition))
        .collect();
    assert_eq!(
        deps,
        [
            ("db_postgres", "service_healthy"),
            ("redis", "service_healthy")
        ]
    );
    let broker = api
        .environment
        .iter()
        .find(|e| e.key == "CELERY_BROKER_URL")
        .unwrap();
    assert_eq!(
        broker.value,
        "redis://:${DIFY_REDIS_PASSWORD:?DIFY_REDIS_PASSWORD must be set}@redis:6379/1"
    );
}

#[test]
fn dollar_signs_in_literals_are_escaped_for_compose() {
    let mut site = edge();
    site.env
        .insert("MAIL_DEFAULT_SEND_FROM".into(), "it's ${HOME}".into());
    let c = compose_of(&site);
    let api = c.services.iter().find(|s| s.name == "api").unwrap();
    let v = api
        .environment
        .iter()
        .find(|e| e.key == "MAIL_DEFAULT_SEND_FROM")
        .unwrap();
    assert_eq!(v.value, "it's $${HOME}");
}

#[test]
fn file_secrets_are_mounted_and_read() {
    let mut site = edge();
    site.secrets.insert(
        "DB_PASSWORD".into(),
        SecretRef::File {
            path: "/etc/dify/db".into(),
        },
    );
    site.secrets.insert(
        "CODE_EXECUTION_API_KEY".into(),
        SecretRef::File {
            path: "/etc/dify/sandbox".into(),
        },
    );
    let c = compose_of(&site);
    assert!(
        c.secrets
            .iter()
            .any(|s| s.name == "db_password" && s.file == "/etc/dify/db")
    );
    let db = c.services.iter().find(|s| s.name == "db_postgres").unwrap();
    assert!(
        db.environment
            .iter()
            .any(|e| e.key == "POSTGRES_PASSWORD_FILE")
    );
    assert!(!db.environment.iter().any(|e| e.key == "POSTGRES_PASSWORD"));
    let api = c.services.iter().find(|s| s.name == "api").unwrap();
    assert!(api.entrypoint.is_some());
    assert!(api.secrets.iter().any(|m| m.target == "PGVECTOR_PASSWORD"));
    let gaps = unsupported_file_secrets(&site);
    assert!(
        gaps.contains(&("CODE_EXECUTION_API_KEY".to_string(), ServiceKind::Sandbox)),
        "{gaps:?}"
    );
    assert!(
        gaps.contains(&("DB_PASSWORD".to_string(), ServiceKind::PluginDaemon)),
        "{gaps:?}"
    );
}

/// The api image carries an HTTP HEALTHCHECK; every other service running
/// it must bring its own check or turn that one off, or compose's
/// `up --wait` would wait for a worker that never answers HTTP.
#[test]
fn services_on_the_api_image_do_not_inherit_its_http_check() {
    let c = compose_of(&edge());
    let on_api_image: Vec<_> = c
        .services
        .iter()
        .filter(|s| s.built == Some(BuiltKind::Api))
        .collect();
    assert!(on_api_image.len() >= 3);
    for s in on_api_image {
        match s.name {
            "api" => assert!(s.healthcheck.is_some() && !s.healthcheck_disabled),
            other => assert!(
                s.healthcheck.is_some() || s.healthcheck_disabled,
                "{other} inherits the api image's HTTP health check"
            ),
        }
    }
}

#[test]
fn tls_publishes_https_mounts_the_box_files_and_turns_the_urls_to_https() {
    use crate::model::PlainHttp;
    use crate::plan::fixtures::edge_tls;
    let nginx_of = |c: &ComposeContext| c.services.iter().find(|s| s.name == "nginx").cloned();
    let c = compose_of(&edge_tls(PlainHttp::Redirect));
    let nginx = nginx_of(&c).unwrap();
    assert_eq!(nginx.ports, ["10.20.1.10:80:80", "10.20.1.10:443:443"]);
    let box_files: Vec<(&str, &str)> = nginx
        .volumes
        .iter()
        .filter_map(|v| match v {
            Volume::BoxFile(b) => {
                assert!(b.read_only && !b.bind.create_host_path && b.kind == "bind");
                Some((b.source.as_str(), b.target))
            }
            Volume::Short(_) => None,
        })
        .collect();
    assert_eq!(
        box_files,
        [
            ("/etc/dify-cfg/tls/clinic-01.crt", "/etc/nginx/tls/site.crt"),
            ("/etc/dify-cfg/tls/clinic-01.key", "/etc/nginx/tls/site.key"),
        ]
    );
    // Box files are not named volumes.
    assert!(
        c.volumes.iter().all(|v| !v.starts_with('/')),
        "{:?}",
        c.volumes
    );
    // The health check stays on plain http, inside the container.
    let health = nginx.healthcheck.unwrap().test.join(" ");
    assert!(
        health.contains("http://127.0.0.1:80/nginx-health"),
        "{health}"
    );
    let web = c.services.iter().find(|s| s.name == "web").unwrap();
    let env: std::collections::BTreeMap<&str, &str> = web
        .environment
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_str()))
        .collect();
    assert_eq!(
        env["CONSOLE_API_URL"],
        "https://clinic-01.clinics.example.org"
    );
    assert_eq!(env["APP_API_URL"], "https://clinic-01.clinics.example.org");
    assert_eq!(env["SERVER_CONSOLE_API_URL"], "http://api:5001");

    // Plain http refused: only https is published.
    let c = compose_of(&edge_tls(PlainHttp::Refuse));
    assert_eq!(nginx_of(&c).unwrap().ports, ["10.20.1.10:443:443"]);
}

#[test]
fn tls_urls_follow_the_scheme_and_port() {
    use crate::model::PlainHttp;
    use crate::plan::common::{base_url, websocket_url};
    use crate::plan::fixtures::edge_tls;
    let mut site = edge_tls(PlainHttp::Redirect);
    assert_eq!(base_url(&site), "https://clinic-01.clinics.example.org");
    assert_eq!(websocket_url(&site), "wss://clinic-01.clinics.example.org");
    site.network.tls.as_mut().unwrap().port = 8443;
    site.network.http_port = 8080;
    assert_eq!(
        base_url(&site),
        "https://clinic-01.clinics.example.org:8443"
    );
    site.network.tls = None;
    assert_eq!(base_url(&site), "http://clinic-01.clinics.example.org:8080");
    assert_eq!(
        websocket_url(&site),
        "ws://clinic-01.clinics.example.org:8080"
    );
    // Every public URL the api reads follows.
    let site = edge_tls(PlainHttp::Allow);
    let settings = crate::plan::settings::shared_settings(&site);
    let urls = &settings
        .iter()
        .find(|(t, _)| *t == "Public URLs")
        .unwrap()
        .1;
    for kv in urls {
        assert!(
            kv.value
                .starts_with("https://clinic-01.clinics.example.org"),
            "{}: {}",
            kv.key,
            kv.value
        );
    }
    for name in crate::dify::tls::SECURE_COOKIE_URLS {
        assert!(urls.iter().any(|kv| kv.key == *name), "{name}");
    }
}

//! Test fixtures: hand-built sites (shared with render's tests).

use std::collections::BTreeMap;

use crate::base::units::{Bytes, Millicores, TimeSpan, TimeUnit};
use crate::dify::release_images;
use crate::input::layer::{DbEngine, EvictionPolicy};
use crate::model::*;

fn service(kind: ServiceKind, mib: u64, millicores: u32, image: &ImageRef) -> Service {
    Service {
        kind,
        memory: Bytes::mib(mib),
        cpus: Millicores(millicores),
        memory_request: Bytes::mib(mib),
        cpus_request: Millicores(millicores),
        replicas: 1,
        workers: None,
        worker_connections: None,
        autoscaling: None,
        image: image.clone(),
    }
}

fn images() -> Images {
    let r = release_images("1.16.0");
    Images {
        sandbox: r.sandbox,
        plugin_daemon: r.plugin_daemon,
        agent_backend: r.agent_backend,
        local_sandbox: r.local_sandbox,
        postgres: r.postgres_pgvector,
        redis: r.redis,
        nginx: r.nginx,
        ssrf_proxy: r.ssrf_proxy,
    }
}

fn build() -> Build {
    let r = release_images("1.16.0");
    Build {
        registry: "registry.clinics.example.org/dify".into(),
        api_base: r.api_base,
        web_base: r.web_base,
        platforms: vec!["linux/amd64".into(), "linux/arm64".into()],
    }
}

fn built_placeholder() -> ImageRef {
    ImageRef {
        repository: "built".into(),
        tag: "by-dify-cfg".into(),
        digest: None,
    }
}

/// clinic-01: a 4 GiB compose edge box (profiles/edge-4gb + multi-branch).
pub fn edge() -> Site {
    let img = images();
    let built = built_placeholder();
    let mut services = BTreeMap::new();
    let mut add = |s: Service| {
        services.insert(s.kind, s);
    };
    let mut api = service(ServiceKind::Api, 512, 1000, &built);
    api.workers = Some(1);
    api.worker_connections = Some(10);
    add(api);
    let mut worker = service(ServiceKind::Worker, 512, 500, &built);
    worker.workers = Some(1);
    add(worker);
    add(service(ServiceKind::WorkerBeat, 128, 100, &built));
    add(service(ServiceKind::Web, 192, 250, &built));
    add(service(ServiceKind::Db, 448, 500, &img.postgres));
    add(service(ServiceKind::Redis, 320, 250, &img.redis));
    add(service(ServiceKind::Sandbox, 192, 250, &img.sandbox));
    add(service(ServiceKind::SsrfProxy, 96, 100, &img.ssrf_proxy));
    add(service(
        ServiceKind::PluginDaemon,
        512,
        500,
        &img.plugin_daemon,
    ));
    add(service(ServiceKind::Nginx, 48, 100, &img.nginx));
    let secrets = [
        ("DB_PASSWORD", "DIFY_DB_PASSWORD"),
        ("REDIS_PASSWORD", "DIFY_REDIS_PASSWORD"),
        ("SECRET_KEY", "DIFY_SECRET_KEY"),
        ("PLUGIN_DAEMON_KEY", "DIFY_PLUGIN_DAEMON_KEY"),
        ("PLUGIN_DIFY_INNER_API_KEY", "DIFY_PLUGIN_INNER_API_KEY"),
        ("CODE_EXECUTION_API_KEY", "DIFY_SANDBOX_API_KEY"),
    ]
    .into_iter()
    .map(|(k, v)| {
        (
            k.to_string(),
            SecretRef::Env {
                name: v.to_string(),
            },
        )
    })
    .collect();
    Site {
        name: "clinic-01".into(),
        file: "sites/clinic-01.toml".into(),
        profile_chain: vec!["multi-branch".into(), "edge-4gb".into()].into(),
        description: "Branch clinic 01".into(),
        target: Target::Compose,
        dify_version: "1.16.0".into(),
        waivers: ReleaseWaivers::default(),
        images: img.into(),
        build: build().into(),
        device: Some(Device {
            memory: Bytes::mib(4096),
            cpus: Millicores(2000),
            reserve_percent: 20,
            headroom_percent: 10,
        }),
        services: services.into(),
        database: Database {
            engine: DbEngine::Postgresql,
            external: None,
            max_connections: 60,
            shared_buffers: Bytes::mib(128),
            work_mem: Bytes::mib(4),
            maintenance_work_mem: Bytes::mib(32),
            effective_cache_size: Bytes::mib(384),
            pool_size: 10,
            max_overflow: 2,
            vector_connections: 3,
            plugin_connections: 10,
            name: "dify".into(),
            plugin_name: "dify_plugin".into(),
        }
        .into(),
        redis: Redis {
            maxmemory: Bytes::mib(256),
            policy: EvictionPolicy::VolatileLru,
            external: None,
        }
        .into(),
        vector_store: VectorStore::Pgvector,
        network: Network {
            hostname: "clinic-01.clinics.example.org".into(),
            lan: Some("10.20.1.0/24".parse().unwrap()),
            address: Some("10.20.1.10".parse().unwrap()),
            lan6: None,
            admin: vec!["10.0.0.0/24".parse().unwrap()].into(),
            ssh_from: vec!["10.0.0.0/28".parse().unwrap()].into(),
            ssh_port: 22,
            http_port: 80,
            public_routes: vec!["/v1".into()].into(),
            egress: vec![Egress {
                name: "llm-gateway".into(),
                cidr: "10.0.0.40/32".parse().unwrap(),
                ports: vec![443],
            }]
            .into(),
            tls: None,
        },
        login: Login {
            allow_register: false,
            allow_create_workspace: false,
            email_password: true,
            email_code: false,
            social_oauth: false,
        },
        features: Features {
            collaboration: false,
            code_execution: true,
            marketplace: true,
            plugin_debugging: false,
        },
        helm: Helm {
            namespace: "dify".into(),
            secret_store: "none".into(),
            secret_store_kind: "SecretStore".into(),
            ingress_class: None,
        }
        .into(),
        env: [("LOG_LEVEL", "INFO"), ("GUNICORN_TIMEOUT", "360")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        secrets,
        wave: 1,
        labels: [("fleet", "clinics"), ("clinic", "01")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        gitops: Gitops {
            repository: "https://git.clinics.example.org/platform/dify-fleet.git".into(),
            branch_prefix: "sites/".into(),
            pull: Some(Pull {
                interval: TimeSpan::new(5, TimeUnit::Minutes),
                confirm_timeout: TimeSpan::new(120, TimeUnit::Seconds),
                keep_backups: 3,
                report_applied: false,
            }),
            argocd: None,
        }
        .into(),
    }
}

/// clinic-01 with TLS at nginx: the box's certificate and key, https on
/// 443, plain http as `http` says.
pub fn edge_tls(http: PlainHttp) -> Site {
    let mut site = edge();
    site.network.tls = Some(Tls {
        certificate: "/etc/dify-cfg/tls/clinic-01.crt".into(),
        key: "/etc/dify-cfg/tls/clinic-01.key".into(),
        port: 443,
        http,
    });
    site
}

/// hq: the helm cloud site (profiles/cloud + sites/hq).
pub fn cloud() -> Site {
    let mut site = edge();
    site.name = "hq".into();
    site.file = "sites/hq.toml".into();
    site.profile_chain = vec!["cloud".into()].into();
    site.description = "Head office cluster".into();
    site.target = Target::Helm;
    site.device = None;
    site.services = cloud_services().into();
    site.database.external = Some(External {
        host: "postgres.hq.clinics.example.org".into(),
        port: 5432,
        database: Some("dify".into()),
    });
    site.database.pool_size = 30;
    site.redis.external = Some(External {
        host: "redis.hq.clinics.example.org".into(),
        port: 6379,
        database: None,
    });
    site.network = Network {
        hostname: "dify.clinics.example.org".into(),
        lan: None,
        address: None,
        lan6: None,
        admin: vec!["10.0.0.0/24".parse().unwrap()].into(),
        ssh_from: Shared::default(),
        ssh_port: 22,
        http_port: 80,
        public_routes: vec!["/v1".into()].into(),
        egress: Shared::default(),
        tls: None,
    };
    site.helm = Helm {
        namespace: "dify".into(),
        secret_store: "clinic-vault".into(),
        secret_store_kind: "ClusterSecretStore".into(),
        ingress_class: Some("nginx".into()),
    }
    .into();
    site.env = Shared::default();
    site.secrets = [
        ("DB_PASSWORD", "dify/database", "password"),
        ("REDIS_PASSWORD", "dify/redis", "password"),
        ("SECRET_KEY", "dify/api", "secret_key"),
        ("PLUGIN_DAEMON_KEY", "dify/plugin-daemon", "server_key"),
        (
            "PLUGIN_DIFY_INNER_API_KEY",
            "dify/plugin-daemon",
            "dify_api_key",
        ),
        ("CODE_EXECUTION_API_KEY", "dify/sandbox", "api_key"),
    ]
    .into_iter()
    .map(|(n, k, p)| {
        (
            n.to_string(),
            SecretRef::Remote {
                key: k.into(),
                property: p.into(),
            },
        )
    })
    .collect();
    site.labels = [("site".to_string(), "hq".to_string())]
        .into_iter()
        .collect();
    site.gitops.pull = None;
    site.gitops.argocd = Some(ArgoCd {
        namespace: "argocd".into(),
        project: "default".into(),
        cluster: "https://kubernetes.default.svc".into(),
    });
    site
}

/// The services of hq: larger, with requests below limits, and autoscaling
/// where the chart has it.
fn cloud_services() -> BTreeMap<ServiceKind, Service> {
    let img = images();
    let built = built_placeholder();
    let autoscale = |min, max| Autoscaling {
        min_replicas: min,
        max_replicas: max,
        target_cpu_percent: 70,
    };
    let mut services = BTreeMap::new();
    let mut add = |kind,
                   limit_mib,
                   request_mib,
                   cpus,
                   cpus_req,
                   image: &ImageRef,
                   scaling: Option<Autoscaling>| {
        let mut s = service(kind, limit_mib, cpus, image);
        s.memory_request = Bytes::mib(request_mib);
        s.cpus_request = Millicores(cpus_req);
        s.autoscaling = scaling;
        if let Some(a) = scaling {
            s.replicas = a.min_replicas;
        }
        services.insert(kind, s);
    };
    add(
        ServiceKind::Api,
        2048,
        1024,
        2000,
        500,
        &built,
        Some(autoscale(2, 6)),
    );
    add(
        ServiceKind::Worker,
        2048,
        1024,
        2000,
        500,
        &built,
        Some(autoscale(1, 4)),
    );
    add(ServiceKind::WorkerBeat, 256, 256, 250, 250, &built, None);
    add(
        ServiceKind::Web,
        512,
        256,
        1000,
        250,
        &built,
        Some(autoscale(2, 4)),
    );
    add(ServiceKind::Sandbox, 512, 512, 500, 500, &img.sandbox, None);
    add(
        ServiceKind::SsrfProxy,
        256,
        256,
        250,
        250,
        &img.ssrf_proxy,
        None,
    );
    add(
        ServiceKind::PluginDaemon,
        2048,
        1024,
        1000,
        500,
        &img.plugin_daemon,
        None,
    );
    add(ServiceKind::Nginx, 128, 128, 250, 250, &img.nginx, None);
    if let Some(api) = services.get_mut(&ServiceKind::Api) {
        api.workers = Some(2);
        api.worker_connections = Some(10);
    }
    if let Some(w) = services.get_mut(&ServiceKind::Worker) {
        w.workers = Some(4);
    }
    services
}

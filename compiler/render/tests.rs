//! The renderer end to end: the built-in templates over the fixture sites,
//! and what it refuses.

use std::collections::BTreeSet;

use serde_yaml_ng::Value as Yaml;

use super::*;
use crate::base::source::FileKind;
use crate::input::templates::BUILTIN_TEMPLATES;
use crate::model::{SecretRef, ServiceKind};
use crate::plan::fixtures::{cloud, edge};

fn render(site: &Site) -> BTreeMap<String, String> {
    render_builtin(site)
        .into_iter()
        .map(|(path, bytes)| (path, String::from_utf8(bytes).expect("UTF-8 output")))
        .collect()
}

fn yaml(text: &str) -> Yaml {
    serde_yaml_ng::from_str(text).unwrap_or_else(|e| panic!("not YAML: {e}\n{text}"))
}

fn get<'a>(v: &'a Yaml, path: &[&str]) -> &'a Yaml {
    path.iter().fold(v, |v, k| &v[*k])
}

fn env_of(service: &Yaml) -> BTreeMap<String, String> {
    match &service["environment"] {
        Yaml::Mapping(m) => m
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().unwrap().to_string(),
                    v.as_str().unwrap_or_default().to_string(),
                )
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

#[test]
fn edge_site_renders_the_compose_file_set() {
    let files = render(&edge());
    let paths: Vec<&str> = files.keys().map(String::as_str).collect();
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
    for (path, text) in &files {
        assert!(
            text.ends_with('\n') && !text.ends_with("\n\n"),
            "{path} must end with one newline"
        );
        assert!(!text.contains('\r'), "{path} has CR");
        assert!(
            !text.contains(env!("CARGO_MANIFEST_DIR")),
            "{path} has a path of the build machine"
        );
    }
}

#[test]
fn cloud_site_renders_helm_values() {
    let files = render(&cloud());
    let paths: Vec<&str> = files.keys().map(String::as_str).collect();
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
    let values = yaml(&files["helm/values.yaml"]);
    assert_eq!(
        get(&values, &["api", "resources", "limits", "memory"]).as_str(),
        Some("2Gi")
    );
    assert_eq!(
        get(&values, &["api", "autoscaling", "minReplicas"]).as_u64(),
        Some(2)
    );
    assert_eq!(
        get(&values, &["externalSecret", "secretStore", "name"]).as_str(),
        Some("clinic-vault")
    );
    assert!(
        get(
            &values,
            &["externalSecret", "api", "remoteRefs", "S3_ACCESS_KEY"]
        )
        .is_null()
    );
    let tag = get(&values, &["image", "api", "tag"]).as_str().unwrap();
    assert!(
        tag.starts_with("1.16.0-") && tag.len() == "1.16.0-".len() + 12,
        "{tag}"
    );
}

#[test]
fn compose_parses_and_publishes_only_nginx_on_the_address() {
    let files = render(&edge());
    let compose = yaml(&files["compose.yaml"]);
    let services = compose["services"].as_mapping().expect("services");
    let names: BTreeSet<&str> = services.keys().map(|k| k.as_str().unwrap()).collect();
    let expected: BTreeSet<&str> = edge().services.keys().map(|k| k.compose_name()).collect();
    assert_eq!(names, expected);
    for (name, svc) in services {
        let name = name.as_str().unwrap();
        match name {
            "nginx" => {
                let ports: Vec<&str> = svc["ports"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .map(|p| p.as_str().unwrap())
                    .collect();
                assert_eq!(ports, ["10.20.1.10:80:80"]);
            }
            _ => assert!(svc.get("ports").is_none(), "{name} publishes a port"),
        }
        assert_eq!(svc["restart"].as_str(), Some("unless-stopped"));
        assert!(
            svc["mem_limit"].as_str().is_some(),
            "{name} has no memory limit"
        );
        let image = svc["image"].as_str().unwrap();
        assert!(
            image.contains(':') && !image.ends_with(":latest"),
            "{name}: {image}"
        );
    }
    assert_eq!(
        get(&compose, &["services", "db_postgres", "mem_limit"]).as_str(),
        Some("448m")
    );
    assert_eq!(
        get(&compose, &["networks", "ssrf_proxy_network", "internal"]).as_bool(),
        Some(true)
    );
    let sandbox_nets = get(&compose, &["services", "sandbox", "networks"])
        .as_sequence()
        .unwrap();
    assert_eq!(sandbox_nets.len(), 1);
    assert_eq!(sandbox_nets[0].as_str(), Some("ssrf_proxy_network"));
}

#[test]
fn compose_names_the_built_images_by_dockerfile_hash() {
    let files = render(&edge());
    let compose = yaml(&files["compose.yaml"]);
    let hash = crate::base::source::sha256_hex(files["docker/api.Dockerfile"].as_bytes());
    let expected = format!(
        "registry.clinics.example.org/dify/dify-api:1.16.0-{}",
        &hash[..12]
    );
    for svc in ["api", "worker", "worker_beat"] {
        assert_eq!(
            get(&compose, &["services", svc, "image"]).as_str(),
            Some(expected.as_str())
        );
    }
    let hash = crate::base::source::sha256_hex(files["docker/web.Dockerfile"].as_bytes());
    let expected = format!(
        "registry.clinics.example.org/dify/dify-web:1.16.0-{}",
        &hash[..12]
    );
    assert_eq!(
        get(&compose, &["services", "web", "image"]).as_str(),
        Some(expected.as_str())
    );
}

#[test]
fn api_dockerfile_layers_dependencies_before_source() {
    let files = render(&edge());
    let df = &files["docker/api.Dockerfile"];
    let pos = |needle: &str| {
        df.find(needle)
            .unwrap_or_else(|| panic!("no `{needle}` in\n{df}"))
    };
    let lock = pos("COPY api/pyproject.toml api/uv.lock ./");
    let sync = pos("uv sync --frozen --no-dev --no-install-project --no-install-workspace");
    let source = pos("COPY --chown=1001:1001 api /app/api/");
    assert!(
        lock < sync && sync < source,
        "dependency layers must come before the source"
    );
    assert!(df.contains("--mount=type=cache"));
    assert!(df.contains("FROM python:3.12-slim-bookworm AS base"));
    assert!(df.contains("FROM base AS packages") && df.contains("FROM base AS production"));
    assert!(df.contains("COPY --from=packages"));
    assert!(df.contains("\nUSER 1001:1001\n") && df.contains("\nEXPOSE 5001\n"));
    assert!(df.contains("ENTRYPOINT [\"/bin/bash\", \"/entrypoint.sh\"]"));
    assert!(df.contains("HEALTHCHECK") && df.contains("/health"));
    assert!(df.contains("LABEL org.opencontainers.image.revision=\"1.16.0\""));
    // The last USER is not root and nothing after it switches back.
    let last_user = df.rfind("\nUSER ").unwrap();
    assert!(!df[last_user..].contains("USER root") && !df[last_user..].starts_with("\nUSER 0"));
    // The build is shared by sites: no site name in it.
    assert!(!df.contains("clinic-01"));
    let web = &files["docker/web.Dockerfile"];
    assert!(
        web.find("COPY package.json pnpm-lock.yaml pnpm-workspace.yaml ./")
            .unwrap()
            < web.find("pnpm install --frozen-lockfile").unwrap()
    );
    assert!(
        web.find("pnpm install --frozen-lockfile").unwrap() < web.find("RUN pnpm build").unwrap()
    );
    assert!(web.contains("EXPOSE 3000") && web.contains("wget"));
}

#[test]
fn pinned_digests_reach_the_dockerfile() {
    let mut site = edge();
    let digest = format!("sha256:{}", "a".repeat(64));
    site.build.api_base.digest = Some(digest.clone());
    let files = render(&site);
    assert!(
        files["docker/api.Dockerfile"]
            .contains(&format!("FROM python:3.12-slim-bookworm@{digest} AS base"))
    );
}

/// Every environment key of Dify's own services, and every setting in
/// dify.env, is a Dify setting or one of the image's own names.
#[test]
fn every_env_name_is_known() {
    for site in [edge(), with_everything(edge())] {
        let files = render(&site);
        for line in files["dify.env"].lines() {
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let (name, _) = line.split_once('=').expect("NAME=value");
            assert!(
                crate::dify::is_env_name(name),
                "dify.env sets unknown `{name}`"
            );
        }
        let compose = yaml(&files["compose.yaml"]);
        for (name, svc) in compose["services"].as_mapping().unwrap() {
            let name = name.as_str().unwrap();
            let kind = ServiceKind::ALL
                .into_iter()
                .find(|k| k.compose_name() == name)
                .unwrap();
            let own = crate::dify::image_env_names(kind);
            for var in env_of(svc).keys() {
                assert!(
                    crate::dify::is_env_name(var) || own.contains(&var.as_str()),
                    "{name} sets `{var}`, neither a Dify setting nor one of the image's own"
                );
            }
        }
    }
}

fn with_everything(mut site: Site) -> Site {
    let api = site.services[&ServiceKind::Api].clone();
    let pd = site.services[&ServiceKind::PluginDaemon].clone();
    for (kind, from) in [
        (ServiceKind::ApiWebsocket, &api),
        (ServiceKind::AgentBackend, &pd),
        (ServiceKind::LocalSandbox, &pd),
    ] {
        let mut s = from.clone();
        s.kind = kind;
        site.services.insert(kind, s);
    }
    site.features.collaboration = true;
    site.features.plugin_debugging = true;
    site.secrets.insert(
        "DIFY_AGENT_SHELLCTL_AUTH_TOKEN".into(),
        SecretRef::Env {
            name: "DIFY_SHELLCTL_TOKEN".into(),
        },
    );
    site
}

#[test]
fn secrets_appear_only_as_references() {
    let site = edge();
    let files = render(&site);
    let compose = yaml(&files["compose.yaml"]);
    let mut seen = 0;
    for (_, svc) in compose["services"].as_mapping().unwrap() {
        for (var, value) in env_of(svc) {
            if crate::dify::is_secret_name(&var)
                || [
                    "API_KEY",
                    "SERVER_KEY",
                    "DIFY_INNER_API_KEY",
                    "POSTGRES_PASSWORD",
                    "REDISCLI_AUTH",
                ]
                .contains(&var.as_str())
            {
                seen += 1;
                assert!(
                    value.contains("${DIFY_") && value.contains(":?"),
                    "{var} = {value} is not a reference"
                );
            }
        }
    }
    assert!(seen >= 10, "expected the secrets to be wired, saw {seen}");
    for name in site.secrets.keys() {
        assert!(
            !files["dify.env"].contains(&format!("{name}=")),
            "dify.env sets secret {name}"
        );
    }
    let values = render(&cloud());
    let text = &values["helm/values.yaml"];
    assert!(
        !text.contains("difyai123456") && !text.contains("password: \""),
        "no secret values in helm values"
    );
}

#[test]
fn hostile_strings_stay_inert() {
    let hostile = "x\n---\nevil: {{ 7*7 }} ${HOME} \"q\" 'q': y\u{2028}z\u{85}\u{7f}# end";
    let mut site = edge();
    site.description = hostile.to_string();
    site.labels.insert("note".into(), hostile.to_string());
    site.env
        .insert("MAIL_DEFAULT_SEND_FROM".into(), hostile.to_string());
    site.env
        .insert("LOG_TZ".into(), "UTC${HOME}{{ x }}: ---".to_string());
    let files = render(&site);
    let text = &files["compose.yaml"];
    let compose = yaml(text);
    let unescape = |v: &Yaml| v.as_str().unwrap().replace("$$", "$");
    // Still one document with the same top-level keys.
    let keys: Vec<&str> = compose
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["name", "x-dify-cfg", "services", "networks", "volumes"]
    );
    assert_eq!(
        unescape(get(&compose, &["x-dify-cfg", "description"])),
        hostile
    );
    assert_eq!(
        unescape(get(&compose, &["x-dify-cfg", "labels", "note"])),
        hostile
    );
    assert_eq!(
        unescape(get(&compose, &["services", "api", "labels", "note"])),
        hostile
    );
    assert_eq!(
        unescape(get(
            &compose,
            &["services", "api", "environment", "MAIL_DEFAULT_SEND_FROM"]
        )),
        hostile
    );
    assert!(get(&compose, &["evil"]).is_null());
    // The representable value went to dify.env, single-quoted and literal.
    assert!(files["dify.env"].contains("LOG_TZ='UTC${HOME}{{ x }}: ---'"));
    // The unrepresentable one is named, not written.
    assert!(files["dify.env"].contains("#   MAIL_DEFAULT_SEND_FROM"));
    assert!(!files["dify.env"].contains("evil"));
    // Comments elsewhere stay on one line.
    for path in ["nginx/default.conf", "firewall/rules.v4", "dify.env"] {
        assert!(!files[path].contains("\n---"), "{path}");
    }
}

#[test]
fn hostile_strings_stay_inert_in_helm_values() {
    let hostile = "a\nb: c\n- d\u{2028}{{ e }}";
    let mut site = cloud();
    site.description = hostile.into();
    site.env
        .insert("MAIL_DEFAULT_SEND_FROM".into(), hostile.into());
    let files = render(&site);
    let values = yaml(&files["helm/values.yaml"]);
    let env = get(&values, &["api", "extraEnv"]).as_sequence().unwrap();
    let entry = env
        .iter()
        .find(|e| e["name"].as_str() == Some("MAIL_DEFAULT_SEND_FROM"))
        .unwrap();
    assert_eq!(entry["value"].as_str(), Some(hostile));
    assert!(get(&values, &["b"]).is_null());
}

/// `cargo test --lib dump_rendered -- --ignored` writes the two fixture
/// sites to `$DIFY_CFG_DUMP` for a look with the real tools.
#[test]
#[ignore]
fn dump_rendered() {
    let Ok(dir) = std::env::var("DIFY_CFG_DUMP") else {
        return;
    };
    let mut full = with_everything(edge());
    full.name = "clinic-full".into();
    full.secrets.insert(
        "REDIS_PASSWORD".into(),
        SecretRef::File {
            path: "/etc/dify/redis_password".into(),
        },
    );
    full.secrets.insert(
        "DB_PASSWORD".into(),
        SecretRef::File {
            path: "/etc/dify/db_password".into(),
        },
    );
    full.network.lan6 = Some("fd00:20:1::/64".parse().unwrap());
    full.network.admin.push("fd00:0:0:1::/64".parse().unwrap());
    full.network
        .ssh_from
        .push("fd00:0:0:1::/64".parse().unwrap());
    full.network.public_routes =
        vec!["/v1/chat-messages".into(), "/v1/completion-messages".into()].into();
    let mut hostile = edge();
    hostile.name = "clinic-hostile".into();
    let text = "x\n---\nevil: {{ 7*7 }} ${HOME} \"q\" 'q': y\u{2028}z\u{85}\u{7f}# end";
    hostile.description = text.into();
    hostile.labels.insert("note".into(), text.into());
    hostile
        .env
        .insert("MAIL_DEFAULT_SEND_FROM".into(), text.into());
    let mut hostile_hq = cloud();
    hostile_hq.name = "hq-hostile".into();
    hostile_hq.description = text.into();
    hostile_hq
        .env
        .insert("MAIL_DEFAULT_SEND_FROM".into(), text.into());
    for site in [edge(), cloud(), full, hostile, hostile_hq] {
        for (path, text) in render(&site) {
            let p = std::path::Path::new(&dir).join(&site.name).join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
    }
}

#[test]
fn rendering_is_deterministic() {
    for site in [edge(), cloud()] {
        assert_eq!(render(&site), render(&site));
    }
}

#[test]
fn firewall_files_are_restore_format() {
    let files = render(&edge());
    for path in ["firewall/rules.v4", "firewall/rules.v6"] {
        let text = &files[path];
        assert!(text.contains("\n*filter\n"), "{path}");
        assert!(text.trim_end().ends_with("COMMIT"), "{path}");
        assert!(text.contains(":DOCKER-USER - [0:0]") && text.contains(":DIFY-INPUT - [0:0]"));
        for line in text.lines().filter(|l| l.starts_with("-A ")) {
            assert!(line.contains("-m comment --comment \"dify-cfg: "), "{line}");
            assert!(line.contains(" -j "), "{line}");
        }
    }
    let v4 = &files["firewall/rules.v4"];
    assert!(v4.contains(
        "-A DIFY-DOCKER -o dify-br0 -s 10.20.1.0/24 -p tcp -m conntrack --ctstate NEW --ctorigdst 10.20.1.10 --ctorigdstport 80"
    ));
    assert!(
        v4.contains("-A DIFY-INPUT -s 10.0.0.0/28 -p tcp --dport 22 -m conntrack --ctstate NEW")
    );
    assert!(v4.contains("-A DIFY-DOCKER -i dify-br0 -d 10.0.0.40/32 -p tcp --dport 443"));
    let v6 = &files["firewall/rules.v6"];
    assert!(v6.contains("--icmpv6-type neighbour-solicitation -m hl --hl-eq 255"));
    assert!(!v6.contains("--icmp-type "));
}

#[test]
fn nginx_allows_lan_only_on_public_routes() {
    let files = render(&edge());
    let conf = &files["nginx/default.conf"];
    let block = |path: &str| {
        let start = conf
            .find(&format!("location {path} {{"))
            .unwrap_or_else(|| panic!("no {path}\n{conf}"));
        &conf[start..start + conf[start..].find('}').unwrap()]
    };
    assert!(block("/v1").contains("allow 10.20.1.0/24;"));
    assert!(block("/v1").contains("allow 10.0.0.0/24;"));
    assert!(!block("/console/api").contains("10.20.1.0/24"));
    assert!(block("/console/api").contains("deny all;"));
    assert!(block("/e/").contains("proxy_pass $dify_plugin_daemon;"));
    assert!(conf.contains("resolver 127.0.0.11 valid=10s ipv6=off;"));
    assert!(conf.contains("set $dify_api http://api:5001;"));
    assert!(conf.contains("server_name clinic-01.clinics.example.org;"));
    assert!(!conf.contains("socket.io"));
}

#[test]
fn template_errors_are_located() {
    let mut sources = SourceMap::new();
    let mut templates = BTreeMap::new();
    for (name, text) in BUILTIN_TEMPLATES {
        let text = match *name {
            "nginx.conf" => "line one\n{% if %}\n",
            "rules.v4" => "ok\n{{ no_such_variable }}\n",
            _ => text,
        };
        let id = sources.add(
            format!("templates/{name}"),
            FileKind::Template,
            text.to_string(),
        );
        templates.insert((*name).to_string(), id);
    }
    let diags = Renderer::new(&sources, &templates).unwrap_err();
    let d = diags.iter().next().unwrap();
    assert_eq!(d.code, Code::TemplateSyntax);
    let loc = sources.location(d.span.as_ref().unwrap());
    assert_eq!((loc.path.as_str(), loc.line), ("templates/nginx.conf", 2));

    let fixed = sources.add(
        "templates/nginx.conf".into(),
        FileKind::Template,
        "ok\n".into(),
    );
    templates.insert("nginx.conf".into(), fixed);
    let renderer = Renderer::new(&sources, &templates).unwrap();
    let diags = renderer.render_site(&edge()).unwrap_err();
    let d = diags.iter().next().unwrap();
    assert_eq!(d.code, Code::TemplateError);
    assert!(
        d.message.contains("no_such_variable") || d.message.contains("undefined"),
        "{}",
        d.message
    );
    let loc = sources.location(d.span.as_ref().unwrap());
    assert_eq!((loc.path.as_str(), loc.line), ("templates/rules.v4", 2));
}

/// The codes of the diagnostics a site's rendering is refused with.
fn refusals(site: &Site) -> Vec<&'static str> {
    let (sources, templates) = builtin_sources();
    let renderer = Renderer::new(&sources, &templates).unwrap();
    let diags = renderer.render_site(site).unwrap_err();
    diags.iter().map(|d| d.code.as_str()).collect()
}

#[test]
fn values_printed_raw_are_checked_again() {
    let mut site = edge();
    site.network.hostname = "x;\n}\nserver {".into();
    site.build.api_base.tag = "3.12\nRUN curl evil".into();
    assert_eq!(refusals(&site), ["unsafe-value", "unsafe-value"]);
}

/// Render `site` with the built-in templates, `apply.sh` replaced.
fn render_with_script(site: &Site, script: &str) -> Result<String, Diagnostics> {
    let (mut sources, mut templates) = builtin_sources();
    let id = sources.add(
        "templates/apply.sh".into(),
        FileKind::Template,
        script.to_string(),
    );
    templates.insert("apply.sh".into(), id);
    let renderer = Renderer::new(&sources, &templates).unwrap();
    renderer.render_site(site).map(|files| {
        let file = files
            .into_iter()
            .find(|f| f.path == "deploy/apply.sh")
            .unwrap();
        String::from_utf8(file.bytes).unwrap()
    })
}

#[test]
fn shell_templates_print_every_value_as_one_quoted_word() {
    // The pull agent's script sees nothing of the site (it is the same file
    // at every site), so the hostile value comes as a template string.
    let hostile = "it's $(touch /tmp/dify-cfg-pwned) `id` ${HOME}; exit 3 # x";
    let site = edge();
    let script = render_with_script(
        &site,
        &format!(
            "#!/bin/sh\n# {{{{ \"{hostile}\"|comment }}}}\nX={{{{ \"{hostile}\" }}}}\nN={{{{ max_confirm_seconds }}}}\nprintf '%s|%s' \"$X\" \"$N\"\n"
        ),
    )
    .unwrap();
    assert!(script.contains(r"X='it'\''s $(touch"), "{script}");
    assert!(script.contains("N='86400'"), "{script}");
    let out = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(out.status.success(), "{script}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{hostile}|86400")
    );
    // A list has no single shell word: the template must say how.
    let err = render_with_script(&site, "{{ required }}\n").unwrap_err();
    assert_eq!(err.iter().next().unwrap().code, Code::TemplateError);
    // And the site's values are not there to print.
    let err = render_with_script(&site, "{{ site.name }}\n").unwrap_err();
    assert_eq!(err.iter().next().unwrap().code, Code::TemplateError);
}

#[test]
fn the_rendered_pull_agent_quotes_its_values() {
    let files = render(&edge());
    let script = &files["deploy/apply.sh"];
    assert!(script.starts_with("#!/bin/sh\n"), "{script}");
    for line in [
        "DEFAULT_AGENT_CONF='/etc/dify-cfg/agent.conf'",
        "MAX_CONFIRM_TIMEOUT='86400'",
        "FIREWALL_FLUSHED='INPUT DIFY-INPUT DIFY-DOCKER DOCKER-USER'",
    ] {
        assert!(script.lines().any(|l| l == line), "no line {line}");
    }
    // The site's values are in agent.conf, as the script reads them.
    assert!(!script.contains("clinic-01"), "{script}");
    let conf = &files["deploy/agent.conf"];
    for line in [
        "SITE=clinic-01",
        "BRANCH=sites/clinic-01",
        "REPOSITORY=https://git.clinics.example.org/platform/dify-fleet.git",
        "CONFIRM_TIMEOUT=120",
    ] {
        assert!(conf.lines().any(|l| l == line), "no line {line}");
    }
    let timer = &files["deploy/dify-cfg-pull.timer"];
    assert!(
        timer.lines().any(|l| l == "OnUnitActiveSec=5min"),
        "{timer}"
    );
    let service = &files["deploy/dify-cfg-pull.service"];
    assert!(
        service
            .lines()
            .any(|l| l == "ExecStart=/bin/sh /opt/dify-cfg/apply.sh"),
        "{service}"
    );
}

#[test]
fn unsafe_gitops_values_are_checked_again() {
    let mut site = edge();
    site.gitops.repository = "https://x.org/a.git\nExecStartPre=/bin/evil".into();
    site.gitops.branch_prefix = "sites/%n/".into();
    assert_eq!(refusals(&site), ["unsafe-value", "unsafe-value"]);
}

#[test]
fn the_argocd_application_is_one_yaml_document() {
    let files = render(&cloud());
    let app = yaml(&files["argocd/application.yaml"]);
    assert_eq!(get(&app, &["kind"]).as_str(), Some("Application"));
    assert_eq!(
        get(&app, &["spec", "sources"]).as_sequence().unwrap().len(),
        2
    );
    assert_eq!(
        app["spec"]["sources"][1]["targetRevision"].as_str(),
        Some("sites/hq")
    );
}

#[test]
fn a_template_set_without_an_output_kind_is_refused() {
    let (sources, mut templates) = builtin_sources();
    templates.remove("nginx.conf");
    let diags = Renderer::new(&sources, &templates).unwrap_err();
    let codes: Vec<(Code, &str)> = diags.iter().map(|d| (d.code, d.message.as_str())).collect();
    assert_eq!(
        codes,
        [(Code::TemplateMissing, "there is no template `nginx.conf`")]
    );
}

#[test]
fn the_built_in_templates_take_a_tenth_of_their_budget_at_most() {
    let (sources, templates) = builtin_sources();
    let mut renderer = Renderer::new(&sources, &templates).expect("built-in templates compile");
    renderer.env.set_fuel(Some(super::TEMPLATE_FUEL / 10));
    for site in [with_everything(edge()), with_everything(cloud())] {
        if let Err(d) = renderer.render_site(&site) {
            panic!("{}", d.render_text(&sources, false));
        }
    }
}

#[test]
fn a_template_past_its_budget_stops_there() {
    let loops =
        "ok\n{% for a in range(1000) %}{% for b in range(1000) %}{{ a }}{% endfor %}{% endfor %}\n";
    let output = "ok\n{% for a in range(200) %}{{ 'x' * 100000 }}{% endfor %}\n";
    for (script, message) in [(loops, "steps"), (output, "MiB")] {
        let diags = render_with_script(&edge(), script).unwrap_err();
        let d = diags.iter().next().unwrap();
        assert_eq!(d.code, Code::TemplateBudget, "{}", d.message);
        assert!(d.message.contains(message), "{}", d.message);
        assert!(
            d.help
                .as_deref()
                .is_some_and(|h| h.contains("for one file"))
        );
    }
}

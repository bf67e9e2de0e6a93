//! The facts dify-cfg carries as data agree with Dify's own files. These
//! tests need `../shared/reference` (CI has it); elsewhere they skip with a
//! printed reason.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::support;

/// Setting names in the deployment's env examples (`NAME=value`, also
/// commented out).
pub(crate) fn env_example_names(dir: &Path, out: &mut BTreeSet<String>) {
    for e in walkdir::WalkDir::new(dir).into_iter().flatten() {
        let name = e.file_name().to_string_lossy();
        if !e.file_type().is_file() || !name.ends_with(".env.example") {
            continue;
        }
        let text = std::fs::read_to_string(e.path()).unwrap();
        for line in text.lines() {
            let line = line.trim_start().trim_start_matches('#').trim_start();
            if let Some((k, _)) = line.split_once('=')
                && is_setting_name(k)
            {
                out.insert(k.to_string());
            }
        }
    }
}

fn is_setting_name(k: &str) -> bool {
    k.starts_with(|c: char| c.is_ascii_uppercase())
        && k.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// A setting of Dify's settings classes: its name, its type and the whole
/// text of its declaration (description, default, aliases).
pub(crate) struct Field {
    pub(crate) name: String,
    pub(crate) ty: String,
    pub(crate) text: String,
}

/// The fields of the settings classes under `dir`: `    NAME: type = ...`
/// in a class body, down to where its brackets close.
pub(crate) fn settings_fields(dir: &Path) -> Vec<Field> {
    let depth = |line: &str| {
        line.chars().fold(0i32, |d, c| match c {
            '(' | '[' | '{' => d + 1,
            ')' | ']' | '}' => d - 1,
            _ => d,
        })
    };
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .flatten()
    {
        if e.path().extension().is_none_or(|x| x != "py") {
            continue;
        }
        let text = std::fs::read_to_string(e.path()).unwrap();
        // The brackets still open in the declaration being read.
        let mut open = 0;
        for line in text.lines() {
            if open > 0 {
                if let Some(f) = out.last_mut() {
                    let f: &mut Field = f;
                    f.text.push('\n');
                    f.text.push_str(line);
                }
                open += depth(line);
                continue;
            }
            let header = line.strip_prefix("    ").filter(|l| !l.starts_with(' '));
            let field =
                (header.and_then(|l| l.split_once(':'))).filter(|(name, _)| is_setting_name(name));
            if let Some((name, rest)) = field {
                out.push(Field {
                    name: name.to_string(),
                    ty: rest
                        .split('=')
                        .next()
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                    text: line.to_string(),
                });
                open = depth(line);
            }
        }
    }
    out
}

/// The variables the web's entrypoint reads: `${NAME`.
fn entrypoint_vars(file: &Path, out: &mut BTreeSet<String>) {
    let text = std::fs::read_to_string(file).unwrap();
    for piece in text.split("${").skip(1) {
        let name: String = piece
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if is_setting_name(&name) {
            out.insert(name);
        }
    }
}

#[test]
fn each_release_reads_the_setting_names_dify_cfg_carries() {
    let Some(reference) = support::reference() else {
        return;
    };
    for release in dify_cfg::internals::SUPPORTED_RELEASES {
        let tree = reference.join("dify").join(release).join("source");
        let mut expected = BTreeSet::new();
        env_example_names(&tree.join("docker"), &mut expected);
        expected.extend(
            settings_fields(&tree.join("api/configs"))
                .into_iter()
                .map(|f| f.name),
        );
        entrypoint_vars(&tree.join("web/docker/entrypoint.sh"), &mut expected);
        let carried: BTreeSet<String> = dify_cfg::internals::release_env_names(release)
            .iter()
            .map(|s| s.to_string())
            .collect();
        let missing: Vec<_> = expected.difference(&carried).collect();
        let extra: Vec<_> = carried.difference(&expected).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "Dify {release}: missing from compiler/dify/env-names/{release}.txt: {missing:?}; not read by Dify {release}: {extra:?}"
        );
    }
}

/// The first value each setting has in the release's env examples.
fn env_example_values(release: &str) -> Option<BTreeMap<String, String>> {
    let docker = support::reference()?
        .join("dify")
        .join(release)
        .join("source/docker");
    let mut out = BTreeMap::new();
    let mut files: Vec<_> = walkdir::WalkDir::new(&docker)
        .sort_by_file_name()
        .into_iter()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".env.example"))
        .map(|e| e.into_path())
        .collect();
    // docker/.env.example first: it is what compose reads.
    files.sort_by_key(|p| p != &docker.join(".env.example"));
    for f in files {
        for line in std::fs::read_to_string(f).unwrap().lines() {
            if let Some((k, v)) = line.split_once('=')
                && is_setting_name(k)
            {
                out.entry(k.to_string()).or_insert_with(|| v.to_string());
            }
        }
    }
    Some(out)
}

fn upstream_compose(release: &str) -> Option<serde_yaml_ng::Value> {
    let path = support::reference()?
        .join("dify")
        .join(release)
        .join("source/docker/docker-compose.yaml");
    Some(serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap())
}

fn split_image(reference: &str) -> (String, String) {
    let (repo, tag) = reference.rsplit_once(':').unwrap();
    (repo.to_string(), tag.to_string())
}

/// The images each release runs by default are upstream's, pinned where
/// upstream says `latest`.
#[test]
fn default_images_are_the_releases_own() {
    use dify_cfg::internals::dify_facts::{SUPPORTED_RELEASES, release_images};
    for release in SUPPORTED_RELEASES {
        let Some(compose) = upstream_compose(release) else {
            return;
        };
        let image =
            |service: &str| split_image(compose["services"][service]["image"].as_str().unwrap());
        let ours = release_images(release);
        let same = [
            ("sandbox", &ours.sandbox),
            ("plugin_daemon", &ours.plugin_daemon),
            ("agent_backend", &ours.agent_backend),
            ("local_sandbox", &ours.local_sandbox),
            ("redis", &ours.redis),
            ("db_postgres", &ours.postgres),
        ];
        for (service, ours) in same {
            assert_eq!(
                (ours.repository.clone(), ours.tag.clone()),
                image(service),
                "Dify {release}: the default image of {service}"
            );
        }
        // Upstream names `latest` (nginx, squid) or a moving tag (pgvector's
        // `pg16`); ours pin a version of the same image.
        for (service, ours) in [
            ("nginx", &ours.nginx),
            ("ssrf_proxy", &ours.ssrf_proxy),
            ("pgvector", &ours.postgres_pgvector),
        ] {
            let (repo, tag) = image(service);
            assert_eq!(ours.repository, repo, "Dify {release}: {service}");
            assert!(
                tag == "latest" || ours.tag.ends_with(&tag),
                "Dify {release}: {service} runs {repo}:{tag}, ours {}",
                ours.tag
            );
            assert_ne!(ours.tag, "latest");
        }
    }
}

/// The compatibility lock is each release's own: the first combination of
/// a release names the plugin daemon, sandbox, agent backend and local
/// sandbox its compose file and compose template run, and every supported
/// release is locked.
#[test]
fn the_compatibility_lock_is_each_releases_own() {
    use dify_cfg::internals::dify_facts::SUPPORTED_RELEASES;
    use dify_cfg::internals::dify_facts::compat::{COMPONENTS, combinations};
    let Some(reference) = support::reference() else {
        return;
    };
    for release in SUPPORTED_RELEASES {
        let docker = reference.join("dify").join(release).join("source/docker");
        let locked = combinations(release);
        assert!(!locked.is_empty(), "Dify {release} is not in compat.toml");
        for file in ["docker-compose.yaml", "docker-compose-template.yaml"] {
            let text = std::fs::read_to_string(docker.join(file)).unwrap();
            let compose: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
            for (key, repository) in COMPONENTS {
                let service = key.replace('-', "_");
                let image = compose["services"][&service]["image"].as_str();
                let image = image.unwrap_or_else(|| panic!("{file} of {release}: no {service}"));
                assert_eq!(
                    split_image(image),
                    (
                        repository.to_string(),
                        locked[0].tag(key).unwrap().to_string()
                    ),
                    "Dify {release}'s {file}: {service}"
                );
            }
        }
    }
}

/// The ports, paths, user id and Redis databases the compiler wires the
/// services with are the ones Dify's deployment uses.
#[test]
fn ports_paths_and_user_are_the_releases_own() {
    use dify_cfg::internals::dify_facts as f;
    for release in f::SUPPORTED_RELEASES {
        let (Some(env), Some(compose)) = (env_example_values(release), upstream_compose(release))
        else {
            return;
        };
        let port = |name: &str| env[name].parse::<u16>().unwrap();
        assert_eq!(port("DIFY_PORT"), f::API_PORT, "{release}");
        assert_eq!(port("SANDBOX_PORT"), f::SANDBOX_PORT, "{release}");
        assert_eq!(
            port("PLUGIN_DAEMON_PORT"),
            f::PLUGIN_DAEMON_PORT,
            "{release}"
        );
        assert_eq!(
            port("PLUGIN_DEBUGGING_PORT"),
            f::PLUGIN_DEBUGGING_PORT,
            "{release}"
        );
        assert_eq!(port("SSRF_HTTP_PORT"), f::SSRF_PROXY_PORT, "{release}");
        assert_eq!(
            env["AGENT_BACKEND_BASE_URL"],
            format!("http://agent_backend:{}", f::AGENT_BACKEND_PORT)
        );
        assert_eq!(
            env["DIFY_AGENT_SHELLCTL_ENTRYPOINT"],
            format!("http://local_sandbox:{}", f::LOCAL_SANDBOX_PORT)
        );
        // The Celery broker is Redis database 1.
        assert!(
            env["CELERY_BROKER_URL"].ends_with(&format!(":6379/{}", f::REDIS_DB_CELERY)),
            "{release}: {}",
            env["CELERY_BROKER_URL"]
        );
        assert_eq!(env["REDIS_DB"], f::REDIS_DB_CACHE.to_string());
        let mounts = |service: &str| -> Vec<String> {
            compose["services"][service]["volumes"]
                .as_sequence()
                .unwrap()
                .iter()
                .filter_map(|v| v.as_str())
                .filter_map(|v| v.split(':').nth(1).map(str::to_string))
                .collect()
        };
        assert!(mounts("api").contains(&f::API_STORAGE_PATH.to_string()));
        assert!(mounts("plugin_daemon").contains(&f::PLUGIN_DAEMON_STORAGE_PATH.to_string()));
        let source = support::reference()
            .unwrap()
            .join("dify")
            .join(release)
            .join("source");
        for dockerfile in ["api/Dockerfile", "web/Dockerfile"] {
            let text = std::fs::read_to_string(source.join(dockerfile)).unwrap();
            assert!(
                text.contains(&format!("ARG dify_uid={}", f::DIFY_UID)),
                "{release}: {dockerfile} runs as another user"
            );
        }
    }
}

/// Every route prefix the compiler routes is one Dify's own nginx serves,
/// and the other way round.
#[test]
fn routes_are_the_ones_difys_nginx_serves() {
    use dify_cfg::internals::dify_facts::{ROUTES, SUPPORTED_RELEASES};
    for release in SUPPORTED_RELEASES {
        let Some(reference) = support::reference() else {
            return;
        };
        let template = reference
            .join("dify")
            .join(release)
            .join("source/docker/nginx/conf.d/default.conf.template");
        let text = std::fs::read_to_string(template).unwrap();
        let upstream: BTreeSet<&str> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("location "))
            .filter_map(|l| l.split_whitespace().next())
            .filter(|p| p.starts_with('/') && !p.starts_with("/.well-known"))
            .collect();
        let ours: BTreeSet<&str> = ROUTES.iter().map(|(p, _)| *p).collect();
        assert_eq!(ours, upstream, "Dify {release}");
    }
}

/// What a TLS site builds on: the api marks its session cookies `Secure`
/// exactly when the URLs of `SECURE_COOKIE_URLS` start with `https`
/// (`libs/token.py`'s `is_secure`, which judges no other setting), and
/// Dify's own compose mounts its nginx's site configs where ours goes.
#[test]
fn secure_cookies_follow_the_urls_a_tls_site_sets() {
    use dify_cfg::internals::dify_facts::SUPPORTED_RELEASES;
    use dify_cfg::internals::dify_facts::tls::{NGINX_CONF_PATH, SECURE_COOKIE_URLS};
    for release in SUPPORTED_RELEASES {
        let Some(reference) = support::reference() else {
            return;
        };
        let source = reference.join("dify").join(release).join("source");
        let token = std::fs::read_to_string(source.join("api/libs/token.py")).unwrap();
        let body: String = token
            .split("def is_secure()")
            .nth(1)
            .unwrap_or_else(|| panic!("Dify {release}: no `is_secure` in libs/token.py"))
            .lines()
            .skip(1)
            .take_while(|l| l.is_empty() || l.starts_with(' '))
            .collect::<Vec<_>>()
            .join("\n");
        let read: BTreeSet<&str> = body
            .split("dify_config.")
            .skip(1)
            .filter_map(|s| s.split('.').next())
            .collect();
        let ours: BTreeSet<&str> = SECURE_COOKIE_URLS.iter().copied().collect();
        assert_eq!(read, ours, "Dify {release}: is_secure reads {body}");
        for name in SECURE_COOKIE_URLS {
            assert!(
                body.contains(&format!("dify_config.{name}.startswith(\"https\")")),
                "Dify {release}: is_secure does not test {name} for https: {body}"
            );
        }
        assert!(
            !body.contains(" or "),
            "Dify {release}: is_secure is no longer a conjunction: {body}"
        );
        let compose = std::fs::read_to_string(source.join("docker/docker-compose.yaml")).unwrap();
        let conf_dir = NGINX_CONF_PATH.rsplit_once('/').unwrap().0;
        assert!(
            compose.contains(&format!(":{conf_dir}\n")),
            "Dify {release}: its compose no longer mounts nginx's site configs at {conf_dir}"
        );
    }
}

/// Claims from dify-facts.md the compiler builds on, held to the source:
/// no SQLite (DB_TYPE's choices), the completion endpoint's path, and the
/// modes the api image's entrypoint starts.
#[test]
fn the_claims_the_compiler_relies_on_hold() {
    use dify_cfg::internals::dify_facts::SUPPORTED_RELEASES;
    for release in SUPPORTED_RELEASES {
        let Some(reference) = support::reference() else {
            return;
        };
        let api = reference.join("dify").join(release).join("source/api");
        let read = |p: &str| std::fs::read_to_string(api.join(p)).unwrap();
        let db = read("configs/middleware/__init__.py");
        let db_type = db
            .lines()
            .find(|l| l.trim_start().starts_with("DB_TYPE:"))
            .expect("DB_TYPE is a setting");
        assert!(db_type.contains("\"postgresql\""), "{release}: {db_type}");
        assert!(
            !db.to_lowercase().contains("sqlite"),
            "{release} mentions SQLite"
        );
        let completion = read("controllers/service_api/app/completion.py");
        assert!(completion.contains("\"/completion-messages\""), "{release}");
        assert!(!completion.contains("\"/completion\""), "{release}");
        let entrypoint = read("docker/entrypoint.sh");
        for mode in ["worker", "beat", "migration"] {
            assert!(
                entrypoint.contains(&format!("\"${{MODE}}\" == \"{mode}\"")),
                "{release}: entrypoint.sh has no MODE {mode}"
            );
        }
        assert!(entrypoint.contains("flask upgrade-db"));
        assert!(entrypoint.contains("\"${MIGRATION_ENABLED}\" == \"true\""));
    }
}

/// The api builds on the same Debian-based Python as the release (Dify's
/// compiled wheels need glibc: not Alpine), the web on the same Alpine
/// Node; ours may pin more precisely, never another line.
#[test]
fn build_bases_are_the_releases_own() {
    use dify_cfg::internals::dify_facts::{SUPPORTED_RELEASES, release_images};
    for release in SUPPORTED_RELEASES {
        let Some(reference) = support::reference() else {
            return;
        };
        let source = reference.join("dify").join(release).join("source");
        let ours = release_images(release);
        for (dockerfile, base) in [
            ("api/Dockerfile", &ours.api_base),
            ("web/Dockerfile", &ours.web_base),
        ] {
            let text = std::fs::read_to_string(source.join(dockerfile)).unwrap();
            let from = text
                .lines()
                .find_map(|l| l.strip_prefix("FROM "))
                .and_then(|l| l.split_whitespace().next())
                .unwrap();
            let (repo, tag) = split_image(from);
            assert_eq!(base.repository, repo, "{release}: {dockerfile}");
            let (version, flavour) = tag.split_once('-').unwrap_or((&tag, ""));
            let (our_version, our_flavour) = base.tag.split_once('-').unwrap_or((&base.tag, ""));
            assert_eq!(
                our_flavour, flavour,
                "{release}: {dockerfile} builds on {from}"
            );
            let theirs: Vec<&str> = version.split('.').collect();
            let mine: Vec<&str> = our_version.split('.').collect();
            let n = mine.len().min(theirs.len());
            assert_eq!(
                mine[..n],
                theirs[..n],
                "{release}: {dockerfile} builds on {from}, ours on {}",
                base.reference()
            );
            if dockerfile.starts_with("api") {
                assert!(!flavour.contains("alpine"), "{release}: the api on Alpine");
            }
        }
    }
}

/// The release facts an Upgrade section is computed from: each release's
/// migration files are those under `api/migrations/versions/` in its
/// `tree.txt`, its compose services those of its own compose file, and the
/// telemetry endpoints the defaults of its settings classes.
#[test]
fn release_facts_are_the_releases_own() {
    use dify_cfg::internals::dify_facts::release;
    let Some(reference) = support::reference() else {
        return;
    };
    for r in dify_cfg::internals::SUPPORTED_RELEASES {
        let tree =
            std::fs::read_to_string(reference.join("dify").join(r).join("tree.txt")).unwrap();
        let files: BTreeSet<&str> = tree
            .lines()
            .filter_map(|l| l.strip_prefix("api/migrations/versions/"))
            .filter(|f| !f.contains('/'))
            .collect();
        let carried: BTreeSet<&str> = release::migrations(r).unwrap().iter().copied().collect();
        let (missing, extra): (Vec<_>, Vec<_>) = (
            files.difference(&carried).collect(),
            carried.difference(&files).collect(),
        );
        assert!(
            missing.is_empty() && extra.is_empty(),
            "Dify {r}: missing from compiler/dify/migrations/{r}.txt: {missing:?}; not in api/migrations/versions/ of its tree.txt: {extra:?}"
        );
        let compose = upstream_compose(r).unwrap();
        let services: BTreeSet<&str> = compose["services"]
            .as_mapping()
            .unwrap()
            .keys()
            .filter_map(|k| k.as_str())
            .collect();
        let carried: BTreeSet<&str> = release::compose_services(r)
            .unwrap()
            .iter()
            .copied()
            .collect();
        assert_eq!(
            carried, services,
            "Dify {r}: compiler/dify/compose-services/{r}.txt"
        );
        if release::sends_telemetry(r) {
            let fields =
                settings_fields(&reference.join("dify").join(r).join("source/api/configs"));
            for (name, url) in release::TELEMETRY_ENDPOINTS {
                let field = fields
                    .iter()
                    .find(|f| f.name == *name)
                    .unwrap_or_else(|| panic!("{r}: no {name}"));
                assert!(
                    field.text.contains(&format!("default=\"{url}\"")),
                    "Dify {r}: {name} defaults to something else than {url}:\n{}",
                    field.text
                );
            }
        }
    }
    // What the Upgrade section of the example's move says: 1.16.1 runs the
    // migrations 1.16.0 lacks, counted from the two trees.
    let count = |r: &str| {
        let tree =
            std::fs::read_to_string(reference.join("dify").join(r).join("tree.txt")).unwrap();
        tree.lines()
            .filter_map(|l| l.strip_prefix("api/migrations/versions/"))
            .map(str::to_string)
            .collect::<BTreeSet<String>>()
    };
    let added = count("1.16.1").difference(&count("1.16.0")).count();
    assert_eq!(
        release::release_change("1.16.0", "1.16.1")
            .migrations_added
            .len(),
        added
    );
}

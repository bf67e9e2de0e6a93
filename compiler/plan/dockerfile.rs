//! The Dockerfiles of the two built images (dify-api, dify-web) and their
//! .dockerignore files.

use serde::Serialize;

use super::common::{KeyValue, kv};
use crate::dify;
use crate::model::{ImageRef, Site};

/// One `COPY` from the build context (the repository root).
#[derive(Debug, Clone, Serialize)]
pub struct CopyLine {
    pub src: String,
    pub dest: String,
}

fn copy(src: impl Into<String>, dest: impl Into<String>) -> CopyLine {
    CopyLine {
        src: src.into(),
        dest: dest.into(),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ApiDockerfileContext {
    /// Base image reference (tag, and digest when pinned).
    pub base: String,
    pub dify_version: String,
    pub source: &'static str,
    pub uv_version: &'static str,
    pub uid: u32,
    pub port: u16,
    pub storage_path: &'static str,
    /// The uv project in the context (`api`) and in the image (`/app/api`).
    pub project: &'static str,
    pub app_dir: &'static str,
    /// What the locked install of third-party packages reads: the
    /// project's manifest and lock file, every workspace member's and path
    /// source's manifest. Source edits leave this layer alone.
    pub manifest_copies: Vec<CopyLine>,
    /// Path sources the first install leaves out (`--no-install-package`).
    pub path_packages: Vec<&'static str>,
    /// What the second install (workspace members, path sources) adds.
    pub member_copies: Vec<CopyLine>,
    pub entrypoint: CopyLine,
    /// What the entrypoint starts from `app_dir`, and the commands it runs
    /// from the virtualenv: the image checks both are there.
    pub starts: Vec<&'static str>,
    pub commands: Vec<&'static str>,
    /// Packages the packages stage compiles with.
    pub build_packages: Vec<&'static str>,
    /// Libraries and tools the production stage needs at run time.
    pub runtime_packages: Vec<&'static str>,
    /// NLTK data fetched at build time (edge boxes may not reach the
    /// internet at run time).
    pub nltk_packages: Vec<&'static str>,
    pub labels: Vec<KeyValue>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WebDockerfileContext {
    pub base: String,
    pub dify_version: String,
    pub source: &'static str,
    pub pnpm_version: &'static str,
    pub uid: u32,
    pub port: u16,
    /// The workspace in the image (`/app`), the served project (`web`).
    pub workspace_dir: &'static str,
    pub app: &'static str,
    /// The workspace's root files and every project's `package.json`: all
    /// that `pnpm install --frozen-lockfile` reads.
    pub manifest_copies: Vec<CopyLine>,
    /// Where the standalone output goes, so that the release's entrypoint
    /// finds `<next_dir>/<app>/server.js`.
    pub next_dir: &'static str,
    pub entrypoint: CopyLine,
    /// The entrypoint's switch to the vinext target, set off: this image
    /// holds the Next.js target only.
    pub vinext_switch: &'static str,
    pub labels: Vec<KeyValue>,
}

fn oci_labels(site: &Site, title: &str, base: &ImageRef) -> Vec<KeyValue> {
    vec![
        kv("org.opencontainers.image.title", title),
        kv("org.opencontainers.image.source", dify::SOURCE_REPOSITORY),
        kv("org.opencontainers.image.version", &site.dify_version),
        kv("org.opencontainers.image.revision", &site.dify_version),
        kv("org.opencontainers.image.base.name", base.reference()),
    ]
}

/// `dir` in the image, for a path `rel` to the repository root: the
/// repository's layout is kept under the parent of the project's directory.
fn in_image(app_dir: &str, rel: &str) -> String {
    let root = app_dir.rsplit_once('/').map_or("", |(r, _)| r);
    format!("{root}/{rel}")
}

pub(super) fn api_dockerfile(site: &Site) -> ApiDockerfileContext {
    let l = &dify::build::layout(&site.dify_version).api;
    let mut manifest_copies = vec![copy(
        l.lock_files
            .iter()
            .map(|f| format!("{}/{f}", l.project))
            .collect::<Vec<_>>()
            .join(" "),
        "./",
    )];
    for m in l.members {
        manifest_copies.push(copy(
            format!("{}/{m}/pyproject.toml", l.project),
            format!("./{m}/"),
        ));
    }
    let mut member_copies = vec![copy(
        format!("{}/{}", l.project, l.members_dir),
        format!("./{}", l.members_dir),
    )];
    for p in l.path_sources {
        let to = in_image(l.app_dir, p.dir);
        for f in p.metadata {
            manifest_copies.push(copy(format!("{}/{f}", p.dir), format!("{to}/")));
        }
        for f in p.build {
            member_copies.push(copy(format!("{}/{f}", p.dir), format!("{to}/{f}")));
        }
    }
    ApiDockerfileContext {
        base: site.build.api_base.reference(),
        dify_version: site.dify_version.clone(),
        source: dify::SOURCE_REPOSITORY,
        uv_version: l.uv_version,
        uid: dify::DIFY_UID,
        port: dify::API_PORT,
        storage_path: dify::API_STORAGE_PATH,
        project: l.project,
        app_dir: l.app_dir,
        manifest_copies,
        path_packages: l.path_sources.iter().map(|p| p.package).collect(),
        member_copies,
        entrypoint: copy(format!("{}/{}", l.project, l.entrypoint), l.entrypoint_at),
        starts: l.starts.to_vec(),
        commands: l.commands.to_vec(),
        build_packages: vec![
            // uv fetches a git source of the lock file.
            "git",
            "gcc",
            "g++",
            "libc-dev",
            "libffi-dev",
            "libgmp-dev",
            "libmpfr-dev",
            "libmpc-dev",
        ],
        runtime_packages: vec![
            "curl",
            "nodejs",
            "libgmp10",
            "libmpfr6",
            "libmpc3",
            "libmagic1",
            "media-types",
        ],
        nltk_packages: vec![
            "punkt",
            "punkt_tab",
            "averaged_perceptron_tagger",
            "averaged_perceptron_tagger_eng",
            "stopwords",
        ],
        labels: oci_labels(site, "dify-api", &site.build.api_base),
    }
}

pub(super) fn web_dockerfile(site: &Site) -> WebDockerfileContext {
    let l = &dify::build::layout(&site.dify_version).web;
    let mut manifest_copies = vec![copy(l.root_files.join(" "), "./")];
    for m in l.members {
        manifest_copies.push(copy(format!("{m}/package.json"), format!("./{m}/")));
    }
    WebDockerfileContext {
        base: site.build.web_base.reference(),
        dify_version: site.dify_version.clone(),
        source: dify::SOURCE_REPOSITORY,
        pnpm_version: l.pnpm_version,
        uid: dify::DIFY_UID,
        port: dify::WEB_PORT,
        workspace_dir: l.workspace_dir,
        app: l.app,
        manifest_copies,
        next_dir: l.next_dir,
        entrypoint: copy(l.entrypoint, l.entrypoint_at),
        vinext_switch: l.vinext_switch,
        labels: oci_labels(site, "dify-web", &site.build.web_base),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DockerIgnoreContext {
    pub image: &'static str,
    pub groups: Vec<IgnoreGroup>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IgnoreGroup {
    pub why: &'static str,
    pub patterns: Vec<String>,
}

fn ignore(why: &'static str, patterns: &[&str]) -> IgnoreGroup {
    IgnoreGroup {
        why,
        patterns: patterns.iter().map(|p| p.to_string()).collect(),
    }
}

/// The api's context filter: the context is the whole repository, so
/// everything is left out but the api and what its install reads of each
/// path source; then what the api holds that no image needs.
pub(super) fn api_dockerignore(site: &Site) -> DockerIgnoreContext {
    let l = &dify::build::layout(&site.dify_version).api;
    let mut keep = vec!["*".to_string(), format!("!{}", l.project)];
    for p in l.path_sources {
        for f in p.metadata.iter().chain(p.build) {
            keep.push(format!("!{}/{f}", p.dir));
        }
    }
    let api = |rel: &[&str]| -> Vec<String> {
        rel.iter().map(|r| format!("{}/{r}", l.project)).collect()
    };
    DockerIgnoreContext {
        image: "dify-api",
        groups: vec![
            IgnoreGroup {
                why: "everything but the api and the path sources its install reads",
                patterns: keep,
            },
            IgnoreGroup {
                why: "local environments and secrets",
                patterns: api(&[".env", ".env.*", ".venv", "venv"]),
            },
            ignore(
                "caches and build output",
                &[
                    "**/__pycache__",
                    "**/*.py[cod]",
                    "**/.venv",
                    "**/.pytest_cache",
                    "**/.mypy_cache",
                    "**/.ruff_cache",
                    "**/.import_linter_cache",
                    "**/.hypothesis",
                    "**/node_modules",
                ],
            ),
            IgnoreGroup {
                why: "tests, run-time data and logs",
                patterns: api(&["tests", ".coverage", "htmlcov", "storage", "logs", "*.log"]),
            },
            ignore("editors", &["**/.idea", "**/.vscode"]),
        ],
    }
}

/// The web's context filter: the pnpm workspace needs the repository root,
/// but none of the Python trees, the compose deployment or CI files.
pub(super) fn web_dockerignore(site: &Site) -> DockerIgnoreContext {
    let l = &dify::build::layout(&site.dify_version);
    let mut python = vec![l.api.project.to_string()];
    python.extend(l.api.path_sources.iter().map(|p| p.dir.to_string()));
    python.push("docker".to_string());
    DockerIgnoreContext {
        image: "dify-web",
        groups: vec![
            ignore("version control and CI", &[".git", ".github"]),
            IgnoreGroup {
                why: "the api, its path sources and the compose deployment",
                patterns: python,
            },
            ignore(
                "local environments and secrets",
                &["**/.env", "**/.env.local", "**/.env.*.local"],
            ),
            ignore(
                "dependencies and build output, rebuilt in the image",
                &[
                    "**/node_modules",
                    "**/.pnpm-store",
                    "**/.next",
                    "**/dist",
                    "**/.turbo",
                    "**/.cache",
                    "**/coverage",
                    "**/.eslintcache",
                    "**/*.tsbuildinfo",
                ],
            ),
            ignore("logs and editors", &["**/*.log", "**/.idea", "**/.vscode"]),
        ],
    }
}

//! The Dockerfiles of the two built images (dify-api, dify-web) and their
//! .dockerignore files.

use serde::Serialize;

use super::common::{KeyValue, kv};
use crate::dify;
use crate::model::{ImageRef, Site};

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
    pub pm2_version: &'static str,
    pub uid: u32,
    pub port: u16,
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

pub(super) fn api_dockerfile(site: &Site) -> ApiDockerfileContext {
    ApiDockerfileContext {
        base: site.build.api_base.reference(),
        dify_version: site.dify_version.clone(),
        source: dify::SOURCE_REPOSITORY,
        uv_version: dify::UV_VERSION,
        uid: dify::DIFY_UID,
        port: dify::API_PORT,
        storage_path: dify::API_STORAGE_PATH,
        build_packages: vec![
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
    WebDockerfileContext {
        base: site.build.web_base.reference(),
        dify_version: site.dify_version.clone(),
        source: dify::SOURCE_REPOSITORY,
        pm2_version: dify::PM2_VERSION,
        uid: dify::DIFY_UID,
        port: dify::WEB_PORT,
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
    pub patterns: Vec<&'static str>,
}

fn ignore(why: &'static str, patterns: &[&'static str]) -> IgnoreGroup {
    IgnoreGroup {
        why,
        patterns: patterns.to_vec(),
    }
}

pub(super) fn api_dockerignore() -> DockerIgnoreContext {
    DockerIgnoreContext {
        image: "dify-api",
        groups: vec![
            ignore("version control", &[".git", ".gitignore"]),
            ignore(
                "local environments and secrets",
                &[".env", ".env.*", ".venv", "venv"],
            ),
            ignore(
                "caches and build output",
                &[
                    "**/__pycache__",
                    "**/*.py[cod]",
                    ".pytest_cache",
                    ".mypy_cache",
                    ".ruff_cache",
                    ".coverage",
                    "htmlcov",
                    "node_modules",
                ],
            ),
            ignore("tests", &["tests"]),
            ignore("run-time data", &["storage", "logs", "*.log"]),
            ignore("editors", &[".idea", ".vscode"]),
        ],
    }
}

pub(super) fn web_dockerignore() -> DockerIgnoreContext {
    DockerIgnoreContext {
        image: "dify-web",
        groups: vec![
            ignore("version control", &[".git", ".gitignore"]),
            ignore("local environments and secrets", &[".env", ".env.*"]),
            ignore(
                "dependencies and build output, rebuilt in the image",
                &[
                    "node_modules",
                    ".next",
                    "out",
                    "coverage",
                    ".eslintcache",
                    "*.tsbuildinfo",
                ],
            ),
            ignore(
                "tests",
                &[
                    "**/__tests__",
                    "**/*.test.ts",
                    "**/*.test.tsx",
                    "**/*.spec.ts",
                    "**/*.spec.tsx",
                ],
            ),
            ignore("logs and editors", &["*.log", ".idea", ".vscode"]),
        ],
    }
}

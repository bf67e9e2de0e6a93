//! `dify-cfg init [DIR]`: a new config repository that `check` and
//! `build` accept as it is ([`scaffold`](crate::cli::scaffold)), and what
//! to run next.

use std::path::{Path, PathBuf};

use crate::cli::exit::Failure;
use crate::cli::output::{Report, Text};
use crate::cli::scaffold::{files, refuse, write_all};

/// What `init` wrote, and what to run next.
pub struct InitReport {
    pub dir: PathBuf,
    /// Paths relative to `dir`, sorted.
    pub written: Vec<String>,
    pub next: Vec<String>,
}

pub fn run(dir: &Path) -> Result<InitReport, Failure> {
    let files = files();
    refuse(dir, &files)?;
    write_all(dir, &files)?;
    Ok(InitReport {
        dir: dir.to_path_buf(),
        written: files.iter().map(|(p, _)| p.to_string()).collect(),
        next: next_steps(dir),
    })
}

/// The commands that follow `init` in `dir`.
fn next_steps(dir: &Path) -> Vec<String> {
    let mut next = Vec::new();
    if dir != Path::new(".") {
        next.push(format!("cd {}", dir.display()));
    }
    next.push("dify-cfg check".into());
    next.push("dify-cfg build".into());
    if !in_git_work_tree(dir) {
        next.push("git init -b main".into());
    }
    next.push("git add -A && git commit -m \"A Dify fleet\"".into());
    next
}

/// Whether `dir` or a folder above it holds `.git`.
fn in_git_work_tree(dir: &Path) -> bool {
    dir.canonicalize()
        .is_ok_and(|d| d.ancestors().any(|a| a.join(".git").exists()))
}

impl Report for InitReport {
    fn text(&self) -> Text {
        let mut out = format!("created a config repository in `{}`:\n", self.dir.display());
        for path in &self.written {
            out.push_str(&format!("  {path}\n"));
        }
        out.push_str(concat!(
            "\nbefore the first rollout, set `[build] registry` and `[gitops] repository`",
            " in profiles/, the box's network in sites/edge-01.toml, and the repository",
            " variables the workflows name (.github/workflows/rollout.yml)\n",
            "\nnext:\n"
        ));
        for step in &self.next {
            out.push_str(&format!("  {step}\n"));
        }
        Text {
            stdout: out,
            stderr: String::new(),
        }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "ok": true,
            "dir": self.dir.to_string_lossy(),
            "written": self.written,
            "next": self.next,
        })
    }
}

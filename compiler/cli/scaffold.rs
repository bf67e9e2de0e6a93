//! What `dify-cfg init` writes, and how: the files of `scaffold/`
//! (compiled in) and the editor schema, never over anything. When one of
//! them (or a directory on its way) is there already, or the folder is a
//! config root or lies among another's inputs, nothing is written; each
//! file is created new, and a write that fails removes what this run
//! created.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::input::load::INPUT_DIRS;
use crate::input::root::is_config_root;
use crate::input::schema::schema_text;

/// Where `init` puts the editor schema, which `.taplo.toml` names.
pub const SCHEMA_PATH: &str = "schema/dify-cfg.schema.json";

/// The scaffold's files as `init` writes them (the schema besides).
pub const SCAFFOLD: &[(&str, &str)] = &[
    (
        ".github/workflows/ci.yml",
        include_str!("../../scaffold/.github/workflows/ci.yml"),
    ),
    (
        ".github/workflows/rollout.yml",
        include_str!("../../scaffold/.github/workflows/rollout.yml"),
    ),
    (".gitignore", include_str!("../../scaffold/.gitignore")),
    (".taplo.toml", include_str!("../../scaffold/.taplo.toml")),
    (
        "profiles/cloud.toml",
        include_str!("../../scaffold/profiles/cloud.toml"),
    ),
    (
        "profiles/edge-4gb.toml",
        include_str!("../../scaffold/profiles/edge-4gb.toml"),
    ),
    (
        "sites/edge-01.toml",
        include_str!("../../scaffold/sites/edge-01.toml"),
    ),
];

/// Why `init` wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(
        "`{dir}` already holds {} dify-cfg init would write: {}\nit never writes over anything, and wrote nothing; move {} away, or make the config repository in an empty folder (`dify-cfg init DIR`)",
        count(.paths.len()),
        .paths.join(", "),
        if .paths.len() == 1 { "it" } else { "them" }
    )]
    Exists { dir: PathBuf, paths: Vec<String> },
    #[error(
        "`{0}` is a config root already (it has `profiles/`): dify-cfg init wrote nothing; run `dify-cfg check` there, or make a new one elsewhere (`dify-cfg init DIR`)"
    )]
    AlreadyRoot(PathBuf),
    #[error(
        "`{dir}` lies in `{inputs}`, among the inputs of the config root `{root}`, which would read its files as its own: dify-cfg init wrote nothing; choose a folder outside `profiles/`, `sites/` and `templates/`"
    )]
    AmongInputs {
        dir: PathBuf,
        inputs: PathBuf,
        root: PathBuf,
    },
    #[error("`{0}` is not a directory: dify-cfg init wrote nothing; name a new or empty folder")]
    NotADirectory(PathBuf),
    #[error("cannot write `{path}`: {source}; what dify-cfg init had written is removed again")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn count(n: usize) -> String {
    if n == 1 {
        "a path".into()
    } else {
        format!("{n} paths")
    }
}

/// Every file `init` writes: the scaffold and the schema, sorted by path.
pub fn files() -> Vec<(&'static str, String)> {
    let mut out: Vec<(&str, String)> = SCAFFOLD
        .iter()
        .map(|(path, text)| (*path, (*text).to_string()))
        .collect();
    out.push((SCHEMA_PATH, schema_text()));
    out.sort_by(|a, b| a.0.cmp(b.0));
    out
}

/// Why `dir` may not get these files, if it may not.
pub fn refuse(dir: &Path, files: &[(&str, String)]) -> Result<(), InitError> {
    match fs::metadata(dir) {
        Ok(m) if !m.is_dir() => return Err(InitError::NotADirectory(dir.to_path_buf())),
        Ok(_) if is_config_root(dir) => return Err(InitError::AlreadyRoot(dir.to_path_buf())),
        _ => {}
    }
    among_inputs(dir)?;
    let mut there = Vec::new();
    for (path, _) in files {
        // The file, or a folder on its way that is not a folder.
        let mut at = PathBuf::new();
        for part in Path::new(path).components() {
            at.push(part);
            match fs::symlink_metadata(dir.join(&at)) {
                Ok(m) if m.is_dir() && at.as_path() != Path::new(path) => continue,
                Ok(_) => {
                    let shown = at.to_string_lossy().into_owned();
                    if !there.contains(&shown) {
                        there.push(shown);
                    }
                    break;
                }
                Err(_) => break,
            }
        }
    }
    if there.is_empty() {
        Ok(())
    } else {
        Err(InitError::Exists {
            dir: dir.to_path_buf(),
            paths: there,
        })
    }
}

/// Refused when `dir` lies in `profiles/`, `sites/` or `templates/` of a
/// config root above it.
fn among_inputs(dir: &Path) -> Result<(), InitError> {
    // The nearest part of `dir` that exists, resolved.
    let Some(real) = dir.ancestors().find_map(|a| {
        let a = if a.as_os_str().is_empty() {
            Path::new(".")
        } else {
            a
        };
        a.canonicalize().ok()
    }) else {
        return Ok(());
    };
    for inputs in real.ancestors() {
        let (Some(root), Some(name)) = (inputs.parent(), inputs.file_name()) else {
            continue;
        };
        if INPUT_DIRS.iter().any(|d| name == *d) && is_config_root(root) {
            return Err(InitError::AmongInputs {
                dir: dir.to_path_buf(),
                inputs: inputs.to_path_buf(),
                root: root.to_path_buf(),
            });
        }
    }
    Ok(())
}

/// Write every file, each created new (never over one that appeared
/// meanwhile); on a failure, remove what this run created.
pub fn write_all(dir: &Path, files: &[(&str, String)]) -> Result<(), InitError> {
    let mut created: Vec<PathBuf> = Vec::new();
    let result = files.iter().try_for_each(|(rel, text)| {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            make_dirs(parent, &mut created)?;
        }
        let io = |source| InitError::Io {
            path: path.clone(),
            source,
        };
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io)?;
        created.push(path.clone());
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)
    });
    if result.is_err() {
        for path in created.iter().rev() {
            let _ = if path.is_dir() {
                fs::remove_dir(path)
            } else {
                fs::remove_file(path)
            };
        }
    }
    result
}

/// `dir` and the folders above it that are missing, each recorded in
/// `created`.
fn make_dirs(dir: &Path, created: &mut Vec<PathBuf>) -> Result<(), InitError> {
    if dir.as_os_str().is_empty() || fs::symlink_metadata(dir).is_ok() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        make_dirs(parent, created)?;
    }
    fs::create_dir(dir).map_err(|source| InitError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    created.push(dir.to_path_buf());
    Ok(())
}

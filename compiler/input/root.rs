//! Which directory is the config root. A config root is a directory that
//! holds `profiles/` (what `dify-cfg init` makes, and what every fleet
//! has); commands run anywhere inside one find it as git and cargo find
//! theirs: the working directory or the nearest folder above it that is
//! one. `--root DIR` names it instead, and must name one.

use std::path::{Path, PathBuf};

use crate::base::codes::Code;
use crate::base::diagnostic::Diagnostic;

/// The directory whose presence makes a config root.
pub const MARKER: &str = "profiles";

/// At most this many folders up: deeper than any real tree, a guard
/// against a loop of mounts.
const MAX_DEPTH: usize = 256;

/// What every "no config root" message says a config root is.
const WHAT_IT_IS: &str = "a config root is the folder of a fleet's sources: `profiles/` (one TOML file per class of box), `sites/` (one per site) and, optionally, `templates/`";

/// How to get one.
const HOW_TO_MAKE_ONE: &str =
    "run `dify-cfg init` to make one here (or `dify-cfg init DIR`), or name one with `--root DIR`";

/// Whether `dir` is a config root.
pub fn is_config_root(dir: &Path) -> bool {
    dir.join(MARKER).is_dir()
}

/// The config root a command works on: `explicit` (from `--root`) if
/// given, else the nearest of `.`, `..`, `../..`, ... that is a config
/// root. Relative, as found from the working directory, so that the paths
/// a command prints (`../out`) are the ones to type. One diagnostic when
/// there is none.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, Box<Diagnostic>> {
    match explicit {
        Some(dir) => check_explicit(dir),
        None => discover(Path::new(".")).ok_or_else(|| {
            let d = Diagnostic::error(
                Code::BadRoot,
                "no config root here or in any folder above: none of them has a `profiles/` directory",
            );
            Box::new(d.note(WHAT_IT_IS).help(HOW_TO_MAKE_ONE))
        }),
    }
}

/// `dir` if it is a config root, else why not.
fn check_explicit(dir: &Path) -> Result<PathBuf, Box<Diagnostic>> {
    if is_config_root(dir) {
        return Ok(dir.to_path_buf());
    }
    let message = match std::fs::metadata(dir) {
        Err(e) => format!("cannot read the config root `{}`: {e}", dir.display()),
        Ok(m) if !m.is_dir() => format!("`{}` is not a directory", dir.display()),
        Ok(_) => format!(
            "`{}` is not a config root: it has no `profiles/` directory",
            dir.display()
        ),
    };
    let help = format!(
        "run `dify-cfg init {}` to make one there, or pass the folder that holds `profiles/` with `--root`",
        dir.display()
    );
    let d = Diagnostic::error(Code::BadRoot, message);
    Err(Box::new(d.note(WHAT_IT_IS).help(help)))
}

/// The nearest of `start`, `start/..`, ... that is a config root.
/// Stops at the file system's root (where `..` is the folder itself).
pub fn discover(start: &Path) -> Option<PathBuf> {
    let mut dir = start.to_path_buf();
    for _ in 0..MAX_DEPTH {
        if is_config_root(&dir) {
            return Some(dir);
        }
        let up = if dir == Path::new(".") {
            PathBuf::from("..")
        } else {
            dir.join("..")
        };
        let same = match (dir.canonicalize(), up.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => true,
        };
        if same {
            return None;
        }
        dir = up;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_folder_with_profiles_is_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("fleet");
        std::fs::create_dir_all(root.join("profiles")).unwrap();
        std::fs::create_dir_all(root.join("sites/deeper/still")).unwrap();
        assert_eq!(discover(&root), Some(root.clone()));
        let found = discover(&root.join("sites/deeper/still")).unwrap();
        assert_eq!(
            found.canonicalize().unwrap(),
            root.canonicalize().unwrap(),
            "{}",
            found.display()
        );
        assert_eq!(found, root.join("sites/deeper/still/../../.."));
        // `profiles/` itself is inside the root, not a root.
        let found = discover(&root.join("profiles")).unwrap();
        assert_eq!(found, root.join("profiles/.."));
    }

    #[test]
    fn a_folder_outside_any_root_has_none() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("empty")).unwrap();
        // Unless a folder above the temporary directory holds `profiles/`.
        let above = tmp.path().ancestors().any(is_config_root);
        assert_eq!(discover(&tmp.path().join("empty")).is_none(), !above);
    }

    #[test]
    fn an_explicit_root_must_be_one() {
        let tmp = tempfile::tempdir().unwrap();
        let d = locate(Some(tmp.path())).unwrap_err();
        assert_eq!(d.code, Code::BadRoot);
        assert!(d.message.contains("has no `profiles/` directory"), "{d:?}");
        assert!(d.help.as_deref().unwrap().contains("dify-cfg init"));
        let d = locate(Some(&tmp.path().join("nowhere"))).unwrap_err();
        assert!(d.message.contains("cannot read"), "{d:?}");
        std::fs::create_dir(tmp.path().join("profiles")).unwrap();
        assert_eq!(locate(Some(tmp.path())).unwrap(), tmp.path());
    }
}

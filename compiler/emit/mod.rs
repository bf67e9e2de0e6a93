//! Stage 7: write each site's tree under the out directory, atomically: the
//! new tree is written beside the old one and swapped in with one
//! `renameat2(RENAME_EXCHANGE)`, so a site directory is always either the
//! old complete tree or the new complete tree. Only what dify-cfg wrote is
//! ever replaced or removed (`guard`); a build whose swaps fail half-way
//! puts back what it swapped. `--check` compares instead.

pub mod bake;
mod guard;
mod manifest;
mod out_dir;

use std::path::{Path, PathBuf};

pub use guard::retired;
pub use manifest::{COMPILER_NAME, COMPILER_VERSION, SiteTree, digest, up_to_date, with_manifest};
pub use out_dir::{OutDir, Staged, differences};

/// Where `commit --pr` puts the pull requests' titles and bodies, under the
/// out directory (beside the site trees, like `_images`).
pub const ROLLOUT_DIR: &str = "_rollout";

/// Operational failures of emitting (not user mistakes).
#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    #[error("cannot write `{path}`: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("another dify-cfg is writing to `{0}`; wait for it to finish")]
    Busy(PathBuf),
    #[error(
        "the out directory `{out}` contains the config root `{root}`; choose a directory that holds only output"
    )]
    OutContainsRoot { out: PathBuf, root: PathBuf },
    #[error(
        "the out directory `{out}` overlaps the input directory `{inputs}`: a build there would replace inputs or be read as inputs; choose a directory outside `profiles/`, `sites/` and `templates/` (the default is `out/` under the root)"
    )]
    OutOverlapsInputs { out: PathBuf, inputs: PathBuf },
    #[error(
        "`{path}` {why}: dify-cfg replaces only trees it wrote (a directory with its manifest.json and nothing else); move it out of the out directory or choose another with `--out`. Nothing was changed"
    )]
    NotOurs { path: PathBuf, why: String },
    #[error(
        "cannot put the new tree in place at `{path}`: {source}; the trees swapped in before it were put back, so the out directory is as it was"
    )]
    Install {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot put the new tree in place at `{path}`: {source}; putting back the trees swapped in before it failed too (`{undo_path}`: {undo}): each site holds its old or its new tree; run the build again"
    )]
    RollBack {
        path: PathBuf,
        source: std::io::Error,
        undo_path: PathBuf,
        undo: std::io::Error,
    },
    #[error("cannot remove `{path}` ({what}): {source}; remove it by hand, then build again")]
    Remove {
        path: PathBuf,
        what: &'static str,
        source: std::io::Error,
    },
}

/// An [`EmitError::Io`] at `path`, for `map_err`.
fn io(path: &Path) -> impl FnOnce(std::io::Error) -> EmitError + '_ {
    move |source| EmitError::Io {
        path: path.to_path_buf(),
        source,
    }
}

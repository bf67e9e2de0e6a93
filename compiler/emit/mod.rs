//! Stage 7: write each site's tree under the out directory, atomically: the
//! new tree is written beside the old one and swapped in with one
//! `renameat2(RENAME_EXCHANGE)`, so a site directory is always either the
//! old complete tree or the new complete tree. `--check` compares instead.

pub mod bake;
mod manifest;
mod out_dir;

use std::path::PathBuf;

pub use manifest::{
    BuiltManifest, COMPILER_NAME, COMPILER_VERSION, SiteTree, built_manifest, digest, with_manifest,
};
pub use out_dir::{OutDir, differences};

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
}

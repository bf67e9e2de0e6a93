//! dify-cfg: a GitOps config compiler for Dify fleets.
//!
//! A config repository of TOML profiles and sites compiles, stage by stage,
//! into one tree of files per site: `input` (load, parse, resolve) →
//! `validate` → `plan` → `render` → `verify` → `emit`, then `git`/`gitops`
//! put the trees on site branches. The modules are private and laid out as
//! that pipeline (see ARCHITECTURE.md); this facade is what a program
//! embedding the compiler uses:
//!
//! ```no_run
//! let compiled = dify_cfg::compile(std::path::Path::new("."));
//! if !compiled.diagnostics.has_errors() {
//!     let sites: Vec<_> = compiled.sites.iter().collect();
//!     let trees = dify_cfg::render_all(&compiled.inputs, &sites);
//!     # let _ = trees;
//! }
//! ```

mod base;
mod cli;
mod dify;
mod driver;
mod emit;
mod git;
mod gitops;
mod input;
mod model;
mod plan;
mod render;
mod validate;
mod verify;

pub use base::codes::Code;
pub use base::diagnostic::{Diagnostic, Diagnostics, Severity};
pub use cli::{Cli, ExitCode, run};
pub use driver::{Compiled, Selection, SelectionError, render_all};
pub use emit::SiteTree;
pub use git::{GitError, Repo};
pub use gitops::{CommitPlan, Prepared, prepare, publish};

/// Load, parse, resolve and validate the fleet under `root` (a config
/// repository: `profiles/`, `sites/`, optionally `templates/`).
pub fn compile(root: &std::path::Path) -> Compiled {
    Compiled::read(root)
}

/// What the integration tests, the benchmark and the fuzz target reach
/// into below the facade. Not a stable interface.
#[doc(hidden)]
pub mod internals {
    pub use crate::base::source::SourceMap;
    pub use crate::dify::build as dify_build;
    pub use crate::dify::service_env;
    pub use crate::dify::{
        HELM_CHART_VERSION, SUPPORTED_RELEASES, env_names, is_secret_name, release_env_names,
    };
    pub use crate::driver::{analyze, read_inputs, select};
    /// Facts about Dify's releases, for the tests that hold them to
    /// Dify's own files.
    pub mod dify_facts {
        pub use crate::dify::*;
    }
    pub use crate::emit::bake;
    pub use crate::input::load::{Inputs, MemTree, load_from};
    pub use crate::input::resolve::resolve;
    pub use crate::model::{ServiceKind, Target};
    pub use crate::plan::{
        BuiltImages, BuiltKind, built_image, key_paths, plan, unknown_key_paths,
    };
    pub use crate::render::Renderer;
    pub use crate::validate::ValidSite;
    pub use crate::validate::headroom;
}

//! The driver: what every command runs. [`analyze`] loads, resolves and
//! validates the fleet ([`Compiled`]); [`select`] picks the sites a command
//! line names; [`render`] compiles sites (render, cross-check, manifest) in
//! parallel chunks and hands each tree on; [`explain`] lists a site's
//! effective values with their provenance; [`progress`] is how a long run
//! says how far it is.

pub mod analyze;
pub mod explain;
pub mod progress;
pub mod render;
pub mod select;

pub use analyze::{Compiled, analyze, read_inputs};
pub use progress::Progress;
pub use render::{
    for_each_build_files, for_each_tree, for_each_worked, input_digest, render_all,
    render_chunks_with,
};
pub use select::{Selection, SelectionError, select};

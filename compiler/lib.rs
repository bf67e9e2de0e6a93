//! dify-cfg: a GitOps config compiler for Dify fleets.
pub mod config;
pub mod diagnostic;
pub mod dify;
pub mod load;
pub mod model;
pub mod parse;
pub mod source;
pub mod templates;
pub mod units;

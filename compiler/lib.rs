//! dify-cfg: a GitOps config compiler for Dify fleets.
pub mod config;
pub mod diagnostic;
pub mod dify;
pub mod emit;
pub mod explain;
pub mod load;
pub mod model;
pub mod parse;
pub mod pipeline;
pub mod resolve;
pub mod source;
pub mod templates;
pub mod units;
pub mod validate;

//! dify-cfg: a GitOps config compiler for Dify fleets.
pub mod base;
pub mod cli;
pub mod dify;
pub mod driver;
pub mod emit;
pub mod git;
pub mod gitops;
pub mod input;
pub mod model;
pub mod plan;
pub mod render;
pub mod validate;
pub mod verify;

//! Shared helpers of the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The repository root (the example fleet).
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Dify's reference files (`../shared/reference` beside the checkout, or
/// `DIFY_CFG_REFERENCE`). `None`, with the reason printed, where they are
/// absent; a panic instead when `DIFY_CFG_REQUIRE_REFERENCE=1` (CI).
pub fn reference() -> Option<PathBuf> {
    let dir = std::env::var_os("DIFY_CFG_REFERENCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/reference"));
    if dir.join("dify-1.16.0").is_dir() {
        return Some(dir);
    }
    let required = std::env::var("DIFY_CFG_REQUIRE_REFERENCE").is_ok_and(|v| v == "1");
    assert!(!required, "reference files not found at {} (DIFY_CFG_REQUIRE_REFERENCE=1)", dir.display());
    eprintln!("skipped: Dify reference files not found at {}", dir.display());
    None
}

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
    assert!(
        !required,
        "reference files not found at {} (DIFY_CFG_REQUIRE_REFERENCE=1)",
        dir.display()
    );
    eprintln!(
        "skipped: Dify reference files not found at {}",
        dir.display()
    );
    None
}

/// Copy the example fleet (profiles/, sites/, templates/) into `dst`.
pub fn copy_fleet(dst: &Path) {
    for dir in ["profiles", "sites", "templates"] {
        let src = repo().join(dir);
        for e in walkdir::WalkDir::new(&src).into_iter().flatten() {
            let rel = e.path().strip_prefix(&src).unwrap();
            let to = dst.join(dir).join(rel);
            if e.file_type().is_dir() {
                std::fs::create_dir_all(&to).unwrap();
            } else {
                std::fs::copy(e.path(), &to).unwrap();
            }
        }
    }
}

/// Every file under `dir`: relative path to bytes.
pub fn snapshot(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    if !dir.exists() {
        return out;
    }
    for e in walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .flatten()
    {
        if e.file_type().is_file() {
            let rel = e
                .path()
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            out.insert(rel, std::fs::read(e.path()).unwrap());
        }
    }
    out
}

/// Run the built binary.
pub fn dify_cfg(args: &[&str], cwd: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_dify-cfg"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .output()
        .expect("run dify-cfg")
}

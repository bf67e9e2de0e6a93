//! The editor schema: the committed copy is what `dify-cfg schema`
//! prints. (That the schema's keys are the parser's is
//! `compiler/input/schema/tests.rs`.)

use std::fs;
use std::path::Path;

use crate::support::{dify_cfg, output_text, repo};

/// The committed schema.
const SCHEMA: &str = "schema/dify-cfg.schema.json";

#[test]
fn the_committed_schema_is_what_dify_cfg_schema_prints() {
    let o = dify_cfg(&["schema"], Path::new("/"));
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let printed = String::from_utf8(o.stdout).unwrap();
    let committed = fs::read_to_string(repo().join(SCHEMA)).unwrap_or_default();
    assert!(
        printed == committed,
        "{SCHEMA} is stale: the input language changed; regenerate it with\n  cargo run -- schema > {SCHEMA}\nand commit it with the change"
    );
    // For machines: the same schema under `schema`.
    let o = dify_cfg(&["--format", "json", "schema"], Path::new("/"));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(report["schema"], schema);
}

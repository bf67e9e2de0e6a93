//! `dify-cfg schema`: the JSON Schema of profile and site files, for
//! editors (see `input::schema`).

use crate::cli::output::{Report, Text};
use crate::input::schema::{schema, schema_text};

/// The schema; text prints it as is, `--format json` under `schema`.
pub struct SchemaReport;

impl Report for SchemaReport {
    fn text(&self) -> Text {
        Text {
            stdout: schema_text(),
            stderr: String::new(),
        }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({ "schema": schema() })
    }
}

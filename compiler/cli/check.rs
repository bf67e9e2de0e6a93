//! `dify-cfg check`: validate every profile, site and template.

use std::collections::BTreeSet;
use std::path::Path;

use crate::cli::exit::Failure;
use crate::cli::output::{Output, Report, Text};
use crate::driver::Compiled;
use crate::render::Renderer;

/// A fleet that validated.
pub struct CheckReport {
    pub profiles: usize,
    pub sites: Vec<String>,
    pub waves: BTreeSet<u32>,
}

pub fn run(root: &Path, out: &Output) -> Result<CheckReport, Failure> {
    let Compiled {
        inputs,
        sites,
        mut diagnostics,
    } = Compiled::read(root);
    // Templates are inputs too: a template that does not parse fails `check`,
    // not only `build`.
    if let Err(d) = Renderer::new(&inputs.sources, &inputs.templates) {
        diagnostics.extend(d);
    }
    out.diagnostics(&diagnostics, &inputs);
    if diagnostics.has_errors() {
        return Err(Failure::Diagnosed);
    }
    Ok(CheckReport {
        profiles: inputs.profiles.len(),
        sites: sites.iter().map(|s| s.site.name.clone()).collect(),
        waves: sites.iter().map(|s| s.site.wave).collect(),
    })
}

impl Report for CheckReport {
    fn text(&self) -> Text {
        Text {
            stdout: format!(
                "ok: {} profiles and {} sites are valid\n",
                self.profiles,
                self.sites.len()
            ),
            stderr: String::new(),
        }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({ "ok": true, "sites": self.sites, "waves": self.waves })
    }
}

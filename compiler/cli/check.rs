//! `dify-cfg check`: validate every profile, site and template; for a
//! fleet that validates, the room each site has left under its memory
//! budget and its connection budget, a line per site.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use crate::cli::exit::Failure;
use crate::cli::output::{Output, Report, Text, took};
use crate::driver::Compiled;
use crate::render::Renderer;
use crate::validate::{Headroom, headroom};

/// A fleet that validated.
pub struct CheckReport {
    pub profiles: usize,
    pub sites: Vec<String>,
    pub waves: BTreeSet<u32>,
    /// Each site's room under its budgets, in site order.
    pub headroom: Vec<(String, Headroom)>,
    /// How long it took, said on a terminal only.
    pub elapsed: Option<Duration>,
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
        headroom: sites
            .iter()
            .map(|s| (s.site.name.clone(), headroom(&s.site)))
            .collect(),
        elapsed: out.elapsed(true),
    })
}

impl CheckReport {
    /// The summary line.
    fn summary(&self) -> String {
        format!(
            "ok: {} profiles and {} sites are valid{}\n",
            self.profiles,
            self.sites.len(),
            took(self.elapsed)
        )
    }
}

/// A site's line: `clinic-01  memory 3280MiB of 3481MiB (201MiB free),
/// connections 42 of 90 (...)`.
fn headroom_line(site: &str, width: usize, room: &Headroom) -> String {
    let memory = room.memory.as_ref().map_or_else(
        || "not budgeted here (helm: the cluster's)".to_string(),
        |m| m.text(),
    );
    format!(
        "{site:width$}  memory {memory}, connections {}\n",
        room.connections.text()
    )
}

impl Report for CheckReport {
    fn text(&self) -> Text {
        let width = self
            .headroom
            .iter()
            .map(|(s, _)| s.len())
            .max()
            .unwrap_or(0);
        let mut stdout: String = self
            .headroom
            .iter()
            .map(|(site, room)| headroom_line(site, width, room))
            .collect();
        stdout.push_str(&self.summary());
        Text {
            stdout,
            stderr: String::new(),
        }
    }

    fn quiet_text(&self) -> Text {
        Text {
            stdout: self.summary(),
            stderr: String::new(),
        }
    }

    fn json(&self) -> serde_json::Value {
        let headroom: Vec<_> = self
            .headroom
            .iter()
            .map(|(site, room)| {
                serde_json::json!({
                    "site": site,
                    "memory": room.memory,
                    "connections": room.connections,
                })
            })
            .collect();
        serde_json::json!({
            "ok": true,
            "sites": self.sites,
            "waves": self.waves,
            "headroom": headroom,
        })
    }
}

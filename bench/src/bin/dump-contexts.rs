//! `dump-contexts ROOT`: for every site of the config root, the artifacts
//! dify-cfg renders, with the exact context each template receives, as one
//! JSON object per line:
//!
//! ```json
//! {"site": "s00001", "target": "compose",
//!  "artifacts": [{"path": "compose.yaml", "template": "compose.yaml", "context": {...}}, ...]}
//! ```
//!
//! The built images are resolved the way `render.rs` does it: the
//! Dockerfiles are rendered first and their hashes name the images that the
//! compose file and the Helm values refer to. These contexts become the
//! Kapitan inventory of the benchmark (bench/kapitan/make-inventory.py), so
//! Kapitan renders the same templates with the same values.

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use dify_cfg::internals::Renderer;
use dify_cfg::internals::{BuiltImages, BuiltKind, built_image, plan};
use dify_cfg::internals::{analyze, read_inputs};

fn main() {
    let root = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| ".".into()));
    let (inputs, diags) = read_inputs(&root);
    let analysis = analyze(&inputs, diags);
    if analysis.diagnostics.has_errors() {
        eprint!(
            "{}",
            analysis.diagnostics.render_text(&inputs.sources, false)
        );
        std::process::exit(2);
    }
    let renderer = match Renderer::new(&inputs.sources, &inputs.templates) {
        Ok(r) => r,
        Err(d) => {
            eprint!("{}", d.render_text(&inputs.sources, false));
            std::process::exit(2);
        }
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    for v in &analysis.sites {
        let site = &v.site;
        // The Dockerfiles as dify-cfg renders them, for the image tags.
        let files = match renderer.render_site(site) {
            Ok(f) => f,
            Err(d) => {
                eprint!("{}", d.render_text(&inputs.sources, false));
                std::process::exit(2);
            }
        };
        let site_plan = plan(site);
        let dockerfile = |kind: BuiltKind| {
            let path = site_plan
                .builds
                .iter()
                .find(|a| a.defines == Some(kind))
                .map(|a| a.path.as_str())
                .expect("the plan defines both images");
            let bytes = files
                .iter()
                .find(|f| f.path == path)
                .map(|f| f.bytes.as_slice())
                .expect("the Dockerfile was rendered");
            built_image(site, kind, bytes)
        };
        let built = BuiltImages {
            api: dockerfile(BuiltKind::Api),
            web: dockerfile(BuiltKind::Web),
        };
        let artifacts: Vec<serde_json::Value> = site_plan
            .builds
            .iter()
            .cloned()
            .chain(site_plan.deploy_artifacts(&built))
            .map(|a| {
                serde_json::json!({
                    "path": a.path,
                    "template": a.template,
                    "context": a.context,
                })
            })
            .collect();
        let line = serde_json::json!({
            "site": site.name,
            "target": site.target,
            "artifacts": artifacts,
        });
        serde_json::to_writer(&mut out, &line).expect("stdout");
        out.write_all(b"\n").expect("stdout");
    }
    out.flush().expect("stdout");
}

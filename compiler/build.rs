//! `dify-cfg build`: select sites, render them (all in memory first, so a
//! failure writes nothing), then write or compare each site's tree.

use std::collections::BTreeMap;
use std::path::Path;

use crate::cli::{BuildArgs, Format, Output};
use crate::emit::{OutDir, SiteTree, differences, with_manifest};
use crate::load::Inputs;
use crate::pipeline::{analyze, read_inputs, select};
use crate::render::Renderer;
use crate::validate::ValidSite;

/// Render the selected sites into trees (manifest included), all or none.
pub fn render_all(
    inputs: &Inputs,
    sites: &[&ValidSite],
) -> Result<Vec<SiteTree>, crate::diagnostic::Diagnostics> {
    let mut trees = Vec::new();
    let mut errors = crate::diagnostic::Diagnostics::new();
    for result in render_each(inputs, sites)? {
        match result {
            Ok(t) => trees.push(t),
            Err(d) => errors.extend(d),
        }
    }
    if errors.has_errors() {
        Err(errors.sorted())
    } else {
        Ok(trees)
    }
}

/// Render each site on its own: one result per site, in order. The outer
/// error is a template set that does not compile.
pub fn render_each(
    inputs: &Inputs,
    sites: &[&ValidSite],
) -> Result<Vec<Result<SiteTree, crate::diagnostic::Diagnostics>>, crate::diagnostic::Diagnostics> {
    let renderer = Renderer::new(&inputs.sources, &inputs.templates)?;
    Ok(sites
        .iter()
        .map(|v| render_one(inputs, &renderer, v))
        .collect())
}

fn render_one(
    inputs: &Inputs,
    renderer: &Renderer,
    v: &ValidSite,
) -> Result<SiteTree, crate::diagnostic::Diagnostics> {
    let files = renderer.render_site(&v.site)?;
    let mut input_hashes: Vec<(&str, &str)> = v
        .chain_files
        .iter()
        .chain(inputs.templates.values())
        .map(|id| {
            let f = inputs.sources.file(*id);
            (f.path.as_str(), f.sha256.as_str())
        })
        .collect();
    input_hashes.sort();
    let files: BTreeMap<String, Vec<u8>> = files.into_iter().map(|f| (f.path, f.bytes)).collect();
    let template = |name: &str| {
        inputs
            .templates
            .get(name)
            .map(|id| inputs.sources.file(*id).whole())
    };
    let crossed = crate::crosscheck::check_site(&v.site, &files, template);
    if crossed.has_errors() {
        return Err(crossed);
    }
    Ok(with_manifest(&v.site, &input_hashes, files))
}

pub fn run(root: &Path, args: &BuildArgs, out: &Output) -> i32 {
    let (inputs, diags) = read_inputs(root);
    let analysis = analyze(&inputs, diags);
    out.diagnostics(&analysis.diagnostics, &inputs);
    if analysis.diagnostics.has_errors() {
        return 2;
    }
    let profiles: Vec<&str> = inputs.profiles.keys().map(String::as_str).collect();
    let chosen = match select(
        &analysis.sites,
        args.profile.as_deref(),
        &args.sites,
        args.wave,
        &profiles,
    ) {
        Ok(c) => c,
        Err(e) => {
            out.error(&e.0);
            return 2;
        }
    };
    let mut trees = match render_all(&inputs, &chosen) {
        Ok(t) => t,
        Err(d) => {
            out.diagnostics(&d, &inputs);
            return 2;
        }
    };
    // The images these sites run, built once each: out/_images/.
    let pairs: Vec<_> = chosen.iter().map(|v| &v.site).zip(trees.iter()).collect();
    let images = crate::bake::tree(&crate::bake::images(&pairs));
    trees.push(images);
    let out_dir = args.out.clone().unwrap_or_else(|| root.join("out"));

    if args.check {
        let mut report = Vec::new();
        for t in &trees {
            report.push((t.name.clone(), differences(&out_dir.join(&t.name), t)));
        }
        let differs = report.iter().any(|(_, d)| !d.is_empty());
        match out.format {
            Format::Text => {
                for (name, diffs) in &report {
                    if diffs.is_empty() {
                        println!("{name}: up to date");
                    } else {
                        for d in diffs {
                            println!("{d}");
                        }
                    }
                }
            }
            Format::Json => out.json(&serde_json::json!({
                "sites": report.iter().map(|(n, d)| serde_json::json!({ "site": n, "differences": d })).collect::<Vec<_>>(),
                "up-to-date": !differs,
            })),
        }
        return i32::from(differs);
    }

    let dir = match OutDir::open(&out_dir, root) {
        Ok(d) => d,
        Err(e) => {
            out.error(&e.to_string());
            return 2;
        }
    };
    let mut report = Vec::new();
    for t in &trees {
        match dir.write_site(t) {
            Ok(changed) => report.push((t.name.clone(), changed)),
            Err(e) => {
                out.error(&e.to_string());
                return 2;
            }
        }
    }
    match out.format {
        Format::Text => {
            let sites = report.iter().filter(|(n, _)| n != crate::bake::IMAGES_DIR).count();
            let changed = report.iter().filter(|(_, c)| *c).count();
            for (name, c) in &report {
                println!("{name}: {}", if *c { "written" } else { "unchanged" });
            }
            eprintln!(
                "built {sites} site{} and their image plan into {} ({changed} changed)",
                if sites == 1 { "" } else { "s" },
                out_dir.display()
            );
        }
        Format::Json => out.json(&serde_json::json!({
            "out": out_dir.display().to_string(),
            "sites": report.iter().map(|(n, c)| serde_json::json!({ "site": n, "changed": c })).collect::<Vec<_>>(),
        })),
    }
    0
}

//! `dify-cfg build`: select sites, skip those whose out tree was built from
//! the same inputs, render the rest in parallel chunks and stage each beside
//! its directory; only when every site rendered are the staged trees swapped
//! in, so a failure changes nothing. Memory holds one chunk of trees at a
//! time, not the fleet. `--check` renders everything and compares.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::cli::exit::{ExitCode, Failure};
use crate::cli::output::{Output, Report, Text};
use crate::driver::{Compiled, Selection, for_each_tree, input_digest};
use crate::emit::bake::{IMAGES_DIR, ImagePlan};
use crate::emit::{BuiltManifest, EmitError, OutDir, built_manifest, differences};
use crate::input::load::Inputs;
use crate::validate::ValidSite;

/// What to build, and where.
pub struct BuildOptions {
    pub selection: Selection,
    /// The out directory; default `out/` under the root.
    pub out: Option<PathBuf>,
    /// Render everything, even sites built from the same inputs.
    pub full: bool,
}

/// What a build wrote.
pub struct BuildReport {
    pub out_dir: PathBuf,
    /// Each selected site, then the image plan: whether it was written.
    pub written: Vec<(String, bool)>,
}

/// `build --check`: how the out directory differs from a fresh build.
pub struct CheckOutReport {
    /// Each selected site, then the image plan: its differences.
    pub differences: Vec<(String, Vec<String>)>,
}

impl CheckOutReport {
    fn differs(&self) -> bool {
        self.differences.iter().any(|(_, d)| !d.is_empty())
    }
}

fn out_dir(root: &Path, opts: &BuildOptions) -> PathBuf {
    opts.out.clone().unwrap_or_else(|| root.join("out"))
}

pub fn run(root: &Path, opts: &BuildOptions, out: &Output) -> Result<BuildReport, Failure> {
    let compiled = Compiled::read(root);
    let chosen = out.chosen(&compiled, &opts.selection)?;
    let inputs = &compiled.inputs;
    let out_dir = out_dir(root, opts);
    let dir = OutDir::open(&out_dir, root)?;
    let mut images = ImagePlan::default();
    let mut changed: BTreeMap<String, bool> = BTreeMap::new();
    // Incremental: a site whose tree was built from these very inputs (by
    // this compiler) is neither rendered nor written.
    let built: Vec<Option<BuiltManifest>> = chosen
        .par_iter()
        .map(|v| match opts.full {
            true => None,
            false => built_manifest(&out_dir.join(&v.site.name), &input_digest(inputs, v)),
        })
        .collect();
    let mut todo = Vec::new();
    for (v, manifest) in chosen.iter().zip(built) {
        match manifest {
            Some(m) => {
                images.add_built(&v.site, &m, &out_dir.join(&v.site.name));
                changed.insert(v.site.name.clone(), false);
            }
            None => todo.push(*v),
        }
    }
    // Render and stage; nothing is visible until every site rendered.
    let mut staged = Vec::new();
    let handed = for_each_tree(inputs, &todo, |v, tree| {
        images.add(&v.site, &tree.files);
        let s = dir.stage(&tree)?;
        changed.insert(tree.name.clone(), s.is_some());
        staged.extend(s);
        Ok::<(), EmitError>(())
    });
    if !handed.is_ok() {
        for s in staged {
            dir.discard(s);
        }
        out.diagnostics(&handed.diagnostics, inputs);
        return Err(handed.failed.map_or(Failure::Diagnosed, Failure::from));
    }
    // The images these sites run, built once each: out/_images/.
    let images = crate::emit::bake::tree(&images.finish());
    match dir.stage(&images) {
        Ok(s) => {
            changed.insert(images.name.clone(), s.is_some());
            staged.extend(s);
        }
        Err(e) => {
            for s in staged {
                dir.discard(s);
            }
            return Err(e.into());
        }
    }
    // Durable first, then visible: one sync, then a swap per site.
    dir.sync()?;
    for s in staged {
        dir.swap(s)?;
    }
    let order = chosen
        .iter()
        .map(|v| v.site.name.as_str())
        .chain([IMAGES_DIR]);
    Ok(BuildReport {
        written: order.map(|n| (n.to_string(), changed[n])).collect(),
        out_dir,
    })
}

impl Report for BuildReport {
    fn text(&self) -> Text {
        let mut text = Text::default();
        let sites = self.written.len() - 1;
        let written = self.written.iter().filter(|(_, c)| *c).count();
        for (name, c) in &self.written {
            let what = if *c { "written" } else { "unchanged" };
            text.stdout.push_str(&format!("{name}: {what}\n"));
        }
        text.stderr = format!(
            "built {sites} site{} and their image plan into {} ({written} changed)\n",
            if sites == 1 { "" } else { "s" },
            self.out_dir.display()
        );
        text
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "out": self.out_dir.display().to_string(),
            "sites": self.written.iter().map(|(n, c)| serde_json::json!({ "site": n, "changed": c })).collect::<Vec<_>>(),
        })
    }
}

/// `build --check`: render everything (no shortcuts) and compare with the
/// out directory, byte for byte.
pub fn check(root: &Path, opts: &BuildOptions, out: &Output) -> Result<CheckOutReport, Failure> {
    let compiled = Compiled::read(root);
    let chosen = out.chosen(&compiled, &opts.selection)?;
    compare(&compiled.inputs, &chosen, &out_dir(root, opts), out)
}

fn compare(
    inputs: &Inputs,
    chosen: &[&ValidSite],
    out_dir: &Path,
    out: &Output,
) -> Result<CheckOutReport, Failure> {
    let mut images = ImagePlan::default();
    let mut report: Vec<(String, Vec<String>)> = Vec::new();
    let handed = for_each_tree(inputs, chosen, |v, tree| {
        images.add(&v.site, &tree.files);
        report.push((
            tree.name.clone(),
            differences(&out_dir.join(&tree.name), &tree),
        ));
        Ok::<(), std::convert::Infallible>(())
    });
    if !handed.is_ok() {
        return Err(out.diagnosed(&handed.diagnostics, inputs));
    }
    let images = crate::emit::bake::tree(&images.finish());
    report.push((
        images.name.clone(),
        differences(&out_dir.join(&images.name), &images),
    ));
    Ok(CheckOutReport {
        differences: report,
    })
}

impl Report for CheckOutReport {
    fn text(&self) -> Text {
        let mut text = Text::default();
        for (name, diffs) in &self.differences {
            if diffs.is_empty() {
                text.stdout.push_str(&format!("{name}: up to date\n"));
            }
            for d in diffs {
                text.stdout.push_str(&format!("{d}\n"));
            }
        }
        text
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "sites": self.differences.iter().map(|(n, d)| serde_json::json!({ "site": n, "differences": d })).collect::<Vec<_>>(),
            "up-to-date": !self.differs(),
        })
    }

    fn exit_code(&self) -> ExitCode {
        if self.differs() {
            ExitCode::Differs
        } else {
            ExitCode::Success
        }
    }
}

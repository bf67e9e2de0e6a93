//! `dify-cfg build`: select sites, skip those whose out tree was built from
//! the same inputs, render the rest in parallel chunks and stage each beside
//! its directory; only when every site rendered are the staged trees swapped
//! in (and the trees of sites no longer in the sources removed), all or
//! none, so a failure changes nothing. The image plan covers the whole
//! fleet. Memory holds one chunk of trees at a time, not the fleet.
//! `--check` renders everything and compares.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rayon::prelude::*;

use crate::base::diagnostic::Diagnostics;
use crate::cli::exit::{ExitCode, Failure};
use crate::cli::output::{Output, Report, Text, took};
use crate::driver::{
    Compiled, Progress, Selection, for_each_build_files, for_each_tree, input_digest,
};
use crate::emit::bake::{IMAGES_DIR, ImagePlan};
use crate::emit::{EmitError, OutDir, SiteTree, Staged, differences, retired, up_to_date};
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
    /// The trees of sites no longer in the sources, removed.
    pub removed: Vec<String>,
    /// How long it took, said on a terminal only.
    pub elapsed: Option<Duration>,
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

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
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
    let fleet = site_names(&compiled);
    let mut changed: BTreeMap<String, bool> = BTreeMap::new();
    let bar = out.progress("build");
    bar.more(chosen.len());
    // Incremental: a site whose tree was built from these very inputs (by
    // this compiler) is neither rendered nor written.
    let skip: Vec<bool> = chosen
        .par_iter()
        .map(|v| {
            let name = &v.site.name;
            !opts.full && up_to_date(&out_dir.join(name), name, &input_digest(inputs, v))
        })
        .collect();
    let mut todo = Vec::new();
    for (v, skip) in chosen.iter().zip(skip) {
        match skip {
            true => drop(changed.insert(v.site.name.clone(), false)),
            false => todo.push(*v),
        }
    }
    bar.done(chosen.len() - todo.len());
    // Render and stage; nothing is visible until every site rendered.
    let mut images = ImagePlan::default();
    let mut staged = Vec::new();
    let handed = for_each_tree(inputs, &todo, |v, tree| {
        images.add(&v.site, &tree.files);
        let s = dir.stage(&tree)?;
        changed.insert(tree.name.clone(), s.is_some());
        staged.extend(s);
        bar.done(1);
        Ok::<(), EmitError>(())
    });
    let discard = |staged: Vec<Staged>| staged.into_iter().for_each(|s| dir.discard(s));
    if !handed.is_ok() {
        discard(staged);
        out.diagnostics(&handed.diagnostics, inputs);
        return Err(handed.failed.map_or(Failure::Diagnosed, Failure::from));
    }
    // The images every site of the fleet runs, built once each: out/_images/.
    let images = match image_plan(&compiled, &todo, images) {
        Ok(tree) => tree,
        Err(d) => {
            discard(staged);
            return Err(out.diagnosed(&d, inputs));
        }
    };
    match dir.stage(&images) {
        Ok(s) => {
            changed.insert(images.name.clone(), s.is_some());
            staged.extend(s);
        }
        Err(e) => {
            discard(staged);
            return Err(e.into());
        }
    }
    let removed = dir.retired(|name| fleet.contains(name));
    // Durable first, then visible: one sync, then every swap, all or none.
    if let Err(e) = dir.sync() {
        discard(staged);
        return Err(e.into());
    }
    dir.install(staged, &removed)?;
    let order = chosen
        .iter()
        .map(|v| v.site.name.as_str())
        .chain([IMAGES_DIR]);
    Ok(BuildReport {
        written: order.map(|n| (n.to_string(), changed[n])).collect(),
        removed,
        out_dir,
        elapsed: out.elapsed(false),
    })
}

/// The name of every site of the fleet.
fn site_names(compiled: &Compiled) -> BTreeSet<&str> {
    compiled
        .sites
        .iter()
        .map(|v| v.site.name.as_str())
        .collect()
}

/// The image plan of the whole fleet: the sites rendered in full bring
/// their trees' Dockerfiles (in `images`), every other valid site its
/// build files, rendered for this (never read back from the out
/// directory), so that a partial build plans every image the fleet runs.
fn image_plan(
    compiled: &Compiled,
    rendered: &[&ValidSite],
    mut images: ImagePlan,
) -> Result<SiteTree, Diagnostics> {
    let done: BTreeSet<&str> = rendered.iter().map(|v| v.site.name.as_str()).collect();
    let rest: Vec<&ValidSite> = compiled
        .sites
        .iter()
        .filter(|v| !done.contains(v.site.name.as_str()))
        .collect();
    for_each_build_files(&compiled.inputs, &rest, |v, files| {
        images.add(&v.site, files)
    })?;
    Ok(crate::emit::bake::tree(&images.finish()))
}

impl BuildReport {
    /// The report for people; `quiet`: the removed trees and the summary.
    fn text_with(&self, quiet: bool) -> Text {
        let mut text = Text::default();
        let sites = self.written.len() - 1;
        let written = self.written.iter().filter(|(_, c)| *c).count();
        for (name, c) in self.written.iter().filter(|_| !quiet) {
            let what = if *c { "written" } else { "unchanged" };
            text.stdout.push_str(&format!("{name}: {what}\n"));
        }
        for name in &self.removed {
            text.stdout
                .push_str(&format!("{name}: removed (no site of that name)\n"));
        }
        let removed = match self.removed.len() {
            0 => String::new(),
            n => format!(
                "; removed the trees of {n} site{} no longer in the sources",
                plural(n)
            ),
        };
        text.stderr = format!(
            "built {sites} site{} and their image plan into {} ({written} changed{removed}){}\n",
            plural(sites),
            self.out_dir.display(),
            took(self.elapsed)
        );
        text
    }
}

impl Report for BuildReport {
    fn text(&self) -> Text {
        self.text_with(false)
    }

    fn quiet_text(&self) -> Text {
        self.text_with(true)
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "out": self.out_dir.display().to_string(),
            "sites": self.written.iter().map(|(n, c)| serde_json::json!({ "site": n, "changed": c })).collect::<Vec<_>>(),
            "removed": self.removed,
        })
    }
}

/// `build --check`: render everything (no shortcuts) and compare with the
/// out directory, byte for byte.
pub fn check(root: &Path, opts: &BuildOptions, out: &Output) -> Result<CheckOutReport, Failure> {
    let compiled = Compiled::read(root);
    let chosen = out.chosen(&compiled, &opts.selection)?;
    compare(&compiled, &chosen, &out_dir(root, opts), out)
}

fn compare(
    compiled: &Compiled,
    chosen: &[&ValidSite],
    out_dir: &Path,
    out: &Output,
) -> Result<CheckOutReport, Failure> {
    let inputs = &compiled.inputs;
    let mut images = ImagePlan::default();
    let mut report: Vec<(String, Vec<String>)> = Vec::new();
    let bar = out.progress("check");
    bar.more(chosen.len());
    let handed = for_each_tree(inputs, chosen, |v, tree| {
        images.add(&v.site, &tree.files);
        report.push((
            tree.name.clone(),
            differences(&out_dir.join(&tree.name), &tree),
        ));
        bar.done(1);
        Ok::<(), std::convert::Infallible>(())
    });
    if !handed.is_ok() {
        return Err(out.diagnosed(&handed.diagnostics, inputs));
    }
    let images = image_plan(compiled, chosen, images).map_err(|d| out.diagnosed(&d, inputs))?;
    report.push((
        images.name.clone(),
        differences(&out_dir.join(&images.name), &images),
    ));
    // Trees of sites no longer in the sources, which a build removes.
    let fleet = site_names(compiled);
    for name in retired(out_dir, |n| fleet.contains(n)) {
        let gone = format!("extra: {name}/ (no site of that name; a build removes it)");
        report.push((name, vec![gone]));
    }
    Ok(CheckOutReport {
        differences: report,
    })
}

impl CheckOutReport {
    /// The report for people; `quiet`: the differences only.
    fn text_with(&self, quiet: bool) -> Text {
        let mut text = Text::default();
        for (name, diffs) in &self.differences {
            if diffs.is_empty() && !quiet {
                text.stdout.push_str(&format!("{name}: up to date\n"));
            }
            for d in diffs {
                text.stdout.push_str(&format!("{d}\n"));
            }
        }
        text
    }
}

impl Report for CheckOutReport {
    fn text(&self) -> Text {
        self.text_with(false)
    }

    fn quiet_text(&self) -> Text {
        self.text_with(true)
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

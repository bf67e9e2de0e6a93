//! Compiling sites, for every command: each selected site is rendered,
//! cross-checked (compose ports, firewall openings and nginx listeners read
//! back from the output) and given its manifest ([`render_one`]); sites go
//! in chunks of [`CHUNK`], each chunk in parallel (rayon; indexed, so
//! results come in order and bytes equal a serial build), and each result is
//! handed on before the next chunk, so memory holds one chunk, not the
//! fleet.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

use rayon::prelude::*;

use crate::base::diagnostic::Diagnostics;
use crate::emit::{SiteTree, digest, with_manifest};
use crate::input::load::Inputs;
use crate::render::Renderer;
use crate::validate::ValidSite;

/// How many sites are rendered at once: enough to keep every core busy,
/// few enough that a fleet of thousands never sits in memory whole.
pub const CHUNK: usize = 128;

/// Render the selected sites into trees (manifest included), all or none.
pub fn render_all(inputs: &Inputs, sites: &[&ValidSite]) -> Result<Vec<SiteTree>, Diagnostics> {
    let mut trees = Vec::new();
    let handed = for_each_tree(inputs, sites, |_, tree| {
        trees.push(tree);
        Ok::<(), std::convert::Infallible>(())
    });
    if handed.diagnostics.has_errors() {
        Err(handed.diagnostics)
    } else {
        Ok(trees)
    }
}

/// A tree that is kept past the worker that rendered it (a chunk's worth of
/// them are) drops its parsed `compose.yaml`, which is larger than the file.
fn without_read_back(tree: SiteTree) -> SiteTree {
    SiteTree {
        compose: None,
        ..tree
    }
}

/// Render `sites` chunk by chunk (each chunk in parallel), running `work` on
/// each tree on the worker thread that rendered it, so that per-site work
/// after rendering (hashing, writing git objects) is parallel too; `each`
/// gets `work`'s results, in order, and returning false stops early. A
/// worker's state (a repository handle, say) is made by `init` when a
/// worker first needs one and kept for its next sites: there are about as
/// many as threads.
pub fn render_chunks_with<S: Send, T: Send>(
    inputs: &Inputs,
    sites: &[&ValidSite],
    init: impl Fn() -> S + Sync,
    work: impl Fn(&mut S, &ValidSite, SiteTree) -> T + Sync,
    mut each: impl FnMut(&ValidSite, Result<T, Diagnostics>) -> bool,
) -> Result<(), Diagnostics> {
    let renderer = Renderer::new(&inputs.sources, &inputs.templates)?;
    let states: Mutex<Vec<S>> = Mutex::new(Vec::new());
    // Nothing panics while holding the lock, so it is never poisoned; if it
    // were, the states are still whole.
    let pool = || states.lock().unwrap_or_else(PoisonError::into_inner);
    for chunk in sites.chunks(CHUNK) {
        let results: Vec<_> = chunk
            .par_iter()
            .map(|v| {
                let tree = render_one(inputs, &renderer, v)?;
                let taken = pool().pop();
                let mut state = taken.unwrap_or_else(&init);
                let done = work(&mut state, v, tree);
                pool().push(state);
                Ok(done)
            })
            .collect();
        for (v, r) in chunk.iter().zip(results) {
            if !each(v, r) {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// What became of handing every rendered tree on ([`for_each_tree`]).
pub struct Handed<E> {
    /// Every site's rendering problems (rendering goes on past them, so
    /// that all are reported).
    pub diagnostics: Diagnostics,
    /// What stopped the handing on, if anything did.
    pub failed: Option<E>,
}

impl<E> Handed<E> {
    pub fn is_ok(&self) -> bool {
        self.failed.is_none() && !self.diagnostics.has_errors()
    }
}

/// [`render_chunks_with`], handing each tree that rendered to `each`; the first
/// error of `each` stops it.
pub fn for_each_tree<E: Send>(
    inputs: &Inputs,
    sites: &[&ValidSite],
    each: impl FnMut(&ValidSite, SiteTree) -> Result<(), E>,
) -> Handed<E> {
    for_each_worked(
        inputs,
        sites,
        || (),
        |_, _, tree| Ok(without_read_back(tree)),
        each,
    )
}

/// [`render_chunks_with`]: `work` on each tree that rendered (in parallel,
/// with its worker's state), then `each` on the result (in order); the
/// first error of either stops it.
pub fn for_each_worked<S: Send, T: Send, E: Send>(
    inputs: &Inputs,
    sites: &[&ValidSite],
    init: impl Fn() -> S + Sync,
    work: impl Fn(&mut S, &ValidSite, SiteTree) -> Result<T, E> + Sync,
    mut each: impl FnMut(&ValidSite, T) -> Result<(), E>,
) -> Handed<E> {
    let mut diagnostics = Diagnostics::new();
    let mut failed = None;
    let rendered = render_chunks_with(inputs, sites, init, work, |v, result| match result {
        Ok(worked) => match worked.and_then(|t| each(v, t)) {
            Ok(()) => true,
            Err(e) => {
                failed = Some(e);
                false
            }
        },
        Err(d) => {
            diagnostics.extend(d);
            true
        }
    });
    if let Err(d) = rendered {
        diagnostics.extend(d);
    }
    Handed {
        diagnostics: diagnostics.sorted(),
        failed,
    }
}

/// The build files (Dockerfiles and their ignore files) of `sites`, handed
/// to `each` site by site: what the image plan needs of the sites a command
/// does not render in full. Sites whose build files are planned alike (the
/// same templates, the same contexts) are rendered once.
pub fn for_each_build_files(
    inputs: &Inputs,
    sites: &[&ValidSite],
    mut each: impl FnMut(&ValidSite, &BTreeMap<String, Vec<u8>>),
) -> Result<(), Diagnostics> {
    if sites.is_empty() {
        return Ok(());
    }
    let renderer = Renderer::new(&inputs.sources, &inputs.templates)?;
    let render = |v: &ValidSite| -> Result<BTreeMap<String, Vec<u8>>, Diagnostics> {
        let files = renderer.render_builds(&v.site)?;
        Ok(files.into_iter().map(|f| (f.path, f.bytes)).collect())
    };
    let mut rendered: HashMap<String, BTreeMap<String, Vec<u8>>> = HashMap::new();
    let mut diagnostics = Diagnostics::new();
    // What the templates see is the plan serialized: equal text (here its
    // sha256, to hold a fleet's keys in little memory), equal files.
    let keys: Vec<Option<String>> = sites
        .par_iter()
        .map(|v| {
            let plan = serde_json::to_vec(&crate::plan::builds(&v.site)).ok()?;
            Some(crate::base::source::sha256_hex(&plan))
        })
        .collect();
    for (v, key) in sites.iter().zip(keys) {
        let Some(key) = key else {
            match render(v) {
                Ok(files) => each(v, &files),
                Err(d) => diagnostics.extend(d),
            }
            continue;
        };
        if !rendered.contains_key(&key) {
            match render(v) {
                Ok(files) => rendered.insert(key.clone(), files),
                Err(d) => {
                    diagnostics.extend(d);
                    continue;
                }
            };
        }
        each(v, &rendered[&key]);
    }
    if diagnostics.has_errors() {
        Err(diagnostics.sorted())
    } else {
        Ok(())
    }
}

/// The (path, sha256) of every file a site is compiled from: its profile
/// chain, its site file and the templates.
fn input_hashes<'i>(inputs: &'i Inputs, v: &ValidSite) -> Vec<(&'i str, &'i str)> {
    let mut hashes: Vec<(&str, &str)> = v
        .chain_files
        .iter()
        .chain(inputs.templates.values())
        .map(|id| {
            let f = inputs.sources.file(*id);
            (f.path.as_str(), f.sha256.as_str())
        })
        .collect();
    hashes.sort();
    hashes
}

/// The manifest's `input-digest` a site would get, without rendering it.
pub fn input_digest(inputs: &Inputs, v: &ValidSite) -> String {
    digest(input_hashes(inputs, v))
}

/// Compile one site: render its files, cross-check them, add the manifest.
fn render_one(
    inputs: &Inputs,
    renderer: &Renderer,
    v: &ValidSite,
) -> Result<SiteTree, Diagnostics> {
    let files = renderer.render_site(&v.site)?;
    let files: BTreeMap<String, Vec<u8>> = files.into_iter().map(|f| (f.path, f.bytes)).collect();
    let template = |name: &str| {
        inputs
            .templates
            .get(name)
            .map(|id| inputs.sources.file(*id).whole())
    };
    let compose = crate::verify::crosscheck::read_compose(&files);
    let mut crossed = crate::verify::crosscheck::check_site(&v.site, &files, &compose, template);
    crossed.extend(crate::verify::squid::check_site(
        &v.site, &files, &compose, template,
    ));
    crossed.extend(crate::verify::tls::check_site(
        &v.site, &files, &compose, template,
    ));
    if crossed.has_errors() {
        return Err(crossed);
    }
    let mut tree = with_manifest(&v.site, &input_hashes(inputs, v), files);
    tree.compose = compose.ok();
    Ok(tree)
}

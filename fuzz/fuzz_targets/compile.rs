//! Load, validate and render a config root whose site file (and, when the
//! input has a `\n%%\n` separator, a profile) are the fuzzer's bytes.
//! Anything may be refused with diagnostics; nothing may panic, and a root
//! that validates must render or say why.
#![no_main]

use dify_cfg::Diagnostics;
use dify_cfg::internals::{MemTree, load_from};
use libfuzzer_sys::fuzz_target;

/// A small valid fleet the fuzzed files join: the fuzzed site may extend
/// these profiles, and the fuzzed profile replaces `edge`.
const BASE: &str = include_str!("../../tests/bad/_base/profiles/base.toml");

fuzz_target!(|data: &[u8]| {
    let mut tree = MemTree::default();
    tree.files
        .insert("profiles/base.toml".into(), BASE.as_bytes().to_vec());
    let sep = b"\n%%\n";
    match data.windows(sep.len()).position(|w| w == sep) {
        Some(at) => {
            tree.files
                .insert("profiles/edge.toml".into(), data[..at].to_vec());
            tree.files
                .insert("sites/fuzz.toml".into(), data[at + sep.len()..].to_vec());
        }
        None => {
            tree.files.insert("sites/fuzz.toml".into(), data.to_vec());
        }
    }
    let mut diags = Diagnostics::new();
    let inputs = load_from(&tree, &mut diags);
    let analysis = dify_cfg::internals::analyze(&inputs, diags);
    // Rendering diagnostics must be renderable too (spans inside files).
    let _ = analysis.diagnostics.render_text(&inputs.sources, false);
    if analysis.diagnostics.has_errors() {
        return;
    }
    let chosen: Vec<_> = analysis.sites.iter().collect();
    match dify_cfg::render_all(&inputs, &chosen) {
        Ok(trees) => {
            for t in &trees {
                assert!(t.files.contains_key("manifest.json"));
            }
        }
        Err(d) => {
            assert!(
                d.has_errors(),
                "rendering a valid root failed without an error diagnostic"
            );
            let _ = d.render_text(&inputs.sources, false);
        }
    }
});

//! Golden snapshots of every rendered file of clinic-01, clinic-10 and hq.
//! Review changes with `cargo insta review` (or set INSTA_UPDATE=always and
//! read the diff in git) — a changed snapshot is a changed deployment.

use dify_cfg::internals::{analyze, read_inputs, select};

use crate::support;

#[test]
fn rendered_sites_match_their_snapshots() {
    let (inputs, diags) = read_inputs(support::repo());
    let analysis = analyze(&inputs, diags);
    assert!(!analysis.diagnostics.has_errors());
    let profiles: Vec<&str> = inputs.profiles.keys().map(String::as_str).collect();
    let names = vec![
        "clinic-01".to_string(),
        "clinic-10".to_string(),
        "hq".to_string(),
    ];
    let chosen = select(&analysis.sites, None, &names, None, &profiles).unwrap();
    let trees = dify_cfg::render_all(&inputs, &chosen)
        .unwrap_or_else(|d| panic!("{}", d.render_text(&inputs.sources, false)));
    assert_eq!(trees.len(), 3);
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.bind(|| {
        for tree in &trees {
            for (path, bytes) in &tree.files {
                let name = format!("{}__{}", tree.name, path.replace('/', "__"));
                let text = String::from_utf8(bytes.clone()).expect("outputs are UTF-8");
                insta::assert_snapshot!(name, text);
            }
        }
    });
}

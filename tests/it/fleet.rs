//! The example fleet in this repository is valid, and the profile chains
//! and budgets are what the README says.

use std::path::Path;

use dify_cfg::internals::{ServiceKind, Target};
use dify_cfg::internals::{analyze, read_inputs, select};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn example_fleet_is_valid() {
    let (inputs, diags) = read_inputs(root());
    let analysis = analyze(&inputs, diags);
    assert!(
        !analysis.diagnostics.has_errors(),
        "{}",
        analysis.diagnostics.render_text(&inputs.sources, false)
    );
    assert!(
        analysis.diagnostics.is_empty(),
        "no warnings expected either"
    );
    let names: Vec<&str> = analysis
        .sites
        .iter()
        .map(|s| s.site.name.as_str())
        .collect();
    assert_eq!(names.len(), 11);
    let c1 = &analysis
        .sites
        .iter()
        .find(|s| s.site.name == "clinic-01")
        .unwrap()
        .site;
    assert_eq!(*c1.profile_chain, ["multi-branch", "edge-4gb"]);
    assert_eq!(c1.target, Target::Compose);
    assert_eq!(c1.wave, 1);
    assert_eq!(c1.services[&ServiceKind::Api].memory.human(), "640MiB");
    assert!(!c1.services.contains_key(&ServiceKind::ApiWebsocket));
    assert!(!c1.login.allow_register);
    let hq = &analysis
        .sites
        .iter()
        .find(|s| s.site.name == "hq")
        .unwrap()
        .site;
    assert_eq!(hq.target, Target::Helm);
    assert!(hq.database.external.is_some());
    assert!(!hq.services.contains_key(&ServiceKind::Db));
}

#[test]
fn edge_prefix_selects_the_ten_clinics() {
    let (inputs, diags) = read_inputs(root());
    let analysis = analyze(&inputs, diags);
    let profiles: Vec<&str> = inputs.profiles.keys().map(String::as_str).collect();
    let chosen = select(&analysis.sites, Some("edge"), &[], None, &profiles).unwrap();
    let names: Vec<&str> = chosen.iter().map(|s| s.site.name.as_str()).collect();
    assert_eq!(names.len(), 10);
    assert!(names.iter().all(|n| n.starts_with("clinic-")));
    let waves: Vec<u32> = chosen.iter().map(|s| s.site.wave).collect();
    assert_eq!(waves, vec![1, 2, 2, 2, 3, 3, 3, 3, 3, 3]);
}

/// The benchmark's synthetic fleet (`bench/gen-fleet`) is valid with no
/// warning: a fleet that failed `check` would measure diagnostics, not
/// builds. Every override kind the generator writes appears within 40 sites.
#[test]
fn the_benchmarks_generated_fleet_is_valid() {
    let python = std::process::Command::new("python3")
        .arg("--version")
        .output();
    if !crate::support::available(
        "python3",
        python.is_ok_and(|o| o.status.success()),
        "it runs bench/gen-fleet",
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let fleet = tmp.path().join("fleet");
    let o = std::process::Command::new("python3")
        .arg(root().join("bench/gen-fleet"))
        .args(["40", "--no-git"])
        .arg(&fleet)
        .output()
        .unwrap();
    crate::support::assert_ok(o, "bench/gen-fleet 40");
    let (inputs, diags) = read_inputs(&fleet);
    let analysis = analyze(&inputs, diags);
    assert!(
        analysis.diagnostics.is_empty(),
        "{}",
        analysis.diagnostics.render_text(&inputs.sources, false)
    );
    assert_eq!(analysis.sites.len(), 40);
}

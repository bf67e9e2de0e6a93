//! `dify-cfg init`: what it writes compiles and builds at once, with no
//! warning; it never writes over anything (a second run, each of its files
//! already there, a file where one of its folders goes, a config root, the
//! inputs of another fleet), and what it started to write it removes again
//! when a write fails. Root discovery: commands run inside the new fleet
//! find it.

use std::fs;
use std::path::Path;
use std::process::Output;

use crate::support::{all_entries, available, dify_cfg, on_path, output_text};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Run the binary in `cwd` and require `code`.
fn run(cwd: &Path, args: &[&str], code: i32) -> Output {
    let o = dify_cfg(args, cwd);
    assert_eq!(
        o.status.code(),
        Some(code),
        "dify-cfg {args:?} in {}:\n{}",
        cwd.display(),
        output_text(&o)
    );
    o
}

/// The paths `init` writes, as its JSON report lists them.
fn written(o: &Output) -> Vec<String> {
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    report["written"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_new_fleet_checks_and_builds_at_once_and_a_second_init_changes_no_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let o = run(tmp.path(), &["--format", "json", "init", "fleet"], 0);
    let files = written(&o);
    let fleet = tmp.path().join("fleet");
    for f in &files {
        assert!(fleet.join(f).is_file(), "{f} was not written");
    }
    for f in [
        ".github/workflows/ci.yml",
        ".github/workflows/rollout.yml",
        ".gitignore",
        ".taplo.toml",
        "schema/dify-cfg.schema.json",
    ] {
        assert!(files.iter().any(|w| w == f), "{f} not in {files:?}");
    }
    assert_eq!(
        fs::read_to_string(fleet.join(".gitignore")).unwrap(),
        "out/\n"
    );

    // Found from the fleet and from inside it; no diagnostic, no warning.
    let o = run(&fleet, &["check"], 0);
    assert!(!text(&o.stderr).contains("warning"), "check warned");
    run(&fleet.join("sites"), &["check"], 0);
    let o = run(&fleet.join("profiles"), &["build"], 0);
    assert!(!text(&o.stderr).contains("warning"), "build warned");
    assert!(fleet.join("out/edge-01/compose.yaml").is_file());
    assert!(fleet.join("out/_images/docker-bake.json").is_file());
    run(&fleet, &["build", "--check"], 0);
    // A new fleet starts on the newest release dify-cfg knows.
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(fleet.join("out/edge-01/manifest.json")).unwrap())
            .unwrap();
    let newest = dify_cfg::internals::SUPPORTED_RELEASES
        .iter()
        .copied()
        .max_by(|a, b| dify_cfg::internals::dify_facts::compat::release_order(a, b))
        .unwrap();
    assert_eq!(manifest["dify-version"], newest);

    // A second init, with the fleet built: refused, every path named.
    let before = all_entries(&fleet);
    let o = run(tmp.path(), &["init", "fleet"], 2);
    let err = text(&o.stderr);
    assert!(err.contains("is a config root already"), "{err}");
    assert_eq!(all_entries(&fleet), before);
    // With profiles/ gone, the files that are still there are named.
    fs::remove_dir_all(fleet.join("profiles")).unwrap();
    let before = all_entries(&fleet);
    let o = run(tmp.path(), &["--format", "json", "init", "fleet"], 2);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let error = report["error"].as_str().unwrap();
    for f in files.iter().filter(|f| !f.starts_with("profiles/")) {
        assert!(error.contains(f.as_str()), "{f} not named: {error}");
    }
    assert_eq!(all_entries(&fleet), before);
}

#[test]
fn the_cloud_profile_builds_a_helm_site() {
    let tmp = tempfile::tempdir().unwrap();
    run(tmp.path(), &["init"], 0);
    fs::write(
        tmp.path().join("sites/cloud-01.toml"),
        "profile = \"cloud\"\ndescription = \"The cluster\"\n\n[network]\nhostname = \"dify.example.org\"\nadmin = [\"10.0.0.0/24\"]\n\n[database.external]\nhost = \"postgres.example.org\"\n\n[redis.external]\nhost = \"redis.example.org\"\n",
    )
    .unwrap();
    let o = run(tmp.path(), &["build"], 0);
    assert!(!text(&o.stderr).contains("warning"), "build warned");
    assert!(tmp.path().join("out/cloud-01/helm/values.yaml").is_file());
}

#[test]
fn init_writes_nothing_where_any_of_its_paths_is_taken() {
    let tmp = tempfile::tempdir().unwrap();
    let o = run(tmp.path(), &["--format", "json", "init", "probe"], 0);
    let mut taken: Vec<String> = written(&o);
    // A file where one of its folders goes.
    taken.push("schema".into());
    taken.push(".github".into());
    for path in &taken {
        let dir = tmp.path().join(format!("case-{}", path.replace('/', "_")));
        let at = dir.join(path);
        fs::create_dir_all(at.parent().unwrap()).unwrap();
        fs::write(&at, "the user's own\n").unwrap();
        fs::write(dir.join("README.md"), "kept\n").unwrap();
        let before = all_entries(&dir);
        let o = run(&dir, &["init"], 2);
        let err = text(&o.stderr);
        // A profile makes the folder a config root already.
        let says = if path.starts_with("profiles/") {
            "is a config root already".to_string()
        } else {
            format!(": {path}\n")
        };
        assert!(err.contains(&says), "{path}: {err}");
        assert!(err.contains("wrote nothing"), "{err}");
        assert_eq!(all_entries(&dir), before, "{path}: the folder changed");
    }
}

#[test]
fn init_refuses_a_config_root_and_the_inputs_of_one() {
    let tmp = tempfile::tempdir().unwrap();
    run(tmp.path(), &["init", "fleet"], 0);
    let fleet = tmp.path().join("fleet");
    let before = all_entries(tmp.path());
    for (cwd, args, says) in [
        (&fleet, vec!["init"], "config root already"),
        (&fleet, vec!["init", "sites/new"], "among the inputs"),
        (&fleet.join("profiles"), vec!["init"], "among the inputs"),
        (&fleet, vec!["--root", "sites", "init"], "among the inputs"),
        (&fleet, vec!["init", ".gitignore"], "not a directory"),
    ] {
        let o = run(cwd, &args, 2);
        assert!(
            text(&o.stderr).contains(says),
            "{args:?}: {}",
            output_text(&o)
        );
    }
    assert_eq!(all_entries(tmp.path()), before);
    // A fleet beside the other's inputs is a fleet of its own.
    run(&fleet, &["init", "other"], 0);
    run(&fleet.join("other/sites"), &["check"], 0);
}

/// Undoes a `chattr +i` when dropped.
struct Mutable<'p>(&'p Path);

impl Drop for Mutable<'_> {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(self.0)
            .status();
    }
}

#[test]
fn a_write_that_fails_half_way_removes_what_init_wrote() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // `sites/` is the user's and cannot take a file: init has written
    // every other file when it fails there (it writes in path order).
    fs::create_dir(dir.join("sites")).unwrap();
    fs::write(dir.join("notes.txt"), "the user's\n").unwrap();
    let sites = dir.join("sites");
    let locked = on_path("chattr")
        && std::process::Command::new("chattr")
            .arg("+i")
            .arg(&sites)
            .status()
            .is_ok_and(|s| s.success());
    let _undo = Mutable(&sites);
    if !available(
        "chattr +i",
        locked,
        "this test needs root and a file system with the immutable flag",
    ) {
        return;
    }
    let before = all_entries(dir);
    let o = run(dir, &["init"], 2);
    let err = text(&o.stderr);
    assert!(err.contains("cannot write `./sites/edge-01.toml`"), "{err}");
    assert!(err.contains("removed again"), "{err}");
    assert_eq!(all_entries(dir), before);
}

/// A workflow as YAML, without the steps that install dify-cfg and the
/// environment they read.
fn without_install(path: &str) -> serde_yaml_ng::Value {
    let text = fs::read_to_string(crate::support::repo().join(path)).unwrap();
    let mut doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let map = doc.as_mapping_mut().unwrap();
    map.remove("env");
    for (_, job) in map.get_mut("jobs").unwrap().as_mapping_mut().unwrap() {
        let steps = job.get_mut("steps").unwrap().as_sequence_mut().unwrap();
        steps.retain(|s| {
            !s.get("run")
                .and_then(|r| r.as_str())
                .is_some_and(|r| r.contains("cargo install"))
        });
    }
    doc
}

#[test]
fn the_scaffolds_rollout_is_the_projects_own_but_for_installing_dify_cfg() {
    assert_eq!(
        without_install("scaffold/.github/workflows/rollout.yml"),
        without_install(".github/workflows/rollout.yml"),
        "the rollout workflows differ beyond the step that installs dify-cfg"
    );
}

#[test]
fn the_scaffolds_workflow_scripts_pass_shellcheck() {
    if !available("shellcheck", on_path("shellcheck"), "install shellcheck") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for name in ["ci.yml", "rollout.yml"] {
        let path = crate::support::repo()
            .join("scaffold/.github/workflows")
            .join(name);
        let doc: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        for (job, spec) in doc["jobs"].as_mapping().unwrap() {
            for step in spec["steps"].as_sequence().unwrap() {
                let Some(run) = step.get("run").and_then(|r| r.as_str()) else {
                    continue;
                };
                // GitHub's `${{ }}` expressions, as the runner would put
                // text in their place.
                let mut script = String::from("#!/bin/bash\n");
                let mut rest = run;
                while let Some(at) = rest.find("${{") {
                    script.push_str(&rest[..at]);
                    script.push_str("EXPR");
                    rest = rest[at..].split_once("}}").map_or("", |(_, r)| r);
                }
                script.push_str(rest);
                let file = dir.path().join(format!("step-{checked}.sh"));
                fs::write(&file, &script).unwrap();
                let o = std::process::Command::new("shellcheck")
                    .args(["-s", "bash"])
                    .arg(&file)
                    .output()
                    .unwrap();
                assert!(
                    o.status.success(),
                    "{name}, job {job:?}: shellcheck:\n{}\n{script}",
                    text(&o.stdout)
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 6, "{checked} scripts");
}

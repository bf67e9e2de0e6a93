//! End-to-end tests of the command line on the built binary, and the
//! command-line contract as trycmd cases in `tests/it/cmd/` (every
//! command's help, a usage error of each, the JSON reports).

use std::fs;
use std::path::Path;

use crate::support::{self, copy_fleet, dify_cfg, snapshot};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn fleet() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_fleet(dir.path());
    dir
}

fn root_arg(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

#[test]
fn build_profile_edge_writes_the_ten_clinics_only() {
    let dir = fleet();
    let r = root_arg(dir.path());
    let o = dify_cfg(&["--root", &r, "build", "--profile", "edge"], dir.path());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let mut sites: Vec<String> = fs::read_dir(dir.path().join("out"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    sites.sort();
    let mut expected: Vec<String> = (1..=10).map(|i| format!("clinic-{i:02}")).collect();
    expected.insert(0, "_images".to_string());
    assert_eq!(sites, expected);
    expected.remove(0);
    for s in &expected {
        let files = snapshot(&dir.path().join("out").join(s));
        for f in [
            "manifest.json",
            "compose.yaml",
            "dify.env",
            "docker/api.Dockerfile",
            "docker/web.Dockerfile",
            "nginx/default.conf",
            "firewall/rules.v4",
            "firewall/rules.v6",
        ] {
            assert!(files.contains_key(f), "{s} lacks {f}");
        }
    }
}

#[test]
fn full_build_writes_eleven_and_a_rebuild_changes_no_byte() {
    let dir = fleet();
    let r = root_arg(dir.path());
    let o = dify_cfg(&["--root", &r, "build"], dir.path());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = dir.path().join("out");
    let first = snapshot(&out);
    assert!(first.contains_key("hq/helm/values.yaml"));
    assert!(first.contains_key("hq/manifest.json"));
    let sites: std::collections::BTreeSet<&str> = first
        .keys()
        .filter_map(|k| k.split('/').next())
        .filter(|n| !n.starts_with(['.', '_']))
        .collect();
    assert_eq!(sites.len(), 11, "{sites:?}");
    assert!(first.contains_key("_images/docker-bake.json"));
    let o = dify_cfg(&["--root", &r, "build"], dir.path());
    assert_eq!(o.status.code(), Some(0));
    assert!(!text(&o.stdout).contains("written"), "{}", text(&o.stdout));
    assert_eq!(snapshot(&out), first);
    let o = dify_cfg(&["--root", &r, "build", "--check"], dir.path());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));
}

#[test]
fn build_check_reports_drift_with_exit_1() {
    let dir = fleet();
    let r = root_arg(dir.path());
    assert_eq!(
        dify_cfg(&["--root", &r, "build", "--site", "clinic-02"], dir.path())
            .status
            .code(),
        Some(0)
    );
    let env = dir.path().join("out/clinic-02/dify.env");
    let mut bytes = fs::read(&env).unwrap();
    bytes.push(b'#');
    fs::write(&env, bytes).unwrap();
    let o = dify_cfg(
        &["--root", &r, "build", "--site", "clinic-02", "--check"],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stdout).contains("changed: clinic-02/dify.env"),
        "{}",
        text(&o.stdout)
    );
    // --check wrote nothing.
    assert!(fs::read(&env).unwrap().ends_with(b"#"));
}

#[test]
fn over_budget_api_is_refused_with_the_table_and_out_is_untouched() {
    let dir = fleet();
    let r = root_arg(dir.path());
    assert_eq!(
        dify_cfg(&["--root", &r, "build"], dir.path()).status.code(),
        Some(0)
    );
    let before = snapshot(&dir.path().join("out"));
    let mb = dir.path().join("profiles/multi-branch.toml");
    let mut text_mb = fs::read_to_string(&mb).unwrap();
    text_mb.push_str("\n[services.api]\nmemory = \"3GiB\"\n");
    let line = text_mb.lines().count();
    fs::write(&mb, &text_mb).unwrap();
    let o = dify_cfg(&["--root", &r, "build"], dir.path());
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(err.contains("error[memory-budget]"), "{err}");
    assert!(
        err.contains(&format!("--> profiles/multi-branch.toml:{line}:10")),
        "{err}"
    );
    for needle in [
        "api",
        "3GiB",
        "worker",
        "704MiB",
        "sum",
        "budget",
        "4GiB less 15% reserve",
    ] {
        assert!(err.contains(needle), "missing {needle} in {err}");
    }
    assert_eq!(snapshot(&dir.path().join("out")), before);
}

#[test]
fn misspelt_key_gets_did_you_mean() {
    let dir = fleet();
    let r = root_arg(dir.path());
    let p = dir.path().join("sites/clinic-03.toml");
    let t = fs::read_to_string(&p)
        .unwrap()
        .replace("address =", "adress =");
    fs::write(&p, t).unwrap();
    let o = dify_cfg(&["--root", &r, "check"], dir.path());
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(
        err.contains("error[unknown-key]: unknown key `adress` in `[network]`"),
        "{err}"
    );
    assert!(err.contains("--> sites/clinic-03.toml:8:1"), "{err}");
    assert!(err.contains("help: did you mean `address`?"), "{err}");
}

#[test]
fn profile_selection_errors_list_candidates() {
    let dir = fleet();
    let r = root_arg(dir.path());
    let o = dify_cfg(&["--root", &r, "build", "--profile", "nope"], dir.path());
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(
        err.contains("cloud") && err.contains("edge-4gb") && err.contains("multi-branch"),
        "{err}"
    );
    fs::write(
        dir.path().join("profiles/edge-8gb.toml"),
        "extends = \"edge-4gb\"\n[device]\nmemory = \"8GiB\"\n",
    )
    .unwrap();
    let o = dify_cfg(&["--root", &r, "build", "--profile", "edge"], dir.path());
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(
        err.contains("ambiguous") && err.contains("edge-4gb") && err.contains("edge-8gb"),
        "{err}"
    );
    assert!(!dir.path().join("out").exists());
}

#[test]
fn builds_are_identical_across_environments() {
    let dir = fleet();
    let r = root_arg(dir.path());
    let elsewhere = tempfile::tempdir().unwrap();
    let out_a = dir.path().join("a");
    let out_b = elsewhere.path().join("b");
    let run = |out: &Path, cwd: &Path, tz: &str, lang: &str| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_dify-cfg"))
            .args(["--root", &r, "build", "--out", out.to_str().unwrap()])
            .current_dir(cwd)
            .env("TZ", tz)
            .env("LANG", lang)
            .env("LC_ALL", lang)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    };
    run(&out_a, dir.path(), "UTC", "C");
    run(
        &out_b,
        elsewhere.path(),
        "Pacific/Kiritimati",
        "de_DE.UTF-8",
    );
    let a = snapshot(&out_a);
    let b = snapshot(&out_b);
    assert!(!a.is_empty());
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (k, v) in &a {
        assert_eq!(v, &b[k], "{k} differs");
    }
    let m: serde_json::Value = serde_json::from_slice(&a["clinic-01/manifest.json"]).unwrap();
    assert_eq!(m["input-digest"].as_str().unwrap().len(), 64);
    let text_all: String = a.values().map(|v| text(v)).collect();
    assert!(
        !text_all.contains(dir.path().to_str().unwrap()),
        "an absolute path leaked into the output"
    );
}

#[test]
fn explain_shows_provenance_across_three_levels() {
    let dir = fleet();
    let r = root_arg(dir.path());
    let o = dify_cfg(
        &["--root", &r, "explain", "--site", "clinic-01"],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(
        out.contains("profile chain multi-branch -> edge-4gb"),
        "{out}"
    );
    let line_of = |key: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("no {key} in {out}"))
            .to_string()
    };
    assert!(
        line_of("services.api.memory").contains("# profiles/edge-4gb.toml:"),
        "{out}"
    );
    assert!(
        line_of("network.admin").contains("# profiles/multi-branch.toml:"),
        "{out}"
    );
    assert!(
        line_of("network.lan").contains("# sites/clinic-01.toml:7:7"),
        "{out}"
    );
    assert!(
        line_of("rollout.wave").contains("# sites/clinic-01.toml:"),
        "{out}"
    );
    assert!(
        line_of("device.reserve").contains("profiles/edge-4gb.toml"),
        "{out}"
    );
    assert!(
        line_of("services.api.replicas").ends_with("# (default)"),
        "{out}"
    );
    // A single key, as JSON.
    let o = dify_cfg(
        &[
            "--root",
            &r,
            "--format",
            "json",
            "explain",
            "--site",
            "clinic-05",
            "rollout.wave",
        ],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let e = &v["entries"][0];
    assert_eq!(e["key"], "rollout.wave");
    assert_eq!(e["value"], 3);
    assert_eq!(e["location"]["path"], "profiles/multi-branch.toml");
    // Unknown site.
    let o = dify_cfg(&["--root", &r, "explain", "--site", "clinic-1"], dir.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("did you mean"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn check_passes_on_the_example_fleet() {
    let o = dify_cfg(&["check"], support::repo());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("11 sites are valid"));
}

#[test]
fn a_published_port_the_firewall_does_not_open_is_refused() {
    let dir = fleet();
    let r = root_arg(dir.path());
    assert_eq!(
        dify_cfg(&["--root", &r, "build", "--profile", "edge"], dir.path())
            .status
            .code(),
        Some(0)
    );
    let before = snapshot(&dir.path().join("out"));
    // A site's own compose template that publishes one more port.
    let tpl = fs::read_to_string(support::repo().join("templates/compose.yaml")).unwrap();
    let edited = tpl.replacen(
        "      - {{ p }}\n{% endfor %}",
        "      - {{ p }}\n      - {{ p | replace(\":80:80\", \":8080:80\") }}\n{% endfor %}",
        1,
    );
    assert_ne!(tpl, edited, "the template changed shape; update this test");
    fs::write(dir.path().join("templates/compose.yaml"), edited).unwrap();
    let o = dify_cfg(&["--root", &r, "build", "--profile", "edge"], dir.path());
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.contains("error[port-mismatch]: site `clinic-01`: compose publishes port 8080 of `nginx` but the firewall opens no path to it"), "{err}");
    assert!(err.contains("--> templates/rules.v4:1:1"), "{err}");
    assert_eq!(snapshot(&dir.path().join("out")), before);
}

/// The cases of `tests/it/cmd/*.toml`: each runs the binary with its
/// arguments and compares the exit code, stdout and stderr exactly.
/// Regenerate the expected outputs with `TRYCMD=overwrite` and review the
/// diff.
#[test]
fn command_line_cases() {
    trycmd::TestCases::new()
        .register_bin("dify-cfg", Path::new(env!("CARGO_BIN_EXE_dify-cfg")))
        .env("NO_COLOR", "1")
        .case("tests/it/cmd/*.toml");
}

//! The compatibility lock on the example fleet: a plugin daemon, sandbox or
//! agent image pinned outside its release's combinations is refused at its
//! pin; one allowed explicitly (`[dify] allow-untested-images = true`) is
//! a warning, shown by `explain` and recorded in the site's manifest; a
//! digest on the release's own tag is fine; an upgrade that keeps the old
//! release's agent pin is refused.

use std::fs;
use std::path::Path;

use crate::support::{copy_fleet, dify_cfg, output_text};

/// Append `extra` to the site file of `site`.
fn add_to_site(root: &Path, site: &str, extra: &str) {
    let path = root.join(format!("sites/{site}.toml"));
    let old = fs::read_to_string(&path).unwrap();
    fs::write(&path, format!("{old}{extra}")).unwrap();
}

fn manifest(root: &Path, site: &str) -> serde_json::Value {
    let text = fs::read_to_string(root.join(format!("out/{site}/manifest.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn an_image_outside_the_lock_is_refused_unless_allowed_and_then_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    copy_fleet(root);
    // clinic-02.toml has 15 lines; the tag is on line 18.
    add_to_site(
        root,
        "clinic-02",
        "\n[images.plugin-daemon]\ntag = \"0.6.4-local\"\n",
    );
    // A digest on the release's own tag pins the same release by content.
    let digest = format!("sha256:{}", "ab".repeat(32));
    add_to_site(
        root,
        "clinic-03",
        &format!("\n[images.plugin-daemon]\ndigest = \"{digest}\"\n"),
    );

    let out = dify_cfg(&["build"], root);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("error[image-incompatible]: `images.plugin-daemon` pins `0.6.4-local`, which Dify 1.16.1 is not known to run with"), "{text}");
    assert!(text.contains(" --> sites/clinic-02.toml:18:7"), "{text}");
    assert_eq!(text.matches("error[").count(), 1, "{text}");
    assert!(!root.join("out").exists(), "a refused build wrote out/");

    // Allowed explicitly: a warning; the build goes, and says so.
    add_to_site(
        root,
        "clinic-02",
        "\n[dify]\nallow-untested-images = true\n",
    );
    let out = dify_cfg(&["build"], root);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("warning[image-incompatible]"), "{text}");
    assert_eq!(
        manifest(root, "clinic-02")["untested-images"],
        serde_json::json!(["images.plugin-daemon langgenius/dify-plugin-daemon:0.6.4-local"])
    );
    let compose = fs::read_to_string(root.join("out/clinic-02/compose.yaml")).unwrap();
    assert!(
        compose.contains("langgenius/dify-plugin-daemon:0.6.4-local"),
        "{compose}"
    );
    for site in ["clinic-01", "clinic-03"] {
        assert_eq!(
            manifest(root, site)["untested-images"],
            serde_json::Value::Null,
            "{site}"
        );
    }
    let compose = fs::read_to_string(root.join("out/clinic-03/compose.yaml")).unwrap();
    assert!(
        compose.contains(&format!(
            "langgenius/dify-plugin-daemon:0.6.3-local@{digest}"
        )),
        "{compose}"
    );
    let out = dify_cfg(&["explain", "--site", "clinic-02", "dify"], root);
    let explained = output_text(&out);
    assert!(
        explained
            .lines()
            .any(|l| l.starts_with("dify.allow-untested-images = true ")
                && l.ends_with("# sites/clinic-02.toml:21:25")),
        "{explained}"
    );
}

#[test]
fn an_upgrade_that_keeps_the_old_releases_agent_pin_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    copy_fleet(root);
    // On 1.16.0 the pin is the release's own image.
    let cloud = root.join("profiles/cloud.toml");
    let text = fs::read_to_string(&cloud).unwrap();
    let held = text.replacen("version = \"1.16.1\"", "version = \"1.16.0\"", 1);
    assert_ne!(held, text, "the cloud profile is on 1.16.1");
    fs::write(&cloud, held).unwrap();
    add_to_site(root, "hq", "\n[images.agent-backend]\ntag = \"1.16.0\"\n");
    let out = dify_cfg(&["check"], root);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    // hq moves to 1.16.1 with it: refused, naming 1.16.1's combination.
    fs::write(&cloud, text).unwrap();
    let out = dify_cfg(&["check"], root);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    for needle in [
        "error[image-incompatible]: `images.agent-backend` pins `1.16.0`, which Dify 1.16.1 is not known to run with",
        "note: Dify 1.16.1 runs with plugin-daemon 0.6.3-local, sandbox 0.2.15, agent-backend 1.16.1, local-sandbox 1.16.1",
        "help: pin `tag = \"1.16.1\"`",
    ] {
        assert!(text.contains(needle), "no `{needle}` in:\n{text}");
    }
}

//! The measured memory floors (`compiler/dify/memory/<release>.toml`)
//! against the reference: each file names the release it is named after
//! and that release's tag commit, as the reference's `SOURCE` records it.

use std::collections::BTreeSet;

use dify_cfg::internals::dify_facts::memory;

use crate::support::{self, source_commit};

#[test]
fn every_measurement_is_of_its_release_at_the_tag_commit() {
    // Every file in the folder is compiled in, and only those.
    let dir = support::repo().join("compiler/dify/memory");
    let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let compiled: BTreeSet<String> = memory::files()
        .iter()
        .map(|(release, _)| format!("{release}.toml"))
        .collect();
    assert_eq!(
        on_disk, compiled,
        "compiler/dify/memory/ against memory::FILES"
    );
    for (release, text) in memory::files() {
        let on_disk = std::fs::read_to_string(dir.join(format!("{release}.toml"))).unwrap();
        assert_eq!(&on_disk, text, "{release}");
        let m = memory::parse(release, text).unwrap();
        assert_eq!(m.release, *release, "`release` against the file name");
    }
    let Some(reference) = support::reference() else {
        return;
    };
    for (release, text) in memory::files() {
        let m = memory::parse(release, text).unwrap();
        let file = reference.join("dify").join(release).join("SOURCE");
        let source =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(source.contains(&format!("tag {release},")), "{source}");
        assert_eq!(
            Some(m.source_commit.as_str()),
            source_commit(&source),
            "compiler/dify/memory/{release}.toml: `source-commit` against {}",
            file.display()
        );
    }
}

#[test]
fn a_wrong_commit_is_seen() {
    // The check above must be able to fail: a planted commit and release.
    let line = "langgenius/dify tag 1.16.0, commit 5c6372d2f76d240265b92fd27c16bc772ffcb107\n";
    assert_eq!(
        source_commit(line),
        Some("5c6372d2f76d240265b92fd27c16bc772ffcb107")
    );
    let (release, text) = memory::files()[0];
    let planted = text.replace(
        memory::parse(release, text).unwrap().source_commit.as_str(),
        "6f8ed69ee15f9a2e7189ca066275e973d091d1e9",
    );
    let m = memory::parse(release, &planted).unwrap();
    assert_ne!(Some(m.source_commit.as_str()), source_commit(line));
    assert!(memory::parse("1.16.1", text).is_err());
}

//! The facts dify-cfg carries as data agree with Dify's own files. These
//! tests need `../shared/reference` (CI has it); elsewhere they skip with a
//! printed reason.

use std::collections::BTreeSet;
use std::path::Path;

use crate::support;

fn names_in(dir: &Path, out: &mut BTreeSet<String>) {
    for e in walkdir::WalkDir::new(dir).into_iter().flatten() {
        let name = e.file_name().to_string_lossy();
        if !e.file_type().is_file() || !(name.ends_with(".env.example") || name == ".env.example") {
            continue;
        }
        let text = std::fs::read_to_string(e.path()).unwrap();
        for line in text.lines() {
            let line = line.trim_start().trim_start_matches('#').trim_start();
            if let Some((k, _)) = line.split_once('=')
                && !k.is_empty()
                && k.starts_with(|c: char| c.is_ascii_uppercase())
                && k.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            {
                out.insert(k.to_string());
            }
        }
    }
}

#[test]
fn env_names_match_dify_reference() {
    let Some(reference) = support::reference() else {
        return;
    };
    let mut expected = BTreeSet::new();
    names_in(&reference.join("dify-1.16.0"), &mut expected);
    let carried: BTreeSet<String> = dify_cfg::internals::env_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    let missing: Vec<_> = expected.difference(&carried).collect();
    let extra: Vec<_> = carried.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing from env-names.txt: {missing:?}; not in Dify: {extra:?}"
    );
}

//! Read-back checks of rendered files.
pub mod crosscheck;
pub mod squid;
pub mod tls;

/// `files` with `from` replaced by `to` in `path` (which must contain it):
/// a mismatch planted in rendered files, for the checks' unit tests.
#[cfg(test)]
fn planted(
    files: &std::collections::BTreeMap<String, Vec<u8>>,
    path: &str,
    from: &str,
    to: &str,
) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut f = files.clone();
    let text = String::from_utf8(f[path].clone()).unwrap();
    assert!(text.contains(from), "{path} has no `{from}`");
    f.insert(path.into(), text.replace(from, to).into_bytes());
    f
}

//! A site's `manifest.json`: the sha256 of every input and output and the
//! two digests over them ([`with_manifest`]), and what an incremental build
//! reads back of it ([`built_manifest`]).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde::Serialize;

use crate::base::source::sha256_hex;
use crate::model::Site;

pub const COMPILER_NAME: &str = "dify-cfg";
pub const COMPILER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A rendered site: relative path to bytes, `manifest.json` included.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SiteTree {
    pub name: String,
    pub files: BTreeMap<String, Vec<u8>>,
    /// `compose.yaml` read back as YAML (null for a site without one): the
    /// cross-checks and the change summaries read it instead of parsing
    /// the file again. Not written anywhere.
    pub compose: Option<serde_yaml_ng::Value>,
    /// The manifest's `input-digest` and `output-digest` (empty for a tree
    /// without a manifest).
    pub input_digest: String,
    pub output_digest: String,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Manifest<'a> {
    compiler: Compiler,
    site: &'a str,
    target: crate::model::Target,
    profile_chain: &'a [String],
    dify_version: &'a str,
    wave: u32,
    inputs: Vec<FileHash<'a>>,
    outputs: Vec<FileHash<'a>>,
    input_digest: String,
    output_digest: String,
}

#[derive(Serialize)]
struct Compiler {
    name: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
struct FileHash<'a> {
    path: &'a str,
    sha256: String,
}

/// Digest of a list of (path, sha256): sha256 over `path\0sha256\n` lines in
/// path order, preceded by the compiler's name and version.
pub fn digest<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut text = format!("{COMPILER_NAME} {COMPILER_VERSION}\n");
    let mut files: Vec<_> = files.into_iter().collect();
    files.sort();
    for (path, sha) in files {
        text.push_str(path);
        text.push('\0');
        text.push_str(sha);
        text.push('\n');
    }
    sha256_hex(text.as_bytes())
}

/// Add `manifest.json` to a site's rendered files. `inputs` are the
/// (path, sha256) of every file the site was compiled from.
pub fn with_manifest(
    site: &Site,
    inputs: &[(&str, &str)],
    mut files: BTreeMap<String, Vec<u8>>,
) -> SiteTree {
    let output_hashes: Vec<(String, String)> = files
        .iter()
        .map(|(p, b)| (p.clone(), sha256_hex(b)))
        .collect();
    let manifest = Manifest {
        compiler: Compiler {
            name: COMPILER_NAME,
            version: COMPILER_VERSION,
        },
        site: &site.name,
        target: site.target,
        profile_chain: &site.profile_chain,
        dify_version: &site.dify_version,
        wave: site.wave,
        inputs: inputs
            .iter()
            .map(|(p, s)| FileHash {
                path: p,
                sha256: (*s).to_string(),
            })
            .collect(),
        outputs: output_hashes
            .iter()
            .map(|(p, s)| FileHash {
                path: p,
                sha256: s.clone(),
            })
            .collect(),
        input_digest: digest(inputs.iter().copied()),
        output_digest: digest(output_hashes.iter().map(|(p, s)| (p.as_str(), s.as_str()))),
    };
    let (input_digest, output_digest) = (
        manifest.input_digest.clone(),
        manifest.output_digest.clone(),
    );
    let mut json = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    json.push(b'\n');
    files.insert("manifest.json".to_string(), json);
    SiteTree {
        name: site.name.clone(),
        files,
        compose: None,
        input_digest,
        output_digest,
    }
}

/// What an incremental build reads of a site's `manifest.json`.
#[derive(Debug, serde::Deserialize)]
pub struct BuiltManifest {
    #[serde(rename = "input-digest")]
    pub input_digest: String,
    pub outputs: Vec<BuiltOutput>,
}

#[derive(Debug, serde::Deserialize)]
pub struct BuiltOutput {
    pub path: String,
    pub sha256: String,
}

/// The manifest of an out directory's site tree, if that tree is a
/// complete build of `input_digest`: its manifest has that input digest
/// (which covers the compiler version) and every file it lists is there.
/// An incremental build skips such a site without reading its files;
/// `build --check` and `audit` compare bytes.
pub fn built_manifest(dir: &Path, input_digest: &str) -> Option<BuiltManifest> {
    let manifest: BuiltManifest =
        serde_json::from_slice(&fs::read(dir.join("manifest.json")).ok()?).ok()?;
    if manifest.input_digest != input_digest {
        return None;
    }
    manifest
        .outputs
        .iter()
        .all(|o| dir.join(&o.path).is_file())
        .then_some(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_order_independent() {
        assert_eq!(
            digest([("b", "2"), ("a", "1")]),
            digest([("a", "1"), ("b", "2")])
        );
        assert_ne!(digest([("a", "1")]), digest([("a", "2")]));
    }
}

//! A site's `manifest.json`: the sha256 of every input and output and the
//! two digests over them ([`with_manifest`]), and what a build reads back
//! of it: whose a tree is ([`claimed`]) and whether a site is up to date
//! ([`up_to_date`]).

use std::collections::{BTreeMap, BTreeSet};
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
    /// `allow-downgrade`, `untested-images`: only when the site takes them.
    #[serde(flatten)]
    waivers: &'a crate::model::ReleaseWaivers,
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
        waivers: &site.waivers,
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

/// The largest `manifest.json` an incremental build trusts: a site's lists
/// a few dozen files.
const MAX_TRUSTED: u64 = 1 << 20;
/// The largest read at all, to tell whose a tree is.
const MAX_READ: u64 = 16 << 20;
/// The most outputs a trusted manifest may list.
const MAX_OUTPUTS: usize = 10_000;

/// A `manifest.json` read back from an out directory, as an incremental
/// build trusts it ([`up_to_date`]).
#[derive(Debug, serde::Deserialize)]
struct OnDisk {
    compiler: OnDiskCompiler,
    site: String,
    #[serde(rename = "input-digest")]
    input_digest: String,
    outputs: Vec<OnDiskOutput>,
}

#[derive(Debug, serde::Deserialize)]
struct OnDiskCompiler {
    name: String,
}

#[derive(Debug, serde::Deserialize)]
struct OnDiskOutput {
    path: String,
    sha256: String,
}

/// A path a tree may hold: relative, `/`-separated, no empty, `.` or `..`
/// component.
pub fn plain_relative(path: &str) -> bool {
    !path.is_empty()
        && !path.contains(['\\', '\0'])
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

/// The bytes of `dir/manifest.json`, if it is a regular file of at most
/// `max` bytes; why not, otherwise.
fn read_manifest(dir: &Path, max: u64) -> Result<Vec<u8>, String> {
    let path = dir.join("manifest.json");
    let meta = fs::symlink_metadata(&path).map_err(|_| "has no manifest.json".to_string())?;
    if !meta.is_file() {
        return Err("has a manifest.json that is not a file".into());
    }
    if meta.len() > max {
        return Err("has a manifest.json too large to be dify-cfg's".into());
    }
    fs::read(&path).map_err(|e| format!("has a manifest.json that cannot be read ({e})"))
}

/// Whose tree `dir` is, by its manifest: the site it names and the files
/// it lists (`manifest.json` too). Read leniently: a manifest whose
/// compiler is dify-cfg and that names a site and lists outputs is
/// dify-cfg's, whatever else in it is wrong (that only makes the site be
/// built again). Why it is not dify-cfg's, otherwise.
pub fn claimed(dir: &Path) -> Result<(String, BTreeSet<String>), String> {
    let bytes = read_manifest(dir, MAX_READ)?;
    let not_ours = || "has a manifest.json dify-cfg did not write".to_string();
    let json: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| not_ours())?;
    let (Some(COMPILER_NAME), Some(site), Some(outputs)) = (
        json["compiler"]["name"].as_str(),
        json["site"].as_str(),
        json["outputs"].as_array(),
    ) else {
        return Err(not_ours());
    };
    let mut listed: BTreeSet<String> = outputs
        .iter()
        .filter_map(|o| o["path"].as_str().map(str::to_string))
        .collect();
    listed.insert("manifest.json".into());
    Ok((site.to_string(), listed))
}

/// The manifest of `dir`, if an incremental build may trust it: of sane
/// size, in the shape dify-cfg writes, its compiler dify-cfg, every output
/// a plain relative path with a sha256.
fn trusted(dir: &Path) -> Option<OnDisk> {
    let bytes = read_manifest(dir, MAX_TRUSTED).ok()?;
    let manifest: OnDisk = serde_json::from_slice(&bytes).ok()?;
    let sha256 = |s: &str| {
        s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let sane = manifest.compiler.name == COMPILER_NAME
        && manifest.outputs.len() <= MAX_OUTPUTS
        && manifest
            .outputs
            .iter()
            .all(|o| plain_relative(&o.path) && o.path != "manifest.json" && sha256(&o.sha256));
    sane.then_some(manifest)
}

/// Whether the out directory's tree `dir` of `site` is a complete build of
/// `input_digest`: a directory (not a link) whose manifest is dify-cfg's,
/// for this site, with that input digest (which covers the compiler
/// version), and every file it lists is there. An incremental build skips
/// such a site without reading its files; `build --check` and `audit`
/// compare bytes. Anything odd in the manifest means: build it again.
pub fn up_to_date(dir: &Path, site: &str, input_digest: &str) -> bool {
    if !fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) {
        return false;
    }
    let Some(manifest) = trusted(dir) else {
        return false;
    };
    manifest.site == site
        && manifest.input_digest == input_digest
        && manifest
            .outputs
            .iter()
            .all(|o| fs::symlink_metadata(dir.join(&o.path)).is_ok_and(|m| m.is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(manifest: &str, files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("manifest.json"), manifest).unwrap();
        for f in files {
            let path = dir.path().join(f);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, "").unwrap();
        }
        dir
    }

    fn manifest(site: &str, digest: &str, outputs: &[(&str, &str)]) -> String {
        let outputs: Vec<_> = outputs
            .iter()
            .map(|(p, s)| serde_json::json!({ "path": p, "sha256": s }))
            .collect();
        serde_json::json!({
            "compiler": { "name": COMPILER_NAME, "version": COMPILER_VERSION },
            "site": site,
            "input-digest": digest,
            "outputs": outputs,
        })
        .to_string()
    }

    #[test]
    fn only_a_sane_manifest_of_the_site_and_its_inputs_is_up_to_date() {
        let sha = "a".repeat(64);
        let good = manifest("s1", "d1", &[("a", &sha), ("d/b", &sha)]);
        let dir = dir_with(&good, &["a", "d/b"]);
        assert!(up_to_date(dir.path(), "s1", "d1"));
        assert!(!up_to_date(dir.path(), "s2", "d1"));
        assert!(!up_to_date(dir.path(), "s1", "d2"));
        fs::remove_file(dir.path().join("d/b")).unwrap();
        assert!(!up_to_date(dir.path(), "s1", "d1"), "a file is missing");
        for (what, outputs) in [
            ("absolute", vec![("/etc/hostname", sha.as_str())]),
            ("climbing", vec![("../s2/a", sha.as_str())]),
            ("short sha256", vec![("a", "abc")]),
            ("non-ASCII sha256", vec![("a", "é")]),
        ] {
            let dir = dir_with(&manifest("s1", "d1", &outputs), &["a"]);
            assert!(!up_to_date(dir.path(), "s1", "d1"), "{what}");
        }
        let huge = format!("{}{good}", " ".repeat(2 << 20));
        assert!(!up_to_date(
            dir_with(&huge, &["a", "d/b"]).path(),
            "s1",
            "d1"
        ));
        assert!(
            claimed(dir_with(&huge, &[]).path()).is_ok(),
            "still dify-cfg's"
        );
    }

    #[test]
    fn plain_relative_paths_stay_inside() {
        for ok in ["a", "docker/api.Dockerfile", "a.b/c..d"] {
            assert!(plain_relative(ok), "{ok}");
        }
        for bad in ["", "/a", "a/../b", "..", "./a", "a//b", "a/", "a\\b", "a\0"] {
            assert!(!plain_relative(bad), "{bad:?}");
        }
    }

    #[test]
    fn digest_is_order_independent() {
        assert_eq!(
            digest([("b", "2"), ("a", "1")]),
            digest([("a", "1"), ("b", "2")])
        );
        assert_ne!(digest([("a", "1")]), digest([("a", "2")]));
    }
}

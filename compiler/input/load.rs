//! Stage 1: read `profiles/`, `sites/` and `templates/` under the config root
//! into a [`SourceMap`], in sorted order, refusing what is not a plain UTF-8
//! file inside the root.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::base::codes::Code;
use crate::base::diagnostic::{Diagnostic, Diagnostics};
use crate::base::source::{FileId, FileKind, SourceMap};
use crate::input::templates::BUILTIN_TEMPLATES;

/// The input directories of a config root: a change under them changes
/// what the compiler reads.
pub const INPUT_DIRS: [&str; 3] = ["profiles", "sites", "templates"];

/// The largest input file read; a config file is a few KiB.
pub const MAX_INPUT_BYTES: u64 = 1 << 20;

/// Everything read from the config root.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub sources: SourceMap,
    /// Profile name (file stem) to file.
    pub profiles: BTreeMap<String, FileId>,
    /// Site files in path order (names checked later).
    pub sites: Vec<FileId>,
    /// Template name (path under `templates/`) to file.
    pub templates: BTreeMap<String, FileId>,
}

/// Why an input file could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// A link whose target leaves the config root.
    OutsideRoot,
    /// A link to a directory, a device, ...
    NotAFile,
    /// Larger than [`MAX_INPUT_BYTES`].
    TooLarge(u64),
    /// Its name (or a directory's on its path) is not UTF-8; the path
    /// holds it with U+FFFD for the bad bytes.
    NameNotUtf8,
    /// Anything else, as the OS or git said it.
    Other(String),
}

/// Where the inputs come from: the working tree ([`WorkTree`]) or the tree of
/// a git commit (`git::CommitTree`, for `audit` and `commit`). Paths are
/// relative to the config root and use `/`.
pub trait InputSource {
    /// The root for messages, e.g. a directory or `commit abc123`.
    fn describe(&self) -> String;
    /// Whether the root has the directory `dir`.
    fn has_dir(&self, dir: &str) -> bool;
    /// Every file (or link) under `dir`, hidden names and editor backups
    /// skipped, in [`path_order`]. An error is reported as a diagnostic.
    /// A file or directory whose name is not UTF-8 is listed (its name
    /// with U+FFFD for the bad bytes, a directory without what it holds),
    /// and [`InputSource::read`] says [`ReadError::NameNotUtf8`] for it.
    fn files(&self, dir: &str) -> Result<Vec<String>, String>;
    /// The bytes of one file, following a link only while it stays inside
    /// the root.
    fn read(&self, rel: &str) -> Result<Vec<u8>, ReadError>;
}

/// The order inputs are loaded in: component by component, so `a/b` sorts
/// before `a-b` (as a sorted directory walk visits them) on every source.
pub fn path_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.split('/').cmp(b.split('/'))
}

/// The paths under `dir` of a source that knows all its paths (in memory,
/// a commit), as [`InputSource::files`] lists them.
pub fn files_under<'p>(paths: impl Iterator<Item = &'p String>, dir: &str) -> Vec<String> {
    let prefix = format!("{dir}/");
    let mut out: Vec<String> = paths
        .filter(|p| p.starts_with(&prefix))
        .filter(|p| !is_skipped_name(p.rsplit('/').next().unwrap_or(p)))
        .cloned()
        .collect();
    out.sort_by(|a, b| path_order(a, b));
    out
}

/// Whether a walk skips this file name: hidden files and editor backups.
pub fn is_skipped_name(name: &str) -> bool {
    name.starts_with('.') || name.ends_with('~')
}

/// The config root on disk.
pub struct WorkTree {
    root: PathBuf,
    /// The root with links resolved, to tell where a link leads.
    canonical_root: std::io::Result<PathBuf>,
}

impl WorkTree {
    pub fn new(root: &Path) -> Self {
        WorkTree {
            root: root.to_path_buf(),
            canonical_root: root.canonicalize(),
        }
    }
}

impl InputSource for WorkTree {
    fn describe(&self) -> String {
        format!("`{}`", self.root.display())
    }

    fn has_dir(&self, dir: &str) -> bool {
        self.root.join(dir).is_dir()
    }

    fn files(&self, dir: &str) -> Result<Vec<String>, String> {
        let base = self.root.join(dir);
        if !base.exists() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        let mut walk = walkdir::WalkDir::new(&base)
            .sort_by_file_name()
            .follow_links(false)
            .into_iter();
        while let Some(entry) = walk.next() {
            let e = entry.map_err(|e| e.to_string())?;
            if is_skipped_name(&e.file_name().to_string_lossy()) {
                continue;
            }
            if e.depth() > 0 && e.file_name().to_str().is_none() {
                // Listed, not entered: its read says why (as in a commit).
                if e.file_type().is_dir() {
                    walk.skip_current_dir();
                }
                out.push(relative(&self.root, e.path()));
            } else if e.file_type().is_file() || e.file_type().is_symlink() {
                out.push(relative(&self.root, e.path()));
            }
        }
        out.sort_by(|a, b| path_order(a, b));
        Ok(out)
    }

    fn read(&self, rel: &str) -> Result<Vec<u8>, ReadError> {
        self.read_named(rel).map_err(|e| {
            if rel.contains('\u{FFFD}') && names_non_utf8(&self.root, rel) {
                ReadError::NameNotUtf8
            } else {
                e
            }
        })
    }
}

impl WorkTree {
    fn read_named(&self, rel: &str) -> Result<Vec<u8>, ReadError> {
        let path = self.root.join(rel);
        let canonical_root = self
            .canonical_root
            .as_ref()
            .map_err(|e| ReadError::Other(e.to_string()))?;
        // A link may point anywhere; only what stays inside the root is read.
        match path.canonicalize() {
            Ok(real) if !real.starts_with(canonical_root) => return Err(ReadError::OutsideRoot),
            Ok(real) if !real.is_file() => return Err(ReadError::NotAFile),
            Ok(_) => {}
            Err(e) => return Err(ReadError::Other(e.to_string())),
        }
        if let Ok(m) = std::fs::metadata(&path)
            && m.len() > MAX_INPUT_BYTES
        {
            return Err(ReadError::TooLarge(m.len()));
        }
        std::fs::read(&path).map_err(|e| ReadError::Other(e.to_string()))
    }
}

/// Whether `rel`, as [`WorkTree::files`] lists it (names converted with
/// U+FFFD for bytes that are not UTF-8), leads through an entry under
/// `root` whose name is not UTF-8.
fn names_non_utf8(root: &Path, rel: &str) -> bool {
    let mut dir = root.to_path_buf();
    for part in rel.split('/') {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return false;
        };
        let Some(entry) = entries
            .flatten()
            .find(|e| e.file_name().to_string_lossy() == part)
        else {
            return false;
        };
        if entry.file_name().to_str().is_none() {
            return true;
        }
        dir = entry.path();
    }
    false
}

/// A config root held in memory: relative path to bytes. For tests, the
/// fuzzer and generated fleets; it has no links.
#[derive(Debug, Clone, Default)]
pub struct MemTree {
    pub files: BTreeMap<String, Vec<u8>>,
}

impl InputSource for MemTree {
    fn describe(&self) -> String {
        "the in-memory config root".into()
    }

    fn has_dir(&self, dir: &str) -> bool {
        let prefix = format!("{dir}/");
        self.files.keys().any(|p| p.starts_with(&prefix))
    }

    fn files(&self, dir: &str) -> Result<Vec<String>, String> {
        Ok(files_under(self.files.keys(), dir))
    }

    fn read(&self, rel: &str) -> Result<Vec<u8>, ReadError> {
        match self.files.get(rel) {
            Some(b) if b.len() as u64 > MAX_INPUT_BYTES => Err(ReadError::TooLarge(b.len() as u64)),
            Some(b) => Ok(b.clone()),
            None => Err(ReadError::Other("no such file".into())),
        }
    }
}

/// `path` relative to `root`, its components joined with `/`.
pub fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// Read the inputs under `root` on disk.
pub fn load(root: &Path, diags: &mut Diagnostics) -> Inputs {
    if let Err(e) = root.canonicalize() {
        diags.push(
            Diagnostic::error(
                Code::BadRoot,
                format!("cannot read the config root `{}`: {e}", root.display()),
            )
            .help("pass the directory that holds `profiles/` and `sites/` with `--root`"),
        );
        let mut inputs = Inputs::default();
        add_builtin_templates(&mut inputs);
        return inputs;
    }
    load_from(&WorkTree::new(root), diags)
}

/// Read the inputs of any source. Problems with individual files are
/// diagnostics; a root without `profiles/` is one too.
pub fn load_from(src: &dyn InputSource, diags: &mut Diagnostics) -> Inputs {
    let mut inputs = Inputs::default();
    if !src.has_dir("profiles") {
        diags.push(
            Diagnostic::error(
                Code::BadRoot,
                format!("{} has no `profiles/` directory", src.describe()),
            )
            .help("run dify-cfg in a config repository, or pass one with `--root DIR`"),
        );
        // The built-in templates are still there: a root without profiles
        // is one mistake, not one more for every template.
        add_builtin_templates(&mut inputs);
        return inputs;
    }

    for rel in list(src, "profiles", diags, |p| p.ends_with(".toml")) {
        if let Some(text) = read(src, &rel, &mut inputs.sources, FileKind::Profile, diags) {
            let id = inputs.sources.add(rel, FileKind::Profile, text);
            let stem = inputs.sources.file(id).stem().to_string();
            if let Some(first) = inputs.profiles.get(&stem) {
                let first = inputs.sources.file(*first).path.clone();
                diags.push(
                    Diagnostic::error(
                        Code::DuplicateProfile,
                        format!("profile `{stem}` is defined twice"),
                    )
                    .at(inputs.sources.file(id).whole())
                    .note(format!("first defined in {first}"))
                    .help("profile names are file names; give each profile file a unique name"),
                );
                continue;
            }
            inputs.profiles.insert(stem, id);
        }
    }
    for rel in list(src, "sites", diags, |p| p.ends_with(".toml")) {
        if let Some(text) = read(src, &rel, &mut inputs.sources, FileKind::Site, diags) {
            let id = inputs.sources.add(rel, FileKind::Site, text);
            inputs.sites.push(id);
        }
    }
    // Templates: the root's own `templates/` wins, the built-in set fills in.
    for rel in list(src, "templates", diags, |_| true) {
        if let Some(text) = read(src, &rel, &mut inputs.sources, FileKind::Template, diags) {
            let name = rel.trim_start_matches("templates/").to_string();
            let id = inputs.sources.add(rel, FileKind::Template, text);
            inputs.templates.insert(name, id);
        }
    }
    add_builtin_templates(&mut inputs);
    inputs
}

/// The built-in templates the root's own `templates/` does not override.
fn add_builtin_templates(inputs: &mut Inputs) {
    for (name, text) in BUILTIN_TEMPLATES {
        if !inputs.templates.contains_key(*name) {
            let id = inputs.sources.add(
                format!("<builtin>/templates/{name}"),
                FileKind::Template,
                (*text).to_string(),
            );
            inputs.templates.insert((*name).to_string(), id);
        }
    }
}

/// Files under `dir` that `keep` accepts.
fn list(
    src: &dyn InputSource,
    dir: &str,
    diags: &mut Diagnostics,
    keep: impl Fn(&str) -> bool,
) -> Vec<String> {
    // A name that is not UTF-8 is read whatever it ends with: the read
    // says so (and a name that only holds U+FFFD is kept if `keep` is).
    match src.files(dir) {
        Ok(files) => files
            .into_iter()
            .filter(|p| keep(p) || p.contains('\u{FFFD}'))
            .filter(|p| keep(p) || src.read(p) == Err(ReadError::NameNotUtf8))
            .collect(),
        Err(e) => {
            diags.push(Diagnostic::error(
                Code::Io,
                format!("cannot list `{dir}/`: {e}"),
            ));
            Vec::new()
        }
    }
}

/// Register `rel` as an empty file and report `d` at its start: a file
/// that cannot be used still gets a `path:line:col`.
fn reject(
    rel: &str,
    kind: FileKind,
    sources: &mut SourceMap,
    diags: &mut Diagnostics,
    d: Diagnostic,
) -> Option<String> {
    let id = sources.add(rel.to_string(), kind, String::new());
    diags.push(d.at(sources.file(id).whole()));
    None
}

/// Read one input. A file that cannot be used still gets an entry in the
/// source map (empty, or its text with bad bytes replaced), so that its
/// diagnostic can point at `path:line:col`.
fn read(
    src: &dyn InputSource,
    rel: &str,
    sources: &mut SourceMap,
    kind: FileKind,
    diags: &mut Diagnostics,
) -> Option<String> {
    let problem = match src.read(rel) {
        Ok(bytes) => Ok(bytes),
        Err(ReadError::OutsideRoot) => Err(Diagnostic::error(
            Code::OutsideRoot,
            format!("`{rel}` is a link to a file outside the config root"),
        )
        .help("copy the file into the repository instead of linking to it")),
        Err(ReadError::NotAFile) => Err(Diagnostic::error(
            Code::Io,
            format!("`{rel}` is not a regular file"),
        )
        .help("inputs are plain files")),
        Err(ReadError::NameNotUtf8) => Err(Diagnostic::error(
            Code::Encoding,
            format!("the name of `{rel}` is not UTF-8 (shown with U+FFFD for its bad bytes)"),
        )
        .help("rename it with a UTF-8 name: dify-cfg knows profiles, sites and templates by their file names")),
        Err(ReadError::TooLarge(len)) => Err(Diagnostic::error(
            Code::TooLarge,
            format!("`{rel}` is {len} bytes; inputs are limited to 1 MiB"),
        )
        .help("a profile or site file is a few KiB; is this the right file?")),
        Err(ReadError::Other(e)) => Err(Diagnostic::error(
            Code::Io,
            format!("cannot read `{rel}`: {e}"),
        )
        .help("a link must point at a file inside the config root")),
    };
    let bytes = match problem {
        Ok(bytes) => bytes,
        Err(d) => return reject(rel, kind, sources, diags, d),
    };
    match String::from_utf8(bytes) {
        Ok(text) => Some(text),
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let lossy = String::from_utf8_lossy(e.as_bytes()).into_owned();
            let id = sources.add(rel.to_string(), kind, lossy);
            let base = sources.file(id).base;
            diags.push(
                Diagnostic::error(
                    Code::Encoding,
                    format!("`{rel}` is not UTF-8 (invalid byte at offset {at})"),
                )
                .at(base + at..base + at + '\u{FFFD}'.len_utf8())
                .label("not UTF-8")
                .help("save the file as UTF-8"),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A root without `profiles/` (or none at all) is one mistake: the
    /// built-in templates are still there, so nothing else reports them
    /// missing.
    #[test]
    fn a_root_without_profiles_is_one_mistake() {
        let mut src = MemTree::default();
        src.files
            .insert("sites/a.toml".into(), b"profile = \"p\"\n".to_vec());
        let mut diags = Diagnostics::new();
        let inputs = load_from(&src, &mut diags);
        assert_eq!(diags.iter().count(), 1, "{diags:?}");
        assert_eq!(inputs.templates.len(), BUILTIN_TEMPLATES.len());

        let mut diags = Diagnostics::new();
        let inputs = load(Path::new("/nonexistent/dify-cfg/root"), &mut diags);
        assert_eq!(diags.iter().count(), 1, "{diags:?}");
        assert_eq!(inputs.templates.len(), BUILTIN_TEMPLATES.len());
    }
}

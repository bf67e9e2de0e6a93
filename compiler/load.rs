//! Stage 1: read `profiles/`, `sites/` and `templates/` under the config root
//! into a [`SourceMap`], in sorted order, refusing what is not a plain UTF-8
//! file inside the root.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::source::{FileId, FileKind, SourceMap};
use crate::templates::BUILTIN_TEMPLATES;

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

/// Read the inputs under `root`. Problems with individual files are
/// diagnostics; a root without `profiles/` is one too.
pub fn load(root: &Path, diags: &mut Diagnostics) -> Inputs {
    let mut inputs = Inputs::default();
    let canonical_root = match root.canonicalize() {
        Ok(r) => r,
        Err(e) => {
            diags.push(
                Diagnostic::error(
                    "bad-root",
                    format!("cannot read the config root `{}`: {e}", root.display()),
                )
                .help("pass the directory that holds `profiles/` and `sites/` with `--root`"),
            );
            return inputs;
        }
    };
    if !root.join("profiles").is_dir() {
        diags.push(
            Diagnostic::error(
                "bad-root",
                format!("`{}` has no `profiles/` directory", root.display()),
            )
            .help("run dify-cfg in a config repository, or pass one with `--root DIR`"),
        );
        return inputs;
    }

    for path in list(root, "profiles", diags, |p| has_ext(p, "toml")) {
        if let Some((rel, text)) = read(
            root,
            &canonical_root,
            &path,
            &mut inputs.sources,
            FileKind::Profile,
            diags,
        ) {
            let id = inputs.sources.add(rel, FileKind::Profile, text);
            let stem = inputs.sources.file(id).stem().to_string();
            if let Some(first) = inputs.profiles.get(&stem) {
                let first = inputs.sources.file(*first).path.clone();
                diags.push(
                    Diagnostic::error(
                        "duplicate-profile",
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
    for path in list(root, "sites", diags, |p| has_ext(p, "toml")) {
        if let Some((rel, text)) = read(
            root,
            &canonical_root,
            &path,
            &mut inputs.sources,
            FileKind::Site,
            diags,
        ) {
            let id = inputs.sources.add(rel, FileKind::Site, text);
            inputs.sites.push(id);
        }
    }
    // Templates: the root's own `templates/` wins, the built-in set fills in.
    for path in list(root, "templates", diags, |_| true) {
        if let Some((rel, text)) = read(
            root,
            &canonical_root,
            &path,
            &mut inputs.sources,
            FileKind::Template,
            diags,
        ) {
            let name = rel.trim_start_matches("templates/").to_string();
            let id = inputs.sources.add(rel, FileKind::Template, text);
            inputs.templates.insert(name, id);
        }
    }
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
    inputs
}

fn has_ext(path: &Path, ext: &str) -> bool {
    path.extension().is_some_and(|e| e == ext)
}

/// Files under `root/dir`, sorted by path; hidden files and editor backups
/// are skipped.
fn list(
    root: &Path,
    dir: &str,
    diags: &mut Diagnostics,
    keep: impl Fn(&Path) -> bool,
) -> Vec<PathBuf> {
    let base = root.join(dir);
    if !base.exists() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(&base)
        .sort_by_file_name()
        .follow_links(false)
    {
        match entry {
            Ok(e) => {
                let name = e.file_name().to_string_lossy();
                if name.starts_with('.') || name.ends_with('~') {
                    continue;
                }
                if (e.file_type().is_file() || e.file_type().is_symlink()) && keep(e.path()) {
                    out.push(e.path().to_path_buf());
                }
            }
            Err(e) => diags.push(Diagnostic::error(
                "io",
                format!("cannot list `{dir}/`: {e}"),
            )),
        }
    }
    out
}

/// Register `rel` as an empty file and report `d` at its start: a file
/// that cannot be used still gets a `path:line:col`.
fn reject(
    rel: &str,
    kind: FileKind,
    sources: &mut SourceMap,
    diags: &mut Diagnostics,
    d: Diagnostic,
) -> Option<(String, String)> {
    let id = sources.add(rel.to_string(), kind, String::new());
    diags.push(d.at(sources.file(id).whole()));
    None
}

/// Read one input. A file that cannot be used still gets an entry in the
/// source map (empty, or its text with bad bytes replaced), so that its
/// diagnostic can point at `path:line:col`.
fn read(
    root: &Path,
    canonical_root: &Path,
    path: &Path,
    sources: &mut SourceMap,
    kind: FileKind,
    diags: &mut Diagnostics,
) -> Option<(String, String)> {
    let rel = path
        .strip_prefix(root)
        .unwrap_or(path)
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/");
    // A link may point anywhere; only what stays inside the root is read.
    match path.canonicalize() {
        Ok(real) if !real.starts_with(canonical_root) => {
            return reject(
                &rel,
                kind,
                sources,
                diags,
                Diagnostic::error(
                    "outside-root",
                    format!("`{rel}` is a link to a file outside the config root"),
                )
                .help("copy the file into the repository instead of linking to it"),
            );
        }
        Ok(real) if !real.is_file() => {
            return reject(
                &rel,
                kind,
                sources,
                diags,
                Diagnostic::error("io", format!("`{rel}` is not a regular file"))
                    .help("inputs are plain files"),
            );
        }
        Ok(_) => {}
        Err(e) => {
            return reject(
                &rel,
                kind,
                sources,
                diags,
                Diagnostic::error("io", format!("cannot read `{rel}`: {e}"))
                    .help("a link must point at a file inside the config root"),
            );
        }
    }
    if let Ok(m) = std::fs::metadata(path)
        && m.len() > MAX_INPUT_BYTES
    {
        return reject(
            &rel,
            kind,
            sources,
            diags,
            Diagnostic::error(
                "too-large",
                format!("`{rel}` is {} bytes; inputs are limited to 1 MiB", m.len()),
            )
            .help("a profile or site file is a few KiB; is this the right file?"),
        );
    }
    match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => Some((rel, text)),
            Err(e) => {
                let at = e.utf8_error().valid_up_to();
                let lossy = String::from_utf8_lossy(e.as_bytes()).into_owned();
                let id = sources.add(rel.clone(), kind, lossy);
                let base = sources.file(id).base;
                diags.push(
                    Diagnostic::error(
                        "encoding",
                        format!("`{rel}` is not UTF-8 (invalid byte at offset {at})"),
                    )
                    .at(base + at..base + at + '\u{FFFD}'.len_utf8())
                    .label("not UTF-8")
                    .help("save the file as UTF-8"),
                );
                None
            }
        },
        Err(e) => reject(
            &rel,
            kind,
            sources,
            diags,
            Diagnostic::error("io", format!("cannot read `{rel}`: {e}")),
        ),
    }
}

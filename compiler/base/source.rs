//! The source map: every input file the compiler reads, addressed by one
//! global byte offset space (as rustc's `SourceMap` does), so that a bare
//! `Range<usize>` is enough to name both the file and the place in it.

use std::ops::Range;

use sha2::{Digest, Sha256};

/// A span in the global offset space of a [`SourceMap`].
pub type Span = Range<usize>;

/// Index of a file in its [`SourceMap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileId(pub usize);

/// What role an input file plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FileKind {
    Profile,
    Site,
    Template,
}

/// One input file: its path relative to the config root (always with `/`),
/// its text, its sha256 and where it starts in the global offset space.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: String,
    pub kind: FileKind,
    pub text: String,
    pub sha256: String,
    pub base: usize,
    /// Byte offsets (local) at which each line starts.
    line_starts: Vec<usize>,
}

impl SourceFile {
    /// The stem of the file name: `profiles/edge-4gb.toml` gives `edge-4gb`.
    pub fn stem(&self) -> &str {
        let name = self.path.rsplit('/').next().unwrap_or(&self.path);
        name.rsplit_once('.').map_or(name, |(stem, _)| stem)
    }

    /// Local byte offset to 1-based (line, column); the column counts chars.
    pub fn line_col(&self, local: usize) -> (usize, usize) {
        let local = local.min(self.text.len());
        let line = match self.line_starts.binary_search(&local) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.line_starts[line];
        let col = self
            .text
            .get(start..local)
            .map_or(local - start, |s| s.chars().count());
        (line + 1, col + 1)
    }

    /// The span covering the whole file (global offsets).
    pub fn whole(&self) -> Span {
        self.base..self.base
    }
}

/// All inputs of one compiler run.
#[derive(Debug, Default, Clone)]
pub struct SourceMap {
    files: Vec<SourceFile>,
    next_base: usize,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest.iter() {
        use std::fmt::Write;
        let _ = write!(out, "{b:02x}");
    }
    out
}

impl SourceMap {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, path: String, kind: FileKind, text: String) -> FileId {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        let sha256 = sha256_hex(text.as_bytes());
        let base = self.next_base;
        // One byte of gap between files, so that an empty span at the end of
        // one file is never the start of the next.
        self.next_base += text.len() + 1;
        self.files.push(SourceFile {
            path,
            kind,
            text,
            sha256,
            base,
            line_starts,
        });
        FileId(self.files.len() - 1)
    }

    pub fn file(&self, id: FileId) -> &SourceFile {
        &self.files[id.0]
    }

    pub fn files(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files.iter().enumerate().map(|(i, f)| (FileId(i), f))
    }

    /// The file a global offset falls in.
    pub fn lookup(&self, global: usize) -> FileId {
        let i = match self.files.binary_search_by(|f| f.base.cmp(&global)) {
            Ok(i) => i,
            Err(0) => 0,
            Err(i) => i - 1,
        };
        FileId(i)
    }

    /// Global span to (file, local span).
    pub fn localize(&self, span: &Span) -> (FileId, Span) {
        let id = self.lookup(span.start);
        let base = self.files[id.0].base;
        let end = span.end.max(span.start);
        (id, span.start - base..end - base)
    }

    /// `path:line:col` of a global span's start.
    pub fn location(&self, span: &Span) -> Location {
        let (id, local) = self.localize(span);
        let file = self.file(id);
        let (line, column) = file.line_col(local.start);
        Location {
            path: file.path.clone(),
            line,
            column,
        }
    }
}

/// A human-facing position: path relative to the root, 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Location {
    pub path: String,
    pub line: usize,
    pub column: usize,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.path, self.line, self.column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_offsets_name_file_and_line() {
        let mut map = SourceMap::new();
        let a = map.add("a.toml".into(), FileKind::Profile, "x = 1\ny = 2\n".into());
        let b = map.add("b.toml".into(), FileKind::Site, "zé = 3\nw = 4".into());
        let b_base = map.file(b).base;
        assert_eq!(map.lookup(0), a);
        assert_eq!(map.lookup(b_base), b);
        let loc = map.location(&(b_base + 8..b_base + 9));
        assert_eq!(loc.to_string(), "b.toml:2:1");
        let loc = map.location(&(6..7));
        assert_eq!(loc.to_string(), "a.toml:2:1");
        // Column counts characters, not bytes.
        let loc = map.location(&(b_base + 5..b_base + 6));
        assert_eq!(loc.to_string(), "b.toml:1:5");
    }

    #[test]
    fn stem_strips_extension() {
        let mut map = SourceMap::new();
        let id = map.add("sites/clinic-01.toml".into(), FileKind::Site, String::new());
        assert_eq!(map.file(id).stem(), "clinic-01");
        let id = map.add("sites/a..b.toml".into(), FileKind::Site, String::new());
        assert_eq!(map.file(id).stem(), "a..b", "only the extension goes");
    }
}

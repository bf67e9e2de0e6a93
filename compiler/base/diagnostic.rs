//! User mistakes, reported the way rustc does: `error[code]: message`, an
//! arrow to `path:line:col`, the source line with a caret, and `help:`.
//!
//! Every stage collects diagnostics into a [`Diagnostics`] list instead of
//! stopping at the first, and the command line shows them all together.

use annotate_snippets::{AnnotationKind, Group, Level, Origin, Renderer, Snippet};
use serde::Serialize;

use crate::base::codes::Code;
use crate::base::source::{Location, SourceMap, Span};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    Error,
    Warning,
}

/// One finding about the inputs, with a stable kebab-case code.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: Code,
    pub message: String,
    /// Global span of the offending text, when there is one.
    pub span: Option<Span>,
    /// Text under the caret.
    pub label: Option<String>,
    /// Extra lines shown after the snippet (e.g. the memory budget table).
    pub notes: Vec<String>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(code: Code, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            span: None,
            label: None,
            notes: Vec::new(),
            help: None,
        }
    }

    pub fn warning(code: Code, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message)
        }
    }

    pub fn at(mut self, span: Span) -> Self {
        self.span = Some(span);
        self
    }

    pub fn at_opt(mut self, span: Option<Span>) -> Self {
        self.span = span;
        self
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// An ordered collection of diagnostics.
#[derive(Default, Clone)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
    /// Hashes of `items`, so that de-duplicating thousands of diagnostics
    /// (an input made of mistakes) does not take quadratic time.
    seen: std::collections::HashMap<u64, Vec<usize>>,
}

impl std::fmt::Debug for Diagnostics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Diagnostics")
            .field("items", &self.items)
            .finish()
    }
}

fn hash_of(d: &Diagnostic) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    d.hash(&mut h);
    h.finish()
}

impl Diagnostics {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, d: Diagnostic) {
        let same = self.seen.entry(hash_of(&d)).or_default();
        if !same.iter().any(|i| self.items[*i] == d) {
            same.push(self.items.len());
            self.items.push(d);
        }
    }

    pub fn extend(&mut self, other: Diagnostics) {
        for d in other.items {
            self.push(d);
        }
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(Diagnostic::is_error)
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter()
    }

    pub fn error_count(&self) -> usize {
        self.items.iter().filter(|d| d.is_error()).count()
    }

    /// Sort by file and position so that output does not depend on the order
    /// in which stages ran; diagnostics without a place keep their order and
    /// come last.
    pub fn sorted(mut self) -> Self {
        self.items.sort_by_key(|d| match &d.span {
            Some(s) => (0, s.start),
            None => (1, 0),
        });
        self.seen.clear();
        for (i, d) in self.items.iter().enumerate() {
            self.seen.entry(hash_of(d)).or_default().push(i);
        }
        self
    }

    /// Render every diagnostic as text, rustc style.
    pub fn render_text(&self, sources: &SourceMap, color: bool) -> String {
        let mut out = String::new();
        let mut budget = SNIPPET_BUDGET;
        for d in &self.items {
            out.push_str(&render_one(d, sources, color, &mut budget));
            out.push('\n');
        }
        let errors = self.error_count();
        let warnings = self.items.len() - errors;
        if errors > 0 {
            out.push_str(&format!(
                "error: found {errors} error{}{}\n",
                plural(errors),
                if warnings > 0 {
                    format!(" and {warnings} warning{}", plural(warnings))
                } else {
                    String::new()
                }
            ));
        }
        out
    }

    /// Render as a JSON report (`--format json`).
    pub fn to_json(&self, sources: &SourceMap) -> serde_json::Value {
        let items: Vec<JsonDiagnostic> = self
            .items
            .iter()
            .map(|d| JsonDiagnostic {
                severity: d.severity,
                code: d.code,
                message: &d.message,
                location: d.span.as_ref().map(|s| sources.location(s)),
                label: d.label.as_deref(),
                notes: &d.notes,
                help: d.help.as_deref(),
            })
            .collect();
        serde_json::json!({ "diagnostics": items })
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[derive(Serialize)]
struct JsonDiagnostic<'a> {
    severity: Severity,
    code: Code,
    message: &'a str,
    location: Option<Location>,
    label: Option<&'a str>,
    notes: &'a [String],
    help: Option<&'a str>,
}

/// The longest source excerpt a diagnostic shows; beyond it, only the
/// `path:line:col` is printed.
const MAX_SNIPPET_BYTES: usize = 4096;

/// How many bytes of source excerpts one report shows in all. Rendering an
/// excerpt takes time in its length, so an input made of thousands of
/// mistakes on long lines gets the rest of its diagnostics without excerpts
/// instead of taking minutes.
const SNIPPET_BUDGET: usize = 1 << 20;

fn render_one(d: &Diagnostic, sources: &SourceMap, color: bool, budget: &mut usize) -> String {
    let level = match d.severity {
        Severity::Error => Level::ERROR,
        Severity::Warning => Level::WARNING,
    };
    let renderer = if color {
        Renderer::styled()
    } else {
        Renderer::plain()
    };
    let title = level.primary_title(d.message.as_str()).id(d.code.as_str());
    let mut group = Group::with_title(title);
    if let Some(span) = &d.span {
        let (id, local) = sources.localize(span);
        let file = sources.file(id);
        let local = char_aligned(&file.text, local);
        // Only the lines the span covers go to the renderer, so that each
        // diagnostic costs the length of its lines, not of its file.
        let first = file.text[..local.start].rfind('\n').map_or(0, |i| i + 1);
        let last = file.text[local.end..]
            .find('\n')
            .map_or(file.text.len(), |i| local.end + i);
        let (line, column) = file.line_col(local.start);
        if last - first <= MAX_SNIPPET_BYTES.min(*budget) {
            *budget -= last - first;
            let mut annotation =
                AnnotationKind::Primary.span(local.start - first..local.end - first);
            if let Some(label) = &d.label {
                annotation = annotation.label(label.as_str());
            }
            group = group.element(
                Snippet::source(&file.text[first..last])
                    .line_start(line)
                    .path(file.path.as_str())
                    .fold(true)
                    .annotation(annotation),
            );
        } else {
            // A huge line (a generated file): its place without its text.
            group = group.element(
                Origin::path(file.path.as_str())
                    .line(line)
                    .char_column(column),
            );
        }
    }
    let mut report = vec![group];
    for note in &d.notes {
        report.push(Group::with_title(
            Level::NOTE.secondary_title(note.as_str()),
        ));
    }
    if let Some(help) = &d.help {
        report.push(Group::with_title(
            Level::HELP.secondary_title(help.as_str()),
        ));
    }
    renderer.render(&report)
}

/// Widen a byte span to whole characters inside `text`, so that no span
/// can split a character (the snippet renderer requires char boundaries).
fn char_aligned(text: &str, span: std::ops::Range<usize>) -> std::ops::Range<usize> {
    let mut start = span.start.min(text.len());
    let mut end = span.end.clamp(start, text.len());
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    while !text.is_char_boundary(end) {
        end += 1;
    }
    start..end
}

/// The longest word [`did_you_mean`] looks at. Names in the input language
/// are short; Jaro-Winkler takes time quadratic in the length, so a huge
/// misspelt key must not be compared with hundreds of candidates.
const MAX_SUGGEST_LEN: usize = 256;

/// The Jaro-Winkler similarity a suggestion needs.
const SUGGEST_ABOVE: f64 = 0.8;

/// How often each character occurs (non-ASCII characters share a bucket),
/// and the length in characters.
fn char_counts(s: &str) -> ([u32; 128], usize) {
    let mut counts = [0u32; 128];
    let mut len = 0;
    for c in s.chars() {
        counts[(c as usize).min(127)] += 1;
        len += 1;
    }
    (counts, len)
}

/// An upper bound of the Jaro-Winkler similarity of a word (given by its
/// character counts) and a candidate: Jaro matches at most the characters
/// both have, and Winkler's prefix bonus is at most 0.4 of the rest. Most
/// candidates of a misspelt name fall below the threshold here, cheaply.
fn jaro_winkler_bound(word: &([u32; 128], usize), candidate: &str) -> f64 {
    let mut left = word.0;
    let (mut m, mut lb) = (0u32, 0usize);
    for c in candidate.chars() {
        let slot = &mut left[(c.to_ascii_lowercase() as usize).min(127)];
        if *slot > 0 {
            *slot -= 1;
            m += 1;
        }
        lb += 1;
    }
    if word.1 == 0 || lb == 0 {
        return if word.1 == lb { 1.0 } else { 0.0 };
    }
    if m == 0 {
        return 0.0;
    }
    let m = f64::from(m);
    let jaro = (m / word.1 as f64 + m / lb as f64 + 1.0) / 3.0;
    jaro + 0.4 * (1.0 - jaro)
}

/// "did you mean" for a misspelt name among known candidates.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    if word.len() > MAX_SUGGEST_LEN {
        return None;
    }
    let word_lower = word.to_ascii_lowercase();
    let word_counts = char_counts(&word_lower);
    candidates
        .into_iter()
        .filter(|c| jaro_winkler_bound(&word_counts, c) > SUGGEST_ABOVE)
        .map(|c| {
            (
                strsim::jaro_winkler(&word_lower, &c.to_ascii_lowercase()),
                c,
            )
        })
        .filter(|(score, _)| *score > SUGGEST_ABOVE)
        .max_by(|a, b| a.0.total_cmp(&b.0).then_with(|| b.1.cmp(a.1)))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::source::FileKind;

    #[test]
    fn renders_rustc_style() {
        let mut map = SourceMap::new();
        map.add(
            "profiles/x.toml".into(),
            FileKind::Profile,
            "[device]\nmemroy = \"4GiB\"\n".into(),
        );
        let mut diags = Diagnostics::new();
        diags.push(
            Diagnostic::error(Code::UnknownKey, "unknown key `memroy` in `device`")
                .at(9..15)
                .label("not a key of `device`")
                .help("did you mean `memory`?"),
        );
        let text = diags.render_text(&map, false);
        assert!(text.contains("error[unknown-key]: unknown key `memroy` in `device`"));
        assert!(text.contains("--> profiles/x.toml:2:1"), "{text}");
        assert!(text.contains("memroy = \"4GiB\""));
        assert!(text.contains("^^^^^^ not a key of `device`"));
        assert!(text.contains("help: did you mean `memory`?"));
        assert!(text.contains("error: found 1 error"));
    }

    #[test]
    fn spans_inside_a_character_do_not_panic() {
        let mut map = SourceMap::new();
        map.add(
            "sites/x.toml".into(),
            FileKind::Site,
            "a = \"\u{FFFD}\"\n".into(),
        );
        let mut diags = Diagnostics::new();
        diags.push(Diagnostic::error(Code::Encoding, "bad byte").at(6..7));
        let text = diags.render_text(&map, false);
        assert!(text.contains("--> sites/x.toml:1:6"), "{text}");
    }

    #[test]
    fn duplicates_are_dropped_before_and_after_sorting() {
        let d = |at: usize| Diagnostic::error(Code::Io, "m").at(at..at + 1);
        let mut diags = Diagnostics::new();
        for i in (0..5_000).rev() {
            diags.push(d(i));
            diags.push(d(i));
        }
        assert_eq!(diags.error_count(), 5_000);
        let mut diags = diags.sorted();
        assert_eq!(diags.iter().next().unwrap().span, Some(0..1));
        diags.push(d(7));
        diags.push(d(5_000));
        assert_eq!(diags.error_count(), 5_001);
    }

    #[test]
    fn many_mistakes_on_long_lines_render_bounded_with_their_places() {
        let line = format!("admin = [{}]\n", vec!["\"x\""; 800].join(","));
        let text = line.repeat(100);
        let mut map = SourceMap::new();
        let id = map.add("sites/x.toml".into(), FileKind::Site, text);
        let base = map.file(id).base;
        let mut diags = Diagnostics::new();
        for l in 0..100 {
            for i in 0..800 {
                let at = base + l * line.len() + 9 + i * 4;
                diags.push(Diagnostic::error(Code::InvalidCidr, "not a CIDR").at(at..at + 3));
            }
        }
        let out = diags.render_text(&map, false);
        // Bounded: excerpts stop at 1 MiB per report, places go on.
        assert!(out.len() < 6 << 20, "{} bytes", out.len());
        // The first ones with their line, the last one with its place only.
        assert!(out.contains("1 | admin = ["), "{}", &out[..2000]);
        assert!(
            out.contains("--> sites/x.toml:100:3206\n"),
            "{}",
            &out[out.len() - 2000..]
        );
        assert!(out.contains("found 80000 errors"));
    }

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(
            did_you_mean("memroy", ["memory", "cpus", "reserve"]),
            Some("memory")
        );
        assert_eq!(did_you_mean("zzz", ["memory", "cpus"]), None);
        // The bound never drops a suggestion the full measure would make.
        let names = crate::dify::env_names();
        for word in [
            "LOG_LEVL",
            "SECRETKEY",
            "db_password",
            "MAIL_FROM",
            "x",
            "ZZZ_1",
        ] {
            let full = names
                .iter()
                .map(|c| {
                    (
                        strsim::jaro_winkler(&word.to_ascii_lowercase(), &c.to_ascii_lowercase()),
                        *c,
                    )
                })
                .filter(|(s, _)| *s > SUGGEST_ABOVE)
                .max_by(|a, b| a.0.total_cmp(&b.0).then_with(|| b.1.cmp(a.1)))
                .map(|(_, c)| c);
            assert_eq!(did_you_mean(word, names.iter().copied()), full, "{word}");
        }
        // A huge word gets no suggestion (it is not even compared).
        let huge = format!("memory{}", "y".repeat(100_000));
        assert_eq!(did_you_mean(&huge, ["memory"; 1000]), None);
    }
}

//! User mistakes, reported the way rustc does: `error[code]: message`, an
//! arrow to `path:line:col`, the source line with a caret, and `help:`.
//!
//! Every stage collects diagnostics into a [`Diagnostics`] list instead of
//! stopping at the first, and the command line shows them all together.

use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};
use serde::Serialize;

use crate::source::{Location, SourceMap, Span};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    Error,
    Warning,
}

/// One finding about the inputs, with a stable kebab-case code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: &'static str,
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
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
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

    pub fn warning(code: &'static str, message: impl Into<String>) -> Self {
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
#[derive(Debug, Default, Clone)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, d: Diagnostic) {
        if !self.items.contains(&d) {
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
        self
    }

    /// Render every diagnostic as text, rustc style.
    pub fn render_text(&self, sources: &SourceMap, color: bool) -> String {
        let mut out = String::new();
        for d in &self.items {
            out.push_str(&render_one(d, sources, color));
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
    code: &'static str,
    message: &'a str,
    location: Option<Location>,
    label: Option<&'a str>,
    notes: &'a [String],
    help: Option<&'a str>,
}

fn render_one(d: &Diagnostic, sources: &SourceMap, color: bool) -> String {
    let level = match d.severity {
        Severity::Error => Level::ERROR,
        Severity::Warning => Level::WARNING,
    };
    let renderer = if color {
        Renderer::styled()
    } else {
        Renderer::plain()
    };
    let title = level.primary_title(d.message.as_str()).id(d.code);
    let mut group = Group::with_title(title);
    if let Some(span) = &d.span {
        let (id, local) = sources.localize(span);
        let file = sources.file(id);
        let local = char_aligned(&file.text, local);
        let mut annotation = AnnotationKind::Primary.span(local);
        if let Some(label) = &d.label {
            annotation = annotation.label(label.as_str());
        }
        group = group.element(
            Snippet::source(file.text.as_str())
                .path(file.path.as_str())
                .fold(true)
                .annotation(annotation),
        );
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

/// "did you mean" for a misspelt name among known candidates.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let word_lower = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            (
                strsim::jaro_winkler(&word_lower, &c.to_ascii_lowercase()),
                c,
            )
        })
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0).then_with(|| b.1.cmp(a.1)))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::FileKind;

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
            Diagnostic::error("unknown-key", "unknown key `memroy` in `device`")
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
        diags.push(Diagnostic::error("encoding", "bad byte").at(6..7));
        let text = diags.render_text(&map, false);
        assert!(text.contains("--> sites/x.toml:1:6"), "{text}");
    }

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(
            did_you_mean("memroy", ["memory", "cpus", "reserve"]),
            Some("memory")
        );
        assert_eq!(did_you_mean("zzz", ["memory", "cpus"]), None);
    }
}

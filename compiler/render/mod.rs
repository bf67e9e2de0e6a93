//! Stage 6: render. Every site's [`plan`](crate::plan) is formatted through
//! minijinja templates, in a fixed order, into bytes.
//!
//! - Undefined variables are errors ([`UndefinedBehavior::Strict`]).
//! - Templates whose name ends in `.yaml` print every `{{ }}` as JSON
//!   ([`AutoEscape::Json`]): a JSON string is a YAML scalar, so no input
//!   string can change the structure of a YAML file. dify-cfg's formatter
//!   also escapes the characters YAML treats as line breaks or refuses
//!   (U+0085, U+2028, U+2029, DEL, C1 controls), which plain JSON leaves raw.
//! - Templates whose name ends in `.sh` print every `{{ }}` as one
//!   single-quoted sh word ([`plan::sh_quote`]), so no input string can
//!   change what a script runs; only `|comment` text (for `#` lines) is
//!   printed as is.
//! - Filters: `toyaml` (a value as block YAML, every scalar JSON-escaped),
//!   `comment` (text made safe for a one-line comment), `dotenv` (a value
//!   single-quoted for a compose env file), `quote` (a JSON string).
//! - Budget: one template renders one file in at most [`TEMPLATE_FUEL`]
//!   steps (minijinja's fuel: loops inside loops of a custom template
//!   would otherwise run without end) and writes at most
//!   [`MAX_RENDERED_BYTES`]; past either, a `template-budget` error located
//!   in the template.
//! - Output: LF line endings, exactly one trailing newline, sorted by path.
//!   Render does no I/O and reads no clock.

mod escape;
mod refuse;
#[cfg(test)]
mod tests;
mod yaml;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use minijinja::value::Value as MjValue;
use minijinja::{AutoEscape, Environment, Error, ErrorKind, UndefinedBehavior};

use crate::base::codes::Code;
use crate::base::diagnostic::{Diagnostic, Diagnostics};
use crate::base::source::{FileId, SourceFile, SourceMap};
use crate::model::Site;
use crate::plan::{self, Artifact, BuiltImages, BuiltKind};

use escape::{SH_ESCAPE, comment, dotenv, format_value, quote};
use refuse::unsafe_values;
use yaml::toyaml;

/// The steps (minijinja instructions) one template may run to render one
/// file. The built-in templates take a few thousand for the largest site
/// (a unit test holds them to a tenth of this); a custom template's loops
/// inside loops stop here, not never.
pub const TEMPLATE_FUEL: u64 = 1_000_000;

/// The most bytes one template may write for one file; a generated file
/// is a few KiB.
pub const MAX_RENDERED_BYTES: usize = 16 << 20;

/// One rendered output file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedFile {
    /// Path under the site's output directory, with `/`.
    pub path: String,
    pub bytes: Vec<u8>,
}

/// The template set of one compiler run, compiled once.
pub struct Renderer<'s> {
    sources: &'s SourceMap,
    env: Environment<'s>,
    templates: BTreeMap<String, FileId>,
}

impl std::fmt::Debug for Renderer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer")
            .field("templates", &self.templates)
            .finish_non_exhaustive()
    }
}

impl<'s> Renderer<'s> {
    /// Compile the templates. `templates` maps a template name (e.g.
    /// `compose.yaml`) to its file in `sources`. Syntax errors become
    /// `template-syntax` diagnostics located in the template; all of them
    /// are reported together.
    pub fn new(
        sources: &'s SourceMap,
        templates: &BTreeMap<String, FileId>,
    ) -> Result<Self, Diagnostics> {
        let mut env = environment();
        let mut diags = Diagnostics::new();
        for (name, &id) in templates {
            let file = sources.file(id);
            if let Err(e) = env.add_template_owned(name.clone(), file.text.as_str()) {
                diags.push(located(
                    Diagnostic::error(
                        Code::TemplateSyntax,
                        format!("template `{name}` does not parse: {}", describe(&e)),
                    )
                    .help("fix the template; minijinja syntax is Jinja2's"),
                    &e,
                    file,
                ));
            }
        }
        for name in plan::TEMPLATE_NAMES {
            if !templates.contains_key(*name) {
                diags.push(
                    Diagnostic::error(
                        Code::TemplateMissing,
                        format!("there is no template `{name}`"),
                    )
                    .help(format!(
                        "add `templates/{name}` or remove the config root's `templates/` override"
                    )),
                );
            }
        }
        if diags.has_errors() {
            return Err(diags);
        }
        Ok(Renderer {
            sources,
            env,
            templates: templates.clone(),
        })
    }

    /// Render a site's build files only (its Dockerfiles and their ignore
    /// files, [`plan::builds`]): what the image plan needs of a site that
    /// is not rendered in full.
    pub fn render_builds(&self, site: &Site) -> Result<Vec<RenderedFile>, Diagnostics> {
        refuse_unsafe(site)?;
        self.render_each(site, &plan::builds(site))
    }

    /// Render every output file of a site, sorted by path. The Dockerfiles
    /// come first: the compose file and Helm values name the images built
    /// from them by the hash of their bytes.
    pub fn render_site(&self, site: &Site) -> Result<Vec<RenderedFile>, Diagnostics> {
        refuse_unsafe(site)?;
        let plan = plan::plan(site);
        let mut files = self.render_each(site, &plan.builds)?;
        let image = |kind| {
            let defined = plan.builds.iter().zip(&files);
            let bytes = defined
                .filter(|(a, _)| a.defines == Some(kind))
                .map(|(_, f)| f.bytes.as_slice())
                .next();
            plan::built_image(site, kind, bytes.unwrap_or_default())
        };
        let built = BuiltImages {
            api: image(BuiltKind::Api),
            web: image(BuiltKind::Web),
        };
        files.extend(self.render_each(site, &plan.deploy_artifacts(&built))?);
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    /// Render `artifacts`, all of them or every error.
    fn render_each(
        &self,
        site: &Site,
        artifacts: &[Artifact],
    ) -> Result<Vec<RenderedFile>, Diagnostics> {
        let mut diags = Diagnostics::new();
        let mut files = Vec::new();
        for artifact in artifacts {
            match self.render_artifact(site, artifact) {
                Ok(file) => files.push(file),
                Err(d) => diags.push(*d),
            }
        }
        if diags.is_empty() {
            Ok(files)
        } else {
            Err(diags)
        }
    }

    fn render_artifact(
        &self,
        site: &Site,
        artifact: &Artifact,
    ) -> Result<RenderedFile, Box<Diagnostic>> {
        let mut out = Bounded::default();
        let rendered = self.env.get_template(artifact.template).and_then(|t| {
            t.render_captured_to(MjValue::from_serialize(&artifact.context), &mut out)
                .map(drop)
        });
        match rendered {
            Ok(_) => Ok(RenderedFile {
                path: artifact.path.clone(),
                bytes: normalize(&String::from_utf8_lossy(&out.bytes)).into_bytes(),
            }),
            Err(e) => {
                let failing = e.name().unwrap_or(artifact.template).to_string();
                let what = format!(
                    "template `{failing}` for site `{}` ({})",
                    site.name, artifact.path
                );
                let d = if e.kind() == ErrorKind::OutOfFuel {
                    Diagnostic::error(Code::TemplateBudget, format!("{what} ran more than {TEMPLATE_FUEL} steps"))
                        .label("still running here")
                        .help(format!("a template may run {TEMPLATE_FUEL} steps for one file; loops inside loops multiply: loop over less"))
                } else if out.full {
                    Diagnostic::error(
                        Code::TemplateBudget,
                        format!("{what} writes more than {} MiB", MAX_RENDERED_BYTES >> 20),
                    )
                    .label("still writing here")
                    .help(format!(
                        "a template may write {} MiB for one file; a generated file is a few KiB",
                        MAX_RENDERED_BYTES >> 20
                    ))
                } else {
                    Diagnostic::error(Code::TemplateError, format!("{what} failed: {}", describe(&e)))
                        .help("a template may use only the variables the planner provides; see compiler/plan/")
                };
                Err(Box::new(match self.templates.get(&failing) {
                    Some(&id) => located(d, &e, self.sources.file(id)),
                    None => d,
                }))
            }
        }
    }
}

/// A value the second check refuses ([`unsafe_values`]) stops the site.
fn refuse_unsafe(site: &Site) -> Result<(), Diagnostics> {
    let mut diags = Diagnostics::new();
    for (what, value) in unsafe_values(site) {
        diags.push(
            Diagnostic::error(
                Code::UnsafeValue,
                format!(
                    "site `{}`: {what} `{}` cannot be written into its outputs safely",
                    site.name,
                    value.escape_debug()
                ),
            )
            .help("validation should have refused this value; please report it"),
        );
    }
    if diags.is_empty() { Ok(()) } else { Err(diags) }
}

/// What a template writes for one file, up to [`MAX_RENDERED_BYTES`]:
/// past that, a write fails and `full` says why.
#[derive(Default)]
struct Bounded {
    bytes: Vec<u8>,
    full: bool,
}

impl std::io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > MAX_RENDERED_BYTES {
            self.full = true;
            return Err(std::io::Error::other("the file is larger than its budget"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The minijinja environment every template runs in.
fn environment<'s>() -> Environment<'s> {
    let mut env = Environment::new();
    env.set_fuel(Some(TEMPLATE_FUEL));
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(true);
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".yaml") || name.ends_with(".yml") {
            AutoEscape::Json
        } else if name.ends_with(".sh") {
            AutoEscape::Custom(SH_ESCAPE)
        } else {
            AutoEscape::None
        }
    });
    env.set_formatter(format_value);
    env.add_filter("toyaml", toyaml);
    env.add_filter("comment", comment);
    env.add_filter("dotenv", dotenv);
    env.add_filter("quote", quote);
    env
}

/// minijinja's error as one line: kind and detail, without the location
/// (the diagnostic carries that).
fn describe(e: &Error) -> String {
    let mut s = e.kind().to_string();
    if let Some(detail) = e.detail() {
        let _ = write!(s, ": {detail}");
    }
    if let Some(line) = e.line() {
        let _ = write!(s, " (line {line})");
    }
    s
}

/// Locate a diagnostic in the template the error names: the error's byte
/// range when minijinja has it, else the start of its line.
fn located(d: Diagnostic, e: &Error, file: &SourceFile) -> Diagnostic {
    let len = file.text.len();
    let local = match (e.range(), e.line()) {
        (Some(r), _) if r.start <= len => r.start..r.end.min(len).max(r.start),
        (_, Some(line)) => {
            let start = line_start(&file.text, line);
            let end = file.text[start..].find('\n').map_or(len, |i| start + i);
            start..end
        }
        _ => 0..0,
    };
    d.at(file.base + local.start..file.base + local.end)
}

/// Byte offset of the start of 1-based `line`.
fn line_start(text: &str, line: usize) -> usize {
    if line <= 1 {
        return 0;
    }
    text.match_indices('\n')
        .nth(line - 2)
        .map_or(text.len(), |(i, _)| i + 1)
}

/// LF line endings and exactly one trailing newline.
fn normalize(text: &str) -> String {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = text.trim_end_matches('\n').to_string();
    out.push('\n');
    out
}

/// The built-in templates in a source map of their own, as the unit tests
/// of render and verify render the fixtures with them.
#[cfg(test)]
pub(crate) fn builtin_sources() -> (SourceMap, BTreeMap<String, FileId>) {
    use crate::base::source::FileKind;
    use crate::input::templates::BUILTIN_TEMPLATES;
    let mut sources = SourceMap::new();
    let mut templates = BTreeMap::new();
    for (name, text) in BUILTIN_TEMPLATES {
        let id = sources.add(
            format!("templates/{name}"),
            FileKind::Template,
            (*text).to_string(),
        );
        templates.insert((*name).to_string(), id);
    }
    (sources, templates)
}

/// `site` rendered with the built-in templates: path to bytes.
#[cfg(test)]
pub(crate) fn render_builtin(site: &Site) -> BTreeMap<String, Vec<u8>> {
    let (sources, templates) = builtin_sources();
    let renderer = Renderer::new(&sources, &templates).expect("built-in templates compile");
    match renderer.render_site(site) {
        Ok(files) => files.into_iter().map(|f| (f.path, f.bytes)).collect(),
        Err(d) => panic!("{}", d.render_text(&sources, false)),
    }
}

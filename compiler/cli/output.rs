//! How commands print: diagnostics (rustc-style text on stderr, or inside
//! the one JSON document a command prints), reports as text or JSON,
//! failures, and colour (only on a terminal, never with `NO_COLOR`).

use std::cell::RefCell;
use std::io::{IsTerminal, Write};

use crate::base::diagnostic::Diagnostics;
use crate::cli::args::Format;
use crate::cli::exit::{ExitCode, Failure};
use crate::driver::{Compiled, Selection};
use crate::gitops;
use crate::input::load::Inputs;
use crate::validate::ValidSite;

/// A command's result as the command line shows it.
pub trait Report {
    /// The report for people: what goes to stdout, then what goes to stderr.
    fn text(&self) -> Text;
    /// The report for machines (the diagnostics are added under `diagnostics`).
    fn json(&self) -> serde_json::Value;
    /// The exit code the report stands for.
    fn exit_code(&self) -> ExitCode {
        ExitCode::Success
    }
}

/// A text report: its stdout and stderr parts.
#[derive(Debug, Default)]
pub struct Text {
    pub stdout: String,
    pub stderr: String,
}

/// Where and how to print.
pub struct Output {
    pub format: Format,
    /// Colour for stderr (diagnostics).
    color: bool,
    /// `NO_COLOR` is set.
    no_color: bool,
    /// JSON mode: diagnostics waiting to go into the command's one report.
    pending: RefCell<Vec<serde_json::Value>>,
}

impl Output {
    pub fn new(format: Format) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Output {
            format,
            color: !no_color && std::io::stderr().is_terminal(),
            no_color,
            pending: Default::default(),
        }
    }

    /// Whether a text report on stdout may be coloured.
    pub fn color_stdout(&self) -> bool {
        self.format == Format::Text && !self.no_color && std::io::stdout().is_terminal()
    }

    /// Text: diagnostics go to stderr now. JSON: they go into the one JSON
    /// document the command prints on stdout, under `diagnostics`.
    pub fn diagnostics(&self, diags: &Diagnostics, inputs: &Inputs) {
        if diags.is_empty() {
            return;
        }
        match self.format {
            Format::Text => {
                let _ = std::io::stderr()
                    .write_all(diags.render_text(&inputs.sources, self.color).as_bytes());
            }
            Format::Json => {
                if let Some(items) = diags.to_json(&inputs.sources)["diagnostics"].as_array() {
                    self.pending.borrow_mut().extend(items.iter().cloned());
                }
            }
        }
    }

    /// Print a command's report; its exit code.
    pub fn report(&self, report: &dyn Report) -> ExitCode {
        match self.format {
            Format::Text => {
                let text = report.text();
                let _ = std::io::stdout().write_all(text.stdout.as_bytes());
                let _ = std::io::stderr().write_all(text.stderr.as_bytes());
            }
            Format::Json => self.json(report.json()),
        }
        report.exit_code()
    }

    /// Print the command's JSON report, with the diagnostics collected so far.
    fn json(&self, mut value: serde_json::Value) {
        if let Some(obj) = value.as_object_mut() {
            let pending: Vec<_> = self.pending.borrow_mut().drain(..).collect();
            obj.insert("diagnostics".into(), serde_json::Value::Array(pending));
        }
        let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
        text.push('\n');
        let _ = std::io::stdout().write_all(text.as_bytes());
    }

    /// Say why a command failed (diagnostics were said already); exit 2.
    pub fn fail(&self, failure: &Failure) -> ExitCode {
        if !matches!(failure, Failure::Diagnosed) {
            let message = failure.to_string();
            match self.format {
                Format::Text => eprintln!("error: {message}"),
                Format::Json => self.json(serde_json::json!({ "error": message })),
            }
        }
        ExitCode::Invalid
    }

    /// Print a compilation's diagnostics; then, when there are no errors,
    /// the sites `selection` names.
    pub fn chosen<'c>(
        &self,
        compiled: &'c Compiled,
        selection: &Selection,
    ) -> Result<Vec<&'c ValidSite>, Failure> {
        self.diagnostics(&compiled.diagnostics, &compiled.inputs);
        if compiled.diagnostics.has_errors() {
            return Err(Failure::Diagnosed);
        }
        Ok(compiled.select(selection)?)
    }

    /// Print diagnostics that must be said, and fail.
    pub fn diagnosed(&self, diags: &Diagnostics, inputs: &Inputs) -> Failure {
        self.diagnostics(diags, inputs);
        Failure::Diagnosed
    }

    /// A GitOps failure: sites that did not render have their diagnostics
    /// printed (against `inputs`); any other failure is said by [`Output::fail`].
    pub fn gitops_failure(&self, e: gitops::Error, inputs: &Inputs) -> Failure {
        match e {
            gitops::Error::Render(d) => self.diagnosed(&d, inputs),
            e => e.into(),
        }
    }

    /// JSON mode: print diagnostics no report has carried yet.
    pub fn finish(&self) {
        if self.format == Format::Json && !self.pending.borrow().is_empty() {
            self.json(serde_json::json!({}));
        }
    }
}

/// ANSI colour for a text report, or none.
pub struct Paint(pub bool);

impl Paint {
    pub fn wrap(&self, code: &str, s: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

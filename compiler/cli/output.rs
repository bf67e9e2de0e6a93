//! How commands print: diagnostics (rustc-style text on stderr, or inside
//! the one JSON document a command prints), reports as text or JSON,
//! failures, and colour (only on a terminal, never with `NO_COLOR`).
//!
//! Every byte goes through [`Output::write`]: a reader that went away
//! (`| head -1`, a broken pipe) ends the printing quietly and the command
//! exits as it would have; any other failure to write (a full disk behind
//! `> report.json`) is said on stderr and the command exits 2, so a cut
//! report never passes for a whole one.

use std::cell::{Cell, RefCell};
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
    /// Whether a write to each stream failed: nothing more is written to
    /// it.
    stdout_failed: Cell<bool>,
    stderr_failed: Cell<bool>,
    /// The first failure to write that was not a closed reader.
    write_error: RefCell<Option<String>>,
}

/// Which stream to write to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum To {
    Stdout,
    Stderr,
}

impl Output {
    pub fn new(format: Format) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Output {
            format,
            color: !no_color && std::io::stderr().is_terminal(),
            no_color,
            pending: Default::default(),
            stdout_failed: Default::default(),
            stderr_failed: Default::default(),
            write_error: Default::default(),
        }
    }

    /// Write `text` to a stream, whole, through its locked handle. A
    /// closed reader ends that stream quietly; another error is kept for
    /// [`Output::finish`].
    fn write(&self, to: To, text: &str) {
        let failed = match to {
            To::Stdout => &self.stdout_failed,
            To::Stderr => &self.stderr_failed,
        };
        if text.is_empty() || failed.get() {
            return;
        }
        let written = match to {
            To::Stdout => write_locked(&mut std::io::stdout().lock(), text),
            To::Stderr => write_locked(&mut std::io::stderr().lock(), text),
        };
        if let Err(e) = written {
            failed.set(true);
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                let name = if to == To::Stdout { "stdout" } else { "stderr" };
                self.write_error
                    .borrow_mut()
                    .get_or_insert_with(|| format!("cannot write to {name}: {e}"));
            }
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
                self.write(To::Stderr, &diags.render_text(&inputs.sources, self.color));
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
                self.write(To::Stdout, &text.stdout);
                self.write(To::Stderr, &text.stderr);
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
        self.write(To::Stdout, &text);
    }

    /// Say why a command failed (diagnostics were said already); exit 2.
    pub fn fail(&self, failure: &Failure) -> ExitCode {
        if !matches!(failure, Failure::Diagnosed) {
            let message = failure.to_string();
            match self.format {
                Format::Text => self.write(To::Stderr, &format!("error: {message}\n")),
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

    /// The end of a command that would exit with `code`: in JSON mode,
    /// print diagnostics no report has carried yet. A failure to write
    /// other than a closed reader is said on stderr and makes it exit 2.
    pub fn finish(&self, code: ExitCode) -> ExitCode {
        if self.format == Format::Json && !self.pending.borrow().is_empty() {
            self.json(serde_json::json!({}));
        }
        let failed = self.write_error.borrow_mut().take();
        match failed {
            Some(message) => {
                self.write(To::Stderr, &format!("error: {message}\n"));
                ExitCode::Invalid
            }
            None => code,
        }
    }
}

/// `text` written whole and flushed.
fn write_locked(w: &mut impl Write, text: &str) -> std::io::Result<()> {
    w.write_all(text.as_bytes())?;
    w.flush()
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

//! How commands print: diagnostics (rustc-style text on stderr, or inside
//! the one JSON document a command prints), reports as text or JSON,
//! failures, and colour (only on a terminal, never with `NO_COLOR`).
//!
//! Every byte goes through [`Output::write`]: a reader that went away
//! (`| head -1`, a broken pipe) ends the printing quietly and the command
//! exits as it would have; any other failure to write (a full disk behind
//! `> report.json`) is said on stderr and the command exits 2, so a cut
//! report never passes for a whole one.
//!
//! `--quiet` prints a report's [`Report::quiet_text`] and shows no
//! progress bar; a long run's bar ([`Output::progress`]) is cleared before
//! anything is printed.

use std::cell::{Cell, RefCell};
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::ProgressDrawTarget;

use crate::base::diagnostic::Diagnostics;
use crate::cli::args::Format;
use crate::cli::exit::{ExitCode, Failure};
use crate::cli::progress::Bar;
use crate::driver::{Compiled, Selection};
use crate::gitops;
use crate::input::load::Inputs;
use crate::validate::ValidSite;

/// A command's result as the command line shows it.
pub trait Report {
    /// The report for people: what goes to stdout, then what goes to stderr.
    fn text(&self) -> Text;
    /// The report for people with `--quiet`: no line per site, only what
    /// went wrong and the summary.
    fn quiet_text(&self) -> Text {
        self.text()
    }
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
    /// `--quiet`.
    quiet: bool,
    /// Whether stdout and stderr are terminals.
    stdout_terminal: bool,
    stderr_terminal: bool,
    /// When the command started.
    started: Instant,
    /// The progress bar of the running command, if it has one.
    bar: RefCell<Option<Arc<Bar>>>,
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
        let stderr_terminal = std::io::stderr().is_terminal();
        Output {
            format,
            color: !no_color && stderr_terminal,
            no_color,
            pending: Default::default(),
            stdout_failed: Default::default(),
            stderr_failed: Default::default(),
            write_error: Default::default(),
            quiet: false,
            stdout_terminal: std::io::stdout().is_terminal(),
            stderr_terminal,
            started: Instant::now(),
            bar: Default::default(),
        }
    }

    /// With `--quiet`: reports without their lines per site, and no
    /// progress bar.
    pub fn with_quiet(mut self, quiet: bool) -> Self {
        self.quiet = quiet;
        self
    }

    /// The progress bar of a long run of the command `what`: shown on a
    /// terminal, for many sites, without `--quiet`; hidden otherwise.
    pub fn progress(&self, what: &'static str) -> Arc<Bar> {
        let shown = !self.quiet && self.stderr_terminal;
        let bar = Arc::new(Bar::new(what, shown.then(ProgressDrawTarget::stderr)));
        if let Some(old) = self.bar.replace(Some(Arc::clone(&bar))) {
            old.finish();
        }
        bar
    }

    /// The progress bar goes (before a report, a failure, the end).
    fn end_progress(&self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
    }

    /// How long the command has run, for a summary line on stdout
    /// (`on_stdout`) or stderr: only in a text report to a terminal, so
    /// that what a pipe or a file gets is the same at every run.
    pub fn elapsed(&self, on_stdout: bool) -> Option<Duration> {
        let terminal = if on_stdout {
            self.stdout_terminal
        } else {
            self.stderr_terminal
        };
        (self.format == Format::Text && terminal).then(|| self.started.elapsed())
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
        let write = || match to {
            To::Stdout => write_locked(&mut std::io::stdout().lock(), text),
            To::Stderr => write_locked(&mut std::io::stderr().lock(), text),
        };
        let bar = self.bar.borrow().clone();
        let written = match bar {
            Some(bar) => bar.suspend(write),
            None => write(),
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
        self.end_progress();
        match self.format {
            Format::Text => {
                let text = if self.quiet {
                    report.quiet_text()
                } else {
                    report.text()
                };
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
        self.end_progress();
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
        self.end_progress();
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

/// ` in 3.2s` for a summary line, when `elapsed` is given.
pub fn took(elapsed: Option<Duration>) -> String {
    elapsed.map_or_else(String::new, |d| format!(" in {:.1}s", d.as_secs_f64()))
}

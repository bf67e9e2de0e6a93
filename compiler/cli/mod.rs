//! The command layer: the only code that knows clap, stdout, colour and
//! exit codes. [`args`] is the command line as parsed; each command has a
//! file of its own that takes plain options and returns a typed report,
//! which [`output`] prints as text or JSON; [`exit`] holds the exit codes
//! and the failure type.

pub mod args;
pub mod audit;
pub mod build;
pub mod check;
pub mod commit;
pub mod completions;
pub mod diff;
pub mod exit;
pub mod explain;
pub mod init;
pub mod man;
pub mod output;
pub mod own_file;
pub mod progress;
pub mod report;
pub mod report_page;
pub mod scaffold;
pub mod schema;

pub use args::{Cli, Command};
pub use exit::{ExitCode, Failure};

use std::path::{Path, PathBuf};

use args::{AuditArgs, BuildArgs, CommitArgs, DiffArgs, ExplainArgs};
use output::{Output, Report};

use crate::base::diagnostic::Diagnostics;
use crate::input::load::Inputs;

/// Run a parsed command line; its exit code.
pub fn run(cli: Cli) -> ExitCode {
    let out = Output::new(cli.format).with_quiet(cli.quiet);
    let code = match config_root(&cli, &out) {
        Ok(root) => dispatch(&root, cli.command, &out),
        Err(code) => code,
    };
    out.finish(code)
}

/// The config root the command works on: found from the working directory
/// up, or `--root`; a command that needs none gets `--root` or `.`. When
/// there is none, its one diagnostic is printed: the exit code.
fn config_root(cli: &Cli, out: &Output) -> Result<PathBuf, ExitCode> {
    if !cli.command.needs_root() {
        return Ok(cli.root.clone().unwrap_or_else(|| PathBuf::from(".")));
    }
    crate::input::root::locate(cli.root.as_deref()).map_err(|d| {
        let mut diags = Diagnostics::new();
        diags.push(*d);
        out.diagnostics(&diags, &Inputs::default());
        ExitCode::Invalid
    })
}

fn dispatch(root: &Path, command: Command, out: &Output) -> ExitCode {
    match command {
        Command::Check => print(out, check::run(root, out)),
        Command::Build(a) => build(root, a, out),
        Command::Explain(ExplainArgs { site, key }) => {
            let opts = explain::ExplainOptions { site, key };
            print(out, explain::run(root, &opts, out))
        }
        Command::Commit(a) => print(out, commit::run(root, &commit_options(a), out)),
        Command::Diff(DiffArgs {
            selection,
            branch_prefix,
            stat,
            exit_code,
        }) => {
            let opts = diff::DiffOptions {
                selection: selection.into(),
                branch_prefix,
                stat,
                exit_code,
            };
            print(out, diff::run(root, &opts, out))
        }
        Command::Audit(AuditArgs {
            sites,
            rev,
            branch_prefix,
        }) => {
            let opts = audit::AuditOptions {
                sites,
                rev,
                branch_prefix,
            };
            print(out, audit::run(root, &opts, out))
        }
        Command::Init(a) => print(out, init::run(a.dir.as_deref().unwrap_or(root))),
        Command::Schema => print(out, Ok(schema::SchemaReport)),
        Command::Completions(a) => print(out, Ok(completions::run(a.shell))),
        Command::Man(a) => print(out, man::run(a.out.as_deref())),
        Command::Report(a) => print(
            out,
            report::run(root, &report::ReportOptions { out: a.out }, out),
        ),
    }
}

fn build(root: &Path, a: BuildArgs, out: &Output) -> ExitCode {
    let opts = build::BuildOptions {
        selection: a.selection.into(),
        out: a.out,
        full: a.full,
    };
    if a.check {
        print(out, build::check(root, &opts, out))
    } else {
        print(out, build::run(root, &opts, out))
    }
}

fn commit_options(a: CommitArgs) -> commit::CommitOptions {
    commit::CommitOptions {
        selection: a.selection.into(),
        branch_prefix: a.branch_prefix,
        rollout_prefix: a.pr.then_some(a.rollout_prefix),
        dry_run: a.dry_run,
        force: a.force,
        ignore_waves: a.ignore_waves,
        retire: a.retire,
        allow_dirty: a.allow_dirty,
        out: a.out,
    }
}

/// Print a command's report or its failure; the exit code.
fn print<R: Report>(out: &Output, result: Result<R, Failure>) -> ExitCode {
    match result {
        Ok(report) => out.report(&report),
        Err(failure) => out.fail(&failure),
    }
}

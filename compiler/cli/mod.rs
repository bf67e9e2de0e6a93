//! The command line: argument parsing (clap) and the commands. Each command
//! returns its exit code: 0 success, 1 a check found differences, 2 invalid
//! input, usage, or a failure to read or write.

pub mod build;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::base::diagnostic::Diagnostics;
use crate::driver::{Compiled, analyze, read_inputs};
use crate::input::load::Inputs;
use crate::validate::ValidSite;

#[derive(Debug, Parser)]
#[command(
    name = "dify-cfg",
    version,
    about = "Compile Dify site profiles into deployable, reviewable site trees"
)]
pub struct Cli {
    /// The config repository (holds profiles/, sites/, templates/).
    #[arg(long, global = true, default_value = ".")]
    pub root: PathBuf,
    /// Report format for diagnostics and reports.
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate every profile and site; exit 2 with diagnostics if any is wrong.
    Check,
    /// Render site trees into the out directory.
    Build(BuildArgs),
    /// Print a site's effective configuration with the file:line that set each value.
    Explain(ExplainArgs),
    /// Commit each site's rendered tree on its site branch (git objects only;
    /// HEAD, the index and the working tree are not touched).
    Commit(CommitArgs),
    /// Show how a fresh render differs from each site branch.
    Diff(DiffArgs),
    /// Recompile each site branch's source commit and compare, file by file.
    Audit(AuditArgs),
}

/// Which sites a command works on: all, or those the options name.
#[derive(Debug, Default, clap::Args)]
pub struct Selection {
    /// Only the sites whose profile chain includes this profile (a name or a unique prefix).
    #[arg(long)]
    pub profile: Option<String>,
    /// Only this site (repeatable).
    #[arg(long = "site")]
    pub sites: Vec<String>,
    /// Only the sites of this rollout wave (1 is the canary).
    #[arg(long)]
    pub wave: Option<u32>,
}

#[derive(Debug, clap::Args)]
pub struct CommitArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// Site branches are `<prefix><site>`; default: each site's `gitops.branch-prefix` (`sites/`).
    #[arg(long)]
    pub branch_prefix: Option<String>,
    /// Commit to `<rollout-prefix><site>` on top of the site branch and write the
    /// pull request's title and body to `out/_rollout/<site>.{title,md}`.
    #[arg(long)]
    pub pr: bool,
    /// The prefix of rollout branches (with `--pr`).
    #[arg(long, default_value = "rollout/")]
    pub rollout_prefix: String,
    /// Show what would be committed; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Commit on top of a branch whose tip dify-cfg did not make.
    #[arg(long)]
    pub force: bool,
    /// Commit even though input files differ from HEAD (compiles the working tree).
    #[arg(long)]
    pub allow_dirty: bool,
    /// Where `--pr` writes `_rollout/`; default `out/` under the root.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// Site branches are `<prefix><site>`; default: each site's `gitops.branch-prefix`.
    #[arg(long)]
    pub branch_prefix: Option<String>,
    /// A summary per file instead of the full diff.
    #[arg(long)]
    pub stat: bool,
    /// Exit 1 when any site differs from its branch.
    #[arg(long)]
    pub exit_code: bool,
}

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Audit only this site's branch (repeatable).
    #[arg(long = "site")]
    pub sites: Vec<String>,
    /// Judge staleness against the sources at this revision.
    #[arg(long, default_value = "HEAD")]
    pub rev: String,
    /// Audit the branches `<prefix><site>` (`rollout/` audits open rollouts).
    #[arg(long, default_value = "sites/")]
    pub branch_prefix: String,
}

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// Where to write; default `out/` under the root.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write nothing; exit 1 if the out directory differs from a fresh build.
    #[arg(long)]
    pub check: bool,
    /// Render every selected site, even those whose out tree was built from
    /// the same inputs.
    #[arg(long)]
    pub full: bool,
}

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// The site to explain.
    #[arg(long)]
    pub site: String,
    /// Show only this key and what is under it, e.g. `services.api`.
    pub key: Option<String>,
}

/// How to print: colour only on a terminal and without `NO_COLOR`.
pub struct Output {
    pub format: Format,
    /// Colour for stderr (diagnostics).
    pub color: bool,
    /// `NO_COLOR` is set.
    no_color: bool,
    /// JSON mode: diagnostics waiting to go into the command's one report.
    pending: std::cell::RefCell<Vec<serde_json::Value>>,
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

    /// Print the command's JSON report, with the diagnostics collected so far.
    pub fn json(&self, value: &serde_json::Value) {
        let mut value = value.clone();
        if let Some(obj) = value.as_object_mut() {
            let pending: Vec<_> = self.pending.borrow_mut().drain(..).collect();
            obj.insert("diagnostics".into(), serde_json::Value::Array(pending));
        }
        let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
        text.push('\n');
        let _ = std::io::stdout().write_all(text.as_bytes());
    }

    pub fn error(&self, message: &str) {
        match self.format {
            Format::Text => eprintln!("error: {message}"),
            Format::Json => self.json(&serde_json::json!({ "error": message })),
        }
    }

    /// Print a compilation's diagnostics; then, when there are no errors,
    /// the sites `selection` names. `None`: errors were printed (exit 2).
    pub fn chosen<'c>(
        &self,
        compiled: &'c Compiled,
        selection: &Selection,
    ) -> Option<Vec<&'c ValidSite>> {
        self.diagnostics(&compiled.diagnostics, &compiled.inputs);
        if compiled.diagnostics.has_errors() {
            return None;
        }
        match compiled.select(selection) {
            Ok(sites) => Some(sites),
            Err(e) => {
                self.error(&e.0);
                None
            }
        }
    }

    /// JSON mode: print diagnostics no report has carried yet.
    pub fn finish(&self) {
        if self.format == Format::Json && !self.pending.borrow().is_empty() {
            self.json(&serde_json::json!({}));
        }
    }
}

pub fn run(cli: Cli) -> i32 {
    let out = Output::new(cli.format);
    let code = match cli.command {
        Command::Check => check(&cli.root, &out),
        Command::Build(args) => crate::cli::build::run(&cli.root, &args, &out),
        Command::Explain(args) => explain(&cli.root, &args, &out),
        Command::Commit(args) => crate::gitops::commit(&cli.root, &args, &out),
        Command::Diff(args) => crate::gitops::diff(&cli.root, &args, &out),
        Command::Audit(args) => crate::gitops::audit(&cli.root, &args, &out),
    };
    out.finish();
    code
}

fn check(root: &std::path::Path, out: &Output) -> i32 {
    let (inputs, diags) = read_inputs(root);
    let mut analysis = crate::driver::analyze_lean(&inputs, diags);
    // Templates are inputs too: a template that does not parse fails `check`,
    // not only `build`.
    if let Err(d) = crate::render::Renderer::new(&inputs.sources, &inputs.templates) {
        analysis.diagnostics.extend(d);
    }
    out.diagnostics(&analysis.diagnostics, &inputs);
    if analysis.diagnostics.has_errors() {
        return 2;
    }
    match out.format {
        Format::Text => println!(
            "ok: {} profiles and {} sites are valid",
            inputs.profiles.len(),
            analysis.sites.len()
        ),
        Format::Json => out.json(&serde_json::json!({
            "ok": true,
            "sites": analysis.sites.iter().map(|s| s.site.name.clone()).collect::<Vec<_>>(),
            "waves": analysis.sites.iter().map(|s| s.site.wave).collect::<std::collections::BTreeSet<_>>(),
        })),
    }
    0
}

fn explain(root: &std::path::Path, args: &ExplainArgs, out: &Output) -> i32 {
    let (inputs, diags) = read_inputs(root);
    let analysis = analyze(&inputs, diags);
    let Some(rs) = analysis.resolved.iter().find(|r| r.name == args.site) else {
        out.diagnostics(&analysis.diagnostics, &inputs);
        let names: Vec<&str> = analysis.resolved.iter().map(|r| r.name.as_str()).collect();
        let hint = crate::base::diagnostic::did_you_mean(&args.site, names.iter().copied())
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        out.error(&format!("no site named `{}`{hint}", args.site));
        return 2;
    };
    let valid = analysis.sites.iter().find(|s| s.site.name == args.site);
    let entries = crate::driver::explain::entries(rs, valid, &inputs.sources, args.key.as_deref());
    if let Some(key) = &args.key
        && entries.is_empty()
    {
        out.error(&format!("site `{}` has no key `{key}`", args.site));
        return 2;
    }
    // The effective values are shown even when the fleet has errors: they
    // are what one needs to find the mistake. The exit code still says so.
    out.diagnostics(&analysis.diagnostics, &inputs);
    match out.format {
        Format::Text => print!(
            "{}",
            crate::driver::explain::to_text(&rs.name, &rs.chain, &entries)
        ),
        Format::Json => out.json(&serde_json::json!({
            "site": rs.name,
            "profile-chain": rs.chain,
            "entries": entries,
        })),
    }
    if analysis.diagnostics.has_errors() {
        2
    } else {
        0
    }
}

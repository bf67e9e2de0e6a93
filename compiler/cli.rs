//! The command line: argument parsing (clap) and the commands. Each command
//! returns its exit code: 0 success, 1 a check found differences, 2 invalid
//! input, usage, or a failure to read or write.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::diagnostic::Diagnostics;
use crate::load::Inputs;
use crate::pipeline::{analyze, read_inputs};

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
}

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Build the sites whose profile chain includes this profile (a name or a unique prefix).
    #[arg(long)]
    pub profile: Option<String>,
    /// Build only this site (repeatable).
    #[arg(long = "site")]
    pub sites: Vec<String>,
    /// Where to write; default `out/` under the root.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write nothing; exit 1 if the out directory differs from a fresh build.
    #[arg(long)]
    pub check: bool,
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
    pub color: bool,
}

impl Output {
    pub fn new(format: Format) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Output {
            format,
            color: !no_color && std::io::stderr().is_terminal(),
        }
    }

    /// Diagnostics go to stderr as text, or to stdout as one JSON document.
    pub fn diagnostics(&self, diags: &Diagnostics, inputs: &Inputs) {
        if diags.is_empty() {
            return;
        }
        match self.format {
            Format::Text => {
                let _ = std::io::stderr()
                    .write_all(diags.render_text(&inputs.sources, self.color).as_bytes());
            }
            Format::Json => self.json(&diags.to_json(&inputs.sources)),
        }
    }

    pub fn json(&self, value: &serde_json::Value) {
        let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
        text.push('\n');
        let _ = std::io::stdout().write_all(text.as_bytes());
    }

    pub fn error(&self, message: &str) {
        match self.format {
            Format::Text => eprintln!("error: {message}"),
            Format::Json => self.json(&serde_json::json!({ "error": message })),
        }
    }
}

pub fn run(cli: Cli) -> i32 {
    let out = Output::new(cli.format);
    match cli.command {
        Command::Check => check(&cli.root, &out),
        Command::Build(args) => crate::build::run(&cli.root, &args, &out),
        Command::Explain(args) => explain(&cli.root, &args, &out),
    }
}

fn check(root: &std::path::Path, out: &Output) -> i32 {
    let (inputs, diags) = read_inputs(root);
    let analysis = analyze(&inputs, diags);
    if analysis.diagnostics.has_errors() {
        out.diagnostics(&analysis.diagnostics, &inputs);
        return 2;
    }
    match out.format {
        Format::Text => {
            out.diagnostics(&analysis.diagnostics, &inputs);
            println!(
                "ok: {} profiles and {} sites are valid",
                inputs.profiles.len(),
                analysis.sites.len()
            );
        }
        Format::Json => {
            let mut report = analysis.diagnostics.to_json(&inputs.sources);
            report["ok"] = serde_json::Value::Bool(true);
            report["sites"] = analysis.sites.iter().map(|s| s.site.name.clone()).collect();
            out.json(&report);
        }
    }
    0
}

fn explain(root: &std::path::Path, args: &ExplainArgs, out: &Output) -> i32 {
    let (inputs, diags) = read_inputs(root);
    let analysis = analyze(&inputs, diags);
    let Some(rs) = analysis.resolved.iter().find(|r| r.name == args.site) else {
        out.diagnostics(&analysis.diagnostics, &inputs);
        let names: Vec<&str> = analysis.resolved.iter().map(|r| r.name.as_str()).collect();
        let hint = crate::diagnostic::did_you_mean(&args.site, names.iter().copied())
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        out.error(&format!("no site named `{}`{hint}", args.site));
        return 2;
    };
    let valid = analysis.sites.iter().find(|s| s.site.name == args.site);
    let entries = crate::explain::entries(rs, valid, &inputs.sources, args.key.as_deref());
    if let Some(key) = &args.key
        && entries.is_empty()
    {
        out.error(&format!("site `{}` has no key `{key}`", args.site));
        return 2;
    }
    match out.format {
        Format::Text => print!("{}", crate::explain::to_text(&rs.name, &rs.chain, &entries)),
        Format::Json => out.json(&serde_json::json!({
            "site": rs.name,
            "profile-chain": rs.chain,
            "entries": entries,
        })),
    }
    let site_errors = analysis.diagnostics.has_errors();
    if site_errors {
        out.diagnostics(&analysis.diagnostics, &inputs);
        return 2;
    }
    0
}

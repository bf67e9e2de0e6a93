//! The command line as clap parses it. Each command's arguments turn into
//! the plain options its command takes; nothing below `cli` sees clap.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::driver::Selection;

#[derive(Debug, Parser)]
#[command(
    name = "dify-cfg",
    version,
    about = "Compile Dify site profiles into deployable, reviewable site trees"
)]
pub struct Cli {
    /// The config repository (holds profiles/, sites/, templates/); default:
    /// the nearest folder, from here up, that holds profiles/.
    #[arg(long, global = true)]
    pub root: Option<PathBuf>,
    /// Report format for diagnostics and reports.
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Print only what went wrong and the summary: no line per site, no
    /// progress bar (JSON reports stay whole).
    #[arg(long, short, global = true)]
    pub quiet: bool,
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
    /// Make a new config repository that `check` and `build` accept; writes
    /// nothing if one of its files is there already.
    Init(InitArgs),
    /// Print the JSON Schema of profile and site files (for editors).
    Schema,
    /// Print a completion script for a shell.
    Completions(CompletionsArgs),
    /// Print the manual page (roff), or write a page per command into a directory.
    Man(ManArgs),
    /// Write the fleet report: one static HTML page of every site's wave,
    /// release, memory and connection budgets and who can reach what.
    Report(ReportArgs),
}

impl Command {
    /// Whether the command works on a config root (found from the working
    /// directory up, or named by `--root`).
    pub fn needs_root(&self) -> bool {
        matches!(
            self,
            Command::Check
                | Command::Build(_)
                | Command::Explain(_)
                | Command::Commit(_)
                | Command::Diff(_)
                | Command::Audit(_)
                | Command::Report(_)
        )
    }
}

/// Which sites a command works on: all, or those the options name.
#[derive(Debug, Default, clap::Args)]
pub struct SelectionArgs {
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

impl From<SelectionArgs> for Selection {
    fn from(a: SelectionArgs) -> Selection {
        Selection {
            profile: a.profile,
            sites: a.sites,
            wave: a.wave,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct CommitArgs {
    #[command(flatten)]
    pub selection: SelectionArgs,
    /// Site branches are `<prefix><site>`; default: each site's `gitops.branch-prefix` (`sites/`).
    #[arg(long)]
    pub branch_prefix: Option<String>,
    /// Commit to `<rollout-prefix><site>` on top of the site branch and write the
    /// pull request's title and body to `out/_rollout/<site>.{title,md}`; refused
    /// (exit 2) while a rollout branch of an earlier wave is not merged.
    #[arg(long)]
    pub pr: bool,
    /// The prefix of rollout branches (with `--pr`).
    #[arg(long, default_value = "rollout/")]
    pub rollout_prefix: String,
    /// Show what would be committed; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Commit on top of a branch whose tip dify-cfg did not make (without it,
    /// such a site is skipped and the command exits 1).
    #[arg(long)]
    pub force: bool,
    /// With `--pr`: propose even while rollout branches of an earlier wave are
    /// not merged into their site branches.
    #[arg(long, requires = "pr")]
    pub ignore_waves: bool,
    /// Archive each branch dify-cfg made for a site no longer in the sources as
    /// the tag `retired/<branch>`, and delete the branch.
    #[arg(long)]
    pub retire: bool,
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
    pub selection: SelectionArgs,
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
    pub selection: SelectionArgs,
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

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Where to make the config repository (created if missing); default:
    /// `--root`, else the current directory.
    pub dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Install it where the shell looks, e.g.:\n  \
    bash: dify-cfg completions bash > ~/.local/share/bash-completion/completions/dify-cfg\n  \
    zsh:  dify-cfg completions zsh > ~/.zfunc/_dify-cfg   (with fpath+=~/.zfunc before compinit)\n  \
    fish: dify-cfg completions fish > ~/.config/fish/completions/dify-cfg.fish")]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Write `dify-cfg.1` and a page per command (`dify-cfg-build.1`, ...)
    /// into this directory, replacing only pages dify-cfg wrote.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Where to write the page; default `out/report.html` under the root;
    /// `-` prints it. An existing file is replaced only if `report` wrote it.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

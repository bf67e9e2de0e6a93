//! How a command ends: its exit code, and why it failed when it did.

use crate::driver::SelectionError;
use crate::emit::EmitError;
use crate::git::GitError;
use crate::gitops;

/// The exit codes of the command-line contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// The command did what it was asked.
    Success = 0,
    /// A check found differences or drift (`build --check`, `diff
    /// --exit-code`, `audit`).
    Differs = 1,
    /// Invalid input or usage, or a failure to read or write.
    Invalid = 2,
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code as u8)
    }
}

/// Why a command could not do its work; it exits [`ExitCode::Invalid`].
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The inputs have errors; their diagnostics were printed already.
    #[error("the inputs have errors")]
    Diagnosed,
    #[error(transparent)]
    Selection(#[from] SelectionError),
    #[error(transparent)]
    Emit(#[from] EmitError),
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Gitops(#[from] gitops::Error),
    /// `explain`: no site by that name.
    #[error("no site named `{site}`{hint}")]
    NoSite { site: String, hint: String },
    /// `explain`: the site has no such key.
    #[error("site `{site}` has no key `{key}`{hint}")]
    NoKey {
        site: String,
        key: String,
        hint: String,
    },
    /// `man --out`: a page could not be written.
    #[error("cannot write the manual page {}: {why}", path.display())]
    ManPage {
        path: std::path::PathBuf,
        why: String,
    },
    #[error(transparent)]
    Init(#[from] crate::cli::scaffold::InitError),
    #[error(transparent)]
    Report(#[from] crate::cli::report_page::ReportError),
}

//! The front half of a compilation, shared by every command: load, parse,
//! resolve and validate the whole fleet, from the working tree or from a
//! commit.

use std::path::Path;

use git2::Oid;

use crate::base::codes::Code;
use crate::base::diagnostic::{Diagnostic, Diagnostics};
use crate::git::{GitError, Repo};
use crate::input::load::{InputSource, Inputs, ReadError, WorkTree, load, load_from};
use crate::input::resolve::{ResolvedSite, resolve, resolve_each};
use crate::validate::{Sharing, ValidSite, validate_fleet, validate_site};

/// The fleet after validation. `sites` holds the sites that passed; when
/// `diagnostics` has errors the caller must not emit anything.
pub struct Analysis<'a> {
    pub resolved: Vec<ResolvedSite<'a>>,
    pub sites: Vec<ValidSite>,
    pub diagnostics: Diagnostics,
}

/// Read the inputs under `root` (line ends as [`LfLines`] reads them).
pub fn read_inputs(root: &Path) -> (Inputs, Diagnostics) {
    let mut diags = Diagnostics::new();
    let inputs = match root.canonicalize() {
        Ok(_) => load_from(&LfLines(&WorkTree::new(root)), &mut diags),
        // `load` says why the root cannot be read.
        Err(_) => load(root, &mut diags),
    };
    (inputs, diags)
}

/// An input source whose files are read with CRLF line ends as LF, as git
/// stores text. A checkout with `core.autocrlf` (or `eol=crlf`) has CRLF
/// files whose commits hold LF; `build` and `diff` read the working tree,
/// `commit` and `audit` a commit, and both must compile the same inputs.
/// Inputs are line-based text (TOML, templates), every output is LF, and a
/// `\r` before a line end moves no `path:line:col`.
struct LfLines<'a>(&'a dyn InputSource);

impl InputSource for LfLines<'_> {
    fn describe(&self) -> String {
        self.0.describe()
    }

    fn has_dir(&self, dir: &str) -> bool {
        self.0.has_dir(dir)
    }

    fn files(&self, dir: &str) -> Result<Vec<String>, String> {
        self.0.files(dir)
    }

    fn read(&self, rel: &str) -> Result<Vec<u8>, ReadError> {
        self.0.read(rel).map(crlf_to_lf)
    }
}

/// `bytes` with every CRLF as LF (a lone CR stays).
fn crlf_to_lf(bytes: Vec<u8>) -> Vec<u8> {
    if !bytes.windows(2).any(|w| w == b"\r\n") {
        return bytes;
    }
    let mut out = Vec::with_capacity(bytes.len());
    for (i, &b) in bytes.iter().enumerate() {
        if !(b == b'\r' && bytes.get(i + 1) == Some(&b'\n')) {
            out.push(b);
        }
    }
    out
}

/// Parse, resolve and validate every site of the fleet. The sites hold what
/// they have alike once ([`Sharing`]).
pub fn analyze(inputs: &Inputs, mut diagnostics: Diagnostics) -> Analysis<'_> {
    let fleet = resolve(inputs, &mut diagnostics);
    let mut sites = Vec::with_capacity(fleet.sites.len());
    let mut sharing = Sharing::default();
    for rs in &fleet.sites {
        if let Some(mut v) = validate_site(rs, &inputs.sources, &mut diagnostics) {
            sharing.share(&mut v);
            sites.push(v);
        }
    }
    finish(inputs, fleet.sites, sites, diagnostics)
}

/// The fleet-wide checks, then the analysis.
fn finish<'a>(
    inputs: &'a Inputs,
    resolved: Vec<ResolvedSite<'a>>,
    sites: Vec<ValidSite>,
    mut diagnostics: Diagnostics,
) -> Analysis<'a> {
    validate_fleet(&sites, &inputs.sources, &mut diagnostics);
    if inputs.sites.is_empty() && !diagnostics.has_errors() {
        diagnostics.push(
            Diagnostic::error(Code::NoSites, "there are no sites to build")
                .help("add a file per site under `sites/`, e.g. `sites/clinic-01.toml` with `profile = \"edge-4gb\"`"),
        );
    }
    Analysis {
        resolved,
        sites,
        diagnostics: diagnostics.sorted(),
    }
}

/// [`analyze`] without keeping the merged trees: each site is validated as
/// soon as it is resolved and its tree dropped, so memory grows with the
/// typed sites only. `resolved` is empty; `explain` uses [`analyze`].
fn analyze_lean(inputs: &Inputs, mut diagnostics: Diagnostics) -> Analysis<'_> {
    let mut sites = Vec::with_capacity(inputs.sites.len());
    let mut sharing = Sharing::default();
    resolve_each(inputs, &mut diagnostics, |rs, diags| {
        if let Some(mut v) = validate_site(&rs, &inputs.sources, diags) {
            sharing.share(&mut v);
            sites.push(v);
        }
    });
    finish(inputs, Vec::new(), sites, diagnostics)
}

/// The fleet compiled from one source (the working tree or a commit): the
/// inputs and the sites that validated. What every command but `explain`
/// starts from.
pub struct Compiled {
    pub inputs: Inputs,
    pub sites: Vec<ValidSite>,
    pub diagnostics: Diagnostics,
}

impl Compiled {
    /// The inputs of a commit, from git objects (line ends as [`LfLines`]
    /// reads them).
    pub fn at_commit(repo: &Repo, commit: Oid) -> Result<Compiled, GitError> {
        let tree = repo.inputs_at(commit)?;
        let mut diags = Diagnostics::new();
        let inputs = load_from(&LfLines(&tree), &mut diags);
        Ok(Compiled::from_inputs(inputs, diags))
    }

    /// The inputs under `root` on disk.
    pub fn read(root: &Path) -> Compiled {
        let (inputs, diags) = read_inputs(root);
        Compiled::from_inputs(inputs, diags)
    }

    pub fn from_inputs(inputs: Inputs, diags: Diagnostics) -> Compiled {
        let (sites, diagnostics) = {
            let a = analyze_lean(&inputs, diags);
            (a.sites, a.diagnostics)
        };
        Compiled {
            inputs,
            sites,
            diagnostics,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::crlf_to_lf;

    #[test]
    fn crlf_line_ends_read_as_lf_and_a_lone_cr_stays() {
        assert_eq!(
            crlf_to_lf(b"a = 1\r\nb = 2\r\n".to_vec()),
            b"a = 1\nb = 2\n"
        );
        assert_eq!(crlf_to_lf(b"a\rb\r\r\n".to_vec()), b"a\rb\r\n");
        assert_eq!(crlf_to_lf(b"plain\n".to_vec()), b"plain\n");
    }
}

//! `dify-cfg man`: the manual, as roff, generated from the command line as
//! clap parses it (clap_mangen): the main page on stdout, or with `--out
//! DIR` the main page and one page per command (`dify-cfg-build.1`, ...).
//! The main page adds the exit status and the environment. A file in the
//! way that is not a page dify-cfg wrote is never replaced: nothing is
//! written then.

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_mangen::Man;
use roff::{Roff, bold, roman};

use crate::cli::args::Cli;
use crate::cli::exit::Failure;
use crate::cli::output::{Report, Text};
use crate::cli::own_file::{self, InTheWay};

/// One manual page.
pub struct Page {
    /// Its file name, `dify-cfg-build.1`.
    pub name: String,
    pub roff: String,
}

/// What `man` made: the pages, and where they were written (`None`: the
/// main page goes to stdout).
pub struct ManReport {
    pub pages: Vec<Page>,
    pub dir: Option<PathBuf>,
}

/// The main page, then a page per command, in the order of `--help`.
pub fn pages() -> Vec<Page> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut out = Vec::new();
    collect(&cmd, true, &mut out);
    out
}

fn collect(cmd: &clap::Command, top: bool, out: &mut Vec<Page>) {
    let man = Man::new(cmd.clone()).source(concat!("dify-cfg ", env!("CARGO_PKG_VERSION")));
    let mut bytes = Vec::new();
    // A `Vec` takes every write.
    let _ = man.render(&mut bytes);
    let mut roff = String::from_utf8_lossy(&bytes).into_owned();
    if top {
        // Before the VERSION section, which clap_mangen puts last.
        let at = roff.find("\n.SH VERSION\n").map_or(roff.len(), |i| i + 1);
        roff.insert_str(at, &extra_sections());
    }
    out.push(Page {
        name: man.get_filename(),
        roff,
    });
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        collect(sub, false, out);
    }
}

/// EXIT STATUS and ENVIRONMENT, for the main page.
fn extra_sections() -> String {
    let mut r = Roff::new();
    r.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in [
        ("0", "Success."),
        (
            "1",
            "Differences: build --check or diff --exit-code found some, audit found a branch that is not reproducible, or commit skipped a site whose branch dify-cfg did not make.",
        ),
        (
            "2",
            "Invalid input or usage (the diagnostics were printed), a failure to read or write, or a commit refused before any branch moved.",
        ),
    ] {
        r.control("TP", [])
            .text([bold(code)])
            .text([roman(meaning)]);
    }
    r.control("SH", ["ENVIRONMENT"]);
    r.control("TP", []).text([bold("NO_COLOR")]).text([roman(
        "Set and not empty: no colour. Colour is used only on a terminal.",
    )]);
    r.to_roff()
}

/// The pages, written into `dir` when one is given.
pub fn run(dir: Option<&Path>) -> Result<ManReport, Failure> {
    let pages = pages();
    if let Some(dir) = dir {
        write(dir, &pages)?;
    }
    Ok(ManReport {
        pages,
        dir: dir.map(Path::to_path_buf),
    })
}

/// Whether `text` is a page dify-cfg wrote: its title is dify-cfg's or
/// one of its commands' (`dify-cfg-build`).
fn ours(text: &str) -> bool {
    text.lines()
        .take(4)
        .filter_map(|l| l.strip_prefix(".TH dify-cfg"))
        .any(|rest| rest.starts_with([' ', '-']))
}

/// Write every page into `dir`, each through a temporary file renamed
/// into place; first make sure that no file in the way is someone else's.
fn write(dir: &Path, pages: &[Page]) -> Result<(), Failure> {
    let fail = |path: &Path, why: String| Failure::ManPage {
        path: path.to_path_buf(),
        why,
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(dir, e.to_string()))?;
    for p in pages {
        let path = dir.join(&p.name);
        own_file::may_replace(&path, |bytes| ours(&String::from_utf8_lossy(bytes))).map_err(
            |w| match w {
                InTheWay::Io(e) => fail(&path, e.to_string()),
                InTheWay::NotAFile | InTheWay::NotOurs => fail(
                    &path,
                    "it is in the way and is not a page dify-cfg wrote; move it, or choose another `--out`".into(),
                ),
            },
        )?;
    }
    for p in pages {
        let path = dir.join(&p.name);
        own_file::replace(&path, p.roff.as_bytes()).map_err(|e| fail(&path, e.to_string()))?;
    }
    Ok(())
}

impl Report for ManReport {
    fn text(&self) -> Text {
        let Some(dir) = &self.dir else {
            let stdout = self.pages.first().map(|p| p.roff.clone());
            return Text {
                stdout: stdout.unwrap_or_default(),
                stderr: String::new(),
            };
        };
        let mut text = self.quiet_text();
        for p in &self.pages {
            text.stdout
                .push_str(&format!("{}\n", dir.join(&p.name).display()));
        }
        text
    }

    fn quiet_text(&self) -> Text {
        match &self.dir {
            None => self.text(),
            Some(dir) => Text {
                stdout: String::new(),
                stderr: format!(
                    "wrote {} manual pages into {}\n",
                    self.pages.len(),
                    dir.display()
                ),
            },
        }
    }

    fn json(&self) -> serde_json::Value {
        match &self.dir {
            None => serde_json::json!({ "page": self.pages.first().map(|p| &p.roff) }),
            Some(dir) => serde_json::json!({
                "out": dir.display().to_string(),
                "written": self.pages.iter().map(|p| &p.name).collect::<Vec<_>>(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_per_command_and_the_main_page_says_how_it_exits() {
        let pages = pages();
        let names: Vec<&str> = pages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names[0], "dify-cfg.1");
        for command in ["check", "build", "explain", "commit", "diff", "audit"] {
            assert!(
                names.contains(&format!("dify-cfg-{command}.1").as_str()),
                "{names:?}"
            );
        }
        assert!(!names.iter().any(|n| n.contains("help")), "{names:?}");
        let main = &pages[0].roff;
        let status = main.find(".SH \"EXIT STATUS\"").expect(main);
        let version = main.find(".SH VERSION").expect(main);
        assert!(status < version, "{main}");
        assert!(main.contains("dify\\-cfg\\-build(1)"), "{main}");
        assert!(pages.iter().all(|p| ours(&p.roff)), "a page not ours");
        assert!(!ours(".TH ls 1\n"));
        assert!(!ours(".TH dify-cfgx 1\n"));
        let check = pages.iter().find(|p| p.name == "dify-cfg-check.1").unwrap();
        assert!(
            check
                .roff
                .contains(".TH dify-cfg-check 1  \"dify-cfg 0.1.0\""),
            "{}",
            check.roff
        );
    }
}

//! Every command that prints, printing into a reader that went away
//! (`dify-cfg audit | head -1`): no panic, no message about the pipe, the
//! exit code the command has when its output is read. A stream that fails
//! otherwise (a full disk behind `> report.json`) is said, and exits 2.
//!
//! The reader is closed before the command starts (the read end of a pipe
//! dropped), so every write to that stream fails with `EPIPE`: no race
//! with a reader that exits at some point.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::support;

const BIN: &str = env!("CARGO_BIN_EXE_dify-cfg");

/// Which streams a run writes into a pipe whose reader is gone.
#[derive(Debug, Clone, Copy)]
enum Closed {
    Stdout,
    Stderr,
    Both,
}

/// How a run ended: its exit code and the streams that were not closed.
#[derive(Debug, PartialEq)]
struct Ended {
    code: Option<i32>,
    stdout: Option<String>,
    stderr: Option<String>,
}

/// A pipe whose reader is gone: its write end.
fn closed_pipe() -> std::io::PipeWriter {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    writer
}

/// Run `args` in `root` with `closed` streams into a closed pipe (none:
/// both into files), the others into files.
fn run(root: &Path, args: &[String], closed: Option<Closed>, scratch: &Path) -> Ended {
    let (out_closed, err_closed) = match closed {
        None => (false, false),
        Some(Closed::Stdout) => (true, false),
        Some(Closed::Stderr) => (false, true),
        Some(Closed::Both) => (true, true),
    };
    let out_file = scratch.join("stdout");
    let err_file = scratch.join("stderr");
    let stream = |closed: bool, file: &Path| -> Stdio {
        if closed {
            closed_pipe().into()
        } else {
            fs::File::create(file).unwrap().into()
        }
    };
    let status = Command::new(BIN)
        .current_dir(root)
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(stream(out_closed, &out_file))
        .stderr(stream(err_closed, &err_file))
        .status()
        .expect("cannot start dify-cfg");
    let read = |closed: bool, file: &Path| (!closed).then(|| fs::read_to_string(file).unwrap());
    Ended {
        code: status.code(),
        stdout: read(out_closed, &out_file),
        stderr: read(err_closed, &err_file),
    }
}

/// The example fleet in a git repository, its site branches committed.
fn fleet_repo() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    support::copy_fleet(tmp.path());
    support::init_repo(tmp.path(), "fleet");
    support::assert_ok(support::dify_cfg(&["commit"], tmp.path()), "commit");
    tmp
}

#[test]
fn every_command_ends_quietly_when_its_reader_is_gone() {
    let repo = fleet_repo();
    let root = repo.path();
    let scratch = tempfile::tempdir().unwrap();
    let commands: &[&[&str]] = &[
        &["check"],
        &["build", "--out", "OUT"],
        &["explain", "--site", "clinic-01"],
        &["diff"],
        &["audit"],
        // Failures, said on stderr.
        &["explain", "--site", "nope"],
        &["build", "--site", "nope", "--out", "OUT"],
        // Generated text, and a quiet run.
        &["completions", "bash"],
        &["man"],
        &["man", "--out", "OUT"],
        &["--quiet", "build", "--out", "OUT"],
    ];
    let mut failures = Vec::new();
    let out_dir = scratch.path().join("out");
    for command in commands {
        for format in ["text", "json"] {
            let mut args = vec!["--format".to_string(), format.to_string()];
            args.extend(command.iter().map(|a| match *a {
                "OUT" => out_dir.display().to_string(),
                a => a.to_string(),
            }));
            // Every build starts from no out directory, so that each one
            // writes (and says) the same.
            let run = |closed| {
                let _ = fs::remove_dir_all(&out_dir);
                run(root, &args, closed, scratch.path())
            };
            let reference = run(None);
            let what = format!("dify-cfg --format {format} {}", command.join(" "));
            if reference.stdout.as_deref().is_none_or(str::is_empty)
                && reference.stderr.as_deref().is_none_or(str::is_empty)
            {
                failures.push(format!("{what}: prints nothing, so the test shows nothing"));
            }
            for closed in [Closed::Stdout, Closed::Stderr, Closed::Both] {
                let got = run(Some(closed));
                let mut problems = Vec::new();
                if got.code != reference.code {
                    problems.push(format!(
                        "exit {:?}, {:?} when read",
                        got.code, reference.code
                    ));
                }
                // What still reaches the open stream is what it says when read.
                match closed {
                    Closed::Stdout if got.stderr != reference.stderr => {
                        problems.push(format!("stderr: {:?}", got.stderr))
                    }
                    Closed::Stderr if got.stdout != reference.stdout => {
                        problems.push(format!("stdout: {:?}", got.stdout))
                    }
                    _ => {}
                }
                if !problems.is_empty() {
                    failures.push(format!(
                        "{what}, {closed:?} closed: {}",
                        problems.join("; ")
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_report_that_cannot_be_written_is_said_and_exits_2() {
    let full = Path::new("/dev/full");
    if !support::available("/dev/full", full.exists(), "a stdout that fails to write") {
        return;
    }
    let root = support::repo();
    for args in [&["--format", "json", "check"][..], &["check"][..]] {
        let out = Command::new(BIN)
            .current_dir(root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(fs::OpenOptions::new().write(true).open(full).unwrap())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("error: cannot write to stdout: No space left on device"),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

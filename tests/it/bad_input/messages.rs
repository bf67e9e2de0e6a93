//! The whole message a user sees for every case of the bad-input corpus:
//! one insta snapshot per case, `snapshots/<code>__<case>.snap`, holding
//! the exit code, stdout and stderr of the case's command (`build` unless
//! `case.toml` says `check`) run with text output (`NO_COLOR=1`) and with
//! `--format json`. The command runs in the case's root without `--root`
//! (it finds the root it runs in), so the paths it prints are the relative
//! ones a user sees;
//! the temp directory is redacted as `[TMP]` should any message name it.
//! Review changes with `cargo insta review`.

use std::path::Path;

use super::{Case, CaseDirs, Run, apply_case, cases, for_cases, run_in};

/// The snapshot name of `case`: `<code>__<case>`.
fn snapshot_name(case: &Case) -> String {
    case.name.replace('/', "__")
}

/// A stream for the snapshot: its text, or `(empty)`.
fn stream(text: &str) -> &str {
    if text.is_empty() { "(empty)\n" } else { text }
}

/// One run's section of the snapshot.
fn section(title: &str, run: &Run) -> String {
    let code = run
        .code
        .map_or_else(|| "none (killed)".to_string(), |c| c.to_string());
    format!(
        "== {title}\nexit: {code}\n-- stdout\n{}-- stderr\n{}",
        stream(&run.stdout),
        stream(&run.stderr)
    )
}

/// Apply `case` to a copy of `_base` and run its command with text and with
/// JSON output; the snapshot text of both runs, with the temp dir redacted.
fn messages(case: &Case) -> String {
    let dirs = CaseDirs::new();
    let (root, outside, scratch) = (&dirs.root, &dirs.outside, &dirs.scratch);
    let command = apply_case(case, root, outside);
    let text = run_in(root, &[command], scratch, "text");
    let json = run_in(root, &["--format", "json", command], scratch, "json");
    let report = format!(
        "{}{}",
        section(&format!("dify-cfg {command}"), &text),
        section(&format!("dify-cfg --format json {command}"), &json)
    );
    redact(&report, dirs.tmp.path())
}

/// `text` with every spelling of `tmp` (as given and canonical) as `[TMP]`.
fn redact(text: &str, tmp: &Path) -> String {
    let mut out = text.to_string();
    let canonical = tmp.canonicalize().unwrap();
    for dir in [canonical.as_path(), tmp] {
        out = out.replace(dir.to_str().unwrap(), "[TMP]");
    }
    out
}

#[test]
fn every_bad_input_message_matches_its_snapshot() {
    let cases = cases();
    let texts = for_cases(&cases, messages);
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    // Every mismatch is written as a `.snap.new` before the test fails, so
    // that `cargo insta review` shows them all at once.
    let mut failed = Vec::new();
    settings.bind(|| {
        for (case, text) in cases.iter().zip(&texts) {
            let name = snapshot_name(case);
            let checked = std::panic::catch_unwind(|| insta::assert_snapshot!(name, text));
            if checked.is_err() {
                failed.push(case.name.clone());
            }
        }
    });
    assert!(
        failed.is_empty(),
        "{} of {} bad-input messages differ from their snapshots: {}",
        failed.len(),
        cases.len(),
        failed.join(", ")
    );
}

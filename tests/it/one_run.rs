//! Every mistake that can be known is reported in one run. A site file of
//! the example fleet gets mistakes of every stage (an unknown profile,
//! unknown keys, a wrong type, a bad CIDR, a bad unit), each on a line of
//! its own and of the same place whatever the others; every combination
//! of them must report exactly the errors each reports alone: none hidden
//! behind another (a second run would find it), none made up by another.

use std::collections::BTreeMap;

use crate::support::fleet_files;

/// One line of the site file, right and with a mistake.
struct Line {
    good: &'static str,
    bad: &'static str,
}

const fn line(good: &'static str, bad: &'static str) -> Line {
    Line { good, bad }
}

/// The site file: lines without a second form are the same in every run.
const SITE: &[Line] = &[
    line("# Branch clinic 01, with mistakes.", ""),
    line("profile = \"multi-branch\"", "profile = \"multi-brnach\""),
    line(
        "description = \"Branch clinic 01\"",
        "descripton = \"Branch clinic 01\"",
    ),
    line("[network]", ""),
    line("hostname = \"clinic-01.clinics.example.org\"", ""),
    line("lan = \"10.20.1.0/24\"", "lan = \"10.20.1.0/33\""),
    line("address = \"10.20.1.10\"", ""),
    line("ssh-port = 22", "ssh-port = \"22\""),
    line("[services.api]", ""),
    line("memory = \"640MiB\"", "memory = \"640MB\""),
    line("cpus = 1", "cpsu = 1"),
];

/// The site file with the mistakes of `chosen` (indices into the lines
/// that have one).
fn site(chosen: &[usize]) -> String {
    let mut n = 0;
    let mut out = String::new();
    for l in SITE {
        let text = if l.bad.is_empty() {
            l.good
        } else {
            n += 1;
            if chosen.contains(&(n - 1)) {
                l.bad
            } else {
                l.good
            }
        };
        out.push_str(text);
        out.push('\n');
    }
    out
}

/// The example fleet's profiles (its sites left out).
fn profiles() -> BTreeMap<String, Vec<u8>> {
    let mut files = fleet_files();
    files.retain(|p, _| !p.starts_with("sites/"));
    files
}

/// The errors of the `profiles` with `site` as clinic-01: code, place and
/// message, sorted.
fn errors(profiles: &BTreeMap<String, Vec<u8>>, site: String) -> Vec<String> {
    let mut files = profiles.clone();
    files.insert("sites/clinic-01.toml".into(), site.into_bytes());
    let src = dify_cfg::internals::MemTree { files };
    let mut diags = dify_cfg::Diagnostics::new();
    let inputs = dify_cfg::internals::load_from(&src, &mut diags);
    let analysis = dify_cfg::internals::analyze(&inputs, diags);
    let mut out: Vec<String> = analysis
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| {
            let at = d
                .span
                .as_ref()
                .map(|s| inputs.sources.location(s).to_string());
            format!("{}[{}] {}", at.unwrap_or_default(), d.code, d.message)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn every_combination_of_mistakes_reports_what_each_reports_alone() {
    let mistakes = SITE.iter().filter(|l| !l.bad.is_empty()).count();
    let profiles = profiles();
    let errors = |site| errors(&profiles, site);
    assert!(errors(site(&[])).is_empty(), "{:?}", errors(site(&[])));
    let alone: Vec<Vec<String>> = (0..mistakes).map(|i| errors(site(&[i]))).collect();
    for (i, found) in alone.iter().enumerate() {
        assert_eq!(found.len(), 1, "mistake {i} alone: {found:?}");
    }
    let mut failures = BTreeMap::new();
    for set in 1..(1u32 << mistakes) {
        let chosen: Vec<usize> = (0..mistakes).filter(|i| set & (1 << i) != 0).collect();
        let mut want: Vec<String> = chosen.iter().flat_map(|i| alone[*i].clone()).collect();
        want.sort();
        let got = errors(site(&chosen));
        if got != want {
            failures.insert(
                format!("{chosen:?}"),
                format!("got {got:#?}\nwant {want:#?}"),
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} combinations differ from their mistakes alone; the first:\n{:?}",
        failures.len(),
        (1u32 << mistakes) - 1,
        failures.iter().next()
    );
}

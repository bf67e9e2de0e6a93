//! What dify-cfg writes for people about a site's commit: the commit
//! message with its audit trailers, the first commit of a new site branch,
//! and the pull-request body of a rollout (markdown in which no input
//! string can become markup).

use git2::Oid;

use crate::gitops::branch::{COMPILER_TRAILER, DIRTY_TRAILER, SOURCE_TRAILER, compiler_id};
use crate::gitops::changes::{Summary, Upgrade};
use crate::validate::ValidSite;

/// What a rollout's pull request proposes: the commit on the rollout
/// branch `branch`, to be merged into the site branch `base`.
pub struct Proposal<'a> {
    pub subject: &'a str,
    pub branch: &'a str,
    pub base: &'a str,
    pub summary: &'a Summary,
}

/// The message of the empty first commit of a new site branch.
pub fn start_message(v: &ValidSite) -> String {
    format!(
        "{}: start the site branch\n\nAn empty tree: the site's first render arrives as a pull request\ninto this branch.\n\n{COMPILER_TRAILER}: {}\n",
        v.site.name,
        compiler_id()
    )
}

pub fn commit_message(
    subject: &str,
    summary: &Summary,
    source: Oid,
    (input, output): &(String, String),
    dirty: bool,
) -> String {
    let mut m = format!("{subject}\n\nChanged files:\n");
    for line in summary.file_lines() {
        m.push_str(&format!("  {line}\n"));
    }
    if let Some(u) = &summary.upgrade {
        m.push_str(&format!("\nUpgrade: {}\n", u.title()));
        for (depth, line) in u.lines() {
            m.push_str(&format!("{:width$}{line}\n", "", width = 2 + 2 * depth));
        }
    }
    m.push_str("\nRisk flags:");
    if summary.risks.is_empty() {
        m.push_str(" none (no ports, routes, proxy rules, images, memory limits or firewall rules change)\n");
    } else {
        m.push('\n');
        for r in &summary.risks {
            m.push_str(&format!("  - {r}\n"));
        }
    }
    m.push_str(&format!(
        "\n{SOURCE_TRAILER}: {source}\nInput-Digest: {input}\nOutput-Digest: {output}\n{COMPILER_TRAILER}: {}\n",
        compiler_id()
    ));
    if dirty {
        m.push_str(&format!("{DIRTY_TRAILER}: true\n"));
    }
    m
}

/// Markdown that cannot be mistaken for markup: code spans can hold
/// anything but backticks and line breaks.
fn md_code(s: &str) -> String {
    format!("`{}`", s.replace(['`', '\n', '\r'], " "))
}

fn md_text(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\`*_[]<>|".contains(c) {
            out.push('\\');
        }
        if c == '\n' || c == '\r' {
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out
}

pub fn pr_body(
    v: &ValidSite,
    entry: &Proposal<'_>,
    source: Oid,
    (input, output): &(String, String),
) -> String {
    let base = entry.base;
    let mut b = format!("# {}\n\n", md_text(entry.subject));
    b.push_str(&format!(
        "Rollout of site {} (wave {}, profiles {}, Dify {}), compiled by {} from source commit {}.\n\
         Merging this pull request into {} is the approval: the site applies that branch and nothing else.\n\n",
        md_code(&v.site.name),
        v.site.wave,
        md_code(&v.site.profile_chain.join(" <- ")),
        md_code(&v.site.dify_version),
        compiler_id(),
        md_code(&source.to_string()),
        md_code(base),
    ));
    b.push_str("## Risk flags\n\n");
    if entry.summary.risks.is_empty() {
        b.push_str(
            "None: no port, route, proxy rule, image, memory limit or firewall rule changes.\n\n",
        );
    } else {
        for r in &entry.summary.risks {
            b.push_str(&format!("- **{}**: {}\n", r.label(), md_code(&r.detail())));
        }
        b.push('\n');
    }
    if let Some(u) = &entry.summary.upgrade {
        upgrade_section(&mut b, u);
    }
    b.push_str(
        "## Files\n\n| File | Change | Lines added | Lines removed |\n|---|---|---:|---:|\n",
    );
    for f in &entry.summary.files {
        b.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            md_code(&f.path),
            f.kind.word(),
            f.lines_added,
            f.lines_removed
        ));
    }
    b.push_str(&format!(
        "\n## Audit\n\n| Trailer | Value |\n|---|---|\n| Source-Commit | {} |\n| Input-Digest | {} |\n| Output-Digest | {} |\n| Compiler | {} |\n\n\
         Check that this branch is exactly what the sources produce:\n\n\
         ```sh\ndify-cfg audit --site {} --branch-prefix {}\n```\n",
        md_code(&source.to_string()),
        md_code(input),
        md_code(output),
        md_code(&compiler_id()),
        v.site.name,
        entry.branch.trim_end_matches(&v.site.name),
    ));
    b
}

/// The pull request's Upgrade section: every line of [`Upgrade::lines`]
/// as a list item (names and values as code), with the migrations' risk
/// and the telemetry said in words.
fn upgrade_section(b: &mut String, u: &Upgrade) {
    b.push_str(&format!("## Upgrade: {}\n\n", md_text(&u.title())));
    for (depth, line) in u.lines() {
        let text = match line.split_once(": ") {
            Some((head, rest)) if depth == 0 => format!("**{}**: {}", md_text(head), md_text(rest)),
            _ => md_code(&line),
        };
        b.push_str(&format!("{:width$}- {text}\n", "", width = 2 * depth));
    }
    b.push('\n');
}

/// The message of the tag that keeps a retired branch's tip: the facts
/// only (no date), so the same retirement gives the same tag anywhere.
/// `source`: the commit that removed the site's file (or the sources it
/// was found missing in, `dirty` when those are the working tree's).
pub fn retire_message(site: &str, branch: &str, tip: Oid, source: Oid, dirty: bool) -> String {
    let mut m = format!(
        "{branch}: retired, site {site} is no longer in the sources\n\nThe branch was deleted; this tag keeps its last commit.\n\nBranch: {branch}\nTip: {tip}\n{SOURCE_TRAILER}: {source}\n{COMPILER_TRAILER}: {}\n",
        compiler_id()
    );
    if dirty {
        m.push_str(&format!("{DIRTY_TRAILER}: true\n"));
    }
    m
}

//! One branch's verdict: its tip read and traced to the trailers that
//! vouch for it, its tree compared entry by entry with a recompile of the
//! source they name, then with what the audited revision renders. Every
//! failure to read or trace is this branch's verdict, with a note.

use std::collections::HashMap;

use git2::Oid;

use super::{AuditEntry, Current, Renders, Verdict};
use crate::git::read::{Entries, Entry, ObjectKind, SITE_FILE_MODE, site_entries};
use crate::git::{CommitInfo, Repo, short};
use crate::gitops::branch::{
    COMPILER_TRAILER, DIRTY_TRAILER, Record, SOURCE_TRAILER, Vouched, compiler_id, last_record,
    record_of,
};
use crate::gitops::changes::differing_keys;

const LINK_MODE: i32 = 0o120_000;
const GITLINK_MODE: i32 = 0o160_000;

/// What a branch's tree must equal.
enum Expect {
    /// Nothing can be compared: the verdict is decided.
    Decided,
    /// An empty tree: a branch's empty start has no source.
    Empty,
    /// The render of this source commit.
    Source(Oid),
}

/// A branch on its way to a verdict.
pub(super) struct Branch {
    pub entry: AuditEntry,
    /// The tip's tree, entry by entry; `None` when it cannot be read.
    pub tree: Option<Entries>,
    expect: Expect,
    /// The tip was made by hand on top of a dify-cfg commit, whose source
    /// the tree is compared with: it fails whatever the comparison says.
    by_hand: bool,
}

/// `Source-Commit` trailers already resolved: most branches share one.
pub(super) type Sources = HashMap<String, Result<Oid, String>>;

/// Read a branch's tip and what vouches for its tree.
pub(super) fn read_branch(
    repo: &Repo,
    sources: &mut Sources,
    prefix: &str,
    site: &str,
    tip: Oid,
) -> Branch {
    let mut b = Branch {
        entry: AuditEntry::new(site, format!("{prefix}{site}"), Some(tip)),
        tree: None,
        expect: Expect::Decided,
        by_hand: false,
    };
    let info = match repo.commit_info(tip) {
        Ok(info) => info,
        Err(e) => {
            b.unverifiable(format!("the tip cannot be read as a commit: {e}"));
            return b;
        }
    };
    match repo.tree_entries(info.tree) {
        Ok(t) => b.tree = Some(t),
        Err(e) => {
            b.unverifiable(format!("the tip's tree cannot be read: {e}"));
            return b;
        }
    }
    let record = match record_of(repo, &info) {
        Ok(Some(r)) => r,
        Ok(None) => match b.below_hand_commits(repo, &info) {
            Some(r) => r,
            None => return b,
        },
        Err(e) => {
            b.unverifiable(format!("the commits of the tip cannot be read: {e}"));
            return b;
        }
    };
    b.vouched_by(repo, sources, &info, &record);
    b
}

impl Branch {
    /// The commit whose render the tree must equal, if there is one.
    pub fn source(&self) -> Option<Oid> {
        match self.expect {
            Expect::Source(o) => Some(o),
            _ => None,
        }
    }

    fn unverifiable(&mut self, why: String) {
        self.entry.fail(Verdict::Unverifiable, why);
        self.expect = Expect::Decided;
    }

    /// A tip made by hand: the record of the last dify-cfg commit below it,
    /// whose source the tree is compared with, if there is one.
    fn below_hand_commits(&mut self, repo: &Repo, info: &CommitInfo) -> Option<Record> {
        self.by_hand = true;
        self.entry.notes.push(format!(
            "tip {} \"{}\" was not made by dify-cfg (no `{COMPILER_TRAILER}: dify-cfg` trailer)",
            short(info.id),
            shown(info.subject())
        ));
        match last_record(repo, info) {
            Ok(Some(r)) => {
                self.entry.notes.push(format!(
                    "compared with what the source of dify-cfg commit {} below it compiles to",
                    short(r.commit.id)
                ));
                Some(r)
            }
            Ok(None) => {
                self.entry.fail(
                    Verdict::Unmanaged,
                    "no dify-cfg commit below it says what the tree should be".into(),
                );
                None
            }
            Err(e) => {
                self.entry.fail(
                    Verdict::Unmanaged,
                    format!("the commits below it cannot be read: {e}"),
                );
                None
            }
        }
    }

    /// Take the source the record names, or say why there is none.
    fn vouched_by(
        &mut self,
        repo: &Repo,
        sources: &mut Sources,
        tip: &CommitInfo,
        record: &Record,
    ) {
        let e = &mut self.entry;
        e.source_commit = record.commit.trailer(SOURCE_TRAILER).map(str::to_string);
        e.compiler = record.commit.trailer(COMPILER_TRAILER).map(str::to_string);
        match record.how {
            Vouched::Tip => {}
            Vouched::Merge => e.notes.push(format!(
                "merge {} of dify-cfg commit {}",
                short(tip.id),
                short(record.commit.id)
            )),
            Vouched::Squash => e.notes.push(format!(
                "squash merge {}: its message carries dify-cfg's trailers",
                short(tip.id)
            )),
        }
        if record.commit.trailer(DIRTY_TRAILER) == Some("true") {
            e.notes.push(format!(
                "compiled from uncommitted inputs (`{DIRTY_TRAILER}: true`): its source commit does not hold them"
            ));
        }
        let ours = compiler_id();
        if let Some(theirs) = &e.compiler
            && *theirs != ours
        {
            e.notes.push(format!(
                "made by {}, this is {ours}: differences may come from the compiler",
                shown(theirs)
            ));
        }
        let Some(text) = e.source_commit.clone() else {
            e.notes
                .push("no Source-Commit trailer (an empty start of a site branch)".into());
            self.expect = Expect::Empty;
            return;
        };
        let resolved = sources
            .entry(text)
            .or_insert_with_key(|text| source_commit(repo, text))
            .clone();
        match resolved {
            Ok(o) => self.expect = Expect::Source(o),
            Err(why) if self.by_hand => {
                self.entry.fail(Verdict::Unmanaged, why);
                self.expect = Expect::Decided;
            }
            Err(why) => self.unverifiable(why),
        }
    }

    /// The tree against a recompile of its source: drift when they differ.
    pub fn judge_source(&mut self, renders: &HashMap<Oid, Renders>) {
        let Some(tree) = &self.tree else {
            return;
        };
        let expected = match self.expect {
            Expect::Decided => return,
            Expect::Empty => Ok(Entries::new()),
            Expect::Source(o) => match renders.get(&o).and_then(|r| r.get(&self.entry.site)) {
                Some(Ok(ids)) => Ok(site_entries(ids)),
                Some(Err(why)) => Err(why.clone()),
                None => Err("it was not rendered".into()),
            },
        };
        let e = &mut self.entry;
        match expected {
            Err(why) => {
                let verdict = if self.by_hand {
                    Verdict::Unmanaged
                } else {
                    Verdict::Unverifiable
                };
                e.fail(
                    verdict,
                    format!("the source commit cannot be recompiled: {why}"),
                );
            }
            Ok(expected) => {
                let (paths, notes) = compare(&expected, tree);
                e.notes.extend(notes);
                if !paths.is_empty() {
                    e.drifted = paths;
                    if e.verdict.passes() {
                        e.verdict = Verdict::Drift;
                    }
                } else if self.by_hand {
                    e.fail(
                        Verdict::Unmanaged,
                        "its tree is what that source compiles to, but the tip is not dify-cfg's"
                            .into(),
                    );
                }
            }
        }
    }

    /// The tree against what the sources at the audited revision render:
    /// stale when they differ, orphan when they lack the site, unknown
    /// when they do not compile.
    pub fn judge_current(&mut self, current: &Current<'_>) {
        let Some(tree) = &self.tree else {
            return;
        };
        let e = &mut self.entry;
        let rev = current.rev;
        if current.errors > 0 {
            e.fail(
                Verdict::Unknown,
                format!(
                    "the sources at {rev} do not compile ({} error{}, shown with this report): whether the branch is current cannot be told",
                    current.errors,
                    if current.errors == 1 { "" } else { "s" }
                ),
            );
            return;
        }
        if !current.sites.contains(e.site.as_str()) {
            e.fail(
                Verdict::Orphan,
                format!(
                    "the sources at {rev} have no site `{}` (it was removed): `dify-cfg commit` retires such a branch as the annotated tag `retired/{}`",
                    e.site, e.branch
                ),
            );
            return;
        }
        match current.renders.get(&e.site) {
            Some(Ok(ids)) => {
                e.stale = compare(&site_entries(ids), tree).0;
                if !e.stale.is_empty() {
                    e.fail(
                        Verdict::Stale,
                        format!("the sources at {rev} render it differently"),
                    );
                }
            }
            Some(Err(why)) => e.fail(Verdict::Unknown, format!("at {rev}: {why}")),
            None => e.fail(Verdict::Unknown, format!("at {rev}: it was not rendered")),
        }
    }
}

/// The commit a `Source-Commit` trailer names: a full id of a commit this
/// repository has, or why not.
fn source_commit(repo: &Repo, text: &str) -> Result<Oid, String> {
    let full = matches!(text.len(), 40 | 64) && text.bytes().all(|c| c.is_ascii_hexdigit());
    let id = Oid::from_str(text)
        .ok()
        .filter(|_| full)
        .ok_or_else(|| format!("`Source-Commit: {}` is not a full commit id", shown(text)))?;
    match repo.object_kind(id) {
        Ok(Some(ObjectKind::Commit)) => Ok(id),
        Ok(Some(kind)) => Err(format!(
            "`Source-Commit: {text}` names {}, not a commit",
            kind.described()
        )),
        Ok(None) => Err(format!(
            "source commit {text} is not in this repository (fetch it?)"
        )),
        Err(e) => Err(format!("source commit {text} cannot be read: {e}")),
    }
}

/// The paths whose entries differ between the tree dify-cfg would write
/// and a branch's tree (a directory only when nothing under it is named),
/// and a note for each entry that is not a regular file of dify-cfg's mode.
fn compare(expected: &Entries, actual: &Entries) -> (Vec<String>, Vec<String>) {
    let differ: Vec<&String> = differing_keys(expected, actual).collect();
    let mut paths = Vec::new();
    let mut notes = Vec::new();
    for path in &differ {
        if path.ends_with('/')
            && differ
                .iter()
                .any(|p| p.len() > path.len() && p.starts_with(*path))
        {
            continue;
        }
        let name = path.trim_end_matches('/');
        paths.push(name.to_string());
        if let Some(Entry { mode, id }) = actual.get(*path)
            && *mode != SITE_FILE_MODE
            && id.is_some()
        {
            notes.push(match *mode {
                GITLINK_MODE => format!(
                    "`{name}` is a submodule (a link to commit {}); dify-cfg writes none",
                    id.map(short).unwrap_or_default()
                ),
                LINK_MODE => format!("`{name}` is a symbolic link; dify-cfg writes regular files ({SITE_FILE_MODE:o})"),
                m => format!("`{name}` has mode {m:o}; dify-cfg writes {SITE_FILE_MODE:o}"),
            });
        }
    }
    (paths, notes)
}

/// A text from a commit message as a note shows it: control characters
/// escaped, at most 72 characters.
fn shown(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(72)
        .collect::<String>()
        .escape_debug()
        .to_string();
    if text.chars().nth(72).is_some() {
        out.push_str("...");
    }
    out
}

//! Reading history: whether one commit is in another's past (a merged
//! rollout), and which source commit removed a site's file.

use std::collections::{BTreeMap, BTreeSet};

use git2::{Delta, DiffOptions, Oid};

use super::{GitError, Repo, ctx};

impl Repo {
    /// Whether `ancestor` is `descendant` or in its past.
    pub fn is_ancestor(&self, ancestor: Oid, descendant: Oid) -> Result<bool, GitError> {
        if ancestor == descendant {
            return Ok(true);
        }
        ctx(self.repo.graph_descendant_of(descendant, ancestor), || {
            format!("cannot tell whether {ancestor} is in the history of {descendant}")
        })
    }

    /// For each of `names`, the newest commit of `from`'s first-parent
    /// history that deletes a site file `<name>.toml` (anywhere under the
    /// config root's `sites/`) against its first parent. A name no such
    /// commit deletes is left out. The walk stops once every name is found.
    pub fn removals(
        &self,
        from: Oid,
        names: &BTreeSet<String>,
    ) -> Result<BTreeMap<String, Oid>, GitError> {
        let mut found = BTreeMap::new();
        let sites = format!("{}sites/", self.prefix);
        let mut at = Some(from);
        while let Some(id) = at
            && found.len() < names.len()
        {
            let commit = ctx(self.repo.find_commit(id), || {
                format!("cannot read commit {id}")
            })?;
            let Ok(parent) = commit.parent(0) else {
                break;
            };
            let (old, new) = ctx(parent.tree().and_then(|p| Ok((p, commit.tree()?))), || {
                format!("cannot read the trees of commit {id}")
            })?;
            let mut opts = DiffOptions::new();
            opts.pathspec(&sites);
            let diff = ctx(
                self.repo
                    .diff_tree_to_tree(Some(&old), Some(&new), Some(&mut opts)),
                || format!("cannot compare commit {id} with its parent"),
            )?;
            for delta in diff.deltas() {
                if delta.status() != Delta::Deleted {
                    continue;
                }
                let name = delta
                    .old_file()
                    .path()
                    .and_then(|p| p.file_name())
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_suffix(".toml"));
                if let Some(name) = name
                    && names.contains(name)
                {
                    found.entry(name.to_string()).or_insert(id);
                }
            }
            at = Some(parent.id());
        }
        Ok(found)
    }
}

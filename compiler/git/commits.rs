//! Commits: reading one (message, trailers, tree, parents), the identity
//! of a source commit, and writing a commit signed with it.

use git2::{Oid, Signature};

use super::{GitError, Repo, ctx};

/// A commit as dify-cfg reads it.
#[derive(Debug, Clone)]
pub struct CommitInfo {
    pub id: Oid,
    pub tree: Oid,
    pub parents: Vec<Oid>,
    pub message: String,
    /// The message's trailers (`Key: value` lines of its last paragraph).
    pub trailers: Vec<(String, String)>,
}

impl CommitInfo {
    pub fn trailer(&self, key: &str) -> Option<&str> {
        self.trailers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// The subject line.
    pub fn subject(&self) -> &str {
        self.message.lines().next().unwrap_or_default()
    }
}

/// Who made a source commit, and when: what dify-cfg's commits carry.
/// Plain data (a git2 signature is bound to its thread), so that every
/// worker writing commits can hold one.
#[derive(Debug, Clone)]
pub struct Identity {
    author: Person,
    committer: Person,
}

#[derive(Debug, Clone)]
struct Person {
    name: String,
    email: String,
    when: git2::Time,
}

impl Person {
    /// Names and addresses that are not UTF-8 (git's default encoding)
    /// are read lossily.
    fn of(sig: &Signature<'_>) -> Person {
        Person {
            name: String::from_utf8_lossy(sig.name_bytes()).into_owned(),
            email: String::from_utf8_lossy(sig.email_bytes()).into_owned(),
            when: sig.when(),
        }
    }

    fn signature(&self) -> Result<Signature<'static>, git2::Error> {
        Signature::new(&self.name, &self.email, &self.when)
    }
}

impl Repo {
    /// Read a commit's message, trailers, tree and parents.
    pub fn commit_info(&self, id: Oid) -> Result<CommitInfo, GitError> {
        let c = ctx(self.repo.find_commit(id), || {
            format!("cannot read commit {id}")
        })?;
        let message = String::from_utf8_lossy(c.message_bytes()).into_owned();
        let trailers = git2::message_trailers_strs(&message)
            .map(|t| {
                t.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
            .unwrap_or_default();
        Ok(CommitInfo {
            id,
            tree: c.tree_id(),
            parents: c.parent_ids().collect(),
            message,
            trailers,
        })
    }

    /// The author and committer of a commit, to sign the commits made
    /// from it.
    pub fn identity(&self, commit: Oid) -> Result<Identity, GitError> {
        let c = ctx(self.repo.find_commit(commit), || {
            format!("cannot read commit {commit}")
        })?;
        Ok(Identity {
            author: Person::of(&c.author()),
            committer: Person::of(&c.committer()),
        })
    }

    /// Write a commit object (no branch moves). Author and committer,
    /// names and times, are the source commit's (`identity`), so the same
    /// source gives the same commit id on any machine.
    pub fn write_commit(
        &self,
        tree: Oid,
        parent: Option<Oid>,
        identity: &Identity,
        message: &str,
    ) -> Result<Oid, GitError> {
        let tree = ctx(self.repo.find_tree(tree), || {
            format!("cannot read tree {tree}")
        })?;
        let parent = match parent {
            Some(p) => Some(ctx(self.repo.find_commit(p), || {
                format!("cannot read commit {p}")
            })?),
            None => None,
        };
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        let (author, committer) = ctx(
            identity
                .author
                .signature()
                .and_then(|a| Ok((a, identity.committer.signature()?))),
            || "cannot sign the commit".into(),
        )?;
        ctx(
            self.repo
                .commit(None, &author, &committer, message, &tree, &parents),
            || "cannot write the commit".into(),
        )
    }
}

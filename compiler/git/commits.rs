//! Commits: reading one (message, trailers, tree, parents), the identity
//! of a source commit, and writing a commit signed with it.

use git2::{ObjectType, Oid, Signature};

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
    /// The source commit.
    source: Oid,
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

    /// The person's line in a commit object, as git writes it:
    /// `Name <email> <seconds> <+hhmm>`. An empty email is written `<>`,
    /// as git does (libgit2 refuses one); an empty name, which git refuses,
    /// is refused.
    fn line(&self, who: &'static str, source: Oid) -> Result<String, GitError> {
        if self.name.is_empty() {
            return Err(GitError::EmptyName {
                who,
                commit: source.to_string(),
            });
        }
        let bad = |s: &str| s.contains(['<', '>', '\n', '\0']);
        if bad(&self.name) || bad(&self.email) {
            return Err(GitError::Git {
                what: format!("cannot sign the commit: the {who} of source commit {source}"),
                source: git2::Error::from_str("a name or email holds `<`, `>` or a line break"),
            });
        }
        let offset = self.when.offset_minutes();
        let sign = if offset < 0 || self.when.sign() == '-' {
            '-'
        } else {
            '+'
        };
        let offset = offset.unsigned_abs();
        Ok(format!(
            "{} <{}> {} {sign}{:02}{:02}",
            self.name,
            self.email,
            self.when.seconds(),
            offset / 60,
            offset % 60
        ))
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
            source: commit,
            author: Person::of(&c.author()),
            committer: Person::of(&c.committer()),
        })
    }

    /// Write a commit object (no branch moves). Author and committer,
    /// names and times, are the source commit's (`identity`), so the same
    /// source gives the same commit id on any machine. The object is the
    /// one libgit2 writes for the same commit ([`commit_object`]).
    pub fn write_commit(
        &self,
        tree: Oid,
        parent: Option<Oid>,
        identity: &Identity,
        message: &str,
    ) -> Result<Oid, GitError> {
        let object = commit_object(tree, parent, identity, message)?;
        let odb = ctx(self.repo.odb(), || "cannot open the object database".into())?;
        let id = ctx(odb.write(ObjectType::Commit, object.as_bytes()), || {
            "cannot write the commit".into()
        })?;
        self.share_object(id);
        Ok(id)
    }
}

/// A commit object's text: its tree, parent, author, committer and
/// message, as git (and libgit2) write them.
fn commit_object(
    tree: Oid,
    parent: Option<Oid>,
    identity: &Identity,
    message: &str,
) -> Result<String, GitError> {
    let mut text = format!("tree {tree}\n");
    if let Some(p) = parent {
        text.push_str(&format!("parent {p}\n"));
    }
    let source = identity.source;
    text.push_str(&format!(
        "author {}\ncommitter {}\n\n",
        identity.author.line("author", source)?,
        identity.committer.line("committer", source)?
    ));
    text.push_str(message);
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The commit objects dify-cfg writes are byte for byte those libgit2
    /// wrote for the same commit before (same ids as earlier versions).
    #[test]
    fn commit_objects_are_the_ones_libgit2_writes() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(dir.path()).unwrap();
        let tree = repo.treebuilder(None).unwrap().write().unwrap();
        let tree_obj = repo.find_tree(tree).unwrap();
        let parent_sig = Signature::new("P", "p@x", &git2::Time::new(1, 0)).unwrap();
        let parent = repo
            .commit(None, &parent_sig, &parent_sig, "p\n", &tree_obj, &[])
            .unwrap();
        let parent_obj = repo.find_commit(parent).unwrap();
        for (name, email, secs, offset) in [
            ("Ana Operator", "ana@clinics.example.org", 1_793_606_400, 60),
            ("Bo Ölund", "bo@example.org", 1_700_000_000, -330),
            ("Cy", "cy@example.org", 0, 0),
            ("Di", "di@example.org", 4_000_000_000, 840),
        ] {
            let when = git2::Time::new(secs, offset);
            let sig = Signature::new(name, email, &when).unwrap();
            let person = Person::of(&sig);
            let identity = Identity {
                source: parent,
                author: person.clone(),
                committer: person,
            };
            for (message, parents) in [
                ("one line", vec![]),
                ("s\n\nbody\n\nA: b\n", vec![&parent_obj]),
            ] {
                let theirs = repo
                    .commit_create_buffer(&sig, &sig, message, &tree_obj, &parents)
                    .unwrap();
                let ours = commit_object(tree, parents.first().map(|c| c.id()), &identity, message)
                    .unwrap();
                assert_eq!(ours.as_bytes(), &*theirs, "{name} {offset}");
            }
        }
    }

    #[test]
    fn an_empty_email_is_written_as_git_writes_it_and_an_empty_name_refused() {
        let when = git2::Time::new(1_793_606_400, 60);
        let person = |name: &str, email: &str| Person {
            name: name.into(),
            email: email.into(),
            when,
        };
        let line = person("Ana", "").line("author", Oid::ZERO_SHA1).unwrap();
        assert_eq!(line, "Ana <> 1793606400 +0100");
        let refused = person("", "a@b").line("author", Oid::ZERO_SHA1);
        assert!(
            matches!(refused, Err(GitError::EmptyName { .. })),
            "{refused:?}"
        );
    }
}

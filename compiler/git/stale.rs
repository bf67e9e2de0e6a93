//! The journal of a branch move, and the stale locks of a killed one. A
//! move records who it is (pid, process start time, boot) and, before each
//! `<ref>.lock` it creates appears, that lock's identity (device, inode,
//! content). The next move removes a lock only when the journal's writer is
//! provably dead and the lock is the very file it created; any other lock,
//! such as one a live `git update-ref` holds, is left alone (and a move
//! that needs that branch stops, naming it).
//!
//! ```text
//! dify-cfg branch move 2
//! writer <pid> <start time in clock ticks since boot> <boot id>
//! ref <refname>                           one per branch the move writes
//! lock <dev> <inode> <new id> <refname>   one per lock, before it exists
//! ```

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::shared::Shared;
use super::{GitError, io_ctx};

const HEADER: &str = "dify-cfg branch move 2";

/// The process that wrote a journal.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Writer {
    pid: u32,
    start: u64,
    boot: String,
}

impl Writer {
    /// This process; `None` where `/proc` does not say.
    fn me() -> Option<Writer> {
        Some(Writer {
            pid: std::process::id(),
            start: start_time("self")?,
            boot: boot_id()?,
        })
    }

    /// Whether the writer still runs: the same boot, and a process with
    /// its pid that started when it did.
    fn alive(&self) -> bool {
        boot_id().as_deref() == Some(self.boot.as_str())
            && start_time(&self.pid.to_string()) == Some(self.start)
    }

    fn parse(line: &str) -> Option<Writer> {
        let mut parts = line.strip_prefix("writer ")?.split(' ');
        let w = Writer {
            pid: parts.next()?.parse().ok()?,
            start: parts.next()?.parse().ok()?,
            boot: parts.next()?.to_string(),
        };
        (parts.next().is_none() && !w.boot.is_empty()).then_some(w)
    }
}

/// When process `pid` started (`/proc/<pid>/stat`, field 22).
fn start_time(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn boot_id() -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let id = id.trim();
    (!id.is_empty() && !id.contains(' ')).then(|| id.to_string())
}

/// The lock file of `refname` (`<ref>.lock`), as git names it.
pub(super) fn lock_path(common: &Path, refname: &str) -> PathBuf {
    common.join(format!("{refname}.lock"))
}

/// Where a move stages the lock file of `refname` before linking it to
/// `<ref>.lock`: a name no git ref or lock can have (`..`), private to
/// dify-cfg's moves (which the flock serializes).
fn staging(common: &Path, refname: &str) -> PathBuf {
    common.join(format!("{refname}..dify-cfg.lock"))
}

/// A running move's journal, appended to as its locks are created.
pub(super) struct Journal {
    path: PathBuf,
    file: std::fs::File,
    /// The modes of the journal and of the locks it creates.
    shared: Shared,
}

impl Journal {
    /// Start the journal of a move of `refnames` (the move lock is held).
    pub(super) fn begin(
        path: &Path,
        shared: Shared,
        refnames: &[String],
    ) -> Result<Journal, GitError> {
        let mut text = format!("{HEADER}\n");
        match Writer::me() {
            Some(w) => text.push_str(&format!("writer {} {} {}\n", w.pid, w.start, w.boot)),
            None => text.push_str("writer unknown\n"),
        }
        for name in refnames {
            text.push_str(&format!("ref {name}\n"));
        }
        let what = || format!("cannot write `{}`", path.display());
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(io_ctx(what()))?;
        shared.adjust(path).map_err(io_ctx(what()))?;
        file.write_all(text.as_bytes()).map_err(io_ctx(what()))?;
        Ok(Journal {
            path: path.to_path_buf(),
            file,
            shared,
        })
    }

    /// Create `<refname>.lock` holding `content`, as git's lock protocol
    /// does (it fails if the lock exists), its identity journaled before it
    /// appears: the file is written under a private name, journaled, then
    /// hard-linked to the lock's name (which fails if that exists).
    /// `Ok(false)`: the lock exists, someone else holds it.
    pub(super) fn create_lock(
        &mut self,
        common: &Path,
        refname: &str,
        content: &str,
    ) -> Result<bool, GitError> {
        let lock = lock_path(common, refname);
        let temp = staging(common, refname);
        let what = || format!("cannot lock `{refname}`: cannot write `{}`", temp.display());
        remove_if_there(&temp).map_err(io_ctx(what()))?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(io_ctx(what()))?;
        let written = file
            .write_all(content.as_bytes())
            .and_then(|()| self.shared.adjust(&temp))
            .and_then(|()| file.metadata());
        drop(file);
        let meta = match written {
            Ok(m) => m,
            Err(e) => {
                let _ = std::fs::remove_file(&temp);
                return Err(io_ctx(what())(e));
            }
        };
        let line = format!(
            "lock {} {} {} {refname}\n",
            meta.dev(),
            meta.ino(),
            content.trim_end()
        );
        if let Err(e) = self.file.write_all(line.as_bytes()) {
            let _ = std::fs::remove_file(&temp);
            return Err(io_ctx(format!("cannot write `{}`", self.path.display()))(e));
        }
        let linked = std::fs::hard_link(&temp, &lock);
        let _ = std::fs::remove_file(&temp);
        match linked {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(io_ctx(format!("cannot lock `{refname}`"))(e)),
        }
    }

    /// The move is over (its locks renamed into place or removed).
    pub(super) fn end(self) -> Result<(), GitError> {
        drop(self.file);
        std::fs::remove_file(&self.path)
            .map_err(io_ctx(format!("cannot remove `{}`", self.path.display())))
    }
}

fn remove_if_there(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// A lock a journal says its writer created.
struct Created<'a> {
    dev: u64,
    ino: u64,
    content: &'a str,
    refname: &'a str,
}

impl<'a> Created<'a> {
    fn parse(line: &'a str) -> Option<Created<'a>> {
        let mut parts = line.strip_prefix("lock ")?.splitn(4, ' ');
        Some(Created {
            dev: parts.next()?.parse().ok()?,
            ino: parts.next()?.parse().ok()?,
            content: parts.next()?,
            refname: parts.next()?,
        })
    }

    /// Whether `<ref>.lock` is this very file: same device and inode (the
    /// file still exists, so its inode is not another's) and content.
    fn is_there(&self, lock: &Path) -> bool {
        std::fs::symlink_metadata(lock)
            .is_ok_and(|m| m.is_file() && m.dev() == self.dev && m.ino() == self.ino)
            && std::fs::read_to_string(lock).is_ok_and(|c| c.trim_end() == self.content)
    }
}

/// Whether `name` is a branch's full ref name, safe to join to the git
/// directory.
fn is_branch_ref(name: &str) -> bool {
    name.starts_with("refs/heads/") && git2::Reference::is_valid_name(name)
}

/// Clear what the killed move whose journal is `text` left (the move lock
/// is held, so no dify-cfg move runs): the locks it provably created, the
/// locks of the reflogs it was writing under them, its private staging
/// files. A lock it cannot be shown to have created stays; a writer that
/// still runs stops this move, touching nothing.
pub(super) fn recover(common: &Path, journal: &Path, text: &str) -> Result<(), GitError> {
    let mut lines = text.lines();
    let current = lines.next() == Some(HEADER);
    let writer = match (current, lines.next()) {
        (true, Some("writer unknown")) => None,
        (true, Some(line)) => Writer::parse(line),
        _ => None,
    };
    if let Some(w) = &writer
        && w.alive()
    {
        return Err(GitError::MoveRunning {
            pid: w.pid,
            journal: journal.to_path_buf(),
        });
    }
    let mut stale = Vec::new();
    let mut staged = Vec::new();
    // An earlier version's journal (ref names only) proves no lock.
    for line in lines.filter(|_| current) {
        if let Some(name) = line.strip_prefix("ref ")
            && is_branch_ref(name)
        {
            staged.push(staging(common, name));
        } else if let Some(c) = Created::parse(line)
            && is_branch_ref(c.refname)
            && let lock = lock_path(common, c.refname)
            && c.is_there(&lock)
        {
            stale.push(lock);
            // Its writer held the ref's lock: nobody else wrote its log.
            stale.push(common.join(format!("logs/{}.lock", c.refname)));
        }
    }
    for path in stale.iter().chain(&staged) {
        remove_if_there(path).map_err(io_ctx(format!(
            "cannot remove the stale lock `{}`",
            path.display()
        )))?;
    }
    remove_if_there(journal).map_err(io_ctx(format!("cannot remove `{}`", journal.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_one_of_another_boot_or_start_is_not() {
        let me = Writer::me().expect("/proc is mounted");
        assert!(me.alive());
        let line = format!("writer {} {} {}", me.pid, me.start, me.boot);
        assert_eq!(Writer::parse(&line), Some(me.clone()));
        let other_boot = Writer {
            boot: "another-boot".into(),
            ..me.clone()
        };
        assert!(!other_boot.alive());
        let restarted = Writer {
            start: me.start + 1,
            ..me
        };
        assert!(!restarted.alive());
    }

    #[test]
    fn a_lock_line_names_its_file() {
        let c = Created::parse("lock 2049 1234 0123abc refs/heads/sites/a").unwrap();
        assert_eq!(
            (c.dev, c.ino, c.content, c.refname),
            (2049, 1234, "0123abc", "refs/heads/sites/a")
        );
        assert!(Created::parse("lock x 1 2 refs/heads/a").is_none());
    }
}

//! `core.sharedRepository`: the modes git gives what it creates in a
//! repository several users share, given to what dify-cfg creates there
//! too (refs, their folders and reflogs, loose objects, its own lock and
//! journal). Without it, a branch or an object folder dify-cfg made with
//! the umask's `0755` could not be written by the next member of the group.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The set-group-id bit git sets on a shared folder, so that what is
/// created inside belongs to the folder's group.
const SET_GID: u32 = 0o2000;

/// How git sets the modes of the files and folders it creates, as
/// `core.sharedRepository` says (git-config(1); git's `path.c`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shared {
    /// `umask`, `false` (the default): as the umask makes them.
    Umask,
    /// `group`/`true`, `all`/`world`/`everybody`: these permissions are
    /// added to what the umask gives (0660, 0664).
    Widen(u32),
    /// `0xxx`: exactly these permissions (without execute; others never
    /// get write), whatever the umask.
    Exactly(u32),
}

impl Shared {
    /// The setting's value as git reads it: `None` for a key without a
    /// value (`true`). An error says why git refuses the value.
    pub fn parse(value: Option<&str>) -> Result<Shared, String> {
        let Some(value) = value else {
            return Ok(Shared::Widen(0o660));
        };
        match value {
            "umask" => return Ok(Shared::Umask),
            "group" => return Ok(Shared::Widen(0o660)),
            "all" | "world" | "everybody" => return Ok(Shared::Widen(0o664)),
            _ => {}
        }
        if value.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            // An empty value reads as the octal number 0, as in git.
            let mode = if value.is_empty() {
                Ok(0)
            } else {
                u32::from_str_radix(value, 8)
            };
            return match mode {
                Err(_) => Err(format!("the file mode {value} is too large")),
                Ok(0) => Ok(Shared::Umask),
                Ok(1) => Ok(Shared::Widen(0o660)),
                Ok(2) => Ok(Shared::Widen(0o664)),
                Ok(m) if m & 0o600 != 0o600 => Err(format!(
                    "the file mode {value} does not give the owner read and write"
                )),
                Ok(m) => Ok(Shared::Exactly(m & 0o666)),
            };
        }
        match value.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" => Ok(Shared::Widen(0o660)),
            "false" | "no" | "off" => Ok(Shared::Umask),
            other => match other.parse::<i64>() {
                Ok(0) => Ok(Shared::Umask),
                Ok(_) => Ok(Shared::Widen(0o660)),
                Err(_) => Err(
                    "it is none of umask, group, all, world, everybody, true, false or an octal file mode"
                        .into(),
                ),
            },
        }
    }

    /// The mode git gives a file or folder it created with `mode` (what
    /// the umask left; type bits ignored). Git's `calc_shared_perm`, and
    /// for a folder `adjust_shared_perm`'s execute and set-group-id bits.
    pub fn mode(self, mode: u32, is_dir: bool) -> u32 {
        let (mut tweak, exactly) = match self {
            Shared::Umask => return mode & 0o7777,
            Shared::Widen(t) => (t, false),
            Shared::Exactly(t) => (t, true),
        };
        if mode & 0o200 == 0 {
            tweak &= !0o222;
        }
        if mode & 0o100 != 0 {
            tweak |= (tweak & 0o444) >> 2;
        }
        let mut new = if exactly {
            (mode & 0o7000) | tweak
        } else {
            (mode & 0o7777) | tweak
        };
        if is_dir {
            new |= (new & 0o444) >> 2;
            if new & 0o060 != 0 {
                new |= SET_GID;
            }
        }
        new
    }

    /// Give `path` (just created by this process) the mode git would.
    pub fn adjust(self, path: &Path) -> std::io::Result<()> {
        if self == Shared::Umask {
            return Ok(());
        }
        let meta = std::fs::symlink_metadata(path)?;
        if meta.file_type().is_symlink() {
            return Ok(());
        }
        let old = meta.permissions().mode() & 0o7777;
        let new = self.mode(old, meta.is_dir());
        if new != old {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(new))?;
        }
        Ok(())
    }

    /// [`Shared::adjust`] for what another process may have made (a loose
    /// object that was already there, a folder of the reflogs): what is
    /// missing or not this user's to change is left as it is.
    pub fn adjust_if_ours(self, path: &Path) {
        let _ = self.adjust(path);
    }

    /// Create `dir` and the folders above it that are missing, down from
    /// `top` (which exists), each with git's mode.
    pub fn create_dir_all(self, top: &Path, dir: &Path) -> std::io::Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        let Ok(rel) = dir.strip_prefix(top) else {
            return std::fs::create_dir_all(dir);
        };
        let mut at = top.to_path_buf();
        for part in rel.components() {
            at.push(part);
            match std::fs::create_dir(&at) {
                Ok(()) => self.adjust(&at)?,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && at.is_dir() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_as_git_reads_them() {
        let cases: [(Option<&str>, Result<Shared, ()>); 16] = [
            (None, Ok(Shared::Widen(0o660))),
            (Some(""), Ok(Shared::Umask)),
            (Some("umask"), Ok(Shared::Umask)),
            (Some("false"), Ok(Shared::Umask)),
            (Some("0"), Ok(Shared::Umask)),
            (Some("group"), Ok(Shared::Widen(0o660))),
            (Some("True"), Ok(Shared::Widen(0o660))),
            (Some("1"), Ok(Shared::Widen(0o660))),
            (Some("all"), Ok(Shared::Widen(0o664))),
            (Some("everybody"), Ok(Shared::Widen(0o664))),
            (Some("2"), Ok(Shared::Widen(0o664))),
            (Some("0640"), Ok(Shared::Exactly(0o640))),
            (Some("0775"), Ok(Shared::Exactly(0o664))),
            (Some("0440"), Err(())),
            (Some("banana"), Err(())),
            (Some("9"), Ok(Shared::Widen(0o660))),
        ];
        for (value, want) in cases {
            assert_eq!(Shared::parse(value).map_err(|_| ()), want, "{value:?}");
        }
    }

    /// What git 2.47 made under umask 022 (`git init --shared=<value>`,
    /// then a commit, an object and a branch `nest/x`): folders, refs and
    /// reflogs, loose objects.
    #[test]
    fn modes_are_those_git_makes() {
        let (dir, file, object) = (0o755, 0o644, 0o444);
        for (value, want) in [
            ("umask", [0o755, 0o644, 0o444]),
            ("group", [0o2775, 0o664, 0o444]),
            ("all", [0o2775, 0o664, 0o444]),
            ("0664", [0o2775, 0o664, 0o444]),
            ("0660", [0o2770, 0o660, 0o440]),
            ("0640", [0o2750, 0o640, 0o440]),
            ("0600", [0o700, 0o600, 0o400]),
        ] {
            let s = Shared::parse(Some(value)).unwrap();
            let got = [
                s.mode(dir, true),
                s.mode(file, false),
                s.mode(object, false),
            ];
            assert_eq!(got, want, "{value}");
        }
        // Under umask 077, `group` still opens the group's part.
        let s = Shared::Widen(0o660);
        assert_eq!(s.mode(0o700, true), 0o2770);
        assert_eq!(s.mode(0o400, false), 0o440);
        assert_eq!(Shared::Widen(0o664).mode(0o700, true), 0o2775);
    }
}

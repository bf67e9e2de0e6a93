//! Files a command writes outside the out directory (`report`'s page,
//! `man --out`'s pages): one it finds in the way is replaced only when it
//! is one dify-cfg wrote, and a new one goes in whole or not at all.

use std::fs;
use std::io::Write;
use std::path::Path;

/// Why the file at a path may not be replaced.
#[derive(Debug)]
pub enum InTheWay {
    /// Not a plain file (a folder, a link, ...).
    NotAFile,
    /// A file whose bytes `ours` does not recognise.
    NotOurs,
    /// It could not be looked at.
    Io(std::io::Error),
}

/// Whether the file at `path` may be replaced: there is none, or `ours`
/// recognises its bytes.
pub fn may_replace(path: &Path, ours: impl Fn(&[u8]) -> bool) -> Result<(), InTheWay> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(InTheWay::Io(e)),
        Ok(m) if !m.is_file() => Err(InTheWay::NotAFile),
        Ok(_) => {
            let bytes = fs::read(path).map_err(InTheWay::Io)?;
            if ours(&bytes) {
                Ok(())
            } else {
                Err(InTheWay::NotOurs)
            }
        }
    }
}

/// Write `bytes` at `path` (in an existing folder) through a sibling file
/// renamed over it; the sibling is removed when that fails.
pub fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.dify-cfg-tmp-{}", std::process::id()));
    let staged = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if staged.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    staged
}

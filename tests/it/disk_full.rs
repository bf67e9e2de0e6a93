//! A full disk: `build` fails with a clear error (exit 2, the file it could
//! not write, "No space left on device") and leaves the previous output as
//! it was, byte for byte; with room again, the next build succeeds and
//! leaves nothing behind.
//!
//! The out directory is a small tmpfs mounted in a private mount namespace
//! (`unshare -rm`, as an unprivileged user; `sudo -n unshare -m` where user
//! namespaces are not allowed). Where neither works the tests skip with the
//! reason, unless `DIFY_CFG_REQUIRE_TOOLS=1` (CI), where they fail.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use crate::support::{add_clinics, all_entries, available, copy_fleet, set_clinic_description};

const BIN: &str = env!("CARGO_BIN_EXE_dify-cfg");

/// What runs the script in a private mount namespace: `unshare -rm`, or
/// `sudo -n unshare -m`; `None` (after saying why) when neither works.
fn namespace_runner() -> Option<Vec<&'static str>> {
    let works = |cmd: &[&str]| {
        let mut args: Vec<&str> = cmd.to_vec();
        args.extend([
            "sh",
            "-c",
            "d=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs \"$d\" && umount \"$d\"; s=$?; rmdir \"$d\"; exit $s",
        ]);
        Command::new(args[0])
            .args(&args[1..])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    for cmd in [
        &["unshare", "-rm"][..],
        &["sudo", "-n", "unshare", "-m"][..],
    ] {
        if works(cmd) {
            return Some(cmd.to_vec());
        }
    }
    available(
        "a private mount namespace with a tmpfs",
        false,
        "neither `unshare -rm` nor `sudo -n unshare -m` can mount a tmpfs",
    );
    None
}

/// Inside the namespace: mount a tmpfs of `$SIZE` at `$MNT`, build root A
/// into it, fill it (unless `$FILL` is 0), build root B into it, make room,
/// build root B again. Each step's exit code, stdout and stderr, and a copy
/// of the out directory after it, go to `$SNAP/<step>.*`.
const SCRIPT: &str = r#"
set -u
mount -t tmpfs -o "size=$SIZE" tmpfs "$MNT" || exit 97
out="$MNT/out"
step() {
  n=$1; shift
  "$BIN" --root "$1" build --out "$out" >"$SNAP/$n.stdout" 2>"$SNAP/$n.stderr"
  echo $? >"$SNAP/$n.rc"
  cp -r "$out" "$SNAP/out$n"
}
step 1 "$ROOT_A"
if [ "$FILL" = 1 ]; then
  dd if=/dev/zero of="$MNT/filler" bs=4096 >/dev/null 2>&1
  df -k "$MNT" >"$SNAP/df"
fi
step 2 "$ROOT_B"
rm -f "$MNT/filler"
step 3 "$ROOT_B"
umount "$MNT"
[ -z "${OWNER:-}" ] || chown -R "$OWNER" "$SNAP"
"#;

struct Steps {
    rc: Vec<i32>,
    stderr: Vec<String>,
    /// The out directory after each step, every entry (hidden ones too).
    out: Vec<BTreeMap<String, Vec<u8>>>,
}

fn run_in_tmpfs(runner: &[&str], root_a: &Path, root_b: &Path, size: &str, fill: bool) -> Steps {
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("mnt");
    let snap = tmp.path().join("snap");
    fs::create_dir_all(&mnt).unwrap();
    fs::create_dir_all(&snap).unwrap();
    let owner = if runner[0] == "sudo" {
        let id = |f: &str| {
            String::from_utf8(Command::new("id").arg(f).output().unwrap().stdout)
                .unwrap()
                .trim()
                .to_string()
        };
        format!("{}:{}", id("-u"), id("-g"))
    } else {
        String::new()
    };
    // sudo drops the environment: pass it on the command line.
    let mut args: Vec<String> = runner.iter().map(|s| s.to_string()).collect();
    args.push("env".into());
    for (k, v) in [
        ("BIN", BIN.to_string()),
        ("ROOT_A", root_a.display().to_string()),
        ("ROOT_B", root_b.display().to_string()),
        ("MNT", mnt.display().to_string()),
        ("SNAP", snap.display().to_string()),
        ("SIZE", size.to_string()),
        ("FILL", if fill { "1" } else { "0" }.to_string()),
        ("OWNER", owner),
        ("NO_COLOR", "1".to_string()),
    ] {
        args.push(format!("{k}={v}"));
    }
    args.extend(["sh".into(), "-c".into(), SCRIPT.into()]);
    let o = Command::new(&args[0]).args(&args[1..]).output().unwrap();
    assert!(
        o.status.success(),
        "the namespace script failed ({:?}): {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    let read = |name: &str| fs::read_to_string(snap.join(name)).unwrap_or_default();
    Steps {
        rc: (1..=3)
            .map(|n| read(&format!("{n}.rc")).trim().parse().unwrap())
            .collect(),
        stderr: (1..=3).map(|n| read(&format!("{n}.stderr"))).collect(),
        out: (1..=3)
            .map(|n| all_entries(&snap.join(format!("out{n}"))))
            .collect(),
    }
}

/// The failed build's message names a file under the out directory and
/// the cause.
fn assert_clear_enospc(stderr: &str) {
    eprintln!("the failed build said: {}", stderr.trim());
    assert!(
        stderr.contains("No space left on device"),
        "no ENOSPC in: {stderr}"
    );
    assert!(
        stderr.contains("/out/") && stderr.contains('`'),
        "the message names no file under the out directory: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

fn strays(out: &BTreeMap<String, Vec<u8>>) -> Vec<&String> {
    out.keys()
        .filter(|p| p.contains(".dify-cfg-tmp-") || p.contains(".dify-cfg-old-"))
        .collect()
}

#[test]
fn a_full_disk_fails_clearly_and_keeps_the_previous_output() {
    let Some(runner) = namespace_runner() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    copy_fleet(&a);
    copy_fleet(&b);
    set_clinic_description(&b, "Branch clinic, changed");
    let steps = run_in_tmpfs(&runner, &a, &b, "8m", true);
    assert_eq!(steps.rc[0], 0, "the first build fails: {}", steps.stderr[0]);
    assert_eq!(
        steps.rc[1], 2,
        "the build on a full disk: {}",
        steps.stderr[1]
    );
    assert_clear_enospc(&steps.stderr[1]);
    assert!(
        steps.out[1] == steps.out[0],
        "the failed build changed the out directory: {:?}",
        changed(&steps.out[0], &steps.out[1])
    );
    assert_eq!(steps.rc[2], 0, "with room again: {}", steps.stderr[2]);
    assert!(
        strays(&steps.out[2]).is_empty(),
        "{:?}",
        strays(&steps.out[2])
    );
    assert!(steps.out[2] != steps.out[0], "the last build wrote nothing");
}

#[test]
fn a_fleet_too_big_for_the_disk_fails_clearly_and_keeps_the_previous_output() {
    let Some(runner) = namespace_runner() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    copy_fleet(&a);
    copy_fleet(&b);
    set_clinic_description(&b, "Branch clinic, changed");
    add_clinics(&b, 11..60);
    // Room for the eleven sites, not for sixty.
    let steps = run_in_tmpfs(&runner, &a, &b, "3m", false);
    assert_eq!(steps.rc[0], 0, "the first build fails: {}", steps.stderr[0]);
    assert_eq!(
        steps.rc[1], 2,
        "the build too big for the disk: {}",
        steps.stderr[1]
    );
    assert_clear_enospc(&steps.stderr[1]);
    // Each site the first build wrote is intact; no new site appeared.
    let sites = |out: &BTreeMap<String, Vec<u8>>| -> BTreeMap<String, Vec<u8>> {
        out.iter()
            .filter(|(p, _)| !p.starts_with('.'))
            .map(|(p, b)| (p.clone(), b.clone()))
            .collect()
    };
    assert!(
        sites(&steps.out[1]) == sites(&steps.out[0]),
        "the failed build changed site trees: {:?}",
        changed(&steps.out[0], &steps.out[1])
    );
    assert!(
        strays(&steps.out[1]).is_empty(),
        "the failed build left {:?}",
        strays(&steps.out[1])
    );
    // Still too big: the third build fails the same way, the trees stay.
    assert_eq!(steps.rc[2], 2, "{}", steps.stderr[2]);
    assert!(sites(&steps.out[2]) == sites(&steps.out[0]));
}

fn changed<'a>(
    before: &'a BTreeMap<String, Vec<u8>>,
    after: &'a BTreeMap<String, Vec<u8>>,
) -> Vec<&'a String> {
    before
        .keys()
        .chain(after.keys())
        .filter(|k| before.get(*k) != after.get(*k))
        .collect()
}

//! A test hook: named crash points. With `DIFY_CFG_CRASH_AT=<point>[:<nth>]`
//! in its environment, the process sends itself SIGKILL the `nth` time
//! (default 1) it passes `point`: no destructor runs, nothing is flushed,
//! exactly as when it is killed from outside at that moment. Without the
//! variable a point costs one load of a once-read setting.
//!
//! The points sit where what is on disk changes, so that `tests/it/crash.rs`
//! can stop `build` and `commit` between any two such changes and check what
//! a kill there leaves. This is not an interface for users.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Build: the out directory is locked and an earlier run's leftovers are gone.
pub const OUT_LOCKED: &str = "out-locked";
/// Build: one file written into a site's staging directory (per file).
pub const OUT_FILE: &str = "out-file";
/// Build: one tree staged, complete, beside its directory (per tree).
pub const OUT_STAGED: &str = "out-staged";
/// Build: every staged file made durable.
pub const OUT_SYNCED: &str = "out-synced";
/// Build: one staged tree swapped in (per tree).
pub const OUT_SWAPPED: &str = "out-swapped";
/// Build: the tree of a site no longer in the sources set aside (per tree).
pub const OUT_RETIRED: &str = "out-retired";
/// Build: one replaced or retired tree removed (per tree).
pub const OUT_REMOVED: &str = "out-removed";
/// Commit: every object written, no branch touched yet.
pub const REFS_OBJECTS: &str = "refs-objects";
/// Commit: the repository's branch-move lock held, stale locks cleared.
pub const REFS_LOCKED: &str = "refs-locked";
/// Commit: the journal naming the refs to lock written.
pub const REFS_JOURNAL: &str = "refs-journal";
/// Commit: one ref's `.lock` file created and written (per branch).
pub const REFS_REF_LOCKED: &str = "refs-ref-locked";
/// Commit: one branch's reflog entry written (per branch).
pub const REFS_REFLOG: &str = "refs-reflog";
/// Commit: one ref's lock file renamed over it (per branch).
pub const REFS_MOVED: &str = "refs-moved";
/// Commit: the journal removed.
pub const REFS_DONE: &str = "refs-done";

/// Every crash point, in the order a build, then a commit, passes them.
pub const POINTS: &[&str] = &[
    OUT_LOCKED,
    OUT_FILE,
    OUT_STAGED,
    OUT_SYNCED,
    OUT_SWAPPED,
    OUT_RETIRED,
    OUT_REMOVED,
    REFS_OBJECTS,
    REFS_LOCKED,
    REFS_JOURNAL,
    REFS_REF_LOCKED,
    REFS_REFLOG,
    REFS_MOVED,
    REFS_DONE,
];

/// The environment variable that arms a crash point.
pub const VARIABLE: &str = "DIFY_CFG_CRASH_AT";

struct Armed {
    point: String,
    nth: u64,
}

static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
static PASSED: AtomicU64 = AtomicU64::new(0);

/// `<point>[:<nth>]`, with `nth` at least 1; anything else arms nothing.
fn parse(spec: &str) -> Option<Armed> {
    let (point, nth) = match spec.split_once(':') {
        Some((p, n)) => (p, n.parse().ok().filter(|n| *n >= 1)?),
        None => (spec, 1),
    };
    POINTS.contains(&point).then(|| Armed {
        point: point.to_string(),
        nth,
    })
}

/// Pass the crash point `name`: SIGKILL this process if the hook is armed
/// at it and this is the armed occurrence.
pub fn point(name: &str) {
    let armed = ARMED.get_or_init(|| std::env::var(VARIABLE).ok().and_then(|s| parse(&s)));
    if let Some(a) = armed
        && a.point == name
        && PASSED.fetch_add(1, Ordering::SeqCst) + 1 == a.nth
    {
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_points_and_positive_counts_arm() {
        let armed = parse("out-swapped:3").unwrap();
        assert_eq!((armed.point.as_str(), armed.nth), (OUT_SWAPPED, 3));
        assert_eq!(parse(REFS_DONE).unwrap().nth, 1);
        for bad in ["out-swaped", "out-swapped:0", "out-swapped:x", "", ":2"] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn points_are_unique() {
        let mut sorted = POINTS.to_vec();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), POINTS.len());
    }
}

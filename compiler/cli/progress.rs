//! The progress bar of a long run (`build`, `commit`, `diff`, `audit`): on
//! stderr, only when stderr is a terminal, only once the run counts more
//! than [`MANY_SITES`] sites, and never with `--quiet`; so pipes, CI logs
//! and every tested output are without one. [`Output`](super::output::Output)
//! clears it before it prints anything.

use std::sync::{Mutex, PoisonError};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::driver::Progress;

/// A run of more sites than this shows a bar.
pub const MANY_SITES: u64 = 20;

/// A run's progress bar, hidden until the run has many sites.
pub struct Bar {
    bar: ProgressBar,
    /// Where it draws once the run has many sites; `None` where it may
    /// not be shown, or once it is.
    target: Mutex<Option<ProgressDrawTarget>>,
}

impl Bar {
    /// A bar for the command `what`, drawn into `target` once the run has
    /// many sites, never when there is none.
    pub fn new(what: &'static str, target: Option<ProgressDrawTarget>) -> Bar {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::hidden());
        let style =
            ProgressStyle::with_template("{prefix} [{bar:40}] {pos}/{len} sites, {elapsed}")
                .map(|s| s.progress_chars("=> "))
                .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(what);
        Bar {
            bar,
            target: Mutex::new(target),
        }
    }

    /// Run `f` (which prints) with the bar out of the way.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.bar.suspend(f)
    }

    /// The run is over: the bar goes.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Progress for Bar {
    fn more(&self, n: usize) {
        self.bar.inc_length(n as u64);
        if self.bar.length().unwrap_or(0) > MANY_SITES {
            let target = self
                .target
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(target) = target {
                self.bar.set_draw_target(target);
                self.bar.force_draw();
            }
        }
    }

    fn done(&self, n: usize) {
        self.bar.inc(n as u64);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// A terminal that keeps what is drawn on it.
    #[derive(Debug, Default, Clone)]
    struct Screen(Arc<Mutex<String>>);

    impl Screen {
        fn take(&self) -> String {
            std::mem::take(&mut *self.0.lock().unwrap())
        }
        fn put(&self, s: &str) -> std::io::Result<()> {
            self.0.lock().unwrap().push_str(s);
            Ok(())
        }
    }

    impl indicatif::TermLike for Screen {
        fn width(&self) -> u16 {
            100
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.put(&format!("{s}\n"))
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.put(s)
        }
        fn clear_line(&self) -> std::io::Result<()> {
            self.put("<clear>")
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn on(screen: &Screen) -> Option<ProgressDrawTarget> {
        Some(ProgressDrawTarget::term_like(Box::new(screen.clone())))
    }

    #[test]
    fn a_bar_shows_once_the_run_has_many_sites_and_goes_at_the_end() {
        let screen = Screen::default();
        let bar = Bar::new("build", on(&screen));
        // Twenty sites are not many: nothing is drawn.
        bar.more(20);
        bar.done(20);
        assert_eq!(screen.take(), "");
        // One more is: the bar appears, counts, and is cleared.
        bar.more(1);
        let first = screen.take();
        assert!(
            first.contains("build [") && first.contains("20/21 sites"),
            "{first}"
        );
        bar.done(1);
        assert!(screen.take().contains("21/21 sites"));
        bar.suspend(|| ());
        bar.finish();
        assert!(screen.take().contains("<clear>"));
    }

    #[test]
    fn without_a_terminal_or_with_few_sites_there_is_no_bar() {
        let hidden = Bar::new("audit", None);
        hidden.more(1000);
        hidden.done(1000);
        hidden.finish();
        assert!(hidden.bar.is_hidden());
        let screen = Screen::default();
        let few = Bar::new("diff", on(&screen));
        few.more(MANY_SITES as usize);
        few.done(MANY_SITES as usize);
        few.finish();
        assert_eq!(screen.take(), "");
    }
}

//! How far a long run is, for whoever shows it (the command line's
//! progress bar): the sites a command will work on, and each one done.
//! The stages below report nothing; the commands that loop over sites
//! (`build`, `commit`, `diff`, `audit`) tell a [`Progress`] as they go.

/// Told how far a run is. Called from the rendering workers too.
pub trait Progress: Sync {
    /// `n` more sites to work on.
    fn more(&self, n: usize);
    /// `n` sites done.
    fn done(&self, n: usize);
}

/// A run nobody watches (the report's audit, tests).
pub struct Silent;

impl Progress for Silent {
    fn more(&self, _: usize) {}
    fn done(&self, _: usize) {}
}

//! What every stage uses: the source map, diagnostics, units and the
//! predicates on names and URLs; and the crash points' test hook.
pub mod codes;
pub mod crash;
pub mod credentials;
pub mod diagnostic;
pub mod names;
pub mod source;
pub mod units;

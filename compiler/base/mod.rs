//! What every stage uses: the source map, diagnostics and units.
pub mod diagnostic;
pub mod names;
pub mod source;
pub mod units;

//! Stages 1 to 3: load the input files, parse each into a spanned layer,
//! resolve `extends` chains into merged trees.
pub mod layer;
pub mod literals;
pub mod load;
pub mod parse;
pub mod resolve;
pub mod root;
pub mod schema;
pub mod templates;

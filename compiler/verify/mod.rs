//! Read-back checks of rendered files.
pub mod crosscheck;
pub mod squid;
pub mod tls;

//! The built-in templates, compiled into the binary; a config root's own
//! `templates/` directory overrides them file by file.
pub const BUILTIN_TEMPLATES: &[(&str, &str)] = &[];

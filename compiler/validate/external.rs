//! An external PostgreSQL or Redis server: host, port, database name.

use std::net::IpAddr;
use std::str::FromStr;

use super::context::Cx;
use crate::base::codes::Code;
use crate::base::diagnostic::Diagnostic;
use crate::base::names::{is_hostname, is_label_key};
use crate::input::layer;
use crate::model::*;

/// `[<key>]` (`database.external` or `redis.external`): the server's host
/// (required), its port (`default_port` when unset) and database name.
pub(super) fn external(
    cx: &mut Cx<'_>,
    e: &layer::ExternalLayer,
    key: &str,
    default_port: u16,
) -> Option<External> {
    let host = match &e.host {
        Some(h) if is_hostname(h.get_ref()) || IpAddr::from_str(h.get_ref()).is_ok() => {
            h.get_ref().clone()
        }
        Some(h) => {
            cx.err(
                Diagnostic::error(
                    Code::InvalidName,
                    format!("`{}` is not a host name or address", h.get_ref()),
                )
                .at(h.span())
                .help("write a DNS name such as `db.internal.example.org` or an IP address"),
            );
            return None;
        }
        None => {
            cx.missing(&format!("{key}.host"), "name the external server's host");
            return None;
        }
    };
    let port = cx.port(&e.port, &format!("{key}.port"), default_port);
    let database = match &e.database {
        Some(d) if is_label_key(d.get_ref()) => Some(d.get_ref().clone()),
        Some(d) => {
            cx.err(
                Diagnostic::error(
                    Code::InvalidName,
                    format!("`{}` is not a database name", d.get_ref()),
                )
                .at(d.span())
                .help("use lower-case letters, digits, `_` and `-`"),
            );
            None
        }
        None => None,
    };
    Some(External {
        host,
        port,
        database,
    })
}

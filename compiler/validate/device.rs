//! `[device]`: the box a compose site runs on (memory, CPU cores and the
//! share reserved for the OS and Docker). Helm sites have none.

use toml::Spanned;

use super::context::Cx;
use crate::base::codes::Code;
use crate::base::diagnostic::Diagnostic;
use crate::base::units::parse_percent;
use crate::input::layer::{Layer, Target};
use crate::model::*;

/// The box, when every part of it is set and valid. A compose site must
/// have one.
pub(super) fn device(cx: &mut Cx<'_>, layer: &Layer, target: Target) -> Option<Device> {
    match (&layer.device, target) {
        (None, Target::Helm) => None,
        (None, Target::Compose) => {
            cx.missing("device", "a compose site runs on one box: set `[device] memory = \"4GiB\"`, `cpus = 2`, `reserve = \"20%\"`");
            None
        }
        (Some(d), _) => {
            let memory = match &d.memory {
                Some(_) => cx.bytes(&d.memory, "device.memory", None),
                None => {
                    cx.missing(
                        "device.memory",
                        "set the box's memory, e.g. `memory = \"4GiB\"`",
                    );
                    None
                }
            };
            let cpus = match &d.cpus {
                Some(_) => cx.cores(&d.cpus, "device.cpus", None),
                None => {
                    cx.missing("device.cpus", "set the box's CPU cores, e.g. `cpus = 2`");
                    None
                }
            };
            let reserve = reserve(cx, &d.reserve);
            match (memory, cpus, reserve) {
                (Some(memory), Some(cpus), Some(reserve_percent)) => Some(Device {
                    memory,
                    cpus,
                    reserve_percent,
                }),
                _ => None,
            }
        }
    }
}

/// `device.reserve`: a percentage below 100; 20% by default.
fn reserve(cx: &mut Cx<'_>, v: &Option<Spanned<String>>) -> Option<u8> {
    match v {
        Some(r) => match parse_percent(r.get_ref()) {
            Ok(p) if p < 100 => Some(p),
            Ok(_) => {
                cx.err(
                    Diagnostic::error(
                        Code::OutOfRange,
                        "a reserve of 100% leaves nothing for the services",
                    )
                    .at(r.span())
                    .help("keep 10% to 30% for the OS and Docker, e.g. `20%`"),
                );
                None
            }
            Err(e) => {
                cx.err(
                    Diagnostic::error(Code::InvalidUnit, e.message)
                        .at(r.span())
                        .label("`device.reserve` takes a percentage")
                        .help(e.help),
                );
                None
            }
        },
        None => {
            cx.default("device.reserve", "20%");
            Some(20)
        }
    }
}

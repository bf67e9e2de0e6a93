//! `[device]`: the box a compose site runs on (memory, CPU cores, the share
//! reserved for the OS and Docker, and the headroom kept above the measured
//! memory floors). Helm sites have none.

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
            let reserve = percent(cx, &d.reserve, "device.reserve", 20, RESERVE);
            let headroom = percent(
                cx,
                &d.headroom,
                "device.headroom",
                DEFAULT_HEADROOM_PERCENT,
                HEADROOM,
            );
            match (memory, cpus, reserve, headroom) {
                (Some(memory), Some(cpus), Some(reserve_percent), Some(headroom_percent)) => {
                    Some(Device {
                        memory,
                        cpus,
                        reserve_percent,
                        headroom_percent,
                    })
                }
                _ => None,
            }
        }
    }
}

/// What a percentage of 100 or more means, and what to write instead.
struct Full {
    message: &'static str,
    help: &'static str,
}

const RESERVE: Full = Full {
    message: "a reserve of 100% leaves nothing for the services",
    help: "keep 10% to 30% for the OS and Docker, e.g. `20%`",
};

const HEADROOM: Full = Full {
    message: "a headroom of 100% or more asks every limit to double the measured floor",
    help: "keep 10% to 30% above the measured floors, e.g. `10%`",
};

/// `device.reserve` or `device.headroom`: a percentage below 100, or the
/// default (recorded).
fn percent(
    cx: &mut Cx<'_>,
    v: &Option<Spanned<String>>,
    key: &str,
    default: u8,
    full: Full,
) -> Option<u8> {
    match v {
        Some(r) => match parse_percent(r.get_ref()) {
            Ok(p) if p < 100 => Some(p),
            Ok(_) => {
                cx.err(
                    Diagnostic::error(Code::OutOfRange, full.message)
                        .at(r.span())
                        .help(full.help),
                );
                None
            }
            Err(e) => {
                cx.err(
                    Diagnostic::error(Code::InvalidUnit, e.message)
                        .at(r.span())
                        .label(format!("`{key}` takes a percentage"))
                        .help(e.help),
                );
                None
            }
        },
        None => {
            cx.default(key, format!("{default}%"));
            Some(default)
        }
    }
}

//! How much room a valid site has left under the two budgets that keep a
//! box alive: its memory (the services' limits against the device less
//! its reserve) and its PostgreSQL connections (every pool at its largest
//! against `max-connections` less a reserve). The same sums the
//! `memory-budget` and `connection-budget` rules refuse a site by, for
//! `check` to show at every site, not only where one is exceeded.

use serde::Serialize;

use super::{budget, connections};
use crate::base::units::MIB;
use crate::model::Site;

/// A site's room under both budgets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Headroom {
    /// `None` where the site has no box (helm: the cluster schedules).
    pub memory: Option<MemoryRoom>,
    pub connections: ConnectionRoom,
}

/// The memory budget of a compose box.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct MemoryRoom {
    /// Every service's limit times its replicas, in bytes.
    pub used_bytes: u64,
    /// The device less its reserve, in bytes.
    pub budget_bytes: u64,
    /// What is left (0 when over: such a site does not validate).
    pub headroom_bytes: u64,
    pub device_bytes: u64,
    pub reserve_percent: u8,
}

/// The connection budget of the site's PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ConnectionRoom {
    /// Every pool at its largest.
    pub used: u32,
    /// `max-connections` less the reserve.
    pub available: u32,
    pub headroom: u32,
    pub max_connections: u32,
    pub reserve: u32,
}

/// The room a site has left.
pub fn headroom(site: &Site) -> Headroom {
    let memory = site.device.as_ref().map(|d| {
        let used = budget::memory_used(&site.services).0;
        let budget = d.budget().0;
        MemoryRoom {
            used_bytes: used,
            budget_bytes: budget,
            headroom_bytes: budget.saturating_sub(used),
            device_bytes: d.memory.0,
            reserve_percent: d.reserve_percent,
        }
    });
    let shares = connections::shares(&site.services, &site.database, site.vector_store);
    let used = connections::sum(&shares);
    let max_connections = site.database.max_connections;
    let (reserve, available) = connections::available(max_connections);
    Headroom {
        memory,
        connections: ConnectionRoom {
            used,
            available,
            headroom: available.saturating_sub(used),
            max_connections,
            reserve,
        },
    }
}

impl MemoryRoom {
    /// `3280MiB of 3481MiB (201MiB free)`.
    pub fn text(&self) -> String {
        format!(
            "{} of {} ({} free)",
            mib(self.used_bytes),
            mib(self.budget_bytes),
            mib(self.headroom_bytes)
        )
    }
}

impl ConnectionRoom {
    /// `42 of 90 (48 free; max-connections 100 less 10 reserved)`.
    pub fn text(&self) -> String {
        format!(
            "{} of {} ({} free; max-connections {} less {} reserved)",
            self.used, self.available, self.headroom, self.max_connections, self.reserve
        )
    }
}

/// A size in MiB, the unit the edge profiles budget in (a tenth where it
/// is not whole).
fn mib(bytes: u64) -> String {
    if bytes.is_multiple_of(MIB) {
        format!("{}MiB", bytes / MIB)
    } else {
        format!("{:.1}MiB", bytes as f64 / MIB as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ServiceKind;
    use crate::plan::fixtures;

    #[test]
    fn an_edge_site_has_the_room_its_budgets_leave() {
        let site = fixtures::edge();
        let room = headroom(&site);
        let device = site.device.as_ref().unwrap();
        let used: u64 = site
            .services
            .values()
            .map(|s| s.memory.0 * u64::from(s.replicas))
            .sum();
        let memory = room.memory.unwrap();
        assert_eq!(memory.used_bytes, used);
        assert_eq!(memory.budget_bytes, device.budget().0);
        assert_eq!(memory.headroom_bytes, device.budget().0 - used);
        // The connection budget test's pools: api 15, worker 15, beat 2,
        // plugin daemon 10, of max-connections less a tenth (at least 5).
        let c = room.connections;
        assert_eq!(c.used, 42);
        assert_eq!(c.max_connections, site.database.max_connections);
        assert_eq!(c.available + c.reserve, c.max_connections);
        assert_eq!(c.headroom, c.available - 42);
        assert_eq!(
            c.text(),
            format!(
                "42 of {} ({} free; max-connections {} less {} reserved)",
                c.available, c.headroom, c.max_connections, c.reserve
            )
        );
    }

    #[test]
    fn more_replicas_use_more_and_a_site_without_a_box_has_no_memory_budget() {
        let mut site = fixtures::edge();
        let before = headroom(&site).memory.unwrap();
        let mut services = (*site.services).clone();
        let web = services.get_mut(&ServiceKind::Web).unwrap();
        web.replicas = 2;
        let web_memory = web.memory.0;
        site.services = services.into();
        let after = headroom(&site).memory.unwrap();
        assert_eq!(after.used_bytes, before.used_bytes + web_memory);
        let room = MemoryRoom {
            used_bytes: 3280 * MIB,
            budget_bytes: 3481 * MIB,
            headroom_bytes: 201 * MIB,
            device_bytes: 4096 * MIB,
            reserve_percent: 15,
        };
        assert_eq!(room.text(), "3280MiB of 3481MiB (201MiB free)");
        assert_eq!(mib(4 * 1024 * MIB), "4096MiB");
        assert_eq!(mib(MIB + MIB / 2), "1.5MiB");
        site.device = None;
        assert_eq!(headroom(&site).memory, None);
    }
}

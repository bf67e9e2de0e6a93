//! The pull agent of a compose box: deploy/apply.sh, its per-site settings
//! deploy/agent.conf, and its systemd units (the pull service and timer, and
//! the boot unit that loads the last applied firewall).
//!
//! apply.sh and the two services are the same bytes at every site: their
//! context holds only what dify-cfg fixes for the whole fleet
//! ([`AgentContext`]), so a template cannot print a site's value into them
//! (an undefined variable is an error). What differs between sites is data
//! in agent.conf ([`SiteValues`]), and the timer's schedule
//! ([`ScheduleContext`]) in the timer.

use serde::Serialize;

use super::common::{SiteInfo, site_info};
use super::firewall::{FIREWALL_DECLARED, FIREWALL_FLUSHED};
use super::{
    Artifact, COMPOSE_FILE, Context, RULES_V4_FILE, RULES_V6_FILE, TEMPLATE_AGENT_CONF,
    TEMPLATE_APPLY, TEMPLATE_FIREWALL_SERVICE, TEMPLATE_PULL_SERVICE, TEMPLATE_PULL_TIMER,
};
use crate::base::units::{TimeSpan, TimeUnit};
use crate::dify;
use crate::model::{ServiceKind, Site};

/// Where the pull agent's files go in the site tree.
pub const PULL_SCRIPT: &str = "deploy/apply.sh";
pub const PULL_CONF: &str = "deploy/agent.conf";
pub const PULL_SERVICE: &str = "deploy/dify-cfg-pull.service";
pub const PULL_TIMER: &str = "deploy/dify-cfg-pull.timer";
pub const FIREWALL_SERVICE: &str = "deploy/dify-cfg-firewall.service";

/// Where the operator installs the pull agent on a box: the script (copied
/// from a verified tree), its per-site settings and the units.
pub const PULL_INSTALL_SCRIPT: &str = "/opt/dify-cfg/apply.sh";
pub const PULL_INSTALL_CONF: &str = "/etc/dify-cfg/agent.conf";
pub const PULL_UNIT_DIR: &str = "/etc/systemd/system";
/// The agent's state: the mirror, releases, the applied commit, the saved
/// firewall the boot unit loads.
pub const PULL_STATE_DIR: &str = "/var/lib/dify-cfg";
/// The operator's file of `export NAME=...` lines for the secret
/// references of compose.yaml. Never in the repository.
pub const PULL_SECRETS_ENV: &str = "/etc/dify-cfg/secrets.env";
/// Releases kept on the box: the running one and two before it.
pub const PULL_KEEP_RELEASES: u32 = 3;
/// Where the agent of a box with `[gitops] report-applied` pushes the
/// commit it applied last, followed by the site branch's name:
/// `refs/dify-cfg/applied/sites/clinic-01`.
pub const PULL_APPLIED_REF_PREFIX: &str = "refs/dify-cfg/applied/";
/// Under the state directory: the backups taken before a change of Dify
/// release, one directory each.
pub const PULL_BACKUP_DIR: &str = "backups";
/// Exit status of apply.sh when another run (or a pending rollback) holds
/// the lock: EX_TEMPFAIL, not a failure of the unit.
pub const PULL_BUSY_EXIT: u8 = 75;
/// How long after boot the first pull runs: docker and the network are up.
pub const PULL_BOOT_DELAY: TimeSpan = TimeSpan::new(2, TimeUnit::Minutes);
/// The longest one run may take (a hung fetch or pull ends there, and the
/// run's interrupt handler rolls the firewall back).
pub const PULL_RUN_LIMIT: TimeSpan = TimeSpan::new(1, TimeUnit::Hours);
/// The longest confirmation window apply.sh accepts from agent.conf or
/// its environment (validation allows at most 30 minutes).
pub const PULL_MAX_CONFIRM_SECONDS: u32 = 86_400;

/// A deploy file of the tree and where the operator installs it.
#[derive(Debug, Clone, Serialize)]
pub struct Installed {
    pub release: &'static str,
    pub installed: String,
}

/// What every site's pull agent has alike: paths, names and limits that
/// dify-cfg fixes. apply.sh and the services are rendered from this alone.
#[derive(Debug, Clone, Serialize)]
pub struct AgentContext {
    pub state_dir: &'static str,
    pub secrets_env: &'static str,
    /// Where the installed agent reads its per-site settings.
    pub agent_conf: &'static str,
    pub install_script: &'static str,
    pub unit_dir: &'static str,
    pub service_unit: &'static str,
    pub timer_unit: &'static str,
    pub firewall_unit: &'static str,
    /// The script and agent.conf in the tree (apply.sh compares them with
    /// the files it runs as and reads).
    pub script_release: &'static str,
    pub conf_release: &'static str,
    /// The units and where they are installed, so that apply.sh can say
    /// when a release changes them.
    pub installed_units: Vec<Installed>,
    pub boot_delay: String,
    pub run_limit: String,
    pub keep_releases: u32,
    pub busy_exit: u8,
    pub max_confirm_seconds: u32,
    /// Files a release must have besides those its manifest lists.
    pub required: Vec<&'static str>,
    pub rules_v4: &'static str,
    pub rules_v6: &'static str,
    /// The chains the rules files declare and flush: what a rollback puts
    /// back from the saved rules.
    pub firewall_declared: String,
    pub firewall_flushed: String,
    /// Where the applied commit is reported (`REPORT=yes`), before the
    /// branch's name.
    pub applied_ref_prefix: &'static str,
    pub backup_dir: &'static str,
}

/// The timer's schedule: `[gitops] pull-interval`, per site.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleContext {
    /// systemd time spans.
    pub pull_interval: String,
    pub randomized_delay: String,
}

/// The values of agent.conf: what the agent of one site needs to know.
#[derive(Debug, Clone, Serialize)]
pub struct SiteValues {
    pub site: SiteInfo,
    pub repository: String,
    /// The site branch, `{prefix}{site}`.
    pub branch: String,
    /// The confirmation window, in seconds and as written.
    pub confirm_timeout_seconds: u64,
    pub confirm_timeout: String,
    pub backup: BackupValues,
    /// `yes`: push the applied commit to `{PULL_APPLIED_REF_PREFIX}{branch}`.
    pub report: &'static str,
}

/// What the agent backs up before it applies a tree of another Dify
/// release: the compose service of the site's PostgreSQL (`none` when the
/// database is external), and each storage volume as the compose service
/// that mounts it and where (`api:/app/api/storage`, comma-separated).
#[derive(Debug, Clone, Serialize)]
pub struct BackupValues {
    pub keep: u32,
    pub db: &'static str,
    pub storage: String,
}

/// The context of one pull-agent file: the fleet-wide part, plus the
/// schedule for the timer and the site's values for agent.conf.
#[derive(Debug, Clone, Serialize)]
pub struct PullContext {
    #[serde(flatten)]
    pub agent: AgentContext,
    #[serde(flatten)]
    pub schedule: Option<ScheduleContext>,
    #[serde(flatten)]
    pub values: Option<SiteValues>,
}

/// The timer's random delay: a tenth of the interval, between 1s and 60s, so
/// that a fleet does not fetch all at once and a short interval stays short.
pub fn randomized_delay(interval: TimeSpan) -> TimeSpan {
    let tenth = (interval.seconds() / 10).clamp(1, 60);
    TimeSpan::new(tenth as u32, TimeUnit::Seconds)
}

/// The fleet-wide part: the same value for every site.
fn agent_context() -> AgentContext {
    let installed_units = [
        (
            PULL_SERVICE,
            format!("{PULL_UNIT_DIR}/{TEMPLATE_PULL_SERVICE}"),
        ),
        (PULL_TIMER, format!("{PULL_UNIT_DIR}/{TEMPLATE_PULL_TIMER}")),
        (
            FIREWALL_SERVICE,
            format!("{PULL_UNIT_DIR}/{TEMPLATE_FIREWALL_SERVICE}"),
        ),
    ]
    .into_iter()
    .map(|(release, installed)| Installed { release, installed })
    .collect();
    AgentContext {
        state_dir: PULL_STATE_DIR,
        secrets_env: PULL_SECRETS_ENV,
        agent_conf: PULL_INSTALL_CONF,
        install_script: PULL_INSTALL_SCRIPT,
        unit_dir: PULL_UNIT_DIR,
        service_unit: TEMPLATE_PULL_SERVICE,
        timer_unit: TEMPLATE_PULL_TIMER,
        firewall_unit: TEMPLATE_FIREWALL_SERVICE,
        script_release: PULL_SCRIPT,
        conf_release: PULL_CONF,
        installed_units,
        boot_delay: PULL_BOOT_DELAY.systemd(),
        run_limit: PULL_RUN_LIMIT.systemd(),
        keep_releases: PULL_KEEP_RELEASES,
        busy_exit: PULL_BUSY_EXIT,
        max_confirm_seconds: PULL_MAX_CONFIRM_SECONDS,
        required: vec![COMPOSE_FILE, RULES_V4_FILE, RULES_V6_FILE],
        rules_v4: RULES_V4_FILE,
        rules_v6: RULES_V6_FILE,
        firewall_declared: FIREWALL_DECLARED.join(" "),
        firewall_flushed: FIREWALL_FLUSHED.join(" "),
        applied_ref_prefix: PULL_APPLIED_REF_PREFIX,
        backup_dir: PULL_BACKUP_DIR,
    }
}

/// What a backup of the site holds: its own PostgreSQL's databases (not an
/// external server's), and the volumes the api and the plugin daemon keep
/// their files on.
fn backup_values(site: &Site, keep: u32) -> BackupValues {
    let runs = |kind: ServiceKind| site.services.contains_key(&kind);
    let db = if site.database.external.is_none() && runs(ServiceKind::Db) {
        ServiceKind::Db.compose_name()
    } else {
        "none"
    };
    let storage: Vec<String> = [
        (ServiceKind::Api, dify::API_STORAGE_PATH),
        (ServiceKind::PluginDaemon, dify::PLUGIN_DAEMON_STORAGE_PATH),
    ]
    .into_iter()
    .filter(|(kind, _)| runs(*kind))
    .map(|(kind, path)| format!("{}:{path}", kind.compose_name()))
    .collect();
    BackupValues {
        keep,
        db,
        storage: if storage.is_empty() {
            "none".into()
        } else {
            storage.join(",")
        },
    }
}

/// The context of each pull-agent file of a compose site, by path; none
/// for a site without a pull agent.
pub(super) fn pull_agent(site: &Site) -> Option<Vec<(&'static str, PullContext)>> {
    let pull = site.gitops.pull?;
    let shared = |schedule, values| PullContext {
        agent: agent_context(),
        schedule,
        values,
    };
    let schedule = ScheduleContext {
        pull_interval: pull.interval.systemd(),
        randomized_delay: randomized_delay(pull.interval).systemd(),
    };
    let values = SiteValues {
        site: site_info(site),
        repository: site.gitops.repository.clone(),
        branch: site.gitops.branch(&site.name),
        confirm_timeout_seconds: pull.confirm_timeout.seconds(),
        confirm_timeout: pull.confirm_timeout.systemd(),
        backup: backup_values(site, pull.keep_backups),
        report: if pull.report_applied { "yes" } else { "no" },
    };
    Some(vec![
        (PULL_SCRIPT, shared(None, None)),
        (PULL_CONF, shared(None, Some(values))),
        (PULL_SERVICE, shared(None, None)),
        (PULL_TIMER, shared(Some(schedule), None)),
        (FIREWALL_SERVICE, shared(None, None)),
    ])
}

/// The pull agent's artifacts of a compose site (none without one).
pub(super) fn pull_agent_artifacts(site: &Site) -> Vec<Artifact> {
    let template = |path: &str| match path {
        PULL_SCRIPT => TEMPLATE_APPLY,
        PULL_CONF => TEMPLATE_AGENT_CONF,
        PULL_SERVICE => TEMPLATE_PULL_SERVICE,
        PULL_TIMER => TEMPLATE_PULL_TIMER,
        _ => TEMPLATE_FIREWALL_SERVICE,
    };
    pull_agent(site)
        .unwrap_or_default()
        .into_iter()
        .map(|(path, context)| Artifact {
            path: path.into(),
            template: template(path),
            defines: None,
            context: Context::Pull(Box::new(context)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::argocd::argocd_application;
    use crate::plan::firewall::{Family, firewall};
    use crate::plan::fixtures::edge;
    use crate::plan::plan;

    fn context(site: &Site, path: &str) -> serde_json::Value {
        let files = pull_agent(site).expect("a pull agent");
        let (_, c) = files.into_iter().find(|(p, _)| *p == path).unwrap();
        serde_json::to_value(c).unwrap()
    }

    #[test]
    fn timer_delay_is_a_tenth_of_the_interval_within_bounds() {
        let d = |amount, unit| randomized_delay(TimeSpan::new(amount, unit)).systemd();
        assert_eq!(d(5, TimeUnit::Minutes), "30s");
        assert_eq!(d(30, TimeUnit::Seconds), "3s");
        assert_eq!(d(24, TimeUnit::Hours), "60s");
        assert_eq!(d(5, TimeUnit::Seconds), "1s");
    }

    #[test]
    fn a_compose_site_gets_the_pull_agent_and_no_argocd() {
        let site = edge();
        let conf = context(&site, PULL_CONF);
        assert_eq!(conf["branch"], "sites/clinic-01");
        assert_eq!(
            conf["repository"],
            "https://git.clinics.example.org/platform/dify-fleet.git"
        );
        assert_eq!(conf["confirm_timeout_seconds"], 120);
        assert_eq!(conf["report"], "no");
        assert_eq!(
            conf["backup"],
            serde_json::json!({
                "keep": 3,
                "db": "db_postgres",
                "storage": "api:/app/api/storage,plugin_daemon:/app/storage",
            })
        );
        let timer = context(&site, PULL_TIMER);
        assert_eq!(timer["pull_interval"], "5min");
        assert_eq!(timer["randomized_delay"], "30s");
        // The rollback restores exactly what the rules files own.
        let agent = agent_context();
        let fw = firewall(&site, Family::V4);
        assert_eq!(agent.firewall_declared, fw.chains.join(" "));
        assert_eq!(agent.firewall_flushed, fw.flush.join(" "));
        let paths = plan(&site).paths();
        let installed = agent.installed_units.iter().map(|i| i.release);
        for release in installed.chain([agent.script_release, agent.conf_release]) {
            assert!(paths.contains(&release.to_string()), "{release}");
        }
        for required in &agent.required {
            assert!(paths.contains(&required.to_string()), "{required}");
        }
        assert!(argocd_application(&site).is_none());
        let mut other = site.clone();
        other.gitops.branch_prefix = "fleet/clinics/".into();
        assert_eq!(
            context(&other, PULL_CONF)["branch"],
            "fleet/clinics/clinic-01"
        );
    }

    /// apply.sh and the services see nothing of the site: the same context
    /// for two sites that differ in everything the agent knows of them.
    #[test]
    fn the_script_and_the_services_have_no_site_values() {
        let one = edge();
        let mut two = edge();
        two.name = "clinic-77".into();
        two.gitops.repository = "ssh://git@git.example.org/other.git".into();
        two.gitops.branch_prefix = "fleet/".into();
        two.gitops.pull = two.gitops.pull.map(|mut p| {
            p.confirm_timeout = TimeSpan::new(300, TimeUnit::Seconds);
            p
        });
        for path in [PULL_SCRIPT, PULL_SERVICE, FIREWALL_SERVICE] {
            let (a, b) = (context(&one, path), context(&two, path));
            assert_eq!(a, b, "{path}");
            assert!(a.get("site").is_none() && a.get("branch").is_none());
        }
        assert_ne!(context(&one, PULL_CONF), context(&two, PULL_CONF));
        // The timer knows the schedule, not the site.
        let timer = context(&one, PULL_TIMER);
        assert!(timer.get("site").is_none() && timer.get("pull_interval").is_some());
    }

    /// An external database is not the box's to dump; without the plugin
    /// daemon only the api's storage is archived; the report follows the
    /// profile.
    #[test]
    fn the_backup_follows_what_the_site_runs() {
        let mut site = edge();
        site.database.external = Some(crate::model::External {
            host: "db.example.org".into(),
            port: 5432,
            database: None,
        });
        site.services.remove(&ServiceKind::PluginDaemon);
        site.gitops.pull = site.gitops.pull.map(|mut p| {
            p.keep_backups = 7;
            p.report_applied = true;
            p
        });
        let conf = context(&site, PULL_CONF);
        assert_eq!(conf["report"], "yes");
        assert_eq!(
            conf["backup"],
            serde_json::json!({ "keep": 7, "db": "none", "storage": "api:/app/api/storage" })
        );
    }
}

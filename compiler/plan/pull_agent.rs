//! The pull agent of a compose box: deploy/apply.sh and its systemd
//! service and timer.

use serde::Serialize;

use super::common::{SiteInfo, site_info};
use super::firewall::{FIREWALL_DECLARED, FIREWALL_FLUSHED};
use super::{
    COMPOSE_FILE, RULES_V4_FILE, RULES_V6_FILE, TEMPLATE_PULL_SERVICE, TEMPLATE_PULL_TIMER,
};
use crate::base::units::{TimeSpan, TimeUnit};
use crate::model::Site;

/// Where the pull agent's files go in the site tree.
pub const PULL_SCRIPT: &str = "deploy/apply.sh";
pub const PULL_SERVICE: &str = "deploy/dify-cfg-pull.service";
pub const PULL_TIMER: &str = "deploy/dify-cfg-pull.timer";

/// Where the operator installs the pull agent on a box: the script (copied
/// from a verified tree) and the two units.
pub const PULL_INSTALL_SCRIPT: &str = "/opt/dify-cfg/apply.sh";
pub const PULL_UNIT_DIR: &str = "/etc/systemd/system";
/// The agent's state: the mirror, releases, the applied commit.
pub const PULL_STATE_DIR: &str = "/var/lib/dify-cfg";
/// The operator's file of `export NAME=...` lines for the secret
/// references of compose.yaml. Never in the repository.
pub const PULL_SECRETS_ENV: &str = "/etc/dify-cfg/secrets.env";
/// Releases kept on the box: the running one and two before it.
pub const PULL_KEEP_RELEASES: u32 = 3;
/// Exit status of apply.sh when another run (or a pending rollback) holds
/// the lock: EX_TEMPFAIL, not a failure of the unit.
pub const PULL_BUSY_EXIT: u8 = 75;
/// How long after boot the first pull runs: docker and the network are up.
pub const PULL_BOOT_DELAY: TimeSpan = TimeSpan::new(2, TimeUnit::Minutes);
/// The longest one run may take (a hung fetch or pull ends there, and the
/// run's interrupt handler rolls the firewall back).
pub const PULL_RUN_LIMIT: TimeSpan = TimeSpan::new(1, TimeUnit::Hours);

/// A deploy file of the tree and where the operator installs it.
#[derive(Debug, Clone, Serialize)]
pub struct Installed {
    pub release: &'static str,
    pub installed: String,
}

/// What the pull agent's three files (apply.sh and its systemd service and
/// timer) say.
#[derive(Debug, Clone, Serialize)]
pub struct PullContext {
    pub site: SiteInfo,
    pub repository: String,
    /// The site branch, `{prefix}{site}`.
    pub branch: String,
    pub state_dir: &'static str,
    pub secrets_env: &'static str,
    pub install_script: &'static str,
    pub unit_dir: &'static str,
    pub service_unit: &'static str,
    pub timer_unit: &'static str,
    /// The deploy files and where they are installed, so that apply.sh can
    /// say when a release changes them.
    pub installed: Vec<Installed>,
    /// The confirmation window, in seconds (apply.sh) and as written.
    pub confirm_timeout_seconds: u64,
    pub confirm_timeout: String,
    /// systemd time spans of the timer and the service.
    pub pull_interval: String,
    pub boot_delay: String,
    pub randomized_delay: String,
    pub run_limit: String,
    pub keep_releases: u32,
    pub busy_exit: u8,
    /// Files a release must have besides those its manifest lists.
    pub required: Vec<&'static str>,
    pub rules_v4: &'static str,
    pub rules_v6: &'static str,
    /// The chains the rules files declare and flush: what a rollback puts
    /// back from the saved rules.
    pub firewall_declared: String,
    pub firewall_flushed: String,
}

/// The timer's random delay: a tenth of the interval, between 1s and 60s, so
/// that a fleet does not fetch all at once and a short interval stays short.
pub fn randomized_delay(interval: TimeSpan) -> TimeSpan {
    let tenth = (interval.seconds() / 10).clamp(1, 60);
    TimeSpan::new(tenth as u32, TimeUnit::Seconds)
}

pub(super) fn pull_agent(site: &Site) -> Option<PullContext> {
    let pull = site.gitops.pull?;
    let installed = [
        (PULL_SCRIPT, PULL_INSTALL_SCRIPT.to_string()),
        (
            PULL_SERVICE,
            format!("{PULL_UNIT_DIR}/{TEMPLATE_PULL_SERVICE}"),
        ),
        (PULL_TIMER, format!("{PULL_UNIT_DIR}/{TEMPLATE_PULL_TIMER}")),
    ]
    .into_iter()
    .map(|(release, installed)| Installed { release, installed })
    .collect();
    Some(PullContext {
        site: site_info(site),
        repository: site.gitops.repository.clone(),
        branch: site.gitops.branch(&site.name),
        state_dir: PULL_STATE_DIR,
        secrets_env: PULL_SECRETS_ENV,
        install_script: PULL_INSTALL_SCRIPT,
        unit_dir: PULL_UNIT_DIR,
        service_unit: TEMPLATE_PULL_SERVICE,
        timer_unit: TEMPLATE_PULL_TIMER,
        installed,
        confirm_timeout_seconds: pull.confirm_timeout.seconds(),
        confirm_timeout: pull.confirm_timeout.systemd(),
        pull_interval: pull.interval.systemd(),
        boot_delay: PULL_BOOT_DELAY.systemd(),
        randomized_delay: randomized_delay(pull.interval).systemd(),
        run_limit: PULL_RUN_LIMIT.systemd(),
        keep_releases: PULL_KEEP_RELEASES,
        busy_exit: PULL_BUSY_EXIT,
        required: vec![COMPOSE_FILE, RULES_V4_FILE, RULES_V6_FILE],
        rules_v4: RULES_V4_FILE,
        rules_v6: RULES_V6_FILE,
        firewall_declared: FIREWALL_DECLARED.join(" "),
        firewall_flushed: FIREWALL_FLUSHED.join(" "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::argocd::argocd_application;
    use crate::plan::firewall::{Family, firewall};
    use crate::plan::fixtures::edge;
    use crate::plan::plan;

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
        let pull = pull_agent(&site).expect("a pull agent");
        assert_eq!(pull.branch, "sites/clinic-01");
        assert_eq!(
            pull.repository,
            "https://git.clinics.example.org/platform/dify-fleet.git"
        );
        assert_eq!(pull.confirm_timeout_seconds, 120);
        assert_eq!(pull.pull_interval, "5min");
        assert_eq!(pull.randomized_delay, "30s");
        // The rollback restores exactly what the rules files own.
        let fw = firewall(&site, Family::V4);
        assert_eq!(pull.firewall_declared, fw.chains.join(" "));
        assert_eq!(pull.firewall_flushed, fw.flush.join(" "));
        let paths = plan(&site).paths();
        for (release, _) in pull.installed.iter().map(|i| (i.release, &i.installed)) {
            assert!(paths.contains(&release.to_string()), "{release}");
        }
        for required in &pull.required {
            assert!(paths.contains(&required.to_string()), "{required}");
        }
        assert!(argocd_application(&site).is_none());
        let mut other = site.clone();
        other.gitops.branch_prefix = "fleet/clinics/".into();
        assert_eq!(
            pull_agent(&other).unwrap().branch,
            "fleet/clinics/clinic-01"
        );
    }
}

//! dify.env: the compose env file of the dify-api services.

use serde::Serialize;

use super::common::{KeyValue, SiteInfo, kv, site_info};
use super::settings::{EnvPlan, EnvSection};
use crate::model::Site;

#[derive(Debug, Clone, Serialize)]
pub struct DotEnvContext {
    pub site: SiteInfo,
    pub sections: Vec<EnvSection>,
    /// The site's `[env]`, which wins over the computed settings.
    pub site_env: Vec<KeyValue>,
    /// `[env]` names whose values cannot be written in an env file; they are
    /// set in compose.yaml instead.
    pub moved: Vec<String>,
    /// Names of secrets, set in compose.yaml by reference.
    pub secrets: Vec<String>,
}

pub(super) fn dotenv(site: &Site, env: &EnvPlan) -> DotEnvContext {
    DotEnvContext {
        site: site_info(site),
        sections: env.sections.clone(),
        site_env: env.site_dotenv.iter().map(|(k, v)| kv(k, v)).collect(),
        moved: env.inline.keys().cloned().collect(),
        secrets: site.secrets.keys().cloned().collect(),
    }
}

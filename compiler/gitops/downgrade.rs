//! Downgrades refused unless the site says so: `commit` compares the
//! release a site renders now with the one its site branch's tip records
//! (its `manifest.json`, the record of what was committed), and refuses
//! an older one (`release-downgrade`) unless `[dify] allow-downgrade =
//! true`. The compiler alone cannot know what a box runs; the branch is
//! what it was given.

use crate::base::codes::Code;
use crate::base::diagnostic::Diagnostic;
use crate::dify::compat::release_order;
use crate::gitops::changes::{Files, recorded_release};
use crate::validate::ValidSite;

/// `release-downgrade`: the site branch `branch` records (in its tip's
/// `old` files) a newer release than the site renders now, and the site
/// does not say `[dify] allow-downgrade = true`. A release's migrations
/// are not undone by running an older one on its database.
pub fn downgrade(v: &ValidSite, old: &Files, branch: &str) -> Option<Diagnostic> {
    let recorded = recorded_release(old)?;
    let release = &v.site.dify_version;
    if v.site.waivers.allow_downgrade || release_order(&recorded, release).is_le() {
        return None;
    }
    Some(
        Diagnostic::error(
            Code::ReleaseDowngrade,
            format!(
                "site `{}` would go from Dify {recorded} back to Dify {release}",
                v.site.name
            ),
        )
        .at(v.release_span.clone())
        .label(format!("Dify {release}, older than the {recorded} on `{branch}`"))
        .note(format!(
            "`{branch}` records Dify {recorded} (its manifest.json); Dify {recorded}'s database migrations are not undone by running {release} on the same database"
        ))
        .help(format!(
            "to go back on purpose (after restoring the site's database from a backup taken on {release}), set `[dify] allow-downgrade = true` beside the version, and remove it once the downgrade is committed; else set `[dify] version = \"{recorded}\"`"
        )),
    )
}

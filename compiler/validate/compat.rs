//! The compatibility lock and `[dify]`'s explicit exceptions to it: the
//! plugin daemon, sandbox, agent backend and local sandbox a site runs must
//! make one of the combinations its release runs with
//! (`dify/compat.toml`); a pinned tag outside them is `image-incompatible`,
//! an error unless `allow-untested-images = true` makes it a warning (each
//! such image recorded in the manifest). `allow-downgrade` is read here and
//! used by `commit` (`gitops/rollout.rs`).

use super::context::Cx;
use crate::base::codes::Code;
use crate::base::diagnostic::Diagnostic;
use crate::base::source::Span;
use crate::dify::compat::{self, COMPONENTS, Combination};
use crate::input::layer::{ImageLayer, Layer};
use crate::model::{ImageRef, Images, ReleaseWaivers};

/// `[dify] allow-downgrade` and `allow-untested-images`, and the lock
/// checked against the site's images.
pub(super) fn waivers(
    cx: &mut Cx<'_>,
    layer: &Layer,
    release: &str,
    images: &Images,
) -> ReleaseWaivers {
    let dl = layer.dify.clone().unwrap_or_default();
    let allow_downgrade = cx.flag(&dl.allow_downgrade, "dify.allow-downgrade", false);
    let allow_untested = cx.flag(
        &dl.allow_untested_images,
        "dify.allow-untested-images",
        false,
    );
    let untested_images = check_lock(cx, layer, release, images, allow_untested);
    ReleaseWaivers {
        allow_downgrade,
        untested_images,
    }
}

/// The locked images of a site: key, image, and the span of the tag the
/// site's files pin (none: the release's default).
fn locked<'a>(
    layer: &'a Layer,
    images: &'a Images,
) -> Vec<(&'static str, &'a ImageRef, Option<Span>)> {
    let il = layer.images.as_ref();
    let pinned = |l: Option<&ImageLayer>| l.and_then(|l| l.tag.as_ref()).map(|t| t.span());
    COMPONENTS
        .iter()
        .map(|(key, _)| {
            let (image, l) = match *key {
                "plugin-daemon" => (
                    &images.plugin_daemon,
                    il.and_then(|i| i.plugin_daemon.as_ref()),
                ),
                "sandbox" => (&images.sandbox, il.and_then(|i| i.sandbox.as_ref())),
                "agent-backend" => (
                    &images.agent_backend,
                    il.and_then(|i| i.agent_backend.as_ref()),
                ),
                _ => (
                    &images.local_sandbox,
                    il.and_then(|i| i.local_sandbox.as_ref()),
                ),
            };
            (*key, image, pinned(l))
        })
        .collect()
}

/// Each pinned tag that keeps the site's images from making one of the
/// release's combinations: an error, or with `allow` a warning and the
/// image's entry in the manifest's `untested-images`.
fn check_lock(
    cx: &mut Cx<'_>,
    layer: &Layer,
    release: &str,
    images: &Images,
    allow: bool,
) -> Vec<String> {
    let combinations = compat::combinations(release);
    let site = locked(layer, images);
    let matches = |c: &Combination| {
        (site.iter())
            .filter(|(key, image, _)| c.tag(key) == Some(image.tag.as_str()))
            .count()
    };
    // The combination the site is nearest to (the first of the nearest).
    let Some(nearest) =
        combinations
            .iter()
            .copied()
            .fold(None::<&Combination>, |best, c| match best {
                Some(b) if matches(b) >= matches(c) => Some(b),
                _ => Some(c),
            })
    else {
        return Vec::new();
    };
    if matches(nearest) == site.len() {
        return Vec::new();
    }
    let supported: Vec<String> = (combinations.iter())
        .map(|c| format!("Dify {release} runs with {}", c.describe()))
        .collect();
    let mut untested = Vec::new();
    for (key, image, span) in site {
        let want = nearest.tag(key).unwrap_or_default();
        let Some(span) = span.filter(|_| image.tag != want) else {
            continue;
        };
        let message = format!(
            "`images.{key}` pins `{}`, which Dify {release} is not known to run with",
            image.tag
        );
        let d = if allow {
            untested.push(format!("images.{key} {}:{}", image.repository, image.tag));
            Diagnostic::warning(Code::ImageIncompatible, message)
                .label("allowed by `[dify] allow-untested-images`: untested")
                .help(format!(
                    "once Dify {release} is known to run it (a release of dify-cfg whose lock lists it), remove `allow-untested-images`; or pin `tag = \"{want}\"`"
                ))
        } else {
            Diagnostic::error(Code::ImageIncompatible, message)
                .label(format!("not in Dify {release}'s compatibility lock"))
                .help(format!(
                    "pin `tag = \"{want}\"` (or remove the tag: the release's own is the default); to run it anyway, untested, set `[dify] allow-untested-images = true`"
                ))
        };
        cx.err(supported.iter().fold(d.at(span), |d, s| d.note(s.clone())));
    }
    untested
}

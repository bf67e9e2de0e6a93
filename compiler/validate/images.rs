//! The Dify release and the images a site runs: `dify.version`, `[images]`
//! (each defaulting to the release's pinned image) and `[build]` (where the
//! api and web images dify-cfg builds are pushed, their base images and
//! platforms).

use super::context::Cx;
use crate::base::codes::Code;
use crate::base::diagnostic::Diagnostic;
use crate::base::names::is_image_repository;
use crate::dify::{self, ReleaseImages};
use crate::input::layer::{Layer, Target, VectorStore};
use crate::model::*;

/// `dify.version`: a release dify-cfg knows; the newest when unset (or
/// unknown, with an error).
pub(super) fn release(cx: &mut Cx<'_>, layer: &Layer) -> String {
    match layer.dify.as_ref().and_then(|d| d.version.as_ref()) {
        Some(v) if dify::SUPPORTED_RELEASES.contains(&v.get_ref().as_str()) => v.get_ref().clone(),
        Some(v) => {
            cx.err(
                Diagnostic::error(
                    Code::UnsupportedRelease,
                    format!("Dify `{}` is not a release dify-cfg knows", v.get_ref()),
                )
                .at(v.span())
                .help(format!(
                    "supported releases: {}",
                    dify::SUPPORTED_RELEASES.join(", ")
                )),
            );
            dify::SUPPORTED_RELEASES[0].to_string()
        }
        None => cx.default("dify.version", dify::SUPPORTED_RELEASES[0].to_string()),
    }
}

/// `[images]`: each image the release's default unless set. PostgreSQL
/// comes with pgvector when that is the vector store.
pub(super) fn images(
    cx: &mut Cx<'_>,
    layer: &Layer,
    defaults: &ReleaseImages,
    vector_store: VectorStore,
) -> Images {
    let il = layer.images.clone().unwrap_or_default();
    let postgres_default = if vector_store == VectorStore::Pgvector {
        &defaults.postgres_pgvector
    } else {
        &defaults.postgres
    };
    Images {
        sandbox: cx.image(&il.sandbox, "images.sandbox", &defaults.sandbox),
        plugin_daemon: cx.image(
            &il.plugin_daemon,
            "images.plugin-daemon",
            &defaults.plugin_daemon,
        ),
        agent_backend: cx.image(
            &il.agent_backend,
            "images.agent-backend",
            &defaults.agent_backend,
        ),
        local_sandbox: cx.image(
            &il.local_sandbox,
            "images.local-sandbox",
            &defaults.local_sandbox,
        ),
        postgres: cx.image(&il.postgres, "images.postgres", postgres_default),
        redis: cx.image(&il.redis, "images.redis", &defaults.redis),
        nginx: cx.image(&il.nginx, "images.nginx", &defaults.nginx),
        ssrf_proxy: cx.image(&il.ssrf_proxy, "images.ssrf-proxy", &defaults.ssrf_proxy),
    }
}

/// `[build]`: the registry the built images go to (required), the base
/// images of api and web (an Alpine api base is warned about) and the
/// platforms.
pub(super) fn build(
    cx: &mut Cx<'_>,
    layer: &Layer,
    defaults: &ReleaseImages,
    target: Target,
) -> Build {
    let bl = layer.build.clone().unwrap_or_default();
    let registry = match &bl.registry {
        Some(r) if is_image_repository(r.get_ref()) => r.get_ref().clone(),
        Some(r) => {
            cx.err(
                Diagnostic::error(
                    Code::InvalidImage,
                    format!("`{}` is not a registry path", r.get_ref()),
                )
                .at(r.span())
                .help("write a registry and path such as `registry.example.org/dify`"),
            );
            String::new()
        }
        None => {
            cx.missing("build.registry", "set `[build] registry = \"registry.example.org/dify\"`: the api and web images dify-cfg builds are pushed there");
            String::new()
        }
    };
    let api_base = cx.image(&bl.api_base, "build.api-base", &defaults.api_base);
    if let Some(l) = &bl.api_base {
        let alpine = api_base.repository.contains("alpine") || api_base.tag.contains("alpine");
        if alpine {
            let span = l.tag.as_ref().or(l.repository.as_ref()).map(|s| s.span());
            cx.err(
                Diagnostic::warning(Code::AlpinePython, "the api's base image is Alpine (musl)")
                    .at_opt(span)
                    .help("dify-api's compiled Python wheels are built for glibc; use a slim Debian base such as `python:3.12-slim-bookworm`"),
            );
        }
    }
    let web_base = cx.image(&bl.web_base, "build.web-base", &defaults.web_base);
    let platforms = platforms(cx, layer, target);
    Build {
        registry,
        api_base,
        web_base,
        platforms,
    }
}

/// `build.platforms`: those Dify publishes; both by default on compose
/// sites, amd64 on helm sites.
fn platforms(cx: &mut Cx<'_>, layer: &Layer, target: Target) -> Vec<String> {
    match layer.build.as_ref().and_then(|b| b.platforms.as_ref()) {
        Some(p) => {
            let mut out = Vec::new();
            for item in p.get_ref() {
                if ["linux/amd64", "linux/arm64"].contains(&item.get_ref().as_str()) {
                    out.push(item.get_ref().clone());
                } else {
                    cx.err(
                        Diagnostic::error(
                            Code::InvalidValue,
                            format!("`{}` is not a platform Dify publishes", item.get_ref()),
                        )
                        .at(item.span())
                        .help("Dify builds for `linux/amd64` and `linux/arm64`"),
                    );
                }
            }
            out.sort();
            out.dedup();
            out
        }
        None => {
            let p = if target == Target::Compose {
                vec!["linux/amd64".to_string(), "linux/arm64".to_string()]
            } else {
                vec!["linux/amd64".to_string()]
            };
            cx.default("build.platforms", p)
        }
    }
}

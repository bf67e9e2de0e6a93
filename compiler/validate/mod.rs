//! Stage 4: the merged layer of each site becomes a typed [`Site`], or
//! diagnostics. Defaults are applied here (and recorded, for `explain`),
//! units, names, CIDRs and ports are checked, and so are the rules that
//! keep a box alive: the memory budget, the measured memory floors, Redis
//! headroom, secrets by reference only. Fleet-wide rules (overlapping LANs)
//! come last.

mod agent_proxy;
mod autoscaling;
mod budget;
mod compat;
mod connections;
mod context;
mod database;
mod device;
mod egress;
mod env;
mod external;
mod fleet;
mod floors;
mod gitops;
mod headroom;
mod helm;
mod images;
mod network;
mod redis;
mod secrets;
mod services;
mod settings;
mod sharing;
mod tls;

use crate::base::codes::Code;
use crate::base::diagnostic::Diagnostics;
use crate::base::source::{SourceMap, Span};
use crate::dify;
use crate::input::layer::Target;
use crate::input::resolve::ResolvedSite;
use crate::model::*;

pub(crate) use egress::holds_internet;
pub use fleet::validate_fleet;
pub use headroom::{Headroom, headroom};
pub use sharing::Sharing;

use context::Cx;
use external::external;
use services::Decided;

/// A site that passed validation, with what `explain` needs to know about
/// the values nobody set.
#[derive(Debug, Clone)]
pub struct ValidSite {
    pub site: Site,
    /// Dotted key and value (in TOML notation) of each default the compiler
    /// filled in. Each pair is [`Shared`]: most sites of a fleet get the
    /// same defaults, and a pair is held once for all of them.
    pub defaults: Vec<Shared<(String, String)>>,
    /// Where the site's LAN was set, for fleet checks.
    pub lan_span: Option<Span>,
    /// Where the site's host name was set (none when it is a default),
    /// for fleet checks.
    pub hostname_span: Option<Span>,
    /// Where the site's Dify release was set (its `profile = ...` line
    /// when it is the default), for `commit`'s downgrade check.
    pub release_span: Span,
    /// The files the site was compiled from: its profiles, root first, then
    /// the site file (the manifest's inputs, with the templates).
    pub chain_files: Vec<crate::base::source::FileId>,
}

/// What a site whose profile chain is not whole (a profile missing or
/// broken) can be told: mistakes in the form of a value its files hold.
/// Any other finding may come from a default standing in for what the
/// missing profile sets (a compose target for a helm site, a feature that
/// is on), so it waits for the chain.
const FORM_CODES: &[Code] = &[
    Code::AddressOutsideLan,
    Code::InvalidAddress,
    Code::InvalidCidr,
    Code::InvalidImage,
    Code::InvalidName,
    Code::InvalidPort,
    Code::InvalidText,
    Code::InvalidUnit,
    Code::LiteralSecret,
    Code::OutOfRange,
    Code::UnpinnedImage,
];

/// The keys every other rule reads: when one of them was removed for a
/// mistake, a default would stand in for it, as for a missing profile.
const KEYS_ALL_RULES_READ: &[&str] = &["target", "dify", "dify.version"];

/// Validate one resolved site: each area in turn (the order in which
/// diagnostics and defaults are recorded), then the site as a whole. A
/// site whose chain is not whole, or whose target or release was removed
/// for a mistake, gets only its [`FORM_CODES`] errors, and is not valid.
pub fn validate_site(
    rs: &ResolvedSite<'_>,
    sources: &SourceMap,
    diags: &mut Diagnostics,
) -> Option<ValidSite> {
    let unknown_basis = (rs.removed.iter()).any(|r| KEYS_ALL_RULES_READ.contains(&r.as_str()));
    if rs.chain_complete && !unknown_basis {
        return validate(rs, sources, diags);
    }
    let mut found = Diagnostics::new();
    validate(rs, sources, &mut found);
    for d in found.iter() {
        if d.is_error() && FORM_CODES.contains(&d.code) {
            diags.push(d.clone());
        }
    }
    None
}

/// [`validate_site`], every finding told.
fn validate(
    rs: &ResolvedSite<'_>,
    sources: &SourceMap,
    diags: &mut Diagnostics,
) -> Option<ValidSite> {
    let before = diags.error_count();
    let layer = &rs.layer;
    let cx = &mut site_context(rs, sources, diags);
    let target = cx.target;

    let description = settings::description(cx, layer);
    let dify_version = images::release(cx, layer);
    let vector_store = database::vector_store(cx, layer);
    let release_images = dify::release_images(&dify_version);
    let images = images::images(cx, layer, &release_images, vector_store);
    let waivers = compat::waivers(cx, layer, &dify_version, &images);
    let release_span = (layer.dify.as_ref().and_then(|d| d.version.as_ref()))
        .map_or_else(|| cx.anchor.clone(), |v| v.span());
    let build = images::build(cx, layer, &release_images, target);
    let device = device::device(cx, layer, target);
    let features = settings::features(cx, layer);
    let db_external = (layer.database.as_ref().and_then(|d| d.external.as_ref()))
        .and_then(|e| external(cx, e, "database.external", 5432));
    let redis_external = (layer.redis.as_ref().and_then(|r| r.external.as_ref()))
        .and_then(|e| external(cx, e, "redis.external", 6379));
    let decided = Decided {
        features: &features,
        db_external: db_external.is_some(),
        redis_external: redis_external.is_some(),
        images: &images,
        registry: &build.registry,
        dify_version: &dify_version,
    };
    let (services, memory_spans) = services::services(cx, layer, target, &decided);
    agent_proxy::agent_proxy(cx, layer, target, &dify_version, &services);
    let database = database::database(cx, layer, db_external, &services);
    let redis = redis::redis(cx, layer, redis_external, &services, &memory_spans);
    database::vector_store_fits(cx, layer, target, vector_store);
    let network = network::network(cx, layer, target, &rs.name);
    tls::served_by_nginx(cx, layer, network.as_ref(), &services);
    egress::needed_egress(cx, layer, target, &features, network.as_ref());
    let lan_span = (layer.network.as_ref().and_then(|n| n.lan.as_ref())).map(|l| l.span());
    let hostname_span =
        (layer.network.as_ref().and_then(|n| n.hostname.as_ref())).map(|h| h.span());
    let login = settings::login(cx, layer);
    let helm = helm::helm(cx, layer, target);
    let env = env::env(cx, layer, &dify_version);
    let secrets = secrets::secrets(cx, layer, target, &dify_version);
    let wave = settings::wave(cx, layer);
    let labels = settings::labels(cx, layer);
    let gitops = gitops::gitops(cx, layer, target);
    // The rules over the whole site need its whole chain.
    let whole_chain = rs.chain_complete;
    if whole_chain {
        if let Some(device) = &device {
            budget::budget(
                cx,
                device,
                &services,
                &memory_spans,
                sources,
                &rs.chain_files,
            );
        }
        let headroom = headroom_percent(device.as_ref());
        floors::floors(cx, &dify_version, &services, &memory_spans, headroom);
        connections::budget(cx, layer, &services, &database, vector_store, sources);
    }

    let (Some(network), Some(gitops), true) = (network, gitops, whole_chain) else {
        return None;
    };
    let site = Site {
        name: rs.name.clone(),
        file: sources.file(rs.file).path.clone(),
        profile_chain: rs.chain.clone().into(),
        description,
        target,
        dify_version,
        waivers,
        images: images.into(),
        build: build.into(),
        device,
        services: services.into(),
        database: database.into(),
        redis: redis.into(),
        vector_store,
        network,
        login,
        features,
        helm: helm.into(),
        env: env.into(),
        secrets: secrets.into(),
        wave,
        labels,
        gitops: gitops.into(),
    };
    secrets::site_secrets(cx, &site, layer, target);
    if cx.diags.error_count() != before || !rs.whole {
        return None;
    }
    let mut defaults = std::mem::take(&mut cx.defaults);
    defaults.shrink_to_fit();
    Some(ValidSite {
        site,
        defaults,
        lan_span,
        hostname_span,
        release_span,
        chain_files: rs.chain_files.clone(),
    })
}

/// The context of validating `rs`: diagnostics point at its `profile = ...`
/// line (or its file) when a key is missing altogether, and its target is
/// read first (compose, after an error, when unset).
fn site_context<'d>(
    rs: &ResolvedSite<'_>,
    sources: &SourceMap,
    diags: &'d mut Diagnostics,
) -> Cx<'d> {
    let anchor = rs
        .profile_span
        .clone()
        .unwrap_or_else(|| sources.file(rs.file).whole());
    let target = rs.layer.target.as_ref().map(|t| *t.get_ref());
    let mut cx = Cx {
        diags,
        defaults: Vec::new(),
        anchor,
        target: target.unwrap_or(Target::Compose),
        removed: rs.removed.clone(),
        refused_secrets: Vec::new(),
    };
    if target.is_none() {
        cx.missing(
            "target",
            "set `target = \"compose\"` or `target = \"helm\"` in the site's profile",
        );
    }
    cx
}

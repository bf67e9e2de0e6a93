//! Stage 4: the merged layer of each site becomes a typed [`Site`], or
//! diagnostics. Defaults are applied here (and recorded, for `explain`),
//! units, names, CIDRs and ports are checked, and so are the rules that
//! keep a box alive: the memory budget, Redis headroom, secrets by
//! reference only. Fleet-wide rules (overlapping LANs) come last.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use ipnet::IpNet;
use toml::Spanned;

use crate::base::diagnostic::{Diagnostic, Diagnostics, did_you_mean};
use crate::base::source::{SourceMap, Span};
use crate::base::units::{
    Bytes, MIB, Millicores, TimeSpan, TimeUnit, cores_to_millicores, parse_bytes, parse_percent,
    parse_time_span,
};
use crate::dify;
use crate::input::layer::{
    self, EvictionPolicy, ImageLayer, Layer, SecretValue, ServiceLayer, Target, VectorStore,
};
use crate::input::resolve::{ResolvedSite, is_valid_name};
use crate::model::*;

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
    /// The files the site was compiled from: its profiles, root first, then
    /// the site file (the manifest's inputs, with the templates).
    pub chain_files: Vec<crate::base::source::FileId>,
}

/// What the valid sites of a fleet have in common, held once: one [`Pool`]
/// per [`Shared`] part of a site. Every site `share`d through the same
/// `Sharing` points at one allocation per distinct value.
#[derive(Default)]
pub struct Sharing {
    /// Profile chains and route prefixes.
    strings: Pool<Vec<String>>,
    images: Pool<Images>,
    build: Pool<Build>,
    services: Pool<BTreeMap<ServiceKind, Service>>,
    database: Pool<Database>,
    redis: Pool<Redis>,
    helm: Pool<Helm>,
    /// `[env]`.
    env: Pool<BTreeMap<String, String>>,
    secrets: Pool<BTreeMap<String, SecretRef>>,
    gitops: Pool<Gitops>,
    /// Admin and SSH networks.
    networks: Pool<Vec<IpNet>>,
    egress: Pool<Vec<Egress>>,
    defaults: Pool<(String, String)>,
}

impl Sharing {
    /// Point every shared part of `v` at the equal value an earlier site
    /// has, if one has it.
    pub fn share(&mut self, v: &mut ValidSite) {
        let site = &mut v.site;
        self.strings.share(&mut site.profile_chain);
        self.images.share(&mut site.images);
        self.build.share(&mut site.build);
        self.services.share(&mut site.services);
        self.database.share(&mut site.database);
        self.redis.share(&mut site.redis);
        self.helm.share(&mut site.helm);
        self.env.share(&mut site.env);
        self.secrets.share(&mut site.secrets);
        self.gitops.share(&mut site.gitops);
        let network = &mut site.network;
        self.networks.share(&mut network.admin);
        self.networks.share(&mut network.ssh_from);
        self.strings.share(&mut network.public_routes);
        self.egress.share(&mut network.egress);
        for d in &mut v.defaults {
            self.defaults.share(d);
        }
    }
}

/// Redis needs room beyond `maxmemory` for buffers, fragmentation and
/// copy-on-write while persisting: a quarter of `maxmemory`, at least 32 MiB.
pub fn redis_overhead(maxmemory: Bytes) -> Bytes {
    Bytes((maxmemory.0 / 4).max(32 * MIB))
}

/// Settings the compiler derives from typed keys; `[env]` may not set them.
pub const MANAGED_ENV: &[(&str, &str)] = &[
    ("MODE", "the service (set per service)"),
    ("DB_TYPE", "database.engine"),
    ("DB_HOST", "database.external.host"),
    ("DB_PORT", "database.external.port"),
    ("DB_DATABASE", "database.external.database"),
    ("VECTOR_STORE", "vector-store"),
    ("SERVER_WORKER_AMOUNT", "services.api.workers"),
    (
        "SERVER_WORKER_CONNECTIONS",
        "services.api.worker-connections",
    ),
    ("CELERY_WORKER_AMOUNT", "services.worker.workers"),
    ("ALLOW_REGISTER", "login.allow-register"),
    ("ALLOW_CREATE_WORKSPACE", "login.allow-create-workspace"),
    ("ENABLE_EMAIL_PASSWORD_LOGIN", "login.email-password"),
    ("ENABLE_EMAIL_CODE_LOGIN", "login.email-code"),
    ("ENABLE_SOCIAL_OAUTH_LOGIN", "login.social-oauth"),
    ("ENABLE_COLLABORATION_MODE", "features.collaboration"),
    ("MARKETPLACE_ENABLED", "features.marketplace"),
    ("POSTGRES_MAX_CONNECTIONS", "database.max-connections"),
    ("POSTGRES_SHARED_BUFFERS", "database.shared-buffers"),
    ("POSTGRES_WORK_MEM", "database.work-mem"),
    (
        "POSTGRES_MAINTENANCE_WORK_MEM",
        "database.maintenance-work-mem",
    ),
    (
        "POSTGRES_EFFECTIVE_CACHE_SIZE",
        "database.effective-cache-size",
    ),
    ("SQLALCHEMY_POOL_SIZE", "database.pool-size"),
    ("NGINX_PORT", "network.http-port"),
    ("NGINX_SERVER_NAME", "network.hostname"),
];

/// Secrets a site must provide, by the services that need them.
fn required_secrets(site: &Site) -> Vec<(&'static str, &'static str)> {
    let runs = |k| site.services.contains_key(&k);
    let mut out = vec![("DB_PASSWORD", "the api connects to PostgreSQL with it")];
    out.push(("REDIS_PASSWORD", "Redis requires a password"));
    if runs(ServiceKind::PluginDaemon) {
        out.push((
            "PLUGIN_DAEMON_KEY",
            "the api authenticates to the plugin daemon with it",
        ));
        out.push((
            "PLUGIN_DIFY_INNER_API_KEY",
            "the plugin daemon authenticates to the api with it",
        ));
    }
    if runs(ServiceKind::Sandbox) {
        out.push((
            "CODE_EXECUTION_API_KEY",
            "the api authenticates to the sandbox with it",
        ));
    }
    out
}

struct Cx<'d> {
    diags: &'d mut Diagnostics,
    defaults: Vec<Shared<(String, String)>>,
    /// Where to point when something is missing altogether: the site's
    /// `profile = ...` line.
    anchor: Span,
    target: Target,
}

impl Cx<'_> {
    fn err(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn default<T: TomlText>(&mut self, key: &str, value: T) -> T {
        self.defaults
            .push(Shared::new((key.to_string(), value.toml_text())));
        value
    }

    /// The value, when `problem` finds nothing wrong with it; else an
    /// `invalid-value` error, "`value` is not {what}: why", at it (`more`
    /// adds the label and help), and `None`.
    fn checked(
        &mut self,
        v: &Spanned<String>,
        problem: fn(&str) -> Option<String>,
        what: &str,
        more: impl FnOnce(Diagnostic) -> Diagnostic,
    ) -> Option<String> {
        let Some(why) = problem(v.get_ref()) else {
            return Some(v.get_ref().clone());
        };
        let d = Diagnostic::error(
            "invalid-value",
            format!("`{}` is not {what}: {why}", v.get_ref().escape_debug()),
        )
        .at(v.span());
        self.err(more(d));
        None
    }

    fn missing(&mut self, key: &str, help: &str) {
        let d = Diagnostic::error("missing-key", format!("`{key}` is not set for this site"))
            .at(self.anchor.clone())
            .label("in none of the files of this site's chain")
            .help(help.to_string());
        self.err(d);
    }

    fn bytes(
        &mut self,
        v: &Option<Spanned<String>>,
        key: &str,
        default: Option<Bytes>,
    ) -> Option<Bytes> {
        match v {
            Some(s) => match parse_bytes(s.get_ref()) {
                Ok(b) if b.0 == 0 => {
                    self.err(
                        Diagnostic::error(
                            "invalid-unit",
                            format!("`{key}` must be more than zero"),
                        )
                        .at(s.span())
                        .help("write a size such as `512MiB`"),
                    );
                    None
                }
                Ok(b) => Some(b),
                Err(e) => {
                    self.err(
                        Diagnostic::error("invalid-unit", e.message)
                            .at(s.span())
                            .label(format!("`{key}` takes a size"))
                            .help(e.help),
                    );
                    None
                }
            },
            None => default.map(|d| self.default(key, d)),
        }
    }

    fn cores(
        &mut self,
        v: &Option<Spanned<layer::Number>>,
        key: &str,
        default: Option<Millicores>,
    ) -> Option<Millicores> {
        match v {
            Some(n) => match cores_to_millicores(n.get_ref().as_f64()) {
                Ok(m) => Some(m),
                Err(e) => {
                    self.err(
                        Diagnostic::error("invalid-value", e.message)
                            .at(n.span())
                            .label(format!("`{key}` takes a number of cores"))
                            .help(e.help),
                    );
                    None
                }
            },
            None => default.map(|d| self.default(key, d)),
        }
    }

    fn int(
        &mut self,
        v: &Option<Spanned<i64>>,
        key: &str,
        range: std::ops::RangeInclusive<i64>,
        default: i64,
    ) -> Option<u32> {
        match v {
            Some(n) if range.contains(n.get_ref()) => Some(*n.get_ref() as u32),
            Some(n) => {
                self.err(
                    Diagnostic::error(
                        "out-of-range",
                        format!(
                            "`{key}` is {}, outside {}..={}",
                            n.get_ref(),
                            range.start(),
                            range.end()
                        ),
                    )
                    .at(n.span())
                    .help(format!(
                        "choose a value from {} to {}",
                        range.start(),
                        range.end()
                    )),
                );
                None
            }
            None => Some(self.default(key, default) as u32),
        }
    }

    fn flag(&mut self, v: &Option<Spanned<bool>>, key: &str, default: bool) -> bool {
        match v {
            Some(b) => *b.get_ref(),
            None => self.default(key, default),
        }
    }

    fn port(&mut self, v: &Option<Spanned<i64>>, key: &str, default: u16) -> u16 {
        match v {
            Some(p) => match u16::try_from(*p.get_ref()) {
                Ok(port) if port > 0 => port,
                _ => {
                    self.err(
                        Diagnostic::error(
                            "invalid-port",
                            format!("`{}` is not a TCP port", p.get_ref()),
                        )
                        .at(p.span())
                        .label(format!("`{key}` takes a port from 1 to 65535"))
                        .help("choose a port from 1 to 65535"),
                    );
                    default
                }
            },
            None => self.default(key, default),
        }
    }

    /// A single-line free-text value: no control characters.
    fn text(&mut self, v: &Spanned<String>, key: &str, max: usize) -> Option<String> {
        let s = v.get_ref();
        if let Some(c) = s.chars().find(|c| c.is_control() || is_bidi_control(*c)) {
            self.err(
                Diagnostic::error("invalid-text", format!("`{key}` contains the control character U+{:04X}", c as u32))
                    .at(v.span())
                    .help("write the value on one line, without control or bidirectional-override characters"),
            );
            return None;
        }
        if s.len() > max {
            self.err(
                Diagnostic::error(
                    "invalid-text",
                    format!("`{key}` is longer than {max} bytes"),
                )
                .at(v.span())
                .help("shorten it"),
            );
            return None;
        }
        Some(s.clone())
    }

    fn cidr(&mut self, v: &Spanned<String>, key: &str) -> Option<IpNet> {
        match IpNet::from_str(v.get_ref().trim()) {
            Ok(net) if net.trunc() == net => Some(net),
            Ok(net) => {
                self.err(
                    Diagnostic::error(
                        "invalid-cidr",
                        format!("`{}` has host bits set", v.get_ref()),
                    )
                    .at(v.span())
                    .label(format!("`{key}` takes a network"))
                    .help(format!("did you mean `{}`?", net.trunc())),
                );
                None
            }
            Err(_) => {
                let help = if IpAddr::from_str(v.get_ref().trim()).is_ok() {
                    format!("add a prefix length, e.g. `{}/32`", v.get_ref().trim())
                } else {
                    "write a network as ADDRESS/PREFIX, e.g. `10.20.1.0/24` or `fd00::/64`"
                        .to_string()
                };
                self.err(
                    Diagnostic::error(
                        "invalid-cidr",
                        format!("`{}` is not a CIDR network", v.get_ref()),
                    )
                    .at(v.span())
                    .label(format!("`{key}` takes a network"))
                    .help(help),
                );
                None
            }
        }
    }

    fn cidrs(
        &mut self,
        v: &Option<Spanned<Vec<Spanned<String>>>>,
        key: &str,
    ) -> Option<Vec<IpNet>> {
        let v = v.as_ref()?;
        let mut out: Vec<IpNet> = v
            .get_ref()
            .iter()
            .filter_map(|c| self.cidr(c, key))
            .collect();
        out.sort();
        out.dedup();
        Some(out)
    }

    fn image(&mut self, layer: &Option<ImageLayer>, key: &str, default: &ImageRef) -> ImageRef {
        let mut img = default.clone();
        let Some(l) = layer else { return img };
        if let Some(r) = &l.repository {
            if is_image_repository(r.get_ref()) {
                img.repository = r.get_ref().clone();
            } else {
                self.err(
                    Diagnostic::error("invalid-image", format!("`{}` is not an image repository", r.get_ref()))
                        .at(r.span())
                        .help("write a repository such as `langgenius/dify-sandbox` or `registry.example.org:5000/team/image`"),
                );
            }
        }
        if let Some(t) = &l.tag {
            let tag = t.get_ref();
            if tag == "latest" {
                self.err(
                    Diagnostic::error("unpinned-image", format!("`{key}` uses the tag `latest`"))
                        .at(t.span())
                        .help("pin a release tag, e.g. `1.27-alpine`, so that every build runs the same image"),
                );
            } else if !is_image_tag(tag) {
                self.err(
                    Diagnostic::error("invalid-image", format!("`{tag}` is not an image tag"))
                        .at(t.span())
                        .help(
                            "tags are 1 to 128 of A-Z a-z 0-9 _ . - and do not start with . or -",
                        ),
                );
            } else {
                img.tag = tag.clone();
            }
        }
        if let Some(d) = &l.digest {
            if is_digest(d.get_ref()) {
                img.digest = Some(d.get_ref().clone());
            } else {
                self.err(
                    Diagnostic::error(
                        "invalid-image",
                        format!("`{}` is not an image digest", d.get_ref()),
                    )
                    .at(d.span())
                    .help("write `sha256:` followed by 64 lower-case hex digits"),
                );
            }
        }
        img
    }
}

/// A default value as `explain` prints it: in TOML notation.
trait TomlText {
    fn toml_text(&self) -> String;
}

impl TomlText for bool {
    fn toml_text(&self) -> String {
        self.to_string()
    }
}

macro_rules! toml_number {
    ($($t:ty),*) => {$(impl TomlText for $t {
        fn toml_text(&self) -> String {
            self.to_string()
        }
    })*};
}
toml_number!(u8, u16, u32, i64);

impl TomlText for &str {
    fn toml_text(&self) -> String {
        format!("{self:?}")
    }
}

impl TomlText for String {
    fn toml_text(&self) -> String {
        format!("{self:?}")
    }
}

impl TomlText for Bytes {
    fn toml_text(&self) -> String {
        format!("\"{}\"", self.human())
    }
}

impl TomlText for Millicores {
    fn toml_text(&self) -> String {
        self.cores()
    }
}

impl TomlText for TimeSpan {
    fn toml_text(&self) -> String {
        format!("\"{self}\"")
    }
}

impl TomlText for Vec<String> {
    fn toml_text(&self) -> String {
        format!(
            "[{}]",
            self.iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn is_image_repository(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.split('/').all(|part| {
            !part.is_empty()
                && part.bytes().all(|b| {
                    b.is_ascii_lowercase()
                        || b.is_ascii_digit()
                        || matches!(b, b'.' | b'_' | b'-' | b':')
                })
        })
        && !s.starts_with(['.', '-', ':'])
}

fn is_image_tag(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && !s.starts_with(['.', '-'])
}

fn is_digest(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

fn is_env_var_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

fn is_label_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.' | b'_')
        })
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
}

/// Which services run unless a profile says otherwise.
fn enabled_by_default(kind: ServiceKind) -> bool {
    !matches!(
        kind,
        ServiceKind::ApiWebsocket | ServiceKind::AgentBackend | ServiceKind::LocalSandbox
    )
}

fn service_layer(layer: &Layer, kind: ServiceKind) -> Option<&ServiceLayer> {
    let s = layer.services.as_ref()?;
    match kind {
        ServiceKind::Api => s.api.as_ref(),
        ServiceKind::Worker => s.worker.as_ref(),
        ServiceKind::WorkerBeat => s.worker_beat.as_ref(),
        ServiceKind::ApiWebsocket => s.api_websocket.as_ref(),
        ServiceKind::Web => s.web.as_ref(),
        ServiceKind::Db => s.db.as_ref(),
        ServiceKind::Redis => s.redis.as_ref(),
        ServiceKind::Sandbox => s.sandbox.as_ref(),
        ServiceKind::SsrfProxy => s.ssrf_proxy.as_ref(),
        ServiceKind::PluginDaemon => s.plugin_daemon.as_ref(),
        ServiceKind::AgentBackend => s.agent_backend.as_ref(),
        ServiceKind::LocalSandbox => s.local_sandbox.as_ref(),
        ServiceKind::Nginx => s.nginx.as_ref(),
    }
}

/// Validate one resolved site.
pub fn validate_site(
    rs: &ResolvedSite<'_>,
    sources: &SourceMap,
    diags: &mut Diagnostics,
) -> Option<ValidSite> {
    let before = diags.error_count();
    let layer = &rs.layer;
    let anchor = rs
        .profile_span
        .clone()
        .unwrap_or_else(|| sources.file(rs.file).whole());
    let target = layer.target.as_ref().map(|t| *t.get_ref());
    let mut cx = Cx {
        diags,
        defaults: Vec::new(),
        anchor,
        target: target.unwrap_or(Target::Compose),
    };
    if target.is_none() {
        cx.missing(
            "target",
            "set `target = \"compose\"` or `target = \"helm\"` in the site's profile",
        );
    }
    let target = cx.target;

    let description = layer
        .description
        .as_ref()
        .and_then(|d| cx.text(d, "description", 1024))
        .unwrap_or_default();

    // Release and images.
    let dify_version = match layer.dify.as_ref().and_then(|d| d.version.as_ref()) {
        Some(v) if dify::SUPPORTED_RELEASES.contains(&v.get_ref().as_str()) => v.get_ref().clone(),
        Some(v) => {
            cx.err(
                Diagnostic::error(
                    "unsupported-release",
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
    };
    let vector_store = match &layer.vector_store {
        Some(v) => *v.get_ref(),
        None => {
            cx.default("vector-store", "pgvector");
            VectorStore::Pgvector
        }
    };
    let defaults = dify::release_images(&dify_version);
    let il = layer.images.clone().unwrap_or_default();
    let postgres_default = if vector_store == VectorStore::Pgvector {
        &defaults.postgres_pgvector
    } else {
        &defaults.postgres
    };
    let images = Images {
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
    };
    let bl = layer.build.clone().unwrap_or_default();
    let registry = match &bl.registry {
        Some(r) if is_image_repository(r.get_ref()) => r.get_ref().clone(),
        Some(r) => {
            cx.err(
                Diagnostic::error(
                    "invalid-image",
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
                Diagnostic::warning("alpine-python", "the api's base image is Alpine (musl)")
                    .at_opt(span)
                    .help("dify-api's compiled Python wheels are built for glibc; use a slim Debian base such as `python:3.12-slim-bookworm`"),
            );
        }
    }
    let web_base = cx.image(&bl.web_base, "build.web-base", &defaults.web_base);
    let platforms = match &bl.platforms {
        Some(p) => {
            let mut out = Vec::new();
            for item in p.get_ref() {
                if ["linux/amd64", "linux/arm64"].contains(&item.get_ref().as_str()) {
                    out.push(item.get_ref().clone());
                } else {
                    cx.err(
                        Diagnostic::error(
                            "invalid-value",
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
    };

    // The box.
    let device = match (&layer.device, target) {
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
            let reserve = match &d.reserve {
                Some(r) => match parse_percent(r.get_ref()) {
                    Ok(p) if p < 100 => Some(p),
                    Ok(_) => {
                        cx.err(
                            Diagnostic::error(
                                "out-of-range",
                                "a reserve of 100% leaves nothing for the services",
                            )
                            .at(r.span())
                            .help("keep 10% to 30% for the OS and Docker, e.g. `20%`"),
                        );
                        None
                    }
                    Err(e) => {
                        cx.err(
                            Diagnostic::error("invalid-unit", e.message)
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
            };
            match (memory, cpus, reserve) {
                (Some(memory), Some(cpus), Some(reserve_percent)) => Some(Device {
                    memory,
                    cpus,
                    reserve_percent,
                }),
                _ => None,
            }
        }
    };

    // Features decide some services.
    let fl = layer.features.clone().unwrap_or_default();
    let features = Features {
        collaboration: cx.flag(&fl.collaboration, "features.collaboration", false),
        code_execution: cx.flag(&fl.code_execution, "features.code-execution", true),
        marketplace: cx.flag(&fl.marketplace, "features.marketplace", true),
        plugin_debugging: cx.flag(&fl.plugin_debugging, "features.plugin-debugging", false),
    };

    // Database and Redis, external or bundled.
    let dl = layer.database.clone().unwrap_or_default();
    let rl = layer.redis.clone().unwrap_or_default();
    let db_external = dl
        .external
        .as_ref()
        .and_then(|e| external(&mut cx, e, "database.external", 5432));
    let redis_external = rl
        .external
        .as_ref()
        .and_then(|e| external(&mut cx, e, "redis.external", 6379));

    // Services.
    let mut services = BTreeMap::new();
    let mut memory_spans: BTreeMap<ServiceKind, Option<Span>> = BTreeMap::new();
    for kind in ServiceKind::ALL {
        let sl = service_layer(layer, kind);
        let key = format!("services.{}", kind.key());
        let decided_by: Option<(bool, &str)> = match kind {
            ServiceKind::ApiWebsocket => Some((features.collaboration, "features.collaboration")),
            ServiceKind::Sandbox => Some((features.code_execution, "features.code-execution")),
            ServiceKind::Db => Some((db_external.is_none(), "database.external")),
            ServiceKind::Redis => Some((redis_external.is_none(), "redis.external")),
            _ => None,
        };
        let explicit = sl.and_then(|s| s.enabled.as_ref());
        let enabled = match (explicit, decided_by) {
            (Some(e), Some((implied, by))) if *e.get_ref() && !implied => {
                cx.err(
                    Diagnostic::error(
                        "inconsistent",
                        format!("`{key}` is enabled but `{by}` turns it off"),
                    )
                    .at(e.span())
                    .help(format!(
                        "change `{by}` instead of enabling the service directly"
                    )),
                );
                false
            }
            (Some(e), Some((implied, _))) => *e.get_ref() && implied,
            (Some(e), None) => *e.get_ref(),
            (None, Some((implied, _))) => implied,
            (None, None) => cx.default(&format!("{key}.enabled"), enabled_by_default(kind)),
        };
        if !enabled {
            continue;
        }
        if target == Target::Helm && matches!(kind, ServiceKind::Db | ServiceKind::Redis) {
            // The chart's bundled databases are not managed by dify-cfg.
            cx.missing(
                if kind == ServiceKind::Db { "database.external" } else { "redis.external" },
                "a helm site uses an external PostgreSQL and Redis: set `[database.external]` and `[redis.external]` with `host` and `port`",
            );
            continue;
        }
        let empty = ServiceLayer::default();
        let sl = sl.unwrap_or(&empty);
        let memory = match &sl.memory {
            Some(_) => cx.bytes(&sl.memory, &format!("{key}.memory"), None),
            None => {
                cx.missing(&format!("{key}.memory"), &format!("every running service needs a memory limit: set `[{key}] memory = \"256MiB\"`, or `enabled = false`"));
                None
            }
        };
        memory_spans.insert(kind, sl.memory.as_ref().map(|m| m.span()));
        let cpus = cx.cores(&sl.cpus, &format!("{key}.cpus"), Some(Millicores(1000)));
        // Requests matter to helm sites only; compose sites do not list them.
        let (memory_request, cpus_request) = if target == Target::Helm {
            (
                cx.bytes(&sl.memory_request, &format!("{key}.memory-request"), memory),
                cx.cores(&sl.cpus_request, &format!("{key}.cpus-request"), cpus),
            )
        } else {
            (memory, cpus)
        };
        if target == Target::Compose {
            for (v, what) in [
                (
                    sl.memory_request.as_ref().map(|s| s.span()),
                    "memory-request",
                ),
                (sl.cpus_request.as_ref().map(|s| s.span()), "cpus-request"),
            ] {
                if let Some(span) = v {
                    cx.err(
                        Diagnostic::error(
                            "helm-only",
                            format!("`{key}.{what}` applies to helm sites only"),
                        )
                        .at(span)
                        .help("docker compose enforces limits only; remove it"),
                    );
                }
            }
        }
        if let (Some(req), Some(lim), Some(s)) = (memory_request, memory, &sl.memory_request)
            && req > lim
        {
            cx.err(
                Diagnostic::error(
                    "request-above-limit",
                    format!("`{key}.memory-request` ({req}) is above its limit ({lim})"),
                )
                .at(s.span())
                .help("a request may not exceed the limit"),
            );
        }
        let replicas = cx.int(&sl.replicas, &format!("{key}.replicas"), 1..=100, 1);
        let takes_workers = matches!(
            kind,
            ServiceKind::Api | ServiceKind::Worker | ServiceKind::ApiWebsocket
        );
        let workers = if takes_workers {
            cx.int(&sl.workers, &format!("{key}.workers"), 1..=64, 1)
        } else {
            if let Some(w) = &sl.workers {
                cx.err(Diagnostic::error("not-applicable", format!("`{key}.workers` does not apply to {}", kind.key())).at(w.span()).help("`workers` sets gunicorn workers (api, api-websocket) or Celery processes (worker)"));
            }
            None
        };
        let worker_connections = if matches!(kind, ServiceKind::Api | ServiceKind::ApiWebsocket) {
            cx.int(
                &sl.worker_connections,
                &format!("{key}.worker-connections"),
                1..=10_000,
                if kind == ServiceKind::Api { 10 } else { 1000 },
            )
        } else {
            if let Some(w) = &sl.worker_connections {
                cx.err(
                    Diagnostic::error(
                        "not-applicable",
                        format!("`{key}.worker-connections` applies to api and api-websocket only"),
                    )
                    .at(w.span())
                    .help("remove it"),
                );
            }
            None
        };
        let autoscaling = match &sl.autoscaling {
            None => None,
            // Point at `enabled = true` when it is there, else the table.
            Some(a) => {
                let at = a.get_ref().enabled.as_ref().map_or(a.span(), |e| e.span());
                autoscaling(&mut cx, a.get_ref(), at, &key, kind, target)
            }
        };
        let image = match kind {
            ServiceKind::Sandbox => images.sandbox.clone(),
            ServiceKind::PluginDaemon => images.plugin_daemon.clone(),
            ServiceKind::AgentBackend => images.agent_backend.clone(),
            ServiceKind::LocalSandbox => images.local_sandbox.clone(),
            ServiceKind::Db => images.postgres.clone(),
            ServiceKind::Redis => images.redis.clone(),
            ServiceKind::Nginx => images.nginx.clone(),
            ServiceKind::SsrfProxy => images.ssrf_proxy.clone(),
            ServiceKind::Web => ImageRef {
                repository: format!("{registry}/dify-web"),
                tag: dify_version.clone(),
                digest: None,
            },
            _ => ImageRef {
                repository: format!("{registry}/dify-api"),
                tag: dify_version.clone(),
                digest: None,
            },
        };
        if let (
            Some(memory),
            Some(cpus),
            Some(memory_request),
            Some(cpus_request),
            Some(replicas),
        ) = (memory, cpus, memory_request, cpus_request, replicas)
        {
            services.insert(
                kind,
                Service {
                    kind,
                    memory,
                    cpus,
                    memory_request,
                    cpus_request,
                    replicas,
                    workers,
                    worker_connections,
                    autoscaling,
                    image,
                },
            );
        }
    }
    for needed in [ServiceKind::Api, ServiceKind::Worker, ServiceKind::Web] {
        if let Some(e) = service_layer(layer, needed).and_then(|s| s.enabled.as_ref())
            && !*e.get_ref()
        {
            cx.err(Diagnostic::error("required-service", format!("Dify cannot run without `{}`", needed.key())).at(e.span()).help("only optional services (sandbox, plugin-daemon, agent-backend, ...) can be switched off"));
        }
    }

    // Database tuning.
    let engine = dl
        .engine
        .as_ref()
        .map(|e| *e.get_ref())
        .unwrap_or(layer::DbEngine::Postgresql);
    let database = Database {
        engine,
        external: db_external,
        max_connections: cx
            .int(
                &dl.max_connections,
                "database.max-connections",
                10..=10_000,
                100,
            )
            .unwrap_or(100),
        shared_buffers: cx
            .bytes(
                &dl.shared_buffers,
                "database.shared-buffers",
                Some(Bytes::mib(128)),
            )
            .unwrap_or_default(),
        work_mem: cx
            .bytes(&dl.work_mem, "database.work-mem", Some(Bytes::mib(4)))
            .unwrap_or_default(),
        maintenance_work_mem: cx
            .bytes(
                &dl.maintenance_work_mem,
                "database.maintenance-work-mem",
                Some(Bytes::mib(64)),
            )
            .unwrap_or_default(),
        effective_cache_size: cx
            .bytes(
                &dl.effective_cache_size,
                "database.effective-cache-size",
                Some(Bytes::mib(4096)),
            )
            .unwrap_or_default(),
        pool_size: cx
            .int(&dl.pool_size, "database.pool-size", 1..=1000, 30)
            .unwrap_or(30),
        name: "dify".to_string(),
        plugin_name: "dify_plugin".to_string(),
    };
    if let (Some(db), Some(sb)) = (services.get(&ServiceKind::Db), &dl.shared_buffers) {
        let need = Bytes(database.shared_buffers.0 + database.maintenance_work_mem.0 + 64 * MIB);
        if need > db.memory {
            cx.err(
                Diagnostic::error("db-tuning", format!("PostgreSQL's shared buffers and maintenance memory need about {need}, above the db limit of {}", db.memory))
                    .at(sb.span())
                    .help("lower `shared-buffers` (a quarter of the db limit is usual) or raise `services.db.memory`"),
            );
        }
    }

    // Redis.
    let maxmemory = cx
        .bytes(&rl.maxmemory, "redis.maxmemory", Some(Bytes::mib(256)))
        .unwrap_or_default();
    let policy = match &rl.policy {
        Some(p) => *p.get_ref(),
        None => {
            cx.default("redis.policy", "volatile-lru");
            EvictionPolicy::VolatileLru
        }
    };
    if let Some(p) = &rl.policy
        && p.get_ref().evicts_any_key()
    {
        cx.err(
                Diagnostic::warning("redis-eviction", format!("`{}` may evict Celery's queued tasks", p.get_ref().as_str()))
                    .at(p.span())
                    .label("Redis is also the Celery broker")
                    .help("use `volatile-lru`: it evicts only keys with a TTL (the cache) and leaves the task queues alone"),
            );
    }
    if let Some(redis) = services.get(&ServiceKind::Redis) {
        let need = Bytes(maxmemory.0 + redis_overhead(maxmemory).0);
        if redis.memory < need {
            let span = memory_spans.get(&ServiceKind::Redis).cloned().flatten();
            cx.err(
                Diagnostic::error(
                    "redis-overhead",
                    format!(
                        "the redis limit ({}) leaves no room above `maxmemory` ({maxmemory})",
                        redis.memory
                    ),
                )
                .at_opt(span)
                .label(format!("needs at least {need}"))
                .note(format!(
                    "Redis needs maxmemory plus {} for buffers and persistence",
                    redis_overhead(maxmemory)
                ))
                .help(format!(
                    "raise `services.redis.memory` to {need} or lower `redis.maxmemory`"
                )),
            );
        }
    }

    if target == Target::Compose && vector_store != VectorStore::Pgvector {
        let span = layer.vector_store.as_ref().map(|v| v.span());
        cx.err(
            Diagnostic::error("unsupported", format!("compose sites run the vector store in their PostgreSQL; `{}` is not available there", vector_store.as_str()))
                .at_opt(span)
                .help("use `vector-store = \"pgvector\"`"),
        );
    }

    let network = network(&mut cx, layer, target, &rs.name);
    let lan_span = layer
        .network
        .as_ref()
        .and_then(|n| n.lan.as_ref())
        .map(|l| l.span());

    let ll = layer.login.clone().unwrap_or_default();
    let login = Login {
        allow_register: cx.flag(&ll.allow_register, "login.allow-register", false),
        allow_create_workspace: cx.flag(
            &ll.allow_create_workspace,
            "login.allow-create-workspace",
            false,
        ),
        email_password: cx.flag(&ll.email_password, "login.email-password", true),
        email_code: cx.flag(&ll.email_code, "login.email-code", false),
        social_oauth: cx.flag(&ll.social_oauth, "login.social-oauth", false),
    };

    let hl = layer.helm.clone().unwrap_or_default();
    // Compose sites do not use these; do not list their defaults in `explain`.
    let mut helm_defaults = Vec::new();
    if target == Target::Compose {
        std::mem::swap(&mut helm_defaults, &mut cx.defaults);
    }
    let helm = Helm {
        namespace: helm_name(&mut cx, &hl.namespace, "helm.namespace", "dify"),
        secret_store: helm_name(
            &mut cx,
            &hl.secret_store,
            "helm.secret-store",
            "dify-secrets",
        ),
        secret_store_kind: match &hl.secret_store_kind {
            Some(k) if ["SecretStore", "ClusterSecretStore"].contains(&k.get_ref().as_str()) => {
                k.get_ref().clone()
            }
            Some(k) => {
                cx.err(
                    Diagnostic::error(
                        "invalid-value",
                        format!("`{}` is not a secret store kind", k.get_ref()),
                    )
                    .at(k.span())
                    .help("use `SecretStore` or `ClusterSecretStore`"),
                );
                String::new()
            }
            None => cx.default("helm.secret-store-kind", "ClusterSecretStore".to_string()),
        },
        ingress_class: hl
            .ingress_class
            .as_ref()
            .map(|c| helm_name(&mut cx, &Some(c.clone()), "helm.ingress-class", "")),
    };
    if target == Target::Compose {
        std::mem::swap(&mut helm_defaults, &mut cx.defaults);
    }
    if target == Target::Compose && layer.helm.is_some() {
        // Harmless, but probably a profile meant for the other target.
        cx.err(
            Diagnostic::warning("helm-only", "`[helm]` has no effect on a compose site")
                .at(cx.anchor.clone())
                .help("remove `[helm]` from the chain of this site"),
        );
    }

    let env = env(&mut cx, layer);
    let secrets = secrets(&mut cx, layer, target);

    let wave = match layer.rollout.as_ref().and_then(|r| r.wave.as_ref()) {
        Some(w) if (1..=100).contains(w.get_ref()) => *w.get_ref() as u32,
        Some(w) => {
            cx.err(
                Diagnostic::error(
                    "out-of-range",
                    format!("wave {} is outside 1..=100", w.get_ref()),
                )
                .at(w.span())
                .help("wave 1 is the canary; later waves follow"),
            );
            1
        }
        None => cx.default("rollout.wave", 1u32),
    };

    let mut labels = BTreeMap::new();
    for (k, v) in layer.labels.iter().flatten() {
        if !is_label_key(k.get_ref()) {
            cx.err(
                Diagnostic::error(
                    "invalid-name",
                    format!("`{}` is not a valid label name", k.get_ref()),
                )
                .at(k.span())
                .help("label names are lower-case letters, digits, `-`, `.` and `_`, at most 63"),
            );
            continue;
        }
        if let Some(text) = cx.text(v, &format!("labels.{}", k.get_ref()), 256) {
            labels.insert(k.get_ref().clone(), text);
        }
    }

    let gitops = gitops(&mut cx, layer, target);

    // The memory budget of the box.
    if let Some(device) = &device {
        budget(
            &mut cx,
            device,
            &services,
            &memory_spans,
            sources,
            &rs.chain_files,
        );
    }

    let (Some(network), Some(gitops), true) = (network, gitops, cx.diags.error_count() == before)
    else {
        return None;
    };
    let site = Site {
        name: rs.name.clone(),
        file: sources.file(rs.file).path.clone(),
        profile_chain: rs.chain.clone().into(),
        description,
        target,
        dify_version,
        images: images.into(),
        build: Build {
            registry,
            api_base,
            web_base,
            platforms,
        }
        .into(),
        device,
        services: services.into(),
        database: database.into(),
        redis: Redis {
            maxmemory,
            policy,
            external: redis_external,
        }
        .into(),
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
    for (name, why) in required_secrets(&site) {
        let needs_db = name != "DB_PASSWORD"
            || site.database.external.is_some()
            || site.services.contains_key(&ServiceKind::Db);
        if needs_db && !site.secrets.contains_key(name) {
            cx.err(
                Diagnostic::error("missing-secret", format!("secret `{name}` is not given: {why}"))
                    .at(cx.anchor.clone())
                    .help(match target {
                        Target::Compose => format!("add `{name} = {{ env = \"{name}\" }}` under `[secrets]`"),
                        Target::Helm => format!("add `{name} = {{ remote = \"dify/...\", property = \"...\" }}` under `[secrets]`"),
                    }),
            );
        }
    }
    // A secret file reaches only the services that can read one.
    for (name, kind) in crate::plan::unsupported_file_secrets(&site) {
        let span = layer
            .secrets
            .iter()
            .flatten()
            .find(|(k, _)| k.get_ref() == &name)
            .map(|(_, v)| v.span());
        cx.err(
            Diagnostic::error("secret-ref", format!("`{name}` is read from a file, but the {} service reads it only from its environment", kind.key()))
                .at_opt(span)
                .help(format!("give `{name}` as `{{ env = \"VAR\" }}`: the {} image has no way to read a secret file", kind.key())),
        );
    }
    if cx.diags.error_count() != before {
        return None;
    }
    let mut defaults = cx.defaults;
    defaults.shrink_to_fit();
    Some(ValidSite {
        site,
        defaults,
        lan_span,
        chain_files: rs.chain_files.clone(),
    })
}

// ---------------------------------------------------------------------------
// [gitops]

/// Default prefix of the site branches.
pub const DEFAULT_BRANCH_PREFIX: &str = "sites/";
/// Default poll interval of a compose box.
pub const DEFAULT_PULL_INTERVAL: TimeSpan = TimeSpan::new(5, TimeUnit::Minutes);
/// Default confirmation window of an apply.
pub const DEFAULT_CONFIRM_TIMEOUT: TimeSpan = TimeSpan::new(120, TimeUnit::Seconds);
/// Accepted poll intervals: often enough to matter, not a busy loop.
const PULL_INTERVAL_RANGE: (TimeSpan, TimeSpan) = (
    TimeSpan::new(30, TimeUnit::Seconds),
    TimeSpan::new(24, TimeUnit::Hours),
);
/// Accepted confirmation windows: long enough for compose to recreate the
/// containers and see them healthy, short enough that a lock-out ends soon.
const CONFIRM_TIMEOUT_RANGE: (TimeSpan, TimeSpan) = (
    TimeSpan::new(10, TimeUnit::Seconds),
    TimeSpan::new(30, TimeUnit::Minutes),
);
const DEFAULT_ARGOCD_NAMESPACE: &str = "argocd";
const DEFAULT_ARGOCD_PROJECT: &str = "default";
const DEFAULT_CLUSTER: &str = "https://kubernetes.default.svc";

const REPOSITORY_HELP: &str = "write `https://host/path`, `ssh://[user@]host[:port]/path` or `user@host:path`, with letters, digits and `. _ ~ / + -` in the path; keep credentials out of the URL (a deploy key or a credential helper on the box)";

/// Characters a shell, systemd or YAML could read as something other than
/// part of a URL. Refused with their own message before the URL's shape is
/// judged (the shape check would refuse them too).
const URL_SPECIAL: &str = "'\"`$;\\|&<>(){}[]*?!#%^=,";

/// `user` in `user@host`: letters, digits, `.`, `_`, `-`, not starting with
/// `-` (which ssh would read as an option).
fn is_url_user(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !s.starts_with(['-', '.'])
}

/// A DNS name or IPv4 address in a URL (any case; no label starts or ends
/// with `-`, so none can be read as an option).
fn is_url_host(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// `host` or `host:port`.
fn url_host_port_problem(authority: &str) -> Option<String> {
    let (host, port) = match authority.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    if !is_url_host(host) {
        return Some(format!("`{host}` is not a host name"));
    }
    if let Some(p) = port
        && !(p.bytes().all(|b| b.is_ascii_digit())
            && !p.starts_with('0')
            && p.parse::<u16>().is_ok_and(|n| n > 0))
    {
        return Some(format!("`{p}` is not a port"));
    }
    None
}

/// The path part of a repository URL: not empty, [`url_path_chars_problem`].
fn url_path_problem(path: &str) -> Option<String> {
    if path.trim_matches('/').is_empty() {
        return Some("it names no repository path".to_string());
    }
    url_path_chars_problem(path)
}

/// The path part of a URL: `[A-Za-z0-9._~/+-]`.
fn url_path_chars_problem(path: &str) -> Option<String> {
    path.chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._~/+-".contains(*c)))
        .map(|c| format!("`{c}` is not allowed in the path"))
}

fn char_name(c: char) -> String {
    if c.is_whitespace() {
        format!("whitespace (U+{:04X})", c as u32)
    } else if c.is_control() || is_bidi_control(c) {
        format!("the control character U+{:04X}", c as u32)
    } else if c == '`' {
        "a backtick".to_string()
    } else {
        format!("`{c}`")
    }
}

/// Why `url` is not a repository URL dify-cfg accepts; `None` when it is.
/// Accepted: `https://host[:port]/path`, `ssh://[user@]host[:port]/path`
/// and scp-like `user@host:path`. Such a URL is inert as a shell word and
/// as a YAML scalar even before quoting, and cannot be read as an option
/// by git or ssh.
pub fn repository_problem(url: &str) -> Option<String> {
    if url.is_empty() {
        return Some("it is empty".to_string());
    }
    if url.len() > 512 {
        return Some("it is longer than 512 bytes".to_string());
    }
    if let Some(c) = url
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || is_bidi_control(*c))
    {
        return Some(format!("it contains {}", char_name(c)));
    }
    if let Some(c) = url.chars().find(|c| URL_SPECIAL.contains(*c)) {
        return Some(format!(
            "it contains {}, which a shell or a config file could interpret",
            char_name(c)
        ));
    }
    if let Some(c) = url.chars().find(|c| !c.is_ascii()) {
        return Some(format!(
            "it contains the non-ASCII character {}",
            char_name(c)
        ));
    }
    if let Some(rest) = url.strip_prefix("https://") {
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.contains('@') {
            return Some("an https URL may not carry a user or credentials".to_string());
        }
        return url_host_port_problem(authority).or_else(|| url_path_problem(path));
    }
    if let Some(rest) = url.strip_prefix("ssh://") {
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let host_port = match authority.split_once('@') {
            Some((user, hp)) if is_url_user(user) => hp,
            Some((user, _)) => return Some(format!("`{user}` is not a user name")),
            None => authority,
        };
        return url_host_port_problem(host_port).or_else(|| url_path_problem(path));
    }
    if let Some((scheme, _)) = url.split_once("://") {
        return Some(match scheme {
            "http" | "git" => format!(
                "`{scheme}://` is unauthenticated: anyone on the path could change what the sites apply"
            ),
            _ => format!("`{scheme}://` is not https or ssh"),
        });
    }
    // scp-like: user@host:path
    let Some((user, rest)) = url.split_once('@') else {
        return Some("it is not an https, ssh or `user@host:path` URL".to_string());
    };
    if !is_url_user(user) {
        return Some(format!("`{user}` is not a user name"));
    }
    let Some((host, path)) = rest.split_once(':') else {
        return Some("a `user@host:path` URL needs the `:` after the host".to_string());
    };
    if !is_url_host(host) {
        return Some(format!("`{host}` is not a host name"));
    }
    url_path_problem(path)
}

/// Why `prefix` is not a usable branch prefix; `None` when it is. The rules
/// are git's for a ref name (`git check-ref-format`) on a narrower alphabet,
/// plus a trailing `/` and no leading `-`.
pub fn branch_prefix_problem(prefix: &str) -> Option<String> {
    if prefix.is_empty() {
        return Some("it is empty".to_string());
    }
    if prefix.len() > 128 {
        return Some("it is longer than 128 bytes".to_string());
    }
    if let Some(c) = prefix
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_./".contains(*c)))
    {
        return Some(format!(
            "{} is not allowed in a branch name here",
            char_name(c)
        ));
    }
    if !prefix.ends_with('/') {
        return Some("it does not end in `/`".to_string());
    }
    if prefix.starts_with(['/', '.', '-']) {
        return Some(format!("it starts with `{}`", &prefix[..1]));
    }
    if prefix.contains("//") {
        return Some("it contains `//`".to_string());
    }
    if prefix.contains("..") {
        return Some("it contains `..`".to_string());
    }
    for part in prefix.trim_end_matches('/').split('/') {
        if part.starts_with('.') {
            return Some(format!("the component `{part}` starts with `.`"));
        }
        if part.ends_with(".lock") {
            return Some(format!("the component `{part}` ends in `.lock`"));
        }
    }
    None
}

/// Why `url` is not a cluster API server URL (`https://host[:port][/path]`).
pub fn cluster_problem(url: &str) -> Option<String> {
    if let Some(c) = url
        .chars()
        .find(|c| !(c.is_ascii_graphic()) || URL_SPECIAL.contains(*c))
    {
        return Some(format!("it contains {}", char_name(c)));
    }
    let Some(rest) = url.strip_prefix("https://") else {
        return Some("it is not an https URL".to_string());
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.contains('@') {
        return Some("it may not carry a user or credentials".to_string());
    }
    url_host_port_problem(authority).or_else(|| url_path_chars_problem(path))
}

/// A Kubernetes namespace name: a DNS label.
fn is_dns_label(s: &str) -> bool {
    is_hostname(s) && s.len() <= 63 && !s.contains('.')
}

fn time_span(
    cx: &mut Cx<'_>,
    v: &Option<Spanned<String>>,
    key: &str,
    default: TimeSpan,
    (min, max): (TimeSpan, TimeSpan),
) -> Option<TimeSpan> {
    let Some(v) = v else {
        return Some(cx.default(key, default));
    };
    match parse_time_span(v.get_ref()) {
        Ok(span) if span.seconds() < min.seconds() || span.seconds() > max.seconds() => {
            cx.err(
                Diagnostic::error(
                    "out-of-range",
                    format!("`{key}` is {span}, outside {min}..={max}"),
                )
                .at(v.span())
                .help(format!("choose a span from {min} to {max}")),
            );
            None
        }
        Ok(span) => Some(span),
        Err(e) => {
            cx.err(
                Diagnostic::error("invalid-unit", e.message)
                    .at(v.span())
                    .label(format!("`{key}` takes a span of time"))
                    .help(e.help),
            );
            None
        }
    }
}

/// `[gitops]`: the repository and branch of the site, and how the site
/// applies it (the pull agent on compose, Argo CD on helm). Keys of the
/// other target are errors, and their defaults are not recorded.
fn gitops(cx: &mut Cx<'_>, layer: &Layer, target: Target) -> Option<Gitops> {
    let unset = crate::input::layer::GitopsLayer::default();
    let gl = layer.gitops.as_ref().unwrap_or(&unset);
    let before = cx.diags.error_count();
    let repository = match &gl.repository {
        Some(r) => cx.checked(
            r,
            repository_problem,
            "a repository URL dify-cfg accepts",
            |d| {
                d.label("`gitops.repository` takes a git URL")
                    .help(REPOSITORY_HELP)
            },
        ),
        None => {
            cx.missing(
                "gitops.repository",
                "set `[gitops] repository = \"https://git.example.org/platform/dify-fleet.git\"` in the root profile: the sites fetch their branches from there",
            );
            None
        }
    };
    let branch_prefix = match &gl.branch_prefix {
        Some(p) => cx.checked(p, branch_prefix_problem, "a branch prefix", |d| {
            d.help("write a prefix such as `sites/` or `fleet/clinics/`: letters, digits, `-`, `_`, `.` and `/`, ending in `/`, without `..`, `//`, a leading `/`, `.` or `-`, or a component ending in `.lock`")
        }),
        None => Some(cx.default("gitops.branch-prefix", DEFAULT_BRANCH_PREFIX.to_string())),
    };
    let not_applicable = |cx: &mut Cx<'_>, v: &Option<Spanned<String>>, key: &str, help: &str| {
        if let Some(v) = v {
            cx.err(
                Diagnostic::error(
                    "not-applicable",
                    format!(
                        "`gitops.{key}` applies to {} sites only",
                        match target {
                            Target::Compose => "helm",
                            Target::Helm => "compose",
                        }
                    ),
                )
                .at(v.span())
                .help(help.to_string()),
            );
        }
    };
    let (pull, argocd) = match target {
        Target::Compose => {
            for (v, key) in [
                (&gl.argocd_namespace, "argocd-namespace"),
                (&gl.argocd_project, "argocd-project"),
                (&gl.cluster, "cluster"),
            ] {
                not_applicable(
                    cx,
                    v,
                    key,
                    "remove it: a compose box applies its branch itself with deploy/apply.sh; Argo CD syncs helm sites",
                );
            }
            let interval = time_span(
                cx,
                &gl.pull_interval,
                "gitops.pull-interval",
                DEFAULT_PULL_INTERVAL,
                PULL_INTERVAL_RANGE,
            );
            let confirm_timeout = time_span(
                cx,
                &gl.confirm_timeout,
                "gitops.confirm-timeout",
                DEFAULT_CONFIRM_TIMEOUT,
                CONFIRM_TIMEOUT_RANGE,
            );
            let pull = match (interval, confirm_timeout) {
                (Some(interval), Some(confirm_timeout)) => Some(Pull {
                    interval,
                    confirm_timeout,
                }),
                _ => None,
            };
            (pull, None)
        }
        Target::Helm => {
            for (v, key) in [
                (&gl.pull_interval, "pull-interval"),
                (&gl.confirm_timeout, "confirm-timeout"),
            ] {
                not_applicable(
                    cx,
                    v,
                    key,
                    "remove it: Argo CD syncs a helm site; the pull agent runs on compose boxes only",
                );
            }
            let namespace = name_value(
                cx,
                &gl.argocd_namespace,
                "gitops.argocd-namespace",
                DEFAULT_ARGOCD_NAMESPACE,
                NameRule {
                    valid: is_dns_label,
                    what: "a Kubernetes namespace name",
                    takes: "lower-case letters, digits and dashes, at most 63",
                },
            );
            let project = name_value(
                cx,
                &gl.argocd_project,
                "gitops.argocd-project",
                DEFAULT_ARGOCD_PROJECT,
                NameRule {
                    valid: is_hostname,
                    what: "an Argo CD project name",
                    takes: "lower-case letters, digits, dashes and dots",
                },
            );
            let cluster = match &gl.cluster {
                Some(c) => cx
                    .checked(c, cluster_problem, "a cluster API server URL", |d| {
                        d.help("write the API server's https URL as Argo CD knows it, e.g. `https://kubernetes.default.svc`")
                    })
                    .unwrap_or_default(),
                None => cx.default("gitops.cluster", DEFAULT_CLUSTER.to_string()),
            };
            (
                None,
                Some(ArgoCd {
                    namespace,
                    project,
                    cluster,
                }),
            )
        }
    };
    if cx.diags.error_count() != before {
        return None;
    }
    Some(Gitops {
        repository: repository?,
        branch_prefix: branch_prefix?,
        pull,
        argocd,
    })
}

fn helm_name(cx: &mut Cx<'_>, v: &Option<Spanned<String>>, key: &str, default: &str) -> String {
    name_value(
        cx,
        v,
        key,
        default,
        NameRule {
            valid: is_hostname,
            what: "a valid Kubernetes name",
            takes: "lower-case letters, digits and dashes",
        },
    )
}

/// What a name-like setting must look like.
struct NameRule {
    valid: fn(&str) -> bool,
    /// What it is not when invalid, e.g. `a Kubernetes namespace name`.
    what: &'static str,
    /// What it takes, for the help line.
    takes: &'static str,
}

/// A name-like setting: its value when `rule` accepts it, else an
/// `invalid-name` error (and an empty name); its default when unset.
fn name_value(
    cx: &mut Cx<'_>,
    v: &Option<Spanned<String>>,
    key: &str,
    default: &str,
    rule: NameRule,
) -> String {
    match v {
        Some(n) if (rule.valid)(n.get_ref()) => n.get_ref().clone(),
        Some(n) => {
            cx.err(
                Diagnostic::error(
                    "invalid-name",
                    format!("`{}` is not {}", n.get_ref().escape_debug(), rule.what),
                )
                .at(n.span())
                .help(format!("`{key}` takes {}", rule.takes)),
            );
            String::new()
        }
        None => cx.default(key, default.to_string()),
    }
}

fn external(
    cx: &mut Cx<'_>,
    e: &layer::ExternalLayer,
    key: &str,
    default_port: u16,
) -> Option<External> {
    let host = match &e.host {
        Some(h) if is_hostname(h.get_ref()) || IpAddr::from_str(h.get_ref()).is_ok() => {
            h.get_ref().clone()
        }
        Some(h) => {
            cx.err(
                Diagnostic::error(
                    "invalid-name",
                    format!("`{}` is not a host name or address", h.get_ref()),
                )
                .at(h.span())
                .help("write a DNS name such as `db.internal.example.org` or an IP address"),
            );
            return None;
        }
        None => {
            cx.missing(&format!("{key}.host"), "name the external server's host");
            return None;
        }
    };
    let port = cx.port(&e.port, &format!("{key}.port"), default_port);
    let database = match &e.database {
        Some(d) if is_label_key(d.get_ref()) => Some(d.get_ref().clone()),
        Some(d) => {
            cx.err(
                Diagnostic::error(
                    "invalid-name",
                    format!("`{}` is not a database name", d.get_ref()),
                )
                .at(d.span())
                .help("use lower-case letters, digits, `_` and `-`"),
            );
            None
        }
        None => None,
    };
    Some(External {
        host,
        port,
        database,
    })
}

fn autoscaling(
    cx: &mut Cx<'_>,
    a: &layer::AutoscalingLayer,
    anchor: Span,
    key: &str,
    kind: ServiceKind,
    target: Target,
) -> Option<Autoscaling> {
    if target == Target::Compose {
        cx.err(
            Diagnostic::error(
                "helm-only",
                format!("`{key}.autoscaling` applies to helm sites only"),
            )
            .at(anchor)
            .help("a compose site runs a fixed number of replicas; set `replicas`"),
        );
        return None;
    }
    if !matches!(
        kind,
        ServiceKind::Api | ServiceKind::Worker | ServiceKind::Web | ServiceKind::Sandbox
    ) {
        cx.err(
            Diagnostic::error(
                "not-applicable",
                format!(
                    "the chart autoscales api, worker, web and sandbox, not {}",
                    kind.key()
                ),
            )
            .at(anchor)
            .help("remove `autoscaling` here"),
        );
        return None;
    }
    if a.enabled.as_ref().is_some_and(|e| !*e.get_ref()) {
        return None;
    }
    let min = cx.int(
        &a.min_replicas,
        &format!("{key}.autoscaling.min-replicas"),
        1..=1000,
        1,
    )?;
    let max = cx.int(
        &a.max_replicas,
        &format!("{key}.autoscaling.max-replicas"),
        1..=1000,
        3,
    )?;
    let target_cpu = match &a.target_cpu {
        Some(t) => match parse_percent(t.get_ref()) {
            Ok(p) if p > 0 => p,
            Ok(_) | Err(_) => {
                cx.err(
                    Diagnostic::error(
                        "invalid-unit",
                        format!("`{}` is not a CPU target", t.get_ref()),
                    )
                    .at(t.span())
                    .help("write a percentage from 1% to 100%, e.g. `70%`"),
                );
                return None;
            }
        },
        None => {
            cx.default(&format!("{key}.autoscaling.target-cpu"), "70%");
            70
        }
    };
    if min > max {
        let span = a.min_replicas.as_ref().map(|m| m.span()).unwrap_or(anchor);
        cx.err(
            Diagnostic::error(
                "out-of-range",
                format!("min-replicas ({min}) is above max-replicas ({max})"),
            )
            .at(span)
            .help("min-replicas must not exceed max-replicas"),
        );
        return None;
    }
    Some(Autoscaling {
        min_replicas: min,
        max_replicas: max,
        target_cpu_percent: target_cpu,
    })
}

fn network(cx: &mut Cx<'_>, layer: &Layer, target: Target, site: &str) -> Option<Network> {
    let nl = layer.network.clone().unwrap_or_default();
    let compose = target == Target::Compose;
    let lan = match &nl.lan {
        Some(l) => match cx.cidr(l, "network.lan") {
            Some(IpNet::V4(n)) => Some(n),
            Some(IpNet::V6(_)) => {
                cx.err(
                    Diagnostic::error(
                        "invalid-cidr",
                        "`network.lan` is the IPv4 LAN; put an IPv6 LAN in `network.lan6`",
                    )
                    .at(l.span())
                    .help("move this network to `lan6`"),
                );
                None
            }
            None => None,
        },
        None if compose => {
            cx.missing(
                "network.lan",
                "set the site's LAN, e.g. `lan = \"10.20.1.0/24\"`",
            );
            None
        }
        None => None,
    };
    let lan6 = match &nl.lan6 {
        Some(l) => match cx.cidr(l, "network.lan6") {
            Some(IpNet::V6(n)) => Some(n),
            Some(IpNet::V4(_)) => {
                cx.err(
                    Diagnostic::error("invalid-cidr", "`network.lan6` takes an IPv6 network")
                        .at(l.span())
                        .help("put the IPv4 LAN in `network.lan`"),
                );
                None
            }
            None => None,
        },
        None => None,
    };
    let address = match &nl.address {
        Some(a) => match Ipv4Addr::from_str(a.get_ref()) {
            Ok(addr) => {
                if let Some(lan) = lan
                    && (!lan.contains(&addr) || addr == lan.network() || addr == lan.broadcast())
                {
                    cx.err(
                        Diagnostic::error(
                            "address-outside-lan",
                            format!("`{addr}` is not a host address in the site's LAN {lan}"),
                        )
                        .at(a.span())
                        .help(format!(
                            "choose a host address inside {lan}, e.g. `{}`",
                            lan.hosts().nth(9).unwrap_or(lan.network())
                        )),
                    );
                }
                Some(addr)
            }
            Err(_) => {
                cx.err(
                    Diagnostic::error(
                        "invalid-address",
                        format!("`{}` is not an IPv4 address", a.get_ref()),
                    )
                    .at(a.span())
                    .help("write the box's LAN address, e.g. `10.20.1.10`"),
                );
                None
            }
        },
        None if compose => {
            cx.missing("network.address", "set the box's address on the LAN, e.g. `address = \"10.20.1.10\"`: nginx publishes only there");
            None
        }
        None => None,
    };
    let errors_before_networks = cx.diags.error_count();
    let admin = cx.cidrs(&nl.admin, "network.admin").unwrap_or_default();
    if compose && admin.is_empty() && nl.admin.is_none() {
        cx.missing(
            "network.admin",
            "name the networks that administer the site, e.g. `admin = [\"10.0.0.0/24\"]`",
        );
    }
    let ssh_from = match cx.cidrs(&nl.ssh_from, "network.ssh-from") {
        Some(s) => s,
        None => {
            cx.default(
                "network.ssh-from",
                admin.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            );
            admin.clone()
        }
    };
    // Lock-out: the admin network must be able to reach SSH. Judged only
    // when every network parsed: a dropped entry would fake a lock-out.
    let networks_ok = cx.diags.error_count() == errors_before_networks;
    if compose
        && networks_ok
        && !admin.is_empty()
        && !ssh_from
            .iter()
            .any(|s| admin.iter().any(|a| a.contains(s) || s.contains(a)))
    {
        let span = nl
            .ssh_from
            .as_ref()
            .map(|s| s.span())
            .or(nl.admin.as_ref().map(|a| a.span()));
        cx.err(
            Diagnostic::error("ssh-lockout", "no admin network may reach SSH on the box")
                .at_opt(span)
                .label("`ssh-from` shares no address with `admin`")
                .help("include an admin network (or part of one) in `network.ssh-from`, or the firewall would lock the administrators out"),
        );
    }
    let ssh_port = cx.port(&nl.ssh_port, "network.ssh-port", 22);
    let http_port = cx.port(&nl.http_port, "network.http-port", 80);
    let hostname = match &nl.hostname {
        Some(h) if is_hostname(h.get_ref()) => h.get_ref().clone(),
        Some(h) => {
            cx.err(
                Diagnostic::error(
                    "invalid-name",
                    format!("`{}` is not a host name", h.get_ref()),
                )
                .at(h.span())
                .help("write a lower-case DNS name such as `clinic-01.example.org`"),
            );
            String::new()
        }
        None => match address {
            Some(a) => cx.default("network.hostname", a.to_string()),
            None => cx.default("network.hostname", format!("{site}.local")),
        },
    };
    let mut public_routes = Vec::new();
    if let Some(routes) = &nl.public_routes {
        let known: Vec<&str> = dify::ROUTES.iter().map(|(r, _)| *r).collect();
        for r in routes.get_ref() {
            if known.contains(&r.get_ref().as_str()) {
                public_routes.push(r.get_ref().clone());
            } else {
                let d = Diagnostic::error(
                    "unknown-route",
                    format!("`{}` is not a route prefix Dify serves", r.get_ref()),
                )
                .at(r.span());
                cx.err(match did_you_mean(r.get_ref(), known.iter().copied()) {
                    Some(s) => d.help(format!("did you mean `{s}`?")),
                    None => d.help(format!("route prefixes: {}", known.join(", "))),
                });
            }
        }
    } else {
        cx.default("network.public-routes", vec!["/v1".to_string()]);
        public_routes.push("/v1".to_string());
    }
    public_routes.sort();
    public_routes.dedup();
    let mut egress = Vec::new();
    if let Some(rules) = &nl.egress {
        for (i, item) in rules.get_ref().iter().enumerate() {
            let e = item.get_ref();
            let at = item.span();
            let key = format!("network.egress[{i}]");
            let name = match &e.name {
                Some(n) if is_valid_name(n.get_ref()) => Some(n.get_ref().clone()),
                Some(n) => {
                    cx.err(
                        Diagnostic::error(
                            "invalid-name",
                            format!("`{}` is not a valid rule name", n.get_ref()),
                        )
                        .at(n.span())
                        .help("use lower-case letters, digits and dashes, e.g. `llm-gateway`"),
                    );
                    None
                }
                None => {
                    cx.err(
                        Diagnostic::error("missing-key", format!("`{key}` has no `name`"))
                            .at(at.clone())
                            .help("name each egress rule, e.g. `name = \"llm-gateway\"`"),
                    );
                    None
                }
            };
            let cidr = match &e.cidr {
                Some(c) => cx.cidr(c, &format!("{key}.cidr")),
                None => {
                    cx.err(
                        Diagnostic::error("missing-key", format!("`{key}` has no `cidr`"))
                            .at(at.clone())
                            .help(
                                "give the network of the endpoint, e.g. `cidr = \"10.0.0.40/32\"`",
                            ),
                    );
                    None
                }
            };
            let mut ports = Vec::new();
            match &e.ports {
                Some(p) if !p.get_ref().is_empty() => {
                    for port in p.get_ref() {
                        let port = cx.port(&Some(port.clone()), &format!("{key}.ports"), 0);
                        if port > 0 {
                            ports.push(port);
                        }
                    }
                }
                Some(p) => cx.err(
                    Diagnostic::error("missing-key", format!("`{key}.ports` is empty"))
                        .at(p.span())
                        .help("list the ports, e.g. `ports = [443]`"),
                ),
                None => cx.err(
                    Diagnostic::error("missing-key", format!("`{key}` has no `ports`"))
                        .at(at.clone())
                        .help("list the ports, e.g. `ports = [443]`"),
                ),
            }
            ports.sort();
            ports.dedup();
            if let (Some(name), Some(cidr), false) = (name, cidr, ports.is_empty()) {
                egress.push(Egress { name, cidr, ports });
            }
        }
    }
    if compose && (lan.is_none() || address.is_none()) {
        return None;
    }
    Some(Network {
        hostname,
        lan,
        address,
        lan6,
        admin: admin.into(),
        ssh_from: ssh_from.into(),
        ssh_port,
        http_port,
        public_routes: public_routes.into(),
        egress: egress.into(),
    })
}

fn env(cx: &mut Cx<'_>, layer: &Layer) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let names = dify::env_names();
    for (k, v) in layer.env.iter().flatten() {
        let name = k.get_ref();
        if !dify::is_env_name(name) {
            let d = Diagnostic::error(
                "unknown-env",
                format!("`{name}` is not a setting Dify knows"),
            )
            .at(k.span())
            .label("not in Dify's settings");
            cx.err(match did_you_mean(name, names.iter().copied()) {
                Some(s) => d.help(format!("did you mean `{s}`?")),
                None => d.help("`[env]` takes the names of Dify's settings, e.g. `LOG_LEVEL`"),
            });
            continue;
        }
        if dify::is_secret_name(name) {
            cx.err(
                Diagnostic::error(
                    "literal-secret",
                    format!("`{name}` is a secret and may not be written in a file"),
                )
                .at(v.span())
                .label("a literal secret")
                .help(format!(
                    "move it to `[secrets]` as a reference: `{name} = {{ env = \"{name}\" }}`"
                )),
            );
            continue;
        }
        if let Some((_, key)) = MANAGED_ENV.iter().find(|(n, _)| n == name) {
            cx.err(
                Diagnostic::error(
                    "env-conflict",
                    format!("`{name}` is set by dify-cfg from `{key}`"),
                )
                .at(k.span())
                .help(format!("set `{key}` instead")),
            );
            continue;
        }
        let value = v.get_ref().render();
        if let Some(c) = value
            .chars()
            .find(|c| (c.is_control() && *c != '\t') || is_bidi_control(*c))
        {
            cx.err(
                Diagnostic::error(
                    "invalid-text",
                    format!(
                        "the value of `{name}` contains the control character U+{:04X}",
                        c as u32
                    ),
                )
                .at(v.span())
                .help("environment values are written on one line"),
            );
            continue;
        }
        if url_has_password(&value) {
            cx.err(
                Diagnostic::error(
                    "literal-secret",
                    format!("the value of `{name}` is a URL with a password in it"),
                )
                .at(v.span())
                .label("a literal secret")
                .help("write the URL without `user:password@` and give the password by reference in `[secrets]`, e.g. as the setting's `_PASSWORD`"),
            );
            continue;
        }
        out.insert(name.clone(), value);
    }
    out
}

/// Whether `value` is a URL whose authority carries a password
/// (`scheme://user:password@host`): a literal secret in a plain setting.
fn url_has_password(value: &str) -> bool {
    let Some((_, rest)) = value.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    authority
        .rsplit_once('@')
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .is_some_and(|(_, password)| !password.is_empty())
}

fn secrets(cx: &mut Cx<'_>, layer: &Layer, target: Target) -> BTreeMap<String, SecretRef> {
    let mut out = BTreeMap::new();
    let names = dify::env_names();
    for (k, v) in layer.secrets.iter().flatten() {
        let name = k.get_ref();
        if !dify::is_env_name(name) {
            let d = Diagnostic::error(
                "unknown-env",
                format!("`{name}` is not a setting Dify knows"),
            )
            .at(k.span());
            cx.err(match did_you_mean(name, names.iter().copied()) {
                Some(s) => d.help(format!("did you mean `{s}`?")),
                None => {
                    d.help("`[secrets]` takes the names of Dify's settings, e.g. `DB_PASSWORD`")
                }
            });
            continue;
        }
        let r = match v.get_ref() {
            SecretValue::Literal => {
                cx.err(
                    Diagnostic::error("literal-secret", format!("`{name}` is given as a literal value"))
                        .at(v.span())
                        .label("a secret written in the file")
                        .help(match target {
                            Target::Compose => format!("give a reference instead: `{name} = {{ env = \"{name}\" }}` (read from the deploying host's environment)"),
                            Target::Helm => format!("give a reference instead: `{name} = {{ remote = \"dify/...\", property = \"...\" }}`"),
                        }),
                );
                continue;
            }
            SecretValue::Ref(r) => r,
        };
        let kinds = [r.env.is_some(), r.file.is_some(), r.remote.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        let bad = |cx: &mut Cx<'_>, msg: String, help: &str| {
            cx.err(
                Diagnostic::error("secret-ref", msg)
                    .at(v.span())
                    .help(help.to_string()),
            );
        };
        if kinds != 1 {
            bad(
                cx,
                format!("`{name}` must name exactly one of `env`, `file` or `remote`"),
                "write `{ env = \"NAME\" }`, `{ file = \"/path\" }` or `{ remote = \"key\", property = \"prop\" }`",
            );
            continue;
        }
        if r.property.is_some() && r.remote.is_none() {
            bad(
                cx,
                format!("`{name}`: `property` goes with `remote`"),
                "remove `property`, or use `remote`",
            );
            continue;
        }
        let secret = if let Some(env) = &r.env {
            if !is_env_var_name(env) {
                bad(
                    cx,
                    format!("`{env}` is not an environment variable name"),
                    "use upper-case letters, digits and `_`, e.g. `CLINIC_DB_PASSWORD`",
                );
                continue;
            }
            SecretRef::Env { name: env.clone() }
        } else if let Some(path) = &r.file {
            if !path.starts_with('/')
                || path.contains("..")
                || path.chars().any(|c| {
                    c.is_control() || c == '"' || c == '\'' || c == '$' || c == '\\' || c == ' '
                })
            {
                bad(
                    cx,
                    format!("`{path}` is not a usable secret file path"),
                    "write an absolute path without spaces, quotes, `$` or `..`, e.g. `/etc/dify/secrets/db_password`",
                );
                continue;
            }
            SecretRef::File { path: path.clone() }
        } else {
            let key = r.remote.clone().unwrap_or_default();
            let Some(property) = r.property.clone() else {
                bad(
                    cx,
                    format!("`{name}`: `remote` needs a `property`"),
                    "add `property = \"password\"` (the field within the remote secret)",
                );
                continue;
            };
            let ok = |s: &str| {
                !s.is_empty()
                    && s.len() <= 253
                    && s.bytes().all(|b| {
                        b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/')
                    })
            };
            if !ok(&key) || !ok(&property) {
                bad(
                    cx,
                    format!(
                        "`{name}`: the remote key or property has characters a secret store does not take"
                    ),
                    "use letters, digits, `-`, `_`, `.` and `/`",
                );
                continue;
            }
            SecretRef::Remote { key, property }
        };
        let fits = match (&secret, target) {
            (SecretRef::Remote { .. }, Target::Compose) => {
                Some("a compose site reads secrets from `env` or `file`")
            }
            (SecretRef::Env { .. } | SecretRef::File { .. }, Target::Helm) => Some(
                "a helm site reads secrets from the external secret store: `{ remote = ..., property = ... }`",
            ),
            _ => None,
        };
        if let Some(why) = fits {
            bad(
                cx,
                format!("`{name}` uses a kind of reference this site's target cannot read"),
                why,
            );
            continue;
        }
        if target == Target::Helm && dify::helm_secret_refs(name).is_empty() {
            bad(
                cx,
                format!("the dify-helm chart's external secrets have no place for `{name}`"),
                "give helm sites only the secrets the chart reads from its secret store (SECRET_KEY, DB_PASSWORD, REDIS_PASSWORD, PLUGIN_DAEMON_KEY, ...)",
            );
            continue;
        }
        out.insert(name.clone(), secret);
    }
    out
}

/// The sum of the memory limits of everything on the box must fit the
/// device less its reserve.
fn budget(
    cx: &mut Cx<'_>,
    device: &Device,
    services: &BTreeMap<ServiceKind, Service>,
    spans: &BTreeMap<ServiceKind, Option<Span>>,
    sources: &SourceMap,
    chain_files: &[crate::base::source::FileId],
) {
    let total: u64 = services
        .values()
        .map(|s| s.memory.0 * u64::from(s.replicas))
        .sum();
    let budget = device.budget();
    if total <= budget.0 {
        return;
    }
    // Point at the memory setting made in the most specific file (the site,
    // then its profile, ...), the largest there: the likeliest edit.
    let rank = |span: &Span| {
        let id = sources.lookup(span.start);
        chain_files.iter().position(|f| *f == id).unwrap_or(0)
    };
    let culprit = services
        .values()
        .filter_map(|s| {
            spans
                .get(&s.kind)
                .cloned()
                .flatten()
                .map(|sp| (rank(&sp), s.memory, sp))
        })
        .max_by_key(|(r, m, _)| (*r, *m))
        .map(|(_, _, sp)| sp);
    let mut table = String::from("memory budget of this box:\n");
    table.push_str(&format!(
        "  {:<15} {:>10} {:>9}  {}\n",
        "service", "limit", "replicas", "set at"
    ));
    for s in services.values() {
        let at = spans
            .get(&s.kind)
            .cloned()
            .flatten()
            .map(|sp| sources.location(&sp).to_string())
            .unwrap_or_else(|| "-".into());
        table.push_str(&format!(
            "  {:<15} {:>10} {:>9}  {}\n",
            s.kind.key(),
            s.memory.human(),
            s.replicas,
            at
        ));
    }
    table.push_str(&format!("  {:<15} {:>10}\n", "sum", Bytes(total).human()));
    table.push_str(&format!(
        "  {:<15} {:>10}  ({} less {}% reserve)\n",
        "budget",
        budget.human(),
        device.memory.human(),
        device.reserve_percent
    ));
    table.push_str(&format!(
        "  {:<15} {:>10}",
        "over by",
        Bytes(total - budget.0).human_approx()
    ));
    cx.err(
        Diagnostic::error("memory-budget", format!("the services need {} but the box has {} for them", Bytes(total).human_approx(), budget.human_approx()))
            .at_opt(culprit)
            .label("the most specific memory setting of this site")
            .note(table)
            .help("lower service limits, switch optional services off (`enabled = false`), or reduce `device.reserve`"),
    );
}

/// Overlapping LANs between sites: two boxes would fight over addresses
/// and the admin network could not route to both.
pub fn validate_fleet(sites: &[ValidSite], sources: &SourceMap, diags: &mut Diagnostics) {
    for (i, a) in sites.iter().enumerate() {
        for b in &sites[..i] {
            if let (Some(la), Some(lb)) = (a.site.network.lan, b.site.network.lan)
                && (la.contains(&lb.network()) || lb.contains(&la.network()))
            {
                let other = b
                    .lan_span
                    .as_ref()
                    .map(|s| sources.location(s).to_string())
                    .unwrap_or_else(|| b.site.file.clone());
                diags.push(
                    Diagnostic::error(
                        "overlapping-lan",
                        format!(
                            "the LAN of `{}` ({la}) overlaps the LAN of `{}` ({lb})",
                            a.site.name, b.site.name
                        ),
                    )
                    .at_opt(a.lan_span.clone())
                    .note(format!("`{}` sets its LAN at {other}", b.site.name))
                    .help("give every site its own LAN, e.g. 10.20.N.0/24 for clinic N"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_urls_of_the_three_shapes_are_accepted() {
        for ok in [
            "https://git.clinics.example.org/platform/dify-fleet.git",
            "https://git.example.org:8443/a/b",
            "https://10.0.0.5/fleet.git",
            "ssh://git@git.example.org/platform/dify-fleet.git",
            "ssh://git.example.org:2222/platform/dify-fleet.git",
            "git@github.com:clinics/dify-fleet.git",
            "deploy_user@git.example.org:~/fleet.git",
            "git@git.example.org:/srv/git/fleet+config.git",
        ] {
            assert_eq!(repository_problem(ok), None, "{ok}");
        }
    }

    #[test]
    fn repository_urls_that_are_not_inert_or_not_git_urls_are_refused() {
        for (bad, why) in [
            ("", "empty"),
            ("https://git.example.org/a.git;reboot", "`;`"),
            ("https://git.example.org/$(id)/a.git", "`$`"),
            ("https://git.example.org/`id`/a.git", "a backtick"),
            ("https://git.example.org/a'b.git", "`'`"),
            ("https://git.example.org/a\"b.git", "`\"`"),
            ("https://git.example.org/a b.git", "whitespace"),
            ("https://git.example.org/a\nb.git", "whitespace"),
            ("https://git.example.org/a\u{202e}b.git", "control"),
            ("https://git.example.org/a|b.git", "`|`"),
            ("https://git.example.org/a&b.git", "`&`"),
            ("https://git.example.org/a%20b.git", "`%`"),
            ("https://gït.example.org/a.git", "non-ASCII"),
            ("http://git.example.org/a.git", "unauthenticated"),
            ("git://git.example.org/a.git", "unauthenticated"),
            ("file:///srv/git/a.git", "not https or ssh"),
            (
                "https://deploy:hunter2@git.example.org/a.git",
                "credentials",
            ),
            ("https://git.example.org", "no repository path"),
            ("https://git.example.org/", "no repository path"),
            ("https://-oProxyCommand/a.git", "not a host name"),
            ("https://git.example.org:0/a.git", "not a port"),
            ("https://git.example.org:99999/a.git", "not a port"),
            (
                "ssh://-oProxyCommand@git.example.org/a.git",
                "not a user name",
            ),
            ("git@-oProxyCommand:a.git", "not a host name"),
            ("-u@git.example.org:a.git", "not a user name"),
            ("git@git.example.org", "needs the `:`"),
            ("git.example.org:a.git", "not an https, ssh"),
            ("/srv/git/a.git", "not an https, ssh"),
        ] {
            let problem = repository_problem(bad).unwrap_or_else(|| panic!("{bad:?} accepted"));
            assert!(problem.contains(why), "{bad:?}: {problem}");
        }
        assert!(repository_problem(&format!("https://x.org/{}", "a".repeat(600))).is_some());
    }

    #[test]
    fn branch_prefixes_follow_git_ref_rules_and_end_in_a_slash() {
        for ok in ["sites/", "fleet/clinics/", "release-2026_a.b/"] {
            assert_eq!(branch_prefix_problem(ok), None, "{ok}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("sites", "does not end in `/`"),
            ("/sites/", "starts with `/`"),
            (".sites/", "starts with `.`"),
            ("-sites/", "starts with `-`"),
            ("sites//x/", "`//`"),
            ("sites/../", "`..`"),
            ("a..b/", "`..`"),
            ("x.lock/", "ends in `.lock`"),
            ("a/.hidden/", "starts with `.`"),
            ("sites /", "whitespace"),
            ("sites/$x/", "`$`"),
            ("sites~/", "`~`"),
            ("sites:/", "`:`"),
            ("sites@{1}/", "`@`"),
        ] {
            let problem = branch_prefix_problem(bad).unwrap_or_else(|| panic!("{bad:?} accepted"));
            assert!(problem.contains(why), "{bad:?}: {problem}");
        }
    }

    #[test]
    fn cluster_urls_are_https_api_servers() {
        for ok in [
            "https://kubernetes.default.svc",
            "https://10.0.0.1:6443",
            "https://k8s.example.org/prefix",
        ] {
            assert_eq!(cluster_problem(ok), None, "{ok}");
        }
        for bad in [
            "http://kubernetes.default.svc",
            "https://admin@kubernetes.default.svc",
            "https://k8s.example.org/a b",
            "https://k8s.example.org/$(id)",
            "kubernetes.default.svc",
        ] {
            assert!(cluster_problem(bad).is_some(), "{bad:?} accepted");
        }
    }

    #[test]
    fn urls_with_a_password_are_literal_secrets() {
        for v in [
            "http://root:Milvus@milvus:19530",
            "redis://:hunter2@redis:6379/1",
            "https://user:p%40ss@host/path?x=1",
        ] {
            assert!(url_has_password(v), "{v}");
        }
        for v in [
            "http://milvus:19530",
            "https://user@host/path",
            "https://host/a:b@c",
            "user:pass@host",
            "https://host/?next=http://a:b@c",
            "https://user:@host/",
            "",
        ] {
            assert!(!url_has_password(v), "{v}");
        }
    }

    #[test]
    fn the_example_fleet_gets_its_gitops_defaults() {
        let (inputs, diags) =
            crate::driver::read_inputs(std::path::Path::new(env!("CARGO_MANIFEST_DIR")));
        let analysis = crate::driver::analyze(&inputs, diags);
        assert!(!analysis.diagnostics.has_errors());
        let site = |name: &str| analysis.sites.iter().find(|s| s.site.name == name).unwrap();
        let clinic = site("clinic-01");
        let g = &clinic.site.gitops;
        assert_eq!(
            g.repository,
            "https://git.clinics.example.org/platform/dify-fleet.git"
        );
        assert_eq!(g.branch_prefix, "sites/");
        assert_eq!(g.branch("clinic-01"), "sites/clinic-01");
        assert_eq!(
            g.pull,
            Some(Pull {
                interval: TimeSpan::new(5, TimeUnit::Minutes),
                confirm_timeout: TimeSpan::new(120, TimeUnit::Seconds),
            })
        );
        assert_eq!(g.argocd, None);
        let defaults: Vec<(&str, &str)> = clinic
            .defaults
            .iter()
            .map(|d| &**d)
            .filter(|(k, _)| k.starts_with("gitops."))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            defaults,
            [
                ("gitops.branch-prefix", "\"sites/\""),
                ("gitops.pull-interval", "\"5min\""),
                ("gitops.confirm-timeout", "\"120s\""),
            ]
        );
        let hq = site("hq");
        assert_eq!(hq.site.gitops.pull, None);
        assert_eq!(
            hq.site.gitops.argocd,
            Some(ArgoCd {
                namespace: "argocd".into(),
                project: "default".into(),
                cluster: "https://kubernetes.default.svc".into(),
            })
        );
        let defaults: Vec<&str> = hq
            .defaults
            .iter()
            .map(|d| &**d)
            .filter(|(k, _)| k.starts_with("gitops."))
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(
            defaults,
            [
                "gitops.branch-prefix",
                "gitops.argocd-namespace",
                "gitops.argocd-project",
                "gitops.cluster",
            ]
        );
    }
}

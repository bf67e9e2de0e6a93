//! The registry of diagnostic codes: every code dify-cfg reports, in one
//! place, each with a line saying what it means. A code is part of the
//! command-line contract (scripts match on it), so codes are added, never
//! renamed. The bad-input corpus (`tests/bad/<code>/`) has a case for each.

use serde::Serialize;

macro_rules! codes {
    ($($(#[doc = $doc:literal])+ $variant:ident = $code:literal,)+) => {
        /// A diagnostic's stable kebab-case code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl Code {
            /// Every code, in the order of the registry.
            pub const ALL: &[Code] = &[$(Code::$variant,)+];

            /// The code as users see it: `error[<code>]`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $code,)+
                }
            }

            /// What the code means, in one line.
            pub fn doc(self) -> &'static str {
                match self {
                    $(Code::$variant => concat!($($doc),+).trim_ascii(),)+
                }
            }
        }
    };
}

codes! {
    /// A site's address is not a host address inside the site's LAN.
    AddressOutsideLan = "address-outside-lan",
    /// A Dify release runs the agent's sandbox behind its own SSRF proxy, which dify-cfg does not generate.
    AgentSsrfProxy = "agent-ssrf-proxy",
    /// The api's base image is Alpine (musl), but Dify's compiled Python wheels are built for glibc.
    AlpinePython = "alpine-python",
    /// The config root cannot be read, or is not a config root.
    BadRoot = "bad-root",
    /// The database connections the services' pools may open do not fit PostgreSQL's `max-connections` less a reserve.
    ConnectionBudget = "connection-budget",
    /// PostgreSQL's tuned memory does not fit the db service's limit.
    DbTuning = "db-tuning",
    /// Two sites have the same `network.hostname`: their nginx `server_name` and Dify URLs would collide.
    DuplicateHostname = "duplicate-hostname",
    /// Two profile files define the same profile.
    DuplicateProfile = "duplicate-profile",
    /// Two site files define the same site.
    DuplicateSite = "duplicate-site",
    /// An input file is not valid UTF-8.
    Encoding = "encoding",
    /// `[env]` sets a variable that dify-cfg sets from another key.
    EnvConflict = "env-conflict",
    /// A profile's `extends` chain comes back to itself.
    ExtendsCycle = "extends-cycle",
    /// A profile's `extends` chain is deeper than allowed.
    ExtendsDepth = "extends-depth",
    /// A key that only helm sites use is set on a compose site.
    HelmOnly = "helm-only",
    /// A pinned plugin daemon, sandbox or agent image is not one the site's Dify release runs with.
    ImageIncompatible = "image-incompatible",
    /// Two keys contradict each other (one enables what the other turns off).
    Inconsistent = "inconsistent",
    /// A value is not an IP address of the expected family.
    InvalidAddress = "invalid-address",
    /// A value is not a CIDR network.
    InvalidCidr = "invalid-cidr",
    /// An image reference (repository, tag or digest) is malformed.
    InvalidImage = "invalid-image",
    /// A profile, site, service or other name breaks the naming rules.
    InvalidName = "invalid-name",
    /// A value is not a TCP port.
    InvalidPort = "invalid-port",
    /// Text holds a control or bidirectional-override character.
    InvalidText = "invalid-text",
    /// A size, share, CPU count or time span is malformed or out of bounds.
    InvalidUnit = "invalid-unit",
    /// A value is not one of the values the key accepts.
    InvalidValue = "invalid-value",
    /// An input file or folder cannot be read.
    Io = "io",
    /// A secret's value is written in a file instead of referenced.
    LiteralSecret = "literal-secret",
    /// The services' memory limits do not fit the device's budget.
    MemoryBudget = "memory-budget",
    /// A memory limit is below what the service was measured to need on the site's Dify release.
    MemoryFloor = "memory-floor",
    /// A memory limit is less than `device.headroom` above the service's measured floor.
    MemoryHeadroom = "memory-headroom",
    /// A key stands in a file where it does not belong (e.g. `profile` in a profile).
    MisplacedKey = "misplaced-key",
    /// A setting needs egress the site's firewall does not allow (the marketplace with no internet egress).
    MissingEgress = "missing-egress",
    /// A required key is missing.
    MissingKey = "missing-key",
    /// A secret the site's services need has no reference.
    MissingSecret = "missing-secret",
    /// The config root has no sites.
    NoSites = "no-sites",
    /// A key does not apply to the service or target it is set on.
    NotApplicable = "not-applicable",
    /// A number is outside the range its key accepts.
    OutOfRange = "out-of-range",
    /// An input is a link that leads outside the config root.
    OutsideRoot = "outside-root",
    /// Two sites' LANs overlap.
    OverlappingLan = "overlapping-lan",
    /// The rendered compose ports, firewall openings and nginx listeners disagree.
    PortMismatch = "port-mismatch",
    /// The rendered SSRF proxy config disagrees with compose.yaml, dify.env or the firewall.
    ProxyMismatch = "proxy-mismatch",
    /// Redis's eviction policy may drop Celery's queued tasks.
    RedisEviction = "redis-eviction",
    /// Redis's memory limit leaves no room above `maxmemory`.
    RedisOverhead = "redis-overhead",
    /// A site would go back to an older Dify release than its branch records, without `allow-downgrade`.
    ReleaseDowngrade = "release-downgrade",
    /// A service's memory request is above its limit.
    RequestAboveLimit = "request-above-limit",
    /// A service Dify cannot run without is disabled.
    RequiredService = "required-service",
    /// A secret reference is malformed, or reads a file where its service reads only its environment.
    SecretRef = "secret-ref",
    /// No admin network could reach SSH on the box once the firewall loads.
    SshLockout = "ssh-lockout",
    /// A template ran past its budget for one file: too many steps (loops inside loops), or too much output.
    TemplateBudget = "template-budget",
    /// A template failed while rendering a site.
    TemplateError = "template-error",
    /// A template an output needs does not exist.
    TemplateMissing = "template-missing",
    /// A template does not parse.
    TemplateSyntax = "template-syntax",
    /// The rendered TLS setup disagrees: nginx's certificate or key is not mounted from the site's files, https is not served with `ssl` where compose publishes it, or plain http is published where the site refuses it.
    TlsMismatch = "tls-mismatch",
    /// A file is not valid TOML.
    TomlSyntax = "toml-syntax",
    /// An input file is larger than inputs may be.
    TooLarge = "too-large",
    /// `[env]` names a setting Dify does not know.
    UnknownEnv = "unknown-env",
    /// A key the input language does not have (with a "did you mean").
    UnknownKey = "unknown-key",
    /// A site or profile names a profile that does not exist.
    UnknownProfile = "unknown-profile",
    /// A route prefix Dify does not serve.
    UnknownRoute = "unknown-route",
    /// An image uses the tag `latest` instead of a pinned release.
    UnpinnedImage = "unpinned-image",
    /// A value printed as is into an output fails the renderer's own check.
    UnsafeValue = "unsafe-value",
    /// A feature the site's target does not support (e.g. an external vector store on a compose site).
    Unsupported = "unsupported",
    /// A Dify release dify-cfg has no facts about.
    UnsupportedRelease = "unsupported-release",
    /// A value has the wrong TOML type.
    WrongType = "wrong-type",
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn codes_are_unique_kebab_case_and_documented() {
        let mut seen = BTreeSet::new();
        for code in Code::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "`{s}` is registered twice");
            assert!(
                !s.is_empty()
                    && !s.starts_with('-')
                    && !s.ends_with('-')
                    && !s.contains("--")
                    && s.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
                "`{s}` is not kebab-case"
            );
            let doc = code.doc();
            assert!(
                doc.ends_with('.') && !doc.contains('\n'),
                "`{s}` needs a one-line doc: {doc:?}"
            );
        }
        assert!(seen.iter().is_sorted(), "keep the registry sorted by code");
    }
}

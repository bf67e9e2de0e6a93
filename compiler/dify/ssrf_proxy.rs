//! Facts about Dify's SSRF proxy: where the squid image reads its
//! configuration and writes its logs.

/// Where the `ubuntu/squid` image reads its configuration (its default
/// command runs `squid -f` on this path).
pub const SQUID_CONFIG_PATH: &str = "/etc/squid/squid.conf";

/// The log files the image's entrypoint follows (`tail -F`) onto the
/// container's output, where `docker logs` shows them. Squid cannot write
/// the container's output itself: it opens its logs after dropping root.
pub const SQUID_ACCESS_LOG: &str = "/var/log/squid/access.log";
pub const SQUID_CACHE_LOG: &str = "/var/log/squid/cache.log";

//! Facts about Dify's SSRF proxies: where the squid image reads its
//! configuration and writes its logs, and which releases put the agent's
//! sandboxes behind a proxy of their own.

/// Where the `ubuntu/squid` image reads its configuration (its default
/// command runs `squid -f` on this path).
pub const SQUID_CONFIG_PATH: &str = "/etc/squid/squid.conf";

/// The log files the image's entrypoint follows (`tail -F`) onto the
/// container's output, where `docker logs` shows them. Squid cannot write
/// the container's output itself: it opens its logs after dropping root.
pub const SQUID_ACCESS_LOG: &str = "/var/log/squid/access.log";
pub const SQUID_CACHE_LOG: &str = "/var/log/squid/cache.log";

/// Releases whose compose deployment runs `agent_ssrf_proxy`: a second
/// squid between the agent's local sandbox and everything else, on an
/// internal network of its own (`local_sandbox_proxy_network`).
const AGENT_SSRF_PROXY_RELEASES: &[&str] = &["1.16.1"];

/// Whether `version`'s agent sandboxes reach the network only through
/// `agent_ssrf_proxy`.
pub fn has_agent_ssrf_proxy(version: &str) -> bool {
    AGENT_SSRF_PROXY_RELEASES.contains(&version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_releases_that_ship_it_have_the_agent_proxy() {
        assert!(!has_agent_ssrf_proxy("1.16.0"));
        assert!(has_agent_ssrf_proxy("1.16.1"));
        for r in AGENT_SSRF_PROXY_RELEASES {
            assert!(super::super::SUPPORTED_RELEASES.contains(r), "{r}");
        }
    }
}

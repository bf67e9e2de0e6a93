//! Facts TLS at a compose site's nginx builds on: where dify-cfg mounts the
//! certificate and key inside the nginx image, and which of Dify's URL
//! settings decide whether the api marks its cookies `Secure`.

/// Where the nginx image reads the site's routes (its main config includes
/// `conf.d/*.conf` in its `http` block).
pub const NGINX_CONF_PATH: &str = "/etc/nginx/conf.d/default.conf";

/// Where the certificate chain and the private key from the box are
/// mounted, read-only, inside the nginx container. Fixed paths: the box's
/// own paths never reach nginx's config.
pub const NGINX_CERTIFICATE_PATH: &str = "/etc/nginx/tls/site.crt";
pub const NGINX_KEY_PATH: &str = "/etc/nginx/tls/site.key";

/// The api marks its session cookies `Secure` (and names them `__Host-…`
/// without a cookie domain) only when all of these URLs start with
/// `https` (`libs/token.py`, `is_secure`, in every supported release):
/// a TLS site must set each of them to its https URL.
pub const SECURE_COOKIE_URLS: &[&str] = &["CONSOLE_WEB_URL", "CONSOLE_API_URL"];

/// The first nginx that reads `http2 on;` (1.25.1); before it, HTTP/2 is a
/// parameter of `listen` (`listen 443 ssl http2;`), which later releases
/// warn about.
pub const NGINX_HTTP2_DIRECTIVE_SINCE: [u32; 3] = [1, 25, 1];

/// Whether the nginx of image tag `tag` reads `http2 on;`. The tag's
/// leading version decides (`1.27-alpine`, `1.22.1-bookworm`; a tag
/// naming no patch, like `1.25`, moves to that line's newest); a tag
/// without one (`mainline`, `stable-alpine`) is a current nginx.
pub fn nginx_reads_http2_directive(tag: &str) -> bool {
    let version: Vec<u32> = tag
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .next()
        .unwrap_or_default()
        .split('.')
        .map_while(|p| p.parse().ok())
        .take(3)
        .collect();
    if version.is_empty() {
        return true;
    }
    let since = NGINX_HTTP2_DIRECTIVE_SINCE;
    for (i, (&have, &need)) in version.iter().zip(since.iter()).enumerate() {
        if have != need {
            return have > need;
        }
        if i + 1 == version.len() {
            // `1.25` moves to 1.25's newest patch.
            return true;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_http2_directive_follows_the_nginx_version_of_the_tag() {
        for tag in [
            "1.27-alpine",
            "1.25.1",
            "1.25",
            "1",
            "1.26.3-bookworm",
            "2.0",
            "mainline",
            "stable-alpine",
        ] {
            assert!(nginx_reads_http2_directive(tag), "{tag}");
        }
        for tag in ["1.22.1-bookworm", "1.22", "1.25.0", "1.24-alpine", "0.9"] {
            assert!(!nginx_reads_http2_directive(tag), "{tag}");
        }
        // Every release's pinned nginx reads it.
        for release in super::super::SUPPORTED_RELEASES {
            let tag = super::super::release_images(release).nginx.tag;
            assert!(nginx_reads_http2_directive(&tag), "{release}: {tag}");
        }
    }
}

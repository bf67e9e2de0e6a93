//! Name predicates: what a well-formed image reference, host name, label,
//! environment variable name, Kubernetes name, repository URL, branch prefix
//! or cluster URL looks like. Pure functions on strings, below every stage:
//! `validate` judges the input with them and `render` checks its output again.

/// A bidirectional-override or mark character, which can make text read
/// otherwise than it is.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// An image repository (or registry path): lower-case `/`-separated parts
/// of letters, digits, `.`, `_`, `-` and `:` (a registry port).
pub fn is_image_repository(s: &str) -> bool {
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

/// An image tag: 1 to 128 of `A-Z a-z 0-9 _ . -`, not starting with `.` or `-`.
pub fn is_image_tag(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && !s.starts_with(['.', '-'])
}

/// An image digest: `sha256:` and 64 lower-case hex digits.
pub fn is_digest(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// A lower-case DNS name.
pub fn is_hostname(s: &str) -> bool {
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

/// An environment variable name: upper-case letters, digits and `_`, not
/// starting with a digit.
pub fn is_env_var_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

/// A label name: lower-case letters, digits, `-`, `.` and `_`, at most 63,
/// starting with a letter or digit.
pub fn is_label_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.' | b'_')
        })
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
}

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

/// `c` as a message names it.
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
pub fn is_dns_label(s: &str) -> bool {
    is_hostname(s) && s.len() <= 63 && !s.contains('.')
}

/// Site names: lower-case letters, digits and dashes, starting with a
/// letter or digit, at most 63 characters (a DNS label, a git ref part).
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Why `path` is not a path on the box dify-cfg mounts into a container
/// (a TLS certificate or key); `None` when it is. Accepted: an absolute
/// path of `[A-Za-z0-9._+@-]` names, without `.` or `..` parts, empty parts
/// or a trailing `/`. Such a path is inert in compose's YAML, cannot be
/// read by compose as a variable (`$`), a volume's field separator (`:`)
/// or an option, and needs no quoting in a shell or an nginx config.
pub fn box_path_problem(path: &str) -> Option<String> {
    if path.is_empty() {
        return Some("it is empty".to_string());
    }
    if let Some(c) = path
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "/._+@-".contains(*c)))
    {
        return Some(format!(
            "{} is not allowed in it (letters, digits, `/`, `.`, `_`, `+`, `@` and `-` are)",
            char_name(c)
        ));
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Some("it is not absolute (it must start with `/`)".to_string());
    };
    if path.len() > 1024 {
        return Some("it is longer than 1024 bytes".to_string());
    }
    if rest.is_empty() || rest.ends_with('/') {
        return Some("it names a directory, not a file".to_string());
    }
    for part in rest.split('/') {
        match part {
            "" => return Some("it has an empty part (`//`)".to_string()),
            "." | ".." => return Some(format!("it has a `{part}` part")),
            p if p.starts_with('-') => {
                return Some(format!("its part `{p}` starts with `-`"));
            }
            _ => {}
        }
    }
    None
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
    fn site_names_are_checked() {
        assert!(is_valid_name("clinic-01"));
        for bad in [
            "",
            "Clinic",
            "a..b",
            "a/b",
            "-a",
            "a-",
            "ä",
            &"x".repeat(64),
        ] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn box_paths_are_absolute_plain_file_paths() {
        for ok in [
            "/etc/dify-cfg/tls/clinic-01.crt",
            "/etc/dify-cfg/tls/clinic-01.key",
            "/srv/tls/fullchain+intermediate@2026.pem",
            "/a",
        ] {
            assert_eq!(box_path_problem(ok), None, "{ok}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("etc/dify-cfg/tls/a.crt", "not absolute"),
            ("./a.crt", "not absolute"),
            ("/etc/../root/a.key", "`..` part"),
            ("/etc/./a.key", "`.` part"),
            ("/etc//a.key", "empty part"),
            ("/etc/tls/", "directory"),
            ("/", "directory"),
            ("/etc/tls/a b.crt", "whitespace"),
            ("/etc/tls/a\\b.crt", "`\\`"),
            ("/etc/tls/a\tb.crt", "whitespace"),
            ("/etc/tls/a:b.crt", "`:`"),
            ("/etc/tls/${HOME}.crt", "`$`"),
            ("/etc/tls/\"a\".crt", "`\"`"),
            ("/etc/tls/'a'.crt", "`'`"),
            ("/etc/tls/a;b.crt", "`;`"),
            ("/etc/tls/a#b.crt", "`#`"),
            ("/etc/tls/a\nb.crt", "U+000A"),
            ("/etc/tls/-a.crt", "starts with `-`"),
            ("/etc/tls/zürich.crt", "`ü`"),
        ] {
            let got = box_path_problem(bad).unwrap_or_default();
            assert!(got.contains(why), "{bad:?}: {got}");
        }
        assert!(box_path_problem(&format!("/{}", "a".repeat(1100))).is_some());
    }
}

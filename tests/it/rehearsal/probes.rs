//! The probe matrix: what each host around the box can reach, what the
//! containers can reach, and what the services run with. Each probe says
//! what the site's configuration means it to find (from the site's own
//! settings: LAN, admin networks, ssh-from, public routes, egress) and what
//! the real network and programs answered.

use std::net::IpAddr;

use ipnet::IpNet;

use super::netns::{Engine, Host, in_host};

/// One line of the matrix.
#[derive(Debug, Clone)]
pub struct Row {
    pub from: String,
    pub probe: String,
    pub expected: String,
    pub observed: String,
}

impl Row {
    pub fn ok(&self) -> bool {
        self.expected == self.observed
    }
}

/// What a TCP connection attempt found.
fn tcp_outcome(code: Option<i32>, stderr: &str) -> String {
    match code {
        Some(0) => "open".into(),
        Some(124) => "dropped".into(),
        _ if stderr.contains("refused") => "refused".into(),
        _ if stderr.contains("No route") || stderr.contains("unreachable") => "unreachable".into(),
        _ => format!("error: {}", stderr.trim()),
    }
}

/// Connect to `addr:port` from `host`, without sending anything.
pub fn tcp(host: Host, addr: &str, port: u16) -> String {
    let script = format!("exec 3<>/dev/tcp/{addr}/{port}");
    let out = in_host(host, &["timeout", "3", "bash", "-c", &script]);
    tcp_outcome(out.status.code(), &String::from_utf8_lossy(&out.stderr))
}

/// The same from inside a container.
pub fn tcp_from_container(engine: &Engine, container: &str, addr: &str, port: u16) -> String {
    let script = format!("exec 3<>/dev/tcp/{addr}/{port}");
    let out = engine.docker(&["exec", container, "timeout", "3", "bash", "-c", &script]);
    tcp_outcome(out.status.code(), &String::from_utf8_lossy(&out.stderr))
}

/// Which service wrote an answer: the stand-ins name themselves; Dify's
/// api is known by its own answers (its /health, and Flask's not-found page
/// for a path it does not serve: nginx's own pages look different).
fn who_answered(body: &str) -> Option<String> {
    let json = serde_json::from_str::<serde_json::Value>(body.trim()).ok();
    if let Some(service) = json.as_ref().and_then(|v| v["service"].as_str()) {
        return Some(service.to_string());
    }
    let dify_health = json
        .as_ref()
        .is_some_and(|v| v["status"] == "ok" && v["version"].is_string() && v["pid"].is_u64());
    let flask_not_found = body.contains("<title>404 Not Found</title>")
        && body.contains("The requested URL was not found on the server.");
    (dify_health || flask_not_found).then(|| "api".to_string())
}

/// curl's answer in the matrix's words: the status and which service
/// answered, or what stopped it.
pub fn curl_outcome(code: Option<i32>, stdout: &str) -> String {
    match code {
        Some(0) => {
            let (body, status) = stdout.rsplit_once('\n').unwrap_or(("", stdout));
            match who_answered(body) {
                Some(s) => format!("{status} {s}"),
                None => status.trim().to_string(),
            }
        }
        Some(7) => "refused".into(),
        Some(28) => "dropped".into(),
        Some(35) => "TLS handshake refused".into(),
        Some(52) => "closed without answer".into(),
        Some(c) => format!("curl exit {c}"),
        None => "killed".into(),
    }
}

/// How a client reaches the site: the base URL, and curl's arguments for
/// it (the site's name as the Host header for plain http; for https the
/// name resolved to the box's address and the rehearsal's CA).
#[derive(Debug, Clone)]
pub struct Via {
    pub base: String,
    pub args: Vec<String>,
}

impl Via {
    pub fn http(addr: &str, port: u16, hostname: &str) -> Via {
        Via {
            base: format!("http://{addr}:{port}"),
            args: vec!["-H".into(), format!("Host: {hostname}")],
        }
    }

    pub fn https(addr: &str, port: u16, hostname: &str, ca: &std::path::Path) -> Via {
        Via {
            base: format!("https://{hostname}:{port}"),
            args: vec![
                "--resolve".into(),
                format!("{hostname}:{port}:{addr}"),
                "--cacert".into(),
                ca.display().to_string(),
            ],
        }
    }
}

/// A request from a host: `path` under `via`'s base.
pub fn http(host: Host, via: &Via, path: &str, extra: &[&str]) -> String {
    let url = format!("{}{path}", via.base);
    let mut args = vec!["curl", "-s", "-m", "5", "-o", "-", "-w", "\n%{http_code}"];
    args.extend(via.args.iter().map(String::as_str));
    args.extend_from_slice(extra);
    args.push(&url);
    let out = in_host(host, &args);
    curl_outcome(out.status.code(), &String::from_utf8_lossy(&out.stdout))
}

/// Who answers a route through nginx: the same split as Dify's own nginx
/// template (written out here, not read from the compiler).
pub fn route_owner(prefix: &str) -> &'static str {
    match prefix {
        "/e/" => "plugin_daemon",
        "/" | "/explore" | "/socket.io/" => "web",
        _ => "api",
    }
}

pub fn contains(nets: &[IpNet], addr: &str) -> bool {
    let a: IpAddr = addr.parse().unwrap();
    nets.iter().any(|n| n.contains(&a))
}

/// A file uploaded to /v1/files/upload with the app's API key (from the
/// smoke workload): Dify stores it and says its size.
pub fn upload(host: Host, via: &Via, file: &std::path::Path, key: &str) -> String {
    let form = format!("file=@{};type=text/plain", file.display());
    let url = format!("{}/v1/files/upload", via.base);
    let auth = format!("Authorization: Bearer {key}");
    let mut args = vec![
        "curl",
        "-s",
        "-m",
        "120",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
        "-H",
        &auth,
        "-F",
        &form,
        "-F",
        "user=rehearsal",
    ];
    args.extend(via.args.iter().map(String::as_str));
    args.push(&url);
    let out = in_host(host, &args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (body, status) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    let size = serde_json::from_str::<serde_json::Value>(body.trim())
        .ok()
        .and_then(|v| v["size"].as_u64());
    match (out.status.code(), size) {
        (Some(0), Some(n)) => format!("{status} api, {n} bytes stored"),
        (Some(0), None) => format!("{status} {}", body.trim()),
        (code, _) => curl_outcome(code, &stdout),
    }
}

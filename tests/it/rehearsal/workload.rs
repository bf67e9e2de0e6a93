//! The smoke workload (tests/rehearsal/workload.py) against Dify's own api
//! through the site's nginx and firewall: the console part (setup, login,
//! the model provider, an app and its API key, a knowledge base whose
//! document the worker indexes into pgvector) from the admin network, the
//! public API (a completion, blocking and streamed) from the LAN; after an
//! upgrade, the same data read back and served again. Every
//! step is a row of the report; its answer is asserted by the script and
//! again here (the step must say ok).

use std::path::Path;

use super::matrix::Expect;
use super::netns::{Host, in_host};
use super::probes::Row;

/// One part of the workload from `host`: the script's steps as rows.
fn part(host: Host, sub: &str, x: &Expect, state: &Path) -> Vec<Row> {
    let script = crate::support::repo().join("tests/rehearsal/workload.py");
    // Over https where the site has TLS, trusting the rehearsal's CA (in
    // the folder of the state file).
    let ca = state.with_file_name("ca.crt");
    let (base, cacert) = match &x.tls {
        Some((port, _)) => (
            format!("https://{}:{port}", x.address),
            vec!["--cacert", ca.to_str().unwrap()],
        ),
        None => (format!("http://{}:{}", x.address, x.http_port), vec![]),
    };
    let mut args = vec![
        "python3",
        script.to_str().unwrap(),
        sub,
        "--base",
        &base,
        "--host",
        &x.hostname,
        "--state",
        state.to_str().unwrap(),
    ];
    args.extend(cacert);
    let out = in_host(host, &args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut rows: Vec<Row> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| {
            let ok = v["ok"].as_bool() == Some(true);
            let status = v["status"]
                .as_u64()
                .map(|s| format!("{s} "))
                .unwrap_or_default();
            let detail = v["detail"].to_string();
            // What the step found, shortened, for the reader of the report.
            let found: String = detail.chars().take(160).collect();
            Row {
                from: host.label(),
                probe: format!("{sub}: {} ({found})", v["step"].as_str().unwrap_or("?")),
                expected: "ok".into(),
                observed: if ok {
                    "ok".into()
                } else {
                    format!("{status}{detail}")
                },
            }
        })
        .collect();
    if !out.status.success() || rows.is_empty() {
        rows.push(Row {
            from: host.label(),
            probe: format!("{sub}: the script"),
            expected: "exit 0".into(),
            observed: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    rows
}

/// The API key of the workload's app (empty when the workload did not get
/// that far: what needs it then fails and says so).
pub fn app_key(work: &Path) -> String {
    std::fs::read_to_string(work.join("workload.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["app_key"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The whole workload: the console from the admin network, then the
/// public API from the LAN (or from the admin network when the site does
/// not open /v1 to its LAN).
pub fn run(x: &Expect, work: &Path) -> Vec<Row> {
    let state = work.join("workload.json");
    let _ = std::fs::remove_file(&state);
    console_then_public(x, &state, "console")
}

/// What the workload wrote, read back (after an upgrade): the console's
/// app, file, document and hit test, then the public API's completions.
pub fn kept(x: &Expect, work: &Path) -> Vec<Row> {
    console_then_public(x, &work.join("workload.json"), "kept")
}

fn console_then_public(x: &Expect, state: &Path, console: &str) -> Vec<Row> {
    let mut rows = part(Host::Admin, console, x, state);
    if rows.iter().all(Row::ok) {
        let public = if x.public_routes.iter().any(|r| r == "/v1") {
            Host::Lan
        } else {
            Host::Admin
        };
        rows.extend(part(public, "completion", x, state));
    }
    rows
}

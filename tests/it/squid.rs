//! The SSRF proxy's generated squid configs against the real squid: every
//! one parses without a warning (`squid -k parse`), and squid started with
//! one, inside a network namespace this test creates (`unshare -n`: only
//! loopback, never the machine's own network), refuses private, link-local,
//! loopback and LAN destinations with 403 ERR_ACCESS_DENIED before any
//! connection attempt, and lets through what an egress rule names.
//!
//! To run unprivileged in a temporary directory, the config is changed in
//! three lines only: the access and cache logs go to files in that
//! directory (the image's paths are under /var/log/squid) and a
//! `pid_filename` there is added. The allowed destination is a small HTTP
//! server on 198.51.100.1 ports 80 and 443 (TEST-NET-2), an address added to the
//! namespace's loopback device, named by an egress rule of a variant of
//! clinic-01; it never leaves the namespace.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::support;

/// The example fleet, built once; and clinic-01 with an egress rule to the
/// test server.
fn built() -> &'static (PathBuf, PathBuf) {
    static OUT: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    OUT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let out = support::example_out().to_path_buf();

        let root = dir.join("variant");
        support::copy_fleet(&root);
        let site = root.join("sites/clinic-01.toml");
        let mut text = std::fs::read_to_string(&site).unwrap();
        text.push_str(&format!(
            "\n[[network.egress]]\nname = \"test-server\"\ncidr = \"{TEST_SERVER}/32\"\nports = [80, 443]\n"
        ));
        std::fs::write(&site, text).unwrap();
        let variant = dir.join("variant-out");
        let o = support::dify_cfg(
            &[
                "build",
                "--site",
                "clinic-01",
                "--out",
                variant.to_str().unwrap(),
            ],
            &root,
        );
        support::assert_ok(o, "build the variant");
        (out, variant.join("clinic-01/ssrf_proxy/squid.conf"))
    })
}

const TEST_SERVER: &str = "198.51.100.1";

fn squid_available() -> bool {
    let ok = Command::new("squid")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    support::available("`squid`", ok, "not installed (.ci/run installs it)")
}

#[test]
fn every_generated_squid_config_parses() {
    if !squid_available() {
        return;
    }
    let (out, variant) = built();
    let mut confs: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .flatten()
        .map(|e| e.path().join("ssrf_proxy/squid.conf"))
        .filter(|p| p.exists())
        .collect();
    confs.sort();
    assert_eq!(confs.len(), 10, "the ten clinics run the SSRF proxy");
    confs.push(variant.clone());
    for conf in &confs {
        let o = Command::new("squid")
            .args(["-k", "parse", "-f"])
            .arg(conf)
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&o.stderr);
        let complaints: Vec<&str> = log
            .lines()
            .filter(|l| {
                ["WARNING", "ERROR", "FATAL", "Bungled"]
                    .iter()
                    .any(|w| l.contains(w))
            })
            .collect();
        assert!(
            o.status.success() && complaints.is_empty(),
            "{}: squid -k parse: {:?}\n{complaints:#?}",
            conf.display(),
            o.status
        );
    }
    eprintln!("squid -k parse: {} configs clean", confs.len());
}

/// The probes, run inside the namespace: address setup, the test server,
/// squid, then one request per destination. Prints `label status error`.
const PROBE: &str = r#"
import http.server, socket, subprocess, sys, threading, time
conf, tmp, server = sys.argv[1], sys.argv[2], sys.argv[3]
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
subprocess.run(["ip", "addr", "add", server + "/32", "dev", "lo"], check=True)

class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"hello from the egress\n")
    def log_message(self, *a):
        pass

for port in (80, 443):
    httpd = http.server.HTTPServer((server, port), Hello)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
squid = subprocess.Popen(["squid", "-N", "-f", conf],
    stdout=open(tmp + "/squid.out", "w"), stderr=subprocess.STDOUT)

def ask(request):
    s = socket.create_connection(("127.0.0.1", 3128), timeout=20)
    s.sendall(request.encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    head = data.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    status = head[0].split()[1] if head and len(head[0].split()) > 1 else "none"
    error = "-"
    for h in head[1:]:
        if h.lower().startswith("x-squid-error:"):
            error = h.split(":", 1)[1].split()[0]
    return status, error

for _ in range(100):
    try:
        socket.create_connection(("127.0.0.1", 3128), timeout=1).close()
        break
    except OSError:
        if squid.poll() is not None:
            sys.exit("squid exited: " + open(tmp + "/squid.out").read())
        time.sleep(0.2)

for line in sys.stdin:
    label, method, target = line.split()
    if method == "CONNECT":
        req = "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)
    else:
        host = target.split("/")[2]
        req = "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (target, host)
    status, error = ask(req)
    print(label, status, error, flush=True)
squid.terminate()
squid.wait()
"#;

/// `(label, method, target, allowed)`: what the test asks the proxy.
const CASES: &[(&str, &str, &str, bool)] = &[
    ("private-10", "GET", "http://10.1.2.3/", false),
    ("private-172-docker", "GET", "http://172.17.0.2/", false),
    ("private-192-168", "GET", "http://192.168.1.1/", false),
    ("cgnat", "GET", "http://100.64.0.1/", false),
    (
        "link-local-metadata",
        "GET",
        "http://169.254.169.254/latest/meta-data/",
        false,
    ),
    ("site-lan-host", "GET", "http://10.20.1.5/", false),
    ("the-box", "GET", "http://10.20.1.10/", false),
    ("admin-network", "GET", "http://10.0.0.5/", false),
    ("loopback", "GET", "http://127.0.0.1/", false),
    ("ipv6-loopback", "GET", "http://[::1]/", false),
    (
        "ipv4-mapped-lan",
        "GET",
        "http://[::ffff:10.20.1.5]/",
        false,
    ),
    ("ipv6-link-local", "GET", "http://[fe80::1]/", false),
    ("ipv6-unique-local", "GET", "http://[fd00::1]/", false),
    ("service-name", "GET", "http://db_postgres/", false),
    ("not-in-egress", "GET", "http://198.51.100.2/", false),
    (
        "egress-other-port",
        "GET",
        "http://198.51.100.1:8080/",
        false,
    ),
    ("connect-to-80", "CONNECT", "198.51.100.1:80", false),
    ("egress-http", "GET", "http://198.51.100.1/", true),
    ("egress-connect-443", "CONNECT", "198.51.100.1:443", true),
];

/// A copy of `conf` that runs unprivileged in `tmp`: logs and pid file
/// there (the only changes).
fn runnable(conf: &Path, tmp: &Path) -> String {
    let text = std::fs::read_to_string(conf).unwrap();
    let mut out = String::new();
    let mut changed = 0;
    for line in text.lines() {
        if line.starts_with("access_log ") {
            let format = line.rsplit(' ').next().unwrap();
            out.push_str(&format!(
                "access_log stdio:{}/access.log {format}\n",
                tmp.display()
            ));
            changed += 1;
        } else if line.starts_with("cache_log ") {
            out.push_str(&format!("cache_log {}/cache.log\n", tmp.display()));
            changed += 1;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert_eq!(changed, 2, "the config names both logs");
    out.push_str(&format!("pid_filename {}/squid.pid\n", tmp.display()));
    out
}

#[test]
fn squid_refuses_private_destinations_and_serves_the_egress_rules() {
    if !squid_available() {
        return;
    }
    let ns = Command::new("unshare")
        .args(["-n", "ip", "link", "set", "lo", "up"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !support::available(
        "a network namespace (`unshare -n` as root, with `ip`)",
        ns,
        "the behavioural check starts squid in a namespace of its own",
    ) {
        return;
    }
    let python = Command::new("python3")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !support::available("`python3`", python, "it serves and sends the test requests") {
        return;
    }
    let (_, variant) = built();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // squid drops root for its logs.
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let conf = dir.join("squid.conf");
    std::fs::write(&conf, runnable(variant, dir)).unwrap();
    let script = dir.join("probe.py");
    std::fs::write(&script, PROBE).unwrap();
    let input: String = CASES
        .iter()
        .map(|(l, m, t, _)| format!("{l} {m} {t}\n"))
        .collect();
    let mut child = Command::new("unshare")
        .arg("-n")
        .arg("python3")
        .arg(&script)
        .arg(&conf)
        .arg(dir)
        .arg(TEST_SERVER)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let access = std::fs::read_to_string(dir.join("access.log")).unwrap_or_default();
    assert!(
        o.status.success(),
        "the probe failed: {}\n{stdout}\n{access}",
        String::from_utf8_lossy(&o.stderr)
    );
    let answers: Vec<(&str, &str, &str)> = stdout
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() == 3).then(|| (w[0], w[1], w[2]))
        })
        .collect();
    assert_eq!(answers.len(), CASES.len(), "{stdout}");
    let log: Vec<&str> = access.lines().collect();
    for ((label, method, target, allowed), (got, status, error)) in CASES.iter().zip(&answers) {
        assert_eq!(label, got);
        eprintln!("{label:<22} {method:<7} {target:<42} {status} {error}");
        if *allowed {
            assert_eq!(*status, "200", "{label}: {status} {error}\n{access}");
        } else {
            assert_eq!(
                (*status, *error),
                ("403", "ERR_ACCESS_DENIED"),
                "{label}: {target} was not refused\n{access}"
            );
        }
    }
    // A refusal contacted nothing: TCP_DENIED with no next hop
    // (HIER_NONE); the allowed request went to the test server.
    let denied = log
        .iter()
        .filter(|l| l.contains("TCP_DENIED/403"))
        .inspect(|l| assert!(l.contains("HIER_NONE/-"), "{l}"))
        .count();
    assert_eq!(denied, CASES.iter().filter(|c| !c.3).count(), "{access}");
    assert!(
        log.iter()
            .any(|l| l.contains("http://198.51.100.1/") && l.contains("HIER_DIRECT/198.51.100.1")),
        "{access}"
    );
}

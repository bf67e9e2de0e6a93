//! TLS at a compose site's nginx, on the example fleet's clinic-01 with a
//! `[network.tls]` block added to its site file (the way an operator turns
//! TLS on): golden snapshots of what changes, in each plain-http mode, and
//! the rendered nginx config run by the real nginx.
//!
//! The run: nginx starts with a site's rendered config inside a network
//! namespace this test creates (`unshare -rn`: only loopback, never the
//! machine's network), where the box's address, a LAN client, an admin
//! client and an outsider are addresses on the loopback device; curl and
//! `openssl s_client` then probe it from each. To run unprivileged, the
//! config is changed in two ways only: the certificate and key are a
//! throwaway self-signed pair made by openssl in the test's directory (in
//! place of the container's mount paths), and the upstreams are a closed
//! loopback port (in place of Docker's service names), so a request nginx
//! lets through is answered 502 at once and a refused one 403. The site is
//! rendered for the nginx under test (`[images.nginx] tag` = its version),
//! so that HTTP/2 is switched on the way that nginx reads it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{self, Compiled, compile_mem, fleet_files};

/// The block an operator adds to clinic-01's site file.
pub const TLS_BLOCK: &str = "\n[network.tls]\ncertificate = \"/etc/dify-cfg/tls/clinic-01.crt\"\nkey = \"/etc/dify-cfg/tls/clinic-01.key\"\n";

/// The plain-http modes, `None` the default (redirect).
pub const MODES: [Option<&str>; 4] = [None, Some("refuse"), Some("allow-lan"), Some("allow")];

/// clinic-01's rendered files with TLS on, plain http as `http` says and
/// `extra` appended to its site file.
pub fn tls_clinic(http: Option<&str>, extra: &str) -> BTreeMap<String, Vec<u8>> {
    let mut files: BTreeMap<String, Vec<u8>> = fleet_files()
        .into_iter()
        .filter(|(p, _)| !p.starts_with("sites/") || p == "sites/clinic-01.toml")
        .collect();
    let site = files.get_mut("sites/clinic-01.toml").unwrap();
    site.extend_from_slice(TLS_BLOCK.as_bytes());
    if let Some(h) = http {
        site.extend_from_slice(format!("http = \"{h}\"\n").as_bytes());
    }
    site.extend_from_slice(extra.as_bytes());
    match compile_mem(&files) {
        Compiled::Built(trees) => {
            trees
                .into_iter()
                .find(|t| t.name == "clinic-01")
                .expect("clinic-01 is built")
                .files
        }
        other => panic!("the TLS variant of clinic-01 does not compile: {other:?}"),
    }
}

fn text(files: &BTreeMap<String, Vec<u8>>, path: &str) -> String {
    String::from_utf8(files[path].clone()).expect("UTF-8 output")
}

#[test]
fn tls_sites_match_their_snapshots() {
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.bind(|| {
        for http in MODES {
            let files = tls_clinic(http, "");
            let name = match http {
                None => "clinic-01-tls".to_string(),
                Some(h) => format!("clinic-01-tls-{h}"),
            };
            let mut paths = vec!["nginx/default.conf", "firewall/rules.v4"];
            if http.is_none() {
                paths.extend(["compose.yaml", "dify.env"]);
            }
            for path in paths {
                let snap = format!("{name}__{}", path.replace('/', "__"));
                insta::assert_snapshot!(snap, text(&files, path));
            }
        }
    });
}

#[test]
fn only_what_tls_touches_differs_from_the_plain_site() {
    let plain = tls_clinic_without_tls();
    let tls = tls_clinic(None, "");
    let differs: Vec<&str> = plain
        .keys()
        .filter(|p| plain.get(*p) != tls.get(*p))
        .map(String::as_str)
        .collect();
    assert_eq!(
        differs,
        [
            "compose.yaml",
            "dify.env",
            "firewall/rules.v4",
            "manifest.json",
            "nginx/default.conf"
        ]
    );
    // No http:// URL of the site is left anywhere.
    for (path, bytes) in &tls {
        let t = String::from_utf8_lossy(bytes);
        assert!(
            !t.contains("http://clinic-01.clinics.example.org") && !t.contains("ws://clinic-01"),
            "{path} still names the site over plain http"
        );
    }
    let env = text(&tls, "dify.env");
    assert!(env.contains("CONSOLE_API_URL='https://clinic-01.clinics.example.org'"));
}

fn tls_clinic_without_tls() -> BTreeMap<String, Vec<u8>> {
    let files: BTreeMap<String, Vec<u8>> = fleet_files()
        .into_iter()
        .filter(|(p, _)| !p.starts_with("sites/") || p == "sites/clinic-01.toml")
        .collect();
    match compile_mem(&files) {
        Compiled::Built(trees) => {
            trees
                .into_iter()
                .find(|t| t.name == "clinic-01")
                .unwrap()
                .files
        }
        other => panic!("{other:?}"),
    }
}

/// The version of the nginx on PATH (`1.22.1`), when there is one; in CI
/// its absence fails.
pub fn local_nginx() -> Option<String> {
    let out = Command::new("nginx").arg("-v").output().ok();
    let version = out.and_then(|o| {
        String::from_utf8_lossy(&o.stderr)
            .split("nginx/")
            .nth(1)
            .map(|v| v.split_whitespace().next().unwrap_or_default().to_string())
    });
    support::available(
        "`nginx`",
        version.is_some(),
        "not installed (.ci/run installs it)",
    )
    .then(|| version.unwrap())
}

/// A throwaway self-signed certificate and key for clinic-01's host name,
/// made by openssl in `dir`.
pub fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("site.crt"), dir.join("site.key"));
    let o = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=clinic-01.clinics.example.org"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    support::assert_ok(o, "openssl req");
    (cert, key)
}

/// A rendered nginx config with the certificate and key at `cert` and
/// `key` instead of the container's mount paths; with `closed_upstreams`,
/// every upstream a closed loopback port.
pub fn runnable(conf: &str, cert: &Path, key: &Path, closed_upstreams: bool) -> String {
    let conf = conf
        .replace("/etc/nginx/tls/site.crt", cert.to_str().unwrap())
        .replace("/etc/nginx/tls/site.key", key.to_str().unwrap());
    if !closed_upstreams {
        return conf;
    }
    conf.lines()
        .map(|l| match l.trim().strip_prefix("set $dify_") {
            Some(rest) => {
                let var = rest.split_whitespace().next().unwrap();
                format!("    set $dify_{var} http://127.0.0.1:9;\n")
            }
            None => format!("{l}\n"),
        })
        .collect()
}

/// A site file's lines that give nginx the image tag `version` (the
/// nginx under test), which decides how the config switches HTTP/2 on.
pub fn nginx_image(version: &str) -> String {
    format!("\n[images.nginx]\nrepository = \"nginx\"\ntag = \"{version}\"\n")
}

/// The main config of a test nginx in `prefix`, including `site`.
pub fn main_conf(prefix: &Path, site: &Path, foreground: bool) -> PathBuf {
    std::fs::create_dir_all(prefix.join("logs")).unwrap();
    let main = prefix.join("nginx.conf");
    let run = if foreground {
        "master_process off;\ndaemon off;\n"
    } else {
        ""
    };
    std::fs::write(
        &main,
        format!(
            "pid {p}/nginx.pid;\nerror_log {p}/logs/error.log;\n{run}events {{}}\nhttp {{\n  access_log off;\n  include {c};\n}}\n",
            p = prefix.display(),
            c = site.display()
        ),
    )
    .unwrap();
    main
}

/// The TLS 1.2 ciphers nginx is given (`ssl_ciphers`).
const TLS_CIPHERS: &str = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

const HOST: &str = "clinic-01.clinics.example.org";
const BOX: &str = "10.20.1.10";
const LAN: &str = "10.20.1.5";
const ADMIN: &str = "10.0.0.5";
const OUTSIDER: &str = "192.0.2.1";

/// The probes, run in the namespace after nginx answers its health check.
/// Each prints `name: code exit version redirect hsts` (curl) or
/// `name: alert|ok` (openssl).
fn probe_script() -> String {
    format!(
        r#"set -u
ip link set lo up
for a in {BOX} {LAN} {ADMIN} {OUTSIDER}; do ip addr add $a/32 dev lo; done
nginx -p "$PREFIX" -c "$PREFIX/nginx.conf" &
NGINX=$!
i=0
until curl -s -o /dev/null http://127.0.0.1:$HTTP_PORT/nginx-health; do
  i=$((i+1)); [ $i -lt 200 ] || {{ echo "nginx did not start"; cat "$PREFIX/logs/error.log"; kill $NGINX; exit 1; }}
  sleep 0.05
done
c() {{
  name=$1; shift
  out=$(curl -s -o /dev/null -D "$PREFIX/headers" -w '%{{http_code}} %{{http_version}} %{{redirect_url}}' --max-time 10 "$@")
  rc=$?
  if grep -qi '^strict-transport-security: max-age=31536000' "$PREFIX/headers" 2>/dev/null; then h=hsts; else h=-; fi
  rm -f "$PREFIX/headers"
  set -- $out
  echo "$name: ${{1:-000}} $rc ${{2:-0}} ${{3:--}} $h"
}}
s() {{
  name=$1; shift
  if echo | openssl s_client -connect {BOX}:443 -servername {HOST} "$@" >"$PREFIX/s_client" 2>&1 \
     && grep -q 'Cipher is ECDHE\|Cipher is TLS_' "$PREFIX/s_client"; then
    # TLS 1.2's tickets would be sealed with a key nginx keeps for as long
    # as it runs; TLS 1.3's are session-cache ids.
    case "$*" in
      *-tls1_2*) if grep -q 'TLS session ticket:' "$PREFIX/s_client"; then echo "$name: ok ticket"; else echo "$name: ok"; fi ;;
      *) echo "$name: ok" ;;
    esac
  elif grep -q 'alert protocol version\|alert handshake failure' "$PREFIX/s_client"; then
    echo "$name: alert"
  else
    echo "$name: other"; cat "$PREFIX/s_client"
  fi
}}
R="--resolve {HOST}:443:{BOX} --resolve {HOST}:80:{BOX} -k"
c https-lan-v1 $R --interface {LAN} https://{HOST}/v1/chat-messages
c https-lan-console $R --interface {LAN} https://{HOST}/console/api/apps
c https-admin-console $R --interface {ADMIN} https://{HOST}/console/api/apps
c https-outsider-v1 $R --interface {OUTSIDER} https://{HOST}/v1/chat-messages
c https-other-host -k --http1.1 --interface {LAN} https://{BOX}/v1/chat-messages
c http-health http://127.0.0.1:$HTTP_PORT/nginx-health
c http-lan-v1 $R --interface {LAN} "http://{HOST}/v1/chat-messages?user=a"
c http-admin-console $R --interface {ADMIN} http://{HOST}/console/api/apps
c http-outsider-v1 $R --interface {OUTSIDER} http://{HOST}/v1/chat-messages
s tls1.1 -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0'
s tls1.2-cbc -tls1_2 -cipher 'AES128-SHA:@SECLEVEL=0'
s tls1.2 -tls1_2
s tls1.3 -tls1_3
kill $NGINX
"#
    )
}

/// What each probe must print for a plain-http mode.
fn expected(http: Option<&str>) -> Vec<String> {
    let mode = http.unwrap_or("redirect");
    let strict = matches!(mode, "refuse" | "redirect");
    let hsts = if strict { "hsts" } else { "-" };
    // 502: let through to the (closed) upstream; 403: refused by nginx.
    let https = |code: &str| format!("{code} 0 2 - {hsts}");
    let moved = |path: &str| format!("301 0 1.1 https://{HOST}{path} -");
    let closed = "000 7 0 - -".to_string();
    let (http_lan, http_admin, http_outsider) = match mode {
        "refuse" => (closed.clone(), closed.clone(), closed),
        "redirect" => (
            moved("/v1/chat-messages?user=a"),
            moved("/console/api/apps"),
            moved("/v1/chat-messages"),
        ),
        "allow-lan" => (
            "502 0 1.1 - -".into(),
            moved("/console/api/apps"),
            moved("/v1/chat-messages"),
        ),
        _ => (
            "502 0 1.1 - -".into(),
            "502 0 1.1 - -".into(),
            "403 0 1.1 - -".into(),
        ),
    };
    [
        ("https-lan-v1", https("502")),
        ("https-lan-console", https("403")),
        ("https-admin-console", https("502")),
        ("https-outsider-v1", https("403")),
        // Any other host name: the connection is closed unanswered.
        ("https-other-host", "000 52 0 - -".into()),
        ("http-health", "200 0 1.1 - -".into()),
        ("http-lan-v1", http_lan),
        ("http-admin-console", http_admin),
        ("http-outsider-v1", http_outsider),
        ("tls1.1", "alert".into()),
        ("tls1.2-cbc", "alert".into()),
        ("tls1.2", "ok".into()),
        ("tls1.3", "ok".into()),
    ]
    .into_iter()
    .map(|(name, want)| format!("{name}: {want}"))
    .collect()
}

fn tools_available() -> Option<String> {
    let version = local_nginx()?;
    for (tool, probe) in [
        ("openssl", &["version"][..]),
        ("curl", &["--version"][..]),
        ("unshare", &["-rn", "true"][..]),
        ("ip", &["-V"][..]),
    ] {
        let ok = Command::new(tool)
            .args(probe)
            .output()
            .is_ok_and(|o| o.status.success());
        if !support::available(
            &format!("`{tool}`"),
            ok,
            "not installed or not usable (.ci/run installs it)",
        ) {
            return None;
        }
    }
    Some(version)
}

#[test]
fn nginx_serves_each_plain_http_mode_as_the_site_says() {
    let Some(version) = tools_available() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let mut failures = Vec::new();
    for http in MODES {
        let files = tls_clinic(http, &nginx_image(&version));
        let prefix = tempfile::tempdir().unwrap();
        let site = prefix.path().join("default.conf");
        std::fs::write(
            &site,
            runnable(&text(&files, "nginx/default.conf"), &cert, &key, true),
        )
        .unwrap();
        main_conf(prefix.path(), &site, true);
        let o = Command::new("unshare")
            .args(["-rn", "sh", "-c", &probe_script()])
            .env("PREFIX", prefix.path())
            .env("HTTP_PORT", "80")
            .output()
            .expect("run unshare");
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        let got: Vec<String> = out.lines().map(str::to_string).collect();
        let want = expected(http);
        if got != want {
            failures.push(format!(
                "mode {}:\n  got:  {got:#?}\n  want: {want:#?}\n  stderr: {}",
                http.unwrap_or("redirect (default)"),
                String::from_utf8_lossy(&o.stderr)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The probes must be able to fail: the same config with TLS 1.1 and CBC
/// ciphers allowed, session tickets on, HSTS dropped and a temporary
/// redirect is caught.
#[test]
fn the_probes_catch_a_weakened_config() {
    let Some(version) = tools_available() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let files = tls_clinic(None, &nginx_image(&version));
    let conf = runnable(&text(&files, "nginx/default.conf"), &cert, &key, true)
        .replace(
            "ssl_protocols TLSv1.2 TLSv1.3;",
            "ssl_protocols TLSv1.1 TLSv1.2 TLSv1.3;",
        )
        .replace(
            &format!("ssl_ciphers {};", TLS_CIPHERS),
            "ssl_ciphers DEFAULT:@SECLEVEL=0;",
        )
        .replace("    add_header Strict-Transport-Security", "    #")
        .replace("return 301", "return 302")
        .replace("ssl_session_tickets off;", "ssl_session_tickets on;");
    let prefix = tempfile::tempdir().unwrap();
    let site = prefix.path().join("default.conf");
    std::fs::write(&site, conf).unwrap();
    main_conf(prefix.path(), &site, true);
    let o = Command::new("unshare")
        .args(["-rn", "sh", "-c", &probe_script()])
        .env("PREFIX", prefix.path())
        .env("HTTP_PORT", "80")
        .output()
        .expect("run unshare");
    let got: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let want = expected(None);
    for name in [
        "https-lan-v1",
        "http-lan-v1",
        "tls1.1",
        "tls1.2-cbc",
        "tls1.2",
    ] {
        let g = got.iter().find(|l| l.starts_with(&format!("{name}:")));
        let w = want.iter().find(|l| l.starts_with(&format!("{name}:")));
        assert!(
            g.is_some() && g != w,
            "{name}: the weakened config passed: {g:?}\n{got:#?}"
        );
    }
}

/// A profile can turn TLS on for its sites (each site file giving its own
/// certificate and key), and a site can turn it off again.
#[test]
fn a_profile_turns_tls_on_and_a_site_turns_it_off() {
    let mut files: BTreeMap<String, Vec<u8>> = fleet_files()
        .into_iter()
        .filter(|(p, _)| {
            !p.starts_with("sites/") || p == "sites/clinic-01.toml" || p == "sites/clinic-02.toml"
        })
        .collect();
    files
        .get_mut("profiles/multi-branch.toml")
        .unwrap()
        .extend_from_slice(b"\n[network.tls]\nhttp = \"refuse\"\n");
    files
        .get_mut("sites/clinic-01.toml")
        .unwrap()
        .extend_from_slice(TLS_BLOCK.as_bytes());
    files
        .get_mut("sites/clinic-02.toml")
        .unwrap()
        .extend_from_slice(b"\n[network.tls]\nenabled = false\n");
    let Compiled::Built(trees) = compile_mem(&files) else {
        panic!("the fleet does not compile: {:?}", compile_mem(&files));
    };
    let compose = |site: &str| {
        let tree = trees.iter().find(|t| t.name == site).unwrap();
        text(&tree.files, "compose.yaml")
    };
    let one = compose("clinic-01");
    assert!(one.contains("\"10.20.1.10:443:443\"") && !one.contains("\"10.20.1.10:80:80\""));
    let two = compose("clinic-02");
    assert!(two.contains("\"10.20.2.10:80:80\"") && !two.contains(":443:443"));
    assert!(two.contains("http://clinic-02.clinics.example.org"));
}

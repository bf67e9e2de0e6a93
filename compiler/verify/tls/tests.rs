//! The TLS cross-check over the TLS fixture rendered with the built-in
//! templates, in each plain-http mode, then with one planted mismatch at a
//! time; and the port cross-check on the same files (an https port
//! published but not opened, or opened but not published, still fails).

use super::*;
use crate::model::PlainHttp;
use crate::plan::fixtures::edge_tls;
use crate::plan::{COMPOSE_FILE, RULES_V4_FILE};
use crate::render::render_builtin as rendered;
use crate::verify::planted;

/// The TLS and the port cross-checks' messages, `code: message`.
fn check(site: &Site, files: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    let compose = crate::verify::crosscheck::read_compose(files);
    let mut d = check_site(site, files, &compose, |_| None);
    d.extend(crate::verify::crosscheck::check_site(
        site,
        files,
        &compose,
        |_| None,
    ));
    d.iter()
        .map(|d| format!("{}: {}", d.code, d.message))
        .collect()
}

const MODES: [PlainHttp; 4] = [
    PlainHttp::Refuse,
    PlainHttp::Redirect,
    PlainHttp::AllowLan,
    PlainHttp::Allow,
];

#[test]
fn the_rendered_fixture_agrees_in_every_mode() {
    for mode in MODES {
        let site = edge_tls(mode);
        let files = rendered(&site);
        assert_eq!(check(&site, &files), Vec::<String>::new(), "{mode:?}");
        let conf = String::from_utf8_lossy(&files[NGINX_FILE]).into_owned();
        let tls_files = nginx_tls_files(&conf);
        assert_eq!(tls_files, [NGINX_CERTIFICATE_PATH, NGINX_KEY_PATH]);
        let listens = nginx_listen_directives(&conf);
        assert!(listens.iter().any(|l| l.port == 443 && l.ssl), "{mode:?}");
        let plain_public = listens
            .iter()
            .any(|l| l.port == 80 && !l.ssl && l.address.is_none());
        assert_eq!(plain_public, mode.published(), "{mode:?}");
    }
}

#[test]
fn reads_mounts_in_both_syntaxes() {
    let svc: Value = serde_yaml_ng::from_str(
        "volumes:\n  - ./a:/etc/a:ro\n  - b:/b\n  - {type: bind, source: /etc/c, target: /c, read_only: true}\n  - {type: bind, source: /etc/d, target: /d}\n",
    )
    .unwrap();
    let m: Vec<_> = mounts_of(&svc)
        .into_iter()
        .map(|m| (m.source, m.target, m.read_only))
        .collect();
    let own = |a: &str, b: &str, ro| (a.to_string(), b.to_string(), ro);
    assert_eq!(
        m,
        [
            own("./a", "/etc/a", true),
            own("b", "/b", false),
            own("/etc/c", "/c", true),
            own("/etc/d", "/d", false),
        ]
    );
}

#[test]
fn a_certificate_nginx_reads_but_compose_does_not_mount_fails() {
    let site = edge_tls(PlainHttp::Redirect);
    let files = planted(
        &rendered(&site),
        NGINX_FILE,
        "ssl_certificate /etc/nginx/tls/site.crt;",
        "ssl_certificate /etc/nginx/certs/site.crt;",
    );
    let c = check(&site, &files);
    assert!(
        c.iter().any(|m| m.starts_with("tls-mismatch")
            && m.contains("nginx reads `/etc/nginx/certs/site.crt`, but compose mounts nothing")),
        "{c:?}"
    );
}

#[test]
fn a_writable_key_or_another_file_fails() {
    let site = edge_tls(PlainHttp::Redirect);
    let files = planted(
        &rendered(&site),
        COMPOSE_FILE,
        "\"read_only\": true, \"source\": \"/etc/dify-cfg/tls/clinic-01.key\"",
        "\"read_only\": false, \"source\": \"/etc/dify-cfg/tls/clinic-01.key\"",
    );
    let c = check(&site, &files);
    assert!(
        c.iter()
            .any(|m| m.contains("mounts `/etc/nginx/tls/site.key` into nginx writable")),
        "{c:?}"
    );
    let files = planted(
        &rendered(&site),
        COMPOSE_FILE,
        "/etc/dify-cfg/tls/clinic-01.crt",
        "/etc/dify-cfg/tls/clinic-02.crt",
    );
    let c = check(&site, &files);
    assert!(
        c.iter().any(|m| m
            .contains("does not mount the site's certificate `/etc/dify-cfg/tls/clinic-01.crt`")),
        "{c:?}"
    );
}

#[test]
fn https_served_in_plain_text_fails() {
    let site = edge_tls(PlainHttp::Redirect);
    // nginx makes a port TLS when any of its `listen`s says `ssl`: one
    // without it is still TLS.
    let files = planted(
        &rendered(&site),
        NGINX_FILE,
        "listen 443 ssl;",
        "listen 443;",
    );
    assert_eq!(check(&site, &files), Vec::<String>::new());
    let files = planted(
        &files,
        NGINX_FILE,
        "listen 443 default_server ssl;",
        "listen 443 default_server;",
    );
    let c = check(&site, &files);
    assert!(
        c.iter().any(|m| m.contains(
            "publishes https's port 443 to nginx's port 443, where nginx has no `ssl` listener"
        )),
        "{c:?}"
    );
}

#[test]
fn plain_http_published_where_the_site_refuses_it_fails() {
    let site = edge_tls(PlainHttp::Refuse);
    let files = rendered(&site);
    // Published, opened and listened on: the port cross-check is content,
    // the TLS one is not.
    let files = planted(
        &files,
        COMPOSE_FILE,
        "- \"10.20.1.10:443:443\"",
        "- \"10.20.1.10:80:80\"\n      - \"10.20.1.10:443:443\"",
    );
    let files = planted(
        &files,
        NGINX_FILE,
        "listen 127.0.0.1:80 default_server;",
        "listen 80 default_server;",
    );
    let rules = String::from_utf8_lossy(&files[RULES_V4_FILE]).into_owned();
    let opening = rules
        .lines()
        .find(|l| l.contains("--ctorigdstport 443"))
        .unwrap()
        .to_string();
    let files = planted(
        &files,
        RULES_V4_FILE,
        &opening,
        &format!("{opening}\n{}", opening.replace("port 443", "port 80")),
    );
    let c = check(&site, &files);
    assert_eq!(
        c,
        [
            "tls-mismatch: site `clinic-01`: the site refuses plain http, but compose publishes port 80 to a plain listener of nginx"
        ]
    );
}

#[test]
fn an_https_port_published_but_not_opened_or_opened_but_not_published_fails() {
    let site = edge_tls(PlainHttp::Redirect);
    let files = rendered(&site);
    let rules = String::from_utf8_lossy(&files[RULES_V4_FILE]).into_owned();
    let without_443: String = rules
        .lines()
        .filter(|l| !l.contains("--ctorigdstport 443"))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut closed = files.clone();
    closed.insert(RULES_V4_FILE.into(), without_443.into_bytes());
    let c = check(&site, &closed);
    assert!(
        c.iter().any(|m| m.starts_with("port-mismatch")
            && m.contains("publishes port 443 of `nginx` but the firewall opens no path to it")),
        "{c:?}"
    );
    let unpublished = planted(&files, COMPOSE_FILE, "      - \"10.20.1.10:443:443\"\n", "");
    let c = check(&site, &unpublished);
    assert!(
        c.iter()
            .any(|m| m.contains("the firewall opens port 443 but compose publishes nothing")),
        "{c:?}"
    );
    assert!(
        c.iter()
            .any(|m| m.contains("compose does not publish https's port 443")),
        "{c:?}"
    );
}

//! `dify-cfg report`: the fleet page. Its bytes (a snapshot, the same on
//! every run), its numbers against the compiler's (the budgets `check`
//! computes, the limits the built compose files set), escaping, what it
//! refuses to replace, and in headless Chromium: screenshots, no console
//! error, and no serious accessibility violation by axe-core.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::support::{
    assert_ok, available, copy_fleet, dify_cfg, example_out, fleet_repo_at, on_path, repo,
};

/// The example fleet's page, printed, from a copy outside any git
/// repository (inside one, the page also says each branch's rollout).
fn example_page() -> String {
    let dir = tempfile::tempdir().unwrap();
    copy_fleet(dir.path());
    page_at(dir.path())
}

/// The page of the config root `root`, printed.
fn page_at(root: &Path) -> String {
    let o = assert_ok(dify_cfg(&["report", "--out", "-"], root), "report");
    String::from_utf8(o.stdout).unwrap()
}

/// Every `name="value"` attribute of the element that holds `marker`.
fn attrs_of(page: &str, marker: &str) -> BTreeMap<String, String> {
    let at = page
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} on the page"));
    let start = page[..at].rfind('<').unwrap();
    let end = at + page[at..].find('>').unwrap();
    let tag = &page[start..end];
    let mut out = BTreeMap::new();
    for part in tag.split("\" ") {
        if let Some((k, v)) = part.rsplit_once("=\"") {
            let k = k.rsplit(' ').next().unwrap().to_string();
            out.insert(k, v.trim_end_matches('"').to_string());
        }
    }
    out
}

/// The `<article>` of `site`.
fn article<'p>(page: &'p str, site: &str) -> &'p str {
    let start = page
        .find(&format!("<article class=\"site\" id=\"site-{site}\""))
        .unwrap_or_else(|| panic!("{site}'s article"));
    let end = start + page[start..].find("</article>").unwrap();
    &page[start..end]
}

#[test]
fn the_example_fleets_page_is_one_static_file_with_the_same_bytes_each_run() {
    let page = example_page();
    assert_eq!(page, example_page(), "two runs, two pages");
    for external in ["src=", "http://", "https://", "@import", "url("] {
        assert!(!page.contains(external), "the page loads {external}");
    }
    assert!(page.starts_with("<!DOCTYPE html>\n"));
    assert!(page.contains("<html lang=\"en\">"));
    insta::assert_snapshot!("report__example_fleet", page);
}

#[test]
fn the_numbers_on_the_page_are_the_compilers() {
    let page = example_page();
    let (inputs, diags) = dify_cfg::internals::read_inputs(repo());
    let analysis = dify_cfg::internals::analyze(&inputs, diags);
    assert!(!analysis.diagnostics.has_errors());
    assert!(!analysis.sites.is_empty());
    for valid in &analysis.sites {
        let site = &valid.site;
        let a = article(&page, &site.name);
        let room = dify_cfg::internals::headroom(site);
        let conn = attrs_of(a, "data-connections-used=");
        assert_eq!(
            conn["data-connections-used"],
            room.connections.used.to_string()
        );
        assert_eq!(
            conn["data-connections-available"],
            room.connections.available.to_string()
        );
        assert_eq!(
            conn["data-connections-max"],
            site.database.max_connections.to_string()
        );
        let Some(memory) = room.memory else {
            assert!(!a.contains("data-memory-used-bytes"), "{}", site.name);
            continue;
        };
        let bar = attrs_of(a, "data-memory-used-bytes=");
        assert_eq!(bar["data-memory-used-bytes"], memory.used_bytes.to_string());
        assert_eq!(
            bar["data-memory-budget-bytes"],
            memory.budget_bytes.to_string()
        );
        // Each segment is the limit the built compose file sets, and the
        // segments and the headroom fill the budget.
        let compose =
            std::fs::read_to_string(example_out().join(&site.name).join("compose.yaml")).unwrap();
        let limits = compose_limits(&compose);
        let mut sum = 0;
        for seg in a.split("data-service=\"").skip(1) {
            let (service, rest) = seg.split_once('"').unwrap();
            let bytes: u64 = rest
                .split_once("data-bytes=\"")
                .and_then(|(_, r)| r.split_once('"'))
                .map(|(b, _)| b.parse().unwrap())
                .unwrap();
            let kind = dify_cfg::internals::ServiceKind::from_key(service).unwrap();
            assert_eq!(
                Some(&bytes),
                limits.get(kind.compose_name()),
                "{}: {service}",
                site.name
            );
            sum += bytes;
        }
        assert_eq!(sum, limits.values().sum::<u64>(), "{}", site.name);
        assert_eq!(sum, memory.used_bytes, "{}", site.name);
        let free = attrs_of(a, "data-headroom-bytes=");
        let free: u64 = free["data-headroom-bytes"].parse().unwrap();
        assert_eq!(sum + free, memory.budget_bytes, "{}", site.name);
    }
}

/// Each compose service's `mem_limit` (times its replicas), in bytes.
fn compose_limits(compose: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let mut service = None;
    for line in compose.lines() {
        if let Some(name) = line.strip_prefix("  ").and_then(|l| l.strip_suffix(':'))
            && !name.starts_with(' ')
        {
            service = Some(name.trim_matches('"').to_string());
        }
        if let (Some(s), Some(v)) = (&service, line.trim().strip_prefix("mem_limit: ")) {
            let mib: u64 = v.trim_matches('"').trim_end_matches('m').parse().unwrap();
            *out.entry(s.clone()).or_default() += mib << 20;
        }
    }
    out
}

/// What `dify-cfg <args> --format json` prints.
fn json_of(args: &[&str], root: &Path) -> serde_json::Value {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let o = dify_cfg(&all, root);
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {o:?}"))
}

/// Each site's pending rollout and audit verdict on the page: (files,
/// risk flags, verdict).
fn rollouts_on(page: &str) -> BTreeMap<String, (String, Vec<String>, String)> {
    let mut out = BTreeMap::new();
    for chunk in page.split("<article class=\"site\" id=\"site-").skip(1) {
        let site = chunk.split('"').next().unwrap().to_string();
        let a = attrs_of(chunk, "data-verdict=");
        let risks = chunk
            .split_once("<ul class=\"risks\">")
            .map(|(_, r)| r.split("</ul>").next().unwrap())
            .unwrap_or("")
            .split("<li>")
            .skip(1)
            .map(|l| {
                l.split("</li>")
                    .next()
                    .unwrap()
                    .replace("&#39;", "'")
                    .replace("&gt;", ">")
                    .replace("&lt;", "<")
                    .replace("&amp;", "&")
                    .replace("&quot;", "\"")
            })
            .collect();
        out.insert(
            site,
            (a["data-files"].clone(), risks, a["data-verdict"].clone()),
        );
    }
    out
}

/// Commit every site branch of the fleet repository `root`, let `then`
/// look, and add an admin network to every clinic without committing it:
/// a rollout waiting for review, with risk flags.
fn commit_and_open_an_admin_network(root: &Path, then: impl FnOnce(&Path)) {
    assert_ok(dify_cfg(&["commit"], root), "commit");
    then(root);
    let profile = root.join("profiles/multi-branch.toml");
    let text = std::fs::read_to_string(&profile).unwrap().replace(
        "admin = [\"10.0.0.0/24\"]",
        "admin = [\"10.0.0.0/24\", \"10.9.0.0/24\"]",
    );
    std::fs::write(&profile, text).unwrap();
}

#[test]
fn in_a_repository_each_site_has_its_pending_rollout_and_audit_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let root = fleet_repo_at(&dir.path().join("fleet"), 0);
    assert!(!example_page().contains("Pending rollout"));
    let before = rollouts_on(&page_at(&root));
    assert_eq!(before.len(), 11);
    // No branch yet: the first commit writes every file and opens
    // everything the site opens; nothing to audit.
    for (site, (files, risks, verdict)) in &before {
        assert!(files != "0" && !risks.is_empty(), "{site}");
        assert_eq!(verdict, "missing", "{site}");
    }
    commit_and_open_an_admin_network(&root, |root| {
        let committed = rollouts_on(&page_at(root));
        for (site, (files, risks, verdict)) in &committed {
            assert_eq!(
                (files.as_str(), risks.len(), verdict.as_str()),
                ("0", 0, "reproducible"),
                "{site}"
            );
        }
    });
    let page = page_at(&root);
    let shown = rollouts_on(&page);
    let diff = json_of(&["diff"], &root);
    let audit = json_of(&["audit"], &root);
    let mut risky = 0;
    for d in diff["sites"].as_array().unwrap() {
        let site = d["site"].as_str().unwrap();
        let (files, risks, verdict) = &shown[site];
        assert_eq!(
            files,
            &d["files"].as_array().unwrap().len().to_string(),
            "{site}"
        );
        let flags = d["risks"].as_array().unwrap().len();
        assert_eq!(risks.len(), flags, "{site}: {risks:?}");
        if flags > 0 {
            assert!(
                risks.iter().any(|r| r.contains("10.9.0.0/24")),
                "{site}: {risks:?}"
            );
        }
        risky += usize::from(!risks.is_empty());
        let audited = audit["branches"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["site"] == site)
            .unwrap();
        assert_eq!(verdict, audited["verdict"].as_str().unwrap(), "{site}");
    }
    assert_eq!(risky, 10, "every clinic, not hq: {shown:?}");
}

#[test]
fn what_a_user_wrote_is_escaped() {
    let dir = tempfile::tempdir().unwrap();
    copy_fleet(dir.path());
    let site = dir.path().join("sites/clinic-01.toml");
    let text = std::fs::read_to_string(&site).unwrap().replace(
        "description = \"Branch clinic 01\"",
        "description = \"<script>alert(1)</script> & 'x'\"",
    );
    std::fs::write(&site, text).unwrap();
    let o = assert_ok(dify_cfg(&["report", "--out", "-"], dir.path()), "report");
    let page = String::from_utf8(o.stdout).unwrap();
    assert!(!page.contains("<script"), "a description became markup");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#39;x&#39;"));
}

#[test]
fn it_writes_out_report_html_and_replaces_only_its_own_page() {
    let dir = tempfile::tempdir().unwrap();
    copy_fleet(dir.path());
    let page = dir.path().join("out/report.html");
    let o = assert_ok(dify_cfg(&["report"], dir.path()), "report");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "wrote ./out/report.html: 11 sites in 3 waves\n"
    );
    let first = std::fs::read(&page).unwrap();
    assert_ok(dify_cfg(&["report"], dir.path()), "report again");
    assert_eq!(std::fs::read(&page).unwrap(), first);
    let mine = dir.path().join("mine.html");
    std::fs::write(&mine, "my notes\n").unwrap();
    let o = dify_cfg(&["report", "--out", "mine.html"], dir.path());
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(&mine).unwrap(), "my notes\n");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("`mine.html` is not a page dify-cfg report wrote"),
        "{err}"
    );
    assert!(err.contains("help: move it away"), "{err}");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        !names.iter().any(|n| n.to_string_lossy().contains("tmp")),
        "{names:?}"
    );
}

/// Where the browser's artefacts are kept: `target/report/`.
fn artefacts() -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"))
        .join("report");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// axe-core's script, from `$DIFY_CFG_TOOLS` (where `.ci/run` installs it).
fn axe_script() -> Option<PathBuf> {
    let tools = std::env::var_os("DIFY_CFG_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/dify-cfg-tools"));
    Some(tools.join("node_modules/axe-core/axe.min.js")).filter(|p| p.is_file())
}

/// Headless Chromium on `page`, with `args`; its stdout and stderr.
fn chromium(page: &Path, args: &[&str]) -> (String, String) {
    let o = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    assert!(o.status.success(), "chromium {args:?}: {o:?}");
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The text of `<pre id="{id}">` in a dumped DOM.
fn pre_text(dom: &str, id: &str) -> String {
    let open = format!("<pre id=\"{id}\">");
    let start = dom.find(&open).unwrap_or_else(|| panic!("#{id} in {dom}")) + open.len();
    let end = start + dom[start..].find("</pre>").unwrap();
    dom[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// `page` with `script` run at the end of its body.
fn with_script(page: &str, script: &str) -> String {
    let script = script.replace("</script", "<\\/script");
    page.replacen("</body>", &format!("<script>{script}</script>\n</body>"), 1)
}

#[test]
fn in_chromium_the_page_renders_without_errors_and_passes_axe() {
    if !available(
        "chromium",
        on_path("chromium"),
        "install Debian's chromium (apt-get install chromium; see .ci/run)",
    ) {
        return;
    }
    let dir = artefacts();
    // The page a reviewer gets: a rollout pending, with its risk flags.
    let repo_dir = tempfile::tempdir().unwrap();
    let root = fleet_repo_at(&repo_dir.path().join("fleet"), 0);
    commit_and_open_an_admin_network(&root, |_| {});
    let page = page_at(&root);
    assert!(page.contains("Risk flags:"));
    let plain = dir.join("report.html");
    std::fs::write(&plain, &page).unwrap();
    for (name, width) in [("desktop", 1280), ("phone", 390)] {
        let shot = dir.join(format!("report-{name}.png"));
        let _ = std::fs::remove_file(&shot);
        let (_, log) = chromium(
            &plain,
            &[
                &format!("--window-size={width},3000"),
                &format!("--screenshot={}", shot.display()),
            ],
        );
        assert!(shot.is_file(), "no {name} screenshot: {log}");
        let console: Vec<_> = log.lines().filter(|l| l.contains(":CONSOLE(")).collect();
        assert!(console.is_empty(), "console at {name} width: {console:?}");
    }
    // Errors the page raises while it loads, recorded into the DOM.
    let probe = dir.join("report-errors.html");
    let recorder = "<script>window.__errors=[];addEventListener('error',function(e){__errors.push(String(e.message||e.type))},true);</script>";
    let with_recorder = page.replacen("<head>", &format!("<head>\n{recorder}"), 1);
    std::fs::write(
        &probe,
        with_script(
            &with_recorder,
            "addEventListener('load',function(){var p=document.createElement('pre');p.id='errors';p.textContent=JSON.stringify(__errors);document.body.appendChild(p)});",
        ),
    )
    .unwrap();
    let (dom, _) = chromium(&probe, &["--dump-dom", "--virtual-time-budget=5000"]);
    assert_eq!(pre_text(&dom, "errors"), "[]", "errors while loading");
    let Some(axe) = axe_script() else {
        available(
            "axe-core",
            false,
            "npm install --prefix \"$DIFY_CFG_TOOLS\" axe-core (see .ci/run)",
        );
        return;
    };
    let axe = std::fs::read_to_string(axe).unwrap();
    let run = "axe.run(document,{resultTypes:['violations']}).then(function(r){var p=document.createElement('pre');p.id='axe';p.textContent=JSON.stringify(r.violations.map(function(v){return {id:v.id,impact:v.impact,nodes:v.nodes.map(function(n){return n.target.join(' ')})}}));document.body.appendChild(p)},function(e){var p=document.createElement('pre');p.id='axe';p.textContent='failed: '+e;document.body.appendChild(p)});";
    let checked = dir.join("report-axe.html");
    std::fs::write(&checked, with_script(&with_script(&page, &axe), run)).unwrap();
    let (dom, _) = chromium(&checked, &["--dump-dom", "--virtual-time-budget=10000"]);
    let result = pre_text(&dom, "axe");
    std::fs::write(dir.join("report-axe.json"), &result).unwrap();
    let violations: Vec<serde_json::Value> =
        serde_json::from_str(&result).unwrap_or_else(|e| panic!("axe: {result}: {e}"));
    let serious: Vec<_> = violations
        .iter()
        .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
        .collect();
    assert!(serious.is_empty(), "axe: {serious:#?}");
}

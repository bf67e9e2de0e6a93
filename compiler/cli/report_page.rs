//! The fleet report as one static HTML page: inline CSS, no script, no
//! asset from elsewhere, readable printed. Every string from a user's
//! file is escaped; every number is text on the page and, for programs,
//! a `data-*` attribute; the bytes depend on the sites alone (no clock).
//! [`write_page`] puts it in its file, replacing only a page it wrote.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use crate::base::units::MIB;
use crate::cli::own_file::{self, InTheWay};
use crate::validate::Headroom;

/// The facts of one site the page shows.
pub struct SiteFacts {
    pub name: String,
    pub description: String,
    pub wave: u32,
    pub target: &'static str,
    pub dify: String,
    pub profiles: Vec<String>,
    /// Each service's memory limit times its replicas: (service, replicas, bytes).
    pub memory: Vec<(&'static str, u32, u64)>,
    pub room: Headroom,
    /// `None` for a site on a cluster (no firewall or nginx of dify-cfg's).
    pub exposure: Option<Exposure>,
    /// `None` outside a git repository.
    pub rollout: Option<Rollout>,
}

/// A site's pending rollout against its site branch, and the branch's
/// audit verdict.
pub struct Rollout {
    pub branch: String,
    /// Whether the branch is there.
    pub exists: bool,
    /// How many files a commit would change.
    pub files: usize,
    /// The risk flags of that change, as `diff` says them.
    pub risks: Vec<String>,
    /// `audit`'s verdict; `None` when the audit could not run.
    pub verdict: Option<&'static str>,
    /// Why the verdict is what it is.
    pub notes: Vec<String>,
}

/// Who can reach what on a compose box.
pub struct Exposure {
    /// One row per source network, in role order then by network.
    pub rows: Vec<Reach>,
    /// Whether both firewall chains end by dropping everything else.
    pub closed: bool,
}

/// What one source network reaches.
pub struct Reach {
    pub network: String,
    /// `site LAN`, `admin network`, `ssh-from`.
    pub roles: Vec<&'static str>,
    /// `tcp 80: http to nginx`, `ping`, ...
    pub ports: Vec<String>,
    /// nginx route prefixes open to it (`= /health` for an exact match).
    pub routes: Vec<String>,
}

/// How every page this command writes starts; `report` replaces only a
/// file that starts so.
const MARKER: &str = "<!DOCTYPE html>\n<!-- written by `dify-cfg report` from the config root's sources; it replaces this file when run again -->\n";

const STYLE: &str = "
body{font-family:system-ui,sans-serif;color:#1a1a1a;background:#fff;margin:0 auto;max-width:72rem;padding:1rem;line-height:1.4}
h1{font-size:1.6rem}h2{font-size:1.3rem;border-bottom:2px solid #444;margin-top:2rem}h3{font-size:1.1rem;margin-bottom:.2rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0}caption{text-align:left;font-weight:600;padding:.2rem 0}
th,td{border:1px solid #999;padding:.25rem .4rem;text-align:left;vertical-align:top;overflow-wrap:break-word}
thead th{background:#eee}td.n{text-align:right;font-variant-numeric:tabular-nums}
.site{border:1px solid #bbb;border-radius:4px;padding:.5rem 1rem;margin:1rem 0;break-inside:avoid}
.bar{display:flex;height:1.6rem;border:1px solid #333;margin:.3rem 0;overflow:hidden}
.seg{display:block;height:100%;overflow:hidden;white-space:nowrap;font-size:.75rem;line-height:1.6rem;padding-left:2px;color:#111;border-right:1px solid #333}
.free{background:#fff;background-image:repeating-linear-gradient(45deg,#fff 0 4px,#ddd 4px 6px)}
.c0{background:#a6cee3}.c1{background:#b2df8a}.c2{background:#fdbf6f}.c3{background:#cab2d6}.c4{background:#ffff99}.c5{background:#fb9a99}.c6{background:#c7e9c0}.c7{background:#d9d9d9}
.used{background:#a6cee3}
p.note{color:#333;font-size:.9rem}
@media (max-width:600px){body{padding:.5rem}table{font-size:.8rem}th,td{padding:.15rem .2rem}.site{padding:.3rem .5rem}}
@media print{body{max-width:none;padding:0}.site{border-color:#000}.bar,.seg{print-color-adjust:exact;-webkit-print-color-adjust:exact}a{color:#000}}
";

/// The page.
pub fn page(sites: &[SiteFacts]) -> String {
    let mut waves: BTreeMap<u32, Vec<&SiteFacts>> = BTreeMap::new();
    for s in sites {
        waves.entry(s.wave).or_default().push(s);
    }
    for list in waves.values_mut() {
        list.sort_by(|a, b| a.name.cmp(&b.name));
    }
    let mut h = String::from(MARKER);
    h.push_str("<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    h.push_str("<title>Dify fleet report</title>\n<style>");
    h.push_str(STYLE);
    h.push_str("</style>\n</head>\n<body>\n<main>\n<h1>Dify fleet report</h1>\n");
    let _ = writeln!(
        h,
        "<p>{} sites in {} rollout waves, as the config root's sources compile. Memory bars show each service's limit (times its replicas) of the box's budget (its memory less the reserve) and what is left; connections are PostgreSQL's pools at their largest of <code>max-connections</code> less the reserve.</p>",
        sites.len(),
        waves.len()
    );
    overview(&mut h, &waves);
    for (wave, list) in &waves {
        let _ = writeln!(
            h,
            "<section aria-labelledby=\"wave-{wave}\">\n<h2 id=\"wave-{wave}\">Wave {wave}</h2>"
        );
        for s in list {
            site(&mut h, s);
        }
        h.push_str("</section>\n");
    }
    h.push_str("</main>\n</body>\n</html>\n");
    h
}

/// The fleet at a glance: one row per site, by wave.
fn overview(h: &mut String, waves: &BTreeMap<u32, Vec<&SiteFacts>>) {
    h.push_str("<section aria-labelledby=\"fleet\">\n<h2 id=\"fleet\">The fleet by rollout wave</h2>\n<table>\n<caption>Every site, by rollout wave (1 is the canary)</caption>\n<thead><tr><th scope=\"col\">Wave</th><th scope=\"col\">Site</th><th scope=\"col\">Target</th><th scope=\"col\">Dify</th><th scope=\"col\">Memory used of budget</th><th scope=\"col\">Connections used of available</th></tr></thead>\n<tbody>\n");
    for (wave, list) in waves {
        for s in list {
            let memory = s
                .room
                .memory
                .as_ref()
                .map_or_else(|| "the cluster's".to_string(), |m| m.text());
            let _ = writeln!(
                h,
                "<tr><td class=\"n\">{wave}</td><th scope=\"row\"><a href=\"#site-{id}\">{name}</a></th><td>{target}</td><td>{dify}</td><td>{memory}</td><td>{conn}</td></tr>",
                id = esc(&s.name),
                name = esc(&s.name),
                target = s.target,
                dify = esc(&s.dify),
                memory = esc(&memory),
                conn = esc(&format!(
                    "{} of {}",
                    s.room.connections.used, s.room.connections.available
                )),
            );
        }
    }
    h.push_str("</tbody>\n</table>\n</section>\n");
}

/// One site's article.
fn site(h: &mut String, s: &SiteFacts) {
    let name = esc(&s.name);
    let _ = writeln!(
        h,
        "<article class=\"site\" id=\"site-{name}\" data-site=\"{name}\" data-wave=\"{}\" data-target=\"{}\" data-dify=\"{}\">\n<h3>{name}</h3>",
        s.wave,
        s.target,
        esc(&s.dify)
    );
    if !s.description.is_empty() {
        let _ = writeln!(h, "<p>{}</p>", esc(&s.description));
    }
    let _ = writeln!(
        h,
        "<p>Target <strong>{}</strong>, Dify <strong>{}</strong>, profiles {}.</p>",
        s.target,
        esc(&s.dify),
        esc(&s.profiles.join(" → "))
    );
    memory(h, s);
    connections(h, s);
    exposure(h, s);
    if let Some(r) = &s.rollout {
        rollout(h, r);
    }
    h.push_str("</article>\n");
}

/// The memory bar, stacked by service, and its numbers as a table.
fn memory(h: &mut String, s: &SiteFacts) {
    let name = esc(&s.name);
    let _ = writeln!(h, "<h4>Memory</h4>");
    let Some(m) = &s.room.memory else {
        h.push_str("<p class=\"note\">On a cluster: its scheduler places the pods; no box budget here.</p>\n");
        return;
    };
    let _ = writeln!(
        h,
        "<div class=\"bar\" role=\"img\" aria-label=\"memory of {name}: {}\" data-memory-used-bytes=\"{}\" data-memory-budget-bytes=\"{}\" data-memory-headroom-bytes=\"{}\">",
        esc(&m.text()),
        m.used_bytes,
        m.budget_bytes,
        m.headroom_bytes
    );
    for (i, (service, _, bytes)) in s.memory.iter().enumerate() {
        let _ = writeln!(
            h,
            "<span class=\"seg c{}\" style=\"width:{}%\" data-service=\"{service}\" data-bytes=\"{bytes}\">{service} {}</span>",
            i % 8,
            percent(*bytes, m.budget_bytes),
            mib(*bytes)
        );
    }
    let _ = writeln!(
        h,
        "<span class=\"seg free\" style=\"width:{}%\" data-headroom-bytes=\"{}\">free {}</span>\n</div>",
        percent(m.headroom_bytes, m.budget_bytes),
        m.headroom_bytes,
        mib(m.headroom_bytes)
    );
    let _ = writeln!(
        h,
        "<table>\n<caption>Memory limits on {name}'s box</caption>\n<thead><tr><th scope=\"col\">Service</th><th scope=\"col\">Replicas</th><th scope=\"col\">Limit</th><th scope=\"col\">Share of budget</th></tr></thead>\n<tbody>"
    );
    for (service, replicas, bytes) in &s.memory {
        let _ = writeln!(
            h,
            "<tr><th scope=\"row\">{service}</th><td class=\"n\">{replicas}</td><td class=\"n\">{}</td><td class=\"n\">{}%</td></tr>",
            mib(*bytes),
            percent(*bytes, m.budget_bytes)
        );
    }
    let _ = writeln!(
        h,
        "<tr><th scope=\"row\">free</th><td></td><td class=\"n\">{}</td><td class=\"n\">{}%</td></tr>\n</tbody>\n<tfoot><tr><th scope=\"row\">budget</th><td></td><td class=\"n\">{}</td><td>the box's {} less {}% reserved</td></tr></tfoot>\n</table>",
        mib(m.headroom_bytes),
        percent(m.headroom_bytes, m.budget_bytes),
        mib(m.budget_bytes),
        mib(m.device_bytes),
        m.reserve_percent
    );
}

/// The connection budget: a bar and its sentence.
fn connections(h: &mut String, s: &SiteFacts) {
    let c = &s.room.connections;
    let _ = writeln!(
        h,
        "<h4>PostgreSQL connections</h4>\n<div class=\"bar\" role=\"img\" aria-label=\"connections of {name}: {text}\" data-connections-used=\"{}\" data-connections-available=\"{}\" data-connections-max=\"{}\">\n<span class=\"seg used\" style=\"width:{}%\">used {}</span>\n<span class=\"seg free\" style=\"width:{}%\">free {}</span>\n</div>\n<p>{text}</p>",
        c.used,
        c.available,
        c.max_connections,
        percent(u64::from(c.used), u64::from(c.available)),
        c.used,
        percent(u64::from(c.headroom), u64::from(c.available)),
        c.headroom,
        name = esc(&s.name),
        text = esc(&c.text()),
    );
}

/// Who can reach what.
fn exposure(h: &mut String, s: &SiteFacts) {
    let _ = writeln!(h, "<h4>Who can reach what</h4>");
    let Some(Exposure { rows, closed }) = &s.exposure else {
        h.push_str("<p class=\"note\">On a cluster: no box firewall; the chart does not enforce route restrictions (public routes for the LAN, the rest for admins), the cluster&#39;s ingress must.</p>\n");
        return;
    };
    let _ = writeln!(
        h,
        "<table>\n<caption>Who can reach {}, from the firewall rules and nginx routes it is built with</caption>\n<thead><tr><th scope=\"col\">From</th><th scope=\"col\">As</th><th scope=\"col\">Ports</th><th scope=\"col\">Routes through nginx</th></tr></thead>\n<tbody>",
        esc(&s.name)
    );
    let list = |items: &[String]| {
        if items.is_empty() {
            "none".to_string()
        } else {
            items
                .iter()
                .map(|i| esc(i))
                .collect::<Vec<_>>()
                .join("<br>")
        }
    };
    for r in rows {
        let _ = writeln!(
            h,
            "<tr data-network=\"{net}\"><th scope=\"row\">{net}</th><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.roles.join(", ")),
            list(&r.ports),
            list(&r.routes),
            net = esc(&r.network),
        );
    }
    let rest = if *closed {
        "nothing: the firewall drops everything else"
    } else {
        "not closed: a firewall chain does not end by dropping the rest"
    };
    let _ = writeln!(
        h,
        "<tr data-network=\"anyone else\"><th scope=\"row\">anyone else</th><td></td><td colspan=\"2\">{rest}</td></tr>\n</tbody>\n</table>"
    );
}

/// The pending rollout and the audit verdict.
fn rollout(h: &mut String, r: &Rollout) {
    let branch = esc(&r.branch);
    let _ = writeln!(
        h,
        "<h4>Pending rollout and audit</h4>\n<div class=\"rollout\" data-branch=\"{branch}\" data-files=\"{}\" data-risks=\"{}\" data-verdict=\"{}\">",
        r.files,
        r.risks.len(),
        r.verdict.unwrap_or("")
    );
    let pending = if !r.exists {
        format!(
            "No branch <code>{branch}</code> yet: the first <code>dify-cfg commit</code> makes it with every file ({}).",
            r.files
        )
    } else if r.files == 0 {
        format!("Nothing pending: <code>{branch}</code> is what the sources render.")
    } else {
        format!("{} files would change on <code>{branch}</code>.", r.files)
    };
    let _ = writeln!(h, "<p>{pending}</p>");
    if r.files > 0 {
        if r.risks.is_empty() {
            h.push_str("<p>Risk flags: none.</p>\n");
        } else {
            h.push_str("<p>Risk flags:</p>\n<ul class=\"risks\">\n");
            for risk in &r.risks {
                let _ = writeln!(h, "<li>{}</li>", esc(risk));
            }
            h.push_str("</ul>\n");
        }
    }
    match r.verdict {
        Some(v) => {
            let _ = writeln!(
                h,
                "<p>Audit against the sources at <code>HEAD</code>: <strong>{v}</strong>.</p>"
            );
        }
        None => h.push_str("<p>Audit: not run.</p>\n"),
    }
    if !r.notes.is_empty() {
        h.push_str("<ul class=\"notes\">\n");
        for n in &r.notes {
            let _ = writeln!(h, "<li>{}</li>", esc(n));
        }
        h.push_str("</ul>\n");
    }
    h.push_str("</div>\n");
}

/// `part` of `whole` in percent with two decimals, from integers.
fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "0.00".into();
    }
    let hundredths = u128::from(part) * 10_000 / u128::from(whole);
    format!("{}.{:02}", hundredths / 100, hundredths % 100)
}

/// `640 MiB`, or a tenth where it is not whole.
fn mib(bytes: u64) -> String {
    let tenths = u128::from(bytes) * 10 / u128::from(MIB);
    if tenths % 10 == 0 {
        format!("{} MiB", tenths / 10)
    } else {
        format!("{}.{} MiB", tenths / 10, tenths % 10)
    }
}

/// Text and attribute values for HTML.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(
        "`{path}` is not a page dify-cfg report wrote ({why}); it is left as it is\nhelp: move it away, or name another file with `--out FILE` (`--out -` prints the page)"
    )]
    NotOurs { path: String, why: String },
    #[error("cannot write `{path}`: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// Write the page at `path`, replacing only a page this command wrote:
/// staged in a sibling file, then renamed over it.
pub fn write_page(path: &Path, html: &str) -> Result<(), ReportError> {
    let shown = path.display().to_string();
    let io = |source| ReportError::Write {
        path: shown.clone(),
        source,
    };
    let not_ours = |why: &str| ReportError::NotOurs {
        path: shown.clone(),
        why: why.into(),
    };
    own_file::may_replace(path, |bytes| bytes.starts_with(MARKER.as_bytes())).map_err(
        |w| match w {
            InTheWay::NotAFile => not_ours("it is not a plain file"),
            InTheWay::NotOurs => not_ours("it does not start as the pages dify-cfg writes do"),
            InTheWay::Io(e) => io(e),
        },
    )?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(io)?;
    }
    own_file::replace(path, html.as_bytes()).map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_a_user_wrote_and_counts_in_integers() {
        assert_eq!(
            esc("<a href=\"x\">&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(percent(1, 3), "33.33");
        assert_eq!(percent(3, 3), "100.00");
        assert_eq!(percent(1, 0), "0.00");
        assert_eq!(mib(640 * MIB), "640 MiB");
        assert_eq!(mib(MIB + MIB / 2), "1.5 MiB");
    }
}

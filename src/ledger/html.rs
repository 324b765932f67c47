//! `fleet --html FILE`: one self-contained page (inline style, no scripts, nothing fetched)
//! an operator can open or attach to a change ticket: a table per repository:tag with the
//! digests it runs, on which hosts and waves, newest first; then the hosts and their age.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::view::{FleetRow, FleetView};

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;margin:0.5em 0 1.5em}\
th,td{border:1px solid #bbb;padding:0.3em 0.6em;text-align:left;vertical-align:top}\
th{background:#eee}code{font-size:0.85em;word-break:break-all}\
.stale{color:#a00}.state-up_to_date{color:#060}";

/// Escapes text for HTML element content and attribute values.
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

/// The rows of one repository:tag that run one digest.
struct DigestGroup<'a> {
    digest: Option<&'a str>,
    rows: Vec<&'a FleetRow>,
}

impl DigestGroup<'_> {
    /// The newest time a host started running it (or last deployed there).
    fn newest(&self) -> Option<&str> {
        self.rows
            .iter()
            .filter_map(|r| r.since.as_deref().or(r.last_deployment_at.as_deref()))
            .max()
    }
}

/// Rows by image, then by running digest; digests newest first.
fn grouped(view: &FleetView) -> BTreeMap<&str, Vec<DigestGroup<'_>>> {
    let mut by_image: BTreeMap<&str, BTreeMap<Option<&str>, Vec<&FleetRow>>> = BTreeMap::new();
    for r in &view.rows {
        by_image
            .entry(&r.image)
            .or_default()
            .entry(r.running_digest.as_deref())
            .or_default()
            .push(r);
    }
    by_image
        .into_iter()
        .map(|(image, digests)| {
            let mut groups: Vec<DigestGroup<'_>> = digests
                .into_iter()
                .map(|(digest, rows)| DigestGroup { digest, rows })
                .collect();
            groups.sort_by(|a, b| b.newest().cmp(&a.newest()));
            (image, groups)
        })
        .collect()
}

/// A list of distinct values, in order of first appearance.
fn distinct<'a>(values: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

fn digest_table(out: &mut String, groups: &[DigestGroup<'_>]) {
    out.push_str("<table><thead><tr><th>Digest</th><th>Platform</th><th>Hosts</th><th>Waves</th><th>Since</th><th>Previous</th><th>State</th></tr></thead><tbody>\n");
    for g in groups {
        let hosts: Vec<String> = g
            .rows
            .iter()
            .map(|r| {
                let name = esc(&format!("{}/{}", r.host, r.container));
                match r.stale {
                    true => format!("<span class=\"stale\">{name} (stale)</span>"),
                    false => name,
                }
            })
            .collect();
        let mut waves: Vec<u32> = g.rows.iter().map(|r| r.wave).collect();
        waves.sort_unstable();
        waves.dedup();
        let waves: Vec<String> = waves.iter().map(u32::to_string).collect();
        let platforms = distinct(g.rows.iter().filter_map(|r| r.platform_digest.as_deref()));
        let previous = distinct(g.rows.iter().filter_map(|r| r.previous_digest.as_deref()));
        let states = distinct(g.rows.iter().map(|r| r.state.as_str()));
        let code = |v: &[&str]| {
            v.iter()
                .map(|d| format!("<code>{}</code>", esc(d)))
                .collect::<Vec<_>>()
                .join("<br>")
        };
        let _ = writeln!(
            out,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"state-{}\">{}</td></tr>",
            esc(g.digest.unwrap_or("-")),
            code(&platforms),
            hosts.join("<br>"),
            waves.join(", "),
            esc(g.newest().unwrap_or("-")),
            code(&previous),
            esc(states.first().copied().unwrap_or("")),
            esc(&states.join(", ")),
        );
    }
    out.push_str("</tbody></table>\n");
}

fn host_table(out: &mut String, view: &FleetView) {
    out.push_str("<h2>Hosts</h2>\n<table><thead><tr><th>Host</th><th>Machine</th><th>Wave</th><th>Written</th><th>Agent</th><th>Fresh</th></tr></thead><tbody>\n");
    for h in &view.hosts {
        let fresh = match (h.stale, h.age_seconds) {
            (true, Some(a)) => format!("<span class=\"stale\">stale ({a} s old)</span>"),
            (true, None) => "<span class=\"stale\">stale</span>".to_owned(),
            (false, Some(a)) => format!("yes ({a} s old)"),
            (false, None) => "yes".to_owned(),
        };
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{fresh}</td></tr>",
            esc(&h.name),
            esc(&h.host),
            h.wave,
            esc(&h.written_at),
            esc(&h.agent_version),
        );
    }
    out.push_str("</tbody></table>\n");
}

/// The page for `view`.
pub fn page(view: &FleetView) -> String {
    let stale = view.hosts.iter().filter(|h| h.stale).count();
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Fleet ledger {ledger}</title><style>{STYLE}</style></head><body>\n\
         <h1>Fleet ledger</h1>\n<p>Read from <code>{ledger}</code> at {at}: {hosts} hosts, {stale} stale.</p>\n",
        ledger = esc(&view.ledger),
        at = esc(&view.read_at),
        hosts = view.hosts.len(),
    );
    for (image, groups) in grouped(view) {
        let _ = writeln!(out, "<section><h2>{}</h2>", esc(image));
        digest_table(&mut out, &groups);
        out.push_str("</section>\n");
    }
    host_table(&mut out, view);
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::view::HostView;

    fn row(host: &str, wave: u32, digest: &str, since: &str) -> FleetRow {
        FleetRow {
            host: host.into(),
            wave,
            stale: host == "edge-03",
            container: "web".into(),
            image: "shop/web:prod".into(),
            repository: "shop/web".into(),
            tag: "prod".into(),
            running_digest: Some(digest.into()),
            platform_digest: None,
            desired_digest: Some(digest.into()),
            since: Some(since.into()),
            previous_digest: Some("sha256:old".into()),
            state: "up_to_date".into(),
            last_outcome: Some("succeeded".into()),
            last_deployment_at: None,
        }
    }

    #[test]
    fn a_table_per_image_digests_newest_first_with_hosts_and_waves_and_no_script() {
        let view = FleetView {
            ledger: "s3://l/p/".into(),
            read_at: "2025-06-01T12:00:00Z".into(),
            hosts: vec![HostView {
                name: "edge-<1>".into(),
                host: "m".into(),
                wave: 1,
                agent_version: "0.1.0".into(),
                written_at: "2025-06-01T11:59:00Z".into(),
                sweep_interval_seconds: 60,
                age_seconds: Some(60),
                stale: false,
            }],
            rows: vec![
                row("edge-01", 1, "sha256:new", "2025-06-01T10:00:00Z"),
                row("edge-02", 2, "sha256:new", "2025-06-01T11:00:00Z"),
                row("edge-03", 3, "sha256:older", "2025-05-01T10:00:00Z"),
            ],
        };
        let html = page(&view);
        assert!(!html.contains("<script") && !html.contains("src=") && !html.contains("href="));
        assert_eq!(html.matches("<h2>shop/web:prod</h2>").count(), 1);
        let new = html.find("<code>sha256:new</code>").unwrap();
        let older = html.find("<code>sha256:older</code>").unwrap();
        assert!(new < older, "newest first");
        assert!(
            html.contains("edge-01/web<br>edge-02/web</td><td>1, 2</td><td>2025-06-01T11:00:00Z")
        );
        assert!(html.contains("edge-03/web (stale)"));
        assert!(html.contains("<td>edge-&lt;1&gt;</td>"), "escaped");
    }
}

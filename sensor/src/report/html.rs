//! `--html FILE`: one self-contained HTML file: inline CSS, bar charts drawn here as inline
//! SVG, tables; no JavaScript, no external URL (it opens offline, from a mail attachment).

use super::minversion::MinVersion;
use mailtls_storage::record::Name;
use mailtls_storage::SessionRecord;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Aggregates for the HTML page.
#[derive(Debug)]
pub struct HtmlReport {
    sessions: u64,
    by_direction: BTreeMap<String, u64>,
    by_mode: BTreeMap<String, u64>,
    by_outcome: BTreeMap<String, u64>,
    by_version: BTreeMap<Name, u64>,
    by_class: BTreeMap<String, u64>,
    below12: MinVersion,
}

impl Default for HtmlReport {
    fn default() -> Self {
        HtmlReport {
            sessions: 0,
            by_direction: BTreeMap::new(),
            by_mode: BTreeMap::new(),
            by_outcome: BTreeMap::new(),
            by_version: BTreeMap::new(),
            by_class: BTreeMap::new(),
            below12: MinVersion::new("TLSv1.2").expect("known version"),
        }
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const COLORS: &[&str] = &[
    "#2b6cb0", "#38a169", "#d69e2e", "#e53e3e", "#805ad5", "#dd6b20", "#319795", "#718096",
];

/// A horizontal bar chart as inline SVG; every bar is a `<rect>` with positive width.
pub fn bar_chart(title: &str, rows: &[(String, u64)]) -> String {
    let row_h = 26;
    let label_w = 190;
    let bar_w = 420.0;
    let h = 30 + row_h * rows.len().max(1);
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1) as f64;
    let total: u64 = rows.iter().map(|r| r.1).sum();
    let mut o = String::new();
    let _ = write!(
        o,
        "<figure class=\"chart\"><svg width=\"720\" height=\"{h}\" \
         role=\"img\" aria-label=\"{t}\"><text x=\"0\" y=\"18\" class=\"ct\">{t}</text>",
        t = esc(title)
    );
    if rows.is_empty() {
        let _ = write!(o, "<text x=\"0\" y=\"44\">no sessions</text>");
    }
    for (i, (label, n)) in rows.iter().enumerate() {
        let y = 30 + i * row_h;
        let w = (*n as f64 / max * bar_w).max(2.0);
        let pct = if total > 0 {
            *n as f64 * 100.0 / total as f64
        } else {
            0.0
        };
        let _ = write!(
            o,
            "<text x=\"{lx}\" y=\"{ty}\" text-anchor=\"end\">{l}</text>\
             <rect x=\"{label_w}\" y=\"{y}\" width=\"{w:.1}\" height=\"18\" fill=\"{c}\"><title>{l}: {n}</title></rect>\
             <text x=\"{vx:.1}\" y=\"{ty}\">{n} ({pct:.1}%)</text>",
            lx = label_w - 8,
            ty = y + 14,
            l = esc(label),
            c = COLORS[i % COLORS.len()],
            vx = label_w as f64 + w + 6.0,
        );
    }
    o.push_str("</svg></figure>\n");
    o
}

fn sorted<K: ToString>(m: &BTreeMap<K, u64>) -> Vec<(String, u64)> {
    let mut v: Vec<_> = m.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

impl HtmlReport {
    /// Folds one record in.
    pub fn add(&mut self, r: &SessionRecord) {
        self.sessions += 1;
        *self
            .by_direction
            .entry(r.direction.as_str().into())
            .or_default() += 1;
        *self.by_mode.entry(r.mode.as_str().into()).or_default() += 1;
        *self
            .by_outcome
            .entry(r.outcome.as_str().into())
            .or_default() += 1;
        if !r.tls_version.is_empty() {
            *self.by_version.entry(r.tls_version.clone()).or_default() += 1;
            let class = if r.tls_cipher_class.is_empty() {
                "unknown"
            } else {
                &r.tls_cipher_class
            };
            *self.by_class.entry(class.into()).or_default() += 1;
        }
        self.below12.add(r);
    }

    /// The page. `source` describes the input (files, ClickHouse, time range).
    pub fn render(&self, source: &str) -> String {
        let mut o = String::new();
        o.push_str(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>mailtls report</title><style>\
             body{font-family:sans-serif;margin:24px;color:#1a202c;background:#fff}\
             h1{font-size:24px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #cbd5e0}\
             .chart{margin:8px 0}.chart text{font-size:13px;fill:#1a202c}.chart .ct{font-weight:bold;font-size:15px}\
             table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #cbd5e0;padding:3px 8px;text-align:left}\
             th{background:#edf2f7}.muted{color:#4a5568}\
             </style></head><body>\n",
        );
        let _ = writeln!(
            o,
            "<h1>mailtls report</h1><p class=\"muted\">{} sessions; {}</p>",
            self.sessions,
            esc(source)
        );
        o.push_str("<h2>Sessions</h2>\n");
        o.push_str(&bar_chart(
            "Sessions by direction",
            &sorted(&self.by_direction),
        ));
        o.push_str(&bar_chart("Sessions by mode", &sorted(&self.by_mode)));
        o.push_str(&bar_chart("Sessions by outcome", &sorted(&self.by_outcome)));
        o.push_str("<h2>TLS</h2>\n");
        o.push_str(&bar_chart(
            "Negotiated TLS versions",
            &sorted(&self.by_version),
        ));
        o.push_str(&bar_chart(
            "Negotiated cipher suite class",
            &sorted(&self.by_class),
        ));
        o.push_str("<h2>Peers below TLS 1.2</h2>\n");
        let _ = writeln!(
            o,
            "<p class=\"muted\">Peers with sessions that would fail under a minimum of TLS 1.2 \
             (client offered nothing &gt;= TLS 1.2, or a lower version was negotiated): \
             {} of {} sessions with a ClientHello. Peer = the server for outbound sessions, \
             the client otherwise.</p>",
            self.below12.failing(),
            self.below12.judged
        );
        o.push_str(
            "<table><tr><th>direction</th><th>peer</th><th>name</th><th>ports</th>\
             <th>best offered</th><th>best negotiated</th><th>sessions</th><th>last seen</th></tr>\n",
        );
        let mut any = false;
        for d in self.below12.peers.keys() {
            for (ip, p) in self.below12.sorted_peers(*d) {
                any = true;
                let ports: Vec<String> = p.ports.iter().map(u16::to_string).collect();
                let name = |c: u16| match mailtls_parsers::registry::version_name(c) {
                    "" => "-",
                    n => n,
                };
                let _ = writeln!(
                    o,
                    "<tr><td>{}</td><td>{ip}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    d.as_str(),
                    esc(p.name.as_str()),
                    ports.join(","),
                    name(p.offered),
                    if p.negotiated == 0 { "-" } else { name(p.negotiated) },
                    p.sessions,
                    p.last_seen.to_rfc3339()
                );
            }
        }
        if !any {
            o.push_str("<tr><td colspan=\"8\">none</td></tr>\n");
        }
        o.push_str("</table>\n</body></html>\n");
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_is_self_contained_with_bars() {
        let mut h = HtmlReport::default();
        let r = SessionRecord {
            tls_version: "TLSv1.0".into(),
            tls_version_code: 0x0301,
            tls_client_version: 0x0301,
            smtp_banner_host: "<mx>".into(),
            direction: mailtls_storage::Direction::Outbound,
            ..SessionRecord::default()
        };
        h.add(&r);
        let page = h.render("test");
        assert!(!page.contains("<script"));
        assert!(!page.contains("src=\"http"));
        assert!(!page.contains("href=\"http"));
        assert_eq!(page.matches("<svg").count(), 5);
        assert!(page.contains("&lt;mx&gt;"));
        assert!(page.contains("<rect x=\"190\" y=\"30\" width=\"420.0\""));
    }
}

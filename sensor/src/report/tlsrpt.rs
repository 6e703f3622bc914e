//! `--tlsrpt DIR`: RFC 8460 (SMTP TLS Reporting) aggregate reports of outbound sessions,
//! one JSON file per receiving MX, as a sending MTA would send them to a recipient domain.
//!
//! What a passive sensor can and cannot know, and how that shapes the reports:
//! * **No policy lookup.** The sensor sees no DNS and fetches nothing, so it cannot know a
//!   recipient domain's MTA-STS policy or DANE TLSA records. Every report says
//!   `policy-type: no-policy-found`, i.e. the sessions are judged as opportunistic TLS.
//! * **No recipient domain.** RCPT TO domains are not kept (and after STARTTLS they are
//!   encrypted). The `policy-domain` is the receiving MX's name: its 220 banner host, else the
//!   SNI our client sent, else the certificate CN, else the IP address. Sessions are grouped
//!   into one report per such name.
//! * **Successful** = the TLS handshake completed (`tls_established`). With no policy a
//!   sending MTA does not validate the certificate, so a completed handshake is a success
//!   even with a self-signed, expired or mismatched certificate; those are shown in the
//!   terminal summary, not counted as failures.
//! * **Failures** (handshake not completed, or no TLS possible):
//!   - `starttls-not-supported`: STARTTLS absent from the EHLO reply (`plaintext_not_offered`)
//!     or refused with a non-220 reply (`starttls_refused`);
//!   - `certificate-expired`: the handshake failed and the leaf certificate (seen only up to
//!     TLS 1.2; TLS 1.3 certificates are encrypted) had expired at session start, or our
//!     client sent a `certificate_expired` alert;
//!   - `certificate-host-mismatch`: the handshake failed and the certificate's SANs/CN do
//!     not cover the SNI (else the banner host);
//!   - `certificate-not-trusted`: the handshake failed with a certificate alert from our
//!     client (`bad_certificate`, `unknown_ca`, `certificate_unknown`, ...). Chain trust is
//!     never evaluated by the sensor (it has no trust store view of the sender);
//!   - `validation-failure`: any other failed handshake; `additional-information` carries
//!     the first alert and who sent it (e.g. `alert protocol_version sent by server`).
//! * **Not counted**: sessions in which the server offered STARTTLS and our client did not
//!   use it (`plaintext_offered`: no TLS attempt was made), and sessions seen too partially
//!   to judge (`incomplete`). Their numbers are printed in the terminal summary.
//! * Only outbound sessions count. When no record is outbound, inbound or internal (no
//!   `--local-net` at read or report time) every session is treated as outbound, and the
//!   terminal summary says so.

use mailtls_storage::{Direction, Outcome, SessionRecord, Timestamp};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Failure detail key: result type, sending IP, receiving name, receiving IP, extra info.
type DetailKey = (&'static str, IpAddr, String, IpAddr, String);

#[derive(Debug, Default)]
struct Mx {
    successful: u64,
    failures: BTreeMap<DetailKey, u64>,
    established_self_signed: u64,
    established_expired: u64,
    established_mismatch: u64,
    first: Option<Timestamp>,
    last: Option<Timestamp>,
}

#[derive(Debug, Default)]
struct Agg {
    mx: BTreeMap<String, Mx>,
    not_attempted: u64,
    incomplete: u64,
}

/// TLSRPT aggregation.
#[derive(Debug, Default)]
pub struct Tlsrpt {
    outbound: Agg,
    all: Agg,
    directional: bool,
}

/// The receiving MX's name for a record (see the module doc).
pub fn mx_name(r: &SessionRecord) -> String {
    [&r.smtp_banner_host, &r.tls_sni, &r.cert_subject_cn]
        .into_iter()
        .find(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('.').to_ascii_lowercase())
        .unwrap_or_else(|| r.server_ip.to_string())
}

fn name_matches(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.to_ascii_lowercase(), name.to_ascii_lowercase());
    let n = n.trim_end_matches('.');
    match p.strip_prefix("*.") {
        Some(rest) => n
            .split_once('.')
            .is_some_and(|(label, tail)| !label.is_empty() && tail == rest),
        None => p == n,
    }
}

fn cert_seen(r: &SessionRecord) -> bool {
    r.cert_not_after.is_some() || !r.cert_subject_cn.is_empty() || !r.cert_sans.is_empty()
}

fn expired(r: &SessionRecord) -> bool {
    r.cert_not_after.is_some_and(|t| t < r.ts_start)
}

fn mismatch(r: &SessionRecord) -> bool {
    let reference = if r.tls_sni.is_empty() {
        &r.smtp_banner_host
    } else {
        &r.tls_sni
    };
    if !cert_seen(r) || reference.is_empty() {
        return false;
    }
    let names: Vec<&String> = if r.cert_sans.is_empty() {
        vec![&r.cert_subject_cn]
    } else {
        r.cert_sans.iter().collect()
    };
    !names.iter().any(|n| name_matches(n, reference))
}

const CERT_ALERTS: &[&str] = &[
    "bad_certificate",
    "unsupported_certificate",
    "certificate_revoked",
    "certificate_unknown",
    "unknown_ca",
];

/// Result type and additional information of a session that counts as a failure; `None`
/// for a success or a session not counted.
pub fn classify(r: &SessionRecord) -> Option<(&'static str, String)> {
    match r.outcome {
        Outcome::PlaintextNotOffered => Some((
            "starttls-not-supported",
            "STARTTLS not offered in the EHLO reply".into(),
        )),
        Outcome::StarttlsRefused => Some((
            "starttls-not-supported",
            format!("STARTTLS answered {}", r.starttls_reply),
        )),
        Outcome::TlsFailed => {
            let alert = if r.tls_alert.is_empty() {
                "handshake not completed, no alert seen".to_string()
            } else {
                format!("alert {} sent by {}", r.tls_alert, r.tls_alert_by)
            };
            let client_alert = r.tls_alert_by == "client";
            if (client_alert && r.tls_alert == "certificate_expired") || expired(r) {
                Some(("certificate-expired", alert))
            } else if mismatch(r) {
                Some(("certificate-host-mismatch", alert))
            } else if client_alert && CERT_ALERTS.contains(&r.tls_alert.as_ref()) {
                let extra = if r.cert_self_signed {
                    format!("{alert}; self-signed certificate")
                } else {
                    alert
                };
                Some(("certificate-not-trusted", extra))
            } else {
                Some(("validation-failure", alert))
            }
        }
        _ => None,
    }
}

impl Agg {
    fn add(&mut self, r: &SessionRecord) {
        let counted = r.tls_established || classify(r).is_some();
        if !counted {
            if r.outcome == Outcome::PlaintextOffered {
                self.not_attempted += 1;
            } else {
                self.incomplete += 1;
            }
            return;
        }
        let name = mx_name(r);
        let mx = self.mx.entry(name.clone()).or_default();
        mx.first = Some(mx.first.map_or(r.ts_start, |t| t.min(r.ts_start)));
        mx.last = Some(mx.last.map_or(r.ts_start, |t| t.max(r.ts_start)));
        if r.tls_established {
            mx.successful += 1;
            mx.established_self_signed += u64::from(r.cert_self_signed);
            mx.established_expired += u64::from(expired(r));
            mx.established_mismatch += u64::from(mismatch(r));
        } else if let Some((kind, info)) = classify(r) {
            *mx.failures
                .entry((kind, r.client_ip, name, r.server_ip, info))
                .or_default() += 1;
        }
    }
}

impl Tlsrpt {
    /// Folds one record in.
    pub fn add(&mut self, r: &SessionRecord) {
        if r.direction != Direction::External {
            self.directional = true;
        }
        if r.direction == Direction::Outbound {
            self.outbound.add(r);
        }
        self.all.add(r);
    }

    fn chosen(&self) -> &Agg {
        if self.directional {
            &self.outbound
        } else {
            &self.all
        }
    }

    /// The reports as (file name, JSON), one per MX. `range` overrides the date range
    /// (else: first and last session start of each MX).
    pub fn reports(
        &self,
        org: &str,
        contact: &str,
        range: (Option<Timestamp>, Option<Timestamp>),
    ) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        for (name, mx) in &self.chosen().mx {
            let start = range.0.or(mx.first).unwrap_or_default();
            let end = range.1.or(mx.last).unwrap_or_default();
            let failures: u64 = mx.failures.values().sum();
            let details: Vec<Value> = mx
                .failures
                .iter()
                .map(|((kind, sip, rname, rip, info), n)| {
                    json!({
                        "result-type": kind,
                        "sending-mta-ip": sip.to_string(),
                        "receiving-mx-hostname": rname,
                        "receiving-ip": rip.to_string(),
                        "failed-session-count": n,
                        "additional-information": info,
                    })
                })
                .collect();
            let secs = |t: Timestamp| t.micros().div_euclid(1_000_000);
            let safe: String = name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            let report_id = format!("{}-{}-{safe}@mailtls", secs(start), secs(end));
            let doc = json!({
                "organization-name": org,
                "date-range": {
                    "start-datetime": rfc3339_secs(start),
                    "end-datetime": rfc3339_secs(end),
                },
                "contact-info": contact,
                "report-id": report_id,
                "policies": [{
                    "policy": {
                        "policy-type": "no-policy-found",
                        "policy-domain": name,
                    },
                    "summary": {
                        "total-successful-session-count": mx.successful,
                        "total-failure-session-count": failures,
                    },
                    "failure-details": details,
                }],
            });
            // RFC 8460 section 5.3 file name: sender!policy-domain!begin!end!id.json
            let file = format!("mailtls!{safe}!{}!{}.json", secs(start), secs(end));
            out.push((file, doc));
        }
        out
    }

    /// Writes the reports into `dir` (created if missing); returns the paths.
    pub fn write(
        &self,
        dir: &Path,
        org: &str,
        contact: &str,
        range: (Option<Timestamp>, Option<Timestamp>),
    ) -> Result<Vec<PathBuf>, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let mut paths = Vec::new();
        for (file, doc) in self.reports(org, contact, range) {
            let path = dir.join(file);
            let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
            std::fs::write(&path, text + "\n")
                .map_err(|e| format!("writing {}: {e}", path.display()))?;
            paths.push(path);
        }
        Ok(paths)
    }

    /// Terminal summary of what went into the reports.
    pub fn render(&self, paths: &[PathBuf]) -> String {
        let mut o = String::new();
        let agg = self.chosen();
        let _ = writeln!(o, "\nTLSRPT (RFC 8460) reports: {} files", paths.len());
        if !self.directional {
            let _ = writeln!(
                o,
                "  no record is outbound/inbound/internal (no --local-net): every session treated as outbound"
            );
        }
        for (name, mx) in &agg.mx {
            let failures: u64 = mx.failures.values().sum();
            let _ = writeln!(
                o,
                "  {name}: {} successful, {failures} failed",
                mx.successful
            );
            let mut by_kind: BTreeMap<&str, u64> = BTreeMap::new();
            for ((kind, ..), n) in &mx.failures {
                *by_kind.entry(kind).or_default() += n;
            }
            for (kind, n) in by_kind {
                let _ = writeln!(o, "    {n:>6}  {kind}");
            }
            if mx.established_self_signed + mx.established_expired + mx.established_mismatch > 0 {
                let _ = writeln!(
                    o,
                    "    established anyway (counted successful, no policy): {} self-signed, {} expired, {} name mismatch",
                    mx.established_self_signed, mx.established_expired, mx.established_mismatch
                );
            }
        }
        let _ = writeln!(
            o,
            "  not counted: {} sessions where STARTTLS was offered but not used, {} too incomplete to judge",
            agg.not_attempted, agg.incomplete
        );
        for p in paths {
            let _ = writeln!(o, "  wrote {}", p.display());
        }
        o
    }
}

fn rfc3339_secs(t: Timestamp) -> String {
    let s = t.to_rfc3339();
    // 2026-11-22T21:45:14.123456Z -> 2026-11-22T21:45:14Z
    match s.find('.') {
        Some(i) => format!("{}Z", &s[..i]),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> SessionRecord {
        SessionRecord {
            direction: Direction::Outbound,
            smtp_banner_host: "MX.Example.".into(),
            ts_start: Timestamp(2_000_000),
            ..SessionRecord::default()
        }
    }

    #[test]
    fn classification() {
        let mut r = base();
        r.outcome = Outcome::PlaintextNotOffered;
        assert_eq!(classify(&r).unwrap().0, "starttls-not-supported");
        r.outcome = Outcome::TlsFailed;
        r.tls_alert = "protocol_version".into();
        r.tls_alert_by = "server".into();
        let (k, info) = classify(&r).unwrap();
        assert_eq!(k, "validation-failure");
        assert_eq!(info, "alert protocol_version sent by server");
        r.cert_not_after = Some(Timestamp(1_000_000));
        assert_eq!(classify(&r).unwrap().0, "certificate-expired");
        r.cert_not_after = Some(Timestamp(9_000_000));
        r.cert_sans = vec!["other.example".into()];
        assert_eq!(classify(&r).unwrap().0, "certificate-host-mismatch");
        r.cert_sans = vec!["*.example".into()];
        r.tls_alert = "unknown_ca".into();
        r.tls_alert_by = "client".into();
        assert_eq!(classify(&r).unwrap().0, "certificate-not-trusted");
        r.outcome = Outcome::Tls;
        assert!(classify(&r).is_none());
        assert_eq!(mx_name(&r), "mx.example");
    }

    #[test]
    fn reports_count_outbound_only() {
        let mut t = Tlsrpt::default();
        let mut ok = base();
        ok.outcome = Outcome::Tls;
        ok.tls_established = true;
        t.add(&ok);
        let mut bad = base();
        bad.outcome = Outcome::StarttlsRefused;
        bad.starttls_reply = 502;
        t.add(&bad);
        let mut inbound = ok.clone();
        inbound.direction = Direction::Inbound;
        t.add(&inbound);
        let reps = t.reports("o", "c", (None, None));
        assert_eq!(reps.len(), 1);
        let p = &reps[0].1["policies"][0];
        assert_eq!(p["summary"]["total-successful-session-count"], 1);
        assert_eq!(p["summary"]["total-failure-session-count"], 1);
        assert_eq!(p["policy"]["policy-type"], "no-policy-found");
        assert_eq!(
            p["failure-details"][0]["additional-information"],
            "STARTTLS answered 502"
        );
        assert_eq!(
            reps[0].1["date-range"]["start-datetime"],
            "1970-01-01T00:00:02Z"
        );
    }
}

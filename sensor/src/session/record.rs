//! From a finished [`Session`] to a [`SessionRecord`]: mode and outcome rules, fingerprints,
//! registry names, direction from the local networks.

use super::{Layer, Session};
use ipnet::IpNet;
use mailtls_parsers::fingerprint::{FingerprintCache, Transport};
use mailtls_parsers::registry::{alert_name, cipher_suite, version_name};
use mailtls_parsers::Dir;
use mailtls_storage::record::{
    Direction, EndReason, Mode, Name, Outcome, SessionRecord, Timestamp,
};
use std::net::IpAddr;

/// What a record needs beyond the session itself.
#[derive(Debug, Clone, Default)]
pub struct RecordContext {
    /// Sensor name written into every record.
    pub sensor: String,
    /// Networks that count as "ours" for the direction field.
    pub local_nets: Vec<IpNet>,
}

impl RecordContext {
    fn is_local(&self, ip: IpAddr) -> bool {
        self.local_nets.iter().any(|n| n.contains(&ip))
    }

    /// Direction of a session from `client` to `server`.
    pub fn direction(&self, client: IpAddr, server: IpAddr) -> Direction {
        match (self.is_local(client), self.is_local(server)) {
            (false, true) => Direction::Inbound,
            (true, false) => Direction::Outbound,
            (true, true) => Direction::Internal,
            (false, false) => Direction::External,
        }
    }
}

/// Builds the record of a session that has ended; its strings and lists move into the record
/// (no copies: the session is dropped afterwards).
pub(super) fn build(
    s: &mut Session,
    reason: EndReason,
    ctx: &RecordContext,
    fingerprints: &mut FingerprintCache,
) -> SessionRecord {
    // Before anything moves out of the session.
    let mode = mode(s);
    let smtp = &mut s.smtp.summary;
    let take = std::mem::take::<String>;
    let mut r = SessionRecord {
        ts_start: Timestamp(s.first_ts),
        ts_end: Timestamp(s.last_ts),
        sensor: ctx.sensor.clone(),
        client_ip: s.client.ip,
        client_port: s.client.port,
        server_ip: s.server.ip,
        server_port: s.server.port,
        vlan: s.vlan,
        direction: ctx.direction(s.client.ip, s.server.ip),
        smtp_banner_host: take(&mut smtp.banner_host),
        ehlo_host: take(&mut smtp.ehlo_host),
        helo_verb: std::mem::take(&mut smtp.helo_verb),
        smtp_capabilities: std::mem::take(&mut smtp.capabilities),
        starttls_offered: smtp.starttls_offered,
        starttls_requested: smtp.starttls_requested,
        starttls_reply: smtp.starttls_reply,
        auth_mechs: std::mem::take(&mut smtp.auth_mechs),
        auth_cleartext: smtp.auth_cleartext,
        auth_cleartext_mech: std::mem::take(&mut smtp.auth_cleartext_mech),
        plaintext_mail_tx: smtp.mail_tx,
        plaintext_rcpt: smtp.rcpt,
        bytes_c2s: s.bytes[0],
        bytes_s2c: s.bytes[1],
        packets_c2s: s.packets[0],
        packets_s2c: s.packets[1],
        gap_bytes: s.streams[0].stats.gap_bytes + s.streams[1].stats.gap_bytes,
        tcp_conflicts: s.streams[0]
            .stats
            .conflicts
            .saturating_add(s.streams[1].stats.conflicts),
        midstream: s.midstream,
        end_reason: reason,
        ..SessionRecord::default()
    };
    if let Some(tls) = s.tls.as_deref_mut() {
        if let Some(ch) = &mut tls.client_hello {
            let fp = fingerprints.client(ch, Transport::Tcp);
            r.ja3 = fp.ja3;
            r.ja3_hash = fp.ja3_hash;
            r.ja4 = fp.ja4;
            r.tls_client_version = ch.legacy_version;
            r.tls_client_max_version = Name::Borrowed(version_name(ch.max_version()));
            r.tls_fallback_scsv = ch.has_fallback_scsv();
            r.tls_client_versions = std::mem::take(&mut ch.versions);
            r.tls_client_ciphers = std::mem::take(&mut ch.ciphers);
            r.tls_client_extensions = std::mem::take(&mut ch.extensions);
            r.tls_client_groups = std::mem::take(&mut ch.groups);
            r.tls_client_sigalgs = std::mem::take(&mut ch.sigalgs);
            r.tls_client_point_formats = std::mem::take(&mut ch.point_formats);
            r.tls_sni = ch.sni.take().unwrap_or_default();
            r.tls_alpn = std::mem::take(&mut ch.alpn);
        }
        if let Some(sh) = &mut tls.server_hello {
            let fp = fingerprints.server(sh);
            r.ja3s = fp.ja3s;
            r.ja3s_hash = fp.ja3s_hash;
            r.tls_version = Name::Borrowed(version_name(sh.version));
            r.tls_version_code = sh.version;
            r.tls_cipher_code = sh.cipher;
            if let Some(cs) = cipher_suite(sh.cipher) {
                r.tls_cipher = Name::Borrowed(cs.name);
                r.tls_cipher_class = Name::Borrowed(cs.class.as_str());
            }
            // After the fingerprint, which reads them; nothing reads them later.
            r.tls_server_extensions = std::mem::take(&mut sh.extensions);
        }
        r.tls_hello_retry = tls.hello_retry;
        r.tls_resumed = tls.is_resumed();
        r.tls_established = tls.is_established();
        if let Some(alert) = tls.alert {
            r.tls_alert = Name::Borrowed(match alert.description {
                Some(d) => alert_name(d),
                None => "encrypted",
            });
            r.tls_alert_by = Name::Borrowed(match alert.by {
                Dir::ToServer => "client",
                Dir::ToClient => "server",
            });
        }
        if let Some(c) = &mut tls.certificate {
            r.cert_subject_cn = take(&mut c.subject_cn);
            r.cert_sans = std::mem::take(&mut c.sans);
            r.cert_issuer = take(&mut c.issuer);
            r.cert_not_before = Some(Timestamp::from_secs_micros(c.not_before, 0));
            r.cert_not_after = Some(Timestamp::from_secs_micros(c.not_after, 0));
            r.cert_key_alg = take(&mut c.key_alg);
            r.cert_key_bits = c.key_bits;
            r.cert_sig_alg = take(&mut c.sig_alg);
            r.cert_sha256 = take(&mut c.sha256);
            r.cert_self_signed = c.self_signed;
        }
        r.cert_chain_len = tls.chain_len;
        r.tls_handshake_us = tls.handshake_micros().unwrap_or(0);
    }
    r.mode = mode;
    r.outcome = outcome(s, &r);
    r
}

fn mode(s: &Session) -> Mode {
    let saw_client_hello = s.tls.as_ref().is_some_and(|t| t.client_hello.is_some());
    match (s.tls.is_some(), s.implicit_tls) {
        (true, true) if saw_client_hello || !s.midstream => Mode::ImplicitTls,
        (true, true) => Mode::Unknown,
        (true, false) => Mode::Starttls,
        (false, _) if s.smtp.looks_like_smtp() => Mode::Plaintext,
        (false, _) if s.layer == Layer::Done && s.smtp.summary.commands > 0 => Mode::Plaintext,
        _ => Mode::Unknown,
    }
}

fn outcome(s: &Session, r: &SessionRecord) -> Outcome {
    let smtp = &s.smtp.summary;
    if r.tls_established {
        return Outcome::Tls;
    }
    if let Some(tls) = s.tls.as_deref() {
        // A ClientHello (or an accepted STARTTLS) that did not end in a handshake.
        if tls.client_hello.is_some() || !s.implicit_tls {
            return Outcome::TlsFailed;
        }
        return Outcome::Incomplete;
    }
    if smtp.starttls_requested && smtp.starttls_reply != 0 && smtp.starttls_reply != 220 {
        return Outcome::StarttlsRefused;
    }
    if r.mode != Mode::Plaintext || smtp.starttls_requested {
        return Outcome::Incomplete;
    }
    match smtp.starttls_offered {
        Some(true) => Outcome::PlaintextOffered,
        Some(false) => Outcome::PlaintextNotOffered,
        None if r.helo_verb == "HELO" => Outcome::PlaintextNotOffered,
        None => Outcome::Incomplete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailtls_parsers::registry::cipher_suites;
    use mailtls_parsers::smtp::codec::KNOWN_WORDS;

    /// The JSON writer copies a borrowed [`Name`] without its escape check: every static
    /// name a record can borrow (here and in the SMTP parser) must be free of the bytes
    /// JSON escapes.
    #[test]
    fn every_borrowed_name_needs_no_json_escape() {
        let mut names: Vec<&str> = vec!["", "encrypted", "client", "server", "EHLO", "HELO"];
        names.extend((0..=u16::MAX).map(version_name));
        names.extend((0..=u8::MAX).map(alert_name));
        for cs in cipher_suites() {
            names.push(cs.name);
            names.push(cs.class.as_str());
        }
        names.extend(KNOWN_WORDS);
        for n in names {
            assert!(
                n.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\'),
                "{n:?}"
            );
        }
    }
}

//! The hand-written encoder against serde_json, the reference, on records built to cover
//! every field, every escape and every address form.

use super::encode_record;
use crate::record::{Direction, EndReason, Mode, Outcome, SessionRecord, Timestamp};

fn same_as_serde(r: &SessionRecord) {
    let mut ours = Vec::new();
    encode_record(r, &mut ours);
    let reference = serde_json::to_vec(r).expect("serde_json encodes every record");
    assert_eq!(
        String::from_utf8_lossy(&ours),
        String::from_utf8_lossy(&reference)
    );
}

/// Every byte value from 0 to 0x7f, then multi-byte characters, U+2028/2029 (which JSON
/// allows unescaped), U+FFFD (what invalid wire bytes become) and a lone quote at the end.
fn nasty() -> String {
    let mut s: String = (0u8..0x80).map(char::from).collect();
    s.push_str("é漢字🙂\u{2028}\u{2029}\u{fffd}\u{7f}\"");
    s
}

fn full_record(text: &str) -> SessionRecord {
    let t = |s: &str| format!("{s}{text}");
    SessionRecord {
        ts_start: Timestamp::from_secs_micros(1_795_383_914, 123_456),
        ts_end: Timestamp::from_secs_micros(1_795_383_915, 7),
        sensor: t("sensor"),
        client_ip: "2001:db8::1".parse().unwrap(),
        client_port: 65535,
        server_ip: "192.0.2.25".parse().unwrap(),
        server_port: 25,
        vlan: 4094,
        direction: Direction::Inbound,
        mode: Mode::Starttls,
        smtp_banner_host: t("mx"),
        ehlo_host: t("client"),
        helo_verb: "EHLO".into(),
        smtp_capabilities: vec![t("PIPELINING").into(), "".into(), t("SIZE").into()],
        starttls_offered: Some(true),
        starttls_requested: true,
        starttls_reply: 220,
        auth_mechs: vec![t("PLAIN").into(), t("LOGIN").into()],
        auth_cleartext: true,
        auth_cleartext_mech: t("PLAIN").into(),
        plaintext_mail_tx: u32::MAX,
        plaintext_rcpt: 3,
        tls_client_version: 0x0303,
        tls_client_versions: vec![0x0304, 0x0303],
        tls_client_ciphers: vec![0x1301, 0x0a0a, 0, u16::MAX],
        tls_client_extensions: vec![0, 10, 11, 13, 43, 51],
        tls_client_groups: vec![29, 23],
        tls_client_sigalgs: vec![0x0403],
        tls_client_point_formats: vec![0, 1, 2, u8::MAX],
        tls_client_max_version: "TLSv1.3".into(),
        tls_sni: t("mx.example"),
        tls_alpn: vec![t("h2"), t("smtp")],
        tls_fallback_scsv: true,
        ja3: t("771,4865"),
        ja3_hash: "0123456789abcdef0123456789abcdef".into(),
        ja3s: t("771,4865,43"),
        ja3s_hash: "fedcba9876543210fedcba9876543210".into(),
        ja4: "t13d1516h2_8daaf6152771_e5627efa2ab1".into(),
        tls_version: "TLSv1.3".into(),
        tls_version_code: 0x0304,
        tls_cipher: "TLS_AES_128_GCM_SHA256".into(),
        tls_cipher_code: 0x1301,
        tls_cipher_class: "recommended".into(),
        tls_server_extensions: vec![43, 51],
        tls_hello_retry: true,
        tls_resumed: true,
        tls_established: true,
        tls_alert: t("handshake_failure").into(),
        tls_alert_by: "server".into(),
        cert_subject_cn: t("cn"),
        cert_sans: vec![t("a.example"), t("192.0.2.1")],
        cert_issuer: t("CN=issuer,O=\"quoted\\\""),
        cert_not_before: Some(Timestamp(0)),
        cert_not_after: Some(Timestamp(253_402_300_799_999_999)),
        cert_key_alg: "RSA".into(),
        cert_key_bits: 4096,
        cert_sig_alg: t("sha256WithRSAEncryption"),
        cert_sha256: "ab".repeat(32),
        cert_self_signed: true,
        cert_chain_len: 3,
        outcome: Outcome::TlsFailed,
        bytes_c2s: u64::MAX,
        bytes_s2c: 0,
        packets_c2s: 1,
        packets_s2c: 2,
        gap_bytes: 10,
        tcp_conflicts: 11,
        midstream: true,
        end_reason: EndReason::InProgress,
        tls_handshake_us: 12_345,
    }
}

#[test]
fn default_record() {
    same_as_serde(&SessionRecord::default());
}

#[test]
fn every_field_set_with_plain_strings() {
    same_as_serde(&full_record(""));
}

#[test]
fn every_escape_in_every_string_field() {
    same_as_serde(&full_record(&nasty()));
    for b in 0u8..0x80 {
        same_as_serde(&full_record(&char::from(b).to_string()));
    }
}

#[test]
fn every_enum_value() {
    let directions = [
        Direction::Inbound,
        Direction::Outbound,
        Direction::Internal,
        Direction::External,
    ];
    let modes = [
        Mode::Starttls,
        Mode::ImplicitTls,
        Mode::Plaintext,
        Mode::Unknown,
    ];
    let outcomes = [
        Outcome::Tls,
        Outcome::TlsFailed,
        Outcome::StarttlsRefused,
        Outcome::PlaintextOffered,
        Outcome::PlaintextNotOffered,
        Outcome::Incomplete,
    ];
    let ends = [
        EndReason::Fin,
        EndReason::Rst,
        EndReason::Idle,
        EndReason::Evicted,
        EndReason::CaptureEnd,
        EndReason::InProgress,
    ];
    for (i, d) in directions.iter().enumerate() {
        for m in modes {
            for (j, o) in outcomes.iter().enumerate() {
                same_as_serde(&SessionRecord {
                    direction: *d,
                    mode: m,
                    outcome: *o,
                    end_reason: ends[(i + j) % ends.len()],
                    starttls_offered: [None, Some(false), Some(true)][j % 3],
                    ..SessionRecord::default()
                });
            }
        }
    }
}

#[test]
fn every_address_form() {
    for ip in [
        "0.0.0.0",
        "255.255.255.255",
        "10.0.0.1",
        // Octets of every width in every position (the encoder writes IPv4 itself).
        "1.22.133.4",
        "100.10.1.0",
        "9.99.199.200",
        "::",
        "::1",
        "::ffff:192.0.2.1",
        "::192.0.2.1",
        "fe80::1",
        "2001:db8:0:0:1:0:0:1",
        "2001:db8::ff00:42:8329",
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "1:0:0:2::3",
    ] {
        same_as_serde(&SessionRecord {
            client_ip: ip.parse().unwrap(),
            server_ip: ip.parse().unwrap(),
            ..SessionRecord::default()
        });
    }
}

#[test]
fn timestamps_outside_the_fast_range() {
    for t in [i64::MIN, -1, 0, 253_402_300_800_000_000, i64::MAX] {
        same_as_serde(&SessionRecord {
            ts_start: Timestamp(t),
            ts_end: Timestamp(t),
            cert_not_before: Some(Timestamp(t)),
            ..SessionRecord::default()
        });
    }
}

#[test]
fn code_lists_of_every_digit_count_and_length() {
    // Every digit count of a u16 and a u8, and lists shorter than, exactly at and past the
    // writer's chunk of values (32), as serde writes them.
    let edges: Vec<u16> = vec![0, 1, 9, 10, 99, 100, 999, 1000, 9999, 10000, 65535];
    for len in [0usize, 1, 2, 31, 32, 33, 64, 65, 100, 300] {
        let codes: Vec<u16> = (0..len).map(|i| edges[i % edges.len()]).collect();
        let bytes: Vec<u8> = (0..len)
            .map(|i| [0u8, 9, 10, 99, 100, 255][i % 6])
            .collect();
        same_as_serde(&SessionRecord {
            tls_client_ciphers: codes.clone(),
            tls_client_sigalgs: codes.iter().rev().copied().collect(),
            tls_server_extensions: codes,
            tls_client_point_formats: bytes,
            ..SessionRecord::default()
        });
    }
}

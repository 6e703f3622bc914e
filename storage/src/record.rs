//! The session record: one row per TCP session on a mail port.
//!
//! Field names are the JSON keys of the JSONL sink and, later, the ClickHouse column
//! names; dashboards and reports refer to them by these names. Strings that come from the
//! wire (banner host, EHLO name, SNI, certificate fields) are stored as valid UTF-8: bytes
//! that are not are replaced by U+FFFD before they get here.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr};

/// "00" to "99", two bytes each: the digits of `n` are at `2 * n`.
static DIGIT_PAIRS: [u8; 200] = {
    let mut t = [0u8; 200];
    let mut n = 0;
    while n < 100 {
        t[2 * n] = b'0' + (n / 10) as u8;
        t[2 * n + 1] = b'0' + (n % 10) as u8;
        n += 1;
    }
    t
};

/// The two decimal digits of `n % 100`, from [`DIGIT_PAIRS`] (timestamps here, integers in
/// the JSON encoder).
#[inline]
pub(crate) fn digit_pair(n: usize) -> [u8; 2] {
    // `n % 100` < 100: the index is in the table.
    let i = (n % 100) * 2;
    [DIGIT_PAIRS[i], DIGIT_PAIRS[i + 1]]
}

/// A point in time in microseconds since the Unix epoch (UTC).
///
/// Serialises as RFC 3339 with exactly six fractional digits, e.g.
/// `2026-11-22T21:45:14.123456Z`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Builds a timestamp from seconds and microseconds, as a pcap header holds them.
    pub fn from_secs_micros(secs: i64, micros: i64) -> Self {
        Timestamp(secs.saturating_mul(1_000_000).saturating_add(micros))
    }

    /// Microseconds since the epoch.
    pub fn micros(self) -> i64 {
        self.0
    }

    /// Renders RFC 3339 UTC with microseconds; years outside 0..=9999 are clamped.
    pub fn to_rfc3339(self) -> String {
        let mut buf = [0u8; 27];
        match self.write_rfc3339(&mut buf) {
            Some(text) => text.to_string(),
            None => self.to_rfc3339_general(),
        }
    }

    /// The fast path of [`Timestamp::to_rfc3339`] for the years 1970..=9999 (every capture):
    /// digits written into `buf` without allocating or going through `time`'s calendar,
    /// which perf showed at 6 % of `mailtls read` when records are written as JSON. Civil
    /// date from days since the epoch after Howard Hinnant's `civil_from_days`.
    pub(crate) fn write_rfc3339(self, buf: &mut [u8; 27]) -> Option<&str> {
        if !self.write_rfc3339_bytes(buf) {
            return None;
        }
        std::str::from_utf8(&buf[..]).ok()
    }

    /// [`Timestamp::write_rfc3339`] as bytes (all ASCII), for writers that take bytes; false
    /// (and `buf` unspecified) outside its years.
    pub(crate) fn write_rfc3339_bytes(self, buf: &mut [u8; 27]) -> bool {
        const MAX_SECS: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
        let secs = self.0.div_euclid(1_000_000);
        if !(0..=MAX_SECS).contains(&secs) {
            return false;
        }
        // Non-negative from here: unsigned arithmetic (no sign fix-ups after each division).
        let secs = secs.unsigned_abs();
        let micros = self.0.rem_euclid(1_000_000).unsigned_abs();
        let (days, sod) = (secs / 86_400, secs % 86_400);
        let z = days + 719_468;
        let era = z / 146_097;
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + u64::from(month <= 2);
        // Two digits at a time from a table: a division by 10 per digit was 400
        // instructions a timestamp (callgrind), two timestamps a record.
        let mut put2 = |at: usize, v: u64| {
            // `v % 100` first: a `u64` does not fit every `usize`.
            buf[at..at + 2].copy_from_slice(&digit_pair((v % 100) as usize));
        };
        put2(0, year / 100);
        put2(2, year);
        put2(5, month);
        put2(8, day);
        put2(11, sod / 3600);
        put2(14, sod / 60 % 60);
        put2(17, sod % 60);
        put2(20, micros / 10_000);
        put2(22, micros / 100);
        put2(24, micros);
        for (at, c) in [
            (4, b'-'),
            (7, b'-'),
            (10, b'T'),
            (13, b':'),
            (16, b':'),
            (19, b'.'),
        ] {
            buf[at] = c;
        }
        buf[26] = b'Z';
        true
    }

    fn to_rfc3339_general(self) -> String {
        let secs = self.0.div_euclid(1_000_000);
        let micros = self.0.rem_euclid(1_000_000);
        let dt = time::OffsetDateTime::from_unix_timestamp(secs)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            dt.year(),
            u8::from(dt.month()),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second(),
            micros
        )
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 27];
        match self.write_rfc3339(&mut buf) {
            Some(text) => s.serialize_str(text),
            None => s.serialize_str(&self.to_rfc3339_general()),
        }
    }
}

impl Timestamp {
    /// Parses an RFC 3339 timestamp (any offset; sub-microsecond digits are truncated).
    pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
        let dt = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .ok()?;
        let micros = dt.unix_timestamp_nanos() / 1_000;
        i64::try_from(micros).ok().map(Timestamp)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Timestamp::parse_rfc3339(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 time: {text:?}")))
    }
}

/// Where the session runs relative to the `--local-net` networks.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, Hash, PartialOrd, Ord,
)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Client outside, server inside: mail coming to us.
    Inbound,
    /// Client inside, server outside: mail we send.
    Outbound,
    /// Both ends inside.
    Internal,
    /// Both ends outside (or no local networks configured).
    #[default]
    External,
}

impl Direction {
    /// The lowercase name used in JSON and ClickHouse.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
            Direction::Internal => "internal",
            Direction::External => "external",
        }
    }
}

/// How the session carried (or did not carry) TLS.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, Hash, PartialOrd, Ord,
)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// SMTP dialogue upgraded with STARTTLS (a TLS ClientHello followed the command).
    Starttls,
    /// TLS from the first byte (port 465 style).
    ImplicitTls,
    /// An SMTP dialogue that never switched to TLS.
    Plaintext,
    /// Not enough seen to tell (no payload, midstream without a recognisable start, non-SMTP bytes).
    #[default]
    Unknown,
}

impl Mode {
    /// The snake_case name used in JSON and ClickHouse.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Starttls => "starttls",
            Mode::ImplicitTls => "implicit_tls",
            Mode::Plaintext => "plaintext",
            Mode::Unknown => "unknown",
        }
    }
}

/// The one-word verdict on a session, in order of precedence.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, Hash, PartialOrd, Ord,
)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A TLS handshake completed.
    Tls,
    /// A ClientHello was sent but the handshake did not complete (alert, reset, silence).
    TlsFailed,
    /// The client asked for STARTTLS and the server answered with something other than 220.
    StarttlsRefused,
    /// The server offered STARTTLS, the client did not use it.
    PlaintextOffered,
    /// The server did not offer STARTTLS (or it was stripped) and the session went on in clear.
    PlaintextNotOffered,
    /// Too little was seen to say.
    #[default]
    Incomplete,
}

impl Outcome {
    /// The snake_case name used in JSON and ClickHouse.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Tls => "tls",
            Outcome::TlsFailed => "tls_failed",
            Outcome::StarttlsRefused => "starttls_refused",
            Outcome::PlaintextOffered => "plaintext_offered",
            Outcome::PlaintextNotOffered => "plaintext_not_offered",
            Outcome::Incomplete => "incomplete",
        }
    }
}

/// Why the sensor stopped following a session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// Both sides sent FIN.
    Fin,
    /// A RST was seen.
    Rst,
    /// No packet for the idle timeout.
    Idle,
    /// The capture ended (or the sensor stopped) with the session still open.
    #[default]
    CaptureEnd,
    /// The flow table was full and this flow was the least recently seen.
    Evicted,
    /// Live capture: the handshake (or the clear-text dialogue) was over and the connection
    /// still open after the early-emission delay; the record was written then, with the
    /// counters and `ts_end` of that moment, and is not written again when it closes.
    InProgress,
}

impl EndReason {
    /// The snake_case name used in JSON and ClickHouse.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Fin => "fin",
            EndReason::Rst => "rst",
            EndReason::Idle => "idle",
            EndReason::CaptureEnd => "capture_end",
            EndReason::Evicted => "evicted",
            EndReason::InProgress => "in_progress",
        }
    }
}

/// A string field whose value is nearly always one of a fixed set of names (registry names
/// of versions, cipher suites and alerts; SMTP keywords and SASL mechanisms): the sensor
/// borrows the static name instead of allocating a copy per record, and anything else
/// (unknown words, records read back from JSON) is owned. It serialises as a plain string.
pub type Name = Cow<'static, str>;

/// One SMTP session as the sensor saw it. Every field has a neutral default (empty string,
/// 0, false, empty array) meaning "not seen"; `starttls_offered` is the one tri-state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct SessionRecord {
    /// Time of the first packet of the session.
    pub ts_start: Timestamp,
    /// Time of the last packet of the session.
    pub ts_end: Timestamp,
    /// Name of the sensor that saw the session (`--sensor`, default: host name).
    pub sensor: String,
    /// Address of the side that opened the connection (or, midstream, the side not on a mail port).
    pub client_ip: IpAddr,
    /// Client TCP port.
    pub client_port: u16,
    /// Address of the mail server side.
    pub server_ip: IpAddr,
    /// Server TCP port (25, 587, 465 or a `--ports` addition).
    pub server_port: u16,
    /// Outermost 802.1Q VLAN id, 0 when untagged.
    pub vlan: u16,
    /// Inbound, outbound, internal or external, from `--local-net`.
    pub direction: Direction,
    /// starttls, implicit_tls, plaintext or unknown.
    pub mode: Mode,
    /// Host name from the server's 220 greeting (first word after the code).
    pub smtp_banner_host: String,
    /// Argument of the client's EHLO/HELO.
    pub ehlo_host: String,
    /// "EHLO" or "HELO" (the last one the client sent in clear), empty when none.
    pub helo_verb: Name,
    /// Capability keywords of the server's EHLO reply, upper-cased, in order (clear-text only).
    pub smtp_capabilities: Vec<Name>,
    /// Whether the EHLO reply advertised STARTTLS; null when no EHLO reply was seen.
    pub starttls_offered: Option<bool>,
    /// Whether the client sent STARTTLS.
    pub starttls_requested: bool,
    /// The server's reply code to STARTTLS, 0 when none was seen.
    pub starttls_reply: u16,
    /// SASL mechanisms advertised in the EHLO reply (before TLS), upper-cased.
    pub auth_mechs: Vec<Name>,
    /// Whether the client started AUTH before TLS. Only the mechanism is kept, never the data.
    pub auth_cleartext: bool,
    /// The SASL mechanism of that clear-text AUTH, upper-cased.
    pub auth_cleartext_mech: Name,
    /// MAIL FROM commands sent in clear.
    pub plaintext_mail_tx: u32,
    /// RCPT TO commands sent in clear.
    pub plaintext_rcpt: u32,
    /// ClientHello legacy_version (e.g. 0x0303 = 771), 0 when no ClientHello was seen.
    pub tls_client_version: u16,
    /// supported_versions offered by the client, GREASE removed, in order.
    pub tls_client_versions: Vec<u16>,
    /// Cipher suites offered by the client, in order, GREASE included as sent.
    pub tls_client_ciphers: Vec<u16>,
    /// Extension types of the ClientHello, in order, GREASE included as sent.
    pub tls_client_extensions: Vec<u16>,
    /// supported_groups offered by the client, in order.
    pub tls_client_groups: Vec<u16>,
    /// signature_algorithms offered by the client, in order.
    pub tls_client_sigalgs: Vec<u16>,
    /// ec_point_formats offered by the client, in order.
    pub tls_client_point_formats: Vec<u8>,
    /// Best version the client offered ("TLSv1.3", "TLSv1.2", ... "SSLv3"), empty when none.
    pub tls_client_max_version: Name,
    /// server_name from the ClientHello.
    pub tls_sni: String,
    /// ALPN protocols offered by the client, in order.
    pub tls_alpn: Vec<String>,
    /// Whether the client offered TLS_FALLBACK_SCSV (0x5600).
    pub tls_fallback_scsv: bool,
    /// JA3 string of the ClientHello.
    pub ja3: String,
    /// MD5 of `ja3`, lowercase hex.
    pub ja3_hash: String,
    /// JA3S string of the ServerHello.
    pub ja3s: String,
    /// MD5 of `ja3s`, lowercase hex.
    pub ja3s_hash: String,
    /// JA4 of the ClientHello.
    pub ja4: String,
    /// Negotiated version ("SSLv3" ... "TLSv1.3"), empty when no ServerHello was seen.
    pub tls_version: Name,
    /// Negotiated version code (supported_versions for TLS 1.3), 0 when none.
    pub tls_version_code: u16,
    /// IANA name of the negotiated cipher suite, empty when none.
    pub tls_cipher: Name,
    /// Negotiated cipher suite code.
    pub tls_cipher_code: u16,
    /// Strength class of the negotiated suite: insecure, weak, secure, recommended (ciphersuite.info).
    pub tls_cipher_class: Name,
    /// Extension types of the ServerHello, in order.
    pub tls_server_extensions: Vec<u16>,
    /// Whether the server answered with a HelloRetryRequest.
    pub tls_hello_retry: bool,
    /// Whether the session was resumed (session id, ticket or PSK).
    pub tls_resumed: bool,
    /// Whether the TLS handshake completed.
    pub tls_established: bool,
    /// Description of the first alert seen ("handshake_failure", ...; "encrypted" when unreadable).
    pub tls_alert: Name,
    /// Who sent that alert: "client", "server" or empty.
    pub tls_alert_by: Name,
    /// Leaf certificate subject CN (TLS <= 1.2 only; TLS 1.3 certificates are encrypted).
    pub cert_subject_cn: String,
    /// Leaf certificate DNS and IP subjectAltNames.
    pub cert_sans: Vec<String>,
    /// Leaf certificate issuer, RFC 4514 string.
    pub cert_issuer: String,
    /// Leaf certificate notBefore.
    pub cert_not_before: Option<Timestamp>,
    /// Leaf certificate notAfter.
    pub cert_not_after: Option<Timestamp>,
    /// Leaf public key algorithm: "RSA", "EC", "Ed25519", "DSA", ...
    pub cert_key_alg: String,
    /// Leaf public key size in bits.
    pub cert_key_bits: u32,
    /// Leaf signature algorithm name ("sha256WithRSAEncryption", ...).
    pub cert_sig_alg: String,
    /// SHA-256 of the leaf certificate DER, lowercase hex.
    pub cert_sha256: String,
    /// Whether the leaf's issuer equals its subject.
    pub cert_self_signed: bool,
    /// Number of certificates the server sent.
    pub cert_chain_len: u32,
    /// tls, tls_failed, starttls_refused, plaintext_offered, plaintext_not_offered, incomplete.
    pub outcome: Outcome,
    /// TCP payload bytes client to server.
    pub bytes_c2s: u64,
    /// TCP payload bytes server to client.
    pub bytes_s2c: u64,
    /// Packets client to server.
    pub packets_c2s: u64,
    /// Packets server to client.
    pub packets_s2c: u64,
    /// Payload bytes missing from the capture (both directions).
    pub gap_bytes: u64,
    /// Overlapping segments whose bytes differed from the first copy.
    pub tcp_conflicts: u32,
    /// Whether the capture started in the middle of the session (no SYN seen).
    pub midstream: bool,
    /// Why the sensor stopped following the session.
    pub end_reason: EndReason,
    /// Microseconds from ClientHello to handshake completion, 0 when not completed.
    pub tls_handshake_us: u64,
}

impl Default for SessionRecord {
    fn default() -> Self {
        let unspecified = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        SessionRecord {
            ts_start: Timestamp::default(),
            ts_end: Timestamp::default(),
            sensor: String::new(),
            client_ip: unspecified,
            client_port: 0,
            server_ip: unspecified,
            server_port: 0,
            vlan: 0,
            direction: Direction::default(),
            mode: Mode::default(),
            smtp_banner_host: String::new(),
            ehlo_host: String::new(),
            helo_verb: Name::Borrowed(""),
            smtp_capabilities: Vec::new(),
            starttls_offered: None,
            starttls_requested: false,
            starttls_reply: 0,
            auth_mechs: Vec::new(),
            auth_cleartext: false,
            auth_cleartext_mech: Name::Borrowed(""),
            plaintext_mail_tx: 0,
            plaintext_rcpt: 0,
            tls_client_version: 0,
            tls_client_versions: Vec::new(),
            tls_client_ciphers: Vec::new(),
            tls_client_extensions: Vec::new(),
            tls_client_groups: Vec::new(),
            tls_client_sigalgs: Vec::new(),
            tls_client_point_formats: Vec::new(),
            tls_client_max_version: Name::Borrowed(""),
            tls_sni: String::new(),
            tls_alpn: Vec::new(),
            tls_fallback_scsv: false,
            ja3: String::new(),
            ja3_hash: String::new(),
            ja3s: String::new(),
            ja3s_hash: String::new(),
            ja4: String::new(),
            tls_version: Name::Borrowed(""),
            tls_version_code: 0,
            tls_cipher: Name::Borrowed(""),
            tls_cipher_code: 0,
            tls_cipher_class: Name::Borrowed(""),
            tls_server_extensions: Vec::new(),
            tls_hello_retry: false,
            tls_resumed: false,
            tls_established: false,
            tls_alert: Name::Borrowed(""),
            tls_alert_by: Name::Borrowed(""),
            cert_subject_cn: String::new(),
            cert_sans: Vec::new(),
            cert_issuer: String::new(),
            cert_not_before: None,
            cert_not_after: None,
            cert_key_alg: String::new(),
            cert_key_bits: 0,
            cert_sig_alg: String::new(),
            cert_sha256: String::new(),
            cert_self_signed: false,
            cert_chain_len: 0,
            outcome: Outcome::default(),
            bytes_c2s: 0,
            bytes_s2c: 0,
            packets_c2s: 0,
            packets_s2c: 0,
            gap_bytes: 0,
            tcp_conflicts: 0,
            midstream: false,
            end_reason: EndReason::default(),
            tls_handshake_us: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_renders_rfc3339_with_micros() {
        let ts = Timestamp::from_secs_micros(1_795_383_914, 7);
        assert_eq!(ts.to_rfc3339(), "2026-11-22T21:45:14.000007Z");
        assert_eq!(Timestamp(0).to_rfc3339(), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn fast_rfc3339_equals_the_calendar_of_time() {
        // Every day boundary, leap days and centuries included, over 1970..=9999, plus
        // a stride of odd instants, and the ends of the range.
        let mut instants: Vec<i64> = (0..2_932_897i64)
            .step_by(7)
            .map(|d| d * 86_400_000_000 + (d % 86_400) * 1_000_003)
            .collect();
        instants.extend([0, 951_782_400_000_000, 4_107_542_399_999_999]);
        instants.extend([
            253_402_300_799_999_999,
            253_402_300_800_000_000,
            -1,
            i64::MIN,
        ]);
        for t in instants {
            let ts = Timestamp(t);
            let mut buf = [0u8; 27];
            if let Some(fast) = ts.write_rfc3339(&mut buf) {
                assert_eq!(fast, ts.to_rfc3339_general(), "{t}");
            }
        }
    }

    #[test]
    fn json_round_trip() {
        let r = SessionRecord {
            ts_start: Timestamp::from_secs_micros(1_795_383_914, 123_456),
            tls_client_ciphers: vec![0x1301, 0x0a0a],
            starttls_offered: Some(true),
            cert_not_after: Some(Timestamp(0)),
            ..SessionRecord::default()
        };
        let text = serde_json::to_string(&r).unwrap();
        let back: SessionRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn starttls_offered_is_null_when_unknown() {
        let json = serde_json::to_value(SessionRecord::default()).unwrap();
        assert!(json["starttls_offered"].is_null());
        assert_eq!(json["mode"], "unknown");
        assert_eq!(json["outcome"], "incomplete");
    }
}

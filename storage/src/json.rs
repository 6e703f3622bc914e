//! JSON encoding of a [`SessionRecord`] for the JSONL sink, byte for byte what
//! `serde_json::to_writer` writes for the same record (field order, escaping, `null`s).
//!
//! Written by hand because it is the sink stage's hot path: serde_json escapes every one of
//! the ~70 constant keys of every record and calls through the generic serializer per
//! value; on all-mail traffic (1.9 KB of JSON a session) that was 3.5 µs a record, more than
//! the rest of the sink stage. Here the keys are constant byte strings, integers go through
//! `itoa` and strings are copied in runs between the few bytes JSON must escape. The
//! serde derive stays the reference: `tests` compare both encoders on real and hostile
//! records, and the `pipeline` fuzz target compares them on every record it makes.

use crate::record::{digit_pair, Name, SessionRecord, Timestamp};
use std::borrow::Cow;
use std::net::IpAddr;

/// `,"name":` as one constant (the names are ASCII identifiers: nothing to escape), so a
/// key costs one copy.
macro_rules! key {
    ($w:ident, $name:literal) => {
        $w.raw(concat!(",\"", $name, "\":").as_bytes())
    };
}

/// A field whose value is empty (an empty string or list: most TLS and certificate fields
/// of a clear-text session) is one constant copy, key and value together; otherwise the key,
/// then `$write` of the value.
macro_rules! unless_empty {
    ($w:ident, $name:literal, $v:expr, $empty:literal, $write:ident) => {{
        let v = $v;
        if v.is_empty() {
            $w.raw(concat!(",\"", $name, "\":", $empty).as_bytes())
        } else {
            key!($w, $name);
            $w.$write(v)
        }
    }};
}

/// A string field (see `unless_empty`).
macro_rules! str_field {
    ($w:ident, $name:literal, $v:expr) => {
        unless_empty!($w, $name, $v, "\"\"", str)
    };
}

/// A list of strings (see `unless_empty`).
macro_rules! strs_field {
    ($w:ident, $name:literal, $v:expr) => {
        unless_empty!($w, $name, $v, "[]", strs)
    };
}

/// A [`Name`] field (see `unless_empty`).
macro_rules! name_field {
    ($w:ident, $name:literal, $v:expr) => {
        unless_empty!($w, $name, $v, "\"\"", name)
    };
}

/// A list of [`Name`]s (see `unless_empty`).
macro_rules! names_field {
    ($w:ident, $name:literal, $v:expr) => {
        unless_empty!($w, $name, $v, "[]", names)
    };
}

/// A list of integers (see `unless_empty`).
macro_rules! uints_field {
    ($w:ident, $name:literal, $v:expr) => {
        unless_empty!($w, $name, $v, "[]", uints)
    };
}

/// A boolean: one constant copy either way.
macro_rules! bool_field {
    ($w:ident, $name:literal, $v:expr) => {{
        if $v {
            $w.raw(concat!(",\"", $name, "\":true").as_bytes())
        } else {
            $w.raw(concat!(",\"", $name, "\":false").as_bytes())
        }
    }};
}

/// An unsigned integer; zero is one constant copy.
macro_rules! uint_field {
    ($w:ident, $name:literal, $v:expr) => {{
        let v = $v;
        if v == 0 {
            $w.raw(concat!(",\"", $name, "\":0").as_bytes())
        } else {
            key!($w, $name);
            $w.uint(v)
        }
    }};
}

/// Appends `r` as one JSON object (no newline) to `out`.
pub fn encode_record(r: &SessionRecord, out: &mut Vec<u8>) {
    let mut w = Writer { out };
    w.out.push(b'{');
    w.raw(b"\"ts_start\":");
    w.timestamp(r.ts_start);
    key!(w, "ts_end");
    w.timestamp(r.ts_end);
    str_field!(w, "sensor", &r.sensor);
    key!(w, "client_ip");
    w.ip(r.client_ip);
    uint_field!(w, "client_port", r.client_port);
    key!(w, "server_ip");
    w.ip(r.server_ip);
    uint_field!(w, "server_port", r.server_port);
    uint_field!(w, "vlan", r.vlan);
    key!(w, "direction");
    w.plain(r.direction.as_str());
    key!(w, "mode");
    w.plain(r.mode.as_str());
    str_field!(w, "smtp_banner_host", &r.smtp_banner_host);
    str_field!(w, "ehlo_host", &r.ehlo_host);
    name_field!(w, "helo_verb", &r.helo_verb);
    names_field!(w, "smtp_capabilities", &r.smtp_capabilities);
    key!(w, "starttls_offered");
    match r.starttls_offered {
        Some(b) => w.bool(b),
        None => w.raw(b"null"),
    }
    bool_field!(w, "starttls_requested", r.starttls_requested);
    uint_field!(w, "starttls_reply", r.starttls_reply);
    names_field!(w, "auth_mechs", &r.auth_mechs);
    bool_field!(w, "auth_cleartext", r.auth_cleartext);
    name_field!(w, "auth_cleartext_mech", &r.auth_cleartext_mech);
    uint_field!(w, "plaintext_mail_tx", r.plaintext_mail_tx);
    uint_field!(w, "plaintext_rcpt", r.plaintext_rcpt);
    uint_field!(w, "tls_client_version", r.tls_client_version);
    uints_field!(w, "tls_client_versions", &r.tls_client_versions);
    uints_field!(w, "tls_client_ciphers", &r.tls_client_ciphers);
    uints_field!(w, "tls_client_extensions", &r.tls_client_extensions);
    uints_field!(w, "tls_client_groups", &r.tls_client_groups);
    uints_field!(w, "tls_client_sigalgs", &r.tls_client_sigalgs);
    uints_field!(w, "tls_client_point_formats", &r.tls_client_point_formats);
    name_field!(w, "tls_client_max_version", &r.tls_client_max_version);
    str_field!(w, "tls_sni", &r.tls_sni);
    strs_field!(w, "tls_alpn", &r.tls_alpn);
    bool_field!(w, "tls_fallback_scsv", r.tls_fallback_scsv);
    str_field!(w, "ja3", &r.ja3);
    str_field!(w, "ja3_hash", &r.ja3_hash);
    str_field!(w, "ja3s", &r.ja3s);
    str_field!(w, "ja3s_hash", &r.ja3s_hash);
    str_field!(w, "ja4", &r.ja4);
    name_field!(w, "tls_version", &r.tls_version);
    uint_field!(w, "tls_version_code", r.tls_version_code);
    name_field!(w, "tls_cipher", &r.tls_cipher);
    uint_field!(w, "tls_cipher_code", r.tls_cipher_code);
    name_field!(w, "tls_cipher_class", &r.tls_cipher_class);
    uints_field!(w, "tls_server_extensions", &r.tls_server_extensions);
    bool_field!(w, "tls_hello_retry", r.tls_hello_retry);
    bool_field!(w, "tls_resumed", r.tls_resumed);
    bool_field!(w, "tls_established", r.tls_established);
    name_field!(w, "tls_alert", &r.tls_alert);
    name_field!(w, "tls_alert_by", &r.tls_alert_by);
    str_field!(w, "cert_subject_cn", &r.cert_subject_cn);
    strs_field!(w, "cert_sans", &r.cert_sans);
    str_field!(w, "cert_issuer", &r.cert_issuer);
    key!(w, "cert_not_before");
    w.opt_timestamp(r.cert_not_before);
    key!(w, "cert_not_after");
    w.opt_timestamp(r.cert_not_after);
    str_field!(w, "cert_key_alg", &r.cert_key_alg);
    uint_field!(w, "cert_key_bits", r.cert_key_bits);
    str_field!(w, "cert_sig_alg", &r.cert_sig_alg);
    str_field!(w, "cert_sha256", &r.cert_sha256);
    bool_field!(w, "cert_self_signed", r.cert_self_signed);
    uint_field!(w, "cert_chain_len", r.cert_chain_len);
    key!(w, "outcome");
    w.plain(r.outcome.as_str());
    uint_field!(w, "bytes_c2s", r.bytes_c2s);
    uint_field!(w, "bytes_s2c", r.bytes_s2c);
    uint_field!(w, "packets_c2s", r.packets_c2s);
    uint_field!(w, "packets_s2c", r.packets_s2c);
    uint_field!(w, "gap_bytes", r.gap_bytes);
    uint_field!(w, "tcp_conflicts", r.tcp_conflicts);
    bool_field!(w, "midstream", r.midstream);
    key!(w, "end_reason");
    w.plain(r.end_reason.as_str());
    uint_field!(w, "tls_handshake_us", r.tls_handshake_us);
    w.out.push(b'}');
}

struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl Writer<'_> {
    #[inline]
    fn raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    #[inline]
    fn bool(&mut self, b: bool) {
        self.raw(if b { b"true" } else { b"false" });
    }

    #[inline]
    fn uint<T: itoa::Integer>(&mut self, v: T) {
        let mut buf = itoa::Buffer::new();
        self.out.extend_from_slice(buf.format(v).as_bytes());
    }

    /// A list of protocol codes (u8/u16): written into a stack buffer and copied out once
    /// per [`CODES_CHUNK`] values. Through `itoa` each value was a library `memcpy` of one
    /// to five bytes plus a capacity check for its comma (callgrind: 500 instructions a
    /// list on all-mail traffic, a fifth of the encoder).
    fn uints<T: Copy + Into<u16>>(&mut self, vs: &[T]) {
        // Five digits and a comma per value, the brackets.
        let mut buf = [0u8; CODES_CHUNK * 6 + 2];
        buf[0] = b'[';
        let mut n = 1;
        for (i, v) in vs.iter().enumerate() {
            if i > 0 {
                buf[n] = b',';
                n += 1;
            }
            n += write_u16(&mut buf[n..n + 5], (*v).into());
            if i % CODES_CHUNK == CODES_CHUNK - 1 {
                self.out.extend_from_slice(&buf[..n]);
                n = 0;
            }
        }
        buf[n] = b']';
        self.out.extend_from_slice(&buf[..=n]);
    }

    /// A string known to need no escaping (enum names).
    #[inline]
    fn plain(&mut self, s: &'static str) {
        self.out.push(b'"');
        self.out.extend_from_slice(s.as_bytes());
        self.out.push(b'"');
    }

    /// A string from the wire: quoted, with `"`, `\` and control characters escaped as
    /// serde_json escapes them (`\b \t \n \f \r`, else `\u00XX`); everything else, non-ASCII
    /// included, is copied as it is (the string is valid UTF-8 already).
    fn str(&mut self, s: &str) {
        let bytes = s.as_bytes();
        self.out.reserve(bytes.len() + 2);
        self.out.push(b'"');
        if !any_needs_escape(bytes) {
            // Nearly every string: one copy.
            self.out.extend_from_slice(bytes);
            self.out.push(b'"');
            return;
        }
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let esc = ESCAPE[usize::from(b)];
            if esc == 0 {
                continue;
            }
            self.out.extend_from_slice(&bytes[start..i]);
            start = i + 1;
            match esc {
                b'u' => {
                    self.out.extend_from_slice(b"\\u00");
                    self.out.push(HEX[usize::from(b >> 4)]);
                    self.out.push(HEX[usize::from(b & 0xf)]);
                }
                c => self.out.extend_from_slice(&[b'\\', c]),
            }
        }
        self.out.extend_from_slice(&bytes[start..]);
        self.out.push(b'"');
    }

    /// A [`Name`]. A borrowed one is one of the sensor's static names (registry names of
    /// versions, cipher suites and alerts, the SMTP keyword table, a few fixed words: a test
    /// of the sensor checks every one), none of which has a byte JSON escapes, so it is
    /// copied without the escape check, which cost more than the copy for these short
    /// words. An owned one (an unknown word, a record read back) is a wire string.
    fn name(&mut self, n: &Name) {
        match n {
            Cow::Borrowed(s) => {
                debug_assert!(!any_needs_escape(s.as_bytes()), "{s:?}");
                self.plain(s);
            }
            Cow::Owned(s) => self.str(s),
        }
    }

    fn names(&mut self, ns: &[Name]) {
        self.out.push(b'[');
        for (i, n) in ns.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            self.name(n);
        }
        self.out.push(b']');
    }

    fn strs<S: AsRef<str>>(&mut self, vs: &[S]) {
        self.out.push(b'[');
        for (i, v) in vs.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            self.str(v.as_ref());
        }
        self.out.push(b']');
    }

    fn ip(&mut self, ip: IpAddr) {
        self.out.push(b'"');
        match ip {
            // Dotted quad without core::fmt, copied out once.
            IpAddr::V4(a) => {
                let mut buf = [0u8; 15];
                let mut n = 0;
                for (i, o) in a.octets().iter().enumerate() {
                    if i > 0 {
                        buf[n] = b'.';
                        n += 1;
                    }
                    n += write_u16(&mut buf[n..n + 3], u16::from(*o));
                }
                self.out.extend_from_slice(&buf[..n]);
            }
            // IPv6 text form (RFC 5952 zero compression, mapped addresses) as std writes it,
            // which is what serde writes too.
            IpAddr::V6(a) => {
                use std::io::Write;
                let _ = write!(self.out, "{a}");
            }
        }
        self.out.push(b'"');
    }

    fn timestamp(&mut self, t: Timestamp) {
        let mut buf = [0u8; 27];
        self.out.push(b'"');
        if t.write_rfc3339_bytes(&mut buf) {
            self.out.extend_from_slice(&buf);
        } else {
            self.str_unquoted_plain(&t.to_rfc3339());
        }
        self.out.push(b'"');
    }

    fn str_unquoted_plain(&mut self, s: &str) {
        self.out.extend_from_slice(s.as_bytes());
    }

    fn opt_timestamp(&mut self, t: Option<Timestamp>) {
        match t {
            Some(t) => self.timestamp(t),
            None => self.raw(b"null"),
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Values of a code list written between two copies out of [`Writer::uints`]' buffer.
const CODES_CHUNK: usize = 32;

/// Writes `v` in decimal at the start of `out` (which holds at least as many bytes as `v`
/// has digits: 3 for a u8, 5 for any u16); returns the number of digits. Two digits at a
/// time from the timestamps' table ([`digit_pair`]), one branch per digit count: a
/// digit-by-digit loop cost as much as `itoa` and its copy together.
#[inline]
fn write_u16(out: &mut [u8], v: u16) -> usize {
    // The last two digits of `p` (`digit_pair` takes `p % 100`).
    let pair = |p: u16| digit_pair(usize::from(p));
    let digit = |d: u16| b'0' + d as u8;
    match v {
        0..=9 => {
            out[0] = digit(v);
            1
        }
        10..=99 => {
            out[..2].copy_from_slice(&pair(v));
            2
        }
        100..=999 => {
            out[0] = digit(v / 100);
            out[1..3].copy_from_slice(&pair(v));
            3
        }
        1000..=9999 => {
            out[..2].copy_from_slice(&pair(v / 100));
            out[2..4].copy_from_slice(&pair(v));
            4
        }
        _ => {
            out[0] = digit(v / 10000);
            out[1..3].copy_from_slice(&pair(v / 100));
            out[3..5].copy_from_slice(&pair(v));
            5
        }
    }
}

/// Whether any byte of `bytes` is a control character, `"` or `\\`. Without an early exit,
/// so that it compiles to 16-byte vector compares (a third of the instructions of the
/// eight-bytes-at-a-time test it replaced); only strings it flags go through the escaping
/// loop of [`Writer::str`].
#[inline]
fn any_needs_escape(bytes: &[u8]) -> bool {
    bytes.iter().fold(false, |any, &b| {
        any | (b < 0x20) | (b == b'"') | (b == b'\\')
    })
}

/// Per byte: 0 = copy as is; `u` = `\u00XX`; otherwise the letter after the backslash.
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

#[cfg(test)]
mod tests;

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

use crate::record::{SessionRecord, Timestamp};
use std::net::IpAddr;

/// `,"name":` as one constant (the names are ASCII identifiers: nothing to escape), so a
/// key costs one copy.
macro_rules! key {
    ($w:ident, $name:literal) => {
        $w.raw(concat!(",\"", $name, "\":").as_bytes())
    };
}

/// Appends `r` as one JSON object (no newline) to `out`.
pub fn encode_record(r: &SessionRecord, out: &mut Vec<u8>) {
    let mut w = Writer { out };
    w.out.push(b'{');
    w.raw(b"\"ts_start\":");
    w.timestamp(r.ts_start);
    key!(w, "ts_end");
    w.timestamp(r.ts_end);
    key!(w, "sensor");
    w.str(&r.sensor);
    key!(w, "client_ip");
    w.ip(r.client_ip);
    key!(w, "client_port");
    w.uint(r.client_port);
    key!(w, "server_ip");
    w.ip(r.server_ip);
    key!(w, "server_port");
    w.uint(r.server_port);
    key!(w, "vlan");
    w.uint(r.vlan);
    key!(w, "direction");
    w.plain(r.direction.as_str());
    key!(w, "mode");
    w.plain(r.mode.as_str());
    key!(w, "smtp_banner_host");
    w.str(&r.smtp_banner_host);
    key!(w, "ehlo_host");
    w.str(&r.ehlo_host);
    key!(w, "helo_verb");
    w.str(&r.helo_verb);
    key!(w, "smtp_capabilities");
    w.strs(&r.smtp_capabilities);
    key!(w, "starttls_offered");
    match r.starttls_offered {
        Some(b) => w.bool(b),
        None => w.raw(b"null"),
    }
    key!(w, "starttls_requested");
    w.bool(r.starttls_requested);
    key!(w, "starttls_reply");
    w.uint(r.starttls_reply);
    key!(w, "auth_mechs");
    w.strs(&r.auth_mechs);
    key!(w, "auth_cleartext");
    w.bool(r.auth_cleartext);
    key!(w, "auth_cleartext_mech");
    w.str(&r.auth_cleartext_mech);
    key!(w, "plaintext_mail_tx");
    w.uint(r.plaintext_mail_tx);
    key!(w, "plaintext_rcpt");
    w.uint(r.plaintext_rcpt);
    key!(w, "tls_client_version");
    w.uint(r.tls_client_version);
    key!(w, "tls_client_versions");
    w.uints(&r.tls_client_versions);
    key!(w, "tls_client_ciphers");
    w.uints(&r.tls_client_ciphers);
    key!(w, "tls_client_extensions");
    w.uints(&r.tls_client_extensions);
    key!(w, "tls_client_groups");
    w.uints(&r.tls_client_groups);
    key!(w, "tls_client_sigalgs");
    w.uints(&r.tls_client_sigalgs);
    key!(w, "tls_client_point_formats");
    w.uints(&r.tls_client_point_formats);
    key!(w, "tls_client_max_version");
    w.str(&r.tls_client_max_version);
    key!(w, "tls_sni");
    w.str(&r.tls_sni);
    key!(w, "tls_alpn");
    w.strs(&r.tls_alpn);
    key!(w, "tls_fallback_scsv");
    w.bool(r.tls_fallback_scsv);
    key!(w, "ja3");
    w.str(&r.ja3);
    key!(w, "ja3_hash");
    w.str(&r.ja3_hash);
    key!(w, "ja3s");
    w.str(&r.ja3s);
    key!(w, "ja3s_hash");
    w.str(&r.ja3s_hash);
    key!(w, "ja4");
    w.str(&r.ja4);
    key!(w, "tls_version");
    w.str(&r.tls_version);
    key!(w, "tls_version_code");
    w.uint(r.tls_version_code);
    key!(w, "tls_cipher");
    w.str(&r.tls_cipher);
    key!(w, "tls_cipher_code");
    w.uint(r.tls_cipher_code);
    key!(w, "tls_cipher_class");
    w.str(&r.tls_cipher_class);
    key!(w, "tls_server_extensions");
    w.uints(&r.tls_server_extensions);
    key!(w, "tls_hello_retry");
    w.bool(r.tls_hello_retry);
    key!(w, "tls_resumed");
    w.bool(r.tls_resumed);
    key!(w, "tls_established");
    w.bool(r.tls_established);
    key!(w, "tls_alert");
    w.str(&r.tls_alert);
    key!(w, "tls_alert_by");
    w.str(&r.tls_alert_by);
    key!(w, "cert_subject_cn");
    w.str(&r.cert_subject_cn);
    key!(w, "cert_sans");
    w.strs(&r.cert_sans);
    key!(w, "cert_issuer");
    w.str(&r.cert_issuer);
    key!(w, "cert_not_before");
    w.opt_timestamp(r.cert_not_before);
    key!(w, "cert_not_after");
    w.opt_timestamp(r.cert_not_after);
    key!(w, "cert_key_alg");
    w.str(&r.cert_key_alg);
    key!(w, "cert_key_bits");
    w.uint(r.cert_key_bits);
    key!(w, "cert_sig_alg");
    w.str(&r.cert_sig_alg);
    key!(w, "cert_sha256");
    w.str(&r.cert_sha256);
    key!(w, "cert_self_signed");
    w.bool(r.cert_self_signed);
    key!(w, "cert_chain_len");
    w.uint(r.cert_chain_len);
    key!(w, "outcome");
    w.plain(r.outcome.as_str());
    key!(w, "bytes_c2s");
    w.uint(r.bytes_c2s);
    key!(w, "bytes_s2c");
    w.uint(r.bytes_s2c);
    key!(w, "packets_c2s");
    w.uint(r.packets_c2s);
    key!(w, "packets_s2c");
    w.uint(r.packets_s2c);
    key!(w, "gap_bytes");
    w.uint(r.gap_bytes);
    key!(w, "tcp_conflicts");
    w.uint(r.tcp_conflicts);
    key!(w, "midstream");
    w.bool(r.midstream);
    key!(w, "end_reason");
    w.plain(r.end_reason.as_str());
    key!(w, "tls_handshake_us");
    w.uint(r.tls_handshake_us);
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

    fn uints<T: itoa::Integer + Copy>(&mut self, vs: &[T]) {
        self.out.push(b'[');
        let mut buf = itoa::Buffer::new();
        for (i, v) in vs.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            self.out.extend_from_slice(buf.format(*v).as_bytes());
        }
        self.out.push(b']');
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
        let mut start = 0;
        let mut i = 0;
        while i < bytes.len() {
            // Eight bytes at a time while none of them needs escaping (the common case: host
            // names, JA3 strings, certificate names).
            if let Some(chunk) = bytes.get(i..i + 8) {
                let mut word = [0u8; 8];
                word.copy_from_slice(chunk);
                if !needs_escape(u64::from_le_bytes(word)) {
                    i += 8;
                    continue;
                }
            }
            let b = bytes[i];
            let esc = ESCAPE[usize::from(b)];
            i += 1;
            if esc == 0 {
                continue;
            }
            let i = i - 1;
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

    fn strs(&mut self, vs: &[String]) {
        self.out.push(b'[');
        for (i, v) in vs.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            self.str(v);
        }
        self.out.push(b']');
    }

    fn ip(&mut self, ip: IpAddr) {
        self.out.push(b'"');
        match ip {
            // Dotted quad without core::fmt.
            IpAddr::V4(a) => {
                let mut buf = itoa::Buffer::new();
                for (i, o) in a.octets().iter().enumerate() {
                    if i > 0 {
                        self.out.push(b'.');
                    }
                    self.out.extend_from_slice(buf.format(*o).as_bytes());
                }
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
        match t.write_rfc3339(&mut buf) {
            Some(text) => self.out.extend_from_slice(text.as_bytes()),
            None => self.str_unquoted_plain(&t.to_rfc3339()),
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

/// Whether any of the eight bytes of `w` is a control character (< 0x20), `"` or `\`
/// (the classic SWAR tests for "a byte below n" and "a zero byte", with no false negatives;
/// a false positive only sends the chunk through the byte loop).
#[inline]
fn needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w;
    let q = w ^ (ONES * u64::from(b'"'));
    let quote = q.wrapping_sub(ONES) & !q;
    let s = w ^ (ONES * u64::from(b'\\'));
    let backslash = s.wrapping_sub(ONES) & !s;
    (below_space | quote | backslash) & HIGH != 0
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

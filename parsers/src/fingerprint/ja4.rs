//! JA4 (TLS client), as defined by FoxIO's specification
//! (<https://github.com/FoxIO-LLC/ja4/blob/main/technical_details/JA4.md>, BSD-3-Clause):
//!
//! `{t|q|d}{version:2}{d|i}{ciphers:2}{extensions:2}{alpn:2}_{hash(ciphers)}_{hash(exts_sigalgs)}`
//!
//! - version: highest supported_versions value (GREASE ignored) when the extension is
//!   present, else legacy_version; `13 12 11 10 s3 s2 d1 d2 d3`, anything else `00`;
//! - `d` when a server_name extension is present, else `i`;
//! - counts exclude GREASE, are capped at 99 and zero-padded;
//! - alpn: first and last character of the first ALPN value, or of its hex form when either
//!   is not ASCII alphanumeric; `00` without ALPN;
//! - hash = first 12 hex digits of SHA-256; ciphers sorted as 4-digit lowercase hex joined by
//!   `,`; extensions sorted without SNI (0x0000) and ALPN (0x0010), then `_` and the signature
//!   algorithms in wire order (no `_` when there are none); an empty list hashes to `000000000000`.

use super::text::{hex, push_hex4};
use crate::registry::is_grease;
use crate::tls::ClientHello;
use sha2::{Digest, Sha256};

/// The transport the ClientHello came over (JA4's first character).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TLS over TCP: `t`.
    Tcp,
    /// QUIC: `q`.
    Quic,
    /// DTLS: `d`.
    Dtls,
}

/// The JA4 fingerprint of a ClientHello.
pub fn ja4(ch: &ClientHello, transport: Transport) -> String {
    let proto = match transport {
        Transport::Tcp => 't',
        Transport::Quic => 'q',
        Transport::Dtls => 'd',
    };
    let version = if ch
        .extensions
        .contains(&crate::tls::hello::ext::SUPPORTED_VERSIONS)
        && !ch.versions.is_empty()
    {
        ch.versions
            .iter()
            .copied()
            .max()
            .unwrap_or(ch.legacy_version)
    } else {
        ch.legacy_version
    };
    let version = match version {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0002 => "s2",
        0xfeff => "d1",
        0xfefd => "d2",
        0xfefc => "d3",
        _ => "00",
    };
    let sni = if ch.extensions.contains(&crate::tls::hello::ext::SERVER_NAME) {
        'd'
    } else {
        'i'
    };
    // Three allocations in all: the result, one list sorted in turn for both hashes, and
    // the text that is hashed (the hashes are made of hex digits pushed directly).
    let not_grease = |v: &&u16| !is_grease(**v);
    let mut out = String::with_capacity(36);
    out.push(proto);
    out.push_str(version);
    out.push(sni);
    push_count(&mut out, ch.ciphers.iter().filter(not_grease).count());
    push_count(&mut out, ch.extensions.iter().filter(not_grease).count());
    push_alpn_chars(&mut out, &ch.first_alpn_raw);

    let mut sorted: Vec<u16> = ch.ciphers.iter().filter(not_grease).copied().collect();
    sorted.sort_unstable();
    let mut text =
        String::with_capacity(5 * (ch.ciphers.len() + ch.extensions.len()) + 5 * ch.sigalgs.len());
    push_hex_list(&mut text, sorted.iter().copied());
    out.push('_');
    push_hash12(&mut out, &text);

    sorted.clear();
    sorted.extend(
        ch.extensions
            .iter()
            .filter(not_grease)
            .copied()
            .filter(|e| *e != 0x0000 && *e != 0x0010),
    );
    sorted.sort_unstable();
    text.clear();
    if !sorted.is_empty() {
        push_hex_list(&mut text, sorted.iter().copied());
        if ch.sigalgs.iter().any(|s| !is_grease(*s)) {
            text.push('_');
            push_hex_list(&mut text, ch.sigalgs.iter().filter(not_grease).copied());
        }
    }
    out.push('_');
    push_hash12(&mut out, &text);
    out
}

/// A count capped at 99, as two digits.
fn push_count(out: &mut String, n: usize) {
    let n = n.min(99) as u8;
    out.push(char::from(b'0' + n / 10));
    out.push(char::from(b'0' + n % 10));
}

/// First and last character of the first ALPN value, or of its hex form when either is not
/// ASCII alphanumeric (the first and last hex digits are those of the first and last byte);
/// `00` without ALPN.
fn push_alpn_chars(out: &mut String, first: &[u8]) {
    let (Some(&f), Some(&l)) = (first.first(), first.last()) else {
        out.push_str("00");
        return;
    };
    if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric() {
        out.push(char::from(f));
        out.push(char::from(l));
    } else {
        let h = hex(&[f, l]);
        let hb = h.as_bytes();
        out.push(char::from(hb[0]));
        out.push(char::from(hb[3]));
    }
}

fn push_hex_list(out: &mut String, values: impl Iterator<Item = u16>) {
    for (i, v) in values.enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_hex4(out, v);
    }
}

/// The first 12 hex digits of the SHA-256 of `input`; `000000000000` for an empty input.
fn push_hash12(out: &mut String, input: &str) {
    if input.is_empty() {
        out.push_str("000000000000");
    } else {
        out.push_str(&hex(&Sha256::digest(input.as_bytes())[..6]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of the JA4 specification (Chrome ClientHello): ja4 =
    /// t13d1516h2_8daaf6152771_e5627efa2ab1.
    #[test]
    fn spec_example() {
        let ch = ClientHello {
            legacy_version: 0x0303,
            ciphers: vec![
                0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013,
                0xc014, 0x009c, 0x009d, 0x002f, 0x0035,
            ],
            extensions: vec![
                0x001b, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002d, 0x000d, 0x0005, 0x0023,
                0x0012, 0x002b, 0xff01, 0x000b, 0x000a, 0x0015,
            ],
            sigalgs: vec![
                0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
            ],
            versions: vec![0x0304, 0x0303],
            alpn: vec!["h2".into(), "http/1.1".into()],
            first_alpn_raw: b"h2".to_vec(),
            ..ClientHello::default()
        };
        assert_eq!(
            ja4(&ch, Transport::Tcp),
            "t13d1516h2_8daaf6152771_e5627efa2ab1"
        );
    }

    #[test]
    fn alpn_non_alnum_uses_hex() {
        let chars = |v: &[u8]| {
            let mut s = String::new();
            push_alpn_chars(&mut s, v);
            s
        };
        assert_eq!(chars(&[0xab, 0xcd]), "ad");
        assert_eq!(chars(&[0xab, 0x12, 0x34, 0xcd]), "ad");
        assert_eq!(chars(b"h2"), "h2");
        assert_eq!(chars(b"h"), "hh");
        assert_eq!(chars(b"h-"), "6d");
        assert_eq!(chars(&[0x05]), "05");
        assert_eq!(chars(b""), "00");
    }

    #[test]
    fn empty_hello() {
        let ch = ClientHello {
            legacy_version: 0x0301,
            ..ClientHello::default()
        };
        assert_eq!(
            ja4(&ch, Transport::Tcp),
            "t10i000000_000000000000_000000000000"
        );
    }
}

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
use std::fmt::Write;

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
    let mut ciphers: Vec<u16> = ch
        .ciphers
        .iter()
        .copied()
        .filter(|c| !is_grease(*c))
        .collect();
    let exts: Vec<u16> = ch
        .extensions
        .iter()
        .copied()
        .filter(|e| !is_grease(*e))
        .collect();
    let alpn = alpn_chars(Some(ch.first_alpn_raw.as_slice()));

    let mut a = String::with_capacity(40);
    let _ = write!(
        a,
        "{proto}{version}{sni}{:02}{:02}{alpn}",
        ciphers.len().min(99),
        exts.len().min(99)
    );
    ciphers.sort_unstable();
    let b = hash12(&hex_list(&ciphers));
    let mut sorted_exts: Vec<u16> = exts
        .into_iter()
        .filter(|e| *e != 0x0000 && *e != 0x0010)
        .collect();
    sorted_exts.sort_unstable();
    let sigalgs: Vec<u16> = ch
        .sigalgs
        .iter()
        .copied()
        .filter(|s| !is_grease(*s))
        .collect();
    let c_input = if sorted_exts.is_empty() {
        String::new()
    } else if sigalgs.is_empty() {
        hex_list(&sorted_exts)
    } else {
        format!("{}_{}", hex_list(&sorted_exts), hex_list(&sigalgs))
    };
    let c = hash12(&c_input);
    format!("{a}_{b}_{c}")
}

fn alpn_chars(first: Option<&[u8]>) -> String {
    let Some(v) = first.filter(|v| !v.is_empty()) else {
        return "00".to_string();
    };
    let (f, l) = (v[0], v[v.len() - 1]);
    if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric() {
        format!("{}{}", f as char, l as char)
    } else {
        let h = hex(v);
        let hb = h.as_bytes();
        format!("{}{}", hb[0] as char, hb[hb.len() - 1] as char)
    }
}

fn hex_list(values: &[u16]) -> String {
    let mut s = String::with_capacity(values.len() * 5);
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        push_hex4(&mut s, *v);
    }
    s
}

fn hash12(input: &str) -> String {
    if input.is_empty() {
        return "000000000000".to_string();
    }
    hex(&Sha256::digest(input.as_bytes())[..6])
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
        assert_eq!(alpn_chars(Some(&[0xab, 0xcd])), "ad");
        assert_eq!(alpn_chars(Some(b"h")), "hh");
        assert_eq!(alpn_chars(None), "00");
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

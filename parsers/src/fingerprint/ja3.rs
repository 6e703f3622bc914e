//! JA3 and JA3S, as defined by <https://github.com/salesforce/ja3>:
//! - JA3 = `SSLVersion,Ciphers,Extensions,EllipticCurves,EllipticCurvePointFormats`, decimal
//!   values joined by `-` within a field, GREASE values (RFC 8701) removed.
//! - JA3S = `SSLVersion,Cipher,Extensions` of the ServerHello.
//!
//! The version is the hello's legacy_version field (not supported_versions).

use super::text::{hex, push_dec};
use crate::registry::is_grease;
use crate::tls::{ClientHello, ServerHello};
use md5::{Digest, Md5};

/// The JA3 string of a ClientHello.
pub fn ja3(ch: &ClientHello) -> String {
    let mut s = String::with_capacity(256);
    push_dec(&mut s, ch.legacy_version);
    s.push(',');
    join_dec(
        &mut s,
        ch.ciphers.iter().copied().filter(|c| !is_grease(*c)),
    );
    s.push(',');
    join_dec(
        &mut s,
        ch.extensions.iter().copied().filter(|e| !is_grease(*e)),
    );
    s.push(',');
    join_dec(&mut s, ch.groups.iter().copied().filter(|g| !is_grease(*g)));
    s.push(',');
    join_dec(&mut s, ch.point_formats.iter().map(|p| u16::from(*p)));
    s
}

/// The JA3S string of a ServerHello.
pub fn ja3s(sh: &ServerHello) -> String {
    let mut s = String::with_capacity(64);
    push_dec(&mut s, sh.legacy_version);
    s.push(',');
    push_dec(&mut s, sh.cipher);
    s.push(',');
    join_dec(
        &mut s,
        sh.extensions.iter().copied().filter(|e| !is_grease(*e)),
    );
    s
}

/// Lowercase hex MD5 of a fingerprint string.
pub fn md5_hex(s: &str) -> String {
    hex(&Md5::digest(s.as_bytes()))
}

fn join_dec(out: &mut String, values: impl Iterator<Item = u16>) {
    for (i, v) in values.enumerate() {
        if i > 0 {
            out.push('-');
        }
        push_dec(out, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ja3_drops_grease_and_keeps_order() {
        let ch = ClientHello {
            legacy_version: 0x0303,
            ciphers: vec![0x0a0a, 0x1301, 0xc02f],
            extensions: vec![0x1a1a, 0, 10, 11],
            groups: vec![0x2a2a, 29, 23],
            point_formats: vec![0],
            ..ClientHello::default()
        };
        assert_eq!(ja3(&ch), "771,4865-49199,0-10-11,29-23,0");
        // The published example: md5 of "771,,,," is fixed.
        let empty = ClientHello {
            legacy_version: 0x0303,
            ..ClientHello::default()
        };
        assert_eq!(ja3(&empty), "771,,,,");
        assert_eq!(md5_hex(""), "d41d8cd98f00b204e9800998ecf8427e");
    }

    #[test]
    fn ja3s_shape() {
        let sh = ServerHello {
            legacy_version: 0x0303,
            cipher: 0xc02f,
            extensions: vec![0xff01, 11],
            ..ServerHello::default()
        };
        assert_eq!(ja3s(&sh), "771,49199,65281-11");
    }
}

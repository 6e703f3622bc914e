//! TLS fingerprints: JA3 and JA3S (Salesforce, BSD-3-Clause) and JA4 (FoxIO, BSD-3-Clause;
//! JA4S/JA4X are under FoxIO's own licence and deliberately not implemented).
//!
//! All three take the owned hello summaries of [`crate::tls::hello`], so they can be
//! computed once per session without touching wire bytes again.

mod cache;
mod ja3;
mod ja4;

pub use cache::{ClientFingerprints, FingerprintCache, ServerFingerprints};
pub use ja3::{ja3, ja3s, md5_hex};
pub use ja4::{ja4, Transport};

/// Text helpers of the fingerprints: numbers and hex digits pushed straight into the string.
/// `core::fmt` (`write!("{v}")`, `{v:04x}`) and `hex::encode` were a third of the time of
/// JA3/JA4 in the micro-benchmarks (docs/MICROBENCH.md).
pub(crate) mod text {
    const HEX: &[u8; 16] = b"0123456789abcdef";

    /// Appends `v` in decimal.
    pub fn push_dec(out: &mut String, v: u16) {
        let mut buf = [0u8; 5];
        let mut i = buf.len();
        let mut v = v;
        loop {
            i -= 1;
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        for b in &buf[i..] {
            out.push(char::from(*b));
        }
    }

    /// Appends `v` as four lowercase hex digits.
    pub fn push_hex4(out: &mut String, v: u16) {
        for shift in [12, 8, 4, 0] {
            out.push(char::from(HEX[usize::from((v >> shift) & 0xf)]));
        }
    }

    /// Lowercase hex of `bytes`.
    pub fn hex(bytes: &[u8]) -> String {
        let mut s = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        s
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn same_as_core_fmt_and_hex_crate() {
            for v in (0..=u16::MAX).step_by(7).chain([0, 9, 10, 99, 100, 65535]) {
                let (mut d, mut h) = (String::new(), String::new());
                push_dec(&mut d, v);
                push_hex4(&mut h, v);
                assert_eq!(d, v.to_string());
                assert_eq!(h, format!("{v:04x}"));
            }
            let bytes: Vec<u8> = (0..=255).collect();
            assert_eq!(hex(&bytes), hex::encode(&bytes));
        }
    }
}

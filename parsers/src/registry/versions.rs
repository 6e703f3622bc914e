//! Protocol version names and ranks, and GREASE detection.

/// TLS 1.3 draft versions seen in the wild: 0x7f00 | draft number, drafts 14..28.
const TLS13_DRAFTS: std::ops::RangeInclusive<u16> = 0x7f0e..=0x7f1c;

/// Facebook's experimental TLS 1.3 versions (fizz/mvfst): 0xfb00 | draft number.
const FACEBOOK_TLS13: std::ops::RangeInclusive<u16> = 0xfb00..=0xfbff;

/// Whether `code` is a TLS 1.3 version: the final one, a draft or Facebook's variant.
fn is_tls13(code: u16) -> bool {
    code == 0x0304 || TLS13_DRAFTS.contains(&code) || FACEBOOK_TLS13.contains(&code)
}

/// Name of a protocol version code; see [`super::version_name`].
pub(super) fn name(code: u16) -> &'static str {
    match code {
        0x0002 => "SSLv2",
        0x0300 => "SSLv3",
        0x0301 => "TLSv1.0",
        0x0302 => "TLSv1.1",
        0x0303 => "TLSv1.2",
        0xfeff => "DTLSv1.0",
        0xfefd => "DTLSv1.2",
        0xfefc => "DTLSv1.3",
        _ if is_tls13(code) => "TLSv1.3",
        _ => "",
    }
}

/// Rank of a protocol version code; see [`super::version_rank`].
pub(super) fn rank(code: u16) -> u8 {
    match code {
        0x0002 => 1,
        0x0300 => 2,
        0x0301 => 3,
        // DTLS 1.0 is TLS 1.1 over datagrams (RFC 4347).
        0x0302 | 0xfeff => 4,
        // DTLS 1.2 is TLS 1.2 over datagrams (RFC 6347).
        0x0303 | 0xfefd => 5,
        // DTLS 1.3 is TLS 1.3 over datagrams (RFC 9147).
        0xfefc => 6,
        _ if is_tls13(code) => 6,
        _ => 0,
    }
}

/// RFC 8701 GREASE test; see [`super::is_grease`].
pub(super) fn is_grease(value: u16) -> bool {
    let [high, low] = value.to_be_bytes();
    high == low && low & 0x0f == 0x0a
}

//! The TLS record layer codec: header recognition, and the SSLv2-compatible ClientHello.
//!
//! Pure functions over `&[u8]`; the state machine in [`super::TlsParser`] decides what to
//! do with what they find.

use super::hello::ClientHello;

/// Length of a TLS record header.
pub const HEADER_LEN: usize = 5;
/// Largest record body accepted: 2^14 plus the 2048 bytes of expansion RFC 5246 allows.
pub const MAX_RECORD_LEN: usize = (1 << 14) + 2048;

/// Record content types.
pub mod content {
    /// change_cipher_spec.
    pub const CHANGE_CIPHER_SPEC: u8 = 20;
    /// alert.
    pub const ALERT: u8 = 21;
    /// handshake.
    pub const HANDSHAKE: u8 = 22;
    /// application_data.
    pub const APPLICATION_DATA: u8 = 23;
    /// heartbeat (RFC 6520).
    pub const HEARTBEAT: u8 = 24;
}

/// A validated record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// Content type (20..=24).
    pub content_type: u8,
    /// Record-layer version.
    pub version: u16,
    /// Body length, at most [`MAX_RECORD_LEN`].
    pub len: usize,
}

impl RecordHeader {
    /// Reads a header from the first five bytes, if they form a plausible TLS record header
    /// (known content type, major version 3 with minor 0..=4, length within bounds).
    pub fn parse(bytes: &[u8]) -> Option<RecordHeader> {
        let h = bytes.get(..HEADER_LEN)?;
        let content_type = h[0];
        let version = u16::from_be_bytes([h[1], h[2]]);
        let len = usize::from(u16::from_be_bytes([h[3], h[4]]));
        let plausible = (content::CHANGE_CIPHER_SPEC..=content::HEARTBEAT).contains(&content_type)
            && h[1] == 3
            && h[2] <= 4
            && len <= MAX_RECORD_LEN;
        plausible.then_some(RecordHeader {
            content_type,
            version,
            len,
        })
    }
}

/// Whether `bytes` start like a TLS handshake record (a ClientHello in the making) or an
/// SSLv2-compatible ClientHello. Used to tell implicit TLS from SMTP and to confirm a
/// STARTTLS upgrade whose reply was lost.
pub fn looks_like_client_hello(bytes: &[u8]) -> bool {
    match RecordHeader::parse(bytes) {
        Some(h) => h.content_type == content::HANDSHAKE && bytes.get(5).is_none_or(|t| *t == 1),
        None => sslv2_client_hello_len(bytes).is_some(),
    }
}

/// Finds a TLS ClientHello record start inside `bytes` (a handshake record header whose
/// first message is of type 1). Used to notice a TLS upgrade after a clear-text dialogue that
/// is not SMTP (IMAP, POP3, FTP, XMPP), whose last message may not end with a newline.
pub fn find_client_hello(bytes: &[u8]) -> Option<usize> {
    // Every clear-text byte a client sends is searched (perf: a byte-by-byte loop was a
    // fifth of the time of the loop that drives the parsers): memchr jumps to the candidates.
    let starts = &bytes[..bytes.len().saturating_sub(HEADER_LEN)];
    memchr::memchr_iter(content::HANDSHAKE, starts)
        .find(|&i| bytes.get(i + 5) == Some(&1) && RecordHeader::parse(&bytes[i..]).is_some())
}

/// Whether `bytes` start like any TLS record.
pub fn looks_like_tls(bytes: &[u8]) -> bool {
    RecordHeader::parse(bytes).is_some() || sslv2_client_hello_len(bytes).is_some()
}

/// Finds the first offset at which a plausible record header starts (used to resync
/// after a gap). Requires the record to be followed by another plausible header or by
/// the end of `bytes`, to avoid locking onto random ciphertext.
pub fn find_record_start(bytes: &[u8]) -> Option<usize> {
    (0..bytes.len().saturating_sub(HEADER_LEN - 1)).find(|&i| {
        let Some(h) = RecordHeader::parse(&bytes[i..]) else {
            return false;
        };
        let next = i + HEADER_LEN + h.len;
        next >= bytes.len() || RecordHeader::parse(&bytes[next..]).is_some()
    })
}

/// If `bytes` start with an SSLv2 CLIENT-HELLO (2-byte header with the high bit set, message
/// type 1, version 0x0002..=0x0303), returns the total length including the header.
pub fn sslv2_client_hello_len(bytes: &[u8]) -> Option<usize> {
    let h = bytes.get(..5)?;
    if h[0] & 0x80 == 0 || h[2] != 1 {
        return None;
    }
    let version = u16::from_be_bytes([h[3], h[4]]);
    if !(version == 0x0002 || (0x0300..=0x0303).contains(&version)) {
        return None;
    }
    let len = (usize::from(h[0] & 0x7f) << 8) | usize::from(h[1]);
    (len >= 9).then_some(len + 2)
}

/// Parses a whole SSLv2-compatible CLIENT-HELLO (as returned by [`sslv2_client_hello_len`]).
/// Three-byte cipher specs whose first byte is 0 are TLS cipher suites and are kept; pure
/// SSLv2 kinds are dropped. There are no extensions.
pub fn parse_sslv2_client_hello(msg: &[u8]) -> Option<ClientHello> {
    let body = msg.get(2..)?;
    let u16_at = |i: usize| body.get(i..i + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let version = u16_at(1)?;
    let spec_len = usize::from(u16_at(3)?);
    let sid_len = usize::from(u16_at(5)?);
    let specs = body.get(9..9 + spec_len)?;
    if spec_len % 3 != 0 {
        return None;
    }
    let ciphers = specs
        .chunks_exact(3)
        .filter(|c| c[0] == 0)
        .map(|c| u16::from_be_bytes([c[1], c[2]]))
        .collect();
    let session_id = body.get(9 + spec_len..9 + spec_len + sid_len)?.to_vec();
    Some(ClientHello {
        legacy_version: version,
        ciphers,
        session_id,
        sslv2: true,
        ..ClientHello::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_rejects_implausible() {
        assert!(RecordHeader::parse(&[22, 3, 1, 0, 50]).is_some());
        assert!(RecordHeader::parse(&[22, 3, 9, 0, 50]).is_none());
        assert!(RecordHeader::parse(&[99, 3, 1, 0, 50]).is_none());
        assert!(RecordHeader::parse(&[23, 3, 3, 0xff, 0xff]).is_none());
        assert!(RecordHeader::parse(b"220 m").is_none());
    }

    #[test]
    fn sslv2_hello_round_trip() {
        // SSLv2 CLIENT-HELLO offering TLS 1.0, two specs (one SSLv2-only, one TLS), no sid,
        // 16-byte challenge.
        let mut m = vec![0x80, 0, 1, 0x03, 0x01, 0, 6, 0, 0, 0, 16];
        m.extend_from_slice(&[0x07, 0x00, 0xc0, 0x00, 0x00, 0x2f]);
        m.extend_from_slice(&[0xaa; 16]);
        m[1] = (m.len() - 2) as u8;
        assert_eq!(sslv2_client_hello_len(&m), Some(m.len()));
        let ch = parse_sslv2_client_hello(&m).unwrap();
        assert_eq!(ch.legacy_version, 0x0301);
        assert_eq!(ch.ciphers, vec![0x002f]);
        assert!(looks_like_client_hello(&m));
    }

    #[test]
    fn client_hello_found_after_xml() {
        let mut b = b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>".to_vec();
        let at = b.len();
        b.extend_from_slice(&[22, 3, 1, 0, 40, 1, 0, 0, 36]);
        assert_eq!(find_client_hello(&b), Some(at));
        assert_eq!(find_client_hello(b"EHLO x\r\n"), None);
    }

    #[test]
    fn client_hello_search_skips_false_starts_and_stops_before_the_last_header() {
        // The byte-by-byte definition the search must agree with.
        fn reference(bytes: &[u8]) -> Option<usize> {
            (0..bytes.len().saturating_sub(HEADER_LEN)).find(|&i| {
                bytes[i] == content::HANDSHAKE
                    && bytes.get(i + 5) == Some(&1)
                    && RecordHeader::parse(&bytes[i..]).is_some()
            })
        }
        let hello = [22u8, 3, 1, 0, 40, 1, 0, 0, 36];
        // 0x16 bytes that start no ClientHello: not followed by a handshake of type 1, or
        // not by a plausible header.
        let junk: [&[u8]; 4] = [
            &[22, 3, 1, 0, 40, 2],
            &[22, 9, 9, 9, 9, 1],
            &[22],
            &[22, 22],
        ];
        for pre in 0..4 {
            for j in junk {
                let mut b = b"EHLO x\r\n"[..pre * 2].to_vec();
                b.extend_from_slice(j);
                let at = b.len();
                b.extend_from_slice(&hello);
                for cut in 0..=b.len() {
                    let found = find_client_hello(&b[..cut]);
                    assert_eq!(found, reference(&b[..cut]), "{:?}", &b[..cut]);
                    // Found once the header and the handshake type are in: no sooner.
                    assert_eq!(found.is_some(), cut > at + HEADER_LEN, "cut {cut}");
                }
            }
        }
    }

    #[test]
    fn resync_skips_junk() {
        let mut b = b"junk".to_vec();
        b.extend_from_slice(&[23, 3, 3, 0, 2, 0xaa, 0xbb, 23, 3, 3, 0, 1, 0xcc]);
        assert_eq!(find_record_start(&b), Some(4));
    }
}

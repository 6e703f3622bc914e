//! Owned summaries of the ClientHello and ServerHello, built once per session from
//! `tls-parser`'s borrowed views.
//!
//! Extensions are walked here rather than through `parse_tls_client_hello_extensions`
//! because fingerprints need every extension type in wire order, including ones whose body
//! `tls-parser` rejects (one malformed extension must not hide the others).

use crate::registry::is_grease;
use tls_parser::TlsExtension;

/// Extension type codes used by this crate.
pub mod ext {
    /// server_name (RFC 6066).
    pub const SERVER_NAME: u16 = 0;
    /// supported_groups, formerly elliptic_curves (RFC 8422).
    pub const SUPPORTED_GROUPS: u16 = 10;
    /// ec_point_formats (RFC 8422).
    pub const EC_POINT_FORMATS: u16 = 11;
    /// signature_algorithms (RFC 8446).
    pub const SIGNATURE_ALGORITHMS: u16 = 13;
    /// application_layer_protocol_negotiation (RFC 7301).
    pub const ALPN: u16 = 16;
    /// session_ticket (RFC 5077).
    pub const SESSION_TICKET: u16 = 35;
    /// pre_shared_key (RFC 8446).
    pub const PRE_SHARED_KEY: u16 = 41;
    /// supported_versions (RFC 8446).
    pub const SUPPORTED_VERSIONS: u16 = 43;
}

/// The random value of a HelloRetryRequest (RFC 8446 §4.1.3): SHA-256 of "HelloRetryRequest".
pub const HELLO_RETRY_REQUEST_RANDOM: [u8; 32] = [
    0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
    0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
];

/// Longest SNI / ALPN value kept, in bytes; longer values are truncated.
pub const MAX_NAME_LEN: usize = 255;

/// What a ClientHello offered. Lists keep wire order and GREASE values, except
/// `supported_versions`, which drops GREASE.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHello {
    /// legacy_version (the record-independent ClientHello.version field).
    pub legacy_version: u16,
    /// Cipher suites as offered (GREASE included).
    pub ciphers: Vec<u16>,
    /// Extension types as sent (GREASE included).
    pub extensions: Vec<u16>,
    /// supported_groups (GREASE included).
    pub groups: Vec<u16>,
    /// ec_point_formats.
    pub point_formats: Vec<u8>,
    /// signature_algorithms (GREASE included).
    pub sigalgs: Vec<u16>,
    /// supported_versions, GREASE removed.
    pub versions: Vec<u16>,
    /// First host_name of server_name, lossily made UTF-8.
    pub sni: Option<String>,
    /// ALPN protocol names, lossily made UTF-8.
    pub alpn: Vec<String>,
    /// The first ALPN protocol name as raw bytes (JA4 reads bytes, not text), capped.
    pub first_alpn_raw: Vec<u8>,
    /// Whether the legacy session id was non-empty.
    pub session_id: Vec<u8>,
    /// Whether the session_ticket extension carried a ticket.
    pub has_ticket: bool,
    /// Whether this came from an SSLv2-compatible ClientHello.
    pub sslv2: bool,
}

impl ClientHello {
    /// Builds the summary from `tls-parser`'s view.
    pub fn from_parsed(ch: &tls_parser::TlsClientHelloContents<'_>) -> Self {
        let mut out = ClientHello {
            legacy_version: ch.version.0,
            ciphers: ch.ciphers.iter().map(|c| c.0).collect(),
            session_id: ch.session_id.unwrap_or_default().to_vec(),
            ..ClientHello::default()
        };
        if let Some(block) = ch.ext {
            // Sized at once (a ClientHello has 10-20 extensions: an allocation and two
            // reallocations else).
            out.extensions = Vec::with_capacity(ExtensionIter::new(block).count());
            for (ty, whole) in ExtensionIter::new(block) {
                out.extensions.push(ty);
                out.absorb_extension(ty, whole);
            }
        }
        out
    }

    fn absorb_extension(&mut self, ty: u16, whole: &[u8]) {
        // tls-parser is asked only for the extensions read below (it picks the variant by
        // the type alone): the others (key shares, PSK modes, padding, ...) were parsed,
        // some into allocated lists, only to be dropped.
        if !matches!(
            ty,
            ext::SERVER_NAME
                | ext::SUPPORTED_GROUPS
                | ext::EC_POINT_FORMATS
                | ext::SIGNATURE_ALGORITHMS
                | ext::ALPN
                | ext::SESSION_TICKET
                | ext::SUPPORTED_VERSIONS
        ) {
            return;
        }
        let Ok((_, parsed)) = tls_parser::parse_tls_extension(whole) else {
            return;
        };
        match parsed {
            TlsExtension::SNI(names) => {
                if let Some((_, name)) = names.iter().find(|(t, _)| t.0 == 0) {
                    self.sni = Some(lossy_capped(name));
                }
            }
            TlsExtension::EllipticCurves(groups) => {
                self.groups = groups.iter().map(|g| g.0).collect();
            }
            TlsExtension::EcPointFormats(fmts) => self.point_formats = fmts.to_vec(),
            TlsExtension::SignatureAlgorithms(algs) => self.sigalgs = algs,
            TlsExtension::SupportedVersions(vs) => {
                self.versions = vs.iter().map(|v| v.0).filter(|v| !is_grease(*v)).collect();
            }
            TlsExtension::ALPN(protos) => {
                self.alpn = protos.iter().map(|p| lossy_capped(p)).collect();
                if let Some(first) = protos.first() {
                    self.first_alpn_raw = first[..first.len().min(MAX_NAME_LEN)].to_vec();
                }
            }
            TlsExtension::SessionTicket(t) => self.has_ticket = !t.is_empty(),
            _ => {
                // tls-parser may parse supported_groups under a different variant for odd
                // lengths; nothing else is needed from other extensions.
                let _ = ty;
            }
        }
    }

    /// The best version the client offered: the highest supported_versions entry, else
    /// legacy_version.
    pub fn max_version(&self) -> u16 {
        self.versions
            .iter()
            .copied()
            .max_by_key(|v| crate::registry::version_rank(*v))
            .unwrap_or(self.legacy_version)
    }

    /// Whether TLS_FALLBACK_SCSV is among the cipher suites.
    pub fn has_fallback_scsv(&self) -> bool {
        self.ciphers.contains(&crate::registry::TLS_FALLBACK_SCSV)
    }
}

/// What a ServerHello chose.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerHello {
    /// legacy_version field (0x0303 for TLS 1.3).
    pub legacy_version: u16,
    /// The selected version: supported_versions when present, else legacy_version.
    pub version: u16,
    /// Selected cipher suite.
    pub cipher: u16,
    /// Extension types in wire order.
    pub extensions: Vec<u16>,
    /// Legacy session id echoed by the server.
    pub session_id: Vec<u8>,
    /// Whether this ServerHello is a HelloRetryRequest.
    pub hello_retry: bool,
    /// Whether the server accepted a pre-shared key (TLS 1.3 resumption).
    pub psk_accepted: bool,
    /// Selected ALPN protocol.
    pub alpn: Option<String>,
}

impl ServerHello {
    /// Builds the summary from `tls-parser`'s view.
    pub fn from_parsed(sh: &tls_parser::TlsServerHelloContents<'_>) -> Self {
        let mut out = ServerHello {
            legacy_version: sh.version.0,
            version: sh.version.0,
            cipher: sh.cipher.0,
            session_id: sh.session_id.unwrap_or_default().to_vec(),
            hello_retry: sh.random == HELLO_RETRY_REQUEST_RANDOM,
            ..ServerHello::default()
        };
        out.absorb_extensions(sh.ext);
        out
    }

    /// Builds the summary of a TLS 1.3 draft-18-style ServerHello (no session id).
    pub fn from_draft(sh: &tls_parser::TlsServerHelloV13Draft18Contents<'_>) -> Self {
        let mut out = ServerHello {
            legacy_version: sh.version.0,
            version: sh.version.0,
            cipher: sh.cipher.0,
            ..ServerHello::default()
        };
        out.absorb_extensions(sh.ext);
        out
    }

    fn absorb_extensions(&mut self, block: Option<&[u8]>) {
        let Some(block) = block else { return };
        self.extensions = Vec::with_capacity(ExtensionIter::new(block).count());
        for (ty, whole) in ExtensionIter::new(block) {
            self.extensions.push(ty);
            let body = whole.get(4..).unwrap_or_default();
            match ty {
                ext::SUPPORTED_VERSIONS if body.len() == 2 => {
                    self.version = u16::from_be_bytes([body[0], body[1]]);
                }
                ext::PRE_SHARED_KEY => self.psk_accepted = true,
                ext::ALPN => {
                    if let Ok((_, TlsExtension::ALPN(p))) = tls_parser::parse_tls_extension(whole) {
                        self.alpn = p.first().map(|s| lossy_capped(s));
                    }
                }
                _ => {}
            }
        }
    }
}

/// Parses a whole ServerHello handshake message (4-byte header included).
///
/// `tls-parser` covers TLS 1.0-1.2 and TLS 1.3 (final and draft 18). Two wire forms it does
/// not read are handled here: SSLv3 ServerHellos that carry extensions (RFC 5746
/// renegotiation_info is common), whose extension block it drops, and TLS 1.3 drafts other
/// than 18 (0x7f0e..0x7f15: version, random, cipher, extensions; no session id or compression).
pub fn parse_server_hello(msg: &[u8]) -> Option<ServerHello> {
    let body = msg.get(4..)?;
    let version = u16::from_be_bytes([*body.first()?, *body.get(1)?]);
    if (0x7f00..=0x7fff).contains(&version) && version != 0x7f12 {
        let random = body.get(2..34)?;
        let cipher = u16::from_be_bytes([*body.get(34)?, *body.get(35)?]);
        let ext = extension_block(body.get(36..)?);
        let draft = tls_parser::TlsServerHelloV13Draft18Contents {
            version: tls_parser::TlsVersion(version),
            random,
            cipher: tls_parser::TlsCipherSuiteID(cipher),
            ext,
        };
        return Some(ServerHello::from_draft(&draft));
    }
    match tls_parser::parse_tls_message_handshake(msg).ok()?.1 {
        tls_parser::TlsMessage::Handshake(tls_parser::TlsMessageHandshake::ServerHello(mut sh)) => {
            if sh.ext.is_none() {
                // SSLv3: find the block after session id, cipher and compression.
                let sid_len = usize::from(*body.get(34)?);
                sh.ext = body.get(35 + sid_len + 3..).and_then(extension_block);
            }
            Some(ServerHello::from_parsed(&sh))
        }
        tls_parser::TlsMessage::Handshake(
            tls_parser::TlsMessageHandshake::ServerHelloV13Draft18(sh),
        ) => Some(ServerHello::from_draft(&sh)),
        _ => None,
    }
}

/// A length-prefixed extension block that fits exactly or with trailing bytes; `None` when
/// absent or inconsistent.
fn extension_block(rest: &[u8]) -> Option<&[u8]> {
    let len = usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?]));
    rest.get(2..2 + len)
}

/// Iterates over an extension block: yields `(type, whole extension bytes incl. header)`.
/// Stops at the first extension whose length runs past the block.
struct ExtensionIter<'a> {
    rest: &'a [u8],
}

impl<'a> ExtensionIter<'a> {
    fn new(block: &'a [u8]) -> Self {
        ExtensionIter { rest: block }
    }
}

impl<'a> Iterator for ExtensionIter<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let hdr = self.rest.get(..4)?;
        let ty = u16::from_be_bytes([hdr[0], hdr[1]]);
        let len = usize::from(u16::from_be_bytes([hdr[2], hdr[3]]));
        let whole = self.rest.get(..4 + len)?;
        self.rest = &self.rest[4 + len..];
        Some((ty, whole))
    }
}

/// Makes wire bytes a bounded, valid UTF-8 string.
pub fn lossy_capped(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(MAX_NAME_LEN)];
    String::from_utf8_lossy(cut).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_iter_stops_on_lying_length() {
        // One good extension (type 0x000a, 2 bytes), then one claiming 0xffff bytes.
        let block = [
            0x00, 0x0a, 0x00, 0x02, 0x00, 0x17, 0x00, 0x0b, 0xff, 0xff, 0x01,
        ];
        let got: Vec<u16> = ExtensionIter::new(&block).map(|(t, _)| t).collect();
        assert_eq!(got, vec![0x000a]);
    }

    #[test]
    fn lossy_capped_replaces_bad_utf8_and_caps() {
        assert_eq!(lossy_capped(b"mx\xff"), "mx\u{fffd}");
        assert_eq!(lossy_capped(&[b'a'; 1000]).len(), MAX_NAME_LEN);
    }
}

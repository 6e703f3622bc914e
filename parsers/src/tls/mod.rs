//! The TLS handshake, seen passively from both directions.
//!
//! [`TlsParser::feed`] takes reassembled bytes of one direction and consumes whole records
//! only (it returns how many bytes it consumed; the caller keeps the rest and offers it again
//! with more data). Handshake messages are gathered across records in a per-direction buffer
//! capped at [`MAX_HANDSHAKE_LEN`]; several messages in one record are split apart. Message
//! bodies are parsed with `tls-parser`; the leaf certificate with `x509-parser`.
//!
//! Completion is judged from what is visible on the wire:
//! - TLS <= 1.2: both sides sent ChangeCipherSpec and no fatal alert came first.
//! - TLS 1.3 (everything after the ServerHello is encrypted): the client sent a second
//!   encrypted record after its Finished, or the server sent an encrypted record after the
//!   client's first one. A client that rejects the server's certificate sends a single
//!   encrypted alert and closes, which this rule does not count as established.

pub mod cert_cache;
pub mod certificate;
pub mod hello;
pub mod record;

use crate::count::bump;
use crate::Dir;
pub use cert_cache::CertCache;
pub use certificate::CertSummary;
pub use hello::{ClientHello, ServerHello};
use record::{content, RecordHeader, HEADER_LEN};
use tls_parser::{TlsMessage, TlsMessageHandshake};

/// Largest handshake message gathered (as rustls' `MAX_HANDSHAKE_SIZE`); larger ones are
/// skipped and counted in [`TlsStats::oversized_messages`].
pub const MAX_HANDSHAKE_LEN: usize = 0xffff;

/// An alert as seen on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alert {
    /// Alert level (1 warning, 2 fatal); 0 when the alert was encrypted.
    pub level: u8,
    /// Alert description; `None` when the alert was encrypted.
    pub description: Option<u8>,
    /// Who sent it.
    pub by: Dir,
}

/// Counters of what the TLS parser could not make sense of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TlsStats {
    /// Records seen.
    pub records: u64,
    /// Bytes that were not a plausible record header (then skipped while resyncing).
    pub junk_bytes: u64,
    /// Handshake messages `tls-parser` rejected.
    pub bad_messages: u64,
    /// Handshake messages above [`MAX_HANDSHAKE_LEN`], skipped.
    pub oversized_messages: u64,
    /// Times the parser had to look for the next record header (after a gap or junk).
    pub resyncs: u64,
}

#[derive(Debug, Default)]
struct DirState {
    /// Partial handshake message(s).
    handshake: Vec<u8>,
    /// Bytes of an oversized handshake message still to skip.
    skip: usize,
    /// Later handshake/alert records of this direction are encrypted.
    encrypted: bool,
    /// Looking for a record boundary (after a gap or junk).
    resync: bool,
    /// A ChangeCipherSpec record was seen.
    change_cipher_spec: bool,
    /// application_data records seen.
    app_records: u32,
    /// Any record seen in this direction.
    started: bool,
}

/// Everything the sensor learns from one TLS handshake.
#[derive(Debug, Default)]
pub struct TlsParser {
    dirs: [DirState; 2],
    /// The first ClientHello.
    pub client_hello: Option<ClientHello>,
    /// Capture time (µs) of the first ClientHello.
    pub client_hello_at: i64,
    /// The ServerHello that settled the handshake (not a HelloRetryRequest).
    pub server_hello: Option<ServerHello>,
    /// Whether a HelloRetryRequest came first.
    pub hello_retry: bool,
    /// Summary of the leaf certificate (TLS <= 1.2).
    pub certificate: Option<CertSummary>,
    /// Certificates in the server's Certificate message.
    pub chain_len: u32,
    /// Whether the leaf certificate failed to parse.
    pub certificate_error: bool,
    /// The first alert of the session.
    pub alert: Option<Alert>,
    /// Whether a fatal (or undecipherable pre-completion) alert was seen.
    pub fatal_alert: bool,
    /// Capture time (µs) the handshake was judged complete.
    pub established_at: Option<i64>,
    /// Whether the server sent ServerHelloDone (full TLS <= 1.2 handshake).
    server_hello_done: bool,
    /// Server records seen after the client's first encrypted record (TLS 1.3).
    server_app_after_client: u32,
    /// Parse counters.
    pub stats: TlsStats,
}

impl TlsParser {
    /// A parser waiting for a ClientHello.
    pub fn new() -> Self {
        TlsParser::default()
    }

    /// Whether the handshake reached a verdict: established, or ended by a fatal alert.
    /// After this nothing more is learned, and the caller may stop buffering.
    pub fn is_done(&self) -> bool {
        self.established_at.is_some() || self.fatal_alert
    }

    /// Whether the handshake completed.
    pub fn is_established(&self) -> bool {
        self.established_at.is_some()
    }

    /// The negotiated version (supported_versions when present), if a ServerHello was seen.
    pub fn negotiated_version(&self) -> Option<u16> {
        self.server_hello.as_ref().map(|sh| sh.version)
    }

    /// Whether the session resumed an earlier one: TLS 1.3 PSK accepted; TLS <= 1.2 session id
    /// echoed, or the server went to ChangeCipherSpec without a full handshake.
    pub fn is_resumed(&self) -> bool {
        let Some(sh) = &self.server_hello else {
            return false;
        };
        if sh.version == 0x0304 || is_tls13_draft(sh.version) {
            return sh.psk_accepted;
        }
        let sid_echo = !sh.session_id.is_empty()
            && self
                .client_hello
                .as_ref()
                .is_some_and(|ch| ch.session_id == sh.session_id);
        sid_echo || (self.dirs[Dir::ToClient.index()].change_cipher_spec && !self.server_hello_done)
    }

    /// Microseconds from the ClientHello to completion, when both were seen.
    pub fn handshake_micros(&self) -> Option<u64> {
        let done = self.established_at?;
        self.client_hello.as_ref()?;
        u64::try_from(done.checked_sub(self.client_hello_at)?).ok()
    }

    fn tls13(&self) -> bool {
        self.server_hello
            .as_ref()
            .is_some_and(|sh| sh.version == 0x0304 || is_tls13_draft(sh.version))
    }

    /// Tells the parser that `len` bytes of direction `dir` are missing: it drops any partial
    /// handshake message and looks for the next record header.
    pub fn gap(&mut self, dir: Dir) {
        let d = &mut self.dirs[dir.index()];
        d.handshake.clear();
        d.skip = 0;
        d.resync = true;
    }

    /// Consumes whole records from `bytes` (one direction, in order) and returns how many
    /// bytes were used; the rest is an incomplete record to offer again with more data.
    /// `now` is the capture time in µs of the newest byte.
    pub fn feed(&mut self, dir: Dir, bytes: &[u8], now: i64) -> usize {
        self.feed_cached(dir, bytes, now, &mut CertCache::default())
    }

    /// [`TlsParser::feed`], with leaf certificates summarised through `certs` (a worker
    /// keeps one cache for all its sessions; the result is the same as without it).
    pub fn feed_cached(
        &mut self,
        dir: Dir,
        bytes: &[u8],
        now: i64,
        certs: &mut CertCache,
    ) -> usize {
        let mut off = 0;
        while off < bytes.len() {
            let rest = &bytes[off..];
            if self.dirs[dir.index()].resync {
                match record::find_record_start(rest) {
                    Some(skip) => {
                        self.stats.junk_bytes += skip as u64;
                        off += skip;
                        self.dirs[dir.index()].resync = false;
                        continue;
                    }
                    None => {
                        // Keep a possible header prefix for the next call.
                        let keep = rest.len().min(HEADER_LEN - 1);
                        let skip = rest.len() - keep;
                        self.stats.junk_bytes += skip as u64;
                        return off + skip;
                    }
                }
            }
            if dir == Dir::ToServer && !self.dirs[0].started && self.client_hello.is_none() {
                if let Some(len) = record::sslv2_client_hello_len(rest) {
                    let Some(msg) = rest.get(..len) else { break };
                    self.dirs[0].started = true;
                    match record::parse_sslv2_client_hello(msg) {
                        Some(ch) => self.set_client_hello(ch, now),
                        None => self.stats.bad_messages += 1,
                    }
                    off += len;
                    continue;
                }
            }
            let Some(hdr) = RecordHeader::parse(rest) else {
                if rest.len() < HEADER_LEN {
                    break;
                }
                self.stats.resyncs += 1;
                self.dirs[dir.index()].resync = true;
                continue;
            };
            let Some(body) = rest.get(HEADER_LEN..HEADER_LEN + hdr.len) else {
                break;
            };
            off += HEADER_LEN + hdr.len;
            self.stats.records += 1;
            self.dirs[dir.index()].started = true;
            self.on_record(dir, hdr.content_type, body, now, certs);
        }
        off
    }

    fn on_record(
        &mut self,
        dir: Dir,
        content_type: u8,
        body: &[u8],
        now: i64,
        certs: &mut CertCache,
    ) {
        match content_type {
            content::CHANGE_CIPHER_SPEC => {
                // Before any (non-retry) ServerHello, or in TLS 1.3, a CCS is the
                // middlebox-compatibility dummy (RFC 8446 D.4), not the switch to encryption:
                // TLS <= 1.2 only sends CCS after the ServerHello.
                let compat = self.server_hello.is_none() || self.tls13();
                let d = &mut self.dirs[dir.index()];
                d.change_cipher_spec = true;
                if !compat {
                    d.encrypted = true;
                }
                self.check_established(now);
            }
            content::ALERT => self.on_alert(dir, body),
            content::HANDSHAKE if !self.dirs[dir.index()].encrypted => {
                self.on_handshake_bytes(dir, body, now, certs);
            }
            content::APPLICATION_DATA => {
                let client_app = self.dirs[Dir::ToServer.index()].app_records;
                bump(&mut self.dirs[dir.index()].app_records);
                if dir == Dir::ToClient && client_app > 0 {
                    bump(&mut self.server_app_after_client);
                }
                self.check_established(now);
            }
            _ => {}
        }
    }

    fn on_alert(&mut self, dir: Dir, body: &[u8]) {
        let encrypted = self.dirs[dir.index()].encrypted || body.len() != 2;
        let alert = if encrypted {
            Alert {
                level: 0,
                description: None,
                by: dir,
            }
        } else {
            Alert {
                level: body[0],
                description: Some(body[1]),
                by: dir,
            }
        };
        if self.established_at.is_some() {
            return;
        }
        // close_notify is not an error; any other plaintext alert of level 2, an unknown
        // level, or an encrypted alert before completion ends the handshake.
        let benign = alert.description == Some(0) || alert.level == 1;
        if !benign {
            self.fatal_alert = true;
        }
        if self.alert.is_none() || (self.alert.is_some_and(|a| a.level == 1) && !benign) {
            self.alert = Some(alert);
        }
    }

    fn on_handshake_bytes(&mut self, dir: Dir, mut body: &[u8], now: i64, certs: &mut CertCache) {
        let i = dir.index();
        let d = &mut self.dirs[i];
        if d.skip > 0 {
            let n = d.skip.min(body.len());
            d.skip -= n;
            body = &body[n..];
        }
        if d.handshake.is_empty() {
            // The usual case: the record holds whole messages, parsed where they lie; only an
            // incomplete tail is buffered. Copying every record into the buffer and every
            // message out of it again cost two copies of each handshake byte (the
            // certificate chain included) and an allocation a message.
            let used = self.handshake_messages(dir, body, now, certs);
            let tail = body.get(used..).unwrap_or_default();
            if !tail.is_empty() {
                self.dirs[i].handshake.extend_from_slice(tail);
            }
            return;
        }
        d.handshake.extend_from_slice(body);
        // Taken out while its messages are parsed (their handlers never touch it), then put
        // back with what is left.
        let mut buf = std::mem::take(&mut d.handshake);
        let used = self.handshake_messages(dir, &buf, now, certs);
        buf.drain(..used.min(buf.len()));
        self.dirs[i].handshake = buf;
    }

    /// Parses the whole handshake messages at the start of `bytes` and returns the bytes
    /// they took. After the header of a message above [`MAX_HANDSHAKE_LEN`] it counts the
    /// message, skips the rest of it (here and in later records) and returns all of `bytes`.
    fn handshake_messages(
        &mut self,
        dir: Dir,
        bytes: &[u8],
        now: i64,
        certs: &mut CertCache,
    ) -> usize {
        let mut off = 0;
        while let Some(h) = bytes.get(off..off + 4) {
            let len = (usize::from(h[1]) << 16) | (usize::from(h[2]) << 8) | usize::from(h[3]);
            if len > MAX_HANDSHAKE_LEN {
                self.stats.oversized_messages += 1;
                let have = bytes.len() - off - 4;
                self.dirs[dir.index()].skip = len.saturating_sub(have);
                return bytes.len();
            }
            let Some(msg) = bytes.get(off..off + 4 + len) else {
                break;
            };
            self.on_handshake_message(dir, msg, now, certs);
            off += 4 + len;
        }
        off
    }

    fn on_handshake_message(&mut self, dir: Dir, msg: &[u8], now: i64, certs: &mut CertCache) {
        if dir == Dir::ToClient && msg.first() == Some(&2) {
            // ServerHello: some wire forms need more than tls-parser reads (see hello.rs).
            match hello::parse_server_hello(msg) {
                Some(sh) => self.set_server_hello(sh),
                None => self.stats.bad_messages += 1,
            }
            return;
        }
        let parsed = match tls_parser::parse_tls_message_handshake(msg) {
            Ok((_, TlsMessage::Handshake(h))) => h,
            _ => {
                self.stats.bad_messages += 1;
                return;
            }
        };
        match (dir, parsed) {
            (Dir::ToServer, TlsMessageHandshake::ClientHello(ch)) => {
                self.set_client_hello(ClientHello::from_parsed(&ch), now);
            }
            (Dir::ToClient, TlsMessageHandshake::HelloRetryRequest(_)) => self.hello_retry = true,
            (Dir::ToClient, TlsMessageHandshake::Certificate(c)) if self.certificate.is_none() => {
                self.chain_len = u32::try_from(c.cert_chain.len()).unwrap_or(u32::MAX);
                if let Some(leaf) = c.cert_chain.first() {
                    let s = certs.summarise(leaf.data);
                    self.certificate_error = !s.parsed;
                    self.certificate = Some(s.summary);
                }
            }
            (Dir::ToClient, TlsMessageHandshake::ServerDone(_)) => self.server_hello_done = true,
            _ => {}
        }
    }

    fn set_client_hello(&mut self, ch: ClientHello, now: i64) {
        if self.client_hello.is_none() {
            self.client_hello = Some(ch);
            self.client_hello_at = now;
        }
    }

    fn set_server_hello(&mut self, sh: ServerHello) {
        if sh.hello_retry {
            self.hello_retry = true;
            return;
        }
        if sh.version == 0x0304 || is_tls13_draft(sh.version) {
            // Everything the server sends after its ServerHello is encrypted.
            self.dirs[Dir::ToClient.index()].encrypted = true;
        }
        if self.server_hello.is_none() {
            self.server_hello = Some(sh);
        }
    }

    fn check_established(&mut self, now: i64) {
        if self.established_at.is_some() || self.fatal_alert || self.server_hello.is_none() {
            return;
        }
        let done = if self.tls13() {
            self.dirs[Dir::ToServer.index()].app_records >= 2 || self.server_app_after_client >= 1
        } else {
            self.dirs[0].change_cipher_spec && self.dirs[1].change_cipher_spec
        };
        if done {
            self.established_at = Some(now);
        }
    }
}

/// TLS 1.3 draft versions (0x7f0e..=0x7f1c) and Facebook's experimental 0xfbXX.
fn is_tls13_draft(v: u16) -> bool {
    (0x7f00..=0x7fff).contains(&v) || (0xfb00..=0xfbff).contains(&v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(ct: u8, body: &[u8]) -> Vec<u8> {
        let mut r = vec![ct, 3, 3, (body.len() >> 8) as u8, body.len() as u8];
        r.extend_from_slice(body);
        r
    }

    /// A minimal TLS 1.2 ServerHello message choosing `cipher`.
    fn server_hello(cipher: u16) -> Vec<u8> {
        let mut b = vec![3, 3];
        b.extend_from_slice(&[7; 32]);
        b.push(0);
        b.extend_from_slice(&cipher.to_be_bytes());
        b.push(0);
        let mut m = vec![2, 0, 0, b.len() as u8];
        m.extend_from_slice(&b);
        m
    }

    #[test]
    fn message_split_across_records_and_partial_record() {
        let sh = server_hello(0xc02f);
        let mut wire = record(22, &sh[..10]);
        wire.extend(record(22, &sh[10..]));
        let mut p = TlsParser::new();
        // Offer all but the last byte: only the first record is consumed.
        let used = p.feed(Dir::ToClient, &wire[..wire.len() - 1], 5);
        assert_eq!(used, 5 + 10);
        assert!(p.server_hello.is_none());
        let used2 = p.feed(Dir::ToClient, &wire[used..], 6);
        assert_eq!(used + used2, wire.len());
        assert_eq!(p.server_hello.as_ref().map(|s| s.cipher), Some(0xc02f));
    }

    #[test]
    fn two_messages_in_one_record() {
        let mut both = server_hello(0x002f);
        both.extend_from_slice(&[14, 0, 0, 0]); // ServerHelloDone
        let mut p = TlsParser::new();
        p.feed(Dir::ToClient, &record(22, &both), 1);
        assert!(p.server_hello.is_some());
        assert!(p.server_hello_done);
    }

    #[test]
    fn tls12_established_after_both_ccs_and_alert_fails() {
        let mut p = TlsParser::new();
        p.feed(Dir::ToClient, &record(22, &server_hello(0x002f)), 10);
        p.feed(Dir::ToServer, &record(20, &[1]), 20);
        assert!(!p.is_established());
        p.feed(Dir::ToClient, &record(20, &[1]), 30);
        assert_eq!(p.established_at, Some(30));

        let mut q = TlsParser::new();
        q.feed(Dir::ToClient, &record(21, &[2, 40]), 10);
        assert!(q.fatal_alert && q.is_done());
        assert_eq!(q.alert.and_then(|a| a.description), Some(40));
    }

    #[test]
    fn junk_then_resync_after_gap() {
        let mut p = TlsParser::new();
        p.gap(Dir::ToClient);
        let mut wire = b"xx".to_vec();
        wire.extend(record(22, &server_hello(0x1301)));
        let used = p.feed(Dir::ToClient, &wire, 1);
        assert_eq!(used, wire.len());
        assert_eq!(p.stats.junk_bytes, 2);
        assert!(p.server_hello.is_some());
    }

    #[test]
    fn oversized_header_split_across_records_is_skipped_too() {
        // The header arrives in two records: the second goes through the buffered path.
        let mut p = TlsParser::new();
        p.feed(Dir::ToClient, &record(22, &[11, 0x01]), 1);
        assert_eq!(p.dirs[1].handshake, vec![11, 0x01]);
        let mut rest = vec![0x00, 0x00];
        rest.extend_from_slice(&[0; 100]);
        p.feed(Dir::ToClient, &record(22, &rest), 2);
        assert_eq!(p.stats.oversized_messages, 1);
        assert!(p.dirs[1].handshake.is_empty());
        assert_eq!(p.dirs[1].skip, 65536 - 100);
        // What follows the skipped message is parsed again.
        for chunk in vec![0u8; 65536 - 100].chunks(16_000) {
            p.feed(Dir::ToClient, &record(22, chunk), 3);
        }
        assert_eq!(p.dirs[1].skip, 0);
        p.feed(Dir::ToClient, &record(22, &server_hello(0xc02f)), 4);
        assert_eq!(p.server_hello.as_ref().map(|s| s.cipher), Some(0xc02f));
    }

    #[test]
    fn oversized_message_is_skipped_not_buffered() {
        let mut p = TlsParser::new();
        let mut body = vec![11, 0x01, 0x00, 0x00]; // Certificate of 65536 bytes
        body.extend_from_slice(&[0; 100]);
        p.feed(Dir::ToClient, &record(22, &body), 1);
        assert_eq!(p.stats.oversized_messages, 1);
        assert!(p.dirs[1].handshake.is_empty());
        assert_eq!(p.dirs[1].skip, 65536 - 100);
    }
}

/// Tests on real bytes: a ClientHello from OpenSSL 3.0 `s_client -starttls smtp -tls1_3` and a
/// Postfix 3.7 TLS 1.2 server flight (ServerHello, Certificate, ServerKeyExchange,
/// ServerHelloDone), both cut from `../shared/corpus/peers/mailpeers-2026.pcap` (frames 200 and
/// 27). Expected fingerprints are tshark 4.0's reading of the same frames.
#[cfg(test)]
mod real_bytes {
    use super::*;
    use crate::fingerprint::{ja3, ja3s, ja4, md5_hex, Transport};

    const CLIENT_HELLO: &[u8] = include_bytes!("testdata/openssl-tls13-client-hello.bin");
    const SERVER_FLIGHT: &[u8] = include_bytes!("testdata/postfix-tls12-server-flight.bin");

    #[test]
    fn openssl_client_hello() {
        let mut p = TlsParser::new();
        assert_eq!(p.feed(Dir::ToServer, CLIENT_HELLO, 1), CLIENT_HELLO.len());
        let ch = p.client_hello.as_ref().expect("ClientHello parsed");
        assert_eq!(
            ja3(ch),
            "771,4866-4867-4865-255,0-11-10-35-22-23-13-43-45-51,29-23-30-25-24-256-257-258-259-260,0-1-2"
        );
        assert_eq!(md5_hex(&ja3(ch)), "f146948b4a599d4d7ddf071b74696983");
        assert_eq!(ch.sni.as_deref(), Some("mx.example.test"));
        assert_eq!(ch.max_version(), 0x0304);
        assert!(ja4(ch, Transport::Tcp).starts_with("t13d0410"));
    }

    #[test]
    fn client_hello_fed_byte_by_byte() {
        let mut p = TlsParser::new();
        let mut used = 0;
        for end in 1..=CLIENT_HELLO.len() {
            used += p.feed(Dir::ToServer, &CLIENT_HELLO[used..end], 1);
        }
        assert_eq!(used, CLIENT_HELLO.len());
        assert!(p.client_hello.is_some());
    }

    #[test]
    fn postfix_server_flight() {
        let mut p = TlsParser::new();
        assert_eq!(p.feed(Dir::ToClient, SERVER_FLIGHT, 1), SERVER_FLIGHT.len());
        let sh = p.server_hello.as_ref().expect("ServerHello parsed");
        assert_eq!(sh.cipher, 0xc02f);
        assert_eq!(md5_hex(&ja3s(sh)), "1af33e1657631357c73119488045302c");
        assert!(p.server_hello_done);
        assert_eq!(p.chain_len, 1);
        let cert = p.certificate.as_ref().expect("certificate parsed");
        assert_eq!(cert.subject_cn, "mx.example.test");
        assert_eq!(cert.sans, vec!["mx.example.test", "mail.example.test"]);
        assert!(cert.self_signed);
        assert_eq!((cert.key_alg.as_str(), cert.key_bits), ("RSA", 2048));
        assert_eq!(cert.sig_alg, "sha256WithRSAEncryption");
        assert_eq!(cert.not_after - cert.not_before, 30 * 86400);
    }

    /// The server flight's handshake bytes, re-cut into records of `size` bytes: record
    /// boundaries fall inside headers and messages, so messages are parsed both where they
    /// lie and from the buffer, and the result must not depend on it.
    #[test]
    fn server_flight_in_records_of_every_size() {
        let mut handshake = Vec::new();
        let mut rest = SERVER_FLIGHT;
        while let Some(hdr) = RecordHeader::parse(rest) {
            let end = HEADER_LEN + hdr.len;
            if hdr.content_type == content::HANDSHAKE {
                handshake.extend_from_slice(&rest[HEADER_LEN..end]);
            }
            rest = &rest[end..];
        }
        let mut whole = TlsParser::new();
        whole.feed(Dir::ToClient, SERVER_FLIGHT, 1);
        assert!(whole.certificate.is_some() && whole.server_hello_done);
        for size in (1..=80).chain([255, 1000, handshake.len()]) {
            let mut p = TlsParser::new();
            for chunk in handshake.chunks(size) {
                let mut r = vec![content::HANDSHAKE, 3, 3];
                r.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
                r.extend_from_slice(chunk);
                assert_eq!(p.feed(Dir::ToClient, &r, 1), r.len());
            }
            assert_eq!(p.server_hello, whole.server_hello, "records of {size}");
            assert_eq!(p.certificate, whole.certificate, "records of {size}");
            assert_eq!(p.chain_len, whole.chain_len, "records of {size}");
            assert!(p.server_hello_done, "records of {size}");
            assert_eq!(p.stats.bad_messages, 0, "records of {size}");
            assert!(p.dirs[1].handshake.is_empty(), "records of {size}");
        }
    }

    #[test]
    fn names_are_kept_when_the_certificate_does_not_parse() {
        let mut p = TlsParser::new();
        p.feed(Dir::ToClient, SERVER_FLIGHT, 1);
        let cert = p.certificate.clone().expect("certificate parsed");
        // The leaf is the first DER SEQUENCE with a two-byte length ("30 82 hi lo").
        let start = SERVER_FLIGHT
            .windows(2)
            .position(|w| w == [0x30, 0x82])
            .expect("a DER certificate");
        let len = 4
            + ((usize::from(SERVER_FLIGHT[start + 2]) << 8)
                | usize::from(SERVER_FLIGHT[start + 3]));
        let der = &SERVER_FLIGHT[start..start + len];
        assert_eq!(CertSummary::from_der(der).as_ref(), Ok(&cert));
        let fallback = CertSummary::unparsed(der);
        assert_eq!(fallback.sha256, cert.sha256);
        assert_eq!(fallback.subject_cn, cert.subject_cn);
        assert_eq!(fallback.issuer, cert.issuer);
        assert!(fallback.self_signed);
    }

    #[test]
    fn truncated_prefixes_never_panic() {
        for end in 0..SERVER_FLIGHT.len() {
            let mut p = TlsParser::new();
            let used = p.feed(Dir::ToClient, &SERVER_FLIGHT[..end], 1);
            assert!(used <= end);
        }
    }
}

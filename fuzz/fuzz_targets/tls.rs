//! `TlsParser::feed` on both directions, split at arbitrary points, with gaps; then the
//! fingerprints (JA3, JA3S, JA4), the fingerprint cache (it must answer what computing
//! gives) and registry look-ups on whatever hellos were parsed.
//!
//! Input: the chunk format of `mailtls_fuzz` (one chunk per segment).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailtls_parsers::fingerprint::{
    ja3, ja3s, ja4, md5_hex, ClientFingerprints, FingerprintCache, ServerFingerprints, Transport,
};
use mailtls_parsers::registry;
use mailtls_parsers::tls::TlsParser;
use mailtls_parsers::Dir;

const DIRS: [Dir; 2] = [Dir::ToServer, Dir::ToClient];
/// A record header plus the largest body a header may announce, plus an SSLv2 hello.
const MAX_LEFTOVER: usize = 5 + 0xffff;

fuzz_target!(|data: &[u8]| {
    let mut p = TlsParser::new();
    let mut buf: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut now: i64 = 1_700_000_000_000_000;
    for c in mailtls_fuzz::chunks(data) {
        let i = c.dir_index();
        let dir = DIRS[i];
        now += c.advance_us();
        if c.gap() {
            buf[i].clear();
            p.gap(dir);
        }
        buf[i].extend_from_slice(c.data);
        if c.hold() {
            continue;
        }
        let used = p.feed(dir, &buf[i], now);
        assert!(used <= buf[i].len(), "feed used {used} of {}", buf[i].len());
        buf[i].drain(..used);
        assert!(buf[i].len() <= MAX_LEFTOVER, "{} bytes left", buf[i].len());
        let _ = p.is_done();
        let _ = p.is_established();
        let _ = p.is_resumed();
        let _ = p.negotiated_version();
        let _ = p.handshake_micros();
    }
    // No ordering between `established_at` and `client_hello_at` is promised: a ServerHello
    // and both ChangeCipherSpecs may come before the first ClientHello the parser sees (then
    // `handshake_micros` is None). See CAMPAIGN.md, H1.
    if let Some(ch) = &p.client_hello {
        let j = ja3(ch);
        assert_eq!(md5_hex(&j).len(), 32);
        for t in [Transport::Tcp, Transport::Quic, Transport::Dtls] {
            let f = ja4(ch, t);
            assert!(f.is_ascii(), "JA4 not ASCII: {f:?}");
            assert_eq!(f.split('_').count(), 3, "JA4 shape: {f:?}");
        }
        // The cache computes a miss from the hello's key fields only: on any hello it must
        // answer what computing from the whole hello gives, on the miss and on the hit.
        let mut cache = FingerprintCache::new(2);
        for t in [Transport::Tcp, Transport::Quic, Transport::Dtls] {
            let want = ClientFingerprints::of(ch, t);
            assert_eq!(cache.client(ch, t), want, "miss");
            assert_eq!(cache.client(ch, t), want, "hit");
        }
        let _ = ch.max_version();
        let _ = ch.has_fallback_scsv();
        for c in &ch.ciphers {
            let _ = registry::cipher_suite(*c);
            let _ = registry::is_grease(*c);
        }
        for v in &ch.versions {
            let _ = registry::version_name(*v);
            let _ = registry::version_rank(*v);
        }
    }
    if let Some(sh) = &p.server_hello {
        let j = ja3s(sh);
        assert_eq!(md5_hex(&j).len(), 32);
        let mut cache = FingerprintCache::new(1);
        let want = ServerFingerprints::of(sh);
        assert_eq!(cache.server(sh), want, "miss");
        assert_eq!(cache.server(sh), want, "hit");
        let _ = registry::cipher_suite(sh.cipher);
        let _ = registry::version_name(sh.version);
    }
    if let Some(a) = p.alert {
        if let Some(d) = a.description {
            let _ = registry::alert_name(d);
        }
    }
    if let Some(cert) = &p.certificate {
        assert_eq!(cert.sha256.len(), 64);
    }
});

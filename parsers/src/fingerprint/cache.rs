//! A small cache of fingerprints, keyed by the hello fields they are made of.
//!
//! A sensor sees the same few client and server TLS stacks over and over (a mail server's
//! peers run a handful of Postfix/OpenSSL/Exchange builds), and every session of one stack
//! sends the same cipher, extension and group lists. Computing JA3, JA4 and JA3S builds
//! their strings, sorts two lists, and runs two MD5 and two SHA-256 digests: perf put that at
//! 7 % of all CPU on all-mail traffic. A lookup here hashes the lists and compares them with
//! the stored copy.
//!
//! A hit returns exactly what computing would return:
//! - the stored key fields are compared element by element, never trusted on their hash
//!   alone;
//! - on a miss the fingerprints are computed from a hello that holds *only* the key fields
//!   ([`client_inputs`]), so a cached value cannot depend on anything the key leaves out
//!   (the SNI text, the ALPN names, the session id); a test checks that real hellos give
//!   the same fingerprints with and without those fields.
//!
//! Bounded: at most `capacity` client and `capacity` server entries (FIFO replacement). A
//! capacity of 0 disables it without allocating.

use super::{ja3, ja3s, ja4, md5_hex, Transport};
use crate::tls::{ClientHello, ServerHello};
use std::hash::{BuildHasher, Hash, Hasher};

/// The fingerprints of a ClientHello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFingerprints {
    /// The JA3 string.
    pub ja3: String,
    /// Its MD5, lowercase hex.
    pub ja3_hash: String,
    /// The JA4 fingerprint.
    pub ja4: String,
}

impl ClientFingerprints {
    /// Computes them (no cache).
    pub fn of(ch: &ClientHello, transport: Transport) -> Self {
        let ja3 = ja3(ch);
        ClientFingerprints {
            ja3_hash: md5_hex(&ja3),
            ja3,
            ja4: ja4(ch, transport),
        }
    }
}

/// The fingerprints of a ServerHello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFingerprints {
    /// The JA3S string.
    pub ja3s: String,
    /// Its MD5, lowercase hex.
    pub ja3s_hash: String,
}

impl ServerFingerprints {
    /// Computes them (no cache).
    pub fn of(sh: &ServerHello) -> Self {
        let ja3s = ja3s(sh);
        ServerFingerprints {
            ja3s_hash: md5_hex(&ja3s),
            ja3s,
        }
    }
}

/// The fields of a ClientHello that JA3 and JA4 read, and nothing else. [`same_client`] and
/// [`hash_client`] list the same fields.
fn client_inputs(ch: &ClientHello) -> ClientHello {
    ClientHello {
        legacy_version: ch.legacy_version,
        ciphers: ch.ciphers.clone(),
        extensions: ch.extensions.clone(),
        groups: ch.groups.clone(),
        point_formats: ch.point_formats.clone(),
        sigalgs: ch.sigalgs.clone(),
        versions: ch.versions.clone(),
        first_alpn_raw: ch.first_alpn_raw.clone(),
        ..ClientHello::default()
    }
}

fn same_client(a: &ClientHello, b: &ClientHello) -> bool {
    a.legacy_version == b.legacy_version
        && a.ciphers == b.ciphers
        && a.extensions == b.extensions
        && a.groups == b.groups
        && a.point_formats == b.point_formats
        && a.sigalgs == b.sigalgs
        && a.versions == b.versions
        && a.first_alpn_raw == b.first_alpn_raw
}

fn hash_client(h: &mut impl Hasher, ch: &ClientHello) {
    ch.legacy_version.hash(h);
    ch.ciphers.hash(h);
    ch.extensions.hash(h);
    ch.groups.hash(h);
    ch.point_formats.hash(h);
    ch.sigalgs.hash(h);
    ch.versions.hash(h);
    ch.first_alpn_raw.hash(h);
}

/// The fields of a ServerHello that JA3S reads, and nothing else.
fn server_inputs(sh: &ServerHello) -> ServerHello {
    ServerHello {
        legacy_version: sh.legacy_version,
        cipher: sh.cipher,
        extensions: sh.extensions.clone(),
        ..ServerHello::default()
    }
}

fn same_server(a: &ServerHello, b: &ServerHello) -> bool {
    a.legacy_version == b.legacy_version && a.cipher == b.cipher && a.extensions == b.extensions
}

fn hash_server(h: &mut impl Hasher, sh: &ServerHello) {
    sh.legacy_version.hash(h);
    sh.cipher.hash(h);
    sh.extensions.hash(h);
}

/// Entries of one kind: hashes in a list of their own, so a lookup scans one array of u64.
#[derive(Debug)]
struct Slots<K, V> {
    hashes: Vec<u64>,
    entries: Vec<(K, V)>,
    /// Next entry to replace once full.
    next: usize,
}

impl<K, V: Clone> Slots<K, V> {
    fn new() -> Self {
        Slots {
            hashes: Vec::new(),
            entries: Vec::new(),
            next: 0,
        }
    }

    fn find(&self, hash: u64, same: impl Fn(&K) -> bool) -> Option<&V> {
        self.hashes
            .iter()
            .zip(&self.entries)
            .find(|(h, (k, _))| **h == hash && same(k))
            .map(|(_, (_, v))| v)
    }

    fn insert(&mut self, capacity: usize, hash: u64, key: K, value: V) {
        if self.entries.len() < capacity {
            self.hashes.push(hash);
            self.entries.push((key, value));
        } else if let (Some(h), Some(e)) = (
            self.hashes.get_mut(self.next),
            self.entries.get_mut(self.next),
        ) {
            *h = hash;
            *e = (key, value);
            self.next = (self.next + 1) % capacity;
        }
    }
}

/// JA3/JA4 by ClientHello and JA3S by ServerHello, at most `capacity` of each.
#[derive(Debug)]
pub struct FingerprintCache {
    clients: Slots<(Transport, ClientHello), ClientFingerprints>,
    servers: Slots<ServerHello, ServerFingerprints>,
    capacity: usize,
    hasher: foldhash::fast::FixedState,
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that computed the fingerprints.
    pub misses: u64,
}

impl FingerprintCache {
    /// A cache of at most `capacity` client and `capacity` server entries (0: no caching).
    pub fn new(capacity: usize) -> Self {
        FingerprintCache {
            clients: Slots::new(),
            servers: Slots::new(),
            capacity,
            // A fixed seed is enough: a collision only costs a comparison of the lists.
            hasher: foldhash::fast::FixedState::default(),
            hits: 0,
            misses: 0,
        }
    }

    /// JA3, its hash and JA4 of `ch`, from the cache when a hello with the same fields was
    /// fingerprinted before.
    pub fn client(&mut self, ch: &ClientHello, transport: Transport) -> ClientFingerprints {
        if self.capacity == 0 {
            return ClientFingerprints::of(ch, transport);
        }
        let hash = {
            let mut h = self.hasher.build_hasher();
            (transport as u8).hash(&mut h);
            hash_client(&mut h, ch);
            h.finish()
        };
        let found = self
            .clients
            .find(hash, |(t, k)| *t == transport && same_client(k, ch));
        if let Some(fp) = found {
            self.hits += 1;
            return fp.clone();
        }
        self.misses += 1;
        let inputs = client_inputs(ch);
        let fp = ClientFingerprints::of(&inputs, transport);
        self.clients
            .insert(self.capacity, hash, (transport, inputs), fp.clone());
        fp
    }

    /// JA3S and its hash of `sh`, from the cache when a hello with the same fields was
    /// fingerprinted before.
    pub fn server(&mut self, sh: &ServerHello) -> ServerFingerprints {
        if self.capacity == 0 {
            return ServerFingerprints::of(sh);
        }
        let hash = {
            let mut h = self.hasher.build_hasher();
            hash_server(&mut h, sh);
            h.finish()
        };
        if let Some(fp) = self.servers.find(hash, |k| same_server(k, sh)) {
            self.hits += 1;
            return fp.clone();
        }
        self.misses += 1;
        let inputs = server_inputs(sh);
        let fp = ServerFingerprints::of(&inputs);
        self.servers.insert(self.capacity, hash, inputs, fp.clone());
        fp
    }

    /// Client and server entries held now.
    pub fn len(&self) -> usize {
        self.clients.entries.len() + self.servers.entries.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for FingerprintCache {
    /// No caching.
    fn default() -> Self {
        FingerprintCache::new(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::hello::ext;

    /// A ClientHello of real shape (OpenSSL 3 as Postfix sends it, GREASE-free), with an
    /// SNI and ALPN.
    fn openssl_hello() -> ClientHello {
        ClientHello {
            legacy_version: 0x0303,
            ciphers: vec![
                0x1302, 0x1303, 0x1301, 0xc02c, 0xc030, 0x009f, 0xcca9, 0x00ff,
            ],
            extensions: vec![
                ext::SERVER_NAME,
                0x000b,
                0x000a,
                0x0016,
                0x0017,
                0x000d,
                ext::SUPPORTED_VERSIONS,
                0x002d,
                0x0033,
                0x0010,
            ],
            groups: vec![0x001d, 0x0017, 0x001e, 0x0019, 0x0018],
            point_formats: vec![0, 1, 2],
            sigalgs: vec![0x0403, 0x0503, 0x0603, 0x0807, 0x0808],
            versions: vec![0x0304, 0x0303],
            sni: Some("mx.example.test".into()),
            alpn: vec!["smtp".into()],
            first_alpn_raw: b"smtp".to_vec(),
            session_id: vec![7; 32],
            has_ticket: true,
            sslv2: false,
        }
    }

    #[test]
    fn fields_outside_the_key_change_no_fingerprint() {
        let full = openssl_hello();
        let stripped = client_inputs(&full);
        assert_eq!(
            ClientFingerprints::of(&full, Transport::Tcp),
            ClientFingerprints::of(&stripped, Transport::Tcp)
        );
        let sh = ServerHello {
            legacy_version: 0x0303,
            version: 0x0304,
            cipher: 0x1302,
            extensions: vec![0x002b, 0x0033],
            session_id: vec![1; 32],
            hello_retry: false,
            psk_accepted: true,
            alpn: Some("smtp".into()),
        };
        assert_eq!(
            ServerFingerprints::of(&sh),
            ServerFingerprints::of(&server_inputs(&sh))
        );
    }

    #[test]
    fn a_hit_is_what_computing_gives_and_other_sni_text_hits() {
        let mut c = FingerprintCache::new(4);
        let a = openssl_hello();
        let mut b = openssl_hello();
        b.sni = Some("other.example".into());
        b.session_id.clear();
        let want = ClientFingerprints::of(&a, Transport::Tcp);
        assert_eq!(c.client(&a, Transport::Tcp), want);
        assert_eq!(c.client(&b, Transport::Tcp), want);
        assert_eq!((c.hits, c.misses), (1, 1));
        // Another transport is another JA4.
        assert_eq!(
            c.client(&a, Transport::Quic),
            ClientFingerprints::of(&a, Transport::Quic)
        );
        assert_eq!(c.misses, 2);
    }

    #[test]
    fn every_key_field_matters_and_the_cache_stays_bounded() {
        let mut c = FingerprintCache::new(3);
        let base = openssl_hello();
        let variants: Vec<ClientHello> = (0..9)
            .map(|i| {
                let mut h = base.clone();
                match i {
                    0 => {}
                    1 => h.legacy_version = 0x0301,
                    2 => h.ciphers.swap(0, 1),
                    3 => h.extensions.retain(|e| *e != ext::SERVER_NAME),
                    4 => {
                        h.groups.pop();
                    }
                    5 => h.point_formats.clear(),
                    6 => h.sigalgs.push(0x0201),
                    7 => h.versions = vec![0x0303],
                    _ => h.first_alpn_raw = b"h2".to_vec(),
                }
                h
            })
            .collect();
        let computed: Vec<ClientFingerprints> = variants
            .iter()
            .map(|h| ClientFingerprints::of(h, Transport::Tcp))
            .collect();
        for round in 0..3 {
            for (h, want) in variants.iter().zip(&computed) {
                assert_eq!(&c.client(h, Transport::Tcp), want, "round {round}");
                assert!(c.len() <= 3);
            }
        }
        // All nine differ in JA3 or JA4, so no two share an entry.
        for (i, a) in computed.iter().enumerate() {
            for b in &computed[i + 1..] {
                assert_ne!(a, b);
            }
        }
        let mut off = FingerprintCache::new(0);
        assert_eq!(off.client(&base, Transport::Tcp), computed[0]);
        assert!(off.is_empty());
    }

    #[test]
    fn server_hellos_are_cached_by_version_cipher_and_extensions() {
        let mut c = FingerprintCache::new(2);
        let mut sh = ServerHello {
            legacy_version: 0x0303,
            cipher: 0xc030,
            extensions: vec![0xff01, 0x000b, 0x0023],
            ..ServerHello::default()
        };
        let first = c.server(&sh);
        assert_eq!(first, ServerFingerprints::of(&sh));
        sh.alpn = Some("smtp".into());
        assert_eq!(c.server(&sh), first);
        sh.cipher = 0xc02f;
        assert_eq!(c.server(&sh), ServerFingerprints::of(&sh));
        assert_ne!(c.server(&sh), first);
        assert_eq!((c.hits, c.misses), (2, 2));
    }
}

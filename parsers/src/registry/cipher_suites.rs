//! Cipher suite table and the strength classification.
//!
//! A suite's IANA name is split into its components (key exchange, authentication,
//! bulk cipher, cipher mode, MAC/PRF hash, export flag) by [`Components::parse`]. Each
//! component is given a [`Severity`] by the per-component rules in [`Components::severity`],
//! which are the only place where the classification is decided. The suite's
//! [`CipherClass`] is then fixed by the worst severity found, exactly as ciphersuite.info
//! does it (see the module documentation of [`super`] for the source and the spot checks).

use std::sync::OnceLock;

use super::names::IANA_CIPHER_SUITES;
use super::{CipherClass, CipherSuite};

/// Severity of the worst known problem of one component, on ciphersuite.info's scale.
///
/// The variants are ordered, so the worst of several is their `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Severity {
    /// No known problem: the component alone allows "recommended".
    None,
    /// Low-severity problem: caps the suite at "secure".
    Low,
    /// Medium-severity problem: caps the suite at "weak".
    Medium,
    /// High-severity problem: the suite is "insecure".
    High,
}

impl Severity {
    /// The class a suite gets when this is its worst severity.
    pub(super) fn class(self) -> CipherClass {
        match self {
            Severity::None => CipherClass::Recommended,
            Severity::Low => CipherClass::Secure,
            Severity::Medium => CipherClass::Weak,
            Severity::High => CipherClass::Insecure,
        }
    }
}

/// Key exchange named by a suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyExchange {
    /// No key exchange (`TLS_NULL_WITH_NULL_NULL`, and the signalling values).
    Null,
    /// RSA key transport (no forward secrecy).
    Rsa,
    /// Static finite-field Diffie-Hellman.
    Dh,
    /// Ephemeral finite-field Diffie-Hellman.
    Dhe,
    /// Static elliptic-curve Diffie-Hellman.
    Ecdh,
    /// Ephemeral elliptic-curve Diffie-Hellman.
    Ecdhe,
    /// Plain pre-shared key.
    Psk,
    /// Kerberos 5.
    Krb5,
    /// Secure Remote Password.
    Srp,
    /// Elliptic-curve password authenticated key exchange (RFC 8492).
    EccPwd,
    /// GOST R 34.11-2012 based key agreement (RFC 9189, RFC 9367).
    Gost,
    /// TLS 1.3 suite: the key exchange is negotiated separately and always ephemeral.
    Tls13,
}

/// Authentication named by a suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Authentication {
    /// No authentication at all (`NULL`).
    Null,
    /// Anonymous (`anon`): no server authentication.
    Anon,
    /// RSA signatures (or RSA key transport, which authenticates implicitly).
    Rsa,
    /// DSA signatures.
    Dss,
    /// ECDSA signatures.
    Ecdsa,
    /// Pre-shared key.
    Psk,
    /// Kerberos 5 tickets.
    Krb5,
    /// SRP verifier (SHA-1 based), optionally with an RSA or DSS certificate.
    SrpSha,
    /// Password (RFC 8492).
    EccPwd,
    /// GOST R 34.10-2012 signatures.
    Gost,
    /// TLS 1.3 suite: authentication is negotiated separately.
    Tls13,
}

/// Bulk encryption algorithm named by a suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cipher {
    /// No encryption.
    Null,
    /// RC4 (any key size).
    Rc4,
    /// RC2 (export key sizes only in the registry).
    Rc2,
    /// Single DES, including the 40-bit export variants.
    Des,
    /// Triple DES (EDE).
    TripleDes,
    /// IDEA.
    Idea,
    /// SEED.
    Seed,
    /// AES-128 or AES-256.
    Aes,
    /// ARIA-128 or ARIA-256.
    Aria,
    /// Camellia-128 or Camellia-256.
    Camellia,
    /// ChaCha20 (with Poly1305).
    Chacha20,
    /// AEGIS-128L or AEGIS-256.
    Aegis,
    /// ShangMi 4.
    Sm4,
    /// GOST ciphers: Kuznyechik, Magma, GOST 28147-89.
    Gost,
}

/// Mode of operation of the bulk cipher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Stream cipher or no encryption.
    Stream,
    /// Cipher block chaining with a separate HMAC (MAC-then-encrypt).
    Cbc,
    /// Galois/counter mode (AEAD).
    Gcm,
    /// Counter with CBC-MAC, 16-byte tag (AEAD).
    Ccm,
    /// Counter with CBC-MAC, 8-byte tag (AEAD).
    Ccm8,
    /// An AEAD construction named by the cipher itself (ChaCha20-Poly1305, AEGIS).
    Aead,
    /// Counter mode with a separate MAC (GOST CTR/CNT with OMAC/IMIT).
    Ctr,
    /// Multilinear Galois mode (GOST AEAD).
    Mgm,
}

/// Last component of the name: the record MAC (non-AEAD suites) or the PRF/handshake hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mac {
    /// No integrity protection at all.
    Null,
    /// HMAC-MD5.
    Md5,
    /// HMAC-SHA1 (`_SHA`).
    Sha1,
    /// SHA-256, SHA-384 or SHA-512.
    Sha2,
    /// ShangMi 3.
    Sm3,
    /// GOST MACs (OMAC, IMIT).
    Gost,
    /// The suite is AEAD and names no separate hash (e.g. `TLS_RSA_WITH_AES_128_CCM`).
    Aead,
}

/// A cipher suite broken into the parts its IANA name spells out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Components {
    /// `EXPORT` suite (deliberately weakened for 1990s US export rules).
    pub(super) export: bool,
    /// Key exchange.
    pub(super) kx: KeyExchange,
    /// Authentication.
    pub(super) auth: Authentication,
    /// Bulk cipher.
    pub(super) cipher: Cipher,
    /// Mode of the bulk cipher.
    pub(super) mode: Mode,
    /// MAC or PRF hash.
    pub(super) mac: Mac,
}

impl Components {
    /// Splits an IANA cipher suite name into its components.
    ///
    /// Understands every name of the registry (the unit tests parse them all): TLS 1.0-1.2
    /// `TLS_<kx>[_<auth>][_EXPORT]_WITH_<cipher>[_<size>][_<mode>]_<mac>` names, the TLS 1.3
    /// `TLS_<cipher>_..._<hash>` names, the integrity-only `TLS_SHA256_SHA256` of RFC 9150
    /// and the two signalling values (`*_SCSV`, parsed as "nothing at all"). Returns `None`
    /// for anything else.
    pub(super) fn parse(name: &str) -> Option<Components> {
        let rest = name.strip_prefix("TLS_")?;
        if rest.ends_with("_SCSV") {
            return Some(Components {
                export: false,
                kx: KeyExchange::Null,
                auth: Authentication::Null,
                cipher: Cipher::Null,
                mode: Mode::Stream,
                mac: Mac::Null,
            });
        }
        let (export, kx, auth, bulk) = match rest.split_once("_WITH_") {
            Some((kx_part, bulk)) => {
                let (export, kx, auth) = parse_key_exchange(kx_part)?;
                (export, kx, auth, bulk)
            }
            None => (false, KeyExchange::Tls13, Authentication::Tls13, rest),
        };
        let (cipher, mode, mac) = parse_bulk(bulk)?;
        Some(Components {
            export,
            kx,
            auth,
            cipher,
            mode,
            mac,
        })
    }

    /// The per-component rules: the severity each component contributes.
    ///
    /// These follow ciphersuite.info's vulnerability database (fixture
    /// `directory/fixtures/00_vulnerabilities.yaml` and `01_technologies.yaml` of
    /// <https://github.com/hcrudolph/ciphersuite.info>, severities high/medium/low) and
    /// the verdicts the site publishes; where the site's data says nothing about a
    /// component the rule is derived from its criteria and marked "derived".
    pub(super) fn severity(&self) -> Severity {
        let export = if self.export {
            // "Export-grade cipher suite" (FREAK, Logjam): high.
            Severity::High
        } else {
            Severity::None
        };
        let kx = match self.kx {
            // No key exchange at all (derived: no confidentiality is possible).
            KeyExchange::Null => Severity::High,
            // "Non-ephemeral key exchange" (no perfect forward secrecy): medium.
            KeyExchange::Rsa
            | KeyExchange::Dh
            | KeyExchange::Ecdh
            | KeyExchange::Psk
            | KeyExchange::Krb5 => Severity::Medium,
            // The site rates every TLS_DHE_* suite weak, AEAD ones included
            // (D(HE)at, CVE-2002-20001, on top of Raccoon): medium.
            KeyExchange::Dhe => Severity::Medium,
            // "The GOST algorithms ... security is not proven": high.
            KeyExchange::Gost => Severity::High,
            KeyExchange::Ecdhe | KeyExchange::Srp | KeyExchange::EccPwd | KeyExchange::Tls13 => {
                Severity::None
            }
        };
        let auth = match self.auth {
            // "Anonymous key exchange" / "NULL Authentication" (man in the middle): high.
            Authentication::Null | Authentication::Anon => Severity::High,
            // "RSA Authentication": low (the site's reason: RSA keys above 3072 bits
            // cause server performance problems). This is why ECDHE_RSA AEAD suites are
            // "secure" on the site while their ECDHE_ECDSA twins are "recommended".
            Authentication::Rsa => Severity::Low,
            // SRP's verifier is SHA-1 based ("Secure Hash Algorithm 1"): medium.
            Authentication::SrpSha => Severity::Medium,
            Authentication::Gost => Severity::High,
            Authentication::Dss
            | Authentication::Ecdsa
            | Authentication::Psk
            | Authentication::Krb5
            | Authentication::EccPwd
            | Authentication::Tls13 => Severity::None,
        };
        let cipher = match self.cipher {
            // "NULL Encryption", "Rivest Cipher 4" (RFC 7465), "Rivest Cipher 2",
            // "Data Encryption Standard", "ShangMi 4 Encryption", "GOST": high.
            Cipher::Null | Cipher::Rc4 | Cipher::Rc2 | Cipher::Des | Cipher::Sm4 | Cipher::Gost => {
                Severity::High
            }
            // "Triple-DES" (Sweet32, 64-bit block): medium.
            Cipher::TripleDes => Severity::Medium,
            // AEGIS is not (yet) on the site: derived, no known weakness.
            Cipher::Idea
            | Cipher::Seed
            | Cipher::Aes
            | Cipher::Aria
            | Cipher::Camellia
            | Cipher::Chacha20
            | Cipher::Aegis => Severity::None,
        };
        let mode = match self.mode {
            // "Cipher Block Chaining" (Lucky13, BEAST, padding oracles): medium.
            Mode::Cbc => Severity::Medium,
            // CCM and CCM_8: low. The site rates every otherwise clean CCM suite
            // (TLS_AES_128_CCM_SHA256, TLS_ECDHE_ECDSA_WITH_AES_128_CCM[_8], ...) "secure"
            // and never "recommended"; CCM_8 also has only a 64-bit tag.
            Mode::Ccm | Mode::Ccm8 => Severity::Low,
            Mode::Stream | Mode::Gcm | Mode::Aead | Mode::Ctr | Mode::Mgm => Severity::None,
        };
        let mac = match self.mac {
            // "NULL Integrity", "Message Digest 5", "ShangMi 3 Hash": high.
            Mac::Null | Mac::Md5 | Mac::Sm3 => Severity::High,
            // "Secure Hash Algorithm 1" (SHAttered): medium.
            Mac::Sha1 => Severity::Medium,
            Mac::Sha2 | Mac::Gost | Mac::Aead => Severity::None,
        };
        export.max(kx).max(auth).max(cipher).max(mode).max(mac)
    }

    /// The strength class of a suite with these components.
    pub(super) fn class(&self) -> CipherClass {
        self.severity().class()
    }
}

/// Parses the part between `TLS_` and `_WITH_`: `(export, key exchange, authentication)`.
fn parse_key_exchange(part: &str) -> Option<(bool, KeyExchange, Authentication)> {
    let mut export = false;
    let mut tokens: Vec<&str> = Vec::with_capacity(4);
    for token in part.split('_') {
        if token.starts_with("EXPORT") {
            export = true;
        } else {
            tokens.push(token);
        }
    }
    let (kx, auth) = match tokens.as_slice() {
        ["NULL"] => (KeyExchange::Null, Authentication::Null),
        ["RSA"] => (KeyExchange::Rsa, Authentication::Rsa),
        ["RSA", "PSK"] => (KeyExchange::Rsa, Authentication::Psk),
        ["PSK"] => (KeyExchange::Psk, Authentication::Psk),
        // RFC 6655 spells DHE_PSK backwards for its CCM_8 suites.
        ["DHE", "PSK"] | ["PSK", "DHE"] => (KeyExchange::Dhe, Authentication::Psk),
        ["DH", auth] => (KeyExchange::Dh, parse_signature(auth)?),
        ["DHE", auth] => (KeyExchange::Dhe, parse_signature(auth)?),
        ["ECDH", auth] => (KeyExchange::Ecdh, parse_signature(auth)?),
        ["ECDHE", "PSK"] => (KeyExchange::Ecdhe, Authentication::Psk),
        ["ECDHE", auth] => (KeyExchange::Ecdhe, parse_signature(auth)?),
        ["KRB5"] => (KeyExchange::Krb5, Authentication::Krb5),
        ["SRP", "SHA"] | ["SRP", "SHA", "RSA"] | ["SRP", "SHA", "DSS"] => {
            (KeyExchange::Srp, Authentication::SrpSha)
        }
        ["ECCPWD"] => (KeyExchange::EccPwd, Authentication::EccPwd),
        ["GOSTR341112", "256"] => (KeyExchange::Gost, Authentication::Gost),
        _ => return None,
    };
    Some((export, kx, auth))
}

/// Parses the authentication token after a (EC)DH(E) key exchange.
fn parse_signature(token: &str) -> Option<Authentication> {
    match token {
        "RSA" => Some(Authentication::Rsa),
        "DSS" => Some(Authentication::Dss),
        "ECDSA" => Some(Authentication::Ecdsa),
        "anon" => Some(Authentication::Anon),
        _ => None,
    }
}

/// Parses a MAC / hash token, if `token` is one.
fn parse_mac(token: &str) -> Option<Mac> {
    match token {
        "NULL" => Some(Mac::Null),
        "MD5" => Some(Mac::Md5),
        "SHA" => Some(Mac::Sha1),
        "SHA256" | "SHA384" | "SHA512" => Some(Mac::Sha2),
        "SM3" => Some(Mac::Sm3),
        "OMAC" | "IMIT" => Some(Mac::Gost),
        _ => None,
    }
}

/// Parses the bulk part (after `_WITH_`, or after `TLS_` for TLS 1.3 names):
/// `(cipher, mode, mac)`.
fn parse_bulk(part: &str) -> Option<(Cipher, Mode, Mac)> {
    let mut tokens = part.split('_');
    let first = tokens.next()?;
    let (cipher, mut mode) = match first {
        "NULL" => (Cipher::Null, Mode::Stream),
        "RC4" => (Cipher::Rc4, Mode::Stream),
        "RC2" => (Cipher::Rc2, Mode::Stream),
        "DES" | "DES40" => (Cipher::Des, Mode::Stream),
        "3DES" => (Cipher::TripleDes, Mode::Stream),
        "IDEA" => (Cipher::Idea, Mode::Stream),
        "SEED" => (Cipher::Seed, Mode::Stream),
        "AES" => (Cipher::Aes, Mode::Stream),
        "ARIA" => (Cipher::Aria, Mode::Stream),
        "CAMELLIA" => (Cipher::Camellia, Mode::Stream),
        "CHACHA20" => (Cipher::Chacha20, Mode::Stream),
        "AEGIS" => (Cipher::Aegis, Mode::Aead),
        "SM4" => (Cipher::Sm4, Mode::Stream),
        "KUZNYECHIK" | "MAGMA" | "28147" => (Cipher::Gost, Mode::Stream),
        // RFC 9150 integrity-only TLS 1.3 suites: TLS_SHA256_SHA256, TLS_SHA384_SHA384.
        "SHA256" | "SHA384" => (Cipher::Null, Mode::Stream),
        _ => return None,
    };
    let mut mac = None;
    for token in tokens {
        if mac.is_some() {
            // Nothing may follow the MAC.
            return None;
        }
        match token {
            "CBC" => mode = Mode::Cbc,
            "GCM" => mode = Mode::Gcm,
            "CCM" => mode = Mode::Ccm,
            "8" if mode == Mode::Ccm => mode = Mode::Ccm8,
            "POLY1305" => mode = Mode::Aead,
            "CTR" | "CNT" => mode = Mode::Ctr,
            "MGM" => mode = Mode::Mgm,
            // MGM tag length (L = full, S = short); the suite is AEAD.
            "L" | "S" if mode == Mode::Mgm => mac = Some(Mac::Aead),
            // Key sizes and the 3DES "EDE".
            "EDE" | "128L" => {}
            _ if token.bytes().all(|b| b.is_ascii_digit()) && !token.is_empty() => {}
            _ => mac = Some(parse_mac(token)?),
        }
    }
    let mac = match mac {
        Some(mac) => mac,
        // RFC 6655 CCM suites name no hash: they are AEAD with the default PRF.
        None if matches!(mode, Mode::Ccm | Mode::Ccm8) => Mac::Aead,
        None => return None,
    };
    Some((cipher, mode, mac))
}

/// The table, built once from the IANA names and the classification rules.
fn table() -> &'static [CipherSuite] {
    static TABLE: OnceLock<Vec<CipherSuite>> = OnceLock::new();
    TABLE.get_or_init(|| {
        IANA_CIPHER_SUITES
            .iter()
            .map(|&(code, name)| CipherSuite {
                code,
                name,
                // Every registry name parses (unit-tested); were one not to, calling it
                // insecure is the safe side.
                class: Components::parse(name).map_or(CipherClass::Insecure, |c| c.class()),
            })
            .collect()
    })
}

/// All IANA cipher suites, sorted by code.
pub(super) fn all() -> &'static [CipherSuite] {
    table()
}

/// The suite with this code, by binary search.
pub(super) fn lookup(code: u16) -> Option<&'static CipherSuite> {
    let table = table();
    table
        .binary_search_by_key(&code, |suite| suite.code)
        .ok()
        .and_then(|index| table.get(index))
}

//! IANA registries for TLS: cipher suites with a strength class, protocol version names,
//! alert names, and GREASE detection.
//!
//! # Cipher suites
//!
//! [`cipher_suites()`] is the whole IANA "TLS Cipher Suites" registry
//! (<https://www.iana.org/assignments/tls-parameters/tls-parameters.xhtml#tls-parameters-4>):
//! every assigned code point with its IANA name, sorted by code. [`cipher_suite()`] looks one
//! up by binary search. Unassigned and reserved codes, GREASE values ([`is_grease`]) and
//! the old non-IANA `EXPORT1024` suites (0x0060..0x0066) are not in it.
//!
//! # Strength classes: ciphersuite.info
//!
//! Each suite's [`CipherClass`] follows one published classification, the one of
//! **ciphersuite.info** (<https://ciphersuite.info>; its source and vulnerability
//! database are public at <https://github.com/hcrudolph/ciphersuite.info>). The site breaks
//! every suite into protocol, key exchange, authentication, encryption and hash, attaches
//! known vulnerabilities with a severity (high, medium, low) to each of those algorithms,
//! and rates the suite by the worst severity found:
//!
//! | worst severity | class |
//! |---|---|
//! | high | [`CipherClass::Insecure`] |
//! | medium | [`CipherClass::Weak`] |
//! | low | [`CipherClass::Secure`] |
//! | none | [`CipherClass::Recommended`] |
//!
//! The same is done here: the IANA name is parsed into its components and each component
//! is rated by one set of rules (`Components::severity` in `cipher_suites.rs`, the single
//! place where they live). Per component:
//!
//! - **High → insecure**: export-grade (`EXPORT`); no authentication (`NULL`, `anon`);
//!   no encryption (`NULL`); RC4 (RFC 7465); RC2; single DES (incl. 40-bit); MD5; no MAC;
//!   ShangMi SM4/SM3 and GOST algorithms (the site: "security not proven, not recommended
//!   by the IETF").
//! - **Medium → weak**: no forward secrecy (RSA key transport, static DH/ECDH, plain PSK,
//!   Kerberos); finite-field DHE (the site rates every `TLS_DHE_*` suite weak, AEAD ones
//!   included: D(HE)at, CVE-2002-20001); CBC mode (Lucky13, BEAST); 3DES (Sweet32);
//!   HMAC-SHA1 (`_SHA`) and SRP's SHA-1 verifier.
//! - **Low → secure**: RSA authentication (the site's reason: large RSA keys cause server
//!   performance problems), CCM and CCM_8 modes.
//! - **None → recommended**: ECDHE (and TLS 1.3, ECCPWD) key exchange, ECDSA/PSK
//!   authentication, AES/ARIA/Camellia-GCM, ChaCha20-Poly1305, SHA-2.
//!
//! Spot checks against the verdicts ciphersuite.info publishes (all of them, for every
//! suite the site lists, are in the unit tests):
//!
//! | suite | ciphersuite.info |
//! |---|---|
//! | `TLS_RSA_WITH_RC4_128_SHA`, `TLS_ECDHE_RSA_WITH_RC4_128_SHA` | insecure |
//! | `TLS_RSA_EXPORT_WITH_RC4_40_MD5`, `TLS_RSA_WITH_NULL_SHA256` | insecure |
//! | `TLS_DH_anon_WITH_AES_128_GCM_SHA256`, `TLS_KRB5_WITH_3DES_EDE_CBC_MD5` | insecure |
//! | `TLS_SM4_GCM_SM3`, `TLS_SHA256_SHA256`, `TLS_GOSTR341112_256_WITH_KUZNYECHIK_MGM_L` | insecure |
//! | `TLS_RSA_WITH_3DES_EDE_CBC_SHA` (3DES is weak, not insecure) | weak |
//! | `TLS_RSA_WITH_AES_128_CBC_SHA`, `TLS_RSA_WITH_AES_128_GCM_SHA256` | weak |
//! | `TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256`, `TLS_DHE_RSA_WITH_AES_128_GCM_SHA256` | weak |
//! | `TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256`, `TLS_PSK_WITH_AES_128_GCM_SHA256` | weak |
//! | `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`, `TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256` | secure |
//! | `TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8`, `TLS_AES_128_CCM_SHA256` | secure |
//! | `TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256`, `TLS_ECDHE_PSK_WITH_AES_128_GCM_SHA256` | recommended |
//! | `TLS_AES_128_GCM_SHA256`, `TLS_AES_256_GCM_SHA384`, `TLS_CHACHA20_POLY1305_SHA256` | recommended |
//!
//! Note that the site rates `TLS_ECDHE_RSA_WITH_AES_*_GCM_*` "secure", not "recommended",
//! only because of RSA authentication: with ECDSA the same suite is "recommended".
//!
//! Derived from the criteria, because the site has no verdict for them:
//! `TLS_AEGIS_256_SHA512` and `TLS_AEGIS_128L_SHA256` (TLS 1.3, AEAD, no known weakness:
//! recommended), and the two signalling values [`TLS_EMPTY_RENEGOTIATION_INFO_SCSV`] and
//! [`TLS_FALLBACK_SCSV`], which carry no algorithm at all and are classed insecure (as
//! `TLS_NULL_WITH_NULL_NULL` is). Callers ranking the suites a client *offers* should skip
//! those two and GREASE values rather than read a class into them.

mod alerts;
mod cipher_suites;
mod names;
mod versions;

#[cfg(test)]
mod tests;

/// Strength class of a cipher suite, following ciphersuite.info's classification.
///
/// Ordered from worst to best, so `max`/`min` over classes give the best/worst.
/// See the [module documentation](self) for the rules and their source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CipherClass {
    /// Broken or providing no protection: NULL/anonymous/export, RC4, DES, MD5, ...
    Insecure,
    /// Old: no forward secrecy, CBC mode, 3DES, SHA-1 MAC, finite-field DHE.
    Weak,
    /// Forward secret AEAD with a minor reservation (RSA authentication, CCM).
    Secure,
    /// Forward secret AEAD with nothing known against any component.
    Recommended,
}

impl CipherClass {
    /// Lower-case name: `"insecure"`, `"weak"`, `"secure"` or `"recommended"`.
    pub fn as_str(self) -> &'static str {
        match self {
            CipherClass::Insecure => "insecure",
            CipherClass::Weak => "weak",
            CipherClass::Secure => "secure",
            CipherClass::Recommended => "recommended",
        }
    }
}

/// One IANA TLS cipher suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CipherSuite {
    /// The two-byte code point.
    pub code: u16,
    /// The IANA name, e.g. `"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"`.
    pub name: &'static str,
    /// Strength class (ciphersuite.info).
    pub class: CipherClass,
}

/// Signalling value of RFC 7507: the client is retrying with a lower version.
pub const TLS_FALLBACK_SCSV: u16 = 0x5600;

/// Signalling value of RFC 5746: the client supports secure renegotiation.
pub const TLS_EMPTY_RENEGOTIATION_INFO_SCSV: u16 = 0x00ff;

/// The IANA cipher suite with this code, or `None` if the code is not assigned
/// (including GREASE values). O(log n).
pub fn cipher_suite(code: u16) -> Option<&'static CipherSuite> {
    cipher_suites::lookup(code)
}

/// Every assigned IANA cipher suite, sorted by code, without duplicates.
pub fn cipher_suites() -> &'static [CipherSuite] {
    cipher_suites::all()
}

/// Name of a protocol version as it appears in `ClientHello.legacy_version`,
/// `supported_versions` or a record header.
///
/// `0x0002` "SSLv2", `0x0300` "SSLv3", `0x0301` "TLSv1.0", `0x0302` "TLSv1.1",
/// `0x0303` "TLSv1.2", `0x0304` "TLSv1.3"; the TLS 1.3 drafts `0x7f0e..=0x7f1c` and
/// Facebook's experimental `0xfb00..=0xfbff` are also "TLSv1.3"; DTLS `0xfeff`
/// "DTLSv1.0", `0xfefd` "DTLSv1.2", `0xfefc` "DTLSv1.3". Anything else (GREASE
/// included) gives `""`.
pub fn version_name(code: u16) -> &'static str {
    versions::name(code)
}

/// Rank of a protocol version for picking the best one: SSLv2 1, SSLv3 2, TLS 1.0 3,
/// TLS 1.1 4, TLS 1.2 5, TLS 1.3 (drafts and Facebook's variant included) 6; unknown
/// values and GREASE 0.
///
/// DTLS versions rank as the TLS version they are derived from (DTLS 1.0 as TLS 1.1,
/// DTLS 1.2 as TLS 1.2, DTLS 1.3 as TLS 1.3).
pub fn version_rank(code: u16) -> u8 {
    versions::rank(code)
}

/// Name of a TLS alert description, in the snake_case of the IANA "TLS Alerts" registry
/// and RFC 8446/5246 (e.g. 40 `"handshake_failure"`, 112 `"unrecognized_name"`);
/// `"unknown"` for unassigned values.
pub fn alert_name(description: u8) -> &'static str {
    alerts::name(description)
}

/// Whether a value is an RFC 8701 GREASE value: both bytes equal, low nibble 0xA
/// (`0x0a0a`, `0x1a1a`, ..., `0xfafa`). GREASE values appear among cipher suites,
/// extensions, groups, signature algorithms and versions.
pub fn is_grease(value: u16) -> bool {
    versions::is_grease(value)
}

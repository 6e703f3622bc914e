//! Summary of the server's leaf certificate (TLS <= 1.2, where certificates travel in clear),
//! on `x509-parser`.

use sha2::{Digest, Sha256};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

/// Most subjectAltNames kept; the rest are dropped (and `sans_truncated` is set).
pub const MAX_SANS: usize = 64;
/// Longest string kept for a name field, in bytes.
pub const MAX_FIELD_LEN: usize = 255;

/// What the sensor keeps of a leaf certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertSummary {
    /// Subject common name (first CN), empty when absent.
    pub subject_cn: String,
    /// DNS names and IP addresses from subjectAltName, at most [`MAX_SANS`].
    pub sans: Vec<String>,
    /// Whether more SANs existed than were kept.
    pub sans_truncated: bool,
    /// Issuer distinguished name, RFC 4514 style.
    pub issuer: String,
    /// notBefore, seconds since the epoch.
    pub not_before: i64,
    /// notAfter, seconds since the epoch.
    pub not_after: i64,
    /// Public key algorithm: RSA, EC, DSA, Ed25519, Ed448, GOST or the OID.
    pub key_alg: String,
    /// Public key size in bits (0 when unknown).
    pub key_bits: u32,
    /// Signature algorithm short name (sha256WithRSAEncryption, ecdsa-with-SHA256, ...).
    pub sig_alg: String,
    /// SHA-256 of the DER, lowercase hex.
    pub sha256: String,
    /// Whether issuer and subject are the same name.
    pub self_signed: bool,
}

/// Why a certificate could not be summarised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("certificate is not valid DER X.509")]
pub struct CertError;

impl CertSummary {
    /// What is known of a certificate `x509-parser` rejected as a whole (e.g. a UTCTime with
    /// a zone offset, which RFC 5280 forbids but real CAs have issued): its SHA-256, and the
    /// subject CN and issuer when those names themselves parse.
    pub fn unparsed(der: &[u8]) -> Self {
        let mut out = CertSummary {
            sha256: hex::encode(Sha256::digest(der)),
            ..CertSummary::default()
        };
        if let Some((issuer, subject)) = tbs_names(der) {
            if let Ok((_, name)) = x509_parser::x509::X509Name::from_der(subject) {
                out.subject_cn = name
                    .iter_common_name()
                    .next()
                    .and_then(|cn| cn.as_str().ok())
                    .map(capped)
                    .unwrap_or_default();
                out.self_signed = issuer == subject;
            }
            if let Ok((_, name)) = x509_parser::x509::X509Name::from_der(issuer) {
                out.issuer = capped(&name.to_string());
            }
        }
        out
    }

    /// Summarises one DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, CertError> {
        let sha256 = hex::encode(Sha256::digest(der));
        let (_, cert) = X509Certificate::from_der(der).map_err(|_| CertError)?;
        let subject_cn = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(capped)
            .unwrap_or_default();
        let mut sans = Vec::new();
        let mut sans_truncated = false;
        if let Ok(Some(ext)) = cert.subject_alternative_name() {
            for name in &ext.value.general_names {
                let text = match name {
                    GeneralName::DNSName(d) => capped(d),
                    GeneralName::IPAddress(ip) => ip_text(ip),
                    _ => continue,
                };
                if sans.len() == MAX_SANS {
                    sans_truncated = true;
                    break;
                }
                sans.push(text);
            }
        }
        let spki = cert.public_key();
        let registry = x509_parser::objects::oid_registry();
        let alg_oid = &spki.algorithm.algorithm;
        let (key_alg, key_bits) = match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => ("RSA".to_string(), rsa.key_size()),
            Ok(PublicKey::EC(ec)) => ("EC".to_string(), ec.key_size()),
            Ok(PublicKey::DSA(y)) => ("DSA".to_string(), y.len() * 8),
            Ok(PublicKey::GostR3410(y)) | Ok(PublicKey::GostR3410_2012(y)) => {
                ("GOST".to_string(), y.len() * 8)
            }
            _ => {
                let name = match alg_oid.to_id_string().as_str() {
                    "1.3.101.112" => "Ed25519".to_string(),
                    "1.3.101.113" => "Ed448".to_string(),
                    other => x509_parser::objects::oid2sn(alg_oid, registry)
                        .map(str::to_string)
                        .unwrap_or_else(|_| other.to_string()),
                };
                let bits = match name.as_str() {
                    "Ed25519" => 256,
                    "Ed448" => 456,
                    _ => spki.subject_public_key.data.len() * 8,
                };
                (name, bits)
            }
        };
        let sig_oid = &cert.signature_algorithm.algorithm;
        let sig_alg = x509_parser::objects::oid2sn(sig_oid, registry)
            .map(str::to_string)
            .unwrap_or_else(|_| sig_oid.to_id_string());
        Ok(CertSummary {
            subject_cn,
            sans,
            sans_truncated,
            issuer: capped(&cert.issuer().to_string()),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            key_alg,
            key_bits: u32::try_from(key_bits).unwrap_or(u32::MAX),
            sig_alg,
            sha256,
            self_signed: cert.subject().as_raw() == cert.issuer().as_raw(),
        })
    }
}

/// Splits one DER TLV off `b`: (tag, whole element, rest). Lengths up to 4 bytes.
fn der_element(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)?;
    let (len, hdr) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let bytes = b.get(2..2 + n)?;
        (
            bytes.iter().fold(0usize, |a, x| (a << 8) | usize::from(*x)),
            2 + n,
        )
    };
    let end = hdr.checked_add(len)?;
    Some((tag, b.get(..end)?, b.get(end..)?))
}

/// The DER of the issuer and subject names inside a certificate, found by walking
/// TBSCertificate (RFC 5280 §4.1) without parsing the other fields.
fn tbs_names(cert: &[u8]) -> Option<(&[u8], &[u8])> {
    let (_, cert_seq, _) = der_element(cert)?;
    let (_, tbs, _) = der_element(cert_seq.get(header_len(cert_seq)?..)?)?;
    let mut rest = tbs.get(header_len(tbs)?..)?;
    let (tag, _, after) = der_element(rest)?;
    if tag == 0xa0 {
        rest = after; // explicit version
    }
    let (_, _, rest) = der_element(rest)?; // serialNumber
    let (_, _, rest) = der_element(rest)?; // signature
    let (_, issuer, rest) = der_element(rest)?;
    let (_, _, rest) = der_element(rest)?; // validity
    let (_, subject, _) = der_element(rest)?;
    Some((issuer, subject))
}

/// Length of the tag and length octets of the element at the start of `b`.
fn header_len(b: &[u8]) -> Option<usize> {
    let first = *b.get(1)?;
    Some(if first < 0x80 {
        2
    } else {
        2 + usize::from(first & 0x7f)
    })
}

fn capped(s: &str) -> String {
    if s.len() <= MAX_FIELD_LEN {
        return s.to_string();
    }
    let mut end = MAX_FIELD_LEN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

fn ip_text(raw: &[u8]) -> String {
    match raw.len() {
        4 => std::net::Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]).to_string(),
        16 => {
            let mut b = [0u8; 16];
            b.copy_from_slice(raw);
            std::net::Ipv6Addr::from(b).to_string()
        }
        _ => hex::encode(raw),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert_eq!(
            CertSummary::from_der(b"\x30\x82\xff\xff junk"),
            Err(CertError)
        );
        assert_eq!(CertSummary::from_der(&[]), Err(CertError));
    }

    #[test]
    fn capped_respects_char_boundaries() {
        let s = "é".repeat(200);
        let c = capped(&s);
        assert!(c.len() <= MAX_FIELD_LEN);
        assert!(c.chars().all(|ch| ch == 'é'));
    }
}

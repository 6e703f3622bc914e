//! Unit tests of the registry.

use std::collections::HashSet;

use super::cipher_suites::{Components, Severity};
use super::*;

/// Class of a suite by name, failing the test if the name is not in the table.
fn class_of(name: &str) -> CipherClass {
    match cipher_suites().iter().find(|suite| suite.name == name) {
        Some(suite) => suite.class,
        None => panic!("{name} is not in the table"),
    }
}

// ---------------------------------------------------------------------------------------
// ciphersuite.info verdicts, by code. Every suite the site rates, transcribed from the
// site's published ratings. Codes in none of these lists are the few the site has no
// verdict for (`DERIVED`).
// ---------------------------------------------------------------------------------------

const CSINFO_RECOMMENDED: &[u16] = &[
    0x1301, 0x1302, 0x1303, 0xC0B0, 0xC0B1, 0xC02B, 0xC02C, 0xC05C, 0xC05D, 0xC086, 0xC087, 0xCCA9,
    0xD001, 0xD002, 0xCCAC,
];

const CSINFO_SECURE: &[u16] = &[
    0x1305, 0x1304, 0xC0B2, 0xC0B3, 0xC0AC, 0xC0AE, 0xC0AD, 0xC0AF, 0xD003, 0xD005, 0xC02F, 0xC030,
    0xC060, 0xC061, 0xC08A, 0xC08B, 0xCCA8,
];

const CSINFO_WEAK: &[u16] = &[
    0x000D, 0x0030, 0x003E, 0x00A4, 0x0036, 0x0068, 0x00A5, 0xC03E, 0xC058, 0xC03F, 0xC059, 0x0042,
    0x00BB, 0xC082, 0x0085, 0x00C1, 0xC083, 0x0097, 0x0013, 0x0032, 0x0040, 0x00A2, 0x0038, 0x006A,
    0x00A3, 0xC042, 0xC056, 0xC043, 0xC057, 0x0044, 0x00BD, 0xC080, 0x0087, 0x00C3, 0xC081, 0x0099,
    0x008F, 0x0090, 0x00B2, 0xC0A6, 0x00AA, 0x0091, 0x00B3, 0xC0A7, 0x00AB, 0xC066, 0xC06C, 0xC067,
    0xC06D, 0xC096, 0xC090, 0xC097, 0xC091, 0xCCAD, 0x0016, 0x0033, 0x0067, 0xC09E, 0xC0A2, 0x009E,
    0x0039, 0x006B, 0xC09F, 0xC0A3, 0x009F, 0xC044, 0xC052, 0xC045, 0xC053, 0x0045, 0x00BE, 0xC07C,
    0x0088, 0x00C4, 0xC07D, 0xCCAA, 0x009A, 0x0010, 0x0031, 0x003F, 0x00A0, 0x0037, 0x0069, 0x00A1,
    0xC040, 0xC054, 0xC041, 0xC055, 0x0043, 0x00BC, 0xC07E, 0x0086, 0x00C2, 0xC07F, 0x0098, 0xC003,
    0xC004, 0xC025, 0xC02D, 0xC005, 0xC026, 0xC02E, 0xC04A, 0xC05E, 0xC04B, 0xC05F, 0xC074, 0xC088,
    0xC075, 0xC089, 0xC008, 0xC009, 0xC023, 0xC00A, 0xC024, 0xC048, 0xC049, 0xC072, 0xC073, 0xC034,
    0xC035, 0xC037, 0xC036, 0xC038, 0xC070, 0xC071, 0xC09A, 0xC09B, 0xC012, 0xC013, 0xC027, 0xC014,
    0xC028, 0xC04C, 0xC04D, 0xC076, 0xC077, 0xC00D, 0xC00E, 0xC029, 0xC031, 0xC00F, 0xC02A, 0xC032,
    0xC04E, 0xC062, 0xC04F, 0xC063, 0xC078, 0xC08C, 0xC079, 0xC08D, 0x001F, 0x0021, 0xC0AA, 0xC0AB,
    0x008B, 0x008C, 0x00AE, 0xC0A4, 0xC0A8, 0x00A8, 0x008D, 0x00AF, 0xC0A5, 0xC0A9, 0x00A9, 0xC064,
    0xC06A, 0xC065, 0xC06B, 0xC094, 0xC08E, 0xC095, 0xC08F, 0xCCAB, 0x0093, 0x0094, 0x00B6, 0x00AC,
    0x0095, 0x00B7, 0x00AD, 0xC068, 0xC06E, 0xC069, 0xC06F, 0xC098, 0xC092, 0xC099, 0xC093, 0xCCAE,
    0x000A, 0x002F, 0x003C, 0xC09C, 0xC0A0, 0x009C, 0x0035, 0x003D, 0xC09D, 0xC0A1, 0x009D, 0xC03C,
    0xC050, 0xC03D, 0xC051, 0x0041, 0x00BA, 0xC07A, 0x0084, 0x00C0, 0xC07B, 0x0007, 0x0096, 0xC01C,
    0xC01F, 0xC022, 0xC01B, 0xC01E, 0xC021, 0xC01A, 0xC01D, 0xC020,
];

const CSINFO_INSECURE: &[u16] = &[
    0x0019, 0x0017, 0x001B, 0x0034, 0x006C, 0x00A6, 0x003A, 0x006D, 0x00A7, 0xC046, 0xC05A, 0xC047,
    0xC05B, 0x0046, 0x00BF, 0xC084, 0x0089, 0x00C5, 0xC085, 0x001A, 0x0018, 0x009B, 0x000B, 0x000C,
    0x0011, 0x0012, 0x002D, 0x00B4, 0x00B5, 0x008E, 0x0014, 0x0015, 0x000E, 0x000F, 0xC017, 0xC018,
    0xC019, 0xC015, 0xC016, 0xC001, 0xC002, 0xC006, 0xC007, 0xC039, 0xC03A, 0xC03B, 0xC033, 0xC010,
    0xC011, 0xC00B, 0xC00C, 0xC102, 0xC100, 0xC103, 0xC105, 0xC101, 0xC104, 0xC106, 0x0029, 0x0026,
    0x002A, 0x0027, 0x002B, 0x0028, 0x0023, 0x0022, 0x001E, 0x0025, 0x0024, 0x0020, 0x0000, 0x002C,
    0x00B0, 0x00B1, 0x008A, 0x0008, 0x0006, 0x0003, 0x002E, 0x00B8, 0x00B9, 0x0092, 0x0009, 0x0001,
    0x0002, 0x003B, 0x0004, 0x0005, 0xC0B4, 0xC0B5, 0x00C7, 0x00C6,
];

/// Registry codes the site gives no verdict for; their class is derived from the rules.
const DERIVED: &[(u16, CipherClass)] = &[
    (0x00FF, CipherClass::Insecure), // TLS_EMPTY_RENEGOTIATION_INFO_SCSV
    (0x1306, CipherClass::Recommended), // TLS_AEGIS_256_SHA512
    (0x1307, CipherClass::Recommended), // TLS_AEGIS_128L_SHA256
    (0x5600, CipherClass::Insecure), // TLS_FALLBACK_SCSV
];

#[test]
fn every_class_matches_ciphersuite_info() {
    let lists = [
        (CSINFO_RECOMMENDED, CipherClass::Recommended),
        (CSINFO_SECURE, CipherClass::Secure),
        (CSINFO_WEAK, CipherClass::Weak),
        (CSINFO_INSECURE, CipherClass::Insecure),
    ];
    let mut expected = std::collections::HashMap::new();
    for (codes, class) in lists {
        for &code in codes {
            assert!(
                expected.insert(code, class).is_none(),
                "{code:#06x} listed twice"
            );
        }
    }
    for &(code, class) in DERIVED {
        assert!(
            expected.insert(code, class).is_none(),
            "{code:#06x} listed twice"
        );
    }
    let mut mismatches = Vec::new();
    for suite in cipher_suites() {
        match expected.remove(&suite.code) {
            Some(class) if class == suite.class => {}
            Some(class) => mismatches.push(format!(
                "{} ({:#06x}): ours {}, ciphersuite.info {}",
                suite.name,
                suite.code,
                suite.class.as_str(),
                class.as_str()
            )),
            None => mismatches.push(format!("{} ({:#06x}): no verdict", suite.name, suite.code)),
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");
    assert!(
        expected.is_empty(),
        "verdicts for codes not in the table: {expected:x?}"
    );
}

#[test]
fn spot_checks() {
    use CipherClass::*;
    let checks = [
        // RC4, NULL, EXPORT, anon, MD5: insecure.
        ("TLS_RSA_WITH_RC4_128_SHA", Insecure),
        ("TLS_RSA_WITH_RC4_128_MD5", Insecure),
        ("TLS_ECDHE_RSA_WITH_RC4_128_SHA", Insecure),
        ("TLS_NULL_WITH_NULL_NULL", Insecure),
        ("TLS_RSA_WITH_NULL_SHA256", Insecure),
        ("TLS_ECDHE_ECDSA_WITH_NULL_SHA", Insecure),
        ("TLS_RSA_EXPORT_WITH_RC4_40_MD5", Insecure),
        ("TLS_DHE_RSA_EXPORT_WITH_DES40_CBC_SHA", Insecure),
        ("TLS_DH_anon_WITH_AES_128_GCM_SHA256", Insecure),
        ("TLS_ECDH_anon_WITH_AES_256_CBC_SHA", Insecure),
        ("TLS_RSA_WITH_DES_CBC_SHA", Insecure),
        ("TLS_KRB5_WITH_3DES_EDE_CBC_MD5", Insecure),
        ("TLS_SM4_GCM_SM3", Insecure),
        ("TLS_SHA256_SHA256", Insecure),
        ("TLS_GOSTR341112_256_WITH_KUZNYECHIK_MGM_L", Insecure),
        // No PFS, CBC, 3DES, DHE: weak.
        ("TLS_RSA_WITH_3DES_EDE_CBC_SHA", Weak),
        ("TLS_RSA_WITH_AES_128_CBC_SHA", Weak),
        ("TLS_RSA_WITH_AES_256_GCM_SHA384", Weak),
        ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", Weak),
        ("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384", Weak),
        ("TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", Weak),
        ("TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256", Weak),
        ("TLS_ECDH_ECDSA_WITH_AES_128_GCM_SHA256", Weak),
        ("TLS_PSK_WITH_AES_128_GCM_SHA256", Weak),
        ("TLS_SRP_SHA_WITH_AES_128_CBC_SHA", Weak),
        // RSA authentication or CCM: secure.
        ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", Secure),
        ("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", Secure),
        ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", Secure),
        ("TLS_ECDHE_ECDSA_WITH_AES_128_CCM", Secure),
        ("TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8", Secure),
        ("TLS_AES_128_CCM_SHA256", Secure),
        ("TLS_AES_128_CCM_8_SHA256", Secure),
        // PFS + AEAD with nothing against it: recommended.
        ("TLS_AES_128_GCM_SHA256", Recommended),
        ("TLS_AES_256_GCM_SHA384", Recommended),
        ("TLS_CHACHA20_POLY1305_SHA256", Recommended),
        ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", Recommended),
        ("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", Recommended),
        ("TLS_ECDHE_PSK_WITH_AES_256_GCM_SHA384", Recommended),
    ];
    for (name, class) in checks {
        assert_eq!(class_of(name), class, "{name}");
    }
}

#[test]
fn lookup_by_code() {
    let suite = cipher_suite(0xC02F).expect("0xC02F is assigned");
    assert_eq!(suite.name, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256");
    assert_eq!(suite.class, CipherClass::Secure);
    assert_eq!(
        cipher_suite(0x0005).map(|s| s.name),
        Some("TLS_RSA_WITH_RC4_128_SHA")
    );
    assert_eq!(
        cipher_suite(0x1301).map(|s| s.name),
        Some("TLS_AES_128_GCM_SHA256")
    );
    assert_eq!(
        cipher_suite(0xC0B4).map(|s| s.name),
        Some("TLS_SHA256_SHA256")
    );
    assert_eq!(
        cipher_suite(TLS_FALLBACK_SCSV).map(|s| s.name),
        Some("TLS_FALLBACK_SCSV")
    );
    assert_eq!(
        cipher_suite(TLS_EMPTY_RENEGOTIATION_INFO_SCSV).map(|s| s.name),
        Some("TLS_EMPTY_RENEGOTIATION_INFO_SCSV")
    );
    assert_eq!(
        cipher_suite(0xC106).map(|s| s.name),
        Some("TLS_GOSTR341112_256_WITH_MAGMA_MGM_S")
    );
    // Unassigned, reserved and GREASE codes.
    for code in [
        0x001C, 0x0047, 0x0060, 0x00C8, 0x1300, 0x1308, 0xC000, 0xC0B6, 0xD004,
    ] {
        assert!(cipher_suite(code).is_none(), "{code:#06x}");
    }
    for code in (0..16u16).map(|i| 0x0a0a + i * 0x1010) {
        assert!(cipher_suite(code).is_none(), "{code:#06x}");
    }
    // Every table entry is found by its code.
    for suite in cipher_suites() {
        assert_eq!(cipher_suite(suite.code), Some(suite));
    }
}

#[test]
fn table_sorted_unique_and_complete() {
    let table = cipher_suites();
    assert!(
        table.windows(2).all(|w| w[0].code < w[1].code),
        "sorted by code without duplicates"
    );
    let names: HashSet<&str> = table.iter().map(|s| s.name).collect();
    assert_eq!(names.len(), table.len(), "names are unique");
    // The whole registry: 0x0000..=0x00C7 less the reserved ranges, 0x00FF,
    // 0x1301..=0x1307, 0x5600, 0xC001..=0xC0B5, 0xC100..=0xC106, 0xCCA8..=0xCCAE,
    // 0xD001..=0xD003 and 0xD005.
    let mut expected: Vec<u16> = (0x0000..=0x001B)
        .chain(0x001E..=0x0046)
        .chain(0x0067..=0x006D)
        .chain(0x0084..=0x00C7)
        .chain([0x00FF])
        .chain(0x1301..=0x1307)
        .chain([0x5600])
        .chain(0xC001..=0xC0B5)
        .chain(0xC100..=0xC106)
        .chain(0xCCA8..=0xCCAE)
        .chain([0xD001, 0xD002, 0xD003, 0xD005])
        .collect();
    expected.sort_unstable();
    let codes: Vec<u16> = table.iter().map(|s| s.code).collect();
    assert_eq!(codes, expected);
    assert_eq!(table.len(), 352);
    for suite in table {
        assert!(suite.name.starts_with("TLS_"), "{}", suite.name);
        assert!(!is_grease(suite.code), "{}", suite.name);
    }
}

#[test]
fn every_name_parses() {
    for suite in cipher_suites() {
        assert!(
            Components::parse(suite.name).is_some(),
            "{} does not parse",
            suite.name
        );
    }
    assert!(Components::parse("SSL_CK_RC4_128_WITH_MD5").is_none());
    assert!(Components::parse("TLS_FOO_WITH_AES_128_GCM_SHA256").is_none());
    assert!(Components::parse("TLS_RSA_WITH_AES_128_GCM").is_none());
    assert!(Components::parse("TLS_RSA_WITH_AES_128_GCM_SHA256_SHA256").is_none());
}

#[test]
fn components_of_some_names() {
    use super::cipher_suites::{Authentication, Cipher, KeyExchange, Mac, Mode};
    let parsed = |name| Components::parse(name).expect(name);

    let c = parsed("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256");
    assert_eq!(
        (c.export, c.kx, c.auth, c.cipher, c.mode, c.mac),
        (
            false,
            KeyExchange::Ecdhe,
            Authentication::Rsa,
            Cipher::Aes,
            Mode::Gcm,
            Mac::Sha2
        )
    );
    let c = parsed("TLS_KRB5_EXPORT_WITH_DES_CBC_40_MD5");
    assert_eq!(
        (c.export, c.kx, c.cipher, c.mode, c.mac),
        (true, KeyExchange::Krb5, Cipher::Des, Mode::Cbc, Mac::Md5)
    );
    let c = parsed("TLS_PSK_DHE_WITH_AES_256_CCM_8");
    assert_eq!(
        (c.kx, c.auth, c.mode, c.mac),
        (KeyExchange::Dhe, Authentication::Psk, Mode::Ccm8, Mac::Aead)
    );
    let c = parsed("TLS_AES_128_CCM_8_SHA256");
    assert_eq!(
        (c.kx, c.mode, c.mac),
        (KeyExchange::Tls13, Mode::Ccm8, Mac::Sha2)
    );
    let c = parsed("TLS_DH_anon_WITH_3DES_EDE_CBC_SHA");
    assert_eq!(
        (c.kx, c.auth, c.cipher, c.mode, c.mac),
        (
            KeyExchange::Dh,
            Authentication::Anon,
            Cipher::TripleDes,
            Mode::Cbc,
            Mac::Sha1
        )
    );
    let c = parsed("TLS_SRP_SHA_DSS_WITH_AES_256_CBC_SHA");
    assert_eq!((c.kx, c.auth), (KeyExchange::Srp, Authentication::SrpSha));
    let c = parsed("TLS_SHA384_SHA384");
    assert_eq!((c.cipher, c.mac), (Cipher::Null, Mac::Sha2));
    let c = parsed("TLS_AEGIS_128L_SHA256");
    assert_eq!((c.cipher, c.mode), (Cipher::Aegis, Mode::Aead));
    let c = parsed("TLS_GOSTR341112_256_WITH_28147_CNT_IMIT");
    assert_eq!(
        (c.kx, c.cipher, c.mode, c.mac),
        (KeyExchange::Gost, Cipher::Gost, Mode::Ctr, Mac::Gost)
    );
    assert_eq!(
        parsed("TLS_CHACHA20_POLY1305_SHA256").severity(),
        Severity::None
    );
    assert_eq!(
        parsed("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256").severity(),
        Severity::Low
    );
}

#[test]
fn names_agree_with_tls_parser() {
    let mut compared = 0;
    for suite in cipher_suites() {
        if let Some(theirs) = tls_parser::TlsCipherSuite::from_id(suite.code) {
            assert_eq!(theirs.name, suite.name, "{:#06x}", suite.code);
            compared += 1;
        }
    }
    // tls-parser 0.12 knows every IANA suite except the GOST ones.
    assert!(compared >= 340, "only {compared} codes compared");
    // And every IANA-range suite tls-parser knows is in the table.
    for code in 0..=u16::MAX {
        if (0x0060..=0x0066).contains(&code) {
            // Non-IANA EXPORT1024 suites (reserved range in the registry).
            continue;
        }
        if let Some(theirs) = tls_parser::TlsCipherSuite::from_id(code) {
            assert_eq!(
                cipher_suite(code).map(|s| s.name),
                Some(theirs.name),
                "{code:#06x}"
            );
        }
    }
}

#[test]
fn class_names_and_order() {
    assert_eq!(CipherClass::Insecure.as_str(), "insecure");
    assert_eq!(CipherClass::Weak.as_str(), "weak");
    assert_eq!(CipherClass::Secure.as_str(), "secure");
    assert_eq!(CipherClass::Recommended.as_str(), "recommended");
    assert!(CipherClass::Insecure < CipherClass::Weak);
    assert!(CipherClass::Weak < CipherClass::Secure);
    assert!(CipherClass::Secure < CipherClass::Recommended);
}

#[test]
fn version_names() {
    let cases = [
        (0x0002, "SSLv2"),
        (0x0300, "SSLv3"),
        (0x0301, "TLSv1.0"),
        (0x0302, "TLSv1.1"),
        (0x0303, "TLSv1.2"),
        (0x0304, "TLSv1.3"),
        (0x7f0e, "TLSv1.3"),
        (0x7f12, "TLSv1.3"),
        (0x7f1c, "TLSv1.3"),
        (0xfb1a, "TLSv1.3"),
        (0xfb00, "TLSv1.3"),
        (0xfbff, "TLSv1.3"),
        (0xfeff, "DTLSv1.0"),
        (0xfefd, "DTLSv1.2"),
        (0xfefc, "DTLSv1.3"),
        (0x0000, ""),
        (0x0200, ""),
        (0x0305, ""),
        (0x7f0d, ""),
        (0x7f1d, ""),
        (0xfefe, ""),
        (0x0a0a, ""),
        (0xfafa, ""),
    ];
    for (code, name) in cases {
        assert_eq!(version_name(code), name, "{code:#06x}");
    }
}

#[test]
fn version_ranks() {
    let cases = [
        (0x0002, 1),
        (0x0300, 2),
        (0x0301, 3),
        (0x0302, 4),
        (0x0303, 5),
        (0x0304, 6),
        (0x7f17, 6),
        (0xfb1a, 6),
        (0xfeff, 4),
        (0xfefd, 5),
        (0xfefc, 6),
        (0x0000, 0),
        (0x0305, 0),
        (0x1a1a, 0),
        (0xeaea, 0),
    ];
    for (code, rank) in cases {
        assert_eq!(version_rank(code), rank, "{code:#06x}");
    }
    // Best of a typical supported_versions list with GREASE.
    let offered = [0x5a5a, 0x0304, 0x0303, 0x0302];
    assert_eq!(
        offered.iter().copied().max_by_key(|&v| version_rank(v)),
        Some(0x0304)
    );
    // A known name always has a non-zero rank and vice versa.
    for code in 0..=u16::MAX {
        assert_eq!(
            version_name(code).is_empty(),
            version_rank(code) == 0,
            "{code:#06x}"
        );
    }
}

#[test]
fn grease() {
    let all: Vec<u16> = (0..16u16)
        .map(|i| (i << 12) | 0x0a00 | (i << 4) | 0x0a)
        .collect();
    assert_eq!(all.first(), Some(&0x0a0a));
    assert_eq!(all.last(), Some(&0xfafa));
    for &value in &all {
        assert!(is_grease(value), "{value:#06x}");
    }
    assert_eq!((0..=u16::MAX).filter(|&v| is_grease(v)).count(), 16);
    for value in [
        0x0000, 0x0a0b, 0x0b0a, 0x1a2a, 0xabab, 0x0303, 0x1301, 0x5600, 0x00ff, 0xa0a0,
    ] {
        assert!(!is_grease(value), "{value:#06x}");
    }
}

#[test]
fn alert_names() {
    let cases = [
        (0, "close_notify"),
        (10, "unexpected_message"),
        (20, "bad_record_mac"),
        (21, "decryption_failed"),
        (22, "record_overflow"),
        (30, "decompression_failure"),
        (40, "handshake_failure"),
        (41, "no_certificate"),
        (42, "bad_certificate"),
        (43, "unsupported_certificate"),
        (44, "certificate_revoked"),
        (45, "certificate_expired"),
        (46, "certificate_unknown"),
        (47, "illegal_parameter"),
        (48, "unknown_ca"),
        (49, "access_denied"),
        (50, "decode_error"),
        (51, "decrypt_error"),
        (60, "export_restriction"),
        (70, "protocol_version"),
        (71, "insufficient_security"),
        (80, "internal_error"),
        (86, "inappropriate_fallback"),
        (90, "user_canceled"),
        (100, "no_renegotiation"),
        (109, "missing_extension"),
        (110, "unsupported_extension"),
        (112, "unrecognized_name"),
        (113, "bad_certificate_status_response"),
        (115, "unknown_psk_identity"),
        (116, "certificate_required"),
        (120, "no_application_protocol"),
        (121, "ech_required"),
        (1, "unknown"),
        (99, "unknown"),
        (118, "unknown"),
        (255, "unknown"),
    ];
    for (code, name) in cases {
        assert_eq!(alert_name(code), name, "{code}");
    }
}

#[test]
fn alert_names_agree_with_tls_parser() {
    // tls-parser names the same alerts in CamelCase; check we know every one it knows.
    for code in 0..=u8::MAX {
        let theirs = format!("{}", tls_parser::TlsAlertDescription(code));
        let known_to_them = !theirs.starts_with("TlsAlertDescription");
        if known_to_them {
            assert_ne!(alert_name(code), "unknown", "{code} ({theirs})");
        }
    }
}

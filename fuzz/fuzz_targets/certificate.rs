//! `CertSummary::from_der` and `CertSummary::unparsed` on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailtls_parsers::tls::certificate::{MAX_FIELD_LEN, MAX_SANS};
use mailtls_parsers::tls::CertSummary;

fn check(s: &CertSummary) {
    assert_eq!(s.sha256.len(), 64);
    assert!(
        s.subject_cn.len() <= MAX_FIELD_LEN,
        "CN {} bytes",
        s.subject_cn.len()
    );
    assert!(
        s.issuer.len() <= MAX_FIELD_LEN,
        "issuer {} bytes",
        s.issuer.len()
    );
    assert!(s.sans.len() <= MAX_SANS);
    // No per-SAN cap is promised: IP SANs of odd length come out as hex of any length.
}

fuzz_target!(|data: &[u8]| {
    let un = CertSummary::unparsed(data);
    check(&un);
    if let Ok(s) = CertSummary::from_der(data) {
        check(&s);
        assert_eq!(s.sha256, un.sha256);
    }
});

//! TLS fingerprints: JA3 and JA3S (Salesforce, BSD-3-Clause) and JA4 (FoxIO, BSD-3-Clause;
//! JA4S/JA4X are under FoxIO's own licence and deliberately not implemented).
//!
//! All three take the owned hello summaries of [`crate::tls::hello`], so they can be
//! computed once per session without touching wire bytes again.

mod ja3;
mod ja4;

pub use ja3::{ja3, ja3s, md5_hex};
pub use ja4::{ja4, Transport};

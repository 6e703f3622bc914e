//! # Brief overview
//!
//! `mailtls-parsers` holds the pure, sans-IO parsers of mailtls. Nothing here opens a
//! socket, spawns a thread or reads a clock: callers feed bytes (reassembled TCP payload,
//! one direction at a time) and timestamps, and read back facts.
//!
//! - [`smtp::SmtpParser`]: the SMTP dialogue up to the point TLS starts (banner, EHLO,
//!   capabilities, STARTTLS and its reply, AUTH in clear, MAIL/RCPT counts).
//! - [`tls::TlsParser`]: the TLS handshake (ClientHello, ServerHello, certificates, alerts,
//!   change-cipher-spec) on top of `tls-parser`, with records and messages reassembled.
//! - [`fingerprint`]: JA3, JA3S and JA4 from the parsed hellos.
//! - [`registry`]: IANA cipher suites with strength classes, version and alert names.
#![deny(missing_docs)]

pub mod count;
pub mod fingerprint;
pub mod registry;
pub mod smtp;
pub mod tls;

/// Which side of a TCP connection bytes came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dir {
    /// Client to server (the side that opened the connection).
    ToServer,
    /// Server to client.
    ToClient,
}

impl Dir {
    /// The other direction.
    pub fn reverse(self) -> Dir {
        match self {
            Dir::ToServer => Dir::ToClient,
            Dir::ToClient => Dir::ToServer,
        }
    }

    /// Index 0 for client-to-server, 1 for server-to-client.
    pub fn index(self) -> usize {
        match self {
            Dir::ToServer => 0,
            Dir::ToClient => 1,
        }
    }
}

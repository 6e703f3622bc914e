//! # Brief overview
//!
//! `mailtls-storage` holds what mailtls writes: the [`SessionRecord`] (one row per SMTP
//! session, the schema every sink and dashboard shares) and the sinks that write records
//! ([`sink::JsonlSink`] today; ClickHouse next).
//!
//! ```
//! use mailtls_storage::{SessionRecord, sink::{JsonlSink, Sink}};
//! let mut out = Vec::new();
//! {
//!     let mut sink = JsonlSink::new(&mut out);
//!     sink.write(&SessionRecord::default()).unwrap();
//!     sink.flush().unwrap();
//! }
//! assert!(String::from_utf8(out).unwrap().starts_with("{\"ts_start\""));
//! ```
#![deny(missing_docs)]

pub mod record;
pub mod sink;

pub use record::{Direction, Mode, Outcome, SessionRecord, Timestamp};

/// Errors of the storage crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Writing to the underlying file or stream failed.
    #[error("write failed: {0}")]
    Io(#[from] std::io::Error),
    /// A record could not be serialised.
    #[error("serialisation failed: {0}")]
    Serialize(#[from] serde_json::Error),
}

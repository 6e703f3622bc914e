//! # Brief overview
//!
//! `mailtls-storage` holds what mailtls writes: the [`SessionRecord`] (one row per SMTP
//! session, the schema every sink and dashboard shares) and the sinks that write records:
//!
//! - [`sink::JsonlSink`]: one JSON object per line;
//! - [`sink::clickhouse::ClickhouseSink`]: batches of RowBinary over HTTP(S) into
//!   ClickHouse, with the on-disk [`spool`] for outages and batch-level deduplication
//!   ([`sink::clickhouse::dedup`]);
//! - [`schema`]: the ClickHouse DDL (raw table, rollups, peer inventories, `sensor_stats`,
//!   migrations) for modern servers and for Debian 12's 18.16;
//! - [`stats::SensorStatsRow`]: the sensor's self-monitoring row.
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
//!
//! ```
//! use mailtls_storage::schema::{render_ddl, SchemaConfig, ServerGeneration};
//! let ddl = render_ddl(&SchemaConfig::default(), ServerGeneration::Legacy);
//! assert!(ddl[0].starts_with("CREATE DATABASE IF NOT EXISTS mailtls"));
//! ```
#![deny(missing_docs)]

pub mod json;
pub mod record;
pub mod schema;
pub mod sink;
pub mod spool;
pub mod stats;

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
    /// A configuration value is invalid (names, sizes, URL, credentials file).
    #[error("invalid ClickHouse configuration: {0}")]
    Config(String),
    /// The server answered but refused the credentials (codes 192, 193, 194, 516).
    #[error("ClickHouse at {url} refused user `{user}`: {message}")]
    Auth {
        /// The server URL (without credentials).
        url: String,
        /// The user name sent.
        user: String,
        /// The server's message, first line.
        message: String,
    },
    /// The database does not exist and schema creation is off (or not allowed).
    #[error("ClickHouse database `{database}` does not exist at {url} (create it, or let mailtls create the schema)")]
    UnknownDatabase {
        /// The server URL.
        url: String,
        /// The database name.
        database: String,
    },
    /// The schema on the server is older than this build needs and upgrading is off.
    #[error("ClickHouse schema in `{database}` is version {found}, this mailtls needs {required} (let mailtls upgrade it, or apply `mailtls schema`)")]
    SchemaTooOld {
        /// The database name.
        database: String,
        /// `max(version)` in `schema_version`, 0 when the table is missing.
        found: u32,
        /// [`schema::SCHEMA_VERSION`].
        required: u32,
    },
    /// The server could not be reached (connection refused, DNS, TLS, timeout).
    #[error("ClickHouse at {url} is unreachable: {message}")]
    Unreachable {
        /// The server URL.
        url: String,
        /// What failed, one line.
        message: String,
    },
    /// The server answered a statement with an error.
    #[error("ClickHouse {context} failed: {message}")]
    Server {
        /// What was being done ("schema migration 1", "INSERT into mailtls.sessions").
        context: String,
        /// The server's message, first line.
        message: String,
    },
    /// The spool directory is unusable (locked by a live process, unreadable, not a directory).
    #[error("spool {path}: {message}")]
    Spool {
        /// The spool directory or segment file.
        path: std::path::PathBuf,
        /// What is wrong, one line.
        message: String,
    },
    /// The sink's thread is gone (it panicked or was already closed).
    #[error("the ClickHouse sink has stopped")]
    SinkStopped,
}

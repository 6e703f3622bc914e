//! Sinks: where session records go. Each sink owns its output and is driven by one
//! thread (the pipeline's sink stage), so sinks need not be `Sync`.

pub mod clickhouse;
mod jsonl;

pub use jsonl::JsonlSink;

use crate::{Error, SessionRecord};

/// A destination for session records.
pub trait Sink {
    /// Queues or writes one record.
    fn write(&mut self, record: &SessionRecord) -> Result<(), Error>;
    /// Makes everything written so far durable at the destination.
    fn flush(&mut self) -> Result<(), Error>;
}

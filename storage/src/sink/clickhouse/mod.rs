//! The ClickHouse sink: records stream into ClickHouse over HTTP(S) as LZ4-compressed
//! RowBinary, in batches, through a bounded queue, with an on-disk spool for outages.
//!
//! ```no_run
//! use mailtls_storage::sink::clickhouse::{ClickhouseConfig, ClickhouseSink};
//! let mut cfg = ClickhouseConfig::new("http://127.0.0.1:8123");
//! cfg.spool_dir = Some("/var/spool/mailtls".into());
//! let handle = ClickhouseSink::start(cfg)?; // one-line error: wrong password, unknown database, …
//! handle.send(vec![mailtls_storage::SessionRecord::default()])?; // blocks when the queue is full
//! let report = handle.close()?; // flushes, replays the spool, returns the counters
//! println!("{} rows written, {} dropped", report.rows_written, report.rows_dropped);
//! # Ok::<(), mailtls_storage::Error>(())
//! ```
//!
//! Behaviour at start ([`ClickhouseSink::start`]):
//! - server answers: version detected, schema created/upgraded (or verified when
//!   `create_schema` is off); wrong credentials, a missing database (schema creation off) or
//!   a too old schema are errors;
//! - server unreachable: with a spool, the sink starts anyway, spools, and retries (logged
//!   as a warning); without a spool it is an error.
//!
//! See [`dedup`] for the exactly-once mechanism and [`crate::spool`] for the spool.

pub mod batch;
mod client;
pub mod config;
pub mod dedup;
pub mod healthcheck;
pub mod read;
pub mod retry;
pub mod rowbinary;
mod worker;

pub use batch::{BatchLimits, Batcher, EncodedBatch, TableKind};
pub use config::{ClickhouseConfig, Credentials, SkipExisting, ENV_PASSWORD, ENV_USER};
pub use healthcheck::ServerInfo;

use crate::stats::SensorStatsRow;
use crate::{Error, SessionRecord};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use worker::{lock, Msg, Shared};

/// Live counters, shared between the handle and the sink thread.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    rows_written: AtomicU64,
    batches_written: AtomicU64,
    batches_retried: AtomicU64,
    batches_deduplicated: AtomicU64,
    rows_skipped_existing: AtomicU64,
    rows_spooled: AtomicU64,
    batches_spooled: AtomicU64,
    batches_replayed: AtomicU64,
    rows_dropped: AtomicU64,
    rows_rejected: AtomicU64,
    spool_bytes: AtomicU64,
    spool_rows_pending: AtomicU64,
    torn_records: AtomicU64,
    queue_depth: AtomicU64,
}

/// What the sink did; returned by [`ClickhouseHandle::close`] and
/// [`ClickhouseHandle::report`]. Counters are totals since start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkReport {
    /// Rows inserted into ClickHouse (both tables).
    pub rows_written: u64,
    /// INSERTs that succeeded.
    pub batches_written: u64,
    /// Attempts after a first one (re-sends and spool replays).
    pub batches_retried: u64,
    /// Batches found already inserted on a retry and not sent again.
    pub batches_deduplicated: u64,
    /// Rows dropped from batches because their `session_id` was already stored
    /// ([`SkipExisting`]).
    pub rows_skipped_existing: u64,
    /// Rows written to the spool.
    pub rows_spooled: u64,
    /// Batches written to the spool.
    pub batches_spooled: u64,
    /// Spooled batches inserted (or found inserted) later, including a previous run's.
    pub batches_replayed: u64,
    /// Rows lost: the spool was full (or absent, or failing) when they had to go there.
    pub rows_dropped: u64,
    /// Rows ClickHouse rejected as invalid data (saved under `SPOOL/rejected/`).
    pub rows_rejected: u64,
    /// Bytes in the spool now.
    pub spool_bytes: u64,
    /// Rows still in the spool at close (replayed by the next run).
    pub spool_rows_pending: u64,
    /// Torn records discarded when the spool was opened.
    pub torn_records: u64,
    /// The server, once it answered.
    pub server: Option<ServerInfo>,
}

impl SinkReport {
    fn from_counters(c: &Counters, server: Option<ServerInfo>) -> Self {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SinkReport {
            rows_written: g(&c.rows_written),
            batches_written: g(&c.batches_written),
            batches_retried: g(&c.batches_retried),
            batches_deduplicated: g(&c.batches_deduplicated),
            rows_skipped_existing: g(&c.rows_skipped_existing),
            rows_spooled: g(&c.rows_spooled),
            batches_spooled: g(&c.batches_spooled),
            batches_replayed: g(&c.batches_replayed),
            rows_dropped: g(&c.rows_dropped),
            rows_rejected: g(&c.rows_rejected),
            spool_bytes: g(&c.spool_bytes),
            spool_rows_pending: g(&c.spool_rows_pending),
            torn_records: g(&c.torn_records),
            server,
        }
    }

    /// `name: value` lines, in the style of the capture counters.
    pub fn lines(&self) -> Vec<String> {
        vec![
            format!("clickhouse_rows_written: {}", self.rows_written),
            format!("clickhouse_batches_written: {}", self.batches_written),
            format!("clickhouse_batches_retried: {}", self.batches_retried),
            format!(
                "clickhouse_batches_deduplicated: {}",
                self.batches_deduplicated
            ),
            format!(
                "clickhouse_rows_skipped_existing: {}",
                self.rows_skipped_existing
            ),
            format!("clickhouse_rows_spooled: {}", self.rows_spooled),
            format!("clickhouse_batches_replayed: {}", self.batches_replayed),
            format!("clickhouse_rows_dropped: {}", self.rows_dropped),
            format!("clickhouse_rows_rejected: {}", self.rows_rejected),
            format!("clickhouse_spool_bytes: {}", self.spool_bytes),
            format!("clickhouse_spool_rows_pending: {}", self.spool_rows_pending),
            format!("clickhouse_spool_torn_records: {}", self.torn_records),
        ]
    }
}

/// Starts ClickHouse sinks.
pub struct ClickhouseSink;

impl ClickhouseSink {
    /// Validates `cfg`, opens the spool (if any), checks the server and the schema, and
    /// starts the sink thread. See the module documentation for what is an error.
    pub fn start(cfg: ClickhouseConfig) -> Result<ClickhouseHandle, Error> {
        cfg.validate()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("mailtls-clickhouse")
            .build()?;
        let client = client::ChClient::new(&cfg)?;
        let (spool, crashed, torn) = match &cfg.spool_dir {
            Some(dir) => {
                let (spool, report) = crate::spool::Spool::open(dir, cfg.spool_max_bytes)?;
                if report.batches > 0 {
                    tracing::info!(
                        batches = report.batches,
                        rows = report.rows,
                        bytes = report.bytes,
                        dir = %dir.display(),
                        "spool holds batches from an earlier run; replaying them first"
                    );
                }
                if report.previous_run_crashed {
                    tracing::warn!(dir = %dir.display(), "the previous run did not close the spool (crash or kill -9)");
                }
                (
                    Some(spool),
                    report.previous_run_crashed,
                    report.torn_records,
                )
            }
            None => (None, false, 0),
        };
        let server = match runtime.block_on(healthcheck::check(&client, &cfg)) {
            Ok(info) => {
                tracing::info!(
                    url = %cfg.base_url(),
                    version = %info.version,
                    generation = info.generation.as_str(),
                    schema_version = info.schema_version,
                    "ClickHouse sink connected"
                );
                Some(info)
            }
            Err(Error::Unreachable { url, message }) if spool.is_some() => {
                tracing::warn!(
                    url = %url,
                    error = %message,
                    "ClickHouse unreachable at start: spooling and retrying"
                );
                None
            }
            Err(e) => return Err(e),
        };
        let skip_existing = worker::skip_existing_active(cfg.skip_existing, crashed);
        if skip_existing {
            tracing::info!("rows already in ClickHouse (same session_id) will be skipped this run");
        }
        let shared = Arc::new(Shared::new(server));
        shared.counters.torn_records.store(torn, Ordering::Relaxed);
        if server_is_none(&shared) {
            shared.degraded.store(true, Ordering::Relaxed);
        }
        let (tx, rx) = mpsc::channel(cfg.queue_capacity);
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("mailtls-clickhouse".to_string())
            .spawn(move || {
                runtime.block_on(worker::run(
                    cfg,
                    client,
                    spool,
                    skip_existing,
                    thread_shared,
                    rx,
                ))
            })?;
        Ok(ClickhouseHandle {
            tx: Some(tx),
            shared,
            thread: Some(thread),
            pending: Vec::new(),
        })
    }
}

fn server_is_none(shared: &Shared) -> bool {
    lock(&shared.server).is_none()
}

/// The caller's side of a running ClickHouse sink. Call from ordinary threads (not from
/// inside an async runtime: `send` blocks). Dropping it closes the sink like
/// [`ClickhouseHandle::close`] but discards the report.
pub struct ClickhouseHandle {
    tx: Option<mpsc::Sender<Msg>>,
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<Result<SinkReport, Error>>>,
    /// Records buffered by the [`crate::sink::Sink`] implementation.
    pending: Vec<SessionRecord>,
}

/// Records buffered by [`crate::sink::Sink::write`] before one `send`.
const SINK_TRAIT_CHUNK: usize = 1024;

impl ClickhouseHandle {
    fn sender(&self) -> Result<&mpsc::Sender<Msg>, Error> {
        self.tx.as_ref().ok_or(Error::SinkStopped)
    }

    fn post(&self, msg: Msg) -> Result<(), Error> {
        let tx = self.sender()?;
        self.shared
            .counters
            .queue_depth
            .fetch_add(1, Ordering::Relaxed);
        tx.blocking_send(msg).map_err(|_| {
            self.shared
                .counters
                .queue_depth
                .fetch_sub(1, Ordering::Relaxed);
            Error::SinkStopped
        })
    }

    /// Queues records for ClickHouse. Blocks while the queue is full (backpressure);
    /// never drops. `Err` only when the sink thread is gone.
    pub fn send(&self, records: Vec<SessionRecord>) -> Result<(), Error> {
        if records.is_empty() {
            return Ok(());
        }
        self.post(Msg::Records(records))
    }

    /// Queues a `sensor_stats` row; the sink fills the fields it owns (see
    /// [`SensorStatsRow`]).
    pub fn write_stats(&self, mut row: SensorStatsRow) -> Result<(), Error> {
        // The gauge is the queue as the snapshot finds it (the messages ahead of this row),
        // not as the sink finds it when it gets to the row: on a slow server that is many
        // seconds later, and the queue then holds only what came after the snapshot.
        row.sink_queue_depth =
            u32::try_from(self.shared.counters.queue_depth.load(Ordering::Relaxed))
                .unwrap_or(u32::MAX);
        self.post(Msg::Stats(Box::new(row)))
    }

    /// Closes the open batches and waits until everything sent so far is inserted or
    /// safely in the spool.
    pub fn flush_wait(&self) -> Result<(), Error> {
        let (ack_tx, ack_rx) = oneshot::channel();
        self.post(Msg::Flush(ack_tx))?;
        ack_rx.blocking_recv().map_err(|_| Error::SinkStopped)
    }

    /// The counters so far.
    pub fn report(&self) -> SinkReport {
        SinkReport::from_counters(&self.shared.counters, lock(&self.shared.server).clone())
    }

    /// The server, once it answered.
    pub fn server(&self) -> Option<ServerInfo> {
        lock(&self.shared.server).clone()
    }

    /// Flushes everything, keeps inserting (spool replay included) for up to
    /// `close_timeout`, leaves the rest in the spool for the next run, and returns the
    /// counters. Call it on SIGINT/SIGTERM too.
    pub fn close(mut self) -> Result<SinkReport, Error> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<SinkReport, Error> {
        let pending = std::mem::take(&mut self.pending);
        if !pending.is_empty() {
            self.send(pending)?;
        }
        if let Some(tx) = self.tx.take() {
            let _ = tx.blocking_send(Msg::Close);
        }
        let Some(thread) = self.thread.take() else {
            return Err(Error::SinkStopped);
        };
        thread.join().map_err(|_| Error::SinkStopped)?
    }
}

impl Drop for ClickhouseHandle {
    fn drop(&mut self) {
        if self.thread.is_some() {
            if let Err(e) = self.shutdown() {
                tracing::error!(error = %e, "ClickHouse sink did not close cleanly");
            }
        }
    }
}

impl crate::sink::Sink for ClickhouseHandle {
    /// Buffers the record; every 1024 records go to the sink in one `send`.
    fn write(&mut self, record: &SessionRecord) -> Result<(), Error> {
        self.pending.push(record.clone());
        if self.pending.len() >= SINK_TRAIT_CHUNK {
            let chunk = std::mem::take(&mut self.pending);
            self.send(chunk)?;
        }
        Ok(())
    }

    /// Sends the buffered records and waits until everything is inserted or spooled.
    fn flush(&mut self) -> Result<(), Error> {
        let chunk = std::mem::take(&mut self.pending);
        self.send(chunk)?;
        self.flush_wait()
    }
}

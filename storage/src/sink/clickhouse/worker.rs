//! The sink's thread: an intake task that batches and encodes, and a shipper task that
//! inserts, retries, spools and replays. Both run on one current-thread Tokio runtime.

use super::batch::{Batcher, EncodedBatch, TableKind};
use super::client::ChClient;
use super::config::{ClickhouseConfig, SkipExisting};
use super::dedup::{batch_already_inserted, existing_session_ids};
use super::healthcheck::{self, ServerInfo};
use super::retry::{Backoff, Failure};
use super::{Counters, SinkReport};
use crate::schema::{column_list, ServerGeneration, SENSOR_STATS_COLUMNS, SESSION_COLUMNS};
use crate::spool::{AppendOutcome, Spool};
use crate::stats::SensorStatsRow;
use crate::{Error, SessionRecord};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, Notify};

/// A message from the handle.
pub(crate) enum Msg {
    Records(Vec<SessionRecord>),
    Stats(Box<SensorStatsRow>),
    Flush(oneshot::Sender<()>),
    Close,
}

enum Item {
    Batch(EncodedBatch),
    Barrier(oneshot::Sender<()>),
}

/// State shared by the handle, the intake and the shipper.
pub(crate) struct Shared {
    pub counters: Counters,
    pub latency: Mutex<Option<hdrhistogram::Histogram<u64>>>,
    pub server: Mutex<Option<ServerInfo>>,
    /// Set while ClickHouse fails: new batches go straight to the spool.
    pub degraded: std::sync::atomic::AtomicBool,
    /// Set by Close: the shipper stops trying at `close_deadline`.
    pub closing: std::sync::atomic::AtomicBool,
    pub close_deadline: Mutex<Option<Instant>>,
    pub spool_notify: Notify,
}

impl Shared {
    pub(crate) fn new(server: Option<ServerInfo>) -> Self {
        Shared {
            counters: Counters::default(),
            latency: Mutex::new(new_histogram()),
            server: Mutex::new(server),
            degraded: std::sync::atomic::AtomicBool::new(false),
            closing: std::sync::atomic::AtomicBool::new(false),
            close_deadline: Mutex::new(None),
            spool_notify: Notify::new(),
        }
    }

    fn past_close_deadline(&self) -> bool {
        self.closing.load(Ordering::Relaxed)
            && lock(&self.close_deadline).is_some_and(|d| Instant::now() >= d)
    }
}

/// 1 µs .. 1 h, 3 significant digits. The bounds are constants and valid; `None` (no
/// latency percentiles) rather than a panic if the crate ever disagrees.
fn new_histogram() -> Option<hdrhistogram::Histogram<u64>> {
    hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3).ok()
}

/// Locks a mutex, recovering the data if a panic poisoned it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct SpoolRef(Option<Arc<Mutex<Spool>>>);

impl SpoolRef {
    fn enabled(&self) -> bool {
        self.0.is_some()
    }

    /// Appends to the spool; counts spooled or dropped rows. Never fails: a spool error or
    /// a full spool drops the batch, loudly.
    fn store(&self, shared: &Shared, batch: &EncodedBatch) {
        let rows = batch.rows() as u64;
        let Some(spool) = &self.0 else {
            drop_rows(shared, batch, "no spool configured");
            return;
        };
        let mut spool = lock(spool);
        match spool.append(batch) {
            Ok(AppendOutcome::Stored) => {
                shared
                    .counters
                    .rows_spooled
                    .fetch_add(rows, Ordering::Relaxed);
                shared
                    .counters
                    .batches_spooled
                    .fetch_add(1, Ordering::Relaxed);
                shared
                    .counters
                    .spool_bytes
                    .store(spool.bytes(), Ordering::Relaxed);
                tracing::debug!(batch = %batch.id, rows, spool_bytes = spool.bytes(), "batch spooled");
                shared.spool_notify.notify_one();
            }
            Ok(AppendOutcome::Full) => {
                drop(spool);
                drop_rows(shared, batch, "spool full");
            }
            Err(e) => {
                drop(spool);
                drop_rows(shared, batch, &e.to_string());
            }
        }
    }
}

fn drop_rows(shared: &Shared, batch: &EncodedBatch, why: &str) {
    let rows = batch.rows() as u64;
    let total = shared
        .counters
        .rows_dropped
        .fetch_add(rows, Ordering::Relaxed)
        + rows;
    tracing::error!(
        batch = %batch.id,
        rows,
        rows_dropped_total = total,
        "ClickHouse sink DROPPED {rows} rows ({why}); {total} dropped so far"
    );
}

/// Runs the sink until Close; returns the final counters.
pub(crate) async fn run(
    cfg: ClickhouseConfig,
    client: ChClient,
    spool: Option<Spool>,
    skip_existing_active: bool,
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Msg>,
) -> Result<SinkReport, Error> {
    let spool = SpoolRef(spool.map(|s| Arc::new(Mutex::new(s))));
    let (outbox_tx, outbox_rx) = mpsc::channel::<Item>(cfg.inflight_batches);
    let batcher = Batcher::new(
        Batcher::new_run_id(),
        super::batch::BatchLimits {
            max_rows: cfg.batch_rows,
            max_bytes: cfg.batch_max_bytes,
            max_age: cfg.batch_max_age,
        },
    );
    let mut shipper = Shipper {
        cfg: cfg.clone(),
        client,
        spool: SpoolRef(spool.0.clone()),
        shared: shared.clone(),
        backoff: Backoff::new(Duration::from_secs(30)),
        skip_existing_active,
        schema_ready: lock(&shared.server).is_some(),
        last_failure_logged: None,
    };
    let intake = intake(&cfg, batcher, rx, outbox_tx, &spool, &shared);
    let ship = shipper.run(outbox_rx);
    tokio::join!(intake, ship);
    drop(shipper);

    if let Some(spool) = spool.0 {
        let spool = Arc::try_unwrap(spool)
            .map_err(|_| Error::Config("spool still shared at close".to_string()))?
            .into_inner()
            .unwrap_or_else(|p| p.into_inner());
        let left = spool.pending_rows();
        shared
            .counters
            .spool_bytes
            .store(spool.bytes(), Ordering::Relaxed);
        shared
            .counters
            .spool_rows_pending
            .store(left, Ordering::Relaxed);
        if left > 0 {
            tracing::warn!(
                rows = left,
                batches = spool.pending_batches(),
                dir = %spool.dir().display(),
                "ClickHouse sink closed with rows still in the spool; the next run replays them"
            );
        }
        spool.close()?;
    }
    Ok(SinkReport::from_counters(
        &shared.counters,
        lock(&shared.server).clone(),
    ))
}

async fn intake(
    cfg: &ClickhouseConfig,
    mut batcher: Batcher,
    mut rx: mpsc::Receiver<Msg>,
    outbox: mpsc::Sender<Item>,
    spool: &SpoolRef,
    shared: &Shared,
) {
    let mut last = SinkReport::from_counters(&shared.counters, None);
    loop {
        let msg = match batcher.next_deadline() {
            Some(deadline) => {
                tokio::select! {
                    m = rx.recv() => Some(m),
                    _ = tokio::time::sleep_until(deadline.into()) => None,
                }
            }
            None => Some(rx.recv().await),
        };
        let now = Instant::now();
        match msg {
            None => {
                for b in batcher.due(now) {
                    dispatch(b, &outbox, spool, shared, cfg.spool_after).await;
                }
            }
            Some(Some(Msg::Records(records))) => {
                shared.counters.queue_depth.fetch_sub(1, Ordering::Relaxed);
                for r in &records {
                    if let Some(b) = batcher.push_session(r, now) {
                        dispatch(b, &outbox, spool, shared, cfg.spool_after).await;
                    }
                }
            }
            Some(Some(Msg::Stats(mut row))) => {
                shared.counters.queue_depth.fetch_sub(1, Ordering::Relaxed);
                fill_stats(&mut row, shared, &mut last);
                if let Some(b) = batcher.push_stats(&row, now) {
                    dispatch(b, &outbox, spool, shared, cfg.spool_after).await;
                }
            }
            Some(Some(Msg::Flush(ack))) => {
                shared.counters.queue_depth.fetch_sub(1, Ordering::Relaxed);
                for b in batcher.flush_all() {
                    dispatch(b, &outbox, spool, shared, cfg.spool_after).await;
                }
                if let Err(mpsc::error::SendError(Item::Barrier(ack))) =
                    outbox.send(Item::Barrier(ack)).await
                {
                    let _ = ack.send(());
                }
            }
            Some(Some(Msg::Close)) | Some(None) => {
                *lock(&shared.close_deadline) = Some(Instant::now() + cfg.close_timeout);
                shared.closing.store(true, Ordering::Relaxed);
                for b in batcher.flush_all() {
                    dispatch(b, &outbox, spool, shared, cfg.spool_after).await;
                }
                break;
            }
        }
    }
    // Dropping `outbox` tells the shipper that nothing more comes.
}

async fn dispatch(
    batch: EncodedBatch,
    outbox: &mpsc::Sender<Item>,
    spool: &SpoolRef,
    shared: &Shared,
    spool_after: Duration,
) {
    if spool.enabled() && shared.degraded.load(Ordering::Relaxed) {
        spool.store(shared, &batch);
        return;
    }
    match outbox.try_send(Item::Batch(batch)) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(Item::Batch(batch))) => {
            if spool.enabled() {
                // Backpressure first; spool only when ClickHouse stays slow.
                let permit = tokio::time::timeout(spool_after, outbox.reserve()).await;
                match permit {
                    Ok(Ok(permit)) => permit.send(Item::Batch(batch)),
                    Ok(Err(_)) | Err(_) => spool.store(shared, &batch),
                }
            } else if let Err(mpsc::error::SendError(Item::Batch(batch))) =
                outbox.send(Item::Batch(batch)).await
            {
                drop_rows(shared, &batch, "sink stopped");
            }
        }
        Err(mpsc::error::TrySendError::Closed(Item::Batch(batch))) => spool.store(shared, &batch),
        Err(_) => {}
    }
}

/// Fills the sink-owned fields of a stats row with deltas since the previous row.
fn fill_stats(row: &mut SensorStatsRow, shared: &Shared, last: &mut SinkReport) {
    let now = SinkReport::from_counters(&shared.counters, None);
    row.rows_written = now.rows_written.saturating_sub(last.rows_written);
    row.rows_spooled = now.rows_spooled.saturating_sub(last.rows_spooled);
    row.rows_dropped = now.rows_dropped.saturating_sub(last.rows_dropped);
    row.batches_retried = now.batches_retried.saturating_sub(last.batches_retried);
    row.spool_bytes = now.spool_bytes;
    let mut guard = lock(&shared.latency);
    let Some(h) = guard.as_mut() else {
        *last = now;
        return;
    };
    if !h.is_empty() {
        row.insert_latency_p50_us = h.value_at_quantile(0.50);
        row.insert_latency_p90_us = h.value_at_quantile(0.90);
        row.insert_latency_p99_us = h.value_at_quantile(0.99);
        row.insert_latency_max_us = h.max();
    } else {
        row.insert_latency_p50_us = 0;
        row.insert_latency_p90_us = 0;
        row.insert_latency_p99_us = 0;
        row.insert_latency_max_us = 0;
    }
    h.reset();
    *last = now;
}

struct Shipper {
    cfg: ClickhouseConfig,
    client: ChClient,
    spool: SpoolRef,
    shared: Arc<Shared>,
    backoff: Backoff,
    skip_existing_active: bool,
    schema_ready: bool,
    last_failure_logged: Option<String>,
}

enum Shipped {
    Inserted,
    AlreadyThere,
}

impl Shipper {
    async fn run(&mut self, mut outbox: mpsc::Receiver<Item>) {
        let mut outbox_open = true;
        loop {
            if self.shared.past_close_deadline() {
                break;
            }
            // 1. The spool first: oldest data first.
            if let Some(next) = self.peek_spool() {
                match self.ship(&next, true).await {
                    Ok(shipped) => {
                        self.after_success(&next, shipped);
                        self.ack_spool(next.rows());
                        self.shared
                            .counters
                            .batches_replayed
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    Err(f) if !f.is_retryable() => {
                        self.reject(&next, &f);
                        self.ack_spool(next.rows());
                    }
                    Err(f) => {
                        self.after_failure(&f);
                        let wait = self.backoff.next_delay();
                        outbox_open = self.wait_spooling(&mut outbox, wait, outbox_open).await;
                    }
                }
                continue;
            }
            // 2. Batches from memory.
            if !outbox_open {
                break;
            }
            let item = tokio::select! {
                item = outbox.recv() => item,
                _ = self.shared.spool_notify.notified() => continue,
            };
            match item {
                None => outbox_open = false,
                Some(Item::Barrier(ack)) => {
                    let _ = ack.send(());
                }
                Some(Item::Batch(batch)) => self.ship_fresh(batch).await,
            }
        }
        // Past the close deadline: whatever is still in memory goes to the spool.
        outbox.close();
        while let Some(item) = outbox.recv().await {
            match item {
                Item::Batch(b) => self.spool.store(&self.shared, &b),
                Item::Barrier(ack) => {
                    let _ = ack.send(());
                }
            }
        }
    }

    /// Sleeps `wait` while moving anything that arrives from memory to the spool.
    async fn wait_spooling(
        &mut self,
        outbox: &mut mpsc::Receiver<Item>,
        wait: Duration,
        mut outbox_open: bool,
    ) -> bool {
        let until = tokio::time::Instant::now() + wait;
        loop {
            if self.shared.past_close_deadline() {
                return outbox_open;
            }
            let close_check = tokio::time::Instant::now() + Duration::from_millis(200);
            let step = until.min(close_check);
            if !outbox_open {
                tokio::time::sleep_until(step).await;
            } else {
                tokio::select! {
                    item = outbox.recv() => match item {
                        None => outbox_open = false,
                        Some(Item::Batch(b)) => self.spool.store(&self.shared, &b),
                        Some(Item::Barrier(ack)) => { let _ = ack.send(()); }
                    },
                    _ = tokio::time::sleep_until(step) => {}
                }
            }
            if tokio::time::Instant::now() >= until {
                return outbox_open;
            }
        }
    }

    fn peek_spool(&self) -> Option<EncodedBatch> {
        let spool = self.spool.0.as_ref()?;
        let mut spool = lock(spool);
        match spool.peek() {
            Ok(Some(s)) => Some(s.batch),
            Ok(None) => None,
            Err(e) => {
                tracing::error!(error = %e, "spool: cannot read; replay paused");
                None
            }
        }
    }

    fn ack_spool(&self, rows: usize) {
        if let Some(spool) = &self.spool.0 {
            let mut spool = lock(spool);
            if let Err(e) = spool.ack(rows) {
                tracing::error!(error = %e, "spool: cannot acknowledge a record");
            }
            self.shared
                .counters
                .spool_bytes
                .store(spool.bytes(), Ordering::Relaxed);
        }
    }

    async fn ship_fresh(&mut self, batch: EncodedBatch) {
        let attempts = self.cfg.insert_attempts;
        let mut attempt = 0;
        loop {
            match self.ship(&batch, attempt > 0).await {
                Ok(shipped) => {
                    self.after_success(&batch, shipped);
                    return;
                }
                Err(f) if !f.is_retryable() => {
                    self.reject(&batch, &f);
                    return;
                }
                Err(f) => {
                    self.after_failure(&f);
                    attempt += 1;
                    let give_up = attempt >= attempts
                        || (self.spool.enabled() && matches!(f, Failure::Unreachable(_)));
                    if give_up && self.spool.enabled() {
                        self.shared.degraded.store(true, Ordering::Relaxed);
                        self.spool.store(&self.shared, &batch);
                        return;
                    }
                    if self.shared.past_close_deadline() {
                        drop_rows(
                            &self.shared,
                            &batch,
                            "ClickHouse failing at close, no spool",
                        );
                        return;
                    }
                    let wait = if attempt < attempts {
                        Duration::from_millis(200u64 << attempt.min(4))
                    } else {
                        self.backoff.next_delay()
                    };
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    fn after_success(&mut self, batch: &EncodedBatch, shipped: Shipped) {
        self.backoff.reset();
        if self.shared.degraded.swap(false, Ordering::Relaxed) || self.last_failure_logged.is_some()
        {
            tracing::info!("ClickHouse is accepting inserts again");
            self.last_failure_logged = None;
        }
        if let Shipped::AlreadyThere = shipped {
            self.shared
                .counters
                .batches_deduplicated
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(batch = %batch.id, "batch already in ClickHouse, not sent again");
        }
    }

    fn after_failure(&mut self, f: &Failure) {
        if matches!(f, Failure::MissingSchema(_)) {
            self.schema_ready = false;
        }
        let msg = f.message().to_string();
        if self.last_failure_logged.as_deref() != Some(msg.as_str()) {
            match f {
                Failure::Auth(_) => {
                    tracing::error!(error = %msg, "ClickHouse refuses the credentials; spooling and retrying")
                }
                _ => tracing::warn!(error = %msg, "ClickHouse insert failed; will retry"),
            }
            self.last_failure_logged = Some(msg);
        }
    }

    fn reject(&self, batch: &EncodedBatch, f: &Failure) {
        let rows = batch.rows() as u64;
        self.shared
            .counters
            .rows_rejected
            .fetch_add(rows, Ordering::Relaxed);
        let mut saved = String::new();
        if let Some(spool) = &self.spool.0 {
            let dir = lock(spool).dir().join("rejected");
            let path = dir.join(format!("{}.rowbinary", batch.id));
            if std::fs::create_dir_all(&dir)
                .and_then(|()| std::fs::write(&path, &batch.data))
                .is_ok()
            {
                saved = format!(" (bytes saved in {})", path.display());
            }
        }
        tracing::error!(
            batch = %batch.id,
            rows,
            error = %f.message(),
            "ClickHouse rejected a batch as invalid data; not retried{saved}"
        );
    }

    async fn ensure_ready(&mut self) -> Result<ServerGeneration, Failure> {
        if self.schema_ready {
            if let Some(info) = lock(&self.shared.server).as_ref() {
                return Ok(info.generation);
            }
        }
        match healthcheck::check(&self.client, &self.cfg).await {
            Ok(info) => {
                tracing::info!(
                    version = %info.version,
                    generation = info.generation.as_str(),
                    schema_version = info.schema_version,
                    "ClickHouse ready"
                );
                let generation = info.generation;
                *lock(&self.shared.server) = Some(info);
                self.schema_ready = true;
                Ok(generation)
            }
            Err(Error::Unreachable { message, .. }) => Err(Failure::Unreachable(message)),
            Err(Error::Auth { message, .. }) => Err(Failure::Auth(message)),
            Err(e @ Error::UnknownDatabase { .. }) => Err(Failure::MissingSchema(e.to_string())),
            Err(e) => Err(Failure::Server(e.to_string())),
        }
    }

    /// One attempt at `batch`. `is_retry`: an earlier attempt may have reached the server.
    async fn ship(&mut self, batch: &EncodedBatch, is_retry: bool) -> Result<Shipped, Failure> {
        let generation = self.ensure_ready().await?;
        if is_retry {
            self.shared
                .counters
                .batches_retried
                .fetch_add(1, Ordering::Relaxed);
        }
        let schema = &self.cfg.schema;
        let (table, columns) = match batch.kind {
            TableKind::Sessions => (schema.sessions_table(), column_list(SESSION_COLUMNS)),
            TableKind::SensorStats => (
                schema.sensor_stats_table(),
                column_list(SENSOR_STATS_COLUMNS),
            ),
        };
        if batch.wire_version != super::rowbinary::WIRE_VERSION {
            return Err(Failure::BadData(format!(
                "spooled batch has wire version {}, this mailtls writes {}",
                batch.wire_version,
                super::rowbinary::WIRE_VERSION
            )));
        }
        if generation == ServerGeneration::Legacy
            && is_retry
            && batch_already_inserted(&self.client, &table, generation, batch).await?
        {
            return Ok(Shipped::AlreadyThere);
        }
        let filtered;
        let mut to_send = batch;
        if self.skip_existing_active && batch.kind == TableKind::Sessions {
            let existing = existing_session_ids(&self.client, &table, generation, batch).await?;
            if !existing.is_empty() {
                filtered = batch.without(&existing);
                let skipped = (batch.rows() - filtered.rows()) as u64;
                self.shared
                    .counters
                    .rows_skipped_existing
                    .fetch_add(skipped, Ordering::Relaxed);
                if filtered.rows() == 0 {
                    return Ok(Shipped::AlreadyThere);
                }
                to_send = &filtered;
            }
        }
        let mut settings: Vec<(&str, String)> = vec![("query_id", to_send.id.clone())];
        if generation == ServerGeneration::Modern {
            settings.push(("insert_deduplication_token", to_send.id.clone()));
            settings.push((
                "deduplicate_blocks_in_dependent_materialized_views",
                "1".to_string(),
            ));
            settings.push(("insert_deduplicate", "1".to_string()));
        }
        if schema.cluster.is_some() {
            settings.push(("insert_distributed_sync", "1".to_string()));
        }
        let took = self
            .client
            .insert(
                &table,
                &columns,
                to_send,
                &settings,
                self.cfg.insert_timeout,
            )
            .await?;
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        if let Some(h) = lock(&self.shared.latency).as_mut() {
            let _ = h.record(micros);
        }
        let rows = to_send.rows() as u64;
        let c = &self.shared.counters;
        c.rows_written.fetch_add(rows, Ordering::Relaxed);
        c.batches_written.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(batch = %to_send.id, rows, took_us = micros, "batch inserted");
        Ok(Shipped::Inserted)
    }
}

/// Whether the row-existence check runs for this run.
pub(crate) fn skip_existing_active(policy: SkipExisting, previous_run_crashed: bool) -> bool {
    match policy {
        SkipExisting::Never => false,
        SkipExisting::Always => true,
        SkipExisting::AfterCrash => previous_run_crashed,
    }
}

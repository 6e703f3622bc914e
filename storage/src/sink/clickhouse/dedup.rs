//! Exactly-once, as close as ClickHouse allows.
//!
//! Every batch has a unique id (`RUN-SEQ`), stored in each row's `batch_id` and sent as the
//! INSERT's `query_id`. Then:
//!
//! - **Modern servers** (≥ 23.8): the id is also the `insert_deduplication_token`; every
//!   MergeTree has `non_replicated_deduplication_window = 1000` (replicated tables
//!   deduplicate natively) and inserts set `deduplicate_blocks_in_dependent_materialized_views
//!   = 1`, so a repeated batch is dropped by the server in the raw table and in the rollups.
//! - **18.16** (no token, no non-replicated deduplication): before any *retry* — a second
//!   attempt, or any replay from the spool — the sink (1) waits until no query with that
//!   `query_id` is running (`system.processes`), so the earlier attempt has either committed
//!   or failed, then (2) counts the rows with that `batch_id` in the batch's `ts_start` range.
//!   A batch is one partition, hence one part, hence all-or-nothing: a count above zero means
//!   it is in, and it is not sent again. The first attempt of a fresh batch needs no check.
//!
//! Independently, [`existing_session_ids`] implements
//! [`super::config::SkipExisting`]: rows whose `session_id` is already stored are dropped
//! from a batch before it is sent (a capture read again after a crash).

use super::batch::{EncodedBatch, TableKind};
use super::client::ChClient;
use super::retry::Failure;
use crate::schema::ServerGeneration;
use std::collections::HashSet;
use std::time::Duration;

const CHECK_TIMEOUT: Duration = Duration::from_secs(30);
/// IDs per `IN (...)` list: keeps each query well under the default 256 KiB max_query_size.
const IDS_PER_QUERY: usize = 5000;

fn range_condition(generation: ServerGeneration, batch: &EncodedBatch) -> String {
    let (lo, hi) = (batch.ts_lo, batch.ts_hi);
    match (batch.kind, generation) {
        (TableKind::Sessions, ServerGeneration::Legacy) => {
            format!("ts_start >= {lo} AND ts_start <= {hi}")
        }
        (TableKind::Sessions, ServerGeneration::Modern) => format!(
            "ts_start >= fromUnixTimestamp64Micro(toInt64({lo}), 'UTC') \
             AND ts_start <= fromUnixTimestamp64Micro(toInt64({hi}), 'UTC')"
        ),
        (TableKind::SensorStats, _) => {
            format!("ts >= toDateTime({lo}, 'UTC') AND ts <= toDateTime({hi}, 'UTC')")
        }
    }
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

async fn count(client: &ChClient, sql: &str) -> Result<u64, Failure> {
    let text = client.query_text(sql, CHECK_TIMEOUT).await?;
    text.trim()
        .parse::<u64>()
        .map_err(|_| Failure::Server(format!("unexpected answer {:?}", text.trim())))
}

/// Waits (up to `max_wait`) until no query with id `query_id` runs on the server.
/// `Err(StillRunning)` when it still runs after that.
pub async fn wait_not_running(
    client: &ChClient,
    query_id: &str,
    max_wait: Duration,
) -> Result<(), Failure> {
    let started = std::time::Instant::now();
    loop {
        let running = count(
            client,
            &format!(
                "SELECT count() FROM system.processes WHERE query_id = {}",
                quote(query_id)
            ),
        )
        .await?;
        if running == 0 {
            return Ok(());
        }
        if started.elapsed() >= max_wait {
            return Err(Failure::StillRunning(format!(
                "an earlier INSERT of batch {query_id} is still running"
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Whether rows of `batch` (by `batch_id`) are already in `table`: the 18.16 check above.
pub async fn batch_already_inserted(
    client: &ChClient,
    table: &str,
    generation: ServerGeneration,
    batch: &EncodedBatch,
) -> Result<bool, Failure> {
    wait_not_running(client, &batch.id, Duration::from_secs(60)).await?;
    let n = count(
        client,
        &format!(
            "SELECT count() FROM {table} WHERE {} AND batch_id = {}",
            range_condition(generation, batch),
            quote(&batch.id)
        ),
    )
    .await?;
    Ok(n > 0)
}

/// The `session_id`s of `batch` that `table` already holds.
pub async fn existing_session_ids(
    client: &ChClient,
    table: &str,
    generation: ServerGeneration,
    batch: &EncodedBatch,
) -> Result<HashSet<u64>, Failure> {
    let mut found = HashSet::new();
    if batch.kind != TableKind::Sessions || batch.rows() == 0 {
        return Ok(found);
    }
    let range = range_condition(generation, batch);
    for chunk in batch.session_ids.chunks(IDS_PER_QUERY) {
        let mut list = String::with_capacity(chunk.len() * 21);
        for (i, id) in chunk.iter().enumerate() {
            if i > 0 {
                list.push(',');
            }
            list.push_str(&id.to_string());
        }
        let text = client
            .query_text(
                &format!(
                    "SELECT DISTINCT session_id FROM {table} WHERE {range} AND session_id IN ({list})"
                ),
                CHECK_TIMEOUT,
            )
            .await?;
        for line in text.lines() {
            if let Ok(id) = line.trim().parse::<u64>() {
                found.insert(id);
            }
        }
    }
    Ok(found)
}

//! The sensor's self-monitoring row, written to `sensor_stats` every N seconds.

use serde::{Deserialize, Serialize};

/// One row of `sensor_stats`: what the sensor did during the last `interval_ms`.
///
/// Counters (`packets`, `bytes`, drops, `parse_errors`, `records`, `rows_*`,
/// `batches_retried`) are deltas over the interval, so `sum()` over a time range is the
/// total; gauges (`active_flows`, queue depths, `spool_bytes`) are the value at `ts`.
///
/// The pipeline fills the capture and pipeline fields. The ClickHouse sink fills the fields
/// it owns when the row passes through [`crate::sink::clickhouse::ClickhouseHandle::write_stats`]:
/// `sink_queue_depth`, `rows_written`, `rows_spooled`, `rows_dropped`, `batches_retried`,
/// `spool_bytes` and the `insert_latency_*` percentiles (an hdrhistogram of the INSERTs
/// that completed during the interval, in µs; 0 when none did).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SensorStatsRow {
    /// End of the interval, seconds since the epoch (UTC).
    pub ts: u32,
    /// Sensor name, as in `sessions.sensor`.
    pub sensor: String,
    /// Length of the interval in milliseconds.
    pub interval_ms: u32,
    /// Packets read from the capture.
    pub packets: u64,
    /// Bytes read from the capture (captured length).
    pub bytes: u64,
    /// Packets the kernel dropped (`ps_drop`).
    pub kernel_drops: u64,
    /// Packets the interface dropped (`ps_ifdrop`).
    pub kernel_if_drops: u64,
    /// Packets the sensor dropped itself (full queues, flow-table limits).
    pub own_drops: u64,
    /// Flows in the flow tables at `ts`.
    pub active_flows: u64,
    /// Deepest reader→worker queue at `ts`, in batches.
    pub worker_queue_depth: u32,
    /// Messages waiting in the ClickHouse sink's queue at `ts` (filled by the sink when the
    /// row is queued, so it counts the messages ahead of the row).
    pub sink_queue_depth: u32,
    /// Parser anomalies (malformed SMTP or TLS) counted during the interval.
    pub parse_errors: u64,
    /// Session records emitted during the interval.
    pub records: u64,
    /// Rows the sink inserted into ClickHouse during the interval (filled by the sink).
    pub rows_written: u64,
    /// Rows the sink wrote to the spool during the interval (filled by the sink).
    pub rows_spooled: u64,
    /// Rows the sink dropped because the spool was full (filled by the sink).
    pub rows_dropped: u64,
    /// INSERTs retried during the interval (filled by the sink).
    pub batches_retried: u64,
    /// Bytes in the spool at `ts` (filled by the sink).
    pub spool_bytes: u64,
    /// Median INSERT latency in µs over the interval (filled by the sink).
    pub insert_latency_p50_us: u64,
    /// 90th percentile INSERT latency in µs (filled by the sink).
    pub insert_latency_p90_us: u64,
    /// 99th percentile INSERT latency in µs (filled by the sink).
    pub insert_latency_p99_us: u64,
    /// Slowest INSERT in µs (filled by the sink).
    pub insert_latency_max_us: u64,
}

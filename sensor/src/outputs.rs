//! The sink stage of a run: fans records out to the configured sinks (JSONL, ClickHouse) and
//! the terminal summary, and turns counter snapshots into `sensor_stats` rows.

use crate::pipeline::{SinkMsg, StatsSnapshot};
use crate::report::Summary;
use mailtls_storage::sink::clickhouse::{ClickhouseHandle, SinkReport};
use mailtls_storage::sink::{JsonlSink, Sink};
use mailtls_storage::stats::SensorStatsRow;
use std::io::Write;
use std::time::UNIX_EPOCH;

/// Where the records of a run go.
pub struct Outputs {
    jsonl: Option<JsonlSink<Box<dyn Write + Send>>>,
    clickhouse: Option<ClickhouseHandle>,
    /// The terminal summary, fed with every record.
    pub summary: Summary,
    sensor: String,
    last: Option<StatsSnapshot>,
    errors: Vec<String>,
}

impl Outputs {
    /// Sinks for a run; either may be absent.
    pub fn new(
        jsonl: Option<JsonlSink<Box<dyn Write + Send>>>,
        clickhouse: Option<ClickhouseHandle>,
        sensor: String,
    ) -> Self {
        Outputs {
            jsonl,
            clickhouse,
            summary: Summary::default(),
            sensor,
            last: None,
            errors: Vec::new(),
        }
    }

    /// Handles one message of the pipeline.
    pub fn handle(&mut self, msg: SinkMsg) {
        match msg {
            SinkMsg::Records(records) => {
                for r in &records {
                    self.summary.add(r);
                    if let Some(j) = self.jsonl.as_mut() {
                        if let Err(e) = j.write(r) {
                            self.error(format!("JSONL: {e}"));
                        }
                    }
                }
                if let Some(ch) = &self.clickhouse {
                    if let Err(e) = ch.send(records) {
                        self.error(format!("ClickHouse: {e}"));
                    }
                }
            }
            SinkMsg::Stats(snap) => {
                if let Some(ch) = &self.clickhouse {
                    let row = stats_row(&self.sensor, self.last.as_ref(), &snap);
                    if let Err(e) = ch.write_stats(row) {
                        self.error(format!("ClickHouse: {e}"));
                    }
                }
                self.last = Some(*snap);
            }
        }
    }

    fn error(&mut self, e: String) {
        if self.errors.len() < 10 && !self.errors.contains(&e) {
            self.errors.push(e);
        }
    }

    /// Flushes and closes every sink; returns the summary, the ClickHouse report (when one
    /// was used) and the errors met on the way.
    pub fn finish(mut self) -> (Summary, Option<SinkReport>, Vec<String>) {
        if let Some(j) = self.jsonl.as_mut() {
            if let Err(e) = j.flush() {
                self.error(format!("JSONL: {e}"));
            }
        }
        let report = match self.clickhouse.take().map(ClickhouseHandle::close) {
            Some(Ok(r)) => Some(r),
            Some(Err(e)) => {
                self.error(format!("ClickHouse: {e}"));
                None
            }
            None => None,
        };
        (self.summary, report, self.errors)
    }
}

/// A `sensor_stats` row for the interval between two snapshots (counters as deltas).
fn stats_row(sensor: &str, prev: Option<&StatsSnapshot>, now: &StatsSnapshot) -> SensorStatsRow {
    let secs = |s: &StatsSnapshot| s.at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (p_packets, p_bytes, p_errors, p_records, p_at) = match prev {
        Some(p) => (
            p.reader.packets,
            p.reader.bytes,
            p.parse_errors,
            p.records,
            secs(p),
        ),
        None => (0, 0, 0, 0, secs(now)),
    };
    let interval = secs(now).saturating_sub(p_at);
    SensorStatsRow {
        ts: u32::try_from(secs(now).as_secs()).unwrap_or(u32::MAX),
        sensor: sensor.to_string(),
        interval_ms: u32::try_from(interval.as_millis()).unwrap_or(u32::MAX),
        packets: now.reader.packets.saturating_sub(p_packets),
        bytes: now.reader.bytes.saturating_sub(p_bytes),
        active_flows: now.active_flows,
        worker_queue_depth: u32::try_from(now.queue_depth).unwrap_or(u32::MAX),
        parse_errors: now.parse_errors.saturating_sub(p_errors),
        records: now.records.saturating_sub(p_records),
        ..SensorStatsRow::default()
    }
}

//! The sink stage of a run: fans records out to the configured sinks (JSONL, ClickHouse) and
//! the terminal summary, and turns counter snapshots into `sensor_stats` rows.

use crate::metrics::{self, MetricsPage, SinkFigures};
use crate::pipeline::{SinkMsg, StatsSnapshot};
use crate::report::Summary;
use mailtls_storage::sink::clickhouse::{ClickhouseHandle, SinkReport};
use mailtls_storage::sink::{JsonlSink, Sink};
use mailtls_storage::stats::SensorStatsRow;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

/// What a long-running sensor adds to the sink stage: JSONL reopening on SIGHUP, periodic
/// log lines, the metrics page.
pub struct Service {
    /// The JSONL file to reopen (append) when `reopen` is set.
    pub jsonl_path: Option<PathBuf>,
    /// Set by SIGHUP.
    pub reopen: Arc<AtomicBool>,
    /// Interval between log lines.
    pub log_every: Duration,
    /// The Prometheus page, when `--metrics-listen` is on.
    pub metrics: Option<MetricsPage>,
}

struct ServiceState {
    cfg: Service,
    next_log: Instant,
    last_logged: Option<(Instant, StatsSnapshot)>,
    handshakes: hdrhistogram::Histogram<u64>,
}

/// Where the records of a run go.
pub struct Outputs {
    jsonl: Option<JsonlSink<Box<dyn Write + Send>>>,
    clickhouse: Option<ClickhouseHandle>,
    /// The terminal summary, fed with every record unless turned off.
    pub summary: Summary,
    summarize: bool,
    sensor: String,
    last: Option<StatsSnapshot>,
    errors: Vec<String>,
    written: u64,
    service: Option<ServiceState>,
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
            summarize: true,
            sensor,
            last: None,
            errors: Vec::new(),
            written: 0,
            service: None,
        }
    }

    /// Leaves the terminal summary empty (nobody will print it: `--jsonl -`, live capture),
    /// which saves its per-record work.
    pub fn without_summary(mut self) -> Self {
        self.summarize = false;
        self
    }

    /// Turns on the long-running behaviour (live capture).
    pub fn with_service(mut self, cfg: Service) -> Self {
        let handshakes = hdrhistogram::Histogram::new_with_bounds(1, 600_000_000, 3)
            .expect("static histogram bounds are valid");
        self.service = Some(ServiceState {
            next_log: Instant::now() + cfg.log_every,
            cfg,
            last_logged: None,
            handshakes,
        });
        self
    }

    fn reopen_if_asked(&mut self) {
        let Some(svc) = &self.service else { return };
        if !svc.cfg.reopen.swap(false, Ordering::Relaxed) {
            return;
        }
        let Some(path) = svc.cfg.jsonl_path.clone() else {
            return;
        };
        if let Some(j) = self.jsonl.as_mut() {
            let _ = j.flush();
        }
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
        {
            Ok(f) => {
                self.jsonl = Some(JsonlSink::new(Box::new(f)));
                eprintln!("mailtls: reopened {}", path.display());
            }
            Err(e) => self.error(format!("reopening {}: {e}", path.display())),
        }
    }

    /// Handles one message of the pipeline.
    pub fn handle(&mut self, msg: SinkMsg) {
        self.reopen_if_asked();
        match msg {
            SinkMsg::Records(records) => {
                self.written += records.len() as u64;
                for r in &records {
                    if self.summarize {
                        self.summary.add(r);
                    }
                    if let Some(svc) = self.service.as_mut() {
                        if r.tls_handshake_us > 0 {
                            let _ = svc.handshakes.record(r.tls_handshake_us.max(1));
                        }
                    }
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
            SinkMsg::Jsonl { lines, records } => {
                self.written += records;
                if let Some(j) = self.jsonl.as_mut() {
                    if let Err(e) = j.write_encoded(&lines, records) {
                        self.error(format!("JSONL: {e}"));
                    }
                }
            }
            SinkMsg::Summary(part) => {
                if self.summarize {
                    self.summary.merge(*part);
                }
            }
            SinkMsg::Stats(snap) => {
                if let Some(ch) = &self.clickhouse {
                    let row = stats_row(&self.sensor, self.last.as_ref(), &snap);
                    if let Err(e) = ch.write_stats(row) {
                        self.error(format!("ClickHouse: {e}"));
                    }
                }
                self.service_tick(&snap);
                self.last = Some(*snap);
            }
        }
    }

    fn service_tick(&mut self, snap: &StatsSnapshot) {
        let report = self.clickhouse.as_ref().map(ClickhouseHandle::report);
        let Some(svc) = self.service.as_mut() else {
            return;
        };
        let h = &svc.handshakes;
        let figures = SinkFigures {
            records_written: self.written,
            clickhouse_rows: report.as_ref().map(|r| r.rows_written).unwrap_or(0),
            spool_rows: report.as_ref().map(|r| r.spool_rows_pending).unwrap_or(0),
            dropped_rows: report.as_ref().map(|r| r.rows_dropped).unwrap_or(0),
            handshake_us: [
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.9),
                h.value_at_quantile(0.99),
                h.max(),
            ],
        };
        if let Some(page) = &svc.cfg.metrics {
            if let Ok(mut p) = page.lock() {
                *p = metrics::render(snap, &figures);
            }
        }
        let now = Instant::now();
        if now < svc.next_log {
            return;
        }
        svc.next_log = now + svc.cfg.log_every;
        let (secs, pkts, bytes) = match &svc.last_logged {
            Some((t, prev)) => (
                now.duration_since(*t).as_secs_f64().max(1e-3),
                snap.reader.packets.saturating_sub(prev.reader.packets),
                snap.reader.bytes.saturating_sub(prev.reader.bytes),
            ),
            None => (1.0, 0, 0),
        };
        let sink_lag = snap
            .records
            .saturating_sub(figures.clickhouse_rows.max(self.written));
        eprintln!(
            "mailtls: {:.0} pps {:.2} Mbps kernel_drops={} if_drops={} own_drops=0 flows={} records={} sink_lag={} spool_rows={} latency_p99_us={}",
            pkts as f64 / secs,
            bytes as f64 * 8.0 / secs / 1e6,
            snap.reader.kernel_drops,
            snap.reader.kernel_if_drops,
            snap.active_flows,
            snap.records,
            sink_lag,
            figures.spool_rows,
            snap.latency_us[2],
        );
        svc.last_logged = Some((now, snap.clone()));
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
        None => (
            0,
            0,
            0,
            0,
            now.run_started
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
        ),
    };
    let interval = secs(now).saturating_sub(p_at);
    SensorStatsRow {
        ts: u32::try_from(secs(now).as_secs()).unwrap_or(u32::MAX),
        sensor: sensor.to_string(),
        interval_ms: u32::try_from(interval.as_millis()).unwrap_or(u32::MAX),
        packets: now.reader.packets.saturating_sub(p_packets),
        bytes: now.reader.bytes.saturating_sub(p_bytes),
        kernel_drops: now
            .reader
            .kernel_drops
            .saturating_sub(prev.map(|p| p.reader.kernel_drops).unwrap_or(0)),
        kernel_if_drops: now
            .reader
            .kernel_if_drops
            .saturating_sub(prev.map(|p| p.reader.kernel_if_drops).unwrap_or(0)),
        active_flows: now.active_flows,
        worker_queue_depth: u32::try_from(now.queue_depth).unwrap_or(u32::MAX),
        parse_errors: now.parse_errors.saturating_sub(p_errors),
        records: now.records.saturating_sub(p_records),
        ..SensorStatsRow::default()
    }
}

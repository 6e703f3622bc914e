//! Prometheus text exposition of the sensor's counters (`--metrics-listen`).
//!
//! Written by hand on `std::net`: one page of plain text per GET, which needs no HTTP
//! framework (and none of the dependencies or attack surface of one) in a sensor that may
//! face hostile networks.

use crate::pipeline::StatsSnapshot;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The current page, replaced by the sink stage at every snapshot.
pub type MetricsPage = Arc<Mutex<String>>;

/// Starts the endpoint on `addr` in a background thread; returns the page to update.
pub fn serve(addr: SocketAddr) -> std::io::Result<MetricsPage> {
    let listener = TcpListener::bind(addr)?;
    let page: MetricsPage = Arc::new(Mutex::new(String::from("# no snapshot yet\n")));
    let shared = page.clone();
    std::thread::Builder::new()
        .name("mailtls-metrics".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = conn.set_write_timeout(Some(Duration::from_secs(2)));
                let mut req = [0u8; 1024];
                let _ = conn.read(&mut req);
                let body = shared.lock().map(|p| p.clone()).unwrap_or_default();
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(body.as_bytes());
            }
        })?;
    Ok(page)
}

/// Extra figures the sink stage knows.
#[derive(Debug, Clone, Copy, Default)]
pub struct SinkFigures {
    /// Records written to the sinks so far.
    pub records_written: u64,
    /// Rows inserted into ClickHouse so far.
    pub clickhouse_rows: u64,
    /// Rows waiting in the ClickHouse spool.
    pub spool_rows: u64,
    /// Rows dropped past the spool cap.
    pub dropped_rows: u64,
    /// TLS handshake time percentiles, µs: p50, p90, p99, max.
    pub handshake_us: [u64; 4],
}

/// Renders a snapshot in the Prometheus text format.
pub fn render(s: &StatsSnapshot, sink: &SinkFigures) -> String {
    let mut o = String::new();
    let r = &s.reader;
    let counters: [(&str, &str, u64); 11] = [
        ("mailtls_packets_total", "Frames read", r.packets),
        (
            "mailtls_bytes_total",
            "Bytes on the wire of frames read",
            r.bytes,
        ),
        (
            "mailtls_packets_watched_total",
            "TCP packets on watched ports",
            r.watched,
        ),
        (
            "mailtls_kernel_received_total",
            "Packets the kernel handed over (ps_recv)",
            r.kernel_received,
        ),
        (
            "mailtls_kernel_drops_total",
            "Packets dropped for lack of buffer (ps_drop)",
            r.kernel_drops,
        ),
        (
            "mailtls_kernel_if_drops_total",
            "Packets dropped by the interface (ps_ifdrop)",
            r.kernel_if_drops,
        ),
        (
            "mailtls_records_total",
            "Session records emitted",
            s.records,
        ),
        (
            "mailtls_parse_errors_total",
            "Parser anomalies",
            s.parse_errors,
        ),
        (
            "mailtls_records_written_total",
            "Records handed to the sinks",
            sink.records_written,
        ),
        (
            "mailtls_clickhouse_rows_total",
            "Rows inserted into ClickHouse",
            sink.clickhouse_rows,
        ),
        (
            "mailtls_clickhouse_dropped_rows_total",
            "Rows dropped past the spool cap",
            sink.dropped_rows,
        ),
    ];
    for (name, help, v) in counters {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
    }
    let gauges: [(&str, &str, u64); 3] = [
        (
            "mailtls_active_flows",
            "Sessions being followed",
            s.active_flows,
        ),
        (
            "mailtls_worker_queue_batches",
            "Batches waiting for workers",
            s.queue_depth,
        ),
        (
            "mailtls_clickhouse_spool_rows",
            "Rows waiting in the spool",
            sink.spool_rows,
        ),
    ];
    for (name, help, v) in gauges {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
    }
    for (name, help, q) in [
        (
            "mailtls_pipeline_latency_us",
            "Per-packet pipeline latency, reader to worker",
            s.latency_us,
        ),
        (
            "mailtls_tls_handshake_us",
            "TLS handshake time, ClientHello to completion",
            sink.handshake_us,
        ),
    ] {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} summary");
        for (quantile, v) in ["0.5", "0.9", "0.99", "1"].iter().zip(q) {
            let _ = writeln!(o, "{name}{{quantile=\"{quantile}\"}} {v}");
        }
    }
    o
}

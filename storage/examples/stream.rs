//! Streams the records of a JSONL file into ClickHouse through the library's sink, at a
//! chosen pace: the writer of the outage, crash and benchmark tests.
//!
//! ```text
//! cargo run -p mailtls-storage --example stream -- --url URL --jsonl FILE
//!     [--spool DIR] [--rate ROWS_PER_SECOND] [--chunk N] [--batch-rows N] [--batch-ms MS]
//!     [--database DB] [--table T] [--skip-existing never|after-crash|always]
//!     [--no-create-schema] [--ca-file PEM] [--user U] [--password P]
//!     [--close-timeout-s S] [--repeat K] [--cluster NAME (DDL without ON CLUSTER)]
//! ```
//!
//! Credentials also come from MAILTLS_CLICKHOUSE_USER / MAILTLS_CLICKHOUSE_PASSWORD.
//! `--repeat K` sends the file K times, shifting timestamps by 1 ms per pass so that every
//! row is a distinct session (benchmark). Prints `sent: N` lines while running, then the
//! sink's counters, `rows_per_second:` and `cpu_us_per_row:`. A start-up failure prints one
//! line on stderr and exits 1.

use mailtls_storage::schema::ClusterConfig;
use mailtls_storage::sink::clickhouse::{
    ClickhouseConfig, ClickhouseSink, Credentials, SkipExisting,
};
use mailtls_storage::{SessionRecord, Timestamp};
use std::io::BufRead;
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn cpu_seconds() -> f64 {
    // utime + stime of this process, from /proc (Linux), in clock ticks of 1/100 s.
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let Some(after) = stat.rsplit_once(')').map(|(_, a)| a) else {
        return 0.0;
    };
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stream: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut url = String::new();
    let mut jsonl = String::new();
    let mut rate: Option<f64> = None;
    let mut chunk = 100usize;
    let mut repeat = 1u32;
    let mut user = None;
    let mut password = None;
    let mut cfg = ClickhouseConfig::new("");
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--url" => url = value()?,
            "--jsonl" => jsonl = value()?,
            "--spool" => cfg.spool_dir = Some(value()?.into()),
            "--rate" => rate = Some(value()?.parse()?),
            "--chunk" => chunk = value()?.parse()?,
            "--batch-rows" => cfg.batch_rows = value()?.parse()?,
            "--batch-ms" => cfg.batch_max_age = Duration::from_millis(value()?.parse()?),
            "--database" => cfg.schema.database = value()?,
            "--table" => cfg.schema.table = value()?,
            "--cluster" => {
                cfg.schema.cluster = Some(ClusterConfig {
                    name: value()?,
                    replicated: false,
                    on_cluster: false,
                })
            }
            "--skip-existing" => {
                cfg.skip_existing = match value()?.as_str() {
                    "never" => SkipExisting::Never,
                    "after-crash" => SkipExisting::AfterCrash,
                    "always" => SkipExisting::Always,
                    other => return Err(format!("bad --skip-existing {other}").into()),
                }
            }
            "--no-create-schema" => cfg.create_schema = false,
            "--ca-file" => cfg.ca_file = Some(value()?.into()),
            "--user" => user = Some(value()?),
            "--password" => password = Some(value()?),
            "--close-timeout-s" => cfg.close_timeout = Duration::from_secs(value()?.parse()?),
            "--repeat" => repeat = value()?.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    cfg.url = url;
    cfg.credentials = Credentials::resolve(user.as_deref(), password.as_deref(), None, |k| {
        std::env::var(k).ok()
    })?;
    let mut records = Vec::new();
    for line in std::io::BufReader::new(std::fs::File::open(&jsonl)?).lines() {
        let line = line?;
        if !line.trim().is_empty() {
            records.push(serde_json::from_str::<SessionRecord>(&line)?);
        }
    }
    let handle = ClickhouseSink::start(cfg)?;
    println!("started");
    let started = Instant::now();
    let cpu_start = cpu_seconds();
    let mut sent = 0u64;
    let mut last_print = Instant::now();
    for pass in 0..repeat {
        let shift = i64::from(pass) * 1_000;
        for part in records.chunks(chunk.max(1)) {
            let batch: Vec<SessionRecord> = part
                .iter()
                .map(|r| {
                    let mut r = r.clone();
                    if shift != 0 {
                        r.ts_start = Timestamp(r.ts_start.0 + shift);
                        r.ts_end = Timestamp(r.ts_end.0 + shift);
                    }
                    r
                })
                .collect();
            sent += batch.len() as u64;
            handle.send(batch)?;
            if let Some(rate) = rate {
                let due = Duration::from_secs_f64(sent as f64 / rate);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            if last_print.elapsed() >= Duration::from_secs(1) {
                println!("sent: {sent}");
                last_print = Instant::now();
            }
        }
    }
    println!("sent: {sent}");
    let report = handle.close()?;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_start;
    for line in report.lines() {
        println!("{line}");
    }
    println!("rows_sent: {sent}");
    println!("elapsed_seconds: {elapsed:.3}");
    println!("rows_per_second: {:.0}", sent as f64 / elapsed.max(1e-9));
    println!("cpu_us_per_row: {:.3}", cpu * 1e6 / (sent.max(1) as f64));
    Ok(())
}

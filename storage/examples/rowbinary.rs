//! Encodes a JSONL file of session records exactly as the ClickHouse sink does, and writes
//! the RowBinary batches (concatenated) to OUT plus a manifest OUT.json:
//! `{"columns": "...", "batches": [{"id", "rows", "offset", "len"}]}`.
//!
//! `cargo run -p mailtls-storage --example rowbinary -- IN.jsonl OUT.bin [BATCH_ROWS]`
//!
//! The tests feed OUT to chdb (`INSERT INTO ... FORMAT RowBinary`) to check that the bytes
//! the sink sends are what a modern ClickHouse reads.

use mailtls_storage::schema::{column_list, SESSION_COLUMNS};
use mailtls_storage::sink::clickhouse::{BatchLimits, Batcher};
use mailtls_storage::SessionRecord;
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(input), Some(output)) = (args.first(), args.get(1)) else {
        eprintln!("usage: rowbinary IN.jsonl OUT.bin [BATCH_ROWS]");
        return ExitCode::from(2);
    };
    let batch_rows = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    match run(input, output, batch_rows) {
        Ok(n) => {
            eprintln!("{n} rows encoded");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rowbinary: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(input: &str, output: &str, batch_rows: usize) -> Result<usize, Box<dyn std::error::Error>> {
    let reader = std::io::BufReader::new(std::fs::File::open(input)?);
    let mut batcher = Batcher::new(
        Batcher::new_run_id(),
        BatchLimits {
            max_rows: batch_rows,
            max_bytes: 64 << 20,
            max_age: Duration::from_secs(3600),
        },
    );
    let now = Instant::now();
    let mut batches = Vec::new();
    let mut rows = 0;
    for line in reader.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let record: SessionRecord = serde_json::from_str(&line)?;
        rows += 1;
        batches.extend(batcher.push_session(&record, now));
    }
    batches.extend(batcher.flush_all());
    let mut out = std::io::BufWriter::new(std::fs::File::create(output)?);
    let mut manifest = Vec::new();
    let mut offset = 0usize;
    for b in &batches {
        out.write_all(&b.data)?;
        manifest.push(serde_json::json!({
            "id": b.id, "rows": b.rows(), "offset": offset, "len": b.data.len(),
        }));
        offset += b.data.len();
    }
    out.flush()?;
    let manifest = serde_json::json!({
        "columns": column_list(SESSION_COLUMNS),
        "batches": manifest,
    });
    std::fs::write(
        format!("{output}.json"),
        serde_json::to_string_pretty(&manifest)?,
    )?;
    Ok(rows)
}

//! JSON Lines sink: one record per line, keys as in [`SessionRecord`].

use super::Sink;
use crate::{Error, SessionRecord};
use std::io::{BufWriter, Write};

/// Writes one JSON object per line to any writer (a file, stdout).
pub struct JsonlSink<W: Write> {
    out: BufWriter<W>,
    /// One encoded line, reused from record to record.
    line: Vec<u8>,
    records: u64,
}

impl<W: Write> JsonlSink<W> {
    /// Wraps `out` in a buffered JSONL writer.
    pub fn new(out: W) -> Self {
        JsonlSink {
            out: BufWriter::with_capacity(64 * 1024, out),
            line: Vec::with_capacity(4096),
            records: 0,
        }
    }

    /// Writes lines already encoded by [`crate::json::encode_record`] (each ending in
    /// `\n`), counting them as `records` records.
    pub fn write_encoded(&mut self, lines: &[u8], records: u64) -> Result<(), Error> {
        self.out.write_all(lines)?;
        self.records += records;
        Ok(())
    }

    /// Records written so far.
    pub fn records(&self) -> u64 {
        self.records
    }
}

impl<W: Write> Sink for JsonlSink<W> {
    fn write(&mut self, record: &SessionRecord) -> Result<(), Error> {
        self.line.clear();
        crate::json::encode_record(record, &mut self.line);
        self.line.push(b'\n');
        self.out.write_all(&self.line)?;
        self.records += 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Error> {
        self.out.flush()?;
        Ok(())
    }
}

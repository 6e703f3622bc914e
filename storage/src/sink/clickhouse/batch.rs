//! Batching: rows are encoded as they arrive into one open batch per (table, UTC day);
//! a batch closes at `max_rows` rows, `max_bytes` bytes or `max_age` after its first row,
//! whichever comes first.
//!
//! One day per batch means one partition per INSERT, so ClickHouse writes each batch as a
//! single part: the INSERT is all-or-nothing, which the deduplication on 18.16 relies on
//! (see [`super::dedup`]).

use super::rowbinary::{encode_session, encode_stats, session_id, WIRE_VERSION};
use crate::stats::SensorStatsRow;
use crate::SessionRecord;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Which table a batch goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TableKind {
    /// The raw session table.
    Sessions,
    /// `sensor_stats`.
    SensorStats,
}

impl TableKind {
    /// The byte stored in spool records.
    pub fn code(self) -> u8 {
        match self {
            TableKind::Sessions => 1,
            TableKind::SensorStats => 2,
        }
    }

    /// The inverse of [`TableKind::code`].
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(TableKind::Sessions),
            2 => Some(TableKind::SensorStats),
            _ => None,
        }
    }
}

/// A closed batch: RowBinary rows ready for `INSERT ... FORMAT RowBinary`, with what the
/// deduplication needs (id, time range, per-row session keys and offsets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedBatch {
    /// Unique id: `RUN-SEQUENCE`, e.g. `3f9a1c0b7d2e41aa-000042`. Sent as the
    /// `insert_deduplication_token` and `query_id`, and stored in every row's `batch_id`.
    pub id: String,
    /// Destination table.
    pub kind: TableKind,
    /// Version of the column list the bytes follow ([`WIRE_VERSION`]).
    pub wire_version: u16,
    /// Smallest `ts_start` (µs) in the batch (`ts` in seconds for sensor_stats).
    pub ts_lo: i64,
    /// Largest `ts_start` (µs) in the batch (`ts` in seconds for sensor_stats).
    pub ts_hi: i64,
    /// `session_id` of each row (0 for sensor_stats rows).
    pub session_ids: Vec<u64>,
    /// Byte offset of each row in `data`.
    pub row_offsets: Vec<u32>,
    /// The RowBinary rows.
    pub data: Vec<u8>,
}

impl EncodedBatch {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.row_offsets.len()
    }

    /// The batch without the rows whose `session_id` is in `drop` (ids stay, bytes are
    /// copied row by row).
    pub fn without(&self, drop: &std::collections::HashSet<u64>) -> EncodedBatch {
        let mut out = EncodedBatch {
            id: self.id.clone(),
            kind: self.kind,
            wire_version: self.wire_version,
            ts_lo: self.ts_lo,
            ts_hi: self.ts_hi,
            session_ids: Vec::new(),
            row_offsets: Vec::new(),
            data: Vec::new(),
        };
        for (i, (&id, &start)) in self.session_ids.iter().zip(&self.row_offsets).enumerate() {
            if drop.contains(&id) {
                continue;
            }
            let end = self
                .row_offsets
                .get(i + 1)
                .map_or(self.data.len(), |&e| e as usize);
            if let Some(row) = self.data.get(start as usize..end) {
                out.session_ids.push(id);
                out.row_offsets.push(out.data.len() as u32);
                out.data.extend_from_slice(row);
            }
        }
        out
    }
}

struct OpenBatch {
    opened: Instant,
    batch: EncodedBatch,
}

/// Limits of a batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Close at this many rows (1..=1_000_000: a batch must stay one block on the server).
    pub max_rows: usize,
    /// Close at this many encoded bytes.
    pub max_bytes: usize,
    /// Close this long after the first row.
    pub max_age: Duration,
}

/// Encodes rows into open batches and closes them; see the module documentation.
pub struct Batcher {
    run_id: String,
    next_seq: u64,
    limits: BatchLimits,
    open: BTreeMap<(TableKind, i64), OpenBatch>,
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

impl Batcher {
    /// A batcher whose batch ids start with `run_id`.
    pub fn new(run_id: String, limits: BatchLimits) -> Self {
        Batcher {
            run_id,
            next_seq: 0,
            limits,
            open: BTreeMap::new(),
        }
    }

    /// A fresh run id: 16 hex digits from the clock, the process id and the thread.
    pub fn new_run_id() -> String {
        let mut h = Sha256::new();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        h.update(now.to_le_bytes());
        h.update(std::process::id().to_le_bytes());
        h.update(format!("{:?}", std::thread::current().id()).as_bytes());
        let digest = h.finalize();
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    fn open_batch(&mut self, key: (TableKind, i64), now: Instant) -> &mut OpenBatch {
        let run_id = &self.run_id;
        let next_seq = &mut self.next_seq;
        self.open.entry(key).or_insert_with(|| {
            let id = format!("{run_id}-{:06}", *next_seq);
            *next_seq += 1;
            OpenBatch {
                opened: now,
                batch: EncodedBatch {
                    id,
                    kind: key.0,
                    wire_version: WIRE_VERSION,
                    ts_lo: i64::MAX,
                    ts_hi: i64::MIN,
                    session_ids: Vec::new(),
                    row_offsets: Vec::new(),
                    data: Vec::new(),
                },
            }
        })
    }

    fn close_if_full(&mut self, key: (TableKind, i64)) -> Option<EncodedBatch> {
        let full = self.open.get(&key).is_some_and(|o| {
            o.batch.rows() >= self.limits.max_rows || o.batch.data.len() >= self.limits.max_bytes
        });
        if full {
            self.open.remove(&key).map(|o| o.batch)
        } else {
            None
        }
    }

    /// Encodes one record; returns its batch if that filled it.
    pub fn push_session(&mut self, r: &SessionRecord, now: Instant) -> Option<EncodedBatch> {
        let ts = r.ts_start.micros();
        let key = (TableKind::Sessions, ts.div_euclid(MICROS_PER_DAY));
        let sid = session_id(r);
        let open = self.open_batch(key, now);
        let b = &mut open.batch;
        b.row_offsets.push(b.data.len() as u32);
        b.session_ids.push(sid);
        b.ts_lo = b.ts_lo.min(ts);
        b.ts_hi = b.ts_hi.max(ts);
        encode_session(&mut b.data, r, sid, &b.id);
        self.close_if_full(key)
    }

    /// Encodes one stats row; returns its batch if that filled it.
    pub fn push_stats(&mut self, s: &SensorStatsRow, now: Instant) -> Option<EncodedBatch> {
        let ts = i64::from(s.ts);
        let key = (TableKind::SensorStats, ts.div_euclid(86_400));
        let open = self.open_batch(key, now);
        let b = &mut open.batch;
        b.row_offsets.push(b.data.len() as u32);
        b.session_ids.push(0);
        b.ts_lo = b.ts_lo.min(ts);
        b.ts_hi = b.ts_hi.max(ts);
        encode_stats(&mut b.data, s, &b.id);
        self.close_if_full(key)
    }

    /// Closes and returns the batches opened `max_age` or longer before `now`.
    pub fn due(&mut self, now: Instant) -> Vec<EncodedBatch> {
        let max_age = self.limits.max_age;
        let keys: Vec<_> = self
            .open
            .iter()
            .filter(|(_, o)| now.saturating_duration_since(o.opened) >= max_age)
            .map(|(k, _)| *k)
            .collect();
        keys.into_iter()
            .filter_map(|k| self.open.remove(&k).map(|o| o.batch))
            .collect()
    }

    /// When the oldest open batch is due, `None` when nothing is open.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.open
            .values()
            .map(|o| o.opened + self.limits.max_age)
            .min()
    }

    /// Closes and returns every open batch.
    pub fn flush_all(&mut self) -> Vec<EncodedBatch> {
        std::mem::take(&mut self.open)
            .into_values()
            .map(|o| o.batch)
            .collect()
    }

    /// Rows in open batches.
    pub fn pending_rows(&self) -> usize {
        self.open.values().map(|o| o.batch.rows()).sum()
    }
}

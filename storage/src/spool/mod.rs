//! The on-disk spool: batches that could not be inserted wait here, in order, until
//! ClickHouse takes them, in this run or the next.
//!
//! A directory of segment files `00000000000000000001.seg`, … Each segment starts with an
//! 8-byte magic and holds records:
//!
//! ```text
//! u32 LE  body length
//! u32 LE  CRC32 (IEEE) of the body
//! body:   u8 table kind, u16 wire version, i64 ts_lo, i64 ts_hi,
//!         u16 id length, id bytes, u32 rows, rows × (u64 session_id, u32 offset),
//!         RowBinary bytes (the rest)
//! ```
//!
//! - Every append is followed by `fdatasync`; a new segment also syncs the directory. A batch
//!   the sink reports as spooled survives `kill -9` and power loss.
//! - A torn last record (the process died mid-append) fails its length or CRC check at
//!   [`Spool::open`]; the segment is truncated there and the record counted in
//!   [`SpoolOpenReport::torn_records`].
//! - [`Spool::peek`] returns the oldest record not yet acknowledged; [`Spool::ack`] moves past
//!   it and deletes the segment once all its records are acknowledged. The position is also
//!   written to `ACK` (not synced: after a crash a few records may be sent again, and the
//!   sink's deduplication drops them).
//! - The total size is capped: [`Spool::append`] refuses a record that would pass the cap.
//! - `LOCK` is held with an advisory lock while a spool is open (a second process gets an
//!   error) and says `clean` after [`Spool::close`]: finding anything else at open means
//!   the previous run died ([`SpoolOpenReport::previous_run_crashed`]).

use crate::sink::clickhouse::batch::{EncodedBatch, TableKind};
use crate::Error;
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"MTLSSPL1";
const RECORD_PREFIX: u64 = 8;
/// Largest body accepted when reading (a corrupt length must not allocate gigabytes).
const MAX_BODY: u32 = 1 << 30;

/// What [`Spool::open`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpoolOpenReport {
    /// Segment files found.
    pub segments: usize,
    /// Complete records (batches) waiting to be replayed.
    pub batches: u64,
    /// Rows in those batches.
    pub rows: u64,
    /// Bytes on disk.
    pub bytes: u64,
    /// Torn or corrupt records discarded (truncated away).
    pub torn_records: u64,
    /// `LOCK` did not say `clean`: the previous run did not close the spool.
    pub previous_run_crashed: bool,
}

/// A record read back from the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpooledBatch {
    /// The batch as it was appended.
    pub batch: EncodedBatch,
    /// Size of the record on disk.
    pub disk_bytes: u64,
}

/// Result of [`Spool::append`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Written and synced.
    Stored,
    /// Not written: the spool would pass its size cap.
    Full,
}

#[derive(Debug)]
struct Segment {
    seq: u64,
    path: PathBuf,
    len: u64,
}

/// An open spool directory; see the module documentation.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_max_bytes: u64,
    segments: VecDeque<Segment>,
    /// Appends go to the last segment while this is set.
    active: Option<File>,
    /// Offset of the next unacknowledged record in the first segment.
    read_offset: u64,
    /// Size of the record last returned by `peek`.
    peeked: Option<u64>,
    total_bytes: u64,
    pending_batches: u64,
    pending_rows: u64,
    lock: File,
}

fn spool_err(path: &Path, message: impl Into<String>) -> Error {
    Error::Spool {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn io_err(path: &Path, e: std::io::Error) -> Error {
    spool_err(path, e.to_string())
}

fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir, e))
}

/// Serialises a batch as a spool record (prefix + body).
pub fn encode_record(batch: &EncodedBatch) -> Vec<u8> {
    let id = batch.id.as_bytes();
    let id_len = id.len().min(u16::MAX as usize);
    let mut body = Vec::with_capacity(40 + id_len + batch.rows() * 12 + batch.data.len());
    body.push(batch.kind.code());
    body.extend_from_slice(&batch.wire_version.to_le_bytes());
    body.extend_from_slice(&batch.ts_lo.to_le_bytes());
    body.extend_from_slice(&batch.ts_hi.to_le_bytes());
    body.extend_from_slice(&(id_len as u16).to_le_bytes());
    body.extend_from_slice(&id[..id_len]);
    body.extend_from_slice(&(batch.rows() as u32).to_le_bytes());
    for (sid, off) in batch.session_ids.iter().zip(&batch.row_offsets) {
        body.extend_from_slice(&sid.to_le_bytes());
        body.extend_from_slice(&off.to_le_bytes());
    }
    body.extend_from_slice(&batch.data);
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.buf.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
}

/// Parses a record body (after the length and CRC); `None` when malformed.
pub fn decode_body(body: &[u8]) -> Option<EncodedBatch> {
    let mut c = Cursor { buf: body, pos: 0 };
    let kind = TableKind::from_code(c.array::<1>()?[0])?;
    let wire_version = u16::from_le_bytes(c.array()?);
    let ts_lo = i64::from_le_bytes(c.array()?);
    let ts_hi = i64::from_le_bytes(c.array()?);
    let id_len = u16::from_le_bytes(c.array()?) as usize;
    let id = String::from_utf8(c.take(id_len)?.to_vec()).ok()?;
    let rows = u32::from_le_bytes(c.array()?) as usize;
    let mut session_ids = Vec::with_capacity(rows.min(body.len() / 12));
    let mut row_offsets = Vec::with_capacity(rows.min(body.len() / 12));
    for _ in 0..rows {
        session_ids.push(u64::from_le_bytes(c.array()?));
        row_offsets.push(u32::from_le_bytes(c.array()?));
    }
    let data = body.get(c.pos..)?.to_vec();
    if row_offsets
        .iter()
        .any(|&o| o as usize > data.len() || (rows > 0 && data.is_empty()))
    {
        return None;
    }
    Some(EncodedBatch {
        id,
        kind,
        wire_version,
        ts_lo,
        ts_hi,
        session_ids,
        row_offsets,
        data,
    })
}

/// Reads the record at `offset` of `file`: `Ok(None)` at a clean end of file, `Err(())`
/// for a torn or corrupt record.
fn read_record(file: &mut File, offset: u64, len: u64) -> Result<Option<(EncodedBatch, u64)>, ()> {
    if offset >= len {
        return Ok(None);
    }
    if len - offset < RECORD_PREFIX {
        return Err(());
    }
    file.seek(SeekFrom::Start(offset)).map_err(|_| ())?;
    let mut prefix = [0u8; 8];
    file.read_exact(&mut prefix).map_err(|_| ())?;
    let body_len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    let crc = u32::from_le_bytes([prefix[4], prefix[5], prefix[6], prefix[7]]);
    if body_len > MAX_BODY || u64::from(body_len) > len - offset - RECORD_PREFIX {
        return Err(());
    }
    let mut body = vec![0u8; body_len as usize];
    file.read_exact(&mut body).map_err(|_| ())?;
    if crc32fast::hash(&body) != crc {
        return Err(());
    }
    let batch = decode_body(&body).ok_or(())?;
    Ok(Some((batch, RECORD_PREFIX + u64::from(body_len))))
}

impl Spool {
    /// Opens (creating if needed) the spool in `dir` with a total size cap of `max_bytes`,
    /// checks every record, truncates torn tails, and locks the directory.
    /// Errors when another process holds the lock or the directory is unusable.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<(Spool, SpoolOpenReport), Error> {
        Self::open_with_segment_size(dir, max_bytes, 64 << 20)
    }

    /// [`Spool::open`] with segments rotated at `segment_max_bytes` (tests use small ones).
    pub fn open_with_segment_size(
        dir: &Path,
        max_bytes: u64,
        segment_max_bytes: u64,
    ) -> Result<(Spool, SpoolOpenReport), Error> {
        fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let lock_path = dir.join("LOCK");
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| io_err(&lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(spool_err(
                    dir,
                    "in use by another mailtls process (LOCK is held)",
                ))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(&lock_path, e)),
        }
        let mut previous = String::new();
        lock.read_to_string(&mut previous)
            .map_err(|e| io_err(&lock_path, e))?;
        let previous_run_crashed = !previous.is_empty() && previous.trim() != "clean";
        lock.set_len(0).map_err(|e| io_err(&lock_path, e))?;
        lock.seek(SeekFrom::Start(0))
            .map_err(|e| io_err(&lock_path, e))?;
        lock.write_all(format!("running pid {}\n", std::process::id()).as_bytes())
            .and_then(|()| lock.sync_data())
            .map_err(|e| io_err(&lock_path, e))?;

        let mut seqs = Vec::new();
        for entry in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
            let entry = entry.map_err(|e| io_err(dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(seq) = name
                .strip_suffix(".seg")
                .and_then(|s| s.parse::<u64>().ok())
            {
                seqs.push(seq);
            }
        }
        seqs.sort_unstable();

        let mut report = SpoolOpenReport {
            previous_run_crashed,
            ..SpoolOpenReport::default()
        };
        let mut segments = VecDeque::new();
        for seq in seqs {
            let path = dir.join(format!("{seq:020}.seg"));
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|e| io_err(&path, e))?;
            let len = file.metadata().map_err(|e| io_err(&path, e))?.len();
            let mut magic = [0u8; 8];
            if len < MAGIC.len() as u64 || file.read_exact(&mut magic).is_err() || &magic != MAGIC {
                // A segment whose header never made it to disk holds nothing.
                tracing::warn!(path = %path.display(), "spool: segment without header removed");
                report.torn_records += u64::from(len > 0);
                fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
                continue;
            }
            let mut offset = MAGIC.len() as u64;
            loop {
                match read_record(&mut file, offset, len) {
                    Ok(Some((batch, size))) => {
                        report.batches += 1;
                        report.rows += batch.rows() as u64;
                        offset += size;
                    }
                    Ok(None) => break,
                    Err(()) => {
                        report.torn_records += 1;
                        tracing::warn!(
                            path = %path.display(),
                            offset,
                            discarded_bytes = len - offset,
                            "spool: torn or corrupt record discarded (truncated)"
                        );
                        file.set_len(offset)
                            .and_then(|()| file.sync_all())
                            .map_err(|e| io_err(&path, e))?;
                        break;
                    }
                }
            }
            report.segments += 1;
            report.bytes += offset;
            segments.push_back(Segment {
                seq,
                path,
                len: offset,
            });
        }

        let mut spool = Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_max_bytes,
            segments,
            active: None,
            read_offset: MAGIC.len() as u64,
            peeked: None,
            total_bytes: report.bytes,
            pending_batches: report.batches,
            pending_rows: report.rows,
            lock,
        };
        spool.restore_ack();
        Ok((spool, report))
    }

    /// Skips records that `ACK` says were already inserted (best effort).
    fn restore_ack(&mut self) {
        let Ok(text) = fs::read_to_string(self.dir.join("ACK")) else {
            return;
        };
        let mut parts = text.split_whitespace();
        let (Some(seq), Some(offset)) = (
            parts.next().and_then(|s| s.parse::<u64>().ok()),
            parts.next().and_then(|s| s.parse::<u64>().ok()),
        ) else {
            return;
        };
        let Some(front) = self.segments.front() else {
            return;
        };
        if front.seq != seq || offset > front.len || offset < MAGIC.len() as u64 {
            return;
        }
        // Recount what is skipped so the pending counters stay right.
        let Ok(mut file) = File::open(&front.path) else {
            return;
        };
        let mut pos = MAGIC.len() as u64;
        while pos < offset {
            match read_record(&mut file, pos, front.len) {
                Ok(Some((batch, size))) => {
                    self.pending_batches = self.pending_batches.saturating_sub(1);
                    self.pending_rows = self.pending_rows.saturating_sub(batch.rows() as u64);
                    pos += size;
                }
                _ => return,
            }
        }
        if pos == offset {
            self.read_offset = offset;
        }
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes on disk (segment files).
    pub fn bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Batches waiting.
    pub fn pending_batches(&self) -> u64 {
        self.pending_batches
    }

    /// Rows waiting.
    pub fn pending_rows(&self) -> u64 {
        self.pending_rows
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.pending_batches == 0
    }

    /// Appends `batch` and syncs it to disk, or refuses it when the cap would be passed.
    pub fn append(&mut self, batch: &EncodedBatch) -> Result<AppendOutcome, Error> {
        let record = encode_record(batch);
        let size = record.len() as u64;
        let new_segment = self.active.is_none()
            || self
                .segments
                .back()
                .is_none_or(|s| s.len + size > self.segment_max_bytes);
        let extra = if new_segment { MAGIC.len() as u64 } else { 0 };
        if self.total_bytes + size + extra > self.max_bytes {
            return Ok(AppendOutcome::Full);
        }
        if new_segment {
            self.start_segment()?;
        }
        let (Some(file), Some(segment)) = (self.active.as_mut(), self.segments.back_mut()) else {
            return Err(spool_err(&self.dir, "no active segment"));
        };
        let written = file.write_all(&record).and_then(|()| file.sync_data());
        if let Err(e) = written {
            // Leave no half record behind (the next open would truncate it anyway). When the
            // cut works, the segment stays the one appended to (append mode writes at its
            // end): a disk that stays full must not get one new segment file per failed
            // batch, each taking a block of what little room is left.
            if file.set_len(segment.len).is_err() {
                self.active = None;
            }
            return Err(io_err(&segment.path, e));
        }
        segment.len += size;
        self.total_bytes += size;
        self.pending_batches += 1;
        self.pending_rows += batch.rows() as u64;
        Ok(AppendOutcome::Stored)
    }

    /// Creates the next segment file (header written, directory synced) and makes it the
    /// one appended to. A file that already has its name can only be the remains of an
    /// earlier attempt of this spool that failed half-way (e.g. disk full after the file was
    /// created): segments are numbered in order and the directory is locked. It is replaced;
    /// a failed attempt removes its own file, so that no later append trips over it.
    fn start_segment(&mut self) -> Result<(), Error> {
        let seq = self.segments.back().map_or(1, |s| s.seq + 1);
        let path = self.dir.join(format!("{seq:020}.seg"));
        let open = || OpenOptions::new().create_new(true).append(true).open(&path);
        let mut file = match open() {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                tracing::warn!(path = %path.display(), "spool: leftover of a failed segment creation replaced");
                fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
                open()
            }
            other => other,
        }
        .map_err(|e| io_err(&path, e))?;
        if let Err(e) = file
            .write_all(MAGIC)
            .map_err(|e| io_err(&path, e))
            .and_then(|()| sync_dir(&self.dir))
        {
            drop(file);
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        self.segments.push_back(Segment {
            seq,
            path,
            len: MAGIC.len() as u64,
        });
        self.total_bytes += MAGIC.len() as u64;
        self.active = Some(file);
        Ok(())
    }

    /// The oldest record not yet acknowledged, `None` when the spool is empty. A corrupt
    /// record (the disk changed under us) is skipped with a warning.
    pub fn peek(&mut self) -> Result<Option<SpooledBatch>, Error> {
        loop {
            let Some(front) = self.segments.front() else {
                return Ok(None);
            };
            let mut file = File::open(&front.path).map_err(|e| io_err(&front.path, e))?;
            match read_record(&mut file, self.read_offset, front.len) {
                Ok(Some((batch, size))) => {
                    self.peeked = Some(size);
                    return Ok(Some(SpooledBatch {
                        batch,
                        disk_bytes: size,
                    }));
                }
                Ok(None) => {
                    // Every record of the first segment is acknowledged.
                    if self.segments.len() == 1 && self.active.is_some() {
                        // The writer is still on it: close it so it can go.
                        self.active = None;
                    }
                    self.drop_front()?;
                }
                Err(()) => {
                    tracing::error!(
                        path = %front.path.display(),
                        offset = self.read_offset,
                        "spool: corrupt record, rest of segment skipped"
                    );
                    if self.segments.len() == 1 {
                        self.active = None;
                    }
                    self.drop_front()?;
                }
            }
        }
    }

    fn drop_front(&mut self) -> Result<(), Error> {
        if let Some(front) = self.segments.pop_front() {
            match fs::remove_file(&front.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&front.path, e)),
            }
            self.total_bytes = self.total_bytes.saturating_sub(front.len);
        }
        self.read_offset = MAGIC.len() as u64;
        self.peeked = None;
        if self.segments.is_empty() {
            self.pending_batches = 0;
            self.pending_rows = 0;
            let _ = fs::remove_file(self.dir.join("ACK"));
        }
        Ok(())
    }

    /// Acknowledges the record last returned by [`Spool::peek`] (`rows` rows): it will not
    /// be returned again, and its segment is deleted once fully acknowledged.
    pub fn ack(&mut self, rows: usize) -> Result<(), Error> {
        let Some(size) = self.peeked.take() else {
            return Ok(());
        };
        self.read_offset += size;
        self.pending_batches = self.pending_batches.saturating_sub(1);
        self.pending_rows = self.pending_rows.saturating_sub(rows as u64);
        let Some(front) = self.segments.front() else {
            return Ok(());
        };
        let finished = self.read_offset >= front.len;
        let is_active = self.segments.len() == 1 && self.active.is_some();
        if finished && !is_active {
            self.drop_front()?;
        } else {
            let _ = fs::write(
                self.dir.join("ACK"),
                format!("{} {}\n", front.seq, self.read_offset),
            );
        }
        Ok(())
    }

    /// Marks a clean shutdown in `LOCK` and releases it. Records still waiting stay for the
    /// next run.
    pub fn close(mut self) -> Result<(), Error> {
        let lock_path = self.dir.join("LOCK");
        self.lock
            .set_len(0)
            .and_then(|()| self.lock.seek(SeekFrom::Start(0)).map(|_| ()))
            .and_then(|()| self.lock.write_all(b"clean\n"))
            .and_then(|()| self.lock.sync_data())
            .map_err(|e| io_err(&lock_path, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;

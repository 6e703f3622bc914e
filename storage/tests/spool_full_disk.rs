//! The spool on a full disk: a 1 MiB tmpfs mounted by the test (needs root or
//! CAP_SYS_ADMIN, as in CI; otherwise every test says so loudly and passes).
//!
//! A failed append (ENOSPC) must leave the spool as it was: no torn record, no empty segment
//! file per failure (each would eat a block of the full disk), and nothing that keeps later
//! appends failing once space is back (ClickHouse took some batches, the operator freed
//! space).

use mailtls_storage::sink::clickhouse::{EncodedBatch, TableKind};
use mailtls_storage::spool::{AppendOutcome, Spool};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of `size` mounted on a fresh directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(test: &str, size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs { dir }),
            Ok(o) => {
                eprintln!(
                    "\n*** SKIPPED {test}: cannot mount a tmpfs (needs root): {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("\n*** SKIPPED {test}: cannot run mount: {e}");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

/// A batch of `rows` rows of 1 KiB each (incompressible enough for tmpfs, which does not
/// compress anyway).
fn batch(seq: usize, rows: usize) -> EncodedBatch {
    let mut data = Vec::with_capacity(rows * 1024);
    let mut offsets = Vec::with_capacity(rows);
    for r in 0..rows {
        offsets.push(data.len() as u32);
        data.extend((0..1024).map(|i| ((seq * 31 + r * 7 + i) % 251) as u8));
    }
    EncodedBatch {
        id: format!("fulldisk-{seq:06}"),
        kind: TableKind::Sessions,
        wire_version: 1,
        ts_lo: 0,
        ts_hi: 1,
        session_ids: (0..rows as u64).map(|i| seq as u64 * 1000 + i).collect(),
        row_offsets: offsets,
        data,
    }
}

fn segment_files(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut v: Vec<(PathBuf, u64)> = std::fs::read_dir(dir)
        .expect("readdir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .map(|p| {
            let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            (p, len)
        })
        .collect();
    v.sort();
    v
}

/// Appends batches until `failures` appends in a row failed; returns the ids stored.
fn fill(spool: &mut Spool, first_seq: usize, failures: usize) -> (Vec<String>, usize) {
    let mut stored = Vec::new();
    let mut failed = 0;
    let mut seq = first_seq;
    while failed < failures {
        let b = batch(seq, 100);
        match spool.append(&b) {
            Ok(AppendOutcome::Stored) => {
                stored.push(b.id.clone());
                failed = 0;
            }
            Ok(AppendOutcome::Full) => panic!("the size cap is far above the disk"),
            Err(e) => {
                assert!(
                    e.to_string().contains("No space left on device"),
                    "unexpected error: {e}"
                );
                failed += 1;
            }
        }
        seq += 1;
        assert!(seq < first_seq + 1000, "the disk never filled up");
    }
    (stored, seq)
}

#[test]
fn a_full_disk_leaves_no_debris_and_appends_work_again_once_space_is_back() {
    let test = "a_full_disk_leaves_no_debris_and_appends_work_again_once_space_is_back";
    let Some(fs) = Tmpfs::mount(test, "1m") else {
        return;
    };
    let dir = fs.path().join("spool");
    // Segments of 256 KiB: about two batches each, so acknowledging frees whole files.
    let (mut spool, _) = Spool::open_with_segment_size(&dir, 1 << 30, 256 << 10).expect("open");
    // 50 failed appends in a row: each used to create a segment file of its own.
    let (stored, next) = fill(&mut spool, 0, 50);
    assert!(stored.len() >= 4, "{} batches fit", stored.len());
    assert_eq!(spool.pending_batches(), stored.len() as u64);
    assert_eq!(spool.pending_rows(), 100 * stored.len() as u64);

    // No debris: every segment file but the one being written holds records; the bytes
    // on disk are what the spool counts.
    let segs = segment_files(&dir);
    let empty = segs.iter().filter(|(_, len)| *len <= 8).count();
    assert!(
        empty <= 1,
        "{empty} segment files without records: {segs:?}"
    );
    assert_eq!(segs.iter().map(|(_, l)| l).sum::<u64>(), spool.bytes());

    // ClickHouse takes the first two batches: their segment goes, space is back, and the
    // next appends must succeed (no leftover of a failed segment creation in the way).
    for want in &stored[..2] {
        let got = spool.peek().expect("peek").expect("a batch");
        assert_eq!(&got.batch.id, want);
        spool.ack(got.batch.rows()).expect("ack");
    }
    let after = batch(next, 100);
    assert_eq!(
        spool
            .append(&after)
            .expect("space is back: the append works"),
        AppendOutcome::Stored
    );

    // Everything stored comes back in order, once; the failed appends left nothing.
    let mut want: Vec<String> = stored[2..].to_vec();
    want.push(after.id.clone());
    let mut got = Vec::new();
    while let Some(s) = spool.peek().expect("peek") {
        got.push(s.batch.id.clone());
        spool.ack(s.batch.rows()).expect("ack");
    }
    assert_eq!(got, want);
    spool.close().expect("close");

    // A new run finds a clean, empty spool.
    let (spool, report) = Spool::open(&dir, 1 << 30).expect("reopen");
    assert_eq!(report.batches, 0);
    assert_eq!(report.torn_records, 0);
    assert!(!report.previous_run_crashed);
    drop(spool);
}

#[test]
fn a_full_disk_keeps_every_stored_batch_across_a_restart() {
    let test = "a_full_disk_keeps_every_stored_batch_across_a_restart";
    let Some(fs) = Tmpfs::mount(test, "1m") else {
        return;
    };
    let dir = fs.path().join("spool");
    let (mut spool, _) = Spool::open(&dir, 1 << 30).expect("open");
    let (stored, _) = fill(&mut spool, 0, 20);
    assert!(!stored.is_empty());
    spool.close().expect("close on a full disk");

    // The next run (disk still full) reads back exactly the stored batches, none torn.
    let (mut spool, report) = Spool::open(&dir, 1 << 30).expect("reopen");
    assert_eq!(report.batches, stored.len() as u64);
    assert_eq!(report.rows, 100 * stored.len() as u64);
    assert_eq!(report.torn_records, 0);
    assert!(!report.previous_run_crashed);
    let mut got = Vec::new();
    while let Some(s) = spool.peek().expect("peek") {
        got.push(s.batch.id.clone());
        spool.ack(s.batch.rows()).expect("ack");
    }
    assert_eq!(got, stored);
    spool.close().expect("close");
}

use super::*;
use std::collections::HashSet;

fn batch(id: &str, rows: usize, payload: u8) -> EncodedBatch {
    let mut data = Vec::new();
    let mut offsets = Vec::new();
    for i in 0..rows {
        offsets.push(data.len() as u32);
        data.extend_from_slice(&[payload, i as u8, 0xAB]);
    }
    EncodedBatch {
        id: id.to_string(),
        kind: TableKind::Sessions,
        wire_version: 1,
        ts_lo: -3,
        ts_hi: 99,
        session_ids: (0..rows as u64).map(|i| i * 7 + 1).collect(),
        row_offsets: offsets,
        data,
    }
}

fn drain(spool: &mut Spool) -> Vec<String> {
    let mut ids = Vec::new();
    while let Some(s) = spool.peek().expect("peek") {
        ids.push(s.batch.id.clone());
        spool.ack(s.batch.rows()).expect("ack");
    }
    ids
}

#[test]
fn batches_come_back_in_order_and_segments_go() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut spool, report) =
        Spool::open_with_segment_size(dir.path(), 1 << 20, 200).expect("open");
    assert_eq!(report.batches, 0);
    assert!(!report.previous_run_crashed);
    let written: Vec<EncodedBatch> = (0..10)
        .map(|i| batch(&format!("b{i}"), 5, i as u8))
        .collect();
    for b in &written {
        assert_eq!(spool.append(b).expect("append"), AppendOutcome::Stored);
    }
    assert_eq!(spool.pending_batches(), 10);
    assert_eq!(spool.pending_rows(), 50);
    let first = spool.peek().expect("peek").expect("some");
    assert_eq!(first.batch, written[0], "round trip is exact");
    assert_eq!(
        drain(&mut spool),
        (0..10).map(|i| format!("b{i}")).collect::<Vec<_>>()
    );
    assert!(spool.is_empty());
    let segs = fs::read_dir(dir.path())
        .expect("readdir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "seg"))
        })
        .count();
    assert_eq!(segs, 0, "acknowledged segments are deleted");
    spool.close().expect("close");
}

#[test]
fn reopen_replays_leftovers_and_detects_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (mut spool, _) = Spool::open(dir.path(), 1 << 20).expect("open");
        for i in 0..3 {
            spool
                .append(&batch(&format!("b{i}"), 2, 0))
                .expect("append");
        }
        let s = spool.peek().expect("peek").expect("some");
        spool.ack(s.batch.rows()).expect("ack");
        // dropped without close(): like kill -9
    }
    let (mut spool, report) = Spool::open(dir.path(), 1 << 20).expect("reopen");
    assert!(report.previous_run_crashed);
    assert_eq!(report.batches, 3, "all records on disk");
    assert_eq!(spool.pending_batches(), 2, "ACK skips the acknowledged one");
    assert_eq!(drain(&mut spool), vec!["b1", "b2"]);
    spool.close().expect("close");
    let (_spool, report) = Spool::open(dir.path(), 1 << 20).expect("reopen");
    assert!(!report.previous_run_crashed);
}

#[test]
fn torn_tail_is_discarded_and_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (mut spool, _) = Spool::open(dir.path(), 1 << 20).expect("open");
        spool.append(&batch("good", 4, 1)).expect("append");
        spool.append(&batch("torn", 4, 2)).expect("append");
    }
    let seg = dir.path().join(format!("{:020}.seg", 1));
    let len = fs::metadata(&seg).expect("meta").len();
    let f = OpenOptions::new().write(true).open(&seg).expect("open seg");
    f.set_len(len - 5).expect("truncate");
    drop(f);
    let (mut spool, report) = Spool::open(dir.path(), 1 << 20).expect("reopen");
    assert_eq!(report.torn_records, 1);
    assert_eq!(report.batches, 1);
    assert_eq!(drain(&mut spool), vec!["good"]);
    // A flipped byte fails the CRC the same way.
    spool.append(&batch("flip", 4, 3)).expect("append");
    drop(spool);
    let seg = fs::read_dir(dir.path())
        .expect("readdir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "seg"))
        .expect("a segment");
    let mut bytes = fs::read(&seg).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&seg, bytes).expect("write");
    let (mut spool, report) = Spool::open(dir.path(), 1 << 20).expect("reopen");
    assert_eq!(report.torn_records, 1);
    assert!(drain(&mut spool).is_empty());
}

#[test]
fn cap_refuses_and_lock_excludes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut spool, _) = Spool::open(dir.path(), 300).expect("open");
    let mut stored = 0;
    let mut full = 0;
    for i in 0..20 {
        match spool
            .append(&batch(&format!("b{i}"), 5, 0))
            .expect("append")
        {
            AppendOutcome::Stored => stored += 1,
            AppendOutcome::Full => full += 1,
        }
    }
    assert!(stored > 0 && full > 0);
    assert!(spool.bytes() <= 300);
    let second = Spool::open(dir.path(), 300);
    assert!(matches!(second, Err(Error::Spool { .. })), "locked");
}

#[test]
fn without_drops_rows_by_session_id() {
    let b = batch("x", 4, 9);
    let drop: HashSet<u64> = [b.session_ids[1], b.session_ids[3]].into_iter().collect();
    let kept = b.without(&drop);
    assert_eq!(kept.rows(), 2);
    assert_eq!(kept.data, vec![9, 0, 0xAB, 9, 2, 0xAB]);
    assert_eq!(kept.row_offsets, vec![0, 3]);
}

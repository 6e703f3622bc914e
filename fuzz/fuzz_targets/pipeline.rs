//! The whole pipeline (libpcap reader, decoder, sharding, workers, sink) on a capture file
//! made from the input, with 1 and with 2 workers.
//!
//! Input: first byte = mode (bits 0-1) and port set (bit 2: every port, else mail ports).
//! - mode 0: the rest is the file, as is (pcap, pcapng or garbage);
//! - mode 1: a classic pcap built by `mailtls_fuzz::build_pcap` (valid headers, fuzzed
//!   frames, magic and link type);
//! - mode 2: a valid pcap global header (link type from the next byte) then raw records;
//! - mode 3: a pcapng built by `mailtls_fuzz::build_pcapng` (fuzzed link type, if_tsresol,
//!   if_tsoffset and packet timestamps).
//!
//! Checks: no panic (a worker panic aborts through libFuzzer's hook); every flow gives one
//! record; the sink receives them all; the JSONL encoder writes every record exactly as
//! serde_json does; and, when nothing was evicted, both runs give the same records (README:
//! "the output is identical for any --workers"). The 1-worker run hands records to the
//! sink, the 2-worker run JSONL lines encoded by the workers and parts of the report they
//! folded (`Delivery::InWorkers`), which must count every record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailtls_fuzz::{build_pcap, build_pcapng, pcap_global_header, Cursor, LINK_TYPES};
use mailtls_sensor::flow::FlowTableConfig;
use mailtls_sensor::pipeline::{run_offline, Delivery, PipelineConfig, SinkMsg};
use mailtls_sensor::ports::PortSet;
use mailtls_sensor::reassembly::StreamConfig;
use mailtls_sensor::session::RecordContext;
use mailtls_sensor::stats::RunStats;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

fn capture_path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        dir.join(format!("mailtls-fuzz-{}.pcap", std::process::id()))
    })
}

fn config(workers: usize, all_ports: bool, delivery: Delivery) -> PipelineConfig {
    let ports = Arc::new(if all_ports {
        PortSet::all()
    } else {
        PortSet::mail_default()
    });
    PipelineConfig {
        workers,
        ports: ports.clone(),
        table: FlowTableConfig {
            // Small enough that eviction happens, per worker as `ReadArgs::to_config` does.
            max_flows: (64 / workers).max(16),
            idle_timeout_us: 300_000_000,
            linger_us: 10_000_000,
            early_emit_us: None,
            stream: StreamConfig {
                max_buffer: 32 * 1024,
                max_segments: 256,
            },
            ports,
            context: Arc::new(RecordContext {
                sensor: "fuzz".into(),
                local_nets: vec!["10.0.0.0/8".parse().unwrap()],
            }),
        },
        batch_packets: 16,
        tick_us: 1_000_000,
        stats_interval: Duration::from_secs(3600),
        delivery,
    }
}

/// One run: its counters, its records as JSON text (sorted), and the sessions counted by the
/// parts of the report the workers folded.
fn run(workers: usize, all_ports: bool, delivery: Delivery) -> (RunStats, Vec<String>, u64) {
    let stop = AtomicBool::new(false);
    let cfg = config(workers, all_ports, delivery);
    let mut got: Vec<String> = Vec::new();
    let mut summarized = 0u64;
    let sink = |m: SinkMsg| match m {
        SinkMsg::Records(rs) => {
            for r in rs {
                let reference = serde_json::to_string(&r).expect("record serialises");
                // The JSONL sink's own encoder writes exactly what serde_json writes.
                let mut ours = Vec::new();
                mailtls_storage::json::encode_record(&r, &mut ours);
                assert_eq!(ours, reference.as_bytes(), "JSONL encoder differs from serde_json");
                got.push(reference);
            }
        }
        SinkMsg::Jsonl { lines, records } => {
            let text = String::from_utf8(lines).expect("JSONL is UTF-8");
            let before = got.len();
            got.extend(text.lines().map(str::to_string));
            assert_eq!((got.len() - before) as u64, records, "one line per record");
        }
        SinkMsg::Summary(part) => summarized += part.sessions(),
        SinkMsg::Stats(_) => {}
    };
    let (stats, _sink, warnings) = run_offline(&[capture_path().clone()], &cfg, sink, None, &stop);
    for w in &warnings {
        assert!(!w.contains("panicked"), "{w}");
    }
    got.sort();
    (stats, got, summarized)
}

fuzz_target!(|data: &[u8]| {
    let mut c = Cursor::new(data);
    let sel = c.u8();
    let all_ports = sel & 4 != 0;
    let file = match sel & 3 {
        0 => c.rest().to_vec(),
        1 => build_pcap(&mut c),
        2 => {
            let l = usize::from(c.u8());
            let link = LINK_TYPES.get(l).map(|l| *l as u32).unwrap_or(l as u32);
            let mut f = pcap_global_header(link, 65_535);
            f.extend_from_slice(c.rest());
            f
        }
        _ => build_pcapng(&mut c),
    };
    mailtls_fuzz::write_file(capture_path(), &file);
    // One worker handing over records (each encoded here by serde_json and by the JSONL
    // encoder, which must agree), two workers handing over JSONL lines they encoded.
    let (s1, r1, _) = run(1, all_ports, Delivery::Records);
    let in_workers = Delivery::InWorkers {
        jsonl: true,
        summary: true,
    };
    let (s2, r2, summarized) = run(2, all_ports, in_workers);
    assert_eq!(summarized, s2.workers.records, "the report's parts count every record");
    for (s, r) in [(&s1, &r1), (&s2, &r2)] {
        assert_eq!(s.workers.records, s.workers.flows, "one record per flow");
        assert_eq!(r.len() as u64, s.workers.records, "sink got every record");
    }
    assert_eq!(s1.reader, s2.reader, "reader counters depend on workers");
    if s1.workers.evicted == 0 && s2.workers.evicted == 0 {
        assert_eq!(r1, r2, "records depend on the worker count");
    }
});

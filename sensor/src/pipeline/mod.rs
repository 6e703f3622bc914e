//! The pipeline: one reader, N workers, one sink stage.
//!
//! ```text
//! reader ──batches──▶ worker 0 (flow shard 0) ─┐
//!        ──batches──▶ worker 1 (flow shard 1) ─┼─records─▶ sink stage (JSONL, report, ...)
//!        ──batches──▶ worker N-1              ─┘
//! ```
//!
//! The reader decodes each frame just far enough to name its flow, drops packets of unwatched
//! ports before copying anything, and appends the TCP facts and payload of the rest to the
//! batch of the worker that owns the flow (symmetric hash modulo N). Batches travel over
//! bounded `crossbeam` channels and come back empty for reuse, so the steady state allocates
//! nothing per packet. Every second of capture time the reader flushes its batches and sends
//! a tick to every worker, so idle expiry depends only on packet timestamps and the output is
//! the same for any worker count.

mod batch;

pub use batch::{PacketBatch, PacketMeta};

use crate::capture::OfflineCapture;
use crate::decode::{self, Skip, TunnelKind};
use crate::flow::{Endpoint, FlowKey, FlowTable, FlowTableConfig};
use crate::ports::PortSet;
use crate::report::Summary;
use crate::stats::{ReaderStats, RunStats, WorkerStats};
use crossbeam_channel::{bounded, Receiver, Sender};
use mailtls_storage::SessionRecord;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// How the pipeline is laid out.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Worker threads (flow shards), at least 1.
    pub workers: usize,
    /// Watched ports.
    pub ports: Arc<PortSet>,
    /// Flow-table settings of each worker (`max_flows` is per worker).
    pub table: FlowTableConfig,
    /// Packets per batch before it is handed over.
    pub batch_packets: usize,
    /// Capture-time interval between ticks, µs.
    pub tick_us: i64,
    /// Wall-clock interval between [`StatsSnapshot`]s sent to the sink stage.
    pub stats_interval: Duration,
    /// What the workers hand the sink stage for each finished session.
    pub delivery: Delivery,
}

/// What the workers hand the sink stage for each finished session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Delivery {
    /// The records themselves ([`SinkMsg::Records`]): for sinks that need fields (the
    /// ClickHouse sink, the terminal summary, the live service's handshake histogram).
    #[default]
    Records,
    /// What the records give, made by the worker that made them, when no sink needs the
    /// records themselves (`mailtls read` without ClickHouse): their JSONL lines
    /// ([`SinkMsg::Jsonl`]) when `jsonl`, and, when `summary`, the terminal summary of them,
    /// folded in parts ([`SinkMsg::Summary`]). The work runs on every worker in parallel,
    /// and each record is freed by the thread that allocated it. With the summary folded and
    /// the JSONL file encoded by the sink stage alone, `mailtls read` of all-mail 200 MB took
    /// 268 ms (medians of 21 runs in turn), 419 ms with a JSONL file; now 246 and 367 ms,
    /// as fast as `--jsonl -` (245 ms) save for the kernel's writing of the file.
    InWorkers {
        /// Encode each record as a JSONL line.
        jsonl: bool,
        /// Fold each record into the worker's part of the terminal summary.
        summary: bool,
    },
}

/// What the sink stage receives.
#[derive(Debug)]
pub enum SinkMsg {
    /// Finished sessions.
    Records(Vec<SessionRecord>),
    /// Finished sessions as JSONL lines ([`Delivery::InWorkers`]).
    Jsonl {
        /// The lines, each ending in `\n`.
        lines: Vec<u8>,
        /// How many records they are.
        records: u64,
    },
    /// The terminal summary of a worker's records since its previous part
    /// ([`Delivery::InWorkers`]), to be merged ([`Summary::merge`]).
    Summary(Box<Summary>),
    /// The pipeline's counters at a point in time (for `sensor_stats`).
    Stats(Box<StatsSnapshot>),
}

/// The pipeline's counters at one moment, as the sink stage sees them.
#[derive(Debug, Clone)]
pub struct StatsSnapshot {
    /// Wall-clock time of the snapshot.
    pub at: SystemTime,
    /// Wall-clock time the run started (the first interval starts there).
    pub run_started: SystemTime,
    /// Reader counters so far.
    pub reader: ReaderStats,
    /// Sessions being followed now, over all workers.
    pub active_flows: u64,
    /// Records emitted so far.
    pub records: u64,
    /// Parse errors counted so far (sessions already ended).
    pub parse_errors: u64,
    /// Batches waiting in the workers' queues.
    pub queue_depth: u64,
    /// Pipeline latency (reader to worker) percentiles in µs: p50, p90, p99, max.
    pub latency_us: [u64; 4],
}

/// Histogram of per-packet pipeline latency (from the moment a packet joins a batch to the
/// moment its worker takes the batch), recorded once per batch with the batch's packet count.
pub type LatencyHistogram = std::sync::Mutex<hdrhistogram::Histogram<u64>>;

fn new_latency_histogram() -> LatencyHistogram {
    // 1 µs .. 60 s, 2 significant digits (1 %: plenty for a latency percentile). With 3 the
    // histogram is ten times larger (27,000 counters): allocating and zeroing it, and walking
    // it for every snapshot, made it the costliest part of a run on a small capture (the
    // `pipeline` fuzz target spent half its time there).
    std::sync::Mutex::new(
        hdrhistogram::Histogram::new_with_bounds(1, 60_000_000, 2)
            .expect("static histogram bounds are valid"),
    )
}

/// Counters the workers publish after each batch (never per packet), for snapshots.
#[derive(Debug, Default)]
struct WorkerGauges {
    active_flows: AtomicU64,
    records: AtomicU64,
    parse_errors: AtomicU64,
}

/// Messages from the reader to a worker.
enum ToWorker {
    Batch(PacketBatch),
    Tick(i64),
}

/// Something that watches the reader's progress (e.g. a progress bar).
pub trait Progress: Send {
    /// `bytes` more of the capture files were read.
    fn advance(&self, bytes: u64);
}

/// Reads `paths` in order as one packet stream, runs the workers, and passes every record
/// (and a counters snapshot every `stats_interval`) to `sink` on a thread of its own. When
/// `stop` becomes true (SIGINT/SIGTERM) reading stops and everything in flight is flushed.
/// Returns the counters, the sink, and warnings for the user.
pub fn run_offline<S>(
    paths: &[PathBuf],
    cfg: &PipelineConfig,
    sink: S,
    progress: Option<&dyn Progress>,
    stop: &AtomicBool,
) -> (RunStats, S, Vec<String>)
where
    S: FnMut(SinkMsg) + Send,
{
    run(cfg, sink, stop, |reader, warnings| {
        for path in paths {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            match OfflineCapture::open(path) {
                Ok(mut cap) => {
                    if let Err(e) = reader.read_file(&mut cap, progress) {
                        reader.stats.capture_errors += 1;
                        warnings.push(format!("warning: {e}; sessions read so far are kept"));
                    }
                }
                Err(e) => {
                    reader.stats.capture_errors += 1;
                    warnings.push(format!("error: {e}"));
                }
            }
        }
    })
}

/// Runs the pipeline with `feed` driving the reader (offline files, live interfaces): the
/// workers and the sink stage run on their own threads while `feed` runs on this one.
pub fn run<S, F>(
    cfg: &PipelineConfig,
    sink: S,
    stop: &AtomicBool,
    feed: F,
) -> (RunStats, S, Vec<String>)
where
    S: FnMut(SinkMsg) + Send,
    F: FnOnce(&mut Reader<'_>, &mut Vec<String>),
{
    let started = Instant::now();
    let workers = cfg.workers.max(1);
    let mut to_workers: Vec<Sender<ToWorker>> = Vec::with_capacity(workers);
    let mut free_batches: Vec<Receiver<PacketBatch>> = Vec::with_capacity(workers);
    let (rec_tx, rec_rx) = bounded::<SinkMsg>(SINK_QUEUE);
    let gauges: Vec<Arc<WorkerGauges>> = (0..workers).map(|_| Arc::default()).collect();
    let latency = new_latency_histogram();
    let mut warnings = Vec::new();

    let (reader_stats, worker_stats, sink) = std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(workers);
        for (i, gauge) in gauges.iter().enumerate() {
            let (tx, rx) = bounded::<ToWorker>(WORKER_QUEUE);
            let (free_tx, free_rx) = bounded::<PacketBatch>(WORKER_QUEUE + 8);
            to_workers.push(tx);
            free_batches.push(free_rx);
            let table_cfg = cfg.table.clone();
            let delivery = cfg.delivery;
            let rec_tx = rec_tx.clone();
            let gauge = gauge.clone();
            let latency = &latency;
            let handle = std::thread::Builder::new()
                .name(format!("mailtls-worker-{i}"))
                .spawn_scoped(scope, move || {
                    worker_loop(rx, free_tx, rec_tx, table_cfg, delivery, &gauge, latency)
                })
                .expect("spawning a worker thread");
            handles.push(handle);
        }
        let stats_tx = rec_tx;
        let sink_handle = std::thread::Builder::new()
            .name("mailtls-sink".into())
            .spawn_scoped(scope, move || {
                let mut sink = sink;
                for recs in rec_rx {
                    sink(recs);
                }
                sink
            })
            .expect("spawning the sink thread");

        let mut reader = Reader::new(cfg, to_workers, free_batches, stats_tx, &gauges, stop);
        reader.latency = Some(&latency);
        feed(&mut reader, &mut warnings);
        let (reader_stats, final_snapshot, stats_tx) = reader.finish();
        let mut total = WorkerStats::default();
        for h in handles {
            match h.join() {
                Ok(s) => total.merge(&s),
                Err(_) => warnings.push("error: a worker thread panicked".into()),
            }
        }
        // The last snapshot, once every record is out, so sensor_stats sums to the totals.
        let mut last = final_snapshot;
        last.at = SystemTime::now();
        last.records = total.records;
        last.parse_errors = total.parse_errors();
        last.active_flows = 0;
        last.queue_depth = 0;
        let _ = stats_tx.send(SinkMsg::Stats(Box::new(last)));
        drop(stats_tx);
        let sink = sink_handle.join().expect("sink thread panicked");
        (reader_stats, total, sink)
    });
    let stats = RunStats {
        reader: reader_stats,
        workers: worker_stats,
        elapsed_secs: started.elapsed().as_secs_f64(),
    };
    (stats, sink, warnings)
}

fn worker_loop(
    rx: Receiver<ToWorker>,
    free_tx: Sender<PacketBatch>,
    rec_tx: Sender<SinkMsg>,
    cfg: FlowTableConfig,
    delivery: Delivery,
    gauge: &WorkerGauges,
    latency: &LatencyHistogram,
) -> WorkerStats {
    let mut table = FlowTable::new(cfg);
    let mut out = RecordOut::new(rec_tx, delivery);
    for msg in &rx {
        match msg {
            ToWorker::Batch(mut batch) => {
                if let Some(started) = batch.started {
                    let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                    if let Ok(mut h) = latency.lock() {
                        let _ = h.record_n(us.max(1), batch.meta.len() as u64);
                    }
                }
                for m in &batch.meta {
                    let start = m.payload_start as usize;
                    let payload = batch
                        .data
                        .get(start..start + m.payload_len as usize)
                        .unwrap_or_default();
                    table.on_packet_of(m.key, &m.as_flow_packet(payload), &mut |r| out.push(r));
                }
                batch.clear();
                // The reader may have enough batches already; then this one is dropped.
                let _ = free_tx.try_send(batch);
            }
            ToWorker::Tick(now) => table.expire(now, &mut |r| out.push(r)),
        }
        gauge
            .active_flows
            .store(table.len() as u64, Ordering::Relaxed);
        gauge.records.store(table.stats.records, Ordering::Relaxed);
        gauge
            .parse_errors
            .store(table.stats.parse_errors(), Ordering::Relaxed);
        // Records go out when the queue has run dry (a quiet link gets them at once), not
        // after every batch: under load a batch ends a dozen sessions, and a message per
        // batch meant a fresh 256 KiB line buffer and an extra copy in the sink's writer
        // for every dozen records (callgrind: 3 % of all-mail traffic). Full messages still
        // go out from `push`.
        if rx.is_empty() {
            out.flush();
        }
        if !out.connected {
            break;
        }
    }
    table.drain(&mut |r| out.push(r));
    out.flush();
    out.send_summary();
    table.stats
}

/// Batches waiting for a worker before the reader blocks. With more busy threads than cores
/// (the reader, N workers, the sink) a worker must have work queued for longer than the
/// scheduler takes the reader off its core, or it idles: with 8 the reader and two workers
/// of a 2-core machine kept 1.84-1.86 cores busy on all-mail traffic, with 32 1.93-1.95
/// (medians of 21 interleaved runs; median wall time 0.51 -> 0.43 s). Since the default is
/// two workers a core, 32 batches of at most 32 KiB a worker hold as many bytes in all as
/// 64 did with one worker a core (peak RSS of all-mail 2 GB: 45 MB with four workers and
/// 32, 51 MB with 64).
const WORKER_QUEUE: usize = 32;

/// A batch is handed over once its payloads reach this size, even short of
/// `batch_packets`: the queue is bounded in bytes too (32 batches of at most 32 KiB and one
/// packet a worker), whatever the packet size. Without it, 32 batches of 256 full-size
/// packets held ~12 MB a worker, and the peak RSS of the messages capture grew from 35 to
/// 45 MB.
const BATCH_BYTES: usize = 32 * 1024;

/// Messages waiting for the sink stage before the workers block: bounded in records, not
/// only messages, as each holds at most [`RECORDS_PER_MESSAGE`] records (or
/// [`LINES_CAPACITY`] bytes of lines). With 64, a slower sink (ClickHouse: the server shares
/// the machine) kept 16,384 records, some 32 MB, waiting here at all times: peak RSS of an
/// all-mail 2 GB capture into ClickHouse 165-170 MB, 119-121 MB with 16 here and in the
/// ClickHouse queue, in the same time. The queue only smooths the hand-over: a sink slower
/// than the workers on average blocks them whatever its length (ClickHouse has its spool
/// for that), and the JSONL and report runs were as fast with 16.
const SINK_QUEUE: usize = 16;

/// Most records in one message to the sink stage.
const RECORDS_PER_MESSAGE: usize = 256;

/// [`Delivery::InWorkers`]: the size of a message's line buffer, and the room left in it
/// below which the lines are sent before the next record (records are 1-2 KB of JSON; a
/// larger one grows the buffer, as it must).
const LINES_CAPACITY: usize = 256 * 1024;
const RECORD_ROOM: usize = 4096;

/// [`Delivery::InWorkers`]: records a worker folds into its part of the summary before it
/// sends the part. The parts bound the worker's memory (at most this many peers a table)
/// and the sink's merging work (one entry a distinct peer of a part, not one a record).
const SUMMARY_PART_RECORDS: u64 = 4096;

/// A worker's outgoing records: sent in messages of at most [`RECORDS_PER_MESSAGE`] (a full
/// message goes out at once, so an eviction wave or the final drain never holds more than
/// one message per worker, plus the bounded channel, in memory), and whatever is pending
/// whenever the worker's queue runs dry.
struct RecordOut {
    tx: Sender<SinkMsg>,
    delivery: Delivery,
    pending: Vec<SessionRecord>,
    /// [`Delivery::InWorkers`] with `jsonl`: the encoded lines of `encoded` records.
    lines: Vec<u8>,
    encoded: u64,
    /// [`Delivery::InWorkers`] with `summary`: the part folded since the last one was sent.
    summary: Option<Summary>,
    connected: bool,
}

impl RecordOut {
    fn new(tx: Sender<SinkMsg>, delivery: Delivery) -> Self {
        RecordOut {
            tx,
            delivery,
            pending: Vec::with_capacity(RECORDS_PER_MESSAGE),
            lines: match delivery {
                Delivery::InWorkers { jsonl: true, .. } => Vec::with_capacity(LINES_CAPACITY),
                _ => Vec::new(),
            },
            encoded: 0,
            summary: match delivery {
                Delivery::InWorkers { summary: true, .. } => Some(Summary::default()),
                _ => None,
            },
            connected: true,
        }
    }

    fn push(&mut self, r: SessionRecord) {
        match self.delivery {
            Delivery::Records => {
                self.pending.push(r);
                if self.pending.len() >= RECORDS_PER_MESSAGE {
                    self.flush();
                }
            }
            Delivery::InWorkers { jsonl, .. } => {
                if let Some(part) = self.summary.as_mut() {
                    part.add(&r);
                    if part.sessions() >= SUMMARY_PART_RECORDS {
                        self.send_summary();
                    }
                }
                if !jsonl {
                    return;
                }
                // Hand the lines over before they would outgrow their buffer: growing it
                // copies everything encoded so far (perf: 1,100 instructions a record).
                if self.lines.capacity() - self.lines.len() < RECORD_ROOM {
                    self.flush();
                }
                mailtls_storage::json::encode_record(&r, &mut self.lines);
                self.lines.push(b'\n');
                self.encoded += 1;
                if self.encoded >= RECORDS_PER_MESSAGE as u64 {
                    self.flush();
                }
            }
        }
    }

    /// Sends the part of the summary folded so far, if it holds any record (when a part
    /// is full, and once at the end: the report is printed only after the run).
    fn send_summary(&mut self) {
        let Some(part) = self.summary.as_mut() else {
            return;
        };
        if part.sessions() == 0 || !self.connected {
            return;
        }
        let part = Box::new(std::mem::take(part));
        self.connected = self.tx.send(SinkMsg::Summary(part)).is_ok();
    }

    /// Sends what is pending; false once the sink stage is gone.
    fn flush(&mut self) -> bool {
        if !self.connected {
            return false;
        }
        if !self.pending.is_empty() {
            let chunk =
                std::mem::replace(&mut self.pending, Vec::with_capacity(RECORDS_PER_MESSAGE));
            self.connected = self.tx.send(SinkMsg::Records(chunk)).is_ok();
        }
        if self.encoded > 0 && self.connected {
            let lines = std::mem::replace(&mut self.lines, Vec::with_capacity(LINES_CAPACITY));
            let records = std::mem::take(&mut self.encoded);
            self.connected = self.tx.send(SinkMsg::Jsonl { lines, records }).is_ok();
        }
        self.connected
    }
}

/// The reader stage: decode, filter, shard, batch. A feed (offline files, live interfaces)
/// hands it frames with [`Reader::on_frame`] and, when no packet comes, [`Reader::idle`].
pub struct Reader<'c> {
    cfg: &'c PipelineConfig,
    to_workers: Vec<Sender<ToWorker>>,
    free_batches: Vec<Receiver<PacketBatch>>,
    batches: Vec<PacketBatch>,
    next_tick: Option<i64>,
    /// Counters of decoding and filtering.
    pub stats: ReaderStats,
    stats_tx: Sender<SinkMsg>,
    gauges: &'c [Arc<WorkerGauges>],
    stop: &'c AtomicBool,
    next_snapshot: Instant,
    latency: Option<&'c LatencyHistogram>,
    run_started: SystemTime,
}

impl<'c> Reader<'c> {
    fn new(
        cfg: &'c PipelineConfig,
        to_workers: Vec<Sender<ToWorker>>,
        free_batches: Vec<Receiver<PacketBatch>>,
        stats_tx: Sender<SinkMsg>,
        gauges: &'c [Arc<WorkerGauges>],
        stop: &'c AtomicBool,
    ) -> Self {
        let batches = (0..to_workers.len())
            .map(|_| PacketBatch::with_capacity(cfg.batch_packets))
            .collect();
        Reader {
            cfg,
            to_workers,
            free_batches,
            batches,
            next_tick: None,
            stats: ReaderStats::default(),
            stats_tx,
            gauges,
            stop,
            next_snapshot: Instant::now() + cfg.stats_interval,
            latency: None,
            run_started: SystemTime::now(),
        }
    }

    /// Sends a counters snapshot to the sink stage.
    fn snapshot(&mut self) {
        let snap = self.take_snapshot();
        let _ = self.stats_tx.send(SinkMsg::Stats(Box::new(snap)));
        self.next_snapshot = Instant::now() + self.cfg.stats_interval;
    }

    fn take_snapshot(&self) -> StatsSnapshot {
        let sum = |f: fn(&WorkerGauges) -> &AtomicU64| -> u64 {
            self.gauges
                .iter()
                .map(|g| f(g).load(Ordering::Relaxed))
                .sum()
        };
        StatsSnapshot {
            at: SystemTime::now(),
            run_started: self.run_started,
            reader: self.stats.clone(),
            active_flows: sum(|g| &g.active_flows),
            records: sum(|g| &g.records),
            parse_errors: sum(|g| &g.parse_errors),
            queue_depth: self.to_workers.iter().map(|t| t.len() as u64).sum(),
            latency_us: self
                .latency
                .and_then(|l| l.lock().ok())
                .map(|h| {
                    [
                        h.value_at_quantile(0.5),
                        h.value_at_quantile(0.9),
                        h.value_at_quantile(0.99),
                        h.max(),
                    ]
                })
                .unwrap_or_default(),
        }
    }

    fn read_file(
        &mut self,
        cap: &mut OfflineCapture,
        progress: Option<&dyn Progress>,
    ) -> Result<(), crate::capture::CaptureError> {
        let link = cap.linktype();
        let mut since_progress = 0u64;
        loop {
            // Between two chunks, the stop flag and the snapshot clock are looked at.
            let read = cap.read_chunk(crate::capture::CHUNK_FRAMES, |pkt| {
                since_progress += u64::from(pkt.wire_len.min(pkt.data.len() as u32)) + 16;
                self.on_frame(link, pkt.ts, pkt.wire_len, pkt.data);
            });
            let last = !matches!(read, Ok(n) if n > 0) || self.stopping();
            if since_progress > 1 << 20 || last {
                if let Some(p) = progress {
                    p.advance(since_progress);
                }
                since_progress = 0;
            }
            read?;
            if last {
                return Ok(());
            }
            self.housekeeping();
        }
    }

    /// Whether the run should stop (SIGINT/SIGTERM).
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// No packet for a while (live capture): advances time to `now` (µs) so idle sessions
    /// expire, and sends a counters snapshot when one is due.
    pub fn idle(&mut self, now: i64) {
        // Nothing more is coming right now: hand over partial batches so low-rate traffic
        // is not held back until a batch fills.
        for shard in 0..self.batches.len() {
            self.flush(shard);
        }
        self.maybe_tick(now);
        if Instant::now() >= self.next_snapshot {
            self.snapshot();
        }
    }

    /// Every so many frames: sends a counters snapshot when one is due.
    pub fn housekeeping(&mut self) {
        if Instant::now() >= self.next_snapshot {
            self.snapshot();
        }
    }

    /// Handles one captured frame of link type `link`, captured at `ts` (µs).
    pub fn on_frame(&mut self, link: i32, ts: i64, wire_len: u32, data: &[u8]) {
        self.stats.packets += 1;
        self.stats.bytes += u64::from(wire_len);
        if (data.len() as u64) < u64::from(wire_len) {
            self.stats.truncated += 1;
        }
        self.maybe_tick(ts);
        let decoded = decode::decode(link, data);
        if let Some(kind) = decoded.tunnel {
            match kind {
                TunnelKind::Gre => self.stats.tunnel_gre += 1,
                TunnelKind::Vxlan => self.stats.tunnel_vxlan += 1,
                TunnelKind::Gtp => self.stats.tunnel_gtp += 1,
                TunnelKind::Mpls => self.stats.tunnel_mpls += 1,
                TunnelKind::IpInIp => self.stats.tunnel_ipip += 1,
            }
        }
        let tcp = match decoded.packet {
            Ok(t) => t,
            Err(skip) => {
                match skip {
                    Skip::NotIp => self.stats.not_ip += 1,
                    Skip::NotTcp => self.stats.not_tcp += 1,
                    Skip::Fragment => self.stats.fragments += 1,
                    Skip::Malformed => self.stats.malformed += 1,
                    Skip::UnsupportedLink => self.stats.unsupported_link += 1,
                    Skip::Tunnel(_) => self.stats.tunnel_opaque += 1,
                }
                return;
            }
        };
        if !self.cfg.ports.matches(tcp.sport, tcp.dport) {
            self.stats.unwatched += 1;
            return;
        }
        self.stats.watched += 1;
        let src = Endpoint {
            ip: tcp.src,
            port: tcp.sport,
        };
        let dst = Endpoint {
            ip: tcp.dst,
            port: tcp.dport,
        };
        let (key, from_lo) = FlowKey::new(src, dst);
        // The high bits of hash × workers: a multiply instead of a 64-bit division (which
        // was a tenth of this function), as uniform for an avalanched hash.
        let shard =
            ((u128::from(key.symmetric_hash()) * self.batches.len() as u128) >> 64) as usize;
        let batch = &mut self.batches[shard];
        batch.push(ts, key, from_lo, &tcp);
        if batch.meta.len() >= self.cfg.batch_packets || batch.data.len() >= BATCH_BYTES {
            self.flush(shard);
        }
    }

    /// Sends the workers a tick when `ts` reaches the next one. Every frame comes here, so
    /// the common case (no tick due) is a compare inlined into [`Reader::on_frame`].
    #[inline]
    fn maybe_tick(&mut self, ts: i64) {
        if matches!(self.next_tick, Some(next) if ts < next) {
            return;
        }
        self.tick(ts);
    }

    /// The rest of [`Reader::maybe_tick`]: the first frame's tick time, or a tick due.
    #[inline(never)]
    fn tick(&mut self, ts: i64) {
        let next = *self
            .next_tick
            .get_or_insert(ts.saturating_add(self.cfg.tick_us));
        if ts < next {
            return;
        }
        self.next_tick = Some(ts.saturating_add(self.cfg.tick_us));
        for shard in 0..self.batches.len() {
            self.flush(shard);
            let _ = self.to_workers[shard].send(ToWorker::Tick(ts));
        }
    }

    fn flush(&mut self, shard: usize) {
        if self.batches[shard].meta.is_empty() {
            return;
        }
        let fresh = self.free_batches[shard]
            .try_recv()
            .unwrap_or_else(|_| PacketBatch::with_capacity(self.cfg.batch_packets));
        let full = std::mem::replace(&mut self.batches[shard], fresh);
        let _ = self.to_workers[shard].send(ToWorker::Batch(full));
    }

    /// Hands over the last batches; returns the counters, a snapshot of this moment and the
    /// sender for the final snapshot. Dropping the worker senders ends the workers' loops.
    fn finish(mut self) -> (ReaderStats, StatsSnapshot, Sender<SinkMsg>) {
        for shard in 0..self.batches.len() {
            self.flush(shard);
        }
        let snap = self.take_snapshot();
        self.to_workers.clear();
        (self.stats, snap, self.stats_tx)
    }
}

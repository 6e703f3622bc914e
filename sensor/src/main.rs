//! The `mailtls` binary: parse arguments, run, map errors to exit codes.

use anyhow::{Context, Result};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use mailtls_sensor::capture::{default_bpf, LiveCapture, LiveOptions};
use mailtls_sensor::cli::{expand_config, CaptureArgs, Cli, Command, ReadArgs, SchemaArgs};
use mailtls_sensor::live;
use mailtls_sensor::outputs::{Outputs, Service};
use mailtls_sensor::pipeline::{self, Progress};
use mailtls_storage::schema::render_ddl;
use mailtls_storage::sink::clickhouse::ClickhouseSink;

/// mimalloc instead of glibc's malloc: records are built by a worker and freed by the sink
/// thread, and glibc's per-thread arenas turned those cross-thread frees into lock
/// contention (futex wake-ups) and made malloc/realloc about 40 % of a worker's time on
/// all-mail traffic (perf, see docs/BENCHMARK.md). Built with `no_thp`: with transparent
/// huge pages on ("always", Debian's default), mimalloc's arenas made the peak RSS of a run
/// 60 MB instead of 10 MB.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use mailtls_storage::sink::JsonlSink;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn main() -> ExitCode {
    let args = match expand_config(std::env::args_os().collect()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mailtls: {e}");
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse_from(args);
    // Log lines of the library crates (the ClickHouse sink's retries, spool, drops) on
    // stderr; RUST_LOG overrides the level.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
    let result = match cli.command {
        Command::Read(args) => read(&args),
        Command::Capture(args) => capture(&args),
        Command::Schema(args) => schema(&args),
        Command::Report(args) => mailtls_sensor::report::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mailtls: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn schema(args: &SchemaArgs) -> Result<ExitCode> {
    let cfg = args.schema.to_schema();
    cfg.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    for stmt in render_ddl(&cfg, args.server.into()) {
        println!("{stmt};\n");
    }
    Ok(ExitCode::SUCCESS)
}

struct Bar(ProgressBar);

impl Progress for Bar {
    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }
}

fn read(args: &ReadArgs) -> Result<ExitCode> {
    let mut cfg = args.to_config().map_err(anyhow::Error::msg)?;
    let ch_cfg = args.clickhouse.to_config().map_err(anyhow::Error::msg)?;
    let to_stdout = args.jsonl.as_deref() == Some("-");
    if ch_cfg.is_none() {
        // No sink needs the records themselves: the workers encode the JSONL and fold the
        // report (printed unless the JSONL goes to stdout).
        cfg.delivery = pipeline::Delivery::InWorkers {
            jsonl: args.jsonl.is_some(),
            summary: !to_stdout,
        };
    }
    let clickhouse = match ch_cfg {
        Some(c) => Some(ClickhouseSink::start(c).map_err(|e| anyhow::anyhow!("{e}"))?),
        None => None,
    };
    let jsonl: Option<JsonlSink<Box<dyn Write + Send>>> = match args.jsonl.as_deref() {
        None => None,
        Some("-") => Some(JsonlSink::new(Box::new(std::io::stdout()))),
        Some(path) => {
            let f = std::fs::File::create(path).with_context(|| format!("creating {path}"))?;
            Some(JsonlSink::new(Box::new(f)))
        }
    };
    let mut outputs = Outputs::new(jsonl, clickhouse, cfg.table.context.sensor.clone());
    if to_stdout {
        outputs = outputs.without_summary();
    }

    let total: u64 = args
        .captures
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let bar =
        (!args.no_progress && std::io::stderr().is_terminal() && total > 32 << 20).then(|| {
            let b = ProgressBar::new(total);
            b.set_style(
                ProgressStyle::with_template(
                    "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            Bar(b)
        });

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    let (stats, _, mut warnings) = pipeline::run_offline(
        &args.captures,
        &cfg,
        |msg| outputs.handle(msg),
        bar.as_ref().map(|b| b as &dyn Progress),
        &stop,
    );
    if let Some(b) = bar {
        b.0.finish_and_clear();
    }
    if stop.load(Ordering::Relaxed) {
        warnings.push("interrupted: stopped reading; every session seen so far was written".into());
    }
    let (summary, ch_report, errors) = outputs.finish();
    for w in &warnings {
        eprintln!("mailtls: {w}");
    }
    let lines = counter_lines(&stats, ch_report.as_ref());
    if to_stdout {
        eprint!("{lines}");
    } else {
        print!("{}", summary.render(&lines));
    }
    for e in &errors {
        eprintln!("mailtls: error: {e}");
    }
    let opened_none =
        stats.reader.capture_errors as usize >= args.captures.len() && stats.reader.packets == 0;
    Ok(if opened_none || !errors.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn capture(args: &CaptureArgs) -> Result<ExitCode> {
    let cfg = args.to_config().map_err(anyhow::Error::msg)?;
    let ch_cfg = args.clickhouse.to_config().map_err(anyhow::Error::msg)?;
    let bpf = args
        .bpf
        .clone()
        .unwrap_or_else(|| default_bpf(&cfg.ports, &args.port_list()));
    let opts = LiveOptions {
        snaplen: args.snaplen,
        buffer_mb: args.buffer_mb,
        bpf: bpf.clone(),
        promisc: !args.no_promisc,
    };
    // Open everything that needs privileges first: the interfaces, the JSONL file.
    let mut caps = Vec::with_capacity(args.interfaces.len());
    for iface in &args.interfaces {
        caps.push(LiveCapture::open(iface, &opts).map_err(|e| anyhow::anyhow!("{e}"))?);
    }
    let caps: Vec<LiveCapture> = caps
        .into_iter()
        .map(LiveCapture::into_nonblocking)
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let jsonl: Option<JsonlSink<Box<dyn Write + Send>>> = match &args.jsonl {
        None => None,
        Some(path) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?;
            Some(JsonlSink::new(Box::new(f)))
        }
    };
    // Then give them up before the first packet is parsed.
    if live::running_as_root() {
        if args.allow_root {
            eprintln!("mailtls: warning: --allow-root: parsers run as root");
        } else {
            let user = args.user.as_deref().unwrap_or("nobody");
            let (uid, gid) = live::drop_privileges(user).map_err(|e| anyhow::anyhow!("{e}"))?;
            eprintln!("mailtls: running as {user} (uid {uid}, gid {gid})");
        }
    }
    let metrics = match args.metrics_listen {
        Some(addr) => Some(
            mailtls_sensor::metrics::serve(addr)
                .with_context(|| format!("listening for metrics on {addr}"))?,
        ),
        None => None,
    };
    let clickhouse = match ch_cfg {
        Some(c) => Some(ClickhouseSink::start(c).map_err(|e| anyhow::anyhow!("{e}"))?),
        None => None,
    };
    let reopen = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, reopen.clone())
        .context("installing signal handlers")?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    let mut outputs = Outputs::new(jsonl, clickhouse, cfg.table.context.sensor.clone())
        .without_summary()
        .with_service(Service {
            jsonl_path: args.jsonl.clone(),
            reopen,
            log_every: std::time::Duration::from_secs(args.log_interval.max(1)),
            metrics,
        });
    eprintln!(
        "mailtls: capturing on {} (filter: {bpf}), {} workers",
        args.interfaces.join(", "),
        cfg.workers
    );
    let (stats, _, warnings) = live::run_live(caps, &cfg, |msg| outputs.handle(msg), &stop);
    let (_, ch_report, errors) = outputs.finish();
    for w in &warnings {
        eprintln!("mailtls: {w}");
    }
    let lines = counter_lines(&stats, ch_report.as_ref());
    eprint!("{lines}");
    for e in &errors {
        eprintln!("mailtls: error: {e}");
    }
    Ok(if errors.is_empty() && stats.reader.capture_errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The run's counters and, when ClickHouse was used, the sink's, as `name: value` lines.
fn counter_lines(
    stats: &mailtls_sensor::stats::RunStats,
    clickhouse: Option<&mailtls_storage::sink::clickhouse::SinkReport>,
) -> String {
    let mut lines = stats.to_lines();
    for l in clickhouse.map(|r| r.lines()).unwrap_or_default() {
        lines.push_str(&l);
        lines.push('\n');
    }
    lines
}

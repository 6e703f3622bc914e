//! The `mailtls` binary: parse arguments, run, map errors to exit codes.

use anyhow::{bail, Context, Result};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use mailtls_sensor::cli::{Cli, Command, ReadArgs};
use mailtls_sensor::pipeline::{self, Progress};
use mailtls_sensor::report::Summary;
use mailtls_storage::sink::{JsonlSink, Sink};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Read(args) => read(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mailtls: {e:#}");
            ExitCode::from(2)
        }
    }
}

struct Bar(ProgressBar);

impl Progress for Bar {
    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }
}

fn read(args: &ReadArgs) -> Result<ExitCode> {
    let cfg = args.to_config().map_err(anyhow::Error::msg)?;
    let to_stdout = args.jsonl.as_deref() == Some("-");
    let mut jsonl: Option<JsonlSink<Box<dyn Write + Send>>> = match args.jsonl.as_deref() {
        None => None,
        Some("-") => Some(JsonlSink::new(Box::new(std::io::stdout()))),
        Some(path) => {
            let f = std::fs::File::create(path).with_context(|| format!("creating {path}"))?;
            Some(JsonlSink::new(Box::new(f)))
        }
    };
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

    let mut summary = Summary::default();
    let mut sink_error: Option<String> = None;
    let sink = |records: Vec<mailtls_storage::SessionRecord>| {
        for r in &records {
            summary.add(r);
            if let Some(j) = jsonl.as_mut() {
                if let Err(e) = j.write(r) {
                    sink_error.get_or_insert_with(|| e.to_string());
                }
            }
        }
    };
    let (stats, _, warnings) = pipeline::run_offline(
        &args.captures,
        &cfg,
        sink,
        bar.as_ref().map(|b| b as &dyn Progress),
    );
    if let Some(b) = bar {
        b.0.finish_and_clear();
    }
    if let Some(j) = jsonl.as_mut() {
        if let Err(e) = j.flush() {
            sink_error.get_or_insert_with(|| e.to_string());
        }
    }
    for w in &warnings {
        eprintln!("mailtls: {w}");
    }
    if let Some(e) = sink_error {
        bail!("writing records failed: {e}");
    }
    if to_stdout {
        eprint!("{}", stats.to_lines());
    } else {
        print!("{}", summary.render(&stats));
    }
    let opened_none =
        stats.reader.capture_errors as usize >= args.captures.len() && stats.reader.packets == 0;
    Ok(if opened_none {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

//! The floor of the benchmark: the cheapest possible read of a capture through the same
//! libpcap binding (`pcap` crate) that `mailtls read` uses, so that `mailtls read` can be
//! compared with "just reading the file".
//!
//! ```sh
//! cargo run --release -p mailtls-sensor --example pcap_floor -- FILE...
//! ```
//!
//! For each file, in order: `Capture::from_file`, then `next_packet()` until the end, counting
//! packets and summing the captured and the on-the-wire lengths (and XOR-ing the first byte of
//! each frame, so that the frame data is touched like a decoder would). Prints `name: value`
//! lines on stdout (`packets`, `bytes` = captured bytes, `wire_bytes`, `seconds`, `gbps`,
//! `mpps`); `gbps` counts the captured bytes, like the benchmark table.
//!
//! `--as-mailtls` reads the files the way `mailtls read` does (`capture::OfflineCapture`:
//! libpcap's stream unlocked and given a 1 MiB stdio buffer instead of glibc's 4 KiB, and
//! frames taken `capture::CHUNK_FRAMES` at a time by `pcap_dispatch` instead of one
//! `pcap_next_ex` each), so the benchmark can show both floors: plain libpcap, and libpcap
//! fed the way mailtls feeds it.
//!
//! Exit code 1 when a file cannot be opened or read.

use mailtls_sensor::capture::{OfflineCapture, CHUNK_FRAMES};
use std::error::Error;
use std::path::Path;
use std::time::Instant;

fn main() {
    if let Err(e) = run() {
        eprintln!("pcap_floor: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    let mut files: Vec<String> = std::env::args().skip(1).collect();
    let as_mailtls = files.iter().any(|f| f == "--as-mailtls");
    files.retain(|f| f != "--as-mailtls");
    if files.is_empty() || files.iter().any(|f| f == "-h" || f == "--help") {
        eprintln!("usage: pcap_floor [--as-mailtls] FILE...");
        std::process::exit(2);
    }
    let start = Instant::now();
    let mut packets: u64 = 0;
    let mut bytes: u64 = 0;
    let mut wire_bytes: u64 = 0;
    let mut touch: u8 = 0;
    for file in &files {
        if as_mailtls {
            let mut cap = OfflineCapture::open(Path::new(file))?;
            while cap.read_chunk(CHUNK_FRAMES, |p| {
                packets += 1;
                bytes += p.data.len() as u64;
                wire_bytes += u64::from(p.wire_len);
                touch ^= p.data.first().copied().unwrap_or(0);
            })? > 0
            {}
            continue;
        }
        let mut cap =
            pcap::Capture::from_file(file).map_err(|e| format!("cannot open {file}: {e}"))?;
        loop {
            match cap.next_packet() {
                Ok(p) => {
                    packets += 1;
                    bytes += p.data.len() as u64;
                    wire_bytes += u64::from(p.header.len);
                    touch ^= p.data.first().copied().unwrap_or(0);
                }
                Err(pcap::Error::NoMorePackets) => break,
                Err(e) => return Err(format!("reading {file}: {e}").into()),
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!("packets: {packets}");
    println!("bytes: {bytes}");
    println!("wire_bytes: {wire_bytes}");
    println!("seconds: {secs:.6}");
    println!("gbps: {:.3}", bytes as f64 * 8.0 / secs / 1e9);
    println!("mpps: {:.3}", packets as f64 / secs / 1e6);
    // Printed so that the compiler cannot drop the data access.
    println!("checksum: {touch}");
    Ok(())
}

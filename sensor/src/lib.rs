//! # Brief overview
//!
//! `mailtls-sensor` is the engine behind the `mailtls` binary: it turns captured frames into
//! one [`mailtls_storage::SessionRecord`] per SMTP session.
//!
//! Stages, in the order packets meet them:
//! - [`capture`]: libpcap offline handles (live capture later) yield raw frames;
//! - [`decode`]: link layer to TCP, with VLANs and common tunnels, without allocating;
//! - [`pipeline`]: the reader shards packets by a symmetric flow hash into batches for N
//!   workers over `crossbeam` channels;
//! - [`flow`]: each worker's flow table (its shard) with caps and timeouts;
//! - [`reassembly`]: per-direction TCP reassembly with gaps, overlaps and caps;
//! - [`session`]: SMTP then TLS parsing (from `mailtls-parsers`) and the record;
//! - [`outputs`]: the sink stage (JSONL, ClickHouse, report); [`report`]: the terminal
//!   summary of a run; [`stats`]: counters.
#![deny(missing_docs)]

pub mod capture;
pub mod cli;
pub mod decode;
pub mod flow;
pub mod live;
pub mod metrics;
pub mod outputs;
pub mod pipeline;
pub mod ports;
pub mod reassembly;
pub mod report;
pub mod session;
pub mod stats;

//! Capture sources: offline files (pcap and pcapng) and live interfaces, both through
//! libpcap (the `pcap` crate). Both yield [`RawPacket`]s borrowed from the handle.

mod live;
mod offline;

pub use live::{default_bpf, LiveCapture, LiveOptions, LiveStats, Next};
pub use offline::{CaptureError, OfflineCapture, RawPacket, CHUNK_FRAMES};

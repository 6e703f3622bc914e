//! Counters: what the reader and the workers saw, could not parse, or had to drop.

use crate::reassembly::StreamStats;
use crate::session::SessionParseStats;
use std::fmt::Write;

/// Reader-side counters (decoding and filtering).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReaderStats {
    /// Frames read from the capture(s).
    pub packets: u64,
    /// Bytes on the wire of those frames (pcap `len`).
    pub bytes: u64,
    /// Frames the capture cut short (caplen < len).
    pub truncated: u64,
    /// Frames that were not IP.
    pub not_ip: u64,
    /// IP packets that were not TCP.
    pub not_tcp: u64,
    /// IP fragments (not reassembled).
    pub fragments: u64,
    /// Frames whose headers did not decode.
    pub malformed: u64,
    /// Frames of a link type not handled.
    pub unsupported_link: u64,
    /// TCP packets on ports not watched.
    pub unwatched: u64,
    /// TCP packets handed to workers.
    pub watched: u64,
    /// Packets found inside GRE/ERSPAN.
    pub tunnel_gre: u64,
    /// Packets found inside VXLAN.
    pub tunnel_vxlan: u64,
    /// Packets found inside GTP-U.
    pub tunnel_gtp: u64,
    /// Packets found inside MPLS.
    pub tunnel_mpls: u64,
    /// Packets found inside IP-in-IP.
    pub tunnel_ipip: u64,
    /// Tunnelled packets that could not be unwrapped (nesting too deep, unknown payload).
    pub tunnel_opaque: u64,
    /// Capture files that ended with an error (e.g. truncated mid-packet).
    pub capture_errors: u64,
    /// Live capture: packets the kernel handed to libpcap (`ps_recv`, summed over interfaces).
    pub kernel_received: u64,
    /// Live capture: packets dropped because the capture buffer was full (`ps_drop`).
    pub kernel_drops: u64,
    /// Live capture: packets the interface or driver dropped (`ps_ifdrop`).
    pub kernel_if_drops: u64,
}

/// Worker-side counters (flows, reassembly, parsing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Sessions started.
    pub flows: u64,
    /// Records emitted.
    pub records: u64,
    /// Sessions ended by the idle timeout.
    pub idle_closed: u64,
    /// Sessions ended because the flow table was full.
    pub evicted: u64,
    /// Times the flow table was full.
    pub table_full: u64,
    /// Packets absorbed by tombstones of closed connections.
    pub late_packets: u64,
    /// Bytes missing from the capture.
    pub gap_bytes: u64,
    /// Holes skipped.
    pub gaps: u64,
    /// Segments that only repeated seen bytes.
    pub retransmissions: u64,
    /// Overlaps with different bytes.
    pub conflicts: u64,
    /// Times a per-flow buffer cap was hit.
    pub buffer_overflows: u64,
    /// SMTP server lines that were not replies.
    pub smtp_junk_lines: u64,
    /// SMTP lines over the length cap.
    pub smtp_overlong_lines: u64,
    /// Bytes skipped by the TLS parser as not-a-record.
    pub tls_junk_bytes: u64,
    /// TLS handshake messages that did not parse.
    pub tls_bad_messages: u64,
    /// TLS handshake messages over the size cap.
    pub tls_oversized_messages: u64,
    /// Certificates that did not parse.
    pub cert_errors: u64,
}

impl WorkerStats {
    /// Adds a finished session's counters.
    pub fn add_session(&mut self, streams: &[StreamStats; 2], parse: &SessionParseStats) {
        for s in streams {
            self.gap_bytes += s.gap_bytes;
            self.gaps += u64::from(s.gaps);
            self.retransmissions += u64::from(s.retransmissions);
            self.conflicts += u64::from(s.conflicts);
            self.buffer_overflows += u64::from(s.overflows);
        }
        self.smtp_junk_lines += parse.smtp_junk_lines;
        self.smtp_overlong_lines += parse.smtp_overlong_lines;
        self.tls_junk_bytes += parse.tls_junk_bytes;
        self.tls_bad_messages += parse.tls_bad_messages;
        self.tls_oversized_messages += parse.tls_oversized_messages;
        self.cert_errors += parse.cert_errors;
    }

    /// Adds another worker's counters.
    pub fn merge(&mut self, o: &WorkerStats) {
        self.flows += o.flows;
        self.records += o.records;
        self.idle_closed += o.idle_closed;
        self.evicted += o.evicted;
        self.table_full += o.table_full;
        self.late_packets += o.late_packets;
        self.gap_bytes += o.gap_bytes;
        self.gaps += o.gaps;
        self.retransmissions += o.retransmissions;
        self.conflicts += o.conflicts;
        self.buffer_overflows += o.buffer_overflows;
        self.smtp_junk_lines += o.smtp_junk_lines;
        self.smtp_overlong_lines += o.smtp_overlong_lines;
        self.tls_junk_bytes += o.tls_junk_bytes;
        self.tls_bad_messages += o.tls_bad_messages;
        self.tls_oversized_messages += o.tls_oversized_messages;
        self.cert_errors += o.cert_errors;
    }

    /// Parse errors of all kinds, as one number.
    pub fn parse_errors(&self) -> u64 {
        self.smtp_junk_lines
            + self.smtp_overlong_lines
            + self.tls_bad_messages
            + self.tls_oversized_messages
            + self.cert_errors
    }
}

/// Everything counted during one run.
#[derive(Debug, Clone, Default)]
pub struct RunStats {
    /// Reader counters.
    pub reader: ReaderStats,
    /// Sum of the workers' counters.
    pub workers: WorkerStats,
    /// Wall-clock seconds the run took.
    pub elapsed_secs: f64,
}

impl RunStats {
    /// The counters as `name: value` lines, one per counter, stable names (scripts read them).
    pub fn to_lines(&self) -> String {
        let r = &self.reader;
        let w = &self.workers;
        let mut s = String::new();
        let mbps = if self.elapsed_secs > 0.0 {
            r.bytes as f64 * 8.0 / self.elapsed_secs / 1e6
        } else {
            0.0
        };
        let pps = if self.elapsed_secs > 0.0 {
            r.packets as f64 / self.elapsed_secs
        } else {
            0.0
        };
        let rows: [(&str, u64); 38] = [
            ("packets", r.packets),
            ("bytes", r.bytes),
            ("packets_watched", r.watched),
            ("packets_unwatched_port", r.unwatched),
            ("packets_not_ip", r.not_ip),
            ("packets_not_tcp", r.not_tcp),
            ("packets_fragment", r.fragments),
            ("packets_malformed", r.malformed),
            ("packets_truncated", r.truncated),
            ("packets_unsupported_link", r.unsupported_link),
            ("tunnel_gre", r.tunnel_gre),
            ("tunnel_vxlan", r.tunnel_vxlan),
            ("tunnel_gtp", r.tunnel_gtp),
            ("tunnel_mpls", r.tunnel_mpls),
            ("tunnel_ipip", r.tunnel_ipip),
            ("tunnel_opaque", r.tunnel_opaque),
            ("capture_errors", r.capture_errors),
            ("kernel_received", r.kernel_received),
            ("kernel_drops", r.kernel_drops),
            ("kernel_if_drops", r.kernel_if_drops),
            ("flows", w.flows),
            ("records", w.records),
            ("flows_idle_closed", w.idle_closed),
            ("flows_evicted", w.evicted),
            ("flow_table_full", w.table_full),
            ("late_packets", w.late_packets),
            ("gap_bytes", w.gap_bytes),
            ("gaps", w.gaps),
            ("retransmissions", w.retransmissions),
            ("overlap_conflicts", w.conflicts),
            ("buffer_overflows", w.buffer_overflows),
            ("parse_errors", w.parse_errors()),
            ("smtp_junk_lines", w.smtp_junk_lines),
            ("smtp_overlong_lines", w.smtp_overlong_lines),
            ("tls_junk_bytes", w.tls_junk_bytes),
            ("tls_bad_messages", w.tls_bad_messages),
            ("tls_oversized_messages", w.tls_oversized_messages),
            ("cert_errors", w.cert_errors),
        ];
        for (k, v) in rows {
            let _ = writeln!(s, "{k}: {v}");
        }
        let _ = writeln!(s, "elapsed_seconds: {:.3}", self.elapsed_secs);
        let _ = writeln!(s, "throughput_mbps: {mbps:.1}");
        let _ = writeln!(s, "throughput_pps: {pps:.0}");
        s
    }
}

//! A batch of packets for one worker: fixed-size facts plus one shared payload buffer, so a
//! batch is two allocations however many packets it holds, and is reused once emptied.

use crate::decode::TcpPacket;
use crate::flow::table::FlowPacket;
use crate::flow::FlowKey;

/// The facts of one packet in a batch; its payload lives in [`PacketBatch::data`].
#[derive(Debug, Clone, Copy)]
pub struct PacketMeta {
    /// Capture time, µs.
    pub ts: i64,
    /// The flow's canonical key, as the reader computed it to pick the worker (the worker
    /// looks the flow up by it without ordering the endpoints again).
    pub key: FlowKey,
    /// Whether the packet travels from `key.lo` to `key.hi`.
    pub from_lo: bool,
    /// TCP sequence number.
    pub seq: u32,
    /// TCP acknowledgment number.
    pub ack: u32,
    /// TCP flags.
    pub flags: u8,
    /// Outer VLAN id.
    pub vlan: u16,
    /// Offset of the payload in the batch buffer.
    pub payload_start: u32,
    /// Payload length.
    pub payload_len: u32,
}

impl PacketMeta {
    /// The worker's view of this packet, given its payload slice.
    pub fn as_flow_packet<'a>(&self, payload: &'a [u8]) -> FlowPacket<'a> {
        let (src, dst) = if self.from_lo {
            (self.key.lo, self.key.hi)
        } else {
            (self.key.hi, self.key.lo)
        };
        FlowPacket {
            ts: self.ts,
            src,
            dst,
            seq: self.seq,
            ack: self.ack,
            flags: self.flags,
            vlan: self.vlan,
            payload,
        }
    }
}

/// Packets bound for one worker.
#[derive(Debug, Default)]
pub struct PacketBatch {
    /// Per-packet facts, in capture order.
    pub meta: Vec<PacketMeta>,
    /// Concatenated payloads.
    pub data: Vec<u8>,
    /// When the first packet went in (for the pipeline-latency histogram).
    pub started: Option<std::time::Instant>,
}

impl PacketBatch {
    /// An empty batch with room for `packets` packets.
    pub fn with_capacity(packets: usize) -> Self {
        PacketBatch {
            meta: Vec::with_capacity(packets),
            data: Vec::with_capacity(packets * 256),
            started: None,
        }
    }

    /// Appends a packet of the flow `key` (travelling from `key.lo` when `from_lo`), copying
    /// its payload.
    pub fn push(&mut self, ts: i64, key: FlowKey, from_lo: bool, tcp: &TcpPacket<'_>) {
        if self.meta.is_empty() {
            self.started = Some(std::time::Instant::now());
        }
        let payload_start = self.data.len() as u32;
        self.data.extend_from_slice(tcp.payload);
        self.meta.push(PacketMeta {
            ts,
            key,
            from_lo,
            seq: tcp.seq,
            ack: tcp.ack,
            flags: tcp.flags,
            vlan: tcp.vlan,
            payload_start,
            payload_len: tcp.payload.len() as u32,
        });
    }

    /// Empties the batch, keeping its buffers.
    pub fn clear(&mut self) {
        self.meta.clear();
        self.data.clear();
        self.started = None;
    }
}

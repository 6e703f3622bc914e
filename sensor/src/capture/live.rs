//! Live capture on network interfaces (a SPAN or mirror port), through libpcap: on Linux
//! libpcap uses TPACKET_V3 memory-mapped rings, sized by `buffer_mb`.

use super::{CaptureError, RawPacket};
use crate::ports::PortSet;

/// How to open an interface.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// Bytes captured per packet (TLS hellos and certificates need the whole segment).
    pub snaplen: i32,
    /// Kernel ring size in MiB.
    pub buffer_mb: i32,
    /// BPF filter expression.
    pub bpf: String,
    /// Promiscuous mode.
    pub promisc: bool,
}

/// The kernel's counters of one handle (`pcap_stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveStats {
    /// Packets received (`ps_recv`).
    pub received: u64,
    /// Packets dropped for lack of buffer space (`ps_drop`).
    pub dropped: u64,
    /// Packets dropped by the interface or driver (`ps_ifdrop`).
    pub if_dropped: u64,
}

/// What a read of a live handle gave.
#[derive(Debug)]
pub enum Next<'a> {
    /// A packet.
    Packet(RawPacket<'a>),
    /// Nothing arrived within the read timeout.
    Idle,
}

/// One live interface.
pub struct LiveCapture {
    iface: String,
    cap: pcap::Capture<pcap::Active>,
    linktype: i32,
}

/// The default filter: TCP on the watched ports, also inside one or two VLAN tags.
pub fn default_bpf(ports: &PortSet, list: &[u16]) -> String {
    let inner = if ports.is_all() || list.is_empty() {
        "tcp".to_string()
    } else {
        let ports: Vec<String> = list.iter().map(|p| format!("port {p}")).collect();
        format!("tcp and ({})", ports.join(" or "))
    };
    format!("({inner}) or (vlan and ({inner})) or (vlan and vlan and ({inner}))")
}

impl LiveCapture {
    /// Opens `iface` (needs root or CAP_NET_RAW) and applies the filter.
    pub fn open(iface: &str, opts: &LiveOptions) -> Result<Self, CaptureError> {
        let err = |source| CaptureError::Live {
            iface: iface.to_string(),
            source,
        };
        let mut cap = pcap::Capture::from_device(iface)
            .map_err(err)?
            .promisc(opts.promisc)
            .snaplen(opts.snaplen)
            .buffer_size(opts.buffer_mb.saturating_mul(1 << 20))
            .timeout(100)
            .open()
            .map_err(err)?;
        if !opts.bpf.is_empty() {
            cap.filter(&opts.bpf, true).map_err(err)?;
        }
        let linktype = cap.get_datalink().0;
        Ok(LiveCapture {
            iface: iface.to_string(),
            cap,
            linktype,
        })
    }

    /// Switches the handle to non-blocking reads (several interfaces are polled by one
    /// reader thread): a read with nothing pending returns [`Next::Idle`] at once.
    pub fn into_nonblocking(self) -> Result<Self, CaptureError> {
        let iface = self.iface;
        let cap = self
            .cap
            .setnonblock()
            .map_err(|source| CaptureError::Live {
                iface: iface.clone(),
                source,
            })?;
        Ok(LiveCapture {
            iface,
            cap,
            linktype: self.linktype,
        })
    }

    /// The descriptor to wait on with poll(2).
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.cap.as_raw_fd()
    }

    /// The interface name.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// The link type of the interface.
    pub fn linktype(&self) -> i32 {
        self.linktype
    }

    /// Waits up to the read timeout (100 ms) for a packet.
    // timeval's field types differ between platforms; `i64::from` is the portable spelling.
    #[allow(clippy::useless_conversion)]
    pub fn next_packet(&mut self) -> Result<Next<'_>, CaptureError> {
        match self.cap.next_packet() {
            Ok(p) => {
                let ts = i64::from(p.header.ts.tv_sec)
                    .saturating_mul(1_000_000)
                    .saturating_add(i64::from(p.header.ts.tv_usec));
                Ok(Next::Packet(RawPacket {
                    ts,
                    wire_len: p.header.len,
                    data: p.data,
                }))
            }
            Err(pcap::Error::TimeoutExpired) | Err(pcap::Error::NoMorePackets) => Ok(Next::Idle),
            Err(source) => Err(CaptureError::Live {
                iface: self.iface.clone(),
                source,
            }),
        }
    }

    /// The kernel's counters so far.
    pub fn stats(&mut self) -> LiveStats {
        self.cap
            .stats()
            .map(|s| LiveStats {
                received: u64::from(s.received),
                dropped: u64::from(s.dropped),
                if_dropped: u64::from(s.if_dropped),
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_filter_covers_vlans() {
        let f = default_bpf(&PortSet::mail_default(), &[25, 587, 465]);
        assert_eq!(
            f,
            "(tcp and (port 25 or port 587 or port 465)) or (vlan and (tcp and (port 25 or port 587 or port 465))) or (vlan and vlan and (tcp and (port 25 or port 587 or port 465)))"
        );
        assert!(default_bpf(&PortSet::all(), &[]).starts_with("(tcp)"));
    }
}

//! L2-L4 decoding: from a captured frame to the TCP facts the flow table needs.
//!
//! Link layers: Ethernet (802.1Q/QinQ through `etherparse`, PPPoE sessions by hand), Linux SLL
//! and SLL2, raw IP
//! (DLT_RAW, LINKTYPE_IPV4/IPV6), BSD loopback (DLT_NULL, DLT_LOOP). Tunnels are unwrapped
//! where that is cheap and safe (GRE incl. ERSPAN II/III, VXLAN, GTP-U, IP-in-IP, MPLS) and
//! counted; anything else is counted as skipped, never an error. Nothing here allocates: the
//! result borrows the frame.

mod fast;
mod tunnel;

use etherparse::{EtherType, IpNumber, LaxNetSlice, LaxSlicedPacket, TransportSlice};
use std::net::IpAddr;

/// libpcap link-type numbers handled here.
pub mod linktype {
    /// BSD loopback, host-order address family.
    pub const NULL: i32 = 0;
    /// Ethernet.
    pub const ETHERNET: i32 = 1;
    /// Raw IP (OpenBSD/other value).
    pub const RAW_OPENBSD: i32 = 14;
    /// Raw IP (DLT_RAW as on most systems).
    pub const RAW_12: i32 = 12;
    /// LINKTYPE_RAW.
    pub const RAW: i32 = 101;
    /// OpenBSD loopback, network-order address family.
    pub const LOOP: i32 = 108;
    /// Linux cooked capture v1.
    pub const LINUX_SLL: i32 = 113;
    /// Raw IPv4.
    pub const IPV4: i32 = 228;
    /// Raw IPv6.
    pub const IPV6: i32 = 229;
    /// Linux cooked capture v2.
    pub const LINUX_SLL2: i32 = 276;
}

/// TCP flag bits as in the header.
pub mod flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

/// The TCP facts of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpPacket<'a> {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number (meaningful when the ACK flag is set).
    pub ack: u32,
    /// FIN/SYN/RST/ACK bits (see [`flags`]).
    pub flags: u8,
    /// Outermost VLAN id, 0 when untagged.
    pub vlan: u16,
    /// TCP payload as captured (may be shorter than sent when snaplen cut it).
    pub payload: &'a [u8],
    /// Whether the capture cut the packet short.
    pub truncated: bool,
}

/// Why a frame yields no TCP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Not IPv4/IPv6 (ARP, LLDP, STP, ...).
    NotIp,
    /// IP but not TCP (UDP, ICMP, ...), after unwrapping known tunnels.
    NotTcp,
    /// A non-first IP fragment, or a first fragment (fragments are not reassembled).
    Fragment,
    /// Headers too short or inconsistent.
    Malformed,
    /// A link type this decoder does not know.
    UnsupportedLink,
    /// A tunnel that is recognised but not unwrapped (counted by kind).
    Tunnel(TunnelKind),
}

/// Tunnel encapsulations that are recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelKind {
    /// GRE (including ERSPAN).
    Gre,
    /// VXLAN (UDP 4789).
    Vxlan,
    /// GTP-U (UDP 2152).
    Gtp,
    /// MPLS label stack.
    Mpls,
    /// IPv4/IPv6 in IP.
    IpInIp,
}

/// Result of decoding a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// The TCP packet, or why there is none.
    pub packet: Result<TcpPacket<'a>, Skip>,
    /// The innermost tunnel unwrapped on the way (for counters).
    pub tunnel: Option<TunnelKind>,
}

/// Deepest tunnel nesting unwrapped.
const MAX_DEPTH: u8 = 4;

/// Decodes one captured frame of link type `link`: common frames by the fast path
/// (fixed header offsets), the rest by [`decode_reference`].
#[inline]
pub fn decode(link: i32, frame: &[u8]) -> Decoded<'_> {
    let quick = match link {
        linktype::ETHERNET => fast::ethernet(frame),
        linktype::RAW
        | linktype::RAW_12
        | linktype::RAW_OPENBSD
        | linktype::IPV4
        | linktype::IPV6 => fast::raw_ip(frame),
        _ => fast::Fast::Slow,
    };
    match quick {
        fast::Fast::Done(packet) => Decoded {
            packet,
            tunnel: None,
        },
        fast::Fast::Slow => decode_reference(link, frame),
    }
}

/// Decodes one captured frame of link type `link` through `etherparse` and the tunnel
/// decoders only: the reference [`decode`]'s fast path is checked against (tests, fuzzing).
pub fn decode_reference(link: i32, frame: &[u8]) -> Decoded<'_> {
    let mut tunnel = None;
    let packet = decode_link(link, frame, 0, &mut tunnel);
    Decoded { packet, tunnel }
}

fn decode_link<'a>(
    link: i32,
    frame: &'a [u8],
    depth: u8,
    tunnel: &mut Option<TunnelKind>,
) -> Result<TcpPacket<'a>, Skip> {
    match link {
        linktype::ETHERNET => match LaxSlicedPacket::from_ethernet(frame) {
            Ok(p) => from_sliced(&p, depth, tunnel),
            Err(_) => Err(Skip::Malformed),
        },
        linktype::RAW
        | linktype::RAW_12
        | linktype::RAW_OPENBSD
        | linktype::IPV4
        | linktype::IPV6 => from_ip(frame, depth, tunnel),
        linktype::NULL | linktype::LOOP => {
            let fam = frame.get(..4).ok_or(Skip::Malformed)?;
            let family = if link == linktype::LOOP {
                u32::from_be_bytes([fam[0], fam[1], fam[2], fam[3]])
            } else {
                // Host order of the capturing machine: accept either.
                let le = u32::from_le_bytes([fam[0], fam[1], fam[2], fam[3]]);
                if le < 256 {
                    le
                } else {
                    u32::from_be_bytes([fam[0], fam[1], fam[2], fam[3]])
                }
            };
            match family {
                // AF_INET, and AF_INET6 as BSDs/macOS/Linux number it.
                2 | 24 | 28 | 30 | 10 => from_ip(&frame[4..], depth, tunnel),
                _ => Err(Skip::NotIp),
            }
        }
        linktype::LINUX_SLL => {
            let proto = frame.get(14..16).ok_or(Skip::Malformed)?;
            let ether_type = EtherType(u16::from_be_bytes([proto[0], proto[1]]));
            from_ether_type(ether_type, &frame[16..], depth, tunnel)
        }
        linktype::LINUX_SLL2 => {
            let proto = frame.get(0..2).ok_or(Skip::Malformed)?;
            let ether_type = EtherType(u16::from_be_bytes([proto[0], proto[1]]));
            let rest = frame.get(20..).ok_or(Skip::Malformed)?;
            from_ether_type(ether_type, rest, depth, tunnel)
        }
        _ => Err(Skip::UnsupportedLink),
    }
}

fn from_ether_type<'a>(
    ether_type: EtherType,
    payload: &'a [u8],
    depth: u8,
    tunnel: &mut Option<TunnelKind>,
) -> Result<TcpPacket<'a>, Skip> {
    if ether_type == EtherType(0x8847) || ether_type == EtherType(0x8848) {
        return tunnel::mpls(payload, depth, tunnel);
    }
    let p = LaxSlicedPacket::from_ether_type(ether_type, payload);
    from_sliced(&p, depth, tunnel)
}

/// A PPPoE session frame (RFC 2516): 6-byte PPPoE header, 2-byte PPP protocol, then IP.
fn pppoe_session<'a>(
    payload: &'a [u8],
    depth: u8,
    tunnel: &mut Option<TunnelKind>,
) -> Result<TcpPacket<'a>, Skip> {
    let proto = payload.get(6..8).ok_or(Skip::Malformed)?;
    match u16::from_be_bytes([proto[0], proto[1]]) {
        0x0021 | 0x0057 => from_ip(&payload[8..], depth, tunnel),
        _ => Err(Skip::NotIp),
    }
}

fn from_ip<'a>(
    bytes: &'a [u8],
    depth: u8,
    tunnel: &mut Option<TunnelKind>,
) -> Result<TcpPacket<'a>, Skip> {
    match LaxSlicedPacket::from_ip(bytes) {
        Ok(p) => from_sliced(&p, depth, tunnel),
        Err(_) => Err(Skip::Malformed),
    }
}

fn from_sliced<'a>(
    p: &LaxSlicedPacket<'a>,
    depth: u8,
    tunnel: &mut Option<TunnelKind>,
) -> Result<TcpPacket<'a>, Skip> {
    let vlan = p
        .link_exts
        .iter()
        .find_map(|e| match e {
            etherparse::LaxLinkExtSlice::Vlan(v) => Some(v.vlan_identifier().value()),
            _ => None,
        })
        .unwrap_or(0);
    let (src, dst, ip_payload) = match &p.net {
        Some(LaxNetSlice::Ipv4(v4)) => {
            let h = v4.header();
            (
                IpAddr::V4(h.source_addr()),
                IpAddr::V4(h.destination_addr()),
                v4.payload(),
            )
        }
        Some(LaxNetSlice::Ipv6(v6)) => {
            let h = v6.header();
            (
                IpAddr::V6(h.source_addr()),
                IpAddr::V6(h.destination_addr()),
                v6.payload(),
            )
        }
        _ => {
            // MPLS under Ethernet is not sliced by etherparse: look at the ether type.
            if let Some(etherparse::LinkSlice::Ethernet2(eth)) = &p.link {
                let et = p
                    .link_exts
                    .last()
                    .and_then(|e| match e {
                        etherparse::LaxLinkExtSlice::Vlan(v) => Some(v.ether_type()),
                        _ => None,
                    })
                    .unwrap_or(eth.ether_type());
                let inner = p
                    .link_exts
                    .last()
                    .map(|e| match e {
                        etherparse::LaxLinkExtSlice::Vlan(v) => v.payload_slice(),
                        etherparse::LaxLinkExtSlice::Macsec(_) => &[][..],
                    })
                    .unwrap_or(eth.payload_slice());
                let unwrapped = if et == EtherType(0x8847) || et == EtherType(0x8848) {
                    Some(tunnel::mpls(inner, depth, tunnel))
                } else if et == EtherType(0x8864) {
                    Some(pppoe_session(inner, depth, tunnel))
                } else {
                    None
                };
                if let Some(result) = unwrapped {
                    return result.map(|mut t| {
                        if t.vlan == 0 {
                            t.vlan = vlan;
                        }
                        t
                    });
                }
            }
            return Err(Skip::NotIp);
        }
    };
    if ip_payload.fragmented {
        return Err(Skip::Fragment);
    }
    match &p.transport {
        Some(TransportSlice::Tcp(tcp)) => {
            let mut f = 0u8;
            if tcp.fin() {
                f |= flags::FIN;
            }
            if tcp.syn() {
                f |= flags::SYN;
            }
            if tcp.rst() {
                f |= flags::RST;
            }
            if tcp.ack() {
                f |= flags::ACK;
            }
            Ok(TcpPacket {
                src,
                dst,
                sport: tcp.source_port(),
                dport: tcp.destination_port(),
                seq: tcp.sequence_number(),
                ack: tcp.acknowledgment_number(),
                flags: f,
                vlan,
                payload: tcp.payload(),
                truncated: ip_payload.incomplete,
            })
        }
        Some(TransportSlice::Udp(udp)) => {
            let inner = tunnel::udp(
                udp.source_port(),
                udp.destination_port(),
                udp.payload(),
                depth,
                tunnel,
            );
            inner.map(|mut t| {
                if t.vlan == 0 {
                    t.vlan = vlan;
                }
                t
            })
        }
        Some(_) => Err(Skip::NotTcp),
        None => {
            if p.stop_err.is_some() && ip_payload.ip_number == IpNumber::TCP {
                return Err(Skip::Malformed);
            }
            tunnel::ip_payload(ip_payload.ip_number, ip_payload.payload, depth, tunnel).map(
                |mut t| {
                    if t.vlan == 0 {
                        t.vlan = vlan;
                    }
                    t
                },
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn tcp_frame(payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .single_vlan(etherparse::VlanId::try_new(125).unwrap())
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(40000, 25, 1000, 65535)
            .syn();
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    #[test]
    fn ethernet_vlan_tcp() {
        let f = tcp_frame(b"EHLO x\r\n");
        let d = decode(linktype::ETHERNET, &f);
        let t = d.packet.unwrap();
        assert_eq!((t.sport, t.dport, t.vlan), (40000, 25, 125));
        assert_eq!(t.flags & flags::SYN, flags::SYN);
        assert_eq!(t.payload, b"EHLO x\r\n");
    }

    #[test]
    fn truncated_and_garbage_frames_do_not_panic() {
        let f = tcp_frame(b"0123456789");
        for cut in 0..f.len() {
            let _ = decode(linktype::ETHERNET, &f[..cut]);
        }
        for link in [0, 1, 12, 101, 108, 113, 228, 229, 276, 9999] {
            let _ = decode(link, &[0xff; 3]);
            let _ = decode(link, &[]);
        }
        assert_eq!(decode(9999, &f).packet.unwrap_err(), Skip::UnsupportedLink);
    }

    #[test]
    fn snaplen_cut_payload_is_flagged() {
        let f = tcp_frame(&[b'x'; 100]);
        let t = decode(linktype::ETHERNET, &f[..f.len() - 40])
            .packet
            .unwrap();
        assert!(t.truncated);
        assert_eq!(t.payload.len(), 60);
    }
}

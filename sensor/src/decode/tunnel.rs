//! Tunnel unwrapping: each function strips one encapsulation header and hands the inner
//! frame back to the link/IP decoder, one level deeper. Header layouts: GRE (RFC 2784/2890),
//! ERSPAN II/III (draft-foschiano-erspan), VXLAN (RFC 7348), GTP-U (3GPP TS 29.281),
//! MPLS (RFC 3032). Written by hand because `etherparse` stops at these headers.

use super::{decode_link, linktype, Skip, TcpPacket, TunnelKind, MAX_DEPTH};
use etherparse::IpNumber;

const VXLAN_PORT: u16 = 4789;
const GTP_U_PORT: u16 = 2152;

/// A UDP payload: VXLAN or GTP-U when the ports say so, else not TCP.
pub(super) fn udp<'a>(
    sport: u16,
    dport: u16,
    payload: &'a [u8],
    depth: u8,
    tunnel: &mut Option<TunnelKind>,
) -> Result<TcpPacket<'a>, Skip> {
    if dport == VXLAN_PORT {
        let inner = payload.get(8..).ok_or(Skip::Malformed)?;
        return enter(TunnelKind::Vxlan, linktype::ETHERNET, inner, depth, tunnel);
    }
    if dport == GTP_U_PORT || sport == GTP_U_PORT {
        let inner = gtp_u_payload(payload).ok_or(Skip::Malformed)?;
        return enter(TunnelKind::Gtp, linktype::RAW, inner, depth, tunnel);
    }
    Err(Skip::NotTcp)
}

/// An IP payload that was not TCP/UDP: GRE or IP-in-IP when the protocol says so.
pub(super) fn ip_payload<'a>(
    proto: IpNumber,
    payload: &'a [u8],
    depth: u8,
    tunnel: &mut Option<TunnelKind>,
) -> Result<TcpPacket<'a>, Skip> {
    match proto {
        IpNumber::IPV4 | IpNumber::IPV6 => {
            enter(TunnelKind::IpInIp, linktype::RAW, payload, depth, tunnel)
        }
        IpNumber::GRE => gre(payload, depth, tunnel),
        _ => Err(Skip::NotTcp),
    }
}

/// An MPLS label stack followed by IPv4 or IPv6.
pub(super) fn mpls<'a>(
    payload: &'a [u8],
    depth: u8,
    tunnel: &mut Option<TunnelKind>,
) -> Result<TcpPacket<'a>, Skip> {
    let mut off = 0;
    loop {
        let label = payload.get(off..off + 4).ok_or(Skip::Malformed)?;
        off += 4;
        if label[2] & 0x01 != 0 {
            break;
        }
        if off > 64 {
            return Err(Skip::Malformed);
        }
    }
    let inner = &payload[off..];
    match inner.first().map(|b| b >> 4) {
        Some(4) | Some(6) => enter(TunnelKind::Mpls, linktype::RAW, inner, depth, tunnel),
        _ => Err(Skip::Tunnel(TunnelKind::Mpls)),
    }
}

fn gre<'a>(
    payload: &'a [u8],
    depth: u8,
    tunnel: &mut Option<TunnelKind>,
) -> Result<TcpPacket<'a>, Skip> {
    let h = payload.get(..4).ok_or(Skip::Malformed)?;
    let (c, k, s) = (h[0] & 0x80 != 0, h[0] & 0x20 != 0, h[0] & 0x10 != 0);
    let proto = u16::from_be_bytes([h[2], h[3]]);
    let off = 4 + 4 * (usize::from(c) + usize::from(k) + usize::from(s));
    let inner = payload.get(off..).ok_or(Skip::Malformed)?;
    match proto {
        0x0800 | 0x86dd => enter(TunnelKind::Gre, linktype::RAW, inner, depth, tunnel),
        0x6558 => enter(TunnelKind::Gre, linktype::ETHERNET, inner, depth, tunnel),
        // ERSPAN type II (type I has no sequence bit and no header).
        0x88be => {
            let eth = if s { inner.get(8..) } else { Some(inner) };
            let eth = eth.ok_or(Skip::Malformed)?;
            enter(TunnelKind::Gre, linktype::ETHERNET, eth, depth, tunnel)
        }
        // ERSPAN type III: 12-byte header, plus an 8-byte platform subheader when O is set.
        0x22eb => {
            let hdr = inner.get(..12).ok_or(Skip::Malformed)?;
            let o = hdr[11] & 0x01 != 0;
            let eth = inner
                .get(if o { 20 } else { 12 }..)
                .ok_or(Skip::Malformed)?;
            enter(TunnelKind::Gre, linktype::ETHERNET, eth, depth, tunnel)
        }
        0x8847 => {
            *tunnel = Some(TunnelKind::Gre);
            mpls(inner, depth + 1, tunnel)
        }
        _ => Err(Skip::Tunnel(TunnelKind::Gre)),
    }
}

/// The T-PDU inside a GTP-U packet, skipping optional fields and extension headers.
fn gtp_u_payload(p: &[u8]) -> Option<&[u8]> {
    let flags = *p.first()?;
    if flags >> 5 != 1 || *p.get(1)? != 0xff {
        return None;
    }
    let mut off = 8;
    if flags & 0x07 != 0 {
        let mut next = *p.get(11)?;
        off = 12;
        while next != 0 {
            let units = usize::from(*p.get(off)?);
            if units == 0 {
                return None;
            }
            off += units * 4;
            next = *p.get(off - 1)?;
        }
    }
    p.get(off..)
}

fn enter<'a>(
    kind: TunnelKind,
    link: i32,
    inner: &'a [u8],
    depth: u8,
    tunnel: &mut Option<TunnelKind>,
) -> Result<TcpPacket<'a>, Skip> {
    if depth >= MAX_DEPTH {
        return Err(Skip::Tunnel(kind));
    }
    *tunnel = Some(kind);
    decode_link(link, inner, depth + 1, tunnel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtp_with_extension_headers() {
        // flags 0x34 (v1, PT, E), T-PDU, len, TEID, seq(2) npdu(1) next=0x85,
        // one 4-byte extension with next=0, then payload.
        let mut p = vec![
            0x34, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0x85, 1, 0xaa, 0xbb, 0x00,
        ];
        p.extend_from_slice(b"IP");
        assert_eq!(gtp_u_payload(&p), Some(&b"IP"[..]));
        assert_eq!(gtp_u_payload(&[0x34, 0xff]), None);
    }

    #[test]
    fn mpls_stack_without_ip_is_counted() {
        let mut t = None;
        let r = mpls(&[0, 0, 0x01, 64, 0x00, 0x00], 0, &mut t);
        assert_eq!(r.unwrap_err(), Skip::Tunnel(TunnelKind::Mpls));
        assert_eq!(
            mpls(&[0, 0, 0, 64], 0, &mut t).unwrap_err(),
            Skip::Malformed
        );
    }
}

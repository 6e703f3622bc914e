"""A minimal pcap writer for hostile inputs (the one place tests hand-make bytes): Ethernet,
IPv4, TCP with correct lengths, and helpers that play both sides of a TCP connection."""
import struct


class PcapWriter:
    def __init__(self, path, snaplen=65535):
        self.f = open(path, "wb")
        self.f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, 1))
        self.ts = 1_700_000_000.0

    def frame(self, data, ts=None, caplen=None):
        ts = self.ts if ts is None else ts
        sec, usec = int(ts), int(round((ts - int(ts)) * 1e6))
        cap = data if caplen is None else data[:caplen]
        self.f.write(struct.pack("<IIII", sec, usec, len(cap), len(data)))
        self.f.write(cap)

    def close(self):
        self.f.close()


def checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def tcp_frame(src, dst, sport, dport, seq, ack, flags, payload=b""):
    """Ethernet + IPv4 + TCP. `src`/`dst` are dotted quads; flags a string of S A F R P."""
    bits = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10}
    fl = sum(bits[c] for c in flags)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, fl, 65535, 0, 0)
    s = bytes(int(x) for x in src.split("."))
    d = bytes(int(x) for x in dst.split("."))
    total = 20 + len(tcp) + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0x4000, 64, 6, 0, s, d)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    eth = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
    return eth + ip + tcp + payload


class Conn:
    """Both sides of one TCP connection, writing frames in order."""

    def __init__(self, w, client, server, cport, sport=25):
        self.w, self.c, self.s, self.cp, self.sp = w, client, server, cport, sport
        self.cseq, self.sseq = 1000, 5000

    def handshake(self):
        self.w.frame(tcp_frame(self.c, self.s, self.cp, self.sp, self.cseq, 0, "S"))
        self.w.frame(tcp_frame(self.s, self.c, self.sp, self.cp, self.sseq, self.cseq + 1, "SA"))
        self.cseq += 1
        self.sseq += 1
        self.w.frame(tcp_frame(self.c, self.s, self.cp, self.sp, self.cseq, self.sseq, "A"))

    def client(self, data, seq=None, mss=1400):
        for i in range(0, len(data), mss):
            chunk = data[i:i + mss]
            self.w.frame(tcp_frame(self.c, self.s, self.cp, self.sp,
                                   (self.cseq if seq is None else seq) + i, self.sseq, "PA", chunk))
        if seq is None:
            self.cseq += len(data)

    def server(self, data, mss=1400):
        for i in range(0, len(data), mss):
            chunk = data[i:i + mss]
            self.w.frame(tcp_frame(self.s, self.c, self.sp, self.cp, self.sseq + i, self.cseq, "PA", chunk))
        self.sseq += len(data)

    def close(self):
        self.w.frame(tcp_frame(self.c, self.s, self.cp, self.sp, self.cseq, self.sseq, "FA"))
        self.w.frame(tcp_frame(self.s, self.c, self.sp, self.cp, self.sseq, self.cseq + 1, "FA"))
        self.w.frame(tcp_frame(self.c, self.s, self.cp, self.sp, self.cseq + 1, self.sseq + 1, "A"))

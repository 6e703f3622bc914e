#!/usr/bin/env python3
"""Builds the fuzz seed corpora from real captures (run by `scripts/fuzz.sh seeds`).

usage: seeds.py CORPUS_DIR OUT_DIR [TLS_TESTDATA_DIR]

For every capture under CORPUS_DIR (*.pcap, *.pcapng):
- smtp:        each SMTP-looking TCP stream as chunks (one per segment, with direction), in
               the chunk format of fuzz/src/lib.rs;
- tls:         each stream carrying TLS, from the first TLS record of each direction on;
- certificate: every certificate tshark finds (tls.handshake.certificate), raw DER;
- decode:      up to 40 frames per capture, raw;
- pipeline:    the capture cut into pieces of at most 256 frames / 48 KiB, as mode-1 inputs
               (a pcap rebuilt by the target), plus captures under 32 KiB as mode-0 inputs
               (the file as it is, pcapng included).
Files are named by the SHA-1 of their content, so running it again adds nothing twice.
"""

import hashlib
import os
import struct
import subprocess
import sys
import tempfile

LINK_TYPES = [1, 0, 108, 113, 276, 101, 12, 14, 228, 229]
TIME_STEPS = [0, 1, 1_000, 100_000, 1_000_000, 11_000_000, 301_000_000, 86_400_000_000]
MAIL_PORTS = {25, 587, 465, 2525}
MAX_SEED = 64 * 1024
counts = {}


def save(out, target, data):
    if not data:
        return
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    path = os.path.join(d, name)
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(data)
        counts[target] = counts.get(target, 0) + 1


def chunk_bytes(chunks):
    out = bytearray()
    for ctrl, data in chunks:
        data = data[:0xFFFF]
        if len(out) + 3 + len(data) > MAX_SEED:
            break
        out += bytes([ctrl]) + struct.pack("<H", len(data)) + data
    return bytes(out)


def tshark(args):
    r = subprocess.run(["tshark"] + args, capture_output=True, text=True)
    return r.stdout.splitlines()


def streams_of(path):
    """{stream: [(dir, payload)]}, dir 0 = client to server."""
    rows = tshark(["-r", path, "-Y", "tcp.len>0 || tcp.flags.syn==1", "-T", "fields",
                   "-e", "tcp.stream", "-e", "ip.src", "-e", "ipv6.src", "-e", "tcp.srcport",
                   "-e", "tcp.dstport", "-e", "tcp.flags.syn", "-e", "tcp.flags.ack",
                   "-e", "tcp.payload"])
    packets = {}
    clients = {}
    for row in rows:
        f = row.split("\t")
        if len(f) < 8 or not f[0]:
            continue
        try:
            stream = int(f[0].split(",")[0])
            src = (f[1] or f[2], int(f[3].split(",")[0]))
            dport = int(f[4].split(",")[0])
        except ValueError:
            continue
        syn = f[5] in ("1", "True")
        ack = f[6] in ("1", "True")
        if syn and not ack and stream not in clients:
            clients[stream] = src
        payload = bytes.fromhex(f[7].split(",")[0]) if f[7] else b""
        packets.setdefault(stream, []).append((src, src[1], dport, payload))
    out = {}
    for stream, pkts in packets.items():
        client = clients.get(stream)
        if client is None:
            # Midstream: the side with the higher port is the client.
            _, sport, dport, _ = pkts[0]
            client = pkts[0][0] if sport > dport else None
        seq = []
        for src, sport, dport, payload in pkts:
            if not payload:
                continue
            if client is None:
                d = 0 if dport < sport else 1
            else:
                d = 0 if src == client else 1
            seq.append((d, payload))
        if seq:
            out[stream] = (seq, {pkts[0][1], pkts[0][2]})
    return out


def looks_tls(p):
    return len(p) >= 3 and ((20 <= p[0] <= 24 and p[1] == 3) or (p[0] & 0x80 and p[2] == 1))


def smtp_and_tls_seeds(path, out):
    for seq, ports in streams_of(path).values():
        first_server = next((p for d, p in seq if d == 1), b"")
        first_client = next((p for d, p in seq if d == 0), b"")
        if ports & MAIL_PORTS or first_server[:3] == b"220" or first_client[:4].upper() in (b"EHLO", b"HELO"):
            save(out, "smtp", chunk_bytes([(d, p) for d, p in seq]))
        started = [False, False]
        tls = []
        for d, p in seq:
            if not started[d] and looks_tls(p):
                started[d] = True
            if started[d]:
                tls.append((d | 0x10, p))
        if any(started):
            save(out, "tls", chunk_bytes(tls))


def cert_seeds(path, out):
    for row in tshark(["-r", path, "-Y", "tls.handshake.certificate", "-T", "fields",
                       "-e", "tls.handshake.certificate"]):
        for h in row.split(","):
            h = h.strip()
            if h:
                try:
                    save(out, "certificate", bytes.fromhex(h))
                except ValueError:
                    pass


def read_pcap(path):
    """(link, [(ts_us, caplen data, origlen)]) of a pcap or pcapng (via editcap)."""
    with open(path, "rb") as f:
        head = f.read(4)
    tmp = None
    if head == b"\x0a\x0d\x0d\x0a":
        fd, tmp = tempfile.mkstemp(suffix=".pcap")
        os.close(fd)
        r = subprocess.run(["editcap", "-F", "pcap", path, tmp], capture_output=True)
        if r.returncode != 0:
            os.unlink(tmp)
            return None, []
        path = tmp
    try:
        with open(path, "rb") as f:
            data = f.read()
    finally:
        if tmp:
            os.unlink(tmp)
    if len(data) < 24:
        return None, []
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        return None, []
    nanos = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    link = struct.unpack(e + "I", data[20:24])[0] & 0x0FFFFFFF
    frames = []
    off = 24
    while off + 16 <= len(data):
        sec, frac, caplen, orig = struct.unpack(e + "IIII", data[off:off + 16])
        off += 16
        if caplen > len(data) - off:
            break
        us = sec * 1_000_000 + (frac // 1000 if nanos else frac)
        frames.append((us, data[off:off + caplen], orig))
        off += caplen
    return link, frames


def pipeline_piece(link, frames, all_ports):
    sel = 1 | (4 if all_ports else 0)
    out = bytearray([sel, 0])
    if link in LINK_TYPES:
        out.append(LINK_TYPES.index(link))
    else:
        out += bytes([255]) + struct.pack("<H", link & 0xFFFF)
    prev = None
    for us, data, orig in frames:
        delta = 0 if prev is None else max(0, us - prev)
        prev = us
        step = max(i for i, s in enumerate(TIME_STEPS) if s <= delta)
        ctrl = step | (8 if orig > len(data) else 0)
        data = data[:0xFFFF]
        if len(out) + 3 + len(data) > MAX_SEED:
            break
        out += bytes([ctrl]) + struct.pack("<H", len(data)) + data
    return bytes(out)


def frame_seeds(path, out, all_ports):
    link, frames = read_pcap(path)
    if link is None:
        return
    for _, data, _ in frames[:40]:
        save(out, "decode", data)
    piece = []
    size = 0
    pieces = 0
    for fr in frames:
        piece.append(fr)
        size += len(fr[1]) + 3
        if len(piece) >= 256 or size > 48 * 1024:
            save(out, "pipeline", pipeline_piece(link, piece, all_ports))
            pieces += 1
            piece, size = [], 0
            if pieces >= 8:
                break
    if piece and pieces < 8:
        save(out, "pipeline", pipeline_piece(link, piece, all_ports))
    if os.path.getsize(path) < 32 * 1024:
        with open(path, "rb") as f:
            save(out, "pipeline", bytes([0 | (4 if all_ports else 0)]) + f.read())


def main():
    corpus, out = sys.argv[1], sys.argv[2]
    caps = []
    for root, _, files in os.walk(corpus):
        for name in sorted(files):
            if name.endswith((".pcap", ".pcapng", ".cap")):
                caps.append(os.path.join(root, name))
    for path in sorted(caps):
        all_ports = "/peers/" not in path
        try:
            smtp_and_tls_seeds(path, out)
            cert_seeds(path, out)
            frame_seeds(path, out, all_ports)
        except Exception as e:  # one odd capture must not stop the rest
            print(f"seeds: {path}: {e}", file=sys.stderr)
    if len(sys.argv) > 3:
        # The parsers' own test vectors: a ClientHello (client) and a server flight.
        td = sys.argv[3]
        parts = []
        for name, d in (("openssl-tls13-client-hello.bin", 0), ("postfix-tls12-server-flight.bin", 1)):
            p = os.path.join(td, name)
            if os.path.exists(p):
                with open(p, "rb") as f:
                    parts.append((d, f.read()))
        for part in parts:
            save(out, "tls", chunk_bytes([part]))
        if len(parts) == 2:
            save(out, "tls", chunk_bytes(parts))
    for t in sorted(counts):
        print(f"seeds: {t}: {counts[t]} new")


if __name__ == "__main__":
    main()

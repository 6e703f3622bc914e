"""Ground truth from tshark (Wireshark 4.0): what each TCP session on a mail port looks like.

The sensor under test and tshark read the same capture independently; this module turns tshark's
dissection into the few per-session facts the end-to-end tests compare with mailtls' records:

* the session table (tshark's `tcp.stream`): client/server address and port, the client being the
  side that sent the first SYN (or, without a SYN, the side not on a mail port);
* the clear-text SMTP dialogue: commands in order, replies in order (a multi-line reply is one
  reply), from which `starttls_offered` / `starttls_requested` / `starttls_reply` follow;
* the TLS handshake as tshark decodes it (after a 220 reply to STARTTLS, or from the first byte on
  an implicit-TLS port): ClientHello (SNI, JA3), ServerHello (negotiated version, cipher, JA3S).

Two tshark runs per capture: `-T fields` over every TCP packet for the session table, and `-T pdml`
over the SMTP and TLS packets, because PDML keeps the tree (which reply a response line belongs
to, which handshake message a cipher suite belongs to) that `-T fields` flattens away.

Run it standalone to print what it extracts:  python3 tshark_truth.py CAPTURE [PORTS]
"""
from __future__ import annotations

import dataclasses
import hashlib
import subprocess
import sys
import xml.etree.ElementTree as ET
from typing import Optional

TSHARK = "/usr/bin/tshark"
MAIL_PORTS = (25, 587, 465)
IMPLICIT_TLS_PORTS = (465,)

# Wire version code -> the name mailtls reports in `tls_version`.
VERSION_NAMES = {
    0x0300: "SSLv3",
    0x0301: "TLSv1.0",
    0x0302: "TLSv1.1",
    0x0303: "TLSv1.2",
    0x0304: "TLSv1.3",
}

# RFC 8701 GREASE values (0x0a0a, 0x1a1a, ... 0xfafa) that JA3 leaves out.
GREASE = {(b << 8) | b for b in range(0x0A, 0x100, 0x10)}

# ServerHello.random of a TLS 1.3 HelloRetryRequest (RFC 8446, 4.1.3).
HRR_RANDOM = "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c"

# Dissection preferences: reassemble TCP, SMTP lines and TLS records across segments, and
# decode the submission and implicit-TLS ports explicitly (tshark does both by default in 4.0;
# saying so keeps the truth independent of a future default).
PREFS = [
    "-o", "tcp.desegment_tcp_streams:TRUE",
    "-o", "tcp.analyze_sequence_numbers:TRUE",
    "-o", "smtp.desegment_lines:TRUE",
    "-o", "tls.desegment_ssl_records:TRUE",
    "-o", "tls.desegment_ssl_application_data:TRUE",
    "-d", "tcp.port==587,smtp",
    "-d", "tcp.port==465,tls",
]


@dataclasses.dataclass
class ClientHello:
    frame: int
    version: int
    ciphers: list
    extensions: list
    groups: list
    point_formats: list
    sni: str
    supported_versions: list
    ja3_full: str
    ja3: str


@dataclasses.dataclass
class ServerHello:
    frame: int
    version: int
    supported_version: Optional[int]
    cipher: int
    extensions: list
    ja3s_full: str
    ja3s: str
    hello_retry: bool

    @property
    def negotiated(self) -> int:
        """The version the server chose: supported_versions (TLS 1.3) else legacy version."""
        return self.supported_version if self.supported_version is not None else self.version


@dataclasses.dataclass
class Reply:
    frame: int
    code: int
    lines: list  # tshark's smtp.rsp.parameter per line (text after "NNN-"/"NNN ")


@dataclasses.dataclass
class Session:
    stream: int
    client_ip: str
    client_port: int
    server_ip: str
    server_port: int
    first_ts: float
    syn_seen: bool = False
    commands: list = dataclasses.field(default_factory=list)  # (frame, command line) in clear
    replies: list = dataclasses.field(default_factory=list)  # Reply in clear, greeting first
    client_hellos: list = dataclasses.field(default_factory=list)
    server_hellos: list = dataclasses.field(default_factory=list)
    alerts: list = dataclasses.field(default_factory=list)  # (frame, "c2s"|"s2c", description code)

    @property
    def key(self):
        return (self.client_ip, self.client_port, self.server_ip, self.server_port)

    # ---- SMTP facts -------------------------------------------------------------------------

    def _command_replies(self):
        """Pairs each clear-text command with its reply: replies come back in command order, the
        first reply being the greeting. Yields (verb, command line, Reply or None)."""
        for i, (_, line) in enumerate(self.commands):
            verb = line.split(" ", 1)[0].upper() if line else ""
            reply = self.replies[i + 1] if i + 1 < len(self.replies) else None
            yield verb, line, reply

    def _until_starttls(self):
        for verb, line, reply in self._command_replies():
            yield verb, line, reply
            if verb == "STARTTLS":
                return

    @property
    def starttls_requested(self) -> bool:
        return any(v == "STARTTLS" for v, _, _ in self._until_starttls())

    @property
    def starttls_reply(self) -> int:
        for verb, _, reply in self._until_starttls():
            if verb == "STARTTLS":
                return reply.code if reply is not None else 0
        return 0

    @property
    def ehlo_reply(self) -> Optional[Reply]:
        """The (last) positive reply to EHLO seen in clear before STARTTLS, if any."""
        found = None
        for verb, _, reply in self._until_starttls():
            if verb == "EHLO" and reply is not None and 200 <= reply.code < 300:
                found = reply
        return found

    @property
    def capabilities(self) -> list:
        reply = self.ehlo_reply
        if reply is None:
            return []
        return [ln.split(" ", 1)[0].upper() for ln in reply.lines[1:] if ln]

    @property
    def starttls_offered(self) -> Optional[bool]:
        """True/False from the EHLO reply's keyword lines; None when no EHLO reply seen in clear."""
        if self.ehlo_reply is None:
            return None
        return "STARTTLS" in self.capabilities

    # ---- TLS facts --------------------------------------------------------------------------

    @property
    def client_hello(self) -> Optional[ClientHello]:
        return self.client_hellos[0] if self.client_hellos else None

    @property
    def server_hello(self) -> Optional[ServerHello]:
        """The ServerHello that settled the handshake (a HelloRetryRequest does not)."""
        real = [sh for sh in self.server_hellos if not sh.hello_retry]
        return real[0] if real else None

    @property
    def hello_retry(self) -> bool:
        return any(sh.hello_retry for sh in self.server_hellos)

    @property
    def tls_version(self) -> str:
        sh = self.server_hello
        return VERSION_NAMES.get(sh.negotiated, f"0x{sh.negotiated:04x}") if sh else ""

    @property
    def tls_version_code(self) -> int:
        sh = self.server_hello
        return sh.negotiated if sh else 0

    @property
    def tls_cipher_code(self) -> int:
        sh = self.server_hello
        return sh.cipher if sh else 0

    @property
    def tls_sni(self) -> str:
        ch = self.client_hello
        return ch.sni if ch else ""

    @property
    def ja3_hash(self) -> str:
        ch = self.client_hello
        return ch.ja3 if ch else ""

    @property
    def ja3s_hash(self) -> str:
        sh = self.server_hello
        return sh.ja3s if sh else ""

    def facts(self) -> dict:
        """The facts compared field by field with mailtls' record of the same session."""
        return {
            "starttls_offered": self.starttls_offered,
            "starttls_requested": self.starttls_requested,
            "starttls_reply": self.starttls_reply,
            "tls_version": self.tls_version,
            "tls_cipher_code": self.tls_cipher_code,
            "tls_sni": self.tls_sni,
            "ja3_hash": self.ja3_hash,
            "ja3s_hash": self.ja3s_hash,
        }


# ---- JA3 recomputed from tshark's fields (a check on tshark's own ja3/ja3s) -----------------


def ja3_string(ch: ClientHello) -> str:
    keep = lambda xs: [x for x in xs if x not in GREASE]
    return ",".join([
        str(ch.version),
        "-".join(map(str, keep(ch.ciphers))),
        "-".join(map(str, keep(ch.extensions))),
        "-".join(map(str, keep(ch.groups))),
        "-".join(map(str, ch.point_formats)),
    ])


def ja3s_string(sh: ServerHello) -> str:
    return ",".join([str(sh.version), str(sh.cipher), "-".join(map(str, sh.extensions))])


def md5(s: str) -> str:
    return hashlib.md5(s.encode()).hexdigest()


# ---- tshark runs ------------------------------------------------------------------------------


def _port_filter(ports) -> str:
    if ports is None:
        return "tcp"
    return "tcp and (" + " or ".join(f"tcp.port=={p}" for p in ports) + ")"


def _int(s: str) -> int:
    return int(s, 0)


def _session_table(pcap, ports):
    fields = ["tcp.stream", "frame.time_epoch", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst",
              "tcp.srcport", "tcp.dstport", "tcp.flags.syn", "tcp.flags.ack"]
    cmd = [TSHARK, "-n", "-r", str(pcap), *PREFS, "-Y", _port_filter(ports), "-T", "fields",
           "-E", "separator=\t", "-E", "occurrence=l"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    sessions: dict[int, Session] = {}
    mail_ports = set(ports) if ports else set(MAIL_PORTS)
    for row in out.splitlines():
        stream, ts, s4, d4, s6, d6, sport, dport, syn, ack = (row.split("\t") + [""] * 10)[:10]
        if stream == "":
            continue
        stream, sport, dport = int(stream), int(sport), int(dport)
        src, dst = (s4 or s6), (d4 or d6)
        pure_syn = syn in ("1", "True") and ack not in ("1", "True")
        s = sessions.get(stream)
        if s is None:
            if pure_syn or (sport not in mail_ports and dport in mail_ports) or \
                    (sport not in mail_ports and dport not in mail_ports and sport > dport):
                s = Session(stream, src, sport, dst, dport, float(ts))
            else:
                s = Session(stream, dst, dport, src, sport, float(ts))
            sessions[stream] = s
        if pure_syn and not s.syn_seen:
            s.syn_seen = True
            s.client_ip, s.client_port, s.server_ip, s.server_port = src, sport, dst, dport
    return sessions


def _fields(elem, name):
    return [f.get("show", "") for f in elem.iter("field") if f.get("name") == name]


def _first(elem, name, default=""):
    vals = _fields(elem, name)
    return vals[0] if vals else default


def _dissect(pcap, ports, sessions):
    flt = "(smtp or tls) and " + _port_filter(ports)
    cmd = [TSHARK, "-n", "-r", str(pcap), *PREFS, "-Y", flt, "-T", "pdml",
           "-J", "frame ip ipv6 tcp smtp tls"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    for _, packet in ET.iterparse(proc.stdout, events=("end",)):
        if packet.tag != "packet":
            continue
        protos = {}
        for p in packet.findall("proto"):
            protos.setdefault(p.get("name"), []).append(p)
        tcp = protos.get("tcp", [None])[0]
        if tcp is None:
            packet.clear()
            continue
        stream = int(_first(tcp, "tcp.stream"))
        sport = int(_first(tcp, "tcp.srcport"))
        frame = int(_first(protos["frame"][0], "frame.number"))
        s = sessions.get(stream)
        if s is None:
            packet.clear()
            continue
        from_client = sport == s.client_port
        for smtp in protos.get("smtp", []):
            for f in smtp:
                name = f.get("name")
                if name == "smtp.command_line" and from_client:
                    s.commands.append((frame, f.get("show", "").strip()))
                elif name == "smtp.response" and not from_client:
                    code = _first(f, "smtp.response.code", "0")
                    s.replies.append(Reply(frame, int(code), _fields(f, "smtp.rsp.parameter")))
        for tls in protos.get("tls", []):
            for hs in tls.iter("field"):
                if hs.get("name") == "tls.alert_message":
                    desc = _first(hs, "tls.alert_message.desc", "")
                    if desc:
                        s.alerts.append((frame, "c2s" if from_client else "s2c", int(desc)))
                if hs.get("name") != "tls.handshake":
                    continue
                htype = _first(hs, "tls.handshake.type", "")
                if htype == "1" and from_client:
                    ext = [int(x) for x in _fields(hs, "tls.handshake.extension.type")]
                    s.client_hellos.append(ClientHello(
                        frame=frame,
                        version=_int(_first(hs, "tls.handshake.version", "0")),
                        ciphers=[_int(x) for x in _fields(hs, "tls.handshake.ciphersuite")],
                        extensions=ext,
                        groups=[_int(x) for x in _fields(hs, "tls.handshake.extensions_supported_group")],
                        point_formats=[int(x) for x in _fields(hs, "tls.handshake.extensions_ec_point_format")],
                        sni=_first(hs, "tls.handshake.extensions_server_name", ""),
                        supported_versions=[_int(x) for x in
                                            _fields(hs, "tls.handshake.extensions.supported_version")],
                        ja3_full=_first(hs, "tls.handshake.ja3_full", ""),
                        ja3=_first(hs, "tls.handshake.ja3", ""),
                    ))
                elif htype == "2" and not from_client:
                    sv = _fields(hs, "tls.handshake.extensions.supported_version")
                    random = _first(hs, "tls.handshake.random", "").replace(":", "").lower()
                    s.server_hellos.append(ServerHello(
                        frame=frame,
                        version=_int(_first(hs, "tls.handshake.version", "0")),
                        supported_version=_int(sv[0]) if sv else None,
                        cipher=_int(_first(hs, "tls.handshake.ciphersuite", "0")),
                        extensions=[int(x) for x in _fields(hs, "tls.handshake.extension.type")],
                        ja3s_full=_first(hs, "tls.handshake.ja3s_full", ""),
                        ja3s=_first(hs, "tls.handshake.ja3s", ""),
                        hello_retry=random == HRR_RANDOM,
                    ))
        packet.clear()
    proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} exited {proc.returncode}")


def read_sessions(pcap, ports=MAIL_PORTS) -> dict:
    """All TCP sessions of `pcap` on `ports` (None: every port), keyed by tshark's tcp.stream."""
    sessions = _session_table(pcap, ports)
    _dissect(pcap, ports, sessions)
    return sessions


def by_key(sessions: dict) -> dict:
    """Sessions keyed by (client_ip, client_port, server_ip, server_port)."""
    out = {}
    for s in sessions.values():
        if s.key in out:
            raise ValueError(f"4-tuple {s.key} reused by tcp.stream {out[s.key].stream} and {s.stream}")
        out[s.key] = s
    return out


def main(argv):
    pcap = argv[1]
    ports = None if len(argv) > 2 and argv[2] == "all" else \
        tuple(int(p) for p in argv[2].split(",")) if len(argv) > 2 else MAIL_PORTS
    sessions = read_sessions(pcap, ports)
    bad_ja3 = 0
    for s in sorted(sessions.values(), key=lambda s: s.stream):
        f = s.facts()
        print(f"{s.stream:4d} {s.client_ip}:{s.client_port} -> {s.server_ip}:{s.server_port} "
              f"cmds={[c for _, c in s.commands][:4]} replies={[r.code for r in s.replies][:5]} "
              f"offered={f['starttls_offered']} req={f['starttls_requested']} "
              f"reply={f['starttls_reply']} ver={f['tls_version'] or '-'} "
              f"cipher=0x{f['tls_cipher_code']:04x} sni={f['tls_sni'] or '-'} "
              f"ja3={f['ja3_hash'][:8] or '-'} ja3s={f['ja3s_hash'][:8] or '-'} "
              f"hrr={s.hello_retry} alerts={s.alerts}")
        for ch in s.client_hellos:
            if md5(ja3_string(ch)) != ch.ja3 or ja3_string(ch) != ch.ja3_full:
                bad_ja3 += 1
                print(f"     JA3 mismatch: tshark {ch.ja3_full} / recomputed {ja3_string(ch)}")
        for sh in s.server_hellos:
            if md5(ja3s_string(sh)) != sh.ja3s:
                bad_ja3 += 1
                print(f"     JA3S mismatch: tshark {sh.ja3s_full} / recomputed {ja3s_string(sh)}")
    print(f"{len(sessions)} sessions; {bad_ja3} JA3/JA3S disagreements between tshark and recomputation")


if __name__ == "__main__":
    main(sys.argv)

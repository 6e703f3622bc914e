"""Records real mail sessions that deliver messages of realistic sizes, as templates for the
benchmark's "messages" capture (docs/BENCHMARK.md).

The peers capture of ../shared/corpus holds handshakes and test messages of a few hundred
bytes: on a real MX most bytes are message bodies. This script uses the same real peers
(Postfix 3.7 configured by ../shared/tools/mailpeers.sh, swaks with OpenSSL) to deliver N
messages whose sizes follow a log-normal distribution, and captures them with tcpdump:

    python3 scripts/bench/record_messages.py OUT.pcap [--sessions 60] [--seed 1]

Root only (it installs and reconfigures the machine's Postfix, as mailpeers.sh does: only on
a disposable machine). Plan (seeded, so the same sessions and sizes every time; the TLS bytes
differ between recordings as in any two captures):
  - 85 % STARTTLS on port 25 (TLS 1.3 three times in five, else TLS 1.2), 5 % implicit TLS on
    465, 5 % submission on 587 (STARTTLS required), 5 % clear text on port 25;
  - body size log-normal with median --median-kb (16) and sigma --sigma (1.4): mean ~43 kB,
    one message in 20 above 160 kB, capped at --max-kb (2048). An assumption stated here, not
    a measurement of anybody's mail: change the parameters to match yours.
  - recorded with the loopback interface at --mtu 1500 and its segmentation offloads off
    (ethtool), so segments are the size an Ethernet link carries (loopback's default 64 kB
    MTU and TSO would make a 100 kB message three packets); both are restored afterwards.
  - bodies are base64 lines of 76 characters (what an attachment looks like on the wire) of
    seeded random bytes; the message is never stored by mailtls anyway.
"""
import argparse
import base64
import math
import os
import pathlib
import random
import shutil
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
MAILPEERS = REPO.parent / "shared" / "tools" / "mailpeers.sh"


def log(msg):
    print(f"record_messages: {msg}", file=sys.stderr, flush=True)


def plan(n, seed, median_kb, sigma, max_kb):
    """[(i, port, tls, body_bytes)], tls in tlsv1_3 / tlsv1_2 / on-connect / plain."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        r = rng.random()
        if r < 0.05:
            port, tls = 25, "plain"
        elif r < 0.10:
            port, tls = 465, "tlsv1_3" if rng.random() < 0.6 else "tlsv1_2"
        elif r < 0.15:
            port, tls = 587, "tlsv1_3" if rng.random() < 0.6 else "tlsv1_2"
        else:
            port, tls = 25, "tlsv1_3" if rng.random() < 0.6 else "tlsv1_2"
        size = int(min(max_kb, median_kb * math.exp(rng.gauss(0.0, sigma))) * 1000)
        out.append((i, port, tls, max(size, 200)))
    return out


def body(size, rng):
    """`size` bytes of base64 lines (76 characters + CRLF) of random bytes."""
    raw = rng.randbytes(size * 3 // 4 + 3)
    text = base64.b64encode(raw).decode()
    lines = [text[k:k + 76] for k in range(0, len(text), 76)]
    return ("\r\n".join(lines))[:size]


def loopback_state():
    """(mtu, {offload: on/off}) of lo, to restore after the recording."""
    mtu = int(pathlib.Path("/sys/class/net/lo/mtu").read_text())
    offloads = {}
    if shutil.which("ethtool"):
        text = subprocess.run(["ethtool", "-k", "lo"], capture_output=True, text=True).stdout
        for line in text.splitlines():
            name, _, value = line.partition(":")
            if name.strip() in ("tcp-segmentation-offload", "generic-segmentation-offload",
                                "generic-receive-offload"):
                offloads[name.strip()] = value.split()[0] if value.split() else "on"
    return mtu, offloads


ETHTOOL_NAMES = {"tcp-segmentation-offload": "tso", "generic-segmentation-offload": "gso",
                 "generic-receive-offload": "gro"}


def set_loopback(mtu, offloads):
    subprocess.run(["ip", "link", "set", "lo", "mtu", str(mtu)], check=True)
    for name, value in offloads.items():
        subprocess.run(["ethtool", "-K", "lo", ETHTOOL_NAMES[name], value],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_port(port, timeout=10):
    import socket
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out")
    p.add_argument("--sessions", type=int, default=60)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--median-kb", type=float, default=16.0)
    p.add_argument("--sigma", type=float, default=1.4)
    p.add_argument("--max-kb", type=float, default=2048.0)
    p.add_argument("--mtu", type=int, default=1500)
    a = p.parse_args()
    if os.geteuid() != 0:
        sys.exit("record_messages: needs root (installs and configures Postfix)")
    if not MAILPEERS.exists():
        sys.exit(f"record_messages: {MAILPEERS} not found")
    out = pathlib.Path(a.out).resolve()
    work = pathlib.Path(tempfile.mkdtemp(prefix="mailtls-messages-"))
    saved = loopback_state()
    if not shutil.which("ethtool"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "ethtool"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        saved = loopback_state()
    try:
        set_loopback(a.mtu, {k: "off" for k in saved[1]})
        # mailpeers.sh installs postfix/swaks/tcpdump and configures the listeners (25 any
        # TLS, 465 wrapper mode, 587 encrypt); one session is enough for that, then it stops
        # Postfix, which is started again here.
        log("configuring Postfix with ../shared/tools/mailpeers.sh")
        subprocess.run(["bash", str(MAILPEERS), str(work / "setup"), str(a.seed), "1"],
                       check=True, stdout=subprocess.DEVNULL)
        # Accept any recipient of example.test (mailpeers' sessions are refused at RCPT, so
        # they never reach DATA) and messages up to 50 MB; the discard transport drops them.
        subprocess.run(["postconf", "-e", "message_size_limit = 52428800",
                        "local_recipient_maps ="], check=True)
        subprocess.run(["postfix", "start"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_port(25):
            sys.exit("record_messages: Postfix did not come up on 127.0.0.1:25")
        sessions = plan(a.sessions, a.seed, a.median_kb, a.sigma, a.max_kb)
        rng = random.Random(a.seed + 1)
        tmp_pcap = work / "messages.pcap"
        dump = subprocess.Popen(["tcpdump", "-i", "lo", "-s", "0", "-U", "-w", str(tmp_pcap),
                                 "tcp port 25 or tcp port 587 or tcp port 465"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.5)
        total = 0
        manifest = ["i\tclient_port\tport\ttls\tbody_bytes\tswaks_exit"]
        for i, port, tls, size in sessions:
            bfile = work / "body.txt"
            bfile.write_text(body(size, rng))
            cport = 20000 + i
            cmd = ["swaks", "-s", "127.0.0.1", "-p", str(port), "--local-port", str(cport),
                   "-f", "a@client.test", "-t", "b@example.test",
                   "--helo", f"client{i}.test", "--body", f"@{bfile}"]
            if tls == "plain":
                pass
            elif port == 465:
                cmd += ["--tls-on-connect", "--tls-protocol", tls]
            else:
                cmd += ["--tls", "--tls-protocol", tls]
            rc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                timeout=120).returncode
            manifest.append(f"{i}\t{cport}\t{port}\t{tls}\t{size}\t{rc}")
            total += size
        time.sleep(1.5)
        dump.terminate()
        dump.wait(timeout=10)
        subprocess.run(["postfix", "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.copy(tmp_pcap, out)
        out.with_suffix(".manifest.tsv").write_text("\n".join(manifest) + "\n")
        failed = sum(1 for m in manifest[1:] if not m.endswith("\t0"))
        log(f"{len(sessions)} sessions, {total / 1e6:.1f} MB of bodies, {failed} swaks "
            f"failures -> {out} ({out.stat().st_size / 1e6:.1f} MB)")
    finally:
        set_loopback(*saved)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Live benchmark (root; stdlib only; started by `scripts/bench.sh live` after the build).

Two network namespaces joined by a veth pair are made here (as tests/e2e/test_live.py and
scripts/soak-live.sh do). `mailtls capture -i vB` runs in one, `tcpreplay --topspeed
--preload-pcap` replays a benchgen capture (all-mail, then mixed; 1 GB each by default, so
that the replay lasts longer than the largest ring can absorb) from the other. For each
capture and each --buffer-mb value: the rate tcpreplay reached, what the sensor saw, its drops
(kernel: ps_drop / ps_ifdrop; own: the sensor's log line, evictions, buffer overflows; and
packets lost before the capture socket, i.e. sent but never counted by the kernel's capture
socket, e.g. in the veth backlog), and the records written vs `mailtls read` of the same file.
"""
import argparse
import collections
import hashlib
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

from common import (MAILTLS, REPO, capture_summary, counters, generate, human, log, machine,
                    parse_size, warm)

# Sensor processes started here (stopped on the way out if a run is interrupted).
STARTED = []

# Fields that depend on the clock (live: arrival time; file: recorded time), as in test_live.py.
CLOCK_FIELDS = {"ts_start", "ts_end", "tls_handshake_us", "sensor"}


def args():
    p = argparse.ArgumentParser(prog="scripts/bench.sh live",
                                description="mailtls live benchmark (root; docs/BENCHMARK.md)")
    p.add_argument("--work", default="/tmp/mailtls-bench", help="cache of captures and outputs")
    p.add_argument("--mail-size", default="1G",
                   help="all-mail capture replayed (1G: ~6 M packets, several seconds at top "
                        "speed, more than the largest ring can absorb)")
    p.add_argument("--mixed-size", default="1G", help="mixed capture replayed (1G)")
    p.add_argument("--mail-percent", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--buffer-mb", default="8,32,128,256",
                   help="comma-separated --buffer-mb values tried (8,32,128,256)")
    p.add_argument("--workers", default="default", help="--workers of mailtls capture")
    p.add_argument("--runs", type=int, default=1, help="replays per capture and buffer size")
    p.add_argument("--mtu", type=int, default=9000,
                   help="veth MTU (some template frames are GRO'd, up to ~4 kB)")
    p.add_argument("--messages-size", default="1G",
                   help="all-mail capture with message bodies replayed (1G), from "
                        "samples/mail-messages.pcap")
    p.add_argument("--only", choices=["mixed", "mail", "messages"], help="one capture only")
    p.add_argument("--benchgen-arg", action="append", default=[])
    return p.parse_args()


def sh(*cmd, check=True):
    return subprocess.run(cmd, capture_output=True, text=True, check=check)


def softnet_drops():
    """Sum of the per-CPU backlog drops (/proc/net/softnet_stat, 2nd column; system-wide)."""
    total = 0
    with open("/proc/net/softnet_stat") as f:
        for line in f:
            cols = line.split()
            if len(cols) > 1:
                total += int(cols[1], 16)
    return total


def comparable(r):
    """Digest of a record less its clock fields."""
    text = json.dumps({k: v for k, v in r.items() if k not in CLOCK_FIELDS}, sort_keys=True)
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def load_jsonl(path):
    """Records of a JSONL file, as a Counter of comparable() digests."""
    out = collections.Counter()
    with open(path) as f:
        for line in f:
            if line.strip():
                out[comparable(json.loads(line))] += 1
    return out


def offline_reference(path, work):
    """`mailtls read` of the file: its records and counters."""
    out = pathlib.Path(work) / (path.stem + ".read.jsonl")
    with open(out, "w") as f:
        r = subprocess.run([str(MAILTLS), "read", str(path), "--jsonl", "-", "--no-progress"],
                           stdout=f, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise SystemExit(f"mailtls read {path} failed: {r.stderr[-1000:]}")
    recs = load_jsonl(out)
    out.unlink()
    return recs, counters(r.stderr)


def parse_tcpreplay(text):
    out = {}
    m = re.search(r"Actual: (\d+) packets \((\d+) bytes\) sent in ([0-9.]+) seconds", text)
    if m:
        out.update(sent=int(m.group(1)), sent_bytes=int(m.group(2)), secs=float(m.group(3)))
    m = re.search(r"Rated: ([0-9.]+) Bps, ([0-9.]+) Mbps, ([0-9.]+) pps", text)
    if m:
        out.update(mbps=float(m.group(2)), pps=float(m.group(3)))
    for key, pat in (("failed", r"Failed packets:\s+(\d+)"),
                     ("enobufs", r"Retried packets \(ENOBUFS\):\s+(\d+)"),
                     ("eagain", r"Retried packets \(EAGAIN\):\s+(\d+)")):
        m = re.search(pat, text)
        out[key] = int(m.group(1)) if m else 0
    return out


class Namespaces:
    """Replay namespace A (vA) and capture namespace B (vB), joined by a veth pair."""

    def __init__(self, mtu):
        tag = os.getpid() % 100000
        self.a, self.b = f"mtbA{tag}", f"mtbB{tag}"
        sh("ip", "netns", "add", self.a)
        sh("ip", "netns", "add", self.b)
        sh("ip", "link", "add", "vA", "netns", self.a, "mtu", str(mtu), "type", "veth",
           "peer", "name", "vB", "netns", self.b, "mtu", str(mtu))
        for ns, dev in ((self.a, "vA"), (self.b, "vB")):
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")

    def close(self):
        sh("ip", "netns", "del", self.a, check=False)
        sh("ip", "netns", "del", self.b, check=False)


def one_run(ns, path, buffer_mb, workers, work, tag):
    """Sensor up, replay, drain, SIGTERM: the figures of one replay."""
    jsonl = pathlib.Path(work) / f"live-{tag}.jsonl"
    errf = pathlib.Path(work) / f"live-{tag}.err"
    cmd = ["ip", "netns", "exec", ns.b, str(MAILTLS), "capture", "-i", "vB", "--jsonl",
           str(jsonl), "--buffer-mb", str(buffer_mb), "--log-interval", "1"]
    if workers != "default":
        cmd += ["--workers", workers]
    if jsonl.exists():
        jsonl.unlink()
    with open(errf, "w") as ef:
        sensor = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=ef)
    STARTED.append(sensor)
    deadline = time.time() + 20
    while "capturing on" not in errf.read_text():
        if sensor.poll() is not None or time.time() > deadline:
            raise SystemExit(f"mailtls capture did not start: {errf.read_text()}")
        time.sleep(0.1)
    time.sleep(0.5)
    soft0 = softnet_drops()
    rp = sh("ip", "netns", "exec", ns.a, "tcpreplay", "-i", "vA", "--topspeed", "--preload-pcap",
            str(path), check=False)
    soft1 = softnet_drops()
    if rp.returncode != 0:
        log(f"bench: tcpreplay failed: {rp.stderr[-800:]}")
    tr = parse_tcpreplay(rp.stdout + rp.stderr)
    # Wait until the sensor has drained its ring: two log lines in a row at 0 pps.
    deadline = time.time() + 60
    while time.time() < deadline:
        time.sleep(1)
        rates = re.findall(r"^mailtls: ([0-9.]+) pps", errf.read_text(), re.M)
        if len(rates) >= 2 and float(rates[-1]) == 0 and float(rates[-2]) == 0:
            break
    hwm = 0
    try:
        for line in open(f"/proc/{sensor.pid}/status"):
            if line.startswith("VmHWM"):
                hwm = int(line.split()[1])
    except OSError:
        pass
    sensor.send_signal(signal.SIGTERM)
    rc = sensor.wait(timeout=120)
    text = errf.read_text()
    if rc != 0:
        log(f"bench: mailtls capture exited {rc}: {text[-800:]}")
    c = counters(text)
    logs = re.findall(r"^mailtls: ([0-9.]+) pps ([0-9.]+) Mbps .*own_drops=(\d+)", text, re.M)
    return {
        "replay": tr,
        "softnet_drops": soft1 - soft0,
        "c": c,
        "peak_pps": max((float(p) for p, _, _ in logs), default=0.0),
        "own_drops": max((int(o) for _, _, o in logs), default=0),
        "records": load_jsonl(jsonl) if jsonl.exists() else collections.Counter(),
        "hwm_kib": hwm,
        "rc": rc,
    }


def main():
    a = args()
    if os.geteuid() != 0:
        raise SystemExit("bench live: needs root (network namespaces, capture)")
    for tool in ("tcpreplay", "ip"):
        if not shutil.which(tool):
            raise SystemExit(f"bench live: {tool} is not installed")
    work = os.path.abspath(a.work)
    os.makedirs(work, exist_ok=True)
    captures = []
    if a.only in (None, "mail"):
        captures.append(("mail", generate(work, "mail", parse_size(a.mail_size), a.seed,
                                          a.mail_percent, a.benchgen_arg)))
    templates = REPO / "samples" / "mail-messages.pcap"
    if a.only in (None, "messages") and templates.exists():
        captures.append(("messages", generate(
            work, "mail", parse_size(a.messages_size), a.seed, a.mail_percent,
            [*a.benchgen_arg, "--mail", str(templates), "--link-mbps", "1000"])))
    if a.only in (None, "mixed"):
        captures.append(("mixed", generate(work, "mixed", parse_size(a.mixed_size), a.seed,
                                           a.mail_percent, a.benchgen_arg)))
    buffers = [int(b) for b in a.buffer_mb.split(",") if b.strip()]
    ns = Namespaces(a.mtu)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    rows = []
    try:
        for kind, path in captures:
            warm(path)
            ref, refc = offline_reference(path, work)
            for buf in buffers:
                for i in range(a.runs):
                    log(f"bench: live {kind} --buffer-mb {buf} (run {i + 1})")
                    r = one_run(ns, path, buf, a.workers, work, f"{kind}-{buf}-{i}")
                    same = sum((r["records"] & ref).values())
                    rows.append((kind, path, buf, r, sum(ref.values()), same, refc))
                    jsonl = pathlib.Path(work) / f"live-{kind}-{buf}-{i}.jsonl"
                    if jsonl.exists():
                        jsonl.unlink()
    finally:
        for p in STARTED:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
        ns.close()

    out = machine()
    out.append(f"tcpreplay --topspeed --preload-pcap into a veth (MTU {a.mtu}) between two "
               f"namespaces; mailtls capture -i vB --log-interval 1, workers: {a.workers}")
    out.append("")
    for kind, path in captures:
        out.append(f"- {kind}: {path.name} ({human(path.stat().st_size)}). "
                   + "; ".join(capture_summary(path)))
    out.append("")
    out.append("| capture | --buffer-mb | replay pps | replay Mbps | sent | watched (file) | "
               "sensor got | kernel_drops | if_drops | lost before socket | own drops | "
               "records live / read | identical | sensor RSS MiB |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for kind, path, buf, r, nref, same, refc in rows:
        tr, c = r["replay"], r["c"]
        watched = refc.get("packets_watched", 0)
        got = c.get("packets_watched", 0)
        kd, ifd = c.get("kernel_drops", 0), c.get("kernel_if_drops", 0)
        # Packets of the watched ports that never reached the capture socket's counters.
        before = max(watched - c.get("kernel_received", 0), 0)
        own = r["own_drops"] + c.get("flows_evicted", 0) + c.get("flow_table_full", 0) \
            + c.get("buffer_overflows", 0)
        out.append(
            f"| {kind} | {buf} | {tr.get('pps', 0):,.0f} | {tr.get('mbps', 0):,.0f} | "
            f"{tr.get('sent', 0):,} | {watched:,} | {got:,} | {kd:,} | {ifd:,} | {before:,} | "
            f"{own:,} | {sum(r['records'].values()):,} / {nref:,} | {same:,} | "
            f"{r['hwm_kib'] / 1024:.1f} |")
    out.append("")
    out.append("Columns: replay pps/Mbps = tcpreplay's 'Rated' line; sent = packets tcpreplay "
               "sent (failed sends: see notes); watched (file) = packets on the mail ports in the "
               "file (`mailtls read`); sensor got = the sensor's packets_watched; kernel_drops / "
               "if_drops = ps_drop / ps_ifdrop; lost before socket = watched - ps_recv (e.g. the "
               "veth backlog); own drops = the sensor's own_drops + flows_evicted + "
               "flow_table_full + buffer_overflows; identical = live records equal to a "
               "`mailtls read` record field by field, less the clock fields.")
    notes = []
    for kind, path, buf, r, nref, same, refc in rows:
        tr = r["replay"]
        extra = []
        if tr.get("failed") or tr.get("enobufs") or tr.get("eagain"):
            extra.append(f"tcpreplay failed {tr.get('failed')}, retried ENOBUFS "
                         f"{tr.get('enobufs')}, EAGAIN {tr.get('eagain')}")
        if r["softnet_drops"]:
            extra.append(f"softnet backlog drops (system-wide) {r['softnet_drops']}")
        if r["rc"] != 0:
            extra.append(f"mailtls capture exit code {r['rc']}")
        if extra:
            notes.append(f"- {kind} --buffer-mb {buf}: " + "; ".join(extra))
    if notes:
        out.append("")
        out += notes
    clean, lossy = collections.defaultdict(set), collections.defaultdict(set)
    for kind, path, buf, r, nref, same, refc in rows:
        c = r["c"]
        lost = c.get("kernel_drops", 0) + c.get("kernel_if_drops", 0) + max(
            refc.get("packets_watched", 0) - c.get("kernel_received", 0), 0)
        (lossy if lost else clean)[kind].add(buf)
    out.append("")
    for kind, _ in captures:
        ok = sorted(clean[kind] - lossy[kind])
        bad = sorted(lossy[kind])
        out.append(f"goal: {kind}: zero drops at tcpreplay's top speed: "
                   + (f"met with --buffer-mb {', '.join(map(str, ok))}" if ok else "NOT met")
                   + (f"; drops with --buffer-mb {', '.join(map(str, bad))}" if bad else ""))
    print("\n".join(out))
    with open(os.path.join(work, "results-live.md"), "w") as f:
        f.write("\n".join(out) + "\n")
    log(f"bench: table also in {os.path.join(work, 'results-live.md')}")


if __name__ == "__main__":
    sys.exit(main())

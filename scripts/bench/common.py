"""Shared helpers of the benchmark (stdlib only): sizes, cached capture generation, timed runs
with peak RSS, machine description.

Used by scripts/bench/offline.py and scripts/bench/live.py, which scripts/bench.sh starts after
building the release binary and the examples.
"""
import hashlib
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "release"
MAILTLS = TARGET / "mailtls"
BENCHGEN = TARGET / "examples" / "benchgen"
FLOOR = TARGET / "examples" / "pcap_floor"


def parse_size(s):
    """'200M' -> 200_000_000, '2G' -> 2_000_000_000, '512MiB' -> 536_870_912 (like benchgen)."""
    m = re.fullmatch(r"\s*([0-9.]+)\s*([a-zA-Z]*)\s*", s)
    if not m:
        raise ValueError(f"bad size {s!r}")
    mult = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9,
            "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}.get(m.group(2).lower())
    if mult is None:
        raise ValueError(f"bad size unit in {s!r}")
    return int(float(m.group(1)) * mult)


def human(n):
    """Bytes as 1.00 GB / 200 MB."""
    for unit, f in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= f * 0.9995:
            return f"{n / f:.3g} {unit}"
    return f"{n} B"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def generate(work, mix, size, seed, mail_percent, extra=()):
    """Path of the capture benchgen makes for these parameters, made unless already cached.

    The cache key covers the parameters, benchgen's source and the template captures (path,
    size, mtime), so a change of any of them makes a new file."""
    work = pathlib.Path(work)
    work.mkdir(parents=True, exist_ok=True)
    args = ["--mix", mix, "--size", str(size), "--seed", str(seed),
            "--mail-percent", str(mail_percent), *extra]
    h = hashlib.sha256()
    h.update((REPO / "sensor" / "examples" / "benchgen.rs").read_bytes())
    h.update(" ".join(args).encode())
    listing = subprocess.run([str(BENCHGEN), "-o", "/dev/null", "--list-templates", *args],
                             capture_output=True, text=True, check=True).stdout
    for src in sorted({line.split("\t")[0] for line in listing.splitlines() if line}):
        st = os.stat(src)
        h.update(f"{src} {st.st_size} {st.st_mtime_ns}".encode())
    pct = f"-p{mail_percent:g}" if mix == "mixed" else ""
    out = work / f"{mix}-{human(size).replace(' ', '')}-s{seed}{pct}-{h.hexdigest()[:10]}.pcap"
    meta = out.with_suffix(".log")
    if out.exists() and meta.exists():
        log(f"bench: cached {out}")
        return out
    log(f"bench: generating {out} ...")
    tmp = out.with_suffix(".tmp")
    t0 = time.perf_counter()
    r = subprocess.run([str(BENCHGEN), "-o", str(tmp), *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"benchgen failed: {r.stderr}")
    tmp.rename(out)
    meta.write_text(r.stderr)
    log(f"bench: generated in {time.perf_counter() - t0:.1f} s: {r.stderr.strip().splitlines()[-2]}")
    return out


def capture_summary(path):
    """benchgen's last two summary lines for this capture (packets, mail share, flows)."""
    meta = pathlib.Path(path).with_suffix(".log")
    lines = meta.read_text().strip().splitlines() if meta.exists() else []
    return [l.replace("benchgen: ", "") for l in lines[-2:]]


def warm(path):
    """Reads the file once so that every tool reads it from the page cache."""
    with open(path, "rb", buffering=0) as f:
        while f.read(8 << 20):
            pass


GNU_TIME = "/usr/bin/time"


def timed(cmd, stdout=subprocess.DEVNULL, stderr=None, cwd=None):
    """Runs cmd; returns (wall seconds, peak RSS in KiB, exit code).

    The peak RSS comes from GNU time (`%M`) when installed: a process started by Python
    inherits Python's own high-water mark (Linux keeps it across fork and exec), which would
    hide anything smaller; GNU time is a small process, so its child starts near zero. Without
    GNU time, os.wait4's figure is used (at least Python's own RSS)."""
    use_time = os.access(GNU_TIME, os.X_OK)
    with tempfile.NamedTemporaryFile(mode="r", prefix="mailtls-bench-time.") as tf:
        full = [GNU_TIME, "-f", "%M", "-o", tf.name, *cmd] if use_time else list(cmd)
        t0 = time.perf_counter()
        p = subprocess.Popen(full, stdout=stdout, stderr=stderr, cwd=cwd)
        _, status, ru = os.wait4(p.pid, 0)
        secs = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        rss = ru.ru_maxrss
        if use_time:
            lines = [l for l in tf.read().splitlines() if l.strip().isdigit()]
            rss = int(lines[-1]) if lines else 0
    return secs, rss, p.returncode


def counters(text):
    """`name: value` lines (mailtls' counters, pcap_floor's output) as a dict of numbers."""
    out = {}
    for line in text.splitlines():
        m = re.fullmatch(r"\s*([a-z_0-9]+): ([0-9.]+)\s*", line)
        if m:
            v = m.group(2)
            out[m.group(1)] = float(v) if "." in v else int(v)
    return out


def machine():
    """Lines describing the machine and the code measured."""
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass

    def out(*cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO).stdout.strip()
        except OSError:
            return "?"

    commit = out("git", "rev-parse", "--short=12", "HEAD")
    dirty = out("git", "status", "--porcelain", "--untracked-files=no", "--", "sensor/src",
                "parsers/src", "storage/src")
    return [
        f"machine: {os.cpu_count()} CPUs ({out('nproc')} usable), {cpu}, {mem} RAM, "
        f"kernel {os.uname().release}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
        " (other work on the machine skews the figures)",
        f"code: git {commit}{' + uncommitted changes in sensor/parsers/storage' if dirty else ''}, "
        f"{out(str(MAILTLS), '--version') or 'mailtls'} (binary of "
        f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(MAILTLS.stat().st_mtime))} UTC), "
        f"run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
    ]

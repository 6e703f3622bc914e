"""Offline benchmark (stdlib only; started by scripts/bench.sh after the build).

Generates (cached) three captures with benchgen: mixed (a few percent of mail sessions among
bulk traffic), all-mail from the peers capture (handshakes and test messages of a few hundred
bytes: the worst case, per-session work only) and all-mail "messages" (real sessions that
deliver messages of realistic sizes, recorded by record_messages.py when root, else skipped).
Reads each from the page cache with: the floor (pcap_floor: a bare libpcap loop), the floor
with libpcap fed as mailtls feeds it (--as-mailtls: 1 MiB stdio buffer), `mailtls read`
(default workers and other --workers values), ndpiReader and tshark when installed; best of
--runs; prints a Markdown table (seconds, Gbit/s, Mpps, ratio to the floor, peak RSS,
records/s) and the RSS check (`mailtls read` of the same mix at two sizes: memory must not
grow with the file).
"""
import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

from common import (FLOOR, MAILTLS, REPO, capture_summary, counters, generate, human, log,
                    machine, parse_size, timed, warm)

TSHARK_FILTER = "smtp.req.command or smtp.response.code or tls.handshake.type"


def args():
    p = argparse.ArgumentParser(prog="scripts/bench.sh",
                                description="mailtls offline benchmark (see docs/BENCHMARK.md)")
    p.add_argument("--work", default="/tmp/mailtls-bench", help="cache of captures and outputs")
    p.add_argument("--mixed-size", default="1G", help="size of the mixed capture (default 1G)")
    p.add_argument("--mail-size", default="200M", help="size of the all-mail capture (200M)")
    p.add_argument("--mail-percent", type=float, default=5.0,
                   help="mixed capture: share of packets from mail sessions (5)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--runs", type=int, default=5, help="best of N runs (5)")
    p.add_argument("--workers", default="default,1,2",
                   help="comma-separated --workers values for mailtls read ('default' = none)")
    p.add_argument("--with-tshark", action="store_true",
                   help="also run tshark on the mixed capture (always on the all-mail one)")
    p.add_argument("--no-tshark", action="store_true", help="never run tshark")
    p.add_argument("--tshark-runs", type=int, default=1, help="tshark is slow: best of N (1)")
    p.add_argument("--no-ndpi", action="store_true", help="do not run ndpiReader")
    p.add_argument("--rss-sizes", default="200M,2G",
                   help="sizes compared by the RSS check (200M,2G)")
    p.add_argument("--no-rss-check", action="store_true", help="skip the RSS check")
    p.add_argument("--messages-size", default="1G",
                   help="size of the all-mail capture with message bodies (1G)")
    p.add_argument("--messages-templates",
                   help="template capture of mail sessions with bodies (default: "
                        "samples/mail-messages.pcap, recorded by record_messages.py)")
    p.add_argument("--no-messages", action="store_true", help="skip the messages capture")
    p.add_argument("--only", choices=["mixed", "mail", "messages"], help="one capture only")
    p.add_argument("--benchgen-arg", action="append", default=[],
                   help="extra benchgen argument, e.g. --benchgen-arg=--bulk=FILE (repeatable)")
    return p.parse_args()


def mailtls_cmd(path, workers):
    cmd = [str(MAILTLS), "read", str(path), "--jsonl", "-", "--no-progress"]
    if workers != "default":
        cmd += ["--workers", workers]
    return cmd


def run_once(name, cmd, work, parse_records):
    """One timed run: (seconds, peak RSS KiB, records or None), or None when it failed."""
    with tempfile.TemporaryFile(dir=work) as err:
        secs, maxrss, rc = timed(cmd, stderr=err)
        err.seek(0)
        text = err.read().decode(errors="replace")
    if rc != 0:
        log(f"bench: {name} failed (exit {rc}): {text[-500:]}")
        return None
    log(f"bench:   {name}: {secs:.3f} s, {maxrss / 1024:.1f} MiB")
    return secs, maxrss, counters(text).get("records") if parse_records else None


def measure_all(tools, work):
    """Runs every tool `runs` times, round-robin (so that a change of load on the machine hits
    every tool alike); per tool the best (shortest) run, the largest RSS of its runs, or None
    when a run failed. tools: [(label, cmd, runs, parse_records)]."""
    res = {label: [] for label, *_ in tools}
    failed = set()
    for i in range(max(t[2] for t in tools)):
        for label, cmd, runs, parse in tools:
            if i >= runs or label in failed:
                continue
            r = run_once(label, cmd, work, parse)
            if r is None:
                failed.add(label)
            else:
                res[label].append(r)
    out = []
    for label, *_ in tools:
        if label in failed or not res[label]:
            out.append((label, None))
            continue
        best = min(res[label], key=lambda r: r[0])
        out.append((label, {"secs": best[0], "rss_kib": max(r[1] for r in res[label]),
                            "records": best[2]}))
    return out


def row(capture, tool, r, floor, pkts, nbytes):
    if r is None:
        return f"| {capture} | {tool} | failed | | | | | |"
    s = r["secs"]
    rec = f"{r['records'] / s:,.0f}" if r.get("records") is not None else "-"
    return (f"| {capture} | {tool} | {s:.3f} | {nbytes * 8 / s / 1e9:.2f} | {pkts / s / 1e6:.2f} | "
            f"{floor / s:.2f} | {r['rss_kib'] / 1024:.1f} | {rec} |")


def messages_templates(given):
    """The template capture of the messages mix: --messages-templates, else the recording in
    samples/ (60 real Postfix/swaks sessions made by record_messages.py); None when absent."""
    path = pathlib.Path(given) if given else REPO / "samples" / "mail-messages.pcap"
    if not path.exists():
        log(f"bench: messages capture skipped: {path} not found "
            "(scripts/bench/record_messages.py records one, as root)")
        return None
    return path


def main():
    a = args()
    work = os.path.abspath(a.work)
    os.makedirs(work, exist_ok=True)
    extra = a.benchgen_arg
    captures = []
    # How each kind is generated at other sizes (the RSS check): (mix, benchgen arguments).
    recipes = {"mixed": ("mixed", extra), "mail": ("mail", extra)}
    if a.only in (None, "mixed"):
        captures.append(("mixed", generate(work, "mixed", parse_size(a.mixed_size), a.seed,
                                           a.mail_percent, extra)))
    if a.only in (None, "mail"):
        captures.append(("mail", generate(work, "mail", parse_size(a.mail_size), a.seed,
                                          a.mail_percent, extra)))
    if a.only in (None, "messages") and not a.no_messages:
        templates = messages_templates(a.messages_templates)
        if templates:
            recipes["messages"] = ("mail", [*extra, "--mail", str(templates), "--link-mbps", "1000"])
            captures.append(("messages", generate(work, "mail", parse_size(a.messages_size),
                                                  a.seed, a.mail_percent, recipes["messages"][1])))
    ndpi = None if a.no_ndpi else shutil.which("ndpiReader")
    tshark = None if a.no_tshark else shutil.which("tshark")
    workers = [w.strip() for w in a.workers.split(",") if w.strip()]

    lines = []
    goals = []
    for kind, path in captures:
        warm(path)
        log(f"bench: {kind}: {path}")
        fl = subprocess.run([str(FLOOR), str(path)], capture_output=True, text=True, check=True)
        fc = counters(fl.stdout)
        pkts, nbytes = fc["packets"], fc["bytes"]
        tools = [("floor (pcap_floor)", [str(FLOOR), str(path)], a.runs, False),
                 ("floor, libpcap fed as mailtls does", [str(FLOOR), "--as-mailtls", str(path)],
                  a.runs, False)]
        for w in workers:
            label = "mailtls read" + ("" if w == "default" else f" --workers {w}")
            tools.append((label, mailtls_cmd(path, w), a.runs, True))
        # The default output (the terminal report, no JSONL): what `mailtls read CAPTURE` costs.
        tools.append(("mailtls read, report only", [str(MAILTLS), "read", str(path), "--no-progress"],
                      a.runs, False))
        if ndpi:
            tools.append(("ndpiReader -q", [ndpi, "-i", str(path), "-q"], a.runs, False))
        if tshark and (kind == "mail" or a.with_tshark):
            tools.append(("tshark -q -Y", [tshark, "-n", "-r", str(path), "-q", "-Y",
                                           TSHARK_FILTER], a.tshark_runs, False))
        results = measure_all(tools, work)
        floor = results[0][1]
        name = f"{kind} {human(os.path.getsize(path))}"
        lines.append((name, path, pkts, nbytes, results))
        fed = results[1][1]
        if floor:
            for label, r in results:
                if label == "mailtls read" and r:
                    goal = 0.7 if kind == "mixed" else 0.5
                    ratio = floor["secs"] / r["secs"]
                    other = f"; {fed['secs'] / r['secs']:.2f} x the floor fed as mailtls does" \
                        if fed else ""
                    goals.append(f"{kind}: mailtls read = {ratio:.2f} x the floor (goal >= {goal}): "
                                 f"{'met' if ratio >= goal else 'NOT met'}{other}")

    rss_lines = []
    if not a.no_rss_check:
        sizes = [parse_size(s) for s in a.rss_sizes.split(",")]
        for kind, _ in captures:
            mix, kind_args = recipes[kind]
            for size in sizes:
                path = generate(work, mix, size, a.seed, a.mail_percent, kind_args)
                warm(path)
                r = measure_all([(f"rss {kind} {human(size)}", mailtls_cmd(path, "default"), 1,
                                  True)], work)[0][1]
                rss_lines.append((kind, path, r))

    out = []
    out += machine()
    out.append(f"ndpiReader: {ndpi or 'not installed'}; tshark: {tshark or 'not installed'}; "
               f"best of {a.runs} (tshark: {a.tshark_runs}); captures in {work}")
    out.append("")
    for name, path, pkts, nbytes, _ in lines:
        summary = "; ".join(capture_summary(path))
        out.append(f"- {name}: {path.name}: {pkts:,} packets, {human(nbytes)} of frames, "
                   f"avg {nbytes / max(pkts, 1):.0f} B/packet. {summary}")
    out.append("")
    out.append("| capture | tool | seconds | Gbit/s | Mpps | x floor | peak RSS MiB | records/s |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, path, pkts, nbytes, results in lines:
        floor = next((r["secs"] for l, r in results if l.startswith("floor") and r), None)
        for label, r in results:
            out.append(row(name, label, r, floor or float("nan"), pkts, nbytes))
    out.append("")
    out += [f"goal: {g}" for g in goals]
    if rss_lines:
        out.append("")
        out.append("RSS check (`mailtls read --jsonl - --no-progress`, default workers, one run):")
        out.append("")
        out.append("| capture | file | seconds | records | peak RSS MiB |")
        out.append("|---|---:|---:|---:|---:|")
        peak = {}
        for kind, path, r in rss_lines:
            if r is None:
                out.append(f"| {kind} | {human(path.stat().st_size)} | failed | | |")
                continue
            peak.setdefault(kind, []).append(r["rss_kib"] / 1024)
            out.append(f"| {kind} | {human(path.stat().st_size)} | {r['secs']:.2f} | "
                       f"{r['records'] or 0:,} | {r['rss_kib'] / 1024:.1f} |")
        out.append("")
        for kind, v in peak.items():
            growth = v[-1] / v[0] if v[0] else float("nan")
            out.append(f"goal: {kind}: peak RSS {' -> '.join(f'{x:.1f}' for x in v)} MiB "
                       f"(x{growth:.2f} from the smallest to the largest file); <= 64 MB: "
                       f"{'met' if max(v) <= 64e6 / 2**20 else 'NOT met'}")
    print("\n".join(out))
    with open(os.path.join(work, "results.md"), "w") as f:
        f.write("\n".join(out) + "\n")
    log(f"bench: table also in {os.path.join(work, 'results.md')}")


if __name__ == "__main__":
    sys.exit(main())

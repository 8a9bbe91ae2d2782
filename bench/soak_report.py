"""Measurements and the verdict of bench/soak.py: probes of this process, and the summary."""

from __future__ import annotations

import argparse
import math
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Sample:
    run: int
    seconds: float
    rss_mb: float
    fds: int
    db_conns: int
    db_conns_all: int | None  # PostgreSQL: every client of the database, not only ours
    mlflow_conns: int
    tmp_mb: float
    children_mb: float
    forecast_created: bool
    rows_inserted: int


@dataclass
class Verdict:
    ok: bool = True
    lines: list[str] = field(default_factory=list)

    def check(self, failed: bool, text: str) -> None:
        self.lines.append(("FAIL " if failed else "ok   ") + text)
        self.ok = self.ok and not failed


# ---------------------------------------------------------------- measurements (Linux /proc)


def rss_mb(pid: int | str = "self") -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:  # the process went away
        pass
    return 0.0


def fd_targets() -> list[str]:
    targets = []
    for name in os.listdir("/proc/self/fd"):
        try:
            targets.append(os.readlink(f"/proc/self/fd/{name}"))
        except OSError:  # closed meanwhile (the listing's own descriptor)
            continue
    return targets


def children_rss_mb() -> float:
    """RSS of all descendants of this process (Prefect's temporary server and the like)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may contain spaces and parentheses
        parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    me, total = os.getpid(), 0.0
    for pid in parents:
        p = parents.get(pid)
        while p is not None and p != me and p > 1:
            p = parents.get(p)
        if p == me:
            total += rss_mb(pid)
    return total


def dir_mb(path: Path) -> float:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                continue
    return total / 2**20


# ---------------------------------------------------------------- set-up


def fmt_conns(s: Sample) -> str:
    return str(s.db_conns) if s.db_conns_all is None else f"{s.db_conns}/{s.db_conns_all}"


HEADER = (
    f"{'run':>5} {'s/run':>6} {'RSS MB':>8} {'fds':>5} {'db conns':>9} {'mlflow conns':>12} "
    f"{'tmp MB':>7} {'children MB':>11} {'new obs':>7}"
)


def print_row(block: list[Sample]) -> None:
    """One table row: the state after the block's last run, seconds averaged over the block."""
    s = block[-1]
    timed = [x.seconds for x in block if x.run > 1] or [s.seconds]
    print(
        f"{s.run:>5} {statistics.fmean(timed):>6.2f} {s.rss_mb:>8.1f} {s.fds:>5} "
        f"{fmt_conns(s):>9} {s.mlflow_conns:>12} {s.tmp_mb:>7.1f} {s.children_mb:>11.1f} "
        f"{sum(x.rows_inserted for x in block):>7}",
        flush=True,
    )


def slope_per_run(xs: list[float], ys: list[float]) -> float:
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return 0.0 if den == 0 else sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den


def summarize(samples: list[Sample], args: argparse.Namespace, total: float, pg: bool) -> Verdict:
    verdict = Verdict()
    if len(samples) < 4:
        print("soak: too few runs to judge")
        verdict.ok = False
        return verdict
    n = len(samples)
    warmup = max(2, n // 10)
    mid = max(warmup + 1, n // 2)
    second = samples[mid - 1 :]  # runs mid..n
    baseline = samples[warmup:mid] or samples[warmup : warmup + 1]  # after warm-up, 1st half
    tail = samples[-max(3, n // 20) :]

    xs = [float(s.run) for s in second]
    rss = [s.rss_mb for s in second]
    slope = slope_per_run(xs, rss)
    start_fit = statistics.fmean(rss) + slope * (xs[0] - statistics.fmean(xs))
    rss_growth = slope * (xs[-1] - xs[0]) / start_fit if start_fit else math.inf
    later = [s.seconds for s in samples[1:]]

    def growth(attr: str) -> int:
        # A leak raises the floor; pools that fluctuate raise only the peaks.
        return int(min(getattr(s, attr) for s in tail) - max(getattr(s, attr) for s in baseline))

    first, final = samples[0], samples[-1]
    conn_label = "PostgreSQL connections (ours/all)" if pg else "SQLite connections (db fds)"
    rows = [
        ("runs", f"{n} in {total:.0f} s; first (trains) {first.seconds:.1f} s"),
        (
            "seconds per later run",
            f"mean {statistics.fmean(later):.2f}, median {statistics.median(later):.2f}, "
            f"max {max(later):.2f}",
        ),
        (
            "RSS MB first/last/max",
            f"{first.rss_mb:.1f} / {final.rss_mb:.1f} / {max(s.rss_mb for s in samples):.1f}",
        ),
        (
            f"RSS slope, runs {second[0].run}-{final.run}",
            f"{slope * 100:+.1f} MB per 100 runs ({rss_growth * 100:+.1f} % over the half)",
        ),
        ("open fds first/last", f"{first.fds} / {final.fds} (growth {growth('fds'):+d})"),
        (
            f"{conn_label} first/last",
            f"{fmt_conns(first)} / {fmt_conns(final)} (growth {growth('db_conns'):+d})",
        ),
        (
            "MLflow store connections first/last",
            f"{first.mlflow_conns} / {final.mlflow_conns} (growth {growth('mlflow_conns'):+d})",
        ),
        ("temp dir MB first/last", f"{first.tmp_mb:.1f} / {final.tmp_mb:.1f}"),
        ("child processes RSS MB first/last", f"{first.children_mb:.1f} / {final.children_mb:.1f}"),
        (
            "new observations / new forecast runs",
            f"{sum(s.rows_inserted for s in samples)} / {sum(s.forecast_created for s in samples)}",
        ),
    ]
    width = max(len(k) for k, _ in rows)
    print("\nsoak summary")
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")
    verdict.check(
        growth("fds") > args.fd_tolerance,
        f"open fds grew {growth('fds'):+d} (tolerance {args.fd_tolerance})",
    )
    for attr, label in (("db_conns", "database"), ("mlflow_conns", "MLflow store")):
        verdict.check(
            growth(attr) > args.conn_tolerance,
            f"{label} connections grew {growth(attr):+d} (tolerance {args.conn_tolerance})",
        )
    verdict.check(
        rss_growth > args.rss_tolerance,
        f"RSS grew {rss_growth * 100:+.1f} % over runs {second[0].run}-{final.run} "
        f"(tolerance {args.rss_tolerance * 100:.0f} %)",
    )
    print("\n".join("  " + line for line in verdict.lines))
    return verdict

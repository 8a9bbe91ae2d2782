"""CLI latency: how fast a user's mistake is reported, and what a one-shot ingest pays for.

    .venv/bin/python bench/cli_latency.py [--runs 5] [--before REF | --no-before]

Every measurement is a fresh ``python`` process running the ``seqcast`` console script's
``main()`` from a scratch project directory, with PREFECT_API_URL unset, as a user at a shell
runs it. Variants, all in this one run:

* ``before``: the tree at REF (default: main just before this work, :data:`BEFORE`), checked
  out in a temporary git worktree;
* ``after``: this checkout;
* ``after, make up``: this checkout with a Prefect server running as ``make up`` leaves it
  (its pid and port under ``.seqcast-servers/`` of the project directory).

Time-to-error: each user error, from the process start to its exit. One-shot ingest of an
11,520-row CSV (the size a user timed at 26 s) into a fresh migrated SQLite database, split into
(a) process start + imports (up to the point where the command needs the Prefect API), (b)
the wait for the Prefect server (its start, or what is left of it once the imports are done),
(c) the flow itself ("Beginning flow run" in Prefect's log to the process exit); "server boot"
is the server's whole start (its spawn to the flow's start), overlapped with (a) where the
command allows. Each variant's Prefect home is warmed by one untimed run first, so database
migrations of a first-ever start are not counted. Times are only compared as ratios of the
same run: the machine is shared. Writes bench/results/perf/cli_latency.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from cli_latency_table import table
from common import ROOT, load_average, target, write_result

# Runs inside each measured process: note when the Prefect server is spawned and when the
# command starts waiting for it, then run the console script as `seqcast` would.
DRIVER = """
import atexit, json, os, subprocess, sys, time
marks = {}
class TimedPopen(subprocess.Popen):
    def __init__(self, args, *a, **k):
        if "uvicorn" in list(args) and "spawn" not in marks:
            marks["spawn"] = time.time()
        super().__init__(args, *a, **k)
subprocess.Popen = TimedPopen
try:
    import flows.cli.prefect_server as ps
except ImportError:
    ps = None
if ps is not None:
    waits = ps.wait
    def wait():
        marks.setdefault("ready", time.time())
        waits()
        marks.setdefault("healthy", time.time())
    ps.wait = wait
atexit.register(lambda: open(os.environ["BENCH_MARKS"], "w").write(json.dumps(marks)))
sys.argv = ["seqcast", *sys.argv[1:]]
from flows.cli import main
main()
"""

FILE = ["--kind", "sensor", "--freq", "h"]
USER_ERRORS: list[tuple[str, list[str], str | None]] = [
    ("missing file", ["ingest", "missing.csv", *FILE], None),
    ("headerless file", ["ingest", "noheader.csv", *FILE], None),
    ("unreadable file (corrupt .gz)", ["ingest", "broken.csv.gz", *FILE], None),
    ("--kind without --freq", ["ingest", "small.csv", "--kind", "sensor"], None),
    ("bad --freq", ["ingest", "small.csv", "--kind", "sensor", "--freq", "hourly"], None),
    ("bad sources file", ["ingest", "run", "-c", "bad.yaml"], None),
    ("unknown source name", ["ingest", "run", "-c", "sources.yaml", "-s", "nope"], None),
    ("unmigrated database", ["ingest", "small.csv", *FILE], "sqlite:///empty.db"),
    (
        "unreachable database",
        ["ingest", "small.csv", *FILE],
        "postgresql+psycopg://seqcast@127.0.0.1:1/nowhere",
    ),
]


def write_inputs(where: Path) -> None:
    """The CSV a user timed (8 hourly series, 11,520 rows) and the broken inputs."""
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    lines = ["series_id,ts,value"]
    for s in range(8):
        for h in range(1440):
            ts = (start + dt.timedelta(hours=h)).isoformat()
            lines.append(f"room-{s},{ts},{20 + (h % 24) / 4 + s:.2f}")
    (where / "small.csv").write_text("\n".join(lines) + "\n")
    (where / "noheader.csv").write_text("\n".join(lines[1:50]) + "\n")
    (where / "broken.csv.gz").write_bytes(gzip.compress(b"x")[:2] + b"not gzip after its magic")
    (where / "bad.yaml").write_text("sources: [oops")
    (where / "sources.yaml").write_text(
        "sources: [{name: lab, type: files, path: 'incoming/*.csv', "
        "declare: {kind: sensor, freq: h}}]\n"
    )


def run_cli(
    tree: Path, project: Path, args: list[str], env: dict[str, str]
) -> tuple[float, int, str, dict[str, float], float]:
    """(seconds, exit code, output, marks, start time) of one CLI process."""
    marks_file = project / "marks.json"
    marks_file.unlink(missing_ok=True)
    env = {**env, "PYTHONPATH": str(tree), "BENCH_MARKS": str(marks_file)}
    t0 = time.time()
    out = subprocess.run(
        [sys.executable, "-c", DRIVER, *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    seconds = time.time() - t0
    marks = json.loads(marks_file.read_text()) if marks_file.exists() else {}
    return seconds, out.returncode, out.stdout + out.stderr, marks, t0


def flow_began(output: str, t0: float) -> float | None:
    """Wall time of Prefect's "Beginning flow run" line (its clock is local HH:MM:SS.mmm)."""
    for line in output.splitlines():
        if "Beginning flow run" in line:
            clock = dt.datetime.strptime(line.split(" |")[0].strip(), "%H:%M:%S.%f").time()
            day = dt.datetime.fromtimestamp(t0).date()
            stamp = dt.datetime.combine(day, clock).timestamp()
            return stamp + 86400 if stamp < t0 - 3600 else stamp
    return None


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 2),
        "min": round(min(values), 2),
        "max": round(max(values), 2),
    }


def base_env(project: Path, home: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_LOGGING_LEVEL": "INFO",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "SEQCAST_PROGRESS": "0",
        "SEQCAST_DATABASE_URL": f"sqlite:///{project / 'seqcast.db'}",
    }
    for name in ("PREFECT_API_URL", "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"):
        env.pop(name, None)
    return env


Variant = tuple[Path, Path, dict[str, str]]  # tree, project directory, environment


def time_errors(variants: dict[str, Variant], runs: int) -> dict[str, dict[str, Any]]:
    """Each user error, the variants taking turns run by run (the machine's load drifts)."""
    for tree, project, env in variants.values():
        # The file and option errors meet a migrated database; only the two database cases
        # meet one that is not.
        _, code, output, _, _ = run_cli(tree, project, ["db", "upgrade"], env)
        assert code == 0, output
    results: dict[str, dict[str, Any]] = {name: {} for name in variants}
    for case, args, database in USER_ERRORS:
        seen: dict[str, dict[str, Any]] = {
            name: {"seconds": [], "codes": set(), "servers": 0, "tracebacks": 0, "last": ""}
            for name in variants
        }
        for _ in range(runs):
            for name, (tree, project, env) in variants.items():
                case_env = {**env, "SEQCAST_DATABASE_URL": database} if database else env
                s, code, output, _, _ = run_cli(tree, project, args, case_env)
                got = seen[name]
                got["seconds"].append(s)
                got["codes"].add(code)
                got["servers"] += "temporary server" in output.lower().replace(
                    "prefect server", "server"
                )
                got["tracebacks"] += "Traceback" in output
                errors = [line for line in output.splitlines() if line.startswith("error:")]
                got["last"] = errors[-1] if errors else f"(no error line; exit {code})"
        for name, got in seen.items():
            results[name][case] = {
                **summary(got["seconds"]),
                "exit_codes": sorted(got["codes"]),
                "runs_with_a_server": got["servers"],
                "runs_with_a_traceback": got["tracebacks"],
                "message": got["last"][:160],
            }
            print(f"  {name}, {case}: {results[name][case]}", flush=True)
    return results


def one_shot(tree: Path, project: Path, env: dict[str, str]) -> dict[str, float]:
    """One ingest of small.csv into a fresh migrated database, split into its parts."""
    for leftover in project.glob("seqcast.db*"):
        leftover.unlink()
    run_env = {**env, "SEQCAST_DATABASE_URL": f"sqlite:///{project / 'seqcast.db'}"}
    _, code, output, _, _ = run_cli(tree, project, ["db", "upgrade"], run_env)
    assert code == 0, output
    seconds, code, output, marks, t0 = run_cli(
        tree, project, ["ingest", "small.csv", *FILE], run_env
    )
    assert code == 0 and "11520" in output.replace(",", ""), output[-3000:]
    began = flow_began(output, t0)
    ready = marks.get("ready", marks.get("spawn"))
    assert began is not None and ready is not None, (marks, output[-2000:])
    parts = {"total": seconds, "a": ready - t0, "b": began - ready, "c": t0 + seconds - began}
    if "spawn" in marks:
        parts["server_boot"] = began - marks["spawn"]
    parts["servers"] = output.lower().count("starting temporary")
    return parts


def time_one_shots(variants: dict[str, Variant], runs: int) -> dict[str, dict[str, Any]]:
    """The one-shot ingest, the variants taking turns; each warmed by one untimed run first
    (its Prefect home's database migrations are a first-ever start's cost)."""
    for variant in variants.values():
        one_shot(*variant)
    parts: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    for _ in range(runs):
        for name, variant in variants.items():
            parts[name].append(one_shot(*variant))
    results = {}
    for name, runs_parts in parts.items():
        keys = [k for k in ("total", "a", "b", "c", "server_boot") if k in runs_parts[0]]
        results[name] = {k: summary([p[k] for p in runs_parts]) for k in keys}
        results[name]["temporary_servers_per_run"] = sorted({int(p["servers"]) for p in runs_parts})
        print(f"  {name}, one-shot ingest: {results[name]}", flush=True)
    return results


def start_local_server(where: Path) -> subprocess.Popen[bytes]:
    """A Prefect server as `make up` starts it; its pid and port where seqcast looks."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    servers = where / ".seqcast-servers"
    (servers / "prefect").mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PREFECT_HOME": str(servers / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    prefect = Path(sys.executable).with_name("prefect")
    log = (servers / "prefect.log").open("wb")
    server = subprocess.Popen(
        [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    (servers / "prefect.pid").write_text(f"{server.pid}\n")
    (servers / "prefect.port").write_text(f"{port}\n")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2):
                return server
        except OSError:
            time.sleep(1)
    os.killpg(server.pid, signal.SIGTERM)
    raise RuntimeError(f"the local Prefect server did not start; see {servers / 'prefect.log'}")


def before_tree(ref: str, scratch: Path) -> Path:
    tree = scratch / "before-tree"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), ref],
        check=True,
        capture_output=True,
    )
    return tree


# main just before the CLI work of issue 15 (user errors before any Prefect server, the
# CLI's own temporary server): the tree a user timed.
BEFORE = "cbbb4df"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--before", default=None, help="git ref of the tree to compare with")
    parser.add_argument("--no-before", action="store_true")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="seqcast-cli-latency-"))
    trees = {"after": ROOT}
    ref = None
    if not args.no_before:
        ref = args.before or BEFORE
        trees = {"before": before_tree(ref, scratch), **trees}
    load_before = load_average()
    results: dict[str, Any] = {}
    local: subprocess.Popen[bytes] | None = None
    try:
        variants: dict[str, Variant] = {}
        for name, tree in [*trees.items(), ("after, make up", ROOT)]:
            project = scratch / name.replace(", ", "-").replace(" ", "-")
            project.mkdir()
            write_inputs(project)
            home = scratch / f"prefect-home-{'after' if tree == ROOT else name}"
            variants[name] = (tree, project, base_env(project, home))
        local = start_local_server(variants["after, make up"][1])
        errors = time_errors({k: v for k, v in variants.items() if k in trees}, args.runs)
        one_shots = time_one_shots(variants, args.runs)
        for name in variants:
            results[name] = {"one_shot": one_shots[name]}
            if name in errors:
                results[name]["errors"] = errors[name]
    finally:
        if local is not None:
            os.killpg(local.pid, signal.SIGTERM)
            local.wait(timeout=30)
        if ref is not None:
            remove = ["worktree", "remove", "--force", str(scratch / "before-tree")]
            subprocess.run(["git", "-C", str(ROOT), *remove], capture_output=True)
        shutil.rmtree(scratch, ignore_errors=True)
    columns, rows = table(results, [name for name, _, _ in USER_ERRORS])
    width = [max(len(str(r[i])) for r in [columns, *rows]) for i in range(len(columns))]
    for r in [columns, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, width, strict=True)))
    after_errors = results["after"]["errors"]
    slowest = max(e["max"] for e in after_errors.values())
    targets = [target("time to a user error", "every one within 2 s", slowest, 2.0, "max", "s")]
    if "before" in results:
        ratio = (
            results["before"]["one_shot"]["total"]["median"]
            / results["after"]["one_shot"]["total"]["median"]
        )
        targets.append(
            target("one-shot ingest", "before/after, median (informative)", ratio, 1.0, "min")
        )
    write_result(
        "cli_latency",
        {
            "title": "CLI latency: time to a user error, and the one-shot ingest's parts",
            "settings": {
                "runs": args.runs,
                "before": ref,
                "csv_rows": 11520,
                "load_average_1m_before": round(load_before, 2),
                "load_average_1m_after": round(load_average(), 2),
            },
            "table": {"columns": columns, "rows": rows},
            "targets": targets,
            "details": results,
            "notes": [
                "Each run is a fresh process from a scratch directory; PREFECT_API_URL unset.",
                "The variants take turns run by run, so a drift in the machine's load is shared.",
                f"Slowest time to a user error after: {slowest:.2f} s; runs that started a "
                f"Prefect server: {sum(e['runs_with_a_server'] for e in after_errors.values())}.",
            ],
        },
    )


if __name__ == "__main__":
    main()

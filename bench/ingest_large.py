"""Stream a large CSV (1 GiB by default) into the database and watch memory stay bounded.

    .venv/bin/python bench/ingest_large.py [--gib 1.0] [--database-url URL] [--keep]

Generates a long-format file (series_id, ts, value) with a bad row every 50,000 lines, loads
it through the same path as `seqcast ingest` (flows.sources.readers.read_file + db.ingest), samples
resident memory every 0.2 s during the load, and checks that every line is accounted for.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BAD_EVERY = 50_000


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def generate(path: Path, target_bytes: int, n_series: int = 200) -> int:
    """Write hourly rows round-robin over series until the file reaches target_bytes."""
    rows = 0
    block = 500_000
    start = np.datetime64("2000-01-01T00:00:00")
    rng = np.random.default_rng(0)
    with path.open("w") as fh:
        fh.write("series_id,ts,value\n")
        while fh.tell() < target_bytes:
            idx = np.arange(rows, rows + block)
            sid = np.char.add("sensor-", (idx % n_series).astype(str))
            hours = (idx // n_series).astype("timedelta64[h]")
            ts = np.char.add(np.datetime_as_string(start + hours, unit="s"), "+00:00")
            val = np.round(rng.normal(20, 5, block), 3).astype(str)
            line_no = idx + 2
            val = np.where(line_no % BAD_EVERY == 0, "n/a", val)
            fh.write(
                "\n".join(
                    np.char.add(np.char.add(np.char.add(sid, ","), np.char.add(ts, ",")), val)
                )
            )
            fh.write("\n")
            rows += block
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gib", type=float, default=1.0, help="file size in GiB")
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="seqcast-ingest-large-"))
    url = args.database_url or f"sqlite:///{tmp / 'bench.db'}"
    try:
        path = tmp / "large.csv"
        t0 = time.perf_counter()
        n_rows = generate(path, int(args.gib * 2**30))
        size_mb = path.stat().st_size / 2**20
        print(
            f"generated {path.name}: {size_mb:,.0f} MiB, {n_rows:,} rows "
            f"in {time.perf_counter() - t0:.0f} s"
        )

        from db import make_engine
        from db.ingest import ingest_chunks
        from db.migrate import upgrade
        from db.observations import SeriesSpec
        from flows.sources.readers import read_file

        engine = make_engine(url)
        upgrade(engine)
        baseline = rss_mb()
        peak = [baseline]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.2):
                peak[0] = max(peak[0], rss_mb())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t0 = time.perf_counter()
        batch = read_file(path, SeriesSpec("sensor", "h"))
        result = ingest_chunks(
            engine, batch.chunks(args.chunk_rows), batch.source, batch.content_sha256, batch.declare
        )
        seconds = time.perf_counter() - t0
        done.set()
        sampler.join()
        expected_bad = n_rows // BAD_EVERY + (1 if (n_rows + 1) % BAD_EVERY == 0 else 0)
        print(f"database: {engine.url.render_as_string(hide_password=True)}")
        print(
            f"received {result.received:,}, accepted {result.accepted:,}, "
            f"rejected {result.rejected:,} (planted about {expected_bad:,}), "
            f"inserted {result.inserted:,}"
        )
        print(f"load: {seconds:.0f} s, {result.received / seconds:,.0f} rows/s")
        print(
            f"resident memory: {baseline:,.0f} MiB before the load, peak {peak[0]:,.0f} MiB "
            f"(+{peak[0] - baseline:,.0f} MiB) for a {size_mb:,.0f} MiB file"
        )
        ok = result.received == n_rows and result.accepted + result.rejected == result.received
        print("reconciled" if ok else "COUNTS DO NOT RECONCILE")
        engine.dispose()
        return 0 if ok else 1
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())

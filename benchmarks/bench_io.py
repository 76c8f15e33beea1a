"""Benchmark loading: time and peak memory of load_events (Parquet and CSV) and open_events on ~10M events.

Usage: ``python benchmarks/bench_io.py [--users 500000] [--workdir DIR]``
(``make bench``). Each measurement runs in its own Python process, so its
peak resident memory is its own; the baseline (interpreter plus imports) is
reported beside it. Results are printed as a table and appended as JSON lines
to ``benchmarks/results/io.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from measure import run_step

HERE = Path(__file__).resolve().parent

STEP = r"""
import pandas as pd
from helpers import io
path, step = sys.argv[1], sys.argv[2]
base = hwm()
t0 = time.perf_counter()
if step == "load_events":
    events = io.load_events(path)
    rows, table_bytes = len(events), int(events.memory_usage(deep=True).sum())
elif step == "open_events+count":
    t = io.open_events(path)
    rows, table_bytes = int(t.count().execute()), None
elif step == "open_events+users_per_event":
    t = io.open_events(path)
    out = t.group_by("event").aggregate(n=t.count(), users=t.user_id.nunique()).execute()
    rows, table_bytes = int(out["n"].sum()), None
elif step == "duckdb_scan":
    import duckdb
    rows = duckdb.sql(f"SELECT count(*), count(DISTINCT user_id) FROM read_parquet('{path}')").fetchone()[0]
    table_bytes = None
seconds = time.perf_counter() - t0
peak = hwm()
print(json.dumps({"step": step, "seconds": seconds, "rows": rows, "table_bytes": table_bytes,
                  "baseline_bytes": base, "peak_bytes": peak}))
"""


def measure(path: Path, step: str) -> dict:
    return run_step(STEP, str(path), step)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=500_000)
    parser.add_argument("--workdir", default=None, help="where the generated Parquet goes (default: a temp folder)")
    args = parser.parse_args()

    from helpers.io import write_events
    from helpers.sample import generate_journeys

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_io_"))
    path = workdir / "events.parquet"
    t0 = time.perf_counter()
    j = generate_journeys(args.users, seed=0)
    generated = time.perf_counter() - t0
    write_events(j.events, path)
    csv_path = workdir / "events.csv"  # the same events as a CSV export (timestamps as ISO text)
    j.events.to_csv(csv_path, index=False)
    n_events = len(j.events)
    del j
    print(f"generated {n_events:,} events of {args.users:,} users in {generated:.1f} s; "
          f"Parquet {path.stat().st_size / 1e6:.0f} MB; {os.cpu_count()} cores, {platform.python_version()}")

    rows = [measure(path, step) for step in ("duckdb_scan", "open_events+count", "open_events+users_per_event", "load_events")]
    rows.append({**measure(csv_path, "load_events"), "step": "load_events (CSV)"})
    gb = 1024**3
    print(f"{'step':32} {'seconds':>8} {'peak GB':>8} {'above baseline GB':>18} {'table GB':>9} {'ratio':>6}")
    for r in rows:
        above = (r["peak_bytes"] - r["baseline_bytes"]) / gb
        table = r["table_bytes"] / gb if r["table_bytes"] else None
        ratio = f"{(r['peak_bytes'] - r['baseline_bytes']) / r['table_bytes']:.2f}" if r["table_bytes"] else ""
        print(f"{r['step']:32} {r['seconds']:8.2f} {r['peak_bytes'] / gb:8.2f} {above:18.2f} "
              f"{'' if table is None else f'{table:9.2f}'} {ratio:>6}")
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    with open(results / "io.jsonl", "a") as fh:
        for r in rows:
            fh.write(json.dumps({**r, "events": n_events, "users": args.users, "cores": os.cpu_count(),
                                 "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}) + "\n")


if __name__ == "__main__":
    main()

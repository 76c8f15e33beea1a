"""Benchmark compute_funnel on ~10M events from Parquet, beside a DuckDB scan of the same file.

Usage: ``python benchmarks/bench_funnel.py [--users 500000]``. Each measurement
runs in its own process (peak memory from /proc/self/status VmHWM); the scan is
``SELECT count(*), count(DISTINCT user_id)`` over the same file. ``floor`` is
the least any funnel must do: each user's first time at each step, unordered
and without a window, in plain DuckDB SQL fetched into pandas. It shows how
much of a funnel's time is reading and grouping the step events at all.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from measure import run_step

HERE = Path(__file__).resolve().parent
STEPS = ["signup", "first_value", "add_to_cart", "purchase"]

STEP = r"""
path, what, order = sys.argv[1], sys.argv[2], sys.argv[3]
import duckdb, ibis
from helpers import io
from helpers.funnel import compute_funnel
base = hwm()
t0 = time.perf_counter()
if what == "scan":
    duckdb.sql(f"SELECT count(*), count(DISTINCT user_id) FROM read_parquet('{path}')").fetchall()
elif what == "floor":
    firsts = ", ".join(f"min(CASE WHEN event = '{s}' THEN timestamp END)" for s in %s)
    names = ", ".join(f"'{s}'" for s in %s)
    duckdb.sql(f"SELECT user_id, {firsts} FROM read_parquet('{path}') WHERE event IN ({names}) GROUP BY user_id").df()
else:
    r = compute_funnel(io.open_events(path), %s, conversion_window="14D", order=order)
    users = r.table["users"].tolist()
print(json.dumps({"what": what, "order": order, "seconds": time.perf_counter() - t0, "peak_bytes": hwm(), "baseline_bytes": base}))
""" % (repr(STEPS), repr(STEPS), repr(STEPS))


def measure(path: Path, what: str, order: str = "-") -> dict:
    return run_step(STEP, str(path), what, order)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=500_000)
    parser.add_argument("--events", type=Path, help="an existing canonical Parquet file (skips generating the sample)")
    args = parser.parse_args()
    if args.events:
        path = args.events
    else:
        work = Path(tempfile.mkdtemp(prefix="bench_funnel_"))
        subprocess.run([sys.executable, "-m", "helpers.sample", "--out", str(work), "--users", str(args.users)], check=True)
        path = work / "events.parquet"
    rows = [measure(path, "scan"), measure(path, "floor")] + [measure(path, "funnel", o) for o in ("ordered", "strict", "any")]
    scan = rows[0]["seconds"]
    print(f"{os.cpu_count()} cores; steps {STEPS}, 14-day window")
    for r in rows:
        print(f"{r['what']:7} {r['order']:8} {r['seconds']:7.2f} s  {r['seconds'] / scan:5.1f}x scan  "
              f"peak {r['peak_bytes'] / 1024**3:.2f} GB (baseline {r['baseline_bytes'] / 1024**3:.2f})")
    (HERE / "results").mkdir(exist_ok=True)
    with open(HERE / "results" / "funnel.jsonl", "a") as fh:
        fh.write(json.dumps({"rows": rows, "users": args.users, "cores": os.cpu_count(),
                             "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}) + "\n")


if __name__ == "__main__":
    main()

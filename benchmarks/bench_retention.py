"""Benchmark the retention helpers and the retention notebook on ~10M events / 500k users from Parquet.

Usage: ``python benchmarks/bench_retention.py [--users 500000]``. Each step runs in
its own process (peak memory from /proc/self/status VmHWM), beside a DuckDB
``SELECT count(*)`` scan of the same file: cohort_retention (weekly),
user_lifetimes (start at signup, churn at cancellation or 30 days of
inactivity), survival_curves by 5 personas, hazard_ratios with 6 covariates,
and the whole notebook through papermill.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from measure import run_step, sample_with_truth, save_results

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

STEP = r"""
path, users_path, truth_path, what = sys.argv[1:5]
import duckdb, pandas as pd
from helpers import io, retention
base = hwm()
if what in ("survival", "cox"):  # per-user inputs are prepared outside the timing
    users = pd.read_parquet(users_path).merge(pd.read_parquet(truth_path), on="user_id")
    life = retention.user_lifetimes(io.open_events(path), start_event="signup", churn_event="subscription_cancelled",
                                    users=users)
    base = hwm()
t0 = time.perf_counter()
if what == "scan":  # the issue's baseline; on Parquet it reads only metadata
    duckdb.sql(f"SELECT count(*) FROM read_parquet('{path}')").fetchall()
elif what == "scan_users":  # a baseline that reads a column
    duckdb.sql(f"SELECT count(*), count(DISTINCT user_id) FROM read_parquet('{path}')").fetchall()
elif what == "cohorts":
    retention.cohort_retention(io.open_events(path), period="W")
elif what == "lifetimes":
    retention.user_lifetimes(io.open_events(path), start_event="signup", churn_event="subscription_cancelled")
elif what == "survival":
    retention.survival_curves(life, by="persona")
elif what == "cox":
    r = retention.hazard_ratios(life, ["persona", "acquisition_channel", "country", "device", "plan", "variant"])
    print(r.note, file=sys.stderr)
print(json.dumps({"what": what, "seconds": time.perf_counter() - t0, "peak_bytes": hwm(), "baseline_bytes": base}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=500_000)
    args = parser.parse_args()
    work = sample_with_truth(args.users, "bench_retention_")
    path, users, truth = work / "events.parquet", work / "users.parquet", work / "truth.parquet"
    rows = [run_step(STEP, str(path), str(users), str(truth), what)
            for what in ("scan", "scan_users", "cohorts", "lifetimes", "survival", "cox")]
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "papermill", str(ROOT / "notebooks" / "04_retention_survival.ipynb"),
                    str(work / "out.ipynb"), "--cwd", str(ROOT / "notebooks"), "-p", "events_path", str(path),
                    "-p", "users_path", str(users), "-y", "groups: [acquisition_channel, variant, plan]"],
                   check=True, capture_output=True)
    rows.append({"what": "notebook", "seconds": time.perf_counter() - t0, "peak_bytes": None, "baseline_bytes": None})
    scan = rows[1]["seconds"]
    print(f"{os.cpu_count()} cores; {args.users:,} users; ratios against the count(DISTINCT user_id) scan")
    for r in rows:
        mem = "" if r["peak_bytes"] is None else (f"peak {r['peak_bytes'] / 1024**3:.2f} GB "
                                                  f"(baseline {r['baseline_bytes'] / 1024**3:.2f})")
        print(f"{r['what']:10} {r['seconds']:7.2f} s  {r['seconds'] / scan:6.1f}x scan  {mem}")
    save_results("retention", rows, args.users)


if __name__ == "__main__":
    main()

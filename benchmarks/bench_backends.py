"""DuckDB beside local Spark: the same analyses on the same Parquet file, to price the portable path (#8).

Usage: ``python benchmarks/bench_backends.py [--users 40000 400000]`` (about 1M and 10M
events). For each size and backend, one child process opens the file and runs
``compute_funnel`` (ordered, 4 steps), ``cohort_retention`` (weekly),
``user_lifetimes`` and ``user_features`` in turn, timing each; Spark's session
start is timed on its own. Peak memory is the Python process's (VmHWM); Spark's
JVM is a separate process with its own heap (``--spark-memory``, default 6g),
not counted. Needs pyspark and Java, as the Spark tests do.
"""

from __future__ import annotations

import argparse
import os

import pyarrow.parquet as pq
from measure import run_step, sample_with_truth, save_results

STEP = r"""
path, backend, spark_memory = sys.argv[1], sys.argv[2], sys.argv[3]
import ibis
from helpers import io
from helpers.funnel import compute_funnel
from helpers.personas import user_features
from helpers.retention import cohort_retention, user_lifetimes
timings = {}
t0 = time.perf_counter()
if backend == "pyspark":
    from pyspark.sql import SparkSession
    session = (SparkSession.builder.master("local[*]").appName("bench").config("spark.sql.session.timeZone", "UTC")
               .config("spark.driver.memory", spark_memory).config("spark.ui.enabled", "false").getOrCreate())
    events = io.open_events(ibis.pyspark.connect(session).read_parquet(path))
else:
    events = io.open_events(path)
# The raw sample's pre-login rows have no user_id; the analyses take identified rows (as without stitching).
events = events.filter(events.user_id.notnull())
timings["open"] = time.perf_counter() - t0
steps = {
    "compute_funnel": lambda: compute_funnel(events, ["signup", "first_value", "add_to_cart", "purchase"],
                                             conversion_window="14D").table,
    "cohort_retention": lambda: cohort_retention(events, period="W").counts,
    "user_lifetimes": lambda: user_lifetimes(events, start_event="signup", churn_event="subscription_cancelled",
                                             inactivity="30D"),
    "user_features": lambda: user_features(events),
}
rows = {}
for name, run in steps.items():
    t0 = time.perf_counter()
    rows[name] = len(run())
    timings[name] = time.perf_counter() - t0
print(json.dumps({"backend": backend, "seconds": timings, "result_rows": rows, "peak_bytes": hwm()}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[40_000, 400_000])
    parser.add_argument("--spark-memory", default="6g")
    args = parser.parse_args()
    rows = []
    for users in args.users:
        path = sample_with_truth(users, "bench_backends_") / "events.parquet"
        n_events = pq.read_metadata(path).num_rows
        duck = run_step(STEP, str(path), "duckdb", args.spark_memory)
        spark = run_step(STEP, str(path), "pyspark", args.spark_memory)
        if duck["result_rows"] != spark["result_rows"]:  # equality of values is tests/test_spark.py's job
            print(f"note: result sizes differ: DuckDB {duck['result_rows']}, Spark {spark['result_rows']}")
        for r in (duck, spark):
            r.update(users=users, events=n_events)
            rows.append(r)
    print(f"{os.cpu_count()} cores")
    names = list(rows[0]["seconds"])
    print(f"{'events':>11} {'backend':8} " + " ".join(f"{n:>16}" for n in names))
    for r in rows:
        print(f"{r['events']:>11,} {r['backend']:8} " + " ".join(f"{r['seconds'][n]:15.2f}s" for n in names))
    save_results("backends", rows, max(args.users))


if __name__ == "__main__":
    main()

"""Benchmark compute_funnel beside ClickHouse's windowFunnel and a DuckDB scan, on the same Parquet file, in one run.

Usage: ``python benchmarks/bench_funnel.py [--users 500000] [--runs 3] [--events FILE]``
(``make bench`` installs ``chdb`` from ``benchmarks/requirements.txt`` first;
it is a benchmark-only dependency). The data is the sample's export for
``--users`` people, stitched into canonical events (``stitch_identities``) and
written once to Parquet: every engine below reads that file.

Each measurement runs in its own fresh process (peak memory from
/proc/self/status VmHWM) and includes everything the caller waits for (opening
the file, compiling the query, the result as a pandas or Arrow table). Module
imports come before the clock for every engine (``chdb``, ``duckdb``, and
ibis's DuckDB backend, which ibis imports lazily on first use): a notebook
pays them once, not on every rerun.

- ``scan``: DuckDB ``SELECT count(*), count(DISTINCT user_id)`` over the file.
- ``windowFunnel users``: ClickHouse (chdb) ``windowFunnel(1209600)(toDateTime(timestamp), event='signup', ...)``
  grouped by user, the per-user levels fetched as Arrow (what compute_funnel's
  ``per_user`` gives); ``windowFunnel levels``: the same, counted per level in
  ClickHouse (the dashboard number only).
- ``fast`` / ``portable``: compute_funnel ordered, strict and any with
  ``engine="fast"`` (the DuckDB default) and ``engine="portable"`` (the ibis
  plan that Spark runs).

Runs are interleaved (every measurement once, then again) so a busy machine
slows them alike; the report shows the median of ``--runs`` and each run's
ratio to ``windowFunnel users``. Counts: windowFunnel's "users at level >= k"
beside the ordered funnel's step k. windowFunnel reads seconds
(``toDateTime``), so events in the same second tie there; the check is also
run on ``toUInt64(toUnixTimestamp64Micro(timestamp))`` with the window in
microseconds (windowFunnel takes only integer, Date or DateTime timestamps),
where the two rules coincide on this data (no exclusions, no property filters).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from measure import run_step, save_results

STEPS = ["signup", "first_value", "add_to_cart", "purchase"]
WINDOW_S = 14 * 86400

STEP = r"""
path, what, order = sys.argv[1], sys.argv[2], sys.argv[3]
steps = %s
# imports before the clock, as in a notebook whose first cell has run
if what == "scan":
    import duckdb
elif what.startswith("windowFunnel"):
    import chdb
else:
    import ibis.backends.duckdb  # noqa: F401  (ibis loads its backend module lazily, ~0.2 s, once per process)
    from helpers import io
    from helpers.funnel import compute_funnel
base = hwm()
t0 = time.perf_counter()
extra = {}
if what == "scan":
    duckdb.sql(f"SELECT count(*), count(DISTINCT user_id) FROM read_parquet('{path}')").fetchall()
elif what.startswith("windowFunnel"):
    precise = order == "us"
    ts, window = (("toUInt64(toUnixTimestamp64Micro(timestamp))", %d * 10**6) if precise
                  else ("toDateTime(timestamp)", %d))
    conds = ", ".join(f"event = '{s}'" for s in steps)
    per_user = f"SELECT user_id, windowFunnel({window})({ts}, {conds}) AS level FROM file('{path}', Parquet) GROUP BY user_id"
    if what == "windowFunnel users":
        got = chdb.query(per_user, "ArrowTable")
        levels = got.column("level").to_numpy()
        extra = {"users": [int((levels >= k).sum()) for k in range(1, len(steps) + 1)]}
    else:
        got = chdb.query(f"SELECT level, count() AS n FROM ({per_user}) GROUP BY level", "ArrowTable").to_pydict()
        by_level = dict(zip(got["level"], got["n"]))
        extra = {"users": [int(sum(v for l, v in by_level.items() if l >= k)) for k in range(1, len(steps) + 1)]}
else:
    r = compute_funnel(io.open_events(path), steps, conversion_window="14D", order=order, engine=what)
    extra = {"users": r.table["users"].tolist(), "per_user_rows": len(r.per_user)}
print(json.dumps({"what": what, "order": order, "seconds": time.perf_counter() - t0, "peak_bytes": hwm(),
                  "baseline_bytes": base, **extra}))
""" % (repr(STEPS), WINDOW_S, WINDOW_S)

MEASUREMENTS = [("scan", "-"), ("windowFunnel users", "s"), ("windowFunnel levels", "s"),
                ("fast", "ordered"), ("fast", "strict"), ("fast", "any"),
                ("portable", "ordered"), ("portable", "strict"), ("portable", "any")]


def canonical_file(users: int) -> Path:
    """The sample's export for ``users`` people, stitched into canonical events, as one Parquet file."""
    work = Path(tempfile.mkdtemp(prefix="bench_funnel_"))
    subprocess.run([sys.executable, "-m", "helpers.sample", "--out", str(work), "--users", str(users)], check=True)
    subprocess.run([sys.executable, "-c", (
        "import sys, ibis; from helpers.identity import stitch_identities; "
        "stitch_identities(ibis.duckdb.connect().read_parquet(sys.argv[1])).events.to_parquet(sys.argv[2])"),
        str(work / "events.parquet"), str(work / "canonical.parquet")], check=True)
    return work / "canonical.parquet"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=500_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--events", type=Path, help="an existing canonical Parquet file (skips generating the sample)")
    parser.add_argument("--skip-portable", action="store_true", help="leave out the portable engine (at 50M events)")
    args = parser.parse_args()
    path = args.events or canonical_file(args.users)
    try:
        import chdb  # noqa: F401 - only checked for here; each step imports what it runs
    except ImportError:
        sys.exit("chdb is not installed: pip install -r benchmarks/requirements.txt (make bench does)")
    todo = [m for m in MEASUREMENTS if not (args.skip_portable and m[0] == "portable")]
    runs: dict[tuple, list[dict]] = {m: [] for m in todo}
    for _ in range(args.runs):
        for m in todo:
            runs[m].append(run_step(STEP, str(path), *m))
    precise = run_step(STEP, str(path), "windowFunnel users", "us")

    events = run_step(r"""
import duckdb
n, u = duckdb.sql(f"SELECT count(*), count(DISTINCT user_id) FROM read_parquet('{sys.argv[1]}')").fetchone()
print(json.dumps({"events": n, "users": u}))
""", str(path))
    peer = [r["seconds"] for r in runs[("windowFunnel users", "s")]]
    print(f"{os.cpu_count()} cores; {events['events']:,} events, {events['users']:,} users; steps {STEPS}, "
          f"14-day window; median of {args.runs} interleaved runs")
    print(f"{'':28} {'median s':>9} {'x windowFunnel users (each run)':>34} {'peak GB':>8}")
    for m in todo:
        secs = [r["seconds"] for r in runs[m]]
        ratios = " ".join(f"{s / p:5.2f}" for s, p in zip(secs, peer))
        peak = max(r["peak_bytes"] for r in runs[m]) / 1024**3
        print(f"{m[0] + ' ' + m[1]:28} {statistics.median(secs):9.2f} {ratios:>34} {peak:8.2f}")
    print("users reaching step k:")
    print(f"  windowFunnel, seconds        {runs[('windowFunnel users', 's')][0]['users']}")
    print(f"  windowFunnel, microseconds   {precise['users']}")
    for eng in ("fast", "portable"):
        if (eng, "ordered") in runs:
            print(f"  compute_funnel {eng:9} ordered {runs[(eng, 'ordered')][0]['users']}")
    save_results("funnel", [{**r, "run": i} for m in todo for i, r in enumerate(runs[m])] + [precise],
                 events["users"])


if __name__ == "__main__":
    main()

"""Benchmark conversion_drivers beside the funnel it explains, on the same Parquet file, in one run.

Usage: ``python benchmarks/bench_drivers.py [--users 500000] [--runs 3] [--events FILE]``. The data is the
sample's export for ``--users`` people, stitched into canonical events; its everyday events (``page_view``,
``feature_used``, ``search``) are split into 12 variants each (``page_view_0`` ... by a hash of user and time),
so the funnel's people did about 50 distinct event names. Each measurement runs in a fresh process and includes
opening the file:

- ``funnel``: ``compute_funnel`` ordered, 4 steps, 14 days;
- ``drivers events``: that funnel, then ``conversion_drivers(candidates=("event",))``, timed apart;
- ``drivers all``: the same with event properties too (``channel``, ``page``, ``onboarding_step``).

The issue's bar: drivers over 50 candidate events within 3x the funnel itself.
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

STEP = r"""
path, what = sys.argv[1], sys.argv[2]
import ibis.backends.duckdb  # noqa: F401  (loaded lazily by ibis; once per process, as in a notebook)
from helpers import io
from helpers.funnel import compute_funnel, conversion_drivers
steps = %r
base = hwm()
t0 = time.perf_counter()
r = compute_funnel(io.open_events(path), steps, conversion_window="14D")
t1 = time.perf_counter()
extra = {"funnel_seconds": t1 - t0}
if what != "funnel":
    kinds = ("event",) if what == "drivers events" else ("event", "event_property")
    d = conversion_drivers(r.events, r, candidates=kinds)
    extra.update(candidates=len(d), events=int((d["candidate_type"] == "event").sum()), dropped=d.attrs["dropped"])
seconds = time.perf_counter() - (t1 if what != "funnel" else t0)
print(json.dumps({"what": what, "seconds": seconds, "peak_bytes": hwm(), "baseline_bytes": base, **extra}))
""" % (STEPS,)


def fifty_events(canonical: Path) -> Path:
    """The canonical file with its everyday events split into 12 names each (about 50 names in all)."""
    out = canonical.with_name("canonical_50_events.parquet")
    subprocess.run([sys.executable, "-c", (
        "import sys, duckdb; duckdb.sql(f\"\"\"COPY (SELECT * REPLACE (CASE WHEN event IN ('page_view', "
        "'feature_used', 'search') THEN event || '_' || (hash(user_id || CAST(epoch_us(timestamp) AS VARCHAR)) "
        "% 12)::VARCHAR ELSE event END AS event) FROM read_parquet('{sys.argv[1]}')) TO '{sys.argv[2]}' "
        "(FORMAT parquet)\"\"\")"), str(canonical), str(out)], check=True)
    return out


def canonical_file(users: int) -> Path:
    work = Path(tempfile.mkdtemp(prefix="bench_drivers_"))
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
    args = parser.parse_args()
    path = fifty_events(args.events or canonical_file(args.users))
    rows = [run_step(STEP, str(path), what) for _ in range(args.runs)
            for what in ("funnel", "drivers events", "drivers all")]
    funnel = [r["seconds"] for r in rows if r["what"] == "funnel"]
    print(f"{os.cpu_count()} cores; {path}; median of {args.runs} interleaved runs")
    for what in ("funnel", "drivers events", "drivers all"):
        got = [r for r in rows if r["what"] == what]
        ratios = " ".join(f"{r['seconds'] / f:5.2f}" for r, f in zip(got, funnel))
        extra = f"  {got[0]['candidates']} candidates ({got[0]['events']} events)" if what != "funnel" else ""
        print(f"{what:15} {statistics.median(r['seconds'] for r in got):6.2f} s   x funnel (each run) {ratios}   "
              f"peak {max(r['peak_bytes'] for r in got) / 1024**3:.2f} GB{extra}")
    save_results("drivers", rows, args.users)


if __name__ == "__main__":
    main()

"""Benchmark identity stitching beside the ordered funnel, on the same exported Parquet file, in one run.

Usage: ``python benchmarks/bench_identity.py [--users 500000]``. The sample as a
tracking export writes it (``Journeys.export``: about 30% of rows anonymous,
before signup or at the start of a second-device session; shared laptops).
Each measurement runs in its own process (peak memory from VmHWM):

- ``stitch``: ``stitch_identities`` on the file as an ibis table, the re-keyed
  events then counted with their distinct persons (so that the re-keying join
  runs, not only the identity map);
- ``funnel``: ``compute_funnel`` (ordered, 4 steps, 14 days) on the same file;
- ``scan``: ``count(*)`` and ``count(DISTINCT anonymous_id)`` in plain DuckDB.

The issue's bar: stitching within 2x the ordered funnel.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from measure import run_step, save_results

STEP = r"""
path, what = sys.argv[1], sys.argv[2]
import duckdb, ibis
from helpers.funnel import compute_funnel
from helpers.identity import stitch_identities
base = hwm()
t0 = time.perf_counter()
extra = {}
if what == "scan":
    duckdb.sql(f"SELECT count(*), count(DISTINCT anonymous_id) FROM read_parquet('{path}')").fetchall()
else:
    t = ibis.duckdb.connect().read_parquet(path)
    if what == "stitch":
        s = stitch_identities(t)
        got = s.events.aggregate(n=s.events.count(), persons=s.events.user_id.nunique()).execute().iloc[0]
        extra = {"rows": int(got["n"]), "persons": int(got["persons"]),
                 **{m: int(v) for m, v in zip(s.report["measure"], s.report["value"])}}
    else:
        r = compute_funnel(t, ["signup", "first_value", "add_to_cart", "purchase"], conversion_window="14D")
        extra = {"users": r.table["users"].tolist()}
print(json.dumps({"what": what, "seconds": time.perf_counter() - t0, "peak_bytes": hwm(), "baseline_bytes": base, **extra}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=500_000)
    parser.add_argument("--events", type=Path, help="an existing export of the sample with --users users "
                        "(events.parquet as helpers.sample writes it), instead of generating one")
    args = parser.parse_args()
    path = args.events
    if path is None:
        work = Path(tempfile.mkdtemp(prefix="bench_identity_"))
        subprocess.run([sys.executable, "-m", "helpers.sample", "--out", str(work), "--users", str(args.users)],
                       check=True)
        path = work / "events.parquet"
    rows = [run_step(STEP, str(path), w) for w in ("scan", *("funnel", "stitch") * 3)]
    print(f"{os.cpu_count()} cores, {args.users:,} users")
    for r in rows:
        print(f"{r['what']:7} {r['seconds']:7.2f} s  peak {r['peak_bytes'] / 1024**3:.2f} GB "
              f"(baseline {r['baseline_bytes'] / 1024**3:.2f})"
              + (f"  {r['rows']:,} rows, {r['ids']:,} ids -> {r['persons']:,} persons, "
                 f"{r['merges refused']:,} refused" if r["what"] == "stitch" else ""))
    import statistics

    times = {w: [r["seconds"] for r in rows if r["what"] == w] for w in ("funnel", "stitch")}
    print(f"stitch / ordered funnel = {statistics.median(times['stitch']) / statistics.median(times['funnel']):.2f} "
          f"(medians of three, alternating), {min(times['stitch']) / min(times['funnel']):.2f} (best of three)")
    save_results("identity", rows, args.users)


if __name__ == "__main__":
    main()

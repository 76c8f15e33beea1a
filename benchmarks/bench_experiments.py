"""Benchmark readout() beside a hand-written DuckDB query and the ordered funnel, on the same Parquet file, in one run.

Usage: ``python benchmarks/bench_experiments.py [--users 500000] [--runs 3] [--events FILE]``. The data is the
sample's export for ``--users`` people stitched into canonical events. Every person is assigned a week after their
first event (so the pre period holds their first week) to the sample's ``variant`` (users.parquet; persons who
never signed up, by a hash of their id), so 500k users give 500k assigned persons (those assigned after the end of
the data are left out, as the readout's rules say). Each measurement
runs in a fresh process and includes opening the file and reading the assignments (``load_assignments``, as the
README and the experiment notebook do):

- ``readout``: three metrics (conversion to first_value, page_view count, purchase value) over a 14-day post
  period with a 14-day pre period, CUPED, Holm (``sequential=False``);
- ``readout, sequential``: the same with always-valid intervals and the daily view;
- ``duckdb by hand``: the peer an analyst would write: one DuckDB query for each person's three metrics over
  the post and pre windows, then CUPED and Welch tests in numpy on the result;
- ``funnel``: the ordered 4-step ``compute_funnel`` (14-day window) on the same file: the issue's yardstick
  (readout <= 2x funnel).

It also reports how far the readout's CUPED-adjusted differences are from the hand-written ones (they must agree).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from measure import run_step, save_results

OURS = r"""
path, assignments, what = sys.argv[1], sys.argv[2], sys.argv[3]
import ibis.backends.duckdb  # noqa: F401
import pandas as pd
from helpers import io
from helpers.experiments import conversion, count, load_assignments, readout, value
from helpers.funnel import compute_funnel
base = hwm()
t0 = time.perf_counter()
ev = io.open_events(path)
extra = {}
if what == "funnel":
    compute_funnel(ev, ["signup", "first_value", "add_to_cart", "purchase"], conversion_window="14D")
else:
    a = load_assignments(assignments)  # as the README and the experiment notebook read them
    r = readout(ev, a, [conversion("first_value"), count("page_view"), value("purchase")], control="A",
                post_period="14D", pre_period="14D", sequential=what == "readout, sequential")
    adj = r.results[r.results["adjustment"] == "cuped"].set_index("metric")
    extra = {"difference": adj["difference"].to_dict(), "reduction": adj["variance_reduction"].to_dict(),
             "persons": int(adj["persons_control"].iloc[0] + adj["persons_variant"].iloc[0])}
seconds = time.perf_counter() - t0
print(json.dumps({"what": what, "seconds": seconds, "peak_bytes": hwm(), "baseline_bytes": base, **extra}))
"""

PEER = r"""
path, assignments = sys.argv[1], sys.argv[2]
import duckdb, numpy as np
base = hwm()
t0 = time.perf_counter()
con = duckdb.connect()
d = con.sql(f'''
with a as (select user_id, variant, assigned_at from read_parquet('{assignments}')),
e as (select user_id, event, timestamp, value from read_parquet('{path}')
      where event in ('first_value', 'page_view', 'purchase'))
select a.variant,
  (a.assigned_at + interval 14 day <= (select max(timestamp) from read_parquet('{path}'))) done,
  max(case when e.event = 'first_value' and e.timestamp >= a.assigned_at
           and e.timestamp <= a.assigned_at + interval 14 day then 1 else 0 end) conv,
  sum(case when e.event = 'page_view' and e.timestamp >= a.assigned_at
           and e.timestamp <= a.assigned_at + interval 14 day then 1 else 0 end) n_views,
  sum(case when e.event = 'purchase' and e.timestamp >= a.assigned_at
           and e.timestamp <= a.assigned_at + interval 14 day then coalesce(e.value, 0) else 0 end) spend,
  max(case when e.event = 'first_value' and e.timestamp < a.assigned_at
           and e.timestamp >= a.assigned_at - interval 14 day then 1 else 0 end) conv_pre,
  sum(case when e.event = 'page_view' and e.timestamp < a.assigned_at
           and e.timestamp >= a.assigned_at - interval 14 day then 1 else 0 end) n_views_pre,
  sum(case when e.event = 'purchase' and e.timestamp < a.assigned_at
           and e.timestamp >= a.assigned_at - interval 14 day then coalesce(e.value, 0) else 0 end) spend_pre
from a left join e using (user_id)
where a.assigned_at <= (select max(timestamp) from read_parquet('{path}'))  -- assigned after the end: left out
group by a.user_id, a.variant, a.assigned_at''').fetchnumpy()
diff = {}
for name, y, x in (("first_value", "conv", "conv_pre"), ("page_view count", "n_views", "n_views_pre"),
                   ("purchase value", "spend", "spend_pre")):
    keep = d["done"] if name == "first_value" else np.ones(len(d["done"]), bool)  # conversions: post period elapsed
    y, x, b = d[y][keep].astype(float), d[x][keep].astype(float), d["variant"][keep] == "B"
    vx = x.var(ddof=1)
    theta = np.cov(y, x)[0, 1] / vx if vx > 0 else 0.0
    adj = y - theta * (x - x.mean())
    diff[name] = float(adj[b].mean() - adj[~b].mean())
seconds = time.perf_counter() - t0
print(json.dumps({"what": "duckdb by hand", "seconds": seconds, "peak_bytes": hwm(), "baseline_bytes": base,
                  "difference": diff, "persons": int(d["done"].sum())}))
"""


def prepare(users: int, events: Path | None, sample: Path | None = None) -> tuple[Path, Path]:
    work = Path(tempfile.mkdtemp(prefix="bench_experiments_"))
    if sample is None:
        subprocess.run([sys.executable, "-m", "helpers.sample", "--out", str(work), "--users", str(users)], check=True)
    else:  # an existing sample folder (events.parquet, users.parquet); new files go to the temporary folder
        for name in ("events.parquet", "users.parquet"):
            (work / name).symlink_to(sample.resolve() / name)
    if events is None:
        events = work / "canonical.parquet"
        subprocess.run([sys.executable, "-c", (
            "import sys, ibis; from helpers.identity import stitch_identities; "
            "stitch_identities(ibis.duckdb.connect().read_parquet(sys.argv[1])).events.to_parquet(sys.argv[2])"),
            str(work / "events.parquet"), str(events)], check=True)
    subprocess.run([sys.executable, "-c", (
        "import sys, duckdb; duckdb.sql(f\"copy (select e.user_id, coalesce(any_value(u.variant), "
        "case when hash(e.user_id) % 2 = 0 then 'A' else 'B' end) variant, "
        "min(e.timestamp) + interval 7 day assigned_at "
        "from read_parquet('{sys.argv[1]}') e left join read_parquet('{sys.argv[2]}') u using (user_id) "
        "group by e.user_id) to '{sys.argv[3]}' (format parquet)\")"),
        str(events), str(work / "users.parquet"), str(work / "assignments.parquet")], check=True)
    return events, work / "assignments.parquet"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=500_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--events", type=Path, help="an existing canonical Parquet file of the sample with --users users")
    parser.add_argument("--sample", type=Path, help="an existing sample folder (helpers.sample --out) with --users "
                        "users, instead of generating one")
    args = parser.parse_args()
    events, assignments = prepare(args.users, args.events, args.sample)
    rows = []
    for _ in range(args.runs):  # interleaved, so a busy moment hits every contender
        rows.append(run_step(PEER, events, assignments))
        for what in ("readout", "readout, sequential", "funnel"):
            rows.append(run_step(OURS, events, assignments, what))
    funnel = statistics.median(r["seconds"] for r in rows if r["what"] == "funnel")
    peer = statistics.median(r["seconds"] for r in rows if r["what"] == "duckdb by hand")
    for what in ("duckdb by hand", "readout", "readout, sequential", "funnel"):
        mine = [r for r in rows if r["what"] == what]
        s = [r["seconds"] for r in mine]
        print(f"{what:22s} median {statistics.median(s):6.2f} s ({min(s):.2f}-{max(s):.2f}), "
              f"{statistics.median(s) / funnel:4.2f}x the funnel, {statistics.median(s) / peer:4.2f}x by hand, "
              f"peak {max(r['peak_bytes'] for r in mine) / 2**30:.2f} GB")
    ours = next(r for r in rows if r["what"] == "readout")
    theirs = next(r for r in rows if r["what"] == "duckdb by hand")
    print(f"persons: readout {ours['persons']:,}, by hand {theirs['persons']:,}")
    for m, d in theirs["difference"].items():
        print(f"{m:16s} CUPED difference: readout {ours['difference'][m]:+.6g}, by hand {d:+.6g}; "
              f"variance reduction {ours['reduction'][m]:.1%}")
    save_results("experiments", rows, args.users)


if __name__ == "__main__":
    main()

"""Benchmark customer value end to end: purchase summary, BG/NBD and Gamma-Gamma fits and discounted values.

Usage: ``python benchmarks/bench_value.py [--customers 500000] [--runs 3]``. The events are purchases simulated
from the BG/NBD process (``helpers.value.simulate_bgnbd_purchases``: r 1.6, alpha 30, a 0.6, b 12, two years, half
the customers acquired in the first year; Gamma-Gamma spend), written once to Parquet; about 20 purchases per
customer, so 500k customers give about 10M events. Each measurement runs in a fresh process and includes opening
the file:

- ``value pipeline``: ``purchase_summary`` (daily periods) + ``fit_bgnbd`` + ``fit_gamma_gamma`` + ``customer_value``
  (365 days), with each step's time; the issue's target is under 60 s on 2 cores;
- ``duckdb summary by hand``: the peer for the event-level step, the same frequency / recency / T / monetary in
  one hand-written DuckDB query (the fits have no installable peer: ``lifetimes`` is archived).

It also reports how far the fitted parameters are from the simulated truth, in standard errors.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from measure import run_step, save_results

TRUTH = {"r": 1.6, "alpha": 30.0, "a": 0.6, "b": 12.0}
SPEND = (6.0, 4.0, 150.0)

MAKE = r"""
import sys
from helpers.value import simulate_bgnbd_purchases
ev, _ = simulate_bgnbd_purchases(int(sys.argv[2]), r=1.6, alpha=30.0, a=0.6, b=12.0, days=730.0,
                                 acquisition_days=365.0, spend=(6.0, 4.0, 150.0), seed=7)
ev.to_parquet(sys.argv[1], index=False)
print(len(ev))
"""

OURS = r"""
path = sys.argv[1]
from helpers import io
from helpers.value import customer_value, fit_bgnbd, fit_gamma_gamma, purchase_summary
base = hwm()
t0 = time.perf_counter()
ev = io.open_events(path)
s = purchase_summary(ev, observed_until="2025-12-31")
t1 = time.perf_counter()
bg = fit_bgnbd(s)
t2 = time.perf_counter()
gg = fit_gamma_gamma(s)
t3 = time.perf_counter()
v = customer_value(bg, gg, s, horizon="365D")
t4 = time.perf_counter()
est = {**bg.summary.set_index("parameter")[["estimate", "se"]].to_dict("index"),
       **gg.summary.set_index("parameter")[["estimate", "se"]].to_dict("index")}
print(json.dumps({"what": "value pipeline", "seconds": t4 - t0, "summary": t1 - t0, "bgnbd": t2 - t1,
                  "gamma_gamma": t3 - t2, "values": t4 - t3, "customers": len(s), "peak_bytes": hwm(),
                  "baseline_bytes": base, "estimates": est, "total_value": float(v["customer_value"].sum())}))
"""

PEER = r"""
path = sys.argv[1]
import duckdb
base = hwm()
t0 = time.perf_counter()
con = duckdb.connect()
df = con.execute(f'''
with per_day as (
  select user_id, date_diff('day', timestamp '1970-01-01', cast(timestamp as timestamp)) as d, sum(value) as v
  from read_parquet('{path}') where event = 'purchase' and timestamp <= timestamptz '2025-12-31 00:00:00+00'
  group by all),
firsts as (select user_id, min(d) as first_d from per_day group by all)
select p.user_id, count(*) - 1 as frequency, max(d) - min(d) as recency,
       date_diff('day', timestamp '1970-01-01', timestamp '2025-12-31') - min(d) as T,
       coalesce(sum(v) filter (where d > f.first_d) / nullif(count(*) - 1, 0), 0) as monetary
from per_day p join firsts f using (user_id) group by all order by user_id''').df()
seconds = time.perf_counter() - t0
print(json.dumps({"what": "duckdb summary by hand", "seconds": seconds, "customers": len(df), "peak_bytes": hwm(),
                  "baseline_bytes": base, "frequency_sum": int(df["frequency"].sum())}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=500_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    path = Path(tempfile.mkdtemp(prefix="bench_value_")) / "purchases.parquet"
    made = subprocess.run([sys.executable, "-c", MAKE, str(path), str(args.customers)], check=True,
                          capture_output=True, text=True)
    print(f"{args.customers:,} customers, {int(made.stdout.split()[-1]):,} purchase events")
    rows = []
    for _ in range(args.runs):
        rows.append(run_step(PEER, path))
        rows.append(run_step(OURS, path))
    for what in ("value pipeline", "duckdb summary by hand"):
        got = [r for r in rows if r["what"] == what]
        s = [r["seconds"] for r in got]
        mem = max(r["peak_bytes"] for r in got) / 2**30
        print(f"{what:24s} median {statistics.median(s):6.2f} s ({min(s):.2f}-{max(s):.2f}), peak {mem:.2f} GB")
    ours = [r for r in rows if r["what"] == "value pipeline"]
    for step in ("summary", "bgnbd", "gamma_gamma", "values"):
        print(f"  {step:12s} median {statistics.median(r[step] for r in ours):6.2f} s")
    peer = statistics.median(r["seconds"] for r in rows if r["what"] == "duckdb summary by hand")
    print(f"summary / hand-written DuckDB: {statistics.median(r['summary'] for r in ours) / peer:.2f}x")
    est = ours[-1]["estimates"]
    for name, true in {**TRUTH, **dict(zip(("p", "q", "gamma"), SPEND))}.items():
        e = est[name]
        print(f"  {name:6s} {e['estimate']:10.4g} (truth {true:g}; {(e['estimate'] - true) / e['se']:+.1f} SE)")
    save_results("value", rows, args.customers)


if __name__ == "__main__":
    main()

"""Benchmark attribute() beside what an analyst would otherwise run, on the same Parquet file, in one run.

Usage: ``python benchmarks/bench_attribution.py [--users 500000] [--runs 3] [--events FILE]``. The data is the
sample's export for ``--users`` people stitched into canonical events (every event has a channel, so every event
is a touch). Each measurement runs in a fresh process and includes opening the file:

- ``attribute``: ``attribute(events, "purchase", value="value")``: seven models, 200 bootstrap resamples;
- ``attribute, no bootstrap``: the same with ``n_bootstrap=0``;
- ``duckdb + ChannelAttribution``: the peer. A hand-written DuckDB query builds the same journeys (30-day
  lookback, repeats collapsed, null paths) as path strings with counts, then ChannelAttribution (the R/Python
  package most analysts use, benchmark-only) runs ``markov_model`` (order 1, simulation) and
  ``heuristic_models`` (first, last, linear) on them;
- ``funnel``: an ordered 4-step ``compute_funnel`` on the same file, for scale.

It also reports how far the two Markov credits and the heuristic credits are apart (ChannelAttribution simulates
the chain, we solve it; the rules must agree exactly).
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
path, what = sys.argv[1], sys.argv[2]
import ibis.backends.duckdb  # noqa: F401
from helpers import io
from helpers.attribution import attribute
from helpers.funnel import compute_funnel
base = hwm()
t0 = time.perf_counter()
ev = io.open_events(path)
extra = {}
if what == "funnel":
    compute_funnel(ev, ["signup", "first_value", "add_to_cart", "purchase"], conversion_window="14D")
else:
    r = attribute(ev, "purchase", value="value", n_bootstrap=200 if what == "attribute" else 0)
    c = r.credit[r.credit["channel"] != "(no touch)"].set_index("channel")
    extra = {"credit": {m: c[m].round(3).to_dict() for m in ("first", "last", "linear", "markov")},
             "paths": int(r.summary.set_index("measure").loc["distinct paths", "value"].replace(",", ""))}
seconds = time.perf_counter() - t0
print(json.dumps({"what": what, "seconds": seconds, "peak_bytes": hwm(), "baseline_bytes": base, **extra}))
"""

PEER = r"""
path = sys.argv[1]
import duckdb, pandas as pd
import ChannelAttribution as ca
base = hwm()
t0 = time.perf_counter()
lookback = 30 * 86400 * 10**6
con = duckdb.connect()
paths = con.sql(f'''
with b as (
  select user_id, epoch_us(timestamp) us, (event = 'purchase')::int conv,
         case when event = 'purchase' then null else channel end ch
  from read_parquet('{path}') where event = 'purchase' or channel is not null),
w as (
  select *, sum(conv) over p - conv journey,
         min(case when conv = 1 then us end) over (partition by user_id order by us, conv, ch
                                                  rows between current row and unbounded following) conv_us,
         lag(ch) over (partition by user_id order by us, conv, ch) prev_ch,
         lag(us) over (partition by user_id order by us, conv, ch) prev_us
  from b window p as (partition by user_id order by us, conv, ch rows between unbounded preceding and current row)),
kept as (
  select * from w where conv = 1 or ((conv_us is null or conv_us - us <= {lookback})
    and not coalesce(prev_ch = ch and (conv_us is null or conv_us - prev_us <= {lookback}), false))),
j as (
  select string_agg(ch, '>' order by us, ch) filter (where conv = 0) path, max(conv) converted
  from kept group by user_id, journey)
select path, sum(converted) total_conversions, sum(1 - converted) total_null
from j where path is not null group by path''').df()
markov = ca.markov_model(paths, "path", "total_conversions", var_null="total_null", order=1, verbose=False,
                         flg_pro=False)
heuristic = ca.heuristic_models(paths, "path", "total_conversions", flg_pro=False)
seconds = time.perf_counter() - t0
m = markov.set_index("channel_name")["total_conversions"].round(3).to_dict()
h = heuristic.set_index("channel_name")
credit = {"markov": m, "first": h["first_touch"].round(3).to_dict(), "last": h["last_touch"].round(3).to_dict(),
          "linear": h["linear_touch"].round(3).to_dict()}
print(json.dumps({"what": "duckdb + ChannelAttribution", "seconds": seconds, "peak_bytes": hwm(),
                  "baseline_bytes": base, "credit": credit, "paths": len(paths)}))
"""


def canonical_file(users: int) -> Path:
    work = Path(tempfile.mkdtemp(prefix="bench_attribution_"))
    subprocess.run([sys.executable, "-m", "helpers.sample", "--out", str(work), "--users", str(users)], check=True)
    subprocess.run([sys.executable, "-c", (
        "import sys, ibis; from helpers.identity import stitch_identities; "
        "stitch_identities(ibis.duckdb.connect().read_parquet(sys.argv[1])).events.to_parquet(sys.argv[2])"),
        str(work / "events.parquet"), str(work / "canonical.parquet")], check=True)
    return work / "canonical.parquet"


def _gap(a: dict, b: dict) -> float:
    """The largest difference between two channel -> credit maps, as a share of the total credit."""
    total = sum(b.values()) or 1.0
    return max(abs(a.get(c, 0.0) - b.get(c, 0.0)) for c in set(a) | set(b)) / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=500_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--events", type=Path, help="an existing canonical Parquet file (skips generating the sample)")
    args = parser.parse_args()
    path = str(args.events or canonical_file(args.users))
    rows = []
    for _ in range(args.runs):  # interleaved, so a busy moment hits every contender
        rows.append(run_step(PEER, path))
        for what in ("attribute", "attribute, no bootstrap", "funnel"):
            rows.append(run_step(OURS, path, what))
    peer = statistics.median(r["seconds"] for r in rows if r["what"] == "duckdb + ChannelAttribution")
    for what in ("duckdb + ChannelAttribution", "attribute", "attribute, no bootstrap", "funnel"):
        mine = [r for r in rows if r["what"] == what]
        s = [r["seconds"] for r in mine]
        print(f"{what:30s} median {statistics.median(s):6.2f} s ({min(s):.2f}-{max(s):.2f}), "
              f"{statistics.median(s) / peer:4.2f}x the peer, peak {max(r['peak_bytes'] for r in mine) / 2**30:.2f} GB")
    ours = next(r for r in rows if r["what"] == "attribute, no bootstrap")
    theirs = next(r for r in rows if r["what"] == "duckdb + ChannelAttribution")
    print(f"distinct paths: ours {ours['paths']:,}, the peer's {theirs['paths']:,}")
    for m in ("first", "last", "linear", "markov"):
        print(f"{m:7s} largest gap to ChannelAttribution: {_gap(ours['credit'][m], theirs['credit'][m]):.4%} "
              "of the credited conversions")
    save_results("attribution", rows, args.users)


if __name__ == "__main__":
    main()

"""Benchmark user_features + fit_personas on ~10M events / 500k users from Parquet.

Usage: ``python benchmarks/bench_personas.py [--users 500000]``. Each measurement
runs in its own process (peak memory from /proc/self/status VmHWM): features
alone, then features + a 5-persona fit, then features + automatic k (2-8), on
the events after identity stitching (not timed).
The adjusted Rand index against the generator's planted personas is reported too.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from measure import run_step, sample_with_truth, save_results

HERE = Path(__file__).resolve().parent

STEP = r"""
path, users_path, k = sys.argv[1], sys.argv[2], sys.argv[3]
import pandas as pd
from sklearn.metrics import adjusted_rand_score
from helpers import io
from helpers.identity import stitch_identities
from helpers.personas import user_features, fit_personas
base = hwm()
# the raw sample logs anonymous pre-login events with a null user_id: stitch first, as the loading notebook does
events = stitch_identities(io.open_events(path)).events
t0 = time.perf_counter()
f = user_features(events)
t_features = time.perf_counter() - t0
out = {"k": k, "users": len(f), "features": f.shape[1], "features_seconds": t_features}
if k != "none":
    model = fit_personas(f, None if k == "auto" else int(k))
    out["seconds"] = time.perf_counter() - t0
    out["n_personas"] = model.n_personas_
    truth = pd.read_parquet(users_path).set_index("user_id")["persona"].reindex(f.index)
    known = truth.notna().to_numpy()  # persons who never logged in keep an anonymous id and have no planted truth
    out["ari"] = adjusted_rand_score(truth[known], model.labels_[known])
    out["persons_without_truth"] = int((~known).sum())
else:
    out["seconds"] = t_features
out.update(peak_bytes=hwm(), baseline_bytes=base)
print(json.dumps(out))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=500_000)
    args = parser.parse_args()
    work = sample_with_truth(args.users, "bench_personas_")
    path = work / "events.parquet"
    rows = [run_step(STEP, str(path), str(work / "truth.parquet"), k) for k in ("none", "5", "auto")]
    print(f"{os.cpu_count()} cores; {args.users:,} users")
    for r in rows:
        extra = f"  k={r['n_personas']}  ARI {r['ari']:.3f}" if "ari" in r else ""
        print(f"k={r['k']:5} {r['seconds']:7.2f} s (features {r['features_seconds']:.2f} s)  "
              f"peak {r['peak_bytes'] / 1024**3:.2f} GB (baseline {r['baseline_bytes'] / 1024**3:.2f}){extra}")
    save_results("personas", rows, args.users)


if __name__ == "__main__":
    main()

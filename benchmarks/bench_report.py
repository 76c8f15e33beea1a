"""Benchmark report runs: time per notebook and peak memory, on the sample and on ~10M events.

Usage: ``python benchmarks/bench_report.py [--users 500000] [--skip-large]``.
Each run is ``python -m helpers.report run`` in a child process writing to a
temporary reports folder; peak memory is the largest resident set among the
runner and its notebook kernels (``RUSAGE_CHILDREN``). The large run loads a
generated export through the same config with ``--param`` overrides, so
``data/processed`` of the checkout is left alone.
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

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def run_report(config: Path, reports: Path, params: list[str]) -> dict:
    cmd = [sys.executable, "-m", "helpers.report", "run", "--quiet", "--config", str(config), "--reports-dir", str(reports)]
    for p in params:
        cmd += ["--param", p]
    # A small wrapper process runs the report and reports the peak of its own children only.
    wrapper = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stderr=subprocess.DEVNULL); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)")
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", wrapper, *cmd], check=True, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    peak = int(out.stdout.strip().splitlines()[-1])
    meta = json.loads((reports / "latest" / "run.json").read_text())
    sizes = {p.name: p.stat().st_size for p in (reports / "latest").glob("*.html")}
    return {"seconds": seconds, "durations": meta["durations"], "peak_bytes": peak, "largest_html_bytes": max(sizes.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=500_000)
    parser.add_argument("--skip-large", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_report_"))
    results = {"cores": os.cpu_count()}

    results["sample"] = run_report(ROOT / "config" / "report.yaml", work / "sample", [])
    if not args.skip_large:
        # Generated in a child process: a large parent would inflate every later child's peak memory.
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "helpers.sample", "--out", str(work / "large"), "--users", str(args.users)],
                       check=True, cwd=ROOT)
        results["large_generate_seconds"] = time.perf_counter() - t0
        config = work / "large.yaml"
        config.write_text((ROOT / "config" / "report.yaml").read_text().replace(
            "ids_from: data/processed/events.parquet", f"ids_from: {work / 'large' / 'processed.parquet'}"))
        results["large"] = run_report(config, work / "large_reports", [
            f"data_loading.source={work / 'large' / 'events.parquet'}",
            f"data_loading.output={work / 'large' / 'processed.parquet'}",
            f"funnel.events_path={work / 'large' / 'processed.parquet'}",
            f"funnel.users_path={work / 'large' / 'users.parquet'}",
        ])
    gb = 1024**3
    for name in ("sample", "large"):
        if name in results:
            r = results[name]
            print(f"{name}: {r['seconds']:.1f} s total, peak {r['peak_bytes'] / gb:.2f} GB, "
                  f"largest HTML {r['largest_html_bytes'] / 1e6:.1f} MB")
            for nb, s in r["durations"].items():
                print(f"    {nb:28} {s:7.1f} s")
    (HERE / "results").mkdir(exist_ok=True)
    with open(HERE / "results" / "report.jsonl", "a") as fh:
        fh.write(json.dumps({**results, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}) + "\n")


if __name__ == "__main__":
    main()

"""Benchmark report runs: time per notebook and peak memory, on the sample and on ~10M events.

Usage: ``python benchmarks/bench_report.py [--users 500000] [--days 180] [--skip-large] [--skip-sample]``
(``--users 2000000`` gives about 50M events over 180 days; ``--users 2500000 --days 140``
about 50M events from 2.5M users). Each run is ``python -m helpers.report run``
in a child process writing to a temporary reports folder; peak memory is the largest
resident set among the runner and its notebook kernels (``RUSAGE_CHILDREN``). The
large run is a scratch copy of the project whose bundled sample is the generated
export, so the checkout's ``data/`` and ``reports/`` are left alone.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def run_report(config: Path, reports: Path, params: list[str], env: dict | None = None, cwd: Path = ROOT) -> dict:
    cmd = [sys.executable, "-m", "helpers.report", "run", "--quiet", "--config", str(config), "--reports-dir", str(reports)]
    for p in params:
        cmd += ["--param", p]
    # A small wrapper process runs the report and reports the peak of its own children only.
    # Its stderr (kernel chatter, or the reason for a failure) goes to a log beside the reports.
    reports.mkdir(parents=True, exist_ok=True)
    log = reports.parent / f"{reports.name}.log"
    wrapper = ("import resource, subprocess, sys; subprocess.run(sys.argv[2:], check=True, stderr=open(sys.argv[1], 'w')); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)")
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", wrapper, str(log), *cmd], check=True, cwd=cwd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    peak = int(out.stdout.strip().splitlines()[-1])
    meta = json.loads((reports / "latest" / "run.json").read_text())
    sizes = {p.name: p.stat().st_size for p in (reports / "latest").glob("*.html")}
    return {"seconds": seconds, "durations": meta["durations"], "peak_bytes": peak, "largest_html_bytes": max(sizes.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=500_000)
    parser.add_argument("--days", type=int, default=180, help="days the generated export spans")
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--skip-sample", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_report_"))
    results = {"cores": os.cpu_count()}

    if not args.skip_sample:
        results["sample"] = run_report(ROOT / "config" / "report.yaml", work / "sample", [])
    if not args.skip_large:
        # A scratch project (config and notebooks copied, JOURNEY_PROJECT_ROOT pointing at it) whose bundled
        # "sample" is the generated export: every notebook runs with its defaults, and the checkout's data/
        # and reports/ are left alone.
        root = work / "large_project"
        for folder in ("config", "notebooks"):
            shutil.copytree(ROOT / folder, root / folder)
        t0 = time.perf_counter()
        # Generated in a child process: a large parent would inflate every later child's peak memory.
        subprocess.run([sys.executable, "-m", "helpers.sample", "--out", str(root / "data" / "sample"),
                        "--users", str(args.users), "--days", str(args.days)], check=True, cwd=ROOT)
        results["large_generate_seconds"] = time.perf_counter() - t0
        results["large_users"] = args.users
        results["large_days"] = args.days
        results["large_events"] = pq.read_metadata(root / "data" / "sample" / "events.parquet").num_rows
        results["large"] = run_report(root / "config" / "report.yaml", root / "reports", [],
                                      env={**os.environ, "JOURNEY_PROJECT_ROOT": str(root)}, cwd=root)
    gb = 1024**3
    for name in ("sample", "large"):
        if name in results:
            r = results[name]
            events = f"{results['large_events']:,} events, " if name == "large" else ""
            print(f"{name}: {events}{r['seconds']:.1f} s total, peak {r['peak_bytes'] / gb:.2f} GB, "
                  f"largest HTML {r['largest_html_bytes'] / 1e6:.1f} MB")
            for nb, s in r["durations"].items():
                print(f"    {nb:28} {s:7.1f} s")
    (HERE / "results").mkdir(exist_ok=True)
    with open(HERE / "results" / "report.jsonl", "a") as fh:
        fh.write(json.dumps({**results, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}) + "\n")


if __name__ == "__main__":
    main()

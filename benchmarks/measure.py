"""Shared by the benchmarks: run a step in a fresh Python process and read its peak memory.

Each step is a script run with ``python -c``; it starts with :data:`PRELUDE`,
which defines ``hwm()`` (the process's peak resident memory, from
/proc/self/status VmHWM: unlike ru_maxrss it is not inherited across fork),
and prints one JSON line as its last output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PRELUDE = r'''
import json, sys, time
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
'''


def run_step(script: str, *args: str) -> dict:
    """Run ``PRELUDE + script`` with ``args`` in a new interpreter; return its last JSON line."""
    out = subprocess.run([sys.executable, "-c", PRELUDE + script, *map(str, args)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def sample_with_truth(users: int, prefix: str) -> Path:
    """Generate ``users`` users of the sample into a temporary folder, with ``truth.parquet`` (user_id, persona)."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    subprocess.run([sys.executable, "-c", (
        "import sys; from helpers.sample import write_sample; "
        "j = write_sample(sys.argv[1], int(sys.argv[2])); "
        "j.truth[['user_id', 'persona']].to_parquet(sys.argv[1] + '/truth.parquet')"), str(work), str(users)],
        check=True)
    return work


def save_results(name: str, rows: list[dict], users: int) -> None:
    """Append one run's rows to ``benchmarks/results/<name>.jsonl`` with the core count and time."""
    results = Path(__file__).resolve().parent / "results"
    results.mkdir(exist_ok=True)
    with open(results / f"{name}.jsonl", "a") as fh:
        fh.write(json.dumps({"rows": rows, "users": users, "cores": os.cpu_count(),
                             "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}) + "\n")

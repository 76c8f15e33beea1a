"""Shared by the benchmarks: run a step in a fresh Python process and read its peak memory.

Each step is a script run with ``python -c``; it starts with :data:`PRELUDE`,
which defines ``hwm()`` (the process's peak resident memory, from
/proc/self/status VmHWM: unlike ru_maxrss it is not inherited across fork),
and prints one JSON line as its last output.
"""

from __future__ import annotations

import json
import subprocess
import sys

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

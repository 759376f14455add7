"""Wall time of `fastmoe-cfg docs build` (the full site), as a user runs it. Target: < 20 s.

Each run is a fresh process building into a fresh folder; the report gives
every run and the median, and, as a ratio measured in the same run, how much
longer the build takes than `fastmoe-cfg docs check` (which only generates
the reference pages): the rest is the guides' commands and MkDocs.

    python benchmarks/docs_build.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 20.0


def _time(argv: list[str]) -> float:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "fastmoe_cfg", *argv], cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"fastmoe-cfg {' '.join(argv)} exited {result.returncode}:\n{result.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from rich.console import Console
    from rich.progress import track

    builds, checks = [], []
    scratch = Path(tempfile.mkdtemp(prefix="docs-build-bench-"))
    try:
        for index in track(range(args.repeats), description="docs build", console=Console(stderr=True)):
            builds.append(_time(["docs", "build", "--out", str(scratch / f"site{index}")]))
            checks.append(_time(["docs", "check"]))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    build, check = statistics.median(builds), statistics.median(checks)
    print(f"fastmoe-cfg docs build: runs {', '.join(f'{t:.2f}' for t in builds)} s; median {build:.2f} s (target < {TARGET_S:.0f} s)")
    print(f"fastmoe-cfg docs check (reference pages only): median {check:.2f} s; build / check = {build / check:.1f}x")
    if build >= TARGET_S:
        raise SystemExit(f"docs build median {build:.2f} s is over the {TARGET_S:.0f} s target")


if __name__ == "__main__":
    main()

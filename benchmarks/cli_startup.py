"""Cold-start time of `fastmoe-cfg validate` against `python -c "import pydantic"`, in one run.

Each command runs as a fresh process, interleaved, `--repeats` times; the
report gives the median and the minimum wall time and their ratio. Target:
validate <= 0.25 s.

    python benchmarks/cli_startup.py [--repeats 20]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 0.25


def _script() -> list[str]:
    beside = Path(sys.executable).parent / "fastmoe-cfg"
    found = str(beside) if beside.exists() else shutil.which("fastmoe-cfg")
    return [found] if found else [sys.executable, "-m", "fastmoe_cfg"]


# As on a user's machine: byte-code caches are written (by the warm-up run) and used.
ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


def _time(command: list[str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one run of `command`."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, env=ENV)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {process.returncode}")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    from rich.console import Console
    from rich.progress import track
    from rich.table import Table

    commands = {
        "fastmoe-cfg validate examples/mixtral_8x7b.yaml": [*_script(), "validate", "examples/mixtral_8x7b.yaml"],
        'python -c "import pydantic"': [sys.executable, "-c", "import pydantic"],
        'python -c "pass"': [sys.executable, "-c", "pass"],
    }
    for command in commands.values():  # warm the file cache and .pyc files
        _time(command)
    walls: dict[str, list[float]] = {name: [] for name in commands}
    cpus: dict[str, list[float]] = {name: [] for name in commands}
    for _ in track(range(args.repeats), description="timing cold starts"):
        for name, command in commands.items():
            wall, cpu = _time(command)
            walls[name].append(wall)
            cpus[name].append(cpu)
    table = Table(title=f"cold start, {args.repeats} runs each, interleaved")
    for column in ("command", "wall median s", "wall min s", "CPU median s"):
        table.add_column(column)
    for name in commands:
        table.add_row(name, f"{statistics.median(walls[name]):.3f}", f"{min(walls[name]):.3f}", f"{statistics.median(cpus[name]):.3f}")
    console = Console()
    console.print(table)
    validate, pydantic = "fastmoe-cfg validate examples/mixtral_8x7b.yaml", 'python -c "import pydantic"'
    for label, values in (("wall", walls), ("CPU", cpus)):
        ratio = statistics.median(values[validate]) / statistics.median(values[pydantic])
        console.print(f"validate / import pydantic ({label} medians): {ratio:.2f}x")
    median = statistics.median(walls[validate])
    verdict = "meets" if median <= TARGET_S else "misses"
    console.print(f"validate wall median {median:.3f} s {verdict} the {TARGET_S} s target")


if __name__ == "__main__":
    main()

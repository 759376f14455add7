"""Cold-start time of `fastmoe-cfg validate` against `python -c "import pydantic"`, in one run.

Each command runs as a fresh process, interleaved, `--repeats` times; the
report gives the median and the minimum wall time and their ratio. Target:
validate <= 0.25 s.

    python benchmarks/cli_startup.py [--repeats 20]
"""

from __future__ import annotations

import argparse
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


def _time(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


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
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in track(range(args.repeats), description="timing cold starts"):
        for name, command in commands.items():
            times[name].append(_time(command))
    table = Table(title=f"cold start, {args.repeats} runs each, interleaved")
    for column in ("command", "median s", "min s"):
        table.add_column(column)
    for name, values in times.items():
        table.add_row(name, f"{statistics.median(values):.3f}", f"{min(values):.3f}")
    console = Console()
    console.print(table)
    validate = statistics.median(times["fastmoe-cfg validate examples/mixtral_8x7b.yaml"])
    pydantic = statistics.median(times['python -c "import pydantic"'])
    console.print(f"validate / import pydantic (medians): {validate / pydantic:.2f}x")
    verdict = "meets" if validate <= TARGET_S else "misses"
    console.print(f"validate median {validate:.3f} s {verdict} the {TARGET_S} s target")


if __name__ == "__main__":
    main()

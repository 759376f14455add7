"""Cold-start time of `fastmoe-cfg validate` against importing its own dependencies, in one run.

Each command runs as a fresh process, interleaved (one run of each per round, in
turn), `--repeats` rounds after a warm-up round; the report gives the median and
minimum wall times, the ratio of the medians and the median of the per-round
ratios, validate / `python -c 'from pydantic import BaseModel; import ruamel.yaml, typer, rich'`,
for wall and CPU (user + system) time, and the load average before and after
(on a shared machine, compare runs taken at similar load). Target (issue 17): at
most 1.3. It also checks, with `python -X importtime`, that validate never
imports torch.

    python benchmarks/cli_startup.py [--repeats 40]

Noise: on 2 shared cores, even with 40 rounds, the ratio of the medians and the
median of the per-round ratios of one run can differ by 0.1 (1.72 and 1.63 in one
run at load 1.0). For a deterministic comparison of two versions, count
instructions instead (about 20 s each; their ratio tracked the wall ratio, 1.71
against 1.72):
`valgrind --tool=callgrind --callgrind-out-file=/dev/null python -m fastmoe_cfg validate examples/mixtral_8x7b.yaml`
(the `Collected` line; run the command once before, with PYTHONDONTWRITEBYTECODE
unset, so that the .pyc files exist).

Floor (instruction counts, pydantic 2.13, typer 0.29): a typer app with validate's
four parameters that only prints them costs 1.21x the dependencies' import (typer
coerces parameters with pydantic TypeAdapters: `pydantic.fields`, `annotated_types`
and, through pydantic's plugin loader, `importlib.metadata`), and any pydantic model
needs the same modules; that leaves about 0.05x for the config classes, their
schemas, the YAML parse and validation under a 1.3x target.
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
TARGET_RATIO = 1.3
DEPENDENCIES = "from pydantic import BaseModel; import ruamel.yaml, typer, rich"


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
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args()
    from rich.console import Console
    from rich.progress import track
    from rich.table import Table

    validate = "fastmoe-cfg validate examples/mixtral_8x7b.yaml"
    dependencies = f'python -c "{DEPENDENCIES}"'
    commands = {
        validate: [*_script(), "validate", "examples/mixtral_8x7b.yaml"],
        dependencies: [sys.executable, "-c", DEPENDENCIES],
        'python -c "pass"': [sys.executable, "-c", "pass"],
    }
    importtime = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "fastmoe_cfg", "validate", "examples/mixtral_8x7b.yaml"],
        cwd=ROOT, env=ENV, capture_output=True, text=True,
    ).stderr
    torch_imports = [line for line in importtime.splitlines() if line.rstrip().endswith(("| torch", "torch"))]
    for command in commands.values():  # warm the file cache and .pyc files
        _time(command)
    load_before = os.getloadavg()
    walls: dict[str, list[float]] = {name: [] for name in commands}
    cpus: dict[str, list[float]] = {name: [] for name in commands}
    for _ in track(range(args.repeats), description="timing cold starts"):
        for name, command in commands.items():
            wall, cpu = _time(command)
            walls[name].append(wall)
            cpus[name].append(cpu)
    load_after = os.getloadavg()
    table = Table(title=f"cold start, {args.repeats} runs each, interleaved")
    for column in ("command", "wall median s", "wall min s", "CPU median s"):
        table.add_column(column)
    for name in commands:
        table.add_row(name, f"{statistics.median(walls[name]):.3f}", f"{min(walls[name]):.3f}", f"{statistics.median(cpus[name]):.3f}")
    console = Console()
    console.print(table)
    console.print(
        f"load average (1 min) before / after: {load_before[0]:.2f} / {load_after[0]:.2f} on {os.cpu_count()} CPUs"
    )
    for label, values in (("wall", walls), ("CPU", cpus)):
        ratio = statistics.median(values[validate]) / statistics.median(values[dependencies])
        paired = statistics.median(v / d for v, d in zip(values[validate], values[dependencies]))
        verdict = "meets" if ratio <= TARGET_RATIO else "misses"
        console.print(
            f"validate / its dependencies' import ({label}): {ratio:.2f}x ratio of the medians, "
            f"{paired:.2f}x median of the per-round ratios ({verdict} the {TARGET_RATIO}x target)"
        )
    console.print("torch imported by validate: " + ("yes: " + "; ".join(torch_imports) if torch_imports else "no"))


if __name__ == "__main__":
    main()

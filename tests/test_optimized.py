"""Validation does not rely on `assert`: the config and schema tests pass under `python -O`."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_config_tests_pass_under_python_dash_o() -> None:
    result = subprocess.run(
        [
            sys.executable, "-O", "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", "tests/config", "tests/schemas",
            "--ignore", "tests/config/test_properties.py",
            # builds layers: torch under -O has no cached bytecode (about 10 s to compile it), and layers are not validation
            "--deselect", "tests/config/test_stack.py::test_build_is_a_module_list_with_the_counted_parameters",
        ],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in result.stdout

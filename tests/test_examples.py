"""Every gallery example runs, offline, as a user would run it.

Each script runs in a fresh interpreter, from a temporary working directory
(so that nothing it writes lands in the repository), with matplotlib's
non-interactive backend. The ``test`` extra installs what the examples need
(matplotlib, mnist1d), so none may fail for a missing package; an example
built on a package outside that extra must check for it and exit cleanly.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parents[1] / "examples").glob("*.py"))


@pytest.mark.slow
@pytest.mark.parametrize("script", EXAMPLES, ids=lambda path: path.name)
def test_example_runs(script, tmp_path):
    environment = {
        **os.environ,
        "MPLBACKEND": "Agg",
        "TMPDIR": str(tmp_path),
        "PYTHONPATH": os.pathsep.join(
            [str(script.parents[1]), os.environ.get("PYTHONPATH", "")]
        ),
    }
    completed = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]

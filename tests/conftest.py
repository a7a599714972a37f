from pathlib import Path

import pytest
import torch
from _matrix import TABLE_PATH, Matrix
from threadpoolctl import threadpool_limits

# The test networks and data are tiny: one thread is faster than two that
# spin against each other (and against joblib workers) on the 2-core CI
# machine. Once torch is loaded, OpenBLAS with 2 threads makes even
# LogisticRegression on iris ~70x slower.
torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _one_blas_thread():
    with threadpool_limits(limits=1, user_api="blas"):
        yield


# --- the reliability matrix (see tests/_matrix.py) ----------------------------

_MATRIX = Matrix()


@pytest.fixture
def matrix(request):
    """Record the cases a test tries in the reliability matrix."""
    _MATRIX.tests_run.add(request.node.nodeid)
    return _MATRIX


def pytest_deselected(items):
    _MATRIX.deselected = True


def pytest_sessionfinish(session, exitstatus):
    # Only a run of the whole tests directory that tried every case of the
    # matrix rewrites the table (not one narrowed to files, with -k / -m, or
    # stopped early by -x).
    tests_dir = Path(__file__).resolve().parent
    whole = any(
        (session.config.rootpath / arg.split("::")[0]).resolve() == tests_dir
        for arg in session.config.args
    )
    tests = {item.nodeid for item in session.items if "matrix" in item.fixturenames}
    if not whole or _MATRIX.deselected or not tests or not tests <= _MATRIX.tests_run:
        return
    table = _MATRIX.table()
    if not TABLE_PATH.exists() or TABLE_PATH.read_text() != table:
        TABLE_PATH.write_text(table)
    session.config._reliability_table = table


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    table = getattr(config, "_reliability_table", None)
    if table is not None:
        terminalreporter.write_sep("-", f"reliability matrix ({TABLE_PATH.name})")
        terminalreporter.write(table)

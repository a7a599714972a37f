"""The documentation is complete and builds without a warning.

Every public class and function has a page in the API reference, and
``sphinx-build -W`` (every warning an error: a broken reference, a docstring
numpydoc cannot parse, a page missing from a table of contents) succeeds on
a copy of ``docs/`` and ``examples/``, so that nothing is written into the
working tree. The gallery's examples are not executed by this build
(sphinx-gallery's ``plot_gallery=0``: their pages show code and text only):
``tests/test_examples.py`` runs each of them once.
"""

import importlib
import importlib.util
import inspect
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import sktransfer

ROOT = Path(__file__).parents[1]
PUBLIC_PACKAGES = [
    "sktransfer",
    *(
        f"sktransfer.{name}"
        for name in sktransfer.__all__
        if inspect.ismodule(getattr(sktransfer, name))
    ),
]


def _public_names():
    for package_name in PUBLIC_PACKAGES:
        package = importlib.import_module(package_name)
        prefix = package_name.removeprefix("sktransfer").lstrip(".")
        for name in package.__all__:
            if not inspect.ismodule(getattr(package, name)):
                yield f"{prefix}.{name}" if prefix else name


def test_every_public_class_and_function_has_an_api_page():
    api = (ROOT / "docs" / "api.rst").read_text()
    # autosummary entries: names indented by three spaces under the directive
    documented = set(re.findall(r"^   ([\w.]+)$", api, flags=re.MULTILINE))

    missing = sorted(set(_public_names()) - documented)

    assert missing == [], f"add these to docs/api.rst: {missing}"


@pytest.mark.slow
def test_the_documentation_builds_without_a_warning(tmp_path):
    if importlib.util.find_spec("sphinx") is None:
        pytest.fail('The docs build needs sphinx: pip install -e ".[test]"')
    ignore = shutil.ignore_patterns("_build", "auto_examples", "generated")
    shutil.copytree(ROOT / "docs", tmp_path / "docs", ignore=ignore)
    shutil.copytree(ROOT / "examples", tmp_path / "examples")

    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            "-D",
            "plot_gallery=0",
            str(tmp_path / "docs"),
            str(tmp_path / "html"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr[-5000:]
    assert (tmp_path / "html" / "auto_examples" / "plot_vision_transfer.html").exists()
    assert (
        tmp_path
        / "html"
        / "generated"
        / "sktransfer.model_selection.StrategyComparison.html"
    ).exists()


@pytest.mark.parametrize("script", ["run", "run-vision"])
def test_ci_runs_exactly_a_command_of_the_readme(script):
    command = (ROOT / ".ci" / script).read_text().strip().splitlines()[-1]

    assert command.startswith("python -m venv ")
    assert f"\n{command}\n" in (ROOT / "README.md").read_text()

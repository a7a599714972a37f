"""Collection rules for the doctests in the package (see pyproject's testpaths)."""

import importlib.util

# The MNIST-1D task needs the optional mnist1d package (in the test extra);
# without it, its doctest would fail on the import, not on sktransfer.
collect_ignore = []
if importlib.util.find_spec("mnist1d") is None:
    collect_ignore.append("sktransfer/datasets/_mnist1d.py")

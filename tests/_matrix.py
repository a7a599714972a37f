"""The reliability matrix: every bad-input case, counted by the tests that try it.

A test tries a case inside ``matrix.case(area, **objects)``: the case is
*handled cleanly* when the block completes (the estimator gave the right
result, or the expected error, whose message the test checks with
``pytest.raises(..., match=...)``), and *nothing mutated* when every object
passed (X, y, weights, the source network, files) is as it was, error or
not. At the end of a run that tried every case of the matrix, the counts per
area are written to ``docs/reliability_matrix.txt``, which the Reliability
page includes: the table is counted by the tests, not by hand.
"""

import contextlib
from pathlib import Path

from _factories import _same, _snapshot

TABLE_PATH = Path(__file__).resolve().parents[1] / "docs" / "reliability_matrix.txt"

# Areas in the order the table lists them (an unknown area fails the test).
AREAS = {
    "X values": "NaN, inf, overflow, strings, missing values, sparse, empty",
    "X shape": "width, dimensions, sample shape unlike fit's",
    "X layout and dtype": "float64, ints, Fortran order, views, frames, lists",
    "integer ids": "ids an embedding cannot look up",
    "networks": "reshaping networks, batch norm, nothing to train",
    "y": "length, one class, continuous, label types",
    "sample weights": "sample_weight and SourceData weights",
    "source data": "SourceData of another shape or with bad values",
    "set-up": "device, early-stopping split, weights files",
    "named sources": "pretrained models by name, offline",
    "training faults": "divergence, interrupts",
    "saved files": "tampered files, wrong key, other architecture",
    "before fit": "predict, transform, score before fit",
}


class Matrix:
    """Collects ``(area, handled cleanly, nothing mutated)`` per case."""

    def __init__(self):
        self.results = []
        self.tests_run = set()
        self.deselected = False

    @contextlib.contextmanager
    def case(self, area, **objects):
        if area not in AREAS:
            raise KeyError(f"unknown reliability area {area!r}; add it to AREAS")
        before = {name: _snapshot(obj) for name, obj in objects.items()}
        handled = False
        try:
            yield
            handled = True
        finally:
            mutated = [
                name for name, obj in objects.items() if not _same(before[name], obj)
            ]
            self.results.append((area, handled, not mutated))
            assert not mutated, f"{', '.join(mutated)} modified"

    def table(self):
        """The counts as an RST table."""
        rows = []
        for area, description in AREAS.items():
            results = [r for r in self.results if r[0] == area]
            if results:
                rows.append((area, description, *_counts(results)))
        rows.append(("**all**", "", *_counts(self.results)))
        header = (
            "Area",
            "What is tried",
            "Cases",
            "Handled cleanly",
            "Nothing mutated",
        )
        cells = [header] + [tuple(str(cell) for cell in row) for row in rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
        rule = "  ".join("=" * width for width in widths)
        lines = [rule, _line(header, widths), rule]
        lines += [_line(row, widths) for row in cells[1:]]
        lines.append(rule)
        return "\n".join(lines) + "\n"


def _counts(results):
    return (
        len(results),
        sum(handled for _, handled, _ in results),
        sum(unmutated for _, _, unmutated in results),
    )


def _line(row, widths):
    return "  ".join(
        cell.ljust(width) for cell, width in zip(row, widths, strict=True)
    ).rstrip()

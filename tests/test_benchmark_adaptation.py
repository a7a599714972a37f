"""The adaptation benchmark's summary says what its records say."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))

from bench_adaptation import summarize


def _result(cells):
    """A result from ``{k: {contender: (role, [score per seed])}}``."""
    records = [
        {
            "task": "toy",
            "k": k,
            "seed": seed,
            "contender": name,
            "role": role,
            "note": None,
            "score": score,
            "fit_seconds": 1.0,
            "error": None,
        }
        for k, contenders in cells.items()
        for name, (role, scores) in contenders.items()
        for seed, score in enumerate(scores)
    ]
    return {"records": records, "tasks": {"toy": {"sizes": list(cells)}}}


def test_the_task_line_averages_each_ks_best_row_paired_over_seeds():
    result = _result(
        {
            0: {
                "fine-tune: labelled rows": ("F", [0.5, 0.5, 0.5]),
                "sktransfer coral (λ=1)": ("A", [0.70, 0.72, 0.74]),
                "sktransfer mmd (λ=1)": ("A", [0.60, 0.60, 0.60]),
                "skada DeepCoral": ("K", [0.68, 0.70, 0.72]),
            },
            3: {
                "fine-tune: labelled rows": ("F", [0.8, 0.8, 0.8]),
                "sktransfer coral (λ=1)": ("A", [0.80, 0.82, 0.84]),
                "skada DeepCoral": ("K", [0.84, 0.84, 0.84]),
                "skada DAN": ("K", [0.10, 0.10, 0.10]),
            },
        }
    )

    lines = summarize(result).splitlines()

    assert "  vs skada: 0.820 sktransfer coral (λ=1) < 0.840 skada DeepCoral" in (
        "\n".join(lines)
    )
    # Per seed, mean over k: ours 0.75, 0.77, 0.79; skada's 0.76, 0.77, 0.78.
    assert lines[-1] == (
        "toy, mean over k = 0, 3 of each k's best row: sktransfer 0.770 ≥ skada "
        f"0.770: +0.000 ± {0.01 / 3**0.5:.3f}"
    )


def test_one_k_gives_no_task_line():
    result = _result(
        {
            0: {
                "sktransfer coral (λ=1)": ("A", [0.7, 0.7]),
                "skada DeepCoral": ("K", [0.6, 0.6]),
            }
        }
    )
    assert "mean over k" not in summarize(result)

"""Peak memory of one call, for the benchmarks that measure it.

Shared by ``bench_memory.py`` and ``bench_transform.py``, which run each
measurement in a fresh process (a process's peak cannot be lowered again).
"""

import gc
import os
import resource
import sys
import tracemalloc


def measure_peak_memory(call):
    """Run ``call()`` once; return its result and what it needed.

    Figures: ``traced_peak_bytes`` (numpy and Python allocations, tracemalloc),
    ``rss_before_bytes`` and ``rss_peak_increase_bytes`` (resident memory,
    torch included: the high-water mark reset just before the call where
    Linux allows it, the lifetime peak otherwise -- then a lower bound) and
    ``rss_method`` (which of the two).
    """
    gc.collect()
    tracemalloc.start()
    rss_before = _current_rss()
    if rss_before is not None and _reset_peak_rss():
        method = "VmHWM reset via /proc/self/clear_refs"
        peak_before, read_peak = rss_before, _peak_rss_since_reset
    else:
        method = "ru_maxrss (lifetime peak; a lower bound)"
        peak_before, read_peak = _lifetime_peak_rss(), _lifetime_peak_rss
    result = call()
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, {
        "traced_peak_bytes": traced_peak,
        "rss_before_bytes": rss_before,
        "rss_peak_increase_bytes": read_peak() - peak_before,
        "rss_method": method,
    }


def _current_rss():
    """Resident set size in bytes (Linux), or None where it cannot be read."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None


def _reset_peak_rss():
    """Reset the RSS high-water mark to the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def _peak_rss_since_reset():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _lifetime_peak_rss():
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes vs KiB

"""Helpers shared by the benchmark scripts: figures, percentiles, peak memory."""

import resource
import statistics
import sys


def percentile(samples: list[float], pct: float) -> float:
    """The pct-th percentile (nearest rank) of samples."""
    ordered = sorted(samples)
    index = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def summary_ms(samples: list[float]) -> str:
    """'p50 x ms, p95 y ms' for samples in seconds."""
    return (
        f"p50 {statistics.median(samples) * 1000:.1f} ms, "
        f"p95 {percentile(samples, 95) * 1000:.1f} ms"
    )


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def figure(name: str, value: str) -> None:
    """Print one figure; `python -m bench` collects these lines into its table."""
    print(f"FIGURE {name}: {value}", flush=True)
    sys.stdout.flush()

"""pass@k with the unbiased estimator (Chen et al. 2021) and bootstrap confidence intervals over problems."""

from __future__ import annotations

import math
import random


def pass_at_k(n: int, c: int, k: int) -> float:
    """P(at least one of k samples drawn without replacement from n, of which c are correct, is correct)
    = 1 - C(n-c, k) / C(n, k), computed as a stable product."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def ks_for(n: int) -> list[int]:
    """Every k the samples allow: 1, 2, 5, 10, 20, 50, 100, ... up to n, and n itself."""
    ks = [k for k in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000) if k <= n]
    return ks + ([n] if n not in ks else [])


def bootstrap_ci(values: list[float], reps: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean, resampling problems."""
    if not values:
        return (math.nan, math.nan)
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(reps))
    lo = means[int((1 - level) / 2 * reps)]
    hi = means[min(reps - 1, int((1 + level) / 2 * reps))]
    return (lo, hi)


def summarize(correct_by_problem: dict[str, list[bool]], reps: int = 2000, seed: int = 0) -> dict:
    """{"pass@k": {"value", "ci95", "problems"}} for every k possible with the smallest sample count."""
    if not correct_by_problem:
        return {}
    n_min = min(len(v) for v in correct_by_problem.values())
    out = {}
    for k in ks_for(n_min):
        per = [pass_at_k(len(v), sum(v), k) for v in correct_by_problem.values()]
        lo, hi = bootstrap_ci(per, reps, seed)
        out[f"pass@{k}"] = {"value": sum(per) / len(per), "ci95": [lo, hi], "problems": len(per)}
    return out


def paired_difference(a: dict[str, list[bool]], b: dict[str, list[bool]], k: int = 1, reps: int = 2000,
                      seed: int = 0) -> dict:
    """pass@k of b minus a over the problems both have, with a bootstrap CI resampling problems jointly."""
    common = sorted(set(a) & set(b))
    diffs = [pass_at_k(len(b[t]), sum(b[t]), k) - pass_at_k(len(a[t]), sum(a[t]), k) for t in common]
    lo, hi = bootstrap_ci(diffs, reps, seed)
    return {"k": k, "difference": sum(diffs) / len(diffs) if diffs else math.nan, "ci95": [lo, hi],
            "problems": len(common)}

"""The answer `ftcli tune` ends with: one line per method against the reference (full fine-tuning
when it ran) and one recommendation, computed from compare rows (mean ± SEM over seeds), so that
the sentence is a function of the numbers and tested as such."""

from __future__ import annotations

import math

from ..data.metrics import LOWER_IS_BETTER, METRIC_TEXT


def points(row: dict, metric: str) -> tuple[float | None, float | None]:
    """The row's test value of `metric` and its SEM, in points (x100) for scores, as is for errors."""
    scale = 1 if metric in LOWER_IS_BETTER else 100
    value, sem = row.get(f"inference_{metric}"), row.get(f"inference_{metric}_sem")
    return (None if value is None else scale * value), (None if sem is None else scale * sem)


def within_noise(a: dict, b: dict, metric: str) -> bool | None:
    """Whether two rows' test values differ by no more than the standard error of their difference,
    sqrt(SEM_a² + SEM_b²); None when a row has no SEM (one seed): no noise estimate."""
    (va, sa), (vb, sb) = points(a, metric), points(b, metric)
    if sa is None or sb is None:
        return None
    return abs(va - vb) <= math.hypot(sa, sb)


def per_epoch(row: dict) -> float | None:
    return None if row.get("train_seconds") is None else row["train_seconds"] / max(row["epochs"], 1)


def method_line(row: dict, ref: dict, metric: str) -> str:
    """`layerwise: 0.4 ± 0.3 points below full at 2.7% of the parameters and 0.6x its time per epoch;
    the difference is within noise`."""
    (v, s), (rv, rs) = points(row, metric), points(ref, metric)
    lower = metric in LOWER_IS_BETTER  # an error (MSE): "lower" is better, in its own units
    side = ("lower than" if v < rv else "higher than") if lower else ("above" if v > rv else "below")
    side = "level with" if v == rv else side
    gap = f"{abs(v - rv):.3g} {METRIC_TEXT[metric]}" if lower else f"{abs(v - rv):.1f}"
    sem = "" if s is None or rs is None else f" ± {math.hypot(s, rs):{'.3g' if lower else '.1f'}}"
    share = 100 * row["trainable_params"] / ref["trainable_params"]
    times = per_epoch(row), per_epoch(ref)
    time_text = f" and {times[0] / times[1]:.1f}x its time per epoch" if None not in times and times[1] else ""
    noise = {True: "the difference is within noise", False: "the difference is outside noise",
             None: "no noise estimate (one seed)"}[within_noise(row, ref, metric)]
    return (f"{row['mode']}: {gap}{sem}{'' if lower else ' points'} {side} {ref['mode']} "
            f"at {share:.1f}% of the parameters{time_text}; {noise}")


def recommend(rows: list[dict], metric: str) -> list[str]:
    """One line per method against the reference (full when present, else the best), then the
    recommendation: the method with the fewest trained parameters whose test value is within noise
    of the best one's."""
    scored = [r for r in rows if points(r, metric)[0] is not None]
    if not scored:
        return [f"no method has a test {METRIC_TEXT[metric]}"]
    sign = 1 if metric in LOWER_IS_BETTER else -1
    best = min(scored, key=lambda r: sign * points(r, metric)[0])
    ref = next((r for r in scored if r["mode"] == "full"), best)
    lines = [method_line(r, ref, metric) for r in scored if r is not ref]
    close = [r for r in scored if r is best or within_noise(r, best, metric)]  # one seed: only the best itself
    pick = min(close, key=lambda r: r["trainable_params"])
    why = "the best" if pick is best else f"within noise of the best ({best['mode']})"
    lines.append(f"recommended: {pick['mode']}, {why} on test {METRIC_TEXT[metric]} with "
                 f"{pick['trainable_params']:,} trained parameters")
    return lines

"""Numbers as people read them: compact money and counts."""

from __future__ import annotations

import math


def compact_usd(value: float | None) -> str:
    """$950, $12.3k, $4.5M, $1.2bn."""
    if value is None or not math.isfinite(value):
        return "–"
    sign = "-" if value < 0 else ""
    value = abs(value)
    for threshold, suffix in ((1e9, "bn"), (1e6, "M"), (1e3, "k")):
        if value >= threshold:
            return f"{sign}${value / threshold:,.1f}{suffix}"
    return f"{sign}${value:,.0f}"


def count(value: int) -> str:
    return f"{value:,}"

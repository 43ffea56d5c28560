"""Numbers as people read them: compact money and counts."""

from __future__ import annotations

import math

SYMBOLS = {"USD": "$", "GBP": "£", "EUR": "€"}


def compact_usd(value: float | None, currency: str = "USD") -> str:
    """$950, $12.3k, $4.5M, $1.2bn (or £, € for a display currency)."""
    if value is None or not math.isfinite(value):
        return "–"
    symbol = SYMBOLS.get(currency, currency + " ")
    sign = "-" if value < 0 else ""
    value = abs(value)
    for threshold, suffix in ((1e9, "bn"), (1e6, "M"), (1e3, "k")):
        if value >= threshold:
            return f"{sign}{symbol}{value / threshold:,.1f}{suffix}"
    return f"{sign}{symbol}{value:,.0f}"


def count(value: int) -> str:
    return f"{value:,}"

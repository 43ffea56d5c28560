"""What a loader yields: one source record, before it is split into allocation rows.

Loaders parse their format into ``SourceRecord``; ``allocation.allocate`` splits it over its
places and sectors; ``enrich`` adds ISO3 codes, USD amounts, themes and points. Loaders never
touch the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Place:
    """One place a record names, with the source's share where it states one.

    ``share`` is a fraction (percentage / 100) or None when the source gives none; shares are
    normalised over a record's places by ``allocation.allocate``.
    ``country`` is whatever the source gives (ISO2, ISO3, numeric or a name); enrichment turns it
    into ISO3. ``lat``/``lon`` are a point the source states (WGS84 degrees).
    """

    share: float | None = None
    country: str | None = None
    region: str | None = None
    admin1_pcode: str | None = None
    admin1_name: str | None = None
    lat: float | None = None
    lon: float | None = None


@dataclass
class SectorShare:
    """One sector a record names. ``code`` is an OECD DAC 5-digit purpose code when known."""

    share: float | None = None
    code: str | None = None
    name: str | None = None


@dataclass
class SourceRecord:
    """One funding item as its source states it (a grant, a transaction, a budget...)."""

    source: str
    record_id: str
    flow_type: str
    amount: float | None
    currency: str | None
    year: int | None
    date: str | None = None  # YYYY-MM-DD
    start_date: str | None = None
    end_date: str | None = None
    funder_id: str | None = None
    funder_name: str | None = None
    funder_type: str | None = None
    recipient_id: str | None = None
    recipient_name: str | None = None
    recipient_type: str | None = None
    implementer_name: str | None = None
    title: str | None = None
    description: str | None = None
    source_sector: str | None = None  # the source's own classification text, untouched
    theme_hint: str | None = None  # free text the theme crosswalk may use (e.g. 360Giving classifications)
    # US dollars for the whole record when the source states them (FTS amountUSD): kept as given,
    # split by share like the amount, instead of converting at our annual rate.
    amount_usd: float | None = None
    places: list[Place] = field(default_factory=list)
    sectors: list[SectorShare] = field(default_factory=list)
    # Points (lat, lon) the source gives for the whole record (e.g. IATI <location>), not tied to
    # one of ``places``; allocation puts each in the place whose country contains it.
    points: list[tuple[float, float]] = field(default_factory=list)

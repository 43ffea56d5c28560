"""Split one source record into allocation rows whose shares sum to 1.

Rules, applied in this order:
1. Places: the source's percentages, normalised to sum to 1; if any place has no percentage (or
   they sum to 0), the record is split evenly over its places. No place at all is one unknown place.
2. Points the source gives for the whole record (IATI ``<location>``) go to the place whose
   country contains them; a single place takes every point. A place with k points becomes k
   allocations of 1/k of its share each, placed at the points. Points matching no place are
   dropped, because placing money where the source did not put it would mislead.
3. Sectors: the same percentage rule; the rows are the product of places and sectors.
4. Amounts: amount x share, with the last row taking the rounding remainder so the rows of a
   record sum to the record's amount.

Each allocation says how its record was split (``basis``, stored as ``allocation_basis``): ``whole``
(one row), ``source shares`` (every split followed the source's percentages) or ``even split`` (at
least one split was even because the source gave no percentages, or over a place's points).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from data_sources.records import Place, SectorShare, SourceRecord


@dataclass(frozen=True)
class Allocation:
    alloc: int
    share: float
    amount: float | None
    place: Place
    sector: SectorShare
    basis: str = "whole"


WHOLE, SOURCE_SHARES, EVEN_SPLIT = "whole", "source shares", "even split"


def shares_basis(shares: Sequence[float | None]) -> str:
    """How ``normalised_shares`` splits ``shares``: one part, the source's percentages, or evenly."""
    if len(shares) <= 1:
        return WHOLE
    if any(s is None or s < 0 for s in shares) or sum(shares) <= 0:  # type: ignore[arg-type]
        return EVEN_SPLIT
    return SOURCE_SHARES


def normalised_shares(shares: Sequence[float | None]) -> list[float]:
    """The source's shares scaled to sum to 1, or an even split when any is missing or all are 0."""
    if not shares:
        return []
    if any(s is None or s < 0 for s in shares) or sum(shares) <= 0:  # type: ignore[arg-type]
        return [1.0 / len(shares)] * len(shares)
    total = float(sum(shares))  # type: ignore[arg-type]
    return [float(s) / total for s in shares]  # type: ignore[arg-type]


def _places_with_points(
    places: list[Place],
    points: Sequence[tuple[float, float]],
    to_iso3: Callable[[str], str | None],
    country_of_point: Callable[[float, float], str | None],
) -> list[Place]:
    """Places, each expanded into its points where the record's points fall in it."""
    if not points:
        return places
    by_place: dict[int, list[tuple[float, float]]] = {i: [] for i in range(len(places))}
    if len(places) == 1:
        by_place[0] = list(points)
    else:
        iso3_of_place = {i: to_iso3(p.country) if p.country else None for i, p in enumerate(places)}
        for lat, lon in points:
            iso3 = country_of_point(lat, lon)
            for i, place_iso3 in iso3_of_place.items():
                if iso3 is not None and iso3 == place_iso3:
                    by_place[i].append((lat, lon))
                    break
    expanded: list[Place] = []
    for i, place in enumerate(places):
        own_points = by_place[i]
        if not own_points or place.lat is not None:
            expanded.append(place)
            continue
        for lat, lon in own_points:
            expanded.append(_with(place, share=place.share / len(own_points), lat=lat, lon=lon))
    return expanded


def _with(place: Place, **changes: object) -> Place:
    """A copy of ``place`` with ``changes`` (``dataclasses.replace`` without its per-call field scan)."""
    changed = place.copy()
    for name, value in changes.items():
        setattr(changed, name, value)
    return changed


def allocate(
    record: SourceRecord,
    to_iso3: Callable[[str], str | None] | None = None,
    country_of_point: Callable[[float, float], str | None] | None = None,
) -> list[Allocation]:
    """Allocations of ``record`` over its places and sectors; shares sum to 1."""
    places = record.places or [Place()]
    if to_iso3 is None or country_of_point is None:
        from data_sources import geography

        to_iso3 = to_iso3 or geography.to_iso3
        if country_of_point is None:
            named = places
            expected: list[str] = []

            def country_of_point(lat: float, lon: float) -> str | None:
                # Border points on simplified shapes go to the record's own country when it is close.
                # Worked out at the first point: most records have none.
                if not expected:
                    expected.extend(c for c in (to_iso3(p.country) for p in named if p.country) if c)
                return geography.country_of_point(lat, lon, prefer=expected)

    bases = [shares_basis([p.share for p in places])]
    place_shares = normalised_shares([p.share for p in places])
    # A place or sector at 0 % receives nothing: it gets no row rather than a zero share.
    places = [_with(p, share=s) for p, s in zip(places, place_shares, strict=True) if s > 0]
    by_points = _places_with_points(places, record.points, to_iso3, country_of_point)
    if len(by_points) > len(places):
        bases.append(EVEN_SPLIT)  # a place's share is spread evenly over its points
    places = by_points

    sectors = record.sectors or [SectorShare()]
    bases.append(shares_basis([s.share for s in sectors]))
    weighted = [(s, w) for s, w in zip(sectors, normalised_shares([s.share for s in sectors]), strict=True)]
    sectors = [s for s, w in weighted if w > 0]
    sector_shares = [w for _, w in weighted if w > 0]

    allocations: list[Allocation] = []
    assigned = 0.0
    pairs = [(p, s, ss) for p in places for s, ss in zip(sectors, sector_shares, strict=True)]
    basis = WHOLE if len(pairs) == 1 else EVEN_SPLIT if EVEN_SPLIT in bases else SOURCE_SHARES
    for index, (place, sector, sector_share) in enumerate(pairs):
        share = float(place.share) * sector_share  # type: ignore[arg-type]
        amount = None
        if record.amount is not None:
            if index == len(pairs) - 1:
                amount = record.amount - assigned
            else:
                amount = record.amount * share
                assigned += amount
        allocations.append(Allocation(index, share, amount, place, sector, basis))
    return allocations

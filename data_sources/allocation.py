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


def _split(shares: Sequence[float | None]) -> tuple[str, list[float]]:
    """(``shares_basis(shares)``, ``normalised_shares(shares)``) in one pass, with the one-share case
    (most records) without generator expressions: a load splits every record."""
    n = len(shares)
    if n == 1:
        only = shares[0]
        if only is None or only < 0 or only <= 0:  # any(None or < 0) or sum <= 0, for one share
            return WHOLE, [1.0]
        return WHOLE, [float(only) / float(sum(shares))]  # the same arithmetic as normalised_shares
    if not n:
        return WHOLE, []
    if any(s is None or s < 0 for s in shares) or sum(shares) <= 0:  # type: ignore[arg-type]
        return EVEN_SPLIT, [1.0 / n] * n
    total = float(sum(shares))  # type: ignore[arg-type]
    return SOURCE_SHARES, [float(s) / total for s in shares]  # type: ignore[arg-type]


def _one_share(share: float | None) -> float:
    """``normalised_shares([share])[0]``."""
    if share is None or share < 0 or share <= 0:
        return 1.0
    return float(share) / float(sum((share,)))


def _allocate_one(record: SourceRecord) -> list[Allocation]:
    """``allocate`` of a record with at most one place, one sector and no points (most records),
    without the general case's lists: the same allocation, or none when a share is not above 0."""
    place = record.places[0] if record.places else Place()
    sector = record.sectors[0] if record.sectors else SectorShare()
    place_share, sector_share = _one_share(place.share), _one_share(sector.share)
    if not (place_share > 0 and sector_share > 0):
        return []  # (a NaN share, as in the general case)
    placed = place.copy()
    placed.share = place_share
    amount = None if record.amount is None else record.amount - 0.0  # the last row's remainder, as below
    return [Allocation(0, float(place_share) * sector_share, amount, placed, sector, WHOLE)]


def allocate(
    record: SourceRecord,
    to_iso3: Callable[[str], str | None] | None = None,
    country_of_point: Callable[[float, float], str | None] | None = None,
) -> list[Allocation]:
    """Allocations of ``record`` over its places and sectors; shares sum to 1."""
    if not record.points and len(record.places) <= 1 and len(record.sectors) <= 1:
        return _allocate_one(record)
    return _allocate_split(record, to_iso3, country_of_point)


def _allocate_split(
    record: SourceRecord,
    to_iso3: Callable[[str], str | None] | None = None,
    country_of_point: Callable[[float, float], str | None] | None = None,
) -> list[Allocation]:
    """``allocate`` in general: any number of places, sectors and points."""
    points = record.points
    places = record.places or [Place()]
    if points and (to_iso3 is None or country_of_point is None):  # only points need them
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

    place_basis, place_shares = _split([p.share for p in places])
    bases = [place_basis]
    # A place or sector at 0 % receives nothing: it gets no row rather than a zero share.
    kept: list[Place] = []
    for place, share in zip(places, place_shares, strict=True):
        if share > 0:
            changed = place.copy()
            changed.share = share
            kept.append(changed)
    places = kept
    if points:
        by_points = _places_with_points(places, points, to_iso3, country_of_point)  # type: ignore[arg-type]
        if len(by_points) > len(places):
            bases.append(EVEN_SPLIT)  # a place's share is spread evenly over its points
        places = by_points

    sectors = record.sectors or [SectorShare()]  # a new one each time: allocations share no mutable object
    sector_basis, weights = _split([s.share for s in sectors])
    bases.append(sector_basis)
    pairs = [(s, w) for s, w in zip(sectors, weights, strict=True) if w > 0]

    allocations: list[Allocation] = []
    last = len(places) * len(pairs) - 1
    basis = WHOLE if last == 0 else EVEN_SPLIT if EVEN_SPLIT in bases else SOURCE_SHARES
    amount_total = record.amount
    assigned = 0.0
    index = 0
    for place in places:
        place_share = float(place.share)  # type: ignore[arg-type]
        for sector, sector_share in pairs:
            share = place_share * sector_share
            amount = None
            if amount_total is not None:
                if index == last:
                    amount = amount_total - assigned
                else:
                    amount = amount_total * share
                    assigned += amount
            allocations.append(Allocation(index, share, amount, place, sector, basis))
            index += 1
    return allocations

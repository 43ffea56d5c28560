"""Loader for OCHA FTS (Financial Tracking Service) funding flows: API v1 flow JSON and HDX flow CSVs.

One ``SourceRecord`` per flow. Flows with several destination countries or global clusters become
several allocations (``allocation.allocate`` splits them evenly), so their money is counted once.

Formats
-------
* JSON: a response of the FTS API v1 flow search (``/v1/public/fts/flow``, ``.../flow/custom-search``):
  ``{"data": {"incoming": ..., "flows": [...]}, "meta": {"count": N, "nextLink": URL}}``, or the
  same shape written by the fetcher after following every page. Read whole with ``json.load``
  (one page of 200 flows is about 400 kB; a fetched country-year is a few MB). Local files are
  never followed: each page file is a separate load and ``meta.nextLink`` is ignored by ``read``.
  For URLs, ``next_link`` lets the fetcher (``remote.fetch_fts``) walk the pages into one file.
* CSV: the flattened flow tables HDX publishes (``fts_incoming_funding_afg.csv``,
  ``fts_internal_funding_afg.csv``, ``fts_outgoing_funding_*.csv``): encoding sniffed as for the
  other tables (UTF-8 with or without BOM, UTF-16 with BOM, else cp1252, else Latin-1; the JSON too),
  comma-separated, a header row with ``id``, ``amountUSD``, ``srcOrganization``,
  ``destLocations``..., and optionally an HXL hashtag row (``#date``...) which is skipped. Streamed
  row by row. Multi-valued cells are joined with ``,`` and no space (``AFG,JOR``,
  ``Health,Nutrition``); a comma followed by a space belongs to a name (``Housing, Land and
  Property,Protection`` is two clusters). Only one organisation fits a cell: HDX writes
  ``Multiple`` for several, and that text is kept as the name.
* Not flows, so refused with a ``LoadError`` saying what they are: the requirements/funding CSVs
  (``fts_requirements_funding*.csv``), the plan overview JSON (``data.plans``) and the
  ``/public/location`` lookup JSON. ``detect`` does not claim them.

Mapping rules (JSON field / CSV column)
---------------------------------------
* ``record_id`` = flow ``id`` / ``id``. ``versionId`` is left out: FTS keeps a flow's id across its
  versions, so the same flow reached twice (overlapping searches, or the JSON and the CSV of one
  search) is one record: the load pipeline keeps the copy stored first and rejects the later one.
  A newer version therefore arrives by reloading the same file path (which replaces its rows).
  A flow without an id is rejected (field ``id``, record ``flows[i]`` 0-based, or ``row N``, the
  spreadsheet row, in a CSV); a later flow with an id already seen in the file is rejected too.
* ``flow_type`` from ``status``: paid -> ``disbursement``, commitment -> ``commitment``, pledge ->
  ``pledge``; anything else is rejected (field ``status``).
* Money: ``amount_usd`` = ``amountUSD`` as stated (FTS's own conversion, kept instead of our annual
  rate); missing or not a finite number -> rejected (field ``amountUSD``). ``amount``/``currency`` =
  ``originalAmount``/``originalCurrency`` when both are given (and the original amount is not 0
  while amountUSD is not, which would make the stated rate meaningless), else ``amountUSD`` in
  ``USD``. ``exchangeRate`` is not used: amount_usd / amount is the rate. Amounts are plain
  numbers as the API writes them: thousands separators, decimal commas, words, NaN and infinity
  (or an integer too large for a float) are rejected. Negative amounts are kept, zero ones too.
* ``date`` = ``date`` cut to YYYY-MM-DD (no time-zone shift). ``year`` = the destination
  ``UsageYear`` when there is exactly one (CSV: ``destUsageYearStart`` = ``destUsageYearEnd``),
  else the year of ``date``: the usage year is the year the money is for, which is what FTS
  searches by (``date`` can be years earlier for multi-year or carried-over money). Neither ->
  rejected (field ``date``). start/end dates stay empty.
* Funder: the source ``Organization`` objects (CSV ``srcOrganization``): ``funder_name`` = their
  names joined with "; ", ``funder_type`` = their ``organizationTypes`` (CSV
  ``srcOrganizationTypes``), de-duplicated and joined with "; ". Sub-types (``organizationSubTypes``)
  are left out because the CSV has none, so the JSON and CSV of the same flow give the same rows.
  ``funder_id`` stays empty: FTS organisation ids are FTS's own numbers, not org-ids.
  Recipient: the destination ``Organization`` objects the same way (``destOrganization``,
  ``destOrganizationTypes``). ``implementer_name`` stays empty (FTS does not name one apart from the
  recipient). Source locations are the donor's country and are not used.
* ``title`` empty; ``description`` = ``description``.
* Places: one ``Place`` per distinct destination ``Location`` (CSV ``destLocations``), in ISO3
  order as in the CSV, share None so a multi-country flow splits evenly (FTS marks such locations
  ``behavior: shared`` and states no split). ``country`` = the object's ``iso3`` when it has one,
  else the ISO3 ``geography.to_iso3`` finds for the name (FTS uses UN names: "Iran, Islamic
  Republic of", "occupied Palestinian territory"), else the name as given (the row is then placed
  nowhere). No destination location
  (e.g. a flow to a plan only) -> no places: the country is unknown, not guessed.
* Sectors: one ``SectorShare(code=None, name=<cluster>)`` per distinct destination ``GlobalCluster``
  (CSV ``destGlobalClusters``), sorted by name as in the CSV, share None, so a multi-cluster flow
  splits evenly. FTS clusters are not DAC purpose codes, so ``sector_code`` and ``sector_name`` stay
  empty; ``source_sector`` and ``theme_hint`` are the cluster names joined with "; " and the theme
  comes from the keyword crosswalk over that whole text, so every allocation of a multi-cluster
  flow gets the same theme (``enrich`` does not read the name of a sector without a code). Field
  clusters (type ``Cluster``, plan-specific names) are not used.
* ``boundary`` (incoming / internal / outgoing), ``flowType`` (Standard / Parked / Pass through /
  Carryover), ``onBoundary`` and parent/child links are not kept. Internal flows (a pooled fund to
  an NGO in the same country) and child flows re-count money that an incoming or parent flow in
  the same search already carries; they are loaded anyway, because dropping them would lose who
  received the money. Marking such duplicates is left to the duplicate pass (``duplicate_of``).
  Flows ``onBoundary: shared`` (several countries or usage years) are left out of FTS's own
  ``data.incoming.fundingTotal``; here they count once, split over their countries.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from . import textfiles
from .errors import LoadError, Rejection
from .records import Place, SectorShare, SourceRecord
from .textfiles import parse_iso_date, read_head

NAME = "ocha_fts"

FLOW_TYPES = {"paid": "disbursement", "commitment": "commitment", "pledge": "pledge"}

NOT_FLOWS = "fundatlas loads flows (FTS API flow JSON or the HDX fts_incoming/internal/outgoing_funding CSVs)"

# Columns that make a CSV an FTS flow table, and those of the requirements/funding summaries.
_FLOW_COLUMNS = {"id", "amountUSD"}
_PARTY_COLUMNS = {"srcOrganization", "destOrganization", "destLocations"}
_SUMMARY_COLUMNS = {"requirements", "funding"}

# A comma with no space after it separates values; "Housing, Land and Property" keeps its comma.
_CELL_SEPARATOR = re.compile(r",(?!\s)")
_JSON_FLOWS_KEY = re.compile(r'"flows"\s*:\s*\[')
_JSON_EMPTY_FLOWS = re.compile(r'"flows"\s*:\s*\[\s*\]')
_FLOW_FIELDS = ('"sourceObjects"', '"destinationObjects"', '"amountUSD"')
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_CURRENCY = re.compile(r"[A-Z]{3}")


# --------------------------------------------------------------------------- detection and URLs


def detect(head: bytes) -> bool:
    """Whether ``head`` (the first bytes of a file) is FTS flow JSON or an HDX FTS flow CSV.

    Never raises: the head is decoded leniently (BOM, UTF-16, cp1252) and split without ``csv``
    errors (a bare "\\r" in a binary head made ``csv`` raise).
    """
    if head.startswith((b"PK", textfiles.XLS_MAGIC)):
        return False
    stripped = textfiles.decode_head(head).lstrip(" \t\r\n")
    if stripped.startswith("{"):
        # A "flows" array, plus a flow's own fields (or an empty last page): the plan overview,
        # location lookup and other JSON never have both.
        if not _JSON_FLOWS_KEY.search(stripped):
            return False
        return any(key in stripped for key in _FLOW_FIELDS) or bool(_JSON_EMPTY_FLOWS.search(stripped))
    if stripped.startswith(("[", "<")):
        return False
    return _is_flow_header(textfiles.split_line(textfiles.first_line(stripped)))


def next_link(document: dict[str, Any], base_url: str | None = None) -> str | None:
    """The next page's URL (``meta.nextLink``) of one FTS API response, or None on the last page.

    A relative link is resolved against ``base_url`` when given. Anything that is not an http(s)
    URL gives None, so a fetcher never follows a malformed link. (The fetcher should still stop
    when a link repeats.)
    """
    meta = document.get("meta") if isinstance(document, dict) else None
    link = meta.get("nextLink") if isinstance(meta, dict) else None
    if not isinstance(link, str) or not link.strip():
        return None
    link = link.strip()
    if base_url:
        link = urljoin(base_url, link)
    parts = urlsplit(link)
    return link if parts.scheme.lower() in ("http", "https") and parts.netloc else None


# --------------------------------------------------------------------------- reading


@dataclass
class _Org:
    name: str | None
    types: list[str] = field(default_factory=list)


@dataclass
class _Flow:
    """One flow's fields, the same whether read from the JSON or the CSV."""

    label: str  # where the flow is in the file, for rejections without an id
    id: Any
    amount_usd: Any
    original_amount: Any
    original_currency: Any
    status: Any
    date: Any
    usage_years: list[str]
    description: Any
    funders: list[_Org]
    recipients: list[_Org]
    locations: list[str]
    clusters: list[str]


def read(path: Path) -> Iterator[SourceRecord | Rejection]:
    """Yield one ``SourceRecord`` per flow of an FTS flow JSON or CSV file, or a ``Rejection``."""
    path = Path(path)
    head = read_head(path)
    stripped = textfiles.decode_head(head).lstrip(" \t\r\n\ufeff")
    if not stripped:
        raise LoadError(str(path), "the file is empty")
    flows = _json_flows(path) if stripped.startswith(("{", "[")) else _csv_flows(path)
    seen: set[str] = set()
    for flow in flows:
        yield flow if isinstance(flow, Rejection) else _record(flow, seen)


def _json_flows(path: Path) -> Iterator[_Flow | Rejection]:
    # Also refuses, as LoadError, nesting too deep for json.loads (RecursionError) and 5000-digit ints.
    document = textfiles.read_json(path)
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("flows"), list):
        raise LoadError(str(path), _not_flows_reason(document))
    for i, raw in enumerate(data["flows"]):
        label = f"flows[{i}]"
        if not isinstance(raw, dict):
            yield Rejection(label, "id", "the flow is not a JSON object")
            continue
        sources = _objects(raw.get("sourceObjects"))
        destinations = _objects(raw.get("destinationObjects"))
        yield _Flow(
            label=label,
            id=raw.get("id"),
            amount_usd=raw.get("amountUSD"),
            original_amount=raw.get("originalAmount"),
            original_currency=raw.get("originalCurrency"),
            status=raw.get("status"),
            date=raw.get("date"),
            usage_years=[_text(o.get("name")) or "" for o in destinations if o.get("type") == "UsageYear"],
            description=raw.get("description"),
            funders=[_org(o) for o in sources if o.get("type") == "Organization"],
            recipients=[_org(o) for o in destinations if o.get("type") == "Organization"],
            locations=[loc for o in destinations if o.get("type") == "Location" if (loc := _location(o))],
            clusters=[name for o in destinations if o.get("type") == "GlobalCluster" if (name := _text(o.get("name")))],
        )


def _not_flows_reason(document: Any) -> str:
    """Why a JSON document is not a flow response, naming what it is when we know."""
    data = document.get("data") if isinstance(document, dict) else None
    if isinstance(data, dict) and "plans" in data:
        return f"this is an FTS plan overview (requirements/funding by plan), not flows; {NOT_FLOWS}"
    if isinstance(data, list) and data and isinstance(data[0], dict) and {"iso3", "adminLevel"} <= data[0].keys():
        return f"this is the FTS location lookup (/public/location), not flows; {NOT_FLOWS}"
    if isinstance(document, dict) and document.get("status") not in (None, "ok"):
        message = document.get("message") or document.get("status")
        return f"the FTS API answered with an error ({message}), not flows"
    return 'not FTS flow JSON: no "data": {"flows": [...]} object; ' + NOT_FLOWS


def _objects(value: Any) -> list[dict[str, Any]]:
    return [o for o in value if isinstance(o, dict)] if isinstance(value, list) else []


def _org(obj: dict[str, Any]) -> _Org:
    types = obj.get("organizationTypes")
    names = types if isinstance(types, list) else [types]
    return _Org(_text(obj.get("name")), [t for t in (_text(n) for n in names) if t])


def _location(obj: dict[str, Any]) -> str | None:
    return _text(obj.get("iso3")) or _text(obj.get("name"))


def _csv_flows(path: Path) -> Iterator[_Flow | Rejection]:
    # Encoding sniffed like the other tables (BOM, UTF-16, cp1252/Latin-1), not UTF-8 only.
    with textfiles.open_text(path) as handle:
        lines = textfiles.BoundedLines(handle, str(path))
        reader = csv.reader(lines)
        try:
            header = [h.strip() for h in next(reader, [])]
            columns = set(header)
            if not _is_flow_header(header):
                if _SUMMARY_COLUMNS <= columns:
                    raise LoadError(str(path), f"this is an FTS requirements/funding summary, not flows; {NOT_FLOWS}")
                missing = sorted((_FLOW_COLUMNS - columns) or (_PARTY_COLUMNS - columns))
                raise LoadError(str(path), f"not an FTS flow CSV: missing columns {missing}; {NOT_FLOWS}")
            for number, values in enumerate(reader, start=2):  # spreadsheet row numbers
                if not any(v.strip() for v in values):
                    continue
                if cut := textfiles.cut_short(lines, values, len(header)):  # a truncated file's last row
                    column, reason = cut
                    title = (header[column] if column < len(header) else "") or f"column {column + 1}"
                    yield Rejection(f"row {number}", title, reason)
                    continue
                if values[0].lstrip().startswith("#"):
                    continue  # the HXL hashtag row HDX adds under the header
                yield _csv_flow(dict(zip(header, values, strict=False)), f"row {number}")
        except UnicodeDecodeError as exc:
            raise LoadError(str(path), f"bad text encoding near line {reader.line_num + 1}: {exc.reason}") from exc
        except csv.Error as exc:
            raise LoadError(str(path), f"CSV cannot be parsed near line {reader.line_num}: {exc}") from exc


def _csv_flow(row: dict[str, str], label: str) -> _Flow:
    start, end = _text(row.get("destUsageYearStart")), _text(row.get("destUsageYearEnd"))
    years = [y for y in dict.fromkeys((start, end)) if y]
    return _Flow(
        label=label,
        id=row.get("id"),
        amount_usd=row.get("amountUSD"),
        original_amount=row.get("originalAmount"),
        original_currency=row.get("originalCurrency"),
        status=row.get("status"),
        date=row.get("date"),
        usage_years=years,
        description=row.get("description"),
        funders=_csv_orgs(row, "src"),
        recipients=_csv_orgs(row, "dest"),
        locations=_split_cell(row.get("destLocations")),
        clusters=_split_cell(row.get("destGlobalClusters")),
    )


def _csv_orgs(row: dict[str, str], side: str) -> list[_Org]:
    name = _text(row.get(f"{side}Organization"))
    types = _split_cell(row.get(f"{side}OrganizationTypes"))
    return [_Org(name, types)] if name or types else []


def _split_cell(value: str | None) -> list[str]:
    if not value:
        return []
    return [part.strip() for part in _CELL_SEPARATOR.split(value) if part.strip()]


def _is_flow_header(header: Iterable[str]) -> bool:
    columns = set(header)
    return _FLOW_COLUMNS <= columns and bool(_PARTY_COLUMNS & columns)


# --------------------------------------------------------------------------- mapping


def _record(flow: _Flow, seen: set[str]) -> SourceRecord | Rejection:
    record_id = _text(flow.id)
    if record_id is None:
        return Rejection(flow.label, "id", "the flow has no id")
    if record_id in seen:
        return Rejection(record_id, "id", "duplicate flow id in this file; the first is kept")
    seen.add(record_id)

    status = (_text(flow.status) or "").lower()
    if status not in FLOW_TYPES:
        reason = f"status {textfiles.shown(flow.status)} is not paid, commitment or pledge"
        return Rejection(record_id, "status", reason)
    amount_usd = _number(flow.amount_usd)
    if amount_usd is None:
        shown = textfiles.shown(flow.amount_usd)
        reason = "no amountUSD" if _text(flow.amount_usd) is None else f"amountUSD {shown} is not a number"
        return Rejection(record_id, "amountUSD", reason)
    amount, currency = amount_usd, "USD"
    original = _number(flow.original_amount)
    original_currency = (_text(flow.original_currency) or "").upper()
    # The original amount only when the stated USD can be read as its conversion.
    if original is not None and _CURRENCY.fullmatch(original_currency) and (original != 0 or amount_usd == 0):
        amount, currency = original, original_currency

    day = _iso_day(flow.date)
    year = _usage_year(flow.usage_years)
    if year is None and day is not None:
        year = int(day[:4])
    if year is None:
        reason = "no date" if _text(flow.date) is None else f"date {textfiles.shown(flow.date)} is not a date"
        return Rejection(record_id, "date", reason + " and no single usage year")

    funder_name, funder_type = _orgs(flow.funders)
    recipient_name, recipient_type = _orgs(flow.recipients)
    # Sorted, as the CSV export sorts them, so the JSON and the CSV of a flow give the same rows.
    clusters = sorted(set(flow.clusters), key=str.casefold)
    # Bounded (textfiles.country_text): a 20,000-character "location" took 50 s in geography.to_iso3.
    countries = sorted({textfiles.country_iso3(loc) or textfiles.country_text(loc) for loc in flow.locations} - {None})
    sector_text = "; ".join(clusters) or None
    return SourceRecord(
        source=NAME,
        record_id=record_id,
        flow_type=FLOW_TYPES[status],
        amount=amount,
        currency=currency,
        year=year,
        date=day,
        funder_name=funder_name,
        funder_type=funder_type,
        recipient_name=recipient_name,
        recipient_type=recipient_type,
        description=_text(flow.description),
        source_sector=sector_text,
        theme_hint=sector_text,
        amount_usd=amount_usd,
        places=[Place(country=country) for country in countries],
        sectors=[SectorShare(name=name) for name in clusters],
    )


def _orgs(orgs: list[_Org]) -> tuple[str | None, str | None]:
    names = list(dict.fromkeys(o.name for o in orgs if o.name))
    types = list(dict.fromkeys(t for o in orgs for t in o.types))
    return "; ".join(names) or None, "; ".join(types) or None


def _usage_year(names: list[str]) -> int | None:
    """The usage year when the flow names exactly one (valid) year."""
    distinct = {n.strip() for n in names}
    if len(distinct) != 1:
        return None
    name = distinct.pop()
    return int(name) if re.fullmatch(r"\d{4}", name) and 1900 <= int(name) <= 2100 else None


def _iso_day(value: Any) -> str | None:
    day = parse_iso_date(_text(value))
    return day.isoformat() if day else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:  # a JSON integer too large for a float (it crashed the load)
            return None
    else:
        text = str(value).strip()
        if not _NUMBER.fullmatch(text):
            return None
        number = float(text)
    return number if math.isfinite(number) else None


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # an id or year written as 1234.0
    text = str(value).strip()
    return text or None

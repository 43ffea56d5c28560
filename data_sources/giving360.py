"""Loader for 360Giving data: the Standard's JSON package, and XLSX / CSV with its column titles.

One ``SourceRecord`` per grant (``flow_type`` ``grant``).

Formats
-------
* JSON: a package ``{"grants": [...], ...}`` (other top-level keys are ignored); read whole with
  ``json.loads`` (packages are at most tens of MB). Encoding: UTF-8 (with or without BOM), UTF-16
  with BOM, else cp1252/Latin-1 (``textfiles.read_json``). Invalid JSON raises ``LoadError`` with
  the line and column; so does nesting too deep to read.
* XLSX: every sheet whose header row (one of its first 10 rows) has the 360Giving titles
  ``Identifier``, ``Amount Awarded`` and a ``Funding Org:...`` column is read, row by row
  (openpyxl read-only); other sheets ("Meta", "Summary", ...) are skipped. Multi-table workbooks
  whose beneficiary locations etc. sit on separate sheets are not joined: only the grants sheet
  is read. Hidden sheets are never read (a hidden copy of the grants must not double or replace
  the visible one); when the only sheets with the titles are hidden, ``LoadError`` says so.
  Formulas give their saved values; one saved without a value rejects its grant naming the
  field; merged cells and dates typed as Excel serial numbers are read as shown
  (``textfiles``, "XLSX").
* CSV: encoding sniffed (UTF-8 with or without BOM, UTF-16 with BOM, else cp1252, else latin-1),
  delimiter sniffed from the header line (``,`` ``;`` tab ``|``), read row by row; lines end
  with LF, CRLF or CR, mixed. A line over 1 MiB is a ``LoadError``; the last row of a file cut
  short (fewer cells than the header and no final line break, or inside a quoted cell) is
  rejected as truncated, naming the column where it stops.
* Column titles match case-insensitively and whitespace-tolerantly: ``Identifier``,
  ``Amount Awarded``, ``Recipient Org:Identifier``, numbered ``Beneficiary Location:1:Name``
  ... and the JSON-path style (``id``, ``amountAwarded``, ``recipientOrganization/0/id``). An
  unnumbered title that repeats (two ``Beneficiary Location:Name`` columns) is the next item.
  Unknown columns are ignored.

Mapping rules
-------------
* ``record_id`` = grant ``id``. Missing -> rejected (field ``Identifier``, record ``row N``, the
  spreadsheet row number, prefixed with the sheet name when the workbook has several sheets, or
  ``grants[i]`` in JSON, 0-based). A later grant with an id already seen in the file is rejected.
* ``amount`` = ``amountAwarded`` as a float; text such as ``"£1,234.50"`` or ``"1,234"`` is
  parsed (currency symbols and codes, spaces and thousands commas dropped; a decimal point only,
  so ``"12,5"`` is not a number: ``textfiles.parse_amount``). Missing or not a finite number
  -> rejected (field ``Amount Awarded``): NaN, ``"Infinity"``, words (``"one thousand"``) and a
  decimal comma (``"1.234,56"``, ``"1 234,56"``) are; the Swiss ``"1'234.56"`` is read.
  Negative amounts are kept (corrections), and so are zero amounts (a grant of 0 is stated, not
  missing).
* ``currency`` = ``currency`` upper-cased; missing or not three letters -> rejected (``Currency``).
* ``date`` / ``year`` from ``awardDate``: ISO dates and datetimes (the date part is taken as
  written, no time-zone shift), Excel date cells (and Excel serial numbers in XLSX), ``yyyy/mm/dd``
  and day-first ``dd/mm/yyyy`` (also with ``.`` or ``-``), as UK publishers write them. Missing,
  unparseable or a year outside 1900-2100 -> rejected (``Award Date``). ``start_date`` /
  ``end_date`` from ``plannedDates[0]`` the same way; unparseable planned dates are left empty.
  Rejection fields always use the Standard's spreadsheet titles, whatever the file format.
* Funder: ``fundingOrganization[0]`` id and name; ``funder_type`` only from its
  ``organisationType`` when given. Recipient: ``recipientIndividual`` (id, name, type
  ``Individual``) when present, else ``recipientOrganization[0]`` (id, name, ``organisationType``
  joined with "; " when it is a list).
* ``title``, ``description`` as given. ``source_sector`` = the classification titles, then the
  grant programme titles, de-duplicated and joined with "; "; ``theme_hint`` is the same text.
* Places: one ``Place`` per ``beneficiaryLocation`` (share None, so the grant splits evenly):
  ``country`` = ``countryCode``; else ``GB`` when ``geoCode`` is a UK ONS/GSS code (a letter
  E, W, S, N or K and 8 digits, e.g. LSOA ``E01011681``, ward ``E05002094``); else ``GB`` when the
  name is one of these UK names (case-insensitive, a trailing "Wide"/"- Wide"/"Whole" ignored, and for a
  GrantNav-style path such as ``England/South West/Plymouth`` its first part): ``UK``, ``United
  Kingdom``, ``Great Britain``, ``England``, ``Scotland``, ``Wales``, ``Northern Ireland``.
  Other names that are a country's name (``geography.to_iso3``) give that country.
  ``admin1_name`` = the location name, except for whole-UK and country names; geo codes are not
  P-codes and are not kept. ``lat``/``lon`` only when both
  are valid numbers in range. A location with nothing usable is dropped.
* Fallback: when no location has a country, the grant is **placed where the recipient is based**:
  the recipient organisation's ``addressCountry`` when it is one of the UK names above (-> GB) or
  an ISO alpha-2 code, else its ``location[].countryCode``, else the country prefix of its
  org-id (``GB-CHC-``, ``GB-COH-``, ``GB-SC-``, ``US-EIN-`` ...; the user-assigned prefixes XA-XZ
  such as ``XI-``/``XM-``, AA, QM-QZ and ZZ are not countries). That country is set on each
  name-only location (keeping its name), or becomes the one place when there is none.
* ``recipient_country`` (stored as ``recipient_country_iso3``) = that same recipient country,
  whatever the beneficiary locations say: where the recipient is based, next to where the money is
  spent. None for an individual recipient, and when neither address nor org-id says.
* No record-level points: coordinates live in the places.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Iterator
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

from . import textfiles
from .errors import LoadError, Rejection
from .records import Place, SeenIds, SourceRecord
from .textfiles import cell_text, parse_amount, parse_date, sniff_delimiter

NAME = "360giving"

_HEADER_SCAN_ROWS = 10  # how far down a sheet the header row may be

# Single-segment titles (and JSON keys) of the grant itself.
_TOP_KEYS = {
    "identifier": "id",
    "id": "id",
    "title": "title",
    "description": "description",
    "currency": "currency",
    "amount awarded": "amountAwarded",
    "amountawarded": "amountAwarded",
    "award date": "awardDate",
    "awarddate": "awardDate",
}
# Array-valued parts of a grant, by spreadsheet title and by JSON key (lower-cased).
_GROUP_KEYS = {
    "planned dates": "plannedDates",
    "planneddates": "plannedDates",
    "recipient org": "recipientOrganization",
    "recipientorganization": "recipientOrganization",
    "recipient ind": "recipientIndividual",
    "recipient individual": "recipientIndividual",
    "recipientindividual": "recipientIndividual",
    "funding org": "fundingOrganization",
    "fundingorganization": "fundingOrganization",
    "beneficiary location": "beneficiaryLocation",
    "beneficiarylocation": "beneficiaryLocation",
    "grant programme": "grantProgramme",
    "grantprogramme": "grantProgramme",
    "classifications": "classifications",
    "location": "location",  # recipientOrganization/location
}
_FIELD_KEYS = {
    "identifier": "id",
    "id": "id",
    "name": "name",
    "title": "title",
    "code": "code",
    "country": "addressCountry",
    "addresscountry": "addressCountry",
    "country code": "countryCode",
    "countrycode": "countryCode",
    "geographic code": "geoCode",
    "geocode": "geoCode",
    "geographic code type": "geoCodeType",
    "geocodetype": "geoCodeType",
    "latitude": "latitude",
    "longitude": "longitude",
    "start date": "startDate",
    "startdate": "startDate",
    "end date": "endDate",
    "enddate": "endDate",
    "organisation type": "organisationType",
    "organisationtype": "organisationType",
}

# Names that say "the United Kingdom" (no admin1) or one of its nations (admin1 = the name).
_UK_WHOLE = {"uk", "united kingdom", "great britain"}
_UK_NATIONS = {"england", "scotland", "wales", "northern ireland"}
_ONS_CODE = re.compile(r"[EWSNK]\d{8}")
_ORG_ID_COUNTRY = re.compile(r"([A-Z]{2})-[A-Za-z0-9]")
_ISO2 = re.compile(r"[A-Z]{2}")
_CURRENCY = re.compile(r"[A-Z]{3}")
_SPACES = re.compile(r"\s+")
_WIDE_OR_WHOLE = re.compile(r"\s*-?\s*(?:wide|whole)$")

_Path = tuple[str | int, ...]


# --------------------------------------------------------------------------- detection


def detect(head: bytes) -> bool:
    """Whether ``head`` (the first bytes of a file) looks like 360Giving JSON, CSV or XLSX.

    For a zip this only says "it may be a workbook"; ``sniff_xlsx`` confirms from the titles.
    Never raises: any head that cannot be read as one of these is simply not 360Giving.
    """
    if head.startswith(b"PK\x03\x04"):
        return b"xl/" in head
    if head.startswith(textfiles.XLS_MAGIC):
        return False
    # Decoded first (BOM, UTF-16, cp1252), so that a UTF-16 package is recognised too.
    text = textfiles.decode_head(head).lstrip(" \t\r\n")
    if text.startswith("{"):
        return _has_top_level_grants(text)
    if not text or text.startswith(("<", "[")):
        return False
    # The first line whatever ends it: a bare "\r" made csv raise here (e.g. on a .dbf file).
    return _is_grant_header(_split_header(textfiles.first_line(text)))


def sniff_xlsx(path: Path) -> bool:
    """Whether a workbook has a sheet with 360Giving column titles in its first rows."""
    return textfiles.xlsx_has_row(path, lambda values: _is_grant_header(_header_paths(values)), _HEADER_SCAN_ROWS)


_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]]')
_JSON_KEY_END = re.compile(r"\s*:\s*(\[)?")


def _has_top_level_grants(text: str) -> bool:
    # The head may be cut anywhere, so scan tokens instead of parsing: a "grants" key at depth 1
    # whose value is an array.
    depth = 0
    for match in _JSON_TOKEN.finditer(text):
        token = match.group(0)
        if token[0] == '"':
            if depth == 1 and token == '"grants"':
                after = _JSON_KEY_END.match(text, match.end())
                if after:
                    return bool(after.group(1))
        elif token in "{[":
            depth += 1
        else:
            depth -= 1
    return False


def _split_header(line: str) -> list[_Path | None]:
    return _header_paths(textfiles.split_line(line, sniff_delimiter(line)))


# --------------------------------------------------------------------------- column titles


def _norm_title(title: str) -> str:
    text = re.sub(r"\s+", " ", title.replace("\u00a0", " ").replace("\ufeff", "")).strip().casefold()
    return re.sub(r"\s*:\s*", ":", text)


def _title_path(title: Any) -> _Path | None:
    """The grant path of one column title, with -1 for an index the title leaves out."""
    if not isinstance(title, str) or not title.strip():
        return None
    text = _norm_title(title)
    if "/" in text and ":" not in text:
        segments = [s.strip() for s in text.split("/")]  # JSON-path style: recipientOrganization/0/id
    else:
        segments = text.split(":")
    if len(segments) == 1:
        key = _TOP_KEYS.get(segments[0])
        return (key,) if key else None
    path: list[str | int] = []
    rest = segments
    while len(rest) > 1:
        group = _GROUP_KEYS.get(rest[0])
        if group is None or (group == "location") != bool(path):
            return None  # "location" only nests inside an organisation
        path.append(group)
        rest = rest[1:]
        if rest[0].isdigit():
            path.append(int(rest[0]))
            rest = rest[1:]
        else:
            path.append(-1)
    if len(rest) != 1 or not path:
        return None
    field = _FIELD_KEYS.get(rest[0])
    return (*path, field) if field else None


def _header_paths(cells: Iterable[Any]) -> list[_Path | None]:
    """Paths for a header row; an unnumbered title seen before becomes the next list item."""
    used: set[_Path] = set()
    out: list[_Path | None] = []
    for cell in cells:
        path = _title_path(cell)
        if path is not None:
            last_implicit = max((i for i, seg in enumerate(path) if seg == -1), default=None)
            resolved = tuple(0 if seg == -1 else seg for seg in path)
            if last_implicit is not None:
                n = 0
                while resolved in used:
                    n += 1
                    resolved = resolved[:last_implicit] + (n,) + resolved[last_implicit + 1 :]
            if resolved in used:
                path = None  # an exact repeat of an explicit title: the first column wins
            else:
                used.add(resolved)
                path = resolved
        out.append(path)
    return out


def _is_grant_header(paths: list[_Path | None]) -> bool:
    present = {p for p in paths if p}
    return (
        ("id",) in present
        and ("amountAwarded",) in present
        and any(p[0] == "fundingOrganization" for p in present)
    )


def _put(grant: dict[str, Any], path: _Path, value: Any) -> None:
    node: Any = grant
    for seg, nxt in zip(path[:-1], path[1:], strict=True):
        if isinstance(seg, int):
            while len(node) <= seg:
                node.append({})
            node = node[seg]
        else:
            node = node.setdefault(seg, [] if isinstance(nxt, int) else {})
    node[path[-1]] = value


def _row_to_grant(paths: list[_Path | None], values: Iterable[Any]) -> dict[str, Any] | None:
    """The nested grant of one row, or None for a blank row."""
    grant: dict[str, Any] = {}
    blank = True
    for path, value in zip(paths, values, strict=False):
        if isinstance(value, str):
            value = value.strip()
        if value is None or value == "":
            continue
        blank = False
        if path is not None:
            _put(grant, path, value)
    return None if blank else grant


# --------------------------------------------------------------------------- reading


def read(path: Path) -> Iterator[SourceRecord | Rejection]:
    """Yield one ``SourceRecord`` per grant of a 360Giving JSON, XLSX or CSV file, or a ``Rejection``."""
    path = Path(path)
    head = textfiles.read_head(path)
    if not head.strip():
        raise LoadError(str(path), "the file is empty")
    textfiles.refuse_old_xls(path, head)
    if head.startswith(textfiles.XLSX_MAGIC):
        grants: Iterator[tuple[str, dict[str, Any], bool] | Rejection] = _xlsx_grants(path)
    elif textfiles.decode_head(head).lstrip(" \t\r\n").startswith(("{", "[")):
        grants = _json_grants(path)
    else:
        grants = _csv_grants(path)
    seen = SeenIds()  # compact: a dict of every grant id grew with the file
    for item in grants:
        if isinstance(item, Rejection):
            yield item
            continue
        where, grant, excel = item
        result = _grant_to_record(grant, where, excel)
        if isinstance(result, SourceRecord):
            first = seen.get(result.record_id)
            if first is not None:
                result = Rejection(result.record_id, "Identifier", f"duplicate grant id (first at {first})")
            else:
                seen.add(result.record_id, where)
        yield result


def _json_grants(path: Path) -> Iterator[tuple[str, dict[str, Any], bool]]:
    # Streamed, one grant at a time, so memory does not grow with the file. Also refuses, as
    # LoadError, nesting too deep for json.loads (RecursionError) and 5000-digit ints.
    grants = textfiles.stream_json_list(path, "grants")
    try:
        for i, grant in enumerate(grants):
            where = f"grants[{i}]"
            if not isinstance(grant, dict):
                # Handed on as a grant without id, so it is rejected and counted.
                yield where, {}, False
                continue
            yield where, grant, False
    except textfiles.NoJsonList:
        raise LoadError(str(path), 'not a 360Giving package: no top-level "grants" list') from None


def _xlsx_grants(path: Path) -> Iterator[tuple[str, dict[str, Any], bool]]:
    with textfiles.open_workbook(path) as wb:
        found = False
        hidden: list[str] = []
        for ws in wb.worksheets:
            paths = None
            for rownum, values in textfiles.sheet_rows(ws):
                if paths is None:
                    if rownum > _HEADER_SCAN_ROWS:
                        break  # no 360Giving titles on this sheet (e.g. "Meta", "Summary")
                    candidate = _header_paths(values)
                    if _is_grant_header(candidate):
                        if not textfiles.visible(ws):
                            hidden.append(ws.title)  # hidden grants (an old copy?) are never read
                            break
                        paths, found = candidate, True
                    continue
                grant = _row_to_grant(paths, values)
                if grant is not None:
                    where = f"row {rownum}" if len(wb.worksheets) == 1 else f"{ws.title!r} row {rownum}"
                    yield where, grant, True
        if not found and hidden:
            raise LoadError(
                str(path),
                f"the only sheets with 360Giving column titles are hidden ({', '.join(map(repr, hidden))}); "
                "hidden sheets are not read: unhide the grants sheet to load it",
            )
        if not found:
            raise LoadError(
                str(path),
                "no sheet with 360Giving column titles (Identifier, Amount Awarded, Funding Org:...)",
            )


def _csv_grants(path: Path) -> Iterator[tuple[str, dict[str, Any], bool] | Rejection]:
    with textfiles.open_text(path) as fh:
        delimiter = textfiles.sniff_header_delimiter(fh)
        lines = textfiles.BoundedLines(fh, str(path))
        reader = csv.reader(lines, delimiter=delimiter)
        try:
            header = next(reader, [])
            paths = _header_paths(header)
            if not _is_grant_header(paths):
                raise LoadError(
                    str(path),
                    "no 360Giving column titles in the header row (Identifier, Amount Awarded, "
                    "Funding Org:...)",
                )
            for rownum, values in enumerate(reader, start=2):
                if cut := textfiles.cut_short(lines, values, len(header), delimiter):  # a truncated file's last row
                    column, reason = cut
                    yield Rejection(f"row {rownum}", _column_title(header, column), reason)
                    continue
                grant = _row_to_grant(paths, values)
                if grant is not None:
                    yield f"row {rownum}", grant, False
        except csv.Error as exc:
            raise LoadError(str(path), f"CSV cannot be parsed near line {reader.line_num}: {exc}") from exc


def _column_title(header: list[str], index: int) -> str:
    title = header[index].strip() if index < len(header) else ""
    return title or f"column {index + 1}"


# --------------------------------------------------------------------------- one grant


def _items(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict)]
    return []


def _first(value: Any) -> dict[str, Any]:
    """``_items(value)[0]``, else an empty dict: without building the list."""
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                return item
    return {}


def _date(value: Any, excel: bool) -> date | None:
    """``parse_date(value, excel=excel)``, cached for text (a file repeats a few thousand dates)."""
    if value.__class__ is str:
        return _text_date(value, excel)
    return parse_date(value, excel=excel)


@lru_cache(maxsize=8192)
def _text_date(text: str, excel: bool) -> date | None:
    return parse_date(text, excel=excel)  # a ValueError is raised again on each call, never cached


def _optional_date(value: Any, excel: bool) -> str | None:
    try:
        found = _date(value, excel)
    except ValueError:
        return None  # planned dates are informative only; a bad one does not cost the grant
    return found.isoformat() if found else None


def _coordinate(value: Any, limit: float) -> float | None:
    if value is None:  # the usual case, without float(None)'s exception
        return None
    try:
        number = float(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError, OverflowError):  # OverflowError: a JSON integer too large for a float
        return None
    if number is None or not math.isfinite(number) or abs(number) > limit:
        return None
    return number


@lru_cache(maxsize=8192)
def _uk_name(name: str) -> str | None:
    """``"whole"`` or ``"nation"`` when ``name`` is one of the few UK names we trust, else None.
    Cached: a file repeats a few thousand location names and addresses."""
    text = _SPACES.sub(" ", name.casefold()).strip()
    text = text.split("/", 1)[0].strip()  # GrantNav path "England/South West/Plymouth"
    text = _WIDE_OR_WHOLE.sub("", text).strip()  # "UK Wide", "England - Wide", "UK Whole"
    if text in _UK_WHOLE:
        return "whole"
    if text in _UK_NATIONS:
        return "nation"
    return None


def _country_code(value: Any) -> str | None:
    text = cell_text(value)
    if text is None:
        return None
    code = text.upper()
    return code if _ISO2.fullmatch(code) and not _user_assigned(code) else None


def _user_assigned(code: str) -> bool:
    # ISO 3166 user-assigned alpha-2 codes (org-id.guide uses XI-, XM- ... for non-countries).
    return code in ("AA", "ZZ") or code[0] == "X" or (code[0] == "Q" and code[1] >= "M")


def _places(grant: dict[str, Any]) -> list[Place]:
    places: list[Place] = []
    for loc in _items(grant.get("beneficiaryLocation")):
        name = cell_text(loc.get("name"))
        country = textfiles.country_text(cell_text(loc.get("countryCode")))  # (no 5,000-character "code")
        country = country.upper() if country else None
        geo_code = cell_text(loc.get("geoCode"))
        uk = _uk_name(name) if name else None
        if country is None and geo_code and _ONS_CODE.fullmatch(geo_code.upper()):
            country = "GB"
        if country is None and uk:
            country = "GB"
        named_country = textfiles.country_iso3(name) if name and not uk else None  # bounded: see country_text
        if country is None and named_country:
            country = named_country  # a location named after a country, e.g. "Kenya"
        lat = _coordinate(loc.get("latitude"), 90)
        lon = _coordinate(loc.get("longitude"), 180)
        if lat is None or lon is None:
            lat = lon = None
        # A name that is the whole country (or the whole UK) says nothing below country level.
        admin1 = None if uk == "whole" or named_country else name
        if country is None and admin1 is None and lat is None:
            continue  # nothing to place (e.g. an empty location cell)
        places.append(Place(country=country, admin1_name=admin1, lat=lat, lon=lon))
    if any(p.country for p in places):
        return places
    base = _recipient_country(grant)
    if base is None:
        return places
    if not places:
        return [Place(country=base)]
    for place in places:
        place.country = base
    return places


def _recipient_country(grant: dict[str, Any]) -> str | None:
    """Where the recipient organisation is based, as ISO alpha-2, when its data says."""
    org = _first(grant.get("recipientOrganization"))
    if not org or _items(grant.get("recipientIndividual")):
        return None
    address = cell_text(org.get("addressCountry"))
    if address:
        if _uk_name(address):
            return "GB"
        code = _country_code(address)
        if code:
            return code
    for loc in _items(org.get("location")):
        code = _country_code(loc.get("countryCode"))
        if code:
            return code
    org_id = cell_text(org.get("id")) or ""
    m = _ORG_ID_COUNTRY.match(org_id.upper())
    if m and not _user_assigned(m[1]):
        return m[1]
    return None


def _org_type(value: Any) -> str | None:
    if isinstance(value, list):
        parts = [t for t in (cell_text(v) for v in value) if t]
        return "; ".join(parts) or None
    return cell_text(value)


def _sector_text(grant: dict[str, Any]) -> str | None:
    titles: list[str] = []
    for item in _items(grant.get("classifications")) + _items(grant.get("grantProgramme")):
        title = cell_text(item.get("title"))
        if title and title not in titles:
            titles.append(title)
    return "; ".join(titles) or None


def _grant_to_record(grant: dict[str, Any], where: str, excel: bool) -> SourceRecord | Rejection:
    grant_id = cell_text(grant.get("id"))
    if grant_id is None:
        return Rejection(where, "Identifier", "missing grant identifier")

    raw_amount = grant.get("amountAwarded")
    try:
        amount = None if raw_amount == "" else parse_amount(raw_amount)
    except ValueError as exc:
        return Rejection(grant_id, "Amount Awarded", str(exc))
    if amount is None:
        return Rejection(grant_id, "Amount Awarded", "missing")

    currency = cell_text(grant.get("currency"))
    if currency is None:
        return Rejection(grant_id, "Currency", "missing")
    if not _CURRENCY.fullmatch(currency.upper()):
        return Rejection(grant_id, "Currency", f"not an ISO 4217 currency code: {textfiles.shown(currency)}")

    try:
        awarded = _date(grant.get("awardDate"), excel)
    except ValueError as exc:
        return Rejection(grant_id, "Award Date", str(exc))
    if awarded is None:
        return Rejection(grant_id, "Award Date", "missing")
    if not 1900 <= awarded.year <= 2100:
        return Rejection(grant_id, "Award Date", f"year {awarded.year} is outside 1900-2100")

    planned = _first(grant.get("plannedDates"))
    funder = _first(grant.get("fundingOrganization"))
    individual = _first(grant.get("recipientIndividual"))
    if individual:
        recipient_id, recipient_name = cell_text(individual.get("id")), cell_text(individual.get("name"))
        recipient_type: str | None = "Individual"
    else:
        org = _first(grant.get("recipientOrganization"))
        recipient_id, recipient_name = cell_text(org.get("id")), cell_text(org.get("name"))
        recipient_type = _org_type(org.get("organisationType"))
    sector_text = _sector_text(grant)
    return SourceRecord(
        source=NAME,
        record_id=grant_id,
        flow_type="grant",
        amount=amount,
        currency=currency.upper(),
        year=awarded.year,
        date=awarded.isoformat(),
        start_date=_optional_date(planned.get("startDate"), excel),
        end_date=_optional_date(planned.get("endDate"), excel),
        funder_id=cell_text(funder.get("id")),
        funder_name=cell_text(funder.get("name")),
        funder_type=_org_type(funder.get("organisationType")),
        recipient_id=recipient_id,
        recipient_name=recipient_name,
        recipient_type=recipient_type,
        title=cell_text(grant.get("title")),
        description=cell_text(grant.get("description")),
        source_sector=sector_text,
        theme_hint=sector_text,
        recipient_country=_recipient_country(grant),
        places=_places(grant),
    )

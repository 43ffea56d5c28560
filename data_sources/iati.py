"""Loader for IATI activity XML (versions 2.01 to 2.03).

One ``SourceRecord`` per funding transaction, or per budget when an activity reports none.

Mapping rules
-------------
* Files: the root must be ``<iati-activities>`` with ``@version`` 2.0x (a missing version is read
  as 2.0x). Version 1.0x files and ``<iati-organisations>`` files raise ``LoadError`` saying so.
  The file is streamed (``iterparse`` per ``<iati-activity>``, elements freed after use), DTDs and
  entities are never loaded or expanded, comments and processing instructions are dropped, and
  elements of other namespaces (d-portal ``dstore``, USAID ``usg:``) are ignored.
* Hostile XML: a file with a document type declaration (``<!DOCTYPE ...>``, which IATI files never
  have: the Standard is an XML Schema) is refused with a ``LoadError`` before any record is read,
  so entity declarations (external ``SYSTEM "file:..."`` entities, nested "billion laughs"
  expansion) and DTDs on the network are neither read nor expanded. The parser is also set never
  to load a DTD, resolve an entity or use the network, and keeps libxml2's limits (text nodes
  of at most 10 MB, nesting depth, entity amplification): past them the file is refused as
  malformed. XInclude and schema locations are never followed.
* Activities: the first activity with a given ``iati-identifier`` is kept; a later one with the
  same identifier is rejected (field ``iati-identifier``), as is an activity with none.
* Transactions: types 2 (outgoing commitment) -> ``commitment``, 3 -> ``disbursement``,
  4 -> ``expenditure``, 12 (outgoing pledge) -> ``pledge``. The 1.0x letter codes (C, D, E, IF,
  ...) are accepted too. All other types are skipped silently: 1 incoming funds, 11 incoming
  commitment and 13 incoming pledge are the same money as the provider's outgoing transaction
  (counting them would count it twice along the chain), and 5 interest, 6 loan repayment,
  7 reimbursement, 8/9 equity and 10 credit guarantee are not allocations of funding.
  A transaction type without a code, or with a code outside the codelist, is rejected.
  ``record_id`` is ``{iati-identifier}#t{n}``, n the 0-based position among *all* the
  activity's transactions, so it does not change when the type filter does.
* Budgets: only for an activity with no transaction of a counted type, one record per
  ``<budget>`` (``record_id`` ``{iati-identifier}#b{n}``, n among all its budgets). When the
  activity has a revised budget (type 2) for a period-start, the original ones (type 1, or no
  type) for that period-start are dropped. Status 2 (committed) -> ``commitment``; status 1 or
  none (indicative) -> ``pledge``. The date is period-start (else value/@value-date).
* Amount: the value text as an xsd:decimal (surrounding whitespace allowed; thousands
  separators, NaN and the like are rejected, field ``transaction/value`` or ``budget/value``).
  No thousands separators or decimal commas (``"1,234.56"``, ``"1'234.56"``, ``"1.234,56"`` are
  rejected), nor a value too large for a float (400 digits). Negative values are kept: they are
  corrections; zero values are kept too (stated, e.g. a cancelled commitment). The file's
  encoding is the XML declaration's (UTF-8 without one: undeclared Latin-1 bytes are malformed
  XML). Currency: value/@currency, else the
  activity's @default-currency, else rejected (field ``value/@currency``).
* Date: transaction-date/@iso-date, else value/@value-date, cut to YYYY-MM-DD (datetimes are
  accepted); none valid -> rejected (field ``transaction-date/@iso-date``). ``year`` comes from
  it. start_date: actual start (activity-date type 2) else planned start (1); end_date: actual
  end (4) else planned end (3).
* Funder: the transaction's provider-org (@ref, narrative, @type), else the reporting-org.
  Recipient: the transaction's receiver-org, else the first implementing participating-org
  (@role 4); budgets use reporting-org and implementing org. ``implementer_name`` is the
  implementing org's name. Org ``@type`` codes become OrganisationType names.
  ``recipient_country`` (where the recipient is based) = the country of the register in the
  recipient's ``@ref`` when it is an org-id (``GB-CHC-...`` -> GB, ``US-EIN-...`` -> US, legacy
  ``GB-1`` -> GB; ``orgids.country_of_identifier``); none for ``XM-DAC-...``, ``XI-...`` and local refs.
* Narratives: the first non-empty one in English or without xml:lang, else the first
  non-empty one; stripped.
* title: activity title; description: description @type 1, else the first.
* Sectors: the transaction's own ``<sector>`` elements when it has any, else the activity's.
  DAC vocabularies become ``SectorShare(code, narrative, percentage / 100)``: vocabulary 1 (or
  none, DAC 5-digit) and, only when there is no 5-digit code, vocabulary 2 (DAC 3-digit), so the
  shares of one vocabulary are not added to those of another. ``source_sector`` lists every
  sector of every vocabulary as ``"{vocabulary}:{code} - {narrative}"`` joined with ``"; "``.
* Places: the transaction's recipient-country / recipient-region when it has any, else the
  activity's. Country -> ``Place(country=@code)``; region -> ``Place(region=@code)`` for the DAC
  vocabulary (1 or none), ``"{vocabulary}:{code}"`` otherwise; share = percentage / 100. No
  places when none is given (allocation treats the record as unknown).
* Shares stated as 0 % carry no money and are dropped when another item has a positive share;
  when all of them are 0 (a publisher's slip, e.g. a single country at 0 %) they become None.
* Points: every activity ``<location>/<point>/<pos>`` ("lat lon", WGS84; commas tolerated) inside
  the lat/lon range, in document order, the same list on every record of the activity.
* theme_hint stays None.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO, TypeVar

from lxml import etree

from . import orgids, textfiles
from .errors import LoadError, Rejection
from .records import Place, SectorShare, SourceRecord
from .textfiles import parse_iso_date

NAME = "iati"

FLOW_TYPES = {"2": "commitment", "3": "disbursement", "4": "expenditure", "12": "pledge"}
_TRANSACTION_TYPES = {str(code) for code in range(1, 14)}
# IATI 1.0x TransactionType letter codes, still found in some 2.0x files.
_LETTER_CODES = {
    "IF": "1",
    "C": "2",
    "D": "3",
    "E": "4",
    "IR": "5",
    "LR": "6",
    "R": "7",
    "QP": "8",
    "QS": "9",
    "CG": "10",
}

# IATI OrganisationType codelist.
ORGANISATION_TYPES = {
    "10": "Government",
    "11": "Local Government",
    "15": "Other Public Sector",
    "21": "International NGO",
    "22": "National NGO",
    "23": "Regional NGO",
    "24": "Partner Country based NGO",
    "30": "Public Private Partnership",
    "40": "Multilateral",
    "60": "Foundation",
    "70": "Private Sector",
    "71": "Private Sector in Provider Country",
    "72": "Private Sector in Aid Recipient Country",
    "73": "Private Sector in Third Country",
    "80": "Academic, Training and Research",
    "90": "Other",
}

# Options for every parse: never fetch or expand anything the file points at.
_SAFE = {"resolve_entities": False, "no_network": True, "load_dtd": False, "huge_tree": False}
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_DECIMAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
_CURRENCY_CODE = re.compile(r"[A-Z]{3}")
_POS_SEPARATORS = re.compile(r"[\s,]+")
_DAC_SECTOR_VOCABULARIES = ("1", "2")

_Shared = TypeVar("_Shared", Place, SectorShare)


def detect(head: bytes) -> bool:
    """True when the first element of ``head`` is ``<iati-activities>``.

    ``<iati-organisations>`` is claimed too, so that ``read`` can say why it is not loaded
    instead of the file being reported as an unknown format.
    """
    if _first_tag(head) in ("iati-activities", "iati-organisations"):
        return True
    # A DTD may stop the parse before the root (entity amplification), or undeclared Latin-1 bytes
    # make it invalid: claimed from the text, so that read() says what is wrong with the file.
    return bool(_IATI_START.match(_prolog_text(head)))


def read(path: Path) -> Iterator[SourceRecord | Rejection]:
    """Yield a record per counted transaction (or budget) and a Rejection per unusable one."""
    path = Path(path)
    file = str(path)
    try:
        stream = path.open("rb")
    except OSError as exc:
        raise LoadError(file, f"cannot open the file: {exc.strerror or exc}") from None
    with stream:
        head = stream.read(64 * 1024)
        if not head.strip():
            raise LoadError(file, "not XML: the file is empty")
        if _DOCTYPE.match(_prolog_text(head)):
            raise LoadError(file, _DOCTYPE_REFUSED)
        stream.seek(0)
        root = _root(stream, 64 * 1024)
        if root is not None:  # else the parse below reports where the XML goes wrong
            if root.getroottree().docinfo.doctype:  # one the prolog check missed (a long prolog)
                raise LoadError(file, _DOCTYPE_REFUSED)
            _check_root(file, root)
        stream.seek(0)
        seen: set[str] = set()
        context = etree.iterparse(
            stream, events=("end",), tag="iati-activity", remove_comments=True, remove_pis=True, **_SAFE
        )
        try:
            for position, (_event, activity) in enumerate(context):
                yield from _activity(activity, position, seen)
                # Free what has been read so memory stays flat however long the file is.
                activity.clear(keep_tail=False)
                while activity.getprevious() is not None:
                    del activity.getparent()[0]
        except etree.XMLSyntaxError as exc:
            raise LoadError(file, _syntax_reason(exc)) from None
        except OSError as exc:
            raise LoadError(file, f"cannot read the file: {exc.strerror or exc}") from None


# --- file level ---------------------------------------------------------------------------


_DOCTYPE_REFUSED = (
    "refused: the file has a document type declaration (<!DOCTYPE ...>), which IATI files never have; "
    "DTDs and entities are not read, so that a file cannot make the loader read local files or the network "
    "or expand entities. Remove the <!DOCTYPE ...> part (and any &entity; references) and load it again"
)
# The prolog up to a DOCTYPE: the XML declaration, comments, processing instructions, whitespace.
# Each item matches only itself (no ".*?" that could run on to a later "-->"), and the repeat is
# possessive: a head full of comments must not make the match backtrack exponentially.
_PROLOG = r"\A(?:\s|<\?(?:[^?]|\?(?!>))*\?>|<!--(?:[^-]|-(?!->))*-->)*+"
_DOCTYPE = re.compile(_PROLOG + r"<!DOCTYPE\b")
_IATI_START = re.compile(_PROLOG + r"<(?:!DOCTYPE\s+)?iati-(?:activities|organisations)\b")


def _prolog_text(head: bytes) -> str:
    """The start of the file as text (BOM and UTF-16 aware), for the DOCTYPE check."""
    return textfiles.decode_head(head).lstrip("\ufeff")


def _first_tag(head: bytes) -> str | None:
    root = _root(io.BytesIO(head), 4096)
    return root.tag if root is not None else None


def _root(stream: BinaryIO, chunk_size: int) -> etree._Element | None:
    """The root element (with its attributes), read from the start of ``stream``; None if not XML."""
    parser = etree.XMLPullParser(events=("start",), **_SAFE)
    try:
        # Fed in chunks so the root's start event is seen before any later error.
        while chunk := stream.read(chunk_size):
            parser.feed(chunk)
            for _event, element in parser.read_events():
                return element if isinstance(element.tag, str) else None
    except etree.XMLSyntaxError:
        return None
    return None


def _check_root(file: str, root: etree._Element) -> None:
    if root.tag == "iati-organisations":
        raise LoadError(
            file,
            "this is an IATI organisation file (<iati-organisations>); only IATI activity files "
            "(<iati-activities>) can be loaded",
        )
    if root.tag != "iati-activities":
        raise LoadError(file, f"not an IATI activity file: the root element is <{root.tag}>")
    version = (root.get("version") or "").strip()
    if version.startswith("1."):
        raise LoadError(
            file,
            f"IATI version {version} is not supported: IATI 1.0x files cannot be loaded; "
            "use the file in IATI 2.0x (2.01 to 2.03), e.g. from the publisher or the IATI Datastore",
            field="iati-activities/@version",
        )
    if version and not version.startswith("2."):
        raise LoadError(
            file,
            f"IATI version {version} is not supported (only 2.01 to 2.03)",
            field="iati-activities/@version",
        )


def _syntax_reason(exc: etree.XMLSyntaxError) -> str:
    line, column = exc.position if exc.position else (0, 0)
    msg = exc.msg
    if not line:
        # iterparse may raise a bare "no element found" when the error is elsewhere (an undefined
        # &entity;): the parser's log has the first fatal error with its place.
        fatal = next((e for e in exc.error_log or () if e.level_name == "FATAL" and e.line), None)
        if fatal is not None:
            line, column, msg = fatal.line, fatal.column, fatal.message
    if not line:
        return f"not XML: the file is empty or holds no XML element ({msg})"
    if "XML_PARSE_HUGE" in msg or "Resource limit" in msg:
        # libxml2's limits for untrusted input (huge_tree=False), said without its jargon.
        return (
            f"refused at line {line}, column {column}: a text, name or nesting larger than the XML "
            f"parser's safety limits (10 MB of text in one element) ({msg})"
        )
    return f"malformed or truncated XML at line {line}, column {column}: {exc.msg}"


# --- activity level -----------------------------------------------------------------------


@dataclass
class _Org:
    ref: str | None
    name: str | None
    type: str | None


@dataclass
class _Activity:
    """What every record of one activity shares."""

    identifier: str
    default_currency: str | None
    reporting: _Org | None
    implementer: _Org | None
    title: str | None
    description: str | None
    start_date: str | None
    end_date: str | None
    places: list[Place]
    sectors: list[SectorShare]
    source_sector: str | None
    points: list[tuple[float, float]] = field(default_factory=list)


def _children(element: etree._Element) -> dict[object, list[etree._Element]]:
    """The element's children by tag, each list in document order: one pass over them, instead of a
    ``find`` per field (lxml's ``find`` parses its path and builds an iterator on every call).
    ``index.get(tag, ())[0]`` is ``element.find(tag)``; other nodes' tags are functions, never asked."""
    index: dict[object, list[etree._Element]] = {}
    for child in element:
        tag = child.tag
        same = index.get(tag)
        if same is None:
            index[tag] = [child]
        else:
            same.append(child)
    return index


def _firsts(element: etree._Element) -> dict[object, etree._Element]:
    """The first child of each tag: ``firsts.get(tag)`` is ``element.find(tag)`` (see ``_children``),
    without a list per tag, for a transaction, whose children are mostly one of each."""
    firsts: dict[object, etree._Element] = {}
    for child in element:
        tag = child.tag
        if tag not in firsts:
            firsts[tag] = child
    return firsts


def _first(index: dict[object, list[etree._Element]], tag: str) -> etree._Element | None:
    same = index.get(tag)
    return same[0] if same else None


def _activity(element: etree._Element, position: int, seen: set[str]) -> Iterator[SourceRecord | Rejection]:
    index = _children(element)
    found = _first(index, "iati-identifier")
    # findtext: "" for an element without text, None for no element; _clean makes both None.
    identifier = _clean(found.text) if found is not None else None
    if not identifier:
        yield Rejection(f"activity {position + 1} in file", "iati-identifier", "missing iati-identifier")
        return
    if identifier in seen:
        yield Rejection(identifier, "iati-identifier", "duplicate activity in file; first kept")
        return
    seen.add(identifier)

    sectors, source_sector = _sectors(index)
    dates = _activity_dates(index)
    activity = _Activity(
        identifier=identifier,
        default_currency=_clean(element.get("default-currency")),
        reporting=_org(_first(index, "reporting-org")),
        implementer=_implementer(index),
        title=_narrative(_first(index, "title")),
        description=_description(index),
        start_date=dates.get("2") or dates.get("1"),
        end_date=dates.get("4") or dates.get("3"),
        places=_places(index),
        sectors=sectors,
        source_sector=source_sector,
        points=_points(element) if "location" in index else [],
    )

    counted = False
    for n, transaction in enumerate(index.get("transaction", ())):
        record_id = f"{identifier}#t{n}"
        own = _firsts(transaction)
        type_element = own.get("transaction-type")
        code = _clean(type_element.get("code")) if type_element is not None else None
        if not code:
            yield Rejection(record_id, "transaction-type/@code", "missing transaction type code")
            continue
        code = _LETTER_CODES.get(code.upper(), code)
        flow_type = FLOW_TYPES.get(code)
        if flow_type is None:
            if code not in _TRANSACTION_TYPES:
                yield Rejection(
                    record_id, "transaction-type/@code", f"unknown transaction type code {textfiles.shown(code)}"
                )
            continue  # not a funding allocation (see the module docstring)
        counted = True
        yield _transaction(activity, transaction, own, record_id, flow_type)

    if not counted:
        yield from _budgets(activity, index.get("budget", []))


def _transaction(
    activity: _Activity,
    transaction: etree._Element,
    own: dict[object, etree._Element],
    record_id: str,
    flow_type: str,
) -> SourceRecord | Rejection:
    """One transaction, from its first child of each tag (``_firsts``)."""
    value = own.get("value")
    amount, problem = _amount(value)
    if problem:
        return Rejection(record_id, "transaction/value", problem)
    currency, problem = _currency(value, activity.default_currency)
    if problem:
        return Rejection(record_id, "value/@currency", problem)
    when = _iso_date(own.get("transaction-date"), "iso-date") or _iso_date(value, "value-date")
    if when is None:
        return Rejection(
            record_id,
            "transaction-date/@iso-date",
            "no valid date: neither transaction-date/@iso-date nor value/@value-date is a YYYY-MM-DD date",
        )

    funder = _org(own.get("provider-org"))
    if funder is None:
        funder = activity.reporting
    elif funder.type is None and activity.reporting and funder.ref and funder.ref == activity.reporting.ref:
        funder = replace(funder, type=activity.reporting.type)  # same org, the type is known
    recipient = _org(own.get("receiver-org")) or activity.implementer

    places = activity.places
    every: dict[object, list[etree._Element]] | None = None  # all children by tag, when needed
    if "recipient-country" in own or "recipient-region" in own:
        every = _children(transaction)
        places = _places(every)
    sectors, source_sector = activity.sectors, activity.source_sector
    if "sector" in own:
        sectors, source_sector = _sectors(every or _children(transaction))

    return _record(
        activity,
        record_id,
        flow_type,
        amount,
        currency,
        when,
        funder,
        recipient,
        places,
        sectors,
        source_sector,
    )


def _budgets(activity: _Activity, budgets: list[etree._Element]) -> Iterator[SourceRecord | Rejection]:
    revised_starts = {
        _iso_date(budget.find("period-start"), "iso-date")
        for budget in budgets
        if _clean(budget.get("type")) == "2"
    }
    revised_starts.discard(None)
    for n, budget in enumerate(budgets):
        record_id = f"{activity.identifier}#b{n}"
        start = _iso_date(budget.find("period-start"), "iso-date")
        if (_clean(budget.get("type")) or "1") == "1" and start in revised_starts:
            continue  # superseded by the revised budget for the same period
        value = budget.find("value")
        amount, problem = _amount(value)
        if problem:
            yield Rejection(record_id, "budget/value", problem)
            continue
        currency, problem = _currency(value, activity.default_currency)
        if problem:
            yield Rejection(record_id, "value/@currency", problem)
            continue
        when = start or _iso_date(value, "value-date")
        if when is None:
            yield Rejection(
                record_id, "budget/period-start/@iso-date", "no valid date: period-start or value/@value-date"
            )
            continue
        flow_type = "commitment" if _clean(budget.get("status")) == "2" else "pledge"
        yield _record(
            activity,
            record_id,
            flow_type,
            amount,
            currency,
            when,
            activity.reporting,
            activity.implementer,
            activity.places,
            activity.sectors,
            activity.source_sector,
        )


def _record(
    activity: _Activity,
    record_id: str,
    flow_type: str,
    amount: float,
    currency: str,
    when: str,
    funder: _Org | None,
    recipient: _Org | None,
    places: list[Place],
    sectors: list[SectorShare],
    source_sector: str | None,
) -> SourceRecord:
    # Copies, so that a consumer changing one record cannot change its siblings.
    return SourceRecord(
        source=NAME,
        record_id=record_id,
        flow_type=flow_type,
        amount=amount,
        currency=currency,
        year=int(when[:4]),
        date=when,
        start_date=activity.start_date,
        end_date=activity.end_date,
        funder_id=funder.ref if funder else None,
        funder_name=funder.name if funder else None,
        funder_type=funder.type if funder else None,
        recipient_id=recipient.ref if recipient else None,
        recipient_name=recipient.name if recipient else None,
        recipient_type=recipient.type if recipient else None,
        recipient_country=_country_of_ref(recipient.ref) if recipient and recipient.ref else None,
        implementer_name=activity.implementer.name if activity.implementer else None,
        title=activity.title,
        description=activity.description,
        source_sector=source_sector,
        places=[place.copy() for place in places],
        sectors=[sector.copy() for sector in sectors],
        points=list(activity.points),
    )


@lru_cache(maxsize=8192)
def _country_of_ref(ref: str) -> str | None:
    # Cached: the same few thousand recipients on every transaction; org-id parsing is a pure function.
    return orgids.country_of_identifier(ref, NAME)


# --- element helpers ----------------------------------------------------------------------


def _clean(text: str | None) -> str | None:
    text = (text or "").strip()
    return text or None


def _text(element: etree._Element) -> str:
    """Text of an element and its children, without unexpanded entity references."""
    if not len(element):  # the usual case: text only
        return element.text or ""
    parts = [element.text or ""]
    for child in element:
        if isinstance(child.tag, str):
            parts.append(_text(child))
        parts.append(child.tail or "")
    return "".join(parts)


def _is_english(lang: str | None) -> bool:
    if lang is None:
        return True
    lang = lang.strip().lower()
    return lang in ("en", "eng") or lang.startswith("en-")


def _narrative(element: etree._Element | None) -> str | None:
    if element is None:
        return None
    first = None
    for narrative in element:
        # Direct children named narrative without a namespace, as iterfind("narrative") finds them, by a
        # plain loop (cheaper than building a tag filter for the one or two children these elements have).
        if narrative.tag != "narrative":
            continue
        # _text inline for the usual text-only narrative: a load reads some four per record.
        text = (_text(narrative) if len(narrative) else narrative.text or "").strip()
        if text:
            lang = narrative.get(_XML_LANG)
            if lang is None or _is_english(lang):
                return text  # the first English one
            first = first or text
    if first is None:
        return _clean(element.text)  # 1.0x style: the text sits in the element itself
    return first


def _description(index: dict[object, list[etree._Element]]) -> str | None:
    descriptions = index.get("description", [])
    general = [d for d in descriptions if _clean(d.get("type")) == "1"]
    for description in general + [d for d in descriptions if d not in general]:
        text = _narrative(description)
        if text:
            return text
    return None


def _org(element: etree._Element | None) -> _Org | None:
    if element is None:
        return None
    ref, name = (element.get("ref") or "").strip() or None, _narrative(element)
    if ref is None and name is None:
        return None
    return _Org(ref, name, ORGANISATION_TYPES.get((element.get("type") or "").strip()))


def _implementer(index: dict[object, list[etree._Element]]) -> _Org | None:
    for participant in index.get("participating-org", ()):
        if _clean(participant.get("role")) == "4":
            org = _org(participant)
            if org is not None:
                return org
    return None


def _iso_date(element: etree._Element | None, attribute: str) -> str | None:
    """The attribute as YYYY-MM-DD (a datetime is cut to its date), or None if it is not a date."""
    if element is None:
        return None
    return _iso_day(element.get(attribute))


@lru_cache(maxsize=8192)
def _iso_day(text: str | None) -> str | None:
    # Only 1900-2100, the table's year range: anything else is a typo. Cached: a file repeats a few
    # thousand dates, and the bounded cache keeps memory flat however long the file is.
    day = parse_iso_date(text)
    return day.isoformat() if day else None


def _activity_dates(index: dict[object, list[etree._Element]]) -> dict[str, str]:
    dates: dict[str, str] = {}
    for activity_date in index.get("activity-date", ()):
        kind, when = _clean(activity_date.get("type")), _iso_date(activity_date, "iso-date")
        if kind and when and kind not in dates:
            dates[kind] = when
    return dates


def _amount(value: etree._Element | None) -> tuple[float, str | None]:
    text = _clean(_text(value)) if value is not None else None
    if text is None:
        return math.nan, "missing value"
    if not _DECIMAL.fullmatch(text):
        return math.nan, f"value {textfiles.shown(text)} is not a decimal number"
    number = float(text)
    if not math.isfinite(number):  # 400 digits read as infinity, which failed the whole load
        return math.nan, f"value {textfiles.shown(text)} is too large to be an amount"
    return number, None


def _currency(value: etree._Element | None, default: str | None) -> tuple[str, str | None]:
    currency = (value is not None and _clean(value.get("currency"))) or default
    if not currency:
        return "", "no currency: neither value/@currency nor iati-activity/@default-currency"
    currency = currency.upper()
    if not _CURRENCY_CODE.fullmatch(currency):
        return "", f"currency {textfiles.shown(currency)} is not an ISO 4217 code"
    return currency, None


def _share(element: etree._Element) -> float | None:
    try:
        percentage = float((element.get("percentage") or "").strip())
    except ValueError:
        return None
    if not math.isfinite(percentage) or percentage < 0:
        return None
    return percentage / 100


def _without_zero_shares(items: list[_Shared]) -> list[_Shared]:
    if any(item.share for item in items):
        return [item for item in items if item.share != 0]
    return [replace(item, share=None) if item.share == 0 else item for item in items]


def _places(scope: dict[object, list[etree._Element]]) -> list[Place]:
    """Places of an activity or transaction, from its children by tag (``_children``)."""
    places = []
    for country in scope.get("recipient-country", ()):
        code = textfiles.country_text(_clean(country.get("code")))  # not a 5,000-character "code"
        if code:
            places.append(Place(share=_share(country), country=code.upper()))
    for region in scope.get("recipient-region", ()):
        code = _clean(region.get("code"))
        vocabulary = _clean(region.get("vocabulary")) or "1"
        if code:
            places.append(
                Place(share=_share(region), region=code if vocabulary == "1" else f"{vocabulary}:{code}")
            )
    return _without_zero_shares(places)


def _sectors(scope: dict[object, list[etree._Element]]) -> tuple[list[SectorShare], str | None]:
    """Sectors of an activity or transaction, from its children by tag (``_children``)."""
    dac: dict[str, list[SectorShare]] = {vocabulary: [] for vocabulary in _DAC_SECTOR_VOCABULARIES}
    texts = []
    for sector in scope.get("sector", ()):
        code = _clean(sector.get("code"))
        if code is None:
            continue
        vocabulary = _clean(sector.get("vocabulary")) or "1"
        name = _narrative(sector)
        texts.append(f"{vocabulary}:{code}" + (f" - {name}" if name else ""))
        if vocabulary in dac:
            dac[vocabulary].append(SectorShare(share=_share(sector), code=code, name=name))
    # 5-digit codes when there are any: mixing vocabularies would add up two sets of percentages.
    chosen = dac["1"] or dac["2"]
    return _without_zero_shares(chosen), "; ".join(texts) or None


def _points(element: etree._Element) -> list[tuple[float, float]]:
    points = []
    for pos in element.iterfind("location/point/pos"):
        srs = pos.getparent().get("srsName") or ""
        if srs and not srs.rstrip("/").endswith("4326"):
            continue  # another coordinate system: the numbers are not degrees
        parts = [part for part in _POS_SEPARATORS.split(pos.text or "") if part]
        if len(parts) != 2:
            continue
        try:
            lat, lon = float(parts[0]), float(parts[1])
        except ValueError:
            continue
        if math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180:
            points.append((lat, lon))
    return points

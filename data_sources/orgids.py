"""Organisation identifiers and names, normalised so that the same organisation can be found across streams.

Pure functions, no store access (``organisations`` uses them to build identities):

* ``parse_identifier(raw, source)`` reads an identifier as a source wrote it and says what it is:

  - ``org-id``: an org-id.guide identifier with a prefix from ``data/org_id_prefixes.csv``
    (``GB-CHC-1159982``, ``NL-KVK-30214009``, ``XM-DAC-41114``): registered.
  - ``org-id-unlisted``: the org-id shape ``CC-LIST-number`` with a real ISO 3166 country code (or
    ``XI``/``XM``) but a list the shipped file does not name (``US-GOV-1``, ``KR-GOV-051``): still a
    registered, global identifier (IATI organisation refs are built this way); the file is a subset.
  - ``dac``: an OECD DAC donor, agency or channel code written the IATI legacy ways — a bare number
    from an IATI or CRS file (``44001``, ``41114``) or ``DAC-1601`` — becomes ``XM-DAC-<code>``, the
    org-id.guide form (the CRS loader already writes ``XM-DAC-<DonorCode>``). Donor codes (at most
    4 digits, with ``-agency``) and channel codes (5 digits) do not overlap, so one namespace holds both.
  - ``iati-legacy``: IATI's older country + DAC agency code form (``GB-1``, ``CH-4``) in IATI files:
    registered.
  - ``local``: anything else (``TF``, a 3W sheet's own code, ``360G-...``): meaningful inside its
    source only.

  Case and spaces never matter (``gb-chc- 1159982`` is ``GB-CHC-1159982``); Companies House numbers
  are zero-padded to their 8 characters and DAC codes lose leading zeros.

* ``normalise_name(raw)``: accents, case, punctuation, ``&``/``and``, a leading "The", trailing legal
  forms (``Ltd``/``Limited``, ``PLC``, ``Inc``, ``LLC``, ``CIC``, ``CIO``) and ``-ization``/``-isation``
  do not matter. ``name_key`` also ignores word order ("Germany, Government of" = "Government of Germany").
* ``near_names(a, b)``: the only fuzzy rule, deliberately narrow (see ``FUZZY_*``).

The prefix list is a subset of the org-id.guide register (via IATI's replicated OrganisationRegistrationAgency
codelist): contains information from org-id.guide (https://org-id.guide), made available under the Open
Database License (ODbL, https://opendatacommons.org/licenses/odbl/1-0/).
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

from rapidfuzz.distance import DamerauLevenshtein

PREFIX_FILE = Path(__file__).parent / "data" / "org_id_prefixes.csv"

# Identifier kinds; all but ``local`` are registered (global) identifiers.
ORG_ID, ORG_ID_UNLISTED, DAC, IATI_LEGACY, LOCAL = "org-id", "org-id-unlisted", "dac", "iati-legacy", "local"
REGISTERED_KINDS = frozenset({ORG_ID, ORG_ID_UNLISTED, DAC, IATI_LEGACY})
# Streams whose bare numbers are DAC codes (IATI refs written the legacy way, CRS donor codes).
DAC_NUMBER_SOURCES = frozenset({"iati", "oecd_crs"})
# Where ``GB-1`` is IATI's legacy form (None: a value typed by a user); elsewhere it is a local code.
IATI_LEGACY_SOURCES = frozenset({"iati", None})

# The fuzzy rule: two names match when they have the same words but one, and that word differs by one
# edit (a letter added, dropped, changed, or two swapped) in a word of at least FUZZY_MIN_WORD letters,
# with no digits, in names of at least FUZZY_MIN_WORDS words. "Afganistan"/"Afghanistan" match;
# "Smith"/"Smyth" (too short), "Children's Hope"/"Children of Hope" (a word more) and "1st"/"2nd" do not.
FUZZY_MAX_EDITS = 1
MAX_IDENTIFIER_CHARS = 200
FUZZY_MIN_WORD = 6
FUZZY_MIN_WORDS = 2


class PrefixFileError(ValueError):
    """The shipped prefix list is malformed."""


@dataclass(frozen=True)
class Prefix:
    code: str
    name: str
    country: str


@dataclass(frozen=True)
class Identifier:
    value: str  # canonical form, e.g. GB-CHC-1159982
    kind: str  # one of ORG_ID, ORG_ID_UNLISTED, DAC, IATI_LEGACY, LOCAL
    prefix: str | None = None  # e.g. GB-CHC (None for local identifiers)

    @property
    def registered(self) -> bool:
        return self.kind in REGISTERED_KINDS


@cache
def prefixes() -> dict[str, Prefix]:
    """The shipped org-id.guide prefixes by code."""
    found: dict[str, Prefix] = {}
    with PREFIX_FILE.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"code", "name", "country"} - set(reader.fieldnames or ())
        if missing:
            raise PrefixFileError(f"{PREFIX_FILE}: missing column(s) {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, start=2):
            code = (row["code"] or "").strip().upper()
            if not re.fullmatch(r"[A-Z]{2}-[A-Z0-9_]+", code):
                raise PrefixFileError(f"{PREFIX_FILE}, line {line}, field code: {code!r} is not a CC-LIST prefix")
            found[code] = Prefix(code, (row["name"] or "").strip(), (row["country"] or "").strip().upper())
    return found


@cache
def _is_country(code: str) -> bool:
    """An ISO 3166 alpha-2 code (the geography module's table), or org-id's XI (international) or XM (multilateral)."""
    if code in ("XI", "XM") or any(p.country == code for p in prefixes().values()):
        return True
    from data_sources.geography import to_iso3

    return to_iso3(code) is not None


_SPACES = re.compile(r"\s+")


def clean_identifier(raw: object) -> str | None:
    """``raw`` as text, upper case, without spaces; None when empty."""
    if raw is None:
        return None
    text = _SPACES.sub("", str(raw)).upper()  # compiled once: a load cleans an id per record
    return text or None


def _dac(code: str) -> Identifier:
    parts = [part.lstrip("0") or "0" for part in code.split("-")]
    return Identifier("XM-DAC-" + "-".join(parts), DAC, "XM-DAC")


_DAC_CODE = r"\d{1,5}(?:-\d{1,3})?"


def parse_identifier(raw: object, source: str | None = None) -> Identifier | None:
    """What ``raw`` is as an organisation identifier (see the module notes); None when empty."""
    text = clean_identifier(raw)
    return None if text is None else _parse(text, source)


@lru_cache(maxsize=262_144)
def _parse(text: str, source: str | None) -> Identifier:
    if len(text) > MAX_IDENTIFIER_CHARS:
        return Identifier(text, LOCAL)  # no register issues ids this long: junk, kept to its source
    if re.fullmatch(rf"DAC-({_DAC_CODE})", text):
        return _dac(text.removeprefix("DAC-"))
    if source in DAC_NUMBER_SOURCES and re.fullmatch(_DAC_CODE, text):
        return _dac(text)
    m = re.fullmatch(r"([A-Z]{2})-([A-Z0-9_]+)-(.+)", text)
    if m:
        prefix, rest = f"{m[1]}-{m[2]}", m[3]
        if prefix == "XM-DAC" and re.fullmatch(_DAC_CODE, rest):
            return _dac(rest)
        if prefix == "GB-COH" and rest.isalnum() and len(rest) < 8:
            rest = rest.zfill(8)  # Companies House numbers are 8 characters; files drop the zeros
        if prefix in prefixes():
            return Identifier(f"{prefix}-{rest}", ORG_ID, prefix)
        if _is_country(m[1]):
            return Identifier(text, ORG_ID_UNLISTED, prefix)
    m = re.fullmatch(r"([A-Z]{2})-(\d{1,4})", text)
    if m and source in IATI_LEGACY_SOURCES and _is_country(m[1]):
        return Identifier(text, IATI_LEGACY, m[1])
    return Identifier(text, LOCAL)


def dac_identifier(donor_code: object) -> str | None:
    """The org-id for a CRS ``DonorCode`` (``5`` -> ``XM-DAC-5``); None when it is not a DAC code."""
    text = clean_identifier(donor_code)
    if text is None or not re.fullmatch(_DAC_CODE, text.removesuffix(".0")):
        return None
    return _dac(text.removesuffix(".0")).value


# --- names -------------------------------------------------------------------------------------------
_LEGAL_FORMS = frozenset({"ltd", "plc", "inc", "llc", "cic", "cio"})
_WORD_MAP = {"limited": "ltd", "incorporated": "inc"}


_IZE = re.compile(r"iz(ation|ations|e|es|ed|ing)$")
_APOSTROPHES = re.compile(r"['’‘`´]")
_WORD_SPLIT = re.compile(r"[\W_]+")


def _fold(token: str) -> str:
    token = _WORD_MAP.get(token, token)
    # British and American spellings of the same word: organization/organisation, ...
    return _IZE.sub(r"is\1", token) if len(token) > 5 and "iz" in token else token


def name_tokens(raw: object) -> list[str]:
    """The words of a name, normalised (see ``normalise_name``)."""
    return [] if raw is None else list(_tokens(str(raw)))


@lru_cache(maxsize=262_144)
def _tokens(text: str) -> tuple[str, ...]:
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = _APOSTROPHES.sub("", text.casefold().replace("&", " and "))  # "Children's" = "Childrens"
    tokens = [_fold(t) for t in _WORD_SPLIT.split(text) if t]
    if len(tokens) > 1 and tokens[0] == "the":
        tokens = tokens[1:]
    while len(tokens) > 1 and tokens[-1] in _LEGAL_FORMS:
        tokens.pop()
    return tuple(tokens)


def normalise_name(raw: object) -> str | None:
    """A name for comparison: "The Example Trust Ltd." -> "example trust"; None when nothing is left."""
    return None if raw is None else _normalised(str(raw))


@lru_cache(maxsize=262_144)
def _normalised(text: str) -> str | None:
    return " ".join(_tokens(text)) or None


def name_key(raw: object) -> str | None:
    """``normalise_name`` with the words sorted, so word order does not matter."""
    return None if raw is None else " ".join(sorted(_tokens(str(raw)))) or None


def near_names(a: str, b: str) -> bool:
    """Whether two normalised names are the same but for one small typo (the fuzzy rule above)."""
    ta, tb = a.split(), b.split()
    if a == b or len(ta) != len(tb) or len(ta) < FUZZY_MIN_WORDS:
        return a == b
    only_a, only_b = Counter(ta) - Counter(tb), Counter(tb) - Counter(ta)
    if only_a.total() != 1 or only_b.total() != 1:
        return False
    return near_words(next(iter(only_a)), next(iter(only_b)))


def near_words(x: str, y: str) -> bool:
    """One edit apart, both at least FUZZY_MIN_WORD letters long, letters only (no digits)."""
    if min(len(x), len(y)) < FUZZY_MIN_WORD or not (x.isalpha() and y.isalpha()):
        return False
    return DamerauLevenshtein.distance(x, y, score_cutoff=FUZZY_MAX_EDITS) <= FUZZY_MAX_EDITS


def country_of_identifier(raw: object, source: str | None = None) -> str | None:
    """The ISO 3166 alpha-2 country of the register that issued an organisation identifier
    (``GB-CHC-1159982`` -> ``GB``, ``US-EIN-...`` -> ``US``, IATI's legacy ``GB-1`` -> ``GB``), where
    its prefix names one; None for local identifiers and the international ``XI-``/``XM-`` registers
    (``XM-DAC-41114`` says nothing about where an organisation is based)."""
    identifier = parse_identifier(raw, source)
    if identifier is None or identifier.prefix is None or identifier.kind == DAC:
        return None
    if identifier.kind == ORG_ID:
        country = prefixes()[identifier.prefix].country
    else:  # org-id-unlisted (CC-LIST-...) and iati-legacy (CC-n): the identifier starts with the country
        country = identifier.prefix[:2]
    return None if country in ("", "XI", "XM") else country

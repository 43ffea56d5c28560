"""Deterministic benchmark data: about N allocation rows in the streams' real formats.

    python benchmarks/generate.py --rows 1000000 --out /tmp/bench --seed 7

writes, into ``--out``:

* ``bench-iati.xml``: an IATI 2.03 activity file (about 60 % of the rows),
* ``bench-360giving.json``: a 360Giving JSON package ``{"grants": [...]}`` (about 30 %),
* ``bench-3w.csv``: an HDX 3W table with an HXL hashtag row, admin-1 P-codes and presence rows
  (about 10 %),
* ``manifest.json``: what was written, with the exact number of allocation rows each file gives
  once loaded (``rows``), so a benchmark can check that the loaders stored all of them.

The real loaders ingest the files unchanged. The data is invented: organisation identifiers use the
``XX-BENCH`` prefix (not a registered org-id prefix); place codes are real (every country of the
vendored ``assets/countries.geojson`` but Antarctica, by ISO 3166 alpha-2 in the files).

Distributions: amounts are lognormal (heavy-tailed; a few records are 1000x the median); about
3,000 funders and tens of thousands of recipients are picked with heavy-tailed weights (a few
organisations give or get most of the money); countries too; years run over 2006-2025, more
recent years more often; currencies are USD, EUR, GBP, JPY and CHF; DAC 5-digit purpose codes
cover every theme.

How many allocation rows a record gives (the loaders' splitting rules, ``data_sources.allocation``):

* IATI: one record per transaction of type 2, 3 or 4 (type 1, incoming funds, is written but
  skipped by the loader), or per budget of an activity without such transactions. A record gives
  (places) x (sectors) rows, where places is the number of recipient countries (or 1 for a
  recipient region) except for a single-country activity with ``k`` location points, which gives
  ``k`` places. About 12 % of activities name 2 or 3 countries and 20 % 2 or 3 sectors.
* 360Giving: one record per grant, one row per beneficiary location (about 7 % of grants name
  two or three locations).
* 3W: one record and one row per data row (rows without an amount are ``presence`` rows).

The totals add up to ``rows`` or a few rows more (the last record of a file may overshoot by its
split). The same arguments give the same bytes: all randomness comes from ``random.Random``
seeded from ``seed``; there are no timestamps. Writers stream: memory does not grow with ``rows``
(apart from the organisation pools, which grow to at most 250,000 recipients).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import multiprocessing
import os
import random
import sys
import time
from bisect import bisect_right
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date
from functools import cache
from itertools import accumulate
from json.encoder import encode_basestring
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

IATI_FILE = "bench-iati.xml"
GIVING_FILE = "bench-360giving.json"
HDX_FILE = "bench-3w.csv"
MANIFEST_FILE = "manifest.json"
DEFAULT_SEED = 20260101
PREFIX = "XX-BENCH"
GENERATED_AT = "2026-01-01T00:00:00"  # fixed, so two runs give the same bytes
SHARES = (("iati", 0.6), ("360giving", 0.3), ("hdx_3w", 0.1))
FIRST_YEAR, LAST_YEAR = 2006, 2025
FUNDERS_IATI, FUNDERS_360, FUNDERS_3W = 600, 2200, 200  # about 3,000 funders in all
GAZETTEER_SEED = 1729  # admin-1 names do not depend on the seed (they were checked once, see _admin1_name)

# Currencies with rough US dollars per unit (only to keep amounts plausible in each currency).
USD_PER_UNIT = {"USD": 1.0, "EUR": 1.1, "GBP": 1.27, "JPY": 0.0075, "CHF": 1.05}
IATI_CURRENCIES = (("USD", 45), ("EUR", 25), ("GBP", 14), ("JPY", 8), ("CHF", 8))
GIVING_CURRENCIES = (("GBP", 84), ("USD", 9), ("EUR", 5), ("CHF", 1), ("JPY", 1))

# Themes: weight, DAC 5-digit purpose codes with names and weights, 360Giving classification titles
# (which the theme keyword crosswalk reads), 3W cluster names, project title templates.
THEMES: tuple[tuple[str, float, tuple[tuple[str, str, float], ...], str, str, tuple[str, ...]], ...] = (
    ("WASH", 16, (
        ("14010", "Water sector policy and administrative management", 1),
        ("14021", "Water supply - large systems", 1), ("14022", "Sanitation - large systems", 1),
        ("14030", "Basic drinking water supply and basic sanitation", 5),
        ("14031", "Basic drinking water supply", 3), ("14032", "Basic sanitation", 2),
        ("14081", "Education and training in water supply and sanitation", 1),
    ), "Water, sanitation and hygiene", "Water Sanitation Hygiene", (
        "Rural water points in {place}", "Sanitation and hygiene in schools, {place}",
        "Community-led total sanitation in {place}", "Borehole rehabilitation, {place}")),
    ("Health", 18, (
        ("12110", "Health policy and administrative management", 1), ("12220", "Basic health care", 4),
        ("12240", "Basic nutrition", 2), ("12250", "Infectious disease control", 2),
        ("12261", "Health education", 1), ("12262", "Malaria control", 2),
        ("13020", "Reproductive health care", 2),
    ), "Health", "Health", (
        "Community health workers in {place}", "Maternal and newborn care, {place}",
        "Malaria prevention in {place}", "Mobile clinics for {place}")),
    ("Education", 12, (
        ("11110", "Education policy and administrative management", 1), ("11220", "Primary education", 4),
        ("11320", "Upper secondary education", 2), ("11330", "Vocational training", 2),
        ("11420", "Higher education", 1),
    ), "Education", "Education", (
        "Early grade reading in {place}", "Vocational skills for young people, {place}",
        "Keeping girls in school, {place}")),
    ("Humanitarian", 14, (
        ("72010", "Material relief assistance and services", 4), ("72040", "Emergency food assistance", 3),
        ("72050", "Relief co-ordination and support services", 1),
        ("73010", "Immediate post-emergency reconstruction and rehabilitation", 1),
        ("74020", "Multi-hazard response preparedness", 1),
    ), "Humanitarian relief", "Emergency Shelter and NFI", (
        "Emergency response in {place}", "Cash assistance for displaced families, {place}",
        "Emergency food assistance, {place}")),
    ("Food & Agriculture", 10, (
        ("31110", "Agricultural policy and administrative management", 1),
        ("31120", "Agricultural development", 3), ("31161", "Food crop production", 2),
        ("31220", "Forestry development", 1), ("52010", "Food assistance", 2),
    ), "Food security and agriculture", "Food Security", (
        "Smallholder farming support, {place}", "Climate-smart agriculture in {place}",
        "Farmer cooperatives in {place}")),
    ("Governance & Civil Society", 8, (
        ("15110", "Public sector policy and administrative management", 2),
        ("15150", "Democratic participation and civil society", 2), ("15160", "Human rights", 2),
        ("15220", "Civilian peace-building, conflict prevention and resolution", 1),
    ), "Human rights and civil society", "Protection", (
        "Civil society strengthening in {place}", "Access to justice in {place}")),
    ("Economic Development", 7, (
        ("24010", "Financial policy and administrative management", 1),
        ("25010", "Business policy and administration", 1), ("32130", "Small and medium-sized enterprises "
                                                              "(SME) development", 2),
        ("16020", "Employment creation", 2),
    ), "Economic development and employment", "Early Recovery", (
        "Small business growth in {place}", "Jobs for young people, {place}")),
    ("Environment & Climate", 5, (
        ("41010", "Environmental policy and administrative management", 1), ("41030", "Biodiversity", 1),
    ), "Environment and climate change", "Environment", (
        "Community forestry in {place}", "Climate resilience in {place}")),
    ("Energy", 3, (
        ("23210", "Energy generation, renewable sources - multiple technologies", 1),
        ("23230", "Solar energy for centralised grids", 1),
    ), "Renewable energy", "Energy", ("Solar mini-grids for {place}",)),
    ("Social Protection", 3, (("16010", "Social protection", 1),), "Social protection", "Social Protection",
     ("Cash transfers for older people in {place}",)),
    ("Gender Equality", 3, (
        ("15170", "Women's rights organisations and movements, and government institutions", 1),
        ("15180", "Ending violence against women and girls", 1),
    ), "Gender equality", "Gender Based Violence", (
        "Women's economic empowerment, {place}", "Ending violence against women and girls, {place}")),
    ("Multisector & Other", 1, (("43010", "Multisector aid", 1), ("99810", "Sectors not specified", 1)),
     "Multi-sector", "Multi-sector", ("Integrated programme in {place}",)),
)

# DAC regions (IATI Region vocabulary 1) for activities that name no country.
REGIONS = (("289", "sub-Saharan Africa"), ("679", "South Asia"), ("489", "South America"),
           ("589", "the Middle East"), ("789", "Far East Asia"), ("998", "several countries"))

ACTIONS = (
    "work with local partners and communities to plan, deliver and monitor services",
    "train local staff and volunteers and equip them to reach the most marginalised households",
    "strengthen local institutions so that services continue after the project ends",
    "run community meetings, build local infrastructure and measure results with the people served",
)
SYLLABLES = ("ka", "lo", "ru", "ben", "ta", "mo", "si", "ngu", "ra", "we", "zu", "do", "fe", "ho",
             "ki", "pa", "sho", "tu", "vi", "ya", "bo", "ge", "nde", "ri", "so", "ke", "lu", "mba")
ADMIN1_KINDS = ("Province", "Region", "District", "County", "State", "Governorate")
STEMS = (
    "Riverbend", "Hillcrest", "Sunrise", "Lakeside", "Acacia", "Baobab", "Greenvale", "Highland",
    "Stonebridge", "Redhill", "Meadowlark", "Kingfisher", "Silverleaf", "Clearwater", "Brightwater",
    "Northstar", "Palmgrove", "Cedar", "Jacaranda", "Mango Tree", "Tamarind", "Ironwood", "Marigold",
    "Sandpiper", "Willowbrook", "Copperhill", "Goldenfield", "Bluestone", "Eastwind", "Westgate",
    "Amberley", "Birchwood", "Cloverdale", "Driftwood", "Elmstead", "Foxglove", "Glenmore", "Hawthorn",
    "Ivybridge", "Juniper", "Kestrel", "Larkfield", "Millbrook", "Nettlecombe", "Oakridge", "Pinewood",
    "Quarry Hill", "Rosemount", "Seabrook", "Thornbury", "Umberleigh", "Valewood", "Wychwood", "Yarrow",
)
QUALIFIERS = ("Community", "Rural", "Youth", "Women's", "Family", "Village", "Regional", "National",
              "Children's", "People's", "United", "New Horizons", "Hope", "Unity", "Harvest", "Bridge")
NGO_ENDINGS = ("Development Association", "Relief Committee", "Health Partners", "Water Trust",
               "Learning Centre", "Farmers' Cooperative", "Rights Network", "Action Group", "Aid Society",
               "Support Initiative", "Care Alliance", "Empowerment Project", "Welfare Organisation",
               "Resilience Network", "Services Foundation", "Outreach Programme")
FUNDER_ENDINGS = ("Foundation", "Trust", "Charitable Trust", "Family Foundation", "Community Foundation",
                  "Fund", "Benevolent Fund", "Charitable Foundation")
ORG_TYPES_NGO = (("22", "National NGO", 55), ("21", "International NGO", 25), ("24", "Partner Country based NGO",
                                                                                 15), ("23", "Regional NGO", 5))
ORG_TYPES_DONOR = (("10", 35), ("40", 15), ("60", 30), ("21", 15), ("70", 5))

HDX_HEADER = ("Organisation", "Organisation type", "Donor", "Country", "Admin 1", "Admin 1 P-code", "Cluster",
              "DAC code", "Activity", "Status", "Start date", "End date", "Budget (USD)")
HDX_HASHTAGS = ("#org+impl+name", "#org+impl+type", "#org+funder+name", "#country+code", "#adm1+name",
                "#adm1+code", "#sector+name", "#sector+dac", "#activity+name", "#status", "#date+start",
                "#date+end", "#value+usd")


# --- helpers ---------------------------------------------------------------------------------


class Picker:
    """Weighted choice by bisection over cumulative weights: one ``random()`` per pick."""

    __slots__ = ("items", "cumulative", "total")

    def __init__(self, items, weights) -> None:
        self.items = list(items)
        self.cumulative = list(accumulate(float(w) for w in weights))
        self.total = self.cumulative[-1]

    def __call__(self, rng: random.Random):
        return self.items[bisect_right(self.cumulative, rng.random() * self.total)]


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _split_100(rng: random.Random, parts: int) -> list[int]:
    """Whole percentages, each at least 5, that add up to 100, largest first."""
    if parts == 1:
        return [100]
    cuts = sorted(rng.sample(range(1, 20), parts - 1))
    edges = [0, *cuts, 20]
    return sorted(((b - a) * 5 for a, b in zip(edges, edges[1:], strict=False)), reverse=True)


def _amount(rng: random.Random, median_usd: float, sigma: float, currency: str, floor: float = 100.0) -> int:
    """A lognormal amount in ``currency``, rounded like real data (JPY in thousands)."""
    usd = max(floor, rng.lognormvariate(math.log(median_usd), sigma))
    value = usd / USD_PER_UNIT[currency]
    step = 1000 if currency == "JPY" else 100 if value >= 10_000 else 10
    return max(step, int(round(value / step)) * step)


_YEAR_PICK = Picker(range(FIRST_YEAR, LAST_YEAR + 1), [1 + 0.12 * i for i in range(LAST_YEAR - FIRST_YEAR + 1)])
_FIRST_ORDINAL = {y: date(y, 1, 1).toordinal() for y in range(FIRST_YEAR, LAST_YEAR + 2)}
_LAST_ORDINAL = date(LAST_YEAR, 12, 31).toordinal()
_BASE_ORDINAL = _FIRST_ORDINAL[FIRST_YEAR]
# Every day's ISO text from the first year to ten years after the last (planned ends run past it).
_DAYS = [date.fromordinal(o).isoformat() for o in range(_BASE_ORDINAL, date(LAST_YEAR + 10, 12, 31).toordinal())]


def _day(ordinal: int) -> str:
    """The ISO date of ``ordinal``, no later than the last day of the last year (data is not from the future)."""
    return _DAYS[min(ordinal, _LAST_ORDINAL) - _BASE_ORDINAL]


def _future_day(ordinal: int) -> str:
    """The ISO date of ``ordinal``, which may be after the last year (a planned end)."""
    return _DAYS[ordinal - _BASE_ORDINAL]


def _day_in(rng: random.Random, year: int) -> int:
    return _FIRST_ORDINAL[year] + int(rng.random() * (_FIRST_ORDINAL[year + 1] - _FIRST_ORDINAL[year]))


def _choice(rng: random.Random, items):
    """``rng.choice`` with one ``random()`` call (faster than ``_randbelow``)."""
    return items[int(rng.random() * len(items))]


# ``text`` as a JSON string literal, as json.dumps(text, ensure_ascii=False) writes it (C speed).
_json_text = encode_basestring


# --- the world: countries, admin-1 areas, sectors, organisations ---------------------------------


@dataclass(frozen=True)
class Country:
    iso3: str
    iso2: str
    name: str
    point: tuple[float, float]
    admin1: tuple[tuple[str, str], ...]  # (P-code, name)

    @property
    def json_name(self) -> str:
        return _json_text(self.name)


@dataclass(frozen=True)
class Org:
    ref: str
    name: str  # as written (plain text)
    xml: str  # XML-escaped name
    type_code: str
    type_name: str

    def xml_element(self, tag: str, extra: str = "") -> str:
        return f'<{tag} ref="{self.ref}" type="{self.type_code}"{extra}><narrative>{self.xml}</narrative></{tag}>'

    def json_org(self) -> str:
        """``[{"id": ..., "name": ...}]`` as 360Giving writes an organisation."""
        return f'[{{"id":{_json_text(self.ref)},"name":{_json_text(self.name)}}}]'


@dataclass(frozen=True)
class Funder:
    """An IATI publisher with its XML fragments written once."""

    org: Org
    currency: str
    reporting: str
    provider: str
    participating: str


def _admin1_name(rng: random.Random) -> str:
    # Made of syllables that spell no country name: checked once against geography.to_iso3 for the
    # fixed gazetteer seed, so 360Giving locations keep their admin-1 name.
    word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3)))
    return f"{word.capitalize()} {rng.choice(ADMIN1_KINDS)}"


@cache
def countries() -> tuple[tuple[Country, ...], tuple[float, ...]]:
    """Every country of the vendored boundaries but Antarctica, with admin-1 areas and weights."""
    from data_sources import geography

    iso2_to_iso3 = geography._tables()[0]
    iso2_of: dict[str, str] = {}
    for iso2, iso3 in sorted(iso2_to_iso3.items()):
        if iso2 not in ("EL", "UK"):  # the EU's and the UK's own codes for Greece and Britain
            iso2_of.setdefault(iso3, iso2)
    rng = random.Random(GAZETTEER_SEED)
    found: list[Country] = []
    weights: list[float] = []
    for feature in sorted(geography.load_countries_geojson()["features"], key=lambda f: f["id"]):
        iso3 = feature["id"]
        if iso3 == "ATA" or iso3 not in iso2_of:
            continue
        point = geography.representative_point(iso3) or (0.0, 0.0)
        names: list[str] = []
        for _ in range(rng.randint(3, 14)):
            name = _admin1_name(rng)
            while name in names:
                name = _admin1_name(rng)
            names.append(name)
        admin1 = tuple((f"{iso2_of[iso3]}{k + 1:02d}", n) for k, n in enumerate(names))
        found.append(Country(iso3, iso2_of[iso3], geography.country_name(iso3) or iso3, point, admin1))
        weights.append(rng.lognormvariate(0, 1.3))  # a few countries get most of the money
    return tuple(found), tuple(weights)


@dataclass
class World:
    country: Picker
    theme: Picker
    sectors: dict[str, Picker]
    iati_funder: Picker  # of Funder
    giving_funder: Picker  # of (Org, currency, JSON of the funding organisation)
    hdx_funder: Picker
    recipient: Picker
    region: Picker


def _pareto_weights(rng: random.Random, count: int, alpha: float) -> list[float]:
    return [rng.paretovariate(alpha) for _ in range(count)]


def build_world(seed: int, rows: int) -> World:
    """Countries, themes and organisation pools; recipients grow with ``rows`` (rows / 20, 500 to 250,000)."""
    rng = random.Random(seed)
    places, weights = countries()
    sector_pickers = {
        theme[0]: Picker([(code, name) for code, name, _w in theme[2]], [w for _c, _n, w in theme[2]])
        for theme in THEMES
    }
    type_pick = Picker([t for t, _w in ORG_TYPES_DONOR], [w for _t, w in ORG_TYPES_DONOR])
    ngo_type_pick = Picker([(c, n) for c, n, _w in ORG_TYPES_NGO], [w for _c, _n, w in ORG_TYPES_NGO])
    donor_type_names = {"10": "Government", "40": "Multilateral", "60": "Foundation", "21": "International NGO",
                        "70": "Private Sector"}
    iati_currency_pick = Picker([c for c, _w in IATI_CURRENCIES], [w for _c, w in IATI_CURRENCIES])
    giving_currency_pick = Picker([c for c, _w in GIVING_CURRENCIES], [w for _c, w in GIVING_CURRENCIES])

    def donor_name(n: int, type_code: str) -> str:
        stem = STEMS[n % len(STEMS)]
        other = STEMS[(n // len(STEMS) * 7 + 3) % len(STEMS)]
        number = n // (len(STEMS) * len(STEMS))
        suffix = f" {number + 1}" if number else ""
        return {
            "10": f"{stem} Agency for International Development{suffix} ({other})",
            "40": f"{stem}-{other} Development Fund{suffix}",
            "60": f"{stem} {other} Foundation{suffix}",
            "21": f"{stem} {other} International{suffix}",
            "70": f"{stem} & {other} Holdings{suffix}",
        }[type_code]

    iati_funders = []
    for n in range(FUNDERS_IATI):
        code = type_pick(rng)
        name = donor_name(n, code)
        iati_funders.append(Org(f"{PREFIX}-D{n + 1:04d}", name, _escape(name), code, donor_type_names[code]))
    giving_funders = []
    for n in range(FUNDERS_360):
        name = (f"The {STEMS[n % len(STEMS)]} {STEMS[(n // len(STEMS) * 11 + 5) % len(STEMS)]} "
                f"{FUNDER_ENDINGS[(n // 7) % len(FUNDER_ENDINGS)]}")
        if n >= len(STEMS) * len(STEMS):
            name += f" No. {n // (len(STEMS) * len(STEMS)) + 1}"
        giving_funders.append(Org(f"GB-CHC-{PREFIX[3:]}{n + 1:05d}", name, _escape(name), "", "Foundation"))
    hdx_funders = [o.name for o in iati_funders[:FUNDERS_IATI // 3]] + [
        f"{STEMS[n % len(STEMS)]} Humanitarian Pooled Fund {n + 1}" for n in range(FUNDERS_3W)]

    count = max(500, min(250_000, rows // 20))
    recipients = []
    for n in range(count):
        code, type_name = ngo_type_pick(rng)
        # Mixed radix with a skew, so consecutive organisations differ in every word; unique per cycle.
        block = n // (len(STEMS) * len(QUALIFIERS))
        name = (f"{STEMS[n % len(STEMS)]} {QUALIFIERS[(n // len(STEMS)) % len(QUALIFIERS)]} "
                f"{NGO_ENDINGS[(block + n // len(STEMS) + n) % len(NGO_ENDINGS)]}")
        cycle = block // len(NGO_ENDINGS)
        if cycle:
            name += f" {cycle + 1}"
        recipients.append(Org(f"{PREFIX}-R{n + 1:06d}", name, _escape(name), code, type_name))

    iati_weights = _pareto_weights(rng, len(iati_funders), 1.1)
    publishers = [Funder(o, iati_currency_pick(rng), o.xml_element("reporting-org"), o.xml_element("provider-org"),
                         o.xml_element("participating-org", ' role="1"')) for o in iati_funders]
    giving_weights = _pareto_weights(rng, len(giving_funders), 1.2)
    givers = [(o, giving_currency_pick(rng), o.json_org()) for o in giving_funders]
    return World(
        country=Picker(places, weights),
        theme=Picker([t[0] for t in THEMES], [t[1] for t in THEMES]),
        sectors=sector_pickers,
        iati_funder=Picker(publishers, iati_weights),
        giving_funder=Picker(givers, giving_weights),
        hdx_funder=Picker(hdx_funders, _pareto_weights(rng, len(hdx_funders), 1.3)),
        recipient=Picker(recipients, _pareto_weights(rng, len(recipients), 1.5)),
        region=Picker(REGIONS, (4, 2, 1, 1, 1, 1)),
    )


_THEME = {t[0]: t for t in THEMES}


def _title(rng: random.Random, theme: str, place: str) -> str:
    return _choice(rng, _THEME[theme][5]).format(place=place)


# --- IATI ------------------------------------------------------------------------------------


def _iati_activity(rng: random.Random, world: World, seq: int) -> tuple[str, int, int]:
    """(XML of one activity, records it gives, allocation rows it gives)."""
    random_ = rng.random
    publisher: Funder = world.iati_funder(rng)
    funder = publisher.org
    currency = publisher.currency
    implementer = world.recipient(rng)
    theme = world.theme(rng)
    identifier = f"{funder.ref}-{seq:07d}"

    # Places: mostly one country, some several, a few a region only.
    region = world.region(rng) if random_() < 0.03 else None
    chosen: list[Country] = []
    if region is None:
        wanted = 1 if random_() < 0.88 else (2 if random_() < 0.7 else 3)
        while len(chosen) < wanted:
            country = world.country(rng)
            if country not in chosen:
                chosen.append(country)
    points = 0
    if len(chosen) == 1 and random_() < 0.1:
        points = 1 if random_() < 0.7 else 2
    place_rows = points or len(chosen) or 1
    sector_count = 1 if random_() < 0.8 else (2 if random_() < 0.7 else 3)
    sectors: list[tuple[str, str]] = []
    theme_sectors = world.sectors[theme]
    while len(sectors) < sector_count:
        sector = theme_sectors(rng)
        if sector not in sectors:
            sectors.append(sector)
            if len(sectors) == len(theme_sectors.items):
                break
    rows_per_record = place_rows * len(sectors)

    start_year = _YEAR_PICK(rng)
    start = _day_in(rng, start_year)
    months = _choice(rng, (12, 18, 24, 36, 36, 48, 60))
    end = start + months * 30
    place_text = _escape(region[1] if region else " and ".join(c.name for c in chosen))
    receiver = implementer.xml_element("receiver-org")
    implementing = implementer.xml_element("participating-org", ' role="4"')
    parts = [
        f'<iati-activity xml:lang="en" default-currency="{currency}" last-updated-datetime="{GENERATED_AT}" '
        f'hierarchy="1"><iati-identifier>{identifier}</iati-identifier>{publisher.reporting}'
        f"<title><narrative>{_title(rng, theme, place_text)}</narrative></title>"
        f'<description type="1"><narrative>{implementer.xml} will {_choice(rng, ACTIONS)} in '
        f"{place_text}, funded by {funder.xml}.</narrative></description>{publisher.participating}"
        f"{implementing}"
        f'<activity-status code="{2 if end > _LAST_ORDINAL else 4}"/>'
        f'<activity-date iso-date="{_day(start)}" type="1"/>'
        f'<activity-date iso-date="{_day(start + int(random_() * 60))}" type="2"/>'
        f'<activity-date iso-date="{_future_day(end)}" type="3"/>'
    ]
    if region:
        parts.append(f'<recipient-region code="{region[0]}" vocabulary="1" percentage="100"/>')
    elif len(chosen) == 1:
        parts.append(f'<recipient-country code="{chosen[0].iso2}" percentage="100"/>')
    else:
        for country, share in zip(chosen, _split_100(rng, len(chosen)), strict=True):
            parts.append(f'<recipient-country code="{country.iso2}" percentage="{share}"/>')
    for k in range(points):
        country = chosen[0]
        lat = max(-89.0, min(89.0, country.point[0] + (random_() - 0.5) / 10))
        lon = max(-179.0, min(179.0, country.point[1] + (random_() - 0.5) / 10))
        area = _choice(rng, country.admin1)[1]
        parts.append(
            f'<location ref="{identifier}-L{k + 1}"><location-reach code="1"/><name><narrative>{area}'
            f'</narrative></name><point srsName="http://www.opengis.net/def/crs/EPSG/0/4326"><pos>{lat:.4f} '
            f'{lon:.4f}</pos></point><exactness code="2"/><location-class code="2"/></location>'
        )
    shares = (100,) if len(sectors) == 1 else _split_100(rng, len(sectors))
    for (code, name), share in zip(sectors, shares, strict=True):
        parts.append(f'<sector vocabulary="1" code="{code}" percentage="{share}"><narrative>{_escape(name)}'
                     "</narrative></sector>")
    flow = "10" if funder.type_code in ("10", "40") else "30"
    parts.append(f'<collaboration-type code="1"/><default-flow-type code="{flow}"/>'
                 f'<default-finance-type code="110"/><default-aid-type code="C01" vocabulary="1"/>')

    # Heavy-tailed totals: median about 400,000 US dollars, a few activities over 100 million.
    total = _amount(rng, 400_000, 1.6, currency, floor=5_000)
    budget_years = range(start_year, min(LAST_YEAR, start_year + max(1, months // 12) - 1) + 1)
    per_year = max(10, total // len(budget_years))
    for year in budget_years:
        parts.append(
            f'<budget type="1" status="2"><period-start iso-date="{year}-01-01"/><period-end iso-date="{year}-12-31"/>'
            f'<value value-date="{year}-01-01">{per_year}</value></budget>'
        )

    records = 0
    provider = publisher.provider
    if random_() < 0.04:  # no transactions: the loader reads the budgets instead
        records = len(budget_years)
    else:
        if random_() < 0.1:  # incoming funds: written, not counted (the same money as the provider's)
            parts.append(_transaction("1", _day(start), total, "", provider, receiver, ""))
        if random_() < 0.75:
            parts.append(_transaction("2", _day(start), total, "", provider, receiver, "Commitment"))
            records += 1
        else:
            first = total * 3 // 5
            parts.append(_transaction("2", _day(start), first, "", provider, receiver, "Commitment"))
            parts.append(_transaction("2", _day(start + 30 + int(random_() * 370)), total - first, "", provider,
                                      receiver, "Additional commitment"))
            records += 2
        instalments = int(random_() * 6)
        for k in range(instalments):
            day = start + int((end - start) * (k + random_()) / instalments)
            if day > _LAST_ORDINAL:
                break
            value = max(10, int(total / instalments * (0.7 + 0.4 * random_())))
            other = ""
            if random_() < 0.03:  # occasionally paid in another currency than the default
                other = _choice(rng, [c for c in USD_PER_UNIT if c != currency])
                value = max(10, int(value * USD_PER_UNIT[currency] / USD_PER_UNIT[other]))
            parts.append(_transaction("3", _day(day), value, other, provider, receiver, f"Disbursement {k + 1}"))
            records += 1
        if random_() < 0.1:
            parts.append(_transaction("4", _day(start + int(random_() * (end - start))), max(10, total // 40), "",
                                      provider, "", "Monitoring and evaluation"))
            records += 1
    parts.append("</iati-activity>\n")
    return "".join(parts), records, records * rows_per_record


def _transaction(code: str, day: str, value: int, currency: str, provider: str, receiver: str,
                 description: str) -> str:
    attrs = f' currency="{currency}"' if currency else ""
    text = f"<description><narrative>{description}</narrative></description>" if description else ""
    return (f'<transaction><transaction-type code="{code}"/><transaction-date iso-date="{day}"/>'
            f'<value{attrs} value-date="{day}">{value}</value>{text}{provider}{receiver}</transaction>')


def write_iati(path: Path, world: World, rng: random.Random, target_rows: int) -> dict:
    records = rows = activities = 0
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        out.write('<?xml version="1.0" encoding="UTF-8"?>\n'
                  "<!-- fundatlas benchmark data: fictional organisations, not real funding -->\n"
                  f'<iati-activities version="2.03" generated-datetime="{GENERATED_AT}">\n')
        buffer: list[str] = []
        while rows < target_rows:
            activities += 1
            xml, n_records, n_rows = _iati_activity(rng, world, activities)
            buffer.append(xml)
            records += n_records
            rows += n_rows
            if len(buffer) >= 2000:
                out.write("".join(buffer))
                buffer.clear()
        out.write("".join(buffer))
        out.write("</iati-activities>\n")
    return {"activities": activities, "records": records, "rows": rows}


# --- 360Giving -------------------------------------------------------------------------------


def _grant(rng: random.Random, world: World, index: int) -> tuple[str, int]:
    """(JSON of one grant, allocation rows it gives: one per beneficiary location)."""
    random_ = rng.random
    funder, currency, funder_json = world.giving_funder(rng)
    recipient = world.recipient(rng)
    theme = world.theme(rng)
    places: list[Country] = [world.country(rng)]
    count = 1 if random_() < 0.93 else _choice(rng, (2, 2, 3))
    while len(places) < count:
        other = world.country(rng)
        if other not in places:
            places.append(other)
    locations = []
    for place in places:
        roll = random_()
        if roll < 0.45:  # the whole country
            locations.append(f'{{"name":{place.json_name},"countryCode":"{place.iso2}"}}')
        else:  # an admin-1 area, sometimes with a point
            name = _json_text(_choice(rng, place.admin1)[1])
            point = ""
            if roll > 0.8:
                point = (f',"latitude":{round(place.point[0] + (random_() - 0.5) / 10, 4)!r}'
                         f',"longitude":{round(place.point[1] + (random_() - 0.5) / 10, 4)!r}')
            locations.append(f'{{"name":{name},"countryCode":"{place.iso2}"{point}}}')
    year = _YEAR_PICK(rng)
    award = _day_in(rng, year)
    months = _choice(rng, (6, 12, 12, 24, 36, 36, 48))
    amount = _amount(rng, 25_000, 1.3, currency, floor=500)
    place_text = " and ".join(p.name for p in places)
    grant = (
        f'{{"id":"360G-{PREFIX[3:]}-{funder.ref[-5:]}-{index:08d}",'
        f'"title":{_json_text(_title(rng, theme, place_text))},'
        f'"description":{_json_text(f"To {_choice(rng, ACTIONS)} in {place_text}, over {months} months.")},'
        f'"currency":"{currency}","amountAwarded":{amount},"awardDate":"{_day(award)}",'
        f'"plannedDates":[{{"startDate":"{_day(award + int(random_() * 90))}",'
        f'"endDate":"{_future_day(award + months * 30)}","duration":{months}}}],'
        f'"recipientOrganization":{recipient.json_org()},"fundingOrganization":{funder_json},'
        f'"beneficiaryLocation":[{",".join(locations)}],'
        f'"classifications":[{{"vocabulary":"XX-BENCH-THEMES","code":{_json_text(theme)},'
        f'"title":{_json_text(_THEME[theme][3])}}}],"dateModified":"{GENERATED_AT}+00:00"}}'
    )
    return grant, len(locations)


def write_360giving(path: Path, world: World, rng: random.Random, target_rows: int) -> dict:
    records = rows = 0
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        out.write('{"grants":[\n')
        buffer: list[str] = []
        while rows < target_rows:
            grant, n_rows = _grant(rng, world, records + 1)
            buffer.append(("," if records else "") + grant + "\n")
            records += 1
            rows += n_rows
            if len(buffer) >= 5000:
                out.write("".join(buffer))
                buffer.clear()
        out.write("".join(buffer))
        out.write('],"meta":{"note":"fundatlas benchmark data: fictional organisations, not real funding"}}\n')
    return {"records": records, "rows": rows}


# --- HDX 3W ----------------------------------------------------------------------------------


def write_3w(path: Path, world: World, rng: random.Random, target_rows: int) -> dict:
    records = 0
    statuses = ("Ongoing", "Ongoing", "Completed", "Planned")
    with open(path, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(HDX_HEADER)
        writer.writerow(HDX_HASHTAGS)
        batch: list[tuple] = []
        while records < target_rows:
            records += 1
            org = world.recipient(rng)
            theme = world.theme(rng)
            country = world.country(rng)
            pcode, area = _choice(rng, country.admin1)
            code, _name = world.sectors[theme](rng)
            year = _YEAR_PICK(rng)
            start = _day_in(rng, year)
            presence = rng.random() < 0.2  # no amount: the organisation is there, money unknown
            value = "" if presence else str(_amount(rng, 60_000, 1.4, "USD", floor=1_000))
            batch.append((org.name, org.type_name, world.hdx_funder(rng), country.iso3, area, pcode,
                          _THEME[theme][4], code, _title(rng, theme, area), _choice(rng, statuses), _day(start),
                          _day(start + _choice(rng, (180, 365, 730))), value))
            if len(batch) >= 5000:
                writer.writerows(batch)
                batch.clear()
        writer.writerows(batch)
    return {"records": records, "rows": records}


# --- all files -------------------------------------------------------------------------------


def split_rows(rows: int) -> dict[str, int]:
    """Rows wanted per stream: 60 % IATI, 30 % 360Giving, the rest 3W (each at least 1)."""
    iati = max(1, round(rows * SHARES[0][1]))
    giving = max(1, round(rows * SHARES[1][1]))
    return {"iati": iati, "360giving": giving, "hdx_3w": max(1, rows - iati - giving)}


_WRITERS = {"iati": write_iati, "360giving": write_360giving, "hdx_3w": write_3w}
_STREAM_OFFSET = {"iati": 1, "360giving": 2, "hdx_3w": 3}
_FORKED_WORLD: World | None = None  # the world a forked writer process inherits


def _write_stream(source: str, path: Path, seed: int, target_rows: int) -> dict:
    assert _FORKED_WORLD is not None
    # One random stream per file, so one file's content does not depend on another's length or on
    # which process writes it.
    return _WRITERS[source](path, _FORKED_WORLD, random.Random(seed * 3 + _STREAM_OFFSET[source]), target_rows)


def generate(out_dir: Path | str, rows: int, seed: int = DEFAULT_SEED, workers: int | None = None) -> list[Path]:
    """Write the three files (and ``manifest.json``) into ``out_dir``; return the data files' paths.

    ``workers``: processes writing the files at once (default: one per core, up to 3, for 50,000 rows
    or more); the bytes do not depend on it.
    """
    global _FORKED_WORLD
    if rows < 3:
        raise ValueError("rows must be at least 3 (one per stream)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    wanted = split_rows(rows)
    files = {"iati": out / IATI_FILE, "360giving": out / GIVING_FILE, "hdx_3w": out / HDX_FILE}
    if workers is None:
        workers = min(3, os.cpu_count() or 1) if rows >= 50_000 else 1
    _FORKED_WORLD = build_world(seed, rows)
    try:
        if workers > 1 and "fork" in multiprocessing.get_all_start_methods():
            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                futures = {s: pool.submit(_write_stream, s, files[s], seed, wanted[s]) for s in files}
                written = {s: future.result() for s, future in futures.items()}
        else:
            written = {s: _write_stream(s, files[s], seed, wanted[s]) for s in files}
    finally:
        _FORKED_WORLD = None
    for source, info in written.items():
        info.update(file=files[source].name, bytes=files[source].stat().st_size)
    manifest = {
        "generator": "benchmarks/generate.py", "seed": seed, "rows_requested": rows,
        "rows": sum(info["rows"] for info in written.values()),
        "records": sum(info["records"] for info in written.values()),
        "files": written,
    }
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return [files["iati"], files["360giving"], files["hdx_3w"]]


def read_manifest(out_dir: Path | str) -> dict:
    return json.loads((Path(out_dir) / MANIFEST_FILE).read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="allocation rows wanted in all (about)")
    parser.add_argument("--out", type=Path, required=True, help="folder to write into (created if missing)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    paths = generate(args.out, args.rows, args.seed)
    seconds = time.perf_counter() - started
    manifest = read_manifest(args.out)
    for path in paths:
        print(f"{path}  {path.stat().st_size / 1e6:.1f} MB")
    print(f"{manifest['rows']:,} allocation rows from {manifest['records']:,} records in {seconds:.1f} s "
          f"({manifest['records'] / seconds:,.0f} records/s, {manifest['rows'] / seconds:,.0f} rows/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

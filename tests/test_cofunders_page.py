"""The co-funder page through the app: its callbacks' ids are in the layout, and its callbacks answer
real requests (Dash's update route) for real and crafted URLs without leaking an error."""

from __future__ import annotations

import json

import pytest

from app import create_app
from layouts import ids
from tests.test_app import _layout_ids


@pytest.fixture(scope="module")
def app(demo_store):
    app = create_app(database_url=demo_store, auto_demo=False)
    assert any(ids.COFUNDERS_RANKING in key for key in app.callback_map)  # app.py registers the page
    return app


def _outputs(key: str) -> list[dict]:
    return [{"id": part.rsplit(".", 1)[0], "property": part.rsplit(".", 1)[1].split("@")[0]}
            for part in key.strip(".").split("...")]


def _call(app, output_id: str, values: dict[tuple[str, str], object], key: str | None = None) -> dict:
    """POST one callback (``key``, else the one whose outputs include ``output_id``) as the browser would."""
    key = key or next(k for k in app.callback_map if output_id in k)
    callback = app.callback_map[key]

    def filled(deps: list[dict]) -> list[dict]:
        return [{**d, "value": values.get((d["id"], d["property"]))} for d in deps]

    inputs = filled(callback["inputs"])
    body = {"output": key, "outputs": _outputs(key) if key.startswith("..") else _outputs(key)[0],
            "inputs": inputs, "state": filled(callback["state"]),
            "changedPropIds": [f"{d['id']}.{d['property']}" for d in inputs]}
    response = app.server.test_client().post("/_dash-update-component", json=body)
    assert response.status_code in (200, 204), response.data[:300]
    return json.loads(response.data) if response.status_code == 200 else {}


def test_every_cofunders_id_is_in_the_layout(app):
    layout_ids = _layout_ids(app.layout())
    for key, callback in app.callback_map.items():
        if "cofunders" not in key:
            continue
        for dependency in callback["inputs"] + callback["state"] + _outputs(key):
            assert dependency["id"] in layout_ids, dependency


def test_the_page_answers_for_a_place_and_theme(app):
    url = {(ids.URL, "search"): "?theme=WASH&country=KEN", (ids.URL, "pathname"): "/cofunders",
           (ids.COFUNDERS_MORE, "n_clicks"): 0}
    ranking = _call(app, ids.COFUNDERS_RANKING, url)["response"]
    text = json.dumps(ranking[ids.COFUNDERS_RANKING]["children"])
    assert "funders," in text and "/funder/" in text
    network = _call(app, ids.COFUNDERS_NETWORK, url)["response"]
    assert network[ids.COFUNDERS_NETWORK]["figure"]["data"]
    basket = _call(app, ids.COFUNDERS_BASKET, url)["response"]
    assert basket[ids.COFUNDERS_BASKET]["children"] == []
    # Another page: nothing is computed, nothing is sent.
    assert _call(app, ids.COFUNDERS_NETWORK, {**url, (ids.URL, "pathname"): "/"}) == {}


def test_crafted_urls_and_values_do_not_break_the_page(app):
    for search in ("?funder=" + "x" * 5000, "?country=<script>", "?currency=XXX&theme=%00", "?funder=a&funder=b",
                   "?recipient=a&recipient=b&recipient=c", "?year-from=abc"):
        values = {(ids.URL, "search"): search, (ids.URL, "pathname"): "/cofunders",
                  (ids.COFUNDERS_MORE, "n_clicks"): "many", (ids.COFUNDERS_LIKE, "value"): {"not": "a key"}}
        for output in (ids.COFUNDERS_RANKING, ids.COFUNDERS_SIMILAR, ids.COFUNDERS_BASKET, ids.COFUNDERS_NETWORK):
            answer = json.dumps(_call(app, output, values))
            assert "Traceback" not in answer and "<script>" not in answer
    crafted_click = {(ids.COFUNDERS_NETWORK, "clickData"): {"points": [{"customdata": ["https://evil.example/"]}]}}
    key = next(k for k, c in app.callback_map.items() if c["inputs"][0]["id"] == ids.COFUNDERS_NETWORK
               and f"{ids.URL}.pathname" in k)
    # Nothing to open: the URL stays as it is.
    assert _call(app, "", crafted_click, key).get("response", {}) == {}
    good = {(ids.COFUNDERS_NETWORK, "clickData"): {"points": [{"customdata": ["/funder/n%3Ademo-x", "x"]}]}}
    assert _call(app, "", good, key)["response"][ids.URL]["pathname"] == "/funder/n%3Ademo-x"

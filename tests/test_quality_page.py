"""The Sources page shows the data quality figures per source, and place names no area matched, as text."""

from __future__ import annotations

import json

from callbacks.context import AppContext
from callbacks.sources import compute_sources
from data_sources.quality import quality_report
from data_sources.store import open_store
from layouts.quality import quality_section


def _text(node) -> str:
    return json.dumps(node.to_plotly_json(), default=lambda o: o.to_plotly_json(), ensure_ascii=False)


def test_sources_page_shows_quality_per_source(demo_store):
    engine = open_store(demo_store)
    content = compute_sources(AppContext(engine, use_columnar=False))
    report = quality_report(engine)
    text = _text(content[1])
    assert "Data quality" in text and "all sources" in text and "Per load" in text
    for entry in report["by_load"]:
        assert entry["source_file"] in text
    for source, figures in report["by_source"].items():
        assert source in text
        assert f"{figures['money_share']['place']:.0%}" in text
    engine.dispose()


def test_unmatched_place_names_are_listed_as_text_not_markup():
    figures = {"rows": 10, "usd": 5e6, "counted_usd": 4e6, "rows_without_usd": 1,
               "money_share": {"place": 0.5, "sector": None, "theme": 1.0, "recipient": 0.25},
               "row_share": {"place": 0.4, "sector": None, "theme": 1.0, "recipient": 0.2, "usd": 0.9},
               "duplicates": {"rows": 2, "usd": 1e6}}
    report = {"overall": figures, "by_source": {"hdx_3w": figures},
              "unmatched_place_names": [{"country_iso3": "AFG", "code": "AF24", "name": "<b>Daykundi</b>",
                                         "rows": 222, "reason": "no area of that name"}]}
    section = quality_section(report)
    text = _text(section)
    assert "50%" in text and "–" in text and "$1.0M" in text
    items = [node for node in _walk(section) if type(node).__name__ == "Li"]
    assert items and items[0].children == "AFG · AF24 <b>Daykundi</b> · 222 rows · no area of that name"


def _walk(node):
    yield node
    children = getattr(node, "children", None)
    if isinstance(children, list | tuple):
        for child in children:
            yield from _walk(child)
    elif children is not None and hasattr(children, "children"):
        yield from _walk(children)

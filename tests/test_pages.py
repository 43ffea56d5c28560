"""The page switch: each path shows its page; profile paths round-trip any organisation key; the
embed page may be framed by other sites, every other page only by this one."""

from __future__ import annotations

import pytest

from app import create_app
from callbacks.pages import CONTAINERS, compute_page_styles, embed_note, page_of, profile_href, profile_of
from layouts import ids


def _shown(pathname: str) -> set[str]:
    return {c for c, style in zip(CONTAINERS, compute_page_styles(pathname), strict=True) if style == {}}


@pytest.mark.parametrize("path, page", [
    ("/", "map"), (None, "map"), ("/cofunders", "cofunders"), ("/sources/", "sources"), ("/about", "about"),
    ("/embed", "embed"), ("/funder/GB-CHC-1", "profile"), ("/recipient/n%3Aagua", "profile"),
    ("/funder/", "map"), ("/nowhere", "map"), ("/../etc/passwd", "map"),
])
def test_each_path_names_its_page(path, page):
    assert page_of(path) == page


def test_pages_show_their_containers_only():
    assert ids.PAGE_MAIN in _shown("/") and ids.FILTERS_COLUMN in _shown("/") and ids.PAGE_COFUNDERS not in _shown("/")
    assert {ids.PAGE_COFUNDERS, ids.FILTERS_COLUMN, ids.PANEL_HEADLINE} <= _shown("/cofunders")
    assert ids.PAGE_MAIN not in _shown("/cofunders")
    assert _shown("/funder/x") == {ids.NAVBAR, ids.PAGE_PROFILE, ids.FOOTER}
    embed = _shown("/embed") | {c for c, style in zip(CONTAINERS, compute_page_styles("/embed"), strict=True)
                                if style == {"width": "100%"}}
    assert ids.PAGE_MAIN in embed and not embed & {ids.NAVBAR, ids.FILTERS_COLUMN, ids.PANEL_CHARTS, ids.PANEL_TABLE}
    # The embedded map takes the frame's whole width, not the workspace column beside the filters.
    assert dict(zip(CONTAINERS, compute_page_styles("/embed"), strict=True))[ids.WORKSPACE_CONTENT] == {
        "width": "100%"}


@pytest.mark.parametrize("key", ["GB-CHC-1159982", "n:demo-water-trust", "Água Viva / Foundation", "a?b#c&d=e"])
def test_profile_links_round_trip_any_key(key):
    href = profile_href("recipient", key)
    assert href.startswith("/recipient/") and "?" not in href and "#" not in href
    assert profile_of(href) == ("recipient", key)


@pytest.mark.parametrize("path", ["/funder/", "/funder/" + "x" * 400, "/donor/x", "/", None, "/funder/%20"])
def test_crafted_profile_paths_are_refused(path):
    assert profile_of(path) is None


def test_embed_note_links_to_the_same_view_only():
    note = str(embed_note("?theme=WASH"))
    assert "/?theme=WASH" in note
    assert "javascript" not in str(embed_note("javascript:alert(1)"))


def test_only_the_embed_page_may_be_framed(demo_store, monkeypatch):
    monkeypatch.delenv("FUNDATLAS_EMBED_ORIGINS", raising=False)
    client = create_app(database_url=demo_store, auto_demo=False).server.test_client()
    main, embed = client.get("/"), client.get("/embed")
    assert main.headers["X-Frame-Options"] == "SAMEORIGIN" and "frame-ancestors 'self'" in main.headers[
        "Content-Security-Policy"]
    assert embed.status_code == 200 and "X-Frame-Options" not in embed.headers
    assert "frame-ancestors *" in embed.headers["Content-Security-Policy"]
    monkeypatch.setenv("FUNDATLAS_EMBED_ORIGINS", "https://funder.example.org")
    embed = create_app(database_url=demo_store, auto_demo=False).server.test_client().get("/embed")
    assert "frame-ancestors https://funder.example.org;" in embed.headers["Content-Security-Policy"] + ";"
    monkeypatch.setenv("FUNDATLAS_EMBED_ORIGINS", "https://x.org; script-src *")
    with pytest.raises(ValueError, match="FUNDATLAS_EMBED_ORIGINS"):
        create_app(database_url=demo_store, auto_demo=False)


def test_about_page_says_what_the_store_holds(demo_store):
    from callbacks.about import compute_about
    from callbacks.context import AppContext
    from data_sources import queries
    from data_sources.store import open_store

    engine = open_store(demo_store)
    summary = queries.summary(engine)
    text = str(compute_about(AppContext(engine, use_columnar=False)))
    assert f"{summary['records']:,} records" in text and "360Giving grants" in text and "IATI activity files" in text

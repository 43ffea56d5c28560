"""The page switch: the URL's path names the page; the others are hidden (their components stay in
the layout, so the filters keep their state while the user looks at a profile or the sources)."""

from __future__ import annotations

from urllib.parse import unquote

from dash import Dash, Input, Output, html

from layouts import ids

HIDDEN, SHOWN = {"display": "none"}, {}
# Containers the switch shows or hides, in the order of the callback's outputs.
CONTAINERS = (ids.NAVBAR, ids.PAGE_WORKSPACE, ids.FILTERS_COLUMN, ids.WORKSPACE_CONTENT, ids.PANEL_HEADLINE,
              ids.PAGE_MAIN, ids.PANEL_CHARTS, ids.PANEL_TABLE, ids.EMBED_NOTE, ids.PAGE_COFUNDERS, ids.PAGE_PROFILE,
              ids.PAGE_SOURCES, ids.PAGE_ABOUT, ids.FOOTER)
_WORKSPACE = {ids.NAVBAR, ids.PAGE_WORKSPACE, ids.FILTERS_COLUMN, ids.WORKSPACE_CONTENT, ids.PANEL_HEADLINE, ids.FOOTER}
_SHOWN_ON = {
    "map": _WORKSPACE | {ids.PAGE_MAIN, ids.PANEL_CHARTS, ids.PANEL_TABLE},
    "cofunders": _WORKSPACE | {ids.PAGE_COFUNDERS},
    "profile": {ids.NAVBAR, ids.PAGE_PROFILE, ids.FOOTER},
    "sources": {ids.NAVBAR, ids.PAGE_SOURCES, ids.FOOTER},
    "about": {ids.NAVBAR, ids.PAGE_ABOUT, ids.FOOTER},
    # The map alone, for a funder's own website: no navbar, filters, charts or table.
    "embed": {ids.PAGE_WORKSPACE, ids.WORKSPACE_CONTENT, ids.PAGE_MAIN, ids.EMBED_NOTE},
}
FULL_WIDTH = {"width": "100%"}  # the embedded map takes the whole frame, not the workspace's column
PROFILE_ROLES = ("funder", "recipient")
MAX_KEY = 300


def page_of(pathname: str | None) -> str:
    """The page a path names: map (the default), cofunders, profile, sources, about or embed."""
    parts = [p for p in (pathname or "/").split("/") if p]
    if not parts:
        return "map"
    if parts[0] in PROFILE_ROLES and len(parts) >= 2:
        return "profile"
    return parts[0] if parts[0] in _SHOWN_ON and parts[0] not in ("map", "profile") else "map"


def profile_of(pathname: str | None) -> tuple[str, str] | None:
    """(role, organisation key) of a profile path ``/funder/<key>`` or ``/recipient/<key>``; None when
    the path is not a profile's or the key is empty or too long."""
    parts = [p for p in (pathname or "").split("/") if p]
    if len(parts) < 2 or parts[0] not in PROFILE_ROLES:
        return None
    key = unquote("/".join(parts[1:])).strip()
    return (parts[0], key) if 0 < len(key) <= MAX_KEY else None


def profile_href(role: str, key: str) -> str:
    """The path of an organisation's profile (keys may hold ':' and spaces: they are quoted)."""
    from urllib.parse import quote

    return f"/{role}/{quote(str(key), safe='')}"


def compute_page_styles(pathname: str | None) -> tuple[dict, ...]:
    page = page_of(pathname)
    shown = _SHOWN_ON[page]

    def style(container: str) -> dict:
        if container not in shown:
            return HIDDEN
        return FULL_WIDTH if page == "embed" and container == ids.WORKSPACE_CONTENT else SHOWN

    return tuple(style(container) for container in CONTAINERS)


def embed_note(search: str | None) -> list:
    """What the embedded map says under it: where it comes from, and the same view in full."""
    query = search if isinstance(search, str) and search.startswith("?") and len(search) < 20_000 else ""
    return [html.Span("Map: fundatlas · who funds what, where. ", className="me-1"),
            html.A("Open this view in full", href="/" + query, target="_blank", rel="noopener")]


def register(app: Dash, _context=None) -> None:
    @app.callback(*(Output(c, "style") for c in CONTAINERS), Input(ids.URL, "pathname"))
    def switch_page(pathname):
        return compute_page_styles(pathname)

    @app.callback(Output(ids.EMBED_NOTE, "children"), Input(ids.URL, "pathname"), Input(ids.URL, "search"))
    def show_embed_note(pathname, search):
        return embed_note(search) if page_of(pathname) == "embed" else None

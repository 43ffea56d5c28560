"""What a click on the map does to the filters and the view (pure; ``callbacks.filters.sync_filters`` calls it).

* A country with admin-1 areas (``has_admin1``): drill in (``View.drill``) and filter to it.
* Any other country: filter to it, or clear the filter when it is the only one (as before); leaves a
  drill-down.
* An admin-1 area of the drilled country: add it to, or take it from, the ``admin1`` filter.
* Anything else (a point marker, a crafted or malformed click): nothing changes.
* On the map of where recipients are based (``View.basis`` ``based``) no click changes anything: its
  countries are recipients' home countries, and the country filter is a place of spending.

Each trace's ``customdata`` ends with the kind of shape it draws (``country``, ``admin1``, ``point``), so
a click says what was clicked; the location is checked against the kind's format, never trusted.
This module imports no other callback module, so ``callbacks.filters`` can import it.
"""

from __future__ import annotations

import re
from dataclasses import replace

from data_sources.filters import Filters
from data_sources.view import View

KINDS = ("country", "admin1", "point")
_AREA_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,39}")


def _is_iso3(value: object) -> bool:
    return isinstance(value, str) and len(value) == 3 and value.isascii() and value.isalpha() and value.isupper()


def clicked_shape(click_data: object) -> tuple[str, str] | None:
    """(kind, location) of the first clicked point, when both are well-formed; else None."""
    try:
        point = click_data["points"][0]  # type: ignore[index]
        location = point.get("location")
        custom = point.get("customdata")
    except (TypeError, KeyError, IndexError, AttributeError):
        return None
    kind = custom[-1] if isinstance(custom, list | tuple) and custom else None
    if kind == "country" and _is_iso3(location):
        return kind, location
    if kind == "admin1" and isinstance(location, str) and _AREA_CODE.fullmatch(location):
        return kind, location
    return None


def apply_map_click(filters: Filters, view: View, click_data: object,
                    has_admin1: set[str] | frozenset[str]) -> tuple[Filters, View]:
    """The filters and view after a map click (see the module docstring); unchanged for a bad click."""
    shape = clicked_shape(click_data)
    if shape is None or view.basis != "spent":
        return filters, view
    kind, location = shape
    if kind == "admin1":
        if view.drill is None:
            return filters, view  # no admin-1 areas are drawn in the world view: a crafted click
        chosen = filters.admin1
        admin1 = tuple(c for c in chosen if c != location) if location in chosen else (*chosen, location)
        return replace(filters, admin1=admin1), view
    if location == view.drill:
        return filters, view  # the drilled country's own outline, under its areas
    if location in has_admin1:
        return replace(filters, countries=(location,), admin1=()), view.with_(drill=location)
    countries = () if filters.countries == (location,) else (location,)
    return replace(filters, countries=countries, admin1=()), view.with_(drill=None)


def go_to_world(filters: Filters, view: View) -> tuple[Filters, View]:
    """The breadcrumb's "World": leave the drill-down, dropping its country and admin-1 filters."""
    if view.drill is None:
        return filters, view
    countries = tuple(c for c in filters.countries if c != view.drill)
    return replace(filters, countries=countries, admin1=()), view.with_(drill=None)


def admin1_countries(context) -> frozenset[str]:
    """Countries with stored admin-1 areas, cached per data version (``has_admin1`` for sync_filters)."""
    from data_sources import map_views

    return context.cached("map:admin1_countries", lambda reader, _f: map_views.countries_with_admin1(reader.engine),
                          Filters())


def settle_drill(filters: Filters, view: View) -> View:
    """The view after a filter change elsewhere (a chip, the country dropdown, reset): a drill-down
    whose country is no longer filtered goes back to the world."""
    if view.drill is not None and view.drill not in filters.countries:
        return view.with_(drill=None)
    return view

"""How a view is shown, as opposed to which rows it holds (``Filters``): the display currency, the map's
metric and colour scale, and the admin level the map is drilled to.

Both live in the app's URL query string, so a copied link restores the whole view: filter names as in
``data_sources.filters``, view names here (``currency``, ``metric``, ``scale``, ``drill``). Filters
ignore the view names and the view ignores the filter names. Values are validated: a crafted URL gets a
clear error, never an unknown value passed on.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import parse_qs, urlencode

CURRENCIES = ("USD", "GBP", "EUR")
METRICS = {
    "usd": "Amount",
    "records": "Number of records",
    "funders": "Number of funders",
    "recipients": "Number of recipients",
    "per_capita": "Amount per person",
}
SCALES = ("log", "quantile")
VIEW_NAMES = ("currency", "metric", "scale", "drill")


class ViewError(ValueError):
    """A view setting in a URL that is not allowed."""


@dataclass(frozen=True)
class View:
    currency: str = "USD"
    metric: str = "usd"
    scale: str = "log"
    drill: str | None = None  # ISO3 of the country whose admin-1 areas the map shows

    def __post_init__(self) -> None:
        for name, value, allowed in (("currency", self.currency, CURRENCIES), ("metric", self.metric, tuple(METRICS)),
                                     ("scale", self.scale, SCALES)):
            if value not in allowed:
                raise ViewError(f"{name}: {value!r} is not one of {', '.join(allowed)}")
        if self.drill is not None and not (isinstance(self.drill, str) and len(self.drill) == 3
                                           and self.drill.isascii() and self.drill.isalpha() and self.drill.isupper()):
            raise ViewError(f"drill: {self.drill!r} is not an ISO 3166 alpha-3 code")

    @classmethod
    def from_query_string(cls, query: str | None) -> View:
        values = parse_qs((query or "").removeprefix("?"), keep_blank_values=False)
        kwargs = {}
        for name in VIEW_NAMES:
            if name in values:
                if len(values[name]) != 1:
                    raise ViewError(f"{name}: give one value")
                kwargs[name] = values[name][0].strip()
        if "currency" in kwargs:
            kwargs["currency"] = kwargs["currency"].upper()
        return cls(**kwargs)

    def to_mapping(self) -> dict[str, str]:
        """The settings that differ from the defaults (what the URL carries)."""
        default = View()
        return {name: getattr(self, name) for name in VIEW_NAMES
                if getattr(self, name) != getattr(default, name) and getattr(self, name) is not None}

    def to_query_string(self) -> str:
        return urlencode(self.to_mapping())

    def with_(self, **changes) -> View:
        return replace(self, **changes)


def without_view_names(values: dict[str, list[str]]) -> dict[str, list[str]]:
    """A parsed query string less the view's names (what ``Filters`` reads)."""
    return {k: v for k, v in values.items() if k not in VIEW_NAMES}


def join_query(*parts: str) -> str:
    """``?a&b`` from query-string parts, skipping empty ones; empty when all are."""
    joined = "&".join(p for p in parts if p)
    return "?" + joined if joined else ""

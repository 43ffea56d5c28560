"""How a view is shown, as opposed to which rows it holds (``Filters``): the display currency, the map's
metric and colour scale, the admin level the map is drilled to, whose country the map places the money in
(``basis``: where it is spent, or where the recipient is based), and the table's chosen columns.

Both live in the app's URL query string, so a copied link restores the whole view: filter names as in
``data_sources.filters``, view names here (``currency``, ``metric``, ``scale``, ``drill``, ``basis``,
``columns``). Filters ignore the view names and the view ignores the filter names. Values are validated:
a crafted URL gets a clear error, never an unknown value passed on.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import parse_qs, urlencode

from data_sources.schema import COLUMN_NAMES

CURRENCIES = ("USD", "GBP", "EUR")
METRICS = {
    "usd": "Amount",
    "records": "Number of records",
    "funders": "Number of funders",
    "recipients": "Number of recipients",
    "per_capita": "Amount per person",
}
SCALES = ("log", "quantile")
# Which country a row's money is shown in: its place (``country_iso3``, the default) or the country its
# recipient is based in (``recipient_country_iso3``, where the source tells it).
BASES = {"spent": "where the money is spent", "based": "where the recipient is based"}
VIEW_NAMES = ("currency", "metric", "scale", "drill", "basis", "columns")


class ViewError(ValueError):
    """A view setting in a URL that is not allowed."""


@dataclass(frozen=True)
class View:
    currency: str = "USD"
    metric: str = "usd"
    scale: str = "log"
    drill: str | None = None  # ISO3 of the country whose admin-1 areas the map shows
    basis: str = "spent"  # a key of BASES
    # The table's (and the export's) chosen canonical columns, in canonical order; None: the defaults.
    columns: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for name, value, allowed in (("currency", self.currency, CURRENCIES), ("metric", self.metric, tuple(METRICS)),
                                     ("scale", self.scale, SCALES), ("basis", self.basis, tuple(BASES))):
            if value not in allowed:
                raise ViewError(f"{name}: {value!r} is not one of {', '.join(allowed)}")
        if self.drill is not None and not (isinstance(self.drill, str) and len(self.drill) == 3
                                           and self.drill.isascii() and self.drill.isalpha() and self.drill.isupper()):
            raise ViewError(f"drill: {self.drill!r} is not an ISO 3166 alpha-3 code")
        if self.drill is not None and self.basis != "spent":
            # Admin-1 areas are places of spending: a recipient's home country has none to drill into.
            raise ViewError("drill: only where the money is spent (basis=spent)")
        if self.columns is not None:
            object.__setattr__(self, "columns", canonical_columns(self.columns))

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
        if "columns" in kwargs:
            kwargs["columns"] = tuple(kwargs["columns"].split(","))
        return cls(**kwargs)

    def to_mapping(self) -> dict[str, str]:
        """The settings that differ from the defaults (what the URL carries)."""
        default = View()
        changed = {name: getattr(self, name) for name in VIEW_NAMES
                   if getattr(self, name) != getattr(default, name) and getattr(self, name) is not None}
        if "columns" in changed:
            changed["columns"] = ",".join(changed["columns"])
        return changed

    def to_query_string(self) -> str:
        return urlencode(self.to_mapping(), safe=",")

    def with_(self, **changes) -> View:
        return replace(self, **changes)


def canonical_columns(names: object) -> tuple[str, ...]:
    """Canonical column names, deduplicated, in the canonical table's order; ViewError for anything
    that is not a list of one or more canonical names."""
    if isinstance(names, str) or not isinstance(names, tuple | list) or len(names) > 4 * len(COLUMN_NAMES):
        raise ViewError("columns: expected a list of column names")
    if not all(isinstance(n, str) for n in names):
        raise ViewError("columns: expected column names")
    chosen = {n.strip() for n in names}
    unknown = [n for n in chosen if n not in COLUMN_NAMES]
    if unknown:
        shown = ", ".join(sorted(repr(n)[:40] for n in unknown)[:5])
        raise ViewError(f"columns: {shown} not canonical column names")
    if not chosen:
        raise ViewError("columns: choose at least one column")
    return tuple(c for c in COLUMN_NAMES if c in chosen)


def without_view_names(values: dict[str, list[str]]) -> dict[str, list[str]]:
    """A parsed query string less the view's names (what ``Filters`` reads)."""
    return {k: v for k, v in values.items() if k not in VIEW_NAMES}


def join_query(*parts: str) -> str:
    """``?a&b`` from query-string parts, skipping empty ones; empty when all are."""
    joined = "&".join(p for p in parts if p)
    return "?" + joined if joined else ""

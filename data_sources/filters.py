"""Filters: the same names in the CLI, the app's URL query string and exports (../shared/DESIGN.md).

``Filters`` is validated on construction from any outside input (URL, CLI, callback), so a
crafted request gets a clear error instead of a stack trace or a full-table dump.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from urllib.parse import parse_qs, urlencode

from sqlalchemy import ColumnElement, Table, and_, func, or_, true

from data_sources.schema import FLOW_TYPES, SOURCES
from data_sources.view import without_view_names

MAX_VALUES = 200  # per repeatable filter
MAX_TEXT = 200  # characters per value
YEAR_MIN, YEAR_MAX = 1900, 2100

# name in CLI/URL -> attribute
_REPEATABLE = {
    "country": "countries",
    "admin1": "admin1",
    "funder": "funders",
    "recipient": "recipients",
    "theme": "themes",
    "sector": "sectors",
    "source": "sources",
    "flow-type": "flow_types",
}
_SCALAR = {"year-from": "year_from", "year-to": "year_to", "min-usd": "min_usd", "q": "q"}
FILTER_NAMES = tuple(_REPEATABLE) + tuple(_SCALAR)
# (role, values) -> the rows whose ``role`` party is one of the identities ``values``.
IdentityMatch = Callable[[str, tuple[str, ...]], ColumnElement[bool]]


class FilterError(ValueError):
    """An outside filter value that is not allowed."""


def _text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise FilterError(f"{name}: expected text, got {type(value).__name__}")
    value = value.strip()
    if len(value) > MAX_TEXT:
        raise FilterError(f"{name}: longer than {MAX_TEXT} characters")
    return value


def _year(name: str, value: object) -> int | None:
    if value is None or value == "":
        return None
    try:
        year = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise FilterError(f"{name}: {value!r} is not a year") from None
    if not YEAR_MIN <= year <= YEAR_MAX:
        raise FilterError(f"{name}: {year} is outside {YEAR_MIN}-{YEAR_MAX}")
    return year


def contains_pattern(text: str) -> str:
    """A LIKE pattern (``escape="\\"``) matching any value that contains ``text`` literally."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


@dataclass(frozen=True)
class Filters:
    countries: tuple[str, ...] = ()
    admin1: tuple[str, ...] = ()
    funders: tuple[str, ...] = ()
    recipients: tuple[str, ...] = ()
    themes: tuple[str, ...] = ()
    sectors: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    flow_types: tuple[str, ...] = ()
    year_from: int | None = None
    year_to: int | None = None
    min_usd: float | None = None
    q: str | None = None

    def __post_init__(self) -> None:
        for name, attr in _REPEATABLE.items():
            values = getattr(self, attr)
            if isinstance(values, str) or not isinstance(values, tuple | list):
                raise FilterError(f"{name}: expected a list of values")
            if len(values) > MAX_VALUES:
                raise FilterError(f"{name}: at most {MAX_VALUES} values")
            cleaned = tuple(dict.fromkeys(v for v in (_text(name, v) for v in values) if v))
            object.__setattr__(self, attr, cleaned)
        for code in self.countries:
            if not re.fullmatch(r"[A-Z]{3}", code):
                raise FilterError(f"country: {code!r} is not an ISO 3166 alpha-3 code")
        for value, allowed, name in ((self.sources, SOURCES, "source"), (self.flow_types, FLOW_TYPES, "flow-type")):
            unknown = set(value) - set(allowed)
            if unknown:
                raise FilterError(f"{name}: unknown {sorted(unknown)}; allowed: {', '.join(allowed)}")
        object.__setattr__(self, "year_from", _year("year-from", self.year_from))
        object.__setattr__(self, "year_to", _year("year-to", self.year_to))
        if self.min_usd is not None and self.min_usd != "":
            try:
                min_usd = float(self.min_usd)
            except (TypeError, ValueError):
                raise FilterError(f"min-usd: {self.min_usd!r} is not a number") from None
            if min_usd != min_usd or min_usd in (float("inf"), float("-inf")):
                raise FilterError("min-usd: must be a finite number")
            object.__setattr__(self, "min_usd", min_usd)
        else:
            object.__setattr__(self, "min_usd", None)
        object.__setattr__(self, "q", _text("q", self.q) or None if self.q is not None else None)

    # --- conversions -------------------------------------------------------------------------
    @classmethod
    def from_mapping(cls, values: dict[str, object]) -> Filters:
        """From CLI/URL names (``country``, ``year-from`` ...); unknown names are an error."""
        unknown = set(values) - set(FILTER_NAMES)
        if unknown:
            raise FilterError(f"unknown filter(s): {', '.join(sorted(unknown))}")
        kwargs: dict[str, object] = {}
        for name, value in values.items():
            if name in _REPEATABLE:
                kwargs[_REPEATABLE[name]] = tuple(value) if isinstance(value, list | tuple) else (value,)
            else:
                if isinstance(value, list | tuple):
                    if len(value) != 1:
                        raise FilterError(f"{name}: give one value")
                    value = value[0]
                kwargs[_SCALAR[name]] = value
        return cls(**kwargs)  # type: ignore[arg-type]

    @classmethod
    def from_query_string(cls, query: str) -> Filters:
        query = query.removeprefix("?")
        if len(query) > 20_000:
            raise FilterError("query string too long")
        # View settings (display currency, map metric...) share the URL; they are not filters.
        return cls.from_mapping(without_view_names(parse_qs(query, keep_blank_values=False)))  # type: ignore[arg-type]

    def to_mapping(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name, attr in _REPEATABLE.items():
            if getattr(self, attr):
                out[name] = list(getattr(self, attr))
        for name, attr in _SCALAR.items():
            value = getattr(self, attr)
            if value is not None:
                out[name] = [f"{value:g}" if isinstance(value, float) else str(value)]
        return out

    def to_query_string(self) -> str:
        return urlencode(self.to_mapping(), doseq=True)

    def without(self, name: str, value: str) -> Filters:
        """These filters less one active value (``name`` as in the URL); unknown names change nothing."""
        if name in _REPEATABLE:
            attr = _REPEATABLE[name]
            return replace(self, **{attr: tuple(v for v in getattr(self, attr) if v != value)})
        if name in _SCALAR:
            return replace(self, **{_SCALAR[name]: None})
        return self

    def is_empty(self) -> bool:
        return all(not getattr(self, f.name) and getattr(self, f.name) != 0 for f in fields(self))

    # --- SQL ---------------------------------------------------------------------------------
    def where(self, table: Table, identity_match: IdentityMatch | None = None) -> ColumnElement[bool]:
        """The filters as one SQL condition with bound parameters.

        A funder or recipient value matches a row whose party is that organisation identity (given by
        ``identity_match(role, values)``, when the store has identities), or whose raw id or raw name
        is that value (an id or name from an older URL; without identities, the whole rule)."""
        c = table.c
        conditions: list[ColumnElement[bool]] = []
        simple = (
            ("countries", c.country_iso3),
            ("admin1", c.admin1_pcode),
            ("themes", c.theme),
            ("sectors", c.sector_code),
            ("sources", c.source),
            ("flow_types", c.flow_type),
        )
        for attr, column in simple:
            if getattr(self, attr):
                conditions.append(column.in_(getattr(self, attr)))
        for role, values, id_col, name_col in (("funder", self.funders, c.funder_id, c.funder_name),
                                               ("recipient", self.recipients, c.recipient_id, c.recipient_name)):
            if values:
                matches = [id_col.in_(values), name_col.in_(values)]
                if identity_match is not None:
                    matches.append(identity_match(role, values))
                conditions.append(or_(*matches))
        if self.year_from is not None:
            conditions.append(c.year >= self.year_from)
        if self.year_to is not None:
            conditions.append(c.year <= self.year_to)
        if self.min_usd is not None:
            conditions.append(c.amount_usd >= self.min_usd)
        if self.q:
            pattern = contains_pattern(self.q.lower())
            conditions.append(
                or_(*(func.lower(col).like(pattern, escape="\\") for col in (
                    c.title, c.description, c.funder_name, c.recipient_name, c.implementer_name,
                )))
            )
        return and_(true(), *conditions)

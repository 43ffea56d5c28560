"""The project's themes, and crosswalks to them from DAC purpose codes and from free text.

* ``dac_category(code)``: an OECD DAC purpose code (5 digits, e.g. ``14030``) or category (its
  first 3 digits, ``140``) -> (category name, theme), from ``data/dac_categories.csv``. That file
  lists the 3-digit categories; its few 5-digit rows override the theme for one purpose code
  where the category's theme would be wrong (16061 Culture and recreation -> Arts & Culture).
* ``wash_subtheme(code)``: finer WASH label for the 140xx codes, from ``data/wash_subthemes.csv``.
* ``theme_for_text(text)``: keyword crosswalk for free-text classifications (360Giving
  classifications and programme titles, 3W cluster names...), from ``data/theme_keywords.csv``
  (columns keyword, theme). Matching is case-insensitive and at word boundaries; a keyword
  also matches its plural ("school" matches "schools"); a keyword ending in ``*`` matches any
  word it begins ("agricultur*" matches "agricultural"). The first row, in file order, that
  matches wins, so specific phrases come first in the file ("non-food item" before "food").

Extending the keywords: set the environment variable ``FUNDATLAS_THEME_KEYWORDS`` to a CSV with
the same columns; its rows are tried before the shipped ones. Themes must be from ``THEMES``.

* ``sector_theme(scheme, value)``: the crosswalk from a source's own sector classification to
  (theme, subtheme), from ``data/sector_crosswalk.csv`` (columns scheme, code, name, theme,
  subtheme). Schemes shipped: ``fts_global_cluster`` (OCHA FTS global clusters, by id or name),
  ``hxl_sector`` (HXL ``#sector`` values and 3W cluster codes: WASH/WSH, HEA, EDU, FSC, NUT, PRO,
  SHL, CCCM, LOG, ETC, ERY ... and their names) and ``360giving`` (UK Charity Commission
  classification codes 101-117 and titles, and common grant classification titles). ``value``
  matches a row's code (case-insensitive) or its name (case, spacing, punctuation and ``&``/``and``
  ignored). The subtheme is finer, e.g. water, sanitation or hygiene under WASH.

Extending the crosswalk: set ``FUNDATLAS_SECTOR_CROSSWALK`` to a CSV with the same columns; its
rows win over the shipped ones for the same scheme and code or name, and may add schemes.
"""

from __future__ import annotations

import csv
import os
import re
from functools import cache, lru_cache
from pathlib import Path

from data_sources.errors import LoadError

THEMES: tuple[str, ...] = (
    "WASH",
    "Health",
    "Education",
    "Humanitarian",
    "Food & Agriculture",
    "Governance & Civil Society",
    "Economic Development",
    "Environment & Climate",
    "Energy",
    "Infrastructure & Transport",
    "Social Protection",
    "Gender Equality",
    "Arts & Culture",
    "Multisector & Other",
)

ENV_VAR = "FUNDATLAS_THEME_KEYWORDS"
CROSSWALK_ENV_VAR = "FUNDATLAS_SECTOR_CROSSWALK"
CROSSWALK_COLUMNS = ("scheme", "code", "name", "theme", "subtheme")
SCHEMES: tuple[str, ...] = ("fts_global_cluster", "hxl_sector", "360giving")
DATA_DIR = Path(__file__).resolve().parent / "data"


def _read_csv(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in columns if c not in (reader.fieldnames or [])]
            if missing:
                raise LoadError(str(path), f"missing columns {missing}; expected {list(columns)}")
            return [{k: (row.get(k) or "").strip() for k in columns} for row in reader]
    except OSError as exc:
        raise LoadError(str(path), f"cannot read: {exc}") from exc


def _check_theme(path: Path, line: int, theme: str) -> str:
    if theme not in THEMES:
        raise LoadError(
            str(path),
            f"unknown theme {theme!r} (one of: {', '.join(THEMES)})",
            record=f"line {line}",
            field="theme",
        )
    return theme


@cache
def _dac_table() -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    """(3-digit category -> (name, theme), 5-digit code -> theme override)."""
    path = DATA_DIR / "dac_categories.csv"
    categories: dict[str, tuple[str, str]] = {}
    overrides: dict[str, str] = {}
    for line, row in enumerate(_read_csv(path, ("code", "name", "theme")), start=2):
        theme = _check_theme(path, line, row["theme"])
        if len(row["code"]) == 3:
            categories[row["code"]] = (row["name"], theme)
        else:
            overrides[row["code"]] = theme
    return categories, overrides


@cache
def _wash_table() -> dict[str, str]:
    rows = _read_csv(DATA_DIR / "wash_subthemes.csv", ("code", "name", "subtheme"))
    return {row["code"]: row["subtheme"] for row in rows}


def _digits(code: str | int | None) -> str | None:
    if code is None:
        return None
    text = str(code).strip()
    text = text[:-2] if text.endswith(".0") else text  # 14030.0 from a float column
    return text if text.isdigit() else None


def dac_category(code: str | int | None) -> tuple[str | None, str | None]:
    """(DAC category name, theme) for a 3- or 5-digit purpose code; (None, None) if unknown."""
    digits = _digits(code)
    if digits is None or len(digits) not in (3, 5):
        return None, None
    categories, overrides = _dac_table()
    found = categories.get(digits[:3])
    if found is None:
        return None, None
    name, theme = found
    return name, overrides.get(digits, theme)


def wash_subtheme(code: str | int | None) -> str | None:
    """WASH sub-theme ("water", "sanitation", "water governance"...) of a 140xx purpose code."""
    digits = _digits(code)
    return _wash_table().get(digits) if digits else None


def _pattern(keyword: str) -> re.Pattern[str]:
    prefix = keyword.endswith("*")
    stem = re.escape(keyword.rstrip("*").strip()).replace(r"\ ", r"\s+")
    tail = r"\w*" if prefix else r"(?:s|es)?"
    return re.compile(rf"(?<!\w){stem}{tail}(?!\w)", re.IGNORECASE)


def _keyword_rows(path: Path) -> list[tuple[re.Pattern[str], str]]:
    rows = []
    for line, row in enumerate(_read_csv(path, ("keyword", "theme")), start=2):
        if row["keyword"].rstrip("*").strip():
            rows.append((_pattern(row["keyword"]), _check_theme(path, line, row["theme"])))
    return rows


@cache
def _keywords(user_file: str) -> tuple[tuple[re.Pattern[str], str], ...]:
    rows = _keyword_rows(Path(user_file)) if user_file else []
    return tuple(rows + _keyword_rows(DATA_DIR / "theme_keywords.csv"))


@lru_cache(maxsize=8192)
def _theme_for_text(text: str, user_file: str) -> str | None:
    for pattern, theme in _keywords(user_file):
        if pattern.search(text):
            return theme
    return None


def theme_for_text(text: str | None) -> str | None:
    """The theme of a free-text classification or title, by keyword; None when nothing matches."""
    if text is None:
        return None
    text = str(text).strip()
    if not text:
        return None
    return _theme_for_text(text, os.environ.get(ENV_VAR, "").strip())


_NAME_NOISE = re.compile(r"[^0-9a-z]+")


@lru_cache(maxsize=8192)
def _name_key(text: str) -> str:
    """A sector name compared without case, spacing, punctuation or the &/and difference.
    Cached: a load asks for the same few hundred sector texts on every record."""
    return _NAME_NOISE.sub(" ", text.casefold().replace("&", " and ")).strip()


def _crosswalk_rows(path: Path) -> list[tuple[str, str, str, str, str | None]]:
    rows = []
    for line, row in enumerate(_read_csv(path, CROSSWALK_COLUMNS), start=2):
        if not row["scheme"] or not (row["code"] or row["name"]):
            raise LoadError(str(path), "a row needs a scheme and a code or a name", record=f"line {line}",
                            field="scheme" if not row["scheme"] else "code")
        theme = _check_theme(path, line, row["theme"])
        rows.append((row["scheme"].casefold(), row["code"], row["name"], theme, row["subtheme"] or None))
    return rows


@cache
def _crosswalk(user_file: str) -> dict[tuple[str, str, str], tuple[str, str | None]]:
    """(scheme, "code" or "name", key) -> (theme, subtheme); the user's rows are read last, so they win."""
    table: dict[tuple[str, str, str], tuple[str, str | None]] = {}
    paths = [DATA_DIR / "sector_crosswalk.csv", *([Path(user_file)] if user_file else [])]
    for path in paths:
        for scheme, code, name, theme, subtheme in _crosswalk_rows(path):
            if code:
                table[(scheme, "code", code.casefold())] = (theme, subtheme)
            if name:
                table[(scheme, "name", _name_key(name))] = (theme, subtheme)
    return table


def sector_theme(scheme: str, value: str | int | None) -> tuple[str | None, str | None]:
    """(theme, subtheme) of a sector code or name in ``scheme`` (see the module docstring);
    (None, None) when the crosswalk does not know it."""
    if value is None or not str(value).strip():
        return None, None
    text = str(value).strip()
    table = _crosswalk(os.environ.get(CROSSWALK_ENV_VAR, "").strip())
    scheme = scheme.casefold()
    found = table.get((scheme, "code", text.casefold())) or table.get((scheme, "name", _name_key(text)))
    return found if found else (None, None)


def clear_cache() -> None:
    """Re-read the CSV files on next use (after editing a keyword file in a running process)."""
    for fn in (_dac_table, _wash_table, _keywords, _theme_for_text, _crosswalk):
        fn.cache_clear()

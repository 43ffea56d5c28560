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


def clear_cache() -> None:
    """Re-read the CSV files on next use (after editing a keyword file in a running process)."""
    for fn in (_dac_table, _wash_table, _keywords, _theme_for_text):
        fn.cache_clear()

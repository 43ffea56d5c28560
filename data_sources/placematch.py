"""Match the place names and codes sources give (3W provinces, admin-1 names) to stored admin areas.

Pure functions, no I/O. A place is matched within one country and one admin level, in this order:

1. ``code``: the source's code equals an area's code (case and spaces ignored): an OCHA P-code
   against COD-AB boundaries, a HASC code against Natural Earth ones.
2. ``name``: the normalised name (``normalise_name``) equals one area's normalised name, else one
   area's normalised alternative name (Natural Earth ``name_alt``). A name shared by several areas
   matches none of them.
3. ``fuzzy``: names reduced to a transliteration skeleton (``skeleton``: e/y -> i, o -> u, q -> k,
   v -> w, doubled letters once, Arabic articles dropped), so Helmand/Hilmand, Herat/Hirat,
   Paktia/Paktya and Sar-e-Pul/Sari Pul agree; else rapidfuzz ``WRatio`` over the skeletons, at
   least ``threshold`` (default 85) and ``margin`` points (default 5) above the next area, so a
   name halfway between two areas matches neither.

Anything else is unmatched, with the reason and the nearest area's name, for the quality report.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

DEFAULT_THRESHOLD = 85.0
DEFAULT_MARGIN = 5.0

# Words that say what kind of area a name is, not which one ("Hirat Province", "Departamento de
# La Paz", "Muhafazat Ma'an"); dropped with the connector that follows them.
_ADMIN_WORDS = {
    "province", "provincia", "provincie", "provinsi", "district", "distrito", "department", "departamento",
    "departement", "governorate", "gouvernorat", "muhafazat", "muhafazah", "wilayat", "wilayah", "velayat",
    "region", "state", "county", "prefecture", "oblast", "municipality", "municipio", "city",
}
_CONNECTORS = {"de", "del", "du", "des", "of", "e", "i", "y"}
# Arabic (and Romance) articles at the start of a name: "Al Karak" is "Karak", "At Tafilah" "Tafilah".
_ARTICLES = {"al", "el", "l", "at", "az", "as", "ad", "ar", "an", "ash", "ath", "la", "le"}
_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def _ascii_words(text: str) -> list[str]:
    """Lower-case ASCII words: accents dropped, apostrophes joined, other punctuation a space."""
    decomposed = unicodedata.normalize("NFKD", str(text))
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    plain = plain.replace("ß", "ss").replace("ø", "o").replace("ł", "l").replace("đ", "d").replace("ı", "i")
    return _NON_ALNUM.sub(" ", plain).split()


def _without_admin_words(words: list[str]) -> list[str]:
    kept: list[str] = []
    skip_connector = False
    for word in words:
        if word in _ADMIN_WORDS:
            skip_connector = True
            continue
        if skip_connector and word in _CONNECTORS:
            continue
        skip_connector = False
        kept.append(word)
    return kept or words  # "Province" alone stays itself


def normalise_name(name: str | None) -> str:
    """A comparison key: accents, case and punctuation folded, admin-type words dropped.

    "Hirat Province" -> "hirat"; "Departamento de La Paz" -> "la paz"; "L'Artibonite" -> "l artibonite";
    "Ma`an" -> "ma an". Empty for None or text without letters or digits.
    """
    if name is None:
        return ""
    return " ".join(_without_admin_words(_ascii_words(name)))


_VOWEL_MAP = str.maketrans({"e": "i", "y": "i", "o": "u", "q": "k", "v": "w"})
_DOUBLED = re.compile(r"(.)\1+")


def skeleton(name: str | None) -> str:
    """A transliteration-tolerant key for fuzzy matching (words separated by spaces).

    "Helmand" and "Hilmand" -> "hilmand"; "Sar-e-Pul" -> "sar i pul" (compare ``compact``).
    """
    words = normalise_name(name).split()
    while len(words) > 1 and words[0] in _ARTICLES:
        words = words[1:]
    out = []
    for word in words:
        word = word.replace("kh", "k").replace("gh", "g").replace("ph", "f").replace("ou", "u")
        out.append(_DOUBLED.sub(r"\1", word.translate(_VOWEL_MAP)))
    return " ".join(out)


def compact(key: str) -> str:
    """The key without spaces: "sar i pul" and "sari pul" are both "saripul"."""
    return key.replace(" ", "")


def normalise_code(code: str | None) -> str:
    return "".join(str(code).split()).upper() if code is not None else ""


@dataclass(frozen=True)
class Candidate:
    """One admin area a place may match: ``key`` is the caller's (e.g. the area id)."""

    key: object
    code: str
    name: str
    alt_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Match:
    """The area a place matched (``candidate`` None when unmatched), how, and how sure."""

    candidate: Candidate | None
    method: str | None  # code, name, fuzzy; None when unmatched
    score: float | None = None
    reason: str | None = None  # why unmatched
    nearest: str | None = None  # the closest area's name when unmatched


@dataclass
class AreaIndex:
    """The candidates of one country and level, indexed for the three matching stages."""

    candidates: Sequence[Candidate]
    by_code: dict[str, list[Candidate]] = field(default_factory=dict)
    by_name: dict[str, list[Candidate]] = field(default_factory=dict)
    by_alt: dict[str, list[Candidate]] = field(default_factory=dict)
    by_skeleton: dict[str, list[Candidate]] = field(default_factory=dict)
    by_alt_skeleton: dict[str, list[Candidate]] = field(default_factory=dict)
    skeletons: list[tuple[Candidate, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for c in self.candidates:
            self.by_code.setdefault(normalise_code(c.code), []).append(c)
            self.by_name.setdefault(compact(normalise_name(c.name)), []).append(c)
            names = (c.name, *c.alt_names)
            for alt in c.alt_names:
                key = compact(normalise_name(alt))
                if c not in self.by_alt.setdefault(key, []):
                    self.by_alt[key].append(c)
            for position, text in enumerate(names):
                sk = skeleton(text)
                if sk:
                    self.skeletons.append((c, sk))
                    # Primary names first: Natural Earth lists "Paktiya" among Paktika's alternatives.
                    table = self.by_skeleton if position == 0 else self.by_alt_skeleton
                    if c not in table.setdefault(compact(sk), []):
                        table[compact(sk)].append(c)


def build_index(candidates: Sequence[Candidate]) -> AreaIndex:
    """Index the areas of one country and level (build once, match many names)."""
    return AreaIndex(list(candidates))


def _one(found: list[Candidate] | None) -> Candidate | None:
    return found[0] if found and len(found) == 1 else None


def match_place(
    index: AreaIndex,
    code: str | None,
    name: str | None,
    threshold: float = DEFAULT_THRESHOLD,
    margin: float = DEFAULT_MARGIN,
) -> Match:
    """Match one place (its code and/or name) to the areas of ``index``: code, then name, then fuzzy."""
    if not index.candidates:
        return Match(None, None, reason="no boundaries for this country and level")
    if code and (hit := _one(index.by_code.get(normalise_code(code)))):
        return Match(hit, "code", 100.0)
    key = compact(normalise_name(name))
    if not key:
        return Match(None, None, reason=f"code {code} is not in the boundaries" if code else "no name or code")
    if hit := _one(index.by_name.get(key)):
        return Match(hit, "name", 100.0)
    if not index.by_name.get(key) and (hit := _one(index.by_alt.get(key))):
        return Match(hit, "name", 100.0)
    sk = skeleton(name)
    if hit := _one(index.by_skeleton.get(compact(sk))):
        return Match(hit, "fuzzy", 100.0)
    if not index.by_skeleton.get(compact(sk)) and (hit := _one(index.by_alt_skeleton.get(compact(sk)))):
        return Match(hit, "fuzzy", 100.0)
    return _fuzzy(index, name or "", sk, threshold, margin)


def _fuzzy(index: AreaIndex, name: str, sk: str, threshold: float, margin: float) -> Match:
    from rapidfuzz import fuzz

    best: dict[int, tuple[float, Candidate]] = {}  # per candidate, its best-scoring name
    for cand, cand_sk in index.skeletons:
        score = fuzz.WRatio(sk, cand_sk)
        if id(cand) not in best or score > best[id(cand)][0]:
            best[id(cand)] = (score, cand)
    ranked = sorted(best.values(), key=lambda sc: -sc[0])
    top_score, top = ranked[0]
    runner_up = ranked[1][0] if len(ranked) > 1 else 0.0
    if top_score < threshold:
        return Match(None, None, reason=f"no area name close enough (best {top_score:.0f} < {threshold:.0f})",
                     nearest=top.name)
    if top_score - runner_up < margin:
        return Match(None, None, reason=f"ambiguous: {top.name} {top_score:.0f} vs {ranked[1][1].name} "
                     f"{runner_up:.0f}", nearest=top.name)
    return Match(top, "fuzzy", round(top_score, 1))

"""Régions, départements and communes: which région a place of training is in.

Tables are Etalab's ``@etalab/decoupage-administratif`` 6.0.0 (``data/geo/``),
loaded once on first use. Real LHEO addresses often carry a pre-2016 région code,
or none; the commune's INSEE code, then the département, then the postal code,
then the (mapped) région code give today's région, in that order of trust.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Iterator, NamedTuple, Optional

from .model import Adresse

#: Pre-2016 région codes still written by regional systems, to today's.
OLD_REGIONS = {
    "73": "76", "91": "76",  # Midi-Pyrénées, Languedoc-Roussillon -> Occitanie
    "72": "75", "54": "75", "74": "75",  # Aquitaine, Poitou-Charentes, Limousin -> Nouvelle-Aquitaine
    "26": "27", "43": "27",  # Bourgogne, Franche-Comté
    "23": "28", "25": "28",  # Haute- et Basse-Normandie
    "22": "32", "31": "32",  # Picardie, Nord-Pas-de-Calais -> Hauts-de-France
    "21": "44", "41": "44", "42": "44",  # Champagne-Ardenne, Lorraine, Alsace -> Grand Est
    "82": "84", "83": "84",  # Rhône-Alpes, Auvergne
}


@dataclass(frozen=True)
class Region:
    code: str
    nom: str


@dataclass(frozen=True)
class Departement:
    code: str
    nom: str
    region: str


class Commune(NamedTuple):
    # A named tuple: 37,000 of them are made by every build that reads a formation, five times
    # faster than frozen dataclasses.
    code_insee: str
    nom: str
    codes_postaux: tuple[str, ...]
    departement: str
    region: str


class Geo:
    """The official tables, indexed for the look-ups the catalogue needs."""

    def __init__(self, regions: dict[str, Region], departements: dict[str, Departement], communes: list[Commune]):
        self.regions = regions
        self.departements = departements
        self.communes: dict[str, Commune] = {}
        self.by_postcode: dict[str, list[Commune]] = {}
        for commune in communes:
            # Delegated and associated communes share their code with the current one, listed first.
            self.communes.setdefault(commune.code_insee, commune)
            for cp in commune.codes_postaux:
                self.by_postcode.setdefault(cp, []).append(commune)

    def current_region(self, code: Optional[str]) -> Optional[str]:
        """Today's code for a région code as written (pre-2016 codes are mapped)."""
        if not code:
            return None
        code = OLD_REGIONS.get(code, code)
        return code if code in self.regions else None

    def region_of(self, adresse: Optional[Adresse]) -> Optional[str]:
        """Today's région of an address, or ``None`` when nothing in it says."""
        if adresse is None:
            return None
        if adresse.code_insee_commune and adresse.code_insee_commune in self.communes:
            return self.communes[adresse.code_insee_commune].region
        if adresse.departement and adresse.departement in self.departements:
            return self.departements[adresse.departement].region
        if adresse.codepostal:
            regions = {c.region for c in self.by_postcode.get(adresse.codepostal, ())}
            if len(regions) == 1:
                return regions.pop()
            dep = departement_of_postcode(adresse.codepostal)
            if dep in self.departements:
                return self.departements[dep].region
        return self.current_region(adresse.region)

    def departement_of(self, adresse: Optional[Adresse]) -> Optional[str]:
        if adresse is None:
            return None
        if adresse.code_insee_commune and adresse.code_insee_commune in self.communes:
            return self.communes[adresse.code_insee_commune].departement
        if adresse.departement and adresse.departement in self.departements:
            return adresse.departement
        if adresse.codepostal:
            deps = {c.departement for c in self.by_postcode.get(adresse.codepostal, ())}
            if len(deps) == 1:
                return deps.pop()
            dep = departement_of_postcode(adresse.codepostal)
            return dep if dep in self.departements else None
        return None

    def postcode_exists(self, codepostal: str) -> bool:
        return codepostal in self.by_postcode

    def region_name(self, code: Optional[str]) -> str:
        region = self.regions.get(code or "")
        return region.nom if region else "région inconnue"


def departement_of_postcode(codepostal: str) -> str:
    """The usual département of a postal code (Corsica and overseas need care)."""
    if codepostal.startswith("97") or codepostal.startswith("98"):
        return codepostal[:3]
    if codepostal.startswith("20"):
        return "2A" if codepostal < "20200" else "2B"
    return codepostal[:2]


def _rows(name: str) -> Iterator[dict[str, str]]:
    with resources.files("catalogue").joinpath("data", "geo", name).open(encoding="utf-8", newline="") as handle:
        yield from csv.DictReader(handle)


def _communes() -> list[Commune]:
    """Current communes first, then delegated and associated ones (which share their code), each in file order."""
    with resources.files("catalogue").joinpath("data", "geo", "communes.csv").open(encoding="utf-8", newline="") as handle:
        rows = csv.reader(handle)
        column = {name: number for number, name in enumerate(next(rows))}
        code, nom, kind, postcodes, departement, region = (
            column[name] for name in ("code_insee", "nom", "type", "codes_postaux", "departement", "region")
        )
        current: list[Commune] = []
        others: list[Commune] = []
        for row in rows:
            commune = Commune(row[code], row[nom], tuple(row[postcodes].split()), row[departement], row[region])
            (current if row[kind] == "commune-actuelle" else others).append(commune)
    return current + others


@lru_cache(maxsize=1)
def geo() -> Geo:
    regions = {r["code"]: Region(r["code"], r["nom"]) for r in _rows("regions.csv")}
    departements = {d["code"]: Departement(d["code"], d["nom"], d["region"]) for d in _rows("departements.csv")}
    return Geo(regions, departements, _communes())

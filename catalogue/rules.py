"""The publication rules and the checks that `catalogue check` reports.

- published: only validated formations (every formation of an LHEO export is);
- archived: when the last session has ended (see :func:`catalogue.catalog.is_archived`);
- the Carif-Oref is the one of the place of training: a formation held in another
  région than its Carif-Oref's gets a warning naming both régions;
- a session outside the organisme's premises needs its own address (enforced by
  the model, so such a formation never reaches the rules);
- a place of training must have a postal code that exists;
- probable duplicates (same organisme, same normalised title, a shared place) get
  a warning, since organisations must check an action is not already there.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from functools import lru_cache
from typing import Iterator, Optional

from .catalog import Entry
from .model import Formation, Statut
from .problems import Origin, Problem, Severity
from .regions import Geo
from .settings import Settings


def is_published(statut: Statut) -> bool:
    return statut is Statut.VALIDEE


def check_formation(formation: Formation, entry: Entry, settings: Settings, geo: Geo) -> Iterator[Problem]:
    """Problems of one formation that need the settings or the official tables."""
    yield from _check_postcodes(formation, entry.origin, geo)
    yield from _check_region(entry, settings, geo)


def _check_postcodes(formation: Formation, origin: Origin, geo: Geo) -> Iterator[Problem]:
    for i, action in enumerate(formation.actions, start=1):
        for j, lieu in enumerate(action.lieux_de_formation, start=1):
            cp = lieu.adresse.codepostal if lieu.adresse else None
            if cp and not geo.postcode_exists(cp):
                yield Problem(
                    origin,
                    formation.numero,
                    f"action[{i}]/lieu-de-formation[{j}]/adresse/codepostal",
                    f"code postal inconnu : {cp}",
                )


def _check_region(entry: Entry, settings: Settings, geo: Geo) -> Iterator[Problem]:
    carif = settings.carif_of(entry.ref)
    if carif is None:
        yield Problem(
            entry.origin,
            entry.ref,
            "numero",
            f"préfixe de Carif-Oref inconnu « {entry.ref.split('_', 1)[0]} » : "
            "complétez la table carif_oref des réglages",
            Severity.WARNING,
        )
        return
    prefix, carif_oref = carif
    elsewhere = [r for r in entry.regions if r != carif_oref.region]
    if elsewhere:
        names = ", ".join(f"{geo.region_name(r)} ({r})" for r in elsewhere)
        yield Problem(
            entry.origin,
            entry.ref,
            "action/lieu-de-formation",
            f"formation dispensée en {names}, hors de la région de son Carif-Oref, "
            f"« {carif_oref.nom} » ({prefix}) : {geo.region_name(carif_oref.region)} ({carif_oref.region}) ; "
            "elle doit être saisie auprès du Carif-Oref du lieu de formation",
            Severity.WARNING,
        )


@lru_cache(maxsize=4096)
def normalise_title(title: str) -> str:
    """Lower case, no accents, no punctuation, single spaces: how a duplicate is recognised.

    Remembered for the last few thousand titles: a catalogue repeats its titles
    (ten formations a title in a generated one).
    """
    folded = unicodedata.normalize("NFKD", title.casefold())
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    return " ".join(re.findall(r"[a-z0-9]+", folded))


class DuplicateFinder:
    """Collects entries and reports probable duplicates once all are seen."""

    def __init__(self) -> None:
        self._groups: dict[tuple[str, str], list[Entry]] = defaultdict(list)

    def add(self, entry: Entry, title_key: Optional[str] = None) -> None:
        """``title_key``: ``normalise_title(entry.intitule)``, when the caller kept it from a previous build."""
        key = title_key if title_key is not None else normalise_title(entry.intitule)
        self._groups[(entry.siret, key)].append(entry)

    def problems(self) -> Iterator[Problem]:
        """One warning per duplicate, naming the first formation (in Ref order) it repeats.

        Linear in the number of formations: a file of 20,000 copies gives 19,999
        warnings, not one per pair.
        """
        # Only groups of two or more are sorted: a hundred thousand single ones cost a second to sort.
        for _, entries in sorted((key, group) for key, group in self._groups.items() if len(group) > 1):
            first_at: dict[tuple[Optional[str], str], Entry] = {}
            for entry in sorted(entries, key=lambda e: e.ref):
                keys = _place_keys(entry)
                earlier = next((first_at[k] for k in keys if k in first_at), None)
                if earlier is not None:
                    shared = ", ".join(f"{cp or '?'} {ville}" for cp, ville in sorted(keys & _place_keys(earlier)))
                    yield Problem(
                        entry.origin,
                        entry.ref,
                        "intitule-formation",
                        f"doublon probable de {earlier.ref} ({earlier.origin}) : même organisme "
                        f"({earlier.siret}), même intitulé, même lieu ({shared})",
                        Severity.WARNING,
                    )
                for key in keys:
                    first_at.setdefault(key, entry)


def _place_keys(entry: Entry) -> set[tuple[Optional[str], str]]:
    return {(p.codepostal, (p.ville or "").casefold()) for p in entry.places}

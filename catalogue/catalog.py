"""The published catalogue as the listing pages and the indexes see it.

A whole :class:`~catalogue.model.Formation` is rendered and indexed as soon as it
is read, then dropped; what outlives it is its :class:`Entry`, a small summary
(a few hundred bytes) from which the organisme pages, the home page, the sitemap,
the search shards and the reports are made. 100,000 entries fit in memory;
100,000 formations would not need to.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

from .model import Adresse, Formation, ModalitesEnseignement, Session, Statut
from .problems import Origin
from .regions import Geo
from .settings import Settings


@dataclass(frozen=True)
class Place:
    """Where an action takes place: its lieu de formation, or the organisme's premises."""

    ville: Optional[str]
    codepostal: Optional[str]
    departement: Optional[str]
    region: Optional[str]
    latitude: Optional[float] = None
    longitude: Optional[float] = None


@dataclass(frozen=True)
class Entry:
    """What the site and the indexes keep of a formation once it has been rendered."""

    ref: str
    intitule: str
    datemaj: str  # AAAAMMJJ
    siret: str
    organisme: str  # nom-organisme
    raison_sociale: str
    places: tuple[Place, ...]
    archived: bool
    statut: Statut
    origin: Origin
    carif: Optional[str]  # numero prefix, when the settings know it
    certifiante: bool = False
    eligible_cpf: bool = False
    a_distance: bool = False
    entrees_sorties_permanentes: bool = False
    financeurs: tuple[str, ...] = ()
    rncp: tuple[str, ...] = ()
    action_numeros: tuple[str, ...] = ()
    session_numeros: tuple[str, ...] = ()
    #: (numero action, numero session) pairs, for the Pôle emploi composite numbers.
    action_sessions: tuple[tuple[str, str], ...] = ()
    #: Earliest possible start of each session (AAAAMMJJ), unknown starts left out.
    debuts: tuple[str, ...] = ()
    #: Start of the next session not yet ended on the build's day (AAAAMMJJ), if any.
    prochaine_session: Optional[str] = None
    motif_refus: Optional[str] = None

    @property
    def place(self) -> Optional[Place]:
        return self.places[0] if self.places else None

    @property
    def ville(self) -> Optional[str]:
        return self.place.ville if self.place else None

    @property
    def regions(self) -> tuple[str, ...]:
        return tuple(sorted({p.region for p in self.places if p.region}))

    @property
    def departements(self) -> tuple[str, ...]:
        return tuple(sorted({p.departement for p in self.places if p.departement}))

    @property
    def url(self) -> str:
        return f"/formations/{self.ref}.html"

    @property
    def datemaj_french(self) -> str:
        return f"{self.datemaj[6:]}/{self.datemaj[4:6]}/{self.datemaj[:4]}"


_new = object.__new__
_set = object.__setattr__


def _frozen(cls: type, values: dict) -> Any:
    """``cls(**values)`` for a frozen dataclass given every field: its ``__init__`` sets each field through
    ``object.__setattr__``, twice the time of this, and a summary is made for every formation read."""
    made = _new(cls)
    _set(made, "__dict__", values)
    return made


def places_of(formation: Formation, geo: Geo) -> tuple[Place, ...]:
    """Every distinct place of training, in the order of the actions."""
    seen: dict[tuple, Place] = {}
    premises = formation.organisme_formation_responsable.coordonnees_organisme
    for action in formation.actions:
        adresses = [lieu.adresse for lieu in action.lieux_de_formation] or [premises.adresse if premises else None]
        for adresse in adresses:
            place = _place(adresse, geo)
            if place is not None:
                seen.setdefault((place.codepostal, place.ville, place.latitude, place.longitude), place)
    return tuple(seen.values())


def _place(adresse: Optional[Adresse], geo: Geo) -> Optional[Place]:
    if adresse is None:
        return None
    geoloc = adresse.geolocalisation
    return _frozen(
        Place,
        {
            "ville": adresse.ville,
            "codepostal": adresse.codepostal,
            "departement": geo.departement_of(adresse),
            "region": geo.region_of(adresse),
            "latitude": geoloc.latitude if geoloc else None,
            "longitude": geoloc.longitude if geoloc else None,
        },
    )


def is_ended(session: Session, today: dt.date) -> bool:
    """Ended once its last possible day is past; a session with an unknown end never ends."""
    return session.periode.fin is not None and session.periode.fin.latest() < today


def is_archived(formation: Formation, today: dt.date) -> bool:
    """Archived once the last session has ended."""
    return all(is_ended(s, today) for s in formation.sessions)


def next_session_start(formation: Formation, today: dt.date) -> Optional[str]:
    starts = [
        s.periode.debut.lheo() if s.periode.debut else "00000000"
        for s in formation.sessions
        if not is_ended(s, today)
    ]
    return min(starts) if starts else None


def summarize(
    formation: Formation,
    *,
    origin: Origin,
    statut: Statut,
    today: dt.date,
    settings: Settings,
    geo: Geo,
    motif_refus: Optional[str] = None,
) -> Entry:
    organisme = formation.organisme_formation_responsable
    carif = settings.carif_of(formation.numero)
    # One pass over the actions and one over the sessions for what the model's properties
    # (sessions, eligible_cpf, a_distance...) would each walk again.
    sessions: list[Session] = []
    pairs = []
    action_numeros = []
    financeurs = set()
    a_distance = entrees_sorties_permanentes = False
    for action in formation.actions:
        numero = action.numero
        if numero:
            action_numeros.append(numero)
        for session in action.sessions:
            sessions.append(session)
            pairs.append((numero or "", session.numero or ""))
        for financeur in action.organismes_financeurs:
            financeurs.add(financeur.code_financeur)
        a_distance = a_distance or action.modalites_enseignement is ModalitesEnseignement.DISTANCE
        entrees_sorties_permanentes = entrees_sorties_permanentes or action.entrees_sorties_permanentes
    running = []
    session_numeros = []
    debuts = set()
    eligible_cpf = False
    for session in sessions:
        if session.numero:
            session_numeros.append(session.numero)
        periode = session.periode
        debut = periode.debut
        if debut:
            # A whole date's earliest day is the date itself, already written AAAAMMJJ.
            debuts.add(debut.text if debut.day and debut.year >= 1000 else _yyyymmdd(debut.earliest()))
        if not (periode.fin is not None and periode.fin.latest() < today):  # is_ended()
            running.append(session)
        eligible_cpf = eligible_cpf or bool(session.eligibilite_cpf)
    certifications = formation.certifications
    return _frozen(
        Entry,
        {
            "ref": formation.numero,
            "intitule": formation.intitule_formation,
            "datemaj": formation.datemaj.lheo(),
            "siret": organisme.siret_organisme_formation,
            "organisme": organisme.nom_organisme,
            "raison_sociale": organisme.raison_sociale,
            "places": places_of(formation, geo),
            "archived": not running,  # is_archived()
            "statut": statut,
            "origin": origin,
            "carif": carif[0] if carif else None,
            "certifiante": formation.certifiante,
            "eligible_cpf": eligible_cpf or any(c.code_cpf for c in certifications),  # Formation.eligible_cpf
            "a_distance": a_distance,
            "entrees_sorties_permanentes": entrees_sorties_permanentes,
            "financeurs": tuple(sorted(financeurs)),
            "rncp": tuple(sorted({_digits(c.code_rncp) for c in certifications if c.code_rncp})),
            "action_numeros": tuple(action_numeros),
            "session_numeros": tuple(session_numeros),
            "action_sessions": tuple(pairs),
            "debuts": tuple(sorted(debuts)),
            "prochaine_session": _next_start(running),
            "motif_refus": motif_refus,
        },
    )


def _next_start(running: list[Session]) -> Optional[str]:
    """:func:`next_session_start` of the sessions not ended."""
    starts = [s.periode.debut.lheo() if s.periode.debut else "00000000" for s in running]
    return min(starts) if starts else None


def _yyyymmdd(day: dt.date) -> str:
    """``day.strftime("%Y%m%d")`` at a third of its cost (glibc writes years before 1000 unpadded: left to it)."""
    if day.year < 1000:
        return day.strftime("%Y%m%d")
    return f"{day.year}{day.month:02d}{day.day:02d}"


def _digits(code: str) -> str:
    return "".join(c for c in code if c.isdigit())


@dataclass
class OrganismeSummary:
    siret: str
    nom: str
    raison_sociale: str
    entries: list[Entry] = field(default_factory=list)

    @property
    def published(self) -> list[Entry]:
        return [e for e in self.entries if not e.archived]

    @property
    def archived(self) -> list[Entry]:
        return [e for e in self.entries if e.archived]


@dataclass
class Catalog:
    """The published formations (current and archived), in Ref order, and their derived views."""

    entries: list[Entry]
    today: dt.date
    _organismes: Optional[dict[str, OrganismeSummary]] = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def of(cls, entries: Iterable[Entry], today: dt.date) -> "Catalog":
        return cls(sorted(entries, key=lambda e: e.ref), today)

    def organismes(self) -> dict[str, OrganismeSummary]:
        """By SIRET, in SIRET order; each organisme's formations in Ref order (computed once: read, not changed)."""
        if self._organismes is None:
            self._organismes = self._group_organismes()
        return self._organismes

    def _group_organismes(self) -> dict[str, OrganismeSummary]:
        result: dict[str, OrganismeSummary] = {}
        for entry in self.entries:
            summary = result.get(entry.siret)
            if summary is None:
                summary = result[entry.siret] = OrganismeSummary(entry.siret, entry.organisme, entry.raison_sociale)
            summary.entries.append(entry)
        return dict(sorted(result.items()))

    @property
    def current(self) -> list[Entry]:
        return [e for e in self.entries if not e.archived]

    @property
    def archived(self) -> list[Entry]:
        return [e for e in self.entries if e.archived]

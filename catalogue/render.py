"""The static pages: one fiche per formation, one page per organisme, the home,
the list of organismes, "Publier une formation", the 404 page and the sitemaps.

The build's sink ``site`` has each fiche written as soon as its formation is
read (:meth:`SiteSink.add`, by worker processes), then keeps only the
:class:`~catalogue.catalog.Entry`; the pages that need the whole catalogue are
written by :meth:`SiteSink.finish`. In an incremental build, the fiche of an
unchanged formation (:meth:`SiteSink.keep`) and every page made from the same
inputs as in the previous build are hard links to the previous build's files.

Pages are Jinja2 templates from ``templates/``, autoescaped, with undefined
variables as errors. The output depends only on the input, the settings and the
build's day: no timestamp, and every list is sorted before it is shown.

URLs are root-absolute (``/formations/<Ref>.html``): the site is served at the root
of its domain, as ``Entry.url`` and the search results assume. A fiche is a file
of ``formations/``, not a folder of its own: a build links 100,000 of them into a
new folder, and one ``mkdir`` per fiche would cost more than the links.
"""

from __future__ import annotations

import datetime as dt
import errno
import functools
import gc
import hashlib
import io
import bisect
import contextlib
import heapq
import json
import marshal
import multiprocessing
import os
import pickle
import re
import shutil
import time
import unicodedata
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from decimal import Decimal
from itertools import groupby
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Optional
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemBytecodeCache, FileSystemLoader, StrictUndefined
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from markupsafe import Markup, escape
from pydantic import BaseModel

try:
    # What markupsafe.escape() does to a str, without the Markup it wraps the result in (see _CodeGenerator).
    from markupsafe import _escape_inner as _escape_str
except ImportError:  # another markupsafe: its own escape, as a str
    def _escape_str(value: str) -> str:
        return str.__str__(escape(value))

from . import catalog as catalog_module, model as model_module
from .build import STALE_DIR, SinkContext, build_before, register_sink
from .catalog import Catalog, Entry, OrganismeSummary, is_ended
from .incremental import link_file, link_spare, link_tree, listed_inodes as _inodes
from .model import Action, Adresse, Coordonnees, Formation, ModalitesEnseignement, PartialDate, Session, check_ref
from .regions import Geo
from .settings import PROJECT_ROOT, Settings

TEMPLATES_DIR = PROJECT_ROOT / "templates"
STATIC_DIR = TEMPLATES_DIR / "static"

#: The sitemap protocol allows 50,000 URLs per file.
SITEMAP_MAX_URLS = 50_000
#: Organismes listed per page of ``/organismes/<lettre>/``.
ORGANISMES_PER_PAGE = 500
#: Formations listed under "Dernières mises à jour" on the home page.
LATEST_COUNT = 10
#: The pages the sitemaps list first, before the fiches and the organismes.
STATIC_URLS = ("/", "/publier/", "/recherche/", "/organismes/", "/donnees/")

# --------------------------------------------------------------------------
# LHEO dictionaries, in the words a counsellor reads (lheo-gml.xml, LHEO 2.3)
# --------------------------------------------------------------------------

#: dict-financeurs (codes 16 to 20 as renamed or added by LHEO issue PEL-40).
FINANCEURS = {
    "0": "Autre",
    "1": "Code obsolète",
    "2": "Conseil régional",
    "3": "Fonds européens – FSE",
    "4": "France Travail (Pôle emploi)",
    "5": "Entreprise",
    "6": "ACSÉ (anciennement FASILD)",
    "7": "Agefiph",
    "8": "Conseil départemental",
    "9": "Commune",
    "10": "Bénéficiaire de l'action (autofinancement)",
    "11": "État – Ministère chargé de l'emploi",
    "12": "État – Ministère de l'Éducation nationale",
    "13": "État – Autre",
    "14": "Fonds européens – Autre",
    "15": "Collectivité territoriale – Autre",
    "16": "OPCO",
    "17": "Transitions Pro",
    "18": "LADOM (Agence de l'Outre-mer pour la mobilité)",
    "19": "État – Ministère de l'Intérieur",
    "20": "OFII (Office français de l'immigration et de l'intégration)",
}

MODALITES_ENSEIGNEMENT = {
    ModalitesEnseignement.PRESENTIEL: "En présentiel",
    ModalitesEnseignement.MIXTE: "Mixte : présentiel et à distance",
    ModalitesEnseignement.DISTANCE: "Entièrement à distance",
}

#: dict-niveaux: 0 to 8 the pre-2019 levels, 11 to 18 the levels 1 to 8 of the 2019 nomenclature (PEL-37).
NIVEAUX = {
    0: "Information non communiquée",
    1: "Sans niveau spécifique",
    2: "Niveau VI (illettrisme, analphabétisme)",
    3: "Niveau V bis (préqualification)",
    4: "Niveau V (CAP, BEP)",
    5: "Niveau IV (baccalauréat professionnel ou technologique, BP, BT)",
    6: "Niveau III (BTS, DUT)",
    7: "Niveau II (licence, maîtrise)",
    8: "Niveau I (au-delà de la maîtrise)",
    11: "Niveau 1 (savoirs de base)",
    12: "Niveau 2",
    13: "Niveau 3 (CAP, BEP)",
    14: "Niveau 4 (baccalauréat)",
    15: "Niveau 5 (bac + 2 : BTS, DUT, DEUST)",
    16: "Niveau 6 (bac + 3 ou 4 : licence, BUT)",
    17: "Niveau 7 (bac + 5 : master, diplôme d'ingénieur)",
    18: "Niveau 8 (doctorat)",
}

#: dict-AIS, the "objectif général de formation".
OBJECTIFS_GENERAUX = {
    1: "Code obsolète",
    2: "Perfectionnement, élargissement des compétences",
    3: "Perfectionnement, élargissement des compétences",
    4: "Création d'entreprise",
    5: "Remise à niveau, maîtrise des savoirs de base, initiation",
    6: "Certification",
    7: "Professionnalisation",
    8: "Préparation à la qualification",
    9: "(Re)mobilisation, aide à l'élaboration de projet professionnel",
}

#: dict-type-parcours.
PARCOURS = {1: "En groupe (non personnalisable)", 2: "Individualisé", 3: "Modularisé", 4: "Mixte"}

ETATS_RECRUTEMENT = {1: "Recrutement ouvert", 2: "Recrutement fermé", 3: "Recrutement suspendu"}

#: The Formacode codes of dict-public-vise (V10) that exports use most.
PUBLICS_VISES = {
    "80001": "Public sans emploi",
    "80003": "Demandeur d'emploi de plus de 26 ans",
    "80004": "Cadre demandeur d'emploi",
    "80005": "Bénéficiaire du RSA",
    "80006": "Demandeur d'emploi",
    "80007": "Demandeur d'emploi de longue durée",
    "80008": "Licencié pour motif économique",
    "80009": "Demandeur d'emploi de moins de 26 ans",
    "80010": "Militaire en reconversion",
    "81013": "Public sous main de justice",
    "81019": "Public en situation d'illettrisme",
    "81020": "Personne handicapée",
    "81024": "Jeune",
    "81042": "Réfugié",
    "81050": "Particulier, individuel",
    "81099": "Autre public",
    "82027": "Contrat d'apprentissage",
    "82029": "Contrat de professionnalisation",
    "82044": "Salarié",
    "82045": "Salarié en reconversion",
    "82055": "Agent de la fonction publique",
    "82058": "Public en emploi",
    "83056": "Tout public",
}


# --------------------------------------------------------------------------
# Filters
# --------------------------------------------------------------------------

_BR_RE = re.compile(r"&lt;\s*br\s*/?\s*&gt;(\r\n|\r|\n)?", re.IGNORECASE)
_NEWLINE_RE = re.compile(r"\r\n|\r|\n")
_EMAIL_RE = re.compile(r"^[^@\s<>\"'()\[\],;:]+@[^@\s<>\"'()\[\],;:]+\.[A-Za-z]{2,}$")


def lheo_text(value: Optional[str]) -> Markup:
    """Free LHEO text as HTML: everything escaped, then only line breaks turned back into ``<br>``.

    Exports carry HTML as text (``<br />``, read from ``&lt;br /&gt;``); any
    other tag stays visible as text and is never interpreted.
    """
    if not value:
        return Markup("")
    text = value.strip()
    text = _escape_str(text) if type(text) is str else str(escape(text))
    # Most texts have neither: a substring test is many times quicker than a regex scan of a long text.
    if "&lt;" in text:
        text = _BR_RE.sub("<br>", text)
    if "\n" in text or "\r" in text:
        text = _NEWLINE_RE.sub("<br>", text)
    # Markup(text) without Markup.__new__, Python code that looks for an __html__ a str does not have.
    return str.__new__(Markup, text)


_PLAIN_BR_RE = re.compile(r"<\s*br\s*/?\s*>", re.IGNORECASE)


def plain_text(value: Optional[str]) -> str:
    """The same text without markup, for meta descriptions and JSON-LD (line breaks as spaces)."""
    if not value:
        return ""
    text = _PLAIN_BR_RE.sub(" ", value) if "<" in value else value
    return " ".join(text.split())


#: A character that keeps a URL from being a link: whitespace (as ``str.isspace``) or a control character.
_NOT_IN_URL_RE = re.compile(r"[\s\x00-\x1f]")


def is_http_url(value: Any) -> bool:
    """Only ``http(s)://host...`` URLs become links; anything else is shown as text."""
    if not isinstance(value, str) or _NOT_IN_URL_RE.search(value.strip()):
        return False
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


_SCHEME_RE = re.compile(r"^https?://", re.IGNORECASE)
_NOT_TEL_RE = re.compile(r"[^\d+]")


def url_label(url: str, limit: int = 60) -> str:
    """The text of a link: the URL without its scheme, cut at ``limit`` characters."""
    text = _SCHEME_RE.sub("", url.strip())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def is_email(value: Any) -> bool:
    return isinstance(value, str) and bool(_EMAIL_RE.match(value.strip()))


def tel_href(number: str) -> str:
    """``tel:`` link target: digits and a leading ``+`` only."""
    digits = _NOT_TEL_RE.sub("", number)
    return "tel:" + digits[:1] + digits[1:].replace("+", "")


def date_fr(value: Any) -> str:
    """``JJ/MM/AAAA`` for a full date, ``MM/AAAA`` or ``AAAA`` for a partial one, ``""`` when unknown."""
    if value is None:
        return ""
    if isinstance(value, (str, int, dt.date)):
        value = PartialDate.parse(value)
        if value is None:
            return ""
    return value.french()


def iso_date(value: Optional[PartialDate]) -> Optional[str]:
    """ISO 8601 at the precision known (``2026-09-01``, ``2026-09``, ``2026``), for schema.org."""
    if value is None:
        return None
    if value.day:
        return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
    if value.month:
        return f"{value.year:04d}-{value.month:02d}"
    return f"{value.year:04d}"


def money(value: Optional[Decimal]) -> str:
    """French amount: ``1 234,50 €`` (no-break spaces), cents only when there are some."""
    if value is None:
        return ""
    quantized = Decimal(value).quantize(Decimal("0.01"))
    units, cents = f"{quantized:.2f}".split(".")
    grouped = f"{int(units):,}".replace(",", "\u202f")
    return f"{grouped},{cents}\u00a0€" if cents != "00" else f"{grouped}\u00a0€"


def price(value: Optional[Decimal]) -> str:
    """``8 400 € TTC``, or ``Gratuit`` for a price of zero."""
    if value is None:
        return ""
    return "Gratuit" if value == 0 else f"{money(value)} TTC"


def plural(count: int, singular: str, plural_form: Optional[str] = None) -> str:
    """``1 formation``, ``2 formations``, ``12 345 formations``."""
    word = singular if count <= 1 else (plural_form or singular + "s")
    return f"{count:,}".replace(",", "\u202f") + " " + word


def number(count: int) -> str:
    return f"{count:,}".replace(",", "\u202f")


def address_lines(adresse: Optional[Adresse]) -> list[str]:
    """An address as the lines of an envelope; a ligne written with line breaks gives several."""
    if adresse is None:
        return []
    lines = [adresse.denomination] if adresse.denomination else []
    lines += _lines_of(adresse.lignes)
    town = " ".join(p for p in (adresse.codepostal, adresse.ville) if p)
    if town:
        lines.append(town)
    return lines


def _lines_of(lignes: list[str]) -> list[str]:
    """The lines of an address's ``lignes``, each cut at its line breaks, without the blank ones and the ``-``."""
    lines: list[str] = []
    for ligne in lignes:
        lines.extend(part.strip() for part in _NEWLINE_RE.split(ligne) if part.strip() and part.strip() != "-")
    return lines


def person_name(coordonnees: Coordonnees) -> str:
    return " ".join(p for p in (coordonnees.civilite, coordonnees.prenom, coordonnees.nom) if p)


def json_for_script(data: Any) -> Markup:
    """JSON safe inside ``<script>``: ``<``, ``>`` and ``&`` written as ``\\u`` escapes, so no ``</script>``."""
    text = _script_safe(json.dumps(data, ensure_ascii=False, separators=(",", ":")))
    return str.__new__(Markup, text)  # Markup(text), without its __new__ (see lheo_text)


def _fold(text: str) -> str:
    if text.isascii():
        return text.casefold()  # NFKD leaves ASCII as it is, and it has no combining marks
    folded = unicodedata.normalize("NFKD", text)
    return "".join(c for c in folded if not unicodedata.combining(c)).casefold()


def initial_of(name: str) -> str:
    """The letter an organisme is listed under: ``a`` to ``z``, or ``0`` for anything else."""
    return _initial_of_folded(_fold(name))


def _initial_of_folded(folded: str) -> str:
    for char in folded:
        if char.isalnum():
            return char if "a" <= char <= "z" else "0"
    return "0"


def letter_label(initial: str) -> str:
    return initial.upper() if initial != "0" else "0–9 et autres"


# --------------------------------------------------------------------------
# What the fiche shows, prepared in Python so that templates only display
# --------------------------------------------------------------------------


# Not frozen: a frozen dataclass sets each field through object.__setattr__, and a fiche makes a few of them
# (slots: their fields are read by the template's getattr).
@dataclass(slots=True)
class SessionView:
    """One dated period (LHEO session) as a counsellor reads it."""

    session: Session
    ended: bool
    text: str  # "Du 01/09/2026 au 30/06/2027"


@dataclass(slots=True)
class ActionView:
    """One LHEO action (the Carif-Oref's "session"): where, how, and its dated periods."""

    action: Action
    number: int
    lieux: tuple[Coordonnees, ...]
    #: The organisme's address when the action takes place in its premises (no lieu).
    premises: Optional[Adresse]
    in_premises: bool
    sessions: tuple[SessionView, ...]
    title: str
    financeurs: tuple[str, ...]
    #: Every one of its sessions has ended.
    ended: bool


class FicheEntry(NamedTuple):
    """What a fiche shows of its formation's :class:`~catalogue.catalog.Entry`: what the build sends a fiche
    worker with the formation (the Entry, its places, origin and lists, costs ten times as much to pickle)."""

    ref: str
    url: str
    archived: bool
    ville: Optional[str]
    #: The région of its first place.
    region: Optional[str]
    carif: Optional[str]
    rncp: tuple[str, ...]

    @classmethod
    def of(cls, entry: Entry) -> FicheEntry:
        place = entry.place
        if place is None:
            return cls(entry.ref, entry.url, entry.archived, None, None, entry.carif, entry.rncp)
        return cls(entry.ref, entry.url, entry.archived, place.ville, place.region, entry.carif, entry.rncp)


def period_text(session: Session) -> str:
    """``Du 01/09/2026 au 30/06/2027``; partial and unknown dates said as such."""
    debut, fin = session.periode.debut, session.periode.fin
    if debut is None and fin is None:
        return "Date de début non communiquée"
    if debut is None:
        return f"Date de début non communiquée ; fin {_when(fin)}"
    if fin is None:
        return f"Début {_when(debut)} ; date de fin non communiquée"
    if debut.is_full and fin.is_full:
        return f"Du {debut.french()} au {fin.french()}"
    return f"Début {_when(debut)}, fin {_when(fin)}"


def _when(date: PartialDate) -> str:
    return f"le {date.french()}" if date.is_full else f"en {date.french()}"


#: Per period, by its dates' AAAAMMJJ texts (its value): its period_text() and its last possible day. A
#: catalogue holds a few thousand distinct periods, and a fiche shows each of its sessions' (3 µs each).
_PERIODS: dict[tuple[str, str], tuple[str, Optional[dt.date]]] = {}


def _period(session: Session) -> tuple[str, Optional[dt.date]]:
    debut, fin = session.periode.debut, session.periode.fin
    key = (debut.text if debut is not None else "", fin.text if fin is not None else "")
    known = _PERIODS.get(key)
    if known is None:
        if len(_PERIODS) >= 100_000:
            _PERIODS.clear()
        known = _PERIODS[key] = (period_text(session), fin.latest() if fin is not None else None)
    return known


def session_order(session: Session, today: dt.date) -> tuple:
    """Sessions not yet ended first, the next to start first (unknown starts after), then ended ones, latest first."""
    start = session.periode.debut.earliest() if session.periode.debut else None
    if is_ended(session, today):
        return (1, False, dt.date.max.toordinal() - start.toordinal() if start else 0)
    return (0, start is None, start.toordinal() if start else 0)


def action_views(formation: Formation, today: dt.date) -> list[ActionView]:
    premises = formation.organisme_formation_responsable.coordonnees_organisme
    views = []
    for position, action in enumerate(formation.actions, start=1):
        sessions = action.sessions
        if len(sessions) > 1:  # most actions have one session: no key to compute
            sessions = sorted(sessions, key=lambda s: session_order(s, today))
        lieux = tuple(action.lieux_de_formation)
        villes = sorted({l.adresse.ville for l in lieux if l.adresse and l.adresse.ville})
        if not lieux:
            where = premises.adresse.ville if premises and premises.adresse and premises.adresse.ville else None
            villes = [where] if where else []
        title = ", ".join(villes) if villes else "lieu non communiqué"
        if action.modalites_enseignement is ModalitesEnseignement.DISTANCE:
            title = "À distance" + (f" ({title})" if villes else "")
        financeurs = tuple(
            dict.fromkeys(FINANCEURS.get(f.code_financeur, f"code {f.code_financeur}") for f in action.organismes_financeurs)
        ) if action.organismes_financeurs else ()
        shown = []
        for s in sessions:
            text, last = _period(s)
            shown.append(SessionView(s, last is not None and last < today, text))  # ended: is_ended(s, today)
        session_views = tuple(shown)
        views.append(
            ActionView(
                action=action,
                number=position,
                lieux=lieux,
                premises=premises.adresse if (not lieux and premises) else None,
                in_premises=not lieux,
                sessions=session_views,
                title=title,
                financeurs=financeurs,
                ended=all(s.ended for s in session_views),
            )
        )
    return views


def _distinct(values: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(v for v in values if v is not None))


def key_facts(formation: Formation) -> SimpleNamespace:
    """The facts of the "En bref" list, merged over the actions.

    Attributes, not a dict: the template reads ``facts.rncp``, and Jinja2 looks for an
    attribute before an item (a dict would cost an AttributeError per read)."""
    heures, prix = set(), set()
    # Dicts as ordered sets: the values in the order met, once each (as _distinct keeps them).
    durees: dict[str, None] = {}
    modalites: dict[str, None] = {}
    publics: dict[str, None] = {}
    for a in formation.actions:  # one pass, not one per fact: most formations have one or two actions
        if a.nombre_heures_total:
            heures.add(a.nombre_heures_total)
        if a.prix_total_ttc is not None:
            prix.add(a.prix_total_ttc)
        if a.duree_indicative is not None:
            durees[a.duree_indicative] = None
        modalite = MODALITES_ENSEIGNEMENT.get(a.modalites_enseignement)
        if modalite is not None:
            modalites[modalite] = None
        for code in a.code_public_vise:
            publics[PUBLICS_VISES.get(code, f"Formacode {code}")] = None
    certifications = formation.certifications
    return SimpleNamespace(
        rncp=_distinct(_code(c.code_rncp, "RNCP") for c in certifications) if certifications else [],
        rs=_distinct(_code(c.code_rs, "RS") for c in certifications) if certifications else [],
        heures=sorted(heures),
        duree_indicative=list(durees),
        prix=sorted(prix),
        modalites=list(modalites),
        niveau_entree=NIVEAUX.get(formation.code_niveau_entree),
        niveau_sortie=NIVEAUX.get(formation.code_niveau_sortie),
        objectif_general=OBJECTIFS_GENERAUX.get(formation.objectif_general_formation),
        parcours=PARCOURS.get(formation.parcours_de_formation),
        publics=list(publics),
    )


def _code(value: Optional[str], prefix: str) -> Optional[str]:
    """``RNCP37874`` or ``37874`` -> ``37874``."""
    if not value:
        return None
    return value[len(prefix) :] if value.upper().startswith(prefix) else value


_COURSE_MODES = {
    ModalitesEnseignement.PRESENTIEL: "onsite",
    ModalitesEnseignement.MIXTE: "blended",
    ModalitesEnseignement.DISTANCE: "online",
}


def course_jsonld(
    formation: Formation,
    entry: Entry | FicheEntry,
    canonical: str,
    settings: Settings,
    objectif: Optional[str] = None,
) -> dict[str, Any]:
    """Schema.org ``Course`` with one ``CourseInstance`` per LHEO session: the reference, as dicts, that
    :func:`course_jsonld_script` writes as text for the fiches (``tests/test_render_shared.py`` compares them).

    ``objectif``: ``plain_text(formation.objectif_formation)``, when the caller has it already.
    """
    organisme = formation.organisme_formation_responsable
    provider: dict[str, Any] = {"@type": "Organization", "name": organisme.nom_organisme}
    if organisme.siret_organisme_formation:
        provider["identifier"] = organisme.siret_organisme_formation
        provider["url"] = f"{settings.site_url}/organismes/{organisme.siret_organisme_formation}.html"
    course: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "Course",
        "name": formation.intitule_formation,
        "courseCode": formation.numero,
        "url": canonical,
        "provider": provider,
        "dateModified": iso_date(formation.datemaj),
    }
    if objectif is None:
        objectif = plain_text(formation.objectif_formation)
    description = objectif or plain_text(formation.contenu_formation)
    if description:
        course["description"] = description
    premises = organisme.coordonnees_organisme.adresse if organisme.coordonnees_organisme else None
    instances = []
    for action in formation.actions:
        mode = _COURSE_MODES.get(action.modalites_enseignement)
        adresse = action.lieux_de_formation[0].adresse if action.lieux_de_formation else premises
        # One place for all the action's sessions (json.dumps writes a dict met twice twice).
        location = None
        if adresse is not None and adresse.ville:
            location = {"@type": "Place", "address": _postal_address(adresse)}
        for session in action.sessions:
            instance: dict[str, Any] = {"@type": "CourseInstance"}
            if session.numero:
                instance["identifier"] = session.numero
            if mode:
                instance["courseMode"] = mode
            if session.periode.debut:
                instance["startDate"] = iso_date(session.periode.debut)
            if session.periode.fin:
                instance["endDate"] = iso_date(session.periode.fin)
            if action.nombre_heures_total:
                instance["courseWorkload"] = f"PT{action.nombre_heures_total}H"
            if location is not None:
                instance["location"] = location
            instances.append(instance)
    course["hasCourseInstance"] = instances
    prices = sorted({a.prix_total_ttc for a in formation.actions if a.prix_total_ttc is not None})
    if prices:
        course["offers"] = [
            {"@type": "Offer", "category": "Paid" if p else "Free", "price": f"{p:.2f}", "priceCurrency": "EUR"}
            for p in prices
        ]
    if entry.rncp:
        course["educationalCredentialAwarded"] = [f"RNCP{code}" for code in entry.rncp]
    return course


#: A str as json.dumps(..., ensure_ascii=False) writes it (its own C function).
_json_str = json.encoder.encode_basestring


def _json(value: Any) -> str:
    """``value`` as :func:`json_for_script` writes it, escapes included.

    Its escapes replace characters one by one, and the text :func:`course_jsonld_script` writes around the
    values has none of them: escaping each value is escaping the whole, and scans a tenth of it (the five scans
    of a whole JSON-LD took a third of its time)."""
    text = _json_str(value) if type(value) is str else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return _script_safe(text)


def _script_safe(text: str) -> str:
    """The escapes of :func:`json_for_script`, on JSON text."""
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


class _Shared:
    """What a batch of fiches makes of an object its formations share (one frozen organisme, address or contact
    per repeated element, as the reader makes them and pickle's memo keeps them in a batch), made once.

    Keyed by the object's identity, and only while a batch is rendered (:meth:`Site.batch`): a batch's objects
    are fresh from pickle and never changed while it is rendered, and each entry holds its object, so that its
    id is not another's. Outside a batch, everything is made anew.
    """

    __slots__ = ("entries",)

    def __init__(self) -> None:
        self.entries: Optional[dict[tuple[Any, int], tuple[Any, Any]]] = None

    def get(self, kind: Any, obj: Any, make: Callable[[Any], Any]) -> Any:
        entries = self.entries
        if entries is None:
            return make(obj)
        hit = entries.get((kind, id(obj)))
        if hit is not None and hit[0] is obj:
            return hit[1]
        value = make(obj)
        entries[(kind, id(obj))] = (obj, value)
        return value

    def fragment(self, obj: Any, macro: Any) -> Any:
        """Filter ``fragment``: ``{{ obj | fragment(m) }}`` is ``{{ m(obj) }}``, for a macro ``m`` whose output
        depends only on its argument (and on constants of the template)."""
        return self.get(macro.name, obj, macro)


def course_jsonld_script(
    formation: Formation,
    entry: Entry | FicheEntry,
    canonical: str,
    settings: Settings,
    objectif: Optional[str] = None,
    shared: Optional[_Shared] = None,
) -> Markup:
    """``json_for_script(course_jsonld(...))``, the same text, written without the dicts (``tests/test_render_shared.py``
    compares the two): the provider and the places made once per organisme and address of a batch (``shared``)."""
    shared = shared or _NO_SHARING
    organisme = formation.organisme_formation_responsable
    parts = [
        '{"@context":"https://schema.org","@type":"Course","name":',
        _json(formation.intitule_formation),
        ',"courseCode":',
        _json(formation.numero),
        ',"url":',
        _json(canonical),
        ',"provider":',
        shared.get(_provider_json, organisme, lambda o: _provider_json(o, settings.site_url)),
        ',"dateModified":',
        _json(iso_date(formation.datemaj)),
    ]
    if objectif is None:
        objectif = plain_text(formation.objectif_formation)
    description = objectif or plain_text(formation.contenu_formation)
    if description:
        parts += (',"description":', _json(description))
    parts.append(',"hasCourseInstance":[')
    premises = organisme.coordonnees_organisme.adresse if organisme.coordonnees_organisme else None
    instances = []
    for action in formation.actions:
        mode = _COURSE_MODES.get(action.modalites_enseignement)
        mode = f',"courseMode":"{mode}"' if mode else ""
        # What follows the dates, the same for each of the action's sessions.
        tail = "}"
        adresse = action.lieux_de_formation[0].adresse if action.lieux_de_formation else premises
        if adresse is not None:
            location = shared.get(_location_json, adresse, _location_json)
            if location is not None:
                tail = ',"location":' + location + tail
        if action.nombre_heures_total:
            tail = ',"courseWorkload":' + _json(f"PT{action.nombre_heures_total}H") + tail
        for session in action.sessions:
            item = '{"@type":"CourseInstance"'
            if session.numero:
                item += ',"identifier":' + _json(session.numero)
            item += mode
            periode = session.periode
            if periode.debut:
                item += ',"startDate":"' + _iso(periode.debut) + '"'  # digits and hyphens: nothing to escape
            if periode.fin:
                item += ',"endDate":"' + _iso(periode.fin) + '"'
            instances.append(item + tail)
    parts += (",".join(instances), "]")
    prices = sorted({a.prix_total_ttc for a in formation.actions if a.prix_total_ttc is not None})
    if prices:
        parts.append(',"offers":[')
        parts.append(",".join(
            f'{{"@type":"Offer","category":"{"Paid" if p else "Free"}","price":{_json(f"{p:.2f}")},"priceCurrency":"EUR"}}'
            for p in prices
        ))
        parts.append("]")
    if entry.rncp:
        parts += (',"educationalCredentialAwarded":[', ",".join(_json(f"RNCP{code}") for code in entry.rncp), "]")
    parts.append("}")
    return str.__new__(Markup, "".join(parts))  # Markup(text), without its __new__ (see lheo_text)


_NO_SHARING = _Shared()


#: iso_date() of the dates met, by their AAAAMMJJ text (a date's value: a few thousand of them in a catalogue).
_ISO_DATES: dict[str, str] = {}


def _iso(date: PartialDate) -> str:
    iso = _ISO_DATES.get(date.text)
    if iso is None:
        if len(_ISO_DATES) >= 100_000:
            _ISO_DATES.clear()
        iso = _ISO_DATES[date.text] = iso_date(date)
    return iso


def _provider_json(organisme: Any, site_url: str) -> str:
    parts = ['{"@type":"Organization","name":', _json(organisme.nom_organisme)]
    siret = organisme.siret_organisme_formation
    if siret:
        parts += (',"identifier":', _json(siret), ',"url":', _json(f"{site_url}/organismes/{siret}.html"))
    parts.append("}")
    return "".join(parts)


def _location_json(adresse: Adresse) -> Optional[str]:
    """The ``location`` of a course instance at ``adresse``; None without a town."""
    if not adresse.ville:
        return None
    return '{"@type":"Place","address":' + _json(_postal_address(adresse)) + "}"


def _postal_address(adresse: Adresse) -> dict[str, Any]:
    address: dict[str, Any] = {"@type": "PostalAddress", "addressCountry": "FR"}
    street = ", ".join(_lines_of(adresse.lignes))
    if street:
        address["streetAddress"] = street
    if adresse.codepostal:
        address["postalCode"] = adresse.codepostal
    if adresse.ville:
        address["addressLocality"] = adresse.ville
    return address


# --------------------------------------------------------------------------
# The environment and the pages
# --------------------------------------------------------------------------


def _static_versions() -> dict[str, str]:
    """A short hash of each static file, appended to its URL so that caches never serve a stale one."""
    versions = {}
    if STATIC_DIR.is_dir():
        for path in sorted(STATIC_DIR.rglob("*")):
            if path.is_file():
                versions[path.relative_to(STATIC_DIR).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()[:10]
    return versions


#: Where compiled templates are kept between builds (:func:`keep_compiled_templates`); None: not kept.
_bytecode_cache: Optional[FileSystemBytecodeCache] = None


def keep_compiled_templates(folder: Optional[Path]) -> None:
    """Keep the templates compiled in ``folder``, for the environments made from now on.

    Every sink makes its environment and compiles the templates it uses (``base.html`` in each):
    a third of a second per build on this machine. Jinja2 checks each template's source
    against what it compiled, so a changed template is compiled again. A folder that cannot be
    made leaves the templates compiled in memory, as before.
    """
    global _bytecode_cache
    _bytecode_cache = None
    if folder is None:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return
    # Files of their own: Jinja2 checks a cached template against its source only, and code compiled by
    # another generator (older code on the same build folder) must not be taken for this one's.
    pattern = f"__catalogue_{_CodeGenerator.VERSION}_%s.cache"
    _bytecode_cache = FileSystemBytecodeCache(str(folder), pattern=pattern)


class _CodeGenerator(CodeGenerator):
    """Jinja2's code, with what a page does hundreds of times done in place.

    A fiche makes some 200 attribute lookups and 150 escapes, each a call of a Python
    function (``Environment.getattr``, ``markupsafe.escape``, ``Markup.__new__``): half the
    time of its render. The code made here does the common case in place and hands the
    rest to the same functions, so the semantics are Jinja2's (``tests/test_render_codegen.py``
    compares the two generators):

    - ``a.b``: the builtin ``getattr(a, "b", missing)``; only when it has no such
      attribute, ``environment.getattr`` (an item, else an undefined value);
    - ``{{ x }}``: a ``str`` escaped by markupsafe's own C function, as ``escape`` does,
      without wrapping it in ``Markup`` (a page's pieces are joined into a ``str`` anyway,
      and a macro's or a ``{% set %}`` block's output is made ``Markup`` whole); a
      ``Markup`` as it is (``escape`` would copy it); anything else (subclasses, numbers,
      undefined values) through ``escape``;
    - ``m(x)``: a macro called at once (:meth:`visit_Call`).

    The temporaries are assignment expressions: a nested expression assigns its own
    before the outer one assigns, and each is read at once, so one name per kind is enough.
    """

    #: Names the files of compiled templates (:func:`keep_compiled_templates`): a change to the code made here
    #: must change it.
    VERSION = 1

    def visit_Template(self, node: nodes.Template, frame: Optional[Frame] = None) -> None:
        self.writeline(f"from {__name__} import _escape_str")
        super().visit_Template(node, frame)

    @optimizeconst
    def visit_Getattr(self, node: nodes.Getattr, frame: Frame) -> None:
        if self.environment.is_async:
            CodeGenerator.visit_Getattr.__wrapped__(self, node, frame)  # type: ignore[attr-defined]
            return
        self.write("(_ga_v if (_ga_v := getattr((_ga_o := ")
        self.visit(node.node, frame)
        self.write(f"), {node.attr!r}, missing)) is not missing else environment.getattr(_ga_o, {node.attr!r}))")

    @optimizeconst
    def visit_Call(self, node: nodes.Call, frame: Frame, forward_caller: bool = False) -> None:
        if (
            self.environment.is_async
            or self.environment.sandboxed
            or forward_caller
            or node.kwargs
            or node.dyn_args is not None
            or node.dyn_kwargs is not None
            or not all(_simple_expression(arg) for arg in node.args)
        ):
            super().visit_Call(node, frame, forward_caller=forward_caller)
            return
        # A macro, called with plain arguments, is called as Context.call would end up calling it (its checks
        # for functions that take the context, then the call, cost as much as the macro's own code). The
        # arguments are written twice, evaluated once: only names, attributes and constants.
        self.write("(_mc_f(")
        for position, arg in enumerate(node.args):
            self.write(", " if position else "")
            self.visit(arg, frame)
        self.write(") if type(_mc_f := ")
        self.visit(node.node, frame)
        self.write(") is Macro else context.call(_mc_f")
        # Anything else as CodeGenerator.visit_Call calls it.
        extra = {"_loop_vars": "_loop_vars"} if frame.loop_frame else {}
        if frame.block_frame:
            extra["_block_vars"] = "_block_vars"
        self.signature(node, frame, extra or None)
        self.write("))")

    def _output_child_pre(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        if frame.eval_ctx.volatile or not frame.eval_ctx.autoescape or self.environment.is_async:
            super()._output_child_pre(node, frame, finalize)
            return
        self.write("(_escape_str(_oc_v) if type(_oc_v := ")
        if finalize.src is not None:
            self.write(finalize.src)

    def _output_child_post(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        if frame.eval_ctx.volatile or not frame.eval_ctx.autoescape or self.environment.is_async:
            super()._output_child_post(node, frame, finalize)
            return
        if finalize.src is not None:
            self.write(")")
        self.write(") is str else _oc_v if type(_oc_v) is Markup else escape(_oc_v))")


def _simple_expression(node: nodes.Node) -> bool:
    """A name, a constant or an attribute of one: code that can be written twice (see _CodeGenerator.visit_Call)."""
    while isinstance(node, nodes.Getattr):
        node = node.node
    return isinstance(node, (nodes.Name, nodes.Const))


class _Environment(Environment):
    code_generator_class = _CodeGenerator
    #: What a batch of fiches makes once of the objects its formations share (see Site.batch).
    shared: _Shared


def make_environment(settings: Settings) -> Environment:
    """The Jinja2 environment of every page, with the filters and globals ``base.html`` needs.

    Another page (the search page) is rendered with
    ``make_environment(settings).get_template("recherche.html").render(title=...)``.
    """
    env = _Environment(
        loader=FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
        bytecode_cache=_bytecode_cache,
    )
    versions = _static_versions()

    def static_url(name: str) -> str:
        version = versions.get(name)
        return f"/static/{name}" + (f"?v={version}" if version else "")

    env.filters.update(
        lheo_text=lheo_text,
        plain_text=plain_text,
        date_fr=date_fr,
        money=money,
        price=price,
        plural=plural,
        number=number,
        address_lines=address_lines,
        person_name=person_name,
        tel_href=tel_href,
        json_for_script=json_for_script,
        url_label=url_label,
    )
    env.shared = _Shared()
    env.filters["fragment"] = env.shared.fragment
    env.tests.update(http_url=is_http_url, email=is_email)
    env.globals.update(
        settings=settings,
        static_url=static_url,
        ETATS=ETATS_RECRUTEMENT,
        MODALITES=MODALITES_ENSEIGNEMENT,
        MODALITES_DISTANCE=ModalitesEnseignement.DISTANCE,
    )
    return env


@dataclass(frozen=True)
class Letter:
    """The organismes listed under one initial, cut into pages."""

    initial: str
    label: str
    organismes: tuple[OrganismeSummary, ...]

    def pages(self, size: int) -> list[tuple[OrganismeSummary, ...]]:
        return [self.organismes[i : i + size] for i in range(0, len(self.organismes), size)] or [()]

    def url(self, page: int = 1) -> str:
        return f"/organismes/{self.initial}/" + (f"{page}/" if page > 1 else "")


class Site:
    """Renders every page to a string; writes nothing (see :class:`SiteSink`)."""

    def __init__(self, settings: Settings, today: dt.date, geo: Geo):
        self.settings = settings
        self.today = today
        self.geo = geo
        self.env = make_environment(settings)
        names = ("fiche", "organisme", "organismes", "index", "404", "publier")
        self.templates = {name: self.env.get_template(f"{name}.html") for name in names}
        self.sitemap_template = self.env.get_template("sitemap.xml")
        self._globals: dict[str, dict[str, Any]] = {}  # per template, its globals (see _render)

    def _render(self, name: str, **context: Any) -> str:
        template = self.templates[name]
        # Template.render() with the context merged here: it would merge the template's globals, a ChainMap over
        # the environment's, read key by key in Python code (as much as 15 µs a page). Made once, since neither
        # changes once the templates are loaded.
        merged = self._globals.get(name)
        if merged is None:
            merged = self._globals[name] = dict(template.globals)
        ctx = template.new_context({**merged, **context}, shared=True)
        try:
            return tidy(self.env.concat(template.root_render_func(ctx)))
        except Exception:
            self.env.handle_exception()  # as Template.render: the error raised, at the template's line
        finally:
            # The page's macros (in its variables) refer to its context: a cycle that kept the page's context,
            # the formation with it, until the collector ran. Broken here, they are freed at once.
            ctx.vars.clear()

    def url(self, path: str) -> str:
        return self.settings.site_url.rstrip("/") + path

    def region_name(self, code: Optional[str]) -> Optional[str]:
        return self.geo.regions[code].nom if code and code in self.geo.regions else None

    def fiche(self, formation: Formation, entry: Entry | FicheEntry) -> str:
        if type(entry) is not FicheEntry:
            entry = FicheEntry.of(entry)
        canonical = self.url(entry.url)
        region = entry.region or None
        if region is None and entry.carif and entry.carif in self.settings.carif_oref:
            region = self.settings.carif_oref[entry.carif].region
        objectif = plain_text(formation.objectif_formation)
        return self._render(
            "fiche",
            f=formation,
            entry=entry,
            organisme=formation.organisme_formation_responsable,
            actions=action_views(formation, self.today),
            facts=key_facts(formation),
            region=region,
            region_name=self.region_name(region),
            canonical=canonical,
            title=f"{formation.intitule_formation} – {formation.organisme_formation_responsable.nom_organisme}",
            description=objectif[:300],
            jsonld=course_jsonld_script(formation, entry, canonical, self.settings, objectif, self.env.shared),
        )

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Fiches rendered in here make once what depends only on an object they share (an organisme, an
        address, a contact: see :class:`_Shared`); the objects must not change until the block ends."""
        shared = self.env.shared
        shared.entries = {}
        try:
            yield
        finally:
            shared.entries = None

    @staticmethod
    def organisme_inputs(summary: OrganismeSummary, adresse_json: str) -> tuple:
        """Everything :meth:`organisme` shows of its arguments (the address as JSON): its page's memo key.

        Keep it in step with ``organisme.html``: an incremental build reuses the
        previous page while these are equal (``tests/test_render_incremental.py``
        checks that no change of an entry alters the page without altering them).
        """
        rows = tuple((e.ref, e.intitule, e.ville, e.datemaj, e.archived) for e in summary.entries)
        return (summary.siret, summary.nom, summary.raison_sociale, adresse_json, rows)

    def organisme(self, summary: OrganismeSummary, adresse: Optional[Adresse] = None) -> str:
        entries = sorted(summary.entries, key=lambda e: (e.archived, e.ref))
        return self._render(
            "organisme",
            o=summary,
            entries=entries,
            adresse=adresse,
            canonical=self.url(f"/organismes/{summary.siret}.html"),
            title=f"{summary.nom} – SIRET {summary.siret}",
            description=f"Formations publiées et archivées de {summary.nom} (SIRET {summary.siret}).",
        )

    def letters(self, organismes: Iterable[OrganismeSummary]) -> list[Letter]:
        keyed = []
        for o in organismes:
            folded = _fold(o.nom)  # once per organisme
            keyed.append((_initial_of_folded(folded), folded, o.siret, o))
        keyed.sort(key=lambda k: k[:3])  # SIRETs are distinct: the organismes are never compared
        return [
            Letter(initial, letter_label(initial), tuple(k[3] for k in group))
            for initial, group in groupby(keyed, key=lambda k: k[0])
        ]

    @staticmethod
    def organismes_page_inputs(letters: list[Letter], letter: Optional[Letter], page: int, total: int) -> tuple:
        """Everything :meth:`organismes_page` shows of its arguments: its memo key (see :meth:`organisme_inputs`)."""
        overview = tuple((l.initial, l.label, len(l.organismes)) for l in letters)
        if letter is None:
            return (overview, total)
        pages = letter.pages(ORGANISMES_PER_PAGE)
        rows = tuple(_organisme_row(o) for o in pages[page - 1])
        return (overview, total, letter.initial, letter.label, page, len(pages), rows)

    def organismes_page(self, letters: list[Letter], letter: Optional[Letter], page: int, total: int) -> str:
        pages = letter.pages(ORGANISMES_PER_PAGE) if letter else []
        path = letter.url(page) if letter else "/organismes/"
        return self._render(
            "organismes",
            letters=letters,
            letter=letter,
            page=page,
            page_count=len(pages),
            organismes=pages[page - 1] if letter else (),
            total=total,
            canonical=self.url(path),
            title="Organismes de formation"
            + (f" – {letter.label}" if letter else "")
            + (f" (page {page})" if page > 1 else ""),
            description="Les organismes de formation du catalogue, par ordre alphabétique.",
        )

    def home(self, catalog: Catalog) -> str:
        current = catalog.current
        # The first LATEST_COUNT of the sorted list (Refs are distinct: no ties), without sorting it all.
        latest = heapq.nsmallest(LATEST_COUNT, current, key=_latest_order)
        counts: dict[str, int] = {}
        for entry in current:
            for region in entry.regions:
                counts[region] = counts.get(region, 0) + 1
        return self.home_page(len(current), len(catalog.entries) - len(current), len(catalog.organismes()), latest, counts)

    def home_page(self, current: int, archived: int, organismes: int, latest: list[Entry], counts: dict[str, int]) -> str:
        """The home from its figures: formations current and archived, organismes, the latest formations
        (in order), and current formations per région code."""
        regions = sorted(
            ((code, self.region_name(code) or code, count) for code, count in counts.items()),
            key=lambda r: (_fold(r[1]), r[0]),
        )
        return self._render(
            "index",
            current=current,
            archived=archived,
            organismes=organismes,
            latest=latest,
            regions=regions,
            canonical=self.url("/"),
            title=self.settings.site_name,
            description="Le catalogue public des actions de formation validées par les Carif-Oref : "
            "rechercher une formation, retrouver une fiche par sa référence, vérifier l'offre d'un organisme.",
        )

    def not_found(self) -> str:
        return self._render("404", title="Page introuvable")

    def publier(self) -> str:
        carifs = sorted(
            (
                (prefix, carif, self.region_name(carif.region) or carif.region)
                for prefix, carif in self.settings.carif_oref.items()
            ),
            key=lambda c: (_fold(c[2]), c[0]),
        )
        return self._render(
            "publier",
            carifs=carifs,
            exemple_yaml=(TEMPLATES_DIR / "exemple-soumission.yaml").read_text(encoding="utf-8"),
            canonical=self.url("/publier/"),
            title="Publier une formation",
            description="Comment un organisme fait publier une action de formation : "
            "le Carif-Oref du lieu de formation, les sessions, l'archivage, la référence.",
        )

    def sitemaps(self, catalog: Catalog, max_urls: int = SITEMAP_MAX_URLS) -> dict[str, str]:
        """``sitemap.xml`` (a sitemap index) and ``sitemaps/sitemap-N.xml``, by path under the site."""
        chunks = self.sitemap_chunks(catalog, max_urls)
        files = {
            f"sitemaps/sitemap-{position}.xml": self.sitemap("urlset", chunk)
            for position, chunk in enumerate(chunks, start=1)
        }
        files["sitemap.xml"] = self.sitemap_index(len(chunks))
        return files

    def sitemap_chunks(self, catalog: Catalog, max_urls: int = SITEMAP_MAX_URLS) -> list[tuple[tuple[str, Optional[str]], ...]]:
        """The (URL, lastmod) pairs of each ``sitemaps/sitemap-N.xml``: at least one file, even empty."""
        urls = tuple(self.sitemap_urls(catalog))
        return [urls[i : i + max_urls] for i in range(0, len(urls), max_urls)] or [()]

    def sitemap(self, kind: str, urls: Iterable[tuple[str, Optional[str]]]) -> str:
        return self.sitemap_template.render(kind=kind, urls=urls)

    def sitemap_index(self, count: int) -> str:
        return self.sitemap("index", [(self.url(f"/sitemaps/sitemap-{n}.xml"), None) for n in range(1, count + 1)])

    def sitemap_urls(
        self, catalog: Catalog, start: int = 0, stop: Optional[int] = None
    ) -> Iterator[tuple[str, Optional[str]]]:
        """The (URL, lastmod) pairs of the sitemaps, in order: the fixed pages, the fiches, the organismes;
        only those from position ``start`` to ``stop`` (excluded)."""
        base = self.url("")
        entries = catalog.entries
        stop = len(STATIC_URLS) + len(entries) + len(catalog.organismes()) if stop is None else stop
        for path in STATIC_URLS[start:stop]:
            yield base + path, None
        start, stop = max(0, start - len(STATIC_URLS)), max(0, stop - len(STATIC_URLS))
        for entry in entries[start:stop]:
            yield base + entry.url, _iso_lheo(entry.datemaj)
        start, stop = max(0, start - len(entries)), max(0, stop - len(entries))
        if stop > 0:  # only then grouped by organisme
            for siret, summary in list(catalog.organismes().items())[start:stop]:
                yield f"{base}/organismes/{siret}.html", _iso_lheo(max([e.datemaj for e in summary.entries]))


#: Possessive: on an indented line, the spaces are not given back one by one to look for a newline after fewer
#: of them (a fiche's 200 lines: 15 µs with backtracking, 9 without).
_BLANK_LINES_RE = re.compile(r"\n[ \t]*+(?=\n)")


def tidy(html: str) -> str:
    """Drop the blank lines left by template tags (no page holds a ``<pre>``)."""
    return _BLANK_LINES_RE.sub("", html)


def _organisme_row(o: OrganismeSummary) -> tuple[str, str, int, int]:
    """What a list of organismes shows of one: SIRET, name, formations published and archived."""
    archived = sum(1 for e in o.entries if e.archived)
    return (o.siret, o.nom, len(o.entries) - archived, archived)


def _iso_lheo(datemaj: str) -> str:
    return f"{datemaj[:4]}-{datemaj[4:6]}-{datemaj[6:]}"


def _latest_order(entry: Entry) -> tuple[int, str]:
    """The order of "Dernières mises à jour": the latest first, then by Ref (Refs are distinct: no ties)."""
    return (-int(entry.datemaj), entry.ref)


def _ref_of(entry: Entry) -> str:
    return entry.ref


def _facts(address: int, entry: Entry) -> str:
    """What the site sink notes of a formation for the next build: its organisme's address (an index), and
    what the home and the sitemap show of it; one string (see :func:`_unpack`), which the collector never
    walks and marshal loads at twice the pace of a tuple. Région codes, dates and SIRETs hold no tab."""
    return f"{address}\t{'1' if entry.archived else ''}\t{' '.join(entry.regions)}\t{entry.datemaj}\t{entry.siret}"


def _unpack(facts: str) -> tuple[int, bool, tuple[str, ...], str, str]:
    """(address, archived, régions, datemaj, SIRET) from :func:`_facts`."""
    address, archived, regions, datemaj, siret = facts.split("\t")
    return int(address), bool(archived), tuple(regions.split()), datemaj, siret


def _address_of(facts: str) -> int:
    return int(facts[: facts.index("\t")])


def _row(summary: OrganismeSummary) -> tuple[str, int, int, str]:
    """What the lists of organismes and the sitemap show of an organisme: its name, formations current and
    archived, and its latest datemaj."""
    archived = sum(1 for e in summary.entries if e.archived)
    return (summary.nom, len(summary.entries) - archived, archived, max(e.datemaj for e in summary.entries))


def _merge_rows(previous: dict[str, tuple], untouched: dict[str, tuple], redone: dict[str, tuple]) -> dict[str, tuple]:
    """Every organisme's row, in SIRET order: the untouched ones' and those made again (of which some new)."""
    rows = {siret: untouched.get(siret) or redone[siret] for siret in previous if siret in untouched or siret in redone}
    if len(rows) < len(untouched) + len(redone):  # organismes new since the previous build
        rows.update(redone)
        rows = dict(sorted(rows.items()))
    return rows


def _is_listing(name: str) -> bool:
    """A page of the lists of organismes (``organismes/index.html``, ``organismes/<lettre>/[<page>/]index.html``)."""
    return name.startswith("organismes/") and name.endswith("/index.html") or name == "organismes/index.html"


#: Off: every listing page keyed from its inputs, as in a full build (tests compare both ways).
_SHORTCUTS = True
#: Beyond this share of the organismes touched by a rebuild, they are all grouped (Catalog.organismes()).
TOUCHED_SHARE = 0.25


# --------------------------------------------------------------------------
# The build's sink
# --------------------------------------------------------------------------

_SIRET_RE = re.compile(r"^\d{14}$")

#: Processes that render and write the fiches while the build reads on; 0 renders them in the build's process.
#: A core is left to the build itself, which reads and feeds the other sinks: on 2 cores, a full build of 10,000
#: formations took 35 s with one worker, 46 s with two and 55 s with none (medians of 3, on a shared machine).
FICHE_WORKERS = max(0, min(2, (os.cpu_count() or 1) - 1))
#: Fiches sent to a worker at once. At most BATCHES_IN_FLIGHT batches per worker wait, which bounds the memory.
FICHE_BATCH = 64
BATCHES_IN_FLIGHT = 2
#: Organisme pages sent to a worker at once, and how many pages to render make the build start workers for them
#: (a rebuild after a few changes renders its few pages itself).
ORGANISME_BATCH = 16
ORGANISMES_FOR_WORKERS = 64

#: Where the sink keeps, in a build's folder, what the next build reuses (never served).
CACHE_DIR = Path(".cache") / "site"
CACHE_FILE = "site.marshal"
CACHE_VERSION = 3
#: Under CACHE_DIR, a full build's spare copy (hard links) of the folders a later build takes over
#: (:data:`TAKEN_OVER`): the first rebuild, which has no build before the published one, takes it.
SPARE_DIR = "spare"
#: The folders of site/ an incremental build takes over from an older build rather than link file by file.
TAKEN_OVER = ("formations", "organismes")
_TAKEN_OVER_PREFIXES = tuple(name + "/" for name in TAKEN_OVER)
#: The address of an organisme without one, in the cache.
NO_ADDRESS = "null"


@register_sink("site")
class SiteSink:
    """Writes the static site into ``staging/site``: fiches as they come, the rest at the end.

    Fiches are rendered and written by :data:`FICHE_WORKERS` forked processes
    (``workers``; 0: by the build's own), a batch at a time, while the build
    reads on. In an incremental build (``context.previous``), an unchanged
    formation's fiche is hard-linked from the previous build, and so is every
    other page whose memo key (a digest of what it shows) is the one the previous
    build noted for it in its cache: only new or changed pages are written.
    """

    def __init__(
        self,
        context: SinkContext,
        *,
        sitemap_max_urls: int = SITEMAP_MAX_URLS,
        workers: Optional[int] = None,
    ):
        self.root = context.staging / "site"
        self._root_prefix = f"{self.root}{os.sep}"
        self._previous_site = f"{context.previous.folder / 'site'}{os.sep}" if context.previous is not None else ""
        self._fiches = self.root / "formations"
        #: The fiches and organismes folders of an older build, taken over (see :func:`_recycle_fiches`).
        recycled = {
            name: _recycle_fiches(context.previous.folder, self.root / name, name) if context.previous else None
            for name in TAKEN_OVER
        }
        self._recycled = recycled["formations"]
        self._recycled_organismes = recycled["organismes"]
        #: A full build links every page of TAKEN_OVER into a spare folder too, off site/ (by whoever writes it).
        self._spare_prefix = (
            f"{context.staging / CACHE_DIR / SPARE_DIR}{os.sep}" if context.previous is None else ""
        )
        self._kept: set[str] = set()  # names of the fiches kept, when a folder was taken over
        self._fiches.mkdir(parents=True, exist_ok=True)
        self._fiches_prefix = f"{self._fiches}{os.sep}"
        if context.previous is not None:
            self._previous_fiches = f"{context.previous.folder / 'site' / 'formations'}{os.sep}"
        self.site = Site(context.settings, context.today, context.geo)
        self.sitemap_max_urls = sitemap_max_urls
        workers = FICHE_WORKERS if workers is None else workers
        self.workers = workers if "fork" in multiprocessing.get_all_start_methods() else 0
        self._cache_file = context.staging / CACHE_DIR / CACHE_FILE
        self._salt = _salt(context.settings)
        self._previous = context.previous
        self._previous_state = _load_state(context.previous.folder) if context.previous else None
        #: The previous build's pages can be reused: same settings, templates, static files and code.
        self._same_salt = self._previous_state is not None and self._previous_state["salt"] == self._salt
        #: Per path under site/, the memo key the previous build wrote the page with.
        self._previous_pages: dict[str, str] = self._previous_state["pages"] if self._same_salt else {}
        self._pages: dict[str, str] = {}
        state = self._previous_state
        #: What the previous build's listing pages were made of (see :meth:`_save_state`); empty: nothing reused.
        self._previous_rows: dict[str, tuple] = state["rows"] if self._same_salt else {}
        self._previous_refs: dict[str, str] = state["refs"] if state is not None else {}
        self._previous_home: Optional[tuple] = tuple(state["home"]) if self._same_salt else None
        self._previous_latest: frozenset[str] = frozenset(self._previous_home[3]) if self._previous_home else frozenset()
        self._latest_kept: dict[str, Entry] = {}  # the previous home's latest formations, when kept
        #: The Refs given to add(): new or changed formations (every one, in a full build), and their entries.
        self._added: set[str] = set()
        self._added_entries: list[Entry] = []
        self._added_sirets: set[str] = set()
        self._rows_redone: list[str] = []  # the SIRETs whose row was made again (not the previous build's)
        # Per Ref, its _facts(): the organisme's address on that formation (an organisme's page shows the one of
        # its smallest Ref, whichever formations a later build keeps), and what the home and the sitemap show of
        # it. Addresses as indexes in a table (each distinct JSON once), kept from build to build so that a kept
        # formation's facts are the previous build's string.
        self._refs: dict[str, str] = {}
        self._addresses: list[str] = list(state["addresses"]) if state is not None else []
        self._address_ids: Optional[dict[str, int]] = None  # made at the first add()
        self._last_adresse: Optional[Adresse] = None  # the address of the previous add(), and its index
        self._last_address = -1
        self._table = state["table"] if state is not None else 0  # its size when last made anew
        self._batch: list[tuple[str, Optional[str], Formation, FicheEntry]] = []
        self._pool: Optional[_FichePool] = None

    # -- fiches -------------------------------------------------------------

    def add(self, formation: Formation, entry: Entry) -> None:
        # Paths as strings: this runs in the build's own process, once per formation (see keep()).
        name = f"{_safe_ref(entry.ref)}.html"
        path = self._fiches_prefix + name
        spare = f"{self._spare_prefix}formations{os.sep}{name}" if self._spare_prefix else None
        self._added.add(entry.ref)
        self._added_entries.append(entry)
        self._added_sirets.add(entry.siret)
        coordonnees = formation.organisme_formation_responsable.coordonnees_organisme
        adresse = coordonnees.adresse if coordonnees else None
        if adresse is not self._last_adresse or adresse is None:
            # Formations come grouped by organisme, which the reader gives one frozen address object: its JSON
            # (3 µs) and index are the previous formation's. The object is held, so its id is no other's.
            self._last_adresse = adresse
            self._last_address = self._address_id(adresse.model_dump_json() if adresse else NO_ADDRESS)
        address = self._last_address
        self._refs[entry.ref] = _facts(address, entry)
        recycled = self._recycled
        if recycled is not None and name in recycled.present and name not in recycled.same:
            recycled.discard(path, name)  # the older build's own page: put aside, not unlinked
        if self.workers <= 0:
            _write(path, self.site.fiche(formation, entry), spare)
            return
        self._batch.append(_fiche_job(path, spare, formation, entry))
        if len(self._batch) >= FICHE_BATCH:
            self._send_batch()

    def keep(self, entry: Entry) -> None:
        """An unchanged formation: its fiche is the previous build's file, linked."""
        if self._previous is None:
            raise RuntimeError(f"formation {entry.ref} : keep() sans build précédent")
        facts = self._previous_refs.get(entry.ref)
        if facts is None:
            # Missing from the published build, as a fiche would be: the build then rebuilds everything.
            cache = self._previous.folder / CACHE_DIR / CACHE_FILE
            raise FileNotFoundError(errno.ENOENT, f"la formation {entry.ref} n'y est pas notée", str(cache))
        # Paths as strings: at 100,000 fiches, pathlib's joins cost as much as the links. No _safe_ref():
        # the Ref is one the previous build wrote a fiche for (in its state), after checking it.
        name = entry.ref + ".html"
        recycled = self._recycled
        if recycled is not None:
            self._kept.add(name)
            if name in recycled.same:
                name = ""  # already the published build's file
            elif name in recycled.present:
                recycled.discard(self._fiches_prefix + name, name)  # an older page: never written into
        if name:
            try:
                os.link(self._previous_fiches + name, self._fiches_prefix + name)
            except OSError:
                link_file(Path(self._previous_fiches + name), Path(self._fiches_prefix + name))  # a copy, or the error
        # The same entry as in the previous build: the same facts (made by the same code when the salt is the same).
        self._refs[entry.ref] = facts if self._same_salt else _facts(_address_of(facts), entry)
        if entry.ref in self._previous_latest:
            self._latest_kept[entry.ref] = entry

    def keep_all(self, entries: list[Entry]) -> None:
        """:meth:`keep` of each, its lookups made once: a rebuild keeps nearly all of 100,000 fiches, most of
        them already in the folder taken over (the published build's very files: nothing to link)."""
        recycled = self._recycled
        if recycled is None or not self._same_salt:
            for entry in entries:
                self.keep(entry)
            return
        previous_refs, refs, kept, same = self._previous_refs, self._refs, self._kept, recycled.same
        latest = self._previous_latest
        for entry in entries:
            ref = entry.ref
            facts = previous_refs.get(ref)
            name = ref + ".html"
            if facts is None or name not in same:
                self.keep(entry)  # an older page to put aside, a fiche to link, or the error
                continue
            kept.add(name)
            refs[ref] = facts
            if ref in latest:
                self._latest_kept[ref] = entry

    def _drop_recycled(self) -> None:
        """Remove, from a folder taken over, the fiches of formations that are no longer published."""
        recycled = self._recycled
        if recycled is None:
            return
        written = {f"{ref}.html" for ref in self._added}
        for name in recycled.present - self._kept - written:
            recycled.discard(self._fiches_prefix + name, name)
        self._recycled = None

    def _address_id(self, address: str) -> int:
        if self._address_ids is None:
            self._address_ids = {a: i for i, a in enumerate(self._addresses)}
        known = self._address_ids.get(address)
        if known is None:
            known = self._address_ids[address] = len(self._addresses)
            self._addresses.append(address)
        return known

    def _send_batch(self) -> None:
        batch, self._batch = self._batch, []
        try:
            if self._pool is None:
                # Started at the first full batch: a build that changes a few formations forks nothing.
                self._pool = _FichePool(self.site, self.workers)
            elif self._pool.full():
                # The workers are behind: rather than wait for them (the other sinks, fed by this process,
                # would soon wait too, and a core sit idle), this process renders the batch itself.
                _render_fiches(batch, self.site)
                return
            self._pool.submit(batch)
        except BaseException:
            self.abort()
            raise

    def _flush_fiches(self) -> None:
        """The last fiches: to the workers when they run, else rendered here."""
        if self._batch and self._pool is None:
            batch, self._batch = self._batch, []
            _render_fiches(batch, self.site)
        elif self._batch:
            self._send_batch()

    def _join_workers(self) -> None:
        if self._pool is not None:
            try:
                self._pool.join()
            except BaseException:
                self.abort()
                raise
            self._pool = None

    def abort(self) -> None:
        """The build failed: stop the workers now (they may be writing into the folder being removed)."""
        self._batch = []
        if self._pool is not None:
            self._pool.terminate()
            self._pool = None

    # -- the pages made from the whole catalogue ----------------------------

    def finish(self, catalog: Catalog) -> None:
        """The pages made from the whole catalogue; those whose memo key is the previous build's are linked.

        The organisme pages to render go to the fiche workers (started for them when there are many), a batch
        at a time, while this process makes the other pages; it then takes back the batches no worker has
        started and renders them itself.
        """
        self._flush_fiches()
        self._drop_recycled()
        rows: dict[str, tuple] = {}
        touched = self._touched_organismes(catalog)
        if touched is None:
            organismes: Optional[dict[str, OrganismeSummary]] = catalog.organismes()
            todo = self._organisme_pages(organismes, rows)
        else:
            organismes = None  # grouped only if a list of organismes is to be made again
            summaries, untouched = touched
            todo = self._organisme_pages(summaries, rows)
            for siret in untouched:
                name = f"organismes/{siret}.html"
                self._reuse(name, self._previous_pages[name])
            rows = _merge_rows(self._previous_rows, untouched, rows)
        jobs = self._send_organismes(todo)
        try:
            home = self._listing_pages(catalog, organismes, rows)
            self._finish_organismes(jobs)
            self._join_workers()
        except BaseException:
            self.abort()
            raise
        self._drop_recycled_organismes()
        self._copy_static()
        self._save_state(rows, home)

    def _drop_recycled_organismes(self) -> None:
        """Remove, from the organismes folder taken over, the pages this build does not have (and emptied folders)."""
        recycled, self._recycled_organismes = self._recycled_organismes, None
        if recycled is None:
            return
        pages = self._pages
        folders = set()
        for inner in recycled.present:
            if "organismes/" + inner not in pages:
                recycled.discard(f"{self._root_prefix}organismes/{inner}", inner)
                folder = os.path.dirname(inner)
                while folder:
                    folders.add(folder)
                    folder = os.path.dirname(folder)
        for folder in sorted(folders, key=len, reverse=True):  # the deepest first
            try:
                os.rmdir(f"{self._root_prefix}organismes/{folder}")
            except OSError:
                pass  # not empty: a page of this build is in it

    def _touched_organismes(
        self, catalog: Catalog
    ) -> Optional[tuple[dict[str, OrganismeSummary], dict[str, tuple]]]:
        """In an incremental build, the organismes a formation was added to, changed in or removed from (their
        summaries, in SIRET order), and the rows of all the others, which have the previous build's formations:
        their pages and rows are the previous build's, without grouping the whole catalogue by organisme. None:
        group them all (a full build, other settings, or many organismes touched)."""
        previous_rows, previous_pages = self._previous_rows, self._previous_pages
        if not (_SHORTCUTS and previous_rows):
            return None
        before = self._previous_refs
        touched = set(self._added_sirets)
        changed = 0
        for ref in self._added:
            facts = before.get(ref)
            if facts is not None:
                changed += 1
                touched.add(_unpack(facts)[4])  # its organisme then
        if len(before) != len(self._refs) - len(self._added) + changed:  # some formations left
            touched.update(_unpack(before[ref])[4] for ref in before.keys() - self._refs.keys())
        if len(touched) > TOUCHED_SHARE * len(previous_rows):
            return None  # grouping them all costs as much
        untouched = {siret: row for siret, row in previous_rows.items() if siret not in touched}
        if any(f"organismes/{siret}.html" not in previous_pages for siret in untouched):
            return None
        summaries: dict[str, OrganismeSummary] = {}
        for entry in catalog.entries:  # in Ref order, as Catalog.organismes() groups them
            if entry.siret in touched:
                summary = summaries.get(entry.siret)
                if summary is None:
                    summary = summaries[entry.siret] = OrganismeSummary(entry.siret, entry.organisme, entry.raison_sociale)
                summary.entries.append(entry)
        return dict(sorted(summaries.items())), untouched

    def _organisme_pages(
        self, organismes: dict[str, OrganismeSummary], rows: dict[str, tuple]
    ) -> list[tuple[str, OrganismeSummary, str]]:
        """Link the organisme pages the previous build wrote from the same inputs; the others, to render.

        An organisme none of whose formations was given to :meth:`add` (all kept: the same entries as in the
        previous build), with as many formations as then, has the same Refs, hence the same page and row:
        its previous key and row are taken as they are, without making its inputs. Any other one is keyed by
        its inputs, as every page. ``rows`` gets each organisme's :func:`_row`, in SIRET order.
        """
        todo: list[tuple[str, OrganismeSummary, str]] = []
        previous_pages = self._previous_pages
        previous_rows = self._previous_rows
        refs = self._refs
        added_sirets = self._added_sirets
        addresses = self._addresses
        for siret, summary in organismes.items():
            name = f"organismes/{_safe_siret(siret)}.html"
            entries = summary.entries
            address = addresses[_address_of(refs[entries[0].ref])]  # entries in Ref order
            key = previous_pages.get(name)
            row = previous_rows.get(siret)
            if row is None or siret in added_sirets or row[1] + row[2] != len(entries):
                row = _row(summary)
                key = None
                self._rows_redone.append(siret)
            rows[siret] = row
            if key is None:
                key = _digest(self._salt, Site.organisme_inputs(summary, address))
            if not self._reuse(name, key):
                todo.append((name, summary, address))
        return todo

    def _send_organismes(self, todo: list[tuple[str, OrganismeSummary, str]]) -> list[tuple[Optional[Future], list]]:
        """Batches of organisme pages, each handed to the workers (its future) or left to this process (None)."""
        batches = [todo[i : i + ORGANISME_BATCH] for i in range(0, len(todo), ORGANISME_BATCH)]
        if self.workers <= 0 or (self._pool is None and len(todo) < ORGANISMES_FOR_WORKERS):
            return [(None, batch) for batch in batches]
        try:
            if self._pool is None:
                self._pool = _FichePool(self.site, self.workers)
            return [(self._pool.submit_job(_write_organismes, self._organisme_jobs(batch)), batch) for batch in batches]
        except BaseException:
            self.abort()
            raise

    def _organisme_jobs(
        self, batch: list[tuple[str, OrganismeSummary, str]]
    ) -> list[tuple[str, Optional[str], OrganismeSummary, str]]:
        return [(self._root_prefix + name, self._spare(name), summary, address) for name, summary, address in batch]

    def _spare(self, name: str) -> Optional[str]:
        """Where a full build also links page ``name`` (a path under site/), if it is one of TAKEN_OVER's."""
        if self._spare_prefix and name.startswith(_TAKEN_OVER_PREFIXES):
            return self._spare_prefix + name
        return None

    def _finish_organismes(self, jobs: list[tuple[Optional[Future], list]]) -> None:
        """Render the batches no worker took, the last first (the workers take them from the front)."""
        for future, batch in reversed(jobs):
            if future is None or future.cancel():
                _write_organisme_pages(self.site, self._organisme_jobs(batch))

    def _listing_pages(
        self, catalog: Catalog, organismes: Optional[dict[str, OrganismeSummary]], rows: dict[str, tuple]
    ) -> tuple:
        """The lists of organismes, the home, the sitemaps and the small pages; returns the home's figures.

        In an incremental build, what the previous build noted (its rows, home figures, facts per Ref) tells
        which of them may change: the others are linked by their previous key without making their inputs.
        """
        previous_rows = self._previous_rows
        # The same organismes, named and counted alike: every list of organismes is the previous build's. The
        # rows not taken from the previous build are those _organisme_pages made again.
        same_organismes = (
            _SHORTCUTS
            and self._same_salt
            and self._previous_state["layout"] == self._layout()
            and len(rows) == len(previous_rows)
            and all(previous_rows.get(siret, ())[:3] == rows[siret][:3] for siret in self._rows_redone)
        )
        if same_organismes:
            for name in self._previous_state["listing"]:
                self._reuse(name, self._previous_pages[name])
        else:
            self._organismes_lists(organismes if organismes is not None else catalog.organismes())
        home = self._home_figures(catalog)
        current, archived, counts, latest = home
        self._emit_content("index.html", self.site.home_page(current, archived, len(rows), latest, counts))
        self._emit_content("publier/index.html", self.site.publier())
        self._emit_content("404.html", self.site.not_found())
        self._sitemaps(catalog, rows)
        self._emit_content("robots.txt", f"User-agent: *\nAllow: /\nSitemap: {self.site.url('/sitemap.xml')}\n")
        return home

    def _layout(self) -> list[int]:
        return [ORGANISMES_PER_PAGE, self.sitemap_max_urls]

    def _organismes_lists(self, organismes: dict[str, OrganismeSummary]) -> None:
        letters = self.site.letters(organismes.values())
        total = len(organismes)
        self._emit(
            "organismes/index.html",
            Site.organismes_page_inputs(letters, None, 1, total),
            lambda: self.site.organismes_page(letters, None, 1, total),
        )
        for letter in letters:
            for page in range(1, len(letter.pages(ORGANISMES_PER_PAGE)) + 1):
                parts = ("organismes", letter.initial) + ((str(page),) if page > 1 else ())
                self._emit(
                    self._name(*parts, "index.html"),
                    Site.organismes_page_inputs(letters, letter, page, total),
                    lambda: self.site.organismes_page(letters, letter, page, total),
                )

    def _changes(self) -> Optional[tuple[set[str], set[str]]]:
        """(Refs changed, Refs removed) since the previous build, with no Ref new; None when not known or a Ref
        is new. A kept Ref was the previous build's, an added one may be."""
        if not (_SHORTCUTS and self._same_salt):
            return None
        previous = self._previous_refs
        changed = {ref for ref in self._added if ref in previous}
        if len(changed) != len(self._added):
            return None
        if len(previous) == len(self._refs):
            return changed, set()
        return changed, previous.keys() - self._refs.keys()

    def _home_figures(self, catalog: Catalog) -> tuple[int, int, dict[str, int], list[Entry]]:
        """What the home shows: formations current and archived, current ones per région, the latest ones.

        From the previous build's figures, less what the changed and removed formations counted then, plus
        what the changed and new ones count now; the latest again from the whole catalogue only when one of
        the previous ones changed or left.
        """
        previous = self._previous_home
        if previous is not None and _SHORTCUTS:
            before = self._previous_refs
            gone = [before[ref] for ref in self._added if ref in before]  # the changed formations' facts then
            kept = len(self._refs) - len(self._added)  # each a Ref of the previous build
            if len(before) != kept + len(gone):  # some left
                gone += [before[ref] for ref in before.keys() - self._refs.keys()]
            current, archived, counts, latest_refs = previous[0], previous[1], dict(previous[2]), previous[3]
            for sign, packed in [(-1, f) for f in gone] + [(1, self._refs[e.ref]) for e in self._added_entries]:
                facts = _unpack(packed)
                if facts[1]:
                    archived += sign
                    continue
                current += sign
                for region in facts[2]:
                    counts[region] = counts.get(region, 0) + sign
                    if not counts[region]:
                        del counts[region]
            if len(self._latest_kept) == len(latest_refs):
                candidates = list(self._latest_kept.values()) + [e for e in self._added_entries if not e.archived]
                latest = heapq.nsmallest(LATEST_COUNT, candidates, key=_latest_order)
            else:
                latest = heapq.nsmallest(LATEST_COUNT, catalog.current, key=_latest_order)
            return current, archived, counts, latest
        current_entries = catalog.current
        counts = {}
        for entry in current_entries:
            for region in entry.regions:
                counts[region] = counts.get(region, 0) + 1
        latest = heapq.nsmallest(LATEST_COUNT, current_entries, key=_latest_order)
        return len(current_entries), len(catalog.entries) - len(current_entries), counts, latest

    def _sitemaps(self, catalog: Catalog, rows: dict[str, tuple]) -> None:
        """``sitemaps/sitemap-N.xml`` and ``sitemap.xml``: only the files holding a URL whose lastmod changed are
        made again when the URLs are the previous build's (no formation new or removed, the same organismes)."""
        size = self.sitemap_max_urls
        total = len(STATIC_URLS) + len(catalog.entries) + len(rows)  # rows: one per organisme
        count = max(1, -(-total // size))
        changes = self._changes()
        dirty: Optional[set[int]] = None
        previous_rows = self._previous_rows
        if (
            changes is not None
            and not changes[1]
            and self._previous_state["layout"] == self._layout()
            and len(rows) == len(previous_rows)
            and all(siret in previous_rows for siret in self._rows_redone)
        ):
            dirty = set()
            before = self._previous_refs
            entries = catalog.entries
            for ref in changes[0]:
                if _unpack(before[ref])[3] != _unpack(self._refs[ref])[3]:
                    position = len(STATIC_URLS) + bisect.bisect_left(entries, ref, key=_ref_of)
                    dirty.add(position // size)
            positions: Optional[dict[str, int]] = None
            for siret in self._rows_redone:  # the others have the same formations as then
                if rows[siret][3] != previous_rows[siret][3]:
                    if positions is None:
                        positions = {s: i for i, s in enumerate(rows)}  # in SIRET order
                    dirty.add((len(STATIC_URLS) + len(entries) + positions[siret]) // size)
        for number in range(count):
            name = f"sitemaps/sitemap-{number + 1}.xml"
            key = self._previous_pages.get(name) if dirty is not None and number not in dirty else None
            if key is not None:
                self._reuse(name, key)
                continue
            chunk = tuple(self.site.sitemap_urls(catalog, number * size, (number + 1) * size))
            self._emit(name, chunk, lambda: self.site.sitemap("urlset", chunk))
        self._emit_content("sitemap.xml", self.site.sitemap_index(count))

    def _emit(self, name: str, inputs: Any, render: Callable[[], str]) -> None:
        """Write the page ``render()`` returns, or link the previous build's when made from the same ``inputs``."""
        if not self._reuse(name, _digest(self._salt, inputs)):
            _write(self._root_prefix + name, render(), self._spare(name))

    def _emit_content(self, name: str, content: str) -> None:
        """A page cheap to render: linked from the previous build when its bytes are the same."""
        if not self._reuse(name, "=" + _digest(self._salt, content)):
            _write(self._root_prefix + name, content, self._spare(name))

    def _reuse(self, name: str, key: str) -> bool:
        """Note ``key`` as the memo key of page ``name`` (a path under site/); link the previous build's page
        when it was written with the same key. False: the page is to be written."""
        self._pages[name] = key
        if self._previous_pages.get(name) != key:
            return False
        source, target = self._previous_site + name, self._root_prefix + name
        recycled = self._recycled_organismes
        if recycled is not None and name.startswith("organismes/"):
            # In the organismes folder taken over: the published build's very file, or an older one to replace.
            inner = name[len("organismes/") :]
            if inner in recycled.same:
                return True
            if inner in recycled.present:
                recycled.discard(target, inner)
        try:
            os.link(source, target)  # strings: pathlib's joins would cost as much as the link
        except OSError:
            try:
                link_file(Path(source), Path(target))  # creates the folder, or copies
            except FileNotFoundError:
                return False  # gone from the previous build: render it
        return True

    def _copy_static(self) -> None:
        target = self._file("static")
        previous = self._previous.folder / "site" / "static" if self._previous is not None else None
        if previous is not None and self._same_salt and previous.is_dir():
            link_tree(previous, target)  # the same static files
        elif STATIC_DIR.is_dir():
            shutil.copytree(STATIC_DIR, target, dirs_exist_ok=True)

    def _save_state(self, rows: dict[str, tuple], home: tuple) -> None:
        """What the next build reuses: each page's key, each Ref's facts, each organisme's row, the home's figures."""
        refs, addresses, table = self._refs, self._addresses, self._table
        if len(addresses) > 2 * table + 64:
            # The table doubled since it was last made: made anew of the addresses still used.
            kept = sorted({_address_of(facts) for facts in refs.values()})
            renumber = {old: new for new, old in enumerate(kept)}
            addresses = [addresses[old] for old in kept]
            refs = {ref: f"{renumber[_address_of(facts)]}{facts[facts.index(chr(9)):]}" for ref, facts in refs.items()}
            table = len(addresses)
        current, archived, counts, latest = home
        state = {
            "version": CACHE_VERSION,
            "salt": self._salt,
            "addresses": addresses,
            # Every published Ref was given to add() or keep() once: the catalogue's Refs.
            "refs": refs,
            "pages": self._pages,
            "rows": rows,
            "home": (current, archived, counts, tuple(e.ref for e in latest)),
            "listing": [name for name in self._pages if _is_listing(name)],
            "layout": self._layout(),
            "table": table,
        }
        self._cache_file.parent.mkdir(parents=True, exist_ok=True)
        # marshal: str, int, lists and dicts only, ten times quicker than JSON both ways; never read by anyone else.
        _write_bytes(self._cache_file, marshal.dumps(state))

    # -- paths --------------------------------------------------------------

    @staticmethod
    def _name(*parts: str) -> str:
        """A path under site/, as a string, each part one plain name."""
        # No resolve(): 70 µs a path, and the folder is new, without links.
        for part in parts:
            if not part or part in (".", "..") or "/" in part or "\0" in part:
                raise ValueError(f"chemin hors du site : {'/'.join(parts)}")
        return "/".join(parts)

    def _file(self, *parts: str) -> Path:
        return self.root / self._name(*parts)


@dataclass(frozen=True)
class _Recycled:
    """A fiches folder taken over from an older build: what it holds."""

    present: set[str]  # every name in it
    same: set[str]  # names whose file is the published build's very file (one inode, linked)
    #: Where its other files go, inside the older build (trashed once this build is published); None: unlinked.
    stale: Optional[str] = None

    def discard(self, path: str, inner: str) -> None:
        """Put aside ``path``, the taken-over file ``inner``: never written into, and not unlinked here,
        since unlinking a file's last link costs milliseconds on a busy disk against microseconds for a
        rename (the older build's folder is deleted, with it, by a process of its own)."""
        if self.stale is not None:
            target = os.path.join(self.stale, inner.replace("/", "%"))
            try:
                os.rename(path, target)
                return
            except FileNotFoundError:
                try:
                    os.makedirs(self.stale, exist_ok=True)
                    os.rename(path, target)
                    return
                except OSError:
                    pass
            except OSError:
                pass
        os.unlink(path)


def _recycle_fiches(published: Path, target: Path, name: str = "formations") -> Optional[_Recycled]:
    """Take over, as ``target``, an older build's copy of the published build's folder ``site/<name>``.

    Linking 100,000 fiches into a new folder costs more than a second. The
    copy taken is the published build's spare (:data:`SPARE_DIR`, left by a full
    build: hard links of its very files) or else the folder of the build before
    the published one, kept only for readers still on it and gone once this build
    is published. Only the files that differ from the published build's are then
    unlinked and linked again (:meth:`SiteSink.keep`, :meth:`SiteSink._reuse`). A
    file whose inode is the published one's is that very file: same bytes. Files
    are never written into, so the published build is never touched. None (link
    every file) when there is no such copy, or the folders are on two devices.
    """
    stale = None
    try:
        spare = os.path.join(published, CACHE_DIR, SPARE_DIR, name)
        if os.path.isdir(spare):
            source = spare
        else:
            older = build_before(published)
            if older is None:
                return None
            source = os.path.join(older, "site", name)
            stale = os.path.join(older, STALE_DIR, name)
        current = os.path.join(published, "site", name)
        if os.stat(source).st_dev != os.stat(current).st_dev or target.exists():
            return None
        inodes, present = _inodes(current), _inodes(source)
        if inodes is None or present is None:
            return None
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(source, target)
    except OSError:
        return None
    return _Recycled(set(present), {name for name, inode in present.items() if inodes.get(name) == inode}, stale)


def _write(path: Path | str, content: str, spare: Optional[str] = None) -> None:
    """Write ``content`` as a new file: never into an existing one, which may be linked to the published build.

    ``spare``: also link it there (a full build's spare folder, see :data:`SPARE_DIR`), if it can be.
    """
    _write_bytes(path, content.encode("utf-8"))
    if spare is not None:
        link_spare(path, spare)


#: A new file, as ``open(path, "xb")`` makes it, for os.open (without a file object: a fiche is one write).
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def _write_bytes(path: Path | str, data: bytes) -> None:
    try:
        fd = os.open(path, _NEW_FILE, 0o666)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, _NEW_FILE, 0o666)
    except FileExistsError:
        os.unlink(path)
        fd = os.open(path, _NEW_FILE, 0o666)
    try:
        written = os.write(fd, data)
        if written < len(data):  # a short write (a signal, a full disk): the rest, or the error
            view = memoryview(data)
            while written < len(data):
                written += os.write(fd, view[written:])
    finally:
        os.close(fd)


def _adresse(address: str) -> Optional[Adresse]:
    return None if address == NO_ADDRESS else Adresse.model_validate_json(address)


def _digest(salt: str, inputs: Any) -> str:
    """The memo key of a page: ``inputs`` holds only str, int, bool, None and tuples, whose repr is stable."""
    return hashlib.blake2b(repr((salt, inputs)).encode("utf-8"), digest_size=16).hexdigest()


def _salt(settings: Settings) -> str:
    """What every page depends on besides its own inputs: the settings, templates and static files, this code."""
    digest = hashlib.blake2b(settings.model_dump_json().encode("utf-8"), digest_size=16)
    sources = sorted(p for p in TEMPLATES_DIR.rglob("*") if p.is_file())
    sources += [Path(__file__).resolve(), Path(catalog_module.__file__).resolve(), Path(model_module.__file__).resolve()]
    for path in sources:
        digest.update(path.name.encode("utf-8") + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _load_state(folder: Path) -> Optional[dict[str, Any]]:
    """The cache a previous build left in its folder, or ``None`` when it has none it can read."""
    try:
        state = marshal.loads((folder / CACHE_DIR / CACHE_FILE).read_bytes())
    except (OSError, ValueError, EOFError, TypeError):
        return None
    shapes = {
        "version": int, "salt": str, "addresses": list, "refs": dict, "pages": dict, "rows": dict, "home": tuple,
        "listing": list, "layout": list, "table": int,
    }
    if not isinstance(state, dict) or not all(isinstance(state.get(k), t) for k, t in shapes.items()):
        return None
    return state if state["version"] == CACHE_VERSION else None


# --------------------------------------------------------------------------
# The fiche workers
# --------------------------------------------------------------------------


class _FichePool:
    """Forked processes that render and write batches of fiches; a worker's error is raised here, not lost."""

    def __init__(self, site: Site, workers: int):
        # Forked, the workers share the parent's compiled templates; the build's at-fork hook has them close
        # the build's lock and die with it.
        self._executor = ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("fork"),
            initializer=_start_fiche_worker,
            initargs=(site,),
        )
        self._processes: list = []
        self._pending: deque[Future] = deque()
        self._limit = workers * BATCHES_IN_FLIGHT

    def submit(self, batch: list[tuple[str, Optional[str], Formation, FicheEntry]]) -> None:
        self._pending.append(self._executor.submit(_write_fiche_blob, _dumps_batch(batch)))
        if not self._processes:
            # Forked by the first submit; kept to stop them (ProcessPoolExecutor has no public way before 3.14).
            self._processes = list((getattr(self._executor, "_processes", None) or {}).values())
        # Wait while too many batches are queued; finished ones are collected at once so that an error stops the build.
        while self._pending and (len(self._pending) > self._limit or self._pending[0].done()):
            self._result(self._pending.popleft())

    def full(self) -> bool:
        """Whether as many batches wait as :meth:`submit` lets wait without blocking (errors raised here)."""
        while self._pending and self._pending[0].done():
            self._result(self._pending.popleft())
        return len(self._pending) >= self._limit

    def submit_job(self, function: Callable[[Any], int], argument: Any) -> Future:
        """Another kind of work (organisme pages), not throttled: the caller holds the future, and may cancel it
        while no worker has taken it. Its result is collected by :meth:`join` as well."""
        future = self._executor.submit(function, argument)
        self._pending.append(future)
        if not self._processes:
            self._processes = list((getattr(self._executor, "_processes", None) or {}).values())
        return future

    def join(self) -> None:
        while self._pending:
            future = self._pending.popleft()
            if not future.cancelled():
                self._result(future)
        self._executor.shutdown(wait=True)

    def terminate(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        for process in self._processes:
            if process.is_alive():
                process.terminate()
        deadline = time.monotonic() + 10
        for process in self._processes:
            process.join(timeout=max(0.0, deadline - time.monotonic()))
            # The executor's own thread may have reaped it first, and not yet noted its exit code.
            while process.exitcode is None and time.monotonic() < deadline:
                time.sleep(0.005)
        self._pending.clear()

    @staticmethod
    def _result(future: Future) -> None:
        if future.cancelled():
            return  # taken back by the build's process
        try:
            future.result()
        except BrokenProcessPool as exc:
            raise RuntimeError(
                "un processus de rendu des fiches s'est arrêté brutalement (mémoire épuisée, signal ?)"
            ) from exc


#: The worker's own Site, inherited from the build at fork.
_worker_site: Optional[Site] = None


def _start_fiche_worker(site: Site) -> None:
    global _worker_site
    _worker_site = site
    # The collector would walk every object inherited from the build, copying its pages: a third of the
    # worker's time. What the build had at the fork is never freed here anyway.
    gc.freeze()
    # A batch's objects die with it, and a page leaves no cycle (Site._render breaks the one a template's
    # macros make with its context): the collector only runs after every COLLECT_EVERY batches (_collected),
    # for what else may leave one. Each run walks the live batch: once per batch, it cost 15 µs a fiche.
    gc.disable()


#: Batches a worker renders between two runs of the collector (see _start_fiche_worker).
COLLECT_EVERY = 16
_jobs_done = 0


def _collected(function: Callable[[Any], int]) -> Callable[[Any], int]:
    """A worker's job; after every COLLECT_EVERY of them, the collection of what they left (see
    _start_fiche_worker)."""

    @functools.wraps(function)
    def job(batch: Any) -> int:
        global _jobs_done
        try:
            return function(batch)
        finally:
            _jobs_done += 1
            if _jobs_done % COLLECT_EVERY == 0:
                gc.collect()

    return job


def _fiche_job(
    path: str, spare: Optional[str], formation: Formation, entry: Entry
) -> tuple[str, Optional[str], Formation, FicheEntry]:
    """One fiche of a batch for the workers (:func:`_render_fiches`)."""
    return (path, spare, formation, FicheEntry.of(entry))


class _BatchPickler(pickle.Pickler):
    """Pickles a batch of fiches for a worker: a pydantic model as its class, its fields' values and the names
    of those set, rebuilt by :func:`_model` as pydantic's own ``__setstate__`` would. Its ``__getstate__``
    writes each model's ``__dict__`` (a dict of every field name) and three more attributes by name: a fifth of
    the build's time in pickling a batch. Any other model (extra or private attributes, fields not as its class
    declares them) and any other object are pickled as pickle does."""

    def reducer_override(self, obj: Any) -> Any:
        cls = type(obj)
        names = _PICKLED_FIELDS.get(cls, _UNKNOWN)
        if names is _UNKNOWN:
            names = _PICKLED_FIELDS[cls] = tuple(cls.model_fields) if isinstance(obj, BaseModel) else None
        if names is None:
            return NotImplemented
        state = obj.__dict__
        if obj.__pydantic_extra__ is not None or obj.__pydantic_private__ is not None or tuple(state) != names:
            return NotImplemented
        return (_model, (cls, tuple(state.values()), obj.__pydantic_fields_set__))


#: Per class met by _BatchPickler, its models' field names in order (None: not a pydantic model).
_PICKLED_FIELDS: dict[type, Optional[tuple[str, ...]]] = {}
_UNKNOWN = object()
_new_object = object.__new__
_set_attribute = object.__setattr__


def _model(cls: type[BaseModel], values: tuple, fields_set: set[str]) -> BaseModel:
    """A model pickled by _BatchPickler, as pydantic's ``__setstate__`` restores one."""
    names = _PICKLED_FIELDS.get(cls)
    if names is None:
        names = _PICKLED_FIELDS[cls] = tuple(cls.model_fields)
    model = _new_object(cls)
    _set_attribute(model, "__pydantic_fields_set__", fields_set)
    _set_attribute(model, "__pydantic_extra__", None)
    _set_attribute(model, "__pydantic_private__", None)
    _set_attribute(model, "__dict__", dict(zip(names, values)))
    return model


def _dumps_batch(batch: list[tuple[str, Optional[str], Formation, FicheEntry]]) -> bytes:
    out = io.BytesIO()
    _BatchPickler(out, protocol=pickle.HIGHEST_PROTOCOL).dump(batch)
    return out.getvalue()


@_collected
def _write_fiche_blob(blob: bytes) -> int:
    """A worker's job: a batch pickled by :func:`_dumps_batch`, written."""
    return _render_fiches(pickle.loads(blob))


def _render_fiches(batch: list[tuple[str, Optional[str], Formation, FicheEntry]], site: Optional[Site] = None) -> int:
    """Render and write a batch, in a worker (its own Site) or in the build's process (``site``)."""
    site = site if site is not None else _worker_site
    assert site is not None
    with site.batch():  # the batch's objects are never changed while it renders
        for path, spare, formation, entry in batch:
            try:
                _write(path, site.fiche(formation, entry), spare)
            except Exception as exc:
                exc.add_note(f"fiche de la formation {entry.ref} ({path})")
                raise
    return len(batch)


@_collected
def _write_organismes(batch: list[tuple[str, Optional[str], OrganismeSummary, str]]) -> int:
    assert _worker_site is not None
    return _write_organisme_pages(_worker_site, batch)


def _write_organisme_pages(site: Site, batch: list[tuple[str, Optional[str], OrganismeSummary, str]]) -> int:
    for path, spare, summary, address in batch:
        try:
            _write(path, site.organisme(summary, _adresse(address)), spare)
        except Exception as exc:
            exc.add_note(f"page de l'organisme {summary.siret} ({path})")
            raise
    return len(batch)


def _safe_ref(ref: str) -> str:
    """The Ref as one path segment; the model already checked it, this keeps the promise local."""
    try:
        checked = check_ref(ref)
    except ValueError as exc:  # pydantic's PydanticCustomError is a ValueError
        raise ValueError(f"Ref impropre à un chemin : {ref!r}") from exc
    if checked != ref or "/" in ref or ref in (".", ".."):
        raise ValueError(f"Ref impropre à un chemin : {ref!r}")
    return ref


def _safe_siret(siret: str) -> str:
    if not _SIRET_RE.match(siret):
        raise ValueError(f"SIRET impropre à un chemin : {siret!r}")
    return siret

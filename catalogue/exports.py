"""Open data: the published catalogue as LHEO 2.3, JSON and CSV, and the page that describes them.

The build's sink ``donnees`` writes into ``site/donnees/``:

- ``catalogue.xml.gz``: LHEO 2.3, one ``<formation>`` per published formation;
- ``catalogue.json.gz``: an array, one item per published formation, one item a line;
- ``catalogue.csv.gz``: one row per LHEO session (dated period), for spreadsheets;
- ``catalogue.schema.json``: the JSON Schema of the items of ``catalogue.json``;
- ``index.html``: the page "Données ouvertes" (files, sizes, counts, licence, columns).

Archived formations are included and flagged, as the site keeps their fiches.
The output depends only on the input, the settings and the build's day.

The three exports are gzip-compressed (a tenth of their size: 1.6 GB at 100,000
formations otherwise), each a series of gzip members, which ``gunzip``, ``zcat``
and gzip libraries read as one document: a member for the header, one for each
*run* of consecutive formations, one for the footer. Formations keep the input
order. A run ends after a formation whose Ref hashes to a multiple of
:data:`RUN_MEAN`, or after :data:`RUN_MAX` formations: where runs end depends on
the Refs, not on positions, so adding, changing or removing a formation changes
the run that holds it (and, in a stretch of more than RUN_MAX formations without
such a Ref, the following ones up to the next) and no other. An incremental build
(``context.previous``) recompresses those runs only, taking the kept formations'
bytes from the previous files, and copies the compressed bytes of the other runs;
a run's bytes depend only on its formations, so the files are the full build's,
byte for byte. Kept formations that follow each other in the previous build are
taken at once: where the run being made is empty and a previous run starts, the
previous runs up to the next change are the new build's, their part of the index
sliced from the previous one and their members copied, with no step a formation
(at 100,000 formations and one changed, ``keep()`` only checks a Ref and counts).
For that the sink leaves, under ``.cache/donnees/``, the index of
its files: each run's place in them; each formation's Ref, the size of its
fragment in each file, its CSV rows and why it was left out of the XML, if it was.

Formations come one at a time and are dropped once their run is written: memory
holds a run (at most RUN_MAX formations) and the index (a few dozen bytes a formation).

The model is looser than the LHEO schema in places (a text of 5,000 characters,
a code outside an LHEO table): each ``<formation>`` is checked against the XSD
before it is written, and one that would not validate is left out of the XML
only (a reuser's validating parser would reject the whole file), kept in the
JSON and the CSV, and listed on the page. The check is made as the formation is
written as text (:class:`XmlExport`): each value against the rules the XSD gives
its element (:class:`SchemaRules`); a formation those rules cannot vouch for is
built as an lxml tree and validated by the XSD itself, which gives the verdict.

Cost, per formation, in a full build: the XML, the JSON (pydantic's serialiser),
the CSV, then compressing all three (zlib-ng, level 6: gzip members any zlib reads, made in
half the time of zlib's level 6 for files 2 to 4 % larger).
The writes run on a thread of the sink's own, in order (:class:`FileWork`), and so does
the compression: in a full build, in a process of the sink's own fed with the runs' bytes
(:class:`Deflater`: the build's process is its critical path, and compressing every byte
of the three files is a third of the sink's CPU); in a rebuild, which compresses few runs,
on threads (zlib lets go of the GIL, so the build's main thread goes on meanwhile).
``bench/exports.py`` measures the sink alone, in full and incremental builds.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import mmap
import operator
import os
import re
import struct
import subprocess
import sys
import threading
import zlib
from array import array
from bisect import bisect_left, bisect_right
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator, Optional, Sequence, Union

import zlib_ng
from zlib_ng import zlib_ng as deflate

from lxml import etree

from .build import CHILD_NICENESS, PreviousBuild, SinkContext, register_sink
from .catalog import Catalog, Entry
from .incremental import link_file
from .lheo_export import NAMESPACES, SHARED_MAX, FragmentWriter, Shared, formation_element
from .model import Adresse, Formation, ModalitesEnseignement, PartialDate
from .regions import Geo
from .render import FINANCEURS, ETATS_RECRUTEMENT, iso_date, make_environment, number, tidy
from .settings import PROJECT_ROOT, Settings

#: Under the site: ``/donnees/``.
DONNEES_DIR = "donnees"
XML_NAME = "catalogue.xml.gz"
JSON_NAME = "catalogue.json.gz"
CSV_NAME = "catalogue.csv.gz"
SCHEMA_NAME = "catalogue.schema.json"
#: The sink's data for the next build: ``staging/.cache/donnees/index.json``.
CACHE_DIR = Path(".cache") / "donnees"
INDEX_NAME = "index.json"
#: Changes whenever the layout of the files or of the index does; an index of another version is not read.
INDEX_VERSION = 1

LHEO_VERSION = "2.3"
LHEO_XSD = PROJECT_ROOT / "catalogue" / "data" / "lheo-2.3.xsd"
LHEO_DOC_URL = "https://lheo.gouv.fr/2.3/introduction.html"

#: The licence of the exports. A note, not a setting: Licence Ouverte 2.0 is the
#: licence of French public data (décret 2017-638); a deployment that must publish
#: under another one changes it here and says why.
LICENCE = (
    "Licence Ouverte / Open Licence version 2.0 (Etalab)",
    "https://www.etalab.gouv.fr/licence-ouverte-open-licence/",
)

#: French spreadsheets (Excel) read ``;`` as the separator and need the BOM to take the file as UTF-8.
CSV_DELIMITER = ";"
#: Refs left out of the XML listed one by one on the page; beyond, only their number.
LEFT_OUT_SHOWN = 200

#: zlib's default level, with zlib-ng, which compresses in half the time of zlib (20,000 formations: 1.5 s
#: of CPU instead of 3.0 s) for files 2 to 4 % larger (XML 17.2 MB instead of 16.8 MB). Its level 4 would
#: make them 10 % larger again for a quarter less time.
GZIP_LEVEL = 6
#: Formations in a run (one gzip member), on average. Each member starts with an empty compression window,
#: so shorter runs compress worse (mean 8: files 15 % larger than at 16; 32: 10 % smaller); and a change
#: recompresses its whole run, so longer runs make incremental builds slower (one formation in a hundred
#: changed, evenly spread: 22 % of the data recompressed at 16, 15 % at 8, 57 % at 32).
RUN_MEAN = 16
#: A run stops after this many formations whatever the Refs: no change recompresses more.
RUN_MAX = 32

#: The exports by kind, in the order of a formation's fragments.
NAMES = {"xml": XML_NAME, "json": JSON_NAME, "csv": CSV_NAME}
KINDS = tuple(NAMES)


# --------------------------------------------------------------------------
# The CSV: one row per LHEO session
# --------------------------------------------------------------------------

#: Column name, then what it holds (shown on the page, in this order).
CSV_COLUMNS: tuple[tuple[str, str], ...] = (
    ("numero_formation", "Référence (Ref) de la formation : numéro LHEO de la fiche, stable dans le temps."),
    ("intitule_formation", "Intitulé de la formation."),
    ("nom_organisme", "Nom de l'organisme de formation responsable."),
    ("siret_organisme", "SIRET de l'organisme de formation responsable (14 chiffres)."),
    ("numero_action", "Numéro LHEO de l'action (la « session » au sens du Carif-Oref : lieu, conditions, "
                      "financements)."),
    ("numero_session", "Numéro LHEO de la session (la période datée)."),
    ("date_debut", "Début de la session : AAAA-MM-JJ, ou AAAA-MM / AAAA quand seul le mois ou l'année est connu ; "
                   "vide si inconnu."),
    ("date_fin", "Fin de la session, même format ; vide si inconnue."),
    ("entrees_sorties_permanentes",
     "« oui » quand l'action accueille en entrées et sorties permanentes, sinon « non »."),
    ("ville", "Ville du lieu de formation : le premier lieu de l'action, ou l'adresse de l'organisme quand "
              "l'action a lieu dans ses locaux."),
    ("code_postal", "Code postal du même lieu."),
    ("code_departement", "Code du département du lieu (« 31 », « 2A », « 974 »)."),
    ("code_region", "Code INSEE de la région du lieu, dans le découpage en vigueur depuis 2016."),
    ("region", "Nom de cette région."),
    ("modalite_enseignement", "« présentiel », « mixte » ou « à distance » ; vide si non communiqué."),
    ("certifiante", "« oui » quand la formation mène à une certification, sinon « non »."),
    ("eligible_cpf", "« oui » quand la session est éligible au CPF (ou que la certification a un code CPF), "
                     "sinon « non »."),
    ("nombre_heures_total", "Durée totale de l'action, en heures ; vide si non communiquée."),
    ("prix_total_ttc", "Prix total TTC de l'action, en euros, virgule décimale (« 8400,00 ») ; "
                       "vide si non communiqué."),
    ("financeurs", "Financeurs de l'action (table LHEO des financeurs), séparés par « , »."),
    ("etat_recrutement", "« ouvert », « fermé » ou « suspendu » ; vide si non communiqué."),
    ("date_maj", "Date de mise à jour de la fiche : AAAA-MM-JJ."),
    ("archivee", "« oui » quand toutes les sessions de la formation sont terminées au jour des données, "
                 "sinon « non »."),
    ("url_fiche", "Adresse de la fiche sur ce site."),
)

MODALITES = {
    ModalitesEnseignement.PRESENTIEL: "présentiel",
    ModalitesEnseignement.MIXTE: "mixte",
    ModalitesEnseignement.DISTANCE: "à distance",
}

#: A spreadsheet runs a cell starting with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    """One CSV value; a text a spreadsheet would run as a formula gets a leading apostrophe."""
    kind = type(value)
    if kind is str:  # most values
        return "'" + value if value.startswith(_FORMULA_START) else value
    if value is None:
        return ""
    if kind is PartialDate:  # dates: before the tests below, which it fails
        return iso_date(value) or ""
    if isinstance(value, bool):
        return "oui" if value else "non"
    if isinstance(value, Decimal):
        return format(value, "f").replace(".", ",")
    if isinstance(value, PartialDate):
        return iso_date(value) or ""
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def session_rows(formation: Formation, entry: Entry, geo: Geo, url: str) -> Iterator[list[str]]:
    """The CSV rows of a formation, one per session, in the order of the columns of :data:`CSV_COLUMNS`."""
    return iter(CsvRows(geo)(formation, entry, url))


class CsvRows:
    """:func:`session_rows`, for a sink fed formation after formation.

    The cells of the formation and of each action are made once, not once a session; those of what the
    LHEO reader gives as one shared object wherever its bytes repeat (an organisme, an address:
    ``sources.lheo._validated``) once per object (:class:`~catalogue.lheo_export.Shared`), and a set of financeurs' once per set
    of codes.
    """

    def __init__(self, geo: Geo):
        self.geo = geo
        #: By organisme: its nom and SIRET cells.
        self._organismes = Shared()
        #: By address: its place's cells (ville, code postal, département, région, its name).
        self._places = Shared()
        #: The financeurs' codes, in order: their cell.
        self._financeurs: dict[tuple, str] = {}
        #: By date (the reader makes one object per distinct date): its cell.
        self._dates = Shared()

    def __call__(self, formation: Formation, entry: Entry, url: str) -> list[list[str]]:
        organisme = formation.organisme_formation_responsable
        cells = self._organismes.get(id(organisme))
        if cells is None:
            cells = self._organismes.add(organisme, (_cell(organisme.nom_organisme),
                                                     _cell(organisme.siret_organisme_formation)))
        premises = organisme.coordonnees_organisme.adresse if organisme.coordonnees_organisme else None
        cpf_by_certification = any(c.code_cpf for c in formation.certifications)
        head = [_cell(formation.numero), _cell(formation.intitule_formation), *cells]
        certifiante = _cell(formation.certifiante)
        dates = self._dates
        tail = [self._date(formation.datemaj), _cell(entry.archived), _cell(url)]
        places, financeurs_cells = self._places, self._financeurs
        rows = []
        for action in formation.actions:
            lieux = action.lieux_de_formation
            adresse = lieux[0].adresse if lieux else premises
            place = places.get(id(adresse))
            if place is None:
                place = places.add(adresse, self._place(adresse))
            codes = tuple(map(_CODE_FINANCEUR, action.organismes_financeurs))
            financeurs = financeurs_cells.get(codes)
            if financeurs is None:
                financeurs = self._financeurs_cell(codes)
            numero_action = _cell(action.numero)
            esp = _cell(action.entrees_sorties_permanentes)
            modalite = _MODALITE_CELLS.get(action.modalites_enseignement, "")
            money = [_cell(action.nombre_heures_total), _cell(action.prix_total_ttc), financeurs]
            # The cells of a session: a CSV row has a few dozen, written for ~2.6 sessions a formation; the
            # cells known in advance (yes or no, the recruitment's state) are looked up rather than made.
            for session in action.sessions:
                periode = session.periode
                debut, fin = periode.debut, periode.fin
                rows.append([
                    *head,
                    numero_action,
                    _cell(session.numero),
                    "" if debut is None else dates.get(id(debut)) or self._date(debut),
                    "" if fin is None else dates.get(id(fin)) or self._date(fin),
                    esp,
                    *place,
                    modalite,
                    certifiante,
                    "oui" if session.eligibilite_cpf or cpf_by_certification else "non",
                    *money,
                    _ETAT_CELLS.get(session.etat_recrutement, ""),
                    *tail,
                ])
        return rows

    def _date(self, date: Any) -> str:
        cell = self._dates.get(id(date))
        return cell if cell is not None else self._dates.add(date, _cell(date))

    def _place(self, adresse: Optional[Adresse]) -> tuple[str, ...]:
        geo = self.geo
        region = geo.region_of(adresse)
        return (
            _cell(adresse.ville if adresse else None),
            _cell(adresse.codepostal if adresse else None),
            _cell(geo.departement_of(adresse)),
            _cell(region),
            _cell(geo.regions[region].nom if region in geo.regions else None),
        )

    def _financeurs_cell(self, codes: tuple) -> str:
        cell = _cell(", ".join(dict.fromkeys(FINANCEURS.get(code, f"code {code}") for code in codes)))
        if len(self._financeurs) >= SHARED_MAX:
            self._financeurs.clear()
        self._financeurs[codes] = cell
        return cell


_CODE_FINANCEUR = operator.attrgetter("code_financeur")


def _etat(etat_recrutement: Optional[int]) -> Optional[str]:
    label = ETATS_RECRUTEMENT.get(etat_recrutement)
    return label.removeprefix("Recrutement ") if label else None


#: ``_cell(MODALITES.get(value))`` and ``_cell(_etat(value))`` by value; any other value's cell is empty.
_MODALITE_CELLS = {value: _cell(label) for value, label in MODALITES.items()}
_ETAT_CELLS = {value: _cell(_etat(value)) for value in ETATS_RECRUTEMENT}


class CsvLines:
    """Rows as the bytes of ``catalogue.csv``: ``;``, CRLF, quotes where RFC 4180 needs them."""

    def __init__(self) -> None:
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, delimiter=CSV_DELIMITER, lineterminator="\r\n")

    def __call__(self, rows: list[list[str]]) -> bytes:
        self._buffer.seek(0)
        self._buffer.truncate()
        self._writer.writerows(rows)
        return self._buffer.getvalue().encode("utf-8")

    def header(self) -> bytes:
        """The first line, after the BOM."""
        return "\ufeff".encode("utf-8") + self([[name for name, _ in CSV_COLUMNS]])


# --------------------------------------------------------------------------
# The JSON: one item per formation
# --------------------------------------------------------------------------


def json_item(formation: Formation, entry: Entry, url: str) -> dict[str, Any]:
    """``{"numero", "url", "archivee", "formation"}``; ``formation`` is the model as JSON, every key present."""
    return {
        "numero": formation.numero,
        "url": url,
        "archivee": entry.archived,
        "formation": formation.model_dump(mode="json"),
    }


def json_line(formation: Formation, entry: Entry, url: str) -> bytes:
    """:func:`json_item` as written in ``catalogue.json``: the same bytes, in half the time (pydantic's own
    serialiser writes the formation, without the dict in between)."""
    numero, archived = formation.numero, entry.archived
    if type(numero) is str and type(url) is str and type(archived) is bool:
        # What _dumps() writes for the dict, without the encoder's walk through it.
        head = f'{{"numero":{_json_string(numero)},"url":{_json_string(url)},"archivee":{"true" if archived else "false"}'
    else:
        head = _dumps({"numero": numero, "url": url, "archivee": archived})[:-1]
    # model_dump_json() without the str in between: the serialiser's own bytes.
    body = formation.__pydantic_serializer__.to_json(formation)
    return b"".join((head.encode("utf-8"), b',"formation":', body, b"}"))


def json_schema() -> dict[str, Any]:
    """The JSON Schema of ``catalogue.json``: an array of :func:`json_item`."""
    formation = Formation.model_json_schema(mode="serialization", ref_template="#/$defs/{model}")
    defs = formation.pop("$defs", {})
    defs["Formation"] = formation
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Catalogue des formations : formations publiées",
        "description": "Une formation par élément, archivées comprises. Les noms de champs sont ceux de LHEO "
        "(« - » écrit « _ ») ; une valeur inconnue vaut null (ou [] pour une liste).",
        "type": "array",
        "items": {
            "type": "object",
            "additionalProperties": False,
            "required": ["numero", "url", "archivee", "formation"],
            "properties": {
                "numero": {"type": "string", "description": "Référence (Ref) de la formation."},
                "url": {"type": "string", "description": "Adresse de la fiche sur le site."},
                "archivee": {
                    "type": "boolean",
                    "description": "Toutes les sessions sont terminées au jour des données.",
                },
                "formation": {"$ref": "#/$defs/Formation"},
            },
        },
        "$defs": dict(sorted(defs.items())),
    }


#: What ``json.dumps(data, ensure_ascii=False, separators=(",", ":"))`` uses, made once rather than at each call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _dumps(data: Any) -> str:
    return _ENCODER.encode(data)


#: A str as that encoder writes it (``ensure_ascii=False``).
_json_string = json.encoder.encode_basestring


#: The formation's last field, whose JSON :class:`JsonLines` writes once per organisme: written apart, after
#: the others (pydantic writes the fields in the model's order, computed fields last; none here).
_SPLICED = "organisme_formation_responsable"
_SPLICE = (
    list(Formation.model_fields)[-1] == _SPLICED and not Formation.model_computed_fields
    and not Formation.model_fields[_SPLICED].exclude
)
_SPLICED_KEY = _json_string(_SPLICED).encode("utf-8") if _SPLICE else b""


class JsonLines:
    """:func:`json_line`, for a sink fed formation after formation: the JSON of the organisme, which the LHEO
    reader gives as one shared object wherever its bytes repeat (``sources.lheo._validated``), is written once
    per object (:class:`~catalogue.lheo_export.Shared`; the same bytes: pydantic's serialiser of its model,
    spliced where the formation's puts it)."""

    def __init__(self) -> None:
        self._organismes = Shared()
        self._exclude = {_SPLICED: True}

    def __call__(self, formation: Formation, entry: Entry, url: str) -> bytes:
        numero, archived = formation.numero, entry.archived
        if not (_SPLICE and type(formation) is Formation and type(numero) is str and type(url) is str
                and type(archived) is bool):
            return json_line(formation, entry, url)
        organisme = formation.organisme_formation_responsable
        spliced = self._organismes.get(id(organisme))
        if spliced is None:
            spliced = self._organismes.add(organisme, organisme.__pydantic_serializer__.to_json(organisme))
        body = formation.__pydantic_serializer__.to_json(formation, exclude=self._exclude)
        head = f'{{"numero":{_json_string(numero)},"url":{_json_string(url)},"archivee":{"true" if archived else "false"}'
        # body ends with "}": the organisme goes before it, after a comma (the formation has other fields).
        return b"".join((head.encode("utf-8"), b',"formation":', body[:-1], b",", _SPLICED_KEY, b":", spliced, b"}}"))


# --------------------------------------------------------------------------
# The XML: each formation checked against the XSD before it is written
# --------------------------------------------------------------------------

_SAFE_PARSER = dict(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
_XS = "{http://www.w3.org/2001/XMLSchema}"
#: Attributes of an XSD whose value is a name (QName), or a list of names.
_QNAME_ATTRIBUTES = ("ref", "type", "base", "itemType", "memberTypes", "substitutionGroup", "refer")
_ELEMENT_RE = re.compile(r"Element '(?:\{[^}]*\})?([^']+)'")
_MAXLENGTH_RE = re.compile(r"maximum length of '(\d+)'")

#: libxml2's schema errors, in French.
SCHEMA_ERRORS = {
    "SCHEMAV_CVC_MAXLENGTH_VALID": "texte trop long",
    "SCHEMAV_CVC_MINLENGTH_VALID": "texte trop court",
    "SCHEMAV_CVC_ENUMERATION_VALID": "valeur absente de la table LHEO",
    "SCHEMAV_CVC_PATTERN_VALID": "format non conforme",
    "SCHEMAV_ELEMENT_CONTENT": "élément en trop ou mal placé",
    "SCHEMAV_CVC_DATATYPE_VALID_1_2_1": "valeur d'un type inattendu",
}


class SchemaCheck:
    """The LHEO 2.3 schema, applied to one ``<formation>`` at a time, as :func:`formation_element` builds it."""

    def __init__(self, xsd: Path = LHEO_XSD):
        self.schema = etree.XMLSchema(without_namespace(etree.parse(str(xsd), etree.XMLParser(**_SAFE_PARSER))))

    def problem(self, element: etree._Element) -> Optional[str]:
        """Why ``element`` (from :func:`formation_element`, without namespace) would not validate, or ``None``."""
        if self.schema.validate(element):
            return None
        return _french(self.schema.error_log[0])


#: xs:long's range.
_LONG = (-(2**63), 2**63 - 1)
_LONG_RE = re.compile(r"-?[0-9]+")
#: The only patterns the rules read: a series of character classes of ASCII letters and digits (nothing to escape).
_CLASSES_RE = re.compile(r"(?:\[[0-9A-Za-z-]+\])+")
_UNBOUNDED = float("inf")
#: A text rule: (least length, greatest length, a further test or None).
TextRule = tuple[float, float, Optional[Callable[[str], bool]]]


def _collapsed(text: str) -> bool:
    """Whether XSD's whitespace collapsing leaves ``text`` as it is (then a token's facets apply to it as is)."""
    return not ("\t" in text or "\n" in text or "\r" in text or "  " in text) and text.strip(" ") == text


def _is_long(text: str) -> bool:
    return _LONG_RE.fullmatch(text) is not None and _LONG[0] <= int(text) <= _LONG[1]


class SchemaRules:
    """What :class:`~catalogue.lheo_export.FragmentWriter` checks, read from the LHEO XSD.

    ``text_rules``: by element name, what the element's simple type accepts (lengths, then an
    enumeration, a pattern or xs:long). ``occurs``: by (parent, child) names, the bounds of the
    child's count in the parent's content model. Both are as strict as the XSD or stricter, never
    looser: an element whose type the rules do not understand (another facet or base type, a token
    whitespace collapsing would change, nested groups, a child named twice in a model) is left out
    of the tables, and a formation that holds it is checked by the XSD itself (:class:`SchemaCheck`).
    The LHEO schema declares every element globally, each with one type: an element's rules are the
    same wherever it appears.
    """

    def __init__(self, xsd: Path = LHEO_XSD):
        root = etree.parse(str(xsd), etree.XMLParser(**_SAFE_PARSER)).getroot()
        target = root.get("targetNamespace")
        prefixes = tuple(f"{prefix}:" for prefix, uri in root.nsmap.items() if prefix and uri == target)
        simple = {node.get("name"): node for node in root.findall(f"{_XS}simpleType")}
        complex_ = {node.get("name"): node for node in root.findall(f"{_XS}complexType")}
        groups = {node.get("name"): node for node in root.findall(f"{_XS}attributeGroup")}
        self.text_rules: dict[str, TextRule] = {}
        self.occurs: dict[tuple[str, str], tuple[float, float]] = {}
        for element in root.findall(f"{_XS}element"):
            name, type_name = element.get("name"), _local_name(element.get("type") or "", prefixes)
            node = complex_.get(type_name)
            if node is None or len(node) != 1 or len(node[0]) != 1 or node[0][0].tag != f"{_XS}extension":
                continue
            content, base = node[0], node[0][0].get("base") or ""
            if not _attributes_are_strings(node[0][0], groups, prefixes):
                continue
            if content.tag == f"{_XS}simpleContent":
                rule = (0, _UNBOUNDED, None) if base == "xs:string" else _text_rule(simple.get(_local_name(base, prefixes)))
                if rule is not None:
                    self.text_rules[name] = rule
            elif content.tag == f"{_XS}complexContent":
                if base == "xs:anyType":
                    self.text_rules[name] = (0, _UNBOUNDED, None)  # <extra>: any text
                else:
                    self._content_model(name, complex_.get(_local_name(base, prefixes)), prefixes)

    def _content_model(self, parent: str, model: Optional[etree._Element], prefixes: tuple[str, ...]) -> None:
        """Bounds of each child of ``parent``: a plain sequence of element references, or a choice of any
        of them any number of times (``<extras>``). Any other model: no child of ``parent`` is vouched for."""
        if model is None or len(model) != 1:
            return
        group = model[0]
        if group.tag == f"{_XS}sequence":
            if group.attrib:
                return
            any_number = False
        elif group.tag == f"{_XS}choice":
            if (group.get("minOccurs"), group.get("maxOccurs")) != ("0", "unbounded"):
                return
            any_number = True
        else:
            return
        bounds: dict[str, tuple[float, float]] = {}
        for child in group:
            ref = child.get("ref")
            if child.tag != f"{_XS}element" or ref is None:
                return
            name = _local_name(ref, prefixes)
            if name in bounds:
                return  # a child named twice: its count is not a simple bound
            high = child.get("maxOccurs", "1")
            bounds[name] = (float(int(child.get("minOccurs", "1"))), _UNBOUNDED if high == "unbounded" else float(int(high)))
            if any_number:
                bounds[name] = (0.0, _UNBOUNDED)
        for name, bound in bounds.items():
            self.occurs[(parent, name)] = bound


#: The attributes the writer writes (numero, dates, ``tag="principal"``, ``info``): their values are not checked.
WRITTEN_ATTRIBUTES = frozenset({"numero", "datecrea", "datemaj", "tag", "info"})


def _attributes_are_strings(extension: etree._Element, groups: dict, prefixes: tuple[str, ...]) -> bool:
    """Whether the attributes the writer may put on this type's element are plain strings (any value fits),
    and the extension adds no content of its own to its base's."""
    for child in extension:
        if child.tag != f"{_XS}attributeGroup":
            return False
        group = groups.get(_local_name(child.get("ref") or "", prefixes))
        if group is None:
            return False
        for attribute in group:
            if attribute.get("name") in WRITTEN_ATTRIBUTES and attribute.get("type") != "xs:string":
                return False
    return True


def _text_rule(node: Optional[etree._Element]) -> Optional[TextRule]:
    """What the simple type ``node`` accepts, for a restriction of xs:string, xs:token or xs:long; else None."""
    restriction = node.find(f"{_XS}restriction") if node is not None else None
    if restriction is None or len(node) != 1:
        return None
    base = restriction.get("base")
    low, high = 0, _UNBOUNDED
    values: Optional[frozenset[str]] = None
    patterns = []
    for facet in restriction:
        kind, value = facet.tag.removeprefix(_XS), facet.get("value")
        if kind == "minLength":
            low = max(low, int(value))
        elif kind == "maxLength":
            high = min(high, int(value))
        elif kind == "length":
            low, high = max(low, int(value)), min(high, int(value))
        elif kind == "enumeration":
            values = (values or frozenset()) | {value}
        elif kind == "pattern" and _CLASSES_RE.fullmatch(value or ""):
            patterns.append(re.compile(value))
        else:
            return None
    if base == "xs:long":
        return (0, _UNBOUNDED, _is_long) if (low, high, values, patterns) == (0, _UNBOUNDED, None, []) else None
    if base == "xs:token" and not patterns and (values is None or not all(_collapsed(v) for v in values)):
        # A token's facets apply once whitespace is collapsed. Taken here: the values of an enumeration
        # that collapsing leaves as they are, or texts a pattern of classes without blanks matches.
        return None
    if base not in ("xs:string", "xs:token"):
        return None
    if values is None and not patterns:
        return (low, high, None)
    if values is not None and any(char in value for value in values for char in "&<>\r"):
        return None  # the writer does not escape what a further test takes
    if not patterns:
        return (low, high, values.__contains__)  # type: ignore[union-attr]
    if values is None and len(patterns) == 1:
        return (low, high, patterns[0].fullmatch)
    # Patterns of one restriction are alternatives in XSD: requiring all of them is stricter.
    return (low, high, lambda text: (values is None or text in values) and all(p.fullmatch(text) for p in patterns))


def without_namespace(xsd: etree._ElementTree) -> etree._Element:
    """The schema ``xsd`` with no target namespace: for ``<formation>`` trees as :func:`formation_element` builds them.

    Checking the tree as built, rather than a copy serialised in the namespace then parsed again,
    makes the check nearly three times faster. Both schemas accept the same formations, names aside: the
    LHEO schema imports nothing and has no wildcard, so the namespace plays no other part (refused
    otherwise; a test compares their verdicts).
    """
    root = xsd.getroot()
    target = root.get("targetNamespace")
    unexpected = [root.find(f".//{_XS}{tag}") for tag in ("any", "anyAttribute", "import", "include", "redefine")]
    if target is None or root.nsmap.get(None) == target or any(found is not None for found in unexpected):
        raise ValueError("schéma LHEO inattendu : il faut un espace de noms cible préfixé, sans import ni joker")
    del root.attrib["targetNamespace"]
    prefixes = tuple(f"{prefix}:" for prefix, uri in root.nsmap.items() if prefix and uri == target)
    for element in root.iter(etree.Element):
        for name in _QNAME_ATTRIBUTES:
            value = element.get(name)
            if value:
                element.set(name, " ".join(_local_name(qname, prefixes) for qname in value.split()))
    return root


def _local_name(qname: str, prefixes: tuple[str, ...]) -> str:
    for prefix in prefixes:
        if qname.startswith(prefix):
            return qname[len(prefix):]
    return qname


def _french(error: Any) -> str:
    element = _ELEMENT_RE.search(error.message or "")
    where = f"<{element.group(1)}>" if element else "<formation>"
    what = SCHEMA_ERRORS.get(error.type_name, "non conforme au schéma LHEO 2.3")
    limit = _MAXLENGTH_RE.search(error.message or "")
    if limit and error.type_name == "SCHEMAV_CVC_MAXLENGTH_VALID":
        what += f" ({limit.group(1)} caractères au plus)"
    return f"{where} : {what}"


def xml_header() -> bytes:
    """What comes before the first ``<formation>``."""
    namespace = NAMESPACES[LHEO_VERSION]
    return f"<?xml version='1.0' encoding='utf-8'?>\n<lheo xmlns=\"{namespace}\">\n  <offres>".encode("utf-8")


XML_FOOTER = b"\n  </offres>\n</lheo>\n"


def xml_fragment(element: etree._Element) -> bytes:
    """A checked ``<formation>`` as the document holds it: on its own line, indented at its depth.

    Its tags have no namespace: inside ``<lheo xmlns="...">`` they take the document's default one,
    without a declaration on each formation. (``element`` is moved into a throwaway tree: libxml2
    indents it at depth 2 as it writes, in half the time of ``etree.indent`` then writing.)
    """
    offres = etree.SubElement(etree.Element("lheo"), "offres")
    offres.append(element)
    data = etree.tostring(offres.getparent(), encoding="utf-8", pretty_print=True)
    start = data.index(b"<formation")
    end = data.rindex(b"</formation>") + len(b"</formation>")
    return b"\n    " + data[start:end]


class XmlExport:
    """Each formation's fragment of ``catalogue.xml``, or why the XSD refuses it.

    The fast writer (:class:`~catalogue.lheo_export.FragmentWriter`, checking against
    :class:`SchemaRules`) gives the bytes of a formation it can vouch for. Any other (a value
    beyond a rule of the XSD, a character XML cannot hold, a model it does not expect) is built
    as a tree and checked by the XSD itself (:class:`SchemaCheck`, loaded at the first such
    formation), which gives the verdict, the message, and the bytes when it validates. Both
    paths write the same bytes for a valid formation (tests compare them).
    """

    def __init__(self, xsd: Path = LHEO_XSD):
        self.xsd = xsd
        self._writer: Optional[FragmentWriter] = None
        self._check: Optional[SchemaCheck] = None
        #: Formations given to the XSD (the fast writer did not vouch for them).
        self.checked = 0

    @property
    def writer(self) -> FragmentWriter:
        """Made at the first formation (reading the rules and compiling the writer: about 20 ms, which a
        rebuild where no formation changed does without)."""
        if self._writer is None:
            rules = SchemaRules(self.xsd)
            self._writer = FragmentWriter(rules.text_rules, rules.occurs)
        return self._writer

    @property
    def check(self) -> SchemaCheck:
        if self._check is None:
            self._check = SchemaCheck(self.xsd)
        return self._check

    def __call__(self, formation: Formation) -> tuple[bytes, Optional[str]]:
        """(the fragment, None) for a valid formation; (b"", why) for one the XSD refuses."""
        writer = self.writer  # outside the try: a writer that cannot be made is an error, not a slow path
        try:
            return writer.fragment(formation), None
        except Exception:  # Unsure, or what the slow path will raise or report in its own words
            pass
        self.checked += 1
        element = formation_element(formation)
        problem = self.check.problem(element)
        return (xml_fragment(element) if problem is None else b""), problem


# --------------------------------------------------------------------------
# Gzip members: new ones, and spans of the previous build's files
# --------------------------------------------------------------------------

#: (offset, length) of a gzip member in an export.
Span = tuple[int, int]


def gzip_member(data: bytes) -> bytes:
    """``data`` as one gzip member: always the same bytes for the same data (no name nor date in its header)."""
    return deflate.compress(data, GZIP_LEVEL, wbits=31)


def ends_run(ref: str) -> bool:
    """Whether a run ends after the formation ``ref``: true for one Ref in :data:`RUN_MEAN`, at random but for good."""
    digest = hashlib.blake2b(ref.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % RUN_MEAN == 0


class MemberFile:
    """An export being written: gzip members appended in order, each new or a span of the previous build's file.

    Spans that follow each other in the previous file are copied in one system call
    (``copy_file_range``: in the kernel, without reading them into Python), and a file made of
    the whole previous file is hard-linked to it. The file is created at its first byte that
    is not part of such a span, written once, never reopened.
    """

    def __init__(self, path: Path, previous: Optional[Path] = None):
        self.path = path
        self.size = 0
        self._previous_path = previous
        self._previous: Optional[BinaryIO] = None
        self._out: Optional[BinaryIO] = None
        self._pending: Optional[list[int]] = None  # [start, end) of the previous file, still to copy

    def write(self, member: bytes) -> Span:
        self._flush()
        self._open().write(member)
        return self._advance(len(member))

    def copy(self, span: Span) -> Span:
        """Append the member at ``span`` of the previous file."""
        start, length = span
        if self._pending is not None and self._pending[1] == start:
            self._pending[1] += length
        else:
            self._flush()
            self._pending = [start, start + length]
        return self._advance(length)

    def read(self, span: Span) -> bytes:
        """The bytes at ``span`` of the previous file."""
        return read_span(self._source(), span)

    def close(self) -> int:
        """Finish the file; its size."""
        try:
            if self._out is None and self._pending == [0, self._previous_size()]:
                link_file(self._previous_path, self.path)
                self._pending = None
            else:
                self._flush()
        finally:
            self.release()
        return self.size

    def discard(self) -> None:
        """No file after all (the XML without a formation)."""
        self.release()
        self.path.unlink(missing_ok=True)

    def _advance(self, length: int) -> Span:
        span = (self.size, length)
        self.size += length
        return span

    def _open(self) -> BinaryIO:
        if self._out is None:
            # Unbuffered: copy_file_range appends at the descriptor's position, after every write.
            self._out = open(self.path, "xb", buffering=0)
        return self._out

    def _source(self) -> BinaryIO:
        if self._previous is None:
            if self._previous_path is None:
                raise FileNotFoundError(errno.ENOENT, "pas de fichier précédent", str(self.path))
            self._previous = open(self._previous_path, "rb", buffering=0)
        return self._previous

    def _previous_size(self) -> int:
        return os.fstat(self._source().fileno()).st_size if self._previous_path is not None else -1

    def _flush(self) -> None:
        if self._pending is None:
            return
        (start, end), self._pending = self._pending, None
        copy_range(self._source(), self._open(), start, end - start)

    def release(self) -> None:
        for handle in (self._out, self._previous):
            if handle is not None:
                handle.close()
        self._out = self._previous = None


def read_span(source: BinaryIO, span: Span) -> bytes:
    data = os.pread(source.fileno(), span[1], span[0])
    if len(data) != span[1]:
        raise EOFError(f"{source.name} : fichier tronqué, {span[1]} octets attendus à {span[0]}")
    return data


def copy_range(source: BinaryIO, target: BinaryIO, offset: int, length: int) -> None:
    """Append ``length`` bytes of ``source`` from ``offset`` to ``target`` (unbuffered), in the kernel when it can."""
    in_kernel = hasattr(os, "copy_file_range")
    while length > 0:
        done = 0
        if in_kernel:
            try:
                done = os.copy_file_range(source.fileno(), target.fileno(), length, offset)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM):
                    raise
                in_kernel = False
                continue
        else:
            chunk = os.pread(source.fileno(), min(length, 1 << 20), offset)
            done = len(chunk)
            target.write(chunk)
        if done <= 0:
            raise EOFError(f"{source.name} : fichier tronqué, {length} octets manquent à {offset}")
        offset += done
        length -= done


# --------------------------------------------------------------------------
# The index: what the next build needs to reuse the files
# --------------------------------------------------------------------------


class MissingIndex(FileNotFoundError):
    """The previous build left no index this code can use: its exports cannot be reused.

    A :class:`FileNotFoundError` naming a file of the previous build, on which the build
    starts again as a full one.
    """

    def __init__(self, path: Path, why: str):
        super().__init__(errno.ENOENT, f"index des exports inutilisable ({why}) ; build complet", str(path))


#: Numbers a formation in :attr:`ExportsIndex.sizes`: bytes in the XML (0: left out), in the JSON (the item,
#: without the separator before it) and in the CSV; then its CSV rows.
SIZES = len(KINDS) + 1
ROWS = len(KINDS)

#: A formation of the run being made: its fragments (XML, JSON item, CSV rows) when added, or, when kept,
#: its position in the previous build's files, where its bytes are.
Item = Union[tuple[bytes, bytes, bytes], int]


class ExportsIndex:
    """The layout of the three exports, formation by formation and run by run, in columns.

    Columns of numbers rather than an object a formation: at 100,000 formations, that many small
    long-lived objects cost the garbage collector more than the work they describe.
    """

    def __init__(self) -> None:
        self.refs: list[str] = []  # in the files' order (the input's)
        self.sizes = array("q")  # SIZES numbers a formation
        self.left_out: dict[int, str] = {}  # position: why it is not in the XML, in input order
        self.run_ends: list[int] = []  # position after the last formation of each run
        #: (offset, length) of each run's member in each file, length 0 for none.
        self.spans = {kind: array("q") for kind in KINDS}
        #: (offset, length) of the header and footer members; an empty dict for a file not written.
        self.parts: dict[str, dict[str, list[int]]] = {kind: {} for kind in KINDS}

    @staticmethod
    def stamp() -> list:
        """What must be the same for two builds' members to be interchangeable."""
        return [INDEX_VERSION, deflate.ZLIBNG_VERSION, GZIP_LEVEL, RUN_MEAN, RUN_MAX]

    def to_json(self) -> bytes:
        data = {
            "stamp": self.stamp(),
            "refs": self.refs,
            "sizes": self.sizes.tolist(),
            "left_out": [[position, why] for position, why in self.left_out.items()],
            "run_ends": self.run_ends,
            "spans": {kind: spans.tolist() for kind, spans in self.spans.items()},
            "parts": self.parts,
        }
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    @classmethod
    def load(cls, path: Path) -> "ExportsIndex":
        try:
            data = json.loads(path.read_bytes())
            if data["stamp"] != cls.stamp():
                raise MissingIndex(path, "autre version des exports ou de zlib")
            index = cls()
            index.refs = data["refs"]
            index.sizes = array("q", data["sizes"])
            index.left_out = {position: why for position, why in data["left_out"]}
            index.run_ends = data["run_ends"]
            index.spans = {kind: array("q", data["spans"][kind]) for kind in KINDS}
            index.parts = {kind: data["parts"][kind] for kind in KINDS}
        except MissingIndex:
            raise
        except (OSError, ValueError, LookupError, TypeError) as exc:
            raise MissingIndex(path, str(exc)) from exc
        runs = len(index.run_ends)
        if len(index.sizes) != SIZES * len(index.refs) or (index.run_ends[-1:] or [0])[0] != len(index.refs) or any(
            len(spans) != 2 * runs for spans in index.spans.values()
        ):
            raise MissingIndex(path, "index incohérent")
        return index

    def span(self, kind: str, run: int) -> Optional[Span]:
        offset, length = self.spans[kind][2 * run : 2 * run + 2]
        return (offset, length) if length else None

    def run_start(self, run: int) -> int:
        return self.run_ends[run - 1] if run else 0


class PreviousExports:
    """The exports of the previous build: runs to copy, fragments to take back from them."""

    def __init__(self, root: Path, index: ExportsIndex):
        self.root = root
        self.index = index
        #: Ref: position, made at the first Ref not found near where it was expected (see :meth:`position`).
        self._where: Optional[dict[str, int]] = None
        self.run_of = array("l", bytes(array("l").itemsize * len(index.refs)))
        start = 0
        for run, end in enumerate(index.run_ends):
            self.run_of[start:end] = array("l", [run]) * (end - start)
            start = end
        #: Positions of the formations left out of the XML, ascending.
        self.left_out_positions = sorted(index.left_out)
        #: ``ends_run()`` of the last formation (its run ended with the catalogue, whatever its Ref).
        self.last_ends_run = bool(index.refs) and ends_run(index.refs[-1])
        self._lock = threading.Lock()
        #: The previous files, mapped: a member is sliced from them holding the GIL (no system call that lets go
        #: of it, after which the compressing thread would wait for the build's thread to give it back).
        self._maps: dict[str, mmap.mmap] = {}

    @classmethod
    def load(cls, previous: PreviousBuild) -> "PreviousExports":
        index = ExportsIndex.load(previous.folder / CACHE_DIR / INDEX_NAME)
        return cls(previous.folder / "site" / DONNEES_DIR, index)

    def position(self, ref: str, near: int = 0) -> int:
        """Where ``ref`` is; looked for in the few positions from ``near`` first (after a changed or deleted
        formation, the next kept one is there), then in a table of every Ref."""
        refs = self.index.refs
        for position in range(near, min(near + 4, len(refs))):
            if refs[position] == ref:
                return position
        if self._where is None:
            self._where = {ref: position for position, ref in enumerate(refs)}
        position = self._where.get(ref)
        if position is None:
            raise MissingIndex(self.root, f"{ref} n'y figure pas")
        return position

    def ends_run_at(self, position: int) -> bool:
        """``ends_run()`` of the formation at ``position``, read from the runs where they tell it (no hash)."""
        index = self.index
        run = self.run_of[position]
        end = index.run_ends[run]
        if position + 1 != end:
            return False  # its run went on after it
        if end - index.run_start(run) < RUN_MAX and run + 1 < len(index.run_ends):
            return True  # its run stopped after it, short of RUN_MAX and before the end of the catalogue
        return self.last_ends_run if end == len(index.refs) else ends_run(index.refs[position])

    def closes_itself(self, run: int) -> bool:
        """Whether ``run`` ended because of its own formations (RUN_MAX, or its last Ref), not the catalogue's end."""
        index = self.index
        end = index.run_ends[run]
        return end - index.run_start(run) >= RUN_MAX or self.ends_run_at(end - 1)

    def left_out_between(self, start: int, end: int) -> list[int]:
        """Positions in [start, end) of formations left out of the XML."""
        positions = self.left_out_positions
        return positions[bisect_left(positions, start) : bisect_left(positions, end)]

    def unchanged(self, positions: list[int], first: bool) -> Optional[int]:
        """The previous run made of exactly the formations at ``positions``, at the same place (first or not)."""
        run = self.run_of[positions[0]]
        start, end = self.index.run_start(run), self.index.run_ends[run]
        if (run == 0) != first or positions != list(range(start, end)):
            return None
        return run

    def fragment(self, position: int, kind: str, decompressed: dict) -> bytes:
        """The bytes written for a formation in the export ``kind`` (without the JSON separator).

        ``decompressed``: the caller's, by kind: (run, its member decompressed, where each of its fragments
        starts and the last ends), for the next fragments of the same run.
        """
        run = self.run_of[position]
        data, starts = self._run(kind, run, decompressed)
        offset = position - self.index.run_start(run)
        start = starts[offset]
        if kind == "json":
            start += len(json_separator(run == 0, offset))
        return data[start : starts[offset + 1]]

    def _run(self, kind: str, run: int, decompressed: dict) -> tuple[bytes, list[int]]:
        cached = decompressed.get(kind)
        if cached is not None and cached[0] == run:
            return cached[1], cached[2]
        path = self.root / NAMES[kind]
        span = self.index.span(kind, run)
        data = b""
        if span is not None:
            offset, length = span
            member = self._map(kind)[offset : offset + length]
            if len(member) != length:
                raise EOFError(f"{path} : fichier tronqué, {length} octets attendus à {offset}")
            data = zlib.decompress(member, wbits=31)
        column = KINDS.index(kind)
        starts = [0]
        for offset, position in enumerate(range(self.index.run_start(run), self.index.run_ends[run])):
            separator = len(json_separator(run == 0, offset)) if kind == "json" else 0
            starts.append(starts[-1] + separator + self.index.sizes[SIZES * position + column])
        if starts[-1] != len(data):
            raise MissingIndex(path, "le fichier ne correspond pas à l'index")
        decompressed[kind] = (run, data, starts)
        return data, starts

    def _map(self, kind: str) -> mmap.mmap:
        with self._lock:  # the compressing threads
            if kind not in self._maps:
                with open(self.root / NAMES[kind], "rb", buffering=0) as handle:
                    self._maps[kind] = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
            return self._maps[kind]

    def close(self) -> None:
        for mapped in self._maps.values():
            mapped.close()
        self._maps.clear()


def json_separator(first_run: bool, position: int) -> bytes:
    """What comes before an item of ``catalogue.json``: a comma, but for the first item of all."""
    return b"\n" if first_run and position == 0 else b",\n"


# --------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportFile:
    """One file as the page lists it."""

    name: str
    format: str
    size: Optional[int]  # None: not written (no formation for it)
    content: str  # what it holds, counted
    raw_size: Optional[int] = None  # once decompressed; None: not compressed

    @property
    def url(self) -> str:
        return f"/{DONNEES_DIR}/{self.name}"

    @property
    def size_text(self) -> str:
        return human_size(self.size) if self.size is not None else "–"

    @property
    def raw_size_text(self) -> str:
        return human_size(self.raw_size) if self.raw_size is not None and self.size is not None else ""


def human_size(size: int) -> str:
    """``845 octets``, ``12,3 ko``, ``1,2 Mo``, ``3,4 Go`` (powers of 1000, as file browsers show)."""
    if size < 1000:
        return f"{size} octet" + ("s" if size > 1 else "")
    for unit, scale in (("ko", 1e3), ("Mo", 1e6), ("Go", 1e9)):
        if size < scale * 1000 or unit == "Go":
            value = size / scale
            return (f"{value:.1f}" if value < 100 else f"{value:.0f}").replace(".", ",") + f"\u00a0{unit}"
    raise AssertionError("unreachable")


def _counted(count: int, singular: str, plural: str) -> str:
    return f"{number(count)} {singular if count <= 1 else plural}"


# --------------------------------------------------------------------------
# The build's sink
# --------------------------------------------------------------------------

#: Runs handed to the compressing thread and not yet done, at most: the sink waits beyond (memory stays bounded).
PENDING_RUNS = 8


class FileWork:
    """The sink's file work (compressing members, writing them, copying the previous build's), in order.

    On threads of its own when ``threaded``: zlib lets go of the GIL while it compresses, which is
    most of that work, so the build's main thread goes on with the next formations meanwhile.
    :meth:`compute` compresses a run on one of :attr:`compressors` threads (two: while the build's
    thread waits, both cores compress); the tasks given to :meth:`submit` write on one thread, so
    the members reach the files in the order they were given. Once a task has failed, the later
    ones do not run (the files would be wrong); the failure is raised in the main thread by the
    next :meth:`submit` or by :meth:`drain`.
    """

    #: Threads compressing the runs' members, besides the one writing them in order (1: that one compresses).
    compressors = 2
    #: The GIL's switch interval while the thread runs (Python's default: 5 ms), see :meth:`__init__`.
    switch_interval = 0.001

    def __init__(self, threaded: bool, incremental: bool = True):
        """``incremental``: a rebuild, where the build's thread mostly waits for the few runs to compress.
        In a full build every core is busy already (fiche and index processes): one compressing thread and
        Python's switch interval, measured faster there (20,000 formations: 38-40 s against 43 s)."""
        if not incremental:
            self.compressors, self.switch_interval = 1, sys.getswitchinterval()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="donnees") if threaded else None
        self._compressors = (
            ThreadPoolExecutor(self.compressors, thread_name_prefix="donnees-zlib")
            if threaded and self.compressors > 1 else None
        )
        self._pending: deque[Future] = deque()
        self._failed = False
        self._compress_failed = False  # the later runs are not compressed
        #: Each time the thread lets go of the GIL (zlib, a system call), it waits to get it back until the
        #: build's thread, busy in Python, gives it up: up to the switch interval each time, a dozen times a
        #: run. A shorter interval while the sink works; the interval before is put back by :meth:`stop`.
        self._interval: Optional[float] = None
        if threaded and sys.getswitchinterval() > self.switch_interval:
            self._interval = sys.getswitchinterval()
            sys.setswitchinterval(self.switch_interval)

    def submit(self, task: Callable[[], None], light: bool = False) -> None:
        """Run ``task`` after those given before; a ``light`` one (no compression) here when none is waiting,
        since handing it to the thread would cost more than running it (a GIL switch each)."""
        pending = self._pending
        while pending and pending[0].done():
            pending.popleft().result()
        if self._executor is None or (light and not pending):
            task()
            return
        pending.append(self._executor.submit(self._run, task))
        while len(pending) > PENDING_RUNS:
            pending.popleft().result()

    def compute(self, function: Callable[[], Any]) -> Callable[[], Any]:
        """Start ``function`` on a compressing thread, if any; what is returned gives its result (waiting for it),
        for a task given to :meth:`submit` next. Without compressing threads, ``function`` runs when called."""
        if self._compressors is None:
            return function

        def guarded() -> Any:
            # A failure raises in the writing thread, at that run's turn: the runs before it are written.
            if self._failed or self._compress_failed:
                raise RuntimeError("écriture des exports interrompue par une erreur précédente")
            try:
                return function()
            except BaseException:
                self._compress_failed = True
                raise

        return self._compressors.submit(guarded).result

    def _run(self, task: Callable[[], None]) -> None:
        if self._failed:
            raise RuntimeError("écriture des exports interrompue par une erreur précédente")
        try:
            task()
        except BaseException:
            self._failed = True
            raise

    def drain(self) -> None:
        """Wait for every task; raise the first failure."""
        while self._pending:
            self._pending.popleft().result()

    def stop(self) -> None:
        """Drop the tasks not started, wait for the one running (then the files can be closed)."""
        if self._executor is not None:
            self._failed = True
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._pending.clear()
        if self._compressors is not None:
            self._compressors.shutdown(wait=True, cancel_futures=True)
        if self._interval is not None:
            sys.setswitchinterval(self._interval)
            self._interval = None



#: The compressing process: reads runs on its stdin (a header, the lengths of the run's bytes in each
#: export, then those bytes), answers each with the lengths of the gzip members then the members
#: (length 0: no bytes, no member); stops at lengths of -1 (not at the end of its stdin: the processes
#: the build forks later hold a copy of the pipe's end until they exit). Plain Python with zlib-ng, in the
#: build's own interpreter, without its site (started sooner: the folder holding zlib-ng is given): the
#: same library, so the same bytes as :func:`gzip_member` (checked first).
_DEFLATER_SOURCE = """
import os, struct, sys
level, count, niceness = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
sys.path.insert(0, sys.argv[4])
from zlib_ng import zlib_ng as deflate
try:
    os.nice(niceness)
except OSError:
    pass
header = struct.Struct("<%dq" % count)
source, target = open(0, "rb", buffering=0), open(1, "wb", buffering=0)
def read(length):
    data = bytearray(length)
    view, done = memoryview(data), 0
    while done < length:
        got = source.readinto(view[done:])
        if not got:
            return None
        done += got
    return data
while True:
    lengths = read(header.size)
    if lengths is None:
        break
    lengths = header.unpack(lengths)
    if lengths[0] < 0:
        break
    data = read(sum(lengths))
    if data is None:
        sys.exit(1)
    view, start, members = memoryview(data), 0, []
    for length in lengths:
        members.append(deflate.compress(view[start : start + length], level, wbits=31) if length else b"")
        start += length
    target.write(header.pack(*map(len, members)) + b"".join(members))
"""


#: The folder zlib-ng's package is in, for :data:`_DEFLATER_SOURCE`.
_ZLIB_NG_FOLDER = os.path.dirname(os.path.dirname(os.path.abspath(zlib_ng.__file__)))


class Deflater:
    """Gzip members made in a process of the sink's own, for a full build.

    A full build compresses every byte of the three exports (about 3 s of CPU at 20,000 formations), on
    a thread of the build's process: CPU of the process that is the build's critical path. Here a child
    process, started without the build's modules, takes the bytes of each run through a pipe and gives
    back its members; the build's process only copies the bytes into the pipe (a tenth of the time of
    compressing them) and reads the members back.
    """

    def __init__(self, process: subprocess.Popen):
        self._process = process
        self._header = struct.Struct(f"<{len(KINDS)}q")
        self._in = process.stdin.fileno()  # type: ignore[union-attr]
        self._out = process.stdout  # type: ignore[union-attr]
        #: None until the first run: whether the process gives :func:`gzip_member`'s bytes (else they are made here).
        self._same: Optional[bool] = None
        self._lock = threading.Lock()  # one run in the pipe at a time

    @classmethod
    def start(cls) -> Optional["Deflater"]:
        """The process, or None where it cannot be started (then the sink compresses on its thread, as a
        rebuild does). Not waited for: its first run checks it (on the thread that writes the runs)."""
        if not hasattr(os, "writev"):
            return None
        try:
            process = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _DEFLATER_SOURCE, str(GZIP_LEVEL), str(len(KINDS)), str(CHILD_NICENESS),
                 _ZLIB_NG_FOLDER],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0,
            )
        except OSError:
            return None
        deflater = cls(process)
        try:
            import fcntl

            # A run's bytes (about 300 kB) in a few system calls rather than one per 64 kB, the default.
            fcntl.fcntl(deflater._in, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
        except (ImportError, OSError):
            pass
        return deflater

    def members(self, parts: Sequence[Sequence[bytes]]) -> list[Optional[bytes]]:
        """The gzip member of the bytes ``parts`` holds for each export, joined; None where there are none."""
        with self._lock:
            if self._same is None:
                probe = [[b"<formation/>", b"\n"], [], ["\u00e9t\u00e9 ;".encode("utf-8") * 40]]
                try:
                    self._same = self._members(probe) == [gzip_member(b"".join(p)) if p else None for p in probe]
                except OSError:
                    self._same = False
            if self._same:
                return self._members(parts)
        return [gzip_member(b"".join(kind_parts)) if any(kind_parts) else None for kind_parts in parts]

    def _members(self, parts: Sequence[Sequence[bytes]]) -> list[Optional[bytes]]:
        lengths = [sum(map(len, kind_parts)) for kind_parts in parts]
        chunks: list = [self._header.pack(*lengths)]
        for kind_parts in parts:
            chunks.extend(kind_parts)
        _write_all(self._in, chunks)
        sizes = self._header.unpack(self._read(self._header.size))
        data = self._read(sum(sizes))
        members: list[Optional[bytes]] = []
        start = 0
        for size in sizes:
            members.append(data[start : start + size] if size else None)
            start += size
        return members

    def _read(self, length: int) -> bytes:
        data = self._out.read(length)
        if data is None or len(data) != length:
            chunks = [data or b""]
            done = len(chunks[0])
            while done < length:
                chunk = self._out.read(length - done)
                if not chunk:
                    raise OSError(errno.EPIPE, "le processus de compression des exports s'est arrêté")
                chunks.append(chunk)
                done += len(chunk)
            data = b"".join(chunks)
        return data

    def close(self) -> None:
        process = self._process
        if process.stdin is None or process.stdin.closed:
            return  # closed already (its descriptor's number may be another file's now)
        try:
            _write_all(self._in, [self._header.pack(*[-1] * len(KINDS))])
        except OSError:
            pass  # it stopped already
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _write_all(fd: int, chunks: list) -> None:
    """Write every chunk to ``fd``, in order, without joining them (``writev``: a system call for many)."""
    i = 0
    while i < len(chunks):
        done = os.writev(fd, chunks[i : i + 1024])  # IOV_MAX on Linux
        while i < len(chunks) and done >= len(chunks[i]):
            done -= len(chunks[i])
            i += 1
        if done:
            chunks[i] = memoryview(chunks[i])[done:]


@register_sink("donnees")
class DonneesSink:
    """Writes every published formation into the three exports, run by run; the page and the index at the end."""

    #: Compress and write the runs on a thread of their own (see :class:`FileWork`); the bytes are the same.
    compress_in_thread = True
    #: In a full build, compress in a process of its own rather than on the thread (see :class:`Deflater`).
    compress_in_process = True

    def __init__(self, context: SinkContext):
        self.root = context.staging / "site" / DONNEES_DIR
        self.root.mkdir(parents=True, exist_ok=True)
        self.cache = context.staging / CACHE_DIR
        self.settings: Settings = context.settings
        self.site_url = self.settings.site_url.rstrip("/")
        self.today = context.today
        self.geo = context.geo
        self.previous = PreviousExports.load(context.previous) if context.previous is not None else None
        self.xml = XmlExport()
        self.csv_lines = CsvLines()
        self.csv_rows = CsvRows(self.geo)
        self.json_lines = JsonLines()
        self.index = ExportsIndex()
        self.formations = 0
        self.archived = 0
        self.sessions = 0
        self.in_xml = 0
        #: Bytes of each export once decompressed.
        self.raw_sizes = dict.fromkeys(KINDS, 0)
        self._run: list[Item] = []
        #: Kept formations not taken yet: positions [start, end) of the previous build (see keep()).
        self._kept_start = self._kept_end = 0
        self._previous_refs: list[str] = self.previous.index.refs if self.previous is not None else []
        self._previous_count = len(self._previous_refs)
        self._files = {
            kind: MemberFile(self.root / name, self.previous.root / name if self.previous else None)
            for kind, name in NAMES.items()
        }
        self._work = FileWork(self.compress_in_thread, incremental=self.previous is not None)
        #: A full build compresses every run: in a process of its own (see :class:`Deflater`). A rebuild has
        #: few runs to compress, for which the threads cost less than starting a process.
        self._deflater = (
            Deflater.start() if self.compress_in_process and self.compress_in_thread and self.previous is None
            else None
        )
        try:
            for kind, header in zip(KINDS, (xml_header(), b"[", self.csv_lines.header())):
                self._put(kind, "header", header)
        except BaseException:
            self.abort()
            raise

    @property
    def left_out(self) -> list[tuple[str, str]]:
        """(Ref, why) of the formations left out of the XML, in input order."""
        return [(self.index.refs[position], why) for position, why in self.index.left_out.items()]

    def add(self, formation: Formation, entry: Entry) -> None:
        url = self.site_url + entry.url
        xml, problem = self.xml(formation)
        item = self.json_lines(formation, entry, url)
        rows = self.csv_rows(formation, entry, url)
        lines = self.csv_lines(rows)
        self._flush_kept()
        self.archived += entry.archived
        ref = entry.ref
        self._take(ref, (len(xml), len(item), len(lines), len(rows)), problem, (xml, item, lines), ends_run(ref))

    def keep(self, entry: Entry) -> None:
        """A formation of the previous build: noted only, when it follows the last one kept there (see
        :meth:`_flush_kept`)."""
        following = self._kept_end
        if following < self._previous_count and self._previous_refs[following] == entry.ref:
            self._kept_end = following + 1
            self.archived += entry.archived
            return
        previous = self.previous
        if previous is None:
            raise RuntimeError("keep() sans build précédent")
        position = previous.position(entry.ref, following)
        self._flush_kept()
        self._kept_start, self._kept_end = position, position + 1
        self.archived += entry.archived

    def keep_all(self, entries: Sequence[Entry]) -> None:
        """:meth:`keep` of each in turn: a stretch that follows the first one in the previous build is checked
        at once (its Refs compared as a list)."""
        if not entries:
            return
        self.keep(entries[0])
        rest = entries[1:]
        refs = [entry.ref for entry in rest]
        following = self._kept_end
        if self._previous_refs[following : following + len(refs)] == refs:
            self._kept_end = following + len(refs)
            self.archived += sum(entry.archived for entry in rest)
        else:
            for entry in rest:
                self.keep(entry)

    def _flush_kept(self) -> None:
        """Take the kept formations noted since the last call: positions [start, end) of the previous build.

        Where the run being made is empty and the previous build's run starts at the same formation (first
        in both files, or in neither), the runs that follow are the previous build's as long as the kept
        formations go on (where runs end depends on the Refs only): each of those whole runs is taken at
        once, its refs, sizes and run ends sliced from the previous index, its members copied, without a
        step per formation. Other kept formations are taken one by one, their ``ends_run()`` read from the
        previous runs.
        """
        start, end = self._kept_start, self._kept_end
        if start == end:
            return
        self._kept_start = end
        previous = self.previous
        assert previous is not None
        run_ends = previous.index.run_ends
        last_run = len(run_ends) - 1
        position = start
        while position < end:
            if not self._run:
                run = previous.run_of[position]
                if previous.index.run_start(run) == position and (run == 0) == (not self.index.run_ends):
                    until = bisect_right(run_ends, end, lo=run) - 1  # the last run ending by ``end``
                    if until == last_run and not previous.closes_itself(until):
                        until -= 1  # the previous catalogue's end closed it: here it may go on
                    if until >= run:
                        self._take_runs(run, until)
                        position = run_ends[until]
                        continue
            self._take_kept(position)
            position += 1

    def _take_kept(self, position: int) -> None:
        previous = self.previous
        index = previous.index  # type: ignore[union-attr]
        start = SIZES * position
        self._take(index.refs[position], index.sizes[start : start + SIZES], index.left_out.get(position), position,
                   previous.ends_run_at(position))  # type: ignore[union-attr]

    def _take_runs(self, first: int, last: int) -> None:
        """The previous build's runs ``first`` to ``last``, whole, at the end of the files (the run being made is empty)."""
        previous = self.previous
        before = previous.index  # type: ignore[union-attr]
        index = self.index
        start, end = before.run_start(first), before.run_ends[last]
        shift = len(index.refs) - start
        index.refs.extend(before.refs[start:end])
        index.sizes.extend(before.sizes[SIZES * start : SIZES * end])
        left_out = previous.left_out_between(start, end)  # type: ignore[union-attr]
        for position in left_out:
            index.left_out[position + shift] = before.left_out[position]
        index.run_ends.extend([run_end + shift for run_end in before.run_ends[first : last + 1]])
        self.formations += end - start
        self.in_xml += end - start - len(left_out)
        self.sessions += sum(before.sizes[SIZES * start + ROWS : SIZES * end : SIZES])
        self._work.submit(lambda: self._copy_runs(first, last), light=True)

    def _copy_runs(self, first: int, last: int) -> None:
        """The members of the previous build's runs ``first`` to ``last``, copied (in :class:`FileWork`)."""
        before = self.previous.index  # type: ignore[union-attr]
        for kind in KINDS:
            spans = before.spans[kind][2 * first : 2 * last + 2]
            lengths = spans[1::2]
            total = sum(lengths)
            output = self._files[kind]
            written = array("q", spans)
            if total:
                begin = next(spans[i] for i in range(0, len(spans), 2) if spans[i + 1])
                end = max(spans[i] + spans[i + 1] for i in range(0, len(spans), 2))
                if end - begin != total:
                    raise MissingIndex(self.previous.root / NAMES[kind], "membres non contigus")  # type: ignore
                shift = output.copy((begin, total))[0] - begin
                for i in range(0, len(written), 2):
                    if written[i + 1]:
                        written[i] += shift
            self.index.spans[kind].extend(written)

    def finish(self, catalog: Catalog) -> None:
        try:
            self._flush_kept()
            if self._run:
                self._close_run()
            self._put("xml", "footer", XML_FOOTER)
            self._put("json", "footer", b"\n]\n" if self.formations else b"]\n")
            self._work.drain()
            for kind, output in self._files.items():
                if kind == "xml" and self.in_xml == 0:
                    # LHEO requires at least one <formation>: no file rather than an invalid one.
                    output.discard()
                    self.index.parts[kind] = {}
                else:
                    output.close()
        finally:
            self.abort()
        for column, kind in enumerate(KINDS):
            self.raw_sizes[kind] += sum(self.index.sizes[column::SIZES])
        self.raw_sizes["json"] += 2 * self.formations - 1 if self.formations else 0  # separators
        self.cache.mkdir(parents=True, exist_ok=True)
        (self.cache / INDEX_NAME).write_bytes(self.index.to_json())
        before = self.previous.root / SCHEMA_NAME if self.previous is not None else None
        if before is not None and before.exists():
            link_file(before, self.root / SCHEMA_NAME)  # the same code and settings: the same schema
        else:
            schema = json.dumps(json_schema(), ensure_ascii=False, indent=2) + "\n"
            (self.root / SCHEMA_NAME).write_bytes(schema.encode("utf-8"))
        (self.root / "index.html").write_bytes(self.page().encode("utf-8"))

    def abort(self) -> None:
        self._work.stop()
        if self._deflater is not None:
            self._deflater.close()
        for output in self._files.values():
            output.release()
        if self.previous is not None:
            self.previous.close()

    def _take(self, ref: str, sizes: Sequence[int], left_out: Optional[str], item: Item, ends: bool) -> None:
        """One formation at the end of the files; ``ends``: ``ends_run(ref)``."""
        index = self.index
        if left_out is None:
            self.in_xml += 1
        else:
            index.left_out[len(index.refs)] = left_out
        index.refs.append(ref)
        index.sizes.extend(sizes)
        self.formations += 1
        self.sessions += sizes[ROWS]
        self._run.append(item)
        if ends or len(self._run) >= RUN_MAX:
            self._close_run()

    def _close_run(self) -> None:
        run, self._run = self._run, []
        first = not self.index.run_ends
        start = len(self.index.refs) - len(run)  # the run's formations are the index's last ones
        sizes = self.index.sizes[SIZES * start :]
        same = None
        if self.previous is not None and all(type(item) is int for item in run):
            same = self.previous.unchanged(run, first)  # type: ignore[arg-type]
        if same is not None:
            self._work.submit(lambda: self._copy_run(same), light=True)
        else:
            members = self._work.compute(lambda: self._members(run, first, sizes))
            self._work.submit(lambda: self._write_members(members()))
        self.index.run_ends.append(len(self.index.refs))

    def _copy_run(self, same: int) -> None:
        """The previous build's run ``same``, unchanged: its members copied (in :class:`FileWork`)."""
        for kind in KINDS:
            span = self.previous.index.span(kind, same)  # type: ignore[union-attr]
            self.index.spans[kind].extend(self._files[kind].copy(span) if span else (0, 0))

    def _members(self, run: list[Item], first: bool, sizes: array) -> list[Optional[bytes]]:
        """The run's gzip member in each file, None where it has no bytes (on a compressing thread:
        reads nothing the build's thread changes, writes nothing)."""
        decompressed: dict = {}
        parts = [self._run_parts(kind, column, run, first, sizes, decompressed) for column, kind in enumerate(KINDS)]
        if self._deflater is not None:
            return self._deflater.members(parts)
        members: list[Optional[bytes]] = []
        for kind_parts in parts:
            data = b"".join(kind_parts)
            members.append(gzip_member(data) if data else None)
        return members

    def _write_members(self, members: list[Optional[bytes]]) -> None:
        for kind, member in zip(KINDS, members):
            self.index.spans[kind].extend(self._files[kind].write(member) if member else (0, 0))

    def _run_parts(self, kind: str, column: int, run: list[Item], first: bool, sizes: array,
                   decompressed: dict) -> list[bytes]:
        """The run's fragments in the export ``kind``, in order: one member holds them, joined, once decompressed."""
        parts = []
        for offset, item in enumerate(run):
            if kind == "json":
                parts.append(json_separator(first, offset))
            if sizes[SIZES * offset + column] == 0:
                continue
            if type(item) is int:
                parts.append(self.previous.fragment(item, kind, decompressed))  # type: ignore[union-attr]
            else:
                parts.append(item[column])  # type: ignore[index]
        return parts

    def _put(self, kind: str, part: str, data: bytes) -> None:
        """A header or footer: the previous build's bytes when they are the same."""
        self.raw_sizes[kind] += len(data)
        self._work.submit(lambda: self._write_part(kind, part, data))

    def _write_part(self, kind: str, part: str, data: bytes) -> None:
        member = gzip_member(data)
        output = self._files[kind]
        span = self.previous.index.parts[kind].get(part) if self.previous is not None else None
        if span is not None and span[1] == len(member) and output.read(tuple(span)) == member:
            self.index.parts[kind][part] = list(output.copy(tuple(span)))
        else:
            self.index.parts[kind][part] = list(output.write(member))


    def files(self) -> list[ExportFile]:
        def size(name: str) -> Optional[int]:
            path = self.root / name
            return path.stat().st_size if path.exists() else None

        formations = _counted(self.formations, "formation", "formations")
        sessions = _counted(self.sessions, "session", "sessions")
        in_xml = _counted(self.in_xml, "formation", "formations")
        raw = self.raw_sizes
        return [
            ExportFile(XML_NAME, f"XML, LHEO {LHEO_VERSION}", size(XML_NAME), in_xml, raw["xml"]),
            ExportFile(JSON_NAME, "JSON", size(JSON_NAME), formations, raw["json"]),
            ExportFile(CSV_NAME, "CSV (tableur)", size(CSV_NAME), f"{sessions} ({formations})", raw["csv"]),
        ]

    def page(self) -> str:
        env = make_environment(self.settings)
        return tidy(
            env.get_template("donnees.html").render(
                files=self.files(),
                schema_url=f"/{DONNEES_DIR}/{SCHEMA_NAME}",
                formations=self.formations,
                archived=self.archived,
                sessions=self.sessions,
                left_out=self.left_out[:LEFT_OUT_SHOWN],
                left_out_count=len(self.left_out),
                today=self.today,
                columns=CSV_COLUMNS,
                licence=LICENCE,
                lheo_url=LHEO_DOC_URL,
                lheo_version=LHEO_VERSION,
                canonical=self.settings.site_url.rstrip("/") + f"/{DONNEES_DIR}/",
                title="Données ouvertes",
                description="Le catalogue complet en téléchargement libre : LHEO 2.3 (XML), JSON et CSV, "
                "compressés (gzip), sous Licence Ouverte 2.0.",
            )
        )

"""Open data: the published catalogue as LHEO 2.3, JSON and CSV, and the page that describes them.

The build's sink ``donnees`` writes into ``site/donnees/``:

- ``catalogue.xml``: LHEO 2.3, one ``<formation>`` per published formation;
- ``catalogue.json``: an array, one item per published formation, one item a line;
- ``catalogue.csv``: one row per LHEO session (dated period), for spreadsheets;
- ``catalogue.schema.json``: the JSON Schema of the items of ``catalogue.json``;
- ``index.html``: the page "Données ouvertes" (files, sizes, counts, licence, columns).

Archived formations are included and flagged, as the site keeps their fiches.
Each formation is written to the three files as it arrives, then dropped; only
counters and the Refs left out of the XML (see below) stay, so memory is flat.
The output depends only on the input, the settings and the build's day.

The model is looser than the LHEO schema in places (a text of 5,000 characters,
a code outside an LHEO table): each ``<formation>`` is checked against the XSD
before it is written, and one that would not validate is left out of
``catalogue.xml`` only (a reuser's validating parser would reject the whole
file), kept in the JSON and the CSV, and listed on the page.
"""

from __future__ import annotations

import csv
import json
import re
from contextlib import ExitStack
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator, Optional

from lxml import etree

from .build import SinkContext, register_sink
from .catalog import Catalog, Entry
from .lheo_export import NAMESPACES, LheoWriter, formation_element
from .model import Adresse, Formation, ModalitesEnseignement, PartialDate, Session
from .regions import Geo
from .render import FINANCEURS, ETATS_RECRUTEMENT, iso_date, make_environment, number, tidy
from .settings import PROJECT_ROOT, Settings

#: Under the site: ``/donnees/``.
DONNEES_DIR = "donnees"
XML_NAME = "catalogue.xml"
JSON_NAME = "catalogue.json"
CSV_NAME = "catalogue.csv"
SCHEMA_NAME = "catalogue.schema.json"

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
CSV_ENCODING = "utf-8-sig"
#: Refs left out of the XML listed one by one on the page; beyond, only their number.
LEFT_OUT_SHOWN = 200


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
    if value is None:
        return ""
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
    organisme = formation.organisme_formation_responsable
    premises = organisme.coordonnees_organisme.adresse if organisme.coordonnees_organisme else None
    cpf_by_certification = any(c.code_cpf for c in formation.certifications)
    for action in formation.actions:
        adresse: Optional[Adresse] = action.lieux_de_formation[0].adresse if action.lieux_de_formation else premises
        region = geo.region_of(adresse)
        codes = (f.code_financeur for f in action.organismes_financeurs)
        financeurs = ", ".join(dict.fromkeys(FINANCEURS.get(code, f"code {code}") for code in codes))
        for session in action.sessions:
            row = (
                formation.numero,
                formation.intitule_formation,
                organisme.nom_organisme,
                organisme.siret_organisme_formation,
                action.numero,
                session.numero,
                session.periode.debut,
                session.periode.fin,
                action.entrees_sorties_permanentes,
                adresse.ville if adresse else None,
                adresse.codepostal if adresse else None,
                geo.departement_of(adresse),
                region,
                geo.regions[region].nom if region in geo.regions else None,
                MODALITES.get(action.modalites_enseignement),
                formation.certifiante,
                bool(session.eligibilite_cpf) or cpf_by_certification,
                action.nombre_heures_total,
                action.prix_total_ttc,
                financeurs,
                _etat(session),
                formation.datemaj,
                entry.archived,
                url,
            )
            yield [_cell(value) for value in row]


def _etat(session: Session) -> Optional[str]:
    label = ETATS_RECRUTEMENT.get(session.etat_recrutement)
    return label.removeprefix("Recrutement ") if label else None


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


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


# --------------------------------------------------------------------------
# The XML: each formation checked against the XSD before it is written
# --------------------------------------------------------------------------

_SAFE_PARSER = dict(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
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
    """The LHEO 2.3 schema, applied to one ``<formation>`` at a time."""

    def __init__(self, xsd: Path = LHEO_XSD):
        parser = etree.XMLParser(**_SAFE_PARSER)
        self.schema = etree.XMLSchema(etree.parse(str(xsd), parser))
        self.parser = etree.XMLParser(**_SAFE_PARSER)
        self.namespace = NAMESPACES[LHEO_VERSION].encode()

    def problem(self, element: etree._Element) -> Optional[str]:
        """Why ``element`` (from :func:`formation_element`, without namespace) would not validate, or ``None``."""
        data = etree.tostring(element, encoding="utf-8")
        # The writer's tags take the document's default namespace; the check gives it to this copy.
        data = data.replace(b"<formation", b'<formation xmlns="' + self.namespace + b'"', 1)
        document = etree.fromstring(data, self.parser)
        if self.schema.validate(document):
            return None
        return _french(self.schema.error_log[0])


def _french(error: Any) -> str:
    element = _ELEMENT_RE.search(error.message or "")
    where = f"<{element.group(1)}>" if element else f"ligne {error.line}"
    what = SCHEMA_ERRORS.get(error.type_name, "non conforme au schéma LHEO 2.3")
    limit = _MAXLENGTH_RE.search(error.message or "")
    if limit and error.type_name == "SCHEMAV_CVC_MAXLENGTH_VALID":
        what += f" ({limit.group(1)} caractères au plus)"
    return f"{where} : {what}"


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

    @property
    def url(self) -> str:
        return f"/{DONNEES_DIR}/{self.name}"

    @property
    def size_text(self) -> str:
        return human_size(self.size) if self.size is not None else "–"


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


@register_sink("donnees")
class DonneesSink:
    """Streams every published formation into the three exports; writes the page at the end."""

    def __init__(self, context: SinkContext):
        self.root = context.staging / "site" / DONNEES_DIR
        self.root.mkdir(parents=True, exist_ok=True)
        self.settings: Settings = context.settings
        self.today = context.today
        self.geo = context.geo
        self.check = SchemaCheck()
        self.formations = 0
        self.archived = 0
        self.sessions = 0
        self.in_xml = 0
        #: (Ref, why) of the formations left out of the XML, in input order.
        self.left_out: list[tuple[str, str]] = []
        self._files = ExitStack()
        try:
            self._xml = self._files.enter_context(LheoWriter(self.root / XML_NAME, LHEO_VERSION))
            self._json = self._files.enter_context(open(self.root / JSON_NAME, "w", encoding="utf-8", newline="\n"))
            self._json.write("[")
            handle = self._files.enter_context(open(self.root / CSV_NAME, "w", encoding=CSV_ENCODING, newline=""))
            self._csv = csv.writer(handle, delimiter=CSV_DELIMITER, lineterminator="\r\n")
            self._csv.writerow([name for name, _ in CSV_COLUMNS])
        except BaseException:
            self._files.close()
            raise

    def add(self, formation: Formation, entry: Entry) -> None:
        url = self.settings.site_url.rstrip("/") + entry.url
        element = formation_element(formation)
        problem = self.check.problem(element)
        if problem is None:
            self._xml.write_element(element)
        else:
            self.left_out.append((entry.ref, problem))
        self._json.write(("\n" if self.formations == 0 else ",\n") + _dumps(json_item(formation, entry, url)))
        rows = list(session_rows(formation, entry, self.geo, url))
        self._csv.writerows(rows)
        self.formations += 1
        self.archived += entry.archived
        self.sessions += len(rows)

    def finish(self, catalog: Catalog) -> None:
        self._json.write("\n]\n" if self.formations else "]\n")
        self.in_xml = self._xml.count
        self._files.close()
        if self.in_xml == 0:
            # LHEO requires at least one <formation>: no file rather than an invalid one.
            (self.root / XML_NAME).unlink()
        schema = json.dumps(json_schema(), ensure_ascii=False, indent=2) + "\n"
        (self.root / SCHEMA_NAME).write_bytes(schema.encode("utf-8"))
        (self.root / "index.html").write_bytes(self.page().encode("utf-8"))

    def files(self) -> list[ExportFile]:
        def size(name: str) -> Optional[int]:
            path = self.root / name
            return path.stat().st_size if path.exists() else None

        formations = _counted(self.formations, "formation", "formations")
        sessions = _counted(self.sessions, "session", "sessions")
        in_xml = _counted(self.in_xml, "formation", "formations")
        return [
            ExportFile(XML_NAME, f"XML, LHEO {LHEO_VERSION}", size(XML_NAME), in_xml),
            ExportFile(JSON_NAME, "JSON", size(JSON_NAME), formations),
            ExportFile(CSV_NAME, "CSV (tableur)", size(CSV_NAME), f"{sessions} ({formations})"),
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
                "sous Licence Ouverte 2.0.",
            )
        )

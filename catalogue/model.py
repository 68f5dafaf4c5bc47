"""The catalogue's model: LHEO's formation > action > session, and the organismes.

Field names are LHEO's element names with ``-`` written ``_`` (``intitule_formation``
for ``<intitule-formation>``), so that an LHEO export, a YAML submission and the
JSON exports all speak the same words. Repeated LHEO elements become plural lists
(``actions``, ``sessions``, ``lieux_de_formation``...).

The model knows no file, no template and no index. Validation errors are
pydantic's; readers turn their ``loc`` into LHEO field paths and line numbers.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, Optional

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
    model_validator,
)
from pydantic_core import PydanticCustomError, core_schema

# --------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------

#: Placeholders that real exports write for "unknown" in secondary fields.
UNKNOWN_TEXT = frozenset({"", "-", "--", "."})
UNKNOWN_POSTCODE = frozenset({"", "-", "0", "00000"})
MAX_TEXT = 20_000


def unknown_to_none(value: Any) -> Any:
    """Read the placeholders of real exports (``-``, empty) as unknown."""
    if isinstance(value, str):
        value = value.strip()
        if value in UNKNOWN_TEXT:
            return None
    return value


#: A string whose surrounding blanks pydantic drops: for the fields no validator of ours strips. Not
#: every string field (``str_strip_whitespace``): pydantic then copies every string it strips, a fifth
#: of a formation's validation for texts ``unknown_to_none`` has stripped already (``str.strip`` drops
#: every blank pydantic's strip would, so the values are the same).
Stripped = Annotated[str, StringConstraints(strip_whitespace=True)]

#: Free text: surrounding blanks dropped, placeholders read as unknown. May hold
#: HTML as text (``<br />``); templates escape it and only turn line breaks back.
Text = Annotated[Optional[Annotated[str, Field(max_length=MAX_TEXT)]], BeforeValidator(unknown_to_none)]


def _required_text(value: Any) -> Any:
    value = unknown_to_none(value)
    if value is None:
        raise PydanticCustomError("missing_text", "valeur obligatoire manquante")
    return value


RequiredText = Annotated[str, BeforeValidator(_required_text), Field(max_length=MAX_TEXT)]


def _bool_flag(value: Any) -> Any:
    """LHEO writes booleans as ``0``/``1``; YAML authors write oui/non or true/false."""
    if isinstance(value, str):
        if value == "0":  # what nearly every LHEO flag holds, answered before the folding
            return False
        if value == "1":
            return True
        folded = value.strip().lower()
        if folded in {"1", "oui", "true", "vrai"}:
            return True
        if folded in {"0", "non", "false", "faux"}:
            return False
    return value


Flag = Annotated[bool, BeforeValidator(_bool_flag)]


# --------------------------------------------------------------------------
# Identifiers: every path under BUILD/ is made from one of these, so they are strict.
# --------------------------------------------------------------------------

REF_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,79}$"
_REF_RE = re.compile(REF_PATTERN)


def check_ref(value: Any) -> Any:
    """An opaque LHEO numero, safe to use as one path segment."""
    if not isinstance(value, str):
        return value
    value = value.strip()
    if not value:
        raise PydanticCustomError("missing_ref", "numéro manquant")
    if len(value) > 80:
        raise PydanticCustomError("ref_too_long", "numéro trop long ({length} caractères, 80 au plus)", {"length": len(value)})
    if not _REF_RE.match(value) or ".." in value:
        raise PydanticCustomError(
            "ref_chars",
            "numéro invalide {value} : seuls les lettres, chiffres, « _ », « - » et « . » sont admis",
            {"value": repr(value[:80])},
        )
    return value


#: A formation, action or session numero (``15_AF_0000910001``).
Ref = Annotated[str, BeforeValidator(check_ref)]


def luhn_ok(digits: str) -> bool:
    """The Luhn check that SIREN and SIRET numbers carry in their last digit."""
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c)
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _siret_check_digit_ok(siret: str) -> bool:
    """Luhn check; La Poste's establishments (SIREN 356000000) sum their digits to a multiple of 5."""
    if siret.startswith("356000000"):
        return sum(int(c) for c in siret) % 5 == 0
    return luhn_ok(siret)


def check_siret(value: Any) -> Any:
    if isinstance(value, int):
        value = f"{value:014d}"
    if not isinstance(value, str):
        return value
    value = re.sub(r"[\s.]", "", value)
    if not re.fullmatch(r"\d{14}", value):
        raise PydanticCustomError(
            "siret_format", "SIRET invalide {value} : 14 chiffres attendus", {"value": repr(value[:40])}
        )
    if not _siret_check_digit_ok(value):
        raise PydanticCustomError("siret_key", "SIRET invalide {value} : clé de contrôle fausse", {"value": repr(value)})
    return value


#: A SIRET: 14 digits whose check digit holds (spaces and dots are dropped).
Siret = Annotated[str, BeforeValidator(check_siret)]


# --------------------------------------------------------------------------
# LHEO dates
# --------------------------------------------------------------------------


class PartialDate:
    """An LHEO date ``AAAAMMJJ``, where ``AAAAMM00`` is a month and ``AAAA0000`` a year.

    The unknowns ``00000000`` and ``99999999`` are read as ``None`` by the
    validator, never as a ``PartialDate``. Accepts ``AAAAMMJJ``, ``AAAA-MM-JJ``
    and :class:`datetime.date`; serialises to ``AAAAMMJJ``.
    """

    #: ``text``: the ``AAAAMMJJ`` form, made once (a date is never changed): the serialiser, ``==`` and
    #: ``hash`` ask for it at every use, some twenty times per formation in a build.
    __slots__ = ("year", "month", "day", "text")

    def __init__(self, year: int, month: int = 0, day: int = 0):
        if not 1 <= year <= 9998:
            raise ValueError(f"année impossible : {year}")
        if not 0 <= month <= 12:
            raise ValueError(f"mois impossible : {month:02d}")
        if month == 0 and day:
            raise ValueError("jour donné sans mois")
        if day and not 1 <= day <= calendar.monthrange(year, month)[1]:
            raise ValueError(f"jour impossible : {day:02d}/{month:02d}/{year}")
        if day < 0:
            raise ValueError(f"jour impossible : {day}")
        self.year, self.month, self.day = year, month, day
        self.text = f"{year:04d}{month:02d}{day:02d}"

    @classmethod
    def parse(cls, value: Any) -> Optional["PartialDate"]:
        if value is None or isinstance(value, PartialDate):
            return value
        if isinstance(value, dt.datetime):
            value = value.date()
        if isinstance(value, dt.date):
            return cls(value.year, value.month, value.day)
        if isinstance(value, int):
            value = str(value)
        if not isinstance(value, str):
            raise ValueError("date attendue (AAAAMMJJ)")
        text = value.strip()
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            text = text.replace("-", "")
        if not re.fullmatch(r"\d{8}", text):
            raise ValueError(f"date invalide {text[:20]!r} : AAAAMMJJ attendu")
        if text in ("00000000", "99999999"):
            return None
        return cls(int(text[:4]), int(text[4:6]), int(text[6:]))

    @property
    def is_full(self) -> bool:
        return bool(self.day)

    def earliest(self) -> dt.date:
        return dt.date(self.year, self.month or 1, self.day or 1)

    def latest(self) -> dt.date:
        month = self.month or 12
        return dt.date(self.year, month, self.day or calendar.monthrange(self.year, month)[1])

    def lheo(self) -> str:
        return self.text

    def french(self) -> str:
        """``JJ/MM/AAAA``, ``MM/AAAA`` or ``AAAA``."""
        if self.day:
            return f"{self.day:02d}/{self.month:02d}/{self.year:04d}"
        if self.month:
            return f"{self.month:02d}/{self.year:04d}"
        return f"{self.year:04d}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PartialDate) and self.text == other.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"PartialDate({self.text})"

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        def validate(value: Any) -> Optional[PartialDate]:
            if type(value) is cls:  # the LHEO reader's dates (parse() would return it as is)
                return value
            try:
                return cls.parse(value)
            except ValueError as exc:
                raise PydanticCustomError("lheo_date", str(exc)) from None

        return core_schema.no_info_plain_validator_function(
            validate,
            serialization=core_schema.plain_serializer_function_ser_schema(_lheo_text),
        )

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: GetJsonSchemaHandler) -> dict:
        return {
            "type": "string",
            "pattern": r"^(\d{8}|\d{4}-\d{2}-\d{2})$",
            "description": "Date LHEO AAAAMMJJ (AAAAMM00 : mois seul, AAAA0000 : année seule, "
            "00000000 / 99999999 : inconnue), ou AAAA-MM-JJ.",
        }


def _lheo_text(date: Optional[PartialDate]) -> Optional[str]:
    return date.text if date else None


LheoDate = Optional[PartialDate]


def _full_date(value: Optional[PartialDate]) -> Optional[PartialDate]:
    if value is not None and not value.is_full:
        raise PydanticCustomError("partial_date", "date complète (jour, mois, année) attendue")
    return value


#: A date that must be a real day (``datemaj``).
FullDate = Annotated[Optional[PartialDate], AfterValidator(_full_date)]


# --------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------


class LheoModel(BaseModel):
    """Base of every model: unknown keys are errors (a typo in YAML must not vanish)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Geolocalisation(LheoModel):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)


def _postcode(value: Any) -> Any:
    if isinstance(value, int):
        value = f"{value:05d}"
    if isinstance(value, str) and value.strip() in UNKNOWN_POSTCODE:
        return None
    return value


class Adresse(LheoModel):
    """A postal address; ``region`` is as written, often a pre-2016 code (see :mod:`catalogue.regions`)."""

    denomination: Text = None
    lignes: list[Annotated[Stripped, Field(max_length=500)]] = Field(default_factory=list, max_length=4)
    codepostal: Annotated[Optional[Annotated[Stripped, Field(pattern=r"^\d[0-9AB]\d{3}$")]], BeforeValidator(_postcode)] = None
    ville: Text = None
    departement: Annotated[Optional[Annotated[str, Field(pattern=r"^(\d{2,3}|2[AB])$")]], BeforeValidator(unknown_to_none)] = None
    code_insee_commune: Annotated[
        Optional[Annotated[str, Field(pattern=r"^(\d{5}|2[AB]\d{3})$")]], BeforeValidator(unknown_to_none)
    ] = None
    region: Annotated[Optional[Annotated[str, Field(pattern=r"^\d{2,3}$")]], BeforeValidator(unknown_to_none)] = None
    pays: Text = None
    geolocalisation: Optional[Geolocalisation] = None

    @property
    def is_located(self) -> bool:
        """Enough to find the place: a postal code and a town."""
        return bool(self.codepostal and self.ville)


class Coordonnees(LheoModel):
    """Contact details: a person or a place, its address, phones, e-mail and web sites."""

    civilite: Text = None
    nom: Text = None
    prenom: Text = None
    lignes: list[Stripped] = Field(default_factory=list, max_length=3)
    adresse: Optional[Adresse] = None
    telfixe: list[Stripped] = Field(default_factory=list)
    portable: list[Stripped] = Field(default_factory=list)
    fax: list[Stripped] = Field(default_factory=list)
    courriel: Text = None
    web: list[Stripped] = Field(default_factory=list)


class Periode(LheoModel):
    """A dated period; ``None`` is an unknown start (``00000000``) or end (``99999999``)."""

    debut: LheoDate = None
    fin: LheoDate = None

    @model_validator(mode="after")
    def _ends_after_start(self) -> "Periode":
        if self.debut and self.fin and self.fin.latest() < self.debut.earliest():
            raise PydanticCustomError(
                "periode_order",
                "la fin ({fin}) précède le début ({debut})",
                {"fin": self.fin.french(), "debut": self.debut.french()},
            )
        return self


class EligibiliteCpf(LheoModel):
    """One ``<extras info="eligibilite-cpf">`` of a session: a CPF list that includes it."""

    numero: Text = None
    source: Text = None
    debut_validite: LheoDate = None
    fin_validite: LheoDate = None


class Session(LheoModel):
    """LHEO ``<session>``: the dated period of an action (the Carif's "session" is the action)."""

    numero: Optional[Ref] = None
    datecrea: LheoDate = None
    datemaj: LheoDate = None
    periode: Periode
    adresse_inscription: Optional[Adresse] = None
    periode_inscription: Optional[Periode] = None
    etat_recrutement: Optional[int] = Field(default=None, ge=1, le=3)
    eligibilite_cpf: list[EligibiliteCpf] = Field(default_factory=list)


class OrganismeFinanceur(LheoModel):
    code_financeur: Stripped = Field(pattern=r"^\d{1,2}$")
    nb_places_financees: Optional[int] = Field(default=None, ge=0)


class OrganismeFormateur(LheoModel):
    numero: Optional[Ref] = None
    siret_formateur: Optional[Siret] = None
    raison_sociale_formateur: Text = None
    contact_formateur: list[Coordonnees] = Field(default_factory=list)


class ModalitesEnseignement(int, Enum):
    """LHEO dictionary ``dict-modalites-enseignement``."""

    PRESENTIEL = 0
    MIXTE = 1
    DISTANCE = 2


class Action(LheoModel):
    """LHEO ``<action>``, the Carif's "session": where, how, for whom, financed by whom."""

    numero: Optional[Ref] = None
    datecrea: LheoDate = None
    datemaj: LheoDate = None
    rythme_formation: Text = None
    code_public_vise: list[Stripped] = Field(default_factory=list)
    info_public_vise: Text = None
    niveau_entree_obligatoire: Optional[Flag] = None
    modalites_alternance: Text = None
    modalites_enseignement: Optional[ModalitesEnseignement] = None
    conditions_specifiques: Text = None
    prise_en_charge_frais_possible: Optional[Flag] = None
    #: Empty: the action takes place in the organisme's premises.
    lieux_de_formation: list[Coordonnees] = Field(default_factory=list)
    #: ``True`` for entrées/sorties permanentes (LHEO ``modalites-entrees-sorties`` = 1).
    entrees_sorties_permanentes: Flag = False
    url_action: list[Stripped] = Field(default_factory=list)
    sessions: list[Session] = Field(min_length=1)
    adresse_information: Optional[Adresse] = None
    restauration: Text = None
    hebergement: Text = None
    transport: Text = None
    acces_handicapes: Text = None
    langue_formation: list[Stripped] = Field(default_factory=list)
    modalites_recrutement: Text = None
    modalites_pedagogiques: Text = None
    code_modalite_pedagogique: list[Stripped] = Field(default_factory=list)
    frais_restants: Text = None
    prix_horaire_ttc: Optional[Decimal] = Field(default=None, ge=0)
    prix_total_ttc: Optional[Decimal] = Field(default=None, ge=0)
    duree_indicative: Text = None
    nombre_heures_centre: Optional[int] = Field(default=None, ge=0)
    nombre_heures_entreprise: Optional[int] = Field(default=None, ge=0)
    nombre_heures_total: Optional[int] = Field(default=None, ge=0)
    detail_conditions_prise_en_charge: Text = None
    conventionnement: Optional[Flag] = None
    duree_conventionnee: Optional[int] = Field(default=None, ge=0)
    organismes_formateurs: list[OrganismeFormateur] = Field(default_factory=list)
    organismes_financeurs: list[OrganismeFinanceur] = Field(default_factory=list)

    @model_validator(mode="after")
    def _outside_premises_needs_address(self) -> "Action":
        for i, lieu in enumerate(self.lieux_de_formation, start=1):
            if lieu.adresse is None or not lieu.adresse.is_located:
                raise PydanticCustomError(
                    "lieu_sans_adresse",
                    "lieu de formation n°{i} hors des locaux de l'organisme sans adresse "
                    "(code postal et ville requis)",
                    {"i": i},
                )
        return self


class Certification(LheoModel):
    code_rncp: Optional[Stripped] = Field(default=None, pattern=r"^(RNCP)?\d{1,6}$")
    code_rs: Optional[Stripped] = Field(default=None, pattern=r"^(RS)?\d{1,6}$")
    code_certifinfo: Optional[Stripped] = Field(default=None, pattern=r"^\d{1,7}$")
    code_cpf: Optional[Stripped] = None


class OrganismeFormationResponsable(LheoModel):
    """The organisme answerable for the formation; its SIRET names its page."""

    numero: Optional[Ref] = None
    numero_activite: Text = None
    siret_organisme_formation: Siret
    nom_organisme: RequiredText
    raison_sociale: RequiredText
    coordonnees_organisme: Optional[Coordonnees] = None
    contact_organisme: list[Coordonnees] = Field(default_factory=list)
    renseignements_specifiques: Text = None


class Formation(LheoModel):
    """LHEO ``<formation>``: the Carif's "action de formation", one fiche, one Ref."""

    numero: Ref
    datecrea: LheoDate = None
    datemaj: FullDate
    intitule_formation: RequiredText
    objectif_formation: Text = None
    resultats_attendus: Text = None
    contenu_formation: Text = None
    certifiante: Flag = False
    code_formacode: list[Stripped] = Field(default_factory=list)
    code_formacode_principal: Optional[Stripped] = None
    code_nsf: list[Stripped] = Field(default_factory=list)
    code_rome: list[Annotated[Stripped, Field(pattern=r"^[A-N]\d{4}$")]] = Field(default_factory=list)
    contact_formation: list[Coordonnees] = Field(default_factory=list)
    parcours_de_formation: Optional[int] = None
    code_niveau_entree: Optional[int] = None
    objectif_general_formation: Optional[int] = None
    certifications: list[Certification] = Field(default_factory=list)
    code_niveau_sortie: Optional[int] = None
    url_formation: list[Stripped] = Field(default_factory=list)
    actions: list[Action] = Field(min_length=1)
    organisme_formation_responsable: OrganismeFormationResponsable

    # -- derived views, used by rules, templates and the index -------------

    @property
    def sessions(self) -> list[Session]:
        return [s for a in self.actions for s in a.sessions]

    @property
    def eligible_cpf(self) -> bool:
        """CPF-eligible when a session carries an ``eligibilite-cpf`` extra, or a certification a CPF code."""
        return any(s.eligibilite_cpf for s in self.sessions) or any(c.code_cpf for c in self.certifications)

    @property
    def a_distance(self) -> bool:
        return any(a.modalites_enseignement is ModalitesEnseignement.DISTANCE for a in self.actions)

    @property
    def entrees_sorties_permanentes(self) -> bool:
        return any(a.entrees_sorties_permanentes for a in self.actions)


class Statut(str, Enum):
    """Workflow of a YAML submission; every formation of an LHEO export is ``validee``."""

    BROUILLON = "brouillon"
    PROPOSEE = "proposee"
    VALIDEE = "validee"
    REFUSEE = "refusee"

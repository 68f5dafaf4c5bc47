"""Write formations as an LHEO document (2.3 by default, or 2.2), streaming.

Elements come in the order the LHEO schema demands (``data/lheo-2.3.xsd``), so
that a 2.3 document validates. Where the model has no value for an element the
schema requires, the writer puts the placeholder that real exports use (see
:data:`PLACEHOLDERS`). The reader reads ``-``, ``00000`` (postal code),
``00000000`` and ``99999999`` back as unknown, so writing then reading gives back
the same :class:`~catalogue.model.Formation`; enumerations and flags have no
unknown value in LHEO, so an unknown one comes back as its written default.

The writer never drops data: a value the model accepts but the schema bounds
more tightly (a text over 3,000 characters, a sixth FORMACODE) is written as is,
and that one document would not validate.

Memory stays constant: each formation is built as a small tree, serialised
through :func:`lxml.etree.xmlfile`, then dropped. :class:`LheoWriter` writes a
document one formation at a time (for the build's sinks); :func:`write_lheo` is
the same writer over an iterable.
"""

from __future__ import annotations

from contextlib import ExitStack
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import BinaryIO, Iterable, Optional, Union

from lxml import etree

from .model import (
    Action,
    Adresse,
    Certification,
    Coordonnees,
    EligibiliteCpf,
    Formation,
    OrganismeFinanceur,
    OrganismeFormateur,
    OrganismeFormationResponsable,
    PartialDate,
    Periode,
    Session,
)

NAMESPACES = {
    "2.2": "http://www.lheo.org/2.2",
    "2.3": "http://lheo.gouv.fr/2.3",
}

#: What is written for a required LHEO element the model leaves unknown.
#: Enumerations have no "unknown" value: their LHEO default is written.
PLACEHOLDERS = {
    "text": "-",
    "codepostal": "00000",
    "debut": "00000000",
    "fin": "99999999",
    "numero-activite": "00000000000",
    "SIRET": "00000000000000",
    "code-public-vise": "00000",
    "parcours-de-formation": "1",  # en groupe
    "code-niveau-entree": "0",  # information non communiquée
    "modalites-enseignement": "0",  # présentiel
    "flag": "0",
}

_Element = etree._Element


def write_lheo(
    formations: Iterable[Formation], out: Union[BinaryIO, Path], version: str = "2.3"
) -> int:
    """Write ``formations`` to ``out`` (a path or a binary file); return how many were written."""
    with LheoWriter(out, version) as writer:
        for formation in formations:
            writer.write(formation)
    return writer.count


class LheoWriter:
    """An LHEO document written one formation at a time, for callers fed formation by formation.

    ::

        with LheoWriter(path) as writer:
            writer.write(formation)   # as many times as needed

    ``out`` is a path (opened, then closed on exit) or a binary file (left open).
    The document is complete once the ``with`` block is left; :func:`write_lheo`
    is this class over an iterable.
    """

    def __init__(self, out: Union[BinaryIO, Path], version: str = "2.3"):
        try:
            self.namespace = NAMESPACES[version]
        except KeyError:
            raise ValueError(f"version LHEO inconnue : {version!r} (2.2 ou 2.3)") from None
        self.out = out
        self.count = 0
        self._stack: Optional[ExitStack] = None
        self._xf = None

    def __enter__(self) -> "LheoWriter":
        if self._stack is not None:
            raise RuntimeError("LheoWriter déjà ouvert")
        with ExitStack() as stack:
            out = self.out
            if isinstance(out, (str, Path)):
                out = stack.enter_context(open(out, "wb"))
            xf = stack.enter_context(etree.xmlfile(out, encoding="utf-8"))
            xf.write_declaration()
            namespace = self.namespace
            stack.enter_context(xf.element(f"{{{namespace}}}lheo", nsmap={None: namespace}))
            # Callbacks run last-registered first: each closing tag gets its line break.
            stack.callback(xf.write, "\n")
            xf.write("\n  ")
            stack.enter_context(xf.element(f"{{{namespace}}}offres"))
            stack.callback(xf.write, "\n  ")
            self._xf = xf
            self._stack = stack.pop_all()
        return self

    def write(self, formation: Formation) -> None:
        self.write_element(formation_element(formation))

    def write_element(self, element: _Element) -> None:
        """Write one ``<formation>`` made by :func:`formation_element` (for a caller that checks it first)."""
        if self._xf is None:
            raise RuntimeError("LheoWriter.write hors du bloc « with »")
        etree.indent(element, space="  ", level=2)
        self._xf.write("\n    ")
        # The tree's tags carry no namespace: written inside <lheo xmlns="...">,
        # they take the default namespace, without a declaration on each formation.
        self._xf.write(element)
        self.count += 1

    def __exit__(self, *exc_info) -> bool:
        stack, self._stack, self._xf = self._stack, None, None
        return stack.__exit__(*exc_info) if stack is not None else False


# --------------------------------------------------------------------------
# Small builders
# --------------------------------------------------------------------------


def _sub(parent: _Element, tag: str, text: Optional[str] = None, attrs: Optional[dict] = None) -> _Element:
    element = etree.SubElement(parent, tag, attrs) if attrs else etree.SubElement(parent, tag)
    if text is not None:
        element.text = text
    return element


def _opt(parent: _Element, tag: str, value: object) -> None:
    """An optional element: written only when the value is known."""
    if value is not None:
        _sub(parent, tag, _str(value))


def _req(parent: _Element, tag: str, value: Optional[str]) -> None:
    """A required text element: the LHEO placeholder when unknown."""
    _sub(parent, tag, value if value is not None else PLACEHOLDERS["text"])


def _str(value: object) -> str:
    if type(value) is str:  # most values: the fast path
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, PartialDate):
        return value.lheo()
    if isinstance(value, Enum):  # ModalitesEnseignement
        return str(value.value)
    return str(value)


def _flag(parent: _Element, tag: str, value: Optional[bool]) -> None:
    _sub(parent, tag, _str(value) if value is not None else PLACEHOLDERS["flag"])


def _dated(numero: Optional[str], datecrea: Optional[PartialDate], datemaj: Optional[PartialDate]) -> dict:
    attrs = {}
    if numero is not None:
        attrs["numero"] = numero
    if datecrea is not None:
        attrs["datecrea"] = datecrea.lheo()
    if datemaj is not None:
        attrs["datemaj"] = datemaj.lheo()
    return attrs


def _urls(parent: _Element, tag: str, urls: list[str]) -> None:
    if urls:
        container = _sub(parent, tag)
        for url in urls:
            _sub(container, "urlweb", url)


# --------------------------------------------------------------------------
# Addresses and contacts
# --------------------------------------------------------------------------


def _adresse(parent: _Element, adresse: Optional[Adresse]) -> None:
    """``<adresse>``: ligne, codepostal and ville are required, so placeholders stand in."""
    element = _sub(parent, "adresse")
    if adresse is None:
        adresse = Adresse()
    _opt(element, "denomination", adresse.denomination)
    for ligne in adresse.lignes or [PLACEHOLDERS["text"]]:
        _sub(element, "ligne", ligne)
    _sub(element, "codepostal", adresse.codepostal or PLACEHOLDERS["codepostal"])
    _req(element, "ville", adresse.ville)
    _opt(element, "departement", adresse.departement)
    _opt(element, "code-INSEE-commune", adresse.code_insee_commune)
    _opt(element, "region", adresse.region)
    _opt(element, "pays", adresse.pays)
    if adresse.geolocalisation is not None:
        geoloc = _sub(element, "geolocalisation")
        _sub(geoloc, "latitude", repr(adresse.geolocalisation.latitude))
        _sub(geoloc, "longitude", repr(adresse.geolocalisation.longitude))


def _phones(parent: _Element, tag: str, numbers: list[str]) -> None:
    if numbers:
        container = _sub(parent, tag)
        for number in numbers:
            _sub(container, "numtel", number)


def _coordonnees(parent: _Element, coordonnees: Optional[Coordonnees]) -> None:
    element = _sub(parent, "coordonnees")
    if coordonnees is None:
        return
    _opt(element, "civilite", coordonnees.civilite)
    _opt(element, "nom", coordonnees.nom)
    _opt(element, "prenom", coordonnees.prenom)
    for ligne in coordonnees.lignes:
        _sub(element, "ligne", ligne)
    if coordonnees.adresse is not None:
        _adresse(element, coordonnees.adresse)
    _phones(element, "telfixe", coordonnees.telfixe)
    _phones(element, "portable", coordonnees.portable)
    _phones(element, "fax", coordonnees.fax)
    _opt(element, "courriel", coordonnees.courriel)
    _urls(element, "web", coordonnees.web)


def _contacts(parent: _Element, tag: str, contacts: list[Coordonnees], required: bool) -> None:
    """``<contact-...><coordonnees>``, once per contact; an empty one when required and none is known."""
    if not contacts and required:
        contacts = [None]  # type: ignore[list-item]
    for contact in contacts:
        _coordonnees(_sub(parent, tag), contact)


def _periode(parent: _Element, periode: Optional[Periode]) -> None:
    element = _sub(parent, "periode")
    debut = periode.debut if periode else None
    fin = periode.fin if periode else None
    _sub(element, "debut", debut.lheo() if debut else PLACEHOLDERS["debut"])
    _sub(element, "fin", fin.lheo() if fin else PLACEHOLDERS["fin"])


# --------------------------------------------------------------------------
# Formation > action > session
# --------------------------------------------------------------------------


def formation_element(formation: Formation) -> _Element:
    """One ``<formation>`` (tags without namespace; the enclosing document gives it)."""
    f = formation
    element = etree.Element("formation", _dated(f.numero, f.datecrea, f.datemaj))
    _domaine(element, f)
    _sub(element, "intitule-formation", f.intitule_formation)
    _req(element, "objectif-formation", f.objectif_formation)
    _req(element, "resultats-attendus", f.resultats_attendus)
    _req(element, "contenu-formation", f.contenu_formation)
    _sub(element, "certifiante", _str(f.certifiante))
    _contacts(element, "contact-formation", f.contact_formation, required=True)
    _sub(
        element,
        "parcours-de-formation",
        _str(f.parcours_de_formation) if f.parcours_de_formation is not None else PLACEHOLDERS["parcours-de-formation"],
    )
    _sub(
        element,
        "code-niveau-entree",
        _str(f.code_niveau_entree) if f.code_niveau_entree is not None else PLACEHOLDERS["code-niveau-entree"],
    )
    _opt(element, "objectif-general-formation", f.objectif_general_formation)
    for certification in f.certifications:
        _certification(element, certification)
    _opt(element, "code-niveau-sortie", f.code_niveau_sortie)
    _urls(element, "url-formation", f.url_formation)
    for action in f.actions:
        _action(element, action)
    _organisme_responsable(element, f.organisme_formation_responsable)
    return element


def _domaine(parent: _Element, f: Formation) -> None:
    element = _sub(parent, "domaine-formation")
    codes = list(f.code_formacode)
    if f.code_formacode_principal and f.code_formacode_principal not in codes:
        codes.insert(0, f.code_formacode_principal)
    for code in codes:
        if code == f.code_formacode_principal:
            _sub(element, "code-FORMACODE", code, {"tag": "principal"})
        else:
            _sub(element, "code-FORMACODE", code)
    for code in f.code_nsf:
        _sub(element, "code-NSF", code)
    for code in f.code_rome:
        _sub(element, "code-ROME", code)


def _certification(parent: _Element, certification: Certification) -> None:
    element = _sub(parent, "certification")
    _opt(element, "code-RNCP", certification.code_rncp)
    _opt(element, "code-CERTIFINFO", certification.code_certifinfo)
    _opt(element, "code-RS", certification.code_rs)
    _opt(element, "code-CPF", certification.code_cpf)


def _action(parent: _Element, a: Action) -> None:
    element = _sub(parent, "action", attrs=_dated(a.numero, a.datecrea, a.datemaj))
    _req(element, "rythme-formation", a.rythme_formation)
    for code in a.code_public_vise or [PLACEHOLDERS["code-public-vise"]]:
        _sub(element, "code-public-vise", code)
    _opt(element, "info-public-vise", a.info_public_vise)
    _flag(element, "niveau-entree-obligatoire", a.niveau_entree_obligatoire)
    _req(element, "modalites-alternance", a.modalites_alternance)
    _sub(
        element,
        "modalites-enseignement",
        _str(a.modalites_enseignement)
        if a.modalites_enseignement is not None
        else PLACEHOLDERS["modalites-enseignement"],
    )
    _req(element, "conditions-specifiques", a.conditions_specifiques)
    _flag(element, "prise-en-charge-frais-possible", a.prise_en_charge_frais_possible)
    for lieu in a.lieux_de_formation:
        _coordonnees(_sub(element, "lieu-de-formation"), lieu)
    _sub(element, "modalites-entrees-sorties", _str(a.entrees_sorties_permanentes))
    _urls(element, "url-action", a.url_action)
    for session in a.sessions:
        _session(element, session)
    if a.adresse_information is not None:
        _adresse(_sub(element, "adresse-information"), a.adresse_information)
    _opt(element, "restauration", a.restauration)
    _opt(element, "hebergement", a.hebergement)
    _opt(element, "transport", a.transport)
    _opt(element, "acces-handicapes", a.acces_handicapes)
    for langue in a.langue_formation:
        _sub(element, "langue-formation", langue)
    _opt(element, "modalites-recrutement", a.modalites_recrutement)
    _opt(element, "modalites-pedagogiques", a.modalites_pedagogiques)
    for code in a.code_modalite_pedagogique:
        _sub(element, "code-modalite-pedagogique", code)
    _opt(element, "frais-restants", a.frais_restants)
    _opt(element, "prix-horaire-TTC", a.prix_horaire_ttc)
    _opt(element, "prix-total-TTC", a.prix_total_ttc)
    _opt(element, "duree-indicative", a.duree_indicative)
    _opt(element, "nombre-heures-centre", a.nombre_heures_centre)
    _opt(element, "nombre-heures-entreprise", a.nombre_heures_entreprise)
    _opt(element, "nombre-heures-total", a.nombre_heures_total)
    _opt(element, "detail-conditions-prise-en-charge", a.detail_conditions_prise_en_charge)
    _opt(element, "conventionnement", a.conventionnement)
    _opt(element, "duree-conventionnee", a.duree_conventionnee)
    for formateur in a.organismes_formateurs:
        _organisme_formateur(element, formateur)
    for financeur in a.organismes_financeurs:
        _organisme_financeur(element, financeur)


def _session(parent: _Element, s: Session) -> None:
    element = _sub(parent, "session", attrs=_dated(s.numero, s.datecrea, s.datemaj))
    _periode(element, s.periode)
    _adresse(_sub(element, "adresse-inscription"), s.adresse_inscription)
    if s.periode_inscription is not None:
        _periode(_sub(element, "periode-inscription"), s.periode_inscription)
    _opt(element, "etat-recrutement", s.etat_recrutement)
    for eligibilite in s.eligibilite_cpf:
        _eligibilite_cpf(element, eligibilite)


def _eligibilite_cpf(parent: _Element, e: EligibiliteCpf) -> None:
    attrs = {"info": "eligibilite-cpf"}
    if e.numero is not None:
        attrs["numero"] = e.numero
    extras = _sub(parent, "extras", attrs=attrs)
    for info, value in (("source", e.source), ("debut-validite", e.debut_validite), ("fin-validite", e.fin_validite)):
        if value is not None:
            _sub(extras, "extra", _str(value), {"info": info})


def _organisme_formateur(parent: _Element, o: OrganismeFormateur) -> None:
    element = _sub(parent, "organisme-formateur", attrs={"numero": o.numero} if o.numero else None)
    _sub(_sub(element, "SIRET-formateur"), "SIRET", o.siret_formateur or PLACEHOLDERS["SIRET"])
    _req(element, "raison-sociale-formateur", o.raison_sociale_formateur)
    _contacts(element, "contact-formateur", o.contact_formateur, required=False)


def _organisme_financeur(parent: _Element, o: OrganismeFinanceur) -> None:
    element = _sub(parent, "organisme-financeur")
    _sub(element, "code-financeur", o.code_financeur)
    _opt(element, "nb-places-financees", o.nb_places_financees)


def _organisme_responsable(parent: _Element, o: OrganismeFormationResponsable) -> None:
    element = _sub(parent, "organisme-formation-responsable", attrs={"numero": o.numero} if o.numero else None)
    _sub(element, "numero-activite", o.numero_activite or PLACEHOLDERS["numero-activite"])
    _sub(_sub(element, "SIRET-organisme-formation"), "SIRET", o.siret_organisme_formation)
    _sub(element, "nom-organisme", o.nom_organisme)
    _sub(element, "raison-sociale", o.raison_sociale)
    _coordonnees(_sub(element, "coordonnees-organisme"), o.coordonnees_organisme)
    _contacts(element, "contact-organisme", o.contact_organisme, required=True)
    _opt(element, "renseignements-specifiques", o.renseignements_specifiques)

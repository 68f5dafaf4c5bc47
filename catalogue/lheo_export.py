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
document one formation at a time; :func:`write_lheo` is the same writer over an
iterable. The build's open-data export writes the same ``<formation>`` without a
tree, with :class:`FragmentWriter` (see there).
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


# --------------------------------------------------------------------------
# The fast writer: the same <formation> as text, without a tree
# --------------------------------------------------------------------------
#
# The build's open-data export writes every formation as LHEO and must leave out any that
# would not validate. Building an lxml tree, checking it against the XSD and serialising it
# cost about a millisecond a formation; :class:`FragmentWriter` writes the same bytes as
# :func:`formation_element` then ``xml_fragment`` (``catalogue.exports``) straight into
# strings, in a tenth of the time, checking each value as it goes against the rules the
# XSD gives its element (:class:`LeafRules`, derived from the XSD by ``catalogue.exports``).
# Whatever it cannot vouch for (a value beyond a rule, a type it does not expect, a
# character XML cannot hold), it does not decide: it raises :class:`Unsure` and the caller
# takes the slow path (the tree and the XSD), which gives the exact verdict and message.
# Tests compare both paths, byte for byte and verdict for verdict, on generated and
# hostile formations.


class Unsure(Exception):
    """The fast writer cannot vouch for this formation: build the tree and ask the XSD."""


#: By element name, what the XSD accepts as its text: (least length, greatest length, a further test or None).
#: A further test must take no text holding ``&``, ``<``, ``>`` or a carriage return (written unescaped).
TextRules = dict
#: By (parent name, child name), the least and greatest count of the child in the parent.
OccursRules = dict

#: UTF-8 bytes of the characters lxml refuses in a text (ValueError): C0 controls but tab, line feed, carriage
#: return. (U+FFFE and U+FFFF, refused too, are looked for in the text; surrogates cannot be encoded.)
_CONTROLS = bytes(range(0x20)).translate(None, b"\t\n\r")
_NOT_CONTROLS = bytes(byte for byte in range(256) if byte not in _CONTROLS)
_INDENTS = tuple("\n" + "  " * depth for depth in range(32))


def _text(value: str) -> str:
    """A text as libxml2 writes it in an element."""
    if "&" in value:
        value = value.replace("&", "&amp;")
    if "<" in value:
        value = value.replace("<", "&lt;")
    if ">" in value:
        value = value.replace(">", "&gt;")
    if "\r" in value:
        value = value.replace("\r", "&#13;")
    return value


_ATTR_ESCAPES = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"), ("\n", "&#10;"), ("\r", "&#13;"),
                 ("\t", "&#9;"))


def _attr(value: object) -> str:
    """An attribute's value as libxml2 writes it between double quotes."""
    if type(value) is not str:
        raise Unsure
    for char, escaped in _ATTR_ESCAPES:
        if char in value:
            value = value.replace(char, escaped)
    return value


class FragmentWriter:
    """``<formation>`` as the export's XML holds it (on its own line, at depth 2), checked as it is written.

    :meth:`fragment` returns its UTF-8 bytes or raises :class:`Unsure`. ``text_rules`` gives, by
    element name, what the XSD's type of that element accepts; ``occurs`` the bounds of a child's
    count in its parent. An element missing from either table is never vouched for.
    """

    def __init__(self, text_rules: TextRules, occurs: OccursRules):
        self.text_rules = text_rules
        self.occurs = occurs
        self._rule = text_rules.get
        #: (parent, child) pairs where the child may be left out.
        self.optional = frozenset(pair for pair, (low, _) in occurs.items() if low == 0)

    def fragment(self, formation: Formation) -> bytes:
        out: list[str] = []
        self._formation(out, formation)
        text = "".join(out)
        if "\ufffe" in text or "\uffff" in text:
            raise Unsure
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:  # a surrogate
            raise Unsure from None
        if data.translate(None, _NOT_CONTROLS):
            raise Unsure
        return data

    # -- primitives ------------------------------------------------------------------

    def _check(self, tag: str, text: object) -> None:
        """Raise :class:`Unsure` unless ``text`` is a string the XSD accepts in ``tag``."""
        rule = self.text_rules.get(tag)
        if (
            rule is None
            or type(text) is not str
            or not rule[0] <= len(text) <= rule[1]
            or (rule[2] is not None and not rule[2](text))
        ):
            raise Unsure

    def _leaf(self, out: list, depth: int, tag: str, text: object) -> None:
        """``<tag>text</tag>``, the text checked against the element's rule."""
        rule = self._rule(tag)
        if rule is None or type(text) is not str or not rule[0] <= len(text) <= rule[1]:
            raise Unsure
        if rule[2] is None:
            text = _text(text)
        elif not rule[2](text):
            raise Unsure
        # else an enumeration, a pattern or a number: the rules take no text with a character to escape there.
        out.append(f"{_INDENTS[depth]}<{tag}>{text}</{tag}>")

    def _count(self, parent: str, child: str, count: int) -> None:
        low, high = self.occurs.get((parent, child), _NO_BOUNDS)
        if not low <= count <= high:
            raise Unsure

    def _opt(self, out: list, depth: int, parent: str, tag: str, value: object) -> None:
        """An optional element: written as :meth:`_leaf` when the value is known, else allowed out."""
        if value is None:
            if (parent, tag) not in self.optional:
                raise Unsure
            return
        self._leaf(out, depth, tag, value if type(value) is str else _str(value))

    def _absent(self, parent: str, tag: str) -> None:
        if (parent, tag) not in self.optional:
            raise Unsure

    def _req(self, out: list, depth: int, tag: str, value: object) -> None:
        self._leaf(out, depth, tag, value if value is not None else PLACEHOLDERS["text"])

    def _flag(self, out: list, depth: int, tag: str, value: Optional[bool]) -> None:
        self._leaf(out, depth, tag, _str(value) if value is not None else PLACEHOLDERS["flag"])

    def _open(self, out: list, depth: int, tag: str, attrs: str = "") -> int:
        """Open ``tag`` (``attrs``: already written, each with its leading space); where it was written."""
        out.append(f"{_INDENTS[depth]}<{tag}{attrs}>")
        return len(out)

    @staticmethod
    def _close(out: list, depth: int, tag: str, opened: int) -> None:
        """Close ``tag``: ``<tag/>`` when nothing was written inside, as libxml2 writes an empty element."""
        if len(out) == opened:
            out[-1] = out[-1][:-1] + "/>"
        else:
            out.append(f"{_INDENTS[depth]}</{tag}>")

    @staticmethod
    def _dated(numero: Optional[str], datecrea: Optional[PartialDate], datemaj: Optional[PartialDate]) -> str:
        attrs = ""
        if numero is not None:
            attrs = f' numero="{_attr(numero)}"'
        if datecrea is not None:
            attrs += f' datecrea="{datecrea.lheo()}"'
        if datemaj is not None:
            attrs += f' datemaj="{datemaj.lheo()}"'
        return attrs

    def _urls(self, out: list, depth: int, parent: str, tag: str, urls: list) -> None:
        if not urls:
            self._absent(parent, tag)
            return
        self._count(tag, "urlweb", len(urls))
        opened = self._open(out, depth, tag)
        for url in urls:
            self._leaf(out, depth + 1, "urlweb", url)
        self._close(out, depth, tag, opened)

    # -- addresses and contacts ----------------------------------------------------------

    def _adresse(self, out: list, depth: int, adresse: Optional[Adresse]) -> None:
        if adresse is None:
            adresse = _NO_ADRESSE
        opened = self._open(out, depth, "adresse")
        inner = depth + 1
        self._opt(out, inner, "adresse", "denomination", adresse.denomination)
        lignes = adresse.lignes or _PLACEHOLDER_LIGNES
        self._count("adresse", "ligne", len(lignes))
        for ligne in lignes:
            self._leaf(out, inner, "ligne", ligne)
        self._leaf(out, inner, "codepostal", adresse.codepostal or PLACEHOLDERS["codepostal"])
        self._req(out, inner, "ville", adresse.ville)
        self._opt(out, inner, "adresse", "departement", adresse.departement)
        self._opt(out, inner, "adresse", "code-INSEE-commune", adresse.code_insee_commune)
        self._opt(out, inner, "adresse", "region", adresse.region)
        self._opt(out, inner, "adresse", "pays", adresse.pays)
        geolocalisation = adresse.geolocalisation
        if geolocalisation is not None:
            geo_opened = self._open(out, inner, "geolocalisation")
            self._leaf(out, inner + 1, "latitude", repr(geolocalisation.latitude))
            self._leaf(out, inner + 1, "longitude", repr(geolocalisation.longitude))
            self._close(out, inner, "geolocalisation", geo_opened)
        else:
            self._absent("adresse", "geolocalisation")
        self._close(out, depth, "adresse", opened)

    def _phones(self, out: list, depth: int, tag: str, numbers: list) -> None:
        if not numbers:
            self._absent("coordonnees", tag)
            return
        self._count(tag, "numtel", len(numbers))
        opened = self._open(out, depth, tag)
        for number in numbers:
            self._leaf(out, depth + 1, "numtel", number)
        self._close(out, depth, tag, opened)

    def _coordonnees(self, out: list, depth: int, coordonnees: Optional[Coordonnees]) -> None:
        opened = self._open(out, depth, "coordonnees")
        if coordonnees is not None:
            c = coordonnees
            inner = depth + 1
            self._opt(out, inner, "coordonnees", "civilite", c.civilite)
            self._opt(out, inner, "coordonnees", "nom", c.nom)
            self._opt(out, inner, "coordonnees", "prenom", c.prenom)
            self._count("coordonnees", "ligne", len(c.lignes))
            for ligne in c.lignes:
                self._leaf(out, inner, "ligne", ligne)
            if c.adresse is not None:
                self._adresse(out, inner, c.adresse)
            else:
                self._absent("coordonnees", "adresse")
            self._phones(out, inner, "telfixe", c.telfixe)
            self._phones(out, inner, "portable", c.portable)
            self._phones(out, inner, "fax", c.fax)
            self._opt(out, inner, "coordonnees", "courriel", c.courriel)
            self._urls(out, inner, "coordonnees", "web", c.web)
        else:
            for child in _COORDONNEES_CHILDREN:
                self._absent("coordonnees", child)
        self._close(out, depth, "coordonnees", opened)

    def _wrapped_coordonnees(self, out: list, depth: int, tag: str, coordonnees: Optional[Coordonnees]) -> None:
        """``<tag><coordonnees>...</coordonnees></tag>``."""
        opened = self._open(out, depth, tag)
        self._coordonnees(out, depth + 1, coordonnees)
        self._close(out, depth, tag, opened)

    def _contacts(self, out: list, depth: int, parent: str, tag: str, contacts: list, required: bool) -> None:
        if not contacts and required:
            contacts = [None]
        self._count(parent, tag, len(contacts))
        for contact in contacts:
            self._wrapped_coordonnees(out, depth, tag, contact)

    def _periode(self, out: list, depth: int, periode: Optional[Periode]) -> None:
        debut = periode.debut if periode else None
        fin = periode.fin if periode else None
        debut = debut.lheo() if debut else PLACEHOLDERS["debut"]
        fin = fin.lheo() if fin else PLACEHOLDERS["fin"]
        self._check("debut", debut)
        self._check("fin", fin)
        inner = _INDENTS[depth + 1]
        out.append(f"{_INDENTS[depth]}<periode>{inner}<debut>{debut}</debut>{inner}<fin>{fin}</fin>{_INDENTS[depth]}</periode>")

    # -- formation > action > session --------------------------------------------------------

    def _formation(self, out: list, f: Formation) -> None:
        opened = self._open(out, 2, "formation", self._dated(f.numero, f.datecrea, f.datemaj))
        self._domaine(out, 3, f)
        self._leaf(out, 3, "intitule-formation", f.intitule_formation)
        self._req(out, 3, "objectif-formation", f.objectif_formation)
        self._req(out, 3, "resultats-attendus", f.resultats_attendus)
        self._req(out, 3, "contenu-formation", f.contenu_formation)
        self._leaf(out, 3, "certifiante", _str(f.certifiante))
        self._contacts(out, 3, "formation", "contact-formation", f.contact_formation, required=True)
        parcours = f.parcours_de_formation
        self._leaf(
            out, 3, "parcours-de-formation",
            _str(parcours) if parcours is not None else PLACEHOLDERS["parcours-de-formation"],
        )
        niveau = f.code_niveau_entree
        self._leaf(
            out, 3, "code-niveau-entree", _str(niveau) if niveau is not None else PLACEHOLDERS["code-niveau-entree"]
        )
        self._opt(out, 3, "formation", "objectif-general-formation", f.objectif_general_formation)
        self._count("formation", "certification", len(f.certifications))
        for certification in f.certifications:
            self._certification(out, 3, certification)
        self._opt(out, 3, "formation", "code-niveau-sortie", f.code_niveau_sortie)
        self._urls(out, 3, "formation", "url-formation", f.url_formation)
        self._count("formation", "action", len(f.actions))
        for action in f.actions:
            self._action(out, 3, action)
        self._organisme_responsable(out, 3, f.organisme_formation_responsable)
        self._close(out, 2, "formation", opened)

    def _domaine(self, out: list, depth: int, f: Formation) -> None:
        opened = self._open(out, depth, "domaine-formation")
        inner = depth + 1
        principal = f.code_formacode_principal
        codes = list(f.code_formacode)
        if principal and principal not in codes:
            codes.insert(0, principal)
        self._count("domaine-formation", "code-FORMACODE", len(codes))
        for code in codes:
            if code == principal:
                self._check("code-FORMACODE", code)
                out.append(f'{_INDENTS[inner]}<code-FORMACODE tag="principal">{_text(code)}</code-FORMACODE>')
            else:
                self._leaf(out, inner, "code-FORMACODE", code)
        self._count("domaine-formation", "code-NSF", len(f.code_nsf))
        for code in f.code_nsf:
            self._leaf(out, inner, "code-NSF", code)
        self._count("domaine-formation", "code-ROME", len(f.code_rome))
        for code in f.code_rome:
            self._leaf(out, inner, "code-ROME", code)
        self._close(out, depth, "domaine-formation", opened)

    def _certification(self, out: list, depth: int, c: Certification) -> None:
        opened = self._open(out, depth, "certification")
        inner = depth + 1
        self._opt(out, inner, "certification", "code-RNCP", c.code_rncp)
        self._opt(out, inner, "certification", "code-CERTIFINFO", c.code_certifinfo)
        self._opt(out, inner, "certification", "code-RS", c.code_rs)
        self._opt(out, inner, "certification", "code-CPF", c.code_cpf)
        self._close(out, depth, "certification", opened)

    def _action(self, out: list, depth: int, a: Action) -> None:
        opened = self._open(out, depth, "action", self._dated(a.numero, a.datecrea, a.datemaj))
        d = depth + 1
        self._req(out, d, "rythme-formation", a.rythme_formation)
        publics = a.code_public_vise or _PLACEHOLDER_PUBLICS
        self._count("action", "code-public-vise", len(publics))
        for code in publics:
            self._leaf(out, d, "code-public-vise", code)
        self._opt(out, d, "action", "info-public-vise", a.info_public_vise)
        self._flag(out, d, "niveau-entree-obligatoire", a.niveau_entree_obligatoire)
        self._req(out, d, "modalites-alternance", a.modalites_alternance)
        modalites = a.modalites_enseignement
        self._leaf(
            out, d, "modalites-enseignement",
            _str(modalites) if modalites is not None else PLACEHOLDERS["modalites-enseignement"],
        )
        self._req(out, d, "conditions-specifiques", a.conditions_specifiques)
        self._flag(out, d, "prise-en-charge-frais-possible", a.prise_en_charge_frais_possible)
        self._count("action", "lieu-de-formation", len(a.lieux_de_formation))
        for lieu in a.lieux_de_formation:
            self._wrapped_coordonnees(out, d, "lieu-de-formation", lieu)
        self._leaf(out, d, "modalites-entrees-sorties", _str(a.entrees_sorties_permanentes))
        self._urls(out, d, "action", "url-action", a.url_action)
        self._count("action", "session", len(a.sessions))
        for session in a.sessions:
            self._session(out, d, session)
        if a.adresse_information is not None:
            info_opened = self._open(out, d, "adresse-information")
            self._adresse(out, d + 1, a.adresse_information)
            self._close(out, d, "adresse-information", info_opened)
        else:
            self._absent("action", "adresse-information")
        self._opt(out, d, "action", "restauration", a.restauration)
        self._opt(out, d, "action", "hebergement", a.hebergement)
        self._opt(out, d, "action", "transport", a.transport)
        self._opt(out, d, "action", "acces-handicapes", a.acces_handicapes)
        self._count("action", "langue-formation", len(a.langue_formation))
        for langue in a.langue_formation:
            self._leaf(out, d, "langue-formation", langue)
        self._opt(out, d, "action", "modalites-recrutement", a.modalites_recrutement)
        self._opt(out, d, "action", "modalites-pedagogiques", a.modalites_pedagogiques)
        self._count("action", "code-modalite-pedagogique", len(a.code_modalite_pedagogique))
        for code in a.code_modalite_pedagogique:
            self._leaf(out, d, "code-modalite-pedagogique", code)
        self._opt(out, d, "action", "frais-restants", a.frais_restants)
        self._opt(out, d, "action", "prix-horaire-TTC", a.prix_horaire_ttc)
        self._opt(out, d, "action", "prix-total-TTC", a.prix_total_ttc)
        self._opt(out, d, "action", "duree-indicative", a.duree_indicative)
        self._opt(out, d, "action", "nombre-heures-centre", a.nombre_heures_centre)
        self._opt(out, d, "action", "nombre-heures-entreprise", a.nombre_heures_entreprise)
        self._opt(out, d, "action", "nombre-heures-total", a.nombre_heures_total)
        self._opt(out, d, "action", "detail-conditions-prise-en-charge", a.detail_conditions_prise_en_charge)
        self._opt(out, d, "action", "conventionnement", a.conventionnement)
        self._opt(out, d, "action", "duree-conventionnee", a.duree_conventionnee)
        self._count("action", "organisme-formateur", len(a.organismes_formateurs))
        for formateur in a.organismes_formateurs:
            self._organisme_formateur(out, d, formateur)
        self._count("action", "organisme-financeur", len(a.organismes_financeurs))
        for financeur in a.organismes_financeurs:
            opened_financeur = self._open(out, d, "organisme-financeur")
            self._leaf(out, d + 1, "code-financeur", financeur.code_financeur)
            self._opt(out, d + 1, "organisme-financeur", "nb-places-financees", financeur.nb_places_financees)
            self._close(out, d, "organisme-financeur", opened_financeur)
        self._close(out, depth, "action", opened)

    def _session(self, out: list, depth: int, s: Session) -> None:
        opened = self._open(out, depth, "session", self._dated(s.numero, s.datecrea, s.datemaj))
        d = depth + 1
        self._periode(out, d, s.periode)
        inscription = self._open(out, d, "adresse-inscription")
        self._adresse(out, d + 1, s.adresse_inscription)
        self._close(out, d, "adresse-inscription", inscription)
        if s.periode_inscription is not None:
            periode = self._open(out, d, "periode-inscription")
            self._periode(out, d + 1, s.periode_inscription)
            self._close(out, d, "periode-inscription", periode)
        else:
            self._absent("session", "periode-inscription")
        self._opt(out, d, "session", "etat-recrutement", s.etat_recrutement)
        self._count("session", "extras", len(s.eligibilite_cpf))
        for e in s.eligibilite_cpf:
            attrs = ' info="eligibilite-cpf"'
            if e.numero is not None:
                attrs += f' numero="{_attr(e.numero)}"'
            extras = self._open(out, d, "extras", attrs)
            self._count("extras", "extra", sum(value is not None for value in (e.source, e.debut_validite,
                                                                               e.fin_validite)))
            for info, value in (("source", e.source), ("debut-validite", e.debut_validite),
                                ("fin-validite", e.fin_validite)):
                if value is not None:
                    text = _str(value)
                    self._check("extra", text)
                    out.append(f'{_INDENTS[d + 1]}<extra info="{info}">{_text(text)}</extra>')
            self._close(out, d, "extras", extras)
        self._close(out, depth, "session", opened)

    def _organisme_formateur(self, out: list, depth: int, o: OrganismeFormateur) -> None:
        attrs = f' numero="{_attr(o.numero)}"' if o.numero else ""
        opened = self._open(out, depth, "organisme-formateur", attrs)
        d = depth + 1
        siret = self._open(out, d, "SIRET-formateur")
        self._leaf(out, d + 1, "SIRET", o.siret_formateur or PLACEHOLDERS["SIRET"])
        self._close(out, d, "SIRET-formateur", siret)
        self._req(out, d, "raison-sociale-formateur", o.raison_sociale_formateur)
        self._contacts(out, d, "organisme-formateur", "contact-formateur", o.contact_formateur, required=False)
        self._close(out, depth, "organisme-formateur", opened)

    def _organisme_responsable(self, out: list, depth: int, o: OrganismeFormationResponsable) -> None:
        attrs = f' numero="{_attr(o.numero)}"' if o.numero else ""
        opened = self._open(out, depth, "organisme-formation-responsable", attrs)
        d = depth + 1
        self._leaf(out, d, "numero-activite", o.numero_activite or PLACEHOLDERS["numero-activite"])
        siret = self._open(out, d, "SIRET-organisme-formation")
        self._leaf(out, d + 1, "SIRET", o.siret_organisme_formation)
        self._close(out, d, "SIRET-organisme-formation", siret)
        self._leaf(out, d, "nom-organisme", o.nom_organisme)
        self._leaf(out, d, "raison-sociale", o.raison_sociale)
        self._wrapped_coordonnees(out, d, "coordonnees-organisme", o.coordonnees_organisme)
        self._contacts(out, d, "organisme-formation-responsable", "contact-organisme", o.contact_organisme,
                       required=True)
        self._opt(out, d, "organisme-formation-responsable", "renseignements-specifiques",
                  o.renseignements_specifiques)
        self._close(out, depth, "organisme-formation-responsable", opened)


_NO_BOUNDS = (1.0, 0.0)  # no count fits
_NO_ADRESSE = Adresse()
_PLACEHOLDER_LIGNES = [PLACEHOLDERS["text"]]
_PLACEHOLDER_PUBLICS = [PLACEHOLDERS["code-public-vise"]]
#: What an unknown <coordonnees> leaves out.
_COORDONNEES_CHILDREN = ("civilite", "nom", "prenom", "ligne", "adresse", "telfixe", "portable", "fax", "courriel",
                         "web")

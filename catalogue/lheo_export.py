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

import math
from contextlib import ExitStack, contextmanager
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Optional, Union

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
    kind = type(value)
    if kind is str:  # most values: the fast path
        return value
    if kind is int:  # hours, prices' counts, codes: not a bool nor an enumeration (subclasses of int)
        return str(value)
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
# strings, in under a tenth of the time, checking each value as it goes against the rules the
# XSD gives its element (``SchemaRules``, derived from the XSD by ``catalogue.exports``).
# Its functions are Python source written from those rules when it is made (:class:`_WriterSource`),
# each check with its bounds as constants: the rules are the XSD's, read at run time, and a
# formation is a hundred small elements, for which generic calls cost as much again as the work.
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
    # Most values (numeros) hold none of them: tested at once, without the loop's steps.
    if ("&" in value or "<" in value or ">" in value or '"' in value or "\n" in value or "\r" in value
            or "\t" in value):
        for char, escaped in _ATTR_ESCAPES:
            if char in value:
                value = value.replace(char, escaped)
    return value


class FragmentWriter:
    """``<formation>`` as the export's XML holds it (on its own line, at depth 2), checked as it is written.

    :meth:`fragment` returns its UTF-8 bytes or raises :class:`Unsure`. ``text_rules`` gives, by
    element name, what the XSD's type of that element accepts; ``occurs`` the bounds of a child's
    count in its parent. An element missing from either table is never vouched for.

    The writer is Python source made once from those rules (:class:`_WriterSource`; ``source`` holds
    it): one function a structure (``<adresse>`` at a given depth, ``<action>``...), each element's
    checks written out with its rule's bounds as constants, each element's tags and indentation as
    string constants. Written as generic calls a leaf (a rule looked up, a call, the checks, a
    format), the writer cost nearly twice as much: most of a formation is a hundred such leaves.
    The functions of the structures the LHEO reader shares between formations (:data:`SHARED_KINDS`)
    remember their text per object (:class:`Shared`): the whole formation's text is
    still checked as a whole each time (:meth:`fragment`).
    """

    def __init__(self, text_rules: TextRules, occurs: OccursRules):
        self.text_rules = text_rules
        self.occurs = occurs
        #: (parent, child) pairs where the child may be left out.
        self.optional = frozenset(pair for pair, (low, _) in occurs.items() if low == 0)
        source = _WriterSource(text_rules, occurs, self.optional)
        self.source = source.text()
        namespace = source.namespace
        exec(compile(self.source, "<FragmentWriter>", "exec"), namespace)  # noqa: S102 - our own source
        for (kind, _depth), name in source.functions.items():
            if kind in SHARED_KINDS:
                namespace[name] = _by_identity(namespace[name])
        self._formation: Callable[[Formation], str] = namespace[source.root]

    def fragment(self, formation: Formation) -> bytes:
        text = self._formation(formation)
        if "\ufffe" in text or "\uffff" in text:
            raise Unsure
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:  # a surrogate
            raise Unsure from None
        if data.translate(None, _NOT_CONTROLS):
            raise Unsure
        return data


#: The structures the LHEO reader gives as one shared object wherever their bytes repeat (an organisme, its
#: address, the places of its sessions, a certification: ``sources.lheo._validated``): their text is written
#: once per object.
SHARED_KINDS = frozenset({"organisme_responsable", "organisme_formateur", "adresse", "certification"})
#: Objects remembered per :class:`Shared`; beyond, it starts again (formations come grouped by organisme).
SHARED_MAX = 4096


class Shared:
    """What was made from an object, by its id, for objects the LHEO reader shares (``sources.lheo._validated``).

    Sound because the models are frozen and each object is kept while what was made from it is: no other
    object can have its id meanwhile. What is made is kept by id and the objects in a list: a tuple per object
    would be one more object for the garbage collector to walk, whose full collections grow with every object
    that lives on.
    """

    __slots__ = ("_made", "_kept", "get")

    def __init__(self) -> None:
        self._made: dict[int, Any] = {}
        self._kept: list[Any] = []
        #: What was made from the object of this id, or None.
        self.get = self._made.get

    def add(self, value: Any, made: Any) -> Any:
        if len(self._kept) >= SHARED_MAX:  # (not len(_made): a None made is added again at each call)
            self._made.clear()
            self._kept.clear()
        self._made[id(value)] = made
        self._kept.append(value)
        return made


def _by_identity(function: Callable[[Any], str]) -> Callable[[Any], str]:
    """``function`` remembering its text per object (:class:`Shared`). An object that raises is not kept."""
    shared = Shared()
    get, add = shared.get, shared.add

    def cached(value: Any) -> str:
        text = get(id(value))
        if text is None:
            text = add(value, function(value))
        return text

    return cached


def _dated_attrs(numero: Optional[str], datecrea: Optional[PartialDate], datemaj: Optional[PartialDate]) -> str:
    """The attributes ``numero``, ``datecrea``, ``datemaj`` as written, each with its leading space."""
    attrs = ""
    if numero is not None:
        attrs = f' numero="{_attr(numero)}"'
    if datecrea is not None:
        attrs += f' datecrea="{datecrea.lheo()}"'
    if datemaj is not None:
        attrs += f' datemaj="{datemaj.lheo()}"'
    return attrs


def _fstring(*parts: Union[str, tuple[str]]) -> str:
    """The source of an f-string: each part a literal text (tags, indentation), or a 1-tuple holding an expression
    (a name or a call, without quotes nor backslashes)."""
    source = []
    for part in parts:
        if isinstance(part, tuple):
            source.append("{" + part[0] + "}")
        else:
            for char, escaped in (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"),
                                  ("{", "{{"), ("}", "}}")):
                part = part.replace(char, escaped)
            source.append(part)
    return 'f"' + "".join(source) + '"'


def _whole(bound: float) -> bool:
    return isinstance(bound, (int, float)) and math.isfinite(bound) and float(bound).is_integer()


class _Code:
    """The lines of one function being written, at the current indentation."""

    def __init__(self, header: str):
        self.lines = [header]
        self.level = 1

    def __call__(self, line: str) -> None:
        self.lines.append("    " * self.level + line)

    @contextmanager
    def block(self, header: str) -> Iterator[None]:
        self(header)
        self.level += 1
        try:
            yield
        finally:
            self.level -= 1


class _WriterSource:
    """The source of :class:`FragmentWriter`'s functions, for the given rules.

    Each ``_leaf``-like method writes the lines that check a value as :meth:`_checks` says and set a
    local variable to the element's text, or to ``""`` for an element left out. The checks are
    those of the rules, at the element's place: a text element without a rule, a child without
    bounds in its parent, a required child absent, each raises :class:`Unsure` where it is met
    (the line is ``raise Unsure``). Where an element is empty, ``<tag/>`` is written, as libxml2 does.
    """

    def __init__(self, text_rules: TextRules, occurs: OccursRules, optional: frozenset):
        self.rules = text_rules
        self.occurs = occurs
        self.optional = optional
        self.namespace: dict[str, Any] = {
            "Unsure": Unsure, "_str": _str, "_text": _text, "_attr": _attr, "_dated": _dated_attrs,
            "_NO_ADRESSE": _NO_ADRESSE, "_PLACEHOLDER_LIGNES": _PLACEHOLDER_LIGNES,
            "_PLACEHOLDER_PUBLICS": _PLACEHOLDER_PUBLICS,
        }
        #: The name of each function, by (kind, depth).
        self.functions: dict[tuple[str, int], str] = {}
        #: Variables set only to an element, wherever they are set (a container holding one is never empty).
        #: Added by the methods that set them unconditionally; a variable that may be "" is never one.
        self.nonempty: set[str] = set()
        self._sources: list[str] = []
        self._names = 0
        self.root = self.function("formation", 2)

    def text(self) -> str:
        return "\n\n".join(self._sources) + "\n"

    def function(self, kind: str, depth: int) -> str:
        """The name of the function writing ``kind`` at ``depth`` (written now if it is not yet)."""
        key = (kind, depth)
        if key not in self.functions:
            name = self.functions[key] = f"{kind}_{depth}"
            code = getattr(self, "_" + kind)(name, depth)
            self._sources.append("\n".join(code.lines))
        return self.functions[key]

    def var(self, hint: str = "v") -> str:
        self._names += 1
        return f"{hint}{self._names}"

    def constant(self, value: Any) -> str:
        """A name for ``value`` in the functions' namespace (a test, a set...)."""
        name = f"K{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def bounds(self, number: str, low: float, high: float) -> Optional[str]:
        """The condition under which ``number`` (a length or a count, whole and >= 0) is not within [low, high];
        None when it always is. Written as short as the bounds allow: whole numbers, an unbounded maximum."""
        if not (_whole(low) and (_whole(high) or high == _UNBOUNDED)):
            return f"not {self.constant(low)} <= {number} <= {self.constant(high)}"  # as the rule says, whatever it is
        low, high = int(low), high if high == _UNBOUNDED else int(high)
        if low == high:
            return f"{number} != {low}"
        if low > 0 and high < _UNBOUNDED:
            return f"not {low} <= {number} <= {high}"
        if low > 0:
            return f"{number} < {low}"
        if high < _UNBOUNDED:
            return f"{number} > {high}"
        return None

    # -- the checks -----------------------------------------------------------------------

    def _checks(self, tag: str, v: str, typed: bool = False) -> Optional[str]:
        """The condition under which the text in ``v`` does not fit ``tag``'s rule; None: no rule, nothing fits.
        ``typed``: ``v`` is known to be a str."""
        rule = self.rules.get(tag)
        if rule is None:
            return None
        low, high, test = rule
        conditions = [] if typed else [f"type({v}) is not str"]
        length = self.bounds(f"len({v})", low, high)
        if length is not None:
            conditions.append(length)
        if test is not None:
            values = getattr(test, "__self__", None)
            if type(values) is frozenset and getattr(test, "__name__", None) == "__contains__":
                conditions.append(f"{v} not in {self.constant(values)}")  # an enumeration: `in`, not a call
            else:
                conditions.append(f"not {self.constant(test)}({v})")
        return " or ".join(conditions) or "False"

    def check(self, code: _Code, tag: str, v: str) -> None:
        """Raise Unsure unless the text in ``v`` fits ``tag``'s rule (nothing escaped)."""
        condition = self._checks(tag, v)
        code("raise Unsure" if condition is None else f"if {condition}: raise Unsure")

    def _static(self, depth: int, tag: str, text: str) -> Optional[str]:
        """The element holding the constant ``text`` (a placeholder), checked now; None if it does not fit."""
        rule = self.rules.get(tag)
        if rule is None or not rule[0] <= len(text) <= rule[1]:
            return None
        if rule[2] is None:
            text = _text(text)
        elif not rule[2](text):
            return None
        return f"{_INDENTS[depth]}<{tag}>{text}</{tag}>"

    def _set_static(self, code: _Code, depth: int, tag: str, text: str, x: str) -> None:
        element = self._static(depth, tag, text)
        code("raise Unsure" if element is None else f"{x} = {element!r}")

    def leaf_var(self, code: _Code, depth: int, tag: str, v: str, x: str, typed: bool = False) -> None:
        """``x`` = ``<tag>v</tag>``, ``v`` checked and escaped (as ``_leaf``); ``typed``: ``v`` is a str."""
        condition = self._checks(tag, v, typed)
        if condition is None:
            code("raise Unsure")
            return
        if condition != "False":
            code(f"if {condition}: raise Unsure")
        if self.rules[tag][2] is None:
            # Else an enumeration, a pattern or a number: the rules take no text with a character to escape.
            code(f'if "&" in {v} or "<" in {v} or ">" in {v} or "\\r" in {v}: {v} = _text({v})')
        code(f"{x} = {_fstring(_INDENTS[depth], '<', tag, '>', (v,), '</', tag, '>')}")

    def leaf(self, code: _Code, depth: int, tag: str, expr: str, convert: bool = False) -> str:
        """A variable holding the element whose text is ``expr`` (a string expected; ``convert``: through ``_str``)."""
        v, x = self.var(), self.var("x")
        code(f"{v} = {expr}")
        if convert:
            code(f"{v} = {_STR.format(v=v)}")
        self.leaf_var(code, depth, tag, v, x)
        self.nonempty.add(x)
        return x

    def opt(self, code: _Code, depth: int, parent: str, tag: str, expr: str) -> str:
        """An optional element: written when ``expr`` is not None (converted by ``_str``), else left out."""
        v, x = self.var(), self.var("x")
        code(f"{v} = {expr}")
        with code.block(f"if {v} is None:"):
            code(f'{x} = ""' if (parent, tag) in self.optional else "raise Unsure")
        with code.block("else:"):
            with code.block(f"if type({v}) is not str:"):
                code(f"{v} = {_STR.format(v=v)}")
                code(f"if type({v}) is not str: raise Unsure")
            self.leaf_var(code, depth, tag, v, x, typed=True)
        return x

    def req(self, code: _Code, depth: int, tag: str, expr: str, placeholder: str = PLACEHOLDERS["text"],
            convert: bool = False) -> str:
        """A required element: ``placeholder`` when ``expr`` is None; ``convert``: the value through ``_str``."""
        v, x = self.var(), self.var("x")
        code(f"{v} = {expr}")
        with code.block(f"if {v} is None:"):
            self._set_static(code, depth, tag, placeholder, x)
        with code.block("else:"):
            if convert:
                code(f"{v} = {_STR.format(v=v)}")
            self.leaf_var(code, depth, tag, v, x)
        self.nonempty.add(x)  # in both branches
        return x

    def leaves(self, code: _Code, depth: int, tag: str, items: str) -> str:
        """The elements ``tag``, one per text of the list ``items``."""
        v, x, y = self.var(), self.var("x"), self.var("x")
        code(f'{x} = ""')
        with code.block(f"for {v} in {items}:"):
            self.leaf_var(code, depth, tag, v, y)
            code(f"{x} += {y}")
        return x

    def count(self, code: _Code, parent: str, child: str, count: str) -> None:
        """Raise Unsure unless ``count`` children ``child`` fit in ``parent``."""
        bounds = self.occurs.get((parent, child))
        if bounds is None:
            code("raise Unsure")
            return
        condition = self.bounds(count, *bounds)
        if condition is not None:
            code(f"if {condition}: raise Unsure")

    def absent(self, code: _Code, parent: str, tag: str, x: Optional[str] = None) -> None:
        """``tag`` left out of ``parent``: Unsure unless the XSD allows it; ``x`` (if any) = ``""``."""
        if (parent, tag) not in self.optional:
            code("raise Unsure")
        elif x is not None:
            code(f'{x} = ""')

    def container(self, code: _Code, depth: int, tag: str, parts: list[str], x: str, attrs: Optional[str] = None) -> None:
        """``x`` = ``<tag attrs>parts</tag>``, or ``<tag attrs/>`` when the parts are all empty."""
        attributes = () if attrs is None else ((attrs,),)
        if any(part in self.nonempty for part in parts):
            inside = [(part,) for part in parts]
            code(f"{x} = {_fstring(_INDENTS[depth], '<', tag, *attributes, '>', *inside, _INDENTS[depth], '</', tag, '>')}")
            return
        inner = self.var("inner")
        code(f"{inner} = " + ("f'" + "".join(f"{{{part}}}" for part in parts) + "'" if len(parts) > 1 else parts[0]))
        start, end = f"{_INDENTS[depth]}<{tag}", f"{_INDENTS[depth]}</{tag}>"
        if attrs is None:
            code(f"{x} = {start + '>'!r} + {inner} + {end!r} if {inner} else {start + '/>'!r}")
        else:
            code(f"{x} = {start!r} + {attrs} + '>' + {inner} + {end!r} if {inner} else {start!r} + {attrs} + '/>'")

    def wrapped(self, code: _Code, depth: int, tag: str, kind: str, expr: str, x: str) -> None:
        """``x`` = ``<tag>`` holding what the function of ``kind`` writes one level deeper (never empty: the caller
        adds ``x`` to :attr:`nonempty` where it sets it unconditionally)."""
        function = self.function(kind, depth + 1)
        start, end = _INDENTS[depth] + "<" + tag + ">", _INDENTS[depth] + "</" + tag + ">"
        code(f"{x} = {_fstring(start, (f'{function}({expr})',), end)}")

    def urls(self, code: _Code, depth: int, parent: str, tag: str, expr: str, child: str = "urlweb") -> str:
        """``<tag>`` holding a ``child`` per text of the list ``expr``; left out when it is empty."""
        items, x = self.var("items"), self.var("x")
        code(f"{items} = {expr}")
        with code.block(f"if not {items}:"):
            self.absent(code, parent, tag, x)
        with code.block("else:"):
            self.count(code, tag, child, f"len({items})")
            inner = self.leaves(code, depth + 1, child, items)
            self.container(code, depth, tag, [inner], x)
        return x

    def contacts(self, code: _Code, depth: int, parent: str, tag: str, expr: str, required: bool) -> str:
        """``<tag><coordonnees>...`` once per contact; one with an empty ``<coordonnees/>`` when required and none."""
        contacts, contact, x = self.var("contacts"), self.var("contact"), self.var("x")
        code(f"{contacts} = {expr}")
        if required:
            code(f"if not {contacts}: {contacts} = [None]")
        self.count(code, parent, tag, f"len({contacts})")
        code(f'{x} = ""')
        with code.block(f"for {contact} in {contacts}:"):
            y = self.var("x")
            self.wrapped(code, depth, tag, "coordonnees", contact, y)
            code(f"{x} += {y}")
        return x

    def periode(self, code: _Code, depth: int, expr: str) -> str:
        p, debut, fin, x = self.var("p"), self.var("debut"), self.var("fin"), self.var("x")
        code(f"{p} = {expr}")
        code(f"{debut} = {p}.debut if {p} else None")
        code(f"{fin} = {p}.fin if {p} else None")
        code(f"{debut} = {debut}.lheo() if {debut} else {PLACEHOLDERS['debut']!r}")
        code(f"{fin} = {fin}.lheo() if {fin} else {PLACEHOLDERS['fin']!r}")
        self.check(code, "debut", debut)
        self.check(code, "fin", fin)
        outer, inner = _INDENTS[depth], _INDENTS[depth + 1]
        code(f"{x} = {_fstring(outer, '<periode>', inner, '<debut>', (debut,), '</debut>', inner, '<fin>', (fin,), '</fin>', outer, '</periode>')}")
        self.nonempty.add(x)
        return x

    def loop(self, code: _Code, parent: str, tag: str, kind: str, depth: int, expr: str) -> str:
        """The function of ``kind`` over each item of the list ``expr``, counted as ``tag`` in ``parent``."""
        items, item, x = self.var("items"), self.var("item"), self.var("x")
        code(f"{items} = {expr}")
        self.count(code, parent, tag, f"len({items})")
        function = self.function(kind, depth)
        code(f'{x} = ""')
        with code.block(f"for {item} in {items}:"):
            code(f"{x} += {function}({item})")
        return x

    # -- the structures: one function each, mirroring formation_element() -------------------------

    def _adresse(self, name: str, depth: int) -> _Code:
        code = _Code(f"def {name}(a):")
        code("if a is None: a = _NO_ADRESSE")
        inner = depth + 1
        parts = [self.opt(code, inner, "adresse", "denomination", "a.denomination")]
        code("lignes = a.lignes or _PLACEHOLDER_LIGNES")
        self.count(code, "adresse", "ligne", "len(lignes)")
        parts.append(self.leaves(code, inner, "ligne", "lignes"))
        parts.append(self.leaf(code, inner, "codepostal", f"a.codepostal or {PLACEHOLDERS['codepostal']!r}"))
        parts.append(self.req(code, inner, "ville", "a.ville"))
        for tag, field in (("departement", "departement"), ("code-INSEE-commune", "code_insee_commune"),
                           ("region", "region"), ("pays", "pays")):
            parts.append(self.opt(code, inner, "adresse", tag, f"a.{field}"))
        geo = self.var("x")
        code("g = a.geolocalisation")
        with code.block("if g is not None:"):
            latitude = self.leaf(code, inner + 1, "latitude", "repr(g.latitude)")
            longitude = self.leaf(code, inner + 1, "longitude", "repr(g.longitude)")
            self.container(code, inner, "geolocalisation", [latitude, longitude], geo)
        with code.block("else:"):
            self.absent(code, "adresse", "geolocalisation", geo)
        parts.append(geo)
        self.container(code, depth, "adresse", parts, "x")
        code("return x")
        return code

    def _coordonnees(self, name: str, depth: int) -> _Code:
        code = _Code(f"def {name}(c):")
        with code.block("if c is None:"):
            for child in _COORDONNEES_CHILDREN:
                self.absent(code, "coordonnees", child)
            code(f"return {_INDENTS[depth] + '<coordonnees/>'!r}")
        inner = depth + 1
        parts = [self.opt(code, inner, "coordonnees", tag, f"c.{tag}") for tag in ("civilite", "nom", "prenom")]
        self.count(code, "coordonnees", "ligne", "len(c.lignes)")
        parts.append(self.leaves(code, inner, "ligne", "c.lignes"))
        adresse = self.var("x")
        with code.block("if c.adresse is not None:"):
            code(f"{adresse} = {self.function('adresse', inner)}(c.adresse)")
        with code.block("else:"):
            self.absent(code, "coordonnees", "adresse", adresse)
        parts.append(adresse)
        for tag in ("telfixe", "portable", "fax"):
            parts.append(self.urls(code, inner, "coordonnees", tag, f"c.{tag}", child="numtel"))
        parts.append(self.opt(code, inner, "coordonnees", "courriel", "c.courriel"))
        parts.append(self.urls(code, inner, "coordonnees", "web", "c.web"))
        self.container(code, depth, "coordonnees", parts, "x")
        code("return x")
        return code

    def _formation(self, name: str, depth: int) -> _Code:
        code = _Code(f"def {name}(f):")
        d = depth + 1
        domaine = self.var("x")
        code(f"{domaine} = {self.function('domaine', d)}(f)")
        parts = [domaine]
        parts.append(self.leaf(code, d, "intitule-formation", "f.intitule_formation"))
        parts.append(self.req(code, d, "objectif-formation", "f.objectif_formation"))
        parts.append(self.req(code, d, "resultats-attendus", "f.resultats_attendus"))
        parts.append(self.req(code, d, "contenu-formation", "f.contenu_formation"))
        parts.append(self.leaf(code, d, "certifiante", "f.certifiante", convert=True))
        parts.append(self.contacts(code, d, "formation", "contact-formation", "f.contact_formation", required=True))
        parts.append(self.req(code, d, "parcours-de-formation", "f.parcours_de_formation",
                              PLACEHOLDERS["parcours-de-formation"], convert=True))
        parts.append(self.req(code, d, "code-niveau-entree", "f.code_niveau_entree",
                              PLACEHOLDERS["code-niveau-entree"], convert=True))
        parts.append(self.opt(code, d, "formation", "objectif-general-formation", "f.objectif_general_formation"))
        parts.append(self.loop(code, "formation", "certification", "certification", d, "f.certifications"))
        parts.append(self.opt(code, d, "formation", "code-niveau-sortie", "f.code_niveau_sortie"))
        parts.append(self.urls(code, d, "formation", "url-formation", "f.url_formation"))
        parts.append(self.loop(code, "formation", "action", "action", d, "f.actions"))
        responsable = self.var("x")
        code(f"{responsable} = {self.function('organisme_responsable', d)}(f.organisme_formation_responsable)")
        parts.append(responsable)
        code("attrs = _dated(f.numero, f.datecrea, f.datemaj)")
        self.container(code, depth, "formation", parts, "x", attrs="attrs")
        code("return x")
        return code

    def _domaine(self, name: str, depth: int) -> _Code:
        code = _Code(f"def {name}(f):")
        inner = depth + 1
        code("principal = f.code_formacode_principal")
        code("codes = list(f.code_formacode)")
        code("if principal and principal not in codes: codes.insert(0, principal)")
        self.count(code, "domaine-formation", "code-FORMACODE", "len(codes)")
        formacodes, y = self.var("x"), self.var("x")
        code(f'{formacodes} = ""')
        with code.block("for code in codes:"):
            with code.block("if code == principal:"):
                self.check(code, "code-FORMACODE", "code")
                start = _INDENTS[inner] + '<code-FORMACODE tag="principal">'
                code(f"{formacodes} += {start!r} + _text(code) + '</code-FORMACODE>'")
            with code.block("else:"):
                self.leaf_var(code, inner, "code-FORMACODE", "code", y)
                code(f"{formacodes} += {y}")
        parts = [formacodes]
        for tag, field in (("code-NSF", "code_nsf"), ("code-ROME", "code_rome")):
            self.count(code, "domaine-formation", tag, f"len(f.{field})")
            parts.append(self.leaves(code, inner, tag, f"f.{field}"))
        self.container(code, depth, "domaine-formation", parts, "x")
        code("return x")
        return code

    def _certification(self, name: str, depth: int) -> _Code:
        code = _Code(f"def {name}(c):")
        parts = [
            self.opt(code, depth + 1, "certification", tag, f"c.{field}")
            for tag, field in (("code-RNCP", "code_rncp"), ("code-CERTIFINFO", "code_certifinfo"),
                               ("code-RS", "code_rs"), ("code-CPF", "code_cpf"))
        ]
        self.container(code, depth, "certification", parts, "x")
        code("return x")
        return code

    def _action(self, name: str, depth: int) -> _Code:
        code = _Code(f"def {name}(a):")
        d = depth + 1
        code("attrs = _dated(a.numero, a.datecrea, a.datemaj)")
        parts = [self.req(code, d, "rythme-formation", "a.rythme_formation")]
        code("publics = a.code_public_vise or _PLACEHOLDER_PUBLICS")
        self.count(code, "action", "code-public-vise", "len(publics)")
        parts.append(self.leaves(code, d, "code-public-vise", "publics"))
        parts.append(self.opt(code, d, "action", "info-public-vise", "a.info_public_vise"))
        parts.append(self.req(code, d, "niveau-entree-obligatoire", "a.niveau_entree_obligatoire",
                              PLACEHOLDERS["flag"], convert=True))
        parts.append(self.req(code, d, "modalites-alternance", "a.modalites_alternance"))
        parts.append(self.req(code, d, "modalites-enseignement", "a.modalites_enseignement",
                              PLACEHOLDERS["modalites-enseignement"], convert=True))
        parts.append(self.req(code, d, "conditions-specifiques", "a.conditions_specifiques"))
        parts.append(self.req(code, d, "prise-en-charge-frais-possible", "a.prise_en_charge_frais_possible",
                              PLACEHOLDERS["flag"], convert=True))
        parts.append(self.contacts(code, d, "action", "lieu-de-formation", "a.lieux_de_formation", required=False))
        parts.append(self.leaf(code, d, "modalites-entrees-sorties", "a.entrees_sorties_permanentes", convert=True))
        parts.append(self.urls(code, d, "action", "url-action", "a.url_action"))
        parts.append(self.loop(code, "action", "session", "session", d, "a.sessions"))
        information = self.var("x")
        with code.block("if a.adresse_information is not None:"):
            self.wrapped(code, d, "adresse-information", "adresse", "a.adresse_information", information)
        with code.block("else:"):
            self.absent(code, "action", "adresse-information", information)
        parts.append(information)
        for tag in ("restauration", "hebergement", "transport", "acces-handicapes"):
            parts.append(self.opt(code, d, "action", tag, "a." + tag.replace("-", "_")))
        self.count(code, "action", "langue-formation", "len(a.langue_formation)")
        parts.append(self.leaves(code, d, "langue-formation", "a.langue_formation"))
        for tag in ("modalites-recrutement", "modalites-pedagogiques"):
            parts.append(self.opt(code, d, "action", tag, "a." + tag.replace("-", "_")))
        self.count(code, "action", "code-modalite-pedagogique", "len(a.code_modalite_pedagogique)")
        parts.append(self.leaves(code, d, "code-modalite-pedagogique", "a.code_modalite_pedagogique"))
        for tag in ("frais-restants", "prix-horaire-TTC", "prix-total-TTC", "duree-indicative", "nombre-heures-centre",
                    "nombre-heures-entreprise", "nombre-heures-total", "detail-conditions-prise-en-charge",
                    "conventionnement", "duree-conventionnee"):
            parts.append(self.opt(code, d, "action", tag, "a." + tag.replace("-", "_").lower()))
        parts.append(self.loop(code, "action", "organisme-formateur", "organisme_formateur", d,
                               "a.organismes_formateurs"))
        financeurs, financeur = self.var("x"), self.var("financeur")
        self.count(code, "action", "organisme-financeur", "len(a.organismes_financeurs)")
        code(f'{financeurs} = ""')
        with code.block(f"for {financeur} in a.organismes_financeurs:"):
            inner = [
                self.leaf(code, d + 1, "code-financeur", f"{financeur}.code_financeur"),
                self.opt(code, d + 1, "organisme-financeur", "nb-places-financees",
                         f"{financeur}.nb_places_financees"),
            ]
            y = self.var("x")
            self.container(code, d, "organisme-financeur", inner, y)
            code(f"{financeurs} += {y}")
        parts.append(financeurs)
        self.container(code, depth, "action", parts, "x", attrs="attrs")
        code("return x")
        return code

    def _session(self, name: str, depth: int) -> _Code:
        code = _Code(f"def {name}(s):")
        d = depth + 1
        code("attrs = _dated(s.numero, s.datecrea, s.datemaj)")
        parts = [self.periode(code, d, "s.periode")]
        inscription = self.var("x")
        self.wrapped(code, d, "adresse-inscription", "adresse", "s.adresse_inscription", inscription)
        self.nonempty.add(inscription)
        parts.append(inscription)
        periode_inscription = self.var("x")
        with code.block("if s.periode_inscription is not None:"):
            periode = self.periode(code, d + 1, "s.periode_inscription")
            start, end = _INDENTS[d] + "<periode-inscription>", _INDENTS[d] + "</periode-inscription>"
            code(f"{periode_inscription} = {_fstring(start, (periode,), end)}")
        with code.block("else:"):
            self.absent(code, "session", "periode-inscription", periode_inscription)
        parts.append(periode_inscription)
        parts.append(self.opt(code, d, "session", "etat-recrutement", "s.etat_recrutement"))
        self.count(code, "session", "extras", "len(s.eligibilite_cpf)")
        extras = self.var("x")
        code(f'{extras} = ""')
        with code.block("for e in s.eligibilite_cpf:"):
            code("extra_attrs = ' info=\"eligibilite-cpf\"'")
            code("if e.numero is not None: extra_attrs += ' numero=\"' + _attr(e.numero) + '\"'")
            self.count(code, "extras", "extra",
                       "sum(value is not None for value in (e.source, e.debut_validite, e.fin_validite))")
            inner = self.var("x")
            code(f'{inner} = ""')
            for info, field in (("source", "source"), ("debut-validite", "debut_validite"),
                                ("fin-validite", "fin_validite")):
                v = self.var()
                code(f"{v} = e.{field}")
                with code.block(f"if {v} is not None:"):
                    code(f"{v} = _str({v})")
                    self.check(code, "extra", v)
                    code(f"{inner} += {_INDENTS[d + 1] + '<extra info=' + chr(34) + info + chr(34) + '>'!r}"
                         f" + _text({v}) + '</extra>'")
            y = self.var("x")
            self.container(code, d, "extras", [inner], y, attrs="extra_attrs")
            code(f"{extras} += {y}")
        parts.append(extras)
        self.container(code, depth, "session", parts, "x", attrs="attrs")
        code("return x")
        return code

    def _organisme_formateur(self, name: str, depth: int) -> _Code:
        code = _Code(f"def {name}(o):")
        d = depth + 1
        code("attrs = ' numero=\"' + _attr(o.numero) + '\"' if o.numero else ''")
        siret, x = self.leaf(code, d + 1, "SIRET", f"o.siret_formateur or {PLACEHOLDERS['SIRET']!r}"), self.var("x")
        self.container(code, d, "SIRET-formateur", [siret], x)
        parts = [x, self.req(code, d, "raison-sociale-formateur", "o.raison_sociale_formateur")]
        parts.append(self.contacts(code, d, "organisme-formateur", "contact-formateur", "o.contact_formateur",
                                   required=False))
        self.container(code, depth, "organisme-formateur", parts, "x", attrs="attrs")
        code("return x")
        return code

    def _organisme_responsable(self, name: str, depth: int) -> _Code:
        code = _Code(f"def {name}(o):")
        d = depth + 1
        code("attrs = ' numero=\"' + _attr(o.numero) + '\"' if o.numero else ''")
        parts = [self.leaf(code, d, "numero-activite", f"o.numero_activite or {PLACEHOLDERS['numero-activite']!r}")]
        siret, x = self.leaf(code, d + 1, "SIRET", "o.siret_organisme_formation"), self.var("x")
        self.container(code, d, "SIRET-organisme-formation", [siret], x)
        parts.append(x)
        parts.append(self.leaf(code, d, "nom-organisme", "o.nom_organisme"))
        parts.append(self.leaf(code, d, "raison-sociale", "o.raison_sociale"))
        y = self.var("x")
        self.wrapped(code, d, "coordonnees-organisme", "coordonnees", "o.coordonnees_organisme", y)
        self.nonempty.add(y)
        parts.append(y)
        parts.append(self.contacts(code, d, "organisme-formation-responsable", "contact-organisme",
                                   "o.contact_organisme", required=True))
        parts.append(self.opt(code, d, "organisme-formation-responsable", "renseignements-specifiques",
                              "o.renseignements_specifiques"))
        self.container(code, depth, "organisme-formation-responsable", parts, "x", attrs="attrs")
        code("return x")
        return code


_UNBOUNDED = float("inf")
#: ``_str(v)`` as written in the functions: what it gives an int or a bool (the flags), without the call.
_STR = '"1" if {v} is True else "0" if {v} is False else str({v}) if type({v}) is int else _str({v})'
_NO_ADRESSE = Adresse()
_PLACEHOLDER_LIGNES = [PLACEHOLDERS["text"]]
_PLACEHOLDER_PUBLICS = [PLACEHOLDERS["code-public-vise"]]
#: What an unknown <coordonnees> leaves out.
_COORDONNEES_CHILDREN = ("civilite", "nom", "prenom", "ligne", "adresse", "telfixe", "portable", "fax", "courriel",
                         "web")

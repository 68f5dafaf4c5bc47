"""The LHEO reader: an export of the Carif-Oref network, one ``<formation>`` at a time.

The file is streamed with :func:`lxml.etree.iterparse`, one formation in memory
at once, whatever the namespace (LHEO 2.2, 2.3 or none); a plain export is
rather cut into formations by a byte scan, each parsed alone with the same
results (:func:`split_lheo`, :func:`read_chunk`: what an incremental build
reads, a formation whose bytes did not change is not parsed). Each formation becomes a
plain dict through the declarative tables below (LHEO element -> model field),
then one :class:`~catalogue.model.Formation` validation. Only when validation
fails is the formation converted a second time, noting for every model field
the LHEO path and line it came from, so that each pydantic error names the
element at fault; the happy path pays nothing for it.

LHEO has no DTD: a document with a DOCTYPE is refused before lxml reads it, and
the parser resolves no entity and loads nothing from disk or network anyway.
"""

from __future__ import annotations

import codecs
import mmap
import os
import re
import stat
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Union, get_args

from lxml import etree
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError
from pydantic_core.core_schema import ErrorType

from ..model import (
    UNKNOWN_TEXT,
    Adresse,
    Certification,
    Formation,
    OrganismeFinanceur,
    OrganismeFormateur,
    OrganismeFormationResponsable,
    PartialDate,
    check_ref,
)
from ..problems import Origin, Problem
from . import Item, Record

__all__ = ["Chunk", "ChunkError", "SplitFile", "read_chunk", "read_from", "read_lheo", "split_lheo", "stream_lheo"]

#: No DTD, no entity, no network, no giant text node: an export is data, not a program.
PARSER_OPTIONS = dict(
    remove_blank_text=True,  # indentation: a fifth of the parse time, and never data
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    collect_ids=False,
    remove_comments=True,
    remove_pis=True,
)

#: How much of the file's head is searched for a DOCTYPE and the root element.
PROLOG_BYTES = 64 * 1024
#: Longest input value quoted in a message.
QUOTE_MAX = 60
#: Distinct tags remembered per table (a hostile file could invent millions).
TAG_CACHE_MAX = 1000
#: Distinct elements whose validated model is remembered, per table (see :func:`_validated`), and
#: their bytes: at most, and each (a larger element is not remembered).
VALIDATED_MAX = 2000
VALIDATED_BYTES_MAX = 2 * 1024 * 1024
VALIDATED_KEY_MAX = 32 * 1024


# --------------------------------------------------------------------------
# Small helpers on elements
# --------------------------------------------------------------------------


def _local(tag: Any) -> str:
    """``{namespace}name`` -> ``name``; comments and PIs (not ``str`` tags) -> ``""``."""
    if type(tag) is not str:
        return ""
    return tag[tag.find("}") + 1 :]


def _text(el: etree._Element) -> Optional[str]:
    """The element's text, stripped; a stray child (badly escaped HTML) keeps its text."""
    text = el.text if len(el) == 0 else "".join(el.itertext())
    if text is None:
        return None
    return text.strip()


def _children(el: etree._Element, name: str) -> Iterator[etree._Element]:
    return el.iterchildren(f"{{*}}{name}")


def _first(el: etree._Element, name: str) -> Optional[etree._Element]:
    suffix = "}" + name
    for child in el:
        tag = child.tag
        if type(tag) is str and (tag.endswith(suffix) or tag == name):
            return child
    return None


def _rank(el: etree._Element) -> int:
    """1-based position of ``el`` among its siblings of the same name (for LHEO paths)."""
    return 1 + sum(1 for s in el.itersiblings(preceding=True) if s.tag == el.tag)


# -- value cleaners: what real exports write for "unknown" beyond the model's own ----


def _zeros_unknown(value: str) -> Optional[str]:
    """``00``, ``00000``: a code made of zeros is no code."""
    return None if value and not value.strip("0") else value


@lru_cache(maxsize=8192)
def _date(value: str) -> Any:
    """``AAAAMMJJ`` as the model's :class:`PartialDate`, else the text, for the model to read or refuse.

    The model's own parser was a third of the validation time, and an export
    repeats the same few dates (CPF lists) thousands of times: the common shape
    is built here, once per distinct date (a PartialDate is never mutated).
    """
    if len(value) == 8 and value.isascii() and value.isdigit():
        try:
            return PartialDate(int(value[:4]), int(value[4:6]), int(value[6:]))
        except ValueError:  # 00000000, 99999999, 20180230: the model says which
            pass
    return value


def _decimal(value: str) -> str:
    """French exports may write ``12,50`` or ``1 200``."""
    if "," in value or " " in value or "\u00a0" in value:
        return value.replace(",", ".").replace("\u00a0", "").replace(" ", "")
    return value


# --------------------------------------------------------------------------
# Where a value came from (only on the second, error-reporting pass)
# --------------------------------------------------------------------------


class Where:
    """The model loc and LHEO path of the dict being filled, and the table they are noted in.

    ``locs`` maps a pydantic loc (``("actions", 0, "sessions", 1, "periode", "fin")``)
    to ``(lheo_path, line, raw_value)``. ``delta`` turns the parser's lines into
    the file's (a formation parsed alone, :func:`read_chunk`).
    """

    __slots__ = ("locs", "loc", "path", "delta")

    def __init__(self, locs: dict, loc: tuple = (), path: str = "", delta: int = 0):
        self.locs, self.loc, self.path, self.delta = locs, loc, path, delta

    def join(self, relative: str) -> str:
        return f"{self.path}/{relative}" if self.path else relative

    def note(self, key: tuple, relative: str, line: int, raw: Optional[str] = None) -> None:
        self.locs.setdefault(self.loc + key, (self.join(relative), line + self.delta if line else 0, raw))

    def enter(self, key: tuple, relative: str) -> "Where":
        return Where(self.locs, self.loc + key, self.join(relative), self.delta)


# --------------------------------------------------------------------------
# The rules: how one LHEO element fills one model field
# --------------------------------------------------------------------------


#: Turns a known text into the value given to the model (``None``: read as unknown).
Cleaner = Callable[[str], Any]


class Spec:
    """One model's table: attributes -> fields, child element name -> :class:`Rule`.

    ``by_tag`` memoises the rule of each namespaced tag met, so the hot loop does
    one dict lookup per child, whatever the namespace.
    """

    __slots__ = ("attrs", "rules", "by_tag", "model", "validated", "validated_bytes")

    def __init__(
        self,
        rules: dict[str, "Rule"],
        attrs: tuple[tuple[str, Optional[Cleaner]], ...] = (),
        model: Optional[type[BaseModel]] = None,
    ):
        for name, rule in rules.items():
            rule.named(name)
        self.rules = rules
        self.attrs = tuple((attr, attr.replace("-", "_"), clean) for attr, clean in attrs)
        self.by_tag: dict[Any, Optional[Rule]] = {}
        #: The model of an element that repeats from formation to formation (an organisme, its
        #: addresses, a financeur): see :func:`_validated`.
        self.model = model
        self.validated: dict[bytes, BaseModel] = {}
        self.validated_bytes = 0  # the keys' total size

    def rule(self, tag: Any) -> Optional["Rule"]:
        rule = self.rules.get(_local(tag))
        if len(self.by_tag) < TAG_CACHE_MAX:
            self.by_tag[tag] = rule
        return rule


class Rule:
    """Fills ``field`` of a dict from one element named ``name``; ``via`` names the
    wrapped child that holds the value (``SIRET-formateur/SIRET``)."""

    __slots__ = ("field", "via", "name", "clean", "leaf", "many")

    def __init__(self, field: str, via: Optional[str] = None, clean: Optional[Cleaner] = None):
        self.field, self.via, self.name, self.clean = field, via, "", clean
        #: The field, for a text element that :func:`_read` reads inline (the hot path).
        self.leaf: Optional[str] = None
        #: Inline, append to a list rather than set.
        self.many = False

    def named(self, name: str) -> "Rule":
        self.name = name
        return self

    def apply(self, el: etree._Element, data: dict, where: Optional[Where]) -> None:
        raise NotImplementedError

    def read(self, el: etree._Element, data: dict) -> None:
        """``apply`` without noting where values came from: the happy path, which :func:`_read` takes."""
        self.apply(el, data, None)


class Text(Rule):
    """A scalar. Placeholders (``-``, empty) are left out, so the model's default applies."""

    __slots__ = ()

    def __init__(self, field: str, via: Optional[str] = None, clean: Optional[Cleaner] = None):
        super().__init__(field, via, clean)
        self.leaf = None if via else field

    def apply(self, el, data, where):
        source = _first(el, self.via) if self.via else el
        text = _text(source) if source is not None else None
        value = text if text not in UNKNOWN_TEXT else None
        if value is not None and self.clean is not None:
            value = self.clean(value)
        if value is not None:
            data[self.field] = value
        if where is not None:
            where.note((self.field,), self.name, el.sourceline, text)

    def read(self, el, data):
        source = _first(el, self.via) if self.via else el
        if source is None:
            return
        text = source.text if not len(source) else "".join(source.itertext())
        if text is None:
            return
        text = text.strip()
        if text in UNKNOWN_TEXT:
            return
        if self.clean is not None:
            text = self.clean(text)
            if text is None:
                return
        data[self.field] = text


class Texts(Rule):
    """A list of scalars: one per repeated element, or per ``via`` child of a wrapper."""

    __slots__ = ("pattern",)

    def __init__(self, field: str, via: Optional[str] = None):
        super().__init__(field, via)
        self.leaf, self.many = (None if via else field), True
        self.pattern = f"{{*}}{via}" if via else None  # the ``via`` children, whatever their namespace

    def apply(self, el, data, where):
        items = data.get(self.field)
        if items is None:
            items = data[self.field] = []
        for source in _children(el, self.via) if self.via else (el,):
            value = _text(source)
            if value is None or value in UNKNOWN_TEXT:
                continue
            items.append(value)
            if where is not None:
                step = f"{self.name}/{self.via}[{_rank(source)}]" if self.via else f"{self.name}[{_rank(el)}]"
                where.note((self.field, len(items) - 1), step, source.sourceline, value)
                where.note((self.field,), self.name, el.sourceline)

    def read(self, el, data):
        items = data.get(self.field)
        if items is None:
            items = data[self.field] = []
        for source in el.iterchildren(self.pattern) if self.via else (el,):
            value = source.text if not len(source) else "".join(source.itertext())
            if value is None:
                continue
            value = value.strip()
            if value not in UNKNOWN_TEXT:
                items.append(value)


class Formacode(Texts):
    """``code-FORMACODE``: every code, and the one tagged ``principal`` on its own."""

    __slots__ = ()

    def __init__(self, field: str):
        super().__init__(field)
        self.leaf = None  # needs its attribute: not read inline

    def apply(self, el, data, where):
        super().apply(el, data, where)
        if el.get("tag") == "principal":
            Text("code_formacode_principal").named(f"{self.name}[{_rank(el)}]").apply(el, data, where)

    def read(self, el, data):
        items = data.get(self.field)
        if items is None:
            items = data[self.field] = []
        value = _text(el)
        known = value is not None and value not in UNKNOWN_TEXT
        if known:
            items.append(value)
        if el.get("tag") == "principal" and known:
            data["code_formacode_principal"] = value


class Node(Rule):
    """A nested model; left out when its ``via`` child is missing."""

    __slots__ = ("spec",)

    def __init__(self, field: str, spec: Spec, via: Optional[str] = None):
        super().__init__(field, via)
        self.spec = spec

    def apply(self, el, data, where):
        if where is None:
            return self.read(el, data)
        source = _first(el, self.via) if self.via else el
        if source is None:
            return
        where.note((self.field,), self.name, el.sourceline)
        inner = where.enter((self.field,), f"{self.name}/{self.via}" if self.via else self.name)
        data[self.field] = convert(source, self.spec, inner)

    def read(self, el, data):
        source = _first(el, self.via) if self.via else el
        if source is not None:
            spec = self.spec
            data[self.field] = _validated(source, spec) if spec.model is not None else _read(source, spec)


class Nodes(Node):
    """A list of nested models, one per repeated element (an empty one when ``via`` is missing)."""

    __slots__ = ()

    def apply(self, el, data, where):
        if where is None:
            return self.read(el, data)
        items = data.get(self.field)
        if items is None:
            items = data[self.field] = []
        source = _first(el, self.via) if self.via else el
        step = f"{self.name}[{_rank(el)}]"
        where.note((self.field,), self.name, el.sourceline)
        where.note((self.field, len(items)), step, el.sourceline)
        inner = where.enter((self.field, len(items)), f"{step}/{self.via}" if self.via else step)
        items.append(convert(source, self.spec, inner) if source is not None else {})

    def read(self, el, data):
        items = data.get(self.field)
        if items is None:
            items = data[self.field] = []
        source = _first(el, self.via) if self.via else el
        if source is None:
            items.append({})
        else:
            spec = self.spec
            items.append(_validated(source, spec) if spec.model is not None else _read(source, spec))


class Flat(Rule):
    """A grouping element whose children are fields of the parent (``domaine-formation``)."""

    __slots__ = ("spec",)

    def __init__(self, spec: Spec):
        super().__init__("")
        self.spec = spec

    def apply(self, el, data, where):
        if where is None:
            return self.read(el, data)
        convert(el, self.spec, where.enter((), self.name), data)

    def read(self, el, data):
        _read(el, self.spec, data)


class Geoloc(Node):
    """``geolocalisation``: an unknown one (empty, ``-``, ``0``) is dropped.

    ``strict`` (a lieu de formation, the place shown on maps): an unusable value
    is an error. Otherwise (contacts, organismes, inscription) it is dropped too:
    a wrong pin on a secondary address must not hide the formation.
    """

    __slots__ = ("strict",)

    def __init__(self, field: str, strict: bool):
        super().__init__(field, GEOLOCALISATION)
        self.strict = strict

    def apply(self, el, data, where):
        if where is None:
            return self.read(el, data)
        super().apply(el, data, where)
        if not self._usable(data[self.field]):
            del data[self.field]

    def read(self, el, data):
        point = _read(el, self.spec)  # Node.read, without ``via`` nor model
        if self._usable(point):
            data[self.field] = point
        else:
            data.pop(self.field, None)

    def _usable(self, point: dict) -> bool:
        try:
            latitude, longitude = float(point["latitude"]), float(point["longitude"])
        except KeyError:  # a placeholder, read as unknown
            return False
        except ValueError:
            return self.strict
        if latitude == 0 or longitude == 0:
            return False
        # NaN fails both comparisons: dropped, or refused by the model when strict.
        return self.strict or (abs(latitude) <= 90 and abs(longitude) <= 180)


class CpfExtras(Rule):
    """``<extras info="eligibilite-cpf" numero=...>``: one CPF list the session belongs to."""

    __slots__ = ()
    EXTRAS = {
        "source": ("source", None),
        "debut-validite": ("debut_validite", _date),
        "fin-validite": ("fin_validite", _date),
    }

    def apply(self, el, data, where):
        if el.get("info") != "eligibilite-cpf":
            return
        items = data.setdefault(self.field, [])
        item: dict[str, Any] = {}
        numero = (el.get("numero") or "").strip()
        if numero not in UNKNOWN_TEXT:
            item["numero"] = numero
        inner = where.enter((self.field, len(items)), f"{self.name}[{_rank(el)}]") if where is not None else None
        wanted = set(self.EXTRAS)
        for extra in _children(el, "extra"):
            info = extra.get("info")
            if info not in wanted:
                continue
            field, clean = self.EXTRAS[info]
            text = _text(extra)
            if text is not None and text not in UNKNOWN_TEXT:
                item[field] = clean(text) if clean is not None else text
            if inner is not None:
                inner.note((field,), f"extra[@info='{info}']", extra.sourceline, text)
            wanted.discard(info)
            if not wanted:  # the rest (public, branches...) is not the model's
                break
        items.append(item)


def convert(el: etree._Element, spec: Spec, where: Optional[Where], data: Optional[dict] = None) -> dict:
    """The element as a dict for the model, by ``spec``; elements the model lacks are ignored.

    With ``where``, every value's LHEO path and line is noted there too (the error pass).
    """
    if where is None:
        return _read(el, spec, data)
    if data is None:
        data = {}
    if spec.attrs:
        _convert_attributes(el, spec, where, data)
    by_tag = spec.by_tag
    for child in el:
        tag = child.tag
        rule = by_tag.get(tag, _UNSEEN)
        if rule is _UNSEEN:
            rule = spec.rule(tag)
        if rule is not None:
            rule.apply(child, data, where)
    return data


def _read(el: etree._Element, spec: Spec, data: Optional[dict] = None) -> dict:
    """:func:`convert` without noting where values came from: what every formation read goes through.

    Kept apart from the error pass so that no rule tests ``where`` on the way:
    the bulk of an export is text elements, read inline here (saving two calls
    each); the other rules' ``read`` is their ``apply`` without the noting.
    """
    if data is None:
        data = {}
    for attr, field, clean in spec.attrs:
        text = el.get(attr)
        if text is not None:
            text = text.strip()
            if text:
                data[field] = clean(text) if clean is not None else text
    by_tag = spec.by_tag
    for child in el:
        tag = child.tag
        rule = by_tag.get(tag, _UNSEEN)
        if rule is _UNSEEN:
            rule = spec.rule(tag)
        if rule is None:
            continue
        field = rule.leaf
        if field is None:
            rule.read(child, data)
            continue
        text = child.text if not len(child) else "".join(child.itertext())
        if text is None:
            continue
        text = text.strip()
        if len(text) < 3 and text in UNKNOWN_TEXT:
            continue
        if rule.clean is not None:
            text = rule.clean(text)
            if text is None:
                continue
        if rule.many:
            items = data.get(field)
            if items is None:
                data[field] = [text]
            else:
                items.append(text)
        else:
            data[field] = text
    return data


_UNSEEN = object()


def _validated(el: etree._Element, spec: Spec) -> Union[BaseModel, dict]:
    """The element as its validated model, or as a dict for the model when it is not valid alone.

    An export repeats the same organisme, its addresses, its financeurs, word
    for word, in each of its formations: an element whose bytes were validated
    before is neither converted nor validated again, its (frozen) model is
    given to the formation's validation, which takes a model instance as it
    is. The bytes of an element determine its dict (``_read`` reads nothing
    else), and a model validates alike alone or nested; an element that does
    not validate alone is given as a dict, so the formation's errors are the
    same as without this cache (and only the error pass, which never comes
    here, notes lines).
    """
    # UTF-8 rather than tostring's ASCII: the same one-to-one key, a little quicker to make.
    key = etree.tostring(el, with_tail=False, encoding="utf-8")
    cache = spec.validated
    model = cache.get(key)
    if model is not None:
        return model
    data = _read(el, spec)
    if len(key) > VALIDATED_KEY_MAX:  # not what repeats: an organisme is a few kB
        return data
    try:
        model = spec.model.__pydantic_validator__.validate_python(data)  # model_validate() without its Python layer
    except ValidationError:
        return data
    if len(cache) >= VALIDATED_MAX or spec.validated_bytes + len(key) > VALIDATED_BYTES_MAX:
        cache.clear()  # formations come grouped by organisme: the recent ones are what repeats
        spec.validated_bytes = 0
    cache[key] = model
    spec.validated_bytes += len(key)
    return model


def _convert_attributes(el: etree._Element, spec: Spec, where: Optional[Where], data: dict) -> None:
    for attr, field, clean in spec.attrs:
        text = el.get(attr)
        if text is None:
            continue
        text = text.strip()
        if text:
            data[field] = clean(text) if clean is not None else text
        if where is not None:
            where.note((field,), f"@{attr}", el.sourceline, text)


# --------------------------------------------------------------------------
# The tables: LHEO element -> model field (field names are LHEO's, ``-`` -> ``_``)
# --------------------------------------------------------------------------

_NUMBERED = (("numero", None),)
_DATED = _NUMBERED + (("datecrea", _date), ("datemaj", _date))

GEOLOCALISATION = Spec(
    {
        "latitude": Text("latitude", clean=_decimal),
        "longitude": Text("longitude", clean=_decimal),
    }
)


def _adresse(strict_geoloc: bool) -> Spec:
    return Spec(
        {
            "denomination": Text("denomination"),
            "ligne": Texts("lignes"),
            "codepostal": Text("codepostal"),
            "ville": Text("ville"),
            "departement": Text("departement", clean=_zeros_unknown),
            "code-INSEE-commune": Text("code_insee_commune", clean=_zeros_unknown),
            "region": Text("region", clean=_zeros_unknown),
            "pays": Text("pays"),
            "geolocalisation": Geoloc("geolocalisation", strict=strict_geoloc),
        },
        model=Adresse,
    )


ADRESSE = _adresse(strict_geoloc=False)
ADRESSE_LIEU = _adresse(strict_geoloc=True)


def _coordonnees(adresse: Spec) -> Spec:
    return Spec(
        {
            "civilite": Text("civilite"),
            "nom": Text("nom"),
            "prenom": Text("prenom"),
            "ligne": Texts("lignes"),
            "adresse": Node("adresse", adresse),
            "telfixe": Texts("telfixe", via="numtel"),
            "portable": Texts("portable", via="numtel"),
            "fax": Texts("fax", via="numtel"),
            "courriel": Text("courriel"),
            "web": Texts("web", via="urlweb"),
        }
    )


COORDONNEES = _coordonnees(ADRESSE)
COORDONNEES_LIEU = _coordonnees(ADRESSE_LIEU)

PERIODE = Spec({"debut": Text("debut", clean=_date), "fin": Text("fin", clean=_date)})

SESSION = Spec(
    {
        "periode": Node("periode", PERIODE),
        "adresse-inscription": Node("adresse_inscription", ADRESSE, via="adresse"),
        "periode-inscription": Node("periode_inscription", PERIODE, via="periode"),
        "etat-recrutement": Text("etat_recrutement"),
        "extras": CpfExtras("eligibilite_cpf"),
    },
    attrs=_DATED,
)

ORGANISME_FORMATEUR = Spec(
    {
        "SIRET-formateur": Text("siret_formateur", via="SIRET"),
        "raison-sociale-formateur": Text("raison_sociale_formateur"),
        "contact-formateur": Nodes("contact_formateur", COORDONNEES, via="coordonnees"),
    },
    attrs=_NUMBERED,
    model=OrganismeFormateur,
)

ORGANISME_FINANCEUR = Spec(
    {
        "code-financeur": Text("code_financeur"),
        "nb-places-financees": Text("nb_places_financees"),
    },
    model=OrganismeFinanceur,
)

ACTION = Spec(
    {
        "rythme-formation": Text("rythme_formation"),
        "code-public-vise": Texts("code_public_vise"),
        "info-public-vise": Text("info_public_vise"),
        "niveau-entree-obligatoire": Text("niveau_entree_obligatoire"),
        "modalites-alternance": Text("modalites_alternance"),
        "modalites-enseignement": Text("modalites_enseignement"),
        "conditions-specifiques": Text("conditions_specifiques"),
        "prise-en-charge-frais-possible": Text("prise_en_charge_frais_possible"),
        "lieu-de-formation": Nodes("lieux_de_formation", COORDONNEES_LIEU, via="coordonnees"),
        "modalites-entrees-sorties": Text("entrees_sorties_permanentes"),
        "url-action": Texts("url_action", via="urlweb"),
        "session": Nodes("sessions", SESSION),
        "adresse-information": Node("adresse_information", ADRESSE, via="adresse"),
        "restauration": Text("restauration"),
        "hebergement": Text("hebergement"),
        "transport": Text("transport"),
        "acces-handicapes": Text("acces_handicapes"),
        "langue-formation": Texts("langue_formation"),
        "modalites-recrutement": Text("modalites_recrutement"),
        "modalites-pedagogiques": Text("modalites_pedagogiques"),
        "code-modalite-pedagogique": Texts("code_modalite_pedagogique"),
        "frais-restants": Text("frais_restants"),
        "prix-horaire-TTC": Text("prix_horaire_ttc", clean=_decimal),
        "prix-total-TTC": Text("prix_total_ttc", clean=_decimal),
        "duree-indicative": Text("duree_indicative"),
        "nombre-heures-centre": Text("nombre_heures_centre"),
        "nombre-heures-entreprise": Text("nombre_heures_entreprise"),
        "nombre-heures-total": Text("nombre_heures_total"),
        "detail-conditions-prise-en-charge": Text("detail_conditions_prise_en_charge"),
        "conventionnement": Text("conventionnement"),
        "duree-conventionnee": Text("duree_conventionnee"),
        "organisme-formateur": Nodes("organismes_formateurs", ORGANISME_FORMATEUR),
        "organisme-financeur": Nodes("organismes_financeurs", ORGANISME_FINANCEUR),
    },
    attrs=_DATED,
)

CERTIFICATION = Spec(
    {
        "code-RNCP": Text("code_rncp"),
        "code-RS": Text("code_rs"),
        "code-CERTIFINFO": Text("code_certifinfo"),
        "code-CPF": Text("code_cpf"),
    },
    model=Certification,
)

ORGANISME_FORMATION_RESPONSABLE = Spec(
    {
        "numero-activite": Text("numero_activite"),
        "SIRET-organisme-formation": Text("siret_organisme_formation", via="SIRET"),
        "nom-organisme": Text("nom_organisme"),
        "raison-sociale": Text("raison_sociale"),
        "coordonnees-organisme": Node("coordonnees_organisme", COORDONNEES, via="coordonnees"),
        "contact-organisme": Nodes("contact_organisme", COORDONNEES, via="coordonnees"),
        "renseignements-specifiques": Text("renseignements_specifiques"),
    },
    attrs=_NUMBERED,
    model=OrganismeFormationResponsable,
)

DOMAINE_FORMATION = Spec(
    {
        "code-FORMACODE": Formacode("code_formacode"),
        "code-NSF": Texts("code_nsf"),
        "code-ROME": Texts("code_rome"),
    }
)

FORMATION = Spec(
    {
        "domaine-formation": Flat(DOMAINE_FORMATION),
        "intitule-formation": Text("intitule_formation"),
        "objectif-formation": Text("objectif_formation"),
        "resultats-attendus": Text("resultats_attendus"),
        "contenu-formation": Text("contenu_formation"),
        "certifiante": Text("certifiante"),
        "contact-formation": Nodes("contact_formation", COORDONNEES, via="coordonnees"),
        "parcours-de-formation": Text("parcours_de_formation"),
        "code-niveau-entree": Text("code_niveau_entree"),
        "objectif-general-formation": Text("objectif_general_formation"),
        "certification": Nodes("certifications", CERTIFICATION),
        "code-niveau-sortie": Text("code_niveau_sortie"),
        "url-formation": Texts("url_formation", via="urlweb"),
        "action": Nodes("actions", ACTION),
        "organisme-formation-responsable": Node("organisme_formation_responsable", ORGANISME_FORMATION_RESPONSABLE),
    },
    attrs=_DATED,
)


def _lheo_names(spec: Spec, names: dict[str, str]) -> dict[str, str]:
    """Model field -> LHEO name, to name a field that is missing from the file."""
    for attr, field, _clean in spec.attrs:
        names.setdefault(field, f"@{attr}")
    for name, rule in spec.rules.items():
        if isinstance(rule, Flat):
            _lheo_names(rule.spec, names)
            continue
        names.setdefault(rule.field, name)
        if isinstance(rule, Node):
            _lheo_names(rule.spec, names)
    return names


LHEO_NAMES = _lheo_names(FORMATION, {})


# --------------------------------------------------------------------------
# Validation errors -> problems
# --------------------------------------------------------------------------

#: pydantic's own error types, in French (the model's custom errors are French already).
MESSAGES = {
    "string_pattern_mismatch": "format invalide",
    "string_type": "texte attendu",
    "int_parsing": "nombre entier attendu",
    "int_from_float": "nombre entier attendu",
    "int_type": "nombre entier attendu",
    "float_parsing": "nombre attendu",
    "float_type": "nombre attendu",
    "decimal_parsing": "nombre décimal attendu",
    "decimal_type": "nombre décimal attendu",
    "finite_number": "nombre fini attendu",
    "greater_than_equal": "doit être supérieur ou égal à {ge}",
    "less_than_equal": "doit être inférieur ou égal à {le}",
    "bool_parsing": "0 ou 1 attendu",
    "bool_type": "0 ou 1 attendu",
    "enum": "valeur inconnue ({expected} attendu)",
    "too_short": "au moins {min_length} élément(s) attendu(s)",
    "too_long": "trop d'éléments ({actual_length}, {max_length} au plus)",
    "string_too_long": "texte trop long ({max_length} caractères au plus)",
    "extra_forbidden": "élément inconnu",
}


def _quote(value: str) -> str:
    value = " ".join(value.split())
    if len(value) > QUOTE_MAX:
        value = value[: QUOTE_MAX - 1] + "…"
    return f"« {value} »"


def _message(error: dict, raw: Optional[str], recorded: bool) -> str:
    """What is wrong, in French, with the value at fault (truncated) when it helps."""
    if error["type"] == "missing":
        return _missing_message(error, raw, recorded)
    if error["type"] in MESSAGES:
        message = _builtin_message(error)
    elif error["type"] in _PYDANTIC_ERRORS:  # one no LHEO value should meet: say little, in French
        message = "valeur refusée"
    else:
        message = _custom_message(error)
    value = error.get("input")
    if isinstance(value, str) and value and value[:20] not in message:  # models quote 20 characters
        message = f"{message} (valeur {_quote(value)})"
    return message


def _missing_message(error: dict, raw: Optional[str], recorded: bool) -> str:
    if recorded:  # the element is there, with a placeholder or nothing in it
        return f"valeur manquante ou inconnue ({_quote(raw)})" if raw else "valeur manquante"
    if error["loc"] and error["loc"][-1] in _ATTRIBUTE_FIELDS:
        return "attribut obligatoire manquant"
    return "élément obligatoire manquant"


def _builtin_message(error: dict) -> str:
    ctx = {key: _number(value) for key, value in (error.get("ctx") or {}).items()}
    if error["type"] == "too_long" and isinstance(error.get("input"), str):
        return "texte trop long ({actual_length} caractères, {max_length} au plus)".format(**ctx)
    return MESSAGES[error["type"]].format(**ctx)


def _number(value: Any) -> Any:
    """``90.0`` reads ``90`` in a message, and pydantic's ``0, 1 or 2`` reads ``0, 1 ou 2``."""
    if isinstance(value, str):
        return value.replace(" or ", " ou ")
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _custom_message(error: dict) -> str:
    """The model's French message; a template pydantic could not fill (``{value!r}``) is filled here."""
    message = error["msg"]
    ctx = error.get("ctx")
    if ctx and "{" in message:
        try:
            message = message.format(**ctx)
        except (KeyError, ValueError, IndexError):
            pass
    return message


_ATTRIBUTE_FIELDS = {"numero", "datecrea", "datemaj"}
_PYDANTIC_ERRORS = frozenset(get_args(ErrorType))


def _error_loc(error: dict) -> tuple:
    """The loc of the model field at fault, moved to the element a reader would fix."""
    loc = tuple(part for part in error["loc"] if isinstance(part, int) or part.isidentifier())
    ctx = error.get("ctx") or {}
    if error["type"] == "periode_order":
        return loc + ("fin",)
    if error["type"] == "lieu_sans_adresse" and isinstance(ctx.get("i"), int):
        return loc + ("lieux_de_formation", ctx["i"] - 1)
    return loc


def _locate(loc: tuple, locs: dict, line: int) -> tuple[str, int, Optional[str], bool]:
    """(LHEO path, line, raw value, found) of a loc: its own entry, else its nearest noted ancestor."""
    for size in range(len(loc), -1, -1):
        hit = locs.get(loc[:size]) if size else ("", line, None)
        if hit is None:
            continue
        path, found_line, raw = hit
        for part in loc[size:]:
            if isinstance(part, int):
                path += f"[{part + 1}]"
            else:
                name = LHEO_NAMES.get(part, part.replace("_", "-"))
                path = f"{path}/{name}" if path else name
        return path or "-", found_line or line, raw, size == len(loc)
    raise AssertionError("unreachable")


def _formation_problems(el: etree._Element, origin_path: str, exc: ValidationError, delta: int) -> Iterator[Problem]:
    locs: dict = {}
    convert(el, FORMATION, Where(locs, delta=delta))
    numero = _valid_numero(el.get("numero"))
    seen = set()
    for error in exc.errors(include_url=False):
        path, line, raw, recorded = _locate(_error_loc(error), locs, _line(el, delta))
        message = _message(error, raw, recorded)
        if (path, message) in seen:
            continue
        seen.add((path, message))
        yield Problem(Origin(origin_path, line), numero, path, message)


def _valid_numero(value: Optional[str]) -> str:
    try:
        return check_ref(value) if value else "-"
    except PydanticCustomError:
        return "-"


def _line(el: etree._Element, delta: int) -> int:
    line = el.sourceline
    return line + delta if line else 0


#: ``Formation.model_validate`` without the Python layer around it (its checks are of arguments not given here).
_validate_formation = Formation.__pydantic_validator__.validate_python


def _read_formation(el: etree._Element, origin_path: str, delta: int = 0) -> Iterator[Item]:
    """The formation's record, or its problems; ``delta``: see :class:`Where`."""
    data = _read(el, FORMATION)
    try:
        formation = _validate_formation(data)
    except ValidationError as exc:
        yield from _formation_problems(el, origin_path, exc, delta)
        return
    yield Record(Origin(origin_path, _line(el, delta)), formation)


# --------------------------------------------------------------------------
# The file
# --------------------------------------------------------------------------

_PROLOG_ITEM = re.compile(r"\s*(?:<\?.*?\?>|<!--.*?-->)", re.S)
_ROOT = re.compile(r"\s*<([^\s/>!?]+)")


def _decode_head(head: bytes) -> str:
    """Enough of the head to read the prolog: XML markup is ASCII in every encoding but UTF-16/32."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return head.decode("utf-16", errors="replace")
    if head.startswith(b"<\x00?\x00"):
        return head.decode("utf-16-le", errors="replace")
    if head.startswith(b"\x00<\x00?"):
        return head.decode("utf-16-be", errors="replace")
    return head.removeprefix(b"\xef\xbb\xbf").decode("latin-1")


def _read_prolog(head: bytes) -> tuple[str, int]:
    """What follows the XML declaration, comments and PIs, and its line.

    ``("!DOCTYPE", line)``, ``(local name of the root, line)``, or ``("", 0)``
    when the head is too short to tell.
    """
    text = _decode_head(head)
    pos = 0
    while match := _PROLOG_ITEM.match(text, pos):
        pos = match.end()
    start = len(text) - len(text[pos:].lstrip())
    line = text.count("\n", 0, start) + 1
    if text[start : start + 9].upper() == "<!DOCTYPE":
        return "!DOCTYPE", line
    root = _ROOT.match(text, start)
    return (root.group(1).rpartition(":")[2], line) if root else ("", 0)


def _doctype_problem(origin_path: str, line: int) -> Problem:
    return Problem(
        Origin(origin_path, line),
        "-",
        "DOCTYPE",
        "déclaration DOCTYPE refusée : un export LHEO n'a pas de DTD, et une DTD peut déclarer "
        "des entités (fichiers, adresses, expansions) qui ne seront jamais lues",
    )


def _not_lheo(origin_path: str, line: int, root: str) -> Problem:
    return Problem(
        Origin(origin_path, line),
        "-",
        "-",
        f"ce fichier n'est pas un export LHEO : élément racine <{root[:40]}>, <lheo> attendu",
    )


#: libxml2's error kinds, in the words of someone fixing an export.
SYNTAX_ERRORS = {
    "ERR_INVALID_ENCODING": "encodage incorrect (le fichier ne respecte pas l'encodage qu'il déclare)",
    "ERR_UNSUPPORTED_ENCODING": "encodage déclaré inconnu",
    "ERR_UNKNOWN_ENCODING": "encodage déclaré inconnu",
    "ERR_INVALID_CHAR": "caractère interdit en XML (caractère de contrôle ou mauvais encodage)",
    "ERR_UNDECLARED_ENTITY": "entité inconnue (du HTML non échappé, comme &nbsp; ?)",
    "ERR_TAG_NOT_FINISHED": "fichier tronqué ou élément non fermé",
    "ERR_TAG_NAME_MISMATCH": "balises mal imbriquées",
    "ERR_RESOURCE_LIMIT": "limite de sécurité dépassée",
}


def _syntax_problem(origin_path: str, exc: etree.XMLSyntaxError, log: Any) -> Problem:
    """The parser's first fatal error; ``exc`` alone is vague for some (an undeclared entity)."""
    first = next((e for e in log if e.level_name == "FATAL"), None) if log is not None else None
    kind, line, detail = (first.type_name, first.line, first.message) if first else ("", exc.lineno, exc.msg)
    if "amplification" in (detail or ""):
        return _doctype_problem(origin_path, line or 1)
    what = SYNTAX_ERRORS.get(kind, "XML mal formé")
    return Problem(Origin(origin_path, line or 0), "-", "-", f"{what} : {(detail or str(exc)).strip()}")


def _release(el: etree._Element) -> None:
    """Drop a processed formation and what came before it, so memory stays flat."""
    el.clear(keep_tail=False)
    parent = el.getparent()
    if parent is not None:
        while el.getprevious() is not None:
            del parent[0]


def _nested(el: etree._Element) -> bool:
    """A ``<formation>`` inside another is no fiche: the outer one ignores it."""
    return any(_local(a.tag) == "formation" for a in el.iterancestors())


def read_lheo(path: Path) -> Iterator[Item]:
    """Every formation of an LHEO file, as a :class:`Record` or the problems that keep it out.

    Never raises for bad input: an unreadable, empty, malformed or foreign file
    yields one :class:`Problem`; formations read before a syntax error are kept.

    A plain export is cut into formations and each is parsed alone
    (:func:`split_lheo`, :func:`read_chunk`), which gives the streaming read's
    results, with the right lines past line 65535 (libxml2 keeps an element's
    line in 16 bits); any other file is streamed whole.
    """
    split = split_lheo(path)
    if split is None:
        yield from stream_lheo(path)
        return
    with split:
        for index, chunk in enumerate(split.chunks):
            try:
                items = read_chunk(split, chunk)
            except ChunkError:
                yield from read_from(split, index)
                return
            yield from items


def stream_lheo(path: Path) -> Iterator[Item]:
    """The streaming read: :func:`iterparse` over the whole file."""
    origin_path = str(path)
    try:
        with open(path, "rb") as stream:
            head = stream.read(PROLOG_BYTES)
            if not head.strip():
                yield Problem(Origin(origin_path, 0), "-", "-", "fichier vide")
                return
            first, line = _read_prolog(head)
            if first == "!DOCTYPE":
                yield _doctype_problem(origin_path, line)
                return
            if first not in ("", "lheo"):
                yield _not_lheo(origin_path, line, first)
                return
            stream.seek(0)
            yield from _read_stream(stream, origin_path)
    except OSError as exc:
        yield Problem(Origin(origin_path, 0), "-", "-", f"lecture impossible : {exc.strerror or exc}")


def _read_stream(stream: Any, origin_path: str, skip: int = 0) -> Iterator[Item]:
    """Formations as they end; the first ``skip`` ones are parsed but not read."""
    context = etree.iterparse(stream, events=("end",), tag="{*}formation", **PARSER_OPTIONS)
    count = 0
    try:
        for _event, el in context:
            if count == 0:
                refusal = _refusal(el.getroottree(), origin_path)
                if refusal is not None:
                    yield refusal
                    return
            if _nested(el):
                continue
            count += 1
            if count > skip:
                yield from _read_formation(el, origin_path)
            _release(el)
    except etree.XMLSyntaxError as exc:
        yield _syntax_problem(origin_path, exc, context.error_log)
        return
    if count == 0 and context.root is not None:
        yield _refusal(context.root.getroottree(), origin_path) or Problem(
            Origin(origin_path, context.root.sourceline or 0),
            "-",
            "-",
            "aucune formation dans ce fichier : un export LHEO vide est sans doute une erreur d'export",
        )


def _refusal(tree: etree._ElementTree, origin_path: str) -> Optional[Problem]:
    """A DOCTYPE or a foreign root the prolog scan could not see (a long prolog, UTF-32...)."""
    if tree.docinfo.doctype:
        return _doctype_problem(origin_path, 1)
    root = tree.getroot()
    if _local(root.tag) != "lheo":
        return _not_lheo(origin_path, root.sourceline or 0, _local(root.tag))
    return None


# --------------------------------------------------------------------------
# The file cut into formations, for incremental builds
# --------------------------------------------------------------------------
#
# A plain export is a prolog, ``<lheo ...><offres ...>``, formations separated
# by whitespace, then the closing tags. Its formations are found by a byte
# scan, and each one parsed alone inside copies of the file's own declaration,
# <lheo> and <offres> start tags gives exactly what the streaming read gives
# (the same bytes, namespaces, encoding, depth and parser settings); only the
# lines move, by a constant. Anything else, or anything the scan is not sure
# of, is left to the streaming read (``split_lheo`` returns None): it alone
# words the problems of odd files.

#: Files from this size on are mapped rather than read into memory.
MMAP_MIN = 32 * 1024 * 1024
#: Longest end of file (``<extras>`` after the formations) checked by parsing it.
TAIL_MAX = 16 * 1024 * 1024
#: What closes the start tags of the prefix.
SUFFIX = b"</offres></lheo>"

_WS = b" \t\r\n"  # XML's whitespace (bytes.isspace() also takes \f and \v, which XML refuses)
_S = rb"[ \t\r\n]"
#: The attributes and end of a start tag (a value may hold ``>``, never ``<``); possessive, so linear.
_ATTRS = (
    rb"(?:" + _S + rb"++[^ \t\r\n=<>/\"']++" + _S + rb"*+=" + _S + rb"*+(?:\"[^\"<]*+\"|'[^'<]*+'))*+" + _S + rb"*+>"
)
_HEAD = re.compile(
    rb"(\xef\xbb\xbf)?"  # a UTF-8 BOM
    rb"(<\?xml" + _S + rb"[^<>]*?\?>)?"  # the declaration
    rb"(?:" + _S + rb"++|<!--.*?-->|<\?.*?\?>)*+"  # comments and PIs (no DOCTYPE)
    rb"(<lheo" + _ATTRS + rb")" + _S + rb"*+(<offres" + _ATTRS + rb")",
    re.S,
)
_ENCODING = re.compile(rb"encoding" + _S + rb"*=" + _S + rb"*([\"'])([A-Za-z][A-Za-z0-9._-]*)\1")
_CLOSE = re.compile(rb"</formation" + _S + rb"*>")
#: What may follow ``<formation``: the name must end there, and ``/>`` is no fiche to cut.
_NAME_END = frozenset(b" \t\r\n>")
#: Markup whose content is not markup, by its opening, with its end.
_OPAQUE = ((b"<!--", b"-->"), (b"<![CDATA[", b"]]>"), (b"<?", b"?>"))


class ChunkError(Exception):
    """A chunk that does not parse alone: the file is malformed there.

    The chunks before it were read right; :func:`read_from` gives what the
    streaming read gives from this formation on (the syntax problem).
    """


@dataclass(frozen=True)
class Chunk:
    """One ``<formation>`` element's bytes in the file: ``data[start:end]``."""

    start: int  # byte offset of '<formation'
    end: int  # just after '</formation>'
    line: int  # line of '<formation' (1-based)


@dataclass(frozen=True, eq=False)
class SplitFile:
    """An LHEO file cut into formations, each to be read alone by :func:`read_chunk`.

    ``data`` is the file's bytes when read, for a large one an ``mmap``: it is
    closed with the SplitFile (``close()``, ``with``, or when collected).
    ``prefix + data[chunk.start:chunk.end] + suffix`` is a whole document
    whose results depend on nothing else: a digest of the prefix and the
    chunk is a sound cache key, the same bytes elsewhere giving the same
    results but for the path and the lines (moved by the change of ``chunk.line``).
    """

    path: Path
    data: Union[bytes, mmap.mmap] = field(repr=False)
    prefix: bytes  # BOM and declaration, <lheo ...> and <offres ...> start tags, as in the file
    suffix: bytes  # </offres></lheo>
    chunks: list[Chunk] = field(repr=False)
    _pages: "_Pages" = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_pages", _Pages(self.data))

    def raw(self, chunk: Chunk) -> bytes:
        """The chunk's bytes, a copy; read in order, a mapped file's pages do not pile up in memory."""
        self._pages.reading(chunk.start)
        return self.data[chunk.start : chunk.end]

    def close(self) -> None:
        if isinstance(self.data, mmap.mmap):
            self.data.close()

    def __enter__(self) -> "SplitFile":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def split_lheo(path: Path) -> Optional[SplitFile]:
    """The file cut into its formations, found by a byte scan; None when that cannot be done safely (read it whole).

    None for anything but a plain export: no or bad prolog, a DOCTYPE, a root
    other than an unprefixed ``<lheo>`` whose first child is ``<offres>``, an
    encoding in which ``<`` may not be the byte 0x3C (UTF-16, UTF-32...),
    anything but whitespace between formations, a ``<formation>`` whose
    comments, CDATA sections or PIs are not closed inside it, an end of file
    that is not well-formed or holds a formation, an empty or truncated file.
    A file malformed inside a formation is not seen here: :func:`read_chunk`
    raises :class:`ChunkError` for it.
    """
    data = _load(path)
    if data is None:
        return None
    split = _split(path, data)
    if split is None and isinstance(data, mmap.mmap):
        data.close()
    return split


def read_chunk(split: SplitFile, chunk: Chunk) -> list[Item]:
    """Exactly what the streaming reader yields for this formation (same records, same problems, same line numbers).

    Raises :class:`ChunkError` when the chunk does not parse alone.
    """
    document = b"".join((split.prefix, split.raw(chunk), split.suffix))
    try:
        root = etree.fromstring(document, _parser())
    except etree.XMLSyntaxError as exc:
        raise ChunkError(f"{split.path}:{chunk.line}: la formation ne se lit pas seule : {exc}") from exc
    if len(root) != 1 or len(root[0]) != 1:  # lheo > offres > formation, and nothing else
        raise ChunkError(f"{split.path}:{chunk.line}: plus d'un élément")
    delta = chunk.line - split.prefix.count(b"\n") - 1
    return list(_read_formation(root[0][0], str(split.path), delta))


def read_from(split: SplitFile, index: int) -> Iterator[Item]:
    """What the streaming reader yields from the formation ``split.chunks[index]`` on.

    After a :class:`ChunkError` on that chunk: the syntax problem, as :func:`read_lheo` words it.
    """
    return _read_stream(_Stream(split.data), str(split.path), skip=index)


def _load(path: Path) -> Union[bytes, mmap.mmap, None]:
    try:
        with open(path, "rb") as stream:
            status = os.fstat(stream.fileno())
            if not stat.S_ISREG(status.st_mode):
                return None
            if status.st_size < MMAP_MIN:
                return stream.read()
            return mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        return None


def _split(path: Path, data: Union[bytes, mmap.mmap]) -> Optional[SplitFile]:
    head = _HEAD.match(data[:PROLOG_BYTES])
    if head is None or not _ascii_compatible(head.group(2)):
        return None
    chunks = _scan(data, head.end())
    if chunks is None:
        return None
    prefix = _prefix(head)
    if not _frame_ok(data[: head.end()], data[chunks[-1].end :], prefix):
        return None
    return SplitFile(path, data, prefix, SUFFIX, chunks)


def _prefix(head: re.Match) -> bytes:
    """What each formation is read inside: the BOM and declaration, ``<lheo ...>`` and ``<offres ...>``, as in the file."""
    bom, declaration, lheo, offres = head.groups()
    return (bom or b"") + (declaration + b"\n" if declaration else b"") + lheo + b"\n" + offres


def _ascii_compatible(declaration: Optional[bytes]) -> bool:
    """Whether the declared encoding writes ASCII as ASCII, one byte each, and nothing else with those bytes."""
    found = _ENCODING.search(declaration) if declaration else None
    if found is None:
        return True  # UTF-8
    try:
        name = codecs.lookup(found.group(2).decode("ascii")).name
    except LookupError:
        return False
    return name in ("utf-8", "ascii") or name.startswith(("iso8859-", "cp125"))


def _scan(data: Union[bytes, mmap.mmap], body: int) -> Optional[list[Chunk]]:
    """Each formation from ``body`` on, or None when the file is not formations separated by whitespace.

    One pass over the file looks for ``<formation``; each formation and the
    whitespace after it are then copied once and looked at in the CPU cache.
    A formation ends at the last ``</formation>`` before the next one: with no
    other ``<formation`` between, any earlier ``</formation>`` is in a comment,
    a CDATA section or a PI (all checked to close inside the formation), or
    the file is malformed there (and the chunk does not parse alone).
    """
    start = data.find(b"<formation", body)
    if start == -1 or data[body:start].strip(_WS):
        return None
    line = 1 + _newlines(data, 0, start)
    chunks = []
    pages = _Pages(data)
    while True:
        step = _step(data, start)
        if step is None:
            return None
        end, following, newlines = step
        chunks.append(Chunk(start, end, line))
        if following == -1:
            return chunks
        line += newlines
        start = following
        pages.reading(start)


def _step(data: Union[bytes, mmap.mmap], start: int) -> Optional[tuple[int, int, int]]:
    """The formation at ``start``: (its end, the next '<formation' or -1, newlines up to that).

    None when the scan gives up on the file there (see :func:`_scan`).
    """
    if start + 10 >= len(data) or data[start + 10] not in _NAME_END:
        return None
    following = data.find(b"<formation", start + 10)
    piece = data[start:following] if following != -1 else data[start:]
    close = piece.rfind(b"</formation")
    found = _CLOSE.match(piece, close) if close != -1 else None
    if found is None or not _opaque_closed(piece, close) or (following != -1 and piece[found.end() :].strip(_WS)):
        return None
    return start + found.end(), following, piece.count(b"\n")


def _opaque_closed(piece: bytes, end: int) -> bool:
    """Whether every comment, CDATA section and PI of ``piece[:end]`` closes before ``end``."""
    at = _next_opaque(piece, 0, end)
    while at < end:
        for opening, closing in _OPAQUE:
            if piece.startswith(opening, at):
                after = piece.find(closing, at + len(opening), end)
                if after == -1:
                    return False
                at = _next_opaque(piece, after + len(closing), end)
                break
        else:  # "<!" but neither comment nor CDATA: malformed, or a DOCTYPE; the streaming read says which
            return False
    return True


def _next_opaque(piece: bytes, start: int, end: int) -> int:
    """Where the next ``<!`` or ``<?`` is in ``piece[start:end]``; ``end`` if none."""
    found = _OPAQUE_START.search(piece, start, end)
    return found.start() if found else end


_OPAQUE_START = re.compile(rb"<[!?]")


def _frame_ok(head: bytes, tail: bytes, prefix: bytes) -> bool:
    """Whether the file without its formations is well-formed and holds none, and the prefix parses."""
    if len(tail) > TAIL_MAX:
        return False
    try:
        root = etree.fromstring(head + tail, _parser())
        etree.fromstring(prefix + SUFFIX, _parser())
    except (etree.XMLSyntaxError, ValueError):
        return False
    return next(root.iter("{*}formation"), None) is None


def _newlines(data: Union[bytes, mmap.mmap], start: int, end: int) -> int:
    if isinstance(data, bytes):
        return data.count(b"\n", start, end)
    step = 16 * 1024 * 1024
    return sum(data[at : min(at + step, end)].count(b"\n") for at in range(start, end, step))


_DONTNEED = getattr(mmap, "MADV_DONTNEED", None)


class _Pages:
    """Hands a mapped file's pages back to the kernel behind a reader going forward.

    A mapped page once read counts in the process's memory (its maximum
    resident size) until unmapped, though the kernel may reclaim it: a build
    that reads a 900 MB export in order would seem to take 900 MB more. Pages
    are dropped (they stay in the page cache) every ``STEP`` bytes, a margin
    behind the reader: the kernel maps pages around the one touched, so a
    page dropped right behind would come back.
    """

    STEP = 64 * 1024 * 1024
    MARGIN = 1024 * 1024

    __slots__ = ("data", "kept")

    def __init__(self, data: Union[bytes, mmap.mmap]):
        self.data, self.kept = data, 0

    def reading(self, offset: int) -> None:
        if offset - self.kept < self.STEP or not isinstance(self.data, mmap.mmap) or _DONTNEED is None:
            return
        end = offset - self.MARGIN
        end -= end % mmap.PAGESIZE
        if not self.data.closed:
            self.data.madvise(_DONTNEED, self.kept, end - self.kept)
        self.kept = end


class _Stream:
    """``data`` as a file for :func:`etree.iterparse`, without copying it or moving an mmap's own position."""

    def __init__(self, data: Union[bytes, mmap.mmap]):
        self.data, self.position, self.pages = data, 0, _Pages(data)

    def read(self, size: int = -1) -> bytes:
        end = len(self.data) if size is None or size < 0 else self.position + size
        block = self.data[self.position : end]
        self.position += len(block)
        self.pages.reading(self.position)
        return block


_parsers = threading.local()


def _parser() -> etree.XMLParser:
    """The reader's parser (one per thread: a parser is not thread-safe)."""
    parser = getattr(_parsers, "parser", None)
    if parser is None:
        parser = _parsers.parser = etree.XMLParser(**PARSER_OPTIONS)
    return parser

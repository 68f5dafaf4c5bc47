"""Reader of the YAML submissions that organismes write under ``content/``.

A file holds the formations of one organisme, each with the workflow state the
Carif-Oref managers set (see ``docs/soumission-yaml.md``)::

    organisme_formation_responsable: {...}   # optional default for every formation
    formations:
      - statut: validée
        numero: 15_SOUM_000001
        ...

The file is composed into YAML nodes, never constructed: every scalar stays the
text the author wrote (``01400``, ``15_000001``, ``2026-11-02``, ``Non`` are not
turned into an octal int, an int, a date and a boolean), pydantic converts what the
model wants, and each validation error is mapped back to the line of its node.
Anchors and aliases are refused outright (no "billion laughs"), and so are
non-standard tags (no ``!!python/object``), files over :data:`MAX_BYTES` and
nesting deeper than :data:`MAX_DEPTH`.
"""

from __future__ import annotations

import copy
import difflib
import types
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Iterator, Optional, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from ..model import (
    MAX_TEXT,
    Formation,
    OrganismeFormationResponsable,
    Statut,
    check_ref,
)
from ..problems import Origin, Problem, Severity
from . import Item, Record

#: A submission file larger than this is refused before it is parsed.
MAX_BYTES = 5 * 1024 * 1024
#: Deepest nesting of mappings and lists; the model needs about ten levels.
MAX_DEPTH = 40

TOP_KEYS = ("organisme_formation_responsable", "formations")
WORKFLOW_KEYS = ("statut", "motif_refus")

#: Accepted spellings of each statut: the accents are optional.
STATUT_SPELLINGS: dict[str, Statut] = {
    "brouillon": Statut.BROUILLON,
    "proposée": Statut.PROPOSEE,
    "proposee": Statut.PROPOSEE,
    "validée": Statut.VALIDEE,
    "validee": Statut.VALIDEE,
    "refusée": Statut.REFUSEE,
    "refusee": Statut.REFUSEE,
}
#: How each statut is written in messages and documentation.
STATUT_LABELS = {
    Statut.BROUILLON: "brouillon",
    Statut.PROPOSEE: "proposée",
    Statut.VALIDEE: "validée",
    Statut.REFUSEE: "refusée",
}

_STANDARD_TAGS = frozenset(
    "tag:yaml.org,2002:" + name
    for name in ("str", "null", "bool", "int", "float", "timestamp", "merge", "seq", "map")
)
_NULL_TAG = "tag:yaml.org,2002:null"


# --------------------------------------------------------------------------
# Reading the file into nodes
# --------------------------------------------------------------------------


class _FileProblem(Exception):
    """The file as a whole cannot be read; ``line`` is 1-based, 0 when unknown."""

    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line = line
        self.message = message


class _SubmissionLoader(yaml.SafeLoader):
    """A safe loader used only to compose nodes; refuses anchors, aliases and deep nesting."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _FileProblem(_line(event.start_mark), f"alias YAML « *{event.anchor} » refusé : recopiez la valeur")
        if getattr(event, "anchor", None) is not None:
            raise _FileProblem(_line(event.start_mark), f"ancre YAML « &{event.anchor} » refusée : recopiez la valeur")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _FileProblem(_line(event.start_mark), f"imbrication trop profonde (plus de {MAX_DEPTH} niveaux)")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _line(mark: Any) -> int:
    return mark.line + 1 if mark is not None else 0


def _read_text(path: Path) -> str:
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise _FileProblem(0, "fichier introuvable") from None
    except IsADirectoryError:
        raise _FileProblem(0, "dossier et non fichier") from None
    except PermissionError:
        raise _FileProblem(0, "fichier illisible : accès refusé") from None
    except OSError as exc:
        raise _FileProblem(0, f"fichier illisible : {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise _FileProblem(
            0, f"fichier trop gros : {MAX_BYTES // (1024 * 1024)} Mo au plus ; répartissez les formations en plusieurs fichiers"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        message = f"fichier non encodé en UTF-8 (octet 0x{data[exc.start]:02x}) : enregistrez-le en UTF-8"
        raise _FileProblem(line, message) from None


#: pyyaml's most frequent syntax messages, in French.
_YAML_MESSAGES = {
    "mapping values are not allowed here": "« : » inattendu ; une valeur qui contient « : » s'écrit entre guillemets",
    "could not find expected ':'": "« : » attendu après la clé",
    "found character '\\t' that cannot start any token": "tabulation interdite : indentez avec des espaces",
    "did not find expected key": "clé attendue : indentation incohérente ?",
    "did not find expected '-' indicator": "« - » attendu : indentation de la liste incohérente ?",
    "found unexpected end of stream": "fin de fichier inattendue : guillemet non fermé ?",
    "expected a single document in the stream": "un seul document attendu : retirez les « --- » en trop",
    "found unknown escape character": "séquence d'échappement inconnue entre guillemets doubles (écrivez « \\\\ »)",
    "expected <block end>": "indentation incohérente",
    "expected <block mapping start>": "indentation incohérente",
}


def _yaml_message(exc: yaml.MarkedYAMLError) -> str:
    for said in (exc.problem or "", exc.context or ""):
        for english, french in _YAML_MESSAGES.items():
            if said.strip().startswith(english):
                return french
    return (exc.problem or exc.context or "").strip()


def _compose(text: str) -> Optional[yaml.Node]:
    try:
        return yaml.compose(text, Loader=_SubmissionLoader)
    except _FileProblem:
        raise
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise _FileProblem(line, f"caractère de contrôle interdit (U+{code:04X}) : retirez-le") from None
    except yaml.MarkedYAMLError as exc:
        line = _line(exc.problem_mark or exc.context_mark)
        raise _FileProblem(line, f"syntaxe YAML invalide : {_yaml_message(exc)}") from None
    except yaml.YAMLError as exc:  # pragma: no cover - pyyaml raises marked errors for syntax
        raise _FileProblem(0, f"syntaxe YAML invalide : {exc}") from None


# --------------------------------------------------------------------------
# Nodes to plain data (every scalar a string) and back to lines
# --------------------------------------------------------------------------


class _Plain:
    """Turns nodes into dicts, lists, strings and ``None``, collecting structural problems."""

    def __init__(self) -> None:
        self.problems: list[tuple[int, str, str]] = []

    def convert(self, node: yaml.Node, field: str) -> Any:
        if node.tag not in _STANDARD_TAGS:
            self.problems.append((_line(node.start_mark), field, f"étiquette YAML « {node.tag} » refusée"))
            return None
        if isinstance(node, yaml.ScalarNode):
            return None if node.tag == _NULL_TAG else node.value
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(item, f"{field}[{i}]") for i, item in enumerate(node.value, start=1)]
        return self._mapping(node, field)

    def _mapping(self, node: yaml.MappingNode, field: str) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _NULL_TAG:
                message = "clé invalide : un nom de champ est attendu"
                self.problems.append((_line(key_node.start_mark), field or "-", message))
                continue
            key = key_node.value
            where = f"{field}/{key}" if field else key
            if key in result:
                self.problems.append((_line(key_node.start_mark), where, f"clé « {key} » en double"))
                continue
            result[key] = self.convert(value_node, where)
        return result


def _child(node: yaml.Node, segment: Union[str, int]) -> Optional[tuple[yaml.Node, yaml.Node]]:
    """The (node to point at, node to descend into) for one step of a pydantic ``loc``."""
    if isinstance(node, yaml.MappingNode) and isinstance(segment, str):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == segment:
                return key_node, value_node
    if isinstance(node, yaml.SequenceNode) and isinstance(segment, int) and 0 <= segment < len(node.value):
        return node.value[segment], node.value[segment]
    return None


def line_of(node: yaml.Node, loc: tuple[Union[str, int], ...]) -> int:
    """1-based line of the deepest node that ``loc`` reaches from ``node``.

    A mapping entry points at its key (the line a reader looks for); a missing
    key points at the mapping that should hold it.
    """
    line = _line(node.start_mark)
    for segment in loc:
        step = _child(node, segment)
        if step is None:
            break
        mark_node, node = step
        line = _line(mark_node.start_mark)
    return line


def field_path(loc: tuple[Union[str, int], ...]) -> str:
    """``('actions', 0, 'sessions', 1, 'periode')`` -> ``actions[1]/sessions[2]/periode``."""
    path = ""
    for segment in loc:
        if isinstance(segment, int):
            path += f"[{segment + 1}]"
        else:
            path += f"/{segment}" if path else str(segment)
    return path or "-"


# --------------------------------------------------------------------------
# Pydantic errors in French
# --------------------------------------------------------------------------

_PATTERN_HINTS = {
    "codepostal": "code postal à 5 chiffres attendu (écrivez-le tel quel : 09000)",
    "departement": "numéro de département attendu (31, 09, 2A, 971)",
    "code_insee_commune": "code INSEE de commune attendu (5 caractères, 31555)",
    "region": "code INSEE de région attendu (76)",
    "code_rome": "code ROME attendu (une lettre et 4 chiffres : M1607)",
    "code_financeur": "code financeur LHEO attendu (1 ou 2 chiffres)",
    "code_rncp": "code RNCP attendu (RNCP35126 ou 35126)",
    "code_rs": "code RS attendu (RS5437 ou 5437)",
    "code_certifinfo": "code Certif Info attendu (7 chiffres au plus)",
}

_ENUM_HINTS = {
    "modalites_enseignement": "0 (présentiel), 1 (mixte) ou 2 (à distance) attendu",
}

_TYPE_MESSAGES = {
    "missing": "champ obligatoire manquant",
    "string_type": "texte attendu",
    "int_type": "nombre entier attendu",
    "int_parsing": "nombre entier attendu",
    "int_from_float": "nombre entier attendu",
    "float_type": "nombre attendu",
    "float_parsing": "nombre attendu (décimales après un point : 43.6)",
    "decimal_type": "montant attendu",
    "decimal_parsing": "montant attendu (sans espace ni symbole, décimales après un point : 1250.50)",
    "bool_type": "oui ou non attendu",
    "bool_parsing": "oui ou non attendu",
    "list_type": "liste attendue (un élément par ligne « - valeur »)",
    "model_type": "table de clés attendue (« clé: valeur » sur les lignes suivantes, indentées)",
    "model_attributes_type": "table de clés attendue (« clé: valeur » sur les lignes suivantes, indentées)",
    "dict_type": "table de clés attendue",
    "too_short": "au moins {min_length} élément(s) attendu(s)",
    "too_long": "au plus {max_length} élément(s) admis",
    "string_too_long": "texte trop long : {max_length} caractères au plus",
    "greater_than_equal": "valeur supérieure ou égale à {ge} attendue",
    "less_than_equal": "valeur inférieure ou égale à {le} attendue",
    "enum": "valeur attendue parmi : {expected}",
}


def _shown(value: Any) -> str:
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:39] + "…"
        return f" (lu : « {text} »)"
    return ""


def french_message(error: dict[str, Any], allowed_keys: Optional[list[str]] = None) -> str:
    """The French message of one pydantic error (custom model errors are French already)."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    names = [s for s in error["loc"] if isinstance(s, str)]
    last = names[-1] if names else ""
    if kind == "extra_forbidden":
        key = str(error["loc"][-1])
        return f"clé inconnue « {key} »" + _suggestion(key, allowed_keys or [])
    if kind == "string_pattern_mismatch":
        return _PATTERN_HINTS.get(last, "format invalide") + _shown(error.get("input"))
    if kind == "enum" and last in _ENUM_HINTS:
        return _ENUM_HINTS[last] + _shown(error.get("input"))
    if kind in _TYPE_MESSAGES:
        message = _TYPE_MESSAGES[kind].format(**ctx)
        return message + ("" if kind in ("missing", "string_too_long", "too_short", "too_long") else _shown(error.get("input")))
    message = error["msg"]
    # model.py writes ``{value!r}`` in a few templates, which pydantic does not format.
    for name, value in ctx.items():
        message = message.replace("{" + name + "!r}", f"« {value} »")
    if kind == "lheo_date" and message.endswith("AAAAMMJJ attendu"):
        message += " (ou AAAA-MM-JJ)"
    return message


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.strip().lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).replace("-", "_").replace(" ", "_")


def _suggestion(key: str, allowed: list[str]) -> str:
    folded = {_fold(name): name for name in allowed}
    guess = folded.get(_fold(key))
    if guess is None:
        close = difflib.get_close_matches(_fold(key), list(folded), n=1, cutoff=0.75)
        guess = folded[close[0]] if close else None
    return f" : vouliez-vous dire « {guess} » ?" if guess else ""


def _unwrap_model(annotation: Any) -> Optional[type[BaseModel]]:
    """The model inside ``Optional[...]``, ``list[...]`` or ``Annotated[...]``, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType, list, Annotated):
        for arg in get_args(annotation):
            found = _unwrap_model(arg)
            if found is not None:
                return found
    return None


def allowed_keys(model: type[BaseModel], loc: tuple[Union[str, int], ...]) -> list[str]:
    """The field names of the model that ``loc`` (a path to a mapping) lands in."""
    current: Optional[type[BaseModel]] = model
    for segment in loc:
        if current is None:
            return []
        if isinstance(segment, str):
            info = current.model_fields.get(segment)
            current = _unwrap_model(info.annotation) if info else None
    return list(current.model_fields) if current else []


# --------------------------------------------------------------------------
# The reader
# --------------------------------------------------------------------------


def read_yaml(path: Path) -> Iterator[Item]:
    """Records and problems of one submission file.

    A formation with any problem yields its problems and no record; the other
    formations of the file are read all the same. The problems of a ``brouillon``
    are warnings: a draft is never published, and must not block the build.
    """
    where = str(path)
    try:
        root = _compose(_read_text(path))
    except _FileProblem as exc:
        yield Problem(Origin(where, exc.line), "-", "-", exc.message)
        return
    if root is None:
        yield Problem(Origin(where, 0), "-", "-", "fichier vide : une liste « formations: » est attendue")
        return
    plain = _Plain()
    data = plain.convert(root, "")
    if plain.problems:
        for line, field, message in plain.problems:
            yield Problem(Origin(where, line), "-", field, message)
        return
    yield from _read_root(where, root, data)


def _read_root(where: str, root: yaml.Node, data: Any) -> Iterator[Item]:
    if not isinstance(data, dict):
        yield Problem(Origin(where, _line(root.start_mark)), "-", "-",
                      "une table de clés est attendue au premier niveau, avec une liste « formations: »")
        return
    for key in data:
        if key not in TOP_KEYS:
            yield Problem(Origin(where, line_of(root, (key,))), "-", key,
                          f"clé inconnue « {key} » au premier niveau" + _suggestion(key, list(TOP_KEYS)))
    if "formations" not in data:
        yield Problem(Origin(where, _line(root.start_mark)), "-", "formations", "liste « formations: » manquante")
        return
    formations = data["formations"]
    if not isinstance(formations, list):
        yield Problem(Origin(where, line_of(root, ("formations",))), "-", "formations",
                      "liste attendue : chaque formation commence par « - » sur sa ligne")
        return
    if not formations:
        yield Problem(Origin(where, line_of(root, ("formations",))), "-", "formations",
                      "aucune formation : supprimez le fichier s'il n'y a plus rien à soumettre")
        return
    default = _Default(data.get("organisme_formation_responsable"), line_of(root, ("organisme_formation_responsable",)))
    if default.value is not None:
        default_problems = list(_default_problems(where, root, default.value))
        default.valid = not default_problems
        yield from default_problems
    formations_node = _child(root, "formations")[1]
    for index, (node, item) in enumerate(zip(formations_node.value, formations)):
        yield from _read_formation(where, node, item, index, default)


def _default_problems(where: str, root: yaml.Node, default: Any) -> Iterator[Problem]:
    """The file's default organisme is checked once, not once per formation using it."""
    try:
        OrganismeFormationResponsable.model_validate(default)
    except ValidationError as exc:
        for error in exc.errors():
            loc = ("organisme_formation_responsable", *error["loc"])
            yield Problem(Origin(where, line_of(root, loc)), "-", field_path(loc),
                          french_message(error, allowed_keys(Formation, loc[:-1])))


@dataclass
class _Default:
    """The file's default organisme: its data, its line, and whether it validated."""

    value: Any
    line: int
    valid: bool = True


def _read_formation(where: str, node: yaml.Node, item: Any, index: int, default: _Default) -> Iterator[Item]:
    line = _line(node.start_mark)
    if not isinstance(item, dict):
        yield Problem(Origin(where, line), "-", f"formations[{index + 1}]",
                      "table de clés attendue (« statut: », « numero: », « intitule_formation: »...)")
        return
    numero = _numero(item.get("numero"))
    problems: list[tuple[int, str, str]] = []
    fields = {k: v for k, v in item.items() if k not in WORKFLOW_KEYS}
    uses_default = "organisme_formation_responsable" not in fields and default.value is not None
    if uses_default:
        fields["organisme_formation_responsable"] = copy.deepcopy(default.value)

    statut = _statut(item, node, problems)
    motif = _motif(item, node, statut, problems)
    if "datemaj" in fields and str(fields["datemaj"] or "").strip() in ("", "00000000", "99999999"):
        problems.append((line_of(node, ("datemaj",)), "datemaj", "date de mise à jour obligatoire (AAAA-MM-JJ)"))

    formation: Optional[Formation] = None
    try:
        formation = Formation.model_validate(fields)
    except ValidationError as exc:
        for error in exc.errors():
            loc = _refine(error)
            if uses_default and loc[:1] == ("organisme_formation_responsable",):
                continue  # reported once, against the default's own lines
            allowed = allowed_keys(Formation, loc[:-1])
            if len(loc) == 1:
                allowed += list(WORKFLOW_KEYS)
            problems.append((line_of(node, loc), field_path(loc), french_message(error, allowed)))
    if uses_default and not default.valid:
        problems.append((line, "organisme_formation_responsable",
                         f"l'organisme par défaut du fichier (ligne {default.line}) est invalide"))

    if problems:
        # A draft is unfinished by nature: its problems are shown, but do not block the build.
        severity = Severity.WARNING if statut is Statut.BROUILLON else Severity.ERROR
        for problem_line, field, message in sorted(problems, key=lambda p: p[0]):
            yield Problem(Origin(where, problem_line), numero, field, message, severity)
        return
    assert formation is not None and statut is not None
    yield Record(Origin(where, line), formation, statut, motif)


def _refine(error: dict[str, Any]) -> tuple[Union[str, int], ...]:
    """Point a model-level error at the field it is about."""
    loc = tuple(error["loc"])
    if error["type"] == "periode_order":
        return (*loc, "fin")
    if error["type"] == "lieu_sans_adresse":
        return (*loc, "lieux_de_formation", int(error["ctx"]["i"]) - 1, "adresse")
    return loc


def _numero(value: Any) -> str:
    """The formation's numero for messages, or ``-`` when it has none worth showing."""
    if not isinstance(value, str):
        return "-"
    try:
        return check_ref(value)
    except Exception:
        return "-"


def _statut(item: dict[str, Any], node: yaml.Node, problems: list) -> Optional[Statut]:
    value = item.get("statut")
    expected = "brouillon, proposée, validée ou refusée attendu"
    if value is None:
        where = line_of(node, ("statut",)) if "statut" in item else _line(node.start_mark)
        problems.append((where, "statut", f"statut manquant : {expected}"))
        return None
    statut = STATUT_SPELLINGS.get(value.strip()) if isinstance(value, str) else None
    if statut is None:
        problems.append((line_of(node, ("statut",)), "statut", f"statut inconnu{_shown(value)} : {expected}"))
    return statut


def _motif(item: dict[str, Any], node: yaml.Node, statut: Optional[Statut], problems: list) -> Optional[str]:
    """``motif_refus`` is required with ``refusée`` and refused with any other statut."""
    value = item.get("motif_refus")
    if value is not None and not isinstance(value, str):
        problems.append((line_of(node, ("motif_refus",)), "motif_refus", "texte attendu"))
        return None
    motif = (value or "").strip() or None
    if motif and len(motif) > MAX_TEXT:
        problems.append((line_of(node, ("motif_refus",)), "motif_refus", f"texte trop long : {MAX_TEXT} caractères au plus"))
    if statut is Statut.REFUSEE and motif is None:
        problems.append((line_of(node, ("motif_refus" if "motif_refus" in item else "statut",)), "motif_refus",
                         "motif de refus obligatoire avec le statut « refusée »"))
    elif statut is not None and statut is not Statut.REFUSEE and motif is not None:
        problems.append((line_of(node, ("motif_refus",)), "motif_refus",
                         f"motif de refus admis seulement avec le statut « refusée » (statut : {STATUT_LABELS[statut]}) ; "
                         "retirez-le quand la formation est reproposée"))
    return motif


# --------------------------------------------------------------------------
# JSON Schema
# --------------------------------------------------------------------------

_DEF_DESCRIPTIONS = {
    "Action": "Action (LHEO <action>, la « session » des Carif-Oref) : lieu, rythme, public, financement, "
    "et ses périodes datées (sessions).",
    "Session": "Session (LHEO <session>) : une période datée de l'action et son adresse d'inscription.",
    "Periode": "Période : début et fin (AAAA-MM-JJ ou AAAAMMJJ ; 00000000 / 99999999 : inconnue).",
    "Adresse": "Adresse postale ; écrivez le code postal tel quel (09000), sans guillemets si vous voulez.",
    "Coordonnees": "Coordonnées d'une personne ou d'un lieu.",
    "OrganismeFormationResponsable": "Organisme responsable de la formation ; son SIRET nomme sa page.",
    "OrganismeFormateur": "Organisme qui dispense la formation, s'il n'est pas le responsable.",
    "OrganismeFinanceur": "Financeur de l'action (code du dictionnaire LHEO des financeurs).",
    "Certification": "Certification visée (RNCP, répertoire spécifique, Certif Info).",
    "EligibiliteCpf": "Liste CPF qui inclut la session.",
    "Geolocalisation": "Coordonnées géographiques (degrés décimaux).",
    "ModalitesEnseignement": "0 : présentiel, 1 : mixte, 2 : à distance.",
}

_FIELD_DESCRIPTIONS = {
    ("Soumission", "numero"): "Numéro de la formation, unique, préfixé par celui du Carif-Oref (15_ en Occitanie) ; "
    "lettres, chiffres, « _ », « - » et « . ».",
    ("Soumission", "datemaj"): "Date de dernière mise à jour de la fiche (obligatoire, date complète).",
    ("Soumission", "intitule_formation"): "Intitulé de la formation (obligatoire).",
    ("Soumission", "certifiante"): "La formation mène-t-elle à une certification ? (oui / non)",
    ("Soumission", "actions"): "Les actions de la formation (au moins une).",
    ("Soumission", "organisme_formation_responsable"): "Organisme responsable ; à défaut, celui donné en tête du fichier.",
    ("Action", "lieux_de_formation"): "Lieux hors des locaux de l'organisme, chacun avec une adresse "
    "(code postal et ville). Vide : la formation a lieu dans les locaux de l'organisme.",
    ("Action", "entrees_sorties_permanentes"): "Entrées et sorties permanentes (oui / non).",
    ("Action", "sessions"): "Les périodes datées de l'action (au moins une).",
    ("Action", "modalites_enseignement"): "0 : présentiel, 1 : mixte, 2 : à distance.",
    ("OrganismeFormationResponsable", "siret_organisme_formation"): "SIRET de l'établissement : 14 chiffres, clé de contrôle juste.",
    ("OrganismeFormateur", "siret_formateur"): "SIRET de l'établissement : 14 chiffres, clé de contrôle juste.",
    ("Session", "etat_recrutement"): "1 : ouvert, 2 : fermé, 3 : suspendu.",
}

_FLAG_SCHEMA = {"anyOf": [{"type": "boolean"}, {"enum": ["oui", "non", "vrai", "faux", "true", "false", "0", "1", 0, 1]}]}


def _yaml_friendly(schema: Any) -> Any:
    """Loosen scalar types the way the reader does, so that editors agree with it.

    The reader keeps every scalar as written, so ``codepostal: 09000`` or
    ``datemaj: 20261102`` (numbers to a YAML editor) are fine where a string is
    expected, and flags may be written oui/non.
    """
    if isinstance(schema, list):
        return [_yaml_friendly(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    schema = {key: _yaml_friendly(value) for key, value in schema.items() if key != "title"}
    if schema.get("type") == "string" and "enum" not in schema:
        schema["type"] = ["string", "number"]
    elif schema.get("type") == "boolean":
        rest = {key: value for key, value in schema.items() if key != "type"}
        schema = {**copy.deepcopy(_FLAG_SCHEMA), **rest}
    return schema


def submission_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a YAML submission file, with French descriptions."""
    base = Formation.model_json_schema(mode="validation")
    defs = base.pop("$defs")
    for name, description in _DEF_DESCRIPTIONS.items():
        if name in defs:
            defs[name]["description"] = description

    soumission = copy.deepcopy(base)
    soumission["description"] = "Une formation soumise (LHEO <formation>), avec son statut dans le circuit de validation."
    statut_values = list(STATUT_SPELLINGS)
    soumission["properties"] = {
        "statut": {
            "enum": statut_values,
            "description": "brouillon (en cours d'écriture) → proposée (par l'organisme) → validée ou refusée "
            "(par le Carif-Oref). Seules les formations validées sont publiées. Accents facultatifs.",
        },
        "motif_refus": {
            "type": "string",
            "maxLength": MAX_TEXT,
            "description": "Pourquoi le Carif-Oref a refusé la formation : obligatoire avec « refusée », interdit sinon.",
        },
        **soumission["properties"],
    }
    soumission["required"] = ["statut"] + [name for name in soumission["required"] if name != "organisme_formation_responsable"]
    refusee = [value for value, statut in STATUT_SPELLINGS.items() if statut is Statut.REFUSEE]
    soumission["allOf"] = [
        {
            "if": {"properties": {"statut": {"enum": refusee}}, "required": ["statut"]},
            "then": {"required": ["motif_refus"]},
            "else": {"not": {"required": ["motif_refus"]}},
        }
    ]
    # The model lets LHEO exports say "unknown" (00000000); a submission must give a real day.
    date_branch = next(branch for branch in soumission["properties"]["datemaj"]["anyOf"] if branch.get("type") != "null")
    soumission["properties"]["datemaj"] = {**date_branch, "pattern": r"^(\d{8}|\d{4}-\d{2}-\d{2})$"}
    defs["Soumission"] = soumission

    # The model checks it after validation; say it in the schema too, for editors.
    defs["Action"]["properties"]["lieux_de_formation"]["items"] = {
        "allOf": [
            {"$ref": "#/$defs/Coordonnees"},
            {"required": ["adresse"], "properties": {"adresse": {"required": ["codepostal", "ville"]}}},
        ]
    }
    for (def_name, field), description in _FIELD_DESCRIPTIONS.items():
        properties = defs[def_name]["properties"]
        if field in properties:
            properties[field]["description"] = description

    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "description": "Fichier YAML des formations d'un organisme, sous content/ ; voir docs/soumission-yaml.md.",
        "type": "object",
        "additionalProperties": False,
        "required": ["formations"],
        "properties": {
            "organisme_formation_responsable": {
                "$ref": "#/$defs/OrganismeFormationResponsable",
                "description": "Organisme responsable par défaut, appliqué à chaque formation qui n'en donne pas.",
            },
            "formations": {
                "type": "array",
                "minItems": 1,
                "items": {"$ref": "#/$defs/Soumission"},
                "description": "Les formations de l'organisme, chacune avec son statut.",
            },
        },
        "$defs": defs,
    }
    friendly = _yaml_friendly(schema)
    return {"$schema": friendly.pop("$schema"), "title": "Soumission de formations (YAML)", **friendly}


__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "STATUT_LABELS",
    "STATUT_SPELLINGS",
    "read_yaml",
    "submission_json_schema",
]

"""The YAML submissions reader, its JSON Schema and the example submissions."""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path
from typing import Any

import pytest
import yaml as pyyaml

from catalogue.model import Formation, PartialDate, Statut
from catalogue.problems import Problem, Severity
from catalogue.regions import geo
from catalogue.sources import Record
from catalogue.sources import yaml as source
from catalogue.sources.yaml import read_yaml, submission_json_schema

EXAMPLES = Path(__file__).resolve().parent.parent / "content" / "soumissions"

BASE = """\
organisme_formation_responsable:
  siret_organisme_formation: "89123456700016"
  nom_organisme: Garonne Compétences
  raison_sociale: Garonne Compétences SAS
formations:
  - statut: validée
    numero: 15_T_000001
    datemaj: 2026-11-02
    intitule_formation: Agent de restauration
    actions:
      - rythme_formation: Temps plein
        sessions:
          - periode:
              debut: 2026-09-14
              fin: 2027-01-29
  - statut: proposée
    numero: 15_T_000002
    datemaj: 20261102
    intitule_formation: Cariste
    actions:
      - sessions:
          - periode: {debut: 2027-03-08, fin: 2027-03-12}
"""


def read(tmp_path: Path, text: str, name: str = "soumission.yaml") -> list:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return list(read_yaml(path))


def records(items: list) -> dict[str, Record]:
    return {item.numero: item for item in items if isinstance(item, Record)}


def problems(items: list) -> list[Problem]:
    return [item for item in items if isinstance(item, Problem)]


def line_of(text: str, marker: str) -> int:
    """1-based line of the only line of ``text`` holding ``marker``."""
    lines = [i for i, line in enumerate(text.splitlines(), start=1) if marker in line]
    assert len(lines) == 1, (marker, lines)
    return lines[0]


def fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


# --------------------------------------------------------------------------
# Valid input
# --------------------------------------------------------------------------


def test_base_reads_with_default_organisme(tmp_path):
    items = read(tmp_path, BASE)
    assert problems(items) == []
    found = records(items)
    assert {n: r.statut for n, r in found.items()} == {"15_T_000001": Statut.VALIDEE, "15_T_000002": Statut.PROPOSEE}
    for record in found.values():
        assert record.formation.organisme_formation_responsable.siret_organisme_formation == "89123456700016"
        assert record.motif_refus is None
    assert found["15_T_000001"].origin.line == line_of(BASE, "- statut: validée")
    assert found["15_T_000002"].formation.datemaj == PartialDate(2026, 11, 2)


def test_own_organisme_wins_over_default(tmp_path):
    text = BASE.replace(
        "    intitule_formation: Cariste\n",
        "    intitule_formation: Cariste\n"
        "    organisme_formation_responsable:\n"
        "      siret_organisme_formation: 852 369 741 00016\n"
        "      nom_organisme: Pyrénées Santé Formation\n"
        "      raison_sociale: Association Pyrénées Santé Formation\n",
    )
    found = records(read(tmp_path, text))
    assert found["15_T_000002"].formation.organisme_formation_responsable.siret_organisme_formation == "85236974100016"
    assert found["15_T_000001"].formation.organisme_formation_responsable.siret_organisme_formation == "89123456700016"


def test_scalars_stay_as_written(tmp_path):
    """YAML 1.1 would read 01400 as octal 768, 15_000001 as 15000001, Non as false."""
    text = """\
formations:
  - statut: validee
    numero: 0000910001
    datemaj: 2026-11-02
    intitule_formation: Agent de restauration
    contenu_formation: |
      Ligne un
      Ligne deux
    organisme_formation_responsable:
      siret_organisme_formation: 89123456700016
      nom_organisme: Garonne Compétences
      raison_sociale: Garonne Compétences SAS
    actions:
      - numero: 15_000001
        restauration: Non
        nombre_heures_total: 595
        prix_total_ttc: 1150.50
        entrees_sorties_permanentes: oui
        lieux_de_formation:
          - adresse:
              codepostal: 01400
              ville: Châtillon-sur-Chalaronne
              departement: 01
              code_insee_commune: 01093
        sessions:
          - numero: 0777
            periode: {debut: 20260900, fin: 2027-06-30}
"""
    items = read(tmp_path, text)
    assert problems(items) == []
    formation = records(items)["0000910001"].formation
    action = formation.actions[0]
    adresse = action.lieux_de_formation[0].adresse
    assert formation.numero == "0000910001"
    assert formation.organisme_formation_responsable.siret_organisme_formation == "89123456700016"
    assert formation.contenu_formation == "Ligne un\nLigne deux"
    assert action.numero == "15_000001"
    assert action.restauration == "Non"
    assert action.nombre_heures_total == 595
    assert str(action.prix_total_ttc) == "1150.50"
    assert action.entrees_sorties_permanentes is True
    assert (adresse.codepostal, adresse.departement, adresse.code_insee_commune) == ("01400", "01", "01093")
    assert action.sessions[0].numero == "0777"
    assert action.sessions[0].periode.debut == PartialDate(2026, 9)
    assert formation.datemaj == PartialDate(2026, 11, 2)


def test_statut_spellings(tmp_path):
    for written, statut in [("proposee", Statut.PROPOSEE), ("proposée", Statut.PROPOSEE), ("brouillon", Statut.BROUILLON)]:
        text = BASE.replace("statut: validée", f"statut: {written}")
        assert records(read(tmp_path, text))["15_T_000001"].statut is statut


def test_refusee_carries_its_motif(tmp_path):
    text = BASE.replace("  - statut: validée\n", "  - statut: refusée\n    motif_refus: |\n      Dates dépassées.\n      Merci de les corriger.\n")
    record = records(read(tmp_path, text))["15_T_000001"]
    assert record.statut is Statut.REFUSEE
    assert record.motif_refus == "Dates dépassées.\nMerci de les corriger."


# --------------------------------------------------------------------------
# One formation wrong: its problems name line, numero and field; the others still read
# --------------------------------------------------------------------------

LIEU_SANS_ADRESSE = "        lieux_de_formation:\n          - adresse: {ville: Foix}\n"

BAD_FORMATIONS = [
    # (id, old, new, marker of the expected line, numero, field, words of the message)
    ("typo", "intitule_formation: Agent", "intitulé_formation: Agent", "intitulé_formation",
     "15_T_000001", "intitulé_formation", "vouliez-vous dire « intitule_formation »"),
    ("typo-deep", "              debut: 2026-09-14", "              debutt: 2026-09-14", "debutt",
     "15_T_000001", "actions[1]/sessions[1]/periode/debutt", "clé inconnue"),
    ("bad-date", "debut: 2026-09-14", "debut: 2026-02-30", "debut: 2026-02-30",
     "15_T_000001", "actions[1]/sessions[1]/periode/debut", "jour impossible"),
    ("not-a-date", "debut: 2026-09-14", "debut: 14/09/2026", "debut: 14/09/2026",
     "15_T_000001", "actions[1]/sessions[1]/periode/debut", "AAAA-MM-JJ"),
    ("fin-before-debut", "fin: 2027-01-29", "fin: 2025-01-29", "fin: 2025-01-29",
     "15_T_000001", "actions[1]/sessions[1]/periode/fin", "précède le début"),
    ("missing-intitule", "    intitule_formation: Agent de restauration\n", "", "- statut: validée",
     "15_T_000001", "intitule_formation", "obligatoire"),
    ("empty-intitule", "intitule_formation: Agent de restauration", "intitule_formation: ''", "intitule_formation: ''",
     "15_T_000001", "intitule_formation", "obligatoire"),
    ("missing-numero", "    numero: 15_T_000001\n", "", "- statut: validée",
     "-", "numero", "obligatoire"),
    ("bad-numero", "numero: 15_T_000001", "numero: 15/../T", "numero: 15/../T",
     "-", "numero", "numéro invalide"),
    ("missing-datemaj", "    datemaj: 2026-11-02\n", "", "- statut: validée",
     "15_T_000001", "datemaj", "obligatoire"),
    ("unknown-datemaj", "datemaj: 2026-11-02", "datemaj: 00000000", "datemaj: 00000000",
     "15_T_000001", "datemaj", "obligatoire"),
    ("lieu-sans-adresse", "      - rythme_formation: Temps plein\n", "      - rythme_formation: Temps plein\n" + LIEU_SANS_ADRESSE,
     "- adresse: {ville: Foix}", "15_T_000001", "actions[1]/lieux_de_formation[1]/adresse", "code postal et ville"),
    ("no-session", "        sessions:\n          - periode:\n              debut: 2026-09-14\n              fin: 2027-01-29\n",
     "        sessions: []\n", "sessions: []", "15_T_000001", "actions[1]/sessions", "au moins 1"),
    ("refusee-sans-motif", "statut: validée", "statut: refusée", "statut: refusée",
     "15_T_000001", "motif_refus", "obligatoire"),
    ("motif-sans-refus", "  - statut: validée\n", "  - statut: validée\n    motif_refus: Trop vague.\n", "motif_refus",
     "15_T_000001", "motif_refus", "seulement avec le statut « refusée »"),
    ("unknown-statut", "statut: validée", "statut: publiée", "statut: publiée",
     "15_T_000001", "statut", "brouillon, proposée, validée ou refusée"),
    ("missing-statut", "  - statut: validée\n    numero: 15_T_000001\n", "  - numero: 15_T_000001\n", "- numero: 15_T_000001",
     "15_T_000001", "statut", "statut manquant"),
    ("postcode", "      - rythme_formation: Temps plein\n",
     "      - rythme_formation: Temps plein\n        lieux_de_formation:\n          - adresse: {codepostal: 3100, ville: Toulouse}\n",
     "codepostal: 3100", "15_T_000001", "actions[1]/lieux_de_formation[1]/adresse/codepostal", "code postal"),
    ("flag", "      - rythme_formation: Temps plein\n", "      - rythme_formation: Temps plein\n        conventionnement: peut-être\n",
     "conventionnement", "15_T_000001", "actions[1]/conventionnement", "oui ou non"),
    ("list", "      - rythme_formation: Temps plein\n", "      - rythme_formation: Temps plein\n        url_action: {a: b}\n",
     "url_action", "15_T_000001", "actions[1]/url_action", "liste attendue"),
    ("bad-own-siret", "    intitule_formation: Agent de restauration\n",
     "    intitule_formation: Agent de restauration\n    organisme_formation_responsable:\n"
     "      siret_organisme_formation: 89123456700017\n      nom_organisme: X\n      raison_sociale: X SA\n",
     "89123456700017", "15_T_000001", "organisme_formation_responsable/siret_organisme_formation", "clé de contrôle"),
]


@pytest.mark.parametrize(
    "old,new,marker,numero,field,words", [case[1:] for case in BAD_FORMATIONS], ids=[case[0] for case in BAD_FORMATIONS]
)
def test_bad_formation(tmp_path, old, new, marker, numero, field, words):
    assert old in BASE
    text = BASE.replace(old, new, 1)
    items = read(tmp_path, text)
    found = [p for p in problems(items) if p.field == field]
    assert found, [str(p) for p in problems(items)]
    problem = found[0]
    assert problem.origin.line == line_of(text, marker)
    assert problem.numero == numero
    assert words in problem.message
    assert problem.origin.path == str(tmp_path / "soumission.yaml")
    assert str(problem) == f"{tmp_path / 'soumission.yaml'}:{problem.origin.line}: {numero}: {field}: {problem.message}"
    # The broken formation yields no record; the other one still does.
    assert list(records(items)) == ["15_T_000002"]
    assert all(p.numero == numero for p in problems(items))


def test_every_problem_of_a_formation_is_reported(tmp_path):
    text = BASE.replace("debut: 2026-09-14", "debut: 2026-13-01").replace("intitule_formation: Agent", "intitule_formaton: Agent")
    fields = {p.field for p in problems(read(tmp_path, text))}
    assert {"actions[1]/sessions[1]/periode/debut", "intitule_formaton", "intitule_formation"} <= fields


def test_bad_default_organisme_reported_once(tmp_path):
    text = BASE.replace('"89123456700016"', '"89123456700017"')
    items = read(tmp_path, text)
    assert records(items) == {}
    siret = [p for p in problems(items) if p.field == "organisme_formation_responsable/siret_organisme_formation"]
    assert len(siret) == 1
    assert siret[0].numero == "-"
    assert siret[0].origin.line == line_of(text, "89123456700017")
    dependents = {p.numero: p for p in problems(items) if p.field == "organisme_formation_responsable"}
    assert set(dependents) == {"15_T_000001", "15_T_000002"}
    assert dependents["15_T_000002"].origin.line == line_of(text, "- statut: proposée")
    assert "ligne 1" in dependents["15_T_000002"].message


def test_formation_without_any_organisme(tmp_path):
    text = BASE.split("formations:\n", 1)[1]
    items = read(tmp_path, "formations:\n" + text)
    found = [p for p in problems(items) if p.field == "organisme_formation_responsable"]
    assert {p.numero for p in found} == {"15_T_000001", "15_T_000002"}
    assert all("obligatoire" in p.message for p in found)


def test_formation_that_is_not_a_mapping(tmp_path):
    text = BASE.replace("formations:\n", "formations:\n  - juste une phrase\n")
    items = read(tmp_path, text)
    (problem,) = problems(items)
    assert (problem.origin.line, problem.field) == (line_of(text, "juste une phrase"), "formations[1]")
    assert set(records(items)) == {"15_T_000001", "15_T_000002"}


# --------------------------------------------------------------------------
# The file as a whole
# --------------------------------------------------------------------------


def only_problem(items: list) -> Problem:
    assert len(items) == 1 and isinstance(items[0], Problem), items
    return items[0]


@pytest.mark.parametrize(
    "text,line,words",
    [
        ("formations:\n  - statut: validée\n    intitule_formation: Agent: cuisine\n", 3, "guillemets"),
        ("formations:\n  - statut: validée\n\t- numero: x\n", 3, "tabulation"),
        ("formations:\n  - intitule_formation: \"Agent\n", 3, "syntaxe YAML"),
        ("formations: []\n---\nformations: []\n", 2, "un seul document"),
        ("defaut: &org {nom_organisme: X}\nformations: []\n", 1, "ancre YAML « &org » refusée"),
        ("formations:\n  - statut: validée\n    organisme_formation_responsable: *org\n", 3, "alias YAML « *org » refusé"),
        ("formations:\n  - !!python/object/apply:os.system [\"true\"]\n", 2, "étiquette YAML"),
        ("formations:\n  - statut: brouillon\n    statut: validée\n", 3, "clé « statut » en double"),
        ("formations: " + "[" * 60 + "]" * 60 + "\n", 1, "imbrication trop profonde"),
        ("- statut: validée\n- statut: brouillon\n", 1, "premier niveau"),
        ("Agent de restauration\n", 1, "premier niveau"),
        ("organisme_formation_responsable: {}\n", 1, "« formations: » manquante"),
        ("formations: 15_T_000001\n", 1, "liste attendue"),
        ("formations: []\n", 1, "aucune formation"),
        ("\n# rien\n", 0, "fichier vide"),
        ("", 0, "fichier vide"),
        ("formations:\n  - statut: val\x07idée\n", 2, "caractère de contrôle"),
    ],
)
def test_bad_file(tmp_path, text, line, words):
    problem = only_problem(read(tmp_path, text))
    assert problem.origin.line == line
    assert words in problem.message
    assert problem.numero == "-"


def test_unknown_top_level_key_is_reported_but_formations_still_read(tmp_path):
    text = BASE + "formation:\n  - statut: validée\n"
    items = read(tmp_path, text)
    (problem,) = problems(items)
    assert (problem.field, problem.origin.line) == ("formation", text.splitlines().index("formation:") + 1)
    assert "vouliez-vous dire « formations »" in problem.message
    assert set(records(items)) == {"15_T_000001", "15_T_000002"}


def test_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(BASE.replace("Cariste", "Cariste qualifié").encode("latin-1"))
    problem = only_problem(list(read_yaml(path)))
    assert problem.origin.line == line_of(BASE, "nom_organisme: Garonne Compétences")
    assert "UTF-8" in problem.message


def test_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + BASE.encode("utf-8"))
    assert set(records(list(read_yaml(path)))) == {"15_T_000001", "15_T_000002"}


def test_file_over_the_size_bound_is_refused_unparsed(tmp_path, monkeypatch):
    monkeypatch.setattr(source, "MAX_BYTES", len(BASE.encode()) - 1)
    problem = only_problem(read(tmp_path, BASE))
    assert "trop gros" in problem.message
    monkeypatch.setattr(source, "MAX_BYTES", len(BASE.encode()))
    assert problems(read(tmp_path, BASE)) == []


def test_default_size_bound_is_five_megabytes():
    assert source.MAX_BYTES == 5 * 1024 * 1024


def test_missing_file(tmp_path):
    problem = only_problem(list(read_yaml(tmp_path / "absent.yaml")))
    assert (problem.origin.line, problem.message) == (0, "fichier introuvable")


# --------------------------------------------------------------------------
# The example submissions
# --------------------------------------------------------------------------

EXPECTED_STATUTS = {
    "15_SOUM_000101": Statut.VALIDEE,
    "15_SOUM_000102": Statut.VALIDEE,
    "15_SOUM_000103": Statut.PROPOSEE,
    "15_SOUM_000104": Statut.REFUSEE,
    "15_SOUM_000105": Statut.BROUILLON,
    "15_SOUM_000201": Statut.VALIDEE,
}


def example_items() -> list:
    files = sorted(EXAMPLES.glob("*.yaml"))
    assert files
    return [item for path in files for item in read_yaml(path)]


def test_examples_read_without_problem_and_with_their_statuts():
    items = example_items()
    assert [str(p) for p in problems(items)] == []
    found = records(items)
    assert {n: r.statut for n, r in found.items()} == EXPECTED_STATUTS
    assert set(Statut) == {r.statut for r in found.values()}
    for record in found.values():
        assert record.numero.startswith("15_")
        assert (record.motif_refus is not None) == (record.statut is Statut.REFUSEE)


def test_examples_show_what_the_demo_needs():
    found = records(example_items())
    actions = [a for r in found.values() for a in r.formation.actions]
    permanent = [a for a in actions if a.entrees_sorties_permanentes]
    assert permanent and all(len(a.sessions) == 1 for a in permanent)
    elsewhere = [lieu.adresse for a in actions for lieu in a.lieux_de_formation]
    assert elsewhere and all(adresse.is_located for adresse in elsewhere)
    assert any(not a.lieux_de_formation for a in actions)
    assert {geo().region_of(adresse) for adresse in elsewhere} == {"76"}
    assert all(geo().postcode_exists(adresse.codepostal) for adresse in elsewhere)
    for session in (s for r in found.values() for s in r.formation.sessions):
        for date in (session.periode.debut, session.periode.fin):
            assert date is not None and 2026 <= date.year <= 2028
    assert any("\n" in (r.formation.objectif_formation or "") for r in found.values())


# --------------------------------------------------------------------------
# JSON Schema
# --------------------------------------------------------------------------


def test_schema_is_json_and_names_every_statut():
    schema = submission_json_schema()
    text = json.dumps(schema, indent=2, ensure_ascii=False)
    assert json.loads(text) == schema
    statuts = schema["$defs"]["Soumission"]["properties"]["statut"]["enum"]
    assert {fold(s) for s in statuts} == {s.value for s in Statut}
    assert {"proposée", "validée", "refusée"} <= set(statuts)
    assert schema["required"] == ["formations"]
    assert "statut" in schema["$defs"]["Soumission"]["required"]
    assert "organisme_formation_responsable" not in schema["$defs"]["Soumission"]["required"]


def _typed(value: Any) -> Any:
    """Scalars as a YAML 1.2 editor would see them: numbers where they look like numbers."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    if isinstance(value, str):
        for kind in (int, float):
            try:
                return kind(value)
            except ValueError:
                pass
    return value


_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def schema_errors(schema: dict, value: Any, root: dict, where: str = "") -> list[str]:
    """A small JSON Schema checker: the keywords the submission schema uses."""
    errors: list[str] = []
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        errors += schema_errors(root["$defs"][name], value, root, where)
    for sub in schema.get("allOf", []):
        errors += schema_errors(sub, value, root, where)
    if "anyOf" in schema and all(schema_errors(sub, value, root, where) for sub in schema["anyOf"]):
        errors.append(f"{where}: aucune branche de anyOf")
    if "not" in schema and not schema_errors(schema["not"], value, root, where):
        errors.append(f"{where}: not")
    if "if" in schema:
        branch = "then" if not schema_errors(schema["if"], value, root, where) else "else"
        errors += schema_errors(schema.get(branch, {}), value, root, where)
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} hors enum")
    if "type" in schema:
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_TYPES[kind](value) for kind in kinds):
            errors.append(f"{where}: type {kinds}")
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{where}: motif")
    if isinstance(value, dict):
        errors += [f"{where}/{key}: manquant" for key in schema.get("required", []) if key not in value]
        properties = schema.get("properties", {})
        for key, item in value.items():
            if key in properties:
                errors += schema_errors(properties[key], item, root, f"{where}/{key}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{where}/{key}: clé en trop")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{where}: trop court")
        for i, item in enumerate(value):
            errors += schema_errors(schema.get("items", {}), item, root, f"{where}[{i}]")
    return errors


def load_plain(path: Path) -> Any:
    return source._Plain().convert(pyyaml.compose(path.read_text(encoding="utf-8"), Loader=source._SubmissionLoader), "")


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_examples_validate_against_the_schema(path):
    schema = submission_json_schema()
    assert schema_errors(schema, _typed(load_plain(path)), schema) == []


def test_schema_rejects_what_the_reader_rejects():
    schema = submission_json_schema()
    document = _typed(load_plain(EXAMPLES / "garonne-competences.yaml"))
    refusee = next(f for f in document["formations"] if f["statut"] == "refusée")
    validee = next(f for f in document["formations"] if f["statut"] == "validée")

    del refusee["motif_refus"]
    assert any("motif_refus: manquant" in e for e in schema_errors(schema, document, schema))
    refusee["motif_refus"] = "Dates dépassées."

    validee["intitule_formaton"] = validee.pop("intitule_formation")
    errors = schema_errors(schema, document, schema)
    assert any("intitule_formaton: clé en trop" in e for e in errors)
    assert any("intitule_formation: manquant" in e for e in errors)
    validee["intitule_formation"] = validee.pop("intitule_formaton")

    validee["actions"][0].setdefault("lieux_de_formation", []).append({"adresse": {"ville": "Foix"}})
    assert any("codepostal: manquant" in e for e in schema_errors(schema, document, schema))
    validee["actions"][0]["lieux_de_formation"].pop()

    validee["statut"] = "publiée"
    assert any("hors enum" in e for e in schema_errors(schema, document, schema))
    validee["statut"] = "validée"
    assert schema_errors(schema, document, schema) == []


# --------------------------------------------------------------------------
# The documentation
# --------------------------------------------------------------------------

DOC = Path(__file__).resolve().parent.parent / "docs" / "soumission-yaml.md"


def test_documented_example_reads_without_problem(tmp_path):
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    example = next(block for block in blocks if "formations:" in block)
    items = read(tmp_path, example)
    assert [str(p) for p in problems(items)] == []
    assert {r.statut for r in records(items).values()} == {Statut.VALIDEE, Statut.REFUSEE, Statut.BROUILLON}


def test_documentation_names_every_key_and_statut():
    from catalogue.model import Action, OrganismeFormationResponsable, Session

    doc = DOC.read_text(encoding="utf-8")
    keys = [*source.TOP_KEYS, *source.WORKFLOW_KEYS]
    for model in (Formation, Action, Session, OrganismeFormationResponsable):
        keys += list(model.model_fields)
    assert [key for key in keys if f"`{key}`" not in doc] == []
    assert all(f"`{label}`" in doc for label in source.STATUT_LABELS.values())
    assert "chemin:ligne: numero: champ: message" in doc


def test_problems_of_a_brouillon_are_warnings(tmp_path):
    text = BASE.replace("statut: validée", "statut: brouillon").replace("fin: 2027-01-29", "fin: 2025-01-29")
    (problem,) = problems(read(tmp_path, text))
    assert problem.field == "actions[1]/sessions[1]/periode/fin"
    assert problem.severity is Severity.WARNING and not problem.is_error
    text = BASE.replace("fin: 2027-01-29", "fin: 2025-01-29")
    (problem,) = problems(read(tmp_path, text))
    assert problem.is_error

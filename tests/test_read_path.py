"""The reader's happy path gives what its error pass gives, and the models strip every string once.

Every formation goes through :func:`lheo._read` (no line noted); only a refused
one is converted again by :func:`lheo.convert` with a :class:`lheo.Where`, to
name the elements at fault. Both must build the same dict, or a formation
would be refused for what the error pass does not see (or the reverse).
"""

from __future__ import annotations

import io

import pytest
from lxml import etree

from catalogue import model
from catalogue.generate import generate
from catalogue.sources import lheo as reader

from test_lheo import adresse, formation, geoloc, lheo

ODD = [
    # placeholders, blanks, stray markup (badly escaped HTML), several of one element
    ("<intitule-formation>", "<intitule-formation>  \n "),
    ("<code-FORMACODE tag=\"principal\">", "<code-FORMACODE tag=\"principal\"> - </code-FORMACODE><code-FORMACODE tag=\"principal\">"),
    ("<objectif-formation>", "<objectif-formation>a <b>gras</b> b "),
    ("<codepostal>", "<codepostal><!-- c --> "),
    ("<ligne>", "<ligne>-</ligne><ligne>"),
]


@pytest.fixture(autouse=True)
def no_validated_elements(monkeypatch):
    """Without the cache of validated elements (tests/test_lheo_validated.py), the happy path gives dicts all through."""
    for spec in (s for s in vars(reader).values() if isinstance(s, reader.Spec)):
        monkeypatch.setattr(spec, "model", None)


def dicts(element: etree._Element) -> tuple[dict, dict]:
    fast = reader._read(element, reader.FORMATION)
    noted = reader.convert(element, reader.FORMATION, reader.Where({}))
    return fast, noted


def formations(document: bytes):
    root = etree.fromstring(document, reader._parser())
    return list(root.iter("{*}formation"))


def test_a_generated_catalogue_converts_alike_on_both_paths():
    data = io.BytesIO()
    generate(data, 120, seed=7)
    for element in formations(data.getvalue()):
        fast, noted = dicts(element)
        assert fast == noted


@pytest.mark.parametrize("old, new", ODD)
def test_odd_elements_convert_alike_on_both_paths(old, new):
    lieu = f"<lieu-de-formation><coordonnees>{adresse(more=geoloc('0', '-'))}</coordonnees></lieu-de-formation>"
    source = formation("15_1", lieu=lieu)
    assert old in source
    text = lheo(source.replace(old, new, 1)).encode("utf-8")
    (element,) = formations(text)
    fast, noted = dicts(element)
    assert fast == noted


# -- every string a model keeps is stripped, once -----------------------------

#: Our validators that strip a string before pydantic sees it.
STRIPPING = {model.unknown_to_none, model._required_text, model.check_ref, model.check_siret}


def unstripped_strings(schema, stripped: bool = False, seen=None, path=()) -> list:
    """Paths in a core schema to ``str`` validators that nothing strips."""
    seen = set() if seen is None else seen
    found = []
    if isinstance(schema, dict):
        if schema.get("type") == "str" and not (stripped or schema.get("strip_whitespace")):
            found.append(path)
        if schema.get("type") == "function-before" and schema["function"]["function"] in STRIPPING:
            return found + unstripped_strings(schema["schema"], True, seen, path)
        if "ref" in schema and schema.get("type") == "model":
            if (schema["ref"], stripped) in seen:
                return found
            seen.add((schema["ref"], stripped))
        for key, value in schema.items():
            if key not in ("metadata", "cls", "ref", "function", "serialization"):
                found += unstripped_strings(value, stripped, seen, path + (key,))
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            found += unstripped_strings(value, stripped, seen, path + (index,))
    return found


def test_every_string_of_a_formation_is_stripped():
    assert unstripped_strings(model.Formation.__pydantic_core_schema__) == []


def test_the_models_do_not_strip_again_what_a_validator_stripped():
    """Text is stripped by unknown_to_none: a second strip by pydantic would copy every text for nothing."""
    text = "  Une formation  "
    coordonnees = model.Coordonnees.model_validate({"nom": text, "lignes": [" 1 rue  "], "web": ["\u00a0w "]})
    assert coordonnees.nom == "Une formation" and coordonnees.lignes == ["1 rue"] and coordonnees.web == ["w"]
    kept = "déjà propre"
    assert model.Coordonnees.model_validate({"nom": kept}).nom is kept


@pytest.mark.parametrize("blank", [" ", "\t", "\n", "\r", "\u00a0", "\u2028", "\u3000", "\x85", "\x1c"])
def test_padded_strings_validate_as_the_bare_ones(blank):
    bare = {
        "lignes": ["1 rue"],
        "codepostal": "75001",
        "ville": "Paris",
        "departement": "75",
        "code_insee_commune": "75101",
        "region": "11",
        "pays": "FR",
    }
    padded = {key: [blank + v + blank for v in value] if isinstance(value, list) else blank + value + blank for key, value in bare.items()}
    if blank == "\x1c":  # a separator Python strips and pydantic does not: only our validators' fields lose it
        with pytest.raises(Exception):
            model.Adresse.model_validate(padded)
        return
    assert model.Adresse.model_validate(padded) == model.Adresse.model_validate(bare)
    codes = {"code_rncp": "RNCP12", "code_rs": "RS3", "code_certifinfo": "123", "code_cpf": "x"}
    assert model.Certification.model_validate({k: blank + v + blank for k, v in codes.items()}) == model.Certification.model_validate(codes)

"""The fast XML writer's functions are made from the rules (FragmentWriter, _WriterSource): what a missing or
narrower rule changes in them. (That the writer's bytes are the tree's and that it never vouches for a formation
the XSD refuses: tests/test_lheo_export.py.)"""

from __future__ import annotations

import html

import pytest

from catalogue.exports import SchemaRules, XmlExport
from catalogue.generate import generate_formations
from catalogue.lheo_export import FragmentWriter, Unsure, _fstring


@pytest.fixture(scope="module")
def rules() -> SchemaRules:
    return SchemaRules()


@pytest.fixture(scope="module")
def formations() -> list:
    return list(generate_formations(40, seed=11))


def test_the_writer_vouches_for_generated_formations(rules, formations):
    writer = FragmentWriter(rules.text_rules, rules.occurs)
    export = XmlExport()
    for formation in formations:
        assert writer.fragment(formation) == export(formation)[0]
    compile(writer.source, "<test>", "exec")  # the source it keeps is the one it runs


def test_without_rules_it_vouches_for_nothing(formations):
    writer = FragmentWriter({}, {})
    for formation in formations:
        with pytest.raises(Unsure):
            writer.fragment(formation)


@pytest.mark.parametrize("tag", ["ville", "debut", "code-FORMACODE", "SIRET", "extra", "nombre-heures-total"])
def test_an_element_without_a_rule_is_never_vouched_for(rules, formations, tag):
    """Each formation holding the element (written as a text, checked as a date or a code) is deferred to the XSD."""
    text_rules = {name: rule for name, rule in rules.text_rules.items() if name != tag}
    writer = FragmentWriter(text_rules, rules.occurs)
    full = FragmentWriter(rules.text_rules, rules.occurs)
    deferred = 0
    for formation in formations:
        expected = full.fragment(formation)
        if f"<{tag}".encode() in expected:
            with pytest.raises(Unsure):
                writer.fragment(formation)
            deferred += 1
        else:
            assert writer.fragment(formation) == expected
    assert deferred or tag in ("extra", "nombre-heures-total")


@pytest.mark.parametrize("pair", [("adresse", "ligne"), ("action", "session"), ("formation", "action"),
                                  ("domaine-formation", "code-NSF"), ("telfixe", "numtel")])
def test_a_list_without_bounds_is_never_vouched_for(rules, formations, pair):
    """A repeated child whose count the rules do not bound: every formation where its parent is written is deferred
    (the count is checked even when it is 0)."""
    occurs = {key: bounds for key, bounds in rules.occurs.items() if key != pair}
    writer = FragmentWriter(rules.text_rules, occurs)
    full = FragmentWriter(rules.text_rules, rules.occurs)
    for formation in formations:
        expected = full.fragment(formation)
        parent = pair[0]
        counted = f"<{parent}>".encode() in expected or f"<{parent} ".encode() in expected
        if counted:
            with pytest.raises(Unsure):
                writer.fragment(formation)
        else:
            assert writer.fragment(formation) == expected


def test_fstring_sources_hold_their_literals_as_they_are():
    for literal in ('\n  <extra info="source">', "{}\\'\"\t\r", "é\u2028"):
        assert eval(_fstring(literal, ("value",), "</x>"), {"value": "V"}) == literal + "V</x>"  # noqa: S307


def _slow(export: XmlExport, formation) -> tuple[bytes, object]:
    from catalogue.exports import xml_fragment
    from catalogue.lheo_export import formation_element

    element = formation_element(formation)
    problem = export.check.problem(element)
    return (xml_fragment(element) if problem is None else b""), problem


def test_elements_left_empty_are_written_as_the_tree_writes_them(formations):
    """Structures whose every child is optional and unknown (``<coordonnees/>``, ``<certification/>``...): the
    writer's bytes are the tree's, or it defers."""
    from catalogue.model import Adresse, Certification, Coordonnees, EligibiliteCpf

    export = XmlExport()
    base = formations[0]
    action = base.actions[0]
    session = action.sessions[0]
    variants = [
        base.model_copy(update={"contact_formation": [Coordonnees()]}),
        base.model_copy(update={"certifications": [Certification()]}),
        base.model_copy(update={"actions": [action.model_copy(update={"lieux_de_formation": [Coordonnees()]})]}),
        base.model_copy(update={"actions": [action.model_copy(update={"adresse_information": Adresse()})]}),
        base.model_copy(update={"actions": [action.model_copy(update={"sessions": [session.model_copy(
            update={"eligibilite_cpf": [EligibiliteCpf(), EligibiliteCpf(numero="RS1")]})]})]}),
    ]
    vouched = 0
    for formation in variants:
        try:
            fast = export.writer.fragment(formation)
        except Unsure:
            continue
        assert (fast, None) == _slow(export, formation)
        vouched += 1
    assert vouched >= 3


@pytest.mark.parametrize("bounds", [(float("nan"), 50), (3, 2), (float("inf"), float("inf")), (0.5, 50.5), (-1, 50)])
def test_bounds_of_any_kind_are_applied_as_the_rule_says(rules, formations, bounds):
    """Odd bounds in a rule table (not whole, not finite, empty): the writer tests ``low <= len <= high`` as is."""
    low, high = bounds
    text_rules = dict(rules.text_rules)
    text_rules["ville"] = (low, high, None)
    writer = FragmentWriter(text_rules, rules.occurs)
    full = FragmentWriter(rules.text_rules, rules.occurs)
    for formation in formations:
        expected = full.fragment(formation)
        villes = [html.unescape(text.split("</ville>")[0]) for text in expected.decode().split("<ville>")[1:]]
        if all(low <= len(text) <= high for text in villes):
            assert writer.fragment(formation) == expected
        else:
            with pytest.raises(Unsure):
                writer.fragment(formation)

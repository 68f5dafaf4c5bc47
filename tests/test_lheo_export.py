"""The LHEO writer: schema order, placeholders, namespaces, streaming, and write → read round trips."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from lxml import etree

from catalogue.generate import generate_formations
from catalogue.lheo_export import NAMESPACES, PLACEHOLDERS, write_lheo
from catalogue.model import Formation
from catalogue.sources import Record
from catalogue.sources.lheo import read_lheo

ROOT = Path(__file__).resolve().parent.parent
XSD = ROOT / "catalogue" / "data" / "lheo-2.3.xsd"
SAMPLES = sorted((ROOT / "tests" / "data" / "lheo").glob("*.xml"))


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(XSD)))


@pytest.fixture(scope="module")
def generated() -> list[Formation]:
    return list(generate_formations(40, seed=11))


def _parse(data: bytes) -> etree._ElementTree:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    return etree.ElementTree(etree.fromstring(data, parser))


def _assert_valid(schema: etree.XMLSchema, data: bytes) -> None:
    ok = schema.validate(_parse(data))
    assert ok, "\n".join(f"{e.line}: {e.message}" for e in schema.error_log)


def _read_back(path: Path) -> list[Formation]:
    items = list(read_lheo(path))
    problems = [str(i) for i in items if not isinstance(i, Record)]
    assert problems == []
    return [i.formation for i in items]


def _minimal(**fields) -> Formation:
    """A formation with only what the model requires: most LHEO-required elements are unknown."""
    data = {
        "numero": "15_AF_0000000001",
        "datemaj": "20260102",
        "intitule_formation": "Titre professionnel Plaquiste",
        "contact_formation": [{"courriel": "contact@exemple.invalid"}],
        "actions": [{"sessions": [{"periode": {}}]}],
        "organisme_formation_responsable": {
            "siret_organisme_formation": "19311383400389",
            "nom_organisme": "UT2J FC",
            "raison_sociale": "Université de Toulouse Jean Jaurès",
        },
    }
    data.update(fields)
    return Formation.model_validate(data)


# -- the schema --------------------------------------------------------------


def test_generated_formations_validate_against_the_lheo_23_schema(schema, generated):
    out = io.BytesIO()
    assert write_lheo(generated, out) == len(generated)
    _assert_valid(schema, out.getvalue())


def test_real_samples_rewritten_as_23_validate(schema):
    for sample in SAMPLES:
        formations = _read_back(sample)
        out = io.BytesIO()
        write_lheo(formations, out, "2.3")
        _assert_valid(schema, out.getvalue())


def test_unknown_required_elements_get_the_placeholders_of_real_exports(schema):
    out = io.BytesIO()
    write_lheo([_minimal()], out)
    _assert_valid(schema, out.getvalue())
    ns = {"l": NAMESPACES["2.3"]}
    doc = _parse(out.getvalue())
    assert doc.findtext(".//l:objectif-formation", namespaces=ns) == PLACEHOLDERS["text"]
    assert doc.findtext(".//l:rythme-formation", namespaces=ns) == "-"
    assert doc.findtext(".//l:session/l:periode/l:debut", namespaces=ns) == "00000000"
    assert doc.findtext(".//l:session/l:periode/l:fin", namespaces=ns) == "99999999"
    assert doc.findtext(".//l:adresse-inscription/l:adresse/l:codepostal", namespaces=ns) == "00000"
    assert doc.findtext(".//l:modalites-entrees-sorties", namespaces=ns) == "0"


def test_formation_without_any_contact_still_validates(schema):
    out = io.BytesIO()
    write_lheo([_minimal(contact_formation=[])], out)
    _assert_valid(schema, out.getvalue())


def test_principal_formacode_is_tagged(tmp_path):
    formation = _minimal(code_formacode=["22402", "22403"], code_formacode_principal="22403")
    out = io.BytesIO()
    write_lheo([formation], out)
    doc = _parse(out.getvalue())
    codes = doc.findall(".//{%s}code-FORMACODE" % NAMESPACES["2.3"])
    assert [(c.text, c.get("tag")) for c in codes] == [("22402", None), ("22403", "principal")]


# -- namespaces and output kinds ------------------------------------------------


@pytest.mark.parametrize("version", ["2.2", "2.3"])
def test_every_element_is_in_the_version_namespace(version, generated):
    out = io.BytesIO()
    write_lheo(generated[:3], out, version)
    doc = _parse(out.getvalue())
    assert doc.getroot().tag == f"{{{NAMESPACES[version]}}}lheo"
    assert {etree.QName(e).namespace for e in doc.iter(etree.Element)} == {NAMESPACES[version]}


def test_unknown_version_is_refused(generated):
    with pytest.raises(ValueError, match="2.4"):
        write_lheo(generated[:1], io.BytesIO(), "2.4")


def test_writes_to_a_path_and_counts(tmp_path, generated):
    path = tmp_path / "export.xml"
    assert write_lheo(iter(generated[:5]), path) == 5
    assert [f.numero for f in _read_back(path)] == [f.numero for f in generated[:5]]


def test_html_in_texts_is_escaped_and_read_back():
    text = "Objectifs :<br />- lire un plan<br />- poser une cloison & un doublage"
    out = io.BytesIO()
    write_lheo([_minimal(objectif_formation=text)], out)
    assert b"&lt;br /&gt;- lire un plan" in out.getvalue()
    assert b"&amp; un doublage" in out.getvalue()
    doc = _parse(out.getvalue())
    assert doc.findtext(".//{%s}objectif-formation" % NAMESPACES["2.3"]) == text


def test_output_starts_before_the_input_is_exhausted():
    """Streaming: the first formations reach the file while later ones are not even generated."""

    class Sink(io.RawIOBase):
        def __init__(self):
            self.data = bytearray()

        def writable(self):
            return True

        def write(self, b):
            self.data += b
            return len(b)

    sink = Sink()
    seen_when_last_was_made = []

    def formations():
        source = generate_formations(400, seed=3)
        for i, formation in enumerate(source):
            if i == 399:
                seen_when_last_was_made.append(bytes(sink.data))
            yield formation

    assert write_lheo(formations(), sink) == 400
    early = seen_when_last_was_made[0]
    assert b"<formation " in early
    assert len(early) < len(sink.data)


# -- round trips through the reader ------------------------------------------------


@pytest.mark.parametrize("version", ["2.2", "2.3"])
def test_generated_formations_round_trip(tmp_path, generated, version):
    path = tmp_path / f"generated-{version}.xml"
    write_lheo(generated, path, version)
    assert _read_back(path) == generated


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
@pytest.mark.parametrize("version", ["2.2", "2.3"])
def test_real_samples_round_trip(tmp_path, sample, version):
    formations = _read_back(sample)
    assert formations
    path = tmp_path / f"rewritten-{version}.xml"
    write_lheo(formations, path, version)
    assert _read_back(path) == formations


def test_unknown_texts_dates_and_addresses_round_trip_as_unknown(tmp_path):
    """Placeholders the reader reads as unknown: ``-``, ``00000000``, ``99999999``, ``00000``.

    (Enumerations and flags have no unknown value in LHEO: their default is written, so
    they are set here.)
    """
    formation = _minimal(
        parcours_de_formation=1,
        code_niveau_entree=0,
        actions=[
            {
                "code_public_vise": ["83056"],
                "niveau_entree_obligatoire": False,
                "modalites_enseignement": 0,
                "prise_en_charge_frais_possible": False,
                "sessions": [{"periode": {}, "adresse_inscription": {"ville": "Toulouse"}}],
            }
        ],
    )
    path = tmp_path / "minimal.xml"
    write_lheo([formation], path)
    (back,) = _read_back(path)
    assert back.objectif_formation is None
    session = back.actions[0].sessions[0]
    assert session.periode.debut is None and session.periode.fin is None
    assert session.adresse_inscription.codepostal is None and session.adresse_inscription.lignes == []
    assert back.model_dump(exclude={"organisme_formation_responsable"}) == formation.model_dump(
        exclude={"organisme_formation_responsable"}
    )


# -- the fast writer: the tree's bytes, never a formation the XSD refuses ----------------------------------
#
# The exports sink writes the XML with FragmentWriter, without a tree, and asks the XSD only about the
# formations the writer does not vouch for (catalogue.exports.XmlExport). What makes that sound is tested
# here: for every formation, generated, real or hostile, either the writer refuses to decide (Unsure), or
# the XSD accepts the formation's tree and the writer's bytes are the tree's, byte for byte.

import itertools  # noqa: E402

from pydantic import BaseModel  # noqa: E402

from catalogue.exports import SchemaCheck, SchemaRules, XmlExport, xml_fragment  # noqa: E402
from catalogue.lheo_export import FragmentWriter, Unsure, formation_element  # noqa: E402


def _rich(n: int = 2) -> Formation:
    """A formation with every field of the model set, every list holding ``n`` items."""
    adresse = {
        "denomination": "Site Saint-Cyprien", "lignes": ["5 allées Antonio Machado", "Bâtiment B"][:n],
        "codepostal": "31500", "ville": "Toulouse", "departement": "31", "code_insee_commune": "31555",
        "region": "73", "pays": "FR", "geolocalisation": {"latitude": 43.579523, "longitude": 1.403225},
    }
    coordonnees = {
        "civilite": "Madame", "nom": "Durand", "prenom": "Anne", "lignes": ["Service formation", "2e étage"][:n],
        "adresse": adresse, "telfixe": ["05 61 00 00 00", "05 61 00 00 01"][:n], "portable": ["06 00 00 00 00"] * n,
        "fax": ["05 61 00 00 02"] * n, "courriel": "contact@exemple.invalid",
        "web": ["https://exemple.invalid/a", "https://exemple.invalid/b"][:n],
    }
    session = {
        "numero": "SE_1", "datecrea": "20250101", "datemaj": "20260102",
        "periode": {"debut": "20260901", "fin": "20270600"}, "adresse_inscription": adresse,
        "periode_inscription": {"debut": "20260401", "fin": "20260831"}, "etat_recrutement": 1,
        "eligibilite_cpf": [
            {"numero": "RNCP35015", "source": "CDC", "debut_validite": "20260101", "fin_validite": "20271231"},
            {"numero": "RS5001", "source": "France compétences"},
        ][:n],
    }
    action = {
        "numero": "AF_1_A1", "datecrea": "20250101", "datemaj": "20260102", "rythme_formation": "Temps plein",
        "code_public_vise": ["83056", "15061"][:n], "info_public_vise": "Demandeurs d'emploi", "niveau_entree_obligatoire": True,
        "modalites_alternance": "Stage de 4 semaines", "modalites_enseignement": 1,
        "conditions_specifiques": "Entretien", "prise_en_charge_frais_possible": True,
        "lieux_de_formation": [coordonnees] * n, "entrees_sorties_permanentes": True,
        "url_action": ["https://exemple.invalid/action"] * n, "sessions": [session] * n,
        "adresse_information": adresse, "restauration": "Restaurant universitaire", "hebergement": "Cité U",
        "transport": "Tram", "acces_handicapes": "Accessible", "langue_formation": ["fr", "en"][:n],
        "modalites_recrutement": "Dossier", "modalites_pedagogiques": "Cours et ateliers",
        "code_modalite_pedagogique": ["96094", "96095"][:n], "frais_restants": "Aucun", "prix_horaire_ttc": "7.50",
        "prix_total_ttc": "8400.00", "duree_indicative": "10 mois", "nombre_heures_centre": 800,
        "nombre_heures_entreprise": 400, "nombre_heures_total": 1200,
        "detail_conditions_prise_en_charge": "Région", "conventionnement": True, "duree_conventionnee": 1200,
        "organismes_formateurs": [
            {"numero": "OF_1", "siret_formateur": "19311383400389", "raison_sociale_formateur": "UT2J",
             "contact_formateur": [coordonnees] * n},
        ] * n,
        "organismes_financeurs": [{"code_financeur": "2", "nb_places_financees": 12}, {"code_financeur": "10"}][:n],
    }
    return Formation.model_validate({
        "numero": "15_AF_0000000001", "datecrea": "20250101", "datemaj": "20260102",
        "intitule_formation": "Électricien d'équipement du bâtiment", "objectif_formation": "Objectifs",
        "resultats_attendus": "Titre professionnel", "contenu_formation": "Contenu<br />détaillé & complet",
        "certifiante": True, "code_formacode": ["22403", "22402"][:n], "code_formacode_principal": "22403",
        "code_nsf": ["255", "227"][:n], "code_rome": ["F1602", "F1603"][:n], "contact_formation": [coordonnees] * n,
        "parcours_de_formation": 1, "code_niveau_entree": 3, "objectif_general_formation": 6,
        "certifications": [{"code_rncp": "RNCP35015", "code_certifinfo": "108765", "code_rs": "RS5001",
                            "code_cpf": "247015"}] * n,
        "code_niveau_sortie": 3, "url_formation": ["https://exemple.invalid/f"] * n, "actions": [action] * n,
        "organisme_formation_responsable": {
            "numero": "OR_1", "numero_activite": "76310123431", "siret_organisme_formation": "19311383400389",
            "nom_organisme": "UT2J FC", "raison_sociale": "Université de Toulouse Jean Jaurès",
            "coordonnees_organisme": coordonnees, "contact_organisme": [coordonnees] * n,
            "renseignements_specifiques": "Néant",
        },
    })


@pytest.fixture(scope="module")
def xml_export() -> XmlExport:
    return XmlExport()


def _verdicts(xml_export: XmlExport, formation: Formation) -> tuple[Optional[bytes], object]:
    """(the fast writer's bytes or None if Unsure, the slow path's (bytes, problem) or the exception it raises).

    Asserts what makes the fast path sound: bytes from it mean the XSD accepts the tree and the tree's bytes
    are these; and the sink's XmlExport gives what the slow path gives.
    """
    try:
        element = formation_element(formation)
        problem = xml_export.check.problem(element)
        slow: object = (xml_fragment(element) if problem is None else b"", problem)
    except Exception as exc:  # noqa: BLE001 - the slow path's own error, which the sink must raise too
        slow = type(exc)
    try:
        fast: Optional[bytes] = xml_export.writer.fragment(formation)
    except Unsure:
        fast = None
    except Exception:  # noqa: BLE001 - a model the fast writer does not expect: the slow path decides
        fast = None
    if fast is not None:
        assert slow == (fast, None), formation.numero
    if isinstance(slow, type):
        with pytest.raises(slow):
            xml_export(formation)
    else:
        assert xml_export(formation) == slow
    return fast, slow


def test_the_fast_writer_writes_the_trees_bytes_for_generated_and_real_formations(xml_export, generated):
    formations = list(generated) + list(generate_formations(300, seed=4)) + [_rich(), _minimal()]
    for sample in SAMPLES:
        formations += _read_back(sample)
    for formation in formations:
        fast, _ = _verdicts(xml_export, formation)
        assert fast is not None, f"{formation.numero}: the fast writer should vouch for it"


def _paths(value: object, path: tuple = ()) -> "itertools.chain":
    """Every (path, value) under a model: fields, first items of lists, nested models."""
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            field = getattr(value, name)
            yield path + (name,), field
            yield from _paths(field, path + (name,))
    elif isinstance(value, list) and value:
        yield path + (0,), value[0]
        yield from _paths(value[0], path + (0,))


def _replace(value: object, path: tuple, new: object) -> object:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, list):
        items = list(value)
        items[head] = _replace(items[head], rest, new)
        return items
    return value.model_copy(update={head: _replace(getattr(value, head), rest, new)})  # type: ignore[union-attr]


class _Str(str):
    pass


def _hostile_texts(rules: SchemaRules) -> list[object]:
    """Texts around every length bound of the rules, blanks a token would collapse, markup, odd characters."""
    bounds = {n for low, high, _ in rules.text_rules.values() for n in (low - 1, low, high, high + 1)}
    texts: list[object] = ["x" * n for n in sorted(bounds) if 0 <= n <= 5000] + ["😀" * n for n in (3000, 3001)]
    texts += ["", " ", "1", "0", "2", "-1", "+1", "01", " 1", "1 ", "1  1", "\t1", "00000", "83056", " 83056",
              "99999999999999999999", "1.5", "20261301", "2026-01-01", "principal", "&<>\"'\r\n\t]]> é",
              "\r\n", "a\x01b", "a\x0bb", "a\ufffeb", "a\uffffb", "a\x7f\x85\ufdd0b", "a\ud800b", _Str("1"), 5, None]
    return texts


def test_the_fast_writer_never_vouches_for_a_formation_the_xsd_refuses(xml_export):
    """Each value of a rich formation replaced by hostile texts and numbers: the writer is exact or Unsure."""
    base = _rich(1)
    texts = _hostile_texts(SchemaRules())
    vouched = refused = 0
    for path, value in _paths(base):
        if isinstance(value, (BaseModel, list)):
            continue
        replacements = list(texts)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            replacements += [-1, 0, 10**19, 10**18, 1.5, float("nan")]
        for new in replacements:
            fast, slow = _verdicts(xml_export, _replace(base, path, new))
            vouched += fast is not None
            refused += isinstance(slow, tuple) and slow[1] is not None
    assert vouched > 1000 and refused > 1000  # both sides of the line were tried


def test_the_fast_writer_never_vouches_for_too_many_elements(xml_export):
    """Every list of a rich formation made longer than the XSD allows (and empty): exact or Unsure."""
    base = _rich()
    lists = [path for path, value in _paths(base) if isinstance(value, list)]
    assert len(lists) > 30
    refused = 0
    for path in lists:
        items = _replace_get(base, path)
        for count in (0, 1, 3, 4, 5, 6, 7, 12):
            fast, slow = _verdicts(xml_export, _replace(base, path, (items * count)[:count] if items else []))
            refused += isinstance(slow, tuple) and slow[1] is not None
    assert refused > 10


def _replace_get(value: object, path: tuple) -> object:
    for head in path:
        value = value[head] if isinstance(value, list) else getattr(value, head)
    return value


def test_the_fast_writer_escapes_every_character_as_libxml2_does(xml_export):
    """All of Unicode (by blocks), in a text and in an attribute: the tree's bytes, or the tree's error."""
    base = _minimal()
    vouched = 0
    for start in itertools.chain(range(0, 0x10000, 512), range(0x10000, 0x110000, 0x8000)):
        chunk = "".join(chr(c) for c in range(start, start + 512) if not 0xD800 <= c <= 0xDFFF)
        printable = "".join(c for c in chunk if c.isprintable() or c in "\t\n\r")
        for text in (chunk, printable, "a\ud800b"):
            fast, slow = _verdicts(xml_export, base.model_copy(update={"objectif_formation": text}))
            action = base.actions[0].model_copy(update={"numero": text})
            _verdicts(xml_export, base.model_copy(update={"actions": [action]}))
            if text is printable:
                # What lxml writes, the fast writer writes too (it does not defer everything to the slow path).
                assert fast is not None or not (isinstance(slow, tuple) and slow[1] is None), hex(start)
                vouched += fast is not None
    assert vouched >= 100  # the printable chunks (not private use, unassigned or surrogates)


def test_rules_are_never_looser_than_the_xsd():
    """Each element's text rule, probed with hostile texts: what the rule takes, the XSD takes (alone, as root)."""
    rules = SchemaRules()
    check = SchemaCheck()
    probes = [t for t in _hostile_texts(rules) if isinstance(t, str) and "\x01" not in t and "\x0b" not in t
              and "\ufffe" not in t and "\uffff" not in t and "\ud800" not in t]
    enumerated = set()
    taken = 0
    for tag, (low, high, more) in rules.text_rules.items():
        values = list(probes)
        if more is not None:
            values += [v for v in ("0", "1", "2", "3", "9", "10", "00000", "83056", "96094", "20260101")]
        for text in values:
            if low <= len(text) <= high and (more is None or more(text)):
                element = etree.Element(tag)
                element.text = text
                assert check.schema.validate(element), (tag, text, str(check.schema.error_log))
                taken += 1
                enumerated.add(tag)
    assert taken > 500 and {"code-public-vise", "debut", "nombre-heures-total", "intitule-formation"} <= enumerated

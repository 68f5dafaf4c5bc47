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

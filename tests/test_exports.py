"""The open-data exports: LHEO 2.3 that validates and reads back, JSON, CSV for spreadsheets, and their page.

The exports are gzip-compressed; each test reads them decompressed (see ``plain``). Incremental
builds of the exports: tests/test_exports_incremental.py.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import io
import json
import re
import shutil
import subprocess
import zlib
from pathlib import Path

import pytest
from lxml import etree

import catalogue.exports  # noqa: F401  (registers the "donnees" sink)
from catalogue.build import BuildOptions, build
from catalogue.catalog import summarize
from catalogue.exports import CSV_COLUMNS, SchemaCheck, human_size, json_item, json_line
from catalogue.lheo_export import NAMESPACES, formation_element, write_lheo
from catalogue.model import Formation, Statut
from catalogue.problems import Origin
from catalogue.regions import geo
from catalogue.settings import Settings
from catalogue.sources import Record, read_sources
from catalogue.sources.lheo import read_lheo

from factories import ADRESSE_MONTPELLIER, SIRET_VEIGNE, action, make_formation, organisme, session

ROOT = Path(__file__).resolve().parent.parent
XSD = ROOT / "catalogue" / "data" / "lheo-2.3.xsd"
SAMPLES = Path(__file__).parent / "data" / "lheo"
TODAY = dt.date(2026, 11, 29)
SITE_URL = "https://catalogue.exemple.fr"

#: What LHEO requires and has no "unknown" for: set, so that the XML reads back equal.
CONTACT = [{"nom": "Accueil", "courriel": "accueil@exemple.invalid"}]


def lheo_session(debut: str, fin: str, numero: str, **fields) -> dict:
    data = session(debut, fin, numero)
    data["adresse_inscription"] = {"lignes": ["1 rue du Port"], "codepostal": "34000", "ville": "Montpellier"}
    data.update(fields)
    return data


def lheo_action(numero: str, sessions: list[dict], **fields) -> dict:
    data = dict(
        code_public_vise=["83056"],
        niveau_entree_obligatoire=False,
        modalites_enseignement=0,
        prise_en_charge_frais_possible=True,
    )
    data.update(fields)
    return action(numero=numero, sessions=sessions, **data)


def lheo_formation(numero: str, actions: list[dict], **fields) -> Formation:
    org = organisme()
    org.update(numero_activite="76310123431", contact_organisme=CONTACT)
    data = dict(parcours_de_formation=1, code_niveau_entree=0, contact_formation=CONTACT, org=org)
    data.update(fields)
    return make_formation(numero=numero, actions=actions, **data)


def inline_formations() -> list[Formation]:
    current = lheo_formation(
        "15_AF_0000000001",
        [
            lheo_action(
                "15_AF_0000000001_A1",
                [
                    lheo_session(
                        "20261005", "20270612", "15_SE_1",
                        etat_recrutement=1,
                        eligibilite_cpf=[{"numero": "RNCP35015", "source": "CDC"}],
                    ),
                    lheo_session("20270301", "20270900", "15_SE_2"),
                ],
                lieux=[ADRESSE_MONTPELLIER],
                modalites_enseignement=1,
                nombre_heures_total=1200,
                prix_total_ttc="8400.00",
                organismes_financeurs=[{"code_financeur": "2"}, {"code_financeur": "10"}],
            ),
            lheo_action(
                "15_AF_0000000001_A2",
                [lheo_session("20260105", None, "15_SE_3")],
                lieux=[],  # in the organisme's premises (Toulouse)
                entrees_sorties_permanentes=True,
                modalites_enseignement=2,
            ),
        ],
        intitule="Électricien d'équipement du bâtiment ; niveau 3",
        certifiante=True,
    )
    archived = lheo_formation(
        "15_AF_0000000002",
        [lheo_action("15_AF_0000000002_A1", [lheo_session("20240105", "20240630", "15_SE_4")])],
        intitule="Comptable assistant",
    )
    formula = lheo_formation(
        "07_AF_3",
        [lheo_action("07_AF_3_A1", [lheo_session("20261201", "20270115", "07_SE_5")])],
        intitule="=HYPERLINK(\"http://exemple.invalid\";\"Bureautique\")",
        org=dict(organisme(siret=SIRET_VEIGNE, nom="@Formation Touraine"),
                 numero_activite="24370000037", contact_organisme=CONTACT),
    )
    return [current, archived, formula]


def make_content(root: Path) -> Path:
    root.mkdir(parents=True)
    for sample in SAMPLES.glob("*.xml"):
        shutil.copy(sample, root / sample.name)
    write_lheo(inline_formations(), root / "inline.xml")
    return root


def run(content: Path, build_dir: Path, sinks=("donnees",)):
    options = BuildOptions(content=(content,), build_dir=build_dir, today=TODAY)
    report = build(options, Settings(site_url=SITE_URL), sinks=list(sinks))
    assert report.errors == []
    return report


def read_all(content: Path) -> list[Formation]:
    items = list(read_sources([content]))
    assert all(isinstance(i, Record) for i in items), [str(i) for i in items]
    return [i.formation for i in items]


EXPORTS = ("catalogue.xml", "catalogue.json", "catalogue.csv")


def unzip(donnees: Path, target: Path) -> Path:
    """The exports of ``donnees`` decompressed into ``target``, under their names without ``.gz``."""
    target.mkdir(parents=True, exist_ok=True)
    for name in EXPORTS:
        compressed = donnees / f"{name}.gz"
        if compressed.exists():
            (target / name).write_bytes(gzip.decompress(compressed.read_bytes()))
    return target


def gzip_members(data: bytes) -> list[bytes]:
    """Each member of a gzip file, decompressed on its own."""
    members = []
    while data:
        member = zlib.decompressobj(wbits=31)
        members.append(member.decompress(data))
        assert member.eof, "member cut short"
        data = member.unused_data
    return members


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The build's report, its inputs, and the exports decompressed (the page and the .gz: ``donnees``)."""
    tmp = tmp_path_factory.mktemp("exports")
    content = make_content(tmp / "content")
    report = run(content, tmp / "build")
    return report, read_all(content), unzip(tmp / "build" / "site" / "donnees", tmp / "plain")


@pytest.fixture(scope="module")
def donnees(built) -> Path:
    return built[2].parent / "build" / "site" / "donnees"


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(XSD)))


def parse_xml(path: Path) -> etree._ElementTree:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    return etree.parse(str(path), parser)


def csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle, delimiter=";"))


def by_ref(formations: list[Formation]) -> dict[str, Formation]:
    return {f.numero: f for f in formations}


# -- gzip ------------------------------------------------------------------------


def test_exports_are_gzip_that_any_reader_takes_whole(built, donnees):
    _, _, plain = built
    for name in EXPORTS:
        data = (donnees / f"{name}.gz").read_bytes()
        members = gzip_members(data)
        # A header, the formations, a footer (the CSV has none): each its own member.
        assert len(members) >= (2 if name.endswith(".csv") else 3), name
        whole = (plain / name).read_bytes()
        assert b"".join(members) == whole
        assert subprocess.run(["gzip", "-dc"], input=data, capture_output=True, check=True).stdout == whole
        with gzip.open(io.BytesIO(data)) as handle:
            assert handle.read() == whole
    xml = gzip_members((donnees / "catalogue.xml.gz").read_bytes())
    assert xml[0].endswith(b"<offres>") and xml[-1] == b"\n  </offres>\n</lheo>\n"
    json_members = gzip_members((donnees / "catalogue.json.gz").read_bytes())
    assert (json_members[0], json_members[-1]) == (b"[", b"\n]\n")
    assert gzip_members((donnees / "catalogue.csv.gz").read_bytes())[0].startswith(b"\xef\xbb\xbfnumero_formation;")


def test_exports_are_a_tenth_of_their_size(built, donnees):
    _, _, plain = built
    compressed = sum((donnees / f"{name}.gz").stat().st_size for name in EXPORTS)
    assert compressed * 4 < sum((plain / name).stat().st_size for name in EXPORTS)


# -- catalogue.xml ---------------------------------------------------------------


def test_xml_validates_against_the_lheo_23_schema(built, schema):
    _, inputs, donnees = built
    document = parse_xml(donnees / "catalogue.xml")
    assert schema.validate(document), "\n".join(f"{e.line}: {e.message}" for e in schema.error_log)
    assert document.getroot().tag == f"{{{NAMESPACES['2.3']}}}lheo"
    assert len(document.findall(f".//{{{NAMESPACES['2.3']}}}formation")) == len(inputs)


def test_xml_reads_back_as_the_same_formations(built):
    _, inputs, donnees = built
    items = list(read_lheo(donnees / "catalogue.xml"))
    assert all(isinstance(i, Record) for i in items), [str(i) for i in items]
    back = [i.formation for i in items]
    assert [f.numero for f in back] == [f.numero for f in inputs]  # input order
    assert by_ref(back) == by_ref(inputs)
    assert {"07_10", "15_464888", "15_AF_0000000001", "15_AF_0000000002", "07_AF_3"} == set(by_ref(back))


# -- catalogue.json --------------------------------------------------------------


def test_json_has_one_item_per_formation_that_validates_back_to_the_model(built):
    report, inputs, donnees = built
    items = json.loads((donnees / "catalogue.json").read_text(encoding="utf-8"))
    assert len(items) == len(inputs) == report.published
    assert all(set(item) == {"numero", "url", "archivee", "formation"} for item in items)
    back = [Formation.model_validate(item["formation"]) for item in items]
    assert back == inputs
    assert [item["numero"] for item in items] == [f.numero for f in inputs]
    assert items[0]["url"] == f"{SITE_URL}/formations/{items[0]['numero']}.html"


def test_json_is_one_item_a_line(built):
    _, inputs, donnees = built
    lines = (donnees / "catalogue.json").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "[" and lines[-1] == "]"
    assert [json.loads(line.rstrip(","))["numero"] for line in lines[1:-1]] == [f.numero for f in inputs]


def test_json_line_is_the_item_as_json_writes_it(built):
    """The sink writes items with pydantic's serialiser: the bytes json.dumps would write for json_item."""
    _, inputs, _ = built
    for formation in inputs:
        entry = summarize(formation, origin=Origin("a.xml", 1), statut=Statut.VALIDEE, today=TODAY,
                          settings=Settings(site_url=SITE_URL), geo=geo())
        url = f"{SITE_URL}/formations/{formation.numero}.html"
        expected = json.dumps(json_item(formation, entry, url), ensure_ascii=False, separators=(",", ":"))
        assert json_line(formation, entry, url) == expected.encode("utf-8")


def test_json_schema_describes_the_items(donnees):
    schema = json.loads((donnees / "catalogue.schema.json").read_text(encoding="utf-8"))
    assert schema["type"] == "array"
    assert schema["items"]["required"] == ["numero", "url", "archivee", "formation"]
    assert "intitule_formation" in schema["$defs"]["Formation"]["properties"]
    assert "sessions" in schema["$defs"]["Action"]["properties"]


# -- catalogue.csv ---------------------------------------------------------------


def test_csv_is_for_french_spreadsheets(built):
    _, _, donnees = built
    raw = (donnees / "catalogue.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM: Excel reads the accents right
    header = raw[3:].split(b"\r\n", 1)[0].decode("utf-8")
    assert header.split(";") == [name for name, _ in CSV_COLUMNS]


def test_csv_has_one_row_per_session(built):
    _, inputs, donnees = built
    rows = csv_rows(donnees / "catalogue.csv")
    expected = [(f.numero, s.numero or "") for f in inputs for s in f.sessions]
    assert [(r["numero_formation"], r["numero_session"]) for r in rows] == expected
    assert all(None not in row and len(row) == len(CSV_COLUMNS) for row in rows)


def test_csv_values_of_a_known_session(built):
    _, _, donnees = built
    rows = {r["numero_session"]: r for r in csv_rows(donnees / "catalogue.csv")}
    assert rows["15_SE_1"] == {
        "numero_formation": "15_AF_0000000001",
        "intitule_formation": "Électricien d'équipement du bâtiment ; niveau 3",
        "nom_organisme": "UT2J FC",
        "siret_organisme": "19311383400389",
        "numero_action": "15_AF_0000000001_A1",
        "numero_session": "15_SE_1",
        "date_debut": "2026-10-05",
        "date_fin": "2027-06-12",
        "entrees_sorties_permanentes": "non",
        "ville": "Montpellier",
        "code_postal": "34000",
        "code_departement": "34",
        "code_region": "76",
        "region": "Occitanie",
        "modalite_enseignement": "mixte",
        "certifiante": "oui",
        "eligible_cpf": "oui",
        "nombre_heures_total": "1200",
        "prix_total_ttc": "8400,00",
        "financeurs": "Conseil régional, Bénéficiaire de l'action (autofinancement)",
        "etat_recrutement": "ouvert",
        "date_maj": "2026-11-02",
        "archivee": "non",
        "url_fiche": f"{SITE_URL}/formations/15_AF_0000000001.html",
    }
    # A month-only end, an unknown end, the organisme's premises, entries all year round, at a distance.
    assert rows["15_SE_2"]["date_fin"] == "2027-09" and rows["15_SE_2"]["eligible_cpf"] == "non"
    premises = rows["15_SE_3"]
    assert (premises["date_fin"], premises["ville"], premises["code_postal"]) == ("", "Toulouse", "31500")
    assert (premises["entrees_sorties_permanentes"], premises["modalite_enseignement"]) == ("oui", "à distance")
    assert (premises["prix_total_ttc"], premises["nombre_heures_total"], premises["etat_recrutement"]) == ("", "", "")


def test_csv_text_a_spreadsheet_would_run_is_neutralised(built):
    _, _, donnees = built
    (row,) = [r for r in csv_rows(donnees / "catalogue.csv") if r["numero_formation"] == "07_AF_3"]
    assert row["intitule_formation"] == "'=HYPERLINK(\"http://exemple.invalid\";\"Bureautique\")"
    assert row["nom_organisme"] == "'@Formation Touraine"


def test_real_sample_session_in_the_csv(built):
    _, inputs, donnees = built
    sample = by_ref(inputs)["07_10"]
    session = sample.actions[0].sessions[0]
    rows = [r for r in csv_rows(donnees / "catalogue.csv") if r["numero_formation"] == "07_10"]
    assert len(rows) == len(sample.sessions)
    assert rows[0]["date_debut"] == session.periode.debut.earliest().isoformat()
    assert rows[0]["siret_organisme"] == sample.organisme_formation_responsable.siret_organisme_formation
    assert rows[0]["region"] == "Centre-Val de Loire"


# -- archived formations -----------------------------------------------------------


def test_archived_formation_is_in_every_file_and_flagged(built):
    report, _, donnees = built
    assert report.archived >= 1
    items = {i["numero"]: i for i in json.loads((donnees / "catalogue.json").read_text(encoding="utf-8"))}
    assert items["15_AF_0000000002"]["archivee"] is True
    assert items["15_AF_0000000001"]["archivee"] is False
    assert sum(i["archivee"] for i in items.values()) == report.archived
    rows = csv_rows(donnees / "catalogue.csv")
    assert {r["archivee"] for r in rows if r["numero_formation"] == "15_AF_0000000002"} == {"oui"}
    assert {r["archivee"] for r in rows if r["numero_formation"] == "15_AF_0000000001"} == {"non"}
    refs = {f.get("numero") for f in parse_xml(donnees / "catalogue.xml").iter(f"{{{NAMESPACES['2.3']}}}formation")}
    assert "15_AF_0000000002" in refs


# -- the page --------------------------------------------------------------------


def test_page_links_the_files_with_their_sizes_and_counts(built, donnees):
    report, inputs, plain = built
    page = (donnees / "index.html").read_text(encoding="utf-8")
    for name in ("catalogue.xml.gz", "catalogue.json.gz", "catalogue.csv.gz", "catalogue.schema.json"):
        assert f'href="/donnees/{name}"' in page
    for name in EXPORTS:
        assert human_size((donnees / f"{name}.gz").stat().st_size) in page
        assert human_size((plain / name).stat().st_size) in page  # once decompressed
    sessions = sum(len(f.sessions) for f in inputs)
    text = re.sub(r"<[^>]+>", "", page)
    assert f"{len(inputs)} formations, dont {report.archived} archivée" in text
    assert f"{sessions} sessions ({len(inputs)} formations)" in text
    assert "Données au 29/11/2026" in text
    assert "Licence Ouverte" in text and "https://www.etalab.gouv.fr/licence-ouverte-open-licence/" in page
    assert "lheo.gouv.fr" in page
    for name, _ in CSV_COLUMNS:
        assert f"<code>{name}</code>" in page
    assert "<title>Données ouvertes | " in page
    assert "gzip" in text and "gunzip catalogue.csv.gz" in text and "7-Zip" in text


def test_page_renders_with_the_site(tmp_path):
    content = make_content(tmp_path / "content")
    run(content, tmp_path / "build", sinks=("site", "donnees"))
    site = tmp_path / "build" / "site"
    assert (site / "donnees" / "index.html").is_file() and (site / "formations" / "07_10.html").is_file()


# -- determinism, the schema's limits, an empty catalogue ----------------------------------


def digest(root: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.iterdir())}


def test_same_input_gives_the_same_bytes(donnees, tmp_path):
    content = make_content(tmp_path / "content")
    run(content, tmp_path / "build")
    again = digest(tmp_path / "build" / "site" / "donnees")
    assert again == digest(donnees)
    assert set(again) == {"catalogue.xml.gz", "catalogue.json.gz", "catalogue.csv.gz", "catalogue.schema.json",
                          "index.html"}


def test_formation_beyond_the_schema_is_left_out_of_the_xml_only(tmp_path, schema):
    content = tmp_path / "content"
    content.mkdir()
    too_long = "Contenu détaillé. " * 200  # 3,600 characters: the model takes it, LHEO stops at 3,000
    formations = inline_formations()[:1] + [
        lheo_formation("15_AF_9", [lheo_action("15_AF_9_A1", [lheo_session("20261005", "20270612", "15_SE_9")])],
                       contenu_formation=too_long)
    ]
    write_lheo(formations, content / "a.xml")
    run(content, tmp_path / "build")
    donnees = tmp_path / "build" / "site" / "donnees"
    plain = unzip(donnees, tmp_path / "plain")
    document = parse_xml(plain / "catalogue.xml")
    assert schema.validate(document)
    assert [f.numero for f in read_all(plain / "catalogue.xml")] == ["15_AF_0000000001"]
    assert [i["numero"] for i in json.loads((plain / "catalogue.json").read_text(encoding="utf-8"))] == [
        "15_AF_0000000001", "15_AF_9"
    ]
    assert "15_AF_9" in {r["numero_formation"] for r in csv_rows(plain / "catalogue.csv")}
    page = re.sub(r"<[^>]+>", "", (donnees / "index.html").read_text(encoding="utf-8"))
    assert "1 formation ne figure pas dans catalogue.xml.gz" in page
    assert "15_AF_9 : &lt;contenu-formation&gt; : texte trop long (3000 caractères au plus)" in page


def in_namespace_validates(formation: Formation, schema: etree.XMLSchema) -> bool:
    """The verdict of the LHEO schema itself on ``formation``, written as a document."""
    out = io.BytesIO()
    write_lheo([formation], out)
    return schema.validate(etree.fromstring(out.getvalue()))


def test_check_without_namespace_agrees_with_the_lheo_schema(built, schema):
    """The sink checks trees without namespace against a copy of the XSD without one: same verdicts."""
    _, inputs, _ = built
    base = inputs[0]
    action = base.actions[0]
    beyond = [
        base.model_copy(update={"contenu_formation": "x" * 3001}),
        base.model_copy(update={"intitule_formation": "x" * 256}),
        base.model_copy(update={"code_formacode": [f"3106{i}" for i in range(6)]}),
        base.model_copy(update={"actions": [action.model_copy(update={"code_public_vise": ["1"]})]}),
    ]
    check = SchemaCheck()
    verdicts = [(check.problem(formation_element(f)) is None, in_namespace_validates(f, schema))
                for f in inputs + beyond]
    assert [ours for ours, _ in verdicts] == [theirs for _, theirs in verdicts]
    assert [ours for ours, _ in verdicts] == [True] * len(inputs) + [False] * len(beyond)
    why = check.problem(formation_element(beyond[0]))
    assert why == "<contenu-formation> : texte trop long (3000 caractères au plus)"


def test_sink_without_formations_writes_no_invalid_xml(tmp_path):
    """LHEO needs at least one <formation>: the XML is not written, the rest is, and parses."""
    content = tmp_path / "content"
    content.mkdir()
    too_long = "x" * 3001
    write_lheo(
        [lheo_formation("15_AF_8", [lheo_action("15_AF_8_A1", [lheo_session("20261005", "20270612", "S")])],
                        resultats_attendus=too_long)],
        content / "a.xml",
    )
    run(content, tmp_path / "build")
    donnees = tmp_path / "build" / "site" / "donnees"
    assert not (donnees / "catalogue.xml.gz").exists()
    plain = unzip(donnees, tmp_path / "plain")
    assert [i["numero"] for i in json.loads((plain / "catalogue.json").read_text(encoding="utf-8"))] == ["15_AF_8"]
    page = (donnees / "index.html").read_text(encoding="utf-8")
    assert 'href="/donnees/catalogue.xml.gz"' not in page and "aucune formation : pas de fichier" in page


def test_the_fast_xml_follows_the_xsd_it_is_given(built, tmp_path):
    """The writer's rules are read from the XSD: a stricter schema (a shorter intitulé, numero as xs:long) makes
    it defer to the XSD, which decides; what it writes for the others is unchanged."""
    from catalogue.exports import XmlExport, xml_fragment
    from catalogue.lheo_export import Unsure

    _, inputs, _ = built
    text = XSD.read_text(encoding="utf-8")
    shorter = tmp_path / "shorter.xsd"
    start = text.index('<xs:simpleType name="intitule-formation-subtype">')
    end = text.index("</xs:simpleType>", start)
    shorter.write_text(text[:start] + text[start:end].replace('value="255"', 'value="20"') + text[end:],
                       encoding="utf-8")
    strict = XmlExport(shorter)
    normal = XmlExport()
    for formation in inputs:
        fragment, problem = strict(formation)
        if len(formation.intitule_formation) > 20:
            with pytest.raises(Unsure):
                strict.writer.fragment(formation)
            assert (fragment, problem) == (b"", "<intitule-formation> : texte trop long (20 caractères au plus)")
        else:
            assert (fragment, problem) == normal(formation)
    assert strict.checked >= 3 and normal.checked == 0

    as_id = tmp_path / "long.xsd"
    start = text.index('<xs:attributeGroup name="formation-attributes">')
    end = text.index("</xs:attributeGroup>", start)
    as_id.write_text(text[:start] + text[start:end].replace(
        '<xs:attribute name="numero" type="xs:string"/>', '<xs:attribute name="numero" type="xs:long"/>') + text[end:],
        encoding="utf-8")
    deferring = XmlExport(as_id)
    for formation in inputs:
        with pytest.raises(Unsure):
            deferring.writer.fragment(formation)
        element = formation_element(formation)
        ok = deferring.check.problem(element) is None
        assert deferring(formation) == ((xml_fragment(element), None) if ok else (b"", deferring.check.problem(element)))

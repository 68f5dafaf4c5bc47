"""The exports write what repeats once per object: the LHEO reader gives one shared object for an organisme,
an address... wherever its bytes repeat, and the sink remembers their text (XML), JSON and CSV cells by object.
The bytes must be those written without that memory, whatever the texts, and whatever the memory forgot."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

import catalogue.exports as exports
import catalogue.lheo_export as lheo_export
from catalogue.catalog import summarize
from catalogue.exports import CsvLines, CsvRows, JsonLines, SchemaCheck, XmlExport, json_line, xml_fragment
from catalogue.generate import generate_formations
from catalogue.lheo_export import formation_element, write_lheo
from catalogue.model import Formation, Statut
from catalogue.problems import Origin
from catalogue.regions import geo
from catalogue.settings import Settings
from catalogue.sources.lheo import read_lheo

TODAY = dt.date(2026, 11, 29)
GEO = geo()
URL = "https://catalogue.exemple.fr/formations/x/"
#: Escaped HTML, quotes, a control character, blanks, non-Latin text: in a shared organisme and address.
HOSTILE = "Lycée &amp; CFA <b>« Jean-Moulin »</b> \"quoted\" 'single' \\ / \x01\t\r\n😀 =1+1"


def _entry(formation: Formation):
    return summarize(formation, origin=Origin("t.xml", 1), statut=Statut.VALIDEE, today=TODAY,
                     settings=Settings(site_url="https://catalogue.exemple.fr"), geo=GEO)


def _read(formations: list[Formation], tmp_path: Path) -> list[Formation]:
    """The formations as the build has them: written as LHEO and read back (repeated parts shared)."""
    path = tmp_path / "c.xml"
    write_lheo(formations, path)
    read = [item.formation for item in read_lheo(path)]
    assert len(read) == len(formations)
    return read


def _hostile(formation: Formation, text: str) -> Formation:
    organisme = formation.organisme_formation_responsable
    coordonnees = organisme.coordonnees_organisme
    adresse = coordonnees.adresse.model_copy(update={"ville": text[:50], "denomination": text})
    return formation.model_copy(update={"organisme_formation_responsable": organisme.model_copy(update={
        "nom_organisme": text, "raison_sociale": text, "renseignements_specifiques": text,
        "coordonnees_organisme": coordonnees.model_copy(update={"adresse": adresse, "nom": text[:40]}),
    })})


@pytest.fixture(scope="module")
def formations(tmp_path_factory) -> list[Formation]:
    generated = list(generate_formations(60, seed=5, reference=TODAY))
    read = _read(generated, tmp_path_factory.mktemp("shared"))
    # The same hostile organisme object in several formations, as the reader would share it; the same without
    # the control character, which XML cannot hold (the slow path raises: so must the sink, each time).
    for text in (HOSTILE, HOSTILE.replace("\x01", "")):
        hostile = _hostile(read[0], text).organisme_formation_responsable
        read += [f.model_copy(update={"organisme_formation_responsable": hostile}) for f in read[:5]]
    return read


def test_the_reader_shares_what_repeats(formations):
    """What the caches rely on to pay (not to be right): the same object for the same organisme."""
    organismes = [f.organisme_formation_responsable for f in formations]
    assert len({id(o) for o in organismes}) < len(organismes)


@pytest.fixture(scope="module")
def check() -> SchemaCheck:
    return SchemaCheck()


def _outcome(function, *args) -> object:
    """What ``function`` returns, or the type of what it raises."""
    try:
        return function(*args)
    except Exception as exc:  # noqa: BLE001 - the same error either way is what is asserted
        return type(exc)


def _tree(formation: Formation, check: SchemaCheck) -> bytes:
    """The XML fragment by the slow path (the tree and the XSD), which remembers nothing."""
    element = formation_element(formation)
    return xml_fragment(element) if check.problem(element) is None else b""


def _alone(formation: Formation, entry, check: SchemaCheck) -> tuple[object, object, object]:
    """The three fragments, each written without memory."""
    return (_outcome(_tree, formation, check), _outcome(json_line, formation, entry, URL),
            _outcome(lambda: CsvLines()(CsvRows(GEO)(formation, entry, URL))))


@pytest.mark.parametrize("limit", [4096, 1, 2])
def test_shared_parts_are_written_as_alone(formations, check, monkeypatch, limit):
    """Every formation's XML, JSON and CSV, with the memory of the formations before it (forgetting at
    ``limit`` objects), are the bytes written without any."""
    monkeypatch.setattr(lheo_export, "SHARED_MAX", limit)
    monkeypatch.setattr(exports, "SHARED_MAX", limit)
    xml, json_lines, csv_rows, csv_lines = XmlExport(), JsonLines(), CsvRows(GEO), CsvLines()
    for round_ in range(2):  # the second time, everything is remembered (unless forgotten)
        for formation in formations:
            entry = _entry(formation)
            written = (_outcome(lambda: xml(formation)[0]), _outcome(json_lines, formation, entry, URL),
                       _outcome(lambda: csv_lines(csv_rows(formation, entry, URL))))
            assert written == _alone(formation, entry, check), (round_, formation.numero)


def test_json_splices_the_organisme_where_pydantic_writes_it(formations):
    formation = formations[-1]
    assert exports._SPLICE and "\\" in formation.organisme_formation_responsable.nom_organisme
    line = JsonLines()(formation, _entry(formation), URL)
    assert line == json_line(formation, _entry(formation), URL)
    assert line.endswith(b'"organisme_formation_responsable":'
                         + formation.organisme_formation_responsable.model_dump_json().encode() + b"}}")


def test_a_part_the_writer_cannot_vouch_for_is_not_remembered(formations):
    """An organisme the fast writer refuses (a text beyond the XSD) goes to the slow path each time, and the
    same organisme, given again, is refused again: nothing of it was kept."""
    base = formations[0]
    organisme = base.organisme_formation_responsable.model_copy(update={"nom_organisme": "x" * 5000})
    bad = base.model_copy(update={"organisme_formation_responsable": organisme})
    xml = XmlExport()
    for _ in range(2):
        fragment, problem = xml(bad)
        assert fragment == b"" and problem is not None
    assert xml.checked == 2

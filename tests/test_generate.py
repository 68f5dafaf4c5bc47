"""The seeded demo generator: determinism, validity, realism, and the committed demo catalogue."""

from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path

import pytest
from lxml import etree

from catalogue.generate import DEFAULT_REFERENCE, TOWNS, generate, generate_formations
from catalogue.lheo_export import NAMESPACES
from catalogue.model import Formation
from catalogue.regions import geo
from catalogue.settings import Settings
from catalogue.sources import Record
from catalogue.sources.lheo import read_lheo

ROOT = Path(__file__).resolve().parent.parent
XSD = ROOT / "catalogue" / "data" / "lheo-2.3.xsd"
DEMO = ROOT / "content" / "demo.xml"
LATITUDES = {row[1]: row[5] for row in TOWNS}

#: Enough formations for shares to be meaningful, few enough to stay fast.
SAMPLE_SIZE = 600


@pytest.fixture(scope="module")
def formations() -> list[Formation]:
    return list(generate_formations(SAMPLE_SIZE, seed=42))


def _generate_bytes(count: int, **kwargs) -> bytes:
    out = io.BytesIO()
    generate(out, count, **kwargs)
    return out.getvalue()


def _read(path: Path) -> list[Formation]:
    items = list(read_lheo(path))
    assert [str(i) for i in items if not isinstance(i, Record)] == []
    return [i.formation for i in items]


def _is_archived(formation: Formation, reference: dt.date) -> bool:
    return all(s.periode.fin is not None and s.periode.fin.latest() < reference for s in formation.sessions)


# -- determinism -------------------------------------------------------------------


def test_same_arguments_give_the_same_bytes():
    assert _generate_bytes(30, seed=1) == _generate_bytes(30, seed=1)


def test_another_seed_gives_another_catalogue():
    assert _generate_bytes(30, seed=1) != _generate_bytes(30, seed=2)


def test_reference_date_moves_the_sessions():
    early = list(generate_formations(50, seed=1, reference=dt.date(2026, 9, 1)))
    late = list(generate_formations(50, seed=1, reference=dt.date(2030, 9, 1)))
    assert min(s.periode.fin.latest() for f in late for s in f.sessions if s.periode.fin) > dt.date(2029, 8, 1)
    assert max(s.periode.fin.latest() for f in early for s in f.sessions if s.periode.fin) < dt.date(2028, 9, 1)


# -- validity ------------------------------------------------------------------------


def test_small_file_validates_against_the_lheo_23_schema():
    schema = etree.XMLSchema(etree.parse(str(XSD)))
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    doc = etree.ElementTree(etree.fromstring(_generate_bytes(20, seed=5), parser))
    assert schema.validate(doc), "\n".join(f"{e.line}: {e.message}" for e in schema.error_log)


def test_version_22_uses_the_22_namespace():
    root = etree.fromstring(_generate_bytes(3, seed=5, version="2.2"))
    assert root.tag == f"{{{NAMESPACES['2.2']}}}lheo"


def test_every_generated_formation_is_valid_for_the_model(formations):
    # Validating the dump again proves each one passes the model's checks (SIRET key, dates...).
    for formation in formations:
        assert Formation.model_validate(formation.model_dump()) == formation


def test_file_reads_back_as_the_generated_formations_and_stats_agree(tmp_path):
    path = tmp_path / "catalogue.xml"
    stats = generate(path, 120, seed=9)
    read = _read(path)
    assert read == list(generate_formations(120, seed=9))
    assert stats.formations == len(read) == 120
    assert stats.actions == sum(len(f.actions) for f in read)
    assert stats.sessions == sum(len(f.sessions) for f in read)
    assert stats.archived == sum(_is_archived(f, DEFAULT_REFERENCE) for f in read)
    assert stats.entrees_sorties_permanentes == sum(f.entrees_sorties_permanentes for f in read)
    assert stats.eligible_cpf == sum(f.eligible_cpf for f in read)
    assert stats.organismes == len({f.organisme_formation_responsable.siret_organisme_formation for f in read})
    assert stats.bytes == path.stat().st_size


# -- the Carif-Oref network ---------------------------------------------------------------


def test_numero_prefix_is_the_carif_oref_of_the_places_of_training(formations):
    settings, tables = Settings(), geo()
    for formation in formations:
        carif = settings.carif_of(formation.numero)
        assert carif is not None, formation.numero
        prefix, carif_oref = carif
        premises = formation.organisme_formation_responsable.coordonnees_organisme.adresse
        for action in formation.actions:
            assert action.numero.startswith(f"{prefix}_")
            places = [lieu.adresse for lieu in action.lieux_de_formation] or [premises]
            for place in places:
                assert tables.region_of(place) == carif_oref.region, (formation.numero, place.ville)


def test_every_carif_oref_of_the_demo_network_is_used(formations):
    prefixes = {f.numero.split("_", 1)[0] for f in formations}
    assert prefixes == set(Settings().carif_oref)


def test_places_are_real_towns_with_matching_codes(formations):
    tables = geo()
    for formation in formations:
        for action in formation.actions:
            for lieu in action.lieux_de_formation:
                adresse = lieu.adresse
                commune = tables.communes[adresse.code_insee_commune]
                assert commune.nom == adresse.ville
                assert adresse.codepostal in commune.codes_postaux
                assert adresse.departement == commune.departement
                # Within about 50 km of the town.
                assert abs(adresse.geolocalisation.latitude - LATITUDES[adresse.ville]) < 0.5


# -- realism -----------------------------------------------------------------------------


def test_shares_look_like_a_real_catalogue(formations):
    n = len(formations)
    archived = sum(_is_archived(f, DEFAULT_REFERENCE) for f in formations) / n
    esp = sum(f.entrees_sorties_permanentes for f in formations) / n
    cpf = sum(f.eligible_cpf for f in formations) / n
    distance = sum(f.a_distance for f in formations) / n
    certifiante = sum(f.certifiante for f in formations) / n
    outside = sum(any(a.lieux_de_formation for a in f.actions) for f in formations) / n
    assert 0.05 < archived < 0.35  # some archived, most current
    assert 0.08 < esp < 0.25
    assert 0.2 < cpf < 0.7
    assert 0.03 < distance < 0.2
    assert 0.4 < certifiante < 0.9
    assert 0.1 < outside < 0.6
    assert any(c.code_rncp for f in formations for c in f.certifications)


def test_actions_sessions_and_dates(formations):
    reference = DEFAULT_REFERENCE
    counts = [len(f.actions) + len(f.sessions) for f in formations]
    assert 2.5 < sum(counts) / len(counts) < 4.5
    for formation in formations:
        assert 1 <= len(formation.actions) <= 4
        assert formation.datemaj.earliest() <= reference
        for action in formation.actions:
            assert 1 <= len(action.sessions) <= 3
            if action.entrees_sorties_permanentes:
                assert len(action.sessions) == 1
            for session in action.sessions:
                for date in (session.periode.debut, session.periode.fin):
                    if date is not None:
                        assert reference - dt.timedelta(days=366) <= date.earliest() <= reference + dt.timedelta(days=731)


def test_numeros_are_unique(formations):
    numeros = [f.numero for f in formations]
    assert len(set(numeros)) == len(numeros)
    actions = [a.numero for f in formations for a in f.actions]
    assert len(set(actions)) == len(actions)


def test_texts_are_french_and_of_real_length(formations):
    objectifs = [f.objectif_formation for f in formations]
    assert all(150 <= len(o) <= 3000 for o in objectifs)
    assert max(len(o) for o in objectifs) > 700
    assert any("<br />" in o for o in objectifs)
    assert any("<br />" not in o for o in objectifs)
    titles = [f.intitule_formation for f in formations]
    assert any(re.search(r"[éèêàçô]", t) for t in titles)
    assert any(t.startswith("Titre professionnel") for t in titles)
    assert any(t.startswith("CAP ") for t in titles)
    assert len(set(titles)) > 80


def test_codes_and_contacts(formations):
    for formation in formations:
        assert all(re.fullmatch(r"\d{5}", c) for c in formation.code_formacode)
        assert formation.code_formacode_principal in formation.code_formacode
        assert all(re.fullmatch(r"\d{3}", c) for c in formation.code_nsf)
        organisme = formation.organisme_formation_responsable
        assert len(organisme.numero_activite) == 11
        for contact in formation.contact_formation + organisme.contact_organisme:
            assert contact.courriel.endswith(".exemple.invalid")
            assert all(t == "01 00 00 00 00" for t in contact.telfixe)
        for action in formation.actions:
            assert action.organismes_financeurs
            assert all(0 < int(f.code_financeur) <= 20 for f in action.organismes_financeurs)


def test_organismes_pool_is_about_an_eighth_of_the_formations(formations):
    sirets = {f.organisme_formation_responsable.siret_organisme_formation for f in formations}
    assert SAMPLE_SIZE / 14 < len(sirets) < SAMPLE_SIZE / 5


def test_a_large_catalogue_holds_a_few_probable_duplicates():
    formations = list(generate_formations(2000, seed=8))
    keys = [(f.organisme_formation_responsable.siret_organisme_formation, f.intitule_formation) for f in formations]
    duplicates = len(keys) - len(set(keys))
    assert 1 <= duplicates <= 30


# -- the committed demo ----------------------------------------------------------------


def test_demo_catalogue_is_the_generator_output():
    """content/demo.xml is ``generate(..., 300, seed=2026)``: regenerate it when the generator changes."""
    assert DEMO.read_bytes() == _generate_bytes(300, seed=2026, version="2.3")
    assert DEMO.stat().st_size < 3_000_000

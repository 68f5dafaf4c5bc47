"""Elements that repeat from formation to formation are validated once: same records, same problems.

The reader remembers the validated model of an organisme, an address, a
financeur, a certification, by the element's bytes (:func:`reader._validated`).
Each test compares with the reader whose tables remember nothing.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from catalogue.generate import generate
from catalogue.problems import Problem
from catalogue.sources import Record
from catalogue.sources import lheo as reader
from catalogue.sources.lheo import read_lheo, stream_lheo

from test_lheo import adresse, formation, geoloc, lheo, write

CACHED_SPECS = [
    reader.ADRESSE,
    reader.ADRESSE_LIEU,
    reader.ORGANISME_FORMATEUR,
    reader.ORGANISME_FINANCEUR,
    reader.CERTIFICATION,
    reader.ORGANISME_FORMATION_RESPONSABLE,
]


def clear_caches() -> None:
    for spec in CACHED_SPECS:
        spec.validated.clear()
        spec.validated_bytes = 0


@pytest.fixture(autouse=True)
def empty_caches():
    clear_caches()
    yield
    clear_caches()


def without_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    for spec in CACHED_SPECS:
        monkeypatch.setattr(spec, "model", None)


def outcome(items: list) -> list:
    """What a reader gave, comparable across model instances: records as JSON, problems as they are."""
    return [(i.origin, i.formation.model_dump_json()) if isinstance(i, Record) else i for i in items]


def read_both_ways(path: Path, monkeypatch: pytest.MonkeyPatch, read=read_lheo) -> tuple[list, list]:
    cached = list(read(path))
    with monkeypatch.context() as patch:
        without_cache(patch)
        plain = list(read(path))
    return cached, plain


def test_every_cached_table_has_its_model():
    assert all(spec.model is not None for spec in CACHED_SPECS)
    assert reader.FORMATION.model is None and reader.ACTION.model is None and reader.SESSION.model is None


def test_a_repeated_organisme_is_validated_once_and_shared(tmp_path, monkeypatch):
    path = write(tmp_path, lheo(formation("15_1"), formation("15_2"), formation("15_3")))
    cached, plain = read_both_ways(path, monkeypatch)
    assert outcome(cached) == outcome(plain)
    first, second, third = (r.formation for r in cached)
    assert first.organisme_formation_responsable is second.organisme_formation_responsable
    assert second.organisme_formation_responsable is third.organisme_formation_responsable
    inscription = [f.actions[0].sessions[0].adresse_inscription for f in (first, second, third)]
    assert inscription[0] is inscription[1] is inscription[2]
    # Without the cache each formation has its own.
    a, b, _ = (r.formation for r in plain)
    assert a.organisme_formation_responsable is not b.organisme_formation_responsable


def test_a_repeated_invalid_element_is_reported_in_each_formation_at_its_own_line(tmp_path, monkeypatch):
    bad = [formation(f"15_{i}").replace("<SIRET>82422814200660</SIRET>", "<SIRET>82422814200661</SIRET>") for i in range(3)]
    path = write(tmp_path, lheo(formation("15_9"), *bad))
    cached, plain = read_both_ways(path, monkeypatch)
    assert outcome(cached) == outcome(plain)
    problems = [i for i in cached if isinstance(i, Problem)]
    assert [p.numero for p in problems] == ["15_0", "15_1", "15_2"]
    assert {p.field for p in problems} == {"organisme-formation-responsable/SIRET-organisme-formation"}
    assert len({p.origin.line for p in problems}) == 3
    assert all("clé de contrôle" in p.message for p in problems)


def test_an_address_valid_in_one_place_and_not_in_another(tmp_path, monkeypatch):
    """The same bytes: dropped coordinates in an inscription address, an error in a lieu de formation."""
    wrong = adresse(more=geoloc("abc", "1.4"))
    inscription = formation("15_1").replace(adresse(), wrong)
    lieu = formation("15_2", lieu=f"<lieu-de-formation><coordonnees>{wrong}</coordonnees></lieu-de-formation>")
    for order in ([inscription, lieu], [lieu, inscription]):
        path = write(tmp_path, lheo(*order))
        cached, plain = read_both_ways(path, monkeypatch)
        assert outcome(cached) == outcome(plain)
        assert [i.numero for i in cached if isinstance(i, Record)] == ["15_1"]
        (problem,) = [i for i in cached if isinstance(i, Problem)]
        assert problem.numero == "15_2" and problem.field.endswith("lieu-de-formation[1]/coordonnees/adresse/geolocalisation/latitude")


def test_an_element_the_formation_refuses_elsewhere_is_still_refused(tmp_path, monkeypatch):
    """A valid organisme shared with a formation that another error refuses: that error, and only it."""
    refused = formation("15_2").replace("<debut>20240901</debut>", "<debut>20241301</debut>")
    path = write(tmp_path, lheo(formation("15_1"), refused, formation("15_3")))
    cached, plain = read_both_ways(path, monkeypatch)
    assert outcome(cached) == outcome(plain)
    (problem,) = [i for i in cached if isinstance(i, Problem)]
    assert problem.field == "action[1]/session[1]/periode/debut" and problem.numero == "15_2"


def generated(tmp_path: Path, formations: int, seed: int) -> Path:
    data = io.BytesIO()
    generate(data, formations, seed=seed)
    path = tmp_path / "generated.xml"
    path.write_bytes(data.getvalue())
    return path


@pytest.mark.parametrize("limit, value", [("VALIDATED_MAX", 2), ("VALIDATED_BYTES_MAX", 3000)])
def test_a_full_cache_starts_again(tmp_path, monkeypatch, limit, value):
    path = generated(tmp_path, 60, seed=3)
    monkeypatch.setattr(reader, limit, value)
    cached = list(read_lheo(path))
    assert all(spec.validated_bytes == sum(map(len, spec.validated)) for spec in CACHED_SPECS)
    if limit == "VALIDATED_MAX":
        assert all(len(spec.validated) <= value for spec in CACHED_SPECS)
    else:
        assert all(spec.validated_bytes <= value for spec in CACHED_SPECS)
    assert any(spec.validated for spec in CACHED_SPECS)
    with monkeypatch.context() as patch:
        without_cache(patch)
        plain = list(read_lheo(path))
    assert outcome(cached) == outcome(plain)


def test_a_large_element_is_not_remembered(tmp_path, monkeypatch):
    path = generated(tmp_path, 30, seed=4)
    monkeypatch.setattr(reader, "VALIDATED_KEY_MAX", 300)
    cached = list(read_lheo(path))
    assert not reader.ORGANISME_FORMATION_RESPONSABLE.validated  # about 1.3 kB each
    assert reader.ORGANISME_FINANCEUR.validated  # about 120 bytes
    assert all(len(key) <= 300 for spec in CACHED_SPECS for key in spec.validated)
    with monkeypatch.context() as patch:
        without_cache(patch)
        plain = list(read_lheo(path))
    assert outcome(cached) == outcome(plain)


@pytest.mark.parametrize("read", [read_lheo, stream_lheo], ids=["chunks", "stream"])
def test_a_generated_catalogue_reads_the_same_with_and_without_the_cache(tmp_path, monkeypatch, read):
    data = io.BytesIO()
    generate(data, 200, seed=5)
    text = data.getvalue().decode("utf-8")
    # Some repeated elements made invalid, some only in some formations.
    text = text.replace("<code-financeur>10</code-financeur>", "<code-financeur>x10</code-financeur>", 3)
    text = text.replace("<codepostal>", "<codepostal>9", 5)
    path = tmp_path / "generated.xml"
    path.write_text(text, encoding="utf-8")
    cached, plain = read_both_ways(path, monkeypatch, read)
    assert outcome(cached) == outcome(plain)
    assert sum(isinstance(i, Record) for i in cached) > 150
    assert any(isinstance(i, Problem) for i in cached)
    shared = {id(i.formation.organisme_formation_responsable) for i in cached if isinstance(i, Record)}
    assert len(shared) < sum(isinstance(i, Record) for i in cached) / 2

"""The index sink's cheaper full build: the store written by a process of its own, postings counted
without Whoosh's tokenizer, the numbers of an entry computed once for both search indexes."""

from __future__ import annotations

import dataclasses
import errno
import gc
import sqlite3
import zlib
from contextlib import closing

import pytest
from whoosh.fields import TEXT
from whoosh.writing import IndexingError

from catalogue.build import SinkContext
from catalogue.catalog import Catalog, summarize
from catalogue.model import Statut
from catalogue.problems import Origin
from catalogue.search import index as index_module
from catalogue.search.analysis import TermsTokenizer, analyse
from catalogue.search.index import INDEX_DIR, STORE_FILE, AnalysedText, FormationStoreWriter, IndexSink, id_terms
from test_index_incremental import GEO, SETTINGS, TODAY, answers, catalogue_v1, formation, run_sink, served


def store_tables(folder) -> dict:
    """Every row of every table, in rowid order (the rowid ranges of numbers and places included)."""
    with closing(sqlite3.connect(folder / INDEX_DIR / STORE_FILE)) as db:
        tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {
            table: db.execute(f"SELECT * FROM {table} ORDER BY {'rowid' if table in ('formation', 'number', 'place') else '1, 2'}").fetchall()
            for table in tables
        }


def entries_of(formations):
    return [
        summarize(f, origin=Origin("offre.xml", i + 1), statut=Statut.VALIDEE, today=TODAY, settings=SETTINGS, geo=GEO)
        for i, f in enumerate(formations)
    ]


def test_the_store_process_writes_what_the_main_process_would(tmp_path, monkeypatch):
    formations = catalogue_v1() * 1 + [formation(i) for i in range(40, 300)]  # several batches
    monkeypatch.setattr(index_module, "STORE_BATCH", 16)
    monkeypatch.setattr(index_module, "STORE_PROCESS", True)
    apart = run_sink(tmp_path / "apart", formations)
    monkeypatch.setattr(index_module, "STORE_PROCESS", False)
    inside = run_sink(tmp_path / "inside", formations)
    tables = store_tables(apart.folder)
    assert len(tables["formation"]) == 300 and tables["vocabulary"]
    assert tables == store_tables(inside.folder)
    assert answers(served(apart)) == answers(served(inside))


def _failing_sink(tmp_path, monkeypatch, error: Exception) -> IndexSink:
    def add_rows(self, rows):
        raise error

    monkeypatch.setattr(FormationStoreWriter, "add_rows", add_rows)  # before the fork: the process has it too
    monkeypatch.setattr(index_module, "STORE_PROCESS", True)
    monkeypatch.setattr(index_module, "STORE_BATCH", 4)
    (tmp_path / "site").mkdir(parents=True, exist_ok=True)
    return IndexSink(SinkContext(tmp_path, SETTINGS, TODAY, GEO))


@pytest.mark.parametrize(
    "error, expected",
    [
        (sqlite3.OperationalError("database or disk is full"), OSError),
        (OSError(errno.ENOSPC, "No space left on device"), OSError),
        (sqlite3.OperationalError("boom"), IndexingError),
    ],
)
def test_an_error_in_the_store_process_fails_the_build(tmp_path, monkeypatch, error, expected):
    sink = _failing_sink(tmp_path, monkeypatch, error)
    formations = [formation(i) for i in range(20)]
    entries = entries_of(formations)
    with pytest.raises(expected) as raised:
        for f, entry in zip(formations, entries):
            sink.add(f, entry)
        sink.finish(Catalog.of(entries, TODAY))
    if expected is OSError:
        assert raised.value.errno == errno.ENOSPC
    else:
        assert "boom" in str(raised.value)
    sink.abort()
    assert not sink.store.process.is_alive()


def test_a_build_that_fails_before_finish_leaves_no_store_process(tmp_path, monkeypatch):
    monkeypatch.setattr(index_module, "STORE_PROCESS", True)
    (tmp_path / "site").mkdir()
    sink = IndexSink(SinkContext(tmp_path, SETTINGS, TODAY, GEO))
    formations = [formation(i) for i in range(30)]
    for f, entry in zip(formations, entries_of(formations)):
        sink.add(f, entry)
    process = sink.store.process
    assert process.is_alive()
    del sink
    gc.collect()
    process.join(timeout=10)
    assert not process.is_alive()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Cuisine et restauration traditionnelle",
        "Électricien d'équipement du bâtiment électricien électricité 2024 2024 bâtiment",
        "Gestion de la paie, gestion des ressources humaines ; paie paie œuvre Œuvre",
    ],
)
def test_analysed_text_indexes_as_whoosh_text_does(text):
    """The same postings, in the same order, as Whoosh's TEXT field with its tokenizer and frequency format."""
    value = " ".join(analyse(text))
    whoosh = TEXT(analyzer=TermsTokenizer(), phrase=False)
    ours = AnalysedText(analyzer=TermsTokenizer())
    assert list(ours.index(value)) == list(whoosh.index(value))
    assert ours.format == whoosh.format and ours.scorable and not ours.stored


def test_id_terms_are_those_of_the_entry_asked_about():
    """The last answer is kept for the same entry only, and a caller changing it changes nothing."""
    first, second = entries_of([formation(1), formation(2)])
    other = dataclasses.replace(first, siret="12345678900011")
    expected_first = index_module._id_terms(first)
    found = id_terms(first)
    assert found == expected_first and "15_AF_00001" in found
    found.append("changed")
    assert id_terms(first) == expected_first
    assert id_terms(second) == index_module._id_terms(second) != expected_first
    assert id_terms(other) == index_module._id_terms(other) != expected_first
    assert "12345678900011" in id_terms(other)
    assert id_terms(first) == expected_first


def test_the_json_is_compressed_with_the_stores_own_dictionary(tmp_path, monkeypatch):
    """A preset dictionary from the first formations, kept in the store; an incremental build keeps using it;
    the API's JSON is the formation's, whatever the dictionary."""
    from test_index_incremental import catalogue_v2, incremental

    from catalogue.search.index import decompress_json, open_index, read_zdict

    monkeypatch.setattr(index_module, "STORE_PROCESS", True)
    v1 = run_sink(tmp_path / "v1", catalogue_v1())
    v2 = incremental(tmp_path / "v2", catalogue_v2(), catalogue_v1(), v1)
    with closing(sqlite3.connect(v1.folder / INDEX_DIR / STORE_FILE)) as db:
        zdict = read_zdict(db)
        ref, blob = db.execute("SELECT ref, json FROM formation ORDER BY rowid LIMIT 1").fetchone()
    assert zdict and len(zdict) <= index_module.ZDICT_SIZE
    with pytest.raises(zlib.error):
        zlib.decompress(blob)  # not without the dictionary
    first = catalogue_v1()[0]
    assert decompress_json(blob, zdict) == first.model_dump_json(exclude_none=True).encode()
    with closing(sqlite3.connect(v2.folder / INDEX_DIR / STORE_FILE)) as db:
        assert read_zdict(db) == zdict
    index = open_index(served(v2))
    for f in catalogue_v2():
        assert index.formation_bytes(f.numero) == f.model_dump_json(exclude_none=True).encode()
    assert index.formation_bytes("15_AF_00001") is None  # removed


def test_fewer_formations_than_the_dictionary_takes(tmp_path, monkeypatch):
    monkeypatch.setattr(index_module, "STORE_PROCESS", True)
    formations = catalogue_v1()[:3]
    build = run_sink(tmp_path / "b", formations)
    index = index_module.open_index(served(build))
    assert [index.formation_json(f.numero)["numero"] for f in formations] == [f.numero for f in formations]


def test_a_store_without_a_dictionary_is_read(tmp_path):
    """Stores written before the dictionary: plain zlib, no ``meta`` table."""
    from catalogue.search.index import compress_json, decompress_json, read_zdict

    data = b'{"numero": "15_AF_1"}'
    assert decompress_json(compress_json(data, None), None) == data == zlib.decompress(compress_json(data, None))
    assert decompress_json(compress_json(data, b"numero"), b"numero") == data
    with closing(sqlite3.connect(tmp_path / "old.sqlite")) as db:
        assert read_zdict(db) is None


def test_compressing_with_a_dictionary_gives_zlib_ng_s_own_bytes_every_time():
    """The compressor primed with the dictionary is copied for each formation, never reused as is; what it
    makes is zlib's format (Python's own zlib reads it)."""
    from zlib_ng import zlib_ng

    from catalogue.search.index import compress_json, decompress_json

    zdict = b'{"numero": "15_AF_", "intitule_formation": "Formation ' * 400
    texts = [b'{"numero": "15_AF_%d", "intitule_formation": "Formation %d"}' % (i, i) for i in range(5)]
    for data in texts + texts:
        compressor = zlib_ng.compressobj(1, zlib_ng.DEFLATED, zlib_ng.MAX_WBITS, 8, zlib_ng.Z_DEFAULT_STRATEGY, zdict)
        assert compress_json(data, zdict) == compressor.compress(data) + compressor.flush()
        assert decompress_json(compress_json(data, zdict), zdict) == data
        stdlib = zlib.decompressobj(zlib.MAX_WBITS, zdict)
        assert stdlib.decompress(compress_json(data, zdict)) + stdlib.flush() == data
    other = zdict[:-7] + b"autre !"
    assert decompress_json(compress_json(texts[0], other), other) == texts[0]

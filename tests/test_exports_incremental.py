"""The exports in an incremental build: the full build's bytes, unchanged runs copied, not recompressed.

The sink is driven directly (``SinkContext(previous=PreviousBuild(...))``, add() for new and changed
formations, keep() for the others, in input order), then through ``build()`` twice.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Callable, Optional

import pytest
from lxml import etree

import catalogue.exports as exports
from catalogue.build import BuildOptions, PreviousBuild, SinkContext, build, published_build
from catalogue.catalog import Catalog, Entry, summarize
from catalogue.exports import CACHE_DIR, INDEX_NAME, MissingIndex, DonneesSink
from catalogue.generate import generate_formations
from catalogue.lheo_export import write_lheo
from catalogue.model import Formation, Statut
from catalogue.problems import Origin
from catalogue.regions import geo
from catalogue.settings import PROJECT_ROOT, Settings

TODAY = dt.date(2026, 11, 29)
SITE_URL = "https://catalogue.exemple.fr"
SETTINGS = Settings(site_url=SITE_URL)
XSD = PROJECT_ROOT / "catalogue" / "data" / "lheo-2.3.xsd"
NAMES = ("catalogue.xml.gz", "catalogue.json.gz", "catalogue.csv.gz")


def catalogue(count: int = 300) -> list[Formation]:
    """Generated formations (archived ones among them), the second one beyond the LHEO schema (left out of the XML)."""
    formations = list(generate_formations(count, seed=3, reference=TODAY))
    formations[1] = formations[1].model_copy(update={"contenu_formation": ("Contenu détaillé. " * 200).strip()})
    return formations


def entry_of(formation: Formation) -> Entry:
    return summarize(formation, origin=Origin("a.xml", 1), statut=Statut.VALIDEE, today=TODAY, settings=SETTINGS,
                     geo=geo())


def run_sink(
    folder: Path, formations: list[Formation], previous: Optional[tuple[Path, list[Formation]]] = None,
    stretches: bool = False,
) -> DonneesSink:
    """The sink over ``formations``; with ``previous`` (its folder, its input), unchanged ones are kept
    (with ``stretches``, each stretch of them given to ``keep_all()``, as ``build()`` does)."""
    context = SinkContext(folder, SETTINGS, TODAY, geo())
    before: dict[str, Formation] = {}
    if previous is not None:
        before = {f.numero: f for f in previous[1]}
        context = SinkContext(folder, SETTINGS, TODAY, geo(), PreviousBuild(previous[0], frozenset(before)))
    sink = DonneesSink(context)
    entries = []
    stretch: list[Entry] = []
    for formation in formations:
        entry = entry_of(formation)
        entries.append(entry)
        if before.get(formation.numero) == formation:
            if stretches:
                stretch.append(entry)
            else:
                sink.keep(entry)
        else:
            sink.keep_all(stretch)
            stretch = []
            sink.add(formation, entry)
    sink.keep_all(stretch)
    sink.finish(Catalog.of(entries, TODAY))
    return sink


def output(folder: Path) -> dict[str, bytes]:
    """What the sink wrote: its site folder and its index."""
    files = {p.name: p.read_bytes() for p in sorted((folder / "site" / "donnees").iterdir())}
    files[INDEX_NAME] = (folder / CACHE_DIR / INDEX_NAME).read_bytes()
    return files


def changed(formation: Formation) -> Formation:
    return formation.model_copy(update={"intitule_formation": formation.intitule_formation + " (mise à jour)"})


def new_formation(formations: list[Formation], numero: str) -> Formation:
    return formations[5].model_copy(update={"numero": numero})


def _run_end(formations: list[Formation], count: int) -> int:
    """The position after the ``count``-th formation whose Ref ends a run."""
    ends = [i + 1 for i, f in enumerate(formations) if exports.ends_run(f.numero)]
    return ends[count - 1]


#: Edits of the input, each as the incremental build sees them.
EDITS: dict[str, Callable[[list[Formation]], list[Formation]]] = {
    "nothing": lambda fs: list(fs),
    "add": lambda fs: fs[:150] + [new_formation(fs, "15_AF_NOUVELLE")] + fs[150:],
    "change": lambda fs: fs[:100] + [changed(fs[100])] + fs[101:],
    "delete": lambda fs: fs[:200] + fs[201:],
    "delete the first": lambda fs: fs[1:],
    "delete the first run": lambda fs: fs[next(i for i, f in enumerate(fs) if exports.ends_run(f.numero)) + 1 :],
    "add at the start": lambda fs: [new_formation(fs, "07_PREMIERE")] + fs,
    "move": lambda fs: fs[:10] + fs[11:250] + [fs[10]] + fs[250:],
    "left out now in the XML": lambda fs: fs[:1] + [fs[1].model_copy(update={"contenu_formation": "Court."})] + fs[2:],
    "change one in a hundred, add, delete": lambda fs: [
        changed(f) if i % 100 == 7 else f for i, f in enumerate(fs[:-3])
    ] + [new_formation(fs, "15_AF_FIN")],
    "everything deleted": lambda fs: [],
    "add at the end": lambda fs: fs + [new_formation(fs, "15_AF_DERNIERE")],
    "delete the last": lambda fs: fs[:-1],
    "change the first and the last": lambda fs: [changed(fs[0])] + fs[1:-1] + [changed(fs[-1])],
    "swap two runs": lambda fs: fs[:_run_end(fs, 3)] + fs[_run_end(fs, 4) : _run_end(fs, 5)]
    + fs[_run_end(fs, 3) : _run_end(fs, 4)] + fs[_run_end(fs, 5) :],
}


@pytest.fixture(scope="module")
def first(tmp_path_factory) -> tuple[Path, list[Formation]]:
    """A full build of the catalogue: the previous build of every incremental one."""
    folder = tmp_path_factory.mktemp("previous")
    formations = catalogue()
    run_sink(folder, formations)
    return folder, formations


@pytest.mark.parametrize("edit", EDITS)
def test_incremental_build_gives_the_full_builds_bytes(first, tmp_path, edit):
    formations = EDITS[edit](first[1])
    full = run_sink(tmp_path / "full", formations)
    incremental = run_sink(tmp_path / "incremental", formations, previous=first)
    assert output(tmp_path / "incremental") == output(tmp_path / "full")
    # The page's counts too (they are in index.html, compared above), kept formations included.
    assert (incremental.formations, incremental.archived, incremental.sessions, incremental.in_xml) == (
        full.formations, full.archived, full.sessions, full.in_xml
    )
    assert incremental.left_out == full.left_out


@pytest.mark.parametrize("edit", ["change one in a hundred, add, delete", "move", "swap two runs", "add at the start"])
def test_keep_all_gives_the_bytes_of_keep(first, tmp_path, edit):
    formations = EDITS[edit](first[1])
    run_sink(tmp_path / "one by one", formations, previous=first)
    stretches = run_sink(tmp_path / "stretches", formations, previous=first, stretches=True)
    assert output(tmp_path / "stretches") == output(tmp_path / "one by one")
    assert stretches.archived == sum(entry_of(f).archived for f in formations) > 0


def test_the_catalogue_has_what_the_tests_need(first, tmp_path):
    """Several runs, archived formations and one left out of the XML: else the tests above prove less."""
    sink = run_sink(tmp_path, first[1])
    assert len(sink.index.run_ends) >= 10 and 0 < sink.archived < sink.formations
    assert [ref for ref, _ in sink.left_out] == [first[1][1].numero]


def test_each_export_of_an_incremental_build_is_a_valid_document(first, tmp_path):
    formations = EDITS["change one in a hundred, add, delete"](first[1])
    sink = run_sink(tmp_path, formations, previous=first)
    donnees = tmp_path / "site" / "donnees"
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    document = etree.fromstring(gzip.decompress((donnees / "catalogue.xml.gz").read_bytes()), parser)
    schema = etree.XMLSchema(etree.parse(str(XSD)))
    assert schema.validate(document), schema.error_log
    in_xml = [f.get("numero") for f in document.iter("{http://lheo.gouv.fr/2.3}formation")]
    assert in_xml == [f.numero for f in formations if f.numero != formations[1].numero]
    items = json.loads(gzip.decompress((donnees / "catalogue.json.gz").read_bytes()))
    assert [item["numero"] for item in items] == [f.numero for f in formations]
    assert [Formation.model_validate(item["formation"]) for item in items] == formations
    text = gzip.decompress((donnees / "catalogue.csv.gz").read_bytes()).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text, newline=""), delimiter=";"))
    assert [(r["numero_formation"], r["numero_session"]) for r in rows] == [
        (f.numero, s.numero or "") for f in formations for s in f.sessions
    ]
    assert len(rows) == sink.sessions


def test_unchanged_runs_are_copied_not_recompressed(first, tmp_path, monkeypatch):
    compressed: list[bytes] = []
    real = exports.gzip_member
    monkeypatch.setattr(exports, "gzip_member", lambda data: compressed.append(data) or real(data))
    target = first[1][100]
    formations = EDITS["change"](first[1])
    run_sink(tmp_path, formations, previous=first)
    runs = [data for data in compressed if target.numero.encode() in data]
    assert len(runs) == 3  # the changed formation's run, in each file
    headers_and_footers = 5
    assert len(compressed) == len(runs) + headers_and_footers
    # Every other member is the previous build's: the files differ only where that run is.
    for name in NAMES:
        before = (first[0] / "site" / "donnees" / name).read_bytes()
        after = (tmp_path / "site" / "donnees" / name).read_bytes()
        prefix = len(os.path.commonprefix([before, after]))
        suffix = len(os.path.commonprefix([before[::-1], after[::-1]]))
        assert prefix + suffix > len(before) * 0.8, name


def test_kept_runs_are_taken_whole_without_a_step_per_formation(first, tmp_path, monkeypatch):
    """Kept formations outside the changed run are neither hashed (ends_run) nor taken one by one."""
    hashed: list[str] = []
    real = exports.ends_run
    monkeypatch.setattr(exports, "ends_run", lambda ref: hashed.append(ref) or real(ref))
    taken: list[str] = []
    real_take = DonneesSink._take
    monkeypatch.setattr(DonneesSink, "_take", lambda self, ref, *rest: taken.append(ref) or real_take(self, ref, *rest))
    target = first[1][100]
    sink = run_sink(tmp_path, EDITS["change"](first[1]), previous=first)
    assert target.numero in taken and len(taken) <= exports.RUN_MAX
    assert len(hashed) <= 4  # the changed formation, the last one, a run of RUN_MAX before and after it at most
    # The index is the full build's all the same (the whole output is compared in the test above).
    assert sink.index.refs == [f.numero for f in first[1]] and len(sink.index.run_ends) >= 10
    assert sink.previous._where is None  # the kept formation after the changed one was found next to it


def test_nothing_changed_links_the_previous_files(first, tmp_path, monkeypatch):
    compressed: list[bytes] = []
    real = exports.gzip_member
    monkeypatch.setattr(exports, "gzip_member", lambda data: compressed.append(data) or real(data))
    run_sink(tmp_path, first[1], previous=first)
    for name in NAMES + ("catalogue.schema.json",):
        now, before = tmp_path / "site" / "donnees" / name, first[0] / "site" / "donnees" / name
        assert os.stat(now).st_ino == os.stat(before).st_ino
    assert len(compressed) == 5  # headers and footers only, to compare them with the previous ones


def test_without_an_index_the_previous_build_cannot_be_reused(first, tmp_path):
    previous = tmp_path / "previous"
    shutil.copytree(first[0], previous)
    index = previous / CACHE_DIR / INDEX_NAME
    index.write_bytes(index.read_bytes().replace(b'"stamp":[1,', b'"stamp":[0,'))
    with pytest.raises(MissingIndex) as error:
        run_sink(tmp_path / "new", first[1], previous=(previous, first[1]))
    # A FileNotFoundError naming the previous build's file: build() then makes a full build.
    assert isinstance(error.value, FileNotFoundError) and Path(error.value.filename) == index
    index.unlink()
    with pytest.raises(MissingIndex):
        run_sink(tmp_path / "new2", first[1], previous=(previous, first[1]))


# --------------------------------------------------------------------------
# Through build(), as `catalogue build` runs
# --------------------------------------------------------------------------


def build_donnees(content: Path, build_dir: Path, full: bool = False):
    options = BuildOptions(content=(content,), build_dir=build_dir, today=TODAY, full=full)
    report = build(options, SETTINGS, sinks=["donnees"])
    assert report.errors == []
    return report


def test_second_build_is_incremental_and_gives_the_full_builds_bytes(tmp_path):
    formations = catalogue(120)
    content = tmp_path / "content"
    content.mkdir()
    write_lheo(formations, content / "a.xml")
    build_donnees(content, tmp_path / "build")
    edited = EDITS["change one in a hundred, add, delete"](formations)
    write_lheo(edited, content / "a.xml")
    report = build_donnees(content, tmp_path / "build")
    assert report.incremental
    build_donnees(content, tmp_path / "full", full=True)
    assert output(published_build(tmp_path / "build")) == output(published_build(tmp_path / "full"))


def test_a_lost_index_means_a_full_build(tmp_path):
    formations = catalogue(60)
    content = tmp_path / "content"
    content.mkdir()
    write_lheo(formations, content / "a.xml")
    build_donnees(content, tmp_path / "build")
    (published_build(tmp_path / "build") / CACHE_DIR / INDEX_NAME).unlink()
    write_lheo(formations[1:], content / "a.xml")
    build_donnees(content, tmp_path / "build")
    build_donnees(content, tmp_path / "full", full=True)
    assert output(published_build(tmp_path / "build")) == output(published_build(tmp_path / "full"))


# --------------------------------------------------------------------------
# The compressing thread
# --------------------------------------------------------------------------


@pytest.mark.parametrize("compressors", [1, 2, 3])
def test_compressing_on_the_sinks_threads_gives_the_same_bytes(first, tmp_path, monkeypatch, compressors):
    formations = EDITS["change one in a hundred, add, delete"](first[1])
    monkeypatch.setattr(exports.FileWork, "compressors", compressors)
    interval = sys.getswitchinterval()
    threaded = run_sink(tmp_path / "threaded", formations, previous=first)
    assert sys.getswitchinterval() == interval  # put back once the sink is done
    monkeypatch.setattr(DonneesSink, "compress_in_thread", False)
    alone = run_sink(tmp_path / "alone", formations, previous=first)
    assert threaded._work._executor is not None and alone._work._executor is None
    assert (threaded._work._compressors is not None) == (compressors > 1)
    assert output(tmp_path / "threaded") == output(tmp_path / "alone")
    full = tmp_path / "full"
    monkeypatch.setattr(DonneesSink, "compress_in_thread", True)
    run_sink(full, formations)
    assert output(full) == output(tmp_path / "alone")


def test_the_switch_interval_is_shorter_while_a_rebuild_compresses(tmp_path):
    interval = sys.getswitchinterval()
    work = exports.FileWork(True, incremental=True)
    assert sys.getswitchinterval() == min(interval, exports.FileWork.switch_interval)
    assert work._compressors is not None
    work.stop()
    assert sys.getswitchinterval() == interval
    # A full build: every core is busy already; one compressing thread, Python's interval.
    work = exports.FileWork(True, incremental=False)
    assert sys.getswitchinterval() == interval and work._compressors is None
    work.stop()
    sink = DonneesSink(SinkContext(tmp_path, SETTINGS, TODAY, geo()))
    assert sink._work._compressors is None and sys.getswitchinterval() == interval
    sink.abort()


def test_an_error_on_the_compressing_thread_stops_the_sink(first, tmp_path, monkeypatch):
    """A failed write (disk full) is raised in the build's thread; nothing is compressed after it; abort() (as build()
    calls it on an error) leaves no thread."""
    calls = []
    real = exports.gzip_member

    def failing(data: bytes) -> bytes:
        calls.append(len(data))
        if len(calls) == 12:
            raise OSError(28, "No space left on device")
        return real(data)

    monkeypatch.setattr(exports, "gzip_member", failing)
    monkeypatch.setattr(DonneesSink, "compress_in_process", False)  # a full build compresses in its process else
    sink = DonneesSink(SinkContext(tmp_path, SETTINGS, TODAY, geo()))
    assert sink._work._executor is not None
    with pytest.raises(OSError, match="No space left"):
        entries = []
        for formation in first[1]:
            entries.append(entry_of(formation))
            sink.add(formation, entries[-1])
        sink.finish(Catalog.of(entries, TODAY))
    # The failure stopped the work: the runs queued after it were not compressed (but what another compressing
    # thread had started: a run, three members).
    assert 12 <= len(calls) <= 12 + 3 * (exports.FileWork.compressors - 1)
    sink.abort()
    for pool in (sink._work._executor, sink._work._compressors):
        assert pool is None or (pool._shutdown and not any(t.is_alive() for t in pool._threads))

"""The "index" sink's incremental build: same answers as a full build, the previous build untouched."""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Iterable, Optional

import pytest
from whoosh.writing import IndexingError

from catalogue.build import BuildOptions, PreviousBuild, SinkContext, build
from catalogue.catalog import Catalog, summarize
from catalogue.lheo_export import write_lheo
from catalogue.model import Formation, Statut
from catalogue.problems import Origin
from catalogue.regions import geo
from catalogue.search import index as index_module
from catalogue.search.analysis import FIELD_BOOSTS
from catalogue.search.index import INDEX_DIR, STORE_FILE, IndexSink, open_index
from catalogue.search.query import SearchParams, search
from catalogue.settings import Settings
from factories import (
    ADRESSE_MONTPELLIER,
    ADRESSE_TOULOUSE,
    ADRESSE_TOURS,
    SIRET_TOULOUSE,
    SIRET_VEIGNE,
    action,
    make_formation,
    organisme,
    session,
)

TODAY = dt.date(2026, 3, 1)
SETTINGS = Settings()
GEO = geo()

TITLES = [
    "Cuisine et restauration traditionnelle",
    "Pâtisserie boulangerie artisanale",
    "Électricien d'équipement du bâtiment",
    "Comptabilité et gestion de la paie",
    "Soudure à l'arc et métallerie",
    "Anglais professionnel pour la restauration",
    "Maçonnerie et gros œuvre du bâtiment",
    "Gestion de la paie et des ressources humaines",
]
TEXTS = [
    "Préparer les plats d'un restaurant traditionnel, gérer les stocks de la cuisine.",
    "Fabriquer le pain, les viennoiseries et les gâteaux de la boulangerie.",
    "Installer et dépanner les équipements électriques des bâtiments d'habitation.",
    "Tenir la comptabilité d'une petite entreprise, établir les bulletins de paie.",
    "Souder l'acier et l'aluminium, lire un plan de métallerie.",
    "Accueillir une clientèle étrangère en anglais dans la restauration.",
]
PLACES = [ADRESSE_TOULOUSE, ADRESSE_MONTPELLIER, ADRESSE_TOURS]
ORGANISMES = [
    organisme(SIRET_TOULOUSE, "UT2J FC", ADRESSE_TOULOUSE),
    organisme(SIRET_VEIGNE, "Lycée hôtelier de Tours", ADRESSE_TOURS),
]


def formation(i: int, title: Optional[str] = None, text: Optional[str] = None, archived: bool = False,
              place: Optional[int] = None) -> Formation:
    """The i-th formation of the test catalogue: titles, texts, places and organismes vary with i."""
    dates = dict(debut="20240101", fin="20240301") if archived else dict(debut=f"2026{i % 9 + 3:02d}01", fin="20270630")
    return make_formation(
        numero=f"15_AF_{i:05d}",
        intitule=title or f"{TITLES[i % len(TITLES)]} niveau {i % 4}",
        objectif_formation=text or " ".join(TEXTS[(i + k) % len(TEXTS)] for k in range(1 + i % 3)),
        org=ORGANISMES[i % 2],
        certifiante=i % 3 == 0,
        actions=[
            action(
                numero=f"15_SE_{i:05d}",
                sessions=[session(numero=f"15_SS_{i:05d}", **dates)],
                lieux=[PLACES[(i if place is None else place) % len(PLACES)]],
                organismes_financeurs=[{"code_financeur": str(5 + i % 3)}],
            )
        ],
    )


def catalogue_v1() -> list[Formation]:
    return [formation(i, archived=i % 11 == 5) for i in range(40)]


def catalogue_v2() -> list[Formation]:
    """v1 with changes: new words, words gone, a town changed, archived, removed, added."""
    formations = {f.numero: f for f in catalogue_v1()}
    for i in (1, 7, 21):
        del formations[f"15_AF_{i:05d}"]
    formations["15_AF_00003"] = formation(3, title="Apiculture et miel de montagne")  # words new to the catalogue
    formations["15_AF_00004"] = formation(4, text="Former à la taille des arbres fruitiers.")
    formations["15_AF_00009"] = formation(9, place=2)  # another town
    formations["15_AF_00012"] = formation(12, archived=True)
    formations["15_AF_00100"] = formation(100, title="Cuisine végétarienne et restauration collective")
    formations["15_AF_00101"] = formation(101, title="Soudure sous-marine")
    return sorted(formations.values(), key=lambda f: f.numero)


def catalogue_v3() -> list[Formation]:
    """v2 changed again: a formation changed twice, a new one removed, a removed one back, a word's last holder gone."""
    formations = {f.numero: f for f in catalogue_v2()}
    formations["15_AF_00003"] = formation(3, title="Apiculture biologique")
    del formations["15_AF_00101"]  # "sous-marine" was only there
    del formations["15_AF_00004"]  # "fruitiers" was only there
    formations["15_AF_00007"] = formation(7, title="Retour en cuisine")
    formations["15_AF_00020"] = formation(20, title="Cuisine du monde", archived=True)
    return sorted(formations.values(), key=lambda f: f.numero)


# --------------------------------------------------------------------------
# Running the sink as a build would
# --------------------------------------------------------------------------


def run_sink(staging: Path, formations: Iterable[Formation], previous: Optional[PreviousBuild] = None,
             unchanged: frozenset[str] = frozenset()) -> PreviousBuild:
    """Feed the "index" sink like a build: add() the new and changed formations, keep() the others."""
    (staging / "site").mkdir(parents=True)
    sink = IndexSink(SinkContext(staging, SETTINGS, TODAY, GEO, previous))
    entries = []
    for i, f in enumerate(formations):
        entry = summarize(f, origin=Origin("offre.xml", i + 1), statut=Statut.VALIDEE, today=TODAY,
                          settings=SETTINGS, geo=GEO)
        entries.append(entry)
        if f.numero in unchanged:
            sink.keep(entry)
        else:
            sink.add(f, entry)
    sink.finish(Catalog.of(entries, TODAY))
    sink.wait()
    return PreviousBuild(staging, frozenset(e.ref for e in entries))


def incremental(staging: Path, formations: list[Formation], before: list[Formation], previous: PreviousBuild) -> PreviousBuild:
    old = {f.numero: f for f in before}
    unchanged = frozenset(f.numero for f in formations if old.get(f.numero) == f)
    return run_sink(staging, formations, previous, unchanged)


def served(build: PreviousBuild) -> Path:
    """A build folder whose ``index`` is this build's, as ``search()`` takes it."""
    view = build.folder.parent / f"view-{build.folder.name}"
    if not view.exists():
        view.mkdir()
        (view / INDEX_DIR).symlink_to(build.folder / INDEX_DIR)
    return view


QUERIES = [
    "", "cuisine", "restauration", "cuisine restauration", "bâtiment électricien", "paie", "gestion paie",
    "apiculture", "miel", "fruitiers", "soudure", "sous-marine", "monde", "tours", "montpellier", "toulouse",
    "lycée hôtelier", "boulangerie pâtisserie", "niveau", "retour", "biologique", "végétarienne",
    # misspelt: the vocabulary must be the full build's
    "patisseire", "apicultur", "fruitiere", "soudrue", "restauratoin", "elecricien",
    # numbers
    "15_AF_00003", "00004", "15_SE_00009", SIRET_VEIGNE, "15_AF_00101",
]
FILTERS = [
    {}, {"include_archived": True}, {"certifiante": True}, {"departement": "34"}, {"region": "76"},
    {"financeur": "6"}, {"near": "Toulouse", "rayon_km": 50}, {"debut_apres": "2026-08-01"}, {"limit": 3, "offset": 2},
]


def answers(build_dir: Path) -> dict:
    """Every answer of ``search()`` to the queries and filters above, scores included."""
    result = {}
    for q in QUERIES:
        for filters in FILTERS:
            response = search(build_dir, SearchParams(q=q, **{"limit": 100, **filters}))
            result[q, tuple(sorted(filters.items()))] = response.model_dump()
    return result


def statistics(build_dir: Path) -> dict:
    """The collection statistics BM25 uses, for every term of every scored field."""
    index = open_index(build_dir)
    reader = index.searcher().reader()
    terms = {(f, t.decode() if isinstance(t, bytes) else t) for f, t in reader.all_terms() if f in FIELD_BOOSTS}
    return {
        "docs": index.doc_count(),
        "lengths": {f: index.field_length(f) for f in FIELD_BOOSTS},
        "df": {(f, t): index.doc_frequency(f, t) for f, t in terms if index.doc_frequency(f, t)},
    }


def store_rows(build: PreviousBuild) -> dict:
    """The store's rows; each formation's JSON as stored (compressed with the store's own preset dictionary:
    an incremental build keeps its previous build's)."""
    with closing(sqlite3.connect(build.folder / INDEX_DIR / STORE_FILE)) as db:
        zdict = index_module.read_zdict(db)
        return {
            "formation": sorted((ref, index_module.decompress_json(blob, zdict))
                                for ref, blob in db.execute("SELECT ref, json FROM formation")),
            "number": sorted(db.execute("SELECT id, ref FROM number")),
            "place": sorted(db.execute("SELECT * FROM place")),
            "vocabulary": sorted(db.execute("SELECT word, stem, formations FROM vocabulary")),
        }


def files(folder: Path) -> dict[str, tuple[int, str]]:
    """Every file under ``folder``: its inode and the hash of its bytes."""
    return {
        str(p.relative_to(folder)): (p.stat().st_ino, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(folder.rglob("*")) if p.is_file()
    }


# --------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> dict[str, PreviousBuild]:
    """v1 full; v2 and v3 incremental, each from the one before; v2 and v3 full, to compare."""
    root = tmp_path_factory.mktemp("incremental")
    result = {"v1": run_sink(root / "v1", catalogue_v1())}
    result["v1-files"] = files(root / "v1")
    result["v2"] = incremental(root / "v2", catalogue_v2(), catalogue_v1(), result["v1"])
    result["v3"] = incremental(root / "v3", catalogue_v3(), catalogue_v2(), result["v2"])
    result["v2-full"] = run_sink(root / "v2-full", catalogue_v2())
    result["v3-full"] = run_sink(root / "v3-full", catalogue_v3())
    return result


@pytest.mark.parametrize("version", ["v2", "v3"])
def test_answers_equal_a_full_builds(builds, version):
    incremental_answers = answers(served(builds[version]))
    full_answers = answers(served(builds[f"{version}-full"]))
    assert incremental_answers == full_answers
    # The comparison covers what changed: new words found, removed formations gone, scores given.
    assert incremental_answers["apiculture", ()]["total"] == 1
    assert incremental_answers["15_AF_00101", (("include_archived", True),)]["total"] == (version == "v2")
    assert any(r["score"] for r in incremental_answers["cuisine", ()]["results"])


@pytest.mark.parametrize("version", ["v2", "v3"])
def test_statistics_are_those_of_the_live_documents(builds, version):
    incremental_view, full_view = served(builds[version]), served(builds[f"{version}-full"])
    # The incremental index does hold deleted documents, which Whoosh still counts...
    reader = open_index(incremental_view).searcher().reader()
    assert reader.doc_count_all() > reader.doc_count()
    # ... but what the query scores with is the full build's.
    assert statistics(incremental_view) == statistics(full_view)


@pytest.mark.parametrize("version", ["v2", "v3"])
def test_store_equals_a_full_builds(builds, version):
    ours, full = store_rows(builds[version]), store_rows(builds[f"{version}-full"])
    assert ours == full
    words = {w for w, _, _ in ours["vocabulary"]}
    assert "apiculture" in words
    assert ("marine" in words) == (version == "v2")  # "sous-marine" was its only holder
    assert ("fruitiers" in words) == (version == "v2")


def test_previous_build_is_left_as_it_was(builds):
    assert files(builds["v1"].folder) == builds["v1-files"]


def test_segments_are_linked_not_copied(builds):
    before = {p.name: p.stat().st_ino for p in (builds["v1"].folder / INDEX_DIR).glob("*.seg")}
    after = {p.name: p.stat().st_ino for p in (builds["v2"].folder / INDEX_DIR).glob("*.seg")}
    assert before and before.items() <= after.items()  # the same files (inodes)...
    assert len(after) == len(before) + 1  # ... and one new segment, the changed and new formations
    # The store is a copy: it was modified.
    store = Path(INDEX_DIR) / STORE_FILE
    assert (builds["v1"].folder / store).stat().st_ino != (builds["v2"].folder / store).stat().st_ino


def test_nothing_changed_links_everything(builds, tmp_path):
    again = incremental(tmp_path / "v3-again", catalogue_v3(), catalogue_v3(), builds["v3"])
    previous = files(builds["v3"].folder / INDEX_DIR)
    assert files(again.folder / INDEX_DIR) == {k: v for k, v in previous.items() if k != "MAIN_WRITELOCK"}
    assert answers(served(again)) == answers(served(builds["v3-full"]))


def test_merges_keep_the_answers(tmp_path, monkeypatch):
    """Tiers fill up and are merged; worn segments are rewritten; answers stay a full build's throughout."""
    monkeypatch.setattr(index_module, "MERGE_FACTOR", 2)
    monkeypatch.setattr(index_module, "MAX_DELETED_SHARE", 0.2)
    versions = [catalogue_v1(), catalogue_v2(), catalogue_v3(), [formation(i) for i in range(3, 40, 2)]]
    # Then one formation changed at a time, until every worn segment has been rewritten.
    versions += [[formation(i, title=f"Cuisine {n}") if i == 3 else formation(i) for i in range(3, 40, 2)] for n in range(4)]
    build = run_sink(tmp_path / "0", versions[0])
    segment_counts = [len(open_index(served(build)).searcher().reader().leaf_readers())]
    for n, (before, after) in enumerate(zip(versions, versions[1:]), start=1):
        build = incremental(tmp_path / str(n), after, before, build)
        reader = open_index(served(build)).searcher().reader()
        segment_counts.append(len(reader.leaf_readers()))
        full = run_sink(tmp_path / f"{n}-full", after)
        assert answers(served(build)) == answers(served(full))
        assert statistics(served(build)) == statistics(served(full))
    # Without merges, each build would add a segment.
    assert any(after <= before for before, after in zip(segment_counts, segment_counts[1:]))
    reader = open_index(served(build)).searcher().reader()
    leaves = [leaf for leaf, _ in reader.leaf_readers()]
    assert all(leaf.doc_count_all() - leaf.doc_count() < 0.2 * leaf.doc_count_all() for leaf in leaves)
    assert reader.doc_count_all() < 2 * reader.doc_count()  # half the formations went in the fourth build
    with closing(sqlite3.connect(build.folder / INDEX_DIR / STORE_FILE)) as db:
        segments = {row[0] for row in db.execute("SELECT segment FROM excess_term UNION SELECT segment FROM excess_length")}
    assert segments <= {leaf.segment().segment_id() for leaf in leaves}  # those of merged segments are dropped


def test_segments_to_merge(monkeypatch):
    monkeypatch.setattr(index_module, "SEGMENT_DOCS", 12_500)
    monkeypatch.setattr(index_module, "MERGE_FACTOR", 8)
    monkeypatch.setattr(index_module, "MAX_DELETED_SHARE", 0.3)

    class Segment:
        def __init__(self, name: str, docs: int, deleted: int = 0):
            self.name, self.docs, self.deleted = name, docs, deleted

        def segment_id(self):
            return self.name

        def doc_count_all(self):
            return self.docs

        def doc_count(self):
            return self.docs - self.deleted

        def deleted_count(self):
            return self.deleted

        def __repr__(self):
            return self.name

    choose = index_module.segments_to_merge
    full = [Segment(f"full{i}", 12_500, 100) for i in range(8)]  # a full build's segments
    assert choose(full) == []
    small = [Segment(f"small{i}", 1_000 + i) for i in range(7)]  # one per incremental build
    assert choose(full + small) == []
    one_more = Segment("small7", 1_200)
    assert set(choose(full + small + [one_more])) == {*small, one_more}  # the tier is full: merged
    worn = [Segment("worn", 12_500, 4_000), Segment("more-worn", 12_500, 5_000)]
    assert choose(full + small + worn) == [worn[1]]  # one at a time
    # A tier of large segments merges only what stays within a full build's segment size.
    large = [Segment(f"large{i}", 5_000 + i) for i in range(8)]
    assert choose(large) == [large[0], large[1]]


def test_full_build_segments(tmp_path, monkeypatch):
    """Writer processes closing a segment every SEGMENT_DOCS documents: same answers as one segment."""
    formations = [formation(i) for i in range(260)]
    monkeypatch.setattr(index_module, "SEGMENT_DOCS", 40)
    monkeypatch.setattr(index_module, "WRITER_PROCS", 2)
    several = run_sink(tmp_path / "several", formations)
    monkeypatch.setattr(index_module, "WRITER_PROCS", 1)
    one = run_sink(tmp_path / "one", formations)
    reader = open_index(served(several)).searcher().reader()
    assert len(reader.leaf_readers()) >= 3  # a segment closes after the batch (100 documents) that fills it
    assert reader.doc_count_all() == 260
    assert len(open_index(served(one)).searcher().reader().leaf_readers()) == 1
    assert answers(served(several)) == answers(served(one))


def test_removing_everything(tmp_path):
    first = run_sink(tmp_path / "a", catalogue_v1()[:3])
    empty = incremental(tmp_path / "b", [], catalogue_v1()[:3], first)
    view = served(empty)
    assert search(view, SearchParams(q="", include_archived=True)).total == 0
    assert search(view, SearchParams(q="cuisine", include_archived=True)).total == 0
    assert open_index(view).doc_count() == 0


def test_through_the_build(tmp_path):
    """Two builds of the same folder: the second is incremental and answers like a full build."""
    content = tmp_path / "content"
    content.mkdir()
    write_lheo(catalogue_v1(), content / "offre.xml", "2.3")
    options = BuildOptions(content=(content,), build_dir=tmp_path / "build", today=TODAY)
    build(options, SETTINGS, sinks=["index"])
    first = (tmp_path / "build" / "current").resolve()
    write_lheo(catalogue_v2(), content / "offre.xml", "2.3")
    build(options, SETTINGS, sinks=["index"])
    second = (tmp_path / "build" / "current").resolve()
    assert first != second
    old = {p.name: p.stat().st_ino for p in (first / INDEX_DIR).glob("*.seg")}
    new = {p.name: p.stat().st_ino for p in (second / INDEX_DIR).glob("*.seg")}
    assert old.items() <= new.items()  # incremental: the first build's segments were reused

    full_content = tmp_path / "full-content"
    full_content.mkdir()
    write_lheo(catalogue_v2(), full_content / "offre.xml", "2.3")
    build(BuildOptions(content=(full_content,), build_dir=tmp_path / "full", today=TODAY), SETTINGS, sinks=["index"])
    assert answers(tmp_path / "build") == answers(tmp_path / "full")


def test_many_incremental_builds(tmp_path, monkeypatch):
    """A dozen builds in a row, each changing, removing and adding a few formations at random (seeded),
    with small segments so that every kind of merge happens: still a full build's answers."""
    import random

    monkeypatch.setattr(index_module, "SEGMENT_DOCS", 40)
    monkeypatch.setattr(index_module, "MERGE_FACTOR", 3)
    rnd = random.Random(4)
    current = {i: formation(i) for i in range(240)}
    build = run_sink(tmp_path / "0", [current[i] for i in sorted(current)])
    next_id = len(current)
    for n in range(1, 13):
        before = [current[i] for i in sorted(current)]
        for i in rnd.sample(sorted(current), rnd.choice([1, 3, 12])):
            draw = rnd.random()
            if draw < 0.6:
                current[i] = formation(i, title=f"Cuisine {rnd.choice(['bio', 'de la mer', 'fruitière'])} {n}")
            elif draw < 0.8:
                del current[i]
            else:
                current[next_id] = formation(next_id)
                next_id += 1
        build = incremental(tmp_path / str(n), [current[i] for i in sorted(current)], before, build)
    full = run_sink(tmp_path / "full", [current[i] for i in sorted(current)])
    reader = open_index(served(build)).searcher().reader()
    assert reader.doc_count_all() > reader.doc_count()  # deletions are left in place...
    assert statistics(served(build)) == statistics(served(full))  # ... and do not show
    assert store_rows(build) == store_rows(full)
    assert answers(served(build)) == answers(served(full))


@pytest.mark.parametrize("damage", ["garble_toc", "truncate_segments", "garble_store", "lose_a_document"])
def test_a_damaged_previous_index_is_refused_early(tmp_path, damage):
    """The sink refuses to start from a previous index it cannot read, as a missing file of that
    build: the build then makes a full one (which repairs it) instead of publishing a broken index."""
    formations = catalogue_v1()[:5]
    previous = run_sink(tmp_path / "a", formations)
    folder = previous.folder / INDEX_DIR
    if damage == "garble_toc":
        for toc in folder.glob("_MAIN_*.toc"):
            toc.write_bytes(b"garbage" * 10)
    elif damage == "truncate_segments":
        for segment in folder.glob("*.seg"):
            segment.write_bytes(segment.read_bytes()[:16])
    elif damage == "garble_store":
        (folder / STORE_FILE).write_bytes(b"not a database" * 100)
    else:
        previous = PreviousBuild(previous.folder, previous.refs | {"15_AF_99999"})
    with pytest.raises(FileNotFoundError) as raised:
        IndexSink(SinkContext(tmp_path / "b", SETTINGS, TODAY, GEO, previous))
    assert Path(raised.value.filename).is_relative_to(previous.folder)


def test_a_sound_previous_index_is_checked_once_per_process_until_a_file_changes(tmp_path, monkeypatch):
    """The build checks the previous index, then its sink does: the second check of the same files is free,
    but a file rewritten, truncated or removed since is checked again (and refused)."""
    previous = run_sink(tmp_path / "a", catalogue_v1()[:5])
    folder = previous.folder / INDEX_DIR
    opened = []
    real_open_dir = index_module.whoosh_index.open_dir
    monkeypatch.setattr(index_module.whoosh_index, "open_dir", lambda *a, **k: opened.append(a) or real_open_dir(*a, **k))
    index_module.check_previous(previous)
    index_module.check_previous(previous)
    assert len(opened) == 1
    segment = next(folder.glob("*.seg"))
    segment.write_bytes(segment.read_bytes()[:16])
    with pytest.raises(FileNotFoundError):
        index_module.check_previous(previous)
    assert len(opened) == 2


# --------------------------------------------------------------------------
# The update process
# --------------------------------------------------------------------------


def test_the_update_process_writes_what_this_process_would(tmp_path, monkeypatch):
    """An incremental build's index and store, written by its process or by the build's own: the same
    table of contents, segments and rows, over several batches and two successive builds."""
    monkeypatch.setattr(index_module, "UPDATE_BATCH", 2)
    v1 = run_sink(tmp_path / "v1", catalogue_v1())
    built = {}
    for apart in (True, False):
        monkeypatch.setattr(index_module, "UPDATE_PROCESS", apart)
        v2 = incremental(tmp_path / f"v2-{apart}", catalogue_v2(), catalogue_v1(), v1)
        v3 = incremental(tmp_path / f"v3-{apart}", catalogue_v3(), catalogue_v2(), v2)
        built[apart] = (v2, v3)
    for version in (0, 1):
        apart, inside = built[True][version], built[False][version]
        reader = open_index(served(apart)).searcher().reader()
        assert reader.doc_count_all() > reader.doc_count()  # deletions were made
        assert statistics(served(apart)) == statistics(served(inside))
        assert store_rows(apart) == store_rows(inside)
        assert answers(served(apart)) == answers(served(inside))
        # The same deleted documents, segment by segment.
        deleted = [
            [(leaf.doc_count_all(), sorted(leaf.deleted_docs_set))
             for leaf, _ in open_index(served(b)).searcher().reader().leaf_readers()]
            for b in (apart, inside)
        ]
        assert deleted[0] == deleted[1] and any(d for _, d in deleted[0])


def test_the_update_process_starts_when_the_sink_opens_and_ends_with_finish(tmp_path):
    v1 = run_sink(tmp_path / "v1", catalogue_v1())
    (tmp_path / "v2" / "site").mkdir(parents=True)
    sink = IndexSink(SinkContext(tmp_path / "v2", SETTINGS, TODAY, GEO, v1))
    assert isinstance(sink.update, index_module.UpdateProcess)
    process = sink.update.process
    assert process.is_alive()
    formations = catalogue_v2()
    entries = [summarize(f, origin=Origin("offre.xml", i + 1), statut=Statut.VALIDEE, today=TODAY, settings=SETTINGS,
                         geo=GEO) for i, f in enumerate(formations)]
    for f, entry in zip(formations, entries):
        sink.add(f, entry)
    sink.finish(Catalog.of(entries, TODAY))
    sink.wait()
    assert not process.is_alive() and process.exitcode == 0
    assert answers(served(PreviousBuild(tmp_path / "v2", frozenset(e.ref for e in entries))))["apiculture", ()]["total"] == 1


def _v2_raises(sink: IndexSink, expected: type) -> pytest.ExceptionInfo:
    """Give ``sink`` the second catalogue up to its wait(): what it raises on the way."""
    formations = catalogue_v2()
    entries = [summarize(f, origin=Origin("offre.xml", i + 1), statut=Statut.VALIDEE, today=TODAY, settings=SETTINGS,
                         geo=GEO) for i, f in enumerate(formations)]
    with pytest.raises(expected) as raised:
        for f, entry in zip(formations, entries):
            sink.add(f, entry)
        sink.finish(Catalog.of(entries, TODAY))
        sink.wait()
    return raised


@pytest.mark.parametrize("error, expected", [
    (OSError(errno.ENOSPC, "No space left on device"), OSError),
    (sqlite3.OperationalError("boom"), IndexingError),
])
def test_an_error_in_the_update_process_fails_the_build(tmp_path, monkeypatch, error, expected):
    v1 = run_sink(tmp_path / "v1", catalogue_v1())

    def add_rows(self, rows):
        raise error

    monkeypatch.setattr(index_module.FormationStoreWriter, "add_rows", add_rows)  # before the fork
    (tmp_path / "v2" / "site").mkdir(parents=True)
    sink = IndexSink(SinkContext(tmp_path / "v2", SETTINGS, TODAY, GEO, v1))
    raised = _v2_raises(sink, expected)
    if expected is OSError:
        assert raised.value.errno == errno.ENOSPC
    else:
        assert "boom" in str(raised.value)
    sink.abort()
    assert not sink.update.process.is_alive()


def test_a_previous_file_missing_in_the_update_process_names_it(tmp_path, monkeypatch):
    """A file of the previous build gone between the check and the update: a FileNotFoundError naming it
    (the build then makes a full build)."""
    v1 = run_sink(tmp_path / "v1", catalogue_v1())
    (tmp_path / "v2" / "site").mkdir(parents=True)
    monkeypatch.setattr(index_module, "check_previous", lambda previous: None)
    (v1.folder / INDEX_DIR / STORE_FILE).unlink()
    sink = IndexSink(SinkContext(tmp_path / "v2", SETTINGS, TODAY, GEO, v1))
    raised = _v2_raises(sink, FileNotFoundError)
    assert Path(raised.value.filename) == v1.folder / INDEX_DIR / STORE_FILE
    sink.abort()
